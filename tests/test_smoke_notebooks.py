"""Every notebook executes, in order, on the smoke profile: the GPU profiles' code path (GSM8K, chat prompts, 4-bit
nf4 + LoRA, Monte-Carlo labels) at toy size on a CPU, into one runs folder as in `make tutorial`. Every prompt the
run feeds a model is recorded and checked."""
import json

import pytest

from stepdpo_lite import generation
from stepdpo_lite.tutorial import gsm8k, profiles
from stepdpo_lite.tutorial import notebooks as tutorial

# The smoke profile at its own sizes (16 train / 8 + 8 held-out GSM8K problems of the shipped slice), fewer steps.
SMOKE = {
    "N_MC_ROLLOUTS": 2, "N_TEST_PROBLEMS": 8, "N_CANDIDATES": 4, "MAX_TRAIN_STEPS": 4, "N_SAMPLED": 1,
    "N_BEST_OF_N_PROBLEMS": 4, "N_RESAMPLES": 10, "N_HEATMAP_SOLUTIONS": 8, "N_PAIRS": 8,
    "N_BEFORE_AFTER_PROBLEMS": 4, "N_EXPLORER_PROBLEMS": 2, "ONPOLICY_PROBLEMS": 8, "ONPOLICY_STEPS": 2,
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke-runs")
    return {"root": root, "run": root / "smoke", "failed": [], "prompts": root / "prompts.jsonl"}


@pytest.mark.notebook
@pytest.mark.parametrize("name", tutorial.NOTEBOOKS)
def test_notebook_executes_on_the_smoke_profile(smoke_run, run_notebook, name, monkeypatch):
    """The GPU profiles' code path end to end; the kernel inherits $STEPDPO_RECORD_PROMPTS, so every prompt
    that reaches ``generation.sample_solutions`` (sampling, rollouts, best-of-N, evaluation) is recorded."""
    monkeypatch.setenv(generation.RECORD_PROMPTS_ENV, str(smoke_run["prompts"]))
    out = run_notebook(smoke_run, name, "smoke", SMOKE)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    stem = name.split("_")[0]
    if stem not in ("02", "03"):
        assert sorted((smoke_run["run"] / "figures").glob(f"{stem}_*.png")), f"{name} saved no figure"
    if stem == "01":  # the Monte-Carlo plan was printed before the rollouts started, and the run is timed
        text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
        assert "Monte-Carlo labelling (2 rollouts" in text and "tokens/s" in text and "step labels (Monte-Carlo" in text
    if stem == "04":
        text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
        assert "Stepwise DPO training:" in text and "DPO training:" in text
    if stem == "06":  # 04's rounds measured the 4-bit policies: 06 loads them unquantized and measures them again
        text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
        assert "greedy accuracy" in text and "(from 04)" not in text


@pytest.mark.notebook
def test_smoke_prompts_are_chat_formatted_and_never_hold_the_answer(smoke_run):
    """Issue #14: a GSM8K problem's repr (gold answer included) once reached the model as its prompt."""
    from transformers import AutoTokenizer

    if smoke_run["failed"]:
        pytest.skip("the smoke notebooks did not run")
    if not smoke_run["prompts"].exists():  # the notebooks ran and recorded no prompt: the check would not be made
        pytest.fail(f"the smoke notebooks recorded no prompts in {smoke_run['prompts']}")
    recorded = [json.loads(line) for line in smoke_run["prompts"].read_text().splitlines()]
    profile = profiles.get_profile("smoke")
    tokenizer = AutoTokenizer.from_pretrained(profile.model_name)
    problems = gsm8k.load_problems(tokenizer, profile.n_train_problems, profile.n_eval_problems,
                                   name=profile.dataset)
    by_prompt = {p.prompt: p for ps in problems.values() for p in ps}
    rollouts = 0
    for text in recorded:
        assert isinstance(text, str) and text.startswith("<|im_start|>user\n"), text[:80]
        base = next((pr for pr in by_prompt if text.startswith(pr)), None)
        assert base is not None, f"not one of the smoke problems' chat prompts: {text[:200]!r}"
        assert base.endswith("<|im_end|>\n<|im_start|>assistant\n") and gsm8k.INSTRUCTION in base
        p = by_prompt[base]
        assert "GSM8KProblem" not in text and "answer=" not in text and "####" not in text
        assert p.solution not in text and f"Answer: {p.answer}" not in base
        rollouts += text != base  # a Monte-Carlo rollout's prompt: the problem's prompt, then solution steps
    assert rollouts and len(recorded) > rollouts  # sampling, evaluation and best-of-N prompts, and rollouts
