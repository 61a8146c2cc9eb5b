"""The reward models' records: the ``prm`` and ``orm`` sections of ``metrics.json`` that notebooks 02 and 03 write
(and later notebooks and the README read), the held-out reports they are made from, and the statistics they rest on.

- ``prm_report``: a PRM's held-out figures, tagged with the PRM that scored them; ``prm_reports_adapter_on_and_off``:
  with its adapter and zero-shot; ``prm_metrics``: the ``prm`` section of ``metrics.json`` notebook 02 records;
- ``prm_threshold``: notebook 02's first-error threshold for the PRM a later notebook loads, refused when that
  PRM was saved without it or with another;
- ``auroc_difference``: whether one score's AUROC beats another's beyond the noise of the held-out set
  (``outcome_auroc_differences``: notebook 03's three comparisons);
- ``orm_report``: notebook 03's held-out outcome AUROCs of an ORM (with its adapter and zero-shot), a PRM and the two
  combined, with the weight chosen on validation (``choose_process_weight``); ``orm_metrics``: the ``orm`` section
  of ``metrics.json`` it records.

A record refuses a report scored by another model than the one trained last (``_check_scored_by``): a training cell
run again after its scoring cell leaves a report of the model before.

Neighbours: the figures recorded beside these (the position-only baseline, AUROC by position, calibration, the
rejected right answers) are computed in ``diagnostics``; what notebooks 02 and 05 draw and read off their pictures
in ``step_reward_summaries``; where ``metrics.json`` lives and how a recorded key is read in ``runs``.
"""

from __future__ import annotations

import math
import os
import weakref
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from ..checks import finite_number, positive_int
from ..evaluation import finite_scores, flat_scores_and_labels, outcome_auroc, process_reward_report
from ..reward_ensembles import CombinedRewardModel
from ..rewards import ProcessRewardModel, read_saved_config
from . import runs


def prm_report(prm, val, test) -> dict:
    """``prm``'s held-out figures (``evaluation.process_reward_report``: test step AUROC, first-error F1 at the
    validation threshold) on ``val`` and ``test`` (stepwise rows: ``prompt``, ``completions``, ``labels``), with the
    rewards it scored (``"val_rewards"``, ``"test_rewards"``) and ``"scored_by"``: a weak reference to ``prm``, with
    which ``prm_metrics(prm=...)`` refuses a report of a PRM trained before (a training cell run again after this
    one)."""
    val_rewards = prm.score_solutions(val["prompt"], val["completions"])
    test_rewards = prm.score_solutions(test["prompt"], test["completions"])
    return {**process_reward_report(val_rewards, val["labels"], test_rewards, test["labels"]),
            "val_rewards": val_rewards, "test_rewards": test_rewards, "scored_by": weakref.ref(prm)}


def prm_reports_adapter_on_and_off(prm, val, test, rewards=None) -> dict[str, dict]:
    """A LoRA-trained PRM's held-out figures (``evaluation.process_reward_report``: test step AUROC, first-error F1
    at the validation threshold) with its adapter (``"after QLoRA"``) and with it switched off (``"zero-shot"``:
    the reward base alone), each with its ``"test_rewards"`` (for ``auroc_difference``). ``val``, ``test``:
    stepwise rows (``prompt``, ``completions``, ``labels``); ``rewards``: the PRM's ``(val, test)`` rewards with its
    adapter on, when already scored (they are not scored again)."""
    def scored():
        return [prm.score_solutions(split["prompt"], split["completions"]) for split in (val, test)]

    adapter_on = scored() if rewards is None else rewards
    with prm.model.disable_adapter():
        zero_shot = scored()
    return {name: {**process_reward_report(v, val["labels"], t, test["labels"]), "test_rewards": t}
            for name, (v, t) in (("after QLoRA", adapter_on), ("zero-shot", zero_shot))}


def _check_scored_by(report: dict, model, who: str, kind: str, remake: str) -> None:
    """``report`` (``prm_report`` / ``orm_report``) must hold ``model``'s figures (the one trained last): its
    ``"scored_by"`` weak reference names the model that scored it; a training cell run again after the scoring cell
    leaves a report of the model before."""
    scored_by = report.get("scored_by")
    if scored_by is None:
        raise ValueError(f"{who}: report does not say which {kind} scored it: make it with {remake}")
    if scored_by() is not model:
        low = kind.lower()
        raise ValueError(f"{who}: report holds the figures of another {kind} than {low}, the one trained last (the "
                         f"training cell ran again after the scoring cell): run the scoring cell (report = {remake}) "
                         "and the cells after it again, then this one")


def prm_metrics(report: dict, *, position_auroc: float, by_position, figures: dict, qlora_gain: dict,
                train_seconds: float, reward_base, prm=None, calibration: dict | None = None,
                heatmap: dict | None = None) -> dict:
    """The ``prm`` section of ``metrics.json`` that notebook 02 records and notebooks 03-06 and the README read: the
    test figures of ``report`` (``evaluation.process_reward_report``: step AUROC, first-error F1 and its validation
    threshold) beside the position-only baseline's AUROC and ``by_position`` (``step_auroc_by_position``), the
    training time (to 0.1 s), the reward base's folder name, its zero-shot figures and ``qlora_gain``
    (``auroc_difference``). ``figures``: ``prm_reports_adapter_on_and_off`` by base, ``"reward base"`` and, when the
    control was trained, ``"plain policy base (control)"``, whose step AUROC and F1 are recorded as ``control``,
    ``zero_shot`` and ``after_qlora`` (no ``control`` without one). ``calibration``: ``step_calibration`` of the
    test rewards, recorded as ``calibration`` (notebook 02's metrics cell replaces the whole section: a calibration
    recorded only by the cell after it was dropped by a rerun of the metrics cell). ``heatmap``:
    ``step_reward_summaries.heatmap_details`` of the heatmap's rows, recorded as ``heatmap`` (the rows notebook 02's
    text names).

    ``prm``: the PRM whose figures these must be (notebook 02's, trained last): ``report`` must be its
    ``prm_report`` and the reward base's ``"after QLoRA"`` rewards in ``figures`` those of ``report``, else a
    ``ValueError`` says to score it again (None: not checked)."""
    if "reward base" not in figures:
        raise ValueError(f"prm_metrics: figures need the 'reward base' reports, got {list(figures)}")
    if prm is not None:
        _check_scored_by(report, prm, "prm_metrics", "PRM", "reward_reports.prm_report(prm, val, test)")
        if figures["reward base"].get("after QLoRA", {}).get("test_rewards", report["test_rewards"]) != \
                report["test_rewards"]:
            raise ValueError("prm_metrics: figures['reward base'] holds another PRM's rewards than report (scored "
                             "before the scoring cell ran again): run the cell that compares the reward base "
                             "zero-shot and after QLoRA (prm_reports_adapter_on_and_off) again, then this one")
    headline = lambda r: {k: r[k] for k in ("step_auroc", "f1")}  # what the README and the texts quote
    metrics = {"step_auroc": report["step_auroc"], "position_baseline_auroc": position_auroc,
               "step_auroc_by_position": by_position, "first_error_f1": report["f1"],
               "first_error_threshold": report["threshold"], "train_seconds": round(train_seconds, 1),
               "reward_base": Path(reward_base).name, "zero_shot": headline(figures["reward base"]["zero-shot"]),
               "qlora_minus_zero_shot": qlora_gain}
    control = figures.get("plain policy base (control)")
    if control is not None:
        names = {"zero-shot": "zero_shot", "after QLoRA": "after_qlora"}  # JSON keys, as the README's checks read them
        metrics["control"] = {names[name]: headline(r) for name, r in control.items()}
    if calibration is not None:
        metrics["calibration"] = calibration
    if heatmap is not None:
        metrics["heatmap"] = heatmap
    return metrics


def prm_threshold(prm, run: str | os.PathLike) -> float:
    """Notebook 02's first-error threshold (log-odds, chosen on validation) for ``prm``: the PRM a later notebook
    loaded, or the folder it is saved in (checked before it is loaded: notebook 03 checks it before it trains its
    ORM). Notebook 02's training cell saves its PRM as soon as it is trained, without a threshold; its scoring cell
    (``report = reward_reports.prm_report(...)``) chooses the threshold and saves the PRM again with it, and its
    metrics cell records it as ``prm.first_error_threshold`` in ``run/metrics.json``. A PRM saved without one
    (``config.first_error_threshold`` None: 02's training cell ran again, its scoring cell not), or with another than
    the one recorded (its scoring cell ran again, its metrics cell not), is refused: the later notebook paired it with
    an older PRM's threshold. Returns the threshold; none recorded is a ``FileNotFoundError`` naming notebook 02
    (``runs.recorded``)."""
    recorded = runs.recorded(run, "prm.first_error_threshold", "02_process_reward_model")
    if isinstance(prm, (str, os.PathLike)):
        where = Path(prm)
        own = read_saved_config(where / ProcessRewardModel.config_file, "process reward model").get(
            "first_error_threshold")
    else:
        where, own = "the PRM loaded", prm.config.first_error_threshold
    again = ("run notebook 02 from its scoring cell (report = reward_reports.prm_report(...), which saves the PRM "
             "again with its threshold) through its metrics cell (runs.update_metrics, which records the threshold)")
    if own is None:
        raise ValueError(f"prm_threshold: {where} was saved without its first-error threshold (config "
                         f"first_error_threshold None: notebook 02's training cell saved it): {again}")
    if recorded is None or not math.isclose(own, recorded, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"prm_threshold: {where} has first-error threshold {own!r}, but {Path(run) / 'metrics.json'} "
                         f"records prm.first_error_threshold {recorded!r}, another PRM's: {again}")
    return float(own)


def choose_process_weight(prm_scores, orm_scores, labels, grid=tuple(np.round(np.linspace(0, 1, 11), 2))):
    """The PRM's weight ``w`` in the combined score ``w·PRM + (1 − w)·ORM`` with the best outcome AUROC on these
    (validation) solutions, and the AUROC of every weight of ``grid`` (ties: the first, the smaller weight)."""
    def checked(scores, name):  # outcome_auroc would name a NaN "score 1" of the weighted sum, not the input's
        return np.asarray(finite_scores(scores, "choose_process_weight", f"{name}: solution"))

    prm_scores, orm_scores = checked(prm_scores, "prm_scores"), checked(orm_scores, "orm_scores")
    if prm_scores.shape != orm_scores.shape:
        raise ValueError(f"choose_process_weight: {prm_scores.size} PRM scores but {orm_scores.size} ORM scores")
    aurocs = {float(w): outcome_auroc(w * prm_scores + (1 - w) * orm_scores, labels) for w in grid}
    return max(aurocs, key=aurocs.get), aurocs


def auroc_difference(scores_a, scores_b, labels, groups=None, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """AUROC of scores A minus that of scores B on the same examples, with a bootstrap interval.

    Scores and labels as ``evaluation.step_auroc`` takes them: per solution (lists of step scores and labels) or
    flat. ``groups``: a key per solution (per flat example), e.g. its prompt. A resample draws whole groups with
    replacement, because a problem's solutions, and a solution's steps, share its difficulty: they are not
    independent examples. Both AUROCs are computed on every resample, so what A and B have in common cancels;
    the interval is the percentile interval of the resampled differences (Efron and Tibshirani 1993). Resamples
    that hold one class only are drawn again. Returns ``{"difference", "low", "high"}`` (AUROC units)."""
    def auroc(y, s):  # the Mann-Whitney form (ties count a half), as sklearn's, without its per-call checks: 15x faster
        n_right = y.sum()
        return (rankdata(s)[y].sum() - n_right * (n_right + 1) / 2) / (n_right * (len(y) - n_right))

    positive_int(n_boot, "n_boot", "auroc_difference")  # 0 raised numpy's IndexError, True drew one resample
    positive_int(seed, "seed", "auroc_difference", minimum=0)  # None drew unseeded resamples, True seeded 1
    confidence = finite_number(confidence, "confidence", "auroc_difference")
    if not 0 < confidence < 1:  # 95 (a percentage) raised numpy's "Quantiles must be in the range [0, 1]"
        raise ValueError(f"auroc_difference: confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    nested = len(labels) > 0 and isinstance(labels[0], (list, tuple, np.ndarray))
    # each side checked as step_auroc checks it: shapes, finite scores, labels bool or 0/1, both classes
    a, y = flat_scores_and_labels(scores_a, labels, "auroc_difference (scores A)")
    b, _ = flat_scores_and_labels(scores_b, labels, "auroc_difference (scores B)")
    sizes = [len(row) for row in labels] if nested else [1] * len(labels)
    keys = list(range(len(labels))) if groups is None else list(groups)
    if len(keys) != len(labels):
        raise ValueError(f"auroc_difference: {len(keys)} groups for {len(labels)} solutions")
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    per_example = np.repeat([ids[k] for k in keys], sizes)
    members = [np.flatnonzero(per_example == g) for g in range(len(ids))]
    rng, diffs, draws = np.random.default_rng(seed), [], 0
    while len(diffs) < n_boot:
        draws += 1
        if draws > 10 * n_boot:
            raise ValueError("auroc_difference: too few resamples hold both right and wrong examples")
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        if y[idx].all() or not y[idx].any():
            continue
        diffs.append(auroc(y[idx], a[idx]) - auroc(y[idx], b[idx]))
    low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"difference": float(auroc(y, a) - auroc(y, b)), "low": float(low), "high": float(high)}


def outcome_auroc_differences(scores: dict, zero_shot_scores, labels, *, groups=None, seed: int = 0) -> dict:
    """Notebook 03's gaps between outcome AUROCs, each with its bootstrap interval (``auroc_difference``, redrawing
    whole ``groups``, e.g. the problems, with all their solutions): is a gap larger than the test set's noise?
    ``combined_minus_orm`` (what adding the PRM brings), ``orm_minus_prm_min`` (the ORM's lead as a judge of the
    answer) and ``qlora_minus_zero_shot`` (what QLoRA added to the ORM). ``scores``: per solution, by name
    (``"ORM"``, ``"PRM (min)"``, ``"combined"``); ``zero_shot_scores``: the ORM's with its adapter off."""
    missing = [name for name in ("ORM", "PRM (min)", "combined") if name not in scores]
    if missing:
        raise ValueError(f"outcome_auroc_differences: scores lack {missing}, got {list(scores)}")
    compared = {"combined_minus_orm": (scores["combined"], scores["ORM"]),
                "orm_minus_prm_min": (scores["ORM"], scores["PRM (min)"]),
                "qlora_minus_zero_shot": (scores["ORM"], zero_shot_scores)}
    return {name: auroc_difference(a, b, labels, groups=groups, seed=seed) for name, (a, b) in compared.items()}


def orm_report(orm, prm, val, test, process_weight: float | None = None, *, groups=None, seed: int = 0) -> dict:
    """Notebook 03's held-out figures: a LoRA-trained ``orm`` beside ``prm`` (its solution reward, its steps'
    aggregate: ``min`` in notebook 03) and the two combined (``CombinedRewardModel``: ``w·PRM + (1 − w)·ORM``).
    ``val``, ``test``: outcome rows (``prompt``, ``completion``, ``label``). Both splits are scored by both models,
    and the test split again by the ORM with its adapter switched off (the reward base alone, zero-shot). The PRM's
    weight ``w`` is ``process_weight``, or, when None, the one with the best validation AUROC on a grid 0, 0.1, ..., 1
    (``choose_process_weight``; every weight's AUROC is ``"val_auroc_by_weight"``). Returns, on the test split:
    ``"scores"`` (numpy arrays by name, ``"ORM"``, ``"PRM (min)"`` and ``"combined"``), their ``"aurocs"``,
    ``"zero_shot_scores"``, ``"zero_shot_auroc"``, ``"labels"`` and ``"differences"`` (``outcome_auroc_differences``
    of these scores, bootstrapped over whole ``groups``, e.g. the test prompts, with ``seed``); and
    ``"process_weight"``, ``"combined"`` (the ``CombinedRewardModel``, to save) and ``"scored_by"``: a weak reference
    to ``orm``, which ``orm_metrics(orm=...)`` checks. A ``prm`` that aggregates its steps otherwise than by
    ``min`` (``prm.config.aggregation``) is refused: every name and record here says min."""
    if prm.config.aggregation != "min":  # "PRM (min)" and prm_min_auroc would name another score
        raise ValueError(f"orm_report: the PRM aggregates its steps by {prm.config.aggregation!r}, but its scores "
                         "here are named and recorded as min (\"PRM (min)\", prm_min_auroc): set "
                         "prm.config.aggregation = 'min'")
    if process_weight is not None:
        process_weight = finite_number(process_weight, "process_weight", "orm_report")
        if not 0 <= process_weight <= 1:
            raise ValueError(f"orm_report: process_weight must be in [0, 1] (the ORM's weight is 1 minus it), got "
                             f"{process_weight!r}")
    splits = (("validation", val), ("test", test))
    orm_scores = {name: np.array(orm.score_solutions(split["prompt"], split["completion"])) for name, split in splits}
    prm_scores = {name: np.array(prm.solution_rewards(split["prompt"], split["completion"])) for name, split in splits}
    with orm.model.disable_adapter():  # the reward base alone, before QLoRA
        zero_shot_scores = np.array(orm.score_solutions(test["prompt"], test["completion"]))
    best_weight, val_auroc = choose_process_weight(prm_scores["validation"], orm_scores["validation"], val["label"])
    weight = float(best_weight if process_weight is None else process_weight)
    combined = CombinedRewardModel(prm, orm, process_weight=weight, outcome_weight=1 - weight)
    labels = np.array(test["label"])
    # the combined model's score from its parts' rewards above, by the formula its score_solutions uses
    scores = {"ORM": orm_scores["test"], "PRM (min)": prm_scores["test"],
              "combined": np.array(combined.combine(prm_scores["test"], orm_scores["test"]))}
    return {"scores": scores, "aurocs": {name: outcome_auroc(s, labels) for name, s in scores.items()},
            "zero_shot_scores": zero_shot_scores, "zero_shot_auroc": outcome_auroc(zero_shot_scores, labels),
            "labels": labels, "val_auroc_by_weight": val_auroc, "process_weight": weight, "combined": combined,
            "differences": outcome_auroc_differences(scores, zero_shot_scores, labels, groups=groups, seed=seed),
            "scored_by": weakref.ref(orm)}


def orm_metrics(report: dict, *, rejected: dict, train_seconds: float, orm=None) -> dict:
    """The ``orm`` section of ``metrics.json`` that notebook 03 records and notebook 06 and the README read: the test
    AUROCs of ``report`` (``orm_report``: the ORM's, zero-shot and after QLoRA, the PRM's and the combined model's)
    and the combined model's PRM weight, beside its ``"differences"`` (the gaps with their intervals), ``rejected``
    (``rejected_right_answers``) and the training time (to 0.1 s).

    ``orm``: the ORM whose figures these must be (notebook 03's, trained last): ``report`` must be its
    ``orm_report``, else a ``ValueError`` says to score it again (None: not checked)."""
    if orm is not None:
        _check_scored_by(report, orm, "orm_metrics", "ORM", "reward_reports.orm_report(...)")
    aurocs = report["aurocs"]
    return {"auroc": aurocs["ORM"], "prm_min_auroc": aurocs["PRM (min)"], "combined_auroc": aurocs["combined"],
            "combined_process_weight": report["process_weight"], "zero_shot_auroc": report["zero_shot_auroc"],
            "differences": report["differences"], "prm_rejected_right": rejected,
            "train_seconds": round(train_seconds, 1)}
