"""The README's exercises, run: each setting the exercises ask for, in its notebook, on its own copy of a tutorial
run, and the metrics it moves, written beside the run's own. docs/exercises.md quotes its output,
docs/exercise_metrics.json, and tests/test_exercises.py checks that it does.

    make tutorial
    python scripts/exercise_runs.py --parallel 2 --out docs/exercise_metrics.json
    python scripts/exercise_runs.py --only 04_sft_weight_1 04_first_error --out /tmp/exercises.json

Each variant is one notebook run headless with one setting (``notebooks.run_on_copy``): the run folder itself is
not touched, and every variant reads the same notebooks 01-07 outputs. The 13 variants take 17-18 minutes on 2
cores with ``--parallel 2`` (notebook 04's three about 6 minutes each, two at a time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stepdpo_lite.atomic import write_json_atomic  # noqa: E402
from stepdpo_lite.tutorial import notebooks, runs  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile  # noqa: E402

# name: (the README's exercise, its notebook, the setting it asks for, the metrics.json sections that setting moves)
EXERCISES = {
    "01_rollouts_2": (1, "01", {"N_MC_ROLLOUTS": 2}, ("data",)),
    "01_rollouts_32": (1, "01", {"N_MC_ROLLOUTS": 32}, ("data",)),
    "02_train_rows_200": (2, "02", {"N_TRAIN_ROWS": 200}, ("prm",)),
    "03_process_weight_1": (3, "03", {"PROCESS_WEIGHT": 1.0}, ("orm",)),
    "03_process_weight_0": (3, "03", {"PROCESS_WEIGHT": 0.0}, ("orm",)),
    "04_sft_weight_1": (4, "04", {"SFT_WEIGHT": 1.0}, ("policy",)),
    "04_first_error": (4, "04", {"ONPOLICY_PROTOCOL": "first_error"}, ("policy",)),
    "04_onpolicy_sft_weight_1": (4, "04", {"ONPOLICY_SFT_WEIGHT": 1.0}, ("policy",)),
    "05_explorer_20": (5, "05", {"N_EXPLORER_PROBLEMS": 20}, ("visualisation",)),
    "06_candidates_64": (6, "06", {"N_CANDIDATES": 64}, ("evaluation", "best_of_n", "best_of_n_differences")),
    "06_problems_150": (6, "06", {"N_BEST_OF_N_PROBLEMS": 150}, ("evaluation", "best_of_n", "best_of_n_differences")),
    "07_expansions_2": (7, "07", {"EXPANSIONS": 2}, ("test_time",)),
    "07_expansions_8": (7, "07", {"EXPANSIONS": 8}, ("test_time",)),
}


def run_exercise(run: Path, name: str, scratch: Path, profile: str, threads: int | None) -> dict:
    """One variant of ``EXERCISES`` on a copy of ``run``: its setting and the sections of metrics it moves."""
    exercise, notebook, setting, sections = EXERCISES[name]
    metrics = notebooks.run_on_copy(run, scratch / name, [notebook], [f"{k}={v!r}" for k, v in setting.items()],
                                    profile, threads)
    return {"exercise": exercise, "notebook": notebook, "set": setting, "metrics": {s: metrics[s] for s in sections}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", default="runs", help="where the tutorial's runs/<profile>/ lives")
    ap.add_argument("--profile", default="tiny",
                    help="the profile whose run (<runs-dir>/<profile>) each variant copies, and runs its notebook "
                         "with (default: tiny)")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help=f"these variants: {', '.join(EXERCISES)}")
    ap.add_argument("--parallel", type=int, default=1, help="variants run at once (each with one thread when > 1)")
    ap.add_argument("--out", required=True, help="the JSON written: the run's own sections and each variant's")
    args = ap.parse_args(argv)
    if args.parallel < 1:
        ap.error(f"--parallel must be at least 1, got {args.parallel}")
    try:  # a folder there failed only when the JSON was written, after every variant had run
        runs.check_out_file(args.out)
    except ValueError as err:
        ap.error(str(err))
    names = args.only or list(EXERCISES)
    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        ap.error(f"--only: no variant {unknown[0]!r}; the variants: {', '.join(EXERCISES)}")
    if len(set(names)) != len(names):
        ap.error("--only: each variant once")
    try:
        get_profile(args.profile)
    except ValueError as err:
        ap.error(f"--profile: {err}")
    run = Path(args.runs_dir) / args.profile  # read, not made: runs.run_dir would create a misspelled one
    if not (run / "metrics.json").is_file():
        ap.error(f"--runs-dir {args.runs_dir}: {run} holds no tutorial run ("
                 f"{'no metrics.json' if run.is_dir() else 'no such folder'}): run the notebooks first "
                 f"(stepdpo-lite --profile {args.profile} --runs-dir {args.runs_dir})")
    try:
        runs.recorded(run, "test_time", "07_test_time_compute")  # the variants read every notebook's outputs
    except (ValueError, FileNotFoundError) as err:  # a cut-short run, or a metrics.json that is not JSON
        ap.error(f"--runs-dir {args.runs_dir}: {err}")
    own = runs.read_metrics(run)
    jobs = {n: (lambda scratch, threads, n=n: run_exercise(run, n, scratch, args.profile, threads)) for n in names}
    done = {n: {**record, "seconds": round(seconds)} for n, (record, seconds) in
            notebooks.run_side_by_side(jobs, args.parallel, desc="exercise variants").items()}
    sections = sorted({s for n in names for s in EXERCISES[n][3]})
    result = {"run": {s: own[s] for s in sections}, "exercises": {n: done[n] for n in names}}
    write_json_atomic(args.out, result)
    print(f"{len(names)} variants -> {args.out}")
    return result


if __name__ == "__main__":
    main()
