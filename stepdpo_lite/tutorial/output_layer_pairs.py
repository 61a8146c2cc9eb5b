"""Stepwise DPO whose step loss moves the output layer only: first a diagnostic, now the tiny profile's protocol.

Why it exists (``docs/benchmarks.md``, "the digits lie on an arc"): the tiny policy's digit rows lie in order along
an arc, and one step of the first-token pair loss ``−log σ(β·(ρ(c) − ρ(r)))`` (right digit ``c``, slip ``r``) moves
the hidden state away from ``r``, past ``c`` and on to the far neighbour: the overshoot that costs the preference
methods accuracy against NLL only. If that is where the cost comes from, the same loss with its gradient stopped at
the final hidden state — ``log π(t|s) = log_softmax(W·stopgrad(h_s))[t]``, so it can only move the rows of the
output layer — should cost nothing. (The tiny model ties ``W`` to its input embeddings: those rows move where the
model reads the digits too, so this stops the gradient at the hidden state, not at the output layer's use.) The
loss's *value* is unchanged (the same log-probs); only where its gradient goes differs. The NLL and outcome terms
train the whole model as usual.

    trainer = OutputLayerStepDPOTrainer(model, ref_model=ref, args=StepwiseDPOConfig(step_pairing="first_token", ...),
                                        train_dataset=rows, processing_class=tokenizer)

``onpolicy.TrainSettings(step_gradient="output_layer")`` and ``scripts/onpolicy_rounds.py --step-gradient
output_layer`` train the Stepwise DPO method with it; so does ``profiles.ONPOLICY_PROTOCOLS["output_layer"]``, the
protocol of notebook 04's rounds on the tiny profile (it gave Stepwise DPO its best figures on validation, by doing
little: at the rounds' learning rate and steps this step loss hardly moves the pairs it trains on, and Stepwise DPO
trains nearly as NLL only does; ``scripts/step_loss_reach.py``). Only ``step_pairing="first_token"`` is supported:
one token per side at one shared state, so one hidden state per side.
"""

from __future__ import annotations

import torch

from ..losses import compute_step_loss
from .critical_token import CriticalTokenStepDPOTrainer

# Where a step loss's gradient goes: through every weight the policy trains, or stopped at the final hidden state
STEP_GRADIENTS = ("all", "output_layer")


class OutputLayerStepDPOTrainer(CriticalTokenStepDPOTrainer):
    """``StepwiseDPOTrainer`` whose step loss reads the critical token's log-prob through ``stopgrad(h)``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.check_policy(self.model)

    @staticmethod
    def check_policy(model) -> None:
        """A policy whose output layer is frozen (a LoRA policy's is) would get no gradient from the step loss."""
        if not any(p.requires_grad for p in model.get_output_embeddings().parameters()):
            raise ValueError("OutputLayerStepDPOTrainer: the step loss trains only the output layer (and the input "
                             "embeddings where they are tied to it), and the policy's output layer is frozen (a "
                             "LoRA adapter? add it to modules_to_save), so the step loss would train nothing; use "
                             "step_gradient='all'")

    def critical_token_loss(self, model, inputs):
        """The hook (``CriticalTokenStepDPOTrainer.critical_token_loss``): the first-token step loss, each side's
        log-prob read through the hidden state cut from the graph."""
        kwargs, labels = self._model_inputs(inputs)
        pos, valid = self._critical_positions(inputs)
        rows = torch.arange(len(pos), device=pos.device)
        token = inputs["input_ids"][rows, pos]
        with torch.no_grad():  # the hidden state before the critical token, cut from the graph
            hidden = model(**kwargs, output_hidden_states=True).hidden_states[-1][rows, pos - 1]
        logps = torch.log_softmax(model.get_output_embeddings()(hidden).float(), -1)[rows, token]
        first = inputs["first_diff_step"].repeat(2).clamp(min=0)
        if self.precompute_ref_logps:  # first_token: a step's log-prob is its one critical token's
            ref = torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]])[rows, 1 + first]
        else:
            ref_model = self.ref_model if self.ref_model is not None else self.model
            ref_tok = self._reference_token_logps(ref_model, kwargs, labels)[:, -(labels.size(1) - 1):]
            ref = ref_tok[rows, pos - 1]  # log-probs are shifted like the labels
        rho = ((logps - ref.float())[:, None] * self._first_step_weights(inputs).repeat(2, 1)).chunk(2)
        probs = inputs["step_probs"][rows, first][:, None].chunk(2)
        mask = valid[:, None].chunk(2)
        per_pair = compute_step_loss(rho[0], rho[1], probs[0], probs[1], self.args.step_beta, mask[0], mask[1])
        active = (mask[0] | mask[1]).squeeze(1).to(per_pair.dtype)
        return (per_pair * active).sum() / active.sum().clamp(min=1)
