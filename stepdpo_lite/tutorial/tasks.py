"""One task interface for the toy world and GSM8K: what makes a task's problems and labels its solutions.

A **task** (``ToyTask``, ``GSM8KTask``, one of your own: docs/own_task.md; ``get_task(profile)``, ``TASKS``) makes
the problems of a profile, labels sampled solutions (checker or rollouts: one verdict per solution, a blank one's with
no steps and a wrong answer), says how long a solution is (``answers_by_length``) and whether it slipped in a step
where a checker can tell (``wrong_step_checker``), and estimates what the labelling costs (``labelling_plan``).
``check_spelled`` refuses a text the policy's tokenizer cannot spell, before it is sampled or trained on.

Neighbours: ``task_problems`` (what every problem offers: ``prompt``, a grader, step labels, the ``Verdict``),
``policy_eval`` (sampling and grading a policy on the problems), ``paired_stats`` (intervals of a difference between
two policies), ``display_names`` (what each method and policy is called). Sampling, grading, best-of-N (``bestofn``)
and policy evaluation all go through these; nothing dispatches on problem types, and a model only ever receives
``problem.prompt`` strings (``generation.sample_solutions`` raises on any item that is not a ``str``, a problem
too: ``policy_eval.sample_solutions`` passes it ``prompts_of``; no object's repr is ever turned into a prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import list_of
from ..steps import extract_steps
from . import budget, gsm8k, toyworld
from .profiles import get_profile
from .task_problems import Verdict, check_solution_lists


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

    def label(self, policy, tokenizer, problems, solutions, **rollouts) -> list[list[Verdict]]:
        """The checker's verdict for every solution (the policy is not needed)."""
        check_solution_lists(problems, solutions, "ToyTask.label")
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
        check_solution_lists(problems, solutions, "GSM8KTask.rollout_rows")  # zip cut the longer one
        return [n_rollouts * sum(max(len(extract_steps(s)) - 1, 0) for s in sols if s.strip() and not p.is_correct(s))
                for p, sols in zip(problems, solutions)]

    def label(self, policy, tokenizer, problems, solutions, *, n_rollouts: int = 8, batch_size: int = 16,
              max_new_tokens: int = 512, seed: int = 0, progress: bool = True) -> list[list[Verdict]]:
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
            if not isinstance(v, Verdict):  # was an AttributeError on answer_correct, or in task.length
                raise ValueError(f"answers_by_length: problem {i}, solution {j}: expected a task_problems.Verdict "
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
    # the budget is notebook 01's MC_BUDGET_MINUTES (its only caller): a capped plan says how to raise it
    plan.to_label_more = "raise MC_BUDGET_MINUTES (float('inf'): no cap) to label more"
    raised = {s: min(n, EVAL_MIN_PROBLEMS) for s, n in plan.full.items()
              if s != "train" and plan.keep[s] < min(n, EVAL_MIN_PROBLEMS)}
    if raised:
        plan.keep = {**plan.keep, **raised}
        raised_note = (f"{' and '.join(raised)} keep at least {EVAL_MIN_PROBLEMS} problems each, so that the reward "
                       f"models are evaluated on right and wrong solutions: {budget.at_most(plan.seconds())} in all")
        plan.note = "\n  ".join(filter(None, [plan.note, raised_note]))  # the budget's own note kept, above it
    return plan
