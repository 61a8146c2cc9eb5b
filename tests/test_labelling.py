"""labelling: what notebook 01 reports of its sampled solutions (verdict_summary), the datasets it builds of every
split, its comparison of Monte-Carlo step labels with the checker's, the data section of metrics.json, and the pairs
built from stepwise rows labelled anywhere (preference_pairs_from_stepwise)."""
import inspect
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import gsm8k, labelling, public_datasets, toyworld
from stepdpo_lite.tutorial.labelling import (DATASET_KINDS, data_metrics, datasets_by_split, drawn_pairs,
                                             format_label_agreement, format_verdict_summary, label_agreement,
                                             mc_comparison_problems, mc_label_agreement, outcome_rows,
                                             preference_pairs, preference_pairs_from_stepwise, problem_mc_step_labels,
                                             step_dpo_pairs, stepwise_rows, verdict_summary)
from stepdpo_lite.tutorial.task_problems import Verdict, prompts_of


def test_verdict_summary_counts_clean_lucky_and_first_mistakes():
    clean = Verdict([True, True], -1, True, [None, None])
    lucky = Verdict([False, False], 0, True, ["copy", "propagated"])
    wrong = Verdict([True, False], 1, False, [None, "arithmetic"])
    unkinded = Verdict([False], 0, False)  # Monte-Carlo labels: no error kinds
    summary = verdict_summary([[clean, lucky], [wrong, wrong, unkinded]])
    assert summary == {"solutions": 5, "accuracy": 0.4, "no_step_wrong": 1, "right_through_a_wrong_step": 1,
                       "first_mistakes": {"arithmetic": 2, "copy": 1}}
    assert format_verdict_summary(summary).splitlines() == [
        "5 sampled solutions, final answer right in 40.0%",
        "no step wrong in 1; right answer through a wrong step in 1",
        "what the first mistake was: {'arithmetic': 2, 'copy': 1}"]
    for bad, message in [([], "got none"), ([[]], "got none"), ([clean], r"verdicts\[0\]: expected a list of verdicts"),
                         ([["x"]], r"verdicts\[0\]\[0\]: not a task_problems.Verdict: 'x'")]:
        with pytest.raises(ValueError, match=f"verdict_summary: .*{message}"):
            verdict_summary(bad)


def test_builders_and_verdict_summary_refuse_a_verdict_whose_fields_were_set_to_disagree():
    """Verdict() refuses fields that disagree (test_toyworld); one set after it was made is refused where the
    verdicts enter, naming the problem and the solution: first_error -1 beside a False step label made the solution
    a chosen one, first_error None a TypeError in step_dpo_pairs and in verdict_summary."""
    problems, solutions, verdicts = _split(2, "train", 0)
    verdicts[1][0] = toyworld.check(problems[1], solutions[1][1])  # a wrong solution's verdict, set to read as right
    verdicts[1][0].first_error, verdicts[1][0].answer_correct, verdicts[1][0].steps = -1, True, []
    solutions[1][0] = solutions[1][1]
    for build in (preference_pairs, step_dpo_pairs, stepwise_rows):
        with pytest.raises(ValueError, match=rf"{build.__name__}: problem 1, solution 0: its verdict: first_error "
                                             r"must be 0, the index of the first False step label .* got -1"):
            build(problems, solutions, verdicts=verdicts)
    verdicts[1][0].first_error = None
    with pytest.raises(ValueError, match=r"verdict_summary: verdicts\[1\]\[0\]: first_error .* got None"):
        verdict_summary(verdicts)


def _split(n, split, seed):
    """Toy problems of ``split``, each with its gold solution and a copy with an arithmetic slip, and their verdicts."""
    problems = toyworld.make_problems(n, split, seed=seed)
    rng = random.Random(seed)
    solutions = [[p.gold_solution, toyworld.corrupt_solution(p, 0, "arithmetic", rng)] for p in problems]
    return problems, solutions, [[toyworld.check(p, s) for s in sols] for p, sols in zip(problems, solutions)]


def test_datasets_by_split_builds_the_four_datasets_of_every_split_from_its_verdicts(caplog):
    built = {split: _split(n, split, seed) for split, n, seed in (("train", 3, 0), ("test", 2, 1))}
    problems, solutions, verdicts = ({split: parts[i] for split, parts in built.items()} for i in range(3))
    with caplog.at_level(logging.INFO, logger="stepdpo_lite.data"):
        datasets = datasets_by_split(problems, solutions, verdicts, seed=0)
    # each builder's log line names the split it built (notebook 01 prints three splits' lines in a row)
    assert [m.split(": built")[0] for m in caplog.messages if ": built" in m] == [
        f"{split} split: {kind}" for split in ("train", "test")
        for kind in ("stepwise_rows", "outcome_rows", "preference_pairs", "step_dpo_pairs")]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="stepdpo_lite.data"):
        preference_pairs(problems["train"], solutions["train"], verdicts=verdicts["train"])
    assert caplog.messages and "split" not in caplog.messages[0]  # the filter is gone once the split is built
    assert list(datasets) == [f"{split}_{kind}" for split in ("train", "test") for kind in DATASET_KINDS]
    assert [len(datasets[f"train_{kind}"]) for kind in DATASET_KINDS] == [6, 6, 3, 3]  # a pair per problem
    assert datasets["test_stepwise"][1]["labels"] == verdicts["test"][0][1].step_labels
    assert datasets["train_preference"][:] == preference_pairs(problems["train"], solutions["train"],
                                                               verdicts=verdicts["train"])[:]
    with pytest.raises(ValueError, match=r"datasets_by_split: verdicts must be a dict with the splits of problems, "
                                         r"\['train', 'test'\], in their order; got \['train'\]"):
        datasets_by_split(problems, solutions, {"train": verdicts["train"]})
    with pytest.raises(ValueError, match="datasets_by_split: problems must be a dict of split name -> problems"):
        datasets_by_split(problems["train"], solutions, verdicts)  # it blamed solutions: "solutions must be a dict"


def test_pair_builders_warn_when_they_build_no_pair(caplog):
    """Only right solutions give no pair and nothing left out: the log line said so at INFO, unseen, and the empty
    dataset failed far from here."""
    problems = toyworld.make_problems(3, "train", seed=0)
    right_only = [[p.gold_solution] for p in problems]
    for build in (preference_pairs, step_dpo_pairs):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
            empty = build(problems, right_only)
        assert f"{build.__name__}: built 0 pairs" in caplog.text
        # a split of few problems may build none (notebook 01 saves it all the same): it lacked the step label
        # columns (preference) and chosen_source/step_index (Step-DPO) that its readers look up
        assert len(empty) == 0 and empty.column_names == build(*_split(1, "train", 0)[:2]).column_names
    problems, solutions, verdicts = _split(3, "train", 0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):  # pairs built, nothing left out: no warning
        assert len(preference_pairs(problems, solutions, verdicts=verdicts)) == 3
    assert not caplog.messages


def test_the_builders_log_lines_count_one_thing_in_the_singular(caplog):
    """Notebook 01 showed "left out: ..., 1 wrong steps with no right step to pair": every count of one in a builder's
    log line (what it built, each reason it left something out) names its thing in the singular."""
    from stepdpo_lite.tutorial.labelling import _report
    with caplog.at_level(logging.INFO, logger="stepdpo_lite.data"):
        _report("step_dpo_pairs", 1, "pairs", blank_solutions=0, repeated_pairs=1,
                wrong_steps_with_no_right_step_to_pair=1, steps_labelled_right_and_wrong=2,
                wrong_steps_whose_prefix_is_not_golds=1)
        _report("problem_mc_step_labels", 1, "solutions to label", rows_whose_steps_split_otherwise=1)
        _report("stepwise_rows", 3, "rows", blank_solutions=1)
    assert caplog.messages == [
        "step_dpo_pairs: built 1 pair; left out: 1 repeated pair, 1 wrong step with no right step to pair, 2 steps "
        "labelled right and wrong, 1 wrong step whose prefix is not golds",
        "problem_mc_step_labels: built 1 solution to label; left out: 1 row whose steps split otherwise",
        "stepwise_rows: built 3 rows; left out: 1 blank solution"]
    p = toyworld.Problem(7, (("+", 5), ("*", 3), ("-", 4)))  # a builder's: the one step with no right step after it
    extra = p.gold_solution.replace("Answer: 32", "Step 4: 32 + 1 = 33\n\nAnswer: 33")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        assert len(step_dpo_pairs([p], [[extra]], max_pairs_per_problem=None)) == 0
    assert caplog.messages == ["step_dpo_pairs: built 0 pairs; left out: 1 wrong step with no right step to pair"]


def test_mc_comparison_problems_takes_whole_problems_and_at_least_one():
    problems, solutions, _ = _split(5, "train", 0)
    picked = mc_comparison_problems(problems, solutions, 4, 2)  # 4 solutions: 2 problems of 2 samples
    assert picked == (problems[:2], solutions[:2])
    assert mc_comparison_problems(problems, solutions, 1, 2) == (problems[:1], solutions[:1])
    assert mc_comparison_problems(problems, solutions, 40, 2) == (problems, solutions)
    with pytest.raises(ValueError, match="mc_comparison_problems: 5 problems but 4 lists of solutions"):
        mc_comparison_problems(problems, solutions[:4], 4, 2)
    with pytest.raises(ValueError, match="mc_comparison_problems.*n_solutions must be an int >= 1, got 0"):
        mc_comparison_problems(problems, solutions, 0, 2)


def test_label_agreement_leaves_an_undefined_precision_or_recall_undefined():
    """All compared steps wrong on both sides: precision and recall were reported 0.00 beside 100% agreement."""
    a = label_agreement([[False, False]], [[False, False]])
    assert a["accuracy"] == 1.0 and a["precision"] is None and a["recall"] is None and a["f1"] is None
    assert format_label_agreement("hard", a) == "hard: agreement 100.0% (precision n/a, recall n/a) on 2 steps"
    b = label_agreement([[True, False]], [[True, True]])
    assert (b["precision"], b["recall"]) == (1.0, 0.5)
    assert format_label_agreement("soft", b) == "soft: agreement 50.0% (precision 1.00, recall 0.50) on 2 steps"
    none_right = label_agreement([[False]], [[True]])  # the estimate calls no step right
    assert none_right["precision"] is None and none_right["f1"] is None  # sklearn's own F1 would be 0.0 here
    assert label_agreement([[True]], [[False]])["recall"] is None and label_agreement([[True]], [[False]])["f1"] is None


def test_mc_label_agreement_compares_hard_and_soft_labels_with_the_checkers():
    gold = [[True, True, False], [True, False]]
    mc = {"labels": [[True, True, True], [True, False]],  # hard: a wrong step judged right
          "soft_labels": [[1.0, 0.25, 0.125], [0.5, 0.0]], "gold_labels": gold}  # soft, cut at 0.5: a right step wrong
    agreement = mc_label_agreement(mc)
    assert agreement == {"hard": label_agreement(mc["labels"], gold),
                         "soft": label_agreement(mc["soft_labels"], gold, threshold=0.5)}
    assert (agreement["hard"]["accuracy"], agreement["hard"]["recall"]) == (0.8, 1.0)
    assert (agreement["soft"]["accuracy"], agreement["soft"]["precision"]) == (0.8, 1.0)
    assert mc_label_agreement(mc, soft_threshold=0.25)["soft"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"mc_label_agreement: the rows lack \['gold_labels'\]"):
        mc_label_agreement({"labels": gold, "soft_labels": gold})


def test_data_metrics_is_notebook_01s_data_section():
    problems = {"train": [1, 2, 3], "test": [4]}
    sampled = {"solutions": 8, "accuracy": 0.25, "no_step_wrong": 1, "right_through_a_wrong_step": 1,
               "first_mistakes": {"copy": 3}}
    datasets = {"train_stepwise": [0] * 6, "test_stepwise": [0] * 2}
    metrics = data_metrics(problems, 2, sampled, datasets)
    assert metrics == {"n_problems": {"train": 3, "test": 1}, "samples_per_problem": 2, "base_sampled_accuracy": 0.25,
                       "base_sampled_solutions": 8, "base_no_step_wrong": 1, "base_right_through_a_wrong_step": 1,
                       "rows": {"train_stepwise": 6, "test_stepwise": 2}}  # no comparison: no agreement keys
    agreement = {"hard": {"accuracy": 0.9, "precision": 0.8, "recall": 1.0, "f1": 0.89},
                 "soft": {"accuracy": 0.7, "precision": 0.75, "recall": 0.5, "f1": 0.6}}
    with_mc = data_metrics(problems, 2, sampled, datasets, agreement)
    assert list(with_mc)[-2:] == ["mc_label_agreement", "mc_label_precision_recall"]
    assert with_mc["mc_label_agreement"] == {"hard": 0.9, "soft": 0.7}
    assert with_mc["mc_label_precision_recall"] == {"hard": {"precision": 0.8, "recall": 1.0},
                                                    "soft": {"precision": 0.75, "recall": 0.5}}


def test_prompts_of_says_what_to_pass_for_prompt_texts_or_one_problem():
    """A list of prompt texts got "its prompt must be a str, got NoneType (a str)", which contradicts itself; one
    problem not in a list was a bare "'Problem' object is not iterable"."""
    problem = toyworld.make_problems(1, "test")[0]
    with pytest.raises(ValueError, match=r"beam_search: problem 0: .*a str has no \.prompt: problems must be "
                                         r"problem objects with a \.prompt, .*not their prompt texts"):
        prompts_of([problem.prompt], "beam_search")
    with pytest.raises(ValueError, match=r"prompts_of: problems must be a list .*got one Problem: wrap it in a list"):
        prompts_of(problem)
    with pytest.raises(ValueError, match=r"got one int: wrap it in a list"):
        prompts_of(3)
    assert prompts_of((p for p in [problem])) == [problem.prompt]


def test_preference_pairs_take_the_delimiter_the_verdicts_steps_were_split_by():
    """A user's trial: stepwise rows split at "\\n", as verdicts, were refused ("'chosen' has 1 steps (delimiter
    '\\n\\nStep')"), a setting preference_pairs had no argument for; step_dpo_pairs had one."""
    import types

    steps = {"right": ["12 - 5 = 7", "\n7 + 6 = 13", "\nThe answer is 13"],
             "wrong": ["12 - 5 = 7", "\n7 + 6 = 12", "\nThe answer is 12"]}
    verdicts = [[Verdict([True] * 3, -1, True, steps=steps["right"]),
                 Verdict([True, False, False], 1, False, steps=steps["wrong"])]]
    problems = [types.SimpleNamespace(prompt="Compute 12 - 5 + 6.\n")]
    solutions = [["".join(s) for s in steps.values()]]
    with pytest.raises(ValueError) as refused:  # it said "preference: record 0: ... 'chosen' has 1 steps", an output
        preference_pairs(problems, solutions, verdicts=verdicts)
    assert str(refused.value) == ("preference_pairs: problem 0, solution 0: its verdict has 3 steps but the delimiter "
                                  "'\\n\\nStep' splits the text into 1 step: pass delimiter= the one your verdicts' "
                                  "steps were split by (its steps 2..3 open with '\\n', which splits the text into "
                                  "them: delimiter='\\n')")
    pairs = preference_pairs(problems, solutions, verdicts=verdicts, delimiter="\n")
    assert pairs.to_list() == [{"prompt": problems[0].prompt, "chosen": solutions[0][0], "rejected": solutions[0][1],
                                "chosen_step_labels": [True] * 3, "rejected_step_labels": [True, False, True]}]


def _stepwise(prompt, *labelled):
    """Stepwise rows of ``prompt``: each solution given as (steps, labels), steps 2..K opening with "\\n"."""
    return [{"prompt": prompt, "completions": steps, "labels": labels} for steps, labels in labelled]


RIGHT = (["12 - 5 = 7", "\n7 + 6 = 13", "\nThe answer is 13"], [True, True, True])
SLIP = (["12 - 5 = 7", "\n7 + 6 = 12", "\nThe answer is 12"], [True, False, False])  # reachable labels
EARLY_SLIP = (["12 - 5 = 6", "\n6 + 6 = 12", "\nThe answer is 12"], [False, False, False])


def test_preference_pairs_from_stepwise_pairs_each_prompts_right_and_wrong_solutions(caplog):
    """Stepwise rows labelled anywhere (PRM800K, Math-Shepherd, one's own labeller) had no way to the Stepwise DPO
    trainer's pairs but preference_pairs, which takes the toy world's Verdicts."""
    rows = (_stepwise("Compute 12 - 5 + 6.\n", RIGHT, SLIP, RIGHT, EARLY_SLIP)  # RIGHT again: used once
            + _stepwise("Compute 2 + 2.\n", (["2 + 2 = 4", "\nThe answer is 4"], [True, True]))  # no wrong one
            + _stepwise("Compute 3 * 3.\n", (["3 * 3 = 6", "\nThe answer is 6"], [False, False]),  # no right one
                        (["3 * 3 = 9", "\nThe answer is 9"], [True, True]),
                        (["3 * 3 = 9", "\nThe answer is 9"], [True, False])))  # the same text labelled two ways
    with caplog.at_level(logging.INFO, logger="stepdpo_lite.data"):
        pairs = preference_pairs_from_stepwise(rows, delimiter="\n")
    assert "built 2 pairs; left out: 2 repeated solutions, 1 solution labelled two ways, 1 prompt without a right " \
           "solution, 1 prompt without a wrong solution" in caplog.text  # "1 solutions", "1 prompts" were logged
    chosen = "".join(RIGHT[0])
    assert sorted(pairs.to_list(), key=lambda r: r["rejected"]) == [
        {"prompt": "Compute 12 - 5 + 6.\n", "chosen": chosen, "rejected": "".join(wrong[0]),
         "chosen_step_labels": [True] * 3, "rejected_step_labels": mistakes}
        for wrong, mistakes in ((EARLY_SLIP, [False, True, True]), (SLIP, [True, False, True]))]
    reachability = preference_pairs_from_stepwise(rows, delimiter="\n", rejected_labels="reachability")
    assert sorted(map(tuple, reachability["rejected_step_labels"])) == [tuple(EARLY_SLIP[1]), tuple(SLIP[1])]
    # a solution with any wrong step is a rejected one, though its last step is right (PRM800K's labels may be so)
    mended = [{"prompt": "Q\n", "completions": ["Step 1: a", "\n\nStep 2: b"], "labels": labels}
              for labels in ([True, True], [False, True])]
    mended[1]["completions"] = ["Step 1: c", "\n\nStep 2: d"]
    assert preference_pairs_from_stepwise(mended)["rejected"] == ["Step 1: c\n\nStep 2: d"]
    # max_pairs_per_problem draws per prompt, seeded by it: the rows' order does not change the draw
    one = preference_pairs_from_stepwise(rows, delimiter="\n", max_pairs_per_problem=1, seed=3)
    assert len(one) == 1 and one[:] == preference_pairs_from_stepwise(rows[::-1], delimiter="\n",
                                                                      max_pairs_per_problem=1, seed=3)[:]


def test_preference_pairs_from_stepwise_gives_the_toy_builders_pairs_from_its_stepwise_rows():
    """The same pairs as preference_pairs from the rows stepwise_rows makes of the same verdicts (an arithmetic slip:
    its mistake labels are where the reachable labels drop)."""
    problems, solutions, verdicts = _split(4, "train", 0)
    rows = stepwise_rows(problems, solutions, verdicts=verdicts)
    assert preference_pairs_from_stepwise(rows)[:] == preference_pairs(problems, solutions, verdicts=verdicts)[:]


def test_preference_pairs_from_stepwise_refuses_bad_rows_and_no_pair(caplog):
    prompt = "Compute 12 - 5 + 6.\n"
    with pytest.raises(ValueError, match=r"preference_pairs_from_stepwise: stepwise: record 1: field 'labels': has 2 "
                                         r"labels for 3 completions"):
        preference_pairs_from_stepwise(_stepwise(prompt, RIGHT, (SLIP[0], [True, False])), delimiter="\n")
    with pytest.raises(ValueError, match=r"record 0: field 'completions\[1\]': does not open with the delimiter "
                                         r"'\\n\\nStep'"):  # the default delimiter: these steps open with "\n"
        preference_pairs_from_stepwise(_stepwise(prompt, RIGHT, SLIP))
    with pytest.raises(ValueError, match=r"preference_pairs_from_stepwise: no pair: no prompt has both .* \(of 1 "
                                         r"prompts; left out: \{'prompts_without_a_wrong_solution': 1\}\)"):
        preference_pairs_from_stepwise(_stepwise(prompt, RIGHT), delimiter="\n")
    with pytest.raises(ValueError, match="rejected_labels must be 'mistakes' or 'reachability'"):
        preference_pairs_from_stepwise(_stepwise(prompt, RIGHT, SLIP), delimiter="\n", rejected_labels="reachable")
    # a step holding the delimiter (a PRM800K step of two lines) would be cut into other steps: left out, counted
    two_lines = (["12 - 5 = 7\nso 7", "\n7 + 6 = 12"], [True, False])
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        pairs = preference_pairs_from_stepwise(_stepwise(prompt, RIGHT, SLIP, two_lines), delimiter="\n")
    assert len(pairs) == 1 and "1 row whose steps split otherwise" in caplog.text


def test_preference_pairs_from_stepwise_train_with_the_stepwise_dpo_trainer(tmp_path, tiny_model, tiny_tokenizer):
    from stepdpo_lite.trainer import StepwiseDPOConfig, StepwiseDPOTrainer

    problems, solutions, verdicts = _split(2, "train", 0)
    pairs = preference_pairs_from_stepwise(stepwise_rows(problems, solutions, verdicts=verdicts))
    args = StepwiseDPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False, max_steps=1,
                             save_strategy="no", disable_tqdm=True, per_device_train_batch_size=2)
    trainer = StepwiseDPOTrainer(tiny_model, args=args, train_dataset=pairs, processing_class=tiny_tokenizer)
    assert trainer.train_dataset["rejected_step_probs"] == [[float(x) for x in labels]
                                                            for labels in pairs["rejected_step_labels"]]
    assert trainer.train().training_loss > 0


def test_formats_md_names_preference_pairs_from_stepwises_arguments_and_quotes_its_prm800k_figures():
    root = Path(__file__).resolve().parent.parent
    rows = public_datasets.load_prm800k(root / "data" / "prm800k" / "sample.jsonl", branches=True)
    pairs = preference_pairs_from_stepwise(rows, delimiter="\n")
    split_otherwise = sum(extract_steps("".join(r["completions"]), "\n") != r["completions"] for r in rows)
    text = " ".join((root / "docs" / "formats.md").read_text().replace("`", "").split())
    assert f"{len(pairs)} pairs from {len(rows)} rows ({split_otherwise} rows left out for their lines)" in text
    quoted = text.split("preference_pairs_from_stepwise(")[1].split(")")[0]
    assert [p.split("=")[0] for p in quoted.split(", ") if p != "*"] == list(
        inspect.signature(preference_pairs_from_stepwise).parameters)


def test_preference_pairs_from_stepwise_on_newline_steps_names_the_delimiter_to_pass():
    """A user's trial: "\\n" rows with the default (the toy world's) delimiter were told to rewrite their data:
    "data.delimit_steps(row, '\\n\\nStep') puts it in front"; the fix was delimiter='\\n'."""
    rows = _stepwise("Compute 12 - 5 + 6.\n", RIGHT, SLIP)
    with pytest.raises(ValueError) as refused:
        preference_pairs_from_stepwise(rows)
    assert str(refused.value) == ("preference_pairs_from_stepwise: stepwise: record 0: field 'completions[1]': does "
                                  "not open with the delimiter '\\n\\nStep': steps 2..K open with '\\n': pass "
                                  "delimiter='\\n'")
    assert len(preference_pairs_from_stepwise(rows, delimiter="\n")) == 1  # the advice, followed


@dataclass(frozen=True)
class OwnProblem:
    """A problem of one's own task (docs/own_task.md): not a toyworld.Problem, with the protocol's verdict and
    is_correct (here a toy problem's checker, so that its rows can be compared with the toy world's)."""
    toy: toyworld.Problem
    right: Callable[[str], bool] | None = None  # its own grader, in place of the checker's

    prompt = property(lambda self: self.toy.prompt)
    gold_solution = property(lambda self: self.toy.gold_solution)

    def verdict(self, solution):
        return toyworld.check(self.toy, solution)

    def is_correct(self, solution):
        return self.right(solution) if self.right else self.toy.is_correct(solution)


def test_builders_label_any_problem_by_its_own_verdict_and_still_refuse_one_without_a_checker(tiny_model,
                                                                                              tiny_tokenizer):
    """A user's trial: preference_pairs on a task of one's own was refused ("the gold checker labels toyworld.Problem
    only; pass verdicts="), though the task protocol requires verdict(solution); problem_mc_step_labels graded its
    rollouts by toyworld.check. GSM8K's problems, whose verdict is None, are still refused."""
    problems, solutions, _ = _split(3, "train", 0)
    own = [OwnProblem(p) for p in problems]
    for build in (stepwise_rows, outcome_rows, preference_pairs, step_dpo_pairs):
        assert build(own, solutions)[:] == build(problems, solutions)[:]
    mc = dict(n=2, max_new_tokens=4, batch_size=8, progress=False)
    assert problem_mc_step_labels(tiny_model, tiny_tokenizer, own[:1], solutions[:1], **mc)[:] == \
        problem_mc_step_labels(tiny_model, tiny_tokenizer, problems[:1], solutions[:1], **mc)[:]
    always_right = [OwnProblem(problems[0], right=lambda solution: True)]  # its own grader grades the rollouts
    rows = problem_mc_step_labels(tiny_model, tiny_tokenizer, always_right, solutions[:1], **mc)
    assert rows["soft_labels"] == [[1.0] * len(steps) for steps in rows["completions"]]
    question = gsm8k.GSM8KProblem(question="2 + 2?", answer="4", prompt="What is 2 + 2?\n")
    with pytest.raises(ValueError, match=r"preference_pairs: problem 0 is a GSM8KProblem: its verdict\(\) is None: no "
                                         r"step checker \(on GSM8K the task's label\(\) gives them\): pass verdicts="):
        preference_pairs([question], [["Answer: 4", "Answer: 5"]])
    # problem_mc_step_labels takes no verdicts (a TypeError in mc_step_labels): it names the call that needs none
    with pytest.raises(ValueError, match=r"problem_mc_step_labels: problem 0 is a GSM8KProblem: .*: "
                                         r"mc_step_labels\(model, tokenizer, prompts, step_lists, is_correct\) labels "
                                         r"without a checker$"):
        problem_mc_step_labels(tiny_model, tiny_tokenizer, [question], [["Answer: 4"]], **mc)


def test_step_dpo_pairs_take_a_gold_solution_of_none_as_no_gold(caplog):
    """A user's problem class that declares gold_solution and leaves it None failed inside step_spans ("text must be a
    str, got NoneType"), naming neither the problem nor the field: None is no gold, its pairs left out and counted."""
    import types

    steps = ["12 - 5 = 7", "\n7 + 6 = 12", "\nThe answer is 12"]
    verdicts = [[Verdict([True, False, False], 1, False, steps=steps)]]
    problems = [types.SimpleNamespace(prompt="Compute 12 - 5 + 6.\n", gold_solution=None)]
    with caplog.at_level(logging.WARNING):
        assert len(step_dpo_pairs(problems, [["".join(steps)]], verdicts=verdicts, delimiter="\n")) == 0
    assert "step_dpo_pairs: built 0 pairs; left out: 1 wrong step with no right step to pair" in caplog.text


def test_a_flat_list_of_solution_texts_is_named_as_that_whatever_its_length():
    """A user's trial: one text per problem (not a list of them) for one problem and two texts got "1 problems but 2
    lists of solutions"; with as many texts as problems it got the str message."""
    from stepdpo_lite.tutorial import labelling
    p = toyworld.make_problems(1, seed=0)[0]
    for texts in ([p.gold_solution], [p.gold_solution, p.gold_solution]):
        with pytest.raises(ValueError, match=r"solutions\[0\] is one str; give a list of solutions per problem"):
            labelling.preference_pairs([p], texts)


def test_a_broken_verdict_made_in_a_tasks_verdict_names_the_problem_and_solution():
    """A user's trial (a time-conversion task): a Verdict its verdict() made with error_kinds as one str raised
    "Verdict: error_kinds must be a list ..." from inside the builder, naming no problem or solution, though
    docs/own_task.md says the builders name them. A bug of another kind in the task's code passes unchanged."""
    problem = toyworld.make_problems(1, seed=0)[0]
    slip = toyworld.corrupt_solution(problem, 0, "arithmetic", random.Random(0))

    class KindsAsOneStr(OwnProblem):
        def verdict(self, solution):
            v = super().verdict(solution)
            return Verdict(v.step_labels, v.first_error, v.answer_correct, "arithmetic", v.steps)

    class Buggy(OwnProblem):
        def verdict(self, solution):
            raise KeyError("a bug in the task")

    for build in (stepwise_rows, outcome_rows, preference_pairs, step_dpo_pairs):
        with pytest.raises(ValueError) as refused:
            build([OwnProblem(problem), KindsAsOneStr(problem)], [[slip], ["  ", slip]])
        assert str(refused.value) == (f"{build.__name__}: problem 1, solution 1: Verdict: error_kinds must be a list "
                                      "(one item per step), got str 'arithmetic'")
        assert isinstance(refused.value.__cause__, ValueError)  # chained: the traceback shows the task's line
        with pytest.raises(KeyError, match="a bug in the task"):
            build([Buggy(problem)], [[slip]])


def test_every_builder_with_a_delimiter_checks_it_against_the_verdicts_own_steps(tiny_model, tiny_tokenizer,
                                                                                 monkeypatch):
    """A user's trial: verdicts whose steps were split at "\\n", with preference_pairs left at "\\n\\nStep", were
    refused at an output row ("preference: record 0: ... split at '\\n\\n' it has 2 steps: is that its
    delimiter?", a guess that fitted by accident). Each builder that takes delimiter= checks it up front, naming the
    problem, the solution and the counts, and says what the verdict's steps open with."""
    import types

    gold = "Step 1: 1 * 60 = 60\n\nStep 2: 60 + 2 = 62\n\nAnswer: 62"
    slip = ["Step 1: 1 * 60 = 60", "\nStep 2: 60 + 1 = 61\n\nAnswer: 61"]  # split at "\nStep"
    problems = [types.SimpleNamespace(prompt="Problem: convert 1 h 2 min to minutes.\n", gold_solution=gold)]
    verdicts = [[Verdict([True] * 2, -1, True, steps=extract_steps(gold)),
                 Verdict([True, False], 1, False, [None, "arithmetic"], slip)]]
    solutions = [[gold, "".join(slip)]]
    said = ("problem 0, solution 1: its verdict has 2 steps but the delimiter '\\n\\nStep' splits the text into 1 "
            "step: pass delimiter= the one your verdicts' steps were split by (its step 2 opens with '\\nStep', "
            "which splits the text into them: delimiter='\\nStep')")
    for build in (preference_pairs, step_dpo_pairs):
        with pytest.raises(ValueError) as refused:
            build(problems, solutions, verdicts=verdicts)
        assert str(refused.value) == f"{build.__name__}: {said}"
    toy = toyworld.make_problems(1, seed=0)[0]  # the checker's own verdicts, split at the default, before the rollouts
    monkeypatch.setattr(labelling, "mc_step_labels", lambda *a, **k: pytest.fail("rolled out before the check"))
    with pytest.raises(ValueError, match=r"problem_mc_step_labels: problem 0, solution 0: its verdict has \d+ steps "
                                         r"but the delimiter '\\n' splits the text into \d+ steps: pass "
                                         r"delimiter= the one your verdicts' steps were split by \(its steps 2..\d+ "
                                         r"open with '\\n\\nStep', "):
        problem_mc_step_labels(tiny_model, tiny_tokenizer, [toy], [[toy.gold_solution]], n=1, delimiter="\n",
                               progress=False)
    with pytest.raises(ValueError, match=r"splits the text into 1 step: pass delimiter= the one your verdicts' steps "
                                         r"were split by \(its step 2 opens with '\\n'\)$"):  # no "\n..." splits it
        preference_pairs(problems, [[gold, "".join(slip[:1] + ["\n60 + 1 = 61\nAnswer: 61"])]], verdicts=[[
            verdicts[0][0], Verdict([True, False], 1, False, steps=slip[:1] + ["\n60 + 1 = 61\nAnswer: 61"])]])
    followed = [[Verdict([True] * 2, -1, True, steps=extract_steps(gold, "\nStep")), verdicts[0][1]]]
    assert len(preference_pairs(problems, solutions, verdicts=followed, delimiter="\nStep")) == 1  # the advice


def test_the_delimiter_hint_names_the_steps_opening_with_its_word_before_the_bare_whitespace():
    """A verdict split at "\\n\\nStep" whose text has no "\\n\\nAnswer" line is split into its steps by "\\n\\n"
    too; the hint named "\\n\\n", which then split the next solution's answer line off (one step too many)."""
    import types

    right = "Step 1: 1 * 60 = 60\n\nStep 2: 60 + 2 = 62\nAnswer: 62"  # its answer line not split off
    wrong = "Step 1: 1 * 60 = 60\n\nStep 2: 60 + 1 = 61\n\nAnswer: 61"
    problems = [types.SimpleNamespace(prompt="Problem: convert 1 h 2 min to minutes.\n")]
    verdicts = [[Verdict([True] * 2, -1, True, steps=extract_steps(right)),
                 Verdict([True, False], 1, False, steps=extract_steps(wrong))]]
    with pytest.raises(ValueError) as refused:
        preference_pairs(problems, [[right, wrong]], verdicts=verdicts, delimiter="\n\nSTEP")
    assert str(refused.value) == ("preference_pairs: problem 0, solution 0: its verdict has 2 steps but the delimiter "
                                  "'\\n\\nSTEP' splits the text into 1 step: pass delimiter= the one your verdicts' "
                                  "steps were split by (its step 2 opens with '\\n\\nStep', which splits the text "
                                  "into them: delimiter='\\n\\nStep')")
    assert len(extract_steps(wrong, "\n\n")) == 3  # the bare whitespace would not have split the next one right
    assert len(preference_pairs(problems, [[right, wrong]], verdicts=verdicts, delimiter="\n\nStep")) == 1


def test_the_pair_builders_split_a_verdict_without_steps_at_their_delimiter():
    """Verdicts without steps (docs/own_task.md: the builders split the text) were split at the default, whatever
    delimiter= said: "\\n"-lined solutions with delimiter="\\n" were refused ("the verdict's 3 step labels do not
    match the solution's 1 steps")."""
    import types

    texts = ["12 - 5 = 7\n7 + 6 = 13\nThe answer is 13", "12 - 5 = 7\n7 + 6 = 12\nThe answer is 12"]
    verdicts = [[Verdict([True] * 3, -1, True), Verdict([True, False, False], 1, False)]]
    problems = [types.SimpleNamespace(prompt="Compute 12 - 5 + 6.\n", gold_solution=None)]
    pairs = preference_pairs(problems, [texts], verdicts=verdicts, delimiter="\n")
    assert pairs["rejected_step_labels"] == [[True, False, True]]
    (pair,) = step_dpo_pairs(problems, [[texts[1], texts[0]]], verdicts=[verdicts[0][::-1]], delimiter="\n")
    assert (pair["chosen"], pair["rejected"]) == ("\n7 + 6 = 13", "\n7 + 6 = 12")


class Lines:
    """A problem of a task of one's own whose steps are lines (docs/own_task.md): its verdict splits at "\\n"."""
    prompt = "Add 1 and 2.\n"

    def is_correct(self, solution):
        return solution.endswith("= 3")

    def verdict(self, solution):
        lines, right = solution.split("\n"), self.is_correct(solution)
        return Verdict([True, right], -1 if right else 1, right, [None, None if right else "arithmetic"],
                       [lines[0]] + ["\n" + line for line in lines[1:]])


def test_datasets_by_split_takes_the_delimiter_of_a_task_whose_steps_are_lines():
    """A task of one's own whose steps are lines could not build notebook 01's datasets: the pair builders said "pass
    delimiter=", which datasets_by_split did not take (a TypeError), and the hint named '\\nb' (the first word of a
    two-step solution's one later step, "\\nb = 1 + 2 = 3") where '\\n' was meant."""
    problems, solutions = {"train": [Lines()]}, {"train": [["a = 1\nb = 1 + 2 = 3", "a = 1\nb = 1 + 2 = 4"]]}
    with pytest.raises(ValueError, match=r"stepwise_rows: problem 0, solution 0: .* \(its step 2 opens with '\\n', "
                                         r"which splits the text into them: delimiter='\\n'\)$"):
        datasets_by_split(problems, solutions, {"train": None})
    datasets = datasets_by_split(problems, solutions, {"train": None}, delimiter="\n")
    assert datasets["train_preference"]["rejected_step_labels"] == [[True, False]]
    assert (datasets["train_step_dpo"]["chosen"], datasets["train_step_dpo"]["rejected"]) == (["\nb = 1 + 2 = 3"],
                                                                                              ["\nb = 1 + 2 = 4"])
    # verdicts without their steps (labels only): every builder splits the texts at the delimiter, the stepwise and
    # outcome rows too (they split at the default: "2 step labels do not match the solution's 1 steps")
    labels_only = {"train": [[Verdict([True, True], -1, True), Verdict([True, False], 1, False)]]}
    datasets = datasets_by_split(problems, solutions, labels_only, delimiter="\n")
    assert datasets["train_stepwise"]["completions"] == [["a = 1", "\nb = 1 + 2 = 3"], ["a = 1", "\nb = 1 + 2 = 4"]]
    assert datasets["train_outcome"]["step_labels"] == [[True, True], [True, False]]
    assert datasets["train_preference"]["rejected_step_labels"] == [[True, False]]


TOY = toyworld.Problem(7, (("+", 5), ("*", 3), ("-", 4)))  # gold: 12, 36, 32
EARLY = "Step 1: 7 + 5 = 13\n\nStep 2: 13 * 3 = 39\n\nStep 3: 39 - 4 = 35\n\nAnswer: 35"  # a slip at step 1
LATE = "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nStep 3: 36 - 4 = 30\n\nAnswer: 30"  # a slip at step 3


def test_both_preference_builders_give_monte_carlo_labels_the_same_mistake_labels():
    """Monte-Carlo labels need not stay False after the first wrong step ([F, T, F]: a rollout recovered after step
    2). preference_pairs gave them the rejected labels [F, T, T] (Verdict.mistake_labels: the first False only),
    preference_pairs_from_stepwise [F, T, F] (the drops of the labels), for the same rows."""
    solutions = [[TOY.gold_solution, EARLY]]
    verdicts = [[Verdict([True] * 3, -1, True), Verdict([False, True, False], 0, False)]]  # no kinds
    pairs = preference_pairs([TOY], solutions, verdicts=verdicts)
    assert pairs["rejected_step_labels"] == [[False, True, False]]
    assert pairs[:] == preference_pairs_from_stepwise(stepwise_rows([TOY], solutions, verdicts=verdicts))[:]


def test_preference_pairs_leave_out_a_text_whose_copies_are_labelled_two_ways(caplog):
    """Copies of one text carry their own Monte-Carlo labels: preference_pairs kept the last copy's verdict, so that
    its pairs depended on the samples' order, and logged only "1 repeated solution". Such a text is left out and
    counted, as preference_pairs_from_stepwise leaves it; copies labelled alike are still used once."""
    gold = Verdict([True] * 3, -1, True)
    late = Verdict([True, True, False], 2, False)
    copies = [Verdict([True, True, False], 2, False), Verdict([False, False, False], 0, False)]
    for order in (copies, copies[::-1]):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
            pairs = preference_pairs([TOY], [[TOY.gold_solution, EARLY, LATE, EARLY]],
                                     verdicts=[[gold, order[0], late, order[1]]], max_pairs_per_problem=None)
        assert pairs["rejected"] == [LATE] and pairs["rejected_step_labels"] == [[True, True, False]]
        assert caplog.messages == ["preference_pairs: built 1 pair; left out: 1 repeated solution, 1 solution "
                                   "labelled two ways"]
    alike = preference_pairs([TOY], [[TOY.gold_solution, EARLY, LATE, EARLY]],
                             verdicts=[[gold, copies[1], late, copies[1]]], max_pairs_per_problem=None)
    assert sorted(alike["rejected"]) == sorted([EARLY, LATE])


def test_pairs_over_max_pairs_per_problem_are_counted_as_left_out(caplog):
    """The combinations that max_pairs_per_problem cut were dropped without a word ("built 1 pair" was all), though
    the builders log what they leave out, as prm_pairs counts rejected_over_max_per_problem."""
    solutions = [[TOY.gold_solution, EARLY, LATE]]  # two wrong solutions: two pairs of each kind
    with caplog.at_level(logging.INFO, logger="stepdpo_lite.data"):
        assert len(preference_pairs([TOY], solutions, max_pairs_per_problem=1)) == 1
        assert len(step_dpo_pairs([TOY], solutions, max_pairs_per_problem=1)) == 1
        assert len(preference_pairs_from_stepwise(stepwise_rows([TOY], solutions), max_pairs_per_problem=1)) == 1
        assert len(preference_pairs([TOY], solutions, max_pairs_per_problem=2)) == 2
    for who in ("preference_pairs", "step_dpo_pairs", "preference_pairs_from_stepwise"):
        assert f"{who}: built 1 pair; left out: 1 pair over max per problem" in caplog.messages
    assert caplog.messages[-1] == "preference_pairs: built 2 pairs"  # none over: nothing said


def test_the_pairs_drawn_under_a_cap_are_drawn_from_all_combinations_by_seed_and_prompt():
    """max_pairs_per_problem draws from every (chosen, rejected) combination: taken in order, a cap of 3 paired the
    first right solution with every wrong one and left the other right ones out, whatever the seed."""
    good, bad = ["c1", "c2", "c3"], ["r1", "r2", "r3"]
    every = {(c, r) for c in good for r in bad}
    assert sorted(drawn_pairs(good, bad, "P", 0, None)) == sorted(every)
    by_seed = {tuple(drawn_pairs(good, bad, "P", seed, 3)) for seed in range(8)}
    by_prompt = {tuple(drawn_pairs(good, bad, prompt, 0, 3)) for prompt in "ABCDEFGH"}
    assert len(by_seed) > 1 and len(by_prompt) > 1
    assert all(len(set(draw)) == 3 and set(draw) <= every for draw in by_seed | by_prompt)
    assert drawn_pairs(good, bad, "P", 5, 3) == drawn_pairs(good, bad, "P", 5, 3)  # seeded: the same draw again


def _call(source: str, opening: str) -> str:
    """The text of the call that ``opening`` ("name(") opens in ``source``, up to its closing parenthesis."""
    start = source.index(opening) + len(opening)
    depth = 1
    for end, char in enumerate(source[start:], start):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if not depth:
            return source[start:end]
    raise AssertionError(f"{opening} is not closed")


def test_notebook_01s_monte_carlo_comparison_rolls_out_as_many_tokens_as_its_labels():
    """Notebook 01's comparison of Monte-Carlo labels with the checker's called problem_mc_step_labels without
    max_new_tokens: mc_step_labels' 160 tokens cut the rollouts of a profile with longer solutions, which then
    reach no answer, and the soft labels leaned towards "wrong"; task.label, in the cell above, gets the profile's."""
    import nbformat
    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "01_data_prep.ipynb"
    source = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    for opening in ("labelling.problem_mc_step_labels(", "task.label("):
        assert "max_new_tokens=profile.max_new_tokens" in _call(source, opening), opening


def test_step_dpo_pairs_refuses_a_use_gold_that_is_no_bool():
    """use_gold="no" is truthy: the gold solution's steps were used as chosen steps, against what was asked."""
    problem = toyworld.make_problems(1, seed=0)[0]
    with pytest.raises(ValueError, match="step_dpo_pairs: use_gold must be True or False, got 'no'"):
        step_dpo_pairs([problem], [[problem.gold_solution]], use_gold="no")


def test_builders_refuse_more_lists_of_verdicts_than_problems():
    """One list of verdicts per problem: a list too many (another sample's?) is refused, not left unread."""
    problems, solutions, verdicts = _split(2, "train", 0)
    for build in (stepwise_rows, preference_pairs):
        with pytest.raises(ValueError, match=f"{build.__name__}: 1 problems but 2 lists of verdicts"):
            build(problems[:1], solutions[:1], verdicts=verdicts)


class PartlyChecked(OwnProblem):
    """A problem of one's own whose verdict() is None for every solution but its gold one."""

    def verdict(self, solution):
        return super().verdict(solution) if solution == self.toy.gold_solution else None


def test_a_verdict_of_none_for_one_solution_is_named_as_no_step_checker():
    problems, solutions, _ = _split(1, "train", 0)
    with pytest.raises(ValueError, match=r"stepwise_rows: problem 0 is a PartlyChecked: its verdict\(\) is None: no "
                                         r"step checker"):
        stepwise_rows([PartlyChecked(problems[0])], solutions)


def test_builders_refuse_a_verdict_without_steps_with_fewer_labels_than_the_texts_steps():
    problems, solutions, verdicts = _split(1, "train", 0)
    labels = verdicts[0][0].step_labels
    short = Verdict(labels[:-1], -1, True)  # no steps of its own: the text is split at the delimiter
    with pytest.raises(ValueError, match=rf"stepwise_rows: problem 0, solution 0: the verdict's {len(labels) - 1} step "
                                         rf"labels do not match the solution's {len(labels)} steps"):
        stepwise_rows(problems, [solutions[0][:1]], verdicts=[[short]])


def test_builders_refuse_a_verdict_whose_steps_join_into_the_text_but_for_its_whitespace():
    problems, solutions, verdicts = _split(1, "train", 0)
    with pytest.raises(ValueError, match="stepwise_rows: problem 0, solution 0: the verdict's steps do not join into "
                                         "the solution's text"):
        stepwise_rows(problems, [[solutions[0][0] + "\n"]], verdicts=[verdicts[0][:1]])


def test_toy_gold_vs_error_pairs_slip_at_every_step_the_last_one_too():
    from stepdpo_lite.tutorial.labelling import toy_gold_vs_error_pairs
    rows = toy_gold_vs_error_pairs(20, seed=0, min_ops=2, max_ops=2)
    assert {row["rejected_step_labels"].index(False) for row in rows} == {0, 1}


def test_step_dpo_pairs_choose_a_sampled_right_step_before_golds():
    """Gold's step k is the chosen only where no sample took a right step k after the prefix."""
    import types

    problem = types.SimpleNamespace(prompt="Compute 12 - 5 + 6.\n", gold_solution="12 - 5 = 7\n7 + 6 = 13\nAnswer 13")
    steps = {"right": ["12 - 5 = 7", "\n7 + 6 = 13 (sum)", "\nAnswer 13"],
             "wrong": ["12 - 5 = 7", "\n7 + 6 = 12", "\nAnswer 12"]}
    verdicts = [[Verdict([True] * 3, -1, True, steps=steps["right"]),
                 Verdict([True, False, False], 1, False, steps=steps["wrong"])]]
    pairs = step_dpo_pairs([problem], [["".join(s) for s in steps.values()]], verdicts=verdicts, delimiter="\n")
    assert [(r["chosen"], r["chosen_source"]) for r in pairs] == [("\n7 + 6 = 13 (sum)", "sampled")]


def test_step_dpo_pairs_draw_under_a_cap_by_the_problems_prompt():
    """Each problem's draw is seeded by its prompt too (as preference_pairs'): with one seed for all, every problem
    with the same two pairs kept the pair in the same place."""
    problems, rng = toyworld.make_problems(8, "train", seed=0, min_ops=3, max_ops=3), random.Random(0)
    solutions = [[p.gold_solution] + [toyworld.corrupt_solution(p, k, "arithmetic", rng) for k in (0, 1)]
                 for p in problems]
    pairs = step_dpo_pairs(problems, solutions, max_pairs_per_problem=1)
    assert len(pairs) == 8 and set(pairs["step_index"]) == {0, 1}


def test_datasets_by_split_refuses_the_splits_in_another_order():
    built = {split: _split(1, split, seed) for split, seed in (("train", 0), ("test", 1))}
    problems, solutions, verdicts = ({split: parts[i] for split, parts in built.items()} for i in range(3))
    with pytest.raises(ValueError, match=r"datasets_by_split: solutions must be a dict with the splits of problems, "
                                         r"\['train', 'test'\], in their order"):
        datasets_by_split(problems, dict(reversed(solutions.items())), verdicts)


def test_datasets_by_split_draws_the_preference_pairs_by_its_seed():
    problems, rng = toyworld.make_problems(1, "train", seed=0, min_ops=3, max_ops=3), random.Random(0)
    wrong = list(dict.fromkeys(toyworld.corrupt_solution(problems[0], k % 3, "arithmetic", rng) for k in range(9)))
    solutions = [[problems[0].gold_solution] + wrong]  # more combinations than max_pairs_per_problem (4)
    verdicts = [[toyworld.check(problems[0], s) for s in solutions[0]]]
    assert len(wrong) > 4
    draws = []
    for seed in range(3):
        built = datasets_by_split({"train": problems}, {"train": solutions}, {"train": verdicts}, seed=seed)
        draws.append(built["train_preference"]["rejected"])
        assert draws[-1] == preference_pairs(problems, solutions, verdicts=verdicts, seed=seed)["rejected"]
    assert len({tuple(d) for d in draws}) > 1


def test_verdict_summary_lists_the_first_mistakes_most_common_first():
    copy, slip = Verdict([False], 0, False, ["copy"]), Verdict([False], 0, False, ["arithmetic"])
    assert list(verdict_summary([[slip, copy, copy]])["first_mistakes"]) == ["copy", "arithmetic"]


def test_label_agreement_refuses_a_label_above_1():
    with pytest.raises(ValueError, match=r"label_agreement: solution 0, step 1: a label must be a bool or a share in "
                                         r"\[0, 1\], got 3"):
        label_agreement([[1.0, 3]], [[True, True]])  # a count of right rollouts, not a share


def test_the_delimiter_message_says_other_steps_when_it_splits_the_text_into_as_many():
    import types

    verdicts = [[Verdict([True, True], -1, True, steps=["x = 1\ny", " = 2"])]]
    with pytest.raises(ValueError, match=re.escape("stepwise_rows: problem 0, solution 0: its verdict has 2 steps but "
                                                   "the delimiter '\\n' splits the text into 2 other steps")):
        stepwise_rows([types.SimpleNamespace(prompt="p")], [["x = 1\ny = 2"]], verdicts=verdicts, delimiter="\n")
