"""Where the notebooks keep what they make: ``runs/<profile>/``, written atomically (``stepdpo_lite.atomic``).

Each notebook reads what the previous ones wrote and merges its own figures into ``metrics.json``.
Every write goes to a temporary name first and is then renamed, so a crash leaves the previous
good file (or folder) in place, never a half-written one.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from ..atomic import save_atomic, write_json_atomic  # noqa: F401  (the run folder's writers)


def run_dir(profile: str = "tiny", root: str | os.PathLike = "runs") -> Path:
    """``root/<profile>``, created when missing."""
    path = Path(root) / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(path: str | os.PathLike, made_by: str) -> Path:
    """``path`` if it exists, else a clear error saying which notebook makes it."""
    path = Path(path)
    if not path.exists():
        hint = ("; in Colab every runtime has its own disk: mount Google Drive before the setup cell in both "
                "notebooks (`from google.colab import drive; drive.mount('/content/drive')`), so that they share "
                "RUNS_DIR") if "google.colab" in sys.modules else ""
        raise FileNotFoundError(f"{path} is missing: run notebook {made_by} first (same PROFILE and RUNS_DIR){hint}")
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
    return json.loads(path.read_text()) if path.exists() else {}


def _non_finite(value, name: str = "") -> str | None:
    """The dotted name of the first NaN or infinite float in ``value`` (nested dicts and lists), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return name or "the value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, sub in items:
        found = _non_finite(sub, f"{name}[{key}]" if isinstance(key, int) else f"{name}.{key}" if name else str(key))
        if found:
            return found
    return None


def update_metrics(run: str | os.PathLike, part: dict) -> dict:
    """Merge ``part`` (nested dicts) into ``run/metrics.json`` and return the whole file's content. The run folder
    must exist (``run_dir`` makes it), so a misspelled one is an error, not a new folder; a NaN or infinite figure
    is refused by name, since JSON has no such numbers (``None`` records a figure that is undefined)."""
    if not Path(run).is_dir():
        raise FileNotFoundError(f"update_metrics: no run folder {run} (make it with runs.run_dir(PROFILE, RUNS_DIR))")
    if not isinstance(part, dict):
        raise ValueError(f"update_metrics: part must be a dict of figures, got {type(part).__name__}")
    bad = _non_finite(part)
    if bad:
        raise ValueError(f"update_metrics: {bad} is not a finite number; JSON has no NaN or infinity: record None "
                         "for a figure that is undefined")
    metrics = read_metrics(run)
    write_json_atomic(Path(run) / "metrics.json", _merge(metrics, part))
    return metrics


def recorded(run: str | os.PathLike, name: str, made_by: str):
    """One figure an earlier notebook recorded in ``run/metrics.json`` (``name`` dotted, e.g.
    ``"prm.first_error_threshold"``); a missing one raises ``FileNotFoundError`` naming the notebook to run."""
    value = read_metrics(run)
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            raise FileNotFoundError(f"{Path(run) / 'metrics.json'} has no {name}: run {made_by} first (same PROFILE "
                                    "and RUNS_DIR)")
        value = value[key]
    return value
