"""Test-time compute with a process reward model: step-level beam search and DVTS against best-of-N and
majority vote, at the same number of generated tokens.

Best-of-N samples N whole solutions and lets a verifier pick one; the verifier never changes what is sampled.
A PRM can do more: it scores every prefix, so it can steer the search step by step (Snell et al. 2024,
arXiv:2408.03314; Hugging Face's search-and-learn recipes)::

    depth 0: sample B first steps                      -> score the B prefixes, keep the best K
    depth d: extend each kept beam by M sampled steps  -> score the K·M prefixes, keep the best K
    ...      until every kept beam has finished (EOS, an answer line, the step cap or the token cap)

With ``K·M = B`` (K beams, ``n_beams``; M expansions) every depth samples B steps, so the search generates about
as many tokens as B whole solutions: a fair comparison with best-of-B. **DVTS** (diverse verifier tree search:
Beeching, Tunstall and Rush 2024, "Scaling test-time compute with open models", a Hugging Face blog post) splits the
same budget into ``B / M`` independent subtrees, each keeping one beam: less pruning by an imperfect verifier, more
diversity.

- A step ends where the policy writes the step delimiter (``step_generation.generate``, which stops each row
  there and counts its tokens exactly): the delimiter opens the next step, so the steps concatenate to a normal
  solution and ``steps.extract_steps(solution) == steps``. An answer line ("Answer: x") belongs to the last step.
- The PRM scores a prefix in one forward pass (``ProcessRewardModel.score_solutions`` on step lists) and
  ``losses.aggregate_steps`` turns its step rewards into the beam's score (``bestofn.aggregate_one``, as best-of-N
  scores a candidate; the PRM's ``config.aggregation`` unless given: ``min``, ``last``, ``product``, ...).
- A search's cost is its generated tokens (``SearchResult.tokens``, every row's ``Generation.n_tokens``);
  verifier forward passes are not generated tokens: they are counted apart (``SearchResult.n_scored``: prefixes
  the PRM read).

Nothing here is specific to the toy world: problems only need ``.prompt`` (a ``str``, chat-formatted on
GSM8K), ``.is_correct`` and ``.final_answer`` (``task_problems.py``); the policy is any causal LM with its tokenizer,
or any ``sampler(texts, n, max_new_tokens, leads) -> list[list[Generation]]``; the PRM anything with
``score_solutions(prompts, step_lists)``.

Neighbours: ``step_generation.py`` samples the steps and best-of-N's whole candidates with exact token counts;
``search_report.py`` is the checker's view of a search (which steps were right, what the pruning did), its
accuracy (``chosen_accuracy``) and notebook 07's printed table and ``metrics.json`` record; ``bestofn.py``
scores and draws best-of-N's candidates; ``viz.plot_beam_tree`` draws a search tree.
"""

from __future__ import annotations

import numbers
import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence, Sized

import torch

from ..checks import finite_number, flag, list_of, positive_int, warn_user
from ..losses import check_aggregation
from ..rewards import step_delimiter_of
from ..steps import DEFAULT_DELIMITER
from . import bestofn
from .display_names import method_name
from .profiles import get_profile
from .search_report import check_search_results, chosen_accuracy, pruning_report
from .step_generation import Generation, check_token_counts, generate
from .task_problems import prompts_of

FLOOR = bestofn.FLOOR  # the score of a prefix the PRM cannot read (blank, longer than its context)
ANSWER_PATTERN = r"(?m)^[ \t]*(?:Answer:|####)"  # a line that states the final answer ends a solution


# ----------------------------------------------------------------------------- the search tree

@dataclass
class Node:
    """One sampled step: its text (as it joins the solution), the tokens generated for it, why it stopped,
    the PRM's rewards of the whole prefix (one per step; None when unreadable) and the prefix's score."""

    id: int
    parent: int | None  # None: a first step (its parent is the prompt)
    depth: int  # 0-based step index
    step: str
    n_tokens: int
    stop: str  # "eos", "delimiter", "length" (the solution's tokens left); a beam can also end at the step or token cap
    finished: bool
    rewards: list[float] | None = None
    score: float = FLOOR
    kept: bool = False  # selected into the beam at its depth
    # depth of the round that left it out of the beam (a new step not taken, or a finished one held, then pushed
    # out); None: taken into the beam and never pushed out (extended, or held to the end)
    pruned_at: int | None = None
    group: int = 0  # DVTS subtree
    pending: str = ""  # what opens the next step: the delimiter (and any text decoded after it)
    ended: str = ""  # why the beam ended: "eos", "answer", "length", "step_cap", "token_budget"

    @property
    def reward(self) -> float | None:
        """The PRM's reward of this step itself (the last of the prefix's rewards)."""
        return self.rewards[-1] if self.rewards else None


@dataclass
class SearchResult:
    """The search of one problem: every sampled step (``nodes``), the chosen solution and what it cost."""

    problem_index: int
    nodes: list[Node]
    chosen: int | None  # id of the chosen final node
    tokens: int = 0  # new tokens generated for this problem, all generate calls together
    n_generations: int = 0  # rows generated (steps sampled)
    n_scored: int = 0  # prefixes the PRM scored
    n_beams: int = 1
    expansions: int = 1
    n_subtrees: int = 1
    aggregation: str | Callable = "min"  # what made the beams' scores of their step rewards (``beam_search``'s)

    def path(self, node_id: int | None = None) -> list[Node]:
        """The nodes from the first step to ``node_id`` (default: the chosen one)."""
        node_id = self.chosen if node_id is None else node_id
        out = []
        while node_id is not None:
            node = self.nodes[node_id]
            out.append(node)
            node_id = node.parent
        return out[::-1]

    def steps(self, node_id: int | None = None) -> list[str]:
        return [n.step for n in self.path(node_id)]

    def text(self, node_id: int | None = None) -> str:
        """The solution text of a path: its steps joined (``extract_steps`` gives the steps back)."""
        return "".join(self.steps(node_id))

    @property
    def solution(self) -> str:
        return "" if self.chosen is None else self.text()

    @property
    def score(self) -> float:
        return FLOOR if self.chosen is None else self.nodes[self.chosen].score

    @property
    def answered(self) -> bool:
        """Whether the chosen solution ended by itself (EOS or an answer line); False where the search had to choose
        a beam it cut (its token budget, the step cap, the solution's token cap): a prefix with no answer yet."""
        return self.chosen is not None and self.nodes[self.chosen].ended in ("eos", "answer")


def _score_prefixes(prm, prompts: list[str], step_lists: list[list[str]],
                    problem_ids: list[int]) -> list[list[float] | None]:
    """The PRM's step rewards of each prefix; None for one it cannot read (a blank step, too long). Each must be one
    reward per step of its prefix: an ORM's one float per text, or a list short by one, ranked the beams by another
    step's reward (``Node.reward`` is the last one)."""
    out = []  # unread prefixes are said once for the whole search (_warn_of_degenerate_searches), not every round
    score = bestofn.reward_scorer(prm, "beam_search")
    for k, rewards in enumerate(bestofn.score_readable(score, prompts, step_lists, warn=False)):
        if rewards is not None:
            count = len(rewards) if isinstance(rewards, Sized) and not isinstance(rewards, str) else None
            if count != len(step_lists[k]):
                got = f"{count} rewards" if count is not None else f"one {type(rewards).__name__}"
                raise ValueError(f"beam_search: problem {problem_ids[k]}, a prefix of {len(step_lists[k])} steps: the "
                                 f"{type(prm).__name__}'s score_solutions returned {got}; beam search needs one reward "
                                 "per step of each step list, as a ProcessRewardModel's (an outcome, combined or "
                                 "ensemble reward model gives one reward per solution: it cannot steer the search)")
            rewards = list(rewards)
        out.append(rewards)
    return out


def hf_sampler(model, tokenizer, *, temperature: float = 1.0, batch_size: int = 64, delimiter: str = DEFAULT_DELIMITER):
    """The default step sampler of ``beam_search``: ``generate`` on a causal LM, stopping at ``delimiter``."""

    def sample(texts, n, max_new_tokens, leads):
        return generate(model, tokenizer, texts, n, delimiter=delimiter, leads=leads, temperature=temperature,
                        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=None)

    return sample


def beam_search(policy, tokenizer, prm, problems, *, n_beams: int = 4, expansions: int = 4, n_subtrees: int = 1,
                aggregation: str | Callable | None = None, max_steps: int = 12, max_new_tokens: int = 160,
                temperature: float = 1.0, batch_size: int = 64, seed: int = 0,
                token_budget: int | Sequence[int] | None = None, delimiter: str | None = None,
                answer_pattern: str | None = ANSWER_PATTERN, unique: bool = False,
                sampler: Callable | None = None) -> list[SearchResult]:
    """PRM-guided step-level beam search on every problem (batched across problems); DVTS with ``n_subtrees``.

    Per problem and subtree: the first step is sampled ``n_beams · expansions`` times; then each of the
    ``n_beams`` best prefixes is extended by ``expansions`` sampled steps, and of the new prefixes and the
    finished beams still held, the ``n_beams`` with the best aggregated PRM score are kept (ties: the earlier
    one). A beam finishes at EOS, at an answer line (``answer_pattern``), when its solution reaches
    ``max_new_tokens`` tokens (a step may take what its path has left), at ``max_steps`` steps, or when its
    problem has generated ``token_budget`` tokens. The chosen solution is the best-scored beam that ended by itself
    (EOS or answer) in any subtree, held or not (one not taken into the beam, or pushed out of it later); the best
    cut one held only where none did (``SearchResult.answered`` is then False). A prefix sampled twice is scored
    once; with ``unique`` it also takes only one place in the beam (more diversity; off by default: a prefix the
    policy samples often and the PRM likes then gets more of the next samples, which did better on the toy world's
    validation split). A warning says when the search degenerates: a ``delimiter`` other than the PRM's, greedy
    sampling, no step ending at the delimiter, a problem the PRM read nothing of, a budget below one round.

    ``policy``/``tokenizer``: a causal LM (or pass ``sampler(texts, n, max_new_tokens, leads)`` returning
    ``Generation`` lists, e.g. a stub in tests). ``prm``: anything with ``score_solutions(prompts, step_lists)``
    returning one reward per step of each list (docs/method.md, "Your own reward model"; its ``config.aggregation``
    and ``config.step_delimiter`` are the defaults). ``aggregation``: a name of ``losses.aggregate_rewards`` or a
    function of a prefix's step rewards (a list of floats) -> its score, checked before anything is generated. DVTS
    at budget B with ``expansions`` M: ``n_beams=1, n_subtrees=B // M``.
    """
    for name, value in (("n_beams", n_beams), ("expansions", expansions), ("n_subtrees", n_subtrees),
                        ("max_steps", max_steps), ("max_new_tokens", max_new_tokens)):
        positive_int(value, name, "beam_search")
    positive_int(seed, "seed", "beam_search", minimum=0)  # True seeded 1, 1.5 was torch's TypeError
    bestofn.reward_scorer(prm, "beam_search")  # before a round is generated: no AttributeError after it
    given = aggregation is not None
    aggregation = aggregation if given else getattr(getattr(prm, "config", None), "aggregation", None) or "min"
    check_aggregation(aggregation, "beam_search",
                              "aggregation" if given else f"the {type(prm).__name__}'s config.aggregation")
    own = step_delimiter_of(prm)
    if delimiter and own and delimiter != own:  # its steps are then not those the PRM learned to score: no error
        warn_user(f"beam_search: delimiter {delimiter!r} is not the PRM's own step delimiter {own!r}: the search "
                  "cuts steps where the PRM was not trained to (an answer line can become a step of its own), so "
                  "its step rewards, and the beams it keeps, are unreliable; leave delimiter=None to use the PRM's")
    delimiter = delimiter or own or DEFAULT_DELIMITER
    if sampler is None and isinstance(temperature, numbers.Real) and temperature == 0 and n_beams * expansions > 1:
        warn_user(f"beam_search: temperature=0 samples greedily: every expansion of a beam is the same step, so "
                  f"each round spends {n_beams * expansions} generations on one path; use a temperature > 0")
    answer_re = re.compile(answer_pattern) if answer_pattern else None
    prompts = prompts_of(problems, "beam_search")
    if not prompts:  # returned [] quietly, where best_of_n_accuracy and search_at_budgets refuse no problems
        raise ValueError("beam_search: problems is empty: give one or more problems")
    one_budget = token_budget is None or isinstance(token_budget, numbers.Real)
    budgets = ([token_budget] * len(problems) if one_budget
               else list_of(token_budget, "beam_search: token_budget", "token budgets (one per problem)"))
    if len(budgets) != len(problems):
        raise ValueError(f"beam_search: {len(problems)} problems but {len(budgets)} token budgets")
    for i, b in enumerate(budgets):  # a bool, a NaN (never reached) or a budget <= 0 would cap silently, or never
        name = "token_budget" if one_budget else f"token_budget[{i}] (problem {i})"
        if b is not None and finite_number(b, name, "beam_search") <= 0:
            raise ValueError(f"beam_search: {name} must be > 0 or None, got {b!r}")
    if sampler is None:
        torch.manual_seed(seed)
        sampler = hf_sampler(policy, tokenizer, temperature=temperature, batch_size=batch_size, delimiter=delimiter)

    results = [SearchResult(i, [], None, n_beams=n_beams, expansions=expansions, n_subtrees=n_subtrees,
                            aggregation=aggregation) for i in range(len(problems))]
    # beams[i][g]: ids of the nodes held by subtree g of problem i (None: not started, the prompt alone)
    beams: list[list[list[int] | None]] = [[None] * n_subtrees for _ in problems]
    path_tokens: dict[tuple[int, int], int] = {}  # (problem, node id) -> tokens from the root to that node
    scored: dict[tuple, list[float] | None] = {}  # (problem, prefix steps) -> the PRM's step rewards

    def steps_of(res, node_id):
        return res.steps(node_id) if node_id is not None else []

    first_round: list[int] = []  # tokens each problem spent on its first steps
    for depth in range(max_steps):
        # 1. Which beams grow: every unfinished one (the prompt alone at depth 0), while the problem has budget.
        work = []  # (problem, group, parent id or None, copies)
        for i, res in enumerate(results):
            over = budgets[i] is not None and res.tokens >= budgets[i]
            for g, held in enumerate(beams[i]):
                if held is None:
                    work.append((i, g, None, n_beams * expansions))
                    continue
                for nid in held:
                    node = res.nodes[nid]
                    if node.finished:
                        continue
                    if over:
                        node.finished, node.ended = True, "token_budget"
                    else:
                        work.append((i, g, nid, expansions))
        if not work:
            break
        # 2. Sample the next steps (one call for every problem), with the solution's token cap left.
        texts, leads, caps, copies = [], [], [], []
        for i, g, nid, m in work:
            res = results[i]
            lead = res.nodes[nid].pending if nid is not None else ""
            texts.append(prompts[i] + "".join(steps_of(res, nid)) + lead)
            leads.append(lead)
            caps.append(max(1, max_new_tokens - (path_tokens.get((i, nid), 0) if nid is not None else 0)))
            copies.append(m)
        # Rows of one parent are sampled as copies of its text; texts with more copies (the roots) go alone.
        gens: list[list[Generation]] = [None] * len(work)
        for m in sorted(set(copies)):
            idx = [k for k, c in enumerate(copies) if c == m]
            for k, row in zip(idx, sampler([texts[k] for k in idx], m, [caps[k] for k in idx],
                                           [leads[k] for k in idx])):
                gens[k] = row
        # 3. New nodes.
        new_ids = []
        for (i, g, nid, _), lead, cap, row in zip(work, leads, caps, gens):
            res = results[i]
            for gen in row:
                step = lead + gen.text
                tokens = (path_tokens.get((i, nid), 0) if nid is not None else 0) + gen.n_tokens
                answered = bool(answer_re and answer_re.search(step))
                node = Node(len(res.nodes), nid, depth, step, gen.n_tokens, gen.stop, False, group=g,
                            pending=delimiter + gen.rest if gen.stop == "delimiter" else "")
                if gen.stop == "eos" or answered:
                    node.finished, node.ended = True, "eos" if gen.stop == "eos" else "answer"
                elif gen.stop == "length" or tokens >= max_new_tokens:
                    node.finished, node.ended = True, "length"
                elif depth + 1 >= max_steps:
                    node.finished, node.ended = True, "step_cap"
                res.nodes.append(node)
                res.tokens += gen.n_tokens
                res.n_generations += 1
                path_tokens[(i, node.id)] = tokens
                new_ids.append((i, g, node.id))
        # 4. Score every new prefix in one pass each (batched over all problems); a prefix sampled twice is
        #    read once (same input, same rewards).
        keys = [(i, tuple(results[i].steps(nid))) for i, _, nid in new_ids]
        todo = list(dict.fromkeys(k for k in keys if k not in scored))
        rewards = _score_prefixes(prm, [prompts[i] for i, _ in todo], [list(steps) for _, steps in todo],
                                  [i for i, _ in todo])
        for key, r in zip(todo, rewards):
            scored[key] = r
            results[key[0]].n_scored += r is not None  # one the PRM could not read (blank, too long) is not read
        for (i, g, nid), key in zip(new_ids, keys):
            node = results[i].nodes[nid]
            node.rewards = scored[key]
            where = f"problem {i}, node {nid} (depth {node.depth})"
            node.score = bestofn.aggregate_one(node.rewards, aggregation, where, "beam_search",
                                               lambda k: f"{where}: the PRM's reward of step {k}")
        # 5. Keep the best n_beams per subtree: new prefixes and the finished beams still held compete.
        fresh: dict[tuple[int, int], list[int]] = {}
        for i, g, nid in new_ids:
            fresh.setdefault((i, g), []).append(nid)
        for (i, g), ids in fresh.items():
            res = results[i]
            held = [nid for nid in (beams[i][g] or []) if res.nodes[nid].finished]
            pool = held + ids
            ranked = sorted(pool, key=lambda nid: -res.nodes[nid].score)  # stable: ties keep the earlier one
            if unique:  # a prefix sampled twice takes one place in the beam
                seen, distinct = set(), []
                for nid in ranked:
                    if res.text(nid) not in seen:
                        seen.add(res.text(nid))
                        distinct.append(nid)
                ranked = distinct + [nid for nid in ranked if nid not in set(distinct)]
                keep = set(distinct[:n_beams])
            else:
                keep = set(ranked[:n_beams])
            for nid in pool:
                node = res.nodes[nid]
                if nid in keep:
                    node.kept = True
                else:  # a new step not taken, or a finished beam pushed out
                    node.pruned_at = depth
            beams[i][g] = [nid for nid in ranked if nid in keep]
        if depth == 0:
            first_round = [res.tokens for res in results]
    # 6. Beams still open at the end were cut by the step cap. Choose the best beam that ended by itself, held or
    #    not: a finished beam pushed out by open prefixes that the budget then cut stays a candidate (search-and-learn
    #    keeps completed beams aside, out of the pruning); only where none ended by itself, the best cut one held.
    for i, res in enumerate(results):
        final = [nid for held in beams[i] for nid in (held or [])]
        for nid in final:
            node = res.nodes[nid]
            if not node.finished:
                node.finished, node.ended = True, "step_cap"
        ended = [node.id for node in res.nodes if node.ended in ("eos", "answer")]
        if ended or final:
            res.chosen = max(ended or final, key=lambda nid: (res.nodes[nid].score, -nid))
    _warn_of_degenerate_searches(results, budgets, first_round, delimiter, max_steps)
    return results


def _warn_of_degenerate_searches(results: list[SearchResult], budgets: list, first_round: list[int], delimiter: str,
                            max_steps: int) -> None:
    """One warning per way a search ran on without its PRM or its steps, each said once per call: problems whose
    prefixes the PRM read none of (ranked on ``FLOOR`` alone: an arbitrary pick), a delimiter no sampled step ended
    at (no branching: best-of-N of whole solutions), problems whose token budget the first round spent, leaving a
    prefix without an answer as the chosen solution (``SearchResult.answered``)."""
    def some(ids):
        return f"{len(ids)} of {len(results)} problems (problems {ids[:5]}{', ...' if len(ids) > 5 else ''})"

    unread = [r.problem_index for r in results if r.nodes and not r.n_scored]
    nodes = [n for r in results for n in r.nodes]  # every prefix the search scored
    unscored = sum(n.rewards is None for n in nodes)
    if unscored:
        message = (f"beam_search: the PRM could not read {unscored} of {len(nodes)} prefixes (a blank step, or "
                   "prompt and prefix longer than its max_length, which ProcessRewardModel.load(path, max_length=...) "
                   f"raises within the model's context): each scored FLOOR ({FLOOR:g})")
        if unread:
            message += (f"; it read no prefix of {some(unread)}: their beams were ranked on FLOOR alone, so their "
                        "chosen solutions are arbitrary, not the PRM's pick")
        warn_user(message)
    if max_steps > 1 and nodes and not any(n.stop == "delimiter" for n in nodes):
        warn_user(f"beam_search: no sampled step ended at the delimiter {delimiter!r} (each ran to EOS or its "
                  "token cap): the policy never wrote it, so the search never branched and was best-of-N of "
                  "whole solutions; pass the delimiter the policy writes between steps")
    short = [r.problem_index for r, b, spent in zip(results, budgets, first_round)
             if b is not None and spent >= b and not r.answered]
    if short:
        i = short[0]
        warn_user(f"beam_search: the token budget of {some(short)} was below one round of the search (problem "
                  f"{i}: budget {budgets[i]:g}, its first steps cost {first_round[i]} tokens): the search stopped "
                  "there and chose a prefix with no answer (SearchResult.answered is False)")


def dvts(policy, tokenizer, prm, problems, *, budget: int = 16, expansions: int = 4, **kw) -> list[SearchResult]:
    """Diverse verifier tree search: ``budget // expansions`` independent subtrees of one beam each, every
    beam extended by ``expansions`` steps, the best of all subtrees chosen (``beam_search`` keywords)."""
    fixed = [name for name in ("n_beams", "n_subtrees") if name in kw]
    if fixed:  # was "beam_search() got multiple values for keyword argument 'n_beams'"
        raise ValueError(f"dvts: {fixed[0]} is set by dvts itself (n_beams=1 per subtree, n_subtrees=budget // "
                         "expansions); for more beams in one tree use beam_search(n_beams=...)")
    if positive_int(budget, "budget", "dvts") % positive_int(expansions, "expansions", "dvts"):
        raise ValueError(f"dvts: budget {budget} is not a multiple of expansions {expansions}")
    return beam_search(policy, tokenizer, prm, problems, n_beams=1, expansions=expansions,
                       n_subtrees=budget // expansions, **kw)


# ----------------------------------------------------------------------------- equal-budget comparison

def n_test_time_problems(profile, requested: int | None = None) -> int:
    """How many held-out problems notebook 07 compares the methods on: ``requested``, else the profile's
    ``n_test_time_problems`` (the tiny profile's 50: on 30, one problem is 3.3 points, too coarse to order the
    methods), else the fifth of its ``n_eval_problems`` notebook 06's best-of-N takes
    (``bestofn.n_best_of_n_problems``): each problem samples max(B) whole solutions and runs every search.
    ``profile``: a ``profiles.Profile`` or its name."""
    positive_int(requested, "requested", "n_test_time_problems", none_ok=True)
    profile = get_profile(profile) if isinstance(profile, str) else profile  # a name: an AttributeError
    return requested or profile.n_test_time_problems or bestofn.n_best_of_n_problems(profile.n_eval_problems)


def beam_shape(budget: int, expansions: int = 4) -> tuple[int, int]:
    """``(n_beams, expansions)`` with ``n_beams · expansions == budget``: search-and-learn's default beam width
    of 4 expansions per beam, so B = 4 keeps 1 beam and B = 16 keeps 4. On the toy world's validation split this
    beat 2 x 2 at B = 4 and 2 x 8 / 8 x 2 at B = 16 (notebook 07). Expansions are capped at the budget, quietly:
    notebook 07's curve may start at B = 2 (1 beam x 2, where DVTS is the same search; the test suite runs it so),
    and its exercise ``EXPANSIONS = 8`` runs at B = 4 (docs/exercises.md); ``dvts`` refuses such a budget."""
    positive_int(budget, "budget", "beam_shape")
    positive_int(expansions, "expansions", "beam_shape")
    expansions = min(expansions, budget)
    if budget % expansions:
        raise ValueError(f"beam_shape: budget {budget} is not a multiple of expansions {expansions} (notebook 07: "
                         "each of TEST_TIME_BUDGETS a multiple of EXPANSIONS, or below it)")
    return budget // expansions, expansions


def search_at_budgets(policy, tokenizer, prm, problems, candidate_tokens: Sequence[Sequence[int]],
                      budgets: Sequence[int], *, expansions: int = 4, run_dvts: bool = True, log=print,
                      **kw) -> dict[str, dict[int, list[SearchResult]]]:
    """Beam search (and DVTS) with ``prm`` at each budget B: ``beam_shape(B, expansions)`` beams, and a problem
    stops growing its tree once it has spent what best-of-B spends on it (B x its mean sampled solution in
    ``candidate_tokens``), so that both compare at equal generated tokens. Returns ``{"beam_prm": {B: results},
    "dvts_prm": {B: results}}``; ``log`` gets one line per search (accuracy, tokens, PRM reads, time) and the
    checker's view of what the beam kept and pruned (``search_report.pruning_report``, toy world). ``kw``:
    ``beam_search``'s."""
    if not problems or len(candidate_tokens) != len(problems) or not budgets:
        raise ValueError(f"search_at_budgets: need problems, one list of candidate token counts per problem and "
                         f"budgets, got {len(problems)} problems, {len(candidate_tokens)} lists, "
                         f"{len(budgets)} budgets")
    empty = next((i for i, row in enumerate(candidate_tokens) if len(row) == 0), None)
    if empty is not None:  # its mean sets the problem's token cap
        raise ValueError(f"search_at_budgets: problem {empty} has no candidate token counts")
    check_token_counts(candidate_tokens, "search_at_budgets")  # a NaN or a bool would set the cap
    searches = {"beam_prm": {}, **({"dvts_prm": {}} if run_dvts else {})}
    for b in budgets:
        n_beams, m = beam_shape(b, expansions)
        caps = [b * sum(row) / len(row) for row in candidate_tokens]
        t0 = time.perf_counter()
        searches["beam_prm"][b] = beam_search(policy, tokenizer, prm, problems, n_beams=n_beams, expansions=m,
                                              token_budget=caps, **kw)
        done = [("beam_prm", time.perf_counter() - t0)]
        if run_dvts:  # with one beam per search, DVTS (B / M subtrees of one beam) is that same search
            t0 = time.perf_counter()
            searches["dvts_prm"][b] = (searches["beam_prm"][b] if n_beams == 1 else
                                       dvts(policy, tokenizer, prm, problems, budget=b, expansions=m,
                                            token_budget=caps, **kw))
            done.append(("dvts_prm", time.perf_counter() - t0))
        for name, seconds in done:  # by the names the table and the plot give them
            res = searches[name][b]
            took = ("one beam: the beam search itself" if name == "dvts_prm" and res is searches["beam_prm"][b] else
                    f"{seconds:.0f} s")
            log(f"B={b:<3} {method_name(name) + ':':17s} accuracy {chosen_accuracy(problems, res):.1%}, "
                f"{sum(r.tokens for r in res) / len(res):.0f} tokens and "
                f"{sum(r.n_scored for r in res) / len(res):.0f} PRM-scored prefixes per problem ({took})")
        report = pruning_report(problems, searches["beam_prm"][b])
        if report:  # only where a checker labels every step (the toy world)
            share = lambda x: "-" if x is None else f"{x:.0%}"
            log(f"       checker on the beam search's steps: kept {report['kept']} ({share(report['kept_right'])} "
                f"right), pruned {report['pruned']} ({share(report['pruned_right'])} right); of {report['rounds']} "
                f"rounds that started from a right prefix, the policy sampled no right next step in "
                f"{report['no_right_step']}, and the PRM pruned every right one in {report['right_step_pruned']}")
    return searches


def compare_at_budgets(problems, candidates, candidate_tokens, prm_step_rewards, orm_rewards, searches: dict,
                       budgets: Sequence[int], aggregation: str | Callable, seed: int = 0, n_resamples: int = 100,
                       per_problem: bool = False) -> dict:
    """``{str(B): {"majority", "best_of_n_orm", "best_of_n_prm", <search methods>: accuracy, "tokens": {method:
    mean generated tokens per problem}, "token_budget", "prm_scored": {method: prefixes or solutions the PRM
    read, per problem}}}``. ``per_problem=True``: each method's right answers per problem (a share of the draws
    for best-of-B and majority, 0 or 1 for a search) in place of its accuracy, for ``bestofn.paired_differences``.

    ``candidates[i]``: whole solutions sampled for problem i (at least max B), ``candidate_tokens`` their token
    counts, ``prm_step_rewards``/``orm_rewards`` their scores (``bestofn.score_candidates``); ``aggregation`` turns
    step rewards into a candidate's score: pass the PRM's own (``prm.config.aggregation``), which the search used,
    so that best-of-B and the search rank by the same rule. Best-of-B and
    majority draw B of the candidates ``n_resamples`` times (``bestofn.best_of_n_table``, same draws for every
    method); their tokens are B x the mean tokens of a candidate (the mean over all draws). The token budget of
    B is the same figure. ``searches``: ``{method: {B: [SearchResult per problem]}}`` (e.g. ``beam_prm``).
    ``orm_rewards=None`` (no outcome model): the table has no ``best_of_n_orm`` row.
    """
    budgets = sorted(positive_int(b, f"budgets[{k}]", "compare_at_budgets") for k, b in enumerate(budgets))  # no cast
    graded = bestofn.grade(problems, candidates)
    check_token_counts(candidate_tokens, "compare_at_budgets", candidates)
    scores = {"best_of_n_prm": bestofn.aggregate(prm_step_rewards, aggregation)}
    if orm_rewards is not None:  # each method draws its own seeded subsets: leaving one out changes no other row
        scores["best_of_n_orm"] = bestofn._floor(orm_rewards, "compare_at_budgets", "orm_rewards")
    table = bestofn.best_of_n_table(graded, scores, budgets, seed=seed, n_resamples=n_resamples,
                                    per_problem=per_problem)
    per_solution = sum(map(sum, candidate_tokens)) / max(sum(map(len, candidate_tokens)), 1)
    out = {}
    for b in budgets:
        row = {m: table[str(b)][m] for m in ("majority", "best_of_n_orm", "best_of_n_prm") if m in table[str(b)]}
        budget = b * per_solution
        tokens = dict.fromkeys(row, budget)
        scored = {m: float(b) if m == "best_of_n_prm" else 0.0 for m in row}
        for method, runs in searches.items():
            results = runs.get(b, runs.get(str(b)))
            if results is None:
                continue
            if len(results) != len(problems):  # zip would score the first ones only, and say nothing
                raise ValueError(f"compare_at_budgets: searches[{method!r}] at B={b} has {len(results)} results for "
                                 f"{len(problems)} problems")
            check_search_results(results, f"compare_at_budgets: searches[{method!r}] at B={b}: results",
                                  "compare_at_budgets")
            right = [float(bestofn.is_correct(p, r.solution, "compare_at_budgets",
                                              f"searches[{method!r}] at B={b}, problem {i}"))
                     for i, (p, r) in enumerate(zip(problems, results))]
            row[method] = right if per_problem else sum(right) / len(right)
            tokens[method] = sum(r.tokens for r in results) / len(results)
            scored[method] = sum(r.n_scored for r in results) / len(results)
        out[str(b)] = {**row, "tokens": tokens, "token_budget": budget, "prm_scored": scored}
    return out


def pairs_that_ran(pairs, run_dvts: bool = True) -> list:
    """``pairs`` of methods (A, B) for ``bestofn.paired_differences``, less those naming DVTS (``dvts_prm``) when it
    did not run (``search_at_budgets(run_dvts=False)``): left out by choice, they need no warning, which
    ``paired_differences`` gives of a method missing from the results (a typo)."""
    flag(run_dvts, "run_dvts", "pairs_that_ran")  # "no" is truthy: DVTS's pairs were kept
    pairs = list_of(pairs, "pairs_that_ran: pairs", "pairs of methods (A, B)")  # one str: a "pair" per character
    return [pair for pair in pairs if run_dvts or "dvts_prm" not in pair]
