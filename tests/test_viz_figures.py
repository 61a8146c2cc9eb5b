"""What the tutorial's figures of notebooks 02 and 05-07 show: per-run scales, one panel per pair, marks that can be
seen, readable names, the reward colour scale, and a one-line text form of the explorer."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from stepdpo_lite.rewards import sigmoid  # noqa: E402
from stepdpo_lite.tutorial import search, viz  # noqa: E402

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
    assert any(list(line.get_ydata()) == [0, 0] for line in left.lines)  # the zero line in every panel
    assert fig.get_supylabel() == "A minus B, points (95% interval)"


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


def test_verifier_pretraining_names_each_stage_along_its_line():
    """Stage names floated left of their lines, stacked, stage 1 below the 0.5 line."""
    stage = lambda rows, **config: {"curve": [{"rows_seen": r, "step_auroc": 0.9} for r in rows], "config": config}
    log = {**stage([1000, 2000], outcome_fraction=0.5),
           "earlier_stages": [stage([100_000, 1_000_000]), stage([1000, 2000], outcome_fraction=0.5)]}
    ax = viz.plot_verifier_pretraining(log).axes[0]
    names = [t for t in ax.texts if t.get_text().startswith("stage")]
    assert [t.get_text() for t in names] == ["stage 1", "stage 2", "stage 3"]
    assert all(t.get_rotation() == 90 for t in names)
    assert [t.get_position()[0] for t in names] == pytest.approx([0, 1.0, 1.002])
    key = [t.get_text() for t in ax.get_legend().get_texts()]
    assert key[-3:] == ["stage 1: process", "stage 2: process + outcome", "stage 3: process + outcome"]


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
