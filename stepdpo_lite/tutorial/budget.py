"""Time and memory: an estimate before a long generation job (and a cap to a budget), and a measurement after
each training cell.

Generation estimates count rows (sequences generated) x tokens per row / the profile's sampling speed
(``Profile.sampling_tokens_per_s``, tokens a second summed over a batch of ``Profile.sample_batch_size`` rows;
see ``profiles.PROFILES`` for where each figure comes from). A batch decodes until its longest row stops, so a
row is counted at ``max_new_tokens``: the estimate is an upper bound, not a forecast.

Neighbours: what a budget caps, notebook 01's Monte-Carlo labelling, is planned by ``tasks.labelling_plan`` (which
adds how to raise notebook 01's budget to the plan); how many optimizer steps a training run takes, and on how many
pairs a device step, beside the training arguments they go into: ``onpolicy.optimizer_steps``,
``onpolicy.preference_batch_size``, ``onpolicy.training_args``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from dataclasses import dataclass, field

from ..checks import list_of, positive_int


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if not _number(seconds) or not 0 <= seconds < math.inf:  # NaN read "<= nan h", -3 "<= -3 s"
        raise ValueError(f"budget: seconds must be a number >= 0 (finite) or None, got {seconds!r:.40}")
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def at_most(seconds: float | None) -> str:
    """``"<= 3.2 min"``, or a note that there is no estimate (the profile has no sampling speed)."""
    return "time unknown (no sampling speed in the profile)" if seconds is None else f"<= {format_duration(seconds)}"


def generation_seconds(rows: int, tokens_per_row: int, tokens_per_s: float | None, batch_size: int = 1) -> float | None:
    """Upper-bound seconds to generate ``rows`` sequences of up to ``tokens_per_row`` new tokens, batched."""
    positive_int(rows, "rows", "generation_seconds", minimum=0)  # -8 rows: a negative estimate
    positive_int(tokens_per_row, "tokens_per_row", "generation_seconds")
    positive_int(batch_size, "batch_size", "generation_seconds")  # 0, -4 or True were taken as 1, silently
    if tokens_per_s is None:
        return None
    # NaN: a NaN estimate; True: 1 token a second; inf: 0 s
    if isinstance(tokens_per_s, bool) or not 0 < tokens_per_s < math.inf:
        raise ValueError(f"generation_seconds: tokens_per_s must be > 0 (finite), got {tokens_per_s!r}")
    padded = math.ceil(rows / batch_size) * batch_size  # a last, partial batch costs a full one
    return padded * tokens_per_row / tokens_per_s


def _number(x) -> bool:
    """A real number that is not a bool (``True > 0`` holds, and a str does not compare)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@dataclass
class GenerationPlan:
    """Rows to generate per problem of each split, how many problems (the first ``keep[split]``) fit the budget,
    and the estimate; ``apply`` cuts per-split lists (problems, solutions) to the kept problems."""

    what: str
    rows: dict[str, list[int]]
    tokens_per_row: int
    tokens_per_s: float | None
    budget_minutes: float | None
    batch_size: int = 1
    keep: dict[str, int] = field(default_factory=dict)
    note: str = ""  # why ``keep`` differs from the budget's share, printed with the plan
    to_label_more: str = ""  # how the caller's reader lifts the cap (its own budget setting), printed after the cut

    def total_rows(self, keep: dict[str, int] | None = None) -> int:
        keep = self.keep if keep is None else keep
        return sum(sum(r[:keep.get(s, len(r))]) for s, r in self.rows.items())

    def seconds(self, keep: dict[str, int] | None = None) -> float | None:
        return generation_seconds(self.total_rows(keep), self.tokens_per_row, self.tokens_per_s, self.batch_size)

    @property
    def full(self) -> dict[str, int]:
        return {s: len(r) for s, r in self.rows.items()}

    @property
    def capped(self) -> bool:
        return self.keep != self.full

    def apply(self, by_split: dict) -> dict:
        return {s: items[:self.keep.get(s, len(items))] for s, items in by_split.items()}

    def __str__(self) -> str:
        full, rows = self.full, self.total_rows(self.full)
        speed = (f" at ~{self.tokens_per_s:,.0f} tokens/s ({self.batch_size} rows a batch)"
                 if self.tokens_per_s else "")
        lines = [f"{self.what}: {rows:,} sequences x <= {self.tokens_per_row} new tokens = "
                 f"{rows * self.tokens_per_row / 1e6:.2f} M tokens{speed}: {at_most(self.seconds(full))}"]
        if self.capped:
            kept = ", ".join(f"{self.keep[s]} of {n} {s}" for s, n in full.items())
            lines.append(f"  over the budget of {self.budget_minutes:g} min: labelling only the first {kept} problems "
                         f"({self.total_rows():,} sequences, {at_most(self.seconds())})"
                         + (f"; {self.to_label_more}" if self.to_label_more else ""))
        elif self.budget_minutes is not None and self.tokens_per_s and self.seconds() <= self.budget_minutes * 60:
            lines.append(f"  within the budget of {self.budget_minutes:g} min")
        return "\n".join(lines + ([f"  {self.note}"] if self.note else []))


def plan_generation(rows: dict[str, list[int]], *, tokens_per_row: int, tokens_per_s: float | None,
                    budget_minutes: float | None, batch_size: int = 1, what: str = "generation") -> GenerationPlan:
    """Keep every problem if the estimate fits ``budget_minutes`` (or there is no budget or no speed figure);
    else the largest equal share of each split's problems (at least one each) that fits, and where even one
    problem a split does not fit, a ``note`` that says so."""
    # NaN too: it would quietly keep one problem a split; True was a budget of 1 min or a speed of 1 token a second
    if budget_minutes is not None and not (_number(budget_minutes) and budget_minutes > 0):
        raise ValueError(f"{what}: budget_minutes must be > 0 or None (no budget), got {budget_minutes!r}")
    if tokens_per_s is not None and not (_number(tokens_per_s) and 0 < tokens_per_s < math.inf):  # inf: 0 s
        raise ValueError(f"{what}: tokens_per_s must be > 0 (finite) or None (not measured), got {tokens_per_s!r}")
    for split, counts in rows.items():  # one str was read a character at a time; -8 rows took time off the rest
        for i, n in enumerate(list_of(counts, f"{what}: rows[{split!r}]", "row counts, one per problem")):
            positive_int(n, f"rows[{split!r}][{i}]", what, minimum=0)
    positive_int(tokens_per_row, "tokens_per_row", what)
    positive_int(batch_size, "batch_size", what)
    plan = GenerationPlan(what, {s: list(r) for s, r in rows.items()}, tokens_per_row, tokens_per_s,
                          budget_minutes, batch_size)
    plan.keep = plan.full
    if budget_minutes is None or tokens_per_s is None or math.isinf(budget_minutes):
        return plan
    budget_s = budget_minutes * 60

    def keep_at(f: float) -> dict[str, int]:
        return {s: min(n, max(1, math.floor(f * n + 1e-9))) for s, n in plan.full.items()}

    if plan.seconds(plan.full) <= budget_s:
        return plan
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if plan.seconds(keep_at(mid)) <= budget_s else (lo, mid)
    plan.keep = keep_at(lo)
    if plan.seconds() > budget_s:  # the least it labels is over the budget too: said, not left to the reader's sums
        plan.note = f"still over the budget of {budget_minutes:g} min: one problem per split is the least it labels"
    return plan


@contextlib.contextmanager
def track(label: str, out=print):
    """Time a block (e.g. a training run) and, on a GPU, its peak memory; print one line at the end::

        with budget.track("PRM training") as used:
            prm = train_process_reward_model(...)
        used["seconds"], used.get("peak_reserved_gib")
    """
    import torch  # only to time a block: tasks and profiles' users import this module torch-free

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    used: dict = {}
    start = time.perf_counter()
    yield used
    if cuda:
        torch.cuda.synchronize()
    used["seconds"] = round(time.perf_counter() - start, 2)
    line = f"{label}: {format_duration(used['seconds'])}"
    if cuda:
        used["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        used["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        line += (f", peak GPU memory {used['peak_reserved_gib']:.2f} GiB reserved "
                 f"({used['peak_allocated_gib']:.2f} GiB allocated)")
    out(line)
