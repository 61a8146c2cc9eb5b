"""Where does the preference terms' cost come from? Pairs that go stale while the policy trains on.

``scripts/pair_expectation.py`` shows that at the policy that drew them, on-policy pairs add up to the NLL gradient
of the right steps. A round keeps its pairs fixed while it trains, though. Every step also moves the states the
batch did not hold, since they share the weights. So a pair drawn at the round's start can soon reject a token the
policy no longer writes. This script trains a copy of the tiny base per arm on the same critical states (a gold
solution up to a step's last result digit, as in ``slip_geometry.py``), with Adam and the same batches:

- **nll**: the NLL of the right digit, ``−log π(c|s)`` (RFT at these states);
- **stale**: the NLL plus the first-token Step-DPO loss ``W·(−log σ(β·h))`` on pairs drawn once, at the start (one
  token written per state, a slip makes a pair), as a round's are;
- **fresh**: the same, but the rejected token is drawn again from the current policy at every step;
- **hardest**: the same loss at every state against the current policy's most likely wrong token (a hard negative,
  as in ranking losses: the competitor that decides greedy decoding), weighted by ``1 − π(c|s)``, the chance that
  the state yields an on-policy pair, so that its size matches the fresh arm's. It is not an on-policy draw, so the
  identity of ``pair_expectation.py`` does not make it the NLL's direction.

``h = (log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))`` with the start policy as the reference. At the start,
every ``--every`` steps and after the last, it prints the following:

- on held-out states from the validation problems, how often the right digit is the most likely one, and the mean
  probability of ``c``, ``c − 1`` and ``c + 1``;
- on the training states, the cosine between the NLL gradient at the current policy and two pair gradients: that of
  the start's pairs, and that of a fresh draw from the current policy;
- on the training states, the mean probability the current policy still gives the start's rejected tokens.

    python scripts/stale_pairs.py               # about 8.5 min on 2 CPU cores

Then one JSON line: each arm's records.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pair_expectation import cosine, draw_slips, flat_grad, pair_weights  # noqa: E402  (the same draws and gradients)
from slip_geometry import critical_states, neighbour_ids, next_digit_logprobs  # noqa: E402  (the same states)

from stepdpo_lite.tutorial import tiny_models, toyworld  # noqa: E402

ARMS = ("nll", "stale", "fresh", "hardest")


def hardest_wrong_tokens(logp: torch.Tensor, right_ids: torch.Tensor) -> torch.Tensor:
    """Each state's most likely token other than the right one."""
    masked = logp.detach().clone()
    masked[torch.arange(len(right_ids)), right_ids] = float("-inf")
    return masked.argmax(1)


def held_out_figures(model, tokenizer, states) -> dict:
    """Right digit on top (share of states), and the mean probability of ``c``, ``c − 1`` and ``c + 1``."""
    with torch.no_grad():
        p = next_digit_logprobs(model, tokenizer, states).exp()
    rows, ids = torch.arange(len(states)), neighbour_ids(tokenizer, states)
    out = {"right_on_top": float((p.argmax(1) == ids["c"]).float().mean()), "p_c": float(p[rows, ids["c"]].mean()),
           "p_c_minus_1": float(p[rows, ids["m"]].mean()), "p_c_plus_1": float(p[rows, ids["r"]].mean())}
    return {k: round(v, 4) for k, v in out.items()}


def gradient_figures(model, tokenizer, states, start_rejected: torch.Tensor, generator: torch.Generator) -> dict:
    """At the current policy, on the training states: the cosine of the NLL gradient with the start's pairs' summed
    gradient and with a fresh draw's, and the mean probability the start's rejected tokens still have."""
    logp = next_digit_logprobs(model, tokenizer, states)
    rows, right = torch.arange(len(states)), neighbour_ids(tokenizer, states)["c"]
    nll = flat_grad(model, logp[rows, right].sum())
    has = start_rejected >= 0
    stale = pair_weights(logp, right, start_rejected)
    fresh = pair_weights(logp, right, draw_slips(logp, right, generator))
    return {"cosine_stale": round(cosine(flat_grad(model, (stale * logp).sum()), nll), 3),
            "cosine_fresh": round(cosine(flat_grad(model, (fresh * logp).sum()), nll), 3),
            "p_start_rejected": round(float(logp.detach().exp()[rows[has], start_rejected[has]].mean()), 4)}


def record_at(step: int, model, tokenizer, states, held_out, start_rejected: torch.Tensor,
              probes: torch.Generator) -> dict:
    """One record: the held-out figures and the gradient figures of ``model`` after ``step`` steps."""
    return {"step": step, **held_out_figures(model, tokenizer, held_out),
            **gradient_figures(model, tokenizer, states, start_rejected, probes)}


def start_figures(base, tokenizer, states, held_out, args) -> dict:
    """What every arm starts from, measured once: the reference log-probs, the start's pairs, the step-0 record (the
    same base in every arm) and the measuring draws' generator state after it."""
    right = neighbour_ids(tokenizer, states)["c"]
    with torch.no_grad():
        reference = next_digit_logprobs(base, tokenizer, states)
    start_rejected = draw_slips(reference, right, torch.Generator().manual_seed(args.seed))
    probes = torch.Generator().manual_seed(args.seed + 3)
    record = record_at(0, base, tokenizer, states, held_out, start_rejected, probes)
    return {"right": right, "reference": reference, "start_rejected": start_rejected, "record": record,
            "probes_state": probes.get_state()}


def train_arm(arm: str, base, tokenizer, states, held_out, args, start: dict) -> list[dict]:
    """Train a copy of ``base`` on ``states`` with one arm's loss, from ``start`` (``start_figures``); a record every
    ``args.every`` steps."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    model = copy.deepcopy(base).train()
    right, reference, start_rejected = start["right"], start["reference"], start["start_rejected"]
    # The same start pairs, batches and measuring draws in every arm; only the loss differs.
    batches, redraws = (torch.Generator().manual_seed(args.seed + k) for k in (1, 2))
    probes = torch.Generator()
    probes.set_state(start["probes_state"])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    records = [dict(start["record"])]
    print(arm, json.dumps(records[-1]), flush=True)
    for step in range(1, args.steps + 1):
        batch = torch.randperm(len(states), generator=batches)[:args.batch_size]
        logp = next_digit_logprobs(model, tokenizer, [states[i] for i in batch])
        in_batch, c = torch.arange(len(batch)), right[batch]
        loss = -logp[in_batch, c].mean()
        if arm != "nll":
            weight = torch.ones(len(batch))
            if arm == "hardest":  # a pair at every state, weighted as often as the state would yield one on-policy
                r, weight = hardest_wrong_tokens(logp, c), 1 - logp.detach()[in_batch, c].exp()
            else:
                r = start_rejected[batch] if arm == "stale" else draw_slips(logp, c, redraws)
            has = r >= 0
            i, b = in_batch[has], batch[has]
            h = (logp[i, c[has]] - reference[b, c[has]]) - (logp[i, r[has]] - reference[b, r[has]])
            loss = loss + args.pair_weight * (weight[has] * -F.logsigmoid(args.beta * h)).sum() / len(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            model.eval()
            records.append(record_at(step, model, tokenizer, states, held_out, start_rejected, probes))
            print(arm, json.dumps(records[-1]), flush=True)
            model.train()
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=None,
                    help="the start policy (default: data/tiny-base, or $STEPDPO_TINY_BASE)")
    ap.add_argument("--problems", type=int, default=400,
                    help="training problems to take the states from, and as many validation problems for the "
                         "held-out states (default: 400)")
    ap.add_argument("--states", type=int, default=600, help="training states at most")
    ap.add_argument("--held-out", type=int, default=400, help="held-out states (validation problems) at most")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per arm (default: 20)")
    ap.add_argument("--every", type=int, default=10, help="record every this many steps")
    ap.add_argument("--batch-size", type=int, default=32,
                    help="training states per step, drawn afresh at every step (default: 32)")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate (notebook 04's)")
    ap.add_argument("--beta", type=float, default=0.1, help="β of the pair loss −log σ(β·h) (default: 0.1)")
    ap.add_argument("--pair-weight", type=float, default=40.0,
                    help="W; at the reference a pair's first-order size is β/2·W times its right digit's NLL")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                    help="the arms to train, each a copy of the same start policy (default: all four)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the start's pairs, the batches, the fresh arm's draws and the measuring draws; the "
                         "problems are always seed 0's (default: 0)")
    args = ap.parse_args(argv)
    # found out now, not after the model is loaded (no states was a traceback, --lr 0 a run that trains nothing)
    for name in ("problems", "states", "held_out", "steps", "every", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    # not "lr <= 0": nan passed it, and a nan --beta or --pair-weight trained every pair arm to nan weights
    for name in ("lr", "beta", "pair_weight"):
        if not 0 < getattr(args, name) < math.inf:
            ap.error(f"--{name.replace('_', '-')} must be a finite number above 0, got {getattr(args, name)}")
    if args.seed < 0:  # torch's generators took -1 as 2**64 - 1, another seed without a word
        ap.error(f"--seed must be 0 or more, got {args.seed}")
    if len(set(args.arms)) < len(args.arms):  # an arm given twice trained twice, its second records kept
        ap.error(f"--arms must be distinct, got {' '.join(args.arms)}")

    try:  # a folder with no model (a typo) was load_tiny_base's traceback
        base, tokenizer = tiny_models.load_tiny_base(args.policy)
    except FileNotFoundError as err:
        ap.error(f"--policy: {err}")
    base.eval()
    states = critical_states(toyworld.make_problems(args.problems, split="train", seed=0), args.states)
    held_out = critical_states(toyworld.make_problems(args.problems, split="validation", seed=0), args.held_out)
    print(f"{len(states)} training states, {len(held_out)} held-out; β {args.beta}, pair weight {args.pair_weight}: "
          f"first-order size {args.beta / 2 * args.pair_weight:g} × the NLL's", flush=True)
    out = {"config": vars(args), "states": len(states), "held_out": len(held_out)}
    start = start_figures(base, tokenizer, states, held_out, args)
    for arm in args.arms:
        out[arm] = train_arm(arm, base, tokenizer, states, held_out, args, start)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
