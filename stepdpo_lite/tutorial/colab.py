"""Colab: install the kit into a running kernel (no restart), keep ``runs/`` on Google Drive, prepare a profile.

``REPO_URL`` below is the one place that names the repository the notebooks clone. The install cell of every
notebook (code cell 2, after the parameters cell) is generated from ``INSTALL_CELL`` with it; code cell 3 is the
notebook's own setup cell. After changing ``REPO_URL`` (e.g. in a fork) run
``python -m stepdpo_lite.tutorial.colab sync-notebooks`` (a test checks that the notebooks match).
In Colab, ``%env STEPDPO_REPO_URL=https://github.com/you/stepdpo-lite`` before the install cell overrides it.

The install cell, on Colab only:

1. clones the repository into ``/content/stepdpo-lite`` (``$STEPDPO_KIT_DIR``) unless it is there; a failing
   clone raises with git's message; a clone that is there must come from the repository asked for
   (``check_clone_origin``: a ``STEPDPO_REPO_URL`` set after the first clone was ignored, silently);
2. runs this file as a script, ``python stepdpo_lite/tutorial/colab.py install KIT``: ``pip install -e KIT`` with
   ``-c requirements.lock`` minus what would fight Colab's own stack (torch is not in the lock; the packages
   installed torch requires, numpy, which Colab's compiled packages are built against, and every package the
   runtime already has but the ML stack of ``ML_STACK`` are left out of the constraints too); it imports nothing
   but the standard library, so it runs before the package is importable. The cell says first what it installs and
   about how long that takes (pip -q is silent for minutes), and after it prints the tail of what the commands wrote
   to stderr, e.g. pip's dependency conflicts (a command that succeeded had them dropped);
3. puts the clone first on ``sys.path``: the package imports in the running kernel, no restart (an editable
   install is only seen by a new process);

then, everywhere, ``colab.setup(PROFILE, RUNS_DIR)``: the CUDA allocator setting, ``RUNS_DIR`` on Google Drive
when Drive is mounted (notebooks opened in separate Colab runtimes share nothing else), and the profile's local
files (``profiles.prepare_profile``: the smoke base).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

# The standard library only up here: this file runs as a script before the kit is installed (``install``), and
# ``import colab`` stays light. The kit's modules, the ML stack and google.colab (Colab only) are imported where used.

REPO_URL = "https://github.com/stepdpo-lite/stepdpo-lite"  # the repository the notebooks clone: set it here only
KIT_DIR = "/content/stepdpo-lite"
DRIVE_ROOT = "/content/drive/MyDrive"
DRIVE_RUNS = "stepdpo-lite/runs"  # RUNS_DIR under DRIVE_ROOT when Drive is mounted
NOT_CONSTRAINED = {"numpy"}  # Colab's preinstalled compiled packages are built against its numpy
# Pinned to the lock even where the runtime has them: the stack the kit is tested with. Any other package the runtime
# already has keeps its version (pip would replace it for a pin, e.g. the running kernel's IPython, and google-colab
# pins its own ipython and pandas); the lock pins only what the install adds.
ML_STACK = {"trl", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "tokenizers", "safetensors",
            "huggingface-hub"}
ALLOC_CONF_NAMES = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")  # the allocator's settings: old name, newer one

INSTALL_CELL = '''import os, subprocess, sys

# Colab only (the `if` block): fetch the kit and install it into this running kernel (no restart; Colab's own
# torch is kept). The repository is set in stepdpo_lite/tutorial/colab.py (REPO_URL);
# `%env STEPDPO_REPO_URL=...` overrides it. Elsewhere: `make test` or `pip install -e .` in the repository.
if "google.colab" in sys.modules:
    def _run(*cmd):  # fail loudly, with the command's own message; else show its warnings (stderr) too
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        print(done.stdout + done.stderr[-3000:], end="")  # what the install did; pip's dependency conflicts
    KIT = os.environ.get("STEPDPO_KIT_DIR", "/content/stepdpo-lite")
    REPO_URL = os.environ.get("STEPDPO_REPO_URL") or "{repo_url}"
    if not os.path.isdir(os.path.join(KIT, "stepdpo_lite")):
        _run("git", "clone", "-q", "--depth", "1", REPO_URL, KIT)
    print("installing the kit with pip (and its ML stack: trl, transformers, peft, bitsandbytes, ...): up to a few "
          "minutes in a fresh runtime, seconds once installed; pip says nothing until it is done")
    # a clone already there must be of REPO_URL: the install refuses another repository's
    _run(sys.executable, os.path.join(KIT, "stepdpo_lite", "tutorial", "colab.py"), "install", KIT,
         "--repo-url", REPO_URL)
    sys.path.insert(0, KIT)  # importable now: an editable install is only seen by a new process

from stepdpo_lite.tutorial import colab

# Every profile, in Colab or not: resolves RUNS_DIR (Google Drive when mounted) and builds what the profile needs
RUNS_DIR = colab.setup(PROFILE, RUNS_DIR)'''


def repo_url() -> str:
    return os.environ.get("STEPDPO_REPO_URL") or REPO_URL


def install_cell_source(url: str = REPO_URL) -> str:
    """The notebooks' install cell (code cell 2, after the parameters cell)."""
    return INSTALL_CELL.replace("{repo_url}", url)


def in_colab() -> bool:
    return "google.colab" in sys.modules


# ----------------------------------------------------------------------------- install (runs as a script)

def _requirement_name(requirement: str) -> str:
    """The distribution a requirement line names (``"trl==1.16.*; extra == 'x'"`` -> ``"trl"``)."""
    return re.split(r"[<>=!~\[ ;(]", requirement.strip(), maxsplit=1)[0]


def _requirement_names(dist: str, seen: set | None = None) -> set:
    """``dist`` and everything it requires, recursively (installed distributions only), lower-case names."""
    seen = set() if seen is None else seen
    name = dist.lower().replace("_", "-")
    if name in seen:
        return seen
    seen.add(name)
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return seen
    for req in requires:
        if "extra ==" in req:
            continue
        _requirement_names(_requirement_name(req), seen)
    return seen


def missing_requirements(dist: str = "stepdpo-lite") -> list[str]:
    """The names of what ``dist`` requires (its extras aside) that is not installed, or ``[dist]`` when it is not
    installed itself: ``install`` reinstalls then, whatever its marker says (a ``pip uninstall ipywidgets`` since the
    first install was skipped silently). Standard library only: a requirement with an environment marker (``;
    python_version < ...``) needs ``packaging`` to be read, and is not checked; the kit's own have none."""
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return [dist]
    missing = []
    for req in requires:
        if ";" in req:
            continue
        try:
            metadata.version(_requirement_name(req))
        except metadata.PackageNotFoundError:
            missing.append(_requirement_name(req))
    return missing


def constraints(lock_text: str, keep_installed: set) -> str:
    """The lock's pins, minus the packages in ``keep_installed`` (names, any case, ``-`` or ``_``)."""
    keep = {n.lower().replace("_", "-") for n in keep_installed}
    out = []
    for line in lock_text.splitlines():
        name = line.split("==", 1)[0].strip().lower().replace("_", "-")
        if line.strip() and not line.startswith("#") and name not in keep:
            out.append(line.strip())
    return "\n".join(out) + "\n"


def _write_text(path: Path, text: str) -> None:
    """``text`` at ``path`` atomically (a temporary file beside it, renamed over it): a write cut short (a kill, a
    full disk, Drive's sync) leaves the previous file, never half of one that a later runtime trusts. Standard
    library only, as ``stepdpo_lite.atomic`` is not importable before the install."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        Path(tmp).write_text(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clone_origin(kit: str | os.PathLike) -> str | None:
    """The ``origin`` URL of the git clone at ``kit``; None when ``kit`` is no git clone (a kit copied in by hand),
    has no ``origin``, or git is missing."""
    if not (Path(kit) / ".git").exists():  # `git -C` would answer for a repository around the folder
        return None
    try:
        done = subprocess.run(["git", "-C", str(kit), "remote", "get-url", "origin"], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def comparable_url(url: str) -> str:
    """A repository's URL as ``check_clone_origin`` compares it: a local folder as its real path; else without the
    scheme, user, trailing ``/`` or ``.git``, with the host in lower case, so that ``git@github.com:you/kit.git``
    and ``https://GitHub.com/you/kit/`` are the same repository."""
    url = url.strip().rstrip("/")
    if os.path.isdir(url):
        return os.path.realpath(url)
    url = re.sub(r"\.git$", "", url)
    url = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", url)  # https://, ssh://, git://
    url = re.sub(r"^[^@/]*@", "", url)  # git@, user:token@
    url = re.sub(r"^([^/:]+):(?!\d+(/|$))", r"\1/", url)  # scp-like host:owner/name (not a port)
    host, slash, path = url.partition("/")
    return host.lower() + slash + path


def check_clone_origin(kit: str | os.PathLike, url: str) -> str | None:
    """A ``ValueError`` when the git clone at ``kit`` came from another repository than ``url``. The install cell
    clones only when the kit is not there yet, so a ``STEPDPO_REPO_URL`` (e.g. a fork) set after the first clone
    was ignored without a word: the old clone was installed and imported. Deleting a clone is the user's call (it
    may hold their edits): the error names both repositories and what to do. Returns the clone's origin (None for
    a kit that is no git clone: nothing to compare)."""
    origin = clone_origin(kit)
    if origin is None or comparable_url(origin) == comparable_url(url):
        return origin
    asked = ("STEPDPO_REPO_URL" if os.environ.get("STEPDPO_REPO_URL", "").strip() == url.strip()
             else "the notebook's REPO_URL (STEPDPO_REPO_URL is not set)")
    raise ValueError(f"colab setup: the kit at {kit} is a clone of {origin}, but {asked} asks for {url}; the "
                     f"clone there is kept, not replaced. To use {url}: delete the clone (`!rm -rf {kit}`) and run "
                     f"this cell again. To keep using the clone: `%env STEPDPO_REPO_URL={origin}`, then run this "
                     "cell again")


def install_command(kit: str | os.PathLike, constraints_file: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints_file), "-e", str(kit)]


def install(kit: str | os.PathLike = KIT_DIR, dry_run: bool = False) -> list[str]:
    """``pip install -e kit`` constrained by its ``requirements.lock`` (see the module docstring); returns the
    command. A second run with the same lock is skipped (marker file in ``kit``) while the kit and everything it
    requires are installed (``missing_requirements``)."""
    kit = Path(kit)
    lock = (kit / "requirements.lock").read_text()
    installed = {(d.metadata["Name"] or "").lower().replace("_", "-") for d in metadata.distributions()}
    # The runtime's own packages as they were before the kit's first install: on a reinstall (a new lock) what that
    # install added is installed too, and must still follow the lock. A runtime without the kit installed has not had
    # that install: a record there is another runtime's (a kit kept on Drive), and is made again from this one's
    record = kit / ".colab-preinstalled.txt"
    if not record.exists() or "stepdpo-lite" not in installed:
        _write_text(record, "\n".join(sorted(installed)) + "\n")
    preinstalled = set(record.read_text().split())
    keep = _requirement_names("torch") | NOT_CONSTRAINED | (preinstalled - ML_STACK)
    cfile = kit / ".colab-constraints.txt"
    _write_text(cfile, constraints(lock, keep))
    cmd = install_command(kit, cfile)
    marker = kit / ".colab-installed"
    stamp = hashlib.sha256((lock + sys.executable).encode()).hexdigest()
    if dry_run:
        print(" ".join(cmd))
        return cmd
    # The marker alone is not enough: a kit kept on Drive keeps it into a fresh runtime, with nothing installed, and a
    # requirement may have been uninstalled since
    missing = missing_requirements()
    if marker.exists() and marker.read_text() == stamp:
        if not missing:
            return cmd
        print(f"installing the kit again: {', '.join(missing)} not installed in this runtime")
    subprocess.run(cmd, check=True)
    _write_text(marker, stamp)
    return cmd


# ----------------------------------------------------------------------------- notebook setup

def resolve_runs_dir(runs_dir: str | os.PathLike = "runs", out=print) -> str:
    """An absolute path: ``runs_dir`` unchanged. A relative one, from the kit's own ``notebooks/`` folder (where
    Jupyter starts a notebook's kernel): against the repository, where ``make tutorial`` writes, so that a notebook
    opened after it finds its runs (it looked in ``notebooks/runs``). In Colab, a relative ``runs_dir`` goes to
    Google Drive (``DRIVE_ROOT/stepdpo-lite/<runs_dir>``) when Drive is mounted, so that notebooks run in
    separate runtimes see each other's results; else it stays in this runtime, with a message saying how to
    mount Drive. Elsewhere it is left as it is. ``out=None``: no message (the setup cell, after the install cell,
    resolves ``RUNS_DIR`` again, quietly, so that a learner who skipped the install cell outside Colab finds the same
    runs)."""
    out = out or (lambda line: None)
    runs_dir = os.fspath(runs_dir)
    if os.path.isabs(runs_dir):
        return runs_dir
    if not in_colab():
        from .runs import NOTEBOOK_DIR

        if Path.cwd().resolve() == NOTEBOOK_DIR:
            return str(NOTEBOOK_DIR.parent / runs_dir)
        return runs_dir
    if os.path.isdir(DRIVE_ROOT):
        path = str(Path(DRIVE_ROOT) / Path(DRIVE_RUNS).parent / runs_dir)
        out(f"RUNS_DIR = {path} (Google Drive: every notebook, in any runtime, reads and writes here)")
        return path
    out(f"RUNS_DIR = {runs_dir!r} lives in this Colab runtime only: a notebook opened in another runtime will not "
        "see what this one writes. To share results between notebooks, mount Google Drive, then run the notebook "
        "again from its first cell (Runtime > Run all: the cells after this one set RUN_DIR from it once):\n"
        "    from google.colab import drive; drive.mount('/content/drive')")
    return runs_dir


def setup(profile: str = "tiny", runs_dir: str | os.PathLike = "runs", out=print) -> str:
    """What every notebook's install cell (code cell 2, not the setup cell after it) does after the install, on
    every profile: the CUDA allocator setting (before torch is imported), Colab's widget manager for ipywidgets 8
    (``enable_widgets``), ``RUNS_DIR`` (``resolve_runs_dir``) and the profile's local files
    (``profiles.prepare_profile``). Returns the ``RUNS_DIR`` to use."""
    from .profiles import prepare_profile

    use_expandable_segments()  # less fragmented GPU memory (docs/benchmarks.md); before torch touches the GPU
    quiet_notebook_output()
    enable_widgets()
    runs_dir = resolve_runs_dir(runs_dir, out=out)
    prepare_profile(profile, out=out)
    return runs_dir


def use_expandable_segments() -> None:
    """Let PyTorch's CUDA allocator grow its segments instead of keeping fragments: it halves the ``24gb``
    profile's peak memory in preference training at the same speed (docs/benchmarks.md).

    Call it before torch touches the GPU (``setup`` calls it first, before ``prepare_profile``'s machine check or any
    later cell imports torch). A value already in ``$PYTORCH_CUDA_ALLOC_CONF`` or its newer name ``$PYTORCH_ALLOC_CONF``
    (recent torch) is kept, and then nothing is said: on a second Run all in one runtime the first run set it before
    CUDA started, so it is in effect. A warning only when this call sets it and CUDA is already initialised (it waits
    for a restart then).
    """
    if any(name in os.environ for name in ALLOC_CONF_NAMES):
        return
    os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"  # the name every torch reads
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        warnings.warn("use_expandable_segments: CUDA is already initialised, so the allocator setting has no "
                       "effect until the process restarts", stacklevel=2)


def enable_widgets() -> None:
    """In Colab, draw ipywidgets 8 (the kit requires ``ipywidgets>=8.0``, so a Colab with 7.x gets 8.x) through
    Colab's custom widget manager: Colab's built-in manager speaks ipywidgets 7's protocol, and without this the
    explorer of notebook 05 shows nothing, with no error. Elsewhere, or with ipywidgets 7, it does nothing."""
    if not in_colab() or int(metadata.version("ipywidgets").split(".")[0]) < 8:
        return
    from google.colab import output

    output.enable_custom_widget_manager()


def quiet_notebook_output() -> None:
    """Keep what a learner should read visible: no progress bar per `datasets` map/filter/save (a dozen per
    trainer; the trainers keep their own bar) or per model load, and no FutureWarning for the renames of
    transformers 5 (`gradient_checkpointing` -> `activation_checkpointing`): the kit passes and calls the new names
    where transformers has them (and quiets PEFT's read of an old one where its trainer has TRL wrap a model), but
    TRL's DPOTrainer (notebook 04's DPO and NLL-only runs) still calls the old ones at every reference forward with
    checkpointing on."""
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as transformers_logging

    disable_progress_bar()
    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)


def drop_log_printer(trainer) -> None:
    """With ``disable_tqdm=True``, transformers prints every log as a line of text (``PrinterCallback``): dozens
    of lines per run in a notebook. Remove that printer; the logs stay in ``trainer.state.log_history``, for a
    plot or a table."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def sync_notebooks(notebook_dir: str | os.PathLike | None = None, url: str = REPO_URL) -> list[str]:
    """Write ``install_cell_source(url)`` into every notebook's install cell (code cell 2, after the
    ``parameters`` cell), touching nothing else; returns the notebooks changed. Each is written atomically: a write
    that fails leaves the notebook as it was, not cut short."""
    from stepdpo_lite.atomic import write_atomic  # absolute: this file also runs as a script (install)
    from stepdpo_lite.tutorial.runs import NOTEBOOK_DIR

    folder = Path(notebook_dir) if notebook_dir else NOTEBOOK_DIR
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:  # a mistyped folder printed "already in sync"
        hint = ("; the notebooks ship with the repository, not with a pip-installed package: run from a clone "
                "(`pip install -e .` in it), or give --notebook-dir CLONE/notebooks") if not folder.is_dir() else ""
        raise ValueError(f"sync_notebooks: {folder.resolve()} holds no notebook named NN_*.ipynb{hint}")
    changed = []
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if len(code) < 2 or "parameters" not in code[0].get("metadata", {}).get("tags", []):
            raise ValueError(f"{path.name}: the first code cell must be the parameters cell, the second the install "
                             "cell")
        lines = install_cell_source(url).splitlines(keepends=True)
        if code[1]["source"] != lines:
            code[1]["source"] = lines
            text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
            write_atomic(path, lambda tmp: Path(tmp).write_text(text))
            changed.append(path.name)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepdpo_lite.tutorial.colab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("install", help="pip install -e KIT with the lock as constraints (Colab's install cell)")
    i.add_argument("kit", nargs="?", default=KIT_DIR,
                   help=f"the kit's clone to install, the folder that holds requirements.lock (default: {KIT_DIR}, "
                        "where the install cell clones it)")
    i.add_argument("--dry-run", action="store_true",
                   help="print the pip command instead of running it (the constraints file it names is written)")
    i.add_argument("--repo-url", default=None,
                   help="the repository KIT must be a clone of (check_clone_origin); a kit that is no git clone passes")
    what = "write the install cell, with --url (default: REPO_URL, or $STEPDPO_REPO_URL), into every notebook"
    s = sub.add_parser("sync-notebooks", help=what, description=what)
    s.add_argument("--notebook-dir", default=None, help="default: the kit's notebooks/")
    s.add_argument("--url", default=None, help="the repository the notebooks clone")
    args = parser.parse_args(argv)
    if args.command == "install":
        if not (Path(args.kit) / "requirements.lock").is_file():  # a traceback reading the lock
            i.error(f"kit {args.kit}: no requirements.lock there (not a clone of the kit)")
        try:  # before the install: another repository's kit is not installed
            if args.repo_url:
                check_clone_origin(args.kit, args.repo_url)
        except ValueError as err:
            i.error(str(err))
        install(args.kit, dry_run=args.dry_run or bool(os.environ.get("STEPDPO_COLAB_DRY_RUN")))
    else:
        try:
            changed = sync_notebooks(args.notebook_dir, args.url or repo_url())
        except ValueError as err:
            parser.error(str(err))
        print("updated:", ", ".join(changed) or "nothing (already in sync)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
