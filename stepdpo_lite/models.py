"""Loading a causal LM for training or scoring: optional 4-bit nf4 quantization, optional LoRA.

One function, ``load_model``, does what every notebook needs::

    model, tokenizer = load_model("Qwen/Qwen2.5-0.5B-Instruct", quantization="4bit", lora=True)

- ``quantization="4bit"``: QLoRA's recipe (Dettmers et al. 2023, arXiv:2305.14314): nf4 weights,
  double quantization, compute in ``dtype``; then ``prepare_model_for_kbit_training`` (norms and
  embeddings in float32), to train or to score alike. bitsandbytes >= 0.50 runs this on CPU too, so the
  tiny profile goes through the very same code path as a GPU.
- ``lora``: ``None`` (no adapter), ``True`` (defaults: r=16 on all linear projections), a ``dict``
  of ``LoraConfig`` fields, or a ready ``peft.LoraConfig``.
- A folder saved by PEFT (it holds ``adapter_config.json``) loads its base model and the adapter on top.

The notebooks' sizes (which model, batch, learning rate per GPU or CPU) are in ``stepdpo_lite/tutorial/profiles.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from huggingface_hub import constants as hub_constants

from .atomic import write_json_atomic
from .checks import positive_int

logger = logging.getLogger(__name__)

# LoRA on every linear projection (attention and MLP), not only q/v: it trains better at the same rank
# (QLoRA, Dettmers et al. 2023). PEFT's "all-linear" picks them for any architecture and leaves lm_head out.
DEFAULT_LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", bias="none",
                    task_type="CAUSAL_LM")

INCOMPLETE = "load_model: the save at {} is incomplete: {} is missing (was the save interrupted?)"


# ----------------------------------------------------------------------------- loading

def resolve_device(device: str | None = None) -> str:
    import torch  # torch, transformers and peft in the functions: rewards and tutorial.profiles import this torch-free
    if device is not None and str(device).split(":")[0] not in ("cpu", "cuda"):  # "gpu" put a 4-bit model on the CPU
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or None, got {device!r}")
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype=None, device: str = "cpu", who: str = "load_model"):
    """``None``/``"auto"``: float32 on CPU, bfloat16 on a GPU that has it, else float16 (``who``: the caller named)."""
    import torch
    if dtype is None or dtype == "auto":
        if not str(device).startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if default_bf16() else torch.float16  # a T4 "supports" it only in slow emulation
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"{who}: unknown dtype {dtype!r}")
        return getattr(torch, dtype)
    return dtype


def trainer_precision(dtype, device: str) -> dict:
    """``TrainingArguments`` mixed-precision flags that match the model's compute ``dtype``: ``bf16`` for
    bfloat16, ``fp16`` (with loss scaling) for float16, neither on CPU or in float32."""
    import torch
    on_gpu = str(device).startswith("cuda")
    return {"bf16": on_gpu and dtype == torch.bfloat16, "fp16": on_gpu and dtype == torch.float16}


def lora_only(model) -> bool:
    """Whether every adapter of a PEFT model is LoRA (not IA3, LoHa, prompt tuning, ...)."""
    from peft import LoraConfig
    return all(isinstance(c, LoraConfig) for c in model.peft_config.values())


def _fresh_lora(model) -> bool:
    """Whether a PEFT model's adapters are all LoRA and untrained (every B = 0: the adapter is the identity). Any
    other adapter or a trained one is not: TRL's frozen "ref" copy must stay."""
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    return bool(lora_b) and lora_only(model) and all(not p.any() for p in lora_b)


def reference_adapter(model):
    """A PEFT policy's reference, as a context: TRL's frozen "ref" adapter (a copy of one trained before), else its
    adapters disabled (the base model)."""
    from trl.trainer.utils import use_adapter
    return use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None)


def default_bf16(use_cpu: bool = False) -> bool:
    """Whether a GPU here computes in bfloat16 (``resolve_dtype``'s choice), and what a trainer config's unset ``bf16``
    should mean: TRL's configs turn it on, and on a CPU (with ``use_cpu=True``, which transformers then allows) that
    trains under bfloat16 autocast, not in the float32 the model is in. On only where a bf16-capable GPU trains."""
    import torch  # not is_torch_bf16_gpu_available(): it counts emulation, so a T4 would train in emulated bf16
    return not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def prepare_adapters(trainer) -> None:
    """A PEFT policy's adapters as a TRL trainer should train them: call it after building one (StepwiseDPOTrainer
    does). TRL's DPOTrainer stores a 4-bit model's LoRA weights in bfloat16 (QLoRA's recipe): Adam's small steps round
    away (20 at lr 5e-5 left 41% of a LoRA A unmoved), a T4's fp16 scaler cannot unscale their gradients. Trainable
    bfloat16 weights go to float32, under bf16 too (its autocast computes in bf16), but a full fine-tune's and those
    under DeepSpeed or FSDP (one dtype per flat parameter). TRL's frozen "ref" copy of a fresh LoRA adapter (B = 0:
    its reference is the adapter disabled, the same numbers) is dropped; a trained one's exact weights come from it."""
    import torch
    from accelerate.utils import is_peft_model
    model = trainer.model
    keep_bf16 = trainer.args.bf16 and (not is_peft_model(model) or trainer.is_deepspeed_enabled
                                       or trainer.is_fsdp_enabled)
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16 and not keep_bf16:
            param.data = param.data.float()
    if is_peft_model(model) and "ref" in model.peft_config:
        params, fresh = dict(model.named_parameters()), _fresh_lora(model)
        with torch.no_grad():
            for name, p in params.items():
                if (ref := re.sub(r"\.default(\.|$)", r".ref\1", name)) == name or ref not in params:
                    continue
                if not keep_bf16 and ".default." in name:  # DPOTrainer copied these (LoRA's lora_A.default.weight)
                    p.copy_(params[ref])  # into "ref" before its bfloat16 cast: the exact weights come back from there
                elif not fresh:  # not copied before the cast (bf16 kept; IA3's ia3_l.default, LoHa's, LoKr's): the
                    params[ref].copy_(p)  # trained adapter copied in again
            if fresh:
                model.delete_adapter("ref")


def make_lora_config(lora):
    """``True`` -> defaults, ``dict`` -> defaults updated by it, ``LoraConfig`` -> itself; checked before a load."""
    from peft import LoraConfig
    names = sorted(f.name for f in fields(LoraConfig))
    if isinstance(lora, dict) and (unknown := [k for k in lora if k not in names]):  # was a TypeError, model loaded
        raise ValueError(f"load_model: lora has unknown key(s) {unknown}; LoraConfig's fields are {names}")
    if not (lora is True or isinstance(lora, (dict, LoraConfig))):
        raise ValueError(f"load_model: lora must be None, True, a dict or a peft.LoraConfig, got {lora!r}")
    config = lora if isinstance(lora, LoraConfig) else LoraConfig(**{**DEFAULT_LORA, **({} if lora is True else lora)})
    positive_int(config.r, "r", "load_model: lora")  # r=True, "8" or 0: a TypeError after the load
    return config


def _ensure_pad_token(tokenizer, model) -> None:
    """Batches need a pad token; many base models ship without one. Fall back to the eos token.

    That is safe for everything in this package, which masks padding by the attention mask and never
    by token id; do not use pad id == eos id to mask labels in your own collator.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("load_model: the tokenizer has neither a pad token nor an eos token; set one")
        tokenizer.pad_token = tokenizer.eos_token
        logger.warning("tokenizer had no pad token: using its eos token %r as pad token", tokenizer.eos_token)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


BASE_RECORD = "base_model.json"  # beside a saved adapter: where its local base was when it was trained, and how loaded


def _base_record(folder: Path) -> dict:
    """``folder``'s ``BASE_RECORD``, ``{}`` where it has none (a full model, a save from before it existed)."""
    return json.loads((folder / BASE_RECORD).read_text()) if (folder / BASE_RECORD).exists() else {}


def _weight_files(folder: str | os.PathLike) -> list[Path]:
    return sorted([*Path(folder).glob("model*.safetensors"), *Path(folder).glob("pytorch_model*.bin")])  # or shards


def base_fingerprint(base: str | os.PathLike) -> dict:
    """What tells a local base model from another put at its path: its config's shape, weight files' sizes, hashes."""
    config = json.loads(Path(base, "config.json").read_text()) if Path(base, "config.json").exists() else {}
    weights = {}
    for file in _weight_files(base):
        with open(file, "rb") as stream:  # its last MiB, the last layers' (any retraining changes them): milliseconds
            stream.seek(max(0, file.stat().st_size - (1 << 20)))
            weights[file.name] = f"{file.stat().st_size} {hashlib.sha256(stream.read()).hexdigest()[:16]}"
    return {**{key: config.get(key) for key in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers")},
            "weights": weights}


def write_portable_adapter_config(folder: str | os.PathLike, model=None) -> None:
    """Make a saved LoRA adapter's ``adapter_config.json`` load on another machine and save byte-identically.

    PEFT writes ``base_model_name_or_path`` as given, so a local base becomes the absolute path of the machine
    that trained it; it is rewritten relative to the adapter folder, so that a repository cloned elsewhere with
    its runs inside still loads. The absolute path is kept in ``base_model.json``, with its ``base_fingerprint``
    (``load_model`` warns of another base there), so that a run folder moved away from the base on the same machine
    loads too (``adapter_base`` tries both). A Hub id stays as it is. PEFT also writes ``target_modules`` from a set,
    in an order that changes from one Python process to the next; it is sorted, so that saving the same adapter twice
    gives the same config (``bestofn`` compares them to reuse rewards already computed). Given the trained ``model``,
    ``base_model.json`` records how its base was loaded (``adapter_quantization``); no adapter: nothing done."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.exists():
        return
    config = json.loads(config_path.read_text())
    base = config.get("base_model_name_or_path")
    if base and not os.path.isabs(base) and not (folder / base).is_dir() and os.path.isdir(base):
        base = os.path.abspath(base)  # as given to PEFT: relative to the working directory, not to the adapter
    record = _base_record(folder)
    if base and os.path.isabs(base) and os.path.isdir(base):
        relative = os.path.relpath(base, folder.resolve())  # a base inside the folder gets "./": "base" is a Hub id
        config["base_model_name_or_path"] = relative if relative.startswith(".") else os.path.join(".", relative)
        record["trained_with"], record["base_fingerprint"] = base, base_fingerprint(base)  # load_model checks it
    if model is not None:  # without it (GenerativeVerifier.save), what an earlier call recorded stays
        record["quantization"] = "4bit" if getattr(model, "is_loaded_in_4bit", False) else None
    if record:
        write_json_atomic(folder / BASE_RECORD, record)
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    write_json_atomic(config_path, config)  # PEFT's own layout: sorted keys, indent 2


def adapter_base(adapter_dir: str | os.PathLike) -> str:
    """The base model a saved adapter names. A Hub id or an absolute path is returned as written; a relative
    path (``write_portable_adapter_config``) is resolved against the adapter folder, else the absolute path the
    adapter was trained with (``base_model.json``) is used when it exists; else a ``FileNotFoundError`` says
    where the base was looked for."""
    adapter_dir = Path(adapter_dir)
    base = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    if not base or os.path.isabs(base) or not base.startswith("."):  # a Hub id never starts with "."
        return base
    beside = adapter_dir / base
    if beside.is_dir():
        return str(beside.resolve())
    trained_with = _base_record(adapter_dir).get("trained_with")
    if trained_with and os.path.isdir(trained_with):
        return trained_with
    raise FileNotFoundError(
        f"{adapter_dir}: its base model {base!r} (relative to the adapter) is not at {beside.resolve()}"
        + (f", nor where it was trained ({trained_with})" if trained_with else "")
        + ": put the base model there, or the run folder back where it can see the base")


def adapter_quantization(folder: str | os.PathLike, default=None):
    """``"4bit"`` or None: how the base of the adapter saved in ``folder`` was loaded in training, as
    ``base_model.json`` records it (``write_portable_adapter_config`` given the model); ``default`` for an adapter
    that does not record it, None for a folder without an adapter (a full model) or a Hub id."""
    folder = Path(folder).expanduser()
    return _base_record(folder).get("quantization", default if (folder / "adapter_config.json").exists() else None)


def saved_reward_config(folder: str | os.PathLike) -> str | None:
    """The name of the ``*_reward_config.json`` that marks ``folder`` as a saved reward model, or None."""
    return next((p.name for p in Path(folder).glob("*_reward_config.json")), None)


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
        import bitsandbytes as bnb  # optional here: not installed, no 4-bit layers to fix
    except ImportError:  # no bitsandbytes, no 4-bit layers
        return 0
    count = 0
    for module in model.modules() if hasattr(model, "modules") else ():  # a path or None: nothing loaded yet
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse  # internal, as bnb
            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state)
        count += 1
    return count


def _require_local_folder(name_or_path, who: str, hub_error: OSError | None = None) -> None:
    """A name that can only be a local folder (absolute, ``./``, ``~``, or two ``/``: a Hub id is ``org/name``) must
    exist: transformers calls a missing one a bad Hub id or, offline, a failed connection, hiding the wrong path.
    After ``hub_error`` (not loadable from the Hub either), so must an ``org/name`` whose ``org`` is a folder here,
    and any other name ("nopolicy", "runs/nope": a folder or a Hub id) gets an error that names both, and the path."""
    text, where = os.fspath(name_or_path), os.path.abspath(os.path.expanduser(name_or_path))
    local = os.path.isabs(text) or text.startswith((".", "~")) or text.count("/") > 1 or (
        hub_error is not None and "/" in text and Path(text).parent.is_dir())  # "runs/policy"
    if local and not os.path.exists(where):
        raise FileNotFoundError(f"{who}: no such folder: {text}" + f" ({where})" * (where != text)) from hub_error
    if hub_error is not None and not os.path.exists(where):  # the error spoke of the Hub only
        hub = ("the Hub is offline (HF_HUB_OFFLINE=1) and its cache holds no model of that id" if
               hub_constants.HF_HUB_OFFLINE else "the Hub gave no model of that id (no such repo, or not reachable)")
        raise FileNotFoundError(f"{who}: {text!r} is no folder here ({where}), and {hub}") from hub_error


@contextmanager
def quiet_deprecated_checkpointing_read():  # PeftModel and TRL's DPOTrainer read a name transformers 5 deprecates
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def load_model(name_or_path: str | os.PathLike, quantization: str | None = "4bit", lora=None, device: str | None = None,
               dtype=None, gradient_checkpointing: bool = False, trainable: bool | None = None):
    """Load ``(model, tokenizer)``. Raises ValueError: bad argument, no/incomplete model; FileNotFoundError: no folder.

    Args:
        name_or_path: a Hub id or local folder of a causal LM, or a PEFT adapter folder (then its base
            model, named in ``adapter_config.json``, is loaded and the adapter put on top).
        quantization: ``"4bit"`` for nf4 with double quantization (QLoRA), or ``None``.
        lora: ``None``, ``True``, a dict of ``LoraConfig`` fields or a ``LoraConfig``: adds a new adapter.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None`` picks cuda when available.
        dtype: weights (unquantized) or compute (4-bit) dtype; ``None`` picks one for the device.
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        trainable: load to train without ``lora`` (a new adapter, which a saved adapter's folder refuses; it
            always trains): the saved adapter's weights, or with ``quantization=None`` and no adapter every weight.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if quantization not in (None, "4bit"):
        raise ValueError(f"load_model: quantization must be '4bit' or None, got {quantization!r}")
    lora = None if lora is None else make_lora_config(lora)  # a wrong one fails before the model loads
    _require_local_folder(name_or_path, "load_model")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    path = Path(name_or_path)
    adapter_dir = path if (path / "adapter_config.json").exists() else None
    # else transformers asked for sentencepiece (an empty folder), called it a bad Hub id or raised a bare OSError
    files = {"adapter_config.json": bool(adapter_dir), "adapter_model.safetensors": any(path.glob("adapter_model.*"))}
    files = files if any(files.values()) else {"config.json": (path / "config.json").exists(),
                                               "model.safetensors": bool(_weight_files(path))}
    config = saved_reward_config(path) or ""  # a PRM's or ORM's folder holds its model, a combined one's its parts
    if path.is_dir() and not any(files.values()) and not config.startswith(("process", "outcome")):
        raise ValueError(f"load_model: {path.resolve()} holds no model (config.json) nor adapter (adapter_config.json)"
                         + (f"; a saved reward model ({config}): load it with load_reward_model" if config else ""))
    if path.is_dir() and (missing := [name for name, found in files.items() if not found]):
        raise ValueError(INCOMPLETE.format(path.resolve(), missing[0]))
    if adapter_dir is not None and lora is not None:
        raise ValueError(f"load_model: {path} already holds a LoRA adapter and lora=... asks for a new one; "
                         "pass trainable=True instead to keep training the saved adapter")
    if trainable and adapter_dir is None and lora is None and quantization == "4bit":  # 4-bit weights cannot train
        raise ValueError(f"load_model: trainable=True on a 4-bit base with no adapter leaves nothing to train; "
                         f"pass lora=True (a new adapter) or quantization=None (every weight), got {name_or_path}")
    base_name = adapter_base(adapter_dir) if adapter_dir else str(name_or_path)
    saved = adapter_dir and _base_record(path).get("base_fingerprint")  # older saves: none
    if saved and (now := base_fingerprint(base_name)) != saved:
        logger.warning("load_model: %s: the base model at %s is not the one it was trained on (%s differ from %s)",
                       path, base_name, ", ".join(k for k in saved if now.get(k) != saved[k]), BASE_RECORD)

    tokenizer_dir = adapter_dir if adapter_dir and (adapter_dir / "tokenizer_config.json").exists() else base_name
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except OSError as err:  # "runs/policy" or "policy", not there, was taken for a Hub id: the error spoke of the Hub
        _require_local_folder(name_or_path, "load_model", err)
        raise
    except (ValueError, ImportError) as err:  # a lost tokenizer.json: sentencepiece asked for (5.2: protobuf)
        lost = Path(tokenizer_dir).is_dir() and not Path(tokenizer_dir, "tokenizer.json").exists()
        raise ValueError(INCOMPLETE.format(Path(tokenizer_dir).resolve(), "tokenizer.json")) if lost else err

    kwargs = dict(dtype=dtype)
    if quantization == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": torch.device(device).index or 0} if device.startswith("cuda") else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base_name, **kwargs)
    if quantization is None:
        model.to(device)
    else:
        keep_4bit_weights_unpacked(model)
    _ensure_pad_token(tokenizer, model)

    training = lora is not None or bool(trainable)
    if quantization == "4bit":
        # Norms and embeddings in float32 (the base frozen) to train, and to score or sample too: a reward model
        # reloaded then computes as it trained (in 16 bits: up to ~1 log-odds off on the smoke base).
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)  # checkpointing: below
    if gradient_checkpointing:  # transformers 5's new name; 5.2 (the oldest the kit takes) has only the old one
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)({"use_reentrant": False})
        if training:
            model.enable_input_require_grads()
        model.config.use_cache = False

    with quiet_deprecated_checkpointing_read():
        if adapter_dir is not None:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=training)
            for config in model.peft_config.values():  # the base as loaded, not as written relative to the adapter
                config.base_model_name_or_path = base_name
        if lora is not None:
            from peft import get_peft_model
            model = get_peft_model(model, lora)
    if not training:
        model.eval()
    return model, tokenizer
