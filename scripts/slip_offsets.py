"""Which way do a policy's arithmetic slips lean? The toy world's slips, written − right result, start vs trained.

Pure preference training (``scripts/onpolicy_rounds.py --sft-weight 0``) on pairs of a right step and the policy's
own slip teaches "less of the slip", not "the right number": when the start policy's slips lean one way (+1), the
trained one can slip the other way. Save a policy with ``onpolicy_rounds.py --save-policies DIR``, then:

    python scripts/slip_offsets.py --policy DIR/stepwise_dpo      # ~30 s on 2 CPU cores

Prints the share of each offset (−3 and +3 gather everything beyond) among the first-error arithmetic slips of the
start policy's samples at T = 1 on training problems (what the pairs' rejected side holds), of its greedy
solutions to the validation problems, and of the given policies' greedy solutions to them; then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.tutorial import policy_eval, tiny_models, toyworld  # noqa: E402


def slip_shares(problems, solutions) -> dict:
    """``{"n": slips, "shares": {offset: share}}`` over the first-error arithmetic slips (offsets clipped to ±3)."""
    slips = [toyworld.arithmetic_slip(p, s) for p, ss in zip(problems, solutions) for s in ss]
    counts = Counter(max(-3, min(3, d)) for d in slips if d is not None)
    n = sum(counts.values())
    return {"n": n, "shares": {k: round(counts[k] / n, 3) for k in sorted(counts)}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", nargs="*", default=[], help="saved policies (folders) to compare with the start")
    ap.add_argument("--start", default=None, help="the start policy (default: data/tiny-base, or $STEPDPO_TINY_BASE)")
    ap.add_argument("--n-train", type=int, default=300, help="training problems the start policy samples")
    ap.add_argument("--samples", type=int, default=3, help="samples per training problem (T = 1)")
    ap.add_argument("--n-eval", type=int, default=150, help="validation problems solved greedily")
    args = ap.parse_args(argv)
    for name in ("n_train", "samples", "n_eval"):  # found out now, not after the base is loaded: 0 has no slips
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    # found out now, not after the start policy has sampled: a folder with no model (a typo), and a policy given
    # twice (one row of figures, keyed by its path, for both)
    for path in args.policy:
        if not (Path(path) / "config.json").is_file():
            ap.error(f"--policy {path}: no saved policy there (no config.json)")
    if len(set(args.policy)) < len(args.policy):
        ap.error(f"--policy must be distinct, got {args.policy}")

    try:  # a folder with no model (a typo) was load_tiny_base's traceback
        start, tokenizer = tiny_models.load_tiny_base(args.start)
    except FileNotFoundError as err:
        ap.error(f"--start: {err}")
    train = toyworld.make_problems(args.n_train, split="train", seed=0)
    val = toyworld.make_problems(args.n_eval, split="validation", seed=0)
    kw = dict(max_new_tokens=160, progress=False)
    out = {"start, T=1 on train (rejected side)": slip_shares(train, policy_eval.sample_solutions(
               start, tokenizer, train, n=args.samples, temperature=1.0, **kw)),
           "start, greedy on validation": slip_shares(val, policy_eval.sample_solutions(
               start, tokenizer, val, n=1, temperature=0.0, **kw))}
    for path in args.policy:
        model, _ = tiny_models.load_tiny_base(path)
        out[f"{path}, greedy on validation"] = slip_shares(val, policy_eval.sample_solutions(
            model, tokenizer, val, n=1, temperature=0.0, **kw))
    for name, r in out.items():
        print(f"{name:60s} {r['n']:4d} slips  " + "  ".join(f"{k:+d}: {v:.0%}" for k, v in r["shares"].items()))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
