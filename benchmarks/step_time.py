"""Step time of Stepwise DPO vs TRL's DPOTrainer: same model, batch and settings (docs/method.md §10, goal <= 1.10).

Both trainers get the same weights, the same toy-world pairs (gold solution vs one arithmetic error) and the same
DPO settings; the Stepwise trainer trains with both losses on (step and outcome). A "step" is what the Trainer
runs per batch: ``training_step`` (forward of policy and reference, loss, metrics, backward) plus the optimizer
step. Batch collation is timed separately (it runs in the data loader, off the step). The two trainers are
timed alternately, so that load on a shared machine hits both alike; each figure is a median over repeats.

    python benchmarks/step_time.py   # data/tiny-base (else a random tiny Llama), on cuda if there is a GPU, else cpu
    python benchmarks/step_time.py --device cuda --batch-size 16 --repeats 50

The last line printed is one JSON object: ``{"ratio": ..., ...}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

# The kit first: importing it filters bitsandbytes' warning that it cannot fetch a CPU kernel the kit never uses
# (stepdpo_lite/__init__.py), which transformers' and TRL's imports would otherwise print.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import stepdpo_lite  # noqa: E402,F401

import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

from stepdpo_lite.tutorial import tiny_models  # noqa: E402
from stepdpo_lite.tutorial.labelling import toy_gold_vs_error_pairs  # noqa: E402
from stepdpo_lite.trainer import CHECKPOINTING_FIELD, StepwiseDPOConfig, StepwiseDPOTrainer  # noqa: E402


def load_model(device, path=None):
    if path is not None and not (Path(path) / "config.json").exists():  # not a random model's timing, unasked
        raise SystemExit(f"--model {path}: no config.json there")
    path = Path(path or os.environ.get("STEPDPO_TINY_BASE", tiny_models.TINY_BASE_DIR))
    if (path / "config.json").exists():
        model, tok = tiny_models.load_tiny_base(path, device=device)
        return model, tok, "data/tiny-base" if path == tiny_models.TINY_BASE_DIR else str(path)
    tok = tiny_models.build_tokenizer()
    return tiny_models.build_tiny_model(tok).to(device), tok, f"random tiny Llama (no model at {path})"


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where both trainers run (default: cuda when a GPU is there, else cpu)")
    ap.add_argument("--batch-size", type=int, default=8, help="preference pairs per step")
    ap.add_argument("--repeats", type=int, default=30,
                    help="timed steps per trainer, each figure their median (default: 30)")
    ap.add_argument("--warmup", type=int, default=3,
                    help="untimed steps per trainer before the timed ones (default: 3)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--model", default=None, help="model folder (default: data/tiny-base or $STEPDPO_TINY_BASE)")
    args = ap.parse_args(argv)
    # found out now, not after both trainers are built (0 repeats: the median of no timings)
    for name, least in (("batch_size", 1), ("repeats", 1), ("warmup", 0), ("threads", 1)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            ap.error(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(args, name)}")
    try:  # a misspelt device, or cuda without a GPU, was torch's traceback after the model loaded
        tiny_models.check_device(args.device)
    except ValueError as err:
        ap.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()

    model, tok, model_name = load_model(args.device, args.model)
    ref = copy.deepcopy(model).eval()
    data = toy_gold_vs_error_pairs(args.batch_size)
    common = dict(output_dir="/tmp/stepdpo_bench", per_device_train_batch_size=args.batch_size, report_to=[],
                  use_cpu=args.device == "cpu", bf16=args.bf16, **{CHECKPOINTING_FIELD: False}, save_strategy="no",
                  disable_tqdm=True, learning_rate=1e-5, max_length=512, beta=0.1)
    trainers = {
        "dpo": DPOTrainer(copy.deepcopy(model), ref_model=copy.deepcopy(ref), args=DPOConfig(**common),
                          train_dataset=data, processing_class=tok),
        "stepwise": StepwiseDPOTrainer(copy.deepcopy(model), ref_model=copy.deepcopy(ref),
                                       args=StepwiseDPOConfig(**common, step_loss_weight=1.0, outcome_loss_weight=1.0),
                                       train_dataset=data, processing_class=tok),
    }
    rows, steps, collate = {}, {k: [] for k in trainers}, {k: [] for k in trainers}
    for name, tr in trainers.items():
        tr.create_optimizer_and_scheduler(num_training_steps=args.warmup + args.repeats)
        tr.current_gradient_accumulation_steps = 1  # set by Trainer.train(); we call training_step directly
        rows[name] = [tr.train_dataset[i] for i in range(len(tr.train_dataset))]

    def step(tr, batch):
        tr.training_step(tr.model, batch)
        tr.optimizer.step()
        tr.optimizer.zero_grad(set_to_none=True)

    for i in range(args.warmup + args.repeats):
        order = list(trainers.items()) if i % 2 == 0 else list(trainers.items())[::-1]
        for name, tr in order:
            box = {}
            c = timed(lambda: box.setdefault("b", tr.data_collator(rows[name])), "cpu")
            s = timed(lambda: step(tr, box["b"]), args.device)
            if i >= args.warmup:
                collate[name].append(c)
                steps[name].append(s)
        for tr in trainers.values():
            tr._metrics["train"].clear()

    med = {k: statistics.median(v) for k, v in steps.items()}
    med_c = {k: statistics.median(v) for k, v in collate.items()}
    ratio = med["stepwise"] / med["dpo"]
    ratio_c = (med["stepwise"] + med_c["stepwise"]) / (med["dpo"] + med_c["dpo"])
    tokens = int(trainers["dpo"].data_collator(rows["dpo"])["attention_mask"].sum())
    print(f"model: {model_name}; device: {args.device}; batch: {args.batch_size} pairs ({tokens} tokens); "
          f"median of {args.repeats} (warmup {args.warmup}); torch threads {torch.get_num_threads()}")
    print(f"TRL DPOTrainer step       {1e3 * med['dpo']:8.2f} ms   (collate {1e3 * med_c['dpo']:.2f} ms)")
    print(f"StepwiseDPOTrainer step   {1e3 * med['stepwise']:8.2f} ms   (collate {1e3 * med_c['stepwise']:.2f} ms)")
    print(f"ratio {ratio:.3f} (with collation {ratio_c:.3f}); goal <= 1.10")
    print(json.dumps({"ratio": round(ratio, 4), "ratio_with_collation": round(ratio_c, 4),
                      "dpo_step_ms": round(1e3 * med["dpo"], 3), "stepwise_step_ms": round(1e3 * med["stepwise"], 3),
                      "batch_pairs": args.batch_size, "device": args.device, "model": model_name}))


if __name__ == "__main__":
    main()
