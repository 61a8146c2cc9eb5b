"""Which learning rate should notebooks 02 and 03 train their QLoRA adapters with? Chosen on validation.

The tiny profile's reward models start from ``data/tiny-verifier``, which already verifies, and the best setting
differs between the two adapters. This trains notebook 02's PRM recipe and notebook 03's ORM recipe (the
profile's LoRA, batch and epochs for that reward, or ``--epochs``; 4-bit base; notebook 01's training rows) at
each learning rate and prints validation and test AUROC. The ORM keeps its best validation setting
(``orm_learning_rate``, ``orm_epochs``); the PRM keeps 2e-3 (``reward_learning_rate``), its settings within 0.002
on validation (docs/benchmarks.md has the table).

    python scripts/reward_learning_rates.py --learning-rates 2e-3 1e-3 5e-4 2e-4 1e-4     # ~1 min a run, 2 cores
    python scripts/reward_learning_rates.py --reward outcome --epochs 2 --learning-rates 5e-4 2e-4

Needs ``runs/<profile>/data`` (notebook 01). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite import data, evaluation  # noqa: E402
from stepdpo_lite.reward_training import train_outcome_reward_model, train_process_reward_model  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile  # noqa: E402

TRAIN = {"process": train_process_reward_model, "outcome": train_outcome_reward_model}
SPLITS = {"process": "stepwise", "outcome": "outcome"}


def train_and_measure(reward: str, base: str, splits: dict, profile, learning_rate: float,
                      epochs: float | None = None) -> dict:
    args = {**profile.reward_training_args(reward), "learning_rate": learning_rate}
    if epochs is not None:
        args["num_train_epochs"] = epochs
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        model = TRAIN[reward](base, splits["train"], scratch, quantization="4bit", lora=profile.lora_config(),
                              max_steps=-1, seed=0, logging_steps=10, disable_tqdm=True,
                              train_sampling_strategy="group_by_length", **args)
    row = {"reward": reward, "base": base, "learning_rate": learning_rate, "epochs": args["num_train_epochs"],
           "seconds": round(time.time() - started)}
    val, test = splits["validation"], splits["test"]
    if reward == "process":
        val_scores = model.score_solutions(val["prompt"], val["completions"])
        test_scores = model.score_solutions(test["prompt"], test["completions"])
        report = evaluation.process_reward_report(val_scores, val["labels"], test_scores, test["labels"])
        row.update(validation_step_auroc=evaluation.step_auroc(val_scores, val["labels"]),
                   test_step_auroc=report["step_auroc"], test_first_error_f1=report["f1"])
    else:
        for name, split in (("validation", val), ("test", test)):
            scores = model.score_solutions(split["prompt"], split["completion"])
            row[f"{name}_auroc"] = evaluation.outcome_auroc(scores, split["label"])
    return {k: round(v, 4) if k.endswith(("auroc", "f1")) else v for k, v in row.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny",
                        help="The profile: its reward base, LoRA, batch and epochs, and its run's data "
                             "(default: tiny).")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"),
                        help="The tutorial's runs folder: <runs-dir>/<profile>/data is read (default: the "
                             "repository's runs).")
    parser.add_argument("--reward", choices=["process", "outcome", "both"], default="both",
                        help="Which reward model to train: notebook 02's PRM, notebook 03's ORM, or both (default).")
    parser.add_argument("--base", default=None, help="Reward base (default: the profile's reward_base).")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[2e-3, 1e-3, 5e-4, 2e-4, 1e-4],
                        help="The learning rates to try, one run each per reward (default: 2e-3 1e-3 5e-4 2e-4 1e-4).")
    parser.add_argument("--epochs", type=float, default=None, help="Epochs (default: the profile's, per reward).")
    args = parser.parse_args(argv)
    # found out now, not after the data is loaded: a learning rate or --epochs of 0 learns nothing (and "<= 0" let
    # nan through: min() of a list holding nan may be nan or not); a rate given twice trained the same run twice
    rates = [*args.learning_rates, *([] if args.epochs is None else [args.epochs])]
    if not all(0 < x < math.inf for x in rates) or len(set(args.learning_rates)) < len(args.learning_rates):
        parser.error(f"--learning-rates (distinct) and --epochs must be finite numbers above 0, got "
                     f"{args.learning_rates} and {args.epochs}")
    try:
        profile = get_profile(args.profile)
    except ValueError as err:
        parser.error(f"--profile: {err}")
    base = args.base or profile.reward_base
    # a folder that is not there (a Hub model id is owner/name: no leading / . ~, one / at most), found before the data
    if not Path(base).exists() and (base.startswith(("/", ".", "~")) or base.count("/") > 1):
        named = ("--base" if args.base else
                 f"--profile {args.profile}'s reward base ($STEPDPO_TINY_REWARD_BASE where set)")
        parser.error(f"{named} {base}: no such folder")
    folder = Path(args.runs_dir) / args.profile / "data"
    rewards = ["process", "outcome"] if args.reward == "both" else [args.reward]
    names = {reward: [f"{split}_{SPLITS[reward]}" for split in ("train", "validation", "test")] for reward in rewards}
    try:  # every reward's data before the first trains: outcome's missing was found after process's runs
        loaded = data.load_datasets(folder, [n for reward in rewards for n in names[reward]])
    except FileNotFoundError as err:
        parser.error(f"--runs-dir: {err} (notebook 01 makes it)")
    for reward in rewards:
        train, validation, test = (loaded[n] for n in names[reward])
        splits = {"train": train.shuffle(seed=0), "validation": validation, "test": test}
        for lr in args.learning_rates:
            row = train_and_measure(reward, base, splits, profile, lr, args.epochs)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
