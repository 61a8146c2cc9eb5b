"""The ``smoke`` profile's base model: the GPU profiles' code path (GSM8K, chat prompts, 4-bit nf4 + LoRA,
Monte-Carlo step labels) at toy size, offline, in seconds.

    python -m stepdpo_lite.tutorial.smoke build [--out runs/smoke-base]

builds, deterministically (same files byte for byte):

- a byte-level BPE tokenizer trained with ``tokenizers`` on the shipped GSM8K slice (``data/gsm8k``), with a
  Qwen-style chat template (``<|im_start|>``/``<|im_end|>``), ``<|im_end|>`` as end of turn and
  ``<|endoftext|>`` as padding; the reward models' answers ``" Yes"``/``" No"`` are single tokens, as in Qwen's
  vocabulary (the corpus holds the verification tags, so BPE learns them);
- a randomly initialised Qwen2-architecture causal LM (hidden 64, 2 layers, ~0.14 M parameters), then fitted for
  ``FIT_STEPS`` steps on the reference solutions of the smoke profile's own problems (``gsm8k.carve`` at its
  sizes: test, validation and train), written short in the format
  ``gsm8k.INSTRUCTION`` asks for. A purely random model writes no steps (nothing for the
  Monte-Carlo rollouts to branch from) and never a right answer (no preference pairs for notebook 04); the
  fitted one writes ``Step k:`` paragraphs and ``Answer:``, right for some samples and wrong for others.

It is not committed (it is rebuilt in seconds): the profile builds it on first use (``ensure_smoke_base``, called by the
notebooks' install cell through ``colab.setup`` and ``profiles.prepare_profile``), into ``runs/smoke-base`` or
``$STEPDPO_SMOKE_BASE``. A folder built by another recipe version is rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ..atomic import check_replaceable, save_atomic
from ..rewards import NO, OUTCOME_TAG, STEP_TAG, YES
from . import gsm8k

ROOT = Path(__file__).resolve().parents[2]
GSM8K_SLICE = ROOT / "data" / "gsm8k" / "test.jsonl"  # the 200 shipped GSM8K problems; the smoke carve's source
SMOKE_BASE_DIR = ROOT / "runs" / "smoke-base"
RECIPE_VERSION = 2  # bump when the recipe below changes: older folders are rebuilt
VOCAB_SIZE = 1024
FIT_TRAIN, FIT_EVAL = 16, 8  # the smoke profile's sizes: its 16 train, 8 validation and 8 test problems
FIT_STEPS = 160     # memorised in part: at T = 1 some samples are right, some wrong (both kinds per problem)
OWNED = ("smoke_base.json",)  # a folder holding it is a smoke base, replaced whole by a build; any other is refused
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                 "{% endif %}")
# Qwen2's pre-tokenizer split: contractions, words, single digits, punctuation runs, newlines, spaces
_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
          r"\s+(?!\S)|\s+")


def smoke_base_dir() -> Path:
    return Path(os.environ.get("STEPDPO_SMOKE_BASE", str(SMOKE_BASE_DIR)))


def _records(path=GSM8K_SLICE) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def equation_steps(answer: str) -> str:
    """A GSM8K reference answer (lines, ``<<a*b=c>>`` calculator annotations, ``#### n``) in the step format of
    ``gsm8k.INSTRUCTION``, short: one ``Step k: a * b = c`` paragraph per annotated line (its text when no line
    has one), then ``Answer: n``."""
    lines, final = answer.rsplit("####", 1)
    lines = [ln for ln in lines.strip().splitlines() if ln.strip()]
    steps = [", ".join(f"{expr} = {value}" for expr, value in re.findall(r"<<([^=>]*)=([^>]*)>>", ln)) for ln in lines]
    steps = [s for s in steps if s] or [re.sub(r"<<[^>]*>>", "", ln).strip() for ln in lines]
    return "\n\n".join(f"Step {k}: {s}" for k, s in enumerate(steps, 1)) + f"\n\nAnswer: {final.strip()}"


def build_tokenizer(records: list[dict], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with a chat template, trained on ``records``' text."""
    from transformers import PreTrainedTokenizerFast  # torch and transformers in the functions: profiles imports this

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    corpus = [gsm8k.INSTRUCTION, "Problem: Solution: system user assistant"]
    corpus += [r["question"] + "\n" + equation_steps(r["answer"]) for r in records]
    corpus += [f"{tag}{answer}" for tag in (STEP_TAG, OUTCOME_TAG) for answer in (YES, NO)] * 50
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False, model_max_length=2048)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    for word in (YES, NO):
        ids = fast(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise RuntimeError(f"smoke tokenizer: {word!r} is {len(ids)} tokens; the reward models need one")
    return fast


def build_model(tokenizer, hidden_size: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised Qwen2 causal LM shaped like Qwen2.5 (GQA, tied embeddings), tiny."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)


def _fit(model, tokenizer, prompts: list[str], solutions: list[str], steps: int, seed: int, batch_size: int = 16,
         learning_rate: float = 1e-2) -> list[float]:
    """Plain AdamW on prompt-masked rows (loss on the solution and its end of turn only); returns the losses."""
    import torch

    rows = []
    for p, s in zip(prompts, solutions):
        prompt_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(s + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids))
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 20) * max(0.1, 1 - i / steps))
    model.train()
    losses, order = [], []
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.sample(range(len(rows)), len(rows))
        batch, order = [rows[i] for i in order[:batch_size]], order[batch_size:]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x, _ in batch])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(round(loss.item(), 4))
    model.eval()
    return losses


def build_smoke_base(out: str | os.PathLike | None = None, seed: int = 0, source=GSM8K_SLICE) -> Path:
    """Build tokenizer + model into ``out`` (default ``smoke_base_dir()``), atomically; returns the folder. A folder
    there that holds other files but no ``smoke_base.json`` (no smoke base) is refused before anything is built: the
    save replaces the folder as a whole (``--out runs`` deleted every run)."""
    import torch

    out = Path(out or smoke_base_dir())
    check_replaceable(out, owned=OWNED, where="build_smoke_base")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float sums on every machine: the same weights, byte for byte
    try:
        records = _records(source)
        tokenizer = build_tokenizer(records)
        model = build_model(tokenizer, seed=seed)
        parts = gsm8k.carve(records, n_train=FIT_TRAIN, n_eval=FIT_EVAL, seed=seed)
        fit = parts["test"] + parts["validation"] + parts["train"]
        losses = _fit(model, tokenizer, [gsm8k.format_prompt(r["question"], tokenizer) for r in fit],
                      [equation_steps(r["answer"]) for r in fit], FIT_STEPS, seed)
    finally:
        torch.set_num_threads(threads)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    info = {"recipe_version": RECIPE_VERSION, "seed": seed, "source": Path(source).name,
            "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
            "fit_problems": len(fit), "fit_steps": FIT_STEPS, "fit_loss_first_last": [losses[0], losses[-1]]}

    def write(tmp: str) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        Path(tmp, "smoke_base.json").write_text(json.dumps(info, indent=1) + "\n")

    return save_atomic(out, write, owned=OWNED)


def is_current(path: str | os.PathLike) -> bool:
    info = Path(path) / "smoke_base.json"
    return info.exists() and json.loads(info.read_text()).get("recipe_version") == RECIPE_VERSION


def ensure_smoke_base(path: str | os.PathLike | None = None, out=print) -> Path:
    """The smoke base at ``path`` (default ``smoke_base_dir()``), built first when missing or stale."""
    path = Path(path or smoke_base_dir())
    if not is_current(path):
        out(f"smoke profile: building its base model (random Qwen2 + BPE tokenizer from data/gsm8k) into {path} ...")
        build_smoke_base(path)
        out(f"smoke profile: base model ready ({json.loads((path / 'smoke_base.json').read_text())['parameters']:,} "
            "parameters)")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepdpo_lite.tutorial.smoke", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the smoke base model and tokenizer")
    b.add_argument("--out", default=None, help=f"folder (default $STEPDPO_SMOKE_BASE or {SMOKE_BASE_DIR})")
    b.add_argument("--seed", type=int, default=0,
                   help="seed of the random initial weights, of the GSM8K problems it is fitted on and of their "
                        "batch order (default: 0)")
    args = parser.parse_args(argv)
    if args.seed < 0:  # else refused by gsm8k.carve, a traceback
        b.error(f"--seed must be 0 or more, got {args.seed}")
    try:  # build_smoke_base's own check, as a usage error (a file there, a folder of other files: a traceback)
        check_replaceable(args.out or smoke_base_dir(), owned=OWNED, where="--out")
    except ValueError as err:
        b.error(str(err))
    path = build_smoke_base(args.out, seed=args.seed)
    print(json.loads((path / "smoke_base.json").read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
