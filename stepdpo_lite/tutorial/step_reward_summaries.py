"""What the pictures of notebooks 02 and 05 draw of a PRM's step rewards, and what their text reads off them: the
choices and summaries are made here, so that a cell only calls and plots.

- ``heatmap_indices`` (``heatmap_rows``), ``verdict_row_labels``: the heatmaps' solutions, in drawing order, and
  their row names;
- ``pick_before_after_problem``, ``explorer_problems``: the problem notebook 05 draws before and after training,
  and its explorer's problems;
- ``chosen_vs_rejected_summary`` (``format_chosen_vs_rejected``): a PRM's step rewards of preference pairs
  summarised for notebook 05's claims;
- ``step_rewards_and_labels``, ``format_final_accuracy``, ``rows_by_problem``: notebook 05's greedy solutions before
  and after training, scored step by step and laid out for its heatmap (``before_after_report``: what its text
  reads off those pictures);
- ``first_error_hits`` (``_by_problem``), ``heatmap_summary``, ``format_heatmap_summary``: how often a PRM's first
  rejected step is the checker's first error, and its mean P(right) on right and wrong steps (notebook 05;
  ``heatmap_details``: the rows its text names; ``heatmap_named_rows``, ``format_heatmap_named_rows``: those of them
  notebook 02 prints step by step); ``first_rejected_steps``: each solution's first rejected step (the explorer's).

Neighbours: the reward-model baselines and figures beside these (and ``probability_text``, a P as every picture and
line prints it) are in ``diagnostics``; the ``metrics.json`` records of notebooks 02 and 03 in ``reward_reports``; a
trained policy's own credit per step in ``credit``; the pictures in ``viz``.
"""

from __future__ import annotations

import random

import numpy as np

from ..checks import finite_number, list_of, positive_int
from ..evaluation import check_labels, check_same_shape, finite_scores, first_error_index, predict_first_error
from ..rewards import sigmoid
from ..steps import DEFAULT_DELIMITER, extract_steps
from . import bestofn
from .diagnostics import format_step_rewards, probability_text
from .display_names import step_body


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
                             "e.g. reward_reports.prm_threshold(prm, run)): a mistake below it is rejected, one at or "
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
    """Notebook 05's lines under its chosen-vs-rejected plot, from ``chosen_vs_rejected_summary``: the share ranked
    right, the mean gap by step and (with its ``chosen_by_step``) the chosen curve; with its ``mistake_rewards``, a
    line counts the mistakes (the × dots) the PRM rejects (below its ``threshold``) and those it misses (at or above
    it; how many of them even score above zero, P > 0.5); with its ``missed_mistakes``, one line under it for each
    missed one: its pair, step, P = σ(reward) and text."""
    lines = (f"the PRM (min over steps) ranks chosen above rejected in {summary['ranked_by_min']:.0%} of {n_pairs} "
             "pairs\nmean chosen minus mean rejected reward, by step: "
             + "  ".join(f"{g:+.2f}" for g in summary["mean_gap_by_step"]))
    if chosen := summary.get("chosen_by_step"):  # the chosen curve the text reads, on how many solutions at each step
        lines += "\nmean chosen reward (solutions), by step: " + "  ".join(
            f"{c['mean']:+.2f} ({c['solutions']})" for c in chosen)
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


def heatmap_named_rows(details: dict, row_labels) -> list[int]:
    """Which heatmap rows notebook 02 prints step by step, as indices into ``row_labels`` (the names
    ``heatmap_details`` gave the rows of ``details``): the first row where a step after the mistake comes back above
    the tick, then each misread one, each row once, in that order; where the text names none, the heatmap's first
    row (one solution read step by step still shows what a reward and its label look like)."""
    names = list_of(row_labels, "heatmap_named_rows: row_labels", "row names (str)")
    if not names:
        raise ValueError("heatmap_named_rows: row_labels is empty: the heatmap has no row to print")
    if len(set(names)) != len(names):  # a name would stand for two rows: the one printed could be the wrong one
        raise ValueError("heatmap_named_rows: row_labels must name each row once, got a name twice")
    if not isinstance(details, dict) or "misread" not in details or "accepted_after_error" not in details:
        raise ValueError("heatmap_named_rows: details must be what heatmap_details returns (with 'misread' and "
                         "'accepted_after_error')")
    named = dict.fromkeys(details["accepted_after_error"]["rows"][:1] + [row["row"] for row in details["misread"]])
    unknown = [name for name in named if name not in names]
    if unknown:  # details of another heatmap, or names given to heatmap_details other than these
        raise ValueError(f"heatmap_named_rows: details name row {unknown[0]!r}, which row_labels do not hold")
    return [names.index(name) for name in named] or [0]


def format_heatmap_named_rows(details: dict, rows, step_rewards, threshold: float, row_labels) -> str:
    """Notebook 02's lines under its heatmap: each row ``heatmap_named_rows`` picks, step by step
    (``diagnostics.format_step_rewards``, headed by the row's name and its prompt), a blank line between rows.

    rows: the heatmap's stepwise rows in drawing order (``prompt``, ``completions``, ``labels``), ``step_rewards``
    their rewards and ``row_labels`` their names, each in the same order; threshold: log-odds."""
    rows = _check_rows(rows, ("prompt", "completions", "labels"), "format_heatmap_named_rows")
    step_rewards = list_of(step_rewards, "format_heatmap_named_rows: step_rewards", "lists of step rewards")
    names = list_of(row_labels, "format_heatmap_named_rows: row_labels", "row names (str)")
    if not len(rows) == len(step_rewards) == len(names):  # a row printed beside another's rewards
        raise ValueError(f"format_heatmap_named_rows: {len(rows)} rows, {len(step_rewards)} lists of step rewards "
                         f"and {len(names)} row labels: need one of each per row")
    return "\n\n".join(format_step_rewards(f"{names[k]}: {rows[k]['prompt']}", rows[k]["completions"],
                                           step_rewards[k], rows[k]["labels"], threshold)
                       for k in heatmap_named_rows(details, names))


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
