"""Notebook 04 over several seeds: how far does the seed move Stepwise DPO's lead, and is the lead real?

One run of 150 test problems cannot tell a 3-point lead from noise (a paired 95% interval is about ±3 points), and
the seed moves the differences by more than that (docs/benchmarks.md). This runs notebook 04 once per seed, each
on its own copy of the run folder (the run itself is not touched), and prints every seed's accuracies, Stepwise DPO
minus each other method with its interval, the mean, and #16's goal judged the sounder way: a mean lead of at
least 3 points *and* every seed's interval above zero (``onpolicy_report.seed_summary``). With two seeds or more it
also prints a 95% interval of the mean over the seeds, and says when its top lies below the margin: then the
seeds rule the goal's lead out for the method, not only for these runs.

    python scripts/seed_spread.py --seeds 0 1 2 --parallel 2
    python scripts/seed_spread.py --seeds 0 1 2 --set ONPOLICY_PROTOCOL=first_error

Needs notebooks 01 and 02's run (data and PRM; ``make tutorial`` makes it). About 4 minutes per seed on 2 cores;
``--parallel 2`` runs two at a time with one thread each (about 6 minutes a pair). Prints its plan, then a line per
seed as each finishes. ``--out`` writes each seed's ``policy`` metrics as JSON.

The same verdict for runs of ``scripts/onpolicy_rounds.py`` (one ``--out`` file per seed), after any round:

    python scripts/seed_spread.py --from-rounds x_s0.json x_s1.json x_s2.json --round 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.atomic import write_atomic  # noqa: E402
from stepdpo_lite.tutorial import notebooks, onpolicy_report, runs  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile  # noqa: E402

DEFAULT_SEEDS = [0, 1, 2]

# onpolicy_rounds.py settings newer than some --out files, at the value the older runs had: a file without one was run
# so, and matches a newer file at that value
ADDED_SETTINGS = {"rejected_sft_weight": 0.0, "train_problems": None, "eval_problems": None, "device": None,
                  "sample_batch_size": None, "uncorrected_weight": 0.0, "uncorrected_gradient": "output_layer",
                  "chosen": "prm"}


def run_seed(run_dir: Path, profile: str, seed: int, sets: list[str], scratch: Path, threads: int | None) -> dict:
    """Notebook 04 with ``SEED = seed`` (and ``sets``) on a copy of ``run_dir``; its ``policy`` metrics."""
    return notebooks.run_on_copy(run_dir, scratch / f"seed_{seed}", ["04"], [f"SEED={seed}", *sets], profile,
                                 threads)["policy"]


def rounds_by_seed(paths: list[str], round_index: int | None = None) -> dict:
    """Each seed's ``policy`` metrics after round ``round_index`` (default: the last round every file has) of
    ``scripts/onpolicy_rounds.py --out`` files, one file per seed."""
    twice = sorted({str(p) for p in paths if list(map(str, paths)).count(str(p)) > 1})
    if twice:  # one entry per path below: the repeat would have been dropped, a spread over fewer seeds than given
        raise ValueError(f"--from-rounds: {twice[0]} is given more than once (one file per seed)")
    results = {}
    for p in paths:
        try:
            results[str(p)] = json.loads(Path(p).read_text())
        except (OSError, ValueError) as err:  # the bare error of a missing or non-JSON file names no option
            raise ValueError(f"--from-rounds: cannot read {p} as JSON: {getattr(err, 'strerror', None) or err}"
                             ) from None
    for path, result in results.items():
        if not isinstance(result, dict) or not result.get("rounds") or "seed" not in result.get("config", {}):
            raise ValueError(f"--from-rounds: {path} has no config.seed or no rounds (is it an --out file of "
                             "scripts/onpolicy_rounds.py?)")
    first_path, first = next(iter(results.items()))
    for path, result in results.items():  # a spread over seeds of one protocol, not a mean of different runs
        a, b = ({**ADDED_SETTINGS, **r["config"]} for r in (first, result))
        other = {k for k in set(a) | set(b) if k != "seed" and a.get(k) != b.get(k)}
        if other:
            raise ValueError(f"--from-rounds: {path} differs from {first_path} in {sorted(other)}, not only the seed")
    by_seed, last = {}, min(len(r["rounds"]) for r in results.values())
    n = last if round_index is None else round_index
    if not 1 <= n <= last:
        raise ValueError(f"--round must be between 1 and {last} (the rounds every file has), got {n}")
    for path, result in results.items():
        seed = result["config"]["seed"]
        if seed in by_seed:
            raise ValueError(f"--from-rounds: {path} holds seed {seed} again")
        by_seed[seed] = onpolicy_report.metrics_of(result["rounds"][:n], base=result.get("base"))
    return by_seed


def run_seeds(args, run_dir: Path) -> dict:
    """Notebook 04 once per seed of ``args.seeds`` on copies of ``run_dir``; each seed's ``policy`` metrics, in
    ``args.seeds``' order. Prints the plan, then a line per seed as it finishes: each runs minutes, its own output
    captured."""
    print(f"notebook 04 for {len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), {args.parallel} at a time, "
          f"on copies of {run_dir} (about 4 minutes a seed on 2 cores)", flush=True)

    jobs = {f"seed {seed}": (lambda scratch, threads, seed=seed: run_seed(run_dir, args.profile, seed, args.set,
                                                                          scratch, threads)) for seed in args.seeds}
    done = notebooks.run_side_by_side(jobs, args.parallel, desc="seeds")
    return {seed: done[f"seed {seed}"][0] for seed in args.seeds}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", default="runs",
                    help="the tutorial's runs folder: notebook 04 runs on copies of <runs-dir>/<profile> (default: "
                         "runs; ignored with --from-rounds)")
    ap.add_argument("--profile", default="tiny",
                    help="the profile whose run notebook 04 runs on, and runs with (default: tiny; ignored with "
                         "--from-rounds)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help=f"notebook 04's seeds, one run each (default: {' '.join(map(str, DEFAULT_SEEDS))})")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="notebook 04 parameters, as the "
                    "tutorial runner's --set (SEED is set per run)")
    ap.add_argument("--parallel", type=int, default=1, help="seeds run at once (each with one thread when > 1)")
    ap.add_argument("--margin", type=float, default=3.0, help="the goal's lead, in points")
    ap.add_argument("--out", default=None, help="write {seed: policy metrics} here as JSON")
    ap.add_argument("--from-rounds", nargs="+", default=None, metavar="JSON", help="judge these runs of "
                    "scripts/onpolicy_rounds.py (their --out files, one per seed) instead of running notebook 04")
    ap.add_argument("--round", type=int, default=None, help="with --from-rounds: the round to judge (default: the "
                    "last every file has)")
    args = ap.parse_args(argv)
    # found out now, not as a traceback before the runs start or after the files are read
    for name in ("parallel", "round"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not math.isfinite(args.margin):  # nan: every verdict "not met" and no lead ever ruled out, without a word
        ap.error(f"--margin must be a finite number of points, got {args.margin}")
    if args.out and any(os.path.realpath(args.out) == os.path.realpath(p) for p in args.from_rounds or ()):
        ap.error(f"--out {args.out} is one of --from-rounds: the verdict would replace the run it judged")
    if args.out:
        try:  # a folder there failed only when the verdict was written, after every seed had run
            runs.check_out_file(args.out)
        except ValueError as err:
            ap.error(str(err))
    if args.from_rounds:
        for name in ("set", "seeds"):  # each would be dropped without a word
            if getattr(args, name):
                ap.error(f"--{name} runs notebook 04; --from-rounds judges runs already made (each file one seed): "
                         "give one of them")
        try:  # the files read and checked: a missing or non-JSON one, a round they do not all have
            by_seed = rounds_by_seed(args.from_rounds, args.round)
        except ValueError as err:
            ap.error(str(err))
    else:
        if args.round is not None:
            ap.error("--round goes with --from-rounds (notebook 04's runs are judged after their last round)")
        args.seeds = args.seeds or DEFAULT_SEEDS
        if any(s.split("=", 1)[0] == "SEED" for s in args.set):
            ap.error("--set SEED=...: the seeds come from --seeds")
        if min(args.seeds) < 0:  # notebook 04 refused SEED=-1 only when its turn came, after the seeds before it
            ap.error(f"--seeds must be 0 or more, got {' '.join(map(str, args.seeds))}")
        if len(set(args.seeds)) != len(args.seeds):
            ap.error(f"--seeds must be distinct, got {' '.join(map(str, args.seeds))}")
        try:  # found out now, not when the first seed's notebook fails minutes in
            get_profile(args.profile)
        except ValueError as err:
            ap.error(f"--profile: {err}")
        try:
            run_dir = runs.require(Path(args.runs_dir) / args.profile / "prm", "02_process_reward_model").parent
        except FileNotFoundError as err:
            ap.error(f"--runs-dir: {err}")
        by_seed = run_seeds(args, run_dir)
    print(onpolicy_report.format_seed_summary(by_seed, margin=args.margin / 100))
    if args.out:
        write_atomic(args.out, lambda tmp: Path(tmp).write_text(json.dumps(by_seed, indent=1)))
    return by_seed


if __name__ == "__main__":
    main()
