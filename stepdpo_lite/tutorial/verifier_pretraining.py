"""Pretraining the tiny reward base as a verifier, on synthetic graded toy-world solutions.

Real process reward models start from a base that already reads mathematics (e.g. a math-tuned LLM): a base
suited to the domain comes first. The toy world's tiny base writes arithmetic but has never been asked to judge it,
and notebook 02's QLoRA on 2,400 rows is far too little to learn that: a tag verifier learns to check the arithmetic
only after about 3 to 4.6 passes over 100 k graded solutions (300 k to 460 k rows seen; step AUROC 0.76 -> 0.87;
data/tiny-verifier/README.md has the learning curve). So the tiny profile's reward models start from a base
pretrained here, all weights (data/tiny-verifier's five stages saw 1.6 M rows, from at most about 0.4 M distinct
solutions), on graded solutions made here and encoded exactly as the reward models encode them
(``ProcessRewardModel`` / ``OutcomeRewardModel``, GenRM-style: Zhang et al. 2024, arXiv:2408.15240)::

    process rows:  prompt | step 1 | STEP_TAG | step 2 | STEP_TAG | ... | step K | STEP_TAG   (one label per tag)
    outcome rows:  prompt | solution | OUTCOME_TAG                                            (one label)

    loss = CE over {" Yes", " No"} at every tag  +  lm_weight * next-token CE on the steps and tags (not the prompt)

Labels are never in the input. A solution is the gold one or carries one arithmetic or copy error, carried on
consistently (``toyworld.noisy_training_text``); step labels are the checker's (every step after the first
error is wrong), the outcome label is whether the final answer is right. Validation: solutions the tiny
policy samples itself on validation problems (like notebook 01's), labelled by the checker.

    # defaults: the card's recipe (--out defaults to the shipped data/tiny-verifier, refused without --force)
    python -m stepdpo_lite.tutorial.verifier_pretraining --out /tmp/tiny-verifier
    # a smoke run
    python -m stepdpo_lite.tutorial.verifier_pretraining --out /tmp/v --rows 2000 --max-steps 20 --batch-size 16
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import shutil
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import HfArgumentParser, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .. import generation
from ..atomic import check_replaceable
from ..checks import finite_number, positive_int
from ..evaluation import first_error_index, outcome_auroc, step_auroc
from ..models import resolve_device, trainer_precision
from ..reward_training import TagCollator, VerifierTrainer, tokenize_rows
from ..rewards import OutcomeRewardModel, ProcessRewardModel
from . import tiny_models, toyworld

CHUNK = 20_000  # problems per data chunk; chunk i is seeded data_seed + i (1000: --rows 100000 is the reference data)


@dataclass
class VerifierPretrainingConfig:
    """Everything one pretraining run depends on (saved in its ``training_log.json``)."""

    out: str = field(default=str(tiny_models.TINY_VERIFIER_DIR), metadata={
        "help": "Where the model, tokenizer and log go (the shipped data/tiny-verifier only with --force, force=True "
                "in pretrain_verifier)."})
    init: str = field(default=str(tiny_models.TINY_BASE_DIR), metadata={
        "help": "Model to continue: data/tiny-base, or an earlier verifier (e.g. to add the outcome format)."})
    rows: int = field(default=100_000, metadata={
        "help": "Training problems, one graded solution each: distinct within each chunk of 20,000 (CHUNK), not "
                "across chunks (2 chunks of the default recipe share about 1,400)."})
    data_seed: int = field(default=1000, metadata={
        "help": "Chunk i of the rows is seeded data_seed + i: a later stage takes other problems with another one."})
    outcome_fraction: float = field(default=0.5, metadata={
        "help": "Share of rows in the outcome format (one tag after the solution); the rest are process rows."})
    error_rate: float = field(default=0.5, metadata={"help": "Share of solutions that carry one error."})
    policy_fraction: float = field(default=0.0, metadata={
        "help": "Share of the rows whose solution the policy samples itself (T = 1, --eval-policy) on training "
                "problems, graded by the checker: the real distribution of its mistakes."})
    recover_rate: float = field(default=0.2, metadata={
        "help": "Share of those errors after which the solution still reaches the right answer, as the policy's "
                "own mistakes often do (toyworld.recovering_solution): an outcome reward model must accept them."})
    min_ops: int = field(default=1, metadata={"help": "Fewest steps of a training problem."})
    max_ops: int = field(default=8, metadata={"help": "Most steps of a training problem (the tutorial uses 2-6)."})
    lm_weight: float = field(default=1.0, metadata={"help": "Weight of the next-token loss on the steps and tags."})
    batch_size: int = field(default=512, metadata={"help": "Rows per optimizer step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (constant after warm-up)."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    max_steps: int = field(default=2500, metadata={"help": "Optimizer steps."})
    eval_every: int = field(default=300, metadata={"help": "Validate (and checkpoint) every this many steps."})
    n_eval_problems: int = field(default=150, metadata={"help": "Validation problems; the policy samples 4 each."})
    eval_split: str = field(default="validation", metadata={
        "help": "Split of those problems: 'validation' while training; 'test' for a held-out check (--evaluate-only)."})
    eval_policy: str = field(default=str(tiny_models.TINY_BASE_DIR), metadata={
        "help": "Policy whose own samples make the validation set (the solutions the reward models will judge)."})
    seed: int = field(default=0, metadata={"help": "Seed of the Trainer and of the validation samples."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda' or None (cuda when available)."})
    num_proc: int = field(default=2, metadata={"help": "Processes that generate the training rows."})
    checkpoint_dir: str | None = field(default=None, metadata={
        "help": "Trainer checkpoints, for --resume (default: <out>.checkpoints beside out)."})

    def __post_init__(self):
        """Refused here, before any data is made: eval_every=0 stopped the run at its first step (ZeroDivisionError),
        a policy_fraction over 1 made more rows than ``rows`` (below 0 too), a NaN learning rate trained to NaN."""
        who = "VerifierPretrainingConfig"
        for name in ("rows", "batch_size", "max_steps", "eval_every", "n_eval_problems", "num_proc", "min_ops",
                     "max_ops"):
            positive_int(getattr(self, name), name, who)
        for name, top in (("outcome_fraction", 1), ("error_rate", 1), ("policy_fraction", 1), ("recover_rate", 1),
                          ("learning_rate", None), ("lm_weight", None)):
            x = finite_number(getattr(self, name), name, who)
            if x < 0 or (top is not None and x > top):
                raise ValueError(f"{who}: {name} must be {'in [0, 1]' if top else '>= 0'}, got {x!r}")
        # refused only after the rows were made (eval_split, seed), or not at all: data_seed=True was seed 1
        for name in ("warmup_steps", "seed", "data_seed"):
            positive_int(getattr(self, name), name, who, minimum=0)
        if self.min_ops > self.max_ops:
            raise ValueError(f"{who}: min_ops must be <= max_ops, got {self.min_ops} > {self.max_ops}")
        if self.eval_split not in toyworld.SPLITS:
            raise ValueError(f"{who}: eval_split must be one of {sorted(toyworld.SPLITS)}, got {self.eval_split!r}")


# ----------------------------------------------------------------------------- graded rows

def _graded_chunk(args) -> list[dict]:
    seed, n, error_rate, min_ops, max_ops, outcome_fraction, recover_rate = args
    noise = random.Random(seed)
    problems = toyworld.make_problems(n, "train", seed=seed, min_ops=min_ops, max_ops=max_ops)
    verdicts = [toyworld.check(p, toyworld.noisy_training_text(p, noise, error_rate, recover_rate)) for p in problems]
    return _rows_from_verdicts([p.prompt for p in problems], verdicts, outcome_fraction, seed)


def _rows_from_verdicts(prompts: list[str], verdicts: list, outcome_fraction: float, seed: int) -> list[dict]:
    """Rows in the outcome format (a share ``outcome_fraction``, drawn with its own seeded generator, so that the
    solutions do not depend on it) or the stepwise format."""
    kinds = random.Random(f"kind-{seed}")
    rows = []
    for prompt, verdict in zip(prompts, verdicts):
        if kinds.random() < outcome_fraction:
            rows.append({"prompt": prompt, "completion": "".join(verdict.steps), "label": verdict.answer_correct})
        else:
            rows.append({"prompt": prompt, "completions": verdict.steps, "labels": verdict.step_labels})
    return rows


def graded_rows(n: int, error_rate: float = 0.5, min_ops: int = 1, max_ops: int = 8, outcome_fraction: float = 0.5,
                num_proc: int = 1, data_seed: int = 1000, recover_rate: float = 0.0) -> list[dict]:
    """``n`` graded training solutions: stepwise rows (``prompt, completions, labels``) and, with
    ``outcome_fraction``, outcome rows (``prompt, completion, label``). Chunk i of ``CHUNK`` problems is seeded
    ``data_seed + i``, so the rows depend only on the arguments, not on ``num_proc``."""
    positive_int(n, "n", "graded_rows")  # n=True made one row, 1.5 a TypeError
    positive_int(num_proc, "num_proc", "graded_rows")  # 0 or True ran in this process without a word
    positive_int(data_seed, "data_seed", "graded_rows", minimum=0)  # True drew the rows of data_seed 1
    # recover_rate was unchecked: NaN was silently 0 (no recovering errors), 2 silently 1
    for name, x in (("outcome_fraction", outcome_fraction), ("error_rate", error_rate), ("recover_rate", recover_rate)):
        if not 0 <= finite_number(x, name, "graded_rows") <= 1:
            raise ValueError(f"graded_rows: fractions lie in [0, 1]; {name} is {x!r}")
    jobs = [(data_seed + i, min(CHUNK, n - start), error_rate, min_ops, max_ops, outcome_fraction, recover_rate)
            for i, start in enumerate(range(0, n, CHUNK))]
    if num_proc > 1 and len(jobs) > 1:
        with Pool(min(num_proc, len(jobs))) as pool:
            parts = pool.map(_graded_chunk, jobs)
    else:
        parts = [_graded_chunk(job) for job in jobs]
    return [row for part in parts for row in part]


def policy_rows(policy_path: str, n: int, min_ops: int = 1, max_ops: int = 8, outcome_fraction: float = 0.5,
                data_seed: int = 1000, device: str | None = None, batch_size: int = 256,
                max_draws: int = 20) -> list[dict]:
    """``n`` graded rows whose solutions the policy samples itself (one per training problem, T = 1), labelled by
    the checker: its real mistakes, e.g. slips after which it still writes the true running value. Problems are
    drawn with seed ``data_seed + 500`` (apart from ``graded_rows``' chunks); blank samples are drawn again, up to
    ``max_draws`` draws in all (a policy that writes only blanks for a problem is an error, not an endless loop)."""
    positive_int(max_draws, "max_draws", "policy_rows")
    # before the policy is loaded; a NaN outcome_fraction made every row a process row without a word, 2 every one
    # an outcome row
    positive_int(n, "n", "policy_rows")
    positive_int(data_seed, "data_seed", "policy_rows", minimum=0)
    if not 0 <= finite_number(outcome_fraction, "outcome_fraction", "policy_rows") <= 1:
        raise ValueError(f"policy_rows: outcome_fraction must lie in [0, 1], got {outcome_fraction!r}")
    model, tok = tiny_models.load_tiny_base(policy_path, device=device)
    problems = toyworld.make_problems(n, "train", seed=data_seed + 500, min_ops=min_ops, max_ops=max_ops)
    prompts, verdicts, todo, seed = [], [], problems, data_seed
    for _ in range(max_draws):
        if not todo:
            break
        samples = generation.sample_solutions(model, tok, [p.prompt for p in todo], n=1, temperature=1.0,
                                            batch_size=batch_size, seed=seed, progress=True)
        again = []
        for p, (s,) in zip(todo, samples):
            verdict = toyworld.check(p, s)
            if verdict.steps:
                prompts.append(p.prompt)
                verdicts.append(verdict)
            else:
                again.append(p)
        todo, seed = again, seed + 1
    if todo:
        raise ValueError(f"policy_rows: the policy wrote only blank solutions in {max_draws} draws for {len(todo)} "
                         f"problems, e.g. {todo[0].prompt!r:.80}")
    return _rows_from_verdicts(prompts, verdicts, outcome_fraction, data_seed + 500)


def encode_rows(process, outcome, rows: list[dict]) -> list[dict]:
    """Rows -> features with the reward models' own encodings: ``input_ids``, ``tag_positions``, ``tag_labels``,
    and ``solution_start`` (the first solution token: the next-token loss starts there)."""
    kinds = ["completions" in row for row in rows]
    features: list[dict | None] = [None] * len(rows)
    for is_process, verifier in ((True, process), (False, outcome)):
        index = [i for i, k in enumerate(kinds) if k == is_process]
        if not index:
            continue
        part = [rows[i] for i in index]
        try:  # first: it names a row whose prompt is missing or not a str (r["prompt"] below was a bare KeyError)
            encoded = tokenize_rows(verifier, part)
        except ValueError:  # its "row k" counts this format's rows only: name the first bad one by its index in rows
            for i in index:
                tokenize_rows(verifier, [rows[i]], where=f"encode_rows: rows[{i}]")
            raise
        prompt_lengths = [len(verifier.prefix_ids) + len(ids)
                          for ids in verifier._tokenize([r["prompt"] for r in part])]
        for i, feature, start in zip(index, encoded, prompt_lengths):
            features[i] = {**feature, "solution_start": start}
    return features


class GradedCollator:
    """``reward_training.TagCollator``'s batch plus ``lm_labels``: the input ids, -100 on the prompt and padding (the
    steps and tags keep theirs)."""

    def __init__(self, pad_token_id: int):
        self.tags = TagCollator(pad_token_id)

    def __call__(self, features: list[dict]) -> dict:
        batch = self.tags(features)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        for i, f in enumerate(features):
            labels[i, :f["solution_start"]] = -100
        batch["lm_labels"] = labels
        return batch


class VerifierPretrainingTrainer(VerifierTrainer):
    """The reward models' {Yes, No} loss at the tags, plus ``lm_weight`` x next-token loss on the steps and tags."""

    def __init__(self, *args, lm_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lm_weight = lm_weight

    def _loss_and_rewards(self, model, inputs):
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        pair = logits[inputs["tag_rows"], inputs["tag_cols"]][:, [self.yes_id, self.no_id]].float()
        loss = F.cross_entropy(pair, 1 - inputs["tag_labels"].long())  # class 0 = Yes (correct), 1 = No
        if self.lm_weight and "lm_labels" in inputs:
            shifted = inputs["lm_labels"][:, 1:]
            loss = loss + self.lm_weight * F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)), shifted.reshape(-1), ignore_index=-100)
        return loss, pair[:, 0] - pair[:, 1]


# ----------------------------------------------------------------------------- validation

def validation_set(policy_path: str, n_problems: int = 150, seed: int = 0, device: str | None = None,
                   split: str = "validation") -> dict:
    """Solutions the policy samples itself (4 per validation problem, T = 1), with the checker's labels:
    ``prompts``, ``steps``, ``step_labels``, ``solutions``, ``answer_correct``; and ``blank``, how many samples were
    blank (nothing to judge: left out, and counted so that the callers can say so)."""
    model, tok = tiny_models.load_tiny_base(policy_path, device=device)
    problems = toyworld.make_problems(n_problems, split, seed=seed)
    samples = generation.sample_solutions(model, tok, [p.prompt for p in problems], n=4, temperature=1.0, seed=seed,
                                        progress=False)
    out = {"prompts": [], "steps": [], "step_labels": [], "solutions": [], "answer_correct": [], "blank": 0}
    for p, sols in zip(problems, samples):
        for s in sols:
            verdict = toyworld.check(p, s)
            if not verdict.steps:  # a blank sample has nothing to judge
                out["blank"] += 1
                continue
            out["prompts"].append(p.prompt)
            out["steps"].append(verdict.steps)
            out["step_labels"].append(verdict.step_labels)
            out["solutions"].append(s)
            out["answer_correct"].append(verdict.answer_correct)
    return out


def verifier_metrics(process, outcome, val: dict, batch_size: int = 256) -> dict:
    """Step AUROC, first-error AUROC (steps up to the first wrong one: does it find *where*), outcome AUROC; and,
    for the outcome reward, its AUROC on the right answers reached through a wrong step ("slipped") against the
    wrong answers, with the share of right answers that slipped (a property of the validation set)."""
    step_rewards = process.score_solutions(val["prompts"], val["steps"], batch_size=batch_size)
    upto_rewards, upto_labels = [], []
    for rewards, labels in zip(step_rewards, val["step_labels"]):
        last = first_error_index(labels)
        last = len(labels) - 1 if last < 0 else last
        upto_rewards += rewards[:last + 1]
        upto_labels += labels[:last + 1]
    outcome_rewards = outcome.score_solutions(val["prompts"], val["solutions"], batch_size=batch_size)
    slipped = [right and not all(labels) for right, labels in zip(val["answer_correct"], val["step_labels"])]
    hard = [(r, right) for r, right, s in zip(outcome_rewards, val["answer_correct"], slipped) if s or not right]
    metrics = {"step_auroc": round(step_auroc(step_rewards, val["step_labels"]), 4),
               "first_error_auroc": round(step_auroc([upto_rewards], [upto_labels]), 4),
               "outcome_auroc": round(outcome_auroc(outcome_rewards, val["answer_correct"]), 4),
               "slipped_share": round(sum(slipped) / max(sum(val["answer_correct"]), 1), 4)}
    if 0 < sum(right for _, right in hard) < len(hard):
        metrics["outcome_auroc_slipped"] = round(outcome_auroc(*zip(*hard)), 4)
    return metrics


# ----------------------------------------------------------------------------- the run

def earlier_stages(init: str | os.PathLike) -> list[dict]:
    """The stages that made ``init``, oldest first, from its ``training_log.json`` (written by this module): a
    verifier continued from another verifier keeps the whole chain, so its card can draw one learning curve."""
    path = Path(init) / "training_log.json"
    log = json.loads(path.read_text()) if path.exists() else {}
    if not isinstance(log, dict) or "curve" not in log:  # e.g. data/tiny-base: a policy, not a verifier stage
        return []
    return [*log.get("earlier_stages", []), {k: v for k, v in log.items() if k != "earlier_stages"}]


def _check_folders(c: VerifierPretrainingConfig, force: bool, resume: bool = False) -> Path:
    """``c.out`` and the checkpoints' folder (returned), checked before any data or model: the save replaces out as a
    whole (its model card kept) and the checkpoints are deleted once it is saved; --out data or --checkpoint-dir data
    deleted every file there after the run, and a checkpoint_dir that is out, in it or holds it, the model just
    saved. ``resume`` needs a checkpoint there (it was looked for once the rows were made, minutes later). The
    command checks them before it reads anything too (a file at --out was a traceback)."""
    tiny_models.refuse_shipped_out(c.out, force, where="pretrain_verifier: out", force_fix="pass force=True")
    out = check_replaceable(c.out, keep=("README.md",), owned=("training_log.json",), where="pretrain_verifier: out")
    checkpoints = check_replaceable(c.checkpoint_dir or f"{str(c.out).rstrip('/')}.checkpoints",
                                    owned=("checkpoint-*",), where="pretrain_verifier: checkpoint_dir")
    if checkpoints == out or out in checkpoints.parents or checkpoints in out.parents:
        raise ValueError(f"pretrain_verifier: checkpoint_dir (--checkpoint-dir) {checkpoints} is out, in it or holds "
                         "it: the checkpoints are deleted once the model is saved; choose a folder beside out")
    if resume and not (checkpoints.is_dir() and get_last_checkpoint(str(checkpoints))):  # as Trainer will look
        raise ValueError(f"pretrain_verifier: resume (--resume) but no checkpoint-* in {checkpoints}: give the "
                         "checkpoint_dir (--checkpoint-dir) of the run to continue, or start anew without resume")
    return checkpoints


def pretrain_verifier(config: VerifierPretrainingConfig, resume: bool = False, callbacks=(), force: bool = False
                      ) -> dict:
    """Run the pretraining of ``config``; save model, tokenizer and ``training_log.json`` (the config, the
    validation curve, times, hardware) to ``config.out`` atomically. Returns the log. ``resume``: continue from
    the last checkpoint in ``checkpoint_dir``; ``callbacks``: more ``transformers.TrainerCallback`` objects;
    ``force``: let ``out`` be the shipped data/tiny-verifier (the config's default), refused otherwise."""
    c = config
    checkpoints = _check_folders(c, force, resume)
    started = time.time()
    set_seed(c.seed)
    device = resolve_device(c.device)
    model, tok = tiny_models.load_tiny_base(c.init, device=device)
    model.train()
    process, outcome = ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok)
    n_policy = round(c.rows * c.policy_fraction)
    rows = graded_rows(c.rows - n_policy, c.error_rate, c.min_ops, c.max_ops, c.outcome_fraction, c.num_proc,
                       c.data_seed, c.recover_rate) if c.rows > n_policy else []
    if n_policy:
        rows += policy_rows(c.eval_policy, n_policy, c.min_ops, c.max_ops, c.outcome_fraction, c.data_seed, device)
    features = encode_rows(process, outcome, rows)
    val = validation_set(c.eval_policy, c.n_eval_problems, c.seed, device, c.eval_split)
    prep_seconds = time.time() - started
    print(json.dumps({"rows": len(features), "outcome_rows": sum("label" in r for r in rows),
                      "validation_solutions": len(val["prompts"]), "validation_blank": val["blank"],
                      "prep_seconds": round(prep_seconds, 1),
                      "device": device}), flush=True)

    curve: list[dict] = []

    def validate(step: int) -> None:
        was_training = model.training
        metrics = verifier_metrics(process, outcome, val)
        model.train(was_training)
        record = {"step": step, "rows_seen": step * c.batch_size, "minutes": round((time.time() - started) / 60, 2),
                  **metrics}
        curve.append(record)
        print(json.dumps(record), flush=True)

    class Validate(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:  # a fresh run: where it starts, the init model zero-shot
                validate(0)
                state.log_history.append({"step": 0, "validation": curve[-1]})

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % c.eval_every == 0 or state.global_step == state.max_steps:
                validate(state.global_step)
                state.log_history.append({"step": state.global_step, "validation": curve[-1]})  # kept in checkpoints

    on_gpu = device.startswith("cuda")
    args = TrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=c.batch_size, learning_rate=c.learning_rate,
        max_steps=c.max_steps, warmup_steps=c.warmup_steps, lr_scheduler_type="constant_with_warmup",
        weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.98, max_grad_norm=1.0, logging_steps=50,
        save_strategy="steps", save_steps=c.eval_every, save_total_limit=1, report_to=[], seed=c.seed,
        data_seed=c.seed, use_cpu=not on_gpu, remove_unused_columns=False, dataloader_num_workers=0,
        # bfloat16 where the GPU has it, not emulated (a T4): float32 there, as on a CPU
        **trainer_precision(torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported(including_emulation=False)
                            else torch.float32, device),
        disable_tqdm=False)
    trainer = VerifierPretrainingTrainer(
        model=model, args=args, train_dataset=features, data_collator=GradedCollator(tok.pad_token_id),
        processing_class=tok, yes_id=process.yes_id, no_id=process.no_id, lm_weight=c.lm_weight,
        callbacks=[Validate(), *callbacks])
    if resume:  # the curve so far was kept in the checkpoint's log history
        last = Path(get_last_checkpoint(str(checkpoints)))  # the one trainer.train resumes from: checked above
        history = json.loads((last / "trainer_state.json").read_text())["log_history"]
        curve += [h["validation"] for h in history if "validation" in h]
    trainer.train(resume_from_checkpoint=resume or None)
    model.eval()

    log = {"config": dataclasses.asdict(c), "curve": curve, "earlier_stages": earlier_stages(c.init),
           "loss_history": [h for h in trainer.state.log_history if "loss" in h],
           "steps": trainer.state.global_step, "rows_seen": trainer.state.global_step * c.batch_size,
           "wall_seconds": round(time.time() - started, 1), "prep_seconds": round(prep_seconds, 1),
           "hardware": (torch.cuda.get_device_name() if on_gpu
                        else f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}"),
           "torch": torch.__version__}

    tiny_models.save_tiny_model(model, tok, c.out, log)  # the model card, written by hand, is kept
    shutil.rmtree(checkpoints, ignore_errors=True)
    return log


def main(argv=None) -> None:
    # one option per field, typed, with its default and its help (a bool field is parsed as TRL's scripts parse it)
    parser = HfArgumentParser(VerifierPretrainingConfig, prog="python -m stepdpo_lite.tutorial.verifier_pretraining",
                              description=__doc__.split("\n\n")[0])
    parser.add_argument("--resume", action="store_true", help="Continue from the last checkpoint of the same run.")
    parser.add_argument("--force", action="store_true", help="Allow --out to be the shipped data/tiny-verifier.")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="Only print the validation metrics of --init (a verifier), as one JSON line.")
    args = vars(parser.parse_args(argv))
    resume, evaluate_only, force = args.pop("resume"), args.pop("evaluate_only"), args.pop("force")
    try:  # its checks (a nan learning rate, 0 steps) were a traceback
        c = VerifierPretrainingConfig(**args)
    except ValueError as err:
        parser.error(str(err))
    for name in ("init", "eval_policy"):  # loaded by load_tiny_base; their defaults are in the repository's data/
        if not (Path(getattr(c, name)) / "config.json").is_file():
            parser.error(f"--{name.replace('_', '-')} {getattr(c, name)}: no model there (data/tiny-base and "
                         "data/tiny-verifier ship with the repository, not with a pip-installed package: run from a "
                         "clone, or give a clone's folder)")
    if not evaluate_only:
        try:
            tiny_models.refuse_shipped_out(c.out, force)  # in the command's words: --out, --force
            _check_folders(c, force, resume)
        except ValueError as err:
            parser.error(str(err))
    if evaluate_only:
        model, tok = tiny_models.load_tiny_base(c.init, device=c.device)
        val = validation_set(c.eval_policy, c.n_eval_problems, c.seed, c.device, c.eval_split)
        print(json.dumps({"verifier": c.init, "split": c.eval_split, "solutions": len(val["prompts"]),
                          "blank": val["blank"],
                          **verifier_metrics(ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok), val)}))
        return
    log = pretrain_verifier(c, resume=resume, force=force)
    print(json.dumps({k: log[k] for k in ("steps", "rows_seen", "wall_seconds")} | {"final": log["curve"][-1]}))


if __name__ == "__main__":
    main()
