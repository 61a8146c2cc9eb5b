"""Writing files and folders atomically: a crash leaves the previous good copy in place, never a half-written one.

Everything is written under a temporary name beside its destination, then renamed over it (a rename within one
folder is atomic on POSIX file systems).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .checks import warn_user

# What a transformers Trainer writes into its output_dir beside the model saved there: kept when a save replaces it
TRAINER_OUTPUTS = ("checkpoint-*", "runs", "README.md", "trainer_state.json", "*_results.json", "training_args.bin")


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


def check_replaceable(path: str | os.PathLike, keep: tuple[str, ...] = (), owned: tuple[str, ...] = (),
                      where: str = "save") -> Path:
    """``path`` made absolute, or a ``ValueError`` when replacing it as a whole would do harm: it is the working
    directory or holds it; or, with ``owned`` (glob patterns of a file only a save of this kind writes), it holds
    no such file but something besides ``keep``'s subfolders (a user's notes in the folder named as ``output_dir``).
    A folder holding such a file is taken as a save and replaced whole, a user's files in it too: what a save writes
    besides (a model's and tokenizer's files, named by transformers and PEFT, version by version) cannot be told
    from theirs, and an earlier save's files that the new one does not write (an old adapter) must go."""
    # "." has no name to put a temporary folder beside; a link (to a mounted drive) is saved through, to its target
    path = Path(os.path.realpath(path))
    if path == Path.cwd() or path in Path.cwd().parents:
        raise ValueError(f"{where}: {path} is the working directory or holds it; saving replaces the folder as a "
                         "whole: name a subfolder")
    if path.exists() and not path.is_dir():  # renamed aside, it would be lost from view and block every later save
        raise ValueError(f"{where}: {path} is a file; a save writes a folder there: choose another name")
    if owned and path.is_dir() and not any(next(path.glob(o), None) for o in owned):
        if foreign := sorted(p.name for p in path.iterdir() if not any(p.match(k) for k in keep)):
            raise ValueError(f"{where}: {path} holds {foreign[:3]}, not a saved copy ({', '.join(owned)}); saving "
                             "replaces the folder as a whole and would delete them: choose a new or empty folder")
    return path


def save_atomic(path: str | os.PathLike, write, keep: tuple[str, ...] = (), owned: tuple[str, ...] = (),
                where: str = "save") -> Path:
    """``write(tmp)`` fills a temporary folder, which then replaces the folder ``path``. Works for anything that
    writes a folder: ``lambda p: dataset.save_to_disk(p)``, ``lambda p: model.save_pretrained(p)``. The old folder
    is removed only after the new one is complete, and is put back if the new one cannot be moved in.
    ``keep``: glob patterns of the old folder's entries (subfolders, files, links) to move (rename, not copy) into
    the new one, unless it wrote one of that name: e.g. a Trainer's ``"checkpoint-*"`` in the output_dir a model is
    then saved to; all else of the old folder goes.
    ``owned``, ``where``: see ``check_replaceable``, which refuses a folder that holds no such save but other files."""
    path = check_replaceable(path, keep, owned, where)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():  # a save stopped between its two renames: the old copy is the only one
        old.rename(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    for stale in path.parent.iterdir():  # .<name>.<mkdtemp's 8 characters>.tmp, older: a save's killed before cleanup
        if (stale.name[:-12], stale.suffix) == (tmp.name[:-12], ".tmp") and stale.stat().st_mtime < tmp.stat().st_mtime:
            shutil.rmtree(stale, ignore_errors=True)
    moved: list[str] = []
    try:
        write(str(tmp))
        # safetensors writes weights 0600 (a plain save_pretrained too): what the kit writes is for everyone to read,
        # as far as the umask and a replaced folder's own mode allow (a private folder's files stay private)
        umask = os.umask(0)
        os.umask(umask)
        allowed = (stat.S_IMODE(path.stat().st_mode) if path.is_dir() else 0o777) & ~umask
        for written in tmp.rglob("*"):  # before the kept subfolders come in: they keep their modes
            if not written.is_symlink():
                os.chmod(written, (0o755 if written.is_dir() else 0o644) & allowed)
        subs = {s for pattern in keep for s in path.glob(pattern)} if path.is_dir() else set()
        for sub in sorted(subs):
            if not (tmp / sub.name).exists():
                sub.rename(tmp / sub.name)
                moved.append(sub.name)
        # mkdtemp makes it private; a folder replaced keeps its own mode (a private one stays private)
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.is_dir() else 0o755 & allowed)
        shutil.rmtree(old, ignore_errors=True)
        had_old = path.exists()
        if had_old:
            path.rename(old)
        try:
            tmp.rename(path)
        except BaseException:
            if had_old:  # without this the previous copy would survive only as .old, which the next save deletes
                old.rename(path)
            raise
        moved = []
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        for name in moved:  # the kept subfolders go back where they were
            (tmp / name).rename(path / name)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def check_checkpoints(output_dir: str | os.PathLike, resume_from_checkpoint, where: str) -> None:
    """Before a Trainer's ``train(resume_from_checkpoint)``: a fresh run in an ``output_dir`` holding checkpoint-N
    folders warns (a later ``resume_from_checkpoint=True`` picks the newest, maybe an earlier run's, and trains on
    from its step); ``True`` whose newest is half-written (no trainer_state.json) is a ``ValueError`` naming it."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name[11:].isdigit() and p.is_dir()]
    newest = sorted(found, key=lambda p: int(p.name[11:]), reverse=True)
    if newest and not resume_from_checkpoint:
        warn_user(f"{where}: {output_dir} holds an earlier run's checkpoints: a resume would pick {newest[0]} if this "
                  "run saves none after it; give each run its own output_dir")
    # refused, not skipped with a warning: going on from an older step than asked changes the run's results, and
    # which checkpoint to trust (or to delete) is the user's call
    elif newest and resume_from_checkpoint is True and not (newest[0] / "trainer_state.json").exists():
        complete = next((str(p) for p in newest if (p / "trainer_state.json").exists()), None)
        raise ValueError(f"{where}: resume_from_checkpoint=True: the newest checkpoint, {newest[0]}, is incomplete "
                         "(no trainer_state.json: its save was interrupted); " + (
                             f"resume from the newest complete one, resume_from_checkpoint={complete!r}, or delete "
                             "the incomplete one" if complete else "no checkpoint there is complete: train anew"))
