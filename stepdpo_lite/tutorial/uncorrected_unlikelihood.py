"""A diagnostic: Stepwise DPO plus the unlikelihood of the wrong steps no pair could be built on.

Why it exists (``docs/benchmarks.md``, "The wrong steps no correction was found for"). In expectation an on-policy
pair's gradient is its right step's NLL gradient (``scripts/pair_expectation.py``), so the pairs carry nothing the
chosen side's NLL lacks. A state where the PRM found the first wrong step but none of the policy's tries was
accepted (``prm_pairs.step_pairs``' ``no_accepted_step``) gives no pair and no chosen solution: neither RFT nor the
pairs train there. Its wrong step is still known, so this trainer pushes it down
(unlikelihood training, Welleck et al. 2019, arXiv:1908.04319, on a whole step):

    L += w · mean over a batch of such states of −log(1 − π(s⁻_k | x, s_<k)),

``π(s⁻_k | …)`` the product of the step's token probabilities. A token the policy is sure of (the step's opening,
``Step 4: 19 * 1 = ``) has a gradient near 0 (``∇ log p = e_y − p``), so the push lands on the uncertain tokens:
mostly the wrong number. As in ``OutputLayerStepDPOTrainer``'s step loss (whose protocol it extends), the log-probs
are read through the final hidden state cut from the graph, so the term moves the output layer only (by default:
``uncorrected_gradient="all"`` lets it through every layer). At a logit, its gradient takes from the wrong token and
gives to every other token in proportion to its probability: the right one gets its share. Measured
(``scripts/uncorrected_mass.py``), that share is large (the right token holds about half the probability at these
states), and the term is level for another reason: through the output layer it moves these states little beside what
the NLL, through every layer, does to them unaided. Through every layer (weight 0.1) it does move them, the right
token gaining, and the rounds end behind RFT: what helps these few states costs steps elsewhere (docs/benchmarks.md,
"Through every layer").

    trainer = UncorrectedUnlikelihoodTrainer(model, ref_model=ref, negatives=uncorrected, uncorrected_weight=50.0,
                                             args=StepwiseDPOConfig(step_pairing="first_token", ...), ...)

with ``uncorrected`` the list ``step_pairs(..., uncorrected=[])`` filled. ``onpolicy.TrainSettings(
uncorrected_weight=50.0)`` and ``scripts/onpolicy_rounds.py --uncorrected-weight 50`` train the Stepwise DPO method
with it (the output-layer protocol; ``uncorrected_gradient`` and ``--uncorrected-gradient`` pick the term's path).
The term takes one more forward pass of the policy, over the batch of states.
"""

from __future__ import annotations

import random

import torch

from ..checks import finite_number, positive_int
from .output_layer_pairs import STEP_GRADIENTS, OutputLayerStepDPOTrainer


def negative_step_ids(tokenizer, negatives, max_length: int | None = None) -> list[tuple[list[int], int]]:
    """Per state, ``(ids of prompt + prefix + wrong step, how many of them are prompt + prefix)``; a state whose
    prefix tokenizes differently on its own (the step's tokens could not be told apart), or that is longer than
    ``max_length``, is a ValueError naming it."""
    out = []
    for i, n in enumerate(negatives):
        missing = [f for f in ("prompt", "prefix", "step") if not isinstance(n.get(f), str)]
        if missing or not n["step"]:
            raise ValueError(f"uncorrected state {i}: field '{(missing or ['step'])[0]}' must be a non-empty str")
        context = tokenizer(n["prompt"] + n["prefix"], add_special_tokens=False)["input_ids"]
        full = tokenizer(n["prompt"] + n["prefix"] + n["step"], add_special_tokens=False)["input_ids"]
        if full[:len(context)] != context or len(full) == len(context):
            raise ValueError(f"uncorrected state {i}: its prefix tokenizes differently before its step, so the "
                             "step's tokens cannot be told apart")
        if max_length is not None and len(full) > max_length:
            raise ValueError(f"uncorrected state {i}: {len(full)} tokens, over max_length {max_length}")
        out.append((full, len(context)))
    return out


class UncorrectedUnlikelihoodTrainer(OutputLayerStepDPOTrainer):
    """``OutputLayerStepDPOTrainer`` whose loss adds ``uncorrected_weight`` times the unlikelihood of the wrong
    steps at ``negatives_per_step`` of the uncorrected states, drawn afresh at every step (seeded by ``args.seed``),
    through the output layer or, with ``uncorrected_gradient="all"``, every layer."""

    def __init__(self, *args, negatives, uncorrected_weight: float, negatives_per_step: int = 8,
                 uncorrected_gradient: str = "output_layer", **kwargs):
        weight = finite_number(uncorrected_weight, "uncorrected_weight", "UncorrectedUnlikelihoodTrainer")
        if weight <= 0:
            raise ValueError(f"UncorrectedUnlikelihoodTrainer: uncorrected_weight must be > 0, got {weight}")
        if uncorrected_gradient not in STEP_GRADIENTS:
            raise ValueError(f"UncorrectedUnlikelihoodTrainer: uncorrected_gradient must be 'output_layer' or 'all', "
                             f"got {uncorrected_gradient!r}")
        self.uncorrected_gradient = uncorrected_gradient
        self.negatives_per_step = positive_int(negatives_per_step, "negatives_per_step",
                                               "UncorrectedUnlikelihoodTrainer")
        super().__init__(*args, **kwargs)
        self.uncorrected_weight = weight
        self.negatives = negative_step_ids(self.processing_class, negatives, self.args.max_length)
        self._draw = random.Random(self.args.seed)

    def extra_loss(self, model, inputs):
        """The trainer's hook: ``uncorrected_weight`` times the mean of ``−log(1 − π(step | prefix))`` over a batch
        of states, each step's log-prob read through ``stopgrad(h)`` (``h`` itself with ``uncorrected_gradient="all"``);
        0 in a round where every state was corrected."""
        if not self.negatives:
            return 0.0
        batch = self._draw.sample(self.negatives, min(self.negatives_per_step, len(self.negatives)))
        padded = self.processing_class.pad({"input_ids": [full for full, _ in batch]}, padding_side="right",
                                           return_tensors="pt").to(inputs["input_ids"].device)
        ids, attention = padded["input_ids"], padded["attention_mask"]
        n_context = torch.tensor([n for _, n in batch], device=ids.device)
        in_step = (torch.arange(ids.size(1), device=ids.device)[None, :] >= n_context[:, None]) & attention.bool()
        with torch.set_grad_enabled(self.uncorrected_gradient == "all"):  # "output_layer": cut from the graph
            hidden = model(input_ids=ids, attention_mask=attention, output_hidden_states=True,
                           use_cache=False).hidden_states[-1]
        logps = torch.log_softmax(model.get_output_embeddings()(hidden[:, :-1]).float(), -1)
        step_logp = (logps.gather(-1, ids[:, 1:, None])[..., 0] * in_step[:, 1:]).sum(1)
        # −log(1 − e^{log p}), kept finite where the policy is all but sure of the wrong step
        return self.uncorrected_weight * -torch.log1p(-step_logp.exp().clamp(max=1 - 1e-6)).mean()
