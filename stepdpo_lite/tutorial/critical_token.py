"""The first-token step loss's plumbing, shared by its two diagnostics.

With ``step_pairing="first_token"`` Stepwise DPO's step loss scores one token a side: the first where chosen and
rejected differ, read at the state they share (the "critical token" of cDPO, Lin et al. 2024, arXiv:2411.19943). The
two diagnostics of ``docs/benchmarks.md`` keep the data and the other terms, and swap that step loss for a variant:

- ``output_layer_pairs.OutputLayerStepDPOTrainer``: the same value, its gradient stopped at the hidden state;
- ``fresh_rejected_pairs.FreshRejectedStepDPOTrainer``: the rejected token drawn again from the current policy
  (``ExpectedRejectedStepDPOTrainer``: that draw's expectation over the vocabulary).

This module finds the critical token and does the swap; each variant writes ``_critical_token_step_loss``.
"""

from __future__ import annotations

import torch

from ..losses import positional_weights
from ..trainer import StepwiseDPOTrainer


class CriticalTokenStepDPOTrainer(StepwiseDPOTrainer):
    """``StepwiseDPOTrainer`` whose step loss is ``step_loss_weight · _critical_token_step_loss``."""

    def __init__(self, *args, **kwargs):
        self._check_pairing(kwargs.get("args"))  # before the datasets are prepared (or refused) with its settings
        super().__init__(*args, **kwargs)
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

    def _compute_loss(self, model, inputs, return_outputs):
        weight = self.args.step_loss_weight
        self.args.step_loss_weight = 0.0  # the parent's step loss off; the variant's is added below
        try:
            out = super()._compute_loss(model, inputs, return_outputs)
        finally:
            self.args.step_loss_weight = weight
        loss = out[0] if return_outputs else out
        if weight:
            step_loss = self._critical_token_step_loss(model, inputs)
            loss = loss + weight * step_loss
            # the parent logged its own step loss (the round's rejected token): log the one trained instead
            mode = "train" if model.training else "eval"
            logged = self.accelerator.gather(step_loss.detach().float()[None]).mean().item()
            self._metrics[mode]["loss/step"][-1] = logged
        return (loss, out[1]) if return_outputs else loss

    def _critical_token_step_loss(self, model, inputs):
        raise NotImplementedError
