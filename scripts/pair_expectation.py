"""What does a Step-DPO pair teach that the NLL of its chosen step does not? In expectation, nothing.

At a state ``s`` (a shared correct prefix) let ``c`` be the right next token and ``π`` the policy. A Step-DPO pair
built on-policy rejects a token ``r`` the policy itself wrote, so ``r ~ π(·|s)`` given ``r ≠ c``. Because the
probabilities sum to one (``Σ_y ∇π(y|s) = 0``),

    E_r[∇ log π(c|s) − ∇ log π(r|s)] = ∇ log π(c|s) + ∇π(c|s) / (1 − π(c|s)) = ∇ log π(c|s) / (1 − π(c|s)),

and a state yields a pair only when the policy slips there, with probability ``1 − π(c|s)``. So over the states a
policy reaches, the expected sum of the pairs' gradients *is* the NLL gradient of the right steps, ``Σ_s ∇ log
π(c|s)``. DPO's loss ``−log σ(β·h)`` scales each pair by ``β·σ(−β·h)``, ``β/2`` at the reference. The same holds
with a set of right steps (``c ~ π(·|right)``, ``∇ log π(right|s)``) and for whole steps in place of tokens.
What a finite set of pairs adds is noise around that direction, and later, as ``h`` grows, a weight on the pairs
still misordered. This script measures both on the tiny base, at the states ``slip_geometry.py`` uses (a gold
solution up to a step's last result digit):

1. **The identity, state by state**, in parameter space: ``|∇ log π(c) − (1 − π(c))·E_r[pair]| / |∇ log π(c)|``,
   with the expectation taken exactly over the vocabulary.
2. **What on-policy pairs add up to.** One draw: at every state the policy writes one token; a slip makes a pair.
   The cosine between the pairs' summed gradient and the NLL's, for one draw and for the mean of several; and,
   for scale, between the NLL gradients of two disjoint halves of the states (two datasets of the same size);
   and, for contrast, pairs that are not on-policy: one at every state, always rejecting ``c + 1``.

    python scripts/pair_expectation.py       # about 1.5 min on 2 CPU cores

Then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from slip_geometry import critical_states, next_digit_logprobs  # noqa: E402  (the same states, the same read-out)

from stepdpo_lite.tutorial import tiny_models, toyworld  # noqa: E402


def flat_grad(model, value: torch.Tensor) -> torch.Tensor:
    """The gradient of ``value`` over every parameter, as one vector."""
    grads = torch.autograd.grad(value, [p for p in model.parameters() if p.requires_grad], allow_unused=True,
                                retain_graph=True)
    return torch.cat([g.reshape(-1) for g in grads if g is not None])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def identity_errors(model, tokenizer, states, right_ids: torch.Tensor) -> list[float]:
    """Per state: ``|∇ log π(c) − (1 − π(c))·E_r[∇ log π(c) − ∇ log π(r)]| / |∇ log π(c)|``, the expectation over
    ``r ~ π(·|s), r ≠ c`` taken exactly (a weighted sum over the vocabulary, weights held fixed)."""
    errors = []
    for state, c in zip(states, right_ids.tolist()):
        logp = next_digit_logprobs(model, tokenizer, [state])[0]
        p = logp.exp().detach()
        wrong = p.clone()
        wrong[c] = 0
        nll_grad = flat_grad(model, logp[c])
        pair_grad = flat_grad(model, logp[c] - (wrong / wrong.sum() * logp).sum())
        errors.append(float((nll_grad - (1 - p[c]) * pair_grad).norm() / nll_grad.norm()))
    return errors


def draw_slips(logp: torch.Tensor, right_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One on-policy draw: the policy writes one token at every state. The token where it slipped, −1 where it
    wrote the right one (no pair)."""
    drawn = torch.multinomial(logp.detach().exp(), 1, generator=generator).squeeze(1)
    return torch.where(drawn != right_ids, drawn, torch.full_like(drawn, -1))


def pair_weights(logp: torch.Tensor, right_ids: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """The pairs ``(c, r)`` of the states with a rejected token (``rejected >= 0``) as weights on ``logp``: +1 at c,
    −1 at r, 0 elsewhere, so that the pairs' summed ``log π(c) − log π(r)`` is ``Σ weights·logp`` and the mean of
    many draws needs one backward pass."""
    rows = torch.arange(len(right_ids))[rejected >= 0]
    weights = torch.zeros(logp.shape)
    weights[rows, right_ids[rows]] = 1.0
    weights[rows, rejected[rows]] = -1.0
    return weights


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=None, help="the policy (default: data/tiny-base, or $STEPDPO_TINY_BASE)")
    ap.add_argument("--problems", type=int, default=400, help="training problems to take states from")
    ap.add_argument("--states", type=int, default=600, help="critical states at most")
    ap.add_argument("--identity-states", type=int, default=50, help="states for the per-state identity check")
    ap.add_argument("--draws", type=int, default=64, help="on-policy draws to average (1, 4, 16, ... up to this)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the on-policy draws; the problems are always seed 0's (default: 0)")
    args = ap.parse_args(argv)
    # found out now, not after the model is loaded (no states was a traceback, --states -1 dropped the last one)
    for name in ("problems", "states", "identity_states", "draws"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:  # torch's generator took -1 as 2**64 - 1, another seed without a word
        ap.error(f"--seed must be 0 or more, got {args.seed}")

    try:  # a folder with no model (a typo) was load_tiny_base's traceback
        model, tokenizer = tiny_models.load_tiny_base(args.policy)
    except FileNotFoundError as err:
        ap.error(f"--policy: {err}")
    model.eval()
    states = critical_states(toyworld.make_problems(args.problems, split="train", seed=0), args.states)
    right_ids, slip_ids = (torch.tensor([tokenizer.convert_tokens_to_ids(str(d + k)) for _, d in states])
                           for k in (0, 1))  # c, and c + 1 (critical_states keeps c in 1..8)

    errors = identity_errors(model, tokenizer, states[:args.identity_states], right_ids[:args.identity_states])
    out = {"states": len(states), "identity_max_relative_error": max(errors)}
    print(f"1. per state, |∇log π(c) − (1 − π(c))·E[pair]| / |∇log π(c)| over {len(errors)} states: "
          f"at most {max(errors):.1e}")

    logp = next_digit_logprobs(model, tokenizer, states)
    p_right = logp.detach().exp()[torch.arange(len(states)), right_ids]
    nll = flat_grad(model, logp[torch.arange(len(states)), right_ids].sum())
    half = len(states) // 2
    halves = [flat_grad(model, logp[torch.arange(a, b), right_ids[a:b]].sum()) for a, b in
              ((0, half), (half, 2 * half))]
    generator = torch.Generator().manual_seed(args.seed)
    draws = torch.stack([pair_weights(logp, right_ids, draw_slips(logp, right_ids, generator))
                         for _ in range(args.draws)])
    out.update(mean_p_right=round(float(p_right.mean()), 3),
               pairs_per_draw=float((draws > 0).sum()) / args.draws,
               nll_halves_cosine=round(cosine(*halves), 3), cosine_by_draws={})
    print(f"2. {len(states)} states, mean π(c) {out['mean_p_right']:.3f}: {out['pairs_per_draw']:.0f} pairs per "
          f"draw on average")
    d = 1
    while d <= args.draws:
        mean = flat_grad(model, (draws[:d].mean(0) * logp).sum())
        out["cosine_by_draws"][d] = round(cosine(mean, nll), 3)
        print(f"   pairs' summed gradient vs the NLL's, mean of {d:3d} draw(s): cosine {cosine(mean, nll):.3f}, "
              f"length ratio {float(mean.norm() / nll.norm()):.2f}")
        d *= 4
    fixed = torch.zeros(logp.shape)
    fixed[torch.arange(len(states)), right_ids] = 1.0
    fixed[torch.arange(len(states)), slip_ids] = -1.0
    out["cosine_fixed_slip"] = round(cosine(flat_grad(model, (fixed * logp).sum()), nll), 3)
    print(f"   not on-policy: a pair at every state, always rejecting c + 1: cosine {out['cosine_fixed_slip']:.3f}")
    print(f"   for scale, the NLL gradients of two disjoint halves of the states: cosine "
          f"{out['nll_halves_cosine']:.3f}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
