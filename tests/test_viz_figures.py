"""What the tutorial's figures of notebooks 02 and 04-07 show: per-run scales, one panel per pair, marks that can be
seen, readable names, the reward colour scale, and a one-line text form of the explorer."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from stepdpo_lite.rewards import sigmoid  # noqa: E402
from stepdpo_lite.tutorial import search, viz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ZERO = {"difference": 0.0, "low": 0.0, "high": 0.0}


def _history(level):
    return [{"step": s, "loss": level / s, "rewards/margins": 0.1 * s} for s in range(1, 6)]


def test_training_curves_give_a_run_its_own_loss_scale():
    """Notebook 05's loss panel shared one y-axis: Stepwise DPO's loss (~34) drew DPO's (~0.8) as a flat line."""
    runs = {"DPO": _history(0.8), "Stepwise DPO": _history(34.0)}
    shared = viz.plot_training_curves(runs, keys=("loss", "rewards/margins"))
    assert len(shared.axes) == 2
    fig = viz.plot_training_curves(runs, keys=("loss", "rewards/margins"), own_scale=("loss",))
    dpo, sdpo, margins = fig.axes
    assert [a.get_ylabel() for a in (dpo, sdpo)] == ["DPO", "Stepwise DPO"]
    assert [len(a.lines) for a in fig.axes] == [1, 1, 2]
    assert dpo.get_ylim()[1] < 1 < 30 < sdpo.get_ylim()[1]  # each on its own scale
    assert "own scale" in dpo.get_title() and margins.get_title() == "rewards/margins"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["DPO", "Stepwise DPO"]
    with pytest.raises(ValueError, match="own_scale names \\['grad_norm'\\], not among the keys"):
        viz.plot_training_curves(runs, keys=("loss",), own_scale=("grad_norm",))


def test_paired_differences_one_panel_per_pair_without_the_zero_n():
    """Six series on one axis overlapped; N = 1 (every method keeps the one candidate drawn) was 0 ± 0 for all."""
    d = {"1": {"prm_min": {"orm": ZERO}, "orm": {"majority": ZERO}},
         "2": {"prm_min": {"orm": {"difference": 0.1, "low": 0.05, "high": 0.15}},
               "orm": {"majority": {"difference": -0.02, "low": -0.05, "high": 0.01}}}}
    shown = viz.informative_differences(d)
    assert list(shown) == ["2"]
    # the caller filters (notebook 06 prints the same Ns it plots); the plot draws every N it is given
    assert [t.get_text() for t in viz.plot_paired_differences(d).axes[0].get_xticklabels()] == ["1", "2"]
    fig = viz.plot_paired_differences(shown)
    left, right = fig.axes
    assert [left.get_title(), right.get_title()] == ["PRM, min − ORM", "ORM − majority vote"]
    assert left.get_shared_y_axes().joined(left, right)
    assert [t.get_text() for t in left.get_xticklabels()] == ["2"]  # no N = 1
    assert all(any(list(line.get_ydata()) == [0, 0] for line in a.lines) for a in (left, right))  # in every panel
    assert fig.get_supylabel() == "A minus B, points (95% interval)"


def test_informative_differences_keep_an_n_whose_differences_are_zero_but_not_their_intervals():
    """Only 0 ± 0 says nothing (N = 1); a difference of 0 with an interval around it is a measured tie, and shown
    (dropping such an N from notebook 06's plot went unseen)."""
    tie = {"difference": 0.0, "low": -0.03, "high": 0.03}
    d = {"1": {"prm_min": {"orm": ZERO}}, "4": {"prm_min": {"orm": tie}},
         "8": {"prm_min": {"orm": {"difference": 0.05, "low": 0.01, "high": 0.09}}}}
    assert list(viz.informative_differences(d)) == ["4", "8"]


def test_best_of_n_names_methods_in_words_and_shows_a_line_on_another():
    results = {"prm_product": {1: 0.3, 4: 0.5, 16: 0.8}, "prm_min": {1: 0.3, 4: 0.45, 16: 0.7},
               "combined": {1: 0.3, 4: 0.5, 16: 0.7}, "majority": {1: 0.3, 4: 0.35, 16: 0.4}}
    ax = viz.plot_best_of_n(results).axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"PRM, product", "PRM, min", "combined (PRM + ORM)", "majority vote"}
    assert lines["combined (PRM + ORM)"].get_linestyle() == "--"  # on PRM min's and product's points
    assert lines["combined (PRM + ORM)"].get_markerfacecolor() == "none"
    assert lines["PRM, min"].get_linestyle() == "-"  # N = 1, which every method shares, does not count


def test_test_time_compute_names_methods_in_words_and_dashes_dvts_on_beam():
    table = {str(b): {"beam_prm": 0.9, "dvts_prm": 0.9, "best_of_n_prm": 0.5 + b / 100, "token_budget": 70.0 * b,
                      "tokens": {"beam_prm": 69.0 * b, "dvts_prm": 69.0 * b, "best_of_n_prm": 70.0 * b}}
             for b in (4, 16)}
    lines = {line.get_label(): line for line in viz.plot_test_time_compute(table).axes[0].lines
             if not line.get_label().startswith("_")}
    assert set(lines) == {"beam search, PRM", "DVTS, PRM", "best-of-N, PRM"}
    assert lines["DVTS, PRM"].get_linestyle() == "--" and lines["beam search, PRM"].get_linestyle() == "-"


def test_explorer_marks_the_predicted_first_error_visibly_and_reads_as_one_line():
    """An orange outline on a bar of P ≈ 0 could not be seen; a static copy showed the VBox's whole repr."""
    fig = viz._explorer_figure([[3.0, -6.0, 1.0]], [[True, False, True]], 0.0)
    ax = fig.axes[0]
    (marker,) = [line for line in ax.lines if line.get_marker() == "v"]
    assert list(marker.get_xdata()) == [2] and marker.get_ydata()[0] > sigmoid(-6.0) + 0.2
    assert any(abs(p.get_x() - 1.5) < 1e-9 for p in ax.patches if p.get_alpha() and p.get_alpha() < 0.5)
    box = viz.step_reward_explorer(["p", "q"], [[["a", "b"]], [["c"]]], [[[0.5, -0.4]], [[1.0]]])
    assert repr(box) == "<step reward explorer: 2 problem(s), threshold P = 0.50; live in a running notebook only>"
    assert box._repr_mimebundle_()["text/plain"] == repr(box)


def _extent(fig, artist):
    """Where ``artist`` is drawn, in pixels (a figure closed in pyplot has no canvas to draw on: it gets one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return artist.get_window_extent(canvas.get_renderer())


def test_verifier_pretraining_names_each_stage_along_its_line_in_its_own_words():
    """Stage names floated left of their lines, stacked, stage 1 below the 0.5 line. Then the key had one grey
    dotted entry per stage, all alike, stages 4 and 5 in the same words, and "stage 1" sat on the y-axis."""
    stage = lambda rows, **config: {"curve": [{"rows_seen": r, "step_auroc": 0.9} for r in rows], "config": config}
    log = {**stage([1000, 2000], outcome_fraction=0.5),
           "earlier_stages": [stage([100_000, 1_000_000]), stage([1000, 2000], outcome_fraction=0.5)]}
    ax = viz.plot_verifier_pretraining(log).axes[0]
    names = [t for t in ax.texts if t.get_text().startswith("stage")]
    assert [t.get_text() for t in names] == ["stage 1: process rows only", "stage 2: + outcome 50%",
                                             "stage 3: the mix of stage 2"]
    assert all(t.get_rotation() == 90 for t in names)
    assert [t.xy[0] for t in names] == pytest.approx([0, 1.0, 1.002])  # at the foot of each stage's line
    key = [t.get_text() for t in ax.get_legend().get_texts()]
    assert key == ["PRM step AUROC"]  # the curves only: no stage lines in the key

    shipped = json.loads((ROOT / "data" / "tiny-verifier" / "training_log.json").read_text())
    fig = viz.plot_verifier_pretraining(shipped)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.texts if t.get_text().startswith("stage")]
    assert names == ["stage 1: process rows only", "stage 2: + outcome 50%", "stage 3: + slips 20%, outcome 60%",
                     "stage 4: + policy samples 50%", "stage 5: outcome 80%, slips 40%"]  # the model card's stages
    key = [t.get_text() for t in ax.get_legend().get_texts()]
    assert key == ["PRM step AUROC", "PRM first-error AUROC", "ORM AUROC"] and len(set(key)) == len(key)
    assert all(h.get_linestyle() == "-" for h in ax.get_legend().legend_handles)  # no grey dotted entries
    first = [t for t in ax.texts if t.get_text().startswith("stage 1")][0]
    assert _extent(fig, first).x0 >= _extent(fig, ax.spines["left"]).x1 + 1  # beside the y-axis, not on it


def test_verifier_pretraining_draws_each_stage_after_the_rows_of_the_stages_before():
    """The test above places the stage names, not the curves: later stages drawn from 0 rows went unseen."""
    stage = lambda rows: {"curve": [{"rows_seen": r, "step_auroc": 0.9} for r in rows], "config": {}}
    log = {**stage([1000, 2000]), "earlier_stages": [stage([100_000, 1_000_000]), stage([1000, 2000])]}
    ax = viz.plot_verifier_pretraining(log).axes[0]
    curves = [list(line.get_xdata()) for line in ax.lines if line.get_marker() == "o"]
    assert curves == [pytest.approx(x) for x in ([0.1, 1.0], [1.001, 1.002], [1.003, 1.004])]


def test_training_curves_lay_four_panels_out_two_a_row():
    """Four panels in a row (18.4 in) came out ~1840 px wide: Jupyter scaled them to its cell's width, ~6 pt ticks,
    and each multi-line y-label crowded the panel beside it."""
    keys = ("loss", "logps/chosen", "logps/rejected", "step_balanced_accuracy")
    history = [{"step": s, **{k: 1 / s for k in keys}} for s in range(1, 6)]
    fig = viz.plot_training_curves({"DPO": history, "Stepwise DPO": history}, keys=keys, smooth=0.6)
    assert fig.get_size_inches()[0] <= 9.2
    cells = [ax.get_subplotspec().get_topmost_subplotspec().rowspan.start for ax in fig.axes], \
        [ax.get_subplotspec().get_topmost_subplotspec().colspan.start for ax in fig.axes]
    assert cells == ([0, 0, 1, 1], [0, 1, 0, 1])  # 2x2, in the keys' order, row by row
    assert [ax.get_title() for ax in fig.axes] == list(keys)
    # notebook 05's: the loss stacked one run per row in the first cell, three more panels
    keys = ("loss", "rewards/margins", "rewards/accuracies", "step_accuracy")
    history = [{"step": s, **{k: 1 / s for k in keys}} for s in range(1, 6)]
    fig = viz.plot_training_curves({"DPO": history, "Stepwise DPO": history}, keys=keys, own_scale=("loss",))
    top = [ax.get_subplotspec().get_topmost_subplotspec() for ax in fig.axes]
    assert len(fig.axes) == 5 and [(t.rowspan.start, t.colspan.start) for t in top] == [(0, 0), (0, 0), (0, 1),
                                                                                         (1, 0), (1, 1)]
    assert fig.get_size_inches()[0] <= 9.2
    assert all(label.get_fontsize() >= 8 for ax in fig.axes[:2] for label in ax.get_yticklabels())
    assert len(viz.plot_training_curves({"run": history}, keys=keys[:3]).axes) == 3  # 2 + 1, no empty panel


def _rounds(greedy):
    """Records of two rounds with each method's greedy accuracy per round (``greedy[m] = [round 1, round 2]``)."""
    diff = {"difference": 0.02, "low": -0.01, "high": 0.05}
    return [{"round": r, **{m: {"accuracy": greedy[m][r - 1], "sampled_accuracy": 0.3 + 0.01 * r + 0.001 * i,
                                "step_accuracy": 0.6 + 0.1 * r + 0.01 * i}
                            for i, m in enumerate(("dpo", "stepwise_dpo", "nll_only"))},
             "stepwise_dpo_minus": {m: {"accuracy": diff, "sampled_accuracy": diff} for m in ("dpo", "nll_only")}}
            for r in (1, 2)]


def test_onpolicy_rounds_are_two_panels_a_row_and_show_a_line_on_another():
    """1680 px in a row of four; NLL only's greedy line lay exactly on Stepwise DPO's up to round 1 (0.787 both),
    so Stepwise DPO's seemed to start at round 1."""
    records = _rounds({"dpo": [0.64, 0.78], "stepwise_dpo": [0.787, 0.84], "nll_only": [0.787, 0.847]})
    base = {"accuracy": 0.533, "sampled_accuracy": 0.283, "step_accuracy": 0.58}
    fig = viz.plot_onpolicy_rounds(records, base, title="rounds")
    assert len(fig.axes) == 4 and fig.get_size_inches()[0] <= 9.2
    assert [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes] == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    assert [ax.get_title() for ax in fig.axes] == ["greedy accuracy", "sampled (T=1) accuracy",
                                                   "steps right (greedy, checker)",
                                                   "Stepwise DPO + NLL minus (points, 95% interval)"]
    greedy = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert {name: to_hex(line.get_color()) for name, line in greedy.items()} == {
        viz.method_name(m): to_hex(viz.method_color(viz.method_name(m))) for m in ("dpo", "stepwise_dpo", "nll_only")}
    over, under = greedy["NLL only (RFT)"], greedy["Stepwise DPO + NLL"]
    assert list(over.get_ydata()[:2]) == list(under.get_ydata()[:2])  # the values as they are: the same points
    assert over.get_linestyle() == "--" and over.get_markerfacecolor() == "none" and under.get_linestyle() == "-"
    assert over.get_markersize() > under.get_markersize()  # the one below shows through its open markers
    sampled = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert all(line.get_linestyle() == "-" for line in sampled.values())  # round 0 alone, which all share: plain
    three = viz.plot_onpolicy_rounds([{k: v for k, v in rec.items() if k != "stepwise_dpo_minus"} for rec in records],
                                     base)
    assert len(three.axes) == 3  # an odd number of panels: no empty fourth


def test_beam_tree_marks_the_checkers_verdict_apart_from_the_reward_colour():
    """A right or wrong step got a green or red ring around a node filled red to green by its reward: the verdict
    could not be told from the fill. The captions were 6.5 pt in a 13.4 in figure (~7 px in Jupyter)."""
    nodes = [search.Node(0, None, 0, "Step 1: 1 + 1 = 2", 5, "delimiter", False, [4.0], kept=True),
             search.Node(1, None, 0, "Step 1: 1 + 1 = 3", 5, "delimiter", False, [4.0], pruned_at=0),
             search.Node(2, 0, 1, "Step 2: 2 + 2 = 4\n\nAnswer: 4", 5, "eos", True, [4.0, 2.0], kept=True, ended="eos"),
             search.Node(3, 0, 1, "Step 2: 2 + 2 = 5", 5, "delimiter", False, [4.0, -5.0], pruned_at=1)]
    result = search.SearchResult(0, nodes, chosen=2, tokens=20, n_beams=1, expansions=2)
    fig = viz.plot_beam_tree(result, {0: True, 1: False, 2: True, 3: None})  # node 1: wrong, yet the PRM's P 0.98
    ax = fig.axes[0]
    marks = {t.get_text(): [] for t in ax.texts}
    for t in ax.texts:
        marks[t.get_text()].append(t)
    assert len(marks["✓"]) == 2 and len(marks["✗"]) == 1  # node 3 has no verdict: no mark
    assert to_hex(marks["✓"][0].get_color()) == to_hex(viz.CORRECT) and to_hex(marks["✗"][0].get_color()) == \
        to_hex(viz.WRONG)
    assert marks["✗"][0].xy == (1, ax.collections[2].get_offsets()[0][1])  # beside node 1
    rings = {to_hex(c.get_edgecolor()[0]) for c in ax.collections[1:]}
    assert rings == {"#333333"}  # no ring in the fill's hues
    captions = [t for t in ax.texts if t.get_text().startswith("1 + 1")]
    assert captions and all(t.get_fontsize() >= 8 for t in captions)
    key = fig.legends[0]
    assert [t.get_text() for t in key.get_texts()][-2:] == ["right step (checker)", "wrong step (checker)"]
    assert [h.get_marker() for h in key.legend_handles[-2:]] == ["$✓$", "$✗$"]
    four_steps = search.SearchResult(0, [search.Node(d, d - 1 if d else None, d, f"Step {d + 1}: {d} + 1 = {d + 1}",
                                                     5, "delimiter", False, [1.0] * (d + 1), kept=True)
                                         for d in range(4)], chosen=3, tokens=20)
    assert viz.plot_beam_tree(four_steps).get_size_inches()[0] <= 11  # notebook 07's: 13.4 in


def test_greedy_vs_sampled_bars_per_policy(tmp_path):
    metrics = {"policy": {"base": {"accuracy": 0.5, "sampled_accuracy": 0.3},
                          "dpo": {"accuracy": 0.7, "sampled_accuracy": 0.35},
                          "nll_only": {"accuracy": 0.8, "sampled_accuracy": 0.4}, "rounds": [],
                          "one_round_gold_labels": {"dpo": {"sampled_accuracy": 0.4}}},
               "evaluation": {"policy_accuracy": {"base": 0.53, "dpo": 0.78}}}
    accuracies, n_problems = viz.greedy_and_sampled(metrics)
    assert accuracies == {"base": (0.53, 0.3), "dpo": (0.78, 0.35)} and n_problems is None  # 06's greedy; no counts
    ax = viz.plot_greedy_vs_sampled(accuracies, save_to=tmp_path / "gs.png").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "DPO + NLL"]  # notebook 04's words for it
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.53, 0.78, 0.3, 0.35]
    with pytest.raises(ValueError, match=r"the sampled accuracy of 'dpo' is 35.0, outside \[0, 1\] \(a share, not a "
                                         r"percentage\)"):  # plot_best_of_n's words
        viz.plot_greedy_vs_sampled({"dpo": (0.7, 35)})


def test_beam_tree_colours_with_the_heatmaps_scale_centred_at_the_threshold():
    """A linear 0..1 scale put yellow at 0.5, where the heatmaps taught yellow = the PRM's threshold (P 0.04): a right
    step at P 0.30 looked doubtful. Pruned steps' labels were a pale grey."""
    nodes = [search.Node(id=0, parent=None, depth=0, step="Step 1: 1 + 1 = 2", n_tokens=5, stop="delimiter",
                         finished=False, rewards=[2.0], kept=True),
             search.Node(id=1, parent=0, depth=1, step="Answer: 2", n_tokens=3, stop="eos", finished=True,
                         rewards=[2.0, -0.85], kept=True),
             search.Node(id=2, parent=0, depth=1, step="Answer: 3", n_tokens=3, stop="eos", finished=True,
                         rewards=[2.0, -6.0], kept=False, pruned_at=1)]
    result = search.SearchResult(problem_index=0, nodes=nodes, chosen=1, tokens=11)
    fig = viz.plot_beam_tree(result, threshold=-3.2)
    ax, bar = fig.axes
    assert "thr. 0.04" in [t.get_text() for t in bar.get_yticklabels()]
    chosen_face = [c.get_facecolor()[0] for c in ax.collections if c.get_paths() and c.get_sizes()[0] == 140]
    expected = colormaps["RdYlGn"](viz.reward_norm(sigmoid(-3.2))(sigmoid(-0.85)))
    assert list(chosen_face[0][:3]) == pytest.approx(list(expected[:3]))  # green above the threshold, not orange
    pruned = [t for t in ax.texts if t.get_text().startswith("⇒ 3")]
    assert pruned and to_hex(pruned[0].get_color()) == "#555555"


def test_a_line_on_another_is_dashed_wherever_they_meet_past_the_start():
    """Points that every line shared were exempt, not only round 0 (N = 1): with two methods no line was ever
    dashed, and with three equal at round 1 none was, while the segments 0 -> 1 hid two of them."""
    two = _rounds({"dpo": [0.6, 0.7], "stepwise_dpo": [0.7, 0.8], "nll_only": [0.7, 0.9]})
    base = {"accuracy": 0.5, "sampled_accuracy": 0.3}
    fig = viz.plot_onpolicy_rounds(two, base, methods=("stepwise_dpo", "nll_only"))
    greedy = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert greedy == {"Stepwise DPO + NLL": "-", "NLL only (RFT)": "--"}  # they meet at round 1 (0.7 both)
    sampled = {line.get_label(): line.get_linestyle() for line in fig.axes[1].get_lines()}
    assert set(sampled.values()) == {"-"}  # round 0 alone, where both start from the base: plain
    three = _rounds({"dpo": [0.7, 0.75], "stepwise_dpo": [0.7, 0.8], "nll_only": [0.7, 0.9]})
    greedy = {line.get_label(): line.get_linestyle() for line in viz.plot_onpolicy_rounds(three, base).axes[0].lines}
    assert greedy == {"DPO + NLL": "-", "Stepwise DPO + NLL": "--", "NLL only (RFT)": "--"}
    # best-of-N: N = 1, the one random pick every method shares, is the start
    lines = viz.plot_best_of_n({"prm_min": {1: 0.3, 4: 0.5}, "orm": {1: 0.3, 4: 0.5}}).axes[0].lines
    assert [line.get_linestyle() for line in lines] == ["-", "--"]
    lines = viz.plot_best_of_n({"prm_min": {1: 0.3, 4: 0.5}, "orm": {1: 0.3, 4: 0.4}}).axes[0].lines
    assert [line.get_linestyle() for line in lines] == ["-", "-"]


def test_accuracy_axes_read_in_percent_as_the_tables_beside_them():
    """The tables beside these plots print 84.0%; the axes read 0.84, "share of test problems"."""
    from matplotlib.ticker import PercentFormatter

    records = _rounds({"dpo": [0.64, 0.78], "stepwise_dpo": [0.787, 0.84], "nll_only": [0.787, 0.847]})
    rounds = viz.plot_onpolicy_rounds(records, {"accuracy": 0.533, "sampled_accuracy": 0.283, "step_accuracy": 0.58})
    best = viz.plot_best_of_n({"prm_min": {1: 0.3, 4: 0.5}}, ylabel="final-answer accuracy")  # notebook 06's label
    table = {str(b): {"beam_prm": 0.9, "token_budget": 70.0 * b, "tokens": {"beam_prm": 69.0 * b}} for b in (4, 16)}
    shares = [*rounds.axes[:3], best.axes[0], viz.plot_test_time_compute(table).axes[0]]
    for ax in shares:
        assert isinstance(ax.yaxis.get_major_formatter(), PercentFormatter) and "(%)" in ax.get_ylabel()
        assert ax.yaxis.get_major_formatter().xmax == 1.0  # a share of 1 is 100%
    assert [ax.get_ylabel() for ax in rounds.axes] == ["test problems right (%)", "test problems right (%)",
                                                       "greedy steps right (%)", "accuracy difference (points)"]
    assert best.axes[0].get_ylabel() == "final-answer accuracy (%)"
    assert viz.plot_best_of_n({"prm_min": {1: 0.3}}, ylabel="accuracy, %").axes[0].get_ylabel() == "accuracy, %"


def test_beam_tree_keeps_the_chosen_paths_captions_clear_of_its_line():
    """The chosen path's line ran through the bold captions of its steps; the ✓/✗ marks had a white box, they not."""
    nodes = [search.Node(0, None, 0, "Step 1: 1 + 1 = 2", 5, "delimiter", False, [4.0], kept=True),
             search.Node(1, None, 0, "Step 1: 1 + 1 = 3", 5, "delimiter", False, [-4.0], pruned_at=0),
             search.Node(2, 0, 1, "Step 2: 2 + 2 = 4\n\nAnswer: 4", 5, "eos", True, [4.0, 2.0], kept=True, ended="eos")]
    result = search.SearchResult(0, nodes, chosen=2, tokens=15, n_beams=1, expansions=2)
    texts = {t.get_text(): t for t in viz.plot_beam_tree(result, {0: True, 1: False, 2: True}).axes[0].texts}
    chosen = [t for text, t in texts.items() if text.startswith(("1 + 1 = 2", "2 + 2 = 4"))]
    assert len(chosen) == 2 and all(t.get_fontweight() == "bold" for t in chosen)
    for t in chosen:
        box = t.get_bbox_patch()
        assert box is not None and to_hex(box.get_facecolor()) == "#ffffff" and t.get_zorder() > 2  # over the line
    (other,) = [t for text, t in texts.items() if text.startswith("1 + 1 = 3")]
    assert other.get_bbox_patch() is None  # off the path: nothing to clear


def test_verifier_stage_names_mark_nothing_new_in_the_first_stage():
    """ "+" means new in that stage: a first stage that mixed anything in read "stage 1: process rows, + outcome
    50%"."""
    stage = lambda **config: {"config": config}
    names = viz.verifier_stage_names([stage(outcome_fraction=0.5, recover_rate=0.2), stage(outcome_fraction=0.5,
                                                                                            policy_fraction=0.3)])
    assert names == ["stage 1: process rows, outcome 50%, slips 20%", "stage 2: + policy samples 30%, slips 0%"]
    assert viz.verifier_stage_names([stage()]) == ["stage 1: process rows only"]


def test_wide_figures_share_one_column_count():
    """plot_onpolicy_rounds laid its panels out by TRAINING_CURVE_COLUMNS, a name of the training curves alone."""
    assert viz.WIDE_FIGURE_COLUMNS == 2 and not hasattr(viz, "TRAINING_CURVE_COLUMNS")
