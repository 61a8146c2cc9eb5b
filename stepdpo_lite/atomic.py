"""Writing files and folders atomically: a crash leaves the previous good copy in place, never a half-written one.

Everything is written under a temporary name beside its destination, then renamed over it (a rename within one
folder is atomic on POSIX file systems).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, write) -> Path:
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path``; parents are created.
    E.g. ``write_atomic("fig.png", lambda tmp: fig.savefig(tmp, format="png"))``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; what the kit writes is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """``obj`` as JSON (sorted keys) at ``path``, atomically."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=indent, sort_keys=True)))


def save_atomic(path: str | os.PathLike, write) -> Path:
    """``write(tmp)`` fills a temporary folder, which then replaces the folder ``path``. Works for anything that
    writes a folder: ``lambda p: dataset.save_to_disk(p)``, ``lambda p: model.save_pretrained(p)``. The old folder
    is removed only after the new one is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        write(str(tmp))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
