"""Flags that decide what is dropped or kept take True or False only: a str such as "no" is truthy, and read by its
truth value it dropped rows (skip_invalid="no" skipped invalid records instead of raising)."""

from pathlib import Path

import numpy as np
import pytest

from stepdpo_lite import data
from stepdpo_lite.checks import flag
from stepdpo_lite.tutorial import public_datasets

GSM8K = Path(__file__).resolve().parent.parent / "data" / "gsm8k" / "example_model_solutions.jsonl"
PREF = {"prompt": "p", "chosen": "a", "rejected": "b"}
STEPWISE = {"prompt": "p", "completions": ["a"], "labels": [True]}
BAD = {"prompt": "", "completions": ["a"], "labels": [True]}


def test_flag_takes_bools_and_refuses_what_truth_would_bend():
    assert flag(True, "x", "f") is True and flag(np.False_, "x", "f") is False
    for value in ("no", "False", 0, 1, None, 1.0, np.int64(1)):
        with pytest.raises(ValueError, match=r"f: x must be True or False, got "):
            flag(value, "x", "f")


@pytest.mark.parametrize("call", [
    lambda v: data.validate_stepwise([STEPWISE, BAD], skip_invalid=v),
    lambda v: data.validate_outcome([{"prompt": "p", "completion": "", "label": True}], skip_invalid=v),
    lambda v: data.validate_preference([PREF, {**PREF, "chosen": ""}], skip_invalid=v),
    lambda v: public_datasets.validate_processbench([{"problem": "p", "steps": ["a"], "label": 5}], skip_invalid=v),
    lambda v: public_datasets.load_math_shepherd([{"input": "q", "label": "q"}], skip_invalid=v),
    lambda v: public_datasets.load_gsm8k_problems([{"question": "q", "answer": "so 3"}], skip_invalid=v),
    lambda v: public_datasets.load_gsm8k_solutions([{"question": "q"}], skip_invalid=v),
    lambda v: public_datasets.load_prm800k([{"question": {}}], skip_invalid=v),
])
def test_skip_invalid_no_is_refused_not_read_as_true(call):
    with pytest.raises(ValueError, match="skip_invalid must be True or False, got 'no'"):
        call("no")
    with pytest.raises(ValueError, match="record 0|line 1|record 1"):  # False: the invalid record raises
        call(False)


def test_drop_duplicates_must_be_a_bool():
    with pytest.raises(ValueError, match="preference: drop_duplicates must be True or False, got 'no'"):
        data.validate_preference([PREF, PREF], drop_duplicates="no")  # dropped the repeat
    assert len(data.validate_preference([PREF, PREF], drop_duplicates=np.True_)) == 1


@pytest.mark.parametrize("kw", [dict(neutral_as="no"), dict(neutral_as=1), dict(branches="no"), dict(branches=None)])
def test_prm800k_flags_must_be_bools(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"load_prm800k: {name} must be True or False"):
        public_datasets.load_prm800k([], **kw)


@pytest.mark.parametrize("kw, message", [
    (dict(step_labels="no"), "step_labels must be True or False, got 'no'"),  # gave step labels
    (dict(seed=True), "seed must be an int >= 0, got True"),  # hashed as "True", apart from seed 1
    (dict(seed=1.0), "seed must be an int >= 0, got 1.0"),
])
def test_gsm8k_pairs_flags_and_seed_are_checked(kw, message):
    with pytest.raises(ValueError, match=f"gsm8k_preference_pairs: {message}"):
        public_datasets.gsm8k_preference_pairs(GSM8K, **kw)


def test_to_trl_dpo_refuses_a_keep_step_columns_that_is_no_bool():
    from stepdpo_lite.data import to_trl_dpo, validate_preference
    rows = validate_preference([{"prompt": "Q: 1 + 1?\n", "chosen": "Step 1: 1 + 1 = 2\nAnswer: 2",
                                 "rejected": "Step 1: 1 + 1 = 3\nAnswer: 3", "chosen_step_labels": [True, True],
                                 "rejected_step_labels": [False, False]}])
    assert "chosen_step_labels" not in to_trl_dpo(rows).column_names
    with pytest.raises(ValueError, match="to_trl_dpo: keep_step_columns must be True or False"):
        to_trl_dpo(rows, keep_step_columns="no")  # a str is truthy: the step labels were kept
