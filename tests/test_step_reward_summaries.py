"""step_reward_summaries: what notebooks 02 and 05 draw of a PRM's step rewards, and what their texts read off them."""
import math
import random

import numpy as np
import pytest

from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import diagnostics, reward_reports, step_reward_summaries
from stepdpo_lite.tutorial.step_reward_summaries import chosen_vs_rejected_summary


def test_chosen_vs_rejected_summary():
    out = chosen_vs_rejected_summary([[2.0, 1.0], [1.0, 0.5, 0.2]], [[2.0, -1.0], [1.5, 0.9]])
    assert out["ranked_by_min"] == 0.5  # pair 1: 1.0 > -1.0; pair 2: 0.2 < 0.9
    assert out["mean_gap_by_step"] == pytest.approx([1.5 - 1.75, 0.75 - (-0.05)])
    with pytest.raises(ValueError, match="need equal"):
        chosen_vs_rejected_summary([[1.0]], [])


def test_chosen_vs_rejected_summary_names_the_pair_without_rewards():
    with pytest.raises(ValueError, match="pair 1: the chosen solution has no step rewards"):
        chosen_vs_rejected_summary([[1.0], []], [[0.0], [1.0]])
    with pytest.raises(ValueError, match="pair 0: the rejected solution has no step rewards"):
        chosen_vs_rejected_summary([[1.0]], [[]])


REWARDS = [[2.0, 1.0, -4.0], [3.0, -5.0], [1.0, 2.0]]  # first predicted error at P < 0.1: steps 2, 1, none
LABELS = [[True, True, False], [True, True], [True, True]]  # first errors: step 2, none, none
P10, P01 = math.log(0.1 / 0.9), math.log(0.01 / 0.99)  # the log-odds thresholds of P 0.1 and P 0.01


def test_first_error_hits_count_exact_matches_of_the_first_error():
    assert step_reward_summaries.first_error_hits(REWARDS, LABELS, P10) == 2  # solution 2's false alarm is a miss
    # sigmoid(-4) = 0.018 is no longer below 0.01: solution 1's error is missed too; sigmoid(-5) = 0.007 still is
    assert step_reward_summaries.first_error_hits(REWARDS, LABELS, P01) == 1
    assert step_reward_summaries.first_error_hits_by_problem([REWARDS[:2], REWARDS[2:]], [LABELS[:2], LABELS[2:]],
                                                             P10) == (2, 3)
    # log-odds, as first_error_report's: -2.0 (P 0.12) was refused as "no probability"; 0.1 was read as P 0.1
    assert step_reward_summaries.first_error_hits(REWARDS, LABELS, -2.0) == 2
    # read as P 0.1: no step below
    assert step_reward_summaries.first_error_hits([[0.5, -0.5]], [[True, False]], 0.1) == 1
    for bad in (float("nan"), 40.0):  # σ(40) rounds to 1: every step rejected
        with pytest.raises(ValueError, match="first_error_hits: threshold"):
            step_reward_summaries.first_error_hits(REWARDS, LABELS, bad)
    with pytest.raises(ValueError, match="first_error_hits: solution 1 has 2 rewards and 3 labels"):
        step_reward_summaries.first_error_hits(REWARDS, [LABELS[0], LABELS[0], LABELS[2]], P10)
    with pytest.raises(ValueError, match="problem 0 has 2 solutions of rewards and 1 of labels"):
        step_reward_summaries.first_error_hits_by_problem([REWARDS[:2]], [LABELS[:1]], P10)
    with pytest.raises(ValueError, match="rewards_by_problem has 1 problems, labels_by_problem 2"):
        step_reward_summaries.first_error_hits_by_problem([REWARDS], [LABELS, LABELS], P10)


def test_heatmap_summary_and_its_lines():
    summary = step_reward_summaries.heatmap_summary(REWARDS, LABELS, P10)
    probs = 1 / (1 + np.exp(-np.array([2.0, 1.0, -4.0, 3.0, -5.0, 1.0, 2.0])))
    right = np.array([True, True, False, True, True, True, True])
    assert summary == {"solutions": 3, "first_error_matched": 2, "mean_p_right": float(probs[right].mean()),
                       "mean_p_wrong": float(probs[~right].mean())}
    assert step_reward_summaries.format_heatmap_summary(summary, P10) == (
        "mean P(right): 0.70 on right steps, 0.02 on wrong steps\n"
        "first rejected step (P < 0.10, the threshold) = the checker's first error (none = none) in 2 of 3 solutions")


def test_the_heatmap_summary_says_matched_not_found_a_right_solution_counting_too():
    """"first error found exactly ... in 2 of 2 solutions" of a wrong and a right solution: the right one has no
    error to find; what is counted is the first rejected step matching the first error, none matching none."""
    summary = step_reward_summaries.heatmap_summary([[-5.0, -5.0], [3.0, 3.0]], [[False, False], [True, True]], P10)
    assert summary["first_error_matched"] == 2 and "first_error_found" not in summary
    assert step_reward_summaries.format_heatmap_summary(summary, P10).splitlines()[1] == (
        "first rejected step (P < 0.10, the threshold) = the checker's first error (none = none) in 2 of 2 solutions")


def test_thresholds_far_from_one_half_print_with_a_significant_digit():
    """σ(-6) = 0.0025 printed as "P < 0.00", as if no step could be rejected (the heatmaps' cells kept a digit)."""
    assert [diagnostics.probability_text(p) for p in (0.0, 0.00247, 0.01, 0.5, 0.99, 0.999, 1.0)] == [
        "0", "0.002", "0.01", "0.50", "0.99", "1−0.001", "1"]
    summary = step_reward_summaries.heatmap_summary(REWARDS, LABELS, -6.0)
    assert "first rejected step (P < 0.002, the threshold)" in step_reward_summaries.format_heatmap_summary(summary,
                                                                                                       -6.0)
    pairs = chosen_vs_rejected_summary([[1.0]], [[-7.0, 0.0]], [[True, False]], threshold=-6.0)
    assert "below the threshold (P < 0.002), rejected" in step_reward_summaries.format_chosen_vs_rejected(pairs, 1)
    all_right = step_reward_summaries.heatmap_summary(REWARDS[1:], LABELS[1:], P10)
    assert all_right["mean_p_wrong"] is None  # JSON records None; NaN it would not
    assert "nan on wrong steps" in step_reward_summaries.format_heatmap_summary(all_right, P10)
    with pytest.raises(ValueError, match=r"step_labels\[0\]\[0\] must be a bool or 0/1, got None"):
        step_reward_summaries.heatmap_summary([[1.0]], [[None]], P10)


def test_format_chosen_vs_rejected_is_notebook_05s_two_lines():
    summary = chosen_vs_rejected_summary([[5.0, 4.0], [6.0]], [[1.0, -2.0], [-1.0]])
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 2) == (
        "the PRM (min over steps) ranks chosen above rejected in 100% of 2 pairs\n"
        "mean chosen minus mean rejected reward, by step: +5.50  +6.00\n"
        "mean chosen reward (solutions), by step: +5.50 (2)  +4.00 (1)")  # notebook 05's text reads the chosen curve


def test_chosen_vs_rejected_summary_gives_the_chosen_curve_and_the_mistakes_dots():
    """What notebook 05's text reads off its plot: where the chosen curve goes (and on how many solutions) and how
    low the mistakes (the × dots: rejected steps labelled False) fall."""
    summary = chosen_vs_rejected_summary([[5.0, 4.0, -1.0], [6.0, 0.0]], [[1.0, -2.0], [-6.0]],
                                         rejected_step_labels=[[True, False], [False]], threshold=-3.0)
    assert summary["chosen_by_step"] == [{"mean": 5.5, "solutions": 2}, {"mean": 2.0, "solutions": 2},
                                         {"mean": -1.0, "solutions": 1}]
    assert summary["mistake_rewards"] == [-6.0, -2.0] and summary["threshold"] == -3.0
    assert "mistake_rewards" not in chosen_vs_rejected_summary([[1.0]], [[0.0]])  # no labels, no dots to read
    # a soft label (0.3: a PRM's probability) read by its truth value would count as right; a short list, zip-cut
    with pytest.raises(ValueError, match=r"rejected_step_labels\[1\]"):
        chosen_vs_rejected_summary([[1.0], [1.0]], [[0.0], [-1.0]], rejected_step_labels=[[False], [0.3]],
                                   threshold=0.0)
    with pytest.raises(ValueError, match="solution 0 has 2 rewards and 1 labels"):
        chosen_vs_rejected_summary([[1.0]], [[0.0, -3.0]], rejected_step_labels=[[True]], threshold=0.0)
    with pytest.raises(ValueError, match="rejected_step_labels needs threshold, the PRM's"):  # missed at which P?
        chosen_vs_rejected_summary([[1.0]], [[0.0]], rejected_step_labels=[[False]])
    with pytest.raises(ValueError, match="chosen_vs_rejected_summary: threshold must be a finite number"):
        chosen_vs_rejected_summary([[1.0]], [[0.0]], rejected_step_labels=[[False]], threshold=float("nan"))


def test_chosen_vs_rejected_summary_does_not_count_a_tie_of_weakest_steps_as_ranked():
    summary = chosen_vs_rejected_summary([[1.0, 2.0], [2.0]], [[1.0, 3.0], [0.0]])
    assert summary["ranked_by_min"] == 0.5


def test_heatmap_details_name_the_rows_the_text_reads_off():
    rewards, labels = REWARDS + [[-3.0, 0.0, -3.0]], LABELS + [[False] * 3]  # row 4: step 2 back to P 0.5
    details = step_reward_summaries.heatmap_details(rewards, labels, P10,
                                                    row_labels=["✗ 1", "✓ 2", "✓ 3", "✗ 4"])
    p = lambda x: float(1 / (1 + np.exp(-x)))
    assert details == {
        "misread": [{"row": "✓ 2", "first_error": None, "first_rejected": 2, "p_first_error": None,
                     "p_first_rejected": pytest.approx(p(-5.0))}],  # a false alarm at step 2
        "accepted_after_error": {"rows": ["✗ 4"], "p_min": 0.5, "p_max": 0.5},  # not row 1: no step after its error
        "p_right_by_step": [[pytest.approx(p(1.0)), pytest.approx(p(3.0))],
                            [pytest.approx(p(-5.0)), pytest.approx(p(2.0))], None]}  # no right step 3
    missed = step_reward_summaries.heatmap_details([[4.0, -4.0]], [[False, False]], P10)["misread"]
    assert missed == [{"row": "1", "first_error": 1, "first_rejected": 2, "p_first_error": pytest.approx(p(4.0)),
                       "p_first_rejected": pytest.approx(p(-4.0))}]
    with pytest.raises(ValueError, match="heatmap_details: 1 row labels for 3 solutions"):
        step_reward_summaries.heatmap_details(REWARDS, LABELS, P10, row_labels=["✗ 1"])
    with pytest.raises(ValueError, match=r"heatmap_details: step_labels\[0\]\[0\] must be a bool or 0/1, got None"):
        step_reward_summaries.heatmap_details([[1.0]], [[None]], P10)


def test_heatmap_details_count_only_steps_after_the_first_error_as_accepted_after_it():
    """The PRM accepts the first mistake itself (a miss, in ``misread``), then rejects the next step: no step after
    the error comes back above the threshold."""
    details = step_reward_summaries.heatmap_details([[2.0, 1.0, -5.0]], [[True, False, False]], -2.0)
    assert details["accepted_after_error"] == {"rows": [], "p_min": None, "p_max": None}
    assert details["misread"][0]["first_error"] == 2 and details["misread"][0]["first_rejected"] == 3


def test_heatmap_named_rows_print_the_first_row_back_above_the_tick_then_each_misread_one():
    """Notebook 02's cell under its heatmap chose these rows itself; the choice and the printing are one call now."""
    rewards = [[3.0, -5.0], [2.0, 1.0], [2.0, -4.0, 0.0], [4.0, -4.0, 1.0]]
    labels = [[True, True], [True, True], [True, False, False], [False] * 3]
    names = ["test 7", "test 3", "test 9", "test 1"]
    rows = [{"prompt": f"Problem {name}.", "completions": [f"Step {k + 1}: {k}" for k in range(len(r))], "labels": y}
            for name, r, y in zip(names, rewards, labels)]
    details = step_reward_summaries.heatmap_details(rewards, labels, P10, row_labels=names)
    assert details["accepted_after_error"]["rows"] == ["test 9", "test 1"]  # only the first of them is printed
    assert [m["row"] for m in details["misread"]] == ["test 7", "test 1"]  # a false alarm; a missed first error
    assert step_reward_summaries.heatmap_named_rows(details, names) == [2, 0, 3]  # test 3: nothing to read off
    text = step_reward_summaries.format_heatmap_named_rows(details, rows, rewards, P10, row_labels=names)
    shown = [diagnostics.format_step_rewards(f"{names[k]}: {rows[k]['prompt']}", rows[k]["completions"], rewards[k],
                                             labels[k], P10) for k in (2, 0, 3)]
    assert text == "\n\n".join(shown)  # the old cell printed each of them, then a blank line
    # a row both back above the tick and misread is printed once
    both = step_reward_summaries.heatmap_details([rewards[3], rewards[0]], [labels[3], labels[0]], P10,
                                                 row_labels=["test 1", "test 7"])
    assert step_reward_summaries.heatmap_named_rows(both, ["test 1", "test 7"]) == [0, 1]
    # none named: the heatmap's first row, so that one solution is still read step by step
    calm = step_reward_summaries.heatmap_details([rewards[1]], [labels[1]], P10, row_labels=["test 3"])
    assert step_reward_summaries.format_heatmap_named_rows(calm, rows[1:2], rewards[1:2], P10, ["test 3"]) == (
        diagnostics.format_step_rewards("test 3: Problem test 3.", rows[1]["completions"], rewards[1], labels[1], P10))
    with pytest.raises(ValueError, match="heatmap_named_rows: details name row 'test 9', which row_labels do not"):
        step_reward_summaries.heatmap_named_rows(details, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="heatmap_named_rows: row_labels must name each row once"):
        step_reward_summaries.heatmap_named_rows(details, ["test 9"] * 4)
    with pytest.raises(ValueError, match="format_heatmap_named_rows: 4 rows, 3 lists of step rewards and 4 row"):
        step_reward_summaries.format_heatmap_named_rows(details, rows, rewards[:3], P10, row_labels=names)
    with pytest.raises(ValueError, match="format_heatmap_named_rows: rows\\[0\\] has no 'completions'"):
        step_reward_summaries.format_heatmap_named_rows(details, [{"prompt": "p", "labels": [True]}], [[1.0]], P10,
                                                        row_labels=["test 9"])


class StepCountPRM:
    """A PRM that gives step k of every solution the reward k (1-based); it never sees a blank solution. Solutions
    come as step lists (the kit's reward-model protocol, docs/method.md §3)."""

    def score_solutions(self, prompts, step_lists):
        assert all("".join(steps).strip() for steps in step_lists), "blank solutions must not be scored"
        return [[float(k) for k in range(1, len(steps) + 1)] for steps in step_lists]


# ----------------------------------------------------------------------------- what notebooks 02 and 05 pick to draw


def _stepwise_rows(n, seed=0):
    """``n`` stepwise rows with random labels as the checker writes them: right steps, then wrong from the first
    error on; prompts repeat so that a problem has several solutions."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k, first = int(rng.integers(1, 6)), int(rng.integers(0, 8))
        labels = [j < first for j in range(k)]
        rows.append({"prompt": f"problem {i % 7}", "completions": [f"Step {j + 1}: s{i}" for j in range(k)],
                     "labels": labels})
    return rows


def _heatmap_rows_as_notebook_05_picked_them(rows, n, seed):
    """Notebook 05's former in-cell selection, kept verbatim as the reference."""
    import random

    rows = list(rows)
    random.Random(seed).shuffle(rows)
    wrong = [r for r in rows if not all(r["labels"])]
    right = [r for r in rows if all(r["labels"])]
    half = min(len(wrong), n // 2)
    heat = wrong[:half] + right[:n - half]
    heat = (heat + wrong[half:])[:n]
    heat.sort(key=lambda r: (all(r["labels"]), r["labels"].index(False) if False in r["labels"] else len(r["labels"])))
    return heat


def test_heatmap_rows_pick_half_wrong_in_staircase_order_as_notebook_05_did():
    rows = _stepwise_rows(60)
    for n, seed in ((16, 0), (7, 3), (60, 1), (1, 2)):
        assert step_reward_summaries.heatmap_rows(rows, n, seed=seed) == _heatmap_rows_as_notebook_05_picked_them(
            rows, n, seed)
    heat = step_reward_summaries.heatmap_rows(rows, 16)
    firsts = [r["labels"].index(False) for r in heat if False in r["labels"]]
    assert len(firsts) == 8 and firsts == sorted(firsts)  # half with an error, as a staircase, first
    assert all(all(r["labels"]) for r in heat[8:])
    only_wrong = [r for r in rows if not all(r["labels"])][:5] + [r for r in rows if all(r["labels"])][:1]
    picked = step_reward_summaries.heatmap_rows(only_wrong, 6)
    assert sum(all(r["labels"]) for r in picked) == 1  # too few right: wrong ones fill up
    assert rows == _stepwise_rows(60)  # the caller's list is not shuffled
    for n in (0, 2.0, None):
        with pytest.raises(ValueError, match="heatmap_rows: n must be an int >= 1"):
            step_reward_summaries.heatmap_rows(rows, n)
    with pytest.raises(ValueError, match=r"heatmap_rows: rows\[1\] has no 'labels'"):
        step_reward_summaries.heatmap_rows([rows[0], {"prompt": "p"}], 2)
    with pytest.raises(ValueError, match=r"rows\[0\]\['labels'\]\[1\] must be a bool or 0/1, got None"):
        step_reward_summaries.heatmap_rows([{"labels": [True, None]}], 1)  # bool(None) would count as a wrong step


def test_verdict_row_labels():
    assert step_reward_summaries.verdict_row_labels([[True, False], [True], []]) == ["✗ 1", "✓ 2", "✓ 3"]
    with pytest.raises(ValueError, match=r"step_labels\[0\]\[0\] must be a bool or 0/1"):
        step_reward_summaries.verdict_row_labels([[None]])


def test_pick_before_after_problem_prefers_a_fixed_then_a_changed_problem():
    from stepdpo_lite.tutorial import toyworld

    problems = toyworld.make_problems(3, seed=3)
    right = [p.gold_solution for p in problems]
    wrong = [toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(i)) for i, p in enumerate(problems)]
    assert step_reward_summaries.pick_before_after_problem(problems, [right[0], wrong[1], wrong[2]],
                                                           [right[0], wrong[1], right[2]]) == (2, "fixed by")
    changed = wrong[1] + " "  # another text, still wrong
    assert step_reward_summaries.pick_before_after_problem(problems, wrong, [wrong[0], changed, right[2]]) == (
        2, "fixed by")
    assert step_reward_summaries.pick_before_after_problem(problems, right, [right[0], changed, right[2]]) == (
        1, "changed by")
    assert step_reward_summaries.pick_before_after_problem(problems, right, right) == (0, "same after")
    with pytest.raises(ValueError, match="after has 2 solutions for 3 problems"):
        step_reward_summaries.pick_before_after_problem(problems, right, right[:2])
    with pytest.raises(ValueError, match="problems is empty"):
        step_reward_summaries.pick_before_after_problem([], [], [])


def test_explorer_problems_rank_by_label_variety_ties_first_seen():
    rows = [{"prompt": "a", "completions": ["a1"], "labels": [True]},
            {"prompt": "b", "completions": ["b1"], "labels": [True]},
            {"prompt": "b", "completions": ["b2"], "labels": [False]},
            {"prompt": "a", "completions": ["a2"], "labels": [True]},
            {"prompt": "c", "completions": ["c1"], "labels": [True, False]},
            {"prompt": "c", "completions": ["c2"], "labels": [False, False]}]
    prompts, sols, labels = step_reward_summaries.explorer_problems(rows, 2)
    assert prompts == ["b", "c"] and sols == [[["b1"], ["b2"]], [["c1"], ["c2"]]]
    assert labels == [[[True], [False]], [[True, False], [False, False]]]
    assert step_reward_summaries.explorer_problems(rows, 10)[0] == ["b", "c", "a"]
    with pytest.raises(ValueError, match=r"explorer_problems: rows\[0\] has no 'completions'"):
        step_reward_summaries.explorer_problems([{"prompt": "a", "labels": [True]}], 1)
    with pytest.raises(ValueError, match="explorer_problems: n must be an int >= 1"):
        step_reward_summaries.explorer_problems(rows, 0)


def test_one_heatmap_picker_for_notebooks_02_and_05_that_fills_up_with_either_kind():
    """Notebook 02 drew a third right solutions in index order (pick_heatmap_solutions), notebook 05 half wrong as a
    staircase; with few wrong solutions notebook 02's returned fewer than asked, without a word (3 of 6 here, with 10
    right ones there)."""
    labels = [[True, True]] * 10 + [[True, True, False]]
    picked = step_reward_summaries.heatmap_indices(labels, 6)
    assert picked == sorted(picked, key=lambda i: i != 10)
    assert len(picked) == 6 and 10 in picked  # right ones fill up
    rows = _stepwise_rows(60)
    for n, seed in ((16, 0), (7, 3), (60, 1), (1, 2)):  # notebook 05's rows are the ones its indices name
        assert step_reward_summaries.heatmap_rows(rows, n, seed) == [
            rows[i] for i in step_reward_summaries.heatmap_indices([r["labels"] for r in rows], n, seed)]
    picked = step_reward_summaries.heatmap_indices([r["labels"] for r in rows], 12, seed=5)
    first = [rows[i]["labels"].index(False) for i in picked[:6]]  # half wrong, as a staircase, then right ones
    assert first == sorted(first) and all(all(rows[i]["labels"]) for i in picked[6:])
    # too few: all of them, the wrong one first
    assert step_reward_summaries.heatmap_indices([[True], [False]], 9) == [1, 0]
    with pytest.raises(ValueError, match="heatmap_indices: n must be an int >= 1"):
        step_reward_summaries.heatmap_indices([[False], [True]], 0)


def test_heatmap_indices_fill_up_with_wrong_ones_when_right_ones_are_too_few():
    """Half wrong was the aim: with one right solution only, the wrong ones fill up to ``n``; without the fill-up 4
    of 6 were drawn, unseen (the test above counts the right rows of its only-wrong case, not the total)."""
    labels = [[False]] * 5 + [[True]]
    assert sorted(step_reward_summaries.heatmap_indices(labels, 6)) == list(range(6))  # every one, when n is all
    picked = step_reward_summaries.heatmap_indices(labels, 4, seed=1)
    assert len(picked) == 4 and picked[-1] == 5  # 2 wrong, the right one, 1 wrong filling up; the right one last


def test_heatmap_indices_refuse_a_label_that_is_no_bool():
    for bad in (float("nan"), None, 0.5):  # bool(None) would count a missing label as wrong
        with pytest.raises(ValueError, match=r"heatmap_indices: step_labels\[1\]\[0\] must be a bool or 0/1"):
            step_reward_summaries.heatmap_indices([[True], [bad], [False]], 3)
    assert step_reward_summaries.heatmap_indices([np.array([True, False]), np.array([1, 1])], 2) == [0, 1]


def test_step_rewards_and_labels_and_the_heatmap_rows_of_notebook_05():
    from stepdpo_lite.tutorial import bestofn, toyworld

    problems = bestofn.held_out_problems("tiny", 2, seed=0)
    wrong = toyworld.corrupt_solution(problems[1], 0, "arithmetic", random.Random(0))
    solved = {"base": [problems[0].gold_solution, wrong], "after": [problems[0].gold_solution, ""]}
    rewards, labels = step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, solved)
    n0, n1 = len(problems[0].ops), len(problems[1].ops)
    assert rewards == {"base": [[float(k) for k in range(1, n0 + 1)], [float(k) for k in range(1, n1 + 1)]],
                       "after": [[float(k) for k in range(1, n0 + 1)], []]}  # the blank one has no steps
    assert labels["base"] == [[True] * n0, bestofn.step_labels(problems[1], wrong)] and not all(labels["base"][1])
    assert labels["after"] == [[True] * n0, []]
    assert step_reward_summaries.format_final_accuracy(problems, solved) == (
        "base   final answer right on 50% of these 2 problems\n"
        "after  final answer right on 50% of these 2 problems")
    rows = step_reward_summaries.rows_by_problem(rewards, labels)
    assert rows["names"] == ["P1 base", "P1 after", "P2 base", "P2 after"]
    assert rows["rewards"] == [rewards["base"][0], rewards["after"][0], rewards["base"][1], []]
    assert rows["labels"] == [labels["base"][0], labels["after"][0], labels["base"][1], []]
    no_checker = {"base": [None, [True]], "after": [[True], [True]]}  # a task without a step checker: no marks
    assert step_reward_summaries.rows_by_problem({"base": [[1.0], [1.0]], "after": [[1.0], [1.0]]},
                                                 no_checker)["labels"] is None
    # what the text reads off the pictures: where each row's first mistake is, and the step that changed
    fixed = {"base": solved["base"], "after": [problems[0].gold_solution, problems[1].gold_solution]}
    report = step_reward_summaries.before_after_report(
        fixed, *step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, fixed), 1)
    gold_step, wrong_step = (extract_steps(s)[0].removeprefix("Step 1: ").split("\n")[0]
                             for s in (problems[1].gold_solution, wrong))
    assert report == {"first_error": {"base": [None, 1], "after": [None, None]},
                      "drawn": {"problem": 2, "step": 1, "base_step": wrong_step, "base_reward": 1.0,
                                "after_step": gold_step, "after_reward": 1.0}}
    same = step_reward_summaries.before_after_report(solved, rewards, labels, 0)["drawn"]
    assert same == {"problem": 1, "step": None, "base_step": None, "base_reward": None, "after_step": None,
                    "after_reward": None}  # the same solution: no step changed
    blank = step_reward_summaries.before_after_report(solved, rewards, labels, 1)["drawn"]  # "after" wrote nothing
    assert blank["step"] == 1 and blank["after_step"] is None and blank["after_reward"] is None
    assert step_reward_summaries.before_after_report({"base": ["x"], "after": ["x"]},
                                                     {"base": [[1.0]], "after": [[1.0]]},
                                                     {"base": [None], "after": [[True]]}, 0)["first_error"] is None
    with pytest.raises(ValueError, match="before_after_report: problem 2 drawn, 2 solutions under 'base'"):
        step_reward_summaries.before_after_report(solved, rewards, labels, 2)
    with pytest.raises(ValueError, match=r"2 problems but 1 solutions under 'after' \(need one per problem\)"):
        step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, {"after": [""]})
    with pytest.raises(ValueError, match=r"solutions_by_name\['base'\]: expected a list of solutions"):
        step_reward_summaries.step_rewards_and_labels(StepCountPRM(), problems, {"base": "Step 1: 1 + 1 = 2"})
    with pytest.raises(ValueError, match=r"rows_by_problem: \(rewards, labels\) per name"):
        step_reward_summaries.rows_by_problem({"base": [[1.0]], "after": [[1.0], [2.0]]},
                                              {"base": [[True]], "after": [[1], [1]]})
    with pytest.raises(ValueError, match="need the same names"):
        step_reward_summaries.rows_by_problem({"base": [[1.0]]}, {"after": [[True]]})


def test_first_rejected_steps_count_from_one_and_say_none():
    assert step_reward_summaries.first_rejected_steps([[2.0, -3.0, 1.0], [-4.0], [1.0, 2.0]], 0.0) == [2, 1, None]
    assert step_reward_summaries.first_rejected_steps([[2.0, -3.0, 1.0]], -3.5) == [None]  # log-odds: -3 not below -3.5


def test_chosen_vs_rejected_summary_refuses_a_reward_that_is_not_finite():
    with pytest.raises(ValueError, match="pair 1: rejected step 0's reward must be a finite number, got nan"):
        chosen_vs_rejected_summary([[1.0], [2.0]], [[0.0], [float("nan"), 0.5]])  # min() was NaN: misranked
    with pytest.raises(ValueError, match="pair 0: chosen step 1's reward must be a finite number, got inf"):
        chosen_vs_rejected_summary([[1.0, float("inf")]], [[0.0]])
    assert chosen_vs_rejected_summary([np.array([1.0])], [[0.0]])["ranked_by_min"] == 1.0


def test_before_after_report_refuses_a_drawn_problem_that_is_no_int():
    solutions, rewards, labels = {"a": ["Step 1: x", "Step 1: y"]}, {"a": [[1.0], [2.0]]}, {"a": [[True], [True]]}
    for bad in (True, 1.0, "1"):  # True was problem 2
        with pytest.raises(ValueError, match="before_after_report: drawn must be an int"):
            step_reward_summaries.before_after_report(solutions, rewards, labels, bad)
    assert step_reward_summaries.before_after_report(solutions, rewards, labels, np.int64(1))["drawn"]["problem"] == 2


def test_format_heatmap_summary_says_where_its_threshold_comes_from():
    """It always said "notebook 02's threshold", whatever threshold a user's script passed."""
    summary = step_reward_summaries.heatmap_summary(REWARDS, LABELS, 0.0)
    assert step_reward_summaries.format_heatmap_summary(summary, 0.0, threshold_source="my threshold").endswith(
        "first rejected step (P < 0.50, my threshold) = the checker's first error (none = none) in 2 of 3 solutions")


def test_format_chosen_vs_rejected_counts_the_mistakes_the_prm_misses():
    """Notebook 05's text quoted 52 mistakes, 49 under -4 and 2 above zero from metrics.json alone: printed now."""
    summary = {"ranked_by_min": 0.75, "mean_gap_by_step": [0.5], "mistake_rewards": [-5.0, -4.0, -1.0, 0.0, 0.5],
               "threshold": -3.0}
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 4).splitlines()[2] == (
        "5 mistakes (x): 2 below the threshold (P < 0.05), rejected; 3 at or above it, missed, 1 of them above zero "
        "(P > 0.5)")
    assert len(step_reward_summaries.format_chosen_vs_rejected({**summary, "mistake_rewards": []}, 4).splitlines()) == 2


def test_chosen_vs_rejected_counts_a_mistake_missed_at_the_prms_threshold_not_at_fixed_cut_points():
    """Everything else in notebook 05 calls a step rejected below its threshold (P = 0.04, log-odds -3.2), but this
    line put -3.5 (rejected) and -2.0 (accepted: missed) in one bucket, "from -4 to 0", and listed as missed only
    the mistakes above zero."""
    rejected = ["Step 1: 4 + 7 = 11\n\nStep 2: 11 - 5 = 6", "Step 1: 10 + 7 = 17\n\nStep 2: 17 - 8 = 8"]
    summary = chosen_vs_rejected_summary([[5.0, 4.0], [6.0, 5.0]], [[3.0, -3.5], [-6.0, -2.0]],
                                         [[True, False], [False, False]], rejected_solutions=rejected, threshold=-3.2)
    assert summary["missed_mistakes"] == [{"pair": 2, "step": 2, "text": "Step 2: 17 - 8 = 8", "reward": -2.0}]
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 2).splitlines()[3:] == [
        "3 mistakes (x): 2 below the threshold (P < 0.04), rejected; 1 at or above it, missed, 0 of them above zero "
        "(P > 0.5)",
        "  missed: pair 2, step 2 (reward -2.00, P 0.12): Step 2: 17 - 8 = 8"]
    at = chosen_vs_rejected_summary([[1.0]], [[-3.2]], [[False]], rejected_solutions=["Step 1: a"], threshold=-3.2)
    assert [m["reward"] for m in at["missed_mistakes"]] == [-3.2]  # at the threshold: accepted, as everywhere


def test_format_chosen_vs_rejected_prints_the_mistakes_the_prm_misses():
    """Notebook 05's text names the two mistakes its PRM misses (`11 - 5 = 6`; `17 - 8 = 9`, then `Answer: 18`), but
    the lines under its plot gave only their count: each one's pair, step, P and text are printed under it now."""
    rejected = ["Step 1: 4 + 7 = 11\n\nStep 2: 11 - 5 = 6\n\nAnswer: 6",
                "Step 1: 10 + 7 = 17\n\nStep 2: 17 - 8 = 9\n\nAnswer: 18"]
    summary = chosen_vs_rejected_summary([[5.0, 4.0], [6.0, 5.0]], [[3.0, 4.6], [-6.0, 1.5]],
                                         [[True, False], [False, False]], rejected_solutions=rejected, threshold=0.0)
    assert summary["missed_mistakes"] == [{"pair": 1, "step": 2, "text": "Step 2: 11 - 5 = 6\n\nAnswer: 6",
                                           "reward": 4.6},
                                          {"pair": 2, "step": 2, "text": "Step 2: 17 - 8 = 9\n\nAnswer: 18",
                                           "reward": 1.5}]
    assert step_reward_summaries.format_chosen_vs_rejected(summary, 2).splitlines()[3:] == [
        "3 mistakes (x): 1 below the threshold (P < 0.50), rejected; 2 at or above it, missed, 2 of them above "
        "zero (P > 0.5)",
        "  missed: pair 1, step 2 (reward +4.60, P 1−0.01): Step 2: 11 - 5 = 6 | Answer: 6",
        "  missed: pair 2, step 2 (reward +1.50, P 0.82): Step 2: 17 - 8 = 9 | Answer: 18"]
    assert "missed_mistakes" not in chosen_vs_rejected_summary([[1.0]], [[0.0]], [[False]], threshold=0.0)  # no texts
    with pytest.raises(ValueError, match="pair 0: the rejected solution has 3 steps but 2 rewards"):
        chosen_vs_rejected_summary([[1.0]], [[0.0, 1.0]], [[True, False]], threshold=0.0,
                                   rejected_solutions=["Step 1: a\n\nStep 2: b\n\nStep 3: c"])
    with pytest.raises(ValueError, match="rejected_solutions needs rejected_step_labels"):
        chosen_vs_rejected_summary([[1.0]], [[0.0]], rejected_solutions=["Step 1: a"])
    with pytest.raises(ValueError, match="1 rejected reward lists but 2 rejected_solutions"):
        chosen_vs_rejected_summary([[1.0]], [[0.0]], [[True]], rejected_solutions=["Step 1: a", "Step 1: b"],
                                   threshold=0.0)


def test_the_texts_of_notebook_05s_summaries_split_at_the_prms_own_delimiter():
    """The rewards come from bestofn.score_candidates, split at the PRM's own delimiter (docs/own_task.md: a task
    may have its own); the texts were split at the default one: before_after_report said the solutions differ at a
    step both read the same (their step 2 differs), and the other two refused a count that was right."""
    base, after = "# a = 1\n\n# b = 2\n\n# Answer: 3", "# a = 1\n\n# b = 3\n\n# Answer: 4"
    rewards = {"base": [[2.0, 1.0, 0.5]], "after": [[2.0, -1.0, -0.5]]}
    labels = {"base": [[True, True, True]], "after": [[True, False, False]]}
    drawn = step_reward_summaries.before_after_report({"base": [base], "after": [after]}, rewards, labels, 0,
                                                      delimiter="\n\n#")["drawn"]
    assert drawn == {"problem": 1, "step": 2, "base_step": "# b = 2", "base_reward": 1.0, "after_step": "# b = 3",
                     "after_reward": -1.0}
    # at the default delimiter, one step against three rewards: refused, where a wrong step was recorded
    with pytest.raises(ValueError, match=r"before_after_report: problem 1's solution under 'base' has 1 steps at "
                                         r"delimiter '\\n\\nStep' but 3 rewards: pass the PRM's own delimiter"):
        step_reward_summaries.before_after_report({"base": [base], "after": [after]}, rewards, labels, 0)
    blank = step_reward_summaries.before_after_report({"base": [base], "after": [""]},
                                                      {"base": rewards["base"], "after": [[]]},
                                                      {"base": labels["base"], "after": [[]]}, 0, delimiter="\n\n#")
    assert blank["drawn"]["step"] == 1 and blank["drawn"]["after_reward"] is None  # [] = unscored: no count to match
    summary = chosen_vs_rejected_summary([[3.0, 3.0, 3.0]], [[2.0, -1.0, 1.5]], [[True, False, False]],
                                         rejected_solutions=[after], threshold=0.0, delimiter="\n\n#")
    assert summary["missed_mistakes"] == [{"pair": 1, "step": 3, "text": "# Answer: 4", "reward": 1.5}]


def test_the_heatmap_counts_refuse_no_solutions_and_a_solution_without_steps():
    """[] was "first error found in 0 of 0 solutions"; a solution without steps was an exact hit (-1 == -1)."""
    calls = {"first_error_hits": lambda r, y: step_reward_summaries.first_error_hits(r, y, P10),
             "heatmap_summary": lambda r, y: step_reward_summaries.heatmap_summary(r, y, P10),
             "heatmap_details": lambda r, y: step_reward_summaries.heatmap_details(r, y, P10),
             "first_error_hits_by_problem": lambda r, y: step_reward_summaries.first_error_hits_by_problem([r], [y],
                                                                                                          P10)}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{name}: no solutions"):
            call([], [])
        with pytest.raises(ValueError, match=rf"^{name}: solution 1 has no steps"):
            call([REWARDS[0], []], [LABELS[0], []])


def test_a_nan_reward_is_named_by_the_function_called_its_solution_and_step():
    """It was "predict_first_error: score 1 must be a finite number" (or step_auroc's index within a position, or
    outcome_auroc's of a weighted sum), naming neither the function called, the solution nor which input."""
    nan = float("nan")
    rewards = [REWARDS[0], [3.0, nan]]
    calls = {"first_error_hits": lambda: step_reward_summaries.first_error_hits(rewards, LABELS[:2], P10),
             "heatmap_summary": lambda: step_reward_summaries.heatmap_summary(rewards, LABELS[:2], P10),
             "heatmap_details": lambda: step_reward_summaries.heatmap_details(rewards, LABELS[:2], P10),
             "first_error_hits_by_problem": lambda: step_reward_summaries.first_error_hits_by_problem(
                 [rewards[:1], rewards[1:]], [LABELS[:1], LABELS[1:2]], P10),
             "first_rejected_steps": lambda: step_reward_summaries.first_rejected_steps(rewards, P10),
             "step_auroc_by_position": lambda: diagnostics.step_auroc_by_position(rewards, LABELS[:2])}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{name}: solution 1, step 1 must be a finite number, got nan"):
            call()
    for name, prm, orm in (("prm_scores", [0.1, nan, 0.3], [0.1, 0.2, 0.3]), ("orm_scores", [0.1, 0.2, 0.3],
                                                                               [0.1, 0.2, nan])):
        with pytest.raises(ValueError, match=rf"^choose_process_weight: {name}: solution \d must be a finite number"):
            reward_reports.choose_process_weight(prm, orm, [True, False, True])


def test_pick_before_after_problem_takes_the_first_of_several_fixed_problems():
    from stepdpo_lite.tutorial import toyworld

    problems = toyworld.make_problems(3, seed=3)
    right = [p.gold_solution for p in problems]
    wrong = [toyworld.corrupt_solution(p, 0, "arithmetic", random.Random(i)) for i, p in enumerate(problems)]
    assert step_reward_summaries.pick_before_after_problem(problems, wrong, [wrong[0], right[1], right[2]]) == (
        1, "fixed by")


def test_a_solution_the_prm_cannot_read_has_no_labels_and_no_step_to_match():
    """Too long for the PRM (``InputTooLong``): no rewards, so no labels either (the heatmap's row stays empty), and
    before_after_report reads it as unscored, not as a step count that disagrees with its text."""
    from stepdpo_lite.rewards import InputTooLong
    from stepdpo_lite.tutorial import bestofn

    class ShortPRM(StepCountPRM):
        def score_solutions(self, prompts, step_lists):
            if any(len(steps) > 1 for steps in step_lists):
                raise InputTooLong("too long")
            return super().score_solutions(prompts, step_lists)

    problems = bestofn.held_out_problems("tiny", 1, seed=0)
    long = problems[0].gold_solution
    with pytest.warns(UserWarning):
        rewards, labels = step_reward_summaries.step_rewards_and_labels(ShortPRM(), problems, {"base": [long]})
    assert len(extract_steps(long)) > 1 and rewards == {"base": [[]]} and labels == {"base": [[]]}
    two = {"base": ["Step 1: a\n\nStep 2: b"], "after": ["Step 1: a\n\nStep 2: c"]}
    drawn = step_reward_summaries.before_after_report(two, {"base": [[1.0, 2.0]], "after": [[]]},
                                                      {"base": [[True, True]], "after": [[]]}, 0)["drawn"]
    assert drawn["step"] == 2 and drawn["after_step"] == "c" and drawn["after_reward"] is None


def test_heatmap_details_count_a_step_back_at_the_threshold_as_accepted():
    """A step at P = σ(threshold) is not rejected (``predict_first_error``: reward < threshold): after the first
    mistake it counts as coming back."""
    details = step_reward_summaries.heatmap_details([[-4.0, 0.0]], [[False, False]], 0.0)
    assert details["accepted_after_error"] == {"rows": ["1"], "p_min": 0.5, "p_max": 0.5}
