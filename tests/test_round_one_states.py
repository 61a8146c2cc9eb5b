"""What round 1's training does at the states it built (scripts/uncorrected_mass.py, scripts/step_loss_reach.py): the
diagnostics behind docs/benchmarks.md's "Where the pushed-down probability goes" and "What the step loss does by
the tiny protocol", end to end on a stub run (the checker's PRM; the shipped tiny base samples and trains)."""

import runpy
from pathlib import Path

import pytest
import torch

from onpolicy_stubs import RUN_METRICS, THRESHOLD, StubPRM, rows_and_states
from stepdpo_lite import rewards
from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import onpolicy, reward_reports, runs, toyworld

ROOT = Path(__file__).resolve().parent.parent


def script_on_a_stub_run(name, monkeypatch, problems):
    """``scripts/<name>``'s namespace on a run that notebooks 01 and 02 finished (RUN_METRICS), with the
    checker's stub PRM and ``problems`` as the train split; the policies are the shipped tiny base."""
    script = runpy.run_path(str(ROOT / "scripts" / name))
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
    script = script_on_a_stub_run("uncorrected_mass.py", monkeypatch, problems)
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
    script = script_on_a_stub_run("uncorrected_mass.py", monkeypatch, problems)
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


def test_through_every_layer_the_term_moves_the_wrong_steps_further_and_lifts_the_right_token(monkeypatch):
    """docs/benchmarks.md ("Through every layer"): with ``--uncorrected-gradient all`` at a tenth of a unit of weight
    the term takes the wrong steps at the uncorrected states down by more than half again what training without it
    does, and the right token gains (what the rounds then do with it is measured there: they end behind RFT)."""
    problems = toyworld.make_problems(24, seed=7, min_ops=5, max_ops=6)
    script = script_on_a_stub_run("uncorrected_mass.py", monkeypatch, problems)
    f = script["main"](["--runs-dir", "run", "--problems-per-round", "24", "--samples", "2", "--steps", "4",
                        "--uncorrected-weight", "0.1", "--uncorrected-gradient", "all"])
    start, without, with_ = (f[k] for k in ("start", "without the term", "with the term"))
    assert without["wrong_step"] - with_["wrong_step"] > 0.5 * (start["wrong_step"] - without["wrong_step"]) > 0
    assert with_["right"] > without["right"] + 0.03


def test_the_tiny_protocols_step_loss_hardly_moves_its_own_pairs(monkeypatch):
    """docs/benchmarks.md ("What the step loss does by the tiny protocol"): scripts/step_loss_reach.py end to end on
    a stub run. At its pairs' states the step loss alone, through the output layer at the round's learning rate,
    moves the rejected token by under a tenth of what NLL only moves it, where through every layer it moves it far
    more (at the tutorial's sizes it then takes the chosen token down too: the overshoot the protocol avoids); and
    Stepwise DPO by the protocol ends within a few hundredths of NLL only."""
    problems = toyworld.make_problems(24, seed=7, min_ops=5, max_ops=6)
    script = script_on_a_stub_run("step_loss_reach.py", monkeypatch, problems)
    cases = script["pair_cases"](*_tokenizer_and_step_rows())
    assert cases and all(c["right"] != c["wrong"] and c["at"] >= c["context"] for c in cases)
    f = script["main"](["--runs-dir", "run", "--problems-per-round", "24", "--samples", "2", "--steps", "4",
                        "--step-weights", "50"])
    start, nll = f["start"]["wrong"], f["nll only"]["wrong"]
    assert start - nll > 0.05
    assert abs(f["step loss alone, output layer"]["wrong"] - start) < 0.1 * (start - nll)
    every = f["step loss alone, every layer"]
    assert start - every["wrong"] > 0.3 * (start - nll)
    assert abs(f["stepwise dpo, step weight 50"]["wrong"] - nll) < 0.05


def _tokenizer_and_step_rows():
    """The shipped tokenizer and rows_and_states' rows as step pairs (the corrected step is gold's)."""
    from stepdpo_lite.tutorial.tiny_models import load_tiny_base
    _, tok = load_tiny_base()
    rows, _ = rows_and_states(3)
    out = []
    for r in rows:
        chosen, rejected = extract_steps(r["chosen"]), extract_steps(r["rejected"])
        out.append(dict(r, kind="step", initial_reason_steps="".join(chosen[:2]), chosen_step=chosen[2],
                        rejected_step=rejected[2]))
    return tok, out
