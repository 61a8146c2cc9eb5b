"""Sampling's argument checks (stepdpo_lite.generation), on the shipped tiny base (data/tiny-base)."""

import numpy as np
import pytest

from stepdpo_lite import generation
from stepdpo_lite.tutorial import tiny_models, toyworld

PROMPT = toyworld.make_problems(1, "test")[0].prompt


@pytest.fixture(scope="module")
def base(tiny_base_path):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one torch thread avoids oversubscription
    yield tiny_models.load_tiny_base(tiny_base_path)
    torch.set_num_threads(before)


def test_one_str_is_not_a_list_of_prompts(base):
    """"ab" was sampled from as the two prompts "a" and "b"."""
    model, tok = base
    with pytest.raises(ValueError, match="sample_solutions: expected a list of prompts, got one str"):
        generation.sample_solutions(model, tok, "ab", n=1, max_new_tokens=2, progress=False)
    with pytest.raises(ValueError, match="expected a list of prompts, got one str"):
        generation.prompt_texts("abc")
    for bad in (None, np.array("a")):  # a 0-d array: a TypeError from list(), naming nothing (checks.list_of)
        with pytest.raises(ValueError, match=f"expected a list of prompts, got {type(bad).__name__}"):
            generation.prompt_texts(bad)
    assert generation.prompt_texts(p for p in ["a", "b"]) == ["a", "b"]  # a generator is read once, whole


def test_empty_and_over_long_prompts_are_refused_by_index(base):
    model, tok = base
    context = model.config.max_position_embeddings
    with pytest.raises(ValueError, match=r"sample_solutions: prompt 1 is empty \(0 tokens\)"):
        generation.sample_solutions(model, tok, [PROMPT, ""], n=1, max_new_tokens=2, progress=False)
    long = "Problem: " + "+ 1 " * 400  # 1,602 tokens on a 1,024-token context
    n_long = len(tok(long, add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError) as err:
        generation.sample_solutions(model, tok, [PROMPT, long], n=1, max_new_tokens=4, progress=False)
    assert (f"prompt 1 is {n_long} tokens; with max_new_tokens=4 that is {n_long + 4}, over the model's context "
            f"of {context} tokens") in str(err.value)
    fits = "x" * (context - 8)  # fits alone, but not with 160 new tokens
    with pytest.raises(ValueError, match="prompt 0 is .* tokens; with max_new_tokens=160"):
        generation.sample_solutions(model, tok, [fits], n=1, progress=False)


def test_a_prompt_the_tokenizer_cannot_read_is_warned_of_by_index(base):
    """"What is 7 × 3?" was sampled from as "What is 7 <unk> 3?" without a word: the policy answered a question it
    could not read."""
    import warnings
    model, tok = base
    with pytest.warns(UserWarning, match=r"sample_solutions: 1 of 2 prompts \(prompt 1 first\) hold text the "
                                         r"tokenizer maps to its unknown token '<unk>'"):
        generation.sample_solutions(model, tok, [PROMPT, PROMPT.replace("+", "×")], n=1, max_new_tokens=2,
                                    temperature=0, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generation.sample_solutions(model, tok, [PROMPT], n=1, max_new_tokens=2, temperature=0, progress=False)
    assert [str(w.message) for w in caught if "unknown token" in str(w.message)] == []  # a prompt it reads


def test_an_over_long_prompt_is_refused_without_transformers_own_too_long_line(base, tiny_base_path,
                                                                                transformers_warnings):
    """A user's trial: transformers logged "Token indices sequence length is longer than ... will result in indexing
    errors" before sample_solutions' own error, which names the prompt and the context."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_path)  # fresh: transformers warns once per tokenizer
    with pytest.raises(ValueError, match="prompt 1 is 1602 tokens; with max_new_tokens=4 that is 1606, over"):
        generation.sample_solutions(base[0], tokenizer, [PROMPT, "Problem: " + "+ 1 " * 400], n=1,
                                    max_new_tokens=4, progress=False)
    assert not [m for m in transformers_warnings if "Token indices" in m]


@pytest.mark.parametrize("kw, message", [
    (dict(n=0), "n must be an int >= 1, got 0"),  # was [[]]
    (dict(n=-1), "n must be an int >= 1, got -1"),
    (dict(batch_size=0), "batch_size must be an int >= 1, got 0"),  # was "range() arg 3 must not be zero"
    (dict(max_new_tokens=0), "max_new_tokens must be an int >= 1, got 0"),
    (dict(temperature=-1), r"temperature must be >= 0 \(0: greedy\), got -1"),  # was greedy
    (dict(temperature=float("nan")), "temperature must be a finite number, got nan"),
    (dict(seed=True), "seed must be an int >= 0, got True"),  # was seed 1
    (dict(seed=1.5), "seed must be an int >= 0, got 1.5"),  # was seed 1
])
def test_sampling_arguments_are_checked_by_name(base, kw, message):
    model, tok = base
    with pytest.raises(ValueError, match=f"sample_solutions: {message}"):
        generation.sample_solutions(model, tok, [PROMPT], **{"max_new_tokens": 2, "progress": False, **kw})


def test_temperature_zero_is_still_greedy(base):
    model, tok = base
    kw = dict(n=2, temperature=0, max_new_tokens=3, progress=False)
    (a, b), = generation.sample_solutions(model, tok, [PROMPT], seed=0, **kw)
    assert a == b == generation.sample_solutions(model, tok, [PROMPT], seed=1, **kw)[0][0]


def test_sampling_ignores_the_models_saved_generation_settings(base):
    """Instruct checkpoints ship sampling defaults in their generation config (Qwen2.5-Instruct: a repetition
    penalty, top-k, top-p), and ``generate`` filled in every setting a call left unset from it: "greedy" was
    penalised greedy and T = 1 a truncated distribution (a penalty of 1.3 changed every greedy solution here)."""
    import copy

    from stepdpo_lite.tutorial import step_generation

    model, tok = base
    prompts = [p.prompt for p in toyworld.make_problems(3, "test")]

    def draw():
        greedy = generation.sample_solutions(model, tok, prompts, n=1, temperature=0, max_new_tokens=48,
                                             progress=False)
        sampled = generation.sample_solutions(model, tok, prompts, n=2, temperature=1.0, max_new_tokens=48, seed=3,
                                              progress=False)
        steps = step_generation.generate(model, tok, prompts, n=2, temperature=1.0, max_new_tokens=48, seed=3)
        return greedy, sampled, [[g.text for g in row] for row in steps]

    plain = draw()
    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.update(repetition_penalty=1.3, no_repeat_ngram_size=2, top_k=2, top_p=0.5,
                                   temperature=0.3)
    try:
        assert draw() == plain
        assert model.generation_config.repetition_penalty == 1.3  # the model's own settings are back afterwards
    finally:
        model.generation_config = saved


def test_a_peft_policy_samples_without_its_bases_saved_generation_settings(base):
    """PEFT generates with its base model's generation config: the saved settings are set aside there, not on
    the wrapper (where the base still penalised greedy)."""
    import copy

    from peft import LoraConfig, get_peft_model

    model, tok = base
    prompts = [p.prompt for p in toyworld.make_problems(3, "test")]
    wrapped = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))  # B = 0
    wrapped.get_base_model().generation_config.update(repetition_penalty=1.3, top_k=2, top_p=0.5)
    for kw in (dict(n=1, temperature=0), dict(n=2, temperature=1.0, seed=3)):
        assert generation.sample_solutions(wrapped, tok, prompts, max_new_tokens=48, progress=False, **kw) == \
            generation.sample_solutions(model, tok, prompts, max_new_tokens=48, progress=False, **kw), kw


def test_the_seed_sets_the_samples(base):
    import torch

    model, tok = base
    kw = dict(n=4, temperature=1.0, max_new_tokens=16, progress=False)
    first = generation.sample_solutions(model, tok, [PROMPT], seed=0, **kw)
    torch.manual_seed(123)  # whatever the global generator holds
    assert generation.sample_solutions(model, tok, [PROMPT], seed=0, **kw) == first
    assert generation.sample_solutions(model, tok, [PROMPT], seed=1, **kw) != first


def test_every_eos_the_tokenizer_and_the_generation_config_name_ends_a_solution():
    from types import SimpleNamespace as NS
    assert generation.eos_token_ids(NS(generation_config=NS(eos_token_id=[7, 9])), NS(eos_token_id=9)) == [9, 7]
    assert generation.eos_token_ids(NS(generation_config=NS(eos_token_id=7)), NS(eos_token_id=9)) == [9, 7]
    assert generation.eos_token_ids(NS(), NS(eos_token_id=3)) == [3]  # no generation config: no None stop id
    assert generation.eos_token_ids(NS(generation_config=NS(eos_token_id=None)), NS(eos_token_id=None)) == []


def test_a_qlora_policy_loads_back_on_a_4bit_base_as_it_was_trained(tiny_base_path, tmp_path):
    """load_policy loaded every adapter at full precision by default: a policy trained on a 4-bit base (QLoRA) became
    another model (its logits moved by up to 4 in a user's trial, against 0.0025 in 4 bits), and nothing said so. Its
    folder records how its base was loaded, and that is the default; an explicit quantization wins; an adapter whose
    folder does not record it loads at full precision as before, with a warning."""
    import warnings

    import torch

    from stepdpo_lite import models

    trained, tok = models.load_model(tiny_base_path, quantization="4bit", device="cpu",
                                     lora={"r": 4, "init_lora_weights": False})
    trained.save_pretrained(tmp_path / "policy")
    enc = tok([PROMPT], return_tensors="pt", add_special_tokens=False)
    logits = lambda model: model(**enc).logits
    with torch.no_grad():
        expected = logits(trained.eval())
        with pytest.warns(UserWarning, match="nothing records whether its adapter was trained on a 4-bit base"):
            unrecorded, _ = generation.load_policy(tmp_path / "policy")
        assert not getattr(unrecorded, "is_loaded_in_4bit", False)
        models.write_portable_adapter_config(tmp_path / "policy", trained)  # what StepwiseDPOTrainer.save_model calls
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            policy, _ = generation.load_policy(tmp_path / "policy")
        assert policy.is_loaded_in_4bit and not [w for w in caught if "load_policy" in str(w.message)]
        torch.testing.assert_close(logits(policy), expected)
        full, _ = generation.load_policy(tmp_path / "policy", quantization=None)
        assert not getattr(full, "is_loaded_in_4bit", False) and not hasattr(full, "peft_config")  # merged


def test_a_saved_reward_model_is_not_loaded_as_a_policy(base, tmp_path):
    """A user's trial: load_policy("runs/tiny/prm") merged the verifier's adapter into its base and returned it as a
    policy, with a warning about its unrecorded quantization."""
    from stepdpo_lite.reward_ensembles import CombinedRewardModel
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel
    model, tok = base
    prm, orm = ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok)
    prm.save(tmp_path / "prm")
    orm.save(tmp_path / "orm")
    CombinedRewardModel(prm, orm).save(tmp_path / "combined")
    for name, kind in (("prm", "process"), ("orm", "outcome"), ("combined", "combined")):
        with pytest.raises(ValueError, match=f"^load_policy: {tmp_path / name} is a saved reward model "
                                             rf"\({kind}_reward_config.json\): load it with load_reward_model$"):
            generation.load_policy(tmp_path / name)


def test_a_policy_loads_in_the_dtype_asked(tiny_base_path):
    """Notebook 01 samples at the profile's dtype; load_policy took none, so evaluation ran at the device's (on an L4
    under the t4-16gb profile: bfloat16, where the solutions were sampled and trained in float16)."""
    import torch
    assert generation.load_policy(tiny_base_path)[0].dtype == torch.float32  # None: the device's, as before
    assert generation.load_policy(tiny_base_path, dtype="bfloat16")[0].dtype == torch.bfloat16


def test_nan_or_inf_logits_are_an_error_naming_the_dtype_and_the_fix(tiny_base_path):
    """A float16 policy whose forward pass overflowed (notebook 01 on a T4 samples in pure float16): greedy decoded
    token 0 ('' or "!!!!") without a word, T=1 stopped mid-cell in torch.multinomial ("probability tensor contains
    either inf, nan"). A -inf logit (a token a processor masks) is no overflow."""
    import torch
    model, tok = tiny_models.load_tiny_base(tiny_base_path)
    with torch.no_grad():  # stands in for the overflow: one weight inf, NaN logits after the next norm
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("inf")
    for temperature in (0, 1.0):
        with pytest.raises(ValueError, match=r"sample_solutions: NaN or inf logits: the model's torch.float32 "
                                             r"forward pass overflowed\. Load it in float32.*'eager'.*bfloat16"):
            generation.sample_solutions(model, tok, [PROMPT], n=2, temperature=temperature, max_new_tokens=3,
                                        progress=False)
    check = generation.FiniteLogits(torch.float16)
    masked = torch.tensor([[0.5, -float("inf")]])
    assert check(None, masked) is masked
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="the model's torch.float16 forward pass"):
            check(None, torch.tensor([[0.5, -float("inf")], [bad, 0.0]]))


def test_solutions_cut_at_max_new_tokens_warn_once_a_call_with_their_count(base, monkeypatch):
    """A solution stopped at max_new_tokens before its EOS was graded on what it wrote (wrong, or unparsable), with
    no word: accuracy, notebook 01's labels and best-of-N were biased where the knob was too small. One warning a
    call, counting the rows with no EOS, read from the ids: a row whose EOS is its last allowed token ended."""
    import warnings
    model, tok = base
    prompts = [p.prompt for p in toyworld.make_problems(6, "test")]
    kw = dict(n=1, temperature=0, batch_size=4, progress=False)  # batches of 4 and 2: one warning for both

    def sample(max_new_tokens):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            texts = generation.sample_solutions(model, tok, prompts, max_new_tokens=max_new_tokens, **kw)
        return [t for (t,) in texts], [str(w.message) for w in caught if "max_new_tokens=" in str(w.message)]

    whole, said = sample(160)  # the tiny profile's: every greedy toy solution ends (at most ~116 tokens)
    assert said == []
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in whole]
    limit = sorted(lengths)[len(lengths) // 2]  # a row of exactly `limit` tokens has no room left for its EOS
    assert 0 < (cut := sum(n >= limit for n in lengths)) < len(prompts), lengths
    short, said = sample(limit)
    assert said == [f"sample_solutions: {cut} of 6 solutions stopped at max_new_tokens={limit} before their end (cut: "
                    "graded on what they wrote); raise max_new_tokens"]
    assert all(w.startswith(s) for w, s in zip(whole, short))  # the texts themselves are as they were
    # every token an EOS of the generation config: one token a row, its last allowed one, and every row ended
    monkeypatch.setattr(model.generation_config, "eos_token_id", [*range(model.config.vocab_size)])
    assert sample(1)[1] == []


def test_samplings_and_loadings_warnings_name_the_users_line(base, tiny_base_path, tmp_path):
    """A regression test (it passed when written): the cut-solutions warning is raised past generate's frames
    (torch's no_grad, transformers'), load_policy's past models'; both name this file's line (checks.warn_user),
    not the kit's."""
    import warnings

    from stepdpo_lite import models

    model, tok = base
    adapter, _ = models.load_model(tiny_base_path, quantization=None, device="cpu", lora={"r": 4})
    adapter.save_pretrained(tmp_path / "policy")  # no record of its base's quantization: load_policy warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generation.sample_solutions(model, tok, [PROMPT], n=1, temperature=0, max_new_tokens=2, progress=False)
        generation.load_policy(tmp_path / "policy")
    said = [w for w in caught if str(w.message).startswith(("sample_solutions: ", "load_policy: "))]
    assert len(said) == 2 and {w.filename for w in said} == {__file__}, [(w.filename, w.message) for w in caught]


def test_a_prompt_that_fills_the_context_exactly_with_max_new_tokens_is_sampled(base):
    model, tok = base
    context = model.config.max_position_embeddings
    fits = "x" * (context - 4)
    assert len(tok(fits, add_special_tokens=False)["input_ids"]) == context - 4
    (text,), = generation.sample_solutions(model, tok, [fits], n=1, temperature=0, max_new_tokens=4, progress=False)
    assert isinstance(text, str)


def test_sampling_draws_from_the_full_distribution_and_temperature_zero_is_greedy():
    # top_k=0 must be said: generate fills an unset top_k with its global default, 50 (transformers 5.x:
    # GenerationConfig._get_default_generation_params), over the bare config exact_sampling leaves it
    assert generation.sampling_arguments(0.7) == dict(do_sample=True, temperature=0.7, top_k=0, top_p=1.0)
    assert generation.sampling_arguments(0) == dict(do_sample=False)


def test_each_prompts_n_solutions_are_its_own_and_in_order(base):
    model, tok = base
    prompts = [p.prompt for p in toyworld.make_problems(3, "test")]
    kw = dict(temperature=0, max_new_tokens=24, progress=False)
    alone = [generation.sample_solutions(model, tok, [p], n=1, **kw)[0][0] for p in prompts]
    assert len(set(alone)) == 3  # greedy solutions that tell the prompts apart
    assert generation.sample_solutions(model, tok, prompts, n=2, batch_size=4, **kw) == [[a, a] for a in alone]


def test_sampling_puts_the_tokenizers_padding_side_back_even_when_it_fails(base):
    class NanLogits:
        """``model`` whose ``generate`` meets NaN logits (FiniteLogits raises), all else passed through."""

        def __getattr__(self, name):
            return getattr(model, name)

        def generate(self, logits_processor, **kw):
            import torch
            logits_processor[0](None, torch.tensor([[float("nan")]]))

    model, tok = base
    before = tok.padding_side
    try:
        tok.padding_side = "right"
        generation.sample_solutions(model, tok, [PROMPT], n=1, temperature=0, max_new_tokens=2, progress=False)
        assert tok.padding_side == "right"
        with pytest.raises(ValueError, match="NaN or inf logits"):  # raised inside the loop, during generate
            generation.sample_solutions(NanLogits(), tok, [PROMPT], n=1, max_new_tokens=2, progress=False)
        assert tok.padding_side == "right"
    finally:
        tok.padding_side = before


def test_evaluating_puts_a_training_model_back_in_training_mode(base):
    model, _ = base
    was = model.training
    try:
        model.train()
        with generation.evaluating(model) as inside:
            assert inside is model and not model.training
        assert model.training
        model.eval()
        with generation.evaluating(model):
            pass
        assert not model.training  # an evaluating model stays so
    finally:
        model.train(was)


def test_the_sampling_bar_is_drawn_only_when_asked_and_named_as_asked(base, capsys):
    model, tok = base
    kw = dict(n=1, temperature=0, max_new_tokens=2)
    generation.sample_solutions(model, tok, [PROMPT], progress=False, **kw)
    assert "sampling" not in capsys.readouterr().err
    generation.sample_solutions(model, tok, [PROMPT], progress=True, **kw)
    assert "sampling: 100%" in capsys.readouterr().err
    generation.sample_solutions(model, tok, [PROMPT], progress="validation", **kw)
    assert "validation: 100%" in capsys.readouterr().err
