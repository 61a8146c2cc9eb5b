"""Where does the mass go when a pair pushes the right digit over the slip? The geometry behind the overshoot.

``scripts/slip_offsets.py`` shows that a policy trained on pairs of (right step, slip one too many) ends up slipping
one too *few*. This script measures why, on the tiny base:

1. **The digits lie on an ordered arc.** The output rows of the digit tokens (tied with the input embedding, times
   the final norm's weight), in their top two principal components: each digit's angle, in digit order.
2. **One small step of each loss, and where the probability goes.** At states ``s`` = a gold solution up to the last
   digit of a step's result (``c`` the right digit, ``r = c + 1`` the slip the base leans to, ``m = c − 1`` the far
   neighbour), one small step of the whole model, along the gradient (SGD) or its sign (Adam's first step), of

   - the pair loss ``−log σ(β·(log π(c|s) − log π(r|s)))`` (the first-token Step-DPO loss at its reference), and
   - the NLL ``−log π(c|s)``.

   Each step has the same length in parameter space. Printed: how the mean probability of ``c``, ``r`` and ``m``
   moves, and how much ``m`` gains per unit ``c`` gains.

    python scripts/slip_geometry.py       # 1 to 3 min on 2 CPU cores

Then one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.tutorial import tiny_models, toyworld  # noqa: E402


def digit_ids(tokenizer) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]


def neighbour_ids(tokenizer, states) -> dict[str, torch.Tensor]:
    """Per state, the token ids of the right digit ``c``, the slip ``r = c + 1`` and the far neighbour
    ``m = c − 1``."""
    ids, right = torch.tensor(digit_ids(tokenizer)), torch.tensor([d for _, d in states])
    return {"c": ids[right], "r": ids[right + 1], "m": ids[right - 1]}


def digit_arc(model, tokenizer) -> dict:
    """The digits' output rows (times the final norm's weight, as the logits see them) in their top two principal
    components: each digit's angle in degrees, and the share of the variance those two components hold."""
    rows = model.get_output_embeddings().weight.detach()[digit_ids(tokenizer)] * model.model.norm.weight.detach()
    rows = (rows - rows.mean(0)).float().numpy()
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    xy = rows @ vt[:2].T
    angles = np.degrees(np.unwrap(np.arctan2(xy[:, 1], xy[:, 0])))
    share = float((s[:2] ** 2).sum() / (s ** 2).sum())
    return {"angles": [round(float(a)) for a in angles], "variance_share": round(share, 3)}


def critical_states(problems, limit: int) -> list[tuple[str, int]]:
    """``(text up to a step's last result digit, that digit)`` for results whose last digit is 1 to 8 (so that
    ``c − 1`` and ``c + 1`` are digits too)."""
    out = []
    for p in problems:
        text = p.prompt + p.gold_solution
        for k, ((op, b), c) in enumerate(zip(p.ops, p.values[1:])):
            line = f"Step {k + 1}: {p.values[k]} {op} {b} = {c}"
            if c >= 0 and 1 <= c % 10 <= 8:
                out.append((text[:text.index(line) + len(line) - 1], c % 10))
    return out[:limit]


def next_digit_logprobs(model, tokenizer, states) -> torch.Tensor:
    """``(len(states), vocab)`` next-token log-probs after each state's text (left padding: the last position)."""
    enc = tokenizer([s for s, _ in states], return_tensors="pt", padding=True, padding_side="left",
                    add_special_tokens=False)
    return torch.log_softmax(model(**enc).logits[:, -1].float(), -1)


def mass_response(model, tokenizer, states, loss: str, step: float, direction: str = "sgd", beta: float = 0.1) -> dict:
    """Mean change in the probability of ``c``, ``r = c + 1`` and ``m = c − 1`` after one step of ``loss`` ("pair"
    or "nll") of parameter-space length ``step``, along the gradient ("sgd") or its sign ("adam")."""
    model = copy.deepcopy(model)
    targets = neighbour_ids(tokenizer, states)
    c, r = targets["c"], targets["r"]
    rows = torch.arange(len(states))
    before = next_digit_logprobs(model, tokenizer, states)
    if loss == "pair":  # at the reference the margin is 0; only the direction of the gradient matters here
        value = -F.logsigmoid(beta * (before[rows, c] - before[rows, r])).mean()
    elif loss == "nll":
        value = -before[rows, c].mean()
    else:
        raise ValueError(f"loss must be 'pair' or 'nll', got {loss!r}")
    value.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    moves = [p.grad if direction == "sgd" else p.grad.sign() for p in params]
    norm = torch.sqrt(sum((d ** 2).sum() for d in moves))
    with torch.no_grad():
        for p, d in zip(params, moves):
            p -= step * d / norm
        after = next_digit_logprobs(model, tokenizer, states)
    gain = (after.exp() - before.detach().exp())
    out = {k: float(gain[rows, ix].mean()) for k, ix in targets.items()}
    out["m_per_c"] = out["m"] / out["c"] if out["c"] > 0 else float("nan")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=None, help="the policy (default: data/tiny-base, or $STEPDPO_TINY_BASE)")
    ap.add_argument("--problems", type=int, default=400, help="training problems to take states from")
    ap.add_argument("--states", type=int, default=600, help="critical states at most")
    ap.add_argument("--step", type=float, default=1e-3, help="parameter-space length of the step (small: linear)")
    args = ap.parse_args(argv)
    # found out now, not after the model is loaded (no states to score was a traceback, a step of 0 a nan)
    for name in ("problems", "states"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0 < args.step < math.inf:  # not "step <= 0": nan passed it, and every figure came out nan
        ap.error(f"--step must be a finite number above 0, got {args.step}")

    torch.manual_seed(0)
    try:  # a folder with no model (a typo) was load_tiny_base's traceback
        model, tokenizer = tiny_models.load_tiny_base(args.policy)
    except FileNotFoundError as err:
        ap.error(f"--policy: {err}")
    model.eval()
    states = critical_states(toyworld.make_problems(args.problems, split="train", seed=0), args.states)
    with torch.no_grad():
        before = next_digit_logprobs(model, tokenizer, states).exp()
    rows = torch.arange(len(states))
    out = {"arc": digit_arc(model, tokenizer), "states": len(states),
           "start": {k: round(float(before[rows, ix].mean()), 3) for k, ix in neighbour_ids(tokenizer, states).items()}}
    print(f"digit angles 0..9 (degrees, top two components, {out['arc']['variance_share']:.0%} of the variance): "
          f"{out['arc']['angles']}")
    print(f"{len(states)} states; mean probability c {out['start']['c']:.3f}, r = c+1 {out['start']['r']:.3f}, "
          f"m = c-1 {out['start']['m']:.3f}")
    for direction in ("sgd", "adam"):
        for loss in ("pair", "nll"):
            g = mass_response(model, tokenizer, states, loss, args.step, direction)
            out[f"{loss}, {direction}"] = g
            print(f"{loss:4s} {direction:4s}: Δp(c) {g['c']:+.5f}  Δp(r) {g['r']:+.5f}  Δp(m) {g['m']:+.5f}  "
                  f"m gains {g['m_per_c']:.2f} per unit c gains")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
