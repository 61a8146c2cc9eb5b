"""The argument checks every module shares (``stepdpo_lite.checks``): refuse, never cast."""

import math
from types import MappingProxyType

import numpy as np
import pytest
import torch

from stepdpo_lite.checks import AGGREGATION_STRATEGIES, finite_number, keywords_taken, list_of, positive_int


def test_positive_int_takes_ints_and_refuses_what_a_cast_would_bend():
    assert positive_int(3, "n", "f") == 3 and positive_int(np.int64(2), "n", "f") == 2
    assert positive_int(None, "n", "f", none_ok=True) is None  # where None means "all" or "the default"
    with pytest.raises(ValueError, match="f: n must be an int >= 1 or None, got 0"):
        positive_int(0, "n", "f", none_ok=True)
    for bad in (0, -1, 2.5, 2.0, "8", True, None):  # int(2.5) is 2; True is an int to Python
        with pytest.raises(ValueError, match=f"f: n must be an int >= 1, got {bad!r}"):
            positive_int(bad, "n", "f")


def test_finite_number_takes_scalars_and_refuses_nan_inf_bools_and_text():
    assert [finite_number(v, "x", "f") for v in (1, 0.5, np.float32(0.25), torch.tensor(-2.0))] == [1, 0.5, 0.25, -2]
    for bad in (math.nan, math.inf, -math.inf, True, "1", None, [1.0], torch.tensor([1.0, 2.0])):
        with pytest.raises(ValueError, match="f: x must be a finite number, got "):
            finite_number(bad, "x", "f")
    with pytest.raises(ValueError, match=r"got '1e-4'; pass a float, not a str \(YAML reads 1e-4 with no dot"):
        finite_number("1e-4", "x", "f")


def test_finite_number_refuses_numpy_and_torch_bools():
    """``float(np.True_)`` and ``float(torch.tensor(True))`` are 1.0: a mask's element (``(scores > 0.5)[0]``) passed
    as a threshold or temperature was taken for 1.0, where a Python bool is refused."""
    for bad in (np.True_, np.bool_(False), torch.tensor(True), torch.tensor([False])):
        with pytest.raises(ValueError, match="f: x must be a finite number, got "):
            finite_number(bad, "x", "f")
    assert finite_number(np.array(0.5), "x", "f") == 0.5 and finite_number(torch.tensor([3]), "x", "f") == 3.0


def test_list_of_refuses_one_str_and_non_sequences():
    assert list_of(("a", "b"), "steps", "step strings") == ["a", "b"]
    with pytest.raises(ValueError, match="steps: expected a list of step strings, got one str .*wrap it in a list"):
        list_of("Step 1: 2 + 2 = 4", "steps", "step strings")
    # 0-d: __iter__, but not iterable; a mapping that is no dict gave its keys (a prompt_texts of its keys' texts)
    for bad in (None, 3, {"a": 1}, MappingProxyType({"a": 1}), b"ab", np.array(1.0), torch.tensor(1.0)):
        with pytest.raises(ValueError, match=f"steps: expected a list of step strings, got {type(bad).__name__}"):
            list_of(bad, "steps", "step strings")


def test_labelling_names_a_solution_that_is_not_a_str():
    from stepdpo_lite.tutorial import labelling, toyworld

    problems = toyworld.make_problems(2, seed=0)
    solutions = [[problems[0].gold_solution], [problems[1].gold_solution, None]]  # a failed sample
    with pytest.raises(ValueError, match="stepwise_rows: problem 1, solution 1: must be a str .*got NoneType"):
        labelling.stepwise_rows(problems, solutions)


def test_a_core_warning_reached_through_a_tutorial_function_names_the_users_line(tiny_model, tiny_tokenizer):
    """warn_user walked past the core modules only: a notebook's call of a tutorial function that reaches a core
    warning (policy_eval.sample_solutions -> generation.sample_solutions, solutions cut at max_new_tokens) named
    tasks.py's line, not the cell's."""
    import warnings

    from stepdpo_lite.tutorial import policy_eval, toyworld

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy_eval.sample_solutions(tiny_model, tiny_tokenizer, toyworld.make_problems(2, seed=0), n=1,
                                     temperature=0.0, max_new_tokens=2, progress=False)
    cut = [w for w in caught if "stopped at max_new_tokens=2" in str(w.message)]
    assert len(cut) == 1 and cut[0].filename == __file__, [(w.filename, w.lineno, w.message) for w in caught]


def test_a_tutorial_warning_reached_through_another_tutorial_function_names_the_users_line():
    """The tutorial's own warnings counted frames by hand (stacklevel=2 in aggregate): through selection_scores
    they named bestofn.py's line."""
    import warnings

    from stepdpo_lite.tutorial import bestofn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bestofn.selection_scores(prm_step_rewards=[[[0.5], []]])  # candidate 1 has no step rewards
    said = [w for w in caught if "have no step rewards" in str(w.message)]
    assert said and {w.filename for w in said} == {__file__}, [(w.filename, w.lineno) for w in caught]


def test_warn_of_unread_text_counts_the_unread_and_names_the_first():
    from types import SimpleNamespace

    from stepdpo_lite.checks import warn_of_unread_text
    tok = SimpleNamespace(unk_token_id=0, unk_token="<unk>")
    with pytest.warns(UserWarning, match=r"^w: 2 of 4 solutions \(solution 1 first\) hold text the tokenizer maps"):
        warn_of_unread_text(tok, [[5], [5, 0], [6], [0]], "w")
    with pytest.warns(UserWarning, match=r"^w: 2 of 4 rows \(line 2 first\) hold text"):
        warn_of_unread_text(tok, [[5], [5, 0], [6], [0]], "w", "row", names=["line 1", "line 2", "line 3", "line 4"])


def _help_block(cls) -> str:
    """The "Fields:" block of help(cls) as help() prints it, margins dropped and lines joined."""
    import pydoc
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    lines = text.split("Fields:\n", 1)[1].splitlines()
    lines = [line.removeprefix(" |  ") for line in lines]
    block = lines[:next((i for i, line in enumerate(lines) if not line.strip()), len(lines))]
    assert all(len(" |  " + line) <= 120 for line in block), max(block, key=len)
    return " ".join(" ".join(block).split())


def test_documented_fields_shows_each_own_fields_help_and_default():
    """help() and pydoc never show ``field(metadata={"help": ...})``; documented_fields puts each help the class
    itself defines into its docstring, its base's left out (StepwiseDPOConfig's base has hundreds)."""
    import dataclasses

    from stepdpo_lite.checks import documented_fields

    @dataclasses.dataclass
    class Base:
        inherited: int = dataclasses.field(default=1, metadata={"help": "Not shown below."})

    @documented_fields
    @dataclasses.dataclass
    class Own(Base):
        """One line."""
        needed: str = dataclasses.field(default="x", metadata={"help": "A str. " + "Long help. " * 20})
        table: dict = dataclasses.field(default_factory=dict, metadata={"help": "Made fresh per instance."})

    assert Own.__doc__.startswith("One line.\n\nFields:\nneeded ('x'): A str. Long help.")
    assert _help_block(Own) == "needed ('x'): A str. " + "Long help. " * 19 + "Long help. table ({}): Made fresh " \
        "per instance."
    assert "inherited" not in Own.__doc__ and Own(inherited=2, needed="y").table == {}


def _config_classes():
    from stepdpo_lite.reward_training import RewardTrainingConfig
    from stepdpo_lite.rewards import RewardModelConfig
    from stepdpo_lite.trainer import StepwiseDPOConfig
    from stepdpo_lite.tutorial.onpolicy import RoundSettings, TrainSettings
    from stepdpo_lite.tutorial.profiles import Profile
    return [StepwiseDPOConfig, RewardModelConfig, RewardTrainingConfig, Profile, TrainSettings, RoundSettings]


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda c: c.__name__)
def test_help_of_each_config_class_names_every_own_field_with_its_help(cls):
    """A user reads these classes in help(): each field's help was in ``field(metadata=...)`` (which pydoc never
    shows) or in a source comment, and StepwiseDPOConfig's "plus the stepwise ones below" had nothing below. Every
    field the class itself defines has help, and help() shows it with the default; a field added without help is
    refused here."""
    import dataclasses
    import inspect

    own = [f for f in dataclasses.fields(cls) if f.name in inspect.get_annotations(cls)]
    assert own and all(f.metadata.get("help") for f in own), [f.name for f in own if not f.metadata.get("help")]
    block = _help_block(cls)
    for f in own:
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        name = f.name if default is dataclasses.MISSING else f"{f.name} ({default!r})"
        assert f"{name}: {' '.join(f.metadata['help'].split())}" in block, f.name
    if cls.__name__ == "StepwiseDPOConfig":  # its own fields only, not DPOConfig's
        assert "step_pairing ('weighted'): " in block and "learning_rate" not in block


def test_keywords_taken_passes_a_keyword_only_where_the_method_takes_it():
    """Shared by prm_pairs.label_samples (batch_size=, progress=) and the trainer (side=, progress=): the trainer read
    the name off the signature and gave nothing to a score_solutions taking **kwargs."""
    def documented(prompts, step_lists): ...
    def named(prompts, step_lists, batch_size=None, *, progress=False): ...
    def open_ended(prompts, step_lists, **kw): ...
    assert keywords_taken(documented, batch_size=8, progress=True) == {}
    assert keywords_taken(named, batch_size=8, progress=True, warn_layout=False) == {"batch_size": 8, "progress": True}
    assert keywords_taken(open_ended, warn_layout=False) == {"warn_layout": False}
    assert keywords_taken(max, warn_layout=False) == {}  # no signature to read: the documented arguments only


def test_the_aggregation_names_the_configs_check_are_the_ones_losses_computes():
    """checks holds the names torch-free (RewardModelConfig checks them when set); each must be one that
    losses.aggregate_rewards computes, by a branch of its own (a name without one fell into "last" silently)."""
    from stepdpo_lite.losses import aggregate_rewards
    r = torch.tensor([[1.0, -2.0, 0.5]])
    by_hand = {"weighted_sum": -0.5, "mean": -0.5 / 3, "min": -2.0, "max": 1.0, "last": 0.5,
               "product": sum(math.log(1 / (1 + math.exp(-x))) for x in (1.0, -2.0, 0.5))}  # Σ log σ(r_k)
    assert sorted(by_hand) == sorted(AGGREGATION_STRATEGIES)
    for strategy, want in by_hand.items():
        assert aggregate_rewards(r, strategy).item() == pytest.approx(want, abs=1e-6), strategy
