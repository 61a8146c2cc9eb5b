"""Dataset formats, loaders and validation (DESIGN §7; an example row of each in docs/formats.md).

Every loader returns a ``datasets.Dataset`` in one of the project's formats:

    stepwise supervision  prompt, completions (list of steps), labels (list of bool)
    outcome               prompt, completion, label (bool)
    preference            prompt, chosen, rejected (+ optional chosen_step_labels, rejected_step_labels)
    Step-DPO              prompt, initial_reason_steps, chosen, rejected (one step each)
    ProcessBench          problem, steps, label (0-based index of the first wrong step, or -1)

Steps keep the delimiter that opens them, as ``steps.extract_steps`` returns them, so
``"".join(completions)`` is the response (PRM800K steps are joined with "\\n").

Bad input raises ``ValueError`` naming the file and line (or the record index) and the field.
Nothing is dropped silently: the options that drop rows (``drop_duplicates``, ``skip_invalid``) and
the builders log how many rows they left out and why (logger ``stepdpo_lite.data``, WARNING).
Toy-world builders and Monte-Carlo step labelling live in ``labelling.py``; they are re-exported here.
"""

from __future__ import annotations

import ast
import json
import logging
import operator
import os
import random
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Mapping, Sequence

from datasets import Dataset, load_from_disk

from .runs import save_atomic
from .steps import extract_steps

logger = logging.getLogger(__name__)

STEPWISE = ("prompt", "completions", "labels")
OUTCOME = ("prompt", "completion", "label")
PREFERENCE = ("prompt", "chosen", "rejected")
STEP_DPO = ("prompt", "initial_reason_steps", "chosen", "rejected")
PROCESSBENCH = ("problem", "steps", "label")
GSM8K_SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


# ----------------------------------------------------------------------------- field checks

class _Bad(Exception):
    """One field of one record is wrong; ``_check_all`` turns it into a ValueError that says where."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem

    def __str__(self):
        return f"field {self.field!r}: {self.problem}"


@contextmanager
def _inside(prefix: str):
    """Name nested fields in full (``label.steps[3].chosen_completion``)."""
    try:
        yield
    except _Bad as e:
        e.field = f"{prefix}.{e.field}"
        raise


def _field(row: Mapping, name: str):
    if not isinstance(row, Mapping):
        raise _Bad(name, f"expected an object holding it, got {type(row).__name__}")
    if name not in row:
        raise _Bad(name, "is missing")
    return row[name]


def _text(row: Mapping, name: str, blank_ok: bool = False) -> str:
    value = _field(row, name)
    if not isinstance(value, str):
        raise _Bad(name, f"must be a string, got {type(value).__name__}")
    if not blank_ok and not value.strip():
        raise _Bad(name, "is empty")
    return value


def _bool(row: Mapping, name: str) -> bool:
    value = _field(row, name)
    if not isinstance(value, bool):  # 0/1 are refused on purpose: a label column should say what it means
        raise _Bad(name, f"must be true or false, got {value!r:.40}")
    return value


def _list(row: Mapping, name: str, item: type) -> list:
    """A non-empty list of ``item`` (bool, or non-blank str)."""
    value = _field(row, name)
    what = "true/false labels" if item is bool else "non-empty strings"
    if not isinstance(value, (list, tuple)) or not value:
        raise _Bad(name, f"must be a non-empty list of {what}, got {value!r:.40}")
    for j, x in enumerate(value):
        if not isinstance(x, item) or (item is str and not x.strip()):
            raise _Bad(f"{name}[{j}]", f"must be one of {what}, got {x!r:.40}")
    return list(value)


# ----------------------------------------------------------------------------- reading and checking records

def _read_json(path) -> list[tuple[str, object]]:
    """``(where, record)`` for each record of a JSONL file (one object a line) or a .json array."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json file must hold an array of records, got {type(data).__name__}")
        records = [(f"{path}, record {i}", r) for i, r in enumerate(data)]
    else:
        records = []
        for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): it also splits at U+2028 inside strings
            if line.strip():
                try:
                    records.append((f"{path}, line {n}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg}, column {e.colno}); "
                                     f"is the line truncated?") from None
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def _records(rows) -> list[tuple[str, object]]:
    if isinstance(rows, (str, os.PathLike)):
        return _read_json(rows)
    return [(f"record {i}", r) for i, r in enumerate(rows)]


def _check_all(records, check: Callable, name: str, *, key: Sequence[str] = (), drop_duplicates: bool = False,
               skip_invalid: bool = False) -> list[dict]:
    """Rows that ``check(record) -> list of rows`` makes; errors say where they happened.

    Rows whose ``key`` fields repeat an earlier row's are an error, or dropped with ``drop_duplicates``.
    """
    kept, seen, invalid, repeats = [], {}, [], 0
    for where, record in records:
        try:
            if not isinstance(record, Mapping):
                raise _Bad("(record)", f"must be a JSON object, got {type(record).__name__}")
            rows = check(record)
        except _Bad as e:
            if not skip_invalid:
                raise ValueError(f"{name}: {where}: {e}") from None
            invalid.append(f"{where}: {e}")
            continue
        for row in rows:
            if key:
                k = tuple(json.dumps(row[f]) for f in key)
                if k in seen:
                    if not drop_duplicates:
                        raise ValueError(f"{name}: {where}: fields {', '.join(map(repr, key))} repeat {seen[k]} "
                                         f"(a duplicate pair); pass drop_duplicates=True to drop repeats")
                    repeats += 1
                    continue
                seen[k] = where
            kept.append(row)
    if invalid:
        logger.warning("%s: skipped %d invalid records (skip_invalid=True); the first: %s", name, len(invalid), invalid[0])
    if repeats:
        logger.warning("%s: dropped %d duplicate rows (drop_duplicates=True)", name, repeats)
    return kept


def _dataset(rows: list[dict], columns: Sequence[str]) -> Dataset:
    """The format's columns first (present even with no rows), then any extra columns of any row."""
    names = list(dict.fromkeys([*columns, *(k for r in rows for k in r)]))
    return Dataset.from_dict({c: [r.get(c) for r in rows] for c in names})


# ----------------------------------------------------------------------------- the project's formats

def _stepwise(row):
    _text(row, "prompt")
    steps, labels = _list(row, "completions", str), _list(row, "labels", bool)
    if len(steps) != len(labels):
        raise _Bad("labels", f"has {len(labels)} labels for {len(steps)} completions (steps)")
    return [dict(row)]


def _outcome(row):
    _text(row, "prompt"), _text(row, "completion"), _bool(row, "label")
    if row.get("step_labels") is not None:
        _list(row, "step_labels", bool)
    return [dict(row)]


def _preference(row, delimiter=None):
    _text(row, "prompt")
    texts = {side: _text(row, side) for side in ("chosen", "rejected")}
    if texts["chosen"] == texts["rejected"]:
        raise _Bad("rejected", "is identical to 'chosen'")
    for side, text in texts.items():
        name = f"{side}_step_labels"
        if row.get(name) is not None:
            labels = _list(row, name, bool)
            if delimiter is not None and len(labels) != len(steps := extract_steps(text, delimiter)):
                raise _Bad(name, f"has {len(labels)} labels but {side!r} has {len(steps)} steps (delimiter {delimiter!r})")
    return [dict(row)]


def _step_dpo(row):
    _text(row, "prompt"), _text(row, "initial_reason_steps", blank_ok=True)  # empty when step 1 already differs
    if _text(row, "chosen") == _text(row, "rejected"):
        raise _Bad("rejected", "is identical to 'chosen'")
    return [dict(row)]


def _processbench(row):
    _text(row, "problem")
    steps, label = _list(row, "steps", str), _field(row, "label")
    if type(label) is not int or not -1 <= label < len(steps):
        raise _Bad("label", f"must be -1 or a step index 0..{len(steps) - 1}, got {label!r:.40}")
    return [dict(row)]


def validate_stepwise(rows, *, skip_invalid: bool = False) -> Dataset:
    """Check stepwise-supervision rows (a list of dicts, a Dataset, or a JSON/JSONL path); return a Dataset.

    Checks: non-empty ``prompt``; ``completions`` a non-empty list of non-blank steps; ``labels`` a list of
    bool of the same length. ``skip_invalid=True`` drops bad records instead of raising (and logs how many).
    """
    return _dataset(_check_all(_records(rows), _stepwise, "stepwise", skip_invalid=skip_invalid), STEPWISE)


def validate_outcome(rows, *, skip_invalid: bool = False) -> Dataset:
    """Check outcome rows: non-empty ``prompt`` and ``completion``, bool ``label``, optional ``step_labels``."""
    return _dataset(_check_all(_records(rows), _outcome, "outcome", skip_invalid=skip_invalid), OUTCOME)


def validate_preference(rows, *, delimiter: str | None = None, drop_duplicates: bool = False,
                        skip_invalid: bool = False) -> Dataset:
    """Check preference rows: non-empty ``prompt``/``chosen``/``rejected``, chosen != rejected, no repeated
    (prompt, chosen, rejected); optional ``chosen_step_labels``/``rejected_step_labels`` are lists of bool,
    with one label per step of their text when ``delimiter`` is given."""
    return _dataset(_check_all(_records(rows), lambda r: _preference(r, delimiter), "preference", key=PREFERENCE,
                               drop_duplicates=drop_duplicates, skip_invalid=skip_invalid), PREFERENCE)


def validate_step_dpo(rows, *, drop_duplicates: bool = False, skip_invalid: bool = False) -> Dataset:
    """Check Step-DPO rows: non-empty ``prompt``, ``chosen``, ``rejected`` (chosen != rejected), string
    ``initial_reason_steps`` (may be empty), no repeated rows."""
    return _dataset(_check_all(_records(rows), _step_dpo, "step_dpo", key=STEP_DPO, drop_duplicates=drop_duplicates,
                               skip_invalid=skip_invalid), STEP_DPO)


def validate_processbench(rows, *, skip_invalid: bool = False) -> Dataset:
    """Check ProcessBench rows: non-empty ``problem``, non-empty ``steps``, ``label`` -1 or a step index."""
    return _dataset(_check_all(_records(rows), _processbench, "processbench", skip_invalid=skip_invalid), PROCESSBENCH)


def load_preference(path_or_rows, **kw) -> Dataset:
    """Preference rows from a JSON/JSONL file (or rows in memory); see ``validate_preference`` for options."""
    return validate_preference(path_or_rows, **kw)


def load_step_dpo(path, **kw) -> Dataset:
    """Step-DPO rows (Lai et al. 2024, arXiv:2406.18629; the Math-Step-DPO-10K layout, extra columns such as
    ``full_chosen`` kept) from a JSON/JSONL file; see ``validate_step_dpo`` for options."""
    return validate_step_dpo(path, **kw)


def load_processbench(path, **kw) -> Dataset:
    """ProcessBench rows (Zheng et al. 2024, arXiv:2412.06559): a JSONL file or an upstream JSON array."""
    return validate_processbench(path, **kw)


# ----------------------------------------------------------------------------- PRM800K

def _prm800k(record, neutral_as: bool, branches: bool):
    with _inside("question"):
        prompt = _text(_field(record, "question"), "problem")
    with _inside("label"):
        steps = _field(_field(record, "label"), "steps")
        if not isinstance(steps, list):
            raise _Bad("steps", f"must be a list, got {type(steps).__name__}")
    rows, path, labels = [], [], []
    for k, step in enumerate(steps):
        with _inside(f"label.steps[{k}]"):
            options = _field(step, "completions") or []
            for j, option in enumerate(options):
                with _inside(f"completions[{j}]"):
                    _text(option, "text", blank_ok=True)
                    if _field(option, "rating") not in (-1, 0, 1, None):
                        raise _Bad("rating", f"must be -1, 0, 1 or null, got {option['rating']!r:.40}")
            chosen, human = _field(step, "chosen_completion"), _field(step, "human_completion")
            if chosen is not None and (type(chosen) is not int or not 0 <= chosen < len(options)):
                raise _Bad("chosen_completion", f"must be null or an index into completions, got {chosen!r:.40}")
            if chosen is None and human is not None:
                with _inside("human_completion"):
                    _text(human, "text")
        if chosen is not None:
            followed, text, rating = chosen, options[chosen]["text"], options[chosen]["rating"]
        elif human is not None:  # a step a labeller wrote after rejecting the model's: correct by construction
            followed, text, rating = None, human["text"], 1
        else:  # the labeller stopped here; a step rated -1 is the first error (phase 2: the model's own step)
            followed = next((j for j, o in enumerate(options) if o["rating"] == -1), None)
            text, rating = (options[followed]["text"], -1) if followed is not None else ("", None)
        if branches:  # TRL's PRM800K recipe: each rated alternative not followed ends a row of its own
            for j, o in enumerate(options):
                if j != followed and o["rating"] is not None:
                    rows.append({"prompt": prompt, "completions": [*path, "\n" * bool(path) + o["text"]],
                                 "labels": [*labels, neutral_as if o["rating"] == 0 else o["rating"] == 1]})
        if rating is None:
            break  # unlabelled from here on
        path.append("\n" * bool(path) + text)  # PRM800K steps are lines: "".join(completions) is the solution
        labels.append(neutral_as if rating == 0 else rating == 1)
        if rating == -1:
            break  # stop after the first wrong step: the labeller labelled nothing after it
    if path:
        rows.append({"prompt": prompt, "completions": path, "labels": labels})
    for row in rows:
        _stepwise(row)
    return rows


def load_prm800k(path, *, neutral_as: bool = True, branches: bool = False, skip_invalid: bool = False) -> Dataset:
    """PRM800K (Lightman et al. 2023, arXiv:2305.20050) canonical JSONL -> stepwise supervision rows.

    Each record gives one row: its steps along the path the labellers took, i.e. at each step the
    ``chosen_completion``, else the ``human_completion`` (labelled correct), else the first completion rated
    -1 (phase 2's model step where the labeller found the error). Rating 1 is correct and -1 wrong; rating 0
    (neutral: not wrong, but not clearly progress) counts as ``neutral_as`` — correct by default, because a PRM
    should flag errors, and a neutral step is none (TRL's PRM800K script counts it wrong: ``neutral_as=False``).
    The row stops after the first wrong step, since nothing after it is labelled, or before an unrated step.
    ``branches=True`` also makes one row per rated alternative completion that was not followed (prefix +
    that step), as TRL's PRM800K script does. Records with no labelled step give no row (logged).
    """
    no_row = []

    def convert(record):
        rows = _prm800k(record, neutral_as, branches)
        if not rows:
            no_row.append(record)
        return rows

    rows = _check_all(_records(path), convert, "prm800k", skip_invalid=skip_invalid)
    if no_row:
        logger.warning("prm800k: %d records have no labelled step and gave no row", len(no_row))
    return _dataset(rows, STEPWISE)


# ----------------------------------------------------------------------------- Math-Shepherd

def _math_shepherd(row, marker: str = "ки"):
    text, label = _text(row, "input"), _text(row, "label")
    pieces = text.split(marker)  # the step tag follows each step; `label` holds "+" or "-" in its place
    if len(pieces) < 2:
        raise _Bad("input", f"has no step tag {marker!r}")
    labels, pos = [], 0
    for j, piece in enumerate(pieces):
        if label[pos:pos + len(piece)] != piece:
            raise _Bad("label", f"differs from 'input' near character {pos}: it must be 'input' with each "
                                f"{marker!r} replaced by '+' or '-'")
        pos += len(piece)
        if j < len(pieces) - 1:
            if label[pos:pos + 1] not in ("+", "-"):
                raise _Bad("label", f"has {label[pos:pos + 1]!r} where 'input' has step tag {j + 1}; expected '+' or '-'")
            labels.append(label[pos] == "+")
            pos += 1
    if pos != len(label) or pieces[-1].strip():
        raise _Bad("label" if pos != len(label) else "input", "has text after the last step tag")
    first = re.search(r"[Ss]tep 1:", pieces[0])
    if not first:  # the question and the first step share the first piece; "Step 1:" is where they meet
        raise _Bad("input", "has no 'Step 1:' before the first step tag: cannot tell the question from step 1")
    steps = [pieces[0][first.start():], *pieces[1:-1]]
    out = {"prompt": pieces[0][:first.start()].strip(), "completions": [s.rstrip(" ") for s in steps], "labels": labels}
    return _stepwise(out)


def load_math_shepherd(path, *, skip_invalid: bool = False) -> Dataset:
    """Math-Shepherd rows (Wang et al. 2024, arXiv:2312.08935) -> stepwise supervision rows.

    A row's ``input`` is the question, then ``Step 1: ... ки\\nStep 2: ... ки`` (the tag ``ки`` after each step),
    and its ``label`` is the same text with ``+`` (the step can still reach the answer) or ``-`` in each tag's
    place. The question ends where ``Step 1:`` begins; the space before each tag is dropped, so steps read
    ``"Step 1: ..."``, ``"\\nStep 2: ..."`` and join back into the solution. Rows that do not follow this layout
    raise (or are skipped and counted with ``skip_invalid=True``: the public set has a few).
    """
    return _dataset(_check_all(_records(path), _math_shepherd, "math_shepherd", skip_invalid=skip_invalid), STEPWISE)


# ----------------------------------------------------------------------------- GSM8K

_CALC_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Mod: operator.mod, ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv}
_ANNOTATION = re.compile(r"<<([^<>]*)=([^<>=]*)>>\$?(-?[\d,]*\.?\d+(?:/\d+)?)?")


def _calc(text: str) -> float:
    """Evaluate calculator arithmetic (numbers, + - * / % ** and brackets) by walking its syntax tree:
    never ``eval``; anything else (names, calls, huge powers) raises ValueError."""
    def ev(node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _CALC_OPS:
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and (abs(b) > 64 or abs(a) > 1e6):
                raise ValueError("power too large")
            return _CALC_OPS[type(node.op)](a, b)
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text.strip())  # 1,000 -> 1000
    try:
        return float(ev(ast.parse(text, mode="eval").body))
    except (SyntaxError, ZeroDivisionError, OverflowError, TypeError) as e:
        raise ValueError(str(e)) from None


def _same_number(x: float, written: str) -> bool:
    """``x`` equals the number ``written``, also when written rounded (10/3 = 3.33)."""
    y = _calc(written)
    decimals = len(written.strip().split(".")[1]) if "." in written else 0
    return abs(x - y) <= 1e-6 * max(1.0, abs(y)) or round(x, decimals) == round(y, decimals)


def calculator_check(line: str) -> bool:
    """Does the arithmetic of a GSM8K line hold (Cobbe et al. 2021, arXiv:2110.14168)?

    False when a ``<<expr=value>>`` annotation is wrong: ``expr`` does not evaluate to ``value`` (arithmetic
    error) or the number written just after the annotation is not ``value`` (copy error). A line without
    annotations, or whose annotation is not plain arithmetic, counts as correct: unknown, not verified.
    """
    for m in _ANNOTATION.finditer(line):
        try:
            value = _calc(m.group(2))
            if not _same_number(_calc(m.group(1)), m.group(2)) or (m.group(3) and not _same_number(value, m.group(3))):
                return False
        except ValueError:
            continue
    return True


def _gsm8k_solutions(record):
    prompt, rows = _text(record, "question"), []
    for solver in GSM8K_SOLVERS:
        answer = _field(record, solver)
        with _inside(solver):
            solution, correct = _text(answer, "solution"), _bool(answer, "is_correct")
        steps = extract_steps(solution, delimiter="\n")  # GSM8K solutions are one step a line
        rows += _outcome({"prompt": prompt, "completion": solution, "label": correct,
                          "step_labels": [calculator_check(s) for s in steps], "solver": solver})
    return rows


def load_gsm8k_solutions(path, *, skip_invalid: bool = False) -> Dataset:
    """GSM8K ``example_model_solutions.jsonl`` -> outcome rows, four per problem (one per solver model).

    Columns: ``prompt``, ``completion``, ``label`` (``is_correct``), ``step_labels`` (one per line, from
    ``calculator_check``: arithmetic only, not propagated; a line without annotation counts as correct) and
    ``solver``.
    """
    return _dataset(_check_all(_records(path), _gsm8k_solutions, "gsm8k", skip_invalid=skip_invalid), OUTCOME)


def _gsm8k_problem(record):
    prompt, answer = _text(record, "question"), _text(record, "answer")
    if "\n#### " not in answer:
        raise _Bad("answer", "has no final '#### <answer>' line")
    solution, final = answer.rsplit("\n#### ", 1)
    return [{"prompt": prompt, "solution": solution, "answer": final.strip()}]


def load_gsm8k_problems(path) -> Dataset:
    """GSM8K ``test.jsonl``/``train.jsonl`` -> ``prompt``, ``solution`` (the reference lines), ``answer``."""
    return _dataset(_check_all(_records(path), _gsm8k_problem, "gsm8k_problems"), ("prompt", "solution", "answer"))


def process_labels(line_labels: Sequence[bool], correct: bool) -> list[bool]:
    """Per-line arithmetic verdicts -> process labels ("can this step still reach the answer?").

    After the first wrong line every line is wrong (the error propagates, as in Math-Shepherd); an
    incorrect solution whose lines all pass gets its last line (the answer) marked wrong, the one line
    known to be wrong.
    """
    first = list(line_labels).index(False) if False in line_labels else len(line_labels)
    labels = [k < first for k in range(len(line_labels))]
    if not correct and labels and all(labels):
        labels[-1] = False
    return labels


def gsm8k_preference_pairs(solutions, *, max_pairs_per_problem: int | None = None, step_labels: bool = True,
                           seed: int = 0) -> Dataset:
    """Preference pairs between a correct and an incorrect GSM8K model solution of the same problem.

    ``solutions``: the path of ``example_model_solutions.jsonl`` or ``load_gsm8k_solutions``'s Dataset.
    All correct x incorrect combinations, shuffled with ``seed`` and cut to ``max_pairs_per_problem``;
    a text two solvers wrote alike is used once (logged). With ``step_labels``, ``chosen_step_labels`` and
    ``rejected_step_labels`` come from ``process_labels`` of the calculator check (one per line).
    """
    ds = load_gsm8k_solutions(solutions) if isinstance(solutions, (str, os.PathLike)) else solutions
    problems: dict[str, dict[str, dict]] = {}
    for row in ds:
        problems.setdefault(row["prompt"], {}).setdefault(row["completion"], row)
    repeats = len(ds) - sum(map(len, problems.values()))
    rows = []
    for prompt, texts in problems.items():
        good = [r for r in texts.values() if r["label"]]
        pairs = [(c, r) for c in good for r in texts.values() if not r["label"]]
        random.Random(f"{seed}:{prompt}").shuffle(pairs)  # str seeds are hashed the same way in every process
        for c, r in pairs[:max_pairs_per_problem]:
            row = {"prompt": prompt, "chosen": c["completion"], "rejected": r["completion"]}
            if step_labels:
                row["chosen_step_labels"] = process_labels(c["step_labels"], True)
                row["rejected_step_labels"] = process_labels(r["step_labels"], False)
            rows.append(row)
    if repeats:
        logger.warning("gsm8k_preference_pairs: %d solutions repeat another solver's text for the same problem; "
                       "each text was used once", repeats)
    return validate_preference(rows, delimiter="\n")


# ----------------------------------------------------------------------------- TRL and saving

def to_trl_dpo(ds: Dataset, *, keep_step_labels: bool = False) -> Dataset:
    """Preference or Step-DPO rows -> the prompt/chosen/rejected strings of TRL's ``DPOTrainer``.

    A Step-DPO row's prompt becomes ``prompt + initial_reason_steps`` (concatenated as they are: apply a chat
    template to ``prompt`` beforehand if your model needs one), so DPO learns to prefer the chosen next step
    after the shared correct prefix (Lai et al. 2024). ``keep_step_labels`` keeps the step-label columns.
    """
    if "initial_reason_steps" in ds.column_names:
        ds = validate_step_dpo(ds)
        prompts = [p + steps for p, steps in zip(ds["prompt"], ds["initial_reason_steps"])]
        ds = ds.remove_columns("prompt").add_column("prompt", prompts)
    else:
        ds = validate_preference(ds)
    extra = [c for c in ("chosen_step_labels", "rejected_step_labels") if keep_step_labels and c in ds.column_names]
    return ds.select_columns([*PREFERENCE, *extra])


def save_datasets(datasets: Mapping[str, Dataset], folder) -> Path:
    """Save each dataset to ``folder/<name>`` atomically: a crash mid-save leaves the previous copy whole."""
    for name, ds in datasets.items():
        save_atomic(Path(folder) / name, lambda p, ds=ds: ds.save_to_disk(p))
    return Path(folder)


def load_datasets(folder, names: Sequence[str] | None = None) -> dict[str, Dataset]:
    """The datasets ``save_datasets`` wrote to ``folder`` (all of them, or ``names``)."""
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / "state.json").exists())
    return {name: load_from_disk(str(folder / name)) for name in names}


# The builders from sampled solutions and Monte-Carlo labelling live in labelling.py (which uses the checks
# above); they are looked up lazily so that either module can be imported first.
_LABELLING = ("toy_stepwise_rows", "toy_outcome_rows", "toy_preference_pairs", "toy_step_dpo_pairs",
              "mc_step_labels", "toy_mc_step_labels", "label_agreement")


def __getattr__(name):
    if name in _LABELLING:
        from . import labelling
        return getattr(labelling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
