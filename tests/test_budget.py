"""budget: generation estimates from counts, the Monte-Carlo cap, runtime/peak-memory lines after training."""
import math

import pytest

from stepdpo_lite.tutorial import budget, profiles, tasks


def test_generation_seconds_is_an_upper_bound_from_counts():
    assert budget.generation_seconds(64, 512, 1024.0, batch_size=32) == pytest.approx(32.0)
    assert budget.generation_seconds(65, 512, 1024.0, batch_size=32) == pytest.approx(48.0)  # partial batch: full
    assert budget.generation_seconds(10, 512, None) is None
    with pytest.raises(ValueError, match="tokens_per_s"):
        budget.generation_seconds(1, 1, 0.0)
    assert budget.at_most(None).startswith("time unknown") and budget.at_most(7200) == "<= 2.0 h"
    for bad in (math.nan, -3, math.inf, "90", True):
        with pytest.raises(ValueError, match="budget: seconds must be a number >= 0"):
            budget.at_most(bad)
    assert budget.format_duration(30) == "30 s" and budget.format_duration(600) == "10.0 min"


def test_plan_keeps_everything_within_budget_or_without_a_speed():
    rows = {"train": [10] * 10, "validation": [10] * 2, "test": [10] * 2}
    for kw in (dict(tokens_per_s=None, budget_minutes=1), dict(tokens_per_s=100.0, budget_minutes=None),
               dict(tokens_per_s=100.0, budget_minutes=math.inf), dict(tokens_per_s=1e6, budget_minutes=1)):
        plan = budget.plan_generation(rows, tokens_per_row=100, **kw)
        assert not plan.capped and plan.keep == {"train": 10, "validation": 2, "test": 2}
    assert "140 sequences" in str(plan) and "within the budget of 1 min" in str(plan)


def test_plan_caps_every_split_by_the_same_share_and_says_how_to_label_more():
    rows = {"train": [8] * 100, "validation": [8] * 20, "test": [8] * 20}  # 1,120 rows x 100 tokens
    plan = budget.plan_generation(rows, tokens_per_row=100, tokens_per_s=1000.0, budget_minutes=1, what="MC")
    assert plan.capped and plan.seconds() <= 60 < plan.seconds(plan.full)
    assert plan.keep == {"train": 54, "validation": 10, "test": 10}  # 592 rows = 59.2 s; 55 % would be 60.8 s
    cut = plan.apply({"train": list(range(100)), "validation": list(range(20)), "test": list(range(20))})
    assert cut["train"] == list(range(54)) and len(cut["test"]) == 10
    text = str(plan)
    assert "over the budget of 1 min" in text and "first 54 of 100 train" in text
    # a plain plan names no notebook's setting: it named notebook 01's MC_BUDGET_MINUTES (labelling_plan adds it)
    assert text.splitlines()[1].endswith("problems (592 sequences, <= 59 s)") and "MC_BUDGET_MINUTES" not in text
    tiny = budget.plan_generation({"train": [1000], "test": [1000]}, tokens_per_row=100, tokens_per_s=1.0,
                                  budget_minutes=1)
    assert tiny.keep == {"train": 1, "test": 1}  # never an empty split


def test_plan_says_when_even_one_problem_a_split_is_over_the_budget():
    """One problem a split is the least a plan keeps: over the budget, it said "labelling only the first 1 of 1 train
    problems (<= 55.6 h)" and left the reader to see that this too was over; with one problem a split, nothing
    capped, it said "within the budget of 1 min"."""
    for rows in ({"train": [1000], "test": [1000]}, {"train": [1000] * 3, "test": [1000]}):
        plan = budget.plan_generation(rows, tokens_per_row=100, tokens_per_s=1.0, budget_minutes=1)
        assert plan.seconds() > 60 and plan.keep == {"train": 1, "test": 1} and "within" not in str(plan)
        assert str(plan).endswith("\n  still over the budget of 1 min: one problem per split is the least it labels")
    fits = budget.plan_generation({"train": [8] * 100, "test": [8] * 20}, tokens_per_row=100, tokens_per_s=1000.0,
                                  budget_minutes=1)
    assert fits.capped and fits.seconds() <= 60 and not fits.note and "still over" not in str(fits)


class _EightRowsAProblem:
    """A task whose every problem needs 8 rollout rows."""

    def rollout_rows(self, problems, n_samples=1, n_rollouts=8, solutions=None):
        return [8] * len(problems)


def test_labelling_plan_keeps_the_budgets_note_beside_its_own():
    """Validation and test raised to ``EVAL_MIN_PROBLEMS`` on a plan whose one problem a split is already over the
    budget: both notes are printed, each on its line."""
    problems = {"train": list(range(50)), "validation": list(range(20)), "test": list(range(20))}
    plan = tasks.labelling_plan(_EightRowsAProblem(), problems, n_samples=1, n_rollouts=8, tokens_per_rollout=100,
                                tokens_per_s=1.0, budget_minutes=1)
    assert plan.keep == {"train": 1, "validation": tasks.EVAL_MIN_PROBLEMS, "test": tasks.EVAL_MIN_PROBLEMS}
    lines = str(plan).splitlines()
    assert lines[1].endswith("; raise MC_BUDGET_MINUTES (float('inf'): no cap) to label more")  # notebook 01's
    assert lines[-2] == "  still over the budget of 1 min: one problem per split is the least it labels"
    assert lines[-1].startswith("  validation and test keep at least 8 problems each")
    # raised back to every problem: nothing capped, over the budget all the same (it said "within the budget")
    eight = {"train": [0], "validation": list(range(8)), "test": list(range(8))}
    whole = tasks.labelling_plan(_EightRowsAProblem(), eight, n_samples=1, n_rollouts=8, tokens_per_rollout=100,
                                 tokens_per_s=100.0, budget_minutes=1)
    assert not whole.capped and whole.seconds() > 60 and "within" not in str(whole) and "in all" in str(whole)


def test_labelling_plan_raises_a_small_split_to_all_its_problems_not_beyond():
    problems = {"train": list(range(50)), "validation": list(range(3)), "test": list(range(20))}
    plan = tasks.labelling_plan(_EightRowsAProblem(), problems, n_samples=1, n_rollouts=8, tokens_per_rollout=100,
                                tokens_per_s=1.0, budget_minutes=1)
    assert plan.keep == {"train": 1, "validation": 3, "test": tasks.EVAL_MIN_PROBLEMS}


def test_labelling_plan_pads_to_its_batch_size_and_raises_no_split_it_keeps_whole():
    """Without a budget every problem is kept: no split is raised, so no "keep at least" note; the estimate pads the
    last batch to ``batch_size`` rows, as sampling does (24 rows, one batch of 64)."""
    problems = {"train": [0], "validation": [0], "test": [0]}
    plan = tasks.labelling_plan(_EightRowsAProblem(), problems, n_samples=1, n_rollouts=8, tokens_per_rollout=100,
                                tokens_per_s=100.0, budget_minutes=None, batch_size=64)
    assert plan.keep == {"train": 1, "validation": 1, "test": 1} and not plan.capped
    assert plan.seconds() == 64.0 and "(64 rows a batch)" in str(plan) and "keep at least" not in str(plan)


def test_labelling_plan_after_sampling_counts_the_rollouts_of_the_solutions_given(tiny_tokenizer):
    """With the sampled ``solutions`` the plan counts their rollouts, not the guess before sampling: right answers
    need none."""
    from stepdpo_lite.tutorial.smoke import GSM8K_SLICE

    task = tasks.GSM8KTask(str(GSM8K_SLICE))
    problems = task.splits(2, 1, tokenizer=tiny_tokenizer)
    right = {s: [[f"Step 1: a\n\nStep 2: b\n\nAnswer: {p.answer}"] for p in ps] for s, ps in problems.items()}
    kw = dict(n_samples=1, n_rollouts=8, tokens_per_rollout=100, tokens_per_s=100.0, budget_minutes=None)
    assert all(n > 0 for n in tasks.labelling_plan(task, problems, **kw).rows["train"])  # the guess: every one wrong
    plan = tasks.labelling_plan(task, problems, solutions=right, **kw)
    assert plan.rows == {"train": [0, 0], "validation": [0], "test": [0]} and plan.seconds() == 0


def test_t4_profile_labelling_is_capped_to_its_budget(tiny_tokenizer):
    """The GPU profiles' sizes, at their stated speed: 1,400 problems x 4 samples x steps x 8 rollouts is hours."""
    from stepdpo_lite.tutorial.smoke import GSM8K_SLICE

    t4 = profiles.get_profile("t4-16gb")
    problems = tasks.GSM8KTask(str(GSM8K_SLICE)).splits(100, 40, tokenizer=tiny_tokenizer)
    plan = tasks.labelling_plan(tasks.GSM8KTask(), problems, n_samples=t4.n_samples_per_problem, n_rollouts=8,
                                tokens_per_rollout=t4.max_new_tokens, tokens_per_s=t4.sampling_tokens_per_s,
                                budget_minutes=t4.mc_budget_minutes, batch_size=t4.sample_batch_size)
    assert plan.seconds(plan.full) > 3600 and plan.capped
    # the budget's share (a few validation and test problems, whose samples are often all right or all wrong)
    share = budget.plan_generation(plan.rows, tokens_per_row=t4.max_new_tokens, tokens_per_s=t4.sampling_tokens_per_s,
                                   budget_minutes=t4.mc_budget_minutes, batch_size=t4.sample_batch_size)
    assert share.seconds() <= 20 * 60 and share.keep["validation"] < tasks.EVAL_MIN_PROBLEMS
    # raised for the reward models' evaluation, over the budget, and said so; train keeps its share
    assert plan.keep == {**share.keep, "validation": tasks.EVAL_MIN_PROBLEMS, "test": tasks.EVAL_MIN_PROBLEMS}
    assert plan.seconds() > 20 * 60 and "keep at least 8 problems each" in str(plan)
    assert "Monte-Carlo labelling (8 rollouts" in str(plan) and "tokens/s" in str(plan)


def test_track_prints_runtime_and_on_a_gpu_peak_memory():
    lines = []
    with budget.track("training", out=lines.append) as used:
        sum(range(1000))
    assert used["seconds"] >= 0 and lines[0].startswith("training: ")
    import torch
    assert ("peak GPU memory" in lines[0]) == torch.cuda.is_available()


def test_track_reads_the_peak_gpu_memory_of_the_block_alone(monkeypatch):
    """The GPU branch, taken on a CPU machine too (torch.cuda's calls stubbed): the peak is reset before the block
    and read after it, once the GPU has finished its work."""
    import torch
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: calls.append("read") or 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: int(1.5 * 2**30))
    lines = []
    with budget.track("training", out=lines.append) as used:
        calls.append("block")
    assert calls == ["reset", "block", "synchronize", "read"]
    assert (used["peak_reserved_gib"], used["peak_allocated_gib"]) == (3.0, 1.5)
    assert lines[0].endswith(", peak GPU memory 3.00 GiB reserved (1.50 GiB allocated)")


def test_a_budget_or_speed_that_is_not_positive_is_refused():
    rows = {"train": [10] * 10, "test": [10] * 2}
    for kw, message in ((dict(tokens_per_s=100.0, budget_minutes=-5), "budget_minutes must be > 0"),
                        (dict(tokens_per_s=100.0, budget_minutes=float("nan")), "budget_minutes must be > 0"),
                        (dict(tokens_per_s=float("nan"), budget_minutes=1), "tokens_per_s must be > 0")):
        with pytest.raises(ValueError, match=f"MC: {message}"):  # each would quietly keep one problem a split
            budget.plan_generation(rows, tokens_per_row=100, what="MC", **kw)


def test_a_bool_budget_or_speed_and_bad_row_counts_are_refused():
    rows = {"train": [10] * 100}
    for kw, message in ((dict(tokens_per_s=10.0, budget_minutes=True), "budget_minutes must be > 0"),
                        (dict(tokens_per_s=True, budget_minutes=5), "tokens_per_s must be > 0"),
                        (dict(tokens_per_s=math.inf, budget_minutes=5), "tokens_per_s must be > 0"),
                        (dict(tokens_per_s="100", budget_minutes=5), "tokens_per_s must be > 0"),
                        (dict(tokens_per_s=10.0, budget_minutes="5"), "budget_minutes must be > 0")):
        with pytest.raises(ValueError, match=f"MC: {message}"):  # True was 1 min, or 1 token a second
            budget.plan_generation(rows, tokens_per_row=100, what="MC", **kw)
    for bad in (-10, True, 2.5, float("nan"), None):  # -10 took time off the other problems
        with pytest.raises(ValueError, match=r"MC: rows\['train'\]\[1\] must be an int >= 0"):
            budget.plan_generation({"train": [10, bad]}, tokens_per_row=100, tokens_per_s=10.0, budget_minutes=5,
                                   what="MC")
    with pytest.raises(ValueError, match=r"MC: rows\['train'\]: expected a list of row counts"):
        budget.plan_generation({"train": "888"}, tokens_per_row=100, tokens_per_s=10.0, budget_minutes=5, what="MC")
    for bad in (float("nan"), True):
        with pytest.raises(ValueError, match="generation_seconds: tokens_per_s must be > 0"):
            budget.generation_seconds(10, 10, bad)
    assert budget.plan_generation({"train": [0, 0]}, tokens_per_row=100, tokens_per_s=10.0, budget_minutes=5).keep


def test_format_duration_switches_units_at_90_seconds_and_90_minutes():
    """Seconds up to a minute and a half, minutes up to an hour and a half, then hours: the edges of each unit."""
    assert budget.format_duration(89) == "89 s" and budget.format_duration(90) == "1.5 min"
    assert budget.format_duration(5399) == "90.0 min" and budget.format_duration(5400) == "1.5 h"


def test_plan_refuses_a_budget_of_zero_minutes():
    """0 minutes is no budget to fit: it was planned as one problem a split, quietly."""
    with pytest.raises(ValueError, match="budget_minutes must be > 0"):
        budget.plan_generation({"train": [8, 8]}, tokens_per_row=100, tokens_per_s=100.0, budget_minutes=0)


def test_plan_counts_a_split_missing_from_keep_whole_and_leaves_other_lists_uncut():
    plan = budget.plan_generation({"train": [8] * 100, "test": [8] * 20}, tokens_per_row=100, tokens_per_s=1000.0,
                                  budget_minutes=1)
    assert plan.total_rows({"train": 3}) == 3 * 8 + 20 * 8 and plan.seconds({"test": 0}) == pytest.approx(80.0)
    assert plan.apply({"train": list(range(100)), "extra": [1, 2, 3]})["extra"] == [1, 2, 3]


def test_plan_fitting_the_budget_exactly_is_within_it():
    plan = budget.plan_generation({"train": [6]}, tokens_per_row=100, tokens_per_s=10.0, budget_minutes=1)  # 60 s
    assert not plan.capped and str(plan).endswith("\n  within the budget of 1 min")
    # 4 of 5 rows fit: 2 of 2 train and 2 of 3 test problems, not 1 and 2 (3 rows)
    tie = budget.plan_generation({"train": [1, 1], "test": [1, 1, 1]}, tokens_per_row=1, tokens_per_s=1.0,
                                 budget_minutes=4 / 60)
    assert tie.keep == {"train": 2, "test": 2} and tie.seconds() == pytest.approx(4.0)
