"""Why the tiny reward models stay weak: probes of what a tiny toy-world model can verify at a tag.

Every probe prints, next to its own figure, the step AUROC of a baseline that knows only each step's
position (``diagnostics.position_only_scores``): later steps are wrong more often, so that alone is ~0.73.

1. ``likelihood``: no training at all. Score step k by the lowest log-probability the base gives to any
   token of steps 1..k (a mistake is usually an unlikely token). It shows the *information* is in the base.
2. ``lora``: notebook 02's recipe (4-bit base, LoRA r 8, lr 2e-3, one epoch) on ``--base``, e.g. a deeper
   base trained longer (``python -m stepdpo_lite.tutorial.tiny_base train-base --out runs/tiny-base-8 --layers 8
   --target-accuracy 0.95``, then ``--base runs/tiny-base-8``).
3. ``graded``: continue training the base for ``--steps`` steps on a 50/50 mix of its usual solutions and
   solutions graded in the PRM's own format (a tag and " Yes"/" No" after every step, labels from the
   checker), then read the PRM reward zero-shot, and after notebook 02's LoRA recipe (LoRA r 8, lr 2e-3, one
   epoch) run on the pretrained base unquantized (no 4-bit).

    python scripts/verifier_probe.py likelihood                 # ~10 s, needs runs/tiny/data (notebook 01)
    python scripts/verifier_probe.py lora --base data/tiny-base # ~1 min
    python scripts/verifier_probe.py graded --steps 600         # ~20 min on 2 CPU cores
    python scripts/verifier_probe.py graded --device cuda --steps 10000 --batch-size 128 --graded-fraction 1.0 \
        --skip-lora                                             # ~5 min on an H100

All figures are on notebook 01's validation solutions. Prints one JSON line per probe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The kit first: importing it filters bitsandbytes' warning that it cannot fetch a CPU kernel the kit never uses
# (stepdpo_lite/__init__.py), which transformers' imports would otherwise print.
sys.path.insert(0, str(ROOT))
import stepdpo_lite  # noqa: E402,F401

import torch  # noqa: E402
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments, set_seed  # noqa: E402

from stepdpo_lite import data, evaluation  # noqa: E402
from stepdpo_lite.atomic import check_replaceable, save_atomic  # noqa: E402
from stepdpo_lite.reward_training import train_process_reward_model  # noqa: E402
from stepdpo_lite.rewards import NO, STEP_TAG, YES, ProcessRewardModel, RewardModelConfig  # noqa: E402
from stepdpo_lite.tutorial import diagnostics, tiny_base, tiny_models, toyworld  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile  # noqa: E402
from stepdpo_lite.steps import char_step_ids  # noqa: E402

SAVED = ("config.json",)  # what every saved model holds: a folder with other files only is not replaced by a save


def likelihood_scores(model, tokenizer, rows) -> list[list[float]]:
    """Per step: min over the tokens of steps 1..k of log p(token | prefix) under the base."""
    out = []
    for row in rows:
        ends = list(accumulate(map(len, row["completions"]), initial=len(row["prompt"])))
        enc = tokenizer(row["prompt"] + "".join(row["completions"]), return_offsets_mapping=True,
                        add_special_tokens=False)
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            logp = model(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0].tolist()
        step_of = char_step_ids(list(zip(ends, ends[1:])), enc["offset_mapping"])[1:]
        worst = [min([lp for lp, k in zip(logp, step_of) if k == step], default=0.0) for step in range(len(ends) - 1)]
        out.append(list(accumulate(worst, min, initial=0.0))[1:])
    return out


def graded_text(problem, rng) -> str:
    """Gold or one-error solution with the checker's verdict after every step, in the PRM's format."""
    v = toyworld.check(problem, toyworld.noisy_training_text(problem, rng, error_rate=0.5))
    return "".join(s + STEP_TAG + (YES if ok else NO)
                   for s, ok in zip(v.steps, v.step_labels))


def graded_pretraining(base: str, out: str, steps: int, seed: int = 1, device: str = "cpu", batch_size: int = 64,
                       graded_fraction: float = 0.5, max_rows: int = 200_000, max_minutes: float | None = None) -> int:
    """Continue training ``base`` on graded (and, for ``1 - graded_fraction``, plain) solutions; returns the
    number of steps run (fewer than ``steps`` when ``max_minutes`` ran out)."""
    class Deadline(TrainerCallback):
        def __init__(self):
            self.start = time.time()

        def on_step_end(self, args, state, control, **kw):
            if time.time() - self.start > 60 * max_minutes:
                control.should_training_stop = True

    set_seed(seed)
    model, tok = tiny_models.load_tiny_base(base)
    model.train()
    rng = random.Random(seed)
    problems = toyworld.make_problems(min(steps * batch_size, max_rows), "train", seed=seed)  # cycled if fewer
    texts = [graded_text(p, rng) if rng.random() < graded_fraction else toyworld.noisy_training_text(p, rng, 0.2)
             for p in problems]
    ds = tiny_base.solution_lm_dataset(tok, [p.prompt for p in problems], texts, num_proc=min(8, os.cpu_count() or 1))
    tok.padding_side = "right"
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer's output dir; the model is saved below
        args = TrainingArguments(output_dir=scratch, per_device_train_batch_size=batch_size,
                                 learning_rate=1e-3, max_steps=steps, warmup_steps=20, lr_scheduler_type="cosine",
                                 weight_decay=0.01, logging_steps=500, save_strategy="no", report_to=[], seed=seed,
                                 use_cpu=device == "cpu", disable_tqdm=True, dataloader_num_workers=2)
        trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[Deadline()] if max_minutes is not None else None,
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True))
        trainer.train()
    tok.padding_side = "left"

    def write(tmp: str) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    save_atomic(out, write, owned=SAVED)  # a crash between the two leaves no base without its tokenizer
    return trainer.state.global_step


def lora_prm_scores(base: str, train, val, out: str, quantization: str | None,
                    tag: str = STEP_TAG) -> list[list[float]]:
    """Notebook 02's PRM recipe (the tiny profile's LoRA and sizes, no dropout) on ``base``; the step rewards
    of ``val``."""
    p = get_profile("tiny")
    prm = train_process_reward_model(base, train, out, quantization=quantization,
                                     lora={**p.lora_config(), "lora_dropout": 0.0},
                                     learning_rate=p.reward_learning_rate, num_train_epochs=p.reward_epochs,
                                     per_device_train_batch_size=p.train_batch_size, max_length=p.max_length,
                                     device=p.device, dtype=p.dtype, seed=0, disable_tqdm=True, tag=tag)
    return prm.score_solutions(val["prompt"], val["completions"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["likelihood", "lora", "graded"],
                        help="likelihood: the base's token log-probabilities, no training; lora: notebook 02's "
                             "4-bit LoRA PRM on --base; graded: continued pretraining on graded solutions, then the "
                             "PRM zero-shot and after an unquantized LoRA")
    parser.add_argument("--data", default=str(ROOT / "runs" / "tiny" / "data"), help="notebook 01's datasets")
    parser.add_argument("--base", default=str(tiny_models.TINY_BASE_DIR),
                        help="the base model: likelihood scores the steps with it, lora trains the PRM on it (a Hub "
                             "model id too), graded continues training it (default: the shipped data/tiny-base)")
    parser.add_argument("--steps", type=int, default=600, help="graded: continued-pretraining steps")
    parser.add_argument("--batch-size", type=int, default=64, help="graded: pretraining batch size")
    parser.add_argument("--graded-fraction", type=float, default=0.5, help="graded: share of graded solutions")
    parser.add_argument("--device", default="cpu", help="graded: where to pretrain (cuda is far faster)")
    parser.add_argument("--max-minutes", type=float, default=None, help="graded: stop pretraining after this long")
    parser.add_argument("--save", default=None, help="graded: keep the pretrained base in this folder")
    parser.add_argument("--skip-lora", action="store_true", help="graded: zero-shot figure only")
    parser.add_argument("--tag", default=STEP_TAG, help="lora: the verification tag (e.g. '?', one token)")
    args = parser.parse_args(argv)
    # found out now, not after the datasets and the base are loaded (or after 20 minutes of training, for --save)
    if args.steps < 1 or args.batch_size < 1:
        parser.error(f"--steps and --batch-size must be at least 1, got {args.steps} and {args.batch_size}")
    # not "max_minutes <= 0": nan passed it, and the deadline (minutes > nan) never came, without a word
    if not 0 <= args.graded_fraction <= 1 or args.max_minutes is not None and not 0 < args.max_minutes < math.inf:
        parser.error(f"--graded-fraction must be between 0 and 1 and --max-minutes above 0, got "
                     f"{args.graded_fraction} and {args.max_minutes}")
    if args.probe == "graded":
        try:  # a misspelt device was torch's traceback after the pretraining, which ran on the GPU if there is one
            tiny_models.check_device(args.device)
        except ValueError as err:
            parser.error(str(err))
    if args.save:
        try:  # the save replaces the folder as a whole
            check_replaceable(args.save, owned=SAVED, where="--save")
        except ValueError as err:
            parser.error(str(err))
        if os.path.realpath(args.save) == os.path.realpath(args.base):  # it holds config.json: a save, replaced
            parser.error(f"--save {args.save} is --base: the pretrained model would replace the one it started from")
    if args.probe != "lora" and not (Path(args.base) / "config.json").is_file():  # lora's may be a Hub model id
        parser.error(f"--base {args.base}: no saved model there (no config.json)")
    try:  # a traceback naming load_datasets, not the option, otherwise
        ds = data.load_datasets(args.data, ["train_stepwise", "validation_stepwise"])
    except FileNotFoundError as err:
        parser.error(f"--data: {err} (notebook 01 makes runs/<profile>/data)")
    val = ds["validation_stepwise"]

    def auroc(scores):
        return round(evaluation.step_auroc(scores, val["labels"]), 4)

    positions = diagnostics.position_only_scores([len(labels) for labels in val["labels"]])
    baseline = {"position_only_validation_step_auroc": auroc(positions)}
    if args.probe == "likelihood":
        model, tok = tiny_models.load_tiny_base(args.base)
        print(json.dumps({"probe": "likelihood", "base": args.base,
                          "validation_step_auroc": auroc(likelihood_scores(model, tok, val)),
                          "n_solutions": len(val), **baseline}))
        return
    if args.probe == "lora":
        with tempfile.TemporaryDirectory() as tmp:
            tuned = lora_prm_scores(args.base, ds["train_stepwise"], val, tmp, quantization="4bit", tag=args.tag)
        print(json.dumps({"probe": "lora", "base": args.base, "tag": args.tag,
                          "after_lora_validation_step_auroc": auroc(tuned), **baseline}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        pretrained = args.save or tmp + "/base"
        done = graded_pretraining(args.base, pretrained, args.steps, device=args.device, batch_size=args.batch_size,
                                  graded_fraction=args.graded_fraction, max_minutes=args.max_minutes)
        model, tok = tiny_models.load_tiny_base(pretrained, device=args.device)
        prm = ProcessRewardModel(model, tok, RewardModelConfig())
        zero_shot = prm.score_solutions(val["prompt"], val["completions"])
        result = {"probe": "graded", "base": args.base, "steps": done, "batch_size": args.batch_size,
                  "graded_fraction": args.graded_fraction, "zero_shot_validation_step_auroc": auroc(zero_shot)}
        if not args.skip_lora:
            tuned = lora_prm_scores(pretrained, ds["train_stepwise"], val, tmp + "/prm", quantization=None)
            result["after_lora_validation_step_auroc"] = auroc(tuned)
    print(json.dumps({**result, **baseline}))


if __name__ == "__main__":
    main()
