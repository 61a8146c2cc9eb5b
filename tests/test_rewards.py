import logging
import math
import random
import re
import shutil

import numpy as np
import pytest
import torch

from stepdpo_lite.tutorial import tiny_models, toyworld
from stepdpo_lite.reward_ensembles import CombinedRewardModel, EnsembleRewardModel, load_reward_model, shaped_reward
from stepdpo_lite.rewards import (NO, OUTCOME_TAG, STEP_TAG, YES, OutcomeRewardModel, ProcessRewardModel,
                                  RewardModelConfig, TextRewards, fast_head_matches, mistake_made_here_labels, sigmoid)
from stepdpo_lite.steps import extract_steps


def _problems(n=6, seed=0):
    rng = random.Random(seed)
    problems = toyworld.make_problems(n, "train", seed=seed)
    sols = [p.gold_solution if i % 2 else toyworld.corrupt_solution(p, rng.randrange(len(p.ops)), "arithmetic", rng)
            for i, p in enumerate(problems)]
    return [p.prompt for p in problems], sols


def _log_odds_from_full_text(model, tok, text, yes=YES, no=NO):
    """One forward pass per step: tokenize the whole text, one forward, read the last position."""
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**enc).logits[0, -1].float()
    logp = logits.log_softmax(-1)
    yes_id, no_id = tok.convert_tokens_to_ids(yes), tok.convert_tokens_to_ids(no)
    return (logp[yes_id] - logp[no_id]).item()


@pytest.fixture()
def prm(tiny_model, tiny_tokenizer):
    return ProcessRewardModel(tiny_model, tiny_tokenizer)


@pytest.fixture()
def orm(tiny_model, tiny_tokenizer):
    return OutcomeRewardModel(tiny_model, tiny_tokenizer)


# Tolerances below: one-pass scoring vs the input cut after a tag, or a batch vs one solution at a time, are two
# code paths: other sequence lengths and padding change the float32 reduction order in the same kernels (seen
# ~1e-6). 1e-4 on a log-odds leaves room for other BLAS builds and still catches a wrong position or context.
def test_one_pass_equals_input_cut_after_each_tag(prm, tiny_model, tiny_tokenizer):
    prompts, sols = _problems(3)
    one_pass = prm.score_solutions(prompts, sols)
    for prompt, sol, rewards in zip(prompts, sols, one_pass):
        steps = extract_steps(sol)
        assert len(rewards) == len(steps)
        for k in range(len(steps)):
            cut = prompt + "".join(s + STEP_TAG for s in steps[:k + 1])
            assert rewards[k] == pytest.approx(_log_odds_from_full_text(tiny_model, tiny_tokenizer, cut), abs=1e-4)
    assert len({round(r, 6) for rs in one_pass for r in rs}) > 3  # rewards really differ by context


def test_multi_token_tag_reads_its_last_token(tiny_model, tiny_tokenizer):
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer, tag="\nOK?")
    assert len(prm.tag_ids) == 4
    prompts, sols = _problems(1)
    steps = extract_steps(sols[0])
    rewards = prm.score_solutions(prompts, [steps])[0]
    cut = prompts[0] + steps[0] + "\nOK?"
    assert rewards[0] == pytest.approx(_log_odds_from_full_text(tiny_model, tiny_tokenizer, cut), abs=1e-4)


def test_batch_equals_one_by_one_and_text_equals_steps(prm, orm):
    prompts, sols = _problems(6)
    batched = prm.score_solutions(prompts, sols, batch_size=4)
    for prompt, sol, rewards in zip(prompts, sols, batched):
        assert prm.score_solutions([prompt], [sol], batch_size=1)[0] == pytest.approx(rewards, abs=1e-4)
        assert prm.score_solutions([prompt], [extract_steps(sol)])[0] == pytest.approx(rewards, abs=1e-5)
    outcome = orm.score_solutions(prompts, sols, batch_size=4)
    assert [orm.score_solutions([p], [s])[0] for p, s in zip(prompts, sols)] == pytest.approx(outcome, abs=1e-4)


def test_orm_reads_after_the_outcome_tag(orm, tiny_model, tiny_tokenizer):
    prompts, sols = _problems(2)
    got = orm.score_solutions(prompts, sols)
    want = [_log_odds_from_full_text(tiny_model, tiny_tokenizer, p + s + OUTCOME_TAG)
            for p, s in zip(prompts, sols)]
    assert got == pytest.approx(want, abs=1e-4)
    assert orm.get_reward_for_text(prompts[0] + sols[0]) == pytest.approx(got[0], abs=1e-4)


def test_slow_head_path_for_models_whose_logits_are_not_decoder_plus_head(tiny_model, tiny_tokenizer):
    tiny_model.register_forward_hook(lambda module, args, out: out.__class__(logits=out.logits * 2))
    assert not fast_head_matches(tiny_model)
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    prompts, sols = _problems(1)
    steps = extract_steps(sols[0])
    r = prm.score_solutions(prompts, [steps])[0]
    cut = prompts[0] + steps[0] + STEP_TAG
    assert r[0] == pytest.approx(_log_odds_from_full_text(tiny_model, tiny_tokenizer, cut), abs=1e-4)


def test_a_model_object_is_moved_to_the_device_asked_for_and_else_left_where_it_is(tiny_model, tiny_tokenizer,
                                                                                    monkeypatch):
    moved, to = [], tiny_model.to
    monkeypatch.setattr(tiny_model, "to", lambda *args, **kwargs: moved.append(args) or to(*args, **kwargs))
    ProcessRewardModel(tiny_model, tiny_tokenizer)
    assert moved == []
    OutcomeRewardModel(tiny_model, tiny_tokenizer, device="cpu")  # "cuda" on a GPU: the model was left on the CPU
    assert moved == [("cpu",)]


def test_batch_size_caps_each_forward_pass(prm, monkeypatch):
    import stepdpo_lite.rewards as rewards_module
    sizes, tag_logits = [], rewards_module.tag_logits
    monkeypatch.setattr(rewards_module, "tag_logits", lambda model, ids, *args, **kwargs: sizes.append(len(ids)) or
                        tag_logits(model, ids, *args, **kwargs))
    prompts, sols = _problems(5)
    prm.score_solutions(prompts, sols, batch_size=2)
    assert sizes == [2, 2, 1]  # were the batches to overlap, 3, 3, 1: past the memory the user allowed


def test_reference_api(prm, orm):
    prompts, sols = _problems(2)
    text = prompts[0] + sols[0]
    steps, rewards, agg = prm.extract_and_aggregate_steps(text)
    assert "".join(steps) == text and agg == pytest.approx(min(rewards))
    assert prm.get_reward_for_text(text) == pytest.approx(agg)
    assert prm.get_rewards_for_batch([text, prompts[1] + sols[1]])[0] == pytest.approx(agg, abs=1e-4)
    # get_rewards_for_steps(steps, problem) formats the problem with prompt_template
    prm.config.prompt_template = "Question: {problem}\nAnswer step by step.\n"
    problem = "What is 2 + 3 * 4?"
    by_problem = prm.get_rewards_for_steps(extract_steps(sols[1]), problem=problem)
    formatted = "Question: What is 2 + 3 * 4?\nAnswer step by step.\n"
    assert by_problem == pytest.approx(prm.score_solutions([formatted], [sols[1]])[0], abs=1e-5)
    assert prm.get_reward_for_problem_solution(problem, sols[1]) == pytest.approx(min(by_problem), abs=1e-5)
    r = prm.score_solutions(prompts[:1], sols[:1])[0]
    assert prm.aggregate(r, "last") == pytest.approx(r[-1])
    assert prm.aggregate(r, "product") == pytest.approx(sum(math.log(1 / (1 + math.exp(-x))) for x in r), abs=1e-5)
    assert orm.get_rewards_for_batch([text]) == pytest.approx([orm.get_reward_for_text(text)], abs=1e-5)


def test_bad_inputs_raise(prm, orm, tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError, match="solution 1: no steps"):
        prm.score_solutions(["a", "b"], ["Step 1: 1 + 1 = 2", "   "])
    with pytest.raises(ValueError, match="solution 0, step 1"):
        prm.score_solutions(["a"], [["Step 1: 1 + 1 = 2", ""]])
    with pytest.raises(ValueError, match="pair up"):
        prm.score_solutions(["a", "b"], ["Step 1: 1 + 1 = 2"])
    with pytest.raises(ValueError, match="solution 0: must be a non-blank"):
        orm.score_solutions(["a"], [""])
    with pytest.raises(ValueError, match="got 2 prompts and 1 solutions; they must pair up"):  # zip: 1 reward
        orm.score_solutions(["a", "b"], ["x = 1"])
    # wrong types: a str where a list is expected would be read character by character; a number is no text
    with pytest.raises(ValueError, match="`steps` must be a list of step strings, got one str"):
        prm.get_rewards_for_steps("Step 1: 1 + 1 = 2\n\nStep 2: 2 + 2 = 4")
    with pytest.raises(ValueError, match="text: must be a str, got int"):
        prm.get_reward_for_text(42)
    with pytest.raises(ValueError, match="solution 0: must be a str or a list of step strings, got int"):
        prm.score_solutions(["a"], [42])
    with pytest.raises(ValueError, match="prompts: expected a list of strings, got one str"):
        prm.score_solutions("ab", ["Step 1: 1", "Step 1: 2"])
    with pytest.raises(ValueError, match="solutions: expected a list of texts or lists of steps, got one str"):
        orm.score_solutions(["a", "b"], "xy")
    with pytest.raises(ValueError, match="text: must be a str, got int"):
        orm.get_reward_for_text(42)
    # a problem that is not a str was formatted into the prompt ("['x']"), and None became an empty one
    for model in (prm, orm):
        with pytest.raises(ValueError, match="problem: must be a str, got NoneType"):
            model.get_reward_for_problem_solution(None, "Step 1: 1 + 1 = 2")
    with pytest.raises(ValueError, match="problem: must be a str or None, got list"):
        prm.get_rewards_for_steps(["Step 1: 1 + 1 = 2"], problem=["x"])
    # CombinedRewardModel's max_steps joined the tail before the PRM checked it: a TypeError from str.join
    with pytest.raises(ValueError, match="solution 0, step 1: a step must be a non-blank string, got None"):
        CombinedRewardModel(prm, None, max_steps=1).get_rewards_for_steps(["Step 1: 1 + 1 = 2", None])
    short = ProcessRewardModel(tiny_model, tiny_tokenizer, max_length=20)
    with pytest.raises(ValueError, match="longer than max_length 20"):
        short.score_solutions(["Problem: 1 + 2 (left to right)\n"], ["Step 1: 1 + 2 = 3\n\nAnswer: 3"])
    with pytest.raises(ValueError, match="must be exactly one"):
        ProcessRewardModel(tiny_model, tiny_tokenizer, yes=" Yes!")
    with pytest.raises(ValueError, match="unknown option"):
        ProcessRewardModel(tiny_model, tiny_tokenizer, verification_prompt="x")
    with pytest.raises(ValueError, match="tokenizer"):
        ProcessRewardModel(tiny_model)
    with torch.no_grad():
        tiny_model.model.norm.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        prm.score_solutions(["a\n"], ["Step 1: 1 + 1 = 2"])


def test_a_yes_and_no_that_are_the_same_token_are_refused(tiny_model, tiny_tokenizer):
    """A reward is logit(yes) − logit(no): with one token for both it is 0 for every step and solution, a coin toss
    the user would read as a score; construction refuses it."""
    for kind in (ProcessRewardModel, OutcomeRewardModel):
        with pytest.raises(ValueError, match=re.escape("reward model: yes ' Yes' and no ' Yes' are the same token")):
            kind(tiny_model, tiny_tokenizer, no=YES)


@pytest.fixture(scope="module")
def saved_base(tmp_path_factory):
    tok = tiny_models.build_tokenizer()
    path = tmp_path_factory.mktemp("base")
    tiny_models.build_tiny_model(tok, seed=1).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_save_load_identical_rewards(tmp_path, saved_base, tiny_model, tiny_tokenizer, caplog):
    from stepdpo_lite.models import load_model
    prompts, sols = _problems(3)
    # a PRM with a (non-trivial) LoRA adapter: saved as an adapter, loaded on its base
    peft_model, tok = load_model(saved_base, quantization=None, lora={"r": 4, "init_lora_weights": False},
                                 device="cpu")
    prm = ProcessRewardModel(peft_model, tok, aggregation="product")
    orm = OutcomeRewardModel(tiny_model, tiny_tokenizer)  # a plain model: saved whole
    combined = CombinedRewardModel(prm, orm, process_weight=0.6, outcome_weight=0.4)
    ensemble = EnsembleRewardModel([prm, orm], weights=[0.25, 0.75])

    before = {"prm": prm.score_solutions(prompts, sols), "orm": orm.score_solutions(prompts, sols),
              "combined": combined.score_solutions(prompts, sols), "ensemble": ensemble.score_solutions(prompts, sols)}
    combined.save(tmp_path / "combined")
    ensemble.save(tmp_path / "ensemble")
    assert (tmp_path / "combined" / "combined_reward_config.json").exists()
    assert (tmp_path / "combined" / "process_reward_model" / "process_reward_config.json").exists()
    assert (tmp_path / "combined" / "process_reward_model" / "adapter_config.json").exists()
    assert (tmp_path / "combined" / "outcome_reward_model" / "outcome_reward_config.json").exists()

    prm2 = ProcessRewardModel.load(tmp_path / "combined" / "process_reward_model", device="cpu")
    assert prm2.config.aggregation == "product"
    after = {"prm": prm2.score_solutions(prompts, sols),
             "orm": load_reward_model(tmp_path / "combined" / "outcome_reward_model").score_solutions(prompts, sols),
             "combined": CombinedRewardModel.load(tmp_path / "combined").score_solutions(prompts, sols),
             "ensemble": load_reward_model(tmp_path / "ensemble").score_solutions(prompts, sols)}
    flat = lambda xs: [x for r in xs for x in (r if isinstance(r, list) else [r])]  # noqa: E731
    for key in before:
        # Reloading gives bit-identical scores (reload vs reload is exact), but the in-memory PEFT model that was
        # saved differs from its reload by float32 round-off in the decoder (measured <= 1e-7 here), so 1e-6.
        assert flat(after[key]) == pytest.approx(flat(before[key]), abs=1e-6), key
    again = CombinedRewardModel.load(tmp_path / "combined").score_solutions(prompts, sols)
    assert again == after["combined"]  # load -> score twice on one machine and kernel: exact

    # Saved as a 4-bit base, loaded at full precision on request: the config says what was loaded, so that a
    # later save does not claim a 4-bit base
    config_file = tmp_path / "combined" / "process_reward_model" / "process_reward_config.json"
    config_file.write_text(config_file.read_text().replace('"quantization": null', '"quantization": "4bit"'))
    assert ProcessRewardModel.load(config_file.parent, device="cpu", quantization=None).config.quantization is None
    # A key another version (or a typo) wrote is named, not taken up silently
    config_file.write_text(config_file.read_text().replace('{', '{"agregation": "min", ', 1))
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.rewards"):
        assert ProcessRewardModel.load(config_file.parent, device="cpu").config.aggregation == "product"
    assert "ignoring unknown keys ['agregation']" in caplog.text


def test_a_4bit_model_object_is_saved_as_4bit_and_loads_back_with_the_same_rewards(tmp_path, saved_base):
    """Its config said quantization None, so load() put the adapter on a full-precision base: other rewards."""
    from stepdpo_lite.models import load_model
    model, tok = load_model(saved_base, quantization="4bit", lora={"r": 4, "init_lora_weights": False}, device="cpu")
    prm = ProcessRewardModel(model, tok)
    assert prm.config.quantization == "4bit"
    prm.save(tmp_path / "prm")
    prompts, sols = _problems(2)
    assert ProcessRewardModel.load(tmp_path / "prm", device="cpu").score_solutions(prompts, sols) == \
        prm.score_solutions(prompts, sols)


def test_a_model_loaded_from_a_path_follows_its_config_and_the_save_says_what_was_loaded(tmp_path, saved_base):
    """A config's quantization was kept but not used when the model was a path: loaded at full precision, saved as
    "4bit", reloaded in 4 bits with other rewards. A model object's config now says what the model is."""
    from stepdpo_lite.models import load_model
    prompts, sols = _problems(2)
    prm = ProcessRewardModel(str(saved_base), config=RewardModelConfig(quantization="4bit"), device="cpu")
    assert prm.model.is_loaded_in_4bit and prm.config.quantization == "4bit"
    model, tok = load_model(saved_base, quantization=None, device="cpu")
    plain = ProcessRewardModel(model, tok, RewardModelConfig(quantization="4bit"))
    assert plain.config.quantization is None
    plain.save(tmp_path / "plain")
    again = ProcessRewardModel.load(tmp_path / "plain", device="cpu")
    assert not getattr(again.model, "is_loaded_in_4bit", False)
    assert again.score_solutions(prompts, sols) == plain.score_solutions(prompts, sols)
    # the dtype a config records is the one a load computes in (the reward trainers record theirs)
    halved = ProcessRewardModel.load(tmp_path / "plain", device="cpu", dtype="bfloat16")
    assert halved.model.dtype == torch.bfloat16 and halved.config.dtype == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be 'float32', 'bfloat16', 'float16' or None, got 'half'"):
        ProcessRewardModel.load(tmp_path / "plain", device="cpu", dtype="half")


def test_a_model_objects_dtype_is_saved_and_a_saved_folder_is_not_taken_for_a_base(tmp_path, saved_base):
    """A bfloat16 model object saved "dtype": null and loaded back in float32 (other rewards); a saved PRM's folder
    given to the constructor was loaded as a bare base: its tag, delimiter, aggregation and 4-bit base ignored."""
    from stepdpo_lite.models import load_model
    prompts, sols = _problems(2)
    model, tok = load_model(saved_base, quantization=None, device="cpu", dtype=torch.bfloat16)
    prm = ProcessRewardModel(model, tok, step_delimiter="\n\nStep", aggregation="last")
    assert prm.config.dtype == "bfloat16"
    prm.save(tmp_path / "prm")
    again = ProcessRewardModel.load(tmp_path / "prm", device="cpu")
    assert again.model.dtype == torch.bfloat16
    assert again.score_solutions(prompts, sols) == prm.score_solutions(prompts, sols)
    with pytest.raises(ValueError, match=r"holds a saved ProcessRewardModel: load it with ProcessRewardModel.load"):
        ProcessRewardModel(str(tmp_path / "prm"), device="cpu")
    assert ProcessRewardModel(str(tmp_path / "prm"), config=again.config, device="cpu").config.aggregation == "last"


def test_the_fast_head_is_checked_in_eval_mode_and_the_mode_kept(saved_base):
    """In train mode a LoRA adapter's dropout made the two passes differ: full (batch, length, vocab) logits."""
    from stepdpo_lite.models import load_model
    from stepdpo_lite.rewards import fast_head_matches
    model, tok = load_model(saved_base, quantization=None, device="cpu",
                            lora={"r": 4, "lora_dropout": 0.5, "init_lora_weights": False})
    model.train()
    assert fast_head_matches(model) and model.training
    assert ProcessRewardModel(model, tok)._fast and model.training


def test_saving_an_adapter_twice_gives_the_same_files(tmp_path, saved_base):
    """PEFT writes target_modules from a set (its order changes between Python processes): the save sorts it."""
    import json

    from stepdpo_lite.models import load_model
    peft_model, tok = load_model(saved_base, quantization=None, lora={"r": 4, "init_lora_weights": False}, device="cpu")
    prm = ProcessRewardModel(peft_model, tok)
    prm.save(tmp_path / "a")
    modules = json.loads((tmp_path / "a" / "adapter_config.json").read_text())["target_modules"]
    assert modules == sorted(modules) and len(modules) == 7  # all-linear: q, k, v, o, gate, up, down
    ProcessRewardModel.load(tmp_path / "a", device="cpu").save(tmp_path / "b")  # re-saved by another model object
    for name in ("adapter_config.json", "adapter_model.safetensors", "process_reward_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_saved_adapter_loads_on_another_machine(tmp_path, saved_base):
    """The adapter names a local base relative to itself, so a copied folder (base beside it) loads elsewhere."""
    import json
    import shutil

    from stepdpo_lite.models import adapter_base, load_model
    here = tmp_path / "here"
    shutil.copytree(saved_base, here / "base")
    peft_model, tok = load_model(here / "base", quantization=None, lora={"r": 4, "init_lora_weights": False},
                                 device="cpu")
    prm = ProcessRewardModel(peft_model, tok)
    prm.save(here / "runs" / "prm")
    written = json.loads((here / "runs" / "prm" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert written == "../../base"
    prompts, sols = _problems(2)
    before = ProcessRewardModel.load(here / "runs" / "prm", device="cpu").score_solutions(prompts, sols)
    shutil.copytree(here / "runs", tmp_path / "runs-on-drive")  # the run folder alone, on the same machine
    assert adapter_base(tmp_path / "runs-on-drive" / "prm") == str(here / "base")  # the path it was trained with
    shutil.copytree(here, tmp_path / "elsewhere")
    shutil.rmtree(here)  # the machine that trained it is gone
    moved = tmp_path / "elsewhere" / "runs" / "prm"
    assert adapter_base(moved) == str((tmp_path / "elsewhere" / "base").resolve())
    assert ProcessRewardModel.load(moved, device="cpu").score_solutions(prompts, sols) == before
    with pytest.raises(FileNotFoundError, match="its base model '../../base' .relative to the adapter. is not at"):
        adapter_base(tmp_path / "runs-on-drive" / "prm")  # neither beside it nor where it was trained


def test_an_ensemble_member_that_gives_too_few_or_nan_rewards_is_named(prm):
    """A member may be any object with ``solution_rewards``: zip cut its short answer to fit, and NaN went through."""
    class Fixed:
        def __init__(self, rewards):
            self.rewards = rewards

        def solution_rewards(self, prompts, solutions, batch_size=None, progress=False):
            return self.rewards

    sols = ["Step 1: 1 + 1 = 2", "Step 1: 1 + 1 = 3"]
    with pytest.raises(ValueError, match=r"models\[1\] gave 1 rewards for 2 solutions"):
        EnsembleRewardModel([prm, Fixed([1.0])]).score_solutions(["p\n", "p\n"], sols)
    with pytest.raises(ValueError, match=r"models\[0\]'s reward of solution 1 must be a finite number, got nan"):
        EnsembleRewardModel([Fixed([1.0, float("nan")])]).score_solutions(["p", "p"], sols)
    assert EnsembleRewardModel([Fixed([1.0, 2.0])], weights=[0.5]).score_solutions(["p", "p"], sols) == [0.5, 1.0]


def test_an_ensemble_member_needs_only_the_documented_solution_rewards_and_shares_its_delimiter(prm):
    """A member's ``solution_rewards(prompts, solutions)`` failed with "takes 3 positional arguments but 5 were given":
    the ensemble passed batch_size and progress by position, a form documented nowhere."""
    class Documented:
        config = type("Config", (), {"step_delimiter": "\n"})()

        def solution_rewards(self, prompts, solutions):
            return [float(len(s)) for s in solutions]

    class Keywords(Documented):
        def solution_rewards(self, prompts, solutions, *, batch_size=None, progress=False):
            assert (batch_size, progress) == (2, True)
            return [1.0] * len(solutions)

    sols = ["Step 1: 1 + 1 = 2", "Step 1: 1 + 1 = 3!"]
    assert EnsembleRewardModel([Documented()]).score_solutions(["p", "p"], sols) == [17.0, 18.0]
    assert EnsembleRewardModel([Keywords()]).score_solutions(["p", "p"], sols, batch_size=2, progress=True) == [1, 1]
    assert EnsembleRewardModel([Documented(), Keywords()]).step_delimiter == "\n"  # the members' own, shared
    assert EnsembleRewardModel([prm, prm]).step_delimiter == prm.config.step_delimiter
    assert EnsembleRewardModel([prm, Documented()]).step_delimiter is None  # they split differently: none to name


def test_combined_and_ensemble_arithmetic(prm, orm):
    prompts, sols = _problems(3)
    p = [min(r) for r in prm.score_solutions(prompts, sols)]
    o = orm.score_solutions(prompts, sols)
    combined = CombinedRewardModel(prm, orm, process_weight=0.7, outcome_weight=0.3)
    want = [0.7 * a + 0.3 * b for a, b in zip(p, o)]
    assert combined.score_solutions(prompts, sols) == pytest.approx(want, abs=1e-5)
    # combine is the formula score_solutions uses (notebook 03 combines its parts' rewards with it, not scoring again)
    assert combined.combine(p, o) == pytest.approx(combined.score_solutions(prompts, sols), abs=1e-5)
    assert combined.combine(p, o) == [0.7 * a + 0.3 * b for a, b in zip(p, o)]  # the same arithmetic, exactly
    with pytest.raises(ValueError, match=r"combine: \d+ process rewards but \d+ outcome rewards"):  # zip cut it
        combined.combine(p, o[:-1])
    assert combined.get_reward_for_text(prompts[0] + sols[0]) == pytest.approx(want[0], abs=1e-4)
    assert combined.get_rewards_for_batch([prompts[1] + sols[1]]) == pytest.approx([want[1]], abs=1e-4)
    steps, rewards, agg = combined.extract_and_aggregate_steps(prompts[0] + sols[0])
    assert agg == pytest.approx(min(rewards)) == pytest.approx(p[0], abs=1e-4)
    # a text is split into the steps the PRM scores where the PRM splits it, whatever the ORM's delimiter
    orm_of_lines = OutcomeRewardModel(orm.model, orm.tokenizer, step_delimiter="\n")
    assert CombinedRewardModel(prm, orm_of_lines).step_delimiter == prm.config.step_delimiter != "\n"
    only_outcome = CombinedRewardModel(None, orm, outcome_weight=1.0)
    assert only_outcome.score_solutions(prompts, sols) == pytest.approx(o, abs=1e-6)
    ensemble = EnsembleRewardModel([prm, orm], weights=[2.0, -1.0])
    assert ensemble.score_solutions(prompts, sols) == pytest.approx([2 * a - b for a, b in zip(p, o)], abs=1e-5)
    # the siblings' API (an AttributeError before): each member reads the problem through its own template
    assert ensemble.get_reward_for_problem_solution(prompts[0], sols[0]) == pytest.approx(
        2 * prm.get_reward_for_problem_solution(prompts[0], sols[0])
        - orm.get_reward_for_problem_solution(prompts[0], sols[0]), abs=1e-5)
    assert EnsembleRewardModel([prm, prm]).get_rewards_for_steps(extract_steps(sols[0])) == pytest.approx(
        prm.get_rewards_for_steps(extract_steps(sols[0])), abs=1e-5)
    with pytest.raises(ValueError, match="member 1 .OutcomeRewardModel. gives no step rewards"):
        ensemble.get_rewards_for_steps(extract_steps(sols[0]))
    with pytest.raises(ValueError, match="2 weights for 1 models"):
        EnsembleRewardModel([prm], weights=[1, 2])
    with pytest.raises(ValueError, match="finite"):
        CombinedRewardModel(prm, orm, process_weight=float("nan"))
    with pytest.raises(ValueError, match="give a process"):
        CombinedRewardModel(None, None)
    # max_steps merges a solution's tail alike whether it comes as a text or as its steps (lists were not capped)
    capped = CombinedRewardModel(prm, None, max_steps=2)
    text = next(s for s in sols if len(extract_steps(s)) > 2)
    assert capped.score_solutions([prompts[0]], [text]) == capped.score_solutions([prompts[0]], [extract_steps(text)])
    assert len(capped.get_rewards_for_steps(extract_steps(text))) == 2
    n = len(extract_steps(text))
    with pytest.raises(ValueError, match=f"member 1 .CombinedRewardModel. gives 2 step rewards for {n} steps"):
        EnsembleRewardModel([prm, capped]).get_rewards_for_steps(extract_steps(text))  # was an IndexError


def test_each_part_reads_its_own_prompt_and_lists_of_steps_reach_the_orm(tiny_model, tiny_tokenizer):
    """A combined model's ORM and PRM each format the problem with their own prompt_template, and a solution given
    as its steps reaches the ORM as its text (the two used to crash, or read the PRM's prompt)."""
    prompts, sols = _problems(2)
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer, prompt_template="{problem}")
    orm = OutcomeRewardModel(tiny_model, tiny_tokenizer, prompt_template="Q: {problem}\n\n")
    combined = CombinedRewardModel(prm, orm, process_weight=0.5, outcome_weight=0.5)
    want = 0.5 * prm.get_reward_for_problem_solution(prompts[0], sols[0]) + \
        0.5 * orm.get_reward_for_problem_solution(prompts[0], sols[0])
    assert combined.get_reward_for_problem_solution(prompts[0], sols[0]) == pytest.approx(want, abs=1e-5)
    assert orm.get_reward_for_problem_solution(prompts[0], sols[0]) != pytest.approx(
        orm.score_solutions([prompts[0]], [sols[0]])[0], abs=1e-3)  # the template makes a difference here
    steps = [extract_steps(s) for s in sols]
    assert orm.score_solutions(prompts, steps) == orm.score_solutions(prompts, sols)
    assert combined.score_solutions(prompts, steps) == pytest.approx(combined.score_solutions(prompts, sols), abs=1e-6)
    assert EnsembleRewardModel([prm, orm]).score_solutions(prompts, steps) == pytest.approx(
        EnsembleRewardModel([prm, orm]).score_solutions(prompts, sols), abs=1e-6)


def test_a_config_without_a_tag_takes_the_kinds_own_and_is_not_changed(tiny_model, tiny_tokenizer):
    from stepdpo_lite.rewards import OUTCOME_TAG, STEP_TAG, RewardModelConfig

    config = RewardModelConfig(batch_size=8)
    orm = OutcomeRewardModel(tiny_model, tiny_tokenizer, config, max_length=200)
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer, config)
    assert (orm.config.tag, prm.config.tag) == (OUTCOME_TAG, STEP_TAG)
    assert (orm.config.max_length, prm.config.max_length) == (200, None)
    assert config == RewardModelConfig(batch_size=8)  # the caller's config, untouched
    assert ProcessRewardModel(tiny_model, tiny_tokenizer, RewardModelConfig(tag="\nOK?")).config.tag == "\nOK?"


def test_the_prefix_keeps_bos_when_the_tokenizer_also_adds_eos(tiny_model, tiny_tokenizer):
    class Specials:  # [BOS] text [EOS], as some tokenizers encode with special tokens; [BOS] text (Llama, Mistral)
        pad_token_id, model_max_length = tiny_tokenizer.pad_token_id, 10**30

        def __init__(self, before, after):
            self.before, self.after = before, after

        def __call__(self, texts, add_special_tokens=True, **kwargs):  # verbose=..., as a transformers tokenizer
            ids = tiny_tokenizer(texts, add_special_tokens=False)["input_ids"]
            if add_special_tokens:
                ids = [self.before + x + self.after for x in ids] if isinstance(texts, list) else \
                    self.before + ids + self.after
            return {"input_ids": ids}

    assert ProcessRewardModel(tiny_model, Specials([3], [1])).prefix_ids == [3]
    assert ProcessRewardModel(tiny_model, Specials([3], [])).prefix_ids == [3]
    assert ProcessRewardModel(tiny_model, Specials([], [1])).prefix_ids == []  # an EOS is no prefix
    assert ProcessRewardModel(tiny_model, tiny_tokenizer).prefix_ids == []


def test_shaped_reward():
    assert shaped_reward(2.0) == 2.0
    assert shaped_reward(2.0, complexity=1.0) == pytest.approx(3.0)  # reference: r * (1 + 0.5 * complexity)
    assert shaped_reward(-2.0, complexity=1.0) == -2.0  # negative rewards are not boosted
    assert shaped_reward(2.0, confidence=0.5, complexity=2.0) == pytest.approx(2.0)
    assert type(shaped_reward(np.float32(2.0), complexity=torch.tensor(1.0))) is float  # a float, not an array
    for bad in (dict(base_reward=float("nan")), dict(base_reward=1.0, confidence=1.5),
                dict(base_reward=1.0, complexity=-1.0)):
        with pytest.raises(ValueError):
            shaped_reward(**bad)


SOLUTION = "Step 1: 1 + 1 = 2\n\nStep 2: 2 + 2 = 4"


def test_one_str_where_a_list_is_expected_is_refused(prm, orm):
    """A str is a sequence: read as a list, "ab" would be scored as the two texts "a" and "b"."""
    with pytest.raises(ValueError, match="texts: expected a list of texts, got one str"):
        prm.get_rewards_for_batch("ab")
    with pytest.raises(ValueError, match="texts: expected a list of texts, got one str"):
        orm.get_rewards_for_batch("ab")
    with pytest.raises(ValueError, match="steps: expected a list of step strings, got one str"):
        prm.encode("a", "xy")
    with pytest.raises(ValueError, match="solutions: expected a list of texts or lists of steps, got one str"):
        CombinedRewardModel(prm, None).score_solutions(["a", "b"], "xy")
    with pytest.raises(ValueError, match="texts: expected a list of texts, got one str"):
        CombinedRewardModel(prm, orm).get_rewards_for_batch("ab")
    with pytest.raises(ValueError, match="texts: expected a list of texts, got one str"):
        EnsembleRewardModel([orm]).get_rewards_for_batch("ab")
    with pytest.raises(ValueError, match="models: expected a list of reward models or folders, got one str"):
        EnsembleRewardModel("runs/prm")
    for model in (prm, orm):  # nor is anything that is not a list
        with pytest.raises(ValueError, match="prompts: expected a list of strings, got NoneType"):
            model.score_solutions(None, [SOLUTION])
    assert len(prm.get_rewards_for_batch(["Step 1: 1 + 1 = 2", SOLUTION])) == 2  # a list still works
    assert len(orm.score_solutions(("p", "q"), (SOLUTION, SOLUTION))) == 2  # and so does a tuple


def test_the_text_calls_are_one_copy_built_on_solution_rewards():
    """get_reward_for_text and get_rewards_for_batch were written four times (PRM, ORM, combined, ensemble): one copy,
    TextRewards', reads any model's solution_rewards with empty prompts (the PRM's own copy, refusing a list, too)."""
    class Lengths(TextRewards):  # a reward of one's own: the length of prompt + solution
        def solution_rewards(self, prompts, solutions):
            return [float(len(p) + len(s)) for p, s in zip(prompts, solutions)]

    assert Lengths().get_reward_for_text("abc") == 3.0
    assert Lengths().get_rewards_for_batch(("a", "bb")) == [1.0, 2.0]
    with pytest.raises(ValueError, match="texts: expected a list of texts, got one str"):
        Lengths().get_rewards_for_batch("ab")
    for kind in (ProcessRewardModel, OutcomeRewardModel, CombinedRewardModel, EnsembleRewardModel):
        assert kind.get_rewards_for_batch is TextRewards.get_rewards_for_batch, kind
        assert kind.get_reward_for_text is TextRewards.get_reward_for_text, kind


def test_the_text_calls_refuse_a_list_of_steps_for_every_model(prm, orm):
    """The text calls take texts, as documented: the PRM's get_reward_for_text refused a list of steps, while the
    ORM, a combined model and the PRM's own get_rewards_for_batch scored it (the ORM as "".join(steps))."""
    steps = ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 + 2 = 4"]
    for model in (prm, orm, CombinedRewardModel(prm, orm), EnsembleRewardModel([orm])):
        with pytest.raises(ValueError, match=r"^text: must be a str, got list \(a solution as its steps: score_"):
            model.get_reward_for_text(steps)
        with pytest.raises(ValueError, match=r"^texts\[1\]: must be a str, got list"):
            model.get_rewards_for_batch([SOLUTION, steps])
    assert orm.score_solutions([""], [steps]) == pytest.approx(orm.score_solutions([""], ["".join(steps)]))
    assert ProcessRewardModel.get_reward_for_problem_solution is OutcomeRewardModel.get_reward_for_problem_solution


def test_an_over_long_input_is_refused_without_transformers_own_too_long_line(tiny_model, transformers_warnings):
    """A user's trial: transformers logged "Token indices sequence length is longer than ... will result in indexing
    errors" when the reward model tokenized a part longer than the tokenizer's limit, before the kit's InputTooLong
    (or for input_lengths, which only measures)."""
    from stepdpo_lite.rewards import InputTooLong
    for kind in (ProcessRewardModel, OutcomeRewardModel):
        tokenizer = tiny_models.build_tokenizer()  # fresh: transformers warns once per tokenizer
        tokenizer.model_max_length = 40
        model = kind(tiny_model, tokenizer)
        assert model.input_lengths(["P\n"], ["1" * 60])[0] > 60
        with pytest.raises(InputTooLong, match="longer than max_length 40") as caught:
            model.score_solutions(["a\n", "P\n"], ["1", "1" * 60])
        # its fields, which a caller words its own way (the trainer: "row 1: field 'chosen': ...")
        too_long, n_tokens = caught.value, model.input_lengths(["P\n"], ["1" * 60])[0]
        assert (too_long.index, too_long.n_tokens, too_long.max_length) == (1, n_tokens, 40)
    assert not [m for m in transformers_warnings if "Token indices" in m]


def test_max_length_beyond_the_context_or_below_one_is_refused(tiny_model, tiny_tokenizer):
    assert tiny_model.config.max_position_embeddings == 1024
    for kind in (ProcessRewardModel, OutcomeRewardModel):
        with pytest.raises(ValueError, match=r"max_length 5000 is longer than the model's context "
                                             r"\(max_position_embeddings 1024\)"):
            kind(tiny_model, tiny_tokenizer, max_length=5000)
        for bad in (0, -5, "100", 2.5):  # 0 used to fall back to the context silently
            with pytest.raises(ValueError, match=f"max_length must be an int >= 1 or None, got {bad!r}"):
                kind(tiny_model, tiny_tokenizer, max_length=bad)
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)  # None: the model's context
    assert prm.max_length == 1024 == ProcessRewardModel(tiny_model, tiny_tokenizer, max_length=1024).max_length
    long_prompt = "1 + 1 = 2\n" * 110  # one token a character: 1,100 tokens
    with pytest.raises(ValueError, match="solution 1: 11.. tokens with its tags, longer than max_length 1024"):
        prm.score_solutions(["a", long_prompt], [SOLUTION, SOLUTION])
    with pytest.raises(ValueError, match="solution 1: 11.. tokens with its tags, longer than max_length 1024"):
        OutcomeRewardModel(tiny_model, tiny_tokenizer).score_solutions(["a", long_prompt], [SOLUTION, SOLUTION])


def test_nan_step_rewards_are_refused_naming_the_step(prm):
    with pytest.raises(ValueError, match="step 1: the reward must be a finite number, got nan"):
        prm.aggregate([1.0, float("nan")])
    with pytest.raises(ValueError, match="step 0: the reward must be a finite number, got inf"):
        prm.aggregate([float("inf")], "min")
    with pytest.raises(ValueError, match="step 0: the reward must be a finite number, got None"):
        prm.aggregate([None])
    with pytest.raises(ValueError, match="step_rewards: expected a list of numbers, got one str"):
        prm.aggregate("12")
    assert prm.aggregate([1.0, -2.0]) == -2.0 and prm.aggregate(torch.tensor([1.0, 3.0]), "max") == 3.0
    with pytest.raises(ValueError, match=r"ProcessRewardModel.aggregate: the step rewards: no step rewards"):
        prm.aggregate([])  # a solution without steps has no score: 0 would outrank every doubted step


def _saving_the_tokenizer_fails(monkeypatch, tokenizer):
    def disk_full(*args, **kwargs):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(tokenizer, "save_pretrained", disk_full)


def test_a_failed_save_leaves_no_half_written_folder(tmp_path, monkeypatch, prm, orm, tiny_model, tiny_tokenizer):
    prm.save(tmp_path / "prm")
    before = {p.name: p.read_bytes() for p in (tmp_path / "prm").iterdir()}
    other = ProcessRewardModel(tiny_model, tiny_tokenizer, tag="\nOK?")
    with monkeypatch.context() as m:
        _saving_the_tokenizer_fails(m, tiny_tokenizer)
        for model, folder in ((other, "prm"), (other, "new"), (CombinedRewardModel(prm, orm), "combined"),
                              (EnsembleRewardModel([prm, orm]), "ensemble")):
            with pytest.raises(OSError, match="disk full"):
                model.save(tmp_path / folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prm"]  # no new folder, no temporary one left
    assert {p.name: p.read_bytes() for p in (tmp_path / "prm").iterdir()} == before  # the old copy, whole

    # saved over: no file of the previous model stays, but a Trainer's checkpoint folder beside it does
    (tmp_path / "prm" / "adapter_config.json").write_text("{}")  # e.g. from an earlier LoRA save
    (tmp_path / "prm" / "checkpoint-3").mkdir()
    (tmp_path / "prm" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (tmp_path / "prm" / "old_subfolder").mkdir()  # not the Trainer's: it goes with the previous model
    with monkeypatch.context() as m:  # a failed save puts the checkpoint it had moved back
        _saving_the_tokenizer_fails(m, tiny_tokenizer)
        with pytest.raises(OSError, match="disk full"):
            other.save(tmp_path / "prm")
    assert (tmp_path / "prm" / "checkpoint-3" / "trainer_state.json").read_text() == "{}"
    other.save(tmp_path / "prm")
    assert not (tmp_path / "prm" / "adapter_config.json").exists()
    assert not (tmp_path / "prm" / "old_subfolder").exists()
    assert (tmp_path / "prm" / "checkpoint-3" / "trainer_state.json").read_text() == "{}"
    assert ProcessRewardModel.load(tmp_path / "prm", device="cpu").config.tag == "\nOK?"
    CombinedRewardModel(prm, orm).save(tmp_path / "combined")
    CombinedRewardModel(prm, None).save(tmp_path / "combined")
    assert not (tmp_path / "combined" / "outcome_reward_model").exists()  # would be loaded with the new PRM
    EnsembleRewardModel([prm, orm]).save(tmp_path / "ensemble")
    EnsembleRewardModel([prm]).save(tmp_path / "ensemble")
    assert sorted(p.name for p in (tmp_path / "ensemble").iterdir()) == ["ensemble_reward_config.json", "member_0"]


def test_a_save_refuses_a_folder_it_would_wipe_or_the_working_directory(tmp_path, monkeypatch, prm):
    """A save replaces its folder as a whole: a folder holding a user's own files lost them all (and "." failed
    with "PosixPath('.') has an empty name"). A folder holding a saved reward model, and a Trainer's checkpoints
    beside it, is replaced as before."""
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match=r"save: .*project holds \['notes.md'\], not a saved copy"):
        prm.save(mine)
    assert (mine / "notes.md").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    for here in (".", tmp_path):
        with pytest.raises(ValueError, match="is the working directory or holds it"):
            prm.save(here)
    prm.save(tmp_path / "prm")
    (tmp_path / "prm" / "checkpoint-5").mkdir()
    prm.save(tmp_path / "prm")  # its own save is replaced, the checkpoint kept
    assert (tmp_path / "prm" / "process_reward_config.json").exists() and (tmp_path / "prm" / "checkpoint-5").is_dir()
    (tmp_path / "notes.txt").write_text("mine")  # a file where the folder goes: renamed aside, every later save failed
    with pytest.raises(ValueError, match=r"notes.txt is a file; a save writes a folder there"):
        prm.save(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / ".notes.txt.old").exists()
    for combined in (CombinedRewardModel(prm, None), EnsembleRewardModel([prm])):  # they wiped it without a word
        with pytest.raises(ValueError, match=r"project holds \['notes.md'\], not a saved copy"):
            combined.save(mine)
    assert (mine / "notes.md").read_text() == "mine"
    # a link to a folder elsewhere (a mounted drive) is saved through: the save lands in its target, twice over
    (tmp_path / "drive").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "drive")
    for _ in range(2):
        prm.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "drive" / "process_reward_config.json").exists()


def test_check_replaceable_takes_a_folder_holding_any_one_of_its_owned_files_as_a_save(tmp_path):
    """``owned`` lists the files a save of this kind may write: a folder holding any one of them is a save."""
    from stepdpo_lite.atomic import check_replaceable
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "a.json").write_text("{}")
    (tmp_path / "saved" / "weights.bin").write_text("x")
    assert check_replaceable(tmp_path / "saved", owned=("a.json", "b.json")) == tmp_path / "saved"
    (tmp_path / "saved" / "a.json").unlink()
    with pytest.raises(ValueError, match=r"save: .*saved holds \['weights.bin'\], not a saved copy \(a.json, b.json\)"):
        check_replaceable(tmp_path / "saved", owned=("a.json", "b.json"))


def test_save_atomic_puts_the_old_copy_back_when_the_final_rename_fails(tmp_path, monkeypatch):
    from pathlib import Path

    from stepdpo_lite.atomic import save_atomic
    dst = tmp_path / "ds"
    save_atomic(dst, lambda p: Path(p, "v").write_text("old"))
    rename = Path.rename

    def failing_rename(self, target):
        if self.name.endswith(".tmp"):
            raise OSError("rename failed (simulated)")
        return rename(self, target)
    (dst / "checkpoint-1").mkdir()
    with monkeypatch.context() as m:
        m.setattr(Path, "rename", failing_rename)
        with pytest.raises(OSError, match="rename failed"):
            save_atomic(dst, lambda p: Path(p, "v").write_text("new"), keep=("checkpoint-*",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and (dst / "v").read_text() == "old"
    assert (dst / "checkpoint-1").is_dir()  # moved into the new folder, and back with the old one
    (dst / "checkpoint-1").rmdir()
    # a save killed between its two renames leaves only .ds.old: the next save restores it, never deletes it
    dst.rename(tmp_path / ".ds.old")
    with pytest.raises(RuntimeError, match="writer failed"):
        save_atomic(dst, lambda p: (_ for _ in ()).throw(RuntimeError("writer failed")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and (dst / "v").read_text() == "old"


def test_reward_model_options_are_checked_at_construction(prm, orm, tiny_model, tiny_tokenizer):
    bad_options = {"aggregation": ("median", "aggregation must be one of"),
                   "batch_size": ("8", "batch_size must be an int >= 1, got '8'"),
                   "prompt_template": ("Q: {question}", "prompt_template must be a str containing '{problem}'"),
                   "yes": (None, "yes must be a non-empty string, got None"),
                   "step_delimiter": ("", "step_delimiter must be a non-empty string"),
                   "quantization": ("8bit", "quantization must be '4bit' or None, got '8bit'")}
    for key, (value, message) in bad_options.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            ProcessRewardModel(tiny_model, tiny_tokenizer, **{key: value})
    with pytest.raises(ValueError, match=re.escape("prompt_template '{problem} {x}' takes more than {problem}")):
        OutcomeRewardModel(tiny_model, tiny_tokenizer, prompt_template="{problem} {x}")
    with pytest.raises(ValueError, match="config must be a RewardModelConfig .or None., got dict"):
        ProcessRewardModel(tiny_model, tiny_tokenizer, config={"tag": "x"})
    # was: the config's, silently
    with pytest.raises(ValueError, match="batch_size must be an int >= 1 or None, got 0"):
        prm.score_solutions(["a\n"], [SOLUTION], batch_size=0)
    with pytest.raises(ValueError, match="CombinedRewardModel: process must be a ProcessRewardModel.*got int"):
        CombinedRewardModel(42)
    with pytest.raises(ValueError, match="CombinedRewardModel: process must be a ProcessRewardModel.*got Outcome"):
        CombinedRewardModel(orm, prm)
    with pytest.raises(ValueError, match="CombinedRewardModel: max_steps must be an int >= 1 or None, got 0"):
        CombinedRewardModel(prm, None, max_steps=0)
    with pytest.raises(ValueError, match="CombinedRewardModel: no process reward model, so no step rewards"):
        CombinedRewardModel(None, orm).extract_and_aggregate_steps(SOLUTION)  # was: rewards [0.0, 0.0]
    with pytest.raises(ValueError, match=r"EnsembleRewardModel: models\[1\] must be a reward model.*got int"):
        EnsembleRewardModel([prm, 42])
    with pytest.raises(ValueError, match="EnsembleRewardModel: weights: expected a list of numbers, got float"):
        EnsembleRewardModel([prm], weights=1.0)
    with pytest.raises(ValueError, match="CombinedRewardModel: process_weight must be a finite number, got 'x'"):
        CombinedRewardModel(prm, orm, process_weight="x")
    with pytest.raises(ValueError, match=r"EnsembleRewardModel: weights\[1\] must be a finite number, got nan"):
        EnsembleRewardModel([prm, prm], weights=[0.5, float("nan")])


@pytest.mark.parametrize("cls", [ProcessRewardModel, OutcomeRewardModel, CombinedRewardModel, EnsembleRewardModel])
def test_loading_from_a_folder_that_is_not_there_names_the_kind(tmp_path, cls):
    """CombinedRewardModel.load and EnsembleRewardModel.load raised pathlib's bare "[Errno 2] No such file"."""
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope' / cls.config_file} is missing: not a "
                                                          f"saved {cls.__name__}")):
        cls.load(tmp_path / "nope")


def test_a_folder_that_is_not_there_is_named_as_such(tmp_path, monkeypatch):
    """A user's trial: a folder that does not exist read as a folder that lacks its config file."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape("no such folder: wrong/nothere, so wrong/nothere/process_"
                                                          f"reward_config.json is missing (looked from {tmp_path})")):
        ProcessRewardModel.load("wrong/nothere")


def test_a_saved_reward_model_that_lost_a_file_says_its_save_is_incomplete(tmp_path, saved_base):
    """A user's trial: without its adapter weights or config, ProcessRewardModel.load said to load it with
    ProcessRewardModel.load, the call just made."""
    import shutil

    from stepdpo_lite.models import load_model
    model, tok = load_model(saved_base, quantization=None, lora={"r": 4}, device="cpu")
    ProcessRewardModel(model, tok).save(tmp_path / "prm")
    for lost in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copytree(tmp_path / "prm", tmp_path / lost)
        (tmp_path / lost / lost).unlink()
        with pytest.raises(ValueError, match=re.escape(f"loading {tmp_path / lost}: load_model: the save at "
                                                       f"{tmp_path / lost} is incomplete: {lost} is missing (was the "
                                                       "save interrupted?)")):
            ProcessRewardModel.load(tmp_path / lost, device="cpu")


def test_save_atomic_removes_the_temporary_folders_of_earlier_killed_saves_of_its_target_only(tmp_path):
    """A user's trial: a save killed while writing left .<name>.<random>.tmp/ (a half-written adapter), which no
    later save removed; they pile up unseen in runs/."""
    import os
    from pathlib import Path

    from stepdpo_lite.atomic import save_atomic
    left = {name: tmp_path / name for name in (".prm.k3x_9abc.tmp", ".prm.v2.k3x_9abc.tmp", ".prm2.k3x_9abc.tmp",
                                               ".prm.short.tmp", ".orm.k3x_9abc.tmp")}
    for folder in left.values():
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_text("half")
        os.utime(folder, (1, 1))  # long ago
    newer = tmp_path / ".prm.newer123.tmp"  # a save of prm begun after this one (another process)
    newer.mkdir()
    os.utime(newer, (4e9, 4e9))
    save_atomic(tmp_path / "prm", lambda p: Path(p, "v").write_text("new"))
    assert (tmp_path / "prm" / "v").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted(
        [newer.name] + [name for name in left if name != ".prm.k3x_9abc.tmp"])


def test_a_relative_path_that_is_not_there_says_where_it_was_looked_for(tmp_path, monkeypatch):
    """README's example loads "runs/tiny/prm": run from another folder, the error did not say from which."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(f"runs/tiny/prm/process_reward_config.json is missing "
                                                          f"(looked from {tmp_path}): not a saved ProcessRewardModel")):
        ProcessRewardModel.load("runs/tiny/prm")


def test_loading_a_bad_config_names_the_file_and_field(tmp_path, prm, orm):
    import json
    prm.save(tmp_path / "prm")
    config_path = tmp_path / "prm" / "process_reward_config.json"
    for text, message in (('{"tag": "\\nIs', "not valid JSON"), ("[1, 2]", "must hold a JSON object, got list"),
                          ('{"aggregation": "median"}', "aggregation must be one of"),
                          ('{"batch_size": "16"}', "batch_size must be an int >= 1, got '16'"),
                          ('{"max_length": 5000}', "max_length 5000 is longer than the model's context")):
        config_path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "prm")) + ".*" + re.escape(message)):
            ProcessRewardModel.load(tmp_path / "prm", device="cpu")
    CombinedRewardModel(None, orm).save(tmp_path / "combined")
    config_path = tmp_path / "combined" / "combined_reward_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({k: v for k, v in config.items() if k != "process_weight"}))
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: missing field(s) ['process_weight']")):
        CombinedRewardModel.load(tmp_path / "combined")
    config_path.write_text(json.dumps({**config, "max_steps": "3"}))
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: CombinedRewardModel: max_steps must be")):
        CombinedRewardModel.load(tmp_path / "combined")
    config_path.write_text(json.dumps(config))
    shutil.rmtree(tmp_path / "combined" / "outcome_reward_model")  # an error, not a model with a part less
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: the model was saved with outcome_reward_model/")):
        CombinedRewardModel.load(tmp_path / "combined")
    EnsembleRewardModel([orm]).save(tmp_path / "ensemble")
    config_path = tmp_path / "ensemble" / "ensemble_reward_config.json"
    config_path.write_text(json.dumps({"weights": [1.0]}))
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: missing field(s) ['members']")):
        load_reward_model(tmp_path / "ensemble")
    config_path.write_text(json.dumps({"weights": [1.0, 2.0], "members": ["member_0"]}))
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: EnsembleRewardModel: 2 weights for 1 members")):
        load_reward_model(tmp_path / "ensemble")


def test_a_combined_config_whose_parts_is_one_str_says_so(tmp_path):
    """Its parts were read a character at a time: "the model was saved with p/, which is missing"."""
    import json
    (tmp_path / "outcome_reward_model").mkdir()
    config_path = tmp_path / CombinedRewardModel.config_file
    config_path.write_text(json.dumps({"process_weight": 0.0, "outcome_weight": 1.0, "parts": "outcome_reward_model"}))
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: parts: expected a list of folder names, got one "
                                                   "str ('outcome_reward_model'); wrap it in a list")):
        CombinedRewardModel.read_config(tmp_path)
    config_path.write_text(json.dumps({"process_weight": 0, "outcome_weight": 1, "parts": ["outcome_reward_model"]}))
    assert CombinedRewardModel.read_config(tmp_path)["parts"] == ["outcome_reward_model"]


def test_combined_and_ensemble_check_their_weights_before_loading_a_part(tmp_path):
    """A NaN weight, a bad max_steps or one weight too few failed only after every part had loaded from its folder
    (minutes on a real base). The folders here do not exist: their FileNotFoundError came first."""
    nowhere = [tmp_path / "prm", tmp_path / "orm"]
    with pytest.raises(ValueError, match="CombinedRewardModel: process_weight must be a finite number, got nan"):
        CombinedRewardModel(*nowhere, process_weight=float("nan"))
    with pytest.raises(ValueError, match="CombinedRewardModel: max_steps must be an int >= 1 or None, got True"):
        CombinedRewardModel(*nowhere, max_steps=True)
    with pytest.raises(ValueError, match=re.escape("EnsembleRewardModel: 1 weights for 2 models")):
        EnsembleRewardModel(nowhere, weights=[1.0])
    with pytest.raises(ValueError, match=re.escape("EnsembleRewardModel: weights[1] must be a finite number, got inf")):
        EnsembleRewardModel(nowhere, weights=[1.0, float("inf")])


def test_encode_checks_each_step_as_scoring_does(prm, tiny_model, tiny_tokenizer):
    """encode (and the reward trainers' tokenize_rows) skipped score_solutions' step checks: a blank step was encoded
    as a tag right after the prompt, an empty list gave no tag at all, and None was a TypeError from the tokenizer."""
    from stepdpo_lite.reward_training import tokenize_rows
    with pytest.raises(ValueError, match="solution 0, step 0: a step must be a non-blank string, got ''"):
        prm.encode("p", ["", "Step 1: 1 + 1 = 2"])
    with pytest.raises(ValueError, match="solution 0, step 1: a step must be a non-blank string, got None"):
        prm.encode("p", ["Step 1: 1 + 1 = 2", None])
    with pytest.raises(ValueError, match="solution 0: no steps"):
        prm.encode("p", [])
    with pytest.raises(ValueError, match="row 1, step 0: a step must be a non-blank string, got 3"):
        tokenize_rows(prm, [{"prompt": "p", "completions": ["a"], "labels": [True]},
                            {"prompt": "p", "completions": [3], "labels": [True]}])
    ids, positions = prm.encode("p", ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 + 2 = 4"])  # good steps: as before
    assert len(positions) == 2 and ids[positions[-1]] == prm.tag_ids[-1]


def test_mistake_made_here_labels_read_the_drop_in_reachability():
    assert mistake_made_here_labels([]) == []
    assert mistake_made_here_labels([0.9, 0.9, 0.1, 0.05]) == pytest.approx([0.9, 1.0, 0.2, 0.95])
    assert mistake_made_here_labels([0.2, 0.9, 0.1]) == pytest.approx([0.2, 1.0, 0.2])  # a rise is no mistake
    assert mistake_made_here_labels(np.array([1.0, 1.0])) == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"expected probabilities in \[0, 1\] \(σ of the rewards\), got \[2.0\]"):
        mistake_made_here_labels([2.0])  # log-odds, by mistake
    with pytest.raises(ValueError, match="step 1's P must be a finite number, got nan"):
        mistake_made_here_labels([0.5, float("nan")])


def test_sigmoid_refuses_what_is_not_a_number():
    """np.asarray(x, dtype=float) read None as NaN (P = nan, no error), the str "-1.5" as one reward of -1.5 and
    True as a reward of 1."""
    assert sigmoid(0) == 0.5 and sigmoid([0, 1.0])[0] == 0.5
    for bad in (None, "2", True, [1.0, None], [True, False]):
        with pytest.raises(ValueError, match="sigmoid: expected log-odds numbers"):
            sigmoid(bad)


@pytest.mark.parametrize("process, outcome, message", [
    ([float("nan")], [1.0], r"process reward of solution 0 must be a finite number, got nan"),
    ([1.0, 2.0], [0.5, float("inf")], r"outcome reward of solution 1 must be a finite number, got inf"),
    ([1.0], [None], r"outcome reward of solution 0 must be a finite number, got None"),
])
def test_combine_refuses_a_part_reward_that_is_no_finite_number(prm, orm, process, outcome, message):
    """A NaN part gave a NaN combined reward without a word (EnsembleRewardModel refused it), which sorts anywhere."""
    with pytest.raises(ValueError, match=rf"CombinedRewardModel\.combine: {message}"):
        CombinedRewardModel(prm, orm).combine(process, outcome)


def test_save_atomic_gives_what_it_wrote_the_modes_of_a_plain_save_within_the_umask(tmp_path):
    """safetensors writes weights 0600, so every saved model.safetensors was owner-only in a 0755 folder."""
    import os
    import stat
    from pathlib import Path
    from stepdpo_lite.atomic import save_atomic

    def write(folder):  # a private file and subfolder, as safetensors and mkdtemp make them
        os.close(os.open(Path(folder, "model.safetensors"), os.O_CREAT | os.O_WRONLY, 0o600))
        Path(folder, "sub").mkdir(mode=0o700)
        os.close(os.open(Path(folder, "sub", "adapter_model.safetensors"), os.O_CREAT | os.O_WRONLY, 0o600))

    def modes(folder):
        return {p.relative_to(folder).as_posix(): oct(stat.S_IMODE(p.stat().st_mode))
                for p in [Path(folder), *Path(folder).rglob("*")]}

    old_umask = os.umask(0o027)
    try:
        save_atomic(tmp_path / "new", write)
        assert modes(tmp_path / "new") == {".": "0o750", "model.safetensors": "0o640", "sub": "0o750",
                                           "sub/adapter_model.safetensors": "0o640"}
        (tmp_path / "private").mkdir(mode=0o700)  # a replaced private folder: its files stay private too
        save_atomic(tmp_path / "private", write)
        assert modes(tmp_path / "private") == {".": "0o700", "model.safetensors": "0o600", "sub": "0o700",
                                               "sub/adapter_model.safetensors": "0o600"}
        os.umask(0o022)
        (tmp_path / "ckpt" / "checkpoint-1").mkdir(parents=True, mode=0o700)  # a kept entry keeps its mode
        save_atomic(tmp_path / "ckpt", write, keep=("checkpoint-*",))
        assert modes(tmp_path / "ckpt") == {".": "0o755", "model.safetensors": "0o644", "sub": "0o755",
                                            "sub/adapter_model.safetensors": "0o644", "checkpoint-1": "0o700"}
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared").chmod(0o770)  # a group's folder stays writable by the group
        save_atomic(tmp_path / "shared", write)
        assert modes(tmp_path / "shared")["."] == "0o770"
    finally:
        os.umask(old_umask)


def test_loading_a_prm_with_another_step_delimiter_than_it_was_saved_with_warns(tmp_path, tiny_model, tiny_tokenizer):
    """A user trial: load(path, step_delimiter="\\n") on a PRM trained on "\\n\\nStep" steps put its tags after
    every line (the answer line a step of its own), and best-of-N picked a wrong candidate, without a word."""
    import warnings
    ProcessRewardModel(tiny_model, tiny_tokenizer).save(tmp_path / "prm")
    OutcomeRewardModel(tiny_model, tiny_tokenizer).save(tmp_path / "orm")
    with pytest.warns(UserWarning, match=r"ProcessRewardModel.load: step_delimiter='\\n' is not the '\\n\\nStep' "
                                         r"saved with the model .*its tags go after each step as split by '\\n'"):
        overridden = ProcessRewardModel.load(tmp_path / "prm", device="cpu", step_delimiter="\n")
    assert overridden.config.step_delimiter == "\n"  # a warning: a PRM trained on lines saved with the default
    with warnings.catch_warnings(record=True) as caught:  # the saved delimiter again, or an ORM's (it never splits)
        warnings.simplefilter("always")
        ProcessRewardModel.load(tmp_path / "prm", device="cpu", step_delimiter="\n\nStep")
        OutcomeRewardModel.load(tmp_path / "orm", device="cpu", step_delimiter="\n")
    assert not [w for w in caught if "step_delimiter" in str(w.message)]


def test_the_load_warnings_name_the_users_line(tmp_path, tiny_model, tiny_tokenizer):
    """A regression test (it passed when written): load's warnings of a step_delimiter or max_length other than the
    saved ones are raised under transformers' and the kit's frames; they name this file's line (checks.warn_user)."""
    import warnings
    ProcessRewardModel(tiny_model, tiny_tokenizer, max_length=40).save(tmp_path / "prm")
    OutcomeRewardModel(tiny_model, tiny_tokenizer, max_length=40).save(tmp_path / "orm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ProcessRewardModel.load(tmp_path / "prm", device="cpu", step_delimiter="\n", max_length=60)
        OutcomeRewardModel.load(tmp_path / "orm", device="cpu", max_length=60)
    said = [w for w in caught if "RewardModel.load: " in str(w.message)]
    assert len(said) == 3 and {w.filename for w in said} == {__file__}, [(w.filename, w.message) for w in caught]


def test_an_input_too_long_says_how_a_saved_model_scores_longer_ones(tiny_model, tiny_tokenizer):
    """A user's trial: a PRM trained with max_length=512 refused most ProcessBench rows; that its training limit is
    its scoring limit, and that load(path, max_length=...) raises it, was said nowhere."""
    from stepdpo_lite.rewards import InputTooLong
    for kind in (ProcessRewardModel, OutcomeRewardModel):
        with pytest.raises(InputTooLong, match=rf"longer than max_length 20; .*up to the model's context \(a saved "
                                               rf"one: {kind.__name__}.load\(path, max_length=...\), trusting it "
                                               rf"only as far as it was trained\)"):
            kind(tiny_model, tiny_tokenizer, max_length=20).score_solutions(["p"], ["Step 1: 1 + 1 = 2" * 3])


def test_scoring_text_the_tokenizer_cannot_read_warns(tiny_model, tiny_tokenizer):
    """A user trial: "7 × 3 = 21 ✓" became <unk> tokens, and the PRM's P = 0.00 on the right step looked like a
    confident verdict."""
    import warnings
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    with pytest.warns(UserWarning, match=r"ProcessRewardModel.score_solutions: 1 of 2 solutions \(solution 1 "
                                         r"first\) hold text the tokenizer maps to its unknown token '<unk>'"):
        prm.score_solutions(["p\n", "p\n"], [["Step 1: 7 * 3 = 21"], ["Step 1: 7 × 3 = 21"]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OutcomeRewardModel(tiny_model, tiny_tokenizer).score_solutions(["p\n"], ["Step 1: 7 * 3 = 21"])


def test_scoring_a_layout_the_prm_was_not_trained_on_warns_once_per_call(prm):
    """A user trial: a PRM trained on data.delimit_steps rows (prompts that end in "\\n") scored get_rewards_for_steps'
    "{problem}" prompts, and steps 2..K without the delimiter, a log-odds off and without a word, where training
    warns of both. The toy world's layout (the notebooks'), a fitting prompt_template and a text with no prompt
    (get_reward_for_text) stay quiet."""
    import warnings
    prompts, sols = _problems(3)
    steps = [extract_steps(s) for s in sols]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prm.score_solutions(prompts, steps)
        prm.get_reward_for_text(sols[0])
        ProcessRewardModel(prm.model, prm.tokenizer, prompt_template="{problem}\n").get_rewards_for_steps(
            steps[0], problem="Problem: start with 2.")

    def warned(call):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert len(caught) == 1, [str(w.message) for w in caught]  # one per call, not one per row
        return str(caught[0].message)

    run_in, bare = [p.rstrip("\n") for p in prompts], [[s.removeprefix("\n\n") for s in ss] for ss in steps]
    multi = sum(len(ss) > 1 for ss in steps)
    assert multi >= 2
    assert re.fullmatch(r"ProcessRewardModel.score_solutions: 2 of 3 prompts run into their first step with no "
                        r"whitespace between .*data.delimit_steps \(a bare problem's prompt_template "
                        r"'\{problem\}' -> '\{problem\}\\n'\); its rewards of a layout it was not trained on .*",
                        warned(lambda: prm.score_solutions(run_in[:2] + prompts[2:], steps)))
    assert re.fullmatch(rf"ProcessRewardModel.score_solutions: {multi} of 3 solutions' steps 2..K do not open with "
                        r"the step_delimiter '\\n\\nStep' it was trained with: put it in front of them "
                        r"\(data.delimit_steps\); its rewards .*", warned(lambda: prm.score_solutions(prompts, bare)))
    both = warned(lambda: prm.score_solutions(run_in, bare))
    assert "3 of 3 prompts run into" in both and f"; {multi} of 3 solutions' steps 2..K" in both
    assert "1 of 1 prompts run into" in warned(lambda: prm.get_rewards_for_steps(steps[0], "Problem: start with 2."))


def test_an_orm_warns_of_a_prompt_run_into_its_solution_as_the_prm_does(orm, prm):
    """An ORM scored prompts that run straight into the solution ("...+ 3.Step 1: ...", no '\\n' as in its
    training rows, which train_outcome_reward_model warns of) without a word, while the PRM beside it warned of the
    same inputs. Its one check that applies (an ORM reads no step delimiter): once per call, not once per row; the
    toy world's layout, lists of steps (joined) and a text without a prompt stay quiet."""
    import warnings
    prompts, sols = _problems(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        orm.score_solutions(prompts, sols)
        orm.score_solutions(prompts, [extract_steps(s) for s in sols])
        orm.get_reward_for_text(sols[0])
    run_in = [p.rstrip("\n") for p in prompts[:2]] + prompts[2:]
    for model in (orm, prm):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.score_solutions(run_in, sols)
        said = [str(w.message) for w in caught]
        assert len(said) == 1 and re.fullmatch(
            rf"{type(model).__name__}.score_solutions: 2 of 3 prompts run into their first step with no whitespace "
            r"between .*\(a bare problem's prompt_template '\{problem\}' -> '\{problem\}\\n'\); its rewards of a "
            r"layout it was not trained on may be far off", said[0]), said
    with pytest.warns(UserWarning, match=r"OutcomeRewardModel.score_solutions: 1 of 1 prompts run into"):
        orm.get_reward_for_problem_solution("Problem: start with 2.", "Step 1: 2 + 1 = 3\n\nAnswer: 3")


def test_an_unknown_aggregation_is_refused_where_it_is_set(prm, tmp_path):
    """prm.config.aggregation = "minimum" was taken, to fail only at the next scoring by aggregation or at save
    (a function was refused where it was set). Refused there now, with the message the config's checks give."""
    with pytest.raises(ValueError, match=re.escape("reward model: aggregation must be one of ('weighted_sum', 'mean', "
                                                   "'min', 'max', 'product', 'last'), got 'minimum'")):
        prm.config.aggregation = "minimum"
    assert prm.config.aggregation == "min"
    prm.config.aggregation = "product"  # a known name is taken
    prm.save(tmp_path / "prm")
    for make in (lambda: RewardModelConfig(aggregation="minimum"), lambda: ProcessRewardModel(
            prm.model, prm.tokenizer, aggregation="minimum"), lambda: ProcessRewardModel.load(
            tmp_path / "prm", aggregation="minimum")):
        with pytest.raises(ValueError, match="aggregation must be one of .*got 'minimum'"):
            make()
    assert ProcessRewardModel.load(tmp_path / "prm").config.aggregation == "product"


def test_the_first_error_threshold_is_kept_with_the_prm_and_first_errors_reads_it(prm, tmp_path):
    """A user trial: the validation threshold (evaluation.choose_threshold) had no place in the config, so a saved
    PRM lost it, and a reloaded one could not say which step it rejects first without the number kept elsewhere."""
    import json
    from stepdpo_lite.evaluation import predict_first_error
    prompts, sols = _problems(6)
    rewards = prm.score_solutions(prompts, sols)
    threshold = float(np.float32(np.median([r for rs in rewards for r in rs])))  # one a float32 keeps exactly
    want = [predict_first_error(r, threshold) for r in rewards]
    assert len(set(want)) > 2  # solutions judged right and wrong at several steps: a wrong index would show
    with pytest.raises(ValueError, match=r"first_errors: no threshold; pass threshold=.*set config.first_error_"
                                         r"threshold .*evaluation.choose_threshold"):
        prm.first_errors(prompts, sols)
    assert prm.first_errors(prompts, sols, threshold=threshold) == want
    prm.config.first_error_threshold = np.float32(threshold)  # set by hand, as a numpy number: saved as a float
    prm.save(tmp_path / "prm")
    config_path = tmp_path / "prm" / "process_reward_config.json"
    saved = json.loads(config_path.read_text())
    assert saved["first_error_threshold"] == threshold
    again = ProcessRewardModel.load(tmp_path / "prm", device="cpu")
    assert again.config.first_error_threshold == threshold and again.first_errors(prompts, sols) == want
    assert again.first_errors(prompts, sols, threshold=-1e9) == [-1] * len(sols)  # the one given wins
    del saved["first_error_threshold"]  # a PRM saved before the field: it loads, with no threshold
    config_path.write_text(json.dumps(saved))
    assert ProcessRewardModel.load(tmp_path / "prm", device="cpu").config.first_error_threshold is None
    for bad in (float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="reward model: first_error_threshold must be a finite number"):
            ProcessRewardModel(prm.model, prm.tokenizer, first_error_threshold=bad)
        with pytest.raises(ValueError, match="first_errors: threshold must be a finite number"):
            prm.first_errors(prompts, sols, threshold=bad)
    prm.config.first_error_threshold = float("inf")  # set by hand: refused by save, not written for load to refuse
    with pytest.raises(ValueError, match="reward model: first_error_threshold must be a finite number, got inf"):
        prm.save(tmp_path / "prm")


def test_loading_with_a_max_length_past_the_trained_one_warns(tiny_model, tiny_tokenizer, tmp_path):
    """A user trial followed the InputTooLong advice (load with max_length=1024 a PRM trained at 256): a right
    15-step solution got P = 0.00 at step 1, without a word that the model never saw inputs that long."""
    import warnings
    ProcessRewardModel(tiny_model, tiny_tokenizer, max_length=40).save(tmp_path / "prm")
    with pytest.warns(UserWarning, match=r"ProcessRewardModel.load: max_length=60 is past the 40 saved with the "
                                         r"model .*the length it was trained at"):
        assert ProcessRewardModel.load(tmp_path / "prm", device="cpu", max_length=60).max_length == 60
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shorter, equal or unset: no warning
        ProcessRewardModel.load(tmp_path / "prm", device="cpu", max_length=40)
        ProcessRewardModel.load(tmp_path / "prm", device="cpu")


def test_input_lengths_measure_what_max_length_would_refuse(tiny_model, tiny_tokenizer):
    """A user's ProcessBench rows: encode() raised above max_length, so the only way to find the rows that fit was a
    try/except around every call."""
    for kind, solution in ((ProcessRewardModel, ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"]),
                           (OutcomeRewardModel, "Step 1: 1 + 1 = 2\n\nStep 2: 2 * 3 = 6")):
        model = kind(tiny_model, tiny_tokenizer, max_length=20)
        long = solution * 3 if isinstance(solution, list) else solution * 3
        n_short, n_long = model.input_lengths(["p", "p"], [solution, long])
        big = kind(tiny_model, tiny_tokenizer, max_length=None)
        assert n_short == len(big.encode("p", solution)[0]) and n_long == len(big.encode("p", long)[0]) > 20
        assert model.input_lengths([], []) == []


def test_a_prm_aggregates_by_a_function_per_call_and_its_config_refuses_one(prm, orm, tiny_model, tiny_tokenizer):
    """A user trial's own aggregation worked in bestofn.aggregate and search.beam_search, but prm.aggregate(r, fn) was
    refused as "aggregate_rewards: strategy must be one of", naming a function the user never called; and
    prm.config.aggregation = fn was taken silently, to fail only when scoring (and at save: the config is JSON)."""
    from stepdpo_lite.tutorial import bestofn

    def mean_last_two(rewards):
        return sum(rewards[-2:]) / len(rewards[-2:])
    assert prm.aggregate([3.0, 1.0, 2.0], mean_last_two) == 1.5 == bestofn.aggregate([[[3.0, 1.0, 2.0]]],
                                                                                    mean_last_two)[0][0]
    assert prm.aggregate(torch.tensor([4.0, 2.0]), lambda r: r[0] - r[1]) == 2.0  # it gets a list of floats
    with pytest.raises(ValueError, match=r"ProcessRewardModel.aggregate: strategy must be one of \(.*'min'.*\) or a "
                                         r"function \(a list of step rewards -> one score\), got 'median'"):
        prm.aggregate([1.0], "median")
    with pytest.raises(ValueError, match=r"ProcessRewardModel.aggregate: aggregation <lambda>'s score of the step "
                                         r"rewards must be a finite number, "
                                         r"got nan"):  # a NaN score would sort anywhere in a best-of-N pick
        prm.aggregate([1.0], lambda r: float("nan"))
    with pytest.raises(ValueError, match=r"ProcessRewardModel.aggregate: step 1: the reward must be a finite number"):
        prm.aggregate([1.0, float("nan")], mean_last_two)  # checked before the function sees it
    # Through the parts a CombinedRewardModel adds up (its combine), an own aggregation reaches the combined reward
    prompts, sols = _problems(2)
    combined = CombinedRewardModel(prm, orm, 0.7, 0.3)
    own, outcome = [prm.aggregate(r, mean_last_two) for r in prm.score_solutions(prompts, sols)], orm.score_solutions(
        prompts, sols)
    assert combined.combine(own, outcome) == pytest.approx([0.7 * p + 0.3 * o for p, o in zip(own, outcome)])
    # The config holds a name only: a function is refused where it is set, saying to pass it per call
    message = r"aggregation must be a name \(the config is saved as JSON\), got the function mean_last_two; pass it"
    with pytest.raises(ValueError, match=message):
        prm.config.aggregation = mean_last_two
    assert prm.config.aggregation == "min"
    with pytest.raises(ValueError, match=message):
        ProcessRewardModel(tiny_model, tiny_tokenizer, aggregation=mean_last_two)
    with pytest.raises(ValueError, match=message):
        RewardModelConfig(aggregation=mean_last_two)


def test_the_constructor_and_load_say_what_they_take_and_do_it(tmp_path, saved_base):
    """help(ProcessRewardModel) showed "Initialize self." and load(path, device=None, **overrides) bare, while
    errors send users to ProcessRewardModel.load(path, max_length=...). Each claim of the two docstrings, by a call:
    a path loads at full precision by default (load_model's default is "4bit"), a model object needs its
    tokenizer, overrides are RewardModelConfig fields (the config given is copied), an unknown one raises, a saved
    folder is refused by the constructor and load takes it with its saved config and the overrides."""
    import inspect

    from stepdpo_lite.models import load_model
    for cls in (ProcessRewardModel, OutcomeRewardModel):
        assert "full precision" in inspect.getdoc(cls.__init__) and "overrides" in inspect.getdoc(cls.load)
    assert inspect.signature(load_model).parameters["quantization"].default == "4bit"
    prm = ProcessRewardModel(saved_base, device="cpu")
    assert prm.config.quantization is None and not getattr(prm.model, "is_loaded_in_4bit", False)
    model, tok = load_model(saved_base, quantization=None, device="cpu")
    with pytest.raises(ValueError, match="ProcessRewardModel: pass the tokenizer with a model object"):
        ProcessRewardModel(model)
    given = RewardModelConfig(batch_size=5)
    assert ProcessRewardModel(model, tok, given, batch_size=7).config.batch_size == 7 and given.batch_size == 5
    with pytest.raises(ValueError, match=r"ProcessRewardModel: unknown option\(s\) \['batch_sz'\]"):
        ProcessRewardModel(model, tok, batch_sz=7)
    ProcessRewardModel(model, tok, aggregation="last").save(tmp_path / "prm")
    with pytest.raises(ValueError, match="holds a saved ProcessRewardModel: load it with ProcessRewardModel.load"):
        ProcessRewardModel(str(tmp_path / "prm"), device="cpu")
    again = ProcessRewardModel.load(tmp_path / "prm", device="cpu", batch_size=3)
    assert (again.config.aggregation, again.config.batch_size) == ("last", 3)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['batch_sz'\]"):
        ProcessRewardModel.load(tmp_path / "prm", device="cpu", batch_sz=3)


def test_steps_scored_without_a_problem_are_documented_as_a_layout_a_prm_did_not_see():
    """get_rewards_for_steps(steps) with no problem scored the steps after an empty prompt, without a word: the
    toy world's trained verifier reads a right solution's steps as right with the problem and as wrong without it.
    The docstring says so (a text's own steps hold the problem in their first step, a trained layout: no warning;
    score_solutions with an empty prompt warns where the PRM was trained with prompts)."""
    import inspect
    assert "``problem`` None: the steps alone, with no prompt, a layout a PRM trained with prompts did not see" in \
        " ".join(inspect.getdoc(ProcessRewardModel.get_rewards_for_steps).split())
    prm = ProcessRewardModel(str(tiny_models.TINY_VERIFIER_DIR), device="cpu")
    problem = toyworld.make_problems(1, "test", seed=6, min_ops=3, max_ops=3)[0]
    steps = extract_steps(problem.gold_solution)
    with_problem, alone = prm.get_rewards_for_steps(steps, problem.prompt), prm.get_rewards_for_steps(steps)
    assert min(with_problem) > 0 > max(alone), (with_problem, alone)
    in_text = prm.extract_and_aggregate_steps(problem.prompt + problem.gold_solution)[1]  # the problem in step 1
    assert min(in_text) > 0


def test_score_solutions_warns_of_the_layout_and_unread_text_naming_a_trainers_side(prm, orm):
    """The trainer scores each side's rows in one score_solutions call (it had scored them in chunks, each told
    warn_layout=False, and checked all rows itself): its layout and <unk> warnings count all rows, naming the side."""
    prompts, sols = _problems(3)
    unread = [s + " ×" if i else s for i, s in enumerate(sols)]
    for model in (prm, orm):
        with pytest.warns(UserWarning, match=rf"{type(model).__name__}.score_solutions \(rejected side\): 3 of 3 "
                                             "prompts run into"):
            model.score_solutions([p.rstrip("\n") for p in prompts], sols, side="rejected")
        with pytest.warns(UserWarning, match=rf"^{type(model).__name__}.score_solutions \(chosen side\): 2 of 3 "
                                             r"solutions \(solution 1 first\) hold text the tokenizer maps to its "
                                             "unknown token '<unk>'"):
            model.score_solutions(prompts, unread, side="chosen")


def test_score_solutions_looks_for_unread_text_in_the_ids_it_encoded_not_tokenizing_again(prm, orm):
    """warn_of_untrained_layout tokenized every prompt and its steps again only to look for the unknown token, though
    score_solutions had just encoded them: it reads those ids now, and the warning is the same."""
    prompts, sols = _problems(3)
    unread = [s + " ×" if i else s for i, s in enumerate(sols)]
    for model in (prm, orm):
        tokenized, tokenize = [], model._tokenize
        model._tokenize = lambda texts, tokenize=tokenize: tokenized.append(list(texts)) or tokenize(texts)
        with pytest.warns(UserWarning, match=rf"^{type(model).__name__}.score_solutions: 2 of 3 solutions "
                                             r"\(solution 1 first\) hold text the tokenizer maps to its unknown"):
            model.score_solutions(prompts, unread)
        assert len(tokenized) == 2 and tokenized[0] == prompts  # the prompts, then the steps (a PRM) or solutions


def test_input_too_long_names_the_solution_and_what_is_too_long(tiny_model, tiny_tokenizer):
    """The trainer scores a side in one call and renames "solution " to "row ": the message opens with it (an
    ``index`` and ``detail`` carried it past the trainer's scoring chunks before)."""
    from stepdpo_lite.rewards import InputTooLong
    for kind in (ProcessRewardModel, OutcomeRewardModel):
        with pytest.raises(InputTooLong) as caught:
            kind(tiny_model, tiny_tokenizer, max_length=20).score_solutions(["p", "p"], ["Step 1: 1 + 1 = 2",
                                                                                         "Step 1: 1 + 1 = 2" * 3])
        assert re.match(r"solution 1: \d+ tokens with its tags, longer than max_length 20; ", str(caught.value))


def test_building_a_reward_model_config_does_not_load_torch():
    """RewardModelConfig checked its aggregation against losses' strategy names on every field set, and losses
    imports torch: building a config (a CLI's --help, a JSON's check) loaded torch."""
    import subprocess
    import sys
    code = ("import sys; from stepdpo_lite.rewards import RewardModelConfig; RewardModelConfig(aggregation='mean'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    with pytest.raises(ValueError, match=r"aggregation must be one of \('weighted_sum', 'mean', 'min', 'max', "
                                         r"'product', 'last'\), got 'median'"):
        RewardModelConfig(aggregation="median")


def test_an_empty_prompt_to_a_model_trained_with_prompts_warns_naming_the_solution(tiny_model, tiny_tokenizer):
    """A user's trial: a PRM trained with prompts, scored with score_solutions([""], ...), gave rewards far off with
    no word (the layout warning skipped "" on purpose: the bare-text calls read the problem in the text). Its
    steps alone, get_rewards_for_steps(steps) with no problem, were let through too: only the text paths are."""
    import warnings
    prompts, sols = _problems(3)
    for kind in (ProcessRewardModel, OutcomeRewardModel):
        model = kind(tiny_model, tiny_tokenizer, trained_with_prompts=True)
        with pytest.warns(UserWarning, match=rf"^{kind.__name__}.score_solutions: 2 of 3 prompts are empty \(solution "
                                             r"1 first, field 'prompt'\) and it was trained with prompts"):
            model.score_solutions([prompts[0], "", ""], sols)
        if kind is ProcessRewardModel:
            for scorer in (model, CombinedRewardModel(model)):
                with pytest.warns(UserWarning, match=r"1 of 1 prompts are empty \(solution 0 first"):
                    scorer.get_rewards_for_steps(extract_steps(sols[0]))  # the steps alone, no problem
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a text holding its problem, the steps with a problem, an unknown layout
            model.get_reward_for_text(prompts[0] + sols[0])
            model.get_rewards_for_batch([prompts[1] + sols[1]])
            if kind is ProcessRewardModel:
                model.extract_and_aggregate_steps(prompts[0] + sols[0])
                CombinedRewardModel(model).extract_and_aggregate_steps(prompts[0] + sols[0])
                model.get_rewards_for_steps(extract_steps(sols[0]), "Start with 2.\n")
            kind(tiny_model, tiny_tokenizer).score_solutions([""], sols[:1])
    assert "must hold the problem" in " ".join(ProcessRewardModel.extract_and_aggregate_steps.__doc__.split())


def test_a_scoring_bar_shows_by_default_once_scoring_has_taken_two_seconds(monkeypatch, prm):
    """600 toy solutions scored for 8.5 s with no bar (progress defaulted to False); then a bar came past eight
    batches, which ignores how long a batch takes (a 7B PRM's 8 batches: minutes, no bar). tqdm's own delay=2 now:
    None -> a bar only once 2 s have passed, True -> at once, False -> none; the combined and ensemble models pass
    None and False on (they dropped False, and the combined one turned None into False)."""
    import io
    from functools import partial

    import tqdm.notebook
    import stepdpo_lite.rewards as rewards
    from tqdm import tqdm as terminal_bar
    asked, shown = [], io.StringIO()
    monkeypatch.setattr(rewards, "tqdm", lambda *a, **kw: asked.append(kw) or terminal_bar(*a, file=shown, **kw))
    prompts, sols = _problems(3)
    prm.score_solutions(prompts, sols, batch_size=1)  # done within 2 s: no bar drawn
    assert asked == [{"desc": "scoring", "delay": 2}] and shown.getvalue() == ""
    prm.solution_rewards(prompts, sols, batch_size=1, progress=True)
    assert asked[-1] == {"desc": "scoring", "disable": False} and "scoring: 100%" in shown.getvalue()
    prm.score_solutions(prompts, sols, progress=False)
    CombinedRewardModel(prm).score_solutions(prompts, sols)
    EnsembleRewardModel([prm]).score_solutions(prompts, sols, progress=False)
    assert asked[2:] == [{"desc": "scoring", "disable": True}, {"desc": "scoring", "delay": 2},
                         {"desc": "scoring", "disable": True}]
    with monkeypatch.context() as patched:  # the notebook's bar (tqdm.auto's there) takes delay= as well
        patched.setattr(rewards, "tqdm", partial(tqdm.notebook.tqdm, file=io.StringIO()))
        prm.score_solutions(prompts, sols)


def test_the_scoring_warnings_point_at_the_users_call(prm, orm):
    """They pointed at the kit's lines when the call went through solution_rewards (stacklevel counted from
    score_solutions): the user could not tell which call it was about."""
    import warnings
    prompts, sols = _problems(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prm.solution_rewards([p.rstrip() for p in prompts], sols)  # run into step 1
        prm.solution_rewards(prompts, [s + " ×" for s in sols])  # unread
        orm.score_solutions([p.rstrip() for p in prompts], sols)
    assert len(caught) == 3 and {w.filename for w in caught} == {__file__}, [(w.filename, w.lineno) for w in caught]


def test_sigmoid_is_the_probability_of_the_log_odds():
    """σ(r) = 1 / (1 + e^−r): a reward of +2 (log-odds for Yes) is P = 0.88, not 0.12; far values saturate."""
    import numpy as np
    from stepdpo_lite.rewards import sigmoid

    assert sigmoid(0) == 0.5 and sigmoid(2.0) == pytest.approx(0.8807971)
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0
    assert np.allclose(sigmoid([-2.0, 0.0, 2.0]), [0.1192029, 0.5, 0.8807971])


def test_an_input_of_exactly_max_length_tokens_is_scored(tiny_model, tiny_tokenizer):
    """max_length is the longest input allowed, not the first refused: n tokens fit max_length=n; n − 1 raises."""
    from stepdpo_lite.rewards import InputTooLong, OutcomeRewardModel, ProcessRewardModel

    for kind, solution in ((ProcessRewardModel, ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"]),
                           (OutcomeRewardModel, "Step 1: 1 + 1 = 2\n\nStep 2: 2 * 3 = 6")):
        n = kind(tiny_model, tiny_tokenizer).input_lengths(["p\n"], [solution])[0]
        assert len(kind(tiny_model, tiny_tokenizer, max_length=n).score_solutions(["p\n"], [solution])) == 1
        with pytest.raises(InputTooLong, match=f"solution 0: {n} tokens with its tags, longer than max_length {n - 1}"):
            kind(tiny_model, tiny_tokenizer, max_length=n - 1).score_solutions(["p\n"], [solution])


def test_a_capped_list_of_steps_merges_its_tail_into_the_last_kept_step(prm):
    prompts, sols = _problems(3)
    i, text = next((i, s) for i, s in enumerate(sols) if len(extract_steps(s)) > 2)
    steps = extract_steps(text)
    merged = [steps[0], "".join(steps[1:])]
    assert extract_steps(text, prm.config.step_delimiter, 2) == merged  # as a text's tail is merged
    capped = CombinedRewardModel(prm, None, max_steps=2)
    rewards = capped.get_rewards_for_steps(steps, prompts[i])
    assert rewards == pytest.approx(prm.get_rewards_for_steps(merged, prompts[i]), abs=1e-6)
    assert rewards[-1] != pytest.approx(prm.get_rewards_for_steps(steps[:2], prompts[i])[-1], abs=1e-6)  # tail read


def test_the_combined_models_default_weights_are_the_documented_ones(prm, orm):
    from pathlib import Path
    method = (Path(__file__).parents[1] / "docs" / "method.md").read_text()
    assert "w_p = 0.7, w_o = 0.3 by default" in method
    combined = CombinedRewardModel(prm, orm)
    assert (combined.process_weight, combined.outcome_weight) == (0.7, 0.3)
    prompts, sols = _problems(2)
    p = [min(r) for r in prm.score_solutions(prompts, sols)]
    o = orm.score_solutions(prompts, sols)
    assert combined.score_solutions(prompts, sols) == pytest.approx([0.7 * a + 0.3 * b for a, b in zip(p, o)],
                                                                    abs=1e-5)


def test_write_atomic_that_fails_leaves_the_previous_file_whole_and_no_temporary_file(tmp_path):
    from pathlib import Path

    from stepdpo_lite.atomic import write_atomic
    target = tmp_path / "fig.png"
    write_atomic(target, lambda tmp: Path(tmp).write_text("old"))

    def half_then_fail(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt  # BaseException: a user's interrupt must clean up too

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_write_json_atomic_writes_sorted_keys_readable_by_everyone(tmp_path):
    import json
    import stat

    from stepdpo_lite.atomic import write_json_atomic
    path = write_json_atomic(tmp_path / "sub" / "config.json", {"b": 1, "a": {"d": 2, "c": 3}})
    assert path.read_text() == json.dumps({"a": {"c": 3, "d": 2}, "b": 1}, indent=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
