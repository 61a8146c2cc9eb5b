"""Every link the texts hold resolves: README.md, docs/*.md and the notebooks' markdown cells hold markdown links
and images, `[text](target)` and `![alt](target)`, outside fenced code blocks and code spans. A link whose file was
renamed or whose heading was reworded leads the reader nowhere, and GitHub says nothing about it.

For each link: a relative path must exist, with the same case, inside the repository (relative to the file that
holds it; a leading / means the repository's root, as on GitHub), and an image must be a file. A `#anchor`, alone
or after a .md or .ipynb path, must be the anchor GitHub gives one of the target's headings (ATX headings outside
fenced code; a notebook's from its markdown cells, in order): the heading's rendered text (code spans keep their
text; emphasis markers, link syntax and HTML tags go), lowercased, every character that is not a letter,
digit, mark, connector (_), space or hyphen dropped, each space turned into a hyphen; a repeated slug gets -1, -2,
... in document order. After another file, only GitHub's line anchors (#L10, #L10-L20) are understood. http(s) and
mailto targets are not fetched (no network); any other scheme is checked as a path, and so fails.
"""
from __future__ import annotations

import html
import json
import os
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What the texts hold today (measured): 57 links, 43 of them in the repository (3 images, 40 anchors), 14 to the web
# (README.md's Colab badges). A collector that breaks finds far fewer.
MIN_LINKS = 50
MIN_LOCAL = 38

EXTERNAL = re.compile(r"(?i)^(https?:|mailto:)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")  # any indentation: a fence inside a list item too
SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
# After "](": the destination (<...>, or a run without spaces holding balanced parentheses), an optional title, ")"
DESTINATION = re.compile(r"\(\s*(<[^>\n]*>|(?:[^\s()]|\([^\s()]*\))*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
LINE_ANCHOR = re.compile(r"L(\d+)(?:-L(\d+))?")


# --- GitHub's heading anchors ---------------------------------------------------------------------------------

def rendered(text):
    """A heading's text as GitHub renders it: code spans keep their content (their underscores and stars too);
    outside them, links and images give their text, HTML tags and emphasis markers go, entities are decoded."""
    out, spans = [], SPAN.split(text)  # outside, fence, content, outside, ...
    for i, part in enumerate(spans):
        if i % 3 == 1:
            continue
        if i % 3 == 2:  # a code span: its content, one space each side taken off when both are there
            part = part.replace("\n", " ")
            out.append(part[1:-1] if part[:1] == part[-1:] == " " and part.strip() else part)
            continue
        part = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", part)
        part = re.sub(r"</?[A-Za-z][^>]*>", "", part)
        part = re.sub(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1", r"\2", part)
        part = re.sub(r"(?<![^\W_])(__|_)(?=\S)(.+?)(?<=\S)\1(?![^\W_])", r"\2", part)  # not inside a word
        part = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", part)  # backslash escapes
        out.append(html.unescape(part))
    return "".join(out)


def slug(text):
    """GitHub's slug of rendered heading text."""
    out = []
    for ch in text.strip().lower():
        cat = unicodedata.category(ch)
        if ch in " -" or cat[0] in "LNM" or cat == "Pc":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def anchors(blocks):
    """The anchors of the headings in ``blocks`` (lists of lines: a file's, or each markdown cell's of a notebook),
    in order; a repeated slug gets -1, -2, ..."""
    seen, result = {}, []
    for lines in blocks:
        fence = None
        for line in lines:
            m = FENCE.match(line)
            if fence is None and m:
                fence = m.group(1)
                continue
            if fence is not None:
                if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end():].strip():
                    fence = None
                continue
            h = HEADING.match(line)
            if h:
                base = slug(rendered(h.group(2) or ""))
                n = seen.get(base, 0)
                seen[base] = n + 1
                result.append(base if n == 0 else f"{base}-{n}")
    return result


# --- Collecting the links --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    where: str  # file:line, or for a notebook file:cellN:line (the line in the cell's source)
    file: str  # the text that holds it, relative to ROOT
    target: str
    image: bool


def prose(text):
    """``text`` with fenced code blocks emptied and code spans blanked out (every character but newlines turned
    into _), so that offsets and line numbers stay as they are. A code span does not cross a blank line."""
    lines, fence = text.split("\n"), None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if fence is None and m:
            fence, lines[i] = m.group(1), ""
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end():].strip():
                fence = None
            lines[i] = ""
    text = "\n".join(lines)
    blank = lambda m: re.sub(r"[^\n]", "_", m.group(0))  # noqa: E731
    return "\n\n".join(SPAN.sub(lambda m: m.group(0) if re.search(r"\n[ \t]*\n", m.group(0)) else blank(m), p)
                       for p in text.split("\n\n"))


def links_in(text):
    """(line number from 1, target, is an image) of every inline link and image in ``text``. Each "](" closes a
    link's text when a "[" opens it before, brackets balanced, within the paragraph; images nested in a link's
    text count too."""
    text, found = prose(text), []
    for m in re.finditer(r"(?<!\\)\]\(", text):
        depth, k = 0, m.start()
        while k >= 0:
            ch = text[k]
            if ch == "\n" and not text[text.rfind("\n", 0, k) + 1:k].strip():  # a blank line before
                k = -1
                break
            if text[k - 1:k] != "\\" and ch in "[]":
                depth += 1 if ch == "]" else -1
                if depth == 0:
                    break
            k -= 1
        dest = DESTINATION.match(text, m.end() - 1)
        if k < 0 or not dest:
            continue
        target = dest.group(1)
        target = target[1:-1] if target.startswith("<") else target
        found.append((text.count("\n", 0, k) + 1, target, text[k - 1:k] == "!"))
    return found


def texts():
    """(file relative to ROOT, where-prefix, its text) for each markdown text and notebook markdown cell."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        yield path, str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for n, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                source = cell["source"]
                yield path, f"{path.relative_to(ROOT)}:cell{n}", "".join(source) if isinstance(source, list) else source


def collect():
    return [Link(f"{where}:{line}", str(path.relative_to(ROOT)), target, image)
            for path, where, text in texts() for line, target, image in links_in(text)]


# --- Resolving them --------------------------------------------------------------------------------------------

def exists_exact(path):
    """``path`` exists with the case of every part as written (a case-insensitive file system aside)."""
    if not path.exists():
        return False
    rel = path.relative_to(ROOT)
    here = ROOT
    for part in rel.parts:
        if part not in {p.name for p in here.iterdir()}:
            return False
        here = here / part
    return True


def heading_anchors(path):
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return anchors(("".join(c["source"]) if isinstance(c["source"], list) else c["source"]).split("\n")
                       for c in cells if c["cell_type"] == "markdown")
    return anchors([path.read_text(encoding="utf-8").split("\n")])


def problem(link):
    """Why ``link`` does not resolve, or None."""
    target = link.target
    if not target:
        return "empty target"
    path_part, _, anchor = target.partition("#")
    path_part, anchor = urllib.parse.unquote(path_part), urllib.parse.unquote(anchor)
    holder = ROOT / link.file
    if path_part:
        path = (ROOT / path_part.lstrip("/")) if path_part.startswith("/") else (holder.parent / path_part)
        path = Path(os.path.normpath(path))
        if path != ROOT and ROOT not in path.parents:
            return f"{path_part} is outside the repository"
        if not exists_exact(path):
            return f"{path_part} does not exist (relative to {holder.parent.relative_to(ROOT)}/)"
        if link.image and not path.is_file():
            return f"image {path_part} is not a file"
    else:
        path = holder
    if "#" not in target:
        return None
    if path.suffix in (".md", ".ipynb"):
        found = heading_anchors(path)
        if anchor not in found:
            near = [a for a in found if anchor[:12] in a or a[:12] in anchor][:3]
            return f"no heading of {path.relative_to(ROOT)} has the anchor #{anchor}" + (
                f" (near: {', '.join('#' + a for a in near)})" if near else "")
        return None
    lines = LINE_ANCHOR.fullmatch(anchor)
    if path.is_file() and lines:
        count = len(path.read_text(encoding="utf-8", errors="replace").split("\n"))
        last = int(lines.group(2) or lines.group(1))
        return None if 1 <= int(lines.group(1)) <= last <= count else f"#{anchor} is past {count} lines"
    return f"#{anchor} on {path.relative_to(ROOT)}: only .md/.ipynb headings and #L<n> line anchors are checked"


LINKS = collect()
LOCAL = [link for link in LINKS if not EXTERNAL.match(link.target)]


@pytest.mark.parametrize("link", LOCAL, ids=[f"{link.where}->{link.target}" for link in LOCAL])
def test_documented_link_resolves(link):
    why = problem(link)
    assert why is None, f"{link.where}: ({link.target}) does not resolve: {why}"


def test_the_collector_finds_the_links():
    images = [link for link in LOCAL if link.image]
    assert len(LINKS) >= MIN_LINKS and len(LOCAL) >= MIN_LOCAL and len(images) >= 3, (
        f"{len(LINKS)} links found ({len(LOCAL)} in the repository, {len(images)} images); the texts hold at least "
        f"{MIN_LINKS} ({MIN_LOCAL}, 3): the collector broke")


# --- The collector and the slug on known cases -----------------------------------------------------------------

@pytest.mark.parametrize("heading, anchor", [
    ("Tutorial wall time (`make tutorial`, tiny profile)", "tutorial-wall-time-make-tutorial-tiny-profile"),
    ("The first differing token only (`step_pairing=\"first_token\"`), and the learning rate",
     "the-first-differing-token-only-step_pairingfirst_token-and-the-learning-rate"),
    ("10×, 50× and 100× the data on a GPU (H200, 2026-12-04)", "10-50-and-100-the-data-on-a-gpu-h200-2026-12-04"),
    ("Stepwise supervision — `validate_stepwise`", "stepwise-supervision--validate_stepwise"),
    ("**Bold** and _emphasis_ and a [link](https://x.org)", "bold-and-emphasis-and-a-link"),
    ("snake_case_name stays", "snake_case_name-stays"),
    ("C++ & C#", "c--c"),
    ("Привет, Welt: Ünïcode", "привет-welt-ünïcode"),
    ("foo  bar", "foo--bar"),
    ("## §1 Steps", "1-steps"),
])
def test_slug_known_github_cases(heading, anchor):
    text = heading if heading.startswith("#") else f"## {heading}"
    assert anchors([[text]]) == [anchor]


def test_repeated_headings_take_numbers_and_fences_hide_headings():
    lines = ["# Usage", "## Usage", "```python", "# Usage (a comment, not a heading)", "```", "### Usage ###",
             "## A b", "## A-b?", "#NoSpace is no heading"]
    assert anchors([lines]) == ["usage", "usage-1", "usage-2", "a-b", "a-b-1"]
    # a notebook's cells number on from one another
    assert anchors([["# Setup"], ["```", "# x", "```"], ["## Setup"]]) == ["setup", "setup-1"]


def test_collector_skips_code_and_reads_nested_links():
    text = "\n".join([
        "See [the method](docs/method.md#steps) and ![a plot](images/a.png \"title\").",
        "`[not a link](nowhere.md)` and ``a `[x](y)` span``",
        "```",
        "[in a fence](fenced.md)",
        "```",
        "[![badge](https://b.svg)](https://x.org/a_(b)) [split",
        "text](#split-text) \\[escaped](no.md)",
        "",
        "a] (not) [x]() [y](<with space.md>)",
    ])
    assert links_in(text) == [(1, "docs/method.md#steps", False), (1, "images/a.png", True),
                              (6, "https://b.svg", True), (6, "https://x.org/a_(b)", False),
                              (6, "#split-text", False), (9, "", False), (9, "with space.md", False)]


@pytest.mark.parametrize("target, image, why", [
    ("docs/method.md", False, None),
    ("docs/images/04_training_curves.png", True, None),
    ("docs", False, None),
    ("docs", True, "image docs is not a file"),
    ("docs/nope.md", False, "docs/nope.md does not exist"),
    ("DOCS/method.md", False, "DOCS/method.md does not exist"),
    ("../outside.md", False, "is outside the repository"),
    ("#no-such-heading-here", False, "no heading of README.md has the anchor #no-such-heading-here"),
    ("pyproject.toml#L1-L2", False, None),
    ("pyproject.toml#L1-L100000", False, "is past"),
    ("pyproject.toml#section", False, "only .md/.ipynb headings"),
    ("", False, "empty target"),
])
def test_resolver_on_known_targets(target, image, why):
    got = problem(Link("README.md:1", "README.md", target, image))
    assert (got is None) if why is None else (got is not None and why in got), got


def test_resolver_reads_anchors_of_other_texts_and_notebooks():
    benchmarks, notebook = heading_anchors(ROOT / "docs/benchmarks.md"), heading_anchors(
        ROOT / "notebooks/04_stepwise_dpo.ipynb")
    assert benchmarks and notebook
    assert problem(Link("README.md:1", "README.md", f"docs/benchmarks.md#{benchmarks[-1]}", False)) is None
    assert problem(Link("docs/method.md:1", "docs/method.md", f"../notebooks/04_stepwise_dpo.ipynb#{notebook[0]}",
                        False)) is None
    assert "no heading" in problem(Link("docs/method.md:1", "docs/method.md", "benchmarks.md#nowhere", False))
