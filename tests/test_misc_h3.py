"""Bad input refused with a ValueError that names the argument (a review, 2026-12-04)."""

import pytest

from stepdpo_lite.tutorial import diagnostics


@pytest.mark.parametrize("index, match", [(-1, "index must be an int >= 0"), (True, "index must be an int >= 0"),
                                          (2, "index 2, but there are 2 rejected solutions")])
def test_credit_example_refuses_an_index_that_names_no_pair(index, match):
    """-1 drew the last pair and recorded it as pair -1, True pair 1; 2 was an IndexError."""
    out = {"DPO": {"rejected": [[0.5, -0.5], [-0.5]]}}
    assert diagnostics.credit_example(out, [[True, False], [False]], 1)["pair"] == 1
    with pytest.raises(ValueError, match=f"credit_example: {match}"):
        diagnostics.credit_example(out, [[True, False], [False]], index)


def test_credit_example_refuses_rewards_of_other_pairs():
    with pytest.raises(ValueError, match="credit_example: DPO: rewards of 1 rejected solutions for 2 label lists"):
        diagnostics.credit_example({"DPO": {"rejected": [[0.5]]}}, [[True], [False]], 0)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), None, True, "0.0"])
def test_format_step_rewards_refuses_a_threshold_that_is_no_number(threshold):
    """A NaN threshold marked every right step as a disagreement with the checker (reward >= NaN is False)."""
    with pytest.raises(ValueError, match="format_step_rewards: threshold must be a finite number"):
        diagnostics.format_step_rewards("p", ["Step 1: 1 + 1 = 2"], [1.0], [True], threshold)


def test_format_step_rewards_refuses_one_str_of_steps():
    with pytest.raises(ValueError, match="format_step_rewards: steps: expected a list of steps"):
        diagnostics.format_step_rewards("p", "ab", [1.0, 2.0], [True, True], 0.0)
