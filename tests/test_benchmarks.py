"""The benchmark scripts run (tiny sizes, CPU) and print their JSON; the figures themselves are in
docs/benchmarks.md."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_profiles_smoke_on_cpu():
    out = subprocess.run([sys.executable, "benchmarks/gpu_profiles.py", "--shrink", "--device", "cpu",
                          "--max-length", "96", "--new-tokens", "4", "--steps", "1", "--warmup", "0",
                          "--profiles", "t4-16gb", "--work", "sample", "prm_train", "prm_score"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    t4 = result["profiles"]["t4-16gb"]
    assert t4["model"] == "Qwen/Qwen2.5-0.5B-Instruct" and "random weights" in t4["weights"]
    assert t4["sample"]["batch"] == 16 and t4["sample"]["tokens_per_s"] > 0
    # the rows are filled close to max_length, as the memory figures need (96: on transformers 5.2 the toy
    # tokenizer reloads from the Qwen2 folder with its spaces, and the shortest rows take about 80 tokens)
    assert 48 < t4["prm_train"]["mean_tokens_per_row"] <= 96 and t4["prm_train"]["tokens_per_s"] > 0
    assert t4["prm_score"]["steps_per_s"] > 0


def _stub_prm_workloads(monkeypatch, bench) -> dict:
    """gpu_profiles' base and PRM workloads replaced by stubs that record the max_length each was given."""
    lengths = {}
    monkeypatch.setattr(bench, "build_base", lambda *a: ("<base>", "random weights"))
    monkeypatch.setattr(bench, "bench_prm_train",
                        lambda profile, base, device, max_length, steps, warmup: (lengths.update(train=max_length)
                                                                                   or "<prm>", {}))
    monkeypatch.setattr(bench, "bench_prm_score",
                        lambda prm, profile, device, max_length: lengths.update(score=max_length) or {})
    return lengths


def test_gpu_profiles_prm_workloads_run_at_the_reward_models_length(monkeypatch, capsys):
    """The PRM workloads ran at the policy's max_length (1024), while the profiles train and score reward models at
    reward_max_length (4096 on the GPU profiles): their memory figures were for rows a quarter as long."""
    bench = _load_benchmark("gpu_profiles")
    lengths = _stub_prm_workloads(monkeypatch, bench)
    monkeypatch.setattr(bench, "bench_preference", lambda profile, base, device, max_length, *a, **kw:
                        lengths.update(dpo=max_length) or {})
    work = ["--device", "cpu", "--profiles", "t4-16gb", "--work", "prm_train", "prm_score", "dpo"]
    bench.main(work)
    t4 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["profiles"]["t4-16gb"]
    assert lengths == {"train": 4096, "score": 4096, "dpo": 1024}
    assert t4["max_length"] == 1024 and t4["reward_max_length"] == 4096
    bench.main(work + ["--max-length", "64"])  # the smoke test's: both at the length given
    assert lengths == {"train": 64, "score": 64, "dpo": 64}


def _load_benchmark(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_prm_scoring():
    return _load_benchmark("prm_scoring")


@pytest.mark.parametrize("name, args", [
    ("prm_scoring", ["--n", "0"]), ("prm_scoring", ["--repeats", "0"]), ("prm_scoring", ["--batch-size", "0"]),
    ("prm_scoring", ["--pb-rows", "0"]), ("prm_scoring", ["--pb-repeats", "0"]),
    ("prm_scoring", ["--pb-batch-size", "0"]), ("prm_scoring", ["--pb-hidden", "12"]),
    ("prm_scoring", ["--pb-layers", "0"]), ("prm_scoring", ["--threads", "0"]),
    ("step_time", ["--batch-size", "0"]), ("step_time", ["--repeats", "0"]), ("step_time", ["--warmup", "-1"]),
    ("step_time", ["--threads", "0"]),
    ("gpu_profiles", ["--steps", "0"]), ("gpu_profiles", ["--warmup", "-1"]), ("gpu_profiles", ["--max-length", "0"]),
    ("gpu_profiles", ["--new-tokens", "0"]),
    # given twice, a profile or workload ran twice on the device; prm_score without prm_train before it (or with a
    # dpo run between, which drops the PRM) stopped the run only after the workloads before it had run
    ("gpu_profiles", ["--profiles", "24gb", "24gb"]), ("gpu_profiles", ["--work", "sample", "sample"]),
    ("gpu_profiles", ["--work", "sample", "prm_score"]),
    ("gpu_profiles", ["--work", "prm_train", "dpo", "prm_score"]),
])
def test_benchmarks_refuse_sizes_below_their_minimum_before_loading_a_model(name, args, monkeypatch, capsys):
    """A count of 0 ended in a traceback after the model was loaded (the median of no timings, a division by no
    solutions), or was taken silently (--pb-rows 0 as all rows, --max-length 0 as the profile's)."""
    from stepdpo_lite.tutorial import tiny_models

    bench = _load_benchmark(name)

    def no_model(*a, **kw):
        pytest.fail("a model was loaded before the arguments were checked")

    monkeypatch.setattr(tiny_models, "load_tiny_base", no_model)
    monkeypatch.setattr(tiny_models, "build_tiny_model", no_model)
    if hasattr(bench, "build_base"):
        monkeypatch.setattr(bench, "build_base", no_model)
    with pytest.raises(SystemExit) as done:
        bench.main(args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[0].lstrip("-").replace("-", "_") in message.replace("-", "_"), message


@pytest.mark.parametrize("name", ["prm_scoring", "step_time", "gpu_profiles"])
@pytest.mark.parametrize("device", ["nope", "cuda:0"])
def test_benchmarks_refuse_a_device_torch_cannot_use_before_loading_a_model(name, device, monkeypatch, capsys):
    """A misspelt --device, or cuda without a GPU, was torch's traceback once the model had loaded."""
    import torch

    from stepdpo_lite.tutorial import tiny_models

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is visible: cuda is a device torch can use here")
    bench = _load_benchmark(name)

    def no_model(*a, **kw):
        pytest.fail("a model was loaded before the arguments were checked")

    monkeypatch.setattr(tiny_models, "load_tiny_base", no_model)
    monkeypatch.setattr(tiny_models, "build_tiny_model", no_model)
    for loader in ("build_base", "load_model", "load_profile_model"):
        if hasattr(bench, loader):
            monkeypatch.setattr(bench, loader, no_model)
    with pytest.raises(SystemExit) as done:
        bench.main(["--device", device])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith(f"--device {device}: "), message


def _padded(lengths, batch_size):
    """Tokens with padding when sorted by length and cut into batches, as ``_score_encoded`` does."""
    lengths = sorted(lengths, reverse=True)
    return sum(len(lengths[i:i + batch_size]) * lengths[i] for i in range(0, len(lengths), batch_size))


def test_prm_scoring_bounds_and_processbench(tiny_model, tiny_tokenizer):
    out = subprocess.run([sys.executable, "benchmarks/prm_scoring.py", "--threads", "1", "--n", "16", "--repeats", "1",
                          "--batch-size", "4", "--pb-rows", "3", "--pb-repeats", "1", "--pb-batch-size", "2",
                          "--pb-hidden", "64", "--pb-layers", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("speedup", "steps_per_s", "bound_tokens", "bound_padded_tokens", "speedup_vs_bound",
                "processbench_speedup", "processbench_bound_tokens", "processbench_bound_padded_tokens"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    # the script divides unrounded figures and prints each rounded to 3 decimals: recomputed from the printed
    # ones, the ratio may differ in its last digit
    assert result["speedup_vs_bound"] == pytest.approx(result["speedup"] / result["bound_tokens"], abs=2e-3)

    # the token counts, recomputed here from the one-pass encodings: the per-step design reads each
    # solution's prefix up to and including step k's tag, for every k
    bench = _load_prm_scoring()
    from stepdpo_lite.tutorial import tiny_models
    from stepdpo_lite.rewards import ProcessRewardModel
    try:
        _, toy_tokenizer = tiny_models.load_tiny_base()
    except FileNotFoundError:
        toy_tokenizer = tiny_tokenizer
    tiny_model.config.max_position_embeddings = 10**5  # these PRMs only count tokens: room for ProcessBench's
    parts = [("", ProcessRewardModel(tiny_model, toy_tokenizer), bench.toy_solutions(16), 16, 4),
             ("processbench_", ProcessRewardModel(tiny_model, tiny_tokenizer, max_length=10**5),
              bench.processbench_solutions(rows=3), 3, 2)]
    for prefix, prm, (prompts, solutions), n, batch_size in parts:
        encoded = [prm.encode(p, s) for p, s in zip(prompts, solutions)]
        whole = [len(ids) for ids, _ in encoded]
        prefixes = [pos + 1 for _, positions in encoded for pos in positions]
        assert result[prefix + "n_solutions"] == n and result[prefix + "n_steps"] == len(prefixes)
        assert result[prefix + "tokens_one_pass"] == sum(whole)
        assert result[prefix + "tokens_per_step_forward"] == sum(prefixes)
        assert result[prefix + "padded_tokens_one_pass"] == _padded(whole, batch_size)
        assert result[prefix + "padded_tokens_per_step_forward"] == _padded(prefixes, batch_size)
        assert 1 < result[prefix + "bound_tokens"] <= max(len(s) for s in solutions)
        assert abs(result[prefix + "bound_tokens"] - sum(prefixes) / sum(whole)) < 1e-4
        assert abs(result[prefix + "bound_padded_tokens"]
                   - _padded(prefixes, batch_size) / _padded(whole, batch_size)) < 1e-4


def test_gpu_profiles_prm_length_is_the_profiles_own_reward_training_length(monkeypatch, capsys):
    """The benchmark spelled out again the profile's rule for the reward models' length (reward_max_length, else
    max_length): it reads Profile.reward_training_args, the one notebook 02 trains by, so the two cannot part."""
    from stepdpo_lite.tutorial import profiles
    bench = _load_benchmark("gpu_profiles")
    lengths = _stub_prm_workloads(monkeypatch, bench)
    rule = profiles.Profile.reward_training_args
    monkeypatch.setattr(profiles.Profile, "reward_training_args",
                        lambda self, reward="process": {**rule(self, reward), "max_length": 777})
    bench.main(["--device", "cpu", "--profiles", "t4-16gb", "--work", "prm_train", "prm_score"])
    t4 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["profiles"]["t4-16gb"]
    assert lengths == {"train": 777, "score": 777} and t4["reward_max_length"] == 777
