"""Preference pairs from a PRM's step labels, without gold: the data half of an on-policy round (``onpolicy``).

1. **label** sampled solutions (``label_samples``): every step with the trained PRM (``σ(reward)`` = P(step right);
   the PRM's validation threshold, a log-odds, says which steps it rejects) and every final answer with
   ``problem.is_correct`` (what a user of a GSM8K-style task has). No gold step checker is used;
2. **solution pairs** (``solution_pairs``): chosen = right answer and no step the PRM rejects, rejected = wrong
   answer;
3. **Step-DPO pairs** (``step_pairs``; Lai et al. 2024, arXiv:2406.18629): the PRM locates the first wrong step k of
   a rejected solution, the policy that wrote it resamples from the shared prefix (steps < k) until the PRM accepts
   step k (and, by default, the whole corrected solution), and the pair is prefix + right step k + its rest vs the
   rejected solution. ``step_negatives`` and ``mirrored_negatives`` add more wrong steps at the same states (two
   diagnostics of why preference training overshoots in the toy world; docs/benchmarks.md);
4. **mislabels** (``count_mislabels``, ``step_agreement``): ``problem.verdict``, the task's checker, is read only to
   *count* how many pairs the PRM mislabelled, for evaluation.

**EOS and one-step completions.** TRL 1.16's ``DPOTrainer`` appends the EOS token to every non-chat completion,
so a Step-DPO pair in its prompt-prefix form (prompt + prefix, one step each) would teach the policy to stop
after one step; Step-DPO's own trainer comments the EOS out. Here the step pairs keep the rest of each solution
(``step_pair_rows(form="full")``): both completions are whole solutions whose EOS is right, the shared prefix
cancels in DPO's log-ratio and ``step_pairing="first_error"`` scores only step k. The prompt-prefix form
(``form="prefix"``) marks its rows ``open_ended``; ``StepwiseDPOTrainer`` then drops the EOS TRL appended.
"""

from __future__ import annotations

import numbers
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .. import generation
from ..checks import finite_number, keywords_taken, list_of, positive_int
from ..evaluation import predict_first_error
from ..rewards import InputTooLong, sigmoid, step_delimiter_of
from ..steps import DEFAULT_DELIMITER, extract_steps
from .bestofn import reward_scorer
from .task_problems import check_problems, graded

REJECTED_PROBS = ("prm", "first_error")
# A solution pair's chosen side: "prm", a right final answer and no step the PRM rejects; "answer", any right final
# answer, as plain rejection-sampling fine-tuning keeps its positives (Yuan et al. 2023, arXiv:2308.01825)
CHOSEN_RULES = ("prm", "answer")



def share_out(k: int, names: Sequence[str]) -> dict[str, int]:
    """``k`` samples per problem shared out among ``names`` (the first ones get one more when it does not divide)."""
    names = list_of(names, "share_out: names", "policy names")  # one str was shared out among its letters
    positive_int(k, "k", "share_out")  # -1 gave a policy -1 samples
    if not names:
        raise ValueError(f"share_out: no policies to share {k} samples out among")
    return {n: k // len(names) + (j < k % len(names)) for j, n in enumerate(names)}


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
    except InputTooLong:  # only length leaves a sample unscored; any other error is raised
        return False
    return True


def label_samples(prm, problems, solutions: Sequence[Sequence[str]], threshold: float, *, policy: str | None = None,
                  delimiter: str | None = None, batch_size: int | None = None, progress: bool = False
                  ) -> list[list[Sample]]:
    """Score every step of every solution with the PRM (one forward pass each) and check every final answer.

    ``solutions[i]`` holds the sampled texts of ``problems[i]``; ``policy`` names who sampled them (in
    ``Sample.policy``). Blank solutions and ones too long for the PRM are kept, unscored (``rewards=None``).
    ``prm.score_solutions(prompts, step_lists)`` must return one list of finite step rewards per solution (a
    ValueError names the problem and solution); it gets ``batch_size=`` and ``progress=`` (a bar over its scoring
    batches) where its signature takes them."""
    problems = check_problems(problems, "label_samples: problems", parts=("is_correct",))
    return _label_checked(prm, problems, solutions, threshold, policy=policy, delimiter=delimiter,
                          batch_size=batch_size, progress=progress)


def _label_checked(prm, problems: list, solutions, threshold, *, policy, delimiter, batch_size, progress):
    """``label_samples`` on ``problems`` its caller has checked (``_label_texts``: once a call, not once a batch)."""
    solutions = list_of(solutions, "label_samples: solutions", "lists of texts (one per problem)")
    if len(problems) != len(solutions):
        raise ValueError(f"label_samples: {len(problems)} problems but {len(solutions)} lists of solutions")
    finite_number(threshold, "threshold (a log-odds)", "label_samples")
    score = reward_scorer(prm, "label_samples")
    delimiter = delimiter or step_delimiter_of(prm) or DEFAULT_DELIMITER
    out, todo = [], []
    for i, (p, sols) in enumerate(zip(problems, solutions)):
        row = []
        for j, text in enumerate(list_of(sols, f"label_samples: solutions[{i}]", "solution texts")):
            if not isinstance(text, str):
                raise ValueError(f"label_samples: problem {i}, solution {j}: expected a str, got "
                                 f"{type(text).__name__}")
            steps = extract_steps(text, delimiter) if text.strip() else []
            s = Sample(i, text, steps, None, graded(p, text, f"label_samples: problem {i}, solution {j}"),
                       threshold, policy)
            if steps and _fits(prm, p.prompt, steps):
                todo.append((j, s))
            row.append(s)
        out.append(row)
    if todo:
        rewards = list_of(score([problems[s.problem].prompt for _, s in todo], [s.steps for _, s in todo],
                                **keywords_taken(score, batch_size=batch_size, progress=progress)),
                          "label_samples: the PRM's score_solutions", "reward lists (one per solution)")
        if len(rewards) != len(todo):  # a zip would leave the rest unscored, as if too long for the PRM
            raise ValueError(f"label_samples: the PRM returned {len(rewards)} lists of rewards for "
                             f"{len(todo)} solutions")
        for (j, s), r in zip(todo, rewards):
            where = f"label_samples: problem {s.problem}, solution {j}"  # a float: an ORM's, no step reward
            r = list_of(r, f"{where}: the PRM's rewards", "step rewards (one per step: a PRM's, not an ORM's)")
            if len(r) != len(s.steps):
                raise ValueError(f"label_samples: problem {s.problem}: the PRM returned {len(r)} rewards for a "
                                 f"solution of {len(s.steps)} steps (solution {j})")
            s.rewards = [finite_number(x, f"step {k}'s reward", where) for k, x in enumerate(r)]  # NaN, "a" too
    return out


def rejected_step_probs(sample: Sample, mode: str = "first_error") -> list[float]:
    """Step probabilities of a rejected solution for Stepwise DPO's step loss (it pushes down ``1 − p``).

    ``"prm"``: σ(reward) of every step. ``"first_error"``: σ(reward) up to the first step the PRM rejects, 1 after it: a
    step that builds faithfully on a wrong number is not an action to unlearn. ``rewards.mistake_made_here_labels`` (the
    trainer's ``reward_model_labels="mistake_made_here"``, and ``Verdict.mistake_labels`` without error kinds) marks
    every drop in σ instead, so it also counts a second mistake; this mode keeps the PRM's probabilities up to its first
    rejected step."""
    if mode not in REJECTED_PROBS:
        raise ValueError(f"rejected_probs must be one of {REJECTED_PROBS}, got {mode!r}")
    if sample.rewards is None:
        raise ValueError(f"rejected_step_probs: the solution of problem {sample.problem} is unscored (blank, or too "
                         "long for the PRM): it has no step probabilities")
    probs = [sigmoid(r) for r in sample.rewards]
    k = sample.prm_first_error
    if mode == "first_error" and k is not None and k >= 0:
        probs = probs[:k + 1] + [1.0] * (len(probs) - k - 1)
    return probs


def _sample_lists(problems, samples, where: str) -> list[list[Sample]]:
    """``samples`` as one list of ``Sample`` per problem (``label_samples``'): texts in their place were an
    AttributeError, and lists of another count than the problems were cut to the shorter by zip."""
    samples = list_of(samples, f"{where}: samples", "lists of Samples (label_samples')")
    if len(problems) != len(samples):
        raise ValueError(f"{where}: {len(problems)} problems but {len(samples)} lists of samples")
    for i, row in enumerate(samples):
        for j, s in enumerate(list_of(row, f"{where}: samples[{i}]", "Samples (label_samples')")):
            if not isinstance(s, Sample):
                raise ValueError(f"{where}: problem {i}, sample {j}: expected a prm_pairs.Sample (label_samples "
                                 f"labels the texts), got {type(s).__name__}")
    return samples


def _pair_row(prompt, chosen: Sample, rejected: Sample, rejected_probs: str, **extra) -> dict:
    return {"prompt": prompt, "chosen": chosen.text, "rejected": rejected.text,
            "chosen_step_labels": [sigmoid(r) for r in chosen.rewards],
            "rejected_step_labels": rejected_step_probs(rejected, rejected_probs),
            "chosen_step_rewards_prm": list(chosen.rewards), "rejected_step_rewards_prm": list(rejected.rewards),
            "problem_index": chosen.problem, "prm_first_error": rejected.prm_first_error, **extra}


def solution_pairs(problems, samples: Sequence[Sequence[Sample]], *, max_pairs_per_problem: int | None = 4,
                   seed: int = 0, rejected_probs: str = "first_error",
                   chosen: str = "prm") -> tuple[list[dict], Counter]:
    """Whole-solution preference pairs from PRM-labelled samples.

    Chosen (``chosen="prm"``): right final answer and no step the PRM rejects; a right answer with a step the PRM
    rejects (lucky, or a PRM false alarm) is used on neither side. ``chosen="answer"``: any right final answer the PRM
    scored, whatever its steps (``CHOSEN_RULES``; its row still carries its step probabilities for the step loss).
    Rejected: wrong final answer. Each distinct text once; of all chosen x rejected combinations,
    ``max_pairs_per_problem`` at random (seeded per prompt). Rows carry ``chosen_step_labels`` /
    ``rejected_step_labels`` (probabilities, see ``rejected_step_probs``) for ``StepwiseDPOTrainer`` and the raw PRM
    rewards; the counter says what was left out and why."""
    samples = _sample_lists(problems, samples, "solution_pairs")
    if chosen not in CHOSEN_RULES:
        raise ValueError(f"solution_pairs: chosen must be one of {CHOSEN_RULES}, got {chosen!r}")
    positive_int(max_pairs_per_problem, "max_pairs_per_problem", "solution_pairs", none_ok=True)  # None: all
    rows, stats = [], Counter()
    for p, row in zip(problems, samples):
        distinct = {}
        for s in row:
            distinct.setdefault(s.text, s)
        stats["repeated_solutions"] += len(row) - len(distinct)
        good = [s for s in distinct.values()  # scored: a row carries its step probabilities
                if (s.chosen_ok if chosen == "prm" else s.answer_correct and s.rewards is not None)]
        bad = [s for s in distinct.values() if s.rejected_ok]
        stats["unscored_solutions"] += sum(s.rewards is None for s in distinct.values())
        stats["right_answer_prm_rejected"] += sum(s.answer_correct and s.prm_first_error >= 0
                                                  for s in distinct.values() if s.rewards is not None)
        stats["wrong_answer_prm_accepted"] += sum(s.prm_first_error == -1 for s in bad)
        combos = [(c, r) for c in good for r in bad]
        random.Random(f"{seed}:{p.prompt}").shuffle(combos)
        stats["pairs_over_max_pairs_per_problem"] += len(combos[max_pairs_per_problem or len(combos):])
        rows += [_pair_row(p.prompt, c, r, rejected_probs, kind="solution", step_index=-1)
                 for c, r in combos[:max_pairs_per_problem]]
    stats["pairs"] = len(rows)
    return rows, stats


# ----------------------------------------------------------------------------- Step-DPO pairs, no gold

def step_pairs(policies: Mapping[str, object], tokenizer, prm, problems, samples: Sequence[Sequence[Sample]],
               threshold: float, *, max_per_problem: int = 1, tries: int = 4, attempts: int = 2,
               require: str = "solution", rejected_probs: str = "first_error", temperature: float = 1.0,
               max_new_tokens: int = 160, batch_size: int = 64, seed: int = 0, progress: bool = False,
               sample_fn: Callable | None = None, uncorrected: list | None = None) -> tuple[list[dict], Counter]:
    """Step-DPO pairs without gold labels: for up to ``max_per_problem`` rejected solutions per problem whose
    first wrong step k the PRM locates, the policy that wrote it (``policies[sample.policy]``, else the first)
    samples ``tries`` continuations of ``prompt + steps[:k]`` (T = ``temperature``), up to ``attempts`` times,
    until one is accepted: its step k differs from the wrong one and the PRM accepts it (``require="step"``),
    and also every later step and the final answer (``require="solution"``, default: the chosen is then a whole
    solution as good as a solution pair's). Returns rows in the whole-solution form (see ``step_pair_rows`` for
    the others): ``prompt``, ``chosen`` = prefix + right step + its rest, ``rejected`` = the rejected solution,
    ``initial_reason_steps``, ``chosen_step``, ``rejected_step``, ``step_index`` = k, step probabilities and
    rewards; and a counter of what was built and left out. ``progress``: bars over the resampling and its scoring.
    ``uncorrected``: a list to which every state that found no accepted step (``no_accepted_step``) is appended, as
    ``problem_index``, ``prompt``, ``prefix`` (steps before k), ``step`` (the wrong step k) and ``step_index``."""
    if require not in ("step", "solution"):
        raise ValueError(f"require must be 'step' or 'solution', got {require!r}")
    for name, value in (("max_per_problem", max_per_problem), ("tries", tries), ("attempts", attempts)):
        positive_int(value, name, "step_pairs")  # 0 built no pair, and -1 all but the last, silently
    # the loops below read each problem's prompt: what is no problem is named here, by index, not met there
    problems = check_problems(problems, "step_pairs: problems", parts=("is_correct",))
    samples = _sample_lists(problems, samples, "step_pairs")
    if not policies:
        raise ValueError("step_pairs: no policies to resample the wrong steps")
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
        stats["rejected_over_max_per_problem"] += max(0, len(picked) - max_per_problem)
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
                                  seed=seed + 1000 * attempt + 17, progress=progress)
            cands = []
            for j, cs in zip(js, conts):
                s = todo[j]
                prefix = "".join(s.steps[:s.prm_first_error])
                for c in dict.fromkeys(cs):
                    cands.append((j, prefix + c))
            # Score each candidate as a whole solution (the PRM reads step k in the context of the prefix)
            labelled = _label_texts(prm, problems, [todo[j].problem for j, _ in cands], [t for _, t in cands],
                                    threshold, name, "step_pairs", progress)
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
    if uncorrected is not None:  # the states no pair comes from: uncorrected_unlikelihood.py trains on them
        for s, k in ((todo[j], todo[j].prm_first_error) for j in pending):
            uncorrected.append(dict(problem_index=s.problem, prompt=problems[s.problem].prompt,
                                    prefix="".join(s.steps[:k]), step=s.steps[k], step_index=k))
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


def _against_chosen(row: dict, rejected: Sample, rejected_step: str, rejected_probs: str, threshold: float,
                    delimiter: str) -> dict:
    """One more Step-DPO pair at ``row``'s state: its chosen solution (split at ``delimiter``, the PRM's, as its
    rewards were) against ``rejected``, wrong at step k."""
    chosen = Sample(row["problem_index"], row["chosen"], extract_steps(row["chosen"], delimiter),
                    row["chosen_step_rewards_prm"], True, threshold)
    return _pair_row(row["prompt"], chosen, rejected, rejected_probs, kind="step", step_index=row["step_index"],
                     initial_reason_steps=row["initial_reason_steps"], chosen_step=row["chosen_step"],
                     rejected_step=rejected_step)


def step_negatives(policies: Mapping[str, object], tokenizer, prm, problems, step_rows: Sequence[dict],
                   threshold: float, *, tries: int = 8, max_per_state: int = 3, temperature: float = 2.0,
                   rejected_probs: str = "first_error", max_new_tokens: int = 160, batch_size: int = 64, seed: int = 0,
                   progress: bool = False, sample_fn: Callable | None = None) -> tuple[list[dict], Counter]:
    """More wrong steps at each Step-DPO state: the policies (``tries`` continuations of prompt + shared prefix,
    shared out among them, at ``temperature``) write step k again, and every distinct step k the PRM rejects
    becomes one more pair against the same chosen (up to ``max_per_state`` a state).

    Why: a pair only says "the right step, not this wrong one". The tiny policy's slips lean one way (mostly one
    too many, ``scripts/slip_offsets.py``), so most pairs reject the same neighbour, and preference training
    overshoots to the other one. Hotter samples from every policy put wrong steps on more sides of the right one
    (``mirrored_negatives`` tests that idea directly)."""
    problems = check_problems(problems, "step_negatives: problems", parts=("is_correct",))  # once, by this name
    if not step_rows:
        return [], Counter(pairs=0)
    if not policies:
        raise ValueError("step_negatives: no policies to write the wrong steps")
    for name, value in (("tries", tries), ("max_per_state", max_per_state)):
        positive_int(value, name, "step_negatives")
    sample_fn = sample_fn or generation.sample_solutions
    delimiter = step_delimiter_of(prm) or DEFAULT_DELIMITER  # the one _label_texts splits the candidates at
    contexts = [r["prompt"] + r["initial_reason_steps"] for r in step_rows]
    cands = []
    for j, (name, n) in enumerate(share_out(tries, list(policies)).items()):
        if n == 0:
            continue
        with generation.evaluating(policies[name]):
            conts = sample_fn(policies[name], tokenizer, contexts, n=n, temperature=temperature, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, seed=seed + 31 * (j + 1), progress=progress)
        cands += [(i, step_rows[i]["initial_reason_steps"] + c)
                  for i, cs in enumerate(conts) for c in dict.fromkeys(cs)]
    labelled = _label_texts(prm, problems, [step_rows[i]["problem_index"] for i, _ in cands], [t for _, t in cands],
                            threshold, None, "step_negatives", progress)
    rows, stats, taken = [], Counter(), {}
    for (i, _), cand in zip(cands, labelled):
        r, k = step_rows[i], step_rows[i]["step_index"]
        steps = taken.setdefault(i, {r["chosen_step"], r["rejected_step"]})
        # the prefix compared as text: the PRM split the candidate at its own delimiter (steps are lossless)
        if (cand.rewards is None or len(cand.steps) <= k or "".join(cand.steps[:k]) != r["initial_reason_steps"]
                or cand.rewards[k] >= threshold):
            stats["not_a_step_the_prm_rejects"] += 1
        elif cand.steps[k] in steps or len(steps) - 2 >= max_per_state:
            stats["repeated_or_state_full"] += 1
        else:
            steps.add(cand.steps[k])
            rows.append(_against_chosen(r, cand, cand.steps[k], rejected_probs, threshold, delimiter))
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
    problems = check_problems(problems, "mirrored_negatives: problems", parts=("is_correct",))  # once, by this name
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
                            [t for _, _, t in cands], threshold, None, "mirrored_negatives") if cands else []
    rows, delimiter = [], step_delimiter_of(prm) or DEFAULT_DELIMITER
    for (i, step, _), cand in zip(cands, labelled):
        k = step_rows[i]["step_index"]
        if cand.rewards is None:  # too long for the PRM: not a mirror it accepts
            stats["unscored_mirrors"] += 1
            continue
        if len(cand.steps) <= k or cand.rewards[k] >= threshold:
            stats["prm_accepts_the_mirror"] += 1
            continue
        rows.append(_against_chosen(step_rows[i], cand, step, rejected_probs, threshold, delimiter))
    stats["pairs"] = len(rows)
    return rows, stats


def _label_texts(prm, problems, problem_indices, texts, threshold, policy, who: str,
                 progress=False) -> list[Sample]:
    """``label_samples`` for a flat list of (problem index, text): ``problems`` is the list the public function
    ``who`` checked (once a call, not once a batch), and a problem index outside it a ValueError naming ``who``."""
    # out of range, problems[i] would be an IndexError naming no row, or (negative) another problem, silently
    bad = next((i for i in problem_indices if isinstance(i, bool) or not isinstance(i, numbers.Integral)
                or not 0 <= i < len(problems)), None)
    if bad is not None:
        raise ValueError(f"{who}: problem_index {bad!r} is not an index of the {len(problems)} problems given")
    groups = [[] for _ in problems]  # none for a problem without texts: Sample.problem and messages name problem i
    for i, t in zip(problem_indices, texts):
        groups[i].append(t)
    labelled = _label_checked(prm, problems, groups, threshold, policy=policy, delimiter=None, batch_size=None,
                              progress=progress)
    cursor = [0] * len(problems)
    out = []
    for i in problem_indices:
        out.append(labelled[i][cursor[i]])
        cursor[i] += 1
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
    for i, r in enumerate(rows):
        missing = [f for f in ("prompt", "initial_reason_steps", "chosen_step", "rejected_step", "chosen_step_labels",
                               "rejected_step_labels", "problem_index", "step_index") if f not in r]
        if missing:
            raise ValueError(f"step_pair_rows: row {i}: field '{missing[0]}' is missing (a step pair from step_pairs?)")
        k = r["step_index"]  # 1.0 was a TypeError, and True read as step 1
        if (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                or not 0 <= k < min(len(r["chosen_step_labels"]), len(r["rejected_step_labels"]))):
            raise ValueError(f"step_pair_rows: row {i}: field 'step_index': {k!r} is not a step of both sides "
                             "(a solution pair has -1: it has no one-step form)")
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
    prefix then holds a wrong step, or its "wrong" step k is right). ``chosen_wrong_after_step`` counts the step
    pairs whose chosen solution goes wrong after a right step k: the Step-DPO pair is sound, but DPO and NLL only
    train on that whole solution. None when the task has no step checker."""
    counts = Counter(pairs=len(rows))
    for i, r in enumerate(rows):
        missing = [f for f in ("problem_index", "chosen", "rejected", "step_index", "prm_first_error") if f not in r]
        if missing:  # was a bare KeyError
            raise ValueError(f"count_mislabels: row {i}: field '{missing[0]}' is missing (a pair from solution_pairs "
                             "or step_pairs?)")
        j = r["problem_index"]  # True was read as problem 1, and 1.0 raised a TypeError
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or not 0 <= j < len(problems):
            raise ValueError(f"count_mislabels: row {i}: field 'problem_index': {j!r} is not one of the "
                             f"{len(problems)} problems")
        p = problems[j]
        vc, vr = p.verdict(r["chosen"]), p.verdict(r["rejected"])
        if vc is None or vr is None:
            return None
        k = r["step_index"]
        step_pair = 0 <= k < len(vc.step_labels)
        chosen_bad = (not vc.step_labels[k]) if step_pair else vc.first_error >= 0
        rejected_bad = vr.first_error != r["prm_first_error"]
        if step_pair:
            counts["chosen_wrong_after_step"] += vc.first_error > k
        counts["chosen_wrong"] += chosen_bad
        counts["rejected_first_error_elsewhere"] += rejected_bad
        counts["mislabelled"] += chosen_bad or rejected_bad
    return dict(counts)


def count_lucky(problems, samples: Sequence[Sequence[Sample]]) -> dict | None:
    """The right answers among the samples that the checker finds a wrong step in: lucky ones, right for a wrong
    reason (Uesato et al. 2022, arXiv:2211.14275, call their share "trace error"). Counts ``right`` (right answers),
    ``lucky`` (of them, with a wrong step), ``prm_kept`` (right answers with no step the PRM rejects: a solution
    pair's chosen by ``chosen="prm"``) and ``prm_kept_lucky`` (of those, lucky). Every sample, repeated texts too.
    None when the task has no step checker."""
    samples = _sample_lists(problems, samples, "count_lucky")
    counts = Counter(right=0, lucky=0, prm_kept=0, prm_kept_lucky=0)
    for p, row in zip(problems, samples):
        for s in (s for s in row if s.answer_correct):
            verdict = p.verdict(s.text)
            if verdict is None:
                return None
            lucky = verdict.first_error >= 0
            counts.update(right=1, lucky=lucky, prm_kept=s.chosen_ok, prm_kept_lucky=s.chosen_ok and lucky)
    return dict(counts)


def step_agreement(problems, samples: Sequence[Sequence[Sample]]) -> float | None:
    """Share of scored steps where the PRM's accept/reject agrees with the checker's step label (None: no
    checker)."""
    samples = _sample_lists(problems, samples, "step_agreement")  # zip compared the shorter one's only
    agree = total = 0
    for p, row in zip(problems, samples):
        for s in row:
            if s.rewards is None:
                continue
            labels = p.step_labels(s.text)
            if labels is None:
                return None
            if len(labels) != len(s.rewards):  # the two split the text differently: no step to compare with
                raise ValueError(f"step_agreement: problem {s.problem}: the PRM scored {len(s.rewards)} steps and the "
                                 f"checker labels {len(labels)} (do they split steps with the same delimiter?)")
            agree += sum((r >= s.threshold) == bool(y) for r, y in zip(s.rewards, labels))
            total += len(labels)
    return agree / total if total else None
