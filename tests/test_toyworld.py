import json
import random

import pytest

from stepdpo_lite import generation
from stepdpo_lite.rewards import NO, OUTCOME_TAG, STEP_TAG, YES
from stepdpo_lite.tutorial import policy_eval, tasks, tiny_base, tiny_models
from stepdpo_lite.tutorial import toyworld as tw
from stepdpo_lite.tutorial.task_problems import Verdict


def test_problems_are_deterministic_distinct_and_splits_disjoint():
    a, b = tw.make_problems(300, "test", seed=0), tw.make_problems(300, "test", seed=0)
    assert a == b and len(set(a)) == 300
    train = set(tw.make_problems(3000, "train", seed=0))
    assert not train & set(a)
    assert not train & set(tw.make_problems(200, "validation", seed=0))
    assert {len(p.ops) for p in train} == {2, 3, 4, 5, 6}
    assert all(0 <= v <= tw.MAX_VALUE for p in train for v in p.values)
    with pytest.raises(ValueError, match="split"):
        tw.make_problems(3, "dev")


@pytest.mark.parametrize("kw, field", [(dict(n=True), "n must be an int >= 1, got True"),
                                       (dict(n=1.5), "n must be an int >= 1, got 1.5"),
                                       (dict(n=0), "n must be an int >= 1, got 0"),
                                       (dict(n=2, min_ops=1.5), "min_ops must be an int >= 1"),
                                       (dict(n=2, seed=1.0), "seed must be an int, got 1.0"),
                                       (dict(n=2, seed=True), "seed must be an int, got True")])
def test_make_problems_refuses_a_count_or_seed_that_is_no_int(kw, field):
    """n=True made one problem and 1.5 a TypeError; seed 1.0 or True drew other problems than seed 1, silently."""
    with pytest.raises(ValueError, match=f"make_problems: {field}"):
        tw.make_problems(**kw)
    assert tw.make_problems(2, seed=1) != tw.make_problems(2, seed=0)


def test_make_problems_keeps_a_problem_found_on_its_last_draw(monkeypatch):
    """The count was tested at the top of the loop: a problem found on the last allowed draw was never returned, and
    make_problems raised "could not find 1 distinct train problems" with it in hand."""
    train, other = tw.make_problems(1, "train")[0], tw.make_problems(1, "test")[0]
    draws = []

    def last_draw_finds_it(rng, min_ops, max_ops):
        draws.append(1)
        return train if len(draws) == 200 * 1 + 10_000 else other  # make_problems' draws for n = 1
    monkeypatch.setattr(tw, "_random_problem", last_draw_finds_it)
    assert tw.make_problems(1, "train") == [train] and len(draws) == 10_200


@pytest.mark.parametrize("start, ops, message", [
    (7, (("/", 2),), r"ops\[0\] \(step 1\) must be \(op, operand\) with op one of \('\+', '-', '\*'\), got \('/', 2\)"),
    (7, (("+", 2), ("+", -3)), r"ops\[1\] \(step 2\) operand must be an int >= 0 \(the checker reads no negative"),
    (7, (("+", 2.0),), r"ops\[0\] \(step 1\) operand must be an int >= 0 .*got 2.0"),
    (7, (("+", True),), r"ops\[0\] \(step 1\) operand must be an int >= 0 .*got True"),
    (7, (("+",),), r"ops\[0\] \(step 1\) must be \(op, operand\)"),
    (7, "+ 3", r"ops: expected a list of \(op, operand\) pairs, got one str"),
    (7, (), "ops is empty"),
    ("7", (("+", 1),), "start must be an int >= 0 .*got '7'"),
    (True, (("+", 1),), "start must be an int >= 0 .*got True"),
    (-1, (("+", 1),), "start must be an int >= 0 .*parse_prompt"),
])
def test_problem_refuses_what_the_toy_world_cannot_state_or_grade(start, ops, message):
    """"/" was computed as "*" (7 / 2 = 14 as its gold), a negative operand gave a gold solution its own checker
    graded wrong, no operations failed later in gold_solution, and a str start was a TypeError inside _apply."""
    with pytest.raises(ValueError, match="Problem: " + message):
        tw.Problem(start, ops)


def test_problem_outside_the_generated_range_is_kept_with_a_warning():
    with pytest.warns(UserWarning, match=r"running values \[30, 90\] leave 0..50"):
        p = tw.Problem(30, [["*", 3]])  # gradeable, but numbers the toy world's models never saw
        same = tw.Problem(30, (("*", 3),))
    assert p == same and hash(p) == hash(same)  # the lists became tuples, as generated problems hold them
    assert tw.check(p, p.gold_solution).answer_correct
    with pytest.warns(UserWarning, match=r"running values \[3, -2\]"):
        assert tw.check(tw.Problem(3, (("-", 5),)), "Step 1: 3 - 5 = -2\n\nAnswer: -2").answer_correct


@pytest.mark.filterwarnings("error")  # not even the range warning: the generator stays in 0..MAX_VALUE
def test_every_generated_problem_of_the_tiny_profile_constructs():
    from stepdpo_lite.tutorial.profiles import get_profile
    profile = get_profile("tiny")
    splits = tasks.get_task(profile).splits(profile.n_train_problems, profile.n_eval_problems, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": profile.n_train_problems,
                                                      "validation": profile.n_eval_problems,
                                                      "test": profile.n_eval_problems}
    for p in [p for ps in splits.values() for p in ps]:
        assert tw.Problem(p.start, p.ops) == p and tw.parse_prompt(p.prompt) == p
        assert all(tw.check(p, p.gold_solution).step_labels)


def test_prompt_round_trip_and_gold_solution_checks_clean():
    for p in tw.make_problems(100, "train", seed=1):
        assert tw.parse_prompt(p.prompt) == p
        v = tw.check(p, p.gold_solution)
        assert all(v.step_labels) and v.first_error == -1 and v.answer_correct
        assert len(v.step_labels) == len(p.ops)
    with pytest.raises(ValueError, match="not a toy-world prompt"):
        tw.parse_prompt("What is 2 + 2?")
    for not_text in (None, 7):  # re's TypeError before
        with pytest.raises(ValueError, match=f"parse_prompt: not a toy-world prompt: {not_text}"):
            tw.parse_prompt(not_text)


def test_arithmetic_error_and_propagation():
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    assert p.gold_solution == "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32"
    v = tw.check(p, "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 39\n\nStep 3: 39 - 4 = 35\n\nAnswer: 35")
    assert v.step_labels == [False, False, False] and v.first_error == 0 and not v.answer_correct
    assert v.error_kinds == ["arithmetic", "propagated", "propagated"]
    assert v.mistake_labels == [False, True, True]  # only the step where the mistake was made
    # a second slip on the wrong number is a mistake made there too (it was "propagated", so never pushed down)
    v = tw.check(p, "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 40\n\nStep 3: 40 - 4 = 36\n\nAnswer: 36")
    assert v.error_kinds == ["arithmetic", "arithmetic", "propagated"] and v.mistake_labels == [False, False, True]
    # a slip below zero is carried on as written: the next step is propagated, not a format (then copy) error
    p = tw.Problem(3, (("-", 2), ("+", 5), ("*", 2)))
    v = tw.check(p, "Step 1: 3 - 2 = -1\n\nStep 2: -1 + 5 = 4\n\nStep 3: 4 * 2 = 8\n\nAnswer: 8")
    assert v.error_kinds == ["arithmetic", "propagated", "propagated"] and v.mistake_labels == [False, True, True]


def test_copy_error_is_wrong_even_with_right_arithmetic():
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    v = tw.check(p, "Step 1: 7 + 5 = 12\n\nStep 2: 21 * 3 = 63\n\nStep 3: 63 - 4 = 59\n\nAnswer: 59")
    assert v.step_labels == [True, False, False] and v.first_error == 1
    assert v.error_kinds[1] == "copy" and v.mistake_labels == [True, False, True]
    assert Verdict([True, False, False], 1, False).mistake_labels == [True, False, True]  # no kinds known


@pytest.mark.parametrize("fields, message", [
    (([True, False], -1, True), r"first_error must be 1, the index of the first False step label .* got -1"),
    (([True, False], 0, False), r"first_error must be 1, .* got 0"),
    (([False, False], 5, False), r"first_error must be 0, .* got 5"),
    (([True, False], True, False), r"first_error .* got True"),
    (([True, False], 1.0, False), r"first_error .* got 1.0"),
    (([True, False], None, False), r"first_error .* got None"),
    (([True, True], -1, False), "answer_correct is False but every step label is True"),
    (([False, False], 0, "False"), "answer_correct must be True or False, got 'False'"),
    (([1.0, 0.0], 1, False), r"step_labels\[0\] must be True or False, got 1.0"),
    (("TF", 1, False), "step_labels must be a list"),
    (([True, False], 1, False, "ar"), "error_kinds must be a list"),
    (([True, False], 1, False, ["arithmetic"]), "error_kinds has 1 entries for 2 step labels"),
    (([True, False], 1, False, [None, 3]), r"error_kinds\[1\] must be None or a str"),
    (([True, False], 1, False, ["copy", "arithmetic"]), r"error_kinds\[0\] is 'copy' but step_labels\[0\] is True"),
    (([True, False], 1, False, [None, "propagated"]), r"error_kinds\[1\], the first wrong step's, must name"),
    (([True, False], 1, False, [None, None]), r"error_kinds\[1\], the first wrong step's"),
    (([True, False], 1, False, [], [1, 2]), r"steps\[0\] must be a str"),
    (([True, False], 1, False, [], ["Step 1: 1 + 1 = 2"]), "2 step labels for 1 steps")])
def test_verdict_refuses_fields_that_disagree(fields, message):
    """Nothing checked a Verdict's fields: first_error -1 beside a False label was taken as a chosen solution,
    first_error 0 beside [True, False] made Step-DPO reject the step the labels call right, kinds given as a str were
    read a character at a time and kinds of another length fell back to "first error only", answer_correct "False"
    counted as a lucky right answer, and first_error None or 1.0 was a TypeError deep in a builder."""
    with pytest.raises(ValueError, match=f"^Verdict: {message}"):
        Verdict(*fields)


def test_verdict_allows_a_lucky_answer_monte_carlo_labels_and_a_blank():
    """What the kit's own verdicts make: a right answer after a wrong step (lucky), Monte-Carlo labels (no kinds, a
    right step after a wrong one, gsm8k.mc_verdicts), gsm8k's blank placeholder, numpy bools."""
    np = pytest.importorskip("numpy")
    Verdict([False, False], 0, True, ["copy", "propagated"])
    Verdict([True, False, True], 1, True, steps=["a", "b", "c"])
    Verdict([False, True, False], 0, False)
    Verdict([], -1, False)
    Verdict([np.True_, np.False_], np.int64(1), np.False_, [None, "arithmetic"])
    Verdict([True, False, False], 1, False, [None, "arithmetic", None])  # None: no mistake made here, as propagated
    v = Verdict([True, True], -1, True)
    v.first_error = None  # set after the check: invalid_reason still finds it (the builders ask it)
    assert "first_error" in v.invalid_reason()


@pytest.mark.parametrize("text, kind", [
    ("Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32", "answer"),  # no answer line
    ("Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nAnswer: 36", "answer"),  # stops early
    ("Step 1: 7 + 5 = 12\n\nStep 2: 12 + 3 = 15\n\nStep 3: 15 - 4 = 11\n\nAnswer: 11", "operation"),
    ("Step 1: 7 + 5 = 12\n\nStep 2: twelve * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32", "format"),
    ("Step 1: 7 + 5 = 12\n\nStep 3: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32", "format"),
    ("Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 31", "answer"),
])
def test_error_kinds(text, kind):
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    v = tw.check(p, text)
    assert not v.answer_correct or kind != "answer"
    assert kind in v.error_kinds and v.first_error == v.error_kinds.index(kind)
    assert v.step_labels[: v.first_error] == [True] * v.first_error
    assert not any(v.step_labels[v.first_error:])


def test_the_step_after_one_that_does_not_parse_copies_what_it_wrote():
    """A step that does not parse (a trailing space) still wrote its result; the next step copying it made no copy
    mistake. It was labelled ``copy`` (compared with nothing), so Stepwise DPO's mistake labels pushed a right step
    down (53 such steps in a tutorial run's outcome rows)."""
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    v = tw.check(p, "Step 1: 7 + 5 = 12 \n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 30\n\nAnswer: 30")
    assert v.error_kinds == ["format", "propagated", "arithmetic"] and v.mistake_labels == [False, True, False]
    v = tw.check(p, "Step 1: 7 + 5 = 12 \n\nStep 2: 13 * 3 = 39\n\nStep 3: 39 - 4 = 35\n\nAnswer: 35")
    assert v.error_kinds == ["format", "copy", "propagated"]  # a real miscopy of what it wrote stays one
    v = tw.check(p, "Step 1: seven plus five\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32")
    assert v.error_kinds == ["format", "propagated", "propagated"]  # no result written: the right one carried on


def test_the_answer_is_read_as_the_steps_numbers_are():
    """"Answer: 032" made its step right (32) but the solution wrong (a text match), so a solution with every step
    right was a rejected one."""
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    v = tw.check(p, "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 032")
    assert all(v.step_labels) and v.answer_correct and p.final_answer(v.steps[-1]) == 32.0
    early = "Step 1: 7 + 5 = 12\n\nAnswer: 32\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 33 x\n\nAnswer: 32"
    assert not tw.check(p, early).answer_correct  # the last step does not parse: no answer read from it


def test_a_mistake_made_after_an_earlier_error_is_still_a_mistake():
    """The answer line is judged against its own step's result: after a slip, stopping early, a missing answer line
    or an answer that is not the step's result were called ``propagated`` (no mistake made), so the mistake labels
    Stepwise DPO reads never pushed them down. The right path's labels do not move."""
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    slip = "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 39"
    assert tw.check(p, slip + "\n\nStep 3: 39 - 4 = 35\n\nAnswer: 99").error_kinds == ["arithmetic", "propagated",
                                                                                    "answer"]
    assert tw.check(p, slip + "\n\nStep 3: 39 - 4 = 35\n\nAnswer: 35").error_kinds == ["arithmetic", "propagated",
                                                                                    "propagated"]
    assert tw.check(p, slip + "\n\nAnswer: 39").error_kinds == ["arithmetic", "answer"]  # stops one step early
    assert tw.check(p, slip + "\n\nStep 3: 39 - 4 = 35").error_kinds == ["arithmetic", "propagated", "answer"]
    v = tw.check(p, slip + "\n\nAnswer: 39")
    assert v.mistake_labels == [False, False] and v.step_labels == [False, False]
    assert tw.check(p, p.gold_solution).error_kinds == [None, None, None]
    # after a step that wrote no result, a number from nowhere is a copy error; the right one is not
    assert tw.check(p, "Step 1: 7 + 5 =\n\nStep 2: 40 * 3 = 120\n\nStep 3: 120 - 4 = 116\n\nAnswer: 116"
                    ).error_kinds == ["format", "copy", "propagated"]
    assert tw.check(p, "Step 1: 7 + 5 =\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32"
                    ).error_kinds == ["format", "propagated", "propagated"]
    # on a wrong path alike: after a slip and a step that wrote no result, what that step's operation gives on the
    # slipped number is a faithful carry (the right path's value would be the copy error there)
    carry = "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 =\n\nStep 3: {} - 4 = {}\n\nAnswer: {}"
    assert tw.check(p, carry.format(39, 35, 35)).error_kinds == ["arithmetic", "format", "propagated"]
    assert tw.check(p, carry.format(36, 32, 32)).error_kinds == ["arithmetic", "format", "copy"]


def test_the_mistake_made_here_rule_reads_alike_from_error_kinds_and_from_reachable_labels():
    """Verdict.mistake_labels (the checker's error kinds) and rewards.mistake_made_here_labels (drops in P(reachable))
    are one rule, computed from different inputs (their docstrings name each other): one mistake carried on is marked
    at its step by both; of two mistakes, 0/1 reachable labels drop at the first only, the error kinds see both."""
    from stepdpo_lite.rewards import mistake_made_here_labels
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    for sol in (p.gold_solution, "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 39\n\nStep 3: 39 - 4 = 35\n\nAnswer: 35",
                "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 30\n\nAnswer: 30"):
        v = tw.check(p, sol)
        assert v.mistake_labels == [x == 1 for x in mistake_made_here_labels(map(float, v.step_labels))], sol
    two = tw.check(p, "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 40\n\nStep 3: 40 - 4 = 36\n\nAnswer: 36")
    assert two.mistake_labels == [False, False, True]
    assert mistake_made_here_labels(map(float, two.step_labels)) == [0.0, 1.0, 1.0]
    assert Verdict(two.step_labels, two.first_error, False).mistake_labels == [False, True, True]  # no kinds


def test_mistake_labels_without_error_kinds_are_where_the_step_labels_drop():
    """Without error kinds, mistake_labels marked the first False step only, while rewards.mistake_made_here_labels
    (preference_pairs_from_stepwise's rule) marks every drop from True to False: Monte-Carlo labels [F, T, F], common
    (a wrong solution's last step is always False), got [F, T, T] from preference_pairs and [F, T, F] from
    preference_pairs_from_stepwise, though both docstrings said they follow one rule."""
    from itertools import product

    from stepdpo_lite.rewards import mistake_made_here_labels
    assert Verdict([False, True, False], 0, False).mistake_labels == [False, True, False]
    assert Verdict([True, False, True, False], 1, False).mistake_labels == [True, False, True, False]
    for n in range(1, 5):
        for labels in map(list, product([True, False], repeat=n)):
            first = labels.index(False) if False in labels else -1
            v = Verdict(labels, first, all(labels))  # right answer with every step right, else wrong
            assert v.mistake_labels == [x == 1 for x in mistake_made_here_labels(map(float, labels))], labels


def test_a_vote_is_read_alike_for_the_right_and_a_wrong_number():
    """A last step that does not parse gave the right number no vote but a wrong number one, so majority voting
    leaned against the right answer."""
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    head = "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\n"
    unparsed = [head + "Step 3: 36 - 4 = 32 ok\n\nAnswer: 32", head + "Step 3: 36 - 4 = 30 ok\n\nAnswer: 30"]
    assert [p.final_answer(s) for s in unparsed] == [None, None]
    assert p.final_answer(head + "Step 3: 36 - 4 = 30\n\nAnswer: 30") == 30.0
    assert p.final_answer(p.gold_solution) == 32.0 and p.final_answer("") is None
    for s in unparsed + [p.gold_solution, head + "Step 3: 36 - 4 = 30\n\nAnswer: 30"]:
        assert (p.final_answer(s) == p.answer) == tw.check(p, s).answer_correct


def test_extra_steps_and_garbage():
    p = tw.Problem(3, (("+", 1), ("*", 4)))
    v = tw.check(p, p.gold_solution.replace("\n\nAnswer: 16", "") + "\n\nStep 3: 16 + 1 = 17\n\nAnswer: 17")
    assert v.step_labels == [True, True, False] and not v.answer_correct
    assert tw.check(p, "").step_labels == [] and not tw.check(p, "").answer_correct
    assert tw.check(p, "%%%").step_labels == [False]


def test_check_refuses_a_prompt_str_for_the_problem():
    """Was AttributeError: 'str' object has no attribute 'values'."""
    p = tw.make_problems(1, seed=0)[0]
    with pytest.raises(ValueError, match="check: problem must be a toyworld.Problem, got str; parse_prompt"):
        tw.check(p.prompt, p.gold_solution)
    assert tw.check(tw.parse_prompt(p.prompt), p.gold_solution).answer_correct


def test_corrupt_solution_is_caught_at_its_step():
    rng = random.Random(0)
    for p in tw.make_problems(50, "train", seed=2):
        for step in range(len(p.ops)):
            for kind in ("arithmetic", "copy"):
                if kind == "copy" and step == 0:
                    continue
                v = tw.check(p, tw.corrupt_solution(p, step, kind, rng))
                assert v.first_error == step and v.error_kinds[step] == kind and not v.answer_correct
    with pytest.raises(ValueError, match="corrupt_solution: no copy error possible at step 0"):
        tw.corrupt_solution(p, 0, "copy", rng)
    for step in (1.5, True):  # 1.5 matched no step and gave back the gold solution, True was step 1
        with pytest.raises(ValueError, match="corrupt_solution: step must be an int"):
            tw.corrupt_solution(p, step, "arithmetic", rng)
    with pytest.raises(ValueError, match="format_solution: steps is empty"):
        tw.format_solution([])


def test_tokenizer_is_fast_lossless_and_holds_tag_tokens(tiny_tokenizer):
    tok = tiny_tokenizer
    assert tok.is_fast
    p = tw.make_problems(1, "test")[0]
    text = p.prompt + p.gold_solution + STEP_TAG + YES
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    for t in (STEP_TAG, OUTCOME_TAG, YES, NO):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t


def test_sampling_shapes_with_a_random_model(tiny_tokenizer, tiny_model):
    problems = tw.make_problems(3, "test")
    prompts = [p.prompt for p in problems]
    sols = generation.sample_solutions(tiny_model, tiny_tokenizer, prompts, n=2, max_new_tokens=8, progress=False)
    assert len(sols) == 3 and all(len(s) == 2 and all(isinstance(x, str) for x in s) for s in sols)
    again = generation.sample_solutions(tiny_model, tiny_tokenizer, prompts, n=2, max_new_tokens=8, progress=False)
    assert sols == again  # seeded


def test_sampling_takes_prompt_strings_only(tiny_tokenizer, tiny_model, tmp_path, monkeypatch):
    """Issue #14: str(problem) put a GSM8K problem's repr, gold answer included, into the prompt."""
    from stepdpo_lite.tutorial.gsm8k import GSM8KProblem

    class Opaque:  # no str prompt: must never be turned into text with str()
        answer = "42"

    prompts = [tw.make_problems(1, "test")[0].prompt, Opaque()]
    with pytest.raises(ValueError, match="prompt 1 is a Opaque, not a str"):
        generation.sample_solutions(tiny_model, tiny_tokenizer, prompts, n=1, max_new_tokens=2, progress=False)
    with pytest.raises(ValueError, match="prompt must be a str"):
        GSM8KProblem("q", "42", prompt=None)
    g = GSM8KProblem("How many?", "42", "Q: How many?\n", "6 * 7 = 42")
    with pytest.raises(ValueError, match="prompt 0 is a GSM8KProblem, not a str"):  # a problem, even with a str prompt
        generation.sample_solutions(tiny_model, tiny_tokenizer, [g], n=1, max_new_tokens=2, progress=False)
    record = tmp_path / "prompts.jsonl"  # what the notebook tests read: every prompt fed to a model
    monkeypatch.setenv(generation.RECORD_PROMPTS_ENV, str(record))
    generation.sample_solutions(tiny_model, tiny_tokenizer, [g.prompt], n=1, max_new_tokens=2, progress=False)
    assert [json.loads(line) for line in record.read_text().splitlines()] == ["Q: How many?\n"]


def test_shipped_tiny_base_is_imperfect_on_purpose(tiny_base_path):
    """The model card's claim, re-measured on a slice of the held-out split."""
    model, tok = tiny_models.load_tiny_base(tiny_base_path)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 <= n_params <= 5e6
    result = policy_eval.evaluate_policy(model, tok, tw.make_problems(200, "test", seed=0), progress=False)
    assert 0.30 <= result["accuracy"] <= 0.70, result


def test_train_base_is_deterministic(tmp_path):
    import torch
    from safetensors.torch import load_file

    for name in ("a", "b"):
        tiny_base.train_base(tmp_path / name, seed=3, n_train=64, max_steps=2, batch_size=8, eval_every=10_000)
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, tok = tiny_models.load_tiny_base(tmp_path / "a")
    assert tok.is_fast and model.config.vocab_size == len(tok)


def test_train_base_shape_options(tmp_path):
    tiny_base.train_base(tmp_path / "deep", seed=3, n_train=16, max_steps=1, batch_size=8, eval_every=10_000, layers=2,
                  hidden_size=64)
    model, _ = tiny_models.load_tiny_base(tmp_path / "deep")
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    log = json.loads((tmp_path / "deep" / "training_log.json").read_text())
    assert log["layers"] == 2 and log["hidden_size"] == 64


def test_arithmetic_slip_is_written_minus_right_at_the_first_arithmetic_error():
    p = tw.Problem(7, (("+", 5), ("*", 3)))
    assert tw.arithmetic_slip(p, p.gold_solution) is None
    over = "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 39\n\nAnswer: 39"  # one too many, carried on faithfully
    assert tw.arithmetic_slip(p, over) == 1
    under = "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 34\n\nAnswer: 34"
    assert tw.arithmetic_slip(p, under) == -2
    copy = "Step 1: 7 + 5 = 12\n\nStep 2: 11 * 3 = 33\n\nAnswer: 33"  # a copy slip is not an arithmetic one
    assert tw.check(p, copy).error_kinds[1] == "copy" and tw.arithmetic_slip(p, copy) is None


def test_slip_offsets_script_compares_start_and_trained(tiny_base_path, capsys):
    """scripts/slip_offsets.py (why pure preference training overshoots, docs/benchmarks.md) at toy size."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "slip_offsets.py"))
    out = script["main"](["--policy", str(tiny_base_path), "--n-train", "40", "--n-eval", "40"])
    assert len(out) == 3 and all(r["n"] > 0 for r in out.values())  # the shipped base slips on purpose
    for r in out.values():
        assert sum(r["shares"].values()) == pytest.approx(1, abs=0.01)
        assert set(r["shares"]) <= {-3, -2, -1, 1, 2, 3}
    start, again = out["start, greedy on validation"], out[f"{tiny_base_path}, greedy on validation"]
    assert start == again  # the same policy, greedy: the same slips
    assert json.loads(capsys.readouterr().out.splitlines()[-1]).keys() == out.keys()


def test_slip_geometry_script_pair_step_sends_more_of_the_freed_mass_to_the_far_neighbour(tiny_base_path, capsys):
    """scripts/slip_geometry.py (docs/benchmarks.md: what moves the mass to the far neighbour) at toy size: the
    shipped base's digits lie on an ordered arc, and one small step of the pair loss (right digit c over the slip
    c + 1) lifts c − 1 by a larger share of what it lifts c than the same-length NLL step does."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "slip_geometry.py"))
    out = script["main"](["--policy", tiny_base_path, "--problems", "40", "--states", "100"])
    angles = out["arc"]["angles"]
    steps = [b - a for a, b in zip(angles, angles[1:])]
    assert all(s < 0 for s in steps) or all(s > 0 for s in steps), angles  # ordered along the arc
    assert out["states"] == 100
    for direction in ("sgd", "adam"):
        pair, nll = out[f"pair, {direction}"], out[f"nll, {direction}"]
        for g in (pair, nll):
            assert g["c"] > 0 > g["r"]  # both raise the right digit and lower the slip
        assert pair["m"] > 0 and pair["m_per_c"] > 1.5 * nll["m_per_c"], (pair, nll)
    model, tokenizer = script["tiny_models"].load_tiny_base(tiny_base_path)
    with pytest.raises(ValueError, match="loss must be"):
        script["mass_response"](model, tokenizer, [("Step 1: 3 + 4 = ", 7)], "kl", 1e-3)
    assert json.loads(capsys.readouterr().out.splitlines()[-1]).keys() == out.keys()


def test_pair_expectation_script_on_policy_pairs_add_up_to_the_nll_gradient(tiny_base_path, capsys):
    """scripts/pair_expectation.py (docs/benchmarks.md: why level is the ceiling) at toy size: at every state
    ∇log π(c) = (1 − π(c))·E_r[∇log π(c) − ∇log π(r)] for r drawn from the policy's wrong tokens, and the summed
    gradient of on-policy pairs closes in on the NLL's as draws are averaged, unlike pairs that always reject
    c + 1."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "pair_expectation.py"))
    out = script["main"](["--policy", tiny_base_path, "--problems", "40", "--states", "100",
                          "--identity-states", "5", "--draws", "16"])
    assert out["states"] == 100 and out["identity_max_relative_error"] < 1e-4
    by_draws = out["cosine_by_draws"]
    assert list(by_draws) == [1, 4, 16]
    assert by_draws[16] > 0.98 and by_draws[16] > by_draws[1], by_draws  # an unbiased estimate: noise averages out
    assert out["cosine_fixed_slip"] < by_draws[16] - 0.05, out  # a fixed negative is a different direction
    assert 0 < out["pairs_per_draw"] < 100
    assert json.loads(capsys.readouterr().out.splitlines()[-1]).keys() == out.keys()


def test_stale_pairs_script_pairs_drawn_at_the_start_cost_accuracy_fresh_ones_do_not(tiny_base_path, capsys):
    """scripts/stale_pairs.py (docs/benchmarks.md: where the cost comes from) at toy size: pairs drawn once at the
    start soon reject tokens the policy no longer writes, their gradient turns against the NLL's, and training on them
    pushes the right digit's mass on to c − 1; the same loss with the rejected token redrawn each step does not. Nor
    does a hard negative (the current policy's most likely wrong digit), which is no better than the NLL either."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "stale_pairs.py"))
    out = script["main"](["--policy", tiny_base_path, "--problems", "100", "--states", "150", "--held-out", "100",
                          "--steps", "10"])
    start, nll, stale, fresh, hardest = (out["nll"][0], out["nll"][-1], out["stale"][-1], out["fresh"][-1],
                                         out["hardest"][-1])
    assert out["stale"][0] == out["fresh"][0] == start and start["cosine_stale"] > 0.8  # one start, pairs on-policy
    assert nll["step"] == stale["step"] == fresh["step"] == hardest["step"] == 10
    assert nll["right_on_top"] > start["right_on_top"] and fresh["right_on_top"] > start["right_on_top"]
    assert stale["right_on_top"] < min(nll["right_on_top"], fresh["right_on_top"], hardest["right_on_top"]) - 0.1, out
    assert hardest["right_on_top"] <= nll["right_on_top"] + 0.05, out  # level with the NLL, not ahead
    assert stale["p_c_minus_1"] > 2 * start["p_c_minus_1"], out  # the overshoot, past c to the far neighbour
    assert stale["cosine_stale"] < 0 < stale["cosine_fresh"], stale  # stale pairs point against the NLL's gradient
    assert all(arm[-1]["p_start_rejected"] < start["p_start_rejected"] for arm in (out["nll"], out["stale"]))
    assert json.loads(capsys.readouterr().out.splitlines()[-1]).keys() == out.keys()


@pytest.mark.parametrize("script, args", [
    ("slip_geometry", ["--problems", "0"]), ("slip_geometry", ["--states", "0"]), ("slip_geometry", ["--step", "0"]),
    ("pair_expectation", ["--problems", "0"]), ("pair_expectation", ["--states", "-1"]),
    ("pair_expectation", ["--identity-states", "0"]), ("pair_expectation", ["--draws", "0"]),
    ("stale_pairs", ["--problems", "0"]), ("stale_pairs", ["--states", "0"]), ("stale_pairs", ["--held-out", "0"]),
    ("stale_pairs", ["--steps", "0"]), ("stale_pairs", ["--every", "0"]), ("stale_pairs", ["--batch-size", "0"]),
    ("stale_pairs", ["--lr", "0"]),
    ("slip_offsets", ["--n-train", "0"]), ("slip_offsets", ["--samples", "0"]), ("slip_offsets", ["--n-eval", "-5"]),
])
def test_toy_scripts_refuse_sizes_below_their_minimum_before_loading_a_model(script, args, monkeypatch, capsys):
    """A size of 0 (or below) ended in a traceback after the model was loaded (no states to score), or in a silent
    no-op (a slice of -1 states, no problems to sample); now it is a usage error up front."""
    import runpy
    from pathlib import Path

    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **kw: pytest.fail("a model was loaded first"))
    main = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / f"{script}.py"))["main"]
    with pytest.raises(SystemExit) as done:
        main(args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[0].lstrip("-").replace("-", "_") in message.replace("-", "_"), message


def test_load_tiny_base_outside_a_clone_points_to_the_repository_and_the_variable(tmp_path, monkeypatch):
    """A pip-installed package has no data/: the error told a user to train a new base into site-packages."""
    monkeypatch.delenv("STEPDPO_TINY_BASE", raising=False)
    monkeypatch.setattr(tiny_models, "TINY_BASE_DIR", tmp_path / "site-packages" / "data" / "tiny-base")
    with pytest.raises(FileNotFoundError) as info:
        tiny_models.load_tiny_base()
    said = str(info.value)
    assert said.startswith(f"no tiny model at {tmp_path}/site-packages/data/tiny-base: it ships with the repository "
                           "(data/tiny-base), not with a pip-installed package: run from a clone (`pip install -e .`")
    assert said.index("set $STEPDPO_TINY_BASE to the clone's data/tiny-base (or pass path=)") < said.index(
        "train-base --out FOLDER")
    monkeypatch.setenv("STEPDPO_TINY_BASE", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=f"no tiny model at {tmp_path}/typo: "):
        tiny_models.load_tiny_base()
    assert "train-base" not in tiny_models.missing_tiny_model_message("x", "STEPDPO_TINY_REWARD_BASE")
    # a folder given by name (a script's --policy typo): the clone and the variable would not fix it (an audit)
    with pytest.raises(FileNotFoundError) as info:
        tiny_models.load_tiny_base(tmp_path / "own-typo")
    assert str(info.value) == (f"no tiny model at {tmp_path}/own-typo (no config.json there): give the folder of a "
                               "saved one")
    with pytest.raises(FileNotFoundError, match="it ships with the repository"):  # the shipped folder, named
        tiny_models.load_tiny_base(tiny_models.TINY_BASE_DIR)


def test_a_slip_is_a_nearby_number_never_a_negative_one():
    """``_nearby`` (every corrupted and recovering solution's slip) gives another number within the toy world's
    range: 3 - 10 is no slip of the tiny policy, whose data stay in 0..MAX_VALUE; where a step down would go below 0
    it falls back to x + 1."""
    rng = random.Random(0)
    for x in range(tw.MAX_VALUE + 1):
        for _ in range(40):
            y = tw._nearby(x, rng)
            assert y >= 0 and y != x, (x, y)


def test_a_step_that_does_not_parse_is_copied_from_the_last_number_it_wrote():
    """A step that does not parse and writes two results ("= 35 = 36") passes on the last one: the next step
    copying 36 made no copy mistake."""
    p = tw.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    v = tw.check(p, "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 35 = 36\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32")
    assert v.error_kinds == [None, "format", "propagated"]
    v = tw.check(p, "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36 = 35\n\nStep 3: 36 - 4 = 32\n\nAnswer: 32")
    assert v.error_kinds == [None, "format", "copy"]


def test_parse_prompt_refuses_operations_not_numbered_one_to_n():
    """A prompt whose operations skip a number or come out of order states no problem the checker can number its
    steps by; it was read as if numbered 1..n."""
    assert tw.parse_prompt("Problem: start with 7. Step 1: + 5. Step 2: * 3.\n") == tw.Problem(7, (("+", 5), ("*", 3)))
    for bad in ("Problem: start with 7. Step 1: + 5. Step 3: * 3.\n",
                "Problem: start with 7. Step 2: + 5. Step 1: * 3.\n"):
        with pytest.raises(ValueError, match="parse_prompt: operations are not numbered 1..n"):
            tw.parse_prompt(bad)


def test_corrupt_solution_refuses_a_seed_for_its_rng():
    """A seed passed as rng was an AttributeError ('int' object has no attribute 'random') at the first wrong number."""
    p = tw.make_problems(1, seed=0)[0]
    with pytest.raises(ValueError, match=r"corrupt_solution: rng must be a random.Random \(random.Random\(seed\)\), "
                                         "got 0"):
        tw.corrupt_solution(p, 0, "arithmetic", 0)
    assert tw.corrupt_solution(p, 0, "arithmetic", random.Random(0)) != p.gold_solution
