"""Colab setup: one place sets the repository URL; the install cell works in a running kernel, fails loudly,
constrains with the lock without fighting Colab's torch; RUNS_DIR goes to Google Drive when mounted."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepdpo_lite.tutorial import notebooks as tutorial
from stepdpo_lite.tutorial import colab

ROOT = Path(__file__).resolve().parent.parent


def _install_cell(path):
    code = [c for c in json.loads(Path(path).read_text())["cells"] if c["cell_type"] == "code"]
    return "".join(code[1]["source"])


def test_every_install_cell_is_the_package_template_with_repo_url():
    """REPO_URL is set in stepdpo_lite/tutorial/colab.py only: `python -m stepdpo_lite.tutorial.colab sync-notebooks`
    writes it."""
    for name in tutorial.NOTEBOOKS:
        assert _install_cell(tutorial.NOTEBOOK_DIR / name) == colab.install_cell_source(), (
            f"{name}: install cell out of date: run `python -m stepdpo_lite.tutorial.colab sync-notebooks`")
    assert colab.REPO_URL in colab.install_cell_source() and "{repo_url}" not in colab.install_cell_source()


def test_sync_notebooks_rewrites_only_the_install_cells(tmp_path):
    for name in tutorial.NOTEBOOKS[:2]:
        (tmp_path / name).write_text((tutorial.NOTEBOOK_DIR / name).read_text())
    before = json.loads((tmp_path / tutorial.NOTEBOOKS[0]).read_text())
    assert colab.sync_notebooks(tmp_path) == []  # already in sync: untouched
    assert colab.sync_notebooks(tmp_path, url="https://example.org/fork.git") == tutorial.NOTEBOOKS[:2]
    after = json.loads((tmp_path / tutorial.NOTEBOOKS[0]).read_text())
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert len(changed) == 1 and "https://example.org/fork.git" in "".join(after["cells"][changed[0]]["source"])


def test_sync_notebooks_cli_takes_a_url_and_refuses_a_folder_without_notebooks(tmp_path, capsys):
    """A mistyped --notebook-dir printed "updated: nothing (already in sync)", and a fork's URL had to be edited
    into colab.py first (a user's trial, 2026-12-05)."""
    with pytest.raises(SystemExit) as stop:
        colab.main(["sync-notebooks", "--notebook-dir", str(tmp_path / "typo")])
    assert stop.value.code == 2 and "holds no notebook named NN_*.ipynb" in capsys.readouterr().err
    name = tutorial.NOTEBOOKS[0]
    (tmp_path / name).write_text((tutorial.NOTEBOOK_DIR / name).read_text())
    assert colab.main(["sync-notebooks", "--notebook-dir", str(tmp_path), "--url", "https://example.org/f.git"]) == 0
    assert f"updated: {name}" in capsys.readouterr().out
    assert "https://example.org/f.git" in (tmp_path / name).read_text()


def _run_cell_as_colab(tmp_path, env):
    """The install cell, executed in a fresh interpreter that believes it is in Colab (google.colab imported)."""
    script = textwrap.dedent('''
        import sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")
        output = sys.modules["google.colab.output"] = types.ModuleType("google.colab.output")
        output.enable_custom_widget_manager = lambda: print("CUSTOM WIDGET MANAGER")
        sys.modules["google.colab"].output = output
        PROFILE, RUNS_DIR = "tiny", "runs"
        exec(open(sys.argv[1]).read())
        import stepdpo_lite
        print("IMPORTED", stepdpo_lite.__file__, "RUNS_DIR", RUNS_DIR)
    ''')
    (tmp_path / "cell.py").write_text(colab.install_cell_source())
    (tmp_path / "run.py").write_text(script)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPDPO_") and k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "cell.py")], cwd=tmp_path,
                          env={**clean, **env}, capture_output=True, text=True, timeout=300)


def test_colab_cell_fails_loudly_when_the_clone_fails(tmp_path):
    done = _run_cell_as_colab(tmp_path, {"STEPDPO_KIT_DIR": str(tmp_path / "kit"),
                                         "STEPDPO_REPO_URL": str(tmp_path / "no-such-repo")})
    assert done.returncode != 0
    assert "RuntimeError: git clone -q --depth 1" in done.stderr and "no-such-repo" in done.stderr


def test_colab_cell_installs_with_the_lock_and_imports_the_clone_without_a_restart(tmp_path):
    kit = tmp_path / "kit"  # a clone that is already there: the cell skips git and installs it (dry run: no pip)
    kit.mkdir()
    (kit / "stepdpo_lite").symlink_to(ROOT / "stepdpo_lite")
    (kit / "requirements.lock").write_text((ROOT / "requirements.lock").read_text())
    done = _run_cell_as_colab(tmp_path, {"STEPDPO_KIT_DIR": str(kit), "STEPDPO_COLAB_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr
    assert f"IMPORTED {kit}/stepdpo_lite/__init__.py" in done.stdout  # the clone, first on sys.path
    assert "CUSTOM WIDGET MANAGER" in done.stdout  # ipywidgets 8 draws in Colab only through it
    assert "mount Google Drive" in done.stdout and "RUNS_DIR runs" in done.stdout  # no Drive here: stays local
    # "run this cell again" left RUN_DIR, which the next cell sets once, on the runtime's own disk
    assert "run the notebook again from its first cell (Runtime > Run all" in done.stdout
    pins = (kit / ".colab-constraints.txt").read_text().splitlines()
    names = {line.split("==")[0].lower() for line in pins}
    assert "trl==1.16.0" in pins and "transformers" in names and "peft" in names
    assert not names & {"torch", "numpy", "sympy", "networkx", "jinja2", "filelock", "fsspec", "typing-extensions",
                        "typing_extensions"}  # Colab's torch and its requirements are kept
    # and what the runtime has installed already, but the ML stack: a pin replaced the running kernel's IPython
    assert not names & {"ipython", "traitlets", "pandas", "matplotlib", "scipy", "pyarrow"}


def test_colab_cell_says_what_it_installs_before_and_shows_pips_warnings_after(tmp_path):
    """The cell captured the install's output and printed it at the end: pip -q was silent for minutes under a cell
    that looked stuck, and what it wrote to stderr (its dependency conflicts) was dropped when it succeeded (T14)."""
    kit = tmp_path / "kit"  # a stand-in kit: its install succeeds with a warning on stderr; setup returns RUNS_DIR
    (kit / "stepdpo_lite" / "tutorial").mkdir(parents=True)
    for init in ("stepdpo_lite/__init__.py", "stepdpo_lite/tutorial/__init__.py"):
        (kit / init).write_text("")
    (kit / "stepdpo_lite" / "tutorial" / "colab.py").write_text(textwrap.dedent('''
        import sys
        setup = lambda profile, runs_dir: runs_dir
        if __name__ == "__main__":
            print("INSTALL DONE")
            print("ERROR: pip's dependency resolver ...: google-colab requires pandas==2.2.2", file=sys.stderr)
    '''))
    done = _run_cell_as_colab(tmp_path, {"STEPDPO_KIT_DIR": str(kit)})
    assert done.returncode == 0, done.stderr
    said = done.stdout
    assert said.index("installing the kit with pip") < said.index("INSTALL DONE")  # before pip's silent minutes
    assert "up to a few minutes in a fresh runtime" in said
    assert said.index("INSTALL DONE") < said.index("google-colab requires pandas==2.2.2")


def test_install_command_and_constraints():
    cmd = colab.install_command("/content/stepdpo-lite", "/tmp/c.txt")
    assert cmd[1:] == ["-m", "pip", "install", "-q", "-c", "/tmp/c.txt", "-e", "/content/stepdpo-lite"]
    assert colab.constraints("# head\nfoo==1\nTyping_Extensions==2\nbar==3\n",
                             {"typing-extensions", "BAR"}) == "foo==1\n"
    assert {"torch", "sympy", "filelock"} <= colab._requirement_names("torch")


def test_a_reinstall_pins_what_the_first_install_added(tmp_path):
    """The runtime's packages are recorded before the first install: on a reinstall (a new lock) the packages that
    install added were "installed" too, and kept their old versions against the new lock."""
    (tmp_path / "requirements.lock").write_text("trl==1.16.0\nipython==9.18.1\nrich==1.0\n")
    (tmp_path / ".colab-preinstalled.txt").write_text("ipython\ntrl\n")  # the runtime had these before the kit
    colab.install(tmp_path, dry_run=True)
    assert (tmp_path / ".colab-constraints.txt").read_text() == "trl==1.16.0\nrich==1.0\n"  # rich: the kit added it


def test_runs_dir_on_drive_when_mounted(tmp_path, monkeypatch):
    lines = []
    assert colab.resolve_runs_dir("runs", out=lines.append) == "runs" and not lines  # not in Colab: unchanged
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setattr(colab, "DRIVE_ROOT", str(tmp_path / "MyDrive"))
    assert colab.resolve_runs_dir("runs", out=lines.append) == "runs" and "drive.mount" in lines[-1]
    (tmp_path / "MyDrive").mkdir()
    assert colab.resolve_runs_dir("runs", out=lines.append) == str(tmp_path / "MyDrive" / "stepdpo-lite" / "runs")
    assert colab.resolve_runs_dir("/abs/runs", out=lines.append) == "/abs/runs"  # an explicit path is kept


def test_require_names_drive_in_colab(tmp_path, monkeypatch):
    from stepdpo_lite.tutorial import runs
    with pytest.raises(FileNotFoundError, match="run notebook 01_data_prep first") as info:
        runs.require(tmp_path / "missing", "01_data_prep")
    assert "Drive" not in str(info.value)
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    with pytest.raises(FileNotFoundError, match="Google Drive"):
        runs.require(tmp_path / "missing", "01_data_prep")


def test_widget_manager_only_in_colab_with_ipywidgets_8(monkeypatch):
    from importlib import metadata
    calls = []
    output = type(sys)("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("enabled")
    colab.enable_widgets()  # not in Colab: google.colab is never imported
    assert calls == []
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    sys.modules["google.colab"].output = output
    colab.enable_widgets()
    assert calls == ["enabled"]
    monkeypatch.setattr(metadata, "version", lambda name: "7.7.1")  # Colab's own manager draws ipywidgets 7
    colab.enable_widgets()
    assert calls == ["enabled"]


def test_use_expandable_segments_keeps_a_user_setting(monkeypatch):
    import os
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)  # the newer name, set, is kept instead
    colab.use_expandable_segments()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    colab.use_expandable_segments()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"


def test_use_expandable_segments_warns_only_when_its_own_setting_waits_for_a_restart(monkeypatch):
    """A second Run all in one Colab runtime warned that the setting "has no effect until the process restarts": the
    first run had set it before CUDA started, so it was in effect (T14). A value under either name is kept, quietly."""
    import warnings

    import torch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    for name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        monkeypatch.delenv(name, raising=False)
    with pytest.warns(UserWarning, match="no effect until the process restarts"):
        colab.use_expandable_segments()  # set now, after CUDA started: it waits for a restart
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        colab.use_expandable_segments()  # the second Run all: set by the first run, before CUDA started
        monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF")
        monkeypatch.setenv("PYTORCH_ALLOC_CONF", "max_split_size_mb:128")  # the newer name, set by the user
        colab.use_expandable_segments()
    assert "PYTORCH_CUDA_ALLOC_CONF" not in os.environ  # the user's value alone: a torch reading the old name first


def test_a_notebook_opened_from_the_kits_folder_finds_the_runs_of_make_tutorial(monkeypatch):
    """Jupyter starts a notebook's kernel in its folder: RUNS_DIR = "runs" was notebooks/runs there, while
    `make tutorial` (and the README) write runs/ at the repository's root; a notebook opened after it found
    nothing ("run notebook 02 first")."""
    from stepdpo_lite.tutorial.notebooks import NOTEBOOK_DIR

    monkeypatch.chdir(NOTEBOOK_DIR)
    assert colab.resolve_runs_dir("runs", out=print) == str(NOTEBOOK_DIR.parent / "runs")
    assert colab.resolve_runs_dir("/abs/runs", out=print) == "/abs/runs"
    monkeypatch.chdir(NOTEBOOK_DIR.parent)
    assert colab.resolve_runs_dir("runs", out=print) == "runs"  # any other folder: as given


def test_notebook_runner_refuses_one_str_where_a_list_is_expected():
    """A str was read a character at a time: only="a.*" kept every metric (its "*"), only="a.b" none, and
    notebooks="12" ran notebooks 01 and 02; an empty list ran nothing and failed on the table."""
    metrics = {"a": {"b": 1}, "c": 2}
    with pytest.raises(ValueError, match="format_metrics_table: only: expected a list of glob patterns, got one str"):
        tutorial.format_metrics_table(metrics, only="a.*")
    assert "a.b" in tutorial.format_metrics_table(metrics, only=("a.*",))
    assert "c" not in tutorial.format_metrics_table(metrics, only=["a.*"]).split()
    with pytest.raises(ValueError, match="resolve_notebooks: notebooks: expected a list of notebook names, got one"):
        tutorial.resolve_notebooks("12")
    with pytest.raises(ValueError, match="notebooks is empty"):
        tutorial.resolve_notebooks([])
    assert tutorial.resolve_notebooks(("01",)) == [tutorial.NOTEBOOK_DIR / tutorial.NOTEBOOKS[0]]


def _disk_fills_part_way(monkeypatch, kept: int):
    """Every ``Path.write_text`` writes the first ``kept`` characters, then fails as a full disk does."""
    real = Path.write_text

    def fails_part_way(self, text, *args, **kwargs):
        real(self, text[:kept], *args, **kwargs)
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", fails_part_way)


def test_sync_notebooks_leaves_no_notebook_half_written(tmp_path, monkeypatch):
    """A write that failed part-way (a full disk, a kill) left a notebook cut short, no longer JSON."""
    name = tutorial.NOTEBOOKS[0]
    before = (tutorial.NOTEBOOK_DIR / name).read_text()
    (tmp_path / name).write_text(before)
    _disk_fills_part_way(monkeypatch, kept=100)
    with pytest.raises(OSError, match="No space left"):
        colab.sync_notebooks(tmp_path, url="https://example.org/fork.git")
    monkeypatch.undo()
    assert (tmp_path / name).read_text() == before and [p.name for p in tmp_path.iterdir()] == [name]


def test_a_fresh_runtime_records_its_own_packages(tmp_path, monkeypatch):
    """A kit kept on Drive (STEPDPO_KIT_DIR) keeps the record of the runtime that first installed it: in a fresh
    runtime (the kit not installed yet) that record was used, so a package this runtime has but the old one had not
    (rich) was pinned to the lock, replacing the runtime's own version, as a pin replaced the kernel's IPython."""
    from importlib import metadata

    class Dist:
        def __init__(self, name):
            self.metadata = {"Name": name}

    (tmp_path / "requirements.lock").write_text("trl==1.16.0\nipython==9.18.1\nrich==1.0\n")
    (tmp_path / ".colab-preinstalled.txt").write_text("ipython\ntrl\n")  # the first runtime's, months ago
    monkeypatch.setattr(metadata, "distributions", lambda: [Dist("IPython"), Dist("rich")])  # no stepdpo-lite
    colab.install(tmp_path, dry_run=True)
    assert (tmp_path / ".colab-preinstalled.txt").read_text() == "ipython\nrich\n"
    assert (tmp_path / ".colab-constraints.txt").read_text() == "trl==1.16.0\n"


def test_run_tutorial_refuses_a_bool_timeout(tmp_path, monkeypatch):
    """timeout=True was taken as a limit of one second a cell."""
    import nbformat

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), tmp_path / "01_a.ipynb")
    timeouts = []
    monkeypatch.setattr(tutorial, "execute_notebook", lambda *a, timeout=None, **k: timeouts.append(timeout))
    with pytest.raises(ValueError, match="timeout=True: give the seconds allowed per cell"):
        tutorial.run_tutorial("toy", tmp_path / "runs", ["01"], notebook_dir=tmp_path, timeout=True, progress=False)
    assert timeouts == []


def test_install_leaves_no_record_half_written(tmp_path, monkeypatch):
    """The package record was written in place: a write cut short (a kill, a full disk, Drive's sync) left part of
    it, which a runtime that has the kit installed trusts on its next install (a package cut off the record is then
    pinned to the lock, replacing the runtime's own). Now the record is replaced whole or not at all."""
    from importlib import metadata

    class Dist:
        def __init__(self, name):
            self.metadata = {"Name": name}

    (tmp_path / "requirements.lock").write_text("trl==1.16.0\nipython==9.18.1\nrich==1.0\n")
    (tmp_path / ".colab-preinstalled.txt").write_text("ipython\ntrl\n")
    monkeypatch.setattr(metadata, "distributions", lambda: [Dist("IPython"), Dist("rich")])  # no stepdpo-lite
    _disk_fills_part_way(monkeypatch, kept=3)
    with pytest.raises(OSError, match="No space left"):
        colab.install(tmp_path, dry_run=True)
    monkeypatch.undo()
    assert (tmp_path / ".colab-preinstalled.txt").read_text() == "ipython\ntrl\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".colab-preinstalled.txt", "requirements.lock"]


def _installed(monkeypatch, names, requires=("trl==1.16.*", "ipywidgets>=8.0", "pytest>=8; extra == \"dev\"")):
    """importlib.metadata as a runtime with ``names`` installed, stepdpo-lite requiring ``requires``, sees it."""
    from importlib import metadata

    class Dist:
        def __init__(self, name):
            self.metadata = {"Name": name}

    def version(name):
        if name.lower() not in names:
            raise metadata.PackageNotFoundError(name)
        return "1.0"

    def requires_of(name):
        version(name)
        return list(requires)

    monkeypatch.setattr(metadata, "distributions", lambda: [Dist(n) for n in names])
    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(metadata, "requires", requires_of)


def test_a_rerun_of_the_install_cell_installs_again_what_went_missing(tmp_path, monkeypatch, capsys):
    """The skip on a rerun read only its marker file and "stepdpo-lite is installed": after `pip uninstall
    ipywidgets` the install cell did nothing, silently, and `import ipywidgets` still failed (a user's trial)."""
    (tmp_path / "requirements.lock").write_text("trl==1.16.0\nipywidgets==8.1.0\n")
    pip = []
    monkeypatch.setattr(colab.subprocess, "run", lambda cmd, check: pip.append(cmd))
    _installed(monkeypatch, {"stepdpo-lite", "trl", "ipywidgets"})
    colab.install(tmp_path)
    colab.install(tmp_path)  # everything there: skipped
    assert len(pip) == 1
    _installed(monkeypatch, {"stepdpo-lite", "trl"})
    colab.install(tmp_path)
    assert len(pip) == 2 and colab.missing_requirements() == ["ipywidgets"]
    assert "installing the kit again: ipywidgets not installed in this runtime" in capsys.readouterr().out
    _installed(monkeypatch, {"trl"})  # a fresh runtime, the kit (and its marker) kept on Drive
    assert colab.missing_requirements() == ["stepdpo-lite"]
    colab.install(tmp_path)
    assert len(pip) == 3
    _installed(monkeypatch, {"stepdpo-lite", "trl", "ipywidgets"})
    assert colab.missing_requirements() == []  # the [dev] extra's pytest is not required


def test_the_packages_kernel_requirement_keeps_the_kernel_colab_runs():
    """The runner's kernel stack is a dependency of the package, which Colab's install cell installs into a running
    kernel: google-colab pins an older ipykernel (5.5.6, later 6.17.1), which a bound of 6.29 would have replaced
    under it (pip: "Upgrading ... ipykernel ... can cause your runtime to repeatedly crash")."""
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ipykernel = next(r for r in map(Requirement, deps) if r.name == "ipykernel")
    assert ipykernel.specifier.contains("5.5.6") and ipykernel.specifier.contains("6.17.1")


def test_dir_and_help_list_the_lazily_imported_names():
    """`dir(stepdpo_lite)` gave ['import_module', 'logging'] and help() no class or function: tab completion offered
    none of the public names, which are imported when first used."""
    import pydoc
    import warnings

    import stepdpo_lite

    assert set(stepdpo_lite.__all__) <= set(dir(stepdpo_lite)) and "__version__" in dir(stepdpo_lite)
    with warnings.catch_warnings():  # help() reads every name: torch's deprecated jit names warn when read
        warnings.simplefilter("ignore", DeprecationWarning)
        text = pydoc.render_doc(stepdpo_lite, renderer=pydoc.plaintext)
    assert "class StepwiseDPOTrainer" in text and "extract_steps(" in text


def test_sync_notebooks_outside_a_clone_says_that_the_notebooks_ship_with_the_repository(tmp_path, monkeypatch,
                                                                                         capsys):
    """From a pip-installed package the default folder is site-packages/notebooks, which is not there."""
    from stepdpo_lite.tutorial import runs
    monkeypatch.setattr(runs, "NOTEBOOK_DIR", tmp_path / "site-packages" / "notebooks")  # where colab reads it
    with pytest.raises(SystemExit) as stop:
        colab.main(["sync-notebooks"])
    err = " ".join(capsys.readouterr().err.split())
    assert stop.value.code == 2 and f"{tmp_path}/site-packages/notebooks holds no notebook named NN_*.ipynb; the" in err
    assert "run from a clone (`pip install -e .` in it), or give --notebook-dir CLONE/notebooks" in err


def _git(*args, cwd=None):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def _clone_of_a_local_repository(tmp_path, name="upstream"):
    """A local git repository standing for the one the notebooks clone, and a clone of it (no network)."""
    origin = tmp_path / name
    origin.mkdir()
    (origin / "README.md").write_text("kit\n")
    _git("init", "-q", cwd=origin)
    _git("add", "README.md", cwd=origin)
    _git("commit", "-q", "-m", "first", cwd=origin)
    kit = tmp_path / "kit"
    _git("clone", "-q", str(origin), str(kit))
    return origin, kit


def test_a_clone_of_another_repository_is_refused_naming_both(tmp_path, monkeypatch):
    """A STEPDPO_REPO_URL set after the first clone (a fork) was ignored silently: the old clone was reused."""
    upstream, kit = _clone_of_a_local_repository(tmp_path)
    assert colab.check_clone_origin(kit, str(upstream)) == str(upstream)
    assert colab.check_clone_origin(kit, f" {upstream}/ ") == str(upstream)  # the same repository, written apart
    monkeypatch.setenv("STEPDPO_REPO_URL", "https://github.com/you/fork.git")
    with pytest.raises(ValueError) as info:
        colab.check_clone_origin(kit, "https://github.com/you/fork.git")
    message = str(info.value)
    assert f"the kit at {kit} is a clone of {upstream}, but STEPDPO_REPO_URL asks for https://github.com/you/fork.git"\
        in message
    assert f"`!rm -rf {kit}`" in message and f"`%env STEPDPO_REPO_URL={upstream}`" in message
    monkeypatch.delenv("STEPDPO_REPO_URL")
    with pytest.raises(ValueError, match="the notebook's REPO_URL \\(STEPDPO_REPO_URL is not set\\)"):
        colab.check_clone_origin(kit, colab.REPO_URL)
    not_a_clone = tmp_path / "copied"
    not_a_clone.mkdir()
    assert colab.check_clone_origin(not_a_clone, colab.REPO_URL) is None  # nothing to compare: a kit copied in


def test_urls_of_one_repository_compare_equal():
    same = ["https://github.com/you/kit", "https://GitHub.com/you/kit.git/", "git@github.com:you/kit.git",
            "ssh://git@github.com/you/kit", "https://user:token@github.com/you/kit.git"]
    assert {colab.comparable_url(u) for u in same} == {"github.com/you/kit"}
    assert colab.comparable_url("https://github.com/you/kit") != colab.comparable_url("https://github.com/me/kit")
    assert colab.comparable_url("https://host:8443/you/kit") == "host:8443/you/kit"  # a port is not a path


def test_the_install_cell_refuses_a_clone_of_another_repository_and_shows_what_the_install_says(tmp_path):
    upstream, kit = _clone_of_a_local_repository(tmp_path)
    (kit / "stepdpo_lite").symlink_to(ROOT / "stepdpo_lite")
    (kit / "requirements.lock").write_text((ROOT / "requirements.lock").read_text())
    fork = tmp_path / "fork"
    done = _run_cell_as_colab(tmp_path, {"STEPDPO_KIT_DIR": str(kit), "STEPDPO_REPO_URL": str(fork),
                                         "STEPDPO_COLAB_DRY_RUN": "1"})
    assert done.returncode != 0 and "IMPORTED" not in done.stdout
    assert f"is a clone of {upstream}, but STEPDPO_REPO_URL asks for {fork}" in " ".join(done.stderr.split())
    assert not (kit / ".colab-constraints.txt").exists()  # refused before the install
    done = _run_cell_as_colab(tmp_path, {"STEPDPO_KIT_DIR": str(kit), "STEPDPO_REPO_URL": str(upstream),
                                         "STEPDPO_COLAB_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr
    # the install's own lines (here the dry run's pip command) were swallowed: "installing the kit again" too
    assert f"-m pip install -q -c {kit}/.colab-constraints.txt -e {kit}" in done.stdout


def test_reference_solution_is_written_in_the_steps_the_instruction_asks_for():
    from stepdpo_lite.steps import extract_steps
    from stepdpo_lite.tutorial import gsm8k

    problem = gsm8k.GSM8KProblem("How many clips?", "72", "prompt", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                                 "She sold 48+24 = <<48+24=72>>72 clips.")
    text = gsm8k.reference_solution(problem)
    assert text == ("Step 1: Natalia sold 48/2 = 24 clips in May.\n\nStep 2: She sold 48+24 = 72 clips.\n\n"
                    "Answer: 72")
    assert problem.is_correct(text) and len(extract_steps(text)) == 2
    with pytest.raises(ValueError, match="reference_solution: the problem 'How many clips\\?' has no reference"):
        gsm8k.reference_solution(gsm8k.GSM8KProblem("How many clips?", "72", "prompt"))


def _example_output(tmp_path, profile):
    """Notebook 01 up to its example cell (the first after the task's markdown), executed on ``profile``."""
    import nbformat

    nb = nbformat.read(str(tutorial.NOTEBOOK_DIR / "01_data_prep.ipynb"), as_version=4)
    heading = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "GSM8K" in c.source
                   and "toy world" in c.source.splitlines()[0])
    nb.cells = nb.cells[:heading + 2]
    path = tmp_path / f"01_{profile}.ipynb"
    nbformat.write(nb, str(path))
    done = tutorial.execute_notebook(path, {"PROFILE": profile, "RUNS_DIR": str(tmp_path / "runs")}, cwd=tmp_path)
    return nb.cells[heading].source, "".join(o.get("text", "") for o in done.cells[-1].get("outputs", []))


@pytest.mark.notebook
def test_notebook_01_shows_an_example_of_the_task_its_profile_runs(tmp_path):
    """On the GPU profiles (GSM8K) notebook 01 showed the toy world's example, checker labels and all: not the task
    the notebook then samples and labels (a user's trial). The smoke profile is that code path on a CPU."""
    markdown, shown = _example_output(tmp_path, "smoke")
    assert "On a GPU profile" in markdown and "GSM8K" in markdown
    assert shown.startswith("<|im_start|>user\n") and "<|im_start|>assistant\nStep 1: " in shown
    assert "\n\nStep 2: " in shown and "Answer: " in shown and "reachable" not in shown
    assert "graded right: True" in shown and "': False | step labels from a checker: None" in shown
    _, shown = _example_output(tmp_path, "tiny")
    assert "reachable:         [True, False, False" in shown and "<|im_start|>" not in shown


def test_skipping_the_install_cell_outside_colab_finds_the_same_runs(monkeypatch, capsys):
    """The install cell opened with "# Colab only" but its last line resolves RUNS_DIR on every profile: a learner who
    skipped it got a relative runs/ inside notebooks/ and "run notebook 01 first" (a Jupyter trial). Its comments
    say which part is Colab's; the setup cell after it resolves RUNS_DIR again, quietly, so skipping it is harmless."""
    cell = colab.install_cell_source()
    assert "# Colab only (the `if` block)" in cell
    last = cell.splitlines()
    assert last[-1] == "RUNS_DIR = colab.setup(PROFILE, RUNS_DIR)" and "Every profile" in last[-2]
    for name in tutorial.NOTEBOOKS:
        code = [c for c in json.loads((tutorial.NOTEBOOK_DIR / name).read_text())["cells"] if c["cell_type"] == "code"]
        assert "runs.run_dir(PROFILE, colab.resolve_runs_dir(RUNS_DIR, out=None))" in "".join(code[2]["source"]), name
    monkeypatch.chdir(tutorial.NOTEBOOK_DIR)  # where Jupyter starts the kernel
    assert colab.resolve_runs_dir("runs", out=None) == str(tutorial.NOTEBOOK_DIR.parent / "runs")
    monkeypatch.setattr(colab, "in_colab", lambda: True)
    monkeypatch.setattr(colab, "DRIVE_ROOT", str(tutorial.NOTEBOOK_DIR / "no-drive"))
    assert colab.resolve_runs_dir("runs", out=None) == "runs" and capsys.readouterr().out == ""  # said once, by 2
    assert colab.resolve_runs_dir("runs") == "runs" and "mount Google Drive" in capsys.readouterr().out


def test_install_turns_a_folder_with_no_kit_or_another_repositorys_clone_into_a_usage_error(tmp_path, monkeypatch,
                                                                                            capsys):
    """`colab install` of a folder that holds no kit was a traceback reading its requirements.lock, and with
    --repo-url of another repository check_clone_origin's ValueError a traceback (its message at the end)."""
    monkeypatch.setattr(colab, "install", lambda *a, **k: pytest.fail("installed"))
    (tmp_path / "a_file").write_text("notes")
    for kit in (tmp_path / "typo", tmp_path / "a_file"):
        with pytest.raises(SystemExit) as done:
            colab.main(["install", str(kit), "--dry-run"])
        said = capsys.readouterr().err
        assert done.value.code == 2 and f"error: kit {kit}: no requirements.lock there" in said, said
    upstream, kit = _clone_of_a_local_repository(tmp_path)
    (kit / "requirements.lock").write_text("")
    monkeypatch.delenv("STEPDPO_REPO_URL", raising=False)
    with pytest.raises(SystemExit) as done:
        colab.main(["install", str(kit), "--repo-url", "https://github.com/you/fork.git", "--dry-run"])
    said = capsys.readouterr().err
    assert done.value.code == 2 and f"error: colab setup: the kit at {kit} is a clone of {upstream}" in said, said


def test_sync_notebooks_cli_writes_the_environments_repo_url_when_set(tmp_path, monkeypatch, capsys):
    """`%env STEPDPO_REPO_URL=...` (a fork) is the URL sync-notebooks writes without --url; unset or empty: REPO_URL."""
    name = tutorial.NOTEBOOKS[0]
    (tmp_path / name).write_text((tutorial.NOTEBOOK_DIR / name).read_text())
    monkeypatch.setenv("STEPDPO_REPO_URL", "https://github.com/you/fork")
    assert colab.main(["sync-notebooks", "--notebook-dir", str(tmp_path)]) == 0
    assert _install_cell(tmp_path / name) == colab.install_cell_source("https://github.com/you/fork")
    monkeypatch.setenv("STEPDPO_REPO_URL", "")
    assert colab.main(["sync-notebooks", "--notebook-dir", str(tmp_path)]) == 0
    assert _install_cell(tmp_path / name) == colab.install_cell_source()


def test_constraints_keep_names_written_with_an_underscore_and_the_files_are_readable(tmp_path):
    """A name kept may be written with "_" (typing_extensions) where the lock has "-" or any case; the constraints
    file (written through a private temporary file) is readable by pip run as another user, as the record is."""
    assert colab.constraints("foo==1\nTyping-Extensions==2\n", {"typing_extensions"}) == "foo==1\n"
    (tmp_path / "requirements.lock").write_text("trl==1.16.0\n")
    colab.install(tmp_path, dry_run=True)
    for name in (".colab-constraints.txt", ".colab-preinstalled.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_a_requirement_written_with_its_version_in_parentheses_is_read_by_its_name(monkeypatch):
    """PEP 508 allows "ipywidgets(>=8.0)": its name is ipywidgets, installed, not a missing "ipywidgets(" package."""
    _installed(monkeypatch, {"stepdpo-lite", "ipywidgets"}, requires=("ipywidgets(>=8.0)",))
    assert colab.missing_requirements() == []


def test_a_folder_inside_another_clone_is_no_clone(tmp_path):
    """A kit copied in by hand under a clone (here a folder of the clone) has no origin of its own: `git -C` would
    answer with the clone's around it."""
    upstream, kit = _clone_of_a_local_repository(tmp_path)
    (kit / "copied").mkdir()
    assert colab.clone_origin(kit) == str(upstream) and colab.clone_origin(kit / "copied") is None


def test_install_leaves_numpy_and_torchs_own_requirements_out_of_the_constraints(tmp_path, monkeypatch):
    """Colab's compiled packages are built against its numpy: a runtime without numpy recorded still keeps numpy out of
    the lock's pins, with torch and what torch requires."""
    (tmp_path / "requirements.lock").write_text("trl==1.16.0\nnumpy==2.3.0\ntorch==2.9.0\n")
    _installed(monkeypatch, {"trl"})
    colab.install(tmp_path, dry_run=True)
    assert (tmp_path / ".colab-constraints.txt").read_text() == "trl==1.16.0\n"


def test_an_install_from_another_python_is_no_rerun_of_this_one(tmp_path, monkeypatch):
    """A kit kept on Drive, installed once by another Python: its marker does not skip this Python's install."""
    (tmp_path / "requirements.lock").write_text("trl==1.16.0\n")
    pip = []
    monkeypatch.setattr(colab.subprocess, "run", lambda cmd, check: pip.append(cmd))
    _installed(monkeypatch, {"stepdpo-lite", "trl", "ipywidgets"})
    here = sys.executable
    colab.install(tmp_path)
    colab.install(tmp_path)  # this Python's install: skipped
    monkeypatch.setattr(colab.sys, "executable", "/other/python")
    colab.install(tmp_path)
    assert [cmd[0] for cmd in pip] == [here, "/other/python"]


def test_an_absolute_runs_dir_is_kept_without_a_word_in_colab(tmp_path, monkeypatch):
    """The messages about Drive are for a relative RUNS_DIR: an absolute one is where the user put it, mounted or
    not."""
    lines = []
    monkeypatch.setattr(colab, "in_colab", lambda: True)
    for drive in (tmp_path / "none", tmp_path):
        monkeypatch.setattr(colab, "DRIVE_ROOT", str(drive))
        assert colab.resolve_runs_dir("/abs/runs", out=lines.append) == "/abs/runs" and lines == []


def test_setup_sets_the_allocator_first_and_prepares_the_profile_last(tmp_path, monkeypatch):
    """The install cell's last line: the allocator setting before anything imports torch, then the profile's local
    files and its machine check (profiles.prepare_profile); returns RUNS_DIR."""
    from stepdpo_lite.tutorial import profiles

    calls = []
    monkeypatch.setattr(colab, "use_expandable_segments", lambda: calls.append("allocator"))
    monkeypatch.setattr(colab, "quiet_notebook_output", lambda: calls.append("quiet"))
    monkeypatch.setattr(colab, "enable_widgets", lambda: calls.append("widgets"))
    monkeypatch.setattr(profiles, "prepare_profile", lambda profile, out=print: calls.append(("prepare", profile)))
    assert colab.setup("smoke", str(tmp_path)) == str(tmp_path)
    assert calls[0] == "allocator" and calls[-1] == ("prepare", "smoke") and len(calls) == 4


def test_sync_notebooks_refuses_a_notebook_without_an_install_cell_and_leaves_other_names_alone(tmp_path):
    """Only NN_*.ipynb are the kit's notebooks (a scratch notebook beside them is the user's); one of them with no
    second code cell is refused by name, not an IndexError."""
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["PROFILE = 'tiny'\n"],
            "execution_count": None, "outputs": []}
    scratch = json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    (tmp_path / "scratch.ipynb").write_text(scratch)
    name = tutorial.NOTEBOOKS[0]
    (tmp_path / name).write_text((tutorial.NOTEBOOK_DIR / name).read_text())
    assert colab.sync_notebooks(tmp_path) == [] and (tmp_path / "scratch.ipynb").read_text() == scratch
    (tmp_path / "99_mine.ipynb").write_text(scratch)
    with pytest.raises(ValueError, match="99_mine.ipynb: the first code cell must be the parameters cell, the second"):
        colab.sync_notebooks(tmp_path)
