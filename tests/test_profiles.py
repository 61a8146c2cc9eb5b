"""The profiles' recipes: what notebooks 02 and 03 train their reward models with."""

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from stepdpo_lite.tutorial import profiles


def test_train_reward_model_trains_by_the_profiles_recipe_in_a_scratch_folder(monkeypatch):
    calls = []

    def fake_trainer(kind):
        def train(base, rows, output_dir, **kw):
            assert Path(output_dir).is_dir()
            calls.append((kind, base, rows, Path(output_dir), kw))
            return f"{kind} model"
        return train

    from stepdpo_lite import reward_training  # profiles imports the trainers where it trains (torch is slow to load)
    monkeypatch.setattr(reward_training, "train_process_reward_model", fake_trainer("process"))
    monkeypatch.setattr(reward_training, "train_outcome_reward_model", fake_trainer("outcome"))
    profile = profiles.get_profile("tiny")
    assert profiles.train_reward_model("base", ["row"], profile, seed=3) == "process model"
    kind, base, rows, scratch, kw = calls[-1]
    assert (kind, base, rows) == ("process", "base", ["row"]) and not scratch.exists()  # deleted on return
    assert kw == dict(quantization="4bit", lora=profile.lora_config(), max_steps=-1, seed=3, logging_steps=10,
                      train_sampling_strategy="group_by_length", **profile.reward_training_args("process"))
    # the base's quantization is the profile's (it was "4bit" whatever the profile said): the tiny profile's reward
    # models train on a 4-bit base, as notebooks 02 and 03 train them, while its policy is not quantized
    assert (profile.reward_quantization, profile.quantization) == ("4bit", None)
    full_precision = dataclasses.replace(profile, reward_quantization=None)
    profiles.train_reward_model("base", ["row"], full_precision)
    assert calls[-1][-1]["quantization"] is None
    assert profiles.train_reward_model("base", ["row"], profile, "outcome", quantization=None,
                                                  max_steps=5) == "outcome model"
    kw = calls[-1][-1]
    assert (kw["quantization"], kw["max_steps"], kw["seed"]) == (None, 5, 0)
    assert kw["learning_rate"] == profile.reward_training_args("outcome")["learning_rate"]  # the ORM's own


@pytest.mark.parametrize("name", ["tiny", "t4-16gb"])
def test_the_recipe_line_notebooks_02_and_03_print_is_what_the_trainer_is_given(monkeypatch, name):
    """Notebooks 02 and 03 each wrote the line's f-string, 02 reading profile.reward_learning_rate where the trainer
    takes reward_training_args("process"): one function, checked against the trainer's own keywords."""
    from stepdpo_lite import reward_training
    given = {}
    for kind in ("process", "outcome"):
        monkeypatch.setattr(reward_training, f"train_{kind}_reward_model",
                            lambda base, rows, output_dir, kind=kind, **kw: given.update({kind: kw}))
    profile = profiles.get_profile(name)
    for reward in ("process", "outcome"):
        for max_steps in (None, 7):
            profiles.train_reward_model("base", ["row"], profile, reward, max_steps=max_steps)
            kw = given[reward]
            length = f"max_steps {kw['max_steps']}" if max_steps else f"{kw['num_train_epochs']} epochs"
            assert profiles.format_reward_recipe(profile, reward, max_steps=max_steps) == (
                f"LoRA r={kw['lora']['r']} alpha={kw['lora']['lora_alpha']} dropout {kw['lora']['lora_dropout']} on "
                f"{kw['lora']['target_modules']} | lr {kw['learning_rate']} | {length} | "
                f"batch {kw['per_device_train_batch_size']} x {kw['gradient_accumulation_steps']}")
    tiny = profiles.get_profile("tiny")  # what notebooks 02 and 03 print on the tiny profile
    assert profiles.format_reward_recipe(tiny) == ("LoRA r=8 alpha=16 dropout 0.0 on all-linear | lr 0.002 | "
                                                   "1.0 epochs | batch 32 x 1")
    assert "| lr 0.0005 | 2.0 epochs |" in profiles.format_reward_recipe(tiny, "outcome")
    with pytest.raises(ValueError, match="reward must be 'process' or 'outcome', got 'orm'"):
        profiles.train_reward_model("base", ["row"], profile, "orm")
    with pytest.raises(ValueError, match="train_reward_model: max_steps"):
        profiles.train_reward_model("base", ["row"], profile, max_steps=0)


# Samples cut at max_new_tokens that hold the most steps: bare "Step" paragraphs (2 tokens each in the sample, 2 or 3
# when a step is tokenized alone) and "Step k: 1", the shortest step of the layout gsm8k.INSTRUCTION asks for
CAPPED_PIECES = ("\n\nStep", "\n\nStep:", ".\n\nStep", "\n\nStep {k}: 1")


def _capped_sample(tokenizer, piece: str, max_new_tokens: int) -> str:
    """As many ``piece`` paragraphs (``{k}``: the step's number) as ``max_new_tokens`` tokens hold."""
    n_tokens = lambda text: len(tokenizer(text.lstrip("\n"), add_special_tokens=False)["input_ids"])
    text, k = "", 1
    while n_tokens(longer := text + piece.format(k=k)) <= max_new_tokens:
        text, k = longer, k + 1
    return text.lstrip("\n")


@pytest.mark.parametrize("name", ["smoke", "t4-16gb", "24gb"])
def test_every_row_a_gsm8k_profile_can_sample_fits_its_reward_models(name):
    """A PRM reads a tag after every step, and a sample cut at max_new_tokens can hold a step every 2 tokens: at the
    GPU profiles' max_length 1024, a 512-token sample of more than about 22 steps was refused (InputTooLong, never
    cut), which stopped notebook 02 before its training or, for a validation or test row, in its scoring after it.
    The smoke profile's tokenizer counts the rows here: it splits text as Qwen2's does (the tag 10 tokens, a bare
    "Step" paragraph 2, as in Qwen2.5's, which is not shipped), and its chat prompts are longer (296 tokens at most on
    the shipped questions; Qwen2.5's with its system prompt: 261 on GSM8K's 1,319 test questions)."""
    import json

    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel
    from stepdpo_lite.steps import extract_steps
    from stepdpo_lite.tutorial import gsm8k, smoke

    profile = profiles.get_profile(name)
    records = [json.loads(line) for line in smoke.GSM8K_SLICE.read_text().splitlines() if line.strip()]
    tokenizer = smoke.build_tokenizer(records)
    n_tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    prompt = max((gsm8k.format_prompt(r["question"], tokenizer) for r in records), key=n_tokens)
    samples = [_capped_sample(tokenizer, piece, profile.max_new_tokens) for piece in CAPPED_PIECES]
    assert len(extract_steps(samples[0])) == profile.max_new_tokens // 2  # the most steps: one every 2 tokens
    model = smoke.build_model(tokenizer)  # input_lengths counts without a limit: the model's context is not asked
    prm, orm = ProcessRewardModel(model, tokenizer), OutcomeRewardModel(model, tokenizer)
    longest = {"process": max(prm.input_lengths([prompt] * len(samples), [extract_steps(s) for s in samples])),
               "outcome": max(orm.input_lengths([prompt] * len(samples), samples))}
    assert {reward: (n, profile.reward_training_args(reward)["max_length"]) for reward, n in longest.items()
            if n > profile.reward_training_args(reward)["max_length"]} == {}
    assert n_tokens(prompt) + profile.max_new_tokens <= profile.max_length  # the policy's rows: no tags


@pytest.mark.parametrize("field, value, message", [
    ("train_batch_size", 0, "train_batch_size must be an int >= 1, got 0"),
    ("dpo_batch_size", True, "dpo_batch_size must be an int >= 1, got True"),
    ("max_new_tokens", 96.0, "max_new_tokens must be an int >= 1"),
    ("reward_max_length", 0, "reward_max_length must be an int >= 1, got 0"),
    ("lora_dropout", 1.0, r"lora_dropout must be in \[0, 1\), got 1.0"),
    ("dpo_learning_rate", 0.0, "dpo_learning_rate must be > 0, got 0.0"),
    ("reward_learning_rate", float("nan"), "reward_learning_rate must be a finite number"),
    ("gradient_checkpointing", "no", "gradient_checkpointing must be True or False, got 'no'"),
    ("quantization", "8bit", "quantization must be one of"),
    ("reward_quantization", "8bit", "reward_quantization must be one of"),
    ("onpolicy_protocol", "first_token", r"onpolicy_protocol must be one of \('first_error', 'output_layer'\)"),
    ("model_name", "", "model_name must be a non-empty str, got ''"),
    ("model_name", None, "model_name must be a non-empty str, got None"),  # not an optional field
    ("train_batch_size", None, "train_batch_size must be an int >= 1, got None"),
])
def test_a_profile_of_ones_own_is_checked_field_by_field(field, value, message):
    """A value a trainer or sampler met minutes later (a batch of 0, a dropout of 1, "no" read as True) is refused
    when the profile is made."""
    import dataclasses

    with pytest.raises(ValueError, match=f"^Profile: {message}"):
        dataclasses.replace(profiles.get_profile("t4-16gb"), **{field: value})
    ok = dataclasses.replace(profiles.get_profile("t4-16gb"), n_test_time_problems=None, lora_dropout=0.0)
    assert ok.n_test_time_problems is None and all(profiles.get_profile(n).name == n for n in profiles.PROFILES)


def _a_gpu(monkeypatch, name: str, capability: tuple):
    """torch.cuda as on a machine with this GPU; torch counts emulated bfloat16 as support unless told not to."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability >= (8, 0))


@pytest.mark.parametrize("name", ["t4-16gb", "24gb"])
def test_a_gpu_profile_on_a_machine_without_cuda_is_refused_naming_the_smoke_dry_run(monkeypatch, name):
    """It ran on the CPU, in float16 (bfloat16), with no word: hours of a download and sampling on the wrong
    hardware."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(profiles.gsm8k, "load_hub_split", lambda *a, **k: pytest.fail("downloaded before the check"))
    with pytest.raises(ValueError, match=rf"^profile '{name}' needs a CUDA GPU .* this machine has none .*CPU dry run"
                                         r".*'smoke' profile \(stepdpo-lite --profile smoke\)"):
        profiles.prepare_profile(name)  # first: before any download
    for cpu in ("tiny", "smoke", dataclasses.replace(profiles.get_profile(name), device="cpu")):  # or chosen so
        profiles.check_machine(cpu)


def test_the_runner_refuses_a_gpu_profile_on_a_cpu_before_it_makes_the_runs_folder(monkeypatch, tmp_path):
    """The refusal came after runs/<profile>/figures/ was made: an empty folder was left behind."""
    import torch

    from stepdpo_lite.tutorial import notebooks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="profile 't4-16gb' needs a CUDA GPU"):
        notebooks.run_tutorial("t4-16gb", runs_dir=tmp_path, notebooks=["05"])
    assert list(tmp_path.iterdir()) == []


def test_a_bfloat16_profile_on_a_gpu_that_only_emulates_it_warns_and_names_the_float16_profile(monkeypatch):
    """transformers asks torch.cuda.is_bf16_supported(), True on a T4 by emulation: 24gb ran there, many times
    slower, with no word."""
    import warnings

    _a_gpu(monkeypatch, "Tesla T4", (7, 5))
    with pytest.warns(UserWarning, match=r"profile '24gb' computes in bfloat16, which this GPU \(Tesla T4, compute "
                                         r"capability 7\.5\) only emulates.*Ampere or newer.*profile 't4-16gb'"):
        profiles.check_machine("24gb")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profiles.check_machine("t4-16gb")  # float16: native on a T4
        _a_gpu(monkeypatch, "NVIDIA L4", (8, 9))
        profiles.check_machine("24gb")


def test_offline_a_model_neither_here_nor_cached_is_refused_after_gsm8k_and_before_any_download(monkeypatch, tmp_path):
    """Notebook 01 loaded the model first and said only that the Hub is offline (not what to do), then met GSM8K's
    raw "ConnectionError: Couldn't reach 'openai/gsm8k'" after the download."""
    from stepdpo_lite.tutorial.smoke import GSM8K_SLICE

    checked, cached = [], {}
    monkeypatch.setattr(profiles.gsm8k, "load_hub_split", lambda name, split: checked.append((name, split)))
    monkeypatch.setattr(profiles, "try_to_load_from_cache", lambda repo_id, filename: cached.get(repo_id))
    monkeypatch.setattr(profiles.hub_constants, "HF_HUB_OFFLINE", True)
    t4 = dataclasses.replace(profiles.get_profile("t4-16gb"), device="cpu")  # past check_machine on any machine
    with pytest.raises(FileNotFoundError, match=r"^profile 't4-16gb': the model 'Qwen/Qwen2.5-0.5B-Instruct' is no "
                                                r"folder here and not in the Hub's cache.*HF_HUB_OFFLINE=0.*"
                                                r"`hf download Qwen/Qwen2.5-0.5B-Instruct`.*model_name=FOLDER"):
        profiles.prepare_profile(t4)
    assert checked == [("openai/gsm8k", "test")]  # GSM8K first: its error comes before the model's
    cached["Qwen/Qwen2.5-0.5B-Instruct"] = "/cache/config.json"
    profiles.check_sources(t4)
    profiles.check_sources(dataclasses.replace(t4, model_name=str(tmp_path), dataset=str(GSM8K_SLICE)))  # local
    profiles.check_sources("tiny")
    assert len(checked) == 2  # a local GSM8K copy is not looked for on the Hub, nor the toy world's problems
    # a kit folder not built yet was "not in the Hub's cache": a path is no Hub id; load_model says when it is missing
    for path in ("runs/no-such-base", "./no-such-base", "a/b/c"):
        profiles.check_sources(dataclasses.replace(t4, model_name=path, dataset=str(GSM8K_SLICE)))
    monkeypatch.setattr(profiles.hub_constants, "HF_HUB_OFFLINE", False)
    profiles.check_sources(dataclasses.replace(t4, model_name="org/not-cached"))  # online: downloaded when loaded


def test_tiny_model_folder_is_a_folder_with_the_kits_training_log(tmp_path, monkeypatch):
    """What onpolicy.starts_with_lora asks of a profile without quantization: a folder that holds a tiny model the
    kit trained (its training_log.json), not any folder here (a local copy of a 1.5B LLM has none), nor a Hub id."""
    data = Path(__file__).resolve().parent.parent / "data"
    assert all(profiles.tiny_model_folder(str(data / name)) for name in ("tiny-base", "tiny-verifier"))
    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (str(llm), "llm", "./llm", "~/llm", "Qwen/Qwen2.5-1.5B-Instruct", str(tmp_path / "none")):
        assert not profiles.tiny_model_folder(name), name
    (llm / "training_log.json").write_text("{}")
    for name in (str(llm), "llm", "./llm", "~/llm"):
        assert profiles.tiny_model_folder(name), name


def test_written_as_path_tells_a_local_folder_from_a_hub_id(tmp_path, monkeypatch):
    """What onpolicy.starts_with_lora refuses when it is not there: a name that can only be a path (absolute, ".",
    "~", the kit's data/ and runs/, two "/"); an "owner/name" Hub id or a bare name may be on the Hub, there or not."""
    monkeypatch.chdir(tmp_path)
    for name in (str(tmp_path / "none"), "./none", "../none", "~/none", "data/tiny-base", "runs/sum-base", "a/b/c"):
        assert profiles.written_as_path(name), name
    for name in ("Qwen/Qwen2.5-0.5B", "org/own-llm", "llm", "database/model", "runs-of/model"):
        assert not profiles.written_as_path(name), name


def test_control_wanted_by_default_only_where_the_reward_base_is_not_the_policys():
    """profiles.control_wanted, beside the recipe it asks for (profiles.train_reward_model)."""
    verifier = SimpleNamespace(reward_base="data/tiny-verifier", model_name="data/tiny-base")
    same = SimpleNamespace(reward_base="Qwen/Qwen2.5-1.5B-Instruct", model_name="Qwen/Qwen2.5-1.5B-Instruct")
    assert profiles.control_wanted(verifier) and not profiles.control_wanted(same)
    assert profiles.control_wanted(same, True) and not profiles.control_wanted(verifier, False)
    with pytest.raises(ValueError, match="control_wanted: requested must be True or False, got 'no'"):
        profiles.control_wanted(verifier, "no")


def test_reward_base_is_the_reward_model_name_else_the_policys():
    """reward_base was tested nowhere: the policy's name taken over a reward model of one's own went unseen."""
    tiny = profiles.get_profile("tiny")
    assert dataclasses.replace(tiny, reward_model_name="some/verifier").reward_base == "some/verifier"
    assert dataclasses.replace(tiny, reward_model_name=None).reward_base == tiny.model_name


def test_load_profile_model_checkpoints_gradients_only_where_an_adapter_trains(monkeypatch):
    """Checkpointing the gradients of a policy loaded without an adapter went unseen (load_model replaced)."""
    calls = []
    monkeypatch.setattr(profiles, "load_model", lambda name, **kwargs: calls.append(kwargs))
    smoke = profiles.get_profile("smoke")
    assert smoke.gradient_checkpointing
    profiles.load_profile_model(smoke)
    profiles.load_profile_model(smoke, lora=True)
    assert [c["gradient_checkpointing"] for c in calls] == [False, True]


def test_every_profile_field_is_read_somewhere():
    """The profile's docstring says the notebooks read everything from it: dpo_epochs and best_of_n were read by
    nothing (notebook 04 trained one epoch, notebook 06 drew 16 candidates, whatever the profile said)."""
    root = Path(__file__).resolve().parents[1]
    text = "\n".join(p.read_text() for p in [*root.glob("notebooks/*.ipynb"), *root.glob("stepdpo_lite/**/*.py")])
    unread = [f.name for f in dataclasses.fields(profiles.Profile)
              if f.name != "name" and not re.search(rf"\.{f.name}\b", text)]
    assert unread == []


def test_reward_training_args_passes_the_profiles_own_batch_and_checkpointing_and_refuses_another_reward():
    """The trainer's eval batch is eval_batch_size (not the training batch) and checkpointing follows the profile,
    for the PRM and the ORM alike; a reward other than "process" or "outcome" is refused, not trained as the PRM."""
    own = dataclasses.replace(profiles.get_profile("t4-16gb"), train_batch_size=3, eval_batch_size=5,
                              gradient_checkpointing=False)
    for reward in ("process", "outcome"):
        args = own.reward_training_args(reward)
        assert (args["per_device_train_batch_size"], args["per_device_eval_batch_size"]) == (3, 5), reward
        assert args["gradient_checkpointing"] is False, reward
    with pytest.raises(ValueError, match="reward_training_args: reward must be 'process' or 'outcome', got 'orm'"):
        profiles.format_reward_recipe(own, "orm")


def test_the_profile_sizes_the_docs_quote_are_the_profiles():
    """README and docs/benchmarks.md quote these settings with the timings and figures measured at them."""
    root = Path(__file__).resolve().parents[1]
    readme, benchmarks = (root / "README.md").read_text(), (root / "docs" / "benchmarks.md").read_text()
    tiny, t4, big = (profiles.get_profile(name) for name in ("tiny", "t4-16gb", "24gb"))
    assert "| tiny profile (CPU)," in readme and tiny.device == "cpu"
    assert f"two budgets on {tiny.n_test_time_problems} problems |" in readme
    assert f"35 one-round DPO steps of {tiny.dpo_batch_size} pairs" in benchmarks
    assert f"`MC_BUDGET_MINUTES`, {t4.mc_budget_minutes:g} minutes," in readme
    assert t4.mc_budget_minutes == big.mc_budget_minutes
    # a T4 samples slower than a 24 GB card (lower clocks, Colab's slower host CPU): its time estimates are longer
    assert t4.sampling_tokens_per_s < big.sampling_tokens_per_s


def test_offline_the_reward_base_and_a_name_that_is_no_hub_id_are_checked_too(monkeypatch):
    """The reward models' own base is loaded by notebooks 02 and 03: offline and uncached, it fails there, after the
    policy's download; a name the Hub refuses as an id ("no such model!") is in no cache either."""
    from stepdpo_lite.tutorial.smoke import GSM8K_SLICE

    monkeypatch.setattr(profiles.hub_constants, "HF_HUB_OFFLINE", True)
    cached = {"Qwen/Qwen2.5-0.5B-Instruct"}
    real = profiles.try_to_load_from_cache
    monkeypatch.setattr(profiles, "try_to_load_from_cache", lambda repo_id, filename: (
        "/cache/config.json" if repo_id in cached else real(repo_id, filename)))
    t4 = dataclasses.replace(profiles.get_profile("t4-16gb"), device="cpu", dataset=str(GSM8K_SLICE))
    profiles.check_sources(t4)
    with pytest.raises(FileNotFoundError, match=r"^profile 't4-16gb': the model 'org/verifier' is no folder here"):
        profiles.check_sources(dataclasses.replace(t4, reward_model_name="org/verifier"))
    with pytest.raises(FileNotFoundError, match=r"^profile 't4-16gb': the model 'no such model!' is no folder here"):
        profiles.check_sources(dataclasses.replace(t4, model_name="no such model!"))


def test_a_gpu_of_compute_capability_8_0_computes_in_bfloat16_natively(monkeypatch):
    """Compute capability 8.0 (an A100) is Ampere's: native bfloat16, so no warning for the bfloat16 profile."""
    import warnings

    _a_gpu(monkeypatch, "NVIDIA A100", (8, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profiles.check_machine("24gb")


def test_load_profile_model_overrides_win_over_the_profiles_settings(monkeypatch):
    """A notebook loads the policy in full precision beside the profile's 4-bit one: its keywords win."""
    calls = []
    monkeypatch.setattr(profiles, "load_model", lambda name, **kwargs: calls.append((name, kwargs)))
    profiles.load_profile_model("smoke", name_or_path="other", quantization=None, dtype="float16")
    assert calls[0][0] == "other" and (calls[0][1]["quantization"], calls[0][1]["dtype"]) == (None, "float16")
