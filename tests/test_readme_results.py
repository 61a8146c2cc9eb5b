"""README's results table, and the "what the output shows" texts of notebooks 02 to 04, quote one `make tutorial`
run (at 4e000a0): its metrics.json is kept as docs/tutorial_metrics.json, and every figure they quote must be that file's, as
the notebooks print it. After a new run: `cp runs/tiny/metrics.json docs/tutorial_metrics.json`, then these tests
name each quoted figure that moved."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "docs" / "tutorial_metrics.json"


def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")  # the README's minus sign


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _points(x: float) -> str:
    return _signed(100 * x, 1)


def _three(x: float) -> str:
    return f"{x:.3f}"


def _greedy_sampled(r: dict) -> str:
    return f"{_pct(r['accuracy'])} / {_pct(r['sampled_accuracy'])}"


def _interval(d: dict, fmt) -> list[str]:
    return [fmt(d["difference"]), f"{fmt(d['low'])} to {fmt(d['high'])}"]


def expected_figures(m: dict) -> dict[str, list[str]]:
    """For each results row (a text that picks it out), the figures it must quote, formatted as in the table."""
    p, o, pol = m["prm"], m["orm"], m["policy"]
    top, one = m["best_of_n"]["16"], pol["one_round_gold_labels"]
    four = lambda x: _signed(x, 4)  # noqa: E731
    return {
        "Does the PRM find the wrong step? (02)": [
            _three(p["step_auroc"]), _three(p["first_error_f1"]), _three(p["position_baseline_auroc"]),
            f"{_three(p['zero_shot']['step_auroc'])} / {_three(p['zero_shot']['f1'])}",
            *_interval(p["qlora_minus_zero_shot"], four),
            f"{_three(p['control']['after_qlora']['step_auroc'])} / {_three(p['control']['after_qlora']['f1'])}"],
        "Does the ORM recognise a right final answer? (03)": [
            _three(o["auroc"]), _three(o["combined_auroc"]), _three(o["zero_shot_auroc"]),
            *_interval(o["differences"]["combined_minus_orm"], lambda x: _signed(x, 3))],
        "Which verifier picks the best of 16 samples? (06)": [
            _pct(top[k]) for k in ("prm_product", "prm_min", "combined", "orm", "majority", "random")] + [
            _pct(m["evaluation"]["pass_at_n"]["16"])],
        "16 solutions' worth of tokens (07)": [
            _pct(m["test_time"]["16"][k]) for k in ("beam_prm", "dvts_prm", "best_of_n_prm", "best_of_n_orm",
                                                     "majority")],
        "at 4 solutions' worth": [
            _pct(m["test_time"]["4"][k]) for k in ("beam_prm", "best_of_n_prm", "best_of_n_orm", "majority")],
        "One round of preference training": [
            _greedy_sampled(r) for r in (one["stepwise_dpo"], one["dpo"], one["nll_only"], pol["base"])],
        "Two on-policy rounds": [_greedy_sampled(pol[k]) for k in ("stepwise_dpo", "dpo", "nll_only")] + _interval(
            pol["stepwise_dpo"]["minus"]["nll_only"]["accuracy"], _points),
        "Monte-Carlo step labels": [
            f"{_pct(m['data']['mc_label_agreement']['hard'])} (hard) / {_pct(m['data']['mc_label_agreement']['soft'])}"
            " (soft)"],
    }


def notebook_figures(m: dict) -> dict[str, list[str]]:
    """For notebooks 02 to 04, the figures their markdown quotes from the run."""
    p, o, pol = m["prm"], m["orm"], m["policy"]
    one, minus = pol["one_round_gold_labels"], pol["stepwise_dpo"]["minus"]
    three = lambda x: _signed(x, 3)  # noqa: E731
    return {
        "02_process_reward_model.ipynb": [
            _three(p["step_auroc"]), _three(p["first_error_f1"]), _three(p["zero_shot"]["step_auroc"]),
            _three(p["zero_shot"]["f1"]), _three(p["position_baseline_auroc"]),
            _three(p["control"]["after_qlora"]["step_auroc"]),
            *_interval(p["qlora_minus_zero_shot"], lambda x: _signed(x, 4))],
        "03_outcome_reward_model.ipynb": [
            _three(o["auroc"]), _three(o["zero_shot_auroc"]), _three(o["prm_min_auroc"]), _three(o["combined_auroc"]),
            *(f for d in o["differences"].values() for f in _interval(d, three))],
        "04_stepwise_dpo.ipynb": [
            *(_pct(r[k]) for r in (one["nll_only"], one["stepwise_dpo"], one["dpo"])
              for k in ("accuracy", "sampled_accuracy")), _pct(pol["base"]["accuracy"]),
            *(f for d in one["stepwise_dpo"]["minus"]["dpo"].values() for f in _interval(d, _points)),
            *_interval(one["stepwise_dpo"]["minus"]["nll_only"]["accuracy"], _points),
            *(_greedy_sampled(pol[k]).replace("% /", "% greedy /", k == "dpo") for k in ("dpo", "nll_only",
                                                                                            "stepwise_dpo")),
            *(f for d in (minus["nll_only"], minus["dpo"]) for r in d.values() for f in _interval(r, _points))],
    }


def results_rows(readme: str) -> list[str]:
    section = readme[readme.index("## Results (tiny profile"):]
    section = section[:section.index("\n### ")]
    return [line for line in section.splitlines() if line.startswith("| ")]


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded run")
def test_readme_results_are_the_recorded_runs():
    metrics = json.loads(RECORDED.read_text())
    rows = results_rows((ROOT / "README.md").read_text())
    missing = {}
    for marker, figures in expected_figures(metrics).items():
        row = [r for r in rows if marker in r]
        assert len(row) == 1, f"README's results table has {len(row)} rows with {marker!r}"
        row = row[0].replace("**", "").replace("% greedy /", "% /").replace("% sampled", "%")
        missing.update({f"{marker}: {f}": row for f in figures if f not in row})
    assert not missing, "README figures not in docs/tutorial_metrics.json's run:\n" + "\n".join(missing)


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded run")
def test_notebook_texts_quote_the_recorded_run():
    metrics = json.loads(RECORDED.read_text())
    missing = []
    for name, figures in notebook_figures(metrics).items():
        cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
        text = " ".join(" ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").split())
        text = text.replace("**", "")  # one space for every line break and run of spaces
        missing += [f"{name}: {f}" for f in figures if f not in text]
    assert not missing, "notebook figures not in docs/tutorial_metrics.json's run:\n" + "\n".join(missing)


def test_the_checker_sees_a_moved_figure():
    """The check can fail: a README row whose figure differs from the run is named."""
    metrics = json.loads(RECORDED.read_text())
    metrics["prm"]["step_auroc"] = 0.5
    assert "0.500" in expected_figures(metrics)["Does the PRM find the wrong step? (02)"]
    row = [r for r in results_rows((ROOT / "README.md").read_text()) if "(02)" in r][0]
    assert "0.500" not in row
