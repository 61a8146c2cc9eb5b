"""Every notebook executes, in order, on the tiny profile with small sizes, into one runs folder as in `make tutorial`;
figures are real images; executed notebooks render to HTML; what the notebooks' texts say holds on that run. The
smoke profile's run is tests/test_smoke_notebooks.py (`make test`'s workers take a test file each: the two runs side
by side)."""
import ast
import json
import re
from pathlib import Path

import pytest
from datasets import load_from_disk
from nbconvert import HTMLExporter

from stepdpo_lite.tutorial import toyworld
from stepdpo_lite.tutorial import notebooks as tutorial

# Small sizes: enough rows for every builder, trainer and metric to have something to work on.
SMALL = {
    "N_TRAIN_PROBLEMS": 60, "N_EVAL_PROBLEMS": 24, "N_SAMPLES": 4, "N_MC_SOLUTIONS": 8, "N_MC_ROLLOUTS": 4,
    "N_TEST_PROBLEMS": 24, "N_CANDIDATES": 8, "MAX_TRAIN_STEPS": 10, "N_SAMPLED": 1,
    "N_BEST_OF_N_PROBLEMS": 8, "N_RESAMPLES": 20, "N_HEATMAP_SOLUTIONS": 8, "N_PAIRS": 8,
    "N_BEFORE_AFTER_PROBLEMS": 4, "N_EXPLORER_PROBLEMS": 2, "N_TEST_TIME_PROBLEMS": 4, "TEST_TIME_BUDGETS": [2, 4],
    "ONPOLICY_PROBLEMS": 12, "ONPOLICY_STEPS": 2,
    "ONPOLICY_ROUNDS": 1,  # one round here; the smoke run (test_smoke_notebooks) and test_onpolicy run two
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"root": root, "run": root / "tiny", "failed": []}


@pytest.mark.notebook
@pytest.mark.parametrize("name", tutorial.NOTEBOOKS)
def test_notebook_executes_and_renders(run, run_notebook, name):
    out = run_notebook(run, name, "tiny", SMALL)
    html, _ = HTMLExporter().from_filename(str(out))
    assert "<html" in html.lower() and "Traceback" not in html
    stem = name.split("_")[0]
    figures = sorted((run["run"] / "figures").glob(f"{stem}_*.png"))
    if stem not in ("02", "03"):  # the reward-model notebooks print tables; the others must draw
        assert figures, f"{name} saved no figure under figures/{stem}_*.png"
    for fig in figures:
        blob = fig.read_bytes()
        assert blob[:8] == PNG and len(blob) > 5_000, f"{fig.name} is not a real image"
    # a figure the cell saves is also shown there (a plot inside an `if`, or not last in its cell, is not)
    for i, cell in enumerate(json.loads(out.read_text())["cells"]):
        if cell["cell_type"] == "code" and "save_to=FIGURES_DIR" in "".join(cell["source"]):
            images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
            assert images, f"{name}: cell {i} saves a figure it does not show"


@pytest.mark.notebook
def test_tiny_run_backs_what_the_notebooks_say(run):
    """The "what the output shows" texts of notebooks 02 to 07, asserted on the tiny run above."""
    if run["failed"] or not (run["run"] / "metrics.json").exists():
        pytest.fail("the tiny notebooks did not all run")
    m = json.loads((run["run"] / "metrics.json").read_text())
    prm, orm, vis = m["prm"], m["orm"], m["visualisation"]
    # Comparisons too close for these small sizes are asserted on the recorded full-size run
    # (tests/test_readme_results.py).
    # 01: accuracy falls with the number of steps; some right answers come through a wrong step (not clean)
    outcome = load_from_disk(str(run["run"] / "data" / "train_outcome"))
    by_steps = {}
    for prompt, label in zip(outcome["prompt"], outcome["label"]):
        by_steps.setdefault(len(toyworld.parse_prompt(prompt).ops), []).append(bool(label))
    accuracy = {n: sum(v) / len(v) for n, v in by_steps.items()}
    assert accuracy[min(accuracy)] > accuracy[max(accuracy)], accuracy
    assert any(label and not all(steps) for label, steps in zip(outcome["label"], outcome["step_labels"]))
    # 02 keeps the threshold it chose with the PRM it saved, for prm.first_errors after a reload
    saved = json.loads((run["run"] / "prm" / "process_reward_config.json").read_text())
    assert saved["first_error_threshold"] == prm["first_error_threshold"]
    # 02: far above the position-only baseline; the verifier base is good zero-shot; the control is not
    assert prm["step_auroc"] >= prm["position_baseline_auroc"] + 0.15
    assert prm["zero_shot"]["step_auroc"] >= 0.9 and prm["first_error_f1"] >= 0.8
    assert prm["control"]["after_qlora"]["step_auroc"] <= prm["position_baseline_auroc"] + 0.05
    # 02: its P = σ(reward) reads as a probability: a small ECE, the steps below P 0.1 nearly all wrong and those
    # above 0.9 mostly right, its mean P near the share right (the middle bins and the threshold: the recorded run)
    calibration, (lowest, *_, highest) = prm["calibration"], prm["calibration"]["bins"]
    assert sum(b["count"] for b in calibration["bins"]) == calibration["steps"] and calibration["ece"] <= 0.1
    assert lowest["right_share"] <= 0.1 and highest["right_share"] >= 0.75
    assert abs(calibration["mean_p"] - calibration["right_share"]) <= 0.1
    # 03: the combined reward model scores at least as high as both of its parts (its gap to the ORM is printed
    # with an interval, and on the full-size run that interval includes zero: the text says so)
    assert orm["combined_auroc"] >= max(orm["auroc"], orm["prm_min_auroc"])
    # 02, 03: the AUROC gaps printed with their bootstrap intervals are the figures' own differences
    gaps = {"prm qlora_minus_zero_shot": (prm["qlora_minus_zero_shot"],
                                          prm["step_auroc"] - prm["zero_shot"]["step_auroc"]),
            "orm combined_minus_orm": (orm["differences"]["combined_minus_orm"], orm["combined_auroc"] - orm["auroc"]),
            "orm orm_minus_prm_min": (orm["differences"]["orm_minus_prm_min"], orm["auroc"] - orm["prm_min_auroc"]),
            "orm qlora_minus_zero_shot": (orm["differences"]["qlora_minus_zero_shot"],
                                          orm["auroc"] - orm["zero_shot_auroc"])}
    for name, (d, gap) in gaps.items():
        assert d["difference"] == pytest.approx(gap) and d["low"] <= d["high"], name
    # 04: on-policy rounds with the PRM's step labels; the PRM mislabels few of the pairs it picks (by the checker)
    policy = m["policy"]
    assert policy["stepwise_dpo"]["label_source"] == "prm" and len(policy["rounds"]) == SMALL["ONPOLICY_ROUNDS"]
    for name in ("base", "dpo", "stepwise_dpo", "nll_only"):
        assert {"accuracy", "sampled_accuracy"} <= set(policy[name]), name
    one_round = policy["one_round_gold_labels"]  # the runs on notebook 01's pairs, before the rounds
    for name in ("dpo", "stepwise_dpo", "nll_only"):  # every method gains over the base, in both parts
        assert min(policy[name]["accuracy"], one_round[name]["accuracy"]) > policy["base"]["accuracy"], name
    for name, diff in policy["stepwise_dpo"]["minus"].items():  # the paired differences printed under the table
        d, gap = diff["accuracy"], policy["stepwise_dpo"]["accuracy"] - policy[name]["accuracy"]
        assert d["low"] <= d["difference"] <= d["high"] and d["difference"] == pytest.approx(gap)
    pairs = sum(r["pairs"]["total"] for r in policy["rounds"])
    mislabelled = sum(v["mislabelled"] for r in policy["rounds"] for v in r["mislabels"].values() if v)
    assert pairs > 0 and mislabelled <= 0.25 * pairs
    # 05: chosen above rejected at every step position; most pairs ranked right; the explorer finds first errors;
    # both preference methods push the wrong steps of rejected solutions down further than the right ones
    assert all(gap > 0 for gap in vis["chosen_minus_rejected_by_step"])
    assert vis["chosen_ranked_above_rejected"] >= 0.75 and vis["explorer_first_error_hits"] >= 0.75
    assert set(vis["implicit_step_reward"]) == {"DPO", "Stepwise DPO"}  # the loop below checks both
    for name, r in vis["implicit_step_reward"].items():
        assert None not in (r["rejected_wrong"], r["rejected_right"]), name  # both kinds of step among the pairs
        assert r["rejected_wrong"] < r["rejected_right"], name
    # 06: at the largest N, the PRM's best aggregation >= ORM >= majority >= random, PRM >= majority + 15 points
    top = m["best_of_n"][max(m["best_of_n"], key=int)]
    best_prm = max(top["prm_min"], top["prm_product"], top["prm_last"])
    assert best_prm >= top["orm"] >= top["majority"] >= top["random"]
    assert best_prm >= top["majority"] + 0.15
    for aggregation in ("prm_min", "prm_product"):  # the PRM's curves climb with N
        curve = [m["best_of_n"][n][aggregation] for n in sorted(m["best_of_n"], key=int)]
        assert curve[-1] > curve[0], (aggregation, curve)
    # 06 and 07: the paired differences printed under the tables are the tables' own gaps, inside their intervals
    assert set(m["best_of_n_differences"]) == set(m["best_of_n"])  # every N the table has
    assert set(m["best_of_n_differences"][max(m["best_of_n"], key=int)]) >= {"prm_product", "orm", "majority"}
    for where, table in (("best_of_n_differences", m["best_of_n"]), ("test_time_differences", m["test_time"])):
        for n, by_a in m[where].items():
            for a, by_b in by_a.items():
                for b, d in by_b.items():
                    assert d["low"] <= d["difference"] <= d["high"], (where, n, a, b)
                    assert d["difference"] == pytest.approx(table[n][a] - table[n][b]), (where, n, a, b)
    # 07: at the largest token budget a PRM (picking or steering) is at least as good as majority vote
    budget = m["test_time"][str(max(int(b) for b in m["test_time"] if b.isdigit()))]
    assert max(budget["beam_prm"], budget["best_of_n_prm"]) >= budget["majority"]
    # steering is no worse than picking with the same PRM, and the ORM picks no worse than majority vote
    assert budget["beam_prm"] >= budget["best_of_n_prm"] and budget["best_of_n_orm"] >= budget["majority"]
    assert set(m["test_time_differences"][str(max(int(b) for b in m["test_time"] if b.isdigit()))]) >= {"beam_prm"}
    assert set(m["test_time"]["pruning"]) == {str(b) for b in SMALL["TEST_TIME_BUDGETS"]}
    for b, report in m["test_time"]["pruning"].items():  # the checker's view of the pruning, each budget
        assert report["kept"] > 0 and report["rounds"] >= report["no_right_step"] + report["right_step_pruned"], b

# A reward model's scoring bar is drawn only once scoring has taken 2 s (tqdm's delay, rewards._score_encoded): on
# a loaded machine it shows, by design. Its text says how long it ran, "scoring: 100%|...| 1/1 [00:02<00:00, ...]".
DELAYED_SCORING_BAR = re.compile(r"^scoring: .*\[(?:(\d+):)?(\d+):(\d+)<")


def _drawn_by_its_delay(text: str) -> bool:
    ran = DELAYED_SCORING_BAR.match(text)
    return bool(ran) and 3600 * int(ran[1] or 0) + 60 * int(ran[2]) + int(ran[3]) >= 2


def notebook_noise(path) -> dict:
    """What an executed notebook shows besides its results: progress-bar widgets (less scoring bars drawn after
    their 2 s delay: a slow machine's, not noise), warnings, and the longest single output (characters of text)."""
    nb = json.loads(Path(path).read_text())
    widgets = warnings = longest = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = "".join(out.get("text", ""))
                warnings += out.get("name") == "stderr" and "Warning" in text
            else:
                data = out.get("data", {})
                text = "".join(data.get("text/plain", ""))
                widgets += "application/vnd.jupyter.widget-view+json" in data and not _drawn_by_its_delay(text)
            longest = max(longest, len(text))
    return {"widgets": widgets, "warnings": warnings, "longest_output": longest}


def test_notebook_noise_leaves_out_only_the_scoring_bars_drawn_after_their_delay(tmp_path):
    """On a loaded machine (two test runs at once) notebook 02 showed 8 widgets, 6 of them scoring bars that had
    run 2 s or more, drawn by their delay: test_tiny_notebooks_are_quiet failed with the machine's load."""
    def bar(text):
        return {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {},
                                                          "text/plain": text}}

    outputs = [bar("scoring: 100%|##########| 1/1 [00:02<00:00,  2.58s/it]"),  # drawn by its delay
               bar("scoring: 100%|##########| 6/6 [01:00<00:00,  9.9s/it]"),
               bar("scoring: 100%|##########| 6/6 [00:01<00:00,  5.1it/s]"),  # drawn before its delay: noise
               bar("100%|##########| 10/10 [00:34<00:00,  3.31s/it, loss=0.1859]")]  # a training bar
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": outputs}]}))
    assert notebook_noise(tmp_path / "nb.ipynb")["widgets"] == 2


@pytest.mark.notebook
def test_tiny_notebooks_are_quiet(run):
    """At most 3 progress-bar widgets (4 in notebook 01: a bar per split's sampling, then the Monte-Carlo labels'),
    no warnings and no output over 3,000 characters per executed notebook."""
    if run["failed"]:
        pytest.fail("the tiny notebooks did not all run")
    noise = {name: notebook_noise(run["run"] / "executed" / name) for name in tutorial.NOTEBOOKS}
    bars = {name: 4 if name.startswith("01_") else 3 for name in tutorial.NOTEBOOKS}
    loud = {name: n for name, n in noise.items()
            if n["widgets"] > bars[name] or n["warnings"] or n["longest_output"] > 3000}
    assert loud == {}


@pytest.mark.notebook
def test_readme_example_runs_as_written_after_the_tutorial(run, tmp_path, capsys):
    """The README's first python block, with `runs/tiny` pointed at the tiny run above; what its text says the
    output shows (the PRM finds the slip in step 2 of the wrong solution) is asserted."""
    if run["failed"] or not (run["run"] / "prm").exists():
        pytest.fail("the tiny notebooks did not all run")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    usage = readme[readme.index("## Using the package"):]
    block = usage[usage.index("```python") + len("```python"):]
    block = block[:block.index("```")]
    code = block.replace('"runs/tiny/prm"', repr(str(run["run"] / "prm")))  # it writes to a temporary folder
    assert code != block, "the README example no longer loads runs/tiny/prm"
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    probs = [float(line.split("=")[1].split()[0]) for line in lines if line.strip().startswith("P(right)")]
    assert len(probs) == 6, lines
    right, wrong = probs[:3], probs[3:]
    assert wrong[0] > 0.5 and wrong[1] < 0.5 < right[1] and max(wrong[1:]) < min(right)
    # the step loss's labels: the slip in step 2 pushed down, the right arithmetic after it not
    labels = ast.literal_eval(next(l for l in lines if l.startswith("wrong solution, P(no mistake")).split(":", 1)[1])
    assert labels[0] > 0.5 and labels[1] < 0.5 < labels[2], labels
    assert "step_accuracy" in lines[-1]


@pytest.mark.notebook
def test_run_on_copy_runs_a_notebook_on_a_copy_and_leaves_the_run_as_it_was(run, tmp_path):
    """How scripts/seed_spread.py and scripts/exercise_runs.py run a variant: notebook 05 with one more explorer
    problem, on a copy of the tiny run; the run's own metrics stay as they were, and a failure says why."""
    if run["failed"] or "visualisation" not in json.loads((run["run"] / "metrics.json").read_text()):
        pytest.fail("the tiny notebooks did not all run")
    before = (run["run"] / "metrics.json").read_text()
    small = tutorial.notebook_parameters(tutorial.NOTEBOOK_DIR / "05_step_reward_visualisation.ipynb") & set(SMALL)
    sets = [f"{k}={SMALL[k]!r}" for k in sorted(small - {"N_EXPLORER_PROBLEMS"})]
    explorer = SMALL["N_EXPLORER_PROBLEMS"] + 1
    metrics = tutorial.run_on_copy(run["run"], tmp_path / "copy", ["05"], [*sets, f"N_EXPLORER_PROBLEMS={explorer}"],
                                   threads=1)
    solutions = json.loads(before)["visualisation"]["explorer_solutions"]
    assert metrics["visualisation"]["explorer_solutions"] == solutions * explorer // SMALL["N_EXPLORER_PROBLEMS"]
    assert (run["run"] / "metrics.json").read_text() == before
    with pytest.raises(RuntimeError, match="NO_SUCH_SETTING"):
        tutorial.run_on_copy(run["run"], tmp_path / "again", ["05"], ["NO_SUCH_SETTING=1"])


@pytest.mark.notebook
def test_reward_learning_rate_script_measures_both_recipes_on_the_tiny_run(run, capsys):
    """scripts/reward_learning_rates.py (how the tiny profile's ORM learning rate was chosen) on the run's data."""
    if run["failed"] or not (run["run"] / "data").exists():
        pytest.fail("the tiny notebooks did not all run")
    import runpy
    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "reward_learning_rates.py"))
    script["main"](["--runs-dir", str(run["root"]), "--learning-rates", "2e-3", "1e-4", "--epochs", "0.25"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{\"")]  # not logs
    assert [(r["reward"], r["learning_rate"]) for r in rows] == [
        ("process", 2e-3), ("process", 1e-4), ("outcome", 2e-3), ("outcome", 1e-4)]
    assert all(r["epochs"] == 0.25 for r in rows)  # --epochs overrides the profile's (a quarter: test time)
    for row in rows:
        keys = ("validation_step_auroc", "test_step_auroc") if row["reward"] == "process" else (
            "validation_auroc", "test_auroc")
        assert all(0 <= row[k] <= 1 for k in keys), row


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--learning-rates", "1e-3", "0"]])
def test_reward_learning_rate_script_refuses_what_would_train_nothing_before_it_loads_data(args, tmp_path, capsys):
    import runpy
    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "reward_learning_rates.py"))
    with pytest.raises(SystemExit) as done:
        script["main"](["--runs-dir", str(tmp_path), *args])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[0].lstrip("-").replace("-", "_") in message.replace("-", "_"), message


def test_notebooks_are_stored_without_outputs():
    import nbformat
    for path in sorted(Path(tutorial.NOTEBOOK_DIR).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), path.name
        assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell must be tagged"
        ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]  # nbformat.read renames duplicates
        assert len(set(ids)) == len(ids), f"{path.name}: duplicate cell ids (a copied cell keeps its id)"


def test_inline_code_in_the_notebooks_text_stays_on_one_line():
    """A command in backticks broken across two source lines renders joined but copies with a line break in it."""
    import re
    for path in sorted(Path(tutorial.NOTEBOOK_DIR).glob("*.ipynb")):
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "markdown")
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        assert [span for span in re.findall(r"`([^`]+)`", text) if "\n" in span] == [], path.name

def test_notebook_code_does_not_branch_on_the_gsm8k_profile_names():
    """Task-dependent code asks the task (tasks.get_task), not the profile's name, so that smoke runs it."""
    for path in sorted(Path(tutorial.NOTEBOOK_DIR).glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "code")
        assert "t4-16gb\"" not in code.replace('| "t4-16gb" |', "") and "== \"24gb\"" not in code, path.name
        assert "gsm8k.load_problems" not in code and "generation.sample_solutions" not in code, path.name
