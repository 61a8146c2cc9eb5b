"""StepwiseDPOTrainer's public hooks (``step_loss``, ``extra_loss``, ``extra_columns``), and the tutorial's trainer
variants built on them alone: a user reading them learns the hooks, not the trainer's private ``_compute_loss``."""

import copy
import importlib
import inspect
import random
import re
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from stepdpo_lite.trainer import StepwiseDPOConfig, StepwiseDPOTrainer
from stepdpo_lite.tutorial import toyworld

TUTORIAL = Path(importlib.import_module("stepdpo_lite.tutorial").__file__).parent


def _trainer(cls, tmp_path, model, tokenizer, columns=None, **config):
    """A trainer of ``cls`` on two toy pairs (an arithmetic slip at step 1) against a frozen copy of ``model``;
    ``columns``: more columns of the rows, by name (a list: one value per row)."""
    rows = []
    for i, p in enumerate(toyworld.make_problems(2, seed=1, min_ops=3, max_ops=4)):
        rejected = toyworld.corrupt_solution(p, 1, "arithmetic", random.Random(i))
        rows.append(dict(prompt=p.prompt, chosen=p.gold_solution, rejected=rejected,
                         chosen_step_labels=toyworld.check(p, p.gold_solution).step_labels,
                         rejected_step_labels=toyworld.check(p, rejected).step_labels,
                         **{name: values[i] for name, values in (columns or {}).items()}))
    args = StepwiseDPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False, save_strategy="no",
                             gradient_checkpointing=False, disable_tqdm=True, per_device_train_batch_size=2,
                             **config)
    return cls(copy.deepcopy(model), ref_model=copy.deepcopy(model).eval(), args=args,
               train_dataset=Dataset.from_list(rows), processing_class=tokenizer)


def _loss(trainer):
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.train()
    return trainer.compute_loss(trainer.model, batch)


def test_extra_loss_adds_a_term_of_ones_own_read_from_the_model(tmp_path, tiny_model, tiny_tokenizer):
    """The rejected-opening NLL of the tutorial overrode _compute_loss to add a term from a pass of its own: a
    subclass now overrides extra_loss alone, gets the policy being trained and the batch, and the loss adds it."""
    seen = []

    class WeightDecayTrainer(StepwiseDPOTrainer):  # a term the step, outcome and NLL losses do not hold
        def extra_loss(self, model, inputs):
            seen.append((model, inputs))
            return 3.0 * model.get_output_embeddings().weight.pow(2).mean()

    plain = _trainer(StepwiseDPOTrainer, tmp_path, tiny_model, tiny_tokenizer)
    variant = _trainer(WeightDecayTrainer, tmp_path, tiny_model, tiny_tokenizer)
    plain_loss, variant_loss = _loss(plain), _loss(variant)
    (model, inputs), = seen
    assert model is variant.model and "step_ids" in inputs
    term = 3.0 * variant.model.get_output_embeddings().weight.pow(2).mean()
    assert variant_loss.item() == pytest.approx(plain_loss.item() + term.item(), rel=1e-6)
    variant_loss.backward()  # the term trains the model: its gradient reaches the weights it reads
    plain_loss.backward()
    weight = variant.model.get_output_embeddings().weight
    torch.testing.assert_close(weight.grad - plain.model.get_output_embeddings().weight.grad,
                               6.0 * weight.detach() / weight.numel(), rtol=0, atol=5e-7)  # rounding: ~1e-7


def test_step_loss_gets_the_model_for_a_variant_that_reads_it(tmp_path, tiny_model, tiny_tokenizer):
    """The tutorial's first-token variants compute their step loss from a pass of the model of their own (not from
    the step log-ratios): step_loss gets the policy being trained; the loss weighs what it returns by
    step_loss_weight and logs it as loss/step, as the default's."""

    class FromTheModel(StepwiseDPOTrainer):
        def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                      inputs, model):
            return model.get_output_embeddings().weight.abs().mean()

    kw = dict(outcome_loss_weight=0.0, step_loss_weight=2.0)
    tr = _trainer(FromTheModel, tmp_path, tiny_model, tiny_tokenizer, **kw)
    loss = _loss(tr)
    own = tr.model.get_output_embeddings().weight.abs().mean().item()
    assert loss.item() == pytest.approx(2.0 * own, rel=1e-6)
    assert tr._metrics["train"]["loss/step"][-1] == pytest.approx(own, rel=1e-6)
    assert _loss(_trainer(StepwiseDPOTrainer, tmp_path, tiny_model, tiny_tokenizer, **kw)).item() != \
        pytest.approx(loss.item(), rel=1e-3)  # the default's step loss is another number


def test_extra_columns_alone_bring_a_dataset_column_to_the_step_loss(tmp_path, tiny_model, tiny_tokenizer):
    """A column listed in extra_columns reached the batch only through a collator of one's own (the default one
    dropped it: a bare KeyError at the first step). The default collator now passes it through: numbers and lists
    of numbers of one length as a tensor stacked along the pairs, anything else (text, lists of other lengths) as
    the rows' list."""
    seen = []

    class MarginTrainer(StepwiseDPOTrainer):
        extra_columns = ("pair_margin", "pair_weights", "pair_note", "pair_ragged")

        def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                      inputs, model):
            seen.append({name: inputs[name] for name in self.extra_columns})
            return super().step_loss(chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask,
                                     weights, inputs, model) + inputs["pair_margin"].mean()

    columns = dict(pair_margin=[0.5, 1.5], pair_weights=[[1, 2, 3], [4, 5, 6]], pair_note=["early slip", "late"],
                   pair_ragged=[[1.0], [2.0, 3.0]])
    tr = _trainer(MarginTrainer, tmp_path, tiny_model, tiny_tokenizer, columns=columns)
    batch = next(iter(tr.get_train_dataloader()))  # the Trainer's own path: its column pruning, then the collator
    order = [columns["pair_note"].index(note) for note in batch["pair_note"]]  # the loader may shuffle the pairs
    torch.testing.assert_close(batch["pair_margin"], torch.tensor([columns["pair_margin"][i] for i in order]))
    torch.testing.assert_close(batch["pair_weights"], torch.tensor([columns["pair_weights"][i] for i in order]))
    assert batch["pair_ragged"] == [columns["pair_ragged"][i] for i in order]
    tr.model.train()
    tr.compute_loss(tr.model, tr._prepare_inputs(batch))
    assert seen[-1]["pair_note"] == batch["pair_note"] and seen[-1]["pair_margin"].shape == (2,)


def test_extra_columns_the_dataset_lacks_are_named_when_the_trainer_is_built(tmp_path, tiny_model, tiny_tokenizer):
    """A listed column missing from the dataset was a bare KeyError at the first training step; one str (not a
    tuple of names) listed its characters."""

    class MarginTrainer(StepwiseDPOTrainer):
        extra_columns = ("pair_margin",)

    with pytest.raises(ValueError, match=r"the train dataset has no column 'pair_margin', which "
                                         r"MarginTrainer.extra_columns lists"):
        _trainer(MarginTrainer, tmp_path, tiny_model, tiny_tokenizer)
    MarginTrainer.extra_columns = "pair_margin"
    with pytest.raises(ValueError, match=r"extra_columns: expected a list of column names, got one str"):
        _trainer(MarginTrainer, tmp_path, tiny_model, tiny_tokenizer, columns=dict(pair_margin=[0.5, 1.5]))


def test_a_step_loss_override_without_model_is_refused_when_the_trainer_is_built(tmp_path, tiny_model,
                                                                                  tiny_tokenizer):
    """step_loss took 8 arguments before 2026-12-05: an override written then was a bare TypeError at the first
    step, after the datasets' preparation. It is refused at once, naming the argument to add; an override taking
    *args (or `model` by another name) is called as before."""

    class Old(StepwiseDPOTrainer):
        def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                      inputs):
            return chosen_rho.sum()

    class Passing(StepwiseDPOTrainer):
        def step_loss(self, *args, **kwargs):
            return super().step_loss(*args, **kwargs)

    with pytest.raises(ValueError, match=r"Old.step_loss\(chosen_rho, .*inputs\) cannot take the 9 arguments it is "
                                         r"called with: add the ninth, `model` \(docs/method.md"):
        _trainer(Old, tmp_path, tiny_model, tiny_tokenizer)
    plain = _loss(_trainer(StepwiseDPOTrainer, tmp_path, tiny_model, tiny_tokenizer))
    assert _loss(_trainer(Passing, tmp_path, tiny_model, tiny_tokenizer)).item() == pytest.approx(plain.item())


def test_the_step_loss_check_is_the_classs_own_with_no_trainer_built():
    """onpolicy.TrainSettings refuses an old step_loss before a round samples, with the trainer's one check: on the
    class, reading the override as a trainer calls it (bound; a staticmethod takes all 9 itself)."""
    class Old(StepwiseDPOTrainer):
        def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                      inputs):
            return chosen_rho.sum()

    class Static(StepwiseDPOTrainer):
        @staticmethod
        def step_loss(chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights, inputs,
                      model):
            return chosen_rho.sum()

    with pytest.raises(ValueError, match=r"^Old.step_loss\(chosen_rho, .*inputs\) cannot take the 9 arguments"):
        Old.check_step_loss()
    for fine in (StepwiseDPOTrainer, Static):
        fine.check_step_loss()


def _tutorial_trainer_classes():
    """Every StepwiseDPOTrainer subclass the tutorial's modules define (the modules found by their source)."""
    classes = []
    for path in sorted(TUTORIAL.glob("*.py")):
        if path.stem != "__main__" and re.search(r"^class \w+\(\w*Trainer\):", path.read_text(), re.M):
            module = importlib.import_module(f"stepdpo_lite.tutorial.{path.stem}")
            classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                        if issubclass(c, StepwiseDPOTrainer) and c.__module__ == module.__name__]
    return classes


def test_the_tutorials_trainers_override_only_public_hooks():
    """critical_token.py and rejected_prefix_nll.py overrode the trainer's private _compute_loss (and
    _set_signature_columns_if_needed): a user reading them learnt to override private methods. Each now overrides
    public hooks only (step_loss, extra_loss, extra_columns); its own private helpers are its business."""
    classes = _tutorial_trainer_classes()
    names = {c.__name__ for c in classes}
    assert {"CriticalTokenStepDPOTrainer", "OutputLayerStepDPOTrainer", "FreshRejectedStepDPOTrainer",
            "ExpectedRejectedStepDPOTrainer", "TopRivalStepDPOTrainer", "RejectedPrefixNLLStepDPOTrainer"} <= names
    for cls in classes:
        assert "_compute_loss" not in vars(cls), cls.__name__
        private = [n for n in vars(cls) if n.startswith("_") and not n.startswith("__")
                   and hasattr(StepwiseDPOTrainer, n)]
        assert private == [], (cls.__name__, private)
