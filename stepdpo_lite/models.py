"""Loading a causal LM for training or scoring: optional 4-bit nf4 quantization, optional LoRA.

One function, ``load_model``, does what every notebook needs::

    model, tokenizer = load_model("Qwen/Qwen2.5-0.5B-Instruct", quantization="4bit", lora=True)

- ``quantization="4bit"``: QLoRA's recipe (Dettmers et al. 2023, arXiv:2305.14314): nf4 weights,
  double quantization, compute in ``dtype``; then ``prepare_model_for_kbit_training`` when a LoRA
  adapter is trained on top. bitsandbytes >= 0.46 runs this on CPU too, so the tiny profile goes
  through the very same code path as a GPU.
- ``lora``: ``None`` (no adapter), ``True`` (defaults: r=16 on all linear projections), a ``dict``
  of ``LoraConfig`` fields, or a ready ``peft.LoraConfig``.
- A folder saved by PEFT (it holds ``adapter_config.json``) loads its base model and the adapter on top.

``PROFILES`` hold the sizes the notebooks use: ``tiny`` (CPU, the toy world's tiny base), ``t4-16gb``
and ``24gb`` (GPU, GSM8K + Qwen2.5), and ``smoke``: the GPU profiles' code path (GSM8K, chat prompts,
4-bit + LoRA, Monte-Carlo labels) at toy size on a CPU, for tests (``smoke.py``; ``prepare_profile`` builds
its base on first use).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# LoRA on every linear projection (attention and MLP), not only q/v: it trains better at the same rank
# (QLoRA, Dettmers et al. 2023). PEFT's "all-linear" picks them for any architecture and leaves lm_head out.
DEFAULT_LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", bias="none",
                    task_type="CAUSAL_LM")

PAD_TOKEN_FALLBACKS = 0  # how many times load_model had to set pad_token = eos_token (see _ensure_pad_token)


# ----------------------------------------------------------------------------- profiles

@dataclass(frozen=True)
class Profile:
    """Model and sizes for one kind of machine; the notebooks read everything from here."""

    name: str = field(metadata={"help": "Profile name: 'tiny', 't4-16gb', '24gb' or 'smoke'."})
    model_name: str = field(metadata={"help": "Base model: a Hub id or a local folder."})
    task: str = field(default="gsm8k", metadata={
        "help": "The problems (tasks.get_task): 'toy' (the offline arithmetic world, a checker for every step) or "
                "'gsm8k' (final answers only; step labels from Monte-Carlo rollouts)."})
    dataset: str | None = field(default=None, metadata={
        "help": "Where the task's problems come from: for 'gsm8k' the Hub id (None: 'openai/gsm8k') or a local "
                "path (gsm8k.load_problems)."})
    reward_model_name: str | None = field(default=None, metadata={
        "help": "Base of the reward models (PRM, ORM), e.g. a math-tuned model: a Hub id or a local folder; "
                "None: model_name."})
    quantization: str | None = field(default="4bit", metadata={"help": "'4bit' (nf4, QLoRA) or None."})
    dtype: str = field(default="auto", metadata={"help": "Compute dtype: 'float32', 'float16', 'bfloat16' or 'auto'."})
    device: str | None = field(default=None, metadata={"help": "'cpu', 'cuda' or None (cuda when available)."})
    max_length: int = field(default=1024, metadata={"help": "Longest prompt + solution in tokens."})
    max_new_tokens: int = field(default=512, metadata={"help": "Longest sampled solution in tokens."})
    train_batch_size: int = field(default=4, metadata={"help": "Per-device training batch size."})
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "Batches per optimizer step."})
    eval_batch_size: int = field(default=16, metadata={"help": "Batch size for scoring and sampling."})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Trade compute for activation memory."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (0 on the CPU profiles: it costs time "
                                                                 "and one epoch cannot overfit)."})
    reward_learning_rate: float = field(default=1e-4, metadata={"help": "Learning rate of PRM/ORM LoRA training."})
    reward_epochs: float = field(default=1.0, metadata={"help": "Epochs of PRM/ORM training."})
    dpo_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of (Stepwise) DPO LoRA training."})
    dpo_epochs: float = field(default=1.0, metadata={"help": "Epochs of (Stepwise) DPO training."})
    n_train_problems: int = field(default=1000, metadata={"help": "Training problems sampled in notebook 01."})
    n_eval_problems: int = field(default=200, metadata={"help": "Held-out problems for evaluation."})
    n_samples_per_problem: int = field(default=4, metadata={"help": "Solutions sampled per training problem."})
    best_of_n: int = field(default=16, metadata={"help": "Largest N of the best-of-N evaluation."})
    sample_batch_size: int = field(default=32, metadata={
        "help": "Rows a batch when sampling (solutions, Monte-Carlo rollouts, best-of-N candidates, evaluation)."})
    sampling_tokens_per_s: float | None = field(default=None, metadata={
        "help": "Sampling speed assumed by time estimates: new tokens a second summed over a batch of "
                "sample_batch_size rows (None: unknown, estimates count tokens only)."})
    mc_budget_minutes: float | None = field(default=None, metadata={
        "help": "Notebook 01 labels only as many problems by Monte-Carlo rollouts as fit this many minutes at "
                "sampling_tokens_per_s (None: no cap)."})

    @property
    def reward_base(self) -> str:
        """The reward models' base model: ``reward_model_name``, else the policy's ``model_name``."""
        return self.reward_model_name or self.model_name

    def lora_config(self) -> dict:
        """The LoRA fields of this profile, for ``load_model(..., lora=profile.lora_config())``."""
        return {**DEFAULT_LORA, "r": self.lora_r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout}

    def reward_training_args(self) -> dict:
        """The keywords of ``train_process_reward_model`` / ``train_outcome_reward_model`` this profile sets."""
        return dict(learning_rate=self.reward_learning_rate, num_train_epochs=self.reward_epochs,
                    per_device_train_batch_size=self.train_batch_size, per_device_eval_batch_size=self.eval_batch_size,
                    gradient_accumulation_steps=self.gradient_accumulation_steps,
                    gradient_checkpointing=self.gradient_checkpointing, max_length=self.max_length,
                    device=self.device, dtype=self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)


def _tiny_base_dir() -> str:
    from .toyworld import TINY_BASE_DIR
    return os.environ.get("STEPDPO_TINY_BASE", str(TINY_BASE_DIR))


def _tiny_reward_base_dir() -> str:
    from .toyworld import TINY_VERIFIER_DIR
    return os.environ.get("STEPDPO_TINY_REWARD_BASE", str(TINY_VERIFIER_DIR))


def _smoke_base_dir() -> str:
    from .smoke import smoke_base_dir
    return str(smoke_base_dir())


def _gsm8k_slice() -> str:
    from .smoke import GSM8K_SLICE
    return str(GSM8K_SLICE)


# Sampling speeds of the GPU profiles (time estimates only). docs/benchmarks.md measured 16-bit sampling on an
# H100 at 36 ms a decoding step for the 0.5B model at 16 rows (439 tokens/s) and for the 1.5B model at 32 rows
# (881 tokens/s): the same time a step at either size and batch, so decoding is bound by per-step overhead
# (kernel launches, Python), not by the batch. A T4's step is assumed 1.5x slower (lower clocks, Colab's slower
# host CPU; not measured): 32 rows / 0.055 s = ~580 tokens/s. A 24 GB card (RTX 3090/4090, A10, L4): 1.25x,
# 32 rows / 0.045 s = ~710 tokens/s. Budget: Monte-Carlo labelling <= 20 min (notebook 01 prints its estimate
# and labels only the problems that fit).
_T4_TOKENS_PER_S, _24GB_TOKENS_PER_S = 32 / 0.055, 32 / 0.045

PROFILES: dict[str, Profile] = {
    # Laptop CPU, minutes: the ~1M-parameter toy Llama in float32. Set quantization="4bit" to run the
    # exact QLoRA path on CPU (bitsandbytes >= 0.46); it is slower there and buys nothing at this size.
    # The reward models start from data/tiny-verifier: the tiny base pretrained as a verifier on ~1.5 M graded
    # solutions (verifier_pretraining.py), as real PRMs start from a math-tuned LLM; $STEPDPO_TINY_REWARD_BASE
    # gives them another base (e.g. data/tiny-base, the control of notebook 02).
    "tiny": Profile(name="tiny", model_name=_tiny_base_dir(), reward_model_name=_tiny_reward_base_dir(), task="toy",
                    quantization=None, dtype="float32", device="cpu",
                    max_length=256, max_new_tokens=160, train_batch_size=32, gradient_accumulation_steps=1,
                    eval_batch_size=128, gradient_checkpointing=False, lora_r=8, lora_alpha=16, lora_dropout=0.0,
                    reward_learning_rate=2e-3, reward_epochs=1.0, dpo_learning_rate=1e-4, dpo_epochs=1.0,
                    n_train_problems=600, n_eval_problems=150, n_samples_per_problem=4, best_of_n=16,
                    sample_batch_size=128),
    # Colab's free T4: 16 GB, no bfloat16, so float16 compute.
    "t4-16gb": Profile(name="t4-16gb", model_name="Qwen/Qwen2.5-0.5B-Instruct", quantization="4bit", dtype="float16",
                       max_length=1024, max_new_tokens=512, train_batch_size=4, gradient_accumulation_steps=4,
                       eval_batch_size=16, gradient_checkpointing=True, lora_r=16, lora_alpha=32,
                       reward_learning_rate=1e-4, dpo_learning_rate=5e-5, n_train_problems=1000,
                       n_eval_problems=200, n_samples_per_problem=4, best_of_n=16,
                       sample_batch_size=32, sampling_tokens_per_s=_T4_TOKENS_PER_S, mc_budget_minutes=20),
    # One 24 GB card (RTX 3090/4090, A10, L4).
    "24gb": Profile(name="24gb", model_name="Qwen/Qwen2.5-1.5B-Instruct", quantization="4bit", dtype="bfloat16",
                    max_length=1024, max_new_tokens=512, train_batch_size=8, gradient_accumulation_steps=2,
                    eval_batch_size=32, gradient_checkpointing=True, lora_r=32, lora_alpha=64,
                    reward_learning_rate=1e-4, dpo_learning_rate=5e-5, n_train_problems=2000,
                    n_eval_problems=500, n_samples_per_problem=4, best_of_n=16,
                    sample_batch_size=32, sampling_tokens_per_s=_24GB_TOKENS_PER_S, mc_budget_minutes=20),
    # Tests: the GPU profiles' code path (GSM8K through gsm8k.load_problems, chat-formatted prompts, 4-bit nf4 +
    # LoRA with gradient checkpointing, Monte-Carlo step labels) at toy size on a CPU, offline: a ~0.2M-parameter
    # Qwen2 with a BPE tokenizer built from data/gsm8k (smoke.py; built on first use into runs/smoke-base), and
    # disjoint train/validation/test carved from the 200 shipped GSM8K problems. Its figures mean nothing.
    "smoke": Profile(name="smoke", model_name=_smoke_base_dir(), task="gsm8k", dataset=_gsm8k_slice(),
                     quantization="4bit", dtype="float32", device=None, max_length=512, max_new_tokens=96,
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
    """Make what a profile needs locally before its first use: the ``smoke`` base is built (seconds) when
    missing; other profiles need nothing (their models come from the Hub or ship in ``data/``)."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if p.name == "smoke":
        from .smoke import ensure_smoke_base
        ensure_smoke_base(p.model_name, out=out)
    return p


# ----------------------------------------------------------------------------- loading

def use_expandable_segments() -> None:
    """Let PyTorch's CUDA allocator grow its segments instead of keeping fragments: it halves the ``24gb``
    profile's peak memory in preference training at the same speed (docs/benchmarks.md).

    Call it before torch touches the GPU (the notebooks' setup cell does, before importing torch). A value
    already in ``$PYTORCH_CUDA_ALLOC_CONF`` is kept.
    """
    import sys
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        logger.warning("use_expandable_segments: CUDA is already initialised, so the allocator setting has no "
                       "effect until the process restarts")


def resolve_device(device: str | None = None) -> str:
    import torch
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype=None, device: str = "cpu"):
    """``None``/``"auto"``: float32 on CPU, bfloat16 on a GPU that has it, else float16."""
    import torch
    if dtype is None or dtype == "auto":
        if not str(device).startswith("cuda"):
            return torch.float32
        # Without emulation: a T4 "supports" bfloat16 only in slow emulation, and the Trainer refuses bf16 there.
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"load_model: unknown dtype {dtype!r}")
        return getattr(torch, dtype)
    return dtype


def trainer_precision(dtype, device: str) -> dict:
    """``TrainingArguments`` mixed-precision flags that match the model's compute ``dtype``: ``bf16`` for
    bfloat16, ``fp16`` (with loss scaling) for float16, neither on CPU or in float32."""
    import torch
    on_gpu = str(device).startswith("cuda")
    return {"bf16": on_gpu and dtype == torch.bfloat16, "fp16": on_gpu and dtype == torch.float16}


def make_lora_config(lora):
    """``True`` -> defaults, ``dict`` -> defaults updated by it, ``LoraConfig`` -> itself."""
    from peft import LoraConfig
    if isinstance(lora, LoraConfig):
        return lora
    if lora is True:
        return LoraConfig(**DEFAULT_LORA)
    if isinstance(lora, dict):
        return LoraConfig(**{**DEFAULT_LORA, **lora})
    raise ValueError(f"load_model: lora must be None, True, a dict or a peft.LoraConfig, got {type(lora).__name__}")


def _ensure_pad_token(tokenizer, model=None) -> None:
    """Batches need a pad token; many base models ship without one. Fall back to the eos token.

    That is safe for everything in this package, which masks padding by the attention mask and never
    by token id; do not use pad id == eos id to mask labels in your own collator.
    """
    global PAD_TOKEN_FALLBACKS
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("load_model: the tokenizer has neither a pad token nor an eos token; set one")
        tokenizer.pad_token = tokenizer.eos_token
        PAD_TOKEN_FALLBACKS += 1
        logger.warning("tokenizer had no pad token: using its eos token %r as pad token", tokenizer.eos_token)
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def write_portable_adapter_config(folder: str | os.PathLike) -> None:
    """Make a saved LoRA adapter's ``adapter_config.json`` load on another machine and save byte-identically.

    PEFT writes ``base_model_name_or_path`` as given, so a local base becomes the absolute path of the machine
    that trained it; it is rewritten relative to the adapter folder (``adapter_base`` resolves it back). A Hub id
    stays as it is. PEFT also writes ``target_modules`` from a set, in an order that changes from one Python
    process to the next; it is sorted, so that saving the same adapter twice gives the same files (``bestofn``
    compares them to reuse rewards already computed). A folder without an adapter is left alone."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.exists():
        return
    config = json.loads(config_path.read_text())
    base = config.get("base_model_name_or_path")
    if base and os.path.isabs(base) and os.path.isdir(base):
        config["base_model_name_or_path"] = os.path.relpath(base, folder.resolve())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    tmp = config_path.with_name(f".{config_path.name}.tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))  # PEFT's own layout
    os.replace(tmp, config_path)  # never half-written


def adapter_base(adapter_dir: str | os.PathLike) -> str:
    """The base model a saved adapter names: a relative path is resolved against the adapter folder when it
    exists there (``write_portable_adapter_config``), anything else (a Hub id, an absolute path) is returned as
    written."""
    adapter_dir = Path(adapter_dir)
    base = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    if base and not os.path.isabs(base) and (adapter_dir / base).is_dir():
        return str((adapter_dir / base).resolve())
    return base


def keep_4bit_weights_unpacked(model) -> int:
    """Make every bitsandbytes ``Linear4bit`` of ``model`` compute the same way on every x86 CPU; returns
    how many layers it touched.

    Why: from bitsandbytes 0.50, on a CPU with AVX512-BF16, ``Linear4bit.forward`` in eval mode without
    grad repacks its weight *in place* into a CPU inference layout (``quant_state.packing_format_for_cpu``)
    and never converts it back. Every later forward, training included, then goes through ``gemv_4bit``,
    which has no autograd kernel and computes in bfloat16: LoRA gradients stop at those layers, a layer
    with a bias raises "a view of a leaf Variable ... in-place operation", and scores change by ~1e-3
    against the same model on a CPU without AVX512-BF16. So the kit turns that packing off
    (``support_avx512bf16_for_cpu = False``) and undoes it where a forward already did it. It costs
    some CPU inference speed on such machines and changes nothing on a GPU or on other CPUs.
    Call it again on a 4-bit model you loaded yourself; ``load_model``, the reward models and
    ``StepwiseDPOTrainer`` call it for you.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:  # no bitsandbytes, no 4-bit layers
        return 0
    count = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state)
        count += 1
    return count


def load_model(name_or_path: str | os.PathLike, quantization: str | None = "4bit", lora=None, device: str | None = None,
               dtype=None, gradient_checkpointing: bool = False, trainable: bool | None = None):
    """Load ``(model, tokenizer)``.

    Args:
        name_or_path: a Hub id or local folder of a causal LM, or a PEFT adapter folder (then its base
            model, named in ``adapter_config.json``, is loaded and the adapter put on top).
        quantization: ``"4bit"`` for nf4 with double quantization (QLoRA), or ``None``.
        lora: ``None``, ``True``, a dict of ``LoraConfig`` fields or a ``LoraConfig``: adds a new adapter.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None`` picks cuda when available.
        dtype: weights (unquantized) or compute (4-bit) dtype; ``None`` picks one for the device.
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        trainable: whether a loaded adapter stays trainable (default: only when ``lora`` is given).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if quantization not in (None, "4bit"):
        raise ValueError(f"load_model: quantization must be '4bit' or None, got {quantization!r}")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    path = Path(name_or_path)
    adapter_dir = path if (path / "adapter_config.json").exists() else None
    if adapter_dir is not None and lora is not None:
        raise ValueError(f"load_model: {path} already holds a LoRA adapter and lora=... asks for a new one; "
                         "pass trainable=True instead to keep training the saved adapter")
    base_name = adapter_base(adapter_dir) if adapter_dir else str(name_or_path)

    tokenizer_dir = adapter_dir if adapter_dir and (adapter_dir / "tokenizer_config.json").exists() else base_name
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    kwargs = dict(dtype=dtype)
    if quantization == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": torch.device(device).index or 0} if device.startswith("cuda") else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base_name, **kwargs)
    if quantization is None:
        model.to(device)
    else:
        keep_4bit_weights_unpacked(model)
    _ensure_pad_token(tokenizer, model)

    training = lora is not None or bool(trainable)
    if quantization == "4bit" and training:
        # Casts norms and embeddings to float32 and makes inputs require grad (needed with checkpointing).
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if training:
            model.enable_input_require_grads()
    if gradient_checkpointing:
        model.config.use_cache = False

    if adapter_dir is not None:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=training)
        for config in model.peft_config.values():  # the base as loaded, not as written relative to the adapter
            config.base_model_name_or_path = base_name
    if lora is not None:
        from peft import get_peft_model
        model = get_peft_model(model, make_lora_config(lora))
    if not training:
        model.eval()
    return model, tokenizer


def load_profile_model(profile: str | Profile, lora: bool = False, name_or_path: str | None = None, **overrides):
    """``load_model`` with a profile's model, quantization, device, dtype and LoRA sizes; ``overrides`` win."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    kwargs = dict(quantization=p.quantization, device=p.device, dtype=p.dtype,
                  gradient_checkpointing=p.gradient_checkpointing and lora, lora=p.lora_config() if lora else None)
    return load_model(name_or_path or p.model_name, **{**kwargs, **overrides})
