"""The toy world's tiny models as files: where they ship, how a fresh one is built, loaded and saved.

``TINY_BASE_DIR`` (``data/tiny-base``, the base policy) and ``TINY_VERIFIER_DIR`` (``data/tiny-verifier``, the reward
base) ship with the repository; ``$STEPDPO_TINY_BASE`` and ``$STEPDPO_TINY_REWARD_BASE`` (``TINY_MODEL_VARIABLES``)
name other folders, and ``missing_tiny_model_message`` says what to do when one is not there. ``build_tokenizer``
and ``build_tiny_model`` make the character-level tokenizer and the ~1M-parameter Llama; ``load_tiny_base`` and
``save_tiny_model`` read and write such a folder; ``refuse_shipped_out`` keeps a training command's ``--out`` from
replacing a shipped model.

Neighbours: ``toyworld`` (the problems these models solve), ``tiny_base`` (training the base policy),
``verifier_pretraining`` (training the reward base). Torch and transformers are imported inside the functions:
``profiles`` imports this module for the paths.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from ..atomic import save_atomic
from ..rewards import NO, OUTCOME_TAG, STEP_TAG, YES  # the tiny tokenizer holds each tag as one token

TINY_BASE_DIR = Path(__file__).resolve().parents[2] / "data" / "tiny-base"
TINY_VERIFIER_DIR = TINY_BASE_DIR.parent / "tiny-verifier"  # the reward base (verifier_pretraining.py)


def refuse_shipped_out(out, force: bool, where: str = "--out", force_fix: str = "add --force") -> None:
    """A ValueError when ``out`` is one of the models the repository ships (``data/tiny-base``, ``data/tiny-verifier``)
    and ``force`` is not set: a training command's default ``--out`` (or a training function's default ``out``) would
    otherwise replace what every notebook loads, after hours of training, on a user's copy of a command quoted without
    ``--out``. ``where`` and ``force_fix``: how the message names the folder and the way to replace it anyway, in the
    caller's words (a command's ``--out`` and ``--force``, a function's field and ``force=True``)."""
    shipped = {TINY_BASE_DIR.resolve(): "base policy", TINY_VERIFIER_DIR.resolve(): "reward base"}
    what = shipped.get(Path(out).expanduser().resolve())
    if what and not force:
        raise ValueError(f"{where} {out} is the shipped tiny {what} that the notebooks load: give another, or "
                         f"{force_fix} to replace it (`git checkout -- data` brings the shipped one back)")


def build_tokenizer():
    """A character-level ``PreTrainedTokenizerFast`` with whole-word tokens for the fixed phrases."""
    from transformers import PreTrainedTokenizerFast  # torch and transformers in the functions: profiles imports this

    specials = ["<pad>", "<eos>", "<unk>"]
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   clean_up_tokenization_spaces=False, model_max_length=1024)
    fast.add_tokens(["Problem:", "Step", "Answer:", STEP_TAG, OUTCOME_TAG, YES, NO])
    fast.padding_side = "left"  # generation pads on the left; trainers set their own side
    return fast


def build_tiny_model(tokenizer, hidden_size: int = 128, layers: int = 4, heads: int = 4, seed: int = 0):
    """A randomly initialised Llama shaped for the toy world (about 1M parameters)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=3 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, tie_word_embeddings=True, rope_theta=10000.0,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


# The variables that name the tiny models, and the repository folder each one names by default
TINY_MODEL_VARIABLES = {"STEPDPO_TINY_BASE": "data/tiny-base", "STEPDPO_TINY_REWARD_BASE": "data/tiny-verifier"}


def missing_tiny_model_message(path: str | os.PathLike, variable: str = "STEPDPO_TINY_BASE",
                               also: str = "") -> str:
    """What to do when the tiny model that ``$variable`` names (``TINY_MODEL_VARIABLES``) is not at ``path``; ``also``
    follows the variable (another way to name the folder). The models ship in the repository's ``data/``, not in a
    pip-installed wheel (whose default path is in site-packages), so the way out is a clone or the variable; training
    a new base, hours of CPU, comes last."""
    folder = TINY_MODEL_VARIABLES[variable]
    text = (f"no tiny model at {path}: it ships with the repository ({folder}), not with a pip-installed package: run "
            f"from a clone (`pip install -e .` in it), or set ${variable} to the clone's {folder}{also}")
    if variable == "STEPDPO_TINY_BASE":  # the reward base is made by verifier_pretraining.py, from the base
        text += "; or train a new base: `python -m stepdpo_lite.tutorial.tiny_base train-base --out FOLDER`"
    return text


def check_device(device: str, where: str = "--device") -> str:
    """``device`` if the kit can place a model there (``models.resolve_device``), else a ``ValueError`` naming
    ``where``: a misspelt device, or cuda where torch sees no GPU, was an error after the model had loaded (or, for
    a script, after its work)."""
    import torch

    from ..models import resolve_device

    try:
        torch.device(resolve_device(device))  # "cuda:x" passes resolve_device
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{where} {device}: {err}") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{where} {device}: no GPU is visible to torch here")
    return device


def load_tiny_base(path: str | os.PathLike | None = None, device: str | None = None):
    """``(model, tokenizer)`` of the shipped tiny base (``data/tiny-base``, or ``$STEPDPO_TINY_BASE``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    given = bool(path) and Path(path).expanduser().resolve() != TINY_BASE_DIR.resolve()
    path = Path(path or os.environ.get("STEPDPO_TINY_BASE", TINY_BASE_DIR))
    if not (path / "config.json").exists():
        # a folder of one's own (a typo, say): the shipped model's clone or variable would not fix it
        raise FileNotFoundError(f"no tiny model at {path} (no config.json there): give the folder of a saved one"
                                if given else missing_tiny_model_message(path, also=" (or pass path=)"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path)
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def save_tiny_model(model, tokenizer, out: str | os.PathLike, log: dict) -> Path:
    """``model``, ``tokenizer`` and ``training_log.json`` (``log``) into the folder ``out``, atomically; a model
    card (``README.md``) already there is written by hand, and kept."""
    out = Path(out)

    def write(tmp: str) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        Path(tmp, "training_log.json").write_text(json.dumps(log, indent=1))
        if (out / "README.md").exists():
            shutil.copy(out / "README.md", Path(tmp, "README.md"))

    return save_atomic(out, write)
