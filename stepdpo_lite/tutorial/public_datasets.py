"""Loaders that turn published datasets into the project's formats (``data.py``).

- PRM800K (Lightman et al. 2023, arXiv:2305.20050): human ratings of each step -> stepwise supervision rows.
- Math-Shepherd (Wang et al. 2024, arXiv:2312.08935): steps tagged ``ки`` and labelled ``+``/``-`` -> stepwise
  supervision rows.
- GSM8K (Cobbe et al. 2021, arXiv:2110.14168): the problems, and the released model solutions -> outcome rows with
  step labels from the calculator annotations, stepwise supervision rows made from them, and preference pairs of a
  correct and an incorrect solution (the calculator's step labels rarely locate a mistake: see
  ``gsm8k_preference_pairs``).
- ProcessBench (Zheng et al. 2024, arXiv:2412.06559), an evaluation set: ``problem, steps, label`` (the 0-based
  index of the first wrong step, or -1), checked as they are; ``processbench_step_labels`` gives a row's step labels and
  ``processbench_stepwise_rows`` the rows as stepwise supervision rows, laid out to score and evaluate a PRM on.

They check records with ``data.py``'s field checks, so bad input raises ``ValueError`` naming the file, line and
field, and what they leave out is logged on the same logger (``stepdpo_lite.data``, WARNING).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import operator
import re
from typing import Sequence

from datasets import Dataset

from ..checks import flag, list_of, positive_int, warn_user
from ..data import (OUTCOME, STEPWISE, BadField, bool_value, check_outcome_row, check_records, check_records_file,
                   check_stepwise_row, dataset_of, delimit_steps, field_value, inside_field, list_value, records_of,
                   text_value, validate_preference, validate_stepwise, validated)
from ..evaluation import check_labels
from ..steps import extract_steps
from .gsm8k import split_answer
from .labelling import drawn_pairs

logger = logging.getLogger("stepdpo_lite.data")

PROCESSBENCH = ("problem", "steps", "label")

GSM8K_SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def _repeats_kept(rows: list[dict], key: Sequence[str], name: str) -> list[dict]:
    """``rows`` as they are; how many repeat an earlier row's ``key`` fields is logged, since a repeat weighs twice in
    training and counts twice in an evaluation (``drop_duplicates=True`` drops them, through ``check_records``)."""
    repeats = len(rows) - len({tuple(json.dumps(row[f]) for f in key) for row in rows})
    if repeats:
        logger.warning("%s: %d rows repeat an earlier row's %s; kept (drop_duplicates=True drops them)", name, repeats,
                       ", ".join(key))
    return rows


# ----------------------------------------------------------------------------- PRM800K

def _step_text(options: list, k: int, j: int) -> str:
    """The text of step ``k``'s completion ``j``, which a row takes: blank raises, naming the record's field (the
    row's own check named the row's ``completions[k]`` and its "\\n", neither in the file). An alternative that no
    row takes may be blank."""
    with inside_field(f"label.steps[{k}].completions[{j}]"):
        return text_value(options[j], "text")


def _prm800k(record, neutral_as: bool, branches: bool):
    # read outside inside_field: an error names 'question', not 'question.question'
    question, label = field_value(record, "question"), field_value(record, "label")
    with inside_field("question"):
        prompt = text_value(question, "problem")
    with inside_field("label"):
        steps = field_value(label, "steps")
        if not isinstance(steps, list):
            raise BadField("steps", f"must be a list, got {type(steps).__name__}")
    rows, path, labels = [], [], []
    for k, step in enumerate(steps):
        with inside_field(f"label.steps[{k}]"):
            options = field_value(step, "completions")
            options = [] if options is None else options  # null: no model step (`or []` let 0, false and "" pass)
            if not isinstance(options, list):  # a str or an object was read item by item, a number a TypeError
                raise BadField("completions", f"must be a list of rated steps or null, got {options!r:.40}")
            for j, option in enumerate(options):
                with inside_field(f"completions[{j}]"):
                    text_value(option, "text", blank_ok=True)
                    rating = field_value(option, "rating")  # True == 1 and 1.0 == 1: a type clash would pass `in`
                    if not (rating is None or type(rating) is int and rating in (-1, 0, 1)):
                        raise BadField("rating", f"must be -1, 0, 1 or null, got {option['rating']!r:.40}")
            chosen, human = field_value(step, "chosen_completion"), field_value(step, "human_completion")
            if chosen is not None and (type(chosen) is not int or not 0 <= chosen < len(options)):
                raise BadField("chosen_completion", f"must be null or an index into completions, got {chosen!r:.40}")
            if chosen is None and human is not None:
                with inside_field("human_completion"):
                    text_value(human, "text")
        if chosen is not None:
            followed, text, rating = chosen, _step_text(options, k, chosen), options[chosen]["rating"]
        elif human is not None:  # a step a labeller wrote after rejecting the model's: correct by construction
            followed, text, rating = None, human["text"], 1
        else:  # the labeller stopped here; a step rated -1 is the first error (phase 2: the model's own step)
            followed = next((j for j, o in enumerate(options) if o["rating"] == -1), None)
            text, rating = (_step_text(options, k, followed), -1) if followed is not None else ("", None)
        if branches:  # TRL's PRM800K recipe: each rated alternative not followed ends a row of its own
            for j, o in enumerate(options):
                if j != followed and o["rating"] is not None:
                    alternative = "\n" * bool(path) + _step_text(options, k, j)
                    rows.append({"prompt": prompt, "completions": [*path, alternative],
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
        check_stepwise_row(row)
    return rows


def load_prm800k(path, *, neutral_as: bool = True, branches: bool = False, drop_duplicates: bool = False,
                 skip_invalid: bool = False) -> Dataset:
    """PRM800K (Lightman et al. 2023, arXiv:2305.20050) canonical JSONL -> stepwise supervision rows.

    Each record gives one row: its steps along the path the labellers took, i.e. at each step the
    ``chosen_completion``, else the ``human_completion`` (labelled correct), else the first completion rated
    -1 (phase 2's model step where the labeller found the error). Rating 1 is correct and -1 wrong; rating 0
    (neutral: not wrong, but not clearly progress) counts as ``neutral_as`` — correct by default, because a PRM
    should flag errors, and a neutral step is none (TRL's PRM800K script counts it wrong: ``neutral_as=False``).
    The row stops after the first wrong step, since nothing after it is labelled, or before an unrated step.
    ``branches=True`` also makes one row per rated alternative completion that was not followed (prefix +
    that step), as TRL's PRM800K script does. Records with no labelled step give no row (logged). A row that repeats
    an earlier one (``prompt``, ``completions``, ``labels``: a problem labelled in several records shares steps; 2 of
    the sample's 163 ``branches=True`` rows) is kept and counted in the log, or dropped with ``drop_duplicates=True``.

    The ``prompt`` is the problem as published, with no separator after it: ``prompt + completions[0]`` reads
    ``"What is 7 * 6 - 4?7 * 6 = 42."``, one text to the model (training warns of it). Give the prompts the layout
    the model reads, for training and scoring alike: ``ds.map(lambda r: data.delimit_steps(r, "\\n"))`` ends them
    with ``"\\n"``; or render them with the model's chat template.
    """
    neutral_as, branches = flag(neutral_as, "neutral_as", "load_prm800k"), flag(branches, "branches", "load_prm800k")
    no_row = []

    def convert(record):
        rows = _prm800k(record, neutral_as, branches)
        if not rows:
            no_row.append(record)
        return rows

    rows = check_records(records_of(path, "load_prm800k"), convert, "prm800k", key=STEPWISE if drop_duplicates else (),
                      drop_duplicates=drop_duplicates, skip_invalid=skip_invalid)
    if no_row:
        logger.warning("prm800k: %d records have no labelled step and gave no row", len(no_row))
    return dataset_of(_repeats_kept(rows, STEPWISE, "prm800k"), STEPWISE)


# ----------------------------------------------------------------------------- Math-Shepherd

_STEP_ONE = re.compile(r"(?<![A-Za-z])[Ss]tep 1:")  # "Footstep 1:" is no step mark; "12Step 1:" (a space lost) is


def _math_shepherd(row, marker: str = "ки"):
    text, label = text_value(row, "input"), text_value(row, "label")
    pieces = text.split(marker)  # the step tag follows each step; `label` holds "+" or "-" in its place
    if len(pieces) < 2:
        raise BadField("input", f"has no step tag {marker!r}")
    labels, pos = [], 0
    for j, piece in enumerate(pieces):
        if label[pos:pos + len(piece)] != piece:
            raise BadField("label", f"differs from 'input' near character {pos}: it must be 'input' with each "
                                f"{marker!r} replaced by '+' or '-'")
        pos += len(piece)
        if j < len(pieces) - 1:
            if label[pos:pos + 1] not in ("+", "-"):  # quoted as long as the tag: 'к' of a 'ки' left in place
                raise BadField("label", f"has {label[pos:pos + len(marker)]!r} where 'input' has step tag {j + 1} "
                                    f"({marker!r}); expected '+' or '-'")
            labels.append(label[pos] == "+")
            pos += 1
    if pos != len(label) or pieces[-1].strip():
        raise BadField("label" if pos != len(label) else "input", "has text after the last step tag")
    # The question and the first step share the first piece; "Step 1:" (a few rows: "step 1:") is where they meet.
    # Only one may be there: the first of two cut a question that says "step 1:" short and gave step 1 its end.
    marks = list(_STEP_ONE.finditer(pieces[0]))
    if not marks:
        raise BadField("input", "has no 'Step 1:' before the first step tag: cannot tell the question from step 1")
    if len(marks) > 1:
        raise BadField("input", f"has {len(marks)} step marks {[m.group() for m in marks]} before the first step tag: "
                            "cannot tell which one ends the question")
    first = marks[0].start()
    steps = [pieces[0][first:], *pieces[1:-1]]
    out = {"prompt": pieces[0][:first].strip(), "completions": [s.rstrip(" ") for s in steps], "labels": labels}
    return check_stepwise_row(out)


def load_math_shepherd(path, *, skip_invalid: bool = False) -> Dataset:
    """Math-Shepherd rows (Wang et al. 2024, arXiv:2312.08935) -> stepwise supervision rows.

    A row's ``input`` is the question, then ``Step 1: ... ки\\nStep 2: ... ки`` (the tag ``ки`` after each step),
    and its ``label`` is the same text with ``+`` (the step can still reach the answer) or ``-`` in each tag's
    place. The question ends where ``Step 1:`` (a few rows: ``step 1:``) begins, and that mark must be there once
    before the first tag: a question that says "step 1:" itself raises (taking the first mark cut it short). The
    space before each tag is dropped, so steps read ``"Step 1: ..."``, ``"\\nStep 2: ..."`` and join back into the
    solution. Rows that do not follow this layout raise (or are skipped and counted with ``skip_invalid=True``: the
    public set has a few).

    The ``prompt`` is the question stripped, with no separator after it: ``prompt + completions[0]`` reads
    ``"... How many pens?Step 1: ..."``, one text to the model (training warns of it). Give the prompts the layout the
    model reads, for training and scoring alike: ``ds.map(lambda r: data.delimit_steps(r, "\\n"))`` ends them with
    ``"\\n"``; or render them with the model's chat template.
    """
    return dataset_of(check_records(records_of(path, "load_math_shepherd"), _math_shepherd, "math_shepherd",
                               skip_invalid=skip_invalid), STEPWISE)


# ----------------------------------------------------------------------------- GSM8K

_CALC_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Mod: operator.mod, ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv}
# The number written after an annotation: thousands may be grouped with commas or spaces ("17 500")
_ANNOTATION = re.compile(r"<<([^<>]*)=([^<>=]*)>>\$?(-?\d{1,3}(?:[ ,]\d{3})+(?:\.\d+)?|-?[\d,]*\.?\d+(?:/\d+)?)?")


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
            # a power past a float's range (10**400; an exact integer that long also costs time to build) is
            # refused by its size in digits, |b|·log10|a|: 2000000**2 is plain arithmetic
            if isinstance(node.op, ast.Pow) and a and abs(b) * abs(math.log10(abs(a))) > 300:
                raise ValueError("power too large")
            return _CALC_OPS[type(node.op)](a, b)
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text.strip())  # 1,000 -> 1000
    try:
        return float(ev(ast.parse(text, mode="eval").body))
    except (SyntaxError, ZeroDivisionError, OverflowError, TypeError) as e:
        raise ValueError(str(e)) from None


def _same_number(x: float, written: str) -> bool:
    """``x`` equals the number ``written``, also when written rounded (10/3 = 3.33) or cut (14.9999 = 14.99)."""
    written = written.replace(" ", "")  # 17 500
    y = _calc(written)
    decimals = len(written.strip().split(".")[1]) if "." in written else 0
    if abs(x - y) <= 1e-6 * max(1.0, abs(y)):
        return True
    if "/" in written:  # a fraction (1/3) is exact: its 0 decimals would let any x within 0.5 pass
        return False
    if round(x, decimals) == round(y, decimals):
        return True
    if decimals > 12 or not abs(x) < 1e15:  # past float precision a cut says nothing
        return False
    scale = 10 ** decimals
    return int(x * scale + (1e-9 if x >= 0 else -1e-9)) == round(y * scale)  # cut toward zero


def _cut_of(value: str, written: str) -> bool:
    """``written`` is the decimal text ``value`` cut to ``written``'s decimals (``14.999999999999998`` -> ``14.99``):
    a cut of the text the calculator showed, which a cut of its float misses (x * 100 rounds up to 1500)."""
    plain, written = value.strip(), written.replace(" ", "").replace(",", "")
    if not re.fullmatch(r"-?\d+\.\d+", plain) or not re.fullmatch(r"-?\d+(?:\.\d+)?", written):
        return False
    decimals = len(written.split(".")[1]) if "." in written else 0
    cut = plain[:plain.index(".") + decimals + 1 if decimals else plain.index(".")]
    return decimals < len(plain.split(".")[1]) and float(cut) == float(written)


def calculator_check(line: str) -> bool | None:
    """Does the arithmetic of a GSM8K line hold (Cobbe et al. 2021, arXiv:2110.14168)?

    False when a ``<<expr=value>>`` annotation is wrong: ``expr`` does not evaluate to ``value`` (arithmetic
    error) or the number written just after the annotation is not ``value`` (copy error). None (unchecked) when none
    is wrong but one cannot be evaluated (``<<x*3=7>>7``, ``<<10**400=7>>7``: not plain arithmetic, or too large): the
    caller decides what such a line counts as. True when every annotation holds, and for a line with none (it
    claims no arithmetic).
    """
    unchecked = False
    for m in _ANNOTATION.finditer(line):
        try:
            value = _calc(m.group(2))
            # "17 500" is one number, but "<<2*3=6>>6 500-gram" is 6: either reading will do
            written = [m.group(3), m.group(3).split(" ")[0]] if m.group(3) else []
            if not _same_number(_calc(m.group(1)), m.group(2)) or (written and not any(
                    _same_number(value, w) or _cut_of(m.group(2), w) for w in written)):
                return False
        except ValueError:
            unchecked = True
    return None if unchecked else True


def _log_unchecked(who: str, lines: list[str]) -> None:
    if lines:
        logger.warning("%s: %d lines hold a calculator annotation that cannot be evaluated (the first: %r); they count "
                       "as right, as lines without one do: unchecked, not verified", who, len(lines), lines[0].strip())


def _gsm8k_solutions(record, unchecked: list[str]):
    """A record's four outcome rows. A line ``calculator_check`` could not check (None: algebra such as
    ``<<X*.25=19.5>>``) goes to ``unchecked``, which the loaders log, and counts as right, as a line with no annotation
    does: neither is verified. (``data/gsm8k`` has 8, all in incorrect solutions; counted wrong, they would make
    the calculator "find" a wrong line in 22 of the 505 instead of 16, none of them a verified slip.)"""
    prompt, rows = text_value(record, "question"), []
    for solver in GSM8K_SOLVERS:
        answer = field_value(record, solver)
        with inside_field(solver):
            solution, correct = text_value(answer, "solution"), bool_value(answer, "is_correct")
        steps = extract_steps(solution, delimiter="\n")  # GSM8K solutions are one step a line
        verdicts = [calculator_check(s) for s in steps]
        unchecked += [s for s, v in zip(steps, verdicts) if v is None]
        rows += check_outcome_row({"prompt": prompt, "completion": solution, "label": correct,
                          "step_labels": [v is not False for v in verdicts], "solver": solver})
    return rows


def load_gsm8k_solutions(path, *, skip_invalid: bool = False) -> Dataset:
    """GSM8K ``example_model_solutions.jsonl`` -> outcome rows, four per problem (one per solver model).

    Columns: ``prompt``, ``completion``, ``label`` (``is_correct``), ``step_labels`` (one per line, from
    ``calculator_check``: arithmetic only, not propagated; a line without annotation counts as correct, and so does
    one whose annotation cannot be evaluated, counted in a logged warning: 8 lines of ``data/gsm8k``) and ``solver``.
    """
    unchecked: list[str] = []
    rows = check_records(records_of(path, "load_gsm8k_solutions"), lambda r: _gsm8k_solutions(r, unchecked), "gsm8k",
                      skip_invalid=skip_invalid)
    _log_unchecked("gsm8k", unchecked)
    return dataset_of(rows, OUTCOME)


def _gsm8k_problem(record):
    solution, final = split_answer(record)
    return [{"prompt": record["question"], "solution": solution, "answer": final}]


def load_gsm8k_problems(path, *, skip_invalid: bool = False) -> Dataset:
    """GSM8K ``test.jsonl``/``train.jsonl`` -> ``prompt``, ``solution`` (the reference lines), ``answer``. A record
    whose answer has no numeric ``#### <answer>`` raises (or, with ``skip_invalid=True``, is skipped and counted)."""
    return dataset_of(check_records(records_of(path, "load_gsm8k_problems"), _gsm8k_problem, "gsm8k_problems",
                               skip_invalid=skip_invalid), ("prompt", "solution", "answer"))


def _line_verdicts(line_labels: Sequence[bool], correct: bool, who: str) -> list[bool]:
    """The checked per-line verdicts: a list of bools (0/1 too), ``correct`` a bool."""
    line_labels = list_of(line_labels, f"{who}: line_labels", "bools (one per line)")
    check_labels(line_labels, who, "line_labels")  # None was a right line, a str a TypeError
    if correct not in (True, False):
        raise ValueError(f"{who}: correct must be a bool, got {correct!r:.40}")
    return [bool(x) for x in line_labels]


def _blame_the_answer(labels: list[bool], correct: bool) -> list[bool]:
    """An incorrect solution whose lines all pass: its last line (the answer) is the one line known to be wrong."""
    if not correct and labels and all(labels):
        labels[-1] = False
    return labels


def process_labels(line_labels: Sequence[bool], correct: bool) -> list[bool]:
    """Per-line arithmetic verdicts -> process labels ("can this step still reach the answer?", the **reachable**
    meaning of docs/formats.md).

    After the first wrong line every line is wrong (the error propagates, as in Math-Shepherd); an
    incorrect solution whose lines all pass gets its last line (the answer) marked wrong, the one line
    known to be wrong.
    """
    line_labels = _line_verdicts(line_labels, correct, "process_labels")
    first = line_labels.index(False) if False in line_labels else len(line_labels)
    return _blame_the_answer([k < first for k in range(len(line_labels))], correct)


def mistake_labels(line_labels: Sequence[bool], correct: bool) -> list[bool]:
    """Per-line arithmetic verdicts -> **mistake made here** labels (docs/formats.md), what Stepwise DPO's step loss
    pushes down on a rejected solution: False only on a line whose own calculator annotation is wrong; a later line
    that computes right on the wrong number stays True. An incorrect solution whose lines all pass gets its last
    line (the answer) marked wrong, as in ``process_labels``: the mistake is somewhere the calculator cannot see.
    The same rule as ``task_problems.Verdict.mistake_labels`` (the toy checker's error kinds) and
    ``rewards.mistake_made_here_labels`` (a PRM's probabilities, where a drop is the mistake made).
    """
    return _blame_the_answer(_line_verdicts(line_labels, correct, "mistake_labels"), correct)


REJECTED_LABELS = {"mistakes": mistake_labels, "reachability": process_labels}


def _gsm8k_solution_rows(record, step_labels: bool, unchecked: list[str]):
    """A record of ``example_model_solutions.jsonl`` -> its four outcome rows; an outcome row (made by
    ``load_gsm8k_solutions``: it has a ``prompt`` or a ``completion``) is checked as one, one step label a line."""
    if "prompt" not in record and "completion" not in record:
        return _gsm8k_solutions(record, unchecked)
    if step_labels:
        list_value(record, "step_labels", bool)  # the pairs' step labels are made from them
    return check_outcome_row(record, delimiter="\n")


def _gsm8k_texts(solutions, step_labels: bool, skip_invalid: bool, who: str) -> dict[str, dict[str, dict]]:
    """The checked outcome rows of ``solutions`` (a path, records or ``load_gsm8k_solutions``' rows), by problem and
    text: a text two solvers wrote alike for the same problem is kept once (logged)."""
    unchecked: list[str] = []
    rows = check_records(records_of(solutions, who), lambda r: _gsm8k_solution_rows(r, step_labels, unchecked), who,
                      skip_invalid=skip_invalid)
    _log_unchecked(who, unchecked)
    problems: dict[str, dict[str, dict]] = {}
    relabelled = []  # a copy labelled otherwise than the first, whose labels it keeps: said, not chosen silently
    for row in rows:
        kept = problems.setdefault(row["prompt"], {}).setdefault(row["completion"], row)
        if any(kept.get(f) != row.get(f) for f in ("label", "step_labels")[:1 + step_labels]):
            relabelled.append(row["completion"])
    repeats = len(rows) - sum(map(len, problems.values()))
    if repeats:
        logger.warning("%s: %d solutions repeat another solver's text for the same problem; each text was used once",
                       who, repeats)
    if relabelled:
        warn_user(f"{who}: {len(relabelled)} solutions repeat a text of the same problem with other labels ('label' "
                  f"or 'step_labels'; the first: {relabelled[0]!r:.60}): the first copy's labels were used")
    return problems


def gsm8k_stepwise_rows(solutions, *, skip_invalid: bool = False) -> Dataset:
    """GSM8K model solutions -> stepwise supervision rows (``prompt``, ``completions``, ``labels``), what
    ``train_process_reward_model`` reads (with ``step_delimiter="\\n"``): one row per solution text, one step a line,
    **reachable** labels (``process_labels`` of the calculator's line verdicts and ``is_correct``).

    ``solutions`` as ``gsm8k_preference_pairs`` takes them (a text two solvers wrote alike is used once, logged).
    The labels rarely locate a mistake: the calculator checks arithmetic only, and finds a wrong line in 16 of the 505
    incorrect solutions in ``data/gsm8k``; each of the others has only its answer line labelled wrong, and its wrong
    reasoning labelled right. A PRM trained on these rows learns little about where reasoning goes wrong; for step
    labels that locate mistakes, train it on PRM800K or Math-Shepherd rows, or label the steps with Monte-Carlo
    rollouts (``labelling.mc_step_labels``).
    """
    problems = _gsm8k_texts(solutions, True, skip_invalid, "gsm8k_stepwise_rows")
    return validate_stepwise([{"prompt": prompt, "completions": extract_steps(r["completion"], delimiter="\n"),
                               "labels": process_labels(r["step_labels"], r["label"])}
                              for prompt, texts in problems.items() for r in texts.values()])


def gsm8k_preference_pairs(solutions, *, max_pairs_per_problem: int | None = None, step_labels: bool = True,
                           seed: int = 0, rejected_labels: str = "mistakes", skip_invalid: bool = False) -> Dataset:
    """Preference pairs between a correct and an incorrect GSM8K model solution of the same problem.

    ``solutions``: the path of ``example_model_solutions.jsonl``, its records in memory, or ``load_gsm8k_solutions``'s
    Dataset (or rows); all are checked as a file is (``skip_invalid=True`` skips and counts invalid records). All
    correct x incorrect combinations, shuffled with ``seed`` and cut to ``max_pairs_per_problem`` (None: all); a text
    two solvers wrote alike is used once (logged). With ``step_labels``, one label per line from the calculator check:
    ``chosen_step_labels`` from ``process_labels``, ``rejected_step_labels`` "mistake made here" (``mistake_labels``)
    by default, as the toy world's ``labelling.preference_pairs``: a line that computes right on a wrong number is not
    pushed down; ``rejected_labels="reachability"`` gives ``process_labels`` (every line after the first wrong one
    wrong).

    These step labels rarely locate the mistake: the calculator checks arithmetic only, and finds a wrong line in 16
    of the 505 incorrect solutions in ``data/gsm8k``; each of the others has only its answer line labelled wrong, so
    in 331 of the 335 pairs the answer line is the rejected solution's only ``False`` step, and its wrong reasoning is
    labelled right (with either ``rejected_labels``). For credit assignment, build the pairs with
    ``step_labels=False`` and give ``StepwiseDPOTrainer`` a PRM (``use_reward_model=True``, ``reward_model=prm``: step
    labels in the data win over a reward model's), or label the steps with Monte-Carlo rollouts
    (``labelling.mc_step_labels``).
    """
    positive_int(max_pairs_per_problem, "max_pairs_per_problem", "gsm8k_preference_pairs", none_ok=True)  # 0 is refused
    positive_int(seed, "seed", "gsm8k_preference_pairs", minimum=0)  # seed=True or 1.0 hashed apart from 1
    step_labels = flag(step_labels, "step_labels", "gsm8k_preference_pairs")
    if rejected_labels not in tuple(REJECTED_LABELS):  # a tuple: a list given is refused here, not a TypeError
        raise ValueError(f"gsm8k_preference_pairs: rejected_labels must be one of {list(REJECTED_LABELS)}, got "
                         f"{rejected_labels!r:.40}")
    problems = _gsm8k_texts(solutions, step_labels, skip_invalid, "gsm8k_preference_pairs")
    rows, one_sided = [], [0, 0]  # problems without a right, without a wrong solution: no pair, said in the log
    for prompt, texts in problems.items():
        good = [r for r in texts.values() if r["label"]]
        bad = [r for r in texts.values() if not r["label"]]
        one_sided[0] += not good
        one_sided[1] += not bad
        for c, r in drawn_pairs(good, bad, prompt, seed, max_pairs_per_problem):
            row = {"prompt": prompt, "chosen": c["completion"], "rejected": r["completion"]}
            if step_labels:
                row["chosen_step_labels"] = process_labels(c["step_labels"], True)
                row["rejected_step_labels"] = REJECTED_LABELS[rejected_labels](r["step_labels"], False)
            rows.append(row)
    logger.log(logging.INFO if rows else logging.WARNING,  # no pair at all: an empty dataset fails far from here
               "gsm8k_preference_pairs: %d pairs from %d problems; no pair from %d problems without a right solution "
               "and %d without a wrong one", len(rows), len(problems), *one_sided)
    return validate_preference(rows, delimiter="\n")


# ----------------------------------------------------------------------------- ProcessBench

def _processbench(row):
    text_value(row, "problem")
    steps, label = list_value(row, "steps", str), field_value(row, "label")
    if type(label) is not int or not -1 <= label < len(steps):
        raise BadField("label", f"must be -1 or a step index 0..{len(steps) - 1}, got {label!r:.40}")
    return [dict(row)]


def validate_processbench(rows, *, drop_duplicates: bool = False, skip_invalid: bool = False) -> Dataset:
    """Check ProcessBench rows: non-empty ``problem``, non-empty ``steps``, ``label`` -1 or a step index. A row that
    repeats an earlier one's ``problem``, ``steps`` and ``label`` (it would count twice) is kept and counted in the
    log, or dropped with ``drop_duplicates=True``."""
    return _checked_processbench(rows, "processbench", drop_duplicates, skip_invalid)


def _checked_processbench(rows, name: str, drop_duplicates: bool, skip_invalid: bool) -> Dataset:
    # errors name a record's file and line, also for a type clash in an extra field
    return validated(rows, _processbench, name, PROCESSBENCH, lambda kept: _repeats_kept(kept, PROCESSBENCH, name),
                     key=PROCESSBENCH if drop_duplicates else (), drop_duplicates=drop_duplicates,
                     skip_invalid=skip_invalid)


def load_processbench(path, **kw) -> Dataset:
    """ProcessBench rows (Zheng et al. 2024, arXiv:2412.06559): a JSONL file or an upstream JSON array; options as
    ``validate_processbench``'s."""
    check_records_file(path, "load_processbench")
    return validate_processbench(path, **kw)


def processbench_step_labels(row) -> list[bool]:
    """A ProcessBench row's step labels, **reachable** (docs/formats.md), as ``evaluation.step_auroc`` reads them:
    step k is right when k < ``label`` (the first wrong step), every step when ``label`` is -1. The row is checked
    as ``validate_processbench`` checks one."""
    check_records([("row", row)], _processbench, "processbench_step_labels")
    return [row["label"] == -1 or k < row["label"] for k in range(len(row["steps"]))]


def processbench_stepwise_rows(rows, *, delimiter: str = "\n", drop_duplicates: bool = False,
                               skip_invalid: bool = False) -> Dataset:
    """ProcessBench rows (a JSONL or upstream JSON path, records, or ``load_processbench``'s Dataset; checked, with
    its options, as ``validate_processbench`` checks them) -> stepwise supervision rows (``prompt``, ``completions``,
    ``labels``), in the layout ``data.delimit_steps(row, delimiter)`` gives a PRM's training rows: the ``problem``
    ended with ``"\\n"`` where it would run into step 1, ``delimiter`` before steps 2..K, **reachable** labels
    (``processbench_step_labels``).

    Pass the delimiter the PRM was trained with (``"\\n"`` for PRM800K rows), then score the rows as they are:
    ``prm.score_solutions(ds["prompt"], ds["completions"])`` against ``ds["labels"]`` for ``evaluation.step_auroc``
    and ``process_reward_report``. The rows keep the records' order; their other fields (``id``, ``generator``,
    ``final_answer_correct``) are left behind.
    """
    if not isinstance(delimiter, str) or not delimiter:  # "" would leave the steps bare
        raise ValueError(f"processbench_stepwise_rows: delimiter must be a non-empty string (e.g. '\\n'), got "
                         f"{delimiter!r:.40}")
    checked = _checked_processbench(rows, "processbench_stepwise_rows", drop_duplicates, skip_invalid)
    return validate_stepwise([delimit_steps({"prompt": row["problem"], "completions": row["steps"],
                                             "labels": processbench_step_labels(row)}, delimiter)
                              for row in checked], delimiter=delimiter)
