"""The argument checks and warnings the library shares (``warn_of_unread_text``: text a tokenizer cannot read), and
``documented_fields`` (a dataclass's field help, shown by help()). Each check refuses a bad value with a ValueError
that names the function and the argument; none casts: ``int(2.5)`` would quietly be 2, a str is read by character."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import numbers
import textwrap
import warnings
from collections.abc import Mapping

AGGREGATION_STRATEGIES = ("weighted_sum", "mean", "min", "max", "product", "last")  # losses.aggregate_rewards'
CALLED_BACK_FROM = ("torch", "trl", "transformers", "accelerate", "datasets")  # libraries that call the kit back


def warn_user(message: str) -> None:
    """A UserWarning naming the first frame outside the kit (its tutorial too) and ``CALLED_BACK_FROM`` (TRL prepares
    the trainer's datasets, torch's no_grad wraps get_step_rewards): the user's call, however deep the kit warns."""
    frame, level = inspect.currentframe().f_back, 2  # warn_user's caller, the frame stacklevel=2 names
    while frame and str(frame.f_globals.get("__name__")).partition(".")[0] in (__package__, *CALLED_BACK_FROM):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def list_of(value, name: str, what: str) -> list:
    """``value`` as a list. One str is refused: it would be read character by character (step 4 of "Step 1: ..." is
    "p"); so is anything that is not a sequence (None, a number), with a message saying what to pass."""
    if isinstance(value, str):
        raise ValueError(f"{name}: expected a list of {what}, got one str ({value[:40]!r}); wrap it in a list")
    with contextlib.suppress(TypeError):  # a 0-d numpy array or torch tensor has __iter__ but cannot be iterated
        if not isinstance(value, (bytes, Mapping)):  # a mapping would give its keys
            return list(value)
    raise ValueError(f"{name}: expected a list of {what}, got {type(value).__name__}")


def positive_int(value, name: str, who: str, *, none_ok: bool = False, minimum: int = 1):
    """``value`` as an int if it is one >= ``minimum`` (numpy's too; 0 for a seed or a count that may be none), or None
    with ``none_ok`` (None: "all" or "the default"); a float or a str ("8" from a command line or JSON) is refused."""
    if none_ok and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}{' or None' if none_ok else ''}, got {value!r}")
    return int(value)  # numpy's as Python's: json.dumps refuses numpy's


def finite_number(value, name: str, who: str) -> float:
    """``value`` as a float if it is a finite number (a numpy or one-element torch scalar too). A bool, a str, None,
    NaN and ±inf are refused: a NaN compares false with everything, so a threshold or a best-of-n pick would go
    wrong without an error."""
    boolean = isinstance(value, bool) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")  # np.True_ too
    x = None
    with contextlib.suppress(TypeError, ValueError, RuntimeError):  # RuntimeError: a torch tensor of over one element
        x = None if boolean or isinstance(value, (str, bytes)) else float(value)
    if x is None or not math.isfinite(x):
        raise ValueError(f"{who}: {name} must be a finite number, got {value!r}" + ("; pass a float, not a str (YAML "
                         "reads 1e-4 with no dot as a str: write 1.0e-4)" if isinstance(value, str) else ""))
    return x


def flag(value, name: str, who: str) -> bool:
    """``value`` as a bool if it is True or False (numpy's too); a str ("no" is truthy), 0, 1 or None is refused."""
    if type(value).__name__ not in ("bool", "bool_"):
        raise ValueError(f"{who}: {name} must be True or False, got {value!r}")
    return bool(value)


def keywords_taken(method, **extras) -> dict:
    """Those of ``extras`` that ``method`` takes by name (all with ``**kwargs``, none where it has no signature): an
    optional keyword goes only to a reward model's own ``score_solutions`` that takes it (docs/method.md)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return {}
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return extras if any(p.kind is p.VAR_KEYWORD for p in params) else {k: v for k, v in extras.items() if k in named}


def documented_fields(cls):
    """Class decorator, above ``@dataclass``: appends to the docstring a "Fields:" block, ``name (default): help``
    for each field the class itself defines (not its bases'), from ``field(metadata={"help": ...})``, which help()
    and pydoc never show. Lines fit 120 columns under help()'s 4-column margin."""
    lines = []
    for f in (f for f in dataclasses.fields(cls) if f.name in inspect.get_annotations(cls)):
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        name = f.name if default is dataclasses.MISSING else f"{f.name} ({default!r})"
        lines.append(textwrap.fill(f"{name}: {f.metadata.get('help', '')}", 116, subsequent_indent="    ",
                                   break_on_hyphens=False))
    cls.__doc__ = inspect.cleandoc(cls.__doc__ or "") + "\n\nFields:\n" + "\n".join(lines)
    return cls


def warn_of_unread_text(tokenizer, token_ids, where: str, what: str = "solution", names=None) -> None:
    """Text the tokenizer maps to its unknown token (a character-level base knows few characters: ’ × €) cannot be
    read: a score of it, or training on it, is a guess that looks like a verdict. ``token_ids``: one list per
    ``what`` (a reward model's solutions, its training rows; a policy's preference pairs, its prompts), named by
    ``names`` (e.g. a file's lines) when given, else by index."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unread := [i for i, ids in enumerate(token_ids) if unk is not None and unk in ids]:
        first = names[unread[0]] if names else f"{what} {unread[0]}"
        warn_user(f"{where}: {len(unread)} of {len(token_ids)} {what}s ({first} first) hold text the "
                  f"tokenizer maps to its unknown token {tokenizer.unk_token!r}: the model cannot read it; "
                  "normalise the text or use a base whose tokenizer covers it")
