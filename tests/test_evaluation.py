import math
import random
import re

import numpy as np

import pytest
import torch

from stepdpo_lite.evaluation import (best_of_n_accuracy, choose_threshold, first_error_f1, first_error_index,
                                     first_error_report, majority_vote_accuracy, outcome_auroc, predict_first_error,
                                     process_reward_report, step_auroc)
from stepdpo_lite.tutorial.credit import format_credit, mean_by_label
from stepdpo_lite.tutorial.diagnostics import base_rate_loss, position_only_scores, step_auroc_by_position
from stepdpo_lite.tutorial.reward_reports import choose_process_weight


def test_step_auroc_known_values():
    assert step_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert step_auroc([[0.1, 0.4], [0.35, 0.8]], [[False, False], [True, True]]) == pytest.approx(0.75)
    assert step_auroc([[5.0, -1.0], [2.0]], [[True, False], [True]]) == 1.0
    assert step_auroc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    # log-odds and probabilities rank the same
    logits = [-2.0, 0.5, 0.1, 3.0]
    assert step_auroc(logits, [0, 1, 0, 1]) == step_auroc([1 / (1 + math.exp(-x)) for x in logits], [0, 1, 0, 1])


def test_auroc_errors():
    with pytest.raises(ValueError, match="both correct and wrong"):
        step_auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="solution 1 has 1 scores and 2 labels"):
        step_auroc([[0.1], [0.2]], [[True], [True, False]])
    with pytest.raises(ValueError, match="score 1 must be a finite number, got nan"):
        outcome_auroc([0.1, float("nan")], [True, False])
    assert outcome_auroc([0.9, 0.1, 0.5], [True, False, False]) == 1.0


@pytest.mark.parametrize("labels, where, got", [
    ([None, True, False], "step_labels[0]", "None"),  # was counted as False
    ([0, 2, 1], "step_labels[1]", "2"),  # was counted as True
    (["False", "True", "False"], "step_labels[0]", "'False'"),  # was "got only correct"
    ([0.2, 0.9, 0.4], "step_labels[0]", "0.2"),
    ([[True, None], [False]], "step_labels[0][1]", "None"),
])
def test_step_auroc_labels_must_be_bool_or_0_1(labels, where, got):
    scores = [[0.1, 0.9], [0.5]] if isinstance(labels[0], list) else [0.1, 0.9, 0.5]
    with pytest.raises(ValueError) as err:
        step_auroc(scores, labels)
    assert f"step_auroc: {where} must be a bool or 0/1, got {got}" in str(err.value)


def test_auroc_valid_label_types_and_empty_input():
    assert step_auroc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0  # numpy bools
    assert outcome_auroc([0.1, 0.9], np.array([0, 1])) == 1.0  # numpy ints
    assert step_auroc(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1.0, 0.0, 1.0, 0.0])) == 1.0  # floats, exactly 0/1
    assert outcome_auroc([0.9, 0.1], torch.tensor([1, 0])) == outcome_auroc([0.9, 0.1], torch.tensor([True, False]))
    assert best_of_n_accuracy([[1.0, 0.0]], [[0.9, 0.1]], ns=(2,), n_resamples=1)[2] == 1.0
    with pytest.raises(ValueError, match=r"outcome_auroc: labels\[1\] must be a bool or 0/1, got np.float64\(0.5\)"):
        outcome_auroc([0.1, 0.9], np.array([1.0, 0.5]))
    with pytest.raises(ValueError, match=r"outcome_auroc: labels\[1\] must be a bool or 0/1"):
        outcome_auroc([0.1, 0.9], [True, "no"])
    with pytest.raises(ValueError, match="step_auroc: no scores and labels"):
        step_auroc([], [])


def test_base_rate_loss_is_the_entropy_of_the_label_rate():
    assert base_rate_loss([[True, False], [True, False]]) == pytest.approx(math.log(2))
    p = 3 / 4
    assert base_rate_loss([True, True, True, False]) == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)))
    assert base_rate_loss([[True], [True, True]]) == 0.0  # one class only: nothing to learn, nothing to lose
    with pytest.raises(ValueError, match="no labels"):
        base_rate_loss([])


def test_step_auroc_by_position_and_mean_by_label():
    scores = [[0.9, 0.2, 0.1], [0.8, 0.7], [0.95, 0.3]]
    labels = [[True, False, False], [True, True], [True, False]]
    rows = step_auroc_by_position(scores, labels)
    assert [(r["step"], r["n"]) for r in rows] == [(1, 3), (2, 3), (3, 1)]
    assert rows[0]["auroc"] is None and rows[0]["right"] == 1.0  # all right at step 1: nothing to rank
    assert rows[1]["auroc"] == 1.0 and rows[1]["right"] == pytest.approx(1 / 3)  # 0.7 above 0.2 and 0.3
    assert rows[2]["auroc"] is None
    assert mean_by_label(scores, labels, False) == pytest.approx((0.2 + 0.1 + 0.3) / 3)
    assert mean_by_label([[1.0]], [[True]], False) is None  # undefined, and JSON can record it (not NaN)
    table = format_credit({"DPO": {"chosen": 0.25, "rejected_right": None, "rejected_wrong": -0.5}}, 1)
    assert table.splitlines()[-1].split() == ["DPO", "0.250", "n/a", "-0.500"]
    with pytest.raises(ValueError, match="solution 0 has 2 values and 1 labels"):
        mean_by_label([[1.0, 2.0]], [[True]], True)
    for bad in (None, 0.7):  # by truth value, None counted as wrong and 0.7 as right
        with pytest.raises(ValueError, match=r"step_auroc_by_position: step_labels\[1\]\[0\] must be a bool or 0/1"):
            step_auroc_by_position(scores, [labels[0], [bad, True], labels[2]])


def test_position_only_baseline():
    assert position_only_scores([3, 1]) == [[-1.0, -2.0, -3.0], [-1.0]]
    # labels where every wrong step is later than every right one: the baseline ranks them perfectly
    assert step_auroc(position_only_scores([2, 3]), [[True, False], [True, True, False]]) == pytest.approx(
        # pairs (right, wrong) ordered by position: 3 right x 2 wrong = 6 pairs; ties (step 2 vs step 2) count 1/2
        (6 - 0.5) / 6)
    with pytest.raises(ValueError, match="solution 1's step count must be an int >= 1"):
        position_only_scores([2, 0])


HAND = dict(scores=[[0.9, 0.2, 0.8], [0.9, 0.9], [0.3, 0.9], [0.9, 0.4]], first_errors=[1, -1, 1, -1])


@pytest.mark.parametrize("scores, got", [("0.5", "one str"), (0.5, "float"), (None, "NoneType")])
def test_finite_scores_refuse_a_str_or_a_number_in_place_of_a_list(scores, got):
    """finite_scores read a str a character at a time ("score 0 must be a finite number, got '0'") and a number was
    a TypeError; diagnostics and viz wrapped their calls in list_of each."""
    with pytest.raises(ValueError, match=f"^predict_first_error: scores: expected a list of scores, got {got}"):
        predict_first_error(scores, 0.0)
    with pytest.raises(ValueError, match=rf"^choose_process_weight: orm_scores: solutions: expected a list of scores, "
                                         f"got {got}"):
        choose_process_weight([0.1, 0.9], scores, [False, True])

def test_first_error_processbench_protocol_by_hand():
    s, e = HAND["scores"], HAND["first_errors"]
    assert [predict_first_error(x, 0.5) for x in s] == [1, -1, 0, 1]
    # a PRM's log-odds rewards as they come (an array), against a log-odds threshold: the removed
    # rewards.first_predicted_error read its threshold as a probability, and the same 0.3 gave another first error here
    assert predict_first_error(np.array([0.6, 0.2]), 0.3) == 1 and predict_first_error([2.0, -3.0, 1.0], 0.0) == 1
    report = first_error_report(s, e, 0.5)
    assert report["error_accuracy"] == 0.5 and report["correct_accuracy"] == 0.5 and report["f1"] == 0.5
    assert first_error_f1(s, e, 0.35) == pytest.approx(2 * 0.5 * 1.0 / 1.5)  # D passes, C still flagged at step 0
    assert first_error_f1(s, e, 0.0) == 0.0  # nothing flagged: no erroneous solution is found
    assert first_error_index([True, True, False, False]) == 2 and first_error_index([True]) == -1


def test_process_reward_report_takes_its_threshold_from_validation():
    val_labels = [[True, False, False], [True, True], [False, True], [True, True]]  # first errors 1, -1, 0, -1
    test_labels = [[True, True, True], [True, False]]
    test_scores = [[0.9, 0.6, 0.7], [0.8, 0.1]]
    report = process_reward_report(HAND["scores"], val_labels, test_scores, test_labels)
    threshold = choose_threshold(HAND["scores"], [1, -1, 0, -1])
    assert report["threshold"] == threshold
    assert report["f1"] == first_error_f1(test_scores, [-1, 1], threshold)
    assert report["step_auroc"] == step_auroc(test_scores, test_labels)


def test_choose_threshold_is_the_best_threshold():
    s, e = HAND["scores"], HAND["first_errors"]
    t = choose_threshold(s, e)
    assert first_error_f1(s, e, t) == pytest.approx(2 / 3)
    rng = random.Random(0)
    for _ in range(20):  # against brute force over a fine grid, on random solutions
        scores = [[round(rng.random(), 2) for _ in range(rng.randint(1, 5))] for _ in range(12)]
        errors = [rng.choice([-1] + list(range(len(x)))) for x in scores]
        errors[0], errors[1] = -1, 0
        best = max(first_error_f1(scores, errors, g / 1000) for g in range(-1, 1002))
        assert first_error_f1(scores, errors, choose_threshold(scores, errors)) == pytest.approx(best)
    # Every threshold in (0.2, 0.8] scores F1 1 here; the lowest is chosen, so that a test step at 0.5 on a right
    # solution is not called a mistake (the interval's top, 0.8, would call it one)
    assert choose_threshold([[0.2], [0.8]], [0, -1]) == np.nextafter(0.2, np.inf)


def test_first_error_errors():
    with pytest.raises(ValueError, match="both erroneous and fully correct"):
        first_error_f1([[0.1], [0.2]], [-1, -1], 0.5)
    with pytest.raises(ValueError, match="solution 1: first error must be"):
        first_error_f1([[0.1], [0.2]], [0, 3], 0.5)
    with pytest.raises(ValueError, match="solution 0 has no step scores"):
        choose_threshold([[], [0.2]], [-1, 0])


def test_first_errors_labels_and_threshold_are_checked():
    s = [[0.1, 0.3], [0.2, 0.4]]
    with pytest.raises(ValueError, match="solution 0: first error must be -1 or a step index < 2, got True"):
        first_error_f1(s, [True, -1], 0.5)  # True is not step 1
    with pytest.raises(ValueError, match="first_error_f1: threshold must be a finite number, got nan"):
        first_error_f1(s, [0, -1], float("nan"))  # every comparison with NaN is False: F1 0.0
    with pytest.raises(ValueError, match="threshold must be a finite number, got None"):
        first_error_report(s, [0, -1], None)
    with pytest.raises(ValueError, match=r"first_error_index: step_labels: expected a list of labels, got one str"):
        first_error_index("TF")
    assert first_error_index([1, 0]) == 1 and first_error_f1(s, [0, -1], np.float32(0.15)) == 1.0


def test_process_reward_report_checks_both_splits_and_names_them():
    val, val_labels = [[0.1, 0.2, 0.9], [0.3, 0.5]], [[True, False, True], [True, True]]
    test, test_labels = [[0.1, 0.5], [0.2]], [[True, False], [True]]
    with pytest.raises(ValueError, match="process_reward_report: validation: solution 0 has 3 step scores and 1 "):
        process_reward_report(val, [[True], [False]], test, test_labels)
    with pytest.raises(ValueError, match="process_reward_report: test: solution 1 has 1 step scores and 2 labels"):
        process_reward_report(val, val_labels, test, [[True, False], [True, False]])
    with pytest.raises(ValueError, match="process_reward_report: test: 2 solutions of step scores but 1 of labels"):
        process_reward_report(val, val_labels, test, [[True, False]])
    with pytest.raises(ValueError, match=r"process_reward_report: test: test_labels\[0\]\[1\] must be a bool"):
        process_reward_report(val, val_labels, test, [[True, None], [True]])
    with pytest.raises(ValueError, match=r"process_reward_report: validation: val_labels\[0\]\[1\] .* got 2"):
        process_reward_report(val, [[True, 2, True], [True, True]], test, test_labels)
    with pytest.raises(ValueError, match="process_reward_report: validation: choose_threshold: the F1 needs both"):
        process_reward_report(val, [[True] * 3, [True] * 2], test, test_labels)
    assert process_reward_report(val, val_labels, test, test_labels)["n_erroneous"] == 1


def test_best_of_n_known_answers():
    correct, scores = [[False, True, False, False]], [[0.1, 0.9, 0.2, 0.3]]
    assert best_of_n_accuracy(correct, scores, ns=(1, 2, 4), subsets="first") == {1: 0.0, 2: 1.0, 4: 1.0}
    random_subsets = best_of_n_accuracy(correct, scores, ns=(1, 2, 4), n_resamples=4000, seed=1)
    assert random_subsets[4] == 1.0
    assert random_subsets[2] == pytest.approx(0.5, abs=0.04)  # 1 - C(3,2)/C(4,2): the right one is drawn
    assert random_subsets[1] == pytest.approx(0.25, abs=0.04)
    no_scores = best_of_n_accuracy(correct, None, ns=(1, 4), n_resamples=4000, seed=1)
    assert no_scores[1] == pytest.approx(0.25, abs=0.04) and no_scores[4] == pytest.approx(0.25, abs=0.04)
    # a scorer that ranks wrong answers first gets worse with N
    bad = best_of_n_accuracy([[True, False, False, False]] * 3, [[0.0, 1.0, 2.0, 3.0]] * 3, ns=(1, 4), seed=0)
    assert bad[4] == 0.0 and bad[1] == pytest.approx(0.25, abs=0.1)
    with pytest.raises(ValueError, match="N=8 but problem 0 has only 4"):
        best_of_n_accuracy(correct, scores, ns=(8,))
    with pytest.raises(ValueError, match=r"problem 0 has 1 scores and 4 labels"):
        best_of_n_accuracy(correct, [[0.1]], ns=(1,))


def test_the_random_baseline_sees_the_same_draws_as_the_methods():
    """Its pick has a generator of its own: drawn from the subsets' one, it shifted every later subset. After N=2,
    at N=1 (one candidate, nothing to pick) it must keep exactly what any scorer keeps, draw for draw."""
    rng = np.random.default_rng(5)
    correct = [list(rng.random(8) < 0.4) for _ in range(30)]
    kw = dict(ns=(2, 1), n_resamples=20, seed=0, per_problem=True)
    assert best_of_n_accuracy(correct, None, **kw)[1] == best_of_n_accuracy(correct, [[0.0] * 8] * 30, **kw)[1]


def test_majority_vote_known_answers():
    assert majority_vote_accuracy([[1, 2, 2, 3]], [2], ns=(1, 3, 4), subsets="first") == {1: 0.0, 3: 1.0, 4: 1.0}
    assert majority_vote_accuracy([[None, None, 5]], [5], ns=(2, 3), subsets="first") == {2: 0.0, 3: 1.0}
    assert majority_vote_accuracy([[1, 2]], [1], ns=(2,), subsets="first") == {2: 1.0}  # tie: first drawn
    two_of_three = majority_vote_accuracy([[7, 7, 1]], [7], ns=(3,), n_resamples=10)
    assert two_of_three == {3: 1.0}
    with pytest.raises(ValueError, match="2 gold answers"):
        majority_vote_accuracy([[1]], [1, 2], ns=(1,))
    assert majority_vote_accuracy([[(1, 2), (1, 2), 3]], [(1, 2)], ns=(3,), subsets="first") == {3: 1.0}
    with pytest.raises(ValueError, match=r"answers\[1\]\[0\] is a list, which cannot be counted as a vote"):
        majority_vote_accuracy([[1], [[1, 2]]], [1, [1, 2]], ns=(1,))  # was a TypeError from Counter, mid-count


def test_best_of_n_and_majority_refuse_empty_input_and_non_bool_correctness():
    for f, args in ((best_of_n_accuracy, ([], None)), (majority_vote_accuracy, ([], []))):
        with pytest.raises(ValueError, match=f"{f.__name__}: no problems"):  # was ZeroDivisionError
            f(*args, ns=(1,))
    with pytest.raises(ValueError, match="best_of_n_accuracy: n_resamples must be an int >= 1, got 0"):
        best_of_n_accuracy([[True, False]], None, ns=(1,), n_resamples=0)
    with pytest.raises(ValueError, match="majority_vote_accuracy: n_resamples must be an int >= 1, got 0"):
        majority_vote_accuracy([[1, 2]], [1], ns=(1,), n_resamples=0)
    with pytest.raises(ValueError, match=r"best_of_n_accuracy: correct\[0\]\[0\] must be a bool or 0/1, got 'no'"):
        best_of_n_accuracy([["no", "yes"]], [[0.1, 0.9]], ns=(1, 2))  # "no" was right: accuracy 1.0
    with pytest.raises(ValueError, match="N must be an int >= 1, got 1.5"):
        best_of_n_accuracy([[True, False]], None, ns=(1.5,))


def test_best_of_n_and_majority_per_problem_average_to_the_accuracy():
    """``per_problem=True``: each problem's share of right picks over the same draws; their mean is the accuracy."""
    correct = [[False, True, False, False], [True] * 4, [False] * 4]
    scores = [[0.1, 0.9, 0.2, 0.3], [0.0] * 4, [1.0, 0.0, 0.0, 0.0]]
    answers, gold = [[1, 2, 2, 3], [5, 5, None, 4], [1, 1, 1, 1]], [2, 5, 9]
    for subsets in ("first", "random"):
        kw = dict(ns=(1, 2, 4), n_resamples=50, seed=3, subsets=subsets)
        for sc in (scores, None):
            mean, each = best_of_n_accuracy(correct, sc, **kw), best_of_n_accuracy(correct, sc, per_problem=True, **kw)
            assert {n: sum(v) / 3 for n, v in each.items()} == pytest.approx(mean)
            assert each[4][1:] == [1.0, 0.0]  # always right / never right, whatever is drawn
        mean = majority_vote_accuracy(answers, gold, **kw)
        each = majority_vote_accuracy(answers, gold, per_problem=True, **kw)
        assert {n: sum(v) / 3 for n, v in each.items()} == pytest.approx(mean) and each[4] == [1.0, 1.0, 0.0]
    assert best_of_n_accuracy(correct, scores, ns=(2,), subsets="first", per_problem=True) == {2: [1.0, 1.0, 0.0]}
    with pytest.raises(ValueError, match="subsets must be 'random' or 'first'"):
        majority_vote_accuracy(answers, gold, ns=(1,), subsets="all")


@pytest.mark.parametrize("call, message", [
    (lambda: step_auroc([[0.1, "0.9"]], [[False, True]]), r"step_auroc: score 1 must be a finite number, got '0.9'"),
    (lambda: outcome_auroc([True, False], [1, 0]), r"outcome_auroc: score 0 must be a finite number, got True"),
    (lambda: outcome_auroc([0.1, 0.9], None), r"outcome_auroc: labels: expected a list of labels, got NoneType"),
    (lambda: first_error_f1([[None, 1.0], [1.0]], [0, -1], 0.5), r"solution 0, score 0 must be a finite number"),
    (lambda: choose_threshold([[0.1, 0.9], [0.8, "x"]], [0, -1]), r"choose_threshold: solution 1, score 1 must"),
    (lambda: best_of_n_accuracy([[True, False]], [[1.0, None]], ns=(1, 2)), r"problem 0, candidate 1 must be a finite"),
    # the arguments swapped (labels where the scores go): the message names the order
    (lambda: best_of_n_accuracy([[0.2, 0.9]], [[True, False]], ns=(1,)),
     r"best_of_n_accuracy\(correct, scores\): problem 0, candidate 0 must be a finite number, got True"),
    (lambda: first_error_index(None), r"first_error_index: step_labels: expected a list of labels, got NoneType"),
    (lambda: predict_first_error([1.0], float("nan")), r"predict_first_error: threshold must be a finite number"),
    # a NaN step score compares false with the threshold: it would pass as a right step, and step 2 be "the error"
    (lambda: predict_first_error([1.0, float("nan"), -3.0], 0.5), r"predict_first_error: score 1 must be a finite"),
    (lambda: majority_vote_accuracy(["12"], [1], ns=(1,)), r"answers\[0\]: expected a list of answers, got one str"),
])
def test_scores_and_answers_of_the_wrong_type_are_refused_by_name(call, message):
    """A None or str score raised a TypeError from math.isfinite (or a str was cast, a bool taken as a score); a NaN
    threshold predicted no error anywhere; one str of answers voted character by character."""
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("seed", [None, True, 1.5, -1])
def test_best_of_n_and_majority_vote_refuse_a_seed_that_is_no_int(seed):
    # None drew unseeded subsets (another accuracy each run), True and 1.0 acted as seed 1
    with pytest.raises(ValueError, match="best_of_n_accuracy: seed"):
        best_of_n_accuracy([[True, False]], [[0.0, 1.0]], ns=(1,), seed=seed)
    with pytest.raises(ValueError, match="majority_vote_accuracy: seed"):
        majority_vote_accuracy([[1, 2]], [1], ns=(1,), seed=seed)


@pytest.mark.parametrize("ns, message", [
    (2, r"ns: expected a list of ints \(one per N\), got int"),  # was 'int' object is not iterable
    ((), r"ns is empty"),  # returned {} without a word
    ((1, 0), r"N must be an int >= 1, got 0"),
])
def test_best_of_n_and_majority_vote_refuse_ns_that_is_no_list_of_positive_ints(ns, message):
    with pytest.raises(ValueError, match=rf"best_of_n_accuracy: {message}"):
        best_of_n_accuracy([[True, False]], [[0.0, 1.0]], ns=ns)
    with pytest.raises(ValueError, match=rf"majority_vote_accuracy: {message}"):
        majority_vote_accuracy([[1, 2]], [1], ns=ns)


def test_best_of_n_takes_ns_given_as_a_generator():
    """The check consumed a generator, so no N was left to evaluate: {} came back."""
    ns = (n for n in (1, 2))
    assert best_of_n_accuracy([[True, False]], [[1.0, 0.0]], ns=ns, subsets="first") == {1: 1.0, 2: 1.0}


def test_best_of_n_first_subsets_keeps_the_earliest_of_tied_candidates():
    """As the docstring says: equal scores keep candidate 0, right or not (the tutorial's figures rest on it)."""
    assert best_of_n_accuracy([[False, True]], [[0.0, 0.0]], ns=(2,), subsets="first") == {2: 0.0}
    assert best_of_n_accuracy([[True, False]], [[0.0, 0.0]], ns=(2,), subsets="first") == {2: 1.0}
    assert best_of_n_accuracy([[False, True, True]], [[0.0, 1.0, 1.0]], ns=(3,), subsets="first") == {3: 1.0}
    assert "earliest candidate" in best_of_n_accuracy.__doc__


@pytest.mark.parametrize("scores, labels, message", [
    ([[1.0], 0.0, 2.0], [[True], False, True], r"solution 1: expected a list of step scores, got float"),
    ([1.0, [0.0, 2.0]], [True, [False, True]], r"solution 0: expected a list of step scores, got float"),
    ([[1.0], [0.0, 2.0]], [[True], False], r"solution 1: expected a list of step labels, got bool"),
])
def test_step_auroc_refuses_a_bare_number_among_lists_of_step_scores(scores, labels, message):
    """Mixed nesting raised a TypeError (float has no len()) or numpy's inhomogeneous-shape error."""
    with pytest.raises(ValueError, match=rf"step_auroc: {message}"):
        step_auroc(scores, labels)
    with pytest.raises(ValueError, match=rf"process_reward_report: test: {message}"):
        process_reward_report([[1.0, -1.0], [1.0]], [[True, False], [True]], scores, labels)


def test_first_error_report_and_f1_name_themselves_in_their_errors():
    """A user's trial: first_error_report's errors named first_error_f1, a function the user never called."""
    s = [[0.1, 0.3], [0.2, 0.4]]
    for f in (first_error_report, first_error_f1):
        with pytest.raises(ValueError, match=rf"^{f.__name__}: the F1 needs both erroneous and fully correct"):
            f(s, [-1, -1], 0.5)
        with pytest.raises(ValueError, match=rf"^{f.__name__}: threshold must be a finite number, got nan"):
            f(s, [0, -1], float("nan"))


@pytest.mark.parametrize("correct, scores, message", [
    ([[True, False]], [[0.1]], "problem 0 has 1 scores and 2 labels"),
    ([[True], [True, False]], [[0.1]], "1 problems of scores but 2 of labels"),
    ([[True], [True, False]], [[0.1], 0.2], "problem 1: expected a list of candidate scores, got float"),
])
def test_best_of_n_scores_of_another_shape_name_the_problem_and_both_lengths(correct, scores, message):
    """It said only "scores and correct must have the same shape": which problem, and how far off?"""
    with pytest.raises(ValueError, match=rf"^best_of_n_accuracy\(correct, scores\): {message}"):
        best_of_n_accuracy(correct, scores, ns=(1,))


def test_a_score_at_the_threshold_is_no_error():
    """"Below threshold" is strict (choose_threshold's intervals (lo, hi] rest on it): a step scored exactly at the
    threshold passes."""
    from stepdpo_lite.evaluation import choose_threshold, first_error_f1, predict_first_error

    assert predict_first_error([1.0, 0.0, -1.0], 0.0) == 2
    scores, first_errors = [[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], [-1, -1, 1]
    t = choose_threshold(scores, first_errors)
    assert first_error_f1(scores, first_errors, t) == 1.0  # t in (-1, 0]: every solution judged right
    assert first_error_f1(scores, first_errors, 0.0) == 1.0  # at 0.0 exactly too: "<=" would call two steps wrong


def test_a_first_error_past_the_last_step_is_refused():
    """A first-error index equal to the step count (an off-by-one, 1-based labels) names no step: refused."""
    from stepdpo_lite.evaluation import first_error_f1

    with pytest.raises(ValueError, match=r"solution 0: first error must be -1 or a step index < 2, got 2"):
        first_error_f1([[1.0, 2.0], [0.5]], [2, -1], 0.0)


def test_first_error_f1_refuses_solutions_that_are_all_erroneous():
    """The F1 needs fully correct solutions too (correct_accuracy divides by them): a ValueError that says so, not a
    ZeroDivisionError."""
    from stepdpo_lite.evaluation import first_error_f1

    with pytest.raises(ValueError, match=r"needs both erroneous and fully correct solutions \(got 2 erroneous of 2\)"):
        first_error_f1([[-1.0], [1.0, -2.0]], [0, 1], 0.0)


def test_best_of_n_refuses_an_n_one_past_a_problems_candidates():
    """N = 3 of 2 candidates would draw the 2 and report them as best-of-3 (random subsets), or index past the
    list (first subsets): refused, naming N and the problem."""
    from stepdpo_lite.evaluation import best_of_n_accuracy, majority_vote_accuracy

    with pytest.raises(ValueError, match="best_of_n_accuracy: N=3 but problem 1 has only 2 candidates"):
        best_of_n_accuracy([[True, False, True], [True, False]], [[1.0, 0.0, 0.5], [0.2, 0.1]], ns=(3,))
    with pytest.raises(ValueError, match="majority_vote_accuracy: N=3 but problem 0 has only 2 candidates"):
        majority_vote_accuracy([["4", "5"]], ["4"], ns=(3,))


def test_a_random_pick_over_the_first_n_is_averaged_over_the_resamples():
    """subsets="first" with scores=None (the random-pick baseline): the first N are fixed, the pick is not, so it is
    drawn n_resamples times; one draw would give 0 or 1 where the expected accuracy is 1/2."""
    from stepdpo_lite.evaluation import best_of_n_accuracy

    acc = best_of_n_accuracy([[True, False]] * 4, None, ns=(2,), subsets="first", n_resamples=400)[2]
    assert acc == pytest.approx(0.5, abs=0.06)


def test_first_error_and_auroc_checks_name_a_flat_or_missing_argument():
    """Flat step scores (one list, not one per solution), or None, were a bare TypeError ("object of type 'float'
    has no len()"); flat scores beside per-solution labels numpy's "inhomogeneous shape" ValueError, naming neither."""
    with pytest.raises(ValueError, match=re.escape("first_error_f1: solution 0, scores: expected a list of scores, "
                                                   "got float")):
        first_error_f1([0.9, 0.1], [1, -1], 0.5)
    with pytest.raises(ValueError, match="choose_threshold: step_scores: expected a list of lists of step scores"):
        choose_threshold(None, [1, -1])
    with pytest.raises(ValueError, match="choose_threshold: first_errors: expected a list of first-error indices"):
        choose_threshold([[0.9, 0.1], [0.8]], None)
    with pytest.raises(ValueError, match="step_auroc: 3 solutions of scores but 2 of labels"):
        step_auroc([0.1, 0.2, 0.3], [[True, False], [True]])
    assert first_error_f1([[0.9, 0.1], [0.8, 0.7]], [np.int64(1), -1], 0.5) == 1.0  # numpy's ints are indices


def test_per_problem_must_be_a_bool():
    """per_problem="no" is truthy: it returned per-problem lists where the mean was asked for, without an error."""
    with pytest.raises(ValueError, match="best_of_n_accuracy: per_problem must be True or False, got 'no'"):
        best_of_n_accuracy([[True, False]], [[0.1, 0.2]], ns=(1,), per_problem="no")
    with pytest.raises(ValueError, match="majority_vote_accuracy: per_problem must be True or False, got 'no'"):
        majority_vote_accuracy([["1", "2"]], ["1"], ns=(1,), per_problem="no")
