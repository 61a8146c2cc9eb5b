"""Stepwise DPO on TRL 1.16: ``StepwiseDPOConfig(DPOConfig)`` and ``StepwiseDPOTrainer(DPOTrainer)``.

TRL does the DPO plumbing (tokenizing, the fused LM head that returns per-token log-probs, reference model or
disabled PEFT adapter, DeepSpeed/FSDP, precomputed reference log-probs). ``stepwise_data.py`` gives every
completion token the index of the reasoning step it belongs to, and every step a correctness probability ``p``;
the loss here sums the per-token log-ratios of ONE policy and ONE reference forward pass into step log-ratios
``ρ_k`` (``losses.step_logps``) and applies the outcome and credit-assigned step losses of docs/method.md §4
(``losses.py``).
Step-DPO: Lai et al. 2024 (arXiv:2406.18629); DPO: Rafailov et al. 2023 (arXiv:2305.18290)."""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
from dataclasses import dataclass, field, fields

import torch
from accelerate import PartialState
from accelerate.utils import is_peft_model
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer
from trl.data_utils import extract_prompt, is_conversational
from trl.trainer.utils import get_config_model_id, pad, selective_log_softmax

from .atomic import TRAINER_OUTPUTS, check_checkpoints, save_atomic, write_json_atomic
from .checks import (documented_fields, finite_number, flag, keywords_taken, list_of, positive_int, warn_of_unread_text,
                     warn_user)
from .data import warn_of_joined_prompts
from .losses import (AGGREGATION_STRATEGIES, aggregate_rewards, compute_outcome_loss, compute_step_loss,
                     first_error_mask, positional_weights, step_logps)
from .models import (default_bf16, keep_4bit_weights_unpacked, lora_only, prepare_adapters,
                     quiet_deprecated_checkpointing_read, reference_adapter, write_portable_adapter_config)
from .rewards import InputTooLong, ProcessRewardModel, step_delimiter_of
from .steps import DEFAULT_DELIMITER, extract_steps, step_spans, token_step_ids
from .stepwise_data import (REWARD_MODEL_LABELS, STEP_COLUMNS, STEP_PAIRINGS, STEP_VALUE_COLUMNS,
                            DataCollatorForStepwisePreference, check_row, drop_appended_eos, step_columns)

__all__ = ["StepwiseDPOConfig", "StepwiseDPOTrainer", "get_step_rewards"]

STEP_ACCURACY_METRICS = ("accuracy", "balanced_accuracy", "f1")
PARTS = ("prompt", "chosen", "rejected")  # a tokenized row's token-id columns are f"{part}_ids"
PREPARED_ROWS_CHECKED = 8  # a prepared dataset's first rows, made again to compare (_check_prepared_alike)
SCORER_CHUNK = 512  # rows per call of a reward model that is not a ProcessRewardModel (which batches by length)
# TrainingArguments' activation checkpointing switch: later transformers 5's name (the old one warns), else 5.2's
CHECKPOINTING_FIELD = next(n for n in ("activation_checkpointing", "gradient_checkpointing") if hasattr(DPOConfig, n))


def _filled_columns(dataset, names) -> list[str]:
    """The columns of ``names`` that some row fills (not None): from the null counts of a map-style dataset; for an
    iterable one, the columns it declares (it cannot be read ahead), else those its first row fills."""
    if isinstance(dataset, Dataset):
        table = dataset.with_format("arrow")[:]  # with_format respects select/shuffle; the counts cost no pass
        return [n for n in names if n in table.column_names and table[n].null_count < table.num_rows]
    if declared := getattr(dataset, "column_names", None):
        return [n for n in names if n in declared]
    first = next(iter(dataset))
    return [n for n in names if first.get(n) is not None]


def _without_max_length(args):
    """A copy of ``args`` without ``max_length``, for TRL's dataset preparation: its only use there is to drop the
    rows whose prompt fills it, silently (the collator still truncates with the real ``args``)."""
    args = copy.copy(args)
    args.max_length = None
    return args


class _TruncationCounts(TrainerCallback):
    """Starts a run's counts of cut steps, and warns at its end of cut rejected steps labelled wrong. Truncated
    steps count on from a resumed run's log (steps/truncated_total, from its checkpoint), not from 0."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        logged = [h["steps/truncated_total"] for h in state.log_history if "steps/truncated_total" in h]
        self.trainer.num_truncated_steps, self.trainer.num_wrong_steps_cut = int(logged[-1]) if logged else 0, 0

    def on_train_end(self, args, state, control, **kwargs):
        if self.trainer.num_wrong_steps_cut:  # rejected steps labelled wrong, cut: the run looks normal
            warn_user(f"StepwiseDPOTrainer: max_length={args.max_length} cut {self.trainer.num_wrong_steps_cut} "
                      "rejected steps labelled wrong (p < 0.5) in this training (counted in each batch), so the "
                      "step loss never pushed them down: raise max_length")


@documented_fields
@dataclass
class StepwiseDPOConfig(DPOConfig):
    r"""Configuration of [`StepwiseDPOTrainer`]: every field of [`trl.DPOConfig`] plus the stepwise ones below.

    The defaults weigh the step and outcome losses 1 each, with no NLL term (docs/method.md §4's total loss L). Notebook
    04's recipe is ``step_loss_weight=1.0, outcome_loss_weight=0.0, sft_loss_weight=5.0``, ``beta=step_beta=0.1``:
    without the NLL term the step loss needed a tenth of the NLL's learning rate on the toy world, and still drifted
    (benchmarks). On a CPU it trains in float32 without further arguments: an unset ``bf16`` (TRL turns it on, and with
    ``use_cpu=True`` transformers then trains under bfloat16 autocast) stays off unless a bf16-capable GPU trains.
    The outcome loss is TRL's sigmoid loss alone (``loss_type`` and its kin keep their defaults). Under ``max_length``
    a prompt filling it under ``keep_start`` is an error (TRL drops the row); cut steps leave the step loss, warned."""

    step_beta: float = field(default=0.1, metadata={"help": "β of the step loss (scale of the step log-ratios ρ_k)."})
    outcome_beta: float | None = field(default=None, metadata={
        "help": "β of the outcome (DPO) loss; None: `beta` (read when training, so a later change of `beta` counts)."})
    aggregation_strategy: str = field(default="min", metadata={
        "help": f"How reward-model step rewards become one solution reward R: one of {AGGREGATION_STRATEGIES} "
                "(product = product of step probabilities, in log space)."})
    step_weights: list[float] | None = field(default=None, metadata={
        "help": "Positional step weights a_k of the step loss and of `weighted_sum` (1 when unset; a short list is "
                "extended with its last value)."})
    max_reasoning_steps: int | None = field(default=None, metadata={
        "help": "Cap on reasoning steps per response; the tail is merged into the last kept step (its label is the "
                "min of the merged labels). Named so because `max_steps` is the number of training steps."})
    step_delimiter: str = field(default=DEFAULT_DELIMITER, metadata={
        "help": "Delimiter that opens each reasoning step (it belongs to the step it opens)."})
    use_reward_model: bool = field(default=False, metadata={
        "help": "Load a frozen process reward model from `reward_model_path` to score the steps. A `reward_model` "
                "given to the trainer scores them whatever this says; rewards are computed once, when the dataset "
                "is prepared."})
    reward_model_path: str | None = field(default=None, metadata={
        "help": "Path of a saved `ProcessRewardModel` (used when `use_reward_model`)."})
    reward_model_labels: str = field(default="mistake_made_here", metadata={
        "help": "How step rewards (a reward model's, or `*_step_rewards` columns) become the step loss's p_k. A PRM "
                "learns *reachable*: σ(r_k) = P(the answer can still be reached after step k). `mistake_made_here`: "
                "p_k = 1 − max(0, σ(r_{k−1}) − σ(r_k)) (`rewards.mistake_made_here_labels`), so a step that computes "
                "right on a wrong number is not pushed down; `reachable`: p_k = σ(r_k), every step after a mistake "
                "pushed down too."})
    step_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the step loss L_step."})
    outcome_loss_weight: float = field(default=1.0, metadata={
        "help": "Weight of the outcome loss L_out. At 0 loss/outcome and TRL's rewards/* (β·ρ± of whole solutions) "
                "are logged still: not trained on, but how the step loss moves whole solutions."})
    use_step_wise_prompt: bool = field(default=False, metadata={
        "help": "Rewrite each prompt with `step_wise_prompt_template`."})
    step_wise_prompt_template: str = field(default="Solve the problem step by step.\n\n{prompt}", metadata={
        "help": "Template holding `{prompt}`; used when `use_step_wise_prompt`."})
    evaluate_step_accuracy: bool = field(default=True, metadata={
        "help": "Log how often the sign of the implicit step reward β·ρ_k agrees with the step label (scored steps)."})
    step_accuracy_metric: str = field(default="accuracy", metadata={"help": f"One of {STEP_ACCURACY_METRICS}."})
    sft_loss_weight: float = field(default=0.0, metadata={
        "help": "Weight of an NLL term on the chosen responses (after RPO, Pang et al. 2024, arXiv:2404.19733): "
                "without it, DPO on reasoning can lower the chosen likelihood too and hurt accuracy. One mean over all "
                "the batch's chosen tokens, as TRL's loss_type ['sigmoid', 'sft'] with loss_weights [1, "
                "sft_loss_weight]; RPO's mean of each solution's per-token NLL weighs a long solution no more."})
    step_pairing: str = field(default="weighted", metadata={
        "help": "`weighted`: every step counts (weighted by p and a); `first_error`: only the first differing step of "
                "each side, from its first differing token on (the opening both share is left out), on a "
                "shared-prefix pair exactly Step-DPO (Lai et al. 2024); `first_token`: only its first differing token "
                "(two next tokens at one state; cDPO's critical token, arXiv:2411.19943)."})
    gradient_checkpointing: bool | None = field(default=None, metadata={"nargs": "?", "const": True, "help":
        "Activation checkpointing: transformers 5.2's name, later `activation_checkpointing`'s alias. Both unset: on."})

    def __post_init__(self):
        given = {self.gradient_checkpointing, getattr(self, CHECKPOINTING_FIELD)} - {None}  # one field on 5.2
        if len(given) > 1:  # transformers would keep the new name's value silently
            raise ValueError(f"StepwiseDPOConfig: fields 'gradient_checkpointing' and '{CHECKPOINTING_FIELD}' disagree")
        if not given:  # both unset: on, as in TRL, under this transformers' name (the old one warns)
            setattr(self, CHECKPOINTING_FIELD, True)
        if self.reward_model_path is not None:  # a Path would stop save_model's JSON halfway
            self.reward_model_path = os.fspath(self.reward_model_path)
        if self.bf16 is None and not self.fp16:
            self.bf16 = default_bf16(self.use_cpu)  # TRL's unset bf16 means True, on a CPU too (see default_bf16)
        if not (torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()):
            self.dataloader_pin_memory = False  # torch pins nothing then, and warns at each DataLoader that asks
        # an inf beta passes "> 0", the first loss then NaN; a str learning_rate (YAML's 1e-4) fails in the optimizer
        for name in ("step_loss_weight", "outcome_loss_weight", "sft_loss_weight", "beta", "step_beta", "outcome_beta",
                     "learning_rate"):
            if getattr(self, name) is not None or name != "outcome_beta":  # None: a TypeError at "> 0" below
                setattr(self, name, finite_number(getattr(self, name), name, "StepwiseDPOConfig"))  # numpy's broke JSON
        weights = [self.step_loss_weight, self.outcome_loss_weight, self.sft_loss_weight]
        if self.step_weights is not None:  # not `or []`: a tensor's truth value is an error
            self.step_weights = [finite_number(w, f"step_weights[{k}]", "StepwiseDPOConfig") for k, w in
                                 enumerate(list_of(self.step_weights, "StepwiseDPOConfig: step_weights", "numbers"))]
        for name in ("max_reasoning_steps", "max_length"):  # "2", 2.0; max_length 0 or -5 too
            setattr(self, name, positive_int(getattr(self, name), name, "StepwiseDPOConfig", none_ok=True))
        for name in ("use_reward_model", "use_step_wise_prompt", "evaluate_step_accuracy"):  # "no" is truthy
            flag(getattr(self, name), name, "StepwiseDPOConfig")
        checks = [
            (self.aggregation_strategy in AGGREGATION_STRATEGIES,
             f"aggregation_strategy must be one of {AGGREGATION_STRATEGIES}, got {self.aggregation_strategy!r}"),
            (self.step_accuracy_metric in STEP_ACCURACY_METRICS,
             f"step_accuracy_metric must be one of {STEP_ACCURACY_METRICS}, got {self.step_accuracy_metric!r}"),
            (self.step_pairing in STEP_PAIRINGS,
             f"step_pairing must be one of {STEP_PAIRINGS}, got {self.step_pairing!r}"),
            (self.reward_model_labels in REWARD_MODEL_LABELS,
             f"reward_model_labels must be one of {REWARD_MODEL_LABELS}, got {self.reward_model_labels!r}"),
            (self.step_beta > 0 and self.beta_of_outcome > 0, "step_beta and outcome_beta (None: beta) must be > 0"),
            (min(weights) >= 0, f"loss weights must be >= 0, got step {weights[0]}, outcome {weights[1]} and sft "
                                f"{weights[2]}"),
            (min(weights) < 0 or weights[0] * any(self.step_weights or [1]) + weights[1] > 0, "step and outcome loss "
             "weights are both 0 (or step_weights all 0, which zero the step loss, with outcome_loss_weight 0)"),
            (all(w >= 0 for w in self.step_weights or []), f"step_weights must be >= 0, got {self.step_weights}"),
            (isinstance(self.step_delimiter, str) and self.step_delimiter, "step_delimiter must be a non-empty string"),
            (isinstance(self.step_wise_prompt_template, str) and "{prompt}" in self.step_wise_prompt_template,
             f"step_wise_prompt_template must contain '{{prompt}}', got {self.step_wise_prompt_template!r}"),
        ]
        if bad := [message for ok, message in checks if not ok]:
            raise ValueError("StepwiseDPOConfig: " + "; ".join(bad))
        super().__post_init__()
        if self.loss_type != ["sigmoid"] or self.ld_alpha is not None or self.use_weighting or \
                self.f_divergence_type != "reverse_kl" or self.loss_weights not in (None, [1.0]):
            raise ValueError("StepwiseDPOConfig: the outcome loss is the sigmoid DPO loss; loss_type must be "
                             "'sigmoid', with ld_alpha=None, use_weighting=False, f_divergence_type='reverse_kl' and "
                             "loss_weights=None (weigh the terms with outcome_loss_weight, step_loss_weight and "
                             "sft_loss_weight)")

    @property
    def beta_of_outcome(self) -> float:
        """β of the outcome loss: ``outcome_beta``, or ``beta`` when that is None."""
        return self.beta if self.outcome_beta is None else self.outcome_beta

    def stepwise_dict(self) -> dict:
        """The stepwise fields, plus the DPO ones the loss depends on (written by `save_model`)."""
        dpo_fields = {f.name for f in fields(DPOConfig)}
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in dpo_fields}
        d.update(beta=self.beta, outcome_beta=self.beta_of_outcome, max_length=self.max_length,
                 truncation_mode=self.truncation_mode)
        return d


# ----------------------------------------------------------------------------- trainer

class StepwiseDPOTrainer(DPOTrainer):
    """[`trl.DPOTrainer`] with step-level credit assignment (docs/method.md §4). Same arguments, plus
    ``reward_model``: an object with ``score_solutions(prompts, step_lists) -> list[list[float]]`` (each response
    split at ``args.step_delimiter``; per-step log-odds, e.g. a ``ProcessRewardModel``), used once while the datasets
    are prepared; its rewards become labels as ``args.reward_model_labels`` says. Per-step labels may instead come
    from columns ``chosen_step_labels`` / ``rejected_step_labels`` (bools or probabilities), or rewards from
    ``chosen_step_rewards`` / ``rejected_step_rewards``. Needs a fast tokenizer and string rows. A bool column
    ``open_ended`` marks partial completions (Step-DPO's prompt-prefix form): the EOS TRL appends is dropped from
    them, so that a one-step completion does not teach the policy to stop after one step."""

    _tag_names = ["trl", "dpo", "stepwise-dpo", "stepdpo-lite"]
    extra_columns: tuple[str, ...] = ()  # the hook for dataset columns a subclass reads: kept, and collated
    _name = "Stepwise DPO"

    def __init__(self, model, ref_model=None, args: StepwiseDPOConfig | None = None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None, compute_metrics=None, callbacks=None,
                 optimizers=(None, None), quantization_config=None, peft_config=None, reward_model=None):
        args = StepwiseDPOConfig("stepwise-dpo") if args is None else args  # not `or`: {} was taken as the default
        if not isinstance(args, StepwiseDPOConfig):  # TRL's own DPOConfig, most likely: it lacks the step loss's fields
            raise ValueError(f"StepwiseDPOTrainer: args must be a StepwiseDPOConfig, got {type(args).__name__}")
        self.check_step_loss()
        for name, d in (("train", train_dataset), ("eval", eval_dataset)):  # TRL: a TypeError about its own types
            if isinstance(d, (list, tuple, str, os.PathLike)):
                raise ValueError(f"StepwiseDPOTrainer: the {name} dataset must be a `datasets.Dataset`, got a "
                                 f"{type(d).__name__}: load a file with data.load_preference(path), rows with "
                                 "Dataset.from_list(rows)")
        if train_dataset is not None and next(iter(train_dataset), None) is None:  # TRL: a bare StopIteration
            raise ValueError("StepwiseDPOTrainer: the train dataset has no rows")
        if args.use_reward_model and reward_model is None:
            if not args.reward_model_path:
                raise ValueError("use_reward_model=True needs `reward_model_path` or a `reward_model` object")
            reward_model = ProcessRewardModel.load(args.reward_model_path)
        if reward_model is not None and not callable(getattr(reward_model, "score_solutions", None)):
            raise ValueError(f"StepwiseDPOTrainer: reward_model needs a method score_solutions(prompts, step_lists) "
                             f"returning one reward per step (a ProcessRewardModel has it), got "
                             f"{type(reward_model).__name__}; for a saved one pass ProcessRewardModel.load(path), or "
                             "reward_model_path=path with use_reward_model=True")
        self.reward_model = reward_model
        if processing_class is None:
            processing_class = AutoTokenizer.from_pretrained(  # the model's revision, as TRL loads the model
                model if isinstance(model, str) else get_config_model_id(model.config),
                revision=(args.model_init_kwargs or {}).get("revision"), trust_remote_code=args.trust_remote_code)
        if not getattr(processing_class, "is_fast", False):
            raise ValueError("StepwiseDPOTrainer needs a fast tokenizer (its offset mapping gives token step ids)")
        if data_collator is None:  # as TRL's: its args.pad_token (deprecated since TRL 1.1) wins over the tokenizer's
            pad_token = args.pad_token or processing_class.pad_token or processing_class.eos_token
            if pad_token not in processing_class.get_vocab():  # else it would pad with <unk>, as TRL refuses too
                raise ValueError(f"StepwiseDPOTrainer: pad_token {pad_token!r} is not in the tokenizer's vocabulary")
            processing_class.pad_token = pad_token
            data_collator = DataCollatorForStepwisePreference(
                pad_token_id=processing_class.pad_token_id, max_length=args.max_length,
                truncation_mode=args.truncation_mode, pad_to_multiple_of=args.pad_to_multiple_of,
                extra_columns=self.extra_columns)
        # TRL rebuilds the reference from the model's path: a model built or changed in memory (e.g. after SFT in
        # the same session) would be measured against the weights on disk, so the reference is a copy of it
        if (ref_model is None and not isinstance(model, str) and peft_config is None and not is_peft_model(model)
                and not args.precompute_ref_log_probs):
            ref_model = copy.deepcopy(model).eval()
        if ref_model is None and not isinstance(model, str) and is_peft_model(model) and args.precompute_ref_log_probs \
                and not lora_only(model):
            raise ValueError("StepwiseDPOTrainer: precompute_ref_log_probs with an adapter that is not LoRA (IA3, "
                             "LoHa, ...): TRL precomputes the reference before its 'ref' copy holds the trained "
                             "adapter (the base model would be the reference); set precompute_ref_log_probs=False")
        for m in (model, ref_model):  # before TRL's first forward (precompute_ref_log_probs runs one in __init__)
            keep_4bit_weights_unpacked(m)
        # with max_length=None nothing cuts a row: one past the model's positions would train without an error (RoPE)
        self._context = getattr(getattr(model, "config", None), "max_position_embeddings", None)  # None: a str
        self._max_num_steps = 1  # widest step count of any prepared dataset (precomputed reference step log-probs)
        self._step_counts = {"train": torch.zeros(5), "eval": torch.zeros(5)}  # tp, fp, fn, tn, truncated
        self.num_truncated_steps = self.num_wrong_steps_cut = 0  # the last: rejected steps labelled wrong, cut
        with quiet_deprecated_checkpointing_read():  # TRL wraps a model in a PeftModel for a peft_config
            super().__init__(model, ref_model=ref_model, args=args, data_collator=data_collator,
                             train_dataset=train_dataset, eval_dataset=eval_dataset, processing_class=processing_class,
                             compute_metrics=compute_metrics, callbacks=callbacks, optimizers=optimizers,
                             quantization_config=quantization_config, peft_config=peft_config)
        keep_4bit_weights_unpacked(self.model)  # TRL may have loaded it in 4-bit itself (models.py says why)
        self.add_callback(_TruncationCounts(self))
        prepare_adapters(self)  # float32 adapters; TRL's "ref" copy of a fresh one dropped

    @classmethod
    def check_step_loss(cls) -> None:
        """Refuse a ``step_loss`` override that cannot take its 9 arguments (an old one's 8, without ``model``): when
        a trainer is built, and before an on-policy round samples (``onpolicy.TrainSettings(trainer_class=...)``)."""
        step_loss = object.__new__(cls).step_loss  # bound as a trainer's is (a staticmethod too), with no trainer built
        try:  # else an 8-argument override fails only at the first step, with a bare TypeError
            inspect.signature(step_loss).bind(*range(9))
        except TypeError:
            raise ValueError(f"{cls.__name__}.step_loss{inspect.signature(step_loss)} cannot take the 9 "
                             "arguments it is called with: add the ninth, `model` (docs/method.md §4)") from None

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """TRL's ``train``, after ``atomic.check_checkpoints``: a fresh run beside an earlier run's checkpoints
        warns, ``resume_from_checkpoint=True`` whose newest checkpoint is half-written raises."""
        check_checkpoints(self.args.output_dir, resume_from_checkpoint, "StepwiseDPOTrainer")
        return super().train(resume_from_checkpoint, *args, **kwargs)

    # ------------------------------------------------------------------ dataset preparation (once, before training)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        try:
            return self._prepare_rows(dataset, processing_class, args, dataset_name)
        except ValueError as err:  # a row's error names its row: which dataset holds it, train or eval?
            if str(err).startswith("row "):  # a reward model's InputTooLong stays one (the kit catches it by type)
                named = type(err)(f"StepwiseDPOTrainer: the {dataset_name} dataset's {err}")
                named.__dict__.update(err.__dict__)  # InputTooLong's index, n_tokens and max_length
                raise named from None
            raise

    def _prepare_rows(self, dataset, processing_class, args, dataset_name):
        if (first := next(iter(dataset), None)) is None:
            raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset has no rows")
        if missing := [n for n in list_of(self.extra_columns, "extra_columns", "column names") if n not in first]:
            raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset has no column {missing[0]!r}, which "
                             f"{type(self).__name__}.extra_columns lists (the collator passes it to the loss)")
        if "chosen_step_ids" in first:  # already prepared (e.g. another trainer's train_dataset)
            self._check_prepared_alike(dataset, args, dataset_name)
            scored = "chosen_step_rewards" in _filled_columns(dataset, STEP_VALUE_COLUMNS)
            templated = str(first.get("prompt", "")).startswith(args.step_wise_prompt_template.split("{prompt}")[0])
            if unused := [what for what, lost in (("a reward model", self.reward_model is not None and not scored),
                                                  ("use_step_wise_prompt", args.use_step_wise_prompt and not templated))
                          if lost]:
                raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset was prepared by a trainer without "
                                 f"{' or '.join(unused)}, and a prepared dataset is used as it is: give this trainer "
                                 "the rows before preparation")
            self._note_step_width(dataset)  # the precomputed reference needs a column per step
            return dataset
        if "initial_reason_steps" in first:  # Step-DPO rows: the trainer would read prompt + one step, no prefix
            raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset has Step-DPO rows (row 0: field "
                             "'initial_reason_steps'), whose shared prefix this trainer does not read: turn them into "
                             "rows it reads with data.to_trl_dpo(ds) (prompt + prefix, one open-ended step each), or "
                             "give whole solutions as chosen and rejected")
        if missing := [name for name in ("chosen", "rejected") if name not in first]:
            raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset has no {missing[0]!r} column "
                             f"(row 0: field {missing[0]!r} is missing)")
        derived_prompt, filled = "prompt" not in first, _filled_columns(dataset, STEP_VALUE_COLUMNS)
        misnamed = [c for c in ("question", "problem", "query", "instruction", "input") if c in first]
        # a misnamed prompt would be ignored, and the implicit one runs into the shared steps that step columns count
        if derived_prompt and (misnamed or filled):
            raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset has no 'prompt' column but has "
                             f"{misnamed or filled}: name the problem's column 'prompt' (rows without one take TRL's "
                             "implicit prompt, the common start of chosen and rejected, their shared steps too)")
        if derived_prompt:  # TRL's implicit prompt: the common prefix of chosen and rejected
            dataset = dataset.map(extract_prompt)
        if is_conversational(next(iter(dataset))):
            raise ValueError("StepwiseDPOTrainer needs standard (string) rows: render conversational rows with "
                             "the chat template first (trl.apply_chat_template), or join their contents if the "
                             "model has none")
        for kind in ("labels", "rewards"):  # one side alone: the other would take the defaults, silently
            sides = (f"chosen_step_{kind}", f"rejected_step_{kind}")
            if (sides[0] in filled) != (sides[1] in filled):
                given, missing = sides if sides[0] in filled else sides[::-1]
                raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset has {given!r} but no {missing!r}: "
                                 f"give both sides' step {kind} (or neither: then every chosen step counts as right "
                                 "and every rejected one as wrong)")
        streamed = not isinstance(dataset, Dataset)  # its filled columns come from row 0 alone: the rest must agree
        dataset = dataset.map(check_row, with_indices=True, fn_kwargs=dict(
            fill=filled, out={} if streamed else None, derived_prompt=derived_prompt,
            unfilled=[c for c in STEP_VALUE_COLUMNS if c not in filled] if streamed else ()))
        if self.reward_model is not None and "chosen_step_rewards" in filled:  # which rewards? not silently the old
            raise ValueError(f"StepwiseDPOTrainer: the {dataset_name} dataset already has step rewards (columns "
                             "'chosen_step_rewards', 'rejected_step_rewards') and a reward model was given to score "
                             "them: drop the columns to score with the model, or give no reward model to use them")
        if self.reward_model is not None and "chosen_step_labels" in filled:  # labels win: step_columns
            warn_user(f"StepwiseDPOTrainer: the {dataset_name} dataset has step labels (columns "
                      "'chosen_step_labels', 'rejected_step_labels'), and they are the step loss's labels: the "
                      "reward model's rewards are not used as step labels, they only weight the outcome loss. To "
                      "label the steps with the reward model, drop the columns.")
        if self.reward_model is not None and "chosen_step_rewards" not in filled:  # a column of None: unscored
            if not isinstance(dataset, Dataset):
                raise ValueError("reward-model scoring needs a map-style `datasets.Dataset`, not an IterableDataset")
            dataset = self._add_reward_columns(dataset, args.step_delimiter, dataset_name)
        # no labels: "weighted" pushes down every rejected step (DPO); the other pairings, or one step a side, Step-DPO
        elif not filled and not next(iter(dataset)).get("open_ended") and args.step_pairing == "weighted":
            warn_user(f"StepwiseDPOTrainer: the {dataset_name} dataset has no step labels, no step rewards and "
                      "there is no reward model, so every chosen step counts as right and every rejected step as "
                      "wrong: the step loss then pushes down the whole rejected solution, as DPO does. Add "
                      "`chosen_step_labels`/`rejected_step_labels` columns or pass a `reward_model`.")
        if args.use_step_wise_prompt:
            template = args.step_wise_prompt_template
            dataset = dataset.map(lambda ex: {"prompt": template.replace("{prompt}", ex["prompt"])})
        if not derived_prompt and isinstance(dataset, Dataset) and (  # a PRM warns of those it scores, untemplated
                args.use_step_wise_prompt or not isinstance(self.reward_model, ProcessRewardModel)):
            warn_of_joined_prompts(f"StepwiseDPOTrainer: the {dataset_name} dataset", dataset["prompt"],
                                   zip(dataset["chosen"], dataset["rejected"]), "their responses")
        # TRL drops rows whose prompt fills max_length without a word: step_columns refuses them instead, by row
        dataset = super()._prepare_dataset(dataset, processing_class, _without_max_length(args), dataset_name)
        if "open_ended" in next(iter(dataset)):  # partial solutions (Step-DPO's prompt-prefix form): no EOS
            dataset = dataset.map(drop_appended_eos, fn_kwargs=dict(eos=self._tokenizer.eos_token,
                                                                    eos_id=self._tokenizer.eos_token_id))
        progress = {"desc": f"Step ids of {dataset_name} dataset"} if isinstance(dataset, Dataset) else {}  # lazy
        dataset = dataset.map(step_columns, with_indices=True, **progress, fn_kwargs=self._step_settings(args))
        self._note_step_width(dataset)
        self._warn_of_pairs_that_train_little(dataset, args, dataset_name)
        return dataset

    def _warn_of_pairs_that_train_little(self, dataset, args, dataset_name: str):
        """Pairs on which the step loss cannot do what it is for. One step a side that opens with the delimiter, and
        no ``open_ended``: Step-DPO's prompt-prefix form, whose EOS teaches stopping after it (Step-DPO's issue #18).
        Every response one step otherwise: a delimiter the data does not use, the step loss scoring whole solutions.
        Step-DPO's rejected step is the first wrong one: a pairing that scores only the first differing step pushes
        nothing down where that step is labelled right (GSM8K's pairs: 333 of 335 first differ at a right line).
        Unread (<unk>) text; same ids both sides (loss ln 2); steps max_length cuts; most rejected ones *reachable*."""
        if not isinstance(dataset, Dataset) or not len(dataset):
            return
        where, ids = f"StepwiseDPOTrainer: the {dataset_name} dataset", [dataset[f"{s}_ids"] for s in PARTS]
        warn_of_unread_text(self._tokenizer, [p + c + r for p, c, r in zip(*ids)], where, "row")
        if same := [i for i, (c, r) in enumerate(zip(*ids[1:])) if c == r]:
            warn_user(f"{where}'s row {same[0]} (and {len(same) - 1} more) has the same token ids on both sides "
                      "(the tokenizer cannot tell them apart): the pair trains nothing")
        length = args.max_length
        long = [i for i, (p, c, r) in enumerate(zip(*ids)) if length and len(p) + max(len(c), len(r)) > length]
        if long:
            collate, cut_steps = DataCollatorForStepwisePreference(0, length, args.truncation_mode), torch.zeros(2)
            for i in range(0, len(long), 64):  # the steps the collator will mark cut, as it does in training
                batch = collate(list(dataset.select(long[i:i + 64])))
                lost = batch["step_valid"] & ~batch["step_complete"]  # steps; rejected ones labelled wrong
                cut_steps += torch.stack([lost.sum(), (lost & (batch["step_probs"] < 0.5)).chunk(2)[1].sum()])
            warn_user(f"{where}: max_length={length} (truncation_mode={args.truncation_mode!r}) cuts {len(long)} of "
                      f"its {len(dataset)} rows (row {long[0]} first): {cut_steps[0]:.0f} of their steps lose tokens, "
                      f"and the step loss leaves them out ({cut_steps[1]:.0f} rejected steps labelled wrong, never "
                      "pushed down where the pairing scores them). Raise max_length or shorten the rows.")
        wrong = [[p < 0.5 for p in x] for x in dataset["rejected_step_labels"] if x] \
            if "rejected_step_labels" in dataset.column_names else []
        if 2 * (reachable := sum(True in w[:-1] and all(w[w.index(True):]) for w in wrong)) > len(wrong):
            warn_user(f"{where}: {reachable} of {len(wrong)} rejected label lists are wrong at each step after the "
                      "first wrong one. If they say the answer can no longer be reached (*reachable*: a PRM's "
                      "σ(reward), a checker's step_labels), the step loss pushes down right steps after a slip: "
                      "convert them with rewards.mistake_made_here_labels. If instead each of those steps makes a "
                      "mistake of its own (a solution that slips at every step), they are right as they are")
        delimiter, pairing = args.step_delimiter, args.step_pairing
        one_step = [len(c) == 1 and len(r) == 1 for c, r in zip(dataset["chosen_step_probs"],
                                                                dataset["rejected_step_probs"])]
        prefix_form = [i for i, (one, c, r) in enumerate(zip(one_step, dataset["chosen"], dataset["rejected"]))
                       if one and c.startswith(delimiter) and r.startswith(delimiter)]
        unmarked = "open_ended" not in dataset.column_names  # marked rows are partial on purpose
        if unmarked and prefix_form:
            warn_user(f"{where}'s row {prefix_form[0]} (and {len(prefix_form) - 1} more) looks like Step-DPO's "
                      "prompt-prefix form (each side is one step opening with step_delimiter) but there is no "
                      "`open_ended` column: TRL appends EOS to every completion, so the policy learns to stop "
                      "after this step. Mark such rows open_ended=True (data.to_trl_dpo does).")
        elif unmarked and all(one_step):
            warn_user(f"StepwiseDPOTrainer: every response of the {dataset_name} dataset is one step under "
                      f"step_delimiter={delimiter!r}: the step loss scores whole solutions, as DPO's does. Set "
                      "step_delimiter to the one your data's steps are split by.")
        if pairing == "weighted":
            return
        right = sum(0 <= k < len(p) and p[k] >= 0.5
                    for k, p in zip(dataset["first_diff_step"], dataset["rejected_step_probs"]))
        if 2 * right > len(dataset):  # a few are expected (a slip after a right but different step); most is a mistake
            warn_user(f"StepwiseDPOTrainer: in {right} of {len(dataset)} pairs of the {dataset_name} dataset the "
                      f"rejected side's first differing step, the one step_pairing={pairing!r} scores, is labelled "
                      "right (P >= 0.5): the step loss pushes nothing down there. Step-DPO's rejected step is the "
                      "first wrong one: check the labels against the texts, or use step_pairing='weighted'.")

    def _step_settings(self, args) -> dict:
        """What decides a row's step columns (``step_columns``' arguments)."""
        keep_start = args.max_length is not None and args.truncation_mode == "keep_start"
        return dict(tokenizer=self._tokenizer, delimiter=args.step_delimiter, max_steps=args.max_reasoning_steps,
                    pairing=args.step_pairing, max_length=args.max_length if keep_start else None,
                    reward_labels=args.reward_model_labels, context=self._context if args.max_length is None else None)

    def _check_prepared_alike(self, dataset, args, dataset_name):
        """A prepared dataset is reused as it is, so its step columns must be what these settings make: another
        trainer's, with another ``step_pairing``, ``step_delimiter`` or ``max_reasoning_steps``, would train this one
        on its steps (a first-token column under "weighted": one token a pair). The first rows are made again."""
        settings = self._step_settings(args)
        for idx, ex in zip(range(PREPARED_ROWS_CHECKED), dataset):
            again = step_columns({k: v for k, v in ex.items() if k not in STEP_VALUE_COLUMNS}, idx, **settings)
            for key in ("chosen_step_ids", "rejected_step_ids", "first_diff_step"):
                if again[key] != ex[key]:
                    raise ValueError(
                        f"StepwiseDPOTrainer: the {dataset_name} dataset was prepared with other step settings (row "
                        f"{idx}: field {key!r} differs from what step_pairing={args.step_pairing!r}, step_delimiter="
                        f"{args.step_delimiter!r}, max_reasoning_steps={args.max_reasoning_steps} make): give this "
                        "trainer the rows before preparation")

    def _note_step_width(self, dataset):
        if isinstance(dataset, Dataset):
            widest = max((len(p) for c in ("chosen_step_probs", "rejected_step_probs") for p in dataset[c]), default=1)
            self._max_num_steps = max(self._max_num_steps, widest)

    def _add_reward_columns(self, dataset, delimiter: str, dataset_name: str):
        """Score every chosen and rejected response once with the frozen reward model (cached columns). The
        responses go to it as lists of this trainer's steps (``step_delimiter``): a PRM trained with another delimiter
        would split the texts its own way, into another number of steps."""
        learned = step_delimiter_of(self.reward_model) or delimiter
        texts = [] if learned == delimiter else [t for side in ("chosen", "rejected") for t in dataset[side]]
        if not any(delimiter in t for t in texts) and any(learned in t for t in texts):  # sure: Step-DPO became DPO
            raise ValueError(f"StepwiseDPOTrainer: no chosen or rejected response of the {dataset_name} dataset holds "
                             f"step_delimiter={delimiter!r}, so each would be one step, and some hold {learned!r}, the "
                             f"delimiter the reward model learned: pass StepwiseDPOConfig(step_delimiter={learned!r})")
        if learned != delimiter:  # "\n"-split GSM8K under the toy world's default: every solution one step, silently
            warn_user(f"StepwiseDPOTrainer: the reward model learned steps split by {learned!r}, and this trainer "
                      f"splits them by step_delimiter={delimiter!r}: a text without it is one step. Set "
                      f"step_delimiter={learned!r} if your data's steps are split that way.")
        columns, prompts = {}, list(dataset["prompt"])
        steps = {side: [extract_steps(text, delimiter) for text in dataset[side]] for side in ("chosen", "rejected")}
        score, bar = self.reward_model.score_solutions, None if PartialState().is_main_process else False
        for side in ("chosen", "rejected"):
            if isinstance(self.reward_model, ProcessRewardModel):  # batched by length, bar after 2 s; its layout and
                try:  # unread-text warnings, one a call, count all of a side's rows (a subclass may lack side=)
                    chunks = [(0, score(prompts, steps[side], **keywords_taken(score, progress=bar, side=side)))]
                except InputTooLong as err:  # worded from its fields, not the PRM's text; kept for a caller
                    if err.index is None:  # a subclass's own, without them: its text, the side named
                        raise InputTooLong(f"field {side!r}: {err}") from None
                    raise InputTooLong(f"row {err.index}: field {side!r}: the reward model's input (prompt and steps) "
                                       f"is {err.n_tokens} tokens with its tags, longer than max_length "
                                       f"{err.max_length}; leave it out (the reward model's input_lengths(prompts, "
                                       "solutions) finds such rows) or raise its max_length: it is never truncated "
                                       "silently", err.index, err.n_tokens, err.max_length) from None
            else:  # scored as the loop reaches each chunk: a scorer that is not a PRM fails at the first
                chunks = ((i, score(prompts[i:i + SCORER_CHUNK], steps[side][i:i + SCORER_CHUNK])) for i in tqdm(
                    range(0, len(dataset), SCORER_CHUNK), desc=f"Reward model scoring {side} responses",
                    disable=bar is False))
            rewards = []
            for i, scored in chunks:
                bad = next((j for j, r in enumerate(scored) if isinstance(r, (str, bytes)) or
                            not hasattr(r, "__len__")), None)
                if bad is not None:  # e.g. an outcome reward model: one float per solution, not one per step
                    raise ValueError(f"StepwiseDPOTrainer: the reward model scored row {i + bad}'s {side} with "
                                     f"{scored[bad]!r}, not one reward per step: it must be a process reward model")
                rewards += scored
            columns[f"{side}_step_rewards"] = [[float(r) for r in rs] for rs in rewards]
        dataset = dataset.remove_columns([c for c in columns if c in dataset.column_names])  # check_row's Nones
        for name, values in columns.items():
            dataset = dataset.add_column(name, values)
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, *STEP_COLUMNS, *self.extra_columns]))

    # ------------------------------------------------------------------ log-probs: one pass per sequence and model

    @staticmethod
    def _model_inputs(inputs):
        kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "use_cache": False}
        return kwargs, inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)

    def _reference_token_logps(self, model, kwargs, labels):
        """Per-token reference log-probs: the reference model, or the PEFT policy's (``models.reference_adapter``)."""
        adapter = contextlib.nullcontext()
        if self.ref_model is None and is_peft_model(self.model):
            adapter = reference_adapter(self.accelerator.unwrap_model(self.model))
        with torch.no_grad(), contextlib.ExitStack() as restore, adapter:  # no grads, so no checkpointing (as TRL)
            for module in [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]:
                module.gradient_checkpointing = False  # the flag alone: re-enabling adds a grad hook to the embeddings
                restore.callback(setattr, module, "gradient_checkpointing", True)  # only these: every_n_layers' kept
            return model(**kwargs, labels=labels, fused_lm_head=True).log_probs

    def compute_ref_log_probs(self, model, inputs):
        """Precomputed reference (``precompute_ref_log_probs``): per row ``[sequence, step_1, …, step_W]``."""
        kwargs, labels = self._model_inputs(inputs)
        with self.accelerator.autocast():
            tok = self._reference_token_logps(model, kwargs, labels)[:, -(labels.size(1) - 1):]
        steps = step_logps(tok, inputs["step_ids"][:, 1:], self._max_num_steps)
        return torch.cat([tok.sum(1, keepdim=True), steps], dim=1).chunk(2, dim=0)

    def _compute_loss(self, model, inputs, return_outputs):
        args, mode = self.args, "train" if self.model.training else "eval"
        kwargs, labels = self._model_inputs(inputs)
        seq_len = labels.size(1) - 1
        step_ids, num_steps = inputs["step_ids"][:, 1:], inputs["step_probs"].size(1)  # shifted like the labels

        # One forward of the policy and one of the reference over [chosen; rejected]; per-token log-probs are
        # summed per sequence (as DPO) and per step (ρ_k).
        router = {"output_router_logits": True} if self.aux_loss_enabled else {}  # MoE policies, as in TRL
        outputs = model(**kwargs, **router, labels=labels, fused_lm_head=True)
        logps = outputs.log_probs[:, -seq_len:]
        # h = Σ over the kept completion tokens (TRL's DPO sum; Σ_k ρ_k without truncation, unless first_token or
        # first_error took tokens out of the steps)
        seq, steps = logps.sum(1), step_logps(logps, step_ids, num_steps)
        if self.precompute_ref_logps:
            ref = torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]]).to(logps.dtype)
            ref_seq, ref_steps = ref[:, 0], ref[:, 1:1 + num_steps]
        else:
            ref_model = self.ref_model if self.ref_model is not None else self.model
            ref_tok = self._reference_token_logps(ref_model, kwargs, labels)[:, -seq_len:]
            ref_seq, ref_steps = ref_tok.sum(1), step_logps(ref_tok, step_ids, num_steps)
        chosen_logratio, rejected_logratio = (seq - ref_seq).chunk(2)
        chosen_rho, rejected_rho = (steps - ref_steps).chunk(2)

        # Outcome loss, softened by the reward model's aggregated rewards when there are any
        weights = positional_weights(args.step_weights, num_steps, logps.device, logps.dtype)
        rewards = inputs.get("step_rewards")
        chosen_r, rejected_r = (None, None) if rewards is None else aggregate_rewards(
            rewards, args.aggregation_strategy, weights, inputs["step_valid"]).chunk(2)
        outcome = compute_outcome_loss(chosen_logratio, rejected_logratio, args.beta_of_outcome, chosen_r, rejected_r)

        # Step loss: complete steps only (truncated ones are masked), optionally only the first differing step
        mask = inputs["step_complete"]
        if args.step_pairing in ("first_error", "first_token"):
            mask = mask & first_error_mask(inputs["first_diff_step"], num_steps).repeat(2, 1)
        step_loss = self.step_loss(chosen_rho, rejected_rho, *inputs["step_probs"].chunk(2), *mask.chunk(2), weights,
                                   inputs, model)
        loss = args.step_loss_weight * step_loss + args.outcome_loss_weight * outcome.mean()
        if args.sft_loss_weight:  # NLL, one mean over the chosen tokens: TRL's "sft" exactly (RPO's: per solution)
            chosen_tokens = inputs["completion_mask"][:, 1:].chunk(2)[0][:, -seq_len:].bool()
            loss = loss - args.sft_loss_weight * logps.chunk(2)[0][chosen_tokens].mean()
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
        loss = loss + self.extra_loss(model, inputs)

        self._log_metrics(mode, outcome, step_loss, chosen_logratio, rejected_logratio, seq, steps - ref_steps, inputs,
                          chosen_r, rejected_r, mask)
        if return_outputs:
            with torch.no_grad():
                outputs = model(**kwargs)
        return (loss, outputs) if return_outputs else loss

    def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                  inputs, model) -> torch.Tensor:
        """The step loss, a scalar (the loss adds ``step_loss_weight`` times it; logged as ``loss/step``): the hook
        for a variant. Per pair (rows of ``[pairs, steps]``): the step log-ratios ``ρ_k`` of the batch's one pass,
        the labels ``p_k``, the masks of the steps to score (complete ones, as ``step_pairing`` says); the weights
        ``a_k`` (``[steps]``); the collated batch; the policy trained (for a variant that reads it in its own pass)."""
        per_pair = compute_step_loss(chosen_rho, rejected_rho, chosen_p, rejected_p, self.args.step_beta,
                                     chosen_mask, rejected_mask, weights)
        active = (chosen_mask.any(1) | rejected_mask.any(1)).to(per_pair.dtype)  # pairs with a step to train
        return (per_pair * active).sum() / active.sum().clamp(min=1)

    def extra_loss(self, model, inputs) -> torch.Tensor | float:
        """A term added to the loss last, 0 here: the hook for one of a variant's own (e.g. a pass of ``model``)."""
        return 0.0

    # ------------------------------------------------------------------ metrics

    _PAIR_METRICS = ("loss/outcome", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                     "logps/chosen", "logps/rejected", "reward_model/weight")

    def _log_metrics(self, mode, outcome, step_loss, chosen_logratio, rejected_logratio, seq, rho, inputs, chosen_r,
                     rejected_r, scored):
        """Per-pair values, and step counts over the steps the step loss scores, gathered in two collectives. Each
        pair's value is kept (not its batch's mean): TRL's ``log`` averages the list, so a short last eval batch
        weighs by its pairs, and the figures do not move with ``per_device_eval_batch_size``."""
        args = self.args
        chosen_rw, rejected_rw = args.beta_of_outcome * chosen_logratio, args.beta_of_outcome * rejected_logratio
        weight = torch.sigmoid(chosen_r - rejected_r) if chosen_r is not None else torch.ones_like(chosen_rw)
        per_pair = torch.stack([outcome, chosen_rw, rejected_rw, (chosen_rw > rejected_rw).to(outcome.dtype),
                                chosen_rw - rejected_rw, *seq.chunk(2), weight], 1).detach().float()
        complete, valid, label = inputs["step_complete"], inputs["step_valid"], inputs["step_probs"] >= 0.5
        pred = (args.step_beta * rho.detach()) > 0  # the implicit step reward says "correct"
        per_batch = torch.stack([step_loss.detach().float(), (pred & label & scored).sum(),
                                 (pred & ~label & scored).sum(), (~pred & label & scored).sum(),
                                 (~pred & ~label & scored).sum(), (valid & ~complete).sum(),
                                 (valid & ~complete & ~label).chunk(2)[1].sum()]).float()
        pairs, batch = self.accelerator.gather(per_pair).T.tolist(), self.accelerator.gather(per_batch[None]).cpu()
        for name, values in zip(self._PAIR_METRICS, pairs):
            if name != "reward_model/weight" or chosen_r is not None:
                self._metrics[mode][name].extend(values)
        self._metrics[mode]["loss/step"].append(batch[:, 0].mean().item())
        counts = batch[:, 1:].sum(0)  # tp, fp, fn, tn, truncated, rejected steps labelled wrong and truncated
        self._step_counts[mode] += counts[:5]  # the last only counts towards the end-of-training warning
        if mode == "train":
            self.num_truncated_steps += int(counts[4])
            self.num_wrong_steps_cut += int(counts[5])

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        tp, fp, fn, tn, truncated = self._step_counts[mode].tolist()
        if tp + fp + fn + tn + truncated > 0:
            if self.args.evaluate_step_accuracy and tp + fp + fn + tn > 0:
                metric = self.args.step_accuracy_metric
                value = {"accuracy": (tp + tn) / (tp + fp + fn + tn),
                         "balanced_accuracy": 0.5 * (tp / max(tp + fn, 1) + tn / max(tn + fp, 1)),
                         "f1": 2 * tp / max(2 * tp + fp + fn, 1)}[metric]
                self._metrics[mode]["step_accuracy" if metric == "accuracy" else f"step_{metric}"] = [value]
            self._metrics[mode]["steps/truncated"] = [truncated]
            if mode == "train":  # a training run's count: evaluation's own is steps/truncated
                self._metrics[mode]["steps/truncated_total"] = [float(self.num_truncated_steps)]
        self._step_counts[mode].zero_()
        super().log(logs, start_time)

    # ------------------------------------------------------------------ saving and inspection

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Atomic (``atomic.save_atomic``: a failed save leaves the previous one whole, never new weights beside an old
        config), keeping the Trainer's own outputs there (``atomic.TRAINER_OUTPUTS``); a folder of other files is
        refused. The Trainer's checkpoints (``_internal_call``) are written in place: their optimizer state follows."""
        output_dir = output_dir or self.args.output_dir
        if not _internal_call and self.args.should_save:  # the other processes only join any gather the save needs
            save_atomic(output_dir, lambda tmp: self.save_model(tmp, _internal_call=True), keep=TRAINER_OUTPUTS,
                        owned=("stepwise_config.json",), where="StepwiseDPOTrainer.save_model")
            if self.args.push_to_hub:  # Trainer.save_model's push, once the folder holds the new save
                self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)
            return
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            # a LoRA policy names its base so that it loads elsewhere, and how it was loaded (4-bit or not)
            write_portable_adapter_config(output_dir, self.model)
            write_json_atomic(os.path.join(output_dir, "stepwise_config.json"), self.args.stepwise_dict())

    def get_step_rewards(self, prompts, responses, batch_size: int = 8):
        """Implicit step rewards ``β_step·ρ_k`` against the reference; none kept: ``β_step·log π`` (it warns)."""
        return get_step_rewards(self.accelerator.unwrap_model(self.model), self._tokenizer, prompts, responses,
                                ref_model=self.ref_model, beta=self.args.step_beta, delimiter=self.args.step_delimiter,
                                max_reasoning_steps=self.args.max_reasoning_steps, batch_size=batch_size)


@torch.no_grad()
def get_step_rewards(model, tokenizer, prompts, responses, ref_model=None, beta: float = 0.1,
                     delimiter: str = DEFAULT_DELIMITER, max_reasoning_steps: int | None = None,
                     batch_size: int = 8) -> list[list[float]]:
    """Per-step implicit DPO rewards ``β·(log π(s_k|x,s_<k) − log π_ref(s_k|x,s_<k))``, one list per response.

    The reference is ``ref_model``, else the PEFT model's ``"ref"`` adapter (TRL's frozen copy of an adapter
    trained before, the reference its loss used) or its adapter disabled; with neither, the rewards are
    ``β·log π(s_k|x,s_<k)``, with a warning. A single ``prompt``/``response`` string gives a single list. The
    text is tokenized as written, with no BOS or EOS: the last step's reward lacks the EOS that training adds to it.
    Raises ValueError for bad arguments (types, lengths, blank texts, beta <= 0) and a row past the model's context."""
    single = isinstance(responses, str)
    if isinstance(prompts, str) != single:  # else list("ab") would score two one-character prompts
        raise ValueError(f"get_step_rewards: `prompts` and `responses` must both be str (one response) or both "
                         f"lists, got {type(prompts).__name__} and {type(responses).__name__}")
    positive_int(batch_size, "`batch_size`", "get_step_rewards")
    if finite_number(beta, "`beta`", "get_step_rewards") <= 0:  # NaN: NaN rewards; < 0: every sign flipped
        raise ValueError(f"get_step_rewards: `beta` must be > 0, got {beta!r}")
    prompts, responses = ([prompts], [responses]) if single else (list(prompts), list(responses))
    if len(prompts) != len(responses):
        raise ValueError(f"get_step_rewards: {len(prompts)} prompts but {len(responses)} responses")
    for j, (prompt, response) in enumerate(zip(prompts, responses)):
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise ValueError(f"get_step_rewards: prompt and response {j} must be str, got {type(prompt).__name__} "
                             f"and {type(response).__name__} (pass problem.prompt, never a problem)")
        for name, text in (("prompt", prompt), ("response", response)):
            if not text.strip():
                raise ValueError(f"get_step_rewards: {name} {j} is empty (no step to score, or no context for one)")
    sizes = [getattr(m.config, "max_position_embeddings", None) for m in (model, ref_model) if m is not None]
    context = min((n for n in sizes if n), default=None)
    if ref_model is None and not is_peft_model(model):
        warn_user("get_step_rewards: no reference (no ref_model, and the model has no adapter to disable): the "
                  "rewards are β·log π(s_k|x,s_<k), not log-ratios against a reference")
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        rows, step_ids, counts = [], [], []
        for j, (prompt, response) in enumerate(zip(prompts[i:i + batch_size], responses[i:i + batch_size]), i):
            input_ids, ids = token_step_ids(response, tokenizer, delimiter, max_reasoning_steps, prompt=prompt)
            if context is not None and len(input_ids) > context:  # past the positions the model knows
                raise ValueError(f"get_step_rewards: prompt + response {j} has {len(input_ids)} tokens, more than the "
                                 f"model's context of {context} (max_position_embeddings)")
            rows.append(input_ids)
            step_ids.append(ids)
            counts.append(len(step_spans(response, delimiter, max_reasoning_steps)))
        input_ids = pad([torch.tensor(r) for r in rows], padding_value=tokenizer.pad_token_id or 0).to(device)
        attention_mask = pad([torch.ones(len(r), dtype=torch.long) for r in rows]).to(device)
        ids = pad([torch.tensor(s) for s in step_ids], padding_value=-1).to(device)[:, 1:]
        num_steps = max(1, max(counts))

        def logps(m):
            logits = m(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
            # a row at a time in float32: a batch's logits over a 150k-token vocabulary are GBs more in float32
            return torch.stack([selective_log_softmax(row.float(), targets)
                                for row, targets in zip(logits, input_ids[:, 1:])])

        rho = step_logps(logps(model), ids, num_steps)
        if ref_model is not None:
            rho = rho - step_logps(logps(ref_model), ids, num_steps)
        elif is_peft_model(model):
            with reference_adapter(model):
                rho = rho - step_logps(logps(model), ids, num_steps)
        out += [row[:n] for row, n in zip((beta * rho).tolist(), counts)]
    return out[0] if single else out
