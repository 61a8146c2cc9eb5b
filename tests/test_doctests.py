"""The ``>>>`` examples in the library's docstrings run as written: an example that drifts from the code fails here."""

import doctest
import importlib

import pytest

MODULES = ["stepdpo_lite.steps", "stepdpo_lite.data"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no >>> example"
    assert result.failed == 0


def test_no_docstring_breaks_an_escape_sequence_over_two_lines_in_help():
    """``"\\n"`` written in a plain docstring is a real line break: help() showed GSM8K's delimiter as ``"`` over two
    lines, in the one place that told a user which delimiter to pass."""
    import inspect
    import pkgutil

    import stepdpo_lite
    broken = []
    for info in pkgutil.walk_packages(stepdpo_lite.__path__, "stepdpo_lite."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name:
                continue
            members = [obj, *vars(obj).values()] if inspect.isclass(obj) else [obj]
            broken += [f"{info.name}.{name}" for m in members
                       if any(q + "\n" + q in (getattr(m, "__doc__", None) or "") for q in ("'", '"'))]
    assert not broken, f"docstrings with a bare line break between quotes (write \\\\n or use r\"\"\"): {broken}"
