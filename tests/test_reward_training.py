import math
import random
import re
import warnings

import numpy as np
import pytest

from stepdpo_lite.data import validate_outcome, validate_stepwise
from stepdpo_lite.reward_training import (RewardTrainingConfig, tokenize_rows, train_outcome_reward_model,
                                          train_process_reward_model)
from stepdpo_lite.tutorial import tiny_models, toyworld
from stepdpo_lite.reward_ensembles import load_reward_model
from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel, RewardModelConfig


def _no_model_loads(monkeypatch):
    """Fail the test if a model is loaded: both modules that load one hold the name."""
    import stepdpo_lite.reward_training
    import stepdpo_lite.rewards
    for module in (stepdpo_lite.reward_training, stepdpo_lite.rewards):
        monkeypatch.setattr(module, "load_model", lambda *a, **k: pytest.fail("loaded a model first"))


def toy_rows(n, seed=0):
    """Gold-labelled stepwise rows from the toy world: half gold solutions, half with one error."""
    rng = random.Random(seed)
    rows = []
    for i, p in enumerate(toyworld.make_problems(n, "train", seed=seed, max_ops=4)):
        kind = "copy" if len(p.ops) > 1 and rng.random() < 0.5 else "arithmetic"
        sol = p.gold_solution if i % 2 else toyworld.corrupt_solution(
            p, rng.randrange(1 if kind == "copy" else 0, len(p.ops)), kind, rng)
        v = toyworld.check(p, sol)
        rows.append({"prompt": p.prompt, "completions": v.steps, "labels": v.step_labels,
                     "completion": sol, "label": v.answer_correct})
    return rows


def mean_tag_loss(model, rows, process=True):
    """The {Yes, No} cross-entropy at the tags, recomputed from the reward model's scores."""
    if process:
        rewards = model.score_solutions([r["prompt"] for r in rows], [r["completions"] for r in rows])
        pairs = [(x, y) for rs, r in zip(rewards, rows) for x, y in zip(rs, r["labels"])]
    else:
        pairs = list(zip(model.score_solutions([r["prompt"] for r in rows], [r["completion"] for r in rows]),
                         [r["label"] for r in rows]))
    return sum(math.log1p(math.exp(-x if y else x)) for x, y in pairs) / len(pairs)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    tok = tiny_models.build_tokenizer()
    path = tmp_path_factory.mktemp("tiny-random")
    tiny_models.build_tiny_model(tok, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_4bit_lora_prm_training_on_cpu_lowers_the_loss(tiny_dir, tmp_path):
    import bitsandbytes as bnb
    rows = toy_rows(16)
    before = mean_tag_loss(ProcessRewardModel(tiny_dir, device="cpu", quantization="4bit"), rows)
    prm = train_process_reward_model(tiny_dir, rows, tmp_path / "prm", quantization="4bit",
                                     lora={"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}, learning_rate=1e-2,
                                     max_steps=8, per_device_train_batch_size=8, device="cpu", seed=0,
                                     logging_steps=1, disable_tqdm=True)
    assert isinstance(prm, ProcessRewardModel)
    assert isinstance(prm.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    losses = [h["loss"] for h in prm.training_metrics["log_history"] if "loss" in h]
    assert len(losses) == 8
    after = mean_tag_loss(prm, rows)
    assert after < before - 0.02, (before, after)
    # saved with the reference file name, loads back (4-bit again) with the same rewards
    loaded = load_reward_model(tmp_path / "prm", device="cpu")
    assert loaded.config.quantization == "4bit" and loaded.config.dtype == "float32"  # as trained, on any device
    assert mean_tag_loss(loaded, rows) == after  # a round trip on one machine and kernel: exact


def test_the_progress_bar_shows_the_loss_instead_of_printing_each_log(tiny_dir, tmp_path, capsys):
    """transformers' bar wrote every log under itself as a dict: a dozen lines a run in a notebook."""
    orm = train_outcome_reward_model(tiny_dir, toy_rows(8), tmp_path / "orm", quantization=None, max_steps=3,
                                     per_device_train_batch_size=4, device="cpu", logging_steps=1)
    out, err = capsys.readouterr()
    assert "{'loss'" not in out + err and "'grad_norm'" not in out + err
    last = [h["loss"] for h in orm.training_metrics["log_history"] if "loss" in h]
    assert len(last) == 3 and "3/3" in err and f"loss={last[-1]:.4g}" in err  # the bar, with the last loss


@pytest.mark.parametrize("process", [True, False], ids=["prm", "orm"])
def test_trainer_loss_and_passthrough(process, tiny_dir, tmp_path, monkeypatch):
    """The Trainer's loss is the {Yes, No} cross-entropy at the tags (the same number the saved model's scores
    give); report_to and resume_from_checkpoint reach the Trainer; the model is saved under its reference name."""
    import transformers.trainer
    from transformers import Trainer
    from transformers.trainer_utils import TrainOutput
    seen = {}

    def fake_train(self, resume_from_checkpoint=None, **kw):
        seen.update(resume=resume_from_checkpoint, report_to=self.args.report_to, lr=self.args.learning_rate)
        batch = next(iter(self.get_train_dataloader()))  # all 8 rows
        seen["loss"] = self.compute_loss(self.model, self._prepare_inputs(batch)).item()
        return TrainOutput(global_step=0, training_loss=0.0, metrics={})

    monkeypatch.setattr(Trainer, "train", fake_train)
    monkeypatch.setattr(transformers.trainer, "get_reporting_integration_callbacks", lambda report_to: [])
    rows = toy_rows(8)
    train = train_process_reward_model if process else train_outcome_reward_model
    model = train(tiny_dir, rows, tmp_path / "rm", quantization=None, learning_rate=3e-4,
                  lora={"r": 4, "lora_dropout": 0.0, "init_lora_weights": False}, per_device_train_batch_size=8,
                  report_to="tensorboard", resume_from_checkpoint="ckpt-7", device="cpu")
    assert seen["resume"] == "ckpt-7" and seen["report_to"] == ["tensorboard"] and seen["lr"] == 3e-4
    kind, config = (ProcessRewardModel, "process") if process else (OutcomeRewardModel, "outcome")
    assert isinstance(model, kind) and (tmp_path / "rm" / f"{config}_reward_config.json").exists()
    assert seen["loss"] == pytest.approx(mean_tag_loss(model, rows, process=process), abs=1e-4)


def test_gradient_accumulation_divides_the_loss_and_evaluation_runs_every_epoch(tiny_dir, tmp_path):
    """The tag loss is a per-batch mean, so the Trainer divides it by the accumulation steps: 2 x 2 rows log (and
    step on) the loss of 4, not twice it. An eval set is evaluated after every epoch (an EarlyStoppingCallback
    reads those), not once at the end."""
    rows = [r for r in toy_rows(40) if len(r["completions"]) == 3][:4]  # equal tag counts: equal micro-batch means
    assert len(rows) == 4
    start = mean_tag_loss(ProcessRewardModel(tiny_dir, device="cpu", quantization=None), rows)
    prm = train_process_reward_model(tiny_dir, rows, tmp_path / "prm", eval_dataset=rows, quantization=None,
                                     lora={"r": 4, "lora_dropout": 0.0}, num_train_epochs=2,
                                     per_device_train_batch_size=2, gradient_accumulation_steps=2, logging_steps=1,
                                     device="cpu", disable_tqdm=True)
    history = prm.training_metrics["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 2 and losses[0] == pytest.approx(start, rel=1e-3)  # step 1: LoRA's B = 0, the base
    assert [h["epoch"] for h in history if "eval_loss" in h] == [1.0, 2.0, 2.0]  # each epoch's, then the final


def test_a_model_whose_logits_are_not_decoder_plus_head_trains_on_the_logits_it_is_scored_with(tiny_dir, tmp_path,
                                                                                                  monkeypatch):
    """A soft-capped head (Gemma-2) is no decoder-plus-linear: training on the decoder and head alone would fit
    other logits than the ones the saved reward model scores with."""
    import stepdpo_lite.reward_training as reward_training
    from transformers import Trainer
    from transformers.trainer_utils import TrainOutput
    load_model, seen = reward_training.load_model, {}

    def load_with_a_scaled_head(*args, **kwargs):
        model, tokenizer = load_model(*args, **kwargs)
        model.register_forward_hook(lambda module, inputs, out: out.__class__(logits=out.logits * 2))
        return model, tokenizer

    def fake_train(self, resume_from_checkpoint=None, **kw):
        seen["loss"] = self.compute_loss(self.model, self._prepare_inputs(next(iter(self.get_train_dataloader()))))
        return TrainOutput(global_step=0, training_loss=0.0, metrics={})

    monkeypatch.setattr(reward_training, "load_model", load_with_a_scaled_head)
    monkeypatch.setattr(Trainer, "train", fake_train)
    rows = toy_rows(8)
    prm = train_process_reward_model(tiny_dir, rows, tmp_path / "prm", quantization=None, device="cpu",
                                     lora={"r": 4, "lora_dropout": 0.0, "init_lora_weights": False},
                                     per_device_train_batch_size=8, disable_tqdm=True)
    assert seen["loss"].item() == pytest.approx(mean_tag_loss(prm, rows), abs=1e-4)


@pytest.mark.parametrize("device, use_cpu", [("cpu", True), ("cuda", False), ("cuda:1", False)])
def test_the_device_asked_for_is_the_trainers(tiny_dir, tmp_path, monkeypatch, device, use_cpu):
    """device="cpu" on a GPU machine trained on the GPU, were use_cpu not set from it."""
    import stepdpo_lite.reward_training as reward_training
    monkeypatch.setattr(reward_training, "load_model", lambda *args, **kwargs: (
        tiny_models.build_tiny_model(tiny_models.build_tokenizer(), seed=0), tiny_models.build_tokenizer()))

    class Recorded(reward_training.TrainingArguments):
        def __post_init__(self):
            raise RuntimeError(f"use_cpu={self.use_cpu}")

    monkeypatch.setattr(reward_training, "TrainingArguments", Recorded)
    with pytest.raises(RuntimeError, match=f"^use_cpu={use_cpu}$"):
        train_process_reward_model(tiny_dir, toy_rows(2), tmp_path / "prm", quantization=None, device=device)


def test_eval_metrics_count_every_step_of_the_last_eval_batch(tiny_dir, tmp_path):
    """The Trainer cuts the last evaluation batch to the rows left in the set; the steps' rewards were one flat list,
    so it cut steps instead (13 steps in 5 rows, batches of 4: 12 steps counted, and the one wrong step, in the last
    row, never)."""
    import numpy as np
    rows = [{"prompt": p.prompt, "completions": toyworld.check(p, p.gold_solution).steps}
            for p in toyworld.make_problems(5, "train", seed=0, max_ops=3)]
    for r in rows:
        r["labels"] = [True] * len(r["completions"])
    rows[-1]["labels"][-1] = False
    prm = train_process_reward_model(tiny_dir, rows, tmp_path / "prm", eval_dataset=rows, quantization=None,
                                     lora={"r": 4, "lora_dropout": 0.0}, max_steps=1, per_device_train_batch_size=5,
                                     per_device_eval_batch_size=4, device="cpu", disable_tqdm=True)
    scores = prm.score_solutions([r["prompt"] for r in rows], [r["completions"] for r in rows])
    rewards = [x for rs in scores for x in rs]
    labels = [y for r in rows for y in r["labels"]]
    assert len(labels) == 13 and sum(labels) == 12
    right = np.mean([(x > 0) == y for x, y in zip(rewards, labels)])
    assert prm.training_metrics["eval_accuracy"] == pytest.approx(right)
    assert "eval_auroc" in prm.training_metrics
    # the mean loss over all 13 tags (eval_loss is a mean of the two batches' means, by rows)
    per_tag = [np.logaddexp(0.0, -x if y else x) for x, y in zip(rewards, labels)]
    assert prm.training_metrics["eval_tag_loss"] == pytest.approx(np.mean(per_tag), abs=1e-5)


def test_an_output_dir_holding_other_files_is_refused_before_training(tmp_path, monkeypatch):
    """The model is saved to output_dir by replacing the folder: a user's files there were deleted after training."""
    _no_model_loads(monkeypatch)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.jsonl").write_text("my rows\n")
    with pytest.raises(ValueError, match=r"output_dir: .*out holds \['train.jsonl'\]"):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None)
    assert (tmp_path / "out" / "train.jsonl").read_text() == "my rows\n"


@pytest.mark.parametrize("name, value", [("max_steps", 1e3), ("max_steps", 0), ("per_device_train_batch_size", 8.0),
                                         ("gradient_accumulation_steps", "2")])
def test_a_step_or_batch_count_that_is_no_int_is_refused_before_loading(tmp_path, monkeypatch, name, value):
    """max_steps=1e3 (a float) was a TypeError deep in the Trainer's loop, after the model had loaded."""
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match=f"^RewardTrainingConfig: {name} must be an int >= 1, got {value!r}$"):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None, **{name: value})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"learning_rate": "1e-4"},
     "RewardTrainingConfig: learning_rate must be a finite number, got '1e-4'; pass a float"),
    ({"num_train_epochs": None}, "RewardTrainingConfig: num_train_epochs must be a finite number, got None$"),
    ({"learning_rate": float("nan")}, "RewardTrainingConfig: learning_rate must be a finite number, got nan$"),
    ({"weight_decay": "0.01"}, "training_args: weight_decay must be a finite number, got '0.01'; pass a float"),
    ({"training_args": {"learning_rate": "1e-4"}}, "RewardTrainingConfig: learning_rate must be a finite number")])
def test_a_float_option_that_is_no_number_is_refused_before_loading(tmp_path, monkeypatch, overrides, message):
    """learning_rate="1e-4" (as YAML reads 1e-4) was a TypeError inside the Trainer, after the model had loaded."""
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match="^" + message):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None, **overrides)
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        train_outcome_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None,
                                   learning_rate="1e-4")


@pytest.mark.parametrize("name, value", [("num_train_epochs", 0), ("num_train_epochs", -1.0), ("learning_rate", 0.0),
                                         ("learning_rate", -1e-4)])
def test_a_rate_or_epoch_count_of_zero_or_less_is_refused_before_loading(tmp_path, monkeypatch, name, value):
    """num_train_epochs=0 (or -1) ran no step and saved the base as the trained model, without a word; learning_rate=0
    trained nothing, and a negative one failed in the optimizer once the model had loaded."""
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match=f"^RewardTrainingConfig: {name} must be > 0, got {value!r}$"):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None, **{name: value})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [True, "42", 4.2, -1, None])
def test_a_seed_that_is_no_int_is_refused_by_name(tmp_path, monkeypatch, seed):
    """seed=True was torch's RuntimeError "manual_seed expected a long, but got bool"; "42" or -1 numpy's errors."""
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match=re.escape(f"RewardTrainingConfig: seed must be an int >= 0, got {seed!r}")):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None, seed=seed)


@pytest.mark.parametrize("overrides, message", [
    ({"aggregation": "mean2"}, "reward model: aggregation must be one of"),
    ({"prompt_template": "Problem:"}, "reward model: prompt_template must be a str containing '{problem}'"),
    ({"max_length": 0}, "reward model: max_length must be an int >= 1 or None, got 0"),
    ({"dtype": "float64"}, "reward model: dtype must be 'float32', 'bfloat16', 'float16' or None, got 'float64'"),
    ({"dtype": "float33"}, "train_process_reward_model: unknown dtype 'float33'")])  # was "load_model: ..."
def test_a_bad_reward_model_option_is_refused_before_loading(tmp_path, monkeypatch, overrides, message):
    """The reward model's own options (saved with it) were checked when the verifier was built, after the base had
    loaded; dtype="float64" even got past that to fail inside bitsandbytes' quantization."""
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", device="cpu", **overrides)
    assert not (tmp_path / "out").exists()


def test_the_step_delimiter_is_saved_with_the_prm(tiny_dir, tmp_path):
    """A PRM for texts with one step a line splits a text it scores by line, as its training rows were."""
    rows = [{"prompt": "P\n", "completions": ["1 + 1 = 2\n", "2 * 3 = 6"], "labels": [True, False]}] * 4
    prm = train_process_reward_model(tiny_dir, rows, tmp_path / "prm", quantization=None, lora=None, device="cpu",
                                     max_steps=1, step_delimiter="\n")
    assert ProcessRewardModel.load(tmp_path / "prm").config.step_delimiter == "\n"
    assert len(prm.score_solutions(["P\n"], ["1 + 1 = 2\n2 * 3 = 6"])[0]) == 2


def test_one_config_with_keyword_overrides():
    base = RewardTrainingConfig(quantization=None, learning_rate=3e-4, training_args={"save_strategy": "steps"})
    c = RewardTrainingConfig.of(base, {"max_steps": 5, "tag": "<T>", "eval_steps": 2})
    assert (c.quantization, c.learning_rate, c.max_steps, c.tag) == (None, 3e-4, 5, "<T>")
    assert c.training_args == {"save_strategy": "steps", "eval_steps": 2}  # the rest go to TrainingArguments
    assert base.max_steps == -1 and base.training_args == {"save_strategy": "steps"}  # the given config is kept
    assert RewardTrainingConfig.of(None, {}) == RewardTrainingConfig()
    # training_args= as a keyword of train_*: merged (it was nested, then refused as an unknown option)
    c = RewardTrainingConfig.of(base, {"training_args": {"eval_steps": 3}, "logging_steps": 2})
    assert c.training_args == {"save_strategy": "steps", "eval_steps": 3} and c.logging_steps == 2


def test_the_config_refuses_a_bad_value_when_built_and_takes_the_reward_model_fields_from_their_config():
    """RewardTrainingConfig(max_steps=1e3) was accepted, to fail only when training began (StepwiseDPOConfig refuses
    such values when built); and its eight hand copies of RewardModelConfig's fields had help that drifted (yes lost
    "must be one token", aggregation the list of names), then were copied again into the saved config."""
    from dataclasses import fields
    for bad, message in ((dict(max_steps=1e3), r"^RewardTrainingConfig: max_steps must be an int >= 1, got 1000.0$"),
                         (dict(learning_rate=0.0), r"^RewardTrainingConfig: learning_rate must be > 0, got 0.0$"),
                         (dict(aggregation="mean2"), "^reward model: aggregation must be one of"),
                         (dict(prompt_template="Q:"), "^reward model: prompt_template must be a str containing"),
                         (dict(lora=None), "^a 4-bit base cannot be trained itself"),
                         (dict(training_args={"lerning_rate": 1e-4}), r"^unknown option\(s\) \['lerning_rate'\]")):
        with pytest.raises(ValueError, match=message):
            RewardTrainingConfig(**bad)
    own = {f.name: f.metadata["help"] for f in fields(RewardModelConfig)}
    saved = {f.name: f.metadata["help"] for f in fields(RewardTrainingConfig) if f.metadata.get("saved")}
    assert set(saved) == {"tag", "yes", "no", "step_delimiter", "max_length", "prompt_template", "aggregation",
                          "quantization"}
    assert {name for name, text in saved.items() if not text.startswith(own[name])} == set()
    assert "must be one token" in saved["yes"] and "weighted_sum" in saved["aggregation"]
    c = RewardTrainingConfig(tag="<T>", step_delimiter="\n", max_length=64, quantization=None)
    assert c.reward_model_config("bfloat16") == RewardModelConfig(tag="<T>", step_delimiter="\n", max_length=64,
                                                                  dtype="bfloat16", trained_with_prompts=True)

def test_a_config_field_named_in_training_args_sets_the_field(tmp_path, monkeypatch):
    """training_args={"seed": 7} seeded the Trainer with 7 but the LoRA init and the data order with the field's 42,
    and training_args={"max_steps": 1e3} went past the field's check to fail in the Trainer, the model loaded."""
    c = RewardTrainingConfig.of(None, {"training_args": {"seed": 7, "save_strategy": "steps"}})
    assert c.seed == 7 and c.training_args == {"save_strategy": "steps"}
    c = RewardTrainingConfig.of(RewardTrainingConfig(learning_rate=1e-3, training_args={"learning_rate": 3e-4}), {})
    assert c.learning_rate == 3e-4 and c.training_args == {}  # the value the Trainer was given before, now the field's
    assert RewardTrainingConfig.of(c, {"training_args": {"learning_rate": 1e-2}, "learning_rate": 2e-2}).learning_rate \
        == 2e-2  # a keyword beats training_args
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match=r"^RewardTrainingConfig: max_steps must be an int >= 1, got 1000.0$"):
        train_process_reward_model("no-such-base", toy_rows(2), tmp_path / "out", quantization=None,
                                   training_args={"max_steps": 1e3})


def test_bad_rows_name_the_row_and_field(tiny_dir, tmp_path):
    """The reward trainers check rows with data.py's validators: one rule for every entry point (0/1 labels are
    refused there on purpose: a label column says what it means)."""
    good = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2"], "labels": [True]}
    validate_stepwise([good, good])
    cases = [({**good, "labels": [True, False]}, "record 1: field 'labels'"),
             ({**good, "labels": ["yes"]}, "record 1: field 'labels[0]'"),
             ({**good, "labels": [1]}, "record 1: field 'labels[0]'"),
             ({**good, "completions": []}, "record 1: field 'completions'"),
             ({**good, "completions": ["  "]}, "record 1: field 'completions[0]'"),
             ({**good, "prompt": None}, "record 1: field 'prompt'"),
             ({"prompt": "p", "labels": [True]}, "record 1: field 'completions': is missing")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            validate_stepwise([good, bad])
        with pytest.raises(ValueError, match=re.escape(message)):  # before any model is loaded
            train_process_reward_model(tmp_path / "no-model-here", [good, bad], tmp_path / "x")
    with pytest.raises(ValueError, match="empty"):
        train_process_reward_model(tiny_dir, [], tmp_path / "x", quantization=None, device="cpu")
    outcome = {"prompt": "p", "completion": "Step 1: 1 + 1 = 2", "label": False}
    validate_outcome([outcome])
    for bad, message in [({**outcome, "label": 2}, "record 0: field 'label'"),
                         ({**outcome, "completion": ""}, "record 0: field 'completion'")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            train_outcome_reward_model(tmp_path / "no-model-here", [bad], tmp_path / "x")


def test_the_trainers_name_the_dataset_and_the_option_before_loading_a_model(tmp_path):
    good = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2"], "labels": [True]}
    nowhere = tmp_path / "no-model-here"  # each error must come before the (missing) model is loaded
    with pytest.raises(ValueError, match=re.escape("eval_dataset: stepwise: record 1: field 'labels[0]'")):
        train_process_reward_model(nowhere, [good], tmp_path / "x", eval_dataset=[good, {**good, "labels": [1]}])
    with pytest.raises(ValueError, match=re.escape("train_dataset: stepwise: record 0: field 'prompt'")):
        train_process_reward_model(nowhere, [{**good, "prompt": ""}], tmp_path / "x")
    with pytest.raises(ValueError, match="train_dataset is None"):
        train_process_reward_model(nowhere, None, tmp_path / "x")
    with pytest.raises(ValueError, match="eval_dataset is empty; pass None"):  # it trained, and evaluated nothing
        train_process_reward_model(nowhere, [good], tmp_path / "x", eval_dataset=[])
    # PRM800K-style steps (split at "\n") under the default delimiter: the saved PRM scored such a text as one step
    lines = {"prompt": "p\n", "completions": ["1 + 1 = 2", "\n2 + 2 = 4"], "labels": [True, True]}
    with pytest.raises(ValueError, match=r"train_dataset: row 1: field 'completions': steps 2..K open with '\\n', "
                                         r"not step_delimiter='\\n\\nStep'"):
        train_process_reward_model(nowhere, [good, lines], tmp_path / "x")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the data's own delimiter: no warning
        with pytest.raises(OSError):
            train_process_reward_model(nowhere, [lines], tmp_path / "x", step_delimiter="\n")
    with pytest.raises(ValueError, match="learnig_rate"):
        train_process_reward_model(nowhere, [good], tmp_path / "x", learnig_rate=1e-3)
    # A user's trial: a config passed fourth, by position, was read as eval_dataset ("expected a list of records,
    # got RewardTrainingConfig"); both are keyword-only, so Python names the mistake before anything runs.
    for train in (train_process_reward_model, train_outcome_reward_model):
        with pytest.raises(TypeError, match="3 positional arguments but 4 were given"):
            train(nowhere, [good], tmp_path / "x", RewardTrainingConfig(quantization=None))


def test_tokenize_rows_refuses_labels_it_would_flip_or_misalign(tiny_model, tiny_tokenizer):
    """``tokenize_rows`` skips the validators (verifier pretraining feeds it a million rows), so it checks the
    labels itself: ``int(0.9)`` would turn a soft label into "wrong"."""
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    good = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"], "labels": [True, False]}
    assert [f["tag_labels"] for f in tokenize_rows(prm, [good])] == [[1, 0]]
    with pytest.raises(ValueError, match=re.escape("row 1: field 'labels': labels must be true or false, got 0.9")):
        tokenize_rows(prm, [good, {**good, "labels": [0.9, True]}])
    with pytest.raises(ValueError, match=re.escape("row 0: field 'labels': 1 labels for 2 completions")):
        tokenize_rows(prm, [{**good, "labels": [True]}])
    # one str of steps was read a character a step: "ab" with two labels gave two tags, on "a" and on "b"
    with pytest.raises(ValueError, match=re.escape("training data: row 1: field 'completions': expected a list of "
                                                   "steps, got one str ('ab')")):
        tokenize_rows(prm, [good, {**good, "completions": "ab"}])
    with pytest.raises(ValueError, match=re.escape("row 0: field 'completions': expected a list of steps, got None")):
        tokenize_rows(prm, [{**good, "completions": None}])
    # a missing field was a bare KeyError, naming neither the row nor the data
    for field, message in (("labels", "row 1: field 'labels': expected a list of bools, got NoneType"),
                           ("completions", "row 1: field 'completions': expected a list of steps, got NoneType"),
                           ("prompt", "training data: prompt 1: must be a str, got NoneType")):
        with pytest.raises(ValueError, match=re.escape(message)):
            tokenize_rows(prm, [good, {k: v for k, v in good.items() if k != field}])
    orm = OutcomeRewardModel(tiny_model, tiny_tokenizer)
    with pytest.raises(ValueError, match=re.escape("row 0: field 'label': labels must be true or false")):
        tokenize_rows(orm, [{"prompt": "p", "completion": "Step 1: 1 + 1 = 2", "label": 0.3}])
    outcome = {"prompt": "p", "completion": "Step 1: 1 + 1 = 2", "label": True}
    for field, message in (("label", "row 0: field 'label': labels must be true or false, got None; the row's label is "
                                     "missing (null): label it, or leave the row out"),  # not bool(None): a wrong one
                           ("completion", "training data: row 0: must be a non-blank string, got None")):
        with pytest.raises(ValueError, match=re.escape(message)):
            tokenize_rows(orm, [{k: v for k, v in outcome.items() if k != field}])


def test_too_long_row_raises_instead_of_truncating(tiny_dir, tmp_path):
    from stepdpo_lite.rewards import InputTooLong

    rows = [{"prompt": "P\n", "completions": ["S"], "labels": [True]}] + toy_rows(1)
    with pytest.raises(InputTooLong, match=r"train_dataset: 1 of 2 rows \('prompt' and 'completions'\) are longer "
                                           r"than max_length 30 with their tags: row 1 \(\d+ tokens\); a row is never "
                                           "truncated"):
        train_process_reward_model(tiny_dir, rows, tmp_path / "x", quantization=None, max_length=30, device="cpu",
                                   max_steps=1)
    with pytest.raises(InputTooLong, match="eval_dataset: 1 of 2 rows .* max_length 30"):  # not "train_dataset"
        train_process_reward_model(tiny_dir, rows[:1], tmp_path / "x", eval_dataset=rows, quantization=None,
                                   max_length=30, device="cpu", max_steps=1)
    with pytest.raises(ValueError, match="lora=True"):
        train_process_reward_model(tiny_dir, rows, tmp_path / "x", quantization="4bit", lora=None, device="cpu")


def test_every_too_long_row_is_counted_in_one_error_with_the_call_that_finds_them(tiny_dir, tmp_path):
    """A user's trial: 84 of 161 PRM800K rows were too long, and each run named only the first ("row 2: 1506
    tokens"), with a hint ("input_lengths() finds them") that named no object to call it on."""
    from stepdpo_lite.rewards import InputTooLong

    short = {"prompt": "P\n", "completions": ["S"], "labels": [True]}
    rows = [short, *toy_rows(1), short, *toy_rows(6, seed=1)]  # too long: rows 1, 3 to 8
    with pytest.raises(InputTooLong) as caught:
        train_process_reward_model(tiny_dir, rows, tmp_path / "x", quantization=None, max_length=30, device="cpu")
    message = str(caught.value)
    assert re.match(r"train_dataset: 7 of 9 rows \('prompt' and 'completions'\) are longer than max_length 30 with "
                    r"their tags: row 1 \(\d+ tokens\), row 3 \(\d+ tokens\), row 4 \(\d+ tokens\), "
                    r"row 5 \(\d+ tokens\), row 6 \(\d+ tokens\), \.\.\.; ", message), message
    assert "pass drop_too_long=True to train on the rest" in message
    assert f"ProcessRewardModel({tiny_dir!r}).input_lengths(prompts, solutions)" in message
    outcome = [{"prompt": "P\n", "completion": text, "label": True} for text in ("S", "S" * 40)]
    with pytest.raises(InputTooLong, match=re.escape("1 of 2 rows ('prompt' and 'completion') are longer than "
                                                     "max_length 30 with their tags: row 1 (")
                       + ".*" + re.escape(f"OutcomeRewardModel({tiny_dir!r}).input_lengths(prompts, solutions)")):
        train_outcome_reward_model(tiny_dir, outcome, tmp_path / "x", quantization=None, max_length=30,
                                   device="cpu")


def test_a_too_long_row_from_a_file_is_named_by_file_and_line_as_the_validators_do(tiny_dir, tmp_path):
    """A user's trial: the error said "row 2" (0-based) for what the validators call "long.jsonl, line 3"."""
    import json

    from stepdpo_lite.rewards import InputTooLong

    short, long = {"prompt": "P\n", "completions": ["S"], "labels": [True]}, toy_rows(1)[0]
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in (short, long, short)).replace("\n", "\n\n", 1) + "\n")
    with pytest.raises(InputTooLong, match=re.escape(f"train_dataset: 1 of 3 rows ('prompt' and 'completions') "
                                                     f"are longer than max_length 30 with their tags: {jsonl}, "
                                                     "line 3 (")):  # row 1: line 2 is blank
        train_process_reward_model(tiny_dir, jsonl, tmp_path / "x", quantization=None, max_length=30, device="cpu")
    array = tmp_path / "long.json"  # a .json array's entries are records, as data.read_json_records names them
    array.write_text(json.dumps([short, long]))
    with pytest.raises(InputTooLong, match=re.escape(f"eval_dataset: 1 of 2 rows ('prompt' and 'completions') are "
                                                     f"longer than max_length 30 with their tags: {array}, "
                                                     "record 1 (")):
        train_process_reward_model(tiny_dir, [short], tmp_path / "x", eval_dataset=str(array), quantization=None,
                                   max_length=30, device="cpu")


def test_drop_too_long_leaves_them_out_with_a_warning_and_trains_on_the_rest(tiny_dir, tmp_path, monkeypatch):
    from stepdpo_lite.rewards import InputTooLong

    short = [{"prompt": "P\n", "completions": ["S"], "labels": [k % 2 == 0]} for k in range(3)]
    rows = [short[0], *toy_rows(2), short[1], short[2]]
    with pytest.warns(UserWarning) as caught:
        prm = train_process_reward_model(tiny_dir, rows, tmp_path / "x", eval_dataset=[short[0], rows[1]],
                                         quantization=None, max_length=30, device="cpu", drop_too_long=True,
                                         per_device_train_batch_size=1, num_train_epochs=1, logging_steps=1)
    messages = [str(w.message) for w in caught]
    assert {w.filename for w in caught if "left out" in str(w.message)} == {__file__}  # the user's call, not the kit's
    assert any(re.match(r"train_dataset: 2 of 5 rows \('prompt' and 'completions'\) are longer than max_length 30 "
                        r"with their tags: row 1 \(\d+ tokens\), row 2 \(\d+ tokens\): left out "
                        r"\(drop_too_long=True\), 3 rows kept$", m) for m in messages), messages
    assert any(m.startswith("eval_dataset: 1 of 2 rows") and m.endswith("1 rows kept") for m in messages), messages
    assert max(log["step"] for log in prm.training_metrics["log_history"]) == 3  # batches of one: the 3 kept rows
    with pytest.raises(InputTooLong, match="train_dataset: 2 of 2 rows .* a row is never truncated"):  # none left
        train_process_reward_model(tiny_dir, rows[1:3], tmp_path / "y", quantization=None, max_length=30,
                                   device="cpu", drop_too_long=True)
    _no_model_loads(monkeypatch)
    with pytest.raises(ValueError, match="RewardTrainingConfig: drop_too_long must be True or False, got 'yes'"):
        train_process_reward_model(tiny_dir, rows, tmp_path / "y", drop_too_long="yes")


def test_transformers_own_too_long_warning_does_not_come_before_the_error(tiny_model, transformers_warnings):
    """A user's trial: transformers' "Token indices sequence length is longer than ... will result in indexing
    errors" line was printed before the kit's InputTooLong, which says what to do."""
    from stepdpo_lite.rewards import InputTooLong

    tokenizer = tiny_models.build_tokenizer()  # fresh: transformers warns once per tokenizer
    tokenizer.model_max_length = 40  # the verifier's max_length, as the tokenizer's own limit
    prm = ProcessRewardModel(tiny_model, tokenizer)
    with pytest.raises(InputTooLong, match="max_length 40"):
        tokenize_rows(prm, [{"prompt": "P\n", "completions": ["1" * 60], "labels": [True]}])
    assert not [m for m in transformers_warnings if "Token indices" in m]


def test_the_too_long_hint_names_no_empty_folder_for_a_tokenizer_built_in_memory(tiny_model):
    """It told the user to call ``ProcessRewardModel('').input_lengths(...)``: a tokenizer built in memory has no
    folder name."""
    from stepdpo_lite.rewards import InputTooLong

    tokenizer = tiny_models.build_tokenizer()
    assert tokenizer.name_or_path == ""
    prm = ProcessRewardModel(tiny_model, tokenizer, RewardModelConfig(max_length=40))
    with pytest.raises(InputTooLong) as refused:
        tokenize_rows(prm, [{"prompt": "P\n", "completions": ["1" * 60], "labels": [True]}])
    assert "the verifier's input_lengths(prompts, solutions)" in str(refused.value)
    assert "ProcessRewardModel(''" not in str(refused.value)


def test_tokenize_rows_refuses_fewer_or_more_names_than_rows(tiny_model, tiny_tokenizer):
    """With one name for two rows, drop_too_long's zip left the second row out of training without a word (and
    a too-long row past the names was an IndexError)."""
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    row = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2"], "labels": [True]}
    for wheres in (["line 1"], ["line 1", "line 2", "line 3"]):
        with pytest.raises(ValueError, match=f"data.jsonl: {len(wheres)} wheres for 2 rows"):
            tokenize_rows(prm, [row, row], where="data.jsonl", wheres=wheres, drop_too_long=True)
    assert len(tokenize_rows(prm, [row, row], wheres=["line 1", "line 2"])) == 2


def test_an_ensemble_refuses_prompts_and_solutions_that_do_not_pair_up():
    """A member may be any object with ``solution_rewards``: one that zips prompts with solutions scored only as many
    solutions as there were prompts, and the ensemble gave one reward for two solutions without a word."""
    from stepdpo_lite.reward_ensembles import EnsembleRewardModel

    class Zipping:
        def solution_rewards(self, prompts, solutions, batch_size=None, progress=False):
            return [float(len(s)) for _, s in zip(prompts, solutions)]

    ensemble = EnsembleRewardModel([Zipping()])
    assert ensemble.score_solutions(["p", "q"], ["ab", "abc"]) == [2.0, 3.0]
    with pytest.raises(ValueError, match=r"^EnsembleRewardModel: got 1 prompts and 2 solutions$"):
        ensemble.score_solutions(["p"], ["ab", "abc"])


def test_shaped_reward_refuses_a_negative_complexity_bonus():
    """A correct step "earns more when it is complex": complexity_bonus=-1 gave a correct step of complexity 2 the
    reward -2.0, a wrong step's sign."""
    from stepdpo_lite.reward_ensembles import shaped_reward
    assert shaped_reward(2.0, complexity=2.0, complexity_bonus=0.0) == 2.0
    with pytest.raises(ValueError, match=r"^shaped_reward: complexity_bonus must be >= 0, got -1.0$"):
        shaped_reward(2.0, complexity=2.0, complexity_bonus=-1.0)
    with pytest.raises(ValueError, match=r"^shaped_reward: complexity must be >= 0, got -1.0$"):
        shaped_reward(2.0, complexity=-1.0)


def test_a_combined_model_refuses_a_problem_that_is_none_as_its_parts_do(tiny_model, tiny_tokenizer):
    """get_reward_for_problem_solution(None, ...) scored the solution under an empty prompt, where the PRM and the ORM
    it combines refuse None (the problem is what this method is for: get_reward_for_text scores a bare text)."""
    from stepdpo_lite.reward_ensembles import CombinedRewardModel
    prm, orm = ProcessRewardModel(tiny_model, tiny_tokenizer), OutcomeRewardModel(tiny_model, tiny_tokenizer)
    for model in (prm, orm, CombinedRewardModel(prm), CombinedRewardModel(None, orm), CombinedRewardModel(prm, orm)):
        with pytest.raises(ValueError, match=r"^problem: must be a str, got NoneType$"):
            model.get_reward_for_problem_solution(None, "Step 1: 1 + 1 = 2")
    combined = CombinedRewardModel(prm, orm, process_weight=0.5, outcome_weight=0.5)
    assert combined.get_reward_for_problem_solution("1 + 1", "Step 1: 1 + 1 = 2") == pytest.approx(
        0.5 * prm.get_reward_for_problem_solution("1 + 1", "Step 1: 1 + 1 = 2")
        + 0.5 * orm.get_reward_for_problem_solution("1 + 1", "Step 1: 1 + 1 = 2"), abs=1e-6)


def test_an_ensemble_member_that_gives_a_nan_step_reward_is_named():
    """score_solutions refused a member's NaN by name; get_rewards_for_steps summed it into every weighted reward."""
    from stepdpo_lite.reward_ensembles import EnsembleRewardModel

    class Fixed:
        def __init__(self, rewards):
            self.rewards = rewards

        def solution_rewards(self, prompts, solutions, batch_size=None, progress=False):
            return [0.0] * len(solutions)

        def get_rewards_for_steps(self, steps, problem=None):
            return self.rewards

    steps = ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"]
    assert EnsembleRewardModel([Fixed([1.0, 2.0]), Fixed([3.0, 4.0])]).get_rewards_for_steps(steps) == [2.0, 3.0]
    with pytest.raises(ValueError, match=r"^EnsembleRewardModel: member 1's reward of step 1 must be a finite number, "
                                         r"got nan$"):
        EnsembleRewardModel([Fixed([1.0, 2.0]), Fixed([3.0, float("nan")])]).get_rewards_for_steps(steps)


@pytest.mark.parametrize("train, kind", [(train_process_reward_model, "ProcessRewardModel"),
                                         (train_outcome_reward_model, "OutcomeRewardModel")])
def test_a_saved_reward_model_or_adapter_as_the_base_is_refused_before_anything_is_written(tiny_dir, tmp_path,
                                                                                           monkeypatch, train, kind):
    """Training on from a saved PRM/ORM failed with load_model's "pass trainable=True", which the trainers refuse as
    an unknown option, or (lora=None) deep in the Trainer with "element 0 of tensors does not require grad", and left
    an empty output_dir behind."""
    from stepdpo_lite.models import load_model
    saved = train_process_reward_model(tiny_dir, toy_rows(4), tmp_path / "prm", quantization=None, lora={"r": 4},
                                       device="cpu", max_steps=1, disable_tqdm=True)
    saved.model.save_pretrained(tmp_path / "adapter")  # a bare adapter: no reward model's config beside it
    load_model(tmp_path / "adapter", quantization=None)  # a policy's folder that loads, but that no trainer trains on
    _no_model_loads(monkeypatch)
    for base, what in (("prm", r"a saved reward model \(process_reward_config.json\)"), ("adapter", "a saved adapter")):
        for options in (dict(), dict(quantization=None, lora=None), dict(quantization=None, lora=True)):
            with pytest.raises(ValueError, match=f"^{kind}: {re.escape(str(tmp_path / base))} is {what}, not a base "
                                                 "model: .*Train anew from its base"):
                train(tmp_path / base, toy_rows(2), tmp_path / "out", **options)
            assert not (tmp_path / "out").exists()


def test_the_delimiter_warning_does_not_recommend_the_delimiter_already_set(tmp_path):
    """A user's trial: PRM800K rows under step_delimiter='\\n', as the README says, were told to set '\\n'. Their
    steps hold lines of their own: the delimiter is the cause, not the fix."""
    nowhere = tmp_path / "no-model-here"  # the warning comes before the (missing) model is loaded
    rows = [{"prompt": "p", "completions": ["1 + 1 = 2\nso 2", "\n2 + 2 = 4"], "labels": [True, True]}]
    with pytest.warns(UserWarning) as caught, pytest.raises(OSError):
        train_process_reward_model(nowhere, rows, tmp_path / "x", step_delimiter="\n")
    said = " ".join(str(w.message) for w in caught)
    assert "1 of 1 rows do not split back" in said and "these rows' steps contain it" in said
    assert "set the data's delimiter" not in said and "score lists of steps" in said


def test_max_length_help_says_it_is_saved_as_the_scoring_limit():
    """A user's trial: a PRM trained with max_length=512 refused 38 of 40 ProcessBench rows when it scored them;
    the help said only "a longer row raises"."""
    from dataclasses import fields
    help_text = next(f.metadata["help"] for f in fields(RewardTrainingConfig) if f.name == "max_length")
    assert "Saved with the model as its scoring limit" in help_text
    assert "ProcessRewardModel.load(path, max_length=...)" in help_text


def test_tokenize_rows_warns_of_text_the_tokenizer_cannot_read(tiny_model, tiny_tokenizer):
    """A user's GSM8K rows on the character-level tiny base: 50 of 800 held characters it maps to <unk> (’ × €), and
    training went ahead as if the model read them."""
    import warnings

    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    plain = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2"], "labels": [True]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenize_rows(prm, [plain, plain])
    odd = {**plain, "completions": ["Step 1: 1 × 1 = 1"]}
    with pytest.warns(UserWarning, match=r"training data: fields 'prompt' and 'completions': 1 of 3 rows "
                                         r"\(row 2 first\) hold text the tokenizer maps to "
                                         r"its unknown token '<unk>'"):
        tokenize_rows(prm, [plain, plain, odd])


def test_bare_steps_are_named_as_the_cause_with_the_fix(tmp_path):
    """A user's trial: TRL-style bare steps ("12 - 5 = 7", no "\\n" before steps 2..K) trained run together, and the
    warning named the steps containing the delimiter first; under the default it said to set one (no fix either)."""
    nowhere = tmp_path / "no-model-here"  # the warning comes before the (missing) model is loaded
    bare = {"prompt": "Compute 12 - 5 + 6.\n", "completions": ["12 - 5 = 7", "7 + 6 = 13"], "labels": [True, True]}
    for delimiter in ("\n", "\n\nStep"):
        with pytest.warns(UserWarning) as caught, pytest.raises(OSError):
            train_process_reward_model(nowhere, [bare], tmp_path / "x", step_delimiter=delimiter)
        said = " ".join(str(w.message) for w in caught)
        assert ("1 of 1 rows do not split back" in said and "in 1 of them steps 2..K do not open with it" in said
                and "ds.map(lambda r: data.delimit_steps(r, '\\n')) with step_delimiter='\\n'" in said), said
        assert "steps contain it" not in said and "set the data's delimiter" not in said


def test_a_prompt_that_runs_into_its_first_step_is_warned_of(tmp_path):
    """A user's trial: PRM800K and Math-Shepherd rows (the loaders' prompts end with no separator) trained on
    '...?Step 1: ...' read as one text, with no word. The toy world's prompts end with a newline: no warning."""
    nowhere = tmp_path / "no-model-here"
    run_on = {"prompt": "What is 7 * 6 - 4?", "completions": ["7 * 6 = 42.", "\n42 - 4 = 38."], "labels": [True, True],
              "completion": "7 * 6 = 42.\n42 - 4 = 38.", "label": True}
    for train in (train_process_reward_model, train_outcome_reward_model):
        said = (rf"^{train.__name__}: train_dataset: 1 of 2 rows' prompts run into their first step with no "
                r"whitespace between \(row 0 first, field 'prompt'\): ")
        with pytest.warns(UserWarning, match=said + r"end them with '\\n'"), pytest.raises(OSError):
            train(nowhere, [run_on, toy_rows(1)[0]], tmp_path / "x", step_delimiter="\n")
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # the toy world's rows
            with pytest.raises(OSError):
                train(nowhere, toy_rows(4), tmp_path / "x")


def test_tokenize_rows_takes_bool_labels_only_as_the_validators_do(tiny_model, tiny_tokenizer):
    """It took 0/1 (a message no training run could reach said "bool (or 0/1)") where the validators refuse them."""
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    row = {"prompt": "p\n", "completions": ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"], "labels": [1, 0]}
    with pytest.raises(ValueError, match=re.escape("row 0: field 'labels': labels must be true or false, got 1; "
                                                   "convert the labels: bool(x) for 0/1")):
        tokenize_rows(prm, [row])


def test_the_verifier_trainer_is_a_public_class_and_the_profiles_stay_light():
    """VerifierTrainer was built inside a private factory (to keep torch out of the profiles' import), and the
    verifier pretraining subclassed that factory's result inside another function; now both are plain classes,
    and the profiles import the trainers only where they train."""
    import subprocess
    import sys

    from transformers import Trainer

    from stepdpo_lite.reward_training import VerifierTrainer
    from stepdpo_lite.tutorial.verifier_pretraining import VerifierPretrainingTrainer
    assert issubclass(VerifierPretrainingTrainer, VerifierTrainer) and issubclass(VerifierTrainer, Trainer)
    code = ("import sys, stepdpo_lite.tutorial.profiles; "
            "print(sorted({'torch', 'transformers', 'stepdpo_lite.reward_training'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split("\n")[-2] == "[]", done.stdout + done.stderr


def test_steps_that_all_open_with_another_delimiter_are_refused_naming_it_and_the_first_record(tmp_path):
    """A user's trial: GSM8K rows whose steps 2..K open with "\\n", trained under the default '\\n\\nStep', were
    called TRL's bare steps (a warning, with a fix that did not apply), and the PRM saved with '\\n\\nStep' scored
    each of their texts as one step."""
    import json

    nowhere = tmp_path / "no-model-here"  # every message comes before the (missing) model is loaded
    lines = [{"prompt": "p\n", "completions": ["1 + 1 = 2", f"\n2 + {k} = {2 + k}"], "labels": [True, True]}
             for k in range(3)]
    one_step = {"prompt": "p\n", "completions": ["Step 1: 1 + 1 = 2"], "labels": [True]}  # fits any delimiter
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in (one_step, *lines)))
    with pytest.raises(ValueError, match=re.escape(
            f"train_process_reward_model: train_dataset: {jsonl}, line 2: field 'completions': steps 2..K open with "
            "'\\n', not step_delimiter='\\n\\nStep', in all 3 rows of more than one step: a PRM saved so splits a text "
            "it scores into other steps; pass step_delimiter='\\n'")):
        train_process_reward_model(nowhere, jsonl, tmp_path / "x")
    steps = {"prompt": "p\n", "completions": ["Step 1: 1 + 1\n= 2", "\n\nStep 2: 2 + 2 = 4"], "labels": [True, True]}
    with pytest.raises(ValueError, match=r"row 0: field 'completions': steps 2..K open with '\\n\\nStep', not "
                                         r"step_delimiter='\\n'.*; pass step_delimiter='\\n\\nStep'$"):
        train_process_reward_model(nowhere, [steps, steps], tmp_path / "x", step_delimiter="\n")
    steps = {**steps, "completions": ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 + 2 = 4"]}  # a mix: the delimiter fits
    with pytest.warns(UserWarning) as caught, pytest.raises(OSError):
        train_process_reward_model(nowhere, [steps, *lines], tmp_path / "x")
    said = " ".join(str(w.message) for w in caught)
    assert ("train_dataset: 3 of 4 rows do not split back into their steps at step_delimiter='\\n\\nStep' (row 1 "
            "first, field 'completions')" in said and "in 3 of them (row 1 first) steps 2..K open with '\\n': is that "
            "the data's delimiter?" in said and "TRL's bare steps" not in said), said


def test_the_bare_steps_and_prompt_warnings_name_the_first_record_by_file_and_line(tmp_path):
    """A user's trial: one run named a too-long record "train_bad.jsonl, line 6" and these only by a count."""
    import json

    nowhere = tmp_path / "no-model-here"
    good = {"prompt": "p\n", "completions": ["1 + 1 = 2", "\n2 + 2 = 4"], "labels": [True, True]}
    bare = {"prompt": "p", "completions": ["1 + 1 = 2", "2 + 2 = 4"], "labels": [True, True]}  # runs into step 1 too
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in (good, good, bare)))
    with pytest.warns(UserWarning) as caught, pytest.raises(OSError):
        train_process_reward_model(nowhere, jsonl, tmp_path / "x", step_delimiter="\n")
    said = [str(w.message) for w in caught]
    assert any(m.startswith(f"train_process_reward_model: train_dataset: 1 of 3 rows do not split back into their "
                            f"steps at step_delimiter='\\n' ({jsonl}, line 3 first, field 'completions')")
               and "TRL's bare steps" in m for m in said), said
    assert any(m.startswith(f"train_process_reward_model: train_dataset: 1 of 3 rows' prompts run into their first "
                            f"step with no whitespace between ({jsonl}, line 3 first, field 'prompt')")
               for m in said), said


def test_text_the_tokenizer_cannot_read_is_named_by_file_and_line_after_rows_are_dropped(tiny_dir, tmp_path):
    """A user's trial: one run named a too-long record "train_bad.jsonl, line 6" and unreadable text "row 5 first"
    (0-based, no file); after drop_too_long the index counted only the rows kept."""
    import json

    short = {"prompt": "P\n", "completions": ["S"], "labels": [True]}
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in (short, toy_rows(1)[0], short, {**short, "prompt": "P×\n"})))
    with pytest.warns(UserWarning, match=re.escape(f"train_dataset: fields 'prompt' and 'completions': 1 of 3 rows "
                                                   f"({jsonl}, line 4 first) hold text the tokenizer maps")):
        train_process_reward_model(tiny_dir, jsonl, tmp_path / "x", quantization=None, max_length=30, device="cpu",
                                   max_steps=1, drop_too_long=True)


def test_the_training_warnings_point_at_the_users_call_and_the_model_records_its_prompts(tiny_dir, tmp_path):
    """The data warnings pointed at the kit's lines (no stacklevel; the unread-text one counted from scoring), not at
    the user's train_process_reward_model(...). The trained model records that it read prompts: scoring one with an
    empty prompt then warns (GenerativeVerifier.warn_of_untrained_layout). An earlier run's checkpoint-5 in the
    output_dir was warned of at reward_training's own line (atomic.check_checkpoints counted its frames by hand)."""
    run_on = {"prompt": "What is 7 * 6 - 4?", "completions": ["7 * 6 = 42.", "42 - 4 = 38."], "labels": [True, True]}
    (tmp_path / "x" / "checkpoint-5").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(OSError):
        warnings.simplefilter("always")
        train_process_reward_model(tmp_path / "no-model-here", [run_on], tmp_path / "x", step_delimiter="\n")
    assert len(caught) == 3 and {w.filename for w in caught} == {__file__}, [(w.filename, w.message) for w in caught]
    assert "holds an earlier run's checkpoints" in str(caught[0].message)
    unread = {**toy_rows(1)[0], "prompt": "P×\n"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prm = train_process_reward_model(tiny_dir, [unread, *toy_rows(3)], tmp_path / "prm", quantization=None,
                                         device="cpu", max_steps=1)
    said = [w for w in caught if "unknown token" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__, [(w.filename, w.message) for w in caught]
    assert prm.config.trained_with_prompts and ProcessRewardModel.load(tmp_path / "prm").config.trained_with_prompts
    with pytest.warns(UserWarning, match=r"1 of 1 prompts are empty \(solution 0 first"):
        prm.score_solutions([""], [toy_rows(1)[0]["completions"]])


def test_a_row_of_exactly_max_length_tokens_is_kept_with_or_without_drop_too_long(tiny_model, tiny_tokenizer):
    """max_length is the longest input allowed (``n <= max_length``, as scoring's ``_check_length`` and
    ``input_lengths``' docstring say): a row that long trains, and drop_too_long leaves out only the longer ones."""
    fits = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2"], "labels": [True]}
    longer = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"], "labels": [True, False]}
    n_fits, n_longer = ProcessRewardModel(tiny_model, tiny_tokenizer).input_lengths(
        ["p", "p"], [fits["completions"], longer["completions"]])
    assert n_fits < n_longer
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer, RewardModelConfig(max_length=n_fits))
    assert [f["tag_labels"] for f in tokenize_rows(prm, [fits])] == [[1]]
    with pytest.warns(UserWarning, match=re.escape(f"1 of 2 rows ('prompt' and 'completions') are longer than "
                                                   f"max_length {n_fits} with their tags: row 1 ({n_longer} tokens)")):
        kept = tokenize_rows(prm, [fits, longer], drop_too_long=True)
    assert [f["tag_labels"] for f in kept] == [[1]]


def test_training_args_given_as_a_keyword_beat_the_configs_own():
    """``of``'s docstring: the config's training_args, then the keyword's, merged: the later one wins a key."""
    base = RewardTrainingConfig(quantization=None, training_args={"save_steps": 5, "save_strategy": "steps"})
    c = RewardTrainingConfig.of(base, {"training_args": {"save_steps": 7}})
    assert c.training_args == {"save_steps": 7, "save_strategy": "steps"}
    assert base.training_args == {"save_steps": 5, "save_strategy": "steps"}  # the given config is kept


def test_the_trained_reward_model_is_returned_in_eval_mode(tiny_dir, tmp_path):
    rows = [{"prompt": "P\n", "completions": ["1 + 1 = 2\n", "2 * 3 = 6"], "labels": [True, False],
             "completion": "1 + 1 = 2\n2 * 3 = 6", "label": False}] * 2
    for train in (train_process_reward_model, train_outcome_reward_model):
        rm = train(tiny_dir, rows, tmp_path / train.__name__, quantization=None, lora={"r": 4}, device="cpu",
                   max_steps=1, disable_tqdm=True)
        assert not rm.model.training
        assert not any(m.training for m in rm.model.modules())


def test_the_trainer_gets_the_documented_schedule_and_the_seed_for_its_data_order(tiny_dir, tmp_path, monkeypatch):
    import transformers.trainer
    from transformers import Trainer
    from transformers.trainer_utils import TrainOutput
    seen = {}

    def fake_train(self, resume_from_checkpoint=None, **kw):
        scheduler = self.args.lr_scheduler_type  # a SchedulerType
        seen.update(scheduler=getattr(scheduler, "value", scheduler), warmup=self.args.warmup_steps,
                    seed=self.args.seed, data_seed=self.args.data_seed)
        return TrainOutput(global_step=0, training_loss=0.0, metrics={})

    monkeypatch.setattr(Trainer, "train", fake_train)
    monkeypatch.setattr(transformers.trainer, "get_reporting_integration_callbacks", lambda report_to: [])
    train_process_reward_model(tiny_dir, toy_rows(2), tmp_path / "rm", quantization=None, lora={"r": 4},
                               device="cpu", seed=7)
    assert seen["scheduler"] == "cosine" and seen["warmup"] == 0.05
    assert seen["seed"] == seen["data_seed"] == 7


def test_tokenize_rows_takes_numpy_bools_and_refuses_a_drop_too_long_that_is_no_bool(tiny_model, tiny_tokenizer):
    """numpy bools (an array's, a DataFrame's labels) are bools, as the validators take them; they were refused.
    drop_too_long="no" is truthy: it would leave rows out."""
    prm = ProcessRewardModel(tiny_model, tiny_tokenizer)
    orm = OutcomeRewardModel(tiny_model, tiny_tokenizer)
    row = {"prompt": "p", "completions": ["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 * 3 = 6"],
           "labels": [np.True_, np.False_]}
    assert [f["tag_labels"] for f in tokenize_rows(prm, [row])] == [[1, 0]]
    outcome_row = {"prompt": "p", "completion": "1", "label": np.True_}
    assert [f["tag_labels"] for f in tokenize_rows(orm, [outcome_row])] == [[1]]
    with pytest.raises(ValueError, match="tokenize_rows: drop_too_long must be True or False, got 'no'"):
        tokenize_rows(prm, [row], drop_too_long="no")
