"""One task interface for the toy world and GSM8K: problems, grading, step labels, sampling, evaluation.

A **problem** (``toyworld.Problem``, ``gsm8k.GSM8KProblem``) has

- ``prompt``: the text a policy reads, always a ``str`` (chat-formatted on GSM8K), never the answer;
- ``answer``: the reference final answer;
- a grader: ``is_correct(solution)``, ``final_answer(solution)`` (a number or None), ``gold_answer()``;
- step labels: ``step_labels(solution)`` / ``verdict(solution)`` (a ``toyworld.Verdict``) from a gold checker where
  one exists (the toy world), else ``None`` (GSM8K: the labels come from Monte-Carlo rollouts, ``Task.label``);
  the labelling builders call ``verdict`` when they are given no ``verdicts``.

A **task** (``ToyTask``, ``GSM8KTask``, one of your own: docs/own_task.md; ``get_task(profile)``, ``TASKS``) makes
the problems of a profile, labels sampled solutions (checker or rollouts: one verdict per solution, a blank one's with
no steps and a wrong answer), says how long a solution is (``answers_by_length``) and whether it slipped in a step
where a checker can tell (``wrong_step_checker``), and estimates what the labelling costs. Sampling, grading,
best-of-N (``bestofn``) and policy evaluation all go through these; nothing dispatches on problem types, and a model
only ever receives ``problem.prompt`` strings (``generation.sample_solutions`` raises on an item that is not a
``str`` and has no ``str`` prompt: no object's repr is ever turned into a prompt).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy import stats

from .. import generation
from ..checks import finite_number, list_of, positive_int
from ..steps import extract_steps
from . import budget, gsm8k, labelling, toyworld
from .profiles import get_profile

# What each policy of notebooks 04 and 06 is called in every figure and printed line (``method_name`` reads this dict):
# all but the base are trained with the NLL term of the chosen solutions, and the names say so. Here, torch- and
# matplotlib-free, so that viz, bestofn, search and onpolicy all print the same words.
POLICY_NAMES = {"base": "base", "dpo": "DPO + NLL", "stepwise_dpo": "Stepwise DPO + NLL", "nll_only": "NLL only (RFT)",
                "step_dpo": "Step-DPO + NLL"}  # the last: notebook 04's run on notebook 01's Step-DPO pairs
# What a method's code key is called in a figure's key and a printed table (``method_name``), in the words the
# notebooks' text uses; metrics.json keeps the keys.
METHOD_NAMES = {"prm_min": "PRM, min", "prm_product": "PRM, product", "prm_last": "PRM, last", "orm": "ORM",
                "combined": "combined (PRM + ORM)", "majority": "majority vote", "random": "random pick",
                "best_of_n_orm": "best-of-N, ORM", "best_of_n_prm": "best-of-N, PRM", "beam_prm": "beam search, PRM",
                "dvts_prm": "DVTS, PRM", **POLICY_NAMES}


def method_name(key: str) -> str:
    """A method's or policy's name in every figure and printed table (``METHOD_NAMES``), e.g. "PRM, min" for
    "prm_min", "DPO + NLL" for "dpo"; a key of one's own as it is."""
    return METHOD_NAMES.get(key, key)


def step_body(step: str) -> str:
    """A step without its "Step k:" (both tasks' solutions number their steps so) and the whitespace before it, its
    answer line kept, as the notebooks' pictures and texts quote it."""
    return re.sub(r"^\s*Step \d+:\s*", "", step)


@runtime_checkable
class TaskProblem(Protocol):
    """What every problem offers (see the module docstring)."""

    prompt: str

    def is_correct(self, solution: str) -> bool: ...

    def final_answer(self, solution: str) -> float | None: ...

    def gold_answer(self) -> float: ...

    def step_labels(self, solution: str) -> list[bool] | None: ...

    def verdict(self, solution: str) -> toyworld.Verdict | None: ...


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


def graded(problem, solution: str, where: str) -> bool:
    """``problem.is_correct(solution)``, which must be a bool (``labelling.answer_check``, as ``mc_step_labels``
    checks it). ``where`` names the problem and solution in the ValueError."""
    return labelling.answer_check(problem.is_correct(solution), where)


def check_spelled(tokenizer, texts: list[str], where: str, *, first: int = 0, text: str = "its prompt",
                  harm: str = "the model would answer another problem") -> None:
    """A ValueError naming ``where[first + i]``, the characters and ``harm`` when the tokenizer reads part of
    ``texts[i]`` as its unk token (the model would read ``<unk>`` there, without a word); ``first``: the index of
    ``texts[0]`` in the caller's list (a slice of it checked), ``text`` names the text in the message.
    Refused: a character the tokenizer reads as unk, or more unk tokens than the text writes the unk token's own text
    (which a text may hold on purpose: the smoke base's Qwen2 tokenizer has ``<|endoftext|>`` as unk, a few-shot
    separator). Byte-level tokenizers spell every character; one without an unk token has nothing to check."""
    unk, unk_text = getattr(tokenizer, "unk_token_id", None), getattr(tokenizer, "unk_token", None)
    if unk is None:
        return

    def encode(t):  # verbose=False: a text over model_max_length is the caller's to refuse, not transformers' log's
        return tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"]

    for i, ids in enumerate(encode(texts) if texts else []):
        if unk not in ids:
            continue
        written = texts[i].count(unk_text) if unk_text else 0  # read as itself, whatever its characters alone are
        distinct = list(dict.fromkeys(texts[i].replace(unk_text, "") if written else texts[i]))
        chars = [c for c, c_ids in zip(distinct, encode(distinct)) if unk in c_ids]  # one call for them all
        if chars or ids.count(unk) > written:
            what = f"the characters {''.join(chars)!r}" if chars else "a part"
            raise ValueError(f"{where}[{first + i}]: the tokenizer reads {what} of {text} as "
                             f"{unk_text or f'token {unk}'} "
                             f"({harm}): write {text} in characters it spells (the toy world's tiny tokenizer, for "
                             "one, spells printable ASCII and newlines only)")


def sample_solutions(model, tokenizer, problems, *, where: str = "sample_solutions: problems", **kw) -> list[list[str]]:
    """``generation.sample_solutions`` on the problems' prompts (``n``, ``temperature``, ``batch_size``, ...); a
    prompt the tokenizer cannot spell is a ValueError naming ``where``'s problem and characters (``check_spelled``)."""
    prompts = labelling.prompts_of(problems)
    check_spelled(tokenizer, prompts, where)
    return generation.sample_solutions(model, tokenizer, prompts, **kw)


def greedy_solutions(model, tokenizer, problems, batch_size: int = 64, max_new_tokens: int = 160) -> list[str]:
    """One greedy (temperature 0) solution per problem (``sample_solutions``, no bar): notebook 05's answers before
    and after training; ``evaluate_policy(n=1, temperature=0)`` grades such ones."""
    sols = sample_solutions(model, tokenizer, problems, n=1, temperature=0.0, batch_size=batch_size,
                            max_new_tokens=max_new_tokens, progress=False)
    return [s[0] for s in sols]


def evaluate_policy(model, tokenizer, problems, n: int = 1, temperature: float = 0.0, *,
                    where: str = "evaluate_policy: problems", **kw) -> dict:
    """Final-answer accuracy of a policy on ``problems``; with a step checker (toy world) also the share of
    right steps and the kinds of first errors. ``where`` names the problems in errors (a caller's argument, e.g.
    ``"fine_tune_base: eval_problems"``): ``where[i]`` a problem, with ``solution j`` one of its samples."""
    if not (problems := check_problems(problems, where)):
        raise ValueError(f"{where}: no problems to evaluate on")
    sols = sample_solutions(model, tokenizer, problems, n=n, temperature=temperature, where=where, **kw)
    pairs = [(p, s) for p, ss in zip(problems, sols) for s in ss]
    right = [sum(graded(p, s, f"{where}[{i}], solution {j}") for j, s in enumerate(ss))
             for i, (p, ss) in enumerate(zip(problems, sols))]
    out = {"accuracy": sum(right) / len(pairs), "n_solutions": len(pairs), "right_per_problem": right}
    verdicts = [p.verdict(s) for p, s in pairs]
    if verdicts and all(v is not None for v in verdicts):
        labels = [lab for v in verdicts for lab in v.step_labels]
        out["step_accuracy"] = sum(labels) / max(len(labels), 1)
        # verdicts without error kinds (an empty list, docs/own_task.md) have none to count
        out["first_error_kinds"] = dict(Counter(v.error_kinds[v.first_error] for v in verdicts
                                                if v.first_error >= 0 and v.error_kinds))
    return out


def problems_digest(problems) -> str:
    """A short digest of the problems' prompts, in order: which problems a recorded accuracy was measured on (the
    same count drawn with another seed or split is other problems)."""
    return hashlib.sha256("\0".join(p.prompt for p in problems).encode()).hexdigest()[:16]


def greedy_and_sampled_accuracy(model, tokenizer, problems, *, n_sampled: int = 2, batch_size: int = 64,
                                max_new_tokens: int = 160, seed: int = 0, per_problem: bool = False,
                                progress: bool = False) -> dict:
    """How notebook 04 and the on-policy rounds measure a policy: final-answer accuracy greedy (one solution per
    problem) and sampled at T = 1 (``n_sampled`` each); with a step checker, the share of right steps too.
    Returns ``accuracy`` and ``sampled_accuracy`` (with a checker ``step_accuracy`` and ``sampled_step_accuracy``),
    ``n_test_problems``, ``test_problems_digest`` and ``in_4_bits``, whether the weights were 4-bit ones.
    ``per_problem``: also ``"per_problem"``, how many of each
    problem's solutions are right (``greedy_right``, ``sampled_right``, ``n_sampled``): what
    ``accuracy_differences`` compares two policies by. ``progress``: a bar over each of the two generations."""
    kw = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, seed=seed, progress=progress)
    with generation.evaluating(model):
        greedy = evaluate_policy(model, tokenizer, problems, n=1, temperature=0.0, **kw)
        sampled = evaluate_policy(model, tokenizer, problems, n=n_sampled, temperature=1.0, **kw)
    out = {"accuracy": greedy["accuracy"], "sampled_accuracy": sampled["accuracy"],
           "step_accuracy": greedy.get("step_accuracy"), "sampled_step_accuracy": sampled.get("step_accuracy"),
           "n_test_problems": len(problems), "test_problems_digest": problems_digest(problems),
           "in_4_bits": bool(getattr(model, "is_loaded_in_4bit", False))}  # not the numbers of 16-bit weights
    if per_problem:
        out["per_problem"] = {"greedy_right": greedy["right_per_problem"],
                              "sampled_right": sampled["right_per_problem"], "n_sampled": n_sampled}
    return out


def format_accuracy(name: str, result: dict) -> str:
    """One policy's line in notebook 04: greedy and sampled accuracy, and the share of right greedy steps where a
    checker gave it (``greedy_and_sampled_accuracy``'s ``step_accuracy``)."""
    steps = f"   steps right (greedy) {result['step_accuracy']:.1%}" if result.get("step_accuracy") is not None else ""
    return f"{name:20s} greedy {result['accuracy']:.1%}   sampled(T=1) {result['sampled_accuracy']:.1%}{steps}"


def evaluate_saved_policies(saved: dict, tokenizer, problems, *, n_sampled: int = 2, batch_size: int = 64,
                            max_new_tokens: int = 160, seed: int = 0, log=print, progress: bool = False,
                            dtype=None) -> tuple[dict, dict]:
    """Each policy of ``saved`` (name -> what ``generation.load_policy`` takes: a Hub name, a folder, a LoRA
    adapter's folder) loaded in turn, measured by ``greedy_and_sampled_accuracy`` on the same ``problems`` and
    dropped before the next, each line (``format_accuracy``) passed to ``log`` as it is measured. ``progress``: a
    bar over each policy's generations (a GPU profile's take minutes a policy). ``dtype``: ``load_policy``'s (None:
    the device's); a profile's, to measure its policies in the dtype they were sampled and trained in. Each
    line names its policy as the plots do (``method_name``: "DPO + NLL" for ``dpo``). Returns
    ``(results, right)``: name -> its figures, and name -> its ``"per_problem"`` counts, for
    ``accuracy_differences`` (not in ``results``: metrics.json keeps the figures only)."""
    results, right = {}, {}
    for name, path in saved.items():
        policy, _ = generation.load_policy(path, quantization=None, dtype=dtype)  # all merged, unquantized, alike
        results[name] = r = greedy_and_sampled_accuracy(policy, tokenizer, problems, n_sampled=n_sampled,
                                                        batch_size=batch_size, max_new_tokens=max_new_tokens,
                                                        seed=seed, per_problem=True, progress=progress)
        right[name] = r.pop("per_problem")
        if log:
            log(format_accuracy(method_name(name), r))
        del policy  # one policy in memory at a time
    return results, right


def accuracy_differences(a: dict, b: dict) -> dict:
    """Policy A's greedy and sampled accuracy minus policy B's on the same problems, each with its 95% interval
    (``paired_difference``); ``a`` and ``b`` are the ``"per_problem"`` parts of ``greedy_and_sampled_accuracy``."""
    if a["n_sampled"] != b["n_sampled"]:  # each count is a share of its own n: one n for both would be wrong
        raise ValueError(f"accuracy_differences: the policies were sampled {a['n_sampled']} and {b['n_sampled']} "
                         "times per problem; compare runs with the same n_sampled")
    return {"accuracy": paired_difference(a["greedy_right"], b["greedy_right"]),
            "sampled_accuracy": paired_difference(a["sampled_right"], b["sampled_right"], n=a["n_sampled"])}


def paired_difference(right_a, right_b, n: int = 1, confidence: float = 0.95) -> dict:
    """Accuracy of policy A minus that of policy B on the same problems, with a paired-t confidence interval.

    ``right_a[i]``, ``right_b[i]``: how many of the ``n`` solutions each policy wrote for problem ``i`` are right
    (``greedy_and_sampled_accuracy(per_problem=True)``). Pairing by problem takes the problems' own difficulty out
    of the noise, which is what is left when two policies are compared on one test set: the interval is that of
    the mean of the per-problem differences ``d_i = (right_a[i] − right_b[i]) / n`` (Student's t,
    ``scipy.stats.ttest_rel``). Returns ``{"difference", "low", "high"}`` as fractions (0.03 = 3 points)."""
    positive_int(n, "n", "paired_difference")  # n = 0 or NaN would make every share NaN, past the range check
    # a NaN confidence gave a NaN interval, and any was ignored when the differences have no spread
    if not 0 < finite_number(confidence, "confidence", "paired_difference") < 1:
        raise ValueError(f"paired_difference: confidence must lie strictly between 0 and 1, got {confidence!r}")
    for name, x in (("right_a", right_a), ("right_b", right_b)):
        if np.asarray(x).dtype.kind in "US":  # "1" was read as the number 1
            raise ValueError(f"paired_difference: {name} must hold numbers (counts of right solutions), got strs")
    a, b = (np.asarray(x, dtype=float) for x in (right_a, right_b))
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_difference: right_a and right_b must be flat lists of the same problems, got "
                         f"shapes {a.shape} and {b.shape}")
    # a NaN compares false with the range check below: it would pass. Shares are fine (best-of-N's picks, n = 1)
    for name, counts in (("right_a", a), ("right_b", b)):
        bad = np.flatnonzero(~np.isfinite(counts))
        if bad.size:
            raise ValueError(f"paired_difference: {name}[{bad[0]}] must be a finite count of right solutions, got "
                             f"{float(counts[bad[0]])}")
    a, b = a / n, b / n
    if len(a) < 2:
        raise ValueError(f"paired_difference: an interval needs at least 2 problems, got {len(a)}")
    if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) > 1:
        raise ValueError(f"paired_difference: counts must lie between 0 and n = {n}")
    d = a - b
    mean = float(d.mean())
    if np.ptp(d) == 0:  # every problem differs alike (often: not at all): no spread, the interval is the point
        return {"difference": mean, "low": mean, "high": mean}
    ci = stats.ttest_rel(a, b).confidence_interval(confidence)
    return {"difference": mean, "low": float(ci.low), "high": float(ci.high)}


# ----------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class ToyTask:
    """The offline arithmetic world: generated problems, a gold checker for every step."""

    name: str = "toy"
    has_step_checker: bool = True
    label_source: str = "gold step checker (toy world)"
    length_name: str = "operations in the problem"  # what ``length`` counts

    @property
    def wrong_step_checker(self):
        """``has_wrong_step(prompt, solution)``, the gold checker's (``toyworld.has_wrong_step``): whether a solution
        slips in a step, as ``diagnostics.rejected_right_answers`` asks."""
        return toyworld.has_wrong_step

    def length(self, problem, verdict) -> int:
        """A solution's length, as ``answers_by_length`` groups it: its problem's number of operations (one step
        each), whatever the solution wrote."""
        return len(problem.ops)

    def splits(self, n_train: int, n_eval: int, seed: int = 0, tokenizer=None) -> dict:
        """``{"train", "validation", "test"}`` problems (disjoint by construction)."""
        return {split: toyworld.make_problems(n, split, seed=seed)
                for split, n in [("train", n_train), ("validation", n_eval), ("test", n_eval)]}

    def held_out(self, n: int, seed: int = 0, tokenizer=None) -> list:
        """The first ``n`` test problems: the very ones ``splits`` gives notebook 01 (same ``seed``)."""
        return toyworld.make_problems(n, "test", seed=seed)

    def rollout_rows(self, problems, n_samples: int = 1, n_rollouts: int = 8, solutions=None) -> list[int]:
        return [0] * len(problems)  # the checker labels every step: no rollouts

    def label(self, policy, tokenizer, problems, solutions, **rollouts) -> list[list[toyworld.Verdict]]:
        """The checker's verdict for every solution (the policy is not needed)."""
        labelling.check_solution_lists(problems, solutions, "ToyTask.label")
        return [[p.verdict(s) for s in sols] for p, sols in zip(problems, solutions)]


@dataclass(frozen=True)
class GSM8KTask:
    """GSM8K: chat-formatted questions, final answers checked, step labels from Monte-Carlo rollouts.

    ``source``: the Hub's ``openai/gsm8k`` (default), or a local copy (``gsm8k.load_problems``)."""

    source: str = gsm8k.HUB_NAME
    name: str = "gsm8k"
    has_step_checker: bool = False
    label_source: str = "Monte-Carlo estimates (notebook 01)"
    length_name: str = "steps in the solution"  # what ``length`` counts
    wrong_step_checker = None  # no gold checker: whether a right answer slipped on the way is unknown

    def length(self, problem, verdict) -> int:
        """A solution's length, as ``answers_by_length`` groups it: the steps it took (a GSM8K problem does not
        state how many it needs)."""
        return len(verdict.steps)

    def splits(self, n_train: int, n_eval: int, seed: int = 0, tokenizer=None) -> dict:
        if tokenizer is None:
            raise ValueError("GSM8K prompts are chat-formatted: pass the policy's tokenizer")
        return gsm8k.load_problems(tokenizer, n_train=n_train, n_eval=n_eval, seed=seed, name=self.source)

    def held_out(self, n: int, seed: int = 0, tokenizer=None) -> list:
        if tokenizer is None:
            raise ValueError("held_out_problems: GSM8K prompts are chat-formatted, pass the policy's tokenizer")
        return gsm8k.load_problems(tokenizer, n_train=0, n_eval=n, seed=seed, name=self.source)["test"]

    def rollout_rows(self, problems, n_samples: int = 1, n_rollouts: int = 8, solutions=None) -> list[int]:
        """Completions Monte-Carlo labelling samples per problem: ``n_rollouts`` after every step but the last
        of every solution with a wrong final answer (``gsm8k.mc_verdicts``). Before sampling
        (``solutions=None``), an upper-bound guess: every one of ``n_samples`` wrong, with as many steps as the
        reference solution (at least 2)."""
        if solutions is None:
            return [n_samples * max(p.reference_steps - 1, 1) * n_rollouts for p in problems]
        labelling.check_solution_lists(problems, solutions, "GSM8KTask.rollout_rows")  # zip cut the longer one
        return [n_rollouts * sum(max(len(extract_steps(s)) - 1, 0) for s in sols if s.strip() and not p.is_correct(s))
                for p, sols in zip(problems, solutions)]

    def label(self, policy, tokenizer, problems, solutions, *, n_rollouts: int = 8, batch_size: int = 16,
              max_new_tokens: int = 512, seed: int = 0, progress: bool = True) -> list[list[toyworld.Verdict]]:
        """A verdict for every solution, its step labels from Monte-Carlo rollouts (``gsm8k.mc_verdicts``)."""
        return gsm8k.mc_verdicts(policy, tokenizer, problems, solutions, n_rollouts=n_rollouts, seed=seed,
                                 batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress)


# A profile's ``task`` names one of these: each makes the task from the profile. Register your own task here
# (docs/own_task.md): ``TASKS["mine"] = lambda profile: MyTask()``
TASKS = {"toy": lambda profile: ToyTask(),
         "gsm8k": lambda profile: GSM8KTask(source=profile.dataset or gsm8k.HUB_NAME)}


def answers_by_length(task, problems, verdicts) -> dict:
    """What notebook 01 plots as final-answer accuracy by length (``viz.plot_accuracy_by_length``):
    ``{"lengths", "correct", "xlabel"}``, a length (``task.length``) and a right-answer flag per solution, in order,
    and the name of what the lengths count. ``verdicts``: one list per problem, as ``task.label`` returns them."""
    problems = list_of(problems, "answers_by_length: problems", "problems")  # a generator had no len()
    verdicts = list_of(verdicts, "answers_by_length: verdicts", "verdict lists (one per problem: task.label's)")
    if len(problems) != len(verdicts):  # zip would cut the longer one without a word
        raise ValueError(f"answers_by_length: {len(problems)} problems but {len(verdicts)} lists of verdicts; give "
                         "one list per problem (task.label's)")
    pairs = []
    for i, (p, vs) in enumerate(zip(problems, verdicts)):
        for j, v in enumerate(list_of(vs, f"answers_by_length: verdicts[{i}]", "verdicts")):
            if not isinstance(v, toyworld.Verdict):  # was an AttributeError on answer_correct, or in task.length
                raise ValueError(f"answers_by_length: problem {i}, solution {j}: expected a toyworld.Verdict "
                                 f"(task.label's), got {type(v).__name__}")
            pairs.append((p, v))
    return {"lengths": [task.length(p, v) for p, v in pairs], "correct": [v.answer_correct for _, v in pairs],
            "xlabel": task.length_name}


def get_task(profile):
    """The task of a profile (a ``profiles.Profile`` or its name): ``TASKS[profile.task]`` made from the profile
    (GSM8K's reads its ``dataset`` field)."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if not isinstance(getattr(p, "task", None), str):  # None was an AttributeError
        raise ValueError(f"get_task: profile must be a profile's name or a profiles.Profile, got {profile!r:.40}")
    if p.task not in TASKS:
        raise ValueError(f"profile {p.name!r}: unknown task {p.task!r}; choose one of {sorted(TASKS)}, or register "
                         "yours in tasks.TASKS (docs/own_task.md)")
    return TASKS[p.task](p)


# Validation and test keep at least this many problems under a budget: the reward models' evaluation (notebooks 02,
# 03, 05) needs right and wrong solutions in each split, and a few problems' samples are often all one or the other
EVAL_MIN_PROBLEMS = 8


def labelling_plan(task, problems: dict, *, n_samples: int, n_rollouts: int, tokens_per_rollout: int,
                   tokens_per_s: float | None, budget_minutes: float | None, solutions: dict | None = None,
                   batch_size: int = 1) -> budget.GenerationPlan:
    """How many problems of each split ``task.label`` can label within ``budget_minutes``, with its estimate
    (``budget.plan_generation``): before sampling (``solutions=None``: an upper-bound guess) or after. Splits other
    than train keep at least ``EVAL_MIN_PROBLEMS`` (or all they have), over the budget if need be; the plan says so."""
    rows = {split: task.rollout_rows(ps, n_samples=n_samples, n_rollouts=n_rollouts,
                                     solutions=None if solutions is None else solutions[split])
            for split, ps in problems.items()}
    plan = budget.plan_generation(rows, tokens_per_row=tokens_per_rollout, tokens_per_s=tokens_per_s,
                                  budget_minutes=budget_minutes, batch_size=batch_size,
                                  what=f"Monte-Carlo labelling ({n_rollouts} rollouts after each step of a wrong "
                                       "solution)")
    raised = {s: min(n, EVAL_MIN_PROBLEMS) for s, n in plan.full.items()
              if s != "train" and plan.keep[s] < min(n, EVAL_MIN_PROBLEMS)}
    if raised:
        plan.keep = {**plan.keep, **raised}
        raised_note = (f"{' and '.join(raised)} keep at least {EVAL_MIN_PROBLEMS} problems each, so that the reward "
                       f"models are evaluated on right and wrong solutions: {budget.at_most(plan.seconds())} in all")
        plan.note = "\n  ".join(filter(None, [plan.note, raised_note]))  # the budget's own note kept, above it
    return plan
