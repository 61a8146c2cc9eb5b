import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `make test`'s workers share the cores: torch threads split between
    # them (the notebooks' kernels and scripts inherit it), not each worker taking every core and all of them waiting
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The toy world's character-level fast tokenizer (holds the Yes/No and tag tokens)."""
    from stepdpo_lite.tutorial import tiny_models
    return tiny_models.build_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    """A randomly initialised ~0.9M-parameter Llama shaped for the toy world (fresh per test)."""
    from stepdpo_lite.tutorial import tiny_models
    return tiny_models.build_tiny_model(tiny_tokenizer, seed=0)


@pytest.fixture()
def right_padded_tokenizer(tiny_tokenizer):
    """A copy of ``tiny_tokenizer`` that pads on the right, as TRL's preference collators expect (the session's
    tokenizer is shared, and sampling sets its side to the left)."""
    tok = copy.deepcopy(tiny_tokenizer)
    tok.padding_side = "right"
    return tok


@pytest.fixture()
def policy_and_reference(tiny_model):
    """``(policy, ref)``: ``tiny_model`` moved a little off ``ref``, a frozen copy of it as it was (so that the
    log-ratios of a pair are not all zero)."""
    import torch

    ref = copy.deepcopy(tiny_model).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return tiny_model, ref


@pytest.fixture(scope="session")
def tiny_base_path():
    from stepdpo_lite.tutorial import tiny_models
    return str(tiny_models.TINY_BASE_DIR)


@pytest.fixture(autouse=True)
def transformers_verbosity():
    """Each test leaves transformers' verbosity as it found it. The benchmarks' main() (run in-process by
    test_benchmarks) sets it to errors only, and in one process (`make test TEST_WORKERS=0`) every later Trainer
    then took disable_tqdm's default from it: no progress bar, each log printed as a dict."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    yield
    hf_logging.set_verbosity(level)


@pytest.fixture()
def transformers_warnings():
    """The messages the transformers logger warns during the test (its own handler writes past pytest's capture),
    at its default level whatever an earlier test set."""
    import logging
    logged, library = [], logging.getLogger("transformers")
    handler, level = logging.Handler(logging.WARNING), library.level
    handler.emit = lambda record: logged.append(record.getMessage())
    library.addHandler(handler)
    library.setLevel(logging.WARNING)
    yield logged
    library.removeHandler(handler)
    library.setLevel(level)


@pytest.fixture(scope="session")
def run_notebook():
    """``run_notebook(run, name, profile, sizes)``: executes notebook ``name`` into ``run`` ({"root", "run",
    "failed"}), whose notebooks share one runs folder as in `make tutorial`; once one fails, the later ones fail at
    once, naming it. Returns the executed notebook's path."""
    from stepdpo_lite.tutorial import notebooks as tutorial

    def execute(run, name, profile, sizes):
        if run["failed"]:
            pytest.fail(f"{name} not run: {run['failed'][0]} failed before it")
        path = tutorial.NOTEBOOK_DIR / name
        assert path.exists(), f"{path} is missing"
        out = run["run"] / "executed" / name
        params = {"PROFILE": profile, "RUNS_DIR": str(run["root"]), "RUN_DIR": str(run["run"]),
                  "FIGURES_DIR": str(run["run"] / "figures"), **sizes}
        try:
            tutorial.execute_notebook(path, params, out)
        except Exception:
            run["failed"].append(name)
            raise
        return out
    return execute


def pytest_collection_modifyitems(items):
    """The two notebook runs first. Under `make test`'s workers each is one long chain (its notebooks in order, then
    the tests that read its run), so a run that starts late sets the wall time; the short files fill in around them."""
    first = ("test_notebooks.py", "test_smoke_notebooks.py")
    items.sort(key=lambda item: item.path.name not in first)  # stable: each file's own order is kept
