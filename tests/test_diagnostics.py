"""diagnostics: baselines that show what a reward model has not learnt, and figures of its step rewards and curves."""
import math

import numpy as np
import pytest

from stepdpo_lite.tutorial import diagnostics, step_reward_summaries
from stepdpo_lite.tutorial.diagnostics import base_rate_loss


def test_base_rate_loss_takes_numpy_rows_and_refuses_what_is_not_a_label():
    assert base_rate_loss([np.array([True, False]), np.array([1, 0])]) == pytest.approx(math.log(2))
    assert base_rate_loss(np.array([True, False])) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match=r"base_rate_loss: labels\[1\]\[0\] must be a bool or 0/1, got None"):
        base_rate_loss([[True], [None]])
    with pytest.raises(ValueError, match=r"base_rate_loss: labels\[1\] must be a bool or 0/1, got None"):
        base_rate_loss([True, None])
    with pytest.raises(ValueError, match=r"labels\[0\] is a single label among lists"):
        base_rate_loss([True, [False]])


def test_notebook_05s_explorer_scores_through_bestofn_score_candidates():
    """diagnostics.step_rewards_by_problem rewrote bestofn.score_candidates (one scoring call, one warning, one bar),
    without its checks of a PRM's reward lists or of unreadable solutions."""
    import nbformat
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "05_step_reward_visualisation.ipynb"
    source = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    assert "explorer_rewards = bestofn.score_candidates(prm, explorer_prompts, explorer_sols)" in source
    assert not any(hasattr(m, "step_rewards_by_problem") for m in (diagnostics, step_reward_summaries))


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


def test_format_step_rewards_marks_where_the_prm_and_the_label_disagree():
    """It said "gold" and "the checker" on every profile; on GSM8K the labels are Monte-Carlo estimates."""
    text = diagnostics.format_step_rewards("Problem: start with 5.", ["Step 1: 5 + 9 = 14", "\n\nStep 2: 14 - 8 = 7",
                                                                       "\n\nStep 3: 7 + 6 = 13\n\nAnswer: 13"],
                                           [5.54, -5.53, -1.94], [True, False, False], threshold=-3.228)
    lines = text.splitlines()
    assert lines[0] == "Problem: start with 5."
    # within 0.01 of 0 or 1 a P keeps a significant digit (probability_text), as the heatmap above it prints it:
    # "P 1.00" and "P 0.00" beside cells that read 1−0.004 and 0.004
    assert lines[1] == f"{'Step 1: 5 + 9 = 14':45s} reward  +5.54  P 1−0.004  label right"
    assert lines[2].endswith("P 0.004    label WRONG")  # below the threshold, and wrong: they agree
    assert lines[3].startswith("Step 3: 7 + 6 = 13 | Answer: 13")  # one line: the answer after a bar
    assert lines[3].endswith("reward  -1.94  P 0.13     label WRONG   <- disagrees with the label")
    with pytest.raises(ValueError, match="format_step_rewards: 2 steps but 1 rewards"):
        diagnostics.format_step_rewards("p", ["a", "b"], [1.0], [True], 0.0)
    at = diagnostics.format_step_rewards("p", ["Step 1: 1 + 1 = 2"], [0.5], [True], threshold=0.5)
    assert "label right" in at and "disagrees" not in at  # a step exactly at the threshold is accepted
    with pytest.raises(ValueError, match=r"format_step_rewards: labels\[0\] must be a bool or 0/1, got None"):
        diagnostics.format_step_rewards("p", ["a"], [1.0], [None], 0.0)


def test_position_only_scores_give_the_kth_step_minus_k():
    """Its docstring, notebook 02 and docs/method.md say -k for step k; it gave -(k - 1), step 1 a negative zero."""
    scores = diagnostics.position_only_scores([3, 1])
    assert scores == [[-1.0, -2.0, -3.0], [-1.0]] and math.copysign(1, scores[1][0]) == -1


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


def test_format_curve_ends_prints_a_row_per_run_round_and_curve():
    """Notebooks 04 and 05 printed these tables with loops of their own."""
    from stepdpo_lite.tutorial.diagnostics import curve_ends, format_curve_ends
    tagged = [{"loss": v, "round": r} for r, values in ((1, (0.8, 0.7, 0.6)), (2, (0.75, 0.5, 0.25))) for v in values]
    plain = {"DPO": curve_ends(tagged, ["loss", "missing"], n=2)}
    assert format_curve_ends(plain, n=2).splitlines() == [
        "run  curve    start  first 2   last 2",
        "DPO  loss      0.80     0.75     0.38"]  # first 2: (0.8 + 0.7) / 2; last 2: (0.5 + 0.25) / 2
    by_round = {"Stepwise DPO": curve_ends(tagged, ["loss"], n=1, by_round=True)}
    assert format_curve_ends(by_round, n=1, by_round=True).splitlines() == [
        "run           round  curve    start  first 1   last 1",
        "Stepwise DPO  1      loss      0.80     0.80     0.60",
        "Stepwise DPO  2      loss      0.75     0.75     0.25"]
    for curves, flag, message in [(plain, True, "for curve_ends\\(...\\) without by_round: by_round=False"),
                                  (by_round, False, "by_round=True\\): by_round=True"),
                                  ({"DPO": {}}, False, "no run logged any of the curves"),
                                  ({}, False, "a non-empty")]:
        with pytest.raises(ValueError, match=f"format_curve_ends: .*{message}"):
            format_curve_ends(curves, by_round=flag)


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
    # a right answer exactly at the threshold is accepted; and where every right answer is rejected, no share of
    # the accepted ones (was a TypeError)
    at = rejected_right_answers([-3.0, 2.0], [True, True], -3.0, prompts[:2], [slip, gold], toyworld.has_wrong_step)
    assert at["rejected"] == 0 and at["slipped_among_accepted"] == 0.5
    every = rejected_right_answers([-5.0, -4.0], [True, True], -3.0, prompts[:2], [slip, gold], toyworld.has_wrong_step)
    assert every["slipped_among_accepted"] is None
    assert format_rejected_right_answers(every) == "the PRM rejects 2 of the 2 right answers"
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
