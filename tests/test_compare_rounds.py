"""scripts/compare_rounds.py: one method of some onpolicy_rounds.py runs against one of others, seed by seed, paired
over each seed's problems; bad inputs are usage errors naming the option."""
import json
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path, name, seed, method, greedy, sampled, digest="d0", rounds=1):
    """An --out file of one seed: ``method``'s per-problem counts (greedy 0/1, sampled of 2) in its last round."""
    figures = {"accuracy": sum(greedy) / len(greedy), "sampled_accuracy": sum(sampled) / (2 * len(sampled)),
               "test_problems_digest": digest,
               "per_problem": {"greedy_right": greedy, "sampled_right": sampled, "n_sampled": 2}}
    path = tmp_path / f"{name}_s{seed}.json"
    path.write_text(json.dumps({"config": {"seed": seed}, "rounds": [{"round": r + 1, method: figures}
                                                                     for r in range(rounds)]}))
    return str(path)


def test_compare_rounds_pairs_each_seed_over_its_problems_and_takes_the_mean_over_seeds(tmp_path, capsys):
    script = runpy.run_path(str(ROOT / "scripts" / "compare_rounds.py"))
    a = [_run(tmp_path, "a", 0, "stepwise_dpo", [1, 1, 1, 0], [2, 2, 1, 0]),
         _run(tmp_path, "a", 1, "stepwise_dpo", [1, 1, 0, 0], [2, 1, 1, 0])]
    b = [_run(tmp_path, "b", 1, "nll_only", [1, 0, 0, 0], [1, 1, 0, 0]),  # the seeds matched, not the order
         _run(tmp_path, "b", 0, "nll_only", [1, 1, 0, 0], [2, 0, 1, 0])]
    out = script["main"](["--a", *a, "--a-method", "stepwise_dpo", "--b", *b, "--b-method", "nll_only",
                          "--round", "1"])
    assert out["seeds"][0]["minus"]["accuracy"]["difference"] == pytest.approx(0.25)  # 3/4 - 2/4
    assert out["seeds"][1]["minus"]["accuracy"]["difference"] == pytest.approx(0.25)
    assert out["seeds"][0]["minus"]["sampled_accuracy"]["difference"] == pytest.approx(2 / 8)  # 5/8 - 3/8
    assert out["seeds"][1]["minus"]["sampled_accuracy"]["difference"] == pytest.approx(2 / 8)  # 4/8 - 2/8
    mean = out["mean"]["accuracy"]
    assert mean["difference"] == pytest.approx(0.25) and mean["low"] == mean["high"] == pytest.approx(0.25)
    text = capsys.readouterr().out
    assert "seed 0: A 75.0 / 62.5, B 50.0 / 37.5; A minus B greedy +25.0 (" in text
    assert "mean over 2 seeds: A minus B greedy +25.0 (+25.0 to +25.0), sampled +25.0" in text


@pytest.mark.parametrize("case, message", [
    ("seeds", r"--a holds seeds \[0\] and --b seeds \[1\]: give the same seeds"),
    ("problems", "seed 0: the runs were evaluated on other problems"),
    ("method", "--b: .*b_s0.json has no figures of dpo in round 1"),
    ("round", "--round 2: .*a_s0.json has rounds 1 to 1"),
    ("twice", "--a: .*holds seed 0 again"),
    ("not_json", "--a: .*is no --out file of scripts/onpolicy_rounds.py")])
def test_compare_rounds_refuses_runs_it_cannot_pair(case, message, tmp_path, capsys):
    script = runpy.run_path(str(ROOT / "scripts" / "compare_rounds.py"))
    a = _run(tmp_path, "a", 0, "stepwise_dpo", [1, 0], [1, 1])
    b = _run(tmp_path, "b", 1 if case == "seeds" else 0, "nll_only", [1, 0], [1, 1],
             digest="other" if case == "problems" else "d0")
    args = ["--a", a, "--a-method", "stepwise_dpo", "--b", b, "--b-method", "dpo" if case == "method" else "nll_only",
            "--round", "2" if case == "round" else "1"]
    if case == "twice":
        args[1:2] = [a, a]
    if case == "not_json":
        Path(a).write_text("{")
    with pytest.raises(SystemExit):
        script["main"](args)
    assert re.search(message, capsys.readouterr().err)
