"""A diagnostic: Stepwise DPO plus an NLL term on the right opening of each rejected solution.

Why it exists (``docs/benchmarks.md``, "The right opening of a wrong solution"). In expectation an on-policy pair's
gradient is its right step's NLL gradient (``scripts/pair_expectation.py``), so the pairs cannot carry more than the
chosen solutions' NLL already does. What a step label has that RFT lacks is partial credit: a wrong solution usually
opens with right steps, and RFT throws them away with the wrong answer. This trainer adds their NLL,

    L += w · Σ_t q_t·(−log π(y⁻_t | x, y⁻_<t)) / Σ_t q_t,

over the rejected side's tokens, where ``q_t`` is the probability ``p⁻_k`` of the step holding token ``t`` for the
steps before the PRM's first error (``rejected_opening_steps``, from the round's ``prm_first_error``), 0 from there
on. A wrong solution in which the PRM found no error has no opening: some step of it is wrong, and which is not
known. Tokens the trainer marks as shared with the chosen side (``step_ids`` -1: where the two sides part inside
the opening, the first differing step's tokens before the first that differs) are left out: the chosen side's NLL
already trains them, so the term of one rejected solution may differ a little with its chosen partner. The step
loss, the outcome loss and the chosen side's NLL are unchanged.

    trainer = RejectedPrefixNLLStepDPOTrainer(model, ref_model=ref, rejected_sft_weight=20.0,
                                              args=StepwiseDPOConfig(step_pairing="first_error", ...), ...)

with rows that carry ``rejected_opening_steps``. ``onpolicy.TrainSettings(rejected_sft_weight=20.0)`` and
``scripts/onpolicy_rounds.py --rejected-sft-weight 20`` train the Stepwise DPO method with it. The term takes one
more forward pass of the policy over the rejected rows.
"""

from __future__ import annotations

import torch

from ..checks import finite_number
from ..trainer import StepwiseDPOTrainer

OPENING = "rejected_opening_steps"


def opening_steps(row: dict, index: int) -> int:
    """How many steps a round's rejected solution opens with before the PRM's first error (``prm_first_error``):
    ``k`` for an error at step ``k``, 0 where the PRM found none (-1) in a solution whose answer is wrong."""
    k = row.get("prm_first_error")
    if isinstance(k, bool) or not isinstance(k, int) or k < -1:
        raise ValueError(f"row {index}: `prm_first_error` must be a step index or -1 (none), got {k!r}: the opening "
                         "of the rejected solution is read from it")
    return max(k, 0)


def accepted_prefix_weights(step_probs: torch.Tensor, opening: torch.Tensor, step_mask: torch.Tensor | None = None
                            ) -> torch.Tensor:
    """``(B, S)``: each step's probability ``p_k`` for the first ``opening[b]`` steps, 0 from there on. A masked step
    (padded, truncated) weighs 0 and ends the opening: what follows it is not known to be right."""
    keep = torch.arange(step_probs.size(1), device=step_probs.device)[None, :] < opening[:, None]
    if step_mask is not None:
        keep = keep & step_mask.bool()
    return step_probs * (keep.int().cumprod(-1) > 0).to(step_probs.dtype)


class RejectedPrefixNLLStepDPOTrainer(StepwiseDPOTrainer):
    """``StepwiseDPOTrainer`` whose loss adds ``rejected_sft_weight`` times the NLL of the rejected side's right
    opening, each token weighted by its step's probability."""

    extra_columns = (OPENING,)  # the trainer's hook: the default collator brings it to the loss, a tensor

    def __init__(self, *args, rejected_sft_weight: float, **kwargs):
        weight = finite_number(rejected_sft_weight, "rejected_sft_weight", "RejectedPrefixNLLStepDPOTrainer")
        if weight <= 0:
            raise ValueError(f"RejectedPrefixNLLStepDPOTrainer: rejected_sft_weight must be > 0, got {weight}")
        config = kwargs.get("args")
        if config is not None and config.step_pairing == "first_token":  # its step ids keep one token a side
            raise ValueError("RejectedPrefixNLLStepDPOTrainer needs every token in its step: step_pairing="
                             "'first_token' keeps one a side")
        data = kwargs.get("train_dataset")
        if data is None or OPENING not in data.column_names:
            raise ValueError(f"RejectedPrefixNLLStepDPOTrainer: the train_dataset needs a `{OPENING}` column "
                             "(opening_steps of each row)")
        super().__init__(*args, **kwargs)
        self.rejected_sft_weight = weight

    def extra_loss(self, model, inputs):
        """The trainer's hook for a term of its own: ``rejected_sft_weight`` times the opening's NLL, from one more
        pass of ``model`` over the rejected rows."""
        kwargs, labels = self._model_inputs(inputs)
        half = len(labels) // 2  # rows are [chosen; rejected]
        seq_len = labels.size(1) - 1
        rejected = {k: v[half:] for k, v in kwargs.items() if torch.is_tensor(v)}
        logps = model(**rejected, use_cache=False, labels=labels[half:], fused_lm_head=True).log_probs[:, -seq_len:]
        step_ids = inputs["step_ids"][half:, 1:]  # shifted like the labels
        probs = inputs["step_probs"][half:]
        weights = accepted_prefix_weights(probs, inputs[OPENING], inputs["step_complete"][half:])
        inside = (step_ids >= 0) & (step_ids < probs.size(1))
        token_w = torch.gather(weights, 1, step_ids.clamp(0, probs.size(1) - 1).long()) * inside
        nll = -(token_w * logps).sum() / token_w.sum().clamp(min=1e-8)
        return self.rejected_sft_weight * nll
