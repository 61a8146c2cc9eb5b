"""bestofn: grading, reward-model scores with unreadable candidates, best-of-N tables, combined-score reuse."""

import json
import math
import random
import re
import shutil
import warnings

import pytest

from stepdpo_lite import evaluation, generation
from stepdpo_lite.reward_ensembles import CombinedRewardModel
from stepdpo_lite.rewards import InputTooLong
from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import bestofn, tiny_models, toyworld
from stepdpo_lite.tutorial.gsm8k import GSM8KProblem


@pytest.fixture(scope="module")
def toy():
    """Two test problems, each with a gold, a wrong and a blank candidate."""
    problems = bestofn.held_out_problems("tiny", 2, seed=0)
    sols = [[p.gold_solution, toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(i)), ""]
            for i, p in enumerate(problems)]
    return problems, sols


class FakeVerifier:
    """Scores a solution by its length; refuses texts holding 'LONG' as a reward model refuses an over-long input."""

    def __init__(self, per_step=False):
        self.per_step, self.calls = per_step, 0

    def score_solutions(self, prompts, texts):
        self.calls += 1
        assert all(t.strip() if isinstance(t, str) else t for t in texts), "blank texts must not be scored"
        if any("LONG" in str(t) for t in texts):
            raise InputTooLong("too long")
        assert all(isinstance(t, list) for t in texts), "candidates come as step lists, as search passes them"
        return [[0.1 * k for k in range(len(t))] if self.per_step else float(len("".join(t))) for t in texts]


def test_held_out_problems_are_notebook_01s(toy):
    assert bestofn.held_out_problems("tiny", 5, seed=0) == toyworld.make_problems(5, "test", seed=0)
    assert bestofn.held_out_problems("tiny", 2, seed=0) == toy[0]
    with pytest.raises(ValueError, match="tokenizer"):
        bestofn.held_out_problems("t4-16gb", 2)


def test_grade_and_answers(toy):
    problems, sols = toy
    graded = bestofn.grade(problems, sols)
    assert graded["correct"] == [[True, False, False], [True, False, False]]
    assert graded["gold"] == [float(p.answer) for p in problems]
    assert graded["answers"][0][0] == float(problems[0].answer) and graded["answers"][0][2] is None
    assert bestofn.final_answer(problems[0], "Step 1: 1 + 2 = 3") is None  # no answer line: no vote
    p = toyworld.Problem(5, (("+", 7), ("-", 1)))
    broken = "Step 1: 5 + 7 = 12\n\nStep 215 -2 1 = 11\n\nAnswer: 11"  # a real sample: right number, broken step
    assert not bestofn.is_correct(p, broken) and bestofn.final_answer(p, broken) is None  # votes as it is graded
    assert bestofn.final_answer(p, broken.replace("11", "13")) is None  # no vote, right or wrong alike
    assert bestofn.final_answer(p, "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 13\n\nAnswer: 13") == 13.0
    g = GSM8KProblem("q", "1,234", "prompt")
    assert bestofn.gold_answer(g) == 1234.0 and bestofn.is_correct(g, "so\n\nAnswer: 1234")
    dollars = GSM8KProblem("q", "$18", "prompt")  # split_answer lets it through; gold_answer was float("$18")
    assert bestofn.gold_answer(dollars) == 18.0 and bestofn.is_correct(dollars, "Answer: 18")
    assert bestofn.step_labels(g, "Answer: 1") is None and bestofn.step_labels(problems[0], problems[0].gold_solution)
    with pytest.raises(ValueError, match="2 problems but 1"):
        bestofn.grade(problems, sols[:1])


def test_unreadable_candidates_get_none_then_the_floor(toy):
    problems, sols = toy
    sols = [row[:2] + ["Step 1: LONG", ""] for row in sols]
    fake = FakeVerifier()
    with pytest.warns(UserWarning, match=r"4 of 8 candidates unscored \(2 blank or with a blank step, 2 longer than "):
        scores = bestofn.score_candidates(fake, problems, sols)
    assert [row[2:] for row in scores] == [[None, None], [None, None]]
    assert scores[0][0] == float(len(sols[0][0])) and fake.calls > 1  # the batch failed, then one by one
    with pytest.warns(UserWarning, match="2 of 4 candidates unscored"):
        steps = bestofn.score_candidates(FakeVerifier(per_step=True), problems, [[["Step 1", "Step 2"], []]] * 2)
    assert steps == [[[0.0, 0.1], None]] * 2

    class Broken(FakeVerifier):
        def score_solutions(self, prompts, texts):
            raise ValueError("prompt 0: must be a str")  # a bug, not an unreadable candidate: raised, not floored

    with pytest.raises(ValueError, match="must be a str"):
        bestofn.score_candidates(Broken(), problems, sols)
    assert bestofn.aggregate(steps, "min") == [[0.0, bestofn.FLOOR]] * 2
    assert bestofn.aggregate(steps, "last")[0][0] == pytest.approx(0.1)
    sel = bestofn.selection_scores(steps, [[1.0, None]] * 2, [[2.0, None]] * 2)
    assert set(sel) == {"prm_min", "prm_product", "prm_last", "orm", "combined"}
    assert sel["orm"] == [[1.0, bestofn.FLOOR]] * 2


class StepListPRM:
    """A user's own PRM written for step lists, as search and the trainer pass them: one reward per step it gets."""

    config = type("Config", (), {"step_delimiter": "\n\nStep"})()

    def score_solutions(self, prompts, step_lists):
        return [[5.0] * len(steps) for steps in step_lists]


def test_score_candidates_passes_step_lists_and_checks_one_reward_per_step(toy):
    """Best-of-N passed whole texts: a PRM written for step lists scored each character as a step (47-51 "step
    rewards" for a 2-step candidate), and one returning a reward too few passed silently."""
    problems, sols = toy
    readable = [row[:2] for row in sols]
    rewards = bestofn.score_candidates(StepListPRM(), problems, readable)
    assert [[len(r) for r in row] for row in rewards] == [[len(extract_steps(s)) for s in row] for row in readable]
    assert bestofn.score_candidates(StepListPRM(), problems, [[extract_steps(s) for s in row] for row in readable]) \
        == rewards  # a candidate given as its steps: the same

    class ShortByOne(StepListPRM):
        def score_solutions(self, prompts, step_lists):
            return [[5.0] * (len(steps) - 1) for steps in step_lists]

    n = len(extract_steps(readable[0][0]))
    with pytest.raises(ValueError, match=rf"score_candidates: problem 0, candidate 0 has {n} steps, but the reward "
                                         rf"model returned {n - 1} step rewards: .* one reward per step"):
        bestofn.score_candidates(ShortByOne(), problems, readable)

    class HashStepsPRM(StepListPRM):  # its own delimiter: the candidates split where it splits, not at the default
        config = type("Config", (), {"step_delimiter": "\n\n#"})()

    hashed = [["# a = 1\n\n# b = 2\n\n# Answer: 3"]] * len(problems)
    assert bestofn.score_candidates(HashStepsPRM(), problems, hashed) == [[[5.0] * 3]] * len(problems)


def test_score_candidates_leaves_the_models_bar_to_its_default_and_score_readable_asks_for_none(toy):
    """score_readable passed no progress=, so a search's every round drew a PRM's default bar; best-of-N's one call
    keeps the default (None: a bar once scoring has taken 2 s); a model that takes no progress= is passed none."""
    problems, sols = toy
    asked = []

    class BarredPRM(StepListPRM):
        def score_solutions(self, prompts, step_lists, **kwargs):
            asked.append(kwargs)
            return super().score_solutions(prompts, step_lists)

    bestofn.score_candidates(BarredPRM(), problems, [row[:2] for row in sols])
    bestofn.score_readable(BarredPRM().score_solutions, ["p"], [["Step 1"]])
    assert asked == [{"progress": None}, {"progress": False}]
    assert bestofn.score_readable(StepListPRM().score_solutions, ["p"], [["Step 1"]]) == [[5.0]]


@pytest.mark.filterwarnings("ignore:score_readable")  # the fixture's blank candidates, warned of
def test_score_candidates_gives_a_prm_the_same_rewards_as_from_its_texts(tmp_path, toy):
    """The step lists are split at the PRM's own delimiter: its rewards are those it gives the texts."""
    problems, sols = toy
    prm, orm, combined = _save_reward_models(tmp_path)
    prompts = [p.prompt for p in problems for _ in range(2)]
    texts = [s for row in sols for s in row[:2]]
    for model in (prm, orm, combined):  # the same inputs in the same batch: the same numbers, not just close
        assert [r for row in bestofn.score_candidates(model, problems, sols) for r in row[:2]] == \
            model.score_solutions(prompts, texts)


def test_score_candidates_takes_your_own_prompt_texts():
    """A user's trial: prompt strings (own data, no task's problems) were refused, "a str has no .prompt"."""
    class PromptsSeen(StepListPRM):
        def score_solutions(self, prompts, step_lists):
            self.prompts = list(prompts)
            return super().score_solutions(prompts, step_lists)

    prm = PromptsSeen()
    assert bestofn.score_candidates(prm, ["What is 2+2?\n", "What is 3+3?\n"], [["2+2=4"], ["3+3=6", "3+3=7"]]) \
        == [[[5.0]], [[5.0], [5.0]]]
    assert prm.prompts == ["What is 2+2?\n", "What is 3+3?\n", "What is 3+3?\n"]  # each scored with its own prompt
    with pytest.raises(ValueError, match=r"score_candidates: problem 1: its prompt must be a str, got NoneType \(a "
                                         r"int\); pass problems of a task .* or prompt texts \(str\)"):
        bestofn.score_candidates(prm, ["What is 2+2?\n", 3], [["2+2=4"], ["3"]])


def test_a_reward_model_without_score_solutions_is_a_value_error_saying_what_it_needs(toy):
    problems, sols = toy
    for thing, hint in ((lambda prompts, texts: [0.0] * len(texts), "a plain function"), (object(), "object")):
        with pytest.raises(ValueError, match=rf"score_candidates: the reward model needs a method "
                                             rf"score_solutions\(prompts, step_lists\).*{hint}"):
            bestofn.score_candidates(thing, problems, sols)


def test_aggregate_takes_a_function_of_the_step_rewards():
    """Every aggregation was a closed set of names: a soft-min was "strategy must be one of (...)"."""
    def soft_min(rewards, t=1.0):
        return -t * math.log(sum(math.exp(-r / t) for r in rewards))

    steps = [[[1.0, 2.0], None], [[0.5]]]
    scores = bestofn.aggregate(steps, soft_min)
    assert scores[0][0] == pytest.approx(soft_min([1.0, 2.0])) and scores[0][1] == bestofn.FLOOR
    assert scores[1][0] == pytest.approx(0.5)
    assert bestofn.aggregate(steps, "min") == [[1.0, bestofn.FLOOR], [0.5]]  # the names as before
    with pytest.raises(ValueError, match=r"aggregate: strategy must be one of \(.*'min'.*\) or a function \(a list of "
                                         r"step rewards -> one score\), got 'softmin'"):
        bestofn.aggregate(steps, "softmin")
    with pytest.raises(ValueError, match=r"aggregate: aggregation <lambda>'s score of step_rewards\[1\]\[0\] "
                                         r"\(problem 1, candidate 0\) must be a finite number, got nan"):
        bestofn.aggregate(steps, lambda r: float("nan") if r == [0.5] else 0.0)


def test_a_nan_reward_is_refused_naming_its_problem_and_candidate():
    """An ORM's NaN went into the selection scores as it was; a PRM's was refused by aggregate_rewards as "step 0",
    of no candidate nor problem."""
    nan = float("nan")
    with pytest.raises(ValueError, match=r"aggregate: step_rewards\[1\]\[0\]\[1\] \(problem 1, candidate 0, step 1\) "
                                         r"must be a finite number, got nan"):
        bestofn.aggregate([[[0.0], None], [[0.0, nan]]], "min")
    with pytest.raises(ValueError, match=r"selection_scores: orm_rewards\[0\]\[1\] \(problem 0, candidate 1\)"):
        bestofn.selection_scores(orm_rewards=[[1.0, nan]])
    with pytest.raises(ValueError, match=r"selection_scores: combined\[1\]\[0\] \(problem 1, candidate 0\)"):
        bestofn.selection_scores(combined=[[1.0], [nan]])
    assert bestofn.selection_scores(orm_rewards=[[1, None]]) == {"orm": [[1.0, bestofn.FLOOR]]}


def test_best_of_n_table_layout_and_values():
    correct = [[True, False, False, False]] * 3
    graded = {"correct": correct, "answers": [[1.0, 2.0, 2.0, None]] * 3, "gold": [1.0] * 3}
    oracle = [[1.0, 0.0, 0.0, 0.0]] * 3
    table = bestofn.best_of_n_table(graded, {"oracle": oracle, "anti": [[-1.0, 0.0, 0.0, 0.0]] * 3},
                                    ns=(1, 2, 4), n_resamples=200)
    assert list(table) == ["1", "2", "4"]
    assert set(table["4"]) == {"oracle", "anti", "majority", "random"}
    assert table["1"]["oracle"] == table["1"]["anti"]  # N=1: the same draws, nothing to choose
    assert table["4"]["oracle"] == 1.0 and table["4"]["anti"] == 0.0 and table["4"]["majority"] == 0.0
    assert table["4"]["random"] == pytest.approx(0.25, abs=0.1)
    text = bestofn.format_table(table)
    assert text.splitlines()[0].split() == ["method", "N=1", "N=2", "N=4"] and "majority" in text
    # in percent, as the plot beside it and the differences under it (in points): not fractions
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}
    assert rows["oracle"][-1] == "100.0%" and rows["anti"][-1] == "0.0%", text
    each = bestofn.best_of_n_table(graded, {"oracle": oracle}, ns=(1, 2, 4), n_resamples=200, per_problem=True)
    assert each["4"]["oracle"] == [1.0] * 3 and each["4"]["majority"] == [0.0] * 3 and len(each["1"]["random"]) == 3
    means = bestofn.mean_accuracies(each)  # the same draws: the accuracy table, from one resampling
    assert means == {n: {m: pytest.approx(table[n][m]) for m in each[n]} for n in each}


def test_best_of_n_table_names_the_method_whose_scores_do_not_fit():
    """A PRM's and an ORM's scores of different shapes: best_of_n_accuracy's error named neither method."""
    graded = {"correct": [[True, False], [False, True]], "answers": [["1", "2"], ["3", "4"]], "gold": ["1", "4"]}
    with pytest.raises(ValueError, match=r"best_of_n_table: scores\['orm'\]: best_of_n_accuracy\(correct, scores\): "
                                         "problem 1 has 1 scores and 2 labels"):
        bestofn.best_of_n_table(graded, {"prm_min": [[0.1, 0.2], [0.3, 0.4]], "orm": [[0.1, 0.2], [0.3]]}, ns=(1, 2))
    # graded without grade()'s answers was KeyError 'answers'; scores as one list, AttributeError (no .items)
    with pytest.raises(ValueError, match=r"best_of_n_table: graded must be grade\(\)'s dict, with 'correct', "
                                         r"'answers' and 'gold'; got one without \['answers', 'gold'\]"):
        bestofn.best_of_n_table({"correct": graded["correct"]}, {"prm_min": [[0.1, 0.2], [0.3, 0.4]]}, ns=(1,))
    with pytest.raises(ValueError, match=r"graded must be .* got list"):
        bestofn.best_of_n_table(graded["correct"], {"prm_min": [[0.1, 0.2], [0.3, 0.4]]}, ns=(1,))
    with pytest.raises(ValueError, match=r"best_of_n_table: scores must be a dict of method name -> scores \(one "
                                         r"list a problem\), got list"):
        bestofn.best_of_n_table(graded, [[0.1, 0.2], [0.3, 0.4]], ns=(1,))


def test_paired_differences_by_n_and_their_table():
    """A minus B per N for the pairs that both ran there: the paired t-interval of
    ``paired_stats.paired_difference``."""
    from stepdpo_lite.tutorial import paired_stats
    per_problem = {"4": {"prm": [1.0, 0.5, 0.0, 1.0], "orm": [0.0, 0.5, 0.0, 0.5], "majority": [0.0] * 4},
                   "16": {"prm": [1.0] * 4, "orm": [0.0, 1.0, 0.0, 0.0]}}
    with pytest.warns(UserWarning, match=r"no method 'beam' in the results .* the pair \('prm', 'beam'\) is left out"):
        diffs = bestofn.paired_differences(per_problem, [("prm", "orm"), ("orm", "majority"), ("prm", "beam")])
    assert set(diffs) == {"4", "16"} and set(diffs["16"]) == {"prm"} and "beam" not in diffs["4"]["prm"]
    d = diffs["4"]["prm"]["orm"]
    assert d == paired_stats.paired_difference([1.0, 0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 0.5])
    assert d["difference"] == pytest.approx(0.375) and d["low"] < 0 < d["high"]  # four problems: wide
    assert diffs["16"]["prm"]["orm"]["difference"] == pytest.approx(0.75)
    lines = bestofn.format_differences(diffs).splitlines()
    assert lines[0].split()[-2:] == ["N=4", "N=16"] and len(lines) == 3
    half = 50 * (d["high"] - d["low"])
    # each pair named as the plot's panel names it (display_names.METHOD_NAMES: "ORM", "majority vote"), own keys
    # as they are
    assert lines[1].split() == ["prm", "−", "ORM", "+37.5", f"±{half:.1f}", "+75.0", lines[1].split()[-1]]
    assert lines[2].split()[:5] == ["ORM", "−", "majority", "vote", "+25.0"] and len(lines[2].split()) == 6  # no N=16


def test_the_printed_tables_name_the_methods_as_the_plots_beside_them():
    """A learner's read of notebooks 06 and 07: the tables named their rows `prm_min`, `beam_prm` beside legends and
    panels that say "PRM, min", "beam search, PRM" (display_names.METHOD_NAMES); metrics.json keeps the keys."""
    from stepdpo_lite.tutorial import display_names
    table = {"1": {"prm_min": 0.25, "combined": 0.25, "majority": 0.25, "random": 0.25},
             "4": {"prm_min": 0.5, "combined": 0.75, "majority": 0.5, "random": 0.25}}
    keys = {n: list(row) for n, row in table.items()}
    lines = bestofn.format_table(table).splitlines()
    assert [line[:21].rstrip() for line in lines] == ["method", "PRM, min", "combined (PRM + ORM)", "majority vote",
                                                      "random pick"]
    assert len({len(line) for line in lines}) == 1 and {n: list(row) for n, row in table.items()} == keys
    diffs = {"4": {"prm_min": {"orm": {"difference": 0.1, "low": 0.0, "high": 0.2}},
                   "combined": {"prm_product": {"difference": 0.0, "low": -0.1, "high": 0.1}}}}
    rows = bestofn.format_differences(diffs).splitlines()
    assert [row[:len(row) - 14].rstrip() for row in rows] == [
        "A minus B, points", "PRM, min − ORM", "combined (PRM + ORM) − PRM, product"]
    assert len({len(row) for row in rows}) == 1, rows  # the longest name keeps the columns in line
    assert all(display_names.METHOD_NAMES[k] in "\n".join(lines + rows) for k in ("prm_min", "combined", "prm_product"))


def _save_reward_models(tmp_path):
    from stepdpo_lite.reward_ensembles import CombinedRewardModel
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel
    model, tok = tiny_models.load_tiny_base()
    prm, orm = ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok)
    prm.save(tmp_path / "prm")
    orm.save(tmp_path / "orm")
    combined = CombinedRewardModel(prm, orm, process_weight=0.6, outcome_weight=0.4)
    combined.save(tmp_path / "combined")
    return prm, orm, combined


@pytest.mark.filterwarnings("ignore:score_readable")  # the fixture's blank candidates, warned of
def test_combined_scores_reuse_the_same_models_and_match_the_combined_model(tmp_path, toy, monkeypatch):
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel
    problems, sols = toy
    prm, orm, combined = _save_reward_models(tmp_path)
    steps, outcome = bestofn.score_candidates(prm, problems, sols), bestofn.score_candidates(orm, problems, sols)
    assert steps[0][2] is None and len(steps[0][1]) == len(problems[0].ops)
    expected = combined.score_solutions([p.prompt for p in problems for _ in range(2)],
                                        [s for row in sols for s in row[:2]])

    def refuse(*a, **k):
        raise AssertionError("a part with the same weights must not be loaded again")

    with monkeypatch.context() as m:
        m.setattr(ProcessRewardModel, "load", classmethod(refuse))
        m.setattr(OutcomeRewardModel, "load", classmethod(refuse))
        reused = bestofn.combined_scores(tmp_path / "combined", problems, sols, tmp_path / "prm", steps,
                                         tmp_path / "orm", outcome)
    rescored = bestofn.combined_scores(tmp_path / "combined", problems, sols)  # nothing cached: loads both parts
    # the cached scores came from batches of other compositions (all candidates, not two per problem): float32
    # round-off from other padding, ~1e-6; 1e-4 still catches a wrong weight, part or aggregation
    for scores in (reused, rescored):
        assert [s for row in scores for s in row[:2]] == pytest.approx(expected, rel=1e-4, abs=1e-4)
        assert all(row[2] < -1e8 for row in scores)  # the blank candidate: lowest
    # a combined model whose PRM differs from prm/ is scored with its own PRM
    cfg = tmp_path / "combined" / "process_reward_model" / "process_reward_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "aggregation": "last"}))
    changed = bestofn.combined_scores(tmp_path / "combined", problems, sols, tmp_path / "prm", steps,
                                      tmp_path / "orm", outcome)
    last = [0.6 * s[-1] + 0.4 * o for srow, orow in zip(steps, outcome) for s, o in zip(srow[:2], orow[:2])]
    assert [s for row in changed for s in row[:2]] == pytest.approx(last, rel=1e-4, abs=1e-4)
    with pytest.raises(ValueError, match=r"combined_scores: the ORM's rewards are for 1 problems"):  # zip cut them
        bestofn.combined_scores(tmp_path / "combined", problems, sols, tmp_path / "prm", steps, tmp_path / "orm",
                                outcome[:1])


def test_combined_scores_check_the_saved_config_as_load_does(tmp_path, toy):
    problems, sols = toy
    _save_reward_models(tmp_path)
    config_path = tmp_path / "combined" / "combined_reward_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "outcome_weight": float("nan")}))  # every score would be NaN
    message = f"{config_path}: CombinedRewardModel: outcome_weight must be a finite number, got nan"
    with pytest.raises(ValueError, match=re.escape(message)):
        bestofn.combined_scores(tmp_path / "combined", problems, sols)
    config_path.write_text(json.dumps(config))
    shutil.rmtree(tmp_path / "combined" / "outcome_reward_model")  # not a combined score with a part less
    with pytest.raises(ValueError, match=re.escape(f"{config_path}: the model was saved with outcome_reward_model/")):
        bestofn.combined_scores(tmp_path / "combined", problems, sols)
    shutil.rmtree(tmp_path / "combined" / "process_reward_model")  # and a save from before "parts" was written
    config_path.write_text(json.dumps({k: v for k, v in config.items() if k != "parts"}))
    with pytest.raises(ValueError, match="neither process_reward_model/ nor outcome_reward_model/"):  # was: all 0.0
        bestofn.combined_scores(tmp_path / "combined", problems, sols)


def test_greedy_accuracy_of_the_tiny_base(tmp_path):
    """``greedy_policy_accuracies`` measures through ``policy_eval.evaluate_policy``: the figure of grading one greedy
    solution a problem (``policy_eval.greedy_solutions``)."""
    from stepdpo_lite.tutorial import policy_eval

    model, tok = generation.load_policy(tiny_models.TINY_BASE_DIR)
    problems = bestofn.held_out_problems("tiny", 4, seed=0)
    sols = policy_eval.greedy_solutions(model, tok, problems, batch_size=4, max_new_tokens=160)
    assert len(sols) == 4 and all(isinstance(s, str) for s in sols)
    assert bestofn.accuracy(problems, sols) == sum(toyworld.check(p, s).answer_correct
                                                   for p, s in zip(problems, sols)) / 4
    assert bestofn.greedy_policy_accuracies({"base": None}, problems, {}, base=(model, tok), batch_size=4,
                                            out=lambda line: None) == {"base": bestofn.accuracy(problems, sols)}
    with pytest.raises(ValueError, match="need equal"):
        bestofn.accuracy(problems, sols[:2])


def test_one_str_per_problem_or_lists_that_do_not_pair_up_are_refused():
    """``zip`` would cut the longer list, and one str per problem would be read as its characters, silently."""
    from stepdpo_lite.tutorial import tasks

    problems = toyworld.make_problems(2, seed=0)
    texts = [p.gold_solution for p in problems]  # one text per problem, as greedy_solutions returns
    for call in (lambda s: bestofn.grade(problems, s), lambda s: bestofn.score_candidates(None, problems, s),
                 lambda s: tasks.ToyTask().label(None, None, problems, s)):
        with pytest.raises(ValueError, match=r"solutions\[0\] is one str"):
            call(texts)
        with pytest.raises(ValueError, match="2 problems but 1 lists of solutions"):
            call([texts[:1]])
    with pytest.warns(UserWarning, match="no method 'ORM' in the results"):  # a typo in the notebook's PAIRS
        bestofn.paired_differences({"4": {"prm_min": [1, 0], "orm": [0, 0]}}, [("prm_min", "ORM")])
    with pytest.raises(ValueError, match="each pair must be"):
        bestofn.paired_differences({"4": {"prm_min": [1, 0], "orm": [0, 0]}}, [("prm_min", "orm", "x")])


def test_score_readable_never_asks_the_model_to_score_nothing():
    def refuse(prompts, texts):
        raise AssertionError(f"scored {len(texts)} texts")

    with pytest.warns(UserWarning, match=r"2 of 2 texts unscored \(2 blank or with a blank step\)"):
        assert bestofn.score_readable(refuse, ["p", "p"], ["  ", ["a", " "]]) == [None, None]  # blank; a blank step
    assert bestofn.score_readable(refuse, [], []) == []
    with pytest.warns(UserWarning, match="1 of 2 texts unscored"):
        assert bestofn.score_readable(lambda p, t: [len(x) for x in t], ["p", "p"], ["", "ab"]) == [None, 2]


def test_unscored_candidates_are_warned_of_with_why_and_how_to_raise_max_length(toy):
    """A GSM8K prompt longer than the PRM's max_length left every candidate None, then FLOOR: best-of-N became a pick
    among FLOORs, and only a logger.info said so."""
    problems, _ = toy

    class LimitedVerifier(FakeVerifier):
        max_length = 256

        @classmethod
        def load(cls, path, **overrides):
            return cls()

    sols = [["Step 1: a", "", "Step 1: b"], ["Step 1: LONG", "Step 1: LONG"]]
    with pytest.warns(UserWarning) as caught:
        scores = bestofn.score_candidates(LimitedVerifier(), problems, sols)
    assert scores[1] == [None, None] and len(caught) == 1
    message = str(caught[0].message)
    assert "3 of 5 candidates unscored (1 blank or with a blank step, 2 longer than the reward model's max_length " \
           "256)" in message and f"FLOOR ({bestofn.FLOOR:g})" in message
    assert "none of the candidates of problem 1 was scored, so best-of-N there is a pick among equal FLOORs" in message
    assert "LimitedVerifier.load(path, max_length=...)" in message
    def too_long(prompts, texts):
        raise InputTooLong("too long")

    with pytest.warns(UserWarning) as caught:  # no model behind the callable: no max_length to name
        bestofn.score_readable(too_long, ["p"], ["LONG"])
    assert "longer than the reward model's max_length)" in str(caught[0].message)
    assert "ProcessRewardModel.load(path, max_length=...)" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every candidate scored: nothing to say
        bestofn.score_candidates(LimitedVerifier(), problems, [["Step 1: a"], ["Step 1: b"]])


def test_aggregate_refuses_one_number_per_candidate():
    """An ORM's rewards (one float per candidate) were a bare "TypeError: 'float' object is not iterable"."""
    with pytest.raises(ValueError, match=r"aggregate: step_rewards\[1\]\[0\] \(problem 1, candidate 0\): expected a "
                                         r"list of a PRM's step rewards .* got float"):
        bestofn.aggregate([[[0.5, 1.0]], [0.3, None]], "min")
    with pytest.raises(ValueError, match=r"aggregate: step_rewards\[0\] \(problem 0\): expected a list of step-reward"):
        bestofn.aggregate([0.3, 0.4], "min")


def test_accuracy_says_it_takes_texts_and_search_accuracy_takes_search_results(toy):
    """A SearchResult failed in step_spans ("text must be a str"), a function the user never called."""
    problems, sols = toy

    class SearchResult:
        solution = "Step 1: 1 + 1 = 2"

    with pytest.raises(ValueError, match=r"accuracy: solutions\[0\] \(problem 0\) is a SearchResult, not a solution "
                                         r"text: bestofn.accuracy takes solution texts .*search_report.chosen_accuracy "
                                         r"takes"):
        bestofn.accuracy(problems, [SearchResult(), SearchResult()])
    assert bestofn.accuracy(problems, [sols[0][0], sols[1][1]]) == 0.5
    with pytest.raises(ValueError, match=r"accuracy: 0 problems but 0 solutions \(need equal, > 0\)"):
        bestofn.accuracy([], [])  # was a ZeroDivisionError


RIGHT = "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 11\n\nAnswer: 11"  # toyworld.Problem(5, (("+", 7), ("-", 1)))
WRONG = "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 13\n\nAnswer: 13"
UNANSWERED = "Step 1: 5 + 7 = 12"


def test_select_best_returns_the_highest_scored_candidate_earliest_of_ties():
    cands = [[WRONG, RIGHT, UNANSWERED], ["a", "b"], ["x", "y"]]
    assert bestofn.select_best(cands, [[0.0, 2.0, 1.0], [1.0, 1.0], [None, -5.0]]) == [RIGHT, "a", "y"]
    for scores, message in [([[0.0, 1.0, 2.0], [1.0], [1.0, 1.0]], r"problem 1 has 2 candidates and 1 scores"),
                            ([[0.0, 1.0, 2.0]], "scores for 1 problems but candidates for 3"),
                            ([[0.0, [1.0, 2.0], 2.0], [1.0, 1.0], [1.0, 1.0]],
                             r"scores\[0\]\[1\] \(problem 0, candidate 1\) is a list: a PRM's step rewards; aggregate"),
                            ([[0.0, float("nan"), 2.0], [1.0, 1.0], [1.0, 1.0]], r"scores\[0\]\[1\] .* finite")]:
        with pytest.raises(ValueError, match="select_best: " + message):
            bestofn.select_best(cands, scores)
    with pytest.raises(ValueError, match=r"candidates\[0\] \(problem 0\): expected a list of candidates, got one str"):
        bestofn.select_best([RIGHT], [[1.0]])
    with pytest.raises(ValueError, match=r"select_best: problem 0 has 0 candidates and 0 scores \(need equal, > 0\)"):
        bestofn.select_best([[]], [[]])  # was max()'s "empty sequence"
    rng = random.Random(0)  # its picks are the ones best_of_n_accuracy grades (subsets="first": all N, ties earliest)
    p = toyworld.Problem(5, (("+", 7), ("-", 1)))
    many = [[rng.choice([RIGHT, WRONG]) for _ in range(4)] for _ in range(20)]
    scores = [[float(rng.randint(0, 2)) for _ in row] for row in many]
    picked = bestofn.select_best(many, scores)
    correct = [[p.is_correct(c) for c in row] for row in many]
    assert sum(map(p.is_correct, picked)) / 20 == evaluation.best_of_n_accuracy(correct, scores, (4,),
                                                                                 subsets="first")[4]


def test_weighted_majority_vote_sums_probabilities_per_answer():
    p = toyworld.Problem(5, (("+", 7), ("-", 1)))
    vote = bestofn.weighted_majority_vote
    cands = [WRONG, WRONG, RIGHT, UNANSWERED]
    assert vote([p], [cands], [[-2.0, -2.0, 2.0, 9.0]]) == [11.0]  # σ: 2 x 0.12 < 0.88; no answer: no vote
    assert vote([p], [cands], [[0.0, 0.0, 2.0, 9.0]]) == [13.0]  # 2 x 0.5 > 0.88
    log_p = [math.log(0.4), math.log(0.4), math.log(0.9), 0.0]  # aggregate(..., "product"): log Π σ(r_k)
    assert vote([p], [cands], [log_p], scale="log_probability") == [11.0]  # 0.4 + 0.4 < 0.9
    assert vote([p], [cands], [log_p]) == [13.0]  # read as log-odds: 2 x 0.29 > 0.47, another vote
    assert vote([p] * 2, [[WRONG, RIGHT], [RIGHT, WRONG]], [[1.0, 1.0]] * 2) == [13.0, 11.0]  # ties: met first
    assert vote([p] * 2, [[WRONG, RIGHT]] * 2, [[None, -3.0], [None, None]]) == [11.0, 13.0]  # unreadable weighs 0
    assert vote([p], [[UNANSWERED, ""]], [[1.0, None]]) == [None]  # nobody states an answer
    answers = [[WRONG, RIGHT, WRONG, RIGHT], [RIGHT, WRONG, WRONG, UNANSWERED], [UNANSWERED, RIGHT, RIGHT, WRONG]]
    assert vote([p] * 3, answers, [[0.0] * 4] * 3) == [13.0, 13.0, 11.0]  # equal weights: plain majority vote
    with pytest.raises(ValueError, match="weighted_majority_vote: scale must be 'log_odds' or 'log_probability'"):
        vote([p], [cands], [[0.0] * 4], scale="prob")
    with pytest.raises(ValueError, match=r"scores\[0\]\[2\] \(problem 0, candidate 2\) is 2.0, above 0: not a "
                                         r"log-probability \(log-odds\? pass scale='log_odds'\)"):
        vote([p], [cands], [[0.0, 0.0, 2.0, 0.0]], scale="log_probability")
    with pytest.raises(ValueError, match=r"scores\[0\]\[0\] \(problem 0, candidate 0\) is 0.5, above 0"):  # e^0.5 > 1
        vote([p], [cands], [[0.5, 0.0, -1.0, 0.0]], scale="log_probability")
    with pytest.raises(ValueError, match="weighted_majority_vote: 1 problems but 2 lists of solutions"):
        vote([p], [cands, cands], [[0.0] * 4] * 2)


def test_weighted_majority_vote_reads_answers_with_answer_of():
    """A user's trial: own data has prompt texts, and the vote needed a task's problem to read each answer."""
    vote = bestofn.weighted_majority_vote
    answer_of = lambda text: text.split("=")[1] if "=" in text else None  # noqa: E731
    cands = [["2+2=4", "2+2=5", "2+2=5", "2+2"], ["3+3=6"]]
    assert vote(["What is 2+2?\n", "What is 3+3?\n"], cands, [[3.0, -1.0, -1.0, 9.0], [0.0]],
                answer_of=answer_of) == ["4", "6"]  # σ: 0.95 > 2 x 0.27; no answer: no vote
    p = toyworld.Problem(5, (("+", 7), ("-", 1)))
    assert vote([p], [[WRONG, RIGHT]], [[1.0, 0.0]], answer_of=lambda text: "mine") == ["mine"]  # yours, not p's
    with pytest.raises(ValueError, match=r"weighted_majority_vote: problem 0 is a str without a final_answer method: "
                                         r"pass answer_of="):
        vote(["What is 2+2?\n"], cands[:1], [[0.0] * 4])
    with pytest.raises(ValueError, match=r"weighted_majority_vote: answer_of must be a function"):
        vote(["What is 2+2?\n"], cands[:1], [[0.0] * 4], answer_of="=")
    with pytest.raises(ValueError, match=r"the answer of candidate 0 of problem 0 is a list: answers must be "
                                         r"hashable"):
        vote(["What is 2+2?\n"], cands[:1], [[0.0] * 4], answer_of=lambda text: text.split("="))


def test_weighted_majority_vote_refuses_a_nan_answer():
    """An answer_of returning NaN (a number it could not read) voted by the NaN's identity (NaN != NaN): one NaN object
    returned for two candidates (σ 0.6 each) won over "4" (σ 0.69), fresh NaNs lost to it, each an answer apart. A NaN
    is refused, naming the candidate, as a task's final_answer of NaN is; None is the reader's "no answer"."""
    vote = bestofn.weighted_majority_vote
    nan = float("nan")
    reader = {"a": 4.0, "b": nan, "c": nan}.get
    with pytest.raises(ValueError, match=r"weighted_majority_vote: the answer of candidate 1 of problem 0 is nan, "
                                         r"which equals no answer, not even itself: return None for no answer"):
        vote(["What is 2+2?\n"], [["a", "b", "c"]], [[0.8, 0.4, 0.4]], answer_of=reader)
    with pytest.raises(ValueError, match=r"the answer of candidate 0 of problem 0 is nan"):
        vote(["What is 2+2?\n"], [["b"]], [[0.0]], answer_of=lambda text: float("nan"))
    assert vote(["What is 2+2?\n"], [["a", "b", "c"]], [[0.8, 0.4, 0.4]],
                answer_of={"a": 4.0}.get) == [4.0]  # None: no vote
    with pytest.raises(ValueError, match=r"weighted_majority_vote: problem 0, candidate 0: .*final_answer must "
                                         r"return a finite number or None"):  # the default reader, as before
        vote([type("NanAnswer", (_SumProblem,), {"final_answer": lambda self, s: nan})((19, 10))], [["x"]], [[0.5]])


def test_score_readable_refuses_a_model_that_returns_too_few_rewards():
    """A zip over a short answer left the last candidates None, i.e. floored as if unreadable, without a word."""
    short = lambda prompts, texts: [1.0] * (len(texts) - 1)
    with pytest.raises(ValueError, match="score_readable: asked to score 2 texts .* returned 1 rewards"):
        bestofn.score_readable(short, ["p", "p", "p"], ["a", " ", "b"])

    def too_long_then_short(prompts, texts):
        if len(texts) > 1:
            raise InputTooLong("one of them")
        return []
    with pytest.raises(ValueError, match="asked to score 1 texts .* returned 0 rewards"):  # one by one, too
        bestofn.score_readable(too_long_then_short, ["p", "p"], ["a", "b"])


def test_recorded_greedy_accuracy_only_for_these_problems_at_full_precision(toy):
    problems, _ = toy
    from stepdpo_lite.tutorial import policy_eval

    digest = policy_eval.problems_digest(problems)
    entry = {"accuracy": 0.5, "test_problems_digest": digest, "in_4_bits": False}
    assert bestofn.recorded_greedy_accuracy({"dpo": entry}, "dpo", digest) == 0.5
    assert bestofn.recorded_greedy_accuracy({"dpo": entry}, "base", digest) is None  # not measured
    assert bestofn.recorded_greedy_accuracy({"dpo": entry}, "dpo", "another seed's") is None
    assert bestofn.recorded_greedy_accuracy({"dpo": {**entry, "in_4_bits": True}}, "dpo", digest) is None
    assert bestofn.recorded_greedy_accuracy({"dpo": {k: v for k, v in entry.items() if k != "in_4_bits"}}, "dpo",
                                            digest) is None  # recorded before precision was: not known to be full
    with pytest.raises(ValueError, match="recorded_greedy_accuracy: measured must be a dict"):
        bestofn.recorded_greedy_accuracy(None, "dpo", digest)


def test_greedy_policy_accuracies_reuse_notebook_04s_figures_and_measure_the_rest(toy, monkeypatch):
    from stepdpo_lite.tutorial import policy_eval

    problems, sols = toy
    right = [s[0] for s in sols]  # the gold solutions
    by_model = {"base-model": [s[1] for s in sols], "stepwise-model": right}  # the base answers both wrong
    monkeypatch.setattr(policy_eval, "sample_solutions", lambda model, tok, probs, n, temperature, **kw:
                        [[s] for s in by_model[model]])
    loaded, lines = [], []

    def load(path):
        loaded.append(path)
        return "stepwise-model", "tok"

    measured = {"dpo": {"accuracy": 0.75, "test_problems_digest": policy_eval.problems_digest(problems),
                        "in_4_bits": False}}
    acc = bestofn.greedy_policy_accuracies({"base": None, "dpo": "dpo/", "stepwise_dpo": "sw/"}, problems, measured,
                                           base=("base-model", "tok"), load=load, out=lines.append)
    assert acc == {"base": 0.0, "dpo": 0.75, "stepwise_dpo": 1.0} and list(acc) == ["base", "dpo", "stepwise_dpo"]
    assert loaded == ["sw/"]  # dpo's figure was reused: it is not loaded
    # each policy by the name notebook 04's rounds and the text give it (display_names.POLICY_NAMES), not its metrics
    # key, by default: notebook 06 passed the old viz.POLICY_NAMES each time, and a caller who did not got the keys
    assert lines == ["base                 greedy accuracy 0.0% on 2 test problems",
                     "DPO + NLL            greedy accuracy 75.0% on 2 test problems (from 04)",
                     "Stepwise DPO + NLL   greedy accuracy 100.0% on 2 test problems"]
    with pytest.raises(ValueError, match="a policy without a folder .* pass base="):
        bestofn.greedy_policy_accuracies({"base": None}, problems, {}, out=lines.append)
    with pytest.raises(ValueError, match="policies must be a non-empty dict"):
        bestofn.greedy_policy_accuracies({}, problems, {})
    with pytest.raises(ValueError, match="problems is empty"):
        bestofn.greedy_policy_accuracies({"dpo": "dpo/"}, [], {})


def test_greedy_policy_accuracies_load_each_policy_in_the_dtype_asked(toy, monkeypatch):
    """Notebook 06 measured the policies of 04 at the device's dtype (bfloat16 on an L4 under t4-16gb, whose
    solutions were sampled and trained in float16): its default loader now takes the profile's."""
    problems, sols = toy
    monkeypatch.setattr(bestofn.policy_eval, "sample_solutions", lambda model, tok, probs, n, temperature, **kw:
                        [[s[0]] for s in sols])
    loaded = []
    monkeypatch.setattr(bestofn.generation, "load_policy", lambda path, quantization="as trained", merge=True,
                        dtype=None: loaded.append((path, quantization, dtype)) or ("model", "tok"))
    for dtype in ("float16", None):
        assert bestofn.greedy_policy_accuracies({"dpo": "dpo/"}, problems, {}, dtype=dtype, out=lambda line: None) \
            == {"dpo": 1.0}
    assert loaded == [("dpo/", None, "float16"), ("dpo/", None, None)]  # unquantized, as 04 measured them


def test_sample_sizes_are_powers_of_two_and_the_candidates():
    assert bestofn.sample_sizes(16) == [1, 2, 4, 8, 16] and bestofn.sample_sizes(12) == [1, 2, 4, 8, 12]
    assert bestofn.sample_sizes(1) == [1] and bestofn.sample_sizes(3) == [1, 2, 3]
    for bad in (0, 4.0, "16"):
        with pytest.raises(ValueError, match="sample_sizes: n_candidates must be an int >= 1"):
            bestofn.sample_sizes(bad)


def test_pass_at_n_is_the_ceiling_of_best_of_n_on_the_same_draws(toy):
    problems, sols = toy  # each problem: the gold solution, a wrong one and a blank one
    graded = bestofn.grade(problems, sols)
    pass_at = bestofn.pass_at_n(graded, [1, 2, 3], seed=0, n_resamples=50)
    assert pass_at[3] == 1.0 and pass_at[1] < pass_at[2] < 1.0
    # the best-of-N table with the checker as the verifier, on the same draws: the same figures
    table = bestofn.best_of_n_table(graded, {"checker": [[float(c) for c in row] for row in graded["correct"]]},
                                    [1, 2, 3], seed=0, n_resamples=50)
    assert {n: table[str(n)]["checker"] for n in (1, 2, 3)} == pass_at
    assert all(table[str(n)]["random"] <= pass_at[n] for n in (1, 2, 3))
    assert bestofn.candidate_summary(graded) == {"candidates": 6, "right": 2 / 6}
    assert bestofn.format_candidates(graded, {1: 1 / 3, 2: 0.6667, 3: 1.0}) == (
        "6 candidates, 33.3% of them right\npass@N: N=1 33.3%, N=2 66.7%, N=3 100.0%")  # in percent, not a dict
    with pytest.raises(ValueError, match="candidate_summary: no graded candidates"):
        bestofn.candidate_summary({"correct": [[]]})


def test_n_best_of_n_problems_is_a_fifth_of_the_test_problems_unless_asked():
    assert bestofn.n_best_of_n_problems(150) == 30 and bestofn.n_best_of_n_problems(4) == 1  # at least one
    assert bestofn.n_best_of_n_problems(150, 40) == 40 and bestofn.n_best_of_n_problems(150, 400) == 150
    for bad in (0, 2.0, "8"):
        with pytest.raises(ValueError, match="n_best_of_n_problems: requested must be an int >= 1 or None"):
            bestofn.n_best_of_n_problems(150, bad)
    with pytest.raises(ValueError, match="n_best_of_n_problems: n_test must be an int >= 1"):
        bestofn.n_best_of_n_problems(0)


def test_candidates_record_and_the_ceiling_beside_the_table(toy):
    problems, sols = toy  # each problem: the gold solution, a wrong one and a blank one
    graded = bestofn.grade(problems, sols)
    pass_at = bestofn.pass_at_n(graded, [1, 3], seed=0, n_resamples=10)
    assert bestofn.candidates_record(graded, pass_at, n_candidates=3, temperature=1.0) == {
        "n_best_of_n_problems": 2, "n_candidates": 3, "temperature": 1.0, "candidate_accuracy": 2 / 6,
        "pass_at_n": {"1": pass_at[1], "3": 1.0}}
    table = {"1": {"orm": 0.25, "random": 0.3}, "3": {"orm": 0.5, "random": 0.3}}
    assert bestofn.with_pass_at_n(table, {1: 0.3, 3: 1.0}) == {
        "1": {"orm": 0.25, "random": 0.3, "pass@N (ceiling)": 0.3}, "3": {"orm": 0.5, "random": 0.3,
                                                                         "pass@N (ceiling)": 1.0}}
    assert "pass@N (ceiling)" not in table["1"]  # the table itself (metrics.json's) is left as it was
    # notebook 06 recorded N_CANDIDATES as edited after sampling: 8 beside 3 candidates per problem
    with pytest.raises(ValueError, match=r"candidates_record: n_candidates is 8, but the graded candidates number "
                                         r"\[3\] per problem: record the N_CANDIDATES they were sampled with"):
        bestofn.candidates_record(graded, pass_at, n_candidates=8, temperature=1.0)


def test_format_table_keeps_its_columns_in_line_for_a_long_method_name():
    """One's own aggregation's name, longer than the kit's, pushed its row's figures right (trial T5, finding 10)."""
    text = bestofn.format_table({"1": {"prm_mean_last_two": 0.5, "orm": 0.25}, "4": {"prm_mean_last_two": 0.75,
                                                                                    "orm": 0.5}})
    ends = {len(line) for line in text.splitlines()}
    assert len(ends) == 1, text  # header and rows end in the same column: the columns are right-aligned


class _SumProblem:
    """docs/own_task.md's SumProblem in small: the sum of ``numbers``; subclasses break one method's contract."""

    def __init__(self, numbers):
        self.numbers, self.prompt = numbers, f"Problem: add up {numbers}.\n"

    def gold_answer(self):
        return float(sum(self.numbers))

    def final_answer(self, solution):
        match = re.search(r"Answer: (-?\d+)\s*$", solution)
        return float(match[1]) if match else None

    def is_correct(self, solution):
        return self.final_answer(solution) == self.gold_answer()


def test_grade_refuses_answers_and_verdicts_the_task_contract_does_not_allow():
    """A str answer "29" never equals the gold 29.0: majority vote was 0.0 at every N; a NaN gold the same; a str
    verdict "False" counted as right; a list answer was a TypeError inside a Counter."""
    right, wrong, none = "Step 1: 19 + 10 = 29\n\nAnswer: 29", "Step 1: 19 + 10 = 30\n\nAnswer: 30", "Step 1: 19"
    graded = bestofn.grade([_SumProblem((19, 10))], [[right, wrong, none]])
    assert graded == {"correct": [[True, False, False]], "answers": [[29.0, 30.0, None]], "gold": [29.0]}
    as_int = type("IntAnswer", (_SumProblem,), {"final_answer": lambda self, s: 29, "gold_answer": lambda self: 29})
    assert bestofn.grade([as_int((19, 10))], [[right]])["answers"] == [[29.0]]  # an int is a number
    import torch  # a torch scalar is a number too, as checks.finite_number takes one (it was refused)

    as_tensor = type("TensorAnswer", (_SumProblem,), {"final_answer": lambda self, s: torch.tensor(29),
                                                       "gold_answer": lambda self: torch.tensor(29.0),
                                                       "is_correct": lambda self, s: True})
    assert bestofn.grade([as_tensor((19, 10))], [[right]])["answers"] == [[29.0]]
    broken = {"final_answer": ("final_answer", "a finite number or None", "29", "candidate 0"),
              "gold_answer": ("gold_answer", "a finite number", float("nan"), None),
              "is_correct": ("is_correct", "a bool", "False", "candidate 0")}
    for method, (name, allowed, value, candidate) in broken.items():
        problem = type("Broken", (_SumProblem,), {method: lambda self, *s, value=value: value})((19, 10))
        where = f"problem 1, {candidate}" if candidate else "problem 1"
        with pytest.raises(ValueError, match=rf"grade: {where}: the problem's {name} must return {allowed}"):
            bestofn.grade([_SumProblem((1, 2)), problem], [[right], [right, wrong]])
    listed = type("ListAnswer", (_SumProblem,), {"final_answer": lambda self, s: [29]})((19, 10))
    with pytest.raises(ValueError, match=r"grade: problem 0, candidate 0: .*final_answer .* got list \[29\]"):
        bestofn.grade([listed], [[right]])
    with pytest.raises(ValueError, match=r"weighted_majority_vote: problem 0, candidate 0: .*final_answer"):
        bestofn.weighted_majority_vote([type("StrAnswer", (_SumProblem,), {"final_answer": lambda self, s: "29"})(
            (19, 10))], [[right]], [[0.5]])


def test_a_candidate_without_steps_gets_the_floor_and_never_wins():
    """aggregate scored no steps 0.0 (losses.aggregate_rewards), above a candidate whose min is -1: it was picked."""
    with pytest.warns(UserWarning, match=r"aggregate: 1 candidates have no step rewards \(problem 0, candidate 0\)"):
        scores = bestofn.aggregate([[[], [-0.5, -1.0], [2.0, -0.2]]], "min")
    assert scores == [[bestofn.FLOOR, -1.0, pytest.approx(-0.2)]]
    assert bestofn.select_best([["(no steps)", "A", "B"]], scores) == ["B"]
    with pytest.warns(UserWarning, match="no step rewards"):
        assert bestofn.selection_scores(prm_step_rewards=[[[], [0.5]]])["prm_product"][0][0] == bestofn.FLOOR


def test_per_problem_tables_scores_and_accuracy_refuse_bad_input_by_name(toy):
    problems, sols = toy
    with pytest.raises(ValueError, match=r"mean_accuracies: 'm' at N=1 has no per-problem rates"):
        bestofn.mean_accuracies({"1": {"m": []}})  # was a ZeroDivisionError
    with pytest.raises(ValueError, match=r"selection_scores: orm_rewards\[0\] \(problem 0\): expected a list"):
        bestofn.selection_scores(orm_rewards=[0.1, 0.2])  # one reward per problem: was a TypeError
    with pytest.raises(ValueError, match="accuracy: problems: expected a list of problems, got NoneType"):
        bestofn.accuracy(None, [sols[0][0]])  # was a TypeError
    for verdict in ("False", None, 0.5):  # "False" counted as right; None was a TypeError in sum
        odd = type("OddVerdict", (_SumProblem,), {"is_correct": lambda self, s, v=verdict: v})((1, 2))
        with pytest.raises(ValueError, match=r"accuracy: problem 1: the problem's is_correct must return a bool"):
            bestofn.accuracy([problems[0], odd], [sols[0][0], "Answer: 3"])
    assert bestofn.accuracy([type("IntVerdict", (_SumProblem,), {"is_correct": lambda self, s: 1})((1, 2))],
                            ["Answer: 3"]) == 1.0  # 0 and 1 pass, as labelling.mc_step_labels reads a verdict


def test_candidates_record_refuses_problems_with_uneven_candidate_counts(toy):
    """Every problem must hold n_candidates: one problem with 3 and one with 2 is not "N = 3" in metrics.json."""
    problems, sols = toy
    graded = bestofn.grade(problems, [sols[0], sols[1][:2]])
    with pytest.raises(ValueError, match=r"candidates_record: n_candidates is 3, but the graded candidates number "
                                         r"\[2, 3\] per problem"):
        bestofn.candidates_record(graded, {1: 0.5}, n_candidates=3, temperature=1.0)


@pytest.mark.filterwarnings("ignore:score_readable")  # the fixture's blank candidates, warned of
def test_combined_scores_floor_a_part_that_could_not_read_a_candidate(tmp_path, toy):
    """A candidate the ORM could not read (None: too long for it) counts FLOOR in the ORM's part, so it cannot
    outrank one both parts read; the weighted sum is clamped at FLOOR, so a blank candidate scores FLOOR exactly
    (weights that sum to 2 made it 2 x FLOOR, below every other unreadable candidate's score)."""
    from stepdpo_lite.reward_ensembles import CombinedRewardModel
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel
    problems, sols = toy
    model, tok = tiny_models.load_tiny_base()
    prm, orm = ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok)
    prm.save(tmp_path / "prm")
    orm.save(tmp_path / "orm")
    CombinedRewardModel(prm, orm, process_weight=1.0, outcome_weight=1.0).save(tmp_path / "combined")
    steps, outcome = bestofn.score_candidates(prm, problems, sols), bestofn.score_candidates(orm, problems, sols)
    outcome[0][1] = None  # as if too long for the ORM, though the PRM read it
    scores = bestofn.combined_scores(tmp_path / "combined", problems, sols, tmp_path / "prm", steps,
                                     tmp_path / "orm", outcome)
    assert scores[0][2] == scores[1][2] == bestofn.FLOOR  # blank: both parts FLOOR, clamped
    assert scores[0][1] < -1e8 < scores[0][0]  # the ORM's FLOOR, not 0: ranked below the read candidate


@pytest.mark.filterwarnings("ignore:score_readable")
def test_combined_scores_rescore_a_part_saved_with_other_weights(tmp_path, toy):
    """Rewards cached for prm/ are reused only when the combined model's PRM holds the same weights: one trained
    apart (here: another initialisation) is scored with its own weights, as loading the combined model scores."""
    from stepdpo_lite.reward_ensembles import CombinedRewardModel
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel
    problems, sols = toy
    model, tok = tiny_models.load_tiny_base()
    prm, orm = ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok)
    prm.save(tmp_path / "prm")
    orm.save(tmp_path / "orm")
    other = ProcessRewardModel(tiny_models.build_tiny_model(tok, seed=1), tok)
    CombinedRewardModel(other, orm, process_weight=0.6, outcome_weight=0.4).save(tmp_path / "combined")
    steps, outcome = bestofn.score_candidates(prm, problems, sols), bestofn.score_candidates(orm, problems, sols)
    cached = bestofn.combined_scores(tmp_path / "combined", problems, sols, tmp_path / "prm", steps,
                                     tmp_path / "orm", outcome)
    fresh = bestofn.combined_scores(tmp_path / "combined", problems, sols)
    read = [s for row in cached for s in row[:2]]  # the blank third candidate scores the floor either way
    assert read == pytest.approx([s for row in fresh for s in row[:2]], rel=1e-4, abs=1e-4)
    stale = [0.6 * min(s) + 0.4 * o for srow, orow in zip(steps, outcome) for s, o in zip(srow[:2], orow[:2])]
    assert read != pytest.approx(stale, rel=1e-3, abs=1e-3)  # prm/'s rewards are not its PRM's


@pytest.mark.filterwarnings("ignore:score_readable")  # the fixture's blank candidates, warned of
def test_combined_scores_of_a_model_with_max_steps_rescore_its_capped_steps(tmp_path, toy):
    """A combined model with max_steps merges the steps past it into the last one it keeps: the rewards cached for
    prm/'s own steps are not its PRM's scores, though its PRM has the same weights; they are scored again."""
    problems, sols = toy
    prm, orm, _ = _save_reward_models(tmp_path)
    capped = CombinedRewardModel(prm, orm, process_weight=0.6, outcome_weight=0.4, max_steps=1)
    capped.save(tmp_path / "capped")
    steps, outcome = bestofn.score_candidates(prm, problems, sols), bestofn.score_candidates(orm, problems, sols)
    expected = capped.score_solutions([p.prompt for p in problems for _ in range(2)],
                                      [s for row in sols for s in row[:2]])
    got = bestofn.combined_scores(tmp_path / "capped", problems, sols, tmp_path / "prm", steps, tmp_path / "orm",
                                  outcome)
    assert [s for row in got for s in row[:2]] == pytest.approx(expected, rel=1e-4, abs=1e-4)
