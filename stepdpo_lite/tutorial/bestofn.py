"""Held-out evaluation shared by notebooks 05, 06 and 07: test problems, grading, reward-model selection scores,
best-of-N tables ("Let's Verify Step by Step" in miniature, Lightman et al. 2023, arXiv:2305.20050), greedy policy
accuracy, and the pickers that use best-of-N for inference (``select_best``, ``weighted_majority_vote``).

Works on any task of ``tasks.py``: the toy world (``toyworld.Problem``: every step checked) and GSM8K
(``gsm8k.GSM8KProblem``: final answer only); grading goes through the problems' own grader. A candidate a
reward model cannot read (blank, or longer than its context) gets the score ``FLOOR``, with a warning: it is
picked only when every candidate of its problem is unreadable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Hashable, Mapping, Sized

from .. import generation
from ..checks import finite_number, keywords_taken, list_of, positive_int, warn_user
from ..evaluation import best_of_n_accuracy, majority_vote_accuracy
from ..losses import aggregate_steps, check_aggregation
from ..models import adapter_base
from ..reward_ensembles import CombinedRewardModel
from ..rewards import InputTooLong, OutcomeRewardModel, ProcessRewardModel, sigmoid, step_delimiter_of
from ..steps import DEFAULT_DELIMITER, extract_steps
from . import display_names, paired_stats, policy_eval, task_problems, tasks

PRM_AGGREGATIONS = ("min", "product", "last")
FLOOR = -1e9


def held_out_problems(profile, n: int, seed: int = 0, tokenizer=None) -> list:
    """The first ``n`` held-out test problems of a profile's task (a profile or its name): the very ones
    notebook 01 drew (same ``seed``). GSM8K prompts are chat-formatted: pass the policy's ``tokenizer``."""
    return tasks.get_task(profile).held_out(n, seed=seed, tokenizer=tokenizer)


def _answer_number(value, method: str, allowed: str, who: str, where: str) -> float:
    """``value``, what a task's ``method`` returned, as ``checks.finite_number`` takes a number, else a ValueError
    naming ``who`` and ``where`` (the problem and candidate) and what docs/own_task.md allows: a str answer "29" never
    equals the gold 29.0, so every majority vote would count wrong silently, and a list answer was a TypeError inside
    a Counter. A verdict is ``task_problems.graded``'s."""
    try:
        return finite_number(value, method, who)
    except ValueError:  # its own words: a task's method broke the contract, no setting (finite_number's YAML hint)
        raise ValueError(f"{who}: {where}: the problem's {method} must return {allowed} (docs/own_task.md), got "
                         f"{type(value).__name__} {value!r:.40}") from None


def final_answer(problem, solution: str, who: str = "final_answer", where: str = "the solution"):
    """The stated final answer (a number), or None, as the problem's grader reads it (toy world: a vote for the
    gold answer is a correct solution; a number after a last step that does not parse is no vote)."""
    answer = problem.final_answer(solution)
    return None if answer is None else _answer_number(answer, "final_answer", "a finite number or None (no answer)",
                                                      who, where)


def gold_answer(problem, who: str = "gold_answer", where: str = "the problem") -> float:
    return _answer_number(problem.gold_answer(), "gold_answer", "a finite number", who, where)


def is_correct(problem, solution: str, who: str = "is_correct", where: str = "the solution") -> bool:
    return task_problems.graded(problem, solution, f"{who}: {where}")


def step_labels(problem, solution: str):
    """Gold step labels (toy world), or None where no step checker exists (GSM8K)."""
    return problem.step_labels(solution)


def grade(problems, solutions) -> dict:
    """``solutions[i][j]`` -> ``{"correct", "answers"}`` (same shape) and ``"gold"`` (one per problem)."""
    task_problems.check_solution_lists(problems, solutions, "grade")
    where = lambda i, j: f"problem {i}, candidate {j}"
    return {"correct": [[is_correct(p, s, "grade", where(i, j)) for j, s in enumerate(ss)]
                        for i, (p, ss) in enumerate(zip(problems, solutions))],
            "answers": [[final_answer(p, s, "grade", where(i, j)) for j, s in enumerate(ss)]
                        for i, (p, ss) in enumerate(zip(problems, solutions))],
            "gold": [gold_answer(p, "grade", f"problem {i}") for i, p in enumerate(problems)]}


def n_best_of_n_problems(n_test: int, requested: int | None = None) -> int:
    """How many of the ``n_test`` held-out problems notebook 06's best-of-N runs on (the first ones): ``requested``
    (at most ``n_test``), else a fifth of them, at least one. Sampling N candidates per problem costs N greedy
    answers, so at N = 16 a fifth of the problems already samples three times as many solutions as the greedy
    accuracy of all of them. Notebook 07 takes the same fifth where its profile sets no ``n_test_time_problems``
    (the tiny profile sets 50: ``search.n_test_time_problems``)."""
    positive_int(n_test, "n_test", "n_best_of_n_problems")
    positive_int(requested, "requested", "n_best_of_n_problems", none_ok=True)
    return min(requested or max(1, n_test // 5), n_test)


def sample_sizes(n_candidates: int) -> list[int]:
    """The N at which notebook 06 evaluates best-of-N: the powers of two below ``n_candidates``, and
    ``n_candidates`` itself (16 -> [1, 2, 4, 8, 16]; 12 -> [1, 2, 4, 8, 12])."""
    positive_int(n_candidates, "n_candidates", "sample_sizes")
    return sorted({2 ** k for k in range(n_candidates.bit_length())} | {n_candidates})


def candidate_summary(graded: dict) -> dict:
    """``grade``'s result -> ``{"candidates": how many, "right": the share of them with the right final answer}``:
    the policy's own sampled accuracy, where every best-of-N curve starts at N = 1."""
    flat = [c for row in graded["correct"] for c in row]
    if not flat:
        raise ValueError("candidate_summary: no graded candidates")
    return {"candidates": len(flat), "right": sum(flat) / len(flat)}


def pass_at_n(graded: dict, ns=(1, 2, 4, 8, 16), seed: int = 0, n_resamples: int = 100) -> dict[int, float]:
    """pass@N for each N of ``ns``: the share of (problem, draw) pairs whose N drawn candidates hold a right one,
    over the very draws ``best_of_n_table`` makes with the same ``seed`` (best-of-N with the checker itself as the
    verifier). No verifier can pick better: it is the ceiling of every curve."""
    correct = graded["correct"]
    return best_of_n_accuracy(correct, [[float(c) for c in row] for row in correct], ns, seed=seed,
                              n_resamples=n_resamples)


def candidates_record(graded: dict, pass_at: dict, n_candidates: int, temperature: float) -> dict:
    """What notebook 06 records of its sampled candidates under ``evaluation`` in metrics.json: how many problems
    (``n_best_of_n_problems``) and candidates each, the sampling ``temperature``, the share of them right
    (``candidate_accuracy``, ``candidate_summary``'s) and ``pass_at_n`` (``pass_at_n``'s, keyed by str(N) as JSON
    keys are). ``n_candidates`` and ``temperature``: those the candidates were sampled with (notebook 06 keeps them
    where it samples: its parameters may have been edited since); an ``n_candidates`` that is not every problem's
    number of graded candidates is refused."""
    sizes = sorted({len(row) for row in graded["correct"]})
    if sizes != [n_candidates]:
        raise ValueError(f"candidates_record: n_candidates is {n_candidates!r}, but the graded candidates number "
                         f"{sizes} per problem: record the N_CANDIDATES they were sampled with (notebook 06: run the "
                         "sampling cell again after editing its parameters)")
    return {"n_best_of_n_problems": len(graded["correct"]), "n_candidates": n_candidates, "temperature": temperature,
            "candidate_accuracy": candidate_summary(graded)["right"],
            "pass_at_n": {str(n): a for n, a in pass_at.items()}}


def with_pass_at_n(table: dict, pass_at: dict) -> dict:
    """``best_of_n_table``'s ``{str(N): {method: accuracy}}`` with a ``"pass@N (ceiling)"`` entry at each N from
    ``pass_at`` (``pass_at_n``'s, keyed by int N): notebook 06 draws it beside the methods' curves, the line none
    of them can cross."""
    return {n: {**row, "pass@N (ceiling)": pass_at[int(n)]} for n, row in table.items()}


def format_candidates(graded: dict, pass_at: dict) -> str:
    """Notebook 06's two lines on its sampled candidates: how many, the share right (``candidate_summary``) and
    pass@N (``pass_at_n``), both in percent: "pass@N: N=1 26.6%, N=2 43.3%, ..."."""
    summary = candidate_summary(graded)
    return (f"{summary['candidates']} candidates, {summary['right']:.1%} of them right\n"
            "pass@N: " + ", ".join(f"N={n} {a:.1%}" for n, a in pass_at.items()))


# ----------------------------------------------------------------------------- reward-model scores

def _readable(text) -> bool:
    return bool(text.strip()) if isinstance(text, str) else bool(text) and all(s.strip() for s in text)


def _unscored_message(score, n_texts: int, blank: int, too_long: int, what: str, all_unscored) -> str:
    """What ``score_readable`` warns of: how many ``what`` went unscored and why, the problems none of whose texts
    was scored, and how to raise the reward model's ``max_length`` (named when ``score`` is a model's method)."""
    model = getattr(score, "__self__", None)  # model.score_solutions: its model tells its max_length
    limit = getattr(model, "max_length", None)
    reasons = ([f"{blank} blank or with a blank step"] if blank else []) + (
        [f"{too_long} longer than the reward model's max_length{f' {limit}' if isinstance(limit, int) else ''}"]
        if too_long else [])
    message = (f"score_readable: {blank + too_long} of {n_texts} {what} unscored ({', '.join(reasons)}): each gets "
               f"the lowest score FLOOR ({FLOOR:g})")
    if all_unscored:
        message += (f"; none of the {what} of problem {', '.join(map(str, all_unscored[:10]))}"
                    f"{' ...' if len(all_unscored) > 10 else ''} was scored, so best-of-N there is a pick among "
                    "equal FLOORs, not the reward model's choice")
    if too_long:
        loader = type(model).__name__ if hasattr(model, "load") else "ProcessRewardModel"
        message += (f". To score longer texts, raise max_length within the model's context: "
                    f"{loader}.load(path, max_length=...)")
    return message


def score_readable(score, prompts, texts, what: str = "texts", problem_of=None, warn: bool = True,
                   progress: bool | None = False) -> list:
    """``score(prompts, texts)`` (texts or step lists), with None for the ones a reward model cannot read: blank,
    a blank step, or longer than its ``max_length`` (``InputTooLong``; any other error is raised). The callers
    floor them (``FLOOR``), so a ``UserWarning`` says how many ``what`` went unscored and why; with ``problem_of``
    (each text's problem index) it also names the problems none of whose texts was scored. ``warn=False``: the
    caller says it (``search.beam_search``, once for a whole search rather than once a round). ``progress``: the
    model's scoring bar, where its ``score_solutions`` takes the keyword (False: none, as for a search's many rounds;
    None: its own default)."""
    keep = [i for i, t in enumerate(texts) if _readable(t)]
    out, bar = [None] * len(texts), keywords_taken(score, progress=progress)  # a scorer of your own may lack it

    def scored(idx):  # a reward per text asked: a short list would leave the rest None (floored), silently
        rewards = list(score([prompts[i] for i in idx], [texts[i] for i in idx], **bar))
        if len(rewards) != len(idx):
            raise ValueError(f"score_readable: asked to score {len(idx)} texts (from text {idx[0]}), the model "
                             f"returned {len(rewards)} rewards")
        return rewards

    try:
        for i, r in zip(keep, scored(keep) if keep else []):
            out[i] = r
    except InputTooLong:  # one candidate too long: score them one by one
        for i in keep:
            try:
                out[i] = scored([i])[0]
            except InputTooLong:
                out[i] = None
    too_long = sum(out[i] is None for i in keep)
    if warn and (too_long or len(keep) < len(texts)):  # a pick among FLOORs is no reward model's choice: said aloud
        problem_of = [] if problem_of is None else list(problem_of)
        scored_problems = {q for q, r in zip(problem_of, out) if r is not None}
        all_unscored = [q for q in dict.fromkeys(problem_of) if q not in scored_problems]
        warn_user(_unscored_message(score, len(texts), len(texts) - len(keep), too_long, what, all_unscored))
    return out


def reward_scorer(model, who: str):
    """``model.score_solutions``, the one method the kit calls to score with a reward model (docs/method.md, "Your
    own reward model"); an object without it (a plain function, a model with another method) is a ValueError
    naming ``who`` and the method it needs, not an AttributeError."""
    score = getattr(model, "score_solutions", None)
    if not callable(score):
        hint = " (a plain function: make it the score_solutions method of an object)" if callable(model) else ""
        raise ValueError(f"{who}: the reward model needs a method score_solutions(prompts, step_lists) returning one "
                         f"list of step rewards per solution (a PRM) or one reward per solution (an ORM); got a "
                         f"{type(model).__name__} without one{hint}")
    return score


def score_candidates(model, problems, solutions) -> list[list]:
    """Per problem, per candidate: a PRM's step rewards (lists), an ORM's or combined model's reward, or None.
    ``problems``: a task's problems, or your own prompt texts (a str is its own prompt, scored as it is: end it as
    the model's training prompts ended, e.g. with the ``"\\n"`` of ``data.delimit_steps``).

    Each candidate text goes to ``model.score_solutions`` as its list of steps, split at the model's step delimiter
    (``step_delimiter_of``; the default where it states none), as ``search.beam_search`` and the trainer pass them
    (a candidate given as a step list is passed as it is). A model that returns a list for a candidate must return
    one reward per step: a list of another length is a ValueError naming the problem and candidate."""
    task_problems.check_solution_lists(problems, solutions, "score_candidates")
    score = reward_scorer(model, "score_candidates")
    delimiter = step_delimiter_of(model) or DEFAULT_DELIMITER
    steps = [[extract_steps(s, delimiter) if isinstance(s, str) else s for s in ss] for ss in solutions]
    prompts = [pr for pr, ss in zip(task_problems.prompts_of(problems, "score_candidates", texts_ok=True), solutions)
               for _ in ss]
    problem_of = [i for i, ss in enumerate(solutions) for _ in ss]
    flat = iter(score_readable(score, prompts, [s for ss in steps for s in ss], "candidates", problem_of,
                               progress=None))  # the model's own default: a PRM's bar once scoring takes 2 s
    rows = [[next(flat) for _ in ss] for ss in steps]
    for i, (row, ss) in enumerate(zip(rows, steps)):
        for j, (r, s) in enumerate(zip(row, ss)):
            if isinstance(r, Sized) and not isinstance(r, str) and len(r) != len(s):  # a PRM's, short or per character
                raise ValueError(f"score_candidates: problem {i}, candidate {j} has {len(s)} steps, but the reward "
                                 f"model returned {len(r)} step rewards: a PRM's score_solutions(prompts, step_lists) "
                                 "must return one reward per step")
    return rows


def aggregate_one(rewards: list | None, strategy: str | Callable, where: str, who: str,
                  step_where: Callable[[int], str]) -> float:
    """One candidate's score (or a search's prefix's: ``search.beam_search``) from a PRM's step rewards (a list):
    ``FLOOR`` where the PRM judged nothing (None: it could not read the text; ``[]``: no steps, which ``aggregate``
    warns of) or where the aggregate is not finite (float32 makes a reward of 1e39 inf: it outranked every
    candidate), else ``losses.aggregate_steps``' with ``strategy``. A reward that is not a finite number (NaN) is a
    ValueError naming ``step_where(k)``; ``who`` opens it, and ``where`` names the list in a function's error."""
    if not rewards:
        return FLOOR
    rewards = [finite_number(x, step_where(k), who) for k, x in enumerate(rewards)]
    value = aggregate_steps(rewards, strategy, where, who)
    return value if math.isfinite(value) else FLOOR


def aggregate(step_rewards: list[list], strategy: str | Callable) -> list[list[float]]:
    """A PRM's step rewards (``step_rewards[i][j]``: the list of problem i's candidate j) -> one score per
    candidate (``FLOOR`` for unreadable ones, None, and, with a warning naming them, for ones without steps, ``[]``:
    nothing the PRM judged, which must not outrank a candidate it scored); a reward that is not a finite number
    (NaN) is refused, naming its problem, candidate and step, and so is one number in place of a step list (an
    ORM's reward). ``strategy``: a name of ``losses.aggregate_rewards`` or a function of a list of step rewards
    (``check_aggregation``). Each candidate's score is ``aggregate_one``'s."""
    check_aggregation(strategy, "aggregate", "strategy")
    no_steps = []

    def score(i, j, r):
        where = f"step_rewards[{i}][{j}] (problem {i}, candidate {j})"
        if r is not None:
            r = list_of(r, f"aggregate: {where}",
                        "a PRM's step rewards (an ORM's one reward per candidate needs no aggregation)")
            if not r:  # nothing the PRM judged: ranked last, warned of (aggregate_reward_lists refuses it outright)
                no_steps.append(f"problem {i}, candidate {j}")
        return aggregate_one(r, strategy, where, "aggregate",
                             lambda k: f"step_rewards[{i}][{j}][{k}] (problem {i}, candidate {j}, step {k})")

    rows = list_of(step_rewards, "aggregate: step_rewards", "per-problem lists of step-reward lists")
    scores = [[score(i, j, r) for j, r in enumerate(list_of(row, f"aggregate: step_rewards[{i}] (problem {i})",
                                                            "step-reward lists (one per candidate)"))]
              for i, row in enumerate(rows)]
    if no_steps:
        warn_user(f"aggregate: {len(no_steps)} candidates have no step rewards ({', '.join(no_steps[:5])}"
                  f"{' ...' if len(no_steps) > 5 else ''}): each gets the lowest score FLOOR ({FLOOR:g})")
    return scores


def _floor(rows, who: str = "selection_scores", name: str = "rewards") -> list[list[float]]:
    """One reward per candidate, ``FLOOR`` for an unreadable one (None); a NaN is refused, named, and so is a flat
    list (one reward per problem: a float in place of a problem's list was a TypeError)."""
    rows = list_of(rows, f"{who}: {name}", "lists of rewards (one list per problem)")
    return [[FLOOR if r is None else finite_number(r, f"{name}[{i}][{j}] (problem {i}, candidate {j})", who)
             for j, r in enumerate(list_of(row, f"{who}: {name}[{i}] (problem {i})", "rewards (one per candidate)"))]
            for i, row in enumerate(rows)]


def _saved(folder: Path, name: str):
    """A saved file's content; an adapter config with its base resolved (each copy names it relative to itself)."""
    if name == "adapter_config.json":
        return {**json.loads((folder / name).read_text()), "base_model_name_or_path": adapter_base(folder)}
    return (folder / name).read_bytes()


def _same_model(a: Path, b: Path) -> bool:
    """Two saved reward models hold the same weights and config (file for file)."""
    names = [n for n in ("adapter_model.safetensors", "model.safetensors", "adapter_config.json", "config.json")
             if (a / n).exists() or (b / n).exists()]
    configs = sorted(p.name for p in a.glob("*_reward_config.json"))
    return bool(names) and all((a / n).exists() and (b / n).exists() and _saved(a, n) == _saved(b, n)
                               for n in names + configs)


def combined_scores(combined_dir, problems, solutions, prm_dir=None, prm_step_rewards=None, orm_dir=None,
                    orm_rewards=None) -> list[list[float]]:
    """Scores of a saved ``CombinedRewardModel``: ``w_p·aggregated PRM + w_o·ORM``.

    A part saved with the same weights as ``prm_dir`` / ``orm_dir`` reuses the rewards already computed
    (``prm_step_rewards`` / ``orm_rewards``) instead of scoring every candidate a second time.
    """
    task_problems.check_solution_lists(problems, solutions, "combined_scores")
    combined_dir = Path(combined_dir)
    config = CombinedRewardModel.read_config(combined_dir)  # checked as load checks it: weights, parts
    total = [[0.0] * len(ss) for ss in solutions]
    parts = (("process_reward_model", ProcessRewardModel, config["process_weight"], prm_dir, prm_step_rewards),
             ("outcome_reward_model", OutcomeRewardModel, config["outcome_weight"], orm_dir, orm_rewards))
    for sub, cls, weight, cached_dir, rewards in parts:
        part, is_prm = combined_dir / sub, cls is ProcessRewardModel
        if not part.exists():  # not saved with it
            continue
        capped = is_prm and config.get("max_steps")  # steps beyond max_steps are merged: not the PRM's own scores
        if rewards is None or cached_dir is None or capped or not _same_model(part, Path(cached_dir)):
            model = cls.load(part)
            texts = [[extract_steps(s, model.config.step_delimiter, config["max_steps"]) for s in ss]
                     for ss in solutions] if capped else solutions
            rewards = score_candidates(model, problems, texts)
        if [len(r) for r in rewards] != [len(ss) for ss in solutions]:  # cached for other candidates: zip would cut
            raise ValueError(f"combined_scores: the {'PRM' if is_prm else 'ORM'}'s rewards are for {len(rewards)} "
                             f"problems, {[len(r) for r in rewards][:5]} candidates each (first 5); the solutions "
                             f"for {len(solutions)}, {[len(ss) for ss in solutions][:5]}")
        if is_prm:
            rewards = aggregate(rewards, json.loads((part / cls.config_file).read_text()).get("aggregation", "min"))
        # CombinedRewardModel.combine's weighted sum, part by part: combine is a method of a loaded model, and this
        # reads only the saved config so as to reuse the parts' rewards without loading them. An unreadable
        # candidate's part counts FLOOR (the sum is clamped at FLOOR below); a part not saved adds nothing.
        total = [[t + weight * (FLOOR if r is None else r) for t, r in zip(trow, row)]
                 for trow, row in zip(total, rewards)]
    return [[max(t, FLOOR) for t in row] for row in total]


def selection_scores(prm_step_rewards=None, orm_rewards=None, combined=None) -> dict[str, list[list[float]]]:
    """``{"prm_min", "prm_product", "prm_last", "orm", "combined"}`` (those given) -> per-candidate scores."""
    out = {}
    if prm_step_rewards is not None:
        out.update({f"prm_{a}": aggregate(prm_step_rewards, a) for a in PRM_AGGREGATIONS})
    if orm_rewards is not None:
        out["orm"] = _floor(orm_rewards, name="orm_rewards")
    if combined is not None:
        out["combined"] = _floor(combined, name="combined")
    return out


# ----------------------------------------------------------------------------- picking for inference

def _candidate_scores(candidates, scores, who: str) -> tuple[list[list], list[list[float]]]:
    """``(candidates, scores)`` as lists, one finite score per candidate, checked against the candidates' shape (a zip
    would cut the longer short, silently); None (unreadable) becomes ``FLOOR``."""
    candidates = list_of(candidates, f"{who}: candidates", "lists of candidates (one list per problem)")
    scores = list_of(scores, f"{who}: scores", "lists of scores (one list per problem)")
    if len(scores) != len(candidates):
        raise ValueError(f"{who}: scores for {len(scores)} problems but candidates for {len(candidates)}")
    candidates = [list_of(cands, f"{who}: candidates[{i}] (problem {i})", "candidates")
                  for i, cands in enumerate(candidates)]
    scores = [list_of(row, f"{who}: scores[{i}] (problem {i})", "scores (one per candidate)")
              for i, row in enumerate(scores)]
    for i, (cands, row) in enumerate(zip(candidates, scores)):
        if not cands or len(row) != len(cands):
            raise ValueError(f"{who}: problem {i} has {len(cands)} candidates and {len(row)} scores (need equal, > 0)")
        for j, r in enumerate(row):
            if isinstance(r, (list, tuple)):
                raise ValueError(f"{who}: scores[{i}][{j}] (problem {i}, candidate {j}) is a list: a PRM's step "
                                 "rewards; aggregate them first (bestofn.aggregate(step_rewards, aggregation))")
    return candidates, _floor(scores, who, "scores")


def select_best(candidates, scores) -> list:
    """Best-of-N for inference: per problem, the candidate with the highest score (of tied ones the earliest, as
    ``evaluation.best_of_n_accuracy`` keeps with ``subsets="first"``).

    ``candidates[i]``: problem i's candidates (texts, or anything); ``scores[i][j]``: candidate j's score, higher is
    better: an ORM's reward or ``aggregate``'s of a PRM's step rewards (``score_candidates`` gives either); None
    (unreadable) is ``FLOOR``."""
    candidates, scores = _candidate_scores(candidates, scores, "select_best")
    return [cands[max(range(len(row)), key=row.__getitem__)] for cands, row in zip(candidates, scores)]


def weighted_majority_vote(problems, candidates, scores, scale: str = "log_odds",
                           answer_of: Callable | None = None) -> list[float | None]:
    """Reward-weighted majority vote for inference: per problem, the final answer (``final_answer``) whose
    candidates' weights sum highest; None where no candidate states one. ``answer_of``: your own reader, a
    candidate text -> its answer (hashable: a number, a str) or None; with it, ``problems`` may be anything, e.g.
    your prompt texts; without it they must be a task's problems (a ``final_answer`` method reads the answer).

    A candidate weighs the probability its score stands for, as search-and-learn's weighted best-of-N sums the
    PRM's aggregated step probabilities (Beeching, Tunstall and Rush 2024; Snell et al. 2024): with ``scale="log_odds"``
    σ(score), for an ORM's reward and ``aggregate``'s "min" and "last" (σ(min_k r_k) = min_k σ(r_k)); with
    ``scale="log_probability"`` exp(score), for ``aggregate``'s "product" (log Π_k σ(r_k), docs/method.md §3). A
    sum of raw log-odds would let a doubtful candidate count against its own answer. None (unreadable, ``FLOOR``)
    weighs 0; a candidate without an answer (None) does not vote, and a NaN answer is refused (it equals no answer,
    not even itself: each would count apart); ties go to the answer met first, as in
    ``evaluation.majority_vote_accuracy`` (so do all-zero weights, when no candidate was readable)."""
    task_problems.check_solution_lists(problems, candidates, "weighted_majority_vote")
    if scale not in ("log_odds", "log_probability"):
        raise ValueError(f"weighted_majority_vote: scale must be 'log_odds' or 'log_probability', got {scale!r}")
    candidates, scores = _candidate_scores(candidates, scores, "weighted_majority_vote")
    if answer_of is not None and not callable(answer_of):
        raise ValueError(f"weighted_majority_vote: answer_of must be a function (a candidate text -> its answer or "
                         f"None), got {answer_of!r:.60}")
    for i, problem in enumerate(problems if answer_of is None else []):
        if not callable(getattr(problem, "final_answer", None)):  # a prompt text: an AttributeError was all
            raise ValueError(f"weighted_majority_vote: problem {i} is a {type(problem).__name__} without a "
                             "final_answer method: pass answer_of= (a candidate text -> its answer or None), or a "
                             "task's problems (toyworld.Problem, gsm8k.GSM8KProblem)")
    votes = []
    for i, (problem, cands, row) in enumerate(zip(problems, candidates, scores)):
        totals = {}  # answer -> summed weight, in the order the answers are met (max keeps the first of ties)
        for j, (text, score) in enumerate(zip(cands, row)):
            if scale == "log_probability" and score > 0:  # log-odds passed as log-probabilities: exp would overflow
                raise ValueError(f"weighted_majority_vote: scores[{i}][{j}] (problem {i}, candidate {j}) is {score}, "
                                 "above 0: not a log-probability (log-odds? pass scale='log_odds')")
            answer = (final_answer(problem, text, "weighted_majority_vote", f"problem {i}, candidate {j}")
                      if answer_of is None else answer_of(text))
            if not isinstance(answer, Hashable):  # a list was a TypeError from the dict of totals
                raise ValueError(f"weighted_majority_vote: the answer of candidate {j} of problem {i} is a "
                                 f"{type(answer).__name__}: answers must be hashable (a number, a str) or None")
            if answer is not None and answer != answer:  # NaN != NaN: each NaN would count as an answer apart
                raise ValueError(f"weighted_majority_vote: the answer of candidate {j} of problem {i} is {answer!r}, "
                                 "which equals no answer, not even itself: return None for no answer (a task's "
                                 "final_answer of NaN is refused alike)")
            if answer is not None:
                weight = sigmoid(score) if scale == "log_odds" else math.exp(score)
                totals[answer] = totals.get(answer, 0.0) + weight
        votes.append(max(totals, key=totals.get) if totals else None)
    return votes


def best_of_n_table(graded: dict, scores: dict, ns=(1, 2, 4, 8, 16), seed: int = 0, n_resamples: int = 100,
                    per_problem: bool = False) -> dict[str, dict]:
    """``{str(N): {method: accuracy}}`` (the layout of ``metrics.json``) for every scorer in ``scores``,
    majority vote over final answers and a random pick; every method sees subsets drawn with ``seed``.
    ``per_problem=True``: each problem's share of right picks in place of an accuracy (``paired_differences``)."""
    # a KeyError ('answers') or an AttributeError (a list of scores has no .items) said neither argument's name
    if not isinstance(graded, Mapping) or (missing := [k for k in ("correct", "answers", "gold") if k not in graded]):
        raise ValueError("best_of_n_table: graded must be grade()'s dict, with 'correct', 'answers' and 'gold'; got "
                         + (f"one without {missing}" if isinstance(graded, Mapping) else type(graded).__name__))
    if not isinstance(scores, Mapping):
        raise ValueError(f"best_of_n_table: scores must be a dict of method name -> scores (one list a problem), got "
                         f"{type(scores).__name__}")
    kw = dict(seed=seed, n_resamples=n_resamples, per_problem=per_problem)
    by_method = {}
    for m, s in scores.items():  # best_of_n_accuracy's message names no method: whose scores did not fit?
        try:
            by_method[m] = best_of_n_accuracy(graded["correct"], s, ns, **kw)
        except ValueError as err:
            raise ValueError(f"best_of_n_table: scores[{m!r}]: {err}") from None
    by_method["majority"] = majority_vote_accuracy(graded["answers"], graded["gold"], ns, **kw)
    by_method["random"] = best_of_n_accuracy(graded["correct"], None, ns, **kw)
    return {str(n): {m: acc[n] if per_problem else float(acc[n]) for m, acc in by_method.items()} for n in ns}


def mean_accuracies(per_problem: dict) -> dict:
    """A per-problem table (``best_of_n_table`` or ``search.compare_at_budgets`` with ``per_problem=True``) as the
    accuracy table: each list of per-problem rates becomes its mean; other entries (tokens, budgets) stay as they
    are. One resampling then gives both the accuracies and their ``paired_differences``."""
    for n, row in per_problem.items():  # an empty list was a ZeroDivisionError
        empty = next((k for k, v in row.items() if isinstance(v, list) and not v), None)
        if empty is not None:
            raise ValueError(f"mean_accuracies: {empty!r} at N={n} has no per-problem rates (an empty list)")
    return {n: {k: sum(v) / len(v) if isinstance(v, list) else v for k, v in row.items()}
            for n, row in per_problem.items()}


def paired_differences(per_problem: dict, pairs) -> dict:
    """Method A's accuracy minus method B's, with its 95% interval paired over the same problems
    (``paired_stats.paired_difference``), for every N and every pair ``(A, B)`` of ``pairs`` that both ran at that N.

    ``per_problem``: ``{str(N): {method: [share of right answers per problem]}}``, from
    ``best_of_n_table(per_problem=True)`` or ``search.compare_at_budgets(per_problem=True)``. Returns
    ``{str(N): {A: {B: {"difference", "low", "high"}}}}`` (fractions: 0.03 is 3 points)."""
    pairs = list(pairs)
    ran = {m for row in per_problem.values() for m, v in row.items() if isinstance(v, list)}
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"paired_differences: each pair must be (A, B), got {pair!r}")
        unknown = [m for m in pair if m not in ran]
        if unknown:  # a method left out of this run, or a typo: said aloud, not an empty row
            warn_user(f"paired_differences: no method {unknown[0]!r} in the results (they hold {sorted(ran)}): "
                      f"the pair {tuple(pair)} is left out")
    out = {}
    for n, row in per_problem.items():
        for a, b in pairs:
            if isinstance(row.get(a), list) and isinstance(row.get(b), list):
                out.setdefault(n, {}).setdefault(a, {})[b] = paired_stats.paired_difference(row[a], row[b])
    return out


def format_differences(diffs: dict, label: str = "N") -> str:
    """A text table of ``paired_differences``: one row per pair, named as the plot beside it names it ("PRM, min −
    ORM": ``display_names.METHOD_NAMES``, a key of one's own as it is), one column per N (``label`` names it: "B" for
    budgets), each cell the difference in points ± the half-width of its 95% interval (a paired t-interval is
    symmetric about the difference)."""
    ns = sorted(diffs, key=int)
    pairs = list(dict.fromkeys((a, b) for n in ns for a, row in diffs[n].items() for b in row))
    names = {(a, b): f"{display_names.method_name(a)} − {display_names.method_name(b)}" for a, b in pairs}
    width = max(map(len, ["A minus B, points", *names.values()])) + 1
    rows = [f"{'A minus B, points':<{width}}" + "".join(f"{label + '=' + n:>14}" for n in ns)]
    for a, b in pairs:
        cells = [diffs[n].get(a, {}).get(b) for n in ns]
        rows.append(f"{names[a, b]:<{width}}" + "".join(
            f"{'':>14}" if d is None else f"{100 * d['difference']:>+8.1f} ±{50 * (d['high'] - d['low']):>4.1f}"
            for d in cells))
    return "\n".join(rows)


def format_table(table: dict[str, dict[str, float]]) -> str:
    """A text table: one row per method, by the name the plot beside it gives it ("PRM, min":
    ``display_names.METHOD_NAMES``, a method of one's own by its key), one column per N, each cell an accuracy in
    percent (as the plot; the differences under it are in points); blank where the method did not run at that N."""
    ns = sorted(table, key=int)
    methods = list(dict.fromkeys(m for n in ns for m in table[n]))
    names = {m: display_names.method_name(m) for m in methods}
    width = max(map(len, ["method", *names.values()])) + 1  # one's own method's longer name keeps the columns in line
    rows = [f"{'method':<{width}}" + "".join(f"{'N=' + n:>8}" for n in ns)]
    rows += [f"{names[m]:<{width}}" + "".join(f"{table[n][m]:>8.1%}" if m in table[n] else f"{'':>8}" for n in ns)
             for m in methods]
    return "\n".join(rows)


# ----------------------------------------------------------------------------- policies


def accuracy(problems, solutions: list[str]) -> float:
    """Final-answer accuracy of one solution per problem."""
    problems = list_of(problems, "accuracy: problems", "problems")
    solutions = list_of(solutions, "accuracy: solutions", "solution texts (one per problem)")
    if not problems or len(problems) != len(solutions):
        raise ValueError(f"accuracy: {len(problems)} problems but {len(solutions)} solutions (need equal, > 0)")
    for i, s in enumerate(solutions):
        if not isinstance(s, str):  # a SearchResult failed in step_spans, a function the user never called
            raise ValueError(f"accuracy: solutions[{i}] (problem {i}) is a {type(s).__name__}, not a solution text: "
                             "bestofn.accuracy takes solution texts (one str per problem); "
                             "search_report.chosen_accuracy takes search results (SearchResult)")
    return sum(is_correct(p, s, "accuracy", f"problem {i}") for i, (p, s) in enumerate(zip(problems, solutions))) \
        / len(problems)


def recorded_greedy_accuracy(measured: dict, name: str, digest: str) -> float | None:
    """Notebook 04's greedy accuracy of policy ``name`` (``measured`` is ``metrics["policy"]``) when it holds for
    these very problems and unquantized weights, else None. Reused only then: the same count of problems drawn with
    another seed is other problems (``digest``, ``policy_eval.problems_digest``, tells), and a 4-bit profile's rounds
    measure their policies in 4 bits, while notebook 06 loads them unquantized."""
    if not isinstance(measured, dict):
        raise ValueError(f"recorded_greedy_accuracy: measured must be a dict (metrics['policy']), "
                         f"got {type(measured).__name__}")
    entry = measured.get(name, {})
    if isinstance(entry, dict) and "accuracy" in entry and entry.get("test_problems_digest") == digest \
            and entry.get("in_4_bits") is False:
        return entry["accuracy"]
    return None


def greedy_policy_accuracies(policies: dict, problems, measured: dict, *, base=None, batch_size: int = 64,
                             max_new_tokens: int = 160, load=None, dtype=None, out=print) -> dict[str, float]:
    """Greedy final-answer accuracy of each policy on ``problems``, in the order of ``policies``: notebook 04's
    figure where it measured the same thing (``recorded_greedy_accuracy``), since generating every solution again
    costs minutes on a GPU profile; else measured here (``policy_eval.evaluate_policy``, one greedy solution a problem).

    ``policies``: name -> saved policy folder, or None for ``base``, the ``(model, tokenizer)`` already loaded.
    ``measured``: ``metrics["policy"]`` (``{}`` before notebook 04 ran). ``load``: path -> ``(model, tokenizer)``
    (default ``generation.load_policy``: unquantized, a LoRA adapter merged, in ``dtype``, None for the device's;
    a profile's is the one its policies were sampled and trained in, as notebook 04 measured them). One line per
    policy goes to ``out`` as it is done, so a long run shows its progress, by the name notebook 04 gives it
    (``display_names.POLICY_NAMES``: "DPO + NLL", not ``dpo``; a policy of one's own by its key; ``policies``' keys stay
    the returned ones)."""
    if not isinstance(policies, dict) or not policies:
        raise ValueError(f"greedy_policy_accuracies: policies must be a non-empty dict of name -> folder (None for "
                         f"the base), got {policies!r:.60}")
    if base is None and any(path is None for path in policies.values()):
        raise ValueError("greedy_policy_accuracies: a policy without a folder (None) is the base: pass base=(model, "
                         "tokenizer)")
    problems = list_of(problems, "greedy_policy_accuracies: problems", "problems")
    if not problems:
        raise ValueError("greedy_policy_accuracies: problems is empty")
    load = load or (lambda path: generation.load_policy(path, quantization=None, dtype=dtype))  # as 04 measured them
    digest = policy_eval.problems_digest(problems)
    accuracies = {}
    for name, path in policies.items():
        reused = recorded_greedy_accuracy(measured, name, digest)
        if reused is not None:
            accuracies[name] = reused
            out(f"{display_names.method_name(name):20s} greedy accuracy {reused:.1%} on {len(problems)} test problems "
                "(from 04)")
            continue
        model, tokenizer = base if path is None else load(path)
        accuracies[name] = policy_eval.evaluate_policy(model, tokenizer, problems, n=1, temperature=0.0,
                                                       where="greedy_policy_accuracies: problems",
                                                       batch_size=batch_size, max_new_tokens=max_new_tokens,
                                                       progress=False)["accuracy"]
        out(f"{display_names.method_name(name):20s} greedy accuracy {accuracies[name]:.1%} on {len(problems)} test "
            "problems")
        del model, tokenizer  # before the next one loads: two policies at once may not fit on a GPU
    return accuracies

