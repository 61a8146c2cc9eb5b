from hypothesis import given, settings, strategies as st

import pytest

from stepdpo_lite.steps import DEFAULT_DELIMITER, char_step_ids, extract_steps, step_spans, token_step_ids

DELIMS = [DEFAULT_DELIMITER, "\n", "\n\n"]
# texts built from pieces that include the delimiters, blanks and unicode
pieces = st.sampled_from(["\n\nStep", "\n", "\n\n", " ", "Step 1: 2 + 3 = 5", "x", "é", "∑", "🙂", "Answer: 5", ""])
texts = st.one_of(st.text(max_size=60), st.lists(pieces, max_size=12).map("".join))


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from(DELIMS), st.one_of(st.none(), st.integers(1, 5)))
def test_spans_are_lossless_and_contiguous(text, delim, max_steps):
    spans = step_spans(text, delim, max_steps)
    if not text.strip():
        assert spans == []
        return
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a < b for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert "".join(extract_steps(text, delim, max_steps)) == text
    if max_steps is not None:
        assert len(spans) <= max_steps


@settings(max_examples=200, deadline=None)
@given(texts, st.sampled_from(DELIMS))
def test_delimiter_opens_its_step_and_no_step_is_blank(text, delim):
    steps = extract_steps(text, delim)
    for i, s in enumerate(steps[1:], 1):
        assert s.startswith(delim), (i, s)
    if steps:
        assert steps[0].strip(), "the first step carries content (blank lead-in is joined to the next step)"


@settings(max_examples=200, deadline=None)
@given(texts, st.sampled_from(DELIMS), st.integers(1, 4))
def test_max_steps_merges_tail_into_last_kept_step(text, delim, k):
    full, capped = extract_steps(text, delim), extract_steps(text, delim, max_steps=k)
    assert capped[:-1] == full[: len(capped) - 1] if capped else full == []
    if len(full) > k:
        assert capped[-1] == "".join(full[k - 1:])


def test_examples():
    t = "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36\n\nAnswer: 36"
    assert extract_steps(t) == ["Step 1: 7 + 5 = 12", "\n\nStep 2: 12 * 3 = 36\n\nAnswer: 36"]
    assert extract_steps("no delimiter at all") == ["no delimiter at all"]
    assert extract_steps("") == [] and extract_steps(" \n ") == []
    assert extract_steps("\n\nStep\n\nStep") == ["\n\nStep", "\n\nStep"]
    assert extract_steps("  \n\nStep 1") == ["  \n\nStep 1"]  # blank lead-in joins step 1
    assert extract_steps("a\nb\nc", "\n") == ["a", "\nb", "\nc"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="delimiter"):
        step_spans("abc", "")
    with pytest.raises(ValueError, match="max_steps"):
        step_spans("abc", max_steps=0)
    with pytest.raises(ValueError, match="str"):
        step_spans(None)


@pytest.mark.parametrize("kw, name", [(dict(delimiter=5), "delimiter"), (dict(delimiter=None), "delimiter"),
                                      (dict(max_steps=1.5), "max_steps"), (dict(max_steps=True), "max_steps"),
                                      (dict(max_steps="2"), "max_steps")])
def test_wrong_types_of_delimiter_and_max_steps_are_refused_by_name(kw, name):
    """No TypeError from deep inside, and max_steps=True is not taken for 1."""
    with pytest.raises(ValueError, match=f"step_spans: {name} must be"):
        extract_steps("a\n\nStep b\n\nStep c", **kw)


def test_numpy_ints_are_valid_max_steps():
    import numpy as np
    assert extract_steps("a\n\nStep b\n\nStep c", max_steps=np.int64(2)) == ["a", "\n\nStep b\n\nStep c"]


def test_char_step_ids_first_character_rule():
    spans = [(0, 5), (5, 10)]
    # a token straddling the boundary belongs to the step of its first character; zero-width -> -1
    assert char_step_ids(spans, [(0, 2), (3, 6), (6, 10), (0, 0), (10, 11)]) == [0, 0, 1, -1, -1]
    assert char_step_ids(spans, [(7, 9)], offset=5) == [0]


def test_token_step_ids_names_a_text_that_is_not_a_str(tiny_tokenizer):
    with pytest.raises(ValueError, match="step_spans: text must be a str, got NoneType"):  # was the tokenizer's own
        token_step_ids(None, tiny_tokenizer)


def test_token_step_ids_after_a_prompt_and_before_a_suffix_gives_theirs_no_step(tiny_tokenizer):
    """The trainer's two tokenizations (get_step_rewards: prompt + response; step_columns: prompt + completion + the
    EOS TRL appended) go through token_step_ids: the prompt's and the suffix's tokens are in no step (-1)."""
    prompt, text, eos = "Problem: 7 + 5?\n", "Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36", tiny_tokenizer.eos_token
    ids, step_ids = token_step_ids(text, tiny_tokenizer, prompt=prompt, suffix=eos)
    assert ids == tiny_tokenizer(prompt + text + eos, add_special_tokens=False)["input_ids"]
    n_prompt, n_eos = (len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (prompt, eos))
    assert step_ids[:n_prompt] == [-1] * n_prompt and step_ids[len(ids) - n_eos:] == [-1] * n_eos
    assert step_ids[n_prompt:len(ids) - n_eos] == token_step_ids(text, tiny_tokenizer)[1]  # as without them


@settings(max_examples=100, deadline=None)
@given(st.lists(pieces, min_size=1, max_size=10).map("".join))
def test_token_step_ids_with_fast_tokenizer(tiny_tokenizer, text):
    ids, step_ids = token_step_ids(text, tiny_tokenizer)
    assert len(ids) == len(step_ids)
    spans = step_spans(text)
    if not spans:
        return
    # step ids never decrease and every step that has characters gets at least one token
    assert step_ids == sorted(step_ids)
    enc = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for (a, _), sid in zip(enc["offset_mapping"], step_ids):
        sa, sb = spans[sid]
        assert sa <= a < sb


def test_a_blank_last_piece_joins_the_step_before_it_even_when_there_are_only_two():
    """A whitespace-only delimiter at the very end ("a\\n\\n" split on "\\n\\n") leaves a blank last piece: it is
    joined to the step before it, however few steps there are (steps.py: no step is blank)."""
    assert extract_steps("a\n\n", "\n\n") == ["a\n\n"]
    assert extract_steps("a\n", "\n") == ["a\n"]
    assert extract_steps("a\nb\n", "\n") == ["a", "\nb\n"]


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from([DEFAULT_DELIMITER, "\n", "\n\n"]), st.one_of(st.none(), st.integers(1, 5)))
def test_no_step_is_blank(text, delim, max_steps):
    """The module's promise for every step, not only the first."""
    assert all(s.strip() for s in extract_steps(text, delim, max_steps))


def test_char_step_ids_shifts_the_end_of_the_last_step_by_the_offset_too():
    """A 10-character response after a 5-character prompt: its last 5 characters are still in step 1, and only
    what lies past the response is in no step (the trainer passes offset=len(prompt))."""
    spans = [(0, 5), (5, 10)]
    assert char_step_ids(spans, [(0, 5), (5, 7), (12, 14), (14, 15), (15, 16)], offset=5) == [-1, 0, 1, 1, -1]


def test_token_step_ids_refuses_a_slow_tokenizer_by_name():
    """A slow tokenizer has no offset mapping: a ValueError that says so, not transformers' NotImplementedError."""
    class SlowTokenizer:
        is_fast = False

        def __call__(self, text, **kwargs):
            raise NotImplementedError("return_offset_mapping is not available when using Python tokenizers")

    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        token_step_ids("Step 1: 2 + 3 = 5", SlowTokenizer())


def test_token_step_ids_adds_no_special_tokens_unless_asked():
    """The default is the response's own tokens; add_special_tokens=True puts the tokenizer's leading special token
    first, in no step (-1)."""
    from tokenizers.processors import TemplateProcessing
    from stepdpo_lite.tutorial import tiny_models
    tok = tiny_models.build_tokenizer()  # a fresh one: the session's tiny_tokenizer is shared
    tok._tokenizer.post_processor = TemplateProcessing(single=f"{tok.eos_token} $A",
                                                       special_tokens=[(tok.eos_token, tok.eos_token_id)])
    text = "Step 1: 2 + 3 = 5\n\nStep 2: 5"
    ids, step_ids = token_step_ids(text, tok)
    assert ids == tok(text, add_special_tokens=False)["input_ids"] and step_ids[0] == 0 and -1 not in step_ids
    ids, step_ids = token_step_ids(text, tok, add_special_tokens=True)
    assert ids[0] == tok.eos_token_id and step_ids[0] == -1 and step_ids[1:] == sorted(step_ids[1:])


def test_delimiter_matches_do_not_overlap():
    """A delimiter found opens a step and is searched for again after its end (as str.split does): "---" holds
    one "--", so "a---b" split on "--" is two steps, not a third step "-"."""
    assert extract_steps("a---b", "--") == ["a", "---b"]
