"""On-policy rounds (stepdpo_lite.tutorial.onpolicy) and their pairs from PRM labels (prm_pairs), Step-DPO pairs
resampled without gold, the EOS of one-step completions, and a tiny round end to end. A stub PRM stands in for
notebook 02's (its rewards come from the toy checker, or from a PRM that misses every error), so that these tests
need no run folder."""

import copy
import dataclasses
import json
import math
import random
import re
import warnings
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stepdpo_lite.tutorial import (display_names, onpolicy, onpolicy_report, onpolicy_resume, paired_stats, policy_eval,
                                   prm_pairs, profiles, reward_reports, tasks, tiny_models, toyworld, viz)
from stepdpo_lite.rewards import InputTooLong
from stepdpo_lite.steps import extract_steps
from stepdpo_lite.trainer import StepwiseDPOTrainer

from onpolicy_stubs import FAST, R, RUN_METRICS, THRESHOLD, StubPRM, StubSampler, problem_and_texts


def nothing_right(model, tokenizer, problems, *, n_sampled=2, **kw):
    """A stand-in for ``policy_eval.greedy_and_sampled_accuracy(per_problem=True)``: no solution right."""
    return {"accuracy": 0.0, "sampled_accuracy": 0.0, "per_problem": {
        "greedy_right": [0] * len(problems), "sampled_right": [0] * len(problems), "n_sampled": n_sampled}}


# ----------------------------------------------------------------------------- pairs from PRM labels

def test_solution_pairs_follow_the_prm_and_the_answer_check():
    p, gold, bad, lucky = problem_and_texts()
    samples = prm_pairs.label_samples(StubPRM(), [p], [[gold, gold, bad, lucky, "  "]], THRESHOLD, policy="dpo")
    by_text = {s.text: s for s in samples[0]}
    assert by_text[gold].chosen_ok and not by_text[gold].rejected_ok
    assert by_text[bad].rejected_ok and by_text[bad].prm_first_error == 1
    assert not by_text[lucky].chosen_ok and not by_text[lucky].rejected_ok  # right answer, a step the PRM rejects
    assert by_text["  "].rewards is None and not by_text["  "].rejected_ok and by_text[gold].policy == "dpo"

    rows, stats = prm_pairs.solution_pairs([p], samples, rejected_probs="first_error")
    assert [(r["chosen"], r["rejected"]) for r in rows] == [(gold, bad)]
    assert stats["repeated_solutions"] == 1 and stats["right_answer_prm_rejected"] == 1 and stats["pairs"] == 1
    s = 1 / (1 + math.exp(-R))
    row = rows[0]
    assert row["chosen_step_labels"] == pytest.approx([s, s, s])
    assert row["rejected_step_labels"] == pytest.approx([s, 1 - s, 1.0])  # after the first error: not pushed down
    assert row["prm_first_error"] == 1 and row["kind"] == "solution"
    rows_prm, _ = prm_pairs.solution_pairs([p], samples, rejected_probs="prm")
    assert rows_prm[0]["rejected_step_labels"] == pytest.approx([s, 1 - s, 1 - s])
    assert prm_pairs.count_mislabels([p], rows) == {"pairs": 1, "chosen_wrong": 0,
                                                   "rejected_first_error_elsewhere": 0, "mislabelled": 0}
    assert prm_pairs.step_agreement([p], samples) == 1.0


def test_mislabels_are_counted_against_the_checker():
    p, gold, bad, lucky = problem_and_texts()
    samples = prm_pairs.label_samples(StubPRM(blind=True), [p], [[gold, bad, lucky]], THRESHOLD)
    rows, _ = prm_pairs.solution_pairs([p], samples)
    assert sorted(r["chosen"] for r in rows) == sorted([gold, lucky])  # the blind PRM accepts the lucky one
    counts = prm_pairs.count_mislabels([p], rows)
    # both rejected solutions: the PRM puts no error where the checker finds one at step 2; one chosen is wrong
    assert counts == {"pairs": 2, "chosen_wrong": 1, "rejected_first_error_elsewhere": 2, "mislabelled": 2}
    assert prm_pairs.step_agreement([p], samples) == pytest.approx(4 / 9)  # gold 3/3, bad 1/3, lucky 0/3 right


def test_solution_pairs_count_the_wrong_answers_the_prm_accepted():
    """A wrong answer whose every step the PRM accepts is a PRM miss the round reports (``wrong_answer_prm_accepted``);
    it is still paired as rejected, by its answer."""
    p, gold, bad, lucky = problem_and_texts()
    for blind, missed in ((True, 1), (False, 0)):
        samples = prm_pairs.label_samples(StubPRM(blind=blind), [p], [[gold, bad, lucky]], THRESHOLD)
        _, stats = prm_pairs.solution_pairs([p], samples)
        assert stats["wrong_answer_prm_accepted"] == missed, blind


def test_step_agreement_reads_each_step_against_the_samples_threshold():
    """A step is accepted at reward >= the samples' threshold, not >= 0 (the tests' THRESHOLD hid the difference)."""
    p, gold, bad, _ = problem_and_texts()
    labels = [y for text in (gold, bad) for y in toyworld.check(p, text).step_labels]
    strict = prm_pairs.label_samples(StubPRM(), [p], [[gold, bad]], 2 * R)  # above every reward: all rejected
    assert prm_pairs.step_agreement([p], strict) == pytest.approx(labels.count(False) / len(labels))
    assert prm_pairs.step_agreement([p], prm_pairs.label_samples(StubPRM(), [p], [[gold, bad]], THRESHOLD)) == 1.0


def test_bad_input_to_the_pair_builders_is_refused_naming_what_is_wrong():
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()
    with pytest.raises(ValueError, match=r"threshold \(a log-odds\) must be a finite number"):
        prm_pairs.label_samples(prm, [p], [[gold]], float("nan"))  # would accept every step
    with pytest.raises(ValueError, match="problem 0, solution 1: expected a str, got NoneType"):
        prm_pairs.label_samples(prm, [p], [[gold, None]], THRESHOLD)

    class PickyPRM(StubPRM):  # a PRM with a length limit, like ProcessRewardModel.encode
        def encode(self, prompt, steps):
            if len(steps) > 2:
                raise InputTooLong("solution 0: 99 tokens with its tags, longer than max_length 50")
            if not prompt.startswith("Problem"):
                raise ValueError("prompt: not a problem")

    long_one = prm_pairs.label_samples(PickyPRM(), [p], [[gold]], THRESHOLD)[0][0]
    assert long_one.rewards is None  # too long: kept, unscored (counted by solution_pairs)
    other = toyworld.Problem(p.start, p.ops[:2])
    with pytest.raises(ValueError, match="not a problem"):  # any other error is not swallowed as "unscored"
        prm_pairs.label_samples(PickyPRM(), [type("Odd", (), {"prompt": "?", "is_correct": other.is_correct})()],
                                [[other.gold_solution]], THRESHOLD)

    class ShortPRM(StubPRM):  # a user's PRM that drops a solution, or a step: no sample may stay silently unscored
        def __init__(self, cut):
            super().__init__()
            self.cut = cut

        def score_solutions(self, prompts, solutions, batch_size=None, progress=False):
            out = super().score_solutions(prompts, solutions, batch_size)
            return out[:-1] if self.cut == "solution" else [r[:-1] for r in out]

    with pytest.raises(ValueError, match="the PRM returned 1 lists of rewards for 2 solutions"):
        prm_pairs.label_samples(ShortPRM("solution"), [p], [[gold, bad]], THRESHOLD)
    with pytest.raises(ValueError, match="problem 0: the PRM returned 2 rewards for a solution of 3 steps"):
        prm_pairs.label_samples(ShortPRM("step"), [p], [[gold]], THRESHOLD)
    samples = prm_pairs.label_samples(prm, [p], [[gold, bad, "  "]], THRESHOLD)
    with pytest.raises(ValueError, match="1 problems but 2 lists of samples"):  # not a silent zip to the shorter
        prm_pairs.solution_pairs([p], samples * 2)
    with pytest.raises(ValueError, match="solution_pairs: max_pairs_per_problem must be an int >= 1 or None, got -1"):
        prm_pairs.solution_pairs([p], samples, max_pairs_per_problem=-1)  # -1 kept "all but the last"
    assert prm_pairs.solution_pairs([p], samples, max_pairs_per_problem=np.int64(1)) == prm_pairs.solution_pairs(
        [p], samples, max_pairs_per_problem=1)  # a numpy int is an int
    two_bad = prm_pairs.label_samples(prm, [p], [[gold, bad, bad.replace("Answer:", "Answer: 1")]], THRESHOLD)
    rows, stats = prm_pairs.solution_pairs([p], two_bad, max_pairs_per_problem=1)
    assert len(rows) == 1 and stats["pairs_over_max_pairs_per_problem"] == 1  # what the cap left out is counted
    with pytest.raises(ValueError, match="problem 0 is unscored"):
        prm_pairs.rejected_step_probs(samples[0][2])
    with pytest.raises(ValueError, match="no policies"):
        prm_pairs.step_pairs({}, None, prm, [p], samples, THRESHOLD)
    rows, _ = prm_pairs.solution_pairs([p], samples)
    with pytest.raises(ValueError, match="row 0: field 'initial_reason_steps' is missing"):
        prm_pairs.step_pair_rows(rows, form="prefix")  # a solution pair has no one-step form
    with pytest.raises(ValueError, match="row 0: field 'step_index': -1 is not a step"):
        prm_pairs.step_pair_rows([dict(rows[0], initial_reason_steps="", chosen_step="a", rejected_step="b")],
                                 form="prefix")
    with pytest.raises(ValueError, match="row 0: field 'problem_index': 5 is not one of the 1 problems"):
        prm_pairs.count_mislabels([p], [dict(rows[0], problem_index=5)])
    samples[0][0].rewards = samples[0][0].rewards[:2]  # as if the PRM had split the solution another way
    with pytest.raises(ValueError, match="problem 0: the PRM scored 2 steps and the checker labels 3"):
        prm_pairs.step_agreement([p], samples)


def test_a_task_without_checker_counts_no_mislabels():
    class NoChecker:
        def __init__(self, p):
            self.p, self.prompt = p, p.prompt

        def is_correct(self, s):
            return self.p.is_correct(s)

        def verdict(self, s):
            return None

        def step_labels(self, s):
            return None

    p, gold, bad, _ = problem_and_texts()
    q = NoChecker(p)
    samples = prm_pairs.label_samples(StubPRM(), [q], [[gold, bad]], THRESHOLD)
    rows, _ = prm_pairs.solution_pairs([q], samples)
    assert len(rows) == 1 and prm_pairs.count_mislabels([q], rows) is None
    assert prm_pairs.step_agreement([q], samples) is None


# ----------------------------------------------------------------------------- Step-DPO pairs without gold

def test_step_pairs_resample_the_first_wrong_step_until_the_prm_accepts_it():
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD, policy="stepwise_dpo")
    sampler = StubSampler(p, gold, bad)
    policies = {"dpo": "dpo-model", "stepwise_dpo": "stepwise-model"}
    rows, stats = prm_pairs.step_pairs(policies, None, prm, [p], samples, THRESHOLD, tries=3, attempts=2,
                                      sample_fn=sampler)
    assert len(sampler.calls) == 2 and sampler.calls[0][0] == "stepwise-model"  # the policy that wrote it resamples
    gold_steps, bad_steps = extract_steps(gold), extract_steps(bad)
    assert sampler.calls[0][1] == [p.prompt + gold_steps[0]] and sampler.calls[0][2] == 3
    assert stats["pairs"] == 1 and stats["no_accepted_step"] == 0
    row = rows[0]
    assert row["step_index"] == 1 and row["initial_reason_steps"] == gold_steps[0]
    assert row["chosen"] == gold and row["rejected"] == bad  # whole solutions: the rest after the step is kept
    assert row["chosen_step"] == gold_steps[1] and row["rejected_step"] == bad_steps[1]
    assert row["kind"] == "step" and row["prm_first_error"] == 1
    assert prm_pairs.count_mislabels([p], rows)["mislabelled"] == 0

    one_attempt, stats = prm_pairs.step_pairs(policies, None, prm, [p], samples, THRESHOLD, tries=3, attempts=1,
                                             sample_fn=StubSampler(p, gold, bad))
    assert one_attempt == [] and stats["no_accepted_step"] == 1

    prefix_form = prm_pairs.step_pair_rows(rows, form="prefix")[0]
    assert prefix_form["prompt"] == p.prompt + gold_steps[0] and prefix_form["open_ended"]
    assert prefix_form["chosen"] == gold_steps[1] and prefix_form["rejected"] == bad_steps[1]
    assert len(prefix_form["chosen_step_labels"]) == len(prefix_form["rejected_step_labels"]) == 1


def one_step_pair():
    """The problem, its gold and wrong solutions, the stub PRM and the one Step-DPO pair it corrects (at step 2)."""
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD, policy="dpo")
    rows, _ = prm_pairs.step_pairs({"dpo": None}, None, prm, [p], samples, THRESHOLD, tries=2, attempts=2,
                                  sample_fn=StubSampler(p, gold, bad))
    return p, gold, bad, prm, rows


def test_step_negatives_add_distinct_wrong_steps_the_prm_rejects_against_the_same_chosen():
    p, gold, bad, prm, rows = one_step_pair()
    prefix = extract_steps(gold)[0]
    wrong = list(dict.fromkeys(toyworld.corrupt_solution(p, 1, "arithmetic", random.Random(i)) for i in range(40)))
    wrong = [w for w in wrong if w != bad][:4]  # four other wrong results at step 2
    assert len(wrong) == 4 and all(w.startswith(prefix) for w in wrong)
    calls = []

    def sampler(model, tokenizer, contexts, n, **kw):  # each policy writes step 2 again: wrong, right, repeats
        calls.append((model, n, kw["temperature"]))
        texts = [w[len(prefix):] for w in wrong] + [gold[len(prefix):], bad[len(prefix):]]
        return [texts[:n] if model == "a" else texts[n:2 * n] for _ in contexts]

    policies = {"a": "a", "b": "b"}
    neg, stats = prm_pairs.step_negatives(policies, None, prm, [p], rows, THRESHOLD, tries=6, max_per_state=3,
                                         temperature=2.0, sample_fn=sampler)
    assert [(m, n, t) for m, n, t in calls] == [("a", 3, 2.0), ("b", 3, 2.0)]  # tries shared out, sampled hot
    assert stats["pairs"] == len(neg) == 3  # four new wrong steps offered, three kept: the state is full
    assert stats["not_a_step_the_prm_rejects"] == 1  # the right step is no negative
    k, row = 1, rows[0]
    assert len({r["rejected_step"] for r in neg} | {row["rejected_step"]}) == 4  # all distinct, none the old one
    for r in neg:
        assert r["chosen"] == row["chosen"] and r["step_index"] == k and r["kind"] == "step"
        assert r["initial_reason_steps"] == prefix and r["rejected"].startswith(prefix)
        assert r["rejected_step"] == extract_steps(r["rejected"])[k] != r["chosen_step"]
    assert prm_pairs.count_mislabels([p], neg)["mislabelled"] == 0
    assert prm_pairs.step_negatives(policies, None, prm, [p], [], THRESHOLD, sample_fn=sampler)[0] == []


def test_a_step_scored_exactly_at_the_threshold_is_accepted_by_every_pair_builder():
    """The PRM accepts a step whose reward is >= the threshold (evaluation.predict_first_error); the step pairs'
    resampling, the extra negatives and the mirrored ones must all read it so (no stub scored a step at the
    threshold: '>' in any of them passed every test)."""
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()  # accepted steps score +R: exactly at a threshold of R
    samples = prm_pairs.label_samples(prm, [p], [[bad]], R, policy="dpo")
    rows, stats = prm_pairs.step_pairs({"dpo": None}, None, prm, [p], samples, R, tries=2, attempts=2,
                                      sample_fn=StubSampler(p, gold, bad))
    assert stats["pairs"] == len(rows) == 1  # the resampled right step, at R, is accepted
    prefix = extract_steps(gold)[0]

    def right_again(model, tokenizer, contexts, n, **kw):  # the policy writes the right step 2 again
        return [[gold[len(prefix):]] * n for _ in contexts]
    neg, stats = prm_pairs.step_negatives({"a": "a"}, None, prm, [p], rows, R, tries=2, sample_fn=right_again)
    assert neg == [] and stats["not_a_step_the_prm_rejects"] == 1
    mirrored, stats = prm_pairs.mirrored_negatives(prm, [p], rows, -R)  # the mirror scores -R: at -R, accepted
    assert mirrored == [] and stats["prm_accepts_the_mirror"] == 1


def test_mirrored_negatives_reject_the_slip_on_the_other_side_of_the_right_number():
    p, gold, bad, prm, rows = one_step_pair()
    row, k = rows[0], 1
    right, wrong = p.values[2], toyworld.check(p, bad).steps[k]
    slip = int(wrong.rsplit("= ", 1)[1]) - right
    neg, stats = prm_pairs.mirrored_negatives(prm, [p], rows, THRESHOLD)
    assert stats["pairs"] == len(neg) == 1
    r = neg[0]
    assert r["chosen"] == row["chosen"] and r["step_index"] == k and r["kind"] == "step"
    assert r["rejected_step"] == row["chosen_step"].replace(f"= {right}", f"= {right - slip}")
    assert toyworld.arithmetic_slip(p, r["rejected"]) == -slip  # the other side of the right result
    assert r["rejected"] == r["initial_reason_steps"] + r["rejected_step"] + row["chosen"][len(
        row["initial_reason_steps"] + row["chosen_step"]):]  # the chosen's later steps, unchanged
    assert r["rejected_step_labels"][k] < 0.5 and prm_pairs.count_mislabels([p], neg)["mislabelled"] == 0
    blind, stats = prm_pairs.mirrored_negatives(StubPRM(blind=True), [p], rows, THRESHOLD)
    assert blind == [] and stats["prm_accepts_the_mirror"] == 1  # only steps the PRM rejects become pairs

    class TooShortPRM(StubPRM):  # every text over its max_length: unscored, which is not accepted
        def encode(self, prompt, steps):
            raise InputTooLong("over max_length")
    unscored, stats = prm_pairs.mirrored_negatives(TooShortPRM(), [p], rows, THRESHOLD)
    assert unscored == [] and stats["unscored_mirrors"] == 1 and stats["prm_accepts_the_mirror"] == 0
    assert prm_pairs.mirrored_step("Step 2: 39 - 1 = 38", "Step 2: 38 - 1 = 37") is None  # a copied operand
    assert prm_pairs.mirrored_step("Step 1: 1 + 0 = 1", "Step 1: 1 + 0 = 3") is None  # would be negative
    assert prm_pairs.mirrored_step("Step 1: 13 * 3 = 39", "Step 1: 13 * 3 = 38") == "Step 1: 13 * 3 = 40"
    assert prm_pairs.mirrored_step("Step 1: 1 + 4 = 5", "Step 1: 1 + 4 = 05") is None  # one number, written two ways


def test_round_pairs_add_the_mirrored_pairs_or_use_them_instead_of_the_step_pairs(monkeypatch):
    p, gold, bad, prm, rows = one_step_pair()
    samples = prm_pairs.label_samples(prm, [p], [[gold, bad]], THRESHOLD)
    monkeypatch.setattr(onpolicy, "step_pairs", lambda *a, **kw: ([dict(r) for r in rows], {"pairs": len(rows)}))
    mirror = prm_pairs.mirrored_step(rows[0]["chosen_step"], rows[0]["rejected_step"])
    for mode, rejected_steps in [("no", [rows[0]["rejected_step"]]), ("add", [rows[0]["rejected_step"], mirror]),
                                 ("instead", [mirror])]:
        rs = onpolicy.RoundSettings(pairs="both", mirrored_negatives=mode, threshold=THRESHOLD)
        out, info = onpolicy.build_round_pairs({}, None, prm, [p], samples, rs)
        assert sorted(r["rejected_step"] for r in out if r["kind"] == "step") == sorted(rejected_steps), mode
        # the step pair's corrected chosen is the gold solution: it is the solution pair (gold, bad) again, and
        # that one row is kept once, as the step pair (it was trained and counted twice); without it, it stays
        assert [r["rejected"] for r in out if r["kind"] == "solution"] == ([bad] if mode == "instead" else [])
        assert len({(r["prompt"], r["chosen"], r["rejected"]) for r in out}) == len(out)
        assert info.get("repeated_pairs_dropped", 0) == (mode != "instead")
        assert ("mirrored_negatives" in info) == (mode != "no")
    with pytest.raises(ValueError, match="mirrored_negatives"):
        onpolicy.RoundSettings(mirrored_negatives=True)
    with pytest.raises(ValueError, match="step_negatives=0"):
        onpolicy.RoundSettings(mirrored_negatives="instead", step_negatives=2)
    with pytest.raises(ValueError, match="step row 0"):
        prm_pairs.mirrored_negatives(prm, [p], [dict(rows[0], chosen=gold[::-1])], THRESHOLD)


def test_round_pairs_are_shuffled_by_the_seed_and_a_repeated_pair_keeps_its_first_row(monkeypatch):
    sol = [dict(prompt="p", chosen=f"c{i}", rejected=f"r{i}", kind="solution") for i in range(4)]
    step = [dict(prompt="p", chosen=f"s{i}", rejected=f"t{i}", kind="step", step_index=i) for i in range(4)]
    step.append(dict(step[0], step_index=9))  # the same pair again, built at another step
    monkeypatch.setattr(onpolicy, "solution_pairs", lambda *a, **kw: ([dict(r) for r in sol], {}))
    monkeypatch.setattr(onpolicy, "step_pairs", lambda *a, **kw: ([dict(r) for r in step], {}))
    out, info = onpolicy.build_round_pairs({}, None, None, [], [], onpolicy.RoundSettings(pairs="both"), seed=3)
    expected = sol + step[:4]
    random.Random(3).shuffle(expected)  # not every solution pair, then every step pair
    assert out == expected and info["repeated_pairs_dropped"] == 1


def test_a_rounds_chosen_rule_reaches_its_solution_pairs(monkeypatch):
    """RoundSettings.chosen is what solution_pairs keeps as chosen ("answer": plain RFT's positives); another rule is
    refused where the settings are made, before a round samples."""
    got = []
    monkeypatch.setattr(onpolicy, "solution_pairs", lambda *a, **kw: (got.append(kw["chosen"]) or [], {}))
    for rule in ("prm", "answer"):
        onpolicy.build_round_pairs({}, None, None, [], [], onpolicy.RoundSettings(pairs="solution", chosen=rule))
    assert got == ["prm", "answer"] and onpolicy.RoundSettings().chosen == "prm"
    with pytest.raises(ValueError, match=r"chosen must be one of \('prm', 'answer'\), got 'gold'"):
        onpolicy.RoundSettings(chosen="gold")


def test_step_pairs_require_an_accepted_solution_by_default():
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD)
    v = p.values
    # right step 2, wrong step 3: the PRM accepts step k but not the solution
    half = toyworld.format_solution([(v[0], *p.ops[0], v[1]), (v[1], *p.ops[1], v[2]), (v[2], *p.ops[2], v[3] + 1)])
    prefix = extract_steps(gold)[0]

    def sampler(model, tokenizer, contexts, n, **kw):
        return [[half[len(prefix):]] * n for _ in contexts]

    strict, _ = prm_pairs.step_pairs({"m": None}, None, prm, [p], samples, THRESHOLD, attempts=1, sample_fn=sampler)
    loose, _ = prm_pairs.step_pairs({"m": None}, None, prm, [p], samples, THRESHOLD, attempts=1, sample_fn=sampler,
                                   require="step")
    assert strict == [] and [r["chosen"] for r in loose] == [half]


def test_a_trainer_class_of_ones_own_trains_the_stepwise_method(tmp_path, tiny_model, right_padded_tokenizer):
    """The rounds picked the trainer from TrainSettings' strings only: a user's own StepwiseDPOTrainer subclass (a
    margin step loss, say) needed an edit of the kit."""
    class MyTrainer(StepwiseDPOTrainer):
        pass

    tok = right_padded_tokenizer
    rows = step_rows()
    settings = onpolicy.TrainSettings(step_pairing="first_error", args=FAST, trainer_class=MyTrainer)
    trainer = onpolicy.make_trainer("stepwise_dpo", tiny_model, tok, rows, settings, str(tmp_path / "m"))
    assert type(trainer) is MyTrainer
    assert type(onpolicy.make_trainer("stepwise_dpo", tiny_model, tok, rows, onpolicy.TrainSettings(
        step_pairing="first_error", args=FAST), str(tmp_path / "d"))) is StepwiseDPOTrainer  # the default: as before
    assert dataclasses.replace(settings, args={}).trainer_class is MyTrainer  # run_round's per-round copy keeps it
    with pytest.raises(ValueError, match=r"trainer_class must be a subclass of StepwiseDPOTrainer or None, got"):
        onpolicy.TrainSettings(trainer_class="MyTrainer")
    with pytest.raises(ValueError, match=r"trainer_class MyTrainer replaces the trainers that step_gradient, "
                                         r"step_rejected and rejected_sft_weight pick"):
        onpolicy.TrainSettings(step_pairing="first_token", step_rejected="fresh", trainer_class=MyTrainer)


def test_a_trainer_class_the_round_cannot_train_is_refused_by_train_settings(tmp_path, tiny_model,
                                                                             right_padded_tokenizer):
    """A trainer_class whose step_loss has the old 8-argument signature, or whose extra_columns a round's rows lack,
    was refused by StepwiseDPOTrainer only: after run_round had sampled, labelled, built pairs and trained DPO in
    full (and marked that policy trained, so a rerun was refused too). TrainSettings refuses both at once, with the
    trainer's own check of step_loss; a column the round does give (open_ended) is kept for it in every round."""
    class Old(StepwiseDPOTrainer):
        def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                      inputs):
            return chosen_rho.sum()

    class Margin(StepwiseDPOTrainer):
        extra_columns = ("pair_margin",)

    class ReadsOpenEnded(StepwiseDPOTrainer):
        extra_columns = ("open_ended",)

    with pytest.raises(ValueError, match=r"Old.step_loss\(chosen_rho, .*inputs\) cannot take the 9 arguments"):
        onpolicy.TrainSettings(trainer_class=Old)
    with pytest.raises(ValueError, match=r"TrainSettings: trainer_class Margin.extra_columns lists \['pair_margin'\], "
                                         r"which a round's rows lack: its trainer gets the columns \('prompt', "):
        onpolicy.TrainSettings(trainer_class=Margin)
    Margin.extra_columns = "pair_margin"  # one str: read letter by letter
    with pytest.raises(ValueError, match=r"Margin.extra_columns: expected a list of names, got one str"):
        onpolicy.TrainSettings(trainer_class=Margin)
    tok = right_padded_tokenizer
    rows = step_rows()
    assert not any(r.get("open_ended") for r in rows)  # whole solutions: before, no open_ended column, refused
    settings = onpolicy.TrainSettings(step_pairing="first_error", args=FAST, trainer_class=ReadsOpenEnded)
    trainer = onpolicy.make_trainer("stepwise_dpo", tiny_model, tok, rows, settings, str(tmp_path / "o"))
    assert type(trainer) is ReadsOpenEnded and "open_ended" in trainer.train_dataset.column_names


# ----------------------------------------------------------------------------- EOS of one-step completions

def step_rows():
    p, gold, bad, _ = problem_and_texts()
    samples = prm_pairs.label_samples(StubPRM(), [p], [[bad]], THRESHOLD)
    rows, _ = prm_pairs.step_pairs({"m": None}, None, StubPRM(), [p], samples, THRESHOLD, attempts=2,
                                  sample_fn=StubSampler(p, gold, bad))
    return rows


def test_one_step_completions_get_no_eos(tmp_path, tiny_model, right_padded_tokenizer):
    tok = right_padded_tokenizer
    eos = tok.eos_token_id
    rows = step_rows()
    settings = onpolicy.TrainSettings(step_pairing="first_error", args=FAST)
    prefix = onpolicy.make_trainer("stepwise_dpo", tiny_model, tok, prm_pairs.step_pair_rows(rows, "prefix"), settings,
                                   str(tmp_path / "prefix"))
    ex = prefix.train_dataset[0]
    assert ex["chosen_ids"][-1] != eos and ex["rejected_ids"][-1] != eos  # TRL appended it; it was dropped
    assert tok.decode(ex["chosen_ids"]) == rows[0]["chosen_step"]
    t = next(i for i, (c, r) in enumerate(zip(ex["chosen_ids"], ex["rejected_ids"])) if c != r)
    assert 0 < t and ex["first_diff_step"] == 0  # one step, from its first differing token on (the opening is shared)
    assert ex["chosen_step_ids"] == [-1] * t + [0] * (len(ex["chosen_ids"]) - t)
    batch = prefix.data_collator([ex])
    assert eos not in batch["input_ids"][batch["completion_mask"].bool()].tolist()  # no NLL or ρ on a stop
    assert torch.isfinite(prefix.compute_loss(prefix.model, batch))

    full = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, rows, settings,
                                 str(tmp_path / "full"))
    ex = full.train_dataset[0]
    n_steps = len(extract_steps(rows[0]["chosen"]))
    assert ex["chosen_ids"][-1] == eos and ex["chosen_step_ids"][-1] == n_steps - 1  # a whole solution stops
    assert ex["first_diff_step"] == rows[0]["step_index"] == 1 < n_steps - 1  # the scored step holds no EOS

    # whole-solution rows first, then one-step rows: Dataset.from_list took the first row's keys and dropped
    # open_ended, so the one-step completions kept TRL's EOS (trained to stop after one step)
    mixed = rows + prm_pairs.step_pair_rows(rows, "prefix")
    assert "open_ended" not in mixed[0]
    both = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, mixed, settings, str(tmp_path / "mix"))
    assert both.train_dataset[0]["chosen_ids"][-1] == eos and both.train_dataset[1]["chosen_ids"][-1] != eos
    unlabelled = [mixed[0], {k: v for k, v in mixed[1].items() if k != "chosen_step_labels"}]
    with pytest.raises(ValueError, match="row 1: field 'chosen_step_labels': is missing"):  # the trainer's own check
        onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, unlabelled, settings,
                              str(tmp_path / "bad"))

    with pytest.raises(ValueError, match="full form"):
        onpolicy.make_trainer("dpo", copy.deepcopy(tiny_model), tok, prm_pairs.step_pair_rows(rows, "prefix"),
                              settings, str(tmp_path / "dpo"))


def test_output_layer_step_loss_has_the_same_value_and_moves_only_the_output_layer(tmp_path, policy_and_reference,
                                                                                   right_padded_tokenizer):
    """step_gradient="output_layer" (output_layer_pairs.py): the first-token step loss reads the same log-probs as
    Stepwise DPO's, through stopgrad(h), so its gradient reaches the (tied) output rows and nothing else; the NLL
    term still trains the whole model; any other pairing is a ValueError."""
    from stepdpo_lite.tutorial.output_layer_pairs import OutputLayerStepDPOTrainer

    policy, ref = policy_and_reference
    tok = right_padded_tokenizer
    rows = step_rows()
    losses, grads = {}, {}
    for gradient, sft in (("all", 0.0), ("output_layer", 0.0), ("output_layer", 1.0)):
        settings = onpolicy.TrainSettings(step_pairing="first_token", step_gradient=gradient, sft_weight=sft,
                                          args=FAST)
        tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(policy), tok, rows, settings,
                                   str(tmp_path / gradient), ref_model=copy.deepcopy(ref))
        assert isinstance(tr, OutputLayerStepDPOTrainer) == (gradient == "output_layer")
        loss = tr.compute_loss(tr.model, tr.data_collator([tr.train_dataset[i] for i in range(len(rows))]))
        loss.backward()
        losses[gradient, sft] = loss.item()
        grads[gradient, sft] = {n for n, p in tr.model.named_parameters()
                                if p.grad is not None and p.grad.abs().sum() > 0}
    assert losses["output_layer", 0.0] == pytest.approx(losses["all", 0.0], abs=1e-6)
    assert abs(losses["all", 0.0] - math.log(2)) > 1e-4
    weighted = {}  # with positional step weights too (the variant left them out: another loss)
    for gradient in ("all", "output_layer"):
        settings = onpolicy.TrainSettings(step_pairing="first_token", step_gradient=gradient, sft_weight=0.0,
                                          args=dict(FAST, step_weights=[1.0, 0.25]))
        tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(policy), tok, rows, settings,
                                   str(tmp_path / gradient), ref_model=copy.deepcopy(ref))
        with torch.no_grad():
            weighted[gradient] = tr.compute_loss(tr.model, tr.data_collator([tr.train_dataset[i] for i in
                                                                             range(len(rows))])).item()
    assert rows[0]["step_index"] == 1 and abs(weighted["all"] - losses["all", 0.0]) > 1e-4
    assert weighted["output_layer"] == pytest.approx(weighted["all"], abs=1e-6)
    assert grads["output_layer", 0.0] == {"model.embed_tokens.weight"}  # the output rows, tied to the input ones
    assert len(grads["all", 0.0]) > 10 and grads["output_layer", 1.0] == grads["all", 0.0]  # the NLL: everything
    with pytest.raises(ValueError, match="first_token"):
        onpolicy.TrainSettings(step_pairing="first_error", step_gradient="output_layer")
    with pytest.raises(ValueError, match="step_gradient must be"):
        onpolicy.TrainSettings(step_pairing="first_token", step_gradient="head")
    with pytest.raises(ValueError, match="first_token"):
        OutputLayerStepDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), processing_class=tok,
                                  train_dataset=tr.train_dataset,
                                  args=dataclasses.replace(tr.args, step_pairing="first_error"))
    frozen = copy.deepcopy(policy)
    frozen.get_output_embeddings().weight.requires_grad_(False)  # as under a LoRA adapter: the step loss has no target
    with pytest.raises(ValueError, match="output layer is frozen"):
        OutputLayerStepDPOTrainer(frozen, ref_model=copy.deepcopy(ref), processing_class=tok,
                                  train_dataset=tr.train_dataset, args=tr.args)


def test_output_layer_step_loss_reads_precomputed_reference_log_probs_at_the_critical_token(tmp_path,
                                                                                            policy_and_reference,
                                                                                            right_padded_tokenizer):
    """With precompute_ref_log_probs the reference's log-prob of a pair's critical token comes from the prepared
    columns (index 1 + the step: column 0 is the prompt's) rather than from a pass of the reference: the loss is
    the same as with the reference read live, and not log 2 (the policy is off its reference). The suite never
    computed the output-layer loss from precomputed reference log-probs."""
    policy, ref = policy_and_reference
    tok = right_padded_tokenizer
    rows = step_rows()
    losses = {}
    for precompute in (False, True):
        settings = onpolicy.TrainSettings(step_pairing="first_token", step_gradient="output_layer", sft_weight=0.0,
                                          args=dict(FAST, precompute_ref_log_probs=precompute))
        tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(policy), tok, rows, settings,
                                   str(tmp_path / str(precompute)), ref_model=copy.deepcopy(ref))
        assert tr.precompute_ref_logps == precompute
        with torch.no_grad():
            losses[precompute] = tr.compute_loss(tr.model, tr.data_collator([tr.train_dataset[i]
                                                                             for i in range(len(rows))])).item()
    assert losses[True] == pytest.approx(losses[False], abs=1e-6)
    assert abs(losses[False] - math.log(2)) > 1e-4


def test_output_layer_step_loss_averages_over_the_pairs_that_have_a_critical_token(tmp_path, policy_and_reference,
                                                                                   right_padded_tokenizer):
    """A pair without a critical token (no differing step, or one truncated) adds nothing to the step loss and does
    not count in its mean: the loss of a batch with one such pair is that of the batch without it. No test gave the
    output-layer loss a pair without a critical token."""
    policy, ref = policy_and_reference
    tok = right_padded_tokenizer
    rows = step_rows() * 2  # one pair, twice
    settings = onpolicy.TrainSettings(step_pairing="first_token", step_gradient="output_layer", sft_weight=0.0,
                                      args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(policy), tok, rows, settings, str(tmp_path / "o"),
                               ref_model=copy.deepcopy(ref))
    batch = tr.data_collator([tr.train_dataset[i] for i in range(len(rows))])
    batch["first_diff_step"][0] = -1  # pair 0: no differing step, so no critical token
    rest = tr.data_collator([tr.train_dataset[i] for i in range(1, len(rows))])
    with torch.no_grad():
        assert tr.critical_token_loss(tr.model, batch).item() == pytest.approx(
            tr.critical_token_loss(tr.model, rest).item(), abs=1e-6)


def test_critical_positions_find_each_rows_first_token_of_its_pairs_first_differing_step():
    """Rows [chosen; rejected]: each row's critical token is the first of its pair's first differing step, a step 0
    one too; a pair without one (-1), or a row whose step is cut short, has none. Positional weights a_k are read at
    that step, and a batch whose every pair has none still gets its weights. step_rows() differ at step 1 only."""
    from stepdpo_lite.tutorial.critical_token import CriticalTokenStepDPOTrainer

    critical = CriticalTokenStepDPOTrainer.__new__(CriticalTokenStepDPOTrainer)  # the helpers read args only
    critical.args = SimpleNamespace(step_weights=[1.0, 0.25])
    step_ids = torch.tensor([[-1, -1, 0, 0, 1, 1], [-1, 0, 0, 1, 1, 1], [-1, 0, 1, 1, 1, 1],  # chosen rows
                             [-1, 0, 0, 1, 1, -1], [-1, 0, 1, 1, -1, -1], [-1, 0, 0, 0, 1, -1]])  # rejected rows
    complete = torch.ones(6, 2, dtype=torch.bool)
    complete[4, 1] = False  # pair 1's rejected row stops inside its differing step
    inputs = {"first_diff_step": torch.tensor([0, 1, -1]), "step_ids": step_ids, "step_complete": complete}
    pos, valid = critical._critical_positions(inputs)
    assert valid.tolist() == [True, True, False, True, False, False] and pos[valid].tolist() == [2, 3, 1]
    assert critical._first_step_weights(inputs)[:2].tolist() == [[1.0], [0.25]]
    assert critical._first_step_weights({"first_diff_step": torch.tensor([-1, -1])}).shape == (2, 1)


def test_output_layer_step_loss_reads_the_step_beta_as_stepwise_dpos_does(tmp_path, policy_and_reference,
                                                                          right_padded_tokenizer):
    """The step loss's β is step_beta, not DPO's beta: make_trainer sets the two alike, but a trainer made by hand
    (the module docstring's way) may set them apart, and its output-layer loss still has the value of Stepwise DPO's
    own first-token step loss. Every trainer the suite compared came from make_trainer, with the two alike."""
    from stepdpo_lite.tutorial.output_layer_pairs import OutputLayerStepDPOTrainer

    policy, ref = policy_and_reference
    tok = right_padded_tokenizer
    rows = step_rows()
    settings = onpolicy.TrainSettings(step_pairing="first_token", sft_weight=0.0, args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(policy), tok, rows, settings, str(tmp_path / "a"),
                               ref_model=copy.deepcopy(ref))
    args = dataclasses.replace(tr.args, beta=0.1, step_beta=2.0)
    losses = {}
    for cls in (StepwiseDPOTrainer, OutputLayerStepDPOTrainer):
        trainer = cls(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), processing_class=tok,
                      train_dataset=tr.train_dataset, args=args)
        with torch.no_grad():
            losses[cls] = trainer.compute_loss(trainer.model, trainer.data_collator(
                [trainer.train_dataset[i] for i in range(len(rows))])).item()
    assert losses[OutputLayerStepDPOTrainer] == pytest.approx(losses[StepwiseDPOTrainer], abs=1e-6)


def test_output_layer_step_loss_counts_a_pair_whose_rejected_critical_step_alone_is_truncated(
        tmp_path, policy_and_reference, right_padded_tokenizer):
    """A pair whose critical token is in a complete step on one side only still pushes that side, and counts in the
    mean, as in Stepwise DPO's own first-token step loss: the two losses have the same value on such a batch."""
    from stepdpo_lite.tutorial.output_layer_pairs import OutputLayerStepDPOTrainer

    policy, ref = policy_and_reference
    tok = right_padded_tokenizer
    rows = step_rows() * 2
    settings = onpolicy.TrainSettings(step_pairing="first_token", sft_weight=0.0, args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(policy), tok, rows, settings, str(tmp_path / "a"),
                               ref_model=copy.deepcopy(ref))
    losses = {}
    for cls in (StepwiseDPOTrainer, OutputLayerStepDPOTrainer):
        trainer = cls(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), processing_class=tok,
                      train_dataset=tr.train_dataset, args=tr.args)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
        batch["step_complete"][len(rows), batch["first_diff_step"][0]] = False  # pair 0's rejected step: truncated
        with torch.no_grad():
            losses[cls] = trainer.compute_loss(trainer.model, batch).item()
            # pair 1 alone: the mean without pair 0, so the batch's loss differs from it only where pair 0 counts
            alone = trainer.compute_loss(trainer.model, trainer.data_collator([trainer.train_dataset[1]])).item()
        assert losses[cls] != pytest.approx(alone, abs=1e-6), cls.__name__
    assert losses[OutputLayerStepDPOTrainer] == pytest.approx(losses[StepwiseDPOTrainer], abs=1e-6)

def _moved_off_the_reference(model) -> None:
    """The same small random step on every weight (seeded): off the reference, where the step loss depends on the
    tokens scored (at the reference every log-ratio is 0)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def _redrawn_rejected_trainer(tmp_path, tiny_model, tok, step_rejected):
    """A Stepwise DPO trainer whose rejected token comes from the current policy (``step_rejected``), at the
    reference on ``step_rows()``; its collated batch; and the gradient of a loss over its trainable parameters."""
    rows = step_rows()
    settings = onpolicy.TrainSettings(step_pairing="first_token", step_rejected=step_rejected, sft_weight=0.0,
                                      args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, rows, settings,
                               str(tmp_path / step_rejected), ref_model=copy.deepcopy(tiny_model).eval())
    batch = tr.data_collator([tr.train_dataset[i] for i in range(len(rows))])
    params = [p for p in tr.model.parameters() if p.requires_grad]

    def gradient(value):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, params)])
    return tr, batch, gradient


def _chosen_token_nll_gradient(tr, batch, gradient):
    """The identity's prediction at the reference: −β/2 times the chosen token's log-prob gradient, each pair weighed
    by p⁺ of its step (= 1 − p⁻ of the rejected one in ``step_rows()``), averaged over the pairs."""
    pos, valid = tr._critical_positions(batch)
    n = len(pos) // 2
    assert bool((valid[:n] & valid[n:]).all())
    kwargs, _ = tr._model_inputs(batch)
    logp = torch.log_softmax(tr.model(**{k: v[:n] if torch.is_tensor(v) else v for k, v in kwargs.items()}).logits,
                             -1)[torch.arange(n), pos[:n] - 1]
    chosen = batch["input_ids"][torch.arange(n), pos[:n]]
    first = batch["first_diff_step"]
    coef = batch["step_probs"][torch.arange(n), first]
    assert torch.allclose(coef, 1 - batch["step_probs"][torch.arange(n, 2 * n), first])
    return gradient(-tr.args.step_beta / 2 * (coef * logp[torch.arange(n), chosen]).sum() / n)


def test_fresh_rejected_step_loss_averages_to_the_chosen_tokens_nll(tmp_path, tiny_model, right_padded_tokenizer):
    """step_rejected="fresh" (fresh_rejected_pairs.py): at every step the rejected token is drawn again from the
    current policy at the pair's state, so at the reference the step loss's gradient averages, over draws, to −β/2 times
    the chosen token's log-prob gradient (scripts/pair_expectation.py's identity, inside the trainer); settings that
    cannot redraw one token are ValueErrors."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import FreshRejectedStepDPOTrainer

    tr, batch, gradient = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "fresh")
    assert isinstance(tr, FreshRejectedStepDPOTrainer)
    draws = [gradient(tr.compute_loss(tr.model, batch)) for _ in range(100)]
    assert len({round(float(d.norm()), 6) for d in draws}) > 2  # the rejected token changes from step to step
    expected = _chosen_token_nll_gradient(tr, batch, gradient)
    mean = torch.stack(draws).mean(0)
    cos = torch.nn.functional.cosine_similarity(mean, expected, dim=0)
    assert cos > 0.95 and 0.8 < float(mean.norm() / expected.norm()) < 1.2, (float(cos), float(mean.norm()),
                                                                           float(expected.norm()))
    with pytest.raises(ValueError, match="step_pairing must be one of"):  # was refused after DPO's training
        onpolicy.TrainSettings(step_pairing="first_errror")
    for bad in (dict(step_pairing="first_error"), dict(step_pairing="first_token", step_gradient="output_layer"),
                dict(step_pairing="first_token", step_rejected="new"),
                dict(step_pairing="first_error", step_rejected="expected")):
        with pytest.raises(ValueError, match="step_rejected"):
            onpolicy.TrainSettings(step_rejected=bad.pop("step_rejected", "fresh"), **bad)
    with pytest.raises(ValueError, match="ref_model"):
        FreshRejectedStepDPOTrainer(copy.deepcopy(tiny_model), ref_model=None, processing_class=tr.processing_class,
                                    train_dataset=tr.train_dataset,
                                    args=dataclasses.replace(tr.args, precompute_ref_log_probs=True))


def test_expected_rejected_step_loss_is_the_chosen_tokens_nll_exactly(tmp_path, tiny_model, right_padded_tokenizer):
    """step_rejected="expected": the fresh draw's expectation over the vocabulary, so at the reference the gradient
    *is* −β/2 times the chosen token's log-prob gradient, to float precision, with no draw to average; away from the
    reference it is the mean of the fresh trainer's draws (the same weights, the same step)."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import ExpectedRejectedStepDPOTrainer

    tr, batch, gradient = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "expected")
    assert isinstance(tr, ExpectedRejectedStepDPOTrainer)
    got = gradient(tr.compute_loss(tr.model, batch))
    want = _chosen_token_nll_gradient(tr, batch, gradient)
    assert torch.allclose(got, want, atol=1e-6, rtol=1e-4), float((got - want).abs().max())

    fresh, fresh_batch, fresh_gradient = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer,
                                                                   "fresh")
    for model in (tr.model, fresh.model):  # both moved off the reference alike, where σ(−β·h) weighs each rival
        _moved_off_the_reference(model)
    exact = tr.compute_loss(tr.model, batch).item()
    draws = torch.tensor([fresh.compute_loss(fresh.model, fresh_batch).item() for _ in range(400)])
    assert abs(draws.mean() - exact) < 4 * draws.std() / 20, (exact, float(draws.mean()), float(draws.std()))
    assert float(draws.std()) > 0  # the fresh loss varies from draw to draw; the expected one is its mean


def test_redrawn_rejected_step_loss_counts_a_pair_only_where_both_sides_reach_their_critical_token(
        tmp_path, tiny_model, right_padded_tokenizer):
    """A pair whose rejected side stops before its differing step (truncated: no complete critical step) is no pair
    the round made: it adds nothing, whatever the chosen side holds. The suite never gave the redrawn-token losses a
    pair complete on one side only."""
    tr, batch, _ = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "expected")
    n = len(batch["first_diff_step"])
    with torch.no_grad():
        assert tr.critical_token_loss(tr.model, batch).item() > 0
        batch["step_complete"][n:] = False  # every rejected row cut before its critical step
        assert tr.critical_token_loss(tr.model, batch).item() == 0


def test_top_rival_step_loss_rejects_the_policys_strongest_wrong_token(tmp_path, tiny_model, right_padded_tokenizer):
    """step_rejected="top": each pair's state rejects argmax_{r != c} π(r|s), weighed by 1 − π(c|s); at the reference
    (every log-ratio 0) its loss is (1 − π(c|s))·log 2 per pair, and its gradient is no longer the chosen token's NLL
    gradient (the expectation's), but β/2·(1 − π(c))·(∇log π(c) − ∇log π(r*)): deterministic, one rival."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import TopRivalStepDPOTrainer

    tr, batch, gradient = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "top")
    assert isinstance(tr, TopRivalStepDPOTrainer)
    pos, _ = tr._critical_positions(batch)
    n = len(pos) // 2
    kwargs, _ = tr._model_inputs(batch)
    logp = torch.log_softmax(tr.model(**{k: v[:n] if torch.is_tensor(v) else v for k, v in kwargs.items()}).logits,
                             -1)[torch.arange(n), pos[:n] - 1]
    c = batch["input_ids"][torch.arange(n), pos[:n]]
    rival = logp.detach().clone()
    rival[torch.arange(n), c] = -float("inf")
    r = rival.argmax(1)
    assert bool((r != c).all())
    slip = 1 - logp.detach()[torch.arange(n), c].exp()
    first = batch["first_diff_step"]
    coef = batch["step_probs"][torch.arange(n), first]  # p⁺ = 1 − p⁻ in step_rows()
    want_loss = (slip * math.log(2)).mean()
    got_loss = tr.critical_token_loss(tr.model, batch)
    assert torch.allclose(got_loss, want_loss, rtol=1e-5), (float(got_loss), float(want_loss))
    want = gradient(-tr.args.step_beta / 2 * (coef * slip * (logp[torch.arange(n), c] - logp[torch.arange(n), r])).sum()
                    / n)
    got = gradient(tr.compute_loss(tr.model, batch))
    assert torch.allclose(got, want, atol=1e-6, rtol=1e-4), float((got - want).abs().max())
    assert torch.allclose(gradient(tr.compute_loss(tr.model, batch)), got)  # no draw: the same every time


def test_rejected_prefix_nll_is_the_nll_of_the_rejected_right_opening(tmp_path, tiny_model, right_padded_tokenizer):
    """rejected_sft_weight w adds w·Σ p⁻_k·NLL(s⁻_k) / Σ p⁻_k·|s⁻_k| over the steps before the PRM's first
    error, read against one forward per step prefix; the steps from it on, and every step of a wrong solution in
    which the PRM found no error (which step is wrong is not known), are left out. Made through
    onpolicy.make_trainer, as a round makes it."""
    from stepdpo_lite.tutorial.rejected_prefix_nll import RejectedPrefixNLLStepDPOTrainer, accepted_prefix_weights

    p = torch.tensor([[0.9, 0.6, 0.1, 1.0], [0.3, 1.0, 1.0, 1.0], [1.0, 0.8, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1]]).bool()  # row 2: step 2 truncated
    torch.testing.assert_close(accepted_prefix_weights(p, torch.tensor([2, 0, 4]), mask),
                               torch.tensor([[0.9, 0.6, 0.0, 0.0], [0.0] * 4, [1.0, 0.8, 0.0, 0.0]]))

    rows = []
    for i, problem in enumerate(toyworld.make_problems(4, seed=1, min_ops=3, max_ops=4)):
        rejected = toyworld.corrupt_solution(problem, 2, "arithmetic", random.Random(i))
        n = len(extract_steps(rejected))
        rows.append(dict(prompt=problem.prompt, chosen=problem.gold_solution, rejected=rejected,
                         chosen_step_labels=[1.0] * len(extract_steps(problem.gold_solution)),
                         # the PRM's error at step 2 (p 0.04 > 0.5's "wrong" is no matter: its own threshold rules)
                         rejected_step_labels=[0.9, 0.3, 0.04] + [1.0] * (n - 3), prm_first_error=2))
    rows[3].update(rejected_step_labels=[0.9] * len(extract_steps(rows[3]["rejected"])), prm_first_error=-1)
    tok = right_padded_tokenizer
    losses = {}
    for w in (0.0, 2.0):
        settings = onpolicy.TrainSettings(step_pairing="first_error", sft_weight=0.5, rejected_sft_weight=w, args=FAST)
        tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, rows, settings, str(tmp_path / "r"),
                                   ref_model=copy.deepcopy(tiny_model).eval())
        assert isinstance(tr, RejectedPrefixNLLStepDPOTrainer) == bool(w)
        batch = tr.data_collator([tr.train_dataset[i] for i in range(4)])
        with torch.no_grad():
            losses[w] = tr.compute_loss(tr.model, batch).item()
    assert batch["rejected_opening_steps"].tolist() == [2, 2, 2, 0]
    nll = tokens = 0.0
    for r in rows[:3]:
        steps, context = extract_steps(r["rejected"]), r["prompt"]
        for k, weight in enumerate([0.9, 0.3]):
            ids, before = tok(context + steps[k])["input_ids"], len(tok(context)["input_ids"])
            with torch.no_grad():
                logits = tiny_model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
            nll, tokens, context = nll - weight * lp[before - 1:].sum().item(), tokens + weight * (len(ids) - before), \
                context + steps[k]
    assert losses[2.0] - losses[0.0] == pytest.approx(2.0 * nll / tokens, rel=1e-4)
    for bad in (dict(step_pairing="first_token"), dict(step_pairing="first_token", step_gradient="output_layer"),
                dict(step_pairing="first_error", rejected_sft_weight=-1.0),
                dict(step_pairing="first_error", rejected_sft_weight=float("nan"))):
        with pytest.raises(ValueError, match="rejected_sft_weight"):
            onpolicy.TrainSettings(**{"rejected_sft_weight": 1.0, **bad})
    settings = onpolicy.TrainSettings(step_pairing="first_error", rejected_sft_weight=1.0, args=FAST)
    with pytest.raises(ValueError, match="row 1: `prm_first_error`"):  # where the opening ends is not known
        onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, [rows[0], {**rows[1], "prm_first_error":
                              None}], settings, str(tmp_path / "n"), ref_model=copy.deepcopy(tiny_model).eval())


def test_rejected_prefix_nll_reads_the_rejected_rows_and_their_own_truncation(tmp_path, tiny_model,
                                                                              right_padded_tokenizer):
    """The term is the rejected side's alone: two chosen solutions that part from it at the same token (so its step
    ids are the same) but go on otherwise give it the same value; a rejected step cut by max_length ends the
    opening there, as an opening one step shorter does."""
    problem = toyworld.make_problems(1, seed=1, min_ops=3, max_ops=4)[0]
    rejected = toyworld.corrupt_solution(problem, 2, "arithmetic", random.Random(0))
    head, result = extract_steps(rejected)[0].rsplit(" ", 1)
    rows = [dict(prompt=problem.prompt, chosen=rejected.replace(f"{head} {result}", f"{head} {d}{result}", 1),
                 rejected=rejected, prm_first_error=2, chosen_step_labels=[1.0] * len(extract_steps(rejected)),
                 rejected_step_labels=[0.9, 0.3, 0.04] + [1.0] * (len(extract_steps(rejected)) - 3)) for d in (8, 9)]
    settings = onpolicy.TrainSettings(step_pairing="first_error", rejected_sft_weight=1.0, args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), right_padded_tokenizer, rows, settings,
                               str(tmp_path / "r"), ref_model=copy.deepcopy(tiny_model).eval())
    assert tr.train_dataset[0]["rejected_step_ids"] == tr.train_dataset[1]["rejected_step_ids"]
    batches = {name: tr.data_collator([tr.train_dataset[i]]) for name, i in
               (("8", 0), ("9", 1), ("cut", 0), ("shorter", 0))}
    batches["cut"]["step_complete"][1, 1] = False  # the rejected row's step 1, cut by max_length
    batches["shorter"]["rejected_opening_steps"][0] = 1
    with torch.no_grad():
        nll = {name: tr.extra_loss(tr.model, batch).item() for name, batch in batches.items()}
    assert nll["9"] == pytest.approx(nll["8"], abs=1e-6)
    assert nll["cut"] == pytest.approx(nll["shorter"], abs=1e-6) and abs(nll["cut"] - nll["8"]) > 1e-4


def test_rejected_prefix_nll_refuses_a_bool_first_error_a_zero_weight_and_first_token_pairing_by_itself():
    """What onpolicy.TrainSettings checks before it makes the trainer, the trainer checks too, for a user who makes
    it by hand: True is no step index (it was step 1), a weight of 0 trains nothing (use StepwiseDPOTrainer), and
    first_token pairing keeps one token a side, not the opening's. The suite tried these through TrainSettings only."""
    from datasets import Dataset

    from stepdpo_lite.tutorial.rejected_prefix_nll import RejectedPrefixNLLStepDPOTrainer, opening_steps

    assert opening_steps({"prm_first_error": 2}, 0) == 2 and opening_steps({"prm_first_error": -1}, 0) == 0
    with pytest.raises(ValueError, match="row 3: `prm_first_error` must be a step index or -1"):
        opening_steps({"prm_first_error": True}, 3)
    with pytest.raises(ValueError, match="row 1: `prm_first_error` must be a step index or -1 \\(none\\), got -2"):
        opening_steps({"prm_first_error": -2}, 1)
    for data in (None, Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}])):
        with pytest.raises(ValueError, match="the train_dataset needs a `rejected_opening_steps` column"):
            RejectedPrefixNLLStepDPOTrainer(None, rejected_sft_weight=1.0, train_dataset=data)
    with pytest.raises(ValueError, match="rejected_sft_weight must be > 0, got 0.0"):
        RejectedPrefixNLLStepDPOTrainer(None, rejected_sft_weight=0.0)
    with pytest.raises(ValueError, match="needs every token in its step: step_pairing='first_token'"):
        RejectedPrefixNLLStepDPOTrainer(None, rejected_sft_weight=1.0, args=SimpleNamespace(step_pairing="first_token"))


# ----------------------------------------------------------------------------- a tiny run end to end

def test_two_tiny_rounds_end_to_end(tmp_path, tiny_base_path):
    base, tok = tiny_models.load_tiny_base(tiny_base_path)
    tok.padding_side = "right"
    policies = {m: copy.deepcopy(base) for m in onpolicy.METHODS}
    train = toyworld.make_problems(16, "train", seed=0, max_ops=3)
    held_out = toyworld.make_problems(4, "test", seed=0, max_ops=3)
    rs = onpolicy.RoundSettings(samples_per_problem=3, step_tries=2, step_attempts=1, max_new_tokens=80,
                                batch_size=32, threshold=THRESHOLD, step_negatives=1, negative_tries=2,
                                mirrored_negatives="add")
    ts = onpolicy.TrainSettings(args=FAST)
    seen = []
    records, trainers = onpolicy.run_rounds(policies, tok, StubPRM(), train, held_out, rs, ts, rounds=2,
                                            problems_per_round=8, output_dir=str(tmp_path), n_sampled=1,
                                            on_round=lambda rec, tr: seen.append(rec["round"]), out=lambda line: None)
    assert seen == [1, 2] and [r["round"] for r in records] == [1, 2]
    for rec in records:
        assert rec["pairs"]["total"] == rec["pairs"]["solution"] + rec["pairs"]["step"] > 0
        assert rec["label_source"] == "prm" and set(rec["mislabels"]) <= {"solution", "step"}
        lucky = rec["lucky"]  # the checker's count of the round's right answers through a wrong step
        assert lucky["prm_kept_lucky"] <= min(lucky["lucky"], lucky["prm_kept"]) <= lucky["right"] > 0
        assert rec["pair_info"]["step_negatives"]["pairs"] <= rec["pair_info"]["step"]["pairs"]  # one a state
        assert rec["pair_info"]["mirrored_negatives"]["pairs"] <= rec["pair_info"]["step"]["pairs"]
        for m in onpolicy.METHODS:
            assert 0 <= rec[m]["accuracy"] <= 1 and 0 <= rec[m]["sampled_accuracy"] <= 1
            assert rec[m]["step_accuracy"] is not None and rec[m]["train_seconds"] >= 0
    # round 2 trained each method on from its own round-1 policy, against that policy as the reference
    base_w = base.model.embed_tokens.weight
    for m, trainer in trainers.items():
        assert trainer.model is policies[m]
        assert not torch.equal(trainer.ref_model.model.embed_tokens.weight, base_w)
        assert not torch.equal(trainer.ref_model.model.embed_tokens.weight, policies[m].model.embed_tokens.weight)
    assert not torch.equal(policies["dpo"].model.embed_tokens.weight,
                           policies["nll_only"].model.embed_tokens.weight)
    metrics = onpolicy_report.metrics_of(records, base={"accuracy": 0.5, "sampled_accuracy": 0.25})
    assert metrics["stepwise_dpo"]["label_source"] == "prm" and len(metrics["rounds"]) == 2
    assert set(metrics["rounds"][1]) >= {"dpo", "stepwise_dpo", "nll_only", "pairs", "mislabels", "seconds"}
    for m in onpolicy.METHODS:  # every figure of the last round: one left out kept the one-round value in metrics
        assert metrics[m]["sampled_step_accuracy"] == records[-1][m]["sampled_step_accuracy"] is not None
        # which problems: notebook 06 reuses a figure only for these very ones
        assert metrics[m]["test_problems_digest"] == policy_eval.problems_digest(held_out)
        assert metrics[m]["in_4_bits"] is False  # and at which precision (full here)
    # Stepwise DPO minus each other method, paired over the same 4 held-out problems: the point is the difference of
    # the accuracies, inside its interval
    for rec in records:
        assert set(rec["stepwise_dpo_minus"]) == {"dpo", "nll_only"}
        for m, diff in rec["stepwise_dpo_minus"].items():
            for key in ("accuracy", "sampled_accuracy"):
                d = diff[key]
                assert d["difference"] == pytest.approx(rec["stepwise_dpo"][key] - rec[m][key])
                assert d["low"] <= d["difference"] <= d["high"]
    assert metrics["stepwise_dpo"]["minus"] == records[-1]["stepwise_dpo_minus"]
    table = onpolicy_report.rounds_table(records, {"accuracy": 0.5, "sampled_accuracy": 0.25})
    assert "round" in table and "After round 2, on 4 held-out problems" in table and "NLL only (RFT)" in table
    assert "Stepwise DPO + NLL minus" in onpolicy_report.format_round(records[-1])
    fig = viz.plot_onpolicy_rounds(records, {"accuracy": 0.5, "sampled_accuracy": 0.25}, save_to=tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG" and fig is not None
    assert len(fig.axes) == 4  # greedy, sampled, steps right (the checker), and Stepwise DPO minus the others
    assert all(ax.get_ylabel() for ax in fig.axes)  # what a height reads as: the panels had none
    from stepdpo_lite.tutorial.viz import method_color  # a method's colour is the one it has in every other figure
    assert {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()} == {
        display_names.method_name(m): method_color(display_names.method_name(m)) for m in onpolicy.METHODS}
    assert method_color(display_names.method_name("stepwise_dpo")) == "tab:orange"  # it was red here, orange elsewhere


def test_a_round_with_checkpointing_on_prints_no_deprecation_of_transformers_from_trls_reference_forward(
        tmp_path, tiny_base_path):
    """TRL 1.16's DPOTrainer (DPO + NLL, NLL only) reads transformers 5's deprecated ``is_gradient_checkpointing``
    at every reference forward: scripts/onpolicy_rounds.py printed that FutureWarning in every run. Only that one is
    hidden: the round's own warnings still reach the user."""
    import warnings

    from stepdpo_lite.trainer import CHECKPOINTING_FIELD
    base, tok = tiny_models.load_tiny_base(tiny_base_path)
    tok.padding_side = "right"
    train = toyworld.make_problems(4, "train", seed=0, max_ops=2)
    rs = onpolicy.RoundSettings(samples_per_problem=2, step_tries=1, step_attempts=1, max_new_tokens=60,
                                batch_size=8, threshold=THRESHOLD, pairs="solution")
    args = {k: v for k, v in FAST.items() if k != "gradient_checkpointing"}
    ts = onpolicy.TrainSettings(args=dict(args, max_steps=1, **{CHECKPOINTING_FIELD: True}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record, trainers = onpolicy.run_round({"nll_only": base}, tok, StubPRM(), train, train[:1], rs, ts,
                                              output_dir=str(tmp_path), n_sampled=1, methods=("nll_only",),
                                              out=lambda line: None)
        warnings.warn("the round's own", UserWarning)
    model = trainers["nll_only"].model  # checkpointing on: TRL's reference forward read it
    # the new name where transformers has it (a later 5.x), else 5.2's: make floor's
    on = "is_activation_checkpointing" if hasattr(model, "is_activation_checkpointing") else "is_gradient_checkpointing"
    assert getattr(model, on)
    assert not [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]
    assert "the round's own" in [str(w.message) for w in caught]


def test_a_step_pairs_chosen_that_goes_wrong_after_its_step_is_counted():
    """A Step-DPO pair's chosen is a whole solution: after its right step k it may go wrong. The pair is sound (not
    mislabelled), but DPO and NLL only train on that whole solution, and it was not counted anywhere."""
    p, gold, bad, prm, rows = one_step_pair()
    v = p.values
    later_slip = toyworld.format_solution([(v[0], *p.ops[0], v[1]), (v[1], *p.ops[1], v[2]),
                                           (v[2], *p.ops[2], v[3] + 1)])
    assert toyworld.check(p, later_slip).first_error == 2 and rows[0]["step_index"] == 1
    counts = prm_pairs.count_mislabels([p], [rows[0], dict(rows[0], chosen=later_slip)])
    assert counts["mislabelled"] == 0 and counts["chosen_wrong_after_step"] == 1


def test_a_step_pairs_chosen_wrong_at_its_own_step_is_not_counted_as_going_wrong_after_it():
    """``chosen_wrong_after_step`` counts sound Step-DPO pairs whose chosen goes wrong later; a chosen wrong at step
    k itself is a mislabel (``chosen_wrong``), not one of those."""
    p, gold, bad, _ = problem_and_texts()
    row = {"problem_index": 0, "chosen": bad, "rejected": bad, "step_index": 1, "prm_first_error": 1}
    counts = prm_pairs.count_mislabels([p], [row])
    assert counts["chosen_wrong"] == 1 and counts["chosen_wrong_after_step"] == 0


@pytest.mark.parametrize("knob, value", [("samples_per_problem", 0), ("step_pairs_per_problem", -1),
                                         ("step_tries", 0), ("step_attempts", 0), ("max_pairs_per_problem", 0),
                                         ("negative_tries", 0), ("step_negatives", -1)])
def test_round_settings_refuse_counts_that_would_build_no_pairs(knob, value):
    """samples_per_problem=0 gave "no pairs, nothing to train" every round, step_attempts=0 no accepted step,
    step_pairs_per_problem=-1 "all but the last": silently."""
    with pytest.raises(ValueError, match=f"{knob} must be an int >= "):
        onpolicy.RoundSettings(**{knob: value})


@pytest.mark.parametrize("knob, value, match", [("threshold", float("nan"), "a finite number"),
                                                ("temperature", -1.0, ">= 0"), ("temperature", True, "a finite number"),
                                                ("negative_temperature", float("inf"), "a finite number")])
def test_round_settings_refuse_temperatures_and_thresholds_before_a_round_samples(knob, value, match):
    """They were refused where first used: a NaN threshold after the round's sampling, a negative_temperature of
    inf after its sampling and step pairs."""
    with pytest.raises(ValueError, match=f"RoundSettings: {knob} must be {match}"):
        onpolicy.RoundSettings(**{knob: value})
    onpolicy.RoundSettings(temperature=0.0, threshold=-2.0)  # greedy samples; a log-odds threshold below 0


def test_step_pair_builders_refuse_counts_that_would_build_no_pairs():
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD, policy="dpo")
    for kw in (dict(max_per_problem=-1), dict(max_per_problem=0), dict(tries=0), dict(attempts=0)):
        with pytest.raises(ValueError, match=f"step_pairs: {next(iter(kw))} must be an int >= 1"):
            prm_pairs.step_pairs({"dpo": None}, None, prm, [p], samples, THRESHOLD,
                                 sample_fn=StubSampler(p, gold, bad), **kw)
    _, _, _, _, rows = one_step_pair()
    with pytest.raises(ValueError, match="step_negatives: max_per_state must be an int >= 1"):
        prm_pairs.step_negatives({"dpo": None}, None, prm, [p], rows, THRESHOLD, max_per_state=-1)


def test_a_round_refuses_what_stepwise_dpo_cannot_train_before_it_samples(tiny_model):
    """They were refused when the Stepwise DPO trainer was built: after the round's sampling, pairs and DPO's
    training, which left the DPO policy a round ahead of the others (``prm=None``: sampling would fail first)."""
    from peft import LoraConfig, get_peft_model
    lora = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    policies = {"dpo": copy.deepcopy(tiny_model), "stepwise_dpo": lora, "nll_only": copy.deepcopy(tiny_model)}
    for settings, match in ((dict(step_pairing="first_token", step_rejected="fresh"), "fully fine-tuned policy"),
                            (dict(step_pairing="first_token", step_gradient="output_layer"), "output layer")):
        with pytest.raises(ValueError, match=match):
            onpolicy.run_round(policies, None, None, [], [], onpolicy.RoundSettings(),
                               onpolicy.TrainSettings(**settings))


def test_run_rounds_refuses_a_round_count_that_is_no_count():
    """rounds=-1 ran no round and True one, without a word; 0 (notebook 04's "no rounds") runs none."""
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match=f"run_rounds: rounds must be an int >= 0 .0: none., got {bad!r}"):
            onpolicy.run_rounds({}, None, None, [], [], onpolicy.RoundSettings(), onpolicy.TrainSettings(), rounds=bad)
    assert onpolicy.run_rounds({}, None, None, [], [], onpolicy.RoundSettings(), onpolicy.TrainSettings(),
                               rounds=0) == ([], {})


def test_only_the_rounds_methods_write_its_samples(monkeypatch):
    """A policies dict with more methods than ``methods`` (notebook 04 builds one per METHODS): the untrained one
    used to write its share of every round's samples."""
    calls, seeds = [], []

    def sample(model, tokenizer, problems, n, **kw):
        calls.append((model, n))
        seeds.append(kw["seed"])
        return [[p.gold_solution] * n for p in problems]  # every sample right: no pairs, nothing trains
    monkeypatch.setattr(onpolicy.policy_eval, "sample_solutions", sample)
    monkeypatch.setattr(onpolicy.policy_eval, "greedy_and_sampled_accuracy", nothing_right)
    policies = {m: f"<{m}>" for m in onpolicy.METHODS}
    problems = toyworld.make_problems(2, "train", seed=0, max_ops=3)
    for methods, sampler, drawn in ((("dpo", "stepwise_dpo"), "pooled", [("<dpo>", 2), ("<stepwise_dpo>", 2)]),
                                    (("stepwise_dpo",), "nll_only", [("<nll_only>", 4)])):
        calls.clear(), seeds.clear()
        onpolicy.run_round(policies, None, StubPRM(), problems, problems[:1],
                           onpolicy.RoundSettings(samples_per_problem=4, sampler=sampler, threshold=THRESHOLD),
                           onpolicy.TrainSettings(), round_index=2, seed=5, methods=methods, out=lambda line: None)
        assert calls == drawn, (methods, calls)
        assert seeds == [2005 + j for j in range(len(drawn))]  # round 2's own seed, not round 1's samples again


def test_a_rounds_samples_come_from_the_first_policy_while_all_are_one_and_each_policy_draws_its_own(monkeypatch):
    """Round 1 (``shared_start``: every policy is still the start model) samples all ``K`` from the first one; later
    rounds share them out, each policy with its own seed: one seed for all would make policies that are still alike
    (a method that had no pairs to train on) draw the very same samples."""
    calls = []

    def sample(model, tokenizer, problems, n, seed, **kw):
        calls.append((model, n, seed))
        return [[p.gold_solution] * n for p in problems]
    monkeypatch.setattr(onpolicy.policy_eval, "sample_solutions", sample)
    policies = {m: f"<{m}>" for m in onpolicy.METHODS}
    problems = toyworld.make_problems(2, "train", seed=0, max_ops=3)
    rs = onpolicy.RoundSettings(samples_per_problem=4, threshold=THRESHOLD)
    first = onpolicy.sample_round(policies, None, StubPRM(), problems, rs, seed=5, shared_start=True)
    assert calls == [("<dpo>", 4, 5)] and {s.policy for row in first for s in row} == {"dpo"}
    calls.clear()
    later = onpolicy.sample_round(policies, None, StubPRM(), problems, rs, seed=5)
    assert calls == [("<dpo>", 2, 5), ("<stepwise_dpo>", 1, 6), ("<nll_only>", 1, 7)]
    assert [len(row) for row in later] == [4, 4]


def test_a_rounds_progress_setting_reaches_every_generate_and_prm_call(monkeypatch):
    """``RoundSettings.progress``: every generate call of a round (its samples, the Step-DPO corrections, the extra
    wrong steps, the evaluation) and every PRM call shows a bar, or none. They showed none whatever the setting: on
    a GPU profile (hours a round) or at 100 times the tutorial's data (an hour on a CPU) nothing said how far a round
    had got."""
    p, gold, bad, _ = problem_and_texts()
    seen = []

    class RecordingPRM(StubPRM):
        def score_solutions(self, prompts, solutions, batch_size=None, progress=False):
            seen.append(("prm", progress))
            return super().score_solutions(prompts, solutions, batch_size)

    def sample(model, tokenizer, prompts, n=1, progress=True, **kw):  # generation's default is a bar
        seen.append(("generate", progress))
        rests = [prompt[len(p.prompt):] for prompt in prompts]  # a context: the prompt and steps of a solution
        assert all(gold.startswith(rest) for rest in rests)
        return [[gold[len(rest):]] * n for rest in rests]  # the right solution, or the rest of it
    monkeypatch.setattr(onpolicy.generation, "sample_solutions", sample)
    policies = {m: f"<{m}>" for m in onpolicy.METHODS}
    for progress in (True, False):
        seen.clear()
        rs = onpolicy.RoundSettings(samples_per_problem=3, threshold=THRESHOLD, step_negatives=1, progress=progress)
        # every sample right: no pairs, nothing trains; then the round's evaluation
        onpolicy.run_round(policies, None, RecordingPRM(), [p], [p], rs, onpolicy.TrainSettings(), n_sampled=1,
                           out=lambda line: None)
        assert {kind for kind, _ in seen} == {"generate", "prm"}, seen
        n_round = len(seen)
        # a wrong sample: its first error resampled (step_pairs), then more wrong steps there (step_negatives)
        samples = prm_pairs.label_samples(RecordingPRM(), [p], [[gold, bad]], THRESHOLD, policy="dpo",
                                          progress=progress)
        rows, info = onpolicy.build_round_pairs(policies, None, RecordingPRM(), [p], samples, rs)
        # one generate call for the correction, one per policy for the extra wrong steps (shared out among them)
        assert info["step"]["pairs"] == 1 and sum(kind == "generate" for kind, _ in seen[n_round:]) == 4, seen
        assert {shown for _, shown in seen} == {progress}, seen


def test_a_round_refuses_a_sampler_without_policy_and_one_model_for_every_method():
    """``--sampler dpo --methods stepwise_dpo nll_only`` failed with KeyError: 'dpo' after everything had loaded,
    and one model given for every method was trained three times in turn, its "differences" to itself reported."""
    two = {"stepwise_dpo": object(), "nll_only": object()}
    with pytest.raises(ValueError, match=r"run_round: no policy for \['dpo'\]"):
        onpolicy.run_round(two, None, None, [], [], onpolicy.RoundSettings(sampler="dpo"), onpolicy.TrainSettings(),
                           methods=list(two))
    with pytest.raises(ValueError, match=r"run_round: no policy for \['dpo'\]"):
        onpolicy.run_round(two, None, None, [], [], onpolicy.RoundSettings(), onpolicy.TrainSettings())
    model = object()
    with pytest.raises(ValueError, match="every method needs its own copy of the policy"):
        onpolicy.run_round({m: model for m in onpolicy.METHODS}, None, None, [], [], onpolicy.RoundSettings(),
                           onpolicy.TrainSettings())


def test_every_method_trains_in_the_models_float32_on_a_cpu(tmp_path, tiny_model, right_padded_tokenizer):
    """TRL's configs turn an unset bf16 on, and with use_cpu=True transformers then trains under bfloat16 autocast:
    scripts/onpolicy_rounds.py trained all three methods so, while notebook 04 (explicit flags) trains in float32."""
    from stepdpo_lite.trainer import StepwiseDPOConfig

    assert "bf16" not in FAST
    tok = right_padded_tokenizer
    rows = step_rows()
    for method in onpolicy.METHODS:
        tr = onpolicy.make_trainer(method, copy.deepcopy(tiny_model), tok, rows, onpolicy.TrainSettings(args=FAST),
                                   str(tmp_path / method), ref_model=copy.deepcopy(tiny_model).eval())
        assert tr.args.bf16 is False and tr.args.fp16 is False, method
    assert StepwiseDPOConfig(output_dir=str(tmp_path / "c"), use_cpu=True).bf16 is False
    assert StepwiseDPOConfig(output_dir=str(tmp_path / "c"), use_cpu=True, bf16=True).bf16 is True  # asked for


def test_a_lora_policy_starts_every_round_exact_and_equal_to_its_reference(tmp_path, tiny_base_path):
    """Building a TRL trainer rounds a 4-bit policy's adapter to bfloat16 (TRL's QLoRA cast), and DPOTrainer copies
    it into its "ref" adapter before that: from round 2 on the DPO and NLL-only policies started 4.8e-4 off their
    reference, every method's trained adapter rounded (consumer-GPU audit T14). A fresh adapter keeps no "ref" copy
    for any method (its reference is the adapter disabled), and a saved policy is its adapter alone (PEFT saved the
    copy in ref/, naming its base by an absolute path)."""
    from stepdpo_lite.models import load_model
    rows, settings = step_rows(), onpolicy.TrainSettings(args=dict(FAST, max_steps=1))
    for method in onpolicy.METHODS:
        model, tok = load_model(tiny_base_path, quantization="4bit", lora=dict(r=4, lora_alpha=8), device="cpu",
                                dtype="float32")
        tok.padding_side = "right"
        start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        first = onpolicy.make_trainer(method, model, tok, rows, settings, str(tmp_path / method / "1"),
                                      ref_model=onpolicy.policy_reference(model))
        assert "ref" not in first.model.peft_config, method
        params = dict(first.model.named_parameters())
        assert all(params[n].dtype == torch.float32 and torch.equal(params[n], w) for n, w in start.items()), method
        first.train()
        onpolicy.release_reference(first.model)
        trained = {n: p.detach().clone() for n, p in first.model.named_parameters() if p.requires_grad}
        second = onpolicy.make_trainer(method, first.model, tok, rows, settings, str(tmp_path / method / "2"),
                                       ref_model=onpolicy.policy_reference(first.model))
        params = dict(second.model.named_parameters())
        for name, weight in trained.items():  # exact, in float32, and so is the round's reference
            assert params[name].dtype == torch.float32 and torch.equal(params[name], weight), (method, name)
            assert torch.equal(params[name.replace(".default.", ".ref.")], weight), (method, name)
        second.train()
        if "rewards/chosen" in second.state.log_history[0]:  # step 0's batch: the policy is its reference
            assert second.state.log_history[0]["rewards/chosen"] == 0.0, method
        onpolicy.save_policies(tmp_path / "policies", {method: second})
        assert sorted(p.name for p in (tmp_path / "policies" / method).iterdir() if p.is_dir()) == [], method


def test_critical_token_variants_log_the_step_loss_they_train(tmp_path, tiny_model, right_padded_tokenizer,
                                                               monkeypatch):
    """The fresh-rejected variant logged the parent's step loss (against the round's rejected token) as
    ``loss/step``, not the one it trains."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import FreshRejectedStepDPOTrainer

    tok = right_padded_tokenizer
    rows = step_rows()
    settings = onpolicy.TrainSettings(step_pairing="first_token", step_rejected="fresh", args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, rows, settings, str(tmp_path / "f"),
                               ref_model=copy.deepcopy(tiny_model).eval())
    monkeypatch.setattr(FreshRejectedStepDPOTrainer, "critical_token_loss",
                        lambda self, model, inputs: torch.tensor(7.25))
    batch = tr.data_collator([tr.train_dataset[i] for i in range(len(rows))])
    tr.model.train()
    tr.compute_loss(tr.model, batch)
    assert tr._metrics["train"]["loss/step"][-1] == 7.25


def test_a_rounds_generation_estimate_counts_samples_resampling_and_evaluation():
    """Notebook 04 prints it on a GPU profile before its rounds (hours on a T4 at the profile's sizes)."""
    rs = onpolicy.RoundSettings(samples_per_problem=3, step_pairs_per_problem=1, step_tries=4, step_attempts=2,
                                max_new_tokens=100, batch_size=10)
    rows = 96 * 3 + 96 * 1 * 4 * 2 + 3 * 150 * (1 + 2)  # samples, Step-DPO resampling, 3 methods' evaluation
    calls = 3 + 2 * 3 + 3 * 2  # a share of the samples per policy, an attempt per policy, greedy + sampled per method
    assert onpolicy.round_generation_seconds(rs, 96, 150, tokens_per_s=1000.0) == pytest.approx(
        (rows + calls * 9) * 100 / 1000)  # each call's last batch may be partial: up to 9 rows of padding
    negatives = dataclasses.replace(rs, step_negatives=3, negative_tries=8)  # their draws were left out
    assert onpolicy.round_generation_seconds(negatives, 96, 150, tokens_per_s=1000.0) == pytest.approx(
        (rows + 96 * 8 + (calls + 3) * 9) * 100 / 1000)
    four_bit = onpolicy.round_generation_seconds(rs, 96, 150, tokens_per_s=1000.0, quantized=True)
    assert four_bit == pytest.approx(onpolicy.FOUR_BIT_SLOWDOWN * onpolicy.round_generation_seconds(
        rs, 96, 150, tokens_per_s=1000.0))
    solution_only = dataclasses.replace(rs, pairs="solution")
    assert onpolicy.round_generation_seconds(solution_only, 96, 150, tokens_per_s=1000.0, methods=["nll_only"]) == \
        pytest.approx((96 * 3 + 150 * 3 + 3 * 9) * 100 / 1000)
    assert onpolicy.round_generation_seconds(rs, 96, 150, tokens_per_s=None) is None


@pytest.mark.parametrize("knob, value", [("beta", float("nan")), ("beta", 0.0), ("beta", True), ("sft_weight", -1.0),
                                         ("sft_weight", float("inf")), ("outcome_weight", float("nan")),
                                         ("step_weight", -1.0), ("step_weight", 0.0)])
def test_train_settings_refuse_weights_dpo_and_nll_only_would_train_on(knob, value):
    """A NaN or negative beta or weight went to DPO's and NLL only's configs unchecked (they trained on it) and was
    refused by StepwiseDPOConfig only after them, or never in a round without Stepwise DPO; now when made."""
    with pytest.raises(ValueError, match=f"TrainSettings: .*{knob}"):
        onpolicy.TrainSettings(**{knob: value})
    onpolicy.TrainSettings(sft_weight=0.0, outcome_weight=1.0, step_weight=0.0)  # the outcome loss alone


def test_round_problems_and_share_out():
    ps = list(range(10))
    assert onpolicy.round_problems(ps, 4, 1) == [0, 1, 2, 3] and onpolicy.round_problems(ps, 4, 3) == [8, 9, 0, 1]
    assert onpolicy.round_problems(ps, None, 5) == ps == onpolicy.round_problems(ps, 0, 2)
    assert onpolicy.round_problems(ps, 10, 2) == ps == onpolicy.round_problems(ps, 11, 1)  # all, none twice
    with pytest.raises(ValueError, match="per_round must be an int >= 1, got -3"):  # 17 problems, repeats, then none
        onpolicy.round_problems(ps, -3, 1)
    assert prm_pairs.share_out(6, onpolicy.METHODS) == {"dpo": 2, "stepwise_dpo": 2, "nll_only": 2}
    assert prm_pairs.share_out(4, onpolicy.METHODS) == {"dpo": 2, "stepwise_dpo": 1, "nll_only": 1}
    with pytest.raises(ValueError):
        onpolicy.RoundSettings(pairs="all")


def _seed_policy(minus_dpo: float, minus_nll: float, half: float = 0.02) -> dict:
    """A run's ``policy`` metrics with Stepwise DPO minus DPO / NLL only given (greedy and sampled alike)."""
    def diff(x):
        return {"difference": x, "low": x - half, "high": x + half}
    accuracy = {"accuracy": 0.8, "sampled_accuracy": 0.4}
    return {"base": dict(accuracy), "dpo": dict(accuracy), "nll_only": dict(accuracy),
            "stepwise_dpo": {**accuracy, "minus": {m: {"accuracy": diff(x), "sampled_accuracy": diff(x)}
                                                   for m, x in (("dpo", minus_dpo), ("nll_only", minus_nll))}}}


def test_seed_summary_needs_the_mean_and_every_seeds_interval(tmp_path, monkeypatch, capsys):
    """The goal's sounder form: a mean lead >= the margin *and* every seed's interval above zero. A large mean
    carried by one seed is not enough; scripts/seed_spread.py prints the verdict over its seeds."""
    by_seed = {0: _seed_policy(0.10, 0.05), 1: _seed_policy(0.04, 0.01), 2: _seed_policy(0.05, -0.01)}
    summary = onpolicy_report.seed_summary(by_seed)
    dpo = summary["dpo"]["accuracy"]
    assert {k: dpo[k] for k in ("mean", "seeds_above_zero", "seeds", "met")} == {
        "mean": pytest.approx(0.19 / 3), "seeds_above_zero": 3, "seeds": 3, "met": True}
    # over the seeds: mean ± t(2, 0.975) · sd / sqrt(3), sd of 0.10, 0.04, 0.05 by hand; 3 points lie inside it
    sd = math.sqrt(sum((x - 0.19 / 3) ** 2 for x in (0.10, 0.04, 0.05)) / 2)
    half = 4.302653 * sd / math.sqrt(3)
    assert (dpo["low"], dpo["high"]) == (pytest.approx(0.19 / 3 - half), pytest.approx(0.19 / 3 + half))
    assert not dpo["excluded"]
    nll = summary["nll_only"]["sampled_accuracy"]
    assert nll["seeds_above_zero"] == 1 and not nll["met"]  # seed 1's interval reaches zero, seed 2's lies below
    lucky = onpolicy_report.seed_summary({0: _seed_policy(0.30, 0), 1: _seed_policy(0.01, 0)})["dpo"]["accuracy"]
    assert lucky["mean"] > 0.03 and not lucky["met"]  # one seed's interval (-0.01 to +0.03) reaches zero
    text = onpolicy_report.format_seed_summary(by_seed)
    assert "interval above zero in 3 of 3 seeds: met" in text and "1 of 3 seeds: not met" in text
    assert text.count("minus DPO + NLL") == 3 and "mean " in text
    # four seeds level with NLL only: the interval over them (-1.3 to +1.3 points) rules out a 3-point lead
    level = onpolicy_report.seed_summary({s: _seed_policy(0.05, x) for s, x in enumerate((-0.01, 0.0, 0.01, 0.0))})
    assert level["nll_only"]["accuracy"]["high"] == pytest.approx(3.182446 * math.sqrt(2e-4 / 3) / 2)
    assert level["nll_only"]["accuracy"]["excluded"] and not level["dpo"]["accuracy"]["excluded"]
    assert "+3 ruled out" in onpolicy_report.format_seed_summary({s: _seed_policy(0.05, x) for s, x in
                                                           enumerate((-0.01, 0.0, 0.01, 0.0))})
    one = onpolicy_report.seed_summary({0: _seed_policy(0.05, 0.0)})["dpo"]["accuracy"]
    assert "low" not in one and "excluded" not in one  # one seed: no spread to take an interval of
    alike = onpolicy_report.seed_summary({0: _seed_policy(0.05, 0.0), 1: _seed_policy(0.05, 0.0)})["dpo"]["accuracy"]
    assert alike["low"] == alike["high"] == pytest.approx(0.05) and not alike["excluded"]
    with pytest.raises(ValueError, match="seed 1 has no policy.stepwise_dpo.minus"):
        onpolicy_report.seed_summary({0: by_seed[0], 1: {"stepwise_dpo": {"accuracy": 0.5}}})
    with pytest.raises(ValueError, match="seed_summary: margin must be a finite number"):  # was "not met" for all
        onpolicy_report.format_seed_summary(by_seed, margin=float("nan"))

    import runpy
    from pathlib import Path
    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "seed_spread.py"))
    (tmp_path / "tiny" / "prm").mkdir(parents=True)
    calls = []

    def fake_run_seed(run_dir, profile, seed, sets, scratch, threads):  # notebook 04 itself is tested elsewhere
        calls.append((run_dir, seed, tuple(sets), threads))
        return by_seed[seed]

    monkeypatch.setitem(script["main"].__globals__, "run_seed", fake_run_seed)
    out = script["main"](["--runs-dir", str(tmp_path), "--parallel", "2", "--set", "ONPOLICY_ROUNDS=1",
                          "--out", str(tmp_path / "seeds.json")])
    assert out == by_seed and sorted(c[1] for c in calls) == [0, 1, 2]
    assert all(c[0] == tmp_path / "tiny" and c[2] == ("ONPOLICY_ROUNDS=1",) and c[3] == 1 for c in calls)
    assert "3 of 3 seeds: met" in capsys.readouterr().out and (tmp_path / "seeds.json").exists()
    with pytest.raises(SystemExit):  # a usage error (tests/test_script_usage_errors.py)
        script["main"](["--runs-dir", str(tmp_path), "--set", "SEED=3"])
    assert "the seeds come from --seeds" in capsys.readouterr().err


def test_seed_spread_judges_saved_onpolicy_rounds_after_any_round(tmp_path, capsys):
    """scripts/seed_spread.py --from-rounds: the verdict over seeds for runs of scripts/onpolicy_rounds.py (their
    --out files), after the round asked for; docs/benchmarks.md's 10× test-split rows come from it."""
    import json
    import runpy
    from pathlib import Path

    def record(i, minus_dpo, minus_nll):
        policy = _seed_policy(minus_dpo, minus_nll)
        return {"round": i, "pairs": {"solution": 2, "step": 1, "total": 3}, "seconds": 1.0, "samples": 6,
                "sample_accuracy": 0.5, "dpo": policy["dpo"], "nll_only": policy["nll_only"],
                "stepwise_dpo": {k: policy["stepwise_dpo"][k] for k in ("accuracy", "sampled_accuracy")},
                "stepwise_dpo_minus": policy["stepwise_dpo"]["minus"]}

    files = []
    for seed, (first, second) in enumerate([((0.10, 0.05), (0.10, 0.00)), ((0.06, 0.04), (0.08, 0.00)),
                                            ((0.05, 0.04), (0.09, -0.01))]):
        path = tmp_path / f"rounds_s{seed}.json"
        path.write_text(json.dumps({"config": {"seed": seed}, "rounds": [record(1, *first), record(2, *second)]}))
        files.append(str(path))
    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "seed_spread.py"))
    after_1 = script["main"](["--from-rounds", *files, "--round", "1"])
    assert sorted(after_1) == [0, 1, 2] and all(p["stepwise_dpo"]["rounds"] == 1 for p in after_1.values())
    assert capsys.readouterr().out.count("3 of 3 seeds: met") == 4  # round 1: both leads met, greedy and sampled
    last = script["main"](["--from-rounds", *files])  # the last round every file has: round 2
    assert all(p["stepwise_dpo"]["rounds"] == 2 for p in last.values())
    text = capsys.readouterr().out
    assert "DPO + NLL          greedy  mean  +9.0, interval above zero in 3 of 3 seeds: met" in text
    assert "NLL only (RFT)     greedy  mean  -0.3, interval above zero in 0 of 3 seeds: not met" in text
    with pytest.raises(ValueError, match="--round must be between 1 and 2"):
        script["rounds_by_seed"](files, 3)  # main's usage error: tests/test_script_usage_errors.py
    again, empty = tmp_path / "again.json", tmp_path / "empty.json"
    again.write_text(Path(files[0]).read_text())
    empty.write_text(json.dumps({"config": {"seed": 5}, "rounds": []}))
    with pytest.raises(ValueError, match="holds seed 0 again"):
        script["rounds_by_seed"]([files[0], str(again)])
    with pytest.raises(ValueError, match="rounds_s1.json is given more than once"):  # judged over 2 seeds
        script["rounds_by_seed"]([files[0], files[1], files[1]])
    with pytest.raises(ValueError, match="empty.json has no config.seed or no rounds"):
        script["rounds_by_seed"]([files[0], str(empty)])
    other = tmp_path / "other.json"  # another protocol's run: it was averaged in as one more seed
    other.write_text(json.dumps({**json.loads(Path(files[1]).read_text()), "config": {"seed": 1, "split": "test"}}))
    with pytest.raises(ValueError, match=r"other.json differs from .*rounds_s0.json in \['split'\], not only the seed"):
        script["rounds_by_seed"]([files[0], str(other)])
    # a file from before --rejected-sft-weight (--uncorrected-gradient, --chosen) existed ran without the term
    # (through the output layer; chosen by the PRM): it matches a newer one at 0 (output_layer, prm), no other
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**json.loads(Path(files[1]).read_text()), "config": {
        "seed": 1, "rejected_sft_weight": 0.0, "uncorrected_gradient": "output_layer", "chosen": "prm"}}))
    assert sorted(script["main"](["--from-rounds", files[0], str(newer)])) == [0, 1]
    newer.write_text(json.dumps({**json.loads(newer.read_text()), "config": {"seed": 1, "rejected_sft_weight": 20.0}}))
    with pytest.raises(ValueError, match=r"in \['rejected_sft_weight'\], not only the seed"):
        script["rounds_by_seed"]([files[0], str(newer)])
    with pytest.raises(SystemExit):
        script["main"](["--round", "1"])
    assert "--round goes with --from-rounds" in capsys.readouterr().err
    script["main"](["--from-rounds", *files, "--out", str(tmp_path / "judged.json")])
    assert json.loads((tmp_path / "judged.json").read_text())["2"]["stepwise_dpo"]["rounds"] == 2
    # runs of two methods (--methods stepwise_dpo nll_only) with the start policy's figures: no DPO entry
    # (it was one without figures, and the table's KeyError: 'accuracy'), and the base column filled
    for path in files:
        result = json.loads(Path(path).read_text())
        result["base"] = {"accuracy": 0.5, "sampled_accuracy": 0.25}
        for rec in result["rounds"]:
            del rec["dpo"], rec["stepwise_dpo_minus"]["dpo"]
        Path(path).write_text(json.dumps(result))
    two = script["main"](["--from-rounds", *files])
    assert all("dpo" not in p and p["base"]["accuracy"] == 0.5 for p in two.values())
    assert "50.0 / 25.0" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--parallel", "0"], ["--from-rounds", "rounds_s0.json", "--round", "0"],
                                  ["--margin", "nan"]])
def test_seed_spread_refuses_counts_below_one_before_it_runs_or_reads_anything(args, tmp_path, capsys):
    """--parallel 0 was a ValueError traceback, --round 0 one after the files were read; now a usage error."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "seed_spread.py"))
    with pytest.raises(SystemExit) as done:
        script["main"](["--runs-dir", str(tmp_path), *args])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[-2].lstrip("-").replace("-", "_") in message.replace("-", "_"), message


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--max-pairs", "0"], ["--step-pairs", "0"],
                                  ["--step-tries", "0"], ["--step-attempts", "0"], ["--negative-tries", "0"],
                                  ["--step-negatives", "-1"], ["--rejected-sft-weight", "-1"],
                                  ["--rejected-sft-weight", "nan"], ["--beta", "nan"], ["--sft-weight", "-1"],
                                  ["--outcome-weight", "inf"], ["--step-weight", "-1"], ["--lr", "nan"],
                                  ["--lr", "inf"],
                                  ["--rejected-sft-weight", "1", "--step-pairing", "first_token"],
                                  ["--rejected-sft-weight", "1", "--methods", "dpo", "nll_only"],
                                  ["--sampler", "ddpo"], ["--sampler", "nll_only", "--methods", "dpo", "stepwise_dpo"],
                                  ["--methods", "dpo", "dpo"], ["--negative-temperature", "nan"],
                                  ["--train-problems", "0"], ["--eval-problems", "-5"], ["--sample-batch-size", "0"],
                                  ["--mirrored-negatives", "instead", "--step-negatives", "2"]])
def test_onpolicy_rounds_refuses_sizes_below_their_minimum_before_it_reads_a_run(args, tmp_path, capsys):
    """--max-pairs 0 and the like were caught only by the library, after the policies were loaded and a round
    sampled; now usage errors, before anything is read."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    with pytest.raises(SystemExit) as done:
        script["main"](["--runs-dir", str(tmp_path / "none"), *args])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[0].lstrip("-").replace("-", "_") in message.replace("-", "_"), message


def test_onpolicy_rounds_protocol_flag_sets_what_is_not_given(monkeypatch, tmp_path, capsys):
    """--protocol trains by one of notebook 04's protocols; a flag given wins over it; without it the script's own
    defaults apply; a protocol the profile's policy cannot train by is refused before anything is read; the config
    runs are compared by holds the four fields, not the flag's name."""
    import json
    import runpy

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import runs

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    seen = {}
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(runs, "read_metrics", lambda run: RUN_METRICS)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: -1.5)  # the PRM's own, as recorded
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(lambda cls, path, device=None: "<prm>"))
    monkeypatch.setattr(onpolicy, "start_policy", lambda profile, seed=0: ("<policy>", "<tokenizer>"))
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda *a, **kw: {"train": ["p"], "validation": ["v"]})

    def one_round(policies, tokenizer, prm, train, evaluation, rs, ts, on_round=None, **kw):
        seen["settings"] = {k: getattr(ts, k) for k in ("sft_weight", "step_pairing", "step_weight", "step_gradient")}
        on_round({"round": 1}, {})
        return [], {}
    monkeypatch.setattr(onpolicy, "run_rounds", one_round)
    monkeypatch.setattr(onpolicy_report, "format_round", lambda record, methods: "round")
    monkeypatch.setattr(onpolicy, "extend_logs", lambda *a: None)
    monkeypatch.setattr(onpolicy_report, "rounds_table", lambda *a: "table")
    out = tmp_path / "rounds.json"
    for flags, expected in [
            (["--protocol", "output_layer"], profiles.ONPOLICY_PROTOCOLS["output_layer"]),
            (["--protocol", "output_layer", "--sft-weight", "20"],
             {**profiles.ONPOLICY_PROTOCOLS["output_layer"], "sft_weight": 20.0}),
            (["--protocol", "first_error"], profiles.ONPOLICY_PROTOCOLS["first_error"]),
            ([], dict(sft_weight=5.0, step_pairing="weighted", step_weight=1.0, step_gradient="all"))]:
        script["main"](["--runs-dir", str(tmp_path), "--no-base", "--out", str(out), *flags])
        assert seen["settings"] == expected, flags
        config = json.loads(out.read_text())["config"]
        assert "protocol" not in config and {k: config[k] for k in expected} == expected, flags
    # notebook 04's output-layer protocol with DPO and NLL only: nothing set for Stepwise DPO by hand, so no error
    script["main"](["--runs-dir", str(tmp_path), "--no-base", "--protocol", "output_layer", "--methods", "dpo",
                    "nll_only"])
    for flags, message in [(["--profile", "t4-16gb", "--protocol", "output_layer"], "whose output layer is frozen"),
                           (["--protocol", "output_layer", "--step-pairing", "first_error"], "needs step_pairing")]:
        with pytest.raises(SystemExit) as done:
            script["main"](["--runs-dir", str(tmp_path / "none"), *flags])
        assert done.value.code == 2 and message in capsys.readouterr().err, flags


def test_extend_logs_counts_steps_on_across_rounds_and_tags_each_round():
    logs = {"dpo": []}
    round_1 = [{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}, {"step": 2, "train_runtime": 3.0}]  # as TRL logs
    onpolicy.extend_logs(logs, {"dpo": round_1, "nll_only": [{"step": 1, "loss": 0.1}]}, 1)
    onpolicy.extend_logs(logs, {"dpo": [{"step": 1, "loss": 0.5}]}, 2)
    assert [(e.get("loss"), e["step"], e["round"]) for e in logs["dpo"]] == [
        (0.7, 1, 1), (0.6, 2, 1), (None, 2, 1), (0.5, 3, 2)]  # round 2 goes on from round 1's last step
    assert round_1[0] == {"step": 1, "loss": 0.7}  # the trainer's own history is left as it was
    assert logs["nll_only"] == [{"step": 1, "loss": 0.1, "round": 1}]  # a method new to logs gets its list


@pytest.mark.parametrize("key, value, field", [("beta", 0.5, "TrainSettings.beta"),
                                               ("output_dir", "elsewhere", "output_dir"),
                                               ("step_beta", 0.1, "TrainSettings.beta"),
                                               ("sft_loss_weight", 1.0, "TrainSettings.sft_weight"),
                                               ("step_pairing", "first_error", "TrainSettings.step_pairing"),
                                               ("loss_type", ["sigmoid"], "the method")])
def test_train_settings_refuse_args_that_make_trainer_sets_itself(key, value, field):
    """args={"beta": 0.5} trained every method with TrainSettings.beta (0.1) and args' output_dir was replaced, both
    without a word; step_beta, the loss weights, step_pairing and loss_type clashed with a TypeError in make_trainer,
    after a round's sampling. An args beta equal to TrainSettings.beta (notebook 04's common) stays allowed."""
    with pytest.raises(ValueError, match=f"TrainSettings: args\\['{key}'\\] .*{field}"):
        onpolicy.TrainSettings(args={**FAST, key: value})
    with pytest.raises(ValueError, match="TrainSettings: args must be a dict"):
        onpolicy.TrainSettings(args=None)
    assert onpolicy.TrainSettings(beta=0.2, args={**FAST, "beta": 0.2}).args["beta"] == 0.2


def test_a_round_refuses_an_args_seed_that_the_round_seed_would_replace(monkeypatch):
    """args={"seed": 5} was replaced by the round's seed (from run_round's seed) without a word: the user's seed drew
    nothing. Refused before the round samples; args' seed equal to the run's seed (notebook 04's common with
    run_rounds(seed=SEED)) is allowed."""
    monkeypatch.setattr(onpolicy.policy_eval, "sample_solutions", lambda model, tok, problems, n, **kw: [
        [p.gold_solution] * n for p in problems])  # every sample right: no pairs, nothing trains
    monkeypatch.setattr(onpolicy.policy_eval, "greedy_and_sampled_accuracy", nothing_right)
    policies, problems = {m: f"<{m}>" for m in onpolicy.METHODS}, toyworld.make_problems(2, "train", seed=0, max_ops=3)
    run = partial(onpolicy.run_round, policies, None, StubPRM(), problems, problems[:1],
                  onpolicy.RoundSettings(threshold=THRESHOLD), out=lambda line: None)
    for key in ("seed", "data_seed"):
        with pytest.raises(ValueError, match=f"run_round: TrainSettings.args\\['{key}'\\] = 5 would be replaced"):
            run(onpolicy.TrainSettings(args={key: 5}), seed=0)
    assert run(onpolicy.TrainSettings(args={"seed": 5, "data_seed": 5}), seed=5)[0]["pairs"]["total"] == 0


def test_each_profile_names_a_protocol_its_policy_can_train():
    """Notebook 04 trains the rounds by its profile's protocol: every protocol is a valid TrainSettings, the profiles'
    names are the protocols', and a LoRA profile's protocol does not need a trainable output layer (a LoRA policy's
    is frozen: OutputLayerStepDPOTrainer would refuse it after the one-round runs)."""
    assert all(p.onpolicy_protocol in profiles.ONPOLICY_PROTOCOLS for p in profiles.PROFILES.values())
    for name in profiles.ONPOLICY_PROTOCOLS:
        onpolicy.TrainSettings(**onpolicy.protocol(name))
    for profile in profiles.PROFILES.values():
        name = profile.onpolicy_protocol
        assert onpolicy.protocol(name, profile) == profiles.ONPOLICY_PROTOCOLS[name], profile.name
        assert onpolicy.starts_with_lora(profile) == (profile.name != "tiny"), profile.name
    assert profiles.get_profile("tiny").onpolicy_protocol == "output_layer"
    # a LoRA profile told to take the output layer's protocol is refused up front, not after the one-round runs
    with pytest.raises(ValueError, match="profile 't4-16gb' trains a LoRA adapter, whose output layer is frozen: "
                                         "use the 'first_error' protocol"):
        onpolicy.protocol("output_layer", profiles.get_profile("t4-16gb"))
    onpolicy.protocol("output_layer", profiles.get_profile("t4-16gb"), step_gradient="all")
    # on the LoRA profile's own protocol the override is the cause: the advice was the protocol already in use
    with pytest.raises(ValueError, match="frozen: leave step_gradient at the protocol's 'all'"):
        onpolicy.protocol("first_error", profiles.get_profile("t4-16gb"), step_gradient="output_layer",
                          step_pairing="first_token")


def test_a_protocol_is_checked_with_the_outcome_weight_the_rounds_take():
    """Notebook 04 with ONPOLICY_STEP_WEIGHT = 0 and OUTCOME_WEIGHT = 1 (rounds on the outcome loss alone) was refused
    as "outcome_weight and step_weight not both 0, got {'outcome_weight': 0.0, ...}": the protocol was checked
    without the outcome weight the rounds would take (an audit of the kit's messages)."""
    chosen = onpolicy.protocol("first_error", step_weight=0.0, outcome_weight=1.0)
    assert chosen["step_weight"] == 0.0 and "outcome_weight" not in chosen  # a check, not a protocol field
    with pytest.raises(ValueError, match=r"not both 0, got .*'outcome_weight': 0.0.*'step_weight': 0.0"):
        onpolicy.protocol("first_error", step_weight=0.0)


def test_a_tiny_base_on_a_task_of_ones_own_is_fully_fine_tuned(monkeypatch, tmp_path):
    """A user's own task (docs/own_task.md: tasks.TASKS["sum"], the tiny profile with task="sum", and a tiny base
    trained on it) got a LoRA start policy, the tiny base's protocol 'output_layer' was refused ("trains a LoRA
    adapter"): the start was decided by task == "toy", not by how the policy's base is loaded."""
    tiny, t4 = profiles.get_profile("tiny"), profiles.get_profile("t4-16gb")
    own = dataclasses.replace(tiny, task="sum")
    own_base = dataclasses.replace(own, model_name=str(tmp_path))  # tiny_base.fine_tune_base's folder
    (tmp_path / "training_log.json").write_text("{}")  # what tiny_models.save_tiny_model writes with the model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "sum-base").mkdir(parents=True)
    (tmp_path / "runs" / "sum-base" / "training_log.json").write_text("{}")
    relative = dataclasses.replace(own, model_name="runs/sum-base")  # docs/own_task.md's folder, relative
    for profile in (own, own_base, relative):
        assert not onpolicy.starts_with_lora(profile), profile.model_name
        assert onpolicy.protocol("output_layer", profile) == profiles.ONPOLICY_PROTOCOLS["output_layer"]
    for profile in (dataclasses.replace(t4, task="sum"), dataclasses.replace(tiny, quantization="4bit"),
                    dataclasses.replace(t4, quantization=None),  # a Hub LLM in 16 bits: plain LoRA
                    dataclasses.replace(own, quantization=None, model_name="org/own-llm")):
        assert onpolicy.starts_with_lora(profile), profile
    loaded = []
    monkeypatch.setattr(onpolicy, "load_tiny_base", lambda path, device=None: (
        loaded.append(path), ("<tiny base>", SimpleNamespace(padding_side="left")))[1])
    monkeypatch.setattr(onpolicy, "load_profile_model", lambda profile, **kw: pytest.fail("a LoRA start"))
    model, tokenizer = onpolicy.start_policy(own_base)
    assert loaded == [str(tmp_path)] and model == "<tiny base>" and tokenizer.padding_side == "right"


def test_a_local_copy_of_an_llm_in_16_bits_starts_with_lora(monkeypatch, tmp_path):
    """A GPU profile with quantization=None reading a local copy of its LLM (check_sources' offline advice:
    model_name=FOLDER) was taken for a tiny base, as was any folder here: a 1.5B model fully fine-tuned, one full
    copy per method, and the answer hung on the working directory. Only a folder that holds a tiny model the kit
    trained (its training_log.json) is fully fine-tuned; a folder without one gets a LoRA adapter, wherever it is."""
    llm = tmp_path / "Qwen2.5-1.5B-Instruct"
    llm.mkdir()
    (llm / "config.json").write_text("{}")
    t4 = dataclasses.replace(profiles.get_profile("24gb"), quantization=None)
    monkeypatch.chdir(tmp_path)
    for name in (str(llm), "Qwen2.5-1.5B-Instruct", "./Qwen2.5-1.5B-Instruct"):
        profile = dataclasses.replace(t4, model_name=name)
        assert onpolicy.starts_with_lora(profile), name
        with pytest.raises(ValueError, match="trains a LoRA adapter, whose output layer is frozen"):
            onpolicy.protocol("output_layer", profile)
    started = []
    monkeypatch.setattr(onpolicy, "load_tiny_base", lambda *a, **kw: pytest.fail("a fully fine-tuned 1.5B model"))
    monkeypatch.setattr(onpolicy, "load_profile_model", lambda profile, **kw: (
        started.append(kw), ("<LoRA policy>", SimpleNamespace(padding_side="left")))[1])
    assert onpolicy.start_policy(dataclasses.replace(t4, model_name=str(llm)), seed=3)[0] == "<LoRA policy>"
    assert started == [{"lora": True, "lora_seed": 3}]
    (llm / "training_log.json").write_text("{}")  # a tiny model the kit trained, saved under that name
    assert not onpolicy.starts_with_lora(dataclasses.replace(t4, model_name=str(llm)))
    assert not onpolicy.starts_with_lora(profiles.get_profile("tiny"))  # data/tiny-base holds its log


def test_a_missing_tiny_base_is_the_first_error_not_a_lora_start(monkeypatch, tmp_path, capsys):
    """A pip-installed package has no data/tiny-base: its path counted as "no tiny base", a LoRA start, so protocol
    refused the tiny profile's own protocol ("trains a LoRA adapter") before the loader said "no such folder". A
    name written as a path (profiles.written_as_path) that is not there is now the first error, naming the path and
    what writes it; a Hub id ("owner/name", a bare name) is left to the loader, as is a quantized base."""
    import runpy

    tiny = profiles.get_profile("tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(onpolicy, "load_tiny_base", lambda *a, **kw: pytest.fail("a tiny base loaded"))
    monkeypatch.setattr(onpolicy, "load_profile_model", lambda *a, **kw: pytest.fail("a LoRA start"))
    gone = str(tmp_path / "site-packages" / "data" / "tiny-base")
    for name in (gone, "data/tiny-base", "runs/sum-base", "./base", "~/base", "a/b/c"):
        profile = dataclasses.replace(tiny, model_name=name)
        for call in (onpolicy.starts_with_lora, partial(onpolicy.protocol, "output_layer"), onpolicy.start_policy):
            with pytest.raises(FileNotFoundError, match="the tiny profile's policy base .model_name.: no tiny model "
                                                        "at ") as err:
                call(profile)
            text = str(err.value)
            assert str(Path(name).expanduser().absolute()) in text, text  # where it was looked for
            assert "it ships with the repository (data/tiny-base)" in text and "tiny_base.fine_tune_base" in text
    for name in ("Qwen/Qwen2.5-0.5B", "org/own-llm", "llm"):  # Hub ids: the loader tells them from a folder
        assert onpolicy.starts_with_lora(dataclasses.replace(tiny, model_name=name)), name
    assert onpolicy.starts_with_lora(dataclasses.replace(tiny, model_name=gone, quantization="4bit"))
    # the script: a usage error naming the folder, before anything is read
    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    monkeypatch.setitem(profiles.PROFILES, "gone", dataclasses.replace(tiny, name="gone", model_name=gone))
    for flags in ([], ["--protocol", "output_layer"]):
        with pytest.raises(SystemExit) as done:
            script["main"](["--profile", "gone", "--runs-dir", str(tmp_path / "none"), *flags])
        assert done.value.code == 2 and f"no tiny model at {gone}: it ships" in capsys.readouterr().err, flags

def test_onpolicy_rounds_freezes_the_embeddings_of_a_tiny_base_on_a_task_of_ones_own(monkeypatch, tmp_path):
    """--freeze-embeddings was taken only where task == "toy": a tiny base trained on one's own task trained its
    embeddings anyway (the flag was recorded in the config as set). A LoRA policy's are left as they are."""
    import runpy

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import runs

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    monkeypatch.setitem(profiles.PROFILES, "sum", dataclasses.replace(profiles.get_profile("tiny"), name="sum",
                                                                      task="sum"))
    monkeypatch.setitem(tasks.TASKS, "sum", lambda profile: "<sum task>")
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(runs, "read_metrics", lambda run: RUN_METRICS)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: -1.5)  # the PRM's own, as recorded
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(lambda cls, path, device=None: "<prm>"))
    made = []

    def start_policy(profile, seed=0):
        made.append(torch.nn.Embedding(3, 2))
        return SimpleNamespace(get_input_embeddings=lambda: made[-1]), "<tokenizer>"
    monkeypatch.setattr(onpolicy, "start_policy", start_policy)
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda *a, **kw: {"train": ["p"], "validation": ["v"]})
    monkeypatch.setattr(onpolicy, "run_rounds", lambda *a, **kw: ([], {}))
    monkeypatch.setattr(onpolicy_report, "rounds_table", lambda *a: "table")
    script["main"](["--profile", "sum", "--runs-dir", str(tmp_path), "--no-base", "--methods", "dpo",
                    "--freeze-embeddings"])
    assert len(made) == 1 and not made[0].weight.requires_grad


def test_a_protocols_knobs_override_only_where_set():
    """Notebook 04's ONPOLICY_* knobs: None keeps the protocol's value; a misspelled protocol or field is refused."""
    assert onpolicy.protocol("first_error") == profiles.ONPOLICY_PROTOCOLS["first_error"]
    got = onpolicy.protocol("output_layer", sft_weight=1.0, step_pairing=None)
    table = profiles.ONPOLICY_PROTOCOLS["output_layer"]
    assert got == {**table, "sft_weight": 1.0} != table
    assert table["sft_weight"] == 5.0  # the table itself is not changed
    with pytest.raises(ValueError, match="unknown on-policy protocol 'output-layer': choose one of"):
        onpolicy.protocol("output-layer")
    with pytest.raises(ValueError, match=r"protocol: \['beta'\] are not fields of a protocol"):
        onpolicy.protocol("first_error", beta=0.2)
    with pytest.raises(ValueError, match="step_gradient='output_layer' needs step_pairing='first_token'"):
        onpolicy.protocol("output_layer", step_pairing="first_error")  # the combination, before any training


def test_train_settings_args_with_stepwise_fields_reach_stepwise_dpo_only(tmp_path, tiny_model, right_padded_tokenizer):
    """args with a StepwiseDPOConfig field (max_reasoning_steps, step_delimiter, ...) made DPO's and NLL only's
    DPOConfig fail with a TypeError after the round's sampling and pairs, as did a misspelt field; now the Stepwise
    DPO fields go to Stepwise DPO alone, and a key that no config has is refused when the settings are made."""
    with pytest.raises(ValueError, match=r"TrainSettings: args \['learnig_rate'\] are no DPOConfig or Stepwise"):
        onpolicy.TrainSettings(args={**FAST, "learnig_rate": 1e-3})
    tok = right_padded_tokenizer
    settings = onpolicy.TrainSettings(args={**FAST, "max_reasoning_steps": 8})
    for method in onpolicy.METHODS:
        tr = onpolicy.make_trainer(method, copy.deepcopy(tiny_model), tok, step_rows(), settings,
                                   str(tmp_path / method), ref_model=copy.deepcopy(tiny_model).eval())
        assert getattr(tr.args, "max_reasoning_steps", None) == (8 if method == "stepwise_dpo" else None), method


# ----------------------------------------------------------------------------- notebook 04's helpers

def counts(greedy, sampled, n_sampled=2):
    return {"greedy_right": greedy, "sampled_right": sampled, "n_sampled": n_sampled}


def test_stepwise_minus_compares_stepwise_dpo_with_every_method_but_the_base():
    right = {"base": counts([0, 0, 1], [0, 1, 1]), "dpo": counts([0, 1, 1], [1, 1, 2]),
             "stepwise_dpo": counts([1, 1, 1], [2, 1, 2]), "step_dpo": counts([1, 0, 1], [2, 0, 2])}
    minus = onpolicy.stepwise_minus(right)
    assert list(minus) == ["dpo", "step_dpo"]  # in the order of right, the base left out
    assert minus["dpo"] == paired_stats.accuracy_differences(right["stepwise_dpo"], right["dpo"])
    assert minus["dpo"]["accuracy"]["difference"] == pytest.approx(1 / 3)
    assert onpolicy.stepwise_minus({"dpo": right["dpo"]}) is None  # no Stepwise DPO: nothing to compare
    one = {m: counts(c["greedy_right"][:1], c["sampled_right"][:1]) for m, c in right.items()}
    assert onpolicy.stepwise_minus(one) is None  # one problem: no paired interval
    assert onpolicy.stepwise_minus({"stepwise_dpo": right["stepwise_dpo"]}) == {}  # nothing else to compare with


def test_rounds_start_figures_measure_the_start_policy_again_only_on_a_quantized_profile(monkeypatch):
    calls = []

    def measure(model, tokenizer, problems, **kw):
        calls.append((model, tokenizer, problems, kw))
        return {"accuracy": 0.25, "in_4_bits": True}
    monkeypatch.setattr(onpolicy.policy_eval, "greedy_and_sampled_accuracy", measure)
    base, rs = {"accuracy": 0.5, "in_4_bits": False}, onpolicy.RoundSettings(batch_size=8, max_new_tokens=40)
    start = partial(onpolicy.rounds_start_figures, base, "<policy>", "<tok>", ["p1", "p2"], rs, n_sampled=3, seed=7)
    assert start(rounds=2, quantized=False) is base and start(rounds=0, quantized=True) is base and calls == []
    assert start(rounds=2, quantized=True) == {"accuracy": 0.25, "in_4_bits": True}
    # as the rounds measure their policies: their batch size and token budget (and their progress bars)
    assert calls == [("<policy>", "<tok>", ["p1", "p2"], dict(n_sampled=3, batch_size=8, max_new_tokens=40, seed=7,
                                                               progress=False))]


def round_record(n, acc):
    figures = {"accuracy": acc, "sampled_accuracy": acc / 2, "train_seconds": 1.0, "n_test_problems": 4}
    return {"round": n, "pairs": {"solution": 1, "step": 1, "total": 2}, "mislabels": {}, "seconds": 3.0,
            "samples": 6, "sample_accuracy": 0.5, **{m: dict(figures) for m in onpolicy.METHODS},
            "stepwise_dpo_minus": {"dpo": {"accuracy": {"difference": 0.0, "low": -0.1, "high": 0.1}}}}


def test_format_round_splits_the_prms_mislabels_into_the_side_it_got_wrong():
    record = {**round_record(2, 0.8), "stepwise_dpo_minus": {}, "mislabels": {
        "solution": {"pairs": 24, "chosen_wrong": 2, "rejected_first_error_elsewhere": 1, "mislabelled": 3},
        "step": {"pairs": 58, "chosen_wrong": 0, "chosen_wrong_after_step": 1, "rejected_first_error_elsewhere": 0,
                 "mislabelled": 0}}}
    lines = onpolicy_report.format_round(record).splitlines()
    # the notebook's text reads the split off the round's output: it was only in metrics.json
    assert ("  PRM mislabelled (checker): solution 3/24 (2 chosen held a wrong step, 1 rejected with the first error "
            "elsewhere)") in lines
    assert "  PRM mislabelled (checker): step 0/58" in lines
    assert lines[0] == "round 2: 2 pairs (1 solution, 1 step); 3 s"
    # a pair wrong on both sides counts once in the total: the line says so, so that its parts add up (4 + 1 - 1 = 4)
    both = {**record, "mislabels": {"step": {"pairs": 69, "chosen_wrong": 4, "rejected_first_error_elsewhere": 1,
                                             "mislabelled": 4}}}
    assert ("  PRM mislabelled (checker): step 4/69 (4 chosen held a wrong step, 1 rejected with the first error "
            "elsewhere; 1 pair both)") in onpolicy_report.format_round(both).splitlines()
    # a round saved before the split was recorded gives its total; a task without checker says so
    old = {**record, "mislabels": {"solution": {"pairs": 24, "mislabelled": 3}}}
    assert "  PRM mislabelled (checker): solution 3/24" in onpolicy_report.format_round(old).splitlines()
    unchecked = onpolicy_report.format_round({**record, "mislabels": {"solution": None, "step": None}})
    assert "  PRM mislabelled: no checker to count them" in unchecked.splitlines()
    assert "mislabelled" not in onpolicy_report.format_round({**record, "mislabels": {}})  # no pairs: nothing to count


def test_rounds_tables_mislabelled_column_adds_up_the_mislabels_of_every_kind_of_pair():
    record = {**round_record(1, 0.5), "stepwise_dpo_minus": {}, "mislabels": {
        "solution": {"pairs": 24, "mislabelled": 3}, "step": {"pairs": 58, "mislabelled": 1}}}
    rows = onpolicy_report.rounds_table([record], methods=["dpo"]).splitlines()[2:]
    assert [row.split()[-3:] for row in rows] == [["2", "4", "1"]]  # pairs, mislabelled (3 + 1), seconds
    unchecked = {**record, "mislabels": {"solution": None, "step": None}}  # a task without checker
    assert onpolicy_report.rounds_table([unchecked], methods=["dpo"]).splitlines()[2].split()[-2] == "-"


def test_a_policy_has_one_name_in_notebook_04_and_06():
    """viz kept a second copy of the names ("DPO" there, "DPO + NLL" here) for notebook 06's greedy-vs-sampled bars.
    One dict, in display_names (torch- and matplotlib-free), which viz, bestofn and the reports all import."""
    assert viz.method_name is display_names.method_name and onpolicy_report.method_name is display_names.method_name
    assert {m: viz.method_name(m) for m in display_names.POLICY_NAMES} == display_names.POLICY_NAMES
    assert not hasattr(onpolicy, "NAMES")  # a second name for the dict: one lookup, display_names.method_name


def test_the_one_round_sampled_accuracies_under_notebook_06s_plot_are_in_percent_by_the_policies_names():
    """They were format_metrics_table's fractions ("0.4233") by metrics keys, under a plot in percent and by name;
    then bestofn's, where notebook 06 passed it the old viz.POLICY_NAMES: notebook 04's one-round runs, beside
    format_round."""
    metrics = {"policy": {"one_round_gold_labels": {"dpo": {"accuracy": 0.727, "sampled_accuracy": 0.4},
                                                    "nll_only": {"sampled_accuracy": 0.42333}}}}
    assert onpolicy_report.format_one_round_sampled(metrics).splitlines() == [
        "sampled accuracy (T = 1) after one round on the checker's labels "
        "(policy.one_round_gold_labels.<method>.sampled_accuracy):",
        "  DPO + NLL            40.0%",
        "  NLL only (RFT)       42.3%"]
    assert (onpolicy_report.format_one_round_sampled({"policy": {}})
            == "(no one-round runs recorded: notebook 04 makes them)")


def test_prepare_rounds_loads_the_prm_and_a_policy_per_method_and_builds_the_rounds_settings(monkeypatch, tmp_path,
                                                                                              capsys):
    (tmp_path / "prm").mkdir()
    calls = []
    monkeypatch.setattr(onpolicy.runs, "read_metrics", lambda run: calls.append(("metrics", run)) or {"m": 1})
    monkeypatch.setattr(onpolicy.ProcessRewardModel, "load",
                        lambda folder, device=None: calls.append(("prm", folder, device)) or "<prm>")
    monkeypatch.setattr(onpolicy.reward_reports, "prm_threshold",
                        lambda prm, run: calls.append(("threshold", prm)) or 0.5)
    starts = iter(range(3))
    monkeypatch.setattr(onpolicy, "start_policy",
                        lambda profile, seed: (calls.append(("policy", seed)) or f"<policy {next(starts)}>", "<tok>"))
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda task, metrics, seed, tokenizer: calls.append(
        ("splits", task, metrics, seed, tokenizer)) or {"train": list(range(10))})
    protocol = onpolicy.protocol("first_error")
    common = {"learning_rate": 1e-3, "per_device_train_batch_size": 2, "max_steps": 35, "seed": 3}
    kw = dict(protocol=protocol, training_args=common, beta=0.1, outcome_weight=0.0, rounds=2, problems_per_round=96,
              samples_per_problem=3, steps=10, pairs="both", n_sampled=2, seed=3)
    setup = onpolicy.prepare_rounds(profiles.get_profile("tiny"), tmp_path, "<task>", ["p"] * 5, **kw)
    # in the notebook cell's order: the PRM before the policies (same seeds, same draws: the recorded run's figures)
    assert calls == [("metrics", tmp_path), ("prm", tmp_path / "prm", "cpu"), ("threshold", "<prm>"),
                     *[("policy", 3)] * 3, ("splits", "<task>", {"m": 1}, 3, "<tok>")]
    assert setup.prm == "<prm>" and setup.tokenizer == "<tok>"
    assert "threshold" not in {f.name for f in dataclasses.fields(setup)}  # one copy: round_settings.threshold
    # the sizes printed below, kept for the cells that run the rounds (each given once in notebook 04)
    assert (setup.eval_problems, setup.rounds, setup.problems_per_round, setup.n_sampled, setup.seed) == (
        ["p"] * 5, 2, 96, 2, 3)
    assert setup.policies == {m: f"<policy {i}>" for i, m in enumerate(onpolicy.METHODS)}  # a copy per method
    assert setup.train_problems == list(range(10))
    rs, ts = setup.round_settings, setup.train_settings
    assert (rs.samples_per_problem, rs.pairs, rs.threshold) == (3, "both", 0.5)
    assert (ts.beta, ts.outcome_weight, ts.step_pairing) == (0.1, 0.0, protocol["step_pairing"])
    assert ts.args == {**common, "max_steps": 10, "logging_steps": 1}
    out = capsys.readouterr().out
    assert f"protocol {protocol}" in out
    assert ("PRM threshold +0.50 (P(step right) = 0.62); 2 rounds of 10 problems x 3 samples; 10 steps per method "
            "and round (the train split holds 10 problems: every round takes them all)") in out
    assert "generation per round" not in out  # the tiny profile has no sampling speed: seconds, not hours
    monkeypatch.setattr(onpolicy, "start_policy", lambda profile, seed: ("<policy>", "<tok>"))
    gpu = onpolicy.prepare_rounds(profiles.get_profile("t4-16gb"), tmp_path, "<task>", ["p"] * 5,
                                  **{**kw, "protocol": onpolicy.protocol("first_error")})
    assert "generation per round <= " in capsys.readouterr().out  # a GPU profile: hours, said before they start
    assert (setup.quantized, gpu.quantized) == (False, True)  # the 4-bit policies are measured again at round 0


def test_a_rounds_setup_runs_at_the_sizes_it_printed(monkeypatch):
    """Notebook 04's rounds cell passed the setup's eleven fields one by one to rounds_start_figures and run_rounds;
    the setup passes them itself, and only what the cell chooses (where to save, what to print) is given."""
    setup = onpolicy.RoundsSetup("<prm>", {"dpo": "<d>", "stepwise_dpo": "<s>"}, "<tok>", [1, 2], "<rs>", "<ts>",
                                 eval_problems=["e"], rounds=3, problems_per_round=7, n_sampled=4, seed=5,
                                 quantized=True)
    seen = {}
    monkeypatch.setattr(onpolicy, "rounds_start_figures", lambda *a, **kw: seen.update(start=(a, kw)) or "<row 0>")
    monkeypatch.setattr(onpolicy, "run_rounds", lambda *a, **kw: seen.update(run=(a, kw)) or ([], {}))
    assert setup.start_figures({"accuracy": 0.5}) == "<row 0>"
    assert seen["start"] == (({"accuracy": 0.5}, "<d>", "<tok>", ["e"], "<rs>"),
                             {"rounds": 3, "quantized": True, "n_sampled": 4, "seed": 5})
    assert setup.run(output_dir="o", save_dir="s") == ([], {})
    assert seen["run"] == ((setup.policies, "<tok>", "<prm>", [1, 2], ["e"], "<rs>", "<ts>"),
                           {"rounds": 3, "problems_per_round": 7, "seed": 5, "n_sampled": 4, "output_dir": "o",
                            "save_dir": "s"})


def test_policy_metrics_give_each_method_the_figures_of_the_policy_it_saved_last():
    one_round = {"base": {"accuracy": 0.5}, "dpo": {"accuracy": 0.6, "step_accuracy": 0.7},
                 "stepwise_dpo": {"accuracy": 0.7, "minus": {"step_dpo": {}}}, "nll_only": {"accuracy": 0.8},
                 "step_dpo": {"accuracy": 0.65}}
    records = [round_record(1, 0.75), round_record(2, 0.85)]
    curves = {"DPO": {"loss": {"first": 1.0, "last": 0.5}}}
    policy = onpolicy_report.policy_metrics(one_round, records, {"accuracy": 0.5},
                                            trained={"dpo": 0, "stepwise_dpo": 0}, curves=curves)
    # trained by the rounds: the last round's figures, none of the one-round keys (step_accuracy, minus the Step-DPO
    # run)
    assert policy["dpo"] == {**records[-1]["dpo"], "label_source": "prm", "rounds": 2}
    assert policy["stepwise_dpo"]["minus"] == records[-1]["stepwise_dpo_minus"]
    # not trained by them (no pairs for nll_only here; the Step-DPO run never): the one-round figures
    assert policy["nll_only"] == one_round["nll_only"] and policy["step_dpo"] == one_round["step_dpo"]
    assert policy["one_round_gold_labels"] == {m: r for m, r in one_round.items() if m != "base"}
    assert policy["one_round_curves"] == curves and len(policy["rounds"]) == 2 and policy["base"] == {"accuracy": 0.5}
    no_rounds = onpolicy_report.policy_metrics(one_round, [], None, trained={}, curves={})
    assert {m: no_rounds[m] for m in one_round} == one_round and no_rounds["rounds"] == []


class FakeTrainer:
    def __init__(self, name):
        self.name, self.state = name, type("State", (), {"log_history": [{"step": 1, "loss": 0.5}]})()
        self.model = None  # what write_portable_adapter_config records the base from (no adapter here)

    def save_model(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.txt").write_text(self.name)


def test_save_policies_writes_each_policy_with_its_training_log(tmp_path):
    import json

    trainers = {"dpo": FakeTrainer("a"), "nll_only": FakeTrainer("b")}
    assert onpolicy.save_policies(tmp_path / "policies", trainers) == tmp_path / "policies"
    for name, trainer in trainers.items():
        assert (tmp_path / "policies" / name / "model.txt").read_text() == trainer.name
        assert json.loads((tmp_path / "policies" / name / "log_history.json").read_text()) == trainer.state.log_history
    rounds_log = [{"step": 1, "loss": 0.4, "round": 1}, {"step": 2, "loss": 0.3, "round": 2}]
    onpolicy.save_policies(tmp_path / "policies", {"dpo": FakeTrainer("c")}, {"dpo": rounds_log})  # the rounds' logs
    assert (tmp_path / "policies" / "dpo" / "model.txt").read_text() == "c"  # replaced
    assert json.loads((tmp_path / "policies" / "dpo" / "log_history.json").read_text()) == rounds_log


def test_recorded_splits_are_notebook_01s_at_the_sizes_it_recorded():
    calls = []

    class Task:
        def splits(self, n_train, n_eval, seed=0, tokenizer=None):
            calls.append((n_train, n_eval, seed, tokenizer))
            return {"train": list(range(n_train)), "validation": [], "test": []}
    recorded = {"data": {"n_problems": {"train": 40, "validation": 12, "test": 10}}}
    assert onpolicy.recorded_splits(Task(), recorded, seed=3, tokenizer="<tok>")["train"] == list(range(40))
    assert calls == [(40, 10, 3, "<tok>")]  # held-out problems at the test count
    # none recorded (notebook 01 not run, or cut short): the profile's sizes trained notebook
    # 04's rounds on other problems than notebook 01 labelled; refused, naming notebook 01
    for metrics in ({}, {"data": {"n_problems": {"train": 40}}}):
        with pytest.raises(FileNotFoundError, match=r"metrics.json has no data.n_problems.\w+: run 01_data_prep first"):
            onpolicy.recorded_splits(Task(), metrics, seed=3)
    assert onpolicy.recorded_splits(Task(), {}, n_train=5, n_eval=2)["train"] == list(range(5))  # both given
    toy = onpolicy.recorded_splits(tasks.ToyTask(), recorded, seed=0)
    sizes = (("train", 40), ("validation", 10), ("test", 10))
    assert toy == {s: toyworld.make_problems(n, s, seed=0) for s, n in sizes}
    # the train problems do not depend on the held-out count (notebook 04 drew them at the validation count; GSM8K's
    # carved splits: test_gsm8k's test_carve_keeps_each_problem_in_its_split_whatever_the_sizes)
    assert tasks.ToyTask().splits(40, 12, seed=0)["train"] == toy["train"]
    # more data than notebook 01 labelled (onpolicy_rounds.py --train-problems): notebook 01's problems come first
    more = onpolicy.recorded_splits(tasks.ToyTask(), recorded, seed=0, n_train=90, n_eval=25)
    assert more["train"][:40] == toy["train"] and [len(more[s]) for s, _ in sizes] == [90, 25, 25]
    assert not {p.prompt for p in more["train"]} & {p.prompt for p in more["validation"] + more["test"]}
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="recorded_splits: n_train must be an int >= 1"):
            onpolicy.recorded_splits(tasks.ToyTask(), recorded, n_train=bad)
    for bad in (0, -5):  # 0 took notebook 01's count, silently; -5 went on to the task's splits
        with pytest.raises(ValueError, match="recorded_splits: n_eval must be an int >= 1"):
            onpolicy.recorded_counts(recorded, n_eval=bad)


def test_optimizer_steps_count_whole_batches_and_at_least_one():
    assert onpolicy.optimizer_steps(570, 1.0, 16) == 35  # notebook 04's tiny runs: 560 of the 570 pairs
    assert onpolicy.optimizer_steps(570, 2.0, 16) == 71 and onpolicy.optimizer_steps(570, 0.5, 16) == 17
    assert onpolicy.optimizer_steps(64, 1.0, 4, accumulation_steps=4) == 4  # 16 rows an optimizer step
    assert onpolicy.optimizer_steps(3, 1.0, 16) == 1  # a few rows train
    assert [onpolicy.optimizer_steps(100, epochs, 1) for epochs in (0.29, 0.57)] == [29, 57]  # not float's 28, 56
    for kw, message in ((dict(epochs=0.0), "epochs must be > 0"), (dict(epochs=float("nan")), "epochs must be a"),
                        (dict(batch_size=0), "batch_size must be an int >= 1"),
                        (dict(accumulation_steps=True), "accumulation_steps must be an int >= 1"),
                        (dict(n_rows=-5), "n_rows must be an int >= 1"), (dict(n_rows=2.5), "n_rows must be an int"),
                        (dict(n_rows=0), "n_rows must be an int >= 1, got 0")):  # no rows: no step, not one
        with pytest.raises(ValueError, match=f"optimizer_steps: {message}"):
            onpolicy.optimizer_steps(**{**dict(n_rows=570, epochs=1.0, batch_size=16), **kw})


def test_preference_batch_size_is_the_given_one_else_the_profiles_dpo_batch_size_else_its_train_batch_size():
    import dataclasses

    tiny, t4 = profiles.get_profile("tiny"), profiles.get_profile("t4-16gb")
    assert tiny.train_batch_size == 32 and onpolicy.preference_batch_size(tiny) == tiny.dpo_batch_size == 16
    assert t4.dpo_batch_size is None and onpolicy.preference_batch_size(t4) == t4.train_batch_size == 4
    # the profile's field, not its name: a copy of tiny under another name trained in batches of 32
    assert onpolicy.preference_batch_size(dataclasses.replace(tiny, name="my-tiny")) == 16
    assert onpolicy.preference_batch_size(dataclasses.replace(t4, dpo_batch_size=2)) == 2
    assert onpolicy.preference_batch_size(tiny, 8) == 8 and onpolicy.preference_batch_size(t4, 2) == 2
    for bad in (0, -4, 2.5, "8"):
        with pytest.raises(ValueError, match="preference_batch_size: batch_size must be an int >= 1"):
            onpolicy.preference_batch_size(tiny, bad)


def test_training_args_name_checkpointing_as_this_transformers_does(tmp_path):
    """training_args passed `gradient_checkpointing`, which transformers 5 renamed: each of notebook 04's DPOConfig
    and StepwiseDPOConfig warned. It passes the name this transformers has (5.2's is the old one)."""
    import warnings

    from trl import DPOConfig

    from stepdpo_lite.trainer import CHECKPOINTING_FIELD, StepwiseDPOConfig

    for name in ("tiny", "smoke"):  # checkpointing off, on
        profile = profiles.get_profile(name)
        args = onpolicy.training_args(profile, batch_size=4, learning_rate=1e-4, max_steps=3, beta=0.1)
        assert args[CHECKPOINTING_FIELD] is profile.gradient_checkpointing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            configs = [cls(output_dir=str(tmp_path), **args) for cls in (DPOConfig, StepwiseDPOConfig)]
        assert [str(w.message) for w in caught if "checkpointing" in str(w.message)] == [], name
        assert [c.gradient_checkpointing for c in configs] == [profile.gradient_checkpointing] * 2, name


def test_start_policy_and_training_args_are_one_recipe_for_every_method(monkeypatch, tmp_path):
    from trl import DPOConfig

    from stepdpo_lite.tutorial import profiles

    tiny = profiles.get_profile("tiny")
    model, tok = onpolicy.start_policy(tiny, seed=0)
    assert tok.padding_side == "right" and not hasattr(model, "peft_config")  # the tiny base, fully fine-tuned
    loaded = []
    monkeypatch.setattr(onpolicy, "load_profile_model", lambda profile, **kw: (
        loaded.append((profile.name, kw)) or ("<qlora>", type("Tok", (), {"padding_side": "left"})())))
    model, tok = onpolicy.start_policy(profiles.get_profile("t4-16gb"), seed=5)
    assert model == "<qlora>" and tok.padding_side == "right" and loaded == [("t4-16gb", dict(lora=True, lora_seed=5))]

    args = onpolicy.training_args(tiny, batch_size=16, learning_rate=1e-4, max_steps=35, beta=0.1, seed=2)
    assert args["per_device_train_batch_size"] == 16 and args["max_steps"] == 35 and args["logging_steps"] == 1
    assert args["seed"] == args["data_seed"] == 2 and args["disable_tqdm"] is True
    on_cpu = not torch.cuda.is_available()
    assert args["use_cpu"] is on_cpu and (args["bf16"], args["fp16"]) == (False, False)  # float32 on any device
    # the profile's device, where start_policy put the policy: the tiny profile's "cpu" trained on a GPU when one was
    # there, after sampling on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **kw: True)
    assert onpolicy.training_args(tiny, batch_size=16, learning_rate=1e-4, max_steps=35, beta=0.1)["use_cpu"] is True
    on_gpu = dataclasses.replace(tiny, device="cuda")
    assert onpolicy.training_args(on_gpu, batch_size=16, learning_rate=1e-4, max_steps=35, beta=0.1)["use_cpu"] is False
    assert onpolicy.training_args(tiny, batch_size=4, learning_rate=1e-4, max_steps=100, beta=0.1)["logging_steps"] == 5
    smoke = profiles.get_profile("smoke")  # the profile's field, not its name: a GPU path shows its progress
    assert not onpolicy.training_args(smoke, batch_size=4, learning_rate=1e-4, max_steps=3, beta=0.1)["disable_tqdm"]
    onpolicy.TrainSettings(beta=0.1, args=args)  # the rounds take them: every key a DPOConfig field, beta the same
    assert DPOConfig(output_dir=str(tmp_path), **args).max_steps == 35


def test_plot_onpolicy_rounds_closes_its_figure_so_that_a_notebook_shows_it_once(tmp_path):
    import matplotlib.pyplot as plt

    records = [round_record(1, 0.75), round_record(2, 0.85)]
    for rec in records:
        rec["stepwise_dpo_minus"]["dpo"]["sampled_accuracy"] = {"difference": 0.01, "low": -0.05, "high": 0.07}
    fig = viz.plot_onpolicy_rounds(records, {"accuracy": 0.5, "sampled_accuracy": 0.25}, save_to=tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG" and len(fig.axes) == 3  # greedy, sampled, minus
    assert fig.number not in plt.get_fignums()  # as the cell's result only: not again at the cell's end


def test_policy_metrics_refuse_one_str_of_trained_methods():
    """``"stepwise_dpo" in "stepwise_dpo"`` and ``"dpo" in "stepwise_dpo"`` both hold: one str gave DPO, which the
    rounds did not train, the rounds' figures in place of its one-round ones."""
    one_round = {"base": {"accuracy": 0.5}, "dpo": {"accuracy": 0.6}, "stepwise_dpo": {"accuracy": 0.7}}
    with pytest.raises(ValueError, match="policy_metrics: trained must be a collection of method names, got one str"):
        onpolicy_report.policy_metrics(one_round, [round_record(1, 0.75)], None, trained="stepwise_dpo", curves={})


def test_save_policies_refuse_an_empty_log_by_name_before_saving_any_policy(tmp_path):
    """Notebook 04's rounds cell run a second time emptied its logs before it was refused; the save cell then wrote
    ``[]`` as every policy's log_history.json, and notebook 05's training curves failed deep in matplotlib."""
    trainers = {"dpo": FakeTrainer("a"), "nll_only": FakeTrainer("b")}
    with pytest.raises(ValueError, match=r"save_policies: the training log of \['dpo', 'nll_only'\] is empty: "
                                         r"nothing saved \(in notebook 04, run again the cell that loads the PRM"):
        onpolicy.save_policies(tmp_path / "policies", trainers, {"dpo": [], "nll_only": []})
    trainers["nll_only"].state.log_history = []  # a trainer's own log, too
    with pytest.raises(ValueError, match=r"the training log of \['nll_only'\] is empty"):
        onpolicy.save_policies(tmp_path / "policies", trainers)
    assert not (tmp_path / "policies").exists()  # found before the first policy was saved


def test_save_policies_refuse_a_missing_log_before_saving_any_policy(tmp_path):
    """A log missing for the second trainer was a KeyError after the first was saved: the folder held one new policy
    beside the old ones."""
    with pytest.raises(ValueError, match=r"save_policies: log_histories has no log for \['nll_only'\]"):
        onpolicy.save_policies(tmp_path / "policies", {"dpo": FakeTrainer("a"), "nll_only": FakeTrainer("b")},
                               {"dpo": [{"step": 1, "loss": 0.4}]})
    assert not (tmp_path / "policies").exists()  # nothing saved


def test_onpolicy_rounds_writes_out_after_every_round_on_the_device_and_problem_counts_given(
        monkeypatch, tmp_path, capsys):
    """A GPU run at 100 times the data takes minutes a round under a time limit: --out was written only after the last
    round, so a run stopped part way kept nothing. --device, --sample-batch-size, --train-problems and
    --eval-problems reach the policy's loader, the splits and the rounds; --progress the rounds' bars and the
    trainers' (such a round ran an hour on a CPU between two printed lines), and not the config runs are compared by."""
    import json
    import runpy

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import runs

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    seen = {}
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(runs, "read_metrics", lambda run: RUN_METRICS)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: -1.5)  # the PRM's own, as recorded
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(
        lambda cls, path, device=None: seen.setdefault("prm_device", device)))
    monkeypatch.setattr(onpolicy, "start_policy", lambda profile, seed=0: (
        seen.setdefault("profile", profile), "<tokenizer>"))
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda *a, n_train=None, n_eval=None, **kw: (
        seen.setdefault("counts", (n_train, n_eval)) and {"train": ["p"], "validation": ["v"], "test": ["t"]}))

    def two_rounds_then_stopped(policies, tokenizer, prm, train, evaluation, rs, ts, on_round=None, **kw):
        seen["sample_batch_size"], seen["progress"] = rs.batch_size, (rs.progress, ts.args["disable_tqdm"])
        on_round({"round": 1, "accuracy": 0.5}, {})
        on_round({"round": 2, "accuracy": 0.6}, {})
        raise KeyboardInterrupt  # the time limit, in round 3
    monkeypatch.setattr(onpolicy, "run_rounds", two_rounds_then_stopped)
    monkeypatch.setattr(onpolicy_report, "format_round", lambda record, methods: f"round {record['round']}")
    monkeypatch.setattr(onpolicy, "extend_logs", lambda *a: None)
    out = tmp_path / "rounds.json"
    with pytest.raises(KeyboardInterrupt):
        script["main"](["--runs-dir", str(tmp_path), "--no-base", "--device", "cpu", "--sample-batch-size", "512",
                        "--train-problems", "9600", "--eval-problems", "1000", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert [r["round"] for r in saved["rounds"]] == [1, 2] and saved["config"]["train_problems"] == 9600
    assert seen["counts"] == (9600, 1000) and seen["sample_batch_size"] == 512 and seen["prm_device"] == "cpu"
    assert seen["profile"].device == "cpu" and seen["profile"].sample_batch_size == 512
    assert seen["progress"] == (False, True)  # no bars by default: each round prints its lines
    with pytest.raises(KeyboardInterrupt):
        script["main"](["--runs-dir", str(tmp_path), "--no-base", "--progress", "--out", str(out)])
    assert seen["progress"] == (True, False) and "progress" not in json.loads(out.read_text())["config"]
    if not torch.cuda.is_available():  # found before anything is read, not as a torch error once the policies load
        with pytest.raises(SystemExit):
            script["main"](["--runs-dir", str(tmp_path / "none"), "--device", "cuda"])
        assert "--device cuda: no GPU is visible to torch here" in capsys.readouterr().err


def test_seed_spread_prints_its_plan_and_a_line_per_seed_as_each_finishes(monkeypatch, tmp_path, capsys):
    """Each seed is a notebook 04 run of minutes with its output captured: 6 seeds printed nothing for 22 minutes."""
    import json
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "seed_spread.py"))
    (tmp_path / "tiny" / "prm").mkdir(parents=True)
    by_seed = {seed: _seed_policy(0.05, 0.04) for seed in (2, 0)}
    monkeypatch.setitem(script["main"].__globals__, "run_seed", lambda run_dir, profile, seed, *a: by_seed[seed])
    out = script["main"](["--runs-dir", str(tmp_path), "--seeds", "2", "0", "--out", str(tmp_path / "seeds.json")])
    text = capsys.readouterr().out
    assert text.startswith("notebook 04 for 2 seeds (2 0), 1 at a time") and "seed 2: 0 s" in text
    assert list(out) == [2, 0] and list(json.loads((tmp_path / "seeds.json").read_text())) == ["2", "0"]


def rounds_script_on_a_stub_run(monkeypatch):
    """scripts/onpolicy_rounds.py's namespace, on a run that notebooks 01 and 02 finished (RUN_METRICS), with a stub
    PRM and policies: what the script does with its arguments, without a model."""
    import runpy

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import runs

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(runs, "read_metrics", lambda run: RUN_METRICS)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: -1.5)  # the PRM's own, as recorded
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(lambda cls, path, device=None: "<prm>"))
    monkeypatch.setattr(onpolicy, "start_policy", lambda profile, seed=0: ("<policy>", "<tokenizer>"))
    return script


def test_onpolicy_rounds_says_when_n_eval_is_more_than_the_split_holds(monkeypatch, tmp_path, capsys):
    """--n-eval 100000 was cut to the split's 150 problems without a word."""
    script = rounds_script_on_a_stub_run(monkeypatch)
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda *a, **kw: {"train": ["p"], "validation": ["v", "w"]})
    monkeypatch.setattr(onpolicy, "run_rounds", lambda *a, **kw: ([], {}))
    monkeypatch.setattr(onpolicy_report, "rounds_table", lambda *a: "table")
    for n_eval, said in (("100000", True), ("2", False)):
        script["main"](["--runs-dir", str(tmp_path), "--no-base", "--n-eval", n_eval])
        text = capsys.readouterr().out
        assert ("--n-eval 100000: the validation split holds 2 problems; evaluating on all 2" in text) == said


def test_onpolicy_rounds_min_ops_trains_and_evaluates_on_the_long_problems_only(monkeypatch, tmp_path, capsys):
    """--min-ops keeps each split's problems of that many operations or more (the base's weakest), says how many of
    the drawn ones, records the flag; no long problem in a split, or a task without operations, is a usage error."""
    script = rounds_script_on_a_stub_run(monkeypatch)
    drawn = {name: toyworld.make_problems(40, name, seed=3) for name in ("train", "validation", "test")}
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda *a, **kw: drawn)
    seen = {}
    monkeypatch.setattr(onpolicy, "run_rounds", lambda policies, tokenizer, prm, train, evaluation, *a, **kw: (
        seen.update(train=train, evaluation=evaluation) or ([], {})))
    monkeypatch.setattr(onpolicy_report, "rounds_table", lambda *a: "table")
    script["main"](["--runs-dir", str(tmp_path), "--no-base", "--min-ops", "5", "--split", "test"])
    long_train = [q for q in drawn["train"] if len(q.ops) >= 5]
    assert seen["train"] == long_train and 0 < len(long_train) < 40
    assert seen["evaluation"] == [q for q in drawn["test"] if len(q.ops) >= 5]
    text = capsys.readouterr().out
    assert f"--min-ops 5: train {len(long_train)} of 40 problems" in text
    assert '"min_ops": 5' in text  # in the config --out records: seed_spread.py tells such runs apart by it
    script["main"](["--runs-dir", str(tmp_path), "--no-base", "--split", "test"])  # without it: every problem
    assert seen["train"] == drawn["train"] and seen["evaluation"] == drawn["test"]
    for flags, message in [(["--min-ops", "7"], "--min-ops 7: a split has no problem of 7 or more operations"),
                           (["--min-ops", "0"], "--min-ops must be at least 1"),
                           (["--min-ops", "5", "--profile", "t4-16gb"], "--min-ops counts the toy world's operations")]:
        with pytest.raises(SystemExit) as done:
            script["main"](["--runs-dir", str(tmp_path), "--no-base", *flags])
        assert done.value.code == 2 and message in capsys.readouterr().err, flags


def test_onpolicy_rounds_refuses_a_run_without_notebook_01s_counts_before_it_loads_a_model(
        monkeypatch, tmp_path, capsys):
    """A run whose notebook 01 did not run through (no data.n_problems in its metrics.json) was refused by
    recorded_splits only after the PRM and every method's policy had loaded; now a usage error naming notebook 01,
    before any model loads. Both counts given on the command line need none recorded."""
    import runpy

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import runs

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: -1.5)  # the PRM's own, as recorded

    def load(*args, **kwargs):
        raise RuntimeError("a model loaded")
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(load))
    monkeypatch.setattr(onpolicy, "start_policy", load)
    prm_only = {"prm": RUN_METRICS["prm"]}
    for metrics, missing in ((prm_only, "train"), ({**prm_only, "data": {"n_problems": {"train": 40}}}, "test")):
        monkeypatch.setattr(runs, "read_metrics", lambda run, metrics=metrics: metrics)
        with pytest.raises(SystemExit) as done:
            script["main"](["--runs-dir", str(tmp_path), "--no-base"])
        message = capsys.readouterr().err
        assert done.value.code == 2, message
        assert f"--runs-dir: metrics.json has no data.n_problems.{missing}: run 01_data_prep first" in message
    with pytest.raises(RuntimeError, match="a model loaded"):  # both counts given: none needs to be recorded
        script["main"](["--runs-dir", str(tmp_path), "--no-base", "--train-problems", "50", "--eval-problems", "20"])

class FakePolicy(torch.nn.Module):
    """A policy for rounds whose training is faked: an empty module (run_round copies it as the reference)."""


def test_rounds_refuse_policies_that_rounds_have_trained_already(monkeypatch):
    """Notebook 04's rounds cell run a second time in one kernel trained the trained policies on as "round 1",
    sampling it from the DPO policy alone as if all three were still the start policy, and replaced policy.rounds
    in metrics.json with those figures, silently. A training that stopped half way counts as trained too."""
    p, gold, bad, _ = problem_and_texts()
    interrupt = []

    class Trainer:
        def __init__(self, model):
            self.model, self.state = model, type("State", (), {"log_history": []})()

        def train(self):
            if interrupt:
                raise KeyboardInterrupt

    monkeypatch.setattr(onpolicy.policy_eval, "sample_solutions",
                        lambda model, tok, problems, n, **kw: [[gold, bad]] * len(problems))
    monkeypatch.setattr(onpolicy.policy_eval, "greedy_and_sampled_accuracy", nothing_right)
    monkeypatch.setattr(onpolicy, "make_trainer", lambda method, model, *a, **kw: Trainer(model))
    rs = onpolicy.RoundSettings(samples_per_problem=2, pairs="solution", threshold=THRESHOLD)
    run = partial(onpolicy.run_rounds, tokenizer=None, prm=StubPRM(), train_problems=[p], eval_problems=[p], rs=rs,
                  ts=onpolicy.TrainSettings(), rounds=1, n_sampled=1, out=lambda line: None)
    policies = {m: FakePolicy() for m in onpolicy.METHODS}
    records, trainers = run(policies)
    assert records[0]["pairs"]["total"] == 1 and set(trainers) == set(onpolicy.METHODS)  # every method trained
    with pytest.raises(ValueError, match=r"run_rounds: the policies \['dpo', 'nll_only', 'stepwise_dpo'\] were "
                                         r"trained by on-policy rounds already \(up to round 1\).*the cell that loads "
                                         "the PRM and the three start policies"):
        run(policies)
    with pytest.raises(ValueError, match="rounds_start_figures: the policies .'start_policy'. were trained"):
        onpolicy.rounds_start_figures({"accuracy": 0.5}, policies["dpo"], None, [p], rs, rounds=1, quantized=False)
    with pytest.raises(ValueError, match=r"run_round\(shared_start=True\): the policies"):
        onpolicy.run_round(policies, None, StubPRM(), [p], [p], rs, onpolicy.TrainSettings(), shared_start=True)
    # round 2 on from round 1's policies is what run_round is for
    onpolicy.run_round(policies, None, StubPRM(), [p], [p], rs, onpolicy.TrainSettings(), round_index=2, n_sampled=1,
                       out=lambda line: None)
    fresh = {m: FakePolicy() for m in onpolicy.METHODS}  # the start policies loaded again: as the first run
    assert onpolicy.rounds_start_figures({"accuracy": 0.5}, fresh["dpo"], None, [p], rs, rounds=1,
                                         quantized=False) == {"accuracy": 0.5}
    interrupt.append(True)
    with pytest.raises(KeyboardInterrupt):
        run(fresh)
    with pytest.raises(ValueError, match=r"run_rounds: the policies \['dpo'\] were trained"):  # DPO's, in part
        run(fresh)


def test_one_round_trainers_refuses_what_the_rounds_cell_left():
    """After notebook 04's rounds cell emptied ``trainers``, its save cell said "saved to ..." and saved nothing,
    and its evaluation cell measured the base alone and replaced the ``policy`` section with it."""
    full = {m: FakeTrainer(m) for m in onpolicy.METHODS}
    assert onpolicy.one_round_trainers(full) is full
    with_step_dpo = {**full, "step_dpo": FakeTrainer("step_dpo")}  # when notebook 01 made Step-DPO pairs
    assert onpolicy.one_round_trainers(with_step_dpo) is with_step_dpo
    with pytest.raises(ValueError, match=r"trainers \(notebook 04's one-round runs\) is empty, without "
                                         r"\['dpo', 'stepwise_dpo', 'nll_only'\] "
                                         r"\(the on-policy rounds' cell drops them.*the shared training recipe"):
        onpolicy.one_round_trainers({})
    with pytest.raises(ValueError, match=r"holds only \['dpo'\], without \['stepwise_dpo', 'nll_only'\]"):
        onpolicy.one_round_trainers({"dpo": full["dpo"]})


# ----------------------------------------------------------------------------- saved rounds, resumed

def _deterministic_rounds(monkeypatch):
    """``run_round`` replaced by a deterministic stand-in that moves each policy's weights by its method and round and
    records what it started from: the save and resume mechanics without training."""
    from types import SimpleNamespace

    calls = []

    def one_round(policies, tokenizer, prm, problems, eval_problems, rs, ts, *, round_index, methods, **kw):
        calls.append((round_index, {m: onpolicy_resume.weights_digest(policies[m]) for m in methods}))
        record, trained = {"round": round_index}, {}
        for i, m in enumerate(methods):
            with torch.no_grad():
                next(w for w in policies[m].parameters() if w.requires_grad).add_(0.01 * (i + 1) * round_index)
            setattr(policies[m], onpolicy.TRAINED_IN_ROUND, round_index)
            record[m] = {"accuracy": 0.1 * round_index, "train_seconds": 1.5, "weights": onpolicy_resume.weights_digest(
                policies[m])}
            trained[m] = SimpleNamespace(model=policies[m], state=SimpleNamespace(
                log_history=[{"loss": 1.0 / round_index, "step": 1}]))
        return record, trained

    monkeypatch.setattr(onpolicy, "run_round", one_round)
    return calls


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_rounds_saved_as_each_finishes_are_taken_by_a_rerun_which_goes_on_from_them(tmp_path, tiny_base_path,
                                                                                    monkeypatch, lora):
    """Notebook 04 saved nothing between rounds: a Colab runtime that disconnected in round 3 (a T4 round takes
    about 1.9 h) lost every round (a user's trial). ``lora``: a GPU profile's policy, whose adapter alone is saved."""
    base, tok = tiny_models.load_tiny_base(tiny_base_path)
    if lora:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(0)
        base = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    calls = _deterministic_rounds(monkeypatch)
    problems = toyworld.make_problems(4, "train", seed=0, max_ops=2)

    def rounds(n, save_dir=None, seed=0):
        policies = {m: copy.deepcopy(base) for m in onpolicy.METHODS}
        lines, seen = [], []
        records, trainers = onpolicy.run_rounds(
            policies, tok, StubPRM(), problems, problems, onpolicy.RoundSettings(), onpolicy.TrainSettings(),
            rounds=n, seed=seed, save_dir=save_dir, save_key={"prm": "first"}, out=lines.append,
            on_round=lambda rec, tr: seen.append((rec["round"], tr["dpo"].state.log_history)))
        return records, trainers, policies, lines, seen

    straight = rounds(2)  # uninterrupted, nothing saved
    calls.clear()
    saved = tmp_path / "onpolicy_rounds"
    rounds(1, saved)  # the runtime stopped after round 1
    assert sorted(p.name for p in saved.iterdir()) == sorted([onpolicy_resume.ROUNDS_FILE, *onpolicy.METHODS])
    calls.clear()
    records, trainers, policies, lines, seen = rounds(2, saved)
    assert [r for r, _ in calls] == [2]  # round 1 taken, not trained again
    assert calls[0][1] == {m: straight[0][0][m]["weights"] for m in onpolicy.METHODS}  # round 2 started from round 1
    assert records == straight[0] and [r for r, _ in seen] == [1, 2]
    assert seen[0][1] == [{"loss": 1.0, "step": 1}]  # round 1's training log, for the curves
    assert f"round 1 of 2 taken from {saved}, saved as each finished (delete that folder to train them again); " \
           "training from round 2 on" in lines
    assert {m: onpolicy_resume.weights_digest(p) for m, p in policies.items()} == {
        m: onpolicy_resume.weights_digest(p) for m, p in straight[2].items()}

    calls.clear()  # every round saved: nothing trained; the stand-ins save the policies as a trainer does
    records, trainers, policies, lines, _ = rounds(2, saved)
    assert calls == [] and records == straight[0] and lines[-1].startswith("rounds 1-2 of 2 taken from")
    onpolicy.save_policies(tmp_path / "policies", trainers, {m: t.state.log_history for m, t in trainers.items()})
    if lora:  # the adapter, as notebooks 05 and 06 load it
        from peft import PeftModel

        reloaded = PeftModel.from_pretrained(tiny_models.load_tiny_base(tiny_base_path)[0],
                                             tmp_path / "policies" / "dpo", is_trainable=True)
    else:
        reloaded, _ = tiny_models.load_tiny_base(tmp_path / "policies" / "dpo")
    assert onpolicy_resume.weights_digest(reloaded) == straight[0][-1]["dpo"]["weights"]
    with pytest.raises(ValueError, match="were trained by on-policy rounds already .up to round 2"):
        onpolicy.refuse_trained_policies(policies, "run_rounds")  # the rounds' mark is set on the loaded policies

    calls.clear()  # other settings: not taken, and replaced once the new round 1 is saved
    *_, lines, _ = rounds(1, saved, seed=1)
    assert [r for r, _ in calls] == [1]
    assert f"the on-policy rounds saved in {saved} are not taken: they were run with other seed; round 1 starts " \
           "from the start policies, and its save replaces them" in lines
    assert len(json.loads((saved / onpolicy_resume.ROUNDS_FILE).read_text())["rounds"]) == 1


def test_files_digest_tells_a_retrained_prm_from_the_one_saved_rounds_used(tmp_path):
    (tmp_path / "prm").mkdir()
    (tmp_path / "prm" / "adapter_model.safetensors").write_bytes(b"weights")
    first = onpolicy_resume.files_digest(tmp_path / "prm")
    assert onpolicy_resume.files_digest(tmp_path / "prm") == first
    (tmp_path / "prm" / "adapter_model.safetensors").write_bytes(b"weightz")
    assert onpolicy_resume.files_digest(tmp_path / "prm") != first


def test_rounds_settings_refuse_a_save_key_that_would_replace_a_setting():
    p = toyworld.make_problems(1, "train", seed=0)
    kw = dict(problems_per_round=None, seed=0, n_sampled=2, shared_start=True, methods=())
    settings = onpolicy_resume.rounds_settings({}, p, p, onpolicy.RoundSettings(), onpolicy.TrainSettings(),
                                               save_key={"prm": "ab12"}, **kw)
    assert settings["prm"] == "ab12" and settings["seed"] == 0
    with pytest.raises(ValueError, match=r"run_rounds: save_key's \['seed'\] would replace the settings of that name"):
        onpolicy_resume.rounds_settings({}, p, p, onpolicy.RoundSettings(), onpolicy.TrainSettings(),
                                        save_key={"seed": 1}, **kw)


def test_saved_rounds_of_a_lora_policy_on_another_base_are_not_taken(tiny_base_path):
    """A LoRA round trains the adapter alone, and the adapter's start weights come from its seed: two bases of the
    same shapes gave the same start digest, so rounds saved on one base were taken for another (review)."""
    from peft import LoraConfig, get_peft_model

    def settings(name):
        base, _ = tiny_models.load_tiny_base(tiny_base_path)
        base.config.name_or_path = name
        torch.manual_seed(0)
        policy = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        problems = toyworld.make_problems(2, "train", seed=0, max_ops=2)
        return onpolicy_resume.rounds_settings({m: policy for m in onpolicy.METHODS}, problems, problems,
                                               onpolicy.RoundSettings(), onpolicy.TrainSettings(), problems_per_round=2,
                                               seed=0, n_sampled=1, shared_start=True, methods=onpolicy.METHODS)

    one, other = settings("org/base-a"), settings("org/base-b")
    assert one["start_policies"] == other["start_policies"]  # the adapters alone cannot tell them apart
    assert one != other and set(one["lora_bases"].values()) == {"org/base-a"}


def test_rounds_settings_tell_other_eval_problems_apart_but_not_a_progress_bar():
    train, evaluation = toyworld.make_problems(2, "train", seed=0), toyworld.make_problems(2, "validation", seed=0)
    kw = dict(problems_per_round=None, seed=0, n_sampled=2, shared_start=True, methods=())

    def settings(eval_problems, **round_knobs):
        return onpolicy_resume.rounds_settings({}, train, eval_problems, onpolicy.RoundSettings(**round_knobs),
                                               onpolicy.TrainSettings(), **kw)

    assert settings(evaluation) != settings(train)  # rounds evaluated on other problems: other figures
    assert settings(evaluation, progress=True) == settings(evaluation)  # a bar changes no round


def test_a_lora_rounds_save_holds_the_adapter_alone(tmp_path, tiny_base_path):
    """The base stays as loaded: saving it with every round would write the whole LLM at each round."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    base, _ = tiny_models.load_tiny_base(tiny_base_path)
    policy = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    onpolicy_resume.save_rounds(tmp_path / "rounds", {}, [], {"dpo": policy})
    saved = load_file(str(tmp_path / "rounds" / "dpo" / onpolicy_resume.POLICY_FILE))
    adapter = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert set(saved) == adapter and all("lora_" in n for n in saved)


def test_load_round_policy_refuses_a_save_whose_weights_have_other_shapes(tmp_path):
    onpolicy_resume.save_rounds(tmp_path / "rounds", {}, [], {"dpo": torch.nn.Linear(2, 3)})
    with pytest.raises(ValueError, match=r"holds other weights than the policy's \(first: weight\)"):
        onpolicy_resume.load_round_policy(torch.nn.Linear(3, 2), tmp_path / "rounds" / "dpo")  # same names


def test_onpolicy_rounds_draws_its_splits_at_the_counts_it_checked_before_loading(monkeypatch, tmp_path):
    """The script asked recorded_counts for notebook 01's split sizes before it loaded a model, then had
    recorded_splits look them up again: it passes on the counts it checked (notebook 01's, or the flags')."""
    import runpy

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import runs

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "onpolicy_rounds.py"))
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(runs, "read_metrics", lambda run: RUN_METRICS)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: -1.5)
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(lambda cls, path, device=None: "<prm>"))
    monkeypatch.setattr(onpolicy, "start_policy", lambda profile, seed=0: ("<policy>", "<tokenizer>"))

    class Drawn(Exception):
        pass

    def splits(task, metrics, **kw):
        raise Drawn(kw["n_train"], kw["n_eval"])
    monkeypatch.setattr(onpolicy, "recorded_splits", splits)
    for flags, expected in [([], (600, 150)), (["--train-problems", "900"], (900, 150))]:
        with pytest.raises(Drawn) as drawn:
            script["main"](["--runs-dir", str(tmp_path), "--no-base", *flags])
        assert drawn.value.args == expected, flags


def test_step_pairs_refuse_a_resample_that_rewrites_the_shared_prefix():
    """A continuation of "... = 12" may go on writing the number ("3\\n\\nStep 2: ..."): its step k-1 is then no
    longer the rejected solution's, so the pair would share no prefix. It is not accepted, even by a PRM that judges
    each step by its own arithmetic alone (which accepts the resampled step k)."""
    p, gold, bad, _ = problem_and_texts()

    class LocalPRM:  # a step is right when its own arithmetic is, whatever it copied
        config = type("Config", (), {"step_delimiter": "\n\nStep"})()

        def score_solutions(self, prompts, solutions, batch_size=None, progress=False):
            def ok(step):
                m = re.search(r"(-?\d+) ([+\-*]) (\d+) = (-?\d+)", step)
                return bool(m) and toyworld._apply(int(m[1]), m[2], int(m[3])) == int(m[4])
            return [[R if ok(step) else -R for step in steps] for steps in solutions]

    prm = LocalPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD, policy="dpo")
    assert samples[0][0].prm_first_error == 1

    def glued(model, tokenizer, contexts, n, **kw):  # "0" glued to step 1's result, then gold's right step 2 on
        return [["0" + gold[len(ctx) - len(p.prompt):]] * n for ctx in contexts]

    rows, stats = prm_pairs.step_pairs({"dpo": None}, None, prm, [p], samples, THRESHOLD, require="step",
                                       sample_fn=glued)
    assert rows == [] and stats["no_accepted_step"] == 1


def test_step_pairs_never_pair_the_wrong_step_with_itself():
    """A PRM that reads the whole solution (not only the prefix up to a step) can accept step k in a resample that
    repeats the wrong step and then recovers: its step k is the rejected text itself, no correction; not taken."""
    p, gold, bad, _ = problem_and_texts()
    gold_steps, bad_steps = extract_steps(gold), extract_steps(bad)
    recovered = gold_steps[0] + bad_steps[1] + "".join(gold_steps[2:])
    assert p.is_correct(recovered)

    class AnswerPRM(StubPRM):  # every step accepted where the final answer is right
        def score_solutions(self, prompts, solutions, batch_size=None, progress=False):
            rewards = super().score_solutions(prompts, solutions)
            return [[R] * len(r) if p.is_correct("".join(s)) else r for s, r in zip(solutions, rewards)]

    prm = AnswerPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD, policy="dpo")
    assert samples[0][0].prm_first_error == 1

    def resample(model, tokenizer, contexts, n, **kw):
        return [[recovered[len(context) - len(p.prompt):]] * n for context in contexts]

    rows, stats = prm_pairs.step_pairs({"dpo": None}, None, prm, [p], samples, THRESHOLD, tries=2, attempts=1,
                                       sample_fn=resample)
    assert rows == [] and stats["no_accepted_step"] == 1


def test_format_round_and_rounds_table_print_each_count_the_base_and_the_last_rounds_differences():
    """A round without differences prints no header over none; each pair count sits under its own name; the
    rounds' table starts at the base (round 0) and ends on the last round's differences, not the first's."""
    assert onpolicy_report.format_stepwise_minus({}) == []
    record = {**round_record(1, 0.5), "pairs": {"solution": 3, "step": 5, "total": 8}, "stepwise_dpo_minus": {}}
    text = onpolicy_report.format_round(record)
    assert text.splitlines()[0] == "round 1: 8 pairs (3 solution, 5 step); 3 s" and "minus" not in text
    first = {**round_record(1, 0.5), "stepwise_dpo_minus": {}}
    last = {**round_record(2, 0.75), "stepwise_dpo_minus": {"dpo": {
        m: {"difference": 0.25, "low": 0.125, "high": 0.375} for m in ("accuracy", "sampled_accuracy")}}}
    table = onpolicy_report.rounds_table([last, first, last], {"accuracy": 0.5, "sampled_accuracy": 0.25},
                                         methods=["dpo"]).splitlines()
    assert table[2].split() == ["0", "base", "50.0%", "25.0%"]
    assert "After round 2, on 4 held-out problems:" in table and "+25.0" in table[-1]
    assert "After round" not in onpolicy_report.rounds_table([last, first], methods=["dpo"])  # the last has none


def test_metrics_of_keeps_every_methods_figures_and_each_rounds_differences_and_only_the_bases_figures():
    """Each round's entry holds every method's figures (NLL only too) and that round's differences; the base
    keeps its evaluation figures only (a stray key in it would land in metrics.json)."""
    records = [round_record(1, 0.5), {**round_record(2, 0.75), "stepwise_dpo_minus": {"dpo": "second"}}]
    out = onpolicy_report.metrics_of(records, base={"accuracy": 0.5, "sampled_accuracy": 0.25, "note": "x"})
    assert [set(r) >= set(onpolicy_report.METHODS) for r in out["rounds"]] == [True, True]
    assert [r["stepwise_dpo_minus"] for r in out["rounds"]] == [records[0]["stepwise_dpo_minus"], {"dpo": "second"}]
    assert out["base"] == {"accuracy": 0.5, "sampled_accuracy": 0.25}


def test_the_one_round_sampled_accuracies_leave_out_a_run_without_one():
    """A one-round run recorded without a sampled accuracy is left out, not a KeyError under notebook 06's plot."""
    metrics = {"policy": {"one_round_gold_labels": {"dpo": {"accuracy": 0.7}, "nll_only": {"sampled_accuracy": 0.5}}}}
    assert onpolicy_report.format_one_round_sampled(metrics).splitlines()[1:] == ["  NLL only (RFT)       50.0%"]


def test_seed_summary_at_its_bounds_and_with_a_method_some_seeds_lack():
    """An interval whose bottom is exactly zero is not above it; a mean of exactly the margin meets the goal, and
    an interval over the seeds that tops out at it does not rule it out. A method one seed lacks is left out of
    the verdict and of the mean row (not a KeyError); no seeds is an error, not an empty verdict."""
    at_zero = onpolicy_report.seed_summary({0: _seed_policy(0.05, 0.02, half=0.05)})
    assert at_zero["dpo"]["accuracy"]["seeds_above_zero"] == 0 and not at_zero["dpo"]["accuracy"]["met"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seeds that differ alike: a point, without scipy's precision warning
        alike = onpolicy_report.seed_summary({0: _seed_policy(0.05, 0.0), 1: _seed_policy(0.05, 0.0)}, margin=0.05)
    dpo = alike["dpo"]["accuracy"]
    assert dpo["met"] and dpo["high"] == pytest.approx(0.05) and not dpo["excluded"]
    lacking = _seed_policy(0.05, 0.0)
    del lacking["nll_only"], lacking["stepwise_dpo"]["minus"]["nll_only"]
    by_seed = {0: _seed_policy(0.05, 0.0), 1: lacking}
    assert list(onpolicy_report.seed_summary(by_seed)) == ["dpo"]
    lines = onpolicy_report.format_seed_summary(by_seed).splitlines()
    mean = next(line for line in lines if line.startswith("mean "))
    assert mean.rstrip().endswith("80.0 / 40.0") and mean.count("/") == 3  # base, DPO, Stepwise DPO; NLL only blank
    name = display_names.method_name("dpo")
    greedy = next(i for i, line in enumerate(lines) if line.startswith(f"  {name:18s} greedy  mean"))
    assert lines[greedy + 1].startswith(f"  {'':18s} sampled mean")  # the method's greedy line, then its sampled one
    with pytest.raises(ValueError, match="seed_summary: no seeds"):
        onpolicy_report.seed_summary({})


def test_saved_rounds_are_taken_only_with_the_same_settings_and_no_more_rounds_than_asked(tmp_path):
    """A rerun takes every saved round (not the last alone) when its settings match and it asks for as many rounds
    or more; other settings (one the run lacks too) or fewer rounds asked for leave them, saying why."""
    lines, folder = [], tmp_path / "rounds"
    assert onpolicy_resume.saved_rounds(tmp_path / "none", {}, 3, out=lines.append) == [] and lines == []
    settings = {"seed": 0, "methods": ["dpo"]}
    done = [{"record": {"round": 1}, "log_history": [{"loss": 1.0}]}, {"record": {"round": 2}, "log_history": []}]
    onpolicy_resume.save_rounds(folder, settings, done, {"dpo": torch.nn.Linear(2, 3)})
    assert onpolicy_resume.saved_rounds(folder, settings, 2, out=lines.append) == done and lines == []
    assert onpolicy_resume.saved_rounds(folder, {**settings, "seed": 1}, 5, out=lines.append) == []
    assert "are not taken: they were run with other seed; round 1 starts" in lines[-1]
    assert onpolicy_resume.saved_rounds(folder, {"seed": 0}, 5, out=lines.append) == []
    assert "they were run with other methods;" in lines[-1]
    assert onpolicy_resume.saved_rounds(folder, settings, 1, out=lines.append) == []
    assert "they are 2, more than the 1 asked for" in lines[-1]


def test_load_round_policy_puts_back_the_saved_weights_in_their_dtype_and_refuses_extra_ones(tmp_path):
    """A loaded policy holds the saved weights in the saved dtype (a 4-bit policy's adapters train in float32); a
    save holding a weight the policy lacks is not this policy's."""
    saved = torch.nn.Linear(2, 3)
    onpolicy_resume.save_rounds(tmp_path / "rounds", {}, [], {"dpo": saved})
    policy = torch.nn.Linear(2, 3).to(torch.bfloat16)
    onpolicy_resume.load_round_policy(policy, tmp_path / "rounds" / "dpo")
    assert policy.weight.dtype == torch.float32 and torch.equal(policy.weight, saved.weight)
    assert onpolicy_resume.weights_digest(policy) == onpolicy_resume.weights_digest(saved)
    with pytest.raises(ValueError, match=r"holds other weights than the policy's \(first: bias\)"):
        onpolicy_resume.load_round_policy(torch.nn.Linear(2, 3, bias=False), tmp_path / "rounds" / "dpo")


def test_digests_tell_weights_and_files_apart_by_their_names_and_subfolders(tmp_path):
    """The same numbers under other names are another policy; a PRM whose file was renamed, or whose file in a
    subfolder changed, is another PRM."""
    layer = torch.nn.Linear(2, 2)
    assert onpolicy_resume.weights_digest(layer) != onpolicy_resume.weights_digest(torch.nn.Sequential(layer))
    (tmp_path / "prm" / "sub").mkdir(parents=True)
    (tmp_path / "prm" / "sub" / "adapter.safetensors").write_bytes(b"weights")
    first = onpolicy_resume.files_digest(tmp_path / "prm")
    (tmp_path / "prm" / "sub" / "adapter.safetensors").write_bytes(b"weightz")
    second = onpolicy_resume.files_digest(tmp_path / "prm")
    (tmp_path / "prm" / "sub" / "adapter.safetensors").rename(tmp_path / "prm" / "sub" / "other.safetensors")
    assert len({first, second, onpolicy_resume.files_digest(tmp_path / "prm")}) == 3


def test_rounds_settings_record_the_methods_in_the_order_the_run_trains_them():
    p, layer = toyworld.make_problems(1, "train", seed=0), torch.nn.Linear(2, 2)
    settings = onpolicy_resume.rounds_settings({"nll_only": layer, "dpo": layer}, p, p, onpolicy.RoundSettings(),
                                               onpolicy.TrainSettings(), problems_per_round=None, seed=0, n_sampled=2,
                                               shared_start=True, methods=("nll_only", "dpo"))
    assert settings["methods"] == ["nll_only", "dpo"] and set(settings["start_policies"]) == {"nll_only", "dpo"}


def test_fresh_rejected_tokens_follow_the_trainers_seed_and_need_the_reference_to_score_them(
        tmp_path, tiny_model, right_padded_tokenizer):
    """The redrawn rejected tokens are reproducible per seed (args.seed), and another seed draws others; with
    precompute_ref_log_probs the reference could not score a drawn token, so it is refused even beside a ref_model; so
    is a LoRA policy, beside which TRL keeps no ref_model."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import FreshRejectedStepDPOTrainer

    tr, batch, _ = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "fresh")
    _moved_off_the_reference(tr.model)  # where the loss depends on the token drawn

    def trainer(**changes):
        return FreshRejectedStepDPOTrainer(tr.model, ref_model=tr.ref_model, processing_class=tr.processing_class,
                                           train_dataset=tr.train_dataset, args=dataclasses.replace(tr.args, **changes))

    def losses(seed):
        other = trainer(seed=seed)
        with torch.no_grad():
            return [round(other.critical_token_loss(other.model, batch).item(), 6) for _ in range(10)]
    assert losses(tr.args.seed) == losses(tr.args.seed) != losses(tr.args.seed + 1)
    with pytest.raises(ValueError, match="precompute_ref_log_probs=False"):
        trainer(precompute_ref_log_probs=True)
    from peft import LoraConfig, get_peft_model
    lora = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=2, target_modules="all-linear"))
    with pytest.raises(ValueError, match="needs a frozen ref_model"):  # TRL keeps none beside a LoRA policy
        FreshRejectedStepDPOTrainer(lora, args=tr.args, train_dataset=tr.train_dataset,
                                    processing_class=tr.processing_class)


def test_redrawn_rejected_step_loss_is_the_mean_over_the_pairs_that_have_a_critical_token(
        tmp_path, tiny_model, right_padded_tokenizer):
    """A pair without a critical token adds nothing and does not count in the mean: the batch's loss is that of the
    batch without it (dividing by every pair would shrink it)."""
    tr, _, _ = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "expected")
    batch = tr.data_collator([tr.train_dataset[0]] * 2)  # step_rows()' pair, twice
    batch["first_diff_step"][0] = -1  # pair 0: no differing step
    rest = tr.data_collator([tr.train_dataset[0]])
    with torch.no_grad():
        assert tr.critical_token_loss(tr.model, batch).item() == pytest.approx(
            tr.critical_token_loss(tr.model, rest).item(), rel=1e-5)


def test_redrawn_rejected_rivals_leave_out_the_chosen_token(tmp_path, tiny_model, right_padded_tokenizer):
    """A draw of the chosen token makes no pair: the expectation weighs each other token by its probability, and the
    strongest rival is the strongest *other* token, even where the policy already ranks the chosen one first."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import ExpectedRejectedStepDPOTrainer, TopRivalStepDPOTrainer

    tr, _, _ = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "fresh")
    ratios = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    logp = torch.log_softmax(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), -1)  # the chosen token 0 is the likeliest
    c, probs = torch.tensor([0]), (torch.tensor([[0.9]]), torch.tensor([[0.2]]))

    def against(r):
        return tr._against(ratios, c, torch.tensor([r]), probs)
    expected = sum(logp[0, r].exp() * against(r) for r in (1, 2, 3))
    assert torch.allclose(ExpectedRejectedStepDPOTrainer._slip_loss(tr, ratios, logp, c, probs), expected)
    top = TopRivalStepDPOTrainer._slip_loss(tr, ratios, logp, c, probs)
    assert torch.allclose(top, against(1) * (1 - logp[0, 0].exp()))


def test_positional_step_weights_weigh_the_critical_tokens_log_ratios(tmp_path, tiny_model, right_padded_tokenizer):
    """a_k (step_weights) multiplies each pair's log-ratios inside the sigmoid, as in the parent's step loss: a
    weight of 2 on every step is a doubled step_beta, and no longer the unweighted loss."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import ExpectedRejectedStepDPOTrainer

    tr, batch, _ = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "expected")
    _moved_off_the_reference(tr.model)

    def loss(**changes):
        other = ExpectedRejectedStepDPOTrainer(tr.model, ref_model=tr.ref_model, processing_class=tr.processing_class,
                                               train_dataset=tr.train_dataset,
                                               args=dataclasses.replace(tr.args, **changes))
        with torch.no_grad():
            return other.critical_token_loss(other.model, batch).item()
    weighted = loss(step_weights=[2.0])
    assert weighted == pytest.approx(loss(step_beta=2 * tr.args.step_beta), rel=1e-5)
    assert weighted != pytest.approx(loss(), rel=1e-4)


def test_critical_token_trainers_refuse_another_step_pairing_however_args_are_given(
        tmp_path, tiny_model, right_padded_tokenizer):
    """One token a side needs step_pairing="first_token": another is refused, naming the class and the value given,
    before the parent prepares (or refuses) the datasets with it."""
    from stepdpo_lite.tutorial.fresh_rejected_pairs import FreshRejectedStepDPOTrainer

    tr, _, _ = _redrawn_rejected_trainer(tmp_path, tiny_model, right_padded_tokenizer, "fresh")
    args = dataclasses.replace(tr.args, step_pairing="first_error")
    message = r"^FreshRejectedStepDPOTrainer: step_pairing must be 'first_token' .* got 'first_error'$"
    with pytest.raises(ValueError, match=message):
        FreshRejectedStepDPOTrainer(tr.model, ref_model=tr.ref_model, args=args, train_dataset=tr.train_dataset,
                                    processing_class=tr.processing_class)
    with pytest.raises(ValueError, match=message):  # by position: the parent refused the prepared dataset first, its
        FreshRejectedStepDPOTrainer(tr.model, tr.ref_model, args, train_dataset=tr.train_dataset,  # step settings
                                    processing_class=tr.processing_class)  # named, not the pairing
