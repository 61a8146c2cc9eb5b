"""The first-token step loss's plumbing, shared by its two diagnostics.

With ``step_pairing="first_token"`` Stepwise DPO's step loss scores one token a side: the first where chosen and
rejected differ, read at the state they share (the "critical token" of cDPO, Lin et al. 2024, arXiv:2411.19943). The
two diagnostics of ``docs/benchmarks.md`` keep the data and the other terms, and swap that step loss for a variant:

- ``output_layer_pairs.OutputLayerStepDPOTrainer``: the same value, its gradient stopped at the hidden state;
- ``fresh_rejected_pairs.FreshRejectedStepDPOTrainer``: the rejected token drawn again from the current policy
  (``ExpectedRejectedStepDPOTrainer``: that draw's expectation over the vocabulary).

This module finds the critical token and does the swap through the trainer's public hook
``StepwiseDPOTrainer.step_loss``. Its own hook, the one a variant overrides (the two above, and a trainer of your
own), is ``CriticalTokenStepDPOTrainer.critical_token_loss(model, inputs)``: the scalar step loss of the batch.
"""

from __future__ import annotations

import torch

from ..losses import positional_weights
from ..trainer import StepwiseDPOTrainer


class CriticalTokenStepDPOTrainer(StepwiseDPOTrainer):
    """``StepwiseDPOTrainer`` whose step loss (``step_loss``, the parent's hook) is ``critical_token_loss``: the
    hook a variant overrides."""

    def __init__(self, model, ref_model=None, args=None, *rest, **kwargs):
        self._check_pairing(args)  # before the datasets are prepared (or refused) with its settings
        super().__init__(model, ref_model, args, *rest, **kwargs)
        self._check_pairing(self.args)

    def _check_pairing(self, config) -> None:
        if config is not None and config.step_pairing != "first_token":
            raise ValueError(f"{type(self).__name__}: step_pairing must be 'first_token' (one token a side at one "
                             f"shared state), got {config.step_pairing!r}")

    def _critical_positions(self, inputs):
        """Per row of ``[chosen; rejected]``: the index of the first token where the two differ, and whether the
        row has one (in a complete step)."""
        first = inputs["first_diff_step"].repeat(2)
        hit = (inputs["step_ids"] == first[:, None]) & (first[:, None] >= 0)
        rows = torch.arange(len(first), device=first.device)
        complete = inputs["step_complete"][rows, first.clamp(min=0)]
        return hit.float().argmax(1), hit.any(1) & complete & (first >= 0)

    def _first_step_weights(self, inputs):
        """``(B, 1)``: the positional weight a_k (``step_weights``) of each pair's first differing step, which
        multiplies its ρ inside the sigmoid as in the parent's step loss."""
        first = inputs["first_diff_step"].clamp(min=0)
        return positional_weights(self.args.step_weights, int(first.max()) + 1, first.device)[first][:, None]

    def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights, inputs,
                  model):
        """The trainer's hook: the variant's step loss, read from ``model`` in a pass of its own, in place of the
        parent's (on the round's rejected token). With ``step_loss_weight=0`` it trains nothing: the parent's is
        logged, without that pass."""
        if not self.args.step_loss_weight:
            return super().step_loss(chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask,
                                     weights, inputs, model)
        return self.critical_token_loss(model, inputs)

    def critical_token_loss(self, model, inputs):
        """The hook to override: the batch's step loss (a scalar tensor), read from ``model`` on ``inputs``, the
        collated ``[chosen; rejected]`` batch (``_critical_positions`` finds each row's critical token)."""
        raise NotImplementedError(f"{type(self).__name__}: override critical_token_loss(model, inputs), the step "
                                  "loss of the critical token")
