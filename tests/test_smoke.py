"""The smoke profile's base: deterministic, offline, GPU-profile shaped (Qwen2, chat template, Yes/No tokens)."""
import json

import pytest

from stepdpo_lite import models
from stepdpo_lite.tutorial import gsm8k, profiles, smoke


@pytest.fixture(scope="module")
def records():
    return smoke._records()


def test_tokenizer_is_deterministic_with_a_chat_template_and_one_token_answers(records):
    a, b = smoke.build_tokenizer(records), smoke.build_tokenizer(records)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    for word in (" Yes", " No"):
        assert len(a(word, add_special_tokens=False)["input_ids"]) == 1
    prompt = gsm8k.format_prompt("How many eggs?", a)
    assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert a.eos_token == "<|im_end|>" and a.pad_token == "<|endoftext|>" and a.padding_side == "left"
    text = prompt + "Step 1: 16-3-4 = 9\n\nAnswer: 9"
    assert a.decode(a(text, add_special_tokens=False)["input_ids"]) == text  # lossless round trip


def test_reference_solutions_in_the_instructed_format(records):
    assert smoke.equation_steps(records[0]["answer"]) == "Step 1: 16-3-4 = 9\n\nStep 2: 9*2 = 18\n\nAnswer: 18"
    assert smoke.equation_steps("No annotation here.\nStill none.\n#### 4") == (
        "Step 1: No annotation here.\n\nStep 2: Still none.\n\nAnswer: 4")
    assert smoke.equation_steps("He pays <<2*3=6>> then <<6+1=7>> #### more\n#### 7") == (
        "Step 1: 2*3 = 6, 6+1 = 7\n\nAnswer: 7")  # the last #### gives the answer


def test_a_tokenizer_too_small_for_one_token_answers_is_refused(records):
    with pytest.raises(RuntimeError, match="smoke tokenizer: ' Yes' is 2 tokens; the reward models need one"):
        smoke.build_tokenizer(records, vocab_size=290)  # one merge short of " Yes"


def test_the_fit_trains_on_the_solution_and_its_end_of_turn_only(records):
    """_fit's rows: the prompt and the padding carry no loss, and the padding no attention."""
    import torch

    tok = smoke.build_tokenizer(records)
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kw):
            seen.append(kw)
            return type("Out", (), {"loss": self.w.sum()})()

    smoke._fit(Recorder(), tok, ["Q: a?\n", "Q: a longer one?\n"], ["Answer: 1", "Answer: 2"], steps=1, seed=0)
    ids = {k: tok(t, add_special_tokens=False)["input_ids"] for k, t in
           (("p", "Q: a?\n"), ("s", "Answer: 1" + tok.eos_token), ("long", "Q: a longer one?\nAnswer: 2<|im_end|>"))}
    row = seen[0]["labels"].tolist().index([-100] * len(ids["p"]) + ids["s"] + [-100] * (len(ids["long"]) -
                                                                                         len(ids["p"] + ids["s"])))
    assert seen[0]["attention_mask"][row].tolist() == [1] * len(ids["p"] + ids["s"]) + [0] * (
        len(ids["long"]) - len(ids["p"] + ids["s"]))


def test_build_is_deterministic_and_loads_through_the_profile_path(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    monkeypatch.setattr(smoke, "FIT_STEPS", 3)  # the recipe, cut short: the same bytes twice
    for name in ("a", "b"):
        smoke.build_smoke_base(tmp_path / name)
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    info = json.loads((tmp_path / "a" / "smoke_base.json").read_text())
    assert info["recipe_version"] == smoke.RECIPE_VERSION and info["parameters"] < 300_000
    assert info["source"] == "test.jsonl"  # its name, not a path on the machine that built it
    # the GPU profiles' loading path: 4-bit nf4 + LoRA on the Qwen2 architecture, and a GenRM reward model on it
    model, tok = models.load_model(tmp_path / "a", quantization="4bit", lora={"r": 4}, device="cpu")
    assert model.config.model_type == "qwen2" and type(model.base_model.model.model.layers[0].mlp.up_proj.base_layer
                                                        ).__name__ == "Linear4bit"
    from stepdpo_lite.rewards import ProcessRewardModel
    prm = ProcessRewardModel(model.base_model.model, tok)
    assert prm.yes_id != prm.no_id
    # ensure: a current folder is kept, a stale one rebuilt
    lines = []
    assert smoke.ensure_smoke_base(tmp_path / "a", out=lines.append) == tmp_path / "a" and not lines
    (tmp_path / "a" / "smoke_base.json").write_text(json.dumps({**info, "recipe_version": -1}))
    smoke.ensure_smoke_base(tmp_path / "a", out=lines.append)
    assert "building its base model" in lines[0] and smoke.is_current(tmp_path / "a")


def test_the_build_seeds_the_weights_and_leaves_torchs_threads_as_they_were(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    monkeypatch.setattr(smoke, "_fit", lambda *a, **kw: [0.0])  # the initial weights alone
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for seed in (0, 1):
            smoke.build_smoke_base(tmp_path / str(seed), seed=seed)
        assert torch.get_num_threads() == 2  # set to 1 for the build only
    finally:
        torch.set_num_threads(threads)
    a, b = (load_file(tmp_path / str(seed) / "model.safetensors") for seed in (0, 1))
    assert not torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])
    monkeypatch.setenv("STEPDPO_SMOKE_BASE", str(tmp_path / "mine"))
    assert smoke.smoke_base_dir() == tmp_path / "mine"


def test_prepare_profile_builds_only_for_smoke(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(profiles, "ensure_smoke_base", lambda path, out=print: built.append(path))
    profiles.prepare_profile("tiny")
    assert built == []
    profiles.prepare_profile("smoke")
    assert built == [profiles.get_profile("smoke").model_name]


@pytest.mark.parametrize("bad, match", [
    ({"eval_every": 0}, "eval_every must be an int >= 1"),  # a ZeroDivisionError at the first step
    ({"max_steps": 0}, "max_steps must be an int >= 1"),  # the Trainer's default of 3 epochs, without a word
    ({"n_train": True}, "n_train must be an int >= 1"),
    ({"target_accuracy": float("nan")}, "target_accuracy must be a finite number"),  # never stopped early
    ({"error_rate": 1.5}, r"error_rate must lie in \[0, 1\]"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0"),
])
def test_train_base_refuses_bad_settings_before_any_data(tmp_path, bad, match, monkeypatch):
    from stepdpo_lite.tutorial import tiny_base
    monkeypatch.setattr(tiny_base, "build_tokenizer", lambda *a, **k: pytest.fail("data made first"))

    with pytest.raises(ValueError, match=f"train_base: {match}"):
        tiny_base.train_base(tmp_path / "base", **{"n_train": 64, "n_eval": 4, "max_steps": 1, "batch_size": 64,
                                                    "layers": 1, "hidden_size": 32, **bad})
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize("seed", [True, 1.5, "3", -1])
def test_load_profile_model_refuses_a_lora_seed_that_is_no_int(tmp_path, seed):
    """torch.manual_seed casts: lora_seed=True or 1.5 drew the adapter of seed 1, without a word."""
    with pytest.raises(ValueError, match="load_profile_model: lora_seed must be an int >= 0 or None"):
        profiles.load_profile_model("smoke", lora=True, name_or_path=tmp_path / "no-base", lora_seed=seed)


def test_solution_lm_dataset_refuses_one_str_and_unequal_lists():
    """prompts given as one str made a row per character, without a word."""
    from stepdpo_lite.tutorial import tiny_base, tiny_models

    tok = tiny_models.build_tokenizer()
    with pytest.raises(ValueError, match="solution_lm_dataset: prompts: expected a list of prompt strs, got one str"):
        tiny_base.solution_lm_dataset(tok, "ab", ["x", "y"])
    with pytest.raises(ValueError, match="solution_lm_dataset: 2 prompts but 1 solutions"):
        tiny_base.solution_lm_dataset(tok, ["a", "b"], ["x"])
    assert len(tiny_base.solution_lm_dataset(tok, ("a", "b"), ["x", "y"])) == 2


def test_build_refuses_a_folder_that_holds_no_smoke_base(tmp_path, monkeypatch):
    """The save replaces its folder as a whole: `smoke build --out runs` (or STEPDPO_SMOKE_BASE=runs) deleted every
    run in it. A folder with other files and no smoke_base.json is refused, before anything is built."""
    monkeypatch.setattr(smoke, "FIT_STEPS", 3)
    runs = tmp_path / "runs"
    (runs / "tiny").mkdir(parents=True)
    (runs / "tiny" / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match=r"build_smoke_base: .*runs holds \['tiny'\], not a saved copy"):
        smoke.build_smoke_base(runs)
    assert (runs / "tiny" / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in runs.iterdir()) == ["tiny"]


def test_train_base_refuses_an_out_folder_that_holds_no_model(tmp_path):
    """The save replaces `out` as a whole: `train-base --out data` deleted every file there once training was over."""
    from stepdpo_lite.tutorial import tiny_base

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"train_base: out: .*data holds \['notes.txt'\], not a saved copy"):
        tiny_base.train_base(tmp_path / "data", n_train=64, n_eval=4, max_steps=1, batch_size=64, layers=1,
                             hidden_size=32)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["notes.txt"]


def test_build_refuses_a_negative_seed_or_a_file_as_out_before_building(tmp_path, monkeypatch, capsys):
    """--seed -1 was gsm8k.carve's ValueError traceback, after the tokenizer and model were built."""
    monkeypatch.setattr(smoke, "build_smoke_base", lambda *a, **kw: pytest.fail("built before the check"))
    with pytest.raises(SystemExit) as done:
        smoke.main(["build", "--seed", "-1", "--out", str(tmp_path / "base")])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith("--seed must be 0 or more, got -1"), message
    (tmp_path / "a_file").write_text("notes")  # a file there was check_replaceable's ValueError traceback
    with pytest.raises(SystemExit) as done:
        smoke.main(["build", "--out", str(tmp_path / "a_file")])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith(f"--out: {tmp_path / 'a_file'} is a file"), message
