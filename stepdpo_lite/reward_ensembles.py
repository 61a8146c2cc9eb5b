"""Combining reward models: ``CombinedRewardModel`` (weighted PRM + ORM), ``EnsembleRewardModel`` (weighted sum
of several), ``load_reward_model`` (whichever one a folder holds) and ``shaped_reward``.

The verifiers they combine are in ``rewards.py``; this module imports it, never the other way round.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from .atomic import save_atomic
from .checks import finite_number, keywords_taken, list_of, positive_int
from .rewards import (PROBLEM_IN_TEXT, SAVE_FOLDER, OutcomeRewardModel, ProcessRewardModel, TextRewards,
                      read_saved_config, step_delimiter_of)
from .steps import extract_steps


def _check_weights(weights: Sequence[float], what: str) -> list[float]:
    weights = list_of(weights, f"{what}: weights", "numbers")  # one number or a str is no list of weights
    return [finite_number(w, f"weights[{k}]", what) for k, w in enumerate(weights)]


class CombinedRewardModel(TextRewards):
    """``process_weight * aggregated PRM reward + outcome_weight * ORM reward`` (either part may be None), from
    ``score_solutions`` and ``get_reward_for_text``. The step methods (``get_rewards_for_steps``,
    ``extract_and_aggregate_steps``) give the PRM's own step rewards and aggregate, unweighted: an ORM has none.
    ``process`` and ``outcome`` may be saved models' folders (loaded on ``device``); ``max_steps`` caps a solution's
    steps as the PRM scores them (the tail merged into the last kept step), which changes its reward."""

    config_file = "combined_reward_config.json"

    def __init__(self, process=None, outcome=None, process_weight: float = 0.7, outcome_weight: float = 0.3,
                 device: str | None = None, max_steps: int | None = None):
        self.process_weight = finite_number(process_weight, "process_weight", "CombinedRewardModel")  # before a load
        self.outcome_weight = finite_number(outcome_weight, "outcome_weight", "CombinedRewardModel")
        self.max_steps = positive_int(max_steps, "max_steps", "CombinedRewardModel", none_ok=True)
        if isinstance(process, (str, os.PathLike)):
            process = ProcessRewardModel.load(process, device=device)
        if isinstance(outcome, (str, os.PathLike)):
            outcome = OutcomeRewardModel.load(outcome, device=device)
        if process is None and outcome is None:
            raise ValueError("CombinedRewardModel: give a process reward model, an outcome reward model or both")
        for name, part, kind in (("process", process, ProcessRewardModel), ("outcome", outcome, OutcomeRewardModel)):
            if part is not None and not isinstance(part, kind):  # swapped PRM/ORM would fail only when scoring
                raise ValueError(f"CombinedRewardModel: {name} must be a {kind.__name__}, the folder of a saved "
                                 f"one or None, got {type(part).__name__}")
        self.process_reward_model, self.outcome_reward_model = process, outcome

    @property
    def step_delimiter(self) -> str:
        return (self.process_reward_model or self.outcome_reward_model).config.step_delimiter

    def extract_and_aggregate_steps(self, text: str) -> tuple[list[str], list[float], float]:
        if not isinstance(text, str):
            raise ValueError(f"text: must be a str, got {type(text).__name__}")
        steps = extract_steps(text, self.step_delimiter, self.max_steps)
        rewards = self.get_rewards_for_steps(steps, PROBLEM_IN_TEXT)  # refuses a model without a PRM
        return steps, rewards, self.process_reward_model.aggregate(rewards)

    def get_rewards_for_steps(self, steps: Sequence[str], problem: str | None = None) -> list[float]:
        if self.process_reward_model is None:  # rewards of 0.0 would read as "unsure", not as "not scored"
            raise ValueError("CombinedRewardModel: no process reward model, so no step rewards")
        return self.process_reward_model.get_rewards_for_steps(self._capped(steps), problem)

    def _capped(self, steps):
        """A solution given as its steps, with ``max_steps``' tail merged into the last kept step, as
        ``extract_steps`` merges a text's: a text and its list of steps get the same rewards."""
        if (self.max_steps is None or not isinstance(steps, (list, tuple)) or len(steps) <= self.max_steps
                or not all(isinstance(s, str) for s in steps)):  # the PRM refuses a step that is not a str, by name
            return steps
        return [*steps[:self.max_steps - 1], "".join(steps[self.max_steps - 1:])]

    def score_solutions(self, prompts: Sequence[str], solutions: Sequence[str], batch_size: int | None = None,
                        progress: bool | None = None) -> list[float]:
        """One combined reward per solution, batched; both parts read the same prompts."""
        return self._score(prompts, prompts, solutions, batch_size, progress)

    def _score(self, process_prompts, outcome_prompts, solutions, batch_size=None, progress=None) -> list[float]:
        solutions = list_of(solutions, "solutions", "texts or lists of steps")
        process = outcome = [0.0] * len(solutions)  # a part the model has not adds nothing
        if self.process_reward_model is not None:
            steps = [extract_steps(s, self.step_delimiter, self.max_steps) if isinstance(s, str) else self._capped(s)
                     for s in solutions]
            process = self.process_reward_model.solution_rewards(list_of(process_prompts, "prompts", "strings"),
                                                                 steps, batch_size, progress)
        if self.outcome_reward_model is not None:
            outcome = self.outcome_reward_model.score_solutions(list_of(outcome_prompts, "prompts", "strings"),
                                                                solutions, batch_size, progress)
        return self.combine(process, outcome)

    def combine(self, process: Sequence[float], outcome: Sequence[float]) -> list[float]:
        """Each solution's combined reward from its parts' (the formula ``score_solutions`` uses): none scored twice."""
        if len(process) != len(outcome):
            raise ValueError(f"combine: {len(process)} process rewards but {len(outcome)} outcome rewards")
        def part(reward, kind, j):  # a NaN part makes a NaN reward that sorts anywhere, as in EnsembleRewardModel
            return finite_number(reward, f"{kind} reward of solution {j}", "CombinedRewardModel.combine")
        return [self.process_weight * part(p, "process", j) + self.outcome_weight * part(o, "outcome", j)
                for j, (p, o) in enumerate(zip(process, outcome))]

    solution_rewards = score_solutions

    def get_reward_for_problem_solution(self, problem: str, solution: str) -> float:
        """Each part reads the problem through its own ``prompt_template``, as it was trained."""
        prompts = [[m._prompt_for(problem, optional=False)] if m is not None else None  # None: refused, as theirs
                   for m in (self.process_reward_model, self.outcome_reward_model)]
        return self._score(*prompts, [solution])[0]

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic (``save_atomic``): a failed save leaves the previous copy whole, and a part saved before but not
        now (say, an old outcome_reward_model/) does not stay behind to be loaded with the new one."""
        def write(tmp):
            tmp = Path(tmp)
            if self.process_reward_model is not None:
                self.process_reward_model.save(tmp / "process_reward_model")
            if self.outcome_reward_model is not None:
                self.outcome_reward_model.save(tmp / "outcome_reward_model")
            config = {"process_weight": self.process_weight, "outcome_weight": self.outcome_weight,
                      "max_steps": self.max_steps,  # the step delimiter is the PRM's own, in its config
                      "parts": [sub for sub, m in (("process_reward_model", self.process_reward_model),
                                                   ("outcome_reward_model", self.outcome_reward_model)) if m]}
            (tmp / self.config_file).write_text(json.dumps(config, indent=2))
        return save_atomic(path, write, **SAVE_FOLDER)

    @classmethod
    def read_config(cls, path: str | os.PathLike) -> dict:
        """The saved config at ``path``, checked as ``load`` checks it but without loading a part: its weights and
        ``max_steps``, that every part it was saved with is there and that there is one (for code that reuses its
        parts' rewards, as best-of-N does)."""
        path = Path(path)
        config_path = path / cls.config_file
        config = read_saved_config(config_path, cls.__name__, ("process_weight", "outcome_weight"))
        parts = list_of(config.get("parts", []), f"{config_path}: parts", "folder names")  # one str: "p/ is missing"
        if lost := [sub for sub in parts if not (path / sub).exists()]:  # saves before "parts": no check
            raise ValueError(f"{config_path}: the model was saved with {lost[0]}/, which is missing from {path}")
        if not any((path / sub).exists() for sub in ("process_reward_model", "outcome_reward_model")):
            raise ValueError(f"{config_path}: neither process_reward_model/ nor outcome_reward_model/ is in {path}")
        try:
            for name in ("process_weight", "outcome_weight"):
                config[name] = finite_number(config[name], name, "CombinedRewardModel")
            positive_int(config.get("max_steps"), "max_steps", "CombinedRewardModel", none_ok=True)
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from None
        return config

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "CombinedRewardModel":
        path = Path(path)
        config = cls.read_config(path)
        parts = [ProcessRewardModel.load(path / "process_reward_model", device=device)
                 if (path / "process_reward_model").exists() else None,
                 OutcomeRewardModel.load(path / "outcome_reward_model", device=device)
                 if (path / "outcome_reward_model").exists() else None]
        return cls(*parts, config["process_weight"], config["outcome_weight"], max_steps=config.get("max_steps"))


class EnsembleRewardModel(TextRewards):
    """Weighted sum of the solution-level rewards of several reward models (default: their mean). A member is any
    object with ``solution_rewards(prompts, solutions)`` -> one reward per solution (docs/method.md, "Your own reward
    model"); ``batch_size`` and ``progress`` reach it as keywords, when set and where it takes them."""

    config_file = "ensemble_reward_config.json"

    def __init__(self, models: Sequence, weights: Sequence[float] | None = None, device: str | None = None):
        if isinstance(models, os.PathLike):
            raise ValueError(f"EnsembleRewardModel: models must be a list of reward models or folders, got {models}")
        models = list_of(models, "EnsembleRewardModel: models", "reward models or folders")
        if not models:
            raise ValueError("EnsembleRewardModel: needs at least one reward model")
        for i, m in enumerate(models):  # checked before any is loaded; a wrong one would fail only when scoring
            if not isinstance(m, (str, os.PathLike)) and not callable(getattr(m, "solution_rewards", None)):
                raise ValueError(f"EnsembleRewardModel: models[{i}] must be a reward model (with solution_rewards) "
                                 f"or the folder of a saved one, got {type(m).__name__}")
        weights = [1.0 / len(models)] * len(models) if weights is None else weights
        self.weights = _check_weights(weights, "EnsembleRewardModel")  # before a member is loaded, as the models
        if len(self.weights) != len(models):
            raise ValueError(f"EnsembleRewardModel: {len(self.weights)} weights for {len(models)} models")
        self.models = [load_reward_model(m, device=device) if isinstance(m, (str, os.PathLike)) else m for m in models]

    def score_solutions(self, prompts: Sequence[str], solutions: Sequence[str], batch_size: int | None = None,
                        progress: bool | None = None) -> list[float]:
        solutions = list_of(solutions, "solutions", "texts or lists of steps")
        prompts = list_of(prompts, "prompts", "strings")
        if len(prompts) != len(solutions):  # a member that zips them would score the shorter list only
            raise ValueError(f"EnsembleRewardModel: got {len(prompts)} prompts and {len(solutions)} solutions")
        total = [0.0] * len(prompts)
        extra = {k: v for k, v in (("batch_size", batch_size), ("progress", progress)) if v is not None}
        for i, (w, m) in enumerate(zip(self.weights, self.models)):  # a member may be any object with solution_rewards
            taken = keywords_taken(m.solution_rewards, **extra)  # the search's progress=False: a bare member lacks it
            rewards = list_of(m.solution_rewards(prompts, solutions, **taken), f"models[{i}]", "rewards")
            if len(rewards) != len(total):  # zip would cut the longer list without a word
                raise ValueError(f"EnsembleRewardModel: models[{i}] gave {len(rewards)} rewards for {len(total)} "
                                 "solutions")
            total = [t + w * finite_number(r, f"models[{i}]'s reward of solution {j}", "EnsembleRewardModel")
                     for j, (t, r) in enumerate(zip(total, rewards))]
        return total

    solution_rewards = score_solutions

    @property
    def step_delimiter(self) -> str | None:
        """The step delimiter its members split solutions with, where they state one and agree; else None."""
        own = {step_delimiter_of(m) for m in self.models}
        return own.pop() if len(own) == 1 else None

    def get_rewards_for_steps(self, steps: Sequence[str], problem: str | None = None) -> list[float]:
        """Weighted per-step rewards; every member must give step rewards."""
        steps = list_of(steps, "steps", "step strings")
        for i, m in enumerate(self.models):
            if isinstance(m, OutcomeRewardModel) or not hasattr(m, "get_rewards_for_steps"):
                raise ValueError(f"EnsembleRewardModel: member {i} ({type(m).__name__}) gives no step rewards")
        per_model = [m.get_rewards_for_steps(steps, problem) for m in self.models]
        for i, r in enumerate(per_model):  # a CombinedRewardModel's max_steps merges the tail into fewer steps
            if len(r) != len(steps):
                raise ValueError(f"EnsembleRewardModel: member {i} ({type(self.models[i]).__name__}) gives {len(r)} "
                                 f"step rewards for {len(steps)} steps (its max_steps?): members must agree")
        return [sum(w * finite_number(r[k], f"member {i}'s reward of step {k}", "EnsembleRewardModel")  # NaN: as above
                    for i, (w, r) in enumerate(zip(self.weights, per_model))) for k in range(len(steps))]

    def get_reward_for_problem_solution(self, problem: str, solution: str) -> float:
        """Each member reads the problem through its own ``prompt_template``, as it was trained (its siblings' API)."""
        return sum(w * finite_number(m.get_reward_for_problem_solution(problem, solution), f"models[{i}]'s reward",
                                     "EnsembleRewardModel") for i, (w, m) in enumerate(zip(self.weights, self.models)))

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic, like ``CombinedRewardModel.save``: no member of an earlier, larger ensemble stays behind."""
        def write(tmp):
            members = []
            for i, m in enumerate(self.models):
                m.save(Path(tmp) / f"member_{i}")
                members.append(f"member_{i}")
            (Path(tmp) / self.config_file).write_text(json.dumps({"weights": self.weights, "members": members},
                                                                 indent=2))
        return save_atomic(path, write, **SAVE_FOLDER)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "EnsembleRewardModel":
        path = Path(path)
        config_path = path / cls.config_file
        config = read_saved_config(config_path, cls.__name__, ("members", "weights"))
        members = config["members"]
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise ValueError(f"{config_path}: members must be a non-empty list of folder names, got {members!r}")
        try:
            weights = _check_weights(config["weights"], "EnsembleRewardModel")  # before the members are loaded
            if len(weights) != len(members):
                raise ValueError(f"EnsembleRewardModel: {len(weights)} weights for {len(members)} members")
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from None
        return cls([load_reward_model(path / m, device=device) for m in members], weights)


def load_reward_model(path: str | os.PathLike, device: str | None = None):
    """The reward model saved in ``path`` (by its config file); raises FileNotFoundError if none, ValueError if bad."""
    path = Path(path)
    for cls in (ProcessRewardModel, OutcomeRewardModel, CombinedRewardModel, EnsembleRewardModel):
        if (path / cls.config_file).exists():
            return cls.load(path, device=device)
    raise FileNotFoundError(f"{path} holds no saved reward model (no *_reward_config.json)")


def shaped_reward(base_reward: float, confidence: float = 1.0, complexity: float = 0.0,
                  complexity_bonus: float = 0.5) -> float:
    """Reward shaping (docs/method.md §3): a correct (positive) step earns more when it is complex, ``r * (1 +
    complexity_bonus * complexity)``; a negative reward is kept as is. Both are scaled by the verifier's ``confidence``
    in [0, 1] (1: no change). Raises ValueError: a value not finite, confidence outside [0, 1], complexity/bonus < 0."""
    values = {"base_reward": base_reward, "confidence": confidence, "complexity": complexity,
              "complexity_bonus": complexity_bonus}
    base_reward, confidence, complexity, complexity_bonus = (finite_number(v, name, "shaped_reward")
                                                             for name, v in values.items())
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"shaped_reward: confidence must be in [0, 1], got {confidence}")
    for name, value in (("complexity", complexity), ("complexity_bonus", complexity_bonus)):
        if value < 0:  # a negative bonus cuts a correct step's reward, and past 1 / complexity turns it negative
            raise ValueError(f"shaped_reward: {name} must be >= 0, got {value}")
    bonus = 1.0 + complexity_bonus * complexity if base_reward > 0 else 1.0
    return confidence * base_reward * bonus
