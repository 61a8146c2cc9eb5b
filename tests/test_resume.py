"""Checkpoints: an interrupted run resumed from its checkpoint ends where the uninterrupted run ends (Stepwise DPO
and PRM training), and a saved policy adapter loads with plain transformers + PEFT in a fresh process."""

import json
import os
import random
import subprocess
import sys

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from stepdpo_lite.tutorial import tiny_models, toyworld
from stepdpo_lite.reward_training import train_process_reward_model
from stepdpo_lite.trainer import StepwiseDPOConfig, StepwiseDPOTrainer

SAVE_AT, TOTAL = 3, 6  # checkpoint every 3 optimizer steps; 8 rows / batch 4 x 3 epochs = 6 steps
LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])


def preference_rows(n=8):
    """Gold solution vs the same with an arithmetic error at a random step, with gold step labels."""
    rows = []
    for i, p in enumerate(toyworld.make_problems(n, seed=3, min_ops=2, max_ops=3)):
        rng = random.Random(i)
        rejected = toyworld.corrupt_solution(p, rng.randrange(len(p.ops)), "arithmetic", rng)
        rows.append(dict(prompt=p.prompt, chosen=p.gold_solution, rejected=rejected,
                         chosen_step_labels=toyworld.check(p, p.gold_solution).step_labels,
                         rejected_step_labels=toyworld.check(p, rejected).step_labels))
    return rows


def stepwise_rows(n=8):
    """Stepwise supervision rows for the PRM: even rows gold, odd rows with one arithmetic error."""
    rows = []
    for i, p in enumerate(toyworld.make_problems(n, "train", seed=5, max_ops=3)):
        rng = random.Random(i)
        sol = toyworld.corrupt_solution(p, rng.randrange(len(p.ops)), "arithmetic", rng) if i % 2 else p.gold_solution
        v = toyworld.check(p, sol)
        rows.append({"prompt": p.prompt, "completions": v.steps, "labels": v.step_labels})
    return rows


class StopAt(TrainerCallback):
    """Interrupts training after ``step`` (the checkpoint of that step is written before the loop stops)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def trainable(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def losses(log_history) -> dict:
    return {h["step"]: h["loss"] for h in log_history if "loss" in h}


def assert_same_params(resumed: dict, full: dict, at_checkpoint: dict):
    assert resumed.keys() == full.keys() and len(full) > 0
    moved = max((full[n] - at_checkpoint[n]).abs().max().item() for n in full)
    assert moved > 1e-4, "the last steps did not change the weights: the comparison would prove nothing"
    for name in full:
        assert torch.equal(resumed[name], full[name]), name  # same machine, kernels and data order: exact


def checkpoint_params(path) -> dict:
    from safetensors.torch import load_file
    return load_file(os.path.join(path, "adapter_model.safetensors"))


@pytest.fixture()
def optimizer_steps(monkeypatch):
    """Counts ``Trainer.training_step`` calls: a run that ignored its checkpoint and started over would end with
    the same numbers (training is deterministic), so the tests also check that it ran only the remaining steps."""
    from transformers import Trainer
    calls, original = [], Trainer.training_step

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", counting)
    return calls


# ----------------------------------------------------------------------------- Stepwise DPO

def dpo_trainer(out_dir, callbacks=None, **overrides):
    """Stepwise DPO with a fresh LoRA adapter on the shipped tiny base (reference = adapter disabled)."""
    from peft import LoraConfig
    model, tok = tiny_models.load_tiny_base()
    settings = dict(report_to=[], use_cpu=True, bf16=False, disable_tqdm=True, per_device_train_batch_size=4,
                    num_train_epochs=3, learning_rate=5e-3, logging_steps=1, save_strategy="steps",
                    save_steps=SAVE_AT, beta=0.1, sft_loss_weight=0.5, gradient_checkpointing=False, seed=0)
    args = StepwiseDPOConfig(output_dir=str(out_dir), **{**settings, **overrides})
    return StepwiseDPOTrainer(model, args=args, train_dataset=Dataset.from_list(preference_rows()),
                              processing_class=tok, peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
                              callbacks=callbacks)


def test_interrupted_stepwise_dpo_run_resumes_to_the_same_weights_and_loss(tmp_path, optimizer_steps):
    full = dpo_trainer(tmp_path / "full")
    full.train()
    assert full.state.global_step == TOTAL
    full_params, full_losses = trainable(full.model), losses(full.state.log_history)

    cut = dpo_trainer(tmp_path / "cut", callbacks=[StopAt(SAVE_AT)])
    cut.train()
    assert cut.state.global_step == SAVE_AT
    ckpt = tmp_path / "cut" / f"checkpoint-{SAVE_AT}"
    assert (ckpt / "adapter_model.safetensors").exists() and not (tmp_path / "cut" / f"checkpoint-{TOTAL}").exists()
    assert losses(cut.state.log_history) == {s: full_losses[s] for s in range(1, SAVE_AT + 1)}

    resumed = dpo_trainer(tmp_path / "cut")  # a fresh process would build the same trainer, then resume
    optimizer_steps.clear()
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert resumed.state.global_step == TOTAL and len(optimizer_steps) == TOTAL - SAVE_AT
    assert_same_params(trainable(resumed.model), full_params, trainable(cut.model))
    resumed_losses = losses(resumed.state.log_history)
    assert resumed_losses[TOTAL] == full_losses[TOTAL]
    for step in range(SAVE_AT + 1, TOTAL + 1):  # every step after the checkpoint, not just the last
        assert resumed_losses[step] == full_losses[step], step


def test_a_resumed_stepwise_dpo_run_keeps_counting_its_truncated_steps(tmp_path):
    """steps/truncated_total restarted at 0 on a resume: the run's count lost the steps cut before the checkpoint."""
    cut = dpo_trainer(tmp_path / "cut", callbacks=[StopAt(SAVE_AT)], max_length=80)  # cuts most responses
    cut.train()
    resumed = dpo_trainer(tmp_path / "cut", max_length=80)
    resumed.train(resume_from_checkpoint=str(tmp_path / "cut" / f"checkpoint-{SAVE_AT}"))
    logs = [h for h in resumed.state.log_history if "steps/truncated" in h]  # one a step (logging_steps=1)
    assert [h["step"] for h in logs] == list(range(1, TOTAL + 1))  # steps 1-3 from the checkpoint
    cumulative = [sum(h["steps/truncated"] for h in logs[:k + 1]) for k in range(TOTAL)]
    assert cumulative[SAVE_AT - 1] > 0 and cumulative[-1] > cumulative[SAVE_AT - 1]
    assert [h["steps/truncated_total"] for h in logs] == cumulative
    assert resumed.num_truncated_steps == cumulative[-1]


# ----------------------------------------------------------------------------- PRM

def train_prm(base, out_dir, quantization, **kw):
    return train_process_reward_model(base, stepwise_rows(), out_dir, quantization=quantization, lora=dict(LORA),
                                      learning_rate=5e-3, num_train_epochs=3, per_device_train_batch_size=4,
                                      device="cpu", seed=0, logging_steps=1, disable_tqdm=True,
                                      save_strategy="steps", save_steps=SAVE_AT, **kw)


@pytest.mark.parametrize("quantization", [None, "4bit"], ids=["lora", "qlora-4bit"])
def test_interrupted_prm_run_resumes_to_the_same_weights_and_loss(quantization, tmp_path, optimizer_steps):
    if quantization == "4bit":
        pytest.importorskip("bitsandbytes")
    base = str(tiny_models.TINY_BASE_DIR)  # a local folder: nothing is fetched
    full = train_prm(base, tmp_path / "full", quantization)
    full_losses = losses(full.training_metrics["log_history"])
    assert sorted(full_losses) == list(range(1, TOTAL + 1))
    # The interruption: the same run stopped right after checkpoint-3 is written.
    train_prm(base, tmp_path / "cut", quantization, callbacks=[StopAt(SAVE_AT)])
    ckpt = tmp_path / "cut" / f"checkpoint-{SAVE_AT}"
    assert ckpt.exists() and not (tmp_path / "cut" / f"checkpoint-{TOTAL}").exists()
    optimizer_steps.clear()
    resumed = train_prm(base, tmp_path / "cut", quantization, resume_from_checkpoint=str(ckpt))
    assert len(optimizer_steps) == TOTAL - SAVE_AT  # it went on from step 3 and did not start over

    def adapter(prm):
        return {n.replace(".default", ""): p for n, p in trainable(prm.model).items()}

    saved = {n.removeprefix("base_model.model."): p for n, p in checkpoint_params(ckpt).items()}
    at_ckpt = {n: saved[n.removeprefix("base_model.model.")] for n in adapter(full)}
    assert_same_params(adapter(resumed), adapter(full), at_ckpt)
    resumed_losses = losses(resumed.training_metrics["log_history"])  # steps 1-3 come from the checkpoint
    assert sorted(resumed_losses) == list(range(1, TOTAL + 1))
    for step in resumed_losses:
        assert resumed_losses[step] == full_losses[step], step


# ----------------------------------------------------------------------------- saved adapter, fresh process

LOAD_WITH_PLAIN_PEFT = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base, adapter, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
assert "stepdpo_lite" not in sys.modules
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0]
assert "stepdpo_lite" not in sys.modules
print(json.dumps(logits.tolist()))
"""


def test_saved_policy_adapter_loads_with_plain_peft_in_a_fresh_process(tmp_path):
    tr = dpo_trainer(tmp_path / "run", max_steps=2, save_strategy="no")
    tr.train()
    tr.save_model(str(tmp_path / "policy"))
    assert (tmp_path / "policy" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "policy" / "model.safetensors").exists()  # the adapter only, not a merged copy

    row = preference_rows(1)[0]
    ids = tr.processing_class(row["prompt"] + row["chosen"])["input_ids"]
    model = tr.accelerator.unwrap_model(tr.model).eval()
    with torch.no_grad():
        trained = model(input_ids=torch.tensor([ids])).logits[0].float()
        with model.disable_adapter():
            base = model(input_ids=torch.tensor([ids])).logits[0].float()
    assert (trained - base).abs().max() > 1e-3, "the adapter did not change the logits: the test would prove nothing"

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", LOAD_WITH_PLAIN_PEFT, str(tiny_models.TINY_BASE_DIR),
                           str(tmp_path / "policy"), json.dumps(ids)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = torch.tensor(json.loads(proc.stdout.strip().splitlines()[-1]))
    # another process with OMP_NUM_THREADS=1: another thread count sums in another order (float32 round-off, ~1e-7)
    torch.testing.assert_close(loaded, trained, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- an output_dir's earlier checkpoints

def test_earlier_checkpoints_warn_and_a_half_written_newest_one_is_named(tmp_path):
    """A user's trial: train_process_reward_model did not warn of an earlier run's checkpoints in its output_dir
    (a later resume trained 0 steps and returned that run's model); resume_from_checkpoint=True with a half-written
    newest checkpoint (no trainer_state.json) was a bare FileNotFoundError, in both trainers."""
    base = str(tiny_models.TINY_BASE_DIR)
    for name in ("checkpoint-2", "checkpoint-10", "checkpoint-12"):  # numbers, not names, are compared
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_text("x")
        if name != "checkpoint-12":
            (tmp_path / name / "trainer_state.json").write_text("{}")
    named = r"the newest checkpoint, .*checkpoint-12, is incomplete .*resume_from_checkpoint='.*checkpoint-10'"
    with pytest.raises(ValueError, match="ProcessRewardModel training: resume_from_checkpoint=True: " + named):
        train_prm(base, tmp_path, None, resume_from_checkpoint=True)
    with pytest.raises(ValueError, match="StepwiseDPOTrainer: resume_from_checkpoint=True: " + named):
        dpo_trainer(tmp_path).train(resume_from_checkpoint=True)
    for name in ("checkpoint-2", "checkpoint-10"):
        (tmp_path / name / "trainer_state.json").unlink()
    with pytest.raises(ValueError, match=r"incomplete \(no trainer_state.json: its save was interrupted\); no "
                                         "checkpoint there is complete: train anew"):
        train_prm(base, tmp_path, None, resume_from_checkpoint=True)
    with pytest.warns(UserWarning, match=r"ProcessRewardModel training: .* holds an earlier run's checkpoints: a "
                                         r"resume would pick .*checkpoint-12 if this run saves none after it"):
        train_prm(base, tmp_path, None, max_steps=1)


def test_check_checkpoints_skips_other_folders_and_lets_a_named_checkpoint_be_resumed(tmp_path):
    """Only checkpoint-<N> folders count (a user's checkpoint-best is no step to sort by), and a checkpoint named
    by path is the user's pick: an incomplete newest one is refused only for resume_from_checkpoint=True."""
    import warnings

    from stepdpo_lite.atomic import check_checkpoints
    (tmp_path / "checkpoint-best").mkdir()
    (tmp_path / "checkpoint-20").write_text("a file, not a checkpoint")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_checkpoints(tmp_path, None, "w")  # nothing to warn of
    for name in ("checkpoint-10", "checkpoint-12"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{}")
    check_checkpoints(tmp_path, str(tmp_path / "checkpoint-10"), "w")  # the complete one, named: no refusal
    with pytest.raises(ValueError, match=r"w: resume_from_checkpoint=True: the newest checkpoint, .*checkpoint-12,"):
        check_checkpoints(tmp_path, True, "w")


def test_reward_trainers_say_that_checkpoints_need_a_save_strategy():
    """A user's trial: the default save_strategy "no" saves no checkpoint, and the docstring said only "passed to
    Trainer.train"; then that only "steps" saved them ("epoch" and "best" do too)."""
    doc = " ".join(train_process_reward_model.__doc__.split())
    assert 'not the default ``"no"`` (``"steps"`` with ``save_steps``, ``"epoch"``, ``"best"``)' in doc
