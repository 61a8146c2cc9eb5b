"""PRM scoring: one forward pass per solution (in-context tags) vs one forward pass per step (docs/method.md §10).

Per-step scoring runs the model on the input cut right after step k's tag, for every step k,
so a K-step solution costs K forward passes over ever longer prefixes (about K/2 times the tokens).
``ProcessRewardModel.score_solutions`` puts a tag after every step and reads all K rewards from a
single pass. Both get the same solutions, the same model and the same batch size; rewards are
checked to agree, then the two are timed alternately (so that load on a shared machine hits both
alike) and each figure is a median (of wall-clock time; the CPU time of this process is reported
beside it, which a loaded machine disturbs less when ``--threads 1``).

Two sets of solutions (``--parts``):

* ``toy``: 256 toy-world test solutions (gold ones and ones with one error), scored by the tiny base
  (``data/tiny-base``, or ``$STEPDPO_TINY_BASE``; a random tiny Llama of the same shape if it is missing).
* ``processbench``: the 40 real ProcessBench rows shipped in ``data/processbench/sample.jsonl``, their
  own problem and step texts, so the numbers of steps and the relative lengths of prompt and steps are
  ProcessBench's. The toy tokenizer is character-level (a character it lacks becomes ``<unk>``, about
  1 in 10,000 here), so a solution is 381 to 3,798 tokens with its tags, several times its length
  in a BPE tokenizer, and longer than the tiny base's 1,024 positions. The model is therefore a
  randomly initialised Llama of the tiny base's shape (``tiny_models.build_tiny_model``: hidden 128,
  4 layers, 4 heads, 0.87M parameters; ``--pb-hidden``/``--pb-layers`` change it) whose
  ``max_position_embeddings`` is the longest input rounded up to a multiple of 1,024 (4,096 here).
  Random weights time the same as trained ones; the rewards are meaningless but still must agree.
  At these lengths the tiny model's causal attention (quadratic in length) costs about as much as
  its linear layers, unlike a 7B PRM's (a few per cent): see ``bound_padded_flops`` below. Its batch
  size is ``--pb-batch-size`` (1): with only 40 rows, neighbours in length order differ a lot, so a
  larger batch mostly adds padding to the one-pass inputs (``bound_padded_tokens`` shows how much).

Default batch sizes (8 toy, 1 ProcessBench-shaped) are where *both* methods run fastest on a 2-core CPU
(toy: a sweep of 1 to 64, where larger batches overflow the cache and the one-pass batches, ~25% more
tokens at the same batch size, lose more; ProcessBench-shaped: batch 1 beats 2 and 4 for both methods,
docs/benchmarks.md); on a GPU pass a larger ``--batch-size``.

The analytic bound of the speed-up is the ratio of the work the two methods do:

* ``bound_tokens``: tokens processed, per step method / one pass. Per step, the sum over steps of
  the prefix length up to and including that step's tag; one pass, each solution's full length once.
* ``bound_padded_tokens``: the same with padding, counted at the model's input for the batches each
  method actually runs (``_score_encoded`` sorts by length and pads each batch to its longest row).
* ``bound_padded_flops``: the padded batches in floating-point operations of this model: linear
  layers per token plus causal attention per pair of tokens (the output head is read at the tags
  only, the same number for both). When attention matters this is the tightest of the three.

``speedup_vs_bound`` is the measured speed-up over ``bound_tokens``.

    python benchmarks/prm_scoring.py                      # both parts, CPU
    python benchmarks/prm_scoring.py --threads 1 --parts toy
    python benchmarks/prm_scoring.py --device cuda --batch-size 64

The last line printed is one JSON object: ``{"speedup": ..., "steps_per_s": ..., "bound_tokens": ...,
"processbench_speedup": ..., "processbench_bound_tokens": ..., ...}`` (the ``processbench_`` keys are
those of the ProcessBench-shaped part; a part not run has no keys).
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

ROOT = Path(__file__).resolve().parent.parent
# The kit first: importing it filters bitsandbytes' warning that it cannot fetch a CPU kernel the kit never uses
# (stepdpo_lite/__init__.py), which transformers' imports would otherwise print.
sys.path.insert(0, str(ROOT))
import stepdpo_lite  # noqa: E402,F401

import torch  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

from stepdpo_lite.tutorial import tiny_models, toyworld  # noqa: E402
from stepdpo_lite.rewards import ProcessRewardModel  # noqa: E402
from stepdpo_lite.steps import extract_steps  # noqa: E402

PROCESSBENCH_SAMPLE = ROOT / "data" / "processbench" / "sample.jsonl"


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


def processbench_solutions(path=PROCESSBENCH_SAMPLE, rows: int | None = None):
    """The ProcessBench rows' problems (as prompts, verbatim) and step lists; the first ``rows`` of them."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    records = records[:rows] if rows else records
    return [r["problem"] for r in records], [list(r["steps"]) for r in records]


def one_pass(prm, prompts, solutions, batch_size):
    return prm.score_solutions(prompts, solutions, batch_size=batch_size)


def per_step_encoded(prm, prompts, solutions):
    """Per-step scoring's inputs: one per step, cut right after that step's tag (its last token)."""
    cut_prompts = [p for p, steps in zip(prompts, solutions) for _ in steps]
    cut_steps = [steps[:k + 1] for steps in solutions for k in range(len(steps))]
    return [(ids, pos[-1:]) for ids, pos in prm._encode_many(cut_prompts, cut_steps)]


def one_forward_per_step(prm, prompts, solutions, batch_size):
    """Per-step scoring: every step is its own input, cut right after that step's tag."""
    flat = [r[0] for r in prm._score_encoded(per_step_encoded(prm, prompts, solutions), batch_size)]
    out, i = [], 0
    for steps in solutions:
        out.append(flat[i:i + len(steps)])
        i += len(steps)
    return out


def forward_flops(config, batch: int, width: int) -> float:
    """Floating-point operations of a decoder forward over ``batch`` rows of ``width`` tokens: the linear
    layers (2 per weight per token) and causal attention (QK^T and AV over the ``width * (width + 1) / 2``
    pairs a causal kernel computes); norms, rotary and activations are left out."""
    d = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    linear = d * heads * head_dim + 2 * d * kv * head_dim + heads * head_dim * d + 3 * d * config.intermediate_size
    attention = 2 * 2 * heads * head_dim * width * (width + 1) / 2
    return config.num_hidden_layers * batch * (2 * linear * width + attention)


class InputCounter:
    """Records the ``(batch, width)`` of every input the decoder sees, padding included."""

    def __init__(self, model):
        self.shapes: list[tuple[int, int]] = []
        self.handle = model.get_decoder().register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.shapes.append(tuple(ids.shape))

    def take(self):
        shapes, self.shapes = self.shapes, []
        return shapes

    def remove(self):
        self.handle.remove()


def measure(prm, prompts, solutions, batch_size, repeats, device, label):
    """Check agreement, count the work, time both methods alternately; a dict of figures."""
    n_steps = sum(len(s) for s in solutions)
    lengths = [len(ids) for ids, _ in prm._encode_many(prompts, solutions)]
    cut_lengths = [len(ids) for ids, _ in per_step_encoded(prm, prompts, solutions)]
    print(f"[{label}] {len(solutions)} solutions, {n_steps} steps ({n_steps / len(solutions):.2f} per solution), "
          f"{min(lengths)}-{max(lengths)} tokens each (median {statistics.median(lengths):.0f}), "
          f"batch size {batch_size}")

    counter = InputCounter(prm.model)
    try:
        a = one_pass(prm, prompts, solutions, batch_size)  # also the warm-up
        shapes_one = counter.take()
        b = one_forward_per_step(prm, prompts, solutions, batch_size)
        shapes_per_step = counter.take()
    finally:
        counter.remove()
    diff = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    print(f"[{label}] max |reward difference| between the two: {diff:.2e}")
    if diff > 1e-3:
        raise SystemExit(f"the two scorings disagree (max difference {diff}): not benchmarking")

    tokens_one, tokens_per_step = sum(lengths), sum(cut_lengths)
    padded_one = sum(bt * w for bt, w in shapes_one)
    padded_per_step = sum(bt * w for bt, w in shapes_per_step)
    flops_one = sum(forward_flops(prm.model.config, bt, w) for bt, w in shapes_one)
    flops_per_step = sum(forward_flops(prm.model.config, bt, w) for bt, w in shapes_per_step)
    bound, padded_bound = tokens_per_step / tokens_one, padded_per_step / padded_one
    flops_bound = flops_per_step / flops_one

    def timed(fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        fn(prm, prompts, solutions, batch_size)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t, time.process_time() - c

    t_one, t_per_step = [], []
    for _ in range(repeats):
        t_one.append(timed(one_pass))
        t_per_step.append(timed(one_forward_per_step))
    one, per_step = (statistics.median(t for t, _ in x) for x in (t_one, t_per_step))
    cpu_one, cpu_per_step = (statistics.median(c for _, c in x) for x in (t_one, t_per_step))
    speedup = per_step / one
    print(f"[{label}] one pass per solution : {one:8.3f} s  (median of {repeats}; runs "
          f"{', '.join(f'{t:.2f}' for t, _ in t_one)}; CPU {cpu_one:.2f} s)")
    print(f"[{label}] one forward per step  : {per_step:8.3f} s  (median of {repeats}; runs "
          f"{', '.join(f'{t:.2f}' for t, _ in t_per_step)}; CPU {cpu_per_step:.2f} s)")
    print(f"[{label}] speedup {speedup:.2f}x (CPU time {cpu_per_step / cpu_one:.2f}x), {n_steps / one:.0f} steps/s "
          f"one-pass vs {n_steps / per_step:.0f} steps/s")
    print(f"[{label}] analytic bound: tokens {tokens_per_step} / {tokens_one} = {bound:.2f}x; padded tokens "
          f"{padded_per_step} / {padded_one} = {padded_bound:.2f}x ({len(shapes_per_step)} vs {len(shapes_one)} "
          f"batches); padded FLOPs {flops_per_step:.3g} / {flops_one:.3g} = {flops_bound:.2f}x")
    print(f"[{label}] measured / bound: {speedup / bound:.2f} of the token bound, {speedup / padded_bound:.2f} of "
          f"the padded-token bound, {speedup / flops_bound:.2f} of the padded-FLOP bound")
    return {"speedup": round(speedup, 3), "speedup_cpu_time": round(cpu_per_step / cpu_one, 3),
            "steps_per_s": round(n_steps / one, 1), "steps_per_s_per_step_forward": round(n_steps / per_step, 1),
            "seconds_one_pass": round(one, 4), "seconds_per_step_forward": round(per_step, 4),
            "bound_tokens": round(bound, 4), "bound_padded_tokens": round(padded_bound, 4),
            "bound_padded_flops": round(flops_bound, 4), "speedup_vs_bound": round(speedup / bound, 3),
            "speedup_vs_padded_bound": round(speedup / padded_bound, 3),
            "speedup_vs_flops_bound": round(speedup / flops_bound, 3),
            "tokens_one_pass": tokens_one, "tokens_per_step_forward": tokens_per_step,
            "padded_tokens_one_pass": padded_one, "padded_tokens_per_step_forward": padded_per_step,
            "batches_one_pass": len(shapes_one), "batches_per_step_forward": len(shapes_per_step),
            "max_reward_difference": float(f"{diff:.3g}"), "n_solutions": len(solutions), "n_steps": n_steps,
            "batch_size": batch_size}


def processbench_model(tokenizer, prompts, solutions, hidden: int, layers: int, seed: int):
    """A random Llama of the tiny base's shape with room for the longest ProcessBench-shaped input."""
    counter = tiny_models.build_tiny_model(tokenizer, hidden_size=hidden, layers=layers, seed=seed)
    counter.config.max_position_embeddings = 10**6  # it only counts tokens: room for any input
    probe = ProcessRewardModel(counter, tokenizer, max_length=10**6)
    longest = max(len(ids) for ids, _ in probe._encode_many(prompts, solutions))
    config = probe.model.config
    config.max_position_embeddings = max(1024, -(-longest // 1024) * 1024)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model, config.max_position_embeddings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=["toy", "processbench"], default=["toy", "processbench"],
                        help="which solutions to benchmark (default: both)")
    parser.add_argument("--n", type=int, default=256, help="number of toy solutions")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the toy part")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each method (toy part)")
    parser.add_argument("--pb-rows", type=int, default=None, help="use the first N ProcessBench rows (default: all 40)")
    parser.add_argument("--pb-batch-size", type=int, default=1, help="batch size of the ProcessBench-shaped part")
    parser.add_argument("--pb-repeats", type=int, default=3, help="timed runs of each method (ProcessBench part)")
    parser.add_argument("--pb-hidden", type=int, default=128, help="hidden size of its random Llama (tiny base: 128)")
    parser.add_argument("--pb-layers", type=int, default=4, help="layers of its random Llama (tiny base: 4)")
    parser.add_argument("--device", default="cpu", help="where both parts' models run and score (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the toy problems and solutions and of the random models' weights (default: 0)")
    args = parser.parse_args(argv)
    # found out now, not after a model is loaded and scored (0 repeats: the median of no timings; --pb-rows 0 was
    # taken as all rows, and --threads 0 as torch's choice)
    for name in ("n", "batch_size", "repeats", "pb_rows", "pb_batch_size", "pb_repeats", "pb_layers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.pb_hidden < 8 or args.pb_hidden % 8:  # 4 heads, each of an even size for the rotary embedding
        parser.error(f"--pb-hidden must be a positive multiple of 8, got {args.pb_hidden}")
    try:  # a misspelt device, or cuda without a GPU, was torch's traceback after the model loaded
        tiny_models.check_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    result = {}

    if "toy" in args.parts:
        try:
            model, tokenizer = tiny_models.load_tiny_base(device=args.device)
            which = "tiny base (data/tiny-base)"
        except FileNotFoundError:
            tokenizer = tiny_models.build_tokenizer()
            model = tiny_models.build_tiny_model(tokenizer, seed=args.seed).to(args.device)
            which = "random tiny Llama (no model in data/tiny-base, or in $STEPDPO_TINY_BASE where set)"
        prm = ProcessRewardModel(model, tokenizer)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"[toy] model: {which}, {n_params / 1e6:.2f}M parameters")
        prompts, solutions = toy_solutions(args.n, args.seed)
        figures = measure(prm, prompts, solutions, args.batch_size, args.repeats, args.device, "toy")
        result.update(figures, device=args.device, model=which)

    if "processbench" in args.parts:
        tokenizer = tiny_models.build_tokenizer()
        prompts, solutions = processbench_solutions(rows=args.pb_rows)
        model, context = processbench_model(tokenizer, prompts, solutions, args.pb_hidden, args.pb_layers, args.seed)
        model.to(args.device)
        prm = ProcessRewardModel(model, tokenizer, max_length=context)
        n_params = sum(p.numel() for p in model.parameters())
        layers = f"{args.pb_layers} layer{'s' if args.pb_layers != 1 else ''}"
        which = (f"random Llama, hidden {args.pb_hidden}, {layers}, {n_params / 1e6:.2f}M parameters, "
                 f"{context} positions; toy character-level tokenizer")
        print(f"[processbench] model: {which}")
        figures = measure(prm, prompts, solutions, args.pb_batch_size, args.pb_repeats, args.device, "processbench")
        result.update({f"processbench_{k}": v for k, v in figures.items()}, processbench_model=which)
        result.setdefault("device", args.device)

    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
