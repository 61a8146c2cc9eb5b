"""reward_reports: metrics.json's prm and orm records, the held-out reports they are made from, their statistics."""
import gc

import numpy as np
import pytest

from stepdpo_lite.evaluation import outcome_auroc, process_reward_report
from stepdpo_lite.tutorial import diagnostics, reward_reports
from stepdpo_lite.tutorial.reward_reports import (auroc_difference, choose_process_weight,
                                                  prm_reports_adapter_on_and_off)


def test_auroc_difference_refuses_a_bad_resample_count_or_confidence():
    a, b, y = [0.1, 0.9, 0.3, 0.7], [0.2, 0.1, 0.5, 0.5], [0, 1, 0, 1]
    for bad in (0, -5, True, 10.0):  # 0 raised numpy's IndexError, True drew one resample
        with pytest.raises(ValueError, match="auroc_difference: n_boot must be an int >= 1"):
            reward_reports.auroc_difference(a, b, y, n_boot=bad)
    for bad in (95, 0.0, 1.0, float("nan"), True):  # 95: numpy's "Quantiles must be in the range [0, 1]"
        with pytest.raises(ValueError, match="auroc_difference: confidence must be"):
            reward_reports.auroc_difference(a, b, y, n_boot=20, confidence=bad)
    out = reward_reports.auroc_difference(a, b, y, n_boot=20, confidence=0.9)
    assert out["low"] <= out["high"]


def test_auroc_difference_gives_up_after_ten_draws_per_resample_wanted():
    """The give-up error was tested nowhere: resamples of one class are drawn again, up to 10 x n_boot draws in all,
    then an error, not an endless loop (seed 1256 draws ten one-class resamples of these two before one with both)."""
    with pytest.raises(ValueError, match="auroc_difference: too few resamples hold both right and wrong examples"):
        auroc_difference([0.1, 0.9], [0.5, 0.2], [False, True], n_boot=1, seed=1256)
    assert auroc_difference([0.1, 0.9], [0.5, 0.2], [False, True], n_boot=1, seed=0)["difference"] == 1.0


def test_prm_metrics_is_notebook_02s_prm_section():
    def reports(auroc_on, auroc_off):
        return {"after QLoRA": {"step_auroc": auroc_on, "f1": 0.9, "threshold": -1.0, "test_rewards": [[1.0]]},
                "zero-shot": {"step_auroc": auroc_off, "f1": 0.8, "threshold": -2.0, "test_rewards": [[0.0]]}}

    report = {"step_auroc": 0.95, "f1": 0.9, "threshold": -1.0, "n_correct": 3}
    gain = {"difference": 0.05, "low": 0.01, "high": 0.09}
    by_position = [{"step": 1, "n": 4, "right": 0.5, "auroc": 1.0}]
    kw = dict(position_auroc=0.7, by_position=by_position, qlora_gain=gain, train_seconds=12.34,
              reward_base="data/tiny-verifier")
    metrics = reward_reports.prm_metrics(report, figures={"reward base": reports(0.95, 0.9)}, **kw)
    assert metrics == {"step_auroc": 0.95, "position_baseline_auroc": 0.7, "step_auroc_by_position": by_position,
                       "first_error_f1": 0.9, "first_error_threshold": -1.0, "train_seconds": 12.3,
                       "reward_base": "tiny-verifier", "zero_shot": {"step_auroc": 0.9, "f1": 0.8},
                       "qlora_minus_zero_shot": gain}  # no control trained: none recorded
    with_control = reward_reports.prm_metrics(
        report, figures={"reward base": reports(0.95, 0.9), "plain policy base (control)": reports(0.73, 0.59)}, **kw)
    assert with_control["control"] == {"after_qlora": {"step_auroc": 0.73, "f1": 0.9},
                                       "zero_shot": {"step_auroc": 0.59, "f1": 0.8}}
    with pytest.raises(ValueError, match="prm_metrics: figures need the 'reward base' reports"):
        reward_reports.prm_metrics(report, figures={}, **kw)


def test_prm_metrics_record_the_calibration_so_a_rerun_of_notebook_02s_metrics_cell_keeps_it(tmp_path):
    """Notebook 02's metrics cell replaces the whole ``prm`` section; the calibration was recorded only by the cell
    after it, so running the metrics cell again (the last one run) dropped ``prm.calibration``."""
    from stepdpo_lite.tutorial import runs

    rewards, labels = [[2.0, -2.0], [1.0, 1.5]], [[True, False], [True, True]]
    calibration = diagnostics.step_calibration(rewards, labels)
    report = {"step_auroc": 1.0, "f1": 1.0, "threshold": -1.0}
    figures = {"reward base": {"zero-shot": {"step_auroc": 0.5, "f1": 0.5}}}
    kw = dict(position_auroc=0.7, by_position=[], figures=figures, qlora_gain={}, train_seconds=1.0, reward_base="b")
    assert "calibration" not in reward_reports.prm_metrics(report, **kw)
    recorded = reward_reports.prm_metrics(report, calibration=calibration, **kw)
    assert recorded["calibration"] == calibration
    runs.update_metrics(tmp_path, {"prm": recorded}, replace=["prm"])
    runs.update_metrics(tmp_path, {"prm": recorded}, replace=["prm"])  # the metrics cell run again, last
    section = runs.read_metrics(tmp_path)["prm"]
    assert section["first_error_threshold"] == -1.0 and section["calibration"]["steps"] == calibration["steps"] == 4


def notebook_02_code_cells() -> list[str]:
    import nbformat
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "02_process_reward_model.ipynb"
    return [c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code"]


def test_notebook_02_computes_and_records_its_calibration_once_in_the_metrics_cell():
    """The metrics cell computed the calibration for prm_metrics, and the calibration cell computed it again and
    recorded it a second time (replace=["prm.calibration"]): now the calibration cell prints the metrics cell's."""
    import re

    cells = notebook_02_code_cells()
    made = [i for i, src in enumerate(cells) if re.search(r"(?<![_.\w])diagnostics\.step_calibration\(", src)]
    recorded = [i for i, src in enumerate(cells) if "runs.update_metrics(" in src and "calibration" in src]
    assert len(made) == 1 and recorded == made, (made, recorded)
    assert "prm_metrics(" in cells[made[0]] and "calibration=calibration" in cells[made[0]]
    shown = [i for i, src in enumerate(cells) if "format_step_calibration(calibration)" in src]
    assert len(shown) == 1 and shown[0] > made[0] and "update_metrics" not in cells[shown[0]]


def test_the_cells_prm_threshold_names_are_notebook_02s():
    """prm_threshold's message said the metrics cell saves the PRM with its threshold; the scoring cell does (the
    one that calls prm_report), and the metrics cell records it."""
    cells = notebook_02_code_cells()
    scoring = next(i for i, src in enumerate(cells) if "report = reward_reports.prm_report(" in src)
    assert "prm.config.first_error_threshold = threshold" in cells[scoring]
    assert 'atomic.save_atomic(RUN_DIR / "prm", prm.save)' in cells[scoring]
    metrics = next(i for i, src in enumerate(cells) if "reward_reports.prm_metrics(" in src)
    assert metrics > scoring and "runs.update_metrics(" in cells[metrics] and "save_atomic" not in cells[metrics]


def test_prm_threshold_refuses_a_prm_saved_without_the_recorded_threshold(tmp_path):
    """Notebook 02's training cell saves the PRM at once, without a threshold; its scoring cell saves it again with
    one, and its metrics cell records it. A learner who ran the training cell again and stopped there paired the new
    PRM with the old recorded threshold in notebooks 03-05 (05 printed "first error found exactly (P < 0.17, notebook
    02's threshold)" from the old PRM). The message named the metrics cell as the one that saves the threshold."""
    import json
    from types import SimpleNamespace

    from stepdpo_lite.rewards import ProcessRewardModel
    from stepdpo_lite.tutorial import runs

    prm = lambda threshold: SimpleNamespace(config=SimpleNamespace(first_error_threshold=threshold))
    with pytest.raises(FileNotFoundError, match="has no prm.first_error_threshold: run 02_process_reward_model"):
        reward_reports.prm_threshold(prm(-1.5), tmp_path)  # notebook 02 never recorded one
    runs.update_metrics(tmp_path, {"prm": {"first_error_threshold": -1.5}})
    assert reward_reports.prm_threshold(prm(-1.5), tmp_path) == -1.5
    with pytest.raises(ValueError, match=r"prm_threshold: the PRM loaded was saved without its first-error threshold "
                                         r"\(config first_error_threshold None: notebook 02's training cell saved "
                                         r"it\): run notebook 02 from its scoring cell \(report = "
                                         r"reward_reports.prm_report\(...\), which saves the PRM again with its "
                                         r"threshold\) through its metrics cell \(runs.update_metrics, which records "
                                         r"the threshold\)"):
        reward_reports.prm_threshold(prm(None), tmp_path)
    with pytest.raises(ValueError, match=r"the PRM loaded has first-error threshold -0.25, but .*metrics.json records "
                                         r"prm.first_error_threshold -1.5, another PRM's: run notebook 02 from its "
                                         r"scoring cell .* through its metrics cell"):
        reward_reports.prm_threshold(prm(-0.25), tmp_path)
    folder = tmp_path / "prm"  # its saved config, read before the PRM is loaded
    folder.mkdir()
    (folder / ProcessRewardModel.config_file).write_text(json.dumps({"first_error_threshold": None}))
    with pytest.raises(ValueError, match=r"prm_threshold: .*prm was saved without its first-error threshold"):
        reward_reports.prm_threshold(folder, tmp_path)
    (folder / ProcessRewardModel.config_file).write_text(json.dumps({"first_error_threshold": -1.5}))
    assert reward_reports.prm_threshold(folder, tmp_path) == -1.5
    (folder / ProcessRewardModel.config_file).unlink()
    with pytest.raises(FileNotFoundError, match="not a saved process reward model"):
        reward_reports.prm_threshold(str(folder), tmp_path)


def test_outcome_auroc_differences_are_notebook_03s_three_gaps():
    rng = np.random.default_rng(0)
    labels = [bool(x) for x in rng.integers(0, 2, 40)]
    scores = {name: rng.normal(size=40) + noise * np.array(labels) for name, noise in
              (("ORM", 1.0), ("PRM (min)", 0.5), ("combined", 1.2))}
    zero_shot = rng.normal(size=40)
    groups = [i // 4 for i in range(40)]
    gaps = reward_reports.outcome_auroc_differences(scores, zero_shot, labels, groups=groups, seed=1)
    assert list(gaps) == ["combined_minus_orm", "orm_minus_prm_min", "qlora_minus_zero_shot"]
    assert gaps["orm_minus_prm_min"] == reward_reports.auroc_difference(scores["ORM"], scores["PRM (min)"], labels,
                                                                        groups=groups, seed=1)
    assert gaps["qlora_minus_zero_shot"]["difference"] == pytest.approx(
        outcome_auroc(scores["ORM"], labels) - outcome_auroc(zero_shot, labels))
    with pytest.raises(ValueError, match=r"outcome_auroc_differences: scores lack \['combined'\]"):
        reward_reports.outcome_auroc_differences({"ORM": [1.0], "PRM (min)": [0.0]}, [0.0], [True])


STEP_LABELS = [[True, False], [True, True], [False, False]]


class _PRMByLabels:
    """Scores the first len(prompts) solutions of STEP_LABELS: +1 a right step, -1 a wrong one (times sign)."""

    def __init__(self, sign=1):
        self.sign = sign

    def score_solutions(self, prompts, steps):
        return [[self.sign * (1.0 if ok else -1.0) for ok in y] for y in STEP_LABELS[:len(prompts)]]


def test_prm_metrics_refuse_figures_another_prm_scored():
    """Notebook 02 in Jupyter: the training cell run again, then the metrics cell without the scoring cell between
    them, recorded the first PRM's step AUROC and threshold (which notebooks 04-06 read) beside the second PRM's
    training time, without a word."""
    labels = STEP_LABELS
    rows = {"prompt": ["p"] * 3, "completions": [["a", "b"]] * 3, "labels": labels}
    first = _PRMByLabels()
    report = reward_reports.prm_report(first, rows, rows)
    assert report["scored_by"]() is first and report["test_rewards"] == first.score_solutions(["p"] * 3, None)
    plain = process_reward_report(report["val_rewards"], labels, report["test_rewards"], labels)
    assert {k: report[k] for k in plain} == plain  # its figures are evaluation's
    figures = {"reward base": {"after QLoRA": {"step_auroc": 1.0, "f1": 1.0, "test_rewards": report["test_rewards"]},
                               "zero-shot": {"step_auroc": 0.5, "f1": 0.5, "test_rewards": [[0.0]]}}}
    kw = dict(position_auroc=0.7, by_position=[], figures=figures, train_seconds=1.0, reward_base="b",
              qlora_gain={"difference": 0.5, "low": 0.4, "high": 0.6})
    recorded = reward_reports.prm_metrics(report, prm=first, **kw)
    assert recorded == reward_reports.prm_metrics(report, **kw)  # the check adds nothing to what is recorded
    assert "scored_by" not in recorded and "test_rewards" not in recorded
    second = _PRMByLabels(-1)  # trained again; its scoring cell not run again
    with pytest.raises(ValueError, match="report holds the figures of another PRM than prm, the one trained last.*"
                                         r"report = reward_reports.prm_report\(prm, val, test\)"):
        reward_reports.prm_metrics(report, prm=second, **kw)
    del first  # the first PRM gone: its report no longer names a PRM, nor this one
    gc.collect()
    assert report["scored_by"]() is None
    with pytest.raises(ValueError, match="another PRM than prm"):
        reward_reports.prm_metrics(report, prm=second, **kw)
    with pytest.raises(ValueError, match="report does not say which PRM scored it"):  # a plain process_reward_report
        reward_reports.prm_metrics({k: v for k, v in report.items() if k != "scored_by"}, prm=second, **kw)
    # scored again, but the zero-shot comparison not: its 'after QLoRA' rewards are the first PRM's
    with pytest.raises(ValueError, match=r"figures\['reward base'\] holds another PRM's rewards than report.*"
                                         "prm_reports_adapter_on_and_off"):
        reward_reports.prm_metrics(reward_reports.prm_report(second, rows, rows), prm=second, **kw)


class _FakeORM:
    """Scores by completion; its adapter switched off (``model.disable_adapter()``) it reads another table."""

    def __init__(self, adapter_on: dict, adapter_off: dict):
        import contextlib

        self.tables, self.adapter = {True: adapter_on, False: adapter_off}, True

        @contextlib.contextmanager
        def disable_adapter():
            self.adapter = False
            try:
                yield
            finally:
                self.adapter = True

        self.model = type("Model", (), {"disable_adapter": staticmethod(disable_adapter)})()

    def score_solutions(self, prompts, completions):
        return [self.tables[self.adapter][c] for c in completions]


def _fake_reward_models(orm_on: dict, orm_off: dict, prm: dict):
    """An ORM and a PRM that CombinedRewardModel takes (its parts' types), scoring from tables."""
    from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel, RewardModelConfig

    class ORM(_FakeORM, OutcomeRewardModel):
        pass

    class PRM(ProcessRewardModel):
        def __init__(self):
            self.config = RewardModelConfig()  # aggregation "min", as notebook 03's

        def solution_rewards(self, prompts, completions):
            return [prm[c] for c in completions]

    return ORM(orm_on, orm_off), PRM()


def _outcome_rows(n: int, offset: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = [bool(y) for y in rng.integers(0, 2, n)]
    labels[:2] = [True, False]  # both classes
    return {"prompt": [f"p{(offset + i) // 2}" for i in range(n)],
            "completion": [f"s{offset + i}" for i in range(n)], "label": labels}


def test_orm_report_scores_both_splits_zero_shot_too_and_chooses_the_weight_on_validation():
    """Notebook 03 did all this in its cells: scoring, the zero-shot pass with the adapter off, the weight, the
    combined scores and the AUROCs."""
    from stepdpo_lite.evaluation import outcome_auroc

    val, test = _outcome_rows(30, 0, 1), _outcome_rows(30, 100, 2)
    rng = np.random.default_rng(3)
    rows = {c: y for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    noisy = lambda scale: {c: float(y) + scale * rng.normal() for c, y in rows.items()}
    orm, prm = _fake_reward_models(noisy(1.0), noisy(3.0), noisy(1.5))
    report = reward_reports.orm_report(orm, prm, val, test)
    weight, by_weight = reward_reports.choose_process_weight(prm.solution_rewards(None, val["completion"]),
                                                             orm.score_solutions(None, val["completion"]), val["label"])
    assert report["process_weight"] == weight and report["val_auroc_by_weight"] == by_weight
    orm_test, prm_test = (np.array(table) for table in (orm.score_solutions(None, test["completion"]),
                                                        prm.solution_rewards(None, test["completion"])))
    assert np.array_equal(report["scores"]["ORM"], orm_test) and np.array_equal(report["scores"]["PRM (min)"], prm_test)
    assert np.allclose(report["scores"]["combined"], weight * prm_test + (1 - weight) * orm_test)
    assert report["combined"].process_weight == weight and report["combined"].outcome_weight == 1 - weight
    assert report["combined"].outcome_reward_model is orm and report["combined"].process_reward_model is prm
    zero_shot = [orm.tables[False][c] for c in test["completion"]]  # scored with the adapter off, then back on
    assert list(report["zero_shot_scores"]) == zero_shot and orm.adapter
    assert report["zero_shot_auroc"] == outcome_auroc(zero_shot, test["label"])
    assert report["aurocs"] == {name: outcome_auroc(s, test["label"]) for name, s in report["scores"].items()}
    assert list(report["labels"]) == test["label"] and report["scored_by"]() is orm
    # the gaps, bootstrapped over whole groups with the report's own seed: as notebook 03 calls it
    by_problem = reward_reports.orm_report(orm, prm, val, test, groups=test["prompt"], seed=7)
    assert by_problem["differences"] == reward_reports.outcome_auroc_differences(
        report["scores"], report["zero_shot_scores"], test["label"], groups=test["prompt"], seed=7)
    assert report["differences"] == reward_reports.outcome_auroc_differences(report["scores"], zero_shot, test["label"])
    assert report["differences"] != by_problem["differences"]
    fixed = reward_reports.orm_report(orm, prm, val, test, process_weight=1)  # the notebook's PROCESS_WEIGHT
    assert fixed["process_weight"] == 1.0 and np.allclose(fixed["scores"]["combined"], prm_test)
    for bad in (1.5, -0.1, float("nan"), "0.3"):
        with pytest.raises(ValueError, match="orm_report: process_weight"):
            reward_reports.orm_report(orm, prm, val, test, process_weight=bad)


def test_orm_report_refuses_a_prm_that_aggregates_otherwise_than_by_min():
    """Its scores are named "PRM (min)" and recorded as prm_min_auroc; a PRM saved with "product" got both names."""
    val, test = _outcome_rows(10, 0, 1), _outcome_rows(10, 50, 2)
    rows = {c: float(y) for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    orm, prm = _fake_reward_models(rows, rows, rows)
    prm.config.aggregation = "product"
    with pytest.raises(ValueError, match=r"orm_report: the PRM aggregates its steps by 'product', but its scores here "
                                         r"are named and recorded as min"):
        reward_reports.orm_report(orm, prm, val, test)


def test_orm_metrics_is_notebook_03s_orm_section_and_refuses_another_orms_figures():
    val, test = _outcome_rows(20, 0, 4), _outcome_rows(20, 50, 5)
    rng = np.random.default_rng(6)
    rows = {c: y for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    noisy = lambda scale: {c: float(y) + scale * rng.normal() for c, y in rows.items()}
    orm, prm = _fake_reward_models(noisy(1.0), noisy(3.0), noisy(1.5))
    report = reward_reports.orm_report(orm, prm, val, test, groups=test["prompt"])
    rejected = {"right": 9, "rejected": 2, "rejected_share": 2 / 9}
    metrics = reward_reports.orm_metrics(report, rejected=rejected, train_seconds=12.34, orm=orm)
    aurocs = report["aurocs"]
    assert metrics == {"auroc": aurocs["ORM"], "prm_min_auroc": aurocs["PRM (min)"],
                       "combined_auroc": aurocs["combined"], "combined_process_weight": report["process_weight"],
                       "zero_shot_auroc": report["zero_shot_auroc"], "differences": report["differences"],
                       "prm_rejected_right": rejected, "train_seconds": 12.3}
    assert metrics == reward_reports.orm_metrics(report, rejected=rejected, train_seconds=12.34)
    again, _ = _fake_reward_models(noisy(1.0), noisy(3.0), noisy(1.5))  # trained again, its scoring cell not run
    with pytest.raises(ValueError, match=r"report holds the figures of another ORM than orm, the one trained last.*"
                                         r"report = reward_reports.orm_report\(...\)"):
        reward_reports.orm_metrics(report, rejected=rejected, train_seconds=1.0, orm=again)
    with pytest.raises(ValueError, match="report does not say which ORM scored it"):
        reward_reports.orm_metrics({k: v for k, v in report.items() if k != "scored_by"}, rejected=rejected,
                                   train_seconds=1.0, orm=orm)


def notebook_03_code_cells() -> list[str]:
    import nbformat
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "notebooks" / "03_outcome_reward_model.ipynb"
    return [c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code"]


def test_notebook_03_scores_and_records_through_orm_report_and_orm_metrics():
    """Its cells scored both splits with both models, switched the ORM's adapter off, chose the weight, built the
    combined scores and wrote the metrics dict by hand, some 40 lines that notebook 02 leaves to diagnostics."""
    cells = notebook_03_code_cells()
    source = "\n".join(cells)
    for hand_made in ("disable_adapter", "score_solutions(", "solution_rewards(", "choose_process_weight(",
                      "outcome_auroc(", "CombinedRewardModel(", '"auroc": aurocs'):
        assert hand_made not in source, hand_made
    scoring = [i for i, src in enumerate(cells) if "report = reward_reports.orm_report(orm, prm, val, test" in src]
    recording = [i for i, src in enumerate(cells) if "reward_reports.orm_metrics(report" in src]
    assert len(scoring) == len(recording) == 1 and scoring[0] < recording[0]
    assert "process_weight=PROCESS_WEIGHT" in cells[scoring[0]] and "orm=orm" in cells[recording[0]]
    # the gaps are the report's, bootstrapped over whole problems with the notebook's seed, not computed beside it
    assert all(arg in cells[scoring[0]] for arg in ('groups=test["prompt"]', "seed=SEED"))
    assert "outcome_auroc_differences" not in source
    assert 'replace=["orm"]' in cells[recording[0]]


def test_prm_reports_adapter_on_and_off_switch_the_adapter_off_for_zero_shot():
    import contextlib

    class Model:
        adapter = True

        @contextlib.contextmanager
        def disable_adapter(self):
            self.adapter = False
            yield
            self.adapter = True

    class PRM:  # with its adapter it ranks steps right; without it, backwards
        model = Model()

        def score_solutions(self, prompts, steps):
            sign = 1 if self.model.adapter else -1
            return [[sign * (1.0 if ok else -1.0) for ok in labels] for labels in LABELS[:len(prompts)]]

    LABELS = [[True, False], [True, True], [False, False]]
    rows = {"prompt": ["p"] * 3, "completions": [["a", "b"]] * 3, "labels": LABELS}
    out = prm_reports_adapter_on_and_off(PRM(), rows, rows)
    assert out["after QLoRA"]["step_auroc"] == 1.0 and out["zero-shot"]["step_auroc"] == 0.0
    assert len(out["zero-shot"]["test_rewards"]) == len(out["after QLoRA"]["test_rewards"]) > 0
    assert PRM.model.adapter  # switched back on
    # Rewards already scored with the adapter on are used as given, not scored again
    class CountingPRM(PRM):
        adapter_at_calls = []

        def score_solutions(self, prompts, steps):
            self.adapter_at_calls.append(self.model.adapter)
            return super().score_solutions(prompts, steps)

    given = [[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]  # ranks the first solution backwards: AUROC below 1
    reused = prm_reports_adapter_on_and_off(CountingPRM(), rows, rows, rewards=(given, given))
    assert CountingPRM.adapter_at_calls == [False, False]  # only the zero-shot rewards are scored
    assert reused["after QLoRA"]["test_rewards"] == given and reused["after QLoRA"]["step_auroc"] < 1.0
    assert reused["zero-shot"] == out["zero-shot"]


def test_auroc_difference_point_interval_groups_and_errors():
    """The point is the plain AUROC difference; the bootstrap interval brackets it, narrows with more data, and
    draws whole groups: two copies of every example in one group give the interval of the examples alone."""
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.4
    a, b = y + rng.normal(size=400), 0.3 * y + rng.normal(size=400)  # A separates the classes better than B
    d = auroc_difference(a, b, y, n_boot=300)
    assert d["difference"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert 0 < d["low"] < d["difference"] < d["high"]  # a clear gap: the interval stays above zero
    same = auroc_difference(a, a + 1.0, y, n_boot=50)  # a shift changes no ranking
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
    twice = auroc_difference(np.repeat(a, 2), np.repeat(b, 2), np.repeat(y, 2), groups=np.repeat(np.arange(400), 2),
                             n_boot=300)
    assert twice["difference"] == pytest.approx(d["difference"])
    assert twice["high"] - twice["low"] == pytest.approx(d["high"] - d["low"], rel=0.25)
    ungrouped = auroc_difference(np.repeat(a, 2), np.repeat(b, 2), np.repeat(y, 2), n_boot=300)
    assert ungrouped["high"] - ungrouped["low"] < 0.85 * (twice["high"] - twice["low"])  # copies taken as new data
    nested = auroc_difference([[1.0, 0.2], [0.9]] * 10, [[0.1, 0.8], [0.5]] * 10, [[True, False], [True]] * 10,
                              groups=list(range(20)), n_boot=50)
    assert nested["difference"] == 1.0  # steps flattened: A ranks every right step first, B every wrong one
    with pytest.raises(ValueError, match="both correct and wrong"):
        auroc_difference([0.1, 0.2], [0.3, 0.4], [True, True])
    with pytest.raises(ValueError, match="3 groups for 2 solutions"):
        auroc_difference([0.1, 0.2], [0.3, 0.4], [True, False], groups=[0, 1, 2])
    with pytest.raises(ValueError, match=r"auroc_difference \(scores B\): solution 1 has 2 scores and 1 labels"):
        auroc_difference([[0.1], [0.2]], [[0.3], [0.4, 0.5]], [[True], [False]])
    with pytest.raises(ValueError, match=r"labels\[1\]\[1\] must be a bool or 0/1, got None"):  # was read as right
        auroc_difference([[0.1, 0.2], [0.3, 0.4]], [[0.3, 0.1], [0.4, 0.5]], [[True, False], [True, None]])
    with pytest.raises(ValueError, match=r"scores A\): 5 scores but 4 labels"):  # flat: was numpy's IndexError
        auroc_difference([0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], [True, False, True, False])


def test_auroc_difference_interval_is_the_percentile_interval_of_whole_resamples():
    """Redone by hand: n draws of the n examples with replacement (numpy's generator, the seed), resamples of one
    class drawn again, the interval the (1 − c)/2 and (1 + c)/2 quantiles of the AUROC differences."""
    rng = np.random.default_rng(1)
    y = rng.random(30) < 0.5
    a, b = y + rng.normal(size=30), rng.normal(size=30)
    got = auroc_difference(a, b, y, n_boot=200, seed=3, confidence=0.8)
    draw, diffs = np.random.default_rng(3), []
    while len(diffs) < 200:
        idx = draw.integers(0, 30, 30)
        if y[idx].all() or not y[idx].any():
            continue
        diffs.append(outcome_auroc(a[idx], y[idx]) - outcome_auroc(b[idx], y[idx]))
    low, high = np.quantile(diffs, [0.1, 0.9])
    assert got["low"] == pytest.approx(low) and got["high"] == pytest.approx(high)
    assert got["difference"] == pytest.approx(outcome_auroc(a, y) - outcome_auroc(b, y))


def test_auroc_difference_with_groups_redraws_whole_groups_in_first_seen_order():
    """Redone by hand with groups: each resample draws as many groups as there are (numpy's generator, the seed),
    every member of a drawn group taken; groups numbered in the order first seen, whatever their keys or order.
    Single examples drawn in place of whole groups passed the tests before this one."""
    rng = np.random.default_rng(2)
    y = rng.random(24) < 0.5
    a, b = y + rng.normal(size=24), rng.normal(size=24)
    groups = [f"p{(7 * i) % 8}" for i in range(24)]  # 8 groups of 3, interleaved, not sorted
    got = auroc_difference(a, b, y, groups=groups, n_boot=100, seed=5, confidence=0.8)
    first_seen = list(dict.fromkeys(groups))
    members = [[i for i, g in enumerate(groups) if g == key] for key in first_seen]
    draw, diffs = np.random.default_rng(5), []
    while len(diffs) < 100:
        idx = np.concatenate([members[g] for g in draw.integers(0, 8, 8)])
        if y[idx].all() or not y[idx].any():
            continue
        diffs.append(outcome_auroc(a[idx], y[idx]) - outcome_auroc(b[idx], y[idx]))
    low, high = np.quantile(diffs, [0.1, 0.9])
    assert got["low"] == pytest.approx(low) and got["high"] == pytest.approx(high)


def test_choose_process_weight_takes_the_best_validation_auroc_and_the_smaller_weight_on_a_tie():
    labels = [True, False, True, False]
    prm, orm = [2.0, -1.0, 1.0, -2.0], [0.0, 1.0, -1.0, 0.0]  # the PRM ranks every pair right, the ORM none
    weight, aurocs = choose_process_weight(prm, orm, labels)
    assert len(aurocs) == 11 and aurocs[0.0] == outcome_auroc(orm, labels) and aurocs[1.0] == 1.0
    assert aurocs[weight] == 1.0 and all(a < 1.0 for w, a in aurocs.items() if w < weight)  # the first best weight
    assert 0.0 < weight < 1.0
    weight, aurocs = choose_process_weight(prm, prm, labels)  # every weight alike: the first
    assert weight == 0.0 and set(aurocs.values()) == {1.0}
    with pytest.raises(ValueError, match="3 PRM scores but 4 ORM scores"):
        choose_process_weight(prm[:3], orm, labels)


def test_prm_metrics_record_the_heatmaps_rows_notebook_02s_text_names():
    """Notebook 02's text named heatmap rows (a step back above the tick after a mistake, a first mistake the PRM
    missed) that no record held, so no test could check them against the run."""
    from stepdpo_lite.tutorial import step_reward_summaries

    details = step_reward_summaries.heatmap_details([[4.0, -4.0], [-4.0, 1.0]], [[False, False], [False, False]],
                                                    -2.0, row_labels=["test 7", "test 3"])
    report = {"step_auroc": 1.0, "f1": 1.0, "threshold": -2.0}
    figures = {"reward base": {"zero-shot": {"step_auroc": 0.5, "f1": 0.5}}}
    kw = dict(position_auroc=0.7, by_position=[], figures=figures, qlora_gain={}, train_seconds=1.0, reward_base="b")
    assert "heatmap" not in reward_reports.prm_metrics(report, **kw)
    recorded = reward_reports.prm_metrics(report, heatmap=details, **kw)["heatmap"]
    assert recorded["accepted_after_error"]["rows"] == ["test 3"]
    assert [(r["row"], r["first_error"], r["first_rejected"]) for r in recorded["misread"]] == [("test 7", 1, 2)]


def test_prm_report_keeps_each_splits_rewards_and_the_check_skips_figures_without_rewards():
    val = {"prompt": ["v"] * 2, "completions": [["a", "b"]] * 2, "labels": STEP_LABELS[:2]}
    test = {"prompt": ["t"] * 3, "completions": [["a", "b"]] * 3, "labels": STEP_LABELS}
    prm = _PRMByLabels()
    report = reward_reports.prm_report(prm, val, test)
    assert len(report["val_rewards"]) == 2 and len(report["test_rewards"]) == 3  # each split's, not the other's
    figures = {"reward base": {"after QLoRA": {"step_auroc": 1.0, "f1": 1.0},  # no rewards kept: nothing to compare
                               "zero-shot": {"step_auroc": 0.5, "f1": 0.5}}}
    recorded = reward_reports.prm_metrics(report, prm=prm, position_auroc=0.7, by_position=[], figures=figures,
                                          qlora_gain={}, train_seconds=1.0, reward_base="b")
    assert recorded["step_auroc"] == report["step_auroc"]


def test_prm_threshold_refuses_a_threshold_recorded_as_null(tmp_path):
    from types import SimpleNamespace

    from stepdpo_lite.tutorial import runs

    runs.update_metrics(tmp_path, {"prm": {"first_error_threshold": None}})
    with pytest.raises(ValueError, match="records prm.first_error_threshold None, another PRM's"):  # not a TypeError
        reward_reports.prm_threshold(SimpleNamespace(config=SimpleNamespace(first_error_threshold=-1.5)), tmp_path)


def test_auroc_difference_reads_labels_as_numpy_rows_per_solution_as_lists():
    scores_a, scores_b = [[1.0, 0.2], [0.9], [0.4, 0.6, 0.1]] * 4, [[0.1, 0.8], [0.5], [0.3, 0.2, 0.7]] * 4
    labels = [[True, False], [True], [False, True, False]] * 4
    as_lists = auroc_difference(scores_a, scores_b, labels, n_boot=50, seed=2)
    as_arrays = auroc_difference(scores_a, scores_b, [np.array(row) for row in labels], n_boot=50, seed=2)
    assert as_arrays == as_lists and as_lists["low"] < as_lists["high"]


def test_orm_report_takes_a_process_weight_of_zero_the_orm_alone():
    val, test = _outcome_rows(10, 0, 1), _outcome_rows(10, 50, 2)
    rng = np.random.default_rng(0)
    rows = {c: float(y) + rng.normal() for split in (val, test) for c, y in zip(split["completion"], split["label"])}
    orm, prm = _fake_reward_models(rows, rows, {c: -s for c, s in rows.items()})
    report = reward_reports.orm_report(orm, prm, val, test, process_weight=0)
    assert report["process_weight"] == 0.0 and np.allclose(report["scores"]["combined"], report["scores"]["ORM"])
