"""Generation with exact token counts: sample continuations of texts from a causal LM, stop each row at EOS, at the
step delimiter or at its own token cap, and count the tokens each row generated.

A search and best-of-N compare at the same number of generated tokens, so the count must be exact: for every row of
every ``generate`` call, the new tokens up to and including the one that stopped it (EOS or the delimiter's last
token), padding excluded (``Generation.n_tokens``). With a delimiter (default ``"\\n\\nStep"``, ``steps.py``) a
row stops where the policy writes it: the step is the text before it, and the delimiter opens the next step (it is
fed back to the policy as the start of the next step, never generated twice), so the steps concatenate to a normal
solution. Without one (``delimiter=None``) a row is a whole solution: ``sample_candidates`` samples best-of-N's
candidates that way.

Neighbours: ``search.py`` grows step-level beam search and DVTS from these steps (``search.hf_sampler`` is
``generate`` with the PRM's delimiter; a test's sampler returns ``Generation`` lists itself); ``search_report.py``
says what the candidates cost (``candidate_costs``); ``generation.py`` (the core) samples whole solutions without
counting tokens, with the same pure sampling (``generation.exact_sampling``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import StoppingCriteria

from ..checks import list_of, positive_int
from ..generation import (check_sampling, eos_token_ids, exact_sampling, prompt_texts, record_prompts,
                          sampling_arguments)
from ..steps import DEFAULT_DELIMITER
from .task_problems import prompts_of
from .tasks import check_spelled

STOPS = ("eos", "delimiter", "length")  # why a row stopped (Generation.stop)


@dataclass
class Generation:
    """One row of a ``generate`` call: ``text`` (decoded, cut before the delimiter when it stopped there),
    ``n_tokens`` (new tokens generated, up to and including the one that stopped the row; no padding),
    ``stop`` ("eos", "delimiter" or "length") and ``rest`` (text decoded after the delimiter in the same
    tokens, e.g. a token that overhangs it; it opens the next step with the delimiter)."""

    text: str
    n_tokens: int
    stop: str
    rest: str = ""


def _cut(text: str, delimiter: str, lead: str = "") -> int | None:
    """Index of the first ``delimiter`` in ``text`` that closes a non-blank step (``lead + text[:i]``), or None."""
    i = text.find(delimiter)
    while i != -1:
        if (lead + text[:i]).strip():
            return i
        i = text.find(delimiter, i + 1)
    return None


def _step_stopper(tokenizer, delimiter: str | None, prompt_len: int, leads: Sequence[str], eos: set[int],
                  caps: Sequence[int]):
    """A ``StoppingCriteria`` that stops each row at EOS, once its new text holds ``delimiter`` after a non-blank
    step, or at its own cap ``caps[i]``, and records where (``stopped_at[i]``: new tokens so far; 0 while running)."""
    window = len(tokenizer(delimiter, add_special_tokens=False)["input_ids"]) + len(delimiter) + 2 if delimiter else 0

    class StopAtStep(StoppingCriteria):
        def __init__(self):
            self.stopped_at = [0] * len(leads)
            self.kind = [""] * len(leads)

        def __call__(self, input_ids, scores=None, **kwargs):
            n = input_ids.shape[1] - prompt_len
            live = [i for i, s in enumerate(self.stopped_at) if not s]
            if live and n > 0:
                new = input_ids[live, prompt_len:]
                last = new[:, -1].tolist()
                tails = tokenizer.batch_decode(new[:, -window:].tolist(), skip_special_tokens=True) if delimiter else []
                for r, i in enumerate(live):
                    if last[r] in eos:
                        self.stopped_at[i], self.kind[i] = n, "eos"
                    elif delimiter and delimiter in tails[r]:
                        full = tokenizer.decode(new[r].tolist(), skip_special_tokens=True)
                        if _cut(full, delimiter, leads[i]) is not None:
                            self.stopped_at[i], self.kind[i] = n, "delimiter"
                    if not self.stopped_at[i] and n >= caps[i]:
                        self.stopped_at[i], self.kind[i] = n, "length"
            return torch.tensor([s > 0 for s in self.stopped_at], dtype=torch.bool, device=input_ids.device)

    return StopAtStep()


def generate(model, tokenizer, texts: Sequence[str], n: int = 1, *, delimiter: str | None = DEFAULT_DELIMITER,
             leads: Sequence[str] | None = None, temperature: float = 1.0, max_new_tokens: int | Sequence[int] = 160,
             batch_size: int = 64, seed: int | None = 0) -> list[list[Generation]]:
    """``n`` continuations of each text, each stopped at EOS, at ``delimiter`` (None: only EOS and the length
    cap, i.e. whole solutions) or after ``max_new_tokens`` (one value, or one per text), with exact token counts.

    ``leads[i]`` is the start of the step text ``i`` continues (e.g. the delimiter itself): a delimiter ends a
    step only when ``leads[i]`` + the text before it is not blank, so no step is ever blank. Sampling is pure
    (``top_k=0``, ``top_p=1``, none of the model's saved settings: ``generation.exact_sampling``) at ``temperature``
    (0: greedy), as ``generation.sample_solutions``; ``seed`` seeds torch once before the first batch (None: leave
    the generator as it is).
    """
    texts = prompt_texts(texts, "generate")
    positive_int(seed, "seed", "generate", none_ok=True, minimum=0)  # True seeded 1, 1.5 was torch's TypeError
    if delimiter is not None and not delimiter:
        raise ValueError("generate: delimiter must be a non-empty string or None")
    if isinstance(max_new_tokens, numbers.Number):  # one cap for every text; 160.0 or True is refused, not cast
        caps = [positive_int(max_new_tokens, "max_new_tokens", "generate")] * len(texts)
    else:
        caps = list_of(max_new_tokens, "generate: max_new_tokens", "caps (one int >= 1 per text)")
        if len(caps) != len(texts):
            raise ValueError(f"generate: {len(texts)} texts but {len(caps)} max_new_tokens")
        for i, cap in enumerate(caps):  # a cap of 2.5 stopped its row at 3 tokens, True at 1
            positive_int(cap, f"max_new_tokens[{i}] (text {i})", "generate")
    check_sampling(model, tokenizer, texts, n, temperature, batch_size, max(caps, default=1), where="generate")
    leads = [""] * len(texts) if leads is None else list_of(leads, "generate: leads", "leads (one str per text)")
    if len(leads) != len(texts):
        raise ValueError(f"generate: {len(texts)} texts but {len(leads)} leads")
    record_prompts(texts)  # as generation.sample_solutions records its prompts: tests check none holds an answer
    rows = [(i, texts[i], leads[i], caps[i]) for i in range(len(texts)) for _ in range(n)]
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    sampling = sampling_arguments(temperature)
    device = next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(seed)
    out: list[Generation | None] = [None] * len(rows)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for start in range(0, len(rows), batch_size):
            batch = list(range(start, min(start + batch_size, len(rows))))
            row_caps = [rows[r][3] for r in batch]
            enc = tokenizer([rows[r][1] for r in batch], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            width = enc["input_ids"].shape[1]
            # Whole solutions with one cap need no criterion of ours (no host sync per token): a row's first EOS
            # is where it stopped, since generate pads a finished row (with EOS itself when there is no pad token).
            stopper = (_step_stopper(tokenizer, delimiter, width, [rows[r][2] for r in batch], set(eos), row_caps)
                       if delimiter or len(set(row_caps)) > 1 else None)
            with torch.no_grad(), exact_sampling(model):
                seqs = model.generate(**enc, max_new_tokens=max(row_caps), pad_token_id=pad, eos_token_id=eos,
                                      **({"stopping_criteria": [stopper]} if stopper else {}), **sampling)
            new = seqs[:, width:].tolist()
            for j, r in enumerate(batch):
                if stopper is not None:
                    count, stop = stopper.stopped_at[j], stopper.kind[j] or "length"
                else:
                    count = next((k + 1 for k, t in enumerate(new[j]) if t in eos), 0)
                    stop = "eos" if count else "length"
                count = count or len(new[j])  # never stopped: it ran to the cap
                text = tokenizer.decode(new[j][:count], skip_special_tokens=True)
                rest = ""
                if stop == "delimiter":
                    cut = _cut(text, delimiter, rows[r][2])
                    text, rest = text[:cut], text[cut + len(delimiter):]
                out[r] = Generation(text, count, stop, rest)
    finally:
        tokenizer.padding_side = side
    return [out[i * n:(i + 1) * n] for i in range(len(texts))]


def sample_candidates(model, tokenizer, problems, n: int, *, temperature: float = 1.0, max_new_tokens: int = 160,
                      batch_size: int = 64, seed: int = 0) -> tuple[list[list[str]], list[list[int]]]:
    """``n`` whole solutions per problem (best-of-N candidates) and the tokens generated for each, counted
    exactly (``generate`` without a delimiter: the same sampling as ``policy_eval.sample_solutions``; every EOS id of
    the tokenizer and of the model's generation config ends a candidate, as it ends a search's step). A prompt the
    tokenizer cannot spell is a ValueError naming its problem and characters, as there (``tasks.check_spelled``)."""
    positive_int(seed, "seed", "sample_candidates", minimum=0)  # None would leave torch's generator as it is
    prompts = prompts_of(problems, "sample_candidates")
    if not prompts:
        raise ValueError("sample_candidates: problems is empty: give one or more problems")
    check_spelled(tokenizer, prompts, "sample_candidates: problems")  # the policy would read <unk>, silently
    gens = generate(model, tokenizer, prompts, n, delimiter=None, temperature=temperature,
                    max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    return [[g.text for g in row] for row in gens], [[g.n_tokens for g in row] for row in gens]


def check_token_counts(candidate_tokens, who: str, candidates=None) -> None:
    """Each count of ``candidate_tokens`` an int >= 1 (the tokens ``sample_candidates`` generated for one solution),
    named by problem and candidate; with ``candidates``, one count per candidate (a short row would set a budget,
    or the tokens per solution, from other solutions than those graded)."""
    rows = list_of(candidate_tokens, f"{who}: candidate_tokens", "lists of token counts (one per problem)")
    if candidates is not None and len(rows) != len(candidates):
        raise ValueError(f"{who}: candidates and candidate_tokens differ in shape (one count per solution): "
                         f"{len(candidates)} problems and {len(rows)} lists of counts")
    for i, row in enumerate(rows):
        row = list_of(row, f"{who}: candidate_tokens[{i}]", "token counts")
        if candidates is not None and len(row) != len(candidates[i]):
            raise ValueError(f"{who}: candidates and candidate_tokens differ in shape (one count per solution): "
                             f"problem {i} has {len(candidates[i])} candidates and {len(row)} counts")
        for j, count in enumerate(row):
            positive_int(count, f"candidate_tokens[{i}][{j}] (problem {i}, candidate {j})", who)
