"""The offline toy world: chained integer arithmetic whose every step can be checked.

A problem is a start value and 2 to 6 operations applied left to right::

    Problem: start with 7. Step 1: + 5. Step 2: * 3. Step 3: - 4.
    Step 1: 7 + 5 = 12

    Step 2: 12 * 3 = 36

    Step 3: 36 - 4 = 32

    Answer: 32

Steps are separated by the default delimiter ``"\\n\\nStep"``; the answer line belongs to the last
step. ``check`` labels every step of any text: a step is correct when it parses, applies the
problem's k-th operation to the true running value and computes it right. A step that uses a wrong
earlier result is wrong even if its own arithmetic is right (labels are those of Math-Shepherd's
"can still reach the answer" definition: after the first error every step is wrong).

``check`` returns the ``Verdict`` every task's checker returns (``task_problems``, the contract a ``Problem``
follows); ``corrupt_solution``, ``noisy_training_text`` and ``recovering_solution`` make solutions with one slip, the
texts the tiny models are trained on. The tiny models themselves, as files (shipped paths, tokenizer, model, load
and save), are in ``tiny_models``; ``tiny_base`` trains the base policy on this world: a ~1M-parameter Llama trained
on gold solutions mixed with solutions that carry one arithmetic or copy error, and stopped early, so that it is
imperfect on purpose: reward models and Stepwise DPO have real mistakes to find and fix.
"""

from __future__ import annotations

import hashlib
import numbers
import random
import re
from dataclasses import dataclass

from ..checks import list_of, positive_int, warn_user
from ..evaluation import first_error_index
from ..steps import extract_steps
from .task_problems import Verdict

OPS = ("+", "-", "*")
MAX_VALUE = 50  # every running value stays in 0..50: two-digit arithmetic a ~1M model half-learns in minutes
SPLITS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10)}  # buckets of a hash mod 10


# The first operand may be negative: a slip below 0 is carried on as written ("-1 + 5 = 4" is propagated, not a format
# error); the second operand is the problem's own number (0..50)
_STEP_RE = re.compile(r"^(?:\n\n)?Step (\d+): (-?\d+) ([+\-*]) (\d+) = (-?\d+)(?:\n\nAnswer: (-?\d+))?$")


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


# ----------------------------------------------------------------------------- problems

def _whole_number(value, name: str, why: str) -> int:
    """``value`` as an int if it is a whole number >= 0 (a numpy int too); a bool, a float or a str is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"Problem: {name} must be an int >= 0 ({why}), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Problem:
    """A start value and the operations applied to it, left to right, each an ``(op, operand)`` pair.

    Checked as it is made (a ``ValueError`` names the field): ``op`` one of ``OPS``, the start and every operand an
    int >= 0 (the checker reads no negative operand, ``parse_prompt`` no negative start), at least one operation.
    Running values outside 0..``MAX_VALUE``, which ``make_problems`` never makes, are gradeable but new to the toy
    world's models: a warning says so."""
    start: int
    ops: tuple[tuple[str, int], ...]

    def __post_init__(self):
        start = _whole_number(self.start, "start", "parse_prompt reads no negative start")
        ops = list_of(self.ops, "Problem: ops", "(op, operand) pairs")
        if not ops:
            raise ValueError("Problem: ops is empty; a problem has at least one operation")
        checked = []
        for k, pair in enumerate(ops):
            pair = list_of(pair, f"Problem: ops[{k}] (step {k + 1})", "an (op, operand) pair")
            if len(pair) != 2 or pair[0] not in OPS:  # "/" was computed as "*", silently
                raise ValueError(f"Problem: ops[{k}] (step {k + 1}) must be (op, operand) with op one of {OPS}, "
                                 f"got {tuple(pair)!r}")
            checked.append((pair[0], _whole_number(pair[1], f"ops[{k}] (step {k + 1}) operand",
                                                   "the checker reads no negative operand")))
        # frozen: the checked values replace the given ones (a list of lists is unhashable; np.int64(3) becomes 3)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "ops", tuple(checked))
        if not all(0 <= v <= MAX_VALUE for v in self.values):
            warn_user(f"Problem {self.expression}: running values {self.values} leave 0..{MAX_VALUE} (MAX_VALUE), "
                      "where every generated problem stays: the checker grades it, the toy world's models never "
                      "saw such numbers")

    @property
    def expression(self) -> str:
        return " ".join([str(self.start)] + [f"{op} {b}" for op, b in self.ops])

    @property
    def prompt(self) -> str:
        # Each operation is numbered like the solution step that applies it, so a small model finds it.
        return f"Problem: start with {self.start}." + "".join(
            f" Step {k}: {op} {b}." for k, (op, b) in enumerate(self.ops, 1)) + "\n"

    @property
    def values(self) -> list[int]:
        """Running values: ``values[0]`` is the start, ``values[k]`` the result of step k."""
        vals = [self.start]
        for op, b in self.ops:
            vals.append(_apply(vals[-1], op, b))
        return vals

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def gold_solution(self) -> str:
        return format_solution([(a, op, b, c) for a, (op, b), c in zip(self.values, self.ops, self.values[1:])])

    @property
    def split(self) -> str:
        bucket = int(hashlib.sha1(self.expression.encode()).hexdigest(), 16) % 10
        return next(name for name, buckets in SPLITS.items() if bucket in buckets)

    # -- the problem contract (task_problems.py): grading and step labels by the gold checker

    def verdict(self, solution: str) -> "Verdict":
        return check(self, solution)

    def is_correct(self, solution: str) -> bool:
        return check(self, solution).answer_correct

    def step_labels(self, solution: str) -> list[bool]:
        """Gold step labels from the checker (the toy world has one for every step)."""
        return check(self, solution).step_labels

    def gold_answer(self) -> float:
        return float(self.answer)

    def final_answer(self, solution: str) -> float | None:
        """The stated final answer, read from the last step as ``check`` reads it, so that a vote for the gold
        answer is a correct solution; None when there is none (any number after a last step that does not parse
        is no vote, right or wrong alike)."""
        steps = extract_steps(solution)
        m = _STEP_RE.match(steps[-1]) if steps else None
        return float(m.group(6)) if m and m.group(6) is not None else None


def format_solution(steps: list[tuple[int, str, int, int]], answer: int | None = None) -> str:
    """``[(a, op, b, c), ...]`` -> solution text; the answer defaults to the last step's result."""
    if not steps:  # steps[-1] below: an IndexError that named nothing
        raise ValueError("format_solution: steps is empty; a solution has at least one step")
    lines = [f"Step {k}: {a} {op} {b} = {c}" for k, (a, op, b, c) in enumerate(steps, 1)]
    answer = steps[-1][3] if answer is None else answer
    return "\n\n".join(lines) + f"\n\nAnswer: {answer}"


def _random_problem(rng: random.Random, min_ops: int = 2, max_ops: int = 6) -> Problem:
    value = start = rng.randint(1, 20)
    ops = []
    for _ in range(rng.randint(min_ops, max_ops)):
        choices = [("+", b) for b in range(1, 10) if value + b <= MAX_VALUE]
        choices += [("-", b) for b in range(1, 10) if value - b >= 0]
        choices += [("*", b) for b in range(2, 4) if value * b <= MAX_VALUE and value > 1]
        op, b = rng.choice(choices)
        ops.append((op, b))
        value = _apply(value, op, b)
    return Problem(start, tuple(ops))


def make_problems(n: int, split: str = "train", seed: int = 0, min_ops: int = 2, max_ops: int = 6) -> list[Problem]:
    """``n`` distinct problems of one split; splits are disjoint by problem (hash of the expression)."""
    if split not in SPLITS:
        raise ValueError(f"make_problems: split must be one of {sorted(SPLITS)}, got {split!r}")
    for name, value in (("n", n), ("min_ops", min_ops), ("max_ops", max_ops)):
        positive_int(value, name, "make_problems")  # n=True made one problem, 1.5 a TypeError
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):  # seed 1.0 or True drew other problems than 1
        raise ValueError(f"make_problems: seed must be an int, got {seed!r}")
    if not 1 <= min_ops <= max_ops:
        raise ValueError(f"make_problems: need 1 <= min_ops <= max_ops, got {min_ops}, {max_ops}")
    rng = random.Random(f"{split}-{seed}")
    seen, problems = set(), []
    for _ in range(200 * n + 10_000):
        p = _random_problem(rng, min_ops, max_ops)
        if p.split == split and p not in seen:
            seen.add(p)
            problems.append(p)
            if len(problems) == n:  # counted here: a problem found on the last draw was dropped
                return problems
    raise ValueError(f"make_problems: could not find {n} distinct {split} problems")


def parse_prompt(prompt: str) -> Problem:
    """The problem a toy prompt states (the inverse of ``Problem.prompt``)."""
    pattern = r"Problem: start with (\d+)\.((?: Step \d+: [+\-*] \d+\.)+)\n"
    m = isinstance(prompt, str) and re.fullmatch(pattern, prompt)
    if not m:  # None, a number: "expected string or bytes-like object" before
        raise ValueError(f"parse_prompt: not a toy-world prompt: {prompt!r}")
    ops = re.findall(r" Step (\d+): ([+\-*]) (\d+)\.", m.group(2))
    if [int(k) for k, _, _ in ops] != list(range(1, len(ops) + 1)):
        raise ValueError(f"parse_prompt: operations are not numbered 1..n: {prompt!r}")
    return Problem(int(m.group(1)), tuple((op, int(b)) for _, op, b in ops))


# ----------------------------------------------------------------------------- checker

def check(problem: Problem, solution: str) -> Verdict:
    """Label every step of ``solution`` against ``problem``.

    Error kinds: ``format`` (does not parse), ``extra`` (more steps than operations), ``operation``
    (not the problem's k-th operation), ``copy`` (first operand differs from the previous step's
    written result; where that step wrote none, from the result its operation gives on what it should have copied),
    ``propagated`` (copies a wrong earlier result faithfully and computes right on it), ``arithmetic``
    (wrong result, on a right or a wrong first operand), ``answer`` (the answer line is missing, early or wrong).
    """
    if not isinstance(problem, Problem):  # a prompt str failed deep inside: "'str' object has no attribute 'values'"
        raise ValueError(f"check: problem must be a toyworld.Problem, got {type(problem).__name__}; "
                         "parse_prompt(prompt) makes one from a toy prompt")
    steps = extract_steps(solution)  # the toy format's own steps ("\n\nStep k: ..."), which _STEP_RE reads
    gold = problem.values
    labels, kinds, m = [], [], None
    carried = gold[0]  # the number the next step should copy
    for k, text in enumerate(steps):
        m = _STEP_RE.match(text)
        kind = None
        if not m or int(m.group(1)) != k + 1:
            kind = "format"
            # the result it wrote, if any, is what the next step copies from (else that right copy was a "copy" error);
            # where it wrote none, the result its operation gives: a faithful carry is not a copy error, on a right
            # path or a wrong one alike, and a number from nowhere is
            written = re.findall(r"= (-?\d+)", text)
            carried = (int(written[-1]) if written else _apply(carried, *problem.ops[k]) if k < len(problem.ops)
                       else carried)
        elif k >= len(problem.ops):
            kind = "extra"
        else:
            a, op, b, c = int(m.group(2)), m.group(3), int(m.group(4)), int(m.group(5))
            answer = None if m.group(6) is None else int(m.group(6))
            if (op, b) != problem.ops[k]:
                kind = "operation"
            elif a != carried:
                kind = "copy"
            # the checks of a mistake made come before "propagated": a new slip on a wrong number is still one
            elif c != _apply(a, op, b):
                kind = "arithmetic"
            elif answer is not None and (k != len(problem.ops) - 1 or answer != c):
                kind = "answer"  # an answer line that comes early or states another number than the step's result
            elif answer is None and k == len(steps) - 1:
                kind = "answer"  # the solution ends without an answer line
            elif a != gold[k]:
                kind = "propagated"
            carried = c
        if kind is None and labels and not labels[-1]:
            kind = "propagated"  # a right-looking step after an error still cannot reach the answer
        labels.append(kind is None)
        kinds.append(kind)
    first_error = first_error_index(labels)
    # the last step (m: its match) states the answer, read as the steps' numbers are ("Answer: 032" is 32)
    answer_correct = bool(m) and m.group(6) is not None and int(m.group(6)) == problem.answer
    return Verdict(labels, first_error, answer_correct, kinds, steps)


def has_wrong_step(prompt: str, solution: str) -> bool:
    """Whether the checker finds a wrong step in ``solution`` to the problem ``prompt`` states (a right answer with
    one is a lucky slip)."""
    return check(parse_prompt(prompt), solution).first_error >= 0


def arithmetic_slip(problem: Problem, solution: str) -> int | None:
    """Written minus right result of the solution's first wrong step, when that step is an ``arithmetic`` error
    (its operands right); None otherwise. Which way a policy's slips lean shows what a preference loss that sees
    only right-vs-slipped pairs can teach it: "write less than the slip", which may overshoot."""
    v = check(problem, solution)
    if v.first_error < 0 or v.error_kinds[v.first_error] != "arithmetic":
        return None
    _, a, op, b, written, _ = _STEP_RE.match(v.steps[v.first_error]).groups()
    return int(written) - _apply(int(a), op, int(b))


def corrupt_solution(problem: Problem, step: int, kind: str, rng: random.Random) -> str:
    """A solution with one ``arithmetic`` or ``copy`` error at ``step`` (0-based), carried on consistently."""
    if kind not in ("arithmetic", "copy"):
        raise ValueError(f"corrupt_solution: kind must be 'arithmetic' or 'copy', got {kind!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):  # 1.5 matched no step: the gold solution
        raise ValueError(f"corrupt_solution: step must be an int (0-based), got {step!r}")
    if not 0 <= step < len(problem.ops) or (kind == "copy" and step == 0):
        raise ValueError(f"corrupt_solution: no {kind} error possible at step {step}")
    if not isinstance(rng, random.Random):  # a seed: an AttributeError at the first wrong number
        raise ValueError(f"corrupt_solution: rng must be a random.Random (random.Random(seed)), got {rng!r:.40}")
    rows, value = [], problem.start
    for k, (op, b) in enumerate(problem.ops):
        a = value
        if k == step and kind == "copy":
            a = _nearby(value, rng)
        c = _apply(a, op, b)
        if k == step and kind == "arithmetic":
            c = _nearby(c, rng)
        rows.append((a, op, b, c))
        value = c
    return format_solution(rows)


def _nearby(x: int, rng: random.Random) -> int:
    """A plausible wrong number: off by a little, or two digits swapped."""
    if x >= 10 and x % 11 and rng.random() < 0.3:
        return int(str(x)[::-1])
    y = x + rng.choice([-10, -2, -1, 1, 2, 10])
    return y if 0 <= y != x else x + 1


# ----------------------------------------------------------------------------- training texts

def noisy_training_text(problem: Problem, rng: random.Random, error_rate: float, recover_rate: float = 0.0) -> str:
    """Gold solution, or (with ``error_rate``) one carrying an arithmetic or copy error; a share ``recover_rate``
    of those errors is one that ends at the right answer anyway (``recovering_solution``). With
    ``recover_rate=0`` the random draws are those of earlier versions (the shipped models' data)."""
    if rng.random() < error_rate:
        if recover_rate and rng.random() < recover_rate:
            return recovering_solution(problem, rng)
        kind = rng.choice(["arithmetic", "copy"]) if len(problem.ops) > 1 else "arithmetic"
        step = rng.randrange(1 if kind == "copy" else 0, len(problem.ops))
        return corrupt_solution(problem, step, kind, rng)
    return problem.gold_solution


def recovering_solution(problem: Problem, rng: random.Random) -> str:
    """A wrong step that still ends at the right answer, as the tiny policy writes them: it keeps computing the
    true running value, whatever it wrote. Either a ``copy`` slip (a wrong first operand, the true result), or an
    ``arithmetic`` slip followed by a step that copies the wrong result but writes the true one. The checker
    labels every step from the slip on as wrong (the process is wrong) while the final answer is right: what an
    outcome reward model must learn to accept and a process reward model to flag."""
    n = len(problem.ops)
    if n < 2:
        return problem.gold_solution  # one step: no slip can be recovered from
    kind = rng.choice(["arithmetic", "copy"])
    step = rng.randrange(0, n - 1) if kind == "arithmetic" else rng.randrange(1, n)
    vals = problem.values
    rows = [[vals[k], op, b, vals[k + 1]] for k, (op, b) in enumerate(problem.ops)]
    if kind == "copy":
        rows[step][0] = _nearby(vals[step], rng)
    else:
        rows[step][3] = rows[step + 1][0] = _nearby(vals[step + 1], rng)
    return format_solution([tuple(r) for r in rows])
