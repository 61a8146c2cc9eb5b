"""A diagnostic: Stepwise DPO whose rejected token is drawn again from the current policy at every step.

Why it exists (``docs/benchmarks.md``, "where the cost comes from"). In expectation an on-policy pair's gradient is
its right token's NLL gradient (``scripts/pair_expectation.py``), yet a round's pairs cost accuracy when trained
through the whole model. They are drawn once, and within an epoch they reject tokens the policy no longer writes
(``scripts/stale_pairs.py``). This trainer keeps each pair's state and chosen token ``c``, the first token where
chosen and rejected differ, and throws the round's rejected token away. At every training step it writes one token
``r ~ π(·|s)`` there with the current policy. A slip (``r ≠ c``) makes the pair, with Step-DPO's first-token loss

    −log σ(β·((log π(c|s) − log π_ref(c|s)) − (log π(r|s) − log π_ref(r|s)))),

and a draw of ``c`` makes none (loss 0 for that state): as in a round, a state yields a pair when the policy slips
there. The NLL and outcome terms are unchanged. ``ExpectedRejectedStepDPOTrainer`` takes that draw's expectation
exactly, over the whole vocabulary (``Σ_{r ≠ c} π(r|s)`` times the loss against ``r``): the same loss on average,
without the draw's noise.

    trainer = FreshRejectedStepDPOTrainer(model, ref_model=ref, args=StepwiseDPOConfig(step_pairing="first_token",
                                          ...), train_dataset=rows, processing_class=tokenizer)

``onpolicy.TrainSettings(step_rejected="fresh")`` and ``scripts/onpolicy_rounds.py --step-rejected fresh`` train the
Stepwise DPO method with it (``"expected"`` with the expectation). Both need a frozen reference model, so a fully
fine-tuned policy (the tiny profile), and no precomputed reference log-probs: the reference must score whichever
token is drawn.
"""

from __future__ import annotations

import torch

from ..losses import compute_step_loss
from .critical_token import CriticalTokenStepDPOTrainer


class FreshRejectedStepDPOTrainer(CriticalTokenStepDPOTrainer):
    """``StepwiseDPOTrainer`` whose first-token step loss rejects a token the current policy writes at each step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.ref_model is None or self.precompute_ref_logps:
            raise ValueError("FreshRejectedStepDPOTrainer needs a frozen ref_model (a fully fine-tuned policy, e.g. "
                             "onpolicy.policy_reference) and precompute_ref_log_probs=False: the reference scores "
                             "tokens drawn during training")
        self._draws = torch.Generator().manual_seed(self.args.seed)  # the rejected tokens, reproducible per seed

    def critical_token_loss(self, model, inputs):
        """The hook (``CriticalTokenStepDPOTrainer.critical_token_loss``): each state's loss against the rival
        ``_slip_loss`` picks (the override of this class's variants), over the states the round paired."""
        kwargs, _ = self._model_inputs(inputs)
        pos, valid = self._critical_positions(inputs)
        n = len(pos) // 2
        state = pos[:n] - 1  # the chosen row's position whose logits predict the critical token
        has_pair = valid[:n] & valid[n:]
        rows = torch.arange(n, device=pos.device)
        chosen_only = {k: v[:n] if torch.is_tensor(v) else v for k, v in kwargs.items()}
        logp = torch.log_softmax(model(**chosen_only).logits[rows, state].float(), -1)
        with torch.no_grad():
            ref = torch.log_softmax(self.ref_model(**chosen_only).logits[rows, state].float(), -1)
        c = inputs["input_ids"][rows, pos[:n]]
        first = inputs["first_diff_step"].clamp(min=0)
        probs = inputs["step_probs"][torch.arange(2 * n, device=pos.device), first.repeat(2)][:, None].chunk(2)
        a = self._first_step_weights(inputs)  # step_weights' a_k, as the parent weighs a step
        per_state = self._slip_loss(a * (logp - ref), logp.detach(), c, probs)
        # Only slips make pairs, but every state the round paired counts, so a pair weighs as often as the policy slips.
        return (per_state * has_pair.to(per_state.dtype)).sum() / has_pair.sum().clamp(min=1)

    def _slip_loss(self, ratios, logp, c, probs):
        """``(n,)``: each state's step loss against one token ``r ~ π(·|s)`` drawn now; 0 where ``r = c``."""
        r = torch.multinomial(logp.exp().cpu(), 1, generator=self._draws).squeeze(1).to(c.device)
        per_pair = self._against(ratios, c, r, probs)
        return per_pair * (r != c).to(per_pair.dtype)

    def _against(self, ratios, c, r, probs):
        """``(n,)``: each state's first-token step loss of ``c`` against the rival token ``r``."""
        rows = torch.arange(len(c), device=c.device)
        return compute_step_loss(ratios[rows, c][:, None], ratios[rows, r][:, None], probs[0], probs[1],
                                 self.args.step_beta)


class ExpectedRejectedStepDPOTrainer(FreshRejectedStepDPOTrainer):
    """The fresh draw's expectation, taken exactly over the vocabulary: each state's loss is
    ``Σ_{r ≠ c} π(r|s) · L(c, r)`` (``π`` held fixed), what ``FreshRejectedStepDPOTrainer`` averages to over
    draws. A diagnostic of the draw's noise: the same first-order gradient (the NLL of ``c``, ``β/2`` per slip at
    the reference), the same ``σ(−β·h)`` weight on each rival, no sampling variance."""

    def _slip_loss(self, ratios, logp, c, probs):
        n, vocab = ratios.shape
        rows = torch.arange(n, device=c.device)
        chosen = ratios[rows, c][:, None].expand(n, vocab).reshape(-1, 1)
        each_rival = compute_step_loss(chosen, ratios.reshape(-1, 1), probs[0].repeat_interleave(vocab, 0),
                                       probs[1].repeat_interleave(vocab, 0), self.args.step_beta).view(n, vocab)
        slip = logp.exp().scatter(1, c[:, None], 0.0)  # π(r|s) for r ≠ c: a draw of c makes no pair
        return (slip * each_rival).sum(1)


class TopRivalStepDPOTrainer(FreshRejectedStepDPOTrainer):
    """The rejected token is the current policy's strongest wrong one, ``r* = argmax_{r ≠ c} π(r|s)``, weighed by how
    often the policy slips there, ``1 − π(c|s)`` (``π`` held fixed): ``(1 − π(c|s)) · L(c, r*)``. Greedy decoding
    goes wrong exactly where ``r*`` outranks ``c``, so this pair aims at the margin greedy accuracy depends on, where
    the expectation (``ExpectedRejectedStepDPOTrainer``) spreads the same slip mass over every rival and so points
    along the NLL gradient. A diagnostic (``docs/benchmarks.md``, "the strongest rival")."""

    def _slip_loss(self, ratios, logp, c, probs):
        r = logp.scatter(1, c[:, None], float("-inf")).argmax(1)
        return self._against(ratios, c, r, probs) * (1 - logp.gather(1, c[:, None]).squeeze(1).exp())
