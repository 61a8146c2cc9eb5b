"""Where the notebooks keep what they make: ``runs/<profile>/``, written atomically (``stepdpo_lite.atomic``).

Each notebook reads what the previous ones wrote and merges its own figures into ``metrics.json``
(``update_metrics``; its ``replace`` replaces a section whole).
Every write goes to a temporary name first and is then renamed, so a crash leaves the previous
good file (or folder) in place, never a half-written one. ``first_rows`` trims what a notebook reads back to its
row-count knobs (``N_TRAIN_ROWS``, ``N_EVAL_ROWS``).

The runner (``notebooks.run_tutorial``) keeps its own records there with ``start_notebook`` and ``finish_notebook``:
each notebook's seconds (``tutorial``), which notebooks' figures describe outputs rewritten since
(``tutorial.stale``), and what each notebook ran with (``run``). A notebook run in Jupyter keeps the same records
itself (``notebooks.notebook_started`` and ``notebook_finished``), except in a kernel the runner started:
``RUNNER_MARKER`` names the environment variable that ``notebooks.execute_notebook`` sets there.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..atomic import write_json_atomic
from ..checks import list_of, positive_int


# the clone's notebooks/ (here, not in the runner, notebooks.py: colab reads it, and keeps its imports light, while
# the runner loads nbformat, tqdm and the profiles)
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
RUNNER_MARKER = "STEPDPO_RUNNER"  # set in the kernels notebooks.execute_notebook starts: the runner keeps the records


def run_dir(profile: str = "tiny", root: str | os.PathLike = "runs") -> Path:
    """``root/<profile>``, created when missing. ``profile`` is one folder's name: "" (or ".") was ``root`` itself,
    where every profile's figures would mix, and "a/b" or ".." a folder elsewhere."""
    if not isinstance(profile, str) or profile in ("", ".", "..") or Path(profile).name != profile:
        raise ValueError(f"run_dir: profile must be a folder name such as 'tiny', got {profile!r}")
    path = Path(root) / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(path: str | os.PathLike, made_by: str) -> Path:
    """``path`` if it exists, else a clear error saying which notebook makes it."""
    path = Path(path)
    if not path.exists():
        hint = ("; in Colab every runtime has its own disk: mount Google Drive before the install cell in both "
                "notebooks (`from google.colab import drive; drive.mount('/content/drive')`), so that they share "
                "RUNS_DIR, then run this notebook again from its first cell (Runtime > Run all)"
                ) if "google.colab" in sys.modules else ""
        raise FileNotFoundError(f"{path} is missing: run notebook {made_by} first (same PROFILE and RUNS_DIR){hint}")
    return path


def check_folder_path(path: str | os.PathLike, where: str) -> Path:
    """``path`` if a folder can be there (made where missing), else a ``ValueError`` led by ``where``: a file where
    the path or one of its folders goes failed only when the folder was made (``--runs-dir``, after the setup)."""
    path = Path(path)
    holder = next(p for p in (path, *path.parents) if p.exists())  # the deepest part of the path that is there
    if not holder.is_dir():
        raise ValueError(f"{where}: {holder} is a file, not a folder")
    return path


def check_out_file(path: str | os.PathLike, where: str = "--out") -> Path:
    """``path`` if a file can be written there, else a ``ValueError`` naming ``where``: a script's ``--out`` is
    written after its runs (minutes to hours), and a folder there, or a file where a folder of its path goes, failed
    only then. A missing folder is fine: ``write_atomic`` makes it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{where} {path}: a folder; name the file to write")
    check_folder_path(path.parent, f"{where} {path}")
    return path


def _merge(base: dict, part: dict) -> dict:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def read_metrics(run: str | os.PathLike) -> dict:
    """Everything the notebooks have recorded in ``run/metrics.json`` ({} before the first of them writes)."""
    path = Path(run) / "metrics.json"
    if not path.exists():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # the bare error does not say which file
        raise ValueError(f"{path} is not valid JSON ({err}): restore it from metrics.previous.json beside it if "
                         "there is one (the headless runner, stepdpo-lite, keeps there the table from before its last "
                         "run from notebook 01), or delete it and run the notebooks again") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} holds a {type(metrics).__name__}, not the dict of figures the notebooks write")
    return metrics


def _plain(value, name: str = ""):
    """``value`` as JSON will hold it, before it is merged: numpy scalars as Python numbers (json cannot write them)
    and dict keys as the str JSON makes of them (an int key read back is a str: merged with the int it would be two
    keys, which json cannot sort). A NaN or infinite number (a float32 one too) and any other type are refused by
    name (``name``: dotted), as json would refuse them without one or write what it cannot read back."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"update_metrics: {name or 'the value'} is not a finite number; JSON has no NaN or infinity: "
                         "record None for a figure that is undefined")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(sub, f"{name}[{i}]") for i, sub in enumerate(value)]
    if not isinstance(value, dict):
        raise ValueError(f"update_metrics: {name or 'the value'} is a {type(value).__name__}: record a number, a "
                         "str, None, or a list or dict of them")
    out = {}
    for key, sub in value.items():
        key = key.item() if isinstance(key, np.generic) else key
        if not (isinstance(key, (str, int, float, bool)) or key is None):
            raise ValueError(f"update_metrics: {name or 'part'} has a {type(key).__name__} key {key!r}: keys must "
                             "be str (or numbers, written as str)")
        text = key if isinstance(key, str) else json.dumps(key)
        if text in out:  # {2: ..., "2": ...}: one would overwrite the other
            raise ValueError(f"update_metrics: {name or 'part'} has two keys JSON writes as {text!r}")
        out[text] = _plain(sub, f"{name}.{text}" if name else text)
    return out


def update_metrics(run: str | os.PathLike, part: dict, replace: Sequence[str] = ()) -> dict:
    """Merge ``part`` (nested dicts) into ``run/metrics.json`` and return the whole file's content. The run folder
    must exist (``run_dir`` makes it), so a misspelled one is an error, not a new folder; a NaN or infinite figure
    is refused by name, since JSON has no such numbers (``None`` records a figure that is undefined). Numpy scalars
    are recorded as Python numbers and number keys as str (``{2: 0.5}`` as ``{"2": 0.5}``), as JSON reads them back.

    ``replace``: the sections, dotted (``"policy"``, ``"evaluation.pass_at_n"``), that ``part`` replaces rather than
    merges into: what the file held there is dropped, so that a rerun which records fewer methods, rounds or sizes
    keeps none of the earlier run's beside its own. Each must be in ``part`` (a misspelled name merged silently);
    ``None`` there clears a section. One write: a figure refused leaves the old section as it was."""
    run_folder(run, "update_metrics")
    if not isinstance(part, dict):
        raise ValueError(f"update_metrics: part must be a dict of figures, got {type(part).__name__}")
    replace = list_of(replace, "update_metrics: replace", "dotted section names")
    part = _plain(part)
    for name in replace:
        if not isinstance(name, str) or _section(part, name) is _MISSING:
            raise ValueError(f"update_metrics: replace names {name!r}, which part does not hold (its keys: "
                             f"{sorted(part)}); record None there to clear it")
    metrics = read_metrics(run)
    _drop_sections(metrics, replace)
    write_json_atomic(Path(run) / "metrics.json", _merge(metrics, part))
    return metrics


def run_folder(run: str | os.PathLike, caller: str) -> Path:
    """``run`` if it is a folder; else refused, naming ``caller``: a misspelled one is an error, not a new folder."""
    if not Path(run).is_dir():
        raise FileNotFoundError(f"{caller}: no run folder {run} (make it with runs.run_dir(PROFILE, RUNS_DIR))")
    return Path(run)


def _drop_sections(metrics: dict, names) -> None:
    """Takes the sections of ``names`` (dotted: ``"prm.control"``) out of ``metrics``, those it holds."""
    for name in names:
        parent, _, last = name.rpartition(".")
        section = _section(metrics, parent) if parent else metrics
        if isinstance(section, dict):
            section.pop(last, None)


def in_order(stems, order: Sequence[str]) -> list[str]:
    """``stems`` (notebook stems) in the run's ``order``; those not in it last, by name."""
    return sorted(stems, key=lambda stem: (order.index(stem) if stem in order else len(order), stem))


_MISSING = object()


def _section(tree: dict, name: str):
    """The value at the dotted ``name`` (``"prm.first_error_threshold"``) in the nested dicts ``tree``, or
    ``_MISSING`` when a key on the way is not there."""
    for key in name.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return _MISSING
        tree = tree[key]
    return tree


def missing_sections(metrics: Mapping, names: Sequence[str]) -> list[str]:
    """The dotted ``names`` (``"prm.calibration"``) that ``metrics``, as ``read_metrics`` returns it, does not hold."""
    return [name for name in names if _section(metrics, name) is _MISSING]


def recorded(run: str | os.PathLike | Mapping, name: str, made_by: str):
    """One figure an earlier notebook recorded in ``run/metrics.json`` (``name`` dotted, e.g.
    ``"prm.first_error_threshold"``; ``run`` may be that file's content, as ``read_metrics`` returns it); a missing
    one raises ``FileNotFoundError`` naming the notebook to run."""
    read = isinstance(run, Mapping)
    value = _section(run if read else read_metrics(run), name)
    if value is _MISSING:
        raise FileNotFoundError(f"{'metrics.json' if read else Path(run) / 'metrics.json'} has no {name}: run "
                                f"{made_by} first (same PROFILE and RUNS_DIR)")
    return value


def first_rows(dataset, n: int | None, name: str = "n"):
    """The first ``n`` rows of a Hugging Face ``dataset`` (all of them when it has fewer), or the whole dataset when
    ``n`` is None. ``name``: the knob ``n`` came from (``"N_TRAIN_ROWS"``), for the error: 0, a negative number or a
    float is refused, since 0 rows trained or scored only fail later, far from the setting."""
    if positive_int(n, name, "first_rows", none_ok=True) is None:
        return dataset
    return dataset.take(min(n, len(dataset)))  # min: up to datasets 5.0 (the floor is 4.7), take(n > len) raised


def start_notebook(run: str | os.PathLike, notebook: str, sections: Mapping[str, Sequence[str]],
                   order: Sequence[str], record: dict, readers: Mapping[str, Sequence[str]] | None = None) -> dict:
    """Before ``notebook`` (a stem, ``"02_process_reward_model"``) runs, one atomic write of ``run/metrics.json``:
    its ``sections`` (``sections[notebook]``, dotted names) and its seconds go, so that a run stopped part-way, even
    by kill -9, leaves none of its last run's figures beside outputs it may already have replaced (figures are those
    of the outputs on disk, or absent); ``record`` (what it runs with) becomes ``run.<notebook>``; and the notebooks
    that read its outputs (``readers``, see ``read_by``) and have recorded figures join ``tutorial.stale``, as they
    were made from the outputs it is about to rewrite (``finish_notebook`` takes a notebook off when it runs
    through). Returns the metrics."""
    metrics = read_metrics(run)
    tutorial = metrics.setdefault("tutorial", {})
    _drop_sections(metrics, sections.get(notebook, ()))
    seconds = tutorial.get("notebook_seconds", {})
    if seconds.pop(notebook, None) is not None:
        tutorial["wall_seconds"] = round(sum(seconds.values()), 2)

    def has_figures(stem: str) -> bool:
        return stem in seconds or any(_section(metrics, name) is not _MISSING for name in sections.get(stem, ()))

    later = read_by(notebook, order, readers)
    stale = set(tutorial.get("stale", [])) - {notebook} | {stem for stem in later if has_figures(stem)}
    _set_stale(tutorial, stale, order)
    metrics.setdefault("run", {})[notebook] = _plain(record, f"run.{notebook}")
    write_json_atomic(Path(run) / "metrics.json", metrics)
    return metrics


def finish_notebook(run: str | os.PathLike, notebook: str, seconds: float | None, order: Sequence[str],
                    finished: str | None = None, readers: Mapping[str, Sequence[str]] | None = None,
                    record: Mapping | None = None) -> dict:
    """``notebook`` ran through: its ``seconds`` go under ``tutorial.notebook_seconds`` (their sum under
    ``tutorial.wall_seconds``; None leaves them), ``finished`` (a time) under ``run.<notebook>.finished`` with
    ``record``'s keys, and it leaves
    ``tutorial.stale``, unless it reads the outputs of a stale notebook (``read_by``): it then read outputs that are
    themselves older than what they read, and is stale too. One atomic write; returns the metrics."""
    metrics = read_metrics(run)
    tutorial = metrics.setdefault("tutorial", {})
    if seconds is not None:
        tutorial.setdefault("notebook_seconds", {})[notebook] = seconds
        tutorial["wall_seconds"] = round(sum(tutorial["notebook_seconds"].values()), 2)
    stale = set(tutorial.get("stale", [])) - {notebook}
    if any(notebook in read_by(stem, order, readers) for stem in stale):
        stale.add(notebook)
    _set_stale(tutorial, stale, order)
    if finished is not None and isinstance(metrics.get("run", {}).get(notebook), dict):
        metrics["run"][notebook].update(finished=finished, **_plain(dict(record or {}), f"run.{notebook}"))
    write_json_atomic(Path(run) / "metrics.json", metrics)
    return metrics


def read_by(notebook: str, order: Sequence[str], readers: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The notebooks whose figures rest on ``notebook``'s outputs: ``readers[notebook]`` (the kit's notebooks:
    ``notebooks.NOTEBOOK_READERS``), or, with no ``readers``, every one after it in ``order`` (a folder of one's own
    notebooks, whose reads the runner does not know)."""
    if readers is not None:
        return list(readers.get(notebook, ()))
    return list(order[order.index(notebook) + 1:]) if notebook in order else []


def _set_stale(tutorial: dict, stale: set, order: Sequence[str]) -> None:
    """``tutorial.stale``: the stale notebooks in ``order``; no key when there is none (a whole run's table is the
    same as before there was one)."""
    if stale:
        tutorial["stale"] = in_order(stale, order)
    else:
        tutorial.pop("stale", None)
