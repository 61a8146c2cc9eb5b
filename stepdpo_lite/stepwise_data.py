"""Preference rows -> per-token step ids and per-step probabilities, and the collator that batches them.

``StepwiseDPOTrainer`` maps ``step_columns`` over TRL's tokenized preference dataset: every completion token gets
the index of the reasoning step it belongs to (from the tokenizer's offset mapping, ``steps.token_step_ids``), and
every step a correctness probability ``p``: gold labels; from a reward model's rewards, by default 1 − the drop in
σ(r) at the step (``mistake_made_here_labels``; ``reward_model_labels="reachable"``: σ(r) itself); or 1 / 0 for
chosen / rejected.
``DataCollatorForStepwisePreference`` pads these next to TRL's own columns and cuts them exactly where
``max_length`` cuts the tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import pad

from .data import BadField, check_preference_row
from .rewards import mistake_made_here_labels, sigmoid
from .steps import step_spans, token_step_ids

STEP_VALUE_COLUMNS = ("chosen_step_labels", "rejected_step_labels", "chosen_step_rewards", "rejected_step_rewards")
STEP_PAIRINGS = ("weighted", "first_error", "first_token")
REWARD_MODEL_LABELS = ("mistake_made_here", "reachable")  # the two meanings of a step label (docs/formats.md)


def check_row(ex, idx, fill=(), out=None, derived_prompt=False, unfilled=()):
    """One preference row, before TRL tokenizes it: ``data.check_preference_row``'s checks (non-blank string
    ``prompt``, ``chosen`` and ``rejected``, chosen != rejected, step labels bools or probabilities), and every column
    of ``fill`` (the step label / reward columns some row fills) filled: a row without would silently get the
    default labels. Every column of ``unfilled`` must stay empty: a streamed dataset is not read ahead, so its first
    row decides which step columns it has, and a later row's labels would make the rows before them defaults.
    Returns ``out`` (None for a ``Dataset.map``, which then writes nothing; ``{}`` for an ``IterableDataset``, which
    needs a dict)."""
    try:
        if derived_prompt and not ex["prompt"].strip():
            raise BadField("prompt", "is missing, and chosen and rejected share no prefix to take it from")
        check_preference_row(ex)
        open_ended = ex.get("open_ended")  # None: a whole-solution row in a dataset that has open-ended ones too
        if open_ended is not None and not isinstance(open_ended, bool):  # read by truth value: "false" drops the EOS
            raise BadField("open_ended", f"must be a bool (True: partial steps, no EOS), got {ex['open_ended']!r:.40}")
        for name in fill:
            if ex.get(name) is None:
                raise BadField(name, "is missing, but the dataset fills (or declares) this column: give every row step "
                                 "labels/rewards, or none")
        for name in unfilled:
            if ex.get(name) is not None:
                raise BadField(name, "is given, but the streamed dataset's first row has none (its first row decides "
                                 "which step columns it has): give every row step labels/rewards, or none")
    except BadField as e:
        raise ValueError(f"row {idx}: {e}") from None
    return out


def per_step_values(values, n_raw: int, n_kept: int, what: str, idx: int, kind: str = "prob") -> list[float]:
    """One response's per-step labels (``kind="prob"``) or log-odds rewards (``"reward"``; ``"reward_prob"``
    turns them into probabilities σ(r), ``"reward_mistake"`` into ``mistake_made_here_labels`` of σ(r)), checked
    against its step count and merged like its steps."""
    if kind not in ("prob", "reward", "reward_prob", "reward_mistake"):
        raise ValueError(f"per_step_values: kind must be 'prob', 'reward', 'reward_prob' or 'reward_mistake', got "
                         f"{kind!r}")
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, Real) for v in values):
        raise ValueError(f"row {idx}: `{what}` must be a list of numbers (one per step), got {values!r:.60}")
    if kind != "prob" and any(isinstance(v, bool) for v in values):  # True would read as log-odds 1: p = 0.73
        raise ValueError(f"row {idx}: `{what}` must be log-odds rewards, not bools (labels go in *_step_labels)")
    vals = [float(v) for v in values]
    if kind != "prob" and not all(map(math.isfinite, vals)):  # NaN reaches the loss; ±inf makes σ(R⁺ − R⁻) NaN
        raise ValueError(f"row {idx}: `{what}` must be finite log-odds, got {vals}")
    # labels go one per step written (merged below); a list as long as the kept steps would hide a missing label
    if len(vals) not in ((n_raw,) if kind == "prob" else (n_raw, n_kept)):
        raise ValueError(f"row {idx}: `{what}` has {len(vals)} entries but the response has {n_raw} steps "
                         "(check `step_delimiter`, or a blank step merged into the next)")
    if kind.startswith("reward_"):  # before a tail is merged: a drop is read between the steps as written
        vals = [sigmoid(v) for v in vals]
        vals = mistake_made_here_labels(vals) if kind == "reward_mistake" else vals
    if len(vals) > n_kept:  # max_reasoning_steps merged the tail into the last kept step: keep the weakest
        vals = vals[:n_kept - 1] + [min(vals[n_kept - 1:])]
    if kind == "prob" and any(not 0 <= v <= 1 for v in vals):
        raise ValueError(f"row {idx}: `{what}` must be bools or probabilities in [0, 1], got {vals}")
    return vals


def drop_appended_eos(ex, eos, eos_id):
    """For a row with ``open_ended`` set (its completions are partial solutions, e.g. one step after a shared
    prefix), remove the EOS that TRL's ``DPOTrainer`` appended to the chosen and rejected texts and token ids: a
    policy must not learn to stop there. Other rows are left as they are."""
    if not ex.get("open_ended"):
        return {}
    out = {}
    for side in ("chosen", "rejected"):
        ids, text = list(ex[f"{side}_ids"]), ex[side]
        if eos and text.endswith(eos) and ids and ids[-1] == eos_id:
            ids, text = ids[:-1], text[: -len(eos)]
        out[f"{side}_ids"], out[side] = ids, text
    return out


def _first_difference(a, b) -> int:
    """The first index where ``a`` and ``b`` differ; the shorter one's length where it is a prefix of the other."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def first_token_only(ex, first_diff_step):
    """Step ids that keep only the first completion token where chosen and rejected differ (in step
    ``first_diff_step``; all others −1): two next tokens at one shared state. The tokens after it are conditioned on
    other text and, on a rejected solution, often carry the error on faithfully: not mistakes to push down."""
    t = _first_difference(ex["chosen_ids"], ex["rejected_ids"])
    return {f"{side}_step_ids": [first_diff_step if i == t else -1 for i in range(len(ex[f"{side}_ids"]))]
            for side in ("chosen", "rejected")}


def without_shared_start(ex, step_ids, first_diff_step):
    """Step ids with the tokens that open step ``first_diff_step`` alike on both sides (before the first differing
    token) taken out of it (−1). They have one log-ratio on both sides: it cancels when p⁺ = 1 − p⁻, but under a
    PRM's soft labels it enters the margin with the weight p⁺ − (1 − p⁻) < 0 and pushes right tokens of the chosen
    solution down (``"Step 4: 19 * 1 = "`` before the digit that differs). A side whose step is all shared opening
    (``= 2`` against ``= 21``) keeps its first differing token, the next step's opening (it ended the number), as
    ``first_token_only`` does; an ``open_ended`` side that is a token prefix of the other has none to keep."""
    t, out = _first_difference(ex["chosen_ids"], ex["rejected_ids"]), {}
    for side, ids in step_ids.items():
        out[f"{side}_step_ids"] = kept = [-1 if i < t and k == first_diff_step else k for i, k in enumerate(ids)]
        if 0 <= first_diff_step and first_diff_step in ids and first_diff_step not in kept and t < len(kept):
            kept[t] = first_diff_step
    return out


def step_columns(ex, idx, tokenizer, delimiter, max_steps, pairing="weighted", max_length=None,
                 reward_labels="mistake_made_here", context=None):
    """One row's per-token step ids (offset mapping) and per-step p / rewards. ``pairing`` (the trainer's
    ``step_pairing``): ``"first_error"`` takes the shared opening tokens out of the first differing step
    (``without_shared_start``), ``"first_token"`` keeps that step's first differing token only (``first_token_only``).
    ``reward_labels`` (the trainer's ``reward_model_labels``): how step rewards become p when a side has no labels.
    ``context`` (the model's positions, given when nothing cuts the rows): a longer row is an error.
    ``max_length`` (given under ``keep_start`` truncation): a prompt that fills it is an error, where TRL's
    ``DPOTrainer`` would drop the row without a word (no completion token would be left to train)."""
    for name, value, allowed in (("pairing", pairing, STEP_PAIRINGS), ("reward_labels", reward_labels,
                                                                         REWARD_MODEL_LABELS)):
        if value not in allowed:  # a typo would act as "weighted" / "reachable", silently
            raise ValueError(f"step_columns: {name} must be one of {allowed}, got {value!r:.40}")
    if max_length is not None and len(ex["prompt_ids"]) >= max_length:
        raise ValueError(f"row {idx}: `prompt` has {len(ex['prompt_ids'])} tokens and fills max_length={max_length}, "
                         "leaving no completion token to train: raise max_length or shorten the prompt")
    longest = max(len(ex["prompt_ids"]) + len(ex[f"{side}_ids"]) for side in ("chosen", "rejected"))
    if context is not None and longest > context:
        raise ValueError(f"row {idx}: prompt + completion has {longest} tokens, more than the model's {context} "
                         "positions (max_position_embeddings), and max_length=None cuts nothing: set max_length")
    out, texts, eos = {}, {}, tokenizer.eos_token
    for side, default_p in (("chosen", 1.0), ("rejected", 0.0)):
        full = ex[side]
        text = full[: -len(eos)] if eos and full.endswith(eos) else full  # TRL appended the EOS
        n_raw, spans = len(step_spans(text, delimiter)), step_spans(text, delimiter, max_steps)
        input_ids, ids = token_step_ids(text, tokenizer, delimiter, max_steps, True, ex["prompt"], full[len(text):])
        if input_ids != ex["prompt_ids"] + ex[f"{side}_ids"]:
            raise ValueError(f"row {idx}: re-tokenizing prompt+{side} with offsets does not reproduce TRL's tokens")
        ids = ids[len(ex["prompt_ids"]):]
        last = 0 if spans else -1  # tokens in no step (the EOS, a token straddling the prompt) join the step before
        for t, k in enumerate(ids):
            ids[t] = last = k if k >= 0 else last
        out[f"{side}_step_ids"] = ids
        rewards, labels = ex.get(f"{side}_step_rewards"), ex.get(f"{side}_step_labels")
        counts = (n_raw, len(spans))
        if rewards is not None:
            out[f"{side}_step_rewards"] = per_step_values(rewards, *counts, f"{side}_step_rewards", idx, "reward")
        if labels is not None:  # gold labels win over reward-model probabilities
            out[f"{side}_step_probs"] = per_step_values(labels, *counts, f"{side}_step_labels", idx)
        elif rewards is not None:
            kind = "reward_mistake" if reward_labels == "mistake_made_here" else "reward_prob"
            out[f"{side}_step_probs"] = per_step_values(rewards, *counts, f"{side}_step_rewards", idx, kind)
        else:  # no labels, no reward model: every chosen step is right, every rejected step wrong
            out[f"{side}_step_probs"] = [default_p] * len(spans)
        texts[side] = [text[a:b] for a, b in spans]
    c, r = texts["chosen"], texts["rejected"]
    out["first_diff_step"] = k = -1 if c == r else _first_difference(c, r)
    if pairing == "first_token":
        out.update(first_token_only(ex, k))
    elif pairing == "first_error":
        out.update(without_shared_start(ex, {s: out[f"{s}_step_ids"] for s in ("chosen", "rejected")}, k))
    return out


@dataclass
class DataCollatorForStepwisePreference(DataCollatorForPreference):
    """TRL's preference collator plus step columns, truncated exactly like the tokens (same ``max_length`` and
    ``truncation_mode``). Rows are ``[chosen..., rejected...]`` as in TRL. Adds ``step_ids`` ``(2B, T)``
    (−1 = no step), ``step_probs`` ``(2B, S)``, ``step_valid`` (the step exists), ``step_complete`` (exists and
    no token of it was cut), ``first_diff_step`` ``(B,)`` and, when present, ``step_rewards`` ``(2B, S)``. The
    columns of ``extra_columns`` (the trainer's) pass through, one entry per pair."""

    extra_columns: tuple[str, ...] = ()

    def torch_call(self, examples):
        out = super().torch_call(examples)
        for name in self.extra_columns:  # numbers, or lists of numbers of one length: a tensor (B,) or (B, n)
            try:
                out[name] = torch.tensor([e[name] for e in examples])
            except (TypeError, ValueError, RuntimeError):  # text, None, lists of other lengths: the list as it is
                out[name] = [e[name] for e in examples]
        sides = ("chosen", "rejected")
        ids = [[-1] * len(e["prompt_ids"]) + e[f"{s}_step_ids"] for s in sides for e in examples]
        probs = [e[f"{s}_step_probs"] for s in sides for e in examples]
        num_steps = max(1, max(len(p) for p in probs))
        full = [torch.bincount(torch.tensor([k for k in x if k >= 0], dtype=torch.long), minlength=num_steps)
                for x in ids]
        if self.max_length is not None:
            sl = slice(None, self.max_length) if self.truncation_mode == "keep_start" else slice(-self.max_length, None)
            ids = [x[sl] for x in ids]
        # x[0] is never scored (a token's log-prob needs one before it): keep_end can cut a step down to there
        kept = [torch.bincount(torch.tensor([k for k in x[1:] if k >= 0], dtype=torch.long), minlength=num_steps)
                for x in ids]
        out["step_ids"] = pad([torch.tensor(x, dtype=torch.long) for x in ids], padding_value=-1,
                              padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of)
        n = torch.tensor([len(p) for p in probs])
        out["step_valid"] = torch.arange(num_steps)[None, :] < n[:, None]
        out["step_complete"] = out["step_valid"] & (torch.stack(kept) == torch.stack(full))
        out["step_probs"] = torch.tensor([p + [0.0] * (num_steps - len(p)) for p in probs])
        if examples[0].get("chosen_step_rewards") is not None:  # a column of None: no rewards
            rewards = [e[f"{s}_step_rewards"] for s in sides for e in examples]
            out["step_rewards"] = torch.tensor([r + [0.0] * (num_steps - len(r)) for r in rewards])
        out["first_diff_step"] = torch.tensor([e["first_diff_step"] for e in examples], dtype=torch.long)
        return out


STEP_COLUMNS = ("chosen_step_ids", "rejected_step_ids", "chosen_step_probs", "rejected_step_probs",
                "chosen_step_rewards", "rejected_step_rewards", "first_diff_step")
