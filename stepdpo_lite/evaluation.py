"""Numbers for reward models: step AUROC, first-error F1 (ProcessBench), outcome AUROC, best-of-N.

Scores can be rewards (log-odds) or probabilities: every function here only compares scores, so any
increasing map of them gives the same result, as long as a threshold is on the same scale
(0 for log-odds is 0.5 for probabilities)."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from typing import Any, Sequence

import numpy as np

from .checks import finite_number, flag, list_of, positive_int


def check_same_shape(values, labels, what: str, noun: str = "values", unit: str = "solution",
                     part: str = "step") -> None:
    """One list of values and one of labels per ``unit``, a value and a label per ``part`` (a problem's candidates)."""
    if len(values) != len(labels):
        raise ValueError(f"{what}: {len(values)} {unit}s of {noun} but {len(labels)} of labels")
    for i, (v, y) in enumerate(zip(values, labels)):  # a bare number among the lists has no len(): a TypeError
        v = list_of(v, f"{what}: {unit} {i}", f"{part} {noun.removeprefix('step ')}")
        y = list_of(y, f"{what}: {unit} {i}", f"{part} labels")
        if len(v) != len(y):
            raise ValueError(f"{what}: {unit} {i} has {len(v)} {noun} and {len(y)} labels")


def finite_scores(scores, what: str, item: str = "score") -> list[float]:
    """Each score a finite number (not a bool, a str or None: NaN compares false and a str would be cast), named
    ``{item} {k}`` ("solution 2, score 1"); one str or number for ``scores`` is refused, not read per character."""
    return [finite_number(x, f"{item} {k}", what) for k, x in enumerate(list_of(scores, f"{what}: {item}s", "scores"))]


def check_labels(labels, what: str, name: str) -> None:
    """Each label a bool or exactly 0/1 (ints, floats or a tensor's values alike); anything else (None, "True", 2,
    a probability) would be read as a bool by its truth value, so it is refused, naming ``name[index]``."""
    items = (labels.detach().cpu().tolist() if hasattr(labels, "detach")
             else list_of(labels, f"{what}: {name}", "labels"))
    y = np.asarray(items)
    if y.dtype.kind in "biuf":  # numbers: one vectorised test
        bad = np.flatnonzero(~np.isin(y, (0, 1)))
    else:  # None, strings, mixtures
        bad = np.flatnonzero([not (isinstance(v, (bool, np.bool_, numbers.Real)) and v in (0, 1)) for v in items])
    if bad.size:
        raise ValueError(f"{what}: {name}[{bad[0]}] must be a bool or 0/1, got {items[bad[0]]!r:.40}")


def flat_scores_and_labels(scores, labels, what: str, name: str = "labels"):
    # any, of both: [1.0, [0.0]] is no flat list, nor are flat scores beside per-solution labels (numpy's error)
    if any(isinstance(s, (list, tuple, np.ndarray)) for s in [*scores, *list_of(labels, f"{what}: {name}", "labels")]):
        check_same_shape(scores, labels, what, noun="scores")
        for i, y in enumerate(labels):
            check_labels(y, what, f"{name}[{i}]")
        scores = [x for s in scores for x in s]
        labels = [x for y in labels for x in y]
    else:
        check_labels(labels, what, name)
    s = np.asarray(finite_scores(np.asarray(scores, dtype=object).ravel(), what), dtype=float)
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{what}: {s.size} scores but {y.size} labels")
    if s.size == 0:
        raise ValueError(f"{what}: no scores and labels (empty input)")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError(f"{what}: AUROC needs both correct and wrong examples, "
                         f"got only {'correct' if y.all() else 'wrong'}")
    return s, y


def step_auroc(step_scores, step_labels) -> float:
    """AUROC of step scores (higher = more likely correct) against step labels (True = correct).

    Takes per-solution lists (``list[list[float]]``, ``list[list[bool]]``) or flat arrays."""
    from sklearn.metrics import roc_auc_score  # in the AUROCs only: scikit-learn takes ~1.5 s to import
    s, y = flat_scores_and_labels(step_scores, step_labels, "step_auroc", "step_labels")
    return float(roc_auc_score(y, s))


def outcome_auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """AUROC of solution scores against whether the solution is correct."""
    from sklearn.metrics import roc_auc_score
    s, y = flat_scores_and_labels(list_of(scores, "outcome_auroc: scores", "numbers"),
                                   list_of(labels, "outcome_auroc: labels", "labels"), "outcome_auroc")
    return float(roc_auc_score(y, s))


# ----------------------------------------------------------------------------- first error (ProcessBench)

def first_error_index(step_labels: Sequence[bool]) -> int:
    """0-based index of the first wrong step, or -1 when every step is right (ProcessBench's label)."""
    check_labels(step_labels, "first_error_index", "step_labels")
    return next((k for k, ok in enumerate(step_labels) if not ok), -1)


def predict_first_error(step_scores: Sequence[float], threshold: float) -> int:
    """The first step whose score is below ``threshold``, or -1. A NaN score or threshold is refused: it compares
    false with everything, so the step would pass as right without an error."""
    threshold = finite_number(threshold, "threshold", "predict_first_error")
    return next((k for k, s in enumerate(finite_scores(step_scores, "predict_first_error")) if s < threshold), -1)


def _check_first_errors(step_scores, first_errors, what):
    step_scores = list_of(step_scores, f"{what}: step_scores", "lists of step scores (one per solution)")
    first_errors = list_of(first_errors, f"{what}: first_errors", "first-error indices (-1: none)")
    if len(step_scores) != len(first_errors):
        raise ValueError(f"{what}: {len(step_scores)} solutions of scores but {len(first_errors)} labels")
    for i, (s, e) in enumerate(zip(step_scores, first_errors)):
        if len(finite_scores(s, what, f"solution {i}, score")) == 0:  # a flat list's float: no len(), a TypeError
            raise ValueError(f"{what}: solution {i} has no step scores")
        if isinstance(e, bool) or not (isinstance(e, (int, np.integer)) and -1 <= e < len(s)):
            raise ValueError(f"{what}: solution {i}: first error must be -1 or a step index < {len(s)}, got {e!r}")
    errors = sum(e >= 0 for e in first_errors)
    if errors == 0 or errors == len(first_errors):
        raise ValueError(f"{what}: the F1 needs both erroneous and fully correct solutions "
                         f"(got {errors} erroneous of {len(first_errors)})")


def first_error_report(step_scores: Sequence[Sequence[float]], first_errors: Sequence[int], threshold: float, *,
                       who: str = "first_error_report") -> dict:
    """ProcessBench (Zheng et al. 2024, arXiv:2412.06559): the predicted first error is the first step
    scored below ``threshold``; ``error_accuracy`` = share of erroneous solutions whose first error is
    found exactly, ``correct_accuracy`` = share of fully correct solutions with no error predicted,
    ``f1`` = their harmonic mean. Errors name ``who``, the function called."""
    _check_first_errors(step_scores, first_errors, who)
    finite_number(threshold, "threshold", who)
    hits = [predict_first_error(s, threshold) == e for s, e in zip(step_scores, first_errors)]
    err = [h for h, e in zip(hits, first_errors) if e >= 0]
    cor = [h for h, e in zip(hits, first_errors) if e < 0]
    a, b = sum(err) / len(err), sum(cor) / len(cor)
    return {"f1": 2 * a * b / (a + b) if a + b else 0.0, "error_accuracy": a, "correct_accuracy": b,
            "threshold": threshold, "n_erroneous": len(err), "n_correct": len(cor)}


def first_error_f1(step_scores: Sequence[Sequence[float]], first_errors: Sequence[int], threshold: float) -> float:
    """The ProcessBench F1 (see ``first_error_report``); choose ``threshold`` on validation data."""
    return first_error_report(step_scores, first_errors, threshold, who="first_error_f1")["f1"]


def choose_threshold(step_scores: Sequence[Sequence[float]], first_errors: Sequence[int]) -> float:
    """The threshold with the best first-error F1 on these (validation) solutions, exactly.

    A solution is judged right for every threshold in an interval: (-inf, min score] when it is fully
    correct, (score of its first error, min score before it] when it is not. So F1 only changes at
    score values, and trying each score and the next float above it covers every case. Of equal F1, the lowest wins."""
    _check_first_errors(step_scores, first_errors, "choose_threshold")
    lo, hi = [], []
    for s, e in zip(step_scores, first_errors):
        before = min(s[:e]) if e > 0 else math.inf
        lo.append(-math.inf if e < 0 else s[e])
        hi.append(min(s) if e < 0 else before)
    lo, hi, erroneous = np.array(lo), np.array(hi), np.array([e >= 0 for e in first_errors])
    values = np.unique(np.concatenate([np.asarray(s, dtype=float) for s in step_scores]))
    candidates = np.unique(np.concatenate([values, np.nextafter(values, np.inf)]))
    right = (candidates[:, None] > lo) & (candidates[:, None] <= hi)
    a, b = right[:, erroneous].mean(1), right[:, ~erroneous].mean(1)
    f1 = np.where(a + b > 0, 2 * a * b / np.maximum(a + b, 1e-300), 0.0)
    return float(candidates[int(np.argmax(f1))])


def process_reward_report(val_scores, val_labels, test_scores, test_labels) -> dict:
    """A PRM's held-out figures: test step AUROC, and the first-error F1 at the threshold chosen on validation
    (``choose_threshold``), plus that threshold. Scores are per-step rewards, labels per-step bools.
    Errors name the split (validation or test) and the solution."""
    for split, arg, scores, labels in (("validation", "val", val_scores, val_labels),
                                       ("test", "test", test_scores, test_labels)):
        what = f"process_reward_report: {split}"
        check_same_shape(scores, labels, what, noun="step scores")
        for i, y in enumerate(labels):
            check_labels(y, what, f"{arg}_labels[{i}]")
    try:
        threshold = choose_threshold(val_scores, [first_error_index(l) for l in val_labels])
    except ValueError as e:
        raise ValueError(f"process_reward_report: validation: {e}") from None
    try:
        report = first_error_report(test_scores, [first_error_index(l) for l in test_labels], threshold)
        return {"step_auroc": step_auroc(test_scores, test_labels), **report}
    except ValueError as e:
        raise ValueError(f"process_reward_report: test: {e}") from None


# ----------------------------------------------------------------------------- best-of-N

def _check_ns(ns, sizes, subsets, what, n_resamples, per_problem) -> list:
    """``ns`` as a list, each N an int >= 1 that no problem has fewer candidates than."""
    flag(per_problem, "per_problem", what)  # "no" is truthy: a list per problem instead of the mean
    if not (ns := list_of(ns, f"{what}: ns", "ints (one per N)")):  # () would return {} without a word
        raise ValueError(f"{what}: ns is empty; give the N to evaluate, e.g. ns=(1, 4)")
    if subsets not in ("random", "first"):
        raise ValueError(f"{what}: subsets must be 'random' or 'first', got {subsets!r}")
    if not sizes:
        raise ValueError(f"{what}: no problems (empty input)")
    positive_int(n_resamples, "n_resamples", what)
    for n in ns:
        positive_int(n, "N", what)
        for i, m in enumerate(sizes):
            if n > m:
                raise ValueError(f"{what}: N={n} but problem {i} has only {m} candidates")
    return ns


def _resampled_accuracy(sizes, ns, right, rng, rounds: int, subsets: str, per_problem: bool) -> dict:
    """For each N: ``right(i, picked)`` (is the candidate a method keeps of problem i's draw right?) over
    ``rounds`` draws of N candidates; the mean, or each problem's share of right picks (``per_problem``)."""
    out = {}
    for n in ns:
        hits = np.zeros(len(sizes), dtype=int)
        for _ in range(rounds):
            for i, size in enumerate(sizes):
                hits[i] += bool(right(i, np.arange(n) if subsets == "first" else rng.permutation(size)[:n]))
        out[n] = (hits / rounds).tolist() if per_problem else int(hits.sum()) / (rounds * len(sizes))
    return out


def best_of_n_accuracy(correct: Sequence[Sequence[bool]], scores: Sequence[Sequence[float]] | None,
                       ns: Sequence[int] = (1, 2, 4, 8, 16), seed: int = 0, n_resamples: int = 100,
                       subsets: str = "random", per_problem: bool = False) -> dict[int, float | list[float]]:
    """Accuracy when the highest-scored of N candidates is kept, for each N in ``ns``.

    ``correct[i][j]``: whether candidate j of problem i is right; ``scores`` the same shape, or None for a random pick
    (the baseline). ``subsets="random"`` draws N of the candidates ``n_resamples`` times (ties go to the earlier draw,
    i.e. at random); ``"first"`` takes the first N once (``scores=None``: a random pick in them, drawn ``n_resamples``
    times); of tied top scores it keeps the earliest candidate (candidate 0, right or not). ``per_problem=True``: each
    problem's share of right picks instead of the mean, for paired comparisons of two methods. ``seed``, an int >= 0,
    fixes the draws: every call with the same arguments draws the same subsets."""
    if scores is not None:
        check_same_shape(scores, correct, "best_of_n_accuracy(correct, scores)", "scores", "problem", "candidate")
        for i, s in enumerate(scores):  # True here is most likely a swap: the order is named in the message
            finite_scores(s, "best_of_n_accuracy(correct, scores)", f"problem {i}, candidate")
    for i, c in enumerate(correct):
        check_labels(c, "best_of_n_accuracy", f"correct[{i}]")
    sizes = [len(c) for c in correct]
    ns = _check_ns(ns, sizes, subsets, "best_of_n_accuracy", n_resamples, per_problem)
    rng = np.random.default_rng(positive_int(seed, "seed", "best_of_n_accuracy", minimum=0))
    # The random pick has a generator of its own: drawing it from rng would shift every later draw, and the
    # baseline would then see other subsets than the methods it is compared with (paired by draw, not only problem)
    pick_rng = np.random.default_rng([seed, 1])

    def right(i, pick):
        return correct[i][pick_rng.choice(pick) if scores is None else
                          pick[int(np.argmax(np.asarray(scores[i])[pick]))]]

    rounds = 1 if subsets == "first" and scores is not None else n_resamples
    return _resampled_accuracy(sizes, ns, right, rng, rounds, subsets, per_problem)


def majority_vote_accuracy(answers: Sequence[Sequence[Any]], gold: Sequence[Any], ns: Sequence[int] = (1, 2, 4, 8, 16),
                           seed: int = 0, n_resamples: int = 100, subsets: str = "random",
                           per_problem: bool = False) -> dict[int, float | list[float]]:
    """Accuracy of the most common answer among N candidates (self-consistency, Wang et al. 2022, arXiv:2203.11171).

    ``None`` answers (unparseable) do not vote; ties go to the answer drawn first. ``seed``, ``per_problem``: as
    in ``best_of_n_accuracy``."""
    if len(answers) != len(gold):
        raise ValueError(f"majority_vote_accuracy: {len(answers)} problems of answers but {len(gold)} gold answers")
    sizes = [len(list_of(a, f"majority_vote_accuracy: answers[{i}]", "answers")) for i, a in enumerate(answers)]
    ns = _check_ns(ns, sizes, subsets, "majority_vote_accuracy", n_resamples, per_problem)
    for i, j, answer in ((i, j, answer) for i, a in enumerate(answers) for j, answer in enumerate(a)):
        try:
            hash(answer)  # votes are counted by hash: a list answer was a TypeError mid-count
        except TypeError:
            raise ValueError(f"majority_vote_accuracy: answers[{i}][{j}] is a {type(answer).__name__}, which "
                             "cannot be counted as a vote: pass one answer (a number, str or tuple)") from None

    def right(i, pick):
        votes = [answers[i][j] for j in pick if answers[i][j] is not None]
        return bool(votes) and Counter(votes).most_common(1)[0][0] == gold[i]  # most_common: first seen wins ties

    rounds = 1 if subsets == "first" else n_resamples
    rng = np.random.default_rng(positive_int(seed, "seed", "majority_vote_accuracy", minimum=0))
    return _resampled_accuracy(sizes, ns, right, rng, rounds, subsets, per_problem)
