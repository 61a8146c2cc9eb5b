"""Training the process and outcome reward models: 4-bit nf4 base + LoRA, loss at the tags only.

The reward model reads its verdict as the next token after a verification tag (GenRM, Zhang et al.
2024, arXiv:2408.15240), so training is next-token prediction restricted to two tokens at the tag
positions: the cross-entropy of the 2-way softmax over the logits of " Yes" and " No",

    L = -mean_tags log softmax([z_no, z_yes])[label]  =  BCE(sigmoid(z_yes - z_no), label)

and nothing else in the sequence is trained. The PRM sees a whole solution with a tag after every step and learns
all of its steps in one forward pass (the labels are never in the input), exactly as it will score them.

Data (docs/formats.md): stepwise supervision rows ``{"prompt", "completions": [step, ...], "labels": [bool, ...]}``
for the PRM, outcome rows ``{"prompt", "completion", "label": bool}`` for the ORM, checked by ``data.py``'s validators.
How to train is one ``RewardTrainingConfig`` (the TRL way: one config per trainer, beside it); ``VerifierTrainer``
is the ``transformers.Trainer`` with that loss. Importing this module loads torch and transformers (seconds), so the
tutorial's light modules import it where they train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import ProgressCallback, Trainer, TrainingArguments, set_seed
from transformers.trainer import DEFAULT_PROGRESS_CALLBACK

from .atomic import check_checkpoints, check_replaceable
from .checks import documented_fields, finite_number, flag, list_of, positive_int, warn_of_unread_text, warn_user
from .data import label_hint, validate_outcome, validate_stepwise, warn_of_joined_prompts, warn_of_unsplittable_steps
from .evaluation import step_auroc
from .models import load_model, resolve_device, resolve_dtype, saved_reward_config, trainer_precision
from .rewards import (SAVE_FOLDER, GenerativeVerifier, InputTooLong, OutcomeRewardModel, ProcessRewardModel,
                      RewardModelConfig, check_config_values, fast_head_matches, tag_logits)


# ----------------------------------------------------------------------------- data

def _tag_labels(row: dict, i: int, process: bool, where: str = "training data") -> list[int]:
    """A row's bool labels as 0/1, refusing anything else as the validators do: ``int(0.9)`` would flip a soft label."""
    name = "labels" if process else "label"
    labels = list_of(row.get(name), f"{where}: row {i}: field 'labels'", "bools") if process else [row.get(name)]
    steps = list_of(row.get("completions"), f"{where}: row {i}: field 'completions'", "steps") if process else None
    if process and len(labels) != len(steps):
        raise ValueError(f"{where}: row {i}: field 'labels': {len(labels)} labels for {len(steps)} completions")
    if bad := [x for x in labels if type(x).__name__ not in ("bool", "bool_")]:  # numpy's bools too, as checks.flag
        raise ValueError(f"{where}: row {i}: field '{name}': labels must be true or false, got {bad[0]!r}"
                         f"{label_hint(bad[0], 'step' if process else 'row')}")
    return [int(x) for x in labels]


def tokenize_rows(verifier: GenerativeVerifier, rows: Sequence[dict], where: str = "training data",
                  wheres: Sequence[str] | None = None, drop_too_long: bool = False) -> list[dict]:
    """Rows -> ``{"input_ids", "tag_positions", "tag_labels"}`` with the verifier's own encoding (so the model is
    trained on exactly the tokens it will score). Rows longer than ``max_length`` raise, all in one error naming them
    (by ``wheres[i]``, e.g. a file's line, else by index), or are left out with a warning (``drop_too_long``); labels
    not bools or not one per completion raise. The rest is checked by ``data.validate_stepwise`` / ``validate_outcome``,
    which the trainers call first (verifier pretraining tokenizes a million rows and skips that)."""
    process, names = isinstance(verifier, ProcessRewardModel), list(wheres or (f"row {i}" for i in range(len(rows))))
    if len(names) != len(rows):  # the rows past the names: an IndexError, or left out by drop_too_long's zip
        raise ValueError(f"{where}: {len(names)} wheres for {len(rows)} rows (one name per row)")
    flag(drop_too_long, "drop_too_long", "tokenize_rows")  # "no" is truthy: rows would be left out
    labels = [_tag_labels(r, i, process, where) for i, r in enumerate(rows)]
    prompts = [r.get("prompt") for r in rows]  # a missing one is named as None is
    fields_read = "'prompt' and 'completions'" if process else "'prompt' and 'completion'"
    try:
        encoded = verifier._encode_many(prompts, [list(r["completions"]) if process else r.get("completion")
                                                  for r in rows], check=False)
    except ValueError as err:
        raise type(err)(f"{where}: {err} (fields {fields_read})".replace("solution ", "row ")) from None
    if too_long := [i for i, (ids, _) in enumerate(encoded) if len(ids) > (verifier.max_length or float("inf"))]:
        named = ", ".join(f"{names[i]} ({len(encoded[i][0])} tokens)" for i in too_long[:5])
        what = (f"{where}: {len(too_long)} of {len(rows)} rows ({fields_read}) are longer than max_length "
                f"{verifier.max_length} with their tags: {named}{', ...' if len(too_long) > 5 else ''}")
        if not drop_too_long or len(too_long) == len(rows):  # dropping them all would leave nothing to train on
            tag = "" if verifier.config.tag == verifier.default_tag else f", tag={verifier.config.tag!r}"
            name = verifier.tokenizer.name_or_path  # '' for a tokenizer built in memory: no folder to name
            made = f"{type(verifier).__name__}({name!r}{tag})." if name else "the verifier's "
            raise InputTooLong(f"{what}; a row is never truncated: pass drop_too_long=True to train on the rest, "
                               "shorten them, or raise max_length up to the model's context. To find them before "
                               f"training, {made}input_lengths(prompts, solutions) gives each row's length with its "
                               "tags")
        warn_user(f"{what}: left out (drop_too_long=True), {len(rows) - len(too_long)} rows kept")
        encoded, labels, names = zip(*[(e, y, n) for e, y, n in zip(encoded, labels, names)
                                       if len(e[0]) <= verifier.max_length])  # the rows' names as they are left
    warn_of_unread_text(verifier.tokenizer, [ids for ids, _ in encoded], f"{where}: fields {fields_read}", "row", names)
    return [{"input_ids": ids, "tag_positions": pos, "tag_labels": lab} for (ids, pos), lab in zip(encoded, labels)]


@dataclass
class TagCollator:
    """Right-pads a batch and flattens its tags into ``(tag_rows, tag_cols, tag_labels)``."""

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict:
        ids = [torch.tensor(f["input_ids"]) for f in features]
        return {"input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
                "attention_mask": pad_sequence([torch.ones_like(x) for x in ids], batch_first=True),
                "tag_rows": torch.tensor([i for i, f in enumerate(features) for _ in f["tag_positions"]]),
                "tag_cols": torch.tensor([p for f in features for p in f["tag_positions"]]),
                "tag_labels": torch.tensor([y for f in features for y in f["tag_labels"]])}


# ----------------------------------------------------------------------------- trainer

class LossProgressCallback(ProgressCallback):
    """transformers' tqdm bar with the last logged loss on it. Its own writes every log under the bar as a dict
    (a dozen lines a run in a notebook); the logs stay in ``state.log_history``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is not None and "loss" in (logs or {}):
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4g}")


class VerifierTrainer(Trainer):
    """``Trainer`` whose loss is the {Yes, No} cross-entropy at the tag positions (``_loss_and_rewards``, which
    ``stepdpo_lite/tutorial/verifier_pretraining.py`` extends with a next-token loss)."""

    loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by the accumulation steps

    def __init__(self, *args, yes_id: int, no_id: int, fast_head: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.yes_id, self.no_id, self.fast_head = yes_id, no_id, fast_head
        if not self.args.disable_tqdm:  # in Jupyter the default is NotebookProgressCallback's table
            self.remove_callback(DEFAULT_PROGRESS_CALLBACK)
            self.add_callback(LossProgressCallback)

    def _loss_and_rewards(self, model, inputs):
        logits = tag_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["tag_rows"],
                            inputs["tag_cols"], fast=self.fast_head and hasattr(model, "get_decoder"))
        pair = logits[:, [self.yes_id, self.no_id]].float()  # class 0 = Yes (correct), class 1 = No
        return F.cross_entropy(pair, 1 - inputs["tag_labels"].long()), pair[:, 0] - pair[:, 1]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, rewards = self._loss_and_rewards(model, inputs)
        return (loss, {"rewards": rewards}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, rewards = self._loss_and_rewards(model, inputs)
        if prediction_loss_only:
            return loss.detach(), None, None
        # One row per solution, its tags' rewards and labels padded with -100: the Trainer gathers and cuts
        # the last batch by rows, and a flat list of tags would lose those of every row past the cut
        counts = torch.bincount(inputs["tag_rows"], minlength=len(inputs["input_ids"])).tolist()  # rows in order
        pad = lambda x: pad_sequence(x.float().split(counts), batch_first=True, padding_value=-100.0)
        return loss.detach(), pad(rewards.detach()), pad(inputs["tag_labels"])


def _tag_metrics(eval_pred) -> dict:
    """Accuracy (sign of the reward), AUROC and ``tag_loss`` over all tags of the evaluation set (rows of tags,
    padded with -100: ``prediction_step``). ``tag_loss`` is the training loss's mean over every tag; the Trainer's
    ``eval_loss`` averages the batches' means by rows, so it moves with ``per_device_eval_batch_size`` when rows
    hold different numbers of steps (for ``metric_for_best_model``, prefer ``"tag_loss"``)."""
    labels = np.asarray(eval_pred.label_ids)
    rewards, labels = np.asarray(eval_pred.predictions)[labels != -100], labels[labels != -100]
    # the {Yes, No} cross-entropy of a tag whose reward is r = logit(Yes) − logit(No): log(1 + e^{∓r})
    metrics = {"accuracy": float(((rewards > 0) == (labels > 0)).mean()),
               "tag_loss": float(np.logaddexp(0.0, np.where(labels > 0, -rewards, rewards)).mean())}
    if 0 < labels.sum() < len(labels):
        metrics["auroc"] = step_auroc(rewards, labels)
    return metrics


def _saved_field(name: str, note: str = "", **default):
    """RewardModelConfig's field ``name`` as RewardTrainingConfig takes it, to save with the model: its default (or
    ``default=``) and its help, one text for both configs, then ``note`` on training (``reward_model_config``)."""
    saved = next(f for f in fields(RewardModelConfig) if f.name == name)
    return field(default=default.get("default", saved.default), metadata={"help": saved.metadata["help"] + note,
                                                                          "saved": True})


@documented_fields
@dataclass
class RewardTrainingConfig:
    """How ``train_process_reward_model`` / ``train_outcome_reward_model`` train: how the base is loaded, the
    reward format saved with the model, and the ``Trainer``'s main settings. Any keyword of the two functions
    that is not a field here is another ``transformers.TrainingArguments`` field (e.g. ``save_strategy``)."""

    quantization: str | None = _saved_field("quantization", " Training loads the base so: '4bit' trains an "
                                             "nf4 base under a LoRA adapter (QLoRA).", default="4bit")
    lora: Any = field(default=True, metadata={"help": "True (models.DEFAULT_LORA), a dict or LoraConfig, or None."})
    max_length: int | None = _saved_field("max_length", " Saved with the model as its scoring limit: ProcessRewardModel"
                                          ".load(path, max_length=...) raises it, up to the model's positions.")
    drop_too_long: bool = field(default=False, metadata={
        "help": "Leave out the rows longer than max_length, with a warning naming them (False: they raise)."})
    tag: str | None = _saved_field("tag")
    yes: str = _saved_field("yes")
    no: str = _saved_field("no")
    step_delimiter: str = _saved_field("step_delimiter", " Saved with the model (training rows give their steps as "
                                       "lists): set it to the texts' own, e.g. '\\n' for one step a line (PRM800K).")
    aggregation: str = _saved_field("aggregation")
    prompt_template: str = _saved_field("prompt_template", " Saved with the model; training rows' and "
                                        "`score_solutions`' prompts are used as given.")
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (cosine schedule, 5% warm-up)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (unless max_steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; -1: num_train_epochs decides."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Rows per batch."})
    per_device_eval_batch_size: int = field(default=16, metadata={"help": "Rows per evaluation batch."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Batches per optimizer step."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})
    report_to: str | list[str] = field(default="none", metadata={"help": "'none', 'tensorboard', 'wandb', ..."})
    seed: int = field(default=42, metadata={"help": "Seed of the Trainer, its data order and the LoRA init."})
    logging_steps: int = field(default=10, metadata={"help": "Log the loss every this many steps."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda' or None (cuda when available)."})
    dtype: Any = field(default=None, metadata={"help": "Compute dtype: 'float32', 'bfloat16', 'float16' (or torch's); "
                                               "None: bf16 on a GPU that has it, fp16 on one without, fp32 on a CPU."})
    training_args: dict = field(default_factory=dict, metadata={"help": "Other TrainingArguments fields."})

    def __post_init__(self):  # as StepwiseDPOConfig's: a wrong value fails here, not after the model has loaded
        for name in ("max_steps", "per_device_train_batch_size", "per_device_eval_batch_size", "logging_steps",
                     "gradient_accumulation_steps"):  # max_steps=1e3: a TypeError deep in the Trainer
            if name != "max_steps" or self.max_steps != -1:  # -1: num_train_epochs decides
                positive_int(getattr(self, name), name, "RewardTrainingConfig")
        positive_int(self.seed, "seed", "RewardTrainingConfig", minimum=0)  # True: torch's RuntimeError
        flag(self.drop_too_long, "drop_too_long", "RewardTrainingConfig")  # "no" is truthy
        for name in ("learning_rate", "num_train_epochs"):  # 0 or less would train nothing and save the base as trained
            if finite_number(getattr(self, name), name, "RewardTrainingConfig") <= 0:
                raise ValueError(f"RewardTrainingConfig: {name} must be > 0, got {getattr(self, name)!r}")
        if self.quantization == "4bit" and self.lora is None:
            raise ValueError("a 4-bit base cannot be trained itself: pass lora=True (QLoRA) or quantization=None")
        _check_training_args(self.training_args)  # a misspelled option
        check_config_values(self.reward_model_config())  # aggregation="mean2", max_length=0, ...

    def reward_model_config(self, dtype: str | None = None) -> RewardModelConfig:
        """The format saved with the trained model: the ``_saved_field`` fields, the ``dtype`` it trained in (a reload
        computes as trained) and trained_with_prompts (rows must have them: scoring an empty one then warns)."""
        return RewardModelConfig(**{f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("saved")},
                                 dtype=dtype, trained_with_prompts=True)

    @classmethod
    def of(cls, config: RewardTrainingConfig | None, overrides: dict) -> RewardTrainingConfig:
        """``config`` (or the defaults) with ``overrides``: its fields set, the other keys into ``training_args``
        (a field named in ``training_args`` is set too)."""
        names, overrides, config = {f.name for f in fields(cls)} - {"training_args"}, dict(overrides), config or cls()
        # training_args (the config's, then the keyword's: merged, not nested) set the fields they name, e.g. seed
        merged = {**config.training_args, **dict(overrides.pop("training_args", None) or {}), **overrides}
        return replace(config, training_args={k: v for k, v in merged.items() if k not in names},
                       **{k: v for k, v in merged.items() if k in names})


def _check_training_args(training_args: dict) -> None:
    """Every key that is not a ``RewardTrainingConfig`` field must be a ``TrainingArguments`` field, and one typed
    float there a number."""
    known = {f.name: f.type for f in fields(TrainingArguments)}
    if unknown := sorted(set(training_args) - set(known)):
        raise ValueError(f"unknown option(s) {unknown}: neither RewardTrainingConfig fields nor "
                         "transformers.TrainingArguments fields")
    for name in sorted(n for n in training_args if known[n] in (float, "float")):  # not `float | None` (eval_steps)
        finite_number(training_args[name], name, "training_args")


def _train(kind: type[GenerativeVerifier], model_name_or_path, train_dataset, output_dir, eval_dataset,
           c: RewardTrainingConfig, callbacks=None, resume_from_checkpoint=None):
    base = Path(os.fspath(model_name_or_path)).expanduser()
    if (base / "adapter_config.json").exists():  # load_model refuses lora=..., and without it nothing has a gradient
        what = f"a saved reward model ({config})" if (config := saved_reward_config(base)) else "a saved adapter"
        raise ValueError(f"{kind.__name__}: {base.resolve()} is {what}, not a base model: training puts a new adapter "
                         "on a base and cannot train a saved one on. Train anew from its base (adapter_config.json "
                         "names it) on all the rows; a run saved with checkpoints resumes by resume_from_checkpoint")
    if train_dataset is None:
        raise ValueError(f"{kind.__name__}: train_dataset is None; give a list of rows or a datasets.Dataset")
    check_replaceable(output_dir, **SAVE_FOLDER, where="output_dir")  # and a folder the save would harm
    check_checkpoints(output_dir, resume_from_checkpoint, f"{kind.__name__} training")
    process, checked, wheres = kind is ProcessRewardModel, {}, {}
    validate = validate_stepwise if process else validate_outcome
    for name, rows in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
        try:  # rows, a datasets.Dataset or a JSON/JSONL path; a path's rows are named by its lines
            checked[name] = None if rows is None else list(validate(rows, wheres=wheres.setdefault(name, [])))
            wheres[name] = wheres[name] if isinstance(rows, (str, os.PathLike)) else None
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    train_rows, eval_rows = checked["train_dataset"], checked["eval_dataset"]
    if not train_rows:
        raise ValueError(f"{kind.__name__}: the training data is empty")
    if eval_rows == []:  # else no eval_loss, and no error
        raise ValueError(f"{kind.__name__}: eval_dataset is empty; pass None to train without evaluation")
    who = f"train_{'process' if process else 'outcome'}_reward_model: train_dataset"
    names = wheres["train_dataset"] or [f"row {i}" for i in range(len(train_rows))]  # as tokenize_rows names them
    if process:  # the saved PRM splits a text it scores at step_delimiter: rows that do not split back there
        warn_of_unsplittable_steps(train_rows, c.step_delimiter, names, who)
    firsts = [[r["completions"][0] if process else r["completion"]] for r in train_rows]  # each row's one response
    warn_of_joined_prompts(who, [r["prompt"] for r in train_rows], firsts, "their first step", names)

    set_seed(c.seed)
    device = resolve_device(c.device)
    dtype = resolve_dtype(c.dtype, device, who=who.split(":")[0])  # the caller named, not load_model
    reward_config = c.reward_model_config(str(dtype).removeprefix("torch."))
    check_config_values(reward_config)  # the dtype (float64?), before the model loads
    model, tokenizer = load_model(str(model_name_or_path), quantization=c.quantization, lora=c.lora, device=device,
                                  dtype=dtype, gradient_checkpointing=c.gradient_checkpointing)
    verifier = kind(model, tokenizer, reward_config)
    train_features = tokenize_rows(verifier, train_rows, "train_dataset", wheres["train_dataset"], c.drop_too_long)
    eval_features = None if eval_rows is None else tokenize_rows(verifier, eval_rows, "eval_dataset",
                                                                 wheres["eval_dataset"], c.drop_too_long)

    defaults = dict(output_dir=str(output_dir), learning_rate=c.learning_rate, num_train_epochs=c.num_train_epochs,
                    max_steps=c.max_steps, per_device_train_batch_size=c.per_device_train_batch_size,
                    per_device_eval_batch_size=c.per_device_eval_batch_size,
                    gradient_accumulation_steps=c.gradient_accumulation_steps, report_to=c.report_to, seed=c.seed,
                    data_seed=c.seed, logging_steps=c.logging_steps, remove_unused_columns=False,
                    use_cpu=not device.startswith("cuda"), **trainer_precision(dtype, device),
                    lr_scheduler_type="cosine", warmup_steps=0.05, save_strategy="no", dataloader_num_workers=0,
                    eval_strategy="epoch" if eval_features is not None else "no")
    args = TrainingArguments(**{**defaults, **c.training_args})
    trainer = VerifierTrainer(model=model, args=args, train_dataset=train_features, eval_dataset=eval_features,
                              data_collator=TagCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                              compute_metrics=_tag_metrics, yes_id=verifier.yes_id, no_id=verifier.no_id,
                              fast_head=fast_head_matches(model), callbacks=callbacks)
    metrics = {**trainer.train(resume_from_checkpoint=resume_from_checkpoint).metrics,
               **(trainer.evaluate() if eval_features is not None else {})}

    model.eval()
    verifier.save(output_dir)
    verifier.training_metrics = {**metrics, "log_history": trainer.state.log_history}
    return verifier


def train_process_reward_model(model_name_or_path: str | os.PathLike, train_dataset, output_dir: str | os.PathLike,
                               *, eval_dataset=None, config: RewardTrainingConfig | None = None, callbacks=None,
                               resume_from_checkpoint: str | bool | None = None, **overrides) -> ProcessRewardModel:
    """Train a process reward model on stepwise supervision rows and save it to ``output_dir``.

    Args:
        model_name_or_path: base causal LM (Hub id or folder), e.g. ``"Qwen/Qwen2.5-0.5B-Instruct"``; a saved
            reward model's or adapter's folder is refused (a new adapter is trained on a base, none trained on).
        train_dataset, eval_dataset: ``{"prompt", "completions", "labels"}`` rows: a list, a ``datasets.Dataset``
            or a JSON/JSONL file's path.
        output_dir: the Trainer's checkpoints, then the trained model (an existing folder: empty, or a saved reward
            model, which is replaced).
        config: a ``RewardTrainingConfig``; ``**overrides`` set its fields (``quantization=None``,
            ``max_steps=50``, ...) or any other ``transformers.TrainingArguments`` field.
        callbacks: ``transformers.TrainerCallback`` objects (early stopping, logging).
        resume_from_checkpoint: passed to ``Trainer.train``: a checkpoint's folder, or True for ``output_dir``'s
            newest. Checkpoints are written only where ``save_strategy`` is not the default ``"no"`` (``"steps"``
            with ``save_steps``, ``"epoch"``, ``"best"``): by default there is nothing to resume from.

    Returns the trained ``ProcessRewardModel`` (also saved to ``output_dir`` with
    ``process_reward_config.json``); its ``training_metrics`` hold the Trainer's metrics and log history.
    """
    return _train(ProcessRewardModel, model_name_or_path, train_dataset, output_dir, eval_dataset,
                  RewardTrainingConfig.of(config, overrides), callbacks, resume_from_checkpoint)


def train_outcome_reward_model(model_name_or_path: str | os.PathLike, train_dataset, output_dir: str | os.PathLike,
                               *, eval_dataset=None, config: RewardTrainingConfig | None = None, callbacks=None,
                               resume_from_checkpoint: str | bool | None = None, **overrides) -> OutcomeRewardModel:
    """Train an outcome reward model on ``{"prompt", "completion", "label"}`` rows; same arguments as
    ``train_process_reward_model``. Saved with ``outcome_reward_config.json``."""
    return _train(OutcomeRewardModel, model_name_or_path, train_dataset, output_dir, eval_dataset,
                  RewardTrainingConfig.of(config, overrides), callbacks, resume_from_checkpoint)
