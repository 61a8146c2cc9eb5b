"""StepwiseDPOTrainer on TRL 1.16, on the toy world with the random tiny Llama."""

import copy
import dataclasses
import json
import math
import random
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import HfArgumentParser
from trl import DPOConfig, DPOTrainer

from stepdpo_lite.tutorial import tiny_models, toyworld
from stepdpo_lite.rewards import mistake_made_here_labels
from stepdpo_lite.steps import DEFAULT_DELIMITER, extract_steps, token_step_ids
from stepdpo_lite.trainer import CHECKPOINTING_FIELD, StepwiseDPOConfig, StepwiseDPOTrainer, get_step_rewards

FAST = dict(report_to=[], use_cpu=True, bf16=False, gradient_checkpointing=False, save_strategy="no",
            disable_tqdm=True, per_device_train_batch_size=4, logging_steps=1, beta=0.1)


def toy_rows(n=4, error_step=1, labels=True, ops=(3, 4)):
    """Gold solution vs the same with an arithmetic error at ``error_step`` (a shared correct prefix); ``ops``: the
    problems' fewest and most operations."""
    rows = []
    for i, p in enumerate(toyworld.make_problems(n, seed=1, min_ops=ops[0], max_ops=ops[1])):
        rejected = toyworld.corrupt_solution(p, error_step, "arithmetic", random.Random(i))
        row = dict(prompt=p.prompt, chosen=p.gold_solution, rejected=rejected)
        if labels:
            row.update(chosen_step_labels=toyworld.check(p, p.gold_solution).step_labels,
                       rejected_step_labels=toyworld.check(p, rejected).step_labels)
        rows.append(row)
    return rows


def config(tmp_path, cls=StepwiseDPOConfig, **kw):
    return cls(output_dir=str(tmp_path), **{**FAST, **kw})


def batch_of(trainer, n=4):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(n)])


def checkpointing_on(model):
    """is_activation_checkpointing's own test (transformers 5.2 calls it is_gradient_checkpointing, later ones warn)."""
    return any(getattr(module, "gradient_checkpointing", False) for module in model.modules())


def step_by_step_logps(model, tok, prompt, response):
    """log π(s_k | x, s_<k) with one forward per step prefix (the slow way the one-pass sums must match)."""
    out, context = [], prompt
    for step in extract_steps(response):
        ctx_ids = tok(context)["input_ids"]
        ids = tok(context + step)["input_ids"]
        assert ids[:len(ctx_ids)] == ctx_ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
        out.append(lp[len(ctx_ids) - 1:].sum().item())
        context += step
    return out


def pair_loss_at(policy, ref, tok, context, chosen, rejected, beta):
    """−log σ(β·(log-ratio of ``chosen`` − log-ratio of ``rejected``)), both read after ``context``."""
    def logratio(text):
        return (step_by_step_logps(policy, tok, context, text)[0] - step_by_step_logps(ref, tok, context, text)[0])

    return -F.logsigmoid(torch.tensor(beta * (logratio(chosen) - logratio(rejected)))).item()


# ----------------------------------------------------------------------------- config


def test_config_validation(tmp_path):
    for bad in (dict(aggregation_strategy="median"), dict(step_weights=[1.0, -0.5]), dict(step_beta=0),
                dict(step_wise_prompt_template="no placeholder"), dict(step_pairing="all"),
                dict(step_accuracy_metric="auroc"), dict(max_reasoning_steps=0), dict(step_loss_weight=-1),
                dict(step_loss_weight=0, outcome_loss_weight=0), dict(loss_type="hinge")):
        with pytest.raises(ValueError):
            config(tmp_path, **bad)
    with pytest.raises(ValueError, match=r"loss weights must be >= 0, got step -1.0, outcome 0.0 and sft 0.0$"):
        config(tmp_path, step_loss_weight=-1.0, outcome_loss_weight=0.0)  # was also "both 0": step is -1
    for zero in ([0.0], [0.0, 0.0]):  # every a_k 0: the step loss is log 2, no gradient; only the NLL trained
        with pytest.raises(ValueError, match="step_weights all 0, which zero the step loss, with outcome_loss_weight"):
            config(tmp_path, step_weights=zero, outcome_loss_weight=0.0, sft_loss_weight=1.0)
    assert config(tmp_path, step_weights=[0.0, 1.0], outcome_loss_weight=0.0).step_weights == [0.0, 1.0]
    assert config(tmp_path, step_weights=[0.0], outcome_loss_weight=1.0).step_weights == [0.0]  # the outcome loss
    with pytest.raises(ValueError, match="StepwiseDPOConfig: sft_loss_weight must be a finite number, got nan"):
        config(tmp_path, sft_loss_weight=float("nan"))
    cfg = config(tmp_path, beta=0.3)
    assert cfg.beta_of_outcome == 0.3 and cfg.max_steps == -1  # max_steps keeps its TrainingArguments meaning
    # outcome_beta None follows beta when it changes later (a sweep's dataclasses.replace kept the old one)
    assert dataclasses.replace(cfg, beta=0.5).beta_of_outcome == 0.5
    assert config(tmp_path, beta=0.3, outcome_beta=0.2).beta_of_outcome == 0.2
    for bad in (dict(step_beta=float("inf")), dict(beta=float("inf")), dict(step_weights=[1.0, float("inf")])):
        with pytest.raises(ValueError, match="must be a finite number, got inf"):  # the first loss was NaN
            config(tmp_path, **bad)
    with pytest.raises(ValueError, match="learning_rate must be a finite number, got '1e-4'"):  # YAML's 1e-4 is a str
        config(tmp_path, learning_rate="1e-4")  # it was accepted, and failed in the optimizer at the first step
    for bad in ("2", 2.0):  # "2" was a TypeError from the config's own check; 2.0 failed later, named as step_spans'
        with pytest.raises(ValueError, match=f"StepwiseDPOConfig: max_reasoning_steps must be an int >= 1 or None, "
                                             f"got {bad!r}"):
            config(tmp_path, max_reasoning_steps=bad)
    for name in ("step_beta", "beta"):  # a YAML null: it was a TypeError at the config's own "> 0" check
        with pytest.raises(ValueError, match=f"StepwiseDPOConfig: {name} must be a finite number, got None"):
            config(tmp_path, **{name: None})
    for bad in (0.5, "1.0, 0.5"):  # one number was a TypeError (not iterable); one str was read a character at a time
        with pytest.raises(ValueError, match="StepwiseDPOConfig: step_weights: expected a list of numbers, got"):
            config(tmp_path, step_weights=bad)
    with pytest.raises(ValueError, match="loss_weights=None"):  # TRL's weights: accepted, and read by nothing
        config(tmp_path, loss_weights=[10.0])
    for unread in (dict(use_weighting=True), dict(ld_alpha=0.5), dict(f_divergence_type="js_divergence")):
        with pytest.raises(ValueError, match="the outcome loss is the sigmoid DPO loss"):  # TRL's: read by nothing
            config(tmp_path, **unread)
    with pytest.raises(ValueError, match=r"loss weights must be >= 0, got step 1.0, outcome 1.0 and sft -1.0$"):
        config(tmp_path, sft_loss_weight=-1.0)  # it would push the chosen solutions' likelihood down
    # a Path is kept as a str: save_model's JSON stopped halfway on it, leaving a cut-short file
    assert config(tmp_path, reward_model_path=tmp_path / "prm").reward_model_path == str(tmp_path / "prm")


def test_config_keeps_numpy_and_torch_numbers_as_pythons_so_that_save_model_writes_them(tmp_path):
    """np.float32(0.1) passed the checks and stopped save_model's JSON (at the end of training, or at a checkpoint,
    whose weights were then written without their stepwise_config.json); a tensor of step_weights was RuntimeError
    "Boolean value of Tensor ... is ambiguous", a numpy array numpy's ValueError naming no field."""
    cfg = config(tmp_path, step_beta=np.float32(0.25), sft_loss_weight=np.float64(2.0), max_length=np.int64(64),
                 step_weights=torch.tensor([1.0, 0.5]))
    saved = json.loads(json.dumps(cfg.stepwise_dict()))
    assert (saved["step_beta"], saved["sft_loss_weight"], saved["max_length"]) == (0.25, 2.0, 64)
    assert saved["step_weights"] == [1.0, 0.5] and type(cfg.step_weights[0]) is float
    assert config(tmp_path, step_weights=np.array([1.0, 0.0])).step_weights == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"StepwiseDPOConfig: step_weights\[1\] must be a finite number, got .*nan"):
        config(tmp_path, step_weights=np.array([1.0, np.nan]))


def test_config_refuses_flags_delimiters_and_templates_of_another_type(tmp_path):
    """use_step_wise_prompt="no" is truthy: prompts were rewritten without an error (use_reward_model="no" loaded
    one); a step_delimiter of 5 passed the check that says "non-empty string" and failed later in step_spans; a
    None template was a TypeError ("argument of type 'NoneType' is not iterable")."""
    for name in ("use_step_wise_prompt", "use_reward_model", "evaluate_step_accuracy"):
        with pytest.raises(ValueError, match=f"StepwiseDPOConfig: {name} must be True or False, got 'no'"):
            config(tmp_path, **{name: "no"})
    assert config(tmp_path, use_step_wise_prompt=np.True_).use_step_wise_prompt  # numpy's bool is a bool
    for bad in (5, ["\n"]):
        with pytest.raises(ValueError, match="StepwiseDPOConfig: step_delimiter must be a non-empty string"):
            config(tmp_path, step_delimiter=bad)
    with pytest.raises(ValueError, match="step_wise_prompt_template must contain '{prompt}', got None"):
        config(tmp_path, step_wise_prompt_template=None)


def test_config_works_on_cpu_without_extra_arguments(tmp_path, monkeypatch):
    """TRL's unset bf16 means True, which transformers refuses without a bf16 GPU unless use_cpu=True, and with it
    trains under bfloat16 autocast: the config leaves bf16 off there (the test pretends no GPU, so that it checks the
    same thing on a GPU). A T4 emulates bf16 (``is_torch_bf16_gpu_available`` says yes): off there too."""
    from stepdpo_lite.models import default_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = StepwiseDPOConfig(output_dir=str(tmp_path), report_to="none")
    assert cfg.bf16 is False and not cfg.use_cpu
    assert StepwiseDPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True).bf16 is False
    assert StepwiseDPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False).bf16 is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)  # T4
    assert default_bf16() is False and default_bf16(use_cpu=True) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100, an H200
    assert default_bf16() is True and default_bf16(use_cpu=True) is False


def test_config_parses_with_hf_argument_parser(tmp_path):
    (cfg,) = HfArgumentParser(StepwiseDPOConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--step_beta", "0.5", "--aggregation_strategy", "product",
         "--step_weights", "1.0", "0.5", "--max_reasoning_steps", "8", "--step_pairing", "first_error",
         "--max_steps", "3", "--use_step_wise_prompt", "true", "--report_to", "none", "--use_cpu", "true",
         "--bf16", "false"])
    assert (cfg.step_beta, cfg.aggregation_strategy, cfg.step_weights) == (0.5, "product", [1.0, 0.5])
    assert (cfg.max_reasoning_steps, cfg.step_pairing, cfg.max_steps) == (8, "first_error", 3)
    assert cfg.use_step_wise_prompt and cfg.step_delimiter == "\n\nStep"
    stepwise = set(cfg.stepwise_dict()) - {"beta", "max_length", "truncation_mode"}
    assert {"step_beta", "step_pairing", "sft_loss_weight"} <= stepwise
    for name in stepwise:
        assert StepwiseDPOConfig.__dataclass_fields__[name].metadata["help"]
    with pytest.raises(ValueError):
        HfArgumentParser(StepwiseDPOConfig).parse_args_into_dataclasses(
            ["--output_dir", str(tmp_path), "--aggregation_strategy", "median", "--use_cpu", "true"])
    # a bare flag, as transformers' own field takes it (the kit's redeclared field took a value only)
    for flags, on in ((["--gradient_checkpointing"], True), (["--gradient_checkpointing", "false"], False)):
        (cfg,) = HfArgumentParser(StepwiseDPOConfig).parse_args_into_dataclasses(
            ["--output_dir", str(tmp_path), "--use_cpu", "true", *flags])
        assert cfg.gradient_checkpointing is on and getattr(cfg, CHECKPOINTING_FIELD) is on, flags


def test_config_refuses_the_two_checkpointing_names_set_apart(tmp_path):
    """`dict(onpolicy.training_args(...), gradient_checkpointing=False)` gives both names: transformers keeps the
    new one's True, so the run checkpointed all the same, silently."""
    if CHECKPOINTING_FIELD == "gradient_checkpointing":
        pytest.skip("transformers 5.2 has the old name only")
    fast = {k: v for k, v in FAST.items() if k != "gradient_checkpointing"}
    for new, old in ((True, False), (False, True)):
        with pytest.raises(ValueError, match="StepwiseDPOConfig: fields 'gradient_checkpointing' and "
                                             "'activation_checkpointing' disagree"):
            StepwiseDPOConfig(output_dir=str(tmp_path), activation_checkpointing=new, gradient_checkpointing=old,
                              **fast)
    both = StepwiseDPOConfig(output_dir=str(tmp_path), activation_checkpointing=False, gradient_checkpointing=False,
                             **fast)
    assert both.activation_checkpointing is False and both.gradient_checkpointing is False


# ----------------------------------------------------------------------------- data preparation


def test_dataset_gets_step_ids_and_probabilities(tmp_path, tiny_model, tiny_tokenizer):
    rows = toy_rows(2)
    tr = StepwiseDPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(rows),
                            processing_class=tiny_tokenizer)
    ex = tr.train_dataset[0]
    n_steps = len(extract_steps(rows[0]["chosen"]))
    assert len(ex["chosen_step_ids"]) == len(ex["chosen_ids"]) and min(ex["chosen_step_ids"]) == 0
    assert max(ex["chosen_step_ids"]) == n_steps - 1  # the EOS joins the last step
    assert ex["chosen_step_probs"] == [1.0] * n_steps
    assert ex["rejected_step_probs"] == [1.0] + [0.0] * (n_steps - 1)  # correct first step, then the error
    assert ex["first_diff_step"] == 1
    bad = dict(rows[0], chosen_step_labels=[True])
    with pytest.raises(ValueError, match="row 0"):
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), train_dataset=Dataset.from_list([bad]),
                           processing_class=tiny_tokenizer)


def test_step_wise_prompt_template_and_default_probabilities(tmp_path, tiny_model, tiny_tokenizer):
    args = config(tmp_path, use_step_wise_prompt=True, step_wise_prompt_template="Think in steps.\n{prompt}")
    with pytest.warns(UserWarning, match="no step labels, no step rewards"):  # the default is said out loud
        tr = StepwiseDPOTrainer(tiny_model, args=args, train_dataset=Dataset.from_list(toy_rows(1, labels=False)),
                                processing_class=tiny_tokenizer)
    ex = tr.train_dataset[0]
    assert ex["prompt"].startswith("Think in steps.\nProblem:")
    assert set(ex["chosen_step_probs"]) == {1.0} and set(ex["rejected_step_probs"]) == {0.0}


def test_the_deprecated_pad_token_argument_means_what_it_means_in_trl(tmp_path, tiny_model, tiny_tokenizer):
    """TRL's DPOConfig.pad_token (deprecated since TRL 1.1) pads in place of the tokenizer's own pad token; the
    trainer read it only for a tokenizer without one, and took a token outside the vocabulary (padding with <unk>),
    which TRL refuses."""
    tok, rows = copy.deepcopy(tiny_tokenizer), Dataset.from_list(toy_rows(2))  # the fixture's is shared
    with pytest.warns(FutureWarning, match="`pad_token` is deprecated"):
        args = config(tmp_path, pad_token=tok.eos_token)
    trainer = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=args, processing_class=tok, train_dataset=rows)
    assert tok.pad_token == tok.eos_token and trainer.data_collator.pad_token_id == tok.eos_token_id
    assert trainer.model.config.pad_token_id == tok.eos_token_id
    with warnings.catch_warnings(), pytest.raises(ValueError, match="pad_token '<nope>' is not in the tokenizer's"):
        warnings.simplefilter("ignore", FutureWarning)
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path, pad_token="<nope>"),
                           processing_class=copy.deepcopy(tiny_tokenizer), train_dataset=rows)


def build(tmp_path, model, tok, rows, **kw):
    return StepwiseDPOTrainer(copy.deepcopy(model), args=config(tmp_path, **kw), processing_class=tok,
                              train_dataset=rows if isinstance(rows, Dataset) else Dataset.from_list(rows))


def test_prompt_that_fills_max_length_is_an_error_not_a_dropped_row(tmp_path, tiny_model, tiny_tokenizer):
    rows = toy_rows(3)
    rows[1]["prompt"] *= 3  # 171 tokens; the others fit
    with pytest.raises(ValueError, match=r"row 1: `prompt` has 171 tokens and fills max_length=100"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows, max_length=100)  # TRL 1.16 dropped it without a word
    with pytest.raises(ValueError, match=r"row 0: `prompt` has \d+ tokens and fills max_length=16"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows, max_length=16)  # every row: was a bare StopIteration
    assert len(build(tmp_path, tiny_model, tiny_tokenizer, rows, max_length=200).train_dataset) == 3


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[0].update(chosen=""), "row 0: field 'chosen': is empty"),
    (lambda rows: rows[1].update(prompt=" "), "row 1: field 'prompt': is empty"),
    (lambda rows: rows[1].update(rejected=rows[1]["chosen"]), "row 1: field 'rejected': is identical to 'chosen'"),
    (lambda rows: rows[1]["chosen_step_labels"].__setitem__(0, 1.5),  # data.check_preference_row's words, by item
     r"row 1: field 'chosen_step_labels\[0\]': must be true, false or a probability in \[0, 1\], got 1.5"),
    (lambda rows: rows[1].update(chosen=None), "the train dataset's row 1: field 'chosen': is missing or null"),
    (lambda rows: [r.pop("rejected") for r in rows], r"no 'rejected' column \(row 0: field 'rejected' is missing\)"),
    (lambda rows: rows.clear(), "the train dataset has no rows"),
    (lambda rows: [r.update(question=r.pop("prompt")) for r in rows],  # was: the prompt cut from the pair, silently
     r"the train dataset has no 'prompt' column but has \['question'\]: name the problem's column 'prompt'"),
    (lambda rows: [[r.pop(k) for k in ("prompt", "chosen_step_labels", "rejected_step_labels")] for r in rows]
     and rows[0].update(chosen="4", rejected="5"),  # without the labels, refused with no prompt column (below)
     "row 0: field 'prompt': is missing, and chosen and rejected share no prefix"),
])
def test_bad_rows_are_errors_that_name_row_and_field(tmp_path, tiny_model, tiny_tokenizer, edit, message):
    rows = toy_rows(2)
    edit(rows)
    with pytest.raises(ValueError, match=message):
        build(tmp_path, tiny_model, tiny_tokenizer, Dataset.from_list(rows) if rows else Dataset.from_dict({}))


def test_an_eval_rows_error_names_the_eval_dataset_and_rows_or_a_path_are_refused(tmp_path, tiny_model,
                                                                                   tiny_tokenizer):
    """A row's error said "row 1: ...", read as the train set's row 1; a list of rows or a file's path failed with
    TRL's TypeError about its own types (a user's own-data trial, 2026-12-05)."""
    rows, bad = toy_rows(2), toy_rows(2)
    bad[1]["rejected_step_labels"] = bad[1]["rejected_step_labels"][:-1]
    with pytest.raises(ValueError, match="the eval dataset's row 1: `rejected_step_labels` has 3 entries"):
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list(rows), eval_dataset=Dataset.from_list(bad))
    for given, name in ((rows, "train"), (str(tmp_path / "pairs.jsonl"), "train"), (tmp_path / "pairs.jsonl", "eval")):
        datasets = {"train_dataset": Dataset.from_list(rows), f"{name}_dataset": given}
        with pytest.raises(ValueError, match=rf"the {name} dataset must be a `datasets.Dataset`, got a \w+: load a "
                                             r"file with data.load_preference\(path\)"):
            StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                               **datasets)


def test_args_other_than_a_stepwise_config_are_refused_by_name(tmp_path, tiny_model, tiny_tokenizer):
    """TRL's own DPOConfig (the likeliest slip) was a TypeError; an empty dict was taken as no args at all."""
    for args in (DPOConfig(str(tmp_path), report_to=[], use_cpu=True, bf16=False), {}, {"beta": 0.1}):
        with pytest.raises(ValueError, match=r"StepwiseDPOTrainer: args must be a StepwiseDPOConfig, got "
                                             r"(DPOConfig|dict)"):
            StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=args, processing_class=tiny_tokenizer,
                               train_dataset=Dataset.from_list(toy_rows(2)))


def test_a_row_past_the_models_positions_is_an_error_when_max_length_cuts_nothing(tmp_path, tiny_model,
                                                                                  tiny_tokenizer):
    """With max_length=None a row longer than max_position_embeddings trained without an error (a RoPE model reads
    positions it never learned); a set max_length cuts it as before."""
    rows = toy_rows(2)
    positions = tiny_model.config.max_position_embeddings
    rows[1]["prompt"] = rows[1]["prompt"] * (positions // len(tiny_tokenizer(rows[1]["prompt"])["input_ids"]) + 1)
    with pytest.raises(ValueError, match=rf"the train dataset's row 1: prompt \+ completion has \d+ tokens, more "
                                         rf"than the model's {positions} positions"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows, max_length=None)
    rows[1]["prompt"] = toy_rows(2)[1]["prompt"]
    assert len(build(tmp_path, tiny_model, tiny_tokenizer, rows, max_length=None).train_dataset) == 2


def test_implicit_prompt_rows_with_a_metadata_column_still_train(tmp_path, tiny_model, tiny_tokenizer):
    """Only a column named like a prompt ("question") is refused when 'prompt' is missing: TRL takes the rest."""
    rows = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"], "id": i}
            for i, r in enumerate(toy_rows(2, labels=False))]  # the implicit prompt: their common start
    with pytest.warns(UserWarning, match="no step labels"):
        assert len(build(tmp_path, tiny_model, tiny_tokenizer, rows).train_dataset) == 2


def test_implicit_prompt_rows_with_step_labels_are_refused(tmp_path, tiny_model, tiny_tokenizer):
    """The implicit prompt, chosen and rejected's common start, runs into their shared steps: the labels, one per step
    of the texts, then met fewer steps, and the error said to check step_delimiter (or, cut inside step 1, matched)."""
    rows = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"],
             "chosen_step_labels": r["chosen_step_labels"], "rejected_step_labels": r["rejected_step_labels"]}
            for r in toy_rows(2)]
    with pytest.raises(ValueError, match=r"the train dataset has no 'prompt' column but has \['chosen_step_labels', "
                                         r"'rejected_step_labels'\]: name the problem's column 'prompt'"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows)


def test_step_labels_on_some_rows_only_are_an_error(tmp_path, tiny_model, tiny_tokenizer):
    rows = toy_rows(3)
    rows[1].update(chosen_step_labels=None, rejected_step_labels=None)  # would become [1, 1, ...] / [0, 0, ...]
    with pytest.raises(ValueError, match="row 1: field 'chosen_step_labels': is missing, but the dataset fills"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows)
    unlabelled = [dict(r, chosen_step_labels=None, rejected_step_labels=None) for r in rows]
    with pytest.warns(UserWarning, match="no step labels"):  # no row labelled: the documented defaults, said aloud
        tr = build(tmp_path, tiny_model, tiny_tokenizer, unlabelled)
    assert set(tr.train_dataset[1]["rejected_step_probs"]) == {0.0}


def test_step_labels_on_one_side_only_are_an_error(tmp_path, tiny_model, tiny_tokenizer):
    rows = [dict(r, rejected_step_labels=None) for r in toy_rows(2)]  # the rejected side would be all "wrong"
    with pytest.raises(ValueError, match="has 'chosen_step_labels' but no 'rejected_step_labels'"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows)


def test_step_dpo_rows_are_refused_as_they_are_and_train_through_to_trl_dpo(tmp_path, tiny_model, tiny_tokenizer):
    """Rows with ``initial_reason_steps`` would train on prompt + one step, the prefix lost and an EOS after the
    step; ``to_trl_dpo`` puts the prefix in the prompt and marks the rows open-ended (no EOS)."""
    from stepdpo_lite import data

    problems = toyworld.make_problems(2, seed=1, min_ops=3, max_ops=3)
    golds = [extract_steps(q.gold_solution) for q in problems]
    wrongs = [extract_steps(toyworld.corrupt_solution(q, 1, "arithmetic", random.Random(0))) for q in problems]
    rows = data.validate_step_dpo([{"prompt": q.prompt, "initial_reason_steps": g[0], "chosen": g[1], "rejected": w[1]}
                                   for q, g, w in zip(problems, golds, wrongs)])
    p, gold = problems[0], golds[0]
    with pytest.raises(ValueError, match="Step-DPO rows .row 0: field 'initial_reason_steps'."):
        build(tmp_path, tiny_model, tiny_tokenizer, rows)
    with warnings.catch_warnings(record=True) as caught:  # one step a side: the default labels are Step-DPO's own
        warnings.simplefilter("always")
        tr = build(tmp_path, tiny_model, tiny_tokenizer, data.to_trl_dpo(rows))
    assert not [w for w in caught if "no step labels" in str(w.message)]
    ids = tr.train_dataset[0]["chosen_ids"]
    assert tiny_tokenizer.decode(tr.train_dataset[0]["prompt_ids"]).replace(" ", "") == (
        p.prompt + gold[0]).replace(" ", "")
    assert ids[-1] != tiny_tokenizer.eos_token_id  # one step of a longer solution: no EOS to learn
    # read by its truth value, the string "false" dropped the EOS of whole solutions
    whole = [{**r, "open_ended": "false"} for r in toy_rows(2)]
    with pytest.raises(ValueError, match=r"row 0: field 'open_ended': must be a bool .*got 'false'"):
        build(tmp_path, tiny_model, tiny_tokenizer, whole)


def test_cached_step_rewards_extreme_are_probabilities_and_nan_is_an_error(tmp_path, tiny_model, tiny_tokenizer):
    rows = [dict(prompt=r["prompt"], chosen=r["chosen"], rejected=r["rejected"],
                 chosen_step_rewards=[1000.0] * len(r["chosen_step_labels"]),
                 rejected_step_rewards=[-1000.0] * len(r["rejected_step_labels"])) for r in toy_rows(2)]
    ex = build(tmp_path, tiny_model, tiny_tokenizer, rows).train_dataset[0]  # log-odds ±1000: no OverflowError
    # P(reachable) 0 from step 1 on: the mistake is made in step 1, and the steps after it are not pushed down
    probs = ex["rejected_step_probs"]
    assert set(ex["chosen_step_probs"]) == {1.0} and probs == [0.0] + [1.0] * (len(probs) - 1)
    ex = build(tmp_path, tiny_model, tiny_tokenizer, rows, reward_model_labels="reachable").train_dataset[0]
    assert set(ex["chosen_step_probs"]) == {1.0} and set(ex["rejected_step_probs"]) == {0.0}
    rows[1]["rejected_step_rewards"][0] = float("nan")
    with pytest.raises(ValueError, match="row 1: `rejected_step_rewards` must be finite"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows)
    for r in rows:  # labels in the rewards' columns (a whole column of bools: Arrow keeps them bools)
        r["chosen_step_rewards"], r["rejected_step_rewards"] = ([True] * len(r[f"{s}_step_rewards"]) for s in
                                                                ("chosen", "rejected"))
    with pytest.raises(ValueError, match=r"row 0: `chosen_step_rewards` must be log-odds rewards, not bools"):
        build(tmp_path, tiny_model, tiny_tokenizer, rows)  # True was read as log-odds 1 (p = 0.73), silently


def test_a_prms_reachable_rewards_push_down_the_step_where_the_mistake_is_made(tmp_path, tiny_model, tiny_tokenizer):
    """A PRM learns *reachable*: after `8 + 6 = 41` it gives `41 - 6 = 35` P ≈ 0 too, though that step computes
    right. Read as p⁻, σ(r) pushed it down (a user's own-data trial, 2026-12-05); the drop in P(reachable) at each step
    is the chance the mistake is made there, and it leaves the later step alone. `reachable` keeps σ(r)."""
    probs = [0.995, 0.0056, 0.0024]  # the trial's rejected solution: right step, the slip, right arithmetic after
    rows = [dict(prompt=r["prompt"], chosen=r["chosen"], rejected=r["rejected"],
                 chosen_step_rewards=[5.0] * 3,
                 rejected_step_rewards=[math.log(p / (1 - p)) for p in probs]) for r in toy_rows(8)]
    rows = [r for r in rows if len(extract_steps(r["rejected"])) == len(extract_steps(r["chosen"])) == 3]
    assert len(rows) >= 2
    ex = build(tmp_path, tiny_model, tiny_tokenizer, rows).train_dataset[0]
    assert ex["rejected_step_probs"] == pytest.approx([0.995, 1 - (0.995 - 0.0056), 1 - (0.0056 - 0.0024)])
    assert ex["rejected_step_probs"][2] > 0.99 and ex["rejected_step_probs"][1] < 0.02
    assert ex["chosen_step_probs"] == pytest.approx([1 / (1 + math.exp(-5.0)), 1.0, 1.0])
    ex = build(tmp_path, tiny_model, tiny_tokenizer, rows, reward_model_labels="reachable").train_dataset[0]
    assert ex["rejected_step_probs"] == pytest.approx(probs)
    with pytest.raises(ValueError, match="reward_model_labels must be one of .*, got 'drop'"):
        config(tmp_path, reward_model_labels="drop")


def test_a_reward_column_of_none_is_no_rewards(tmp_path, tiny_model, tiny_tokenizer):
    """A dataset with the reward columns but no value in them (JSONL nulls) trains on its labels; the collator
    crashed on its first batch (TypeError: object of type 'NoneType' has no len())."""
    rows = [dict(r, chosen_step_rewards=None, rejected_step_rewards=None) for r in toy_rows(2)]
    tr = build(tmp_path, tiny_model, tiny_tokenizer, rows)
    b = batch_of(tr, 2)
    assert "step_rewards" not in b and b["step_probs"].shape[0] == 4


# ----------------------------------------------------------------------------- the mathematics


def test_outcome_only_loss_equals_trl_dpo_loss(tmp_path, policy_and_reference, tiny_tokenizer):
    policy, ref = policy_and_reference
    ds = Dataset.from_list(toy_rows(4))
    dpo = DPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=config(tmp_path, DPOConfig),
                     train_dataset=ds, processing_class=tiny_tokenizer)
    sdpo = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
                              args=config(tmp_path, step_loss_weight=0.0), train_dataset=ds,
                              processing_class=tiny_tokenizer)
    loss_dpo = dpo.compute_loss(dpo.model, batch_of(dpo))
    loss_sdpo = sdpo.compute_loss(sdpo.model, batch_of(sdpo))
    assert abs(loss_dpo.item() - 0.6931) > 1e-4  # the policy really differs from the reference
    assert loss_sdpo.item() == pytest.approx(loss_dpo.item(), abs=1e-5)


def test_one_pass_step_logps_equal_step_by_step(tmp_path, tiny_model, tiny_tokenizer):
    row = toy_rows(1)[0]
    with pytest.warns(UserWarning, match="no reference"):  # log π itself here: no ref_model, no adapter
        one_pass = get_step_rewards(tiny_model, tiny_tokenizer, row["prompt"], row["rejected"], beta=1.0)
    slow = step_by_step_logps(tiny_model, tiny_tokenizer, row["prompt"], row["rejected"])
    assert len(one_pass) == len(slow) == len(extract_steps(row["rejected"]))
    assert one_pass == pytest.approx(slow, abs=1e-4)
    with pytest.raises(ValueError, match="prompt and response 1 must be str"):  # never a problem's repr (issue #14)
        get_step_rewards(tiny_model, tiny_tokenizer, [row["prompt"], toyworld.make_problems(1)[0]],
                         [row["rejected"]] * 2)
    # and through the trainer's fused LM head and collator (the EOS is part of the last step there)
    tr = StepwiseDPOTrainer(tiny_model, ref_model=copy.deepcopy(tiny_model), args=config(tmp_path),
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    b = batch_of(tr, 1)
    labels = b["input_ids"].masked_fill(b["completion_mask"] == 0, -100)
    with torch.no_grad():
        tok = tr.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=labels,
                       fused_lm_head=True).log_probs
    from stepdpo_lite.losses import step_logps
    fused = step_logps(tok, b["step_ids"][:, 1:], b["step_probs"].size(1))[1]  # row 1 = rejected
    eos = step_by_step_logps(tiny_model, tiny_tokenizer, row["prompt"], row["rejected"] + tiny_tokenizer.eos_token)
    assert fused.tolist() == pytest.approx(eos, abs=1e-4)


def test_get_step_rewards_refuses_bad_arguments(tiny_model, tiny_tokenizer):
    row = toy_rows(1)[0]
    p, r = row["prompt"], row["chosen"]

    def call(prompts, responses, **kw):
        return get_step_rewards(tiny_model, tiny_tokenizer, prompts, responses, ref_model=tiny_model, **kw)

    with pytest.raises(ValueError, match="`prompts` and `responses` must both be str .* got str and list"):
        call("ab", [r, r])  # was: "a" and "b" as two prompts
    with pytest.raises(ValueError, match="response 1 is empty"):
        call([p, p], [r, " "])
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        call([""], [r])
    with pytest.raises(ValueError, match="`batch_size` must be an int >= 1, got 0"):
        call([p], [r], batch_size=0)
    for beta, match in ((float("nan"), "must be a finite number, got nan"), (-0.1, "must be > 0, got -0.1"),
                        (0, "must be > 0, got 0")):  # 0: every reward 0
        with pytest.raises(ValueError, match=f"get_step_rewards: `beta` {match}"):  # NaN rewards; every sign flipped
            call([p], [r], beta=beta)
    assert call([p], [r], batch_size=np.int64(2)) == call([p], [r])  # a numpy int is an int, as everywhere else
    too_long = r + " + 12" * 300  # the tiny model knows 1024 positions
    with pytest.raises(ValueError, match=r"prompt \+ response 1 has \d+ tokens, more than the model's context of 1024"):
        call([p, p], [r, too_long])
    filled = r + "1" * (1024 - len(token_step_ids(r, tiny_tokenizer, DEFAULT_DELIMITER, None, prompt=p)[0]))
    assert len(token_step_ids(filled, tiny_tokenizer, DEFAULT_DELIMITER, None, prompt=p)[0]) == 1024
    assert len(call([p], [filled])[0]) == len(extract_steps(r))  # the context exactly: scored
    with pytest.raises(ValueError, match="prompt \\+ response 0 has 1025 tokens"):
        call([p], [filled + "1"])
    with pytest.raises(ValueError, match="needs a fast tokenizer"):  # was a TypeError of the tokenizer's own
        get_step_rewards(tiny_model, SimpleNamespace(is_fast=False), p, r, ref_model=tiny_model)


def test_first_error_pairing_is_the_step_dpo_objective(tmp_path, policy_and_reference, tiny_tokenizer):
    policy, ref = policy_and_reference
    row = toy_rows(1, error_step=1, labels=False)[0]
    args = config(tmp_path, step_pairing="first_error", outcome_loss_weight=0.0, step_beta=0.5)
    tr = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    loss = tr.compute_loss(tr.model, batch_of(tr, 1))
    # Step-DPO (Lai et al. 2024): prompt x + shared prefix s_<2, chosen step s⁺_2 vs rejected step s⁻_2
    chosen_k, rejected_k = (extract_steps(row[s])[1] for s in ("chosen", "rejected"))
    context = row["prompt"] + extract_steps(row["chosen"])[0]
    assert extract_steps(row["rejected"])[0] == extract_steps(row["chosen"])[0] and chosen_k != rejected_k

    expected = pair_loss_at(policy, ref, tiny_tokenizer, context, chosen_k, rejected_k, 0.5)
    assert abs(expected - 0.6931) > 1e-4
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_first_error_pairing_with_soft_labels_leaves_the_steps_shared_opening_out(tmp_path, policy_and_reference,
                                                                                  tiny_tokenizer):
    # A PRM's p⁺ < 1 − p⁻ at the differing step: the text both sides open that step with ("Step 2: 12 * 3 = ") has
    # one log-ratio on both sides, and must not enter the margin with the weight p⁺ − (1 − p⁻) < 0 (it pushed the
    # chosen solution's right tokens down)
    policy, ref = policy_and_reference
    row = toy_rows(1, error_step=1, labels=False)[0]
    n_steps = [len(extract_steps(row[s])) for s in ("chosen", "rejected")]
    p_chosen, p_rejected = 0.3, 0.1
    row.update(chosen_step_labels=[0.9] + [p_chosen] * (n_steps[0] - 1),
               rejected_step_labels=[0.9] + [p_rejected] * (n_steps[1] - 1))
    args = config(tmp_path, step_pairing="first_error", outcome_loss_weight=0.0, step_beta=0.5)
    tr = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    loss = tr.compute_loss(tr.model, batch_of(tr, 1))
    # the character-level toy tokenizer: step 2 counts from its first differing character, on each side
    chosen_k, rejected_k = (extract_steps(row[s])[1] for s in ("chosen", "rejected"))
    n = next(i for i, (c, r) in enumerate(zip(chosen_k, rejected_k)) if c != r)
    assert n > 5  # a shared opening to leave out
    context = row["prompt"] + extract_steps(row["chosen"])[0] + chosen_k[:n]

    def logratio(text):
        return step_by_step_logps(policy, tiny_tokenizer, context, text)[0] - step_by_step_logps(
            ref, tiny_tokenizer, context, text)[0]

    margin = p_chosen * logratio(chosen_k[n:]) - (1 - p_rejected) * logratio(rejected_k[n:])
    expected = -F.logsigmoid(torch.tensor(0.5 * margin)).item()
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_first_error_pairing_scores_a_step_that_is_all_shared_opening_by_its_next_token(tmp_path,
                                                                                        policy_and_reference,
                                                                                        tiny_tokenizer):
    # "= 2" against "= 21": the rejected step ends where the chosen one goes on, so after its shared opening it kept
    # no token, and the pair did not push down what it did wrong (end the number: its next token, "\n")
    policy, ref = policy_and_reference
    prompt = toy_rows(1)[0]["prompt"]
    row = dict(prompt=prompt, chosen="Step 1: 4 + 3 = 7\n\nStep 2: 7 * 3 = 21\n\nStep 3: 21 - 1 = 20\nAnswer: 20",
               rejected="Step 1: 4 + 3 = 7\n\nStep 2: 7 * 3 = 2\n\nStep 3: 2 - 1 = 1\nAnswer: 1",
               chosen_step_labels=[0.9, 0.3, 0.9], rejected_step_labels=[0.9, 0.1, 0.1])
    args = config(tmp_path, step_pairing="first_error", outcome_loss_weight=0.0, step_beta=0.5)
    tr = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    loss = tr.compute_loss(tr.model, batch_of(tr, 1))
    n = next(i for i, (c, r) in enumerate(zip(row["chosen"], row["rejected"])) if c != r)
    context = prompt + row["chosen"][:n]
    assert (row["chosen"][n], row["rejected"][n]) == ("1", "\n")  # character-level toy tokenizer: one token each

    def logratio(text):
        ids = tiny_tokenizer(context + text)["input_ids"]
        assert len(ids) == len(tiny_tokenizer(context)["input_ids"]) + 1
        with torch.no_grad():
            logp = [torch.log_softmax(m(input_ids=torch.tensor([ids])).logits[0, -2].float(), -1)[ids[-1]]
                    for m in (policy, ref)]
        return (logp[0] - logp[1]).item()

    assert abs(logratio("\n")) > 1e-3  # else leaving it out (the old code) would give the same loss
    margin = 0.3 * logratio("1") - (1 - 0.1) * logratio("\n")
    assert loss.item() == pytest.approx(-F.logsigmoid(torch.tensor(0.5 * margin)).item(), abs=1e-5)


def test_first_token_pairing_compares_two_next_tokens_at_one_state(tmp_path, policy_and_reference, tiny_tokenizer):
    policy, ref = policy_and_reference
    row = toy_rows(1, error_step=1, labels=False)[0]
    args = config(tmp_path, step_pairing="first_token", outcome_loss_weight=0.0, step_beta=0.5)
    with warnings.catch_warnings(record=True) as caught:  # no labels: one differing token a side is Step-DPO as is
        warnings.simplefilter("always")
        tr = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                                train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    assert not [w for w in caught if "no step labels" in str(w.message)]
    ex = tr.train_dataset[0]
    t = next(i for i, (c, r) in enumerate(zip(ex["chosen_ids"], ex["rejected_ids"])) if c != r)
    for side in ("chosen", "rejected"):  # one token keeps a step id, in the first differing step
        assert [k for k in ex[f"{side}_step_ids"] if k >= 0] == [1] and ex[f"{side}_step_ids"][t] == 1
    loss = tr.compute_loss(tr.model, batch_of(tr, 1))
    assert sum(c[:4].sum().item() for c in tr._step_counts.values()) == 2  # step metrics: the one scored step a side
    # the character-level toy tokenizer: the first differing character is the first differing token
    n = next(i for i, (c, r) in enumerate(zip(row["chosen"], row["rejected"])) if c != r)
    context, chosen_t, rejected_t = row["prompt"] + row["chosen"][:n], row["chosen"][n], row["rejected"][n]
    assert chosen_t.isdigit() and rejected_t.isdigit()  # the arithmetic error itself

    expected = pair_loss_at(policy, ref, tiny_tokenizer, context, chosen_t, rejected_t, 0.5)
    assert abs(expected - 0.6931) > 1e-4
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_reward_model_rewards_are_computed_once_and_soften_the_outcome_loss(tmp_path, policy_and_reference,
                                                                            tiny_tokenizer):
    class FakePRM:
        calls = 0

        def score_solutions(self, prompts, solutions):
            FakePRM.calls += 1
            assert all(isinstance(s, list) for s in solutions)  # the trainer's steps, not texts to split
            return [[0.0] * len(s) for s in solutions]  # equal rewards: w = 1/2

    policy, ref = policy_and_reference
    args = config(tmp_path, step_loss_weight=0.0, max_steps=2, per_device_train_batch_size=1)
    tr = StepwiseDPOTrainer(policy, ref_model=ref, args=args, processing_class=tiny_tokenizer,
                            train_dataset=Dataset.from_list(toy_rows(2, labels=False)), reward_model=FakePRM())
    assert FakePRM.calls == 2  # chosen and rejected, once, while preparing the dataset
    ex = tr.train_dataset[0]
    assert ex["chosen_step_probs"] == [0.5] + [1.0] * (len(ex["chosen_step_probs"]) - 1)  # σ(0), then no drop
    loss = tr.compute_loss(tr.model, batch_of(tr, 1))
    margin = tr._metrics["train"]["rewards/margins"][-1]  # β·h for the single pair
    expected = -(0.5 * F.logsigmoid(torch.tensor(margin)) + 0.5 * F.logsigmoid(torch.tensor(-margin))).item()
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    tr.train()
    assert FakePRM.calls == 2  # never inside the training step


def test_a_reward_model_that_gives_no_step_rewards_is_refused(tmp_path, tiny_model, tiny_tokenizer):
    class OneRewardPerSolution:  # as an outcome reward model scores
        def score_solutions(self, prompts, solutions):
            return [0.5 for _ in solutions]

    def trainer(reward_model):
        return StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                                  train_dataset=Dataset.from_list(toy_rows(2, labels=False)), reward_model=reward_model)

    # it names what the trainer calls (any object with it works), not one class (a user's trial)
    with pytest.raises(ValueError, match=r"reward_model needs a method score_solutions\(prompts, step_lists\) "
                                         r"returning one reward per step \(a ProcessRewardModel has it\), got str; "
                                         "for a saved one pass"):
        trainer("runs/tiny/prm")  # was: AttributeError deep in dataset preparation
    with pytest.raises(ValueError, match="scored row 0's chosen with 0.5, not one reward per step"):
        trainer(OneRewardPerSolution())  # was: TypeError: 'float' object is not iterable


def test_keep_end_cutting_a_step_to_its_first_token_counts_it_truncated(tmp_path, tiny_model, tiny_tokenizer):
    """The first kept token has no log-prob (none before it to predict it): a step cut down to there by keep_end
    was reported complete, and its ρ_k summed one token short in the step loss."""
    row = toy_rows(1)[0]
    probe = StepwiseDPOTrainer(tiny_model, ref_model=copy.deepcopy(tiny_model), args=config(tmp_path),
                               train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    step_ids = probe.train_dataset[0]["chosen_step_ids"]
    max_length = len(step_ids) - step_ids.index(1)  # keep_end keeps the chosen response from step 2's first token
    tr = StepwiseDPOTrainer(tiny_model, ref_model=copy.deepcopy(tiny_model),
                            args=config(tmp_path, max_length=max_length, truncation_mode="keep_end"),
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    b = batch_of(tr, 1)
    assert b["step_ids"][0, 0].item() == 1
    assert b["step_complete"][0, :3].tolist() == [False, False, True]


def test_truncated_steps_are_masked_and_counted(tmp_path, tiny_model, tiny_tokenizer):
    row = toy_rows(1)[0]
    n_prompt = len(tiny_tokenizer(row["prompt"])["input_ids"])
    first_step = len(tiny_tokenizer(extract_steps(row["chosen"])[0])["input_ids"])
    max_length = n_prompt + first_step + 3  # cuts each response inside its second step
    tr = StepwiseDPOTrainer(tiny_model, ref_model=copy.deepcopy(tiny_model),
                            args=config(tmp_path, max_length=max_length),
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    b = batch_of(tr, 1)
    n_steps = len(extract_steps(row["chosen"]))
    assert b["input_ids"].shape[1] == max_length
    assert b["step_complete"][:, :n_steps].tolist() == [[True] + [False] * (n_steps - 1)] * 2
    tr.compute_loss(tr.model, b)  # that labels of cut steps do not matter: a policy unlike its reference, below
    assert tr._step_counts["train"][4].item() == 2 * (n_steps - 1)
    tr.log({})
    assert tr.state.log_history[-1]["steps/truncated"] == 2 * (n_steps - 1)  # one batch: each side's cut steps


def test_precomputed_reference_gives_the_same_loss(tmp_path, policy_and_reference, tiny_tokenizer):
    policy, ref = policy_and_reference
    ds = Dataset.from_list(toy_rows(4))
    live = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=config(tmp_path),
                              train_dataset=ds, processing_class=tiny_tokenizer)
    pre = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
                             args=config(tmp_path, precompute_ref_log_probs=True),
                             train_dataset=ds, processing_class=tiny_tokenizer)
    assert len(pre.train_dataset[0]["ref_chosen_logps"]) == 1 + pre._max_num_steps
    # no reference model kept beside the precomputed columns (the point of precomputing); the policy's own is used
    assert StepwiseDPOTrainer(copy.deepcopy(policy), args=config(tmp_path, precompute_ref_log_probs=True),
                              train_dataset=ds, processing_class=tiny_tokenizer).ref_model is None
    # an eval set with fewer steps does not narrow the train set's reference columns
    narrow = toy_rows(2, error_step=0, ops=(1, 1))
    with_eval = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
                                   args=config(tmp_path, precompute_ref_log_probs=True), train_dataset=ds,
                                   eval_dataset=Dataset.from_list(narrow), processing_class=tiny_tokenizer)
    assert with_eval._max_num_steps == pre._max_num_steps > len(narrow[0]["chosen_step_labels"])
    assert pre.compute_loss(pre.model, batch_of(pre)).item() == pytest.approx(
        live.compute_loss(live.model, batch_of(live)).item(), abs=1e-5)
    # Another trainer's prepared dataset: the reference still gets a column per step (it got one in all, and every
    # step's log-ratio then took step 1's reference)
    reused = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
                                args=config(tmp_path, precompute_ref_log_probs=True),
                                train_dataset=live.train_dataset, processing_class=tiny_tokenizer)
    assert reused._max_num_steps == live._max_num_steps > 1
    assert reused.compute_loss(reused.model, batch_of(reused)).item() == pytest.approx(
        live.compute_loss(live.model, batch_of(live)).item(), abs=1e-5)
    # ... but not one prepared with other step settings: it was reused as it was, so a first-token trainer's
    # columns trained a "weighted" one on one token a pair, and another delimiter's steps were taken as its own
    first_token = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
                                     args=config(tmp_path, step_pairing="first_token"), train_dataset=ds,
                                     processing_class=tiny_tokenizer)
    for other, kw in ((first_token, {}), (live, dict(max_reasoning_steps=1))):
        with pytest.raises(ValueError, match="train dataset was prepared with other step settings .row 0: field"):
            StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=config(tmp_path, **kw),
                               train_dataset=other.train_dataset, processing_class=tiny_tokenizer)


# ----------------------------------------------------------------------------- training, PEFT, QLoRA, saving


def test_train_logs_metrics_and_save_model_writes_stepwise_config(tmp_path, tiny_model, tiny_tokenizer):
    tr = StepwiseDPOTrainer(tiny_model, args=config(tmp_path, max_steps=2, step_accuracy_metric="f1"),
                            train_dataset=Dataset.from_list(toy_rows(4)), processing_class=tiny_tokenizer,
                            eval_dataset=Dataset.from_list(toy_rows(2, error_step=2)))
    assert tr.ref_model is not None  # an in-memory model gets a frozen copy as reference
    tr.train()
    logged = tr.state.log_history[0]
    for key in ("loss/step", "loss/outcome", "rewards/chosen", "rewards/rejected", "step_f1", "steps/truncated"):
        assert key in logged, key
    metrics = tr.evaluate()
    assert {"eval_loss", "eval_loss/step", "eval_step_f1", "eval_rewards/margins"} <= set(metrics)
    # each pair counts once, whatever the eval batch: 3 rows in batches of 2 gave the short batch half the weight
    evals = {}
    for size in (1, 2):
        tr.args.per_device_eval_batch_size = size
        evals[size] = tr.evaluate(Dataset.from_list(toy_rows(3, error_step=2)))
    for key in ("eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen"):
        assert evals[2][key] == pytest.approx(evals[1][key], rel=1e-5, abs=1e-5), key
    tr.save_model(str(tmp_path / "final"))
    saved = json.loads((tmp_path / "final" / "stepwise_config.json").read_text())
    assert saved["step_beta"] == 0.1 and saved["step_pairing"] == "weighted"
    assert saved == json.loads(json.dumps(tr.args.stepwise_dict()))  # the JSON is the whole config a reader gets
    assert not (tmp_path / "final" / "stepwise_config.pt").exists()  # no second copy that nothing reads
    assert (tmp_path / "final" / "model.safetensors").exists()


def test_an_iterable_dataset_trains_as_the_same_rows_in_memory(tmp_path, tiny_model, tiny_tokenizer):
    rows = toy_rows(4)  # one batch of 4: the order the two datasets serve the rows in does not matter
    losses = {}
    in_memory = Dataset.from_list(rows)
    for kind, dataset in (("map", in_memory), ("iterable", in_memory.to_iterable_dataset())):
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path / kind, max_steps=1),
                                train_dataset=dataset, processing_class=tiny_tokenizer)
        tr.train()
        losses[kind] = tr.state.log_history[0]["loss"]
    assert losses["iterable"] == pytest.approx(losses["map"], rel=1e-5)


def test_a_streamed_dataset_whose_first_row_has_no_step_labels_refuses_a_later_row_with_them(tmp_path, tiny_model,
                                                                                           tiny_tokenizer):
    """A generator's columns are not declared and it is not read ahead, so its first row decides which step columns
    it has: the rows before a labelled one would have trained on the default labels, silently."""
    from datasets import IterableDataset
    rows = toy_rows(1, labels=False) + toy_rows(2)[1:]

    def gen():
        yield from rows
    tr = StepwiseDPOTrainer(tiny_model, args=config(tmp_path, max_steps=1), processing_class=tiny_tokenizer,
                            train_dataset=IterableDataset.from_generator(gen))
    with pytest.raises(ValueError, match="row 1: field 'chosen_step_labels': is given, but the streamed dataset's "
                                         "first row has none"):
        tr.train()


def test_peft_reference_is_the_adapter_disabled_model(tmp_path, tiny_model, tiny_tokenizer):
    from peft import LoraConfig

    base_copy = copy.deepcopy(tiny_model)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    tr = StepwiseDPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(toy_rows(2)),
                            processing_class=tiny_tokenizer, peft_config=lora)  # random (non-zero) adapter
    assert tr.ref_model is None and "ref" not in tr.model.peft_config  # no second copy in memory
    b = batch_of(tr, 2)
    kwargs, labels = tr._model_inputs(b)
    ref_tok = tr._reference_token_logps(tr.model, kwargs, labels)
    with torch.no_grad():
        logits = base_copy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        base_tok = torch.log_softmax(logits, -1).gather(-1, b["input_ids"][:, 1:, None]).squeeze(-1)
        policy_tok = tr.model(**kwargs, labels=labels, fused_lm_head=True).log_probs
    mask = labels[:, 1:] != -100
    torch.testing.assert_close(ref_tok[mask], base_tok[mask], atol=1e-4, rtol=0)
    assert (policy_tok[mask] - base_tok[mask]).abs().max() > 1e-3  # the adapter is on for the policy
    row = toy_rows(1)[0]
    rewards = tr.get_step_rewards(row["prompt"], row["chosen"])  # β·ρ_k against the adapter-disabled base
    assert len(rewards) == len(extract_steps(row["chosen"])) and any(abs(r) > 1e-4 for r in rewards)


def test_a_default_run_warns_of_no_deprecated_checkpointing_name_and_the_users_own_still_warn(tmp_path, tiny_model,
                                                                                             tiny_tokenizer):
    """A run at TRL's default (checkpointing on) printed transformers 5's renames: the config warned of
    gradient_checkpointing (TRL's default of the old name), PEFT's PeftModel for a peft_config read
    is_gradient_checkpointing, and every reference forward (TRL's disable_gradient_checkpointing) three more. The
    config sets the new name where there is one, the reference forwards turn the modules' checkpointing flags off
    and on, and the trainer quiets PEFT's read where TRL makes it, and only there: the user's own old names warn."""
    from peft import LoraConfig

    fast = {k: v for k, v in FAST.items() if k != "gradient_checkpointing"}
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = StepwiseDPOConfig(output_dir=str(tmp_path), max_steps=2, **fast)
        trainer = StepwiseDPOTrainer(tiny_model, args=args, train_dataset=Dataset.from_list(toy_rows()),
                                     processing_class=tiny_tokenizer, peft_config=lora)
        seen = set()  # (grad on, checkpointing on) at each forward: off for the no-grad reference ones, as in TRL
        trainer.model.get_base_model().register_forward_pre_hook(
            lambda module, inputs: seen.add((torch.is_grad_enabled(), checkpointing_on(module))))
        trainer.train()
        assert seen == {(True, True), (False, False)}
        assert getattr(args, CHECKPOINTING_FIELD) is True and args.gradient_checkpointing is True  # TRL's default
        assert checkpointing_on(trainer.model)  # on while the reference forwards turned it off and on
        assert [(w.category, str(w.message)) for w in caught if "checkpointing" in str(w.message)] == []
        trainer.model.is_gradient_checkpointing  # noqa: B018 (the user's own read of a deprecated name)
        StepwiseDPOConfig(output_dir=str(tmp_path), gradient_checkpointing=False, **fast)  # their own old name
    theirs = [str(w.message).split(" is ")[0] for w in caught if issubclass(w.category, FutureWarning)
              and "checkpointing" in str(w.message)]
    renamed = CHECKPOINTING_FIELD == "activation_checkpointing"  # 5.2 has the old names only: nothing to warn of
    assert theirs == (["`is_gradient_checkpointing`", "`gradient_checkpointing`"] if renamed else [])


def test_reference_forwards_leave_the_checkpointing_as_the_trainer_set_it_up(tmp_path, tiny_model, tiny_tokenizer):
    """Each reference forward turned checkpointing off and on by the model's methods (as TRL's
    disable_gradient_checkpointing does): every enable added one more input-grads hook to the embeddings, and the
    kwargs given back whole (every_n_layers still in them, as the Trainer had popped it from a copy) checkpointed the
    layers every_n_layers=2 leaves out. The forward flips the checkpointed modules' own flags only."""
    from transformers import TrainerCallback

    every_n = CHECKPOINTING_FIELD == "activation_checkpointing"  # transformers 5.2: no every_n_layers
    fast = {k: v for k, v in FAST.items() if k != "gradient_checkpointing"}  # checkpointing on, TRL's default
    args = StepwiseDPOConfig(output_dir=str(tmp_path), max_steps=3, **fast, **(
        {"activation_checkpointing_kwargs": {"use_reentrant": False, "every_n_layers": 2}} if every_n else {}))
    embeddings, layers, seen = tiny_model.get_input_embeddings(), tiny_model.model.layers, []

    class AfterEachStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append((len(embeddings._forward_hooks), [layer.gradient_checkpointing for layer in layers]))

    trainer = StepwiseDPOTrainer(tiny_model, args=args, train_dataset=Dataset.from_list(toy_rows()),
                                 processing_class=tiny_tokenizer, callbacks=[AfterEachStep()])
    trainer.train()
    assert seen == [(1, [True, False, True, False] if every_n else [True] * 4)] * 3


def test_a_trained_adapter_that_is_not_lora_keeps_its_reference_copy(tmp_path, tiny_model, tiny_tokenizer):
    """An IA3 adapter has no lora_B, so "every lora_B is 0" held for it and TRL's "ref" copy was deleted: the
    reference became the base without the adapter, and the log-ratios were off from the first step."""
    from peft import IA3Config, get_peft_model
    model = get_peft_model(tiny_model, IA3Config(target_modules=["k_proj", "v_proj", "down_proj"],
                                                 feedforward_modules=["down_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():  # trained before: away from the identity
        for n, p in model.named_parameters():
            if "ia3_l" in n:
                p.mul_(3.0)
    tr = StepwiseDPOTrainer(model, args=config(tmp_path), train_dataset=Dataset.from_list(toy_rows(2)),
                            processing_class=tiny_tokenizer)
    assert "ref" in tr.model.peft_config
    with torch.no_grad():
        tr.compute_loss(tr.model, batch_of(tr, 2))
    assert tr._metrics["train"]["rewards/chosen"][-1] == pytest.approx(0.0, abs=1e-5)  # the policy is its reference
    tr.model.delete_adapter("ref")
    with pytest.raises(ValueError, match="precompute_ref_log_probs with an adapter that is not LoRA"):
        StepwiseDPOTrainer(tr.model, args=config(tmp_path, precompute_ref_log_probs=True),  # before TRL's copy
                           train_dataset=Dataset.from_list(toy_rows(2)), processing_class=tiny_tokenizer)


def test_a_reward_model_is_not_ignored_when_the_rows_have_step_rewards(tmp_path, tiny_model, tiny_tokenizer):
    class NeverCalled:
        def score_solutions(self, prompts, solutions):
            pytest.fail("scored rows that already had rewards")

    rows = [dict(r, chosen_step_rewards=[1.0] * len(extract_steps(r["chosen"])),
                 rejected_step_rewards=[-3.0] * len(extract_steps(r["rejected"]))) for r in toy_rows(2, labels=False)]
    with pytest.raises(ValueError, match="already has step rewards .* and a reward model was given"):
        StepwiseDPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(rows),
                           processing_class=tiny_tokenizer, reward_model=NeverCalled())


def test_get_step_rewards_of_a_retrained_adapter_are_against_its_ref_copy(tmp_path, tiny_model, tiny_tokenizer):
    """A policy whose adapter was trained before (a second round): TRL keeps a "ref" copy of that adapter, the loss
    measures against it, and so must get_step_rewards (it used the bare base: rewards far from 0 before a step)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    policy = get_peft_model(copy.deepcopy(tiny_model), lora)
    tr = StepwiseDPOTrainer(policy, args=config(tmp_path), train_dataset=Dataset.from_list(toy_rows(2)),
                            processing_class=tiny_tokenizer)
    assert "ref" in tr.model.peft_config
    row = toy_rows(1)[0]
    rewards = tr.get_step_rewards(row["prompt"], row["chosen"])
    assert len(rewards) == len(extract_steps(row["chosen"])) and max(abs(r) for r in rewards) < 1e-5


def test_qlora_4bit_cpu_training_runs(tmp_path, tiny_model, tiny_tokenizer):
    pytest.importorskip("bitsandbytes")
    from stepdpo_lite.models import load_model

    tiny_model.save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    model, tok = load_model(str(tmp_path / "base"), quantization="4bit", device="cpu", dtype=torch.float32,
                            lora=dict(r=4, target_modules=["q_proj", "v_proj"]))
    args = config(tmp_path, max_steps=2, learning_rate=1e-3, per_device_train_batch_size=2)
    tr = StepwiseDPOTrainer(model, args=args, train_dataset=Dataset.from_list(toy_rows(4)), processing_class=tok)
    assert getattr(tr.model, "is_loaded_in_4bit", False)
    assert tr.ref_model is None and "ref" not in tr.model.peft_config  # reference = adapter disabled, no copy
    tr.train()
    assert tr.state.global_step == 2 and all(torch.isfinite(torch.tensor(h["loss"]))
                                             for h in tr.state.log_history if "loss" in h)


def test_bpe_tokens_that_cross_step_boundaries(tmp_path):
    """A byte-level BPE merges characters across the delimiter; every completion token still gets one step."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rows = toy_rows(4)
    bpe = Tokenizer(models.BPE())
    # merges across spaces/newlines
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([r["prompt"] + r[s] for r in rows for s in ("chosen", "rejected")] * 20,
                            trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>")
    tr = StepwiseDPOTrainer(tiny_models.build_tiny_model(tok), args=config(tmp_path), processing_class=tok,
                            train_dataset=Dataset.from_list(rows))
    for ex, row in zip(tr.train_dataset, rows):
        for side in ("chosen", "rejected"):
            ids, n = ex[f"{side}_step_ids"], len(extract_steps(row[side]))
            assert ids == sorted(ids) and set(ids) == set(range(n))  # in order, no token left out, no step empty
    # tokens merged across the prompt/completion boundary (TRL moves them into the completion) join step 1
    assert any(tok.decode(ex["chosen_ids"][:1]) not in "Step" for ex in tr.train_dataset)
    assert tr.compute_loss(tr.model, batch_of(tr)).isfinite()


def test_reward_model_loaded_from_path(tmp_path, tiny_model, tiny_tokenizer):
    from stepdpo_lite.rewards import ProcessRewardModel

    prm = ProcessRewardModel(copy.deepcopy(tiny_model), tiny_tokenizer)
    prm.save(tmp_path / "prm")
    rows = toy_rows(2, labels=False)
    expected = prm.score_solutions([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    args = config(tmp_path, use_reward_model=True, reward_model_path=str(tmp_path / "prm"),
                  aggregation_strategy="product")
    tr = StepwiseDPOTrainer(tiny_model, args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tiny_tokenizer)
    got = tr.train_dataset["rejected_step_rewards"]
    assert [pytest.approx(e, abs=1e-4) for e in expected] == got
    assert tr.train_dataset[0]["rejected_step_probs"] == pytest.approx(
        mistake_made_here_labels(torch.sigmoid(torch.tensor(got[0])).tolist()))
    assert tr.compute_loss(tr.model, batch_of(tr, 2)).isfinite()
    assert 0 < tr._metrics["train"]["reward_model/weight"][-1] < 1
    with pytest.raises(ValueError, match="reward_model_path"):
        StepwiseDPOTrainer(tiny_model, args=config(tmp_path, use_reward_model=True),
                           train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer)
    # a PRM saved with another step delimiter scores the trainer's steps: it split the texts its own way, and the
    # counts disagreed ("has 1 entries but the response has 3 steps", a column the user never passed)
    prm.config.step_delimiter = "\n\n\n"  # no toy text holds it: one step per text, split its way
    with pytest.warns(UserWarning, match=r"the reward model learned steps split by '\\n\\n\\n', and this trainer "
                                         r"splits them by step_delimiter='\\n\\nStep'"):  # a user's trial, 2026-12-05
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), train_dataset=Dataset.from_list(rows),
                                processing_class=tiny_tokenizer, reward_model=prm)
    assert tr.train_dataset["rejected_step_rewards"] == [pytest.approx(e, abs=1e-4) for e in expected]
    # a PRM trained on '\n'-split steps, its data given under the default '\n\nStep': no text holds the trainer's
    # delimiter and some hold the PRM's, so every response was one step (Stepwise DPO as DPO) after a mere warning
    prm.config.step_delimiter = "\n"
    lines = [{k: v.replace("\n\nStep", "\nStep") for k, v in r.items()} for r in rows]
    with pytest.raises(ValueError, match=r"no chosen or rejected response of the train dataset holds step_delimiter="
                                         r"'\\n\\nStep', .* some hold '\\n', the delimiter the reward model learned: "
                                         r"pass StepwiseDPOConfig\(step_delimiter='\\n'\)"):
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), train_dataset=Dataset.from_list(lines),
                           processing_class=tiny_tokenizer, reward_model=prm)


@pytest.mark.parametrize("chosen_laid_out_as_trained", [0, 2])
def test_a_prms_layout_warnings_name_the_side_they_are_about(tmp_path, tiny_model, tiny_tokenizer,
                                                              chosen_laid_out_as_trained):
    """The trainer checks the chosen and the rejected responses' layout each on its own, one warning a side: they
    said neither side, so the same counts read as one warning said twice (Python showed it once) and different
    counts could not be told apart. Each names its side now, and counts that side's rows."""
    from stepdpo_lite.rewards import ProcessRewardModel
    rows = [dict(r, prompt=r["prompt"].rstrip("\n")) for r in toy_rows(5, labels=False)]  # every prompt runs in
    for r in rows[:chosen_laid_out_as_trained]:
        r["chosen"] = " " + r["chosen"]  # whitespace after the prompt: this chosen response is laid out as trained
    prm = ProcessRewardModel(copy.deepcopy(tiny_model), tiny_tokenizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as a user's Python shows them: the same words at one place once
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list(rows), reward_model=prm)
    said = sorted(str(w.message) for w in caught if "layout it was not trained on" in str(w.message))
    ran_in = {"chosen": 5 - chosen_laid_out_as_trained, "rejected": 5}
    assert [m.split(" prompts run into")[0] for m in said] == [
        f"ProcessRewardModel.score_solutions ({side} side): {n} of 5" for side, n in ran_in.items()], said


def test_a_prms_layout_warning_comes_once_per_setup_not_once_per_chunk_and_side(tmp_path, tiny_model, tiny_tokenizer,
                                                                                 monkeypatch):
    """The trainer scores its rows in chunks of 512, one score_solutions call per chunk and side: a PRM's warning of
    a layout it was not trained on (prompts that run into their first step) came once per chunk and side, each
    counting its own chunk's rows, and not at all for a chunk without such rows. 3 chunks of 2 rows stand for 1,500
    rows in chunks of 512: one warning a side, naming it and counting its rows once (both sides in one list said
    "6 of 10 prompts" of 5 rows); the rewards are the PRM's all the same. A PRM scores each side in one call now,
    naming the side (the chunks had been told warn_layout=False, and the trainer checked all rows itself)."""
    from stepdpo_lite.rewards import ProcessRewardModel
    monkeypatch.setattr("stepdpo_lite.trainer.SCORER_CHUNK", 2)
    rows = toy_rows(5, labels=False)
    for r in rows[2:]:  # the first chunk is laid out as in training: the later ones are not
        r["prompt"] = r["prompt"].rstrip("\n")
    prm = ProcessRewardModel(copy.deepcopy(tiny_model), tiny_tokenizer)
    asked = []

    def spy(prompts, solutions, **kwargs):
        asked.append((len(prompts), kwargs.get("side")))
        return ProcessRewardModel.score_solutions(prm, prompts, solutions, **kwargs)

    monkeypatch.setattr(prm, "score_solutions", spy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as a user's Python shows them: the same words at one place once
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                                train_dataset=Dataset.from_list(rows), reward_model=prm)
    assert asked == [(5, "chosen"), (5, "rejected")]  # one call a side, all its rows (it was 3 chunks a side)
    said = [str(w.message) for w in caught if "layout it was not trained on" in str(w.message)]
    assert sorted(m.split(" prompts run into their first step")[0] for m in said) == [
        f"ProcessRewardModel.score_solutions ({side} side): 3 of 5" for side in ("chosen", "rejected")], said
    joined = [dict(r, prompt=r["prompt"].rstrip("\n")) for r in rows]  # every row runs into its prompt
    joined[0]["chosen"] = " " + joined[0]["chosen"]  # but for the first row's chosen side
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list(joined), reward_model=prm)
    said = sorted(str(w.message).split(": ")[1] for w in caught if "layout it was not trained on" in str(w.message))
    assert said == ["4 of 5 prompts run into their first step with no whitespace between (the kit trains on such "
                    "rows only with a warning)", "5 of 5 prompts run into their first step with no whitespace "
                    "between (the kit trains on such rows only with a warning)"], said
    prompts, expected = [r["prompt"] for r in rows], {}
    for side in ("chosen", "rejected"):
        with pytest.warns(UserWarning, match="3 of 5 prompts run into"):  # a call of one's own still warns
            expected[side] = prm.score_solutions(prompts, [extract_steps(r[side]) for r in rows])
        assert tr.train_dataset[f"{side}_step_rewards"] == [pytest.approx(e, abs=1e-4) for e in expected[side]]

    class OwnPRM(ProcessRewardModel):  # a subclass written before the keyword: called as before, never given it
        def score_solutions(self, prompts, solutions):
            return super().score_solutions(prompts, solutions)

    own = OwnPRM(copy.deepcopy(tiny_model), tiny_tokenizer)
    with pytest.warns(UserWarning, match="layout it was not trained on"):
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                                train_dataset=Dataset.from_list(rows), reward_model=own)
    assert tr.train_dataset["rejected_step_rewards"] == [pytest.approx(e, abs=1e-4) for e in expected["rejected"]]


def test_sft_term_equals_trl_sigmoid_plus_sft(tiny_tokenizer, right_padded_tokenizer):
    """sft_loss_weight adds the same NLL term as TRL's loss_type ['sigmoid', 'sft'] (RPO)."""
    import copy
    import random

    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from stepdpo_lite.tutorial import tiny_models, toyworld
    from stepdpo_lite.trainer import StepwiseDPOConfig, StepwiseDPOTrainer

    probs = toyworld.make_problems(4, "train", seed=5)
    rows = {"prompt": [p.prompt for p in probs], "chosen": [p.gold_solution for p in probs],
            "rejected": [toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(0)) for p in probs]}
    ds = Dataset.from_dict(rows)
    common = dict(output_dir="/tmp/sft_eq", per_device_train_batch_size=4, report_to=[], use_cpu=True, bf16=False,
                  gradient_checkpointing=False, max_length=256, beta=0.1)
    model = tiny_models.build_tiny_model(tiny_tokenizer, seed=1)
    tok = right_padded_tokenizer
    ours = StepwiseDPOTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(model), processing_class=tok,
                              args=StepwiseDPOConfig(step_loss_weight=0.0, sft_loss_weight=0.5, **common),
                              train_dataset=ds)
    trl = DPOTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(model), processing_class=tok,
                     args=DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5], **common), train_dataset=ds)
    batch_ours = next(iter(ours.get_train_dataloader()))
    batch_trl = next(iter(trl.get_train_dataloader()))
    with torch.no_grad():
        a = ours.compute_loss(ours.model, batch_ours)
        b = trl.compute_loss(trl.model, batch_trl)
    assert abs(a.item() - b.item()) < 1e-5


def test_4bit_adapters_train_in_float32_under_any_precision(tmp_path, tiny_base_path):
    """TRL stores a 4-bit model's LoRA weights in bfloat16 (QLoRA's recipe, for bf16 training). fp16 training (a T4)
    cannot unscale their gradients, and a CPU's float32 training rounded most of Adam's steps away (a user's trial,
    2026-12-05: 4 steps at lr 1e-4 moved 19% of lora_A's entries); under bf16 too (the 24gb profile's), where 20
    Adam steps at lr 5e-5 left 41% of a LoRA A's entries unmoved (consumer-GPU audit T14). A fully fine-tuned
    model's bf16 weights under bf16, and DeepSpeed's or FSDP's flat parameters, stay as they are."""
    from stepdpo_lite.models import load_model
    from stepdpo_lite.models import prepare_adapters
    model, tok = load_model(tiny_base_path, quantization="4bit", lora=dict(r=4, lora_alpha=8), device="cpu",
                            dtype="float32")
    tok.padding_side = "right"
    trainer = StepwiseDPOTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_list(toy_rows()),
                                 args=StepwiseDPOConfig(str(tmp_path), max_steps=4, learning_rate=1e-4, **FAST))
    trainable = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values())
    before = {n: p.detach().clone() for n, p in trainable.items() if "lora_A" in n}
    trainer.train()
    moved = torch.stack([(trainable[n] != b).float().mean() for n, b in before.items()]).mean().item()
    assert moved > 0.9, moved
    trainer.save_model(str(tmp_path / "policy"))  # records its 4-bit base: load_policy loads it as trained
    from stepdpo_lite.models import adapter_quantization
    assert adapter_quantization(tmp_path / "policy", "unrecorded") == "4bit"
    frozen = {n: p.dtype for n, p in trainer.model.named_parameters() if not p.requires_grad}
    for bf16, fp16 in ((True, False), (False, True)):  # TRL's cast, then the 24gb profile's bf16 or a T4's fp16
        for p in trainable.values():
            p.data = p.data.to(torch.bfloat16)
        trainer.args.bf16, trainer.args.fp16 = bf16, fp16
        prepare_adapters(trainer)
        assert all(p.dtype == torch.float32 for p in trainable.values()), (bf16, fp16)
    assert frozen == {n: p.dtype for n, p in trainer.model.named_parameters() if not p.requires_grad}
    full = torch.nn.Linear(2, 2).to(torch.bfloat16)  # a fully fine-tuned bf16 model, trained under bf16
    # then the adapter under DeepSpeed, and under FSDP
    for model, deepspeed, fsdp in ((full, False, False), (trainer.model, True, False), (trainer.model, False, True)):
        weight = next(p for p in model.parameters() if p.requires_grad)
        weight.data = weight.data.to(torch.bfloat16)
        prepare_adapters(SimpleNamespace(model=model, args=SimpleNamespace(bf16=True), is_deepspeed_enabled=deepspeed,
                                         is_fsdp_enabled=fsdp))
        assert weight.dtype == torch.bfloat16, (deepspeed, fsdp)


def test_plain_dpo_drops_trls_ref_copy_of_a_fresh_adapter_and_keeps_a_trained_ones(tmp_path, tiny_model,
                                                                                    tiny_tokenizer):
    """TRL's DPOTrainer keeps a frozen "ref" copy of any adapter it is given: for a fresh one (B = 0) the reference
    ran LoRA layers that change nothing, and notebook 04's DPO and NLL-only runs saved it in policies/*/ref/.
    prepare_adapters drops it there, at the same loss; a trained adapter's copy (the round's start) stays, exact."""
    from peft import LoraConfig, get_peft_model
    from stepdpo_lite.models import prepare_adapters
    rows = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in toy_rows(2)])
    for fresh in (True, False):
        policy = get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                      init_lora_weights=fresh, task_type="CAUSAL_LM"))
        tr = DPOTrainer(policy, args=config(tmp_path, DPOConfig), train_dataset=rows, processing_class=tiny_tokenizer)
        assert "ref" in tr.model.peft_config  # TRL's copy
        with torch.no_grad():
            batch = next(iter(tr.get_train_dataloader()))
            loss_with_copy = tr.compute_loss(tr.model, batch)
            prepare_adapters(tr)
            assert ("ref" in tr.model.peft_config) is not fresh, fresh
            assert tr.compute_loss(tr.model, batch).item() == pytest.approx(loss_with_copy.item(), abs=1e-6)
        params = dict(tr.model.named_parameters())
        assert all(torch.equal(params[n.replace(".default.", ".ref.")], p) for n, p in params.items()
                   if ".default." in n and not fresh)


def test_a_reward_models_too_long_error_names_the_dataset_row_and_side_past_its_scoring_chunk(
        tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """The trainer scores the rows in chunks (512): the PRM's InputTooLong counted from the chunk's start ("solution
    3" for row 515 in a user's trial), named neither side nor field, and was not the trainer's "dataset's row N"."""
    from stepdpo_lite.rewards import InputTooLong, ProcessRewardModel
    prm = ProcessRewardModel(copy.deepcopy(tiny_model), tiny_tokenizer)
    rows = toy_rows(4, labels=False)
    prm.max_length = max(prm.input_lengths([r["prompt"] for r in rows] * 2, [r[side] for side in ("chosen", "rejected")
                                                                             for r in rows]))
    rows[3]["rejected"] += rows[3]["rejected"][rows[3]["rejected"].index("\n\nStep"):]  # its steps once more
    monkeypatch.setattr("stepdpo_lite.trainer.SCORER_CHUNK", 2)  # chunks of 2 rows
    with pytest.raises(InputTooLong, match=r"^StepwiseDPOTrainer: the train dataset's row 3: field 'rejected': the "
                                           r"reward model's input \(prompt and steps\) is \d+ tokens with its tags, "
                                           r"longer than max_length \d+; .*input_lengths"):
        StepwiseDPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(rows),
                           processing_class=tiny_tokenizer, reward_model=prm)


def test_the_trainers_too_long_message_is_worded_from_the_errors_fields_not_the_prms_text(
        tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """The trainer rewrote the PRM's message ("solution 3: ..." to "row 3: field ...: ...") by replacing its first
    "solution " and ": ": any other wording of the PRM's garbled it. It reads the error's index and token counts."""
    from stepdpo_lite.rewards import InputTooLong, ProcessRewardModel
    prm = ProcessRewardModel(copy.deepcopy(tiny_model), tiny_tokenizer)
    rows = toy_rows(4, labels=False)
    limit = max(prm.input_lengths([r["prompt"] for r in rows] * 2, [r[s] for s in ("chosen", "rejected")
                                                                    for r in rows]))
    rows[3]["rejected"] += rows[3]["rejected"][rows[3]["rejected"].index("\n\nStep"):]  # its steps once more
    n_tokens = prm.input_lengths([rows[3]["prompt"]], [rows[3]["rejected"]])[0]

    def reworded(index, n):  # the same fields, other words (no "solution ", no ": ")
        if n > limit:
            raise InputTooLong(f"Input #{index} is too long ({n} > {limit} tokens)", index, n, limit)

    monkeypatch.setattr(prm, "_check_length", reworded)
    with pytest.raises(InputTooLong) as caught:
        StepwiseDPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(rows),
                           processing_class=tiny_tokenizer, reward_model=prm)
    assert str(caught.value).startswith(
        f"StepwiseDPOTrainer: the train dataset's row 3: field 'rejected': the reward model's input (prompt and steps) "
        f"is {n_tokens} tokens with its tags, longer than max_length {limit}; leave it out (the reward model's "
        "input_lengths(prompts, solutions) finds such rows)"), str(caught.value)
    # a caller that catches it reads the row from its fields too (they were dropped on the way out)
    assert (caught.value.index, caught.value.n_tokens, caught.value.max_length) == (3, n_tokens, limit)

    def no_index(index, n):  # a subclass's own InputTooLong, without the fields: its text kept, the side named
        if n > limit:
            raise InputTooLong(f"too long: {n} tokens")

    monkeypatch.setattr(prm, "_check_length", no_index)
    with pytest.raises(InputTooLong, match=rf"^field 'rejected': too long: {n_tokens} tokens$"):
        StepwiseDPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(rows),
                           processing_class=tiny_tokenizer, reward_model=prm)


def test_a_prm_whose_score_solutions_takes_keywords_is_told_to_keep_its_layout_warning_to_one_per_side(
        tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """The trainer looked for warn_layout among score_solutions' parameter names: a subclass that takes **kwargs and
    passes them on was never given it, and warned once per chunk (prm_pairs.label_samples read **kwargs right). It
    scores a side in one call now, naming it (side=) and leaving the PRM's bar to its default (progress=None: once
    scoring has taken 2 s; True drew one for a single batch). Its layout warning counts the prompts that run into
    their steps, chosen and rejected: the trainer's own check of them (a third warning) is left out then."""
    from stepdpo_lite.rewards import ProcessRewardModel
    monkeypatch.setattr("stepdpo_lite.trainer.SCORER_CHUNK", 2)
    asked = []

    class ForwardingPRM(ProcessRewardModel):
        def score_solutions(self, prompts, solutions, **kwargs):
            asked.append(kwargs)
            return super().score_solutions(prompts, solutions, **kwargs)

    rows = [dict(r, prompt=r["prompt"].rstrip("\n")) for r in toy_rows(4, labels=False)]  # every prompt runs in
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list(rows),
                           reward_model=ForwardingPRM(copy.deepcopy(tiny_model), tiny_tokenizer))
    assert asked == [{"progress": None, "side": side} for side in ("chosen", "rejected")]  # it was 2 chunks a side
    assert len([w for w in caught if "layout it was not trained on" in str(w.message)]) == 2  # one a side
    assert not [w for w in caught if "run into their responses" in str(w.message)]
    templated = config(tmp_path, use_step_wise_prompt=True, step_wise_prompt_template="Solve: {prompt}")
    with warnings.catch_warnings(record=True) as caught:  # the PRM read the prompts before the template: checked
        warnings.simplefilter("always")
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=templated, processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list(rows),
                           reward_model=ForwardingPRM(tiny_model, tiny_tokenizer))
    assert len([w for w in caught if "4 of 4 rows' prompts run into their responses" in str(w.message)]) == 1


def test_a_prms_unread_text_warning_comes_once_a_side_counting_all_rows_not_once_per_chunk(
        tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """The trainer scores its rows in chunks of 512, one score_solutions call per chunk and side: the PRM's warning of
    text its tokenizer maps to <unk> came once per chunk and side (5,000 such rows: ~20 warnings), each counting
    its own chunk's rows. 3 chunks of 2 rows stand for them: one warning a side, counting that side's rows."""
    from stepdpo_lite.rewards import ProcessRewardModel
    monkeypatch.setattr("stepdpo_lite.trainer.SCORER_CHUNK", 2)
    rows = toy_rows(5, labels=False)
    for r in rows[1:]:  # unread text in every chunk: 4 chosen and 3 rejected responses
        r["chosen"] += " ×"
    for r in rows[::2]:
        r["rejected"] += " ×"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                                train_dataset=Dataset.from_list(rows),
                                reward_model=ProcessRewardModel(copy.deepcopy(tiny_model), tiny_tokenizer))
    said = [str(w.message) for w in caught if "score_solutions" in str(w.message) and "unknown token" in str(w.message)]
    assert sorted(m.split(" hold text the tokenizer maps to its unknown token '<unk>'")[0] for m in said) == [
        "ProcessRewardModel.score_solutions (chosen side): 4 of 5 solutions (solution 1 first)",
        "ProcessRewardModel.score_solutions (rejected side): 3 of 5 solutions (solution 0 first)"], said
    assert len(tr.train_dataset["chosen_step_rewards"]) == 5  # every row scored all the same


def test_outcome_metrics_at_outcome_weight_0_are_logged_and_said_to_be_untrained(tmp_path, tiny_model,
                                                                                  tiny_tokenizer):
    """With outcome_loss_weight=0 (README's recipe) a trial read rewards/accuracies 0.33 and negative margins as a
    failing run. They stay (notebook 05 plots every run's on the same axes, as TRL names them); the help says what
    they are then."""
    help_text = {f.name: f.metadata["help"] for f in dataclasses.fields(StepwiseDPOConfig)}["outcome_loss_weight"]
    assert all(s in help_text for s in ("At 0", "loss/outcome", "rewards/*", "not trained on"))
    assert help_text in " ".join(StepwiseDPOConfig.__doc__.split())  # help() shows it
    tr = StepwiseDPOTrainer(tiny_model, args=config(tmp_path, outcome_loss_weight=0.0),
                            train_dataset=Dataset.from_list(toy_rows(2)), processing_class=tiny_tokenizer)
    with torch.no_grad():
        tr.compute_loss(tr.model, batch_of(tr, 2))
    assert {"loss/outcome", "rewards/accuracies", "rewards/margins"} <= set(tr._metrics["train"])


# ----------------------------------------------------------------------------- review of 2026-12-02, evening


class CountingPRM:
    """Log-odds −3 for every step; counts its calls."""

    def __init__(self):
        self.calls = 0

    def score_solutions(self, prompts, solutions):
        self.calls += 1
        return [[-3.0] * len(s) for s in solutions]  # s: the trainer's steps


def test_reward_columns_of_none_are_scored_and_a_prepared_dataset_is_not_reused_unscored(tmp_path, tiny_model,
                                                                                         tiny_tokenizer):
    """Reward columns of None (JSONL nulls) were taken as present: the reward model was skipped, with a warning
    that there was none. A dataset another trainer prepared without rewards was reused as it was, the reward
    model (or use_step_wise_prompt) ignored."""
    rows = [dict(r, chosen_step_rewards=None, rejected_step_rewards=None) for r in toy_rows(2, labels=False)]
    prm = CountingPRM()
    tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                            train_dataset=Dataset.from_list(rows), reward_model=prm)
    assert prm.calls == 2 and tr.train_dataset[0]["chosen_step_rewards"] == [-3.0] * 3
    plain = build(tmp_path, tiny_model, tiny_tokenizer, toy_rows(2, labels=False)).train_dataset
    for kw, words in ((dict(reward_model=CountingPRM()), "without a reward model"),
                      (dict(args=config(tmp_path, use_step_wise_prompt=True)), "without use_step_wise_prompt")):
        with pytest.raises(ValueError, match=f"prepared by a trainer {words}.*rows before preparation"):
            StepwiseDPOTrainer(copy.deepcopy(tiny_model), **{"args": config(tmp_path), **kw},
                               processing_class=tiny_tokenizer, train_dataset=plain)


def test_a_model_given_as_its_path_and_one_changed_in_memory(tmp_path, tiny_model, tiny_tokenizer):
    """A path crashed (is_peft_model on a str), though DPOTrainer takes one. A model loaded from a path and then
    changed in memory (SFT in the same session) was measured against the weights on disk: nonzero log-ratios and a
    loss off 2·log 2 before any step."""
    from transformers import AutoModelForCausalLM
    tiny_model.save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    tr = StepwiseDPOTrainer(str(tmp_path / "base"), args=config(tmp_path), processing_class=tiny_tokenizer,
                            train_dataset=Dataset.from_list(toy_rows(2)))
    assert type(tr.model).__name__ == "LlamaForCausalLM"
    changed = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(0.02 * torch.randn_like(p))
    tr = StepwiseDPOTrainer(changed, args=config(tmp_path, step_loss_weight=0.0), processing_class=tiny_tokenizer,
                            train_dataset=Dataset.from_list(toy_rows(2)))
    with torch.no_grad():
        assert tr.compute_loss(tr.model, batch_of(tr, 2)).item() == pytest.approx(np.log(2), abs=1e-6)


def test_eval_logs_no_training_total_of_truncated_steps(tmp_path, tiny_model, tiny_tokenizer):
    """eval_steps/truncated_total was the training run's count (0 before training, with 30 eval steps cut)."""
    ds = Dataset.from_list(toy_rows(2))
    n_prompt = max(len(tiny_tokenizer(r["prompt"])["input_ids"]) for r in toy_rows(2))
    tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model), train_dataset=ds,
                            eval_dataset=ds, processing_class=tiny_tokenizer,
                            args=config(tmp_path, max_length=n_prompt + 8, per_device_eval_batch_size=2))
    metrics = tr.evaluate()
    assert metrics["eval_steps/truncated"] > 0 and "eval_steps/truncated_total" not in metrics


def test_labels_go_one_per_step_written_under_max_reasoning_steps():
    """With the cap, a label list as long as the kept steps was taken for merged labels: a 3-step rejected
    solution with its first label lost ([F, F] for [T, F, F]) pushed its right first step down, without an error."""
    from stepdpo_lite.stepwise_data import per_step_values

    assert per_step_values([True, False, False], 3, 2, "rejected_step_labels", 0) == [1.0, 0.0]  # the tail merged
    with pytest.raises(ValueError, match="row 0: `rejected_step_labels` has 2 entries but the response has 3 steps"):
        per_step_values([False, False], 3, 2, "rejected_step_labels", 0)
    assert per_step_values([0.5, -1.0], 3, 2, "chosen_step_rewards", 0, "reward") == [0.5, -1.0]  # per kept step


def test_step_columns_refuses_an_unknown_pairing_or_reward_labels(tmp_path, tiny_model, tiny_tokenizer):
    """A user's trial: step_columns took pairing="first-error" (a typo) as "weighted" and reward_labels=
    "mistake-made-here" as "reachable" (p = 0.05 where 0.17 was meant), without a word; the config refused both."""
    from stepdpo_lite.stepwise_data import step_columns

    ex = build(tmp_path, tiny_model, tiny_tokenizer, toy_rows(1)).train_dataset[0]
    settings = dict(tokenizer=tiny_tokenizer, delimiter="\n\nStep", max_steps=None)
    assert step_columns(ex, 0, **settings, pairing="first_error", reward_labels="reachable")["first_diff_step"] == 1
    for name, field, value, allowed in (
            ("pairing", "step_pairing", "first-error", ("weighted", "first_error", "first_token")),
            ("reward_labels", "reward_model_labels", "mistake-made-here", ("mistake_made_here", "reachable"))):
        refusal = f"must be one of {allowed}, got {value!r}"
        with pytest.raises(ValueError, match=re.escape(f"step_columns: {name} {refusal}")):
            step_columns(ex, 0, **settings, **{name: value})
        with pytest.raises(ValueError, match=re.escape(f"{field} {refusal}")):
            config(tmp_path, **{field: value})


# ----------------------------------------------------------------------------- scripts/ddp_tiny.py, in one process


def _ddp_tiny():
    import runpy
    from pathlib import Path
    return runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "ddp_tiny.py"))


def test_ddp_tiny_script_reports_one_step_and_replaces_its_model_whole(tmp_path, monkeypatch, capsys):
    """--max-steps 1 reports that step (the script logged every second step, and its summary's first loss was an
    IndexError); a save that fails part-way leaves the previous model as it was, not half overwritten."""
    script, out = _ddp_tiny(), tmp_path / "ddp"
    args = ["--out", str(out), "--pairs", "4", "--batch-size", "2", "--max-steps", "1"]
    script["main"](args)
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["steps"] == 1 and summary["replicas_identical"]
    assert summary["first_loss"] == summary["last_loss"] and summary["last_step_accuracy"] is not None
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"model.safetensors", "stepwise_config.json"} <= set(saved)

    def crash_after_the_weights(self, output_dir=None, _internal_call=False):
        self.model.save_pretrained(output_dir)
        raise OSError("disk full")

    monkeypatch.setattr(StepwiseDPOTrainer, "save_model", crash_after_the_weights)
    with pytest.raises(OSError, match="disk full"):
        script["main"]([*args, "--learning-rate", "1e-3"])  # other weights than the saved ones
    assert {p.name: p.read_bytes() for p in out.iterdir()} == saved
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # no temporary folder left beside it


@pytest.mark.parametrize("args", [["--pairs", "0"], ["--max-steps", "0"], ["--batch-size", "-1"],
                                  ["--learning-rate", "0"], ["--out", "."]])
def test_ddp_tiny_script_refuses_bad_arguments_before_it_loads_a_model(args, monkeypatch, capsys):
    def no_model(*a, **kw):
        pytest.fail("a model was loaded before the arguments were checked")

    monkeypatch.setattr(tiny_models, "load_tiny_base", no_model)
    monkeypatch.setattr(tiny_models, "build_tiny_model", no_model)
    with pytest.raises(SystemExit) as done:
        _ddp_tiny()["main"](args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[0].lstrip("-").replace("-", "_") in message.replace("-", "_"), message


# ----------------------------------------------------------------------------- user trials on public data and search


def test_step_labels_beside_a_reward_model_warn_that_the_labels_are_the_step_labels(tmp_path, tiny_model,
                                                                                    tiny_tokenizer):
    """A user's trial: GSM8K pairs with step labels and a PRM. The labels won (the PRM's rewards only weighted the
    outcome loss), while the PRM scored every row and reward_model/weight was logged: it looked active."""
    prm = CountingPRM()
    with pytest.warns(UserWarning, match=r"the train dataset has step labels \(columns 'chosen_step_labels', "
                                         r"'rejected_step_labels'\).*rewards are not used as step labels.*drop the "
                                         "columns"):
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                                train_dataset=Dataset.from_list(toy_rows(2)), reward_model=prm)
    assert prm.calls == 2 and tr.train_dataset[0]["rejected_step_probs"] == [1.0, 0.0, 0.0]  # the labels, as said
    with warnings.catch_warnings(record=True) as caught:  # the columns dropped: the PRM labels the steps, no warning
        warnings.simplefilter("always")
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list(toy_rows(2, labels=False)), reward_model=CountingPRM())
    assert not [w for w in caught if "step labels" in str(w.message)]


def test_a_rejected_step_labelled_wrong_cut_by_max_length_warns_at_the_end_of_training(tmp_path, tiny_model,
                                                                                       tiny_tokenizer):
    """A user's trial on GSM8K pairs: max_length cut the only wrong step (the answer line) of 3 rejected solutions
    of 8. Nothing was said: the only trace was steps/truncated in the log, and the run looked normal."""
    rows = toy_rows(1)  # rejected labels [True, False, False]
    n_prompt = len(tiny_tokenizer(rows[0]["prompt"])["input_ids"])
    max_length = n_prompt + len(tiny_tokenizer(extract_steps(rows[0]["chosen"])[0])["input_ids"]) + 3  # in step 2

    def train(rows):
        tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model),
                                args=config(tmp_path, max_length=max_length, max_steps=2,
                                            per_device_train_batch_size=1), train_dataset=Dataset.from_list(rows),
                                processing_class=tiny_tokenizer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tr.train()
        return tr, [str(w.message) for w in caught if "max_length" in str(w.message)]

    tr, said = train(rows)
    assert tr.num_wrong_steps_cut == 4 and tr.num_truncated_steps == 8  # 2 steps a side cut, 2 training steps
    assert said == [f"StepwiseDPOTrainer: max_length={max_length} cut 4 rejected steps labelled wrong (p < 0.5) in "
                    "this training (counted in each batch), so the step loss never pushed them down: raise max_length"]
    tr, said = train([dict(rows[0], rejected_step_labels=[False, True, True])])  # only steps labelled right cut
    assert tr.num_wrong_steps_cut == 0 and tr.num_truncated_steps == 8 and said == []


def test_rows_max_length_cuts_are_warned_of_when_the_dataset_is_prepared(tmp_path, tiny_model, tiny_tokenizer):
    """A user's own long rows: the cut steps showed only in the logs (steps/truncated) once training ran, and the cut
    wrong steps at its end. The trainer now says at setup how many rows max_length cuts and how many of their steps
    (and rejected steps labelled wrong) the step loss loses: what training then counts, for either truncation_mode."""
    rows = toy_rows(3) + [dict(toy_rows(1)[0], chosen="\n\nStep 1: ok.", rejected="\n\nStep 1: no.",
                              chosen_step_labels=[1.0], rejected_step_labels=[0.0])]  # short: not cut
    n_prompt = len(tiny_tokenizer(rows[0]["prompt"])["input_ids"])
    max_length = n_prompt + len(tiny_tokenizer(extract_steps(rows[0]["chosen"])[0])["input_ids"]) + 3  # in step 2
    for mode in ("keep_start", "keep_end"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model),
                                    processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(rows),
                                    args=config(tmp_path, max_length=max_length, truncation_mode=mode, max_steps=1))
        said = [str(w.message) for w in caught if "cuts" in str(w.message)]
        tr.train()  # one batch of all four rows: what training counts
        assert tr.num_truncated_steps > 0 and (tr.num_wrong_steps_cut > 0) == (mode == "keep_start")
        assert said == [f"StepwiseDPOTrainer: the train dataset: max_length={max_length} (truncation_mode={mode!r}) "
                        f"cuts 3 of its 4 rows (row 0 first): {tr.num_truncated_steps} of their steps lose tokens, "
                        f"and the step loss leaves them out ({tr.num_wrong_steps_cut} rejected steps labelled wrong, "
                        "never pushed down where the pairing scores them). Raise max_length or shorten the rows."], mode
    for kw in (dict(max_length=None), dict(max_length=max(len(tiny_tokenizer(r["prompt"] + r[s])["input_ids"])
                                                           for r in rows for s in ("chosen", "rejected")) + 1)):
        assert not [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, rows, **kw) if "cuts" in m]


def _setup_warnings(tmp_path, model, tokenizer, rows, **kw):
    """The UserWarnings a trainer gives while it prepares ``rows``."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        StepwiseDPOTrainer(copy.deepcopy(model), ref_model=copy.deepcopy(model), args=config(tmp_path, **kw),
                           train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_step_dpo_setups_get_the_warnings_that_apply_to_them(tmp_path, tiny_model, tiny_tokenizer):
    """A user reproducing Step-DPO: label-free shared-prefix pairs under first_error were told the step loss
    'pushes down the whole rejected solution, as DPO does' (it scores one step); prompt-prefix rows without
    open_ended trained EOS after one step (Step-DPO's issue #18) without a word; first_error on pairs whose first
    differing rejected step is labelled right (GSM8K's: 333 of 335) pushed nothing down, without a word."""
    no_labels = toy_rows(2, error_step=1, labels=False)
    assert any("as DPO does" in m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, no_labels))
    assert not any("as DPO does" in m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, no_labels,
                                                              step_pairing="first_error"))
    row = no_labels[0]
    chosen, rejected = (extract_steps(row[s]) for s in ("chosen", "rejected"))
    prefix_form = dict(prompt=row["prompt"] + chosen[0], chosen=chosen[1], rejected=rejected[1])
    assert chosen[1].startswith("\n\nStep") and chosen[1].count("\n\nStep") == 1
    messages = _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, [prefix_form], step_pairing="first_error")
    assert [m for m in messages if "looks like Step-DPO's prompt-prefix form" in m and "open_ended" in m]
    assert not any("is one step under" in m for m in messages)  # the delimiter is right: one cause, one warning
    assert not any("prompt-prefix form" in m for m in _setup_warnings(
        tmp_path, tiny_model, tiny_tokenizer, [{**prefix_form, "open_ended": True}], step_pairing="first_error"))
    labelled = toy_rows(3, error_step=1)  # the checker's labels: the first differing rejected step is wrong
    assert not any("first differing step" in m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer,
                                                                        labelled, step_pairing="first_error"))
    all_right = [{**r, "rejected_step_labels": [True] * len(r["rejected_step_labels"])} for r in labelled]
    (message,) = [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, all_right,
                                             step_pairing="first_error") if "first differing step" in m]
    assert "in 3 of 3 pairs of the train dataset" in message and "labelled right (P >= 0.5)" in message
    # steps written "\nStep" under the default "\n\nStep": every response one step, scored whole
    other = [{k: v.replace("\n\nStep", "\nStep") for k, v in r.items()} for r in no_labels]
    (message,) = [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, other, step_pairing="first_error")
                  if "one step" in m]
    assert "every response of the train dataset is one step under step_delimiter='\\n\\nStep'" in message
    assert not any("is one step under" in m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, no_labels,
                                                                     step_pairing="first_error"))


def test_pairs_the_tokenizer_cannot_read_or_tell_apart_warn_at_setup(tmp_path, tiny_model, tiny_tokenizer):
    """A user's trial: "42 − 2" against "42 × 2" on an ASCII tokenizer, both "42 <unk> 2": the same token ids, and
    the pair trained at loss ln 2 without a word (check_row compares the texts)."""
    rows = toy_rows(3)
    rows[1] = dict(rows[1], chosen=rows[1]["chosen"] + " −", rejected=rows[1]["chosen"] + " ×",
                   rejected_step_labels=rows[1]["chosen_step_labels"])
    messages = _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, rows)
    assert ("StepwiseDPOTrainer: the train dataset: 1 of 3 rows (row 1 first) hold text the tokenizer maps to its "
            "unknown token '<unk>'") in "\n".join(messages)  # the reward side's message
    assert [m for m in messages if "the train dataset's row 1 (and 0 more) has the same token ids on both sides" in m]
    assert not [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, toy_rows(3))
                if "unknown token" in m or "same token ids" in m]


def test_rejected_labels_in_the_reachable_meaning_warn_and_mistake_labels_do_not(tmp_path, tiny_model,
                                                                                 tiny_tokenizer):
    """A user's trial: rejected labels [1, 0, 0] (every step after the slip false, as PRM data holds them) were
    trained as "mistake made here": the right steps after the slip were pushed down, without a word."""
    reachable = toy_rows(3, error_step=1)  # the checker's step_labels: [T, F, F, ...]
    (message,) = [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, reachable) if "*reachable*" in m]
    assert message.startswith("StepwiseDPOTrainer: the train dataset: 3 of 3 rejected label lists are wrong at each "
                              "step after the first wrong one") and "rewards.mistake_made_here_labels" in message
    # A second user's trial: labels of a solution that makes a mistake at every step from its first (a weak base's
    # samples) look the same; the warning told them to convert right labels, which unlabels three real mistakes.
    assert "If instead each of those steps makes a mistake of its own" in message
    mistakes = [dict(r, rejected_step_labels=mistake_made_here_labels([float(x) for x in r["rejected_step_labels"]]))
                for r in reachable]
    assert mistakes[0]["rejected_step_labels"][:3] == [1.0, 0.0, 1.0]
    assert not [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, mistakes) if "*reachable*" in m]
    last_slip = [dict(r, rejected_step_labels=[True] * (len(r["rejected_step_labels"]) - 1) + [False])
                 for r in reachable]  # a slip at the last step has no step after it to tell the meanings apart
    assert not [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, last_slip) if "*reachable*" in m]


def test_save_model_is_atomic_and_checkpoints_still_save_in_place(tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    """A user's trial: a save that failed after the weights (disk full) left new weights beside the old
    stepwise_config.json, and load_policy loaded them without a word. A fresh run beside an earlier run's
    checkpoints did not warn that a later resume would pick those."""
    out = tmp_path / "run"
    tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model),
                            processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(toy_rows(4)),
                            args=config(out, max_steps=1, save_strategy="steps", save_steps=1))
    tr.train()
    checkpoint = {p.name for p in (out / "checkpoint-1").iterdir()}
    assert {"model.safetensors", "stepwise_config.json", "trainer_state.json", "optimizer.pt"} <= checkpoint
    tr.save_model()
    saved = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {"model.safetensors", "stepwise_config.json", "README.md"} <= set(saved) and (out / "checkpoint-1").is_dir()

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    with torch.no_grad():
        next(tr.model.parameters()).add_(1.0)  # other weights than the saved ones
    monkeypatch.setattr(type(tiny_tokenizer), "save_pretrained", disk_full)  # after the weights
    with pytest.raises(OSError, match="disk full"):
        tr.save_model()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left beside it
    monkeypatch.undo()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("x")
    with pytest.raises(ValueError, match="not a saved copy"):
        tr.save_model(str(tmp_path / "notes"))
    again = StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model),
                               processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(toy_rows(4)),
                               args=config(out, max_steps=1))
    with pytest.warns(UserWarning, match=r"holds an earlier run's checkpoints: a resume would pick .*checkpoint-1"):
        again.train()


def test_save_model_keeps_the_trainers_own_files_whatever_the_order(tmp_path, tiny_model, tiny_tokenizer):
    """A user's trial (HF's usual order): save_model, then save_metrics and save_state, then save_model again deleted
    trainer_state.json and the *_results.json; save_metrics and save_state first, and save_model refused the trainer's
    own output_dir ("save: ... holds them, not a saved copy")."""
    out = tmp_path / "run"

    def trainer():
        return StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model),
                                  processing_class=tiny_tokenizer, train_dataset=Dataset.from_list(toy_rows(4)),
                                  args=config(out, max_steps=1))

    tr = trainer()
    result = tr.train()
    tr.save_metrics("train", result.metrics)
    tr.save_state()
    tr.save_model()  # was: the ValueError
    tr.save_metrics("eval", {"eval_loss": 0.5})
    tr.save_model()  # was: the files above deleted
    own = {"trainer_state.json", "train_results.json", "eval_results.json", "all_results.json", "training_args.bin"}
    assert own | {"model.safetensors", "stepwise_config.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "eval_results.json").read_text()) == {"eval_loss": 0.5}
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("x")
    with pytest.raises(ValueError, match=r"^StepwiseDPOTrainer.save_model: .*notes holds \['mine.txt'\], not a saved"):
        tr.save_model(str(tmp_path / "notes"))


def test_chat_message_rows_are_refused_with_a_fix_for_a_model_without_a_chat_template(tmp_path, tiny_model,
                                                                                     tiny_tokenizer):
    """A user's trial: the hint named only trl.apply_chat_template, which fails on a tokenizer without a template."""
    row = toy_rows(1)[0]
    chat = dict(row, **{k: [{"role": "user" if k == "prompt" else "assistant", "content": row[k]}]
                        for k in ("prompt", "chosen", "rejected")})
    assert tiny_tokenizer.chat_template is None
    with pytest.raises(ValueError, match=r"trl.apply_chat_template\), or join their contents if the model has none"):
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), args=config(tmp_path), processing_class=tiny_tokenizer,
                           train_dataset=Dataset.from_list([chat]))


def test_step_loss_is_the_hook_a_variant_overrides(tmp_path, policy_and_reference, tiny_tokenizer):
    """A user's trial: a margin variant of the step loss overrode the private _compute_loss, zeroed step_loss_weight
    during super() and ran a second policy and reference forward for ρ_k. It now overrides step_loss alone, and gets
    the ρ_k of the trainer's own pass."""
    policy, ref = policy_and_reference
    received = []

    class MarginTrainer(StepwiseDPOTrainer):
        def step_loss(self, chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                      inputs, model):
            received.append((chosen_rho, rejected_rho, chosen_p, rejected_p, chosen_mask, rejected_mask, weights,
                             inputs, model))
            margin = (chosen_rho * chosen_mask).sum(1) - (rejected_rho * rejected_mask).sum(1)
            return -F.logsigmoid(self.args.step_beta * margin - 0.5).mean()

    def trainer(cls):
        return cls(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), processing_class=tiny_tokenizer,
                   train_dataset=Dataset.from_list(toy_rows(2)),
                   args=config(tmp_path, outcome_loss_weight=0.0, step_loss_weight=2.0))

    plain, variant = trainer(StepwiseDPOTrainer), trainer(MarginTrainer)
    batch = batch_of(plain, 2)
    plain_loss, variant_loss = plain.compute_loss(plain.model, batch), variant.compute_loss(variant.model, batch)
    assert variant.args.step_loss_weight == 2.0  # the config is left alone
    chosen_rho, rejected_rho, chosen_p, _, chosen_mask, rejected_mask, weights, inputs, model = received[0]
    assert model is variant.model  # the policy being trained, for a variant that reads it
    assert chosen_rho.shape == rejected_rho.shape == chosen_p.shape == chosen_mask.shape
    assert chosen_rho.size(0) == 2 and weights.shape == chosen_rho.shape[1:] and "step_ids" in inputs
    assert chosen_mask.any() and (chosen_rho * chosen_mask).abs().sum() > 0  # the policy differs from the reference
    margin = (chosen_rho * chosen_mask).sum(1) - (rejected_rho * rejected_mask).sum(1)
    expected = -F.logsigmoid(0.1 * margin - 0.5).mean().item()
    assert variant_loss.item() == pytest.approx(2.0 * expected, rel=1e-5)
    mode = "train" if variant.model.training else "eval"
    assert variant._metrics[mode]["loss/step"][-1] == pytest.approx(expected, rel=1e-5)
    # the default hook on the same ρ_k is the plain trainer's step loss: one pass gave both the same numbers
    assert 2.0 * StepwiseDPOTrainer.step_loss(variant, *received[0]).item() == pytest.approx(plain_loss.item(),
                                                                                             rel=1e-5)


def test_a_trained_4bit_adapter_keeps_its_exact_weights_through_dpo_trainer_and_prepare_adapters(tmp_path,
                                                                                                  tiny_base_path):
    """TRL's DPOTrainer rounds a 4-bit model's adapter to bfloat16 (its QLoRA cast) after copying it into its "ref"
    adapter: prepare_adapters cast the rounded weights back to float32 and copied them into "ref" too, so a trained
    adapter (a round's start) lost its exact weights unless its caller (onpolicy.make_trainer) had kept them."""
    from stepdpo_lite.models import load_model
    from stepdpo_lite.models import prepare_adapters
    model, tok = load_model(tiny_base_path, quantization="4bit", lora=dict(r=4, lora_alpha=8), device="cpu",
                            dtype="float32")
    tok.padding_side = "right"
    with torch.no_grad():  # a trained adapter: B off zero, A and B off bfloat16's grid
        for p in (p for p in model.parameters() if p.requires_grad):
            p.add_(torch.randn_like(p, generator=torch.Generator().manual_seed(0)) * 1e-3)
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    rows = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in toy_rows(2)])
    tr = DPOTrainer(model, args=config(tmp_path, DPOConfig), train_dataset=rows, processing_class=tok)
    prepare_adapters(tr)
    params = dict(tr.model.named_parameters())
    for name, weight in trained.items():
        assert params[name].dtype == torch.float32 and torch.equal(params[name], weight), name
        assert torch.equal(params[name.replace(".default.", ".ref.")], weight), name


def test_a_run_on_a_machine_without_an_accelerator_asks_for_no_pinned_memory(tmp_path, tiny_model, tiny_tokenizer):
    """A user's trial: README's snippet on a CPU printed torch's "'pin_memory' argument is set as true but no
    accelerator is found" at every run (use_cpu unset: TrainingArguments leaves pin_memory on). Off there, as bf16."""
    args = StepwiseDPOConfig(output_dir=str(tmp_path), report_to=[], save_strategy="no", disable_tqdm=True,
                             max_steps=1, per_device_train_batch_size=2, gradient_checkpointing=False)
    assert args.dataloader_pin_memory == torch.accelerator.is_available()
    if torch.accelerator.is_available():
        pytest.skip("a machine with an accelerator pins memory as it should")
    trainer = StepwiseDPOTrainer(copy.deepcopy(tiny_model), processing_class=tiny_tokenizer, args=args,
                                 train_dataset=Dataset.from_list(toy_rows(2)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert not [str(w.message) for w in caught if "pin_memory" in str(w.message)]


@pytest.mark.parametrize("max_length", [0, -5, 2.0, "64"])
def test_a_max_length_that_is_no_positive_int_is_refused_by_the_config(tmp_path, max_length):
    """max_length=0 or -5 was taken, and failed later as "... fills max_length=-5"."""
    with pytest.raises(ValueError, match=rf"StepwiseDPOConfig: max_length must be an int >= 1 or None, got "
                                         rf"{re.escape(repr(max_length))}"):
        config(tmp_path, max_length=max_length)
    assert config(tmp_path, max_length=None).max_length is None


def test_a_prompt_that_runs_into_its_responses_is_warned_of_once_naming_the_first_row(tmp_path, tiny_model,
                                                                                     tiny_tokenizer):
    """A user's trial: '...?Step 1: ...' trained with no word, where the PRM's training and scoring warn of it."""
    rows = toy_rows(4)
    for k in (1, 3):
        rows[k]["prompt"] = rows[k]["prompt"].rstrip()
    said = [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, rows) if "run into" in m]
    assert said == ["StepwiseDPOTrainer: the train dataset: 2 of 4 rows' prompts run into their responses with no "
                    "whitespace between (row 1 first, field 'prompt'): end them with '\\n' (data.delimit_steps does) "
                    "or the model's chat template"]
    assert not [m for m in _setup_warnings(tmp_path, tiny_model, tiny_tokenizer, toy_rows(4)) if "run into" in m]


def test_the_trainers_warnings_point_at_the_users_call(tmp_path, tiny_model, tiny_tokenizer):
    """They pointed at the kit's lines (TRL's DPOTrainer prepares the datasets, torch's no_grad wraps
    get_step_rewards): a user could not tell which of their calls a warning was about."""
    rows = toy_rows(2, labels=False)
    rows[0]["prompt"] = rows[0]["prompt"].rstrip()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model), args=config(tmp_path),
                           train_dataset=Dataset.from_list(rows), processing_class=tiny_tokenizer)
        get_step_rewards(tiny_model, tiny_tokenizer, rows[1]["prompt"], rows[1]["chosen"])
    ours = {re.split("[:,(]", str(w.message))[0]: w.filename for w in caught if "StepwiseDPOTrainer" in str(w.message)
            or "get_step_rewards" in str(w.message)}
    assert set(ours) == {"StepwiseDPOTrainer", "get_step_rewards"} and set(ours.values()) == {__file__}, ours
    assert len([w for w in caught if "StepwiseDPOTrainer" in str(w.message)]) == 2  # no labels; run into


def test_the_tail_merged_by_max_reasoning_steps_keeps_its_weakest_label_and_reward():
    """max_reasoning_steps merges the tail into the last kept step; its label (and a reward) is the min of the
    merged ones (StepwiseDPOConfig.max_reasoning_steps' help): a wrong step in the tail is not lost."""
    from stepdpo_lite.stepwise_data import per_step_values

    assert per_step_values([True, True, False], 3, 2, "rejected_step_labels", 0) == [1.0, 0.0]
    assert per_step_values([1.0, 0.2, 0.9, 0.6], 4, 2, "chosen_step_labels", 0) == [1.0, 0.2]
    assert per_step_values([0.5, 2.0, -1.0], 3, 2, "chosen_step_rewards", 0, "reward") == [0.5, -1.0]


def test_step_labels_past_one_are_refused_naming_the_row_and_column():
    """A label is a probability: 1.5 (a percentage, a log-odds reward in the labels column) would weigh a chosen step
    by more than 1 and a rejected one by a negative 1 − p."""
    from stepdpo_lite.stepwise_data import per_step_values

    with pytest.raises(ValueError, match=r"row 3: `chosen_step_labels` must be bools or probabilities in \[0, 1\]"):
        per_step_values([0.5, 1.5], 2, 2, "chosen_step_labels", 3)
    with pytest.raises(ValueError, match=r"row 0: `rejected_step_labels` must be bools or probabilities in \[0, 1\]"):
        per_step_values([-0.1, 0.0], 2, 2, "rejected_step_labels", 0)


def test_first_token_only_where_one_side_is_a_token_prefix_of_the_other():
    """An open-ended side that is a token prefix of the other: the first differing token is the longer side's next
    token, at the shorter one's length; the shorter side has none."""
    from stepdpo_lite.stepwise_data import first_token_only

    ex = {"chosen_ids": [5, 6], "rejected_ids": [5, 6, 7, 8]}
    assert first_token_only(ex, 1) == {"chosen_step_ids": [-1, -1], "rejected_step_ids": [-1, -1, 1, -1]}


def _toy_row(tokenizer, prompt="Q: 2+3?\n", chosen="Step 1: 5", rejected="Step 1: 6"):
    """One row as TRL's DPOTrainer tokenizes it (EOS appended to each completion), for step_columns."""
    chosen, rejected = chosen + tokenizer.eos_token, rejected + tokenizer.eos_token
    return dict(prompt=prompt, chosen=chosen, rejected=rejected, prompt_ids=tokenizer(prompt)["input_ids"],
                chosen_ids=tokenizer(chosen)["input_ids"], rejected_ids=tokenizer(rejected)["input_ids"])


def test_a_prompt_exactly_max_length_long_is_an_error(tiny_tokenizer):
    """A prompt of max_length tokens leaves no completion token under keep_start: refused, as a longer one is;
    one token less leaves one to train."""
    from stepdpo_lite.stepwise_data import step_columns

    ex = _toy_row(tiny_tokenizer)
    n = len(ex["prompt_ids"])
    with pytest.raises(ValueError, match=f"row 0: `prompt` has {n} tokens and fills max_length={n}"):
        step_columns(ex, 0, tiny_tokenizer, DEFAULT_DELIMITER, None, max_length=n)
    assert step_columns(ex, 0, tiny_tokenizer, DEFAULT_DELIMITER, None, max_length=n + 1)["first_diff_step"] == 0


def test_a_row_exactly_as_long_as_the_models_positions_is_kept(tiny_tokenizer):
    """``context`` refuses a row longer than the model's positions; one that fills them exactly fits."""
    from stepdpo_lite.stepwise_data import step_columns

    ex = _toy_row(tiny_tokenizer)
    n = len(ex["prompt_ids"]) + max(len(ex["chosen_ids"]), len(ex["rejected_ids"]))
    assert step_columns(ex, 0, tiny_tokenizer, DEFAULT_DELIMITER, None, context=n)["first_diff_step"] == 0
    with pytest.raises(ValueError, match=f"row 0: prompt \\+ completion has {n} tokens, more than the model's {n - 1}"):
        step_columns(ex, 0, tiny_tokenizer, DEFAULT_DELIMITER, None, context=n - 1)


def test_sides_with_the_same_steps_have_no_first_differing_step(tiny_tokenizer):
    """Called directly (the trainer refuses chosen == rejected before), two sides whose steps are the same text
    differ at no step: -1, not step 0."""
    from stepdpo_lite.stepwise_data import step_columns

    ex = _toy_row(tiny_tokenizer, rejected="Step 1: 5")
    assert step_columns(ex, 0, tiny_tokenizer, DEFAULT_DELIMITER, None)["first_diff_step"] == -1


def test_only_an_appended_eos_token_is_dropped_from_an_open_ended_row():
    """A text that ends with the EOS string but whose last id is a content token keeps that token: only the EOS TRL
    appended (text and id both) is taken off."""
    from stepdpo_lite.stepwise_data import drop_appended_eos

    row = {"open_ended": True, "chosen": "ab</s>", "chosen_ids": [5, 6], "rejected": "ac</s>",
           "rejected_ids": [5, 7, 2]}
    assert drop_appended_eos(row, "</s>", 2) == {"chosen_ids": [5, 6], "chosen": "ab</s>", "rejected_ids": [5, 7],
                                                 "rejected": "ac"}
    assert drop_appended_eos({**row, "open_ended": False}, "</s>", 2) == {}


def test_first_error_pairing_keeps_the_first_differing_token_itself():
    """without_shared_start takes out the tokens before the first differing one (index t), not t itself: "= 5"
    against "= 6" is scored by the 5 and the 6."""
    from stepdpo_lite.stepwise_data import without_shared_start

    ex = {"chosen_ids": [1, 2, 3, 4, 5], "rejected_ids": [1, 2, 9, 8, 7]}  # they differ from t = 2 on
    step_ids = {"chosen": [0, 1, 1, 1, 1], "rejected": [0, 1, 1, 1, 1]}  # step 1 opens at token 1, alike
    assert without_shared_start(ex, step_ids, 1) == {"chosen_step_ids": [0, -1, 1, 1, 1],
                                                     "rejected_step_ids": [0, -1, 1, 1, 1]}
    # an open-ended side that is a token prefix of the other has no differing token to keep (was an IndexError)
    assert without_shared_start({"chosen_ids": [1, 2], "rejected_ids": [1, 2, 3]}, {"chosen": [0, 0], "rejected": [
        0, 0, 0]}, 0) == {"chosen_step_ids": [-1, -1], "rejected_step_ids": [-1, -1, 0]}


def test_the_collator_marks_only_a_responses_own_steps_valid():
    """step_valid is True for the steps a response has, False for the padding up to the widest response: a padded
    slot counted valid would enter aggregate_rewards (its 0.0 the min of a solution whose rewards are all > 0) and
    the step counts of the metrics."""
    from stepdpo_lite.stepwise_data import DataCollatorForStepwisePreference

    example = dict(prompt_ids=[1, 2], chosen_ids=[3, 4, 5], rejected_ids=[3, 6], chosen_step_ids=[0, 1, 1],
                   rejected_step_ids=[0, 0], chosen_step_probs=[1.0, 1.0], rejected_step_probs=[0.0],
                   chosen_step_rewards=[2.0, 1.0], rejected_step_rewards=[1.5], first_diff_step=0)
    batch = DataCollatorForStepwisePreference(pad_token_id=0)([example])
    assert batch["step_valid"].tolist() == [[True, True], [True, False]]
    assert batch["step_complete"].tolist() == [[True, True], [True, False]]
    assert batch["step_probs"].tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_a_trailing_line_break_is_no_step_of_its_own_beside_the_eos(tiny_tokenizer):
    """The EOS TRL appends is cut off before the steps are split: "...Step 2: 7\\n" split at "\\n" is 2 steps (the
    blank end joins step 2), not a third step "\\n<eos>" that would mismatch 2 labels; the EOS token joins step 2."""
    from stepdpo_lite.stepwise_data import step_columns

    ex = _toy_row(tiny_tokenizer, chosen="Step 1: 5\nStep 2: 7\n", rejected="Step 1: 5\nStep 2: 8\n")
    ex["chosen_step_labels"], ex["rejected_step_labels"] = [True, True], [True, False]
    out = step_columns(ex, 0, tiny_tokenizer, "\n", None)
    assert out["chosen_step_probs"] == [1.0, 1.0] and out["rejected_step_probs"] == [1.0, 0.0]
    assert out["first_diff_step"] == 1 and out["chosen_step_ids"][-1] == 1


def test_the_step_loss_averages_over_the_pairs_that_have_a_step_to_score():
    """A pair with no step scored (first_error pairing on a pair whose first differing step was cut by max_length)
    has L_step = log 2 from h = 0 and nothing to train: it is left out of the mean, not averaged in."""
    from types import SimpleNamespace
    from stepdpo_lite.losses import compute_step_loss
    from stepdpo_lite.trainer import StepwiseDPOTrainer

    rho_c, rho_r = torch.tensor([[0.5, 1.0], [2.0, -1.0]]), torch.tensor([[-0.5, 0.3], [1.0, 0.0]])
    p_c, p_r = torch.ones(2, 2), torch.zeros(2, 2)
    mask = torch.tensor([[True, True], [False, False]])  # pair 1: no step scored
    weights = torch.ones(2)
    trainer = SimpleNamespace(args=SimpleNamespace(step_beta=0.1))
    loss = StepwiseDPOTrainer.step_loss(trainer, rho_c, rho_r, p_c, p_r, mask, mask, weights, None, None)
    first = compute_step_loss(rho_c[:1], rho_r[:1], p_c[:1], p_r[:1], 0.1, mask[:1], mask[:1], weights)
    assert loss.item() == pytest.approx(first.item())


def test_truncated_steps_are_left_out_of_the_step_loss_whatever_their_labels(tmp_path, policy_and_reference,
                                                                             tiny_tokenizer):
    """test_truncated_steps_are_masked_and_counted's label check with a policy that differs from its reference: with
    an identical one every ρ_k is 0, and the loss is log 2 whatever the mask. A truncated step (cut by max_length)
    has lost tokens: scored, its partial ρ_k would move the loss by its label."""
    policy, ref = policy_and_reference
    row = toy_rows(1)[0]
    n_prompt = len(tiny_tokenizer(row["prompt"])["input_ids"])
    first_step = len(tiny_tokenizer(extract_steps(row["chosen"])[0])["input_ids"])
    tr = StepwiseDPOTrainer(policy, ref_model=ref, args=config(tmp_path, max_length=n_prompt + first_step + 3),
                            train_dataset=Dataset.from_list([row]), processing_class=tiny_tokenizer)
    b = batch_of(tr, 1)
    assert not b["step_complete"][:, 1:].any() and b["step_valid"][:, 1].all()  # step 2 cut on both sides
    b2 = dict(b, step_probs=b["step_probs"].clone())
    b2["step_probs"][:, 1:] = 0.37
    base = tr.compute_loss(tr.model, b)
    assert tr.compute_loss(tr.model, b2).item() == pytest.approx(base.item(), abs=1e-7)
    b3 = dict(b, step_probs=b["step_probs"].clone())
    b3["step_probs"][:, :1] = 0.37  # the complete first step's label does move it (the check can fail)
    assert tr.compute_loss(tr.model, b3).item() != pytest.approx(base.item(), abs=1e-7)


def test_the_outcome_weight_aggregates_each_responses_own_steps_not_the_batchs_padding(tmp_path, tiny_model,
                                                                                        tiny_tokenizer):
    """R± aggregate a response's step rewards over its own steps (step_valid): in a batch whose responses have
    different step counts, the padded slots' 0.0 would be the "min" of a response rewarded 3.0 at every step."""
    rows = [dict(prompt=r["prompt"], chosen=r["chosen"], rejected=r["rejected"],
                 chosen_step_rewards=[3.0] * len(r["chosen_step_labels"]),
                 rejected_step_rewards=[1.0] * len(r["rejected_step_labels"])) for r in toy_rows(4)]
    tr = build(tmp_path, tiny_model, tiny_tokenizer, rows, aggregation_strategy="min")
    b = batch_of(tr, 4)
    assert not b["step_valid"].all()  # the responses' step counts differ: some slots are padding
    tr.compute_loss(tr.model, b)
    assert tr._metrics["train"]["reward_model/weight"] == pytest.approx([torch.sigmoid(torch.tensor(2.0)).item()] * 4)
    # ... all of them, a step that max_length cuts too: the PRM scored it on the whole text
    last = b["step_valid"][4:].sum(1) - 1  # each rejected response's last step, rewarded -5.0 and cut
    b["step_rewards"][4:][torch.arange(4), last] = -5.0
    b["step_complete"][4:][torch.arange(4), last] = False
    tr.compute_loss(tr.model, b)
    weights = tr._metrics["train"]["reward_model/weight"][-4:]
    assert weights == pytest.approx([torch.sigmoid(torch.tensor(8.0)).item()] * 4)  # R- = -5.0, not 1.0


def test_outcome_only_loss_equals_trl_dpo_loss_at_a_beta_other_than_step_beta(tmp_path, policy_and_reference,
                                                                              tiny_tokenizer):
    """The outcome loss's β is `beta` (outcome_beta unset), not step_beta: at the defaults (both 0.1) the two read
    alike, so the comparison with TRL's DPO loss is made at beta=0.5."""
    policy, ref = policy_and_reference
    ds = Dataset.from_list(toy_rows(4))
    dpo = DPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=config(tmp_path, DPOConfig, beta=0.5),
                     train_dataset=ds, processing_class=tiny_tokenizer)
    sdpo = StepwiseDPOTrainer(copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
                              args=config(tmp_path, beta=0.5, step_beta=0.1, step_loss_weight=0.0), train_dataset=ds,
                              processing_class=tiny_tokenizer)
    loss_dpo = dpo.compute_loss(dpo.model, batch_of(dpo))
    assert sdpo.compute_loss(sdpo.model, batch_of(sdpo)).item() == pytest.approx(loss_dpo.item(), abs=1e-5)


def test_get_step_rewards_scale_with_beta(policy_and_reference, tiny_tokenizer):
    """The implicit step rewards are β·ρ_k: at β = 1 (as the other tests call it) a missing β would go unseen."""
    policy, ref = policy_and_reference
    row = toy_rows(1)[0]
    one = get_step_rewards(policy, tiny_tokenizer, row["prompt"], row["chosen"], ref_model=ref, beta=1.0)
    half = get_step_rewards(policy, tiny_tokenizer, row["prompt"], row["chosen"], ref_model=ref, beta=0.5)
    assert any(abs(x) > 1e-3 for x in one) and half == pytest.approx([0.5 * x for x in one], rel=1e-5, abs=1e-7)


def test_get_step_rewards_of_a_batch_are_each_rows_own(policy_and_reference, tiny_tokenizer):
    """A short row beside a longer one: its padding is no step of its own, nor part of its steps."""
    policy, ref = policy_and_reference
    problems = toyworld.make_problems(1, seed=1, min_ops=1, max_ops=1) + toyworld.make_problems(1, seed=1, min_ops=4)
    prompts, responses = [p.prompt for p in problems], [p.gold_solution for p in problems]
    alone = [get_step_rewards(policy, tiny_tokenizer, p, r, ref_model=ref) for p, r in zip(prompts, responses)]
    together = get_step_rewards(policy, tiny_tokenizer, prompts, responses, ref_model=ref, batch_size=2)
    assert [len(x) for x in together] == [len(x) for x in alone] == [len(extract_steps(r)) for r in responses]
    assert len(alone[0]) < len(alone[1])
    for x, y in zip(together, alone):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-5)


def test_step_weights_of_the_config_weigh_the_trainers_step_loss(tmp_path, policy_and_reference, tiny_tokenizer):
    """StepwiseDPOConfig.step_weights are the a_k of the step loss: all 0 (allowed beside an outcome loss) leave
    h = 0, so loss/step is log 2 whatever the log-ratios; ignored, it would not be."""
    policy, ref = policy_and_reference
    tr = StepwiseDPOTrainer(policy, ref_model=ref, args=config(tmp_path, step_weights=[0.0]),
                            train_dataset=Dataset.from_list(toy_rows(2)), processing_class=tiny_tokenizer)
    tr.compute_loss(tr.model, batch_of(tr, 2))
    assert tr._metrics["train"]["loss/step"][-1] == pytest.approx(math.log(2), abs=1e-6)


def test_step_accuracy_counts_read_a_label_of_at_least_one_half_as_right(tmp_path, tiny_model, tiny_tokenizer):
    """With the policy equal to its reference every ρ_k is 0, so every scored step is predicted wrong: the counts
    (tp, fp, fn, tn, truncated) then hold the scored steps labelled right as fn and those labelled wrong as tn."""
    tr = StepwiseDPOTrainer(copy.deepcopy(tiny_model), ref_model=copy.deepcopy(tiny_model), args=config(tmp_path),
                            train_dataset=Dataset.from_list(toy_rows(2)), processing_class=tiny_tokenizer)
    b = batch_of(tr, 2)
    b["step_probs"] = torch.where(b["step_probs"] == 1.0, 0.5, b["step_probs"])  # a PRM's undecided step: right
    tr.compute_loss(tr.model, b)
    label, scored = b["step_probs"] == 0.5, b["step_complete"]
    assert (label & scored).any() and (~label & scored).any()
    assert tr._step_counts["train"].tolist() == [0, 0, (label & scored).sum().item(), (~label & scored).sum().item(), 0]
    # the logged metric from the counts tp, fp, fn, tn = 3, 1, 2, 4
    tr.model.train()
    for metric, value in (("accuracy", 0.7), ("balanced_accuracy", 0.5 * (3 / 5 + 4 / 5)), ("f1", 6 / 9)):
        tr.args.step_accuracy_metric = metric
        tr._step_counts["train"] = torch.tensor([3.0, 1.0, 2.0, 4.0, 0.0])
        tr.log({})
        assert tr.state.log_history[-1]["step_accuracy" if metric == "accuracy" else f"step_{metric}"] == \
            pytest.approx(value), metric
