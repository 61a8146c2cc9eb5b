"""Splitting a response into reasoning steps, losslessly.

A delimiter (default ``"\\n\\nStep"``) opens the step it belongs to, so the spans of the steps cover the text
exactly: ``"".join(text[a:b] for a, b in step_spans(text)) == text``. Text before the first delimiter opens step 1.
A blank piece (blank lead-in, or a whitespace-only delimiter followed by nothing) is joined to the next step (to the
previous one at the end), so no step is blank. With ``max_steps`` the tail beyond the last kept step is merged into
it, never dropped. Token-level step ids come from a fast tokenizer's offset mapping: a token belongs to the step
holding its first character.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from .checks import positive_int

DEFAULT_DELIMITER = "\n\nStep"


def step_spans(text: str, delimiter: str = DEFAULT_DELIMITER, max_steps: int | None = None) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the steps of ``text``; an all-blank text has none. Raises ValueError for
    a ``text`` that is not a str, an empty ``delimiter`` or a ``max_steps`` that is not an int >= 1 or None."""
    if not isinstance(text, str):
        raise ValueError(f"step_spans: text must be a str, got {type(text).__name__}")
    if not isinstance(delimiter, str) or not delimiter:
        raise ValueError(f"step_spans: delimiter must be a non-empty string, got {delimiter!r:.40}")
    positive_int(max_steps, "max_steps", "step_spans", none_ok=True)
    if not text.strip():
        return []

    starts, pos = [], text.find(delimiter)
    while pos != -1:
        starts.append(pos)
        pos = text.find(delimiter, pos + len(delimiter))
    if not starts or starts[0] > 0:
        starts.insert(0, 0)  # the leading text opens step 1
    spans = list(zip(starts, starts[1:] + [len(text)]))
    # A blank piece (blank lead-in, or a delimiter that is only whitespace, e.g. "\n\n" with "\n")
    # is joined to the next step, or to the previous one at the end, so no step is empty.
    merged = []
    for a, b in spans:
        if merged and not text[merged[-1][0]:merged[-1][1]].strip():
            a = merged.pop()[0]
        merged.append((a, b))
    if len(merged) > 1 and not text[merged[-1][0]:merged[-1][1]].strip():
        merged[-2:] = [(merged[-2][0], merged[-1][1])]
    spans = merged
    if max_steps is not None and len(spans) > max_steps:
        spans = spans[: max_steps - 1] + [(spans[max_steps - 1][0], len(text))]
    return spans


def extract_steps(text: str, delimiter: str = DEFAULT_DELIMITER, max_steps: int | None = None) -> list[str]:
    """The steps of ``text`` as strings; ``"".join(extract_steps(text)) == text`` unless all blank.

    >>> extract_steps("Step 1: 2 + 3 = 5\\n\\nStep 2: 5 * 4 = 20\\n\\nThe answer is 20")  # the answer line ends step 2
    ['Step 1: 2 + 3 = 5', '\\n\\nStep 2: 5 * 4 = 20\\n\\nThe answer is 20']
    """
    return [text[a:b] for a, b in step_spans(text, delimiter, max_steps)]


def char_step_ids(spans: Sequence[tuple[int, int]], char_offsets: Sequence[tuple[int, int]],
                  offset: int = 0) -> list[int]:
    """Step index (0-based) of each token given its ``(start, end)`` character offsets.

    ``offset`` shifts the spans (e.g. by the prompt's length when the response follows it).
    Tokens outside every span, and zero-width special tokens, get -1.
    """
    starts = [a + offset for a, _ in spans]
    end = spans[-1][1] + offset if spans else offset
    ids = []
    for a, b in char_offsets:
        inside = bool(starts) and b > a and starts[0] <= a < end
        ids.append(bisect_right(starts, a) - 1 if inside else -1)
    return ids


def token_step_ids(text: str, tokenizer, delimiter: str = DEFAULT_DELIMITER, max_steps: int | None = None,
                   add_special_tokens: bool = False, prompt: str = "", suffix: str = "") -> tuple[list[int], list[int]]:
    """Tokenize ``prompt + text + suffix`` with a fast tokenizer; return ``(input_ids, step_ids)`` with one step id
    per token: its step of ``text``, -1 for a token that starts in ``prompt`` or ``suffix`` (e.g. an EOS appended).
    Raises ValueError for a slow tokenizer, and as ``step_spans`` does."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("token_step_ids needs a fast tokenizer (offset mappings); got a slow one")
    spans = step_spans(text, delimiter, max_steps)  # first: it refuses a text that is not a str, by name
    enc = tokenizer(prompt + text + suffix, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return enc["input_ids"], char_step_ids(spans, enc["offset_mapping"], offset=len(prompt))
