"""Generation: sampling solutions from a policy, and loading a saved policy to sample from.

Every function takes prompt *texts*: a problem object (whose repr may hold its gold answer) never reaches a model.
"""

from __future__ import annotations

import contextlib
import json
import os

from tqdm.auto import tqdm

from .checks import finite_number, list_of, positive_int, warn_of_unread_text, warn_user
from .models import adapter_quantization, load_model, saved_reward_config

RECORD_PROMPTS_ENV = "STEPDPO_RECORD_PROMPTS"  # a file: every prompt fed to a model here is appended (tests audit it)


def prompt_texts(prompts, where: str = "sample_solutions") -> list[str]:
    """``prompts`` as a list of ``str``; anything else raises a ``ValueError`` naming its index, so that no
    object's repr (e.g. a problem holding its gold answer) ever reaches a model. One str (which would be read
    character by character) is refused too."""
    prompts = list_of(prompts, where, "prompts")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"{where}: prompt {i} is a {type(p).__name__}, not a str: pass prompt texts "
                             "(e.g. problem.prompt), never problems or other objects")
    return prompts


def check_sampling(model, tokenizer, prompts: list[str], n, temperature, batch_size, max_new_tokens,
                   where: str = "sample_solutions") -> None:
    """``ValueError`` naming the argument (or the prompt) that cannot be sampled from as asked."""
    for name, value in (("n", n), ("batch_size", batch_size), ("max_new_tokens", max_new_tokens)):
        positive_int(value, name, where)
    if finite_number(temperature, "temperature", where) < 0:
        raise ValueError(f"{where}: temperature must be >= 0 (0: greedy), got {temperature!r}")
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    ids = tokenizer(prompts, add_special_tokens=False, verbose=False)["input_ids"] if prompts else []
    for i, length in enumerate(map(len, ids)):  # verbose=False: a prompt too long is this loop's to say, not a log's
        if length == 0:
            raise ValueError(f"{where}: prompt {i} is empty (0 tokens)")
        if isinstance(context, int) and length + max_new_tokens > context:
            raise ValueError(f"{where}: prompt {i} is {length} tokens; with max_new_tokens={max_new_tokens} that is "
                             f"{length + max_new_tokens}, over the model's context of {context} tokens")
    warn_of_unread_text(tokenizer, ids, where, "prompt")  # the policy would answer a prompt it cannot read


def record_prompts(prompts: list[str]) -> None:
    """Append ``prompts`` (JSON lines) to ``$STEPDPO_RECORD_PROMPTS`` when set: tests check what models read."""
    if path := os.environ.get(RECORD_PROMPTS_ENV):
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in dict.fromkeys(prompts))


def eos_token_ids(model, tokenizer) -> list[int]:
    """The tokenizer's EOS and every EOS of the model's generation config (instruct models often list two, e.g.
    Qwen2.5-Instruct's ``<|im_end|>`` and ``<|endoftext|>``): any of them ends a solution."""
    ids = [tokenizer.eos_token_id]
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]
    return list(dict.fromkeys(i for i in ids if i is not None))


def sampling_arguments(temperature: float) -> dict:
    """``generate``'s arguments for pure sampling at ``temperature`` (the full distribution: ``top_k=0``,
    ``top_p=1``), or greedy at 0."""
    if temperature > 0:
        return dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
    return dict(do_sample=False)


class FiniteLogits:
    """A logits processor: NaN or inf logits (a 16-bit overflow: greedy decoded token 0, T > 0 stopped in multinomial)
    are a ValueError. A class: transformers reads a processor's signature each token, a function's 10 times slower."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, input_ids, scores):
        if not scores.amax().isfinite():  # one reduction: NaN and +inf propagate; -inf (a masked token) does not
            raise ValueError(f"sample_solutions: NaN or inf logits: the model's {self.dtype} forward pass overflowed. "
                             "Load it in float32 (dtype='float32'), or in float16 with model.set_attn_implementation("
                             "'eager'); Qwen's maintainers advise bfloat16 where the GPU has it")
        return scores


@contextlib.contextmanager
def exact_sampling(model):
    """For the block, the model's saved generation settings keep only their token ids. ``generate`` fills every
    setting a call leaves unset from them, and instruct checkpoints ship sampling defaults there (Qwen2.5-Instruct:
    ``repetition_penalty``, ``top_k``, ``top_p``): greedy would be penalised greedy, and sampling at T not the
    policy's distribution, whose log-probabilities the trainers and verifiers read."""
    from transformers import GenerationConfig  # transformers, torch in the functions: profiles imports this torch-free

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT generates with its base's
    saved = getattr(inner, "generation_config", None)
    if saved is None:
        yield
        return
    ids = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    inner.generation_config = GenerationConfig(**{k: getattr(saved, k) for k in ids
                                                  if getattr(saved, k, None) is not None})
    try:
        yield
    finally:
        inner.generation_config = saved


def sample_solutions(model, tokenizer, prompts, n: int = 4, temperature: float = 1.0, batch_size: int = 64,
                     max_new_tokens: int = 160, seed: int = 0, progress: bool | str = True) -> list[list[str]]:
    """``n`` solutions per prompt text (``temperature=0`` is greedy; T > 0 samples the full distribution:
    ``sampling_arguments``, none of the model's saved sampling settings: ``exact_sampling``); returns one list of
    ``n`` texts per prompt, in order. A prompt that is empty, or too long for the model's context with
    ``max_new_tokens`` more tokens, raises a ``ValueError`` naming it; so do NaN or inf logits (``FiniteLogits``).
    ``progress``: a bar over the batches, "sampling", or named by a str (bars in a row, e.g. one per split)."""
    import torch

    prompts = prompt_texts(prompts)
    check_sampling(model, tokenizer, prompts, n, temperature, batch_size, max_new_tokens)
    record_prompts(prompts)
    flat = [pr for pr in prompts for _ in range(n)]
    torch.manual_seed(positive_int(seed, "seed", "sample_solutions", minimum=0))  # seed=True was 1, 1.5 was 1
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    device = next(model.parameters()).device
    out, cut, sampling, eos = [], 0, sampling_arguments(temperature), eos_token_ids(model, tokenizer)
    try:
        named = progress if isinstance(progress, str) else "sampling"
        for i in tqdm(range(0, len(flat), batch_size), desc=named, disable=not progress):
            batch = tokenizer(flat[i:i + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad(), exact_sampling(model):
                gen = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=eos, logits_processor=[FiniteLogits(model.dtype)], **sampling)
            out += tokenizer.batch_decode(new := gen[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            cut += int((~torch.isin(new, new.new_tensor(eos)).any(1)).sum()) if new.shape[1] == max_new_tokens else 0
    finally:
        tokenizer.padding_side = side
    if cut:  # rows with no EOS (pad only follows one), graded as written: accuracy, labels, best-of-N biased silently
        warn_user(f"sample_solutions: {cut} of {len(flat)} solutions stopped at max_new_tokens={max_new_tokens} "
                  "before their end (cut: graded on what they wrote); raise max_new_tokens")
    return [out[i * n:(i + 1) * n] for i in range(len(prompts))]


def load_policy(path, quantization="as trained", merge: bool = True, dtype=None):
    """``(model, tokenizer)`` of a saved policy; a LoRA adapter is merged into its base when unquantized
    (faster generation). ``merge=False`` keeps the PEFT model (its disabled adapter is the reference).
    ``quantization``: ``"4bit"``, None, or by default an adapter's base as loaded in training, as its folder records
    it (``models.adapter_quantization``): a QLoRA policy at full precision is another model (the tiny base's logits
    moved by up to 4). ``dtype``: ``load_model``'s (None: the device's; a profile's, to evaluate in the dtype its
    solutions were sampled and trained in). A saved reward model's folder raises a ``ValueError``."""
    if config := saved_reward_config(path):  # else its verifier's adapter, merged into its base, was sampled from
        raise ValueError(f"load_policy: {path} is a saved reward model ({config}): load it with load_reward_model")
    if quantization == "as trained" and (quantization := adapter_quantization(path, "unrecorded")) == "unrecorded":
        warn_user(f"load_policy: {path}: nothing records whether its adapter was trained on a 4-bit base; loaded "
                  "unquantized (quantization='4bit' loads a QLoRA policy as trained)")
        quantization = None
    model, tokenizer = load_model(str(path), quantization=quantization, dtype=dtype)
    if merge and quantization is None and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


@contextlib.contextmanager
def evaluating(model):
    """``model.eval()`` for the block (sampling after training), then back to its mode."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()
