"""Which steps a trained policy credits: its implicit per-step reward β·ρ_k, against where its training started.

A DPO-trained policy carries an implicit reward, r(x, y) = β·log π(y | x) / π_ref(y | x) (Rafailov et al. 2023,
arXiv:2305.18290: DPO's loss is a reward model's loss with this r). Cut into steps (its token-level reading, Rafailov et
al. 2024, "From r to Q*", arXiv:2404.12358) it reads ρ_k = log π(s_k | x, s_<k) − log π_ref(s_k | x, s_<k)
(``trainer.get_step_rewards``), and β·ρ_k says how much training raised (> 0) or lowered (< 0) step k. Notebook 05 reads
it on the rejected solutions of test preference pairs: did plain DPO lower a rejected solution's right beginning with
its mistake, and Stepwise DPO only the mistake?

- ``mean_by_label``: the mean of per-step values over the steps with one label;
- ``implicit_step_rewards``: one policy's β·ρ_k against where its training started (``step_beta``, ``step_delimiter``:
  the β of a saved policy's step loss and where it split solutions into steps);
- ``implicit_rewards_of_pairs``: several policies on both sides of preference pairs, with one β, each against
  its own start (a LoRA policy its adapter, a full fine-tune the base given);
- ``credit_by_policy`` (``format_credit``): per policy, the mean β·ρ_k of the chosen steps and of the rejected
  solutions' right and wrong steps, the table notebook 05 prints;
- ``pick_credit_example``, ``credit_example``: the one rejected solution notebook 05 draws
  (``viz.plot_before_after``) and its bars, as recorded in ``metrics.json``.

A PRM's step rewards of the same pairs, and notebook 05's other summaries, are in ``step_reward_summaries``; the
pictures in ``viz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from accelerate.utils import is_peft_model

from ..checks import finite_number, list_of, positive_int
from ..evaluation import check_labels, check_same_shape
from ..rewards import read_saved_config
from ..steps import DEFAULT_DELIMITER
from ..trainer import StepwiseDPOConfig, get_step_rewards


def mean_by_label(step_values, step_labels, label: bool) -> float | None:
    """Mean of the per-step values whose label is ``label`` (one list of each per solution); None when no step
    has it (as ``diagnostics.step_auroc_by_position``: an undefined figure, which JSON, unlike NaN, can record)."""
    if label not in (True, False):  # "yes" matched no step: None, as if no step had the label
        raise ValueError(f"mean_by_label: label must be True or False (or 1 / 0, as the labels), got {label!r:.40}")
    check_same_shape(step_values, step_labels, "mean_by_label")
    for i, labels in enumerate(step_labels):  # bool(None) would count a missing label as wrong
        check_labels(labels, "mean_by_label", f"step_labels[{i}]")
    for i, values in enumerate(step_values):  # a NaN made the mean NaN, None a TypeError from numpy
        for k, v in enumerate(values):
            finite_number(v, f"step_values[{i}][{k}] (solution {i}, step {k})", "mean_by_label")
    picked = [v for vs, ls in zip(step_values, step_labels) for v, y in zip(vs, ls) if bool(y) == label]
    return float(np.mean(picked)) if picked else None


def implicit_step_rewards(policy, tokenizer, prompts, responses, *, start=None, beta: float = 0.1,
                          delimiter: str = DEFAULT_DELIMITER, batch_size: int = 8) -> list[list[float]]:
    """``β·ρ_k`` of a trained policy against where its training started (``get_step_rewards``): a LoRA (PEFT)
    policy against its own ``"ref"`` adapter, else its adapter disabled, and given no ``start``; a fully fine-tuned
    one against ``start`` (the model it was trained from), which it then needs. Steps are split at ``delimiter``
    (``step_delimiter``: the one the policy's step loss split them at)."""
    if is_peft_model(policy):
        if start is not None:  # it was dropped without a word: the reading was never against start
            raise ValueError("implicit_step_rewards: start is given, but the policy is a LoRA (PEFT) model, read "
                             "against its own 'ref' adapter, else its adapter disabled: pass start=None (start is "
                             "for a fully fine-tuned policy)")
    elif start is None:
        raise ValueError("implicit_step_rewards: a fully fine-tuned policy needs `start`, the model it was trained "
                         "from, as its reference")
    return get_step_rewards(policy, tokenizer, prompts, responses, ref_model=start, beta=beta, delimiter=delimiter,
                            batch_size=batch_size)


def _saved_step_setting(policy_dir, name: str, default):
    """Field ``name`` of a saved Stepwise DPO policy's ``stepwise_config.json``, or ``default`` where the folder
    has no such file (a policy another trainer saved) or the file no such field. A folder that is not there (a
    mistyped path) is refused: the default would have been read as the policy's own. A broken file: a ValueError
    naming it (``rewards.read_saved_config``)."""
    if not Path(policy_dir).is_dir():
        raise ValueError(f"{name}: no policy folder {str(policy_dir)!r}: pass the folder a trainer saved the policy in")
    path = Path(policy_dir) / "stepwise_config.json"
    return read_saved_config(path, "Stepwise DPO policy").get(name, default) if path.exists() else default


def step_beta(policy_dir, default: float = StepwiseDPOConfig.step_beta) -> float:
    """The β of a saved Stepwise DPO policy's step loss (``step_beta`` in its ``stepwise_config.json``), or
    ``default`` (the config's own)."""
    beta = finite_number(_saved_step_setting(policy_dir, "step_beta", default), "step_beta", f"step_beta: {policy_dir}")
    if beta <= 0:  # β·ρ_k with β <= 0 would turn every credit around, or to 0
        raise ValueError(f"step_beta: {policy_dir}: step_beta must be > 0, got {beta!r}")
    return beta


def step_delimiter(policy_dir, default: str = StepwiseDPOConfig.step_delimiter) -> str:
    """Where a saved Stepwise DPO policy's step loss split solutions into steps (``step_delimiter`` in its
    ``stepwise_config.json``), or ``default`` (the config's own): its ρ_k are per step so split."""
    delimiter = _saved_step_setting(policy_dir, "step_delimiter", default)
    if not isinstance(delimiter, str) or not delimiter:  # str(None) was the delimiter "None"
        raise ValueError(f"step_delimiter: {policy_dir}: step_delimiter must be a non-empty str, got {delimiter!r}")
    return delimiter


def implicit_rewards_of_pairs(policies: dict, pairs, *, start=None, beta: float = 0.1,
                              delimiter: str = DEFAULT_DELIMITER,
                              batch_size: int = 8) -> dict[str, dict[str, list[list[float]]]]:
    """``implicit_step_rewards`` of each policy (name -> ``(model, tokenizer)``) on both sides of preference
    ``pairs`` (a dataset or dict with ``prompt``, ``chosen`` and ``rejected``): ``{name: {"chosen": [...],
    "rejected": [...]}}``. Every policy is read with the same ``beta`` and ``delimiter``, so that their rewards
    compare step by step, each against where its training started, decided per policy: a LoRA (PEFT) policy against
    its own adapter (it is given no ``start``), a fully fine-tuned one against ``start`` (the model it was trained
    from; None refuses it). So a caller passes the base once, whichever kind each policy is."""
    return {name: {side: implicit_step_rewards(model, tokenizer, pairs["prompt"], pairs[side],
                                               start=None if is_peft_model(model) else start, beta=beta,
                                               delimiter=delimiter, batch_size=batch_size)
                   for side in ("chosen", "rejected")}
            for name, (model, tokenizer) in policies.items()}


def _check_sides(implicit_rewards, sides: tuple[str, ...], who: str) -> None:
    """``implicit_rewards`` as ``implicit_rewards_of_pairs`` returns it: name -> {side: rewards}, each side given."""
    if not isinstance(implicit_rewards, dict):
        raise ValueError(f"{who}: implicit_rewards must be a dict of policy name -> {{'chosen': ..., 'rejected': "
                         f"...}} (implicit_rewards_of_pairs), got {type(implicit_rewards).__name__}")
    for name, r in implicit_rewards.items():
        if not isinstance(r, dict) or any(side not in r for side in sides):
            got = sorted(r) if isinstance(r, dict) else type(r).__name__
            raise ValueError(f"{who}: implicit_rewards[{name!r}] must be a dict with {list(sides)} "
                             f"(implicit_rewards_of_pairs), got {got}")


def credit_by_policy(implicit_rewards: dict, chosen_labels, rejected_labels) -> dict[str, dict]:
    """Notebook 05's credit table (``format_credit``) from ``implicit_rewards_of_pairs``: per policy, the mean
    implicit step reward of the chosen steps, and of the rejected solutions' right and of their wrong steps
    (``mean_by_label``: None where no step has that label)."""
    _check_sides(implicit_rewards, ("chosen", "rejected"), "credit_by_policy")
    return {name: {"chosen": mean_by_label(r["chosen"], chosen_labels, True),
                   "rejected_right": mean_by_label(r["rejected"], rejected_labels, True),
                   "rejected_wrong": mean_by_label(r["rejected"], rejected_labels, False)}
            for name, r in implicit_rewards.items()}


def format_credit(credit: dict[str, dict], n_pairs: int) -> str:
    """Notebook 05's credit table: per policy, the mean implicit step reward of the chosen steps and of the
    rejected solutions' right and wrong steps (``mean_by_label``; "n/a" where no step has that label)."""
    cell = lambda x: f"{'n/a' if x is None else f'{x:.3f}':>11s}"
    lines = [f"mean implicit step reward β·ρ_k over {n_pairs} test pairs",
             f"{'policy':14s} {'chosen steps':>13s} {'rejected ✓':>11s} {'rejected ✗':>11s}"]
    lines += [f"{name:14s}   {cell(c['chosen'])} {cell(c['rejected_right'])} {cell(c['rejected_wrong'])}"
              for name, c in credit.items()]
    return "\n".join(lines)


def pick_credit_example(rejected_step_labels) -> int:
    """Index of the rejected solution notebook 05 uses for credit assignment: among those whose first step is right
    and that hold a wrong step, the one with the most right steps (the first on a tie); without such a solution,
    the one with the most right steps of all. A right beginning is what plain DPO may push down with the rest."""
    rows = list_of(rejected_step_labels, "pick_credit_example: rejected_step_labels", "lists of step labels")
    if not rows:
        raise ValueError("pick_credit_example: rejected_step_labels is empty")
    for i, labels in enumerate(rows):
        check_labels(labels, "pick_credit_example", f"rejected_step_labels[{i}]")
    rows = [list(labels) for labels in rows]
    late = [j for j, labels in enumerate(rows) if labels and labels[0] and False in labels]  # a right first step
    return max(late or range(len(rows)), key=lambda j: rows[j].count(True))


def credit_example(implicit_rewards: dict, rejected_labels, index: int) -> dict:
    """The bars of notebook 05's credit-assignment picture: rejected solution ``index`` of the pairs
    (``pick_credit_example``), its ``step_labels`` and, per policy, the implicit step reward β·ρ_k of each of
    its steps (``implicit_rewards_of_pairs``' rejected side): ``{"pair", "step_labels", "rewards": {name: [...]}}``,
    ``pair`` counted from 1 (``index + 1``), as the section's other records and pictures count pairs."""
    positive_int(index, "index", "credit_example", minimum=0)  # -1 drew the last pair and recorded it as pair -1
    _check_sides(implicit_rewards, ("rejected",), "credit_example")
    rejected_labels = list_of(rejected_labels, "credit_example: rejected_labels", "lists of step labels")
    if index >= len(rejected_labels):
        raise ValueError(f"credit_example: index {index}, but there are {len(rejected_labels)} rejected solutions")
    for name, r in implicit_rewards.items():  # rewards of other pairs would be read against these labels
        if len(r["rejected"]) != len(rejected_labels):
            raise ValueError(f"credit_example: {name}: rewards of {len(r['rejected'])} rejected solutions for "
                             f"{len(rejected_labels)} label lists")
    labels = list(rejected_labels[index])
    check_labels(labels, "credit_example", f"rejected_labels[{index}]")
    rewards = {name: [finite_number(x, f"{name}: rejected[{index}][{k}]", "credit_example")
                      for k, x in enumerate(r["rejected"][index])] for name, r in implicit_rewards.items()}
    for name, values in rewards.items():
        if len(values) != len(labels):
            raise ValueError(f"credit_example: {name}: {len(values)} step rewards for {len(labels)} step labels")
    return {"pair": index + 1, "step_labels": [bool(y) for y in labels], "rewards": rewards}
