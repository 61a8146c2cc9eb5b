"""The run folder's helpers (stepdpo_lite.tutorial.runs)."""
import json
import re

import numpy as np
import pytest

from stepdpo_lite.tutorial import runs


@pytest.mark.parametrize("profile", ["", ".", "..", "tiny/../24gb", "/tmp", None])
def test_run_dir_refuses_a_profile_that_is_not_one_folder_name(profile, tmp_path):
    """run_dir("", root) was root itself, where every profile's metrics.json would mix; "/tmp" a folder elsewhere."""
    with pytest.raises(ValueError, match="run_dir: profile must be a folder name"):
        runs.run_dir(profile, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    assert runs.run_dir("tiny", tmp_path / "runs") == tmp_path / "runs" / "tiny"


def test_first_rows_keeps_the_first_n_all_for_none_and_refuses_a_count_below_1_by_its_knob():
    """Notebooks 02 and 03 trim their datasets with it; N_TRAIN_ROWS = 0 or -1 gave an empty dataset that only
    failed later, in the trainer."""
    from datasets import Dataset

    ds = Dataset.from_dict({"x": list(range(5))})
    assert runs.first_rows(ds, 3)["x"] == [0, 1, 2]
    assert runs.first_rows(ds, 50)["x"] == list(range(5)) and runs.first_rows(ds, None) is ds
    for n in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=f"first_rows: N_TRAIN_ROWS must be an int >= 1 or None, got {n!r}"):
            runs.first_rows(ds, n, "N_TRAIN_ROWS")


def test_update_metrics_replaces_the_sections_named_and_merges_the_rest_in_one_write(tmp_path):
    """Notebooks replaced a section with two writes, update_metrics(run, {"policy": None}) and then the new one: a
    figure refused in the second left the section cleared. ``replace`` drops the old section in the same write."""
    runs.update_metrics(tmp_path, {"prm": {"step_auroc": 0.9}, "policy": {"dpo": {"accuracy": 0.1, "old": 1}},
                                   "evaluation": {"pass_at_n": {"1": 0.5, "16": 0.9}, "n_test_problems": 150}})
    metrics = runs.update_metrics(tmp_path, {"policy": {"dpo": {"accuracy": 0.6}},
                                             "evaluation": {"pass_at_n": {"1": 0.4}}, "prm": {"threshold": 0.0}},
                                  replace=["policy", "evaluation.pass_at_n"])
    assert metrics == runs.read_metrics(tmp_path) == {
        "prm": {"step_auroc": 0.9, "threshold": 0.0},  # not named: merged
        "policy": {"dpo": {"accuracy": 0.6}}, "evaluation": {"pass_at_n": {"1": 0.4}, "n_test_problems": 150}}
    assert runs.update_metrics(tmp_path, {"policy": None}, replace=("policy",))["policy"] is None  # cleared
    assert runs.update_metrics(tmp_path, {"new": {"a": 1}}, replace=["new"])["new"] == {"a": 1}  # none before
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(ValueError, match="update_metrics: policy.dpo.accuracy is not a finite number"):
        runs.update_metrics(tmp_path, {"policy": {"dpo": {"accuracy": float("nan")}}}, replace=["policy"])
    for replace, message in ((["polcy"], "replace names 'polcy', which part does not hold"),
                             (["policy.dpo"], "replace names 'policy.dpo', which part does not hold"),
                             ("policy", "expected a list of dotted section names, got one str")):
        with pytest.raises(ValueError, match=message):
            runs.update_metrics(tmp_path, {"policy": {"x": 1}}, replace=replace)
    assert (tmp_path / "metrics.json").read_text() == before  # nothing written


def test_update_metrics_merges_and_refuses_a_missing_folder_or_a_nan(tmp_path):
    run = runs.run_dir("tiny", tmp_path)
    assert runs.read_metrics(run) == {} and not (run / "metrics.json").exists()  # reading writes nothing
    assert runs.update_metrics(run, {"prm": {"step_auroc": 0.8}}) == {"prm": {"step_auroc": 0.8}}
    assert runs.update_metrics(run, {"prm": {"first_error_f1": None}})["prm"] == {"step_auroc": 0.8,
                                                                                    "first_error_f1": None}
    before = (run / "metrics.json").read_text()
    with pytest.raises(FileNotFoundError, match="no run folder .*tinyy"):  # a typo made a new, empty run folder
        runs.update_metrics(tmp_path / "tinyy", {"prm": {"step_auroc": 0.8}})
    assert not (tmp_path / "tinyy").exists()
    with pytest.raises(ValueError, match=r"policy\.rounds\[1\]\.accuracy is not a finite number"):
        runs.update_metrics(run, {"policy": {"rounds": [{"accuracy": 0.5}, {"accuracy": float("nan")}]}})
    for bad in (float("inf"), -float("inf"), np.float32("inf")):  # json.dumps writes Infinity, which readers refuse
        with pytest.raises(ValueError, match="update_metrics: prm.step_auroc is not a finite number"):
            runs.update_metrics(run, {"prm": {"step_auroc": bad}})
    with pytest.raises(ValueError, match="part must be a dict"):
        runs.update_metrics(run, [("prm", 0.8)])
    assert (run / "metrics.json").read_text() == before  # nothing written by a refused update
    assert runs.read_metrics(run) == json.loads(before) and runs.recorded(run, "prm.step_auroc", "02") == 0.8


def test_update_metrics_takes_number_keys_and_numpy_scalars_and_names_a_corrupt_file(tmp_path):
    run = runs.run_dir("tiny", tmp_path)
    runs.update_metrics(run, {"bon": {2: 0.5}})
    assert runs.update_metrics(run, {"bon": {2: 0.25, 4: 0.75}}) == {"bon": {"2": 0.25, "4": 0.75}}  # JSON's str keys
    metrics = runs.update_metrics(run, {"x": {"acc": np.float32(0.5), "n": np.int64(3), "ok": np.bool_(True)}})
    assert metrics["x"] == {"acc": 0.5, "n": 3, "ok": True} and runs.read_metrics(run) == metrics
    before = (run / "metrics.json").read_text()
    with pytest.raises(ValueError, match=r"x\.acc is not a finite number"):  # a float32 NaN is not a float
        runs.update_metrics(run, {"x": {"acc": np.float32("nan")}})
    with pytest.raises(ValueError, match="bon has two keys JSON writes as '2'"):
        runs.update_metrics(run, {"bon": {2: 0.1, "2": 0.2}})
    with pytest.raises(ValueError, match=r"x\.fig is a PosixPath: record a number"):
        runs.update_metrics(run, {"x": {"fig": tmp_path}})
    assert (run / "metrics.json").read_text() == before
    (run / "metrics.json").write_text('{"prm": ')  # a crash of someone else's writer, or an edit by hand
    for call in (lambda: runs.update_metrics(run, {"x": 1}), lambda: runs.recorded(run, "prm.step_auroc", "02")):
        with pytest.raises(ValueError, match=f"{run / 'metrics.json'} is not valid JSON"):
            call()


# Notebook 02 rerun with N_TRAIN_ROWS=100 over a whole run: every kit notebook's figures and seconds are recorded
WHOLE_RUN = {
    "data": {"n": 1}, "prm": {"first_error_threshold": -3.228}, "orm": {"auroc": 0.9}, "policy": {"dpo": 0.5},
    "visualisation": {"x": 1}, "best_of_n": {"16": 0.7}, "best_of_n_differences": {}, "evaluation": {"n": 3},
    "test_time": {"4": 0.6}, "test_time_differences": {},
    "tutorial": {"notebook_seconds": {stem: 10.0 for stem in [
        "01_data_prep", "02_process_reward_model", "03_outcome_reward_model", "04_stepwise_dpo",
        "05_step_reward_visualisation", "06_evaluation", "07_test_time_compute"]}, "wall_seconds": 70.0}}
FIRST_SECTION = {"01_data_prep": "data", "02_process_reward_model": "prm", "03_outcome_reward_model": "orm",
                 "04_stepwise_dpo": "policy", "05_step_reward_visualisation": "visualisation",
                 "06_evaluation": "best_of_n", "07_test_time_compute": "test_time"}
LATER = ["03_outcome_reward_model", "04_stepwise_dpo", "05_step_reward_visualisation", "06_evaluation",
         "07_test_time_compute"]


@pytest.fixture
def whole_run(tmp_path, monkeypatch):
    """A tiny run folder holding WHOLE_RUN, and the runner with a fake kernel: each notebook run calls
    ``kernel[0](path, params)``, which by default records the notebook's first section anew."""
    import json

    from stepdpo_lite.tutorial import notebooks as tutorial

    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(WHOLE_RUN))

    def records(path, params):
        runs.update_metrics(params["RUN_DIR"], {FIRST_SECTION[path.stem]: {"new": 1}})

    kernel = [records]
    monkeypatch.setattr(tutorial, "execute_notebook", lambda path, params, *a, **kw: kernel[0](path, params))
    return run, kernel


def test_a_rerun_drops_the_notebooks_own_figures_before_it_runs_so_a_kill_leaves_none_of_the_old_ones(whole_run):
    """An interrupted or killed `--only 02` left a new prm/ on disk while metrics.json kept the old PRM's prm.*
    figures and 02's seconds, and later notebooks read them: before the notebook runs, they leave the table."""
    import io

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, kernel = whole_run
    seen = []

    def killed(path, params):  # what a kill -9 at this moment leaves: the table as it is while the notebook runs
        (run / "prm").mkdir()
        seen.append(runs.read_metrics(run))
        raise KeyboardInterrupt

    kernel[0] = killed
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        tutorial.run_tutorial("tiny", run.parent, ["02"], {"N_TRAIN_ROWS": 100}, progress=False, out=out)
    table = seen[0]
    assert "prm" not in table and "02_process_reward_model" not in table["tutorial"]["notebook_seconds"]
    assert table["tutorial"]["wall_seconds"] == 60.0 and table["orm"] == WHOLE_RUN["orm"]  # the others stay
    assert table["tutorial"]["stale"] == LATER  # they were made from the PRM being replaced
    assert runs.read_metrics(run) == table  # nothing else written by the interruption
    printed = " ".join(out.getvalue().split())
    assert "02_process_reward_model did not finish" in printed and "it had already rewritten" in printed
    assert "prm/" in printed.split("it had already rewritten")[1].split(".")[0]  # the PRM it replaced
    # the command starts with 02 itself: run without it, 03 retrained the ORM and then failed on 02's missing figures
    assert printed.endswith("--only 02 03 04 05 06 07") and "Not finished: 02_process_reward_model" in printed


def test_after_a_failed_notebook_the_rerun_command_holds_it_and_the_earlier_unfinished_one(whole_run):
    """A recheck trial: after an interrupted 02, `--only 05` failed ("metrics.json has no prm.first_error_threshold:
    run 02_process_reward_model first") and the runner suggested `--only 03 04 06 07`, without 02 or 05."""
    import io

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, kernel = whole_run

    def interrupted(path, params):
        raise KeyboardInterrupt

    def fails(path, params):
        raise tutorial.NotebookError(path.stem, 2, "THRESHOLD = ...", "ValueError: run 02_process_reward_model first")

    for stem, kernel[0] in (("02", interrupted), ("05", fails)):
        out = io.StringIO()
        with pytest.raises((KeyboardInterrupt, tutorial.NotebookError)):
            tutorial.run_tutorial("tiny", run.parent, [stem], progress=False, out=out)
    printed = " ".join(out.getvalue().split())
    assert "Not finished: 02_process_reward_model, 05_step_reward_visualisation" in printed
    assert printed.endswith(f"stepdpo-lite --profile tiny --runs-dir {run.parent} --only 02 03 04 05 06 07")


def test_a_rerun_marks_stale_only_the_notebooks_that_read_its_outputs(whole_run):
    """A recheck trial: `--only 05`, which writes only figures, listed 06 and 07 as stale, and every rerun marked
    every later notebook: now those that read what it rewrites (NOTEBOOK_READERS)."""
    import io

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, _ = whole_run
    for only, stale in (("05", None), ("07", None), ("04", ["05_step_reward_visualisation", "06_evaluation"]),
                        ("03", ["05_step_reward_visualisation", "06_evaluation", "07_test_time_compute"])):
        out = io.StringIO()
        metrics = tutorial.run_tutorial("tiny", run.parent, [only], progress=False, out=out)
        assert metrics["tutorial"].get("stale") == stale, only
        assert ("Stale" in out.getvalue()) == bool(stale)
    # 06 reads 04's policies, which are stale no more once 05 and 06 run; 05 reads none of 03's outputs
    metrics = tutorial.run_tutorial("tiny", run.parent, ["05", "06"], progress=False, out=io.StringIO())
    assert metrics["tutorial"]["stale"] == ["07_test_time_compute"]


def test_notebook_readers_are_the_notebooks_that_read_each_ones_outputs():
    """NOTEBOOK_READERS decides which figures a rerun makes stale: it must be what the notebooks read, directly or
    through another notebook's outputs. A notebook reads what its runs.require / runs.recorded calls name as their
    maker, the RUN_DIR folders that another notebook saves into, and the metrics sections another one records."""
    import re

    import nbformat

    from stepdpo_lite.tutorial import notebooks as tutorial

    stems = [name.removesuffix(".ipynb") for name in tutorial.NOTEBOOKS]
    sources = {stem: "\n".join(c.source for c in nbformat.read(str(tutorial.NOTEBOOK_DIR / f"{stem}.ipynb"), 4).cells
                               if c.cell_type == "code") for stem in stems}
    saved = r'(?:save_atomic\(|\.save\(|save_datasets\(\w+, |save_policies\(|output_dir=str\()RUN_DIR / "(\w+)"'
    saved_by = {folder: stem for stem, source in sources.items() for folder in re.findall(saved, source)}
    assert set(saved_by) == {"data", "prm", "orm", "combined", "checkpoints", "policies"}
    section_of = {name: stem for stem, names in tutorial.NOTEBOOK_SECTIONS.items() for name in names}
    reads = {}
    for stem, source in sources.items():
        named = set(re.findall(r'runs\.(?:require|recorded)\([^()]*(?:\([^()]*\))?[^()]*"(0\d_\w+)"\)', source))
        folders = {saved_by[f] for f in re.findall(r'RUN_DIR / "(\w+)"', source) if f in saved_by}
        sections = {section_of[k] for k in re.findall(r'read_metrics\(RUN_DIR\)\.get\("(\w+)"', source)}
        sections |= {section_of[k.split(".")[0]] for k in re.findall(r'recorded\(RUN_DIR, "([\w.]+)"', source)}
        if "reward_reports.prm_threshold(" in source:  # it reads prm.first_error_threshold, recorded by notebook 02
            sections.add(section_of["prm"])
        reads[stem] = (named | folders | sections) - {stem}
    assert {stem for stem, source in sources.items() if "reward_reports.prm_threshold(" in source} >= {
        "04_stepwise_dpo", "05_step_reward_visualisation"}  # the pattern above matches the notebooks' calls
    assert reads["05_step_reward_visualisation"] == {"01_data_prep", "02_process_reward_model", "04_stepwise_dpo"}
    readers = {stem: {other for other in stems if stem in reads[other]} for stem in stems}
    for _ in stems:  # through another's outputs: what reads a reader's outputs
        readers = {stem: found | {r for other in found for r in readers[other]} for stem, found in readers.items()}
    assert readers == {stem: set(found) for stem, found in tutorial.NOTEBOOK_READERS.items()}
    assert not tutorial.NOTEBOOK_READERS["05_step_reward_visualisation"]


def test_in_order_puts_the_stems_the_run_order_lacks_last_by_name():
    """in_order was tested nowhere: one's own notebooks, which the run's order lacks, sorted first went unseen."""
    order = ["01_data", "02_process_reward_model", "03_outcome_reward_model"]
    assert runs.in_order(["my_b", "03_outcome_reward_model", "my_a", "01_data"], order) == [
        "01_data", "03_outcome_reward_model", "my_a", "my_b"]


def test_a_partial_rerun_marks_the_later_notebooks_stale_until_they_run_again(whole_run):
    """`--only 02 --set N_TRAIN_ROWS=100` left 03-07's figures, made with the old PRM, beside the new prm.* ones, and
    the table looked complete: they are listed as stale, with the command that reruns them, until they run."""
    import io

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, _ = whole_run
    out = io.StringIO()
    metrics = tutorial.run_tutorial("tiny", run.parent, ["02"], {"N_TRAIN_ROWS": 100}, progress=False, out=out)
    assert metrics["prm"] == {"new": 1} and metrics["tutorial"]["stale"] == LATER
    printed = " ".join(out.getvalue().split())
    assert "Stale: 03_outcome_reward_model, 04_stepwise_dpo" in printed and "tutorial.stale" in printed
    assert f"stepdpo-lite --profile tiny --runs-dir {run.parent} --only 03 04 05 06 07" in printed
    # 05 again: it reads 04's policies, which were trained with the old PRM, so it stays stale
    metrics = tutorial.run_tutorial("tiny", run.parent, ["05"], progress=False, out=io.StringIO())
    assert metrics["tutorial"]["stale"] == LATER
    out = io.StringIO()
    metrics = tutorial.run_tutorial("tiny", run.parent, ["03", "04", "05", "06", "07"], progress=False, out=out)
    assert "stale" not in metrics["tutorial"] and "Stale" not in out.getvalue()  # the table is whole again
    assert set(metrics["tutorial"]["notebook_seconds"]) == set(WHOLE_RUN["tutorial"]["notebook_seconds"])


def test_the_run_section_records_what_each_notebook_ran_with_and_stays_out_of_the_table(whole_run):
    """metrics.json recorded no seed, profile, --set values, commit, versions or time: two runs could not be told
    apart. The run section records them per notebook run; the printed table of figures leaves them out."""
    import io
    import re
    from pathlib import Path

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, _ = whole_run
    out = io.StringIO()
    metrics = tutorial.run_tutorial("tiny", run.parent, ["02"], {"N_TRAIN_ROWS": 100}, progress=False, out=out)
    record = metrics["run"]["02_process_reward_model"]
    assert record["profile"] == "tiny" and record["seed"] == 0 and record["set"] == {"N_TRAIN_ROWS": "100"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["started"])
    assert record["finished"] >= record["started"]
    assert set(record["versions"]) == {"python", "stepdpo_lite", "torch", "transformers", "trl", "peft"}
    assert record["versions"]["stepdpo_lite"] and record["versions"]["torch"]
    if (Path(tutorial.__file__).resolve().parents[2] / ".git").exists():  # a clone
        assert re.fullmatch(r"[0-9a-f]{40}", record["commit"]) and isinstance(record["uncommitted_changes"], bool)
    assert list(metrics["run"]) == ["02_process_reward_model"]  # the other notebooks' runs recorded nothing
    assert "run.02" not in out.getvalue() and "prm.new" in out.getvalue()
    seeded = tutorial.run_tutorial("tiny", run.parent, ["02"], {"SEED": 3}, progress=False, out=io.StringIO())
    assert seeded["run"]["02_process_reward_model"]["seed"] == 3


def test_each_notebook_records_the_code_as_it_was_when_it_started(whole_run, monkeypatch):
    """The commit and uncommitted changes were read once, when the run began: a notebook whose kernel imported code
    edited during the run was recorded as run on a clean checkout."""
    import io

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, _ = whole_run
    edited = iter([False, True])  # the code edited while 02 ran
    monkeypatch.setattr(tutorial, "_provenance", lambda: {"commit": "a" * 40, "uncommitted_changes": next(edited),
                                                          "versions": {}})
    metrics = tutorial.run_tutorial("tiny", run.parent, ["02", "03"], progress=False, out=io.StringIO())
    assert [metrics["run"][stem]["uncommitted_changes"] for stem in ("02_process_reward_model",
                                                                     "03_outcome_reward_model")] == [False, True]


def test_start_and_finish_notebook_keep_the_tables_record_of_stale_notebooks(tmp_path):
    """The runner's bookkeeping, without a runner: a notebook's sections (dotted names too) leave before it runs, the
    later ones with figures become stale, and one that runs through is fresh unless one before it is stale."""
    order = ["a", "b", "c", "d"]
    sections = {"a": ("x",), "b": ("y.inner",), "c": ("z",)}
    runs.update_metrics(tmp_path, {"x": 1, "y": {"inner": 2, "kept": 3}, "z": 4,
                                   "tutorial": {"notebook_seconds": {"a": 1.0, "b": 2.0}, "wall_seconds": 3.0}})
    metrics = runs.start_notebook(tmp_path, "b", sections, order, {"started": "then", "set": {"N": "1"}})
    assert metrics == runs.read_metrics(tmp_path)
    assert metrics["y"] == {"kept": 3} and metrics["tutorial"]["notebook_seconds"] == {"a": 1.0}
    assert metrics["tutorial"]["wall_seconds"] == 1.0
    assert metrics["tutorial"]["stale"] == ["c"]  # d has no figures, so none to be stale
    assert metrics["run"] == {"b": {"started": "then", "set": {"N": "1"}}}
    metrics = runs.finish_notebook(tmp_path, "b", 5.0, order, "now")
    assert metrics["tutorial"]["notebook_seconds"] == {"a": 1.0, "b": 5.0}
    assert metrics["tutorial"]["wall_seconds"] == 6.0
    assert metrics["tutorial"]["stale"] == ["c"] and metrics["run"]["b"]["finished"] == "now"
    runs.start_notebook(tmp_path, "d", sections, order, {})
    assert runs.finish_notebook(tmp_path, "d", 1.0, order)["tutorial"]["stale"] == ["c", "d"]  # c before it is stale
    runs.start_notebook(tmp_path, "c", sections, order, {})
    assert runs.read_metrics(tmp_path)["tutorial"]["stale"] == ["d"] and "z" not in runs.read_metrics(tmp_path)
    assert runs.finish_notebook(tmp_path, "c", 1.0, order)["tutorial"]["stale"] == ["d"]  # d ran before c did
    runs.start_notebook(tmp_path, "d", sections, order, {})
    assert "stale" not in runs.finish_notebook(tmp_path, "d", 1.0, order)["tutorial"]  # no key: nothing stale
    readers = {"a": ("b", "c"), "b": ("c",)}  # d reads nobody's outputs: a rerun of a leaves it fresh
    assert runs.read_by("a", order, readers) == ["b", "c"] and runs.read_by("d", order, readers) == []
    assert runs.read_by("b", order) == ["c", "d"] and runs.read_by("z", order) == []  # no map: every later one
    assert runs.start_notebook(tmp_path, "a", sections, order, {}, readers)["tutorial"]["stale"] == ["b", "c"]
    runs.finish_notebook(tmp_path, "a", 1.0, order, readers=readers)
    runs.start_notebook(tmp_path, "d", sections, order, {}, readers)
    assert runs.finish_notebook(tmp_path, "d", 1.0, order, readers=readers)["tutorial"]["stale"] == ["b", "c"]
    assert runs.start_notebook(tmp_path, "c", sections, order, {}, readers)["tutorial"]["stale"] == ["b"]
    assert runs.finish_notebook(tmp_path, "c", 1.0, order, readers=readers)["tutorial"]["stale"] == ["b", "c"]


def test_notebook_sections_are_the_sections_the_notebooks_record():
    """runs.start_notebook drops NOTEBOOK_SECTIONS[notebook] before it runs: each must be what that notebook's
    runs.update_metrics calls record, or a rerun would keep an old section (or drop another notebook's)."""
    import ast

    import nbformat

    from stepdpo_lite.tutorial import notebooks as tutorial

    found = {}
    for name in tutorial.NOTEBOOKS:
        keys = set()
        for cell in nbformat.read(str(tutorial.NOTEBOOK_DIR / name), 4).cells:
            if cell.cell_type != "code" or "update_metrics" not in cell.source:
                continue
            python = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in cell.source.splitlines())
            tree = ast.parse(python)  # the record a dict literal, or a name the cell assigns one to (built first)
            named = {t.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                     and isinstance(node.value, ast.Dict) for t in node.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "update_metrics":
                    record = node.args[1]
                    keys |= {k.value for k in (named[record.id] if isinstance(record, ast.Name) else record).keys}
        found[name.removesuffix(".ipynb")] = keys
    assert found == {stem: set(names) for stem, names in tutorial.NOTEBOOK_SECTIONS.items()}


def test_a_table_with_stale_notebooks_does_not_replace_the_last_complete_one(whole_run):
    """A run from 01 keeps the table from before as metrics.previous.json, "the last complete table", unless it is
    partial: one with every notebook's seconds but stale ones mixes two runs' outputs, so it is partial too."""
    import io
    import json

    from stepdpo_lite.tutorial import notebooks as tutorial

    run, _ = whole_run
    (run / "metrics.previous.json").write_text(json.dumps(WHOLE_RUN))
    tutorial.run_tutorial("tiny", run.parent, ["02"], progress=False, out=io.StringIO())  # 03-07 stale
    assert len(runs.read_metrics(run)["tutorial"]["notebook_seconds"]) == 7
    out = io.StringIO()
    tutorial.run_tutorial("tiny", run.parent, ["01"], progress=False, out=out)
    assert json.loads((run / "metrics.previous.json").read_text()) == WHOLE_RUN
    assert "left notebooks stale, is dropped" in " ".join(out.getvalue().split())


@pytest.fixture
def jupyter(tmp_path, monkeypatch):
    """A run folder holding WHOLE_RUN, in a kernel that the runner did not start (no $STEPDPO_RUNNER), and a
    ``start_cell(stem, **changed)`` that takes the setup cell's start time (``notebook_start``, returned) and calls what
    the notebook's start cell (the first that rewrites an output of the run) calls, with its parameters cell's values
    (``changed`` edited in): a learner's Jupyter run."""
    import json
    import time

    from stepdpo_lite.tutorial import notebooks as tutorial

    monkeypatch.delenv(runs.RUNNER_MARKER, raising=False)
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(WHOLE_RUN))
    said = []

    def start_cell(stem, **changed):
        notebook_start = time.perf_counter()
        namespace = {**tutorial._parameter_defaults(tutorial.NOTEBOOK_DIR / f"{stem}.ipynb"), **changed}
        assert tutorial.notebook_started(run, stem, namespace, out=said.append) is None
        return notebook_start

    return run, start_cell, said


def test_a_jupyter_run_records_what_it_ran_with_and_marks_its_readers_stale_as_the_runner_does(jupyter):
    """Only the runner recorded run.<notebook> and tutorial.stale: 02 rerun in Jupyter with other settings left
    tutorial.stale None and run.02_process_reward_model.set {}, and 05 rerun with SEED=1 still recorded seed 0 (a
    Jupyter trial). The start cell records them, the last cell records the notebook as run through."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    run, start_cell, said = jupyter
    started = start_cell("02_process_reward_model", N_TRAIN_ROWS=200)
    metrics = runs.read_metrics(run)
    assert "prm" not in metrics and metrics["tutorial"]["stale"] == LATER  # as run_tutorial's start_notebook
    record = metrics["run"]["02_process_reward_model"]
    assert record["parameters"]["N_TRAIN_ROWS"] == "200" and record["seed"] == 0 and record["profile"] == "tiny"
    assert record["finished"] is None and record["jupyter"] is True and "versions" in record
    assert "03_outcome_reward_model" in said[0] and "tutorial.stale" in said[0]
    runs.update_metrics(run, {"prm": {"new": 1}})  # the notebook's own cells
    tutorial.notebook_finished(run, "02_process_reward_model", started, out=said.append)
    metrics = runs.read_metrics(run)
    assert said[-1].startswith("notebook 02: ") and said[-1].endswith(" s since its setup cell ran")
    assert metrics["tutorial"]["stale"] == LATER and metrics["run"]["02_process_reward_model"]["finished"]
    start_cell("05_step_reward_visualisation", SEED=1)
    assert runs.read_metrics(run)["run"]["05_step_reward_visualisation"]["seed"] == 1
    runs.update_metrics(run, {"visualisation": {"x": 2}})
    said.clear()
    # it read 04's policies, stale since 02 reran
    tutorial.notebook_finished(run, "05_step_reward_visualisation", 0.0, out=said.append)
    assert "05_step_reward_visualisation" in runs.read_metrics(run)["tutorial"]["stale"]
    assert "it read outputs of stale notebooks (04_stepwise_dpo)" in said[-1]  # 02 ran through
    with pytest.raises(ValueError, match="notebook must be one of the kit's notebooks"):
        tutorial.notebook_started(run, "02_prm", {"SEED": 0})


def test_a_jupyter_run_records_a_nan_seed_as_its_source_and_names_only_the_readers_it_newly_makes_stale(jupyter):
    """JSON has no NaN (update_metrics refuses one): a SEED of nan is recorded as the source that makes it. A start
    cell run again says nothing of readers already stale."""
    run, start_cell, said = jupyter
    start_cell("02_process_reward_model", SEED=float("nan"))
    assert runs.read_metrics(run)["run"]["02_process_reward_model"]["seed"] == "float('nan')"
    assert len(said) == 1 and "03_outcome_reward_model" in said[0]
    start_cell("02_process_reward_model")
    assert len(said) == 1


def test_a_jupyter_run_records_every_parameter_as_the_kernel_holds_it(jupyter):
    """The setup cell compared the kernel's values with the notebook file on disk, which Jupyter autosaves: a
    parameter edited and saved read as its default, and run.<notebook>.set was {}. The file is the learner's own
    copy, so a Jupyter run records every parameter's value, the defaults too."""
    run, start_cell, _ = jupyter
    start_cell("06_evaluation", N_CANDIDATES=8)
    record = runs.read_metrics(run)["run"]["06_evaluation"]
    names = {"N_TEST_PROBLEMS", "N_BEST_OF_N_PROBLEMS", "N_CANDIDATES", "TEMPERATURE", "N_RESAMPLES", "SEED"}
    assert record["parameters"] == {"N_TEST_PROBLEMS": "None", "N_BEST_OF_N_PROBLEMS": "None", "N_CANDIDATES": "8",
                                    "TEMPERATURE": "1.0", "N_RESAMPLES": "100", "SEED": "0"}
    assert set(record["parameters"]) == names and "set" not in record and record["jupyter"] is True


def test_a_jupyter_finish_keeps_its_seconds_out_of_the_timing_table_and_is_recorded_once(jupyter):
    """The last cell wrote the seconds since the setup cell ran, idle time included (8 hours after a late rerun of
    it), into tutorial.notebook_seconds and wall_seconds, and every rerun of it recorded the finish again. Run again,
    it said to run the setup cell (code cell 3) to record a new run, which now records nothing: it says when the run
    was recorded as finished and to run all the cells again; with no start recorded at all, it says so."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    run, start_cell, said = jupyter
    start_cell("07_test_time_compute")
    runs.update_metrics(run, {"test_time": {"4": 0.7}, "test_time_differences": {}})
    tutorial.notebook_finished(run, "07_test_time_compute", -8 * 3600.0, out=said.append)  # 8 hours idle
    metrics = runs.read_metrics(run)
    record = metrics["run"]["07_test_time_compute"]
    assert "07_test_time_compute" not in metrics["tutorial"]["notebook_seconds"]
    assert metrics["tutorial"]["wall_seconds"] == 60.0 and record["seconds_since_setup"] >= 8 * 3600
    finished = record["finished"]
    assert finished
    before = (run / "metrics.json").read_text()
    tutorial.notebook_finished(run, "07_test_time_compute", 0.0, out=said.append)  # the last cell run again
    assert (run / "metrics.json").read_text() == before and "setup cell" not in said[-1]
    assert said[-1] == (f"07_test_time_compute: already recorded as finished at {finished} (run.07_test_time_compute);"
                        " nothing new to record: to record a new run, run all its cells again, from the top (Run > "
                        "Run All Cells)")
    tutorial.notebook_finished(run, "06_evaluation", 0.0, out=said.append)  # no run.06_evaluation at all
    assert (run / "metrics.json").read_text() == before
    assert said[-1].startswith("06_evaluation: not recorded as finished: ") and "holds no start of it" in said[-1]


def test_a_jupyter_finish_of_a_notebook_that_recorded_nothing_is_not_recorded(jupyter):
    """The start cell then the last cell: the notebook was recorded as finished, its readers taken off
    tutorial.stale, with its figures missing. It is not: the last cell says the figures are missing."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    run, start_cell, said = jupyter
    started = start_cell("06_evaluation")
    before = (run / "metrics.json").read_text()
    tutorial.notebook_finished(run, "06_evaluation", started, out=said.append)
    assert (run / "metrics.json").read_text() == before
    assert runs.read_metrics(run)["run"]["06_evaluation"]["finished"] is None
    assert "06_evaluation: not recorded as finished: its figures (best_of_n, best_of_n_differences, evaluation) " \
           "are missing" in said[-1] and "run all its cells" in said[-1]


def test_a_jupyter_start_refuses_a_run_dir_that_is_not_a_folder(jupyter, tmp_path):
    """notebook_started(Path("nope/tiny"), ...) made nope/tiny/metrics.json: a misspelled RUN_DIR is refused as
    update_metrics refuses it, and nothing is made."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    with pytest.raises(FileNotFoundError, match=r"notebook_started: no run folder .*nope.tiny \(make it with "
                                                r"runs.run_dir\(PROFILE, RUNS_DIR\)\)"):
        tutorial.notebook_started(tmp_path / "nope" / "tiny", "02_process_reward_model", {"SEED": 0})
    assert not (tmp_path / "nope").exists()


def test_under_the_runner_the_cells_record_nothing(jupyter, monkeypatch):
    """The runner records each notebook itself (start_notebook, finish_notebook): its kernels' cells must not record
    it twice, nor mark its readers stale a second time."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    run, start_cell, said = jupyter
    before = (run / "metrics.json").read_text()
    monkeypatch.setenv(runs.RUNNER_MARKER, "1")
    started = start_cell("02_process_reward_model", N_TRAIN_ROWS=200)
    tutorial.notebook_finished(run, "02_process_reward_model", started, out=said.append)
    assert (run / "metrics.json").read_text() == before and said[-1].startswith("notebook 02: ")
    # a stem copied wrong into the last cell was refused only in Jupyter (the start cell's, under the runner too)
    said.clear()
    with pytest.raises(ValueError, match="notebook_finished: notebook must be one of the kit's notebooks"):
        tutorial.notebook_finished(run, "02_prm", started, out=said.append)
    assert said == []


def test_a_kernel_the_runner_starts_carries_its_marker(tmp_path, monkeypatch):
    """execute_notebook (the runner's, and every headless run of a notebook) tells the kernel, so that its setup and
    last cells leave the records to the runner; a Jupyter kernel has no marker."""
    import nbformat

    from stepdpo_lite.tutorial import notebooks as tutorial

    monkeypatch.delenv(runs.RUNNER_MARKER, raising=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import os\nprint('MARKER', os.environ.get({runs.RUNNER_MARKER!r}))")])
    nbformat.write(nb, str(tmp_path / "01_marker.ipynb"))
    done = tutorial.execute_notebook(tmp_path / "01_marker.ipynb", timeout=120, cwd=tmp_path)
    assert done.cells[0].outputs[0]["text"].strip() == "MARKER 1"


# What writes an output of the run in the notebooks' cells: a file under RUN_DIR, a section of metrics.json. A plot's
# PNG under FIGURES_DIR (save_to=, save_explorer_png) is none: redrawn from the kernel's objects, and notebook_started
# clears no PNG, so a plot cell stays safe to rerun alone (01's first plot had dropped its data section). Nor is a
# trainer's output_dir (save_strategy "no": an empty scratch folder), nor the cache a dataset's shuffle writes.
WRITES = re.compile(r"\.save\(|save_atomic\(|save_datasets\(|save_policies\(|update_metrics\(|write_json_atomic\(|"
                    r"write_atomic\(|write_text\(|save_to_disk\(|json\.dump\(|save_dir=")


def _code_cells(name: str) -> list[str]:
    import nbformat

    from stepdpo_lite.tutorial import notebooks as tutorial

    return [c.source for c in nbformat.read(str(tutorial.NOTEBOOK_DIR / name), 4).cells if c.cell_type == "code"]


def test_the_notebooks_shuffles_write_no_cache_file_into_the_run(tmp_path):
    """Notebooks 02 and 03 shuffle their training rows, and 04 its pairs when N_TRAIN_PAIRS is set, as loaded from
    RUN_DIR/data: ``datasets`` wrote the shuffled order as a cache-*.arrow file beside the saved rows, into notebook
    01's output, and so did the trainers' tokenizing ``map``. ``data.load_datasets`` now loads them in memory: each
    notebook's shuffle line, executed against a saved data folder, and a ``map`` add no file to it."""
    from datasets import Dataset

    from stepdpo_lite import data
    from stepdpo_lite.tutorial import notebooks as tutorial

    folder = tmp_path / "data"
    rows = Dataset.from_dict({"x": list(range(8))})
    data.save_datasets({name: rows for name in ("train_stepwise", "train_outcome", "train_preference")}, folder)
    saved = sorted(folder.rglob("*"))
    shuffles = {name: [line.strip() for cell in _code_cells(name) for line in cell.splitlines() if ".shuffle(" in line]
                for name in tutorial.NOTEBOOKS}
    assert {name for name, lines in shuffles.items() if lines} == {
        "02_process_reward_model.ipynb", "03_outcome_reward_model.ipynb", "04_stepwise_dpo.ipynb"}, shuffles
    for name, lines in shuffles.items():
        for line in lines:
            ds = data.load_datasets(folder)  # as the notebooks load them
            namespace = {"runs": runs, "ds": ds, "pairs": ds["train_preference"], "SEED": 0, "N_TRAIN_ROWS": 3,
                         "N_TRAIN_PAIRS": 3}
            exec(compile(line, f"{name}: {line}", "exec"), namespace)
            assert len(namespace.get("train", namespace["pairs"])) == 3, (name, line)
            assert sorted(folder.rglob("*")) == saved, f"{name}: {line} wrote into the data folder"
    data.load_datasets(folder)["train_preference"].map(lambda row: {"y": row["x"] + 1})  # as a trainer tokenizes
    assert sorted(folder.rglob("*")) == saved, "a map wrote into the data folder"


def test_each_notebook_records_itself_from_its_first_output_to_its_last_cell():
    """The setup cell (code cell 3) called notebook_started, which drops the notebook's figures and marks its readers
    stale: rerun alone after a full run (a kernel restart, a plot to see again), it dropped 02's prm and 03-07 refused.
    The setup cell now only keeps the start time (``notebook_start``); the first cell that rewrites an output of the
    run (not a plot's PNG: 01's first plot cell, rerun alone, had dropped its data section) calls notebook_started with
    the notebook's own stem just before its first write, after what it computes (a start line run before a NameError or
    minutes of training that then failed had dropped the figures of outputs left as they were), so no line before it
    writes one (a write moved above it would leave the old figures beside a new output when the run stops there), and
    the last code cell calls
    notebook_finished: a copied stem would record another notebook's run. Its seconds are worded as what they are:
    since the setup cell ran ("notebook 07 took 1 s" after a partial rerun)."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    for name in tutorial.NOTEBOOKS:
        stem = name.removesuffix(".ipynb")
        code = _code_cells(name)
        assert "notebook_start = time.perf_counter()" in code[2] and "import time\n" in code[2], name
        starts = [i for i, cell in enumerate(code) if "notebook_started" in cell]
        assert len(starts) == 1 and 2 < starts[0], (name, starts)  # 05's only write is its last cell's
        lines = code[starts[0]].splitlines()
        at = lines.index(f'notebooks.notebook_started(RUN_DIR, "{stem}", globals())')
        after = next(line for line in lines[at + 1:] if not line.lstrip().startswith("#"))
        assert WRITES.search(after), f"{name}: code cell {starts[0] + 1}: no write right after the start"
        for index, before in enumerate([*code[:starts[0]], "\n".join(lines[:at])], start=1):
            writes = [line for line in before.splitlines() if WRITES.search(line)]
            assert not writes, f"{name}: code cell {index} writes before the start is recorded: {writes}"
        assert f'notebooks.notebook_finished(RUN_DIR, "{stem}", notebook_start)' in code[-1], name
        assert not any("notebook_finished" in c for c in code[:-1]), name
        assert not any(" took {" in c for c in code), name


@pytest.mark.parametrize("stem", ["01_data_prep", "06_evaluation", "07_test_time_compute"])
def test_a_setup_cell_rerun_alone_after_a_finished_run_clears_nothing(jupyter, stem):
    """After a full run, notebook 01's setup cell run again by itself (a kernel restart, a plot to see again) dropped
    the data section and listed 02-07 under tutorial.stale: notebook 04 then refused ("metrics.json has no
    data.n_problems.train: run 01_data_prep first") with data/ untouched, and only all of 01 again (sampling,
    labelling) got out of it; 02's dropped prm as 03-07 read it. The setup cell, executed as it is in the notebook,
    now leaves metrics.json as it was; the start is recorded by the first cell that rewrites an output."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    run, start_cell, said = jupyter
    for made in ("prm", "orm", "combined", "policies/dpo", "policies/stepwise_dpo"):  # what 06 and 07 require
        (run / made).mkdir(parents=True)
    notebook_start = start_cell(stem)  # a full run in Jupyter: started, figures written, finished
    runs.update_metrics(run, {section: WHOLE_RUN[section] for section in tutorial.NOTEBOOK_SECTIONS[stem]})
    tutorial.notebook_finished(run, stem, notebook_start, out=said.append)
    metrics = runs.read_metrics(run)
    assert metrics["run"][stem]["finished"]
    metrics["tutorial"].pop("stale", None)  # the notebooks after it ran again since
    runs.write_json_atomic(run / "metrics.json", metrics)
    before = (run / "metrics.json").read_text()
    namespace = {**tutorial._parameter_defaults(tutorial.NOTEBOOK_DIR / f"{stem}.ipynb"), "RUN_DIR": str(run)}
    exec(compile(_code_cells(f"{stem}.ipynb")[2], f"{stem} setup cell", "exec"), namespace)
    assert (run / "metrics.json").read_text() == before  # its figures kept, no notebook stale
    assert isinstance(namespace["notebook_start"], float) and namespace["RUN_DIR"] == run
    tutorial.notebook_finished(run, stem, namespace["notebook_start"], out=said.append)  # then the last cell
    assert (run / "metrics.json").read_text() == before and "already recorded as finished" in said[-1]
    # the start cell run next, in that fresh kernel: it stops at a name of an earlier cell before it records anything
    start = next(cell for cell in _code_cells(f"{stem}.ipynb") if "notebook_started" in cell)
    with pytest.raises(NameError):
        exec(compile(start, f"{stem} start cell", "exec"), namespace)
    assert (run / "metrics.json").read_text() == before


def test_update_metrics_writes_tuples_and_bool_or_none_keys_as_json_reads_them_back(tmp_path):
    """A tuple is recorded as the list JSON reads back; a bool, float or None key as the str json.dumps makes of it
    ("true", "0.5", "null"), so that one written as that str already is refused as a second key, not kept beside it."""
    metrics = runs.update_metrics(tmp_path, {"x": {"sizes": (1, 2)}, "keys": {True: 1, 0.5: 2, None: 3}})
    assert metrics == runs.read_metrics(tmp_path) == {"x": {"sizes": [1, 2]}, "keys": {"true": 1, "0.5": 2, "null": 3}}
    with pytest.raises(ValueError, match="keys has two keys JSON writes as 'true'"):
        runs.update_metrics(tmp_path, {"keys": {True: 1, "true": 2}})


def test_a_run_that_is_a_file_or_a_metrics_file_that_is_no_dict_is_refused_by_name(tmp_path):
    """A file where the run folder goes is no run folder (its metrics.json cannot be written), and a metrics.json
    holding a list is not the notebooks' table: both are refused with the path, not met later as a crash."""
    (tmp_path / "notes").write_text("")
    with pytest.raises(FileNotFoundError, match="update_metrics: no run folder .*notes"):
        runs.update_metrics(tmp_path / "notes", {"x": 1})
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="metrics.json holds a list, not the dict of figures"):
        runs.read_metrics(tmp_path)


def test_a_dotted_name_through_a_figure_that_is_no_section_is_missing():
    """"prm.auroc" where prm is a number or a str is not recorded: missing, not a TypeError from indexing it."""
    metrics = {"prm": 0.5, "orm": "auroc", "data": {"n": 3}}
    assert runs.missing_sections(metrics, ["prm.auroc", "orm.auroc", "data.n", "data.n.x"]) == [
        "prm.auroc", "orm.auroc", "data.n.x"]
    with pytest.raises(FileNotFoundError, match="metrics.json has no orm.auroc: run 03"):
        runs.recorded(metrics, "orm.auroc", "03")


def test_start_and_finish_notebook_record_what_a_notebook_ran_with_as_json_reads_it_back(tmp_path):
    """``record`` goes through update_metrics' checks: numpy scalars as numbers, number keys as str, so that the
    metrics returned are the metrics read back; the wall seconds are the notebooks' summed to the hundredth."""
    order = ["a", "b"]
    record = {"seed": np.int64(3), "set": {2: "x"}}
    metrics = runs.start_notebook(tmp_path, "a", {}, order, record)
    assert metrics["run"]["a"] == {"seed": 3, "set": {"2": "x"}} and metrics == runs.read_metrics(tmp_path)
    metrics = runs.finish_notebook(tmp_path, "a", 1.25, order, "now", record={"lr": np.float32(0.5), 4: 1})
    assert metrics["run"]["a"] == {"seed": 3, "set": {"2": "x"}, "finished": "now", "lr": 0.5, "4": 1}
    assert metrics == runs.read_metrics(tmp_path)
    assert runs.finish_notebook(tmp_path, "b", 2.01, order)["tutorial"]["wall_seconds"] == 3.26


def test_finish_notebook_of_a_notebook_never_started_records_its_seconds_only(tmp_path):
    """No ``run.<notebook>`` to add ``finished`` to (a run from before the records, or one started by hand)."""
    metrics = runs.finish_notebook(tmp_path, "a", 1.0, ["a"], "now", record={"x": 1})
    assert "run" not in metrics and metrics["tutorial"]["notebook_seconds"] == {"a": 1.0}


def test_read_by_with_an_empty_readers_map_is_no_reader_not_every_later_notebook():
    """readers={} says that no notebook reads another's outputs; only readers=None falls back to the run's order."""
    assert runs.read_by("a", ["a", "b"], {}) == [] and runs.read_by("a", ["a", "b"]) == ["b"]
