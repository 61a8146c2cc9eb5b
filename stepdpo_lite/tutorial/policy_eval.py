"""A policy's accuracy on a task's problems: sampling their prompts, grading the solutions, recording what was measured.

``sample_solutions`` and ``greedy_solutions`` sample the problems' prompts (refusing one the tokenizer cannot spell:
``tasks.check_spelled``); ``evaluate_policy`` grades them (``task_problems.graded``) and, with a step checker, counts
the right steps and the kinds of first errors; ``greedy_and_sampled_accuracy`` is how notebook 04 and the on-policy
rounds measure a policy (greedy and at T = 1), ``evaluate_saved_policies`` measures saved ones in turn, and
``problems_digest`` says which problems a recorded accuracy was measured on.

Neighbours: ``task_problems`` (what a problem offers), ``tasks`` (the tasks that make the problems), ``paired_stats``
(the intervals of the difference between two policies), ``display_names`` (what each policy is called).
"""

from __future__ import annotations

import hashlib
from collections import Counter

from .. import generation
from .display_names import method_name
from .task_problems import check_problems, graded, prompts_of
from .tasks import check_spelled


def sample_solutions(model, tokenizer, problems, *, where: str = "sample_solutions: problems", **kw) -> list[list[str]]:
    """``generation.sample_solutions`` on the problems' prompts (``n``, ``temperature``, ``batch_size``, ...); a
    prompt the tokenizer cannot spell is a ValueError naming ``where``'s problem and characters
    (``tasks.check_spelled``)."""
    prompts = prompts_of(problems)
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
    right steps, the kinds of first errors and ``trace_error``, the share of right answers reached through a wrong
    step. ``where`` names the problems in errors (a caller's argument, e.g.
    ``"fine_tune_base: eval_problems"``): ``where[i]`` a problem, with ``solution j`` one of its samples."""
    if not (problems := check_problems(problems, where)):
        raise ValueError(f"{where}: no problems to evaluate on")
    sols = sample_solutions(model, tokenizer, problems, n=n, temperature=temperature, where=where, **kw)
    pairs = [(p, s) for p, ss in zip(problems, sols) for s in ss]
    graded_ok = [[graded(p, s, f"{where}[{i}], solution {j}") for j, s in enumerate(ss)]
                 for i, (p, ss) in enumerate(zip(problems, sols))]
    right = [sum(ok) for ok in graded_ok]
    out = {"accuracy": sum(right) / len(pairs), "n_solutions": len(pairs), "right_per_problem": right}
    verdicts = [p.verdict(s) for p, s in pairs]
    if verdicts and all(v is not None for v in verdicts):
        labels = [lab for v in verdicts for lab in v.step_labels]
        out["step_accuracy"] = sum(labels) / max(len(labels), 1)
        # "trace error" (Uesato et al. 2022, arXiv:2211.14275): of the right answers, the share reached through a
        # wrong step; None when no answer is right
        lucky = [v.first_error >= 0 for v, ok in zip(verdicts, (ok for row in graded_ok for ok in row)) if ok]
        out["trace_error"] = sum(lucky) / len(lucky) if lucky else None
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
    Returns ``accuracy`` and ``sampled_accuracy`` (with a checker ``step_accuracy`` and ``sampled_step_accuracy``,
    and ``trace_error`` and ``sampled_trace_error``: ``evaluate_policy``'s),
    ``n_test_problems``, ``test_problems_digest`` and ``in_4_bits``, whether the weights were 4-bit ones.
    ``per_problem``: also ``"per_problem"``, how many of each
    problem's solutions are right (``greedy_right``, ``sampled_right``, ``n_sampled``): what
    ``paired_stats.accuracy_differences`` compares two policies by. ``progress``: a bar over each of the two
    generations."""
    kw = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, seed=seed, progress=progress)
    with generation.evaluating(model):
        greedy = evaluate_policy(model, tokenizer, problems, n=1, temperature=0.0, **kw)
        sampled = evaluate_policy(model, tokenizer, problems, n=n_sampled, temperature=1.0, **kw)
    out = {"accuracy": greedy["accuracy"], "sampled_accuracy": sampled["accuracy"],
           "step_accuracy": greedy.get("step_accuracy"), "sampled_step_accuracy": sampled.get("step_accuracy"),
           "trace_error": greedy.get("trace_error"), "sampled_trace_error": sampled.get("trace_error"),
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
    ``paired_stats.accuracy_differences`` (not in ``results``: metrics.json keeps the figures only)."""
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
