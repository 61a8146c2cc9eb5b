"""What the values of the notebooks' parameters may be, checked up front: each notebook's setup cell (01-07) calls
``check(globals())``, so a bad value in its parameters cell (or a ``--set``) is refused there, naming the parameter,
before anything trains or samples. Left to the library, a 0 became the profile's default through ``N or default``
(``N_CANDIDATES = 0`` sampled 16), a bad choice or count failed after minutes of training naming an argument of the
library, and a negative weight trained without an error.

One spec per parameter name: a name means the same in every notebook that has it (``N_TEST_PROBLEMS`` in 04 and 06).
Where a parameter may be None, None means what its comment in the parameters cell says ("all", "the profile's"); 0
is never that. A name in ``SPECS`` must be a parameter wherever it is assigned (tests/test_notebook_parameters.py
checks it), as ``check`` reads it from a notebook's globals, and ``notebooks.notebook_started`` records the value of
each in a Jupyter run.
Each is assigned in the parameters cell only (tests/test_notebook_parameters.py): a value derived from one has a
lowercase name (``n_test``), so that a rerun of the cell that derives it records no change of the parameter."""

from __future__ import annotations

from collections.abc import Mapping

from ..checks import finite_number, flag, list_of, positive_int, warn_user
from ..trainer import STEP_PAIRINGS
from .onpolicy import PAIR_KINDS, STEP_GRADIENTS
from .profiles import ONPOLICY_PROTOCOLS

WHO = "parameters cell"
QUANTIZATIONS = ("4bit", None)  # what models.load_model takes


def _count(*, none_ok: bool = False, minimum: int = 1):
    """An int >= ``minimum`` (or None with ``none_ok``): never a float, nor a 0 that would read as the default."""
    def check(value, name):
        positive_int(value, name, WHO, none_ok=none_ok, minimum=minimum)
    return check


def _number(minimum: float, *, above: bool = False, maximum: float | None = None, none_ok: bool = False):
    """A finite number >= ``minimum`` (> it with ``above``), <= ``maximum`` if given, or None with ``none_ok``."""
    allowed = (f"in [{minimum:g}, {maximum:g}]" if maximum is not None else f"{'>' if above else '>='} {minimum:g}")

    def check(value, name):
        if none_ok and value is None:
            return
        x = finite_number(value, name, WHO)
        if x < minimum or (above and x == minimum) or (maximum is not None and x > maximum):
            raise ValueError(f"{WHO}: {name} must be {allowed}{' or None' if none_ok else ''}, got {value!r}")
    return check


def _choice(choices):
    """One of ``choices``: strs, and None where None is allowed."""
    def check(value, name):
        if not (value is None or isinstance(value, str)) or value not in choices:
            raise ValueError(f"{WHO}: {name} must be one of {tuple(choices)}, got {value!r}")
    return check


def _flag(*, none_ok: bool = False):
    """True or False (or None with ``none_ok``): "no" would be true."""
    def check(value, name):
        if not (none_ok and value is None):
            flag(value, name, WHO)
    return check


def _budgets(value, name):
    """A non-empty list of ints >= 1: [] ran up to a max() of nothing, a bare 16 failed as not iterable."""
    budgets = list_of(value, f"{WHO}: {name}", "ints >= 1")
    if not budgets:
        raise ValueError(f"{WHO}: {name} must be a non-empty list of ints >= 1, got {value!r}")
    for i, b in enumerate(budgets):
        positive_int(b, f"{name}[{i}]", WHO)


def _temperature(value, name):
    """>= 0; at 0 every sample is the greedy solution, which is allowed but makes the comparison moot."""
    _number(0)(value, name)
    if value == 0:
        warn_user(f"{name} = 0 samples greedily: every candidate of a problem is the same solution, so "
                  "best-of-N, majority voting and the search pick among copies of one; use a temperature > 0")


def _minutes(value, name):
    """None (the profile's), or minutes > 0; ``float("inf")`` labels everything (notebook 01's comment says so)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ValueError(f"{WHO}: {name} must be minutes > 0 (float('inf'): no cap) or None, got {value!r}")


SPECS = {
    # 01: the data
    "N_TRAIN_PROBLEMS": _count(none_ok=True),
    "N_EVAL_PROBLEMS": _count(none_ok=True),
    "N_SAMPLES": _count(none_ok=True),
    "N_MC_SOLUTIONS": _count(),
    "N_MC_ROLLOUTS": _count(),
    "MC_BUDGET_MINUTES": _minutes,
    # 02, 03: the reward models
    "N_TRAIN_ROWS": _count(none_ok=True),
    "N_EVAL_ROWS": _count(none_ok=True),
    "MAX_TRAIN_STEPS": _count(none_ok=True),  # 04 too
    "QUANTIZATION": _choice(QUANTIZATIONS),
    "N_HEATMAP_SOLUTIONS": _count(),  # 05 too
    "TRAIN_CONTROL": _flag(none_ok=True),
    "SEED": _count(minimum=0),
    "PROCESS_WEIGHT": _number(0, maximum=1, none_ok=True),  # its outcome weight is 1 - it
    # 04: the preference runs and the on-policy rounds
    "N_TRAIN_PAIRS": _count(none_ok=True),
    "N_TEST_PROBLEMS": _count(none_ok=True),  # 06 too
    "LEARNING_RATE": _number(0, above=True, none_ok=True),
    "BETA": _number(0, above=True),
    "SFT_WEIGHT": _number(0),
    "OUTCOME_WEIGHT": _number(0),
    "BATCH_SIZE": _count(none_ok=True),
    "N_SAMPLED": _count(),
    "ONPOLICY_ROUNDS": _count(minimum=0),  # 0: no rounds
    "ONPOLICY_PROBLEMS": _count(),
    "ONPOLICY_SAMPLES": _count(),
    "ONPOLICY_STEPS": _count(),  # transformers reads max_steps=0 as "train by epochs"
    "ONPOLICY_PAIRS": _choice(PAIR_KINDS),
    "ONPOLICY_PROTOCOL": _choice((*ONPOLICY_PROTOCOLS, None)),
    "ONPOLICY_STEP_PAIRING": _choice((*STEP_PAIRINGS, None)),
    "ONPOLICY_SFT_WEIGHT": _number(0, none_ok=True),
    "ONPOLICY_STEP_WEIGHT": _number(0, none_ok=True),
    "ONPOLICY_STEP_GRADIENT": _choice((*STEP_GRADIENTS, None)),
    # 05: the visualisations
    "N_PAIRS": _count(),
    "N_BEFORE_AFTER_PROBLEMS": _count(),
    "N_EXPLORER_PROBLEMS": _count(),
    # 06, 07: best-of-N and the search
    "N_BEST_OF_N_PROBLEMS": _count(none_ok=True),
    "N_CANDIDATES": _count(none_ok=True),
    "TEMPERATURE": _temperature,
    "N_RESAMPLES": _count(),
    "N_TEST_TIME_PROBLEMS": _count(none_ok=True),
    "TEST_TIME_BUDGETS": _budgets,
    "EXPANSIONS": _count(),
    "RUN_DVTS": _flag(),
    "MAX_STEPS": _count(),
}


def check(namespace: Mapping) -> list[str]:
    """Check the value of each name of ``SPECS`` that ``namespace`` holds (a notebook's ``globals()``, or a dict of
    its parameters); other names are left alone. Every bad value is named in one ``ValueError`` (a learner fixes
    them all at once); a TEMPERATURE of 0 is a warning. Returns the names checked, in ``SPECS``' order."""
    if not isinstance(namespace, Mapping):
        raise ValueError(f"check: namespace must be a mapping of names to values (globals()), "
                         f"got {type(namespace).__name__}")
    checked = [name for name in SPECS if name in namespace]
    errors = []
    for name in checked:
        try:
            SPECS[name](namespace[name], name)
        except ValueError as err:
            errors.append(str(err))
    if len(errors) == 1:
        raise ValueError(errors[0])
    if errors:
        raise ValueError(f"{len(errors)} parameters are refused:\n  " + "\n  ".join(errors))
    return checked

