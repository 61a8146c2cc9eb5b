"""What the notebooks measure to teach, beyond the library's metrics (``stepdpo_lite.evaluation``): baselines
that show what a reward model has *not* learnt, summaries of per-step values, and which solutions the pictures draw.

- ``position_only_scores``: a baseline that knows only where a step sits (later steps are wrong more often);
- ``step_auroc_by_position`` (``format_auroc_by_position``): does a PRM rank steps *within* a position, not only
  by it;
- ``format_step_rewards``: one solution's step rewards beside the checker's labels (notebook 02);
- ``step_calibration`` (``format_step_calibration``): whether a PRM's P = σ(reward) reads as a probability: the
  share of right steps per bin of P, the expected calibration error and the Brier score (notebook 02);
- ``base_rate_loss``: the loss of always predicting the label frequency (a flat training curve on it learnt nothing);
- ``rejected_right_answers``: the right answers a PRM rejects, and how many of them slipped (notebook 03's ROC);
- ``curve_ends``: where a trainer's logged curves started and ended (what notebooks 04 and 05 say their curves show);
- ``heatmap_indices`` (``heatmap_rows``), ``verdict_row_labels``, ``pick_before_after_problem``,
  ``explorer_problems``: what the pictures of notebooks 02 and 05 draw (the heatmaps' solutions and their row names,
  the problem drawn before and after training, the explorer's problems), chosen here so that a cell only calls and
  plots;
- ``chosen_vs_rejected_summary`` (``format_chosen_vs_rejected``): a PRM's step rewards of preference pairs
  summarised for notebook 05's claims;
- ``step_rewards_and_labels``, ``format_final_accuracy``, ``rows_by_problem``: notebook 05's greedy solutions before
  and after training, scored step by step and laid out for its heatmap (``before_after_report``: what its text
  reads off those pictures);
- ``first_error_hits`` (``_by_problem``), ``heatmap_summary``, ``format_heatmap_summary``: how often a PRM's first
  rejected step is the checker's first error, and its mean P(right) on right and wrong steps (notebook 05;
  ``heatmap_details``: the rows its text names); ``probability_text``: a P as every picture and line prints it;
- ``step_label_counts``: how many steps stepwise rows label, and the share right (the base rate);
- ``prm_report``: a PRM's held-out figures, tagged with the PRM that scored them; ``prm_reports_adapter_on_and_off``:
  with its adapter and zero-shot; ``prm_metrics``: the ``prm`` section of ``metrics.json`` notebook 02 records;
- ``prm_threshold``: notebook 02's first-error threshold for the PRM a later notebook loads, refused when that
  PRM was saved without it or with another;
- ``auroc_difference``: whether one score's AUROC beats another's beyond the noise of the held-out set
  (``outcome_auroc_differences``: notebook 03's three comparisons);
- ``orm_report``: notebook 03's held-out outcome AUROCs of an ORM (with its adapter and zero-shot), a PRM and the two
  combined, with the weight chosen on validation; ``orm_metrics``: the ``orm`` section of ``metrics.json`` it records.

What a trained policy's own implicit step rewards credit (notebook 05's credit assignment) is in ``credit``; the
pictures these feed are ``viz``'s.
"""

from __future__ import annotations

import math
import numbers
import os
import random
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from ..checks import finite_number, list_of, positive_int
from ..evaluation import (check_labels, check_same_shape, finite_scores, flat_scores_and_labels,
                          first_error_index, outcome_auroc, predict_first_error, process_reward_report,
                          step_auroc)
from ..reward_ensembles import CombinedRewardModel
from ..rewards import ProcessRewardModel, read_saved_config, sigmoid
from ..steps import DEFAULT_DELIMITER, extract_steps
from . import bestofn, runs
from .display_names import step_body


def step_auroc_by_position(step_scores, step_labels) -> list[dict]:
    """Step AUROC among the steps at each position k (1-based): ``[{"step", "n", "right", "auroc"}]``, where
    ``right`` is the share of right steps there and ``auroc`` is None when they are all right or all wrong. It
    says whether a PRM ranks steps within a position, not only by it (compare ``position_only_scores``)."""
    check_same_shape(step_scores, step_labels, "step_auroc_by_position")
    for i, labels in enumerate(step_labels):  # bool(None) would count a missing label as wrong, bool(0.7) as right
        check_labels(labels, "step_auroc_by_position", f"step_labels[{i}]")
    for i, scores in enumerate(step_scores):  # step_auroc would name a NaN by its index among one position's steps
        finite_scores(scores, "step_auroc_by_position", f"solution {i}, step")
    by_position: dict[int, tuple[list, list]] = {}
    for scores, labels in zip(step_scores, step_labels):
        for k, (r, y) in enumerate(zip(scores, labels)):
            by_position.setdefault(k + 1, ([], []))[0].append(r)
            by_position[k + 1][1].append(bool(y))
    return [{"step": k, "n": len(ys), "right": sum(ys) / len(ys),
             "auroc": step_auroc(rs, ys) if 0 < sum(ys) < len(ys) else None}
            for k, (rs, ys) in sorted(by_position.items())]


def format_auroc_by_position(rows) -> str:
    """Notebook 02's table of ``step_auroc_by_position``: per position the steps there, the share right and the
    AUROC ("—" where they are all right or all wrong)."""
    lines = ["step  n    right  AUROC"]
    for row in rows:
        shown = "  —" if row["auroc"] is None else f"{row['auroc']:.3f}"
        lines.append(f"{row['step']:4d} {row['n']:4d}  {row['right']:5.0%}  {shown}")
    return "\n".join(lines)


def step_calibration(step_rewards, step_labels, n_bins: int = 10) -> dict:
    """Can P = σ(reward) be read as a probability? Each step's P against its label (one list of each per
    solution), in ``n_bins`` equal-width bins of P (bin b holds b/n <= P < (b+1)/n; P = 1 falls in the last):
    ``{"bins": [{"low", "high", "count", "mean_p", "right_share"}], "ece", "brier", "steps", "mean_p",
    "right_share"}``, an empty bin's ``mean_p`` and ``right_share`` None (JSON, unlike NaN, records them).

    ``ece``: the expected calibration error Σ_b n_b/N · |right_share_b − mean_p_b| (Guo et al. 2017,
    arXiv:1706.04599), 0 when in every bin the share of right steps is the P the PRM gives them; ``brier``: the mean
    of (P − y)² over the steps (y = 1 for a right step), which counts ranking and calibration together. A PRM can
    rank steps well (a high step AUROC) and still be miscalibrated: its P is then a score to threshold, not a
    probability to read."""
    step_rewards = list_of(step_rewards, "step_calibration: step_rewards", "step reward lists (one per solution)")
    step_labels = list_of(step_labels, "step_calibration: step_labels", "step label lists (one per solution)")
    check_same_shape(step_rewards, step_labels, "step_calibration", "step rewards")
    n_bins = positive_int(n_bins, "n_bins", "step_calibration")
    rewards, labels = [], []
    for i, (r, y) in enumerate(zip(step_rewards, step_labels)):
        check_labels(y, "step_calibration", f"step_labels[{i}]")  # bool(None) would count a missing label as wrong
        rewards += finite_scores(r, "step_calibration", f"solution {i}, reward")  # a NaN would fall in no bin
        labels += [bool(v) for v in y]
    if not rewards:
        raise ValueError("step_calibration: no steps (every solution's reward and label lists are empty)")
    p, y = sigmoid(np.asarray(rewards)), np.asarray(labels, dtype=float)
    in_bin = np.minimum((p * n_bins).astype(int), n_bins - 1)
    bins = []
    for b in range(n_bins):
        inside = in_bin == b
        count = int(inside.sum())
        bins.append({"low": b / n_bins, "high": (b + 1) / n_bins, "count": count,
                     "mean_p": float(p[inside].mean()) if count else None,
                     "right_share": float(y[inside].mean()) if count else None})
    ece = sum(b["count"] / len(p) * abs(b["right_share"] - b["mean_p"]) for b in bins if b["count"])
    return {"bins": bins, "ece": float(ece), "brier": float(np.mean((p - y) ** 2)), "steps": len(p),
            "mean_p": float(p.mean()), "right_share": float(y.mean())}


def format_step_calibration(calibration: dict) -> str:
    """Notebook 02's table of ``step_calibration``: per bin of P its steps, their mean P and the share right ("—" in
    an empty bin), then the ECE and Brier score, and the mean P of all the steps beside the share right."""
    lines = ["P bin       steps   mean P   right"]
    for b in calibration["bins"]:
        shown = (f"{b['mean_p']:7.3f}  {b['right_share']:6.1%}" if b["count"] else f"{'—':>7s}  {'—':>6s}")
        lines.append(f"{b['low']:.2f}–{b['high']:.2f}  {b['count']:6,d}  {shown}")
    lines.append(f"ECE {calibration['ece']:.3f}, Brier {calibration['brier']:.3f} on {calibration['steps']:,} steps "
                 f"(mean P {calibration['mean_p']:.3f}; {calibration['right_share']:.1%} of them right)")
    return "\n".join(lines)


def format_step_rewards(prompt: str, steps, rewards, labels, threshold: float) -> str:
    """One solution, step by step, as notebook 02 prints it under its heatmap: the prompt, then each step (its
    paragraph breaks shown as " | ") with its reward, P = σ(reward) and the checker's label, marked where the PRM at
    ``threshold`` (a step is accepted when its reward is at least that) disagrees with the checker.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    check_same_shape([rewards], [labels], "format_step_rewards", "rewards")
    check_labels(labels, "format_step_rewards", "labels")
    threshold = finite_number(threshold, "threshold", "format_step_rewards")  # NaN: every right step "disagreed"
    steps = list_of(steps, "format_step_rewards: steps", "steps (str)")  # one str: a step per character
    if len(steps) != len(rewards):
        raise ValueError(f"format_step_rewards: {len(steps)} steps but {len(rewards)} rewards")
    lines = [prompt]
    for step, r, ok in zip(steps, rewards, labels):
        flag = "" if (r >= threshold) == bool(ok) else "   <- disagrees with the checker"
        text = step.strip().replace("\n\n", " | ")
        lines.append(f"{text:45s} reward {r:+6.2f}  P {probability_text(sigmoid(r)):7s}  "
                     f"gold {'right' if ok else 'WRONG'}{flag}")
    return "\n".join(lines)


def position_only_scores(step_counts: Sequence[int]) -> list[list[float]]:
    """Step scores of a baseline that sees only where a step sits: ``-k`` for the k-th step (k from 1).

    One mistake makes every later step wrong, so later steps are wrong more often and this baseline
    alone has a step AUROC well above 0.5. A PRM has learnt to check steps only by what it scores above it.
    """
    for i, n in enumerate(step_counts):
        positive_int(n, f"solution {i}'s step count", "position_only_scores")
    return [[-float(k) for k in range(1, n + 1)] for n in step_counts]


def base_rate_loss(labels) -> float:
    """Cross-entropy (nats) of always predicting the base rate p of ``labels`` (bools, flat or one list per
    solution): ``−(p·ln p + (1−p)·ln(1−p))``. A verifier's training loss that sits on this line has learned
    nothing but the label frequency."""
    rows = list(labels)
    nested = [isinstance(row, (list, tuple, np.ndarray)) for row in rows]  # numpy rows too
    if any(nested):  # one list per solution
        for i, row in enumerate(rows):
            if not nested[i]:
                raise ValueError(f"base_rate_loss: labels[{i}] is a single label among lists of labels; pass one "
                                 "list per solution or one flat list")
            check_labels(row, "base_rate_loss", f"labels[{i}]")  # bool(None) would count as wrong
        flat = [bool(y) for row in rows for y in row]
    else:
        check_labels(rows, "base_rate_loss", "labels")
        flat = [bool(y) for y in rows]
    if not flat:
        raise ValueError("base_rate_loss: no labels")
    p = sum(flat) / len(flat)
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def step_label_counts(step_labels) -> dict:
    """``{"steps", "right_share"}``: how many steps stepwise rows label (one list of labels per solution) and the
    share labelled right. The share is the base rate a PRM's training loss starts from (``base_rate_loss``); the
    rest, the wrong steps, are what it has to learn to find."""
    rows = list_of(step_labels, "step_label_counts: step_labels", "label lists (one per solution)")
    flat = []
    for i, labels in enumerate(rows):  # bool(None) would count a missing label as wrong
        labels = list_of(labels, f"step_label_counts: step_labels[{i}]", "step labels (one list per solution)")
        check_labels(labels, "step_label_counts", f"step_labels[{i}]")
        flat += [bool(y) for y in labels]
    if not flat:
        raise ValueError("step_label_counts: no step labels")
    return {"steps": len(flat), "right_share": sum(flat) / len(flat)}


def curve_ends(history, keys, n: int = 5, by_round: bool = False) -> dict:
    """What a training curve did, in numbers a notebook's text can quote and a test can check: the mean of the first
    and of the last ``n`` logged values of each key in a trainer's ``log_history`` (entries without the key or with a
    non-finite value skipped), ``{key: {"start", "first", "last", "end", "logged", "jitter"}}`` (``start``/``end``:
    the first and last value; ``logged``: how many; ``jitter``: the mean change from one logged value to the next,
    how much the curve jumps); a key never logged is left out. ``by_round``: the same for each round of
    an on-policy history (entries tagged ``round`` by ``onpolicy.extend_logs``), ``{str(round): {key: ...}}``, or
    ``{"all": ...}`` for a history with no round tags. An empty history is refused (it recorded ``{"all": {}}``)."""
    history, keys = list_of(history, "curve_ends: history", "log entries"), list_of(keys, "curve_ends: keys", "keys")
    if not history:
        raise ValueError("curve_ends: history is empty: no training logged (a policy's log_history.json is written "
                         "by notebook 04: run it again)")
    n = positive_int(n, "n", "curve_ends")
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise ValueError(f"curve_ends: history[{i}] is a {type(entry).__name__}, not a log entry (a dict)")
    if by_round:
        untagged = [i for i, e in enumerate(history) if "round" not in e]
        if len(untagged) == len(history):  # one trainer's own log (notebook 04 with no on-policy rounds)
            return {"all": curve_ends(history, keys, n)}
        if untagged:
            raise ValueError(f"curve_ends: by_round needs every entry tagged with its round or none; entry "
                             f"{untagged[0]} is not")
        return {str(r): curve_ends([e for e in history if e["round"] == r], keys, n)
                for r in dict.fromkeys(e["round"] for e in history)}
    ends = {}
    for key in keys:
        values = [float(e[key]) for e in history if isinstance(e.get(key), numbers.Real)
                  and not isinstance(e[key], bool) and math.isfinite(e[key])]
        if values:
            ends[key] = {"start": values[0], "first": float(np.mean(values[:n])), "last": float(np.mean(values[-n:])),
                         "end": values[-1], "logged": len(values),
                         "jitter": float(np.mean(np.abs(np.diff(values)))) if len(values) > 1 else 0.0}
    return ends


def rejected_right_answers(min_rewards, labels, threshold: float, prompts=None, completions=None,
                           has_wrong_step=None) -> dict:
    """Of the solutions with a right final answer, how many a PRM rejects (its weakest step's reward,
    ``min_rewards``: ``orm_report``'s "PRM (min)", below ``threshold``, e.g. notebook 02's first-error threshold): it
    ranks those with the wrong ones, so its ROC curve as a judge of the answer flattens at that share of the right
    solutions. With ``has_wrong_step(prompt, completion)``
    (a step checker, e.g. ``toyworld.has_wrong_step``), also the share of those rejected right answers that did slip
    on the way (lucky: the PRM is right to reject the step) and of the accepted ones.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    rewards = [finite_number(r, f"min_rewards[{i}]", "rejected_right_answers") for i, r in enumerate(min_rewards)]
    check_labels(labels, "rejected_right_answers", "labels")
    threshold = finite_number(threshold, "threshold", "rejected_right_answers")
    if len(rewards) != len(labels):
        raise ValueError(f"rejected_right_answers: {len(rewards)} rewards for {len(labels)} labels; need one reward "
                         "per label")
    right = [i for i, y in enumerate(labels) if y]
    rejected = [i for i in right if rewards[i] < threshold]  # no right answer (a weak policy): the shares are None
    out = {"right": len(right), "rejected": len(rejected), "rejected_share": len(rejected) / len(right) if right
           else None}
    if has_wrong_step is not None:
        prompts, completions = (list_of(x, f"rejected_right_answers: {name}", "texts")
                                for x, name in ((prompts, "prompts"), (completions, "completions")))
        if not len(prompts) == len(completions) == len(labels):
            raise ValueError("rejected_right_answers: prompts, completions and labels differ in length")
        slipped = {i: bool(has_wrong_step(prompts[i], completions[i])) for i in right}
        accepted = [i for i in right if rewards[i] >= threshold]
        out["slipped_among_rejected"] = sum(slipped[i] for i in rejected) / len(rejected) if rejected else None
        out["slipped_among_accepted"] = sum(slipped[i] for i in accepted) / len(accepted) if accepted else None
    return out


def format_rejected_right_answers(r: dict) -> str:
    """Notebook 03's line on ``rejected_right_answers``."""
    line = f"the PRM rejects {r['rejected']} of the {r['right']} right answers"
    shares = [r.get(k) for k in ("slipped_among_rejected", "slipped_among_accepted")]
    if None not in shares:
        line += f"; {shares[0]:.0%} of those slipped on the way, against {shares[1]:.0%} of the ones it accepts"
    return line


def _check_rows(rows, keys, who: str) -> list:
    """Stepwise rows (dicts, a ``datasets.Dataset`` row by row) as a list, each with ``keys``: a missing key is
    named here rather than as a bare KeyError inside a comprehension."""
    rows = list_of(rows, f"{who}: rows", "stepwise rows (dicts)")
    for i, row in enumerate(rows):
        missing = [k for k in keys if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{who}: rows[{i}] has no {missing[0]!r} (need {', '.join(keys)})")
        if "labels" in keys:  # bool(None) would count a missing label as wrong
            check_labels(row["labels"], who, f"rows[{i}]['labels']")
    return rows


def _heatmap_order(labels) -> tuple:
    """Solutions with an error first, by where it is (the staircase), then the right ones by length. Keyed by
    position alone, a right one would sort among the wrong ones whose first error lies at its length."""
    labels = list(labels)
    return all(labels), labels.index(False) if False in labels else len(labels)


def heatmap_indices(step_labels, n: int, seed: int = 0) -> list[int]:
    """Indices of the ``n`` solutions (``step_labels``: one list of labels per solution) that the heatmaps of
    notebooks 02 and 05 draw, in drawing order.

    After a ``seed``-ed shuffle, half of them have an error (fewer when there are not enough) and the rest are right;
    with too few of either kind the other fills up, so that ``n`` are drawn whenever there are ``n``. Both kinds are
    needed: a PRM is judged on the wrong steps it catches and on the right ones it leaves alone. They are then sorted
    so that a good PRM draws a staircase (``_heatmap_order``)."""
    step_labels = list_of(step_labels, "heatmap_indices: step_labels", "lists of step labels (one per solution)")
    positive_int(n, "n", "heatmap_indices")
    for i, labels in enumerate(step_labels):  # bool(None) would count a missing label as wrong
        check_labels(labels, "heatmap_indices", f"step_labels[{i}]")
    order = list(range(len(step_labels)))
    random.Random(seed).shuffle(order)
    wrong = [i for i in order if not all(step_labels[i])]
    right = [i for i in order if all(step_labels[i])]
    half = min(len(wrong), n // 2)
    picked = wrong[:half] + right[:n - half]
    picked = (picked + wrong[half:])[:n]  # too few right ones: fill up with wrong ones
    picked.sort(key=lambda i: _heatmap_order(step_labels[i]))
    return picked


def heatmap_rows(rows, n: int, seed: int = 0) -> list[dict]:
    """The ``n`` stepwise rows (``prompt``, ``completions``, ``labels``) of notebook 05's heatmap, in drawing order:
    those ``heatmap_indices`` picks by their labels."""
    rows = _check_rows(rows, ("labels",), "heatmap_rows")
    positive_int(n, "n", "heatmap_rows")
    return [rows[i] for i in heatmap_indices([r["labels"] for r in rows], n, seed)]


def verdict_row_labels(step_labels) -> list[str]:
    """Heatmap row names: "✓ k" for a solution whose steps are all right, "✗ k" otherwise (k counts from 1), so
    that the text can name a row the reader finds at once."""
    step_labels = list_of(step_labels, "verdict_row_labels: step_labels", "lists of step labels")
    for i, labels in enumerate(step_labels):
        check_labels(labels, "verdict_row_labels", f"step_labels[{i}]")
    return [("✓ " if all(labels) else "✗ ") + str(i + 1) for i, labels in enumerate(step_labels)]


def pick_before_after_problem(problems, before, after) -> tuple[int, str]:
    """The problem notebook 05 draws before and after training: the first one the trained policy fixed (its
    ``before`` solution wrong, its ``after`` one right), else the first whose solution changed, else the first.
    A fixed problem shows what training bought; failing that, any change is more telling than none.

    Returns ``(index, how)``; ``how`` ("fixed by", "changed by" or "same after") reads before the policy's name."""
    problems = list_of(problems, "pick_before_after_problem: problems", "problems")
    if not problems:
        raise ValueError("pick_before_after_problem: problems is empty")
    before, after = (list_of(sols, f"pick_before_after_problem: {name}", "solutions (one str per problem)")
                     for name, sols in (("before", before), ("after", after)))
    for name, sols in (("before", before), ("after", after)):
        if len(sols) != len(problems):  # zip would cut the longer list silently
            raise ValueError(f"pick_before_after_problem: {name} has {len(sols)} solutions for {len(problems)} "
                             "problems (need one per problem)")
    fixed = [i for i, p in enumerate(problems) if not p.is_correct(before[i]) and p.is_correct(after[i])]
    changed = [i for i in range(len(problems)) if before[i] != after[i]]
    return (fixed or changed or [0])[0], "fixed by" if fixed else "changed by" if changed else "same after"


def explorer_problems(rows, n: int) -> tuple[list[str], list[list[str]], list[list]]:
    """The ``n`` problems of notebook 05's explorer, from stepwise rows (``prompt``, ``completions``, ``labels``):
    the prompts with the most distinct label patterns among their solutions (ties: the first seen), because a
    problem whose solutions go wrong in different places shows the most of what the PRM does.

    Returns ``(prompts, solutions, labels)``: the prompts, and per prompt its solutions and their step labels,
    in the rows' order."""
    rows = _check_rows(rows, ("prompt", "completions", "labels"), "explorer_problems")
    positive_int(n, "n", "explorer_problems")
    by_prompt: dict[str, list] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row)
    prompts = sorted(by_prompt, key=lambda p: -len({tuple(r["labels"]) for r in by_prompt[p]}))[:n]
    return (prompts, [[r["completions"] for r in by_prompt[p]] for p in prompts],
            [[r["labels"] for r in by_prompt[p]] for p in prompts])


def chosen_vs_rejected_summary(chosen_rewards, rejected_rewards, rejected_step_labels=None,
                               rejected_solutions=None, *, threshold: float | None = None,
                               delimiter: str = DEFAULT_DELIMITER) -> dict:
    """Per-step rewards of preference pairs -> ``ranked_by_min`` (share of pairs whose chosen solution's weakest
    step beats the rejected one's), ``mean_gap_by_step`` (mean chosen minus mean rejected reward at each step
    position that both sides reach, in any pair), and what notebook 05 reads off its plot: ``chosen_by_step``
    (the chosen curve: mean reward and number of chosen solutions at each position) and, given the rejected
    solutions' mistake-made-here labels (False = a mistake) and the PRM's ``threshold`` (log-odds, notebook 02's:
    a step below it is rejected), ``mistake_rewards`` (the × dots, lowest first) and ``threshold``. Given the
    rejected solutions' texts too (split into steps at the PRM's own ``delimiter``, ``prm.config.step_delimiter``,
    as ``bestofn.score_candidates`` splits them for the rewards), ``missed_mistakes``: the mistakes the PRM accepts
    (reward at or above ``threshold``), each ``{"pair", "step"}`` (1-based, as the plot names pairs), ``"text"``
    (the step, stripped) and ``"reward"``."""
    if len(chosen_rewards) != len(rejected_rewards) or not chosen_rewards:
        raise ValueError(f"chosen_vs_rejected_summary: {len(chosen_rewards)} chosen and {len(rejected_rewards)} "
                         "rejected reward lists (need equal, > 0)")
    for i, (c, r) in enumerate(zip(chosen_rewards, rejected_rewards)):  # min() of an empty list says not which pair
        if not len(c) or not len(r):
            raise ValueError(f"chosen_vs_rejected_summary: pair {i}: the {'chosen' if not len(c) else 'rejected'} "
                             "solution has no step rewards")
        for side, rewards in (("chosen", c), ("rejected", r)):  # a NaN's min() compares false: a pair misranked
            for k, x in enumerate(rewards):
                finite_number(x, f"pair {i}: {side} step {k}'s reward", "chosen_vs_rejected_summary")
    ranked = sum(min(c) > min(r) for c, r in zip(chosen_rewards, rejected_rewards)) / len(chosen_rewards)
    depth = min(max(map(len, chosen_rewards)), max(map(len, rejected_rewards)))
    gaps = [float(np.mean([c[k] for c in chosen_rewards if len(c) > k])
                  - np.mean([r[k] for r in rejected_rewards if len(r) > k])) for k in range(depth)]
    summary = {"ranked_by_min": ranked, "mean_gap_by_step": gaps, "chosen_by_step": [
        {"mean": float(np.mean(at)), "solutions": len(at)} for k in range(max(map(len, chosen_rewards)))
        for at in [[c[k] for c in chosen_rewards if len(c) > k]]]}
    if rejected_step_labels is not None:  # one bool a step: a probability label would be read by its truth value
        if threshold is None:  # a mistake missed or caught: at the PRM's threshold, as every other picture reads it
            raise ValueError("chosen_vs_rejected_summary: rejected_step_labels needs threshold, the PRM's (log-odds, "
                             "e.g. diagnostics.prm_threshold(prm, run)): a mistake below it is rejected, one at or "
                             "above it missed")
        summary["threshold"] = finite_number(threshold, "threshold", "chosen_vs_rejected_summary")
        check_same_shape(rejected_rewards, rejected_step_labels, "chosen_vs_rejected_summary", "rewards")
        for i, labels in enumerate(rejected_step_labels):
            check_labels(labels, "chosen_vs_rejected_summary", f"rejected_step_labels[{i}]")
        summary["mistake_rewards"] = sorted(float(r) for rewards, labels in zip(rejected_rewards, rejected_step_labels)
                                            for r, right in zip(rewards, labels) if not right)
    if rejected_solutions is not None:  # the × dots the PRM accepts, by their text: what notebook 05's text names
        if rejected_step_labels is None:
            raise ValueError("chosen_vs_rejected_summary: rejected_solutions needs rejected_step_labels (which steps "
                             "are mistakes)")
        texts = list_of(rejected_solutions, "chosen_vs_rejected_summary: rejected_solutions", "solutions (str)")
        if len(texts) != len(rejected_rewards):
            raise ValueError(f"chosen_vs_rejected_summary: {len(rejected_rewards)} rejected reward lists but "
                             f"{len(texts)} rejected_solutions")
        summary["missed_mistakes"] = []
        for i, (text, rewards, labels) in enumerate(zip(texts, rejected_rewards, rejected_step_labels)):
            if len(steps := extract_steps(text, delimiter)) != len(rewards):  # a step named by the wrong text
                raise ValueError(f"chosen_vs_rejected_summary: pair {i}: the rejected solution has {len(steps)} "
                                 f"steps but {len(rewards)} rewards")
            summary["missed_mistakes"] += [{"pair": i + 1, "step": k + 1, "text": steps[k].strip(), "reward": float(r)}
                                           for k, (r, right) in enumerate(zip(rewards, labels))
                                           if not right and r >= threshold]
    return summary


def format_chosen_vs_rejected(summary: dict, n_pairs: int) -> str:
    """Notebook 05's lines under its chosen-vs-rejected plot, from ``chosen_vs_rejected_summary``: with its
    ``mistake_rewards``, a third line counts the mistakes (the × dots) the PRM rejects (below its ``threshold``) and
    those it misses (at or above it; how many of them even score above zero, P > 0.5); with its
    ``missed_mistakes``, one line under it for each missed one: its pair, step, P = σ(reward) and text."""
    lines = (f"the PRM (min over steps) ranks chosen above rejected in {summary['ranked_by_min']:.0%} of {n_pairs} "
             "pairs\nmean chosen minus mean rejected reward, by step: "
             + "  ".join(f"{g:+.2f}" for g in summary["mean_gap_by_step"]))
    mistakes = summary.get("mistake_rewards")
    if mistakes:
        threshold = summary["threshold"]
        missed = [r for r in mistakes if r >= threshold]
        lines += (f"\n{len(mistakes)} mistakes (x): {len(mistakes) - len(missed)} below the threshold "
                  f"(P < {probability_text(sigmoid(threshold))}), rejected; {len(missed)} at or above it, missed, "
                  f"{sum(r > 0 for r in missed)} of them above zero (P > 0.5)")
    for m in summary.get("missed_mistakes", ()):
        text = " | ".join(line.strip() for line in m["text"].splitlines() if line.strip())  # its answer line too
        lines += (f"\n  missed: pair {m['pair']}, step {m['step']} (reward {m['reward']:+.2f}, "
                  f"P {probability_text(sigmoid(m['reward']))}): {text}")
    return lines


def step_rewards_and_labels(prm, problems, solutions_by_name: dict) -> tuple[dict, dict]:
    """One solution per problem under each name (notebook 05: ``{"base": [...], "after": [...]}``, greedy) ->
    ``(rewards, labels)``, both ``{name: [one list per problem]}``: the PRM's step rewards and the checker's step
    labels (``bestofn.step_labels``: None where the task has no step checker). A solution the PRM cannot read
    (blank, or too long) has no steps: ``[]`` on both sides."""
    rewards, labels = {}, {}
    for name, solutions in solutions_by_name.items():
        solutions = list_of(solutions, f"step_rewards_and_labels: solutions_by_name[{name!r}]",
                            "solutions (str), one per problem")
        if len(solutions) != len(problems):  # zip would pair the first ones only
            raise ValueError(f"step_rewards_and_labels: {len(problems)} problems but {len(solutions)} solutions "
                             f"under {name!r} (need one per problem)")
        scored = bestofn.score_candidates(prm, problems, [[s] for s in solutions])
        rewards[name] = [row[0] or [] for row in scored]
        labels[name] = [bestofn.step_labels(p, s) if r else [] for p, s, r in zip(problems, solutions, rewards[name])]
    return rewards, labels


def format_final_accuracy(problems, solutions_by_name: dict) -> str:
    """Notebook 05's lines above its before/after heatmap: per name, the share of ``problems`` whose one solution
    under that name has the right final answer."""
    return "\n".join(f"{name:6s} final answer right on {bestofn.accuracy(problems, solutions):.0%} of these "
                     f"{len(problems)} problems" for name, solutions in solutions_by_name.items())


def rows_by_problem(rewards: dict, labels: dict) -> dict:
    """Notebook 05's before/after heatmap rows from ``step_rewards_and_labels``: problem by problem, one row per name
    in the order of ``rewards`` ("P1 base", "P1 after", "P2 base", ...). Returns ``{"rewards", "labels", "names"}``;
    ``labels`` is None where a row has none (a task without a step checker): the heatmap then marks no step."""
    names = list(rewards)
    if not names or set(labels) != set(names):
        raise ValueError(f"rows_by_problem: rewards for {names}, labels for {list(labels)} (need the same names)")
    sizes = {name: (len(rewards[name]), len(labels[name])) for name in names}
    if len({n for pair in sizes.values() for n in pair}) != 1:  # zip-like reading would drop problems silently
        raise ValueError(f"rows_by_problem: (rewards, labels) per name: {sizes} (need one per problem, equal)")
    order = [(name, i) for i in range(len(rewards[names[0]])) for name in names]
    row_labels = [labels[name][i] for name, i in order]
    return {"rewards": [rewards[name][i] for name, i in order],
            "labels": None if any(y is None for y in row_labels) else row_labels,
            "names": [f"P{i + 1} {name}" for name, i in order]}


def _step_number(index: int) -> int | None:
    """A 0-based step index (-1: none) as the pictures and texts count steps: 1-based, None for none."""
    return None if index < 0 else index + 1


def probability_text(p: float) -> str:
    """``p`` in two decimals, or in one significant digit within 0.01 of 0 or 1, as every picture and line prints a
    P: a threshold chosen on validation can be σ(-6) = 0.0025, and it, and the cells on both sides of it, must not
    all read 0.00."""
    if 0.01 <= p <= 0.99:
        return f"{p:.2f}"
    return f"{p:.1g}" if p < 0.5 or p >= 1 else f"1−{1 - p:.1g}"


def _threshold_probability(threshold, who: str) -> float:
    """A log-odds ``threshold`` checked, as the probability σ(threshold) that the pictures and reports show. NaN,
    and one so far out that σ rounds to 0 or 1 (no step, or every step, below it), are refused by name."""
    threshold = finite_number(threshold, "threshold", who)
    probability = sigmoid(threshold)
    if not 0 < probability < 1:
        raise ValueError(f"{who}: threshold {threshold!r} (log-odds) is P = {probability}: pass a log-odds threshold "
                         "whose σ lies strictly between 0 and 1")
    return probability


def first_rejected_steps(step_rewards, threshold: float) -> list[int | None]:
    """Each solution's first step the PRM rejects (reward < ``threshold``, ``predict_first_error``), counted from
    1 as the pictures count steps; None where it rejects none (notebook 05's explorer: its picture's problem).

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    _threshold_probability(threshold, "first_rejected_steps")
    step_rewards = list_of(step_rewards, "first_rejected_steps: step_rewards", "step reward lists (one per solution)")
    # finite_scores first: predict_first_error would name neither the function called nor the solution of a NaN
    return [_step_number(predict_first_error(finite_scores(rewards, "first_rejected_steps", f"solution {i}, step"),
                                             threshold)) for i, rewards in enumerate(step_rewards)]


def _solution_rows(step_rewards, step_labels, who: str) -> tuple[list[list[float]], list]:
    """``(rewards, labels)`` of the heatmap's solutions, checked for ``who``: as many of each, of equal lengths,
    labels bool or 0/1, rewards finite; no solutions at all (which read as "first error found in 0 of 0") and a
    solution without steps (an exact "hit": no step rejected, no error) are refused, as step_calibration refuses
    empty input."""
    step_rewards = list_of(step_rewards, f"{who}: step_rewards", "step reward lists (one per solution)")
    step_labels = list_of(step_labels, f"{who}: step_labels", "step label lists (one per solution)")
    check_same_shape(step_rewards, step_labels, who, "rewards")
    if not step_rewards:
        raise ValueError(f"{who}: no solutions (step_rewards and step_labels are empty)")
    for i, labels in enumerate(step_labels):  # bool(None) would count a missing label as wrong
        check_labels(labels, who, f"step_labels[{i}]")
        if not len(labels):
            raise ValueError(f"{who}: solution {i} has no steps (no rewards, no labels): a PRM cannot have found "
                             "its first error; leave it out")
    return [finite_scores(r, who, f"solution {i}, step") for i, r in enumerate(step_rewards)], step_labels


def _first_error_hits(step_rewards, step_labels, threshold: float, who: str) -> tuple[int, list, list]:
    """``(hits, rewards, labels)``: the solutions and threshold checked for ``who`` (``_solution_rows``), and how
    many of them the PRM's first predicted error is the checker's."""
    rewards, labels = _solution_rows(step_rewards, step_labels, who)
    _threshold_probability(threshold, who)
    hits = sum(predict_first_error(r, threshold) == first_error_index(y) for r, y in zip(rewards, labels))
    return hits, rewards, labels


def before_after_report(solutions_by_name: dict, rewards: dict, labels: dict, drawn: int,
                        delimiter: str = DEFAULT_DELIMITER) -> dict:
    """What notebook 05's text reads off its before/after pictures, from one solution per problem under each name
    (``{"base": [...], "after": [...]}``) and their ``step_rewards_and_labels``, the texts split into steps at the
    PRM's own ``delimiter`` (``prm.config.step_delimiter``, as ``bestofn.score_candidates`` splits them for the
    rewards; a drawn solution with as many rewards as it has steps, or none, unscored):

    - ``first_error``: per name, each problem's first wrong step by the checker (1-based, None for none), as the
      heatmap's × marks show it; None where the task has no step checker;
    - ``drawn``: the problem of the bar chart (``drawn``, 0-based, as ``pick_before_after_problem`` gives it):
      its ``problem`` number (1-based, as the pictures name it, "P1"), the first ``step`` at which its solutions
      differ (None: they do not) and, per name, that step's first line without its "Step k:" (``<name>_step``)
      and the PRM's reward of it (``<name>_reward``); None where a solution has no such step or reward."""
    names = list(solutions_by_name)
    if not names or set(rewards) != set(names) or set(labels) != set(names):
        raise ValueError(f"before_after_report: solutions for {names}, rewards for {list(rewards)}, labels for "
                         f"{list(labels)} (need the same names)")
    positive_int(drawn, "drawn", "before_after_report", minimum=0)  # True was problem 2, 1.0 a TypeError
    for name in names:
        if not 0 <= drawn < len(solutions_by_name[name]):
            raise ValueError(f"before_after_report: problem {drawn} drawn, {len(solutions_by_name[name])} solutions "
                             f"under {name!r}")
    no_checker = any(y is None for name in names for y in labels[name])
    first_error = None if no_checker else {name: [_step_number(first_error_index(y)) for y in labels[name]]
                                           for name in names}
    steps = {name: extract_steps(solutions_by_name[name][drawn], delimiter) for name in names}
    for name in names:  # split elsewhere than the PRM split it: a step read beside another step's reward
        if len(rewards[name][drawn]) and len(rewards[name][drawn]) != len(steps[name]):
            raise ValueError(f"before_after_report: problem {drawn + 1}'s solution under {name!r} has "
                             f"{len(steps[name])} steps at delimiter {delimiter!r} but {len(rewards[name][drawn])} "
                             "rewards: pass the PRM's own delimiter (prm.config.step_delimiter)")
    depth = max(map(len, steps.values()))
    differ = next((k for k in range(depth) if len({s[k] if k < len(s) else None for s in steps.values()}) > 1), -1)
    out = {"problem": drawn + 1, "step": _step_number(differ)}
    for name in names:
        text, reward = steps[name], rewards[name][drawn]
        out[f"{name}_step"] = (step_body(text[differ]).strip().splitlines() or [""])[0] if 0 <= differ < len(text) \
            else None
        out[f"{name}_reward"] = float(reward[differ]) if 0 <= differ < len(reward) else None
    return {"first_error": first_error, "drawn": out}


def first_error_hits(step_rewards, step_labels, threshold: float) -> int:
    """How many solutions the PRM's first predicted error (the first step with ``reward < threshold``,
    ``predict_first_error``) is exactly the checker's first error (-1 = none, on both sides): the test of a
    PRM that a reader can check row by row in notebook 05's pictures.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    return _first_error_hits(step_rewards, step_labels, threshold, "first_error_hits")[0]


def first_error_hits_by_problem(rewards_by_problem, labels_by_problem, threshold: float) -> tuple[int, int]:
    """``first_error_hits`` over the solutions of several problems (one list of per-solution rewards and one of
    labels per problem, as the explorer holds them): ``(hits, solutions)``.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    if len(rewards_by_problem) != len(labels_by_problem):
        raise ValueError(f"first_error_hits_by_problem: rewards_by_problem has {len(rewards_by_problem)} problems, "
                         f"labels_by_problem {len(labels_by_problem)}")
    for i, (rows, labels) in enumerate(zip(rewards_by_problem, labels_by_problem)):
        if len(rows) != len(labels):  # flattened, they would pair one problem's rewards with another's labels
            raise ValueError(f"first_error_hits_by_problem: problem {i} has {len(rows)} solutions of rewards and "
                             f"{len(labels)} of labels")
    hits, _, labels = _first_error_hits([r for rows in rewards_by_problem for r in rows],
                                        [y for rows in labels_by_problem for y in rows], threshold,
                                        "first_error_hits_by_problem")
    return hits, len(labels)


def heatmap_summary(step_rewards, step_labels, threshold: float) -> dict:
    """What notebook 05 says of its heatmap: ``solutions``, ``first_error_matched`` (``first_error_hits`` at
    ``threshold``: the solutions whose first rejected step is the checker's first error, a right one whose steps the
    PRM all accepts included) and the PRM's mean P(right) on the right and on the wrong steps, ``mean_p_right`` and
    ``mean_p_wrong`` (None when no step has that label: an undefined mean, which JSON, unlike NaN, records).
    The two means say whether the PRM separates right from wrong steps at all, whatever the threshold.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    matched, rewards, labels = _first_error_hits(step_rewards, step_labels, threshold, "heatmap_summary")
    probs = sigmoid(np.concatenate([np.asarray(r, dtype=float) for r in rewards]))
    gold = np.concatenate([np.asarray(y, dtype=bool) for y in labels])
    return {"solutions": len(rewards), "first_error_matched": int(matched),
            "mean_p_right": float(probs[gold].mean()) if gold.any() else None,
            "mean_p_wrong": float(probs[~gold].mean()) if (~gold).any() else None}


def heatmap_details(step_rewards, step_labels, threshold: float, row_labels=None) -> dict:
    """What notebook 05's text reads off its heatmap, row by row (``row_labels``, as ``verdict_row_labels``
    names them, "✗ 2"; default "1", "2", ...); steps count from 1.

    threshold: log-odds (a probability p is log(p / (1 - p))); the P it is compared with below is σ(threshold).

    - ``misread``: each solution whose first rejected step (P < σ(``threshold``)) is not the checker's first error,
      as ``{"row", "first_error", "first_rejected"}`` (None: none) with the PRM's P at each of the two
      (``p_first_error``, ``p_first_rejected``; None: none), in the rows' order;
    - ``accepted_after_error``: the ``rows`` where a step after the first mistake comes back to P >= σ(``threshold``),
      and the lowest and highest P of those steps (``p_min``, ``p_max``; None where there is none);
    - ``p_right_by_step``: per step position, the lowest and highest P on a right step (``[min, max]``; None where
      no solution has a right step there): how sure the PRM is of right steps, early and late."""
    step_rewards, step_labels = _solution_rows(step_rewards, step_labels, "heatmap_details")
    names = [str(i + 1) for i in range(len(step_rewards))] if row_labels is None else list(row_labels)
    if len(names) != len(step_rewards):
        raise ValueError(f"heatmap_details: {len(names)} row labels for {len(step_rewards)} solutions")
    p_threshold = _threshold_probability(threshold, "heatmap_details")  # compared with each step's P below
    misread, rows_back, p_back, p_right = [], [], [], {}
    for name, rewards, labels in zip(names, step_rewards, step_labels):
        probs = [float(p) for p in sigmoid(np.asarray(rewards, dtype=float).reshape(-1))]
        error, rejected = first_error_index(labels), predict_first_error(rewards, threshold)
        if error != rejected:
            misread.append({"row": name, "first_error": _step_number(error), "first_rejected": _step_number(rejected),
                            "p_first_error": probs[error] if error >= 0 else None,
                            "p_first_rejected": probs[rejected] if rejected >= 0 else None})
        back = [p for p in probs[error + 1:] if p >= p_threshold] if error >= 0 else []
        if back:
            rows_back.append(name)
            p_back += back
        for k, (p, right) in enumerate(zip(probs, labels)):
            if right:
                p_right.setdefault(k, []).append(p)
    depth = max(map(len, step_rewards), default=0)
    return {"misread": misread,
            "accepted_after_error": {"rows": rows_back, "p_min": min(p_back, default=None),
                                     "p_max": max(p_back, default=None)},
            "p_right_by_step": [[min(p_right[k]), max(p_right[k])] if k in p_right else None for k in range(depth)]}


def format_heatmap_summary(summary: dict, threshold: float, threshold_source: str = "the threshold") -> str:
    """Notebook 05's two lines under its heatmap, from ``heatmap_summary`` ("nan" for an undefined mean).
    ``threshold_source``: where the threshold comes from, printed beside it as P = σ(threshold).

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    def p(x):
        return float("nan") if x is None else x

    probability = _threshold_probability(threshold, "format_heatmap_summary")
    return (f"mean P(right): {p(summary['mean_p_right']):.2f} on right steps, "
            f"{p(summary['mean_p_wrong']):.2f} on wrong steps\n"
            f"first rejected step (P < {probability_text(probability)}, {threshold_source}) = the checker's first "
            f"error (none = none) in {summary['first_error_matched']} of {summary['solutions']} solutions")


def prm_report(prm, val, test) -> dict:
    """``prm``'s held-out figures (``evaluation.process_reward_report``: test step AUROC, first-error F1 at the
    validation threshold) on ``val`` and ``test`` (stepwise rows: ``prompt``, ``completions``, ``labels``), with the
    rewards it scored (``"val_rewards"``, ``"test_rewards"``) and ``"scored_by"``: a weak reference to ``prm``, with
    which ``prm_metrics(prm=...)`` refuses a report of a PRM trained before (a training cell run again after this
    one)."""
    val_rewards = prm.score_solutions(val["prompt"], val["completions"])
    test_rewards = prm.score_solutions(test["prompt"], test["completions"])
    return {**process_reward_report(val_rewards, val["labels"], test_rewards, test["labels"]),
            "val_rewards": val_rewards, "test_rewards": test_rewards, "scored_by": weakref.ref(prm)}


def prm_reports_adapter_on_and_off(prm, val, test, rewards=None) -> dict[str, dict]:
    """A LoRA-trained PRM's held-out figures (``evaluation.process_reward_report``: test step AUROC, first-error F1
    at the validation threshold) with its adapter (``"after QLoRA"``) and with it switched off (``"zero-shot"``:
    the reward base alone), each with its ``"test_rewards"`` (for ``auroc_difference``). ``val``, ``test``:
    stepwise rows (``prompt``, ``completions``, ``labels``); ``rewards``: the PRM's ``(val, test)`` rewards with its
    adapter on, when already scored (they are not scored again)."""
    def scored():
        return [prm.score_solutions(split["prompt"], split["completions"]) for split in (val, test)]

    adapter_on = scored() if rewards is None else rewards
    with prm.model.disable_adapter():
        zero_shot = scored()
    return {name: {**process_reward_report(v, val["labels"], t, test["labels"]), "test_rewards": t}
            for name, (v, t) in (("after QLoRA", adapter_on), ("zero-shot", zero_shot))}


def _check_scored_by(report: dict, model, who: str, kind: str, remake: str) -> None:
    """``report`` (``prm_report`` / ``orm_report``) must hold ``model``'s figures (the one trained last): its
    ``"scored_by"`` weak reference names the model that scored it; a training cell run again after the scoring cell
    leaves a report of the model before."""
    scored_by = report.get("scored_by")
    if scored_by is None:
        raise ValueError(f"{who}: report does not say which {kind} scored it: make it with {remake}")
    if scored_by() is not model:
        low = kind.lower()
        raise ValueError(f"{who}: report holds the figures of another {kind} than {low}, the one trained last (the "
                         f"training cell ran again after the scoring cell): run the scoring cell (report = {remake}) "
                         "and the cells after it again, then this one")


def prm_metrics(report: dict, *, position_auroc: float, by_position, figures: dict, qlora_gain: dict,
                train_seconds: float, reward_base, prm=None, calibration: dict | None = None) -> dict:
    """The ``prm`` section of ``metrics.json`` that notebook 02 records and notebooks 03-06 and the README read: the
    test figures of ``report`` (``evaluation.process_reward_report``: step AUROC, first-error F1 and its validation
    threshold) beside the position-only baseline's AUROC and ``by_position`` (``step_auroc_by_position``), the
    training time (to 0.1 s), the reward base's folder name, its zero-shot figures and ``qlora_gain``
    (``auroc_difference``). ``figures``: ``prm_reports_adapter_on_and_off`` by base, ``"reward base"`` and, when the
    control was trained, ``"plain policy base (control)"``, whose step AUROC and F1 are recorded as ``control``,
    ``zero_shot`` and ``after_qlora`` (no ``control`` without one). ``calibration``: ``step_calibration`` of the
    test rewards, recorded as ``calibration`` (notebook 02's metrics cell replaces the whole section: a calibration
    recorded only by the cell after it was dropped by a rerun of the metrics cell).

    ``prm``: the PRM whose figures these must be (notebook 02's, trained last): ``report`` must be its
    ``prm_report`` and the reward base's ``"after QLoRA"`` rewards in ``figures`` those of ``report``, else a
    ``ValueError`` says to score it again (None: not checked)."""
    if "reward base" not in figures:
        raise ValueError(f"prm_metrics: figures need the 'reward base' reports, got {list(figures)}")
    if prm is not None:
        _check_scored_by(report, prm, "prm_metrics", "PRM", "diagnostics.prm_report(prm, val, test)")
        if figures["reward base"].get("after QLoRA", {}).get("test_rewards", report["test_rewards"]) != \
                report["test_rewards"]:
            raise ValueError("prm_metrics: figures['reward base'] holds another PRM's rewards than report (scored "
                             "before the scoring cell ran again): run the cell that compares the reward base "
                             "zero-shot and after QLoRA (prm_reports_adapter_on_and_off) again, then this one")
    headline = lambda r: {k: r[k] for k in ("step_auroc", "f1")}  # what the README and the texts quote
    metrics = {"step_auroc": report["step_auroc"], "position_baseline_auroc": position_auroc,
               "step_auroc_by_position": by_position, "first_error_f1": report["f1"],
               "first_error_threshold": report["threshold"], "train_seconds": round(train_seconds, 1),
               "reward_base": Path(reward_base).name, "zero_shot": headline(figures["reward base"]["zero-shot"]),
               "qlora_minus_zero_shot": qlora_gain}
    control = figures.get("plain policy base (control)")
    if control is not None:
        names = {"zero-shot": "zero_shot", "after QLoRA": "after_qlora"}  # JSON keys, as the README's checks read them
        metrics["control"] = {names[name]: headline(r) for name, r in control.items()}
    if calibration is not None:
        metrics["calibration"] = calibration
    return metrics


def prm_threshold(prm, run: str | os.PathLike) -> float:
    """Notebook 02's first-error threshold (log-odds, chosen on validation) for ``prm``: the PRM a later notebook
    loaded, or the folder it is saved in (checked before it is loaded: notebook 03 checks it before it trains its
    ORM). Notebook 02's training cell saves its PRM as soon as it is trained, without a threshold; its scoring cell
    (``report = diagnostics.prm_report(...)``) chooses the threshold and saves the PRM again with it, and its metrics
    cell records it as ``prm.first_error_threshold`` in ``run/metrics.json``. A PRM saved without one
    (``config.first_error_threshold`` None: 02's training cell ran again, its scoring cell not), or with another than
    the one recorded (its scoring cell ran again, its metrics cell not), is refused: the later notebook paired it with
    an older PRM's threshold. Returns the threshold; none recorded is a ``FileNotFoundError`` naming notebook 02
    (``runs.recorded``)."""
    recorded = runs.recorded(run, "prm.first_error_threshold", "02_process_reward_model")
    if isinstance(prm, (str, os.PathLike)):
        where = Path(prm)
        own = read_saved_config(where / ProcessRewardModel.config_file, "process reward model").get(
            "first_error_threshold")
    else:
        where, own = "the PRM loaded", prm.config.first_error_threshold
    again = ("run notebook 02 from its scoring cell (report = diagnostics.prm_report(...), which saves the PRM again "
             "with its threshold) through its metrics cell (runs.update_metrics, which records the threshold)")
    if own is None:
        raise ValueError(f"prm_threshold: {where} was saved without its first-error threshold (config "
                         f"first_error_threshold None: notebook 02's training cell saved it): {again}")
    if recorded is None or not math.isclose(own, recorded, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"prm_threshold: {where} has first-error threshold {own!r}, but {Path(run) / 'metrics.json'} "
                         f"records prm.first_error_threshold {recorded!r}, another PRM's: {again}")
    return float(own)


def choose_process_weight(prm_scores, orm_scores, labels, grid=tuple(np.round(np.linspace(0, 1, 11), 2))):
    """The PRM's weight ``w`` in the combined score ``w·PRM + (1 − w)·ORM`` with the best outcome AUROC on these
    (validation) solutions, and the AUROC of every weight of ``grid`` (ties: the first, the smaller weight)."""
    def checked(scores, name):  # outcome_auroc would name a NaN "score 1" of the weighted sum, not the input's
        return np.asarray(finite_scores(scores, "choose_process_weight", f"{name}: solution"))

    prm_scores, orm_scores = checked(prm_scores, "prm_scores"), checked(orm_scores, "orm_scores")
    if prm_scores.shape != orm_scores.shape:
        raise ValueError(f"choose_process_weight: {prm_scores.size} PRM scores but {orm_scores.size} ORM scores")
    aurocs = {float(w): outcome_auroc(w * prm_scores + (1 - w) * orm_scores, labels) for w in grid}
    return max(aurocs, key=aurocs.get), aurocs


def auroc_difference(scores_a, scores_b, labels, groups=None, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """AUROC of scores A minus that of scores B on the same examples, with a bootstrap interval.

    Scores and labels as ``evaluation.step_auroc`` takes them: per solution (lists of step scores and labels) or
    flat. ``groups``: a key per solution (per flat example), e.g. its prompt. A resample draws whole groups with
    replacement, because a problem's solutions, and a solution's steps, share its difficulty: they are not
    independent examples. Both AUROCs are computed on every resample, so what A and B have in common cancels;
    the interval is the percentile interval of the resampled differences (Efron and Tibshirani 1993). Resamples
    that hold one class only are drawn again. Returns ``{"difference", "low", "high"}`` (AUROC units)."""
    def auroc(y, s):  # the Mann-Whitney form (ties count a half), as sklearn's, without its per-call checks: 15x faster
        n_right = y.sum()
        return (rankdata(s)[y].sum() - n_right * (n_right + 1) / 2) / (n_right * (len(y) - n_right))

    positive_int(n_boot, "n_boot", "auroc_difference")  # 0 raised numpy's IndexError, True drew one resample
    positive_int(seed, "seed", "auroc_difference", minimum=0)  # None drew unseeded resamples, True seeded 1
    confidence = finite_number(confidence, "confidence", "auroc_difference")
    if not 0 < confidence < 1:  # 95 (a percentage) raised numpy's "Quantiles must be in the range [0, 1]"
        raise ValueError(f"auroc_difference: confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    nested = len(labels) > 0 and isinstance(labels[0], (list, tuple, np.ndarray))
    # each side checked as step_auroc checks it: shapes, finite scores, labels bool or 0/1, both classes
    a, y = flat_scores_and_labels(scores_a, labels, "auroc_difference (scores A)")
    b, _ = flat_scores_and_labels(scores_b, labels, "auroc_difference (scores B)")
    sizes = [len(row) for row in labels] if nested else [1] * len(labels)
    keys = list(range(len(labels))) if groups is None else list(groups)
    if len(keys) != len(labels):
        raise ValueError(f"auroc_difference: {len(keys)} groups for {len(labels)} solutions")
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    per_example = np.repeat([ids[k] for k in keys], sizes)
    members = [np.flatnonzero(per_example == g) for g in range(len(ids))]
    rng, diffs, draws = np.random.default_rng(seed), [], 0
    while len(diffs) < n_boot:
        draws += 1
        if draws > 10 * n_boot:
            raise ValueError("auroc_difference: too few resamples hold both right and wrong examples")
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        if y[idx].all() or not y[idx].any():
            continue
        diffs.append(auroc(y[idx], a[idx]) - auroc(y[idx], b[idx]))
    low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"difference": float(auroc(y, a) - auroc(y, b)), "low": float(low), "high": float(high)}


def outcome_auroc_differences(scores: dict, zero_shot_scores, labels, *, groups=None, seed: int = 0) -> dict:
    """Notebook 03's gaps between outcome AUROCs, each with its bootstrap interval (``auroc_difference``, redrawing
    whole ``groups``, e.g. the problems, with all their solutions): is a gap larger than the test set's noise?
    ``combined_minus_orm`` (what adding the PRM brings), ``orm_minus_prm_min`` (the ORM's lead as a judge of the
    answer) and ``qlora_minus_zero_shot`` (what QLoRA added to the ORM). ``scores``: per solution, by name
    (``"ORM"``, ``"PRM (min)"``, ``"combined"``); ``zero_shot_scores``: the ORM's with its adapter off."""
    missing = [name for name in ("ORM", "PRM (min)", "combined") if name not in scores]
    if missing:
        raise ValueError(f"outcome_auroc_differences: scores lack {missing}, got {list(scores)}")
    compared = {"combined_minus_orm": (scores["combined"], scores["ORM"]),
                "orm_minus_prm_min": (scores["ORM"], scores["PRM (min)"]),
                "qlora_minus_zero_shot": (scores["ORM"], zero_shot_scores)}
    return {name: auroc_difference(a, b, labels, groups=groups, seed=seed) for name, (a, b) in compared.items()}


def orm_report(orm, prm, val, test, process_weight: float | None = None, *, groups=None, seed: int = 0) -> dict:
    """Notebook 03's held-out figures: a LoRA-trained ``orm`` beside ``prm`` (its solution reward, its steps'
    aggregate: ``min`` in notebook 03) and the two combined (``CombinedRewardModel``: ``w·PRM + (1 − w)·ORM``).
    ``val``, ``test``: outcome rows (``prompt``, ``completion``, ``label``). Both splits are scored by both models,
    and the test split again by the ORM with its adapter switched off (the reward base alone, zero-shot). The PRM's
    weight ``w`` is ``process_weight``, or, when None, the one with the best validation AUROC on a grid 0, 0.1, ..., 1
    (``choose_process_weight``; every weight's AUROC is ``"val_auroc_by_weight"``). Returns, on the test split:
    ``"scores"`` (numpy arrays by name, ``"ORM"``, ``"PRM (min)"`` and ``"combined"``), their ``"aurocs"``,
    ``"zero_shot_scores"``, ``"zero_shot_auroc"``, ``"labels"`` and ``"differences"`` (``outcome_auroc_differences``
    of these scores, bootstrapped over whole ``groups``, e.g. the test prompts, with ``seed``); and
    ``"process_weight"``, ``"combined"`` (the ``CombinedRewardModel``, to save) and ``"scored_by"``: a weak reference
    to ``orm``, which ``orm_metrics(orm=...)`` checks. A ``prm`` that aggregates its steps otherwise than by
    ``min`` (``prm.config.aggregation``) is refused: every name and record here says min."""
    if prm.config.aggregation != "min":  # "PRM (min)" and prm_min_auroc would name another score
        raise ValueError(f"orm_report: the PRM aggregates its steps by {prm.config.aggregation!r}, but its scores "
                         "here are named and recorded as min (\"PRM (min)\", prm_min_auroc): set "
                         "prm.config.aggregation = 'min'")
    if process_weight is not None:
        process_weight = finite_number(process_weight, "process_weight", "orm_report")
        if not 0 <= process_weight <= 1:
            raise ValueError(f"orm_report: process_weight must be in [0, 1] (the ORM's weight is 1 minus it), got "
                             f"{process_weight!r}")
    splits = (("validation", val), ("test", test))
    orm_scores = {name: np.array(orm.score_solutions(split["prompt"], split["completion"])) for name, split in splits}
    prm_scores = {name: np.array(prm.solution_rewards(split["prompt"], split["completion"])) for name, split in splits}
    with orm.model.disable_adapter():  # the reward base alone, before QLoRA
        zero_shot_scores = np.array(orm.score_solutions(test["prompt"], test["completion"]))
    best_weight, val_auroc = choose_process_weight(prm_scores["validation"], orm_scores["validation"], val["label"])
    weight = float(best_weight if process_weight is None else process_weight)
    combined = CombinedRewardModel(prm, orm, process_weight=weight, outcome_weight=1 - weight)
    labels = np.array(test["label"])
    # the combined model's score from its parts' rewards above, by the formula its score_solutions uses
    scores = {"ORM": orm_scores["test"], "PRM (min)": prm_scores["test"],
              "combined": np.array(combined.combine(prm_scores["test"], orm_scores["test"]))}
    return {"scores": scores, "aurocs": {name: outcome_auroc(s, labels) for name, s in scores.items()},
            "zero_shot_scores": zero_shot_scores, "zero_shot_auroc": outcome_auroc(zero_shot_scores, labels),
            "labels": labels, "val_auroc_by_weight": val_auroc, "process_weight": weight, "combined": combined,
            "differences": outcome_auroc_differences(scores, zero_shot_scores, labels, groups=groups, seed=seed),
            "scored_by": weakref.ref(orm)}


def orm_metrics(report: dict, *, rejected: dict, train_seconds: float, orm=None) -> dict:
    """The ``orm`` section of ``metrics.json`` that notebook 03 records and notebook 06 and the README read: the test
    AUROCs of ``report`` (``orm_report``: the ORM's, zero-shot and after QLoRA, the PRM's and the combined model's)
    and the combined model's PRM weight, beside its ``"differences"`` (the gaps with their intervals), ``rejected``
    (``rejected_right_answers``) and the training time (to 0.1 s).

    ``orm``: the ORM whose figures these must be (notebook 03's, trained last): ``report`` must be its
    ``orm_report``, else a ``ValueError`` says to score it again (None: not checked)."""
    if orm is not None:
        _check_scored_by(report, orm, "orm_metrics", "ORM", "diagnostics.orm_report(...)")
    aurocs = report["aurocs"]
    return {"auroc": aurocs["ORM"], "prm_min_auroc": aurocs["PRM (min)"], "combined_auroc": aurocs["combined"],
            "combined_process_weight": report["process_weight"], "zero_shot_auroc": report["zero_shot_auroc"],
            "differences": report["differences"], "prm_rejected_right": rejected,
            "train_seconds": round(train_seconds, 1)}
