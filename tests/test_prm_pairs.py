"""Bad input to prm_pairs' reusable functions (a trial, T16): a reward model written to the documented
score_solutions(prompts, step_lists), a grader that does not return a bool, rewards that are not one finite number per
step, and texts or floats where Samples and step indices go, each refused naming what is wrong, or taken."""
import math
import re

import numpy as np
import pytest

from stepdpo_lite.tutorial import prm_pairs, toyworld

THRESHOLD = 0.0


class DocumentedPRM:
    """A user's PRM written to docs/method.md: score_solutions(prompts, step_lists), one reward per step."""

    def __init__(self, reward=lambda steps: [1.0] * len(steps)):
        self.reward = reward

    def score_solutions(self, prompts, step_lists):
        return [self.reward(steps) for steps in step_lists]


class KeywordPRM(DocumentedPRM):
    """One that takes the keywords ProcessRewardModel takes (the checks below are not about the signature)."""

    def score_solutions(self, prompts, step_lists, batch_size=None, progress=False):
        return super().score_solutions(prompts, step_lists)


def problem_and_texts():
    p = toyworld.make_problems(1, "test", seed=3, min_ops=2, max_ops=2)[0]
    return p, p.gold_solution, p.gold_solution.rsplit("Answer: ", 1)[0] + "Answer: 12345"


def test_label_samples_takes_a_prm_written_to_the_documented_signature():
    """score_solutions got batch_size= and progress= whatever it took: a PRM written to docs/method.md's
    score_solutions(prompts, step_lists) was a TypeError. Each keyword goes where the signature takes it."""
    p, gold, wrong = problem_and_texts()
    samples = prm_pairs.label_samples(DocumentedPRM(), [p], [[gold, wrong]], THRESHOLD, batch_size=8, progress=True)
    assert [(s.answer_correct, s.rewards) for s in samples[0]] == [(True, [1.0, 1.0]), (False, [1.0, 1.0])]
    got = []

    class Named(DocumentedPRM):
        def score_solutions(self, prompts, step_lists, batch_size=None):
            got.append(batch_size)
            return super().score_solutions(prompts, step_lists)

    class AnyKeywords(DocumentedPRM):
        def score_solutions(self, prompts, step_lists, **kw):
            got.append(kw)
            return super().score_solutions(prompts, step_lists)

    for prm in (Named(), AnyKeywords()):
        prm_pairs.label_samples(prm, [p], [[gold]], THRESHOLD, batch_size=8, progress=True)
    assert got == [8, {"batch_size": 8, "progress": True}]
    with pytest.raises(ValueError, match="label_samples: the reward model needs a method score_solutions"):
        prm_pairs.label_samples(lambda prompts, steps: [[1.0]], [p], [[gold]], THRESHOLD)


def test_label_samples_refuses_an_is_correct_that_does_not_return_a_bool():
    """is_correct returning "False" was read as right: every sample right, and solution_pairs built 0 pairs with no
    reason given."""
    p, gold, wrong = problem_and_texts()

    class SaysStr:
        prompt = p.prompt

        def is_correct(self, solution):
            return str(p.is_correct(solution))

    with pytest.raises(ValueError, match=re.escape("label_samples: problem 0, solution 0: the problem's is_correct "
                                                   "must return a bool (docs/own_task.md), got str 'True'")):
        prm_pairs.label_samples(KeywordPRM(), [SaysStr()], [[gold, wrong]], THRESHOLD)
    with pytest.raises(ValueError, match=r"label_samples: problems\[0\]: expected a problem with a str prompt and the "
                                         "methods is_correct"):
        prm_pairs.label_samples(KeywordPRM(), [p.prompt], [[gold]], THRESHOLD)


@pytest.mark.parametrize("reward, message", [
    (lambda steps: 1.0, "problem 0, solution 1: the PRM's rewards: expected a list of step rewards .*, got float"),
    (lambda steps: ["a"] * len(steps), "problem 0, solution 1: step 0's reward must be a finite number, got 'a'"),
    (lambda steps: [1.0, math.nan][:len(steps)], "problem 0, solution 1: step 1's reward must be a finite number, "
                                                 "got nan")])
def test_label_samples_refuses_rewards_that_are_not_a_finite_number_per_step(reward, message):
    """One reward per solution (an ORM's) was a TypeError (no len), a str one 'could not convert', and a NaN was
    stored, to be refused later by solution_pairs naming no solution."""
    p, gold, wrong = problem_and_texts()
    with pytest.raises(ValueError, match=f"label_samples: {message}"):
        prm_pairs.label_samples(KeywordPRM(reward), [p], [["  ", gold, wrong]], THRESHOLD)  # a blank: unscored
    rewards = [np.float32(0.5), np.int64(-1)]  # numpy's numbers are numbers
    assert prm_pairs.label_samples(KeywordPRM(lambda steps: rewards), [p], [[gold]], THRESHOLD)[0][0].rewards == [
        0.5, -1.0]


def test_the_pair_builders_name_a_text_in_place_of_a_sample():
    """solution_pairs, step_pairs and step_agreement read Samples (label_samples'): a text was an AttributeError."""
    p, gold, _ = problem_and_texts()
    for where, build in (("solution_pairs", lambda s: prm_pairs.solution_pairs([p], s)),
                         ("step_pairs", lambda s: prm_pairs.step_pairs({"dpo": None}, None, None, [p], s, THRESHOLD)),
                         ("step_agreement", lambda s: prm_pairs.step_agreement([p], s))):
        with pytest.raises(ValueError, match=f"{where}: problem 0, sample 0: expected a prm_pairs.Sample "
                                             r"\(label_samples labels the texts\), got str"):
            build([[gold]])
        with pytest.raises(ValueError, match=rf"{where}: samples\[0\]: expected a list of Samples"):
            build([gold])


@pytest.mark.parametrize("index", [1.0, True, "1", None])
def test_step_pair_rows_refuses_a_step_index_that_is_not_an_int(index):
    """step_index 1.0 was a TypeError, and True was read as step 1."""
    row = {"prompt": "x", "initial_reason_steps": "", "chosen_step": "a", "rejected_step": "b",
           "chosen_step_labels": [1.0, 1.0], "rejected_step_labels": [0.0, 1.0], "problem_index": 0, "step_index": 1}
    assert prm_pairs.step_pair_rows([row], form="prefix")[0]["chosen_step_labels"] == [1.0]
    with pytest.raises(ValueError, match=re.escape(f"step_pair_rows: row 0: field 'step_index': {index!r} is not a "
                                                   "step of both sides")):
        prm_pairs.step_pair_rows([dict(row, step_index=index)], form="prefix")


def test_a_resampled_candidates_error_names_the_problem_as_given():
    """step_pairs and step_negatives label their candidates with label_samples on the problems they resampled, a
    subset: its messages counted within it, so a NaN reward for problem 2's candidate was reported as "problem 0".
    What is no problem is named under the function called, and so is a row's problem_index outside the problems."""
    problems = toyworld.make_problems(3, "test", seed=3, min_ops=2, max_ops=2)
    wrong = problems[2].gold_solution.rsplit("Answer: ", 1)[0] + "Answer: 12345"
    steps = prm_pairs.extract_steps(wrong)
    rejected = prm_pairs.Sample(2, wrong, steps, [1.0] + [-1.0] * (len(steps) - 1), False, THRESHOLD, "dpo")

    def sample_fn(model, tokenizer, contexts, n, **kw):
        return [["Step 2: 1 + 1 = 2\n\nAnswer: 2"] * n for _ in contexts]

    nan_prm = DocumentedPRM(lambda steps: [math.nan] * len(steps))
    with pytest.raises(ValueError, match=r"label_samples: problem 2, solution 0: step 0's reward must be a finite "
                                         r"number, got nan"):
        prm_pairs.step_pairs({"dpo": None}, None, nan_prm, problems, [[], [], [rejected]], THRESHOLD, tries=1,
                             sample_fn=sample_fn)
    with pytest.raises(ValueError, match=r"step_pairs: problems\[1\]: expected a problem with a str prompt"):
        prm_pairs.step_pairs({"dpo": None}, None, nan_prm, [problems[0], problems[1].prompt, problems[2]],
                             [[], [], [rejected]], THRESHOLD, tries=1, sample_fn=sample_fn)  # was an AttributeError
    row = {"prompt": problems[2].prompt, "initial_reason_steps": steps[0], "chosen_step": "a", "rejected_step": "b",
           "step_index": 1, "problem_index": 2}
    broken = [problems[0], problems[1], problems[2].prompt]
    with pytest.raises(ValueError, match=r"step_negatives: problems\[2\]: expected a problem with a str prompt"):
        prm_pairs.step_negatives({"dpo": None}, None, nan_prm, broken, [row], THRESHOLD, tries=1,
                                 sample_fn=sample_fn)  # was label_samples' "problems[0]", its place in the subset
    with pytest.raises(ValueError, match=r"mirrored_negatives: problems\[2\]: expected a problem with a str prompt"):
        prm_pairs.mirrored_negatives(nan_prm, broken, [], THRESHOLD)  # was not checked without candidates
    for index in (3, -1):  # an IndexError, and problem 2 labelled in place of a problem that is not there
        with pytest.raises(ValueError, match=rf"step_negatives: problem_index {index} is not an index of the 3 "
                                             "problems given"):
            prm_pairs.step_negatives({"dpo": None}, None, nan_prm, problems, [dict(row, problem_index=index)],
                                     THRESHOLD, tries=1, sample_fn=sample_fn)
    with pytest.raises(ValueError, match=r"label_samples: problem 2, solution 0: step 0's reward must be a finite"):
        prm_pairs.step_negatives({"dpo": None}, None, nan_prm, problems, [row], THRESHOLD, tries=1, sample_fn=sample_fn)


def test_resampled_candidates_are_labelled_without_checking_the_problems_again(monkeypatch):
    """step_negatives checked its problems, then label_samples checked the subset it was given again (each batch of
    step_pairs' resampling too): the candidates are now labelled on the checked problems, once a call."""
    problems = toyworld.make_problems(3, "test", seed=3, min_ops=2, max_ops=2)
    steps = prm_pairs.extract_steps(problems[2].gold_solution)
    row = {"prompt": problems[2].prompt, "initial_reason_steps": steps[0], "chosen_step": "a", "rejected_step": "b",
           "step_index": 1, "problem_index": 2}
    checked, check_problems = [], prm_pairs.check_problems
    monkeypatch.setattr(prm_pairs, "check_problems", lambda problems, where, **kw: (
        checked.append(where), check_problems(problems, where, **kw))[1])
    rows, stats = prm_pairs.step_negatives({"dpo": None}, None, DocumentedPRM(), problems, [row], THRESHOLD, tries=2,
                                           sample_fn=lambda m, t, contexts, n, **kw: [["x"] * n for _ in contexts])
    assert (rows, stats["not_a_step_the_prm_rejects"]) == ([], 1) and checked == ["step_negatives: problems"]


class LineStub:
    """A problem whose steps are lines: right when the answer is 3."""
    prompt = "Q: 1 + 1 + 1?\n"

    def is_correct(self, text):
        return text.strip().endswith("answer 3")


class LinePRM(DocumentedPRM):
    """A user's PRM that splits steps at "\\n" (its own ``step_delimiter``, no config) and rejects a step holding 9."""
    step_delimiter = "\n"

    def __init__(self):
        super().__init__(lambda steps: [-5.0 if "9" in s else 5.0 for s in steps])


class LineConfigPRM(LinePRM):
    """The same with the delimiter in its config, as the kit's ProcessRewardModel has it."""
    step_delimiter = None
    config = type("Config", (), {"step_delimiter": "\n"})()


@pytest.mark.parametrize("prm", [LinePRM(), LineConfigPRM()], ids=["attribute", "config"])
def test_step_negatives_splits_at_the_prms_delimiter(prm):
    """step_negatives split the shared prefix at the default "\\n\\nStep" and label_samples read only a config's
    delimiter: with a PRM that splits at "\\n", every wrong step at k >= 2 was dropped as one the PRM accepts
    (``not_a_step_the_prm_rejects``). Both now split where the PRM does (``rewards.step_delimiter_of``)."""
    samples = prm_pairs.label_samples(prm, [LineStub()], [["step one 1\nstep two 9\nanswer 3"]], THRESHOLD)
    assert samples[0][0].steps == ["step one 1", "\nstep two 9", "\nanswer 3"]
    assert samples[0][0].rewards == [5.0, -5.0, 5.0]
    row = {"prompt": LineStub.prompt, "initial_reason_steps": "step one 1\nstep two 2", "chosen_step": "\nstep 3 3",
           "rejected_step": "\nstep 3 4", "chosen": "step one 1\nstep two 2\nstep 3 3\nanswer 3",
           "chosen_step_rewards_prm": [5.0] * 4, "problem_index": 0, "step_index": 2}
    rows, stats = prm_pairs.step_negatives({"dpo": None}, None, prm, [LineStub()], [row], THRESHOLD, tries=2,
                                           sample_fn=lambda m, t, contexts, n, **kw: [["\nstep 3 9\nanswer 3"] * n
                                                                                     for _ in contexts])
    assert dict(stats) == {"pairs": 1}
    assert rows[0]["rejected_step"] == "\nstep 3 9"
    assert rows[0]["rejected"] == "step one 1\nstep two 2\nstep 3 9\nanswer 3"
    assert rows[0]["rejected_step_rewards_prm"] == [5.0, 5.0, -5.0, 5.0]


def test_step_pairs_count_the_rejected_solutions_over_max_per_problem():
    """The rejected solutions of a problem beyond ``max_per_problem`` are dropped, not left for other problems (the
    counter was named ``rejected_left_for_other_problems``)."""
    samples = prm_pairs.label_samples(LinePRM(), [LineStub()], [["a 1\nb 9\nanswer 4", "a 1\nb 9\nanswer 5"]],
                                      THRESHOLD, policy="dpo")
    rows, stats = prm_pairs.step_pairs({"dpo": None}, None, LinePRM(), [LineStub()], samples, THRESHOLD,
                                       max_per_problem=1, tries=1,
                                       sample_fn=lambda m, t, contexts, n, **kw: [["\nb 2\nanswer 3"] * n
                                                                                 for _ in contexts])
    assert dict(stats) == {"rejected_over_max_per_problem": 1, "no_accepted_step": 0, "pairs": 1, "prefixes_tried": 1}
    assert rows[0]["chosen"] == "a 1\nb 2\nanswer 3" and rows[0]["step_index"] == 1


def test_a_right_answer_is_chosen_only_when_scored_with_no_step_the_prm_rejects():
    samples = prm_pairs.label_samples(LinePRM(), [LineStub()], [["a 1\nb 9\nanswer 3", "a 1\nb 2\nanswer 3"]],
                                      THRESHOLD)
    assert [(s.prm_first_error, s.chosen_ok) for s in samples[0]] == [(1, False), (-1, True)]
    assert not prm_pairs.Sample(0, "a 1\nanswer 3", ["a 1", "\nanswer 3"], None, True, THRESHOLD).chosen_ok


class ShortPRM(LinePRM):
    """A PRM too short for a solution of more than two steps."""

    def encode(self, prompt, steps):
        if len(steps) > 2:
            raise prm_pairs.InputTooLong("too long")


def test_a_wrong_answer_too_long_for_the_prm_is_paired_on_neither_side():
    samples = prm_pairs.label_samples(ShortPRM(), [LineStub()], [["a 1\nanswer 3", "a 1\nb 2\nanswer 4"]], THRESHOLD)
    assert samples[0][1].rewards is None and not samples[0][1].rejected_ok
    rows, stats = prm_pairs.solution_pairs([LineStub()], samples)
    assert rows == [] and stats["unscored_solutions"] == 1


def test_label_samples_splits_at_the_delimiter_given_before_the_prms():
    samples = prm_pairs.label_samples(LinePRM(), [LineStub()], [["a 1|b 2\nc|answer 3"]], THRESHOLD, delimiter="|")
    assert samples[0][0].steps == ["a 1", "|b 2\nc", "|answer 3"]


class TwiceOverPRM(DocumentedPRM):
    """A PRM that returns every solution's rewards twice."""

    def score_solutions(self, prompts, step_lists):
        return super().score_solutions(prompts, step_lists) * 2


def test_label_samples_refuses_more_reward_lists_than_solutions():
    p, gold, _ = problem_and_texts()
    with pytest.raises(ValueError, match="label_samples: the PRM returned 2 lists of rewards for 1 solutions"):
        prm_pairs.label_samples(TwiceOverPRM(), [p], [[gold]], THRESHOLD)


def test_rejected_step_probs_leave_every_step_after_a_first_error_at_step_0_alone():
    sample = prm_pairs.Sample(0, "a\nb\nc", ["a", "\nb", "\nc"], [-5.0, -5.0, 5.0], False, THRESHOLD)
    low = 1 / (1 + math.exp(5.0))
    assert prm_pairs.rejected_step_probs(sample) == pytest.approx([low, 1.0, 1.0])
    assert prm_pairs.rejected_step_probs(sample, "prm") == pytest.approx([low, low, 1 - low])


class PromptStub(LineStub):
    """LineStub under a prompt of its own."""

    def __init__(self, prompt):
        self.prompt = prompt


def test_solution_pairs_count_no_pair_over_no_cap_and_draw_by_the_problems_prompt():
    problems = [PromptStub(f"Q{i}: 1 + 1 + 1?\n") for i in range(8)]
    texts = ["a 1\nanswer 3", "a 1\nanswer 4", "a 1\nanswer 5"]  # one right, two wrong: two pairs a problem
    samples = prm_pairs.label_samples(LinePRM(), problems, [texts] * 8, THRESHOLD)
    rows, stats = prm_pairs.solution_pairs(problems, samples, max_pairs_per_problem=None)
    assert len(rows) == 16 and stats["pairs_over_max_pairs_per_problem"] == 0
    rows, stats = prm_pairs.solution_pairs(problems, samples, max_pairs_per_problem=1)
    assert len(rows) == 8 and stats["pairs_over_max_pairs_per_problem"] == 8
    assert {r["rejected"] for r in rows} == set(texts[1:])  # seeded by each prompt: not the same pick for all


def test_solution_pairs_chosen_answer_keeps_a_right_answer_the_prm_rejects_a_step_of():
    """chosen="answer" is plain RFT's positives: a right answer whose step the PRM rejects (a lucky one) is chosen
    too; "prm" (the default) uses it on neither side. A right answer the PRM could not score is left out either way
    (it was a TypeError: a row carries step probabilities). Another rule is refused, naming the rules."""
    texts = ["a 1\nanswer 3", "a 9\nanswer 3", "a 1\nanswer 4"]  # clean right, lucky right (9: rejected), wrong
    samples = prm_pairs.label_samples(LinePRM(), [LineStub()], [texts], THRESHOLD)
    by_prm, stats = prm_pairs.solution_pairs([LineStub()], samples)
    assert [r["chosen"] for r in by_prm] == [texts[0]] and stats["right_answer_prm_rejected"] == 1
    unscored = prm_pairs.Sample(0, "a 2\nanswer 3", ["a 2\n", "answer 3"], None, True, THRESHOLD)  # too long, say
    by_answer, _ = prm_pairs.solution_pairs([LineStub()], [samples[0] + [unscored]], chosen="answer")
    assert sorted(r["chosen"] for r in by_answer) == sorted(texts[:2])  # not the unscored one: no step probabilities
    assert {r["rejected"] for r in by_answer} == {texts[2]}
    with pytest.raises(ValueError, match=r"solution_pairs: chosen must be one of \('prm', 'answer'\), got 'gold'"):
        prm_pairs.solution_pairs([LineStub()], samples, chosen="gold")


def test_count_lucky_counts_the_right_answers_reached_through_a_wrong_step_and_those_the_prm_kept():
    """A right answer after a slip (9 + 6 = 16, then 16 * 3 = 45) is lucky; the wrong answer is not counted at all;
    a repeated text counts each time. The PRM here accepts every step, so it keeps the lucky one; rejecting its
    first step, it keeps only the clean ones. No checker: None."""
    p, gold, wrong = problem_and_texts()
    assert gold == "Step 1: 9 + 6 = 15\n\nStep 2: 15 * 3 = 45\n\nAnswer: 45"  # the lucky text is written on it
    lucky = gold.replace("= 15", "= 16").replace("15 *", "16 *")
    assert p.is_correct(lucky) and p.verdict(lucky).first_error == 0
    texts = [[gold, gold, lucky, wrong]]
    accepts = prm_pairs.label_samples(DocumentedPRM(), [p], texts, THRESHOLD)
    assert prm_pairs.count_lucky([p], accepts) == {"right": 3, "lucky": 1, "prm_kept": 3, "prm_kept_lucky": 1}
    catches = prm_pairs.label_samples(DocumentedPRM(lambda steps: [-1.0 if "16" in s else 1.0 for s in steps]), [p],
                                      texts, THRESHOLD)
    assert prm_pairs.count_lucky([p], catches) == {"right": 3, "lucky": 1, "prm_kept": 2, "prm_kept_lucky": 0}
    no_checker = LineStub()
    no_checker.verdict = lambda text: None
    samples = prm_pairs.label_samples(LinePRM(), [no_checker], [["a 1\nanswer 3"]], THRESHOLD)
    assert prm_pairs.count_lucky([no_checker], samples) is None


def test_step_pairs_resample_a_repeated_rejected_text_once_and_none_the_prm_accepts():
    texts = ["a 1\nb 9\nanswer 4", "a 1\nb 9\nanswer 4", "a 1\nb 2\nanswer 5"]  # the last: no step the PRM rejects
    samples = prm_pairs.label_samples(LinePRM(), [LineStub()], [texts], THRESHOLD, policy="dpo")
    rows, stats = prm_pairs.step_pairs({"dpo": None}, None, LinePRM(), [LineStub()], samples, THRESHOLD,
                                       max_per_problem=3, tries=1,
                                       sample_fn=lambda m, t, contexts, n, **kw: [["\nb 2\nanswer 3"] * n
                                                                                 for _ in contexts])
    assert dict(stats) == {"prm_found_no_wrong_step": 1, "rejected_over_max_per_problem": 0, "no_accepted_step": 0,
                           "pairs": 1, "prefixes_tried": 1}
    assert [(r["rejected"], r["chosen"]) for r in rows] == [(texts[0], "a 1\nb 2\nanswer 3")]


def test_step_pairs_resample_with_another_seed_at_each_attempt():
    samples = prm_pairs.label_samples(LinePRM(), [LineStub()], [["a 1\nb 9\nanswer 4"]], THRESHOLD, policy="dpo")
    seeds = []

    def sample_fn(model, tokenizer, contexts, n, seed, **kw):  # the wrong step again: never accepted
        seeds.append(seed)
        return [["\nb 9\nanswer 4"] * n for _ in contexts]

    _, stats = prm_pairs.step_pairs({"dpo": None}, None, LinePRM(), [LineStub()], samples, THRESHOLD, tries=1,
                                    attempts=3, sample_fn=sample_fn)
    assert stats["no_accepted_step"] == 1 and len(set(seeds)) == 3


def test_mirrored_step_needs_the_same_count_of_numbers_on_both_sides():
    assert prm_pairs.mirrored_step("\n3 + 4 = 7", "\n3 + 4 = 8") == "\n3 + 4 = 6"
    assert prm_pairs.mirrored_step("\n3 + 4 = 7", "\n3 + 4 = 8 + 1") is None  # a number more: no single slip


def test_mirrored_step_mirrors_down_to_0_but_not_below():
    assert prm_pairs.mirrored_step("\n4 - 3 = 1", "\n4 - 3 = 2") == "\n4 - 3 = 0"
    assert prm_pairs.mirrored_step("\n4 - 3 = 1", "\n4 - 3 = 3") is None


def test_mirrored_negatives_refuse_a_row_whose_chosen_does_not_hold_its_chosen_step():
    row = {"prompt": LineStub.prompt, "initial_reason_steps": "a 1", "chosen_step": "\nb 2", "rejected_step": "\nb 4",
           "chosen": "a 1\nb 3\nanswer 3", "chosen_step_rewards_prm": [5.0] * 3, "problem_index": 0, "step_index": 1}
    with pytest.raises(ValueError, match="step row 0: 'chosen' does not start with 'initial_reason_steps' \\+ "
                                         "'chosen_step'"):
        prm_pairs.mirrored_negatives(LinePRM(), [LineStub()], [row], THRESHOLD)


@pytest.mark.parametrize("index", [2, -1])
def test_step_pair_rows_refuses_a_step_index_past_either_sides_labels(index):
    row = {"prompt": "x", "initial_reason_steps": "", "chosen_step": "a", "rejected_step": "b",
           "chosen_step_labels": [1.0, 1.0], "rejected_step_labels": [0.0, 1.0], "problem_index": 0, "step_index": 1}
    with pytest.raises(ValueError, match=f"step_pair_rows: row 0: field 'step_index': {index} is not a step of both"):
        prm_pairs.step_pair_rows([dict(row, step_index=index)], form="prefix")


def test_count_mislabels_is_none_when_the_checker_gives_no_verdict_of_either_side():
    p, gold, wrong = problem_and_texts()

    class SomeChecked:  # a checker that gives no verdict of wrong answers
        def verdict(self, text):
            return p.verdict(text) if p.is_correct(text) else None

    row = {"problem_index": 0, "chosen": gold, "rejected": wrong, "step_index": -1, "prm_first_error": 0}
    assert prm_pairs.count_mislabels([SomeChecked()], [row]) is None


def test_step_agreement_accepts_a_step_at_the_threshold_and_is_none_without_a_step_or_a_checker():
    from stepdpo_lite.tutorial import gsm8k

    p, gold, _ = problem_and_texts()
    steps = prm_pairs.extract_steps(gold)
    at = prm_pairs.Sample(0, gold, steps, [THRESHOLD] * len(steps), True, THRESHOLD)
    assert prm_pairs.step_agreement([p], [[at]]) == 1.0  # every step right, every reward at the threshold
    assert prm_pairs.step_agreement([p], [[]]) is None
    question = gsm8k.GSM8KProblem(question="2 + 2?", answer="4", prompt="What is 2 + 2?\n")  # no step checker
    answer = prm_pairs.Sample(1, "Answer: 4", ["Answer: 4"], [1.0], True, THRESHOLD)
    assert prm_pairs.step_agreement([p, question], [[at], [answer]]) is None
