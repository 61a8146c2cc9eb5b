"""Dataset formats, loaders and validation (an example row of each in docs/formats.md).

Every loader returns a ``datasets.Dataset`` in one of the project's formats:

    stepwise supervision  prompt, completions (list of steps), labels (list of bool)
    outcome               prompt, completion, label (bool)
    preference            prompt, chosen, rejected (+ optional chosen_step_labels, rejected_step_labels)
    Step-DPO              prompt, initial_reason_steps, chosen, rejected (one step each)

Steps keep the delimiter that opens them, as ``steps.extract_steps`` returns them, so
``"".join(completions)`` is the response (PRM800K steps are joined with "\\n").

Bad input raises ``ValueError`` naming the file and line (or the record index) and the field.
Nothing is dropped silently: the options that drop rows (``drop_duplicates``, ``skip_invalid``) and
the builders log how many rows they left out and why (logger ``stepdpo_lite.data``, WARNING).
Loaders of published datasets (PRM800K, Math-Shepherd, GSM8K, ProcessBench) live in ``tutorial/public_datasets.py``,
the tasks' pair builders and Monte-Carlo step labelling in ``tutorial/labelling.py``; both import this module.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import pyarrow as pa
from datasets import Dataset, load_from_disk

from .atomic import check_replaceable, save_atomic
from .checks import flag, list_of, warn_user
from .steps import extract_steps

logger = logging.getLogger(__name__)

STEPWISE = ("prompt", "completions", "labels")
OUTCOME = ("prompt", "completion", "label")
PREFERENCE = ("prompt", "chosen", "rejected")
STEP_DPO = ("prompt", "initial_reason_steps", "chosen", "rejected")


# ----------------------------------------------------------------------------- field checks

class BadField(Exception):
    """One field of one record is wrong; ``check_records`` turns it into a ValueError that says where."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem

    def __str__(self):
        return f"field {self.field!r}: {self.problem}" if self.field else self.problem  # "": a line that is no JSON


@contextmanager
def inside_field(prefix: str):
    """Name nested fields in full (``label.steps[3].chosen_completion``)."""
    try:
        yield
    except BadField as e:
        e.field = f"{prefix}.{e.field}"
        raise


def field_value(row: Mapping, name: str):
    if not isinstance(row, Mapping):
        raise BadField(name, f"expected an object holding it, got {type(row).__name__}")
    if name not in row:
        raise BadField(name, f"is missing (the record has: {', '.join(map(str, row)) or 'no fields'})")
    return row[name]


def text_value(row: Mapping, name: str, blank_ok: bool = False) -> str:
    value = field_value(row, name)
    if isinstance(value, list) and value and all(isinstance(m, Mapping) and "content" in m for m in value):
        raise BadField(name, "holds chat messages (role/content dicts), not a string: flatten them with tokenizer."
                         "apply_chat_template(messages, tokenize=False), or join their contents if the model has none")
    if not isinstance(value, str):
        raise BadField(name, "is missing or null" if value is None else f"must be a string, got {type(value).__name__}")
    if not blank_ok and not value.strip():
        raise BadField(name, "is empty")
    return value


def label_hint(value, what: str) -> str:  # how to mend a label that is no bool: bool(None) would call a null wrong
    return (f"; the {what}'s label is missing (null): label it, or leave the row out" if value is None else
            "; convert the labels: bool(x) for 0/1, x == '+' for Math-Shepherd's '+'/'-'")


def bool_value(row: Mapping, name: str) -> bool:
    value = field_value(row, name)
    if not isinstance(value, bool):  # 0/1 are refused on purpose: a label column should say what it means
        raise BadField(name, f"must be true or false, got {value!r:.40}{label_hint(value, 'row')}")
    return value


DELIMITERS = ("\n\nStep", "\n\n", "\n")  # the common ones, longest first: hints name the one a text fits
PARSE_LISTS = " (CSV holds lists as text: parse them with ast.literal_eval or json.loads)"
_ITEMS = {  # what list_value accepts: (the list's items, one item, the check); a NaN fails 0 <= x
    bool: ("true/false labels", "true or false", lambda x: isinstance(x, bool)),
    str: ("non-empty strings", "a non-blank string", lambda x: isinstance(x, str) and x.strip()),
    "fraction": ("fractions in [0, 1]", "a fraction in [0, 1]",
                 lambda x: not isinstance(x, bool) and isinstance(x, numbers.Real) and 0 <= x <= 1),
    "probability": ("true/false labels or probabilities", "true, false or a probability in [0, 1]",
                    lambda x: isinstance(x, numbers.Real) and 0 <= x <= 1)}  # a bool is a Real


def list_value(row: Mapping, name: str, item) -> list:
    """A non-empty list of ``item``: bool, non-blank str, "fraction" (a number in [0, 1], not a bool: Monte-Carlo
    shares) or "probability" (a bool or a number in [0, 1]: a preference row's step labels, which the Stepwise DPO
    trainer reads as probabilities, e.g. a PRM's σ(reward))."""
    value = field_value(row, name)
    what, one, ok = _ITEMS[item]
    if not isinstance(value, (list, tuple)) or not value:
        raise BadField(name, f"must be a non-empty list of {what}, got {value!r:.40}"  # a str "[...": from a CSV
                       + PARSE_LISTS * (isinstance(value, str) and value.lstrip().startswith("[")))
    for j, x in enumerate(value):
        if not ok(x):
            raise BadField(f"{name}[{j}]", f"must be {one}, got {x!r:.40}{label_hint(x, 'step') * (item is bool)}")
    return list(value)


def plain_bools(record: Mapping) -> dict:
    """``record`` with numpy bools (a DataFrame's or an array's labels) as Python bools, in its fields and their lists:
    they are bools, and ``json.dumps`` refuses them. numpy numbers stay: 0/1 are no labels either."""
    def plain(x):
        return bool(x) if type(x).__module__ == "numpy" and type(x).__name__ in ("bool", "bool_") else x
    return {k: type(v)(map(plain, v)) if type(v) in (list, tuple) else plain(v) for k, v in record.items()}


# ----------------------------------------------------------------------------- reading and checking records

def check_records_file(path, who: str) -> None:
    """``FileNotFoundError`` naming ``who``, the path and where a relative one was looked for (running from another
    folder is the usual cause), not pathlib's bare errno; a folder is a ``ValueError``."""
    if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
        raise FileNotFoundError(f"{who}: no such file: {path} (from {Path.cwd()})")
    if isinstance(path, (str, os.PathLike)) and Path(path).is_dir():  # else a bare IsADirectoryError when read
        raise ValueError(f"{who}: {path} is a folder, not a JSON/JSONL file (one save_datasets wrote: load_datasets)")


def read_json_records(path, name: str | None = None) -> list[tuple[str, object]]:
    """``(where, record)`` for each record of a JSONL file (one object a line) or a .json array. A JSONL line that is
    not JSON (cut short) is an invalid record, a ``BadField`` in its place: ``check_records`` raises it, or skips it."""
    check_records_file(path, name or "reading records")
    path = Path(path)
    if (kind := path.suffix.lower()[1:]) in ("csv", "parquet"):  # else "line 1: not valid JSON" or "not UTF-8"
        raise ValueError(f"{name or 'reading records'}: {path} is {kind.upper()}, not JSON/JSONL: pass datasets.load_"
                         f"dataset({kind!r}, data_files=...)['train']{PARSE_LISTS * (kind == 'csv')}, or JSONL")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}, line {line}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                         "save the file as UTF-8") from None
    if path.suffix.lower() == ".json":  # PAIRS.JSON too: its array was read as JSONL, "pretty-printed JSON"
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
                    bad = f"not valid JSON ({e.msg}, column {e.colno}); "
                    if line.strip() in ("{", "["):  # the whole file in another layout, not one record to skip
                        raise ValueError(f"{path}, line {n}: {bad}the file looks like pretty-printed JSON: write one "
                                         "object a line, or a .json array") from None
                    records.append((f"{path}, line {n}", BadField("", bad + "is the line truncated?")))
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def records_of(rows, name: str | None = None) -> list[tuple[str, object]]:
    if isinstance(rows, (str, os.PathLike)):
        return read_json_records(rows, name)
    if type(rows).__name__ == "DataFrame":  # iterating one gives its column names, which then "must be objects"
        raise ValueError(f"{name + ': ' if name else ''}got a pandas DataFrame: pass "
                         "datasets.Dataset.from_pandas(df, preserve_index=False), which also turns its numpy "
                         "array cells into lists (df.to_dict('records') keeps them as arrays, which are refused)")
    if isinstance(rows, (bytes, Mapping)) or not isinstance(rows, Iterable):  # a dict would give its keys
        raise ValueError(f"{name + ': ' if name else ''}expected a list of records, got {type(rows).__name__} "
                         "(pass a list of dicts, a Dataset, or a JSON/JSONL path; wrap one record in a list)")
    return [(f"record {i}", r) for i, r in enumerate(rows)]


def check_records(records, check: Callable, name: str, *, key: Sequence[str] = (), drop_duplicates: bool = False,
                  skip_invalid: bool = False, wheres: list | None = None, none_left_ok: bool = True) -> list[dict]:
    """Rows that ``check(record) -> list of rows`` makes; errors say where they happened.

    Rows whose ``key`` fields repeat an earlier row's are an error, or dropped with ``drop_duplicates``.
    ``wheres``, when given, gets each kept row's record (file and line, or record index). ``none_left_ok=False``:
    records all invalid are a ValueError, even with ``skip_invalid`` (an empty Dataset would fail later, far away).
    """
    flag(skip_invalid, "skip_invalid", name)  # "no" is truthy
    flag(drop_duplicates, "drop_duplicates", name)
    kept, seen, invalid, repeats = [], {}, [], 0
    for where, record in records:
        try:
            if not isinstance(record, Mapping):  # a BadField: a line that is not JSON (read_json_records)
                raise record if isinstance(record, BadField) else BadField("(record)", "must be a JSON object, got "
                                                                              f"{type(record).__name__}")
            rows = check(plain_bools(record))
        except BadField as e:
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
                                         f"(a duplicate pair); drop_duplicates=True (of validate_*, load_*) drops them")
                    repeats += 1
                    continue
                seen[k] = where
            kept.append(row)
            if wheres is not None:
                wheres.append(where)
    if invalid and not kept and not none_left_ok:
        raise ValueError(f"{name}: every record is invalid ({len(invalid)} skipped); the first: {invalid[0]}")
    if invalid:
        logger.warning("%s: skipped %d invalid records (skip_invalid=True); the first: %s", name, len(invalid),
                       invalid[0])
    if repeats:
        logger.warning("%s: dropped %d duplicate rows (drop_duplicates=True)", name, repeats)
    return kept


def dataset_of(rows: list[dict], columns: Sequence[str], name: str | None = None,
               wheres: Sequence[str] | None = None) -> Dataset:
    """The format's columns first (present even with no rows), then any extra columns of any row. A column whose
    values' type changes between records raises a ``ValueError`` naming it and the first record where it does."""
    names = list(dict.fromkeys([*columns, *(k for r in rows for k in r)]))
    values = {c: [r.get(c) for r in rows] for c in names}
    try:
        return Dataset.from_dict(values)
    except (pa.ArrowException, TypeError, ValueError) as e:
        prefix = f"{name}: " if name else ""
        for c, column in values.items():
            if _builds(column):
                continue
            lo, hi = 1, len(column)  # the shortest prefix that cannot be built ends at the culprit
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if not _builds(column[:mid]) else (mid + 1, hi)
            k = lo - 1
            where = wheres[k] if wheres is not None else f"record {k}"
            value, first = column[k], next((v for v in column[:k] if v is not None), None)
            if first is None:
                raise ValueError(f"{prefix}{where}: field {c!r}: {value!r:.40} ({type(value).__name__}) cannot be "
                                 f"stored in a dataset column ({e})") from None
            raise ValueError(f"{prefix}{where}: field {c!r}: {value!r:.40} ({type(value).__name__}) does not have "
                             f"the type of the earlier records' values (e.g. {first!r:.40}, {type(first).__name__}): "
                             "a column must have one type") from None
        raise ValueError(f"{prefix}the records do not make a dataset: {e}") from None


def _builds(column: list) -> bool:
    try:
        Dataset.from_dict({"x": column})
        return True
    except (pa.ArrowException, TypeError, ValueError):
        return False


def validated(rows, check: Callable, name: str, columns: Sequence[str], finish: Callable | None = None,
              wheres: list | None = None, **kw) -> Dataset:
    """``check_records`` of the records of ``rows`` (then ``finish`` of the kept ones, when given), as a Dataset whose
    errors name the record; ``wheres``, when given, gets each kept row's record (a file's line, or its index)."""
    wheres = [] if wheres is None else wheres
    kept = check_records(records_of(rows, name), check, name, wheres=wheres, none_left_ok=False, **kw)
    return dataset_of(finish(kept) if finish else kept, columns, name, wheres)


# ----------------------------------------------------------------------------- the project's formats

def check_stepwise_row(row, delimiter=None):
    text_value(row, "prompt")
    steps = list_value(row, "completions", str)
    # soft_labels: mc_step_labels' shares (a wrong count or a 2.0 would train silently); gold_labels: the checker's
    for name, item in (("labels", bool), ("soft_labels", "fraction"), ("gold_labels", bool)):
        if (name == "labels" or row.get(name) is not None) and len(list_value(row, name, item)) != len(steps):
            raise BadField(name, f"has {len(row[name])} labels for {len(steps)} completions (steps)"
                             + _count_hint(steps, len(row[name])))
    if delimiter and (bare := first_step_not_opening(steps, delimiter)):
        # opens, not splits back (training a PRM's rule): PRM800K steps hold '\n' yet are to pass at it
        raise BadField(f"completions[{bare}]", f"does not open with the delimiter {delimiter!r}: " + (
            f"steps 2..K open with {other!r}: pass delimiter={other!r}" if (other := delimiter_of(steps)) else "bare "
            f"steps run together when joined; data.delimit_steps(row, {delimiter!r}) puts it in front"))
    return [dict(row)]


def first_step_not_opening(steps: Sequence[str], delimiter: str) -> int:
    """The index of the first of steps 2..K not opening with ``delimiter``, 0 when all do: the kit's steps keep the
    delimiter that opens them, so ``"".join(steps)`` is the solution (TRL's bare steps are not: ``delimit_steps``)."""
    return next((j for j, s in enumerate(steps[1:], 1) if not s.startswith(delimiter)), 0)


def delimiter_of(steps: Sequence[str], splits_back: bool = False) -> str | None:
    """The first of ``DELIMITERS`` that opens steps 2..K (``splits_back``: and at which ``"".join(steps)`` splits back
    into them, as a PRM saved with it splits a text it scores), or None."""
    return next((d for d in DELIMITERS if not first_step_not_opening(steps, d)
                 and (not splits_back or extract_steps("".join(steps), d) == list(steps))), None)


def warn_of_unsplittable_steps(rows: Sequence[Mapping], delimiter: str, names: Sequence[str], who: str) -> None:
    """Training a PRM to save with ``delimiter``, where it splits a text it scores: rows not splitting back into their
    steps there. All rows of over one step opening with one other delimiter raise; else one warning names the fix."""
    split = [(i, list(r["completions"])) for i, r in enumerate(rows)
             if len(r["completions"]) != len(extract_steps("".join(r["completions"]), delimiter))]
    if not split:
        return
    opens = [delimiter_of(steps, splits_back=True) for _, steps in split]  # a step holding '\n' is not told '\n'
    if len({*opens}) == 1 and (d := opens[0]) and len(split) == sum(len(r["completions"]) > 1 for r in rows):
        raise ValueError(f"{who}: {names[split[0][0]]}: field 'completions': steps 2..K open with {d!r}, not "
                         f"step_delimiter={delimiter!r}, in all {len(split)} rows of more than one step: a "
                         f"PRM saved so splits a text it scores into other steps; pass step_delimiter={d!r}")
    if (k := next((j for j, d in enumerate(opens) if d), None)) is not None:  # the first opening with another
        fix = (f"in {len(opens) - opens.count(None)} of them ({names[split[k][0]]} first) steps 2..K open with "
               f"{opens[k]!r}: is that the data's delimiter?")
    elif bare := sum(bool(first_step_not_opening(steps, delimiter)) for _, steps in split):
        fix = (f"in {bare} of them steps 2..K do not open with it (TRL's bare steps: trained run together): put "
               "it in front, e.g. ds.map(lambda r: data.delimit_steps(r, '\\n')) with step_delimiter='\\n'")
    else:
        fix = ("these rows' steps contain it: pick a delimiter that opens each step and that the steps never "
               "contain otherwise" if delimiter == "\n" else "set the data's delimiter (e.g. '\\n' for "
               "GSM8K)") + ", or score lists of steps"
    warn_user(f"{who}: {len(split)} of {len(rows)} rows do not split back into their steps at "
              f"step_delimiter={delimiter!r} ({names[split[0][0]]} first, field 'completions'); the "
              f"saved PRM splits a text there when it scores one: {fix}")


def _count_hint(steps: list[str], n: int, text: str | None = None) -> str:
    """Why ``n`` labels may not fit ``steps``: a blank step merged into the next, or a delimiter giving ``n``."""
    breaks = [s[:len(s) - len(s.lstrip())].count("\n") for s in steps]
    if n > len(steps) and (k := next((k for k in range(1, len(steps)) if breaks[k] > min(breaks[1:])), 0)):
        return (f"; step {k + 1} opens with {breaks[k]} line breaks, more than the others: a blank step before it, "
                "joined to it (extract_steps merges a blank step into the next), has no label of its own")
    other = next((d for d in DELIMITERS if text and d in text and len(extract_steps(text, d)) == n), 0)
    return f"; split at {other!r} it has {n} steps: is that its delimiter?" if other else ""


def _labels_per_step(row, name: str, text_field: str, delimiter, item) -> None:
    """``row[name]`` (when set) a list of ``item``, with one label per step of ``row[text_field]`` when ``delimiter``
    is given."""
    if row.get(name) is not None:
        labels = list_value(row, name, item)
        if delimiter is not None and len(labels) != len(steps := extract_steps(row[text_field], delimiter)):
            raise BadField(name, f"has {len(labels)} labels but {text_field!r} has {len(steps)} steps (delimiter "
                             f"{delimiter!r})" + _count_hint(steps, len(labels), row[text_field]))


def check_outcome_row(row, delimiter=None):
    text_value(row, "prompt"), text_value(row, "completion"), bool_value(row, "label")
    _labels_per_step(row, "step_labels", "completion", delimiter, bool)
    return [dict(row)]


def check_preference_row(row, delimiter=None):
    text_value(row, "prompt")
    if text_value(row, "chosen") == text_value(row, "rejected"):
        raise BadField("rejected", "is identical to 'chosen'")
    for side in ("chosen", "rejected"):
        _labels_per_step(row, f"{side}_step_labels", side, delimiter, "probability")
    return [dict(row)]


def check_step_dpo_row(row):
    text_value(row, "prompt"), text_value(row, "initial_reason_steps", blank_ok=True)  # "": step 1 already differs
    if text_value(row, "chosen") == text_value(row, "rejected"):
        raise BadField("rejected", "is identical to 'chosen'")
    return [dict(row)]


def validate_stepwise(rows, *, delimiter: str | None = None, skip_invalid: bool = False,
                      wheres: list | None = None) -> Dataset:
    """Check stepwise-supervision rows (a list of dicts, a Dataset, or a JSON/JSONL path); return a Dataset.

    Checks: non-empty ``prompt``; ``completions`` a non-empty list of non-blank steps; ``labels`` a list of
    bool of the same length; optional ``soft_labels`` (``mc_step_labels``) a list of numbers in [0, 1] and
    ``gold_labels`` (``problem_mc_step_labels``) a list of bool, each of the same length; with ``delimiter``, steps
    2..K open with it (TRL's bare steps do not: ``delimit_steps``). ``skip_invalid=True`` drops bad records instead
    of raising (and logs how many). ``wheres``, when given, gets each row's record (a file's line, or its index).
    """
    if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):  # "": no check; 5: a TypeError
        raise ValueError(f"validate_stepwise: delimiter must be a non-empty string or None, got {delimiter!r:.40}")
    return validated(rows, lambda r: check_stepwise_row(r, delimiter), "stepwise", STEPWISE, wheres=wheres,
                     skip_invalid=skip_invalid)


def delimit_steps(row: Mapping, delimiter: str, prompt_separator: str = "\n") -> dict:
    """A stepwise row of bare steps (``["12 - 5 = 7", "7 + 6 = 13"]``, TRL's form) in this kit's: ``delimiter`` opens
    steps 2..K, less the end of it that a step opens with ("\\n\\nStep" + "Step 2: ..." adds "\\n\\n"; an end cut
    between words or line breaks), and ``prompt_separator`` ends a prompt that would run into step 1
    (``prompt_runs_into``). For a Dataset: ``ds.map(lambda r: delimit_steps(r, "\\n"))``.

    >>> delimit_steps({"prompt": "12-5+6?", "completions": ["12-5 = 7", "7+6 = 13"], "labels": [True, True]}, "\\n")
    {'prompt': '12-5+6?\\n', 'completions': ['12-5 = 7', '\\n7+6 = 13'], 'labels': [True, True]}
    """
    if not isinstance(delimiter, str) or not delimiter:  # "" would add nothing: the steps would stay bare
        raise ValueError(f"delimit_steps: delimiter must be a non-empty string (e.g. '\\n'), got {delimiter!r}")
    if not isinstance(prompt_separator, str):  # None was a TypeError from str * bool, with no name
        raise ValueError(f"delimit_steps: prompt_separator must be a string (e.g. '\\n'), got {prompt_separator!r:.40}")
    row = check_records([("row", row)], check_stepwise_row, "delimit_steps")[0]  # errors name fields; bools plain
    steps = row["completions"]
    ends = [i for i in range(len(delimiter) + 1) if i in (0, len(delimiter)) or not delimiter[i - 1:i + 1].isalnum()]
    return {**row, "prompt": row["prompt"] + prompt_separator * prompt_runs_into(row["prompt"], steps[0]),
            "completions": [s if j == 0 else next(delimiter[:i] for i in ends if s.startswith(delimiter[i:])) + s
                            for j, s in enumerate(steps)]}


def prompt_runs_into(prompt: str, step: str) -> bool:
    """Whether ``prompt + step`` has no whitespace between them ("...?Step 1: ..."): the model reads one text."""
    return not prompt[-1:].isspace() and not step[:1].isspace()


def warn_of_joined_prompts(who: str, prompts, responses, what: str, names=None) -> None:
    """One warning of the rows whose prompt runs into one of its ``responses`` (``what``), as in "...?Step 1: ..."."""
    if joined := [i for i, (p, rs) in enumerate(zip(prompts, responses)) if any(prompt_runs_into(p, r) for r in rs)]:
        warn_user(f"{who}: {len(joined)} of {len(prompts)} rows' prompts run into {what} with no whitespace between "
                  f"({names[joined[0]] if names else f'row {joined[0]}'} first, field 'prompt'): end them with '\\n' "
                  "(data.delimit_steps does) or the model's chat template")


def validate_outcome(rows, *, delimiter: str | None = None, skip_invalid: bool = False,
                     wheres: list | None = None) -> Dataset:
    """Check outcome rows: non-empty ``prompt`` and ``completion``, bool ``label``, optional ``step_labels`` (a list
    of bool, with one label per step of ``completion`` when ``delimiter`` is given: the loaders split steps
    differently, e.g. GSM8K solutions by line, so the count is only checked against a delimiter you name).
    ``wheres``, when given, gets each row's record (a file's line, or its index)."""
    return validated(rows, lambda r: check_outcome_row(r, delimiter), "outcome", OUTCOME, wheres=wheres,
                     skip_invalid=skip_invalid)


def validate_preference(rows, *, delimiter: str | None = None, drop_duplicates: bool = False,
                        skip_invalid: bool = False) -> Dataset:
    """Check preference rows: non-empty ``prompt``/``chosen``/``rejected``, chosen != rejected, no repeated
    (prompt, chosen, rejected); optional ``chosen_step_labels``/``rejected_step_labels`` are lists of bool or
    of probabilities in [0, 1] (a PRM's labels, as the on-policy rounds build them), with one label per step of
    their text when ``delimiter`` is given (not by default: pairs are split into steps differently, e.g. GSM8K's by
    line; the Stepwise DPO trainer checks the count with its own ``step_delimiter``). When any label is a
    number that is not a bool, every label is stored as a float (True as 1.0): a dataset column has one type."""
    return validated(rows, lambda r: check_preference_row(r, delimiter), "preference", PREFERENCE,
                     finish=_one_label_type, key=PREFERENCE, drop_duplicates=drop_duplicates, skip_invalid=skip_invalid)


def _one_label_type(rows: list[dict]) -> list[dict]:
    """Step labels all as floats when any is a number but not a bool ([True, 0.5] and [1, 0] beside [True, False]
    would not make one column); all-bool labels stay bools."""
    columns = ("chosen_step_labels", "rejected_step_labels")
    if all(isinstance(x, bool) for r in rows for c in columns for x in r.get(c) or ()):
        return rows
    return [{**r, **{c: [float(x) for x in r[c]] for c in columns if r.get(c) is not None}} for r in rows]


def validate_step_dpo(rows, *, drop_duplicates: bool = False, skip_invalid: bool = False) -> Dataset:
    """Check Step-DPO rows: non-empty ``prompt``, ``chosen``, ``rejected`` (chosen != rejected), string
    ``initial_reason_steps`` (may be empty), no repeated rows."""
    return validated(rows, check_step_dpo_row, "step_dpo", STEP_DPO, key=STEP_DPO, drop_duplicates=drop_duplicates,
                     skip_invalid=skip_invalid)


def load_preference(path_or_rows, **kw) -> Dataset:
    """Preference rows from a JSON/JSONL file (or rows in memory); see ``validate_preference`` for options."""
    check_records_file(path_or_rows, "load_preference")
    return validate_preference(path_or_rows, **kw)


def load_step_dpo(path_or_rows, **kw) -> Dataset:
    """Step-DPO rows (Lai et al. 2024, arXiv:2406.18629; the Math-Step-DPO-10K layout, extra columns such as
    ``full_chosen`` kept) from a JSON/JSONL file (or rows in memory); see ``validate_step_dpo`` for options."""
    check_records_file(path_or_rows, "load_step_dpo")
    return validate_step_dpo(path_or_rows, **kw)


# ----------------------------------------------------------------------------- TRL and saving

def to_trl_dpo(ds: Dataset, *, keep_step_columns: bool = False) -> Dataset:
    """Preference or Step-DPO rows -> the prompt/chosen/rejected strings of TRL's ``DPOTrainer``.

    A Step-DPO row's prompt becomes ``prompt + initial_reason_steps`` (concatenated as they are: apply a chat
    template to ``prompt`` beforehand if your model needs one), so DPO learns to prefer the chosen next step
    after the shared correct prefix (Lai et al. 2024), and the row gets ``open_ended=True``: its completions are
    one step of a longer solution, so ``StepwiseDPOTrainer`` drops the EOS that TRL appends to a completion.
    TRL's own ``DPOTrainer`` keeps that EOS, and would teach the policy to stop after one step. ``keep_step_columns``
    keeps the step-label and step-reward columns; an ``open_ended`` column is always kept (rows converted before,
    or one-step rows of your own, stay one step long).
    """
    if not isinstance(ds, Dataset):
        raise ValueError(f"to_trl_dpo: expected a datasets.Dataset (e.g. from validate_preference or "
                         f"load_step_dpo), got {type(ds).__name__}")
    if "initial_reason_steps" in ds.column_names:
        ds = validate_step_dpo(ds)
        prompts = [p + steps for p, steps in zip(ds["prompt"], ds["initial_reason_steps"])]
        ds = ds.remove_columns("prompt").add_column("prompt", prompts)
    else:
        ds = validate_preference(ds)
    open_ended = "initial_reason_steps" in ds.column_names
    steps = ("chosen_step_labels", "rejected_step_labels", "chosen_step_rewards", "rejected_step_rewards")
    extra = [c for c in steps if flag(keep_step_columns, "keep_step_columns", "to_trl_dpo") and c in ds.column_names]
    # dropped, the trainer would append an EOS to one-step completions (or the outcome weight would go to 1)
    extra += ["open_ended"] if "open_ended" in ds.column_names and not open_ended else []
    ds = ds.select_columns([*PREFERENCE, *extra])
    return ds.add_column("open_ended", [True] * len(ds)) if open_ended else ds


DATASET_FILES = ("state.json",)  # what Dataset.save_to_disk writes, beside its arrow files and dataset_info.json


def save_datasets(datasets: Mapping[str, Dataset], folder) -> Path:
    """Save each dataset to ``folder/<name>``, all of them atomically: they are written to a temporary folder
    beside ``folder``, which then replaces it (``atomic.save_atomic``), so a crash mid-save leaves the previous set
    whole, never a new train beside an old validation. What ``folder`` held besides these names (other datasets)
    is moved into the new one. Every name and dataset is checked before anything is written: a name is a plain
    folder name inside ``folder`` (no path separator, no leading '.', which ``load_datasets`` would skip), and an
    existing ``folder/<name>`` must be a saved dataset (a save replaces it as a whole)."""
    if not isinstance(datasets, Mapping):
        raise ValueError(f"save_datasets: expected a dict of name -> Dataset, got {type(datasets).__name__}")
    for name, ds in datasets.items():
        if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\"):
            raise ValueError(f"save_datasets: dataset name {name!r} must be a plain folder name "
                             "(not empty, no '/' or '\\', no leading '.')")
        if not isinstance(ds, Dataset):
            raise ValueError(f"save_datasets: dataset {name!r} must be a datasets.Dataset, got {type(ds).__name__}")
    check_replaceable(folder, where="save_datasets")  # "." or a folder holding it has no name to swap beside
    for name in datasets:  # a folder of that name that is no saved dataset would be replaced as a whole: refused
        check_replaceable(Path(folder) / name, owned=DATASET_FILES, where="save_datasets")

    def write(tmp):
        for name, ds in datasets.items():
            ds.save_to_disk(str(Path(tmp) / name))
    save_atomic(folder, write, keep=("*",))  # keep: the old folder's other entries are moved into the new one
    return Path(folder)


def load_datasets(folder, names: Sequence[str] | None = None) -> dict[str, Dataset]:
    """The datasets ``save_datasets`` wrote to ``folder`` (all of them, or ``names``), in memory: a ``shuffle`` or
    a trainer's tokenizing ``map`` of one would otherwise write its cache files into ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"load_datasets: no such folder: {folder}")
    saved = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / "state.json").exists())
    names = saved if names is None else list_of(names, "load_datasets: names", "dataset names")
    missing = [n for n in names if n not in saved]  # before loading any: datasets' error names neither us nor these
    if missing:
        raise FileNotFoundError(f"load_datasets: no dataset {missing[0]!r} in {folder}; it holds: "
                                f"{', '.join(saved) or 'none'}")
    return {name: load_from_disk(str(folder / name), keep_in_memory=True) for name in names}
