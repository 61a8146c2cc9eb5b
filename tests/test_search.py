"""search, search_report, step_generation: step-level beam search and DVTS with a PRM, exact token counts,
equal-budget tables, the checker's view of a search tree, the tree figure.

Scripted policies and PRMs make the selection tests deterministic; the shipped tiny base checks the real
generation path (stopping at the delimiter, token counts against a direct count of generate's output)."""

import math
import random
import re

import numpy as np
import pytest
from matplotlib.markers import MarkerStyle

from stepdpo_lite.tutorial import (bestofn, policy_eval, search, search_report, step_generation, tiny_models, toyworld,
                                   viz)
from stepdpo_lite.tutorial.task_problems import Verdict
from stepdpo_lite.tutorial.gsm8k import GSM8KProblem
from stepdpo_lite.tutorial.profiles import get_profile
from stepdpo_lite.tutorial.step_generation import Generation
from stepdpo_lite.steps import DEFAULT_DELIMITER, extract_steps

PNG = b"\x89PNG\r\n\x1a\n"


class Scripted:
    """A policy that writes ``Step k: c<j>`` for k = 1..3 (the last one with ``Answer: <j>`` and EOS); option j
    is the copy index (``options=None``) or drawn at random from ``options``. Each step costs len(text) tokens."""

    def __init__(self, options=None, seed=0, n_steps=3):
        self.rng, self.options, self.n_steps = random.Random(seed), options, n_steps
        self.calls, self.tokens = [], 0

    def __call__(self, texts, n, max_new_tokens, leads):
        self.calls.append((list(texts), n, list(max_new_tokens), list(leads)))
        out = []
        for text, lead in zip(texts, leads):
            k = text.count(DEFAULT_DELIMITER)  # steps written so far (the lead opens the next one)
            assert lead == ("" if k == 0 else DEFAULT_DELIMITER) and text.endswith(lead)
            row = []
            for copy in range(n):
                j = copy if self.options is None else self.rng.choice(self.options)
                body = f"Step 1: c{j}" if k == 0 else f" {k + 1}: c{j}"
                if k + 1 == self.n_steps:
                    row.append(Generation(body + f"\n\nAnswer: {j}", len(body) + 11, "eos"))
                else:
                    row.append(Generation(body, len(body) + len(DEFAULT_DELIMITER), "delimiter"))
                self.tokens += row[-1].n_tokens
            out.append(row)
        return out


class TablePRM:
    """Step reward of ``c<j>`` from ``table[j]`` (or a hash of the prefix: random but fixed); counts prefixes."""

    def __init__(self, table=None, aggregation="min"):
        self.table, self.scored = table, []
        self.config = type("C", (), {"aggregation": aggregation, "step_delimiter": DEFAULT_DELIMITER})()

    def reward(self, prefix):
        if self.table is not None:
            return self.table[int(prefix[-1].split(": c")[1].split("\n")[0])]
        return random.Random("".join(prefix)).uniform(-3, 3)

    def score_solutions(self, prompts, step_lists):
        assert all(isinstance(p, str) for p in prompts)
        self.scored += [(p, tuple(s)) for p, s in zip(prompts, step_lists)]
        return [[self.reward(steps[:k + 1]) for k in range(len(steps))] for steps in step_lists]


class Answer1:
    """A problem whose answer is 1 (the task interface, duck-typed)."""

    prompt = "Q: pick one.\n"

    def is_correct(self, solution):
        return solution.rstrip().endswith("Answer: 1")

    def final_answer(self, solution):
        return float(solution.rsplit("Answer: ", 1)[1]) if "Answer: " in solution else None

    def step_labels(self, solution):
        return None


def _beam_after(res, depth):
    """Nodes held in the beam after the selection round at ``depth``."""
    return [n for n in res.nodes if n.kept and n.depth <= depth and (n.depth == depth or n.finished)
            and (n.pruned_at is None or n.pruned_at > depth)]


@pytest.mark.parametrize("stop, ended", [("eos", "eos"), ("delimiter", "answer")])
def test_an_answered_beam_pushed_out_by_a_prefix_the_budget_then_cuts_is_still_chosen(stop, ended):
    """A finished beam competes with open prefixes for its place; one pushed out used to be lost, and when the token
    budget then cut the open prefix, the search chose that cut prefix, with no answer, over the answered beam. A
    beam ends on its answer line as on EOS."""
    def policy(texts, n, caps, leads):
        return [[Generation("Step 1: c1\n\nAnswer: 1", 10, stop),
                 Generation("Step 1: c0", 10, "delimiter")][:n] for _ in texts]

    class ShortPrefixFavoured(TablePRM):
        def reward(self, prefix):
            return 0.5 if "Answer" in prefix[-1] else 0.9
    res = search.beam_search(None, None, ShortPrefixFavoured(), [Answer1()], n_beams=1, expansions=2, token_budget=20,
                             sampler=policy)[0]
    answered = res.nodes[0]
    assert answered.ended == ended and answered.pruned_at == 0  # pushed out by the open prefix (0.9 > 0.5)
    assert res.nodes[1].ended == "token_budget"
    assert res.chosen == 0 and Answer1().is_correct(res.solution)


def test_a_finished_beam_keeps_its_place_against_new_prefixes_of_the_same_score():
    """Ties keep the earlier one: a held beam that has ended comes before the new prefixes."""
    def policy(texts, n, caps, leads):
        if DEFAULT_DELIMITER not in texts[0]:  # the first round: an answered step, then open ones
            return [[Generation("Step 1: c9\n\nAnswer: 1", 5, "eos")] +
                    [Generation(f"Step 1: c{j}", 5, "delimiter") for j in range(1, n)] for _ in texts]
        return [[Generation(f" 2: c{j}", 5, "delimiter") for j in range(n)] for _ in texts]

    class Level(TablePRM):
        def reward(self, prefix):
            return 1.0

    res = search.beam_search(None, None, Level(), [Answer1()], n_beams=2, expansions=2, max_steps=2,
                             sampler=policy)[0]
    answered = res.nodes[0]
    assert answered.ended == "eos" and answered.kept and answered.pruned_at is None
    assert len([n for n in res.nodes if n.depth == 1 and n.pruned_at == 1]) == 1


def test_beam_keeps_the_best_prefix_by_its_aggregated_score():
    prm = TablePRM({0: -1.0, 1: 2.0, 2: 0.5, 3: 1.0})
    policy = Scripted()
    res = search.beam_search(None, None, prm, [Answer1()], n_beams=1, expansions=2, sampler=policy)[0]
    assert res.steps() == ["Step 1: c1", "\n\nStep 2: c1", "\n\nStep 3: c1\n\nAnswer: 1"]
    assert res.solution == "Step 1: c1\n\nStep 2: c1\n\nStep 3: c1\n\nAnswer: 1" and Answer1().is_correct(res.solution)
    assert extract_steps(res.solution) == res.steps()
    assert res.score == 2.0 and res.nodes[res.chosen].ended == "eos"
    assert [n.depth for n in res.nodes] == [0, 0, 1, 1, 2, 2]  # the root sampled n_beams x expansions = 2 first steps
    assert [n.kept for n in res.nodes] == [False, True, False, True, False, True]
    assert res.tokens == policy.tokens == sum(n.n_tokens for n in res.nodes)
    # min over the prefix: after c1 (2.0), c0 (-1.0) drags the prefix down; "last" looks at the new step only
    low_then_high = TablePRM({0: 1.5, 1: -2.0, 2: 3.0, 3: 0.0})
    res = search.beam_search(None, None, low_then_high, [Answer1()], n_beams=2, expansions=2, sampler=Scripted())[0]
    assert all(n.score == min(n.rewards) for n in res.nodes)
    res_last = search.beam_search(None, None, low_then_high, [Answer1()], n_beams=2, expansions=2,
                                  aggregation="last", sampler=Scripted())[0]
    assert all(n.score == n.rewards[-1] for n in res_last.nodes)


@pytest.mark.parametrize("n_beams,expansions,subtrees", [(3, 2, 1), (2, 3, 1), (1, 4, 2)])
def test_beam_invariants_with_random_rewards(n_beams, expansions, subtrees):
    problems = [Answer1(), Answer1()]
    policy = Scripted(options=[0, 1, 2, 3, 4], seed=n_beams, n_steps=4)
    prm = TablePRM()
    results = search.beam_search(None, None, prm, problems, n_beams=n_beams, expansions=expansions,
                                 n_subtrees=subtrees, sampler=policy)
    assert sum(r.tokens for r in results) == policy.tokens  # every generated token is counted, once
    for res in results:
        assert res.tokens == sum(n.n_tokens for n in res.nodes) and res.n_generations == len(res.nodes)
        assert res.n_scored == len({"".join(res.steps(n.id)) for n in res.nodes})  # a repeated prefix is read once
        for g in range(subtrees):
            nodes = [n for n in res.nodes if n.group == g]
            assert sum(n.depth == 0 for n in nodes) == n_beams * expansions
            for parent in nodes:
                kids = [n for n in nodes if n.parent == parent.id]
                assert len(kids) == (expansions if parent.kept and not parent.finished else 0)
            for depth in range(max(n.depth for n in nodes) + 1):
                beam = [n for n in _beam_after(res, depth) if n.group == g]
                dropped = [n for n in nodes if n.pruned_at == depth]
                assert len(beam) == min(n_beams, len(beam) + len(dropped))
                if beam and dropped:
                    assert max(n.score for n in dropped) <= min(n.score for n in beam)
        ended = [n for n in res.nodes if n.ended in ("eos", "answer")]  # held or not: every beam that ended itself
        assert res.chosen == max(ended, key=lambda n: (n.score, -n.id)).id
        for n in res.nodes:
            text = res.text(n.id)
            assert extract_steps(text) == res.steps(n.id) and "".join(res.steps(n.id)) == text


def test_unique_beams_and_dvts_subtrees():
    policy = Scripted(options=[1, 1, 1, 2])  # mostly the same step: duplicates
    res = search.beam_search(None, None, TablePRM({1: 1.0, 2: -1.0}), [Answer1()], n_beams=2, expansions=3,
                             unique=True, sampler=policy)[0]
    for depth in range(3):
        texts = [res.text(n.id) for n in _beam_after(res, depth)]
        assert len(texts) == len(set(texts))
    res = search.dvts(None, None, TablePRM(), [Answer1()], budget=8, expansions=4,
                      sampler=Scripted(options=[0, 1, 2, 3]))[0]
    assert res.n_subtrees == 2 and {n.group for n in res.nodes} == {0, 1}
    for g in (0, 1):  # one beam per subtree, each extended by 4 steps
        assert all(sum(n.group == g for n in _beam_after(res, d)) == 1 for d in range(3))
        assert sum(n.group == g and n.depth == 1 for n in res.nodes) == 4
    assert search.beam_shape(4) == (1, 4) and search.beam_shape(16) == (4, 4)
    assert search.beam_shape(2) == (1, 2)  # capped, as docs/exercises.md says (notebook 07's B = 2: no warning)
    assert search.beam_shape(16, 8) == (2, 8)
    with pytest.raises(ValueError, match="multiple"):
        search.beam_shape(6, 4)
    for kw, message in ((dict(budget=8, expansions=0), "dvts: expansions must be an int >= 1, got 0"),  # was 1 / 0
                        (dict(budget=0), "dvts: budget must be an int >= 1, got 0"),  # was "beam_search: n_subtrees"
                        (dict(budget=8.0), "dvts: budget must be an int >= 1, got 8.0")):
        with pytest.raises(ValueError, match=message):
            search.dvts(None, None, TablePRM(), [Answer1()], sampler=Scripted(options=[0]), **kw)


def test_search_at_budgets_caps_each_problem_at_best_of_b_tokens():
    lines = []
    with pytest.warns(UserWarning, match=r"token budget of 1 of 2 problems \(problems \[1\]\) was below one round"):
        out = search.search_at_budgets(None, None, TablePRM(), [Answer1(), Answer1()], [[900, 1100], [5, 5]], [4, 8],
                                       expansions=4, log=lines.append, sampler=Scripted(options=[0, 1, 2, 3]))
    assert set(out) == {"beam_prm", "dvts_prm"} and set(out["beam_prm"]) == {4, 8}
    assert out["dvts_prm"][4] is out["beam_prm"][4]  # one beam: DVTS is the same search
    assert out["dvts_prm"][8][0].n_subtrees == 2 and out["beam_prm"][8][0].n_beams == 2
    for b in (4, 8):  # problem 0 may spend B x 1000 tokens (never reached), problem 1 only B x 5
        roomy, tight = out["beam_prm"][b]
        assert not any(n.ended == "token_budget" for n in roomy.nodes) and roomy.nodes[roomy.chosen].ended == "eos"
        assert any(n.ended == "token_budget" for n in tight.nodes) and tight.tokens < roomy.tokens
    assert len(lines) == 4 and lines[0].startswith("B=4") and "accuracy" in lines[0]
    # by the names the table gives them; at one beam DVTS is the beam search itself, not a search of 0 s
    assert lines[0].startswith("B=4   beam search, PRM: accuracy") and lines[1].startswith("B=4   DVTS, PRM:")
    assert lines[1].endswith("(one beam: the beam search itself)") and lines[3].endswith(" s)")
    assert set(search.search_at_budgets(None, None, TablePRM(), [Answer1()], [[30]], [4], run_dvts=False,
                                        log=lines.append, sampler=Scripted())) == {"beam_prm"}


def test_search_at_budgets_refuses_what_it_cannot_cap():
    search_with = lambda problems, tokens, budgets: search.search_at_budgets(
        None, None, TablePRM(), problems, tokens, budgets, log=None, sampler=Scripted())
    with pytest.raises(ValueError, match="got 0 problems, 0 lists, 1 budgets"):
        search_with([], [], [4])
    with pytest.raises(ValueError, match="got 2 problems, 1 lists"):  # a zip would search one problem
        search_with([Answer1(), Answer1()], [[30]], [4])
    with pytest.raises(ValueError, match="0 budgets"):
        search_with([Answer1()], [[30]], [])
    with pytest.raises(ValueError, match="problem 1 has no candidate token counts"):  # its cap: a mean of nothing
        search_with([Answer1(), Answer1()], [[30], []], [4])
    with pytest.raises(ValueError, match=r"candidate_tokens\[1\]\[0\] \(problem 1, candidate 0\) must be an int"):
        search_with([Answer1(), Answer1()], [[30], [float("nan")]], [4])  # a NaN cap: never reached


def test_caps_end_beams_and_unreadable_prefixes_are_floored():
    policy = Scripted(options=[0, 1], n_steps=6)
    res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, max_steps=2,
                             sampler=policy)[0]
    assert max(n.depth for n in res.nodes) == 1 and res.nodes[res.chosen].ended == "step_cap"
    with pytest.warns(UserWarning, match="below one round"):
        res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, token_budget=30,
                                 sampler=Scripted(options=[0, 1], n_steps=6))[0]
    assert any(n.ended == "token_budget" for n in res.nodes)
    assert res.tokens <= 30 + 4 * 20  # stops expanding once spent: at most one round over
    assert policy.calls[0][2] == [160]  # the solution's token cap goes to the sampler
    res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=1, expansions=2, max_new_tokens=25,
                             sampler=Scripted(options=[0, 1], n_steps=6))[0]
    assert res.nodes[res.chosen].ended == "length" and max(n.depth for n in res.nodes) == 1

    class Blank(Scripted):
        def __call__(self, texts, n, caps, leads):
            rows = super().__call__(texts, n, caps, leads)
            rows[0][0] = Generation("  ", 1, "eos")  # a blank first step: the PRM never sees it
            return rows

    with pytest.warns(UserWarning, match="the PRM could not read 1 of 10 prefixes"):
        res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, sampler=Blank())[0]
    assert res.nodes[0].rewards is None and res.nodes[0].score == search.FLOOR and not res.nodes[0].kept
    read = {tuple(res.steps(n.id)) for n in res.nodes if n.rewards is not None}
    assert res.n_scored == len(read) == len({tuple(res.steps(n.id)) for n in res.nodes}) - 1  # the blank one: unread


def test_each_step_is_sampled_with_the_solution_tokens_its_path_has_left():
    """max_new_tokens caps the whole solution: a step after a path of t tokens may take max_new_tokens − t (only the
    first round's cap, the whole of it, was checked: every step could have run to the full cap)."""
    policy = Scripted(options=[0, 1])
    search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, max_new_tokens=40,
                       sampler=policy)
    first = len("Step 1: c0") + len(DEFAULT_DELIMITER)  # Scripted's token counts: every step k costs the same
    second = len(" 2: c0") + len(DEFAULT_DELIMITER)
    assert [caps for _, _, caps, _ in policy.calls] == [[40], [40 - first] * 2, [40 - first - second] * 2]


def test_a_step_that_reaches_the_token_cap_at_its_delimiter_ends_the_solution():
    """Left open, it was sampled again with a cap of 1 token: the solution went past max_new_tokens."""
    res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=1, expansions=1, max_new_tokens=4,
                             sampler=lambda texts, n, caps, leads: [[Generation("Step 1: c0", 4, "delimiter")] * n
                                                                    for _ in texts])[0]
    assert [(n.ended, n.n_tokens) for n in res.nodes] == [("length", 4)] and res.tokens == 4


def test_every_step_sampled_at_the_step_cap_ends_there_kept_or_pruned():
    """A step at depth max_steps − 1 ends the beam ("step_cap") when it is made, whether the beam keeps it or not:
    read only after the selection, the pruned ones were left open (unfinished, no reason given)."""
    res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, max_steps=2,
                             sampler=Scripted(options=[0, 1], n_steps=6))[0]
    last = [n for n in res.nodes if n.depth == 1]
    assert len(last) == 4 and any(n.pruned_at == 1 for n in last)
    assert all(n.finished and n.ended == "step_cap" for n in last)


def test_beam_search_refuses_a_token_budget_it_would_read_wrong():
    """A NaN budget was never reached (the problem searched uncapped), True capped at 1 token and 0 or -5 cut every
    beam after its first step: each is refused, naming the problem where the budgets are one per problem."""
    run = lambda budget: search.beam_search(None, None, TablePRM(), [Answer1(), Answer1()], n_beams=1, expansions=2,
                                            token_budget=budget, sampler=Scripted())
    for budget, message in ((float("nan"), r"token_budget must be a finite number, got nan"),
                            (True, r"token_budget must be a finite number, got True"),
                            (0, r"token_budget must be > 0 or None, got 0"),
                            ([30, float("nan")], r"token_budget\[1\] \(problem 1\) must be a finite number"),
                            ([30, -5], r"token_budget\[1\] \(problem 1\) must be > 0 or None, got -5"),
                            ("30", r"token_budget: expected a list of token budgets")):
        with pytest.raises(ValueError, match=f"beam_search: {message}"):
            run(budget)
    for budgets in ([30, 30, 30], [30]):  # one budget too few was an IndexError mid-search, one too many unread
        with pytest.raises(ValueError, match=f"beam_search: 2 problems but {len(budgets)} token budgets"):
            run(budgets)
    with pytest.warns(UserWarning, match="below one round"):
        assert [r.tokens for r in run([30, None])] == [32, 90] and [r.tokens for r in run(30.5)] == [32, 32]
    with pytest.warns(UserWarning, match="below one round"):  # a first round that spends the budget exactly
        assert [r.tokens for r in run(32)] == [32, 32]


def test_a_nan_from_the_prm_is_refused_naming_the_problem_and_node():
    class NanOnSecond(TablePRM):
        def score_solutions(self, prompts, step_lists):
            return [[float("nan") if p == "b:" else 1.0 for _ in steps] for p, steps in zip(prompts, step_lists)]

    class Prompted(Answer1):
        def __init__(self, prompt):
            self.prompt = prompt
    with pytest.raises(ValueError, match=r"beam_search: problem 1, node 0 \(depth 0\): the PRM's reward of step 0 "
                                         r"must be a finite number, got nan"):
        search.beam_search(None, None, NanOnSecond(), [Prompted("a:"), Prompted("b:")], n_beams=1, expansions=2,
                           sampler=Scripted())


def test_a_problem_searches_the_same_alone_or_beside_others():
    """Token counts along a path are the problem's own: node ids restart at 0 in every problem, so a count keyed
    by the id alone let one problem's long steps cut another's short path, or lift its cap."""
    class Prompted:
        def __init__(self, prompt):
            self.prompt = prompt

    def sampler(texts, n, caps, leads):  # problem "a" writes 1 token a step, "b" 40
        out = []
        for text, cap in zip(texts, caps):
            per = 1 if text.startswith("a") else 40
            out.append([Generation("Step x", min(per, cap), "delimiter" if per <= cap else "length")] * n)
        return out

    def run(prompts):
        results = search.beam_search(None, None, TablePRM(), [Prompted(p) for p in prompts], n_beams=2, expansions=2,
                                     max_steps=6, max_new_tokens=100, sampler=sampler, answer_pattern=None)
        return {prompts[r.problem_index]: (r.nodes[r.chosen].ended, r.nodes[r.chosen].depth, r.tokens)
                for r in results}

    alone = {**run(["a:"]), **run(["b:"])}
    assert alone["a:"][:2] == ("step_cap", 5) and alone["b:"][0] == "length"
    assert run(["a:", "b:"]) == alone and run(["b:", "a:"]) == alone


def test_any_task_problem_works_gsm8k_shaped():
    chat = "<|im_start|>user\nSolve ...\n\nA farmer has 3 cows.<|im_end|>\n<|im_start|>assistant\n"
    problem = GSM8KProblem("A farmer has 3 cows.", "1", chat)
    prm = TablePRM({0: -1.0, 1: 2.0, 2: 0.5, 3: 1.0})
    res = search.beam_search(None, None, prm, [problem], n_beams=2, expansions=2, sampler=Scripted())[0]
    assert problem.is_correct(res.solution) and all(p == chat for p, _ in prm.scored)
    assert search_report.tree_labels(problem, res) == {n.id: None for n in res.nodes}  # no checker on GSM8K
    assert search_report.pruning_report([problem], [res]) is None
    with pytest.raises(ValueError, match="prompt"):
        search.beam_search(None, None, prm, [object()], sampler=Scripted())


@pytest.fixture(scope="module")
def tiny_base():
    return tiny_models.load_tiny_base()


def _greedy_count(model, tokenizer, prompt, delimiter, cap):
    """A direct count: one token at a time, greedy, until EOS, the delimiter after a non-blank step, or the cap."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    new = []
    with torch.no_grad():
        while len(new) < cap:
            nxt = int(model(input_ids=torch.tensor([ids[0].tolist() + new])).logits[0, -1].argmax())
            new.append(nxt)
            text = tokenizer.decode(new, skip_special_tokens=True)
            if nxt == tokenizer.eos_token_id or (delimiter in text and text.split(delimiter)[0].strip()):
                break
    return len(new), tokenizer.decode(new, skip_special_tokens=True)


def test_generate_stops_at_the_delimiter_and_counts_tokens_exactly(tiny_base):
    model, tok = tiny_base
    problems = bestofn.held_out_problems("tiny", 3)
    first = [p.prompt for p in problems]
    second = [p.prompt + "Step 1: " + f"{p.start} {p.ops[0][0]} {p.ops[0][1]} = {p.values[1]}" + DEFAULT_DELIMITER
              for p in problems]
    texts, caps = first + second + [problems[0].prompt], [160] * 6 + [5]
    gens = step_generation.generate(model, tok, texts, 1, temperature=0.0, max_new_tokens=caps, batch_size=8,
                                    leads=[""] * 3 + [DEFAULT_DELIMITER] * 3 + [""])
    for text, cap, (g,) in zip(texts, caps, gens):
        count, decoded = _greedy_count(model, tok, text, DEFAULT_DELIMITER, cap)
        assert g.n_tokens == count  # same batch of rows finishing at different times: padding is not counted
        assert decoded.startswith(g.text) and (g.stop != "delimiter" or decoded == g.text + DEFAULT_DELIMITER + g.rest)
    assert [g[0].stop for g in gens[:3]] == ["delimiter"] * 3 and {g[0].stop for g in gens[3:6]} <= {"delimiter", "eos"}
    assert gens[-1][0].stop == "length" and gens[-1][0].n_tokens == 5
    assert gens[0][0].text.startswith("Step 1:") and DEFAULT_DELIMITER not in gens[0][0].text


def test_a_delimiter_written_at_once_closes_the_step_its_lead_began(tiny_base):
    """A continuation of a step already begun (its ``lead``) that writes the delimiter at once ends that step there,
    adding nothing; with no lead the same delimiter closes no step, and the next one is waited for."""
    model, tok = tiny_base
    problem = next(p for p in bestofn.held_out_problems("tiny", 20) if len(p.ops) >= 3)
    step = f"Step 1: {problem.start} {problem.ops[0][0]} {problem.ops[0][1]} = {problem.values[1]}"
    (begun,), (unbegun,) = step_generation.generate(model, tok, [problem.prompt + step] * 2, 1, leads=[step, ""],
                                                    temperature=0.0, batch_size=2)
    assert (begun.text, begun.stop) == ("", "delimiter")
    assert unbegun.stop == "delimiter" and unbegun.text.startswith(DEFAULT_DELIMITER + " 2: ")


@pytest.mark.parametrize("caps", [[3, 40], [1, 5]])  # the first new token is checked too: a cap of 1 ran to 2
def test_whole_solutions_with_caps_of_their_own_stop_each_at_its_cap(tiny_base, caps):
    model, tok = tiny_base
    prompt = bestofn.held_out_problems("tiny", 1)[0].prompt
    gens = step_generation.generate(model, tok, [prompt, prompt], 1, delimiter=None, temperature=0.0,
                                    max_new_tokens=caps, batch_size=2)
    assert (gens[0][0].n_tokens, gens[0][0].stop) == (caps[0], "length")
    assert gens[1][0].n_tokens > caps[0] and gens[1][0].text.startswith(gens[0][0].text)


def test_a_delimiter_written_a_character_a_token_still_ends_the_step(tiny_base, monkeypatch):
    """The policy may write the delimiter in more tokens than its own encoding (here one per character): the tail
    read for it is that long too, so the step still ends at its last character."""
    import torch

    model, tok = tiny_base
    step = "Step 1: 5 + 7 = 12"
    spelled = [tok(c, add_special_tokens=False)["input_ids"] for c in DEFAULT_DELIMITER]
    assert all(len(ids) == 1 for ids in spelled)
    written = tok(step, add_special_tokens=False)["input_ids"] + [ids[0] for ids in spelled]
    script = written + tok(" 2: 12 - 1 = 11", add_special_tokens=False)["input_ids"]

    def scripted_generate(input_ids, stopping_criteria, max_new_tokens, **kw):  # the script, a token at a time
        for t in script[:max_new_tokens]:
            input_ids = torch.cat([input_ids, torch.full((len(input_ids), 1), t)], 1)
            if stopping_criteria[0](input_ids).all():
                break
        return input_ids

    monkeypatch.setattr(model, "generate", scripted_generate)
    (g,), = step_generation.generate(model, tok, [bestofn.held_out_problems("tiny", 1)[0].prompt], 1)
    assert (g.text, g.stop, g.n_tokens, g.rest) == (step, "delimiter", len(written), "")


def test_generate_seeds_torch_with_seed_0_too(tiny_base):
    """seed=0 (the default) seeds torch as any other seed: the same samples as torch seeded 0 by hand."""
    import torch

    model, tok = tiny_base
    prompt = bestofn.held_out_problems("tiny", 1)[0].prompt
    kw = dict(temperature=5.0, max_new_tokens=12)  # hot: samples that tell the seeds apart
    torch.manual_seed(1)  # a generator left elsewhere
    seeded = step_generation.generate(model, tok, [prompt], 2, seed=0, **kw)
    assert seeded != step_generation.generate(model, tok, [prompt], 2, seed=1, **kw)
    torch.manual_seed(0)
    assert seeded == step_generation.generate(model, tok, [prompt], 2, seed=None, **kw)


def test_generate_puts_the_tokenizers_padding_side_back(tiny_base, monkeypatch):
    """generate pads on the left while it samples, and leaves the tokenizer's own side as it found it."""
    model, tok = tiny_base
    monkeypatch.setattr(tok, "padding_side", "right")
    step_generation.generate(model, tok, [bestofn.held_out_problems("tiny", 1)[0].prompt], max_new_tokens=2)
    assert tok.padding_side == "right"


def test_beam_search_on_the_tiny_base_counts_what_generate_made(tiny_base):
    """Every token ``generate`` returned that is not padding is counted, once, by the problem that asked for it."""
    model, tok = tiny_base
    problems = bestofn.held_out_problems("tiny", 4)
    made = []
    original = model.generate

    def recording_generate(**kw):
        out = original(**kw)
        made.append(int((out[:, kw["input_ids"].shape[1]:] != tok.pad_token_id).sum()))
        return out

    class CheckerPRM:  # the gold checker as a PRM: +4 for a right step, -4 for a wrong one
        config = type("C", (), {"aggregation": "min", "step_delimiter": DEFAULT_DELIMITER})()

        def score_solutions(self, prompts, step_lists):
            out = []
            for prompt, steps in zip(prompts, step_lists):
                text = "".join(steps)
                labels = search_report.prefix_step_labels(toyworld.parse_prompt(prompt), text, "Answer:" in text)
                out.append([4.0 if ok else -4.0 for ok in labels])
            return out

    model.generate = recording_generate
    try:
        results = search.beam_search(model, tok, CheckerPRM(), problems, n_beams=1, expansions=4, seed=0)
    finally:
        del model.generate
    assert sum(r.tokens for r in results) == sum(made) > 0
    for p, r in zip(problems, results):
        assert extract_steps(r.solution) == r.steps() and r.solution.rstrip().split("\n")[-1].startswith("Answer:")
        assert all(n.stop in step_generation.STOPS for n in r.nodes)
        assert p.step_labels(r.solution) == [True] * len(r.steps())  # a perfect verifier keeps right steps only
    assert search_report.chosen_accuracy(problems, results) == 1.0
    labels = search_report.tree_labels(problems[0], results[0])
    assert all(labels[n.id] for n in results[0].path())
    report = search_report.pruning_report(problems, results)
    assert report["right_step_pruned"] == 0 and report["kept_right"] == 1.0 and report["rounds"] >= len(problems)
    with pytest.raises(ValueError, match="pruning_report: 4 problems but 3 search results"):  # was a report on 3
        search_report.pruning_report(problems, results[:3])
    with pytest.raises(ValueError, match="pick_example: 3 problems but 4 search results"):  # was an IndexError
        search_report.pick_example(problems[:3], results)
    with pytest.raises(ValueError, match="pick_example: 4 problems but 3 search results"):  # was a pick among 3
        search_report.pick_example(problems, results[:3])


def test_a_beam_cut_by_the_search_keeps_its_right_last_step_right():
    """A beam stopped by its problem's token budget or the step cap has a whole last step and no room for the
    answer line: the checker reads it as a prefix, so the pruning report does not count a right step as wrong (it
    called every step of a gold path wrong, and the round a verifier miss)."""
    problem = next(p for p in toyworld.make_problems(20, "test", seed=0) if len(p.ops) >= 3)
    gold = extract_steps(problem.gold_solution)

    def gold_steps(texts, n, max_new_tokens, leads):
        out = []
        for text, lead in zip(texts, leads):
            k = text[len(problem.prompt):].count(DEFAULT_DELIMITER)
            step = gold[k][len(lead):]
            last = k == len(gold) - 1
            out.append([Generation(step, 5, "eos" if last else "delimiter")] * n)
        return out

    for cut in (dict(token_budget=12), dict(max_steps=len(gold) - 1)):
        res = search.beam_search(None, None, TablePRM(), [problem], n_beams=1, expansions=2, sampler=gold_steps,
                                 **cut)[0]
        assert {n.ended for n in res.nodes if n.finished} <= {"token_budget", "step_cap"}
        assert all(search_report.tree_labels(problem, res).values()), cut
        report = search_report.pruning_report([problem], [res])
        assert report["kept_right"] == 1.0 and report["right_step_pruned"] == 0, cut


def test_a_prefix_after_a_wrong_step_keeps_its_last_step_wrong():
    """Unfinished, the last step is not wrong for lacking an answer line, but only on a right path: after a slip it
    still cannot reach the answer."""
    problem = toyworld.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    right, slipped = "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36", "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 39"
    assert search_report.prefix_step_labels(problem, right, finished=False) == [True, True]
    assert search_report.prefix_step_labels(problem, slipped, finished=False) == [False, False]
    assert search_report.prefix_step_labels(problem, right, finished=True) == [True, False]


def _cut_search():
    """A hand-made tree on 7 + 5 * 3: a right first step kept, a wrong one pruned, and under the right one a right
    second step the token budget cut before its answer line (finished, ended "token_budget")."""
    nodes = [search.Node(0, None, 0, "Step 1: 7 + 5 = 12", 5, "delimiter", False, kept=True),
             search.Node(1, 0, 1, "\n\nStep 2: 12 * 3 = 36", 5, "length", True, kept=True, ended="token_budget"),
             search.Node(2, None, 0, "Step 1: 7 + 5 = 13", 5, "delimiter", False, pruned_at=0)]
    return toyworld.Problem(7, (("+", 5), ("*", 3))), search.SearchResult(0, nodes, chosen=1)


def test_tree_labels_read_a_beam_the_budget_cut_as_a_prefix():
    problem, res = _cut_search()
    assert search_report.tree_labels(problem, res) == {0: True, 1: True, 2: False}


def test_pruning_report_counts_no_policy_miss_where_a_right_step_was_sampled_and_kept():
    problem, res = _cut_search()
    assert search_report.pruning_report([problem], [res]) == {
        "kept": 2, "kept_right": 1.0, "pruned": 1, "pruned_right": 0.0, "rounds": 2, "no_right_step": 0,
        "right_step_pruned": 0}


def test_pick_example_takes_the_first_of_equally_telling_problems():
    problem, res = _cut_search()
    assert search_report.pick_example([problem] * 3, [res] * 3) == 0


def test_chosen_accuracy_is_the_share_of_problems_whose_chosen_solution_is_right():
    problem = toyworld.Problem(7, (("+", 5),))

    def chose(text):
        return search.SearchResult(0, [search.Node(0, None, 0, text, 5, "eos", True, kept=True)], chosen=0)

    results = [chose("Step 1: 7 + 5 = 12\n\nAnswer: 12"), chose("Step 1: 7 + 5 = 13\n\nAnswer: 13")]
    assert search_report.chosen_accuracy([problem, problem], results) == 0.5
    assert search_report.chosen_accuracy([problem], results[:1]) == 1.0


def test_sample_candidates_are_the_kits_samples_with_counts(tiny_base):
    model, tok = tiny_base
    problems = bestofn.held_out_problems("tiny", 2)
    made, original = [], model.generate

    def recording_generate(**kw):
        out = original(**kw)
        made.extend((out[:, kw["input_ids"].shape[1]:] != tok.pad_token_id).sum(1).tolist())
        return out

    model.generate = recording_generate
    try:
        sols, counts = step_generation.sample_candidates(model, tok, problems, 3, batch_size=4, seed=1)
    finally:
        del model.generate
    assert [c for row in counts for c in row] == made  # row by row: everything generate made but its padding
    assert sols == policy_eval.sample_solutions(model, tok, problems, n=3, batch_size=4, seed=1, progress=False)
    assert all(c >= len(tok(s, add_special_tokens=False)["input_ids"]) for row, cs in zip(sols, counts)
               for s, c in zip(row, cs))


def test_sample_candidates_refuse_a_prompt_the_tokenizer_cannot_spell(tiny_tokenizer, monkeypatch):
    """Notebook 06 refused a prompt the tiny tokenizer reads as <unk> (``policy_eval.sample_solutions``); notebook 07
    sampled it, and the policy answered another problem, without a word."""
    def sampled(*args, **kwargs):
        raise AssertionError("sampled a prompt the tokenizer cannot spell")

    monkeypatch.setattr(step_generation, "generate", sampled)
    spelled, odd = Answer1(), Answer1()
    odd.prompt = "Q: pick one, é.\n"
    with pytest.raises(ValueError, match=re.escape("sample_candidates: problems[1]: the tokenizer reads the characters "
                                                   "'é' of its prompt as <unk>")):
        step_generation.sample_candidates(None, tiny_tokenizer, [spelled, odd], 2)


def _comparison_inputs():
    """Two toy problems, four candidates each (one right), their token counts, PRM and ORM scores (the PRM ranks
    the right one first, the ORM last) and a beam search that chose the right solution of each."""
    problems = bestofn.held_out_problems("tiny", 2)
    right = [p.gold_solution for p in problems]
    wrong = [toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(0)) for p in problems]
    candidates = [[w, r, w, w] for r, w in zip(right, wrong)]
    tokens = [[10, 20, 30, 40], [10, 10, 10, 10]]
    prm = [[[-2.0], [3.0], [-2.0], [-2.0]] for _ in problems]
    orm = [[1.0, 0.0, 1.0, 1.0] for _ in problems]
    beam = [search.SearchResult(0, [search.Node(0, None, 0, r, 50, "eos", True)], 0, tokens=50) for r in right]
    return problems, candidates, tokens, prm, orm, beam


def test_compare_at_budgets_and_figures(tmp_path):
    problems, candidates, tokens, prm, orm, beam = _comparison_inputs()
    table = search.compare_at_budgets(problems, candidates, tokens, prm, orm, {"beam_prm": {4: beam}}, [2, 4], "min",
                                      n_resamples=5)
    assert list(table) == ["2", "4"] and "beam_prm" not in table["2"]
    assert list(search.compare_at_budgets(problems, candidates, tokens, prm, orm, {"beam_prm": {4: beam}}, [4, 2],
                                          "min", n_resamples=5).items()) == list(table.items())  # in order of B
    assert table["4"]["best_of_n_prm"] == 1.0 and table["4"]["best_of_n_orm"] == 0.0 and table["4"]["beam_prm"] == 1.0
    assert table["4"]["tokens"]["best_of_n_prm"] == table["4"]["token_budget"] == 4 * 140 / 8
    assert table["4"]["tokens"]["beam_prm"] == 50 and table["2"]["token_budget"] == 2 * 140 / 8
    text = search_report.format_comparison(table)
    # each row by the name the plot's legend gives it (display_names.METHOD_NAMES), not its metrics key:
    # "beam search, PRM"
    assert "beam_prm" not in text and [line[:17].rstrip() for line in text.splitlines()] == [
        "method", "majority vote", "best-of-N, ORM", "best-of-N, PRM", "beam search, PRM", "(token budget)"], text
    assert len({len(line) for line in text.splitlines()}) == 1, text  # the longest name keeps the columns in line
    # accuracies in percent, as the differences under the table (in points) and the text: not fractions
    beam_row = next(line for line in text.splitlines() if line.startswith("beam search, PRM"))[17:].split()
    assert beam_row == ["100.0%", "50"], text  # at B = 2 the beam did not run: blank, not "nan"
    each = search.compare_at_budgets(problems, candidates, tokens, prm, orm, {"beam_prm": {4: beam}}, [2, 4], "min",
                                     n_resamples=5, per_problem=True)
    assert each["4"]["beam_prm"] == [1.0, 1.0] and each["4"]["best_of_n_orm"] == [0.0, 0.0]
    assert each["4"]["tokens"] == table["4"]["tokens"] and len(each["2"]["majority"]) == 2
    means = bestofn.mean_accuracies(each)  # tokens, budgets and reads pass through; lists become their means
    assert {b: {k: v for k, v in row.items() if isinstance(v, float)} for b, row in means.items()} == {
        b: {k: pytest.approx(v) for k, v in row.items() if isinstance(v, float)} for b, row in table.items()}
    assert all(means[b][k] == table[b][k] for b in table for k in ("tokens", "token_budget", "prm_scored"))
    for per_problem in (True, False):  # per problem, a search on fewer problems was scored on those, silently
        with pytest.raises(ValueError, match=r"searches\['beam_prm'\] at B=4 has 1 results for 2 problems"):
            search.compare_at_budgets(problems, candidates, tokens, prm, orm, {"beam_prm": {4: beam[:1]}}, [4], "min",
                                      n_resamples=5, per_problem=per_problem)
        # solution texts in place of SearchResults: named under compare_at_budgets, the search and B, per problem or
        # not (an AttributeError per problem, and search_report.chosen_accuracy's message otherwise)
        with pytest.raises(ValueError, match=r"compare_at_budgets: searches\['beam_prm'\] at B=4: results\[0\] is a "
                                             r"str: compare_at_budgets takes SearchResults"):
            search.compare_at_budgets(problems, candidates, tokens, prm, orm,
                                      {"beam_prm": {4: [r.solution for r in beam]}}, [4], "min", n_resamples=5,
                                      per_problem=per_problem)

    # token counts that do not pair up with the candidates set the best-of-B tokens from other solutions, silently;
    # a budget of 2.5 was cast to 2 and True to 1
    shape = r"candidates and candidate_tokens differ in shape \(one count per solution\): "
    for kw, message in ((dict(candidate_tokens=[[10, 20]]), shape + "2 problems and 1 lists of counts"),
                        (dict(candidate_tokens=[tokens[0], [10, 10]]),
                         shape + "problem 1 has 4 candidates and 2 counts"),
                        (dict(candidate_tokens=[tokens[0], [10, float("nan"), 10, 10]]),
                         r"candidate_tokens\[1\]\[1\] \(problem 1, candidate 1\) must be an int >= 1, got nan"),
                        (dict(candidate_tokens=[[True, 20, 30, 40], tokens[1]]), r"candidate_tokens\[0\]\[0\]"),
                        (dict(budgets=[2.5, 4]), r"budgets\[0\] must be an int >= 1, got 2.5"),
                        (dict(budgets=[4, True]), r"budgets\[1\] must be an int >= 1, got True")):
        args = {"candidate_tokens": tokens, "budgets": [2, 4], **kw}
        with pytest.raises(ValueError, match=f"compare_at_budgets: {message}"):
            search.compare_at_budgets(problems, candidates, args["candidate_tokens"], prm, orm, {}, args["budgets"],
                                      "min", n_resamples=5)

    class NoKinds:  # a task's verdict without error kinds: a prefix's last step is unknown, not wrong
        def verdict(self, text):
            return Verdict(step_labels=[False], first_error=0, answer_correct=False, steps=[text])

        def step_labels(self, text):
            return [False]
    assert search_report.prefix_step_labels(NoKinds(), "Step 1: 1 + 1 = 2", finished=False) == [None]
    fig = viz.plot_test_time_compute(table, save_to=tmp_path / "07_test_time_compute.png")
    assert fig is not None and (tmp_path / "07_test_time_compute.png").read_bytes()[:8] == PNG

    policy = Scripted(options=[0, 1, 2, 3], seed=3)
    res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, sampler=policy)[0]
    labels = {n.id: n.step.endswith(("c1", "c1\n\nAnswer: 1")) for n in res.nodes}
    viz.plot_beam_tree(res, labels, save_to=tmp_path / "07_beam_explorer.png")
    blob = (tmp_path / "07_beam_explorer.png").read_bytes()
    assert blob[:8] == PNG and len(blob) > 5_000
    assert search_report.pick_example([Answer1()] * 2, [res, res]) in (0, 1)


def test_format_comparison_orders_the_budgets_by_number():
    def at(acc, tokens, budget):
        return {"beam_prm": acc, "tokens": {"beam_prm": tokens}, "token_budget": budget}

    head = search_report.format_comparison({"16": at(0.5, 900.0, 1000.0), "4": at(0.25, 200.0, 250.0)}).splitlines()[0]
    assert head.index("B=4 acc") < head.index("B=16 acc")


def test_compare_at_budgets_counts_what_the_prm_read_per_method():
    """prm_scored (metrics.json, the README's "prefixes the PRM scored"): best-of-B reads its B solutions, majority
    and the ORM none, a search its results' n_scored per problem."""
    problems, candidates, tokens, prm, orm, beam = _comparison_inputs()
    for r in beam:
        r.n_scored = 3
    table = search.compare_at_budgets(problems, candidates, tokens, prm, orm, {"beam_prm": {4: beam}}, [2, 4], "min",
                                      n_resamples=5)
    assert table["2"]["prm_scored"] == {"majority": 0.0, "best_of_n_orm": 0.0, "best_of_n_prm": 2.0}
    assert table["4"]["prm_scored"] == {"majority": 0.0, "best_of_n_orm": 0.0, "best_of_n_prm": 4.0, "beam_prm": 3.0}


class _PickOne:
    prompt = "Q: pick one.\n"

    def is_correct(self, s):
        return s.rstrip().endswith("Answer: 1")

    def step_labels(self, s):  # a step is wrong where it answers 0
        return ["Answer: 0" not in step for step in extract_steps(s)]


def _search_that_pushes_out_a_finished_beam():
    """Beam search (2 beams, 2 expansions) where one first step answers 0 at once, kept at depth 0, and the others
    go on and score higher, pushing it out at depth 1."""
    def sampler(texts, n, caps, leads):
        first = ["Step 1: c0\n\nAnswer: 0"] + [f"Step 1: c{j}" for j in range(1, n)]
        return [[Generation(first[j], 5, "eos" if j == 0 else "delimiter") if t.count(DEFAULT_DELIMITER) == 0
                 else Generation(f"{DEFAULT_DELIMITER}Step 2: c{j}\n\nAnswer: 1", 5, "eos") for j in range(n)]
                for t in texts]

    class PRM:
        config = type("C", (), {"aggregation": "last", "step_delimiter": DEFAULT_DELIMITER})()

        def score_solutions(self, prompts, step_lists):
            return [[{"0": 0.5, "1": 2.0, "2": -1.0, "3": -2.0}[s.split(": c")[1][0]] + (k > 0) for k, s in
                     enumerate(steps)] for steps in step_lists]

    return search.beam_search(None, None, PRM(), [_PickOne()], n_beams=2, expansions=2, sampler=sampler)[0]


def test_beam_tree_draws_a_finished_beam_pushed_out_later_as_pruned():
    res = _search_that_pushes_out_a_finished_beam()
    pushed_out = res.nodes[0]
    assert pushed_out.finished and pushed_out.kept and pushed_out.pruned_at is not None  # kept at depth 0, then out
    ax = viz.plot_beam_tree(res).axes[0]
    to_it = [ln for ln in ax.lines if list(ln.get_xdata()) == [0, 1] and ln.get_ydata()[1] == ax.collections[1]
             .get_offsets()[0][1]]
    assert len(to_it) == 1 and to_it[0].get_linestyle() == "--"  # drawn as pruned, as pruning_report counts it
    assert ax.collections[1].get_alpha() == 0.45


def test_generate_checks_its_arguments_as_sample_solutions_does(tiny_base):
    model, tok = tiny_base
    problems = bestofn.held_out_problems("tiny", 2)
    for kw, message in ((dict(n=0), "n must be an int >= 1"), (dict(n=1, temperature=float("nan")), "temperature"),
                        (dict(n=1, batch_size=0), "batch_size must be an int >= 1")):
        with pytest.raises(ValueError, match=f"generate: {message}"):
            step_generation.sample_candidates(model, tok, problems, **kw)
    with pytest.raises(ValueError, match="generate: expected a list of prompts, got one str"):
        step_generation.generate(model, tok, problems[0].prompt)
    texts, context = [p.prompt for p in problems], model.config.max_position_embeddings
    for caps, message in ((160.0, r"max_new_tokens must be an int >= 1, got 160.0"),  # was a TypeError
                          ([160, 2.5], r"max_new_tokens\[1\] \(text 1\) must be an int >= 1, got 2.5"),  # 3 tokens
                          ([True, 160], r"max_new_tokens\[0\] \(text 0\) must be an int >= 1, got True"),  # 1 token
                          ([160], r"2 texts but 1 max_new_tokens"), ([160] * 3, r"2 texts but 3 max_new_tokens"),
                          ([1, context], rf"prompt 0 is \d+ tokens; with max_new_tokens={context} that is")):
        with pytest.raises(ValueError, match=f"generate: {message}"):
            step_generation.generate(model, tok, texts, max_new_tokens=caps)
    with pytest.raises(ValueError, match="generate: leads: expected a list of leads .*, got one str"):  # 1 char a text
        step_generation.generate(model, tok, texts * 3, leads=DEFAULT_DELIMITER)
    with pytest.raises(ValueError, match="generate: 2 texts but 3 leads"):
        step_generation.generate(model, tok, texts, leads=[""] * 3)
    with pytest.raises(ValueError, match="generate: delimiter must be a non-empty string or None"):
        step_generation.generate(model, tok, texts, delimiter="")


def test_candidate_costs_and_the_lines_notebook_07_prints_of_it_and_of_its_example():
    problems = bestofn.held_out_problems("tiny", 2)
    right = [p.gold_solution for p in problems]
    wrong = [toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(0)) for p in problems]
    candidates = [[right[0], wrong[0], wrong[0]], [wrong[1], right[1], right[1]]]
    tokens = [[60, 70, 80], [50, 55, 45]]
    summary = search_report.candidate_costs(problems, candidates, tokens)
    assert summary == {"solutions": 6, "right": 0.5, "tokens_per_solution": 60.0, "min_tokens": 45, "max_tokens": 80}
    assert search_report.format_candidate_costs(summary, [4, 16], seconds=16.6) == (
        "6 solutions sampled in 17 s, 50.0% of them right; 60.0 generated tokens per solution (min 45, max 80)\n"
        "token budget per problem: B=4: 240, B=16: 960")
    with pytest.raises(ValueError, match="candidate_costs: candidates and candidate_tokens differ in shape .*"
                                         "problem 0 has 3 candidates and 2 counts"):
        search_report.candidate_costs(problems, candidates, [[60, 70], [50, 55, 45]])
    for bad in (float("nan"), True, 0):  # a NaN mean, True counted as 1 token (and printed as the min)
        with pytest.raises(ValueError, match=r"candidate_costs: candidate_tokens\[1\]\[2\] \(problem 1, "):
            search_report.candidate_costs(problems, candidates, [tokens[0], [50, 55, bad]])
    with pytest.raises(ValueError, match="candidate_costs: 2 problems but 1 lists of solutions"):
        search_report.candidate_costs(problems, candidates[:1], tokens[:1])
    res = search.SearchResult(0, [search.Node(0, None, 0, right[0], 50, "eos", True)], 0, tokens=305)
    assert search_report.format_example(problems[0], res, candidates[0], tokens[0], 4) == (
        f"{problems[0].prompt}{right[0]}\n\nright: True; 1 steps sampled, 305 tokens (its best-of-4 budget: 280); "
        "right among its 3 sampled solutions: 1")
    with pytest.raises(ValueError, match="example_report: 3 candidates and 2 token counts"):
        search_report.format_example(problems[0], res, candidates[0], tokens[0][:2], 4)
    for budget, counts, message in ((True, tokens[0], "budget must be an int >= 1, got True"),
                                    (4, [60, float("nan"), 80], r"candidate_tokens\[1\] \(candidate 1\) must be"),
                                    (0, tokens[0], "budget must be an int >= 1, got 0")):  # was a cap of 0 tokens
        with pytest.raises(ValueError, match=f"example_report: {message}"):  # was a NaN cap, a best-of-True budget
            search_report.example_report(problems[0], res, candidates[0], counts, budget)
    # what notebook 07 records of its explorer's problem: a right step kept, a wrong one pruned at P 0.007
    nodes = [search.Node(0, None, 0, right[0], 50, "eos", True, rewards=[1.0], score=1.0, kept=True),
             search.Node(1, None, 0, wrong[0], 40, "eos", True, rewards=[-5.0], score=-5.0, pruned_at=0)]
    res = search.SearchResult(1, nodes, 0, tokens=305)
    p = lambda x: pytest.approx(1 / (1 + 2.718281828459045 ** -x))
    assert search_report.example_report(problems[0], res, candidates[0], tokens[0], 4) == {
        "problem": 2, "budget": 4, "right": True, "steps": 2, "tokens": 305, "token_cap": 280.0,
        "right_candidates": 1, "last_step_p": p(1.0), "score_p": p(1.0), "wrong_steps": 1,
        "wrong_step_p_max": p(-5.0), "right_kept_at_every_depth": True}
    unchecked = search_report.example_report(Answer1(), res, ["Answer: 1"], [10], 2)  # a task without a step checker
    assert unchecked["wrong_steps"] is unchecked["wrong_step_p_max"] is unchecked["right_kept_at_every_depth"] is None


def test_the_examples_score_p_is_the_probability_its_aggregation_stands_for():
    """``product`` scores a beam log Π σ(r_k), a log-probability: σ of it (0.406 for three steps at reward 2) was
    no probability; exp gives σ(2)³ = 0.683, the chance that all three steps are right. ``min`` and ``last`` are
    log-odds (σ of the score); a function of one's own has no known scale (None)."""
    for aggregation, p_all in (("product", 1 / (1 + math.exp(-2)) ** 3), ("min", 1 / (1 + math.exp(-2))),
                               ("last", 1 / (1 + math.exp(-2)))):
        res = search.beam_search(None, None, TablePRM({0: 2.0, 1: 2.0}), [Answer1()], n_beams=1, expansions=2,
                                 aggregation=aggregation, sampler=Scripted())[0]
        assert res.aggregation == aggregation and len(res.steps()) == 3
        report = search_report.example_report(Answer1(), res, ["Answer: 1"], [10], 2)
        assert report["score_p"] == pytest.approx(p_all)
        assert report["last_step_p"] == pytest.approx(1 / (1 + math.exp(-2)))
    res = search.beam_search(None, None, TablePRM({0: 2.0, 1: 2.0}), [Answer1()], n_beams=1, expansions=2,
                             aggregation=lambda r: sum(r), sampler=Scripted())[0]
    assert search_report.example_report(Answer1(), res, ["Answer: 1"], [10], 2)["score_p"] is None


def test_a_prefix_is_scored_as_best_of_n_scores_a_candidate():
    """One rule for a candidate's score and a search's prefix's (``bestofn.aggregate_one``): a reward that float32
    makes inf scored the search's prefix FLOOR, and best-of-N's candidate inf, above every other; a NaN is refused
    by both, named."""
    big = TablePRM({0: 1e39, 1: 1.0})
    res = search.beam_search(None, None, big, [Answer1()], n_beams=2, expansions=1, sampler=Scripted())[0]
    for node in res.nodes:
        assert node.score == bestofn.aggregate([[node.rewards]], "min")[0][0]
    assert res.nodes[0].score == bestofn.FLOOR and res.nodes[1].score == 1.0
    assert bestofn.aggregate([[[1e39], [0.5, 1e39]]], "min") == [[bestofn.FLOOR, 0.5]]
    with pytest.raises(ValueError, match=r"beam_search: problem 0, node 0 \(depth 0\): the PRM's reward of step 0 "
                                         "must be a finite number"):
        search.beam_search(None, None, TablePRM({0: float("nan"), 1: 1.0}), [Answer1()], n_beams=2, expansions=1,
                           sampler=Scripted())
    with pytest.raises(ValueError, match=r"aggregate: step_rewards\[0\]\[0\]\[0\] .*must be a finite number, got nan"):
        bestofn.aggregate([[[float("nan")]]], "min")


def test_n_test_time_problems_pairs_that_ran_and_the_record_of_notebook_07():
    tiny, smoke = get_profile("tiny"), get_profile("smoke")
    assert search.n_test_time_problems(tiny) == tiny.n_test_time_problems == 50
    assert search.n_test_time_problems(tiny, 150) == 150
    assert smoke.n_test_time_problems is None and search.n_test_time_problems(smoke) == max(
        1, smoke.n_eval_problems // 5)  # notebook 06's fifth
    with pytest.raises(ValueError, match="n_test_time_problems: requested must be an int >= 1 or None"):
        search.n_test_time_problems(tiny, 0)

    pairs = [("beam_prm", "best_of_n_prm"), ("dvts_prm", "beam_prm"), ("best_of_n_orm", "majority")]
    assert search.pairs_that_ran(pairs) == pairs
    assert search.pairs_that_ran(pairs, run_dvts=False) == [pairs[0], pairs[2]]

    problems = [Answer1(), Answer1()]  # no step checker: no pruning report
    beam = [search.SearchResult(i, [search.Node(0, None, 0, "Answer: 1", 5, "eos", True)], 0, tokens=5)
            for i in range(2)]
    table = {"4": {"majority": 0.5, "beam_prm": 1.0, "tokens": {"beam_prm": 5.0}}}
    sampled = {"solutions": 8, "right": 0.25, "tokens_per_solution": 6.5, "min_tokens": 5, "max_tokens": 8}
    record = search_report.comparison_record(table, problems, {"beam_prm": {4: beam}, "dvts_prm": {4: beam}}, sampled,
                                             {"problem": 1}, {4: (1, 4)})
    assert record == {**table, "n_problems": 2, "tokens_per_solution": 6.5, "tokens_per_solution_range": [5, 8],
                      "pruning": {"4": None},
                      "candidate_accuracy": 0.25, "example": {"problem": 1}, "shapes": {"4": [1, 4]}}
    toy = bestofn.held_out_problems("tiny", 1)  # the toy world's checker: a report per budget
    first, *rest = toy[0].gold_solution.split(DEFAULT_DELIMITER)  # the gold solution as one kept path of steps
    steps = [first] + [DEFAULT_DELIMITER + s for s in rest]
    nodes = [search.Node(k, k - 1 if k else None, k, s, 5, "delimiter", False, kept=True) for k, s in enumerate(steps)]
    nodes[-1].stop, nodes[-1].finished, nodes[-1].ended = "eos", True, "eos"
    res = search.SearchResult(0, nodes, len(nodes) - 1, tokens=5 * len(nodes))
    assert res.solution == toy[0].gold_solution
    pruning = search_report.comparison_record(table, toy, {"beam_prm": {4: [res]}}, sampled, {}, {})["pruning"]
    assert pruning == {"4": search_report.pruning_report(toy, [res])}
    assert pruning["4"]["kept"] == len(steps) and pruning["4"]["kept_right"] == 1.0 and pruning["4"]["pruned"] == 0


def _whole(text="Step 1: c1\n\nAnswer: 1"):
    """A sampler whose every row is one whole solution ending at EOS: no step ever stops at the delimiter."""
    return lambda texts, n, caps, leads: [[Generation(text, 9, "eos")] * n for _ in texts]


def _warned(fn):
    """``fn()``'s result and the messages of the warnings it gave."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught]


def test_a_delimiter_other_than_the_prms_or_never_written_is_warned_of_once_per_call():
    """Both ran on silently: the PRM's steps cut where it never learned to read them (its rewards wrecked), and a
    delimiter the policy never writes made every node a depth-0 whole solution (best-of-N, no branching)."""
    run = lambda **kw: search.beam_search(None, None, TablePRM(), [Answer1(), Answer1()], n_beams=2, expansions=2,
                                          **kw)
    _, said = _warned(lambda: run(delimiter="\n", sampler=_whole()))
    other = [m for m in said if "is not the PRM's own step delimiter" in m]
    assert len(other) == 1 and "delimiter '\\n' is not the PRM's own step delimiter '\\n\\nStep'" in other[0]
    results, said = _warned(lambda: run(delimiter="###", sampler=_whole()))
    assert all(n.depth == 0 for r in results for n in r.nodes)
    never = [m for m in said if "no sampled step ended at the delimiter '###'" in m]
    assert len(never) == 1 and "never branched" in never[0]
    _, said = _warned(lambda: run(sampler=Scripted()))  # the PRM's own delimiter, written by the policy: quiet
    assert said == []
    _, said = _warned(lambda: run(sampler=_whole(), max_steps=1))  # one step asked for: no branching expected
    assert said == []


def test_a_search_whose_prefixes_the_prm_read_none_of_says_so():
    """With every prefix over the PRM's max_length (GSM8K prompts on the tutorial's PRM) the search ran to the end on
    FLOOR scores, an arbitrary pick, saying nothing."""
    from stepdpo_lite.rewards import InputTooLong

    class TooLongForB(TablePRM):
        def score_solutions(self, prompts, step_lists):
            if any(p.startswith("b") for p in prompts):
                raise InputTooLong("too long")
            return super().score_solutions(prompts, step_lists)

    class Prompted(Answer1):
        def __init__(self, prompt):
            self.prompt = prompt
    results, said = _warned(lambda: search.beam_search(None, None, TooLongForB(), [Prompted("a:"), Prompted("b:")],
                                                       n_beams=1, expansions=2, sampler=Scripted()))
    assert results[0].n_scored > 0 and results[1].n_scored == 0 and results[1].score == search.FLOOR
    blind = [m for m in said if "the PRM could not read" in m]  # once for the search, not once a round
    assert len(blind) == 1 and "read no prefix of 1 of 2 problems (problems [1])" in blind[0]
    assert "arbitrary" in blind[0] and "max_length=..." in blind[0]
    assert not [m for m in said if m.startswith("score_readable")]


@pytest.mark.parametrize("reply, got", [(lambda steps: 0.5, "one float"),
                                        (lambda steps: [0.5] * (len(steps) - 1), r"\d rewards")])
def test_a_prm_that_returns_no_reward_per_step_is_refused(reply, got):
    """An ORM as the PRM (one float per prefix) was a bare TypeError; a list short by one made Node.reward the
    previous step's reward, silently."""
    class Odd(TablePRM):
        def score_solutions(self, prompts, step_lists):
            return [reply(steps) for steps in step_lists]
    with pytest.raises(ValueError, match=rf"beam_search: problem 0, a prefix of \d steps: the Odd's score_solutions "
                                         rf"returned {got}; beam search needs one reward per step of each step list"):
        search.beam_search(None, None, Odd(), [Answer1()], n_beams=1, expansions=2, sampler=Scripted(n_steps=3))


def test_an_ensemble_of_prms_is_not_called_an_outcome_model():
    """An ensemble of two PRMs gives one reward per solution: the error blamed "an outcome model's one reward per
    text", though both members are PRMs."""
    from stepdpo_lite.reward_ensembles import EnsembleRewardModel

    class MemberPRM(TablePRM):
        def solution_rewards(self, prompts, solutions):  # the documented member method
            return [min(r) for r in self.score_solutions(prompts, solutions)]

    ensemble = EnsembleRewardModel([MemberPRM(), MemberPRM()])
    with pytest.raises(ValueError, match=r"the EnsembleRewardModel's score_solutions returned one float; .* \(an "
                                         r"outcome, combined or ensemble reward model gives one reward per solution"):
        search.beam_search(None, None, ensemble, [Answer1()], n_beams=1, expansions=2, sampler=Scripted())


def test_a_search_asks_the_prm_for_no_scoring_bar_in_its_rounds():
    """beam_search and dvts score each depth round's prefixes in one call: a PRM's default bar (progress=None) was
    drawn once a round, a column of bars for one search; a bar of its own the search does not draw either."""
    class BarredPRM(TablePRM):
        def score_solutions(self, prompts, step_lists, progress=None):
            asked.append(progress)
            return super().score_solutions(prompts, step_lists)

    asked = []
    search.beam_search(None, None, BarredPRM(), [Answer1()], n_beams=2, expansions=2, sampler=Scripted())
    search.dvts(None, None, BarredPRM(), [Answer1()], budget=4, expansions=2, sampler=Scripted())
    assert len(asked) >= 6 and set(asked) == {False}, asked
    search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, sampler=Scripted())  # none


def _no_sampling(*args):
    raise AssertionError("nothing may be generated before the arguments are checked")


def test_a_prm_without_score_solutions_is_refused_before_generating():
    """A plain function, or an object with score(), was a bare AttributeError after a round of generation."""
    class OnlyScore:
        def score(self, prompts, step_lists):
            return [[0.0] * len(s) for s in step_lists]

    for prm, hint in ((lambda prompts, step_lists: [], "a plain function"), (OnlyScore(), "OnlyScore")):
        with pytest.raises(ValueError, match=rf"beam_search: the reward model needs a method score_solutions\(prompts, "
                                             rf"step_lists\) .*{hint}"):
            search.beam_search(None, None, prm, [Answer1()], n_beams=1, expansions=2, sampler=_no_sampling)


def test_a_function_aggregates_the_beams_step_rewards_and_a_bad_aggregation_is_refused_up_front():
    """aggregation took only names, and a wrong one failed after a round of generation, as aggregate_rewards'."""
    def second_min(rewards):  # the second-lowest step reward, or the only one
        return sorted(rewards)[min(1, len(rewards) - 1)]

    prm = TablePRM({0: 1.5, 1: -2.0, 2: 3.0, 3: 0.0})
    res = search.beam_search(None, None, prm, [Answer1()], n_beams=2, expansions=2, aggregation=second_min,
                             sampler=Scripted())[0]
    assert all(n.score == second_min(n.rewards) for n in res.nodes)
    res = search.dvts(None, None, prm, [Answer1()], budget=4, expansions=2, aggregation=second_min,
                      sampler=Scripted())[0]
    assert all(n.score == second_min(n.rewards) for n in res.nodes)
    with pytest.raises(ValueError, match=r"beam_search: aggregation must be one of \(.*\) or a function \(a list of "
                                         r"step rewards -> one score\), got 'softmin'"):
        search.beam_search(None, None, prm, [Answer1()], aggregation="softmin", sampler=_no_sampling)
    with pytest.raises(ValueError, match=r"beam_search: the TablePRM's config.aggregation must be one of"):
        search.beam_search(None, None, TablePRM(aggregation="softmin"), [Answer1()], sampler=_no_sampling)
    with pytest.raises(ValueError, match=r"beam_search: aggregation <lambda>'s score of problem 0, node 0 \(depth 0\) "
                                         r"must be a finite number, got nan"):
        search.beam_search(None, None, prm, [Answer1()], n_beams=1, expansions=2, aggregation=lambda r: float("nan"),
                           sampler=Scripted())


def test_a_budget_below_one_round_is_said_and_the_result_tells_it_chose_no_answer(tmp_path):
    """The budget overshot silently and the chosen 'solution' was a prefix with no answer line; the tree drew the
    'chosen answer' star on it."""
    results, said = _warned(lambda: search.beam_search(None, None, TablePRM(), [Answer1(), Answer1()], n_beams=2,
                                                       expansions=2, token_budget=[5, None], sampler=Scripted()))
    cut, whole = results
    assert not cut.answered and cut.nodes[cut.chosen].ended == "token_budget" and whole.answered
    short = [m for m in said if "below one round" in m]
    assert len(short) == 1 and "1 of 2 problems (problems [0])" in short[0] and "problem 0: budget 5" in short[0]
    assert not search.SearchResult(0, [], None).answered
    for result, named, other in ((cut, "chosen, cut with no answer", "chosen answer"),
                                 (whole, "chosen answer", "chosen, cut with no answer")):
        key = viz.plot_beam_tree(result, save_to=tmp_path / "tree.png").legends[0]
        legend = [t.get_text() for t in key.get_texts()]
        assert named in legend and other not in legend
        # the chosen node (the one big marker) is drawn in the shape its key names: "X" when cut, "*" when answered
        shape = MarkerStyle(key.legend_handles[legend.index(named)].get_marker())
        chosen, = [c for c in key.figure.axes[0].collections if c.get_sizes()[0] == 140]
        assert np.allclose(chosen.get_paths()[0].vertices, shape.get_path().transformed(shape.get_transform()).vertices)


def test_greedy_search_is_warned_of(tiny_base):
    """temperature=0 made every expansion the same step: 1 distinct first step of 4, with no word."""
    model, tok = tiny_base
    problems = bestofn.held_out_problems("tiny", 1)
    results, said = _warned(lambda: search.beam_search(model, tok, TablePRM(), problems, n_beams=1, expansions=4,
                                                       temperature=0.0, max_steps=1, max_new_tokens=8))
    assert len({n.step for n in results[0].nodes}) == 1
    assert any(m.startswith("beam_search: temperature=0 samples greedily: every expansion of a beam is the same")
               for m in said)
    _, said = _warned(lambda: search.beam_search(model, tok, TablePRM(), problems, n_beams=1, expansions=1,
                                                 temperature=0.0, max_steps=1, max_new_tokens=8))
    assert not any("samples greedily" in m for m in said)  # one path a round: greedy is no waste


def test_the_seed_sets_the_search_on_a_policy(tiny_base):
    import torch
    model, tok = tiny_base
    problems = bestofn.held_out_problems("tiny", 2)
    run = lambda: [r.solution for r in search.beam_search(model, tok, TablePRM(), problems, n_beams=2, expansions=2,
                                                          max_steps=2, max_new_tokens=24, seed=0)]
    first = run()
    torch.manual_seed(123)  # whatever the global generator holds
    assert run() == first


def test_slips_in_what_the_searches_are_given_get_messages_that_say_what_to_pass():
    problem = bestofn.held_out_problems("tiny", 1)[0]
    with pytest.raises(ValueError, match=r"beam_search: problems must be a list .*got one Problem: wrap it in a list"):
        search.beam_search(None, None, TablePRM(), problem, sampler=Scripted())  # was "not iterable"
    with pytest.raises(ValueError, match=r"beam_search: problem 0: .*problems must be problem objects with a \.prompt"):
        search.beam_search(None, None, TablePRM(), [problem.prompt], sampler=Scripted())
    for name in ("n_beams", "n_subtrees"):  # was "beam_search() got multiple values for keyword argument 'n_beams'"
        with pytest.raises(ValueError, match=rf"dvts: {name} is set by dvts itself \(n_beams=1 per subtree"):
            search.dvts(None, None, TablePRM(), [Answer1()], budget=8, sampler=Scripted(), **{name: 2})
    with pytest.raises(ValueError, match=r"chosen_accuracy: results\[0\] is a str: search_report.chosen_accuracy takes "
                                         r"SearchResults .*"
                                         r"for solution texts use bestofn.accuracy"):  # was an AttributeError
        search_report.chosen_accuracy([problem], [problem.gold_solution])


def test_compare_at_budgets_without_an_orm_leaves_its_row_out(tmp_path):
    """orm_rewards=None was "'NoneType' object is not iterable": a PRM-only user had to invent ORM scores."""
    problems, candidates, tokens, prm, orm, beam = _comparison_inputs()
    args = (problems, candidates, tokens, prm)
    rest = ({"beam_prm": {4: beam}}, [2, 4], "min")
    without = search.compare_at_budgets(*args, None, *rest, n_resamples=5)
    with_orm = search.compare_at_budgets(*args, orm, *rest, n_resamples=5)
    for b in ("2", "4"):
        assert "best_of_n_orm" not in without[b] and "best_of_n_orm" not in without[b]["tokens"]
        assert "best_of_n_orm" not in without[b]["prm_scored"]
        drop = lambda row: {k: v for k, v in row.items() if k != "best_of_n_orm"}  # every other row as it was
        assert {k: drop(v) if isinstance(v, dict) else v for k, v in with_orm[b].items() if k != "best_of_n_orm"} \
            == without[b]
    assert "best-of-N, ORM" not in search_report.format_comparison(without)
    fig = viz.plot_test_time_compute(without, save_to=tmp_path / "no_orm.png")
    assert "best_of_n_orm" not in [t.get_text() for t in fig.legends[0].get_texts()]


def test_beam_tree_draws_dvts_subtrees_apart(tmp_path):
    """The subtrees of DVTS looked like one tree of several beams: Node.group was not drawn."""
    res = search.dvts(None, None, TablePRM(), [Answer1()], budget=8, expansions=4,
                      sampler=Scripted(options=[0, 1, 2, 3]))[0]
    ax = viz.plot_beam_tree(res, save_to=tmp_path / "dvts.png").axes[0]
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("subtree")] == ["subtree 1", "subtree 2"]
    rows = [ln.get_ydata()[1] for ln in ax.lines[:len(res.nodes)]]  # one edge into each node, in node order
    band = {g: [row for n, row in zip(res.nodes, rows) if n.group == g] for g in (0, 1)}
    assert max(band[0]) < min(band[1])  # each subtree's steps in a band of its own
    beam = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=2, expansions=2, sampler=Scripted())[0]
    assert not [t for t in viz.plot_beam_tree(beam).axes[0].texts if t.get_text().startswith("subtree")]


def test_an_is_correct_that_returns_no_bool_is_refused_naming_the_problem():
    """"False" or None from a task's own is_correct was a TypeError inside sum (search_report.chosen_accuracy,
    candidate_costs): refused as labelling.mc_step_labels refuses it."""
    problem = bestofn.held_out_problems("tiny", 1)[0]
    result = search.SearchResult(0, [search.Node(0, None, 0, problem.gold_solution, 5, "eos", True)], 0, tokens=5)
    for verdict in ("False", None):
        odd = type("OddVerdict", (type(problem),), {"is_correct": lambda self, s, v=verdict: v})(
            problem.start, problem.ops)
        with pytest.raises(ValueError, match=r"chosen_accuracy: problem 1: the problem's is_correct must return"):
            search_report.chosen_accuracy([problem, odd], [result, result])
        with pytest.raises(ValueError, match=r"candidate_costs: problem 1, candidate 0: .*is_correct must return"):
            search_report.candidate_costs([problem, odd], [[problem.gold_solution]] * 2, [[5], [5]])
    assert search_report.chosen_accuracy([problem], [result]) == 1.0


def test_search_at_budgets_caps_a_problem_at_b_times_its_mean_sampled_solution(monkeypatch):
    """Each search may spend what best-of-B spends on its problem: B x the mean of its sampled solutions' tokens
    (the test beside it reaches the cap at any B, so a cap without B passed it)."""
    caps, real = [], search.beam_search

    def spy(*args, token_budget=None, **kw):
        caps.append(token_budget)
        return real(*args, token_budget=token_budget, **kw)

    monkeypatch.setattr(search, "beam_search", spy)
    with pytest.warns(UserWarning):  # problem 1's budget is below one round
        search.search_at_budgets(None, None, TablePRM(), [Answer1(), Answer1()], [[900, 1100], [4, 6]], [4, 8],
                                 run_dvts=False, log=lambda line: None, sampler=Scripted(options=[0, 1, 2, 3]))
    assert caps == [[4000, 20], [8000, 40]]


def test_pruning_report_counts_a_finished_beam_pushed_out_later_as_pruned():
    """A beam that answered (wrongly) at depth 0 is kept there, then pushed out at depth 1 by better prefixes: the
    report counts it with the pruned steps, as the beam tree draws it, not with the kept ones."""

    res = _search_that_pushes_out_a_finished_beam()
    pushed_out = res.nodes[0]
    assert pushed_out.kept and pushed_out.pruned_at == 1
    report = search_report.pruning_report([_PickOne()], [res])
    # labelled: the finished beams (an open prefix's last step is unknown): the two answers at depth 1, kept, right;
    # the one at depth 0, pushed out, wrong
    assert (report["kept"], report["kept_right"], report["pruned"], report["pruned_right"]) == (2, 1.0, 1, 0.0)


def test_unique_beams_keep_one_copy_of_a_prefix_when_fewer_are_distinct_than_beams():
    """With ``unique=True`` a prefix sampled twice takes one place in the beam, also when fewer prefixes are
    distinct than there are beams: every sample the same step keeps one beam, not n_beams copies of it."""
    res = search.beam_search(None, None, TablePRM(), [Answer1()], n_beams=3, expansions=2, unique=True,
                             sampler=Scripted(options=[1]))[0]
    for depth in range(3):
        assert len(_beam_after(res, depth)) == 1, depth
    assert sum(n.depth == 1 for n in res.nodes) == 2  # one beam expanded, not three copies


def test_n_test_time_problems_and_pairs_that_ran_refuse_a_wrong_type():
    """A profile's name was an AttributeError ('str' object has no attribute 'n_test_time_problems'), an unknown one
    too; one pair as a str became a "pair" per character, and run_dvts="no" (truthy) kept DVTS's pairs."""
    assert search.n_test_time_problems("tiny") == search.n_test_time_problems(get_profile("tiny"))
    with pytest.raises(ValueError, match="unknown profile 'tinyy'"):
        search.n_test_time_problems("tinyy")
    with pytest.raises(ValueError, match="pairs_that_ran: pairs: expected a list of pairs of methods"):
        search.pairs_that_ran("beam_prm")
    with pytest.raises(ValueError, match="pairs_that_ran: run_dvts must be True or False, got 'no'"):
        search.pairs_that_ran([("beam_prm", "dvts_prm")], "no")


def _three_op_search(cut_pruned_at=None):
    """A hand-made tree on 7 + 5 * 3 - 4: under a kept right path, a copy of it the token budget cut at depth 1
    (finished, right as a prefix) and, at depth 2, a right answer pruned, a wrong one kept and an answer line alone
    (no step of its own: unlabelled); a wrong second step pruned at depth 1."""
    n = search.Node
    nodes = [n(0, None, 0, "Step 1: 7 + 5 = 12", 5, "delimiter", False, rewards=[1.0], kept=True),
             n(1, 0, 1, "\n\nStep 2: 12 * 3 = 36", 5, "delimiter", False, rewards=[1.0, 1.0], kept=True),
             n(2, 0, 1, "\n\nStep 2: 12 * 3 = 36", 5, "length", True, rewards=[1.0, 1.0], kept=True,
               pruned_at=cut_pruned_at, ended="token_budget"),
             n(3, 1, 2, "\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32", 5, "eos", True, rewards=[1.0, 1.0, 0.5], pruned_at=2),
             n(4, 1, 2, "\n\nStep 3: 36 - 4 = 30\n\nAnswer: 30", 5, "eos", True, rewards=[1.0, 1.0, -2.0], kept=True),
             n(5, 1, 2, "\n\nAnswer: 36", 5, "eos", True, rewards=[1.0, 1.0, -3.0], pruned_at=2),
             n(6, 0, 1, "\n\nStep 2: 12 * 3 = 35", 5, "delimiter", False, rewards=[1.0, -6.0], pruned_at=1)]
    return toyworld.Problem(7, (("+", 5), ("*", 3), ("-", 4))), search.SearchResult(0, nodes, chosen=4, tokens=35)


def test_the_reports_read_a_cut_beam_kept_through_a_round_and_every_wrong_step():
    problem, res = _three_op_search()
    assert search_report.tree_labels(problem, res) == {0: True, 1: True, 2: True, 3: True, 4: False, 5: None, 6: False}
    # the cut beam, right and kept through depth 2, is the right step the beam kept there: no verifier miss
    assert search_report.pruning_report([problem], [res]) == {
        "kept": 4, "kept_right": 0.75, "pruned": 2, "pruned_right": 0.5, "rounds": 3, "no_right_step": 0,
        "right_step_pruned": 0}
    problem, pushed_out = _three_op_search(cut_pruned_at=2)  # pushed out at depth 2: the right answer's loss counts
    assert search_report.pruning_report([problem], [pushed_out])["right_step_pruned"] == 1
    report = search_report.example_report(problem, res, ["Answer: 32"], [10], 2)
    p = lambda x: pytest.approx(1 / (1 + math.exp(-x)))
    assert report["wrong_steps"] == 2 and report["wrong_step_p_max"] == p(-2.0)  # the highest of -2 and -6
    assert report["right_kept_at_every_depth"] is False  # depth 2's right answer was pruned, not kept
    # the middling tree (3 steps deep) is picked over the shallower one, both wrong with a wrong step pruned
    assert search_report.pick_example([_cut_search()[0], problem], [_cut_search()[1], res]) == 1
    with pytest.raises(ValueError, match="chosen_accuracy: 0 problems but 0 search results"):  # was a ZeroDivision
        search_report.chosen_accuracy([], [])
