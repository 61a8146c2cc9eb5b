"""Pictures of per-step rewards: heatmaps, chosen vs rejected, before/after, curves, and an explorer.

Every plotting function returns its matplotlib ``Figure``; with ``save_to="path.png"`` (or ``.pdf``, ``.svg``,
``.jpg``...) it also writes it, in the format the extension names, atomically (temporary name, then rename).
Figures are closed in pyplot before they are returned, so a notebook cell that ends with the call shows the figure
exactly once and loops do not pile up open figures; show one kept in a variable with ``display(fig)`` or by ending
a cell with ``fig``. The pictures of one Axes also draw into the caller's, ``ax=``: then they return ``ax.figure``
and leave that figure as it is, its size, layout and pyplot state (open), with their key in the Axes, not below it.

Rewards are log-odds (``sigmoid(reward)`` = probability that the step is correct) unless said otherwise;
labels are gold step labels (``True`` = correct), e.g. ``toyworld.check(...).step_labels``.

Which solutions notebooks 02 and 05 draw is chosen elsewhere, so that a cell only calls and plots: in
``step_reward_summaries`` (``heatmap_indices``, ``heatmap_rows``, ``verdict_row_labels``, ``pick_before_after_problem``,
``explorer_problems``) and ``credit`` (``pick_credit_example``). ``before_after_bars`` lays out the ticks and bars of
``plot_before_after``'s two solutions of one problem.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import re
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import TwoSlopeNorm, to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import PercentFormatter

from ..atomic import write_atomic
from ..checks import finite_number, list_of, positive_int, warn_user
from ..evaluation import check_labels, finite_scores, first_error_index, outcome_auroc, predict_first_error
from ..rewards import sigmoid
from ..steps import DEFAULT_DELIMITER, extract_steps
from .diagnostics import probability_text, step_calibration
from .display_names import method_name, step_body  # every figure's and printed table's names (torch-free), step texts

CORRECT, WRONG, NEUTRAL, HIGHLIGHT = "#2a9d4b", "#d1495b", "#4c72b0", "#f28e2b"
CHOSEN, REJECTED = "#2a6fdb", "#e07a1f"
DPI = 120
# The most rows plot_step_reward_heatmap draws: its height stops growing at 14 in, and past this a row is under 0.2 in,
# too low for its name and marks (they overprint their neighbours). step_reward_summaries.heatmap_rows picks fewer
# to draw.
HEATMAP_MAX_ROWS = 60
# The most panels a row of plot_training_curves and plot_onpolicy_rounds: more are laid out in rows (2x2, 2x3), so
# that each panel stays readable where Jupyter scales a figure down to its cell's width (about 1000 px).
WIDE_FIGURE_COLUMNS = 2
PAIRS_DRAWN = 3  # the pairs plot_chosen_vs_rejected draws one by one, below the means: three fit one figure's width
EXPLORER_THRESHOLD_LIMIT = 30.0  # log-odds; σ(±30) is 1e-13 from 0 or 1, the explorer's widest threshold
# The two meanings a step label has in this kit (docs/formats.md, "Step labels"); figures say which they draw, and
# whose labels they are (``label_key``).
LABEL_MEANINGS = {"reachable": "the answer is out of reach from here", "mistake": "a mistake is made here"}
# One colour per method in every figure (DPO, Stepwise DPO, NLL only; "base" = the policy before training), matched
# in a run's name (e.g. "Stepwise DPO + NLL", "after Stepwise DPO"); "Step-DPO" is another method, not DPO.
BASE_GREY = "#9aa5b1"
METHOD_COLORS = ((r"\bstepwise dpo\b", "tab:orange"), (r"\bnll only\b", "tab:green"),
                 (r"(?<![\w-])dpo\b", "tab:blue"), (r"\bbase\b", BASE_GREY))
# What a logged metric is, for the y-axis of plot_training_curves (the key itself is the panel's title).
METRIC_LABELS = {"loss": "training loss",
                 "logps/chosen": "log p(chosen), summed over tokens",
                 "logps/rejected": "log p(rejected), summed over tokens",
                 "rewards/chosen": "implicit reward of chosen",
                 "rewards/rejected": "implicit reward of rejected",
                 "rewards/margins": "implicit reward, chosen − rejected",
                 "rewards/accuracies": "share of pairs, chosen > rejected",
                 "step_accuracy": "share of steps, sign(β·ρ_k) = label",
                 "step_balanced_accuracy": "balanced accuracy, sign(β·ρ_k) vs label"}


# ----------------------------------------------------------------------------- helpers

def _figure_format(path, formats, who: str) -> str:
    """The format ``path``'s extension names, one of ``formats``; a folder, or a path without such an extension, is
    refused by name (a wrong format under the extension's name breaks a PDF viewer or LaTeX that opens it)."""
    path = Path(path)
    if path.is_dir():  # os.replace would raise IsADirectoryError naming the temporary file
        raise ValueError(f"{who}: {path} is a folder: name a file in it, e.g. {path / 'figure.png'}")
    extension = path.suffix[1:].lower()
    if extension not in formats:
        found = f"the extension .{extension}" if extension else "no extension"
        raise ValueError(f"{who}: {path} has {found}; name a file ending in one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return extension


def save_figure(fig, path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format its extension names (.png, .pdf, .svg, .jpg..., those of
    ``fig.canvas.get_supported_filetypes()``); parent folders are created. A folder, or a path without such an
    extension, is a ValueError naming it."""
    extension = _figure_format(path, fig.canvas.get_supported_filetypes(), "save_figure")
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format=extension, dpi=dpi))


def method_color(name: str):
    """The colour of the method named in ``name`` (``METHOD_COLORS``), or None when it names none of them."""
    for pattern, color in METHOD_COLORS:
        if re.search(pattern, str(name).lower()):
            return color
    return None


def label_key(label_meaning: str, label_source: str = "checker") -> str:
    """A figure's key for a False step label: its meaning (``LABEL_MEANINGS``) after whose labels they are, e.g.
    "my labels: the answer is out of reach from here" (default: "checker: ...")."""
    if label_meaning not in LABEL_MEANINGS:
        raise ValueError(f"label_meaning must be one of {sorted(LABEL_MEANINGS)}, got {label_meaning!r}")
    return f"{label_source}: {LABEL_MEANINGS[label_meaning]}"


def _share(value, what: str, who: str) -> float:
    """``value`` as a share in [0, 1]; a NaN, or a percentage (30 for 30%), is a ValueError naming ``what``."""
    value = finite_number(value, what, who)
    if not 0 <= value <= 1:
        raise ValueError(f"{who}: {what} is {value!r}, outside [0, 1] (a share, not a percentage)")
    return value


def _percent_axis(ax, ylabel: str) -> None:
    """``ax``'s y-axis, of shares in [0, 1], in percent (ticks such as 60%), its label saying so ("(%)" added unless
    it says percent): the tables printed beside these plots are in percent, and the axis reads in the same unit."""
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel(ylabel if "%" in ylabel or "percent" in ylabel.lower() else f"{ylabel} (%)")


def reward_norm(centre: float, vmin: float = 0.0, vmax: float = 1.0) -> TwoSlopeNorm:
    """The colour scale of every reward picture (with ``colormaps["RdYlGn"]``): red below ``centre``, yellow at it,
    green above, so that a step at the threshold is yellow and every step the PRM accepts is green."""
    return TwoSlopeNorm(vcenter=min(max(centre, vmin + 1e-6), vmax - 1e-6), vmin=vmin, vmax=vmax)


def _hiding(series: dict, start=None) -> set:
    """The names in ``series`` (name -> (xs, ys), in drawing order) whose line meets an earlier one's points: drawn
    plainly, each would hide the one below. The points at x = ``start`` do not count: there every line starts from
    the same point by construction (best-of-N's N = 1, the same random pick for all; round 0, the start policy), and
    a line that meets another there alone hides none of it. Any other shared point counts, even one all lines share."""
    points = {name: {(x, y) for x, y in zip(np.round(xs, 9), np.round(ys, 9)) if start is None or x != start}
              for name, (xs, ys) in series.items()}
    names = list(points)
    return {name for i, name in enumerate(names) if any(points[name] & points[e] for e in names[:i])}


# a line drawn over an earlier one's points (_hiding): dashed, with large open markers the one below shows through
OVER = {"ls": "--", "mfc": "none", "ms": 10, "mew": 1.6}


def _figure_and_axes(ax, figsize, who: str):
    """``(figure, axes, own)`` of a one-Axes picture: a new figure of ``figsize`` (constrained layout) and its Axes,
    own; or the caller's ``ax`` and its figure, not own: then the figure's size, layout and keys are the caller's."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax, True
    if not isinstance(ax, Axes):  # a Figure, or plt.subplots' array of Axes, would fail deep inside matplotlib
        raise ValueError(f"{who}: ax must be one matplotlib Axes (e.g. axes[0] of fig, axes = plt.subplots(1, 2)), "
                         f"got {type(ax).__name__}")
    return ax.figure, ax, False


def _key(fig, ax, own: bool, loc: str, handles=None, **style):
    """A picture's key: in a figure of its own, the figure's, ``loc`` outside the axes (inside, it hid what they
    show); in the caller's Axes, that Axes' own, where it hides least: a figure key would sit below all their panels."""
    if own:
        return fig.legend(handles=handles, loc=f"outside {loc}", frameon=False, **style)
    style.pop("ncol", None)  # one column: several, inside the Axes, covered the picture
    return ax.legend(handles=handles, **style)


def _finish(fig, save_to, own: bool = True):
    """``fig``, written to ``save_to`` (the whole figure, of a subfigure too) and closed in pyplot when ``own``: the
    caller's figure stays open, to be drawn further and shown."""
    if save_to is not None:
        save_figure(fig.figure, save_to)
    if own:
        plt.close(fig)
    return fig


def _padded(rows) -> np.ndarray:
    """Ragged rows -> a 2-D float array with NaN beyond each row's end."""
    out = np.full((len(rows), max([len(r) for r in rows] + [1])), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = np.asarray(row, dtype=float)
    return out


def _short(text, width: int = 28) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _check_ragged(name: str, rows, ref, ref_name: str) -> None:
    if len(rows) != len(ref):
        raise ValueError(f"{name} has {len(rows)} rows but {ref_name} has {len(ref)}")
    for i, (a, b) in enumerate(zip(rows, ref)):
        if len(a) != len(b):
            raise ValueError(f"{name}[{i}] has {len(a)} steps but {ref_name}[{i}] has {len(b)}")


def _text_of(problem) -> str:
    return getattr(problem, "prompt", None) or str(problem)


def _gold(verdict, name: str = "verdict") -> tuple[list[bool], int]:
    """``(step_labels, first_error)`` of a ``Verdict``, a dict with ``step_labels``, or a list of labels."""
    labels = verdict["step_labels"] if isinstance(verdict, dict) else getattr(verdict, "step_labels", verdict)
    check_labels(labels, "step_reward_explorer", name)  # bool(None) would show a wrong step
    labels = [bool(ok) for ok in labels]
    return labels, first_error_index(labels)


# ----------------------------------------------------------------------------- reward pictures

def plot_step_reward_heatmap(step_rewards, step_labels=None, row_labels=None, title=None, threshold: float = 0.0,
                             label_meaning: str = "reachable", label_source: str = "checker",
                             mark_predicted: bool = False, ax=None, save_to=None):
    """Solutions x steps, coloured by P = ``sigmoid(reward)``; blank beyond a solution's last step.

    The colour scale turns from red to green at ``threshold`` (the PRM's validation threshold, so that every step
    the PRM accepts is drawn green). Gold-wrong steps (``step_labels`` False) get an ×; the gold first error (the
    first of them) is outlined. P is written in the cells when the grid is small (160 cells or fewer).
    ``label_meaning`` says which step labels are given (``LABEL_MEANINGS``): "reachable" (a PRM's target) or
    "mistake"; ``label_source`` whose labels they are, as the key names them ("checker: ...", or e.g. "my labels",
    "Monte-Carlo"). ``mark_predicted`` also outlines, dashed and in orange, each solution's first step whose reward
    is below ``threshold``: the PRM's own first error, beside the gold one. At most ``HEATMAP_MAX_ROWS`` solutions
    (``step_reward_summaries.heatmap_indices`` or ``step_reward_summaries.heatmap_rows`` picks a few of many to draw,
    as the notebooks do): more could not be read.
    ``ax``: the matplotlib Axes to draw into, its colour bar beside it, in the caller's figure; by default a figure of
    its own.

    threshold: log-odds (a probability p is log(p / (1 - p))).
    """
    label_key(label_meaning)  # refuses an unknown meaning before anything is drawn
    if not len(step_rewards):
        raise ValueError("plot_step_reward_heatmap: step_rewards is empty")
    if len(step_rewards) > HEATMAP_MAX_ROWS:  # the rows' names and marks would overprint one another
        raise ValueError(f"plot_step_reward_heatmap: {len(step_rewards)} solutions, but at most {HEATMAP_MAX_ROWS} "
                         "rows fit legibly: pick some first, with step_reward_summaries.heatmap_indices(step_labels, "
                         "n) (indices, half of them with an error) or step_reward_summaries.heatmap_rows (stepwise "
                         "rows with 'labels')")
    for i, row in enumerate(step_rewards):  # a NaN was drawn blank, as if the solution had ended there
        for j, r in enumerate(list_of(row, f"plot_step_reward_heatmap: step_rewards[{i}]", "step rewards")):
            finite_number(r, f"step_rewards[{i}][{j}]", "plot_step_reward_heatmap")
    threshold = finite_number(threshold, "threshold", "plot_step_reward_heatmap")
    first_errors = []
    if step_labels is not None:
        _check_ragged("step_labels", step_labels, step_rewards, "step_rewards")
        for i, row in enumerate(step_labels):  # bool(None) would draw a wrong step
            check_labels(row, "plot_step_reward_heatmap", f"step_labels[{i}]")
        first_errors = [first_error_index(list(row)) for row in step_labels]
    if row_labels is not None and len(row_labels) != len(step_rewards):
        raise ValueError(f"plot_step_reward_heatmap: row_labels has {len(row_labels)} entries for "
                         f"{len(step_rewards)} solutions")
    values = _padded(step_rewards)
    n, m = values.shape
    values, centre = sigmoid(values), sigmoid(threshold)
    vmin, vmax, label = 0.0, 1.0, "P(step correct) = σ(r)"
    annotate = n * m <= 160  # P in every cell, while the cells are large enough to read it
    fig, ax, own = _figure_and_axes(ax, (min(2.6 + 0.6 * m, 16), min(1.4 + 0.38 * n, 14)),
                                    "plot_step_reward_heatmap")
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="white")
    norm = reward_norm(centre, vmin, vmax)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    bar.set_ticks([vmin, centre, vmax], labels=[f"{vmin:.2g}", f"thr. {probability_text(centre)}", f"{vmax:.2g}"])
    bar.ax.axhline(centre, color="black", linewidth=1.2)
    if annotate:
        for i, j in zip(*np.nonzero(~np.isnan(values))):
            ax.text(j, i, probability_text(values[i, j]), ha="center", va="center", fontsize=7, color="black")
    wrong = [] if step_labels is None else [(j, i) for i, row in enumerate(step_labels) for j, ok in enumerate(row)
                                            if not ok]
    if wrong:
        dx, dy = (0.3, -0.22) if annotate else (0.0, 0.0)
        xs, ys = zip(*wrong)
        ax.scatter(np.add(xs, dx), np.add(ys, dy), marker="x", s=28 if annotate else 60, c="black",
                   linewidths=1.4, zorder=3)
    boxes = [(i, fe) for i, fe in enumerate(first_errors) if fe >= 0]
    for i, fe in boxes:
        ax.add_patch(Rectangle((fe - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.5, zorder=4))
    predicted = [(i, k) for i, k in enumerate(predict_first_error(r, threshold) for r in step_rewards)
                 if k >= 0] if mark_predicted else []
    for i, k in predicted:  # inside the gold box where both fall on one step, so that both show
        ax.add_patch(Rectangle((k - 0.36, i - 0.36), 0.72, 0.72, fill=False, edgecolor=HIGHLIGHT, linewidth=2,
                               linestyle="--", zorder=5))
    ax.set_xticks(range(m), [str(j + 1) for j in range(m)])
    ax.set_yticks(range(n), row_labels if row_labels is not None else [str(i + 1) for i in range(n)])
    ax.set_xticks(np.arange(-0.5, m), minor=True)
    ax.set_yticks(np.arange(-0.5, n), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    ax.set(xlabel="step", ylabel="solution", title=title or "Per-step rewards")
    # a key only for the marks drawn: an × in the key of a picture without one would suggest a step is wrong
    handles = ([Line2D([], [], marker="x", ls="", color="black", label=label_key(label_meaning, label_source))]
               if wrong else []) + ([Patch(fill=False, edgecolor="black", linewidth=2,
                                           label=f"{label_source}: the first mistake")] if boxes else [])
    if predicted:
        handles.append(Patch(fill=False, edgecolor=HIGHLIGHT, linestyle="--", linewidth=2,
                             label="PRM: first step below the threshold"))
    if handles:  # a task's label source ("Monte-Carlo estimates (notebook 01): ...") overran two columns' width
        wide = max(len(h.get_label()) for h in handles) > 45
        _key(fig, ax, own, "lower center", handles, ncol=1 if wide else 2, fontsize=8)
    return _finish(fig, save_to, own)


def _mean_band(ax, rows, color, name, offset, labels=None):
    values = _padded(rows)
    x = np.arange(1, values.shape[1] + 1)
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    ax.plot(x, mean, marker="o", color=color, label=f"{name} (mean ± sd)")
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
    if labels is not None:
        # the x on top, larger and opaque: a missed mistake scores like the right steps and sat hidden among their o
        for ok, marker, size, alpha, zorder in ((True, "o", 14, 0.45, 2), (False, "x", 30, 0.95, 3)):
            pts = [(j + 1 + offset, r) for row, lab in zip(rows, labels) for j, (r, l) in enumerate(zip(row, lab))
                   if bool(l) == ok]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, s=size, color=color, alpha=alpha, linewidths=1.2, zorder=zorder)


def plot_chosen_vs_rejected(chosen_rewards, rejected_rewards, chosen_labels=None, rejected_labels=None,
                            ylabel: str = "step reward", title=None, save_to=None):
    """Per-step rewards of a batch of pairs: mean ± sd per step position (top) and the first ``PAIRS_DRAWN`` pairs
    (bottom).

    With labels, single steps are dotted in (o correct, x wrong) and wrong steps are hatched in the pairs. The
    labels are preference pairs' **mistake made here** labels (``LABEL_MEANINGS["mistake"]``, docs/formats.md).
    """
    key = label_key("mistake")
    if len(chosen_rewards) != len(rejected_rewards) or not len(chosen_rewards):
        raise ValueError(f"need as many chosen as rejected rows (> 0), got {len(chosen_rewards)} and "
                         f"{len(rejected_rewards)}")
    for name, labels, ref in (("chosen_labels", chosen_labels, chosen_rewards),
                              ("rejected_labels", rejected_labels, rejected_rewards)):
        for i, row in enumerate(ref):  # a NaN was left out of the mean and its bar not drawn, without a word
            for j, r in enumerate(list_of(row, f"plot_chosen_vs_rejected: {name[:-7]}_rewards[{i}]", "step rewards")):
                finite_number(r, f"{name[:-7]}_rewards[{i}][{j}]", "plot_chosen_vs_rejected")
        if labels is not None:
            _check_ragged(name, labels, ref, name.replace("labels", "rewards"))
            for i, row in enumerate(labels):  # bool(None) would draw a wrong step
                check_labels(row, "plot_chosen_vs_rejected", f"{name}[{i}]")
    k = min(PAIRS_DRAWN, len(chosen_rewards))
    mosaic = [["all"] * max(k, 1)] + ([[f"ex{i}" for i in range(k)]] if k else [])
    fig, axes = plt.subplot_mosaic(mosaic, figsize=(max(7, 3.2 * k), 6.4 if k else 3.6), layout="constrained")
    ax = axes["all"]
    _mean_band(ax, chosen_rewards, CHOSEN, "chosen", -0.1, chosen_labels)
    _mean_band(ax, rejected_rewards, REJECTED, "rejected", 0.1, rejected_labels)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="step position", ylabel=ylabel, title=title or f"Chosen vs rejected ({len(chosen_rewards)} pairs)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    for i in range(k):
        ex = axes[f"ex{i}"]
        for rows, labels, color, shift in ((chosen_rewards, chosen_labels, CHOSEN, -0.2),
                                           (rejected_rewards, rejected_labels, REJECTED, 0.2)):
            bars = ex.bar(np.arange(1, len(rows[i]) + 1) + shift, rows[i], width=0.4, color=color, alpha=0.85)
            for bar, ok in zip(bars, labels[i] if labels is not None else []):
                if not ok:
                    bar.set(hatch="///", edgecolor=WRONG)
        ex.axhline(0, color="grey", linewidth=0.8)
        ex.set_title(f"pair {i + 1}", fontsize=9)
        ex.set_xlabel("step", fontsize=8)
        ex.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ex.tick_params(labelsize=8)
    if k:
        axes["ex0"].set_ylabel(ylabel, fontsize=8)
    # one key for every panel, below them: the colours hold in the pairs too, and inside the top panel it could
    # hide a band; the single steps' o and x were not explained at all
    handles = ax.get_legend_handles_labels()[0]
    if chosen_labels is not None or rejected_labels is not None:
        handles += [Line2D([], [], marker="o", ls="", color="grey", alpha=0.6,
                           label="one step, checker: no mistake here"),
                    Line2D([], [], marker="x", ls="", color="grey", label=f"one step, {key}")]
        if k:
            handles.append(Patch(facecolor="white", edgecolor=WRONG, hatch="///", label=key))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False, fontsize=8)
    return _finish(fig, save_to)


def _pair(value, name: str) -> list:
    """``value`` as a (before, after) pair, or a ValueError naming ``name``."""
    pair = list_of(value, f"before_after_bars: {name}", "two items, (before, after)")
    if len(pair) != 2:
        raise ValueError(f"before_after_bars: {name} must hold two items, (before, after), got {len(pair)}")
    return pair


def _tick_text(steps: list[str], labels, j: int) -> str:
    """Step ``j`` without its "Step k:" (the tick already numbers it), after ✓/✗ where labels exist; "" past the
    solution's end."""
    if j >= len(steps):
        return ""
    mark = "" if labels is None or len(labels) == 0 else "✓ " if labels[j] else "✗ "
    return mark + step_body(steps[j])


def before_after_bars(solutions, rewards, labels=(None, None),
                      delimiter: str = DEFAULT_DELIMITER) -> tuple[list[str], list[float], list[float]]:
    """Tick labels and bar heights for ``plot_before_after`` of one problem solved twice (before, after training).

    ``solutions``, ``rewards`` (per-step lists) and ``labels`` (per-step labels, or None / [] for none) are
    (before, after) pairs; the solutions are split into steps at the PRM's own ``delimiter``
    (``prm.config.step_delimiter``, as ``bestofn.score_candidates`` splits them for the rewards). The two solutions
    may have different step counts, so step k of each shares one tick, "before step → after step", and the shorter
    side's rewards are padded with NaN (no bar)."""
    solutions, rewards, labels = _pair(solutions, "solutions"), _pair(rewards, "rewards"), _pair(labels, "labels")
    for side, text in zip(("before", "after"), solutions):
        if not isinstance(text, str):
            raise ValueError(f"before_after_bars: solutions ({side}) must be a str, got {type(text).__name__}")
    rewards = [list_of(r, f"before_after_bars: rewards ({side})", "step rewards")
               for side, r in zip(("before", "after"), rewards)]
    steps = [extract_steps(text, delimiter) for text in solutions]
    for side, step_list, values in zip(("before", "after"), steps, rewards):
        if values and len(values) != len(step_list):  # [] is an unscored solution; else the bars slid off their steps
            raise ValueError(f"before_after_bars: rewards ({side}) has {len(values)} rewards for {len(step_list)} "
                             "steps (or [] for an unscored solution)")
    for side, step_list, marks in zip(("before", "after"), steps, labels):
        if marks is None or len(marks) == 0:  # no checker (GSM8K), or an unscored solution: no ✓/✗
            continue
        check_labels(marks, "before_after_bars", f"labels ({side})")
        if len(marks) != len(step_list):  # labels of another solution
            raise ValueError(f"before_after_bars: labels ({side}) has {len(marks)} labels for {len(step_list)} steps")
    n = max(len(steps[0]), len(steps[1]), 1)
    ticks = [f"{_tick_text(steps[0], labels[0], j)} → {_tick_text(steps[1], labels[1], j)}" for j in range(n)]
    before, after = (r + [np.nan] * (n - len(r)) for r in rewards)
    return ticks, before, after


def plot_before_after(steps, rewards_before, rewards_after, labels=None, names=("before", "after"),
                      ylabel: str = "step reward", title=None, width: int = 30, ax=None, save_to=None):
    """One solution's step rewards (or step log-ratios) before and after training, as grouped bars.

    ``steps`` are the step texts (shortened to ``width`` characters for the tick labels); with gold
    ``labels`` each tick gets ✓ or ✗ (red). A bar whose name holds a method's (``method_color``, e.g. "after
    Stepwise DPO") has that method's colour; otherwise "before" is grey and "after" blue.
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    steps = list_of(steps, "plot_before_after: steps", "step texts")  # one str: a tick per character
    n = len(steps)
    if not n:  # an empty picture
        raise ValueError("plot_before_after: steps is empty")
    if not isinstance(names, (list, tuple)) or len(names) != 2 or not all(isinstance(x, str) for x in names):
        raise ValueError(f"plot_before_after: names must be two strs (before's, after's), got {names!r:.60}")
    rewards_before, rewards_after = (list_of(r, f"plot_before_after: rewards_{side}", "step rewards")
                                     for r, side in ((rewards_before, "before"), (rewards_after, "after")))
    for side, values in (("before", rewards_before), ("after", rewards_after)):
        for k, v in enumerate(values):  # NaN: no bar (before_after_bars' padding); None was one too, without a word
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isnan(v)):
                finite_number(v, f"rewards_{side}[{k}]", "plot_before_after")
    if len(rewards_before) != n or len(rewards_after) != n or (labels is not None and len(labels) != n):
        raise ValueError(f"plot_before_after: {n} steps but {len(rewards_before)} rewards before, "
                         f"{len(rewards_after)} after" + ("" if labels is None else f", {len(labels)} labels"))
    if labels is not None:  # bool(None) would draw a ✗
        check_labels(labels, "plot_before_after", "labels")
    fig, ax, own = _figure_and_axes(ax, (max(6.0, 1.2 * n + 2), 4.2), "plot_before_after")
    x = np.arange(n)
    colors = [method_color(names[0]) or BASE_GREY, method_color(names[1]) or NEUTRAL]  # a method's own colour
    if colors[0] == colors[1]:  # e.g. "DPO" before and "DPO + NLL" after: two colours all the same
        colors = [BASE_GREY, NEUTRAL]
    for values, name, color, shift in ((rewards_before, names[0], colors[0], -0.2),
                                       (rewards_after, names[1], colors[1], 0.2)):
        bars = ax.bar(x + shift, np.asarray(values, dtype=float), width=0.4, color=color, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.axhline(0, color="grey", linewidth=0.8)
    oks = [True] * n if labels is None else [bool(ok) for ok in labels]
    ticks = [("" if labels is None else "✓ " if ok else "✗ ") + ("" if s.strip().startswith("Step") else f"{k + 1}. ")
             + _short(s, width) for k, (s, ok) in enumerate(zip(steps, oks))]
    ax.set_xticks(x, ticks, rotation=25, ha="right", fontsize=8)
    for tick, ok in zip(ax.get_xticklabels(), oks):
        tick.set_color("black" if ok else WRONG)
    both = steps and all(" → " in str(s) for s in steps)  # before_after_bars' ticks: the two solutions' step k
    ax.set(xlabel=f"step ({names[0]} → {names[1]})" if both else "step", ylabel=ylabel,
           title=title or f"Step rewards {names[0]} vs {names[1]}")
    ax.legend(fontsize=8)
    return _finish(fig, save_to, own)


def plot_training_curves(log_histories, keys=("loss",), smooth: float = 0.0, title=None, baselines=None,
                         own_scale=(), save_to=None):
    """Curves from trainers' ``state.log_history`` (dicts with ``step`` and metrics), one subplot per key, two a row
    (``WIDE_FIGURE_COLUMNS``: four keys are a 2x2 grid, in the order given, row by row).

    ``log_histories`` maps a run name (e.g. "DPO", "Stepwise DPO") to its history; entries without a
    key are skipped. ``smooth`` in [0, 1) is an exponential moving average factor; it starts again where an entry's
    ``round`` changes (on-policy rounds: each trains against a new reference, and its first step is no continuation
    of the last round's). ``baselines`` maps a key to
    ``(value, label)``, drawn as a dashed line: what a curve must beat to mean anything (e.g. the loss of
    always predicting the base rate, ``diagnostics.base_rate_loss``). ``own_scale``: keys whose panel gives each run
    its own y-axis, stacked one run per row (e.g. "loss", where Stepwise DPO's step-weighted loss sits near 34 and
    DPO's near 0.8: on one axis DPO's would be a flat line). An empty history is refused by name (an empty
    ``log_history.json`` failed deep in matplotlib).
    """
    if not isinstance(log_histories, dict):
        log_histories = {"run": log_histories}
    if empty := [name for name, history in log_histories.items() if not history]:
        raise ValueError(f"plot_training_curves: the training log of {empty} is empty: nothing to draw (a policy's "
                         "log_history.json is written by notebook 04: run it again, its rounds cell once after the "
                         "cell that loads the start policies)")
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    smooth = finite_number(smooth, "smooth", "plot_training_curves")  # NaN made every curve NaN: empty panels
    if not 0 <= smooth < 1:  # 1 drew a flat line at the first value, > 1 and < 0 curves that swing away
        raise ValueError(f"plot_training_curves: smooth must be in [0, 1), got {smooth!r}")
    own_scale = (own_scale,) if isinstance(own_scale, str) else tuple(own_scale)
    if unknown := [key for key in own_scale if key not in keys]:
        raise ValueError(f"plot_training_curves: own_scale names {unknown}, not among the keys {list(keys)}")
    # at most two panels a row (2x2 for four keys): Jupyter scales a figure down to its cell's width (about
    # 1000 px), and more panels a row would shrink their ticks and crowd each y-label against the next panel
    ncols = min(len(keys), WIDE_FIGURE_COLUMNS)
    nrows = math.ceil(len(keys) / ncols)
    fig = plt.figure(figsize=(4.6 * ncols, 3.5 * nrows + 0.5 * (len(log_histories) - 1) * bool(own_scale)),
                     layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    panels = []  # per key: [(Axes, the runs it draws)], one Axes per run where the key has its own scales
    for c, key in enumerate(keys):
        cell = grid[divmod(c, ncols)]
        if key in own_scale and len(log_histories) > 1:
            rows = cell.subgridspec(len(log_histories), 1)
            stack = [fig.add_subplot(rows[r, 0]) for r in range(len(log_histories))]
            for a in stack[1:]:
                a.sharex(stack[0])
            panels.append([(a, [name]) for a, name in zip(stack, log_histories)])
        else:
            panels.append([(fig.add_subplot(cell), list(log_histories))])
    colors = {name: method_color(name) for name in log_histories}  # one colour per run in every panel, and per method
    # another run: the i-th colour of the cycle, or the next one no method has (among methods, in any figure)
    taken = {to_hex(c) for _, c in METHOD_COLORS} if any(colors.values()) else set()
    for i, name in enumerate(log_histories):
        if colors[name] is None:
            colors[name] = next(c for c in [f"C{i}"] + [f"C{k}" for k in range(10)] if to_hex(c) not in taken)
            taken.add(to_hex(colors[name]))
    for key, panel in zip(keys, panels):
        for ax, names in panel:
            _plot_curves(ax, key, {name: log_histories[name] for name in names}, colors, smooth)
            if key in (baselines or {}):
                value, label = baselines[key]
                ax.axhline(value, color="grey", ls="--", lw=1, label=f"{label} ({value:.3g})")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # no step 2.5
        ylabel = METRIC_LABELS.get(key, key) + (f"\n(EMA-smoothed, factor {smooth:g})" if smooth else "")
        top, bottom = panel[0][0], panel[-1][0]
        bottom.set_xlabel("training step")
        if len(panel) == 1:
            top.set_ylabel(ylabel)
        else:  # each run on its own scale: its name beside its axis, the metric's above the stack
            for ax, (name,) in panel:
                ax.set_ylabel(name, color=colors[name], fontsize=9)
                ax.tick_params(labelsize=8)
            for ax, _ in panel[:-1]:
                ax.tick_params(labelbottom=False)
            top.set_title(f"{key}: each run on its own scale\n{ylabel.replace(chr(10), ' ')}", fontsize=10)
        if len(panel) == 1 and (len(keys) > 1 or not title):  # one key under a title: the y-axis names it
            top.set_title(key)
    if title:
        fig.suptitle(title)
    legend = {}  # one key for all panels, below them: inside, it hid the curves where they ran
    for ax in fig.axes:
        legend.update({label: handle for handle, label in zip(*ax.get_legend_handles_labels())})
    if len(log_histories) > 1 or any(key in (baselines or {}) for key in keys):
        fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=min(len(legend), 5),
                   frameon=False, fontsize=9)
    return _finish(fig, save_to)


def _plot_curves(ax, key, log_histories, colors, smooth):
    """The curves of ``key`` in ``ax``, one per run that logged it (smoothed as plot_training_curves says), or a
    note that none did."""
    plotted = diverged = 0
    for name, history in log_histories.items():
        logged = [(i, e) for i, e in enumerate(history or [])
                  if isinstance(e.get(key), numbers.Real) and not isinstance(e.get(key), bool)]  # numpy too
        kept = [(i, e) for i, e in logged if math.isfinite(e[key])]
        if lost := [e.get("step", i) for i, e in logged if not math.isfinite(e[key])]:  # a diverged run, said aloud
            warn_user(f"plot_training_curves: run {name!r} logged {key!r} as NaN or inf at {len(lost)} of "
                      f"{len(logged)} entries (step {lost[0]} first): not drawn")
            diverged += 1
        if not kept:
            continue
        x, y = np.array([(e.get("step", i), float(e[key])) for i, e in kept]).T
        rounds = [e.get("round") for _, e in kept]
        for t in range(1, len(y) if smooth else 0):  # exponential moving average, restarted at a new round
            if rounds[t] == rounds[t - 1]:
                y[t] = smooth * y[t - 1] + (1 - smooth) * y[t]
        ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=name, color=colors[name])
        plotted += 1
    if not plotted:
        ax.text(0.5, 0.5, f"no {'finite ' * bool(diverged)}'{key}' logged", transform=ax.transAxes, ha="center",
                va="center", color="grey")


# What a verifier-pretraining stage mixes into its rows (its training_log.json config, verifier_pretraining's
# fields), in the words of plot_verifier_pretraining's stage names; a field a log leaves out is 0 (older stages).
STAGE_MIX = (("outcome_fraction", "outcome"), ("recover_rate", "slips"), ("policy_fraction", "policy samples"))
STAGE_MIX_KEY = ("stages: outcome = share of rows in the outcome format, policy samples = share the policy wrote,\n"
                 "slips = share of the errors that still reach the right answer; + = new in that stage")


def verifier_stage_names(stages) -> list[str]:
    """One name per stage of a verifier pretraining run (``training_log.json``'s ``earlier_stages``, then the run),
    from its config: the first stage's mix, then what each later one changed, e.g. "stage 2: + outcome 50%",
    "stage 5: outcome 80%, slips 40%" (``STAGE_MIX``): stages of the same kind of rows read apart."""
    names, before = [], {}
    for k, stage in enumerate(stages):
        mix = {key: float((stage.get("config") or {}).get(key) or 0) for key, _ in STAGE_MIX}
        parts = [(f"+ {word} " if k and not before.get(key) else f"{word} ") + f"{100 * mix[key]:.0f}%"
                 for key, word in STAGE_MIX if (mix[key] != before.get(key, 0.0)) and (k or mix[key])]
        parts.sort(key=lambda part: not part.startswith("+"))  # what is new first (stage 1: nothing is, no "+")
        if not k:
            parts = ["process rows" + (f", {', '.join(parts)}" if parts else " only")]
        names.append(f"stage {k + 1}: " + (", ".join(parts) if parts else f"the mix of stage {k}"))
        before = mix
    return names


def plot_verifier_pretraining(training_log, title=None, ax=None, save_to=None):
    """Validation AUROCs of a verifier pretraining run against training rows seen, from its
    ``training_log.json`` (``verifier_pretraining``): every stage of the chain, one after the other, each named
    along the dotted line where it starts by what it trained on (``verifier_stage_names``); the key names the curves.
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    if not isinstance(training_log, dict):  # e.g. a trainer's log_history (a list): an AttributeError
        raise ValueError(f"plot_verifier_pretraining: training_log must be the dict of a verifier pretraining run's "
                         f"training_log.json, got {type(training_log).__name__}")
    stages = [*training_log.get("earlier_stages", []), training_log]
    for k, stage in enumerate(stages):  # a KeyError or an IndexError named neither the stage nor the field
        curve = stage.get("curve") if isinstance(stage, dict) else None
        if not isinstance(curve, list) or not curve:
            raise ValueError(f"plot_verifier_pretraining: stage {k + 1}: 'curve' must be a non-empty list of "
                             f"validation points, got {curve!r:.60}")
        for i, point in enumerate(curve):
            if not isinstance(point, dict) or not isinstance(point.get("rows_seen"), numbers.Real):
                raise ValueError(f"plot_verifier_pretraining: stage {k + 1}: curve[{i}] has no number 'rows_seen'")
    fig, ax, own = _figure_and_axes(ax, (8.0, 4.6), "plot_verifier_pretraining")
    offset, colors = 0, {"step_auroc": NEUTRAL, "first_error_auroc": HIGHLIGHT, "outcome_auroc": WRONG}
    names = {"step_auroc": "PRM step AUROC", "first_error_auroc": "PRM first-error AUROC",
             "outcome_auroc": "ORM AUROC"}
    for k, (stage, name) in enumerate(zip(stages, verifier_stage_names(stages))):
        curve = stage["curve"]
        x = np.array([offset + r["rows_seen"] for r in curve]) / 1e6
        for key, color in colors.items():
            pts = [(xi, r[key]) for xi, r in zip(x, curve) if r.get(key) is not None]
            if pts:
                ax.plot(*np.array(pts).T, marker="o", markersize=3, color=color,
                        label=names[key] if k == len(stages) - 1 else None)
        if k:
            ax.axvline(offset / 1e6, color="grey", ls=":", lw=1)
        # along its line, from its foot, left of it (stage 1's right of the y-axis, off it): stages after the first
        # are short (tens of thousands of rows), and names written across the axis would overprint each other; each
        # stage named by what it changes (verifier_stage_names), so that stages of the same kind of rows read apart
        ax.annotate(name, (offset / 1e6, 0.41), textcoords="offset points", xytext=(-2 if k else 3, 0), rotation=90,
                    fontsize=7.5, color="#333", va="bottom", ha="right" if k else "left")
        offset += curve[-1]["rows_seen"]
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="graded training rows seen (millions)", ylabel="validation AUROC", ylim=(0.4, 1.01), xlim=(0, None),
           title=title or "Pretraining the reward base as a verifier")
    ax.grid(alpha=0.3)
    # the curves only (the stages are named in the plot), below: the plot is full; the stages' words explained
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, title=STAGE_MIX_KEY,
              title_fontsize=7)
    return _finish(fig, save_to, own)


def plot_reward_model_comparison(figures, keys=("step_auroc", "f1"), baseline=None, title=None, save_to=None):
    """Grouped bars of reward models' held-out figures: ``figures[base][variant] = {"step_auroc": .., "f1": ..}``
    (e.g. base "reward base", variants "zero-shot" and "after QLoRA"); one panel per key. ``baseline`` draws a
    dashed line per key (e.g. the position-only step AUROC)."""
    names = {"step_auroc": "step AUROC", "f1": "first-error F1", "auroc": "AUROC"}
    scales = {"step_auroc": "step AUROC (0.5 = chance)", "f1": "first-error F1 (1 = perfect)",
              "auroc": "AUROC (0.5 = chance)"}  # the y-axis: what a bar's height reads against
    keys = (keys,) if isinstance(keys, str) else tuple(keys)  # one str: a panel per character
    if not isinstance(figures, dict) or not figures or not keys:  # numpy's error named neither
        raise ValueError(f"plot_reward_model_comparison: figures must be a non-empty dict, figures[base][variant] = "
                         f"{{key: value}}, and keys non-empty; got {figures!r:.60} and {keys!r}")
    for base, rows in figures.items():  # a KeyError, or a TypeError from indexing a number or from matplotlib
        if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
            raise ValueError(f"plot_reward_model_comparison: figures[{base!r}] must be a dict of variant -> "
                             f"{{key: value}}, got {rows!r:.60}")
        for variant, r in rows.items():
            for key in keys:
                if key not in r:
                    raise ValueError(f"plot_reward_model_comparison: figures[{base!r}][{variant!r}] has no {key!r} "
                                     f"(it has {sorted(r)})")
                finite_number(r[key], f"figures[{base!r}][{variant!r}][{key!r}]", "plot_reward_model_comparison")
    variants = list(dict.fromkeys(v for rows in figures.values() for v in rows))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.6), layout="constrained", squeeze=False)
    width = 0.8 / max(len(variants), 1)
    for ax, key in zip(axes[0], keys):
        for j, variant in enumerate(variants):
            xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(figures))]
            ys = [rows[variant][key] if variant in rows else np.nan for rows in figures.values()]
            bars = ax.bar(xs, ys, width, label=variant, color=f"C{j}")
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        if baseline and key in baseline:
            ax.axhline(baseline[key], color="grey", ls="--", lw=1, label="position-only baseline")
        ax.set_xticks(range(len(figures)), list(figures), fontsize=8)
        ax.set(ylim=(0, 1.08), title=names.get(key, key), ylabel=scales.get(key, key))
    handles, labels = axes[0][0].get_legend_handles_labels()  # below the panels: inside, it hid the bars' feet
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False, fontsize=8)
    fig.suptitle(title or "Held-out test split")
    return _finish(fig, save_to)


def _by_method(results) -> dict[str, dict[int, float]]:
    """``{method: {N: acc}}``; also accepts ``{N: {method: acc}}`` (the layout of ``metrics.json``). Each N an int
    >= 1 or its decimal str (JSON keys): int() cut 1.5 to 1, over a real N = 1, and 0 or -1 fell off the log2 axis."""
    if not isinstance(results, dict):
        raise ValueError(f"plot_best_of_n: results must be a dict, {{method: {{N: accuracy}}}} or {{N: {{method: "
                         f"accuracy}}}}, got {type(results).__name__}")
    for key, row in results.items():
        if not isinstance(row, dict):
            raise ValueError(f"plot_best_of_n: results[{key!r}] must be a dict (N -> accuracy, or method -> "
                             f"accuracy), got {type(row).__name__}")
    numeric = lambda k: (isinstance(k, numbers.Real) and not isinstance(k, bool)) or (isinstance(k, str)
                                                                                      and k.lstrip("-").isdigit())
    by_n = bool(results) and all(map(numeric, results))  # {N: {method: accuracy}}: metrics.json's layout
    if not by_n and any(map(numeric, results)):
        raise ValueError(f"plot_best_of_n: results mixes N keys and method names at the top ({list(results)[:6]}): "
                         "pass {method: {N: accuracy}} or {N: {method: accuracy}}, not both")
    points = ([(method, n, acc) for n, row in results.items() for method, acc in row.items()] if by_n
              else [(method, n, acc) for method, row in results.items() for n, acc in row.items()])
    out: dict = {method: {} for method, _, _ in points} if by_n else {method: {} for method in results}
    for method, key, acc in points:
        n = positive_int(int(key) if isinstance(key, str) and key.isdigit() else key, f"the N of method {method!r}",
                         "plot_best_of_n")
        if n in out[method]:  # 1 and "1": one point drawn over the other
            raise ValueError(f"plot_best_of_n: method {method!r} has N={n} twice (key {key!r} and another)")
        out[method][int(n)] = acc
    return out


def plot_best_of_n(results, title=None, ylabel: str = "accuracy", ax=None, save_to=None):
    """Best-of-N accuracy vs N (log2 axis) per selection method, "Let's Verify Step by Step" style. ``results``:
    ``{method: {N: accuracy}}`` or ``{N: {method: accuracy}}``; an accuracy is a share in [0, 1], drawn in percent
    (``ylabel`` gets " (%)" unless it says percent). The key names each method in words (``method_name``); a line
    that meets an earlier one's points past N = 1 (where every method is the same random pick) is drawn dashed, with
    open markers, so that neither hides the other. A NaN or an
    accuracy outside [0, 1] (a percentage), or a method without points, is a ValueError naming the method and N.
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    results = _by_method(results)
    if not results:
        raise ValueError("plot_best_of_n: no results")
    for method, row in results.items():  # a NaN point was dropped from its line, 30 (%) drawn on an axis up to 50
        if not row:
            raise ValueError(f"plot_best_of_n: method {method!r} has no points (N -> accuracy)")
        for n, accuracy in row.items():
            _share(accuracy, f"the accuracy of {method!r} at N={n}", "plot_best_of_n")
    fig, ax, own = _figure_and_axes(ax, (6.4, 4.2), "plot_best_of_n")
    ns = sorted({n for row in results.values() for n in row})
    styles = {"majority": dict(ls="--", color="black"), "random": dict(ls=":", color="grey")}
    series = {method: (sorted(row), [row[n] for n in sorted(row)]) for method, row in results.items()}
    over = _hiding(series, start=1)  # e.g. combined on PRM product's point at N = 8: dashed, open, so both show
    for method, (x, y) in series.items():
        ax.plot(x, y, **{"marker": "o", "label": method_name(method), **styles.get(method, {}),
                         **(OVER if method in over else {})})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set(xlabel="N (solutions per problem)", title=title or "Best-of-N selection")
    _percent_axis(ax, ylabel)
    ax.grid(alpha=0.3)
    _key(fig, ax, own, "right center", fontsize=8)
    return _finish(fig, save_to, own)


def errorbar_differences(ax, xs, diffs, **style):
    """Differences (``{"difference", "low", "high"}``, fractions: ``paired_stats.paired_difference``) drawn at ``xs`` in
    points, each with its interval as an error bar."""
    ys = [100 * d["difference"] for d in diffs]
    err = [[y - 100 * d["low"] for y, d in zip(ys, diffs)], [100 * d["high"] - y for y, d in zip(ys, diffs)]]
    return ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, **style)


def informative_differences(diffs) -> dict:
    """``diffs`` (``bestofn.paired_differences``: ``{N: {A: {B: {"difference", "low", "high"}}}}``) without the Ns at
    which every difference and interval is exactly zero: best-of-N's N = 1, where every method keeps the one candidate
    drawn, so that A minus B is 0 ± 0 by construction and says nothing."""
    zero = lambda d: d["difference"] == d["low"] == d["high"] == 0
    return {n: row for n, row in diffs.items() if not all(zero(d) for by_b in row.values() for d in by_b.values())}


def plot_paired_differences(diffs, xlabel: str = "N (solutions per problem)", title=None, ax=None, save_to=None):
    """Method A minus method B against N (log2 axis), in points, each point with its 95% interval as an error bar
    (``bestofn.paired_differences``). Above the zero line A is ahead; a bar clear of the line is a measured gap.
    One small panel per pair, all on one y scale, each with a grey zero line. ``ax``: one matplotlib Axes to draw every
    pair into, side by side, in the caller's figure; by default a figure of its own.
    """
    if not isinstance(diffs, dict):
        raise ValueError(f"plot_paired_differences: diffs must be a dict {{N: {{A: {{B: difference}}}}}} "
                         f"(bestofn.paired_differences), got {type(diffs).__name__}")
    for n, row in diffs.items():  # int() of "two", a KeyError or a TypeError named no entry; a NaN drew no point
        if not isinstance(n, (numbers.Integral, str)) or not str(n).isdigit():
            raise ValueError(f"plot_paired_differences: each N must be an int or its decimal str, got {n!r}")
        for a, by_b in (row.items() if isinstance(row, dict) else [(None, row)]):
            for b, d in (by_b.items() if isinstance(by_b, dict) else [(None, by_b)]):
                if not isinstance(d, dict) or any(k not in d for k in ("difference", "low", "high")):
                    raise ValueError(f"plot_paired_differences: diffs[{n!r}][{a!r}][{b!r}] must be a dict with "
                                     f"'difference', 'low' and 'high', got {d!r:.60}")
                for k in ("difference", "low", "high"):
                    finite_number(d[k], f"diffs[{n!r}][{a!r}][{b!r}][{k!r}]", "plot_paired_differences")
    ns = sorted(diffs, key=int)
    pairs = list(dict.fromkeys((a, b) for n in ns for a, row in diffs[n].items() for b in row))
    if not pairs:
        raise ValueError("plot_paired_differences: no differences")
    if ax is not None:
        fig, ax, own = _figure_and_axes(ax, None, "plot_paired_differences")
        panels = [ax] * len(pairs)
    else:
        ncols = min(len(pairs), 3)
        nrows = -(-len(pairs) // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(3.1 * ncols + 0.6, 2.5 * nrows + 0.9), sharex=True,
                                 sharey=True, squeeze=False, layout="constrained")
        panels, own = list(grid.flat), True
        for extra in panels[len(pairs):]:
            extra.set_visible(False)
    for k, ((a, b), panel) in enumerate(zip(pairs, panels)):
        shift = 2 ** (0.05 * (k - (len(pairs) - 1) / 2)) if not own else 1  # one Axes: side by side on the log axis
        pts = [(int(n), diffs[n][a][b]) for n in ns if b in diffs[n].get(a, {})]
        errorbar_differences(panel, [n * shift for n, _ in pts], [d for _, d in pts],
                             label=f"{method_name(a)} − {method_name(b)}", **({"color": NEUTRAL} if own else {}))
        if own:
            panel.set_title(f"{method_name(a)} − {method_name(b)}", fontsize=9)
    for panel in dict.fromkeys(panels[:len(pairs)]):
        panel.axhline(0, color="grey", lw=1)
        panel.set_xscale("log", base=2)
        panel.set_xticks([int(n) for n in ns], ns)
        panel.minorticks_off()
        panel.grid(alpha=0.3)
    ylabel = "A minus B, points (95% interval)"
    if own:
        fig.supxlabel(xlabel, fontsize=10)
        fig.supylabel(ylabel, fontsize=10)
        fig.suptitle(title or "Paired differences")
        return _finish(fig, save_to, own)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "Paired differences")
    _key(fig, ax, own, "right center", fontsize=8)
    return _finish(fig, save_to, own)


def plot_onpolicy_rounds(records, base=None, methods=("dpo", "stepwise_dpo", "nll_only"), title=None, save_to=None):
    """Notebook 04's on-policy rounds: greedy and sampled accuracy (and the checker's share of right steps, when there
    is one) per round, in percent, one line per method in ``methods`` (keys of ``display_names.POLICY_NAMES``), round 0
    = ``base``; then, when the rounds have them, Stepwise DPO minus each other method with the 95% intervals, against
    the goal's +3 points. Two panels a row (``WIDE_FIGURE_COLUMNS``), in that order; a method's line on an earlier one's
    points (apart from round 0, where all start from ``base``) is dashed with large open markers, so that the one under
    it shows (NLL only's greedy line on Stepwise DPO's hid it up to round 1)."""
    records = list_of(records, "plot_onpolicy_rounds: records", "round records (dicts)")
    for i, rec in enumerate(records):  # a str or a record without its round: an AttributeError or a KeyError
        if not isinstance(rec, dict) or not isinstance(rec.get("round"), numbers.Integral):
            raise ValueError(f"plot_onpolicy_rounds: records[{i}] must be a dict with an int 'round', got {rec!r:.60}")
    keys = [("accuracy", "greedy accuracy"), ("sampled_accuracy", "sampled (T=1) accuracy")]
    if any(rec.get(m, {}).get("step_accuracy") is not None for rec in records for m in methods):
        keys.append(("step_accuracy", "steps right (greedy, checker)"))
    minus = [rec for rec in records if rec.get("stepwise_dpo_minus")]
    panels = len(keys) + bool(minus)
    ncols = min(panels, WIDE_FIGURE_COLUMNS)
    nrows = math.ceil(panels / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False, layout="constrained")
    axes = list(grid.flat)
    for spare in axes[panels:]:  # an odd number of panels: the last row's empty place
        spare.remove()
    rounds = [0] + [rec["round"] for rec in records]
    color = {m: method_color(method_name(m)) for m in methods}  # each method's colour in every figure
    for ax, (key, label) in zip(axes, keys):
        series = {}
        for m in methods:
            ys = [(base or {}).get(key)] + [rec.get(m, {}).get(key) for rec in records]
            series[m] = ([x for x, y in zip(rounds, ys) if y is not None], [y for y in ys if y is not None])
        over = _hiding({m: xy for m, xy in series.items() if xy[0]}, start=0)
        for m, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", label=method_name(m), color=color.get(m),
                    **(OVER if m in over else {}))
        ax.set_xlabel("round (0 = start policy)")
        _percent_axis(ax, "test problems right (%)" if key != "step_accuracy" else "greedy steps right (%)")
        ax.set_title(label, fontsize=10)
        ax.set_xticks(rounds)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if minus:
        ax = axes[panels - 1]
        series = [(other, key, style) for other in minus[-1]["stepwise_dpo_minus"]
                  for key, style in (("accuracy", "-"), ("sampled_accuracy", "--"))]
        for i, (other, key, style) in enumerate(series):
            shift = 0.08 * (i - (len(series) - 1) / 2)  # side by side, so that the bars do not overlap
            kept = [rec for rec in minus if key in rec["stepwise_dpo_minus"].get(other, {})]
            if not kept:
                continue
            errorbar_differences(ax, [rec["round"] + shift for rec in kept],
                                 [rec["stepwise_dpo_minus"][other][key] for rec in kept], ls=style,
                                 color=color.get(other, method_color(method_name(other))),
                                 label=f"− {method_name(other)}, "
                                       f"{'greedy' if key == 'accuracy' else 'sampled'}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(3, color="black", lw=0.8, ls=":", label="the goal: +3 points")
        low, high = ax.get_ylim()
        high = max(high, 3.5)  # the goal's line stays in view, with room above it for the legend
        ax.set_ylim(low, high + 0.6 * (high - low))
        ax.set_xlabel("round")
        ax.set_xticks([rec["round"] for rec in minus])
        ax.set_title("Stepwise DPO + NLL minus (points, 95% interval)", fontsize=10)
        ax.set_ylabel("accuracy difference (points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    if title:
        fig.suptitle(title)
    return _finish(fig, save_to)


def greedy_and_sampled(metrics) -> tuple[dict[str, tuple[float, float]], int | None]:
    """``(accuracies, n_problems)`` from a run's ``metrics.json``: ``accuracies`` is ``{policy: (greedy accuracy,
    sampled accuracy)}``, both of the same problems. The sampled accuracy is always notebook 04's (``policy.<name>``,
    its last on-policy round). The greedy one is notebook 06's (``evaluation.policy_accuracy``, 06's policies only)
    where 06 measured notebook 04's problems (the same count and digest); on other problems (06's N_TEST_PROBLEMS set
    apart from 04's) a bar of 06's beside one of 04's would compare two problem sets, so it is 04's own, with a
    warning saying so. ``n_problems`` is how many problems the bars are of, for a plot's title; None where the
    records give no single count (a run recorded before the counts were)."""
    policies = metrics.get("policy", {}) if isinstance(metrics, dict) else None
    if not isinstance(policies, dict):
        raise ValueError("greedy_and_sampled: metrics has no 'policy' record (notebook 04 writes it)")
    rows = {name: row for name, row in policies.items()
            if isinstance(row, dict) and "accuracy" in row and "sampled_accuracy" in row}
    evaluation = metrics.get("evaluation", {})
    greedy = evaluation.get("policy_accuracy", {})

    def problems(record):  # None and None in a run recorded before either was: taken as the same
        return record.get("n_test_problems"), record.get("test_problems_digest")

    if other := [name for name in greedy if name in rows and problems(rows[name]) != problems(evaluation)]:
        warn_user(f"greedy_and_sampled: notebook 06 measured the greedy accuracies on other test problems than "
                  f"notebook 04 measured the sampled accuracy of {other[0]!r} on (problem counts "
                  f"{problems(evaluation)[0]} and {problems(rows[other[0]])[0]}, or another draw): the bars are "
                  "notebook 04's greedy and sampled figures, both of its problems")
        greedy = {}
    accuracies = {name: (greedy.get(name, row["accuracy"]), row["sampled_accuracy"]) for name, row in rows.items()
                  if name in greedy or not greedy}
    counts = {problems(evaluation if greedy else rows[name])[0] for name in accuracies}
    return accuracies, counts.pop() if len(counts) == 1 else None


def plot_greedy_vs_sampled(accuracies, title=None, ax=None, save_to=None):
    """Grouped bars, per policy, of its greedy (temperature 0) and its sampled (temperature 1) final-answer accuracy:
    ``accuracies`` is ``{policy: (greedy, sampled)}`` (``greedy_and_sampled``), shares in [0, 1].
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    if not isinstance(accuracies, dict) or not accuracies:
        raise ValueError("plot_greedy_vs_sampled: accuracies must be a non-empty dict {policy: (greedy, sampled)}")
    for name, pair in accuracies.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"plot_greedy_vs_sampled: accuracies[{name!r}] must be (greedy, sampled), got {pair!r}")
        for which, value in zip(("greedy", "sampled"), pair):
            _share(value, f"the {which} accuracy of {name!r}", "plot_greedy_vs_sampled")
    fig, ax, own = _figure_and_axes(ax, (max(5.5, 1.2 * len(accuracies) + 2), 3.8), "plot_greedy_vs_sampled")
    x = np.arange(len(accuracies))
    # greys: blue and orange are DPO's and Stepwise DPO's in every other figure
    for k, (which, color) in enumerate((("greedy (temperature 0)", "#4d4d4d"), ("sampled (temperature 1)", "#b3b3b3"))):
        bars = ax.bar(x + (k - 0.5) * 0.38, [pair[k] for pair in accuracies.values()], 0.38, color=color,
                      label=which)
        ax.bar_label(bars, fmt="{:.0%}", fontsize=7, padding=1)
    ax.set_xticks(x, [method_name(name) for name in accuracies])
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set(ylabel="final-answer accuracy", title=title or "Greedy vs sampled accuracy per policy")
    _key(fig, ax, own, "lower center", ncol=2, fontsize=8)
    return _finish(fig, save_to, own)


def plot_first_error_positions(first_errors, title=None, ax=None, save_to=None):
    """How many solutions have their first wrong step at each position (-1 = no error -> "none").

    Accepts ints or objects with ``.first_error`` (e.g. ``task_problems.Verdict``).
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    fe = [getattr(v, "first_error", v) for v in list_of(first_errors, "plot_first_error_positions: first_errors",
                                                           "first-error indices or verdicts")]
    if not fe:  # it drew one empty "none" bar
        raise ValueError("plot_first_error_positions: first_errors is empty")
    for i, f in enumerate(fe):  # (-1: no error) int() read 2.7 as step 3, True as step 2, "3" as step 4
        positive_int(f, f"first_errors[{i}]", "plot_first_error_positions", minimum=-1)
    fe = [int(f) for f in fe]
    positions = list(range(max([f for f in fe if f >= 0] + [0]) + 1)) if any(f >= 0 for f in fe) else []
    counts = [sum(f == p for f in fe) for p in positions] + [sum(f < 0 for f in fe)]
    fig, ax, own = _figure_and_axes(ax, (max(5.0, 0.6 * len(counts) + 2), 3.6), "plot_first_error_positions")
    bars = ax.bar(range(len(counts)), counts, color=[WRONG] * len(positions) + [CORRECT])
    ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(counts)), [str(p + 1) for p in positions] + ["none"])
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set(xlabel="step of the first error", ylabel="solutions",
           title=title or f"Where the first error happens ({len(fe)} solutions)")
    return _finish(fig, save_to, own)


def plot_accuracy_by_length(lengths, correct, xlabel: str = "number of steps", title=None, ax=None, save_to=None):
    """Mean correctness per length (e.g. steps per problem), with the count above each bar.

    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    lengths = list_of(lengths, "plot_accuracy_by_length: lengths", "lengths (ints)")
    correct = list_of(correct, "plot_accuracy_by_length: correct", "results (bools)")
    if len(lengths) != len(correct) or not lengths:  # empty: an empty picture
        raise ValueError(f"plot_accuracy_by_length: {len(lengths)} lengths but {len(correct)} results "
                         "(need equal, > 0)")
    check_labels(correct, "plot_accuracy_by_length", "correct")  # bool(None) would count as wrong, bool(0.7) as right
    for i, n in enumerate(lengths):  # a NaN is no group: its bar was NaN; 2.0 and 2 were two bars, True one of 1
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise ValueError(f"plot_accuracy_by_length: lengths[{i}] must be an int, got {n!r}")
    groups = sorted(set(lengths))
    acc = [float(np.mean([bool(c) for l, c in zip(lengths, correct) if l == g])) for g in groups]
    n = [sum(l == g for l in lengths) for g in groups]
    fig, ax, own = _figure_and_axes(ax, (max(5.0, 0.6 * len(groups) + 2), 3.6), "plot_accuracy_by_length")
    bars = ax.bar([str(g) for g in groups], acc, color=NEUTRAL)
    ax.bar_label(bars, labels=[f"{a:.0%}\nn={k}" for a, k in zip(acc, n)], fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set(xlabel=xlabel, ylabel="accuracy", title=title or "Accuracy by length")
    return _finish(fig, save_to, own)


def plot_label_agreement(predicted, gold, names=("Monte-Carlo", "gold"), title=None, ax=None, save_to=None):
    """2x2 confusion of step labels (e.g. Monte-Carlo estimates vs gold); rows = gold, columns = predicted.

    Takes flat lists of bools or per-solution lists of lists of the same shape.
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    if not isinstance(names, (list, tuple)) or len(names) != 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(f"plot_label_agreement: names must be two strs (predicted's, gold's), got {names!r:.60}")
    nested = lambda xs: [x if isinstance(x, (list, tuple, np.ndarray)) else [x] for x in xs]
    rows_p, rows_g = nested(predicted), nested(gold)
    if len(rows_p) != len(rows_g):  # zip would stop at the shorter: the extra solutions would be left out unnoticed
        raise ValueError(f"plot_label_agreement: {len(rows_p)} predicted vs {len(rows_g)} gold entries (solutions, or "
                         f"labels when flat): entry {min(len(rows_p), len(rows_g))} has no counterpart")
    for i, (a, b) in enumerate(zip(rows_p, rows_g)):  # a shift would pair the wrong steps
        if len(a) != len(b):
            raise ValueError(f"plot_label_agreement: solution {i} has {len(a)} predicted but {len(b)} gold labels")
        for name, labels in ((names[0], a), (names[1], b)):  # a None would count as a wrong step
            check_labels(labels, "plot_label_agreement", f"solution {i}: {name} labels")
    flat = lambda xs: [bool(v) for x in nested(xs) for v in x]
    p, g = flat(predicted), flat(gold)
    if len(p) != len(g) or not p:
        raise ValueError(f"plot_label_agreement: {len(p)} predicted vs {len(g)} gold labels (need equal, > 0)")
    cm = np.array([[sum(gi == a and pi == b for pi, gi in zip(p, g)) for b in (True, False)] for a in (True, False)])
    fig, ax, own = _figure_and_axes(ax, (4.4, 3.8), "plot_label_agreement")
    ax.imshow(cm, cmap="Blues")
    for i, j in np.ndindex(2, 2):
        ax.text(j, i, f"{cm[i, j]}\n{cm[i, j] / len(p):.0%}", ha="center", va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["correct", "wrong"])
    ax.set_yticks([0, 1], ["correct", "wrong"])
    ax.set(xlabel=f"{names[0]} label", ylabel=f"{names[1]} label",
           title=title or f"Agreement {np.trace(cm) / len(p):.1%} of {len(p)} steps")
    return _finish(fig, save_to, own)


def plot_outcome_roc(scores, labels, histogram: str | None = None, title=None, solutions: str = "held-out solutions",
                     ax=None, save_to=None):
    """Left: the ROC curve of each solution scorer (``scores``: name -> one log-odds score per solution) against
    whether the solution is right, its AUROC in the legend. Right, with ``histogram`` (a name of ``scores``): that
    scorer's P(correct) = σ(score) for right and wrong solutions, over the range the scores use. ``solutions``: what
    the solutions are, in the default title ("ROC on held-out solutions"). ``ax``: the matplotlib Axes to draw the
    ROC into, in the caller's figure (not with ``histogram``, a second panel); by default a figure of its own."""
    from sklearn.metrics import roc_curve  # scikit-learn loads in a second: only this picture needs it

    labels = list_of(labels, "plot_outcome_roc: labels", "labels, one per solution")
    check_labels(labels, "plot_outcome_roc", "labels")  # cast to bool, None was a wrong solution and 0.7 a right one
    if not labels:  # sklearn's error was about broadcasting shapes
        raise ValueError("plot_outcome_roc: labels is empty (one label per solution)")
    labels = np.asarray(labels, dtype=bool)
    if not isinstance(scores, dict):  # one scorer's list: an AttributeError on .items()
        raise ValueError(f"plot_outcome_roc: scores must be a dict of name -> one score per solution, e.g. "
                         f"{{'ORM': scores}}, got {type(scores).__name__}")
    if not scores:  # an empty picture: the diagonal alone
        raise ValueError("plot_outcome_roc: scores is empty (name -> one score per solution)")
    if histogram is not None and histogram not in scores:
        raise ValueError(f"plot_outcome_roc: histogram {histogram!r} is none of the scores' names {list(scores)}")
    if histogram and ax is not None:  # one Axes holds the ROC alone
        raise ValueError("plot_outcome_roc: histogram needs a second Axes, beside the ROC in a figure of its own: "
                         "leave out ax, or histogram")
    for name, s in scores.items():  # sklearn's errors say neither which scorer nor which solution
        s = list_of(s, f"plot_outcome_roc: scores[{name!r}]", "scores, one per solution")
        if len(s) != len(labels):
            raise ValueError(f"plot_outcome_roc: scores[{name!r}] has {len(s)} scores for {len(labels)} labels")
        for i, x in enumerate(s):
            finite_number(x, f"scores[{name!r}][{i}]", "plot_outcome_roc")
    if histogram:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 4), layout="constrained")
        ax, own = axes[0], True
    else:
        fig, ax, own = _figure_and_axes(ax, (4.8, 4), "plot_outcome_roc")
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(labels, s)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {outcome_auroc(s, labels):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="wrong solutions accepted", ylabel="right solutions accepted",
           title=title or f"ROC on {solutions}")
    ax.legend(loc="lower right", fontsize=8)
    if histogram:
        p = sigmoid(np.asarray(scores[histogram], dtype=float))
        bins = np.linspace(p.min(), p.max(), 21)  # the range the scores use, so that small differences show
        axes[1].hist(p[labels], bins=bins, alpha=0.6, color="C2", label=f"right answer ({labels.sum()})")
        axes[1].hist(p[~labels], bins=bins, alpha=0.6, color="C3", label=f"wrong answer ({(~labels).sum()})")
        axes[1].set(xlabel=f"{histogram}: P(correct) = σ(reward)", ylabel="solutions", title=f"{histogram} scores")
        axes[1].legend(fontsize=8)
    return _finish(fig, save_to, own)


def plot_step_calibration(step_rewards, step_labels, n_bins: int = 10, threshold=None, title=None, save_to=None):
    """A reliability diagram of a PRM's step probabilities P = σ(reward) (``diagnostics.step_calibration``: one list
    of rewards and of labels per solution). Top: each bin's share of right steps against its mean P (a marker's
    area grows with the bin's steps; a red line is its gap to the diagonal, which the ECE weighs by those steps),
    with the ECE and Brier score in the key; a calibrated PRM lies on the dotted diagonal. Bottom: how many steps
    each bin holds, on a log scale (a bin of a few steps has a noisy share). ``threshold``: a dashed line at
    σ(threshold) in both, e.g. notebook 02's first-error threshold.

    threshold: log-odds (a probability p is log(p / (1 - p)))."""
    if threshold is not None:
        threshold = finite_number(threshold, "threshold", "plot_step_calibration")
    try:
        calibration = step_calibration(step_rewards, step_labels, n_bins)
    except ValueError as e:
        raise ValueError(f"plot_step_calibration: {e}") from None
    filled = [b for b in calibration["bins"] if b["count"]]
    mean_p, right, counts = (np.array([b[k] for b in filled], dtype=float) for k in ("mean_p", "right_share", "count"))
    fig, (ax, below) = plt.subplots(2, 1, figsize=(5.6, 6.0), sharex=True, layout="constrained",
                                    gridspec_kw={"height_ratios": [3, 1.2]})
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="calibrated: share right = P")
    ax.vlines(mean_p, np.minimum(mean_p, right), np.maximum(mean_p, right), color=WRONG, lw=1.5, alpha=0.8,
              label="gap to the diagonal")
    # the key's marker is the line's, of one size: the scatter's would show the largest bin's
    ax.plot(mean_p, right, "-o", color=NEUTRAL, lw=1, ms=5, alpha=0.6,
            label=f"PRM (ECE {calibration['ece']:.3f}, Brier {calibration['brier']:.3f})")
    ax.scatter(mean_p, right, s=20 + 280 * np.sqrt(counts / counts.max()), color=NEUTRAL, edgecolor="white",
               zorder=3)
    width = 1 / len(calibration["bins"])
    bars = below.bar([b["low"] + width / 2 for b in filled], counts, width=0.9 * width, color=NEUTRAL)
    below.bar_label(bars, labels=[f"{int(c):,}" for c in counts], fontsize=7)
    below.set_yscale("log")
    below.set_ylim(0.7, counts.max() * 4)  # room for the labels above the tallest bar
    if threshold is not None:
        for axis in (ax, below):
            axis.axvline(sigmoid(threshold), color=HIGHLIGHT, ls="--", lw=1.5,
                         label=f"threshold P = {probability_text(sigmoid(threshold))}")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.03, 1.03), ylabel="share of the steps right",
           title=title or f"Calibration of P = σ(reward) on {calibration['steps']:,} steps")
    ax.legend(loc="upper left", fontsize=8)
    below.set(xlabel="P(step correct) = σ(reward), in bins", ylabel="steps")
    return _finish(fig, save_to)


# ----------------------------------------------------------------------------- explorer widget

def _figure_output(fig) -> dict:
    """A display_data output holding ``fig`` as PNG (works without a kernel or frontend attached)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<step rewards>"}}


def _explorer_figure(rewards, verdicts, threshold):
    """The explorer's picture: one panel of P = σ(reward) bars per solution, the first with a reward below the
    log-odds ``threshold`` in a shaded column under a ▼ (an outline on a bar of P ≈ 0 was not to be seen), a dashed
    line at σ(threshold)."""
    p_threshold = sigmoid(threshold)
    fig, axes = plt.subplots(len(rewards), 1, figsize=(7, 0.45 + 1.25 * len(rewards)), squeeze=False,
                             layout="constrained", sharex=True)
    for j, (ax, r) in enumerate(zip(axes[:, 0], rewards)):
        probs, (labels, gold_fe) = sigmoid(r), _gold(verdicts[j]) if verdicts else (None, None)
        colors = [NEUTRAL] * len(r) if labels is None else [CORRECT if ok else WRONG for ok in labels]
        bars = ax.bar(np.arange(1, len(r) + 1), probs, color=colors, width=0.7)
        pred = predict_first_error(r, threshold)
        if pred >= 0:
            ax.axvspan(pred + 0.5, pred + 1.5, color=HIGHLIGHT, alpha=0.18, lw=0, zorder=0)
            ax.plot([pred + 1], [min(probs[pred] + 0.3, 1.1)], marker="v", ms=9, color=HIGHLIGHT, ls="")
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)  # a step the PRM gives P ≈ 0 has no bar to see
        ax.axhline(p_threshold, color="grey", ls="--", linewidth=0.8)
        ax.set_ylim(0, 1.2)  # room for the label of a bar at 1
        gold = "" if labels is None else f" · gold: {'none' if gold_fe < 0 else f'step {gold_fe + 1}'}"
        ax.set_title(f"solution {j + 1}: predicted first error "
                     f"{'none' if pred < 0 else f'step {pred + 1}'}{gold}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    longest = max([len(r) for r in rewards] + [1])
    axes[-1, 0].set(xlabel="step", xlim=(0.4, longest + 0.6), xticks=range(1, longest + 1))
    fig.supylabel("P(step right) = σ(reward)", fontsize=9)
    handles = ([Patch(color=CORRECT, label="right step (checker)"), Patch(color=WRONG, label="wrong step (checker)")]
               if verdicts else [])
    handles += [Line2D([], [], marker="v", ms=8, ls="", color=HIGHLIGHT, mec=HIGHLIGHT,
                       label="▼ and shaded column: predicted first error"),
                Line2D([], [], color="grey", ls="--", linewidth=0.8,
                       label=f"threshold ({probability_text(p_threshold)})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=7)
    return fig


def _steps_of(solution, delimiter) -> list:
    return list(solution) if not isinstance(solution, str) else extract_steps(solution, delimiter)


def _explorer_html(problem, solutions, rewards, verdicts, threshold, delimiter) -> str:
    """The explorer's text: each solution's steps, coloured by P, the first with a reward below the log-odds
    ``threshold`` outlined."""
    rows = [f"<div style='font-family:monospace;white-space:pre-wrap'><b>{html.escape(_text_of(problem))}</b></div>"]
    for j, (sol, r) in enumerate(zip(solutions, rewards)):
        steps = _steps_of(sol, delimiter)  # as many as rewards: step_reward_explorer checks it
        pred, labels = predict_first_error(r, threshold), _gold(verdicts[j])[0] if verdicts else None
        cells = []
        for k, (s, p) in enumerate(zip(steps, sigmoid(r))):
            style = f"background:rgba({int(255 * (1 - p))},{int(200 * p)},80,0.18);padding:1px 4px;"
            style += f"outline:2px solid {HIGHLIGHT};" if k == pred else ""
            style += f"color:{WRONG};" if labels is not None and not labels[k] else ""
            cells.append(f"<span style='{style}' title='σ={p:.2f}'>{html.escape(_short(s, 40))}</span>")
        rows.append(f"<div style='font-family:monospace;font-size:12px'><b>#{j + 1}</b> {' '.join(cells)}</div>")
    legend = (f"<div style='font-size:11px;color:#555'>orange outline: first step with σ(reward) &lt; "
              f"{probability_text(sigmoid(threshold))} = σ(threshold)"
              f"{'; red text: gold-wrong step' if verdicts else ''}</div>")
    return "".join(rows) + legend


def step_reward_explorer(problems, solutions, step_rewards, verdicts=None, threshold: float = 0.0,
                         delimiter: str = DEFAULT_DELIMITER):
    """An ipywidgets explorer: pick a problem, see its solutions' per-step rewards and first predicted error (the
    first step whose reward is below ``threshold``).

    ``solutions[i]`` are problem i's solutions (texts, split with ``delimiter``, or lists of steps),
    ``step_rewards[i][j]`` the step rewards (log-odds) of solution j, ``verdicts[i][j]`` optional gold
    verdicts (``task_problems.Verdict``, dicts with ``step_labels``, or lists of step labels). Returns a
    ``StepRewardExplorer`` (a ``VBox`` whose text form is one line, for a static copy) with
    ``.picker``, ``.threshold`` (a slider in log-odds), ``.html`` and ``.output`` attributes; it builds and updates
    without a frontend. The pictures draw P = σ(reward) and the threshold as σ(threshold).

    threshold: log-odds (a probability p is log(p / (1 - p))), within ±``EXPLORER_THRESHOLD_LIMIT``.
    """
    threshold = finite_number(threshold, "threshold", "step_reward_explorer")
    if abs(threshold) > EXPLORER_THRESHOLD_LIMIT:  # σ would round to 0 or 1: every step, or none, rejected
        raise ValueError(f"step_reward_explorer: threshold is log-odds within ±{EXPLORER_THRESHOLD_LIMIT}, got "
                         f"{threshold!r} (a probability p is log(p / (1 - p)))")
    # every problem checked here, by name: a bad one found only when picked failed inside the widget's observer
    problems = list_of(problems, "step_reward_explorer: problems", "problems (or their prompt texts)")
    solutions = list_of(solutions, "step_reward_explorer: solutions", "lists of solutions (one per problem)")
    step_rewards = list_of(step_rewards, "step_reward_explorer: step_rewards", "lists of step-reward lists")
    if not (len(problems) == len(solutions) == len(step_rewards)) or not len(problems):
        raise ValueError(f"step_reward_explorer: {len(problems)} problems, {len(solutions)} solution lists and "
                         f"{len(step_rewards)} reward lists (need equal, > 0)")
    if verdicts is not None and len(verdicts) != len(problems):  # fewer: an IndexError at that problem's turn
        raise ValueError(f"step_reward_explorer: {len(verdicts)} verdict lists for {len(problems)} problems")
    for i in range(len(problems)):
        solutions[i] = list_of(solutions[i], f"step_reward_explorer: solutions[{i}] (problem {i})",
                               "solutions (texts or step lists)")
        step_rewards[i] = list_of(step_rewards[i], f"step_reward_explorer: step_rewards[{i}] (problem {i})",
                                  "step-reward lists (one per solution)")
        sols, rews = solutions[i], step_rewards[i]
        if len(sols) != len(rews) or (verdicts is not None and len(verdicts[i]) != len(rews)):
            raise ValueError(f"step_reward_explorer: problem {i} has {len(sols)} solutions but {len(rews)} reward "
                             "lists" + ("" if verdicts is None else f" and {len(verdicts[i])} verdicts"))
        for j, (sol, r) in enumerate(zip(sols, rews)):  # a step without a reward would be dropped, or shown blank
            where = f"(problem {i}, solution {j})"
            if not isinstance(sol, str):  # the checked list kept: a generator's steps were used up by the check
                sols[j] = sol = list_of(sol, f"step_reward_explorer: solutions[{i}][{j}] {where}",
                                        "steps, or one solution text")
            if r is None:  # score_candidates' unreadable candidate
                raise ValueError(f"step_reward_explorer: step_rewards[{i}][{j}] {where} is None, an unscored "
                                 "solution (blank, or too long for the reward model): leave it out of both solutions "
                                 "and step_rewards")
            rews[j] = r = finite_scores(r, "step_reward_explorer", f"problem {i}, solution {j}, step")
            n_steps = len(_steps_of(sol, delimiter))
            n_labels = None if verdicts is None else len(_gold(verdicts[i][j], f"verdicts[{i}][{j}]")[0])
            if n_steps != len(r) or n_labels not in (None, len(r)):
                raise ValueError(f"step_reward_explorer: problem {i}, solution {j} has {len(r)} rewards, {n_steps} "
                                 "steps" + ("" if n_labels is None else f" and {n_labels} step labels")
                                 + " (need one of each per step)")
    picker = widgets.Dropdown(options=[(f"{i + 1}: {_short(_text_of(p), 48)}", i) for i, p in enumerate(problems)],
                        value=0, description="problem")
    slider = widgets.FloatSlider(value=threshold, min=min(-8.0, threshold), max=max(8.0, threshold), step=0.05,
                           description="log-odds")  # the range holds the value given, not to clamp it
    text, out = widgets.HTML(), widgets.Output()

    def update(_=None):
        i, thr = picker.value, slider.value
        ver = verdicts[i] if verdicts is not None else None
        text.value = _explorer_html(problems[i], solutions[i], step_rewards[i], ver, thr, delimiter)
        out.outputs = (_figure_output(_explorer_figure(step_rewards[i], ver, thr)),) if len(step_rewards[i]) else ()

    picker.observe(update, names="value")
    slider.observe(update, names="value")
    update()
    box = StepRewardExplorer([widgets.HBox([picker, slider]), text, out])
    box.picker, box.threshold, box.html, box.output = picker, slider, text, out
    return box


class StepRewardExplorer(widgets.VBox):
    """``step_reward_explorer``'s widget. Its text form, what a static copy of a notebook shows in its place, is one
    line saying what it is, not the repr of every child widget."""

    def __repr__(self) -> str:
        return (f"<step reward explorer: {len(self.picker.options)} problem(s), threshold P = "
                f"{probability_text(sigmoid(self.threshold.value))}; live in a running notebook only>")


def save_explorer_png(explorer, path) -> Path:
    """The explorer's current picture (the problem picked, at the threshold set) as a PNG file, written
    atomically: a static copy of the notebook has no live widget, the file stays. ``path`` must end in .png (the
    picture is held as PNG bytes); a folder, or another extension, is a ValueError naming it."""
    _figure_format(path, ("png",), "save_explorer_png")
    outputs = explorer.output.outputs
    if not outputs:
        raise ValueError("save_explorer_png: the explorer shows no picture (the problem has no scored solution)")
    png = base64.b64decode(outputs[0]["data"]["image/png"])
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(png))


# ----------------------------------------------------------------------------- test-time compute (notebook 07)

def plot_test_time_compute(table, title=None, ax=None, save_to=None):
    """Accuracy (in percent) against generated tokens per problem, one line per method across budgets.

    ``table``: ``{str(B): {method: accuracy, "tokens": {method: tokens per problem}, ...}}``
    (``search.compare_at_budgets``); the key names each method in words, and a line on an earlier one's points is
    dashed, with open markers. A dotted vertical line, labelled "B=…" above the axes, marks each budget's token
    cap; a method's point for budget B lies at the tokens it generated, left of the line or just past it.
    ``ax``: the matplotlib Axes to draw into, in the caller's figure; by default a figure of its own.
    """
    budgets = sorted(table, key=int)
    if not budgets:
        raise ValueError("plot_test_time_compute: no budgets")
    methods = list(dict.fromkeys(m for b in budgets for m in table[b].get("tokens", {})))
    fig, ax, own = _figure_and_axes(ax, (6.8, 4.2), "plot_test_time_compute")
    styles = {"majority": dict(ls="--", color="black", marker="s"), "best_of_n_orm": dict(color="#8c6bb1", marker="o"),
              "best_of_n_prm": dict(color=CHOSEN, marker="o"), "beam_prm": dict(color=HIGHLIGHT, marker="D", lw=2),
              "dvts_prm": dict(color=CORRECT, marker="^")}
    series = {}
    for method in methods:
        pts = [(table[b]["tokens"][method], table[b][method]) for b in budgets
               if method in table[b] and method in table[b]["tokens"]]
        if pts:
            series[method] = ([p[0] for p in pts], [p[1] for p in pts])
    over = _hiding(series)  # DVTS on beam search's points: dashed, open, so that both show
    for method, (x, y) in series.items():
        ax.plot(x, y, label=method_name(method), **{**styles.get(method, dict(marker="o")),
                                                     **(OVER if method in over else {})})
    ax.set_xscale("log", base=2)
    ticks, names = [], []
    for b in budgets:
        if "token_budget" in table[b]:
            ticks.append(table[b]["token_budget"])
            names.append(f"B={b}")
            ax.axvline(ticks[-1], color="grey", lw=0.8, ls=":")
    if ticks:
        ax.set_xticks(ticks, [f"{t:.0f}" for t in ticks])
        ax.minorticks_off()
        top = ax.secondary_xaxis("top")  # the budgets' names above the axes: inside, they sat on the points
        top.set_xticks(ticks, names, fontsize=8, color="#555")
        top.minorticks_off()
        top.tick_params(length=0)
    ax.set(xlabel="generated tokens per problem (log scale; dotted: the budget, B x one solution)",
           title=title or "Test-time compute at equal generated tokens")
    _percent_axis(ax, "final-answer accuracy (%)")
    ax.grid(alpha=0.3)
    _key(fig, ax, own, "right center", fontsize=8)
    return _finish(fig, save_to, own)


# The checker's verdict beside a node of plot_beam_tree: right, wrong (glyph, colour)
VERDICT_MARKS = {True: ("✓", CORRECT), False: ("✗", WRONG)}
CLEAR_BOX = dict(boxstyle="square,pad=0.05", fc="white", ec="none")  # behind text the chosen path's line runs through


def _step_caption(step: str, width: int) -> str:
    """A step's text, short: no delimiter, no 'Step k:' prefix, the answer line as '⇒ x'."""
    text = " ".join(str(step).split())
    text = re.sub(r"^Step\s*\d*\s*:?\s*", "", text)
    text = re.sub(r"\s*Answer:\s*", " ⇒ ", text)
    return _short(text, width)


def plot_beam_tree(result, labels=None, title=None, width: int = 22, threshold: float = 0.0, ax=None, save_to=None):
    """The search tree of one problem (``search.SearchResult``): every sampled step, coloured by its own PRM
    probability σ(reward), kept beams solid and pruned branches faded and dashed, the chosen path in bold.

    ``labels`` (optional, ``search_report.tree_labels``): node id -> whether the step is right (gold checker); a right
    step gets a green ✓ beside its node, a wrong one a red ✗ (``VERDICT_MARKS``): a ring in the fill's own hues could
    not be told from it. Each node shows its step text and σ(reward). The chosen answer is a star; a chosen beam
    the search cut (``result.answered`` False: no answer yet) is a cross. The colour scale is the heatmaps'
    (``reward_norm``): yellow at σ(``threshold``), the PRM's threshold in log-odds (notebook 02's,
    ``reward_reports.prm_threshold``), green above it, red below.
    ``ax``: the matplotlib Axes to draw into, its colour bar beside it, in the caller's figure; by default a figure of
    its own.
    """
    if not hasattr(result, "nodes"):  # e.g. the list of one budget's results: an AttributeError
        raise ValueError(f"plot_beam_tree: result must be one problem's search.SearchResult, got "
                         f"{type(result).__name__}")
    nodes = list(result.nodes)
    if not nodes:
        raise ValueError("plot_beam_tree: the search result has no nodes")
    children: dict = {}
    for n in nodes:
        children.setdefault(n.parent, []).append(n)
    for kids in children.values():  # DVTS: each subtree's first steps together (Node.group), so its tree stands apart
        kids.sort(key=lambda n: (n.group, not n.kept, -n.score))
    y, next_leaf = {}, [0]

    def place(n):
        kids = children.get(n.id, [])
        for k in kids:
            place(k)
        if kids:
            y[n.id] = float(np.mean([y[k.id] for k in kids]))
        else:
            y[n.id] = float(next_leaf[0])
            next_leaf[0] += 1

    for root in children.get(None, []):
        place(root)
    chosen = {n.id for n in result.path()} if result.chosen is not None else set()
    depth = max(n.depth for n in nodes) + 1
    # 1.6 in a step, room for an 8 pt caption before the next step's nodes, and no wider: Jupyter scales a figure
    # down to its cell's width (about 1000 px), and in a wider tree the captions would shrink past reading
    fig, ax, own = _figure_and_axes(ax, (min(1.6 * (depth + 2.1) + 1.1, 22), max(3.0, 0.3 * next_leaf[0] + 1.4)),
                                    "plot_beam_tree")
    threshold = finite_number(threshold, "threshold", "plot_beam_tree")
    cmap, norm = colormaps["RdYlGn"], reward_norm(sigmoid(threshold))
    root_y = float(np.mean([y[n.id] for n in children.get(None, [])]))
    ax.scatter([0], [root_y], s=60, color="black", marker="s", zorder=3)
    ax.annotate("prompt", (0, root_y), textcoords="offset points", xytext=(-6, 6), ha="right", fontsize=8.5)
    # in the beam to the end: a finished beam that better prefixes pushed out later is pruned (pruning_report's view)
    stayed = {n.id for n in nodes if n.kept and n.pruned_at is None}
    bright = stayed | chosen  # the chosen answer may be a finished beam pushed out later: drawn in full all the same
    for n in nodes:
        px, py = (0, root_y) if n.parent is None else (n.depth, y[n.parent])
        on_path = n.id in chosen
        style = dict(color=CHOSEN, lw=2.4, zorder=2) if on_path else (
            dict(color="#555", lw=1.0, zorder=1) if n.id in stayed else dict(color="#bbb", lw=0.7, ls="--", zorder=0))
        ax.plot([px, n.depth + 1], [py, y[n.id]], **style)
    for n in nodes:
        p = sigmoid(n.reward) if n.reward is not None else float("nan")
        face = cmap(norm(p)) if p == p else "#dddddd"
        verdict = labels.get(n.id) if labels else None
        marker = ("*" if result.answered else "X") if n.id == result.chosen else ("s" if n.finished else "o")
        ax.scatter([n.depth + 1], [y[n.id]], s=140 if marker in ("*", "X") else 48, color=face, marker=marker,
                   edgecolors="#333", linewidths=0.6, alpha=1.0 if n.id in bright else 0.45, zorder=4)
        shift = 7
        if verdict is not None:  # the checker's verdict, opaque on pruned steps too: what the search cut matters
            mark, color = VERDICT_MARKS[bool(verdict)]
            ax.annotate(mark, (n.depth + 1, y[n.id]), textcoords="offset points", xytext=(shift, 0), va="center",
                        fontsize=9.5, fontweight="bold", color=color, zorder=5,
                        bbox=CLEAR_BOX)  # over the chosen path's line
            shift += 10
        caption = f"{_step_caption(n.step, width)}  {p:.2f}" if p == p else _step_caption(n.step, width)
        # on the chosen path, white behind it as behind the marks: the path's line runs on through the caption
        ax.annotate(caption, (n.depth + 1, y[n.id]), textcoords="offset points", xytext=(shift, 0), va="center",
                    fontsize=8, color="black" if n.id in bright else "#555",
                    fontweight="bold" if n.id in chosen else "normal", zorder=5,
                    bbox=CLEAR_BOX if n.id in chosen else None)
    groups = sorted({n.group for n in nodes})
    for g in groups if len(groups) > 1 else []:  # a line between DVTS's subtrees, each named at its top
        rows = [y[n.id] for n in nodes if n.group == g]
        if g != groups[0]:
            ax.axhline(min(rows) - 0.5, color="#ccc", lw=0.6, ls=":", zorder=0)
        ax.annotate(f"subtree {g + 1}", (0.55, min(rows)), fontsize=8, color="#777", va="center")
    ax.set_xlim(-0.6, depth + 1.5)
    ax.set_ylim(next_leaf[0] - 0.5, -0.8)
    ax.set_xticks(range(depth + 1), ["prompt"] + [f"step {d}" for d in range(1, depth + 1)])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6, fraction=0.03, pad=0.01,
                       label="σ(step reward)")
    bar.set_ticks([0, norm.vcenter, 1], labels=["0", f"thr. {probability_text(norm.vcenter)}", "1"])
    bar.ax.axhline(norm.vcenter, color="black", linewidth=1.2)
    handles = [Line2D([], [], color=CHOSEN, lw=2.4, label="chosen path"),
               Line2D([], [], color="#555", lw=1.0, label="kept in the beam"),
               Line2D([], [], color="#bbb", lw=0.7, ls="--", label="pruned"),
               Line2D([], [], marker="s", ls="", color="#999", label="finished"),
               Line2D([], [], marker="*", ls="", color="#999", markersize=10, label="chosen answer")]
    if result.chosen is not None and not result.answered:  # the star claimed an answer the beam never wrote
        handles[-1] = Line2D([], [], marker="X", ls="", color="#999", markersize=8, label="chosen, cut with no answer")
    if labels and any(v is not None for v in labels.values()):
        handles += [Line2D([], [], marker=f"${mark}$", ls="", color=color, markersize=7, label=f"{word} (checker)")
                    for mark, color, word in (VERDICT_MARKS[True] + ("right step",),
                                              VERDICT_MARKS[False] + ("wrong step",))]
    _key(fig, ax, own, "lower center", handles, ncol=4, fontsize=8)
    shape = f"{result.n_beams} beam(s) x {result.expansions} expansions" + (
        f", {result.n_subtrees} subtrees" if result.n_subtrees > 1 else "")
    ax.set_title(title or f"PRM-guided beam search ({shape}; {result.tokens} tokens generated)", fontsize=10)
    return _finish(fig, save_to, own)
