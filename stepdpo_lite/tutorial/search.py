"""Test-time compute with a process reward model: step-level beam search and DVTS against best-of-N and
majority vote, at the same number of generated tokens.

Best-of-N samples N whole solutions and lets a verifier pick one; the verifier never changes what is sampled.
A PRM can do more: it scores every prefix, so it can steer the search step by step (Snell et al. 2024,
arXiv:2408.03314; Hugging Face's search-and-learn recipes)::

    depth 0: sample B first steps                      -> score the B prefixes, keep the best N
    depth d: extend each kept beam by M sampled steps  -> score the N·M prefixes, keep the best N
    ...      until every kept beam has finished (EOS, an answer line, the step cap or the token cap)

With ``N·M = B`` every depth samples B steps, so the search generates about as many tokens as B whole
solutions: a fair comparison with best-of-B. **DVTS** (diverse verifier tree search: Beeching, Tunstall and Rush
2024, "Scaling test-time compute with open models", a Hugging Face blog post) splits the same budget into
``B / M`` independent subtrees, each keeping one beam: less pruning by an imperfect verifier, more diversity.

- A step ends where the policy writes the step delimiter (default ``"\\n\\nStep"``, ``steps.py``): generation
  stops there, the step is the text before it, and the delimiter opens the next step (it is fed back to the
  policy as the start of the next step, never generated twice), so the steps concatenate to a normal
  solution and ``steps.extract_steps(solution) == steps``. An answer line ("Answer: x") belongs to the last step.
- The PRM scores a prefix in one forward pass (``ProcessRewardModel.score_solutions`` on step lists) and
  ``losses.aggregate_steps`` turns its step rewards into the beam's score (``bestofn.aggregate_one``, as best-of-N
  scores a candidate; the PRM's ``config.aggregation`` unless given: ``min``, ``last``, ``product``, ...).
- **Tokens are counted exactly**: for every row of every ``generate`` call, the new tokens up to and
  including the one that stopped it (EOS or the delimiter's last token), padding excluded
  (``Generation.n_tokens``). Verifier forward passes are not generated tokens; they are counted apart
  (``SearchResult.n_scored``: prefixes the PRM read).

Nothing here is specific to the toy world: problems only need ``.prompt`` (a ``str``, chat-formatted on
GSM8K), ``.is_correct`` and ``.final_answer`` (``tasks.py``); the policy is any causal LM with its tokenizer,
or any ``sampler(texts, n, max_new_tokens) -> list[list[Generation]]``; the PRM anything with
``score_solutions(prompts, step_lists)``.
"""

from __future__ import annotations

import math
import numbers
import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence, Sized

import torch
from transformers import StoppingCriteria

from ..checks import finite_number, list_of, positive_int, warn_user
from ..generation import (check_sampling, eos_token_ids, exact_sampling, prompt_texts, record_prompts,
                          sampling_arguments)
from ..losses import check_aggregation
from ..rewards import sigmoid, step_delimiter_of
from ..steps import DEFAULT_DELIMITER
from . import bestofn
from .labelling import check_solution_lists, prompts_of
from .tasks import check_spelled, method_name

FLOOR = bestofn.FLOOR  # the score of a prefix the PRM cannot read (blank, longer than its context)
ANSWER_PATTERN = r"(?m)^[ \t]*(?:Answer:|####)"  # a line that states the final answer ends a solution
STOPS = ("eos", "delimiter", "length")


# ----------------------------------------------------------------------------- generation with exact token counts

@dataclass
class Generation:
    """One row of a ``generate`` call: ``text`` (decoded, cut before the delimiter when it stopped there),
    ``n_tokens`` (new tokens generated, up to and including the one that stopped the row; no padding),
    ``stop`` ("eos", "delimiter" or "length") and ``rest`` (text decoded after the delimiter in the same
    tokens, e.g. a token that overhangs it; it opens the next step with the delimiter)."""

    text: str
    n_tokens: int
    stop: str
    rest: str = ""


def _cut(text: str, delimiter: str, lead: str = "") -> int | None:
    """Index of the first ``delimiter`` in ``text`` that closes a non-blank step (``lead + text[:i]``), or None."""
    i = text.find(delimiter)
    while i != -1:
        if (lead + text[:i]).strip():
            return i
        i = text.find(delimiter, i + 1)
    return None


def _step_stopper(tokenizer, delimiter: str | None, prompt_len: int, leads: Sequence[str], eos: set[int],
                  caps: Sequence[int]):
    """A ``StoppingCriteria`` that stops each row at EOS, once its new text holds ``delimiter`` after a non-blank
    step, or at its own cap ``caps[i]``, and records where (``stopped_at[i]``: new tokens so far; 0 while running)."""
    window = len(tokenizer(delimiter, add_special_tokens=False)["input_ids"]) + len(delimiter) + 2 if delimiter else 0

    class StopAtStep(StoppingCriteria):
        def __init__(self):
            self.stopped_at = [0] * len(leads)
            self.kind = [""] * len(leads)

        def __call__(self, input_ids, scores=None, **kwargs):
            n = input_ids.shape[1] - prompt_len
            live = [i for i, s in enumerate(self.stopped_at) if not s]
            if live and n > 0:
                new = input_ids[live, prompt_len:]
                last = new[:, -1].tolist()
                tails = tokenizer.batch_decode(new[:, -window:].tolist(), skip_special_tokens=True) if delimiter else []
                for r, i in enumerate(live):
                    if last[r] in eos:
                        self.stopped_at[i], self.kind[i] = n, "eos"
                    elif delimiter and delimiter in tails[r]:
                        full = tokenizer.decode(new[r].tolist(), skip_special_tokens=True)
                        if _cut(full, delimiter, leads[i]) is not None:
                            self.stopped_at[i], self.kind[i] = n, "delimiter"
                    if not self.stopped_at[i] and n >= caps[i]:
                        self.stopped_at[i], self.kind[i] = n, "length"
            return torch.tensor([s > 0 for s in self.stopped_at], dtype=torch.bool, device=input_ids.device)

    return StopAtStep()


def generate(model, tokenizer, texts: Sequence[str], n: int = 1, *, delimiter: str | None = DEFAULT_DELIMITER,
             leads: Sequence[str] | None = None, temperature: float = 1.0, max_new_tokens: int | Sequence[int] = 160,
             batch_size: int = 64, seed: int | None = 0) -> list[list[Generation]]:
    """``n`` continuations of each text, each stopped at EOS, at ``delimiter`` (None: only EOS and the length
    cap, i.e. whole solutions) or after ``max_new_tokens`` (one value, or one per text), with exact token counts.

    ``leads[i]`` is the start of the step text ``i`` continues (e.g. the delimiter itself): a delimiter ends a
    step only when ``leads[i]`` + the text before it is not blank, so no step is ever blank. Sampling is pure
    (``top_k=0``, ``top_p=1``, none of the model's saved settings: ``generation.exact_sampling``) at ``temperature``
    (0: greedy), as ``generation.sample_solutions``; ``seed`` seeds torch once before the first batch (None: leave
    the generator as it is).
    """
    texts = prompt_texts(texts, "generate")
    positive_int(seed, "seed", "generate", none_ok=True, minimum=0)  # True seeded 1, 1.5 was torch's TypeError
    if delimiter is not None and not delimiter:
        raise ValueError("generate: delimiter must be a non-empty string or None")
    if isinstance(max_new_tokens, numbers.Number):  # one cap for every text; 160.0 or True is refused, not cast
        caps = [positive_int(max_new_tokens, "max_new_tokens", "generate")] * len(texts)
    else:
        caps = list_of(max_new_tokens, "generate: max_new_tokens", "caps (one int >= 1 per text)")
        if len(caps) != len(texts):
            raise ValueError(f"generate: {len(texts)} texts but {len(caps)} max_new_tokens")
        for i, cap in enumerate(caps):  # a cap of 2.5 stopped its row at 3 tokens, True at 1
            positive_int(cap, f"max_new_tokens[{i}] (text {i})", "generate")
    check_sampling(model, tokenizer, texts, n, temperature, batch_size, max(caps, default=1), where="generate")
    leads = [""] * len(texts) if leads is None else list_of(leads, "generate: leads", "leads (one str per text)")
    if len(leads) != len(texts):
        raise ValueError(f"generate: {len(texts)} texts but {len(leads)} leads")
    record_prompts(texts)  # as generation.sample_solutions records its prompts: tests check none holds an answer
    rows = [(i, texts[i], leads[i], caps[i]) for i in range(len(texts)) for _ in range(n)]
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    sampling = sampling_arguments(temperature)
    device = next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(seed)
    out: list[Generation | None] = [None] * len(rows)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(rows), batch_size):
            batch = list(range(start, min(start + batch_size, len(rows))))
            row_caps = [rows[r][3] for r in batch]
            enc = tokenizer([rows[r][1] for r in batch], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            width = enc["input_ids"].shape[1]
            # Whole solutions with one cap need no criterion of ours (no host sync per token): a row's first EOS
            # is where it stopped, since generate pads a finished row (with EOS itself when there is no pad token).
            stopper = (_step_stopper(tokenizer, delimiter, width, [rows[r][2] for r in batch], set(eos), row_caps)
                       if delimiter or len(set(row_caps)) > 1 else None)
            with torch.no_grad(), exact_sampling(model):
                seqs = model.generate(**enc, max_new_tokens=max(row_caps), pad_token_id=pad, eos_token_id=eos,
                                      **({"stopping_criteria": [stopper]} if stopper else {}), **sampling)
            new = seqs[:, width:].tolist()
            for j, r in enumerate(batch):
                if stopper is not None:
                    count, stop = stopper.stopped_at[j], stopper.kind[j] or "length"
                else:
                    count = next((k + 1 for k, t in enumerate(new[j]) if t in eos), 0)
                    stop = "eos" if count else "length"
                count = count or len(new[j])  # never stopped: it ran to the cap
                text = tokenizer.decode(new[j][:count], skip_special_tokens=True)
                rest = ""
                if stop == "delimiter":
                    cut = _cut(text, delimiter, rows[r][2])
                    text, rest = text[:cut], text[cut + len(delimiter):]
                out[r] = Generation(text, count, stop, rest)
    finally:
        tokenizer.padding_side = side
    return [out[i * n:(i + 1) * n] for i in range(len(texts))]


def sample_candidates(model, tokenizer, problems, n: int, *, temperature: float = 1.0, max_new_tokens: int = 160,
                      batch_size: int = 64, seed: int = 0) -> tuple[list[list[str]], list[list[int]]]:
    """``n`` whole solutions per problem (best-of-N candidates) and the tokens generated for each, counted
    exactly (``generate`` without a delimiter: the same sampling as ``tasks.sample_solutions``; every EOS id of the
    tokenizer and of the model's generation config ends a candidate, as it ends a search's step). A prompt the
    tokenizer cannot spell is a ValueError naming its problem and characters, as there (``tasks.check_spelled``)."""
    positive_int(seed, "seed", "sample_candidates", minimum=0)  # None would leave torch's generator as it is
    prompts = prompts_of(problems, "sample_candidates")
    if not prompts:
        raise ValueError("sample_candidates: problems is empty: give one or more problems")
    check_spelled(tokenizer, prompts, "sample_candidates: problems")  # the policy would read <unk>, silently
    gens = generate(model, tokenizer, prompts, n, delimiter=None, temperature=temperature,
                    max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    return [[g.text for g in row] for row in gens], [[g.n_tokens for g in row] for row in gens]


def _check_token_counts(candidate_tokens, who: str, candidates=None) -> None:
    """Each count of ``candidate_tokens`` an int >= 1 (the tokens ``sample_candidates`` generated for one solution),
    named by problem and candidate; with ``candidates``, one count per candidate (a short row would set a budget,
    or the tokens per solution, from other solutions than those graded)."""
    rows = list_of(candidate_tokens, f"{who}: candidate_tokens", "lists of token counts (one per problem)")
    if candidates is not None and len(rows) != len(candidates):
        raise ValueError(f"{who}: candidates and candidate_tokens differ in shape (one count per solution): "
                         f"{len(candidates)} problems and {len(rows)} lists of counts")
    for i, row in enumerate(rows):
        row = list_of(row, f"{who}: candidate_tokens[{i}]", "token counts")
        if candidates is not None and len(row) != len(candidates[i]):
            raise ValueError(f"{who}: candidates and candidate_tokens differ in shape (one count per solution): "
                             f"problem {i} has {len(candidates[i])} candidates and {len(row)} counts")
        for j, count in enumerate(row):
            positive_int(count, f"candidate_tokens[{i}][{j}] (problem {i}, candidate {j})", who)


def candidate_costs(problems, candidates, candidate_tokens) -> dict:
    """What the candidates of ``sample_candidates`` cost and hold: ``{"solutions", "right" (the share with the right
    final answer), "tokens_per_solution" (the mean, which sets every budget), "min_tokens", "max_tokens"}``."""
    check_solution_lists(problems, candidates, "candidate_costs")
    _check_token_counts(candidate_tokens, "candidate_costs", candidates)
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


def n_test_time_problems(profile, requested: int | None = None) -> int:
    """How many held-out problems notebook 07 compares the methods on: ``requested``, else the profile's
    ``n_test_time_problems`` (the tiny profile's 50: on 30, one problem is 3.3 points, too coarse to order the
    methods), else the fifth of its ``n_eval_problems`` notebook 06's best-of-N takes
    (``bestofn.n_best_of_n_problems``): each problem samples max(B) whole solutions and runs every search."""
    positive_int(requested, "requested", "n_test_time_problems", none_ok=True)
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
        raise ValueError(f"beam_shape: budget {budget} is not a multiple of expansions {expansions}")
    return budget // expansions, expansions


def search_at_budgets(policy, tokenizer, prm, problems, candidate_tokens: Sequence[Sequence[int]],
                      budgets: Sequence[int], *, expansions: int = 4, run_dvts: bool = True, log=print,
                      **kw) -> dict[str, dict[int, list[SearchResult]]]:
    """Beam search (and DVTS) with ``prm`` at each budget B: ``beam_shape(B, expansions)`` beams, and a problem
    stops growing its tree once it has spent what best-of-B spends on it (B x its mean sampled solution in
    ``candidate_tokens``), so that both compare at equal generated tokens. Returns ``{"beam_prm": {B: results},
    "dvts_prm": {B: results}}``; ``log`` gets one line per search (accuracy, tokens, PRM reads, time) and the
    checker's view of what the beam kept and pruned (``pruning_report``, toy world). ``kw``: ``beam_search``'s."""
    if not problems or len(candidate_tokens) != len(problems) or not budgets:
        raise ValueError(f"search_at_budgets: need problems, one list of candidate token counts per problem and "
                         f"budgets, got {len(problems)} problems, {len(candidate_tokens)} lists, "
                         f"{len(budgets)} budgets")
    empty = next((i for i, row in enumerate(candidate_tokens) if len(row) == 0), None)
    if empty is not None:  # its mean sets the problem's token cap
        raise ValueError(f"search_at_budgets: problem {empty} has no candidate token counts")
    _check_token_counts(candidate_tokens, "search_at_budgets")  # a NaN or a bool would set the cap
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
        for name, seconds in done:
            res = searches[name][b]
            log(f"B={b:<3} {name:9s} accuracy {accuracy(problems, res):.1%}, "
                f"{sum(r.tokens for r in res) / len(res):.0f} tokens and "
                f"{sum(r.n_scored for r in res) / len(res):.0f} PRM-scored prefixes per problem ({seconds:.0f} s)")
        report = pruning_report(problems, searches["beam_prm"][b])
        if report:  # only where a checker labels every step (the toy world)
            share = lambda x: "-" if x is None else f"{x:.0%}"
            log(f"       checker on beam_prm's steps: kept {report['kept']} ({share(report['kept_right'])} right), "
                f"pruned {report['pruned']} ({share(report['pruned_right'])} right); of {report['rounds']} rounds "
                f"that started from a right prefix, the policy sampled no right next step in "
                f"{report['no_right_step']}, and the PRM pruned every right one in {report['right_step_pruned']}")
    return searches


# ----------------------------------------------------------------------------- equal-budget comparison

def _check_search_results(results: list, where: str, who: str) -> None:
    """A solution text in place of a SearchResult was "'str' object has no attribute 'solution'"."""
    odd = next((k for k, r in enumerate(results) if not hasattr(r, "solution")), None)
    if odd is not None:
        raise ValueError(f"{where}[{odd}] is a {type(results[odd]).__name__}: {who} takes SearchResults "
                         "(beam_search's); for solution texts use bestofn.accuracy")


def accuracy(problems, results: Sequence[SearchResult]) -> float:
    """Final-answer accuracy of the chosen solutions (an ``is_correct`` that returns no bool is refused, named)."""
    problems = list_of(problems, "accuracy: problems", "problems")
    results = list_of(results, "accuracy: results", "search results (SearchResult)")
    if len(problems) != len(results) or not problems:
        raise ValueError(f"accuracy: {len(problems)} problems but {len(results)} search results (need equal, > 0)")
    _check_search_results(results, "accuracy: results", "search.accuracy")
    return sum(bestofn.is_correct(p, r.solution, "accuracy", f"problem {i}")
               for i, (p, r) in enumerate(zip(problems, results))) / len(problems)


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
    _check_token_counts(candidate_tokens, "compare_at_budgets", candidates)
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
            _check_search_results(results, f"compare_at_budgets: searches[{method!r}] at B={b}: results",
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
    return [pair for pair in pairs if run_dvts or "dvts_prm" not in pair]


def comparison_record(table: dict, problems, searches: dict, sampled: dict, example: dict, shapes: dict) -> dict:
    """What notebook 07 records under ``test_time`` in metrics.json: ``table`` (``compare_at_budgets``' accuracies,
    tokens and reads per budget) and beside it how many problems, the candidates' mean tokens per solution, the fewest
    and most one took (``tokens_per_solution_range``, ``[min, max]``), their share right (``sampled``:
    ``candidate_costs``'s), the checker's view of the beam search's pruning at each budget (``pruning_report`` of
    ``searches["beam_prm"]``; None without a step checker), the explorer's ``example`` (``example_report``'s) and each
    budget's beam ``shapes`` (``beam_shape``'s, as lists: JSON has no tuples)."""
    pruning = {str(b): pruning_report(problems, results) for b, results in searches["beam_prm"].items()}
    return {**table, "n_problems": len(problems), "tokens_per_solution": sampled["tokens_per_solution"],
            "tokens_per_solution_range": [sampled["min_tokens"], sampled["max_tokens"]], "pruning": pruning,
            "candidate_accuracy": sampled["right"], "example": example,
            "shapes": {str(b): list(s) for b, s in shapes.items()}}


def format_comparison(table: dict) -> str:
    """A text table: one row per method, by the name the plot beside it gives it ("beam search, PRM":
    ``tasks.METHOD_NAMES``), accuracy (in percent, as the text; the differences under it are in points) and tokens per
    problem at each budget; blank where the method did not run at that budget."""
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


def tree_labels(problem, result: SearchResult) -> dict[int, bool | None]:
    """Per node: whether its step is right in its prefix (``prefix_step_labels``; None without a checker). A beam
    the search cut (its problem's token budget, the step cap) is read as a prefix: its last step is whole, and not
    wrong for the answer line it was given no room to write."""
    out = {}
    for node in result.nodes:
        ended_itself = node.finished and node.ended not in ("token_budget", "step_cap")
        labels = prefix_step_labels(problem, result.text(node.id), ended_itself)
        out[node.id] = None if labels is None or len(labels) <= node.depth else labels[node.depth]
    return out


def pick_example(problems, results: Sequence[SearchResult]) -> int:
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


def example_report(problem, result: SearchResult, candidates: Sequence[str], candidate_tokens: Sequence[int],
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


def format_example(problem, result: SearchResult, candidates: Sequence[str], candidate_tokens: Sequence[int],
                   budget: int) -> str:
    """Notebook 07's text above its beam explorer (``example_report``): the problem and the solution the search
    chose, then whether it is right, what the search sampled and spent against this problem's best-of-``budget``
    cap, and how many of its sampled whole solutions are right."""
    report = example_report(problem, result, candidates, candidate_tokens, budget)
    return (f"{problem.prompt}{result.solution}\n\nright: {report['right']}; {report['steps']} steps sampled, "
            f"{report['tokens']} tokens (its best-of-{budget} budget: {report['token_cap']:.0f}); "
            f"right among its {len(candidates)} sampled solutions: {report['right_candidates']}")


def pruning_report(problems, results: Sequence[SearchResult]) -> dict | None:
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
