"""Step labels and training pairs made from sampled solutions, checked against the formats of ``data.py``.

- Builders for any task: solutions sampled per problem (``generation.sample_solutions`` returns one list of
  texts per problem) are labelled by the problems' own checker (the toy world's ``toyworld.check``, your own
  task's ``verdict``: docs/own_task.md) or, where there is none (GSM8K), by ``verdicts`` made another way
  (Monte-Carlo labels: ``gsm8k.mc_verdicts``), and turned into the formats of ``data.py``: stepwise supervision,
  outcome, preference and Step-DPO rows.
  ``toy_gold_vs_error_pairs`` is the toy world's alone: gold solutions against corrupted ones.
- ``preference_pairs_from_stepwise``: preference pairs with step labels from stepwise rows labelled anywhere
  (PRM800K, Math-Shepherd, your own labeller), no toy world needed.
- Monte-Carlo step labels (Wang et al. 2024, Math-Shepherd, arXiv:2312.08935): a step is good when
  completions sampled after it can still reach the right answer. No gold checker needed, only an answer check.
- ``label_agreement``: how well such labels match gold ones (``mc_comparison_problems``, ``mc_label_agreement``:
  notebook 01's comparison of its hard and soft Monte-Carlo labels with the checker's); ``verdict_summary``: what a
  sample's labels say.
- ``datasets_by_split``: the four datasets of every split, as notebook 01 saves them; ``data_metrics``: the ``data``
  section of ``metrics.json`` it records.

The ``Verdict`` these builders read, and the checks of problems, solution lists and answer checks they run first
(``prompts_of``, ``check_solution_lists``, ``answer_check``), are every task's contract: ``task_problems``.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import random
import re
from collections import Counter
from typing import Callable, Sequence

import numpy as np
from datasets import Dataset

from .. import generation
from ..checks import finite_number, flag, list_of, positive_int
from ..evaluation import check_labels
from ..data import (PREFERENCE, STEP_DPO, check_records, list_value, text_value, validate_outcome, validate_preference,
                   validate_step_dpo, validate_stepwise)
from ..rewards import mistake_made_here_labels
from ..steps import DEFAULT_DELIMITER, extract_steps
from . import toyworld
from .task_problems import Verdict, answer_check, check_solution_lists, prompts_of

logger = logging.getLogger("stepdpo_lite.data")


def _split_as_its_verdict(text: str, steps: list[str], delimiter: str, where: str) -> None:
    """Raises unless ``delimiter`` splits ``text`` into ``steps``, its verdict's own: a builder's ``delimiter=`` must
    be the one they were split by, or its pairs and labels would cut the texts elsewhere than their verdicts did.
    Checked per solution, before any row is built, so the message names the problem and solution (``where``) and
    both step counts. When the verdict's steps 2..K all open with the same whitespace-led string, it says which, and
    the delimiter that splits the text into them: the whitespace with its word ("\\n\\nStep") before the bare
    whitespace ("\\n\\n"), which would also split an answer line ("\\n\\nAnswer") off the next solution. The word
    is read only where two steps or more share it: later steps, or step 2 and step 1, which opens with the word
    alone ("Step 1: ..."); one later step's first word may be its own text ("\\nb = 3" is no "\\nb" delimiter)."""
    split = extract_steps(text, delimiter)
    if split == list(steps):
        return
    opening = ""
    later = [re.match(r"(\s+)([^\W\d_]*)", s) for s in steps[1:]]  # a whitespace lead, then a word ("Step")
    if later and all(later) and len({m[1] for m in later}) == 1:  # the same non-empty whitespace lead
        space, words = later[0][1], [m[2] for m in later]
        word = words[0][:next((k for k, cs in enumerate(zip(*words)) if len(set(cs)) > 1), min(map(len, words)))]
        if len(later) < 2 and not steps[0].startswith(word):  # one step's word alone may be its text ("\nb = 3")
            word = ""
        # the longest first: the bare whitespace may split this text but not the next (docstring)
        fits = [d for d in dict.fromkeys((space + word, space)) if extract_steps(text, d) == list(steps)]
        which = "step 2 opens" if len(steps) == 2 else f"steps 2..{len(steps)} open"
        opening = (f" (its {which} with {fits[0]!r}, which splits the text into them: delimiter={fits[0]!r})" if fits
                   else f" (its {which} with {space!r})")
    what = "other steps" if len(split) == len(steps) else "steps"
    raise ValueError(f"{where}: its verdict has {_counted(len(steps), 'steps')} but the delimiter {delimiter!r} "
                     f"splits the text into {_counted(len(split), what)}: pass delimiter= the one your verdicts' "
                     f"steps were split by{opening}")


def _task_verdict(problem, text: str, where: str) -> Verdict:
    """``problem.verdict(text)``; a ValueError there (a ``Verdict`` its checker made whose fields break the contract:
    "Verdict: error_kinds must be a list ...") is raised again naming the problem and solution (``where``). Any other
    exception, a bug in the task's own code, passes unchanged."""
    try:
        return problem.verdict(text)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err


def _verdicts(problems, solutions, verdicts=None, who: str = "labelling", delimiter: str | None = None,
              no_checker_fix: str = "pass verdicts=") -> list[list[tuple[str, Verdict]]]:
    """``(text, verdict)`` for the non-blank solutions of each problem (blank ones are counted by ``_blanks``).

    ``verdicts[i]`` (optional) holds one ``Verdict`` per solution of problem i, or per non-blank
    one (the two cannot be confused: they differ in length whenever there is a blank); else the problem's own checker
    runs: its ``verdict(solution)``, the task protocol's (``task_problems.TaskProblem``; a toy ``Problem``'s is
    ``check``).
    ``who`` (the builder) opens the error messages. ``delimiter``: a builder's ``delimiter=`` (the pair builders',
    Monte-Carlo labels'): it splits a verdict without steps, and must split the text into a verdict's own steps
    (``_split_as_its_verdict``); None (the builders without one): the default splits, nothing is checked.
    ``no_checker_fix`` ends the error for a problem without a checker: the caller's way around it.
    """
    check_solution_lists(problems, solutions, who)
    if verdicts is not None:  # a str or one Verdict was a len() clash or a TypeError
        verdicts = list_of(verdicts, f"{who}: verdicts", "lists of verdicts (one per problem)")
        verdicts = [list_of(vs, f"{who}: verdicts[{i}]", "task_problems.Verdicts (one per solution)")
                    for i, vs in enumerate(verdicts)]
    if verdicts is not None and len(verdicts) != len(problems):
        raise ValueError(f"{who}: {len(problems)} problems but {len(verdicts)} lists of verdicts")
    prompts_of(problems, who)  # a prompt str is no problem

    def no_checker(i: int, why: str) -> ValueError:
        return ValueError(f"{who}: problem {i} is a {type(problems[i]).__name__}: {why}: {no_checker_fix}")

    for i, problem in enumerate(problems):
        if verdicts is None and not callable(getattr(problem, "verdict", None)):
            raise no_checker(i, "it has no verdict(solution) method (task_problems.TaskProblem)")
    for i, sols in enumerate(solutions):  # else a None (a failed sample) is an AttributeError on .strip() below
        for j, s in enumerate(sols):
            if not isinstance(s, str):
                raise ValueError(f"{who}: problem {i}, solution {j}: must be a str (a sampled text), got "
                                 f"{type(s).__name__}")
    out = []
    for i, (problem, sols) in enumerate(zip(problems, solutions)):
        texts = [s for s in sols if s.strip()]
        kept = [j for j, s in enumerate(sols) if s.strip()]  # errors name solutions[i][j], blanks counted
        if verdicts is not None:
            vs = verdicts[i]
        else:  # the toy world's too: its Problem.verdict is toyworld.check
            vs = [_task_verdict(problem, sols[j], f"{who}: problem {i}, solution {j}") for j in kept]
        if verdicts is None and any(v is None for v in vs):  # GSM8K's: no step checker
            raise no_checker(i, "its verdict() is None: no step checker (on GSM8K the task's label() gives them)")
        if len(vs) == len(sols):
            vs = [v for s, v in zip(sols, vs) if s.strip()]
        elif len(vs) != len(texts):
            raise ValueError(f"{who}: problem {i}: {len(vs)} verdicts for {len(sols)} solutions "
                             f"({len(texts)} non-blank)")
        checked = []
        for j, s, v in zip(kept, texts, vs):
            if not isinstance(v, Verdict):  # e.g. its step labels: an AttributeError on .steps
                raise ValueError(f"{who}: problem {i}, solution {j}: its verdict must be a task_problems.Verdict, got "
                                 f"{type(v).__name__}")
            reason = v.invalid_reason()  # Verdict() checks its fields when made; a field set since was not
            if reason:
                raise ValueError(f"{who}: problem {i}, solution {j}: its verdict: {reason}")
            own = len(v.steps) > 0  # else split here, at the builder's delimiter (the one it checks the pairs by)
            # counted before replace(), whose Verdict message names no solution
            steps = v.steps if own else extract_steps(s, delimiter or DEFAULT_DELIMITER)
            if len(steps) != len(v.step_labels):
                raise ValueError(f"{who}: problem {i}, solution {j}: the verdict's {len(v.step_labels)} step labels "
                                 f"do not match the solution's {len(steps)} steps")
            v = v if own else dataclasses.replace(v, steps=steps)
            if "".join(v.steps) != s:  # it said "1 step labels do not match the solution's 1 steps"
                raise ValueError(f"{who}: problem {i}, solution {j}: the verdict's steps do not join into the "
                                 "solution's text (a verdict of another solution, or of another order?)")
            if delimiter is not None and own:
                _split_as_its_verdict(s, v.steps, delimiter, f"{who}: problem {i}, solution {j}")
            checked.append((s, v))
        out.append(checked)
    return out


_SINGULAR = {"solutions": "solution", "pairs": "pair", "steps": "step", "prompts": "prompt", "rows": "row"}


def _counted(n: int, things: str) -> str:
    """``n`` and what it counts, named in the plural (``things``); for one, the first plural noun of ``things`` in the
    singular ("1 wrong step with no right step to pair"), so that log lines and messages read right at any count."""
    if n == 1:
        things = re.sub(r"\b(" + "|".join(_SINGULAR) + r")\b", lambda m: _SINGULAR[m[1]], things, count=1)
    return f"{n} {things}"


def _report(name: str, built: int, what: str, **left_out: int) -> None:
    """One log line: what was built and, by reason, what was left out (nothing is dropped silently); a warning where
    something was left out or nothing built (all solutions right, say: an empty dataset fails far from here)."""
    reasons = ", ".join(_counted(n, reason.replace("_", " ")) for reason, n in left_out.items() if n)
    level = logging.WARNING if reasons or not built else logging.INFO
    logger.log(level, "%s: built %s%s", name, _counted(built, what), f"; left out: {reasons}" if reasons else "")


def _blanks(solutions) -> int:
    return sum(not s.strip() for sols in solutions for s in sols)


# ----------------------------------------------------------------------------- builders (any task)

def stepwise_rows(problems, solutions, *, verdicts=None, delimiter: str = DEFAULT_DELIMITER) -> Dataset:
    """Stepwise supervision rows: every non-blank solution (repeats kept: they are samples) with the checker's
    step labels (or those of ``verdicts``, as in every builder here: see ``_verdicts``); a verdict without its
    steps has the text split at ``delimiter``."""
    rows = [{"prompt": p.prompt, "completions": v.steps, "labels": v.step_labels}
            for p, checked in zip(problems, _verdicts(problems, solutions, verdicts, "stepwise_rows", delimiter))
            for _, v in checked]
    _report("stepwise_rows", len(rows), "rows", blank_solutions=_blanks(solutions))
    return validate_stepwise(rows)


def outcome_rows(problems, solutions, *, verdicts=None, delimiter: str = DEFAULT_DELIMITER) -> Dataset:
    """Outcome rows: ``label`` is whether the final answer is right; ``step_labels`` from the checker (a verdict
    without its steps counted against the text split at ``delimiter``)."""
    rows = [{"prompt": p.prompt, "completion": s, "label": v.answer_correct, "step_labels": v.step_labels}
            for p, checked in zip(problems, _verdicts(problems, solutions, verdicts, "outcome_rows", delimiter))
            for s, v in checked]
    _report("outcome_rows", len(rows), "rows", blank_solutions=_blanks(solutions))
    return validate_outcome(rows)


def _rejected_labels_of(rejected_labels: str, who: str):
    """The step labels a builder gives rejected solutions (see ``preference_pairs``)."""
    if rejected_labels not in ("mistakes", "reachability"):
        raise ValueError(f"{who}: rejected_labels must be 'mistakes' or 'reachability', got {rejected_labels!r}")
    return (lambda v: v.mistake_labels) if rejected_labels == "mistakes" else (lambda v: v.step_labels)


def drawn_pairs(good: list, bad: list, prompt: str, seed: int, max_pairs: int | None) -> list[tuple]:
    """``max_pairs`` (all with None) of the ``(chosen, rejected)`` combinations of one problem's ``good`` and ``bad``
    solutions, drawn at random seeded by ``seed`` and the problem's prompt, so that the draw does not depend on the
    problems' order (a str seed is hashed the same way in every process)."""
    pairs = [(c, r) for c in good for r in bad]
    random.Random(f"{seed}:{prompt}").shuffle(pairs)
    return pairs[:max_pairs]


def toy_gold_vs_error_pairs(n: int, seed: int = 0, min_ops: int = 2, max_ops: int = 6,
                            rejected_labels: str = "mistakes") -> Dataset:
    """``n`` synthetic pairs, no sampling: gold solution (chosen) vs the same with one arithmetic error at a
    random step (rejected), with the checker's step labels, "mistake made here" by default as in
    ``preference_pairs`` (``rejected_labels="reachability"``: a PRM's labels). For benchmarks and smoke runs
    that need pairs in seconds; ``min_ops``/``max_ops`` set the number of steps (long ones for memory
    benchmarks)."""
    labels_of = _rejected_labels_of(rejected_labels, "toy_gold_vs_error_pairs")
    positive_int(n, "n", "toy_gold_vs_error_pairs")  # 0 made a Dataset without columns, True 1 pair, 1.5 a TypeError
    rng, rows = random.Random(seed), []
    for p in toyworld.make_problems(n, seed=seed, min_ops=min_ops, max_ops=max_ops):
        rejected = toyworld.corrupt_solution(p, rng.randrange(len(p.ops)), "arithmetic", rng)
        rows.append(dict(prompt=p.prompt, chosen=p.gold_solution, rejected=rejected,
                         chosen_step_labels=toyworld.check(p, p.gold_solution).step_labels,
                         rejected_step_labels=labels_of(toyworld.check(p, rejected))))
    return Dataset.from_list(rows)


def preference_pairs(problems, solutions, *, max_pairs_per_problem: int | None = 4, seed: int = 0, verdicts=None,
                     rejected_labels: str = "mistakes", delimiter: str = DEFAULT_DELIMITER) -> Dataset:
    """Preference pairs: a correct and an incorrect solution of the same problem, with checker step labels.

    ``rejected_labels="mistakes"`` (default) labels a rejected step wrong only where the mistake is made
    (``Verdict.mistake_labels``): a later step that correctly builds on the wrong number is not pushed down
    by Stepwise DPO's step loss, which would otherwise teach the policy to avoid right arithmetic.
    ``"reachability"`` uses ``Verdict.step_labels`` (every step after the first error is wrong, as for a PRM).

    Chosen: right final answer and every step right. Rejected: wrong final answer. A solution with the
    right answer but a wrong step (lucky) is used on neither side. Each distinct text is used once, and left out
    when its copies' verdicts differ (Monte-Carlo labels come from each copy's own rollouts), as in
    ``preference_pairs_from_stepwise``: no copy's labels win by the order. Of all correct x incorrect
    combinations, ``max_pairs_per_problem`` are drawn at random (seeded per problem prompt, so the result does not
    depend on the order of the problems). Counts of what was left out are logged, the combinations not drawn too.
    ``delimiter`` is the one the solutions' steps were split by (``verdicts``' steps; a task of your own whose steps
    are lines: ``"\\n"``): each pair's step labels are checked against the steps it splits the texts into, as
    ``step_dpo_pairs`` takes it. No pair (a warning) gives an empty dataset with the columns of pairs.
    """
    labels_of = _rejected_labels_of(rejected_labels, "preference_pairs")
    positive_int(max_pairs_per_problem, "max_pairs_per_problem", "preference_pairs", none_ok=True)  # 0 is refused
    positive_int(seed, "seed", "preference_pairs", minimum=0)  # True or 1.0 drew other pairs than 1 ("True:...")
    rows, left = [], Counter()
    for p, checked in zip(problems, _verdicts(problems, solutions, verdicts, "preference_pairs", delimiter)):
        distinct = {}  # text -> its verdict, None where its copies' verdicts differ (labelled two ways)
        for s, v in checked:
            distinct[s] = v if distinct.get(s, v) == v else None
        left["repeated_solutions"] += len(checked) - len(distinct)
        left["solutions_labelled_two_ways"] += sum(v is None for v in distinct.values())
        distinct = {s: v for s, v in distinct.items() if v is not None}
        good = [s for s, v in distinct.items() if v.answer_correct and v.first_error < 0]
        bad = [s for s, v in distinct.items() if not v.answer_correct]
        left["lucky_solutions"] += len(distinct) - len(good) - len(bad)
        drawn = drawn_pairs(good, bad, p.prompt, seed, max_pairs_per_problem)
        left["pairs_over_max_per_problem"] += len(good) * len(bad) - len(drawn)
        rows += [{"prompt": p.prompt, "chosen": c, "rejected": r, "chosen_step_labels": distinct[c].step_labels,
                  "rejected_step_labels": labels_of(distinct[r])} for c, r in drawn]
    _report("preference_pairs", len(rows), "pairs", blank_solutions=_blanks(solutions), **left)
    if not rows:  # a split of few problems may give none (datasets_by_split builds it anyway): a built one's columns
        return Dataset.from_dict({c: [] for c in (*PREFERENCE, "chosen_step_labels", "rejected_step_labels")})
    return validate_preference(rows, delimiter=delimiter)


def step_dpo_pairs(problems, solutions, *, max_pairs_per_problem: int | None = 4, use_gold: bool = True,
                       seed: int = 0, verdicts=None, delimiter: str = DEFAULT_DELIMITER) -> Dataset:
    """Step-DPO pairs (Lai et al. 2024, arXiv:2406.18629): a shared correct prefix, then a right and a wrong step.

    For each sampled solution whose first wrong step is k: ``initial_reason_steps`` = its steps before k
    (all correct), ``rejected`` = its step k, ``chosen`` = step k of a sampled solution with the same prefix
    whose step k is right (``chosen_source`` "sampled"), else the gold solution's step k when the prefix is gold's
    own (``chosen_source`` "gold"); with ``use_gold=False``, or problems without ``gold_solution`` (or with None),
    the pair is left out (counted).
    ``step_index`` is k (0-based). Repeated (prefix, wrong step) pairs are used once;
    ``max_pairs_per_problem`` are drawn at random. Noisy labels (Monte-Carlo) can call the same step text right
    after a prefix in one sample and wrong in another: the chosen step is always a different text (else the
    pair is left out, counted as ``steps_labelled_right_and_wrong``; the pairs over ``max_pairs_per_problem`` are
    counted too). ``delimiter`` splits the gold solution into steps, as ``verdicts``' steps were split (a task of
    your own whose steps are lines: ``"\\n"``; GSM8K problems have no ``gold_solution``: their pairs are sampled
    ones only). No pair (a warning) gives an empty dataset with the columns of pairs.
    """
    positive_int(max_pairs_per_problem, "max_pairs_per_problem", "step_dpo_pairs", none_ok=True)  # 0 is refused
    flag(use_gold, "use_gold", "step_dpo_pairs")  # "no" is truthy: gold steps would be used
    positive_int(seed, "seed", "step_dpo_pairs", minimum=0)  # True or 1.0 drew other pairs than 1 ("True:...")
    rows, left = [], Counter()
    for p, checked in zip(problems, _verdicts(problems, solutions, verdicts, "step_dpo_pairs", delimiter)):
        right_next = {}  # prefix text -> the right next steps samples took after it, first seen first
        for _, v in checked:
            for k in range(len(v.steps) if v.first_error < 0 else v.first_error):
                right_next.setdefault("".join(v.steps[:k]), {})[v.steps[k]] = None  # an ordered set
        # a gold_solution of None is none at all (a user's problem class may declare the field and leave it unset)
        gold = extract_steps(p.gold_solution, delimiter) if getattr(p, "gold_solution", None) is not None else []
        pairs = {}
        for _, v in checked:
            k = v.first_error
            if k < 0:
                continue
            prefix, wrong = "".join(v.steps[:k]), v.steps[k]
            sampled = next((c for c in right_next.get(prefix, ()) if c != wrong), None)
            # gold's step k follows gold's prefix only: a prefix labelled right by noisy (Monte-Carlo) labels may differ
            on_gold_path = use_gold and k < len(gold) and "".join(gold[:k]) == prefix
            gold_k = gold[k] if on_gold_path and gold[k] != wrong else None
            if (prefix, wrong) in pairs:
                left["repeated_pairs"] += 1
            elif sampled is not None or gold_k is not None:
                pairs[prefix, wrong] = {"prompt": p.prompt, "initial_reason_steps": prefix,
                                        "chosen": sampled if sampled is not None else gold_k, "rejected": wrong,
                                        "chosen_source": "sampled" if sampled is not None else "gold", "step_index": k}
            elif wrong in right_next.get(prefix, ()):
                left["steps_labelled_right_and_wrong"] += 1
            elif use_gold and k < len(gold) and not on_gold_path:
                left["wrong_steps_whose_prefix_is_not_golds"] += 1
            else:  # e.g. an extra step after the answer: no right step k exists
                left["wrong_steps_with_no_right_step_to_pair"] += 1
        picked = list(pairs.values())
        random.Random(f"{seed}:{p.prompt}").shuffle(picked)
        rows += picked[:max_pairs_per_problem]
        left["pairs_over_max_per_problem"] += len(picked) - len(picked[:max_pairs_per_problem])
    _report("step_dpo_pairs", len(rows), "pairs", blank_solutions=_blanks(solutions), **left)
    if not rows:  # as in preference_pairs: the columns of a built one
        return Dataset.from_dict({c: [] for c in (*STEP_DPO, "chosen_source", "step_index")})
    return validate_step_dpo(rows)


# ----------------------------------------------------------------------------- pairs from stepwise rows (no toy world)

def preference_pairs_from_stepwise(rows, *, max_pairs_per_problem: int | None = 4, seed: int = 0,
                                   rejected_labels: str = "mistakes", delimiter: str = DEFAULT_DELIMITER) -> Dataset:
    """Preference pairs with step labels from stepwise supervision rows (a list of dicts, a Dataset or a JSON/JSONL
    path: ``prompt``, ``completions`` = steps, ``labels``; e.g. PRM800K, Math-Shepherd, ``mc_step_labels`` or your
    own labeller's), without the toy world: the rows of each prompt pair a solution with every step labelled right
    (chosen) with one with a step labelled wrong (rejected), each text joined from its steps.

    The rows' labels are *reachable* (docs/formats.md): ``rejected_labels="mistakes"`` (default) keeps a rejected
    step wrong only where its label drops (``rewards.mistake_made_here_labels``, as the trainer reads a PRM's), so a
    later step is not pushed down for building on the mistake; ``"reachability"`` keeps the labels as they are.
    ``delimiter`` must open steps 2..K (``validate_stepwise``'s check; PRM800K, Math-Shepherd: ``"\\n"``) and be the
    trainer's ``step_delimiter``; a row whose joined text splits into other steps (a PRM800K step holding lines of
    its own) is left out. ``max_pairs_per_problem`` and ``seed`` draw the pairs as in ``preference_pairs`` (the rows'
    order does not change them). A text given again is used once, and left out when its labels differ; a prompt
    without both a right and a wrong solution gives no pair. Counts of what was left out (the combinations not drawn
    too) are logged; no pair at all is a ValueError."""
    who = "preference_pairs_from_stepwise"
    _rejected_labels_of(rejected_labels, who)  # checks the choice
    positive_int(max_pairs_per_problem, "max_pairs_per_problem", who, none_ok=True)
    positive_int(seed, "seed", who, minimum=0)
    labels_by_text, left = {}, Counter()  # prompt -> {joined text: labels}, first seen first
    try:
        stepwise = validate_stepwise(rows, delimiter=delimiter)
    except ValueError as err:  # its message names the record and the field
        raise ValueError(f"{who}: {err}") from None
    for row in stepwise:
        text, labels = "".join(row["completions"]), tuple(row["labels"])
        if extract_steps(text, delimiter) != row["completions"]:  # the trainer would cut other steps out of it
            left["rows_whose_steps_split_otherwise"] += 1
            continue
        texts = labels_by_text.setdefault(row["prompt"], {})
        left["repeated_solutions"] += text in texts
        texts[text] = labels if texts.get(text, labels) == labels else None  # None: labelled two ways
    rows_out = []
    for prompt, texts in labels_by_text.items():
        left["solutions_labelled_two_ways"] += sum(labels is None for labels in texts.values())
        good = [t for t, labels in texts.items() if labels is not None and all(labels)]
        bad = [t for t, labels in texts.items() if labels is not None and not all(labels)]
        left["prompts_without_a_right_solution"] += not good and bool(bad)
        left["prompts_without_a_wrong_solution"] += bool(good) and not bad
        # sorted: the draw does not depend on the rows' order either
        drawn = drawn_pairs(sorted(good), sorted(bad), prompt, seed, max_pairs_per_problem)
        left["pairs_over_max_per_problem"] += len(good) * len(bad) - len(drawn)
        rows_out += [{"prompt": prompt, "chosen": c, "rejected": r, "chosen_step_labels": list(texts[c]),
                      "rejected_step_labels": [p == 1 for p in mistake_made_here_labels(map(float, texts[r]))]
                      if rejected_labels == "mistakes" else list(texts[r])} for c, r in drawn]
    _report(who, len(rows_out), "pairs", **left)
    if not rows_out:
        raise ValueError(f"{who}: no pair: no prompt has both a solution with every step labelled right and one "
                         f"with a step labelled wrong (of {len(labels_by_text)} prompts; left out: {dict(+left)})")
    return validate_preference(rows_out, delimiter=delimiter)


DATASET_KINDS = ("stepwise", "outcome", "preference", "step_dpo")  # as notebook 01 names (and saves) them


def datasets_by_split(problems: dict, solutions: dict, verdicts: dict, *, seed: int = 0,
                      delimiter: str = DEFAULT_DELIMITER) -> dict[str, Dataset]:
    """The four datasets of every split, ``{"<split>_<kind>": Dataset}`` in the order of the splits and of
    ``DATASET_KINDS``, as ``data.save_datasets`` saves them and notebooks 02-05 load them: stepwise supervision (the
    PRM's), outcome (the ORM's), preference pairs (DPO, Stepwise DPO) and Step-DPO pairs. ``problems``,
    ``solutions`` and ``verdicts`` are dicts by split name (``verdicts``: the checker's labels in the toy world, the
    Monte-Carlo ones elsewhere); all four datasets of a split come from the same verdicts, so a PRM and a policy
    learn from the same labels. ``seed`` draws the pairs (per problem prompt: see ``preference_pairs``);
    ``delimiter``, the one the verdicts' steps were split by, goes to both pair builders (docs/own_task.md)."""
    if not isinstance(problems, dict):  # a list was blamed on solutions: "solutions must be a dict with the splits"
        raise ValueError(f"datasets_by_split: problems must be a dict of split name -> problems ({{'train': [...]}}), "
                         f"got {type(problems).__name__}")
    for name, by_split in (("solutions", solutions), ("verdicts", verdicts)):
        if not isinstance(by_split, dict) or list(by_split) != list(problems):
            raise ValueError(f"datasets_by_split: {name} must be a dict with the splits of problems, "
                             f"{list(problems)}, in their order; got "
                             f"{list(by_split) if isinstance(by_split, dict) else type(by_split).__name__}")
    out = {}
    for split in problems:
        ps, sols, kw = problems[split], solutions[split], {"verdicts": verdicts[split]}

        def name_the_split(record, split=split):  # each builder's log line names itself, not the split it builds
            record.msg = f"{split} split: {record.msg}"
            return True
        logger.addFilter(name_the_split)
        try:
            built = {"stepwise": stepwise_rows(ps, sols, delimiter=delimiter, **kw),
                     "outcome": outcome_rows(ps, sols, delimiter=delimiter, **kw),
                     "preference": preference_pairs(ps, sols, seed=seed, delimiter=delimiter, **kw),
                     "step_dpo": step_dpo_pairs(ps, sols, seed=seed, delimiter=delimiter, **kw)}
        finally:
            logger.removeFilter(name_the_split)
        out.update({f"{split}_{kind}": built[kind] for kind in DATASET_KINDS})
    return out


# ----------------------------------------------------------------------------- Monte-Carlo step labels

def mc_step_labels(model, tokenizer, prompts: Sequence[str], solutions: Sequence[Sequence[str]],
                   is_correct: Callable[[int, str], bool], *, n: int = 8, temperature: float = 1.0,
                   batch_size: int = 64, max_new_tokens: int = 160, seed: int = 0, progress: bool = True,
                   delimiter: str = DEFAULT_DELIMITER) -> Dataset:
    """Monte-Carlo step labels (Math-Shepherd, Wang et al. 2024): for solution i with steps s_1..s_K and each
    k < K, sample ``n`` completions of ``prompts[i] + s_1 + ... + s_k + d`` from the policy and call
    ``is_correct(i, s_1 + ... + s_k + d + completion)`` on each (the solution text, without the prompt). ``d`` is
    the ``delimiter`` that opens step k+1 (``extract_steps`` puts it there), when it does: a rollout from inside
    step k could go on writing it (``= 1`` made ``= 12``), and step k would be judged by what the rollout wrote.

    Soft estimate: the fraction that reach the right answer; hard estimate: whether any does (so
    hard == (soft > 0)). Step K needs no sampling: both are ``is_correct(i, full solution)``.
    ``solutions[i]`` is a list of steps that join into the solution (``extract_steps``). Returns stepwise
    supervision rows with ``labels`` = hard estimates and ``soft_labels`` (floats). Sampling is batched
    through ``generation.sample_solutions`` (any causal LM and tokenizer; progress bar with ``progress``).
    """
    prompts = list_of(prompts, "mc_step_labels: prompts", "prompt strings")  # one str: read a character at a time
    solutions = list_of(solutions, "mc_step_labels: solutions", "lists of steps")
    if len(prompts) != len(solutions):
        raise ValueError(f"mc_step_labels: got {len(prompts)} prompts but {len(solutions)} solutions")
    # The checks validate_stepwise makes on the rows at the end (a non-empty list of non-blank steps, a prompt), made
    # before the sampling (minutes of it).
    check_records([(f"solution {i}", {"prompt": p, "steps": s}) for i, (p, s) in enumerate(zip(prompts, solutions))],
                  lambda r: [(text_value(r, "prompt"), list_value(r, "steps", str))], "mc_step_labels")
    prefixes = [(i, k) for i, steps in enumerate(solutions) for k in range(1, len(steps))]
    closed = [("".join(solutions[i][:k]) + (delimiter if solutions[i][k].startswith(delimiter) else ""))
              for i, k in prefixes]  # step k and the opening of step k+1
    samples = generation.sample_solutions(model, tokenizer, [prompts[i] + c for (i, _), c in zip(prefixes, closed)],
                                          n=n, temperature=temperature, batch_size=batch_size,
                                          max_new_tokens=max_new_tokens, seed=seed, progress=progress) if closed else []

    def graded(i: int, text: str, what: str) -> bool:  # None (no answer it could grade) was counted as wrong
        return answer_check(is_correct(i, text), f"mc_step_labels: solution {i}, {what}", "is_correct")

    soft = [[0.0] * len(steps) for steps in solutions]
    for (i, k), prefix, completions in zip(prefixes, closed, samples):
        soft[i][k - 1] = sum(graded(i, prefix + c, f"rollout {j} after step {k}")
                             for j, c in enumerate(completions)) / n
    for i, steps in enumerate(solutions):
        soft[i][-1] = float(graded(i, "".join(steps), "the solution itself"))
    return validate_stepwise([{"prompt": prompts[i], "completions": list(steps), "labels": [s > 0 for s in soft[i]],
                               "soft_labels": soft[i]} for i, steps in enumerate(solutions)])


def problem_mc_step_labels(model, tokenizer, problems, solutions, **kw) -> Dataset:
    """``mc_step_labels`` on problems with a step checker (the toy world's, your own task's: ``verdict``): a
    completion is right when the problem's ``is_correct`` says so. ``solutions``: one list of texts per problem (as
    ``sample_solutions`` returns); blank ones are left out (logged). Adds ``gold_labels`` (the checker's step labels)
    for ``label_agreement``."""
    checked = _verdicts(problems, solutions, who="problem_mc_step_labels",
                        delimiter=kw.get("delimiter", DEFAULT_DELIMITER),  # mc_step_labels' own
                        # it takes no verdicts (it needs the checker's for gold_labels): the call that needs none
                        no_checker_fix="mc_step_labels(model, tokenizer, prompts, step_lists, is_correct) labels "
                                       "without a checker")
    flat = [(p, v) for p, pairs in zip(problems, checked) for _, v in pairs]
    _report("problem_mc_step_labels", len(flat), "solutions to label", blank_solutions=_blanks(solutions))
    ds = mc_step_labels(model, tokenizer, [p.prompt for p, _ in flat], [v.steps for _, v in flat],
                        lambda i, text: flat[i][0].is_correct(text), **kw)  # the toy world's: toyworld.check's
    return ds.add_column("gold_labels", [v.step_labels for _, v in flat])


def verdict_summary(verdicts) -> dict:
    """What a sample's verdicts say (``verdicts``: one list of ``Verdict`` per problem): how many solutions,
    the share whose final answer is right, how many have no wrong step, how many reach the right answer through a
    wrong step (a lucky slip: outcome labels call every step of it right), and what the first mistake was (its
    error kind -> how many, most common first; labels made without error kinds, e.g. Monte-Carlo ones, have none)."""
    flat = []
    for i, vs in enumerate(list_of(verdicts, "verdict_summary: verdicts", "verdict lists (one per problem)")):
        for j, v in enumerate(list_of(vs, f"verdict_summary: verdicts[{i}]", "verdicts")):
            # a field set after Verdict() checked them: first_error None was a TypeError, too few kinds an IndexError
            reason = v.invalid_reason() if isinstance(v, Verdict) else f"not a task_problems.Verdict: {v!r:.40}"
            if reason:
                raise ValueError(f"verdict_summary: verdicts[{i}][{j}]: {reason}")
            flat.append(v)
    if not flat:
        raise ValueError("verdict_summary: expected task_problems.Verdict objects, got none")
    kinds = Counter(v.error_kinds[v.first_error] for v in flat if v.first_error >= 0 and v.error_kinds)
    return {"solutions": len(flat), "accuracy": sum(v.answer_correct for v in flat) / len(flat),
            "no_step_wrong": sum(v.first_error < 0 for v in flat),
            "right_through_a_wrong_step": sum(v.answer_correct and v.first_error >= 0 for v in flat),
            "first_mistakes": dict(kinds.most_common())}


def format_verdict_summary(summary: dict) -> str:
    """Notebook 01's three lines on ``verdict_summary``."""
    return (f"{summary['solutions']} sampled solutions, final answer right in {summary['accuracy']:.1%}\n"
            f"no step wrong in {summary['no_step_wrong']}; right answer through a wrong step in "
            f"{summary['right_through_a_wrong_step']}\nwhat the first mistake was: {summary['first_mistakes']}")


def label_agreement(mc_labels: Sequence[Sequence], gold_labels: Sequence[Sequence[bool]],
                    threshold: float = 0.5) -> dict:
    """Agreement of estimated step labels with gold ones, over all steps ("correct step" is the positive class).

    ``mc_labels`` may be hard (bool) or soft (fractions, counted correct when >= ``threshold``). Returns
    accuracy, precision, recall, f1, the number of steps and the rate of correct steps in each. Precision is None
    when the estimate calls no step right, recall when the gold calls none right (and f1 with either): a 0 there
    would read as "never finds a right step" (``format_label_agreement`` prints "n/a").
    """
    mc_labels = list_of(mc_labels, "label_agreement: mc_labels", "label lists (one per solution)")
    gold_labels = list_of(gold_labels, "label_agreement: gold_labels", "label lists (one per solution)")
    if len(mc_labels) != len(gold_labels):
        raise ValueError(f"label_agreement: {len(mc_labels)} label lists vs {len(gold_labels)} gold lists")
    # True was a threshold of 1, "0.5" a TypeError
    if not 0 < finite_number(threshold, "threshold", "label_agreement") <= 1:
        raise ValueError(f"label_agreement: threshold is a share of rollouts in (0, 1], got {threshold!r}")
    pred, gold = [], []
    for i, (m, g) in enumerate(zip(mc_labels, gold_labels)):
        # A flat list of labels (one solution's) would give a bool here: wrap it in a list.
        m = list_of(m, f"label_agreement: mc_labels[{i}]", "step labels (one list per solution; wrap a flat list in "
                    "a list)")
        g = list_of(g, f"label_agreement: gold_labels[{i}]", "step labels (one list per solution; wrap a flat list "
                    "in a list)")
        if len(m) != len(g):
            raise ValueError(f"label_agreement: solution {i} has {len(m)} labels but {len(g)} gold labels")
        bad = [k for k, x in enumerate(m) if not isinstance(x, (numbers.Real, np.bool_)) or not 0 <= x <= 1]
        if bad:  # None, a NaN or a count would be read as a label all the same
            raise ValueError(f"label_agreement: solution {i}, step {bad[0]}: a label must be a bool or a share in "
                             f"[0, 1], got {m[bad[0]]!r}")
        check_labels(g, "label_agreement", f"gold_labels[{i}]")  # by truth value, None was wrong and 0.2 right
        pred += [float(x) >= threshold for x in m]
        gold += [bool(x) for x in g]
    if not gold:
        raise ValueError("label_agreement: no steps to compare")
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support  # slow to import: here only

    # NaN where undefined (no step called right), read as None; f1 too when either is (sklearn's would be 0.0)
    scores = precision_recall_fscore_support(gold, pred, average="binary", pos_label=True, zero_division=np.nan)[:3]
    precision, recall, f1 = (None if np.isnan(x) else float(x) for x in scores)
    return {"accuracy": float(accuracy_score(gold, pred)), "precision": precision, "recall": recall,
            "f1": None if precision is None or recall is None else f1,
            "n_steps": len(gold), "mc_correct_rate": sum(pred) / len(pred), "gold_correct_rate": sum(gold) / len(gold)}


def format_label_agreement(name: str, agreement: dict) -> str:
    """One line of ``label_agreement``'s figures for notebook 01; an undefined precision or recall reads "n/a"."""
    def two_places(x):
        return "n/a" if x is None else f"{x:.2f}"
    return (f"{name}: agreement {agreement['accuracy']:.1%} (precision {two_places(agreement['precision'])}, recall "
            f"{two_places(agreement['recall'])}) on {agreement['n_steps']} steps")


def mc_comparison_problems(problems, solutions, n_solutions: int, samples_per_problem: int) -> tuple[list, list]:
    """The first problems of a split, with their sampled solutions, that notebook 01 gives Monte-Carlo step labels to
    compare with the checker's: whole problems (``problem_mc_step_labels`` takes one list of solutions per problem),
    ``n_solutions // samples_per_problem`` of them and at least one, so about ``n_solutions`` solutions."""
    check_solution_lists(problems, solutions, "mc_comparison_problems")
    positive_int(n_solutions, "n_solutions", "mc_comparison_problems")
    positive_int(samples_per_problem, "samples_per_problem", "mc_comparison_problems")
    n = max(1, n_solutions // samples_per_problem)
    return list(problems[:n]), list(solutions[:n])


def mc_label_agreement(mc, soft_threshold: float = 0.5) -> dict[str, dict]:
    """How well Monte-Carlo step labels match the checker's, ``{"hard": ..., "soft": ...}`` (``label_agreement`` of
    each, "right step" the positive class), on ``problem_mc_step_labels``' rows (``labels``, ``soft_labels``,
    ``gold_labels``). The hard estimate calls a step right when any rollout after it reaches the right answer; the
    soft one when at least ``soft_threshold`` of them do. They err in opposite ways: the hard one calls a wrong step
    right when a rollout recovers by luck, the soft one a right step wrong when a weak policy seldom finishes."""
    missing = [c for c in ("labels", "soft_labels", "gold_labels") if c not in getattr(mc, "column_names", mc)]
    if missing:
        raise ValueError(f"mc_label_agreement: the rows lack {missing}; pass problem_mc_step_labels' rows")
    return {"hard": label_agreement(mc["labels"], mc["gold_labels"]),
            "soft": label_agreement(mc["soft_labels"], mc["gold_labels"], threshold=soft_threshold)}


def data_metrics(problems: dict, samples_per_problem: int, sampled: dict, datasets: dict,
                 agreement: dict | None = None) -> dict:
    """The ``data`` section of ``metrics.json`` that notebook 01 records and the README and later notebooks quote:
    the problems per split, the samples per problem, what the base policy's samples were (``verdict_summary`` of
    every split's, recorded as ``base_*``), the rows of each dataset (``datasets_by_split``) and, where the
    Monte-Carlo labels were compared with the checker's (``mc_label_agreement``; None: no checker, no comparison),
    their agreement and their precision and recall."""
    metrics = {"n_problems": {split: len(ps) for split, ps in problems.items()},
               "samples_per_problem": samples_per_problem,
               "base_sampled_accuracy": sampled["accuracy"], "base_sampled_solutions": sampled["solutions"],
               "base_no_step_wrong": sampled["no_step_wrong"],
               "base_right_through_a_wrong_step": sampled["right_through_a_wrong_step"],
               "rows": {name: len(ds) for name, ds in datasets.items()}}
    if agreement is not None:
        metrics["mc_label_agreement"] = {k: a["accuracy"] for k, a in agreement.items()}
        metrics["mc_label_precision_recall"] = {k: {m: a[m] for m in ("precision", "recall")}
                                                for k, a in agreement.items()}
    return metrics
