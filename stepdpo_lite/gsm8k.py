"""GSM8K for the GPU profiles: prompts for an instruct model, final-answer extraction and checking.

The toy world has a checker for every step; GSM8K (Cobbe et al. 2021, arXiv:2110.14168) has only the
final answer. Step labels there come from Monte-Carlo completions (``labelling.mc_step_labels``,
Math-Shepherd) with ``is_correct`` below as the answer check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The instruction makes an instruct model write steps the default delimiter "\n\nStep" can split.
INSTRUCTION = ("Solve the math problem step by step. Start each step on a new paragraph with 'Step k:' "
               "(Step 1:, Step 2:, ...) and end with a last paragraph 'Answer: <number>'.")

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def format_prompt(question: str, tokenizer) -> str:
    """The chat-formatted prompt for ``question`` (plain text when the tokenizer has no chat template)."""
    if not question or not question.strip():
        raise ValueError("format_prompt: the question is empty")
    messages = [{"role": "user", "content": f"{INSTRUCTION}\n\n{question.strip()}"}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{INSTRUCTION}\n\nProblem: {question.strip()}\n"


def _to_float(text: str) -> float | None:
    try:
        return float(text.replace(",", "").rstrip("."))
    except ValueError:
        return None


def extract_answer(text: str) -> float | None:
    """The number after the last ``Answer:`` (or ``####``), else the last number in the text; None if none."""
    for marker in ("Answer:", "####"):
        if marker in text:
            found = _NUMBER.findall(text.rsplit(marker, 1)[1])
            if found:
                return _to_float(found[0])
    found = _NUMBER.findall(text)
    return _to_float(found[-1]) if found else None


def is_correct(solution: str, answer: str | float) -> bool:
    """Whether the solution's final answer equals the reference (GSM8K answers are integers)."""
    got, want = extract_answer(solution), _to_float(str(answer))
    return got is not None and want is not None and abs(got - want) < 1e-6


@dataclass(frozen=True)
class GSM8KProblem:
    """A GSM8K problem shaped like a toy ``Problem``: ``prompt`` (chat-formatted), ``answer``."""

    question: str
    answer: str
    prompt: str


def load_problems(tokenizer, n_train: int, n_eval: int, seed: int = 0, name: str = "openai/gsm8k") -> dict:
    """``{"train", "validation", "test"}`` lists of problems from the Hub's GSM8K (validation = a held-out
    slice of its train split, disjoint from the training problems)."""
    from datasets import load_dataset

    train = load_dataset(name, "main", split="train").shuffle(seed=seed)
    test = load_dataset(name, "main", split="test").shuffle(seed=seed)
    if n_train + n_eval > len(train) or n_eval > len(test):
        raise ValueError(f"load_problems: GSM8K has {len(train)} train / {len(test)} test problems; asked for "
                         f"{n_train} + {n_eval} / {n_eval}")

    def problems(rows):
        return [GSM8KProblem(r["question"], r["answer"].rsplit("####", 1)[1].strip(),
                             format_prompt(r["question"], tokenizer)) for r in rows]

    return {"train": problems(train.select(range(n_train))),
            "validation": problems(train.select(range(n_train, n_train + n_eval))),
            "test": problems(test.select(range(n_eval)))}


def mc_verdicts(policy, tokenizer, problems, solutions, n_rollouts: int = 8, seed: int = 0, **kw) -> list:
    """Per-problem lists of ``toyworld.Verdict`` whose step labels are Monte-Carlo hard estimates
    (Math-Shepherd, Wang et al. 2024): step k is good if a completion after it reaches the answer."""
    from . import labelling, toyworld
    from .steps import extract_steps

    flat = [(i, s) for i, sols in enumerate(solutions) for s in sols if s.strip()]
    steps = [extract_steps(s) for _, s in flat]
    mc = labelling.mc_step_labels(policy, tokenizer, [problems[i].prompt for i, _ in flat], steps,
                                  lambda j, text: is_correct(text, problems[flat[j][0]].answer),
                                  n=n_rollouts, seed=seed, **kw)
    out = [[] for _ in problems]
    for (i, s), st, labels in zip(flat, steps, mc["labels"]):
        first = labels.index(False) if False in labels else -1
        out[i].append(toyworld.Verdict(list(labels), first, is_correct(s, problems[i].answer), steps=st))
    return out


def evaluate_policy(model, tokenizer, problems, n: int = 1, temperature: float = 0.0, **kw) -> dict:
    """Final-answer accuracy of a policy on GSM8K problems (the toy world's ``evaluate_policy`` for GSM8K)."""
    from .toyworld import sample_solutions

    sols = sample_solutions(model, tokenizer, [p.prompt for p in problems], n=n, temperature=temperature, **kw)
    right = [is_correct(s, p.answer) for p, ss in zip(problems, sols) for s in ss]
    return {"accuracy": sum(right) / len(right), "n_solutions": len(right)}
