"""The headless tutorial runner on throwaway notebooks (a few seconds of kernel start-up each)."""

import contextlib
import io
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

from stepdpo_lite.tutorial import notebooks as tutorial
from stepdpo_lite.tutorial.notebooks import NotebookError, resolve_notebooks, run_tutorial

PARAMS = 'PROFILE = "default"\nRUN_DIR = None\nFIGURES_DIR = None\nGREETING = "hello"'


def _notebook(path, *cells):
    """cells: strings (code), ("md", text) or ("parameters", code)."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if isinstance(cell, str):
            nb.cells.append(nbformat.v4.new_code_cell(cell))
        elif cell[0] == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell[1]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell[1], metadata={"tags": ["parameters"]}))
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def happy(tmp_path_factory):
    """Two notebooks: 01 writes a metric and a figure file, 02 reads what 01 wrote."""
    nb_dir, runs_dir = tmp_path_factory.mktemp("notebooks"), tmp_path_factory.mktemp("runs")
    _notebook(nb_dir / "01_alpha.ipynb", ("md", "# Alpha"), ("parameters", PARAMS),
              "from pathlib import Path\nfrom stepdpo_lite.tutorial import runs\n"
              'runs.update_metrics(RUN_DIR, {"alpha": {"greeting_len": len(GREETING), "nested": {"x": 0.5}}})\n'
              'Path(FIGURES_DIR, "alpha.txt").write_text(GREETING)\nprint("alpha done", PROFILE, GREETING)')
    _notebook(nb_dir / "02_beta.ipynb", ("parameters", PARAMS),
              "import json, pathlib\nfrom stepdpo_lite.tutorial import runs\n"
              'm = json.loads((pathlib.Path(RUN_DIR) / "metrics.json").read_text())\n'
              'runs.update_metrics(RUN_DIR, {"best_of_n": {"16": {"prm_min": m["alpha"]["nested"]["x"] + 0.25}}})')
    (runs_dir / "toy").mkdir()
    (runs_dir / "toy" / "metrics.json").write_text(json.dumps({"stale": {"from_an_older_run": 1.0}}))
    out = io.StringIO()
    metrics = run_tutorial("toy", runs_dir, ["01", "02_beta.ipynb"], {"GREETING": "hey"}, notebook_dir=nb_dir,
                           timeout=120, progress=False, out=out)
    return runs_dir / "toy", metrics, out.getvalue()


def test_happy_path_writes_executed_notebooks_metrics_and_table(happy):
    run, metrics, printed = happy
    assert sorted(p.name for p in (run / "executed").iterdir()) == ["01_alpha.ipynb", "02_beta.ipynb"]
    assert (run / "figures" / "alpha.txt").read_text() == "hey"  # FIGURES_DIR and GREETING were injected
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == metrics
    assert on_disk["alpha"]["greeting_len"] == 3 and on_disk["best_of_n"]["16"]["prm_min"] == 0.75
    seconds = on_disk["tutorial"]["notebook_seconds"]
    assert set(seconds) == {"01_alpha", "02_beta"} and all(s > 0 for s in seconds.values())
    assert on_disk["tutorial"]["wall_seconds"] == pytest.approx(sum(seconds.values()), abs=0.02)
    for key in ("alpha.greeting_len", "alpha.nested.x", "best_of_n.16.prm_min", "tutorial.wall_seconds"):
        assert key in printed
    # a run from notebook 01 starts a fresh table and keeps the old one aside
    assert "stale" not in on_disk and "stale.from_an_older_run" not in printed
    assert json.loads((run / "metrics.previous.json").read_text()) == {"stale": {"from_an_older_run": 1.0}}


def test_parameters_are_injected_after_the_parameters_cell(happy):
    run, _, _ = happy
    nb = nbformat.read(str(run / "executed" / "01_alpha.ipynb"), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags.index(["parameters"]) + 1 == tags.index(["injected-parameters"])
    injected = nb.cells[tags.index(["injected-parameters"])].source
    assert "GREETING = 'hey'" in injected and "PROFILE = 'toy'" in injected and f"RUN_DIR = '{run}'" in injected
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "alpha done toy hey" in printed


def test_render_html(happy):
    run, _, _ = happy
    page, _ = HTMLExporter().from_filename(str(run / "executed" / "01_alpha.ipynb"))
    assert page.lstrip().lower().startswith("<!doctype html") and "alpha done toy hey" in page and "Alpha" in page


def test_failing_cell_stops_the_run_naming_notebook_and_cell(tmp_path, capsys):
    _notebook(tmp_path / "01_bad.ipynb", ("md", "# Bad"), ("parameters", PARAMS), "x = 1",
              "\n# divide\nresult = x / 0", 'print("never")')
    _notebook(tmp_path / "02_after.ipynb", 'raise AssertionError("must not run")')
    runs_dir = tmp_path / "runs"
    code = tutorial.main(["--profile", "toy", "--runs-dir", str(runs_dir), "--notebook-dir", str(tmp_path),
                          "--only", "01", "02", "--timeout", "120"])
    err = capsys.readouterr().err
    assert code == 1
    assert "01_bad.ipynb failed at code cell 3 of 4 (cell 4 of 5 in the notebook)" in err and "'# divide'" in err
    assert "ZeroDivisionError: division by zero" in err and "01_bad" in err  # progress bar names the notebook
    executed = runs_dir / "toy" / "executed"
    assert [p.name for p in executed.iterdir()] == ["01_bad.ipynb"]  # 02 never ran
    nb = nbformat.read(str(executed / "01_bad.ipynb"), as_version=4)
    assert nb.cells[-2].outputs[-1]["ename"] == "ZeroDivisionError" and not nb.cells[-1].outputs

    with pytest.raises(NotebookError) as info:
        tutorial.execute_notebook(tmp_path / "01_bad.ipynb", {"GREETING": "x"}, timeout=120)
    assert (info.value.notebook, info.value.cell_index, info.value.first_line) == ("01_bad.ipynb", 3, "# divide")


def test_a_parameter_no_notebook_has_is_refused_before_anything_runs(tmp_path):
    _notebook(tmp_path / "01_alpha.ipynb", ("parameters", PARAMS + "\nN: int = 3"), "print(GREETING)")
    assert tutorial.notebook_parameters(tmp_path / "01_alpha.ipynb") == {"PROFILE", "RUN_DIR", "FIGURES_DIR",
                                                                         "GREETING", "N"}
    _notebook(tmp_path / "magic.ipynb", ("parameters", "%matplotlib inline\nA, B = 1, 2\n!echo hi"))
    assert tutorial.notebook_parameters(tmp_path / "magic.ipynb") == {"A", "B"}
    _notebook(tmp_path / "odd.ipynb", ("parameters", "A = 1\nB =\n"))
    with pytest.raises(ValueError, match="odd.ipynb: its parameters cell is not Python at line 2"):
        tutorial.notebook_parameters(tmp_path / "odd.ipynb")
    with pytest.raises(ValueError, match="no notebook run here .01_alpha. has a parameter GREETNG .did you mean "
                                         "GREETING\\?\\); theirs: GREETING, N$"):  # not the names the runner sets
        run_tutorial("toy", tmp_path / "runs", ["01"], {"GREETNG": "hey", "N": 4}, notebook_dir=tmp_path,
                     progress=False)
    assert not (tmp_path / "runs").exists()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert tutorial.main(["--notebook-dir", str(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--only", "01",
                              "--set", "GREETNG=hey"]) == 1
    assert "has a parameter GREETNG (did you mean GREETING?)" in err.getvalue()
    with pytest.raises(ValueError, match="has a parameter XYZ; theirs: "):  # nothing close: no guess
        run_tutorial("toy", tmp_path / "runs", ["01"], {"XYZ": 1}, notebook_dir=tmp_path, progress=False)
    with contextlib.redirect_stderr(err):  # the kit's own notebooks: its profiles only
        assert tutorial.main(["--profile", "tinyy", "--runs-dir", str(tmp_path / "runs"), "--only", "01"]) == 1
    assert "unknown profile 'tinyy': choose one of" in err.getvalue() and not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="unknown profile 'tinyy'"):  # from Python as well
        run_tutorial("tinyy", tmp_path / "runs", ["01"], progress=False)
    assert not (tmp_path / "runs").exists()


def _no_kernel(monkeypatch, tmp_path) -> list:
    """What matters here is which notebooks run, in which order, with what: recorded instead of executed."""
    ran = []
    monkeypatch.setattr(tutorial, "execute_notebook", lambda path, params, *a, **kw: ran.append((path.name, params)))
    _notebook(tmp_path / "01_alpha.ipynb", ("parameters", PARAMS))
    _notebook(tmp_path / "02_beta.ipynb", ("parameters", PARAMS))
    return ran


def test_the_parameters_the_runner_sets_are_refused(tmp_path, monkeypatch, capsys):
    ran = _no_kernel(monkeypatch, tmp_path)
    # --set PROFILE=t4-16gb would run that profile into runs/tiny
    for name in ("PROFILE", "RUNS_DIR", "RUN_DIR", "FIGURES_DIR"):
        with pytest.raises(ValueError, match=f"{name} cannot be set as a parameter: .*use --profile / --runs-dir"):
            run_tutorial("tiny", tmp_path / "runs", ["01"], {name: "x"}, progress=False)
        with pytest.raises(ValueError, match=f"{name} cannot be set"):  # a notebook_dir of one's own as well
            run_tutorial("toy", tmp_path / "runs", ["01"], {name: "x"}, notebook_dir=tmp_path, progress=False)
    assert tutorial.main(["--runs-dir", str(tmp_path / "runs"), "--only", "01", "--set", "PROFILE=t4-16gb"]) == 1
    assert "PROFILE cannot be set as a parameter" in capsys.readouterr().err
    assert not ran and not (tmp_path / "runs").exists()


def test_the_kits_notebooks_run_in_order_and_a_run_with_01_starts_a_fresh_table(tmp_path, monkeypatch):
    ran = _no_kernel(monkeypatch, tmp_path)
    stale = {"stale": {"from_an_older_run": 1.0}}
    runs_dir = tmp_path / "kit"
    (runs_dir / "tiny").mkdir(parents=True)
    (runs_dir / "tiny" / "metrics.json").write_text(json.dumps(stale))
    metrics = run_tutorial("tiny", runs_dir, ["03", "01"], progress=False, out=io.StringIO())
    assert [name for name, _ in ran] == [tutorial.NOTEBOOKS[0], tutorial.NOTEBOOKS[2]]  # 03 reads what 01 writes
    assert ran[0][1]["PROFILE"] == "tiny" and ran[0][1]["RUN_DIR"] == str((runs_dir / "tiny").resolve())
    assert "stale" not in metrics  # 01 is run: a fresh table, the old one kept aside
    assert json.loads((runs_dir / "tiny" / "metrics.previous.json").read_text()) == stale

    ran.clear()  # a notebook_dir of one's own keeps the order given; 01 among them still starts a fresh table
    (runs_dir / "toy").mkdir()
    (runs_dir / "toy" / "metrics.json").write_text(json.dumps(stale))
    run_tutorial("toy", runs_dir, ["02", "01"], notebook_dir=tmp_path, progress=False, out=io.StringIO())
    assert [name for name, _ in ran] == ["02_beta.ipynb", "01_alpha.ipynb"]
    assert json.loads((runs_dir / "toy" / "metrics.previous.json").read_text()) == stale


def test_the_runner_sets_no_per_cell_limit_unless_asked(tmp_path, monkeypatch, capsys):
    """A GPU profile's on-policy cell (notebook 04) runs for hours: the runner's default of 3600 s per cell stopped
    `stepdpo-lite --profile t4-16gb` with a CellTimeoutError after an hour. --timeout still sets one."""
    timeouts = []
    monkeypatch.setattr(tutorial, "execute_notebook", lambda path, params, *a, timeout="unset", **kw:
                        timeouts.append(timeout))
    _notebook(tmp_path / "01_alpha.ipynb", ("parameters", PARAMS))
    run_tutorial("toy", tmp_path / "runs", ["01"], notebook_dir=tmp_path, progress=False, out=io.StringIO())
    args = ["--profile", "toy", "--runs-dir", str(tmp_path / "runs"), "--notebook-dir", str(tmp_path), "--only", "01",
            "--no-progress"]
    assert tutorial.main(args) == 0 and tutorial.main([*args, "--timeout", "120"]) == 0
    assert timeouts == [None, None, 120]
    for bad in (0, -5, True):  # nbclient would read 0 and -5 as no limit, without a word; True: one second
        with pytest.raises(ValueError, match=f"timeout={bad}: .*None for no limit"):
            run_tutorial("toy", tmp_path / "runs", ["01"], notebook_dir=tmp_path, timeout=bad, progress=False)
    assert len(timeouts) == 3
    capsys.readouterr()
    assert tutorial.main([*args, "--timeout", "0"]) == 1  # "or None": which a command line cannot give
    assert "on the command line: leave --timeout out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tutorial.main(["--help"])
    assert "per cell (default: no limit" in " ".join(capsys.readouterr().out.split())


def test_the_old_table_goes_aside_only_once_01_has_run_and_a_partial_one_never_replaces_a_complete_one(
        tmp_path, monkeypatch):
    """A run from 01 moved metrics.json aside before anything ran: a failing 01 left no table beside the old prm/
    and policies/, and a retry after a run that stopped later put that partial table over the last complete one."""
    from stepdpo_lite.tutorial import runs

    failing = set()

    def execute(path, params, *args, **kwargs):  # a notebook records a figure, then perhaps fails
        runs.update_metrics(params["RUN_DIR"], {path.stem: {"runs": len(calls)}})
        calls.append(path.stem)
        if path.stem in failing:
            raise (KeyboardInterrupt() if failing == {"stop"} else NotebookError(path.name, 0, "x", "RuntimeError"))

    calls = []
    monkeypatch.setattr(tutorial, "execute_notebook", execute)
    _notebook(tmp_path / "01_alpha.ipynb", ("parameters", PARAMS))
    _notebook(tmp_path / "02_beta.ipynb", ("parameters", PARAMS))
    run = tmp_path / "runs" / "toy"

    def go(fail=()):
        failing.clear()
        failing.update(fail)
        run_tutorial("toy", tmp_path / "runs", ["01", "02"], notebook_dir=tmp_path, progress=False, out=io.StringIO())

    def table(name="metrics.json"):
        return json.loads((run / name).read_text())

    go()
    complete = table()
    assert set(complete["tutorial"]["notebook_seconds"]) == {"01_alpha", "02_beta"}
    with pytest.raises(NotebookError):  # 01 fails: the table of the prm/ and policies/ still there stays
        go({"01_alpha"})
    assert table() == complete and not (run / "metrics.previous.json").exists()
    with pytest.raises(NotebookError):  # 02 fails: 01 has remade the data, so the old table is now the previous
        go({"02_beta"})
    assert table("metrics.previous.json") == complete and "02_beta" not in table()["tutorial"]["notebook_seconds"]
    with pytest.raises(NotebookError):  # again: the partial table does not replace the complete one
        go({"02_beta"})
    assert table("metrics.previous.json") == complete
    go()  # and a complete run's table does not replace it either: it was partial
    assert table("metrics.previous.json") == complete
    second = table()
    go()
    assert table("metrics.previous.json") == second
    with pytest.raises(KeyboardInterrupt):  # an interrupted 01 as well
        failing.add("stop")
        calls.clear()
        monkeypatch.setattr(tutorial, "execute_notebook", lambda path, params, *a, **kw: (
            runs.update_metrics(params["RUN_DIR"], {"partial": 1}), (_ for _ in ()).throw(KeyboardInterrupt())))
        run_tutorial("toy", tmp_path / "runs", ["01"], notebook_dir=tmp_path, progress=False, out=io.StringIO())
    assert table("metrics.previous.json") == second and "partial" not in table()
    assert sorted(p.name for p in run.iterdir() if p.is_file()) == ["metrics.json", "metrics.previous.json"]
    third = table()  # a run killed (no error to catch) while its 01 ran left the old table aside: put back first
    (run / ".metrics.before-01.json").write_text(json.dumps(third))
    (run / "metrics.json").write_text('{"partial": 1}')
    monkeypatch.setattr(tutorial, "execute_notebook", lambda *a, **kw: None)
    run_tutorial("toy", tmp_path / "runs", ["02"], notebook_dir=tmp_path, progress=False, out=io.StringIO())
    assert "partial" not in table() and table()["01_alpha"] == third["01_alpha"]
    assert not (run / ".metrics.before-01.json").exists()


def test_a_notebook_that_does_not_finish_no_longer_counts_as_run_in_the_table(tmp_path, monkeypatch):
    """A failed `--only 02` left 02's seconds from its last complete run beside the figures it had already replaced,
    so the table read as complete: the metrics table showed it so, and `_set_aside` let it replace a complete one."""
    from stepdpo_lite.tutorial import runs

    failing = []

    def execute(path, params, *args, **kwargs):  # records a figure, then perhaps fails
        runs.update_metrics(params["RUN_DIR"], {path.stem: {"failed": bool(failing)}})
        if failing:
            raise failing[0]

    monkeypatch.setattr(tutorial, "execute_notebook", execute)
    _notebook(tmp_path / "01_alpha.ipynb", ("parameters", PARAMS))
    _notebook(tmp_path / "02_beta.ipynb", ("parameters", PARAMS))
    run, out = tmp_path / "runs" / "toy", io.StringIO()
    run_tutorial("toy", tmp_path / "runs", ["01", "02"], notebook_dir=tmp_path, progress=False, out=out)
    for error in (NotebookError("02_beta.ipynb", 0, "x", "RuntimeError"), KeyboardInterrupt()):
        failing[:] = [error]
        with pytest.raises(type(error)):
            run_tutorial("toy", tmp_path / "runs", ["02"], notebook_dir=tmp_path, progress=False, out=out)
        table = json.loads((run / "metrics.json").read_text())
        assert table["02_beta"] == {"failed": True} and set(table["tutorial"]["notebook_seconds"]) == {"01_alpha"}
        assert table["tutorial"]["wall_seconds"] == table["tutorial"]["notebook_seconds"]["01_alpha"]
    assert "02_beta did not finish" in out.getvalue()
    failing.clear()
    run_tutorial("toy", tmp_path / "runs", ["02"], notebook_dir=tmp_path, progress=False, out=out)
    assert set(json.loads((run / "metrics.json").read_text())["tutorial"]["notebook_seconds"]) == {"01_alpha",
                                                                                                   "02_beta"}


def test_a_set_value_is_read_stripped_and_an_empty_one_is_refused():
    """`--set A= text` passed ' text', and `--set N_TRAIN_PROBLEMS=` (an unset shell variable) passed '', which
    notebook 01's `N_TRAIN_PROBLEMS or profile.n_train_problems` took as the profile's default, without a word."""
    assert tutorial._parse_set(["A= text ", "B= 16", "C=''", 'D=" x"']) == {"A": "text", "B": 16, "C": "", "D": " x"}
    for empty in ("N_TRAIN_PROBLEMS=", "N_TRAIN_PROBLEMS=  "):
        with pytest.raises(ValueError, match="--set N_TRAIN_PROBLEMS: no value .*'' for an empty string"):
            tutorial._parse_set([empty])


def test_missing_notebooks_are_listed(tmp_path):
    _notebook(tmp_path / "01_alpha.ipynb", "x = 1")
    assert resolve_notebooks(["01"], tmp_path) == resolve_notebooks([1], tmp_path) == [tmp_path / "01_alpha.ipynb"]
    assert resolve_notebooks([tmp_path / "01_alpha.ipynb"]) == resolve_notebooks(["01_alpha"], tmp_path)
    with pytest.raises(FileNotFoundError, match="07_nope.*08"):
        resolve_notebooks(["01", "07_nope", "08"], tmp_path)
    # Jupyter's "Duplicate" puts a copy beside a notebook: the kit's own is taken, else the prefix is ambiguous (it
    # was reported missing)
    for name in ("02_process_reward_model.ipynb", "02_process_reward_model-Copy1.ipynb", "03_a.ipynb", "03_b.ipynb"):
        _notebook(tmp_path / name, "x = 1")
    assert resolve_notebooks(["02"], tmp_path) == [tmp_path / "02_process_reward_model.ipynb"]
    with pytest.raises(FileNotFoundError, match="notebook '03' is ambiguous.*03_a.ipynb, 03_b.ipynb; give the file"):
        resolve_notebooks(["03"], tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        run_tutorial("toy", tmp_path / "runs", notebook_dir=tmp_path / "empty", progress=False)
    assert all(name in str(info.value) for name in tutorial.NOTEBOOKS)
    assert tutorial.main(["--notebook-dir", str(tmp_path / "empty"), "--runs-dir", str(tmp_path / "runs")]) == 1


def test_cli_set_values_and_metric_table(tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:  # argparse's usage error, as for any other bad option: nothing run
        tutorial.main(["--runs-dir", str(tmp_path / "runs"), "--set", "novalue"])
    assert usage.value.code == 2 and "--set expects KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert tutorial._parse_set(["N=16", "NAME=abc", "FLAG=True", "SIZES=[1, 2]", "PATH=runs/x"]) == {
        "N": 16, "NAME": "abc", "FLAG": True, "SIZES": [1, 2], "PATH": "runs/x"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        tutorial._parse_set(["novalue"])
    inf = float("inf")  # notebook 01 documents MC_BUDGET_MINUTES = float("inf")
    parsed = tutorial._parse_set(["A=inf", "B=-inf", "C=float('inf')", 'D=float("-inf")', "E=1e999", "F=[1e999, 2]",
                                  "G=nan", "H=4bit", "T=(1, 2)", "U=(3,)",
                                  "V=((1, 2), (3, 4))", "W=()"])
    assert {k: v for k, v in parsed.items() if k != "G"} == {"A": inf, "B": -inf, "C": inf, "D": -inf, "E": inf,
                                                             "F": [inf, 2], "H": "4bit",
                                                             "T": (1, 2), "U": (3,),
                                                             "V": ((1, 2), (3, 4)), "W": ()}
    assert parsed["G"] != parsed["G"]  # NaN
    source = tutorial._parameter_source(parsed)  # valid Python: repr's inf and nan are no names in the kernel
    assert "A = float('inf')" in source and "B = float('-inf')" in source and "F = [float('inf'), 2]" in source
    assert "G = float('nan')" in source
    import numpy as np  # np.int64(1), numpy 2's repr, is no name in the kernel (a sweep over np.arange)
    assert tutorial._parameter_source({"S": np.int64(1), "F": np.False_, "L": [np.float32(0.5)]}) == \
        tutorial._parameter_source({"S": 1, "F": False, "L": [0.5]})
    namespace = {}
    exec(source, namespace)
    assert namespace["E"] == inf and namespace["F"] == [inf, 2] and namespace["H"] == "4bit"
    assert namespace["U"] == (3,) and namespace["V"] == ((1, 2), (3, 4)) and namespace["W"] == ()  # (3) is 3
    assert tutorial._parse_set(["X=-float('inf')", "Y=-float('-inf')"]) == {"X": -inf, "Y": inf}
    for bad, why in (("X=07", "X=07: not a number Python reads .*write it as in Python .7, not 07."),
                     ("X=1__0", "X=1__0: not a number Python reads"),
                     ("X={[1]: 2}", r"X=\{\[1\]: 2\}: not a Python literal .TypeError: unhashable"),
                     ("X=[1, 2", r"X=\[1, 2: not a Python literal .SyntaxError"),
                     ("X=float('x')", "X: float.. cannot read 'x'"),
                     # kept as text, these reached the notebook as a true str ('false') or failed much later there
                     ("RUN_DVTS=false", "RUN_DVTS=false: write True, False or None"),
                     ("X=no", "X=no: write True, False or None"),
                     ("BETA=1/10", r"BETA=1/10: an expression, not a value"),
                     ("N=2*100", r"N=2\*100: an expression"), ("M=float(30)", r"M=float\(30\): an expression"),
                     ("N=1,000", r"N=1,000: a number with a thousands separator .* write 1000 or 1_000, or "
                                 r".*\(1,000\)"),  # was (1, 0)
                     ("BETA=0,5", r"BETA=0,5: a comma outside brackets makes the tuple \(0, 5\): write a decimal "
                                  r"with a point \(0\.5\), a tuple or list in brackets: \(0,5\) or \[0,5\]"),
                     ("X=1, 2", r"X=1, 2: a comma outside brackets .*: write a tuple or list in brackets: \(1, 2\) or"),
                     ("X=(1),(2)", r"X=\(1\),\(2\): a comma outside brackets makes the tuple \(1, 2\)")):
        with pytest.raises(ValueError, match=why):
            tutorial._parse_set([bad])
    table = tutorial.format_metrics_table({"prm": {"step_auroc": 0.812345}, "best_of_n": {"16": {"orm": 0.5}}})
    assert "prm.step_auroc" in table and "0.8123" in table and "best_of_n.16.orm" in table
    table = tutorial.format_metrics_table({"best_of_n": {"16": {"orm": 0.5}, "2": {"orm": 0.3}},
                                           "policy": {"dpo": {"accuracy": 0.7, "seconds": 3},
                                                      "rounds": [{"x": 1}] * 9}})
    names = [line.split()[0] for line in table.splitlines()[2:]]
    assert names == ["best_of_n.2.orm", "best_of_n.16.orm", "policy.dpo.accuracy", "policy.dpo.seconds",
                     "policy.rounds"]  # numbers sorted as numbers
    assert table.splitlines()[-1].endswith("[9 entries]")
    only = tutorial.format_metrics_table({"policy": {"dpo": {"accuracy": 0.7, "seconds": 3}}},
                                         only=["policy.*.accuracy"])
    assert "policy.dpo.accuracy" in only and "seconds" not in only
    assert tutorial.NOTEBOOKS[0] == "01_data_prep.ipynb" and tutorial.NOTEBOOKS[-1] == "07_test_time_compute.ipynb"


@pytest.mark.skipif(os.name != "posix", reason="Unix domain sockets")
def test_kernels_started_at_once_talk_over_their_own_unix_sockets_and_leave_no_files(tmp_path):
    """The test suite's two workers start kernels at the same moment; over TCP each process picked its ports alone, so
    two kernels could be handed one port. Each kernel now has its own socket files, removed when it shuts down."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    code = ("import json, ipykernel.connect\ninfo = ipykernel.connect.get_connection_info(unpack=True)\n"
            "print(json.dumps({key: info[key] for key in ('transport', 'ip')}))")
    _notebook(tmp_path / "01_info.ipynb", code)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(tutorial.execute_notebook, tmp_path / "01_info.ipynb", timeout=120) for _ in range(2)]
        infos = [json.loads(run.result().cells[0].outputs[0]["text"]) for run in runs]
    assert [info["transport"] for info in infos] == ["ipc", "ipc"]
    assert infos[0]["ip"] != infos[1]["ip"] and all(Path(info["ip"]).is_absolute() for info in infos)
    # a socket's path holds 104 bytes on macOS, whose temp folder takes about 50; jupyter_client adds "-<port>"
    assert all(len(Path(info["ip"]).name) + len("-12345") <= 40 for info in infos)
    # their own files gone (the folder as a whole is shared with the other test worker's kernels, which come and go)
    assert all(Path(info["ip"]).parent == Path(tempfile.gettempdir()) for info in infos)
    assert [sorted(Path(info["ip"]).parent.glob(Path(info["ip"]).name + "*")) for info in infos] == [[], []]


def test_run_side_by_side_runs_each_job_with_its_threads_and_reports_as_each_finishes(capsys):
    """scripts/seed_spread.py's and scripts/exercise_runs.py's loop (each held a copy of it)."""
    calls = []

    def job(value):
        def run(scratch, threads):
            assert scratch.is_dir()
            calls.append(threads)
            return value
        return run

    done = tutorial.run_side_by_side({"b": job(2), "a": job(1)}, parallel=2, desc="jobs")
    assert list(done) == ["b", "a"] and [r for r, _ in done.values()] == [2, 1]
    assert all(seconds >= 0 for _, seconds in done.values()) and calls == [1, 1]
    out = capsys.readouterr().out
    assert "b: 0 s" in out and "a: 0 s" in out
    assert tutorial.run_side_by_side({"only": job(3)})["only"][0] == 3 and calls[-1] is None


@pytest.mark.parametrize("signal_name, said", [("SIGINT", "Ctrl-C"), ("SIGTERM", "SIGTERM")])
def test_ctrl_c_stops_the_running_cell_as_a_failing_cell_does(tmp_path, capfd, monkeypatch, signal_name, said):
    """Ctrl-C (or SIGTERM: a timeout, a closed terminal) used to reach only the runner (the kernel has a session of its
    own), where nbclient shut the kernel down mid-reply: a ZMQ traceback and "AssertionError:" for the user. It now
    interrupts the cell in the kernel.

    The kernel's main thread here reads its sockets late, as on a loaded machine (1 run in 25 under `make test`):
    after a failing cell ipykernel's shell thread posts its main thread a "stop aborting" message, which was still
    unread when the kernel shut down, and the shell thread closed that socket under it (a ZMQError traceback)."""
    import signal
    import threading
    import time

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers belong to the main thread")
    slow_reads = tmp_path / "slow_reads"  # a sitecustomize the kernel imports (it inherits PYTHONPATH)
    slow_reads.mkdir()
    (slow_reads / "sitecustomize.py").write_text(
        "import sys\nif any('ipykernel' in arg for arg in sys.orig_argv):\n"
        "    import threading, time\n    from zmq.eventloop import zmqstream\n"
        "    read = zmqstream.ZMQStream._handle_recv\n\n    def late_read(stream):\n"
        "        if threading.current_thread() is threading.main_thread():\n            time.sleep(0.05)\n"
        "        return read(stream)\n    zmqstream.ZMQStream._handle_recv = late_read\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(slow_reads), os.environ.get("PYTHONPATH")])))
    marker = tmp_path / "running"
    _notebook(tmp_path / "01_slow.ipynb", "x = 1", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\n"
              "for _ in range(600):\n    time.sleep(0.1)", 'print("never")')

    def press_ctrl_c():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), getattr(signal, signal_name))

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(NotebookError) as info:
        tutorial.execute_notebook(tmp_path / "01_slow.ipynb", output_path=tmp_path / "out.ipynb", timeout=120)
    assert time.monotonic() - start < 50  # the cell would sleep 60 s
    assert (info.value.cell_index, info.value.error) == (1, f"KeyboardInterrupt: stopped by {said}")
    nb = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert nb.cells[1].outputs[-1]["ename"] == "KeyboardInterrupt" and not nb.cells[2].outputs
    err = capfd.readouterr().err
    assert "ZMQError" not in err and "Traceback" not in err, err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # nothing of ours left behind
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_run_stopped_by_a_signal_exits_with_the_shells_code(monkeypatch, capsys):
    for error, code in (("KeyboardInterrupt: stopped by Ctrl-C", 130), ("KeyboardInterrupt: stopped by SIGTERM", 143),
                        ("ZeroDivisionError: division by zero", 1)):
        def stopped(*args, **kwargs):
            raise NotebookError("01_x.ipynb", 1, "x = 1", error)
        monkeypatch.setattr(tutorial, "run_tutorial", stopped)
        assert tutorial.main(["--profile", "tiny"]) == code
        assert error in capsys.readouterr().err


def test_a_set_value_of_the_wrong_type_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """--set N_CANDIDATES=abc reached notebook 06's setup cell only, after notebooks 01-05 had run (hours on a GPU)."""
    ran = []
    monkeypatch.setattr(tutorial, "execute_notebook", lambda path, params, *a, **kw: ran.append(path.name))
    with pytest.raises(ValueError, match="N_CANDIDATES must be an int >= 1 or None, got 'abc'"):
        run_tutorial("tiny", tmp_path / "runs", ["01", "06"], {"N_CANDIDATES": "abc"}, progress=False)
    assert not ran and not (tmp_path / "runs").exists()


def test_parameter_source_writes_nested_values_the_kernel_reads_and_refuses_a_name_that_is_none():
    """A dict's values were written by repr: {'a': inf} is no Python the kernel can run."""
    namespace = {}
    exec(tutorial._parameter_source({"LIMITS": {"a": float("inf"), 1: [float("-inf")]}}), namespace)
    assert namespace["LIMITS"] == {"a": float("inf"), 1: [float("-inf")]}
    with pytest.raises(ValueError, match="parameter name 'N TRAIN' is not a Python identifier"):
        tutorial._parameter_source({"N TRAIN": 1})


def test_parameter_defaults_are_the_last_literal_each_name_is_given(tmp_path):
    path = _notebook(tmp_path / "01_alpha.ipynb", ("parameters", "SEED = 0\nN = None\nSEED = 3\nNAME = str(1)"))
    assert tutorial._parameter_defaults(path) == {"SEED": 3, "N": None}


def test_an_executed_copy_draws_each_bar_as_it_ended_and_erases_a_hidden_one():
    """Static viewers show a bar's text/plain: its first state (0%), unless the runner redraws it from the widgets."""
    from types import SimpleNamespace

    def bar(key, hidden):
        def model(name, **state):
            return {"model_name": name, "state": state}
        return {key: model("HBoxModel", children=[f"IPY_MODEL_{key}{part}" for part in "lpr"],
                           layout=f"IPY_MODEL_{key}y"),
                f"{key}l": model("HTMLModel", value="loop: 100%"),
                f"{key}p": model("FloatProgressModel", value=5, max=5),
                f"{key}r": model("HTMLModel", value=" 5/5 [00:01&lt;00:00]"),
                f"{key}y": model("LayoutModel", visibility="hidden" if hidden else None)}

    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {**bar("a", False),
                                                                                       **bar("b", True)}}}
    nb.cells.append(nbformat.v4.new_code_cell("loop()", outputs=[nbformat.v4.new_output(
        "display_data", {"text/plain": "loop:   0%|          | 0/5", "application/vnd.jupyter.widget-view+json":
                         {"model_id": key}}) for key in "ab"]))
    tutorial._bars_as_they_ended(SimpleNamespace(nb=nb))
    shown, hidden = (output.data["text/plain"] for output in nb.cells[0].outputs)
    assert shown == "loop: 100%|██████████| 5/5 [00:01<00:00]" and hidden == ""


def test_the_bar_counts_the_notebooks_code_cells_not_the_injected_parameters(tmp_path):
    from tqdm import tqdm

    path = _notebook(tmp_path / "01_alpha.ipynb", ("md", "# Alpha"), ("parameters", PARAMS), "print(GREETING)")
    with tqdm(total=2, file=io.StringIO()) as bar:
        tutorial.execute_notebook(path, {"GREETING": "hey"}, timeout=120, progress=bar)
        assert bar.n == bar.total


def test_the_run_section_records_for_each_notebook_only_the_set_values_it_has(tmp_path, monkeypatch):
    monkeypatch.setattr(tutorial, "execute_notebook", lambda *a, **kw: None)
    _notebook(tmp_path / "01_alpha.ipynb", ("parameters", PARAMS))
    _notebook(tmp_path / "02_beta.ipynb", ("parameters", "SEED = 0\nOTHER = 1"))
    metrics = run_tutorial("toy", tmp_path / "runs", ["01", "02"], {"GREETING": "hey", "SEED": 5},
                           notebook_dir=tmp_path, progress=False, out=io.StringIO())
    assert metrics["run"]["01_alpha"]["set"] == {"GREETING": "'hey'"} and metrics["run"]["01_alpha"]["seed"] is None
    assert metrics["run"]["02_beta"]["set"] == {"SEED": "5"} and metrics["run"]["02_beta"]["seed"] == 5
