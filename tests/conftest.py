import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The toy world's character-level fast tokenizer (holds the Yes/No and tag tokens)."""
    from stepdpo_lite.tutorial import toyworld
    return toyworld.build_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    """A randomly initialised ~0.9M-parameter Llama shaped for the toy world (fresh per test)."""
    from stepdpo_lite.tutorial import toyworld
    return toyworld.build_tiny_model(tiny_tokenizer, seed=0)


@pytest.fixture(scope="session")
def tiny_base_path():
    from stepdpo_lite.tutorial import toyworld
    return str(toyworld.TINY_BASE_DIR)
