import dataclasses
import json
import logging
import os
import re

import pytest
import torch

from stepdpo_lite import models
from stepdpo_lite.tutorial import profiles


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random tiny Llama and the toy tokenizer saved as a normal model folder."""
    from stepdpo_lite.tutorial import tiny_models
    tok = tiny_models.build_tokenizer()
    path = tmp_path_factory.mktemp("tiny")
    tiny_models.build_tiny_model(tok, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _logits(model, tok, text="Problem: 3 + 4 (left to right)\nStep 1: 3 + 4 = 7"):
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**enc).logits


def test_load_plain_fp32(tiny_dir):
    model, tok = models.load_model(tiny_dir, quantization=None, device="cpu")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert tok.pad_token == "<pad>"


def test_load_4bit_nf4_on_cpu_is_quantized_and_close(tiny_dir):
    import bitsandbytes as bnb
    full, tok = models.load_model(tiny_dir, quantization=None, device="cpu")
    q, _ = models.load_model(tiny_dir, quantization="4bit", device="cpu")
    layer = q.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit) and layer.weight.quant_type == "nf4"
    assert q.config.quantization_config.bnb_4bit_use_double_quant
    a, b = _logits(full, tok), _logits(q, tok)
    assert a.shape == b.shape and not torch.equal(a, b)  # quantized: close, not identical
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.9


def test_4bit_lora_trains_only_the_adapter(tiny_dir):
    model, tok = models.load_model(tiny_dir, quantization="4bit", lora={"r": 4, "lora_alpha": 8}, device="cpu")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    targets = set(model.peft_config["default"].target_modules)
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= targets
    assert "lm_head" not in targets
    enc = tok(["Step 1: 2 + 2 = 4"], return_tensors="pt", add_special_tokens=False)
    model(**enc, labels=enc["input_ids"]).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_B" in n)


def test_lora_seed_gives_every_load_the_same_adapter(tiny_dir):
    """Notebook 04 loads one policy per method: each fresh adapter's lora_A came from wherever torch's random state
    stood, so methods compared "at the same seed" started from different weights."""
    def lora_a(**kw):
        model, _ = profiles.load_profile_model("smoke", lora=True, name_or_path=tiny_dir, device="cpu", **kw)
        return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_A" in n])

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = lora_a(lora_seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # torch's own random state left as it was
    assert torch.equal(first, lora_a(lora_seed=0)) and not torch.equal(first, lora_a(lora_seed=1))
    assert not torch.equal(lora_a(), lora_a())  # without it, from torch's random state as it stands
    with pytest.raises(ValueError, match="lora_seed=0 seeds a new adapter, but no adapter is added"):
        profiles.load_profile_model("smoke", name_or_path=tiny_dir, device="cpu", lora_seed=0)


def test_a_4bit_model_scores_as_it_trained(tiny_dir):
    """peft's prepare_model_for_kbit_training puts a 4-bit model's unquantized weights (embeddings, norms) in
    float32 for training; loaded to score, they stayed in 16 bits, so a reward model reloaded after training scored
    otherwise than the model its threshold was chosen on (up to ~1 log-odds on the smoke base, in bfloat16)."""
    training, tok = models.load_model(tiny_dir, quantization="4bit", dtype=torch.bfloat16, device="cpu",
                                      lora={"r": 4, "lora_alpha": 8})  # a fresh adapter changes no output
    training.eval()
    scoring, _ = models.load_model(tiny_dir, quantization="4bit", dtype=torch.bfloat16, device="cpu")
    assert scoring.model.norm.weight.dtype == scoring.model.embed_tokens.weight.dtype == torch.float32
    assert torch.equal(_logits(training, tok), _logits(scoring, tok))
    assert not [n for n, p in scoring.named_parameters() if p.dtype in (torch.float16, torch.bfloat16)]
    assert not [n for n, p in scoring.named_parameters() if p.requires_grad]  # peft's call froze the base too


@pytest.fixture(scope="module")
def biased_tiny_dir(tmp_path_factory):
    """A tiny Llama whose attention projections have a bias (as Qwen2's q/k/v do)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from stepdpo_lite.tutorial import tiny_models
    tok = tiny_models.build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, attention_bias=True, pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("biased")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def as_on_an_avx512bf16_cpu(monkeypatch):
    """Every Linear4bit built from here on takes bitsandbytes' AVX512-BF16 path, as on a CPU that has the instruction
    set: what models.keep_4bit_weights_unpacked undoes is then there on every CPU, and its tests can fail here too
    (on a CPU without it the layers never pack, with or without the kit's fix)."""
    import bitsandbytes.nn.modules as bnb_modules
    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)


def _qlora_step(path, eval_forward_first: bool):
    """Loss and LoRA gradients of one training step of a fresh 4-bit + LoRA model (same seed every call)."""
    torch.manual_seed(1)
    model, tok = models.load_model(path, quantization="4bit", device="cpu",
                                   lora={"r": 4, "lora_dropout": 0.0, "init_lora_weights": False})
    enc = tok(["Step 1: 2 + 2 = 4\n\nAnswer: 4"], return_tensors="pt", add_special_tokens=False)
    if eval_forward_first:  # what scoring a validation set between training steps does
        model.eval()
        with torch.no_grad():
            model(**enc)
        model.train()
    loss = model(**enc, labels=enc["input_ids"]).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_4bit_eval_forward_does_not_change_training(biased_tiny_dir, as_on_an_avx512bf16_cpu):
    # bitsandbytes 0.50 repacks 4-bit weights in place at an eval forward on CPUs with AVX512-BF16, after
    # which training goes through a kernel without autograd (models.keep_4bit_weights_unpacked). On any
    # CPU, one eval forward must leave the next training step exactly as it was: same kernel, same numbers.
    loss, grads = _qlora_step(biased_tiny_dir, eval_forward_first=False)
    loss_after_eval, grads_after_eval = _qlora_step(biased_tiny_dir, eval_forward_first=True)
    assert torch.equal(loss, loss_after_eval)
    assert grads.keys() == grads_after_eval.keys() and any("lora_B" in n for n in grads)
    for name, grad in grads.items():
        assert grad is not None and grads_after_eval[name] is not None, name
        assert torch.equal(grad, grads_after_eval[name]), name


def test_gradient_checkpointing_is_turned_on_alike_for_4bit_and_16_bit_models_training_or_not(tiny_dir):
    """load_model turns checkpointing on itself for every model (peft's prepare_model_for_kbit_training is asked
    not to): non-reentrant, no KV cache, and a 4-bit + LoRA model's step still reaches its adapter."""
    for quantization in ("4bit", None):
        for lora in ({"r": 4, "lora_dropout": 0.0, "init_lora_weights": False}, None):
            model, tok = models.load_model(tiny_dir, quantization=quantization, device="cpu", lora=lora,
                                           gradient_checkpointing=True)
            checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())  # 5.2's too
            assert checkpointing and model.config.use_cache is False, (quantization, lora)
            if lora is None:
                continue
            model.train()
            enc = tok(["Step 1: 2 + 2 = 4\n\nAnswer: 4"], return_tensors="pt", add_special_tokens=False)
            model(**enc, labels=enc["input_ids"]).loss.backward()
            grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
            assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), quantization


def test_loads_warn_of_no_deprecated_checkpointing_name(tiny_dir, tmp_path):
    """Every load with checkpointing, a new adapter or a saved one printed transformers 5's FutureWarnings: the kit
    called gradient_checkpointing_enable, and PEFT's PeftModel reads is_gradient_checkpointing (filtered at the
    call). That message still comes from other callers: the filter is the call's, not the process's."""
    import warnings

    lora = {"r": 4, "lora_dropout": 0.0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = models.load_model(tiny_dir, quantization="4bit", device="cpu", lora=lora,
                                     gradient_checkpointing=True)
        model.save_pretrained(tmp_path)
        models.load_model(str(tmp_path), quantization=None, device="cpu", trainable=True, gradient_checkpointing=True)
        assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())  # transformers 5.2's too
        assert not [str(w.message) for w in caught if "checkpointing" in str(w.message)]
        model.base_model.model.is_gradient_checkpointing  # noqa: B018 (a deprecated name read outside the loads)
    renamed = hasattr(model, "is_activation_checkpointing")  # transformers 5.2 has the old name only: no warning
    assert [w.category for w in caught if "`is_gradient_checkpointing` is deprecated" in str(w.message)] == (
        [FutureWarning] if renamed else [])


def test_one_context_manager_quiets_pefts_checkpointing_read_for_the_loads_and_the_trainer():
    """load_model and StepwiseDPOTrainer.__init__ each wrote the same catch_warnings and filter out: one context
    manager holds it. It hides that FutureWarning only, inside the block only."""
    import inspect
    import warnings

    from stepdpo_lite import trainer
    for module in (models, trainer):
        assert "`is_gradient_checkpointing` is deprecated" not in inspect.getsource(module).replace(
            inspect.getsource(models.quiet_deprecated_checkpointing_read), "")
    message = "`is_gradient_checkpointing` is deprecated, use `is_activation_checkpointing`"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with models.quiet_deprecated_checkpointing_read():
            warnings.warn(message, FutureWarning)
            warnings.warn("another", FutureWarning)
        warnings.warn(message, FutureWarning)
    assert [str(w.message) for w in caught] == ["another", message]


def test_a_precomputed_reference_of_a_4bit_model_is_the_policy_itself(biased_tiny_dir, tmp_path,
                                                                     as_on_an_avx512bf16_cpu):
    """A 4-bit model loaded without load_model, a fresh LoRA adapter (B = 0: policy = reference) and
    precompute_ref_log_probs: TRL's reference pass ran inside its __init__, before the trainer unpacked the weights,
    so on a CPU with AVX512-BF16 the reference went through bitsandbytes' bf16 kernel (loss 1.384636, not 2·log 2)."""
    import math

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from stepdpo_lite.trainer import StepwiseDPOConfig, StepwiseDPOTrainer
    from stepdpo_lite.tutorial import toyworld
    rows = [dict(prompt=p.prompt, chosen=p.gold_solution, rejected=p.gold_solution.replace("=", "= 1", 1))
            for p in toyworld.make_problems(2, seed=1)]
    fast = dict(report_to=[], use_cpu=True, bf16=False, save_strategy="no", per_device_train_batch_size=2)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32,
                                bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(biased_tiny_dir, quantization_config=config, device_map={"": "cpu"})
    tr = StepwiseDPOTrainer(model, args=StepwiseDPOConfig(output_dir=str(tmp_path), precompute_ref_log_probs=True,
                                                          step_loss_weight=0.0, **fast),
                            train_dataset=Dataset.from_list(rows),
                            processing_class=AutoTokenizer.from_pretrained(biased_tiny_dir),
                            peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    batch = tr.data_collator([tr.train_dataset[i] for i in range(2)])
    with torch.no_grad():
        assert tr.compute_loss(tr.model, batch).item() == pytest.approx(math.log(2), abs=1e-6)


def test_a_reward_model_given_a_4bit_model_object_turns_the_cpu_packing_off(biased_tiny_dir, as_on_an_avx512bf16_cpu):
    """The reward models score a 4-bit model loaded elsewhere (a model object) as load_model's: no layer packs for
    CPU inference, so the scores are the same on every CPU."""
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from stepdpo_lite.rewards import ProcessRewardModel
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(biased_tiny_dir, quantization_config=config, device_map={"": "cpu"})
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(layer.support_avx512bf16_for_cpu for layer in layers)  # as on such a CPU
    ProcessRewardModel(model, AutoTokenizer.from_pretrained(biased_tiny_dir))
    assert not any(layer.support_avx512bf16_for_cpu for layer in layers)


def test_keep_4bit_weights_unpacked_undoes_cpu_packing(biased_tiny_dir):
    # A 4-bit model loaded without load_model, whose weights a forward already packed for CPU inference
    # (forced here with bitsandbytes' own converter, so the test runs on every CPU).
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32,
                                bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(biased_tiny_dir, quantization_config=config, device_map={"": "cpu"})
    reference, tok = models.load_model(biased_tiny_dir, quantization="4bit", device="cpu")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(layer.weight.data,
                                                                                     layer.weight.quant_state)
    assert models.keep_4bit_weights_unpacked(model) == len(layers) > 0
    assert not any(layer.weight.quant_state.packing_format_for_cpu or layer.support_avx512bf16_for_cpu
                   for layer in layers)
    # Packing stores the block scales (absmax) in bfloat16 and the inverse re-quantizes them, so the unpacked
    # model is not bit-identical to one never packed: bfloat16 keeps 8 bits of mantissa, ~0.4% per scale.
    torch.testing.assert_close(_logits(model, tok), _logits(reference, tok), rtol=0.02, atol=0.02)


def test_a_missing_local_folder_is_named_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    """transformers reports these as a malformed repo id, or offline as a failed connection to the Hub."""
    monkeypatch.chdir(tmp_path)
    for name in (tmp_path / "nope-model", "./nope", "runs/tiny/prm"):  # absolute, explicit, deeper than org/name
        with pytest.raises(FileNotFoundError, match=f"load_model: no such folder: {name}"):
            models.load_model(name, quantization=None)
    with pytest.raises(FileNotFoundError, match=re.escape(f"no such folder: {tmp_path / 'nope-model'}") + "$"):
        models.load_model(tmp_path / "nope-model", quantization=None)  # absolute: not again in parentheses


def test_a_missing_folder_named_like_a_hub_id_is_named_when_the_hub_has_none(tmp_path, monkeypatch):
    """"runs/policy" reads as a Hub id (org/name); when it failed there, the error spoke of the Hub or a connection."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # its "org" is a folder here: a path with a typo, or a run not made yet
    with pytest.raises(FileNotFoundError, match="load_model: no such folder: runs/policy"):
        models.load_model("runs/policy", quantization=None)


def test_a_bare_name_that_is_neither_a_folder_here_nor_on_the_hub_says_both(tmp_path, monkeypatch):
    """A bare name ("nopolicy") can be a folder or a Hub id; offline, the error spoke only of a failed connection."""
    from stepdpo_lite import generation
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # what transformers asks, at each call
    for load in (lambda n: models.load_model(n, quantization=None), generation.load_policy):
        with pytest.raises(FileNotFoundError, match=rf"load_model: 'nopolicy' is no folder here \("
                                                    rf"{re.escape(os.path.join(os.getcwd(), 'nopolicy'))}\), and the "
                                                    "Hub is offline") as err:
            load("nopolicy")
        assert isinstance(err.value.__cause__, OSError)  # transformers' own error, kept


def test_a_missing_relative_path_whose_parent_is_missing_too_names_its_absolute_path(tmp_path, monkeypatch):
    """"runs/nope" (no runs/ here either) reads as a Hub id too: offline, the error was the Hub's failed connection."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match=re.escape(f"'runs/nope' is no folder here ({tmp_path}/runs/nope), "
                                                          "and the Hub is offline")):
        models.load_model("runs/nope", quantization=None)
    with pytest.raises(FileNotFoundError, match=re.escape(f"no such folder: ./runs/nope ({tmp_path}/runs/nope)")):
        models.load_model("./runs/nope", quantization=None)


def test_a_folder_that_holds_no_model_is_named_with_what_it_lacks(tiny_dir, tmp_path):
    """An empty folder or a combined reward model's gave transformers' "Couldn't instantiate the backend tokenizer ...
    install sentencepiece", an adapter folder without its weights an HFValidationError about repo ids."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "combined").mkdir()
    (tmp_path / "combined" / "combined_reward_config.json").write_text("{}")
    for name, message in (
            ("empty", r"holds no model \(config.json\) nor adapter \(adapter_config.json\)$"),
            ("combined", r"holds no model \(config.json\) nor adapter \(adapter_config.json\); a saved reward "
                         r"model \(combined_reward_config.json\): load it with load_reward_model$")):
        with pytest.raises(ValueError, match=f"^load_model: {re.escape(str(tmp_path / name))} {message}"):
            models.load_model(tmp_path / name, quantization=None, device="cpu")


@pytest.mark.parametrize("saved, lost", [("adapter", "adapter_model.safetensors"), ("adapter", "adapter_config.json"),
                                         ("prm", "adapter_model.safetensors"), ("prm", "adapter_config.json"),
                                         ("prm", "tokenizer.json"), ("model", "model.safetensors"),
                                         ("model", "config.json"), ("model", "tokenizer.json")])
def test_a_save_that_lost_a_file_is_named_incomplete_with_the_file(tiny_dir, tmp_path, saved, lost):
    """A user's trial: a PRM without its adapter weights or config was "a saved reward model: load it with
    ProcessRewardModel.load" (the call just made), one without tokenizer.json asked to install sentencepiece, and a
    policy without model.safetensors gave transformers' bare OSError."""
    import shutil
    if saved == "model":
        shutil.copytree(tiny_dir, tmp_path / saved)
    else:
        model, tok = models.load_model(tiny_dir, quantization=None, lora={"r": 4}, device="cpu")
        model.save_pretrained(tmp_path / saved)
        tok.save_pretrained(tmp_path / saved)
        if saved == "prm":
            (tmp_path / saved / "process_reward_config.json").write_text("{}")
    (tmp_path / saved / lost).unlink()
    with pytest.raises(ValueError, match=f"^load_model: the save at {re.escape(str(tmp_path / saved))} is incomplete: "
                                         f"{re.escape(lost)} is missing \\(was the save interrupted\\?\\)$"):
        models.load_model(tmp_path / saved, quantization=None, device="cpu")


def test_a_lost_tokenizer_json_is_named_when_transformers_asks_for_protobuf(tiny_dir, tmp_path, monkeypatch):
    """On transformers 5.2 (pyproject's floor) a save without tokenizer.json raised ImportError (protobuf asked for),
    not the ValueError of later releases, and went out bare instead of as "the save is incomplete"."""
    import shutil

    import transformers

    def asks_for_protobuf(*args, **kwargs):
        raise ImportError("requires the protobuf library")

    shutil.copytree(tiny_dir, tmp_path / "model")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", asks_for_protobuf)
    with pytest.raises(ImportError, match="protobuf"):  # tokenizer.json there: the error is not ours to reword
        models.load_model(tmp_path / "model", quantization=None, device="cpu")
    (tmp_path / "model" / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="is incomplete: tokenizer.json is missing"):
        models.load_model(tmp_path / "model", quantization=None, device="cpu")

def test_a_saved_adapter_records_how_its_base_was_loaded(tiny_dir, tmp_path):
    """Nothing saved said that a policy was trained on a 4-bit base: it was reloaded at full precision, another
    model. ``write_portable_adapter_config`` given the model records it; a call without the model keeps it."""
    for quantization in ("4bit", None):
        model, _ = models.load_model(tiny_dir, quantization=quantization, lora={"r": 4}, device="cpu")
        folder = tmp_path / str(quantization)
        model.save_pretrained(folder)
        assert models.adapter_quantization(folder, default="unrecorded") == "unrecorded"
        models.write_portable_adapter_config(folder, model)
        models.write_portable_adapter_config(folder)  # as onpolicy.save_policies does after the trainer's save
        assert models.adapter_quantization(folder, default="unrecorded") == quantization
        assert json.loads((folder / models.BASE_RECORD).read_text())["trained_with"] == tiny_dir
    assert models.adapter_quantization(tiny_dir, default="unrecorded") is None  # a full model: nothing to record


def test_an_adapter_warns_when_another_base_sits_where_it_was_trained(tmp_path, caplog):
    """A user's trial: a PRM trained on a copy of tiny-verifier, then tiny-base put there (the same config and file
    sizes), loaded silently with other scores. The save records ``base_fingerprint``; a save without it loads as
    before."""
    from stepdpo_lite.tutorial import tiny_models
    tok = tiny_models.build_tokenizer()
    for seed in (1, 2):
        tiny_models.build_tiny_model(tok, seed=seed).save_pretrained(tmp_path / f"base{seed}")
        tok.save_pretrained(tmp_path / f"base{seed}")
    os.rename(tmp_path / "base1", tmp_path / "base")
    assert models.base_fingerprint(tmp_path / "base") != models.base_fingerprint(tmp_path / "base2")
    model, _ = models.load_model(tmp_path / "base", quantization=None, lora={"r": 4}, device="cpu")
    model.save_pretrained(tmp_path / "adapter")
    models.write_portable_adapter_config(tmp_path / "adapter", model)
    record = json.loads((tmp_path / "adapter" / models.BASE_RECORD).read_text())
    assert record["base_fingerprint"] == models.base_fingerprint(tmp_path / "base")
    assert record["base_fingerprint"]["hidden_size"] == model.config.hidden_size
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.models"):
        models.load_model(tmp_path / "adapter", quantization=None, device="cpu")  # its own base: no warning
    assert caplog.messages == []
    os.rename(tmp_path / "base", tmp_path / "base1")
    os.rename(tmp_path / "base2", tmp_path / "base")
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.models"):
        models.load_model(tmp_path / "adapter", quantization=None, device="cpu")
    assert caplog.messages == [f"load_model: {tmp_path / 'adapter'}: the base model at {tmp_path / 'base'} is not the "
                               "one it was trained on (weights differ from base_model.json)"]
    del record["base_fingerprint"]
    (tmp_path / "adapter" / models.BASE_RECORD).write_text(json.dumps(record))  # saved before fingerprints
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.models"):
        models.load_model(tmp_path / "adapter", quantization=None, device="cpu")
    assert caplog.messages == []


def test_lora_config_forms():
    from peft import LoraConfig
    assert models.make_lora_config(True).r == 16
    assert models.make_lora_config({"r": 4}).lora_alpha == 32
    cfg = LoraConfig(r=2)
    assert models.make_lora_config(cfg) is cfg
    with pytest.raises(ValueError, match="lora must be"):
        models.make_lora_config("yes")
    with pytest.raises(ValueError, match="quantization"):
        models.load_model("x", quantization="8bit")


@pytest.mark.parametrize("lora, message", [
    (False, "lora must be None, True, a dict or a peft.LoraConfig, got False"), ("yes", "got 'yes'"),
    ({"rank": 8}, r"lora has unknown key\(s\) \['rank'\]; LoraConfig's fields are \[.*'lora_alpha'.*'r'"),
    ({"r": True}, "load_model: lora: r must be an int >= 1, got True"), ({"r": "8"}, "got '8'")])
def test_a_wrong_lora_fails_before_the_model_loads(tmp_path, lora, message):
    """It failed (or False trained the base) only once the base was loaded: minutes on a real model. A folder
    that does not exist shows the order: its FileNotFoundError came first."""
    with pytest.raises(ValueError, match=message):
        models.load_model(str(tmp_path / "no_model_here"), quantization=None, lora=lora, device="cpu")


def test_pad_token_fallback_is_logged(tiny_dir, tmp_path, caplog):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(tiny_dir).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.models"):
        model, tok2 = models.load_model(str(tmp_path), quantization=None, device="cpu")
    assert tok2.pad_token == tok2.eos_token and model.config.pad_token_id == tok2.eos_token_id
    assert "no pad token" in caplog.text


def test_adapter_folder_round_trip(tiny_dir, tmp_path):
    model, tok = models.load_model(tiny_dir, quantization=None, lora={"r": 4, "init_lora_weights": False},
                                   device="cpu")
    model.eval()
    before = _logits(model, tok)
    model.save_pretrained(tmp_path)
    again, _ = models.load_model(str(tmp_path), quantization=None, device="cpu")
    torch.testing.assert_close(_logits(again, tok), before)
    with pytest.raises(ValueError, match="already holds a LoRA adapter"):
        models.load_model(str(tmp_path), quantization=None, lora=True, device="cpu")
    with pytest.raises(ValueError, match="trainable=True on a 4-bit base with no adapter leaves nothing to train"):
        models.load_model(str(tiny_dir), trainable=True, device="cpu")  # was a model with no trainable weight


def test_an_adapter_on_a_base_given_by_a_relative_path_loads_back(tiny_dir, tmp_path, monkeypatch):
    """PEFT writes the base as given: "./base" is relative to the working directory, but was read relative to the
    adapter folder, so the saved policy did not load, even from the same directory."""
    import shutil
    shutil.copytree(tiny_dir, tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    model, tok = models.load_model("./base", quantization=None, lora={"r": 4, "init_lora_weights": False},
                                   device="cpu")
    model.save_pretrained(tmp_path / "runs" / "policy")
    models.write_portable_adapter_config(tmp_path / "runs" / "policy")
    assert models.adapter_base(tmp_path / "runs" / "policy") == str(tmp_path / "base")
    again, _ = models.load_model(str(tmp_path / "runs" / "policy"), quantization=None, device="cpu")
    torch.testing.assert_close(_logits(again.eval(), tok), _logits(model.eval(), tok))
    # The loaded adapter names its base as loaded: "../../base" read from the adapter folder would, saved again
    # elsewhere (a later round's policy), point nowhere
    assert again.peft_config["default"].base_model_name_or_path == str(tmp_path / "base")
    (tmp_path / "other").mkdir()
    for written in ("Qwen/Qwen2.5-0.5B", str(tmp_path / "base")):  # a Hub id and an absolute path: as written
        (tmp_path / "other" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": written}))
        assert models.adapter_base(tmp_path / "other") == written
    # a base inside the adapter's folder: "base" would be read as a Hub id
    shutil.copytree(tiny_dir, tmp_path / "other" / "base")
    (tmp_path / "other" / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tmp_path / "other" / "base")}))
    models.write_portable_adapter_config(tmp_path / "other")
    assert json.loads((tmp_path / "other" / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        os.path.join(".", "base")
    assert models.adapter_base(tmp_path / "other") == str((tmp_path / "other" / "base").resolve())


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_a_device_that_is_neither_cpu_nor_cuda_is_refused(tiny_dir, quantization):
    """device="gpu" (a typo) loaded a 4-bit model on the CPU without a word (its device_map was "cpu" for anything
    not "cuda"), and the reward trainers then trained there; unquantized, it was torch's RuntimeError."""
    with pytest.raises(ValueError, match=r"^device must be 'cpu', 'cuda', 'cuda:N' or None, got 'gpu'$"):
        models.load_model(tiny_dir, quantization=quantization, device="gpu")
    assert models.resolve_device("cpu") == "cpu" and models.resolve_device("cuda:1") == "cuda:1"


def test_trainer_precision_follows_the_compute_dtype():
    assert models.trainer_precision(torch.bfloat16, "cuda") == {"bf16": True, "fp16": False}
    assert models.trainer_precision(torch.float16, "cuda:0") == {"bf16": False, "fp16": True}
    assert models.trainer_precision(torch.float32, "cuda") == {"bf16": False, "fp16": False}
    assert models.trainer_precision(torch.bfloat16, "cpu") == {"bf16": False, "fp16": False}


def test_auto_dtype_ignores_emulated_bfloat16(monkeypatch):
    # A T4 "supports" bfloat16 only by emulation: auto must pick float16 there, bfloat16 on an A100/H100.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one check of a GPU's bf16: models.default_bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert models.resolve_dtype("auto", "cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert models.resolve_dtype(None, "cuda") == torch.bfloat16
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    for name in ("tensor", "nn", "float8"):  # torch's function and module were taken for dtypes
        with pytest.raises(ValueError, match=f"load_model: unknown dtype '{name}'"):
            models.resolve_dtype(name, "cpu")
    assert models.default_bf16() is True and models.default_bf16(use_cpu=True) is False


def test_peft_and_precision_plumbing_lives_in_models_and_serves_plain_trl_too():
    """prepare_adapters and default_bf16 serve TRL's own trainers too (notebook 04's DPOTrainer runs, onpolicy's):
    they live in models.py, beside resolve_dtype, which asks default_bf16; the trainer imports them from there."""
    from stepdpo_lite import trainer
    for name in ("prepare_adapters", "default_bf16", "lora_only", "reference_adapter"):
        assert getattr(models, name).__module__ == "stepdpo_lite.models"
    assert trainer.prepare_adapters is models.prepare_adapters and trainer.default_bf16 is models.default_bf16


def test_profiles():
    assert set(profiles.PROFILES) == {"tiny", "t4-16gb", "24gb", "smoke"}
    t4 = profiles.get_profile("t4-16gb")
    assert t4.model_name == "Qwen/Qwen2.5-0.5B-Instruct" and t4.quantization == "4bit" and t4.max_length == 1024
    assert t4.dtype == "float16"  # a T4 has no bfloat16
    assert profiles.get_profile("24gb").model_name == "Qwen/Qwen2.5-1.5B-Instruct"
    tiny = profiles.get_profile("tiny")
    assert tiny.device == "cpu" and tiny.dtype == "float32" and tiny.model_name.endswith("tiny-base")
    assert tiny.lora_config()["r"] == tiny.lora_r
    # the reward models' base defaults to the policy's; a profile can name another (e.g. a math-tuned model)
    assert t4.reward_base == t4.model_name
    math_rm = dataclasses.replace(t4, reward_model_name="Qwen/Qwen2.5-Math-1.5B-Instruct")
    assert math_rm.reward_base == "Qwen/Qwen2.5-Math-1.5B-Instruct" and math_rm.model_name == t4.model_name
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.get_profile("a100")


def test_profile_reward_training_args_give_the_orm_its_own_learning_rate_and_epochs():
    t4 = profiles.get_profile("t4-16gb")
    assert t4.orm_learning_rate is None  # one learning rate for both reward models
    assert t4.reward_training_args("outcome")["learning_rate"] == t4.reward_training_args()["learning_rate"]
    own = dataclasses.replace(t4, reward_learning_rate=2e-3, orm_learning_rate=5e-4, orm_epochs=2.0)
    assert own.reward_training_args("process")["learning_rate"] == 2e-3
    assert own.reward_training_args("process")["num_train_epochs"] == t4.reward_epochs
    assert own.reward_training_args("outcome")["learning_rate"] == 5e-4
    assert own.reward_training_args("outcome")["num_train_epochs"] == 2.0
    with pytest.raises(ValueError, match="reward must be"):
        own.reward_training_args("orm")


def test_profile_tasks_and_budgets():
    tiny, t4, smoke = (profiles.get_profile(n) for n in ("tiny", "t4-16gb", "smoke"))
    assert tiny.task == "toy" and t4.task == "gsm8k" and t4.dataset is None  # None: the Hub's openai/gsm8k
    # smoke: the GPU profiles' code path (GSM8K, 4-bit nf4 + LoRA with checkpointing) at toy size, offline
    assert smoke.task == "gsm8k" and smoke.dataset.endswith("data/gsm8k/test.jsonl")
    assert smoke.quantization == t4.quantization == "4bit" and smoke.gradient_checkpointing
    assert smoke.model_name.endswith("smoke-base")
    assert tiny.lora_config()["lora_dropout"] == 0.0 and t4.lora_config()["lora_dropout"] == 0.05
    for gpu in ("t4-16gb", "24gb"):  # time estimates and the Monte-Carlo cap are on for the GPU profiles
        p = profiles.get_profile(gpu)
        assert p.sampling_tokens_per_s and p.mc_budget_minutes == 20 and p.sample_batch_size >= p.eval_batch_size


def test_a_lora_is_fresh_only_while_every_b_is_zero(tiny_model):
    """TRL's frozen "ref" copy of the adapter is dropped only for a fresh LoRA (the identity); an adapter with one
    trained B is no longer the base, and its reference must stay."""
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert models._fresh_lora(model)
    next(p for n, p in model.named_parameters() if "lora_B" in n).data[0, 0] = 1.0
    assert not models._fresh_lora(model)


def test_trainable_true_keeps_training_a_saved_adapter_and_leaves_the_base_frozen(tiny_dir, tmp_path):
    model, _ = models.load_model(tiny_dir, quantization=None, lora={"r": 4}, device="cpu")
    model.save_pretrained(tmp_path)
    frozen, _ = models.load_model(str(tmp_path), quantization=None, device="cpu")
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training
    again, _ = models.load_model(str(tmp_path), quantization=None, device="cpu", trainable=True)
    trained = {n for n, p in again.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)  # the saved adapter's weights, none of the base's
    assert again.training


def test_the_pad_token_reaches_the_models_config_and_its_generation_config(tiny_model, tiny_tokenizer):
    tiny_model.config.pad_token_id = tiny_model.generation_config.pad_token_id = None
    models._ensure_pad_token(tiny_tokenizer, tiny_model)
    assert tiny_model.config.pad_token_id == tiny_model.generation_config.pad_token_id == tiny_tokenizer.pad_token_id
    tiny_model.generation_config.pad_token_id = 7  # the model's own, kept
    models._ensure_pad_token(tiny_tokenizer, tiny_model)
    assert tiny_model.generation_config.pad_token_id == 7
