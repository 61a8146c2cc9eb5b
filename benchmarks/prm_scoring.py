"""PRM scoring: one forward pass per solution (in-context tags) vs one forward pass per step (DESIGN.md §8).

The reference design scores step k by running the model on the input cut right after step k's tag,
so a K-step solution costs K forward passes over ever longer prefixes (about K/2 times the tokens).
``ProcessRewardModel.score_solutions`` puts a tag after every step and reads all K rewards from a
single pass. Both get the same 256 toy-world solutions (gold ones and ones with one error), the
same model and the same batch size; rewards are checked to agree, then the two are timed
alternately (so that load on a shared machine hits both alike) and each figure is a median.

    python benchmarks/prm_scoring.py                      # tiny base (data/tiny-base) or a random tiny Llama, CPU
    python benchmarks/prm_scoring.py --device cuda --batch-size 64

The last line printed is one JSON object: ``{"speedup": ..., "steps_per_s": ..., ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stepdpo_lite import toyworld  # noqa: E402
from stepdpo_lite.rewards import ProcessRewardModel  # noqa: E402
from stepdpo_lite.steps import extract_steps  # noqa: E402


def toy_solutions(n: int, seed: int = 0):
    """``n`` test-split problems, each with its gold solution or one carrying a single error."""
    rng = random.Random(seed)
    prompts, solutions = [], []
    for i, p in enumerate(toyworld.make_problems(n, "test", seed=seed)):
        kind = "copy" if len(p.ops) > 1 and rng.random() < 0.5 else "arithmetic"
        sol = p.gold_solution if i % 2 else toyworld.corrupt_solution(
            p, rng.randrange(1 if kind == "copy" else 0, len(p.ops)), kind, rng)
        prompts.append(p.prompt)
        solutions.append(extract_steps(sol))
    return prompts, solutions


def one_pass(prm, prompts, solutions, batch_size):
    return prm.score_solutions(prompts, solutions, batch_size=batch_size)


def one_forward_per_step(prm, prompts, solutions, batch_size):
    """The reference design: every step is its own input, cut right after that step's tag."""
    cut_prompts = [p for p, steps in zip(prompts, solutions) for _ in steps]
    cut_steps = [steps[:k + 1] for steps in solutions for k in range(len(steps))]
    encoded = [(ids, pos[-1:]) for ids, pos in prm._encode_many(cut_prompts, cut_steps)]
    flat = [r[0] for r in prm._score_encoded(encoded, batch_size)]
    out, i = [], 0
    for steps in solutions:
        out.append(flat[i:i + len(steps)])
        i += len(steps)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of solutions")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        model, tokenizer = toyworld.load_tiny_base(device=args.device)
        which = "tiny base (data/tiny-base)"
    except FileNotFoundError:
        tokenizer = toyworld.build_tokenizer()
        model = toyworld.build_tiny_model(tokenizer, seed=args.seed).to(args.device)
        which = "random tiny Llama (no data/tiny-base yet)"
    prm = ProcessRewardModel(model, tokenizer)
    prompts, solutions = toy_solutions(args.n, args.seed)
    n_steps = sum(len(s) for s in solutions)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {which}, {n_params / 1e6:.2f}M parameters, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{len(solutions)} solutions, {n_steps} steps ({n_steps / len(solutions):.2f} per solution), "
          f"batch size {args.batch_size}")

    a = one_pass(prm, prompts, solutions, args.batch_size)  # also the warm-up
    b = one_forward_per_step(prm, prompts, solutions, args.batch_size)
    diff = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    print(f"max |reward difference| between the two: {diff:.2e}")
    if diff > 1e-3:
        raise SystemExit(f"the two scorings disagree (max difference {diff}): not benchmarking")

    def timed(fn):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn(prm, prompts, solutions, args.batch_size)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    t_one, t_per_step = [], []
    for _ in range(args.repeats):
        t_one.append(timed(one_pass))
        t_per_step.append(timed(one_forward_per_step))
    one, per_step = statistics.median(t_one), statistics.median(t_per_step)
    print(f"one pass per solution : {one:8.3f} s  (median of {args.repeats}; runs {', '.join(f'{x:.2f}' for x in t_one)})")
    print(f"one forward per step  : {per_step:8.3f} s  (median of {args.repeats}; runs "
          f"{', '.join(f'{x:.2f}' for x in t_per_step)})")
    print(f"speedup {per_step / one:.2f}x, {n_steps / one:.0f} steps/s one-pass vs {n_steps / per_step:.0f} steps/s")
    print(json.dumps({"speedup": round(per_step / one, 3), "steps_per_s": round(n_steps / one, 1),
                      "steps_per_s_per_step_forward": round(n_steps / per_step, 1), "n_solutions": len(solutions),
                      "n_steps": n_steps, "batch_size": args.batch_size, "device": args.device, "model": which}))


if __name__ == "__main__":
    main()
