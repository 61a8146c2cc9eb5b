"""The contract every task's problems and verdicts follow, whatever the task (the toy world, GSM8K, your own).

A **problem** (``toyworld.Problem``, ``gsm8k.GSM8KProblem``, yours: docs/own_task.md; the ``TaskProblem`` protocol) has

- ``prompt``: the text a policy reads, always a ``str`` (chat-formatted on GSM8K), never the answer;
- ``answer`` (the toy world's and GSM8K's, not the protocol's): the reference final answer, read by their own modules;
- a grader: ``is_correct(solution)``, ``final_answer(solution)`` (a number or None), ``gold_answer()``;
- step labels: ``step_labels(solution)`` / ``verdict(solution)`` (a ``Verdict``) from a gold checker where one exists
  (the toy world), else ``None`` (GSM8K: the labels come from Monte-Carlo rollouts, ``tasks.GSM8KTask.label``);
  the labelling builders call ``verdict`` when they are given no ``verdicts``.

Here too are the checks every consumer of problems runs before it samples or grades: ``check_problems``,
``prompts_of``, ``check_solution_lists``, and the answer check ``answer_check`` / ``graded``. A model only ever
receives ``problem.prompt`` strings: no object's repr is ever turned into a prompt.

Neighbours: ``tasks`` (the tasks that make and label such problems), ``toyworld`` (the toy world's problems and its
checker, which makes ``Verdict``s), ``labelling`` (the training rows built from verdicts), ``policy_eval`` (a
policy's accuracy on problems). This module imports no other module of the tutorial kit.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..checks import list_of
from ..rewards import mistake_made_here_labels


@runtime_checkable
class TaskProblem(Protocol):
    """What every problem offers (see the module docstring)."""

    prompt: str

    def is_correct(self, solution: str) -> bool: ...

    def final_answer(self, solution: str) -> float | None: ...

    def gold_answer(self) -> float: ...

    def step_labels(self, solution: str) -> list[bool] | None: ...

    def verdict(self, solution: str) -> Verdict | None: ...


@dataclass
class Verdict:
    """A solution's labels from a step checker: the toy world's (``toyworld.check``) and every task's
    ``verdict(solution)`` (docs/own_task.md says which builder reads which field)."""
    step_labels: list[bool]
    first_error: int  # 0-based index of the first wrong step, -1 if none
    answer_correct: bool
    error_kinds: list[str | None] = field(default_factory=list)  # per step: None or why it is wrong
    steps: list[str] = field(default_factory=list)

    def __post_init__(self):
        """Refuses a verdict whose fields disagree (``invalid_reason``) where it is made: a task's ``verdict``, or
        ``verdicts=`` made by hand. Nothing checked them: a first_error that disagreed with the step labels made
        Step-DPO reject a step they call right, error kinds given as one str were read a character at a time, and
        answer_correct="False" counted as a right answer, all silently."""
        reason = self.invalid_reason()
        if reason:
            raise ValueError(f"Verdict: {reason}")

    def invalid_reason(self) -> str | None:
        """What in the fields breaks docs/own_task.md's contract (the field, then why), or None. Allowed: a right
        answer after a wrong step (lucky), and Monte-Carlo labels, whose right step may follow a wrong one."""
        def boolean(x) -> bool:  # numpy's too; "False", 0 or None would be read by their truth value
            return type(x).__name__ in ("bool", "bool_")
        for name in ("step_labels", "error_kinds", "steps"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not hasattr(value, "__iter__"):
                return f"{name} must be a list (one item per step), got {type(value).__name__} {value!r:.40}"
        labels, kinds = list(self.step_labels), list(self.error_kinds)
        bad = next((k for k, x in enumerate(labels) if not boolean(x)), None)
        if bad is not None:
            return f"step_labels[{bad}] must be True or False, got {labels[bad]!r:.40}"
        if not boolean(self.answer_correct):
            return f"answer_correct must be True or False, got {self.answer_correct!r:.40}"
        first = next((k for k, ok in enumerate(labels) if not ok), -1)
        integral = isinstance(self.first_error, numbers.Integral) and not isinstance(self.first_error, bool)
        if not integral or self.first_error != first:  # True was step 1, 1.0 a TypeError, 5 an IndexError
            return (f"first_error must be {first}, the index of the first False step label (-1: none) in step_labels "
                    f"{labels!r:.60}, got {self.first_error!r:.40}")
        if labels and all(labels) and not self.answer_correct:
            return ("answer_correct is False but every step label is True: the step that gives the wrong answer "
                    "cannot reach the right one (label it False: the toy world's kind 'answer')")
        if kinds:
            if len(kinds) != len(labels):
                return f"error_kinds has {len(kinds)} entries for {len(labels)} step labels: give one per step, or []"
            bad = next((k for k, x in enumerate(kinds) if not (x is None or isinstance(x, str))), None)
            if bad is not None:
                return f"error_kinds[{bad}] must be None or a str (why the step is wrong), got {kinds[bad]!r:.40}"
            bad = next((k for k, (ok, x) in enumerate(zip(labels, kinds)) if ok and x is not None), None)
            if bad is not None:
                return f"error_kinds[{bad}] is {kinds[bad]!r:.40} but step_labels[{bad}] is True: a right step has None"
            if first >= 0 and kinds[first] in (None, "propagated"):
                return (f"error_kinds[{first}], the first wrong step's, must name the mistake made there, got "
                        f"{kinds[first]!r} (None and 'propagated' say that none is made there)")
        bad = next((k for k, s in enumerate(self.steps) if not isinstance(s, str)), None)
        if bad is not None:
            return f"steps[{bad}] must be a str (a step's text), got {type(self.steps[bad]).__name__}"
        if len(self.steps) and len(self.steps) != len(labels):
            return f"{len(labels)} step labels for {len(self.steps)} steps (steps: [] lets the builders split the text)"
        return None

    @property
    def mistake_labels(self) -> list[bool]:
        """Per step, False only where a mistake is *made*: a step that faithfully builds on an earlier wrong
        result (``propagated``) is labelled True here, though it cannot reach the answer (``step_labels``).
        ``step_labels`` say whether a state can still succeed (a PRM's target, Math-Shepherd); these say
        whether an action was wrong (what a step-level preference loss should push down). Without error
        kinds (labels made elsewhere, e.g. Monte-Carlo ones), a step is a mistake where its label drops from True
        (or the start) to False: ``rewards.mistake_made_here_labels`` on the 0/1 labels, the rule
        ``preference_pairs_from_stepwise`` applies, so that both builders give the same pairs the same labels (the
        first wrong step, and a wrong step after one labelled right again: [F, T, F] gives [F, T, F]). The same rule
        as ``public_datasets.mistake_labels`` (calculator-checked lines); the error kinds also find a second mistake
        made on a wrong number, where 0/1 labels stay False and show no drop."""
        if len(self.error_kinds) == len(self.step_labels):
            return [kind in (None, "propagated") for kind in self.error_kinds]
        return [x == 1 for x in mistake_made_here_labels(map(float, self.step_labels))]


def check_problems(problems, where: str, parts: tuple[str, ...] = ("is_correct", "verdict")) -> list:
    """``problems`` as a list, each with a str ``prompt`` and the methods ``parts``: a prompt text, or an object
    without them, is a ValueError naming ``where`` and the problem, before any sampling (it failed after it, or after
    the first ``eval_every`` training steps, as an AttributeError)."""
    problems = list_of(problems, where, "problems (docs/own_task.md)")
    for i, p in enumerate(problems):
        missing = [m for m in parts if not callable(getattr(p, m, None))]
        if missing or not isinstance(getattr(p, "prompt", None), str):
            raise ValueError(f"{where}[{i}]: expected a problem with a str prompt and the methods {', '.join(parts)} "
                             f"(docs/own_task.md), got a {type(p).__name__}"
                             + (f" without {', '.join(missing)}" if missing else " without a str prompt"))
    return problems


def prompts_of(problems, where: str = "prompts_of", texts_ok: bool = False) -> list[str]:
    """The prompt texts of ``problems``; one str, one problem (not in a list), or a problem whose ``prompt`` is not a
    str (a prompt given for its problem), raises, naming its index. ``texts_ok=True``: a str in the list is its own
    prompt, for a caller that needs only the prompts (``bestofn.score_candidates`` on a user's own prompts); the
    others read more of a problem (its checker, its answer), so a prompt text there is refused."""
    if isinstance(problems, str):  # would be read a character at a time
        raise ValueError(f"{where}: problems must be a list of a task's problems (each with a .prompt), not a str")
    if hasattr(problems, "prompt") or not isinstance(problems, Iterable):  # was "'Problem' object is not iterable"
        raise ValueError(f"{where}: problems must be a list of a task's problems, got one {type(problems).__name__}: "
                         "wrap it in a list ([problem])")
    out = []
    for i, p in enumerate(problems):
        prompt = getattr(p, "prompt", None)
        if isinstance(p, str) and texts_ok:  # its own prompt
            out.append(p)
            continue
        if isinstance(p, str):  # a prompt text in place of its problem: "must be a str, got NoneType (a str)" was all
            raise ValueError(f"{where}: problem {i}: its prompt must be a str, got NoneType (a str has no .prompt: "
                             "problems must be problem objects with a .prompt, e.g. toyworld.Problem or "
                             "gsm8k.GSM8KProblem, not their prompt texts)")
        if not isinstance(prompt, str):
            raise ValueError(f"{where}: problem {i}: its prompt must be a str, got {type(prompt).__name__} (a "
                             f"{type(p).__name__}); pass problems of a task (toyworld.Problem, gsm8k.GSM8KProblem)"
                             f"{' or prompt texts (str)' if texts_ok else ''}")
        out.append(prompt)
    return out


def check_solution_lists(problems, solutions, where: str) -> None:
    """One list of solutions per problem: a length mismatch would be cut to the shorter by ``zip``, and one str per
    problem read as its characters, silently."""
    if isinstance(problems, str) or isinstance(solutions, str):
        raise ValueError(f"{where}: expected a list of problems and one list of solutions per problem, got a str")
    for i, sols in enumerate(solutions):  # before the counts: a flat list of texts is told as that, whatever its length
        if isinstance(sols, str):
            raise ValueError(f"{where}: solutions[{i}] is one str; give a list of solutions per problem "
                             "(as sample_solutions returns)")
        if not isinstance(sols, Sized) or not isinstance(sols, Iterable):  # None (a failed sample) was a TypeError
            raise ValueError(f"{where}: solutions[{i}] must be a list of solutions, got {type(sols).__name__}")
    if len(problems) != len(solutions):
        raise ValueError(f"{where}: {len(problems)} problems but {len(solutions)} lists of solutions")


def answer_check(returned, where: str, name: str = "the problem's is_correct") -> bool:
    """``returned``, what an answer check (``name``) returned, as a bool; numpy's bool, 0 and 1 are bools. "False" or
    None was read by its truth value, every sample right or wrong. ``where`` names the problem and solution."""
    if not (isinstance(returned, (bool, np.bool_, numbers.Integral)) and returned in (0, 1)):
        raise ValueError(f"{where}: {name} must return a bool (docs/own_task.md), got {type(returned).__name__} "
                         f"{returned!r:.40}")
    return bool(returned)


def graded(problem, solution: str, where: str) -> bool:
    """``problem.is_correct(solution)``, which must be a bool (``answer_check``, as
    ``labelling.mc_step_labels`` checks it). ``where`` names the problem and solution in the ValueError."""
    return answer_check(problem.is_correct(solution), where)
