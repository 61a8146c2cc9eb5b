"""diagnostics: the notebooks' summaries refuse labels and rewards they would misread."""
import math

import numpy as np
import pytest

from stepdpo_lite.tutorial import diagnostics
from stepdpo_lite.tutorial.diagnostics import base_rate_loss, chosen_vs_rejected_summary, mean_by_label


def test_mean_by_label_refuses_a_missing_label():
    with pytest.raises(ValueError, match=r"mean_by_label: step_labels\[0\]\[1\] must be a bool or 0/1, got None"):
        mean_by_label([[1, 0], [2]], [[True, None], [True]], False)  # was 0.0: None counted as wrong
    assert mean_by_label([[1, 0], [2]], [[True, 0], [1]], False) == 0.0


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


def test_first_error_hits_count_exact_matches_of_the_first_error():
    assert diagnostics.first_error_hits(REWARDS, LABELS, 0.1) == 2  # solution 2's false alarm is a miss
    # sigmoid(-4) = 0.018 is no longer below 0.01: solution 1's error is missed too; sigmoid(-5) = 0.007 still is
    assert diagnostics.first_error_hits(REWARDS, LABELS, 0.01) == 1
    assert diagnostics.first_error_hits_by_problem([REWARDS[:2], REWARDS[2:]], [LABELS[:2], LABELS[2:]], 0.1) == (2, 3)
    with pytest.raises(ValueError, match="threshold is a probability"):  # a log-odds threshold, by mistake
        diagnostics.first_error_hits(REWARDS, LABELS, -2.0)
    with pytest.raises(ValueError, match="first_error_hits: solution 1 has 2 rewards and 3 labels"):
        diagnostics.first_error_hits(REWARDS, [LABELS[0], LABELS[0], LABELS[2]], 0.1)
    with pytest.raises(ValueError, match="problem 0 has 2 solutions of rewards and 1 of labels"):
        diagnostics.first_error_hits_by_problem([REWARDS[:2]], [LABELS[:1]], 0.1)
    with pytest.raises(ValueError, match="rewards_by_problem has 1 problems, labels_by_problem 2"):
        diagnostics.first_error_hits_by_problem([REWARDS], [LABELS, LABELS], 0.1)


def test_heatmap_summary_and_its_lines():
    summary = diagnostics.heatmap_summary(REWARDS, LABELS, 0.1)
    probs = 1 / (1 + np.exp(-np.array([2.0, 1.0, -4.0, 3.0, -5.0, 1.0, 2.0])))
    right = np.array([True, True, False, True, True, True, True])
    assert summary == {"solutions": 3, "first_error_found": 2, "mean_p_right": float(probs[right].mean()),
                       "mean_p_wrong": float(probs[~right].mean())}
    assert diagnostics.format_heatmap_summary(summary, 0.1) == (
        "mean P(right): 0.70 on right steps, 0.02 on wrong steps\n"
        "first error found exactly (P < 0.10, notebook 02's threshold) in 2 of 3 solutions")
    all_right = diagnostics.heatmap_summary(REWARDS[1:], LABELS[1:], 0.1)
    assert all_right["mean_p_wrong"] is None  # JSON records None; NaN it would not
    assert "nan on wrong steps" in diagnostics.format_heatmap_summary(all_right, 0.1)
    with pytest.raises(ValueError, match=r"step_labels\[0\]\[0\] must be a bool or 0/1, got None"):
        diagnostics.heatmap_summary([[1.0]], [[None]], 0.1)


def test_step_rewards_by_problem_scores_one_problem_per_call():
    class FakePRM:
        calls = []

        def score_solutions(self, prompts, solutions):
            self.calls.append(list(prompts))
            return [[float(len(step)) for step in s] for s in solutions]

    prm = FakePRM()
    out = diagnostics.step_rewards_by_problem(prm, ["p", "q"], [[["ab", "c"], ["d"]], [["efg"]]])
    assert out == [[[2.0, 1.0], [1.0]], [[3.0]]] and prm.calls == [["p", "p"], ["q"]]
    with pytest.raises(ValueError, match="2 prompts but solutions for 1"):
        diagnostics.step_rewards_by_problem(prm, ["p", "q"], [[["a"]]])
    with pytest.raises(ValueError, match=r"solutions\[0\]: expected a list of solutions \(str\), got one str"):
        diagnostics.step_rewards_by_problem(prm, ["p"], ["Step 1: a"])


def test_format_auroc_by_position_is_notebook_02s_table():
    rows = diagnostics.step_auroc_by_position([[2.0, -1.0], [1.0, 0.5], [0.0]], [[True, False], [True, True], [False]])
    assert diagnostics.format_auroc_by_position(rows) == ("step  n    right  AUROC\n"
                                                         "   1    3    67%  1.000\n"
                                                         "   2    2    50%  1.000")
    assert diagnostics.format_auroc_by_position([{"step": 1, "n": 4, "right": 1.0, "auroc": None}]).endswith(
        "   1    4   100%    —")


def test_format_step_rewards_marks_where_the_prm_and_the_checker_disagree():
    text = diagnostics.format_step_rewards("Problem: start with 5.", ["Step 1: 5 + 9 = 14", "\n\nStep 2: 14 - 8 = 7",
                                                                       "\n\nStep 3: 7 + 6 = 13\n\nAnswer: 13"],
                                           [5.54, -5.53, -1.94], [True, False, False], threshold=-3.228)
    lines = text.splitlines()
    assert lines[0] == "Problem: start with 5."
    assert lines[1] == f"{'Step 1: 5 + 9 = 14':45s} reward  +5.54  P 1.00  gold right"
    assert lines[2].endswith("P 0.00  gold WRONG")  # below the threshold, and wrong: they agree
    assert lines[3].startswith("Step 3: 7 + 6 = 13 | Answer: 13")  # one line: the answer after a bar
    assert lines[3].endswith("reward  -1.94  P 0.13  gold WRONG   <- disagrees with the checker")
    with pytest.raises(ValueError, match="format_step_rewards: 2 steps but 1 rewards"):
        diagnostics.format_step_rewards("p", ["a", "b"], [1.0], [True], 0.0)
    with pytest.raises(ValueError, match=r"format_step_rewards: labels\[0\] must be a bool or 0/1, got None"):
        diagnostics.format_step_rewards("p", ["a"], [1.0], [None], 0.0)
