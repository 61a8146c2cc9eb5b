"""The public-dataset loaders against the layouts they read (stepdpo_lite/tutorial/public_datasets.py).

The shipped samples' general checks are in tests/test_data.py; these are the cases each loader got wrong before.
"""

import json
from pathlib import Path

import pytest

from stepdpo_lite.tutorial import public_datasets

DATA = Path(__file__).resolve().parent.parent / "data"
PRM800K = DATA / "prm800k" / "sample.jsonl"
GSM8K = DATA / "gsm8k" / "example_model_solutions.jsonl"


def _shepherd(question: str, steps: list[str], signs: str) -> dict:
    """A Math-Shepherd row in its published layout: ``question Step 1: ... ки\\nStep 2: ... ки``."""
    body = " ки\n".join(steps) + " ки"
    label = body
    for sign in signs:
        label = label.replace("ки", sign, 1)
    return {"input": f"{question} {body}", "label": f"{question} {label}", "task": "GSM8K"}


# ----------------------------------------------------------------------------- Math-Shepherd

def test_math_shepherd_reads_a_lowercase_step_mark_as_the_end_of_the_question():
    steps = ["step 1: 3 + 2 = <<3+2=5>>5", "Step 2: The answer is: 5"]
    row = _shepherd("Tom has 3 apples and buys 2. How many now?", steps, "++")
    got = public_datasets.load_math_shepherd([row])[0]
    assert got["prompt"] == "Tom has 3 apples and buys 2. How many now?"
    assert got["completions"] == ["step 1: 3 + 2 = <<3+2=5>>5", "\nStep 2: The answer is: 5"]


@pytest.mark.parametrize("question", [
    "A recipe says step 1: mix 2 cups, then 3 more. How many cups?",  # the prompt was 'A recipe says'
    "Step 1: of the plan costs $4 and step 2 costs $5. What is the total?",
])
def test_math_shepherd_refuses_a_question_that_holds_a_step_mark(question):
    """The first "[Ss]tep 1:" was taken as the end of the question: the question was cut short and its end given to
    step 1, with step 1's label, silently."""
    row = _shepherd(question, ["Step 1: 2 + 3 = <<2+3=5>>5", "Step 2: The answer is: 5"], "+-")
    with pytest.raises(ValueError, match=r"math_shepherd: record 0: field 'input': has 2 step marks .* cannot tell "
                                         r"which one ends the question"):
        public_datasets.load_math_shepherd([row])
    assert len(public_datasets.load_math_shepherd([row], skip_invalid=True)) == 0  # skipped and counted


def test_math_shepherd_step_mark_is_a_word():
    """"Footstep 1:" in a question is no step mark (it was one: the question was cut inside the word)."""
    question = "Footstep 1: is 30 cm and footstep 2: is 40 cm. How far in all?"
    row = _shepherd(question, ["Step 1: 30 + 40 = <<30+40=70>>70", "Step 2: The answer is: 70"], "++")
    got = public_datasets.load_math_shepherd([row])[0]
    assert got["prompt"] == question and got["completions"][0] == "Step 1: 30 + 40 = <<30+40=70>>70"


# ----------------------------------------------------------------------------- PRM800K

def test_prm800k_steps_with_lines_stay_one_step_each():
    """Not a defect, kept so: a step holding "\\n" (a displayed equation) is one step with its one rating; the rows
    hold lists of steps, and nothing splits them at "\\n" again (10 of the 12 sample records' texts would split)."""
    records = [json.loads(line) for line in PRM800K.read_text().splitlines()]
    ds = public_datasets.load_prm800k(PRM800K)
    row, steps = ds[10], records[10]["label"]["steps"]
    assert len(row["completions"]) == len(row["labels"]) == 26
    multi = [k for k, c in enumerate(row["completions"]) if "\n" in c[1:]]
    assert multi == [7, 8, 14, 15, 20, 21]
    for k in multi:
        step = steps[k]
        assert row["completions"][k] == "\n" + step["completions"][step["chosen_completion"]]["text"]


# ----------------------------------------------------------------------------- GSM8K

@pytest.mark.parametrize("line, ok", [
    # real lines (example_model_solutions.jsonl): the calculator showed float noise and the model cut it
    ("The total cost is 4.20+9.45+1.35 = $<<4.20+9.45+1.35=14.999999999999998>>14.99", True),
    ("$0.333333333333/flower * 18 flowers = $<<0.333333333333*18=5.999999999994>>5.99", True),
    ("0.5-0.4 = <<0.5-0.4=0.09999999999999998>>0.5", False),  # a real copy slip stays one
    ("<<130000*.15=19500.0>>195,000", False),
])
def test_calculator_check_cuts_the_text_the_calculator_showed(line, ok):
    """14.999999999999998 cut to 14.99 was a copy error: the float times 100 plus the 1e-9 nudge is 1500."""
    assert public_datasets.calculator_check(line) is ok


def test_mistake_labels_keep_a_right_line_after_a_slip():
    assert public_datasets.mistake_labels([True, False, True, True], correct=False) == [True, False, True, True]
    assert public_datasets.mistake_labels([True, False, True, False], correct=False) == [True, False, True, False]
    assert public_datasets.mistake_labels([True, True, True], correct=False) == [True, True, False]
    assert public_datasets.mistake_labels([True, True], correct=True) == [True, True]
    with pytest.raises(ValueError, match=r"mistake_labels: correct must be a bool, got None"):
        public_datasets.mistake_labels([True], None)
    with pytest.raises(ValueError, match=r"mistake_labels: line_labels\[1\] must be a bool or 0/1, got None"):
        public_datasets.mistake_labels([True, None], False)


def test_gsm8k_pairs_push_down_the_slip_not_the_lines_that_build_on_it():
    """A real wrong solution in data/gsm8k: two slips (15 / (1/4) = 45, 45 * (1/2) = 21), then 21 - 15 = 6 computed
    right on the wrong number, and the answer line. The rejected labels were reachable (every later line wrong),
    where Stepwise DPO's step loss reads "mistake made here" (docs/formats.md), as the toy builders give it."""
    pairs = public_datasets.gsm8k_preference_pairs(GSM8K)
    reach = public_datasets.gsm8k_preference_pairs(GSM8K, rejected_labels="reachability")
    assert pairs["rejected"] == reach["rejected"] and pairs["chosen_step_labels"] == reach["chosen_step_labels"]
    slipped = [k for k, r in enumerate(pairs) if "<<45*(1/2)=21>>21 pounds" in r["rejected"]]
    assert len(slipped) == 1
    assert pairs[slipped[0]]["rejected_step_labels"] == [True, False, False, True, True]
    assert reach[slipped[0]]["rejected_step_labels"] == [True, False, False, False, False]
    assert sum(a != b for a, b in zip(pairs["rejected_step_labels"], reach["rejected_step_labels"])) == 4


@pytest.mark.parametrize("value", ["mistake", None, ["mistakes"]])
def test_gsm8k_pairs_refuse_an_unknown_rejected_labels(value):
    with pytest.raises(ValueError, match=r"gsm8k_preference_pairs: rejected_labels must be one of \['mistakes', "
                                         r"'reachability'\]"):
        public_datasets.gsm8k_preference_pairs(GSM8K, rejected_labels=value)
