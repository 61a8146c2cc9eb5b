"""On-policy rounds of preference training with a PRM's step labels: DPO, Stepwise DPO and NLL only (RFT).

Each round (Iterative RPO, Pang et al. 2024, arXiv:2404.19733):

1. **sample** ``K`` solutions per training problem from the current policies (``sampler="pooled"``: the K are
   shared out among the methods' policies, so every method trains on the same samples; in round 1 all
   policies are the start policy);
2. **label and pair** (``prm_pairs``): every step with the trained PRM, every final answer with
   ``problem.is_correct``, no gold step checker; whole-solution pairs and Step-DPO pairs (Lai et al. 2024,
   arXiv:2406.18629: the PRM's first wrong step, resampled by the policy until the PRM accepts it);
3. **train** each method from its own previous policy (the reference: that policy at the start of the round) on
   the same pairs, steps and seed: DPO + NLL (TRL's ``DPOTrainer``, loss ``["sigmoid", "sft"]``), Stepwise DPO
   + the same NLL (``StepwiseDPOTrainer`` with the PRM's step probabilities; ``step_pairing="first_error"`` on
   shared-prefix pairs is exactly Step-DPO) and NLL only (loss ``["sft"]`` on the chosen side: rejection-sampling
   fine-tuning);
4. **evaluate** every method on held-out problems, greedy and sampled, with Stepwise DPO's accuracy minus each
   other method's and its 95% interval (``stepwise_minus``).

How the rounds are printed and recorded: ``onpolicy_report``; a run that goes on from the rounds it saved:
``onpolicy_resume``.
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
import random
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

from accelerate.utils import is_peft_model
from trl import DPOConfig, DPOTrainer

from .. import generation
from ..atomic import save_atomic, write_json_atomic
from ..checks import documented_fields, finite_number, list_of, positive_int
from ..data import PREFERENCE, dataset_of
from ..models import (default_bf16, prepare_adapters, quiet_deprecated_checkpointing_read, resolve_device,
                      resolve_dtype, trainer_precision, write_portable_adapter_config)
from ..rewards import ProcessRewardModel, sigmoid
from ..stepwise_data import STEP_PAIRINGS
from ..trainer import CHECKPOINTING_FIELD, StepwiseDPOConfig, StepwiseDPOTrainer
from . import budget, paired_stats, policy_eval, reward_reports, runs
from .colab import drop_log_printer
from .fresh_rejected_pairs import (ExpectedRejectedStepDPOTrainer, FreshRejectedStepDPOTrainer,
                                   TopRivalStepDPOTrainer)
from .output_layer_pairs import STEP_GRADIENTS, OutputLayerStepDPOTrainer
from .prm_pairs import (CHOSEN_RULES, REJECTED_PROBS, Sample, count_lucky, count_mislabels, label_samples,
                        mirrored_negatives, share_out, solution_pairs, step_agreement, step_negatives, step_pairs)
from .profiles import ONPOLICY_PROTOCOLS, load_profile_model, tiny_model_folder, written_as_path
from .rejected_prefix_nll import OPENING, RejectedPrefixNLLStepDPOTrainer, opening_steps
from .uncorrected_unlikelihood import UncorrectedUnlikelihoodTrainer
from .onpolicy_report import METHODS
from .onpolicy_resume import SavedRound, load_round_policy, rounds_settings, save_rounds, saved_rounds
from .tiny_models import load_tiny_base, missing_tiny_model_message

PAIR_KINDS = ("solution", "step", "both")
MIRRORED = ("no", "add", "instead")
STEP_REJECTED = ("round", "fresh", "expected", "top")
# Set on each policy a round trains (its value: that round's number), before its training starts, so that an
# interrupted training counts too: run_rounds starts at round 1 from the start policy, and refuses policies with it
TRAINED_IN_ROUND = "stepdpo_onpolicy_round"
# The columns a round gives the "stepwise_dpo" method's trainer (make_trainer), whichever pairs it built
ROUND_COLUMNS = ("prompt", "chosen", "rejected", "chosen_step_labels", "rejected_step_labels", "open_ended")


# ----------------------------------------------------------------------------- training

@documented_fields
@dataclass
class TrainSettings:
    """What every method shares in a round (equal data, steps and seed), and Stepwise DPO's own knobs."""

    beta: float = field(default=0.1, metadata={"help": "β of DPO's and Stepwise DPO's losses (its step_beta too)."})
    sft_weight: float = field(default=5.0, metadata={
        "help": "Weight of the NLL on the chosen solutions, in every method (NLL only: 1 when 0)."})
    outcome_weight: float = field(default=0.0, metadata={"help": "Stepwise DPO's outcome (DPO) loss weight."})
    step_pairing: str = field(default="weighted", metadata={"help": f"Stepwise DPO's step_pairing: {STEP_PAIRINGS}."})
    step_weight: float = field(default=1.0, metadata={
        "help": "Stepwise DPO's step-loss weight (the NLL's is sft_weight)."})
    rejected_sft_weight: float = field(default=0.0, metadata={
        "help": "> 0: Stepwise DPO adds the NLL of each rejected solution's PRM-accepted opening, the right steps RFT "
                "drops with the wrong answer (a diagnostic; stepdpo_lite/tutorial/rejected_prefix_nll.py)."})
    uncorrected_weight: float = field(default=0.0, metadata={
        "help": "> 0: Stepwise DPO adds the unlikelihood of the wrong step at each state where no correction was found "
                "(no pair, nothing for RFT), by this weight; needs step_gradient 'output_layer' (a diagnostic; "
                "stepdpo_lite/tutorial/uncorrected_unlikelihood.py)."})
    uncorrected_gradient: str = field(default="output_layer", metadata={
        "help": "The uncorrected_weight term's path: 'output_layer' (its gradient stops at the final hidden state, as "
                "the protocol's step loss) or 'all' (every weight the policy trains)."})
    step_gradient: str = field(default="all", metadata={
        "help": "'output_layer': Stepwise DPO's step loss stops its gradient at the final hidden state, so it moves "
                "the output layer only (and the input embeddings tied to it) (the tiny profile's protocol, first a "
                "diagnostic; stepdpo_lite/tutorial/output_layer_pairs.py); 'all': every weight the policy trains."})
    step_rejected: str = field(default="round", metadata={
        "help": "'round': the rejected sides the round sampled; 'fresh': Stepwise DPO's rejected token is drawn "
                "again from the current policy at every step (a diagnostic; "
                "stepdpo_lite/tutorial/fresh_rejected_pairs.py); 'expected': that draw's expectation over the "
                "vocabulary, exactly; 'top': the policy's strongest wrong token, weighed by its chance of a slip."})
    trainer_class: type | None = field(default=None, metadata={
        "help": "A StepwiseDPOTrainer subclass of one's own (another step loss, say) that the 'stepwise_dpo' method "
                "trains with, made as the default is (model, ref_model, processing_class, train_dataset, args), on "
                f"the round's columns {ROUND_COLUMNS}: its extra_columns must be among them, and its step_loss take "
                "the 9 arguments (both checked here, before a round samples); None: the kit's, as above."})
    args: dict = field(default_factory=dict, metadata={
        "help": "DPOConfig/StepwiseDPOConfig fields: batch size, lr, max_steps, ... (StepwiseDPOConfig's own: "
                "Stepwise DPO only); not those these settings, make_trainer and run_round set (a beta other than "
                "TrainSettings.beta, step_beta, step_pairing, the loss weights, loss_type, output_dir, a seed or "
                "data_seed other than run_round's): refused."})

    def __post_init__(self):
        if self.step_pairing not in STEP_PAIRINGS:  # else refused only after a round's sampling and DPO's training
            raise ValueError(f"step_pairing must be one of {STEP_PAIRINGS}, got {self.step_pairing!r}")
        if self.step_gradient not in STEP_GRADIENTS:
            raise ValueError(f"step_gradient must be one of {STEP_GRADIENTS}, got {self.step_gradient!r}")
        if self.step_gradient == "output_layer" and self.step_pairing != "first_token":
            raise ValueError("step_gradient='output_layer' needs step_pairing='first_token' (one hidden state a side), "
                             f"got {self.step_pairing!r}")
        if self.step_rejected not in STEP_REJECTED:
            raise ValueError(f"step_rejected must be one of {STEP_REJECTED}, got {self.step_rejected!r}")
        # else DPO and NLL only trained on a NaN, negative or bool (True: 1) value before StepwiseDPOConfig refused
        # it, and without Stepwise DPO in the round nothing did
        if finite_number(self.beta, "beta", "TrainSettings") <= 0:
            raise ValueError(f"TrainSettings: beta must be > 0, got {self.beta}")
        weights = {name: finite_number(getattr(self, name), name, "TrainSettings")
                   for name in ("sft_weight", "outcome_weight", "step_weight")}
        if min(weights.values()) < 0 or weights["outcome_weight"] + weights["step_weight"] == 0:
            raise ValueError(f"TrainSettings: sft_weight, outcome_weight and step_weight (notebook 04: "
                             f"ONPOLICY_SFT_WEIGHT, OUTCOME_WEIGHT, ONPOLICY_STEP_WEIGHT) must be >= 0, and "
                             f"outcome_weight and step_weight not both 0, got {weights}")
        if finite_number(self.rejected_sft_weight, "rejected_sft_weight", "TrainSettings") < 0:
            raise ValueError(f"TrainSettings: rejected_sft_weight must be >= 0 (0: none), got "
                             f"{self.rejected_sft_weight}")
        if self.rejected_sft_weight and (self.step_pairing == "first_token" or self.step_gradient != "all" or
                                         self.step_rejected != "round"):
            raise ValueError("rejected_sft_weight needs the plain step loss on whole steps: step_pairing 'weighted' or "
                             f"'first_error', step_gradient 'all', step_rejected 'round'; got {self.step_pairing!r}, "
                             f"{self.step_gradient!r}, {self.step_rejected!r}")
        if finite_number(self.uncorrected_weight, "uncorrected_weight", "TrainSettings") < 0 or (
                self.uncorrected_weight and self.step_gradient != "output_layer"):
            raise ValueError(f"TrainSettings: uncorrected_weight must be >= 0 (0: none) and needs step_gradient "
                             f"'output_layer', got {self.uncorrected_weight} and {self.step_gradient!r}")
        if self.uncorrected_gradient not in STEP_GRADIENTS or (self.uncorrected_gradient != "output_layer" and
                                                               not self.uncorrected_weight):  # else set for nothing
            raise ValueError(f"uncorrected_gradient must be one of {STEP_GRADIENTS} ('all' with an uncorrected_weight "
                             f"above 0), got {self.uncorrected_gradient!r}")
        if self.step_rejected != "round" and (self.step_pairing != "first_token" or self.step_gradient != "all"):
            raise ValueError(f"step_rejected={self.step_rejected!r} needs step_pairing='first_token' (one token to "
                             f"redraw) and step_gradient='all', got {self.step_pairing!r}, {self.step_gradient!r}")
        if self.trainer_class is not None and not (isinstance(self.trainer_class, type) and
                                                   issubclass(self.trainer_class, StepwiseDPOTrainer)):
            raise ValueError(f"TrainSettings: trainer_class must be a subclass of StepwiseDPOTrainer or None, got "
                             f"{self.trainer_class!r:.60}")
        if self.trainer_class is not None:  # else refused by the trainer only after a round's sampling and DPO's
            self.trainer_class.check_step_loss()  # training, which marked the DPO policy trained (a rerun refused)
            listed = list_of(self.trainer_class.extra_columns, f"{self.trainer_class.__name__}.extra_columns", "names")
            if missing := [c for c in listed if c not in ROUND_COLUMNS]:
                raise ValueError(f"TrainSettings: trainer_class {self.trainer_class.__name__}.extra_columns lists "
                                 f"{missing}, which a round's rows lack: its trainer gets the columns {ROUND_COLUMNS}")
        if self.trainer_class is not None and (self.step_gradient, self.step_rejected, self.rejected_sft_weight) != (
                "all", "round", 0):  # each picks a trainer of the kit's: one of them would be dropped, silently
            raise ValueError(f"TrainSettings: trainer_class {self.trainer_class.__name__} replaces the trainers that "
                             "step_gradient, step_rejected and rejected_sft_weight pick: leave them at 'all', 'round' "
                             "and 0, or subclass the trainer they pick")
        if not isinstance(self.args, Mapping):  # else a TypeError in make_trainer, after a round's sampling
            raise ValueError(f"TrainSettings: args must be a dict of DPOConfig fields, got {self.args!r:.60}")
        unknown = sorted(set(self.args) - {f.name for f in dataclasses.fields(StepwiseDPOConfig) if f.init})
        if unknown:  # a typo was a TypeError in make_trainer, after a round's sampling
            raise ValueError(f"TrainSettings: args {unknown} are no DPOConfig or StepwiseDPOConfig fields")
        # make_trainer sets these itself: args' value was replaced without a word (beta, output_dir) or clashed with
        # TypeError after a round's sampling; an args beta equal to TrainSettings.beta (notebook 04's) is harmless
        owned = dict(beta="beta", step_beta="beta", step_pairing="step_pairing", step_loss_weight="step_weight",
                     outcome_loss_weight="outcome_weight", sft_loss_weight="sft_weight", loss_weights="sft_weight")
        owned = {k: f"TrainSettings.{v}" for k, v in owned.items()} | dict(
            output_dir="make_trainer's (run_round's) output_dir", loss_type="the method")
        key = next((k for k in owned if k in self.args and (k != "beta" or self.args[k] != self.beta)), None)
        if key is not None:
            raise ValueError(f"TrainSettings: args[{key!r}] = {self.args[key]!r} would be replaced by (or clash with) "
                             f"what make_trainer sets from {owned[key]}: set that instead")

    def check_policy(self, model) -> None:
        """What the Stepwise DPO variants need of its policy, checked before a round samples and trains the others:
        ``step_rejected="fresh"``, ``"expected"`` or ``"top"`` a frozen reference copy (a fully fine-tuned policy),
        ``step_gradient="output_layer"`` a trainable output layer."""
        if self.step_rejected != "round" and (is_peft_model(model) or self.args.get("precompute_ref_log_probs")):
            raise ValueError(f"step_rejected={self.step_rejected!r} needs a fully fine-tuned policy (its reference "
                             "scores every token the policy may write) and precompute_ref_log_probs off; this policy "
                             "has a PEFT adapter or the reference is precomputed")
        if self.step_gradient == "output_layer":
            OutputLayerStepDPOTrainer.check_policy(model)


def protocol(name: str, profile=None, outcome_weight: float = 0.0, **overrides) -> dict:
    """``profiles.ONPOLICY_PROTOCOLS[name]``, each field in ``overrides`` that is not None replacing the protocol's
    (notebook 04's ``ONPOLICY_*`` knobs: None keeps the protocol's value). Checked up front, not after notebook 04's
    one-round runs: the fields together (``TrainSettings``) and with ``outcome_weight``, the Stepwise DPO outcome
    weight the rounds take beside them (notebook 04's ``OUTCOME_WEIGHT``: a step weight 0 needs it above 0), and with
    ``profile`` that its start policy can train by them."""
    if name not in ONPOLICY_PROTOCOLS:
        raise ValueError(f"unknown on-policy protocol {name!r}: choose one of {sorted(ONPOLICY_PROTOCOLS)}")
    unknown = sorted(set(overrides) - set(ONPOLICY_PROTOCOLS[name]))
    if unknown:
        raise ValueError(f"protocol: {unknown} are not fields of a protocol "
                         f"({sorted(ONPOLICY_PROTOCOLS[name])})")
    chosen = ONPOLICY_PROTOCOLS[name] | {k: v for k, v in overrides.items() if v is not None}
    TrainSettings(**chosen, outcome_weight=outcome_weight)  # "output_layer" with step_pairing "first_error": refused
    if profile is not None and chosen["step_gradient"] == "output_layer" and starts_with_lora(profile):
        # the advice that fixes it: the protocol's own output layer, or an override of a protocol that has none
        fix = ("use the 'first_error' protocol (notebook 04: ONPOLICY_PROTOCOL; the script: --protocol)"
               if ONPOLICY_PROTOCOLS[name]["step_gradient"] == "output_layer" else
               "leave step_gradient at the protocol's 'all' (notebook 04: ONPOLICY_STEP_GRADIENT = None; the script: "
               "no --step-gradient)")
        raise ValueError(f"protocol {name!r}: step_gradient='output_layer' trains only the policy's output layer, and "
                         f"profile {profile.name!r} trains a LoRA adapter, whose output layer is frozen: {fix}")
    return chosen


def starts_with_lora(profile) -> bool:
    """Whether ``start_policy`` gives ``profile`` a LoRA adapter (the GPU profiles' QLoRA) rather than a fully
    fine-tuned model, whatever its task: an unquantized base (``quantization=None``) in a folder that holds a tiny
    base this kit trained (the toy world's, or one trained on your own task, docs/own_task.md; its marker is
    ``training_log.json``, ``profiles.tiny_model_folder``) is fully fine-tuned (``load_tiny_base``); a 4-bit base, a
    Hub id, or a local copy of an LLM (e.g. in 16 bits) gets a fresh adapter (``load_profile_model``).

    An unquantized base whose name is written as a path (``profiles.written_as_path``: absolute, opening with ".",
    "~", "data/" or "runs/", or with two "/"; an "owner/name" Hub id is not one) and is not there is a
    FileNotFoundError naming the path and what writes it: a missing ``data/tiny-base`` (a pip-installed package)
    was taken for a Hub id, and ``protocol`` refused its protocol as "trains a LoRA adapter" before the loader said
    "no such folder"."""
    if profile.quantization is not None:
        return True
    name = profile.model_name
    if written_as_path(name) and not Path(name).expanduser().exists():
        where = Path(name).expanduser().absolute()
        raise FileNotFoundError(f"the {profile.name} profile's policy base (model_name): " + missing_tiny_model_message(
            name if str(where) == name else f"{name} ({where})", also=", or point model_name at a tiny base of "
            "your own (tiny_base.fine_tune_base writes one: docs/own_task.md)"))
    return not tiny_model_folder(name)


def _dataset(rows, columns):
    """``rows`` as a Dataset of ``columns``: every column that any row holds, None where a row lacks it
    (``Dataset.from_list`` takes the first row's keys and drops the rest silently). A row without ``open_ended`` is
    not open-ended; one without step labels that other rows have is refused by ``StepwiseDPOTrainer``."""
    return dataset_of([{c: r[c] for c in columns if c in r} for r in rows], [])


def make_trainer(method: str, model, tokenizer, rows: Sequence[dict], settings: TrainSettings, output_dir: str,
                 ref_model=None, uncorrected: Sequence[dict] = ()):
    """A trainer for one method on ``rows`` (see the module docstring). For a fully fine-tuned policy pass its
    frozen copy as ``ref_model`` (``policy_reference``); a PEFT policy needs none (TRL keeps a copy of a trained
    adapter as the "ref" adapter, and a fresh adapter's reference is the adapter disabled: ``prepare_adapters``).
    A PEFT policy's trainable weights stay as they were, in float32 (``prepare_adapters``): TRL rounds a 4-bit
    model's to bfloat16 as it builds a trainer, and a round's policy would start off its reference.
    ``uncorrected``: the round's states without a correction (``step_pairs(uncorrected=...)``), for
    ``settings.uncorrected_weight``."""

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    common = dict(settings.args, output_dir=output_dir, beta=settings.beta)
    if common.get("bf16") is None and not common.get("fp16"):  # one precision for all methods (TRL's DPOConfig
        common["bf16"] = default_bf16(common.get("use_cpu", False))  # would turn bf16 on, on a CPU too)
    if method == "stepwise_dpo":
        reads = "open_ended" in getattr(settings.trainer_class, "extra_columns", ())
        if reads:  # a column the trainer_class reads (TrainSettings allows it), in every row: False where none
            rows = [dict(r, open_ended=bool(r.get("open_ended"))) for r in rows]
        open_ended = reads or any(r.get("open_ended") for r in rows)
        data = _dataset(rows, [c for c in ROUND_COLUMNS if c != "open_ended" or open_ended])
        args = StepwiseDPOConfig(step_beta=settings.beta, step_loss_weight=settings.step_weight,
                                 outcome_loss_weight=settings.outcome_weight, sft_loss_weight=settings.sft_weight,
                                 step_pairing=settings.step_pairing, **common)
        cls = settings.trainer_class or (
            OutputLayerStepDPOTrainer if settings.step_gradient == "output_layer" else
            FreshRejectedStepDPOTrainer if settings.step_rejected == "fresh" else
            ExpectedRejectedStepDPOTrainer if settings.step_rejected == "expected" else
            TopRivalStepDPOTrainer if settings.step_rejected == "top" else StepwiseDPOTrainer)
        if settings.rejected_sft_weight:  # an open-ended row's opening is in its prompt: none left to train
            openings = [0 if r.get("open_ended") else opening_steps(r, i) for i, r in enumerate(rows)]
            data = data.add_column(OPENING, openings)
            cls = partial(RejectedPrefixNLLStepDPOTrainer, rejected_sft_weight=settings.rejected_sft_weight)
        if settings.uncorrected_weight:  # TrainSettings: with the output-layer step loss only
            cls = partial(UncorrectedUnlikelihoodTrainer, negatives=uncorrected,
                          uncorrected_weight=settings.uncorrected_weight,
                          uncorrected_gradient=settings.uncorrected_gradient)
        trainer = cls(model=model, ref_model=ref_model, processing_class=tokenizer, train_dataset=data, args=args)
    else:
        if any(r.get("open_ended") for r in rows):
            raise ValueError(f"{method}: TRL's DPOTrainer appends EOS to every completion; give it the full form of "
                             "step pairs (step_pair_rows(form='full')), not open-ended one-step completions")
        # NLL only: the same NLL weight (with none, weight 1: under Adam a lone loss's scale barely matters)
        loss = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, settings.sft_weight]) if method == "dpo" else \
            dict(loss_type=["sft"], loss_weights=[settings.sft_weight or 1.0])
        dpo_fields = {f.name for f in dataclasses.fields(DPOConfig)}  # StepwiseDPOConfig's own were a TypeError
        trainer = DPOTrainer(model=model, ref_model=ref_model, processing_class=tokenizer, train_dataset=_dataset(
            rows, PREFERENCE), args=DPOConfig(**loss, **{k: v for k, v in common.items() if k in dpo_fields}))
        prepare_adapters(trainer)  # float32 LoRA weights, a trained adapter's exact ones (StepwiseDPOTrainer's do)
    drop_log_printer(trainer)  # a round prints its own summary; the logs stay in trainer.state.log_history
    return trainer


def policy_reference(model):
    """The frozen reference for a round: a copy of a fully fine-tuned policy; None for a PEFT policy."""
    if is_peft_model(model):
        return None
    return copy.deepcopy(model).eval()


def release_reference(model) -> None:
    """Drop the "ref" adapter TRL added to a PEFT policy, so that the next round can add a fresh copy."""
    if hasattr(model, "peft_config") and "ref" in model.peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")


def start_policy(profile, seed: int = 0):
    """``(model, tokenizer)``: a fresh copy of the policy every method of notebook 04 starts from. The toy world's
    tiny base is fully fine-tuned (it has 0.9 M parameters); a GPU profile's is its 4-bit base with a fresh LoRA
    adapter (QLoRA), whose initial weights are drawn from ``seed``, so that every method starts from the same
    adapter. Padding on the right, as TRL's trainers pad."""
    if starts_with_lora(profile):
        model, tokenizer = load_profile_model(profile, lora=True, lora_seed=seed)
    else:
        model, tokenizer = load_tiny_base(profile.model_name, device=profile.device)
    tokenizer.padding_side = "right"
    return model, tokenizer


def preference_batch_size(profile, batch_size: int | None = None) -> int:
    """Pairs per device step of notebook 04's preference runs: ``batch_size`` when given (its ``BATCH_SIZE``); else
    the profile's ``dpo_batch_size`` (16 on the tiny profile, whose ``train_batch_size`` of 32 is its reward models'
    batch); else its ``train_batch_size`` (a GPU profile's is sized to its memory)."""
    if batch_size is not None:
        return positive_int(batch_size, "batch_size", "preference_batch_size")
    return profile.dpo_batch_size if profile.dpo_batch_size is not None else profile.train_batch_size


def optimizer_steps(n_rows: int, epochs: float, batch_size: int, accumulation_steps: int = 1) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_rows`` rows, ``batch_size`` rows a device step and
    ``accumulation_steps`` device steps an optimizer step: ``epochs * n_rows`` rows in whole steps, rounded down, and
    at least one, so that a handful of rows still trains. The trainer's loader keeps a last, partial batch (the
    training arguments leave ``dataloader_drop_last`` off), so where the batch does not divide the rows each pass
    takes one smaller step and these steps cover a little less than ``epochs`` passes (570 pairs in batches of 16,
    2 epochs: 71 steps, 1,130 rows). Notebook 04 fixes its runs' ``max_steps`` with it: every method then takes the
    same number of steps, where each trainer's own epoch count would round its last batch its own way."""
    positive_int(n_rows, "n_rows", "optimizer_steps")  # 0 rows made one step of nothing: a trainer's error, later
    positive_int(batch_size, "batch_size", "optimizer_steps")
    positive_int(accumulation_steps, "accumulation_steps", "optimizer_steps")
    if finite_number(epochs, "epochs", "optimizer_steps") <= 0:  # 0 or -1 epochs: one step, without a word
        raise ValueError(f"optimizer_steps: epochs must be > 0, got {epochs!r}")
    rows = int(round(epochs * n_rows, 6))  # 0.29 * 100 is 28.999999999999996: int() alone lost a row, and a step
    return max(1, rows // (batch_size * accumulation_steps))


def training_args(profile, *, batch_size: int, learning_rate: float, max_steps: int, beta: float,
                  seed: int = 0) -> dict:
    """The ``DPOConfig`` fields every run of notebook 04 shares (``StepwiseDPOConfig`` takes them too): the same
    batch, learning rate, steps, β and seed for every method, so that only the loss differs; the on-policy rounds
    take them with their own ``max_steps`` (``TrainSettings.args``). A constant learning rate without warmup;
    about 20 logged points a run, for the training curves; no checkpoints (the policies are saved once trained,
    ``save_policies``). The precision matches the profile's compute dtype on this machine
    (``models.trainer_precision``: bf16, or fp16 on a T4; neither on a CPU). A progress bar unless the profile's
    ``dpo_progress_bar`` is off (the tiny profile's: a run takes seconds, and the training curves show its logs)."""
    device = resolve_device(profile.device)  # the profile's, where start_policy put the policy (the tiny profile's
    on_cpu = device == "cpu"                 # "cpu" trained on a GPU when there was one, after sampling on the CPU)
    precision = trainer_precision(resolve_dtype(profile.dtype, device), device)
    return dict(per_device_train_batch_size=batch_size, gradient_accumulation_steps=profile.gradient_accumulation_steps,
                learning_rate=learning_rate, max_steps=max_steps, beta=beta, max_length=profile.max_length,
                lr_scheduler_type="constant", warmup_steps=0, logging_steps=max(1, max_steps // 20),
                save_strategy="no", report_to="none", seed=seed, data_seed=seed, use_cpu=on_cpu,
                **precision, disable_tqdm=not profile.dpo_progress_bar,
                # the new name where transformers has it: the old one warns at every config (5.2 has only the old one)
                **{CHECKPOINTING_FIELD: profile.gradient_checkpointing})


def one_round_trainers(trainers: Mapping[str, object]) -> Mapping[str, object]:
    """``trainers`` (notebook 04's one-round runs, name -> trainer), refused unless it holds every method of
    ``METHODS`` (and the Step-DPO run's ``step_dpo`` when notebook 01 made Step-DPO pairs; it may lack it). The
    on-policy rounds' cell empties it to free memory and saves the rounds' policies over ``policies/``: saving or
    evaluating what is left then saved nothing, or measured the base alone and replaced the ``policy`` section of
    ``metrics.json`` with it, dropping every method and the rounds."""
    missing = [m for m in METHODS if m not in trainers]
    if missing:
        held = f"holds only {sorted(trainers)}" if trainers else "is empty"
        raise ValueError(f"trainers (notebook 04's one-round runs) {held}, without {missing} (the on-policy "
                         "rounds' cell drops them to free memory, and saves the rounds' policies over policies/): run "
                         "the notebook again from the cell that sets the shared training recipe (common = "
                         "onpolicy.training_args(...)), through the DPO, Stepwise DPO and NLL-only training cells")
    return trainers


def _save_policy(trainer, folder: str) -> None:
    """``trainer.save_model(folder)``, the policy's adapter alone: PEFT also saved TRL's frozen "ref" copy of a
    trained adapter, in ``ref/``, naming its base by an absolute path; it is released first (its training is over)."""
    release_reference(trainer.model)
    trainer.save_model(folder)


def save_policies(folder, trainers: Mapping[str, object], log_histories: Mapping[str, list] | None = None):
    """Each trainer's policy saved to ``folder/<name>``, where notebooks 05 and 06 read it, with its training log
    in ``log_history.json``: the trainer's own (``trainer.state.log_history``), or ``log_histories[name]`` (the
    rounds' logs, steps counted on across rounds: ``extend_logs``). ``atomic.save_atomic``: the policy saved before
    stays until the new one is complete. A LoRA policy is its adapter alone (not TRL's "ref" copy), naming its base
    relative to itself (``write_portable_adapter_config``), so that the run folder can move. An empty log is refused
    by name, before any policy is saved (notebook 04's rounds cell run twice emptied its logs and only then refused:
    an empty ``log_history.json`` broke notebook 05's training curves). Returns ``folder``."""
    missing = [name for name in trainers if log_histories is not None and name not in log_histories]
    if missing:  # found before any policy is saved: a KeyError after the first left old and new policies mixed
        raise ValueError(f"save_policies: log_histories has no log for {missing} (it holds {list(log_histories)})")
    histories = {name: trainer.state.log_history if log_histories is None else log_histories[name]
                 for name, trainer in trainers.items()}
    if empty := [name for name, history in histories.items() if not history]:
        raise ValueError(f"save_policies: the training log of {empty} is empty: nothing saved (in notebook 04, run "
                         "again the cell that loads the PRM and the start policies, then the rounds and this cell)")
    for name, trainer in trainers.items():
        out = Path(folder) / name
        save_atomic(out, partial(_save_policy, trainer))
        write_portable_adapter_config(out, trainer.model)  # TRL's DPOTrainer records nothing of its base
        write_json_atomic(out / "log_history.json", histories[name])
    return Path(folder)


def recorded_splits(task, metrics: Mapping, *, seed: int = 0, tokenizer=None, n_train: int | None = None,
                    n_eval: int | None = None) -> dict:
    """Notebook 01's splits (``task.splits``: ``{"train", "validation", "test"}``), made again from its seed at the
    sizes it recorded in ``metrics["data"]["n_problems"]`` (its ``N_TRAIN_PROBLEMS`` may have cut the profile's); none
    recorded (notebook 01 not run, or cut short) is an error naming notebook 01, not the profile's
    sizes, which would train on other problems than notebook 01 labelled. The rounds train on the train problems, never
    on the held-out ones (notebook 04 and ``scripts/onpolicy_rounds.py``; the script evaluates on validation or test).
    Validation is drawn at the test count, as notebook 01 drew both (``N_EVAL_PROBLEMS``; on GSM8K its labelling budget
    may keep fewer of one): no task's train split depends on that count, only on its own. ``n_train`` and ``n_eval``
    draw other sizes from the same seed (``scripts/onpolicy_rounds.py --train-problems``, for more data than notebook 01
    labelled); the splits stay disjoint."""
    n_train, n_eval = recorded_counts(metrics, n_train=n_train, n_eval=n_eval)
    return task.splits(n_train, n_eval, seed=seed, tokenizer=tokenizer)


def recorded_counts(metrics: Mapping, *, n_train: int | None = None, n_eval: int | None = None) -> tuple[int, int]:
    """``(n_train, n_eval)``, the split sizes ``recorded_splits`` draws: each one not given is notebook 01's, from
    ``metrics["data"]["n_problems"]`` (train, and test for both held-out splits); none recorded is a
    FileNotFoundError naming notebook 01. ``scripts/onpolicy_rounds.py`` asks before it loads a model."""
    positive_int(n_train, "n_train", "recorded_splits", none_ok=True)
    positive_int(n_eval, "n_eval", "recorded_splits", none_ok=True)
    return (n_train or runs.recorded(metrics, "data.n_problems.train", "01_data_prep"),
            n_eval or runs.recorded(metrics, "data.n_problems.test", "01_data_prep"))


# ----------------------------------------------------------------------------- one round, and many

@documented_fields
@dataclass
class RoundSettings:
    """How a round makes its data (the same for every method)."""

    samples_per_problem: int = field(default=4, metadata={
        "help": "K, solutions sampled per training problem (sampler='pooled': shared out among the methods' "
                "policies)."})
    sampler: str = field(default="pooled", metadata={
        "help": "'pooled' (the K shared out among the methods' policies) or a method name (every method trains on "
                "that method's samples)."})
    pairs: str = field(default="both", metadata={"help": f"Which pairs a round builds: one of {PAIR_KINDS}."})
    max_pairs_per_problem: int = field(default=4, metadata={"help": "Solution pairs per problem, at most."})
    chosen: str = field(default="prm", metadata={
        "help": "A solution pair's chosen side (prm_pairs.solution_pairs): 'prm', a right final answer and no step the "
                "PRM rejects; 'answer', any right final answer (plain RFT's positives, no PRM filter). A Step-DPO "
                "correction is one the PRM accepts either way."})
    step_pairs_per_problem: int = field(default=1, metadata={
        "help": "Rejected solutions per problem to correct (step pairs)."})
    step_tries: int = field(default=4, metadata={
        "help": "Continuations sampled per attempt at a rejected solution's first wrong step (prm_pairs.step_pairs)."})
    step_attempts: int = field(default=2, metadata={
        "help": "Attempts (step_tries continuations each) to find a step the PRM accepts."})
    rejected_probs: str = field(default="first_error", metadata={
        "help": "A rejected solution's step labels (prm_pairs.rejected_step_probs): 'prm', σ(reward) of every step; "
                "'first_error', σ(reward) up to the first step the PRM rejects, 1 after it."})
    step_negatives: int = field(default=0, metadata={
        "help": "Extra wrong steps per Step-DPO state, at most (prm_pairs.step_negatives); 0: none."})
    negative_tries: int = field(default=8, metadata={
        "help": "Continuations sampled per Step-DPO state for step_negatives, shared out among the policies."})
    negative_temperature: float = field(default=2.0, metadata={"help": "The temperature of those continuations."})
    mirrored_negatives: str = field(default="no", metadata={
        "help": "The slip mirrored (prm_pairs.mirrored_negatives): 'add' one more pair per Step-DPO state, or use "
                "them 'instead' of the step pairs (which side does a policy lean to when the pairs reject only the "
                "other one?); 'no': none."})
    temperature: float = field(default=1.0, metadata={
        "help": "Sampling temperature of the round's solutions and step corrections (its evaluation samples at "
                "T=1)."})
    max_new_tokens: int = field(default=160, metadata={
        "help": "Longest sampled text in tokens: the round's solutions, corrections and evaluation."})
    batch_size: int = field(default=64, metadata={"help": "Rows per batch when sampling, scoring and evaluating."})
    threshold: float = field(default=0.0, metadata={
        "help": "PRM log-odds below which a step is rejected (notebook 02's validation threshold)."})
    progress: bool = field(default=False, metadata={
        "help": "Bars over the round's sampling, PRM scoring and evaluation: a GPU profile's round or a large one "
                "takes hours, the tiny one's seconds."})

    def __post_init__(self):
        for name in ("samples_per_problem", "max_pairs_per_problem", "step_pairs_per_problem", "step_tries",
                     "step_attempts", "negative_tries", "max_new_tokens", "batch_size"):
            positive_int(getattr(self, name), name, "RoundSettings")  # 0 or -1 dropped pairs silently
        # refused only when first used: threshold after the round's sampling, negative_temperature after its step pairs
        for name in ("temperature", "negative_temperature", "threshold"):
            if finite_number(getattr(self, name), name, "RoundSettings") < 0 and name != "threshold":
                raise ValueError(f"RoundSettings: {name} must be >= 0 (0: greedy), got {getattr(self, name)}")
        negatives = self.step_negatives
        if not isinstance(negatives, int) or isinstance(negatives, bool) or negatives < 0:
            raise ValueError(f"RoundSettings: step_negatives must be an int >= 0 (0: none), got {negatives!r}")
        if self.pairs not in PAIR_KINDS:
            raise ValueError(f"pairs must be one of {PAIR_KINDS}, got {self.pairs!r}")
        if self.sampler != "pooled" and self.sampler not in METHODS:
            raise ValueError(f"sampler must be 'pooled' or one of {METHODS}, got {self.sampler!r}")
        if self.rejected_probs not in REJECTED_PROBS:
            raise ValueError(f"rejected_probs must be one of {REJECTED_PROBS}, got {self.rejected_probs!r}")
        if self.chosen not in CHOSEN_RULES:
            raise ValueError(f"chosen must be one of {CHOSEN_RULES}, got {self.chosen!r}")
        if self.mirrored_negatives not in MIRRORED:
            raise ValueError(f"mirrored_negatives must be one of {MIRRORED}, got {self.mirrored_negatives!r}")
        if self.mirrored_negatives == "instead" and self.step_negatives:
            raise ValueError("mirrored_negatives='instead' replaces every step pair, step_negatives' ones too: "
                             "set step_negatives=0 with it")


# bitsandbytes' 4-bit generation against 16-bit: 2.7-3.2x slower (docs/benchmarks.md, consumer-GPU figures). The
# rounds sample from and evaluate the 4-bit policies they train; a profile's sampling speed is a 16-bit one.
FOUR_BIT_SLOWDOWN = 3.2


def round_generation_seconds(rs: RoundSettings, n_problems: int, n_eval: int, *, n_sampled: int = 2,
                             methods: Sequence[str] = METHODS, tokens_per_s: float | None,
                             quantized: bool = False) -> float | None:
    """Upper bound on one round's generation (``budget.generation_seconds``; None without a speed): K samples per
    training problem, the Step-DPO resampling (``step_tries`` per corrected solution, ``step_attempts`` times) and
    extra wrong steps (``negative_tries`` per state), and every method's evaluation (greedy + ``n_sampled`` per
    held-out problem). Each generate call (a policy's share, an attempt, an evaluation) may end in a partial batch,
    which costs a full one. Training and PRM scoring are left out: on a GPU they are the smaller part."""
    if tokens_per_s is None:
        return None
    policies = len(methods) if rs.sampler == "pooled" else 1
    groups = [(n_problems * rs.samples_per_problem, policies),  # (rows, generate calls)
              (len(methods) * n_eval * (1 + n_sampled), 2 * len(methods))]
    if rs.pairs in ("step", "both"):
        states = n_problems * rs.step_pairs_per_problem
        groups.append((states * rs.step_tries * rs.step_attempts, rs.step_attempts * len(methods)))
        if rs.step_negatives:
            groups.append((states * rs.negative_tries, len(methods)))
    padded = sum(rows + calls * (rs.batch_size - 1) for rows, calls in groups if rows)
    speed = tokens_per_s / FOUR_BIT_SLOWDOWN if quantized else tokens_per_s
    return budget.generation_seconds(padded, rs.max_new_tokens, speed)


@dataclass
class RoundsSetup:
    """What notebook 04's rounds cells start from (``prepare_rounds``): the sizes it printed are the ones its later
    cells run (``start_figures``, ``run``), given once."""

    prm: object  # notebook 02's ProcessRewardModel, which labels every round's steps (round_settings.threshold)
    policies: dict  # method -> its own fresh copy of the start policy
    tokenizer: object
    train_problems: list  # notebook 01's train split, which the rounds take in consecutive slices
    round_settings: RoundSettings
    train_settings: TrainSettings
    eval_problems: list  # the held-out problems every round evaluates
    rounds: int
    problems_per_round: int
    n_sampled: int  # sampled solutions per evaluation problem
    seed: int
    quantized: bool = False  # the policies are 4-bit (a QLoRA profile): the rounds measure them so

    def start_figures(self, base: dict) -> dict:
        """The round-0 row (``rounds_start_figures``): ``base``, the one-round evaluation's figures of the start
        policy, or on a quantized profile the start policy measured again as the rounds measure it."""
        return rounds_start_figures(base, next(iter(self.policies.values())), self.tokenizer, self.eval_problems,
                                    self.round_settings, rounds=self.rounds, quantized=self.quantized,
                                    n_sampled=self.n_sampled, seed=self.seed)

    def run(self, **kwargs) -> tuple[list, dict]:
        """``run_rounds`` on these policies (trained in place), problems, settings and sizes; ``kwargs``: its other
        keywords (``output_dir``, ``on_round``, ``save_dir``, ``save_key``, ...)."""
        return run_rounds(self.policies, self.tokenizer, self.prm, self.train_problems, self.eval_problems,
                          self.round_settings, self.train_settings, rounds=self.rounds,
                          problems_per_round=self.problems_per_round, seed=self.seed, n_sampled=self.n_sampled,
                          **kwargs)


def prepare_rounds(profile, run_dir, task, eval_problems, *, protocol: Mapping, training_args: Mapping, beta: float,
                   outcome_weight: float, rounds: int, problems_per_round: int, samples_per_problem: int,
                   steps: int, pairs: str, n_sampled: int = 2, seed: int = 0, out=print) -> RoundsSetup:
    """Notebook 04's on-policy rounds, set up: notebook 02's PRM with the threshold it chose on validation
    (``reward_reports.prm_threshold``: the one saved with it and recorded), a start policy per method
    (``start_policy``: each method trains on from its own copy), notebook 01's train problems (``recorded_splits``),
    and the rounds' ``RoundSettings`` and ``TrainSettings``: ``protocol`` is ``protocol()``'s dict,
    ``training_args`` the one-round runs' recipe (``training_args``), here at ``steps`` optimizer steps per method
    and round with a log line per step. Prints (``out``) the protocol, the threshold, the rounds' sizes and, on a GPU
    profile, an upper bound on their generation time (``round_generation_seconds``), for ``rounds`` rounds that
    each evaluate ``eval_problems``; these, ``problems_per_round``, ``n_sampled`` and ``seed`` are kept on the
    ``RoundsSetup`` for the cells that run the rounds (``RoundsSetup.start_figures``, ``RoundsSetup.run``)."""
    metrics = runs.read_metrics(run_dir)
    prm = ProcessRewardModel.load(runs.require(Path(run_dir) / "prm", "02_process_reward_model"),
                                  device=profile.device)  # beside the policies: the tiny profile's on a CPU
    threshold = reward_reports.prm_threshold(prm, run_dir)
    policies = {}
    for method in METHODS:
        policies[method], tokenizer = start_policy(profile, seed=seed)
    train_problems = recorded_splits(task, metrics, seed=seed, tokenizer=tokenizer)["train"]
    rs = RoundSettings(samples_per_problem=samples_per_problem, pairs=pairs, max_new_tokens=profile.max_new_tokens,
                       batch_size=profile.sample_batch_size, threshold=threshold,
                       progress=profile.dpo_progress_bar)  # a GPU profile's round takes hours
    ts = TrainSettings(beta=beta, outcome_weight=outcome_weight, **protocol,
                       args={**training_args, "max_steps": steps, "logging_steps": 1})
    per_round = min(problems_per_round, len(train_problems))  # a round takes at most the whole train split
    out(f"protocol {dict(protocol)}")
    out(f"PRM threshold {threshold:+.2f} (P(step right) = {sigmoid(threshold):.2f}); {rounds} rounds of {per_round} "
        f"problems x {samples_per_problem} samples; {steps} steps per method and round"
        + (f" (the train split holds {len(train_problems)} problems: every round takes them all)"
           if per_round < problems_per_round else ""))
    if profile.sampling_tokens_per_s:  # a GPU profile: hours, unless the sizes above are cut
        seconds = round_generation_seconds(rs, per_round, len(eval_problems), n_sampled=n_sampled,
                                           tokens_per_s=profile.sampling_tokens_per_s,
                                           quantized=profile.quantization is not None)
        out(f"generation per round {budget.at_most(seconds)}, {rounds} rounds {budget.at_most(rounds * seconds)} "
            "(an upper bound: every row at max_new_tokens)")
    return RoundsSetup(prm, policies, tokenizer, train_problems, rs, ts, eval_problems=eval_problems,
                       rounds=rounds, problems_per_round=problems_per_round, n_sampled=n_sampled, seed=seed,
                       quantized=profile.quantization is not None)


def sample_round(policies: Mapping[str, object], tokenizer, prm, problems, rs: RoundSettings, *, seed: int = 0,
                 shared_start: bool = False) -> list[list[Sample]]:
    """Sample and PRM-label ``K`` solutions per problem (see ``RoundSettings.sampler``). ``shared_start``: all
    policies are still the same model (round 1), so all ``K`` come from the first one, labelled with its name."""
    names = list(policies)
    if rs.sampler != "pooled":
        plan = {rs.sampler: rs.samples_per_problem}
    elif shared_start:
        plan = {names[0]: rs.samples_per_problem}
    else:
        plan = share_out(rs.samples_per_problem, names)
    samples = [[] for _ in problems]
    for j, (name, k) in enumerate(plan.items()):
        if k == 0:
            continue
        with generation.evaluating(policies[name]):
            sols = policy_eval.sample_solutions(policies[name], tokenizer, problems, n=k, temperature=rs.temperature,
                                                batch_size=rs.batch_size, max_new_tokens=rs.max_new_tokens,
                                                seed=seed + j, progress=rs.progress)
        for row, labelled in zip(samples, label_samples(prm, problems, sols, rs.threshold, policy=name,
                                                        batch_size=rs.batch_size, progress=rs.progress)):
            row += labelled
    return samples


def build_round_pairs(policies, tokenizer, prm, problems, samples, rs: RoundSettings, *, seed: int = 0,
                      uncorrected: list | None = None) -> tuple[list[dict], dict]:
    """The round's pairs (``rs.pairs``) and what building them counted; ``uncorrected``: see ``step_pairs``."""
    rows, info = [], {}
    if rs.pairs in ("solution", "both"):
        sol, stats = solution_pairs(problems, samples, max_pairs_per_problem=rs.max_pairs_per_problem, seed=seed,
                                    rejected_probs=rs.rejected_probs, chosen=rs.chosen)
        rows += sol
        info["solution"] = dict(stats)
    if rs.pairs in ("step", "both"):
        step, stats = step_pairs(policies, tokenizer, prm, problems, samples, rs.threshold,
                                 max_per_problem=rs.step_pairs_per_problem, tries=rs.step_tries,
                                 attempts=rs.step_attempts, rejected_probs=rs.rejected_probs,
                                 temperature=rs.temperature, max_new_tokens=rs.max_new_tokens,
                                 batch_size=rs.batch_size, seed=seed, progress=rs.progress, uncorrected=uncorrected)
        rows += step
        info["step"] = dict(stats)
        if rs.step_negatives:
            neg, stats = step_negatives(policies, tokenizer, prm, problems, step, rs.threshold, tries=rs.negative_tries,
                                        max_per_state=rs.step_negatives, temperature=rs.negative_temperature,
                                        rejected_probs=rs.rejected_probs, max_new_tokens=rs.max_new_tokens,
                                        batch_size=rs.batch_size, seed=seed, progress=rs.progress)
            rows += neg
            info["step_negatives"] = dict(stats)
        if rs.mirrored_negatives != "no":
            mirrored, stats = mirrored_negatives(prm, problems, step, rs.threshold, rejected_probs=rs.rejected_probs)
            if rs.mirrored_negatives == "instead":
                rows = [r for r in rows if r["kind"] != "step"]
            rows += mirrored
            info["mirrored_negatives"] = dict(stats)
    # A Step-DPO pair whose corrected chosen is a sampled right solution (often: the gold one) repeats that
    # solution pair exactly: one row each, the step pair's (it carries its step), or it would be trained twice
    unique: dict[tuple, dict] = {}
    for r in rows:
        key = (r["prompt"], r["chosen"], r["rejected"])
        if key not in unique or (unique[key]["kind"] == "solution" and r["kind"] != "solution"):
            unique[key] = r
    if len(unique) < len(rows):
        info["repeated_pairs_dropped"] = len(rows) - len(unique)
    rows = list(unique.values())
    random.Random(seed).shuffle(rows)
    return rows, info


def run_round(policies: dict, tokenizer, prm, problems, eval_problems, rs: RoundSettings, ts: TrainSettings, *,
              round_index: int = 1, seed: int = 0, output_dir: str = "onpolicy", n_sampled: int = 2,
              shared_start: bool = False, methods: Sequence[str] = METHODS, out=print) -> tuple[dict, dict]:
    """One on-policy round: sample, PRM-label, build pairs, train every method from its own policy on the same
    pairs, steps and seed, evaluate. ``policies`` (method -> model) is updated in place (the models are trained).
    Returns ``(record, trainers)``: the round's figures (per method: ``accuracy``, ``sampled_accuracy``,
    ``step_accuracy``, ``train_seconds`` and the per-problem counts; pairs built and PRM mislabels; seconds;
    ``stepwise_dpo_minus``: Stepwise DPO's accuracy minus each other method's, with a 95% interval) and the
    trainers."""
    missing = [m for m in methods if m not in policies]
    if missing or (rs.sampler != "pooled" and rs.sampler not in policies):
        raise ValueError(f"run_round: no policy for {missing or [rs.sampler]} (policies: {list(policies)}; sampler "
                         f"{rs.sampler!r})")
    if len({id(policies[m]) for m in methods}) < len(methods):  # one model trained by every method in turn
        raise ValueError("run_round: every method needs its own copy of the policy (the same model is given twice)")
    if shared_start:  # round 1 samples from one policy, taking all to be the start policy still
        refuse_trained_policies(policies, "run_round(shared_start=True)")
    if "stepwise_dpo" in methods:
        ts.check_policy(policies["stepwise_dpo"])
    if ts.uncorrected_weight and rs.pairs == "solution":  # it would add nothing, round after round
        raise ValueError("run_round: uncorrected_weight trains on the states Step-DPO pairs could not be built on, and "
                         "RoundSettings.pairs='solution' builds none")
    key = next((k for k in ("seed", "data_seed") if ts.args.get(k, seed) != seed), None)  # the round's seed replaced it
    if key is not None:
        raise ValueError(f"run_round: TrainSettings.args[{key!r}] = {ts.args[key]!r} would be replaced by the round's "
                         f"seed (seed + 1000 * round_index, seed={seed!r}): pass the seed as run_round's seed instead")
    record = {"round": round_index, "label_source": "prm"}
    # only the methods' policies (and a named sampler) write the round's samples and Step-DPO corrections
    policies_used = {m: policies[m] for m in dict.fromkeys([*methods, *([rs.sampler] if rs.sampler != "pooled"
                                                                         else [])])}
    started = time.perf_counter()
    round_seed = seed + 1000 * round_index
    samples = sample_round(policies_used, tokenizer, prm, problems, rs, seed=round_seed, shared_start=shared_start)
    flat = [s for row in samples for s in row]
    record["samples"] = len(flat)
    record["sample_accuracy"] = sum(s.answer_correct for s in flat) / max(len(flat), 1)
    record["prm_step_agreement"] = step_agreement(problems, samples)
    record["lucky"] = count_lucky(problems, samples)
    sample_seconds = time.perf_counter() - started
    uncorrected = []  # the Step-DPO states no correction was found for (Stepwise DPO's, with uncorrected_weight)
    rows, info = build_round_pairs(policies_used, tokenizer, prm, problems, samples, rs, seed=round_seed,
                                   uncorrected=uncorrected)
    record["pair_info"] = info
    record["pairs"] = {kind: sum(r["kind"] == kind for r in rows) for kind in ("solution", "step")}
    record["pairs"]["total"] = len(rows)
    record["mislabels"] = {kind: count_mislabels(problems, [r for r in rows if r["kind"] == kind])
                           for kind in ("solution", "step") if record["pairs"][kind]}
    record["data_seconds"] = round(time.perf_counter() - started, 1)
    record["sample_seconds"] = round(sample_seconds, 1)
    lucky = record["lucky"]  # the checker's count (evaluation only): what the PRM's filter of the chosen side does
    out(f"round {round_index}: {len(flat)} samples ({record['sample_accuracy']:.1%} right), "
        f"{record['pairs']['solution']} solution + {record['pairs']['step']} step pairs "
        f"in {record['data_seconds']:.0f} s" + ("" if not lucky or not lucky["lucky"] else
                                               f"; {lucky['lucky']} of {lucky['right']} right answers came through a "
                                               f"wrong step, {lucky['prm_kept_lucky']} of them passed the PRM"))
    trainers = {}
    if not rows:
        out(f"round {round_index}: no pairs, nothing to train")
    for method in methods:
        if not rows:
            break
        model = policies[method]
        args = dict(ts.args, seed=round_seed, data_seed=round_seed)
        settings = dataclasses.replace(ts, args=args)
        t0 = time.perf_counter()
        trainer = make_trainer(method, model, tokenizer, rows, settings, f"{output_dir}/round{round_index}/{method}",
                               ref_model=policy_reference(model), uncorrected=uncorrected)
        for trained in (model, trainer.model):  # the same model, unless the trainer wrapped it
            setattr(trained, TRAINED_IN_ROUND, round_index)
        with quiet_deprecated_checkpointing_read():  # TRL's DPOTrainer reads a deprecated name at its reference
            trainer.train()
        release_reference(trainer.model)
        policies[method] = trainer.model
        trainers[method] = trainer
        record.setdefault(method, {})["train_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    for method in methods:
        record.setdefault(method, {}).update(policy_eval.greedy_and_sampled_accuracy(
            policies[method], tokenizer, eval_problems, n_sampled=n_sampled, batch_size=rs.batch_size,
            max_new_tokens=rs.max_new_tokens, seed=seed, per_problem=True, progress=rs.progress))
    minus = stepwise_minus({m: record[m]["per_problem"] for m in methods})
    if minus is not None:
        record["stepwise_dpo_minus"] = minus
    record["eval_seconds"] = round(time.perf_counter() - t0, 1)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record, trainers


def stepwise_minus(right: Mapping[str, dict]) -> dict | None:
    """Stepwise DPO's accuracy minus each other policy's of ``right`` (name -> the ``"per_problem"`` counts of
    ``policy_eval.greedy_and_sampled_accuracy``, all on the same problems; ``"base"`` is left out: the methods are
    compared with each other), greedy and sampled, each with its paired 95% interval
    (``paired_stats.accuracy_differences``). None when there is nothing to compare: no Stepwise DPO policy, or fewer
    than two problems (a paired interval needs two or more). Notebook 04's one-round runs and every on-policy round
    (``run_round``'s ``stepwise_dpo_minus``) are compared by it."""
    if "stepwise_dpo" not in right:
        return None
    if len(right["stepwise_dpo"]["greedy_right"]) < 2:
        return None
    return {m: paired_stats.accuracy_differences(right["stepwise_dpo"], counts) for m, counts in right.items()
            if m not in ("base", "stepwise_dpo")}


def extend_logs(logs: dict, histories: Mapping[str, Sequence[dict]], round_number: int) -> dict:
    """Append one round's training logs (method -> its trainer's ``state.log_history``) to ``logs`` (method -> one
    list over all rounds), in place: each entry tagged with ``round`` and its ``step`` counted on from where the
    method's previous rounds ended, so that the rounds draw as one curve (``viz.plot_training_curves`` restarts its
    smoothing at a new round). Returns ``logs``."""
    for m, history in histories.items():
        done = logs.setdefault(m, [])
        offset = done[-1].get("step", 0) if done else 0
        done += [{**e, "step": e.get("step", 0) + offset, "round": round_number} for e in history]
    return logs


def rounds_start_figures(base: dict, start_policy, tokenizer, problems, rs: RoundSettings, *, rounds: int,
                         quantized: bool, n_sampled: int = 2, seed: int = 0) -> dict:
    """The rounds' round-0 row: the start policy as the rounds measure it. The rounds measure the policies they
    train as they are, in 4 bits on a quantized (QLoRA) profile (``run_round``), where notebook 04's one-round
    evaluation (``policy_eval.evaluate_saved_policies``) measured the base merged into 16 bits: faster, and not the same
    numbers. So on a quantized profile ``start_policy`` (any method's copy: none has trained yet) is measured again,
    with the rounds' batch size and token budget (``rs``); otherwise, and with no rounds to compare it with
    (``rounds`` = 0), the one-round evaluation's ``base`` figures serve. A ``start_policy`` a round has trained
    already is refused (``refuse_trained_policies``), before anything is measured."""
    refuse_trained_policies({"start_policy": start_policy}, "rounds_start_figures")
    if not quantized or not rounds:
        return base
    return policy_eval.greedy_and_sampled_accuracy(start_policy, tokenizer, problems, n_sampled=n_sampled,
                                                   batch_size=rs.batch_size, max_new_tokens=rs.max_new_tokens,
                                                   seed=seed, progress=rs.progress)


def round_problems(problems: Sequence, per_round: int | None, round_index: int) -> list:
    """The training problems of round ``round_index`` (1-based): consecutive slices of ``per_round`` problems,
    wrapping around, so that later rounds see fresh prompts while there are any (all of them when None)."""
    problems = list(problems)
    if per_round:  # None or 0: all of them; a negative count gave repeated problems, then none
        positive_int(per_round, "per_round", "round_problems")
    if not per_round or per_round >= len(problems):
        return problems
    start = ((round_index - 1) * per_round) % len(problems)
    return (problems + problems)[start:start + per_round]


def refuse_trained_policies(policies: Mapping[str, object], caller: str) -> None:
    """A ``ValueError`` when a round (``run_round``) has trained any of ``policies`` (name -> model) already, even in
    part: rounds that start again at round 1 would train them on, report round 2 as round 1 and sample it from one
    of them as if all were still the start policy (a second run of notebook 04's rounds cell did, silently)."""
    trained = {name: getattr(model, TRAINED_IN_ROUND) for name, model in policies.items()
               if getattr(model, TRAINED_IN_ROUND, None) is not None}
    if trained:
        raise ValueError(f"{caller}: the policies {sorted(trained)} were trained by on-policy rounds already (up to "
                         f"round {max(trained.values())}); rounds start from the start policies: load them again "
                         "(onpolicy.start_policy; in notebook 04 run again the cell that loads the PRM and the "
                         "three start policies, then the rounds)")


def run_rounds(policies: dict, tokenizer, prm, train_problems, eval_problems, rs: RoundSettings, ts: TrainSettings,
               *, rounds: int = 2, problems_per_round: int | None = None, seed: int = 0,
               output_dir: str = "onpolicy", n_sampled: int = 2, shared_start: bool = True,
               methods: Sequence[str] = METHODS, out=print, on_round: Callable | None = None,
               save_dir: str | Path | None = None, save_key: Mapping | None = None) -> tuple[list, dict]:
    """``rounds`` on-policy rounds (``run_round``), each on its slice of ``train_problems`` (``round_problems``).
    ``policies``: method -> its own copy of the start policy (``shared_start``: they are still equal, so round 1
    samples once); policies a round has trained already are refused (``refuse_trained_policies``).
    ``on_round(record, trainers)`` is called after each round (print, save, plot). Returns the
    round records and, per method, the trainer of the last round that trained it (its ``model`` is the policy).

    ``save_dir``: after each round, its record, training logs and the policies it left are saved there, replacing
    the previous round's (``save_rounds``); a later call with the same settings (``rounds_settings``, with
    ``save_key``: what else the rounds depend on, e.g. the PRM's files) takes the saved rounds up to the last one
    instead of training them again, and goes on from its policies: a Colab runtime that disconnects in round 3 loses
    round 3 only. A round taken from ``save_dir`` is passed to ``on_round`` too, with ``SavedRound`` stand-ins for
    its trainers. Each round is seeded by its number (``run_round``), so a resumed run trains as an uninterrupted one
    would (on a CPU, to the last figure)."""
    # -1 ran no round and True one, silently
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 0:
        raise ValueError(f"run_rounds: rounds must be an int >= 0 (0: none), got {rounds!r}")
    refuse_trained_policies(policies, "run_rounds")  # its round 1 needs the start policies
    records, trainers, saved = [], {}, []
    settings = None
    if save_dir is not None and rounds:
        settings = rounds_settings(policies, train_problems, eval_problems, rs, ts, seed=seed, n_sampled=n_sampled,
                                   problems_per_round=problems_per_round, shared_start=shared_start,
                                   methods=methods, save_key=save_key)
        saved = saved_rounds(save_dir, settings, rounds, out=out)
    if saved:
        for m in methods:  # the last saved round's policies, in place of the start policies
            load_round_policy(policies[m], Path(save_dir) / m)
            setattr(policies[m], TRAINED_IN_ROUND, len(saved))  # refuse_trained_policies: not a start policy now
        for entry in saved:
            trained = {m: SavedRound(policies[m], tokenizer, history) for m, history in entry["log_history"].items()}
            records.append(entry["record"])
            trainers.update(trained)
            if on_round is not None:
                on_round(entry["record"], trained)
        taken = f"round{'s 1-' if len(saved) > 1 else ' '}{len(saved)}"
        out(f"{taken} of {rounds} taken from {Path(save_dir).resolve()}, saved as each finished (delete that folder to "
            "train them again)" + (f"; training from round {len(saved) + 1} on" if len(saved) < rounds else ""))
    for r in range(len(saved) + 1, rounds + 1):
        record, trained = run_round(policies, tokenizer, prm, round_problems(train_problems, problems_per_round, r),
                                     eval_problems, rs, ts, round_index=r, seed=seed, output_dir=output_dir,
                                     n_sampled=n_sampled, shared_start=shared_start and r == 1, methods=methods,
                                     out=out)
        records.append(record)
        trainers.update(trained)
        if settings is not None:
            saved.append({"record": record, "log_history": {m: t.state.log_history for m, t in trained.items()}})
            save_rounds(save_dir, settings, saved, {m: policies[m] for m in methods})
        if on_round is not None:
            on_round(record, trained)
    return records, trainers
