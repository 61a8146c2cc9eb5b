"""On-policy rounds of preference training with a PRM's step labels: DPO, Stepwise DPO and NLL only (RFT).

Each round (Iterative RPO, Pang et al. 2024, arXiv:2404.19733):

1. **sample** ``K`` solutions per training problem from the current policies (``sampler="pooled"``: the K are
   shared out among the methods' policies, so every method trains on the same samples; in round 1 all
   policies are the start policy);
2. **label** every step with the trained PRM (``σ(reward)`` = P(step right); the PRM's validation threshold, a
   log-odds, says which steps it rejects) and every final answer with ``problem.is_correct`` (what a user of a
   GSM8K-style task has). No gold step checker is used: ``problem.verdict`` is read only to *count* how many
   pairs the PRM mislabelled, for evaluation;
3. **pairs**: ``solution`` pairs (chosen = right answer and no step the PRM rejects, rejected = wrong answer) and
   ``step`` pairs (Step-DPO, Lai et al. 2024, arXiv:2406.18629): the PRM locates the first wrong step k of a
   rejected solution, the policy that wrote it resamples from the shared prefix (steps < k) until the PRM accepts
   step k (and, by default, the whole corrected solution), and the pair is prefix + right step k + its rest vs
   the rejected solution;
4. **train** each method from its own previous policy (the reference: that policy at the start of the round) on
   the same pairs, steps and seed: DPO + NLL (TRL's ``DPOTrainer``, loss ``["sigmoid", "sft"]``), Stepwise DPO
   + the same NLL (``StepwiseDPOTrainer`` with the PRM's step probabilities; ``step_pairing="first_error"`` on
   shared-prefix pairs is exactly Step-DPO) and NLL only (loss ``["sft"]`` on the chosen side: rejection-sampling
   fine-tuning).

**EOS and one-step completions.** TRL 1.16's ``DPOTrainer`` appends the EOS token to every non-chat completion,
so a Step-DPO pair in its prompt-prefix form (prompt + prefix, one step each) would teach the policy to stop
after one step; Step-DPO's own trainer comments the EOS out. Here the step pairs keep the rest of each solution
(``step_pair_rows(form="full")``): both completions are whole solutions whose EOS is right, the shared prefix
cancels in DPO's log-ratio and ``step_pairing="first_error"`` scores only step k. The prompt-prefix form
(``form="prefix"``) marks its rows ``open_ended``; ``StepwiseDPOTrainer`` then drops the EOS TRL appended.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .. import generation
from ..evaluation import predict_first_error
from ..steps import DEFAULT_DELIMITER, extract_steps
from . import tasks

logger = logging.getLogger(__name__)

METHODS = ("dpo", "stepwise_dpo", "nll_only")
NAMES = {"base": "base", "dpo": "DPO + NLL", "stepwise_dpo": "Stepwise DPO + NLL", "nll_only": "NLL only (RFT)"}
PAIR_KINDS = ("solution", "step", "both")
MIRRORED = ("no", "add", "instead")
REJECTED_PROBS = ("prm", "first_error")
STEP_GRADIENTS = ("all", "output_layer")
STEP_REJECTED = ("round", "fresh")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


# ----------------------------------------------------------------------------- PRM labels

@dataclass
class Sample:
    """One sampled solution with the PRM's step rewards (log-odds) and the answer check.

    ``rewards`` is None when the PRM could not score it (blank, or longer than the PRM's ``max_length``)."""

    problem: int
    text: str
    steps: list[str]
    rewards: list[float] | None
    answer_correct: bool
    threshold: float
    policy: str | None = None

    @property
    def prm_first_error(self) -> int | None:
        """Index of the first step the PRM rejects (reward < threshold), -1 if none, None if unscored."""
        if self.rewards is None:
            return None
        return predict_first_error(self.rewards, self.threshold)

    @property
    def chosen_ok(self) -> bool:
        """Right final answer and no step the PRM rejects."""
        return self.answer_correct and self.prm_first_error == -1

    @property
    def rejected_ok(self) -> bool:
        """Wrong final answer (and scored, so that it has step probabilities)."""
        return not self.answer_correct and self.rewards is not None and bool(self.steps)


def _fits(prm, prompt: str, steps: list[str]) -> bool:
    """Whether the PRM can score these steps (a ``ProcessRewardModel`` raises on inputs over its max_length)."""
    if not hasattr(prm, "encode"):
        return True
    try:
        prm.encode(prompt, steps)
    except ValueError:
        return False
    return True


def label_samples(prm, problems, solutions: Sequence[Sequence[str]], threshold: float, *, policy: str | None = None,
                  delimiter: str | None = None, batch_size: int | None = None) -> list[list[Sample]]:
    """Score every step of every solution with the PRM (one forward pass each) and check every final answer.

    ``solutions[i]`` holds the sampled texts of ``problems[i]``; ``policy`` names who sampled them (in
    ``Sample.policy``). Blank solutions and ones too long for the PRM are kept, unscored (``rewards=None``)."""
    if len(problems) != len(solutions):
        raise ValueError(f"label_samples: {len(problems)} problems but {len(solutions)} lists of solutions")
    delimiter = delimiter or getattr(getattr(prm, "config", None), "step_delimiter", DEFAULT_DELIMITER)
    out, todo = [], []
    for i, (p, sols) in enumerate(zip(problems, solutions)):
        if isinstance(sols, str):
            raise ValueError("label_samples: solutions must hold one list of texts per problem")
        row = []
        for text in sols:
            steps = extract_steps(text, delimiter) if text.strip() else []
            s = Sample(i, text, steps, None, bool(p.is_correct(text)), threshold, policy)
            if steps and _fits(prm, p.prompt, steps):
                todo.append(s)
            row.append(s)
        out.append(row)
    if todo:
        rewards = prm.score_solutions([problems[s.problem].prompt for s in todo], [s.steps for s in todo],
                                      batch_size=batch_size)
        for s, r in zip(todo, rewards):
            s.rewards = [float(x) for x in r]
    return out


def rejected_step_probs(sample: Sample, mode: str = "first_error") -> list[float]:
    """Step probabilities of a rejected solution for Stepwise DPO's step loss (it pushes down ``1 − p``).

    ``"prm"``: σ(reward) of every step. ``"first_error"``: σ(reward) up to the first step the PRM rejects, 1 after
    it: a step that builds faithfully on a wrong number is not an action to unlearn (``Verdict.mistake_labels``
    without error kinds: only the first wrong step counts as the mistake)."""
    if mode not in REJECTED_PROBS:
        raise ValueError(f"rejected_probs must be one of {REJECTED_PROBS}, got {mode!r}")
    probs = [sigmoid(r) for r in sample.rewards]
    k = sample.prm_first_error
    if mode == "first_error" and k is not None and k >= 0:
        probs = probs[:k + 1] + [1.0] * (len(probs) - k - 1)
    return probs


def _pair_row(prompt, chosen: Sample, rejected: Sample, rejected_probs: str, **extra) -> dict:
    return {"prompt": prompt, "chosen": chosen.text, "rejected": rejected.text,
            "chosen_step_labels": [sigmoid(r) for r in chosen.rewards],
            "rejected_step_labels": rejected_step_probs(rejected, rejected_probs),
            "chosen_step_rewards_prm": list(chosen.rewards), "rejected_step_rewards_prm": list(rejected.rewards),
            "problem_index": chosen.problem, "prm_first_error": rejected.prm_first_error, **extra}


def solution_pairs(problems, samples: Sequence[Sequence[Sample]], *, max_pairs_per_problem: int | None = 4,
                   seed: int = 0, rejected_probs: str = "first_error") -> tuple[list[dict], Counter]:
    """Whole-solution preference pairs from PRM-labelled samples.

    Chosen: right final answer and no step the PRM rejects. Rejected: wrong final answer. A right answer with a
    step the PRM rejects (lucky, or a PRM false alarm) is used on neither side. Each distinct text once; of all
    chosen x rejected combinations, ``max_pairs_per_problem`` at random (seeded per prompt). Rows carry
    ``chosen_step_labels`` / ``rejected_step_labels`` (probabilities, see ``rejected_step_probs``) for
    ``StepwiseDPOTrainer`` and the raw PRM rewards; the counter says what was left out and why."""
    rows, stats = [], Counter()
    for p, row in zip(problems, samples):
        distinct = {}
        for s in row:
            distinct.setdefault(s.text, s)
        stats["repeated_solutions"] += len(row) - len(distinct)
        good = [s for s in distinct.values() if s.chosen_ok]
        bad = [s for s in distinct.values() if s.rejected_ok]
        stats["unscored_solutions"] += sum(s.rewards is None for s in distinct.values())
        stats["right_answer_prm_rejected"] += sum(s.answer_correct and (s.prm_first_error or 0) >= 0
                                                  for s in distinct.values() if s.rewards is not None)
        stats["wrong_answer_prm_accepted"] += sum(s.rejected_ok and s.prm_first_error == -1 for s in bad)
        combos = [(c, r) for c in good for r in bad]
        random.Random(f"{seed}:{p.prompt}").shuffle(combos)
        rows += [_pair_row(p.prompt, c, r, rejected_probs, kind="solution", step_index=-1)
                 for c, r in combos[:max_pairs_per_problem]]
    stats["pairs"] = len(rows)
    return rows, stats


# ----------------------------------------------------------------------------- Step-DPO pairs, no gold

def step_pairs(policies: Mapping[str, object], tokenizer, prm, problems, samples: Sequence[Sequence[Sample]],
               threshold: float, *, max_per_problem: int = 1, tries: int = 4, attempts: int = 2,
               require: str = "solution", rejected_probs: str = "first_error", temperature: float = 1.0,
               max_new_tokens: int = 160, batch_size: int = 64, seed: int = 0,
               sample_fn: Callable | None = None) -> tuple[list[dict], Counter]:
    """Step-DPO pairs without gold labels: for up to ``max_per_problem`` rejected solutions per problem whose
    first wrong step k the PRM locates, the policy that wrote it (``policies[sample.policy]``, else the first)
    samples ``tries`` continuations of ``prompt + steps[:k]`` (T = ``temperature``), up to ``attempts`` times,
    until one is accepted: its step k differs from the wrong one and the PRM accepts it (``require="step"``),
    and also every later step and the final answer (``require="solution"``, default: the chosen is then a whole
    solution as good as a solution pair's). Returns rows in the whole-solution form (see ``step_pair_rows`` for
    the others): ``prompt``, ``chosen`` = prefix + right step + its rest, ``rejected`` = the rejected solution,
    ``initial_reason_steps``, ``chosen_step``, ``rejected_step``, ``step_index`` = k, step probabilities and
    rewards; and a counter of what was built and left out."""
    if require not in ("step", "solution"):
        raise ValueError(f"require must be 'step' or 'solution', got {require!r}")
    sample_fn = sample_fn or generation.sample_solutions
    names = list(policies)
    stats, todo = Counter(), []
    for p, row in zip(problems, samples):
        seen, picked = set(), []
        for s in row:
            if not s.rejected_ok or s.text in seen:
                continue
            seen.add(s.text)
            if s.prm_first_error == -1:
                stats["prm_found_no_wrong_step"] += 1
                continue
            picked.append(s)
        random.Random(f"{seed}:step:{p.prompt}").shuffle(picked)
        stats["rejected_left_for_other_problems"] += max(0, len(picked) - max_per_problem)
        todo += picked[:max_per_problem]
    found: dict[int, tuple[Sample, str]] = {}
    pending = list(range(len(todo)))
    for attempt in range(attempts):
        if not pending:
            break
        by_policy: dict[str, list[int]] = {}
        for j in pending:
            by_policy.setdefault(todo[j].policy if todo[j].policy in policies else names[0], []).append(j)
        for name, js in by_policy.items():
            contexts = [problems[todo[j].problem].prompt + "".join(todo[j].steps[:todo[j].prm_first_error]) for j in js]
            with generation.evaluating(policies[name]):
                conts = sample_fn(policies[name], tokenizer, contexts, n=tries, temperature=temperature,
                                  batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  seed=seed + 1000 * attempt + 17, progress=False)
            cands = []
            for j, cs in zip(js, conts):
                s = todo[j]
                prefix = "".join(s.steps[:s.prm_first_error])
                for c in dict.fromkeys(cs):
                    cands.append((j, prefix + c))
            # Score each candidate as a whole solution (the PRM reads step k in the context of the prefix)
            labelled = _label_texts(prm, problems, [todo[j].problem for j, _ in cands], [t for _, t in cands],
                                    threshold, name)
            for (j, text), cand in zip(cands, labelled):
                if j in found:
                    continue
                s, k = todo[j], todo[j].prm_first_error
                if cand.rewards is None or len(cand.steps) <= k or cand.steps[:k] != s.steps[:k]:
                    continue
                if cand.steps[k] == s.steps[k] or cand.rewards[k] < threshold:
                    continue
                if require == "solution" and not cand.chosen_ok:
                    continue
                found[j] = (cand, text)
        pending = [j for j in pending if j not in found]
    stats["no_accepted_step"] += len(pending)
    rows = []
    for j in sorted(found):
        s, (cand, _) = todo[j], found[j]
        k = s.prm_first_error
        rows.append(_pair_row(problems[s.problem].prompt, cand, s, rejected_probs, kind="step", step_index=k,
                              initial_reason_steps="".join(s.steps[:k]), chosen_step=cand.steps[k],
                              rejected_step=s.steps[k]))
    stats["pairs"] = len(rows)
    stats["prefixes_tried"] = len(todo)
    return rows, stats


def _against_chosen(row: dict, rejected: Sample, rejected_step: str, rejected_probs: str, threshold: float) -> dict:
    """One more Step-DPO pair at ``row``'s state: its chosen solution against ``rejected``, wrong at step k."""
    chosen = Sample(row["problem_index"], row["chosen"], extract_steps(row["chosen"]), row["chosen_step_rewards_prm"],
                    True, threshold)
    return _pair_row(row["prompt"], chosen, rejected, rejected_probs, kind="step", step_index=row["step_index"],
                     initial_reason_steps=row["initial_reason_steps"], chosen_step=row["chosen_step"],
                     rejected_step=rejected_step)


def step_negatives(policies: Mapping[str, object], tokenizer, prm, problems, step_rows: Sequence[dict],
                   threshold: float, *, tries: int = 8, max_per_state: int = 3, temperature: float = 2.0,
                   rejected_probs: str = "first_error", max_new_tokens: int = 160, batch_size: int = 64, seed: int = 0,
                   sample_fn: Callable | None = None) -> tuple[list[dict], Counter]:
    """More wrong steps at each Step-DPO state: the policies (``tries`` continuations of prompt + shared prefix,
    shared out among them, at ``temperature``) write step k again, and every distinct step k the PRM rejects
    becomes one more pair against the same chosen (up to ``max_per_state`` a state).

    Why: a pair only says "the right step, not this wrong one". The tiny policy's slips lean one way (mostly one
    too many, ``scripts/slip_offsets.py``), so most pairs reject the same neighbour, and preference training
    overshoots to the other one. Hotter samples from every policy put wrong steps on more sides of the right one
    (``mirrored_negatives`` tests that idea directly)."""
    if not step_rows:
        return [], Counter(pairs=0)
    sample_fn = sample_fn or generation.sample_solutions
    contexts = [r["prompt"] + r["initial_reason_steps"] for r in step_rows]
    prefixes = [extract_steps(r["initial_reason_steps"]) for r in step_rows]
    cands = []
    for j, (name, n) in enumerate(share_out(tries, list(policies)).items()):
        if n == 0:
            continue
        with generation.evaluating(policies[name]):
            conts = sample_fn(policies[name], tokenizer, contexts, n=n, temperature=temperature, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, seed=seed + 31 * (j + 1), progress=False)
        cands += [(i, step_rows[i]["initial_reason_steps"] + c) for i, cs in enumerate(conts) for c in dict.fromkeys(cs)]
    labelled = _label_texts(prm, problems, [step_rows[i]["problem_index"] for i, _ in cands], [t for _, t in cands],
                            threshold, None)
    rows, stats, taken = [], Counter(), {}
    for (i, _), cand in zip(cands, labelled):
        r, k = step_rows[i], step_rows[i]["step_index"]
        steps = taken.setdefault(i, {r["chosen_step"], r["rejected_step"]})
        if cand.rewards is None or len(cand.steps) <= k or cand.steps[:k] != prefixes[i] or cand.rewards[k] >= threshold:
            stats["not_a_step_the_prm_rejects"] += 1
        elif cand.steps[k] in steps or len(steps) - 2 >= max_per_state:
            stats["repeated_or_state_full"] += 1
        else:
            steps.add(cand.steps[k])
            rows.append(_against_chosen(r, cand, cand.steps[k], rejected_probs, threshold))
    stats["pairs"] = len(rows)
    return rows, stats


_NUMBER = re.compile(r"-?\d+")


def mirrored_step(chosen_step: str, rejected_step: str) -> str | None:
    """The chosen step with its number ``c`` where the rejected step wrote ``c + d`` (the only number they differ
    in) changed to ``c − d``: the wrong step on the other side of the right one. None when they differ in no
    number (by value) or in more than one (a copied operand and its result), or when ``c − d`` is negative."""
    c, r = _NUMBER.findall(chosen_step), _NUMBER.findall(rejected_step)
    diff = [i for i, (a, b) in enumerate(zip(c, r)) if int(a) != int(b)]  # "05" and "5" are one number
    if len(c) != len(r) or len(diff) != 1:
        return None
    i = diff[0]
    value = 2 * int(c[i]) - int(r[i])
    if value < 0:
        return None
    start, end = list(_NUMBER.finditer(chosen_step))[i].span()
    return chosen_step[:start] + str(value) + chosen_step[end:]


def mirrored_negatives(prm, problems, step_rows: Sequence[dict], threshold: float, *,
                       rejected_probs: str = "first_error") -> tuple[list[dict], Counter]:
    """One more Step-DPO pair per state: the chosen solution with step k's slip mirrored about the right number
    (``mirrored_step``: 36 where 37 is right and the slip wrote 38), kept when the PRM rejects step k. No
    sampling, no gold.

    Why: a test of the explanation in ``step_negatives``. Preference training leaves the tiny policy slipping
    one *less*; if that were only because the pairs reject "one more", pairs on both sides should stop it. They
    do not: trained on these mirrors alone (``RoundSettings.mirrored_negatives="instead"``) the policy slips one
    *more*, so each pair pushes it past the right number, away from the side it rejects (docs/benchmarks.md)."""
    cands, stats = [], Counter()
    for i, r in enumerate(step_rows):
        head = r["initial_reason_steps"] + r["chosen_step"]
        if not r["chosen"].startswith(head):
            raise ValueError(f"step row {i}: 'chosen' does not start with 'initial_reason_steps' + 'chosen_step'")
        step = mirrored_step(r["chosen_step"], r["rejected_step"])
        if step is None:
            stats["no_single_number_slip"] += 1
            continue
        cands.append((i, step, r["initial_reason_steps"] + step + r["chosen"][len(head):]))
    labelled = _label_texts(prm, problems, [step_rows[i]["problem_index"] for i, _, _ in cands],
                            [t for _, _, t in cands], threshold, None) if cands else []
    rows = []
    for (i, step, _), cand in zip(cands, labelled):
        k = step_rows[i]["step_index"]
        if cand.rewards is None or len(cand.steps) <= k or cand.rewards[k] >= threshold:
            stats["prm_accepts_the_mirror"] += 1
            continue
        rows.append(_against_chosen(step_rows[i], cand, step, rejected_probs, threshold))
    stats["pairs"] = len(rows)
    return rows, stats


def _label_texts(prm, problems, problem_indices, texts, threshold, policy) -> list[Sample]:
    """``label_samples`` for a flat list of (problem index, text)."""
    index = sorted(set(problem_indices))
    where = {i: n for n, i in enumerate(index)}
    groups = [[] for _ in index]
    for i, t in zip(problem_indices, texts):
        groups[where[i]].append(t)
    labelled = label_samples(prm, [problems[i] for i in index], groups, threshold, policy=policy)
    cursor = [0] * len(index)
    out = []
    for i in problem_indices:
        g = where[i]
        s = labelled[g][cursor[g]]
        cursor[g] += 1
        out.append(dataclasses.replace(s, problem=i))
    return out


def step_pair_rows(rows: Sequence[dict], form: str = "full") -> list[dict]:
    """Step pairs in the form a trainer reads.

    ``"full"`` (default): the rows as ``step_pairs`` builds them (whole solutions sharing the prefix; any
    trainer). ``"prefix"``: Step-DPO's own layout, ``prompt`` = prompt + the shared prefix, ``chosen`` /
    ``rejected`` = the one differing step, with ``open_ended=True`` so that ``StepwiseDPOTrainer`` drops the
    EOS TRL appends (a one-step completion must not teach the policy to stop after one step; TRL's plain
    ``DPOTrainer`` cannot: use the full form for it)."""
    if form == "full":
        return [dict(r) for r in rows]
    if form != "prefix":
        raise ValueError(f"form must be 'full' or 'prefix', got {form!r}")
    out = []
    for r in rows:
        k = r["step_index"]
        out.append({"prompt": r["prompt"] + r["initial_reason_steps"], "chosen": r["chosen_step"],
                    "rejected": r["rejected_step"], "chosen_step_labels": [r["chosen_step_labels"][k]],
                    "rejected_step_labels": [r["rejected_step_labels"][k]], "open_ended": True,
                    "problem_index": r["problem_index"], "step_index": k})
    return out


# ----------------------------------------------------------------------------- mislabels (checker: evaluation only)

def count_mislabels(problems, rows: Sequence[dict]) -> dict | None:
    """How many pairs the PRM mislabelled, by the task's checker (``problem.verdict``; evaluation only).

    A pair is mislabelled when its chosen side holds a step the checker calls wrong (for a step pair: its step
    k), or when the PRM put the rejected solution's first error elsewhere than the checker (a step pair's
    prefix then holds a wrong step, or its "wrong" step k is right). None when the task has no step checker."""
    counts = Counter(pairs=len(rows))
    for r in rows:
        p = problems[r["problem_index"]]
        vc, vr = p.verdict(r["chosen"]), p.verdict(r["rejected"])
        if vc is None or vr is None:
            return None
        k = r["step_index"]
        chosen_bad = (not vc.step_labels[k]) if k >= 0 and k < len(vc.step_labels) else vc.first_error >= 0
        rejected_bad = vr.first_error != r["prm_first_error"]
        counts["chosen_wrong"] += chosen_bad
        counts["rejected_first_error_elsewhere"] += rejected_bad
        counts["mislabelled"] += chosen_bad or rejected_bad
    return dict(counts)


def step_agreement(problems, samples: Sequence[Sequence[Sample]]) -> float | None:
    """Share of scored steps where the PRM's accept/reject agrees with the checker's step label (None: no
    checker)."""
    agree = total = 0
    for p, row in zip(problems, samples):
        for s in row:
            if s.rewards is None:
                continue
            labels = p.step_labels(s.text)
            if labels is None:
                return None
            if len(labels) != len(s.rewards):
                continue
            agree += sum((r >= s.threshold) == bool(y) for r, y in zip(s.rewards, labels))
            total += len(labels)
    return agree / total if total else None


# ----------------------------------------------------------------------------- training

@dataclass
class TrainSettings:
    """What every method shares in a round (equal data, steps and seed), and Stepwise DPO's own knobs."""

    beta: float = 0.1
    sft_weight: float = 5.0
    outcome_weight: float = 0.0
    step_pairing: str = "weighted"
    step_weight: float = 1.0  # Stepwise DPO's step-loss weight (the NLL's is sft_weight)
    # "output_layer": Stepwise DPO's step loss moves the output layer only (a diagnostic; output_layer_pairs.py)
    step_gradient: str = "all"
    # "fresh": Stepwise DPO's rejected token is drawn again from the current policy at every step, not the round's
    # (a diagnostic; fresh_rejected_pairs.py)
    step_rejected: str = "round"
    args: dict = field(default_factory=dict)  # DPOConfig/StepwiseDPOConfig fields: batch size, lr, max_steps, ...

    def __post_init__(self):
        if self.step_gradient not in STEP_GRADIENTS:
            raise ValueError(f"step_gradient must be one of {STEP_GRADIENTS}, got {self.step_gradient!r}")
        if self.step_gradient == "output_layer" and self.step_pairing != "first_token":
            raise ValueError("step_gradient='output_layer' needs step_pairing='first_token' (one hidden state a side), "
                             f"got {self.step_pairing!r}")
        if self.step_rejected not in STEP_REJECTED:
            raise ValueError(f"step_rejected must be one of {STEP_REJECTED}, got {self.step_rejected!r}")
        if self.step_rejected == "fresh" and (self.step_pairing != "first_token" or self.step_gradient != "all"):
            raise ValueError("step_rejected='fresh' needs step_pairing='first_token' (one token to redraw) and "
                             f"step_gradient='all', got {self.step_pairing!r}, {self.step_gradient!r}")


def _dataset(rows, columns):
    from datasets import Dataset

    return Dataset.from_list([{c: r[c] for c in columns if c in r} for r in rows])


def make_trainer(method: str, model, tokenizer, rows: Sequence[dict], settings: TrainSettings, output_dir: str,
                 ref_model=None):
    """A trainer for one method on ``rows`` (see the module docstring). For a fully fine-tuned policy pass its
    frozen copy as ``ref_model`` (``policy_reference``); a PEFT policy needs none (TRL keeps a copy of a trained
    adapter as the "ref" adapter, and a fresh adapter's reference is the adapter disabled)."""
    from trl import DPOConfig, DPOTrainer

    from ..trainer import StepwiseDPOConfig, StepwiseDPOTrainer, float32_adapters_for_fp16
    from .colab import drop_log_printer
    from .fresh_rejected_pairs import FreshRejectedStepDPOTrainer
    from .output_layer_pairs import OutputLayerStepDPOTrainer

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    common = dict(settings.args, output_dir=output_dir, beta=settings.beta)
    plain = ["prompt", "chosen", "rejected"]
    if method == "stepwise_dpo":
        open_ended = any(r.get("open_ended") for r in rows)
        data = _dataset(rows, plain + ["chosen_step_labels", "rejected_step_labels"] + (["open_ended"] if open_ended
                                                                                          else []))
        args = StepwiseDPOConfig(step_beta=settings.beta, step_loss_weight=settings.step_weight,
                                 outcome_loss_weight=settings.outcome_weight, sft_loss_weight=settings.sft_weight,
                                 step_pairing=settings.step_pairing, **common)
        cls = (OutputLayerStepDPOTrainer if settings.step_gradient == "output_layer" else
               FreshRejectedStepDPOTrainer if settings.step_rejected == "fresh" else StepwiseDPOTrainer)
        trainer = cls(model=model, ref_model=ref_model, processing_class=tokenizer, train_dataset=data, args=args)
    else:
        if any(r.get("open_ended") for r in rows):
            raise ValueError(f"{method}: TRL's DPOTrainer appends EOS to every completion; give it the full form of "
                             "step pairs (step_pair_rows(form='full')), not open-ended one-step completions")
        # NLL only: the same NLL weight (with none, weight 1: under Adam a lone loss's scale barely matters)
        loss = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, settings.sft_weight]) if method == "dpo" else \
            dict(loss_type=["sft"], loss_weights=[settings.sft_weight or 1.0])
        trainer = DPOTrainer(model=model, ref_model=ref_model, processing_class=tokenizer,
                             train_dataset=_dataset(rows, plain), args=DPOConfig(**loss, **common))
        float32_adapters_for_fp16(trainer)
    drop_log_printer(trainer)  # a round prints its own summary; the logs stay in trainer.state.log_history
    return trainer


def policy_reference(model):
    """The frozen reference for a round: a copy of a fully fine-tuned policy; None for a PEFT policy."""
    from accelerate.utils import is_peft_model

    if is_peft_model(model):
        return None
    return copy.deepcopy(model).eval()


def release_reference(model) -> None:
    """Drop the "ref" adapter TRL added to a PEFT policy, so that the next round can add a fresh copy."""
    if hasattr(model, "peft_config") and "ref" in model.peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")


# ----------------------------------------------------------------------------- one round, and many

@dataclass
class RoundSettings:
    """How a round makes its data (the same for every method)."""

    samples_per_problem: int = 4          # K, shared out among the methods' policies (sampler="pooled")
    sampler: str = "pooled"               # "pooled" or a method name (every method trains on its samples)
    pairs: str = "both"                   # "solution", "step" or "both"
    max_pairs_per_problem: int = 4        # solution pairs
    step_pairs_per_problem: int = 1       # rejected solutions per problem to correct (step pairs)
    step_tries: int = 4
    step_attempts: int = 2
    rejected_probs: str = "first_error"
    step_negatives: int = 0               # extra wrong steps per Step-DPO state (step_negatives()); 0: none
    negative_tries: int = 8
    negative_temperature: float = 2.0
    mirrored_negatives: str = "no"        # the slip mirrored (mirrored_negatives()): "add" one more pair per Step-DPO
                                          # state, or use them "instead" of the step pairs (which side does a policy
                                          # lean to when the pairs reject only the other one?)
    temperature: float = 1.0
    max_new_tokens: int = 160
    batch_size: int = 64                  # sampling and scoring
    threshold: float = 0.0                # PRM log-odds threshold (notebook 02's validation threshold)

    def __post_init__(self):
        if self.pairs not in PAIR_KINDS:
            raise ValueError(f"pairs must be one of {PAIR_KINDS}, got {self.pairs!r}")
        if self.sampler != "pooled" and self.sampler not in METHODS:
            raise ValueError(f"sampler must be 'pooled' or one of {METHODS}, got {self.sampler!r}")
        if self.rejected_probs not in REJECTED_PROBS:
            raise ValueError(f"rejected_probs must be one of {REJECTED_PROBS}, got {self.rejected_probs!r}")
        if self.mirrored_negatives not in MIRRORED:
            raise ValueError(f"mirrored_negatives must be one of {MIRRORED}, got {self.mirrored_negatives!r}")
        if self.mirrored_negatives == "instead" and self.step_negatives:
            raise ValueError("mirrored_negatives='instead' replaces every step pair, step_negatives' ones too: "
                             "set step_negatives=0 with it")


def share_out(k: int, names: Sequence[str]) -> dict[str, int]:
    """``k`` samples per problem shared out among ``names`` (the first ones get one more when it does not divide)."""
    return {n: k // len(names) + (j < k % len(names)) for j, n in enumerate(names)}


def sample_round(policies: Mapping[str, object], tokenizer, prm, problems, rs: RoundSettings, *, seed: int = 0,
                 shared_start: bool = False) -> list[list[Sample]]:
    """Sample and PRM-label ``K`` solutions per problem (see ``RoundSettings.sampler``). ``shared_start``: all
    policies are still the same model (round 1), so all ``K`` come from the first one, labelled as pooled."""
    names = list(policies)
    if rs.sampler != "pooled":
        plan = {rs.sampler: rs.samples_per_problem}
    elif shared_start:
        plan = {names[0]: rs.samples_per_problem}
    else:
        plan = share_out(rs.samples_per_problem, names)
    samples = [[] for _ in problems]
    for j, (name, k) in enumerate(plan.items()):
        if k == 0:
            continue
        with generation.evaluating(policies[name]):
            sols = tasks.sample_solutions(policies[name], tokenizer, problems, n=k, temperature=rs.temperature,
                                          batch_size=rs.batch_size, max_new_tokens=rs.max_new_tokens, seed=seed + j,
                                          progress=False)
        for row, labelled in zip(samples, label_samples(prm, problems, sols, rs.threshold, policy=name,
                                                        batch_size=rs.batch_size)):
            row += labelled
    return samples


def build_round_pairs(policies, tokenizer, prm, problems, samples, rs: RoundSettings, *, seed: int = 0) -> tuple[
        list[dict], dict]:
    """The round's pairs (``rs.pairs``) and what building them counted."""
    rows, info = [], {}
    if rs.pairs in ("solution", "both"):
        sol, stats = solution_pairs(problems, samples, max_pairs_per_problem=rs.max_pairs_per_problem, seed=seed,
                                    rejected_probs=rs.rejected_probs)
        rows += sol
        info["solution"] = dict(stats)
    if rs.pairs in ("step", "both"):
        step, stats = step_pairs(policies, tokenizer, prm, problems, samples, rs.threshold,
                                 max_per_problem=rs.step_pairs_per_problem, tries=rs.step_tries,
                                 attempts=rs.step_attempts, rejected_probs=rs.rejected_probs,
                                 temperature=rs.temperature, max_new_tokens=rs.max_new_tokens,
                                 batch_size=rs.batch_size, seed=seed)
        rows += step
        info["step"] = dict(stats)
        if rs.step_negatives:
            neg, stats = step_negatives(policies, tokenizer, prm, problems, step, rs.threshold, tries=rs.negative_tries,
                                        max_per_state=rs.step_negatives, temperature=rs.negative_temperature,
                                        rejected_probs=rs.rejected_probs, max_new_tokens=rs.max_new_tokens,
                                        batch_size=rs.batch_size, seed=seed)
            rows += neg
            info["step_negatives"] = dict(stats)
        if rs.mirrored_negatives != "no":
            mirrored, stats = mirrored_negatives(prm, problems, step, rs.threshold, rejected_probs=rs.rejected_probs)
            if rs.mirrored_negatives == "instead":
                rows = [r for r in rows if r["kind"] != "step"]
            rows += mirrored
            info["mirrored_negatives"] = dict(stats)
    random.Random(seed).shuffle(rows)
    return rows, info


def run_round(policies: dict, tokenizer, prm, problems, eval_problems, rs: RoundSettings, ts: TrainSettings, *,
              round_index: int = 1, seed: int = 0, output_dir: str = "onpolicy", n_sampled: int = 2,
              shared_start: bool = False, methods: Sequence[str] = METHODS, out=print) -> tuple[dict, dict]:
    """One on-policy round: sample, PRM-label, build pairs, train every method from its own policy on the same
    pairs, steps and seed, evaluate. ``policies`` (method -> model) is updated in place (the models are trained).
    Returns ``(record, trainers)``: the round's figures (per method: ``accuracy``, ``sampled_accuracy``,
    ``step_accuracy``, ``train_seconds`` and the per-problem counts; pairs built and PRM mislabels; seconds;
    ``stepwise_dpo_minus``: Stepwise DPO's accuracy minus each other method's, with a 95% interval) and the
    trainers."""
    record = {"round": round_index, "label_source": "prm"}
    started = time.perf_counter()
    round_seed = seed + 1000 * round_index
    samples = sample_round(policies, tokenizer, prm, problems, rs, seed=round_seed, shared_start=shared_start)
    flat = [s for row in samples for s in row]
    record["samples"] = len(flat)
    record["sample_accuracy"] = sum(s.answer_correct for s in flat) / max(len(flat), 1)
    record["prm_step_agreement"] = step_agreement(problems, samples)
    sample_seconds = time.perf_counter() - started
    rows, info = build_round_pairs(policies, tokenizer, prm, problems, samples, rs, seed=round_seed)
    record["pair_info"] = info
    record["pairs"] = {kind: sum(r["kind"] == kind for r in rows) for kind in ("solution", "step")}
    record["pairs"]["total"] = len(rows)
    record["mislabels"] = {kind: count_mislabels(problems, [r for r in rows if r["kind"] == kind])
                           for kind in ("solution", "step") if record["pairs"][kind]}
    record["data_seconds"] = round(time.perf_counter() - started, 1)
    record["sample_seconds"] = round(sample_seconds, 1)
    out(f"round {round_index}: {len(flat)} samples ({record['sample_accuracy']:.1%} right), "
        f"{record['pairs']['solution']} solution + {record['pairs']['step']} step pairs "
        f"in {record['data_seconds']:.0f} s")
    trainers = {}
    if not rows:
        out(f"round {round_index}: no pairs, nothing to train")
    for method in methods:
        if not rows:
            break
        model = policies[method]
        args = dict(ts.args, seed=round_seed, data_seed=round_seed)
        settings = dataclasses.replace(ts, args=args)
        t0 = time.perf_counter()
        trainer = make_trainer(method, model, tokenizer, rows, settings, f"{output_dir}/round{round_index}/{method}",
                               ref_model=policy_reference(model))
        trainer.train()
        release_reference(trainer.model)
        policies[method] = trainer.model
        trainers[method] = trainer
        record.setdefault(method, {})["train_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    for method in methods:
        record.setdefault(method, {}).update(tasks.greedy_and_sampled_accuracy(
            policies[method], tokenizer, eval_problems, n_sampled=n_sampled, batch_size=rs.batch_size,
            max_new_tokens=rs.max_new_tokens, seed=seed, per_problem=True))
    if "stepwise_dpo" in methods and len(eval_problems) >= 2:
        record["stepwise_dpo_minus"] = {m: tasks.accuracy_differences(record["stepwise_dpo"]["per_problem"],
                                                                      record[m]["per_problem"])
                                        for m in methods if m != "stepwise_dpo"}
    record["eval_seconds"] = round(time.perf_counter() - t0, 1)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record, trainers


def format_stepwise_minus(diffs: dict) -> list[str]:
    """Stepwise DPO minus each other method (method -> ``tasks.accuracy_differences``), in points, with the 95%
    interval: a header and a line per method."""
    def points(d):
        return f"{100 * d['difference']:+5.1f} ({100 * d['low']:+.1f} to {100 * d['high']:+.1f})"

    if not diffs:
        return []
    return ["  Stepwise DPO + NLL minus, in points (95% interval, paired over the same held-out problems):"] + [
        f"    {NAMES.get(m, m):18s} greedy {points(d['accuracy']):22s} sampled {points(d['sampled_accuracy'])}"
        for m, d in diffs.items()]


def format_round(record: dict, methods: Sequence[str] = METHODS) -> str:
    """One text block per round: a row per method."""
    lines = []
    for m in methods:
        r = record.get(m, {})
        steps = f"   steps right {r['step_accuracy']:.1%}" if r.get("step_accuracy") is not None else ""
        lines.append(f"  {NAMES.get(m, m):20s} greedy {r.get('accuracy', float('nan')):6.1%}   "
                     f"sampled {r.get('sampled_accuracy', float('nan')):6.1%}{steps}")
    mis = record.get("mislabels", {})
    bad = ", ".join(f"{k} {v['mislabelled']}/{v['pairs']}" for k, v in mis.items() if v) or "no checker"
    head = (f"round {record['round']}: {record['pairs']['total']} pairs ({record['pairs']['solution']} solution, "
            f"{record['pairs']['step']} step); PRM mislabelled (checker): {bad}; {record['seconds']:.0f} s")
    return "\n".join([head, *lines, *format_stepwise_minus(record.get("stepwise_dpo_minus", {}))])


def rounds_table(records: Sequence[dict], base: dict | None = None, methods: Sequence[str] = METHODS) -> str:
    """A text table: one row per round and method (and the base, when given)."""
    head = f"{'round':>5}  {'method':20s} {'greedy':>7} {'sampled':>8} {'steps right':>11} {'pairs':>6} " \
           f"{'mislabelled':>11} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    if base:
        sa = base.get("step_accuracy")
        lines.append(f"{0:>5}  {'base':20s} {base['accuracy']:>7.1%} {base['sampled_accuracy']:>8.1%} "
                     f"{'' if sa is None else f'{sa:.1%}':>11} {'':>6} {'':>11} {'':>8}")
    for rec in records:
        mis = [v for v in rec.get("mislabels", {}).values() if v]
        bad = f"{sum(v['mislabelled'] for v in mis)}" if mis else "-"
        for m in methods:
            r = rec.get(m, {})
            sa = r.get("step_accuracy")
            lines.append(f"{rec['round']:>5}  {NAMES.get(m, m):20s} {r.get('accuracy', float('nan')):>7.1%} "
                         f"{r.get('sampled_accuracy', float('nan')):>8.1%} {'' if sa is None else f'{sa:.1%}':>11} "
                         f"{rec['pairs']['total']:>6} {bad:>11} {r.get('train_seconds', 0):>8.0f}")
    last = records[-1] if records else {}
    if last.get("stepwise_dpo_minus"):
        n = last["stepwise_dpo"]["n_test_problems"]
        lines += ["", f"After round {last['round']}, on {n} held-out problems:",
                  *format_stepwise_minus(last["stepwise_dpo_minus"])]
    return "\n".join(lines)


def plot_rounds(records: Sequence[dict], base: dict | None = None, methods: Sequence[str] = METHODS, title=None,
                save_to=None):
    """Greedy and sampled accuracy (and the checker's share of right steps, when there is one) per round; then,
    when the rounds have them, Stepwise DPO minus each other method with the 95% intervals, against the goal's
    +3 points."""
    import matplotlib

    matplotlib.use("Agg") if save_to is not None and matplotlib.get_backend() == "" else None
    import matplotlib.pyplot as plt

    keys = [("accuracy", "greedy accuracy"), ("sampled_accuracy", "sampled (T=1) accuracy")]
    if any(rec.get(m, {}).get("step_accuracy") is not None for rec in records for m in methods):
        keys.append(("step_accuracy", "steps right (greedy, checker)"))
    minus = [rec for rec in records if rec.get("stepwise_dpo_minus")]
    panels = len(keys) + bool(minus)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    rounds = [0] + [rec["round"] for rec in records]
    colors = {"dpo": "tab:blue", "stepwise_dpo": "tab:red", "nll_only": "tab:green"}
    for ax, (key, label) in zip(axes[0], keys):
        for m in methods:
            ys = [(base or {}).get(key)] + [rec.get(m, {}).get(key) for rec in records]
            xs = [x for x, y in zip(rounds, ys) if y is not None]
            ax.plot(xs, [y for y in ys if y is not None], marker="o", label=NAMES.get(m, m), color=colors.get(m))
        ax.set_xlabel("round (0 = start policy)")
        ax.set_title(label, fontsize=10)
        ax.set_xticks(rounds)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if minus:
        from .viz import errorbar_differences
        ax = axes[0][-1]
        series = [(other, key, style) for other in minus[-1]["stepwise_dpo_minus"]
                  for key, style in (("accuracy", "-"), ("sampled_accuracy", "--"))]
        for i, (other, key, style) in enumerate(series):
            shift = 0.08 * (i - (len(series) - 1) / 2)  # side by side, so that the bars do not overlap
            errorbar_differences(ax, [rec["round"] + shift for rec in minus],
                                 [rec["stepwise_dpo_minus"][other][key] for rec in minus], ls=style,
                                 color=colors.get(other), label=f"− {NAMES.get(other, other)}, "
                                                                f"{'greedy' if key == 'accuracy' else 'sampled'}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(3, color="black", lw=0.8, ls=":", label="the goal: +3 points")
        low, high = ax.get_ylim()
        high = max(high, 3.5)  # the goal's line stays in view, with room above it for the legend
        ax.set_ylim(low, high + 0.6 * (high - low))
        ax.set_xlabel("round")
        ax.set_xticks([rec["round"] for rec in minus])
        ax.set_title("Stepwise DPO + NLL minus (points, 95% interval)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if save_to is not None:
        from .viz import save_png
        save_png(fig, save_to)
    return fig


def metrics_of(records: Sequence[dict], base: dict | None = None, methods: Sequence[str] = METHODS) -> dict:
    """The ``policy`` part of ``metrics.json``: the last round's figures of each of ``methods`` (e.g. those that
    had pairs to train on), with ``label_source`` = "prm", and ``rounds``: one entry per round, every method."""
    keep = ("accuracy", "sampled_accuracy", "step_accuracy", "train_seconds", "n_test_problems")
    rounds = []
    for rec in records:
        entry = {"round": rec["round"], "pairs": rec["pairs"], "mislabels": rec.get("mislabels", {}),
                 "seconds": rec["seconds"], "samples": rec["samples"], "sample_accuracy": rec["sample_accuracy"],
                 "prm_step_agreement": rec.get("prm_step_agreement")}
        entry.update({m: {k: rec[m][k] for k in keep if k in rec[m]} for m in METHODS if m in rec})
        if "stepwise_dpo_minus" in rec:
            entry["stepwise_dpo_minus"] = rec["stepwise_dpo_minus"]
        rounds.append(entry)
    out = {"rounds": rounds}
    if records:
        last = records[-1]
        for m in methods:
            out[m] = {k: last[m][k] for k in keep if k in last.get(m, {})}
            out[m]["label_source"] = "prm"
            out[m]["rounds"] = len(records)
        if "stepwise_dpo" in out and "stepwise_dpo_minus" in last:
            out["stepwise_dpo"]["minus"] = last["stepwise_dpo_minus"]
    if base:
        out["base"] = {k: base[k] for k in ("accuracy", "sampled_accuracy", "step_accuracy", "n_test_problems")
                       if k in base}
    return out


def seed_summary(policy_by_seed: Mapping[int, dict], margin: float = 0.03) -> dict:
    """Stepwise DPO minus each other method over several seeds of the same run: per method and metric (greedy
    ``accuracy``, ``sampled_accuracy``) the mean difference, how many seeds' 95% intervals lie above zero, and
    whether the goal holds in its sounder form: a mean of at least ``margin`` *and* every seed's interval above
    zero (a lead one run's evaluation noise cannot explain, in every seed). ``policy_by_seed``: seed ->
    the ``policy`` part of that run's ``metrics.json`` (``metrics_of``), which holds ``stepwise_dpo.minus``."""
    if not policy_by_seed:
        raise ValueError("seed_summary: no seeds")
    minus = {}
    for seed, policy in policy_by_seed.items():
        if "minus" not in policy.get("stepwise_dpo", {}):
            raise ValueError(f"seed_summary: seed {seed} has no policy.stepwise_dpo.minus (was notebook 04 run?)")
        minus[seed] = policy["stepwise_dpo"]["minus"]
    out = {}
    for method in [m for m in METHODS if all(m in d for d in minus.values())]:
        for key in ("accuracy", "sampled_accuracy"):
            diffs = [d[method][key] for d in minus.values()]
            mean = sum(d["difference"] for d in diffs) / len(diffs)
            above = sum(d["low"] > 0 for d in diffs)
            out.setdefault(method, {})[key] = {"mean": mean, "seeds_above_zero": above, "seeds": len(diffs),
                                               "met": mean >= margin and above == len(diffs)}
    return out


def format_seed_summary(policy_by_seed: Mapping[int, dict], margin: float = 0.03) -> str:
    """One line per seed (every method's greedy / sampled accuracy, then Stepwise DPO minus each other method with
    its 95% interval), the mean, and the verdict of ``seed_summary``."""
    summary = seed_summary(policy_by_seed, margin)
    names = ["base", *METHODS]
    head = "seed  " + "".join(f"{NAMES[m]:>20s}" for m in names)
    lines = [head]
    for seed, policy in policy_by_seed.items():
        lines.append(f"{seed:<6}" + "".join(
            f"{100 * policy[m]['accuracy']:>12.1f} / {100 * policy[m]['sampled_accuracy']:4.1f}" if m in policy
            else f"{'':>20s}" for m in names))
        lines += [f"      minus {line.strip()}" for line in format_stepwise_minus(policy["stepwise_dpo"]["minus"])[1:]]
    lines.append("mean  " + "".join(
        f"{100 * sum(p[m]['accuracy'] for p in policy_by_seed.values()) / len(policy_by_seed):>12.1f} / "
        f"{100 * sum(p[m]['sampled_accuracy'] for p in policy_by_seed.values()) / len(policy_by_seed):4.1f}"
        if all(m in p for p in policy_by_seed.values()) else f"{'':>20s}" for m in names))
    lines.append(f"Stepwise DPO + NLL minus, over {len(policy_by_seed)} seeds (goal: mean >= {100 * margin:+.0f} "
                 "points and every seed's interval above zero):")
    for method, by_key in summary.items():
        for key, r in by_key.items():
            label = (NAMES[method], "greedy") if key == "accuracy" else ("", "sampled")
            lines.append(f"  {label[0]:18s} {label[1]:8s}mean {100 * r['mean']:+5.1f}, interval above zero in "
                         f"{r['seeds_above_zero']} of {r['seeds']} seeds: {'met' if r['met'] else 'not met'}")
    return "\n".join(lines)


def round_problems(problems: Sequence, per_round: int | None, round_index: int) -> list:
    """The training problems of round ``round_index`` (1-based): consecutive slices of ``per_round`` problems,
    wrapping around, so that later rounds see fresh prompts while there are any (all of them when None)."""
    problems = list(problems)
    if not per_round or per_round >= len(problems):
        return problems
    start = ((round_index - 1) * per_round) % len(problems)
    return (problems + problems)[start:start + per_round]


def run_rounds(policies: dict, tokenizer, prm, train_problems, eval_problems, rs: RoundSettings, ts: TrainSettings,
               *, rounds: int = 2, problems_per_round: int | None = None, seed: int = 0,
               output_dir: str = "onpolicy", n_sampled: int = 2, shared_start: bool = True,
               methods: Sequence[str] = METHODS, out=print, on_round: Callable | None = None) -> tuple[list, dict]:
    """``rounds`` on-policy rounds (``run_round``), each on its slice of ``train_problems`` (``round_problems``).
    ``policies``: method -> its own copy of the start policy (``shared_start``: they are still equal, so round 1
    samples once). ``on_round(record, trainers)`` is called after each round (print, save, plot). Returns the
    round records and, per method, the trainer of the last round that trained it (its ``model`` is the policy)."""
    records, trainers = [], {}
    for r in range(1, rounds + 1):
        record, trained = run_round(policies, tokenizer, prm, round_problems(train_problems, problems_per_round, r),
                                     eval_problems, rs, ts, round_index=r, seed=seed, output_dir=output_dir,
                                     n_sampled=n_sampled, shared_start=shared_start and r == 1, methods=methods,
                                     out=out)
        records.append(record)
        trainers.update(trained)
        if on_round is not None:
            on_round(record, trained)
    return records, trainers
