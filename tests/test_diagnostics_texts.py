"""What notebooks 01 and 02 say about the diagnostics they print: the texts point at what the cells show, where they
show it, and quote no figure the CPU moves."""
import json
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "docs" / "tutorial_metrics.json").read_text())


def _cells(name: str) -> list:
    return nbformat.read(ROOT / "notebooks" / name, 4).cells


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_notebook_02_quotes_none_of_the_trained_controls_cpu_dependent_figures():
    """Its text said the control "ends at 0.733 ... with a first-error F1 of 0.27", the recorded run's; another CPU
    prints 0.738 and 0.213 (docs/benchmarks.md), and the text read as a contradiction of the row above it."""
    after = RECORDED["prm"]["control"]["after_qlora"]
    text = _one_line("\n".join(c.source for c in _cells("02_process_reward_model.ipynb") if c.cell_type == "markdown"))
    quoted = [f for f in (f"{after['step_auroc']:.3f}", f"{after['f1']:.3f}", f"F1 of {after['f1']:.2f}")
              if f in text]
    assert not quoted, quoted
    assert "read them off the printed row" in text  # where the reader finds them instead


def test_notebook_02_explains_the_heatmaps_labels_above_the_heatmap():
    """A label such as `1−0.004` was explained only in notebook 05, three notebooks after the heatmap first shows
    one."""
    cells = _cells("02_process_reward_model.ipynb")
    heatmap = next(i for i, c in enumerate(cells) if "plot_step_reward_heatmap(" in c.source)
    above = next(c for c in reversed(cells[:heatmap]) if c.cell_type == "markdown")
    assert "a label such as `1−0.004` means P = 0.996" in _one_line(above.source)


def test_notebook_01_points_at_the_lucky_right_answers_where_they_are():
    """"Label every step" said "(the lucky right answers below the plots)"; the text on them comes before the plots,
    after the printed summary that counts them."""
    cells = _cells("01_data_prep.ipynb")
    lucky = next(i for i, c in enumerate(cells) if "A right answer is not always a clean solution" in c.source)
    plots = next(i for i, c in enumerate(cells) if "plot_first_error_positions(" in c.source)
    pointer = next(i for i, c in enumerate(cells) if "(the lucky right answers" in c.source)
    summary = next(i for i, c in enumerate(cells) if "format_verdict_summary(" in c.source)
    assert pointer < summary < lucky < plots
    assert "below the plots" not in cells[pointer].source
    assert "the summary below counts them, the text under it discusses them" in _one_line(cells[pointer].source)


def test_notebook_02_quotes_the_parameter_counts_peft_gives_and_its_cell_prints():
    """The cell counted with the since-removed diagnostics.parameter_counts (PyTorch's numel), which sees a packed
    4-bit matrix at half its weights: "81,920 trainable parameters of 522,624 stored" for a 0.87 M-parameter base,
    and a paragraph explaining the number away. PEFT's get_nb_trainable_parameters counts each 4-bit weight once."""
    from stepdpo_lite.models import load_model
    from stepdpo_lite.tutorial.profiles import get_profile

    cells = _cells("02_process_reward_model.ipynb")
    assert 'QUANTIZATION = "4bit"' in cells[1].source  # the base the text's figures are of
    training = next(c.source for c in cells if "train_reward_model(" in c.source)
    assert "prm.model.get_nb_trainable_parameters()" in training
    profile = get_profile("tiny")
    model, _ = load_model(profile.reward_base, quantization="4bit", lora=profile.lora_config(), device="cpu")
    trainable, total = model.get_nb_trainable_parameters()
    base = sum(p.numel() for p in load_model(profile.reward_base, quantization=None, device="cpu")[0].parameters())
    assert total == base + trainable  # every weight of the base once, and the adapter's
    text = _one_line("\n".join(c.source for c in cells if c.cell_type == "markdown"))
    assert f"prints {trainable:,} trainable parameters of {total:,} in all" in text
    assert f"{base / 1e6:.2f} M-parameter base" in text and "half a million" not in text


def test_notebook_02_tells_the_verifier_bases_rows_seen_from_its_distinct_solutions():
    """It said "pretrained ... on 1.6 million graded solutions" and "between about 300 k and 460 k graded solutions":
    rows seen, with repeats (stage 1 saw its 100 k solutions 12.7 times), read as distinct solutions."""
    log = json.loads((ROOT / "data" / "tiny-verifier" / "training_log.json").read_text())
    stages = log["earlier_stages"] + [log]
    seen = sum(stage["rows_seen"] for stage in stages)
    distinct = sum(min(stage["config"]["rows"], stage["rows_seen"]) for stage in stages)  # at most: all different
    first = stages[0]
    learnt = [p["rows_seen"] for p in first["curve"] if p["step_auroc"] < 0.76][-1], next(
        p["rows_seen"] for p in first["curve"] if p["step_auroc"] > 0.85)  # the step AUROC's climb, 0.76 to 0.87
    text = _one_line("\n".join(c.source for c in _cells("02_process_reward_model.ipynb") if c.cell_type == "markdown"))
    assert f"about {distinct / 1e6:.1f} million graded solutions ({seen / 1e6:.1f} million rows seen, with repeats)" \
        in text
    assert (f"after about {learnt[0] / first['config']['rows']:.0f} to {learnt[1] / first['config']['rows']:.1f} "
            f"passes over {first['config']['rows'] // 1000} k graded solutions ({learnt[0] // 10_000 * 10} k to "
            f"{learnt[1] // 10_000 * 10} k rows seen") in text  # 307,200 and 460,800 rows seen
