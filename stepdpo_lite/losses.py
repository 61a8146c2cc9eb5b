"""The losses of Stepwise DPO, as pure tensor functions (no model, no trainer).

Shapes: ``B`` pairs, ``S`` step slots (padded), ``T`` tokens. A step's log-ratio is
``ρ_k = log π(s_k | x, s_<k) − log π_ref(s_k | x, s_<k)``, the sum over its tokens of the per-token
log-ratios (DPO's sequence log-ratio, Rafailov et al. 2023, cut into steps). docs/method.md §4 fixes:

    outcome  h = ρ⁺ − ρ⁻ (every kept token; = Σ_k ρ_k except under first_token / first_error pairing),  w = σ(R⁺ − R⁻)
             L_out  = −[w·log σ(β_out·h) + (1−w)·log σ(−β_out·h)]
    step     L_step = −log σ(β_step·(Σ_k a_k·p⁺_k·ρ⁺_k − Σ_m a_m·(1−p⁻_m)·ρ⁻_m))
    total    L = step_loss_weight·L_step + outcome_loss_weight·L_out (+ sft_loss_weight·NLL(y⁺), in trainer.py)

With only the first differing step of each side selected (``step_pairing="first_error"``) and the
default probabilities (p⁺ = 1, p⁻ = 0), ``L_step`` is the Step-DPO objective (Lai et al. 2024,
arXiv:2406.18629, the step-level DPO loss): ``−log σ(β·(log π(s⁺|x,s_<k)/π_ref(…) − log π(s⁻|x,s_<k)/π_ref(…)))``.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checks import AGGREGATION_STRATEGIES, finite_number, list_of, positive_int  # configs read them without torch


def _same_shape(where: str, **tensors) -> None:
    """Shapes must agree exactly: a ``(B,)`` broadcast against a ``(B, 1)`` or ``(B, S)`` gives wrong numbers, no error.
    Shapes only (no device sync); values: where the data is prepared (``stepwise_data.per_step_values``)."""
    if bad := next((n for n, t in tensors.items() if t is not None and not torch.is_tensor(t)), None):  # .shape
        raise ValueError(f"{where}: {bad} must be a torch tensor, got {type(tensors[bad]).__name__}")
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{where}: shapes differ: " + ", ".join(f"{n} {s}" for n, s in shapes.items()))


def step_logps(token_logps: torch.Tensor, step_ids: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Segment sum of per-token log-probs into steps: ``out[b, k] = Σ_{t: step_ids[b,t]=k} token_logps[b, t]``.

    ``step_ids`` = −1 (or ≥ ``num_steps``) marks tokens in no step (prompt, padding, masked); they are dropped.
    This is the chain rule ``log π(s_k | x, s_<k) = Σ_{t ∈ s_k} log π(y_t | x, y_<t)``, so one forward pass over
    the whole sequence gives every step's log-prob (instead of one pass per step prefix).
    Raises ValueError when the two shapes differ or ``step_ids`` are not integers."""
    _same_shape("step_logps", token_logps=token_logps, step_ids=step_ids)
    if step_ids.is_floating_point() or step_ids.dtype == torch.bool:  # .long() would truncate 0.7 to step 0
        raise ValueError(f"step_logps: step_ids must be an integer tensor, got {step_ids.dtype}")
    positive_int(num_steps, "num_steps", "step_logps", minimum=0)  # -1 or 2.0: torch's RuntimeError or TypeError
    inside = (step_ids >= 0) & (step_ids < num_steps)
    index = torch.where(inside, step_ids + 1, torch.zeros_like(step_ids)).long()  # slot 0 collects the dropped ones
    out = token_logps.new_zeros(*token_logps.shape[:-1], num_steps + 1)
    out = out.scatter_add(-1, index, token_logps * inside)
    return out[..., 1:]


def positional_weights(step_weights: Sequence[float] | torch.Tensor | None, num_steps: int,
                       device=None, dtype=torch.float32) -> torch.Tensor:
    """Positional step weights ``a_k`` (length ``num_steps``): 1 when unset; a short list is extended with its
    last value (so ``[1.0, 0.5]`` weighs every step after the first by 0.5)."""
    if step_weights is None or len(step_weights) == 0:
        return torch.ones(num_steps, device=device, dtype=dtype)
    w = torch.as_tensor(step_weights, device=device, dtype=dtype)
    if w.dim() != 1:  # flattening (B, S) weights would give every pair row 0's weights, silently
        raise ValueError(f"step_weights: positional weights are one list (a_1, a_2, ...), got shape {tuple(w.shape)}")
    if len(w) >= num_steps:
        return w[:num_steps]
    return torch.cat([w, w[-1:].expand(num_steps - len(w))])


def check_aggregation(aggregation, who: str, name: str = "aggregation"):
    """``aggregation`` if it is a strategy name of ``aggregate_rewards`` (min, product, last, ...) or a function of
    one solution's step rewards (a list of floats) -> its score; else a ValueError naming ``who`` and ``name``."""
    if not callable(aggregation) and aggregation not in AGGREGATION_STRATEGIES:
        raise ValueError(f"{who}: {name} must be one of {AGGREGATION_STRATEGIES} or a function (a list of step rewards "
                         f"-> one score), got {aggregation!r:.80}")
    return aggregation


def aggregate_steps(rewards: list[float], aggregation, where: str, who: str) -> float:
    """One solution's score from its (checked, finite) step rewards: ``aggregate_rewards`` for a strategy name; a
    function's own result, a finite number. No steps, or a result that is none: a ValueError naming ``where``."""
    if len(rewards) == 0:  # aggregate_rewards refuses it, naming itself, not the caller
        raise ValueError(f"{who}: {where}: no step rewards (a solution without steps has no score to aggregate)")
    if not callable(aggregation):
        return aggregate_reward_lists(rewards, aggregation)
    name = getattr(aggregation, "__name__", type(aggregation).__name__)
    return finite_number(aggregation(list(rewards)), f"aggregation {name}'s score of {where}", who)


def aggregate_rewards(step_rewards: torch.Tensor, strategy: str = "min", weights=None, mask=None) -> torch.Tensor:
    """Turn per-step rewards (log-odds, a tensor ``(..., S)``) into one reward per solution ``R`` (``(...)``).

    - ``weighted_sum``: ``Σ_k a_k·r_k`` (``a`` = ``weights``, 1 when unset; the other strategies ignore ``weights``)
    - ``mean`` / ``min`` / ``max`` / ``last``: over the valid steps (the PRM aggregations "min" of Wang et al. 2024,
      Math-Shepherd, arXiv:2312.08935, and "last" of Snell et al. 2024, arXiv:2408.03314)
    - ``product``: ``log Π_k σ(r_k) = Σ_k log σ(r_k)``, the log-probability that every step is right
      (Lightman et al. 2023 §2.6), kept in log space so that ``σ(R⁺ − R⁻) = P⁺ / (P⁺ + P⁻)``.

    ``mask`` (bool, same shape) marks real steps; a row with none gets 0 (product: log 1). Ints (0/1 labels): float32.
    Raises ValueError for an unknown strategy, one number, or a mask or per-solution weights of another shape; the
    values are not checked (that would sync the device at every training step): lists go to
    ``aggregate_reward_lists``, which checks them.
    """
    if strategy not in AGGREGATION_STRATEGIES:
        raise ValueError(f"aggregate_rewards: strategy must be one of {AGGREGATION_STRATEGIES}, got {strategy!r}")
    if not torch.is_tensor(step_rewards):
        raise ValueError(f"aggregate_rewards: step_rewards must be a tensor, got {type(step_rewards).__name__}; "
                         "aggregate_reward_lists takes lists of step rewards")
    r = step_rewards if step_rewards.is_floating_point() else step_rewards.float()  # min/max/product fail on ints
    if r.dim() == 0:
        raise ValueError(f"aggregate_rewards: expected a list of step rewards, got one number {float(r)!r}")
    m = torch.ones_like(r, dtype=torch.bool) if mask is None else torch.as_tensor(mask, device=r.device).bool()
    _same_shape("aggregate_rewards", step_rewards=r, mask=m)  # a (B,) or (B, 1) mask would broadcast over the steps
    if r.shape[-1] == 0:
        out = r.new_zeros(r.shape[:-1])
    elif strategy == "weighted_sum":
        per_row = weights is not None and torch.as_tensor(weights).dim() > 1  # (..., S) weights, else positional
        a = torch.as_tensor(weights, device=r.device, dtype=r.dtype) if per_row else positional_weights(
            weights, r.shape[-1], r.device, r.dtype)
        if per_row:  # (1, S) weights would broadcast over every solution, (B, 1) over every step
            _same_shape("aggregate_rewards", step_rewards=r, weights=a)
        out = (a * r * m).sum(-1)
    elif strategy == "mean":
        out = (r * m).sum(-1) / m.sum(-1).clamp(min=1)
    elif strategy in ("min", "max"):
        red = r.masked_fill(~m, torch.finfo(r.dtype).max if strategy == "min" else torch.finfo(r.dtype).min)
        out = torch.where(m.any(-1), red.amin(-1) if strategy == "min" else red.amax(-1), 0.0)
    elif strategy == "product":
        out = (F.logsigmoid(r) * m).sum(-1)
    else:  # last
        idx = (m.long() * torch.arange(1, r.shape[-1] + 1, device=r.device)).argmax(-1, keepdim=True)
        out = torch.where(m.any(-1), r.gather(-1, idx).squeeze(-1), torch.zeros_like(r[..., 0]))
    return out


def aggregate_reward_lists(step_rewards, strategy: str = "min", weights=None):
    """``aggregate_rewards`` of lists (a numpy array: its lists): one solution's step rewards give a float, a list of
    solutions' a list of floats, their step counts may differ (padded, masked). A reward that is not a finite number
    is a ValueError naming its solution and step (torch's error names neither, and a NaN would make the solution's
    reward NaN); so is a solution without steps (scored 0, product: log 1, it outranked any with a doubted step)."""
    rows = step_rewards.tolist() if isinstance(step_rewards, np.ndarray) else step_rewards
    if not isinstance(rows, (list, tuple)):
        raise ValueError("aggregate_reward_lists: expected a list of step rewards, got " + (
            f"one number {rows!r}" if isinstance(rows, numbers.Real) else type(rows).__name__))
    nested = len(rows) > 0 and all(isinstance(x, (list, tuple)) for x in rows)
    for i, row in enumerate(rows if nested else [rows]):
        if len(row) == 0:
            raise ValueError(f"aggregate_reward_lists: step_rewards{f'[{i}]' * nested} is empty: a solution without "
                             "steps")
        for k, v in enumerate(row):
            where = f"solution {i}, step {k}" if nested else f"step {k}"
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"aggregate_reward_lists: {where}: a reward must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"aggregate_reward_lists: {where}: the reward must be finite, got {v}")
    if weights is not None and not torch.is_tensor(weights):  # a NaN weight: a NaN sum; 0.5 or "ab": torch's TypeError
        for k, w in enumerate(np.ravel(list_of(weights, "aggregate_reward_lists: weights", "step weights"))):
            finite_number(w, f"weights[{k}]", "aggregate_reward_lists")
    width = max(map(len, rows)) if nested else len(rows)
    r = torch.tensor([list(x) + [0.0] * (width - len(x)) for x in rows] if nested else rows, dtype=torch.float32)
    mask = torch.tensor([[k < len(x) for k in range(width)] for x in rows]) if nested else None
    return aggregate_rewards(r, strategy, weights, mask).tolist()


def compute_outcome_loss(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float,
                         chosen_rewards: torch.Tensor | None = None,
                         rejected_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair outcome loss ``L_out = −[w·log σ(β·h) + (1−w)·log σ(−β·h)]`` with ``h = ρ⁺ − ρ⁻`` (sequence
    log-ratios) and ``w = σ(R⁺ − R⁻)`` from aggregated rewards, or 1 without them: then it is the DPO loss
    (Rafailov et al. 2023, Eq. 7); with a soft ``w`` it is DPO with soft (Bradley-Terry) preference labels.
    All tensors ``(B,)``, rewards both or neither, else a ValueError (finite: checked when the data is prepared)."""
    _same_shape("compute_outcome_loss", chosen_logratios=chosen_logratios, rejected_logratios=rejected_logratios,
                chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    if (chosen_rewards is None) != (rejected_rewards is None):  # else it would quietly be plain DPO
        raise ValueError("compute_outcome_loss: give both chosen_rewards and rejected_rewards, or neither")
    logits = finite_number(beta, "beta", "compute_outcome_loss") * (chosen_logratios - rejected_logratios)  # NaN
    if chosen_rewards is None:
        return -F.logsigmoid(logits)
    w = torch.sigmoid(chosen_rewards - rejected_rewards).to(logits.dtype)
    return -(w * F.logsigmoid(logits) + (1 - w) * F.logsigmoid(-logits))


def step_margin(chosen_step_logratios: torch.Tensor, rejected_step_logratios: torch.Tensor,
                chosen_step_probs: torch.Tensor, rejected_step_probs: torch.Tensor,
                chosen_step_mask: torch.Tensor | None = None, rejected_step_mask: torch.Tensor | None = None,
                step_weights=None, *, who: str = "step_margin") -> torch.Tensor:
    """The inner difference h of the step loss ``L_step = −log σ(β_step·h)`` (docs/method.md §4), per pair ``(B,)``::

        h = Σ_k m⁺_k·a_k·p⁺_k·ρ⁺_k − Σ_m m⁻_m·a_m·(1 − p⁻_m)·ρ⁻_m

    ``compute_step_loss``'s arguments less ``beta``, in ``StepwiseDPOTrainer.step_loss``'s order, for a variant on
    the same h: a margin γ is ``-F.logsigmoid(beta * step_margin(...) - gamma)``. Masks m (``(B, S)`` bool) drop
    padded, truncated or unselected steps; ``step_weights`` are a, 1 when unset. A ValueError names ``who`` when a
    side's log-ratios, probabilities and mask differ in shape, or the two sides' pairs do (step counts may differ)."""
    _same_shape(who, chosen_step_logratios=chosen_step_logratios,
                chosen_step_probs=chosen_step_probs, chosen_step_mask=chosen_step_mask)
    _same_shape(who, rejected_step_logratios=rejected_step_logratios,
                rejected_step_probs=rejected_step_probs, rejected_step_mask=rejected_step_mask)
    if chosen_step_logratios.shape[:-1] != rejected_step_logratios.shape[:-1]:
        raise ValueError(f"{who}: the sides are not the same pairs: chosen_step_logratios "
                         f"{tuple(chosen_step_logratios.shape)}, rejected_step_logratios "
                         f"{tuple(rejected_step_logratios.shape)}")

    def side(logratios, coef, mask):
        a = positional_weights(step_weights, logratios.shape[-1], logratios.device, logratios.dtype)
        coef = coef.to(logratios.dtype) * a
        if mask is not None:
            coef = coef * mask.to(logratios.dtype)
        return (coef * logratios).sum(-1)

    return side(chosen_step_logratios, chosen_step_probs, chosen_step_mask) - side(
        rejected_step_logratios, 1 - rejected_step_probs, rejected_step_mask)


def compute_step_loss(chosen_step_logratios: torch.Tensor, rejected_step_logratios: torch.Tensor,
                      chosen_step_probs: torch.Tensor, rejected_step_probs: torch.Tensor, beta: float,
                      chosen_step_mask: torch.Tensor | None = None, rejected_step_mask: torch.Tensor | None = None,
                      step_weights=None) -> torch.Tensor:
    """Per-pair credit-assigned step loss ``L_step = −log σ(β·h)``, h and its checks ``step_margin``'s (docs/method.md
    §4): correct chosen steps are pushed up, only wrong rejected steps down (p⁻ = 1: no gradient). With only the first
    differing step of each side selected it is Step-DPO (Lai et al. 2024, arXiv:2406.18629)."""
    beta = finite_number(beta, "beta", "compute_step_loss")  # a NaN beta: a NaN loss, no error
    return -F.logsigmoid(beta * step_margin(chosen_step_logratios, rejected_step_logratios, chosen_step_probs,
                                            rejected_step_probs, chosen_step_mask, rejected_step_mask, step_weights,
                                            who="compute_step_loss"))


def first_error_mask(first_diff_step: torch.Tensor, num_steps: int) -> torch.Tensor:
    """``(B, S)`` bool: True only at each pair's first differing step (−1 = the two responses never differ)."""
    return torch.arange(num_steps, device=first_diff_step.device)[None, :] == first_diff_step[:, None]
