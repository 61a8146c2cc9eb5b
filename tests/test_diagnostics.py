"""diagnostics: the notebooks' summaries refuse labels and rewards they would misread."""
import math

import numpy as np
import pytest

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
