"""Stepwise DPO beyond one process: the tiny profile under DDP, launched by accelerate.

    accelerate launch --multi_gpu --num_processes 2 scripts/ddp_tiny.py   # CPU-only machine: 2 processes, gloo
    torchrun --nproc_per_node 2 scripts/ddp_tiny.py                         # the same without accelerate's CLI
    accelerate launch --config_file configs/accelerate_multi_gpu.yaml scripts/ddp_tiny.py          # N GPUs, nccl
    accelerate launch --config_file configs/accelerate_deepspeed_zero2.yaml scripts/ddp_tiny.py    # ZeRO-2

On a machine without CUDA, ``--multi_gpu`` only picks accelerate's torchrun launcher: the script trains on CPU
(``use_cpu``) and accelerate sets up DDP over gloo. ``accelerate launch --cpu --num_processes 2`` starts a single
process in accelerate 1.x (its multi-CPU launch goes through ``mpirun``, ``--mpirun_hostfile``).

Nothing here is specific to DDP: ``StepwiseDPOTrainer`` is a ``transformers.Trainer``, so accelerate shards the
batches, all-reduces the gradients and gathers the metrics. The script trains the toy world's tiny base
(``data/tiny-base``, or ``$STEPDPO_TINY_BASE``; without it the script stops, unless ``--random-model`` asks for a
random tiny Llama, a check of the DDP plumbing only) on gold-vs-corrupted pairs with gold step labels, then checks
that every process ends with the same weights and prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stepdpo_lite.atomic import check_replaceable, save_atomic  # noqa: E402
from stepdpo_lite.tutorial import tiny_models  # noqa: E402
from stepdpo_lite.tutorial.labelling import toy_gold_vs_error_pairs  # noqa: E402
from stepdpo_lite.models import resolve_dtype, trainer_precision  # noqa: E402
from stepdpo_lite.trainer import CHECKPOINTING_FIELD, StepwiseDPOConfig, StepwiseDPOTrainer  # noqa: E402

SAVED = ("stepwise_config.json",)  # what a save of the trainer holds: a folder with other files only is not replaced


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", default="runs/ddp_tiny",
                    help="folder the trained model is saved to (replaced whole), relative to the working directory")
    ap.add_argument("--pairs", type=int, default=64, help="gold-vs-corrupted preference pairs of the toy world")
    ap.add_argument("--max-steps", type=int, default=16, help="optimizer steps")
    ap.add_argument("--batch-size", type=int, default=4, help="pairs per process and step")
    ap.add_argument("--learning-rate", type=float, default=5e-5, help="the optimizer's learning rate")
    ap.add_argument("--random-model", action="store_true",
                    help="train a random tiny Llama when the tiny base is not there (its losses mean nothing: a check "
                         "of DDP alone); without it a missing base is an error")
    args = ap.parse_args(argv)
    # found out now, not after the model is loaded (0 pairs) or trained (--max-steps -1 is the Trainer's 3 epochs)
    for name in ("pairs", "max_steps", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 < args.learning_rate < math.inf:  # not "<= 0": nan passed it (torch refused it after the model loaded)
        ap.error(f"--learning-rate must be a finite number above 0, got {args.learning_rate}")
    try:  # the save replaces --out as a whole: a folder it would harm is refused before training, not after
        check_replaceable(args.out, owned=SAVED, where="--out")
    except ValueError as err:
        ap.error(str(err))
    base = Path(os.environ.get("STEPDPO_TINY_BASE", tiny_models.TINY_BASE_DIR))
    if not (base / "config.json").exists() and not args.random_model:  # trained a random model, said in one JSON field
        ap.error(f"{tiny_models.missing_tiny_model_message(base)}; or pass --random-model to check DDP on a random "
                 "tiny Llama")
    state = PartialState()
    on_cpu = not torch.cuda.is_available()
    device = "cpu" if on_cpu else "cuda"

    if (base / "config.json").exists():  # data/tiny-base, or $STEPDPO_TINY_BASE
        (model, tok), source = tiny_models.load_tiny_base(base), os.environ.get("STEPDPO_TINY_BASE", "data/tiny-base")
    else:  # --random-model
        tok = tiny_models.build_tokenizer()
        model, source = tiny_models.build_tiny_model(tok), "random tiny Llama"
        if state.is_main_process:
            print(f"WARNING: no tiny base at {base}: training a random tiny Llama (--random-model); its losses and "
                  "step accuracy mean nothing, only whether DDP keeps the replicas identical", file=sys.stderr)
    # Every step logged, so that the summary's first and last loss are those of the first and last step whatever
    # --max-steps (logged every second step, --max-steps 1 logged no loss at all and an odd count a stale last one)
    config = StepwiseDPOConfig(
        output_dir=args.out, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, logging_steps=1, save_strategy="no", report_to=[], seed=0,
        use_cpu=on_cpu, **{CHECKPOINTING_FIELD: False}, **trainer_precision(resolve_dtype("auto", device), device),
        max_length=256, disable_tqdm=True, dataloader_num_workers=0,
        step_beta=0.1, beta=0.1)
    if state.num_processes == 1 and state.is_main_process:
        print("note: one process only; launch with `accelerate launch --multi_gpu --num_processes 2` (see docstring)")
    trainer = StepwiseDPOTrainer(model, args=config, train_dataset=toy_gold_vs_error_pairs(args.pairs),
                                 processing_class=tok)
    start = time.time()
    result = trainer.train()

    # Gradients were all-reduced, so every process must hold the same weights: compare one checksum per rank
    checksum = torch.tensor([sum(p.detach().double().sum().item() for p in trainer.model.parameters())],
                            device=trainer.accelerator.device)
    checksums = trainer.accelerator.gather(checksum).cpu().tolist()
    # Atomic: a crash while saving leaves the previous model whole, never a half-written one. save_model writes on
    # the main process only; the others still call it, for any gather the save needs (DeepSpeed)
    if state.is_main_process:
        save_atomic(args.out, trainer.save_model, owned=SAVED)
    else:
        trainer.save_model(args.out)
    if state.is_main_process:
        logs = [h for h in trainer.state.log_history if "loss" in h]
        summary = {"world_size": state.num_processes, "backend": str(state.backend), "model": source,
                   "global_batch_pairs": args.batch_size * state.num_processes, "steps": trainer.state.global_step,
                   "train_loss": round(result.training_loss, 4), "first_loss": logs[0]["loss"],
                   "last_loss": logs[-1]["loss"], "last_step_accuracy": logs[-1].get("step_accuracy"),
                   "replicas_identical": max(checksums) - min(checksums) < 1e-6 * max(1.0, abs(checksums[0])),
                   "seconds": round(time.time() - start, 1)}
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
