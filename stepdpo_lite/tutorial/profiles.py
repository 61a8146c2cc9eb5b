"""The notebooks' profiles: which model, task, sizes and learning rates each setting uses.

``tiny`` (CPU, the toy world's tiny base, minutes), ``t4-16gb`` and ``24gb`` (GPU, GSM8K + Qwen2.5), and
``smoke``: the GPU profiles' code path (GSM8K, chat prompts, 4-bit + LoRA, Monte-Carlo labels) at toy size on a
CPU, for tests (``smoke.py``; ``prepare_profile`` builds its base on first use). ``load_profile_model`` is
``models.load_model`` with a profile's settings, and ``train_reward_model`` trains a reward model by a
profile's recipe (notebooks 02 and 03). Before any download, ``prepare_profile`` refuses a GPU profile on a machine
without CUDA (``check_machine``) and names the fix when the Hub is out of reach (``check_sources``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field, fields

from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache

from ..checks import documented_fields, finite_number, flag, positive_int, warn_user
from ..models import DEFAULT_LORA, load_model
from . import gsm8k
from .smoke import GSM8K_SLICE, ensure_smoke_base, smoke_base_dir
from .tiny_models import TINY_BASE_DIR, TINY_VERIFIER_DIR


# Notebook 04's two protocols for its on-policy rounds (onpolicy.TrainSettings fields; onpolicy.protocol reads them),
# each fixed on the validation split (docs/benchmarks.md, "Why Stepwise DPO does not pass RFT (notebook 04)"); a
# profile names its own (Profile.onpolicy_protocol)
ONPOLICY_PROTOCOLS = {
    # Step-DPO's objective (the first step that differs) through the whole network: any policy, a LoRA one too
    "first_error": dict(step_pairing="first_error", sft_weight=20.0, step_weight=1.0, step_gradient="all"),
    # the first token that differs, its step loss through the output layer only (output_layer_pairs.py: through the
    # whole network it overshoots): a policy whose output layer trains, the tiny profile's fully fine-tuned one
    "output_layer": dict(step_pairing="first_token", sft_weight=5.0, step_weight=50.0, step_gradient="output_layer"),
}


@documented_fields
@dataclass(frozen=True)
class Profile:
    """Model and sizes for one kind of machine; the notebooks read everything from here."""

    name: str = field(metadata={"help": "Profile name: 'tiny', 't4-16gb', '24gb' or 'smoke'."})
    model_name: str = field(metadata={"help": "Base model: a Hub id or a local folder."})
    task: str = field(default="gsm8k", metadata={
        "help": "The problems (tasks.get_task): 'toy' (the offline arithmetic world, a checker for every step), "
                "'gsm8k' (final answers only; step labels from Monte-Carlo rollouts) or one of your own registered in "
                "tasks.TASKS (docs/own_task.md)."})
    dataset: str | None = field(default=None, metadata={
        "help": "Where the task's problems come from: for 'gsm8k' the Hub id (None: 'openai/gsm8k') or a local "
                "path (gsm8k.load_problems)."})
    reward_model_name: str | None = field(default=None, metadata={
        "help": "Base of the reward models (PRM, ORM), e.g. a math-tuned model: a Hub id or a local folder; "
                "None: model_name."})
    quantization: str | None = field(default="4bit", metadata={
        "help": "The policy's base in notebook 04 (load_profile_model): '4bit' (nf4, QLoRA) or None."})
    reward_quantization: str | None = field(default="4bit", metadata={
        "help": "The reward models' frozen base in notebooks 02 and 03 (train_reward_model): '4bit' (nf4, QLoRA) "
                "or None."})
    dtype: str = field(default="auto", metadata={"help": "Compute dtype: 'float32', 'float16', 'bfloat16' or 'auto'."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda' or None (cuda when available)."})
    max_length: int = field(default=1024, metadata={
        "help": "Longest prompt + solution in tokens (the policy's; the reward models': reward_max_length)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Longest sampled solution in tokens."})
    reward_max_length: int | None = field(default=None, metadata={
        "help": "Longest input of the reward models (PRM, ORM) in tokens, with the tag read after each step: a longer "
                "row is refused, never cut, and it is saved with them as their scoring limit (None: max_length). "
                "Raise it with max_new_tokens: more tokens hold more steps, each with its tag."})
    train_batch_size: int = field(default=4, metadata={"help": "Per-device training batch size."})
    dpo_batch_size: int | None = field(default=None, metadata={
        "help": "Pairs per device step of notebook 04's (Stepwise) DPO runs when they differ from the reward "
                "models' batch (None: train_batch_size)."})
    dpo_progress_bar: bool = field(default=True, metadata={
        "help": "A progress bar for each of notebook 04's preference runs (off on tiny: a run takes seconds, and "
                "its training curves show the logs)."})
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "Batches per optimizer step."})
    eval_batch_size: int = field(default=16, metadata={
        "help": "Batch size of the reward models' scoring and evaluation (sampling: sample_batch_size)."})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Trade compute for activation memory."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (0 on the CPU profiles: it costs time "
                                                                 "and one epoch cannot overfit)."})
    reward_learning_rate: float = field(default=1e-4, metadata={"help": "Learning rate of PRM/ORM LoRA training."})
    orm_learning_rate: float | None = field(default=None, metadata={
        "help": "Learning rate of ORM LoRA training when it differs from the PRM's (None: reward_learning_rate)."})
    reward_epochs: float = field(default=1.0, metadata={"help": "Epochs of PRM/ORM training."})
    orm_epochs: float | None = field(default=None, metadata={
        "help": "Epochs of ORM training when they differ from the PRM's (None: reward_epochs)."})
    dpo_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of (Stepwise) DPO LoRA training."})
    dpo_epochs: float = field(default=1.0, metadata={"help": "Epochs of (Stepwise) DPO training."})
    n_train_problems: int = field(default=1000, metadata={"help": "Training problems sampled in notebook 01."})
    n_eval_problems: int = field(default=200, metadata={"help": "Held-out problems for evaluation."})
    n_samples_per_problem: int = field(default=4, metadata={"help": "Solutions sampled per training problem."})
    best_of_n: int = field(default=16, metadata={"help": "Largest N of the best-of-N evaluation."})
    n_test_time_problems: int | None = field(default=None, metadata={
        "help": "Held-out problems of notebook 07's search comparison (None: a fifth of n_eval_problems, as "
                "notebook 06's best-of-N)."})
    sample_batch_size: int = field(default=32, metadata={
        "help": "Rows a batch when sampling (solutions, Monte-Carlo rollouts, best-of-N candidates, evaluation)."})
    sampling_tokens_per_s: float | None = field(default=None, metadata={
        "help": "Sampling speed assumed by time estimates: new tokens a second summed over a batch of "
                "sample_batch_size rows (None: unknown, estimates count tokens only)."})
    onpolicy_protocol: str = field(default="first_error", metadata={
        "help": "The training protocol of notebook 04's on-policy rounds (ONPOLICY_PROTOCOLS): 'first_error' "
                "(Step-DPO's pairing, any policy) or 'output_layer' (the first differing token through the output "
                "layer only: a policy whose output layer trains, so not a LoRA one)."})
    mc_budget_minutes: float | None = field(default=None, metadata={
        "help": "Notebook 01 labels only as many problems by Monte-Carlo rollouts as fit this many minutes at "
                "sampling_tokens_per_s (None: no cap)."})

    def __post_init__(self):
        """A profile of one's own (``dataclasses.replace(get_profile("t4-16gb"), train_batch_size=0)``) is checked
        here, field by field, not when a trainer or sampler meets the value minutes later."""
        for f in fields(self):
            value, optional = getattr(self, f.name), f.type.endswith("| None")
            if optional and value is None:
                continue
            if f.type.startswith("int"):
                positive_int(value, f.name, "Profile")
            elif f.type.startswith("float"):
                x = finite_number(value, f.name, "Profile")
                if not (0 <= x < 1 if f.name == "lora_dropout" else x > 0):
                    raise ValueError(f"Profile: {f.name} must be {'in [0, 1)' if f.name == 'lora_dropout' else '> 0'}"
                                     f", got {value!r}")
            elif f.type == "bool":
                flag(value, f.name, "Profile")
            elif not isinstance(value, str) or not value:
                raise ValueError(f"Profile: {f.name} must be a non-empty str{' or None' if optional else ''}, "
                                 f"got {value!r}")
        for name, allowed in (("quantization", ("4bit", None)),  # the task: tasks.get_task, where tasks register
                              ("reward_quantization", ("4bit", None)),
                              ("onpolicy_protocol", tuple(ONPOLICY_PROTOCOLS)),
                              ("dtype", ("float32", "float16", "bfloat16", "auto"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Profile: {name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def reward_base(self) -> str:
        """The reward models' base model: ``reward_model_name``, else the policy's ``model_name``."""
        return self.reward_model_name or self.model_name

    def lora_config(self) -> dict:
        """The LoRA fields of this profile, for ``load_model(..., lora=profile.lora_config())``."""
        return {**DEFAULT_LORA, "r": self.lora_r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout}

    def reward_training_args(self, reward: str = "process") -> dict:
        """The keywords of ``train_process_reward_model`` (``reward="process"``) or ``train_outcome_reward_model``
        (``reward="outcome"``) this profile sets."""
        if reward not in ("process", "outcome"):
            raise ValueError(f"reward_training_args: reward must be 'process' or 'outcome', got {reward!r}")
        learning_rate, epochs = self.reward_learning_rate, self.reward_epochs
        if reward == "outcome":  # the ORM's own settings, where the profile sets them
            learning_rate = self.orm_learning_rate if self.orm_learning_rate is not None else learning_rate
            epochs = self.orm_epochs if self.orm_epochs is not None else epochs
        return dict(learning_rate=learning_rate, num_train_epochs=epochs,
                    per_device_train_batch_size=self.train_batch_size, per_device_eval_batch_size=self.eval_batch_size,
                    gradient_accumulation_steps=self.gradient_accumulation_steps,
                    gradient_checkpointing=self.gradient_checkpointing,
                    max_length=self.reward_max_length or self.max_length, device=self.device, dtype=self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)


def _tiny_base_dir() -> str:
    return os.environ.get("STEPDPO_TINY_BASE", str(TINY_BASE_DIR))


def _tiny_reward_base_dir() -> str:
    return os.environ.get("STEPDPO_TINY_REWARD_BASE", str(TINY_VERIFIER_DIR))


def _smoke_base_dir() -> str:
    return str(smoke_base_dir())


def _gsm8k_slice() -> str:
    return str(GSM8K_SLICE)


# Sampling speeds of the GPU profiles (time estimates only). docs/benchmarks.md measured 16-bit sampling on an
# H100 at 36 ms a decoding step for the 0.5B model at 16 rows (439 tokens/s) and for the 1.5B model at 32 rows
# (881 tokens/s): the same time a step at either size and batch, so decoding is bound by per-step overhead
# (kernel launches, Python), not by the batch. A T4's step is assumed 1.5x slower (lower clocks, Colab's slower
# host CPU; not measured): 32 rows / 0.055 s = ~580 tokens/s. A 24 GB card (RTX 3090/4090, A10, L4): 1.25x,
# 32 rows / 0.045 s = ~710 tokens/s. Budget: Monte-Carlo labelling <= 20 min (notebook 01 prints its estimate
# and labels only the problems that fit).
_T4_TOKENS_PER_S, _24GB_TOKENS_PER_S = 32 / 0.055, 32 / 0.045
# The reward models' longest input on GSM8K, counted with Qwen2.5's tokenizer (tests/test_profiles.py counts it with
# the smoke profile's, which splits text as Qwen2's does). A PRM reads a 10-token tag (rewards.STEP_TAG) after every
# step, and a sample cut at max_new_tokens = 512 can hold a step every 2 tokens (bare "\n\nStep:" paragraphs, 3
# tokens each when tokenized alone): up to 257 steps, 3,338 tokens with tags, after a chat prompt of at most 261
# tokens (GSM8K's 1,319 test questions; median 130). At 1,024 such a row of more than about 22 steps was refused
# (InputTooLong: notebook 02 stopped); 4,096 holds every row a 512-token sample can make after a prompt of up to 758
# tokens, and a batch is padded to its own longest row only. A policy's row has no tags: 261 + 512 fit max_length.
_GSM8K_REWARD_MAX_LENGTH = 4096

PROFILES: dict[str, Profile] = {
    # Laptop CPU, minutes: the ~1M-parameter toy Llama in float32. The reward models train on a 4-bit base, the
    # GPU profiles' QLoRA path (bitsandbytes >= 0.46 runs it on a CPU); the policy is not quantized
    # (quantization=None): notebook 04 fine-tunes it fully, in float32.
    # The reward models start from data/tiny-verifier: the tiny base pretrained as a verifier on ~1.6 M graded
    # solutions (verifier_pretraining.py), as real PRMs start from a math-tuned LLM; $STEPDPO_TINY_REWARD_BASE
    # gives them another base (e.g. data/tiny-base, the control of notebook 02).
    "tiny": Profile(name="tiny", model_name=_tiny_base_dir(), reward_model_name=_tiny_reward_base_dir(), task="toy",
                    quantization=None, reward_quantization="4bit", dtype="float32", device="cpu",
                    max_length=256, max_new_tokens=160, train_batch_size=32, gradient_accumulation_steps=1,
                    # notebook 04: 35 steps of 16 pairs over notebook 01's 570 (the reward models' 32 would halve them
                    # to 17); its figures, README's and docs/benchmarks.md's, are measured at this size
                    dpo_batch_size=16, dpo_progress_bar=False,
                    eval_batch_size=128, gradient_checkpointing=False, lora_r=8, lora_alpha=16, lora_dropout=0.0,
                    reward_learning_rate=2e-3, reward_epochs=1.0, dpo_learning_rate=1e-4, dpo_epochs=1.0,
                    orm_learning_rate=5e-4, orm_epochs=2.0,  # chosen on validation: scripts/reward_learning_rates.py
                    n_train_problems=600, n_eval_problems=150, n_samples_per_problem=4, best_of_n=16,
                    n_test_time_problems=50,  # 30 would put one problem at 3.3 points: too coarse to order methods
                    sample_batch_size=128,
                    # its policy is fully fine-tuned: the protocol best on validation for Stepwise DPO (notebook 04)
                    onpolicy_protocol="output_layer"),
    # Colab's free T4: 16 GB, no bfloat16, so float16 compute.
    "t4-16gb": Profile(name="t4-16gb", model_name="Qwen/Qwen2.5-0.5B-Instruct", quantization="4bit", dtype="float16",
                       max_length=1024, max_new_tokens=512, reward_max_length=_GSM8K_REWARD_MAX_LENGTH,
                       train_batch_size=4, gradient_accumulation_steps=4,
                       eval_batch_size=16, gradient_checkpointing=True, lora_r=16, lora_alpha=32,
                       reward_learning_rate=1e-4, dpo_learning_rate=5e-5, n_train_problems=1000,
                       n_eval_problems=200, n_samples_per_problem=4, best_of_n=16,
                       sample_batch_size=32, sampling_tokens_per_s=_T4_TOKENS_PER_S, mc_budget_minutes=20),
    # One 24 GB card (RTX 3090/4090, A10, L4).
    "24gb": Profile(name="24gb", model_name="Qwen/Qwen2.5-1.5B-Instruct", quantization="4bit", dtype="bfloat16",
                    max_length=1024, max_new_tokens=512, reward_max_length=_GSM8K_REWARD_MAX_LENGTH,
                    train_batch_size=8, gradient_accumulation_steps=2,
                    eval_batch_size=32, gradient_checkpointing=True, lora_r=32, lora_alpha=64,
                    reward_learning_rate=1e-4, dpo_learning_rate=5e-5, n_train_problems=2000,
                    n_eval_problems=500, n_samples_per_problem=4, best_of_n=16,
                    sample_batch_size=32, sampling_tokens_per_s=_24GB_TOKENS_PER_S, mc_budget_minutes=20),
    # Tests: the GPU profiles' code path (GSM8K through gsm8k.load_problems, chat-formatted prompts, 4-bit nf4 +
    # LoRA with gradient checkpointing, Monte-Carlo step labels) at toy size on a CPU, offline: a ~0.14M-parameter
    # Qwen2 with a BPE tokenizer built from data/gsm8k (smoke.py; built on first use into runs/smoke-base), and
    # disjoint train/validation/test carved from the 200 shipped GSM8K problems. Its figures mean nothing.
    "smoke": Profile(name="smoke", model_name=_smoke_base_dir(), task="gsm8k", dataset=_gsm8k_slice(),
                     quantization="4bit", dtype="float32", device=None, max_length=512, max_new_tokens=96,
                     # sized as the GPU profiles': 96 tokens hold 48 steps, 575 tokens with their tags, after a
                     # chat prompt of at most 296 tokens (its tokenizer's, on the 200 shipped questions)
                     reward_max_length=1024,
                     train_batch_size=4, gradient_accumulation_steps=2, eval_batch_size=16,
                     gradient_checkpointing=True, lora_r=8, lora_alpha=16, lora_dropout=0.0,
                     reward_learning_rate=2e-3, dpo_learning_rate=1e-3, n_train_problems=16, n_eval_problems=8,
                     n_samples_per_problem=4, best_of_n=4, sample_batch_size=64,
                     sampling_tokens_per_s=2000.0),  # ~6,000 measured on 2 busy CPU cores (notebook 01); a third
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def prepare_profile(profile: str | Profile, out=print) -> Profile:
    """Make what a profile needs locally before its first use, and refuse it now, before any download, where it would
    fail or crawl later: the ``smoke`` base is built (seconds) when missing (other profiles' models come from the Hub
    or ship in ``data/``); then ``check_machine`` and ``check_sources``."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if p.name == "smoke":
        ensure_smoke_base(p.model_name, out=out)
    check_machine(p)
    check_sources(p)
    return p


def _float16_profiles() -> list[str]:
    return [name for name, p in PROFILES.items() if p.dtype == "float16"]


def check_machine(profile: str | Profile) -> None:
    """A GPU profile (16-bit compute, its device ``None``: cuda when available) on a machine without CUDA is
    refused, naming the ``smoke`` profile, the GPU code path at toy size on a CPU: it would run on the CPU, in 16
    bits, for hours. A bfloat16 profile on a GPU that only emulates bfloat16 (compute capability < 8.0, e.g. a T4)
    gets a warning naming the float16 profile: transformers accepts emulated bfloat16, which runs many times slower.
    A profile whose device is ``"cpu"`` chose the CPU: nothing is checked."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if p.dtype not in ("float16", "bfloat16") or p.device == "cpu":
        return
    import torch  # torch in the functions: notebooks and colab import this module light (test_reward_training)

    if not torch.cuda.is_available():
        raise ValueError(f"profile {p.name!r} needs a CUDA GPU (it computes in {p.dtype}) and this machine has none "
                         "(torch.cuda.is_available() is False): it would download and run its models on the CPU, "
                         "for hours. A CPU dry run of the GPU code path (GSM8K, chat prompts, 4-bit + LoRA, "
                         "Monte-Carlo labels) at toy size, in minutes: the 'smoke' profile (stepdpo-lite --profile "
                         "smoke); the tutorial on a CPU: 'tiny'. In Colab: Runtime > Change runtime type > a GPU")
    device = torch.device(p.device or "cuda")
    if p.dtype == "bfloat16" and device.type == "cuda" and not _native_bf16(torch, device):
        warn_user(f"profile {p.name!r} computes in bfloat16, which this GPU ({torch.cuda.get_device_name(device)}"
                  f", compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))}) only "
                  "emulates: it would run many times slower. Native bfloat16 needs compute capability 8.0 "
                  "(Ampere or newer: A100, A10, L4, RTX 30xx/40xx); on this GPU use the float16 profile "
                  f"{' or '.join(map(repr, _float16_profiles()))}")


def check_sources(profile: str | Profile) -> None:
    """Fail now, before the first model download, where a notebook would fail after it: GSM8K from the Hub out of
    reach (``gsm8k.load_hub_split``, which names the fix; it loads from the cache when the copy is there), or, with
    the Hub offline (``HF_HUB_OFFLINE=1``), a model that is neither a folder here nor in the Hub's cache."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if p.task == "gsm8k" and not os.path.exists(p.dataset or gsm8k.HUB_NAME):
        gsm8k.load_hub_split(p.dataset or gsm8k.HUB_NAME, "test")
    if not hub_constants.HF_HUB_OFFLINE:
        return
    for name in dict.fromkeys((p.model_name, p.reward_base)):
        if written_as_path(name) or os.path.exists(name) or _in_hub_cache(name):
            continue  # a path (not a Hub id), or a folder here: load_model says when one is missing
        raise FileNotFoundError(
            f"profile {p.name!r}: the model {name!r} is no folder here and not in the Hub's cache, and the Hub is "
            "offline (HF_HUB_OFFLINE=1). Go online for the first run (HF_HUB_OFFLINE=0, or unset it: the model is "
            f"downloaded once, then read from the cache), or cache it first where the Hub is reachable (`hf download "
            f"{name}`, into the cache $HF_HOME names); in your own code a profile can read a local copy "
            "(dataclasses.replace(get_profile(...), model_name=FOLDER)); the notebooks take a profile's name only")


# Folders of the kit's own where its tiny models live (data/tiny-base, runs/smoke-base, docs/own_task.md's
# runs/sum-base): a name under one is a path here, not the Hub id of an owner "data" or "runs"
KIT_MODEL_FOLDERS = ("data/", "runs/")


def written_as_path(name: str) -> bool:
    """Whether a model name can only be a path on this machine, there or not: absolute, opening with "." or "~" or
    with one of the kit's folders (``KIT_MODEL_FOLDERS``: "data/tiny-base", "runs/sum-base"), or holding more than
    one "/". Any other name may be a Hub id ("owner/name", e.g. "Qwen/Qwen2.5-0.5B", or a bare name), which only the
    loader can tell from a folder here: a missing one is not refused by this rule."""
    return (os.path.isabs(name) or name.startswith((".", "~", *KIT_MODEL_FOLDERS))
            or name.replace(os.sep, "/").count("/") > 1)


def tiny_model_folder(name: str) -> bool:
    """Whether a profile's model name is a folder that holds a tiny model this kit trained (``data/tiny-base``, one
    fine-tuned on your own task by ``tiny_base.fine_tune_base``, or a tiny verifier): ``tiny_models.save_tiny_model``
    and the verifier pretraining write its ``training_log.json``. A local copy of an LLM has none; a Hub id is no
    folder. A relative name is read from the working directory, as the model is loaded."""
    return os.path.isfile(os.path.join(os.path.expanduser(name), "training_log.json"))


def _in_hub_cache(name: str) -> bool:
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a Hub id ("./base", "a/b/c"), so not in its cache
        return False


def _native_bf16(torch, device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: compute capability 8.0 or more (transformers asks
    ``torch.cuda.is_bf16_supported()``, which counts emulation as support)."""
    return (torch.cuda.is_bf16_supported(including_emulation=False)
            and torch.cuda.get_device_capability(device) >= (8, 0))


def load_profile_model(profile: str | Profile, lora: bool = False, name_or_path: str | None = None,
                       lora_seed: int | None = None, **overrides):
    """``load_model`` with a profile's model, quantization, device, dtype and LoRA sizes; ``overrides`` win.

    ``lora_seed``: draw the fresh adapter's initial weights from this seed (torch's own random state is left as it
    was), so that methods compared at "the same seed" start from the same adapter, not from wherever torch's random
    state stood when each was loaded; ``None``: from that state."""
    import torch

    p = get_profile(profile) if isinstance(profile, str) else profile
    kwargs = dict(quantization=p.quantization, device=p.device, dtype=p.dtype,
                  gradient_checkpointing=p.gradient_checkpointing and lora, lora=p.lora_config() if lora else None)
    kwargs.update(overrides)
    if lora_seed is None:
        return load_model(name_or_path or p.model_name, **kwargs)
    # torch.manual_seed casts: True and 1.5 drew the adapter of seed 1, "3" that of seed 3
    positive_int(lora_seed, "lora_seed", "load_profile_model", none_ok=True, minimum=0)
    if kwargs["lora"] is None:
        raise ValueError(f"load_profile_model: lora_seed={lora_seed!r} seeds a new adapter, but no adapter is added "
                         "(lora=False)")
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        torch.manual_seed(lora_seed)  # every device's generator: the adapter is drawn on the model's device
        return load_model(name_or_path or p.model_name, **kwargs)


_REWARD_QUANTIZATION = object()  # train_reward_model's default: the profile's reward_quantization


def format_reward_recipe(profile, reward: str = "process", max_steps: int | None = None) -> str:
    """The recipe ``train_reward_model(..., profile, reward, max_steps=max_steps)`` trains by, in one line as notebooks
    02 (the PRM) and 03 (the ORM) print it above their training bar: the LoRA sizes (``profile.lora_config()``), then
    the learning rate, the epochs (or ``max_steps``) and the batch of ``profile.reward_training_args(reward)``, e.g.
    "LoRA r=8 alpha=16 dropout 0.0 on all-linear | lr 0.002 | 1.0 epochs | batch 32 x 1"."""
    lora, args = profile.lora_config(), profile.reward_training_args(reward)
    length = f"max_steps {max_steps}" if max_steps else f"{args['num_train_epochs']} epochs"
    return (f"LoRA r={lora['r']} alpha={lora['lora_alpha']} dropout {lora['lora_dropout']} on "
            f"{lora['target_modules']} | lr {args['learning_rate']} | {length} | "
            f"batch {args['per_device_train_batch_size']} x {args['gradient_accumulation_steps']}")


def train_reward_model(base, rows, profile, reward: str = "process", *, quantization=_REWARD_QUANTIZATION,
                       max_steps: int | None = None, seed: int = 0):
    """Notebook 02's PRM (``reward="process"``, on stepwise rows) or notebook 03's ORM (``"outcome"``, on outcome
    rows) trained on ``base`` by the profile's recipe: its LoRA (``profile.lora_config()``: no LoRA dropout on the CPU
    profiles, where one epoch cannot overfit and dropout costs time) and its training arguments
    (``profile.reward_training_args(reward)``), a loss logged every 10 steps, and batches of solutions of like length
    (less padding). ``quantization``: the frozen base's, ``"4bit"`` or None (default: the profile's
    ``reward_quantization``). ``max_steps``: optimizer steps (None: the profile's epochs). One recipe for every
    base, so that notebook 02's control on the policy's plain base differs from its PRM by the base alone. The
    Trainer writes to a scratch folder, deleted on return: the caller saves the model where it belongs."""
    from ..reward_training import train_outcome_reward_model, train_process_reward_model  # torch: seconds to import
    trainers = {"process": train_process_reward_model, "outcome": train_outcome_reward_model}
    if reward not in trainers:
        raise ValueError(f"train_reward_model: reward must be 'process' or 'outcome', got {reward!r}")
    max_steps = -1 if max_steps is None else positive_int(max_steps, "max_steps", "train_reward_model")
    quantization = profile.reward_quantization if quantization is _REWARD_QUANTIZATION else quantization
    with tempfile.TemporaryDirectory() as scratch:
        return trainers[reward](base, rows, scratch, quantization=quantization, lora=profile.lora_config(),
                                max_steps=max_steps, seed=seed, logging_steps=10,
                                train_sampling_strategy="group_by_length", **profile.reward_training_args(reward))


def control_wanted(profile, requested: bool | None = None) -> bool:
    """Whether notebook 02 also trains its PRM recipe on the policy's plain base, the control that shows what the
    reward base brings: ``requested`` when given, else only where the reward base is not the policy's own base (the
    tiny profile's verifier; on a GPU profile the two are the same LLM and a control would repeat the PRM)."""
    if requested is not None:
        return flag(requested, "requested", "control_wanted")
    return profile.reward_base != profile.model_name
