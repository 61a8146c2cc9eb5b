"""Training the toy world's tiny base policy (``data/tiny-base``), and measuring it.

A ~1M-parameter Llama (``tiny_models.build_tiny_model``) trained on gold solutions mixed with solutions that carry one
arithmetic or copy error (``toyworld.noisy_training_text``), stopped early once its greedy validation accuracy
reaches a target: imperfect on purpose, so that reward models and Stepwise DPO have real mistakes to find and fix.
``fine_tune_base`` trains it the same way on your own task's texts (docs/own_task.md). The model's files (the shipped
paths, tokenizer, model, load and save) are ``tiny_models``'; the reward base is trained by ``verifier_pretraining``.

    python -m stepdpo_lite.tutorial.tiny_base train-base --out runs/tiny-base --seed 0  # options: TinyBaseConfig
    python -m stepdpo_lite.tutorial.tiny_base eval-base --model data/tiny-base

``train-base`` refuses ``--out data/tiny-base`` (its default: the shipped model every notebook loads) unless
``--force`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from ..atomic import check_replaceable
from ..checks import finite_number, list_of, positive_int, warn_user
from . import policy_eval, task_problems, tasks
from .tiny_models import (TINY_BASE_DIR, build_tiny_model, build_tokenizer, load_tiny_base, refuse_shipped_out,
                          save_tiny_model)
from .toyworld import make_problems, noisy_training_text


def _training_texts(prompts, solutions, where: str) -> tuple[list[str], list[str]]:
    """``prompts`` and ``solutions`` as lists of strs, as many of each, none blank; else a ValueError naming
    ``where`` and the text."""
    prompts = list_of(prompts, f"{where}: prompts", "prompt strs")  # one str: a row per character
    solutions = list_of(solutions, f"{where}: solutions", "solution strs")
    if len(prompts) != len(solutions):
        raise ValueError(f"{where}: {len(prompts)} prompts but {len(solutions)} solutions")
    if not solutions:  # failed inside datasets
        raise ValueError(f"{where}: no prompts and solutions to train on")
    for name, texts in (("prompts", prompts), ("solutions", solutions)):  # None was a TypeError or the tokenizer's
        for i, text in enumerate(texts):  # error, naming no row
            if not isinstance(text, str):
                raise ValueError(f"{where}: {name}[{i}] must be a str, got {type(text).__name__}")
    blank = next((i for i, text in enumerate(solutions) if not text.strip()), None)
    if blank is not None:  # it trained on prompt + EOS: a policy that stops before its first step
        raise ValueError(f"{where}: solutions[{blank}] is blank; give every prompt the solution to learn")
    return prompts, solutions


def solution_lm_dataset(tokenizer, prompts: list[str], solutions: list[str], num_proc: int | None = None,
                        where: str = "solution_lm_dataset"):
    """Causal-LM rows ``input_ids``/``labels`` of prompt + solution + eos, with the loss on the solution only:
    the prompt's random numbers are not to be learned. ``where`` names the caller in its errors."""
    prompts, solutions = _training_texts(prompts, solutions, where)
    return _lm_rows(tokenizer, prompts, solutions, num_proc)


def _lm_rows(tokenizer, prompts: list[str], solutions: list[str], num_proc: int | None = None):
    """``solution_lm_dataset``'s rows from texts ``_training_texts`` has checked."""
    def tokenize(batch):
        prompt_ids = tokenizer(batch["prompt"], add_special_tokens=False)["input_ids"]
        solution_ids = tokenizer(batch["response"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [p + r for p, r in zip(prompt_ids, solution_ids)],
                "labels": [[-100] * len(p) + r for p, r in zip(prompt_ids, solution_ids)]}

    rows = {"prompt": prompts, "response": [s + tokenizer.eos_token for s in solutions]}
    return Dataset.from_dict(rows).map(tokenize, batched=True, remove_columns=["prompt", "response"], num_proc=num_proc)


def _check_settings(where: str, learning_rate: float, target_accuracy: float, seed: int, **counts: int) -> None:
    """Checked before any data or model: eval_every=0 failed at the first step (ZeroDivisionError), max_steps=0
    trained the Trainer's default 3 epochs, a NaN target_accuracy never stopped the run, and a seed of "3" or 1.5
    failed after the model was built, naming make_problems (-1: numpy's seeding)."""
    positive_int(seed, "seed", where, minimum=0)
    for name, value in counts.items():
        positive_int(value, name, where)
    if finite_number(learning_rate, "learning_rate", where) <= 0:
        raise ValueError(f"{where}: learning_rate must be > 0, got {learning_rate!r}")
    if not 0 <= finite_number(target_accuracy, "target_accuracy", where) <= 1:  # 50 (a percentage) never stopped it
        raise ValueError(f"{where}: target_accuracy must lie in [0, 1] (a share of the problems), got "
                         f"{target_accuracy!r}")


def _check_out(where: str, out) -> None:
    """The folder ``out``, checked before any data or model too."""
    # The save replaces ``out`` as a whole (its model card kept): a folder that holds no saved model (no
    # training_log.json) but other files, such as --out data, would lose them all once training is over. Nothing is
    # written to out before that save (the Trainer works in a temporary folder); a _trainer there is an older
    # version's, which made it in out as a run began: the kit's own leftover, deleted with the rest by the save
    check_replaceable(out, keep=("README.md", "_trainer"), owned=("training_log.json",), where=f"{where}: out")


_NOT_SAVED = ("out", "max_steps", "eval_every", "n_eval")  # how long and where it trained, not what it trained


@dataclass
class TinyBaseConfig:
    """Everything ``train_base`` depends on (all but ``_NOT_SAVED`` are saved in its ``training_log.json``); bad
    settings are refused here, naming ``train_base``."""

    out: str = field(default=str(TINY_BASE_DIR), metadata={
        "help": "Where the model, tokenizer and training_log.json go (the shipped data/tiny-base only with --force, "
                "force=True in train_base)."})
    seed: int = field(default=0, metadata={
        "help": "Seed of the initial weights, the problems, their slips and the Trainer."})
    n_train: int = field(default=40_000, metadata={"help": "Training problems, one solution each."})
    error_rate: float = field(default=0.2, metadata={
        "help": "Share of training solutions that carry one arithmetic or copy error, carried on (the rest are "
                "gold): the policy's samples then hold mistakes to find."})
    max_steps: int = field(default=3000, metadata={
        "help": "Most optimizer steps; the run stops earlier once target_accuracy is reached."})
    batch_size: int = field(default=64, metadata={"help": "Rows per optimizer step."})
    learning_rate: float = field(default=3e-3, metadata={
        "help": "AdamW's peak learning rate (cosine schedule, warm-up of min(100, max_steps / 10) steps)."})
    target_accuracy: float = field(default=0.5, metadata={
        "help": "Stop at the first evaluation whose greedy validation accuracy reaches this share (imperfect on "
                "purpose: mistakes for reward models and Stepwise DPO to find and fix)."})
    eval_every: int = field(default=100, metadata={"help": "Evaluate every this many optimizer steps."})
    n_eval: int = field(default=200, metadata={"help": "Validation problems of each evaluation (greedy)."})
    layers: int = field(default=4, metadata={"help": "Decoder layers of the tiny Llama."})
    hidden_size: int = field(default=128, metadata={"help": "Hidden size of the tiny Llama."})

    def __post_init__(self):
        if not 0 <= finite_number(self.error_rate, "error_rate", "train_base") <= 1:
            raise ValueError(f"train_base: error_rate must lie in [0, 1], got {self.error_rate!r}")
        _check_settings("train_base", self.learning_rate, self.target_accuracy, self.seed, n_train=self.n_train,
                        max_steps=self.max_steps, batch_size=self.batch_size, eval_every=self.eval_every,
                        n_eval=self.n_eval, layers=self.layers, hidden_size=self.hidden_size)


def train_base(config: TinyBaseConfig | str | os.PathLike, *, force: bool = False, **settings) -> dict:
    """Train the tiny base and stop at the first evaluation whose validation greedy accuracy reaches
    ``target_accuracy`` (imperfect on purpose); save model, tokenizer and ``training_log.json`` to ``out``.
    ``config``: a ``TinyBaseConfig``, or its ``out`` with ``settings`` its other fields by name
    (``train_base("runs/base", seed=3)`` is ``train_base(TinyBaseConfig(out="runs/base", seed=3))``). ``out`` the
    shipped data/tiny-base (``TinyBaseConfig()``'s default) is refused before any training unless ``force``."""
    if isinstance(config, TinyBaseConfig):
        c = dataclasses.replace(config, **settings)  # checked again: the fields may have been set since
    else:
        c = TinyBaseConfig(out=config, **settings)
    refuse_shipped_out(c.out, force, where="train_base: out", force_fix="pass force=True")
    _check_out("train_base", c.out)
    from transformers import set_seed  # torch and transformers in the training functions only: seconds to import

    set_seed(c.seed)
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=c.hidden_size, layers=c.layers, seed=c.seed)
    rng = random.Random(c.seed)
    problems = make_problems(c.n_train, "train", seed=c.seed)
    ds = solution_lm_dataset(tokenizer, [p.prompt for p in problems],
                             [noisy_training_text(p, rng, c.error_rate) for p in problems])
    saved = {k: v for k, v in dataclasses.asdict(c).items() if k not in _NOT_SAVED}  # training_log.json's settings
    return _train(model, tokenizer, ds, make_problems(c.n_eval, "validation", seed=c.seed), c.out, saved,
                  max_steps=c.max_steps, eval_every=c.eval_every, where="train_base",
                  evaluated="train_base: validation_problems")


def fine_tune_base(out: str | os.PathLike, prompts: list[str], solutions: list[str], eval_problems: list, *,
                   base: str | os.PathLike | None = None, seed: int = 0, max_steps: int = 3000, batch_size: int = 64,
                   learning_rate: float = 3e-3, target_accuracy: float = 0.5, eval_every: int = 100) -> dict:
    """The tiny base (``base``: a saved folder; None: ``data/tiny-base`` or ``$STEPDPO_TINY_BASE``) trained further
    on your own task's texts (docs/own_task.md), as ``train_base`` trains it: the loss on each solution, stopped at
    the first evaluation whose greedy accuracy on ``eval_problems`` (problems with a ``prompt``, ``is_correct`` and
    ``verdict``, which may return None) reaches ``target_accuracy`` (a share, in [0, 1]); saved to ``out``, with a
    warning if it never did. Mix in solutions with a slip (your task's own slip function, as
    ``toyworld.noisy_training_text`` does for toy problems; docs/own_task.md), so that the policy's samples hold
    mistakes for reward models and Stepwise DPO to learn from."""
    _check_settings("fine_tune_base", learning_rate, target_accuracy, seed, max_steps=max_steps, batch_size=batch_size,
                    eval_every=eval_every)
    _check_out("fine_tune_base", out)
    # checked before the training, not at its first evaluation; the checked list is used (a generator is read up)
    if not (eval_problems := task_problems.check_problems(eval_problems, "fine_tune_base: eval_problems")):
        raise ValueError("fine_tune_base: eval_problems is empty; the training stops by their accuracy")
    base = Path(base or os.environ.get("STEPDPO_TINY_BASE", TINY_BASE_DIR))  # as load_tiny_base reads it
    if Path(out).resolve() == base.resolve():  # the shipped data/tiny-base, which every notebook loads
        raise ValueError(f"fine_tune_base: out {out} is the base it starts from; save to another folder")
    from transformers import set_seed

    set_seed(seed)
    model, tokenizer = load_tiny_base(base)
    # checked now, not by the first evaluation's sampling: that comes after eval_every training steps
    tasks.check_spelled(tokenizer, task_problems.prompts_of(eval_problems), "fine_tune_base: eval_problems")
    prompts, solutions = _training_texts(prompts, solutions, "fine_tune_base")  # lists: a row's are named below
    ds = _lm_rows(tokenizer, prompts, solutions)
    input_ids = ds["input_ids"]  # read from Arrow once: each ds["input_ids"] converts every row again
    # the rows' ids find a text read as <unk>; check_spelled tokenizes only such a row's again, to name its characters
    for i in (i for i, ids in enumerate(input_ids) if tokenizer.unk_token_id in ids):
        for name, texts in (("prompts", prompts), ("solutions", solutions)):
            tasks.check_spelled(tokenizer, texts[i:i + 1], f"fine_tune_base: {name}", first=i, text="the text",
                                harm="the model would learn to write <unk>, which decodes to nothing")
    positions = model.config.max_position_embeddings  # beyond them it trained with only transformers' warning
    too_long = next((i for i, ids in enumerate(input_ids) if len(ids) > positions), None)
    if too_long is not None:
        raise ValueError(f"fine_tune_base: prompts[{too_long}] + solutions[{too_long}] is "
                         f"{len(input_ids[too_long])} tokens, over the base's {positions} positions")
    return _train(model, tokenizer, ds, eval_problems, out,
                  {"base": str(base), "seed": seed, "n_train": len(ds), "batch_size": batch_size,
                   "learning_rate": learning_rate, "target_accuracy": target_accuracy},
                  max_steps=max_steps, eval_every=eval_every, where="fine_tune_base",
                  evaluated="fine_tune_base: eval_problems")


def _train(model, tokenizer, ds, eval_problems, out, settings: dict, *, max_steps: int, eval_every: int,
           where: str, evaluated: str) -> dict:
    """The training of ``train_base`` and ``fine_tune_base`` (``where``): ``ds`` (``solution_lm_dataset``'s rows)
    until greedy accuracy on ``eval_problems`` (``evaluated`` names them in errors) reaches
    ``settings["target_accuracy"]``, then model, tokenizer and ``training_log.json`` (``settings``, the evaluations
    and the losses) saved to ``out``; a run that never reached it is saved too, with a warning. The Trainer's own
    folder is a temporary one, gone however the run ends: nothing is written to ``out`` but the finished save."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    seed, log = settings["seed"], []

    class StopWhenGoodEnough(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step % eval_every:
                return
            model.eval()
            result = policy_eval.evaluate_policy(model, tokenizer, eval_problems, progress=False, where=evaluated)
            model.train()
            acc, kinds = result["accuracy"], result.get("first_error_kinds")  # None: problems without a checker
            log.append({"step": state.global_step, "val_greedy_accuracy": acc, "first_error_kinds": kinds})
            print(f"step {state.global_step}: validation greedy accuracy {acc:.3f} {kinds}", flush=True)
            if acc >= settings["target_accuracy"]:
                control.should_training_stop = True

    tokenizer.padding_side = "right"
    # the Trainer's folder is temporary: a run stopped by an error or Ctrl-C leaves nothing half-made in out
    with tempfile.TemporaryDirectory(prefix="stepdpo-trainer-") as work:
        args = TrainingArguments(output_dir=work, per_device_train_batch_size=settings["batch_size"],
                                 learning_rate=settings["learning_rate"], max_steps=max_steps,
                                 warmup_steps=min(100, max_steps // 10), lr_scheduler_type="cosine", weight_decay=0.01,
                                 logging_steps=50, save_strategy="no", report_to=[], seed=seed, data_seed=seed,
                                 use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=False)
        trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                          data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
                          callbacks=[StopWhenGoodEnough()])
        trainer.train()
    tokenizer.padding_side = "left"
    save_tiny_model(model, tokenizer, out, {**settings, "evaluations": log, "loss_history": trainer.state.log_history})
    target = settings["target_accuracy"]
    if not any(e["val_greedy_accuracy"] >= target for e in log):  # it was saved as if it had, without a word
        best = max(log, key=lambda e: e["val_greedy_accuracy"], default=None)
        warn_user(f"{where}: validation greedy accuracy never reached target_accuracy {target} in {max_steps} "
                  "steps (" + (f"best {best['val_greedy_accuracy']:.3f}, at step {best['step']}" if best else
                               f"no evaluation: eval_every {eval_every} > max_steps") +
                  f"); saved to {out} all the same: train longer (max_steps) or lower the target")
    return {"steps": trainer.state.global_step, "evaluations": log}


def main(argv=None):
    from transformers import HfArgumentParser

    parser = argparse.ArgumentParser(prog="python -m stepdpo_lite.tutorial.tiny_base")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=HfArgumentParser)
    # one option per TinyBaseConfig field, typed, with its default and its help
    t = sub.add_parser("train-base", help="train the tiny base model", dataclass_types=TinyBaseConfig)
    t.add_argument("--force", action="store_true", help="allow --out to be the shipped data/tiny-base")
    e = sub.add_parser("eval-base", help="held-out accuracy of a base model (greedy and sampled)")
    # HfArgumentParser's help shows each default itself
    e.add_argument("--model", default=str(TINY_BASE_DIR), help="folder of the saved model to measure")
    e.add_argument("--n", type=int, default=500, help="how many held-out test problems")
    e.add_argument("--seed", type=int, default=0, help="seed of the test problems drawn and of the sampled solutions")
    args = parser.parse_args(argv)
    if args.command == "train-base":
        try:  # TinyBaseConfig's checks (a nan learning rate, 0 steps) were a traceback
            (config,) = t.parse_dict(vars(args), allow_extra_keys=True)  # command and force are not its fields
            refuse_shipped_out(config.out, args.force)
            _check_out("train-base", config.out)  # train_base's own check: a file there was a traceback
        except ValueError as err:
            parser.error(str(err))
        print(json.dumps(train_base(config, force=args.force)))
    else:
        # found out now, not as a traceback after the model loaded (--n 0) or after its sampling (--seed -1)
        if args.n < 1 or args.seed < 0:
            e.error(f"--n must be at least 1 and --seed 0 or more, got {args.n} and {args.seed}")
        if not (Path(args.model) / "config.json").is_file():
            e.error(f"--model {args.model}: no saved model there (no config.json)")
        model, tok = load_tiny_base(args.model)
        test = make_problems(args.n, "test", seed=args.seed)
        result = {"greedy": policy_eval.evaluate_policy(model, tok, test, n=1, temperature=0.0),
                  "sampled_t1": policy_eval.evaluate_policy(model, tok, test, n=4, temperature=1.0, seed=args.seed)}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
