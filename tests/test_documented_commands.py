"""Every command the texts quote still parses: README.md, docs/*.md, the notebooks' markdown cells and the module
docstrings (their --help descriptions) of scripts/, benchmarks/ and stepdpo_lite/tutorial/ quote commands such as
`python scripts/onpolicy_rounds.py --rounds 8 ...`, `python benchmarks/prm_scoring.py ...`, `stepdpo-lite --only 02`,
`python -m stepdpo_lite.tutorial.X ...` and `accelerate launch ... scripts/ddp_tiny.py`. A renamed or removed flag
left a quote that fails for the user who copies it.

Each command runs as the shell would run it (a script by runpy, a module by runpy.run_module, the `stepdpo-lite`
runner by its pyproject.toml entry point) up to its argument parsing only: ArgumentParser's parse methods call the
original and then raise a private exception, so no model is loaded and no data read. Checks a script makes after
parsing (paths that exist, repeated values) are out of scope.

What the collector takes: lines of fenced code blocks in markdown and indented command lines in docstrings (a line
ending in a backslash joined to the next), and inline code spans (`...` or ``...``) elsewhere. Placeholders are
filled before parsing, never skipped: `<anything>` becomes one word, optional brackets `[--flag VALUE]` are unwrapped,
and a bare `...` (the flags of the command above, or more values) is dropped. The commands that still cannot parse
are listed in SKIPPED, each with its reason; an entry that no longer matches a command fails too.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import runpy
import shlex
import sys
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (file, a piece of the command) -> why it is not parsed. Keep it short: a placeholder that a word can stand for is
# filled in above instead.
SKIPPED = {
    ("README.md", "python -m stepdpo_lite..."): "stands for any module of the package, not a command",
}

# What the texts quote today: 152 commands (measured); a collector that breaks finds far fewer.
MIN_COMMANDS = 140

PROGRAMS = ("python", "python3")  # also .venv/bin/python and any other path ending in one of these
RUNNER = "stepdpo-lite"
PARSE_METHODS = ("parse_args", "parse_known_args", "parse_intermixed_args", "parse_known_intermixed_args")
SEPARATORS = {"&&", "||", ";", "|", "&"}
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(`+)([^`]+?)\1", re.S)
COMMAND_START = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*(?:\S*/)?(?:python3?|stepdpo-lite|accelerate)(?:\s|$)|"
                           r"^(?:scripts|benchmarks)/\w+\.py\s")


@dataclass(frozen=True)
class Quote:
    where: str  # file:line (a notebook: file:cellN:line, the line in the cell's source)
    file: str
    text: str  # the command as quoted, lines joined


@dataclass(frozen=True)
class Command:
    quote: Quote
    kind: str  # "path" (a file run by python or accelerate), "module" (python -m) or "runner" (stepdpo-lite)
    target: str
    argv: tuple[str, ...]
    launcher: tuple[str, ...] | None = None  # accelerate launch's own arguments, before the script


def _logical_lines(lines, first_line):
    """(line number, text) of each line, a line ending in a backslash joined to the next."""
    start, parts = None, []
    for number, line in enumerate(lines, first_line):
        if start is None:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(part.strip() for part in parts)
        start, parts = None, []
    if parts:
        yield start, " ".join(part.strip() for part in parts)


def _spans(text, first_line):
    """(line number, content) of each inline code span in text (a span may run over a line break)."""
    for match in SPAN.finditer(text):
        yield first_line + text.count("\n", 0, match.start()), " ".join(match.group(2).split())


def markdown_snippets(text, first_line=1):
    """(line, code) of a markdown text: each logical line of its fenced blocks, each code span outside them."""
    lines = text.split("\n")
    prose = []
    fence = []
    for number, line in enumerate(lines, first_line):
        if FENCE.match(line):
            if fence:
                yield from _logical_lines(fence[1:], fence[0] + 1)
                fence = []
            else:
                fence = [number]
            prose.append("")
        elif fence:
            fence.append(line)
            prose.append("")
        else:
            prose.append(line)
    yield from _spans("\n".join(prose), first_line)


def docstring_snippets(source):
    """(line, code) of a module docstring, as numbered in the file: its indented command lines, its code spans."""
    tree = ast.parse(source)
    if not (tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)
            and isinstance(tree.body[0].value.value, str)):
        return
    node = tree.body[0]
    lines = source.split("\n")[node.lineno - 1:node.end_lineno]
    lines[0] = re.sub(r'^[rRuU]?("""|\'\'\')', "", lines[0])
    lines[-1] = re.sub(r'("""|\'\'\')\s*$', "", lines[-1])
    prose = list(lines)
    i = 0
    while i < len(lines):
        if not COMMAND_START.match(lines[i].strip()):
            i += 1
            continue
        end = i
        while lines[end].rstrip().endswith("\\") and end + 1 < len(lines):
            end += 1
        yield from _logical_lines(lines[i:end + 1], node.lineno + i)
        prose[i:end + 1] = [""] * (end + 1 - i)
        i = end + 1
    yield from _spans("\n".join(prose), node.lineno)


def _placeholders_filled(text):
    text = re.sub(r"<[^<>`]+>", "PLACEHOLDER", text)
    return re.sub(r"\[(--[^\[\]]*)\]", r"\1", text)  # [--runs-dir runs] -> --runs-dir runs


def _segments(tokens):
    segment = []
    for token in tokens:
        if token in SEPARATORS:
            yield segment
            segment = []
        else:
            segment.append(token)
    yield segment


def commands_in(quote):
    """The repository's commands in a quoted snippet (none where it quotes no command of this repository)."""
    text = _placeholders_filled(quote.text)
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: prose in backticks, not a command
        return
    for segment in _segments(tokens):
        redirect = next((i for i, t in enumerate(segment) if set(t) <= set("<>&")), len(segment))
        segment = [t for t in segment[:redirect] if t != "..."]
        while segment and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", segment[0]):  # VAR=value before the command
            segment = segment[1:]
        if not segment:
            continue
        program, rest = segment[0], segment[1:]
        if Path(program).name in PROGRAMS:
            if rest[:1] == ["-m"] and len(rest) > 1 and rest[1].split(".")[0] == "stepdpo_lite":
                yield Command(quote, "module", rest[1], tuple(rest[2:]))
            elif rest and rest[0].endswith(".py"):
                yield Command(quote, "path", rest[0], tuple(rest[1:]))
        elif Path(program).name == RUNNER:
            yield Command(quote, "runner", RUNNER, tuple(rest))
        elif program == "accelerate" and rest[:1] == ["launch"]:
            script = next((i for i, t in enumerate(rest) if t.endswith(".py")), None)
            if script is not None:
                yield Command(quote, "path", rest[script], tuple(rest[script + 1:]), launcher=tuple(rest[1:script]))
        elif re.fullmatch(r"(scripts|benchmarks)/\w+\.py", program) and rest:  # `scripts/x.py --flag`, no python
            yield Command(quote, "path", program, tuple(rest))


def quotes():
    """Every code snippet of the texts, as Quote."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in texts:
        rel = path.relative_to(ROOT).as_posix()
        for line, code in markdown_snippets(path.read_text()):
            yield Quote(f"{rel}:{line}", rel, code)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        rel = path.relative_to(ROOT).as_posix()
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                for line, code in markdown_snippets(source):
                    yield Quote(f"{rel}:cell{index}:{line}", rel, code)
    for folder in ("scripts", "benchmarks", "stepdpo_lite", "stepdpo_lite/tutorial"):
        for path in sorted((ROOT / folder).glob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, code in docstring_snippets(path.read_text()):
                yield Quote(f"{rel}:{line}", rel, code)


def collect():
    found = [command for quote in quotes() for command in commands_in(quote)]
    counts = {}
    for command in found:
        counts[command.quote.where] = counts.get(command.quote.where, 0) + 1
    seen, ids = {}, []
    for command in found:
        where = command.quote.where
        seen[where] = seen.get(where, 0) + 1
        ids.append(where if counts[where] == 1 else f"{where}#{seen[where]}")
    return found, ids


COMMANDS, IDS = collect()


class _Parsed(BaseException):
    """Raised once the command's arguments are parsed (a BaseException: no `except Exception` takes it)."""


def _runner_entry():
    """module, function of the `stepdpo-lite` console script, as pyproject.toml declares it."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts[RUNNER].split(":")
    return module, function


def _package_main_is_runner(package):
    """`python -m stepdpo_lite.tutorial` runs its __main__.py, never imported here: read, it must call the runner's
    function (`from .notebooks import main`)."""
    module, function = _runner_entry()
    path = ROOT / package.replace(".", "/") / "__main__.py"
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.ImportFrom) and node.level == 1 and f"{package}.{node.module}" == module
               and any(alias.name == function and alias.asname is None for alias in node.names)
               for node in ast.walk(tree))


def parse_only(command, monkeypatch, capsys):
    """argparse's error message for the command's arguments, or None where they parse (or ask for --help)."""
    depth = [0]

    def stop_after(original):
        def parse(self, *args, **kwargs):
            depth[0] += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:  # the outermost call: a subparser's own parse returns to its parent
                raise _Parsed(result)
            return result
        return parse

    for name in PARSE_METHODS:
        if hasattr(argparse.ArgumentParser, name):
            monkeypatch.setattr(argparse.ArgumentParser, name, stop_after(getattr(argparse.ArgumentParser, name)))
    monkeypatch.chdir(ROOT)  # the texts quote commands run from the repository's root
    monkeypatch.setattr(sys, "path", list(sys.path))  # scripts put their folders first
    environ = dict(os.environ)  # and set defaults (HF_HUB_OFFLINE...)
    capsys.readouterr()
    if command.kind == "path":
        path = ROOT / command.target
        if not path.is_file():
            return f"{command.target} does not exist"
        monkeypatch.setattr(sys, "argv", [str(path), *command.argv])
        run = lambda: runpy.run_path(str(path), run_name="__main__")  # noqa: E731
    elif command.kind == "runner" or command.target == "stepdpo_lite.tutorial":
        if command.kind == "module" and not _package_main_is_runner(command.target):
            return f"{command.target}/__main__.py no longer calls the {RUNNER} runner's function"
        module, function = _runner_entry()
        monkeypatch.setattr(sys, "argv", [RUNNER, *command.argv])
        run = lambda: getattr(__import__(module, fromlist=[function]), function)()  # noqa: E731
    else:
        if importlib.util.find_spec(command.target) is None:
            return f"no module {command.target}"
        monkeypatch.setattr(sys, "argv", [command.target, *command.argv])

        def run():
            with warnings.catch_warnings():  # run_module of an imported module warns that it runs it again
                warnings.simplefilter("ignore", RuntimeWarning)
                runpy.run_module(command.target, run_name="__main__", alter_sys=True)
    try:
        run()
    except _Parsed:
        return None
    except SystemExit as stop:
        if stop.code in (0, None):  # --help
            return None
        err = capsys.readouterr().err.strip()
        return err.rsplit("error: ", 1)[-1] if "error: " in err else f"exit {stop.code}: {err[-500:]}"
    finally:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
    pytest.fail(f"{command.quote.where}: {command.target} ran without parsing its arguments with argparse")


def launcher_error(command, capsys):
    """accelerate's error message for `accelerate launch`'s own arguments, or None where they parse."""
    from accelerate.commands.launch import launch_command_parser
    capsys.readouterr()
    try:
        launch_command_parser().parse_args([*command.launcher, command.target])
    except SystemExit:
        return capsys.readouterr().err.strip().rsplit("error: ", 1)[-1]
    return None


def _skip_reason(command):
    return next((why for (file, piece), why in SKIPPED.items()
                 if file == command.quote.file and piece in command.quote.text), None)


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_documented_command_parses(command, monkeypatch, capsys):
    reason = _skip_reason(command)
    if reason:
        pytest.skip(reason)
    if command.launcher is not None:
        error = launcher_error(command, capsys)
        assert error is None, f"{command.quote.where}: `accelerate launch` refuses {command.quote.text!r}: {error}"
    error = parse_only(command, monkeypatch, capsys)
    assert error is None, f"{command.quote.where}: {command.quote.text!r} does not parse: {error}"


def test_the_collector_finds_the_quoted_commands():
    assert len(COMMANDS) >= MIN_COMMANDS, f"only {len(COMMANDS)} commands found: the collector is broken"
    files = {command.quote.file for command in COMMANDS}
    for expected in ("README.md", "docs/benchmarks.md", "docs/exercises.md", "scripts/onpolicy_rounds.py",
                     "benchmarks/prm_scoring.py", "notebooks/06_evaluation.ipynb"):
        assert expected in files, f"no command found in {expected}"
    kinds = {(command.kind, command.launcher is not None) for command in COMMANDS}
    assert kinds >= {("path", False), ("path", True), ("module", False), ("runner", False)}, kinds
    targets = {command.target for command in COMMANDS}
    assert {"stepdpo_lite.tutorial", "stepdpo_lite.tutorial.verifier_pretraining",
            "benchmarks/step_time.py", "scripts/seed_spread.py"} <= targets, targets


def test_every_skip_still_matches_a_command():
    for (file, piece), why in SKIPPED.items():
        assert any(command.quote.file == file and piece in command.quote.text for command in COMMANDS), (
            f"SKIPPED entry ({file!r}, {piece!r}) matches no quoted command: drop it")


def test_collector_reads_blocks_spans_and_placeholders():
    text = ("Run `python scripts/seed_spread.py --seeds 0 1\n2 --parallel 2` or\n\n"
            "```\n"
            "cp -r runs /tmp/r && python -m stepdpo_lite.tutorial --runs-dir <a copy> \\\n"
            "    --only 04   # comment\n"
            "python scripts/onpolicy_rounds.py ... --pairs both\n"
            "```\n"
            "and `.venv/bin/stepdpo-lite --only 02`; not a command: `scripts/seed_spread.py`, `--only 03`.\n")
    found = [(q.where, c.kind, c.target, c.argv) for line, code in markdown_snippets(text)
             for q in [Quote(f"x:{line}", "x", code)] for c in commands_in(q)]
    assert found == [
        ("x:5", "module", "stepdpo_lite.tutorial", ("--runs-dir", "PLACEHOLDER", "--only", "04")),
        ("x:7", "path", "scripts/onpolicy_rounds.py", ("--pairs", "both")),
        ("x:1", "path", "scripts/seed_spread.py", ("--seeds", "0", "1", "2", "--parallel", "2")),
        ("x:9", "runner", RUNNER, ("--only", "02")),
    ]
    source = ('"""Title.\n\n    python scripts/a.py --x 1 \\\n        --y 2   # note\n\n'
              'Also ``python -m stepdpo_lite.tutorial.smoke build [--out DIR]``.\n"""\nimport os\n')
    found = [(line, c.target, c.argv) for line, code in docstring_snippets(source)
             for c in commands_in(Quote(f"d:{line}", "d", code))]
    assert found == [(3, "scripts/a.py", ("--x", "1", "--y", "2")),
                     (6, "stepdpo_lite.tutorial.smoke", ("build", "--out", "DIR"))]


@pytest.mark.parametrize("kind, target, argv, message", [
    ("path", "scripts/seed_spread.py", ("--seedz", "0"), "unrecognized arguments: --seedz 0"),
    ("path", "benchmarks/prm_scoring.py", ("--threads", "one"), "argument --threads: invalid int value: 'one'"),
    ("runner", RUNNER, ("--only",), "argument --only: expected at least one argument"),
    ("module", "stepdpo_lite.tutorial", ("--runs-dirs", "x"), "unrecognized arguments: --runs-dirs x"),
    ("module", "stepdpo_lite.tutorial.smoke", ("bild",), "argument command: invalid choice: 'bild'"),
    ("path", "scripts/no_such_script.py", (), "scripts/no_such_script.py does not exist"),
])
def test_a_wrong_flag_fails_naming_argparse_message(kind, target, argv, message, monkeypatch, capsys):
    command = Command(Quote("x:1", "x", "x"), kind, target, argv)
    error = parse_only(command, monkeypatch, capsys)
    assert error is not None and error.startswith(message), error


def test_a_wrong_accelerate_launch_flag_fails(capsys):
    command = Command(Quote("x:1", "x", "x"), "path", "scripts/ddp_tiny.py", (), launcher=("--multi-gpus",))
    assert launcher_error(command, capsys) == "unrecognized arguments: --multi-gpus"
