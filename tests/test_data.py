"""Data formats, loaders, validation, toy builders and Monte-Carlo labelling (stepdpo_lite.data / .labelling).

Real samples are read from data/ (never from outside the repository); bad inputs are written to tmp_path.
"""

import json
import logging
import random
import re
from pathlib import Path

import datasets
import pytest

from stepdpo_lite import data
from stepdpo_lite.tutorial import labelling, public_datasets, toyworld
from stepdpo_lite.tutorial.task_problems import Verdict
from stepdpo_lite.steps import extract_steps

DATA = Path(__file__).resolve().parent.parent / "data"
PRM800K = DATA / "prm800k" / "sample.jsonl"
PROCESSBENCH = DATA / "processbench" / "sample.jsonl"
GSM8K = DATA / "gsm8k" / "example_model_solutions.jsonl"
GSM8K_TEST = DATA / "gsm8k" / "test.jsonl"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture()
def one_thread():
    """Generation on 2 shared cores is ~30x faster with one torch thread (no oversubscription)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- real samples

def test_prm800k_sample_gives_one_row_per_record_along_the_labelled_path():
    records = _lines(PRM800K)
    ds = public_datasets.load_prm800k(PRM800K)
    assert len(ds) == len(records) == 12 and ds.column_names[:3] == ["prompt", "completions", "labels"]
    for rec, row in zip(records, ds):
        assert row["prompt"] == rec["question"]["problem"]
        assert len(row["completions"]) == len(row["labels"]) > 0
        assert all(row["labels"][:-1]), "a row stops after its first wrong step"
    # Phase 2 (generation 6): every record ends at the model step the labeller found wrong.
    for rec, row in zip(records[3:], list(ds)[3:]):
        k = len(row["completions"]) - 1
        assert row["labels"][-1] is False and row["completions"][-1] == "\n" + rec["question"]["pre_generated_steps"][k]
    # Line 1, step 2: all five model steps were rejected and the labeller wrote one; it is followed, as correct.
    assert ds[0]["completions"][1] == "\n" + records[0]["label"]["steps"][1]["human_completion"]["text"]
    assert ds[0]["labels"] == [True] * 6
    # Line 4: its second step is rated 0 (neutral).
    assert ds[3]["labels"] == [True] * 6 + [False]
    assert public_datasets.load_prm800k(PRM800K, neutral_as=False)[3]["labels"] == [True, False] + [True] * 4 + [False]


def _prm_record(*steps):
    """A PRM800K record whose steps are (ratings, chosen_completion, human_text)."""
    return {"question": {"problem": "What is 1 + 1?"}, "label": {"steps": [
        {"completions": [{"text": f"s{k}.{j}", "rating": r, "flagged": None} for j, r in enumerate(ratings)],
         "chosen_completion": chosen, "human_completion": human and {"text": human, "rating": None}}
        for k, (ratings, chosen, human) in enumerate(steps)]}}


def test_prm800k_path_rules(tmp_path, caplog):
    path = tmp_path / "prm.jsonl"
    records = [
        _prm_record(([1], 0, None), ([0, -1], 0, None), ([-1, 1], 0, None), ([1], 0, None)),  # chosen step is wrong
        _prm_record(([-1, -1], None, "human step"), ([1, 0], 1, None), ([None], 0, None)),  # unrated: stop before
        _prm_record(([None, None], None, None)),  # nothing labelled: no row
    ]
    path.write_text("\n".join(json.dumps(r) for r in records))
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        ds = public_datasets.load_prm800k(path)
    assert ds["completions"] == [["s0.0", "\ns1.0", "\ns2.0"], ["human step", "\ns1.1"]]
    assert ds["labels"] == [[True, True, False], [True, True]] and "1 records have no labelled step" in caplog.text
    assert public_datasets.load_prm800k(path, neutral_as=False)["labels"] == [[True, False, False], [True, False]]
    branched = public_datasets.load_prm800k(path, branches=True)
    assert ["s0.0", "\ns1.0", "\ns2.1"] in branched["completions"] and ["s0.1"] in branched["completions"]
    assert ["s0.0", "\ns1.1"] in branched["completions"]


@pytest.mark.parametrize("completions", [5, "s0.0", {"text": "s0.0", "rating": 1}, 0, False, ""])
def test_prm800k_completions_that_are_no_list_name_the_field(tmp_path, completions):
    """A number raised a bare TypeError; a str or an object was read item by item and blamed 'completions[0].text'."""
    record = _prm_record(([1], 0, None), ([1], 0, None))
    record["label"]["steps"][1]["completions"] = completions
    path = tmp_path / "prm.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"line 1: field 'label\.steps\[1\]\.completions': must be a list"):
        public_datasets.load_prm800k(path)


def test_prm800k_branches_add_the_rated_alternatives():
    main, branched = public_datasets.load_prm800k(PRM800K), public_datasets.load_prm800k(PRM800K, branches=True)
    assert len(branched) > len(main)
    paths = {(r["prompt"], "".join(r["completions"])) for r in main}
    rated = set()  # (problem, step k, text, label) of every rated completion in the file
    for line in PRM800K.read_text().splitlines():
        record = json.loads(line)
        for k, step in enumerate(record["label"]["steps"]):
            rated |= {(record["question"]["problem"], k, o["text"], o["rating"] != -1)  # 0: neutral_as=True
                      for o in step["completions"] or [] if o["rating"] is not None}
    main_rows = {(r["prompt"], tuple(r["completions"])) for r in main}
    branches = [r for r in branched if (r["prompt"], tuple(r["completions"])) not in main_rows]
    assert branches
    for row in branches:  # a labelled path's prefix plus one rated step, labelled by its rating
        prefix, k = "".join(row["completions"][:-1]), len(row["completions"]) - 1
        assert any(p == row["prompt"] and text.startswith(prefix) for p, text in paths)
        assert (row["prompt"], k, row["completions"][-1].removeprefix("\n"), row["labels"][-1]) in rated, row


def test_a_processbench_type_clash_names_the_file_and_line(tmp_path):
    """It named the record's index (0-based) without the file, where the other loaders name file and line."""
    rows = [{"problem": "p", "steps": ["a"], "label": -1, "x": 1}] * 3 + [{"problem": "p", "steps": ["a"],
                                                                           "label": -1, "x": "s"}]
    path = tmp_path / "pb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"processbench: .*pb\.jsonl, line 4: field 'x'"):
        public_datasets.load_processbench(path)


def test_processbench_sample_loads():
    ds = public_datasets.load_processbench(PROCESSBENCH)
    assert len(ds) == 40
    assert sum(label == -1 for label in ds["label"]) == 20
    assert all(-1 <= row["label"] < len(row["steps"]) for row in ds)


def test_gsm8k_slice_loads_with_line_labels():
    ds = public_datasets.load_gsm8k_solutions(GSM8K)
    assert len(ds) == 800 and set(ds["solver"]) == set(public_datasets.GSM8K_SOLVERS)
    for row in ds:
        assert len(row["step_labels"]) == len(extract_steps(row["completion"], "\n"))
    assert 0 < sum(not all(r) for r in ds["step_labels"]) < 100  # a few real calculator errors, not many
    problems = public_datasets.load_gsm8k_problems(GSM8K_TEST)
    assert len(problems) == 200 and problems["prompt"] == ds["prompt"][::4]
    assert problems[0]["answer"] == "18" and "<<16-3-4=9>>" in problems[0]["solution"]


def test_gsm8k_pairs_are_correct_vs_incorrect_of_the_same_problem():
    solutions = public_datasets.load_gsm8k_solutions(GSM8K)
    verdict = {(r["prompt"], r["completion"]): r["label"] for r in solutions}
    pairs = public_datasets.gsm8k_preference_pairs(solutions)
    assert len(pairs) > 100
    for row in pairs:
        assert verdict[row["prompt"], row["chosen"]] and not verdict[row["prompt"], row["rejected"]]
        assert False in row["rejected_step_labels"], "a wrong solution has at least one wrong line"
        assert len(row["chosen_step_labels"]) == len(extract_steps(row["chosen"], "\n"))
    capped = public_datasets.gsm8k_preference_pairs(GSM8K, max_pairs_per_problem=1, seed=3)
    assert len(set(capped["prompt"])) == len(capped) == len(set(pairs["prompt"]))
    assert capped.to_list() == public_datasets.gsm8k_preference_pairs(GSM8K, max_pairs_per_problem=1, seed=3).to_list()


def test_gsm8k_pairs_take_rows_in_memory_checked_as_a_file():
    """The raw records in memory failed with KeyError: 'prompt'; docs/formats.md: rows in memory go through the same
    checks as a file."""
    records = _lines(GSM8K)
    pairs = public_datasets.gsm8k_preference_pairs(GSM8K, max_pairs_per_problem=2).to_list()
    assert public_datasets.gsm8k_preference_pairs(records, max_pairs_per_problem=2).to_list() == pairs
    outcome = public_datasets.load_gsm8k_solutions(GSM8K).to_list()  # load_gsm8k_solutions' rows, as dicts
    assert public_datasets.gsm8k_preference_pairs(outcome, max_pairs_per_problem=2).to_list() == pairs
    no_question = [records[0], {k: v for k, v in records[1].items() if k != "question"}]
    with pytest.raises(ValueError, match=r"gsm8k_preference_pairs: record 1: field 'question': is missing"):
        public_datasets.gsm8k_preference_pairs(no_question)
    with pytest.raises(ValueError, match=r"record 2: field 'step_labels': must be a non-empty list"):
        public_datasets.gsm8k_preference_pairs([*outcome[:2], {**outcome[2], "step_labels": None}])
    with pytest.raises(ValueError, match=r"record 1: field 'label': must be true or false"):
        public_datasets.gsm8k_preference_pairs([outcome[0], {**outcome[1], "label": 1}])


@pytest.mark.parametrize("max_pairs", [0, -1, 1.5, "2"])
def test_max_pairs_per_problem_below_one_is_refused(toy, max_pairs):
    """0 gave 0 rows, without the step-label columns, and no error."""
    problems, solutions = toy
    for build, name in ((lambda **kw: labelling.preference_pairs(problems, solutions, **kw), "preference_pairs"),
                        (lambda **kw: labelling.step_dpo_pairs(problems, solutions, **kw), "step_dpo_pairs"),
                        (lambda **kw: public_datasets.gsm8k_preference_pairs(GSM8K, **kw), "gsm8k_preference_pairs")):
        with pytest.raises(ValueError, match=f"{name}: max_pairs_per_problem must be an int >= 1"):
            build(max_pairs_per_problem=max_pairs)


@pytest.mark.parametrize("line, ok", [
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.", True),
    ("16 - 3 = <<16-3=12>>12 eggs", False),  # arithmetic error
    ("16 - 3 = <<16-3=13>>12 eggs", False),  # copy error: writes another number than the result
    ("10 / 3 = <<10/3=3.33>>3.33 hours", True),  # rounded
    ("<<1000+500=1500>>1,500 dollars", True),
    ("$<<2500*7=17500.0>>17 500 in all", True),  # thousands grouped with a space (read as 17: a copy error)
    ("She buys 2 * 3 = <<2*3=6>>6 500-gram bags.", True),  # 6 bags of 500 g (read as 6500: a copy error)
    ("She buys 2 * 3 = <<2*3=6>>7 500-gram bags.", False),  # neither reading is 6
    ("<<4.20+9.45+1.35=14.999999>>14.99 dollars", True),  # cut, not rounded
    ("<<5-3=2.5>>2.5", False),  # a real slip stays one
    ("<<1/4=0.25>>1/3 of the cake", False),  # a fraction written is exact, not rounded to 0 decimals
    ("<<1/2=1/3>>", False),
    ("<<3/4=0.75>>3/4 of the cake", True),
    ("So she has 13 eggs left.", True),  # no annotation: unknown, counted correct
    ("<<3x=9>>9", None),  # not arithmetic: unchecked
    ("<<__import__('os').getcwd()=0>>0", None),  # never evaluated
    ("<<2**999999=1>>1", None),  # too large to evaluate: unchecked
    ("<<0.5**-2000=1>>1", None),  # as large the other way
    ("<<2000000**2=4000000000000>>4000000000000", True),  # a large base with a small power: plain arithmetic
    ("<<2000000**2=400000000000>>400000000000", False),  # a zero short
    ("<<2**99=7>>7", False),
    ("<<1**10000=1>>1", True),
])
def test_calculator_check(line, ok):
    assert public_datasets.calculator_check(line) is ok


def test_process_labels_propagate_errors_and_blame_the_answer_line():
    assert public_datasets.process_labels([True, False, True], correct=False) == [True, False, False]
    assert public_datasets.process_labels([True, True, True], correct=False) == [True, True, False]
    assert public_datasets.process_labels([True, True], correct=True) == [True, True]


@pytest.mark.parametrize("line_labels, correct, message", [
    ([True, None, True], False, r"line_labels\[1\] must be a bool or 0/1, got None"),  # None was a right line
    ([True, "False"], True, r"line_labels\[1\] must be a bool or 0/1"),  # a non-empty str was a right line
    ("TF", False, "got one str"),  # a TypeError
    ([True, True], None, "correct must be a bool, got None"),  # None was an incorrect solution
])
def test_process_labels_refuse_what_is_no_bool(line_labels, correct, message):
    with pytest.raises(ValueError, match=message):
        public_datasets.process_labels(line_labels, correct)


def test_math_shepherd_and_step_dpo_examples_load():
    ms = public_datasets.load_math_shepherd(DATA / "examples" / "math_shepherd.jsonl")
    assert len(ms) == 4 and ms[3]["labels"] == [True, False, False]
    raw = _lines(DATA / "examples" / "math_shepherd.jsonl")[3]["input"]
    assert ms[3]["prompt"] + " " + "".join(ms[3]["completions"]) == raw.replace(" ки", "")
    sd = data.load_step_dpo(DATA / "examples" / "step_dpo.jsonl")
    assert len(sd) == 3 and "" in sd["initial_reason_steps"] and "full_chosen" in sd.column_names
    assert data.load_step_dpo(path_or_rows=list(sd)).to_list() == sd.to_list()  # rows too, as load_preference's
    trl = data.to_trl_dpo(sd)
    assert trl.column_names == ["prompt", "chosen", "rejected", "open_ended"] and all(trl["open_ended"])
    assert trl["prompt"] == [r["prompt"] + r["initial_reason_steps"] for r in sd]


# ----------------------------------------------------------------------------- bad input

PREF = {"prompt": "p", "chosen": "Step 1: a\n\nStep 2: b", "rejected": "Step 1: a\n\nStep 2: c"}
STEP = {"prompt": "p", "completions": ["Step 1: a", "\nStep 2: b"], "labels": [True, False]}
SDPO = {"prompt": "p", "initial_reason_steps": "Step 1: a\n", "chosen": "Step 2: b", "rejected": "Step 2: c"}
PB = {"problem": "p", "steps": ["a", "b"], "label": 1}
MS = {"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: b -"}
OUT = {"prompt": "p", "completion": "a\nb", "label": True, "step_labels": [True, True]}
GSM = {"question": "q", "answer": "a\n#### 3"}


def _with(row, **changes):
    row = json.loads(json.dumps(row))
    for key, value in changes.items():
        if value is ...:
            del row[key]
        else:
            row[key] = value
    return json.dumps(row)


def _prm(mutate):
    rec = _lines(PRM800K)[3]
    mutate(rec)
    return json.dumps(rec)


def _gsm(mutate):
    rec = _lines(GSM8K)[0]
    mutate(rec)
    return json.dumps(rec)


BAD = [  # loader, good line, bad line, words the error must contain (besides "line 2")
    ("preference", PREF, '{"prompt": "p", "chosen": "a", "rej', ["not valid JSON"]),
    ("preference", PREF, _with(PREF, chosen=...), ["'chosen'", "missing"]),
    ("preference", PREF, _with(PREF, chosen=3), ["'chosen'", "string"]),
    ("preference", PREF, _with(PREF, prompt="  "), ["'prompt'", "empty"]),
    ("preference", PREF, _with(PREF, rejected=PREF["chosen"]), ["'rejected'", "identical"]),
    ("preference", PREF, json.dumps(PREF), ["'prompt', 'chosen', 'rejected'", "line 1", "duplicate"]),
    ("preference", PREF, _with(PREF, chosen_step_labels=["yes", True]), ["'chosen_step_labels[0]'"]),
    ("preference", PREF, _with(PREF, rejected_step_labels=[True]), ["'rejected_step_labels'", "2 steps"]),
    ("preference", PREF, _with(PREF, chosen_step_labels=[0.9, 1.5]), ["'chosen_step_labels[1]'", "[0, 1]"]),
    ("preference", PREF, _with(PREF, rejected_step_labels=[0.9, "0.1"]), ["'rejected_step_labels[1]'", "[0, 1]"]),
    ("stepwise", STEP, _with(STEP, labels=[True]), ["'labels'", "1 labels for 2"]),
    ("stepwise", STEP, _with(STEP, completions=["Step 1: a", " "]), ["'completions[1]'"]),
    ("stepwise", STEP, _with(STEP, labels=[1, 0]), ["'labels[0]'"]),
    ("stepwise", STEP, _with(STEP, completions="Step 1: a"), ["'completions'", "list"]),
    ("step_dpo", SDPO, _with(SDPO, initial_reason_steps=...), ["'initial_reason_steps'", "missing"]),
    ("step_dpo", SDPO, _with(SDPO, rejected="Step 2: b"), ["'rejected'", "identical"]),
    ("step_dpo", SDPO, _with(SDPO, rejected=""), ["'rejected'", "empty"]),
    ("step_dpo", SDPO, json.dumps(SDPO), ["duplicate", "line 1"]),
    ("processbench", PB, _with(PB, label=2), ["'label'", "0..1"]),
    ("processbench", PB, _with(PB, label=True), ["'label'"]),
    ("processbench", PB, _with(PB, steps=[]), ["'steps'", "non-empty"]),
    ("math_shepherd", MS, _with(MS, label=MS["label"].replace("-", "*")), ["'label'", "'*'"]),
    ("math_shepherd", MS, _with(MS, label=MS["label"].replace("Q?", "Q!")), ["'label'", "differs"]),
    ("math_shepherd", MS, _with(MS, input="Q? a", label="Q? a"), ["'input'", "step tag"]),
    ("math_shepherd", MS, _with(MS, input="Q? a ки", label="Q? a +"), ["'input'", "Step 1:"]),
    ("prm800k", None, _prm(lambda r: r["question"].pop("problem")), ["'question.problem'", "missing"]),
    ("prm800k", None, _prm(lambda r: r["label"]["steps"][0]["completions"][0].update(rating=2)),
     ["'label.steps[0].completions[0].rating'"]),
    # true == 1 in Python: a rating of true must not load as a correct step
    ("prm800k", None, _prm(lambda r: r["label"]["steps"][0]["completions"][0].update(rating=True)),
     ["'label.steps[0].completions[0].rating'", "got True"]),
    ("prm800k", None, _prm(lambda r: r["label"]["steps"][1].update(chosen_completion=5)),
     ["'label.steps[1].chosen_completion'"]),
    ("outcome", OUT, _with(OUT, label=1), ["'label'", "true or false"]),
    ("outcome", OUT, _with(OUT, step_labels=[True, None]), ["'step_labels[1]'"]),
    ("gsm8k_problems", GSM, _with(GSM, answer="a\nso 3"), ["'answer'", "####"]),
    ("gsm8k", None, _gsm(lambda r: r["6b_finetuning"].update(is_correct="yes")), ["'6b_finetuning.is_correct'"]),
    ("gsm8k", None, _gsm(lambda r: r.pop("175b_verification")), ["'175b_verification'", "missing"]),
]
LOADERS = {"preference": lambda path: data.load_preference(path, delimiter="\n\nStep"),
           "stepwise": data.validate_stepwise, "step_dpo": data.load_step_dpo,
           "processbench": public_datasets.load_processbench, "math_shepherd": public_datasets.load_math_shepherd,
           "prm800k": public_datasets.load_prm800k, "gsm8k": public_datasets.load_gsm8k_solutions,
           "outcome": data.validate_outcome, "gsm8k_problems": public_datasets.load_gsm8k_problems}
GOOD_FIRST = {"prm800k": lambda: PRM800K.read_text().splitlines()[0],
              "gsm8k": lambda: GSM8K.read_text().splitlines()[0]}


@pytest.mark.parametrize("kind, good, bad, words", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_line_names_file_line_and_field(tmp_path, kind, good, bad, words):
    path = tmp_path / "rows.jsonl"
    first = json.dumps(good) if good is not None else GOOD_FIRST[kind]()
    path.write_text(first + "\n" + bad + "\n")
    with pytest.raises(ValueError) as err:
        LOADERS[kind](path)
    message = str(err.value)
    for word in [f"{path}, line 2", *words]:
        assert word in message, message


def test_load_gsm8k_problems_skips_invalid_records_like_the_other_loaders(tmp_path, caplog):
    """skip_invalid, as every other loader of a published file takes it: it skips and counts, never silently."""
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(GSM) + "\n" + json.dumps(_with_dict(GSM, answer="so 3")) + "\n")
    with caplog.at_level("WARNING", logger="stepdpo_lite.data"):
        problems = public_datasets.load_gsm8k_problems(path, skip_invalid=True)
    assert len(problems) == 1 and "gsm8k_problems: skipped 1 invalid records" in caplog.text
    with pytest.raises(ValueError, match="line 2"):
        public_datasets.load_gsm8k_problems(path)


def test_in_memory_rows_and_json_arrays_name_the_record(tmp_path):
    with pytest.raises(ValueError, match=r"record 1: field 'rejected'"):
        data.validate_preference([PREF, _with_dict(PREF, rejected=None)])
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([PB, PB, {**PB, "label": 7}]))
    with pytest.raises(ValueError, match=r"rows.json, record 2: field 'label'"):
        public_datasets.load_processbench(path)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no records"):
        data.load_preference(tmp_path / "empty.jsonl")
    for one, got in ((PREF, "dict"), (7, "int")):  # a dict was read key by key, a number a bare TypeError
        (tmp_path / "one.json").write_text(json.dumps(one))
        with pytest.raises(ValueError, match=f"one.json: a .json file must hold an array of records, got {got}$"):
            data.load_preference(tmp_path / "one.json")


def _with_dict(row, **changes):
    return {**row, **changes}


def test_drops_are_opt_in_and_reported(caplog):
    rows = [PREF, PREF, _with_dict(PREF, chosen=""), _with_dict(PREF, prompt="q")]
    # a duplicate is refused unless drop_duplicates, which the message names with where it is taken
    with pytest.raises(ValueError, match=r"repeat .*drop_duplicates=True \(of validate_\*, load_\*\) drops them"):
        data.validate_preference(rows, skip_invalid=True)
    with pytest.raises(ValueError, match="record 2: field 'chosen'"):  # an invalid row unless skip_invalid
        data.validate_preference(rows, drop_duplicates=True)
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        ds = data.validate_preference(rows, drop_duplicates=True, skip_invalid=True)
    assert ds["prompt"] == ["p", "q"]
    assert "skipped 1 invalid" in caplog.text and "dropped 1 duplicate" in caplog.text


def test_validators_keep_extra_columns_and_accept_datasets():
    ds = data.validate_preference([PREF, _with_dict(PREF, prompt="q", chosen_step_labels=[True, True])])
    assert ds["chosen_step_labels"] == [None, [True, True]]
    assert data.validate_preference(ds).to_list() == ds.to_list()
    assert data.validate_stepwise([]).column_names == ["prompt", "completions", "labels"]


def test_extra_column_whose_type_changes_names_the_column_and_the_record(tmp_path):
    """Was pyarrow's ArrowInvalid, naming neither."""
    with pytest.raises(ValueError, match=r"preference: record 1: field 'x': 'a' \(str\) does not have the type"):
        data.validate_preference([{**PREF, "x": 1}, {**PREF, "prompt": "q", "x": "a"}])
    rows = [{**STEP, "meta": {"a": 1}}, {**STEP, "meta": None}, {**STEP, "meta": [1]}]
    with pytest.raises(ValueError, match=r"stepwise: record 2: field 'meta': \[1\] \(list\)"):
        data.validate_stepwise(rows)
    path = tmp_path / "rows.jsonl"  # in a file, after a skipped record: the line is named
    path.write_text("\n".join(json.dumps(r) for r in [{**PREF, "chosen": ""}, {**PREF, "x": 1},
                                                       {**PREF, "prompt": "q", "x": "a"}]) + "\n")
    with pytest.raises(ValueError, match=r"rows.jsonl, line 3: field 'x'"):
        data.load_preference(path, skip_invalid=True)
    mixed = data.validate_preference([{**PREF, "x": 1}, {**PREF, "prompt": "q", "x": 2.5}])  # Arrow's int -> float
    assert mixed["x"] == [1.0, 2.5]


@pytest.mark.parametrize("rows, got", [(STEP, "dict"), (None, "NoneType"), (5, "int")])
def test_validators_want_a_list_of_records(rows, got):
    """One dict was read key by key ("record 0: field '(record)': must be a JSON object, got str")."""
    with pytest.raises(ValueError, match=f"stepwise: expected a list of records, got {got}"):
        data.validate_stepwise(rows)


@pytest.mark.parametrize("validate, row", [(data.validate_stepwise, STEP), (data.validate_outcome, OUT),
                                            (data.validate_preference, PREF), (data.validate_step_dpo, SDPO)])
def test_validators_name_a_pandas_dataframe_and_the_fix(validate, row):
    """A DataFrame iterates over its column names: "record 0: field '(record)': must be a JSON object, got str"."""
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match=r"got a pandas DataFrame: pass datasets\.Dataset\.from_pandas\(df"):
        validate(pd.DataFrame([row]))
    fixed = datasets.Dataset.from_pandas(pd.DataFrame([row]), preserve_index=False)  # the fix the message names
    assert validate(fixed).to_list() == [row]


def test_outcome_step_labels_are_bools_and_stepwise_labels_are_required():
    with pytest.raises(ValueError, match=r"outcome: record 0: field 'step_labels\[0\]': must be true or false"):
        data.validate_outcome([{**OUT, "step_labels": [0.5, 1.0]}])  # a share: the stepwise format's, not this
    for row in ({"prompt": "q", "completions": ["a"]}, {"prompt": "q", "completions": ["a"], "labels": None}):
        with pytest.raises(ValueError, match="stepwise: record 0: field 'labels'"):
            data.validate_stepwise([row])


def test_outcome_step_labels_are_counted_against_a_delimiter():
    assert data.validate_outcome([{**OUT, "step_labels": [True] * 7}])["step_labels"] == [[True] * 7]  # no delimiter
    assert len(data.validate_outcome([OUT], delimiter="\n")) == 1  # "a\nb": 2 steps, 2 labels
    with pytest.raises(ValueError, match=r"outcome: record 0: field 'step_labels': has 7 labels but 'completion' "
                                         r"has 2 steps \(delimiter '\\n'\)"):
        data.validate_outcome([{**OUT, "step_labels": [True] * 7}], delimiter="\n")


def test_real_samples_validate_with_their_loaders():
    """The shipped samples (each with the delimiter its loader names) still pass every check."""
    pairs = public_datasets.gsm8k_preference_pairs(GSM8K)  # step labels per line, checked with "\n"
    assert len(pairs) > 0 and data.to_trl_dpo(pairs).column_names == ["prompt", "chosen", "rejected"]
    assert len(data.validate_outcome(public_datasets.load_gsm8k_solutions(GSM8K), delimiter="\n")) > 0


@pytest.mark.parametrize("soft, words", [
    ([1.0, 0.5], "field 'soft_labels': has 2 labels for 3 completions (steps)"),
    ([1.0, 2.0, 0.0], "field 'soft_labels[1]': must be a fraction in [0, 1], got 2.0"),
    ([1.0, -0.5, 0.0], "field 'soft_labels[1]'"),
    ([1.0, float("nan"), 0.0], "field 'soft_labels[1]'"),
    ([True, 0.5, 0.0], "field 'soft_labels[0]'"),
    ("0.5", "field 'soft_labels'"),
])
def test_stepwise_soft_labels_are_one_share_per_step(soft, words):
    """Were accepted: 2 shares for 3 steps, or 2.0."""
    row = {"prompt": "p", "completions": ["a", "\nb", "\nc"], "labels": [True, True, False]}
    with pytest.raises(ValueError) as err:
        data.validate_stepwise([row, {**row, "soft_labels": soft}])
    assert f"stepwise: record 1: {words}" in str(err.value)
    ok = data.validate_stepwise([row, {**row, "soft_labels": [1.0, 1 / 3, 0]}])  # absent in a row: None
    assert ok["soft_labels"] == [None, [1.0, 1 / 3, 0.0]]


@pytest.mark.parametrize("gold, words", [([True, False], "field 'gold_labels': has 2 labels for 3 completions"),
                                         ([True, 1, False], "field 'gold_labels[1]': must be true or false, got 1")])
def test_stepwise_gold_labels_are_one_bool_per_step(gold, words):
    """Were accepted unchecked: label_agreement would then compare other steps, or fail far from the row."""
    row = {"prompt": "p", "completions": ["a", "\nb", "\nc"], "labels": [True, True, False]}
    with pytest.raises(ValueError, match=re.escape(f"stepwise: record 0: {words}")):
        data.validate_stepwise([{**row, "gold_labels": gold}])
    assert data.validate_stepwise([{**row, "gold_labels": [True, False, False]}])["gold_labels"] \
        == [[True, False, False]]


def test_messages_name_the_field_as_it_is_written():
    """Were "field 'question.question'" and "must be one of non-empty strings, got ''"."""
    with pytest.raises(ValueError, match=r"prm800k: record 0: field 'question': is missing \(the record has: label\)$"):
        public_datasets.load_prm800k([{"label": {"steps": []}}])
    with pytest.raises(ValueError, match=r"prm800k: record 0: field 'label': is missing \(the record has: question\)$"):
        public_datasets.load_prm800k([{"question": {"problem": "p"}}])
    with pytest.raises(ValueError, match=r"field 'completions\[1\]': must be a non-blank string, got ''$"):
        data.validate_stepwise([{**STEP, "completions": ["a", ""]}])
    with pytest.raises(ValueError, match=r"field 'labels\[1\]': must be true or false, got 1; convert the labels: "
                                         r"bool\(x\) for 0/1, x == '\+' for Math-Shepherd's '\+'/'-'$"):
        data.validate_stepwise([{**STEP, "labels": [True, 1]}])


MISSING = [("load_preference", data.load_preference), ("load_step_dpo", data.load_step_dpo),
           ("load_processbench", public_datasets.load_processbench), ("load_prm800k", public_datasets.load_prm800k),
           ("load_math_shepherd", public_datasets.load_math_shepherd),
           ("load_gsm8k_solutions", public_datasets.load_gsm8k_solutions), ("preference", data.validate_preference)]


@pytest.mark.parametrize("name, load", MISSING, ids=[m[0] for m in MISSING])
def test_a_missing_file_names_the_loader_and_the_path(tmp_path, name, load):
    """Was pathlib's "[Errno 2] No such file or directory", naming neither the function nor the folder looked in."""
    with pytest.raises(FileNotFoundError, match=f"^{name}: no such file: {tmp_path / 'nope.jsonl'} \\(from "):
        load(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match=f"^{name}: no such file: nope.jsonl \\(from "):
        load("nope.jsonl")


@pytest.mark.parametrize("name, load", MISSING, ids=[m[0] for m in MISSING])
def test_a_folder_for_a_file_names_the_loader_and_the_path(tmp_path, name, load):
    """A folder (one save_datasets wrote, say) was a bare IsADirectoryError naming neither the loader nor the fix."""
    data.save_datasets({"pairs": data.validate_preference([PREF])}, tmp_path)
    with pytest.raises(ValueError, match=f"^{name}: {tmp_path / 'pairs'} is a folder, not a JSON/JSONL file"):
        load(tmp_path / "pairs")


def test_load_datasets_names_what_the_folder_holds(tmp_path):
    """A name not there failed inside datasets ("Directory ... not found"); a str was read as its letters."""
    data.save_datasets({"pairs": data.validate_preference([PREF]), "steps": data.validate_stepwise([STEP])}, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^load_datasets: no dataset 'nope' in .*; it holds: pairs, steps$"):
        data.load_datasets(tmp_path, names=["steps", "nope"])
    with pytest.raises(ValueError, match="load_datasets: names: expected a list of dataset names, got one str"):
        data.load_datasets(tmp_path, names="pairs")
    with pytest.raises(FileNotFoundError, match="load_datasets: no such folder: .*elsewhere"):
        data.load_datasets(tmp_path / "elsewhere")
    assert list(data.load_datasets(tmp_path, names=["steps"])) == ["steps"]


def test_file_that_is_not_utf8_names_the_path_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(json.dumps(PREF).encode() + b"\n" + b"\xff\xfe" + json.dumps(PREF).encode() + b"\n")
    with pytest.raises(ValueError, match=r"rows.jsonl, line 2: not valid UTF-8"):
        data.load_preference(path)


# ----------------------------------------------------------------------------- toy-world builders

@pytest.fixture(scope="module")
def toy():
    """3 problems; per problem: gold, an arithmetic and a copy error at step 1, a lucky one, a blank, a repeat."""
    problems, rng = toyworld.make_problems(3, seed=5, min_ops=3, max_ops=4), random.Random(0)
    solutions = []
    for p in problems:
        steps = extract_steps(p.gold_solution)
        a, _, b = steps[0].partition(" = ")
        lucky = a + " = " + str(int(b) + 1) + "".join(steps[1:])  # wrong step 1, right answer
        solutions.append([p.gold_solution, toyworld.corrupt_solution(p, 1, "arithmetic", rng),
                          toyworld.corrupt_solution(p, 1, "copy", rng), lucky, " ", p.gold_solution])
    return problems, solutions


def test_toy_stepwise_and_outcome_rows_carry_the_checker_labels(toy, caplog):
    problems, solutions = toy
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        rows = labelling.stepwise_rows(problems, solutions)
    assert len(rows) == 15 and "3 blank solutions" in caplog.text
    verdict = toyworld.check(problems[0], solutions[0][1])
    assert rows[1]["completions"] == verdict.steps and rows[1]["labels"] == verdict.step_labels == [True, False] + [
        False] * (len(verdict.steps) - 2)
    outcome = labelling.outcome_rows(problems, solutions)
    assert outcome["label"][:4] == [True, False, False, True]  # the lucky one has the right answer


def test_preference_pairs(toy, caplog):
    problems, solutions = toy
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        pairs = labelling.preference_pairs(problems, solutions, max_pairs_per_problem=None)
    assert len(pairs) == 3 * 2 and "3 lucky solutions" in caplog.text and "3 repeated solutions" in caplog.text
    by_prompt = {p.prompt: p for p in problems}
    for row in pairs:
        chosen, rejected = (toyworld.check(by_prompt[row["prompt"]], row[k]) for k in ("chosen", "rejected"))
        assert chosen.answer_correct and chosen.first_error < 0 and not rejected.answer_correct
        assert row["chosen_step_labels"] == chosen.step_labels \
            and row["rejected_step_labels"] == rejected.mistake_labels
        assert row["rejected_step_labels"].index(False) == rejected.first_error  # blame starts at the first mistake
    reach = labelling.preference_pairs(problems, solutions, max_pairs_per_problem=None, rejected_labels="reachability")
    for row in reach:
        assert row["rejected_step_labels"] == toyworld.check(by_prompt[row["prompt"]], row["rejected"]).step_labels
    with pytest.raises(ValueError, match="rejected_labels"):
        labelling.preference_pairs(problems, solutions, rejected_labels="value")
    capped = labelling.preference_pairs(problems, solutions, max_pairs_per_problem=1, seed=1)
    assert len(capped) == 3 and capped.to_list() == labelling.preference_pairs(
        problems, solutions, max_pairs_per_problem=1, seed=1).to_list()
    assert data.to_trl_dpo(capped, keep_step_columns=True).column_names == [
        "prompt", "chosen", "rejected", "chosen_step_labels", "rejected_step_labels"]


def test_step_dpo_pairs_share_a_correct_prefix(toy, caplog):
    problems, solutions = toy
    pairs = labelling.step_dpo_pairs(problems, solutions, max_pairs_per_problem=None)
    assert len(pairs) == 3 * 3 and set(pairs["chosen_source"]) == {"sampled"}
    by_prompt = {p.prompt: p for p in problems}
    for row in pairs:
        p, k = by_prompt[row["prompt"]], row["step_index"]
        assert p.gold_solution.startswith(row["initial_reason_steps"] + row["chosen"])
        assert toyworld.check(p, row["initial_reason_steps"] + row["rejected"]).first_error == k
    # Without a sampled correct solution the gold step stands in, and says so; or the pair is left out.
    wrong_only = [s[1:3] for s in solutions]
    gold = labelling.step_dpo_pairs(problems, wrong_only)
    assert len(gold) == 6 and set(gold["chosen_source"]) == {"gold"}
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        assert len(labelling.step_dpo_pairs(problems, wrong_only, use_gold=False)) == 0
    assert "6 wrong steps with no right step to pair" in caplog.text
    with pytest.raises(ValueError, match="2 problems but 3 lists of solutions"):
        labelling.step_dpo_pairs(problems[:2], solutions)


def test_builders_take_verdicts_made_elsewhere(toy):
    """Without a gold checker (GSM8K) the labels come as verdicts, one per solution or per non-blank one."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Question:  # a problem with a prompt only: no checker, no gold solution
        prompt: str

    problems, solutions = toy
    questions = [Question(p.prompt) for p in problems]
    sols = [s[:3] for s in solutions]  # gold, arithmetic error, copy error
    # Made-up labels, so that the builders can only have got them from `verdicts`: every step right but the last.
    made_up = [[Verdict([True] * (len(extract_steps(t)) - 1) + [False], len(extract_steps(t)) - 1,
                        j == 0) for j, t in enumerate(ss)] for ss in sols]
    rows = labelling.stepwise_rows(questions, sols, verdicts=made_up)
    assert all(r["labels"][-1] is False and all(r["labels"][:-1]) for r in rows)
    with_blank = [ss + [" "] for ss in sols]
    assert labelling.outcome_rows(questions, with_blank, verdicts=made_up)["label"] == [True, False, False] * 3
    pairs = labelling.step_dpo_pairs(questions, sols, verdicts=made_up, max_pairs_per_problem=None)
    assert len(pairs) == 0  # no sample is right at its last step and there is no gold solution
    with pytest.raises(ValueError, match="problem 0: 2 verdicts for 3 solutions"):
        labelling.preference_pairs(questions, sols, verdicts=[v[:2] for v in made_up])
    with pytest.raises(ValueError, match=r"outcome_rows: problem 0 is a Question: it has no verdict\(solution\) "
                                         r"method \(task_problems.TaskProblem\): pass verdicts="):
        labelling.outcome_rows(questions, sols)  # was AttributeError: no 'values'


def test_builders_name_a_verdict_that_is_wrong_and_the_solution_it_is_for(toy):
    """A verdict that was no Verdict (its step labels, None) was an AttributeError on .steps; verdicts of swapped
    solutions said "the verdict's 1 step labels do not match the solution's 1 steps"; the solution was numbered
    among the non-blank ones only; one without steps and with a step label too many was Verdict's own message,
    naming neither the builder, the problem nor the solution."""
    problems, solutions = toy
    sols = [[" ", problems[0].gold_solution, "junk"]]
    right = [toyworld.check(problems[0], s) for s in sols[0][1:]]
    n = len(extract_steps(sols[0][1]))
    one_too_many = Verdict([True] * (n + 1), -1, True)  # no steps: the builder splits the text
    cases = (([[right[0].step_labels, right[1]]], "solution 1: its verdict must be a task_problems.Verdict, got list"),
             ([[one_too_many, right[1]]], f"problem 0, solution 1: the verdict's {n + 1} step labels do not match "
                                          f"the solution's {n} steps"),
             ([[right[0], None]], "solution 2: its verdict must be a task_problems.Verdict, got NoneType"),
             ([right[::-1]], "solution 1: the verdict's steps do not join into the solution's text"),
             ([right[0]], r"verdicts\[0\]: expected a list of task_problems.Verdicts .*, got Verdict"),
             ("ab", "verdicts: expected a list of lists of verdicts .*, got one str"))
    for verdicts, message in cases:
        with pytest.raises(ValueError, match="stepwise_rows: .*" + message):
            labelling.stepwise_rows(problems[:1], sols, verdicts=verdicts)
    assert len(labelling.stepwise_rows(problems[:1], sols, verdicts=[right])) == 2


@pytest.mark.parametrize("threshold", [True, "0.5", None, float("nan")])
def test_label_agreement_refuses_a_threshold_that_is_no_number(threshold):
    """True was read as a threshold of 1; a str or None raised a TypeError."""
    with pytest.raises(ValueError, match="label_agreement: threshold must be a finite number"):
        labelling.label_agreement([[0.5, 1.0]], [[True, True]], threshold=threshold)


@pytest.mark.parametrize("threshold", [0, 0.0, -0.5, 1.5])
def test_label_agreement_refuses_a_threshold_that_is_no_share_in_0_1(threshold):
    """A threshold of 0 counts every soft label right (0 >= 0): agreement would be the gold's rate of right steps."""
    with pytest.raises(ValueError, match=r"label_agreement: threshold is a share of rollouts in \(0, 1\], got"):
        labelling.label_agreement([[0.0, 1.0]], [[False, True]], threshold=threshold)
    assert labelling.label_agreement([[0.0, 1.0]], [[False, True]], threshold=1)["accuracy"] == 1.0


def test_builders_name_a_problem_whose_solutions_are_no_list(toy):
    """None (a failed sample) or a number in place of a problem's list of solutions was a bare TypeError."""
    problems, solutions = toy
    for bad in (None, 5):
        for build in (labelling.stepwise_rows, labelling.preference_pairs, labelling.step_dpo_pairs):
            with pytest.raises(ValueError, match=rf"{build.__name__}: solutions\[1\] must be a list of solutions"):
                build(problems[:2], [solutions[0], bad])


def test_builders_refuse_prompt_strs_where_problems_are_wanted(toy):
    """Was AttributeError: 'str' object has no attribute 'values'."""
    problems, solutions = toy
    prompts = [p.prompt for p in problems]
    builders = (labelling.stepwise_rows, labelling.outcome_rows, labelling.preference_pairs, labelling.step_dpo_pairs)
    for build in builders:
        with pytest.raises(ValueError,
                           match=f"{build.__name__}: problem 0: its prompt must be a str, got NoneType .a str."):
            build(prompts, solutions)
    made_up = [[toyworld.check(p, s) for s in ss if s.strip()] for p, ss in zip(problems, solutions)]
    # verdicts given: still no .prompt
    with pytest.raises(ValueError, match="stepwise_rows: problem 0: its prompt must be a str"):
        labelling.stepwise_rows(prompts, solutions, verdicts=made_up)


def test_step_dpo_pairs_never_choose_the_rejected_step_under_noisy_labels(caplog):
    """Monte-Carlo labels (GSM8K) can call the same step text after the same prefix right in one sample and wrong
    in another; the smoke run built such a pair (chosen == rejected) and failed validation (issue #14)."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Question:
        prompt: str

    a, b, c = "Step 1: 2 + 2 = 4", "\n\nStep 2: 4 * 3 = 12\n\nAnswer: 12", "\n\nStep 2: 4 * 3 = 13\n\nAnswer: 13"
    sols = [[a + b, a + b + " ", a + c]]
    right, noisy = Verdict([True, True], -1, True), Verdict([True, False], 1, False)
    verdicts = [[right, noisy, Verdict([True, False], 1, False)]]
    pairs = labelling.step_dpo_pairs([Question("Q\n")], sols, verdicts=verdicts, max_pairs_per_problem=None)
    assert all(r["chosen"] != r["rejected"] for r in pairs) and len(pairs) == 2
    assert sorted(pairs["rejected"]) == sorted([b + " ", c]) and set(pairs["chosen"]) == {b}
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):  # the only right step is the wrong one
        only = labelling.step_dpo_pairs([Question("Q\n")], [[a + b, a + b]], max_pairs_per_problem=None,
                                       verdicts=[[right, noisy]])
    assert len(only) == 0 and "1 step labelled right and wrong" in caplog.text


def test_step_dpo_pairs_take_golds_step_only_after_golds_prefix(caplog):
    """Noisy labels can call a prefix with a slip right; gold's next step does not follow from it."""
    p = toyworld.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    slipped = "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 35\n\nStep 3: 35 - 4 = 30\n\nAnswer: 30"
    called_right = [[Verdict([True, True, False], 2, False, steps=extract_steps(slipped))]]
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        pairs = labelling.step_dpo_pairs([p], [[slipped]], verdicts=called_right, max_pairs_per_problem=None)
    assert len(pairs) == 0 and "prefix is not golds" in caplog.text.replace("_", " ")
    right_prefix = slipped.replace("12 * 3 = 35", "12 * 3 = 36").replace("35 - 4", "36 - 4")
    pairs = labelling.step_dpo_pairs([p], [[right_prefix]], max_pairs_per_problem=None)  # checker labels
    assert pairs["chosen"] == [extract_steps(p.gold_solution)[2]] and pairs["chosen_source"] == ["gold"]


def test_step_dpo_pairs_never_take_golds_step_k_as_chosen_when_it_is_the_wrong_step(caplog):
    """Noisy (Monte-Carlo) labels can call gold's own step k wrong after gold's prefix: gold's step k is then the
    rejected text itself, no chosen step; the wrong step is left out and counted, not paired with itself."""
    p = toyworld.Problem(7, (("+", 5), ("*", 3), ("-", 4)))
    gold_steps = extract_steps(p.gold_solution)
    called_wrong = Verdict([True, False] + [False] * (len(gold_steps) - 2), 1, False, steps=gold_steps)
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        pairs = labelling.step_dpo_pairs([p], [[p.gold_solution]], verdicts=[[called_wrong]],
                                         max_pairs_per_problem=None)
    assert len(pairs) == 0 and "1 wrong step with no right step to pair" in caplog.text


# ----------------------------------------------------------------------------- Monte-Carlo labels

def test_mc_labels_on_a_tiny_model(one_thread, tiny_model, tiny_tokenizer, toy):
    problems, solutions = toy
    sols = [s[:2] for s in solutions[:2]]  # gold and an arithmetic error at step 1
    ds = labelling.problem_mc_step_labels(tiny_model, tiny_tokenizer, problems[:2], sols, n=3, max_new_tokens=24,
                                 progress=False)
    assert len(ds) == 4
    for row, text in zip(ds, [s for ss in sols for s in ss]):
        steps = extract_steps(text)
        assert row["completions"] == steps and len(row["labels"]) == len(row["soft_labels"]) == len(steps)
        assert all(s in (0, 1 / 3, 2 / 3, 1) for s in row["soft_labels"])
        assert row["labels"] == [s > 0 for s in row["soft_labels"]]  # hard = "any rollout is right"
    assert [r["labels"][-1] for r in ds] == [True, False, True, False]  # the last step: the solution itself
    assert ds["gold_labels"][1][:2] == [True, False]
    assert set(labelling.label_agreement(ds["labels"], ds["gold_labels"])) >= {"accuracy", "precision", "recall"}


def test_mc_labels_roll_out_from_every_step_prefix(one_thread, tiny_model, tiny_tokenizer, monkeypatch):
    calls = []

    def is_correct(i, text):
        calls.append((i, text))
        return i == 0

    solutions = [["Step 1: 1 + 1 = 2", "\n\nStep 2: 2 + 1 = 3"],
                 ["Step 1: 3 * 2 = 6", "\n\nStep 2: 6 - 1 = 5", "\n\n!"]]
    ds = labelling.mc_step_labels(tiny_model, tiny_tokenizer, ["Problem: a\n", "Problem: b\n"], solutions, is_correct,
                             n=2, max_new_tokens=4, progress=False)
    assert ds["labels"] == [[True, True], [False, False, False]] and ds["soft_labels"][0] == [1.0, 1.0]
    assert len(calls) == (1 * 2 + 1) + (2 * 2 + 1)  # n rollouts per non-final prefix, then the solution itself
    texts = [t for i, t in calls if i == 1]  # in order: 2 rollouts after step 1, 2 after step 2, the solution
    # each rollout starts after the next step's opening "\n\nStep": from inside step k it could go on writing it
    # (" = 1" made " = 12"), and step k was judged by the rollout's ending of it. Step 3 has no "\n\nStep" opener
    assert all(t.startswith(solutions[1][0] + "\n\nStep") for t in texts[:2])
    assert all(t.startswith("".join(solutions[1][:2])) for t in texts[2:4]) and texts[4] == "".join(solutions[1])
    seen = []
    monkeypatch.setattr(labelling.generation, "sample_solutions", lambda m, t, prompts, n, **kw: seen.extend(prompts)
                        or [[""] * n for _ in prompts])
    labelling.mc_step_labels(tiny_model, tiny_tokenizer, ["Problem: b\n"], solutions[1:], is_correct, n=1)
    assert seen == ["Problem: b\n" + solutions[1][0] + "\n\nStep", "Problem: b\n" + "".join(solutions[1][:2])]
    with pytest.raises(ValueError, match="solution 1"):
        labelling.mc_step_labels(tiny_model, tiny_tokenizer, ["a", "b"], [["x"], []], is_correct)


@pytest.mark.parametrize("prompts, solutions, message", [
    ("Problem: a\n", [["Step 1: x"]], r"mc_step_labels: prompts: expected a list of prompt strings, got one str "
                                       r"\('Problem: a\\n'\); wrap it in a list"),  # was "got 12 prompts but 1"
    (["p", "q"], [["a"], ["b", " "]], r"mc_step_labels: solution 1: field 'steps\[1\]': must be a non-blank string"),
    (["p", ""], [["a"], ["b"]], r"mc_step_labels: solution 1: field 'prompt': is empty"),
    (["p"], [["a", 3]], r"mc_step_labels: solution 0: field 'steps\[1\]': must be a non-blank string, got 3"),
])
def test_mc_step_labels_checks_its_inputs_before_sampling(monkeypatch, prompts, solutions, message):
    """A blank step or an empty prompt was found after all the sampling, as "stepwise: record 0"."""
    def sample(*args, **kw):
        raise AssertionError("sampled before checking the inputs")
    monkeypatch.setattr(labelling.generation, "sample_solutions", sample)
    with pytest.raises(ValueError, match=message):
        labelling.mc_step_labels(None, None, prompts, solutions, lambda i, text: True)


def test_label_agreement():
    m = labelling.label_agreement([[True, False], [True]], [[True, True], [False]])
    assert m["accuracy"] == pytest.approx(1 / 3) and m["precision"] == 0.5 and m["recall"] == 0.5 and m["n_steps"] == 3
    assert labelling.label_agreement([[0.9, 0.2]], [[True, False]])["accuracy"] == 1.0  # soft labels, threshold 0.5
    with pytest.raises(ValueError, match="solution 0"):
        labelling.label_agreement([[True]], [[True, False]])
    # Flat lists (one solution's labels) were a TypeError: "object of type 'bool' has no len()".
    with pytest.raises(ValueError, match=r"label_agreement: mc_labels\[0\]: expected a list of step labels \(one list "
                                         r"per solution; wrap a flat list in a list\), got bool"):
        labelling.label_agreement([True, False], [True, True])
    with pytest.raises(ValueError, match=r"label_agreement: gold_labels\[0\]: .* got bool"):
        labelling.label_agreement([[True, False]], [True])
    with pytest.raises(ValueError, match=r"label_agreement: gold_labels\[0\]\[1\] must be a bool or 0/1, got 'no'"):
        labelling.label_agreement([[True, False, True]], [[True, "no", 0.2]])  # read as right, by truth value


# ----------------------------------------------------------------------------- saving

def test_save_and_load_datasets_round_trip(tmp_path):
    pairs = data.validate_preference([PREF])
    steps = data.validate_stepwise([STEP])
    data.save_datasets({"pairs": pairs, "steps": steps}, tmp_path / "d")
    data.save_datasets({"pairs": data.validate_preference([PREF, _with_dict(PREF, prompt="q")])}, tmp_path / "d")
    loaded = data.load_datasets(tmp_path / "d")
    assert sorted(loaded) == ["pairs", "steps"] and loaded["steps"].to_list() == steps.to_list()
    assert loaded["pairs"]["prompt"] == ["p", "q"]
    assert [p.name for p in (tmp_path / "d").iterdir() if p.name.startswith(".")] == []


def test_save_datasets_is_atomic_for_the_whole_set(tmp_path, monkeypatch):
    """Each dataset was saved atomically on its own: a failure at the second left a new first beside an old second."""
    out = tmp_path / "d"
    old = {"train": data.validate_preference([PREF]), "validation": data.validate_stepwise([STEP])}
    data.save_datasets({**old, "other": data.validate_stepwise([STEP])}, out)
    (out / "notes.md").write_text("mine")
    save_to_disk, calls = datasets.Dataset.save_to_disk, []

    def second_fails(self, path, *a, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return save_to_disk(self, path, *a, **kw)
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", second_fails)
    new = {"train": data.validate_preference([PREF, _with_dict(PREF, prompt="q")]),
           "validation": data.validate_stepwise([STEP, _with_dict(STEP, prompt="q")])}
    with pytest.raises(OSError, match="disk full"):
        data.save_datasets(new, out)
    monkeypatch.undo()
    loaded = data.load_datasets(out)
    assert {k: v.to_list() for k, v in loaded.items()} == {**{k: v.to_list() for k, v in old.items()},
                                                           "other": [STEP]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folder left beside it
    data.save_datasets(new, out)  # the set replaced; the folder's other entries stay
    assert {k: len(v) for k, v in data.load_datasets(out).items()} == {"other": 1, "train": 2, "validation": 2}
    assert (out / "notes.md").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    monkeypatch.chdir(out)  # "." has no name to put the temporary folder beside
    with pytest.raises(ValueError, match="save_datasets: .* is the working directory or holds it"):
        data.save_datasets(new, ".")


def test_save_datasets_keeps_the_folders_mode(tmp_path):
    """The set is swapped in as a whole folder, which came out 0o755: a private (0o700) data folder became readable
    by everyone."""
    out = tmp_path / "d"
    out.mkdir()
    out.chmod(0o700)
    data.save_datasets({"pairs": data.validate_preference([PREF])}, out)
    assert out.stat().st_mode & 0o777 == 0o700
    data.save_datasets({"pairs": data.validate_preference([PREF])}, tmp_path / "new")  # a new one is for all to read
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755


def test_preference_rows_with_prm_probabilities_load(tmp_path):
    """The on-policy rounds label pairs with a PRM's σ(reward), which the Stepwise DPO trainer reads; written to a
    file, such rows were refused on loading ("must be true or false, got 0.9")."""
    rows = [_with_dict(PREF, chosen_step_labels=[0.97, 0.88], rejected_step_labels=[0.93, 0.02]),
            _with_dict(PREF, prompt="q", chosen_step_labels=[True, True], rejected_step_labels=[True, False])]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = data.load_preference(str(path), delimiter="\n\nStep")
    assert loaded["chosen_step_labels"] == [[0.97, 0.88], [1.0, 1.0]]
    assert loaded["rejected_step_labels"] == [[0.93, 0.02], [1.0, 0.0]]
    # any order, and 0/1 beside true/false (hand-written labels beside a checker's): one float column
    for first, second in (([True, 0.5], [True, False]), ([1, 0], [True, False]), ([True, False], [1, True])):
        ds = data.validate_preference([_with_dict(PREF, chosen_step_labels=first),
                                       _with_dict(PREF, prompt="q", chosen_step_labels=second)])
        assert ds["chosen_step_labels"] == [[float(x) for x in first], [float(x) for x in second]]
    bools = data.validate_preference([_with_dict(PREF, chosen_step_labels=[True, False])])
    assert bools.features["chosen_step_labels"].feature.dtype == "bool"  # all bools stay bools


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", ".hidden", "", 3])
def test_save_datasets_refuses_names_that_are_not_plain_folders_before_writing_anything(tmp_path, name):
    ds = data.validate_stepwise([STEP])
    with pytest.raises(ValueError) as err:
        data.save_datasets({"ok": ds, name: ds}, tmp_path / "out")
    assert f"save_datasets: dataset name {name!r} must be a plain folder name" in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


def test_save_datasets_refuses_a_folder_of_that_name_that_is_no_saved_dataset(tmp_path):
    ds = data.validate_stepwise([STEP])
    (tmp_path / "out" / "b").mkdir(parents=True)
    (tmp_path / "out" / "b" / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match=r"save_datasets: .*b holds \['notes.md'\], not a saved copy"):
        data.save_datasets({"a": ds, "b": ds}, tmp_path / "out")
    assert not (tmp_path / "out" / "a").exists() and (tmp_path / "out" / "b" / "notes.md").read_text() == "mine"
    data.save_datasets({"a": ds}, tmp_path / "out")
    data.save_datasets({"a": ds}, tmp_path / "out")  # its own save is replaced
    assert len(data.load_datasets(tmp_path / "out")["a"]) == 1


def test_save_datasets_and_to_trl_dpo_refuse_what_is_not_a_dataset(tmp_path):
    """Both were AttributeErrors."""
    with pytest.raises(ValueError, match="save_datasets: dataset 'x' must be a datasets.Dataset, got list"):
        data.save_datasets({"ok": data.validate_stepwise([STEP]), "x": [1, 2]}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="save_datasets: expected a dict of name -> Dataset, got list"):
        data.save_datasets([data.validate_stepwise([STEP])], tmp_path / "out")
    with pytest.raises(ValueError, match="to_trl_dpo: expected a datasets.Dataset .*, got list"):
        data.to_trl_dpo([PREF])


def test_gold_vs_error_pairs_are_checked_and_deterministic():
    from stepdpo_lite.tutorial.labelling import toy_gold_vs_error_pairs
    pairs = toy_gold_vs_error_pairs(20, seed=3)
    assert len(pairs) == 20 and list(pairs) == list(toy_gold_vs_error_pairs(20, seed=3))
    for row, problem in zip(pairs, toyworld.make_problems(20, seed=3)):
        assert row["chosen"] == problem.gold_solution and all(row["chosen_step_labels"])
        verdict = toyworld.check(problem, row["rejected"])
        # "mistake made here", as preference_pairs: only the slipped step is False
        assert row["rejected_step_labels"] == verdict.mistake_labels and not verdict.answer_correct
        assert row["rejected_step_labels"].count(False) == 1
        assert verdict.error_kinds[verdict.first_error] == "arithmetic"
    reachable = toy_gold_vs_error_pairs(20, seed=3, rejected_labels="reachability")
    for row, problem in zip(reachable, toyworld.make_problems(20, seed=3)):
        assert row["rejected_step_labels"] == toyworld.check(problem, row["rejected"]).step_labels
    with pytest.raises(ValueError, match="rejected_labels must be"):
        toy_gold_vs_error_pairs(2, rejected_labels="value")


@pytest.mark.parametrize("n", [0, True, 1.5])
def test_gold_vs_error_pairs_refuse_a_count_that_is_no_positive_int(n):
    """0 made a Dataset without columns, True one pair, 1.5 a TypeError."""
    with pytest.raises(ValueError, match="toy_gold_vs_error_pairs: n must be an int >= 1"):
        labelling.toy_gold_vs_error_pairs(n)


def test_gold_vs_error_pairs_step_count():
    from stepdpo_lite.tutorial.labelling import toy_gold_vs_error_pairs
    pairs = toy_gold_vs_error_pairs(5, seed=1, min_ops=30, max_ops=30)  # long pairs for memory benchmarks
    for row in pairs:
        assert len(extract_steps(row["chosen"])) == 30 == len(row["chosen_step_labels"])
        assert len(row["rejected_step_labels"]) == 30 and not all(row["rejected_step_labels"])


def test_to_trl_dpo_keeps_what_the_trainer_reads():
    """Converted twice, Step-DPO rows lost ``open_ended`` (the trainer then appends an EOS to a one-step completion,
    teaching the policy to stop), and ``keep_step_labels`` (now ``keep_step_columns``, the name of what it keeps)
    dropped the step-reward columns (outcome weight 1)."""
    step_dpo = data.validate_step_dpo([dict(prompt="Q:", initial_reason_steps="Step 1: x", chosen="\n\nStep 2: y",
                                       rejected="\n\nStep 2: z")])
    once = data.to_trl_dpo(step_dpo)
    assert data.to_trl_dpo(once)["open_ended"] == once["open_ended"] == [True]
    rows = [dict(prompt="Q:", chosen="\n\nStep 1: y", rejected="\n\nStep 1: z", chosen_step_labels=[True],
                 rejected_step_labels=[False], chosen_step_rewards=[1.0], rejected_step_rewards=[-1.0])]
    kept = data.to_trl_dpo(data.validate_preference(rows), keep_step_columns=True)
    assert kept["chosen_step_rewards"] == [[1.0]] and kept["rejected_step_rewards"] == [[-1.0]]
    assert "chosen_step_rewards" not in data.to_trl_dpo(data.validate_preference(rows)).column_names


def test_skip_invalid_skips_a_line_that_is_not_json_and_a_pretty_printed_file_is_named(tmp_path, caplog):
    """A user's trial: a line cut short raised even with skip_invalid=True (the docs say it skips and counts invalid
    rows; a truncated line is the commonest in a big download), and a pretty-printed file (PRM800K's upstream
    examples) got the hint "is the line truncated?"."""
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(PREF) + '\n{"prompt": "q", "chosen": "a", "rej\n' + json.dumps({**PREF, "prompt": "r"}))
    with pytest.raises(ValueError, match=r"preference: .*rows.jsonl, line 2: not valid JSON \(.*\); is the line "
                                         r"truncated\?$"):
        data.load_preference(path)
    with caplog.at_level(logging.WARNING, logger="stepdpo_lite.data"):
        assert data.load_preference(path, skip_invalid=True)["prompt"] == ["p", "r"]
    assert "skipped 1 invalid records (skip_invalid=True); the first: " in caplog.text and "line 2" in caplog.text
    path.write_text(json.dumps(PREF, indent=2) + "\n")
    for skip in (False, True):  # a file in another layout, not one record to skip
        with pytest.raises(ValueError, match=r"rows.jsonl, line 1: not valid JSON .*the file looks like pretty-printed "
                                             r"JSON: write one object a line, or a .json array"):
            data.load_preference(path, skip_invalid=skip)
    upper = tmp_path / "PAIRS.JSON"  # a .json array under an upper-case suffix: it was read as JSONL and refused
    upper.write_text(json.dumps([PREF, {**PREF, "prompt": "r"}], indent=2))
    assert data.load_preference(upper)["prompt"] == ["p", "r"]


def test_step_dpo_pairs_split_the_gold_solution_with_the_verdicts_delimiter():
    """A user's GSM8K-style data: the gold solution was split with the toy world's "\\n\\nStep", so a 3-line gold was
    one step and no pair took its step k ("left out: wrong steps with no right step to pair")."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Lines:  # a problem with a gold solution in lines, no checker
        prompt: str
        gold_solution: str

    problem = Lines("Q: 12 + 5 - 9?\n", "12 + 5 = 17\n17 - 9 = 8\nAnswer: 8")
    slipped = "12 + 5 = 17\n17 - 9 = 9\nAnswer: 9"
    steps = extract_steps(slipped, "\n")
    verdict = Verdict([True, False, False], 1, False, steps=steps)
    with pytest.raises(ValueError, match=r"step_dpo_pairs: problem 0, solution 0: its verdict has 3 steps but the "
                                         r"delimiter '\\n\\nStep' splits the text into 1 step: pass delimiter="):
        labelling.step_dpo_pairs([problem], [[slipped]], verdicts=[[verdict]])  # the toy delimiter: refused, named
    (pair,) = labelling.step_dpo_pairs([problem], [[slipped]], verdicts=[[verdict]], delimiter="\n")
    assert (pair["initial_reason_steps"], pair["chosen"], pair["rejected"], pair["chosen_source"]) == (
        "12 + 5 = 17", "\n17 - 9 = 8", "\n17 - 9 = 9", "gold")


def test_bare_steps_are_named_against_a_delimiter_and_delimit_steps_converts_them():
    """A user's trial: TRL-style bare steps ("12 - 5 = 7", no delimiter before steps 2..K) passed the checks, and
    the PRM trained on 'Compute 12 - 5 + 6.12 - 5 = 77 + 6 = 13'."""
    row = {"prompt": "Compute 12 - 5 + 6.", "completions": ["12 - 5 = 7", "7 + 6 = 13"], "labels": [True, True]}
    assert len(data.validate_stepwise([row])) == 1  # no delimiter named: the count is all that can be checked
    with pytest.raises(ValueError, match=re.escape("stepwise: record 0: field 'completions[1]': does not open with the "
                                                   "delimiter '\\n': bare steps run together when joined; "
                                                   "data.delimit_steps(row, '\\n') puts it in front")):
        data.validate_stepwise([row], delimiter="\n")
    fixed = data.delimit_steps(row, "\n")
    assert fixed == {**row, "prompt": "Compute 12 - 5 + 6.\n", "completions": ["12 - 5 = 7", "\n7 + 6 = 13"]}
    assert data.delimit_steps(fixed, "\n") == fixed  # a step that opens with it, a prompt that ends in one: kept
    assert data.validate_stepwise([fixed], delimiter="\n").to_list() == [fixed]
    assert datasets.Dataset.from_list([row]).map(lambda r: data.delimit_steps(r, "\n")).to_list() == [fixed]
    with pytest.raises(ValueError, match=re.escape("delimit_steps: row: field 'labels': has 1 labels for 2")):
        data.delimit_steps({**row, "labels": [True]}, "\n")


def test_delimit_steps_adds_only_the_part_of_the_delimiter_a_step_does_not_open_with():
    """A recheck trial: steps written "Step 2: ..." with the kit's "\\n\\nStep" became "\\n\\nStepStep 2: ...", which
    the checks passed and extract_steps split back; "\\n\\n" before "\\nb" gave three line breaks; "" did nothing."""
    row = {"prompt": "Start with 5.\n", "completions": ["Step 1: 5 + 6 = 11", "Step 2: 11 - 9 = 2"],
           "labels": [True] * 2}
    with pytest.raises(ValueError, match=re.escape("data.delimit_steps(row, '\\n\\nStep') puts it in front")):
        data.validate_stepwise([row], delimiter="\n\nStep")  # the advice, followed, gives the intended row:
    fixed = data.delimit_steps(row, "\n\nStep")
    assert fixed["completions"] == ["Step 1: 5 + 6 = 11", "\n\nStep 2: 11 - 9 = 2"]
    assert data.validate_stepwise([fixed], delimiter="\n\nStep").to_list() == [fixed]
    assert extract_steps("".join(fixed["completions"]), "\n\nStep") == fixed["completions"]
    assert data.delimit_steps(fixed, "\n\nStep") == fixed
    steps = data.delimit_steps({**row, "completions": ["a", "\nb", "c", "\n\nd"], "labels": [True] * 4}, "\n\n")
    assert steps["completions"] == ["a", "\n\nb", "\n\nc", "\n\nd"]
    words = data.delimit_steps({**row, "completions": ["a", "p = 3", "tep"], "labels": [True] * 3}, "\n\nStep")
    assert words["completions"] == ["a", "\n\nStepp = 3", "\n\nSteptep"]  # only whole words count as there
    for delimiter in ("", None):
        with pytest.raises(ValueError, match="delimit_steps: delimiter must be a non-empty string"):
            data.delimit_steps(row, delimiter)
    joined = {**row, "prompt": "Start with 5."}
    assert data.delimit_steps(joined, "\n", prompt_separator="")["prompt"] == "Start with 5."  # "": added nothing
    for separator in (None, 1):  # None was "unsupported operand type(s) for *", naming nothing
        with pytest.raises(ValueError, match="delimit_steps: prompt_separator must be a string"):
            data.delimit_steps(joined, "\n", prompt_separator=separator)


def test_skip_invalid_that_leaves_no_record_is_an_error_quoting_the_first():
    """A recheck trial: validate_stepwise(..., skip_invalid=True) skipping all 8 rows returned an empty Dataset, which
    failed later with "IndexError: Invalid key: 0 is out of bounds for size 0"."""
    bare = {"prompt": "Q", "completions": ["a", "b"], "labels": [True, True]}
    with pytest.raises(ValueError, match=re.escape("stepwise: every record is invalid (2 skipped); the first: record "
                                                   "0: field 'completions[1]': does not open with the delimiter")):
        data.validate_stepwise([bare, bare], delimiter="\n", skip_invalid=True)
    with pytest.raises(ValueError, match=re.escape("preference: every record is invalid (1 skipped)")):
        data.validate_preference([{**PREF, "rejected": PREF["chosen"]}], skip_invalid=True)
    assert len(data.validate_stepwise([bare, data.delimit_steps(bare, "\n")], delimiter="\n", skip_invalid=True)) == 1


def test_prompt_runs_into_its_first_step_only_with_no_whitespace_between():
    assert data.prompt_runs_into("What is 2 + 2?", "Step 1: 2 + 2 = 4")
    assert not data.prompt_runs_into("What is 2 + 2?\n", "Step 1: 2 + 2 = 4")
    assert not data.prompt_runs_into("What is 2 + 2?", " Step 1: 2 + 2 = 4")
    problem = toyworld.make_problems(1, "train", seed=0)[0]  # the toy world's prompts end with a newline
    assert not data.prompt_runs_into(problem.prompt, toyworld.check(problem, problem.gold_solution).steps[0])


def test_a_label_count_names_the_blank_step_merged_into_the_next_not_the_delimiter():
    """A user's trial: a solution with an empty step ("\\n\\n\\n\\n"), labelled one per step as written: extract_steps
    joins the blank piece to the next step, and the error blamed the delimiter."""
    text = "We have $2^5 = 2 \\cdot 2^4$.\n\n\n\n$2^4 = 16$.\n\nThe answer is 32."
    row = {"prompt": "p\n", "completions": extract_steps(text, "\n\n"), "labels": [True, True, False, True]}
    blank = "step 2 opens with 4 line breaks, more than the others: a blank step before it"
    with pytest.raises(ValueError, match=re.escape(f"field 'labels': has 4 labels for 3 completions (steps); {blank}")):
        data.validate_stepwise([row])
    pair = {**PREF, "rejected": text, "rejected_step_labels": [True, True, False, True]}
    with pytest.raises(ValueError, match=re.escape(f"'rejected' has 3 steps (delimiter '\\n\\n'); {blank}")):
        data.validate_preference([pair], delimiter="\n\n")
    with pytest.raises(ValueError, match=r"has 3 labels but 'completion' has 2 steps \(delimiter '\\n'\)$"):
        data.validate_outcome([{**OUT, "step_labels": [True] * 3}], delimiter="\n")  # one label too many: no hint
    with pytest.raises(ValueError, match=re.escape("'chosen' has 1 steps (delimiter '\\n\\nStep'); split at '\\n' it "
                                                   "has 2 steps: is that its delimiter?")):
        data.validate_preference([{**PREF, "chosen": "a\nb", "chosen_step_labels": [True, True]}],
                                 delimiter="\n\nStep")


def test_a_null_label_is_missing_and_a_count_hint_names_only_a_delimiter_the_text_holds():
    """A walkthrough: a null label was told "convert the labels: bool(x)", and bool(None) is False (an unlabelled
    step made a wrong one); one label for "a\\nb" at '\\n' was asked "split at '\\n\\nStep' it has 1 steps: is
    that its delimiter?", of a text that holds no '\\n\\nStep'."""
    missing = "; the {}'s label is missing (null): label it, or leave the row out"
    with pytest.raises(ValueError, match=re.escape("field 'labels[1]': must be true or false, got None"
                                                   + missing.format("step")) + "$"):
        data.validate_stepwise([{**STEP, "labels": [True, None]}])
    with pytest.raises(ValueError, match=re.escape("field 'label': must be true or false, got None"
                                                   + missing.format("row")) + "$"):
        data.validate_outcome([{**OUT, "label": None}])
    with pytest.raises(ValueError, match=r"has 1 labels but 'completion' has 2 steps \(delimiter '\\n'\)$"):
        data.validate_outcome([{**OUT, "step_labels": [True]}], delimiter="\n")


def test_csv_and_parquet_paths_name_the_format_and_the_route_in(tmp_path):
    """Were "line 1: not valid JSON (...); is the line truncated?" and "not valid UTF-8"."""
    for name, kind in (("my.csv", "csv"), ("my.parquet", "parquet")):
        (tmp_path / name).write_bytes(b"prompt,completions,labels\n")
        route = f"is {kind.upper()}, not JSON/JSONL: pass datasets.load_dataset('{kind}', data_files=...)['train']"
        for load, who in ((data.validate_stepwise, "stepwise"), (data.load_preference, "preference"),
                          (public_datasets.load_math_shepherd, "load_math_shepherd")):
            with pytest.raises(ValueError, match=re.escape(f"{who}: {tmp_path / name} {route}")):
                load(tmp_path / name)
            with pytest.raises(ValueError) as refused:
                load(tmp_path / name)
            assert ("lists as text" in str(refused.value)) == (kind == "csv")  # parquet keeps lists as lists


def test_a_list_field_given_as_text_is_told_to_parse_it(tmp_path):
    """A recheck trial: load_dataset('csv') gives list columns as text ("['4 * 2 = 8', ...]"), refused with no hint."""
    row = {"prompt": "Q", "completions": "['4 * 2 = 8', 'The answer is 8']", "labels": "[True, True]"}
    with pytest.raises(ValueError, match=re.escape("field 'completions': must be a non-empty list of non-empty "
                                                   "strings, got \"['4 * 2 = 8', 'The answer is 8']\" (CSV holds "
                                                   "lists as text: parse them with ast.literal_eval or json.loads)")):
        data.validate_stepwise([row])
    with pytest.raises(ValueError) as refused:
        data.validate_stepwise([{**row, "completions": "4 * 2 = 8"}])  # one step as a string: not a list as text
    assert "literal_eval" not in str(refused.value)


def test_chat_messages_missing_fields_and_label_types_say_what_to_do():
    chat = [{"role": "user", "content": "What is 2 + 2?"}]
    with pytest.raises(ValueError, match=re.escape("preference: record 0: field 'prompt': holds chat messages "
                                                   "(role/content dicts), not a string: flatten them with tokenizer."
                                                   "apply_chat_template(messages, tokenize=False)")):
        data.validate_preference([{**PREF, "prompt": chat}])
    with pytest.raises(ValueError, match=re.escape("field 'chosen': holds chat messages")):
        data.validate_preference([{**PREF, "chosen": [{"role": "assistant", "content": "4"}]}])
    with pytest.raises(ValueError, match=re.escape("field 'prompt': is missing (the record has: question, steps)")):
        data.validate_stepwise([{"question": "q", "steps": ["a"]}])
    with pytest.raises(ValueError, match=re.escape("field 'label': must be true or false, got '+'; convert the "
                                                   "labels: bool(x) for 0/1, x == '+'")):
        data.validate_outcome([{**OUT, "label": "+"}])


def test_formats_md_quotes_the_signatures_and_keeps_the_mc_sketch_out_of_python_blocks():
    """A docs trial: `load_gsm8k_problems(path, skip_invalid=False)` (the code's is keyword-only) and a Monte-Carlo
    sketch in a python fence that failed as written (NameError: mc_step_labels)."""
    import inspect

    text = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()
    signature = inspect.signature(public_datasets.load_gsm8k_problems)
    bare = signature.replace(parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                             return_annotation=signature.empty)
    assert f"`load_gsm8k_problems{bare}`" in text  # (path, *, skip_invalid=False)
    python_blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert not [b for b in python_blocks if "my_answer" in b]  # the sketch is a text block
    assert "```text\nds = mc_step_labels(" in text
    assert "data.delimit_steps(row, " in text and "`data.prompt_runs_into`" in text


def test_steps_that_open_with_another_delimiter_are_told_to_pass_it_not_to_rewrite_the_data():
    """A user's trial: "\\n" rows checked against the toy delimiter were told data.delimit_steps(row, '\\n\\nStep')
    puts it in front, i.e. to rewrite their data into the toy delimiter, when the fix was delimiter='\\n'."""
    def refusal(completions, delimiter):
        with pytest.raises(ValueError) as refused:
            data.validate_stepwise([{"prompt": "p\n", "completions": completions, "labels": [True] * len(completions)}],
                                   delimiter=delimiter)
        return str(refused.value)

    assert refusal(["a", "\nb", "\nc"], "\n\nStep") == ("stepwise: record 0: field 'completions[1]': does not open "
                                                        "with the delimiter '\\n\\nStep': steps 2..K open with '\\n': "
                                                        "pass delimiter='\\n'")
    assert refusal(["a", "\n\nb", "\n\nc"], "\n\nStep").endswith("with '\\n\\n': pass delimiter='\\n\\n'")  # longest
    assert refusal(["a", "\n\nb", "\nc"], "\n\n").endswith(  # the one all of them open with
        "field 'completions[2]': does not open with the delimiter '\\n\\n': steps 2..K open with '\\n': pass "
        "delimiter='\\n'")
    # steps that hold '\n' as well (PRM800K's) are named by what they open with, as the check reads them, not told to
    # rewrite into the toy delimiter: they pass at '\n' (only the PRM's training asks that a row split back there)
    prm800k = ["1 + 1 = 2\nso 2", "\n2 + 2 = 4"]
    assert refusal(prm800k, "\n\nStep").endswith("steps 2..K open with '\\n': pass delimiter='\\n'")
    assert data.validate_stepwise([{"prompt": "p\n", "completions": prm800k, "labels": [True] * 2}], delimiter="\n")
    for bare in (["a", "\nb", "c"], ["a", "b"]):  # not every step opens with one: bare steps, as before
        assert refusal(bare, "\n\nStep").endswith("bare steps run together when joined; data.delimit_steps(row, "
                                                  "'\\n\\nStep') puts it in front")


def test_the_rule_of_steps_opening_with_the_delimiter_has_one_home():
    """"Steps 2..K open with the delimiter" was written three times (this check, the PRM's training, a PRM's scoring)
    and "which delimiter is the data's" twice: data's first_step_not_opening and delimiter_of are the one copy."""
    import inspect
    from stepdpo_lite import reward_training, rewards
    prm800k = ["1 + 1 = 2\nso 2", "\n2 + 2 = 4"]  # opens with '\n', yet holds one: does not split back there
    assert data.first_step_not_opening(prm800k, "\n") == 0 and data.first_step_not_opening(["a", "b"], "\n") == 1
    assert data.delimiter_of(prm800k) == "\n" and data.delimiter_of(prm800k, splits_back=True) is None
    assert data.delimiter_of(["a", "\n\nb"], splits_back=True) == "\n\n" and data.delimiter_of(["a", "b"]) is None
    for code in (inspect.getsource(reward_training._train), inspect.getsource(rewards.GenerativeVerifier)):
        assert not re.search(r"startswith\((c|self\.config)\.step_delimiter", code) and "DELIMITERS" not in code

def test_numpy_bool_labels_are_taken_as_python_bools_and_numpy_numbers_are_still_refused():
    """A user's trial: labels from a DataFrame or an array (list(np.array([True, False]))) were refused with "got
    np.True_; convert the labels: bool(x)": numpy bools are bools."""
    import numpy as np
    flags = list(np.array([True, False]))
    row = {**STEP, "labels": flags}
    assert data.validate_stepwise([row], delimiter="\n").to_list() == [{**STEP, "labels": [True, False]}]
    for plain in (data.delimit_steps(row, "\n"), data.check_records([("row", row)], data.check_stepwise_row, "x")[0]):
        assert [type(x) for x in plain["labels"]] == [bool, bool] and json.dumps(plain)  # rows returned as they are
    assert data.validate_outcome([{**OUT, "label": np.True_, "step_labels": flags}])[0]["label"] is True
    pair = data.validate_preference([{**PREF, "chosen_step_labels": [np.True_] * 2, "rejected_step_labels": flags}])
    assert pair.to_list()[0]["rejected_step_labels"] == [True, False]
    with pytest.raises(ValueError, match=re.escape("field 'labels[0]': must be true or false, got np.int64(1)")):
        data.validate_stepwise([{**STEP, "labels": list(np.array([1, 0]))}])  # 0/1 are no labels, numpy's neither
    with pytest.raises(ValueError, match=re.escape("field 'label': must be true or false, got np.float64(1.0)")):
        data.validate_outcome([{**OUT, "label": np.float64(1.0)}])


def test_one_warning_of_prompts_that_run_into_their_responses_names_the_first_row():
    """reward_training and the DPO trainer each held this check and its advice: one helper for both now (data)."""
    import warnings

    from stepdpo_lite.data import warn_of_joined_prompts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_of_joined_prompts("who", ["P\n", "P", "P:", "P"], [["S"], [" S", "T"], ["S"], [" S"]], "their responses")
        warn_of_joined_prompts("who", ["P", "P\n"], [["S"], ["S"]], "their first step", ["a.jsonl, line 1", "line 2"])
        warn_of_joined_prompts("who", ["P\n"], [["S"]], "their first step")
    assert [str(w.message) for w in caught] == [
        "who: 2 of 4 rows' prompts run into their responses with no whitespace between (row 1 first, field 'prompt'): "
        "end them with '\\n' (data.delimit_steps does) or the model's chat template",
        "who: 1 of 2 rows' prompts run into their first step with no whitespace between (a.jsonl, line 1 first, field "
        "'prompt'): end them with '\\n' (data.delimit_steps does) or the model's chat template"]
    assert {w.filename for w in caught} == {__file__}


def test_mc_hard_label_is_right_when_any_rollout_is(monkeypatch):
    """Hard = "any rollout reaches the right answer" (soft > 0), not a majority: one right rollout of four is a
    soft label of 0.25 and a hard label True. The tiny model's rollouts gave no share strictly between 0 and 0.5."""
    monkeypatch.setattr(labelling.generation, "sample_solutions",
                        lambda model, tok, prompts, n, **kw: [["R"] + ["W"] * (n - 1) for _ in prompts])
    ds = labelling.mc_step_labels(None, None, ["Problem: a\n"], [["Step 1: x", "\n\nStep 2: y", "\n\nStep 3: z"]],
                                  lambda i, text: text.endswith(("R", "z")), n=4, progress=False)
    assert ds["soft_labels"][0] == [0.25, 0.25, 1.0] and ds["labels"][0] == [True, True, True]


def test_validate_stepwise_refuses_a_delimiter_that_is_no_string():
    """delimiter="" checked nothing (read as None, without a word); 5 was a TypeError from str.startswith."""
    row = {"prompt": "Q?\n", "completions": ["Step 1: a", "\n\nStep 2: b"], "labels": [True, False]}
    for bad in ("", 5):
        with pytest.raises(ValueError, match="validate_stepwise: delimiter must be a non-empty string or None, got "
                                             + re.escape(repr(bad))):
            data.validate_stepwise([row], delimiter=bad)
    assert len(data.validate_stepwise([row], delimiter="\n\nStep")) == 1
