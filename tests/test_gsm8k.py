import json
import warnings

import pytest

from stepdpo_lite.tutorial import gsm8k
from stepdpo_lite.tutorial.task_problems import Verdict


def _fake_hub(monkeypatch, splits):
    """``datasets.load_dataset`` serving ``splits`` (split name -> rows), as a Hub copy of GSM8K would."""
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, split: datasets.Dataset.from_list(splits[split]))


@pytest.mark.parametrize("text, want", [
    ("Step 1: 16 - 3 - 4 = 9\n\nStep 2: 9 * 2 = 18\n\nAnswer: 18", 18.0),
    ("... so she pays $1,234.50 in total.\n\nAnswer: $1,234.50", 1234.5),
    ("Janet sells 9 eggs.\n#### 18", 18.0),
    ("no answer marker, the last number wins: 3 then 7", 7.0),
    ("Answer: -4", -4.0),
    ("Answer: 5 + 3 = 8", 8.0),  # an equation on the answer line: its result (it took the first number, 5)
    ("Answer: 18 (6 x 3)", 18.0),  # else the first number of the line
    ("nothing numeric here", None),
    ("Answer: -$5", -5.0),  # the minus before the dollar sign (it read 5)
    ("Answer: $.50", 0.5),  # no leading zero (it read 50)
    ("Answer: .5", 0.5),
    # a review (2026-12-03): asides in brackets, a number standing before an equation, fractions, LaTeX, U+2212
    ("Answer: 18 (she sells 16 - 3 - 4 = 9 eggs at $2 each)", 18.0),  # it read 9
    ("Answer: $18 = 9 eggs x $2", 18.0),  # it read 9
    ("Answer: 20 (not 9 + 9 = 18)", 20.0),  # it read 18
    ("Answer: The total is 5 + 3 = 8", 8.0),
    ("Answer: 3/4", 0.75),  # it read 3
    ("Answer: 1{,}000", 1000.0),  # it read 1
    ("Answer: \u221212", -12.0),  # it read 12
])
def test_extract_answer(text, want):
    assert gsm8k.extract_answer(text) == want


def test_extract_answer_reads_the_last_answer_marker():
    """A solution that writes an early "Answer:" and then goes on to a final one is graded by the final one."""
    assert gsm8k.extract_answer("Answer: 3 apples so far\n\nStep 2: 3 + 4 = 7\n\nAnswer: 7") == 7.0
    assert gsm8k.extract_answer("#### 5\n#### 6") == 6.0
    for not_text in (None, ["Answer: 5"]):  # an AttributeError on .replace before
        with pytest.raises(ValueError, match=f"extract_answer: text must be a string .*{type(not_text).__name__}"):
            gsm8k.extract_answer(not_text)


def test_answer_matches():
    assert gsm8k.answer_matches("Answer: 18", "18")
    assert not gsm8k.answer_matches("Answer: 17", "18")
    assert not gsm8k.answer_matches("I don't know", "18")
    assert gsm8k.answer_matches("Answer: 1,000", "1000")


def test_answer_matches_refuses_a_near_miss():
    """GSM8K answers are exact: 18.5 or 17.5 for 18 is wrong."""
    assert not gsm8k.answer_matches("Answer: 18.5", "18")
    assert not gsm8k.answer_matches("Answer: 17.5", "18")
    assert gsm8k.answer_matches("Answer: 18.0", "18")


@pytest.mark.parametrize("text, want", [
    ("Answer: 2,5", None),  # it read 25: a comma that groups no thousands (2.5 the European way, or a list)
    ("Answer: 1,0000", None),  # it read 10000
    ("Answer: 12,34", None),
    ("Answer: 1,234,567", 1234567.0),
    ("Answer: -$1,000.", -1000.0),
    ("Answer: 5, 6 and 7", 5.0),  # a list's comma and space: the first number, as before
    ("the boxes hold 2,5 and then 7", 7.0),
])
def test_a_comma_is_a_thousands_separator_only_between_groups_of_three(text, want):
    """GSM8K writes thousands as 1,000 (no other comma in a number over its 1,319 test answers and 5,276 sample
    solutions: none of their readings changed with this check)."""
    assert gsm8k.extract_answer(text) == want
    assert not gsm8k.answer_matches("Answer: 2,5", "25")
    with pytest.raises(ValueError, match="not a number"):
        gsm8k.GSM8KProblem("How many?", "2,5", "prompt")


@pytest.mark.parametrize("final", ["nan", "inf", "-Infinity", "1_000", "eighteen"])
def test_a_gold_answer_that_grades_nothing_right_is_refused(final):
    """float() reads nan, inf and 1_000: such a gold answer graded every solution wrong, silently."""
    with pytest.raises(gsm8k.BadField, match="must be a number"):
        gsm8k.split_answer({"question": "How many?", "answer": f"2 + 2 = 4\n#### {final}"})
    assert gsm8k.split_answer({"question": "How many?", "answer": "#### $1,000"})[1] == "$1,000"


@pytest.mark.parametrize("answer", ["eighteen", "nan", None, "18 dollars"])
def test_a_problem_whose_answer_grades_nothing_right_is_refused(answer):
    """split_answer refuses such a final answer; a GSM8KProblem made directly graded every solution wrong, silently."""
    with pytest.raises(ValueError, match="the reference answer .* is not a number"):
        gsm8k.GSM8KProblem("How many?", answer, "prompt")
    assert gsm8k.GSM8KProblem("How many?", "$1,000", "prompt").is_correct("Answer: 1000")


def test_reference_steps_leave_out_the_final_answer_line_of_a_raw_gsm8k_answer():
    """A problem made from a Hub row's answer as it stands (its "#### 72" line kept) counts 2 reference steps, and
    its reference solution shows no "Step 3: #### 72"."""
    raw = "She sold 48/2 = 24.\nShe sold 48+24 = 72.\n#### 72"  # a GSM8K answer as the Hub stores it
    problem = gsm8k.GSM8KProblem("How many clips?", "72", "prompt", raw)
    assert problem.reference_steps == 2
    assert gsm8k.reference_solution(problem).count("Step") == 2


def test_format_prompt(tiny_tokenizer):
    prompt = gsm8k.format_prompt("How many eggs?", tiny_tokenizer)  # no chat template: plain text
    assert "How many eggs?" in prompt and "Step 1:" in prompt
    with pytest.raises(ValueError, match="empty"):
        gsm8k.format_prompt("  ", tiny_tokenizer)


def test_mc_verdicts_shapes_and_labels(tiny_tokenizer, tiny_model):
    problems = [gsm8k.GSM8KProblem("q", "5", "Problem: start with 2. Step 1: + 3.\n")]
    solutions = [["Step 1: 2 + 3 = 5\n\nAnswer: 5", "Step 1: 2 + 3 = 6\n\nStep 2: 6 + 1 = 7\n\nAnswer: 7", "  "]]
    out = gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, problems, solutions, n_rollouts=2, progress=False,
                            max_new_tokens=4)
    assert len(out) == 1 and len(out[0]) == 3  # one verdict per solution, the blank one's too
    right, wrong, blank = out[0]
    assert blank == Verdict([], -1, False)  # no steps, a wrong answer: the toy checker's for a blank
    assert right.answer_correct and right.step_labels == [True] and right.first_error == -1
    assert not wrong.answer_correct and wrong.step_labels[-1] is False and len(wrong.step_labels) == 2


@pytest.mark.filterwarnings("ignore:mc_verdicts. only 0 of 2 samples")  # one-step samples, on purpose
def test_mc_verdicts_passes_rollout_length_and_batch_through(monkeypatch, tiny_tokenizer, tiny_model):
    """Issue #14: rollouts used to stop at mc_step_labels' default 160 new tokens, in batches of 64."""
    from stepdpo_lite.tutorial import labelling

    seen = {}

    def fake(model, tokenizer, prompts, solutions, is_correct, **kw):
        seen.update(kw, prompts=list(prompts))
        return {"labels": [[False] * len(s) for s in solutions]}

    monkeypatch.setattr(labelling, "mc_step_labels", fake)
    problems = [gsm8k.GSM8KProblem("q", "5", "PROMPT\n")]
    out = gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, problems,
                            [["Step 1: a\n\nAnswer: 5", "Step 1: b\n\nAnswer: 4"]],
                            n_rollouts=3, batch_size=7, max_new_tokens=512, progress=False)
    assert seen["max_new_tokens"] == 512 and seen["batch_size"] == 7 and seen["n"] == 3
    assert seen["prompts"] == ["PROMPT\n"]  # only the wrong solution is rolled out, from the problem's prompt
    assert out[0][0].step_labels == [True] and out[0][0].answer_correct  # right answer: reached after every step
    assert out[0][1].step_labels == [False] and out[0][1].first_error == 0


def test_mc_verdicts_names_a_solution_that_is_no_str_and_a_prompt_given_as_a_problem(tiny_tokenizer, tiny_model):
    """Both were an AttributeError (None.strip(), str.is_correct) before any rollout."""
    problems = [gsm8k.GSM8KProblem("q", "5", "PROMPT\n")]
    with pytest.raises(ValueError, match="mc_verdicts: problem 0, solution 1: must be a str .*, got NoneType"):
        gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, problems, [["Answer: 5", None]], progress=False)
    with pytest.raises(ValueError, match="mc_verdicts: problem 0: its prompt must be a str"):
        gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, ["PROMPT\n"], [["Answer: 5"]], progress=False)


@pytest.mark.filterwarnings("ignore:sample_solutions. 1 of 1 solutions stopped")  # rollouts of a token, on purpose
def test_mc_verdicts_grades_with_the_kits_grader_naming_the_problem_and_solution(tiny_tokenizer, tiny_model):
    """An own task's is_correct returning 1 (0 and 1 are bools to the kit's grader) failed inside Verdict, naming no
    problem, and "False" was read as right (no rollouts): graded as task_problems.graded grades, named, rollouts too."""
    solutions = [["Step 1: 2 + 3 = 5\n\nAnswer: 5", "Step 1: 2 + 3 = 6\n\nStep 2: 6 + 1 = 7\n\nAnswer: 7"]]

    def own(verdict):
        return [type("Own", (gsm8k.GSM8KProblem,), {"is_correct": verdict})("q", "5", "Problem: 2 + 3.\n")]

    out = gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, own(lambda self, s: int(s.endswith("5"))), solutions,
                            n_rollouts=1, max_new_tokens=2, progress=False)
    assert [v.answer_correct for v in out[0]] == [True, False]
    with pytest.raises(ValueError, match=r"mc_verdicts: problem 0, solution 1: the problem's is_correct must return a "
                                         r"bool \(docs/own_task.md\), got str 'False'"):
        gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, own(lambda self, s: s.endswith("5") or "False"), solutions,
                          progress=False)
    with pytest.raises(ValueError, match=r"mc_verdicts: problem 0, solution 1, a rollout after one of its steps: "
                                         r"the problem's is_correct must return a bool"):  # the samples' are bools
        gsm8k.mc_verdicts(tiny_model, tiny_tokenizer, own(lambda self, s: s.endswith("5") if s in solutions[0]
                                                          else None), solutions, n_rollouts=1, max_new_tokens=1,
                          progress=False)


def test_mc_verdicts_warns_before_any_rollout_when_most_samples_are_one_step(monkeypatch):
    """Qwen2.5-Instruct may write "### Step 1:" or "**Step 1:**" where INSTRUCTION asks for paragraphs opening
    "Step k:": every such sample was one step at "\\n\\nStep", and its Monte-Carlo labels, the PRM and Stepwise DPO
    worked per solution, without a word (T14). The splitter is unchanged: the kit says so, with the share and an
    example."""
    problems = [gsm8k.GSM8KProblem("q", "5", "PROMPT\n")]
    heading, bold, asked = ("### Step 1: 2 + 3 = 5\n\n### Step 2: so 5\n\nAnswer: 5",
                            "**Step 1:** 2 + 3 = 5\n\n**Step 2:** 5\n\nAnswer: 5",
                            "Step 1: 2 + 3 = 5\n\nStep 2: 5 + 0 = 5\n\nAnswer: 5")
    with pytest.warns(UserWarning, match=r"mc_verdicts: only 1 of 3 samples \(33%\) split into two") as seen:
        # every answer is right: no rollouts, so no model is needed
        out = gsm8k.mc_verdicts(None, None, problems, [[heading, bold, asked, " "]], progress=False)
    message = str(seen[0].message)
    assert "under 50%" in message and repr(heading[:80]) in message and "rewrite the samples' step openings" in message
    assert [len(v.step_labels) for v in out[0]] == [1, 1, 2, 0]  # the labels as before
    warned_before = []  # a wrong answer is rolled out: the warning has come by then
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monkeypatch.setattr(gsm8k.labelling, "mc_step_labels",
                            lambda *a, **k: warned_before.append(len(caught)) or {"labels": [[True, False]]})
        gsm8k.mc_verdicts(None, None, problems, [[heading, bold, asked.replace("Answer: 5", "Answer: 6")]],
                          progress=False)
    assert warned_before == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at or over half: quiet (the smoke profile's toy base splits 72-91%)
        assert gsm8k.warn_of_one_step_samples([asked, heading]) == 0.5
        assert gsm8k.warn_of_one_step_samples([" "]) == 1.0  # no sample to judge
    with pytest.raises(ValueError, match="warn_of_one_step_samples: solution 1 must be a str .*, got NoneType"):
        gsm8k.warn_of_one_step_samples([asked, None])
    with pytest.raises(ValueError, match="a list of sampled texts, got one str"):
        gsm8k.warn_of_one_step_samples(asked)


def test_warn_of_one_step_samples_leaves_blank_samples_out_of_the_share():
    one, two = "Step 1: 2 + 3 = 5\n\nAnswer: 5", "Step 1: 2 + 3 = 5\n\nStep 2: 5 + 0 = 5\n\nAnswer: 5"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gsm8k.warn_of_one_step_samples([two, one, " ", ""]) == 0.5  # 1 of the 2 samples written


def test_mc_verdicts_splits_each_sample_into_steps_once(monkeypatch):
    """mc_verdicts split every sample at the delimiter twice: once in warn_of_one_step_samples, then again for its
    labels. It splits once and passes the steps on; steps given for other samples are refused."""
    problems = [gsm8k.GSM8KProblem("q", "5", "PROMPT\n")]
    solutions = ["Step 1: 2 + 3 = 5\n\nStep 2: 5 + 0 = 5\n\nAnswer: 5", "Step 1: 5\n\nStep 2: so 5\n\nAnswer: 5", " "]
    split = []
    monkeypatch.setattr(gsm8k, "extract_steps", lambda text: split.append(text) or text.split("\n\n"))
    out = gsm8k.mc_verdicts(None, None, problems, [solutions], progress=False)  # right answers: no rollouts
    assert split == solutions[:2] and [len(v.step_labels) for v in out[0]] == [3, 3, 0]
    with pytest.raises(ValueError, match="warn_of_one_step_samples: steps must hold one step list per solution: 1 "
                                         "for 2"):
        gsm8k.warn_of_one_step_samples(solutions[:2], steps=[["a", "b"]])
    with pytest.raises(ValueError, match="warn_of_one_step_samples: solutions: expected a list of sampled texts, got "
                                         "NoneType"):
        gsm8k.warn_of_one_step_samples(None)


def test_a_local_copy_with_a_bad_line_or_row_names_the_file_line_and_field(tmp_path, tiny_tokenizer):
    good = {"question": "Tom has 3 apples and buys 2. How many now?", "answer": "3 + 2 = 5\n#### 5"}
    path = tmp_path / "test.jsonl"
    for lines, message in (([json.dumps(good), "{cut short"], r"test.jsonl, line 2: not valid JSON"),
                           ([json.dumps({"answer": good["answer"]})], "line 1: field 'question': is missing"),
                           ([json.dumps({**good, "answer": 3})], "field 'answer': must be a string, got int"),
                           ([json.dumps({**good, "answer": "x ####  "})], "must be a number, got ''"),
                           # a gold no solution can match graded every one wrong, silently
                           ([json.dumps({**good, "answer": "x #### 18 dollars"})], r"test.jsonl, line 1: field "
                            "'answer': the final answer after '####' must be a number, got '18 dollars'"),
                           ([json.dumps([good])], r"line 1: field '\(record\)': must be a JSON object, got list")):
        path.write_text("\n".join(lines * 4) + "\n")
        with pytest.raises(ValueError, match=message):
            gsm8k.load_problems(tiny_tokenizer, 1, 1, name=str(path))
    path.write_text("\n".join([json.dumps(good)] * 4) + "\n")
    assert len(gsm8k.load_problems(tiny_tokenizer, 1, 1, name=str(path))["test"]) == 1
    for n_train, n_eval in ((1, -1), (True, 1), (1, 1.0)):
        with pytest.raises(ValueError, match="n_train and n_eval must be ints >= 0"):
            gsm8k.load_problems(tiny_tokenizer, n_train, n_eval, name=str(path))


def test_a_local_copys_validation_file_is_said_to_be_unread_not_passed_over(tmp_path, tiny_tokenizer):
    """A folder with train.jsonl, validation.jsonl and test.jsonl: its validation problems were held out of
    train.jsonl, and validation.jsonl passed over without a word."""
    lines = [json.dumps({"question": f"Tom has {k} apples and buys 2. How many now?",
                         "answer": f"{k} + 2 = {k + 2}\n#### {k + 2}"}) for k in range(8)]
    for name in ("train", "test", "validation"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"load_problems: .*/validation.jsonl is not read: the validation problems are "
                                         r"held out of train.jsonl"):
        assert len(gsm8k.load_problems(tiny_tokenizer, 2, 2, name=str(tmp_path))["validation"]) == 2
    (tmp_path / "train.jsonl").unlink()
    with pytest.warns(UserWarning, match=r"held out of test.jsonl, as are the train problems \(carve\)"):
        gsm8k.load_problems(tiny_tokenizer, 2, 1, name=str(tmp_path))
    (tmp_path / "validation.jsonl").rename(tmp_path / "example_model_solutions.jsonl")  # data/gsm8k's: not a split
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gsm8k.load_problems(tiny_tokenizer, 2, 1, name=str(tmp_path))


def test_a_bad_hub_row_is_named_by_its_split_and_index(monkeypatch, tiny_tokenizer):
    """A bad row of a Hub dataset raised "GSM8K row: field 'answer': ..." without saying which row."""
    good = {"question": "Tom has 3 apples and buys 2. How many now?", "answer": "3 + 2 = 5\n#### 5"}
    splits = {"train": [good] * 6, "test": [good] * 2 + [{**good, "answer": "3 + 2 = 5\n#### five"}] + [good] * 3}
    _fake_hub(monkeypatch, splits)
    with pytest.raises(ValueError, match=r"load_problems: user/gsm8k-copy test: record 2: field 'answer': the final"):
        gsm8k.load_problems(tiny_tokenizer, 1, 3, name="user/gsm8k-copy")
    splits["test"][2] = good
    assert len(gsm8k.load_problems(tiny_tokenizer, 1, 3, name="user/gsm8k-copy")["test"]) == 3


def test_the_hubs_validation_problems_are_train_split_problems_not_trained_on(monkeypatch, tiny_tokenizer):
    rows = [{"question": f"Tom has {k} apples and buys 2. How many now?", "answer": f"{k} + 2 = {k + 2}\n#### {k + 2}"}
            for k in range(8)]
    _fake_hub(monkeypatch, {"train": rows, "test": rows})
    parts = gsm8k.load_problems(tiny_tokenizer, 3, 2, name="user/gsm8k-copy")
    train, validation = ({p.question for p in parts[s]} for s in ("train", "validation"))
    assert len(train) == 3 and len(validation) == 2 and not train & validation


def test_carve_keeps_each_problem_in_its_split_whatever_the_sizes():
    """Notebooks 04-06 draw the splits again with other sizes (n_train=0 for the test problems, notebook 01's kept
    sizes for the train ones): no test problem may come back as a train or validation one."""
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(200)]
    first = gsm8k.carve(rows, n_train=16, n_eval=8)
    seen = {split: {r["question"] for r in part} for split, part in first.items()}
    for n_train, n_eval in ((0, 40), (6, 3), (120, 0), (50, 20)):
        again = gsm8k.carve(rows, n_train=n_train, n_eval=n_eval)
        for split, part in again.items():
            others = set().union(*(seen[s] for s in seen if s != split))
            assert not {r["question"] for r in part} & others, (n_train, n_eval, split)
        k = min(n_eval, 8)
        assert [r["question"] for r in again["test"][:k]] == [r["question"] for r in first["test"][:k]]
    with pytest.raises(ValueError, match="at most 40 test, 40 validation and 120 train"):
        gsm8k.carve(rows, n_train=0, n_eval=41)
    # n_eval=-1 gave all but one problem to test, over the validation and train regions; True was 1, 2.0 a TypeError
    for n_train, n_eval in ((-1, -1), (0, -1), (True, 1), (2.0, 1)):
        with pytest.raises(ValueError, match="carve: n_train and n_eval must be ints >= 0"):
            gsm8k.carve(rows, n_train=n_train, n_eval=n_eval)


@pytest.mark.parametrize("seed", [True, 1.5, None, -1])
def test_carve_and_load_problems_refuse_a_seed_that_is_no_int(seed):
    """seed=True shuffled as seed 1 (a bool is an int), without a word; 1.5 or None reached datasets' shuffle."""
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(10)]
    assert gsm8k.carve(rows, 1, 1, seed=1) == gsm8k.carve(rows, 1, 1, seed=1)
    with pytest.raises(ValueError, match="carve: seed must be an int >= 0"):
        gsm8k.carve(rows, 1, 1, seed=seed)
    with pytest.raises(ValueError, match="load_problems: seed must be an int >= 0"):
        gsm8k.load_problems(None, 1, 1, seed=seed, name="/nonexistent/gsm8k")


@pytest.mark.parametrize("offline, error, fix", [
    (True, FileNotFoundError, r"not in the datasets cache, and the Hub is offline .*go online for the first run"),
    (False, ConnectionError, r"the Hub could not be reached \(Couldn't reach 'openai/gsm8k'.*check the network"),
])
def test_gsm8k_out_of_reach_says_what_to_do(monkeypatch, offline, error, fix):
    """datasets' own error was "ConnectionError: Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)",
    which names neither the cause's switch nor a local copy."""
    import datasets

    def unreachable(name, config, split):
        raise ConnectionError(f"Couldn't reach {name!r} on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)
    match = f"load_problems: GSM8K 'openai/gsm8k' \\(train\\).*{fix}.*Profile.dataset.*the notebooks take a profile"
    with pytest.raises(error, match=match):
        gsm8k.load_problems(None, 2, 2)


def test_reference_solution_refuses_what_is_no_gsm8k_problem():
    """A JSONL row (a dict) or a question text was an AttributeError: no attribute 'reference_lines'."""
    for not_a_problem in ({"question": "q", "answer": "2 #### 2"}, "Step 1: 2 + 2 = 4", None):
        with pytest.raises(ValueError, match="reference_solution: problem must be a gsm8k.GSM8KProblem"):
            gsm8k.reference_solution(not_a_problem)


def test_extract_answer_reads_the_answer_marker_first_and_an_equations_last_result():
    assert gsm8k.extract_answer("#### 6\n\nAnswer: 5") == 5.0  # "Answer:" before "####", wherever each stands
    assert gsm8k.extract_answer("Answer: 4 + 4 = 2 + 6 = 8") == 8.0  # the last result of a chain of equations
    # no number on the answer line: the first number after the marker, not the text's last one
    assert gsm8k.extract_answer("Answer: see below\n18 apples in 3 boxes") == 18.0


@pytest.mark.parametrize("text", ["Answer: 1000,000", "Answer: 2{,}5"])
def test_a_comma_after_four_digits_or_a_latex_comma_between_no_thousands_groups_no_number(text):
    assert gsm8k.extract_answer(text) is None


def test_answer_matches_refuses_a_small_miss_and_a_reference_that_is_no_number():
    assert not gsm8k.answer_matches("Answer: 18.001", "18")
    assert not gsm8k.answer_matches("Answer: 18", "eighteen")  # False, not a TypeError


def test_a_reference_answer_may_end_with_a_full_stop():
    assert gsm8k.split_answer({"question": "How many?", "answer": "9 * 2 = 18\n#### 18."})[1] == "18."
    problem = gsm8k.GSM8KProblem("How many?", "18.", "prompt")
    assert problem.gold_answer() == 18.0 and problem.is_correct("Answer: 18")


def test_split_answer_reads_the_final_answer_after_the_last_marker():
    record = {"question": "How many?", "answer": "#### is a marker\n2 + 3 = 5\n#### 5"}
    assert gsm8k.split_answer(record) == ("#### is a marker\n2 + 3 = 5", "5")


def test_a_problem_refuses_a_prompt_that_is_no_str():
    with pytest.raises(ValueError, match="GSM8KProblem: prompt must be a str, got NoneType"):
        gsm8k.GSM8KProblem("How many?", "18", None)


def test_reference_solution_leaves_out_blank_lines_and_calculator_notes():
    raw = "She sold 48/2 = <<48/2=24>>24.\n\nShe sold 48+24 = <<48+24=72>>72.\n#### 72"
    problem = gsm8k.GSM8KProblem("How many clips?", "72", "prompt", raw)
    assert problem.reference_steps == 2
    want = "Step 1: She sold 48/2 = 24.\n\nStep 2: She sold 48+24 = 72.\n\nAnswer: 72"
    assert gsm8k.reference_solution(problem) == want


def test_format_prompt_strips_the_question(tiny_tokenizer):
    assert gsm8k.format_prompt("  How many eggs?\n", tiny_tokenizer).endswith("Problem: How many eggs?\n")


def test_warn_of_one_step_samples_refuses_more_step_lists_than_solutions():
    with pytest.raises(ValueError, match="steps must hold one step list per solution: 2 for 1"):
        gsm8k.warn_of_one_step_samples(["Step 1: a\n\nStep 2: b"], steps=[["a", "b"], ["c", "d"]])


def test_carve_shuffles_with_the_seed():
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(20)]
    assert gsm8k.carve(rows, 12, 4, seed=0) != gsm8k.carve(rows, 12, 4, seed=1)


def test_a_local_copys_dev_file_is_said_to_be_unread(tmp_path, tiny_tokenizer):
    lines = [json.dumps({"question": f"Tom has {k} apples. How many?", "answer": f"#### {k}"}) for k in range(5)]
    for name in ("test", "dev"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"load_problems: .*/dev.jsonl is not read"):
        gsm8k.load_problems(tiny_tokenizer, 1, 1, name=str(tmp_path))


def test_load_problems_takes_every_test_problem_and_refuses_more_train_problems_than_there_are(monkeypatch,
                                                                                                tiny_tokenizer):
    rows = [{"question": f"Tom has {k} apples. How many?", "answer": f"#### {k}"} for k in range(8)]
    _fake_hub(monkeypatch, {"train": rows, "test": rows})
    assert len(gsm8k.load_problems(tiny_tokenizer, 0, 8, name="user/gsm8k-copy")["test"]) == 8
    with pytest.raises(ValueError, match=r"GSM8K has 8 train / 8 test problems; asked for 5 \+ 4 / 4"):
        gsm8k.load_problems(tiny_tokenizer, 5, 4, name="user/gsm8k-copy")


def test_load_problems_draws_the_test_problems_with_the_seed(monkeypatch, tmp_path, tiny_tokenizer):
    rows = [{"question": f"Tom has {k} apples. How many?", "answer": f"#### {k}"} for k in range(8)]
    _fake_hub(monkeypatch, {"train": rows, "test": rows})
    for name in ("train", "test"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pool = tmp_path / "pool.jsonl"  # one file: carved
    pool.write_text("\n".join(json.dumps({**r, "question": f"{r['question']} ({k})"}) for k in range(3) for r in rows))
    for source, n_eval in (("user/gsm8k-copy", 8), (str(tmp_path), 8), (str(pool), 4)):
        drawn = [[p.question for p in gsm8k.load_problems(tiny_tokenizer, 0, n_eval, seed=s, name=source)["test"]]
                 for s in (0, 1)]
        assert drawn[0] != drawn[1], source


def _recorded_mc_step_labels(monkeypatch) -> list:
    """``labelling.mc_step_labels`` replaced by one that labels every step wrong and records each call's solutions
    and keywords."""
    from stepdpo_lite.tutorial import labelling

    calls = []

    def fake(model, tokenizer, prompts, solutions, is_correct, **kw):
        calls.append((list(solutions), kw))
        return {"labels": [[False] * len(s) for s in solutions]}

    monkeypatch.setattr(labelling, "mc_step_labels", fake)
    return calls


def test_mc_verdicts_rolls_out_right_solutions_too_when_asked(monkeypatch):
    calls = _recorded_mc_step_labels(monkeypatch)
    problems = [gsm8k.GSM8KProblem("q", "5", "PROMPT\n")]
    solution = "Step 1: 2 + 3 = 5\n\nStep 2: so 5\n\nAnswer: 5"
    out = gsm8k.mc_verdicts(None, None, problems, [[solution]], rollout_correct=True, progress=False)
    assert len(calls) == 1 and len(calls[0][0]) == 1  # the right solution was rolled out
    assert out[0][0].answer_correct and out[0][0].step_labels == [False, False]


@pytest.mark.filterwarnings("ignore:mc_verdicts. only 0 of 1 samples")  # a one-step sample, on purpose
def test_mc_verdicts_passes_seed_and_temperature_through_and_keeps_the_steps(monkeypatch):
    calls = _recorded_mc_step_labels(monkeypatch)
    problems = [gsm8k.GSM8KProblem("q", "5", "PROMPT\n")]
    out = gsm8k.mc_verdicts(None, None, problems, [["Step 1: b\n\nAnswer: 4"]], seed=3, temperature=0.7,
                            progress=False)
    (_, kw), = calls
    assert kw["seed"] == 3 and kw["temperature"] == 0.7
    assert out[0][0].steps == gsm8k.extract_steps("Step 1: b\n\nAnswer: 4")
