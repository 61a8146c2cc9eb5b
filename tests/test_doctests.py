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
