"""Peak GPU memory and tokens/s of each GPU profile's workloads, through the package's own code paths.

The README says ``t4-16gb`` (Qwen2.5-0.5B-Instruct, 4-bit) fits Colab's free 16 GB T4 and ``24gb``
(Qwen2.5-1.5B-Instruct, 4-bit) one 24 GB card. This script checks it, per profile, at the profile's own
sizes (batch, gradient accumulation, max_length, LoRA rank, dtype, gradient checkpointing):

- ``sample``: ``model.generate`` on the 4-bit policy, ``eval_batch_size`` prompts, ``max_new_tokens`` each
  (end-of-sequence suppressed so every row runs to the end); ``sample_16bit``: the same on unquantized weights in
  the profile's dtype, the weights notebook 01 samples with (notebook 01 takes ``sample_batch_size`` rows a batch,
  where this takes ``eval_batch_size``);
- ``prm_train``: ``train_process_reward_model`` (notebook 02), rows of about ``reward_max_length`` tokens (the
  reward models' limit; ``max_length`` where the profile sets none);
- ``prm_score``: ``ProcessRewardModel.score_solutions`` (best-of-N, notebook 06), ``eval_batch_size`` rows;
- ``stepwise_dpo``: ``StepwiseDPOTrainer`` (notebook 04) on a 4-bit LoRA policy, the reference being the
  policy with its adapter switched off, pairs of about ``max_length`` tokens a side; ``dpo``: the same with
  TRL's ``DPOTrainer`` (notebook 04's DPO run: sigmoid + NLL), for the step-time ratio.

Weights: when the profile's model is not in the local Hub cache (the benchmark machine here has no network),
a model of the same architecture (the config below, copied from the model's ``config.json``) is built with
random weights. Memory and speed depend on the shapes, not on the weights' values. The token ids come from
the toy world's tokenizer and the texts are long toy-world problems: only their lengths matter here.

    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True python benchmarks/gpu_profiles.py   # as the notebooks set it
    python benchmarks/gpu_profiles.py                                  # both GPU profiles, default allocator
    python benchmarks/gpu_profiles.py --profiles t4-16gb --steps 3
    python benchmarks/gpu_profiles.py --shrink --device cpu --max-length 128 --steps 1   # smoke test on CPU

Peak memory is ``torch.cuda.max_memory_reserved`` (what the allocator holds; ``nvidia-smi`` shows about
0.5 GB more, the CUDA context) per workload, reset between workloads. It depends on the allocator: the
notebooks set ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True``, which holds far fewer fragments.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

# The kit first: importing it filters bitsandbytes' warning that it cannot fetch a CPU kernel the kit never uses
# (stepdpo_lite/__init__.py), which transformers' and TRL's imports would otherwise print.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import stepdpo_lite  # noqa: E402,F401

import torch  # noqa: E402
from transformers import AutoConfig, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, TrainerCallback  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

from stepdpo_lite.tutorial import tiny_models  # noqa: E402
from stepdpo_lite.tutorial.labelling import toy_gold_vs_error_pairs  # noqa: E402
from stepdpo_lite.models import prepare_adapters, resolve_dtype, trainer_precision  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile, load_profile_model  # noqa: E402
from stepdpo_lite.reward_training import train_process_reward_model  # noqa: E402
from stepdpo_lite.rewards import STEP_TAG  # noqa: E402
from stepdpo_lite.steps import extract_steps  # noqa: E402
from stepdpo_lite.trainer import CHECKPOINTING_FIELD, StepwiseDPOConfig, StepwiseDPOTrainer  # noqa: E402

# From each model's config.json on the Hub (Qwen2.5 model cards): what memory and speed depend on.
ARCHITECTURES = {
    "Qwen/Qwen2.5-0.5B-Instruct": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                       num_attention_heads=14, num_key_value_heads=2),
    "Qwen/Qwen2.5-1.5B-Instruct": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                       num_attention_heads=12, num_key_value_heads=2),
}
QWEN2_COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                    hidden_act="silu", tie_word_embeddings=True)
SHRUNK = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


# ----------------------------------------------------------------------------- helpers

def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device):
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device) -> dict:
    if not device.startswith("cuda"):
        return {}
    return {"peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (the Trainer's own loop: forward, backward, optimizer)."""

    def __init__(self, device):
        self.device, self.times, self._t = device, [], None

    def on_step_begin(self, args, state, control, **kw):
        sync(self.device)
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        sync(self.device)
        self.times.append(time.perf_counter() - self._t)


def build_base(model_name: str, out: Path, shrink: bool) -> tuple[str, str]:
    """``(folder or Hub id, what the weights are)``: the real model if the Hub cache has it, else random weights."""
    if not shrink:
        try:
            AutoConfig.from_pretrained(model_name)
            return model_name, "pretrained"
        except OSError:
            pass
    shape = SHRUNK if shrink else ARCHITECTURES[model_name]
    tokenizer = tiny_models.build_tokenizer()
    config = Qwen2Config(**QWEN2_COMMON, **shape, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    del model
    reset_peak(device)
    return str(out), (f"random weights, {model_name}'s architecture{' (shrunk)' if shrink else ''}, "
                      f"{n / 1e6:.0f}M params")


def long_pairs(n: int, max_length: int, tokenizer, seed: int = 0):
    """Gold-vs-one-error toy pairs with as many steps as fit, so that prompt + solution is near ``max_length``
    tokens of ``tokenizer`` (the model's own: a Qwen2 folder reloads the toy tokenizer as Qwen2's, without spaces,
    on the lock's transformers; with them, about 1.6 times the tokens, on 5.2)."""
    tag = len(tokenizer(STEP_TAG, add_special_tokens=False)["input_ids"])

    def longest(pairs, n_ops):  # with the PRM's tag after every step, and two tokens to spare
        return max(len(tokenizer(r["prompt"] + s, add_special_tokens=False)["input_ids"]) + n_ops * tag + 2
                   for r in pairs for s in (r["chosen"], r["rejected"]))
    per_step = longest(toy_gold_vs_error_pairs(8, seed=seed, min_ops=10, max_ops=10), 10) / 10
    n_ops = max(2, int(max_length / per_step) + 2)
    while True:
        pairs = toy_gold_vs_error_pairs(n, seed=seed, min_ops=n_ops, max_ops=n_ops)
        if longest(pairs, n_ops) <= max_length or n_ops == 2:
            return pairs
        n_ops -= 1


def prm_rows(pairs) -> list[dict]:
    return [{"prompt": r["prompt"], "completions": extract_steps(r[side]), "labels": r[f"{side}_step_labels"]}
            for r in pairs for side in ("chosen", "rejected")]


# ----------------------------------------------------------------------------- workloads

def bench_sample(profile, base, device, new_tokens, quantization):
    model, tokenizer = load_profile_model(profile, name_or_path=base, device=device, quantization=quantization)
    prompts = [r["prompt"] for r in long_pairs(profile.eval_batch_size, 96, tokenizer)]
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, top_k=0,
              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.no_grad():
        model.generate(**batch, **{**kw, "max_new_tokens": 8, "min_new_tokens": 8})  # warm-up
        reset_peak(device)
        sync(device)
        t = time.perf_counter()
        out = model.generate(**batch, **kw)
        sync(device)
    seconds = time.perf_counter() - t
    generated = (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
    result = {"batch": out.shape[0], "new_tokens": new_tokens, "seconds": round(seconds, 2),
              "tokens_per_s": round(generated / seconds, 1), **peak_gib(device)}
    del model
    return result


def bench_prm_train(profile, base, device, max_length, steps, warmup):
    rows_needed = profile.train_batch_size * profile.gradient_accumulation_steps * (steps + warmup)
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = prm_rows(long_pairs((rows_needed + 1) // 2, max_length, tokenizer))[:rows_needed]
    timer = StepTimer(device)
    reset_peak(device)
    with tempfile.TemporaryDirectory() as scratch:
        prm = train_process_reward_model(
            base, rows, scratch, quantization=profile.quantization, lora=profile.lora_config(),
            learning_rate=profile.reward_learning_rate, max_steps=steps + warmup,
            per_device_train_batch_size=profile.train_batch_size,
            gradient_accumulation_steps=profile.gradient_accumulation_steps,
            gradient_checkpointing=profile.gradient_checkpointing, max_length=max_length, device=device,
            dtype=profile.dtype, disable_tqdm=True, callbacks=[timer])
    tokens = [len(ids) for ids, _ in prm._encode_many([r["prompt"] for r in rows], [r["completions"] for r in rows])]
    step_s = statistics.median(timer.times[warmup:])
    tokens_per_step = statistics.mean(tokens) * profile.train_batch_size * profile.gradient_accumulation_steps
    return prm, {"rows": len(rows), "mean_tokens_per_row": round(statistics.mean(tokens)),
                 "median_step_s": round(step_s, 3), "tokens_per_s": round(tokens_per_step / step_s, 1),
                 **peak_gib(device)}


def bench_prm_score(prm, profile, device, max_length):
    rows = prm_rows(long_pairs((profile.eval_batch_size + 1) // 2, max_length, prm.tokenizer, seed=1))
    rows = rows[:profile.eval_batch_size]
    prompts, steps = [r["prompt"] for r in rows], [r["completions"] for r in rows]
    prm.score_solutions(prompts, steps, batch_size=profile.eval_batch_size)  # warm-up
    reset_peak(device)
    times = []
    for _ in range(3):
        sync(device)
        t = time.perf_counter()
        prm.score_solutions(prompts, steps, batch_size=profile.eval_batch_size)
        sync(device)
        times.append(time.perf_counter() - t)
    tokens = sum(len(ids) for ids, _ in prm._encode_many(prompts, steps))
    n_steps = sum(len(s) for s in steps)
    seconds = statistics.median(times)
    return {"batch": len(rows), "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "steps_per_s": round(n_steps / seconds, 1), **peak_gib(device)}


def bench_preference(profile, base, device, max_length, steps, warmup, stepwise: bool):
    """Notebook 04's Stepwise DPO run, or (``stepwise=False``) its DPO run: TRL's DPOTrainer, sigmoid + NLL."""
    pairs_needed = profile.train_batch_size * profile.gradient_accumulation_steps * (steps + warmup)
    reset_peak(device)
    model, tokenizer = load_profile_model(profile, lora=True, name_or_path=base, device=device)
    tokenizer.padding_side = "right"
    pairs = long_pairs(pairs_needed, max_length, tokenizer)
    timer = StepTimer(device)
    with tempfile.TemporaryDirectory() as scratch:
        common = dict(output_dir=scratch, per_device_train_batch_size=profile.train_batch_size,
                      gradient_accumulation_steps=profile.gradient_accumulation_steps,
                      learning_rate=profile.dpo_learning_rate, max_steps=steps + warmup, max_length=max_length,
                      beta=0.1, **{CHECKPOINTING_FIELD: profile.gradient_checkpointing}, save_strategy="no",
                      report_to="none", disable_tqdm=True, use_cpu=not device.startswith("cuda"),
                      **trainer_precision(resolve_dtype(profile.dtype, device), device))
        if stepwise:
            args = StepwiseDPOConfig(step_loss_weight=1.0, outcome_loss_weight=0.0, sft_loss_weight=5.0, **common)
            trainer = StepwiseDPOTrainer(model=model, processing_class=tokenizer, train_dataset=pairs, args=args,
                                         callbacks=[timer])
        else:
            args = DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 5.0], **common)
            trainer = DPOTrainer(model=model, processing_class=tokenizer, callbacks=[timer], args=args,
                                 train_dataset=pairs.select_columns(["prompt", "chosen", "rejected"]))
            prepare_adapters(trainer)
        trainer.train()
    lengths = [len(tokenizer(r["prompt"] + r[side], add_special_tokens=False)["input_ids"])
               for r in pairs for side in ("chosen", "rejected")]
    step_s = statistics.median(timer.times[warmup:])
    tokens_per_step = statistics.mean(lengths) * 2 * profile.train_batch_size * profile.gradient_accumulation_steps
    result = {"pairs": len(pairs), "mean_tokens_per_side": round(statistics.mean(lengths)),
              "median_step_s": round(step_s, 3), "policy_tokens_per_s": round(tokens_per_step / step_s, 1),
              **peak_gib(device)}
    del trainer, model
    return result


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", nargs="+", default=["t4-16gb", "24gb"], choices=["t4-16gb", "24gb"],
                    help="GPU profiles to measure, each at its own sizes (default: both)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where the workloads run (default: cuda when a GPU is there, else cpu; on cpu, a smoke "
                         "test, the profiles' dtype becomes float32)")
    ap.add_argument("--steps", type=int, default=4, help="timed optimizer steps per training workload")
    ap.add_argument("--warmup", type=int, default=1, help="optimizer steps before timing")
    ap.add_argument("--max-length", type=int, default=None,
                    help="default: the profile's (the PRM workloads': its reward_max_length)")
    ap.add_argument("--new-tokens", type=int, default=None, help="sampled tokens per row (default: the profile's)")
    ap.add_argument("--shrink", action="store_true", help="a 2-layer model of the same vocabulary (smoke test)")
    work = ["sample", "sample_16bit", "prm_train", "prm_score", "dpo", "stepwise_dpo"]
    ap.add_argument("--work", nargs="+", default=work, choices=work,  # a typo found before any device time
                    help="workloads to run, in this order (prm_score needs prm_train before it, with no dpo or "
                         "stepwise_dpo between; default: all six, in the order listed)")
    args = ap.parse_args(argv)
    # found out now, not after the first workloads (0 steps: the median of no timings; --max-length 0 and
    # --new-tokens 0 were taken as the profile's)
    for name, least in (("steps", 1), ("warmup", 0), ("max_length", 1), ("new_tokens", 1)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            ap.error(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(args, name)}")
    # found out now, not after the workloads before it had spent device time: a profile or workload given twice ran
    # twice (one figure kept), and prm_score without prm_train before it (a dpo run between drops the PRM) stopped
    for name in ("profiles", "work"):
        if len(set(getattr(args, name))) < len(getattr(args, name)):
            ap.error(f"--{name} must be distinct, got {' '.join(getattr(args, name))}")
    if "prm_score" in args.work:
        before = args.work[:args.work.index("prm_score")]
        if "prm_train" not in before or {"dpo", "stepwise_dpo"} & set(before[before.index("prm_train"):]):
            ap.error(f"--work: prm_score scores prm_train's PRM: put prm_train before it, with no dpo or stepwise_dpo "
                     f"between, got {' '.join(args.work)}")
    try:  # a misspelt device, or cuda without a GPU, was torch's traceback after the first model loaded
        tiny_models.check_device(args.device)
    except ValueError as err:
        ap.error(str(err))
    hf_logging.set_verbosity_error()
    random.seed(0)

    results = {}
    for name in args.profiles:
        profile = get_profile(name)
        if args.device == "cpu":  # smoke test: no float16 4-bit kernels worth timing on CPU
            profile = replace(profile, dtype="float32")
        max_length = args.max_length or profile.max_length
        # the PRM trains and scores at the reward models' limit, as notebooks 02 and 06 do (4096 on the GPU profiles)
        reward_max_length = args.max_length or profile.reward_training_args("process")["max_length"]
        with tempfile.TemporaryDirectory() as tmp:
            base, weights = build_base(profile.model_name, Path(tmp) / "base", args.shrink)
            r = {"model": profile.model_name, "weights": weights, "dtype": profile.dtype, "max_length": max_length,
                 "reward_max_length": reward_max_length, "batch": profile.train_batch_size,
                 "grad_accum": profile.gradient_accumulation_steps, "lora_r": profile.lora_r,
                 "gradient_checkpointing": profile.gradient_checkpointing}
            prm = None
            for work in args.work:
                started = time.perf_counter()
                if work in ("sample", "sample_16bit"):
                    r[work] = bench_sample(profile, base, args.device, args.new_tokens or profile.max_new_tokens,
                                           profile.quantization if work == "sample" else None)
                elif work == "prm_train":
                    prm, r[work] = bench_prm_train(profile, base, args.device, reward_max_length, args.steps,
                                                       args.warmup)
                elif work == "prm_score":
                    if prm is None:
                        raise SystemExit("prm_score needs prm_train before it in --work")
                    r[work] = bench_prm_score(prm, profile, args.device, reward_max_length)
                elif work in ("dpo", "stepwise_dpo"):
                    prm = None
                    r[work] = bench_preference(profile, base, args.device, max_length, args.steps, args.warmup,
                                               stepwise=work == "stepwise_dpo")
                else:
                    raise SystemExit(f"unknown workload {work!r}")
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                print(f"{name:8s} {work:13s} {json.dumps(r[work])}  ({time.perf_counter() - started:.0f} s)",
                      flush=True)
            del prm
        results[name] = r
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(json.dumps({"device": device_name, "torch": torch.__version__,
                      "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"), "profiles": results}))


if __name__ == "__main__":
    main()
