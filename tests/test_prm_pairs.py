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
