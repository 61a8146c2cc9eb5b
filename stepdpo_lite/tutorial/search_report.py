"""Reporting a search: what notebook 07 prints and records of ``search.beam_search``'s results and of its sampled
candidates, and what the task's step checker says of a search tree.

``candidate_costs`` and ``format_candidate_costs`` say what best-of-N's candidates cost
(``step_generation.sample_candidates``); ``chosen_accuracy`` is the final-answer accuracy of the solutions the
searches chose (``bestofn.accuracy`` takes solution texts). By the checker (the toy world's; None where the task has
none, as GSM8K): ``prefix_step_labels`` labels a solution or a prefix, ``tree_labels`` every step of a tree,
``pruning_report`` what the beam kept and pruned, and ``pick_example``, ``example_report`` and ``format_example``
notebook 07's beam explorer. ``format_comparison`` prints ``search.compare_at_budgets``' table and
``comparison_record`` makes the ``test_time`` section of ``metrics.json``. The tree's figure is
``viz.plot_beam_tree``.

A search result is read by its fields (``search.SearchResult``: ``nodes``, ``chosen``, ``solution``, ``score``,
``aggregation``, ``text(node_id)``), without importing ``search``: ``search.search_at_budgets`` logs these reports
(accuracy, pruning) as it runs, and ``search.compare_at_budgets`` refuses solution texts given for results with
``check_search_results``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from ..checks import list_of, positive_int
from ..rewards import sigmoid
from . import bestofn
from .display_names import method_name
from .step_generation import check_token_counts
from .task_problems import check_solution_lists


# ----------------------------------------------------------------------------- the candidates and the chosen solutions

def candidate_costs(problems, candidates, candidate_tokens) -> dict:
    """What the candidates of ``step_generation.sample_candidates`` cost and hold: ``{"solutions", "right" (the
    share with the right final answer), "tokens_per_solution" (the mean, which sets every budget), "min_tokens",
    "max_tokens"}``."""
    check_solution_lists(problems, candidates, "candidate_costs")
    check_token_counts(candidate_tokens, "candidate_costs", candidates)
    tokens = [t for row in candidate_tokens for t in row]
    if not tokens:
        raise ValueError("candidate_costs: no candidates")
    right = [bestofn.is_correct(p, s, "candidate_costs", f"problem {i}, candidate {j}")
             for i, (p, row) in enumerate(zip(problems, candidates)) for j, s in enumerate(row)]
    return {"solutions": len(tokens), "right": sum(right) / len(right),
            "tokens_per_solution": sum(tokens) / len(tokens), "min_tokens": min(tokens), "max_tokens": max(tokens)}


def format_candidate_costs(costs: dict, budgets: Sequence[int], seconds: float) -> str:
    """Notebook 07's two lines on its candidates (``candidate_costs``, sampled in ``seconds``) and the token budget
    per problem that each B makes of them: B x the mean tokens of one solution."""
    per_solution = costs["tokens_per_solution"]
    return (f"{costs['solutions']} solutions sampled in {seconds:.0f} s, {costs['right']:.1%} of them right; "
            f"{per_solution:.1f} generated tokens per solution (min {costs['min_tokens']}, "
            f"max {costs['max_tokens']})\n"
            "token budget per problem: " + ", ".join(f"B={b}: {b * per_solution:.0f}" for b in budgets))


def check_search_results(results: list, where: str, who: str) -> None:
    """Each of ``results`` a SearchResult (``search.beam_search``'s): a solution text in place of one was "'str' object
    has no attribute 'solution'"."""
    odd = next((k for k, r in enumerate(results) if not hasattr(r, "solution")), None)
    if odd is not None:
        raise ValueError(f"{where}[{odd}] is a {type(results[odd]).__name__}: {who} takes SearchResults "
                         "(beam_search's); for solution texts use bestofn.accuracy")


def chosen_accuracy(problems, results: Sequence) -> float:
    """Final-answer accuracy of the solutions the searches chose (one ``SearchResult`` per problem; an ``is_correct``
    that returns no bool is refused, named)."""
    problems = list_of(problems, "chosen_accuracy: problems", "problems")
    results = list_of(results, "chosen_accuracy: results", "search results (SearchResult)")
    if len(problems) != len(results) or not problems:
        raise ValueError(f"chosen_accuracy: {len(problems)} problems but {len(results)} search results "
                         "(need equal, > 0)")
    check_search_results(results, "chosen_accuracy: results", "search_report.chosen_accuracy")
    return sum(bestofn.is_correct(p, r.solution, "chosen_accuracy", f"problem {i}")
               for i, (p, r) in enumerate(zip(problems, results))) / len(problems)


# ----------------------------------------------------------------------------- the checker's view of a search tree

def prefix_step_labels(problem, text: str, finished: bool = True) -> list[bool] | None:
    """The checker's step labels of a solution or, with ``finished=False``, of a prefix: there the last step is
    not wrong for lacking an answer line yet. None where the task has no step checker (GSM8K)."""
    if not text.strip():
        return None
    verdict = problem.verdict(text) if hasattr(problem, "verdict") else None
    if verdict is None or finished or len(verdict.error_kinds) != len(verdict.step_labels):
        labels = problem.step_labels(text) if hasattr(problem, "step_labels") else None
        if labels is None or finished:
            return labels
        return labels[:-1] + [None]  # no verdict, or one without error kinds: the last step is unknown
    labels = list(verdict.step_labels)
    if verdict.error_kinds[-1] == "answer" and all(labels[:-1]):
        labels[-1] = True  # right so far; the answer line comes later
    return labels


def tree_labels(problem, result) -> dict[int, bool | None]:
    """Per node: whether its step is right in its prefix (``prefix_step_labels``; None without a checker). A beam
    the search cut (its problem's token budget, the step cap) is read as a prefix: its last step is whole, and not
    wrong for the answer line it was given no room to write."""
    out = {}
    for node in result.nodes:
        ended_itself = node.finished and node.ended not in ("token_budget", "step_cap")
        labels = prefix_step_labels(problem, result.text(node.id), ended_itself)
        out[node.id] = None if labels is None or len(labels) <= node.depth else labels[node.depth]
    return out


def pruning_report(problems, results: Sequence) -> dict | None:
    """What the pruning did, by the checker (``tree_labels``; None where the task has none).

    ``kept``/``pruned``: how many sampled steps the search kept or pruned, and the share of each that was right
    (``kept_right``, ``pruned_right``). ``rounds``: selection rounds that started from a right prefix (a subtree
    at one depth with a sampled step whose prefix so far is right); in ``no_right_step`` of them the policy sampled
    no right next step at all (a policy miss: no verifier can help), in ``right_step_pruned`` it did, but the
    beam kept none of the right ones (a verifier miss).
    """
    if len(problems) != len(results):  # a zip would report on the first ones only
        raise ValueError(f"pruning_report: {len(problems)} problems but {len(results)} search results")
    kept, pruned = [], []
    rounds = no_right = right_pruned = 0
    for problem, res in zip(problems, results):
        labels = tree_labels(problem, res)
        if all(v is None for v in labels.values()):
            continue
        for node in res.nodes:
            if labels.get(node.id) is not None:
                (kept if node.kept and node.pruned_at is None else pruned).append(labels[node.id])
        fresh: dict = {}
        for node in res.nodes:
            fresh.setdefault((node.group, node.depth), []).append(node)
        for (g, d), nodes in fresh.items():
            live = [n for n in nodes if n.parent is None or labels.get(n.parent)]
            if not live:
                continue
            rounds += 1
            if not any(labels.get(n.id) for n in live):
                no_right += 1
            elif not any(labels.get(n.id) for n in res.nodes if n.group == g and n.kept and n.depth <= d
                         and (n.depth == d or n.finished) and (n.pruned_at is None or n.pruned_at > d)):
                right_pruned += 1
    if not kept and not pruned:
        return None
    share = lambda xs: sum(xs) / len(xs) if xs else None  # None: JSON's undefined figure (metrics.json)
    return {"kept": len(kept), "kept_right": share(kept), "pruned": len(pruned), "pruned_right": share(pruned),
            "rounds": rounds, "no_right_step": no_right, "right_step_pruned": right_pruned}


def pick_example(problems, results: Sequence) -> int:
    """Index of a problem whose tree shows the search at work: the chosen answer right, steps pruned that the
    checker calls wrong (where there is a checker), a middling number of steps; the first such one."""
    def key(i):
        problem, res = problems[i], results[i]
        labels = tree_labels(problem, res)
        pruned_wrong = sum(n.pruned_at is not None and labels.get(n.id) is False for n in res.nodes)
        pruned = sum(n.pruned_at is not None for n in res.nodes)
        depth = max((n.depth for n in res.nodes), default=0) + 1
        return (problem.is_correct(res.solution), pruned_wrong > 0, pruned > 0, -abs(depth - 4), -i)

    if not results or len(problems) != len(results):  # a zip, or an index into the shorter, would be wrong
        raise ValueError(f"pick_example: {len(problems)} problems but {len(results)} search results (need equal, > 0)")
    return max(range(len(results)), key=key)


def example_report(problem, result, candidates: Sequence[str], candidate_tokens: Sequence[int],
                   budget: int) -> dict:
    """What notebook 07 prints and says of the problem in its beam explorer (recorded in its metrics): the
    ``problem`` number (1-based, as the picture's title gives it), the ``budget``, whether the chosen answer is
    ``right``, the ``steps`` sampled, the ``tokens`` the search generated against ``token_cap``, this problem's
    best-of-``budget`` cap (``budget`` x the mean tokens of its ``candidates``: the search finishes the round that
    crosses it), how many of those sampled whole solutions are right (``right_candidates``), the PRM's P of the
    chosen path's last step (``last_step_p``) and of the chosen beam's score (``score_p``; equal where that step
    sets it, as with ``min``; ``score_probability``: exp of a ``product`` score; None: nothing chosen, or an
    aggregation of one's own) and, by the checker (``tree_labels``; None without one): how many ``wrong_steps``
    were sampled, the highest P the PRM gave one (``wrong_step_p_max``; None: none), and whether the beam kept a
    right step at every depth (``right_kept_at_every_depth``)."""
    if not candidates or len(candidates) != len(candidate_tokens):
        raise ValueError(f"example_report: {len(candidates)} candidates and {len(candidate_tokens)} token counts "
                         "(need equal, > 0)")
    positive_int(budget, "budget", "example_report")  # True would be a best-of-True cap of one solution's tokens
    for j, count in enumerate(candidate_tokens):
        positive_int(count, f"candidate_tokens[{j}] (candidate {j})", "example_report")
    labels = tree_labels(problem, result)
    checked = any(v is not None for v in labels.values())
    wrong = [n.reward for n in result.nodes if labels.get(n.id) is False]
    depths = {n.depth for n in result.nodes}
    last = result.nodes[result.chosen].reward if result.chosen is not None else None
    return {"problem": result.problem_index + 1, "budget": budget, "right": problem.is_correct(result.solution),
            "steps": len(result.nodes), "tokens": result.tokens,
            "token_cap": budget * sum(candidate_tokens) / len(candidate_tokens),
            "right_candidates": sum(map(problem.is_correct, candidates)),
            "last_step_p": None if last is None else sigmoid(last),
            "score_p": None if result.chosen is None else score_probability(result.score, result.aggregation),
            "wrong_steps": len(wrong) if checked else None,
            "wrong_step_p_max": max((sigmoid(r) for r in wrong if r is not None), default=None) if checked else None,
            "right_kept_at_every_depth": all(any(n.kept and labels.get(n.id) for n in result.nodes if n.depth == d)
                                             for d in depths) if checked else None}


def score_probability(score: float, aggregation: str | Callable) -> float | None:
    """The probability a beam's score stands for: ``product``'s is a log-probability (log Π_k σ(r_k): exp), the other
    names' a log-odds (σ(min_k r_k) = min_k σ(r_k): σ), as ``bestofn.weighted_majority_vote`` weighs them; None for
    a function of one's own (its scale is unknown)."""
    if callable(aggregation):
        return None
    return math.exp(score) if aggregation == "product" else sigmoid(score)


def format_example(problem, result, candidates: Sequence[str], candidate_tokens: Sequence[int],
                   budget: int) -> str:
    """Notebook 07's text above its beam explorer (``example_report``): the problem and the solution the search
    chose, then whether it is right, what the search sampled and spent against this problem's best-of-``budget``
    cap, and how many of its sampled whole solutions are right."""
    report = example_report(problem, result, candidates, candidate_tokens, budget)
    return (f"{problem.prompt}{result.solution}\n\nright: {report['right']}; {report['steps']} steps sampled, "
            f"{report['tokens']} tokens (its best-of-{budget} budget: {report['token_cap']:.0f}); "
            f"right among its {len(candidates)} sampled solutions: {report['right_candidates']}")


# ----------------------------------------------------------------------------- notebook 07's table and record

def format_comparison(table: dict) -> str:
    """A text table: one row per method, by the name the plot beside it gives it ("beam search, PRM":
    ``display_names.METHOD_NAMES``), accuracy (in percent, as the text; the differences under it are in points) and
    tokens per problem at each budget; blank where the method did not run at that budget."""
    budgets = sorted(table, key=int)
    methods = list(dict.fromkeys(m for b in budgets for m in table[b]["tokens"]))
    names = {m: method_name(m) for m in methods}
    width = max(map(len, ["(token budget)", *names.values()])) + 1
    head = f"{'method':<{width}}" + "".join(f"{'B=' + b + ' acc':>11}{'tokens':>9}" for b in budgets)
    rows = [head]
    for m in methods:
        rows.append(f"{names[m]:<{width}}" + "".join(f"{table[b][m]:>11.1%}{table[b]['tokens'][m]:>9.0f}"
                                                    if m in table[b] and m in table[b]["tokens"] else f"{'':>20}"
                                                    for b in budgets))
    rows.append(f"{'(token budget)':<{width}}" + "".join(f"{'':>11}{table[b]['token_budget']:>9.0f}" for b in budgets))
    return "\n".join(rows)


def comparison_record(table: dict, problems, searches: dict, sampled: dict, example: dict, shapes: dict) -> dict:
    """What notebook 07 records under ``test_time`` in metrics.json: ``table`` (``search.compare_at_budgets``'
    accuracies, tokens and reads per budget) and beside it how many problems, the candidates' mean tokens per
    solution, the fewest and most one took (``tokens_per_solution_range``, ``[min, max]``), their share right
    (``sampled``: ``candidate_costs``'s), the checker's view of the beam search's pruning at each budget
    (``pruning_report`` of ``searches["beam_prm"]``; None without a step checker), the explorer's ``example``
    (``example_report``'s) and each budget's beam ``shapes`` (``search.beam_shape``'s, as lists: JSON has no
    tuples)."""
    pruning = {str(b): pruning_report(problems, results) for b, results in searches["beam_prm"].items()}
    return {**table, "n_problems": len(problems), "tokens_per_solution": sampled["tokens_per_solution"],
            "tokens_per_solution_range": [sampled["min_tokens"], sampled["max_tokens"]], "pruning": pruning,
            "candidate_accuracy": sampled["right"], "example": example,
            "shapes": {str(b): list(s) for b, s in shapes.items()}}
