"""How far does Stepwise DPO's step loss move the pairs it trains on, by the tiny profile's protocol?

The tiny profile's on-policy protocol (``profiles.ONPOLICY_PROTOCOLS["output_layer"]``, docs/benchmarks.md, "The
protocols") scores each pair at the first token where its sides differ, weighs that loss 50×, and lets it move the
output layer only. Its rounds end level with RFT. This script asks what the step loss itself does there. It builds
round 1 as ``scripts/uncorrected_mass.py`` does (the pairs ``onpolicy_rounds.py`` builds by this protocol, from 96
problems and 3 samples each), then trains copies of the start policy on the round's pairs, with the round's steps,
batches and seed:

- ``nll only``: RFT, as the round trains it (NLL weight 5, the protocol's);
- ``stepwise dpo, step weight W``: the protocol (NLL + the step loss through the output layer), for each W of
  ``--step-weights`` (50 is the protocol's);
- ``step loss alone, output layer`` and ``step loss alone, every layer``: NLL weight 0;
- ``stepwise dpo, first-error protocol``: the GPU profiles' protocol (Step-DPO's first-error pairing, step loss
  through every layer, NLL weight 20), beside ``nll only, NLL weight 20``.

At each step pair's state (its shared prefix, up to the first token where the corrected step and the wrong one
differ) it reads the mean probability of the chosen token and of the rejected one, and how often the chosen one is
the most likely.

    python scripts/step_loss_reach.py --runs-dir runs --seed 0      # about 3 minutes on 2 CPU cores

Needs notebook 01's run and notebook 02's PRM. Prints a table, then one JSON line.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from uncorrected_mass import (mass, parse_round_one, protocol_settings, round_one, round_one_parser,  # noqa: E402
                              trained)  # the same round 1, options and read-out

from stepdpo_lite.tutorial.profiles import ONPOLICY_PROTOCOLS, get_profile  # noqa: E402


def pair_cases(tokenizer, rows) -> list[dict]:
    """Per step pair of ``rows`` (``kind == "step"``): the rejected side's ids (prompt + prefix + wrong step), the
    position of the first token where the corrected step differs, and the chosen and rejected token there, in the
    form ``uncorrected_mass.mass`` reads (``right`` the chosen token). A pair whose sides differ only in length has
    no such token and is left out."""
    cases = []
    for r in rows:
        if r["kind"] != "step":
            continue
        context = tokenizer(r["prompt"] + r["initial_reason_steps"], add_special_tokens=False)["input_ids"]
        wrong, right = (tokenizer(r["prompt"] + r["initial_reason_steps"] + step, add_special_tokens=False)["input_ids"]
                        for step in (r["rejected_step"], r["chosen_step"]))
        at = next((i for i in range(len(context), min(len(wrong), len(right))) if wrong[i] != right[i]), None)
        if at is not None:
            cases.append(dict(ids=wrong, context=len(context), at=at, right=right[at], wrong=wrong[at],
                              right_ids=right, right_step_end=len(right)))
    return cases


def main(argv=None):
    ap = round_one_parser(__doc__)
    ap.add_argument("--step-weights", type=float, nargs="+", default=[5.0, 50.0, 500.0],
                    help="Stepwise DPO's step-loss weights to train with (default: 5 50 500; the protocol's is 50)")
    args = parse_round_one(ap, argv)
    if not all(0 < w < math.inf for w in args.step_weights) or len(set(args.step_weights)) < len(args.step_weights):
        ap.error(f"--step-weights must be distinct finite numbers above 0, got {args.step_weights}")
    profile = get_profile("tiny")
    arms = {"nll only": ("nll_only", {})}
    arms.update({f"stepwise dpo, step weight {w:g}": ("stepwise_dpo", {"step_weight": w}) for w in args.step_weights})
    arms["step loss alone, output layer"] = ("stepwise_dpo", {"sft_weight": 0.0})
    arms["step loss alone, every layer"] = ("stepwise_dpo", {"sft_weight": 0.0, "step_gradient": "all"})
    first_error = ONPOLICY_PROTOCOLS["first_error"]  # the GPU profiles' protocol, and its own NLL-only control
    arms["nll only, NLL weight 20"] = ("nll_only", first_error)
    arms["stepwise dpo, first-error protocol"] = ("stepwise_dpo", first_error)
    r = round_one(args.runs_dir, problems_per_round=args.problems_per_round, samples=args.samples, seed=args.seed,
                  error=ap.error)
    cases = pair_cases(r["tokenizer"], r["rows"])
    print(f"round 1: {len(r['rows'])} pairs, {r['info']['step']['pairs']} of them step pairs; {len(cases)} measured",
          flush=True)
    if not cases:
        sys.exit("no step pair to measure at: nothing to report")
    figures = {"start": mass(r["start"], cases)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (method, changes) in arms.items():
            settings = protocol_settings(profile, args.steps, args.seed, **changes)
            figures[name] = mass(trained(profile, r["tokenizer"], r["rows"], [], settings, args.seed, tmp,
                                         method=method), cases)
    print(f"\n{'policy':34s} {'chosen token':>13s} {'rejected token':>15s} {'chosen on top':>14s}")
    for name, f in figures.items():
        print(f"{name:34s} {f['right']:13.3f} {f['wrong']:15.3f} {f['right_on_top']:14.1%}")
    print(json.dumps({"config": vars(args), "pairs": len(r["rows"]), "measured": len(cases),
                      **{name: {k: f[k] for k in ("right", "wrong", "right_on_top")} for name, f in figures.items()}}))
    return figures


if __name__ == "__main__":
    main()
