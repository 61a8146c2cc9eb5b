"""Headless runner behind ``make tutorial``: executes the notebooks in order and collects metrics.

    python -m stepdpo_lite.tutorial --profile tiny [--runs-dir runs] [--only 01 02] [--set KEY=VALUE ...]

Each notebook runs in a fresh kernel (working directory: its own folder) with these parameters
injected after its ``parameters``-tagged cell, papermill style: ``PROFILE``, ``RUNS_DIR`` (absolute),
``RUN_DIR`` (``RUNS_DIR/PROFILE``), ``FIGURES_DIR`` (``RUN_DIR/figures``), then any ``--set`` values.
Executed notebooks land in ``runs/<profile>/executed/`` (also when a cell fails, with the outputs so
far), figures in ``runs/<profile>/figures/`` (the notebooks save them), metrics in
``runs/<profile>/metrics.json``; at the end a table of every metric in that file is printed.

A notebook run replaces what its last run wrote there, and starts from its first cell (notebook 04 then takes
the on-policy rounds saved in ``runs/<profile>/onpolicy_rounds/`` when its settings match).
Before it runs, its own figures leave ``metrics.json`` and the notebooks that read its outputs (``NOTEBOOK_READERS``)
and have figures there are marked stale (``tutorial.stale``), until they run again; the
``run`` section records what each notebook ran with (profile, seed, ``--set`` values, git commit, versions).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import difflib
import fnmatch
import html
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import nbformat
from tqdm.auto import tqdm
from tqdm.std import Bar

from ..atomic import write_atomic
from ..checks import list_of
from . import runs
from .profiles import PROFILES, get_profile, prepare_profile
from .tiny_models import missing_tiny_model_message

NOTEBOOK_DIR = runs.NOTEBOOK_DIR
NOTEBOOKS = [
    "01_data_prep.ipynb",
    "02_process_reward_model.ipynb",
    "03_outcome_reward_model.ipynb",
    "04_stepwise_dpo.ipynb",
    "05_step_reward_visualisation.ipynb",
    "06_evaluation.ipynb",
    "07_test_time_compute.ipynb",
]
KIT_ORDER = tuple(Path(name).stem for name in NOTEBOOKS)  # their stems, the order they run in and read each other
# The metrics.json sections each of them records (their runs.update_metrics cells): cleared before it runs
# (runs.start_notebook), so that one stopped part-way leaves none of its last run's figures beside what it replaced.
NOTEBOOK_SECTIONS = {
    "01_data_prep": ("data",),
    "02_process_reward_model": ("prm",),
    "03_outcome_reward_model": ("orm",),
    "04_stepwise_dpo": ("policy",),
    "05_step_reward_visualisation": ("visualisation",),
    "06_evaluation": ("best_of_n", "best_of_n_differences", "evaluation"),
    "07_test_time_compute": ("test_time", "test_time_differences"),
}
# The notebooks whose figures rest on each one's outputs, read directly or through another's (rerunning it makes them
# stale): each notebook's runs.require and runs.recorded calls name the notebook that made what they read (data/: 01;
# prm/ and, through reward_reports.prm_threshold, prm.first_error_threshold: 02; orm/, combined/: 03; policies/, the
# policy section: 04), checked against the notebooks by tests/test_runs.py. 05-07 save only figures.
_ALL_AFTER_02 = ("03_outcome_reward_model", "04_stepwise_dpo", "05_step_reward_visualisation", "06_evaluation",
                 "07_test_time_compute")
NOTEBOOK_READERS = {
    "01_data_prep": ("02_process_reward_model", *_ALL_AFTER_02),
    "02_process_reward_model": _ALL_AFTER_02,
    "03_outcome_reward_model": ("06_evaluation", "07_test_time_compute"),
    "04_stepwise_dpo": ("05_step_reward_visualisation", "06_evaluation"),
    "05_step_reward_visualisation": (),
    "06_evaluation": (),
    "07_test_time_compute": (),
}
# The packages whose versions the run section records (name in metrics.json: distribution)
RECORDED_VERSIONS = {"stepdpo_lite": "stepdpo-lite", "torch": "torch", "transformers": "transformers", "trl": "trl",
                     "peft": "peft"}
# What the runner injects into every notebook from --profile and --runs-dir: not for --set (see run_tutorial).
RUNNER_PARAMETERS = ("PROFILE", "RUNS_DIR", "RUN_DIR", "FIGURES_DIR")
# A pip-installed wheel holds the package only: NOTEBOOK_DIR is then a folder of site-packages that is not there
NOT_IN_A_CLONE = ("the notebooks and the tiny models (data/tiny-base, data/tiny-verifier) ship with the repository, "
                  "not with a pip-installed package: run from a clone (`pip install -e .` in it), or pass "
                  "--notebook-dir CLONE/notebooks and set $STEPDPO_TINY_BASE and $STEPDPO_TINY_REWARD_BASE to the "
                  "clone's data/tiny-base and data/tiny-verifier")


class NotebookError(RuntimeError):
    """A notebook failed: names the notebook, the cell and the error.

    ``cell_index`` is the 0-based index of the failing cell in the original notebook (markdown cells
    count; None when the kernel failed before any cell, or the injected parameters failed);
    ``first_line`` is its first non-blank source line; ``error`` is ``"ExceptionName: message"``.
    """

    def __init__(self, notebook: str, cell_index: int | None, first_line: str, error: str,
                 executed_path: str | None = None, where: str | None = None):
        self.notebook, self.cell_index, self.first_line, self.error = notebook, cell_index, first_line, error
        self.executed_path = executed_path
        where = where or (f"cell {cell_index + 1}" if cell_index is not None else "start-up")
        msg = f"{notebook} failed at {where}" + (f" (first line: {first_line!r})" if first_line else "")
        msg += f":\n    {error}"
        if executed_path:
            msg += f"\nThe executed notebook, with the outputs so far, is at {executed_path}"
        super().__init__(msg)


def _python_source(value) -> str:
    """``value`` as source the kernel can run: its repr, except that a float is written as a plain float (numpy's
    repr is ``np.float64(0.5)``) and a NaN or infinite one as ``float('inf')`` (repr's ``inf`` is no name there),
    also inside a list, tuple or dict."""
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # np.int64(1) is no name in the kernel
        value = value.item()
    if isinstance(value, float):
        return repr(float(value)) if math.isfinite(value) else f"float('{float(value)}')"
    if type(value) in (list, tuple):  # exact types: a subclass's repr (a namedtuple's) is kept as it is
        inner = ", ".join(map(_python_source, value)) + ("," if type(value) is tuple and len(value) == 1 else "")
        return f"[{inner}]" if type(value) is list else f"({inner})"
    if type(value) is dict:
        return "{" + ", ".join(f"{_python_source(k)}: {_python_source(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _parameter_source(parameters: dict) -> str:
    lines = ["# Parameters injected by stepdpo_lite.tutorial"]
    for key, value in parameters.items():
        if not str(key).isidentifier():
            raise ValueError(f"parameter name {key!r} is not a Python identifier")
        lines.append(f"{key} = {_python_source(value)}")
    return "\n".join(lines)


def _parameters_cells(path: str | os.PathLike) -> list[ast.Module]:
    """The syntax tree of each ``parameters``-tagged cell of a notebook, its IPython ``%``/``!`` lines skipped; a
    cell that is still not Python is a ValueError naming the notebook."""
    trees = []
    for cell in nbformat.read(str(path), 4).cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            lines = cell.source.splitlines()
            python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
            try:
                trees.append(ast.parse(python))
            except SyntaxError as err:
                raise ValueError(f"{Path(path).name}: its parameters cell is not Python at line {err.lineno}, so "
                                 "--set cannot tell which names it has") from None
    return trees


def notebook_parameters(path: str | os.PathLike) -> set[str]:
    """The names a notebook's ``parameters``-tagged cell assigns: what ``--set`` can change in it. IPython's
    ``%``/``!`` lines are skipped; a cell that is still not Python is a ValueError naming the notebook."""
    return {n.id for tree in _parameters_cells(path) for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _parameter_defaults(path: str | os.PathLike) -> dict:
    """The literal a notebook's parameters cell last assigns to each name (``SEED = 0``: 0); a name assigned no
    literal is left out."""
    values = {}
    for tree in _parameters_cells(path):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                with contextlib.suppress(ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    value = ast.literal_eval(node.value)
                    values.update({t.id: value for t in node.targets if isinstance(t, ast.Name)})
    return values


def _run_record(started: float, profile, seed, values: Mapping, provenance: Mapping) -> dict:
    """What ``run.<notebook>`` holds when a notebook starts (``started``: ``time.time()``: before the runner runs it;
    in Jupyter when its start cell ran, just before its first write); ``values``: how it was set (the runner's
    ``set``, a Jupyter run's ``parameters``)."""
    seed = seed if seed is None or type(seed) is int else _python_source(seed)  # JSON has no nan
    return {"started": _utc(started), "finished": None, "profile": profile, "seed": seed, **values, **provenance}


def _kit_notebook(notebook: str, caller: str) -> str:
    if notebook not in KIT_ORDER:
        raise ValueError(f"{caller}: notebook must be one of the kit's notebooks ({', '.join(KIT_ORDER)}), "
                         f"got {notebook!r}")
    return notebook


def notebook_started(run: str | os.PathLike, notebook: str, namespace: Mapping, out=print) -> None:
    """A notebook calls it just before its first write of an output of the run (a file under RUN_DIR, a section of
    ``metrics.json``; a plot's PNG is none: it clears no PNG), in the cell that writes it and after what that cell
    computes (``run`` its RUN_DIR, a folder; ``notebook`` its stem; ``namespace`` its ``globals()``): not in the setup
    cell, nor a plot cell, which a learner reruns alone (after a kernel restart, to see a plot again) and which, when it
    called it, dropped a finished notebook's figures and made the notebooks after it refuse. The lines above it check
    the inputs and write nothing of the run, so a notebook refused for a missing input, a NameError or a failed training
    clears nothing. In Jupyter it records what the runner records before it runs the notebook (``runs.start_notebook``):
    its figures leave ``run/metrics.json`` before any output changes (a run stopped part-way keeps none of them beside
    new outputs), the notebooks that read its outputs become stale (``tutorial.stale``), which ``out`` says, and
    ``run.<notebook>`` holds its profile, seed, ``"jupyter": true`` and, under ``parameters``, the value of every
    parameter (the names of ``notebook_parameters.SPECS``) in the kernel: not the runner's ``set`` (those that differ
    from the parameters cell), as the notebook file on disk is the learner's own edited copy, which Jupyter autosaves,
    so an edited value would read as the default. In a kernel the runner started (``runs.RUNNER_MARKER``) it records
    nothing: the runner does. Returns None (the setup cell keeps the start time: ``notebook_finished``)."""
    _kit_notebook(notebook, "notebook_started")
    if not os.environ.get(runs.RUNNER_MARKER):
        from .notebook_parameters import SPECS  # not at import: it imports the trainer
        runs.run_folder(run, "notebook_started")
        values = {name: _python_source(namespace[name]) for name in SPECS if name in namespace}
        before = set(runs.read_metrics(run).get("tutorial", {}).get("stale", []))
        record = _run_record(time.time(), namespace.get("PROFILE"), namespace.get("SEED"),
                             {"parameters": values, "jupyter": True}, _provenance())
        metrics = runs.start_notebook(run, notebook, NOTEBOOK_SECTIONS, KIT_ORDER, record, NOTEBOOK_READERS)
        stale = [stem for stem in metrics.get("tutorial", {}).get("stale", []) if stem not in before]
        if stale:
            out(f"{Path(run) / 'metrics.json'}: the figures of {', '.join(stale)} rest on the outputs this notebook "
                "rewrites, so they are listed under tutorial.stale until those notebooks run again, after this one")


def notebook_finished(run: str | os.PathLike, notebook: str, started: float, out=print) -> None:
    """A notebook's last cell calls it, with the ``time.perf_counter()`` its setup cell took (``notebook_start``):
    prints the seconds since the setup cell ran (the whole notebook when run from the top; less after a partial rerun,
    idle time included) and, in Jupyter, records the notebook as run through as the runner does
    (``runs.finish_notebook``: it leaves ``tutorial.stale`` unless it read a stale notebook's outputs), once per start
    that ``notebook_started`` recorded, and only when its figures (:data:`NOTEBOOK_SECTIONS`) are all in
    ``run/metrics.json`` (else it says so and records nothing, as for a run already recorded as finished, whose time
    it names). The seconds go under ``run.<notebook>.seconds_since_setup``, never in the runner's timing table
    (``tutorial.notebook_seconds``): they count the time the kernel sat idle. Returns None."""
    _kit_notebook(notebook, "notebook_finished")
    seconds = round(time.perf_counter() - started, 2)
    out(f"notebook {notebook[:2]}: {seconds:.0f} s since its setup cell ran")
    if os.environ.get(runs.RUNNER_MARKER):
        return
    metrics = runs.read_metrics(run)
    record = metrics.get("run", {}).get(notebook)
    missing = runs.missing_sections(metrics, NOTEBOOK_SECTIONS[notebook])
    again = "to record a new run, run all its cells again, from the top (Run > Run All Cells)"
    if isinstance(record, dict) and record.get("finished"):
        out(f"{notebook}: already recorded as finished at {record['finished']} (run.{notebook}); nothing new to "
            f"record: {again}")
    elif not isinstance(record, dict):
        out(f"{notebook}: not recorded as finished: {Path(run) / 'metrics.json'} holds no start of it "
            f"(run.{notebook}); {again}")
    elif missing:
        out(f"{notebook}: not recorded as finished: its figures ({', '.join(missing)}) are missing from "
            f"{Path(run) / 'metrics.json'}; run all its cells, in order (Run > Run All Cells)")
    else:
        metrics = runs.finish_notebook(run, notebook, None, KIT_ORDER, _utc(time.time()), NOTEBOOK_READERS,
                                       record={"seconds_since_setup": seconds})
        stale = metrics.get("tutorial", {}).get("stale", [])
        if notebook in stale:
            read = [stem for stem in stale if notebook in runs.read_by(stem, KIT_ORDER, NOTEBOOK_READERS)]
            out(f"{notebook} stays under tutorial.stale: it read outputs of stale notebooks ({', '.join(read)}); "
                "run them again in order, then this one")


def _kernel_config():
    """CurveZMQ-encrypted kernel sockets where jupyter_client and the kernel support them (recent
    ipykernel warns about plain TCP on every start); older stacks just ignore the setting.

    On POSIX the sockets are Unix domain sockets named after a fresh connection file, not TCP ports: jupyter_client
    picks a TCP port by binding port 0 and letting it go, and its cache of ports taken is per process, so two
    processes starting kernels at once (the test suite's two workers) could both pick one port and a kernel failed to
    start. A unique file name cannot clash."""
    import zmq  # zmq, traitlets and nbclient here: only running notebooks needs them
    from traitlets.config import Config

    cfg = Config()
    if zmq.has("curve"):
        cfg.KernelManager.transport_encryption = "auto"
    if os.name == "posix":
        # Short and absolute: a Unix socket's path is limited to 104 bytes on macOS (108 on Linux), whose temp folder
        # alone takes about 50, and the kernel runs in another folder. 48 random bits: no two kernels share a name.
        cfg.KernelManager.transport = "ipc"
        cfg.KernelManager.connection_file = os.path.join(tempfile.gettempdir(),
                                                         f"stepdpo-kernel-{uuid.uuid4().hex[:12]}.json")
    return cfg


def _ctrl_c_interrupts_the_cell(client, interrupted: list) -> None:
    """From the running cell on, Ctrl-C (and SIGTERM: a timeout, a closed terminal) interrupts that cell, as
    Jupyter's interrupt button does.

    The kernel runs in a session of its own (jupyter_client), so a terminal's Ctrl-C reaches only this process, where
    nbclient's own handler shuts the kernel down mid-reply: a ZMQ traceback from the kernel and an "AssertionError"
    for the user. Sent on to the kernel, it raises KeyboardInterrupt in the cell instead, which ends the notebook as
    a failing cell does, its outputs so far saved; ``interrupted`` records which signal came. A second signal stops
    at once (KeyboardInterrupt, or SystemExit for SIGTERM, here). Called from a cell-start hook, inside nbclient's
    event loop, whose handlers this replaces until nbclient removes them; outside the main thread
    (``run_side_by_side``'s jobs) a loop takes no signal handler and nothing changes.
    """
    def forward(name: str):
        if interrupted:
            raise KeyboardInterrupt if name == "Ctrl-C" else SystemExit(128 + signal.SIGTERM)
        interrupted.append(name)
        asyncio.ensure_future(client.km.interrupt_kernel())

    with contextlib.suppress(RuntimeError, NotImplementedError):  # not the main thread; Windows
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, forward, "Ctrl-C")
        loop.add_signal_handler(signal.SIGTERM, forward, "SIGTERM")


def _bars_as_they_ended(client) -> None:
    """Writes each tqdm bar's last state, from the widgets' saved state, into its text/plain fallback.

    In the runner's kernels tqdm.auto draws ipywidgets bars. Jupyter draws them from the saved state; static
    viewers (GitHub) show the text/plain the bar was displayed with, its first state: every bar read 0%. The
    fallback is drawn as tqdm draws the bar in a terminal, "loop: 100%|██████████| 5/5 [00:01<00:00, 4.9it/s]".
    """
    state = client.nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def model(ref: str) -> dict:
        return state.get(ref.removeprefix("IPY_MODEL_"), {})

    for output in (o for c in client.nb.cells for o in c.get("outputs", [])):
        box = model(output.get("data", {}).get("application/vnd.jupyter.widget-view+json", {}).get("model_id", ""))
        parts = [model(ref) for ref in box.get("state", {}).get("children", [])]
        names = [part.get("model_name", "") for part in parts]  # tqdm's bar: description, progress bar, numbers
        if box.get("model_name") != "HBoxModel" or len(names) != 3 or not names[1].endswith("ProgressModel") \
                or not names[0] == names[2] == "HTMLModel":
            continue
        left, right = (html.unescape(parts[i]["state"].get("value", "")).replace("\u2007", " ") for i in (0, 2))
        progress = parts[1]["state"]
        if model(box["state"].get("layout", "")).get("state", {}).get("visibility") == "hidden":
            output.data["text/plain"] = ""  # closed with leave=False: hidden in Jupyter, erased in a terminal
        elif left.endswith("%"):  # the percentage tqdm shows when it knows the total
            fraction = min(1, max(0, progress.get("value", 0) / progress["max"])) if progress.get("max") else 0
            output.data["text/plain"] = f"{left}|{Bar(fraction, 10)}|{right}"
        else:  # no total, no fraction to draw: the progress widget is a full bar standing for "running"
            output.data["text/plain"] = " ".join(text.strip() for text in (left, right) if text.strip())


def execute_notebook(path: str | os.PathLike, parameters: dict | None = None,
                     output_path: str | os.PathLike | None = None, timeout: int = 1200,
                     cwd: str | os.PathLike | None = None, kernel_name: str = "python3", progress=None):
    """Execute a notebook with ``parameters`` injected after its ``parameters``-tagged cell (papermill style).

    Without such a cell the parameters go first; a previously injected cell is replaced. Returns the
    executed notebook and writes it (atomically) to ``output_path`` when given, also when a cell fails.
    A failing cell raises :class:`NotebookError` naming the notebook, the cell (its number among the notebook's
    code cells, as ``progress`` counts them, and its index in the notebook), its first line and the error.
    ``progress`` (e.g. a tqdm bar) gets ``set_postfix_str(first line)`` before and ``update()`` after every code
    cell of the notebook (not the injected parameters). Ctrl-C or SIGTERM interrupts the running cell and stops the
    notebook there, as a failing cell does (the error reads "KeyboardInterrupt: stopped by Ctrl-C" or "... by
    SIGTERM"); a second one stops at once.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    injected = None
    if parameters:
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
        injected = tagged[0] + 1 if tagged else 0
        nb.cells.insert(injected, nbformat.v4.new_code_cell(_parameter_source(parameters),
                                                            metadata={"tags": ["injected-parameters"]}))
    current, interrupted = {"index": None}, []

    def on_start(cell, cell_index):
        current["index"] = cell_index
        _ctrl_c_interrupts_the_cell(client, interrupted)
        if progress is not None and cell.cell_type == "code" and cell.source.strip():
            line = next(ln for ln in cell.source.splitlines() if ln.strip())
            progress.set_postfix_str(line.strip()[:48])

    def on_executed(cell, cell_index, execute_reply):  # the bar counts the notebook's code cells, as its errors do
        if progress is not None and execute_reply.get("content", {}).get("status") == "ok" and cell_index != injected:
            progress.update()

    def on_error(cell, cell_index, execute_reply):
        """A failed notebook's kernel (a failing or interrupted cell) has nothing left to do: it is killed, not asked
        to shut down. ipykernel's graceful shutdown races its own threads on a busy machine, each race a ZMQError
        traceback on stderr: after a failing cell the shell thread posts its main thread a "stop aborting" message
        and closed that socket under its reader; the control thread flushed stderr into the IOPub pipe the shutdown
        had closed. A kernel_info round trip first (until 2026-12-06) left the second race open."""
        client.shutdown_kernel = "immediate"

    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, on_cell_start=on_start,
                            on_cell_executed=on_executed, on_cell_error=on_error, config=_kernel_config(),
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    try:  # the kernel's notebook_started / notebook_finished leave the records to the runner
        client.execute(env={**os.environ, runs.RUNNER_MARKER: "1"})
    except Exception as exc:  # CellExecutionError, CellTimeoutError, DeadKernelError, kernel start-up errors
        client.set_widgets_metadata()  # nbclient saves the widgets' state only after the last cell ran
        error = f"{exc.ename}: {exc.evalue}" if isinstance(exc, CellExecutionError) else f"{type(exc).__name__}: {exc}"
        if interrupted and getattr(exc, "ename", None) == "KeyboardInterrupt":
            error = f"KeyboardInterrupt: stopped by {interrupted[0]}"
        i = current["index"]
        saved = str(output_path) if output_path else None  # written below, before the error reaches the caller
        if i is None:
            raise NotebookError(path.name, None, "", error, saved, where="kernel start-up") from exc
        lines = [ln for ln in nb.cells[i].source.splitlines() if ln.strip()]
        if i == injected:
            raise NotebookError(path.name, None, lines[1] if len(lines) > 1 else "", error, saved,
                                where="the injected parameters cell") from exc
        original = i - (injected is not None and i > injected)
        cells = [c for j, c in enumerate(nb.cells) if j != injected]
        code = [j for j, c in enumerate(cells) if c.cell_type == "code" and c.source.strip()]  # as the bar counts
        where = f"cell {original + 1} of {len(cells)}"
        if original in code:  # markdown cells count in the notebook's own index, not in the progress bar
            where = f"code cell {code.index(original) + 1} of {len(code)} ({where} in the notebook)"
        raise NotebookError(path.name, original, lines[0] if lines else "", error, saved, where=where) from exc
    finally:
        _bars_as_they_ended(client)
        if output_path:
            write_atomic(output_path, lambda tmp: nbformat.write(nb, tmp))
    return nb


def resolve_notebooks(notebooks=None, notebook_dir: str | os.PathLike | None = None) -> list[Path]:
    """Paths of ``notebooks`` (names, number prefixes like ``"02"``, or paths; default :data:`NOTEBOOKS`).

    Raises ``FileNotFoundError`` listing every one that is missing; ``ValueError`` for one str (it was read a
    character at a time: ``"12"`` ran 01 and 02) or an empty list (nothing to run).
    """
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    names = NOTEBOOKS if notebooks is None else list_of(notebooks, "resolve_notebooks: notebooks", "notebook names")
    if not names:  # run_tutorial then ran nothing and failed on its table (UnboundLocalError)
        raise ValueError("resolve_notebooks: notebooks is empty; name at least one, or pass None for all of them")
    found, missing = [], []
    for name in names:
        name = f"{int(name):02d}" if str(name).isdigit() else str(name)  # --only 2 means 02_…
        candidates = [Path(name), folder / name, folder / f"{name}.ipynb"]
        match = next((p for p in candidates if p.is_file()), None)
        if match is None and folder.is_dir():
            prefixed = sorted(p for p in folder.glob("*.ipynb") if p.name.split("_")[0] == name)
            kit = [p for p in prefixed if p.name in NOTEBOOKS]  # a Jupyter "-Copy1" beside the kit's own
            if len(prefixed) > 1 and len(kit) != 1:
                raise FileNotFoundError(f"notebook {name!r} is ambiguous in {folder}: "
                                        f"{', '.join(p.name for p in prefixed)}; give the file name")
            match = kit[0] if len(prefixed) > 1 else prefixed[0] if prefixed else None
        (found if match else missing).append(match or name)
    if missing:
        held = sorted(p.stem for p in folder.glob("*.ipynb")) if folder.is_dir() else []
        hint = (f": {NOT_IN_A_CLONE}" if not folder.is_dir() and folder == NOTEBOOK_DIR
                else f" (it holds {', '.join(held)})" if held else f" ({folder} is a file, not a folder)"
                if folder.is_file() else f" (no such folder: {folder})" if not folder.exists() else "")
        raise FileNotFoundError(f"missing notebook(s) in {folder}: {', '.join(map(str, missing))}{hint}")
    return found


def flatten_metrics(metrics: dict, prefix: str = "") -> dict:
    """``{"prm": {"step_auroc": 0.8}}`` -> ``{"prm.step_auroc": 0.8}``."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "."))
        else:
            flat[name] = value
    return flat


def _natural_key(name: str) -> list:
    """Sort key that orders digit runs as numbers: ``best_of_n.2`` before ``best_of_n.16``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def format_metrics_table(metrics: dict, only: Sequence[str] | None = None) -> str:
    """A two-column text table of the (flattened) metrics, sorted with numbers as numbers. ``only``: glob
    patterns of the names to keep (``"policy.*.accuracy"``). A list longer than a line is shown by its length."""
    flat = flatten_metrics(metrics)
    if only is not None:  # one str was read a character at a time: its "*" kept every metric, else none was kept
        only = list_of(only, "format_metrics_table: only", "glob patterns")
        flat = {k: v for k, v in flat.items() if any(fnmatch.fnmatchcase(k, pattern) for pattern in only)}
    if not flat:
        return "(no metrics recorded)"

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        text = str(v)
        return f"[{len(v)} entries]" if isinstance(v, list) and len(text) > 60 else text

    width = max(len(k) for k in flat)
    rows = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    rows += [f"{k:<{width}}  {fmt(flat[k])}" for k in sorted(flat, key=_natural_key)]
    return "\n".join(rows)


@contextlib.contextmanager
def _ticking(bar, interval: float | None = None):
    """Refresh ``bar`` while a long cell runs, so its elapsed time keeps counting; close it at the end."""
    stop = threading.Event()
    interval = interval or (1.0 if getattr(sys.stderr, "isatty", lambda: False)() else 30.0)

    def tick():
        while not stop.wait(interval):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield bar
        bar.set_postfix_str("", refresh=False)  # done; after a failure the failing cell's line stays shown
    finally:
        stop.set()
        thread.join()
        bar.close()


def run_tutorial(profile: str = "tiny", runs_dir: str | os.PathLike = "runs", notebooks=None, parameters=None,
                 notebook_dir: str | os.PathLike | None = None, timeout: int | None = None, progress: bool = True,
                 out=None) -> dict:
    """Execute the notebooks in order, headless; stop at the first failure (:class:`NotebookError`).

    Records each notebook's seconds under ``tutorial.notebook_seconds`` and their sum, the wall time of
    the whole tutorial, under ``tutorial.wall_seconds`` in ``runs/<profile>/metrics.json`` (re-running
    one notebook with ``notebooks=["02"]`` updates its share), prints the metrics table to ``out``
    (stdout) and returns the metrics. A run that includes notebook 01 starts a fresh ``metrics.json``; once 01 has
    succeeded the old one becomes ``metrics.previous.json`` (see ``_set_aside``: a partial one does not replace a
    complete one), and if 01 fails the old one is put back. A run of later notebooks only updates theirs: before a
    notebook runs, its own figures (:data:`NOTEBOOK_SECTIONS`; none for a ``notebook_dir`` of one's own) and seconds
    leave the table and what it runs with is recorded under ``run.<notebook>`` (``runs.start_notebook``), so that
    one stopped part-way, even by kill -9, leaves the table partial, never holding its last run's figures beside the
    outputs it replaced; the notebooks that read its outputs (:data:`NOTEBOOK_READERS`; every later one for a
    ``notebook_dir`` of one's own) and have figures are then listed under ``tutorial.stale`` until they run again
    (``runs.finish_notebook``), and the end of the run names them, and any notebook that did not finish, with the
    command that reruns them. The
    table printed leaves out the ``run`` section. Each name in
    ``parameters`` must be a parameter of one of the notebooks run (``notebook_parameters``) other than
    :data:`RUNNER_PARAMETERS` (set from ``profile`` and ``runs_dir``), and the kit's own notebooks (no
    ``notebook_dir``) take only its profiles and run in :data:`NOTEBOOKS` order, whatever order they are given in.
    ``timeout``: seconds allowed per cell, or None (the default) for no limit.
    """
    out = out or sys.stdout
    # No limit by default: on a GPU profile notebook 04's on-policy cell runs for hours (onpolicy.
    # round_generation_seconds), and a limit would stop the run there. nbclient reads 0 or less as no limit too:
    # refused, as a limit asked for that would silently not be one.
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):  # True: one second a cell
        raise ValueError(f"timeout={timeout}: give the seconds allowed per cell (> 0), or None for no limit (on the "
                         "command line: leave --timeout out)")
    paths = resolve_notebooks(notebooks, notebook_dir)
    if profile == "tiny":
        _require_tiny_models(profile)
    if notebook_dir is None:  # the kit's notebooks know only its profiles; else runs/<typo>/ would be made first
        get_profile(profile)
        # Each reads what the earlier ones wrote, so `--only 03 01` runs 01 first (a notebook_dir of one's own
        # keeps the order given: its notebooks need not follow the kit's names).
        paths.sort(key=lambda p: NOTEBOOKS.index(p.name) if p.name in NOTEBOOKS else len(NOTEBOOKS))
    if parameters:
        runner = sorted(set(parameters) & set(RUNNER_PARAMETERS))
        if runner:  # overridden, they would split the run: PROFILE=t4-16gb would run that profile into runs/tiny
            raise ValueError(f"{runner[0]} cannot be set as a parameter: the runner sets "
                             f"{', '.join(RUNNER_PARAMETERS)} from the profile and the runs folder; use --profile / "
                             "--runs-dir (run_tutorial's profile=, runs_dir=)")
        known = set().union(*(notebook_parameters(p) for p in paths)) - set(RUNNER_PARAMETERS)
        unknown = sorted(set(parameters) - known)
        if unknown:  # injected anyway, a misspelled name would change nothing, without a word
            close = difflib.get_close_matches(unknown[0], known, n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"no notebook run here ({', '.join(p.stem for p in paths)}) has a parameter "
                             f"{unknown[0]}{guess}; theirs: {', '.join(sorted(known))}")
        if notebook_dir is None:  # the kit's notebooks: each value checked now, as their setup cells check it, not
            # when the one notebook that has it starts (N_CANDIDATES="abc": refused by 06, once 01-05 had run: hours
            # on a GPU). Imported here, not at the top: it imports the trainer (torch, TRL); the runner needs neither.
            from .notebook_parameters import check
            with warnings.catch_warnings():  # TEMPERATURE = 0 warns: the notebook gives that warning
                warnings.simplefilter("ignore")
                check(parameters)
    if profile in PROFILES:  # the smoke base is built here (seconds), not inside notebook 01; a profile refused on
        prepare_profile(profile, out=lambda line: print(line, file=out))  # this machine leaves no runs/<profile>/
    run = runs.run_dir(profile, runs_dir).resolve()
    executed, figures = run / "executed", run / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    table, waiting = run / "metrics.json", run / ".metrics.before-01.json"
    if waiting.exists():  # left by a run killed while its 01 ran (an error or ^C puts it back at once): as 01 did
        waiting.replace(table)  # not finish, the old data and this table still go together
        print(f"{table} restored: a run killed before its notebook 01 finished had set it aside", file=out)
    params = {"PROFILE": profile, "RUNS_DIR": str(run.parent), "RUN_DIR": str(run), "FIGURES_DIR": str(figures)}
    params.update(parameters or {})
    # A run from 01 remakes every figure, so 01 starts a fresh table, not mixed into the old one. The old one waits
    # beside it until 01 has succeeded: a 01 that fails leaves the old data, prm/ and policies/ it describes.
    if any(p.name.startswith("01_") for p in paths) and table.exists():
        table.replace(waiting)
    every = set(KIT_ORDER) if notebook_dir is None else {p.stem for p in Path(notebook_dir).glob("*.ipynb")}
    # The kit's order; a folder of one's own: by name, each notebook taken to read the outputs of those before it
    order = list(KIT_ORDER) if notebook_dir is None else sorted(every)
    sections = NOTEBOOK_SECTIONS if notebook_dir is None else {}
    readers = NOTEBOOK_READERS if notebook_dir is None else None
    running, rewrote = None, {}  # the notebook under way, if a failure stops it; what each one run rewrote
    try:
        for path in paths:
            n_cells = sum(c.cell_type == "code" and bool(c.source.strip()) for c in nbformat.read(str(path), 4).cells)
            bar = tqdm(total=n_cells, desc=path.stem, unit="cell", disable=not progress, leave=True,
                       bar_format="{desc}: {n_fmt}/{total_fmt} cells [{elapsed}]{postfix}")
            own = notebook_parameters(path)
            set_here = {k: v for k, v in (parameters or {}).items() if k in own}  # --set applies to all it can
            seed = set_here["SEED"] if "SEED" in set_here else _parameter_defaults(path).get("SEED")
            started = time.time()
            # each notebook's own: its kernel imports the code as it is now, which may have changed since the run began
            runs.start_notebook(run, path.stem, sections, order, _run_record(
                started, profile, seed, {"set": {k: _python_source(v) for k, v in set_here.items()}}, _provenance()),
                readers)
            running = path.stem  # from here its figures from before are gone from the table
            start = time.perf_counter()
            with _ticking(bar):
                execute_notebook(path, params, executed / path.name, timeout=timeout, progress=bar)
            if path.name.startswith("01_") and waiting.exists():
                _set_aside(waiting, run / "metrics.previous.json", every, out)
            seconds = round(time.perf_counter() - start, 2)
            metrics = runs.finish_notebook(run, path.stem, seconds, order, _utc(time.time()), readers)
            rewrote[path.stem] = _rewritten_since(run, started)
            running = None
    except BaseException:
        if waiting.exists():  # 01 did not finish: the figures this run recorded so far go with it
            waiting.replace(table)
            print(f"{table}: the table from before this run put back over this run's partial one, as its notebook "
                  "01 did not finish", file=out)
        elif running is not None:
            rewrote[running] = _rewritten_since(run, started)
            print(f"{table}: {running} did not finish; its figures from before were cleared when it started, so "
                  "those there are this run's, and the rest are missing until it runs through"
                  + _listed("; it had already rewritten", rewrote[running]), file=out)
            _say_stale(run, rewrote, profile, runs_dir, notebook_dir, order, out)
        raise
    print(f"\nExecuted notebooks: {executed}\nFigures: {figures}\nMetrics ({run / 'metrics.json'}):\n", file=out)
    # The run section (times, commit, versions) says how the figures were made: it is not one of them
    print(format_metrics_table({k: v for k, v in metrics.items() if k != "run"}), file=out)
    _say_stale(run, rewrote, profile, runs_dir, notebook_dir, order, out)
    return metrics


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _provenance() -> dict:
    """What the run section records of the code that ran: the git commit of the clone the kit runs from and whether
    it had uncommitted changes (both None outside a clone, or without git), and the versions of the packages of
    :data:`RECORDED_VERSIONS` (None: not installed) and of Python."""
    versions = {"python": platform.python_version()}
    for name, distribution in RECORDED_VERSIONS.items():
        try:
            versions[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    commit = changed = None
    clone = Path(__file__).resolve().parents[2]
    if (clone / ".git").exists() and shutil.which("git"):  # not a git folder above a site-packages
        def git(*args) -> str:
            return subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True, check=True,
                                  timeout=60).stdout.strip()
        try:
            commit = git("rev-parse", "HEAD")
            changed = bool(git("status", "--porcelain", "--untracked-files=no"))
        except (OSError, subprocess.SubprocessError):
            commit = changed = None
    return {"commit": commit, "uncommitted_changes": changed, "versions": versions}


def _rewritten_since(run: Path, started: float) -> list[str]:
    """The entries of the run folder written since ``started`` (a ``time.time()``; a second's slack for coarse file
    times), other than the runner's own files and hidden ones: what a notebook has replaced there."""
    own = {"executed", "metrics.json", "metrics.previous.json"}
    with contextlib.suppress(OSError):
        return sorted(p.name + "/" * p.is_dir() for p in run.iterdir()
                      if p.name not in own and not p.name.startswith(".") and p.stat().st_mtime >= started - 1)
    return []


def _listed(what: str, names: Sequence[str]) -> str:
    return f"{what} {', '.join(names)}" if names else ""


def _say_stale(run: Path, rewrote: Mapping[str, Sequence[str]], profile: str, runs_dir, notebook_dir,
               order: Sequence[str], out) -> None:
    """After a run: which notebooks did not finish (their ``run.<notebook>`` has no finished time: their figures,
    cleared when they started, are missing), which have figures in metrics.json (``tutorial.stale``) made from
    outputs since rewritten (``rewrote``: notebook -> what it rewrote), and the command that runs all of them again
    in ``order``, the unfinished ones included (the stale ones may read their figures)."""
    try:
        metrics = runs.read_metrics(run)
        stale = metrics.get("tutorial", {}).get("stale") or []
        unfinished = [stem for stem, record in metrics.get("run", {}).items()
                      if isinstance(record, dict) and "finished" in record and record["finished"] is None]
    except (ValueError, OSError, AttributeError):  # an unreadable table: the error that stopped the run says more
        return
    if not stale and not unfinished:
        return
    rerun = runs.in_order({*stale, *unfinished}, order)
    names = [stem.split("_")[0] if notebook_dir is None else stem for stem in rerun]
    command = ["stepdpo-lite", "--profile", profile, "--runs-dir", str(runs_dir),
               *(["--notebook-dir", str(notebook_dir)] if notebook_dir is not None else []), "--only", *names]
    if unfinished:
        print(f"\nNot finished: {', '.join(unfinished)}; their figures are missing from {run / 'metrics.json'} "
              "until they run through.", file=out)
    if stale:
        ran = "; ".join(f"{stem}{_listed(' rewrote', entries)}" for stem, entries in rewrote.items())
        print(f"\nStale: {', '.join(stale)}. These read outputs rewritten after they ran, by this run or an earlier "
              f"one (this run: {ran}), so their figures in {run / 'metrics.json'} describe older outputs "
              "(tutorial.stale lists them until they run again).", file=out)
    print(f"Rerun them (with your --set values where they apply):\n    {shlex.join(command)}", file=out)


def _require_tiny_models(profile: str) -> None:
    """A FileNotFoundError, saying what to do, when the profile's base or reward base folder is not there: the tiny
    models ship in the repository's data/, not in a wheel, and notebook 01 failed in its eighth cell, on load_model's
    "no such folder" in site-packages."""
    p = get_profile(profile)
    models = ((p.model_name, "STEPDPO_TINY_BASE"), (p.reward_model_name, "STEPDPO_TINY_REWARD_BASE"))
    missing = [missing_tiny_model_message(path, variable) for path, variable in models
               if not (Path(path) / "config.json").is_file()]
    if missing:  # both at once: a user who sets one variable should not meet the other only on the next run
        raise FileNotFoundError(f"the {profile} profile's models: {'; and '.join(missing)}")


def _set_aside(old: Path, previous: Path, notebooks: set[str], out) -> None:
    """Notebook 01 has remade the data: ``old``, the table from before, becomes ``previous``, unless ``old`` is
    partial and ``previous`` is not. A run records every notebook's seconds as it finishes it, so a table that lacks
    some of ``notebooks`` is from a run that stopped early (or one not JSON), and one with stale notebooks
    (``tutorial.stale``) mixes runs: over a complete ``previous`` it would lose the last complete table, so it is
    dropped instead, which is said on ``out``."""
    def complete(path: Path) -> bool:
        try:
            flat = flatten_metrics(json.loads(path.read_text()))
        except (OSError, ValueError, AttributeError):  # missing; not JSON (UnicodeDecodeError too); not a dict
            return False
        return all(f"tutorial.notebook_seconds.{name}" in flat for name in notebooks) and not flat.get("tutorial.stale")

    if complete(old) or not complete(previous):
        old.replace(previous)
        print(f"previous metrics moved to {previous}", file=out)
    else:
        old.unlink()
        print(f"the previous metrics.json, from a run that stopped early or left notebooks stale, is dropped: "
              f"{previous} keeps the last "
              "complete table", file=out)


def run_on_copy(run: str | os.PathLike, copy: str | os.PathLike, notebooks: Sequence[str], sets: Sequence[str] = (),
                profile: str = "tiny", threads: int | None = None) -> dict:
    """``notebooks`` (``--only``'s names) with ``sets`` (``--set``'s ``"KEY=VALUE"`` items) run headless by
    ``python -m stepdpo_lite.tutorial``, in a process of their own, on a copy of the run folder ``run`` made at
    ``copy/<profile>``: ``run`` is not touched, so what its other notebooks read stays as it was (a notebook 01 with
    other settings would remake every later notebook's data). Its executed notebooks and checkpoints are not
    copied. ``threads``: the process's ``OMP_NUM_THREADS``, one each when several run side by side. Returns the
    copy's metrics; a run that fails raises ``RuntimeError`` with the end of its output.
    ``scripts/seed_spread.py`` (notebook 04 per seed) and ``scripts/exercise_runs.py`` run their variants so."""
    copy = Path(copy)
    shutil.copytree(run, copy / profile, ignore=shutil.ignore_patterns("executed", "checkpoints"))
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    cmd = [sys.executable, "-m", "stepdpo_lite.tutorial", "--runs-dir", str(copy), "--profile", profile,
           "--no-progress", "--only", *notebooks, *(["--set", *sets] if sets else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return runs.read_metrics(copy / profile)


def run_side_by_side(jobs: Mapping[str, Callable[[Path, int | None], object]], parallel: int = 1,
                     desc: str = "runs") -> dict[str, tuple[object, float]]:
    """Each job of ``jobs`` (name -> ``job(scratch, threads)``, e.g. a ``run_on_copy`` of one variant), ``parallel``
    at a time: ``scratch`` a temporary folder they share (removed after), ``threads`` one each when several run at
    once (else None). A bar over the jobs, and a line ``name: N s`` as each finishes (their own output is captured,
    and a run takes minutes). Returns name -> ``(its result, its seconds)``, in ``jobs``' order.
    ``scripts/seed_spread.py`` and ``scripts/exercise_runs.py`` run their variants so."""
    def timed(job):
        start = time.perf_counter()
        return job(Path(scratch), threads), time.perf_counter() - start

    done = {}
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(parallel) as pool:
        threads = 1 if parallel > 1 else None
        running = {pool.submit(timed, job): name for name, job in jobs.items()}
        for finished in tqdm(as_completed(running), total=len(running), desc=desc, unit="run"):
            name = running[finished]
            done[name] = finished.result()
            tqdm.write(f"{name}: {done[name][1]:.0f} s")
            sys.stdout.flush()  # tqdm.write does not: a log file got the lines only at the end
    return {name: done[name] for name in jobs}


# Not Python literals, but how "no limit" is written (notebook 01: MC_BUDGET_MINUTES = float("inf")).
_NON_FINITE = re.compile(r"[+-]?(inf|infinity|nan)", re.IGNORECASE)
_FLOAT_CALL = re.compile(r"([+-]?)float\(\s*(['\"])([^'\"]*)\2\s*\)")
# Digits Python does not read as a number (07, 1__0): taken as text, they would reach the notebook as a str.
_NUMBER_LIKE = re.compile(r"[+-]?[\d_]*\.?[\d_]*(e[+-]?[\d_]+)?", re.IGNORECASE)


def _in_parentheses(text: str) -> bool:
    """Is ``text`` one parenthesised literal, ``(1, 2)``, and not ``(1), (2)``: its first bracket closes at its end?"""
    if text == "()":
        return True
    try:
        ast.literal_eval(text[1:-1] if text.startswith("(") and text.endswith(")") else "(")
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _parse_set(items) -> dict:
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, text = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--set expects KEY=VALUE with KEY a Python name, got {item!r}")
        if not text:  # an unset shell variable: as '' a notebook's `N or default` would take its default, silently
            raise ValueError(f"--set {key}: no value (an unset shell variable?): write one, or '' for an empty string")
        call = _FLOAT_CALL.fullmatch(text)
        if call or _NON_FINITE.fullmatch(text):
            try:
                number = float(call.group(3) if call else text)
            except ValueError:
                raise ValueError(f"--set {key}: float() cannot read {call.group(3)!r} in {text}") from None
            params[key] = -number if call and call.group(1) == "-" else number
            continue
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
            # TypeError: an unhashable key ({[1]: 2}); MemoryError, RecursionError: a literal nested too deep
            if any(c.isdigit() for c in text) and _NUMBER_LIKE.fullmatch(text):
                raise ValueError(f"--set {key}={text}: not a number Python reads (a leading zero or a doubled "
                                 f"_): write it as in Python (7, not 07), or quote it for text ({key}=\"'{text}'\")"
                                 ) from None
            if text.startswith(("[", "{", "(", "'", '"')):
                raise ValueError(f"--set {key}={text}: not a Python literal ({type(err).__name__}: {err})") from None
            if text.lower() in ("true", "false", "none", "null", "yes", "no"):  # 'false' as text would be true
                raise ValueError(f"--set {key}={text}: write True, False or None (or quote it for text: "
                                 f"{key}=\"'{text}'\")") from None
            if re.fullmatch(r"[\d.+\-*/% ()]+|[\w.]+\(.*\)", text):  # arithmetic (1/10, 2*100) or a call (float(30))
                raise ValueError(f"--set {key}={text}: an expression, not a value: write its value (0.1, not 1/10), "
                                 f"or quote it for text ({key}=\"'{text}'\")") from None
            params[key] = text  # a bare string, without the blanks around it
            continue
        if type(parsed) is tuple and not _in_parentheses(text):
            # N=1,000 (a thousands separator) or BETA=0,5 (a decimal comma) would reach the notebook as (1, 0), (0, 5)
            brackets = f"a tuple or list in brackets: ({text}) or [{text}]"
            if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text):
                raise ValueError(f"--set {key}={text}: a number with a thousands separator reads as the tuple "
                                 f"{parsed!r}: write {text.replace(',', '')} or {text.replace(',', '_')}, "
                                 f"or {brackets}")
            decimal = f"a decimal with a point ({text.replace(',', '.')}), " if re.fullmatch(r"-?\d+,\d+", text) else ""
            raise ValueError(f"--set {key}={text}: a comma outside brackets makes the tuple {parsed!r}: write "
                             f"{decimal}{brackets}")
        params[key] = parsed
    return params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stepdpo-lite", description="Run the stepdpo-lite notebooks headless, "
                                     "in order, and print the metrics they record. An existing runs/<profile>/ is "
                                     "reused: each notebook run overwrites what its last run wrote there (its data or "
                                     "models, figures, executed notebook and its figures in metrics.json), and "
                                     "starts from its first cell: a notebook stopped part-way is run again from the "
                                     "start (notebook 04 then takes the on-policy rounds that finished, saved in "
                                     "runs/<profile>/onpolicy_rounds/, when its settings, PRM and start policy are "
                                     "the same: delete that folder to train them again). Ctrl-C stops the running "
                                     "cell (the notebook's outputs so far are saved in runs/<profile>/executed/); a "
                                     "second Ctrl-C stops at once.")
    parser.add_argument("--profile", default="tiny", help="model/data profile passed to every notebook (default tiny)")
    parser.add_argument("--runs-dir", default="runs", help="where runs/<profile>/ lives (default ./runs)")
    parser.add_argument("--only", nargs="+", metavar="NB", help="run only these notebooks (e.g. 01 02, or file "
                        "names). The figures of the notebooks not run that read what these rewrite (03 to 07 read "
                        "02's PRM; 05, 06 and 07 write only figures) then describe the older outputs: metrics.json "
                        "lists them under tutorial.stale "
                        "until they run again, and the run ends with the command that reruns them")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override a notebook parameter: VALUE a Python literal (16, 0.5, None, [1, 2], "
                        "(1, 2), 'text'; a tuple in brackets), inf, -inf, nan or float('inf'); else a bare word is a "
                        "string, and a number Python does not read (07) an error; the kit's notebooks' parameters "
                        "are checked before any notebook runs")
    absent = "" if NOTEBOOK_DIR.is_dir() else f"; not there: {NOT_IN_A_CLONE}"
    parser.add_argument("--notebook-dir", default=None,
                        help=f"folder of the notebooks (default {NOTEBOOK_DIR}{absent})")
    parser.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell (default: no limit; "
                        "on a GPU profile notebook 04's on-policy cell runs for hours)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:  # a file on its path was mkdir's traceback; a --set that does not parse is a usage error (exit 2) too
        runs.check_folder_path(Path(args.runs_dir) / args.profile, f"--runs-dir {args.runs_dir}")
        params = _parse_set(args.set)
    except ValueError as err:
        parser.error(str(err))
    try:
        if args.only and len({p.resolve() for p in resolve_notebooks(args.only, args.notebook_dir)}) < len(args.only):
            parser.error(f"--only: each notebook once, got {' '.join(args.only)}")  # it ran twice
        run_tutorial(args.profile, args.runs_dir, args.only, params, args.notebook_dir, args.timeout,
                     progress=not args.no_progress)
    except (NotebookError, FileNotFoundError, ValueError) as exc:
        print(f"\nstepdpo-lite tutorial stopped: {exc}", file=sys.stderr)
        stopped = {"KeyboardInterrupt: stopped by Ctrl-C": 130, "KeyboardInterrupt: stopped by SIGTERM": 143}
        return stopped.get(getattr(exc, "error", None), 1)  # a shell's codes for a run stopped by the signal
    except KeyboardInterrupt:  # a second Ctrl-C (the first stops the running cell: NotebookError)
        print("\nstepdpo-lite tutorial stopped by Ctrl-C", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
