"""The unlikelihood of the wrong steps no Step-DPO correction was found for (a diagnostic of issue 16's rounds)."""

import copy

import pytest
import torch

from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import onpolicy, prm_pairs
from stepdpo_lite.tutorial.uncorrected_unlikelihood import UncorrectedUnlikelihoodTrainer, negative_step_ids
from onpolicy_stubs import FAST, THRESHOLD, StubPRM, StubSampler, problem_and_texts, rows_and_states

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


def test_the_term_is_the_mean_unlikelihood_of_the_wrong_steps_by_either_path(tmp_path, tiny_base_path):
    """uncorrected_weight w adds w·mean(−log(1 − π(step | prompt + prefix))) over the states (all of them when they
    are fewer than a batch), read against a plain forward; its gradient stops at the final hidden state, so it moves
    only the output layer (tied to the input embeddings), or with uncorrected_gradient="all" reaches every weight.
    Made through onpolicy.make_trainer, as a round makes it."""
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
    # uncorrected_gradient="all": the same loss, its gradient through every layer
    settings = onpolicy.TrainSettings(**OUTPUT_LAYER, uncorrected_weight=3.0, uncorrected_gradient="all", args=FAST)
    tr = onpolicy.make_trainer("stepwise_dpo", copy.deepcopy(tiny_model), tok, rows, settings, str(tmp_path / "all"),
                               ref_model=copy.deepcopy(tiny_model).eval(), uncorrected=states[:3])
    tr.model.zero_grad()
    loss = tr.extra_loss(tr.model, batch)
    assert loss.item() == pytest.approx(3.0 * want, rel=1e-4)
    loss.backward()
    moved = {n for n, prm in tr.model.named_parameters() if prm.grad is not None and prm.grad.abs().sum() > 0}
    assert moved == {n for n, _ in tr.model.named_parameters()}


def test_bad_settings_and_states_are_refused():
    for bad in (dict(step_pairing="first_token"), dict(**OUTPUT_LAYER, uncorrected_weight=-1.0),
                dict(**OUTPUT_LAYER, uncorrected_weight=float("nan"))):
        with pytest.raises(ValueError, match="uncorrected_weight"):
            onpolicy.TrainSettings(**{"uncorrected_weight": 1.0, **bad})
    with pytest.raises(ValueError, match="uncorrected_weight must be > 0, got 0.0"):
        UncorrectedUnlikelihoodTrainer(None, negatives=[], uncorrected_weight=0.0)
    with pytest.raises(ValueError, match=r"uncorrected_gradient must be one of .* above 0\), got 'all'"):
        onpolicy.TrainSettings(**OUTPUT_LAYER, uncorrected_gradient="all")  # no term to send through every layer
    with pytest.raises(ValueError, match="uncorrected_gradient must be one of"):
        onpolicy.TrainSettings(**OUTPUT_LAYER, uncorrected_weight=1.0, uncorrected_gradient="every")
    with pytest.raises(ValueError, match="uncorrected_gradient must be 'output_layer' or 'all', got 'every'"):
        UncorrectedUnlikelihoodTrainer(None, negatives=[], uncorrected_weight=1.0, uncorrected_gradient="every")
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

