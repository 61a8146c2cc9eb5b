"""diagnostics: the notebooks' summaries refuse labels and rewards they would misread."""
import math
import random

import numpy as np
import pytest

from stepdpo_lite.evaluation import outcome_auroc, process_reward_report
from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import diagnostics, reward_reports, step_reward_summaries
from stepdpo_lite.tutorial.diagnostics import base_rate_loss
from stepdpo_lite.tutorial.step_reward_summaries import chosen_vs_rejected_summary


def test_chosen_vs_rejected_summary_names_the_pair_without_rewards():
    with pytest.raises(ValueError, match="pair 1: the chosen solution has no step rewards"):
        chosen_vs_rejected_summary([[1.0], []], [[0.0], [1.0]])
    with pytest.raises(ValueError, match="pair 0: the rejected solution has no step rewards"):
        chosen_vs_rejected_summary([[1.0]], [[]])


def test_base_rate_loss_takes_numpy_rows_and_refuses_what_is_not_a_label():
    assert base_rate_loss([np.array([True, False]), np.array([1, 0])]) == pytest.approx(math.log(2))
    assert base_rate_loss(np.array([True, False])) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match=r"base_rate_loss: labels\[1\]\[0\] must be a bool or 0/1, got None"):
        base_rate_loss([[True], [None]])
    with pytest.raises(ValueError, match=r"base_rate_loss: labels\[1\] must be a bool or 0/1, got None"):
        base_rate_loss([True, None])
    with pytest.raises(ValueError, match=r"labels\[0\] is a single label among lists"):
        base_rate_loss([True, [False]])


REWARDS = [[2.0, 1.0, -4.0], [3.0, -5.0], [1.0, 2.0]]  # first predicted error at P < 0.1: steps 2, 1, none
LABELS = [[True, True, False], [True, True], [True, True]]  # first errors: step 2, none, none
P10, P01 = math.log(0.1 / 0.9), math.log(0.01 / 0.99)  # the log-odds thresholds of P 0.1 and P 0.01


def test_first_error_hits_count_exact_matches_of_the_first_error():
    assert step_reward_summaries.first_error_hits(REWARDS, LABELS, P10) == 2  # solution 2's false alarm is a miss
    # sigmoid(-4) = 0.018 is no longer below 0.01: solution 1's error is missed too; sigmoid(-5) = 0.007 still is
    assert step_reward_summaries.first_error_hits(REWARDS, LABELS, P01) == 1
    assert step_reward_summaries.first_error_hits_by_problem([REWARDS[:2], REWARDS[2:]], [LABELS[:2], LABELS[2:]],
                                                     P10) == (2, 3)
    # log-odds, as first_error_report's: -2.0 (P 0.12) was refused as "no probability"; 0.1 was read as P 0.1
    assert step_reward_summaries.first_error_hits(REWARDS, LABELS, -2.0) == 2
    # read as P 0.1: no step below
    assert step_reward_summaries.first_error_hits([[0.5, -0.5]], [[True, False]], 0.1) == 1
    for bad in (float("nan"), 40.0):  # σ(40) rounds to 1: every step rejected
        with pytest.raises(ValueError, match="first_error_hits: threshold"):
            step_reward_summaries.first_error_hits(REWARDS, LABELS, bad)
    with pytest.raises(ValueError, match="first_error_hits: solution 1 has 2 rewards and 3 labels"):
        step_reward_summaries.first_error_hits(REWARDS, [LABELS[0], LABELS[0], LABELS[2]], P10)
    with pytest.raises(ValueError, match="problem 0 has 2 solutions of rewards and 1 of labels"):
        step_reward_summaries.first_error_hits_by_problem([REWARDS[:2]], [LABELS[:1]], P10)
    with pytest.raises(ValueError, match="rewards_by_problem has 1 problems, labels_by_problem 2"):
        step_reward_summaries.first_error_hits_by_problem([REWARDS], [LABELS, LABELS], P10)


def test_heatmap_summary_and_its_lines():
    summary = step_reward_summaries.heatmap_summary(REWARDS, LABELS, P10)
    probs = 1 / (1 + np.exp(-np.array([2.0, 1.0, -4.0, 3.0, -5.0, 1.0, 2.0])))
    right = np.array([True, True, False, True, True, True, True])
    assert summary == {"solutions": 3, "first_error_matched": 2, "mean_p_right": float(probs[right].mean()),
                       "mean_p_wrong": float(probs[~right].mean())}
    assert step_reward_summaries.format_heatmap_summary(summary, P10) == (
        "mean P(right): 0.70 on right steps, 0.02 on wrong steps\n"
        "first rejected step (P < 0.10, the threshold) = the checker's first error (none = none) in 2 of 3 solutions")


def test_the_heatmap_summary_says_matched_not_found_a_right_solution_counting_too():
    """"first error found exactly ... in 2 of 2 solutions" of a wrong and a right solution: the right one has no
    error to find; what is counted is the first rejected step matching the first error, none matching none."""
    summary = step_reward_summaries.heatmap_summary([[-5.0, -5.0], [3.0, 3.0]], [[False, False], [True, True]], P10)
    assert summary["first_error_matched"] == 2 and "first_error_found" not in summary
    assert step_reward_summaries.format_heatmap_summary(summary, P10).splitlines()[1] == (
        "first rejected step (P < 0.10, the threshold) = the checker's first error (none = none) in 2 of 2 solutions")


def test_thresholds_far_from_one_half_print_with_a_significant_digit():
    """σ(-6) = 0.0025 printed as "P < 0.00", as if no step could be rejected (the heatmaps' cells kept a digit)."""
    assert [diagnostics.probability_text(p) for p in (0.0, 0.00247, 0.01, 0.5, 0.99, 0.999, 1.0)] == [
        "0", "0.002", "0.01", "0.50", "0.99", "1−0.001", "1"]
    summary = step_reward_summaries.heatmap_summary(REWARDS, LABELS, -6.0)
    assert "first rejected step (P < 0.002, the threshold)" in step_reward_summaries.format_heatmap_summary(summary,
                                                                                                       -6.0)
    pairs = chosen_vs_rejected_summary([[1.0]], [[-7.0, 0.0]], [[True, False]], threshold=-6.0)
    assert "below the threshold (P < 0.002), rejected" in step_reward_summaries.format_chosen_vs_rejected(pairs, 1)
    all_right = step_reward_summaries.heatmap_summary(REWARDS[1:], LABELS[1:], P10)
    assert all_right["mean_p_wrong"] is None  # JSON records None; NaN it would not
    assert "nan on wrong steps" in step_reward_summaries.format_heatmap_summary(all_right, P10)
    with pytest.raises(ValueError, match=r"step_labels\[0\]\[0\] must be a bool or 0/1, got None"):
        step_reward_summaries.heatmap_summary([[1.0]], [[None]], P10)


def test_notebook_05s_explorer_scores_through_bestofn_score_candidates():
    """diagnostics.step_rewards_by_problem rewrote bestofn.score_candidates (one scoring call, one warning, one bar),
    without its checks of a PRM's reward lists or of unreadable solutions."""
    import nbformat
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "05_step_reward_visualisation.ipynb"
    source = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    assert "explorer_rewards = bestofn.score_candidates(prm, explorer_prompts, explorer_sols)" in source
    assert not hasattr(diagnostics, "step_rewards_by_problem")


def test_format_auroc_by_position_is_notebook_02s_table():
    rows = diagnostics.step_auroc_by_position([[2.0, -1.0], [1.0, 0.5], [0.0]], [[True, False], [True, True], [False]])
    assert diagnostics.format_auroc_by_position(rows) == ("step  n    right  AUROC\n"
                                                         "   1    3    67%  1.000\n"
                                                         "   2    2    50%  1.000")
    assert diagnostics.format_auroc_by_position([{"step": 1, "n": 4, "right": 1.0, "auroc": None}]).endswith(
        "   1    4   100%    —")



def logit(p: float) -> float:
    return math.log(p / (1 - p))


CALIBRATION_REWARDS = [[logit(0.9), logit(0.8), logit(0.3)], [logit(0.6), logit(0.1)]]
CALIBRATION_LABELS = [[True, True, False], [0, 0]]


def test_step_calibration_bins_p_and_gives_the_ece_and_brier_score_by_hand():
    calibration = diagnostics.step_calibration(CALIBRATION_REWARDS, CALIBRATION_LABELS, n_bins=2)
    low, high = calibration["bins"]
    # P < 0.5: 0.3 and 0.1, both wrong; P >= 0.5: 0.9 and 0.8 right, 0.6 wrong
    assert (low["low"], low["high"], low["count"], high["count"]) == (0.0, 0.5, 2, 3)
    assert low["mean_p"] == pytest.approx(0.2) and low["right_share"] == 0
    assert high["mean_p"] == pytest.approx(2.3 / 3) and high["right_share"] == pytest.approx(2 / 3)
    # ECE = 2/5·|0 − 0.2| + 3/5·|2/3 − 2.3/3| = 0.08 + 0.06; Brier = (0.01 + 0.04 + 0.09 + 0.36 + 0.01) / 5
    assert calibration["ece"] == pytest.approx(0.14) and calibration["brier"] == pytest.approx(0.102)
    assert (calibration["steps"], calibration["right_share"]) == (5, 0.4)
    assert calibration["mean_p"] == pytest.approx(0.54)
    ten = diagnostics.step_calibration(CALIBRATION_REWARDS, CALIBRATION_LABELS)  # 10 bins: 5 of them empty
    assert [b["count"] for b in ten["bins"]] == [0, 1, 0, 1, 0, 0, 1, 0, 1, 1]
    assert ten["bins"][0] == {"low": 0.0, "high": 0.1, "count": 0, "mean_p": None, "right_share": None}
    # P = 0.5 opens the upper bin; P = σ(50) = 1.0 falls in the last one
    edges = diagnostics.step_calibration([[0.0, 50.0]], [[1, 1]], n_bins=2)
    assert [b["count"] for b in edges["bins"]] == [0, 2]


def test_step_calibration_refuses_what_it_would_misread():
    with pytest.raises(ValueError, match="step_calibration: solution 1 has 1 step rewards and 2 labels"):
        diagnostics.step_calibration([[1.0], [2.0]], [[True], [True, False]])
    with pytest.raises(ValueError, match="step_calibration: 2 solutions of step rewards but 1 of labels"):
        diagnostics.step_calibration([[1.0], [2.0]], [[True]])
    with pytest.raises(ValueError, match="step_calibration: solution 1, reward 0 must be a finite number, got nan"):
        diagnostics.step_calibration([[1.0], [float("nan")]], [[True], [False]])  # it fell in no bin
    for bad in (None, 0.7, 2, "True"):
        with pytest.raises(ValueError, match=r"step_calibration: step_labels\[0\]\[1\] must be a bool or 0/1"):
            diagnostics.step_calibration([[1.0, 2.0]], [[True, bad]])
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ValueError, match=r"step_calibration: n_bins must be an int >= 1"):
            diagnostics.step_calibration([[1.0]], [[True]], n_bins=bad)
    for rewards, labels in (([], []), ([[], []], [[], []])):
        with pytest.raises(ValueError, match="step_calibration: no steps"):
            diagnostics.step_calibration(rewards, labels)
    with pytest.raises(ValueError, match="step_calibration: step_rewards: expected a list"):
        diagnostics.step_calibration(None, [[True]])
    numpy_rows = diagnostics.step_calibration([np.array([2.0, -2.0])], [np.array([1, 0])], n_bins=np.int64(2))
    assert numpy_rows["steps"] == 2 and numpy_rows["right_share"] == 0.5


def test_format_step_calibration_is_notebook_02s_table():
    text = diagnostics.format_step_calibration(
        diagnostics.step_calibration(CALIBRATION_REWARDS, CALIBRATION_LABELS, n_bins=4))
    # ECE = (0.1 + 0.3 + 0.6 + 2 · 0.15) / 5
    assert text == ("P bin       steps   mean P   right\n"
                    "0.00–0.25       1    0.100    0.0%\n"
                    "0.25–0.50       1    0.300    0.0%\n"
                    "0.50–0.75       1    0.600    0.0%\n"
                    "0.75–1.00       2    0.850  100.0%\n"
                    "ECE 0.260, Brier 0.102 on 5 steps (mean P 0.540; 40.0% of them right)")
    empty_bin = diagnostics.format_step_calibration(diagnostics.step_calibration([[3.0]], [[True]], n_bins=2))
    assert "0.00–0.50       0        —       —" in empty_bin

def test_format_step_rewards_marks_where_the_prm_and_the_checker_disagree():
    text = diagnostics.format_step_rewards("Problem: start with 5.", ["Step 1: 5 + 9 = 14", "\n\nStep 2: 14 - 8 = 7",
                                                                       "\n\nStep 3: 7 + 6 = 13\n\nAnswer: 13"],
                                           [5.54, -5.53, -1.94], [True, False, False], threshold=-3.228)
    lines = text.splitlines()
    assert lines[0] == "Problem: start with 5."
    # within 0.01 of 0 or 1 a P keeps a significant digit (probability_text), as the heatmap above it prints it:
    # "P 1.00" and "P 0.00" beside cells that read 1−0.004 and 0.004
    assert lines[1] == f"{'Step 1: 5 + 9 = 14':45s} reward  +5.54  P 1−0.004  gold right"
    assert lines[2].endswith("P 0.004    gold WRONG")  # below the threshold, and wrong: they agree
    assert lines[3].startswith("Step 3: 7 + 6 = 13 | Answer: 13")  # one line: the answer after a bar
    assert lines[3].endswith("reward  -1.94  P 0.13     gold WRONG   <- disagrees with the checker")
    with pytest.raises(ValueError, match="format_step_rewards: 2 steps but 1 rewards"):
        diagnostics.format_step_rewards("p", ["a", "b"], [1.0], [True], 0.0)
    with pytest.raises(ValueError, match=r"format_step_rewards: labels\[0\] must be a bool or 0/1, got None"):
        diagnostics.format_step_rewards("p", ["a"], [1.0], [None], 0.0)


def test_format_chosen_vs_rejected_is_notebook_05s_two_lines():
    summary = chosen_vs_rejected_summary([[5.0, 4.0], [6.0]], [[1.0, -2.0], [-1.0]])
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 2) == (
        "the PRM (min over steps) ranks chosen above rejected in 100% of 2 pairs\n"
        "mean chosen minus mean rejected reward, by step: +5.50  +6.00")


def test_chosen_vs_rejected_summary_gives_the_chosen_curve_and_the_mistakes_dots():
    """What notebook 05's text reads off its plot: where the chosen curve goes (and on how many solutions) and how
    low the mistakes (the × dots: rejected steps labelled False) fall."""
    summary = chosen_vs_rejected_summary([[5.0, 4.0, -1.0], [6.0, 0.0]], [[1.0, -2.0], [-6.0]],
                                         rejected_step_labels=[[True, False], [False]], threshold=-3.0)
    assert summary["chosen_by_step"] == [{"mean": 5.5, "solutions": 2}, {"mean": 2.0, "solutions": 2},
                                         {"mean": -1.0, "solutions": 1}]
    assert summary["mistake_rewards"] == [-6.0, -2.0] and summary["threshold"] == -3.0
    assert "mistake_rewards" not in chosen_vs_rejected_summary([[1.0]], [[0.0]])  # no labels, no dots to read
    # a soft label (0.3: a PRM's probability) read by its truth value would count as right; a short list, zip-cut
    with pytest.raises(ValueError, match=r"rejected_step_labels\[1\]"):
        chosen_vs_rejected_summary([[1.0], [1.0]], [[0.0], [-1.0]], rejected_step_labels=[[False], [0.3]],
                                   threshold=0.0)
    with pytest.raises(ValueError, match="solution 0 has 2 rewards and 1 labels"):
        chosen_vs_rejected_summary([[1.0]], [[0.0, -3.0]], rejected_step_labels=[[True]], threshold=0.0)
    with pytest.raises(ValueError, match="rejected_step_labels needs threshold, the PRM's"):  # missed at which P?
        chosen_vs_rejected_summary([[1.0]], [[0.0]], rejected_step_labels=[[False]])
    with pytest.raises(ValueError, match="chosen_vs_rejected_summary: threshold must be a finite number"):
        chosen_vs_rejected_summary([[1.0]], [[0.0]], rejected_step_labels=[[False]], threshold=float("nan"))


def test_chosen_vs_rejected_summary_does_not_count_a_tie_of_weakest_steps_as_ranked():
    summary = chosen_vs_rejected_summary([[1.0, 2.0], [2.0]], [[1.0, 3.0], [0.0]])
    assert summary["ranked_by_min"] == 0.5


def test_heatmap_details_name_the_rows_the_text_reads_off():
    rewards, labels = REWARDS + [[-3.0, 0.0, -3.0]], LABELS + [[False] * 3]  # row 4: step 2 back to P 0.5
    details = step_reward_summaries.heatmap_details(rewards, labels, P10,
                                                    row_labels=["✗ 1", "✓ 2", "✓ 3", "✗ 4"])
    p = lambda x: float(1 / (1 + np.exp(-x)))
    assert details == {
        "misread": [{"row": "✓ 2", "first_error": None, "first_rejected": 2, "p_first_error": None,
                     "p_first_rejected": pytest.approx(p(-5.0))}],  # a false alarm at step 2
        "accepted_after_error": {"rows": ["✗ 4"], "p_min": 0.5, "p_max": 0.5},  # not row 1: no step after its error
        "p_right_by_step": [[pytest.approx(p(1.0)), pytest.approx(p(3.0))],
                            [pytest.approx(p(-5.0)), pytest.approx(p(2.0))], None]}  # no right step 3
    missed = step_reward_summaries.heatmap_details([[4.0, -4.0]], [[False, False]], P10)["misread"]
    assert missed == [{"row": "1", "first_error": 1, "first_rejected": 2, "p_first_error": pytest.approx(p(4.0)),
                       "p_first_rejected": pytest.approx(p(-4.0))}]
    with pytest.raises(ValueError, match="heatmap_details: 1 row labels for 3 solutions"):
        step_reward_summaries.heatmap_details(REWARDS, LABELS, P10, row_labels=["✗ 1"])
    with pytest.raises(ValueError, match=r"heatmap_details: step_labels\[0\]\[0\] must be a bool or 0/1, got None"):
        step_reward_summaries.heatmap_details([[1.0]], [[None]], P10)


def test_heatmap_details_count_only_steps_after_the_first_error_as_accepted_after_it():
    """The PRM accepts the first mistake itself (a miss, in ``misread``), then rejects the next step: no step after
    the error comes back above the threshold."""
    details = step_reward_summaries.heatmap_details([[2.0, 1.0, -5.0]], [[True, False, False]], -2.0)
    assert details["accepted_after_error"] == {"rows": [], "p_min": None, "p_max": None}
    assert details["misread"][0]["first_error"] == 2 and details["misread"][0]["first_rejected"] == 3


class StepCountPRM:
    """A PRM that gives step k of every solution the reward k (1-based); it never sees a blank solution. Solutions
    come as step lists (the kit's reward-model protocol, docs/method.md §3)."""

    def score_solutions(self, prompts, step_lists):
        assert all("".join(steps).strip() for steps in step_lists), "blank solutions must not be scored"
        return [[float(k) for k in range(1, len(steps) + 1)] for steps in step_lists]


# ----------------------------------------------------------------------------- what notebooks 02 and 05 pick to draw


def _stepwise_rows(n, seed=0):
    """``n`` stepwise rows with random labels as the checker writes them: right steps, then wrong from the first
    error on; prompts repeat so that a problem has several solutions."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k, first = int(rng.integers(1, 6)), int(rng.integers(0, 8))
        labels = [j < first for j in range(k)]
        rows.append({"prompt": f"problem {i % 7}", "completions": [f"Step {j + 1}: s{i}" for j in range(k)],
                     "labels": labels})
    return rows


def _heatmap_rows_as_notebook_05_picked_them(rows, n, seed):
    """Notebook 05's former in-cell selection, kept verbatim as the reference."""
    import random

    rows = list(rows)
    random.Random(seed).shuffle(rows)
    wrong = [r for r in rows if not all(r["labels"])]
    right = [r for r in rows if all(r["labels"])]
    half = min(len(wrong), n // 2)
    heat = wrong[:half] + right[:n - half]
    heat = (heat + wrong[half:])[:n]
    heat.sort(key=lambda r: (all(r["labels"]), r["labels"].index(False) if False in r["labels"] else len(r["labels"])))
    return heat


def test_heatmap_rows_pick_half_wrong_in_staircase_order_as_notebook_05_did():
    rows = _stepwise_rows(60)
    for n, seed in ((16, 0), (7, 3), (60, 1), (1, 2)):
        assert step_reward_summaries.heatmap_rows(rows, n, seed=seed) == _heatmap_rows_as_notebook_05_picked_them(
            rows, n, seed)
    heat = step_reward_summaries.heatmap_rows(rows, 16)
    firsts = [r["labels"].index(False) for r in heat if False in r["labels"]]
    assert len(firsts) == 8 and firsts == sorted(firsts)  # half with an error, as a staircase, first
    assert all(all(r["labels"]) for r in heat[8:])
    only_wrong = [r for r in rows if not all(r["labels"])][:5] + [r for r in rows if all(r["labels"])][:1]
    picked = step_reward_summaries.heatmap_rows(only_wrong, 6)
    assert sum(all(r["labels"]) for r in picked) == 1  # too few right: wrong ones fill up
    assert rows == _stepwise_rows(60)  # the caller's list is not shuffled
    for n in (0, 2.0, None):
        with pytest.raises(ValueError, match="heatmap_rows: n must be an int >= 1"):
            step_reward_summaries.heatmap_rows(rows, n)
    with pytest.raises(ValueError, match=r"heatmap_rows: rows\[1\] has no 'labels'"):
        step_reward_summaries.heatmap_rows([rows[0], {"prompt": "p"}], 2)
    with pytest.raises(ValueError, match=r"rows\[0\]\['labels'\]\[1\] must be a bool or 0/1, got None"):
        step_reward_summaries.heatmap_rows([{"labels": [True, None]}], 1)  # bool(None) would count as a wrong step


def test_verdict_row_labels():
    assert step_reward_summaries.verdict_row_labels([[True, False], [True], []]) == ["✗ 1", "✓ 2", "✓ 3"]
    with pytest.raises(ValueError, match=r"step_labels\[0\]\[0\] must be a bool or 0/1"):
        step_reward_summaries.verdict_row_labels([[None]])


def test_pick_before_after_problem_prefers_a_fixed_then_a_changed_problem():
    from stepdpo_lite.tutorial import toyworld

    problems = toyworld.make_problems(3, seed=3)
    right = [p.gold_solution for p in problems]
    wrong = [toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(i)) for i, p in enumerate(problems)]
    assert step_reward_summaries.pick_before_after_problem(problems, [right[0], wrong[1], wrong[2]],
                                                           [right[0], wrong[1], right[2]]) == (2, "fixed by")
    changed = wrong[1] + " "  # another text, still wrong
    assert step_reward_summaries.pick_before_after_problem(problems, wrong, [wrong[0], changed, right[2]]) == (
        2, "fixed by")
    assert step_reward_summaries.pick_before_after_problem(problems, right, [right[0], changed, right[2]]) == (
        1, "changed by")
    assert step_reward_summaries.pick_before_after_problem(problems, right, right) == (0, "same after")
    with pytest.raises(ValueError, match="after has 2 solutions for 3 problems"):
        step_reward_summaries.pick_before_after_problem(problems, right, right[:2])
    with pytest.raises(ValueError, match="problems is empty"):
        step_reward_summaries.pick_before_after_problem([], [], [])


def test_explorer_problems_rank_by_label_variety_ties_first_seen():
    rows = [{"prompt": "a", "completions": ["a1"], "labels": [True]},
            {"prompt": "b", "completions": ["b1"], "labels": [True]},
            {"prompt": "b", "completions": ["b2"], "labels": [False]},
            {"prompt": "a", "completions": ["a2"], "labels": [True]},
            {"prompt": "c", "completions": ["c1"], "labels": [True, False]},
            {"prompt": "c", "completions": ["c2"], "labels": [False, False]}]
    prompts, sols, labels = step_reward_summaries.explorer_problems(rows, 2)
    assert prompts == ["b", "c"] and sols == [[["b1"], ["b2"]], [["c1"], ["c2"]]]
    assert labels == [[[True], [False]], [[True, False], [False, False]]]
    assert step_reward_summaries.explorer_problems(rows, 10)[0] == ["b", "c", "a"]
    with pytest.raises(ValueError, match=r"explorer_problems: rows\[0\] has no 'completions'"):
        step_reward_summaries.explorer_problems([{"prompt": "a", "labels": [True]}], 1)
    with pytest.raises(ValueError, match="explorer_problems: n must be an int >= 1"):
        step_reward_summaries.explorer_problems(rows, 0)


def test_one_heatmap_picker_for_notebooks_02_and_05_that_fills_up_with_either_kind():
    """Notebook 02 drew a third right solutions in index order (pick_heatmap_solutions), notebook 05 half wrong as a
    staircase; with few wrong solutions notebook 02's returned fewer than asked, without a word (3 of 6 here, with 10
    right ones there)."""
    labels = [[True, True]] * 10 + [[True, True, False]]
    picked = step_reward_summaries.heatmap_indices(labels, 6)
    assert picked == sorted(picked, key=lambda i: i != 10)
    assert len(picked) == 6 and 10 in picked  # right ones fill up
    rows = _stepwise_rows(60)
    for n, seed in ((16, 0), (7, 3), (60, 1), (1, 2)):  # notebook 05's rows are the ones its indices name
        assert step_reward_summaries.heatmap_rows(rows, n, seed) == [
            rows[i] for i in step_reward_summaries.heatmap_indices([r["labels"] for r in rows], n, seed)]
    first = [(r["labels"] + [False]).index(False) for r in (rows[i] for i in step_reward_summaries.heatmap_indices(
        [r["labels"] for r in rows], 12, seed=5))]
    assert first[:6] == sorted(first[:6]) and all(k == len(rows[0]["labels"]) or k >= 0 for k in first)
    # too few: all of them, the wrong one first
    assert step_reward_summaries.heatmap_indices([[True], [False]], 9) == [1, 0]
    with pytest.raises(ValueError, match="heatmap_indices: n must be an int >= 1"):
        step_reward_summaries.heatmap_indices([[False], [True]], 0)


def test_heatmap_indices_refuse_a_label_that_is_no_bool():
    for bad in (float("nan"), None, 0.5):  # bool(None) would count a missing label as wrong
        with pytest.raises(ValueError, match=r"heatmap_indices: step_labels\[1\]\[0\] must be a bool or 0/1"):
            step_reward_summaries.heatmap_indices([[True], [bad], [False]], 3)
    assert step_reward_summaries.heatmap_indices([np.array([True, False]), np.array([1, 1])], 2) == [0, 1]


def test_step_rewards_and_labels_and_the_heatmap_rows_of_notebook_05():
    from stepdpo_lite.tutorial import bestofn, toyworld

    problems = bestofn.held_out_problems("tiny", 2, seed=0)
    wrong = toyworld.corrupt_solution(problems[1], 0, "arithmetic", random.Random(0))
    solved = {"base": [problems[0].gold_solution, wrong], "after": [problems[0].gold_solution, ""]}
    rewards, labels = step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, solved)
    n0, n1 = len(problems[0].ops), len(problems[1].ops)
    assert rewards == {"base": [[float(k) for k in range(1, n0 + 1)], [float(k) for k in range(1, n1 + 1)]],
                       "after": [[float(k) for k in range(1, n0 + 1)], []]}  # the blank one has no steps
    assert labels["base"] == [[True] * n0, bestofn.step_labels(problems[1], wrong)] and not all(labels["base"][1])
    assert labels["after"] == [[True] * n0, []]
    assert step_reward_summaries.format_final_accuracy(problems, solved) == (
        "base   final answer right on 50% of these 2 problems\n"
        "after  final answer right on 50% of these 2 problems")
    rows = step_reward_summaries.rows_by_problem(rewards, labels)
    assert rows["names"] == ["P1 base", "P1 after", "P2 base", "P2 after"]
    assert rows["rewards"] == [rewards["base"][0], rewards["after"][0], rewards["base"][1], []]
    assert rows["labels"] == [labels["base"][0], labels["after"][0], labels["base"][1], []]
    no_checker = {"base": [None, [True]], "after": [[True], [True]]}  # a task without a step checker: no marks
    assert step_reward_summaries.rows_by_problem({"base": [[1.0], [1.0]], "after": [[1.0], [1.0]]},
                                                 no_checker)["labels"] is None
    # what the text reads off the pictures: where each row's first mistake is, and the step that changed
    fixed = {"base": solved["base"], "after": [problems[0].gold_solution, problems[1].gold_solution]}
    report = step_reward_summaries.before_after_report(
        fixed, *step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, fixed), 1)
    gold_step, wrong_step = (extract_steps(s)[0].removeprefix("Step 1: ").split("\n")[0]
                             for s in (problems[1].gold_solution, wrong))
    assert report == {"first_error": {"base": [None, 1], "after": [None, None]},
                      "drawn": {"problem": 2, "step": 1, "base_step": wrong_step, "base_reward": 1.0,
                                "after_step": gold_step, "after_reward": 1.0}}
    same = step_reward_summaries.before_after_report(solved, rewards, labels, 0)["drawn"]
    assert same == {"problem": 1, "step": None, "base_step": None, "base_reward": None, "after_step": None,
                    "after_reward": None}  # the same solution: no step changed
    blank = step_reward_summaries.before_after_report(solved, rewards, labels, 1)["drawn"]  # "after" wrote nothing
    assert blank["step"] == 1 and blank["after_step"] is None and blank["after_reward"] is None
    assert step_reward_summaries.before_after_report({"base": ["x"], "after": ["x"]},
                                                     {"base": [[1.0]], "after": [[1.0]]},
                                                     {"base": [None], "after": [[True]]}, 0)["first_error"] is None
    with pytest.raises(ValueError, match="before_after_report: problem 2 drawn, 2 solutions under 'base'"):
        step_reward_summaries.before_after_report(solved, rewards, labels, 2)
    with pytest.raises(ValueError, match=r"2 problems but 1 solutions under 'after' \(need one per problem\)"):
        step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, {"after": [""]})
    with pytest.raises(ValueError, match=r"solutions_by_name\['base'\]: expected a list of solutions"):
        step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, {"base": "Step 1: 1 + 1 = 2"})
    with pytest.raises(ValueError, match=r"rows_by_problem: \(rewards, labels\) per name"):
        step_reward_summaries.rows_by_problem({"base": [[1.0]], "after": [[1.0], [2.0]]},
                                              {"base": [[True]], "after": [[1], [1]]})
    with pytest.raises(ValueError, match="need the same names"):
        step_reward_summaries.rows_by_problem({"base": [[1.0]]}, {"after": [[True]]})


def test_position_only_scores_give_the_kth_step_minus_k():
    """Its docstring, notebook 02 and docs/method.md say -k for step k; it gave -(k - 1), step 1 a negative zero."""
    scores = diagnostics.position_only_scores([3, 1])
    assert scores == [[-1.0, -2.0, -3.0], [-1.0]] and math.copysign(1, scores[1][0]) == -1


def test_first_rejected_steps_count_from_one_and_say_none():
    assert step_reward_summaries.first_rejected_steps([[2.0, -3.0, 1.0], [-4.0], [1.0, 2.0]], 0.0) == [2, 1, None]
    assert step_reward_summaries.first_rejected_steps([[2.0, -3.0, 1.0]], -3.5) == [None]  # log-odds: -3 not below -3.5


def test_auroc_difference_refuses_a_bad_resample_count_or_confidence():
    a, b, y = [0.1, 0.9, 0.3, 0.7], [0.2, 0.1, 0.5, 0.5], [0, 1, 0, 1]
    for bad in (0, -5, True, 10.0):  # 0 raised numpy's IndexError, True drew one resample
        with pytest.raises(ValueError, match="auroc_difference: n_boot must be an int >= 1"):
            reward_reports.auroc_difference(a, b, y, n_boot=bad)
    for bad in (95, 0.0, 1.0, float("nan"), True):  # 95: numpy's "Quantiles must be in the range [0, 1]"
        with pytest.raises(ValueError, match="auroc_difference: confidence must be"):
            reward_reports.auroc_difference(a, b, y, n_boot=20, confidence=bad)
    out = reward_reports.auroc_difference(a, b, y, n_boot=20, confidence=0.9)
    assert out["low"] <= out["high"]


def test_chosen_vs_rejected_summary_refuses_a_reward_that_is_not_finite():
    with pytest.raises(ValueError, match="pair 1: rejected step 0's reward must be a finite number, got nan"):
        chosen_vs_rejected_summary([[1.0], [2.0]], [[0.0], [float("nan"), 0.5]])  # min() was NaN: misranked
    with pytest.raises(ValueError, match="pair 0: chosen step 1's reward must be a finite number, got inf"):
        chosen_vs_rejected_summary([[1.0, float("inf")]], [[0.0]])
    assert chosen_vs_rejected_summary([np.array([1.0])], [[0.0]])["ranked_by_min"] == 1.0


def test_before_after_report_refuses_a_drawn_problem_that_is_no_int():
    solutions, rewards, labels = {"a": ["Step 1: x", "Step 1: y"]}, {"a": [[1.0], [2.0]]}, {"a": [[True], [True]]}
    for bad in (True, 1.0, "1"):  # True was problem 2
        with pytest.raises(ValueError, match="before_after_report: drawn must be an int"):
            step_reward_summaries.before_after_report(solutions, rewards, labels, bad)
    assert step_reward_summaries.before_after_report(solutions, rewards, labels, np.int64(1))["drawn"]["problem"] == 2


def test_curve_ends_averages_the_first_and_last_logged_values_round_by_round():
    from stepdpo_lite.tutorial.diagnostics import curve_ends
    history = [{"step": 1, "loss": 4.0}, {"step": 1, "eval": 1.0}, {"step": 2, "loss": 2.0, "acc": True},
               {"step": 3, "loss": float("nan")}, {"step": 4, "loss": 1.0}]
    ends = curve_ends(history, ["loss", "acc", "missing"], n=2)
    # NaN, bools and absent keys are skipped
    assert ends == {"loss": {"start": 4.0, "first": 3.0, "last": 1.5, "end": 1.0, "logged": 3, "jitter": 1.5}}
    tagged = [{**e, "round": r} for r in (1, 2) for e in ({"m": 0.0 + r}, {"m": 1.0 + r}, {"m": 2.0 + r})]
    assert curve_ends(tagged, ["m"], n=1, by_round=True) == {
        r: {"m": {"start": r0, "first": r0, "last": r0 + 2, "end": r0 + 2, "logged": 3, "jitter": 1.0}}
        for r, r0 in (("1", 1.0), ("2", 2.0))}
    assert curve_ends(history, ["loss"], n=2, by_round=True) == {"all": ends}
    with pytest.raises(ValueError, match="entry 0 is not"):
        curve_ends(history + tagged, ["loss"], by_round=True)
    with pytest.raises(ValueError, match="curve_ends: keys"):
        curve_ends(history, "loss")
    with pytest.raises(ValueError, match=r"history\[1\]"):
        curve_ends([{}, 3], ["loss"])
    for by_round in (False, True):  # an empty log_history.json recorded {"all": {}} as notebook 05's curves
        with pytest.raises(ValueError, match=r"curve_ends: history is empty: no training logged .* notebook 04"):
            curve_ends([], ["loss"], by_round=by_round)


def test_rejected_right_answers_counts_the_right_answers_a_prm_rejects_and_their_slips():
    import random

    from stepdpo_lite.tutorial import toyworld
    from stepdpo_lite.tutorial.diagnostics import format_rejected_right_answers, rejected_right_answers
    problem = toyworld.make_problems(1, "test", seed=0)[0]
    gold = problem.gold_solution
    slip = toyworld.corrupt_solution(problem, step=1, kind="copy", rng=random.Random(0))
    assert toyworld.has_wrong_step(problem.prompt, slip) and not toyworld.has_wrong_step(problem.prompt, gold)
    prompts, completions = [problem.prompt] * 4, [gold, slip, gold, slip]
    rewards, labels = [2.0, -5.0, -4.0, -6.0], [True, True, True, False]  # a right gold one rejected too
    assert rejected_right_answers(rewards, labels, -3.0) == {"right": 3, "rejected": 2, "rejected_share": 2 / 3}
    full = rejected_right_answers(rewards, labels, -3.0, prompts, completions, toyworld.has_wrong_step)
    assert full["slipped_among_rejected"] == 0.5 and full["slipped_among_accepted"] == 0.0
    assert format_rejected_right_answers(full) == ("the PRM rejects 2 of the 3 right answers; 50% of those slipped "
                                                   "on the way, against 0% of the ones it accepts")
    none_right = rejected_right_answers([1.0], [False], 0.0, [problem.prompt], [slip], toyworld.has_wrong_step)
    assert none_right == {"right": 0, "rejected": 0, "rejected_share": None, "slipped_among_rejected": None,
                          "slipped_among_accepted": None}
    assert format_rejected_right_answers(none_right) == "the PRM rejects 0 of the 0 right answers"
    with pytest.raises(ValueError, match="need one reward per label"):
        rejected_right_answers(rewards[:3], labels, -3.0)
    with pytest.raises(ValueError, match="threshold"):
        rejected_right_answers(rewards, labels, float("nan"))


def test_rejected_right_answers_accept_a_reward_at_the_threshold():
    """A step is accepted at or above the threshold (predict_first_error rejects reward < threshold)."""
    out = diagnostics.rejected_right_answers([-3.0, -3.5, 1.0], [True, True, True], -3.0)
    assert out == {"right": 3, "rejected": 1, "rejected_share": 1 / 3}


def test_step_label_counts_counts_the_labelled_steps_and_the_share_right():
    assert diagnostics.step_label_counts([[True, True, False], [1, 0, 0, 0]]) == {"steps": 7, "right_share": 3 / 7}
    assert diagnostics.step_label_counts([np.array([True, False])]) == {"steps": 2, "right_share": 0.5}
    with pytest.raises(ValueError, match=r"step_label_counts: step_labels\[1\]\[0\] must be a bool or 0/1, got None"):
        diagnostics.step_label_counts([[True], [None]])
    with pytest.raises(ValueError, match="step_label_counts: no step labels"):
        diagnostics.step_label_counts([[]])
    with pytest.raises(ValueError, match=r"step_label_counts: step_labels\[0\]"):
        diagnostics.step_label_counts([True, False])  # a flat list: one solution's labels, unwrapped


def test_control_wanted_by_default_only_where_the_reward_base_is_not_the_policys():
    """profiles.control_wanted, beside the recipe it asks for (profiles.train_reward_model)."""
    from types import SimpleNamespace

    from stepdpo_lite.tutorial import profiles

    verifier = SimpleNamespace(reward_base="data/tiny-verifier", model_name="data/tiny-base")
    same = SimpleNamespace(reward_base="Qwen/Qwen2.5-1.5B-Instruct", model_name="Qwen/Qwen2.5-1.5B-Instruct")
    assert profiles.control_wanted(verifier) and not profiles.control_wanted(same)
    assert profiles.control_wanted(same, True) and not profiles.control_wanted(verifier, False)
    with pytest.raises(ValueError, match="control_wanted: requested must be True or False, got 'no'"):
        profiles.control_wanted(verifier, "no")


def test_prm_metrics_is_notebook_02s_prm_section():
    def reports(auroc_on, auroc_off):
        return {"after QLoRA": {"step_auroc": auroc_on, "f1": 0.9, "threshold": -1.0, "test_rewards": [[1.0]]},
                "zero-shot": {"step_auroc": auroc_off, "f1": 0.8, "threshold": -2.0, "test_rewards": [[0.0]]}}

    report = {"step_auroc": 0.95, "f1": 0.9, "threshold": -1.0, "n_correct": 3}
    gain = {"difference": 0.05, "low": 0.01, "high": 0.09}
    by_position = [{"step": 1, "n": 4, "right": 0.5, "auroc": 1.0}]
    kw = dict(position_auroc=0.7, by_position=by_position, qlora_gain=gain, train_seconds=12.34,
              reward_base="data/tiny-verifier")
    metrics = reward_reports.prm_metrics(report, figures={"reward base": reports(0.95, 0.9)}, **kw)
    assert metrics == {"step_auroc": 0.95, "position_baseline_auroc": 0.7, "step_auroc_by_position": by_position,
                       "first_error_f1": 0.9, "first_error_threshold": -1.0, "train_seconds": 12.3,
                       "reward_base": "tiny-verifier", "zero_shot": {"step_auroc": 0.9, "f1": 0.8},
                       "qlora_minus_zero_shot": gain}  # no control trained: none recorded
    with_control = reward_reports.prm_metrics(
        report, figures={"reward base": reports(0.95, 0.9), "plain policy base (control)": reports(0.73, 0.59)}, **kw)
    assert with_control["control"] == {"after_qlora": {"step_auroc": 0.73, "f1": 0.9},
                                       "zero_shot": {"step_auroc": 0.59, "f1": 0.8}}
    with pytest.raises(ValueError, match="prm_metrics: figures need the 'reward base' reports"):
        reward_reports.prm_metrics(report, figures={}, **kw)


def test_prm_metrics_record_the_calibration_so_a_rerun_of_notebook_02s_metrics_cell_keeps_it(tmp_path):
    """Notebook 02's metrics cell replaces the whole ``prm`` section; the calibration was recorded only by the cell
    after it, so running the metrics cell again (the last one run) dropped ``prm.calibration``."""
    from stepdpo_lite.tutorial import runs

    rewards, labels = [[2.0, -2.0], [1.0, 1.5]], [[True, False], [True, True]]
    calibration = diagnostics.step_calibration(rewards, labels)
    report = {"step_auroc": 1.0, "f1": 1.0, "threshold": -1.0}
    figures = {"reward base": {"zero-shot": {"step_auroc": 0.5, "f1": 0.5}}}
    kw = dict(position_auroc=0.7, by_position=[], figures=figures, qlora_gain={}, train_seconds=1.0, reward_base="b")
    assert "calibration" not in reward_reports.prm_metrics(report, **kw)
    recorded = reward_reports.prm_metrics(report, calibration=calibration, **kw)
    assert recorded["calibration"] == calibration
    runs.update_metrics(tmp_path, {"prm": recorded}, replace=["prm"])
    runs.update_metrics(tmp_path, {"prm": recorded}, replace=["prm"])  # the metrics cell run again, last
    section = runs.read_metrics(tmp_path)["prm"]
    assert section["first_error_threshold"] == -1.0 and section["calibration"]["steps"] == calibration["steps"] == 4


def notebook_02_code_cells() -> list[str]:
    import nbformat
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "02_process_reward_model.ipynb"
    return [c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code"]


def test_notebook_02_computes_and_records_its_calibration_once_in_the_metrics_cell():
    """The metrics cell computed the calibration for prm_metrics, and the calibration cell computed it again and
    recorded it a second time (replace=["prm.calibration"]): now the calibration cell prints the metrics cell's."""
    import re

    cells = notebook_02_code_cells()
    made = [i for i, src in enumerate(cells) if re.search(r"(?<![_.\w])diagnostics\.step_calibration\(", src)]
    recorded = [i for i, src in enumerate(cells) if "runs.update_metrics(" in src and "calibration" in src]
    assert len(made) == 1 and recorded == made, (made, recorded)
    assert "prm_metrics(" in cells[made[0]] and "calibration=calibration" in cells[made[0]]
    shown = [i for i, src in enumerate(cells) if "format_step_calibration(calibration)" in src]
    assert len(shown) == 1 and shown[0] > made[0] and "update_metrics" not in cells[shown[0]]


def test_the_cells_prm_threshold_names_are_notebook_02s():
    """prm_threshold's message said the metrics cell saves the PRM with its threshold; the scoring cell does (the
    one that calls prm_report), and the metrics cell records it."""
    cells = notebook_02_code_cells()
    scoring = next(i for i, src in enumerate(cells) if "report = reward_reports.prm_report(" in src)
    assert "prm.config.first_error_threshold = threshold" in cells[scoring]
    assert 'atomic.save_atomic(RUN_DIR / "prm", prm.save)' in cells[scoring]
    metrics = next(i for i, src in enumerate(cells) if "reward_reports.prm_metrics(" in src)
    assert metrics > scoring and "runs.update_metrics(" in cells[metrics] and "save_atomic" not in cells[metrics]


def test_prm_threshold_refuses_a_prm_saved_without_the_recorded_threshold(tmp_path):
    """Notebook 02's training cell saves the PRM at once, without a threshold; its scoring cell saves it again with
    one, and its metrics cell records it. A learner who ran the training cell again and stopped there paired the new
    PRM with the old recorded threshold in notebooks 03-05 (05 printed "first error found exactly (P < 0.17, notebook
    02's threshold)" from the old PRM). The message named the metrics cell as the one that saves the threshold."""
    import json
    from types import SimpleNamespace

    from stepdpo_lite.rewards import ProcessRewardModel
    from stepdpo_lite.tutorial import runs

    prm = lambda threshold: SimpleNamespace(config=SimpleNamespace(first_error_threshold=threshold))
    with pytest.raises(FileNotFoundError, match="has no prm.first_error_threshold: run 02_process_reward_model"):
        reward_reports.prm_threshold(prm(-1.5), tmp_path)  # notebook 02 never recorded one
    runs.update_metrics(tmp_path, {"prm": {"first_error_threshold": -1.5}})
    assert reward_reports.prm_threshold(prm(-1.5), tmp_path) == -1.5
    with pytest.raises(ValueError, match=r"prm_threshold: the PRM loaded was saved without its first-error threshold "
                                         r"\(config first_error_threshold None: notebook 02's training cell saved "
                                         r"it\): run notebook 02 from its scoring cell \(report = "
                                         r"reward_reports.prm_report\(...\), which saves the PRM again with its "
                                         r"threshold\) through its metrics cell \(runs.update_metrics, which records "
                                         r"the threshold\)"):
        reward_reports.prm_threshold(prm(None), tmp_path)
    with pytest.raises(ValueError, match=r"the PRM loaded has first-error threshold -0.25, but .*metrics.json records "
                                         r"prm.first_error_threshold -1.5, another PRM's: run notebook 02 from its "
                                         r"scoring cell .* through its metrics cell"):
        reward_reports.prm_threshold(prm(-0.25), tmp_path)
    folder = tmp_path / "prm"  # its saved config, read before the PRM is loaded
    folder.mkdir()
    (folder / ProcessRewardModel.config_file).write_text(json.dumps({"first_error_threshold": None}))
    with pytest.raises(ValueError, match=r"prm_threshold: .*prm was saved without its first-error threshold"):
        reward_reports.prm_threshold(folder, tmp_path)
    (folder / ProcessRewardModel.config_file).write_text(json.dumps({"first_error_threshold": -1.5}))
    assert reward_reports.prm_threshold(folder, tmp_path) == -1.5
    (folder / ProcessRewardModel.config_file).unlink()
    with pytest.raises(FileNotFoundError, match="not a saved process reward model"):
        reward_reports.prm_threshold(str(folder), tmp_path)


def test_outcome_auroc_differences_are_notebook_03s_three_gaps():
    rng = np.random.default_rng(0)
    labels = [bool(x) for x in rng.integers(0, 2, 40)]
    scores = {name: rng.normal(size=40) + noise * np.array(labels) for name, noise in
              (("ORM", 1.0), ("PRM (min)", 0.5), ("combined", 1.2))}
    zero_shot = rng.normal(size=40)
    groups = [i // 4 for i in range(40)]
    gaps = reward_reports.outcome_auroc_differences(scores, zero_shot, labels, groups=groups, seed=1)
    assert list(gaps) == ["combined_minus_orm", "orm_minus_prm_min", "qlora_minus_zero_shot"]
    assert gaps["orm_minus_prm_min"] == reward_reports.auroc_difference(scores["ORM"], scores["PRM (min)"], labels,
                                                                        groups=groups, seed=1)
    assert gaps["qlora_minus_zero_shot"]["difference"] == pytest.approx(
        outcome_auroc(scores["ORM"], labels) - outcome_auroc(zero_shot, labels))
    with pytest.raises(ValueError, match=r"outcome_auroc_differences: scores lack \['combined'\]"):
        reward_reports.outcome_auroc_differences({"ORM": [1.0], "PRM (min)": [0.0]}, [0.0], [True])


def test_prm_metrics_refuse_figures_another_prm_scored():
    """Notebook 02 in Jupyter: the training cell run again, then the metrics cell without the scoring cell between
    them, recorded the first PRM's step AUROC and threshold (which notebooks 04-06 read) beside the second PRM's
    training time, without a word."""
    labels = [[True, False], [True, True], [False, False]]
    rows = {"prompt": ["p"] * 3, "completions": [["a", "b"]] * 3, "labels": labels}

    class PRM:
        def __init__(self, sign):
            self.sign = sign

        def score_solutions(self, prompts, steps):
            return [[self.sign * (1.0 if ok else -1.0) for ok in y] for y in labels[:len(prompts)]]

    first = PRM(1)
    report = reward_reports.prm_report(first, rows, rows)
    assert report["scored_by"]() is first and report["test_rewards"] == first.score_solutions(["p"] * 3, None)
    plain = process_reward_report(report["val_rewards"], labels, report["test_rewards"], labels)
    assert {k: report[k] for k in plain} == plain  # its figures are evaluation's
    figures = {"reward base": {"after QLoRA": {"step_auroc": 1.0, "f1": 1.0, "test_rewards": report["test_rewards"]},
                               "zero-shot": {"step_auroc": 0.5, "f1": 0.5, "test_rewards": [[0.0]]}}}
    kw = dict(position_auroc=0.7, by_position=[], figures=figures, train_seconds=1.0, reward_base="b",
              qlora_gain={"difference": 0.5, "low": 0.4, "high": 0.6})
    recorded = reward_reports.prm_metrics(report, prm=first, **kw)
    assert recorded == reward_reports.prm_metrics(report, **kw)  # the check adds nothing to what is recorded
    assert "scored_by" not in recorded and "test_rewards" not in recorded
    second = PRM(-1)  # trained again; its scoring cell not run again
    with pytest.raises(ValueError, match="report holds the figures of another PRM than prm, the one trained last.*"
                                         r"report = reward_reports.prm_report\(prm, val, test\)"):
        reward_reports.prm_metrics(report, prm=second, **kw)
    del first  # the first PRM gone: its report no longer names a PRM, nor this one
    with pytest.raises(ValueError, match="another PRM than prm"):
        reward_reports.prm_metrics(report, prm=second, **kw)
    with pytest.raises(ValueError, match="report does not say which PRM scored it"):  # a plain process_reward_report
        reward_reports.prm_metrics({k: v for k, v in report.items() if k != "scored_by"}, prm=second, **kw)
    # scored again, but the zero-shot comparison not: its 'after QLoRA' rewards are the first PRM's
    with pytest.raises(ValueError, match=r"figures\['reward base'\] holds another PRM's rewards than report.*"
                                         "prm_reports_adapter_on_and_off"):
        reward_reports.prm_metrics(reward_reports.prm_report(second, rows, rows), prm=second, **kw)


def test_format_heatmap_summary_says_where_its_threshold_comes_from():
    """It always said "notebook 02's threshold", whatever threshold a user's script passed."""
    summary = step_reward_summaries.heatmap_summary(REWARDS, LABELS, 0.0)
    assert step_reward_summaries.format_heatmap_summary(summary, 0.0, threshold_source="my threshold").endswith(
        "first rejected step (P < 0.50, my threshold) = the checker's first error (none = none) in 2 of 3 solutions")


def test_format_chosen_vs_rejected_counts_the_mistakes_the_prm_misses():
    """Notebook 05's text quoted 52 mistakes, 49 under -4 and 2 above zero from metrics.json alone: printed now."""
    summary = {"ranked_by_min": 0.75, "mean_gap_by_step": [0.5], "mistake_rewards": [-5.0, -4.0, -1.0, 0.0, 0.5],
               "threshold": -3.0}
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 4).splitlines()[2] == (
        "5 mistakes (x): 2 below the threshold (P < 0.05), rejected; 3 at or above it, missed, 1 of them above zero "
        "(P > 0.5)")
    assert len(step_reward_summaries.format_chosen_vs_rejected({**summary, "mistake_rewards": []}, 4).splitlines()) == 2


def test_chosen_vs_rejected_counts_a_mistake_missed_at_the_prms_threshold_not_at_fixed_cut_points():
    """Everything else in notebook 05 calls a step rejected below its threshold (P = 0.04, log-odds -3.2), but this
    line put -3.5 (rejected) and -2.0 (accepted: missed) in one bucket, "from -4 to 0", and listed as missed only
    the mistakes above zero."""
    rejected = ["Step 1: 4 + 7 = 11\n\nStep 2: 11 - 5 = 6", "Step 1: 10 + 7 = 17\n\nStep 2: 17 - 8 = 8"]
    summary = chosen_vs_rejected_summary([[5.0, 4.0], [6.0, 5.0]], [[3.0, -3.5], [-6.0, -2.0]],
                                         [[True, False], [False, False]], rejected_solutions=rejected, threshold=-3.2)
    assert summary["missed_mistakes"] == [{"pair": 2, "step": 2, "text": "Step 2: 17 - 8 = 8", "reward": -2.0}]
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 2).splitlines()[2:] == [
        "3 mistakes (x): 2 below the threshold (P < 0.04), rejected; 1 at or above it, missed, 0 of them above zero "
        "(P > 0.5)",
        "  missed: pair 2, step 2 (reward -2.00, P 0.12): Step 2: 17 - 8 = 8"]
    at = chosen_vs_rejected_summary([[1.0]], [[-3.2]], [[False]], rejected_solutions=["Step 1: a"], threshold=-3.2)
    assert [m["reward"] for m in at["missed_mistakes"]] == [-3.2]  # at the threshold: accepted, as everywhere


def test_format_chosen_vs_rejected_prints_the_mistakes_the_prm_misses():
    """Notebook 05's text names the two mistakes its PRM misses (`11 - 5 = 6`; `17 - 8 = 9`, then `Answer: 18`), but
    the lines under its plot gave only their count: each one's pair, step, P and text are printed under it now."""
    rejected = ["Step 1: 4 + 7 = 11\n\nStep 2: 11 - 5 = 6\n\nAnswer: 6",
                "Step 1: 10 + 7 = 17\n\nStep 2: 17 - 8 = 9\n\nAnswer: 18"]
    summary = chosen_vs_rejected_summary([[5.0, 4.0], [6.0, 5.0]], [[3.0, 4.6], [-6.0, 1.5]],
                                         [[True, False], [False, False]], rejected_solutions=rejected, threshold=0.0)
    assert summary["missed_mistakes"] == [{"pair": 1, "step": 2, "text": "Step 2: 11 - 5 = 6\n\nAnswer: 6",
                                           "reward": 4.6},
                                          {"pair": 2, "step": 2, "text": "Step 2: 17 - 8 = 9\n\nAnswer: 18",
                                           "reward": 1.5}]
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 2).splitlines()[2:] == [
        "3 mistakes (x): 1 below the threshold (P < 0.50), rejected; 2 at or above it, missed, 2 of them above "
        "zero (P > 0.5)",
        "  missed: pair 1, step 2 (reward +4.60, P 1−0.01): Step 2: 11 - 5 = 6 | Answer: 6",
        "  missed: pair 2, step 2 (reward +1.50, P 0.82): Step 2: 17 - 8 = 9 | Answer: 18"]
    assert "missed_mistakes" not in chosen_vs_rejected_summary([[1.0]], [[0.0]], [[False]], threshold=0.0)  # no texts
    with pytest.raises(ValueError, match="pair 0: the rejected solution has 3 steps but 2 rewards"):
        chosen_vs_rejected_summary([[1.0]], [[0.0, 1.0]], [[True, False]], threshold=0.0,
                                   rejected_solutions=["Step 1: a\n\nStep 2: b\n\nStep 3: c"])
    with pytest.raises(ValueError, match="rejected_solutions needs rejected_step_labels"):
        chosen_vs_rejected_summary([[1.0]], [[0.0]], rejected_solutions=["Step 1: a"])
    with pytest.raises(ValueError, match="1 rejected reward lists but 2 rejected_solutions"):
        chosen_vs_rejected_summary([[1.0]], [[0.0]], [[True]], rejected_solutions=["Step 1: a", "Step 1: b"],
                                   threshold=0.0)


def test_the_texts_of_notebook_05s_summaries_split_at_the_prms_own_delimiter():
    """The rewards come from bestofn.score_candidates, split at the PRM's own delimiter (docs/own_task.md: a task
    may have its own); the texts were split at the default one: before_after_report said the solutions differ at a
    step both read the same (their step 2 differs), and the other two refused a count that was right."""
    base, after = "# a = 1\n\n# b = 2\n\n# Answer: 3", "# a = 1\n\n# b = 3\n\n# Answer: 4"
    rewards = {"base": [[2.0, 1.0, 0.5]], "after": [[2.0, -1.0, -0.5]]}
    labels = {"base": [[True, True, True]], "after": [[True, False, False]]}
    drawn = step_reward_summaries.before_after_report({"base": [base], "after": [after]}, rewards, labels, 0,
                                                      delimiter="\n\n#")["drawn"]
    assert drawn == {"problem": 1, "step": 2, "base_step": "# b = 2", "base_reward": 1.0, "after_step": "# b = 3",
                     "after_reward": -1.0}
    # at the default delimiter, one step against three rewards: refused, where a wrong step was recorded
    with pytest.raises(ValueError, match=r"before_after_report: problem 1's solution under 'base' has 1 steps at "
                                         r"delimiter '\\n\\nStep' but 3 rewards: pass the PRM's own delimiter"):
        step_reward_summaries.before_after_report({"base": [base], "after": [after]}, rewards, labels, 0)
    blank = step_reward_summaries.before_after_report({"base": [base], "after": [""]},
                                                      {"base": rewards["base"], "after": [[]]},
                                                      {"base": labels["base"], "after": [[]]}, 0, delimiter="\n\n#")
    assert blank["drawn"]["step"] == 1 and blank["drawn"]["after_reward"] is None  # [] = unscored: no count to match
    summary = chosen_vs_rejected_summary([[3.0, 3.0, 3.0]], [[2.0, -1.0, 1.5]], [[True, False, False]],
                                         rejected_solutions=[after], threshold=0.0, delimiter="\n\n#")
    assert summary["missed_mistakes"] == [{"pair": 1, "step": 3, "text": "# Answer: 4", "reward": 1.5}]


def test_the_heatmap_counts_refuse_no_solutions_and_a_solution_without_steps():
    """[] was "first error found in 0 of 0 solutions"; a solution without steps was an exact hit (-1 == -1)."""
    calls = {"first_error_hits": lambda r, y: step_reward_summaries.first_error_hits(r, y, P10),
             "heatmap_summary": lambda r, y: step_reward_summaries.heatmap_summary(r, y, P10),
             "heatmap_details": lambda r, y: step_reward_summaries.heatmap_details(r, y, P10),
             "first_error_hits_by_problem": lambda r, y: step_reward_summaries.first_error_hits_by_problem([r], [y],
                                                                                                          P10)}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{name}: no solutions"):
            call([], [])
        with pytest.raises(ValueError, match=rf"^{name}: solution 1 has no steps"):
            call([REWARDS[0], []], [LABELS[0], []])


def test_a_nan_reward_is_named_by_the_function_called_its_solution_and_step():
    """It was "predict_first_error: score 1 must be a finite number" (or step_auroc's index within a position, or
    outcome_auroc's of a weighted sum), naming neither the function called, the solution nor which input."""
    nan = float("nan")
    rewards = [REWARDS[0], [3.0, nan]]
    calls = {"first_error_hits": lambda: step_reward_summaries.first_error_hits(rewards, LABELS[:2], P10),
             "heatmap_summary": lambda: step_reward_summaries.heatmap_summary(rewards, LABELS[:2], P10),
             "heatmap_details": lambda: step_reward_summaries.heatmap_details(rewards, LABELS[:2], P10),
             "first_error_hits_by_problem": lambda: step_reward_summaries.first_error_hits_by_problem(
                 [rewards[:1], rewards[1:]], [LABELS[:1], LABELS[1:2]], P10),
             "first_rejected_steps": lambda: step_reward_summaries.first_rejected_steps(rewards, P10),
             "step_auroc_by_position": lambda: diagnostics.step_auroc_by_position(rewards, LABELS[:2])}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{name}: solution 1, step 1 must be a finite number, got nan"):
            call()
    for name, prm, orm in (("prm_scores", [0.1, nan, 0.3], [0.1, 0.2, 0.3]), ("orm_scores", [0.1, 0.2, 0.3],
                                                                               [0.1, 0.2, nan])):
        with pytest.raises(ValueError, match=rf"^choose_process_weight: {name}: solution \d must be a finite number"):
            reward_reports.choose_process_weight(prm, orm, [True, False, True])


class _FakeORM:
    """Scores by completion; its adapter switched off (``model.disable_adapter()``) it reads another table."""

    def __init__(self, adapter_on: dict, adapter_off: dict):
        import contextlib

        self.tables, self.adapter = {True: adapter_on, False: adapter_off}, True

        @contextlib.contextmanager
        def disable_adapter():
            self.adapter = False
            try:
                yield
            finally:
                self.adapter = True

        self.model = type("Model", (), {"disable_adapter": staticmethod(disable_adapter)})()

    def score_solutions(self, prompts, completions):
        return [self.tables[self.adapter][c] for c in completions]


def _fake_reward_models(orm_on: dict, orm_off: dict, prm: dict):
    """An ORM and a PRM that CombinedRewardModel takes (its parts' types), scoring from tables."""
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel, RewardModelConfig

    class ORM(_FakeORM, OutcomeRewardModel):
        pass

    class PRM(ProcessRewardModel):
        def __init__(self):
            self.config = RewardModelConfig()  # aggregation "min", as notebook 03's

        def solution_rewards(self, prompts, completions):
            return [prm[c] for c in completions]

    return ORM(orm_on, orm_off), PRM()


def _outcome_rows(n: int, offset: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = [bool(y) for y in rng.integers(0, 2, n)]
    labels[:2] = [True, False]  # both classes
    return {"prompt": [f"p{(offset + i) // 2}" for i in range(n)],
            "completion": [f"s{offset + i}" for i in range(n)], "label": labels}


def test_orm_report_scores_both_splits_zero_shot_too_and_chooses_the_weight_on_validation():
    """Notebook 03 did all this in its cells: scoring, the zero-shot pass with the adapter off, the weight, the
    combined scores and the AUROCs."""
    from stepdpo_lite.evaluation import outcome_auroc

    val, test = _outcome_rows(30, 0, 1), _outcome_rows(30, 100, 2)
    rng = np.random.default_rng(3)
    rows = {c: y for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    noisy = lambda scale: {c: float(y) + scale * rng.normal() for c, y in rows.items()}
    orm, prm = _fake_reward_models(noisy(1.0), noisy(3.0), noisy(1.5))
    report = reward_reports.orm_report(orm, prm, val, test)
    weight, by_weight = reward_reports.choose_process_weight(prm.solution_rewards(None, val["completion"]),
                                                             orm.score_solutions(None, val["completion"]), val["label"])
    assert report["process_weight"] == weight and report["val_auroc_by_weight"] == by_weight
    orm_test, prm_test = (np.array(table) for table in (orm.score_solutions(None, test["completion"]),
                                                        prm.solution_rewards(None, test["completion"])))
    assert np.array_equal(report["scores"]["ORM"], orm_test) and np.array_equal(report["scores"]["PRM (min)"], prm_test)
    assert np.allclose(report["scores"]["combined"], weight * prm_test + (1 - weight) * orm_test)
    assert report["combined"].process_weight == weight and report["combined"].outcome_weight == 1 - weight
    assert report["combined"].outcome_reward_model is orm and report["combined"].process_reward_model is prm
    zero_shot = [orm.tables[False][c] for c in test["completion"]]  # scored with the adapter off, then back on
    assert list(report["zero_shot_scores"]) == zero_shot and orm.adapter
    assert report["zero_shot_auroc"] == outcome_auroc(zero_shot, test["label"])
    assert report["aurocs"] == {name: outcome_auroc(s, test["label"]) for name, s in report["scores"].items()}
    assert list(report["labels"]) == test["label"] and report["scored_by"]() is orm
    # the gaps, bootstrapped over whole groups with the report's own seed: as notebook 03 calls it
    by_problem = reward_reports.orm_report(orm, prm, val, test, groups=test["prompt"], seed=7)
    assert by_problem["differences"] == reward_reports.outcome_auroc_differences(
        report["scores"], report["zero_shot_scores"], test["label"], groups=test["prompt"], seed=7)
    assert report["differences"] == reward_reports.outcome_auroc_differences(report["scores"], zero_shot, test["label"])
    assert report["differences"] != by_problem["differences"]
    fixed = reward_reports.orm_report(orm, prm, val, test, process_weight=1)  # the notebook's PROCESS_WEIGHT
    assert fixed["process_weight"] == 1.0 and np.allclose(fixed["scores"]["combined"], prm_test)
    for bad in (1.5, -0.1, float("nan"), "0.3"):
        with pytest.raises(ValueError, match="orm_report: process_weight"):
            reward_reports.orm_report(orm, prm, val, test, process_weight=bad)


def test_orm_report_refuses_a_prm_that_aggregates_otherwise_than_by_min():
    """Its scores are named "PRM (min)" and recorded as prm_min_auroc; a PRM saved with "product" got both names."""
    val, test = _outcome_rows(10, 0, 1), _outcome_rows(10, 50, 2)
    rows = {c: float(y) for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    orm, prm = _fake_reward_models(rows, rows, rows)
    prm.config.aggregation = "product"
    with pytest.raises(ValueError, match=r"orm_report: the PRM aggregates its steps by 'product', but its scores here "
                                         r"are named and recorded as min"):
        reward_reports.orm_report(orm, prm, val, test)


def test_orm_metrics_is_notebook_03s_orm_section_and_refuses_another_orms_figures():
    val, test = _outcome_rows(20, 0, 4), _outcome_rows(20, 50, 5)
    rng = np.random.default_rng(6)
    rows = {c: y for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    noisy = lambda scale: {c: float(y) + scale * rng.normal() for c, y in rows.items()}
    orm, prm = _fake_reward_models(noisy(1.0), noisy(3.0), noisy(1.5))
    report = reward_reports.orm_report(orm, prm, val, test, groups=test["prompt"])
    rejected = {"right": 9, "rejected": 2, "rejected_share": 2 / 9}
    metrics = reward_reports.orm_metrics(report, rejected=rejected, train_seconds=12.34, orm=orm)
    aurocs = report["aurocs"]
    assert metrics == {"auroc": aurocs["ORM"], "prm_min_auroc": aurocs["PRM (min)"],
                       "combined_auroc": aurocs["combined"], "combined_process_weight": report["process_weight"],
                       "zero_shot_auroc": report["zero_shot_auroc"], "differences": report["differences"],
                       "prm_rejected_right": rejected, "train_seconds": 12.3}
    assert metrics == reward_reports.orm_metrics(report, rejected=rejected, train_seconds=12.34)
    again, _ = _fake_reward_models(noisy(1.0), noisy(3.0), noisy(1.5))  # trained again, its scoring cell not run
    with pytest.raises(ValueError, match=r"report holds the figures of another ORM than orm, the one trained last.*"
                                         r"report = reward_reports.orm_report\(...\)"):
        reward_reports.orm_metrics(report, rejected=rejected, train_seconds=1.0, orm=again)
    with pytest.raises(ValueError, match="report does not say which ORM scored it"):
        reward_reports.orm_metrics({k: v for k, v in report.items() if k != "scored_by"}, rejected=rejected,
                                   train_seconds=1.0, orm=orm)


def notebook_03_code_cells() -> list[str]:
    import nbformat
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "03_outcome_reward_model.ipynb"
    return [c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code"]


def test_notebook_03_scores_and_records_through_orm_report_and_orm_metrics():
    """Its cells scored both splits with both models, switched the ORM's adapter off, chose the weight, built the
    combined scores and wrote the metrics dict by hand, some 40 lines that notebook 02 leaves to diagnostics."""
    cells = notebook_03_code_cells()
    source = "\n".join(cells)
    for hand_made in ("disable_adapter", "score_solutions(", "solution_rewards(", "choose_process_weight(",
                      "outcome_auroc(", "CombinedRewardModel(", '"auroc": aurocs'):
        assert hand_made not in source, hand_made
    scoring = [i for i, src in enumerate(cells) if "report = reward_reports.orm_report(orm, prm, val, test" in src]
    recording = [i for i, src in enumerate(cells) if "reward_reports.orm_metrics(report" in src]
    assert len(scoring) == len(recording) == 1 and scoring[0] < recording[0]
    assert "process_weight=PROCESS_WEIGHT" in cells[scoring[0]] and "orm=orm" in cells[recording[0]]
    # the gaps are the report's, bootstrapped over whole problems with the notebook's seed, not computed beside it
    assert all(arg in cells[scoring[0]] for arg in ('groups=test["prompt"]', "seed=SEED"))
    assert "outcome_auroc_differences" not in source
    assert 'replace=["orm"]' in cells[recording[0]]
