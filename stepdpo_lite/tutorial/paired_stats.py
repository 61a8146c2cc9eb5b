"""How sure a difference in accuracy is: paired-t intervals over the same problems.

``paired_difference`` is the mean per-problem difference between two policies (or two best-of-N pickers) with its
95% interval (``scipy.stats.ttest_rel``); ``accuracy_differences`` applies it to the greedy and the sampled accuracy
of two policies that ``policy_eval.greedy_and_sampled_accuracy(per_problem=True)`` measured. Readers: notebook 04 and
the on-policy rounds (``onpolicy``, ``onpolicy_report``), ``bestofn`` for best-of-N, ``viz`` for the intervals drawn.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..checks import finite_number, positive_int


def accuracy_differences(a: dict, b: dict) -> dict:
    """Policy A's greedy and sampled accuracy minus policy B's on the same problems, each with its 95% interval
    (``paired_difference``); ``a`` and ``b`` are the ``"per_problem"`` parts of
    ``policy_eval.greedy_and_sampled_accuracy``."""
    for name, side in (("a", a), ("b", b)):  # the whole greedy_and_sampled_accuracy result: a KeyError
        keys = ("n_sampled", "greedy_right", "sampled_right")
        if not isinstance(side, dict) or any(key not in side for key in keys):
            got = sorted(side) if isinstance(side, dict) else type(side).__name__
            raise ValueError(f"accuracy_differences: {name} must be the 'per_problem' part of "
                             f"policy_eval.greedy_and_sampled_accuracy, a dict with {list(keys)}; got {got}")
    if a["n_sampled"] != b["n_sampled"]:  # each count is a share of its own n: one n for both would be wrong
        raise ValueError(f"accuracy_differences: the policies were sampled {a['n_sampled']} and {b['n_sampled']} "
                         "times per problem; compare runs with the same n_sampled")
    return {"accuracy": paired_difference(a["greedy_right"], b["greedy_right"]),
            "sampled_accuracy": paired_difference(a["sampled_right"], b["sampled_right"], n=a["n_sampled"])}


def paired_difference(right_a, right_b, n: int = 1, confidence: float = 0.95) -> dict:
    """Accuracy of policy A minus that of policy B on the same problems, with a paired-t confidence interval.

    ``right_a[i]``, ``right_b[i]``: how many of the ``n`` solutions each policy wrote for problem ``i`` are right
    (``policy_eval.greedy_and_sampled_accuracy(per_problem=True)``). Pairing by problem takes the problems' own
    difficulty out of the noise, which is what is left when two policies are compared on one test set: the interval
    is that of the mean of the per-problem differences ``d_i = (right_a[i] − right_b[i]) / n`` (Student's t,
    ``scipy.stats.ttest_rel``). Returns ``{"difference", "low", "high"}`` as fractions (0.03 = 3 points)."""
    positive_int(n, "n", "paired_difference")  # n = 0 or NaN would make every share NaN, past the range check
    # a NaN confidence gave a NaN interval, and any was ignored when the differences have no spread
    if not 0 < finite_number(confidence, "confidence", "paired_difference") < 1:
        raise ValueError(f"paired_difference: confidence must lie strictly between 0 and 1, got {confidence!r}")
    not_flat = ValueError("paired_difference: right_a and right_b must be flat lists of numbers, one per problem (a "
                          f"count of right solutions), got {right_a!r:.60} and {right_b!r:.60}")
    try:  # a list in a list, or a dict: numpy's error named neither list
        kinds = [np.asarray(x).dtype.kind for x in (right_a, right_b)]
    except ValueError:
        raise not_flat from None
    for name, kind in zip(("right_a", "right_b"), kinds):
        if kind in "US":  # "1" was read as the number 1
            raise ValueError(f"paired_difference: {name} must hold numbers (counts of right solutions), got strs")
    try:
        a, b = (np.asarray(x, dtype=float) for x in (right_a, right_b))
    except (TypeError, ValueError):
        raise not_flat from None
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_difference: right_a and right_b must be flat lists of the same problems, got "
                         f"shapes {a.shape} and {b.shape}")
    # a NaN compares false with the range check below: it would pass. Shares are fine (best-of-N's picks, n = 1)
    for name, counts in (("right_a", a), ("right_b", b)):
        bad = np.flatnonzero(~np.isfinite(counts))
        if bad.size:
            raise ValueError(f"paired_difference: {name}[{bad[0]}] must be a finite count of right solutions, got "
                             f"{float(counts[bad[0]])}")
    a, b = a / n, b / n
    if len(a) < 2:
        raise ValueError(f"paired_difference: an interval needs at least 2 problems, got {len(a)}")
    if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) > 1:
        raise ValueError(f"paired_difference: counts must lie between 0 and n = {n}")
    d = a - b
    mean = float(d.mean())
    if np.ptp(d) == 0:  # every problem differs alike (often: not at all): no spread, the interval is the point
        return {"difference": mean, "low": mean, "high": mean}
    ci = stats.ttest_rel(a, b).confidence_interval(confidence)
    return {"difference": mean, "low": float(ci.low), "high": float(ci.high)}
