"""The unlikelihood of the wrong steps no Step-DPO correction was found for (a diagnostic of issue 16's rounds)."""

import copy
import random

import pytest
import torch

from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import onpolicy, prm_pairs, toyworld
from stepdpo_lite.tutorial.uncorrected_unlikelihood import UncorrectedUnlikelihoodTrainer, negative_step_ids
from onpolicy_stubs import FAST, THRESHOLD, StubPRM, StubSampler, problem_and_texts

OUTPUT_LAYER = dict(step_pairing="first_token", step_gradient="output_layer")


def test_step_pairs_hand_back_the_states_no_correction_was_found_for():
    p, gold, bad, _ = problem_and_texts()
    prm = StubPRM()
    samples = prm_pairs.label_samples(prm, [p], [[bad]], THRESHOLD, policy="stepwise_dpo")
    policies = {"stepwise_dpo": "stepwise-model"}
    uncorrected = []
    rows, stats = prm_pairs.step_pairs(policies, None, prm, [p], samples, THRESHOLD, tries=3, attempts=1,
                                      sample_fn=StubSampler(p, gold, bad), uncorrected=uncorrected)
    gold_steps, bad_steps = extract_steps(gold), extract_steps(bad)
    assert rows == [] and stats["no_accepted_step"] == 1
    assert uncorrected == [dict(problem_index=0, prompt=p.prompt, prefix=gold_steps[0], step=bad_steps[1],
                                step_index=1)]
    uncorrected = []  # corrected on the second attempt: a pair, and no state left over
    rows, stats = prm_pairs.step_pairs(policies, None, prm, [p], samples, THRESHOLD, tries=3, attempts=2,
                                      sample_fn=StubSampler(p, gold, bad), uncorrected=uncorrected)
    assert len(rows) == 1 and uncorrected == []


def rows_and_states(n=4, wrong=True):
    """Rows with an error at step 2, and one state a row at that step: the wrong step, or the right one (which the
    shipped base writes often, so its unlikelihood is far from 0)."""
    rows, states = [], []
    for i, problem in enumerate(toyworld.make_problems(n, seed=1, min_ops=3, max_ops=4)):
        rejected = toyworld.corrupt_solution(problem, 2, "arithmetic", random.Random(i))
        steps = extract_steps(rejected)
        rows.append(dict(prompt=problem.prompt, chosen=problem.gold_solution, rejected=rejected,
                         chosen_step_labels=[1.0] * len(extract_steps(problem.gold_solution)),
                         rejected_step_labels=[1.0, 1.0, 0.0] + [1.0] * (len(steps) - 3), prm_first_error=2))
        step = steps[2] if wrong else extract_steps(problem.gold_solution)[2]
        states.append(dict(problem_index=i, prompt=problem.prompt, prefix="".join(steps[:2]), step=step, step_index=2))
    return rows, states


def test_the_term_is_the_mean_unlikelihood_of_the_wrong_steps_through_the_output_layer(tmp_path, tiny_base_path):
    """uncorrected_weight w adds w·mean(−log(1 − π(step | prompt + prefix))) over the states (all of them when they
    are fewer than a batch), read against a plain forward; its gradient stops at the final hidden state, so it moves
    only the output layer (tied to the input embeddings). Made through onpolicy.make_trainer, as a round makes it."""
    from stepdpo_lite.tutorial.tiny_models import load_tiny_base
    tiny_model, tok = load_tiny_base(tiny_base_path)
    tok.padding_side = "right"
    rows, states = rows_and_states(wrong=False)
    losses, trainers = {}, {}
    for w in (0.0, 3.0):
        settings = onpolicy.TrainSettings(**OUTPUT_LAYER, uncorrected_weight=w, args=FAST)
        tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, rows, settings,
                                   str(tmp_path / f"w{w}"), ref_model=copy.deepcopy(tiny_model).eval(),
                                   uncorrected=states[:3])
        assert isinstance(tr, UncorrectedUnlikelihoodTrainer) == bool(w)
        batch = tr.data_collator([tr.train_dataset[i] for i in range(4)])
        with torch.no_grad():
            losses[w] = tr.compute_loss(tr.model, batch).item()
        trainers[w] = tr
    want = 0.0
    for s in states[:3]:
        ids, before = tok(s["prompt"] + s["prefix"] + s["step"])["input_ids"], len(tok(s["prompt"] + s["prefix"])[
            "input_ids"])
        with torch.no_grad():
            logits = tiny_model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)[before - 1:].sum()
        want -= torch.log1p(-lp.exp()).item() / 3
    assert want > 0.1
    assert losses[3.0] - losses[0.0] == pytest.approx(3.0 * want, rel=1e-4)

    tr = trainers[3.0]
    tr.model.zero_grad()
    tr.extra_loss(tr.model, batch).backward()
    moved = {n for n, prm in tr.model.named_parameters() if prm.grad is not None and prm.grad.abs().sum() > 0}
    assert moved == {"model.embed_tokens.weight"}  # the output layer, tied to the input embeddings


def test_bad_settings_and_states_are_refused():
    for bad in (dict(step_pairing="first_token"), dict(**OUTPUT_LAYER, uncorrected_weight=-1.0),
                dict(**OUTPUT_LAYER, uncorrected_weight=float("nan"))):
        with pytest.raises(ValueError, match="uncorrected_weight"):
            onpolicy.TrainSettings(**{"uncorrected_weight": 1.0, **bad})
    with pytest.raises(ValueError, match="uncorrected_weight must be > 0, got 0.0"):
        UncorrectedUnlikelihoodTrainer(None, negatives=[], uncorrected_weight=0.0)
    with pytest.raises(ValueError, match="negatives_per_step"):
        UncorrectedUnlikelihoodTrainer(None, negatives=[], uncorrected_weight=1.0, negatives_per_step=0)


def test_a_state_without_its_step_or_over_max_length_is_named(tiny_tokenizer):
    _, states = rows_and_states(2)
    assert [len(ids) > n for ids, n in negative_step_ids(tiny_tokenizer, states)] == [True, True]
    with pytest.raises(ValueError, match="uncorrected state 1: field 'step' must be a non-empty str"):
        negative_step_ids(tiny_tokenizer, [states[0], {**states[1], "step": ""}])
    with pytest.raises(ValueError, match="uncorrected state 0: field 'prefix'"):
        negative_step_ids(tiny_tokenizer, [{**states[0], "prefix": None}])
    with pytest.raises(ValueError, match="uncorrected state 0: .* tokens, over max_length 8"):
        negative_step_ids(tiny_tokenizer, states, max_length=8)


def test_run_round_refuses_it_where_no_step_pair_is_built(tiny_model):
    """With solution pairs only no state is ever left uncorrected: the term would add nothing, round after round
    (``prm=None``: sampling would fail first)."""
    policies = {m: copy.deepcopy(tiny_model) for m in ("stepwise_dpo", "nll_only")}
    with pytest.raises(ValueError, match="RoundSettings.pairs='solution' builds none"):
        onpolicy.run_round(policies, None, None, [], [], onpolicy.RoundSettings(pairs="solution"),
                           onpolicy.TrainSettings(**OUTPUT_LAYER, uncorrected_weight=1.0),
                           methods=("stepwise_dpo", "nll_only"))


# ----------------------------------------------------------------------------- scripts/uncorrected_mass.py

def mass_script(monkeypatch, problems):
    """scripts/uncorrected_mass.py's namespace on a run that notebooks 01 and 02 finished (RUN_METRICS), with the
    checker's stub PRM and ``problems`` as the train split; the policies are the shipped tiny base."""
    import runpy
    from pathlib import Path

    from stepdpo_lite import rewards
    from stepdpo_lite.tutorial import reward_reports, runs
    from onpolicy_stubs import RUN_METRICS

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "uncorrected_mass.py"))
    monkeypatch.setattr(runs, "require", lambda path, made_by: path)
    monkeypatch.setattr(runs, "read_metrics", lambda run: RUN_METRICS)
    monkeypatch.setattr(reward_reports, "prm_threshold", lambda prm, run: THRESHOLD)
    monkeypatch.setattr(rewards.ProcessRewardModel, "load", classmethod(lambda cls, path, device=None: StubPRM()))
    monkeypatch.setattr(onpolicy, "recorded_splits", lambda *a, **kw: {"train": problems})
    return script


def test_the_mass_script_reads_the_first_differing_token_and_leaves_out_a_wrong_prefix(monkeypatch, tiny_base_path):
    """At a state whose prefix is gold, the first token where the wrong step and the right one differ (the slipped
    digit), its probabilities read against a plain forward; a state after a wrong prefix has no right step to read
    and is counted as left out, not measured."""
    from stepdpo_lite.tutorial.tiny_models import load_tiny_base
    model, tok = load_tiny_base(tiny_base_path)
    rows, states = rows_and_states(3)
    problems = toyworld.make_problems(3, seed=1, min_ops=3, max_ops=4)
    script = mass_script(monkeypatch, problems)
    wrong_prefix = dict(states[0], prefix=states[0]["prefix"].replace(" = ", " = 1", 1))
    cases, left_out = script["first_differences"](tok, problems, [*states, wrong_prefix])
    assert len(cases) == 3 and left_out == 1
    for case, state, problem in zip(cases, states, problems):
        right_step = extract_steps(problem.gold_solution)[2]
        shared = len(tok(state["prompt"] + state["prefix"] + right_step.split(" = ")[0] + " = ")["input_ids"])
        assert case["at"] >= shared and case["right"] != case["wrong"]
        assert tok.decode([case["right"]]).isdigit() and tok.decode([case["wrong"]]).isdigit()
    figures = script["mass"](model, cases)
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([cases[0]["ids"]])).logits[0, cases[0]["at"] - 1].float(), -1)
    first = figures["per_case"][0]
    assert first["right"] == pytest.approx(p[cases[0]["right"]].item()) and first["wrong"] == pytest.approx(
        p[cases[0]["wrong"]].item())
    assert figures["right"] + figures["wrong"] + figures["rest"] == pytest.approx(1.0)
    assert all(0 < c["right_rest"] <= c["right_step"] < 1 and 0 < c["wrong_step"] < 1 for c in figures["per_case"])


def test_the_term_moves_the_wrong_steps_little_beside_what_training_without_it_does_at_any_weight(
        monkeypatch, tiny_base_path, capsys):
    """docs/benchmarks.md ("Where the pushed-down probability goes"): the script end to end on a stub run (the
    checker's PRM, the tiny base sampling), at weights 5 and 500 with the same pairs, states and seed. Training
    without the term (the NLL and the pairs, through every layer) lowers the wrong steps' probability at the
    uncorrected states by tenths; the term, through the output layer alone at the round's learning rate, moves it
    by under a tenth of that more, a hundredfold weight included (Adam scales a step by the gradient's own running
    size)."""
    problems = toyworld.make_problems(24, seed=7, min_ops=5, max_ops=6)
    script = mass_script(monkeypatch, problems)
    figures = {}
    for w in ("5", "500"):
        figures[w] = script["main"](["--runs-dir", "run", "--problems-per-round", "24", "--samples", "2", "--steps",
                                     "4", "--uncorrected-weight", w])
    out = capsys.readouterr().out
    assert "uncorrected states of" in out and "right on top" in out
    start, without = figures["5"]["start"]["wrong_step"], figures["5"]["without the term"]["wrong_step"]
    assert without == pytest.approx(figures["500"]["without the term"]["wrong_step"])  # one training, twice
    assert start - without > 0.1
    for w, f in figures.items():
        assert abs(f["with the term"]["wrong_step"] - without) < 0.1 * (start - without), w
