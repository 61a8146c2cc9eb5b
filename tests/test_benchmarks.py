"""The benchmark scripts run (tiny sizes, CPU) and print their JSON; the figures themselves are in docs/benchmarks.md."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_profiles_smoke_on_cpu():
    out = subprocess.run([sys.executable, "benchmarks/gpu_profiles.py", "--shrink", "--device", "cpu",
                          "--max-length", "64", "--new-tokens", "4", "--steps", "1", "--warmup", "0",
                          "--profiles", "t4-16gb", "--work", "sample", "prm_train", "prm_score"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    t4 = result["profiles"]["t4-16gb"]
    assert t4["model"] == "Qwen/Qwen2.5-0.5B-Instruct" and "random weights" in t4["weights"]
    assert t4["sample"]["batch"] == 16 and t4["sample"]["tokens_per_s"] > 0
    # the rows are filled close to max_length, as the memory figures need
    assert 32 < t4["prm_train"]["mean_tokens_per_row"] <= 64 and t4["prm_train"]["tokens_per_s"] > 0
    assert t4["prm_score"]["steps_per_s"] > 0
