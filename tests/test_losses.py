"""The Stepwise DPO losses as pure tensor maths (docs/method.md §4)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stepdpo_lite.losses import (AGGREGATION_STRATEGIES, aggregate_reward_lists, aggregate_rewards,
                                 compute_outcome_loss, compute_step_loss, first_error_mask, positional_weights,
                                 step_logps, step_margin)


def test_step_logps_is_a_segment_sum_that_drops_masked_tokens():
    torch.manual_seed(0)
    tok = torch.randn(3, 10)
    ids = torch.tensor([[-1, -1, 0, 0, 1, 1, 1, 2, -1, -1],
                        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                        [-1, 1, 1, 3, 3, 5, 4, -1, -1, -1]])  # 5 and 4 >= num_steps: dropped
    out = step_logps(tok, ids, num_steps=4)
    expected = torch.zeros(3, 4)
    for b in range(3):
        for t in range(10):
            if 0 <= ids[b, t] < 4:
                expected[b, ids[b, t]] += tok[b, t]
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, expected)


def test_step_logps_gradient_flows_to_step_tokens_only():
    tok = torch.randn(1, 5, requires_grad=True)
    step_logps(tok, torch.tensor([[-1, 0, 0, 1, -1]]), 2).sum().backward()
    assert tok.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]


def test_step_logps_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        step_logps(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.long), 1)


def test_positional_weights_default_and_extension():
    assert positional_weights(None, 3).tolist() == [1, 1, 1]
    assert positional_weights([1.0, 0.5], 4).tolist() == [1.0, 0.5, 0.5, 0.5]
    assert positional_weights([1.0, 0.5, 0.25], 2).tolist() == [1.0, 0.5]
    assert positional_weights([], 3).tolist() == [1, 1, 1]  # an empty list is unset, not a list to extend


def test_step_loss_refuses_per_row_weights():
    """(B, S) weights were flattened and row 0's weights used for every pair: a wrong loss, no error."""
    z, ones = torch.zeros(2, 2), torch.ones(2, 2)
    with pytest.raises(ValueError, match=r"positional weights are one list .* shape \(2, 2\)"):
        compute_step_loss(z + 1, z, ones, ones * 0, 1.0, step_weights=[[1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("strategy", AGGREGATION_STRATEGIES)
def test_aggregate_rewards_matches_definitions_on_valid_steps(strategy):
    r = torch.tensor([[1.0, -2.0, 3.0, 9.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    w = [1.0, 0.5]
    out = aggregate_rewards(r, strategy, weights=w, mask=mask)
    rows = [[1.0, -2.0, 3.0], [0.5], []]
    a = [1.0, 0.5, 0.5]
    expect = {
        "weighted_sum": [sum(x * y for x, y in zip(a, row)) for row in rows],
        "mean": [sum(row) / len(row) if row else 0.0 for row in rows],
        "min": [min(row) if row else 0.0 for row in rows],
        "max": [max(row) if row else 0.0 for row in rows],
        "product": [sum(F.logsigmoid(torch.tensor(x)).item() for x in row) for row in rows],
        "last": [row[-1] if row else 0.0 for row in rows],
    }[strategy]
    torch.testing.assert_close(out, torch.tensor(expect))


def test_aggregate_rewards_product_is_log_of_product_of_probabilities_and_lists_work():
    rewards = [0.3, -1.2, 2.0]
    p = torch.sigmoid(torch.tensor(rewards)).prod().item()
    assert aggregate_reward_lists(rewards, "product") == pytest.approx(torch.log(torch.tensor(p)).item(), abs=1e-6)
    assert aggregate_reward_lists([[1.0, 2.0], [3.0, -1.0]], "min") == [1.0, -1.0]
    with pytest.raises(ValueError, match="strategy"):
        aggregate_reward_lists(rewards, "median")


def test_the_tensor_reduction_and_the_list_api_are_two_functions():
    """aggregate_rewards did two jobs, switched in five places: the trainer's unchecked reduction of a tensor and a
    user's lists (checked, ragged ones padded, floats out). A list given to it is now refused, naming
    aggregate_reward_lists, which checks and pads lists and reduces them by the same tensor function."""
    with pytest.raises(ValueError, match="aggregate_rewards: step_rewards must be a tensor, got list; "
                                         "aggregate_reward_lists takes lists of step rewards"):
        aggregate_rewards([1.0, 2.0])
    padded = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    for strategy in AGGREGATION_STRATEGIES:
        want = aggregate_rewards(padded, strategy, [1.0, 0.5], mask).tolist()
        assert aggregate_reward_lists([[1.0, -2.0, 3.0], [0.5]], strategy, [1.0, 0.5]) == pytest.approx(want)
        assert aggregate_reward_lists([1.0, -2.0, 3.0], strategy, [1.0, 0.5]) == pytest.approx(want[0])

def test_outcome_loss_is_dpo_without_rewards_and_soft_with_them():
    torch.manual_seed(0)
    c, r = torch.randn(5), torch.randn(5)
    beta = 0.3
    torch.testing.assert_close(compute_outcome_loss(c, r, beta), -F.logsigmoid(beta * (c - r)))
    rc, rr = torch.randn(5), torch.randn(5)
    w = torch.sigmoid(rc - rr)
    h = c - r
    expected = -(w * F.logsigmoid(beta * h) + (1 - w) * F.logsigmoid(-beta * h))
    torch.testing.assert_close(compute_outcome_loss(c, r, beta, rc, rr), expected)
    # a confident reward model (w -> 1) gives DPO back
    big = torch.full((5,), 50.0)
    torch.testing.assert_close(compute_outcome_loss(c, r, beta, big, -big), -F.logsigmoid(beta * h))


def test_step_loss_formula():
    torch.manual_seed(1)
    rc, rr = torch.randn(2, 3), torch.randn(2, 3)
    pc, pr = torch.rand(2, 3), torch.rand(2, 3)
    mc = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    mr = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    a = [1.0, 0.5, 0.25]
    beta = 0.7
    out = compute_step_loss(rc, rr, pc, pr, beta, mc, mr, a)
    at = torch.tensor(a)
    margin = (at * pc * rc * mc).sum(1) - (at * (1 - pr) * rr * mr).sum(1)
    torch.testing.assert_close(out, -F.logsigmoid(beta * margin))


def test_correct_rejected_step_gets_no_gradient_from_the_step_loss():
    rc = torch.randn(1, 3, requires_grad=True)
    rr = torch.randn(1, 3, requires_grad=True)
    pc = torch.ones(1, 3)
    pr = torch.tensor([[1.0, 1.0, 0.0]])  # two correct steps, then the error
    compute_step_loss(rc, rr, pc, pr, 0.5).sum().backward()
    assert rr.grad[0, :2].abs().max().item() == 0.0
    assert rr.grad[0, 2].item() > 0  # the wrong step is pushed down (loss grows with its log-ratio)
    assert (rc.grad < 0).all()  # every correct chosen step is pushed up


def test_first_error_selection_gives_step_dpo():
    # Shared correct prefix (steps 0, 1), first difference at step 2 (Lai et al. 2024, Eq. 2)
    rc, rr = torch.randn(1, 4), torch.randn(1, 4)
    rr[0, :2] = rc[0, :2]
    mask = first_error_mask(torch.tensor([2]), 4)
    assert mask.tolist() == [[False, False, True, False]]
    out = compute_step_loss(rc, rr, torch.ones(1, 4), torch.zeros(1, 4), 0.2, mask, mask)
    torch.testing.assert_close(out, -F.logsigmoid(0.2 * (rc[:, 2] - rr[:, 2])))
    assert not first_error_mask(torch.tensor([-1]), 3).any()


def test_losses_refuse_shapes_that_would_broadcast():
    b3, s3 = torch.zeros(3), torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"chosen_logratios \(3,\), rejected_logratios \(3, 1\)"):
        compute_outcome_loss(b3, b3[:, None], 0.1)  # was a 3x3 loss
    with pytest.raises(ValueError, match="both chosen_rewards and rejected_rewards, or neither"):
        compute_outcome_loss(b3, b3, 0.1, chosen_rewards=b3)  # was plain DPO
    with pytest.raises(ValueError, match=r"rejected_step_logratios \(3, 3\), rejected_step_probs \(3,\)"):
        compute_step_loss(s3, s3, s3, b3, 0.1)  # was spread across steps instead of pairs
    with pytest.raises(ValueError, match=r"chosen_step_mask \(3, 2\)"):
        compute_step_loss(s3, s3, s3, s3, 0.1, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="not the same pairs"):
        compute_step_loss(s3, s3[:2], s3, s3[:2], 0.1)
    with pytest.raises(ValueError, match="step_ids must be an integer tensor, got torch.float32"):
        step_logps(torch.ones(1, 3), torch.tensor([[0.7, 1.2, 1.9]]), 2)  # was truncated to steps 0, 1, 1
    # the two sides may have different step counts: each sums its own steps
    assert compute_step_loss(torch.ones(2, 3), torch.ones(2, 1), torch.ones(2, 3), torch.zeros(2, 1), 0.1).shape == (2,)


def test_aggregate_rewards_refuses_nan_and_a_bare_number():
    with pytest.raises(ValueError, match=r"step 1: the reward must be finite"):
        aggregate_reward_lists([1.0, float("nan")], "min")
    with pytest.raises(ValueError, match="got one number"):
        aggregate_reward_lists(3.0, "min")
    assert aggregate_reward_lists([1.0, -2.0], "min") == pytest.approx(-2.0)


def test_aggregate_rewards_takes_solutions_of_different_lengths_and_names_a_reward_that_is_no_number():
    """A list of solutions with different step counts (the usual case) failed in torch ("expected sequence of length
    2 at dim 1"), and a None in a list as "must be real number": neither named the solution or the step."""
    ragged = [[1.0, 2.0], [3.0]]
    assert aggregate_reward_lists(ragged, "min") == [1.0, 3.0]
    assert aggregate_reward_lists(ragged, "mean") == [1.5, 3.0]
    assert aggregate_reward_lists(ragged, "last") == [2.0, 3.0]  # each solution's own last step, not a padded 0
    assert aggregate_reward_lists(ragged, "product") == pytest.approx(
        [aggregate_reward_lists([1.0, 2.0], "product"), aggregate_reward_lists([3.0], "product")])
    with pytest.raises(ValueError, match=r"aggregate_reward_lists: step 1: a reward must be a number, got None"):
        aggregate_reward_lists([1.0, None])
    with pytest.raises(ValueError, match=r"aggregate_reward_lists: solution 1, step 1: a reward must be a number, "
                                         r"got 'x'"):
        aggregate_reward_lists([[1.0], [2.0, "x"]])


@pytest.mark.parametrize("strategy", AGGREGATION_STRATEGIES)
def test_aggregate_rewards_takes_an_integer_tensor_of_step_labels_as_float(strategy):
    """0/1 step labels as an int tensor failed inside torch for min/max/product (torch.finfo, log_sigmoid on Long),
    and weighted_sum cast its weights to int (0.5 → 0)."""
    labels = torch.tensor([[1, 0, 1], [1, 1, 1]])
    out = aggregate_rewards(labels, strategy, weights=[1.0, 0.5])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, aggregate_rewards(labels.float(), strategy, weights=[1.0, 0.5]))
    assert out.tolist() == pytest.approx({"weighted_sum": [1.5, 2.0], "mean": [2 / 3, 1.0], "min": [0.0, 1.0],
                                          "max": [1.0, 1.0], "last": [1.0, 1.0],
                                          "product": [2 * F.logsigmoid(torch.tensor(1.0)).item()
                                                      + F.logsigmoid(torch.tensor(0.0)).item(),
                                                      3 * F.logsigmoid(torch.tensor(1.0)).item()]}[strategy])


def test_aggregate_rewards_names_the_solution_of_a_nan_and_refuses_per_solution_weights_of_another_shape():
    """A NaN in the second of two solutions was reported as "step 0 ... got [1.0, nan]" (a column across the
    solutions, no solution named); (1, S) or (B, 1) per-solution weights broadcast to wrong sums without an error."""
    with pytest.raises(ValueError, match=r"aggregate_reward_lists: solution 1, step 0: the reward must be finite, "
                                         r"got nan"):
        aggregate_reward_lists([[1.0, 2.0], [float("nan")]], "min")
    with pytest.raises(ValueError, match=r"aggregate_reward_lists: solution 0, step 1: the reward must be finite"):
        aggregate_reward_lists(np.array([[1.0, np.inf]]), "mean")
    with pytest.raises(ValueError, match=r"aggregate_rewards: shapes differ: step_rewards \(2, 2\), weights \(1, 2\)"):
        aggregate_reward_lists([[1.0, 2.0], [3.0, 4.0]], "weighted_sum", weights=[[1.0, 0.5]])
    with pytest.raises(ValueError, match=r"shapes differ: step_rewards \(1, 2\), weights \(1, 1\)"):
        aggregate_reward_lists([[1.0, 2.0]], "weighted_sum", weights=[[1.0]])  # was 3.0: the one weight on both steps
    assert aggregate_reward_lists([[1.0, 2.0], [3.0, 4.0]], "weighted_sum", [[1.0, 0.5], [0.0, 1.0]]) == [2.0, 4.0]


def test_aggregate_rewards_refuses_a_mask_of_another_shape():
    """The mask is one bool per step (docstring: "same shape"); a (B, 1) mask broadcast over the steps, and "mean"
    summed a solution's steps divided by 1 (6.0 for steps 1, 2, 3), without an error."""
    r = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    for mask in (torch.tensor([[True], [False], [True]]), torch.tensor([True, True, False])):
        with pytest.raises(ValueError, match=r"aggregate_rewards: shapes differ: step_rewards \(3, 3\), mask"):
            aggregate_rewards(r, "mean", mask=mask)
    assert aggregate_rewards(r, "mean", mask=torch.tensor([[True, True, False]] * 3)).tolist() == [1.5, 4.5, 7.5]


def test_step_margin_gives_the_step_loss_inner_difference_for_a_variant():
    """docs/method.md offers a margin, −log σ(β_step·h − γ), as the example of one's own step loss, but
    compute_step_loss gave only the finished loss: a user trial copied its internals (p·a·m·ρ per side, 1 − p⁻ on the
    rejected side) to get h. step_margin is that h, and compute_step_loss is −log σ(β·step_margin) exactly."""
    torch.manual_seed(2)
    rc, rr, pc, pr = torch.randn(3, 4), torch.randn(3, 2), torch.rand(3, 4), torch.rand(3, 2)
    mc, mr = torch.rand(3, 4) > 0.3, torch.rand(3, 2) > 0.3
    h = step_margin(rc, rr, pc, pr, mc, mr, [1.0, 0.5])  # the order of StepwiseDPOTrainer.step_loss's arguments
    a = torch.tensor([1.0, 0.5, 0.5, 0.5])
    torch.testing.assert_close(h, (a * pc * rc * mc).sum(1) - (a[:2] * (1 - pr) * rr * mr).sum(1))
    assert torch.equal(compute_step_loss(rc, rr, pc, pr, 0.3, mc, mr, [1.0, 0.5]), -F.logsigmoid(0.3 * h))
    with pytest.raises(ValueError, match=r"step_margin: shapes differ: chosen_step_logratios \(3, 4\), "
                                         r"chosen_step_probs \(3, 2\)"):
        step_margin(rc, rr, pr, pr)
    with pytest.raises(ValueError, match="compute_step_loss: the sides are not the same pairs"):  # its own name
        compute_step_loss(rc, rr[:2], pc, pr[:2], 0.1)


def test_aggregate_rewards_refuses_a_solution_without_steps():
    """[] (a solution with no steps) was scored 0.0 (product: log 1), above any solution with a doubted step, and
    [[1.0], []] gave the second solution 0.0 the same way, as did np.array([]) after lists were refused;
    aggregate_steps, behind bestofn.aggregate, search.beam_search and a PRM's aggregate, now names its caller. A
    tensor's row without a masked-in step (the trainer's padding) still gets 0."""
    from stepdpo_lite.losses import aggregate_steps

    for rows, where in (([], "step_rewards"), ([[1.0], []], r"step_rewards\[1\]"), ([[], []], r"step_rewards\[0\]"),
                        (np.array([]), "step_rewards"), (np.zeros((2, 0)), r"step_rewards\[0\]")):  # arrays too
        for strategy in AGGREGATION_STRATEGIES:
            with pytest.raises(ValueError, match=f"aggregate_reward_lists: {where} is empty: a solution without"):
                aggregate_reward_lists(rows, strategy)
    for strategy in ("min", lambda rewards: 1.0):
        with pytest.raises(ValueError, match=r"ProcessRewardModel.aggregate: the step rewards: no step rewards"):
            aggregate_steps([], strategy, "the step rewards", "ProcessRewardModel.aggregate")
    assert aggregate_rewards(torch.zeros(2, 0), "min").tolist() == [0.0, 0.0]
    assert aggregate_rewards(torch.ones(1, 2), "max", mask=torch.zeros(1, 2, dtype=torch.bool)).tolist() == [0.0]


def test_aggregate_rewards_defaults_to_min():
    """The documented default (the PRM aggregation of Wang et al. 2024), lists and tensors alike."""
    from stepdpo_lite.losses import aggregate_reward_lists

    assert aggregate_reward_lists([0.5, -1.0, 2.0]) == -1.0
    assert aggregate_reward_lists([[0.5, -1.0, 2.0], [3.0]]) == [-1.0, 3.0]
    assert aggregate_rewards(torch.tensor([[0.5, -1.0, 2.0], [3.0, 1.0, 2.0]])).tolist() == [-1.0, 1.0]


def test_aggregate_reward_lists_refuses_a_bool_reward_naming_the_step():
    """True is no log-odds reward (it would read as 1.0: σ = 0.73); labels are not rewards."""
    from stepdpo_lite.losses import aggregate_reward_lists

    with pytest.raises(ValueError, match="step 1: a reward must be a number, got True"):
        aggregate_reward_lists([0.5, True])
    with pytest.raises(ValueError, match="solution 1, step 0: a reward must be a number, got False"):
        aggregate_reward_lists([[0.5], [False, 0.2]])


def test_step_logps_refuses_a_bool_mask_given_as_step_ids():
    """A bool mask passed for step_ids would put every True token in step 1 and every False one in step 0."""
    with pytest.raises(ValueError, match="step_ids must be an integer tensor, got torch.bool"):
        step_logps(torch.zeros(1, 3), torch.tensor([[True, False, True]]), 2)


def test_losses_refuse_a_bad_beta_num_steps_or_non_tensor_by_name():
    """A NaN beta gave a NaN loss without an error, a str or None a TypeError from inside torch; num_steps -1 or 2.0
    a RuntimeError or TypeError from torch; a list for a tensor an AttributeError about '.shape'."""
    b, steps, probs = torch.randn(3), torch.randn(2, 3), torch.ones(2, 3)
    for beta in (float("nan"), "0.1", None):
        with pytest.raises(ValueError, match="compute_outcome_loss: beta must be a finite number"):
            compute_outcome_loss(b, b, beta)
        with pytest.raises(ValueError, match="compute_step_loss: beta must be a finite number"):
            compute_step_loss(steps, steps, probs, probs, beta)
    for num_steps in (-1, 2.0, None):
        with pytest.raises(ValueError, match="step_logps: num_steps must be an int >= 0"):
            step_logps(torch.randn(1, 3), torch.tensor([[0, 1, 1]]), num_steps)
    assert step_logps(torch.randn(1, 3), torch.tensor([[0, 1, 1]]), np.int64(2)).shape == (1, 2)  # numpy's int: kept
    with pytest.raises(ValueError, match="compute_outcome_loss: chosen_logratios must be a torch tensor, got list"):
        compute_outcome_loss([1.0], torch.zeros(1), 0.1)
    with pytest.raises(ValueError, match="compute_step_loss: chosen_step_probs must be a torch tensor, got list"):
        compute_step_loss(steps, steps, probs.tolist(), probs, 0.1)
    with pytest.raises(ValueError, match="step_logps: step_ids must be a torch tensor, got list"):
        step_logps(torch.randn(1, 3), [[0, 1, 1]], 2)


def test_aggregate_reward_lists_refuses_weights_that_are_no_finite_numbers():
    """A NaN weight made every weighted sum NaN without an error; one number (0.5) or a str was torch's TypeError."""
    for weights, match in [([1.0, float("nan")], r"weights\[1\] must be a finite number"),
                           ([[1.0, 1.0], [1.0, float("inf")]], r"weights\[3\] must be a finite number"),
                           (0.5, "weights: expected a list of step weights, got float"),
                           ("ab", "weights: expected a list of step weights, got one str")]:
        with pytest.raises(ValueError, match=f"aggregate_reward_lists: {match}"):
            aggregate_reward_lists([[0.1, 0.2], [0.3, 0.4]], "weighted_sum", weights)
    assert aggregate_reward_lists([[1.0, 2.0], [3.0]], "weighted_sum", [1.0, 0.5]) == pytest.approx([2.0, 3.0])
