"""README's results table, and the figures notebooks 01 to 07 quote, come from one recorded `make tutorial` run
(README.md's "Results (tiny profile ...)" section says when and how it was made): its metrics.json is kept as
docs/tutorial_metrics.json, and every figure they quote must be that file's, formatted as the notebooks print it; a
decimal figure in a README row that none of them is, is named too. The comparisons the texts draw from it are
asserted on it too (the tests' own tiny run, tests/test_notebooks.py, is too small for the close ones). The ranges of
wall time they quote are docs/benchmarks.md's "Tutorial wall time" rows, whose last is that run.
After a new run: `cp runs/tiny/metrics.json docs/tutorial_metrics.json`, then these tests name each quoted figure
that moved."""
import copy
import json
import math
import re
from pathlib import Path

import pytest
from scipy import stats

from stepdpo_lite.tutorial.profiles import get_profile

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "docs" / "tutorial_metrics.json").read_text())
DPO_BATCH = get_profile("tiny").dpo_batch_size  # pairs per optimizer step of notebook 04's one-round runs


def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")  # the README's minus sign


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def _points(x: float) -> str:
    return _signed(100 * x, 1)


def _auroc(x: float) -> str:
    return f"{x:.3f}"


def _greedy_sampled(policy: dict) -> str:
    return f"{_percent(policy['accuracy'])} / {_percent(policy['sampled_accuracy'])}"


def _interval(d: dict, fmt) -> list[str]:
    return [fmt(d["difference"]), f"{fmt(d['low'])} to {fmt(d['high'])}"]


def _p(x: float) -> str:
    """A probability, as notebooks 05 and 07 quote one: "0.99"."""
    return f"{x:.2f}"


def _misread(row: dict) -> str:
    """How notebooks 02 and 05 tell a heatmap row whose first rejected step is not the checker's first error."""
    if row["first_error"] is None:
        return f"in {row['row']} it rejects the right last step (P {_p(row['p_first_rejected'])})"
    return (f"in {row['row']} it misses the mistake at step {row['first_error']} (P {_p(row['p_first_error'])}) and "
            f"rejects step {row['first_rejected']}")


def _kept_mistakes(before_after: dict) -> list[tuple[int, int, int]]:
    """Notebook 05's before/after rows whose mistake training did not remove: (problem, base step, after step)."""
    first = before_after["first_error"]
    return [(k + 1, b, a) for k, (b, a) in enumerate(zip(first["base"], first["after"])) if a is not None]


def _half_widths(differences: dict) -> list[float]:
    """The half-widths of notebook 07's paired intervals, in points (a method against itself, 0, left out)."""
    return [round(100 * (d["high"] - d["low"]) / 2, 1) for by_a in differences.values() for by_b in by_a.values()
            for d in by_b.values() if d["high"] > d["low"]]


def _plus_minus(d: dict) -> str:
    """A difference in points with its interval's half-width, as notebooks 06 and 07 print it: "+18.9 ± 12.1"."""
    difference = "0.0" if round(100 * d["difference"], 1) == 0 else _points(d["difference"])
    return f"{difference} ± {100 * (d['high'] - d['low']) / 2:.1f}"


def _sampled_accuracies(policy: dict) -> list[float]:
    """Every policy's sampled accuracy: the `policy.*.sampled_accuracy` rows of notebook 06's Results table."""
    runs = [policy[k] for k in ("base", "dpo", "nll_only", "step_dpo", "stepwise_dpo")]
    return [r["sampled_accuracy"] for r in runs + list(policy["one_round_gold_labels"].values())]


def readme_figures(m: dict) -> dict[str, list[str]]:
    """For each results row (a text that picks it out), the figures it must quote, formatted as in the table."""
    prm, orm, policy = m["prm"], m["orm"], m["policy"]
    top, one_round = m["best_of_n"]["16"], policy["one_round_gold_labels"]
    return {
        "Does the PRM find the wrong step? (02)": [
            _auroc(prm["step_auroc"]), _auroc(prm["first_error_f1"]), _auroc(prm["position_baseline_auroc"]),
            f"{_auroc(prm['zero_shot']['step_auroc'])} / {_auroc(prm['zero_shot']['f1'])}",
            *_interval(prm["qlora_minus_zero_shot"], lambda x: _signed(x, 4))],
        "Does the ORM recognise a right final answer? (03)": [
            _auroc(orm["auroc"]), _auroc(orm["combined_auroc"]), _auroc(orm["zero_shot_auroc"]),
            *_interval(orm["differences"]["combined_minus_orm"], lambda x: _signed(x, 3))],
        "Which verifier picks the best of 16 samples? (06)": [
            _percent(top[k]) for k in ("prm_product", "prm_min", "combined", "orm", "majority", "random")] + [
            _percent(m["evaluation"]["pass_at_n"]["16"])],
        "16 solutions' worth of tokens (07)": [
            _percent(m["test_time"]["16"][k]) for k in ("beam_prm", "dvts_prm", "best_of_n_prm", "best_of_n_orm",
                                                         "majority")],
        "at 4 solutions' worth": [
            _percent(m["test_time"]["4"][k]) for k in ("beam_prm", "best_of_n_prm", "best_of_n_orm", "majority")],
        "One round of preference training": [
            _greedy_sampled(r) for r in (one_round["stepwise_dpo"], one_round["dpo"], one_round["step_dpo"],
                                         one_round["nll_only"], policy["base"])],
        "Two on-policy rounds": [_greedy_sampled(policy[k]) for k in ("stepwise_dpo", "dpo", "nll_only")] + _interval(
            policy["stepwise_dpo"]["minus"]["nll_only"]["accuracy"], _points),
        "Monte-Carlo step labels": [
            f"{_percent(m['data']['mc_label_agreement']['hard'])} (hard) / "
            f"{_percent(m['data']['mc_label_agreement']['soft'])} (soft)"],
    }


def notebook_figures(m: dict) -> dict[str, list[str]]:
    """For notebooks 01 to 07, the figures their markdown quotes from the run."""
    prm, orm, policy = m["prm"], m["orm"], m["policy"]
    one_round, minus = policy["one_round_gold_labels"], policy["stepwise_dpo"]["minus"]
    top, top_differences, search = m["best_of_n"]["16"], m["best_of_n_differences"]["16"], m["test_time"]
    pruning = search["pruning"]
    vis = m["visualisation"]
    gaps = vis["chosen_minus_rejected_by_step"]
    heat, drawn, example = vis["heatmap"], vis["before_after"]["drawn"], search["example"]
    late = [p for k in (3, 4) for p in heat["p_right_by_step"][k]]  # steps 4 and 5
    credit = vis["credit_example"]
    mistakes, chosen_curve = vis["mistake_rewards"], vis["chosen_by_step"]
    predicted = vis["explorer_first_problem_predicted"]
    credit_right = [r for by_step in credit["rewards"].values() for r, y in zip(by_step, credit["step_labels"]) if y]
    stepwise_loss, dpo_loss = ({r: c["loss"] for r, c in vis["training_curves"][name].items()}
                               for name in ("Stepwise DPO", "DPO"))
    step_accuracy = {r: c["step_accuracy"] for r, c in vis["training_curves"]["Stepwise DPO"].items()}
    step_accuracy_starts = " and ".join(dict.fromkeys(f"{c['start']:.2f}" for c in step_accuracy.values()))
    widths = _half_widths(m["test_time_differences"])
    steered = m["test_time_differences"]["4"]["beam_prm"]["best_of_n_prm"]  # beam search minus best-of-N, B = 4
    evaluation = m["evaluation"]
    problems = evaluation["n_best_of_n_problems"]
    candidates = problems * evaluation["n_candidates"]
    sampled = _sampled_accuracies(policy)
    greedy = evaluation["policy_accuracy"].values()
    data = m["data"]
    solutions, right = data["base_sampled_solutions"], data["base_sampled_accuracy"]
    n_problems, rows = data["n_problems"], data["rows"]
    threshold_p = 1 / (1 + math.exp(-prm["first_error_threshold"]))  # notebook 02's threshold, as P(correct)
    rounds, trained = policy["rounds"], ("stepwise_dpo", "dpo", "nll_only")
    by_position = [row["auroc"] for row in prm["step_auroc_by_position"]]  # steps 1, 2, ...
    calibration = prm["calibration"]
    lowest, middle, highest = calibration["bins"][0], calibration["bins"][1:-1], calibration["bins"][-1]
    worst = max(middle, key=lambda b: abs(b["right_share"] - b["mean_p"]))  # the middle bin furthest from the diagonal
    gains = {k: [policy[name][k] - policy["base"][k] for name in trained] for k in ("accuracy", "sampled_accuracy")}
    first_round = {k: [rounds[0][name][k] for name in trained] for k in ("accuracy", "sampled_accuracy")}
    pairs = {kind: sum(r["pairs"][kind] for r in rounds) for kind in ("solution", "step")}  # summed over the rounds
    rejected = {name: c["logps/rejected"] for name, c in policy["one_round_curves"].items()}
    steps = {name: c["loss"]["logged"] for name, c in policy["one_round_curves"].items()}  # one logged loss a step
    seconds, slipped = m["tutorial"]["notebook_seconds"], data["base_right_through_a_wrong_step"]
    p_threshold = _p(threshold_p)
    fall = {name: c["first"] - c["last"] for name, c in rejected.items()}  # after the first 5 logged values
    mislabelled, elsewhere, chosen_wrong = (
        {kind: sum(r["mislabels"][kind][key] for r in rounds) for kind in pairs}
        for key in ("mislabelled", "rejected_first_error_elsewhere", "chosen_wrong"))
    return {
        "01_data_prep.ipynb": [f"{round(right * solutions):,} of the {solutions:,} sampled solutions",
                               f"({_percent(right)})", f"only {data['base_no_step_wrong']:,} have no step wrong",
                               f"the other {data['base_right_through_a_wrong_step']:,} slip",
                               *(_percent(data["mc_label_agreement"][k]) for k in ("hard", "soft")),
                               *(f"recall {data['mc_label_precision_recall'][k]['recall']:.2f}, precision "
                                 f"{data['mc_label_precision_recall'][k]['precision']:.2f}" for k in ("hard", "soft")),
                               # its "What to look for" paragraphs: the samples, the summary, the datasets
                               f"({n_problems['train']} train and {n_problems['validation']} + {n_problems['test']} "
                               f"evaluation problems, {data['samples_per_problem']} samples each: {solutions:,}",
                               f"of the {solutions - data['base_no_step_wrong']:,} solutions with a mistake",
                               f"over the {rows['train_stepwise']:,} train samples",
                               f"({rows['train_stepwise']:,} on train: {n_problems['train']} problems × "
                               f"{data['samples_per_problem']})", f"({rows['train_preference']} on train)",
                               f"({round(100 * right)}% of its samples reach the right answer at T = 1)",
                               # its first cell's time (the ranges after it: test_the_time_ranges_...)
                               f"in {round(seconds['01_data_prep'])} s, and the seven in "
                               f"{m['tutorial']['wall_seconds'] / 60:.1f} minutes, on the recorded run"],
        "02_process_reward_model.ipynb": [
            _auroc(prm["step_auroc"]), _auroc(prm["first_error_f1"]), _auroc(prm["zero_shot"]["step_auroc"]),
            _auroc(prm["zero_shot"]["f1"]), _auroc(prm["position_baseline_auroc"]),
            # not the trained control's figures: their digits move with the CPU (docs/benchmarks.md); zero-shot's do not
            f"its tag scores {_auroc(prm['control']['zero_shot']['step_auroc'])}",
            f"about {by_position[0]:.2f} at steps 1–2, {min(by_position[2:5]):.2f}–{max(by_position[2:5]):.2f} at "
            f"steps 3–5 and {by_position[5]:.2f} at step 6",
            *_interval(prm["qlora_minus_zero_shot"], lambda x: _signed(x, 4)), f"a threshold of P = {_p(threshold_p)}",
            # its calibration section
            f"over the {calibration['steps']:,} test steps the ECE is {calibration['ece']:.3f} and the Brier score "
            f"{calibration['brier']:.3f}",
            f"The {lowest['count']:,} steps it puts below P = 0.1 are right {lowest['right_share']:.1%} of the time",
            f"the {highest['count']:,} above 0.9 are right {highest['right_share']:.1%} of the time",
            f"its mean P ({calibration['mean_p']:.3f}) is close to the share right ({calibration['right_share']:.1%})",
            f"The {len(middle)} bins in between hold few steps ({min(b['count'] for b in middle)} to "
            f"{max(b['count'] for b in middle)} each)",
            f"by up to {abs(worst['right_share'] - worst['mean_p']):.2f} (P {worst['mean_p']:.3f}, "
            f"{worst['right_share']:.1%} right)",
            f"{sum(b['right_share'] < b['mean_p'] for b in middle)} of the {len(middle)} lie below it",
            f"where only {lowest['right_share']:.1%} of the steps are right",
            f"at the first-error threshold (the tick on the colour bar, P = {_p(threshold_p)})",  # the heatmap
            # the heatmap's rows, as the text names them
            f"In {' and '.join(prm['heatmap']['accepted_after_error']['rows'])} a few steps after the first mistake "
            f"come back above the tick (P {_p(prm['heatmap']['accepted_after_error']['p_min'])} to "
            f"{_p(prm['heatmap']['accepted_after_error']['p_max'])})",
            *(_misread(row) for row in prm["heatmap"]["misread"]),  # two: the comparisons' test
            f"{prm['heatmap']['accepted_after_error']['rows'][0]}'s steps back above the tick are right arithmetic",
            f"{prm['heatmap']['misread'][0]['row']}'s step {prm['heatmap']['misread'][0]['first_error']} computes",
            f"`P = {p_threshold}`) is low", f"the first-error threshold is P = {p_threshold}, far below 0.5",
            f"So the threshold, P = {p_threshold}, is not low", f"fall below even P = {p_threshold} (",
            f"QLoRA on notebook 01's {rows['train_stepwise']:,} rows"],
        "03_outcome_reward_model.ipynb": [
            _auroc(orm["auroc"]), _auroc(orm["zero_shot_auroc"]), _auroc(orm["prm_min_auroc"]),
            _auroc(orm["combined_auroc"]), f"({orm['combined_process_weight']:g} on the PRM)",
            f"it rejects {orm['prm_rejected_right']['rejected']} of the {orm['prm_rejected_right']['right']} right "
            f"answers", f"and {round(100 * orm['prm_rejected_right']['slipped_among_rejected'])}% of those reached",
            f"({round(100 * orm['prm_rejected_right']['slipped_among_accepted'])}% of the ones it accepts)",
            *(f for d in orm["differences"].values() for f in _interval(d, lambda x: _signed(x, 3))),
            f"the chosen weight is {orm['combined_process_weight']:g}",
            f"one tag for each of the {rows['train_outcome']:,} train solutions",
            f"(notebook 02: {_auroc(prm['step_auroc'])})",
            f"({slipped:,} of notebook 01's {data['base_no_step_wrong'] + slipped:,};"],
        "04_stepwise_dpo.ipynb": [
            *(_percent(r[k]) for r in (one_round["nll_only"], one_round["stepwise_dpo"], one_round["dpo"])
              for k in ("accuracy", "sampled_accuracy")), _percent(policy["base"]["accuracy"]),
            *(f for d in one_round["stepwise_dpo"]["minus"]["dpo"].values() for f in _interval(d, _points)),
            *_interval(one_round["stepwise_dpo"]["minus"]["nll_only"]["accuracy"], _points),
            *(_percent(one_round["step_dpo"][k]) for k in ("accuracy", "sampled_accuracy")),  # the Step-DPO run
            *(f for d in one_round["stepwise_dpo"]["minus"]["step_dpo"].values() for f in _interval(d, _points)),
            f"{_percent(policy['dpo']['accuracy'])} greedy / {_percent(policy['dpo']['sampled_accuracy'])}",
            _greedy_sampled(policy["nll_only"]), _greedy_sampled(policy["stepwise_dpo"]),
            *(f for d in (minus["nll_only"], minus["dpo"]) for r in d.values() for f in _interval(r, _points)),
            # the greedy lead over DPO: its interval's lower end, printed +0.0, as metrics.json holds it (a share)
            # and in points with the decimals that show it above 0
            f"printed +0.0, is {minus['dpo']['accuracy']['low']:.4f} in `metrics.json` (`policy.stepwise_dpo.minus.dpo."
            f"accuracy.low`, a share: {_signed(100 * minus['dpo']['accuracy']['low'], 2)} points)",
            # the on-policy rounds (its last "what the output shows"), from `policy.rounds`
            f"gain {round(100 * min(gains['accuracy']))}–{round(100 * max(gains['accuracy']))} points greedy and "
            f"{round(100 * min(gains['sampled_accuracy']))}–{round(100 * max(gains['sampled_accuracy']))} sampled",
            "(" + " / ".join(f"{100 * min(first_round[k]):.1f}–{_percent(max(first_round[k]))}"
                             for k in ("accuracy", "sampled_accuracy")) + ")",
            f"mislabelled {sum(mislabelled.values())} of the {sum(pairs.values())} pairs it picked "
            f"({round(100 * sum(mislabelled.values()) / sum(pairs.values()))}%)",
            f"{mislabelled['solution']} of the {pairs['solution']} whole-solution pairs "
            f"({elsewhere['solution']} rejected solutions whose first error it placed at another step",
            f"{chosen_wrong['solution']} chosen solutions that held a wrong step",
            f"and {mislabelled['step']} of the {pairs['step']} Step-DPO pairs",
            f"DPO {100 * rounds[0]['stepwise_dpo_minus']['dpo']['accuracy']['difference']:.1f} points behind greedy",
            # its training curves: the rejected solutions' log-likelihood, from `policy.one_round_curves`
            f"from {_signed(rejected['NLL only']['start'], 2)} to {_signed(rejected['NLL only']['first'], 2)} on the "
            f"mean of the first 5 logged values, against {_signed(rejected['DPO']['first'], 2)} (DPO) and "
            f"{_signed(rejected['Stepwise DPO']['first'], 2)} (Stepwise DPO)",
            f"to {_signed(rejected['DPO']['last'], 2)} and {_signed(rejected['Stepwise DPO']['last'], 2)} on the mean "
            f"of the last 5, NLL only to {_signed(rejected['NLL only']['last'], 2)}",
            f"({fall['NLL only']:.2f} against {fall['DPO']:.2f} and {fall['Stepwise DPO']:.2f})",
            f"the {steps['Step-DPO pairs']} steps of {DPO_BATCH} pairs see {steps['Step-DPO pairs'] * DPO_BATCH} of "
            f"its {rows['train_step_dpo']:,} pairs, where the whole-solution runs see "
            f"{steps['Stepwise DPO'] * DPO_BATCH} of their {rows['train_preference']:,}"],
        "05_step_reward_visualisation.ipynb": [
            f"{vis['heatmap']['mean_p_right']:.2f}", f"{vis['heatmap']['mean_p_wrong']:.2f}",
            f"{vis['heatmap']['first_error_matched']} of the {vis['heatmap']['solutions']} solutions",
            f"{vis['before_after']['base_right']} of these {vis['before_after']['problems']} problems",
            f"policy {vis['before_after']['after_right']}.",
            f"{_signed(min(gaps), 2)} to {_signed(max(gaps), 2)}",
            *(_signed(vis["implicit_step_reward"][name][side], 3) for name in ("DPO", "Stepwise DPO")
              for side in ("chosen", "rejected_right", "rejected_wrong")),
            f"{round(vis['explorer_first_error_hits'] * vis['explorer_solutions'])} of {vis['explorer_solutions']}",
            "in all four (steps " + ", ".join(map(str, predicted[:-1])) + f" and {predicted[-1]})",
            # chosen vs rejected (section 2): the mistakes' dots and the chosen curve's last positions
            # at the PRM's threshold, as the lines under the plot count them
            f"Of the {len(mistakes)} mistakes (×), {sum(r < prm['first_error_threshold'] for r in mistakes)} fall "
            f"below the threshold (the PRM rejects them); the PRM misses "
            f"{sum(r >= prm['first_error_threshold'] for r in mistakes)}, at or above it, "
            f"{sum(r > 0 for r in mistakes)} of them even above zero (P > 0.5)",
            f"to {_signed(chosen_curve[3]['mean'], 2)} at step 4 and {_signed(chosen_curve[4]['mean'], 2)} at step 5 "
            f"(only {chosen_curve[4]['solutions']} of the {chosen_curve[0]['solutions']} chosen solutions "
            "reach step 5)",
            # the heatmap's rows (section 1), as the text names them
            f"in {' and '.join(heat['accepted_after_error']['rows'])} a few steps after the first mistake",
            f"(P {_p(heat['accepted_after_error']['p_min'])} to {_p(heat['accepted_after_error']['p_max'])})",
            *(_misread(row) for row in heat["misread"]),
            f"P = {_p(1 / (1 + math.exp(-prm['first_error_threshold'])))} on the tutorial's run",
            f"the right steps 4 and 5 get P {_p(min(late))}–{_p(max(late))}",
            f"that last one, step {len(heat['p_right_by_step'])}, {_p(heat['p_right_by_step'][-1][0])})",
            # before and after (section 3): the mistake training moved, and the step drawn in the bar chart
            *(f"P{k}'s, where the trained policy's first mistake comes later, at step {a} instead of step {b}"
              for k, b, a in _kept_mistakes(vis["before_after"])),
            f"the base slips in step {drawn['step']} (`{drawn['base_step']}`) and the trained policy writes "
            f"`{drawn['after_step']}`",
            f"goes from {_signed(drawn['base_reward'], 2)} to {_signed(drawn['after_reward'], 2)} (log-odds)",
            # credit assignment (section 4): the bars of the solution drawn
            f"(at most {_signed(max(credit_right), 2)})",
            "(" + ", ".join(f"{_signed(by_step[-1], 2)} for {name}" for name, by_step in credit["rewards"].items()) +
            ")",
            # the training curves (section 5): each round's loss, the means of its first and last 3 logs
            "(" + ", ".join(f"{c['first']:.1f} to {c['last']:.1f} in round {r}"
                            for r, c in stepwise_loss.items()) + ")",
            "(" + " and ".join(f"{c['first']:.2f} to {c['last']:.2f}" for c in dpo_loss.values()) + ";",
            # Stepwise DPO's step_accuracy (plain accuracy): where each round starts, and its first and last 3 logs,
            # which show a rise, not a peak and a fall
            f"`step_accuracy` starts at {step_accuracy_starts} in both rounds",
            "and rises within each (" + ", ".join(f"{c['first']:.2f} to {c['last']:.2f} in round {r}"
                                                  for r, c in step_accuracy.items()) + ";",
            # the explorer (section 6)
            f"notebook 02's threshold, P = {p_threshold}, the dashed line",
            f"look again at {' and '.join(row['row'] for row in heat['misread'])} in the heatmap"],
        "06_evaluation.ipynb": [
            *(f"{round(100 * top[k])}%" for k in ("prm_product", "prm_min", "prm_last", "majority", "random", "orm")),
            f"{round(100 * m['evaluation']['pass_at_n']['16'])}%", _percent(m["evaluation"]["candidate_accuracy"]),
            f"{_percent(m['best_of_n']['4']['orm'])} against {_percent(m['best_of_n']['4']['prm_product'])}",
            *(_plus_minus(top_differences[a][b]) for a, b in (("majority", "random"), ("prm_product", "orm"),
                                                               ("prm_min", "orm"), ("orm", "majority"),
                                                               ("prm_min", "prm_product"))),
            *(f"{_plus_minus(m['best_of_n_differences'][n]['orm']['majority'])} at N = {n}" for n in ("2", "8")),
            f"N = 2 ({_plus_minus(m['best_of_n_differences']['2']['combined']['prm_product'])})",
            *(_percent(policy[k]["accuracy"]) for k in ("base", "dpo", "stepwise_dpo", "nll_only")),
            *(f for k in ("dpo", "nll_only") for f in _interval(minus[k]["accuracy"], _points)),
            f"its lower end is {minus['dpo']['accuracy']['low']:.4f} in `metrics.json`, a share: "
            f"{_signed(100 * minus['dpo']['accuracy']['low'], 2)} points",  # printed +0.0 in 04
            # the candidates' printout, the interval's t quantile, and the Results table's sampled and greedy rows
            f"{candidates:,} candidates ({problems} problems × {evaluation['n_candidates']})",
            f"from {_percent(evaluation['pass_at_n']['1'])} at N = 1 to {_percent(evaluation['pass_at_n']['16'])} at "
            "N = 16", f"pass@1 = {_percent(evaluation['pass_at_n']['1'])} against the "
            f"{_percent(evaluation['candidate_accuracy'])} counted over every candidate",
            f"about {stats.t.ppf(0.975, problems - 1):.2f} for $P = {problems}$",
            f"they are {round(100 * min(sampled))}–{round(100 * max(sampled))}%, far below the greedy "
            f"{round(100 * min(greedy))}–{round(100 * max(greedy))}%",
            # the best-of-N reading, its second copy after the 150 problems', and the greedy difference in problems
            f"{round(100 * top_differences['prm_product']['orm']['difference'])} points behind at N = 16",
            f"So a {round(100 * top_differences['prm_product']['orm']['difference'])}-point gap on {problems} problems",
            f"The combined model ({round(100 * top['combined'])}%) matches `min`",
            f"(one problem is {100 / problems:.1f} points)",
            f"{_points(minus['dpo']['accuracy']['difference'])} points "
            f"({round(minus['dpo']['accuracy']['difference'] * policy['stepwise_dpo']['n_test_problems'])} problems in "
            f"{policy['stepwise_dpo']['n_test_problems']};"],
        "07_test_time_compute.ipynb": [
            *(_percent(search[b][k]) for b in ("4", "16") for k in ("majority", "best_of_n_orm", "best_of_n_prm",
                                                                     "beam_prm")), _percent(search["16"]["dvts_prm"]),
            *(f"{b} ({round(search[b]['token_budget'])})" for b in ("4", "16")),
            *(f"({round(search[b]['tokens'][k])} tokens)" for b, k in (("4", "beam_prm"), ("16", "beam_prm"),
                                                                      ("16", "dvts_prm"))),
            *(_plus_minus(m["test_time_differences"][b][a][c]) for b in ("4", "16") for a, c in (
                ("best_of_n_orm", "majority"), ("best_of_n_prm", "best_of_n_orm"))),
            _plus_minus(m["test_time_differences"]["16"]["dvts_prm"]["beam_prm"]),
            *(_plus_minus(m["test_time_differences"][b]["beam_prm"]["best_of_n_prm"]) for b in ("4", "16")),
            f"step AUROC {_auroc(prm['step_auroc'])}", f"at AUROC {_auroc(orm['auroc'])}",
            f"about {round(search['4']['prm_scored']['beam_prm'])} (B = 4) and "
            f"{round(search['16']['prm_scored']['beam_prm'])} (B = 16) prefixes",
            f"were {round(100 * pruning['4']['kept_right'])}% right and the ones it pruned "
            f"{round(100 * pruning['4']['pruned_right'])}%",
            f"{round(100 * pruning['16']['kept_right'])}% against {round(100 * pruning['16']['pruned_right'])}%",
            f"in {pruning['4']['no_right_step']} of the {pruning['4']['rounds']} rounds",
            f"every right one ({pruning['4']['right_step_pruned']})",
            # the beam explorer's problem
            f"(tiny profile, B = {example['budget']}: one beam", f"The right last step gets only P "
            f"{_p(example['last_step_p'])}", f"the search spent {example['tokens']} tokens against this problem's "
            f"best-of-{example['budget']} cap of {example['token_cap']:.0f}",
            f"only {_percent(search['candidate_accuracy'])} of the sampled solutions are right",
            f"What `make tutorial` printed ({search['n_problems']} held-out problems",
            f"{search['n_problems']} problems is few: one problem is {100 / search['n_problems']:g} points",
            f"the intervals above run from ± {round(min(widths))} to ± {round(max(widths))} points",
            # the candidates' printout and the accuracy table
            f"{search['n_problems'] * 16} solutions ({search['n_problems']} problems × 16), "
            f"{_percent(search['candidate_accuracy'])} of them right",
            f"{search['tokens_per_solution']:.1f} generated tokens each on average "
            f"({search['tokens_per_solution_range'][0]} to {search['tokens_per_solution_range'][1]})",
            f"{round(search['4']['token_budget'])} tokens at B = 4 and {round(search['16']['token_budget'])} at B = 16",
            f"beam search ({_percent(search['4']['beam_prm'])} and {_percent(search['16']['beam_prm'])})",
            f"the {search['n_problems']} problems' interval ({_interval(steered, _points)[1]})",
            # the policy's own greedy answer, beside the B = 4 walk on the same problems (docs/benchmarks.md's)
            f"gets {_percent(policy['base']['accuracy'])} on notebook 04's {policy['base']['n_test_problems']} test "
            f"problems, and on the same {policy['base']['n_test_problems']} the B = 4 search gets",
            f"makes the {_percent(search['4']['beam_prm'])}"],
    }


def readme_prose_figures(m: dict) -> list[str]:
    """The figures README's prose quotes from the run: in exercise 5, in the results table's time row, under the table,
    and after "Using the package"'s example (the other figures there are docs/benchmarks.md's, or the shipped
    verifier's training_log.json's)."""
    prm, orm, policy, data = m["prm"], m["orm"], m["policy"], m["data"]
    one_round = policy["one_round_gold_labels"]
    stepwise, dpo, minus = one_round["stepwise_dpo"], one_round["dpo"], one_round["stepwise_dpo"]["minus"]
    ahead, behind = minus["dpo"]["accuracy"], minus["nll_only"]["accuracy"]
    best_of_n, top = m["best_of_n"], m["best_of_n"]["16"]
    search, seconds = m["test_time"], m["tutorial"]["notebook_seconds"]
    rounds, evaluation = policy["rounds"], m["evaluation"]
    return [
        f"notebook 01's {data['rows']['train_stepwise']:,} rows",
        f"({_percent(stepwise['accuracy'])} vs {_percent(dpo['accuracy'])}; {_points(ahead['difference'])} points, "
        f"95% interval {_points(ahead['low'])} to {_points(ahead['high'])} paired over the "
        f"{stepwise['n_test_problems']} problems)",
        f"({_percent(stepwise['sampled_accuracy'])} vs {_percent(dpo['sampled_accuracy'])})",
        f"(Stepwise DPO {_points(behind['difference'])} points, {_points(behind['low'])} to {_points(behind['high'])})",
        "after two rounds (" + " against ".join(_percent(policy[k]["accuracy"]) for k in ("stepwise_dpo", "nll_only"))
        + f" and {_percent(policy['dpo']['accuracy'])} greedy)",
        f"(first-error F1 {_auroc(prm['first_error_f1'])})",
        f"from {round(100 * best_of_n['1']['prm_product'])}% at N = 1 to {round(100 * top['prm_product'])}% at N = 16, "
        f"{round(100 * (top['prm_product'] - top['majority']))} points above majority voting",
        f"pass@16 ceiling ({round(100 * m['evaluation']['pass_at_n']['16'])}%)",
        f"The ORM reaches {_auroc(orm['auroc'])} AUROC", f"the ORM ({_percent(top['orm'])})",
        f"On these {m['evaluation']['n_best_of_n_problems']} problems",
        f"({_plus_minus(m['best_of_n_differences']['16']['prm_product']['orm'])} points with `product`",
        f"by {_plus_minus(m['test_time_differences']['4']['beam_prm']['best_of_n_prm'])} points at the token cost of "
        f"4 solutions on notebook 07's {search['n_problems']} problems",
        f"({_percent(search['4']['beam_prm'])} against {_percent(search['16']['best_of_n_prm'])})",
        f"P ≈ {_p(1 / (1 + math.exp(-prm['first_error_threshold'])))} on the tutorial's run",
        f"{m['tutorial']['wall_seconds'] / 60:.1f} minutes in all on 2026-12-04, the recorded run",
        f"{round(seconds['04_stepwise_dpo'])} s",
        f"{m['tutorial']['wall_seconds'] / 60:.1f} minutes for all seven notebooks",  # the results table's time row
        # the time table's "where the time goes": the counts, and notebook 04's rounds (`policy.rounds`' seconds)
        f"sampling {data['base_sampled_solutions']:,} solutions",
        f"{evaluation['n_best_of_n_problems'] * evaluation['n_candidates']} candidates scored by three reward models",
        f"{search['n_problems'] * 16} candidates; beam search and DVTS at two budgets on "
        f"{search['n_problems']} problems",
        "(on 2026-12-04 the rounds " + " and ".join(f"{r['seconds']:.0f} s" for r in rounds) +
        f", the rest {seconds['04_stepwise_dpo'] - sum(r['seconds'] for r in rounds):.0f} s)",
        f"the explorer's {m['visualisation']['explorer_solutions']} solutions have none"]  # exercise 5


def _quotes(text: str, figure: str) -> bool:
    """``figure`` in ``text`` as a whole number: "3.3%" is not quoted by "83.3%", nor "0.98" by "0.988"."""
    return re.search(r"(?<![\d.])" + re.escape(figure) + r"(?![\d])", text) is not None


def _one_line(text: str) -> str:
    return " ".join(text.replace("**", "").split())  # bold marks out, one space for every line break


_DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+")  # a measured figure: "0.963", "85.3%", "+0.0049" (not "(02)" or "16")


def missing_readme_figures(readme: str, metrics: dict) -> list[str]:
    """Each figure a results row must quote and does not, and each decimal figure in it that none of them is."""
    section = readme[readme.index("## Results (tiny profile"):]
    rows = [line for line in section[:section.index("\n### ")].splitlines() if line.startswith("| ")]
    missing = []
    for marker, figures in readme_figures(metrics).items():
        row = [r for r in rows if marker in r]
        assert len(row) == 1, f"README's results table has {len(row)} rows with {marker!r}"
        row = _one_line(row[0]).replace("% greedy /", "% /").replace("% sampled", "%")
        missing += [f"{marker}: {f}" for f in figures if not _quotes(row, f)]
        recorded = {x for f in figures for x in _DECIMAL.findall(f)}
        missing += [f"{marker}: {x} is in the row but no recorded figure" for x in _DECIMAL.findall(row)
                    if x not in recorded]
    return missing


def test_readme_results_are_the_recorded_runs():
    missing = missing_readme_figures((ROOT / "README.md").read_text(), RECORDED)
    assert not missing, "README figures not in docs/tutorial_metrics.json's run:\n" + "\n".join(missing)


def _markdown(name: str) -> str:
    """A notebook's markdown cells, joined as `_one_line` joins them."""
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    return _one_line("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"))


def test_notebook_texts_quote_the_recorded_run():
    missing = []
    for name, figures in notebook_figures(RECORDED).items():
        text = _markdown(name)
        missing += [f"{name}: {f}" for f in figures if not _quotes(text, f)]
    assert not missing, "notebook figures not in docs/tutorial_metrics.json's run:\n" + "\n".join(missing)


def test_readme_prose_quotes_the_recorded_run():
    text = _one_line((ROOT / "README.md").read_text())
    missing = [f for f in readme_prose_figures(RECORDED) if not _quotes(text, f)]
    assert not missing, "README prose figures not in docs/tutorial_metrics.json's run:\n" + "\n".join(missing)


def test_the_recorded_run_backs_what_readme_prose_says():
    m = RECORDED
    policy, data, top, search = m["policy"], m["data"], m["best_of_n"]["16"], m["test_time"]
    minus = policy["one_round_gold_labels"]["stepwise_dpo"]["minus"]
    # one round: Stepwise DPO leads DPO greedy (interval above zero) and is level with it sampled; NLL only beats it
    # greedy (interval below zero) and matches it sampled
    assert minus["dpo"]["accuracy"]["low"] > 0 > minus["dpo"]["sampled_accuracy"]["low"]
    assert minus["dpo"]["sampled_accuracy"]["high"] > 0
    assert minus["nll_only"]["accuracy"]["high"] < 0 < minus["nll_only"]["sampled_accuracy"]["high"]
    assert minus["nll_only"]["sampled_accuracy"]["low"] < 0
    # two on-policy rounds (the tiny profile's output-layer protocol): Stepwise DPO within a point of NLL only, greedy
    # and sampled, and ahead of DPO in both by 3 points or more
    assert policy["rounds_protocol"] == {"step_pairing": "first_token", "sft_weight": 5.0, "step_weight": 50.0,
                                         "step_gradient": "output_layer"}
    for k in ("accuracy", "sampled_accuracy"):
        stepwise, dpo, nll_only = (policy[name][k] for name in ("stepwise_dpo", "dpo", "nll_only"))
        assert round(abs(stepwise - nll_only), 9) <= 0.01 and stepwise - dpo >= 0.03, k
    # a third of the base's right answers come through a wrong step
    right = data["base_no_step_wrong"] + data["base_right_through_a_wrong_step"]
    assert abs(data["base_right_through_a_wrong_step"] / right - 1 / 3) < 0.05
    # best of 16: the ORM between majority vote and the PRM (either aggregation), the PRM below pass@16
    assert top["majority"] < top["orm"] < min(top["prm_product"], top["prm_min"])
    assert top["prm_product"] < m["evaluation"]["pass_at_n"]["16"]
    # beam search at 4 solutions' worth of tokens passes best-of-16 with the PRM, at a quarter of its tokens
    assert search["4"]["beam_prm"] > search["16"]["best_of_n_prm"]
    assert round(search["4"]["token_budget"] / search["16"]["token_budget"], 2) == 0.25
    # exercise 5: at notebook 02's threshold none of the explorer's solutions has its first rejected step elsewhere
    assert m["visualisation"]["explorer_first_error_hits"] == 1


def test_the_check_names_a_moved_figure_and_a_stale_one():
    moved = copy.deepcopy(RECORDED)
    readme = (ROOT / "README.md").read_text()
    step_auroc, random_pick = _auroc(moved["prm"]["step_auroc"]), _percent(moved["best_of_n"]["16"]["random"])
    moved["prm"]["step_auroc"], moved["best_of_n"]["16"]["random"] = 0.5, 0.033  # "3.3%" is inside "83.3%"
    assert missing_readme_figures(readme, moved) == [
        "Does the PRM find the wrong step? (02): 0.500",
        f"Does the PRM find the wrong step? (02): {step_auroc} is in the row but no recorded figure",
        "Which verifier picks the best of 16 samples? (06): 3.3%",
        f"Which verifier picks the best of 16 samples? (06): {random_pick[:-1]} is in the row but no recorded figure"]
    stale = readme.replace("| Monte-Carlo step labels (8 rollouts) vs the checker (01) |",
                           "| Monte-Carlo step labels (8 rollouts) vs the checker (01), 61.2% before |")
    assert missing_readme_figures(stale, RECORDED) == [
        "Monte-Carlo step labels: 61.2 is in the row but no recorded figure"]


def test_the_recorded_run_backs_the_comparisons_the_texts_draw():
    m = RECORDED
    orm, policy, one_round, data = m["orm"], m["policy"], m["policy"]["one_round_gold_labels"], m["data"]
    # 01: every right answer is a clean solution or one that slipped in a step and still got there
    right = round(data["base_sampled_accuracy"] * data["base_sampled_solutions"])
    assert data["base_no_step_wrong"] + data["base_right_through_a_wrong_step"] == right
    # 02: the control (the plain policy base) ends on the position-only baseline, its tag below it zero-shot
    prm = m["prm"]
    assert prm["control"]["zero_shot"]["step_auroc"] < prm["position_baseline_auroc"]
    # ... and trained, within 0.01 of that baseline and far below the verifier (README: "on the baseline, far below")
    assert abs(prm["control"]["after_qlora"]["step_auroc"] - prm["position_baseline_auroc"]) < 0.01
    assert prm["control"]["after_qlora"]["f1"] < prm["first_error_f1"] - 0.5
    # 02: the PRM stays high within each position (far above what the position alone gives), steps 1 and 2 alike,
    # and lowest at step 6, where few steps are right
    by_position = prm["step_auroc_by_position"]
    assert min(r["auroc"] for r in by_position) > prm["position_baseline_auroc"] + 0.1
    assert f"{by_position[0]['auroc']:.2f}" == f"{by_position[1]['auroc']:.2f}" and len(by_position) == 6
    assert by_position[-1]["auroc"] == min(r["auroc"] for r in by_position) and by_position[-1]["right"] < 0.1
    # 02's calibration: most of the middle bins below the diagonal (optimistic where unsure: P above the share right,
    # every one above P 0.5 and most below it); the first-error threshold inside the lowest bin of P
    calibration = prm["calibration"]
    middle = calibration["bins"][1:-1]
    assert sum(b["right_share"] < b["mean_p"] for b in middle) > len(middle) / 2
    unsure = {side: [b["right_share"] < b["mean_p"] for b in middle if (b["mean_p"] > 0.5) == side] for side in (0, 1)}
    assert all(unsure[1]) and sum(unsure[0]) > len(unsure[0]) / 2, unsure
    assert 1 / (1 + math.exp(-prm["first_error_threshold"])) < calibration["bins"][0]["high"]
    # 04's training curves (policy.one_round_curves: each curve's first and last logged value, the means of its first
    # and last 5, and its jitter): every run raises the chosen solutions' log-likelihood, NLL only the most and DPO
    # the least of the whole-solution runs. The rejected ones' log-likelihood falls under NLL only too: from the same
    # start, about as far by the mean of the first 5 as under the preference terms; after that less than half as far
    # as under either, and over the whole run (start to the mean of the last 5) about two thirds as far. The Step-DPO
    # run's one-step log-likelihoods sit above the others'; the step balanced accuracy starts at 0.5, Stepwise DPO's
    # ends at about 0.8, and the Step-DPO run's jumps more
    curves, whole = policy["one_round_curves"], ("NLL only", "Stepwise DPO", "DPO")
    gain = {n: c["logps/chosen"]["last"] - c["logps/chosen"]["first"] for n, c in curves.items()}
    assert min(gain.values()) > 0 and gain["NLL only"] > gain["Stepwise DPO"] > gain["DPO"]
    rejected = {n: curves[n]["logps/rejected"] for n in whole}
    assert len({f"{r['start']:.2f}" for r in rejected.values()}) == 1
    assert max(r["first"] for r in rejected.values()) - min(r["first"] for r in rejected.values()) < 0.3
    after_first = {n: r["first"] - r["last"] for n, r in rejected.items()}
    whole_run = {n: r["start"] - r["last"] for n, r in rejected.items()}
    for preference in ("DPO", "Stepwise DPO"):
        assert 0 < after_first["NLL only"] < 0.5 * after_first[preference], preference
        assert 0.6 < whole_run["NLL only"] / whole_run[preference] < 0.75, preference
    step_dpo, stepwise = curves["Step-DPO pairs"], curves["Stepwise DPO"]
    for side in ("logps/chosen", "logps/rejected"):
        assert step_dpo[side]["last"] > max(curves[n][side]["last"] for n in whole), side
    assert step_dpo["step_balanced_accuracy"]["start"] == stepwise["step_balanced_accuracy"]["start"] == 0.5
    assert f"{stepwise['step_balanced_accuracy']['end']:.1f}" == "0.8"
    assert step_dpo["step_balanced_accuracy"]["jitter"] > stepwise["step_balanced_accuracy"]["jitter"]
    # 05's training curves (visualisation.training_curves, round by round, means of the first and last 3 logs): the
    # margins and rewards/accuracies start at 0 in each round's first step (steps 1 and 11) and rise within it, the
    # margins less in round 2; Stepwise DPO's step_accuracy climbs within each round; both losses fall within each
    # round, Stepwise DPO's (50 times its step loss, plus the NLL) far above DPO's; DPO's margin rises further
    by_method = m["visualisation"]["training_curves"]
    for name, by_round in by_method.items():
        assert list(by_round) == ["1", "2"] and all(c["loss"]["logged"] == 10 for c in by_round.values()), name
        for r, c in by_round.items():
            for key in ("rewards/margins", "rewards/accuracies"):
                assert c[key]["start"] == 0 and c[key]["last"] > c[key]["first"], (name, r, key)
        rise = {r: c["rewards/margins"]["last"] - c["rewards/margins"]["first"] for r, c in by_round.items()}
        assert rise["2"] < rise["1"], name
    assert all(c["step_accuracy"]["last"] > c["step_accuracy"]["first"] for c in by_method["Stepwise DPO"].values())
    for r in by_method["DPO"]:
        dpo, stepwise = by_method["DPO"][r], by_method["Stepwise DPO"][r]
        assert all(c["loss"]["last"] < c["loss"]["first"] for c in (dpo, stepwise)), r
        assert stepwise["loss"]["last"] > 10 * dpo["loss"]["first"], r
        rise = [c["rewards/margins"]["last"] - c["rewards/margins"]["first"] for c in (dpo, stepwise)]
        assert rise[0] > rise[1], (r, rise)
    # ... DPO's loss below 1 throughout (flat at the bottom of the shared axis); every curve jumps where round 2 starts:
    # the loss up, the margins and both accuracies down
    assert all(c["loss"][k] < 1 for c in by_method["DPO"].values() for k in ("start", "first", "last", "end"))
    for name, by_round in by_method.items():
        for key, c in by_round["2"].items():
            up = c["start"] > by_round["1"][key]["end"]
            assert up if key == "loss" else not up, (name, key)
    # 01: the hard Monte-Carlo estimate errs towards "right" (recall above precision), the soft one towards "wrong"
    mc = data["mc_label_precision_recall"]
    assert mc["hard"]["recall"] > mc["hard"]["precision"] and mc["soft"]["precision"] > mc["soft"]["recall"]
    # ... nearly all the hard estimate's errors in one cell of its matrix: per right step called right, it calls
    # 1/precision − 1 wrong steps right and misses 1/recall − 1 right ones
    judged_good, judged_bad = 1 / mc["hard"]["precision"] - 1, 1 / mc["hard"]["recall"] - 1
    assert judged_good / (judged_good + judged_bad) > 0.85
    # ... and "from most prefixes fewer than half of the base policy's completions finish right": the soft estimate
    # (a step right when at least half its rollouts finish right) calls fewer than half the steps right. Its errors
    # per right step called right are 1/precision − 1 + 1/recall − 1, so that share of all steps is
    # (1 − agreement) / (1/precision + 1/recall − 2) / precision
    soft, soft_agreement = mc["soft"], data["mc_label_agreement"]["soft"]
    called_right = (1 - soft_agreement) / (1 / soft["precision"] + 1 / soft["recall"] - 2) / soft["precision"]
    assert called_right < 0.5, called_right
    assert orm["auroc"] > orm["prm_min_auroc"]  # 03: the PRM (min over steps) is the worse judge of the answer
    # 03: the ORM's lead over the PRM and QLoRA's gain over zero-shot are measured: both intervals above zero
    assert all(orm["differences"][k]["low"] > 0 for k in ("orm_minus_prm_min", "qlora_minus_zero_shot"))
    # 03's ROC reading: the PRM rejects about a third of the right answers (its curve flattens at two thirds), nearly
    # all of them lucky slips, and few of the ones it accepts slipped
    rejected = orm["prm_rejected_right"]
    assert 0.25 < rejected["rejected_share"] < 0.45 and rejected["slipped_among_rejected"] > 0.9
    assert rejected["slipped_among_accepted"] < 0.1
    assert 0.6 < 1 - rejected["rejected_share"] < 2 / 3  # the curve flattens at nearly two thirds
    for name in ("dpo", "stepwise_dpo", "nll_only"):  # 04: every method gains over the base, in both parts
        assert min(policy[name]["accuracy"], one_round[name]["accuracy"]) > policy["base"]["accuracy"], name
    # 04: after one round on the checker's labels, NLL only leads and Stepwise DPO's preference term costs less
    assert one_round["nll_only"]["accuracy"] > one_round["stepwise_dpo"]["accuracy"] > one_round["dpo"]["accuracy"]
    # ... sampled, the three within 3 points; the Step-DPO run between DPO and Stepwise DPO greedy, below both
    # sampled, and Stepwise DPO's lead over it within the noise (both intervals hold zero)
    sampled_three = [one_round[k]["sampled_accuracy"] for k in ("nll_only", "stepwise_dpo", "dpo")]
    assert max(sampled_three) - min(sampled_three) < 0.03, sampled_three
    step_dpo_run = one_round["step_dpo"]
    assert one_round["dpo"]["accuracy"] < step_dpo_run["accuracy"] < one_round["stepwise_dpo"]["accuracy"]
    assert step_dpo_run["sampled_accuracy"] < min(one_round[k]["sampled_accuracy"] for k in ("dpo", "stepwise_dpo"))
    assert all(d["low"] < 0 < d["high"] for d in one_round["stepwise_dpo"]["minus"]["step_dpo"].values())
    # 04 (its Step-DPO run): "the 35 steps of 16 pairs ..., where the whole-solution runs see 560": as many steps each
    assert len({c["loss"]["logged"] for c in policy["one_round_curves"].values()}) == 1
    vis = m["visualisation"]  # 05: the chosen curve above the rejected one at every position, and every pair ranked
    assert min(vis["chosen_minus_rejected_by_step"]) > 0 and vis["chosen_ranked_above_rejected"] == 1
    # 05: the PRM rates right steps above wrong ones; the trained policy fixes more of the pictured problems than the
    # base; both policies' implicit step rewards credit the chosen and the rejected right steps above the mistakes
    assert vis["heatmap"]["mean_p_right"] > 0.5 > vis["heatmap"]["mean_p_wrong"]
    assert vis["before_after"]["after_right"] > vis["before_after"]["base_right"]
    for name, credit in vis["implicit_step_reward"].items():
        assert min(credit["chosen"], credit["rejected_right"]) > 0 > credit["rejected_wrong"], name
    # ... Stepwise DPO pushing the mistakes further down, in the mean and in the solution drawn
    implicit, drawn_credit = vis["implicit_step_reward"], vis["credit_example"]["rewards"]
    assert implicit["Stepwise DPO"]["rejected_wrong"] < implicit["DPO"]["rejected_wrong"]
    assert drawn_credit["Stepwise DPO"][-1] < drawn_credit["DPO"][-1] < 0
    # 02's heatmap: its first misread row is a missed mistake whose first step the PRM accepts, its second a false
    # alarm on the right last step of the longest row; and some row comes back above the tick after a mistake
    heat = m["prm"]["heatmap"]
    assert len(heat["misread"]) == 2
    missed, alarm = heat["misread"]
    assert missed["first_error"] == 1 and missed["first_rejected"] > 1 and missed["p_first_error"] > 0.5
    assert alarm["first_error"] is None and alarm["first_rejected"] == len(heat["p_right_by_step"])
    assert heat["accepted_after_error"]["rows"]
    # 05's heatmap: the two rows it names besides the 14 are all that are misread: a missed mistake and a false alarm
    # on the right last step (no row is longer); the right step 6 is that alarm's; the rows back above the tick
    # after a mistake are rows with a mistake
    heat = vis["heatmap"]
    assert len(heat["misread"]) == heat["solutions"] - heat["first_error_matched"] == 2
    missed, alarm = heat["misread"]
    assert missed["first_rejected"] > missed["first_error"] and missed["row"].startswith("✗")
    assert alarm["first_error"] is None and alarm["first_rejected"] == len(heat["p_right_by_step"])
    assert heat["p_right_by_step"][-1] == [alarm["p_first_rejected"]] * 2
    assert all(row.startswith("✗") for row in heat["accepted_after_error"]["rows"])
    # 05's before/after: every base row with a mistake loses it under "after" (and no right row gains one)
    first = vis["before_after"]["first_error"]
    assert any(first["base"]) and not any(first["after"])
    # 05's credit bars: every right step at or slightly above zero for both policies, only the wrong last step lowered
    credit = vis["credit_example"]
    assert credit["step_labels"] == [True] * (len(credit["step_labels"]) - 1) + [False]
    for name, by_step in credit["rewards"].items():
        assert min(by_step[:-1]) > -0.005 and by_step[-1] < 0, name
    for aggregation in ("prm_min", "prm_product"):  # 06: the PRM's best-of-N curves climb with N
        curve = [m["best_of_n"][n][aggregation] for n in sorted(m["best_of_n"], key=int)]
        assert curve == sorted(curve) and curve[-1] > curve[0], (aggregation, curve)
    for budget in ("4", "16"):  # 07: steering beats picking with the same PRM; the ORM picks better than majority
        at = m["test_time"][budget]
        assert at["beam_prm"] > at["best_of_n_prm"] and at["best_of_n_orm"] > at["majority"], budget
        # the beam well above every picker (by 10 points or more), DVTS tied with it
        assert at["beam_prm"] - max(at[k] for k in ("majority", "best_of_n_orm", "best_of_n_prm")) > 0.1, budget
        assert at["dvts_prm"] == at["beam_prm"], budget
        # and the checker rates the steps the search kept above the ones it pruned
        pruning = m["test_time"]["pruning"][budget]
        assert pruning["kept_right"] > pruning["pruned_right"], budget
    # 07: the B = 4 walk far above the policy's own greedy answer (notebook 04's test problems, whose first these
    # are): the PRM's choice of steps, not greediness
    assert m["test_time"]["n_problems"] <= policy["base"]["n_test_problems"]
    assert m["test_time"]["4"]["beam_prm"] - policy["base"]["accuracy"] > 0.2
    # 06's candidates: about one sample in four right, yet nine problems in ten with a right one among 16; every
    # policy's sampled accuracy (the Results table's rows) far below every greedy one
    evaluation = m["evaluation"]
    assert abs(evaluation["candidate_accuracy"] - 1 / 4) < 0.03 and round(evaluation["pass_at_n"]["16"], 1) == 0.9
    sampled = _sampled_accuracies(policy)
    assert max(sampled) + 0.1 < min(evaluation["policy_accuracy"].values())
    # ... and among those rows `policy.step_dpo`, which had no on-policy rounds, repeats its one-round run's figure;
    # the policies answering greedily here are DPO and Stepwise DPO (NLL only is notebook 04's figure)
    assert all("step_dpo" not in r for r in policy["rounds"])
    assert policy["step_dpo"]["sampled_accuracy"] == one_round["step_dpo"]["sampled_accuracy"]
    assert set(evaluation["policy_accuracy"]) == {"base", "dpo", "stepwise_dpo"}
    # 06: the PRM pulls away from the ORM as N grows (the largest N's lead above the smallest's)
    diffs = m["best_of_n_differences"]
    sizes = sorted((n for n in diffs if int(n) > 1), key=int)
    lead = [diffs[n]["prm_min"]["orm"]["difference"] for n in sizes]
    assert lead[-1] > max(lead[0], 0), lead

    def measured(d):  # its 95% interval excludes zero
        return d["low"] > 0 or d["high"] < 0

    # 06: at N = 16 only majority vote's lead over a random pick is measured; the ORM's over majority vote is from
    # N = 2 to 8, not at 16; the combined model's lead over product at N = 2 only just is
    at_16 = {(a, b) for a, row in diffs["16"].items() for b, d in row.items() if measured(d)}
    assert at_16 == {("majority", "random")}, at_16
    assert [measured(diffs[n]["orm"]["majority"]) for n in ("2", "4", "8", "16")] == [True, True, True, False]
    assert 0 < diffs["2"]["combined"]["prm_product"]["low"] < 0.01
    # 06's reading of the plot: the PRM's lead over the ORM grows with N with either aggregation, with `product`
    # level (not measured) up to N = 4; the combined model matches `min`, one problem below `product`; a random pick
    # stays flat (its curve within one problem's worth)
    for aggregation in ("prm_min", "prm_product"):
        lead = [diffs[n][aggregation]["orm"]["difference"] for n in sizes]
        assert lead == sorted(lead), (aggregation, lead)
    assert not any(measured(diffs[n]["prm_product"]["orm"]) for n in ("2", "4"))
    problems, top = m["evaluation"]["n_best_of_n_problems"], m["best_of_n"]["16"]
    assert top["combined"] == top["prm_min"] and round((top["prm_product"] - top["combined"]) * problems) == 1
    random_curve = [m["best_of_n"][n]["random"] for n in m["best_of_n"]]
    assert max(random_curve) - min(random_curve) < 1 / problems, random_curve
    # 04's rounds: after round 1 Stepwise DPO and NLL only level greedy, DPO behind; after the last, the greedy lead
    # over DPO lies above zero (only just) and every other interval holds zero; against NLL only +3 lies outside the
    # greedy interval and inside the sampled one
    rounds = policy["rounds"]
    assert rounds[0]["stepwise_dpo"]["accuracy"] == rounds[0]["nll_only"]["accuracy"] > rounds[0]["dpo"]["accuracy"]
    last = rounds[-1]["stepwise_dpo_minus"]
    assert 0 < last["dpo"]["accuracy"]["low"] < 0.005
    assert all(d["low"] < 0 < d["high"] for name, by_k in last.items() for k, d in by_k.items()
               if (name, k) != ("dpo", "accuracy"))
    assert last["nll_only"]["accuracy"]["high"] < 0.03 < last["nll_only"]["sampled_accuracy"]["high"]
    assert rounds[-1]["stepwise_dpo_minus"] == policy["stepwise_dpo"]["minus"]  # the table's are the last round's
    # 04's mislabels: a whole-solution pair's is its rejected solution's first error or a wrong chosen one
    for r in rounds:
        solution = r["mislabels"]["solution"]
        assert solution["mislabelled"] == solution["rejected_first_error_elsewhere"] + solution["chosen_wrong"], r
    # 06: Stepwise DPO's greedy lead over DPO is measured (its interval above zero), its difference to NLL only not
    assert [measured(policy["stepwise_dpo"]["minus"][k]["accuracy"]) for k in ("dpo", "nll_only")] == [True, False]
    # 07: steering's lead over picking with the same PRM, and the ORM's over majority vote, are measured at both
    # budgets; the PRM and the ORM as pickers are level at B = 4 and apart at B = 16; DVTS is level with the beam
    searched = m["test_time_differences"]
    for b in ("4", "16"):
        assert measured(searched[b]["beam_prm"]["best_of_n_prm"]) and measured(searched[b]["best_of_n_orm"]["majority"])
    assert [measured(searched[b]["best_of_n_prm"]["best_of_n_orm"]) for b in ("4", "16")] == [False, True]
    # ... the PRM's lead at B = 16 "only just beyond the noise": its interval's low end above zero by less than one of
    # the 50 problems' worth
    assert 0 < searched["16"]["best_of_n_prm"]["best_of_n_orm"]["low"] < 1 / m["test_time"]["n_problems"]
    # ... from B = 4 to 16 majority vote gains least, the ORM more, the PRM most
    gain = {k: m["test_time"]["16"][k] - m["test_time"]["4"][k] for k in ("majority", "best_of_n_orm", "best_of_n_prm")}
    assert 0 < gain["majority"] < gain["best_of_n_orm"] < gain["best_of_n_prm"], gain
    # ... and docs/benchmarks.md's beam-minus-best-of-N lead at B = 4 on all 150 test problems, +14.5 points (its
    # "Verifiers and search" section), lies below the 50 problems' interval
    assert searched["4"]["beam_prm"]["best_of_n_prm"]["low"] > 0.145
    assert not measured(searched["16"]["dvts_prm"]["beam_prm"])
    # 07's beam explorer: one beam of four next steps at B = 4; the wrong steps sampled at P 0.00 and a right one
    # kept at every depth; the right answer, whose last step sets the beam's score (min); one round over the cap
    example = m["test_time"]["example"]
    assert example["budget"] == 4 and m["test_time"]["shapes"]["4"] == [1, 4]
    assert example["right"] and example["right_kept_at_every_depth"] and example["wrong_steps"] > 0
    assert round(example["wrong_step_p_max"], 2) == 0 and example["last_step_p"] == example["score_p"]
    assert example["tokens"] > example["token_cap"]


def test_readme_time_table_holds_the_recorded_runs_seconds():
    """The time table's 2026-12-04 column is the recorded run's `tutorial.notebook_seconds`."""
    readme = (ROOT / "README.md").read_text()
    seconds = RECORDED["tutorial"]["notebook_seconds"]
    rows = {line.split("|")[1].strip()[:2]: line.split("|") for line in readme.splitlines()
            if re.match(r"\| 0[1-7] ", line)}
    header = next(line.split("|") for line in readme.splitlines() if line.startswith("| notebook | tiny profile"))
    column = [c.strip() for c in header].index("2026-12-04")
    assert sorted(rows) == [f"0{k}" for k in range(1, 8)] == sorted(name[:2] for name in seconds)
    for name, s in seconds.items():
        assert rows[name[:2]][column].strip() == f"{round(s)} s", (name, s)


def _benchmarked_tutorial_runs() -> list[dict]:
    """docs/benchmarks.md's "Tutorial wall time" rows, the development machine's every `make tutorial`: each row's
    date and note, its notebooks' seconds and its total, in seconds and in minutes as printed."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    section = text[text.index("## Tutorial wall time"):]
    runs = []
    for line in section[:section.index("\n## ")].splitlines():
        total = re.fullmatch(r"\| (2026-[^|]+) \|(.+)\| \*\*(\d+) s \((\d+\.\d) min\)\*\* \|", line)
        if total:
            seconds = [int(c.strip().removesuffix(" s")) for c in total[2].split("|")]
            runs.append({"row": total[1].strip(), "notebook_seconds": seconds, "seconds": int(total[3]),
                         "minutes": total[4]})
    return runs


def test_the_time_ranges_the_texts_quote_span_the_benchmarked_runs():
    """The ranges of wall time README and notebook 01 quote (all seven notebooks', and 01's) span docs/benchmarks.md's
    "Tutorial wall time" rows, whose last is the recorded run; README's 2026-11-30 column is one of its rows."""
    runs, recorded = _benchmarked_tutorial_runs(), RECORDED["tutorial"]
    assert len(runs) > 2 and runs[-1]["notebook_seconds"] == [round(s) for s in recorded["notebook_seconds"].values()]
    assert runs[-1]["seconds"] == round(recorded["wall_seconds"])
    minutes, first = [float(r["minutes"]) for r in runs], [r["notebook_seconds"][0] for r in runs]
    whole, alone = f"{min(minutes):.1f}–{max(minutes):.1f} minutes", f"{min(first)}–{max(first)} s"
    readme = _one_line((ROOT / "README.md").read_text())
    assert f"took {whole} (notebook 01 alone {alone})" in readme, (whole, alone)
    assert f"| {whole} on other days (below) |" in readme, whole
    assert f"runs in `docs/benchmarks.md`, {alone} and {whole})" in _markdown("01_data_prep.ipynb"), (whole, alone)
    lines = (ROOT / "README.md").read_text().splitlines()
    header = next(line.split("|") for line in lines if line.startswith("| notebook | tiny profile"))
    at = next(k for k, c in enumerate(header) if "2026-11-30" in c)
    column = [int(line.split("|")[at].strip().removesuffix(" s")) for line in lines if re.match(r"\| 0[1-7] ", line)]
    run = [r for r in runs if r["row"].startswith("2026-11-30") and r["notebook_seconds"] == column]
    assert len(run) == 1 and f"and {run[0]['minutes']} minutes on 2026-11-30" in readme, (column, run)


@pytest.mark.parametrize("page", ["README.md", "data/README.md", *sorted(p.relative_to(ROOT).as_posix()
                                                                    for p in (ROOT / "docs").glob("*.md"))])
def test_inline_code_in_the_readme_and_docs_stays_on_one_line(page):
    """A command in backticks broken across two lines renders joined but copies with a line break in it."""
    text = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S)
    assert [span for span in re.findall(r"`([^`]+)`", text) if "\n" in span] == []
