"""Do the preference terms ever beat the NLL-only control? Notebook 04 over a grid of β and NLL weight.

On the tiny profile, notebook 04's NLL-only control (TRL ``DPOTrainer(loss_type=["sft"])``) beats both DPO and
Stepwise DPO in greedy accuracy (README). This runs notebook 04's one-round part unchanged for each setting (same
pairs, steps, learning rate and seed; the cells before its on-policy section, which needs notebook 02's PRM) on a
copy of notebook 01's data, and prints the held-out test accuracies of all runs.

    python scripts/preference_sweep.py --beta 0.1 0.5 --sft-weight 1 5     # ~2 min a setting on 2 CPU cores

Needs ``runs/<profile>/data`` (notebook 01). Prints its plan and a line per setting as it finishes, then a table,
then one JSON line per setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.tutorial import notebooks, onpolicy, runs  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile  # noqa: E402

RUNS = ("base", "dpo", "stepwise_dpo", "nll_only", "step_dpo")  # the last: notebook 04's run on Step-DPO's pairs


def one_round_part(folder: Path) -> Path:
    """Notebook 04 up to its on-policy section: the one-round runs on notebook 01's pairs this sweep varies."""
    nb = json.loads((notebooks.NOTEBOOK_DIR / "04_stepwise_dpo.ipynb").read_text())
    cut = next(i for i, c in enumerate(nb["cells"]) if "".join(c["source"]).startswith("## On-policy rounds"))
    path = folder / "04_one_round.ipynb"
    path.write_text(json.dumps({**nb, "cells": nb["cells"][:cut]}))
    return path


def run_setting(profile: str, data: Path, beta: float, sft_weight: float, outcome_weight: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / profile
        shutil.copytree(data, run_dir / "data")
        params = {"PROFILE": profile, "RUN_DIR": str(run_dir), "BETA": beta, "SFT_WEIGHT": sft_weight,
                  "OUTCOME_WEIGHT": outcome_weight, "ONPOLICY_ROUNDS": 0}  # no rounds: no PRM needed
        notebooks.execute_notebook(one_round_part(Path(tmp)), params, cwd=ROOT)
        policy = runs.read_metrics(run_dir)["policy"]
    return {"beta": beta, "sft_weight": sft_weight, "outcome_weight": outcome_weight,
            **{f"{name}_{key}": round(policy[name][key], 4)
               for name in RUNS for key in ("accuracy", "sampled_accuracy")}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="tiny",
                    help="the profile whose notebook 01 data is copied, and notebook 04 runs with (default: tiny)")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs"),
                    help="the tutorial's runs folder: <runs-dir>/<profile>/data is read (default: the repository's "
                         "runs)")
    ap.add_argument("--beta", type=float, nargs="+", default=[0.1, 0.5],
                    help="notebook 04's BETA values to try: β of DPO and of both Stepwise DPO losses "
                         "(default: 0.1 0.5)")
    ap.add_argument("--sft-weight", type=float, nargs="+", default=[1.0, 5.0],
                    help="notebook 04's SFT_WEIGHT values to try: the NLL weight on the chosen responses, in every "
                         "run (NLL only: 1 when 0) (default: 1.0 5.0)")
    ap.add_argument("--outcome-weight", type=float, nargs="+", default=[0.0],
                    help="notebook 04's OUTCOME_WEIGHT values to try: Stepwise DPO's sequence-level (DPO) term, "
                         "beside its step loss of weight 1 (default: 0.0); every combination of the three runs")
    args = ap.parse_args(argv)
    # found out now, not after the settings before it ran (~2 min each): a value given twice ran its settings twice,
    # a nan or negative β or weight failed in notebook 04 or trained to nan weights
    for name in ("beta", "sft_weight", "outcome_weight"):
        if len(set(getattr(args, name))) < len(getattr(args, name)):
            ap.error(f"--{name.replace('_', '-')} must be distinct, got {getattr(args, name)}")
    for beta, sft, outcome in itertools.product(args.beta, args.sft_weight, args.outcome_weight):
        try:  # notebook 04's losses take the same values as the on-policy rounds' (step-loss weight 1)
            onpolicy.TrainSettings(beta=beta, sft_weight=sft, outcome_weight=outcome)
        except ValueError as err:
            ap.error(f"--beta, --sft-weight, --outcome-weight: {err}")
    try:
        get_profile(args.profile)
    except ValueError as err:
        ap.error(f"--profile: {err}")
    try:
        data = runs.require(Path(args.runs_dir) / args.profile / "data", "01_data_prep")
    except FileNotFoundError as err:
        ap.error(f"--runs-dir: {err}")

    settings = list(itertools.product(args.beta, args.sft_weight, args.outcome_weight))
    # each setting is a notebook run whose output is captured: minutes without a word otherwise
    print(f"{len(settings)} setting{'s' * (len(settings) != 1)} (β × NLL weight × outcome weight) of notebook 04's "
          f"one-round part on a copy of {data}, one after another (~2 min a setting on 2 CPU cores)", flush=True)
    rows = []
    for beta, sft, outcome in tqdm(settings, desc="settings", unit="run"):
        started = time.time()
        rows.append(run_setting(args.profile, data, beta, sft, outcome))
        tqdm.write(f"β {beta} NLL {sft} outcome {outcome}: done in {time.time() - started:.0f} s")
        sys.stdout.flush()  # tqdm.write does not: a log file got the lines only at the end
    names = " ".join(f"{n:>6}" for n in ("DPO", "Step", "NLL", "S-DPO"))
    print(f"\n{'β':>5} {'NLL':>5} {'out':>4} | greedy: {'base':>6} {names} | sampled: {names}")
    for r in rows:
        print(f"{r['beta']:>5} {r['sft_weight']:>5} {r['outcome_weight']:>4} | greedy: " +
              " ".join(f"{r[f'{n}_accuracy']:>6.1%}" for n in RUNS) + " | sampled: " +
              " ".join(f"{r[f'{n}_sampled_accuracy']:>6.1%}" for n in RUNS[1:]))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
