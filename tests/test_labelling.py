"""labelling.verdict_summary: what notebook 01 reports of its sampled solutions."""
import pytest

from stepdpo_lite.tutorial import toyworld
from stepdpo_lite.tutorial.labelling import format_verdict_summary, verdict_summary


def test_verdict_summary_counts_clean_lucky_and_first_mistakes():
    clean = toyworld.Verdict([True, True], -1, True, [None, None])
    lucky = toyworld.Verdict([False, False], 0, True, ["copy", "propagated"])
    wrong = toyworld.Verdict([True, False], 1, False, [None, "arithmetic"])
    unkinded = toyworld.Verdict([False], 0, False)  # Monte-Carlo labels: no error kinds
    summary = verdict_summary([[clean, lucky], [wrong, wrong, unkinded]])
    assert summary == {"solutions": 5, "accuracy": 0.4, "no_step_wrong": 1, "right_through_a_wrong_step": 1,
                       "first_mistakes": {"arithmetic": 2, "copy": 1}}
    assert format_verdict_summary(summary).splitlines() == [
        "5 sampled solutions, final answer right in 40.0%",
        "no step wrong in 1; right answer through a wrong step in 1",
        "what the first mistake was: {'arithmetic': 2, 'copy': 1}"]
    for bad in ([], [[]], [clean], [["x"]]):
        with pytest.raises(ValueError, match="verdict_summary"):
            verdict_summary(bad)
