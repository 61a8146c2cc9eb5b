"""The public-dataset loaders against the layouts they read (stepdpo_lite/tutorial/public_datasets.py).

The shipped samples' general checks are in tests/test_data.py; these are the cases each loader got wrong before.
"""

import json
import logging
import re
import warnings
from pathlib import Path

import pytest

from stepdpo_lite import data
from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import public_datasets

DATA = Path(__file__).resolve().parent.parent / "data"
PRM800K = DATA / "prm800k" / "sample.jsonl"
GSM8K = DATA / "gsm8k" / "example_model_solutions.jsonl"
PROCESSBENCH = DATA / "processbench" / "sample.jsonl"


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
def test_math_shepherd_refuses_a_question_that_holds_a_step_mark(question, caplog):
    """The first "[Ss]tep 1:" was taken as the end of the question: the question was cut short and its end given to
    step 1, with step 1's label, silently."""
    row = _shepherd(question, ["Step 1: 2 + 3 = <<2+3=5>>5", "Step 2: The answer is: 5"], "+-")
    with pytest.raises(ValueError, match=r"math_shepherd: record 0: field 'input': has 2 step marks .* cannot tell "
                                         r"which one ends the question"):
        public_datasets.load_math_shepherd([row])
    with caplog.at_level(logging.WARNING):
        assert len(public_datasets.load_math_shepherd([row], skip_invalid=True)) == 0  # skipped and counted
    assert "math_shepherd: skipped 1 invalid records" in caplog.text


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


def _figures_quoted(text: str) -> str:
    """``text`` on one line, without markdown's and reST's code marks, so a quote may wrap."""
    return " ".join(text.replace("`", "").split())


def _run_doc_blocks(path: Path, marker: str, capsys) -> list[tuple[str, str]]:
    """(what each ``print`` of the doc's python blocks holding ``marker`` printed, what its ``# ...`` comment says
    it prints: the text before a colon), run from the repo root as the doc's relative paths read."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", path.read_text(), re.S) if marker in b]
    assert blocks, f"{path}: no python block with {marker!r}"
    said, printed = [], []
    for block in blocks:
        exec(compile(block, str(path), "exec"), {})
        printed += capsys.readouterr().out.splitlines()
        said += [line.split("# ", 1)[1].split(":")[0].strip() for line in block.splitlines() if
                 line.startswith("print(")]
    return list(zip(printed, said, strict=True))


def test_gsm8k_step_labels_rarely_locate_the_mistake_and_the_docs_say_so(monkeypatch, capsys):
    """A user took the pairs' step labels at face value: the calculator finds a wrong line in few incorrect
    solutions, so nearly every pair blames only the answer line. The docs (data/README.md, docs/formats.md, the
    builders' docstrings) now say so with the figures, which are measured here from data/gsm8k."""
    wrong = [r["step_labels"] for r in public_datasets.load_gsm8k_solutions(GSM8K) if not r["label"]]
    found = sum(not all(labels) for labels in wrong)
    only_answer = set()
    for how in public_datasets.REJECTED_LABELS:
        pairs = public_datasets.gsm8k_preference_pairs(GSM8K, rejected_labels=how)
        only_answer.add(sum(x.count(False) == 1 and not x[-1] for x in pairs["rejected_step_labels"]))
    assert len(only_answer) == 1  # the docs say "with either rejected_labels"
    solutions = f"{found} of the {len(wrong)} incorrect solutions"
    blamed = f"{only_answer.pop()} of the {len(pairs)} pairs the answer line is the rejected solution's only"
    assert (solutions, blamed) == ("16 of the 505 incorrect solutions", "331 of the 335 pairs the answer line is "
                                                                       "the rejected solution's only")
    for where, text in [("data/README.md", (DATA / "README.md").read_text()),
                        ("docs/formats.md", (DATA.parent / "docs" / "formats.md").read_text()),
                        ("gsm8k_preference_pairs", public_datasets.gsm8k_preference_pairs.__doc__)]:
        assert solutions in _figures_quoted(text) and blamed in _figures_quoted(text), where
        assert "step_labels=False" in text and "labelling.mc_step_labels" in text, where  # what to use instead
    assert solutions in _figures_quoted(public_datasets.gsm8k_stepwise_rows.__doc__)
    monkeypatch.chdir(DATA.parent)
    for doc in (DATA / "README.md", DATA.parent / "docs" / "formats.md"):
        for printed, said in _run_doc_blocks(doc, "load_gsm8k_solutions(f)", capsys):
            assert printed == said, doc


def test_gsm8k_stepwise_rows_are_what_a_prm_trains_on(caplog):
    """GSM8K's outcome rows with step labels could not become PRM training rows with the kit."""
    solutions = public_datasets.load_gsm8k_solutions(GSM8K)
    rows = public_datasets.gsm8k_stepwise_rows(GSM8K)
    assert rows.column_names == ["prompt", "completions", "labels"] and len(rows) == len(solutions) == 800
    assert data.validate_stepwise(rows).to_list() == rows.to_list()
    for row, solution in zip(rows, solutions):  # the text splits back into its steps at the PRM's "\n"
        assert "".join(row["completions"]) == solution["completion"]
        assert extract_steps(solution["completion"], "\n") == row["completions"]
        assert row["labels"] == public_datasets.process_labels(solution["step_labels"], solution["label"])
    assert public_datasets.gsm8k_stepwise_rows(solutions).to_list() == rows.to_list()
    slip = rows[[k for k, r in enumerate(rows) if "<<45*(1/2)=21>>21 pounds" in "".join(r["completions"])][0]]
    assert slip["labels"] == [True, False, False, False, False]  # reachable: every line after the slip
    outcome = solutions.to_list()[:4]
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        twice = public_datasets.gsm8k_stepwise_rows([*outcome, outcome[0]])
    assert len(twice) == 4 and "1 solutions repeat another solver's text" in caplog.text
    bad = {**outcome[1], "step_labels": [True]}
    with pytest.raises(ValueError, match=r"gsm8k_stepwise_rows: record 1: field 'step_labels'"):
        public_datasets.gsm8k_stepwise_rows([outcome[0], bad])
    assert len(public_datasets.gsm8k_stepwise_rows([outcome[0], bad], skip_invalid=True)) == 1


def test_gsm8k_rows_say_a_repeated_text_labelled_otherwise_took_the_first_copys_labels():
    """Two outcome rows of one text for one problem, labelled apart: the first copy's labels were used, and the log
    said only that the text repeated (labelling.preference_pairs counts such texts as labelled two ways)."""
    outcome = public_datasets.load_gsm8k_solutions(GSM8K).to_list()[:4]
    flipped = {**outcome[0], "label": not outcome[0]["label"]}
    with pytest.warns(UserWarning, match=r"gsm8k_preference_pairs: 1 solutions repeat a text of the same problem "
                                         r"with other labels .*the first copy's labels were used"):
        public_datasets.gsm8k_preference_pairs([*outcome, flipped])
    relined = {**outcome[0], "step_labels": [not y for y in outcome[0]["step_labels"]]}
    with pytest.warns(UserWarning, match=r"gsm8k_stepwise_rows: 1 solutions repeat a text"):
        public_datasets.gsm8k_stepwise_rows([*outcome, relined])
    with warnings.catch_warnings():  # without step labels, the line labels are not used: nothing to say
        warnings.simplefilter("error")
        public_datasets.gsm8k_preference_pairs([*outcome, relined], step_labels=False)
        public_datasets.gsm8k_preference_pairs([*outcome, outcome[0]])  # a copy labelled alike: the log's alone


def test_gsm8k_pairs_warn_when_no_problem_has_a_right_and_a_wrong_solution(caplog):
    records = [json.loads(line) for line in GSM8K.read_text().splitlines()[:3]]
    right_only = [{k: ({**v, "is_correct": True} if isinstance(v, dict) and "is_correct" in v else v)
                   for k, v in r.items()} for r in records]
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        assert len(public_datasets.gsm8k_preference_pairs(right_only)) == 0
    assert "gsm8k_preference_pairs: 0 pairs from 3 problems; no pair from 0 problems without a right solution and 3 " \
           "without a wrong one" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        assert len(public_datasets.gsm8k_preference_pairs(records))
    assert "gsm8k_preference_pairs" not in caplog.text  # pairs built: the count stays at INFO


def test_gsm8k_pairs_skip_invalid_records_as_load_gsm8k_solutions_does(caplog):
    records = [json.loads(line) for line in GSM8K.read_text().splitlines()[:3]]
    broken = {**records[1], "6b_finetuning": {"solution": "x"}}
    with pytest.raises(ValueError, match=r"gsm8k_preference_pairs: record 1: field '6b_finetuning.is_correct'"):
        public_datasets.gsm8k_preference_pairs([records[0], broken, records[2]])
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        kept = public_datasets.gsm8k_preference_pairs([records[0], broken, records[2]], skip_invalid=True)
    assert kept.to_list() == public_datasets.gsm8k_preference_pairs([records[0], records[2]]).to_list()
    assert "gsm8k_preference_pairs: skipped 1 invalid records" in caplog.text


# ----------------------------------------------------------------------------- PRM800K and ProcessBench repeats, blanks

def _prm800k_record(*texts_ratings_chosen) -> dict:
    return {"question": {"problem": "What is 2 + 2?"}, "label": {"steps": [
        {"completions": [{"text": t, "rating": r} for t, r in options], "chosen_completion": chosen,
         "human_completion": None} for options, chosen in texts_ratings_chosen]}}


@pytest.mark.parametrize("steps, branches, field", [
    ([([("2 + 2", 1)], 0), ([("", 1)], 0)], False, "label.steps[1].completions[0].text"),  # the chosen step
    ([([("2 + 2", 1)], 0), ([("4", 1), (" ", -1)], 0)], True, "label.steps[1].completions[1].text"),  # a branch
    ([([("2 + 2", 1)], 0), ([("\n", -1)], None)], False, "label.steps[1].completions[0].text"),  # the first -1
])
def test_prm800k_blank_step_names_the_records_field(steps, branches, field):
    """It named the converted row's 'completions[1]' and showed '\\n', neither in the file (where completions[1] is
    a step's second alternative)."""
    with pytest.raises(ValueError, match=re.escape(f"prm800k: record 0: field '{field}': is empty")):
        public_datasets.load_prm800k([_prm800k_record(*steps)], branches=branches)


def test_prm800k_blank_alternative_no_row_takes_still_loads():
    record = _prm800k_record(([("2 + 2", 1)], 0), ([("= 4", 1), ("", None)], 0))
    assert public_datasets.load_prm800k([record], branches=True)["completions"] == [["2 + 2", "\n= 4"]]


def test_prm800k_chosen_completion_one_past_the_last_names_the_field():
    """One past the last completion raised a bare IndexError, unseen: test_data.py's case (5) is far past."""
    record = _prm800k_record(([("2 + 2", 1)], 0), ([("= 4", 1)], 1))  # index 1 of one completion
    with pytest.raises(ValueError, match=re.escape("prm800k: record 0: field 'label.steps[1].chosen_completion': "
                                                   "must be null or an index into completions, got 1")):
        public_datasets.load_prm800k([record])


def test_prm800k_repeats_are_counted_or_dropped(caplog):
    """Repeated rows were kept silently, weighing twice in training; the sample's branches repeat 2 of 163."""
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        branched = public_datasets.load_prm800k(PRM800K, branches=True)
    assert len(branched) == 163 and "prm800k: 2 rows repeat an earlier row's prompt, completions, labels" in caplog.text
    assert "2 of the sample's 163 branches=True rows" in _figures_quoted(public_datasets.load_prm800k.__doc__)
    assert "2 of the sample's 163 branches=True rows" in _figures_quoted((DATA.parent / "docs" / "formats.md")
                                                                         .read_text())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        dropped = public_datasets.load_prm800k(PRM800K, branches=True, drop_duplicates=True)
    assert len(dropped) == 161 and "prm800k: dropped 2 duplicate rows" in caplog.text
    assert {json.dumps(r, sort_keys=True) for r in dropped} == {json.dumps(r, sort_keys=True) for r in branched}
    record = json.loads(PRM800K.read_text().splitlines()[3])
    assert len(public_datasets.load_prm800k([record, record])) == 2
    assert len(public_datasets.load_prm800k([record, record], drop_duplicates=True)) == 1
    with pytest.raises(ValueError, match="prm800k: drop_duplicates must be True or False"):
        public_datasets.load_prm800k([record], drop_duplicates="no")


def test_processbench_repeats_are_counted_or_dropped(tmp_path, caplog):
    rows = [json.loads(line) for line in PROCESSBENCH.read_text().splitlines()[:3]]
    path = tmp_path / "pb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, rows[1]]))
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        assert len(public_datasets.load_processbench(path)) == 4  # kept: a repeat counts twice in an evaluation
    assert "processbench: 1 rows repeat an earlier row's problem, steps, label" in caplog.text
    assert public_datasets.load_processbench(path, drop_duplicates=True).to_list() == rows
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        public_datasets.load_processbench(PROCESSBENCH)
    assert "repeat" not in caplog.text


# ----------------------------------------------------------------------------- ProcessBench step labels

def test_processbench_step_labels_are_reachable():
    row = {"problem": "p", "steps": ["a", "b", "c"], "label": 1}
    assert public_datasets.processbench_step_labels(row) == [True, False, False]
    assert public_datasets.processbench_step_labels({**row, "label": 0}) == [False, False, False]
    assert public_datasets.processbench_step_labels({**row, "label": -1}) == [True, True, True]
    for sample in public_datasets.load_processbench(PROCESSBENCH):  # docs/formats.md's formula
        assert public_datasets.processbench_step_labels(sample) == [
            k < sample["label"] or sample["label"] == -1 for k in range(len(sample["steps"]))]
    with pytest.raises(ValueError, match=r"processbench_step_labels: row: field 'label': must be -1 or a step index "
                                         r"0\.\.2, got 3"):
        public_datasets.processbench_step_labels({**row, "label": 3})
    with pytest.raises(ValueError, match=r"processbench_step_labels: row: field 'steps': is missing"):
        public_datasets.processbench_step_labels({"problem": "p", "label": -1})


def test_processbench_stepwise_rows_are_laid_out_as_delimit_steps_lays_out_training_rows():
    """A user's trial wrote this conversion by hand to score and evaluate a PRM on ProcessBench."""
    samples = public_datasets.load_processbench(PROCESSBENCH)
    by_hand = [data.delimit_steps({"prompt": r["problem"], "completions": r["steps"],
                                   "labels": public_datasets.processbench_step_labels(r)}, "\n") for r in samples]
    rows = public_datasets.processbench_stepwise_rows(PROCESSBENCH)
    assert rows.column_names == ["prompt", "completions", "labels"] and rows.to_list() == by_hand
    assert public_datasets.processbench_stepwise_rows(samples).to_list() == by_hand  # the loaded Dataset too
    assert data.validate_stepwise(rows, delimiter="\n").to_list() == by_hand
    for row, sample in zip(rows, samples):
        assert row["prompt"] == sample["problem"] + "\n" and "".join(row["completions"]) == "\n".join(sample["steps"])
    two = public_datasets.processbench_stepwise_rows(samples.select([0]), delimiter="\n\n")[0]
    assert all(s.startswith("\n\n") for s in two["completions"][1:]) and two["prompt"].endswith("?\n")
    records = [json.loads(line) for line in PROCESSBENCH.read_text().splitlines()[:3]]
    bad = [records[0], {**records[1], "label": len(records[1]["steps"])}, records[2]]
    with pytest.raises(ValueError, match=r"processbench_stepwise_rows: record 1: field 'label': must be -1 or a step "
                                         r"index"):
        public_datasets.processbench_stepwise_rows(bad)
    assert len(public_datasets.processbench_stepwise_rows(bad, skip_invalid=True)) == 2
    with pytest.raises(ValueError, match="processbench_stepwise_rows: delimiter must be a non-empty string"):
        public_datasets.processbench_stepwise_rows(records, delimiter="")

def test_a_math_shepherd_tag_left_in_the_label_is_quoted_whole():
    """A user's trial: a label with 'ки' left in a tag's place was quoted as 'к'."""
    row = _shepherd("How many pens?", ["Step 1: 3 * 4 = <<3*4=12>>12 pens.", "Step 2: The answer is: 12"], "+")
    with pytest.raises(ValueError, match=re.escape("field 'label': has 'ки' where 'input' has step tag 2 ('ки'); "
                                                   "expected '+' or '-'")):
        public_datasets.load_math_shepherd([row])


def test_the_loaders_prompts_run_into_step_one_and_delimit_steps_separates_them():
    """The loaders keep the published prompt with no separator (training warns; the docstrings say how to add one)."""
    row = _shepherd("How many pens?", ["Step 1: 3 * 4 = <<3*4=12>>12 pens.", "Step 2: The answer is: 12"], "++")
    got = public_datasets.load_math_shepherd([row])[0]
    assert data.prompt_runs_into(got["prompt"], got["completions"][0])
    fixed = data.delimit_steps(got, "\n")
    assert fixed == {**got, "prompt": "How many pens?\n"}  # its steps 2..K open with "\n" already
    for loader in (public_datasets.load_prm800k, public_datasets.load_math_shepherd):
        assert "data.delimit_steps(r, " in loader.__doc__ and "no separator after it" in loader.__doc__


def test_calculator_check_says_unchecked_and_the_loaders_count_it(caplog):
    """A style review: an annotation the calculator cannot evaluate was a right line, silently."""
    assert public_datasets.calculator_check("3 pens at x each: <<x*3=7>>7") is None
    assert public_datasets.calculator_check("<<10**400=7>>7") is None
    assert public_datasets.calculator_check("<<x*3=7>>7 and <<2+2=5>>5") is False  # a slip found wins
    assert public_datasets.calculator_check("<<x*3=7>>7 and <<2+2=4>>4") is None
    record = {"question": "How many pens?", **{s: {"solution": "3 * x = <<3*x=12>>12\nThe answer is 12",
                                                     "is_correct": False} for s in public_datasets.GSM8K_SOLVERS}}
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        rows = public_datasets.load_gsm8k_solutions([record])
    assert rows[0]["step_labels"] == [True, True]  # as a line with no annotation: unverified
    assert ("gsm8k: 4 lines hold a calculator annotation that cannot be evaluated (the first: '3 * x = <<3*x=12>>12')"
            in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        public_datasets.gsm8k_stepwise_rows([record])
    assert "gsm8k_stepwise_rows: 4 lines hold a calculator annotation that cannot be evaluated" in caplog.text


def test_gsm8k_pairs_log_the_problems_that_give_no_pair(caplog):
    """A problem whose solutions are all right, or all wrong, gives no pair: the log counts them, as
    labelling.preference_pairs counts prompts without a right or a wrong solution."""
    records = public_datasets.load_gsm8k_solutions(GSM8K).to_list()
    one = records[0]["prompt"]
    rows = [r for r in records if r["prompt"] == one]
    assert {r["label"] for r in rows} == {True, False}, "the first problem has right and wrong solutions"
    only_right = [{**r, "prompt": "Only right?\n"} for r in rows if r["label"]]
    with caplog.at_level(logging.INFO, logger="stepdpo_lite.data"):
        pairs = public_datasets.gsm8k_preference_pairs(rows + only_right, step_labels=False)
    assert len(pairs) == sum(r["label"] for r in rows) * sum(not r["label"] for r in rows)
    assert "from 2 problems; no pair from 0 problems without a right solution and 1 without a wrong one" in caplog.text


def test_prm800k_blank_human_completion_names_the_records_field():
    record = _prm800k_record(([("2 + 2", 1)], 0), ([("= 5", -1)], None))
    record["label"]["steps"][1]["human_completion"] = {"text": " ", "rating": None}
    with pytest.raises(ValueError, match=re.escape("prm800k: record 0: field 'label.steps[1].human_completion.text': "
                                                   "is empty")):
        public_datasets.load_prm800k([record])


def test_math_shepherd_refuses_a_row_without_a_step_tag_or_with_text_after_the_last():
    with pytest.raises(ValueError, match="field 'input': has no step tag 'ки'"):
        public_datasets.load_math_shepherd([{"input": "Q? Step 1: a", "label": "Q? Step 1: a"}])
    row = _shepherd("Q?", ["Step 1: a", "Step 2: b"], "++")
    with pytest.raises(ValueError, match="field 'input': has text after the last step tag"):
        public_datasets.load_math_shepherd([{"input": row["input"] + " c", "label": row["label"] + " c"}])


@pytest.mark.parametrize("line, ok", [
    ("7 % 3 = <<7%3=1>>1", True),  # a remainder, not a floor division
    ("2 ** 100 = <<2**100=1267650600228229401496703205376>>1267650600228229401496703205376", True),
    ("<<2*1,0000=20000>>20000", None),  # a comma that groups no thousands: not arithmetic
    ("5 / 0 = <<5/0=1>>1", None),  # a division by zero: unchecked, not an error out of the check
    ("2 * 3 = <<2*3=6.01>>6.01", False),  # a small miss is one
    ("<<1/3=1/2>>", False),  # a fraction is exact
    ("2/3 = <<2/3=0.66>>0.66", True),  # cut to two decimals
    ("<<-29/100=-0.29>>-0.28", False),  # a copy slip on a negative number, not a cut of float noise
    ("35000/2 = <<35000/2=17500>>17 500 kg", True),  # thousands grouped with a space
    ("<<2*3=6>>6 500-gram bags", True),  # 6, then 500-gram
    ("2*3 = <<2*3=6>>$7", False),  # a copy error after a dollar sign
])
def test_calculator_check_reads_the_arithmetic_and_the_number_after(line, ok):
    assert public_datasets.calculator_check(line) is ok


def test_gsm8k_pairs_label_a_chosen_solutions_lines_reachable():
    """A right answer after a calculator slip: every line from the slip on is unreachable in the chosen labels."""
    rows = [{"prompt": "Q?", "completion": "a\nb\nc", "label": True, "step_labels": [True, False, True]},
            {"prompt": "Q?", "completion": "d\ne", "label": False, "step_labels": [True, True]}]
    pairs = public_datasets.gsm8k_preference_pairs(rows)
    assert pairs["chosen_step_labels"] == [[True, False, False]]


def test_processbench_refuses_a_label_that_is_a_bool():
    """True == 1: a bool label would pass as the index of step 1."""
    with pytest.raises(ValueError, match=r"processbench_step_labels: row: field 'label': must be -1 or a step index"):
        public_datasets.processbench_step_labels({"problem": "p", "steps": ["a", "b"], "label": True})


def test_gsm8k_pairs_check_an_outcome_row_without_a_prompt_as_one():
    with pytest.raises(ValueError, match="field 'prompt'"):
        public_datasets.gsm8k_preference_pairs([{"completion": "a", "label": True, "step_labels": [True]}])
