"""tasks: one interface for the toy world and GSM8K (problems, grading, step labels, sampling, evaluation)."""
import json
import random
import re
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from stepdpo_lite import generation
from stepdpo_lite.tutorial import (bestofn, display_names, gsm8k, labelling, paired_stats, policy_eval, prm_pairs,
                                   profiles, task_problems, tasks, tiny_models, toyworld)
from stepdpo_lite.tutorial.task_problems import Verdict
from stepdpo_lite.tutorial.smoke import GSM8K_SLICE


def _gsm8k(n_train=4, n_eval=3, tokenizer=None, seed=0):
    return gsm8k.load_problems(tokenizer, n_train, n_eval, seed=seed, name=str(GSM8K_SLICE))


def test_both_kinds_of_problem_implement_the_interface(tiny_tokenizer):
    toy = toyworld.make_problems(1, "test")[0]
    g = _gsm8k(tokenizer=tiny_tokenizer)["test"][0]
    for p, right in ((toy, toy.gold_solution), (g, f"Step 1: so\n\nAnswer: {g.answer}")):
        assert isinstance(p, task_problems.TaskProblem) and isinstance(p.prompt, str)
        assert p.is_correct(right) and not p.is_correct("Answer: -123456")
        assert p.final_answer(right) == p.gold_answer() == float(str(p.answer).replace(",", ""))
    assert toy.step_labels(toy.gold_solution) == [True] * len(toy.ops) \
        and toy.verdict(toy.gold_solution).first_error == -1
    assert g.step_labels("Answer: 1") is None and g.verdict("Answer: 1") is None  # GSM8K: no step checker


def test_gsm8k_prompts_hold_the_question_only(tiny_tokenizer):
    """Issue #14: the prompt never carries the answer or the reference solution."""
    for split in _gsm8k(tokenizer=tiny_tokenizer).values():
        for p in split:
            assert p.question.strip() in p.prompt and gsm8k.INSTRUCTION in p.prompt
            assert p.solution and p.solution not in p.prompt and "####" not in p.prompt and "answer=" not in p.prompt
    assert task_problems.prompts_of(_gsm8k(tokenizer=tiny_tokenizer)["test"])[0].startswith(gsm8k.INSTRUCTION)


def test_prompts_of_names_a_problem_without_a_str_prompt():
    class Broken:
        prompt = None
    with pytest.raises(ValueError, match="problem 1: its prompt must be a str"):
        task_problems.prompts_of([toyworld.make_problems(1, "test")[0], Broken()])
    with pytest.raises(ValueError, match="prompts_of: problems must be a list of a task's problems .*, not a str"):
        policy_eval.sample_solutions(None, None, "What is 2 + 3?")  # read a character at a time, it blamed "problem 0"


def test_local_gsm8k_is_carved_into_disjoint_splits_and_test_does_not_depend_on_n_train(tiny_tokenizer):
    a = _gsm8k(n_train=10, n_eval=5, tokenizer=tiny_tokenizer)
    questions = {s: {p.question for p in ps} for s, ps in a.items()}
    assert [len(a[s]) for s in ("train", "validation", "test")] == [10, 5, 5]
    assert not (questions["train"] & questions["validation"] or questions["train"] & questions["test"]
                or questions["validation"] & questions["test"])
    assert _gsm8k(n_train=0, n_eval=5, tokenizer=tiny_tokenizer)["test"] == a["test"]  # notebooks 04-06 redraw it
    assert _gsm8k(n_train=0, n_eval=5, tokenizer=tiny_tokenizer, seed=1)["test"] != a["test"]
    with pytest.raises(ValueError, match="the pool has 200 problems"):
        _gsm8k(n_train=190, n_eval=10, tokenizer=tiny_tokenizer)


def test_local_folder_with_train_and_test_files_is_used_like_the_hub(tmp_path, tiny_tokenizer):
    rows = GSM8K_SLICE.read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(rows[:20]) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(rows[20:30]) + "\n")
    got = gsm8k.load_problems(tiny_tokenizer, 15, 4, name=str(tmp_path))
    test_questions = {p.question for p in got["test"]}
    assert [len(got[s]) for s in ("train", "validation", "test")] == [15, 4, 4]
    assert test_questions <= {json.loads(r)["question"] for r in rows[20:30]}
    with pytest.raises(ValueError, match="asked for"):
        gsm8k.load_problems(tiny_tokenizer, 18, 4, name=str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a .jsonl file nor a folder"):
        gsm8k.load_problems(tiny_tokenizer, 1, 1, name=str(tmp_path / "empty"))


def test_get_task_follows_the_profile(monkeypatch):
    assert tasks.get_task("tiny") == tasks.ToyTask() and tasks.get_task("t4-16gb") == tasks.GSM8KTask("openai/gsm8k")
    smoke = tasks.get_task(profiles.get_profile("smoke"))
    assert smoke.name == "gsm8k" and smoke.source == str(GSM8K_SLICE) and not smoke.has_step_checker
    monkeypatch.setattr(gsm8k, "load_hub_split", lambda *a, **k: pytest.fail("downloaded before the check"))
    with pytest.raises(ValueError, match="tokenizer"):
        tasks.get_task("t4-16gb").held_out(2)  # before any download
    with pytest.raises(ValueError, match="tokenizer"):
        tasks.get_task("smoke").splits(2, 2)


def test_evaluate_policy_is_the_one_evaluator_of_both_tasks(tiny_model, tiny_tokenizer):
    """One evaluator for every task (the toy world's and GSM8K's own copies are gone): its figures are the
    checker's verdicts on the very samples generation.sample_solutions draws."""
    problems = toyworld.make_problems(4, "test")
    kw = dict(n=2, temperature=1.0, max_new_tokens=8, progress=False, seed=1)
    new = policy_eval.evaluate_policy(tiny_model, tiny_tokenizer, problems, **kw)
    sols = generation.sample_solutions(tiny_model, tiny_tokenizer, [p.prompt for p in problems], **kw)
    verdicts = [toyworld.check(p, s) for p, ss in zip(problems, sols) for s in ss]
    labels = [lab for v in verdicts for lab in v.step_labels]
    assert new["n_solutions"] == 8 and new["accuracy"] == sum(v.answer_correct for v in verdicts) / 8
    assert new["step_accuracy"] == sum(labels) / max(len(labels), 1)
    assert sum(new["first_error_kinds"].values()) == sum(v.first_error >= 0 for v in verdicts)
    # the tiny tokenizer spells no ’ or non-breaking space (sampling refuses such a prompt): ASCII questions only
    g = [p for p in _gsm8k(n_eval=6, tokenizer=tiny_tokenizer)["test"] if p.prompt.isascii()][:3]
    out = policy_eval.evaluate_policy(tiny_model, tiny_tokenizer, g, n=1, max_new_tokens=4, progress=False)
    assert out["n_solutions"] == 3 and "step_accuracy" not in out  # no checker on GSM8K
    sols = generation.sample_solutions(tiny_model, tiny_tokenizer, [p.prompt for p in g], n=1, max_new_tokens=4,
                                       progress=False)
    assert out["accuracy"] == sum(p.is_correct(s[0]) for p, s in zip(g, sols)) / 3


def test_sample_solutions_names_what_its_bar_samples_and_draws_the_same(tiny_model, tiny_tokenizer, capsys):
    """Notebook 01 drew a bar for its train split only: validation and test then sampled for minutes without a word.
    A str ``progress`` names the split's bar; the draws are the same as without a bar."""
    problems = toyworld.make_problems(3, "validation")
    kw = dict(n=2, temperature=1.0, max_new_tokens=8, seed=1)
    named = policy_eval.sample_solutions(tiny_model, tiny_tokenizer, problems, progress="sampling validation", **kw)
    out, err = capsys.readouterr()
    assert out == "" and "sampling validation: 100%" in err  # the bar (stderr), named
    assert named == generation.sample_solutions(tiny_model, tiny_tokenizer, [p.prompt for p in problems],
                                                progress=False, **kw)
    assert policy_eval.sample_solutions(tiny_model, tiny_tokenizer, problems, progress=False, **kw) == named
    assert capsys.readouterr() == ("", "")  # no bar, no line


def test_paired_difference_is_the_paired_t_interval_of_the_per_problem_differences():
    # d = (1, 0, 0, 1, 0, 0): mean 1/3, sd 0.5164 (n − 1), se 0.2108; t(0.975, 5 df) = 2.5706 (a t table)
    out = paired_stats.paired_difference([1, 1, 0, 1, 0, 1], [0, 1, 0, 0, 0, 1])
    assert out["difference"] == pytest.approx(1 / 3)
    assert out["low"] == pytest.approx(1 / 3 - 2.5706 * 0.2108, abs=1e-3)
    assert out["high"] == pytest.approx(1 / 3 + 2.5706 * 0.2108, abs=1e-3)
    # sampled: counts of n solutions; the point is the difference of the accuracies
    a, b = [2, 1, 0, 2, 1], [1, 1, 0, 0, 2]
    out = paired_stats.paired_difference(a, b, n=2)
    assert out["difference"] == pytest.approx(sum(a) / 10 - sum(b) / 10)
    assert out["low"] < out["difference"] < out["high"]
    assert paired_stats.paired_difference([1, 0, 1], [1, 0, 1]) == {"difference": 0.0, "low": 0.0, "high": 0.0}
    with pytest.raises(ValueError, match="same problems"):
        paired_stats.paired_difference([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="at least 2 problems"):
        paired_stats.paired_difference([1], [0])
    with pytest.raises(ValueError, match="between 0 and n = 1"):
        paired_stats.paired_difference([2, 0], [1, 0])


def test_paired_difference_reads_its_interval_at_the_confidence_given():
    """The suite read intervals at the default 0.95 only: a confidence given and ignored went unseen."""
    # d = (1, 0, 0, 1, 0, 0): mean 1/3, se 0.2108; t(0.95, 5 df) = 2.0150 (a t table), where 0.95's is 2.5706
    out = paired_stats.paired_difference([1, 1, 0, 1, 0, 1], [0, 1, 0, 0, 0, 1], confidence=0.9)
    assert out["low"] == pytest.approx(1 / 3 - 2.0150 * 0.2108, abs=1e-3)
    assert out["high"] == pytest.approx(1 / 3 + 2.0150 * 0.2108, abs=1e-3)


def test_paired_difference_without_spread_is_the_point_without_a_scipy_warning():
    """Every problem differs alike: scipy's t-test warns of catastrophic cancellation (a RuntimeWarning printed under
    a notebook's cell); the interval is the point."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_stats.paired_difference([1, 1, 1], [0, 0, 0]) == {"difference": 1.0, "low": 1.0, "high": 1.0}


def test_accuracy_differences_read_sampled_counts_as_shares_of_n_sampled_and_refuse_two_ns():
    a = {"greedy_right": [1, 0, 1], "sampled_right": [2, 1, 0], "n_sampled": 2}
    b = {"greedy_right": [0, 0, 1], "sampled_right": [1, 1, 0], "n_sampled": 2}
    out = paired_stats.accuracy_differences(a, b)
    assert out["accuracy"]["difference"] == pytest.approx(1 / 3)
    assert out["sampled_accuracy"] == paired_stats.paired_difference([2, 1, 0], [1, 1, 0], n=2)
    assert out["sampled_accuracy"]["difference"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="sampled 2 and 4 times per problem; compare runs with the same n_sampled"):
        paired_stats.accuracy_differences(a, {**b, "n_sampled": 4})


def test_bestofn_grades_through_the_interface_without_type_dispatch(tiny_tokenizer):
    class Custom:  # any problem with the interface works: no isinstance on problem types
        prompt = "Q?"
        def is_correct(self, s): return s == "yes"
        def final_answer(self, s): return 1.0 if s == "yes" else None
        def gold_answer(self): return 1.0
        def step_labels(self, s): return None
        def verdict(self, s): return None
    graded = bestofn.grade([Custom()], [["yes", "no"]])
    assert graded == {"correct": [[True, False]], "answers": [[1.0, None]], "gold": [1.0]}
    assert bestofn.held_out_problems("smoke", 3, tokenizer=tiny_tokenizer) == _gsm8k(0, 3, tiny_tokenizer)["test"]


def test_toy_task_labels_with_the_checker_and_needs_no_rollouts():
    t = tasks.ToyTask()
    ps = t.splits(3, 2)
    assert [len(ps[s]) for s in ("train", "validation", "test")] == [3, 2, 2] and t.held_out(2) == ps["test"]
    sols = [[p.gold_solution, "Step 1: 1 + 1 = 3"] for p in ps["train"]]
    verdicts = t.label(None, None, ps["train"], sols)
    assert [v.answer_correct for v in verdicts[0]] == [True, False]
    assert t.rollout_rows(ps["train"], n_samples=4, n_rollouts=8) == [0, 0, 0]


def test_both_tasks_label_every_solution_a_blank_one_too(monkeypatch, tiny_tokenizer):
    """GSM8KTask.label dropped blank solutions, ToyTask.label did not: zip(solutions, verdicts) gave a GSM8K blank
    the verdict of the solution after it."""
    monkeypatch.setattr(labelling, "mc_step_labels", lambda model, tok, prompts, steps, is_correct, **kw: {
        "labels": [[False] * len(s) for s in steps]})
    toy_problem, gsm_problem = toyworld.make_problems(1, "test")[0], _gsm8k(0, 1, tiny_tokenizer)["test"][0]
    wrong = "Step 1: a\n\nAnswer: -1"
    toy = tasks.ToyTask().label(None, None, [toy_problem], [[toy_problem.gold_solution, " ", wrong]])
    gsm = tasks.GSM8KTask().label(None, None, [gsm_problem], [[f"Answer: {gsm_problem.answer}", " ", wrong]],
                                  progress=False)
    assert [len(vs) for vs in toy + gsm] == [3, 3]
    assert [v.answer_correct for v in toy[0]] == [v.answer_correct for v in gsm[0]] == [True, False, False]
    assert toy[0][1] == gsm[0][1] == Verdict([], -1, False)  # the blank: no steps, a wrong answer
    assert gsm[0][2].step_labels == [False]  # the wrong solution keeps its own labels


def test_gsm8k_rollout_rows_before_and_after_sampling(tiny_tokenizer):
    t, ps = tasks.GSM8KTask(str(GSM8K_SLICE)), _gsm8k(2, 1, tiny_tokenizer)["train"]
    guess = t.rollout_rows(ps, n_samples=4, n_rollouts=8)
    assert guess == [4 * max(p.reference_steps - 1, 1) * 8 for p in ps]
    right, wrong = f"Step 1: a\n\nAnswer: {ps[0].answer}", "Step 1: a\n\nStep 2: b\n\nAnswer: -1"  # 2 steps
    # only wrong solutions need rollouts: 8 after each of their steps but the last (the answer is in step 2)
    assert t.rollout_rows(ps, n_rollouts=8, solutions=[[right, wrong, " "], [wrong]]) == [8, 8]
    with pytest.raises(ValueError, match="GSM8KTask.rollout_rows: 2 problems but 1 lists of solutions"):
        t.rollout_rows(ps, n_rollouts=8, solutions=[[wrong]])  # zip counted the first problem only


def test_gsm8k_rollout_rows_need_none_for_a_right_solution_of_several_steps(tiny_tokenizer):
    t, ps = tasks.GSM8KTask(str(GSM8K_SLICE)), _gsm8k(2, 1, tiny_tokenizer)["train"]
    right = f"Step 1: a\n\nStep 2: b\n\nStep 3: c\n\nAnswer: {ps[0].answer}"  # 3 steps, a right answer
    assert ps[0].is_correct(right)
    assert t.rollout_rows(ps[:1], n_rollouts=8, solutions=[[right]]) == [0]


def test_gsm8k_rollout_rows_guess_two_steps_at_least_for_a_short_or_unknown_reference():
    """Before sampling, a reference of one step (or none known) is guessed as two: one point of rollouts per wrong
    sample, not none, so that the plan does not count its labelling as free."""
    one = gsm8k.GSM8KProblem("q", "18", "P", solution="So 18 apples.\n#### 18")
    unknown = gsm8k.GSM8KProblem("q", "18", "P")
    assert (one.reference_steps, unknown.reference_steps) == (1, 0)
    assert tasks.GSM8KTask().rollout_rows([one, unknown], n_samples=4, n_rollouts=8) == [32, 32]


def test_paired_difference_refuses_n_below_1_and_counts_that_are_not_finite():
    """n = 0 and NaN counts gave NaN results: every comparison with NaN is false, so the range check let them by.
    Shares stay allowed (best-of-N passes each problem's share of right picks, n = 1)."""
    with pytest.raises(ValueError, match="paired_difference: n must be an int >= 1, got 0"):
        paired_stats.paired_difference([1, 0, 1], [0, 0, 1], n=0)
    with pytest.raises(ValueError, match="n must be an int"):
        paired_stats.paired_difference([1, 0, 1], [0, 0, 1], n=2.0)
    with pytest.raises(ValueError, match=r"right_a\[1\] must be a finite count of right solutions, got nan"):
        paired_stats.paired_difference([1, float("nan"), 1], [0, 0, 1])
    with pytest.raises(ValueError, match=r"right_b\[2\] must be a finite count of right solutions, got inf"):
        paired_stats.paired_difference([1, 0, 1], [0, 0, float("inf")])
    assert paired_stats.paired_difference([1, 0, 1], [0, 0, 0.5])["difference"] == pytest.approx(0.5)


def test_paired_difference_refuses_a_count_above_n_when_n_is_above_1():
    with pytest.raises(ValueError, match="counts must lie between 0 and n = 2"):
        paired_stats.paired_difference([3, 0, 1], [1, 0, 1], n=2)


def test_paired_difference_refuses_a_negative_count_and_counts_that_are_not_a_flat_list():
    """A count below 0 is no count of right solutions (a difference of -1 right read as one more wrong); counts given
    per problem and sample ([[1, 0], ...], a table) are refused as not flat, not read along an axis of scipy's. The
    suite tried counts above n only, and flat lists only."""
    with pytest.raises(ValueError, match="paired_difference: counts must lie between 0 and n = 1"):
        paired_stats.paired_difference([1, -1, 1], [0, 0, 1])
    with pytest.raises(ValueError, match=re.escape("paired_difference: right_a and right_b must be flat lists of the "
                                                   "same problems, got shapes (2, 2) and (2, 2)")):
        paired_stats.paired_difference([[1, 0], [0, 1]], [[0, 0], [1, 1]])


@pytest.mark.parametrize("kw, message", [(dict(confidence=float("nan")), "confidence must be a finite number"),
                                         (dict(confidence=95), "confidence must lie strictly between 0 and 1"),
                                         (dict(confidence=1.0), "confidence must lie strictly between 0 and 1"),
                                         (dict(confidence=0.0), "confidence must lie strictly between 0 and 1"),
                                         (dict(confidence=True), "confidence must be a finite number"),
                                         (dict(right_a=["1", "0", "1"]), "right_a must hold numbers"),
                                         (dict(right_b="011"), "right_b must hold numbers")])
def test_paired_difference_refuses_a_confidence_not_strictly_between_0_and_1_and_counts_given_as_strs(kw, message):
    """A NaN confidence gave a NaN interval; 95 was ignored when the differences had no spread (and an error of
    scipy's otherwise); "1" was read as the count 1."""
    args = {"right_a": [1, 0, 1], "right_b": [1, 0, 1], **kw}
    with pytest.raises(ValueError, match=f"paired_difference: {message}"):
        paired_stats.paired_difference(args.pop("right_a"), args.pop("right_b"), **args)
    assert paired_stats.paired_difference([1, 0, 1], [0, 0, 1], confidence=0.9)["difference"] == pytest.approx(1 / 3)


def test_the_problems_digest_tells_draws_of_the_same_size_apart():
    """Notebook 06 reuses notebook 04's accuracies only for the very problems it measures: the count alone matched
    a draw with another SEED (1 problem of 150 in common)."""
    task = tasks.get_task("tiny")
    seed0, again, seed1 = task.held_out(20, seed=0), task.held_out(20, seed=0), task.held_out(20, seed=1)
    digest = policy_eval.problems_digest
    assert digest(seed0) == digest(again) != digest(seed1)
    assert digest(seed0[:19]) != digest(seed0)


def test_the_problems_digest_tells_the_same_problems_in_another_order_apart():
    """The per-problem counts are paired by position (paired_stats.accuracy_differences): the same problems in
    another order are other pairs, so the digest reads the prompts in order. The suite compared other draws only."""
    problems = tasks.get_task("tiny").held_out(5, seed=0)
    assert policy_eval.problems_digest(problems) != policy_eval.problems_digest(problems[::-1])


def test_a_recorded_accuracy_says_whether_the_weights_were_4_bit_ones(tiny_model, tiny_tokenizer):
    """Notebook 06 loads the policies unquantized and reused a 4-bit profile's round figures as its own."""
    problems = tasks.get_task("tiny").held_out(2)
    kw = dict(n_sampled=1, batch_size=2, max_new_tokens=8)
    assert policy_eval.greedy_and_sampled_accuracy(tiny_model, tiny_tokenizer, problems, **kw)["in_4_bits"] is False
    tiny_model.is_loaded_in_4bit = True  # what transformers sets on a bitsandbytes 4-bit load (a fresh model a test)
    assert policy_eval.greedy_and_sampled_accuracy(tiny_model, tiny_tokenizer, problems, **kw)["in_4_bits"] is True


class _SaysSevenRight:
    """A toy problem whose answer is 7: its one step is right where the solution says 7."""
    prompt = "Problem: say 7.\n"

    def is_correct(self, solution):
        return solution.endswith("7")

    def verdict(self, solution):
        right = self.is_correct(solution)
        return Verdict([right], -1 if right else 0, right, [None if right else "arithmetic"], [solution])


def test_greedy_and_sampled_accuracy_samples_greedy_once_and_at_t1_n_sampled_times_with_the_seed(monkeypatch):
    """The sampled figures are those of n_sampled solutions a problem at T = 1 and the greedy ones of one at T = 0,
    both drawn with the seed given: each figure, and the per-problem counts, from its own generation. The suite read
    these figures off a real tiny model only, where greedy and sampled could agree, and never checked the draws."""
    calls = []

    def sampled(model, tokenizer, problems, n=1, temperature=0.0, seed=None, **kw):
        calls.append((n, temperature, seed))
        return [["Answer: 7", "Answer: 8"][:n] for _ in problems]  # greedy right; at T = 1 one of two right

    monkeypatch.setattr(policy_eval, "sample_solutions", sampled)
    out = policy_eval.greedy_and_sampled_accuracy(None, None, [_SaysSevenRight()] * 3, n_sampled=2, seed=5,
                                                  per_problem=True)
    assert calls == [(1, 0.0, 5), (2, 1.0, 5)]
    assert (out["accuracy"], out["sampled_accuracy"], out["step_accuracy"], out["sampled_step_accuracy"]) == (
        1.0, 0.5, 1.0, 0.5)
    assert out["n_test_problems"] == 3
    assert out["per_problem"] == {"greedy_right": [1, 1, 1], "sampled_right": [1, 1, 1], "n_sampled": 2}


class _SaysSevenInTwoSteps:
    """A toy problem whose answer is 7 in two steps, "3" then "7": "5" then "7" is right by luck."""
    prompt = "Problem: say 3, then 7.\n"

    def is_correct(self, solution):
        return solution.endswith("7")

    def verdict(self, solution):
        steps = solution.split("|")
        labels = [steps[0] == "3", steps[0] == "3" and steps[-1] == "7"]
        return Verdict(labels, labels.index(False) if False in labels else -1, self.is_correct(solution), [], steps)


def test_trace_error_is_the_share_of_right_answers_reached_through_a_wrong_step(monkeypatch):
    """Uesato et al. 2022's trace error: of the right answers only (a wrong answer is not counted), those with a
    step the checker calls wrong; None when no answer is right."""
    draws = {0.0: ["3|7"], 1.0: ["5|7", "3|7", "5|8", "3|7"]}  # sampled: one lucky of three right, one wrong

    def sampled(model, tokenizer, problems, n=1, temperature=0.0, **kw):
        return [draws[temperature][:n] for _ in problems]

    monkeypatch.setattr(policy_eval, "sample_solutions", sampled)
    out = policy_eval.greedy_and_sampled_accuracy(None, None, [_SaysSevenInTwoSteps()], n_sampled=4)
    assert (out["trace_error"], out["sampled_trace_error"]) == (0.0, pytest.approx(1 / 3))
    assert out["sampled_accuracy"] == 0.75
    draws[0.0] = ["5|8"]
    assert policy_eval.greedy_and_sampled_accuracy(None, None, [_SaysSevenInTwoSteps()], n_sampled=4)[
        "trace_error"] is None


def test_greedy_solutions_and_the_accuracies_pass_their_sampling_settings_on(monkeypatch):
    """greedy_solutions, greedy_and_sampled_accuracy and evaluate_saved_policies hand their batch_size,
    max_new_tokens, seed and n_sampled to the sampling beneath, as given (a model-free check of each keyword)."""
    calls = []

    def sampled(model, tokenizer, prompts, n=1, **kw):
        calls.append(dict(kw, n=n))
        return [[f"Answer: {t}" for t in range(7, 7 + n)] for _ in prompts]

    monkeypatch.setattr(policy_eval.generation, "sample_solutions", sampled)
    problems = [_SaysSevenRight()] * 2
    assert policy_eval.greedy_solutions(None, None, problems, batch_size=3, max_new_tokens=9) == ["Answer: 7"] * 2
    assert calls.pop() == dict(n=1, temperature=0.0, batch_size=3, max_new_tokens=9, progress=False)
    policy_eval.greedy_and_sampled_accuracy(None, None, problems, n_sampled=3, batch_size=5, max_new_tokens=11, seed=4)
    assert [(c["n"], c["temperature"], c["batch_size"], c["max_new_tokens"], c["seed"]) for c in calls] == [
        (1, 0.0, 5, 11, 4), (3, 1.0, 5, 11, 4)]
    calls.clear()
    monkeypatch.setattr(policy_eval.generation, "load_policy", lambda path, quantization=None, dtype=None: (path, None))
    policy_eval.evaluate_saved_policies({"a": "pa"}, None, problems, n_sampled=3, batch_size=5, max_new_tokens=11,
                                        seed=4, log=None)
    assert [(c["n"], c["temperature"], c["batch_size"], c["max_new_tokens"], c["seed"]) for c in calls] == [
        (1, 0.0, 5, 11, 4), (3, 1.0, 5, 11, 4)]
    with pytest.raises(ValueError, match="evaluate_policy: problems: no problems to evaluate on"):
        policy_eval.evaluate_policy(None, None, [])


def test_the_problems_digest_tells_prompts_split_otherwise_apart():
    """The prompts are joined with a separator: "ab" + "c" and "a" + "bc" are other problems."""
    def problems(*prompts):
        return [types.SimpleNamespace(prompt=p) for p in prompts]
    assert policy_eval.problems_digest(problems("ab", "c")) != policy_eval.problems_digest(problems("a", "bc"))


def test_evaluate_saved_policies_measures_each_and_keeps_the_per_problem_counts_apart(tiny_base_path, tiny_tokenizer):
    """Notebook 04's held-out accuracies: one line per policy as it is measured, the counts for the paired
    differences beside the figures (metrics.json keeps the figures only)."""
    problems = tasks.get_task("tiny").held_out(3)
    lines = []
    saved = {"base": tiny_base_path, "dpo": tiny_base_path}
    results, right = policy_eval.evaluate_saved_policies(saved, tiny_tokenizer, problems, n_sampled=1, batch_size=3,
                                                         max_new_tokens=8, log=lines.append)
    assert list(results) == list(right) == ["base", "dpo"] and results["base"] == results["dpo"]
    assert "per_problem" not in results["base"] and len(right["base"]["greedy_right"]) == 3
    # a learner's read: notebook 04 named its rows `stepwise_dpo` beside plots that say "Stepwise DPO + NLL"
    assert lines == [policy_eval.format_accuracy(name, results[key]) for key, name in (("base", "base"),
                                                                                     ("dpo", "DPO + NLL"))]
    assert lines[0].startswith("base                 greedy ") and "sampled(T=1)" in lines[0]
    assert paired_stats.accuracy_differences(right["base"], right["dpo"])["accuracy"]["difference"] == 0


def test_evaluate_saved_policies_passes_its_progress_setting_to_every_policy(monkeypatch):
    """Notebook 04 on a GPU profile measures five policies for minutes each: a bar over each one's generations."""
    seen = []
    monkeypatch.setattr(policy_eval.generation, "load_policy",
                        lambda path, quantization="as trained", dtype=None: (path, None))
    monkeypatch.setattr(policy_eval, "greedy_and_sampled_accuracy", lambda policy, *a, progress=False, **kw: (
        seen.append((policy, progress)) or {"accuracy": 0.5, "sampled_accuracy": 0.5, "per_problem": {}}))
    for progress in (True, False):
        policy_eval.evaluate_saved_policies({"a": "pa", "b": "pb"}, None, [], log=None, progress=progress)
    assert seen == [("pa", True), ("pb", True), ("pa", False), ("pb", False)]


def test_evaluate_saved_policies_names_each_policy_as_notebook_04s_plots_by_default(monkeypatch):
    """Notebooks 04 and 06 passed viz.POLICY_NAMES each time (names or {}): a caller who left it out got `dpo`, not
    "DPO + NLL". The default is the one dict (display_names.POLICY_NAMES); a policy of one's own keeps its key."""
    monkeypatch.setattr(policy_eval.generation, "load_policy", lambda path, quantization=None, dtype=None: (path, None))
    monkeypatch.setattr(policy_eval, "greedy_and_sampled_accuracy", lambda *a, **kw: {
        "accuracy": 0.5, "sampled_accuracy": 0.25, "per_problem": {}})
    lines = []
    policy_eval.evaluate_saved_policies({"dpo": "p", "stepwise_dpo": "q", "mine": "r"}, None, [], log=lines.append)
    assert [line[:20].rstrip() for line in lines] == ["DPO + NLL", "Stepwise DPO + NLL", "mine"]
    assert display_names.POLICY_NAMES["nll_only"] == display_names.METHOD_NAMES["nll_only"] == "NLL only (RFT)"
    assert display_names.method_name("my_prm_v2") == "my_prm_v2"  # a key of one's own, underscores and all


def test_evaluate_saved_policies_loads_each_policy_in_the_dtype_asked(tiny_base_path, monkeypatch):
    """Notebook 01 samples at the profile's dtype and 04 trains in it; 04 measured its policies at the device's
    (bfloat16 on an L4 or A100 under t4-16gb, whose solutions were sampled and trained in float16)."""
    import torch

    from stepdpo_lite import models

    seen = []
    monkeypatch.setattr(policy_eval, "greedy_and_sampled_accuracy", lambda policy, *a, **kw: (
        seen.append(policy.dtype) or {"accuracy": 0.5, "sampled_accuracy": 0.5, "per_problem": {}}))
    for dtype in ("bfloat16", None):
        policy_eval.evaluate_saved_policies({"base": tiny_base_path}, None, [], log=None, dtype=dtype)
    assert seen == [torch.bfloat16, models.resolve_dtype(None, models.resolve_device(None))]  # None: as before


def test_format_accuracy_names_the_steps_only_with_a_checker():
    figures = {"accuracy": 0.7266, "sampled_accuracy": 0.4, "step_accuracy": 0.8041}
    assert policy_eval.format_accuracy("dpo", figures) == ("dpo                  greedy 72.7%   sampled(T=1) 40.0%"
                                                           "   steps right (greedy) 80.4%")
    assert policy_eval.format_accuracy("dpo", {**figures, "step_accuracy": None}).endswith("sampled(T=1) 40.0%")


def test_format_accuracy_names_a_step_accuracy_of_zero():
    """A checker that found no right greedy step gives step_accuracy 0.0, a figure to print, not a missing one. The
    suite printed step accuracies above 0 only."""
    figures = {"accuracy": 0.0, "sampled_accuracy": 0.1, "step_accuracy": 0.0}
    assert policy_eval.format_accuracy("base", figures).endswith("sampled(T=1) 10.0%   steps right (greedy) 0.0%")


# ----------------------------------------------------------------------------- prm_pairs' input checks

def test_share_out_refuses_one_str_of_names_and_a_count_below_1():
    """One str was shared out among its letters, and k = -1 gave a policy -1 samples."""
    with pytest.raises(ValueError, match="share_out: names: expected a list of policy names, got one str"):
        prm_pairs.share_out(3, "dpo")
    for k in (-1, 0, True, 2.0):
        with pytest.raises(ValueError, match=f"share_out: k must be an int >= 1, got {k!r}"):
            prm_pairs.share_out(k, ["dpo", "nll_only"])
    assert prm_pairs.share_out(3, ("dpo", "nll_only")) == {"dpo": 2, "nll_only": 1}


def test_count_mislabels_names_the_row_and_field_of_a_malformed_pair():
    """A missing field was a bare KeyError; problem_index True was read as problem 1, and 1.0 a TypeError."""
    ps = toyworld.make_problems(2, "test")
    bad = toyworld.corrupt_solution(ps[0], 0, "arithmetic", random.Random(0))
    row = {"problem_index": 0, "chosen": ps[0].gold_solution, "rejected": bad, "step_index": -1, "prm_first_error": 0}
    assert prm_pairs.count_mislabels(ps, [row])["mislabelled"] == 0
    for field in ("rejected", "prm_first_error"):
        with pytest.raises(ValueError, match=f"count_mislabels: row 1: field '{field}' is missing"):
            prm_pairs.count_mislabels(ps, [row, {k: v for k, v in row.items() if k != field}])
    for index in (True, 1.0, "0"):
        with pytest.raises(ValueError, match=f"row 0: field 'problem_index': {index!r} is not one of the 2 problems"):
            prm_pairs.count_mislabels(ps, [dict(row, problem_index=index)])


def test_step_agreement_refuses_samples_that_are_not_one_list_per_problem():
    """zip compared the shorter one's only: samples for 1 of 2 problems gave the agreement on that one."""
    ps = toyworld.make_problems(2, "test")
    gold = ps[0].gold_solution
    sample = prm_pairs.Sample(0, gold, toyworld.check(ps[0], gold).steps, [4.0] * len(ps[0].ops), True, 0.0)
    assert prm_pairs.step_agreement(ps, [[sample], []]) == 1.0
    with pytest.raises(ValueError, match="step_agreement: 2 problems but 1 lists of samples"):
        prm_pairs.step_agreement(ps, [[sample]])


def test_answers_by_length_groups_by_the_problems_operations_on_the_toy_task_and_the_steps_taken_on_gsm8k():
    toy = tasks.ToyTask()
    problems = toyworld.make_problems(2, "test")
    solutions = [[p.gold_solution, toyworld.corrupt_solution(p, step=0, kind="arithmetic", rng=random.Random(0))]
                 for p in problems]
    verdicts = toy.label(None, None, problems, solutions)
    got = tasks.answers_by_length(toy, problems, verdicts)
    assert got == {"lengths": [len(p.ops) for p in problems for _ in range(2)],
                   "correct": [v.answer_correct for vs in verdicts for v in vs], "xlabel": "operations in the problem"}
    assert got["correct"][0] and not got["correct"][1]
    short = Verdict([True], -1, True, steps=["Step 1: 1 + 1 = 2"])  # a GSM8K verdict: the steps it took
    gsm = tasks.answers_by_length(tasks.GSM8KTask(), problems[:1], [[short]])
    assert gsm == {"lengths": [1], "correct": [True], "xlabel": "steps in the solution"}
    with pytest.raises(ValueError, match="answers_by_length: 2 problems but 1 lists of verdicts"):
        tasks.answers_by_length(toy, problems, verdicts[:1])


def test_only_a_task_with_a_step_checker_says_whether_a_solution_slipped():
    p = toyworld.make_problems(1, "test")[0]
    slipped = toyworld.corrupt_solution(p, step=0, kind="arithmetic", rng=random.Random(0))
    assert tasks.ToyTask().wrong_step_checker(p.prompt, slipped) and not tasks.ToyTask().wrong_step_checker(
        p.prompt, p.gold_solution)
    assert tasks.GSM8KTask().wrong_step_checker is None


def test_get_task_makes_the_task_registered_under_the_profiles_task(monkeypatch):
    """A user's trial: get_task hard-coded the toy world and GSM8K, so that a task added to TASKS was never made (a
    profile naming it got GSM8KTask). Each entry makes its task from the profile; an unknown name lists them."""
    made = []
    monkeypatch.setitem(tasks.TASKS, "mine", lambda profile: made.append(profile) or "my task")
    mine = types.SimpleNamespace(name="own", task="mine", dataset=None)  # what get_task reads of a profile
    assert tasks.get_task(mine) == "my task" and made == [mine]
    with pytest.raises(ValueError, match=re.escape("profile 'own': unknown task 'math'; choose one of ['gsm8k', "
                                                   "'mine', 'toy'], or register yours in tasks.TASKS")):
        tasks.get_task(types.SimpleNamespace(name="own", task="math", dataset=None))


def test_own_task_page_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/own_task.md's python blocks, run in order as one script (its fine-tuning cut to 2 steps): each print
    prints what its comment says (up to a colon), and the page's task went through TASKS and a profile, the builders
    without verdicts= and fine_tune_base, none of which a user's trial (t5) could do."""
    monkeypatch.setitem(tasks.TASKS, "sum", None)  # the page registers its task; undone after: not for other tests
    monkeypatch.chdir(tmp_path)  # it saves runs/sum-base
    page = Path(__file__).resolve().parent.parent / "docs" / "own_task.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert sum(b.count("max_steps=300, eval_every=50") for b in blocks) == 1
    namespace, said, printed = {"__name__": "own_task"}, [], []
    for block in blocks:
        exec(compile(block.replace("max_steps=300, eval_every=50", "max_steps=2, eval_every=2"), str(page), "exec"),
             namespace)
        out = capsys.readouterr().out.splitlines()
        if "print(" in block:  # the fine-tuning's own lines are no example's
            printed += out
            said += [line.split("# ", 1)[1].split(":")[0].strip() for line in block.splitlines()
                     if line.startswith("print(")]
    assert printed == said and len(said) == 3
    assert isinstance(namespace["task"], namespace["SumTask"])
    log = json.loads((tmp_path / "runs" / "sum-base" / "training_log.json").read_text())
    assert [e["step"] for e in log["evaluations"]] == [2] and namespace["policy"].config.model_type == "llama"


class _OwnProblem:
    """A problem of one's own (docs/own_task.md) whose grader and checker a test sets."""

    def __init__(self, is_correct=None, verdict=None):
        self.prompt = "Problem: say 7.\n"
        self._is_correct, self._verdict = is_correct, verdict

    def is_correct(self, solution):
        return self._is_correct

    def verdict(self, solution):
        return self._verdict


def _says_seven(monkeypatch):
    """No model: every sample is "Answer: 7" (evaluate_policy's grading is under test, not the sampling)."""
    monkeypatch.setattr(policy_eval, "sample_solutions", lambda model, tokenizer, problems, n=1, **kw: [
        ["Answer: 7"] * n for _ in problems])


def test_evaluate_policy_refuses_an_is_correct_that_does_not_return_a_bool(monkeypatch):
    """A trial (T16): is_correct returning "False" gave accuracy 1.0 while every sample was a format error, which
    greedy_and_sampled_accuracy reported and fine_tune_base stopped on; None was read as wrong. Numpy's bool and 0 or
    1 are bools, as labelling.mc_step_labels reads them."""
    _says_seven(monkeypatch)
    for value in ("False", None, 2, 1.0):
        with pytest.raises(ValueError, match=re.escape(f"evaluate_policy: problems[1], solution 0: the problem's "
                                                       f"is_correct must return a bool (docs/own_task.md), got "
                                                       f"{type(value).__name__} {value!r}")):
            policy_eval.evaluate_policy(None, None, [_OwnProblem(True), _OwnProblem(value)], n=2)
    for value, accuracy in ((np.bool_(True), 1.0), (0, 0.0), (1, 1.0), (False, 0.0)):
        assert policy_eval.evaluate_policy(None, None, [_OwnProblem(value)])["accuracy"] == accuracy


def test_evaluate_policy_accuracy_is_the_share_of_all_n_samples_right(monkeypatch):
    """With n samples a problem the accuracy is right samples over all samples (n_solutions), not over problems:
    dividing by the problems read 2 of 2 right samples of one problem as 200%."""
    _says_seven(monkeypatch)
    out = policy_eval.evaluate_policy(None, None, [_OwnProblem(True), _OwnProblem(False)], n=2)
    assert out["n_solutions"] == 4 and out["right_per_problem"] == [2, 0]
    assert out["accuracy"] == 0.5


def test_sampling_refuses_a_prompt_the_tokenizer_cannot_spell(tiny_tokenizer, monkeypatch):
    """The tiny tokenizer read "×" or "é" in a prompt as <unk> and the policy answered another problem, without a
    word; the problem's index and the characters are named, before any sampling, and as the caller's argument where
    evaluate_policy is told it (fine_tune_base's eval_problems)."""
    def sampled(*args, **kwargs):
        raise AssertionError("sampled a prompt the tokenizer cannot spell")

    monkeypatch.setattr(policy_eval.generation, "sample_solutions", sampled)
    spelled, odd = _OwnProblem(True), _OwnProblem(True)
    odd.prompt = "Problem: 3 × 4 = ?\tsay é.\n"
    with pytest.raises(ValueError, match=re.escape("sample_solutions: problems[1]: the tokenizer reads the characters "
                                                   "'×\\té' of its prompt as <unk> (the model would answer another "
                                                   "problem)")):
        policy_eval.sample_solutions(None, tiny_tokenizer, [spelled, odd], n=1)
    with pytest.raises(ValueError, match=re.escape("fine_tune_base: eval_problems[0]: the tokenizer reads")):
        policy_eval.evaluate_policy(None, tiny_tokenizer, [odd], where="fine_tune_base: eval_problems")
    odd.prompt = "Problem: <unk> é\n"  # the unk token's own text does not hide a character it cannot spell
    with pytest.raises(ValueError, match=re.escape("problems[0]: the tokenizer reads the characters 'é' of its")):
        policy_eval.sample_solutions(None, tiny_tokenizer, [odd])
    tasks.check_spelled(types.SimpleNamespace(unk_token_id=None), ["é"], "p")  # byte-level: no unk token, all spelled


def test_a_prompt_may_write_the_unk_tokens_own_text(tiny_tokenizer, monkeypatch):
    """The smoke base's Qwen2 tokenizer has <|endoftext|> as its unk token (not its eos): a prompt holding it as a
    few-shot separator was refused as unreadable, though the model reads just what it wrote. Only a character read as
    unk, or more unk tokens than the prompt writes, is refused; the hint names no tokenizer but as an example."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    monkeypatch.setattr(policy_eval.generation, "sample_solutions",
                        lambda model, tok, prompts, **kw: [["x"]] * len(prompts))
    separated = _OwnProblem(True)
    separated.prompt = "Problem: say 1.\n<unk>Problem: say 7.\n<unk>"
    assert policy_eval.sample_solutions(None, tiny_tokenizer, [separated]) == [["x"]]
    # WordPiece reads a word over its max_input_chars_per_word as one [UNK], though it knows each character
    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##a": 2}, unk_token="[UNK]",
                                           max_input_chars_per_word=3))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]")
    tasks.check_spelled(tokenizer, ["aa [UNK] aaa"], "p")  # the [UNK] it writes, read as itself
    for prompt in ("aa aaaa", "aaaa [UNK]"):  # one unk token more than the prompt writes
        with pytest.raises(ValueError, match=re.escape("p[0]: the tokenizer reads a part of its prompt as [UNK] (the "
                                                       "model would answer another problem): write its prompt in "
                                                       "characters it spells (the toy world's tiny tokenizer, for one, "
                                                       "spells printable ASCII and newlines only)")):
            tasks.check_spelled(tokenizer, [prompt], "p")


def test_sampling_an_over_long_prompt_is_refused_without_transformers_own_too_long_line(tiny_model,
                                                                                       transformers_warnings):
    """policy_eval.sample_solutions' own check of the prompts tokenized them without verbose=False: transformers' "Token
    indices sequence length is longer than ..." line came before the kit's own error, which names the prompt."""
    tokenizer = tiny_models.build_tokenizer()  # fresh: transformers warns once per tokenizer
    long_prompt = _OwnProblem(True)
    long_prompt.prompt = "Problem: " + "1 + " * 300
    with pytest.raises(ValueError, match="prompt 0 is 1202 tokens; with max_new_tokens=4 that is 1206, over"):
        policy_eval.sample_solutions(tiny_model, tokenizer, [long_prompt], n=1, max_new_tokens=4, progress=False)
    assert not [m for m in transformers_warnings if "Token indices" in m]


def test_mc_step_labels_refuses_an_answer_check_as_evaluate_policy_does(monkeypatch):
    """task_problems.graded was a copy of mc_step_labels's check of is_correct, whose message named no type and no
    contract: one check (task_problems.answer_check) now gives both."""
    monkeypatch.setattr(labelling.generation, "sample_solutions", lambda m, t, prompts, n, **kw: [
        ["x"] * n for _ in prompts])
    steps = [["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 + 1 = 3"]]
    with pytest.raises(ValueError, match=re.escape("mc_step_labels: solution 0, rollout 0 after step 1: is_correct "
                                                   "must return a bool (docs/own_task.md), got str 'True'")):
        labelling.mc_step_labels(None, None, ["p"], steps, lambda i, text: "True", n=2, progress=False)

def test_evaluate_policy_takes_verdicts_without_error_kinds(monkeypatch):
    """docs/own_task.md allows a verdict without error kinds (an empty list): evaluate_policy raised an IndexError on
    the first wrong one, and with it fine_tune_base's stop check."""
    _says_seven(monkeypatch)
    no_kinds = Verdict([True, False], 1, False, [], ["Step 1: 7", "Answer: 7"])
    with_kinds = Verdict([False], 0, False, ["format"], ["Answer: 7"])
    out = policy_eval.evaluate_policy(None, None, [_OwnProblem(False, no_kinds), _OwnProblem(False, with_kinds)])
    assert out["step_accuracy"] == 1 / 3 and out["first_error_kinds"] == {"format": 1}


def test_evaluate_policy_gives_no_step_accuracy_unless_every_problem_has_a_checker(monkeypatch):
    """A step accuracy over the problems that have a step checker only would read as one over all of them: where one
    problem's verdict is None (a GSM8K problem beside toy ones), no step figures are given, and nothing raises. No
    test mixed problems with a checker and problems without one."""
    _says_seven(monkeypatch)
    checked = _OwnProblem(True, Verdict([True], -1, True, [None], ["Answer: 7"]))
    out = policy_eval.evaluate_policy(None, None, [checked, _OwnProblem(True, None)], n=2)
    assert out["accuracy"] == 1.0 and "step_accuracy" not in out and "first_error_kinds" not in out
    assert policy_eval.evaluate_policy(None, None, [checked])["step_accuracy"] == 1.0


@pytest.mark.parametrize("problems, message", [
    (["Problem: say 7.\n"], r"problems\[0\]: expected a problem with a str prompt and the methods is_correct, "
                            r"verdict \(docs/own_task.md\), got a str without is_correct, verdict"),
    ([types.SimpleNamespace(prompt="P\n", is_correct=lambda s: True)], r"problems\[0\]: .* without verdict"),
    ([types.SimpleNamespace(prompt=None, is_correct=bool, verdict=bool)], r"problems\[0\]: .* without a str prompt"),
    ("Problem: say 7.\n", "problems: expected a list of problems .*, got one str")])
def test_evaluate_policy_refuses_what_is_no_problem_before_sampling(monkeypatch, problems, message):
    """A problem without verdict was an AttributeError after the sampling (minutes on a GPU profile)."""
    def sampled(*args, **kwargs):
        raise AssertionError("sampled before the problems were checked")

    monkeypatch.setattr(policy_eval, "sample_solutions", sampled)
    with pytest.raises(ValueError, match=f"evaluate_policy: {message}"):
        policy_eval.evaluate_policy(None, None, problems)


def test_answers_by_length_takes_a_generator_and_names_what_is_not_a_verdict():
    """A generator of verdict lists was a TypeError (no len), and a text in place of a verdict an AttributeError."""
    toy = tasks.ToyTask()
    p = toyworld.make_problems(1, "test")[0]
    v = toyworld.check(p, p.gold_solution)
    assert tasks.answers_by_length(toy, [p], (vs for vs in [[v]]))["correct"] == [True]
    with pytest.raises(ValueError, match="answers_by_length: problem 0, solution 1: expected a task_problems.Verdict "
                                         r"\(task.label's\), got str"):
        tasks.answers_by_length(toy, [p], [[v, p.gold_solution]])
    with pytest.raises(ValueError, match=r"answers_by_length: verdicts\[0\]: expected a list of verdicts, got one"):
        tasks.answers_by_length(toy, [p], ["abc"])


def test_get_task_names_a_profile_that_is_neither_a_name_nor_a_profile():
    """get_task(None) was an AttributeError ('NoneType' object has no attribute 'task')."""
    for bad in (None, 3):
        with pytest.raises(ValueError, match=f"get_task: profile must be a profile's name or a profiles.Profile, got "
                                             f"{bad!r}"):
            tasks.get_task(bad)


def test_paired_stats_refuse_ragged_counts_and_a_whole_evaluation_result_by_name():
    """Ragged counts were numpy's "setting an array element with a sequence", naming neither list; a dict numpy's
    TypeError; the whole greedy_and_sampled_accuracy result (not its "per_problem" part) a KeyError 'n_sampled'."""
    for right_a in ([[1], [1, 0]], {0: 1, 1: 0}):
        with pytest.raises(ValueError, match="paired_difference: right_a and right_b must be flat lists of numbers"):
            paired_stats.paired_difference(right_a, [1, 0])
    per_problem = {"greedy_right": [1, 0], "sampled_right": [1, 2], "n_sampled": 2}
    with pytest.raises(ValueError, match=r"accuracy_differences: a must be the 'per_problem' part of .* got "
                                         r"\['accuracy', 'per_problem'\]"):
        paired_stats.accuracy_differences({"accuracy": 0.5, "per_problem": per_problem}, per_problem)
    with pytest.raises(ValueError, match="accuracy_differences: b must be the 'per_problem' part of .* got list"):
        paired_stats.accuracy_differences(per_problem, [1, 0])


def test_the_answer_check_takes_bools_and_0_or_1_and_returns_a_bool():
    """numpy's bool is a bool (a numpy-based checker returns one); 2 is no verdict; what comes back is a real bool,
    so that a sum or an ``is True`` over the checks reads right."""
    assert task_problems.answer_check(np.True_, "w") is True and task_problems.answer_check(1, "w") is True
    assert task_problems.answer_check(np.int64(0), "w") is False
    with pytest.raises(ValueError, match=r"w: the problem's is_correct must return a bool .*got int 2"):
        task_problems.answer_check(2, "w")


def test_solution_lists_are_one_sized_list_per_problem():
    """More problems than lists of solutions would be cut by zip; a number in place of a list was a TypeError; a str
    of solutions is told as a str."""
    p = toyworld.make_problems(2, "test")
    task_problems.check_solution_lists(p, [["a"], ["b"]], "w")
    with pytest.raises(ValueError, match="w: 2 problems but 1 lists of solutions"):
        task_problems.check_solution_lists(p, [["a"]], "w")
    with pytest.raises(ValueError, match=r"w: solutions\[1\] must be a list of solutions, got int"):
        task_problems.check_solution_lists(p, [["a"], 5], "w")
    with pytest.raises(ValueError, match="w: expected a list of problems and one list of solutions per problem, got a"):
        task_problems.check_solution_lists(p, "ab", "w")


def test_prompts_of_takes_prompt_texts_only_where_asked():
    assert task_problems.prompts_of(["What is 2 + 3?"], texts_ok=True) == ["What is 2 + 3?"]
    with pytest.raises(ValueError, match="problem 0: its prompt must be a str, got NoneType"):
        task_problems.prompts_of(["What is 2 + 3?"])
    one = type("IterableProblem", (), {"prompt": "P", "__iter__": lambda self: iter(["P"])})()  # a problem of one's own
    with pytest.raises(ValueError, match="got one IterableProblem: wrap it in a list"):
        task_problems.prompts_of(one)
