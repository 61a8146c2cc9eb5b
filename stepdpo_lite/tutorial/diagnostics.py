"""What the notebooks measure of a reward model beyond the library's metrics (``stepdpo_lite.evaluation``):
baselines that show what it has *not* learnt, and figures of its per-step values and training curves.

- ``position_only_scores``: a baseline that knows only where a step sits (later steps are wrong more often);
- ``step_auroc_by_position`` (``format_auroc_by_position``): does a PRM rank steps *within* a position, not only
  by it;
- ``format_step_rewards``: one solution's step rewards beside the checker's labels (notebook 02);
- ``step_calibration`` (``format_step_calibration``): whether a PRM's P = σ(reward) reads as a probability: the
  share of right steps per bin of P, the expected calibration error and the Brier score (notebook 02);
- ``base_rate_loss``: the loss of always predicting the label frequency (a flat training curve on it learnt nothing);
- ``step_label_counts``: how many steps stepwise rows label, and the share right (the base rate);
- ``rejected_right_answers`` (``format_rejected_right_answers``): the right answers a PRM rejects, and how many of
  them slipped (notebook 03's ROC);
- ``curve_ends``: where a trainer's logged curves started and ended (what notebooks 04 and 05 say their curves show);
- ``probability_text``: a P as every picture and line prints it.

Neighbours: what the pictures of notebooks 02 and 05 draw of a PRM's step rewards, and the summaries their text
reads off them, are in ``step_reward_summaries``; the ``metrics.json`` records of notebooks 02 and 03 (and the
statistics they rest on, ``auroc_difference``) in ``reward_reports``; what a trained policy's own implicit step
rewards credit (notebook 05's credit assignment) in ``credit``; the pictures these feed in ``viz``.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from ..checks import finite_number, list_of, positive_int
from ..evaluation import check_labels, check_same_shape, finite_scores, step_auroc
from ..rewards import sigmoid


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
    paragraph breaks shown as " | ") with its reward, P = σ(reward) and its label (the gold checker's on the toy
    world, notebook 01's Monte-Carlo estimate on GSM8K), marked where the PRM at ``threshold`` (a step is accepted
    when its reward is at least that) disagrees with the label.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    check_same_shape([rewards], [labels], "format_step_rewards", "rewards")
    check_labels(labels, "format_step_rewards", "labels")
    threshold = finite_number(threshold, "threshold", "format_step_rewards")  # NaN: every right step "disagreed"
    steps = list_of(steps, "format_step_rewards: steps", "steps (str)")  # one str: a step per character
    if len(steps) != len(rewards):
        raise ValueError(f"format_step_rewards: {len(steps)} steps but {len(rewards)} rewards")
    lines = [prompt]
    for step, r, ok in zip(steps, rewards, labels):
        flag = "" if (r >= threshold) == bool(ok) else "   <- disagrees with the label"
        text = step.strip().replace("\n\n", " | ")
        lines.append(f"{text:45s} reward {r:+6.2f}  P {probability_text(sigmoid(r)):7s}  "
                     f"label {'right' if ok else 'WRONG'}{flag}")
    return "\n".join(lines)


def probability_text(p: float) -> str:
    """``p`` in two decimals, or in one significant digit within 0.01 of 0 or 1, as every picture and line prints a
    P: a threshold chosen on validation can be σ(-6) = 0.0025, and it, and the cells on both sides of it, must not
    all read 0.00."""
    if 0.01 <= p <= 0.99:
        return f"{p:.2f}"
    return f"{p:.1g}" if p < 0.5 or p >= 1 else f"1−{1 - p:.1g}"


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


def format_curve_ends(curves, n: int = 5, by_round: bool = False) -> str:
    """``curve_ends``' figures of several runs, ``{run: curve_ends(history, keys, n, by_round)}``, as a table the
    notebooks print under their smoothed plots: a row per run and curve (and round, with ``by_round``), its first
    logged value and the means of its first and of its last ``n``."""
    if not isinstance(curves, dict) or not curves:
        raise ValueError(f"format_curve_ends: curves must be a non-empty {{run: curve_ends(...)}} dict, "
                         f"got {curves!r:.60}")
    n = positive_int(n, "n", "format_curve_ends")
    rows = []
    for name, ends in curves.items():
        for r, round_ends in ends.items() if by_round and isinstance(ends, dict) else [("", ends)]:
            if not isinstance(round_ends, dict) or not all(isinstance(e, dict) and "first" in e
                                                           for e in round_ends.values()):
                other = "curve_ends(...) without by_round: by_round=False" if by_round else \
                    "curve_ends(..., by_round=True): by_round=True"
                raise ValueError(f"format_curve_ends: curves[{name!r}] is not curve_ends' figures as by_round="
                                 f"{by_round} reads them (for {other})")
            rows += [(str(name), r, key, e["start"], e["first"], e["last"]) for key, e in round_ends.items()]
    if not rows:  # curve_ends leaves out a key never logged
        raise ValueError("format_curve_ends: no run logged any of the curves: nothing to print")
    run_w = max(len(row[0]) for row in [("run",), *rows]) + 2
    key_w = max(len(row[2]) for row in [("", "", "curve"), *rows]) + 2
    round_head, round_cell = ("round  ", "{:<7}") if by_round else ("", "{:.0}")
    lines = [f"{'run':<{run_w}}{round_head}{'curve':<{key_w}}{'start':>7}{f'first {n}':>9}{f'last {n}':>9}"]
    lines += [f"{name:<{run_w}}{round_cell.format(r)}{key:<{key_w}}{start:>7.2f}{first:>9.2f}{last:>9.2f}"
              for name, r, key, start, first, last in rows]
    return "\n".join(lines)


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
