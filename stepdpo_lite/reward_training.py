"""Training the process and outcome reward models: 4-bit nf4 base + LoRA, loss at the tags only.

The reward model reads its verdict as the next token after a verification tag (GenRM, Zhang et al.
2024, arXiv:2408.15240), so training is next-token prediction restricted to two tokens at the tag
positions: the cross-entropy of the 2-way softmax over the logits of " Yes" and " No",

    L = -mean_tags log softmax([z_yes, z_no])[label]  =  BCE(sigmoid(z_yes - z_no), label)

and nothing else in the sequence is trained. The PRM sees a whole solution with a tag after every
step and learns all of its steps in one forward pass (the labels are never in the input), exactly
as it will score them.

Data (DESIGN §7): stepwise supervision rows ``{"prompt", "completions": [step, ...], "labels": [bool, ...]}``
for the PRM, outcome rows ``{"prompt", "completion", "label": bool}`` for the ORM.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

from .rewards import (NO, OUTCOME_TAG, STEP_TAG, YES, GenerativeVerifier, OutcomeRewardModel, ProcessRewardModel,
                      RewardModelConfig, fast_head_matches, right_pad, tag_logits)

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- data

def _is_label(x) -> bool:
    """A bool, or 0/1 as an int (JSON and some datasets store labels that way)."""
    import numpy as np
    return isinstance(x, (bool, np.bool_)) or (isinstance(x, (int, np.integer)) and x in (0, 1))


def validate_stepwise_rows(rows: Sequence[dict]) -> None:
    """Stepwise supervision rows: ``prompt`` str, ``completions`` non-blank steps, one bool ``labels`` each."""
    if len(rows) == 0:
        raise ValueError("stepwise supervision data is empty")
    for i, row in enumerate(rows):
        for key in ("prompt", "completions", "labels"):
            if key not in row:
                raise ValueError(f"row {i}: missing field {key!r} (stepwise supervision needs prompt, completions, labels)")
        if not isinstance(row["prompt"], str):
            raise ValueError(f"row {i}, field 'prompt': must be a str, got {type(row['prompt']).__name__}")
        steps, labels = row["completions"], row["labels"]
        if isinstance(steps, str) or not isinstance(steps, Sequence) or len(steps) == 0:
            raise ValueError(f"row {i}, field 'completions': must be a non-empty list of steps, got {steps!r:.80}")
        for k, s in enumerate(steps):
            if not isinstance(s, str) or not s.strip():
                raise ValueError(f"row {i}, field 'completions': step {k} must be a non-blank string, got {s!r}")
        if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) != len(steps):
            raise ValueError(f"row {i}, field 'labels': need one label per step ({len(steps)}), got {labels!r:.80}")
        for k, lab in enumerate(labels):
            if not _is_label(lab):
                raise ValueError(f"row {i}, field 'labels': label {k} must be a bool, got {lab!r}")


def validate_outcome_rows(rows: Sequence[dict]) -> None:
    """Outcome rows: ``prompt`` str, non-blank ``completion``, bool ``label``."""
    if len(rows) == 0:
        raise ValueError("outcome data is empty")
    for i, row in enumerate(rows):
        for key in ("prompt", "completion", "label"):
            if key not in row:
                raise ValueError(f"row {i}: missing field {key!r} (outcome rows need prompt, completion, label)")
        if not isinstance(row["prompt"], str):
            raise ValueError(f"row {i}, field 'prompt': must be a str, got {type(row['prompt']).__name__}")
        if not isinstance(row["completion"], str) or not row["completion"].strip():
            raise ValueError(f"row {i}, field 'completion': must be a non-blank string, got {row['completion']!r:.80}")
        if not _is_label(row["label"]):
            raise ValueError(f"row {i}, field 'label': must be a bool, got {row['label']!r}")


def tokenize_rows(verifier: GenerativeVerifier, rows: Sequence[dict]) -> list[dict]:
    """Rows -> ``{"input_ids", "tag_positions", "tag_labels"}`` with the verifier's own encoding (so the
    model is trained on exactly the tokens it will score). A row longer than ``max_length`` raises."""
    process = isinstance(verifier, ProcessRewardModel)
    prompts = [r["prompt"] for r in rows]
    try:
        if process:
            encoded = verifier._encode_many(prompts, [list(r["completions"]) for r in rows])
        else:
            encoded = verifier._encode_many(prompts, [r["completion"] for r in rows])
    except ValueError as err:
        raise ValueError(f"training data: {err}".replace("solution ", "row ")) from None
    labels = [[int(x) for x in r["labels"]] if process else [int(r["label"])] for r in rows]
    return [{"input_ids": ids, "tag_positions": pos, "tag_labels": lab} for (ids, pos), lab in zip(encoded, labels)]


class TagCollator:
    """Right-pads a batch and flattens its tags into ``(tag_rows, tag_cols, tag_labels)``."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch
        input_ids, attention_mask = right_pad([f["input_ids"] for f in features], self.pad_token_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "tag_rows": torch.tensor([i for i, f in enumerate(features) for _ in f["tag_positions"]]),
                "tag_cols": torch.tensor([p for f in features for p in f["tag_positions"]]),
                "tag_labels": torch.tensor([y for f in features for y in f["tag_labels"]])}


# ----------------------------------------------------------------------------- trainer

def _trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class VerifierTrainer(Trainer):
        """``Trainer`` whose loss is the {Yes, No} cross-entropy at the tag positions."""

        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by the accumulation steps

        def __init__(self, *args, yes_id: int, no_id: int, fast_head: bool = True, **kwargs):
            super().__init__(*args, **kwargs)
            self.yes_id, self.no_id, self.fast_head = yes_id, no_id, fast_head

        def _loss_and_rewards(self, model, inputs):
            fast = self.fast_head and hasattr(model, "get_decoder")
            logits = tag_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["tag_rows"],
                                inputs["tag_cols"], fast=fast)
            pair = logits[:, [self.yes_id, self.no_id]].float()
            target = 1 - inputs["tag_labels"].long()  # class 0 = Yes (correct), class 1 = No
            return F.cross_entropy(pair, target), pair[:, 0] - pair[:, 1]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, rewards = self._loss_and_rewards(model, inputs)
            return (loss, {"rewards": rewards}) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss, rewards = self._loss_and_rewards(model, inputs)
            if prediction_loss_only:
                return loss.detach(), None, None
            return loss.detach(), rewards.detach(), inputs["tag_labels"]

    return VerifierTrainer


def _tag_metrics(eval_pred) -> dict:
    """Accuracy (sign of the reward) and AUROC over all tags of the evaluation set."""
    import numpy as np
    from .evaluation import step_auroc
    rewards, labels = np.asarray(eval_pred.predictions).ravel(), np.asarray(eval_pred.label_ids).ravel()
    metrics = {"accuracy": float(((rewards > 0) == (labels > 0)).mean())}
    if 0 < labels.sum() < len(labels):
        metrics["auroc"] = step_auroc(rewards, labels)
    return metrics


def _train(kind: type[GenerativeVerifier], model_name_or_path: str, train_dataset, output_dir: str, eval_dataset,
           validate, *, quantization, lora, learning_rate, num_train_epochs, max_steps, per_device_train_batch_size,
           per_device_eval_batch_size, gradient_accumulation_steps, gradient_checkpointing, max_length, report_to, seed,
           resume_from_checkpoint, device, dtype, logging_steps, reward_config: RewardModelConfig, callbacks=None,
           **training_args):
    from transformers import TrainingArguments, set_seed

    from .models import load_model, resolve_device, resolve_dtype, trainer_precision

    if quantization == "4bit" and lora is None:
        raise ValueError("a 4-bit base cannot be trained itself: pass lora=True (QLoRA) or quantization=None")
    train_rows, eval_rows = list(train_dataset), list(eval_dataset) if eval_dataset is not None else None
    validate(train_rows)
    if eval_rows is not None:
        validate(eval_rows)

    set_seed(seed)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    model, tokenizer = load_model(model_name_or_path, quantization=quantization, lora=lora, device=device,
                                  dtype=dtype, gradient_checkpointing=gradient_checkpointing)
    reward_config.quantization, reward_config.max_length = quantization, max_length
    verifier = kind(model, tokenizer, reward_config)
    train_features = tokenize_rows(verifier, train_rows)
    eval_features = tokenize_rows(verifier, eval_rows) if eval_rows is not None else None

    on_gpu = device.startswith("cuda")
    defaults = dict(output_dir=output_dir, learning_rate=learning_rate, num_train_epochs=num_train_epochs,
                    max_steps=max_steps, per_device_train_batch_size=per_device_train_batch_size,
                    per_device_eval_batch_size=per_device_eval_batch_size,
                    gradient_accumulation_steps=gradient_accumulation_steps, report_to=report_to, seed=seed,
                    data_seed=seed, logging_steps=logging_steps, remove_unused_columns=False, use_cpu=not on_gpu,
                    **trainer_precision(dtype, device),
                    lr_scheduler_type="cosine", warmup_steps=0.05, save_strategy="no", dataloader_num_workers=0,
                    eval_strategy="epoch" if eval_features is not None else "no")
    args = TrainingArguments(**{**defaults, **training_args})
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_features, eval_dataset=eval_features,
                               data_collator=TagCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                               compute_metrics=_tag_metrics, yes_id=verifier.yes_id, no_id=verifier.no_id,
                               fast_head=fast_head_matches(model), callbacks=callbacks)
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    metrics = dict(result.metrics)
    if eval_features is not None:
        metrics.update(trainer.evaluate())

    model.eval()
    verifier.save(output_dir)
    verifier.training_metrics = {**metrics, "log_history": trainer.state.log_history}
    return verifier


def train_process_reward_model(model_name_or_path: str | os.PathLike, train_dataset, output_dir: str | os.PathLike,
                               eval_dataset=None, *, quantization: str | None = "4bit", lora=True,
                               learning_rate: float = 1e-4, num_train_epochs: float = 1.0, max_steps: int = -1,
                               per_device_train_batch_size: int = 8, per_device_eval_batch_size: int = 16,
                               gradient_accumulation_steps: int = 1, gradient_checkpointing: bool = False,
                               max_length: int | None = None, report_to: str | list[str] = "none", seed: int = 42,
                               resume_from_checkpoint: str | bool | None = None, device: str | None = None,
                               dtype=None, logging_steps: int = 10, step_tag: str = STEP_TAG, yes: str = YES,
                               no: str = NO, aggregation: str = "min", prompt_template: str = "{problem}",
                               callbacks=None, **training_args) -> ProcessRewardModel:
    """Train a process reward model on stepwise supervision rows and save it to ``output_dir``.

    Args:
        model_name_or_path: base causal LM (Hub id or folder), e.g. ``"Qwen/Qwen2.5-0.5B-Instruct"``.
        train_dataset, eval_dataset: ``datasets.Dataset`` or list of ``{"prompt", "completions", "labels"}``.
        quantization: ``"4bit"`` (nf4 QLoRA base) or ``None``; lora: see ``models.load_model``.
        max_length: longest input with its tags; a longer row raises instead of being truncated.
        report_to: ``"none"``, ``"tensorboard"``, ``"wandb"``…; resume_from_checkpoint: passed to ``Trainer.train``.
        callbacks: ``transformers.TrainerCallback`` objects passed to the ``Trainer`` (early stopping, logging).
        step_tag, yes, no, aggregation, prompt_template: the ``RewardModelConfig`` saved with the model.
        **training_args: any other ``transformers.TrainingArguments`` field (e.g. ``save_strategy="steps"``).

    Returns the trained ``ProcessRewardModel`` (also saved to ``output_dir`` with
    ``process_reward_config.json``); its ``training_metrics`` hold the Trainer's metrics and log history.
    """
    config = RewardModelConfig(tag=step_tag, yes=yes, no=no, aggregation=aggregation, prompt_template=prompt_template)
    return _train(ProcessRewardModel, str(model_name_or_path), train_dataset, str(output_dir), eval_dataset,
                  validate_stepwise_rows, quantization=quantization, lora=lora, learning_rate=learning_rate,
                  num_train_epochs=num_train_epochs, max_steps=max_steps,
                  per_device_train_batch_size=per_device_train_batch_size,
                  per_device_eval_batch_size=per_device_eval_batch_size,
                  gradient_accumulation_steps=gradient_accumulation_steps,
                  gradient_checkpointing=gradient_checkpointing, max_length=max_length, report_to=report_to,
                  seed=seed, resume_from_checkpoint=resume_from_checkpoint, device=device, dtype=dtype,
                  logging_steps=logging_steps, reward_config=config, callbacks=callbacks,
                  **training_args)


def train_outcome_reward_model(model_name_or_path: str | os.PathLike, train_dataset, output_dir: str | os.PathLike,
                               eval_dataset=None, *, quantization: str | None = "4bit", lora=True,
                               learning_rate: float = 1e-4, num_train_epochs: float = 1.0, max_steps: int = -1,
                               per_device_train_batch_size: int = 8, per_device_eval_batch_size: int = 16,
                               gradient_accumulation_steps: int = 1, gradient_checkpointing: bool = False,
                               max_length: int | None = None, report_to: str | list[str] = "none", seed: int = 42,
                               resume_from_checkpoint: str | bool | None = None, device: str | None = None,
                               dtype=None, logging_steps: int = 10, outcome_tag: str = OUTCOME_TAG, yes: str = YES,
                               no: str = NO, prompt_template: str = "{problem}",
                               callbacks=None, **training_args) -> OutcomeRewardModel:
    """Train an outcome reward model on ``{"prompt", "completion", "label"}`` rows; same options as
    ``train_process_reward_model``. Saved with ``outcome_reward_config.json``."""
    config = RewardModelConfig(tag=outcome_tag, yes=yes, no=no, prompt_template=prompt_template)
    return _train(OutcomeRewardModel, str(model_name_or_path), train_dataset, str(output_dir), eval_dataset,
                  validate_outcome_rows, quantization=quantization, lora=lora, learning_rate=learning_rate,
                  num_train_epochs=num_train_epochs, max_steps=max_steps,
                  per_device_train_batch_size=per_device_train_batch_size,
                  per_device_eval_batch_size=per_device_eval_batch_size,
                  gradient_accumulation_steps=gradient_accumulation_steps,
                  gradient_checkpointing=gradient_checkpointing, max_length=max_length, report_to=report_to,
                  seed=seed, resume_from_checkpoint=resume_from_checkpoint, device=device, dtype=dtype,
                  logging_steps=logging_steps, reward_config=config, callbacks=callbacks,
                  **training_args)
