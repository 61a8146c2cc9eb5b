"""Combining reward models: ``CombinedRewardModel`` (weighted PRM + ORM), ``EnsembleRewardModel`` (weighted sum
of several), ``load_reward_model`` (whichever one a folder holds) and ``shaped_reward``.

The verifiers they combine are in ``rewards.py``; this module imports it, never the other way round.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

from .rewards import OutcomeRewardModel, ProcessRewardModel
from .steps import extract_steps


def _check_weights(weights: Sequence[float], what: str) -> list[float]:
    weights = [float(w) for w in weights]
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"{what}: weights must be finite numbers, got {weights}")
    return weights


class CombinedRewardModel:
    """``process_weight * aggregated PRM reward + outcome_weight * ORM reward`` (either part may be None)."""

    config_file = "combined_reward_config.json"

    def __init__(self, process=None, outcome=None, process_weight: float = 0.7, outcome_weight: float = 0.3,
                 device: str | None = None, max_steps: int | None = None):
        if isinstance(process, (str, os.PathLike)):
            process = ProcessRewardModel.load(process, device=device)
        if isinstance(outcome, (str, os.PathLike)):
            outcome = OutcomeRewardModel.load(outcome, device=device)
        if process is None and outcome is None:
            raise ValueError("CombinedRewardModel: give a process reward model, an outcome reward model or both")
        self.process_reward_model, self.outcome_reward_model = process, outcome
        self.process_weight, self.outcome_weight = _check_weights([process_weight, outcome_weight],
                                                                  "CombinedRewardModel")
        self.max_steps = max_steps

    @property
    def step_delimiter(self) -> str:
        return (self.process_reward_model or self.outcome_reward_model).config.step_delimiter

    def extract_and_aggregate_steps(self, text: str) -> tuple[list[str], list[float], float]:
        steps = extract_steps(text, self.step_delimiter, self.max_steps)
        if self.process_reward_model is None:
            return steps, [0.0] * len(steps), 0.0
        rewards = self.process_reward_model.get_rewards_for_steps(steps)
        return steps, rewards, self.process_reward_model.aggregate(rewards)

    def get_rewards_for_steps(self, steps: Sequence[str], problem: str | None = None) -> list[float]:
        if self.process_reward_model is None:
            raise ValueError("CombinedRewardModel: no process reward model, so no step rewards")
        return self.process_reward_model.get_rewards_for_steps(steps, problem)

    def score_solutions(self, prompts: Sequence[str], solutions: Sequence[str], batch_size: int | None = None,
                        progress: bool = False) -> list[float]:
        """One combined reward per solution, batched."""
        total = [0.0] * len(prompts)
        if self.process_reward_model is not None:
            steps = [extract_steps(s, self.step_delimiter, self.max_steps) if isinstance(s, str) else s
                     for s in solutions]
            process = self.process_reward_model.solution_rewards(prompts, steps, batch_size, progress)
            total = [t + self.process_weight * p for t, p in zip(total, process)]
        if self.outcome_reward_model is not None:
            outcome = self.outcome_reward_model.score_solutions(prompts, solutions, batch_size, progress)
            total = [t + self.outcome_weight * o for t, o in zip(total, outcome)]
        return total

    solution_rewards = score_solutions

    def get_reward_for_text(self, text: str) -> float:
        return self.score_solutions([""], [text])[0]

    def get_reward_for_problem_solution(self, problem: str, solution: str) -> float:
        model = self.process_reward_model or self.outcome_reward_model
        return self.score_solutions([model._prompt_for(problem)], [solution])[0]

    def get_rewards_for_batch(self, texts: Sequence[str]) -> list[float]:
        return self.score_solutions([""] * len(texts), list(texts))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.process_reward_model is not None:
            self.process_reward_model.save(path / "process_reward_model")
        if self.outcome_reward_model is not None:
            self.outcome_reward_model.save(path / "outcome_reward_model")
        config = {"process_weight": self.process_weight, "outcome_weight": self.outcome_weight,
                  "step_delimiter": self.step_delimiter, "max_steps": self.max_steps}
        (path / self.config_file).write_text(json.dumps(config, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "CombinedRewardModel":
        path = Path(path)
        config = json.loads((path / cls.config_file).read_text())
        sub = {name: path / name if (path / name).exists() else None
               for name in ("process_reward_model", "outcome_reward_model")}
        return cls(sub["process_reward_model"], sub["outcome_reward_model"], config["process_weight"],
                   config["outcome_weight"], device=device, max_steps=config.get("max_steps"))


class EnsembleRewardModel:
    """Weighted sum of the solution-level rewards of several reward models (default: their mean)."""

    config_file = "ensemble_reward_config.json"

    def __init__(self, models: Sequence, weights: Sequence[float] | None = None, device: str | None = None):
        if not models:
            raise ValueError("EnsembleRewardModel: needs at least one reward model")
        self.models = [load_reward_model(m, device=device) if isinstance(m, (str, os.PathLike)) else m for m in models]
        weights = [1.0 / len(self.models)] * len(self.models) if weights is None else weights
        if len(weights) != len(self.models):
            raise ValueError(f"EnsembleRewardModel: {len(weights)} weights for {len(self.models)} models")
        self.weights = _check_weights(weights, "EnsembleRewardModel")

    def score_solutions(self, prompts: Sequence[str], solutions: Sequence[str], batch_size: int | None = None,
                        progress: bool = False) -> list[float]:
        total = [0.0] * len(prompts)
        for w, m in zip(self.weights, self.models):
            total = [t + w * r for t, r in zip(total, m.solution_rewards(prompts, solutions, batch_size, progress))]
        return total

    solution_rewards = score_solutions

    def get_rewards_for_steps(self, steps: Sequence[str], problem: str | None = None) -> list[float]:
        """Weighted per-step rewards; every member must give step rewards."""
        for i, m in enumerate(self.models):
            if isinstance(m, OutcomeRewardModel) or not hasattr(m, "get_rewards_for_steps"):
                raise ValueError(f"EnsembleRewardModel: member {i} ({type(m).__name__}) gives no step rewards")
        per_model = [m.get_rewards_for_steps(steps, problem) for m in self.models]
        return [sum(w * r[k] for w, r in zip(self.weights, per_model)) for k in range(len(steps))]

    def get_reward_for_text(self, text: str) -> float:
        return self.score_solutions([""], [text])[0]

    def get_rewards_for_batch(self, texts: Sequence[str]) -> list[float]:
        return self.score_solutions([""] * len(texts), list(texts))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        members = []
        for i, m in enumerate(self.models):
            m.save(path / f"member_{i}")
            members.append(f"member_{i}")
        (path / self.config_file).write_text(json.dumps({"weights": self.weights, "members": members}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "EnsembleRewardModel":
        path = Path(path)
        config = json.loads((path / cls.config_file).read_text())
        return cls([path / m for m in config["members"]], config["weights"], device=device)


def load_reward_model(path: str | os.PathLike, device: str | None = None):
    """Load whichever reward model was saved in ``path`` (found by its config file name)."""
    path = Path(path)
    for cls in (ProcessRewardModel, OutcomeRewardModel, CombinedRewardModel, EnsembleRewardModel):
        if (path / cls.config_file).exists():
            return cls.load(path, device=device)
    raise FileNotFoundError(f"{path} holds no saved reward model (no *_reward_config.json)")


def shaped_reward(base_reward: float, confidence: float = 1.0, complexity: float = 0.0,
                  complexity_bonus: float = 0.5) -> float:
    """Reward shaping of the reference design: a correct (positive) step earns more when it is complex,
    ``r * (1 + complexity_bonus * complexity)``; a negative reward is kept as is. Both are scaled by the
    verifier's ``confidence`` in [0, 1] (1 leaves the reference behaviour unchanged)."""
    values = {"base_reward": base_reward, "confidence": confidence, "complexity": complexity,
              "complexity_bonus": complexity_bonus}
    for name, v in values.items():
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"shaped_reward: {name} must be a finite number, got {v!r}")
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"shaped_reward: confidence must be in [0, 1], got {confidence}")
    if complexity < 0:
        raise ValueError(f"shaped_reward: complexity must be >= 0, got {complexity}")
    bonus = 1.0 + complexity_bonus * complexity if base_reward > 0 else 1.0
    return confidence * base_reward * bonus
