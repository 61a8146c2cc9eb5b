"""Every plot on small synthetic data: returns a Figure, saves a real PNG, marks what it should."""

import base64
import math
import struct
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from stepdpo_lite.rewards import sigmoid  # noqa: E402
from stepdpo_lite.tutorial import toyworld, viz  # noqa: E402
from stepdpo_lite.tutorial.display_names import step_body  # noqa: E402

REWARDS = [[2.0, 1.0, -1.5, -2.0], [1.5, 0.5], [0.3, -0.4, 1.2, 2.2, 0.1, -3.0]]
LABELS = [[True, True, False, False], [True, True], [True, False, False, False, False, False]]


def assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert 200 <= width <= 4000 and 150 <= height <= 4000, (width, height)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temporary file left behind"
    return width, height


def test_heatmap_marks_wrong_steps_and_outlines_first_errors(tmp_path):
    fig = viz.plot_step_reward_heatmap(REWARDS, LABELS, row_labels=["a", "b", "c"], save_to=tmp_path / "h" / "x.png")
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "h" / "x.png")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # heatmap + colourbar
    outlines = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted(p.get_xy() for p in outlines) == [(0.5, 1.5), (1.5, -0.5)]  # rows 3 and 1; row 2 has none
    assert len(ax.collections[0].get_offsets()) == sum(not ok for row in LABELS for ok in row)  # the ×s
    image = ax.images[0].get_array()
    assert image.shape == (3, 6) and image.mask[1, 2:].all() and not image.mask[2].any()  # ragged -> blank
    assert image[0, 0] == pytest.approx(sigmoid(2.0))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_sigmoid_gives_a_float_for_a_number_and_an_array_for_an_array_like():
    """rewards.sigmoid serves the scalar callers (pairs' step labels, reports) and the pictures' arrays alike: one
    formula, so a threshold σ(t) and the steps' σ(r) compare as r and t do; no overflow; NaN stays NaN."""
    assert isinstance(sigmoid(2.0), float) and isinstance(sigmoid(np.float32(2.0)), float) and sigmoid(0) == 0.5
    assert isinstance(sigmoid([2.0]), np.ndarray) and sigmoid([[0.0]]).shape == (1, 1)
    rewards = np.linspace(-40, 40, 8001)
    assert np.array_equal(sigmoid(rewards), 1.0 / (1.0 + np.exp(-rewards)))  # the pictures' values, bit for bit
    assert [sigmoid(float(r)) for r in rewards] == sigmoid(rewards).tolist()
    was = [1 / (1 + math.exp(-r)) if r >= 0 else math.exp(r) / (1 + math.exp(r)) for r in rewards]  # math's σ
    assert [sigmoid(float(r)) for r in rewards] == pytest.approx(was, rel=1e-15, abs=0)  # the pairs' labels: ≤ 3 ulp
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # math.exp(1000) raised OverflowError, numpy's exp warned
        assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0 and sigmoid([-1000.0, 1000.0]).tolist() == [0, 1]
    assert math.isnan(sigmoid(float("nan"))) and np.isnan(sigmoid([1.0, np.nan])).tolist() == [False, True]


def test_heatmap_without_labels_and_bad_input(tmp_path):
    fig = viz.plot_step_reward_heatmap(REWARDS, save_to=tmp_path / "plain.png")
    assert_png(tmp_path / "plain.png")
    assert not [p for p in fig.axes[0].patches if isinstance(p, Rectangle)] and not fig.legends  # nothing marked
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)  # P, always
    with pytest.raises(ValueError, match=r"step_labels\[1\] has 1 steps"):
        viz.plot_step_reward_heatmap(REWARDS, [LABELS[0], [True], LABELS[2]])
    with pytest.raises(ValueError, match="empty"):
        viz.plot_step_reward_heatmap([])


def test_chosen_vs_rejected(tmp_path):
    rng = np.random.default_rng(0)
    chosen = [list(rng.normal(1, 1, n)) for n in (3, 4, 5, 4)]
    rejected = [list(rng.normal(-1, 1, n)) for n in (4, 2, 5, 6)]
    rejected_labels = [[k < 1 for k in range(len(r))] for r in rejected]
    fig = viz.plot_chosen_vs_rejected(chosen, rejected, rejected_labels=rejected_labels, save_to=tmp_path / "cvr.png")
    assert_png(tmp_path / "cvr.png")
    assert len(fig.axes) == 1 + viz.PAIRS_DRAWN == 4  # the mean ± sd panel and three pairs
    hatched = [p for ax in fig.axes[1:] for p in ax.patches if p.get_hatch()]
    assert len(hatched) == sum(not ok for lab in rejected_labels[:3] for ok in lab)
    # one key, below the panels, that also says what the single steps' o and x are; every pair panel's axes named
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "chosen (mean ± sd)", "rejected (mean ± sd)", "one step, checker: no mistake here",
        "one step, checker: a mistake is made here", "checker: a mistake is made here"]
    assert [ax.get_xlabel() for ax in fig.axes[1:]] == ["step"] * 3 and fig.axes[1].get_ylabel() == "step reward"
    assert len(viz.plot_chosen_vs_rejected(chosen[:2], rejected[:2]).axes) == 3  # two pairs: both drawn
    with pytest.raises(ValueError, match="as many chosen as rejected"):
        viz.plot_chosen_vs_rejected(chosen, rejected[:2])


def test_before_after(tmp_path):
    problem = toyworld.make_problems(1, seed=3)[0]
    steps = toyworld.check(problem, problem.gold_solution).steps
    labels = [True] * (len(steps) - 1) + [False]
    before, after = list(np.linspace(-1, 1, len(steps))), list(np.linspace(1, -1, len(steps)))
    fig = viz.plot_before_after(steps, before, after, labels=labels, save_to=tmp_path / "ba.png")
    assert_png(tmp_path / "ba.png")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * len(steps)
    ticks = ax.get_xticklabels()
    assert ticks[0].get_text().startswith("✓ Step 1:") and ticks[-1].get_text().startswith("✗")
    assert ticks[-1].get_color() == viz.WRONG and all(len(t.get_text()) <= 33 for t in ticks)
    with pytest.raises(ValueError, match="steps but"):
        viz.plot_before_after(steps, before[:-1], after)
    bar_colours = lambda fig: [to_hex(c) for c in dict.fromkeys(p.get_facecolor() for p in fig.axes[0].patches)]
    assert bar_colours(fig) == [viz.BASE_GREY, viz.NEUTRAL]  # "before", "after": no method named
    # notebook 05: the credit-assignment bars had DPO in the base policy's grey, Stepwise DPO in blue
    credit = viz.plot_before_after(steps, before, after, names=("DPO", "Stepwise DPO"))
    assert bar_colours(credit) == [to_hex("tab:blue"), to_hex("tab:orange")]
    fixed = viz.plot_before_after(steps, before, after, names=("base policy", "after Stepwise DPO"))
    assert bar_colours(fixed) == [viz.BASE_GREY, to_hex("tab:orange")]
    assert credit.axes[0].get_xlabel() == "step"
    ticks, b, a = viz.before_after_bars(["Step 1: 1 + 1 = 2", "Step 1: 1 + 1 = 3"], [[1.0], [-1.0]])
    paired = viz.plot_before_after(ticks, b, a, names=("base policy", "after Stepwise DPO"))
    assert paired.axes[0].get_xlabel() == "step (base policy → after Stepwise DPO)"  # what a tick's arrow reads


def test_training_curves_tolerate_missing_keys(tmp_path):
    dpo = [{"step": s, "loss": 1 / s, "rewards/chosen": 0.1 * s} for s in range(1, 21)] + [{"train_runtime": 2.0}]
    sdpo = [{"step": s, "loss": 0.8 / s, "step_loss": 0.5 / s} for s in range(1, 21)] + [{"step": 21, "loss": None}]
    fig = viz.plot_training_curves({"DPO": dpo, "Stepwise DPO": sdpo}, keys=("loss", "step_loss", "grad_norm"),
                                   smooth=0.5, save_to=tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    loss, step_loss, missing = fig.axes
    assert len(loss.lines) == 2 and len(step_loss.lines) == 1 and not missing.lines
    assert "no 'grad_norm' logged" in [t.get_text() for t in missing.texts]
    assert list(loss.lines[0].get_xdata()) == list(range(1, 21))
    assert list(loss.lines[0].get_ydata()[:2]) == pytest.approx([1.0, 0.75])  # smoothed: 0.5 * 1 + 0.5 * 1/2
    fig = viz.plot_training_curves({"PRM": dpo}, keys=("loss",), baselines={"loss": (0.65, "always the base rate")})
    (ax,) = fig.axes
    assert [round(y, 2) for y in ax.lines[-1].get_ydata()] == [0.65, 0.65]
    assert "always the base rate (0.65)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(viz.plot_training_curves(dpo, keys="loss").axes) == 1  # a single history, a single key


def test_training_curves_say_which_run_logged_nan_not_a_curve_that_just_ends():
    """A run that diverged (its loss NaN or inf from some step on) was drawn up to there without a word; all NaN, its
    panel read "no 'loss' logged", when it was logged."""
    history = [{"step": s, "loss": 1 / s} for s in range(1, 4)] + [{"step": s, "loss": math.nan} for s in (4, 5)]
    with pytest.warns(UserWarning, match=r"run 'DPO' logged 'loss' as NaN or inf at 2 of 5 entries \(step 4 first\)"):
        fig = viz.plot_training_curves({"DPO": history})
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]  # the finite steps, drawn as before
    with pytest.warns(UserWarning, match=r"run 'PRM' logged 'loss' as NaN or inf at 1 of 1 entries"):
        fig = viz.plot_training_curves({"PRM": [{"step": 1, "loss": math.inf}]})
    assert "no finite 'loss' logged" in [t.get_text() for t in fig.axes[0].texts]


def test_training_curves_refuse_an_empty_history_by_name_naming_notebook_04():
    """Notebook 04's rounds cell run twice wrote ``[]`` as each policy's log_history.json; notebook 05's curves then
    failed deep in matplotlib ("number sections must be larger than 0")."""
    history = [{"step": s, "loss": 1 / s} for s in range(1, 4)]
    with pytest.raises(ValueError, match=r"plot_training_curves: the training log of \['DPO', 'Stepwise DPO'\] is "
                                         r"empty: nothing to draw \(a policy's log_history.json is written by "
                                         r"notebook 04: run it again"):
        viz.plot_training_curves({"DPO": [], "Stepwise DPO": []}, keys=("loss", "rewards/margins"))
    with pytest.raises(ValueError, match=r"the training log of \['DPO'\] is empty"):
        viz.plot_training_curves({"DPO": [], "Stepwise DPO": history}, keys=("loss",))
    with pytest.raises(ValueError, match=r"the training log of \['run'\] is empty"):
        viz.plot_training_curves([], keys="loss")


def test_training_curves_say_what_is_plotted_and_that_it_is_smoothed():
    """Notebook 02's PRM loss had no y-axis label, "loss" as a panel title under the figure's title, no word of its
    smoothing, and its key inside the axes."""
    history = [{"step": s, "loss": 1 / s} for s in range(10, 80, 10)]
    fig = viz.plot_training_curves({"PRM": history}, keys=("loss",), smooth=0.6, title="PRM training loss",
                                   baselines={"loss": (0.65, "always the base rate")})
    (ax,) = fig.axes
    assert ax.get_ylabel() == "training loss\n(EMA-smoothed, factor 0.6)" and ax.get_title() == ""
    assert ax.get_legend() is None and fig.legends  # the key is the figure's, outside the axes
    assert all(float(t).is_integer() for t in ax.get_xticks())  # training steps are whole
    runs = {"DPO": history, "Stepwise DPO": history}
    fig = viz.plot_training_curves(runs, keys=("loss", "rewards/margins", "my_metric"))  # unsmoothed, untitled
    assert [a.get_title() for a in fig.axes] == ["loss", "rewards/margins", "my_metric"]
    assert [a.get_ylabel() for a in fig.axes] == ["training loss", "implicit reward, chosen − rejected", "my_metric"]
    assert all(a.get_legend() is None for a in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["DPO", "Stepwise DPO"]  # once, not per panel


def test_a_method_has_one_colour_in_every_figure():
    assert viz.method_color("DPO") == viz.method_color("DPO + NLL") == viz.method_color("after DPO") == "tab:blue"
    assert viz.method_color("Stepwise DPO") == viz.method_color("after Stepwise DPO") == "tab:orange"
    assert viz.method_color("NLL only (RFT)") == "tab:green" and viz.method_color("base policy") == viz.BASE_GREY
    assert viz.method_color("Step-DPO pairs") is None and viz.method_color("PRM") is None  # other runs
    history = [{"step": s, "loss": 1 / s} for s in range(1, 4)]
    colour = lambda fig, i: to_hex(fig.axes[0].lines[i].get_color())
    fig = viz.plot_training_curves({"Stepwise DPO": history, "DPO": history, "Step-DPO pairs": history,
                                    "PRM": history})
    assert [colour(fig, i) for i in range(4)] == [to_hex(c) for c in ("tab:orange", "tab:blue", "C3", "C4")]
    assert colour(viz.plot_training_curves({"PRM": history}), 0) == to_hex("C0")


def test_best_of_n_both_layouts(tmp_path):
    by_method = {"prm_min": {1: 0.3, 4: 0.5, 16: 0.6}, "orm": {1: 0.3, 4: 0.45, 16: 0.5},
                 "majority": {1: 0.3, 4: 0.4, 16: 0.45}}
    by_n = {"1": {"prm_min": 0.3, "orm": 0.3, "majority": 0.3}, "4": {"prm_min": 0.5, "orm": 0.45, "majority": 0.4},
            "16": {"prm_min": 0.6, "orm": 0.5, "majority": 0.45}}  # as in metrics.json
    fig = viz.plot_best_of_n(by_method, save_to=tmp_path / "bon.png")
    assert_png(tmp_path / "bon.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"]
    other = viz.plot_best_of_n(by_n).axes[0]
    assert len(ax.lines) == len(other.lines) == 3  # zip below stops at the shorter
    for a, b in zip(ax.lines, other.lines):
        assert a.get_label() == b.get_label() and list(a.get_ydata()) == list(b.get_ydata())


def test_paired_differences_plot(tmp_path):
    """One line per pair, its points at the N it ran, error bars from the interval, in points."""
    d = {"2": {"prm": {"orm": {"difference": -0.02, "low": -0.03, "high": -0.01}}},
         "16": {"prm": {"orm": {"difference": 0.1, "low": 0.04, "high": 0.16}},
                "orm": {"majority": {"difference": 0.15, "low": 0.05, "high": 0.25}}}}
    fig = viz.plot_paired_differences(d, save_to=tmp_path / "diff.png")
    assert_png(tmp_path / "diff.png")
    ax = fig.axes[0]
    bars = {c.get_label(): c for a in fig.axes for c in a.containers}  # errorbars: (line, caps, bar segments)
    assert set(bars) == {"prm − ORM", "ORM − majority vote"} and ax.get_xscale() == "log"  # in words
    assert list(bars["prm − ORM"].lines[0].get_ydata()) == pytest.approx([-2.0, 10.0])
    assert len(bars["ORM − majority vote"].lines[0].get_xdata()) == 1
    segments = bars["prm − ORM"].lines[2][0].get_segments()
    assert [seg[1][1] - seg[0][1] for seg in segments] == pytest.approx([2.0, 12.0])  # low to high, in points
    with pytest.raises(ValueError, match="no differences"):
        viz.plot_paired_differences({})


def test_paired_differences_in_one_axes_sit_side_by_side_about_their_n():
    """Drawn into the caller's Axes, two pairs at one N would hide each other: they are shifted apart on the log
    axis, either side of N."""
    fig, ax = matplotlib.pyplot.subplots()
    one = {"difference": 0.1, "low": 0.0, "high": 0.2}
    viz.plot_paired_differences({"16": {"prm": {"orm": one}, "orm": {"majority": one}}}, ax=ax)
    (left,), (right,) = (c.lines[0].get_xdata() for c in ax.containers)
    assert left < 16 < right and left * right == pytest.approx(16 ** 2)
    matplotlib.pyplot.close(fig)


def test_notebook_01_bar_charts(tmp_path):
    problems = toyworld.make_problems(6, seed=1)
    verdicts = [toyworld.check(p, p.gold_solution) for p in problems[:3]]
    fig = viz.plot_first_error_positions(verdicts + [0, 1, 1, 3], save_to=tmp_path / "fe.png")
    assert_png(tmp_path / "fe.png")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [1, 2, 0, 1, 3]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "none"]

    fig = viz.plot_accuracy_by_length([2, 3, 3, 5, 5, 5], [1, 0, 1, True, False, False], save_to=tmp_path / "al.png")
    assert_png(tmp_path / "al.png")
    assert [round(p.get_height(), 3) for p in fig.axes[0].patches] == [1.0, 0.5, 0.333]

    fig = viz.plot_label_agreement([[True, False], [True]], [[True, True], [False]], save_to=tmp_path / "la.png")
    assert_png(tmp_path / "la.png")
    assert fig.axes[0].images[0].get_array().tolist() == [[1, 1], [1, 0]]
    with pytest.raises(ValueError, match="predicted vs"):
        viz.plot_label_agreement([True], [True, False])


def _png_of(box):
    (output,) = box.output.outputs
    return output["data"]["image/png"]


def test_explorer_builds_and_updates_headless(tmp_path):
    problems = toyworld.make_problems(2, seed=5)
    solutions = [[p.gold_solution, p.gold_solution.replace("Step 1", "Step one")] for p in problems]
    verdicts = [[toyworld.check(p, s) for s in sols] for p, sols in zip(problems, solutions)]
    rewards = [[[1.0 if ok else -1.0 for ok in v.step_labels] for v in vs] for vs in verdicts]
    rewards[1][0][1] = -0.2  # a false alarm in problem 2's gold solution
    box = viz.step_reward_explorer(problems, solutions, rewards, verdicts, threshold=0.0)  # log-odds: P 0.5
    assert box.picker.value == 0 and f"start with {problems[0].start}." in box.html.value
    first_png, first_html = _png_of(box), box.html.value
    assert first_html.count("outline:2px") == 1  # only the broken solution has a predicted error

    box.picker.value = 1
    assert f"start with {problems[1].start}." in box.html.value and _png_of(box) != first_png
    assert box.html.value.count("outline:2px") == 2

    box.threshold.value = -0.4  # log-odds (P 0.40): -0.2 is no longer below it; -1 still is
    assert box.html.value.count("outline:2px") == 1
    saved = viz.save_explorer_png(box, tmp_path / "figures" / "explorer.png")
    assert saved.read_bytes() == base64.b64decode(box.output.outputs[0]["data"]["image/png"])
    assert viz.step_reward_explorer(problems, solutions, rewards, verdicts, threshold=-2.75).threshold.value == -2.75

    plain = viz.step_reward_explorer(["Problem: 1 + 1"], [[["Step 1: 1 + 1 = 2"]]], [[[0.5]]])
    assert len(plain.output.outputs) == 1 and "Step 1: 1 + 1 = 2" in plain.html.value
    as_dicts = viz.step_reward_explorer(["p"], [[["a", "b"]]], [[[0.5, 0.4]]], [[{"step_labels": [True, False]}]])
    as_lists = viz.step_reward_explorer(["p"], [[["a", "b"]]], [[[0.5, 0.4]]], [[[True, False]]])
    assert as_dicts.html.value == as_lists.html.value and "color:#d1495b" in as_lists.html.value
    with pytest.raises(ValueError, match="problem 0 has 1 solutions but 2 reward"):
        viz.step_reward_explorer(["p"], [["s"]], [[[0.1], [0.2]]])


def test_explorer_picture_says_what_its_bars_and_marks_are():
    """The explorer's PNG (05_explorer.png) had no y-axis label and no key: its colours, orange outline and dashed
    line were explained only in the notebook's text."""
    fig = viz._explorer_figure([[2.0, -3.0], [1.0]], [[True, False], [True]], math.log(0.2 / 0.8))  # log-odds
    assert fig.get_supylabel() == "P(step right) = σ(reward)"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["right step (checker)", "wrong step (checker)",
                                                          "▼ and shaded column: predicted first error",
                                                          "threshold (0.20)"]
    assert all(ax.get_legend() is None for ax in fig.axes)  # below the panels, off the bars
    # each bar is labelled with its P: a wrong step the PRM gives P ≈ 0 drew no bar at all, as if it were not there
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.88", "0.05"] and fig.axes[0].get_ylim()[1] > 1
    assert [t.get_text() for t in viz._explorer_figure([[-12.0]], None, 0.0).axes[0].texts] == ["0.00"]
    fig = viz._explorer_figure([[2.0, -3.0]], None, 0.0)  # no checker: no right/wrong colours to explain
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["▼ and shaded column: predicted first error",
                                                                "threshold (0.50)"]


def test_label_agreement_names_a_missing_label():
    from stepdpo_lite.tutorial import labelling

    with pytest.raises(ValueError, match="solution 0, step 1: a label must be a bool or a share"):
        labelling.label_agreement([[1.0, None]], [[True, True]])
    with pytest.raises(ValueError, match="threshold is a share of rollouts"):
        labelling.label_agreement([[1.0]], [[True]], threshold=50)
    with pytest.raises(ValueError, match="no steps"):
        labelling.label_agreement([], [])
    with pytest.raises(ValueError, match="solution 0 has 2 predicted but 1 gold labels"):  # 3 and 3 once flattened
        viz.plot_label_agreement([[True, False], [True]], [[True], [False, True]])


def test_explorer_refuses_steps_or_labels_that_do_not_match_the_rewards_and_a_threshold_out_of_range():
    """A step without its reward was dropped (or a reward shown on an empty step), short labels raised a bare
    IndexError, and the slider clamped a threshold to its range without a word. The threshold is log-odds, as every
    threshold in viz and diagnostics: it was a probability here, and a log-odds one passed by mistake was refused."""
    with pytest.raises(ValueError, match="problem 0, solution 1 has 2 rewards, 3 steps"):  # step 3 was dropped
        viz.step_reward_explorer(["p"], [[["a"], ["a", "b", "c"]]], [[[0.5], [0.5, 0.4]]])
    with pytest.raises(ValueError, match="problem 0, solution 0 has 4 rewards, 2 steps"):  # 2 empty spans were shown
        viz.step_reward_explorer(["p"], [[["a", "b"]]], [[[0.5, 0.4, 1.0, 1.0]]])
    for labels in ([True], [True, False, True]):
        with pytest.raises(ValueError, match=f"2 rewards, 2 steps and {len(labels)} step labels"):
            viz.step_reward_explorer(["p"], [[["a", "b"]]], [[[0.5, 0.4]]], [[labels]])
    with pytest.raises(ValueError, match="step_reward_explorer: threshold must be a finite number"):
        viz.step_reward_explorer(["p"], [[["a"]]], [[[0.5]]], threshold=float("nan"))
    with pytest.raises(ValueError, match=r"threshold is log-odds within ±30.0, got 31.0 \(a probability p is log"):
        viz.step_reward_explorer(["p"], [[["a"]]], [[[0.5]]], threshold=31.0)  # σ(31) is 1 - 3e-14: all rejected
    box = viz.step_reward_explorer(["p"], [[["a", "b"]]], [[[-5.0, -6.0]]], threshold=-5.5)
    assert box.html.value.count("outline:2px") == 1  # -6 is below it, -5 not (as probabilities it took -5.5 as 0)
    assert "0.004 = σ(threshold)" in box.html.value  # σ(-5.5), printed "0.00" before probability_text
    for threshold in (-12.0, 12.0):  # not clamped to the slider's usual range, ±8
        assert viz.step_reward_explorer(["p"], [[["a"]]], [[[0.5]]], threshold=threshold).threshold.value == threshold


def test_label_agreement_refuses_a_solution_without_counterpart():
    with pytest.raises(ValueError, match="2 predicted vs 1 gold entries .*entry 1 has no counterpart"):
        viz.plot_label_agreement([[True, False], []], [[True, False]])  # was: 100% agreement


def test_heatmap_first_errors_row_labels_and_legend():
    fig = viz.plot_step_reward_heatmap([[1.0, -2.0], [1.0]], np.array([[True, False], [True]], dtype=object))
    assert [p.get_xy() for p in fig.axes[0].patches if isinstance(p, Rectangle)] == [(0.5, -0.5)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "checker: the answer is out of reach from here", "checker: the first mistake"]
    assert not viz.plot_step_reward_heatmap([[1.0, 2.0], [1.0]], [[True, True], [True]]).legends  # nothing marked
    with pytest.raises(ValueError, match="row_labels has 1 entries for 2 solutions"):
        viz.plot_step_reward_heatmap([[1.0, 2.0], [1.0]], row_labels=["a"])


def test_training_curves_restart_their_smoothing_at_each_round():
    """An on-policy round trains against a new reference: its first margin is 0, not a continuation of the last
    round's (smoothed across the boundary, the plot showed 0.13 where the log had 0.0)."""
    history = [{"step": s, "rewards/margins": m, "round": 1 + (s > 2)} for s, m in [(1, 0.0), (2, 1.0), (3, 0.0),
                                                                                     (4, 1.0)]]
    (ax,) = viz.plot_training_curves({"run": history}, keys="rewards/margins", smooth=0.5).axes
    assert list(ax.lines[0].get_ydata()) == [0.0, 0.5, 0.0, 0.5]


def test_training_curves_smooth_with_the_factor_on_the_previous_value():
    """The other smoothing tests use 0.5, where the factor on the previous value and on the new one are the same."""
    history = [{"step": s, "loss": m} for s, m in [(1, 0.0), (2, 1.0), (3, 1.0)]]
    (ax,) = viz.plot_training_curves({"run": history}, smooth=0.9).axes
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.0, 0.1, 0.19])


def test_training_curves_take_numpy_metrics():
    history = [{"step": 1, "loss": np.float32(1.0)}, {"step": 2, "loss": np.float64(0.5)}, {"step": 3, "loss": True}]
    (ax,) = viz.plot_training_curves({"run": history}).axes
    assert len(ax.lines) == 1 and list(ax.lines[0].get_ydata()) == [1.0, 0.5]  # a bool is no metric


def test_label_agreement_refuses_a_label_that_is_no_bool():
    """A None (a step left unlabelled) was read as a wrong step, by its truth value."""
    with pytest.raises(ValueError, match=r"plot_label_agreement: solution 1: gold labels\[0\] must be a bool or 0/1, "
                                         r"got None"):
        viz.plot_label_agreement([[True], [False]], [[True], [None]])


def test_plot_outcome_roc_draws_each_scorer_with_its_auroc_and_a_histogram(tmp_path):
    labels = [True, False, True, False, True]
    scores = {"ORM": [2.0, -1.0, 0.5, 0.7, 1.0], "PRM": [1.0, -1.0, 1.0, -1.0, 1.0]}
    fig = viz.plot_outcome_roc(scores, labels, histogram="ORM", save_to=tmp_path / "roc.png")
    roc, hist = fig.axes
    assert [t.get_text() for t in roc.get_legend().get_texts()] == ["ORM (AUROC 0.83)", "PRM (AUROC 1.00)"]
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["right answer (3)", "wrong answer (2)"]
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(viz.plot_outcome_roc(scores, labels).axes) == 1  # no histogram asked: the ROC alone


def test_plot_step_calibration_draws_the_bins_the_diagonal_the_counts_and_the_threshold(tmp_path):
    rewards = [[math.log(0.9 / 0.1), math.log(0.8 / 0.2), math.log(0.3 / 0.7)], [math.log(0.6 / 0.4), math.log(1 / 9)]]
    labels = [[True, True, False], [0, 0]]  # P 0.9, 0.8, 0.3 | 0.6, 0.1 in 2 bins (test_diagnostics' ECE)
    fig = viz.plot_step_calibration(rewards, labels, n_bins=2, threshold=math.log(0.2 / 0.8),
                                    save_to=tmp_path / "calibration.png")
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "calibration.png")
    reliability, counts = fig.axes
    assert reliability.get_title() == "Calibration of P = σ(reward) on 5 steps"
    texts = [t.get_text() for t in reliability.get_legend().get_texts()]
    assert texts[2:] == ["PRM (ECE 0.140, Brier 0.102)", "threshold P = 0.20"]
    assert [round(x, 3) for x in reliability.collections[-1].get_offsets()[:, 1]] == [0.0, 0.667]  # share right
    assert [int(bar.get_height()) for bar in counts.patches] == [2, 3]  # the steps in each bin
    for ax in (reliability, counts):  # the threshold, as P, in both panels
        assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [pytest.approx(0.2)]
    plain = viz.plot_step_calibration(rewards, labels, title="mine")  # 10 bins, 5 of them empty: not drawn
    assert plain.axes[0].get_title() == "mine" and len(plain.axes[1].patches) == 5
    assert not [line for line in plain.axes[0].lines if line.get_linestyle() == "--"]  # no threshold asked


def test_plot_step_calibration_refuses_what_it_would_misdraw():
    with pytest.raises(ValueError, match="plot_step_calibration: step_calibration: solution 0, reward 1 must be a "
                                         "finite number, got nan"):
        viz.plot_step_calibration([[1.0, float("nan")]], [[True, False]])
    with pytest.raises(ValueError, match=r"plot_step_calibration: step_calibration: step_labels\[0\]\[0\] must be "
                                         "a bool or 0/1, got None"):
        viz.plot_step_calibration([[1.0]], [[None]])
    with pytest.raises(ValueError, match="plot_step_calibration: step_calibration: solution 0 has 2 step rewards"):
        viz.plot_step_calibration([[1.0, 2.0]], [[True]])
    with pytest.raises(ValueError, match="plot_step_calibration: step_calibration: n_bins must be an int >= 1"):
        viz.plot_step_calibration([[1.0]], [[True]], n_bins=0)
    with pytest.raises(ValueError, match="plot_step_calibration: step_calibration: no steps"):
        viz.plot_step_calibration([], [])
    for bad in (float("nan"), "0.5", True):  # a log-odds threshold: a finite number (None: no line)
        with pytest.raises(ValueError, match="plot_step_calibration: threshold must be a finite number"):
            viz.plot_step_calibration([[1.0]], [[True]], threshold=bad)

# ----------------------------------------------------------------------------- notebook 05's before/after bars


def test_before_after_bars_share_ticks_by_position_and_pad_the_shorter_side():
    before = "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 12"
    after = "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 11\n\nStep 3: 11 * 2 = 22"
    ticks, b, a = viz.before_after_bars([before, after], [[1.0, -2.0], [1.0, 2.0, 3.0]],
                                        [[True, False], [True, True, True]])
    assert ticks == ["✓ 5 + 7 = 12 → ✓ 5 + 7 = 12", "✗ 12 - 1 = 12 → ✓ 12 - 1 = 11", " → ✓ 11 * 2 = 22"]
    assert b[:2] == [1.0, -2.0] and np.isnan(b[2]) and a == [1.0, 2.0, 3.0]
    ticks, b, a = viz.before_after_bars(["", after], [[], [0.5, 0.5, 0.5]], [[], None])  # blank; no checker
    assert ticks[0] == " → 5 + 7 = 12" and len(b) == 3 and all(np.isnan(b))
    ticks, b, a = viz.before_after_bars(["", "  "], [[], []])
    assert ticks == [" → "] and np.isnan(b[0]) and np.isnan(a[0])  # one empty tick: the plot needs a bar position
    with pytest.raises(ValueError, match=r"labels \(before\) has 1 labels for 2 steps"):
        viz.before_after_bars([before, after], [[1.0, -2.0], [1.0, 2.0, 3.0]], [[True], None])
    with pytest.raises(ValueError, match=r"solutions must hold two items, \(before, after\), got 3"):
        viz.before_after_bars([before, after, after], [[], []])
    with pytest.raises(ValueError, match=r"solutions \(after\) must be a str, got list"):
        viz.before_after_bars([before, ["Step 1"]], [[], []])


def test_reward_model_comparison_keeps_its_legend_off_the_bars(tmp_path):
    figures = {"reward base": {"after QLoRA": {"step_auroc": 0.99, "f1": 0.96},
                               "zero-shot": {"step_auroc": 0.98, "f1": 0.95}},
               "control": {"after QLoRA": {"step_auroc": 0.73, "f1": 0.27}}}
    fig = viz.plot_reward_model_comparison(figures, baseline={"step_auroc": 0.735}, save_to=tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    assert all(ax.get_legend() is None for ax in fig.axes)  # one legend, the figure's, below both panels
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["after QLoRA", "position-only baseline",
                                                                          "zero-shot"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["step AUROC (0.5 = chance)", "first-error F1 (1 = perfect)"]


def test_test_time_compute_names_its_budgets_above_the_axes():
    """The "B=…" labels sat inside the axes' top edge, on the points of methods near 100%."""
    table = {str(b): {"majority": 0.3, "beam_prm": 0.95, "token_budget": 70.0 * b,
                      "tokens": {"majority": 70.0 * b, "beam_prm": 69.0 * b}} for b in (4, 16)}
    fig = viz.plot_test_time_compute(table)
    ax = fig.axes[0]
    assert not ax.texts and ax.get_ylabel() and ax.get_xlabel()
    (top,) = ax.child_axes
    assert [t.get_text() for t in top.get_xticklabels()] == ["B=4", "B=16"]
    assert list(top.get_xticks()) == [280.0, 1120.0]


def test_plot_first_error_positions_refuses_what_it_would_misdraw():
    with pytest.raises(ValueError, match="first_errors is empty"):
        viz.plot_first_error_positions([])  # was one empty "none" bar
    for bad in (2.7, True, "3", None, -2):  # int() read 2.7 as step 3, True as step 2; -2 was counted as "none"
        with pytest.raises(ValueError, match=r"first_errors\[1\] must be an int >= -1"):
            viz.plot_first_error_positions([0, bad])
    with pytest.raises(ValueError, match="got one str"):
        viz.plot_first_error_positions("012")
    assert [p.get_height() for p in viz.plot_first_error_positions(np.array([1, -1])).axes[0].patches] == [0, 1, 1]


def test_first_error_positions_title_counts_the_solutions():
    """The title's count was tested nowhere: counting the positions drawn, not the solutions, went unseen."""
    fig = viz.plot_first_error_positions([0, 1, 1, 3, -1, -1])
    assert fig.axes[0].get_title() == "Where the first error happens (6 solutions)"


def test_plot_accuracy_by_length_refuses_what_it_would_misdraw():
    with pytest.raises(ValueError, match="0 lengths but 0 results"):
        viz.plot_accuracy_by_length([], [])  # was an empty picture
    with pytest.raises(ValueError, match=r"correct\[0\] must be a bool or 0/1, got None"):
        viz.plot_accuracy_by_length([2, 3], [None, True])  # None was a wrong answer
    with pytest.raises(ValueError, match=r"correct\[1\] must be a bool or 0/1, got 0.7"):
        viz.plot_accuracy_by_length([2, 3], [True, 0.7])  # 0.7 was a right one
    for bad in (float("nan"), True, 2.0):  # NaN drew a NaN bar; 2.0 and 2 were two bars "2.0" and "2"
        with pytest.raises(ValueError, match=r"lengths\[1\] must be an int"):
            viz.plot_accuracy_by_length([2, bad], [True, False])
    assert len(viz.plot_accuracy_by_length(np.array([2, 2]), [1, 0]).axes[0].patches) == 1


def test_plot_accuracy_by_length_labels_each_bar_with_its_accuracy_and_its_own_count():
    """The bars' labels were tested nowhere: the count above a bar is that length's solutions, right or wrong (not
    the number of bars, not the right ones)."""
    fig = viz.plot_accuracy_by_length([2, 3, 3, 5, 5, 5], [1, 0, 1, True, False, False])
    assert [t.get_text() for t in fig.axes[0].texts] == ["100%\nn=1", "50%\nn=2", "33%\nn=3"]


def test_plot_outcome_roc_refuses_what_it_would_misdraw():
    scores = {"ORM": [2.0, -1.0, 0.5, 0.7]}
    with pytest.raises(ValueError, match=r"plot_outcome_roc: labels\[1\] must be a bool or 0/1, got 0.3"):
        viz.plot_outcome_roc(scores, [1, 0.3, 0, 1])  # was cast to bool: 0.3 a right solution
    with pytest.raises(ValueError, match=r"labels\[0\] must be a bool or 0/1, got None"):
        viz.plot_outcome_roc(scores, [None, 1, 0, 1])
    with pytest.raises(ValueError, match=r"scores\['ORM'\] has 4 scores for 3 labels"):
        viz.plot_outcome_roc(scores, [1, 0, 1])
    with pytest.raises(ValueError, match=r"scores\['PRM'\]\[1\] must be a finite number, got nan"):
        viz.plot_outcome_roc({**scores, "PRM": [1.0, float("nan"), 0.0, 1.0]}, [1, 0, 0, 1])
    with pytest.raises(ValueError, match="scores is empty"):
        viz.plot_outcome_roc({}, [1, 0])  # was the diagonal alone
    with pytest.raises(ValueError, match="histogram 'PRM' is none of the scores' names"):
        viz.plot_outcome_roc(scores, [1, 0, 0, 1], histogram="PRM")
    assert len(viz.plot_outcome_roc({"ORM": np.array(scores["ORM"])}, np.array([1, 0, 0, 1])).axes) == 1


def test_heatmap_refuses_what_it_would_misdraw():
    nan_row = [REWARDS[0], [1.5, float("nan")], REWARDS[2]]
    with pytest.raises(ValueError, match=r"step_rewards\[1\]\[1\] must be a finite number, got nan"):
        viz.plot_step_reward_heatmap(nan_row, LABELS)  # was drawn blank, as if solution 2 had one step
    with pytest.raises(ValueError, match=r"step_labels\[0\]\[1\] must be a bool or 0/1, got None"):
        viz.plot_step_reward_heatmap(REWARDS, [[True, None, False, False]] + LABELS[1:])
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        viz.plot_step_reward_heatmap(REWARDS, threshold=float("nan"))
    assert viz.plot_step_reward_heatmap([np.array([0.5, -0.5]), []], [np.array([True, False]), []])


def test_chosen_vs_rejected_refuses_what_it_would_misdraw():
    chosen, rejected = [[1.0, 0.5], [0.2]], [[0.1, -1.0], [-0.5, 0.3]]
    with pytest.raises(ValueError, match=r"rejected_rewards\[0\]\[1\] must be a finite number, got nan"):
        viz.plot_chosen_vs_rejected(chosen, [[0.1, float("nan")], [-0.5, 0.3]])  # was left out of the mean
    with pytest.raises(ValueError, match=r"chosen_rewards\[1\]\[0\] must be a finite number, got inf"):
        viz.plot_chosen_vs_rejected([[1.0, 0.5], [float("inf")]], rejected)
    with pytest.raises(ValueError, match=r"rejected_labels\[1\]\[0\] must be a bool or 0/1, got None"):
        viz.plot_chosen_vs_rejected(chosen, rejected, rejected_labels=[[True, False], [None, True]])
    assert viz.plot_chosen_vs_rejected([np.array([1.0])], [[0.5]], [[1]], [np.array([True])])


def test_chosen_vs_rejected_band_is_the_mean_plus_minus_one_sd():
    """The band's width was tested nowhere: a band of mean ± sd / 2 went unseen."""
    fig = viz.plot_chosen_vs_rejected([[1.0, 2.0], [3.0, 2.0]], [[0.0, 1.0], [-2.0, 1.0]])
    chosen_band, rejected_band = fig.axes[0].collections[:2]
    ys = chosen_band.get_paths()[0].vertices[:, 1]
    assert (ys.min(), ys.max()) == pytest.approx((1.0, 3.0))  # step 1: 2 ± 1
    ys = rejected_band.get_paths()[0].vertices[:, 1]
    assert (ys.min(), ys.max()) == pytest.approx((-2.0, 1.0))  # step 1: -1 ± 1, step 2: 1 ± 0


def test_training_curves_refuse_a_smoothing_factor_outside_0_1():
    history = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]
    for bad in (float("nan"), 1.0, 1.5, -0.5, True, "0.5"):  # NaN drew empty panels, 1 (or True) a flat line
        with pytest.raises(ValueError, match="plot_training_curves: smooth must be"):
            viz.plot_training_curves({"PRM": history}, smooth=bad)
    line = viz.plot_training_curves({"PRM": history}, smooth=0.5).axes[0].lines[0]
    assert line.get_ydata().tolist() == [1.0, 0.75]


def test_explorer_refuses_a_label_that_is_no_bool_and_verdicts_of_other_problems():
    with pytest.raises(ValueError, match=r"step_reward_explorer: verdicts\[0\]\[0\]\[1\] must be a bool or 0/1, "
                                         "got None"):
        viz.step_reward_explorer(["p"], [[["a", "b"]]], [[[0.5, 0.4]]], [[[True, None]]])  # None: a wrong step
    with pytest.raises(ValueError, match=r"verdicts\[0\]\[0\]\[0\] must be a bool or 0/1, got 0.5"):
        viz.step_reward_explorer(["p"], [[["a"]]], [[[0.5]]], [[{"step_labels": [0.5]}]])
    with pytest.raises(ValueError, match="step_reward_explorer: 1 verdict lists for 2 problems"):
        viz.step_reward_explorer(["p", "q"], [[["a"]], [["b"]]], [[[0.5]], [[0.4]]], [[[True]]])  # an IndexError
    with pytest.raises(ValueError, match="step_reward_explorer: 3 verdict lists for 2 problems"):
        viz.step_reward_explorer(["p", "q"], [[["a"]], [["b"]]], [[[0.5]], [[0.4]]], [[[True]], [[True]], [[True]]])


def test_before_after_bars_split_at_the_prms_own_delimiter():
    """The rewards are split at the PRM's delimiter (bestofn.score_candidates), the texts were at the default one:
    a task with its own (docs/own_task.md) had its three rewards refused against one step."""
    before, after = "# a = 1\n\n# b = 2\n\n# Answer: 3", "# a = 1\n\n# b = 3\n\n# Answer: 4"
    ticks, b, a = viz.before_after_bars([before, after], [[1.0, 2.0, 3.0], [1.0, -2.0, -3.0]], delimiter="\n\n#")
    assert [" ".join(t.split()) for t in ticks] == ["# a = 1 → # a = 1", "# b = 2 → # b = 3",
                                                    "# Answer: 3 → # Answer: 4"] and a == [1.0, -2.0, -3.0]
    with pytest.raises(ValueError, match=r"rewards \(before\) has 3 rewards for 1 steps"):
        viz.before_after_bars([before, after], [[1.0, 2.0, 3.0], [1.0, -2.0, -3.0]])


def test_before_after_bars_refuse_rewards_of_another_step_count():
    before = "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 12"
    after = "Step 1: 5 + 7 = 12\n\nStep 2: 12 - 1 = 11\n\nStep 3: 11 * 2 = 22"
    with pytest.raises(ValueError, match=r"before_after_bars: rewards \(before\) has 1 rewards for 2 steps"):
        viz.before_after_bars([before, after], [[1.0], [1.0, 2.0, 3.0]])  # step 2's bar was silently blank
    with pytest.raises(ValueError, match=r"rewards \(after\) has 4 rewards for 3 steps"):
        viz.before_after_bars([before, after], [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])  # bars slid off their steps
    assert len(viz.before_after_bars([before, after], [[], [1.0, 2.0, 3.0]])[1]) == 3  # [] = unscored: no bars


def test_plot_before_after_refuses_a_label_that_is_no_bool_and_one_str_of_steps():
    with pytest.raises(ValueError, match=r"plot_before_after: labels\[0\] must be a bool or 0/1, got None"):
        viz.plot_before_after(["a", "b"], [1.0, 2.0], [1.0, 2.0], labels=[None, True])  # was drawn as ✗
    with pytest.raises(ValueError, match="plot_before_after: steps: expected a list of step texts, got one str"):
        viz.plot_before_after("ab", [1.0, 2.0], [1.0, 2.0])  # was one tick per character
    assert viz.plot_before_after(("a", "b"), [1.0, 2.0], [1.0, 2.0], labels=np.array([1, 0]))


def test_save_to_writes_the_format_its_extension_names_and_refuses_a_folder_or_no_extension(tmp_path):
    """save_to="heat.pdf" (or .svg, .jpg) wrote PNG bytes under that name, which a PDF viewer or LaTeX then could not
    open; a path without an extension got a PNG; an existing folder raised an IsADirectoryError naming a temporary
    file."""
    starts = {"heat.pdf": b"%PDF", "heat.svg": b"<?xml", "heat.jpg": b"\xff\xd8\xff", "heat.PNG": b"\x89PNG"}
    for name, start in starts.items():
        viz.plot_step_reward_heatmap(REWARDS, LABELS, save_to=tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(start), name
    assert b"<svg" in (tmp_path / "heat.svg").read_bytes()
    for bad, message in ((tmp_path / "noext", "has no extension"), (tmp_path / "heat.docx", "the extension .docx"),
                         (tmp_path, "is a folder")):
        with pytest.raises(ValueError, match=f"save_figure: {bad}.* {message}"):
            viz.plot_best_of_n({"prm": {1: 0.3, 2: 0.5}}, save_to=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(starts)  # nothing else written, no temporary file
    fig = viz.plot_best_of_n({"prm": {1: 0.3, 2: 0.5}})
    assert viz.save_figure(fig, tmp_path / "sub" / "bon.pdf").read_bytes().startswith(b"%PDF")
    box = viz.step_reward_explorer(["p"], [[["a"]]], [[[0.5]]])
    for bad in (tmp_path / "explorer.pdf", tmp_path):  # its picture is PNG bytes
        with pytest.raises(ValueError, match=f"save_explorer_png: {bad}"):
            viz.save_explorer_png(box, bad)


def test_best_of_n_refuses_a_nan_a_percentage_and_a_method_without_points():
    """A NaN point vanished from its line, accuracies in percent drew an "accuracy" axis from 30 to 50, and a method
    without points got a legend entry and no line: all without a word."""
    cases = (({"prm": {1: float("nan"), 2: 0.5}}, r"the accuracy of 'prm' at N=1 must be a finite number"),
             ({"prm": {1: 30, 2: 50}}, r"the accuracy of 'prm' at N=1 is 30.0, outside \[0, 1\]"),
             ({"1": {"orm": 0.3}, "4": {"orm": 1.2}}, r"the accuracy of 'orm' at N=4 is 1.2, outside"),
             ({"prm": {}}, "method 'prm' has no points"),
             ({"prm": {1: None}}, "the accuracy of 'prm' at N=1 must be a finite number, got None"))
    for results, message in cases:
        with pytest.raises(ValueError, match=f"plot_best_of_n: {message}"):
            viz.plot_best_of_n(results)
    assert viz.plot_best_of_n({"prm": {1: 0.0, 2: 1}}).axes[0].lines[0].get_ydata().tolist() == [0.0, 1]


def test_heatmap_key_and_roc_title_say_whose_labels_and_which_solutions():
    """The heatmap's key said "checker: ..." for labels of any source, and the ROC's default title "held-out"."""
    keys = lambda fig: [t.get_text() for t in fig.legends[0].get_texts()]
    assert keys(viz.plot_step_reward_heatmap(REWARDS, LABELS)) == [
        "checker: the answer is out of reach from here", "checker: the first mistake"]  # the tutorial's text
    assert keys(viz.plot_step_reward_heatmap(REWARDS, LABELS, label_meaning="mistake", label_source="my labels")) == [
        "my labels: a mistake is made here", "my labels: the first mistake"]
    assert viz.label_key("reachable", "Monte-Carlo") == "Monte-Carlo: the answer is out of reach from here"
    with pytest.raises(ValueError, match="label_meaning must be one of"):
        viz.label_key("wrong")
    scores, labels = {"ORM": [0.5, -1.0, 2.0]}, [True, False, True]
    assert viz.plot_outcome_roc(scores, labels).axes[0].get_title() == "ROC on held-out solutions"
    titled = viz.plot_outcome_roc(scores, labels, solutions="my 3 solutions")
    assert titled.axes[0].get_title() == "ROC on my 3 solutions"


def test_the_notebooks_heatmaps_name_the_tasks_labels_in_their_key():
    """Notebooks 02 and 05 keyed their heatmaps' × as "checker: ..." on every profile; on the GPU profiles (and the
    smoke profile that tests their path) the × are notebook 01's Monte-Carlo estimates. Each call names the task's."""
    import ast
    from pathlib import Path

    import nbformat

    from stepdpo_lite.tutorial import tasks

    calls = []
    for name in ("02_process_reward_model", "05_step_reward_visualisation"):
        path = Path(__file__).resolve().parent.parent / "notebooks" / f"{name}.ipynb"
        for cell in (c for c in nbformat.read(path, 4).cells if c.cell_type == "code"):
            calls += [node for node in ast.walk(ast.parse(cell.source))
                      if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "plot_step_reward_heatmap"]
    assert len(calls) == 3
    assert [ast.unparse(k.value) for c in calls for k in c.keywords if k.arg == "label_source"] == [
        "tasks.get_task(profile).label_source"] * 3
    assert tasks.GSM8KTask.label_source.startswith("Monte-Carlo") and "checker" in tasks.ToyTask.label_source
    for task in (tasks.GSM8KTask, tasks.ToyTask):  # in two columns, such a key ran off both sides of the figure
        fig = viz.plot_step_reward_heatmap(REWARDS, LABELS, label_source=task.label_source, mark_predicted=True)
        fig.canvas.draw()
        key = fig.legends[0].get_window_extent()
        assert 0 <= key.x0 and key.x1 <= fig.bbox.x1, (task.label_source, key, fig.bbox)


def test_heatmap_refuses_more_rows_than_it_can_draw_legibly():
    """200 solutions were drawn at 7 px a row: their names and marks overprinted one another, without a word."""
    rows = [[1.0, -1.0]] * (viz.HEATMAP_MAX_ROWS + 1)
    with pytest.raises(ValueError, match=f"{viz.HEATMAP_MAX_ROWS + 1} solutions, but at most {viz.HEATMAP_MAX_ROWS} "
                                         r"rows fit legibly: pick some first, with "
                                         r"step_reward_summaries.heatmap_indices\(step_labels, n\)"):
        viz.plot_step_reward_heatmap(rows)
    assert len(viz.plot_step_reward_heatmap(rows[1:]).axes[0].get_yticklabels()) == viz.HEATMAP_MAX_ROWS


def test_heatmap_outlines_the_prms_own_first_error_beside_the_checkers():
    """Only the gold first error was outlined: where the PRM itself says a solution goes wrong had to be read off the
    colours against a non-linear bar."""
    outlines = lambda fig, color: sorted(tuple(np.round(p.get_xy(), 2)) for p in fig.axes[0].patches
                                         if isinstance(p, Rectangle) and to_hex(p.get_edgecolor()) == color)
    fig = viz.plot_step_reward_heatmap(REWARDS, LABELS, threshold=0.0, mark_predicted=True)
    assert outlines(fig, to_hex(viz.HIGHLIGHT)) == [(0.64, 1.64), (1.64, -0.36)]  # rows 3 and 1 (step 2, step 3)
    assert outlines(fig, "#000000") == [(0.5, 1.5), (1.5, -0.5)]  # the gold ones, as before
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "PRM: first step below the threshold"
    later = viz.plot_step_reward_heatmap(REWARDS, LABELS, threshold=-1.8, mark_predicted=True)  # log-odds
    assert outlines(later, to_hex(viz.HIGHLIGHT)) == [(2.64, -0.36), (4.64, 1.64)]
    assert outlines(viz.plot_step_reward_heatmap(REWARDS, LABELS), to_hex(viz.HIGHLIGHT)) == []  # off by default


# ----------------------------------------------------------------------------- drawing into the caller's Axes


def _beam_result():
    """A search of two steps: the first step, then two second steps, one of them the chosen answer."""
    from stepdpo_lite.tutorial import search

    nodes = [search.Node(0, None, 0, "Step 1: 1 + 1 = 2", 5, "delimiter", False, [1.0], kept=True),
             search.Node(1, 0, 1, "Step 2: 2 + 2 = 4\n\nAnswer: 4", 5, "eos", True, [1.0, 2.0], kept=True, ended="eos"),
             search.Node(2, 0, 1, "Step 2: 2 + 2 = 5", 5, "delimiter", False, [1.0, -1.0], pruned_at=1)]
    return search.SearchResult(0, nodes, chosen=1, tokens=15, n_beams=1, expansions=2)


PRETRAINING_LOG = {"curve": [{"rows_seen": 0, "step_auroc": 0.7, "outcome_auroc": 0.6},
                             {"rows_seen": 40_000, "step_auroc": 0.9, "first_error_auroc": 0.85}],
                   "config": {"outcome_fraction": 0.5},  # a short stage after a long one, as the tutorial's
                   "earlier_stages": [{"curve": [{"rows_seen": 0, "step_auroc": 0.5},
                                                 {"rows_seen": 2_000_000, "step_auroc": 0.7}], "config": {}}]}
BUDGET_TABLE = {str(b): {"majority": 0.3, "beam_prm": 0.95, "token_budget": 70.0 * b,
                         "tokens": {"majority": 70.0 * b, "beam_prm": 69.0 * b}} for b in (4, 16)}
# Every one-Axes picture with small inputs, most of them its own tests': (function, args, kwargs, the size of the
# figure it makes by itself, the colour bars it adds)
ONE_AXES_PICTURES = [
    ("plot_step_reward_heatmap", (REWARDS, LABELS), dict(mark_predicted=True), (6.2, 2.54), 1),
    ("plot_before_after", (["Step 1: a", "Step 2: b"], [1.0, -1.0], [0.5, 0.5]), dict(labels=[True, False]),
     (6.0, 4.2), 0),
    ("plot_verifier_pretraining", (PRETRAINING_LOG,), {}, (8.0, 4.6), 0),
    ("plot_greedy_vs_sampled", ({"base": (0.5, 0.3), "dpo": (0.8, 0.4)},), {}, (5.5, 3.8), 0),
    ("plot_best_of_n", ({"prm_min": {1: 0.3, 4: 0.5}, "majority": {1: 0.3, 4: 0.4}},), {}, (6.4, 4.2), 0),
    ("plot_paired_differences", ({"2": {"prm": {"orm": {"difference": -0.02, "low": -0.03, "high": -0.01}}}},), {},
     (3.7, 3.4), 0),  # one small panel per pair, in a figure of its own
    ("plot_first_error_positions", ([0, 1, 1, 3, -1],), {}, (5.0, 3.6), 0),
    ("plot_accuracy_by_length", ([2, 3, 3, 5, 5, 5], [1, 0, 1, 1, 0, 0]), {}, (5.0, 3.6), 0),
    ("plot_label_agreement", ([[True, False], [True]], [[True, True], [False]]), {}, (4.4, 3.8), 0),
    ("plot_outcome_roc", ({"ORM": [2.0, -1.0, 0.5, 0.7]}, [1, 0, 0, 1]), {}, (4.8, 4.0), 0),
    ("plot_test_time_compute", (BUDGET_TABLE,), {}, (6.8, 4.2), 0),
    ("plot_beam_tree", (_beam_result(),), dict(labels={0: True, 1: True, 2: False}), (7.66, 3.0), 1),
]


def _drawn(ax) -> list:
    return [*ax.lines, *ax.patches, *ax.images, *ax.collections, *ax.texts, *ax.child_axes]


@pytest.mark.parametrize("name, args, kwargs, size, colorbars", ONE_AXES_PICTURES,
                         ids=[case[0] for case in ONE_AXES_PICTURES])
def test_a_one_axes_picture_draws_into_the_callers_axes_and_leaves_the_figure_to_them(tmp_path, name, args, kwargs,
                                                                                        size, colorbars):
    """No picture took an ``ax``: one could not be put beside another in a figure of one's own."""
    import matplotlib.pyplot as plt
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    plot = getattr(viz, name)
    own = plot(*args, **kwargs)  # without ax: a figure of its own, of today's size, closed in pyplot
    assert tuple(own.get_size_inches()) == pytest.approx(size)
    assert isinstance(own.get_layout_engine(), ConstrainedLayoutEngine) and own.number not in plt.get_fignums()
    # the pairs of plot_paired_differences are named in their panels' titles; in one Axes, by a key
    has_key = bool(own.legends) or own.axes[0].get_legend() is not None or name == "plot_paired_differences"

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    try:
        open_figures, right_box = plt.get_fignums(), right.get_position().bounds
        assert plot(*args, **kwargs, ax=left, save_to=tmp_path / "mine.png") is fig
        assert plt.get_fignums() == open_figures  # no figure opened, the caller's not closed
        assert tuple(fig.get_size_inches()) == (9, 3) and fig.get_layout_engine() is None
        assert _drawn(left) and not _drawn(right) and right.get_legend() is None and not right.get_title()
        assert len(fig.axes) == 2 + colorbars and right.get_position().bounds == right_box  # a bar beside left only
        assert not fig.legends and (left.get_legend() is not None) == has_key  # the key is the Axes' own
        assert assert_png(tmp_path / "mine.png", min_bytes=1_000) == (9 * viz.DPI, 3 * viz.DPI)  # the whole figure
        for wrong in (fig, np.array([left, right]), "left"):
            with pytest.raises(ValueError, match=f"{name}: ax must be one matplotlib Axes"):
                plot(*args, **kwargs, ax=wrong)
    finally:
        plt.close(fig)


def test_plot_outcome_roc_draws_its_histogram_only_in_a_figure_of_its_own():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="plot_outcome_roc: histogram needs a second Axes"):
            viz.plot_outcome_roc({"ORM": [2.0, -1.0]}, [1, 0], histogram="ORM", ax=ax)
        assert not _drawn(ax)
    finally:
        plt.close(fig)


def test_heatmap_texts_tell_apart_probabilities_near_a_threshold_far_from_one_half():
    """A threshold chosen on validation can be σ(-5.94) = 0.0026: the key and the cells on both sides of it read 0.00
    in two decimals (trial T2, finding 7)."""
    import matplotlib.pyplot as plt
    fig = viz.plot_step_reward_heatmap([[-7.0, -5.0, 0.0], [9.0, -6.5, 3.0]], threshold=-5.94)
    cells = sorted(t.get_text() for t in fig.axes[0].texts)
    assert cells == sorted(["0.0009", "0.007", "0.50", "1−0.0001", "0.002", "0.95"])
    assert "thr. 0.003" in [t.get_text() for t in fig.axes[1].get_yticklabels()]
    plt.close(fig)


def test_every_key_and_line_that_prints_a_threshold_keeps_a_significant_digit():
    """The calibration plot's key, the explorer's picture and its text printed σ(-6) = 0.0025 as "0.00"."""
    import matplotlib.pyplot as plt
    labels = [[True, False, False], [True, True, True]]
    rewards = [[2.0, -7.0, -5.0], [3.0, 1.0, -6.5]]
    fig = viz.plot_step_calibration(rewards, labels, threshold=-6.0)
    assert "threshold P = 0.002" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    explorer = viz.step_reward_explorer(["p"], [[["a", "b", "c"], ["d", "e", "f"]]], [rewards], [labels],
                                        threshold=-6.0)
    assert "&lt; 0.002 = σ(threshold)" in explorer.html.value
    picture = viz._explorer_figure(rewards, labels, -6.0)
    assert "threshold (0.002)" in [t.get_text() for t in picture.legends[0].get_texts()]
    plt.close(picture)


def test_best_of_n_refuses_an_n_it_would_misdraw_and_results_of_another_shape():
    """int() cut N = 1.5 to 1, over the real N = 1; 0 and -1 fell off the log2 axis; "one" was a bare int() error,
    a list row or list results an AttributeError."""
    for key in (1.5, 0, -1, "0", "one"):
        with pytest.raises(ValueError, match=r"plot_best_of_n: the N of method 'prm' must be an int >= 1, got"):
            viz.plot_best_of_n({"prm": {1: 0.4, key: 0.5, 2: 0.6}})
    with pytest.raises(ValueError, match=r"plot_best_of_n: the N of method 'prm' must be an int >= 1, got 1.5"):
        viz.plot_best_of_n({1: {"prm": 0.4}, 1.5: {"prm": 0.5}})  # the {N: {method: accuracy}} layout too
    with pytest.raises(ValueError, match=r"plot_best_of_n: method 'prm' has N=1 twice"):
        viz.plot_best_of_n({"prm": {1: 0.4, "1": 0.5}})
    with pytest.raises(ValueError, match=r"plot_best_of_n: results\['prm'\] must be a dict .* got list"):
        viz.plot_best_of_n({"prm": [0.5, 0.6]})
    with pytest.raises(ValueError, match=r"plot_best_of_n: results must be a dict, .* got list"):
        viz.plot_best_of_n([0.5, 0.6])
    with pytest.raises(ValueError, match=r"plot_best_of_n: results mixes N keys and method names"):
        viz.plot_best_of_n({"1": {"prm": 0.5}, "prm": {1: 0.6}})
    lines = viz.plot_best_of_n({"prm": {"1": 0.4, 2: 0.6}}).axes[0].lines  # JSON's str keys and ints alike
    assert list(lines[0].get_xdata()) == [1, 2]


def test_step_reward_explorer_checks_every_problem_up_front_by_name():
    """A NaN in problem 2 failed only when it was picked, inside the widget's observer; None rewards (an unscored
    solution) and a None solution were TypeErrors."""
    solutions, rewards = [["Step 1: a\n\nStep 2: b"], ["Step 1: c"]], [[[1.0, -1.0]], [[0.5]]]
    cases = [([[[1.0, -1.0]], [[float("nan")]]], solutions,
              r"step_reward_explorer: problem 1, solution 0, step 0 must be a finite number, got nan"),
             ([[[1.0, -1.0]], [None]], solutions,
              r"step_reward_explorer: step_rewards\[1\]\[0\] \(problem 1, solution 0\) is None, an unscored solution"),
             (rewards, [["Step 1: a\n\nStep 2: b"], [None]],
              r"step_reward_explorer: solutions\[1\]\[0\] \(problem 1, solution 0\): expected a list of steps")]
    for bad_rewards, bad_solutions, message in cases:
        with pytest.raises(ValueError, match=message):
            viz.step_reward_explorer(["p1", "p2"], bad_solutions, bad_rewards)
    box = viz.step_reward_explorer(["p1", "p2"], solutions, rewards)
    box.picker.value = 1
    assert "Step 1: c" in box.html.value


def test_roc_and_label_agreement_refuse_arguments_of_another_shape():
    with pytest.raises(ValueError, match=r"plot_outcome_roc: scores must be a dict of name -> one score per solution"):
        viz.plot_outcome_roc([0.1, 0.2], [True, False])  # was an AttributeError
    with pytest.raises(ValueError, match=r"plot_outcome_roc: labels is empty"):
        viz.plot_outcome_roc({"orm": []}, [])  # was sklearn's broadcast error
    with pytest.raises(ValueError, match=r"plot_label_agreement: names must be two strs .* got \('x',\)"):
        viz.plot_label_agreement([[True]], [[True]], names=("x",))  # was an IndexError


def test_step_reward_explorer_shows_a_solution_given_as_a_generator_of_steps():
    """The explorer checked a step list (list_of) and listed it again to count its steps: a generator's steps were
    used up by the check, so a solution given that way was refused as 2 rewards for 0 steps."""
    box = viz.step_reward_explorer(["p"], [[(s for s in ("Step 1: a", "Step 2: b"))]], [[[0.5, -1.0]]])
    assert "Step 1: a" in box.html.value and "Step 2: b" in box.html.value


def test_greedy_and_sampled_pairs_only_figures_of_the_same_problems():
    """Notebook 06's greedy accuracies were paired with notebook 04's sampled ones whatever problems each measured
    on: with 06's N_TEST_PROBLEMS set apart from 04's, a policy's two bars were of two problem sets. Then notebook
    04's own greedy and sampled figures (one problem set), with a warning naming the user's line."""
    def policy(accuracy, sampled, n=150, digest="aaaa"):
        return {"accuracy": accuracy, "sampled_accuracy": sampled, "n_test_problems": n, "test_problems_digest": digest}

    metrics = {"policy": {"base": policy(0.5, 0.3), "dpo": policy(0.7, 0.35), "nll_only": policy(0.8, 0.4)},
               "evaluation": {"n_test_problems": 50, "test_problems_digest": "bbbb",
                              "policy_accuracy": {"base": 0.6, "dpo": 0.9}}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        accuracies, _ = viz.greedy_and_sampled(metrics)
    assert accuracies == {"base": (0.5, 0.3), "dpo": (0.7, 0.35), "nll_only": (0.8, 0.4)}
    assert [(str(w.message), w.filename) for w in caught] == [(
        "greedy_and_sampled: notebook 06 measured the greedy accuracies on other test problems than notebook 04 "
        "measured the sampled accuracy of 'base' on (problem counts 50 and 150, or another draw): the bars are "
        "notebook 04's greedy and sampled figures, both of its problems", __file__)]
    metrics["evaluation"].update(n_test_problems=150, test_problems_digest="aaaa")  # 04's problems: 06's figures
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert viz.greedy_and_sampled(metrics)[0] == {"base": (0.6, 0.3), "dpo": (0.9, 0.35)}


def test_greedy_and_sampled_take_the_same_count_of_other_problems_as_other_problems():
    """The test above's two problem sets differ in count too: comparing the counts only, not the digests, went
    unseen."""
    def policy(accuracy, sampled):
        return {"accuracy": accuracy, "sampled_accuracy": sampled, "n_test_problems": 150, "test_problems_digest": "a"}

    metrics = {"policy": {"base": policy(0.5, 0.3)},
               "evaluation": {"n_test_problems": 150, "test_problems_digest": "b", "policy_accuracy": {"base": 0.6}}}
    with pytest.warns(UserWarning, match="the bars are notebook 04's greedy and sampled figures"):
        assert viz.greedy_and_sampled(metrics) == ({"base": (0.5, 0.3)}, 150)  # another draw of 150 problems


def test_greedy_and_sampled_counts_the_problems_its_bars_are_of():
    """Notebook 06 titled the plot with its own problem count (n_test), also when the bars were notebook 04's own
    figures, of 04's problems (06's N_TEST_PROBLEMS set apart from 04's): the title named 50 problems for bars of
    150. Now it gives the count of the problems the bars are of."""
    def policy(accuracy, sampled, n=150, digest="aaaa"):
        return {"accuracy": accuracy, "sampled_accuracy": sampled, "n_test_problems": n, "test_problems_digest": digest}

    metrics = {"policy": {"base": policy(0.5, 0.3), "dpo": policy(0.7, 0.35)},
               "evaluation": {"n_test_problems": 50, "test_problems_digest": "bbbb",
                              "policy_accuracy": {"base": 0.6, "dpo": 0.9}}}
    with pytest.warns(UserWarning, match="the bars are notebook 04's greedy and sampled figures"):
        assert viz.greedy_and_sampled(metrics) == ({"base": (0.5, 0.3), "dpo": (0.7, 0.35)}, 150)
    metrics["evaluation"].update(n_test_problems=150, test_problems_digest="aaaa")  # 06's figures, of 04's problems
    assert viz.greedy_and_sampled(metrics) == ({"base": (0.6, 0.3), "dpo": (0.9, 0.35)}, 150)
    metrics["policy"]["dpo"].update(n_test_problems=None)  # 04 alone (06 not run), its records of two counts
    del metrics["evaluation"]
    assert viz.greedy_and_sampled(metrics) == ({"base": (0.5, 0.3), "dpo": (0.7, 0.35)}, None)


def test_greedy_and_sampled_give_no_problem_count_for_bars_of_two_counts_or_of_none():
    """A title naming one count of bars of two (150 and 100 problems) would misname half of them: None (the test
    above's case of 150 and none passed by set order whichever count was given)."""
    def policy(accuracy, sampled, n):
        return {"accuracy": accuracy, "sampled_accuracy": sampled, "n_test_problems": n, "test_problems_digest": "a"}

    metrics = {"policy": {"base": policy(0.5, 0.3, 150), "dpo": policy(0.7, 0.35, 100)}}
    assert viz.greedy_and_sampled(metrics) == ({"base": (0.5, 0.3), "dpo": (0.7, 0.35)}, None)
    assert viz.greedy_and_sampled({"policy": {}}) == ({}, None)  # no policy with both figures: no bars, no count


def test_step_body_drops_the_step_number_and_keeps_the_answer_line():
    """The toy world's and GSM8K's "Step k:" format, read only by the tutorial's pictures and texts: it lives in
    tutorial.display_names (it was steps.step_body, in the core package)."""
    assert step_body("\n  Step 12: 3 + 4 = 7\nAnswer: 7") == "3 + 4 = 7\nAnswer: 7"
    assert step_body("3 + 4 = 7") == "3 + 4 = 7"  # no number to drop
    assert step_body("Step 3: as in Step 1: 3 + 4 = 7") == "as in Step 1: 3 + 4 = 7"  # only the step's own number
    assert viz._tick_text(["Step 1: 2 + 3 = 5", "\n\nStep 2: 5 * 4 = 20"], [True, False], 1) == "✗ 5 * 4 = 20"


def test_plots_refuse_bad_records_by_entry_and_field():
    """Each was a TypeError, KeyError, AttributeError or IndexError from deep inside, or drew a hole without a word."""
    nan = float("nan")
    bad = [  # (plot, args, what the ValueError says)
        ("plot_before_after", (["a", "b"], [0.1, None], [0.1, 0.2]), r"rewards_before\[1\] must be a finite number"),
        ("plot_before_after", (["a", "b"], [0.1, 0.2], [0.1, "0.2"]), r"rewards_after\[1\] must be a finite number"),
        ("plot_before_after", (["a"], 0.1, [0.2]), "rewards_before: expected a list"),
        ("plot_before_after", ([], [], []), "steps is empty"),
        ("plot_verifier_pretraining", ([{"loss": 1.0, "step": 1}],), "training_log must be the dict"),
        ("plot_verifier_pretraining", ({"config": {}},), "stage 1: 'curve' must be a non-empty list"),
        ("plot_verifier_pretraining", ({"curve": []},), "stage 1: 'curve' must be a non-empty list"),
        ("plot_verifier_pretraining", ({"curve": [{"step_auroc": 0.6}]},), r"stage 1: curve\[0\] has no number"),
        ("plot_reward_model_comparison", ({},), "figures must be a non-empty dict"),
        ("plot_reward_model_comparison", ({"zero-shot": {"f1": 0.4, "step_auroc": 0.6}},),
         r"figures\['zero-shot'\] must be a dict of variant"),
        ("plot_reward_model_comparison", ({"base": {"zero-shot": {"f1": 0.5}}},),
         r"figures\['base'\]\['zero-shot'\] has no 'step_auroc'"),
        ("plot_reward_model_comparison", ({"base": {"zero-shot": {"f1": None, "step_auroc": 0.6}}},),
         r"figures\['base'\]\['zero-shot'\]\['f1'\] must be a finite number, got None"),
        ("plot_paired_differences", ({"2": {"prm": {"orm": {"difference": 0.1, "high": 0.2}}}},),
         r"diffs\['2'\]\['prm'\]\['orm'\] must be a dict with 'difference', 'low' and 'high'"),
        ("plot_paired_differences", ({"2": {"prm": {"orm": {"difference": nan, "low": 0.0, "high": 0.2}}}},),
         r"diffs\['2'\]\['prm'\]\['orm'\]\['difference'\] must be a finite number, got nan"),
        ("plot_paired_differences", ({"two": {"prm": {"orm": {"difference": 0.1, "low": 0.0, "high": 0.2}}}},),
         "each N must be an int or its decimal str, got 'two'"),
        ("plot_beam_tree", ([],), "result must be one problem's search.SearchResult, got list"),
        ("plot_onpolicy_rounds", ({"round": 1},), "records: expected a list of round records"),
        ("plot_onpolicy_rounds", ([{"dpo": {"accuracy": 0.5}}],), r"records\[0\] must be a dict with an int 'round'"),
    ]
    for name, args, match in bad:
        with pytest.raises(ValueError, match=f"{name}: {match}"):
            getattr(viz, name)(*args)
    matplotlib.pyplot.close("all")
    # still drawn: before_after_bars' NaN padding (no bar), one key given as a str
    viz.plot_before_after(["a", "b"], [0.1, nan], [0.1, 0.2])
    viz.plot_reward_model_comparison({"base": {"zero-shot": {"f1": 0.4}}}, keys="f1")
    matplotlib.pyplot.close("all")



def test_heatmap_numbers_steps_and_solutions_from_one_and_takes_its_title():
    fig = viz.plot_step_reward_heatmap(REWARDS, title="my title")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5", "6"]  # step 1 is the first
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2", "3"]  # no row_labels: solution 1 first
    assert ax.get_title() == "my title"
    assert viz.plot_step_reward_heatmap(REWARDS).axes[0].get_title() == "Per-step rewards"


def test_heatmap_outlines_a_first_error_and_a_predicted_one_at_step_1():
    """A first error at step 1 (index 0) is an error like any other: outlined, gold and predicted."""
    fig = viz.plot_step_reward_heatmap([[-1.0, 2.0], [1.0, 2.0]], [[False, True], [True, True]], mark_predicted=True)
    outlines = sorted((to_hex(p.get_edgecolor()), tuple(np.round(p.get_xy(), 2))) for p in fig.axes[0].patches
                      if isinstance(p, Rectangle))
    assert outlines == [("#000000", (-0.5, -0.5)), (to_hex(viz.HIGHLIGHT), (-0.36, -0.36))]


def test_heatmap_writes_p_in_every_cell_up_to_160_cells_and_in_none_past():
    assert len(viz.plot_step_reward_heatmap(REWARDS).axes[0].texts) == sum(len(r) for r in REWARDS)  # 3 x 6 cells
    assert len(viz.plot_step_reward_heatmap([[0.5] * 16] * 10).axes[0].texts) == 160
    assert not viz.plot_step_reward_heatmap([[0.5] * 23] * 7).axes[0].texts  # 161 cells: too small to read


def test_chosen_vs_rejected_dots_each_sides_steps_by_its_own_labels():
    """With labels for one side only, that side's single steps are dotted in (o right, x wrong), the other's not."""
    from matplotlib.collections import PathCollection

    chosen, rejected = [[1.0, 2.0], [1.5]], [[0.5, -1.0, -2.0], [0.2, -0.3]]
    rejected_labels = [[True, False, False], [True, False]]
    fig = viz.plot_chosen_vs_rejected(chosen, rejected, rejected_labels=rejected_labels)
    dots = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    points = sorted(tuple(np.round(xy, 2)) for c in dots for xy in c.get_offsets())
    assert points == sorted([(1.1, 0.5), (2.1, -1.0), (3.1, -2.0), (1.1, 0.2), (2.1, -0.3)])  # rejected only
    assert [len(c.get_offsets()) for c in dots] == [2, 3]  # 2 right (o), 3 wrong (x)


def test_chosen_vs_rejected_draws_means_at_step_positions_from_one_and_counts_every_pair():
    chosen, rejected = [[1.0, 2.0], [3.0, 2.0], [1.0], [2.0]], [[0.0, 1.0], [-2.0, 1.0], [0.5], [0.5]]
    fig = viz.plot_chosen_vs_rejected(chosen, rejected)
    top = fig.axes[0]
    assert [list(line.get_xdata()) for line in top.lines[:2]] == [[1, 2], [1, 2]]  # step 1 at x = 1
    assert list(top.lines[0].get_ydata()) == pytest.approx([1.75, 2.0])
    assert top.get_title() == "Chosen vs rejected (4 pairs)"  # every pair, not the three drawn below
    assert [ax.get_title() for ax in fig.axes[1:]] == ["pair 1", "pair 2", "pair 3"]


def test_before_after_numbers_steps_from_one_and_titles_before_vs_after():
    fig = viz.plot_before_after(["a", "b"], [1.0, 2.0], [0.5, -0.5], names=("DPO", "Stepwise DPO"))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1. a", "2. b"]
    assert ax.get_title() == "Step rewards DPO vs Stepwise DPO"


def test_label_agreement_puts_gold_in_rows_and_predicted_in_columns():
    """The tests' other confusion matrix is symmetric: rows and columns swapped went unseen."""
    fig = viz.plot_label_agreement([True, True, False], [True, False, False])  # one step the predictor missed
    assert fig.axes[0].images[0].get_array().tolist() == [[1, 0], [1, 1]]  # gold wrong, predicted correct: row 2
    assert fig.axes[0].get_title() == "Agreement 66.7% of 3 steps"


def test_explorer_picture_colours_bars_by_the_checker_and_names_steps_from_one():
    fig = viz._explorer_figure([[2.0, -3.0, 1.0]], [[True, False, True]], 0.0)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_alpha() is None or p.get_alpha() == 1]
    assert [to_hex(p.get_facecolor()) for p in bars] == [viz.CORRECT, viz.WRONG, viz.CORRECT]
    assert ax.get_title(loc="left") == "solution 1: predicted first error step 2 · gold: step 2"
    assert viz.step_reward_explorer(["p"], [[["a"]]], [[[0.5]]], threshold=30.0).threshold.value == 30.0  # the limit


def test_outcome_roc_histograms_the_right_and_the_wrong_solutions_apart():
    labels = [True, False, True, False, True]
    fig = viz.plot_outcome_roc({"ORM": [2.0, -1.0, 0.5, 0.7, 1.0]}, labels, histogram="ORM")
    bars = fig.axes[1].patches
    assert sum(p.get_height() for p in bars[:20]) == 3 and sum(p.get_height() for p in bars[20:]) == 2  # right, wrong
    assert max(p.get_x() for p in bars[20:] if p.get_height()) < sigmoid(0.8)  # the wrong ones: σ(-1), σ(0.7)


def test_onpolicy_rounds_and_reward_model_comparison_draw_their_lines_where_they_say():
    records = [{"round": 1, "dpo": {"accuracy": 0.5, "sampled_accuracy": 0.3},
                "stepwise_dpo_minus": {"dpo": {"accuracy": {"difference": 0.02, "low": -0.01, "high": 0.05}}}}]
    ax = viz.plot_onpolicy_rounds(records, methods=("dpo",)).axes[-1]
    (goal,) = [line for line in ax.lines if line.get_label() == "the goal: +3 points"]
    assert list(goal.get_ydata()) == [3, 3]
    figures = {"base": {"zero-shot": {"step_auroc": 0.9, "f1": 0.5}}}
    ax = viz.plot_reward_model_comparison(figures, baseline={"step_auroc": 0.735}).axes[0]
    (line,) = [line for line in ax.lines if line.get_label() == "position-only baseline"]
    assert list(line.get_ydata()) == [0.735, 0.735]


def test_informative_differences_keep_an_n_where_only_some_differences_are_zero():
    zero, gap = {"difference": 0.0, "low": 0.0, "high": 0.0}, {"difference": 0.1, "low": 0.05, "high": 0.15}
    d = {"1": {"prm": {"orm": zero}, "orm": {"majority": zero}}, "4": {"prm": {"orm": zero}, "orm": {"majority": gap}}}
    assert list(viz.informative_differences(d)) == ["4"]  # ORM − majority vote measured a gap at N = 4
