"""Bad input refused with a ValueError that names the argument (a review, 2026-12-04)."""

from types import SimpleNamespace

import pytest

from stepdpo_lite.tutorial import (budget, credit, diagnostics, labelling, reward_reports, search, step_generation,
                                   toyworld)


@pytest.mark.parametrize("index, match", [(-1, "index must be an int >= 0"), (True, "index must be an int >= 0"),
                                          (2, "index 2, but there are 2 rejected solutions")])
def test_credit_example_refuses_an_index_that_names_no_pair(index, match):
    """-1 drew the last pair and recorded it as pair -1, True pair 1; 2 was an IndexError."""
    out = {"DPO": {"rejected": [[0.5, -0.5], [-0.5]]}}
    assert credit.credit_example(out, [[True, False], [False]], 1)["pair"] == 2
    with pytest.raises(ValueError, match=f"credit_example: {match}"):
        credit.credit_example(out, [[True, False], [False]], index)


def test_credit_example_refuses_rewards_of_other_pairs():
    with pytest.raises(ValueError, match="credit_example: DPO: rewards of 1 rejected solutions for 2 label lists"):
        credit.credit_example({"DPO": {"rejected": [[0.5]]}}, [[True], [False]], 0)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), None, True, "0.0"])
def test_format_step_rewards_refuses_a_threshold_that_is_no_number(threshold):
    """A NaN threshold marked every right step as a disagreement with the checker (reward >= NaN is False)."""
    with pytest.raises(ValueError, match="format_step_rewards: threshold must be a finite number"):
        diagnostics.format_step_rewards("p", ["Step 1: 1 + 1 = 2"], [1.0], [True], threshold)


def test_format_step_rewards_refuses_one_str_of_steps():
    with pytest.raises(ValueError, match="format_step_rewards: steps: expected a list of steps"):
        diagnostics.format_step_rewards("p", "ab", [1.0, 2.0], [True, True], 0.0)


@pytest.mark.parametrize("kw, name", [(dict(batch_size=0), "batch_size must be an int >= 1"),
                                      (dict(batch_size=-4), "batch_size must be an int >= 1"),
                                      (dict(batch_size=True), "batch_size must be an int >= 1"),
                                      (dict(batch_size=2.0), "batch_size must be an int >= 1"),
                                      (dict(rows=-8), "rows must be an int >= 0"),
                                      (dict(tokens_per_row=0), "tokens_per_row must be an int >= 1"),
                                      (dict(tokens_per_s=float("inf")), "tokens_per_s must be > 0")])
def test_generation_seconds_refuses_counts_that_are_not_counts(kw, name):
    """batch_size 0, -4 or True was taken as 1; -8 rows gave a negative estimate, an infinite speed 0 s."""
    args = dict(rows=65, tokens_per_row=512, tokens_per_s=1024.0, batch_size=32)
    assert budget.generation_seconds(**args) == pytest.approx(48.0)
    assert budget.generation_seconds(**{**args, "rows": 0}) == 0.0
    with pytest.raises(ValueError, match=f"generation_seconds: {name}"):
        budget.generation_seconds(**{**args, **kw})


@pytest.mark.parametrize("verdict", [None, "True", 2, 0.5])
def test_mc_step_labels_refuses_an_answer_check_that_returns_no_bool(monkeypatch, verdict):
    """is_correct returning None (an answer it could not grade) counted the rollout as wrong, 2 or "True" as right."""
    monkeypatch.setattr(labelling.generation, "sample_solutions", lambda m, t, prompts, n, **kw: [["x"] * n
                                                                                                   for _ in prompts])
    steps = [["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 + 1 = 3"]]
    ok = labelling.mc_step_labels(None, None, ["p"], steps, lambda i, text: "x" in text, n=2, progress=False)
    assert ok["soft_labels"] == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="mc_step_labels: solution 0, rollout 0 after step 1: is_correct must "
                                         "return a bool"):
        labelling.mc_step_labels(None, None, ["p"], steps, lambda i, text: verdict, n=2, progress=False)


@pytest.mark.parametrize("seed", [True, -1, 1.5, "0"])
def test_the_searches_refuse_a_seed_that_is_no_int(seed):
    """seed=True seeded torch with 1 (a bool is an int), 1.5 was torch's TypeError after the checks."""
    with pytest.raises(ValueError, match="beam_search: seed must be an int >= 0"):
        search.beam_search(None, None, None, [], seed=seed, sampler=lambda *a: [])
    with pytest.raises(ValueError, match="generate: seed must be an int >= 0 or None"):
        step_generation.generate(None, None, ["Problem: 1 + 1\n"], seed=seed)
    with pytest.raises(ValueError, match="sample_candidates: seed must be an int >= 0"):
        step_generation.sample_candidates(None, None, [], 1, seed=seed)
    prm = SimpleNamespace(score_solutions=lambda prompts, step_lists: [])  # the protocol's method, checked first
    for run in (lambda: search.beam_search(None, None, prm, [], seed=0, sampler=lambda *a: []),  # returned []
                lambda: search.dvts(None, None, prm, [], seed=0, sampler=lambda *a: []),
                lambda: step_generation.sample_candidates(None, None, [], 1, seed=0)):
        with pytest.raises(ValueError, match=r"(beam_search|sample_candidates): problems is empty"):
            run()


@pytest.mark.parametrize("seed", [None, True, -1, 1.5])
def test_auroc_difference_refuses_a_seed_that_is_no_int(seed):
    """seed=None drew other resamples on every run (a different interval, silently), True those of seed 1."""
    a, b, y = [0.9, 0.2, 0.8, 0.1, 0.4], [0.1, 0.8, 0.7, 0.3, 0.5], [True, False, True, False, True]
    assert reward_reports.auroc_difference(a, b, y, n_boot=20, seed=3) == reward_reports.auroc_difference(
        a, b, y, n_boot=20, seed=3)
    with pytest.raises(ValueError, match="auroc_difference: seed must be an int >= 0"):
        reward_reports.auroc_difference(a, b, y, n_boot=20, seed=seed)


@pytest.mark.parametrize("seed", [True, 1.0, None, -1])
@pytest.mark.parametrize("build", [labelling.preference_pairs, labelling.step_dpo_pairs])
def test_the_pair_builders_refuse_a_seed_that_is_no_int(build, seed):
    """The draw is seeded by f"{seed}:{prompt}": seed=True or 1.0 drew other pairs than seed=1, without a word."""
    problems = toyworld.make_problems(2, seed=0)
    solutions = [[p.gold_solution] for p in problems]
    assert len(build(problems, solutions, seed=1)) == 0  # no wrong solution: no pair, but no error either
    with pytest.raises(ValueError, match=f"{build.__name__}: seed must be an int >= 0"):
        build(problems, solutions, seed=seed)
