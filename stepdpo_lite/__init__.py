"""stepdpo-lite: process supervision and Stepwise DPO, small enough to read and to run on a laptop.

Names are imported lazily so that ``import stepdpo_lite`` stays fast and light (no torch until used).
"""

import logging
from importlib import import_module

# On a CPU with AVX512-BF16, bitsandbytes >= 0.50 fetches a kernel for its packed 4-bit inference layout when it is
# imported (TRL imports it too), and logs a warning when the `kernels` package is missing. The kit never uses that
# layout (models.keep_4bit_weights_unpacked), so the warning is noise: filtered here, before any submodule import.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: "gemm_4bit_forward" not in record.getMessage())

__version__ = "0.1.0"

_EXPORTS = {
    "extract_steps": "steps", "step_spans": "steps", "token_step_ids": "steps",
    "load_model": "models", "PROFILES": "profiles", "get_profile": "profiles",
    "load_reward_model": "reward_ensembles", "RewardModelConfig": "rewards",
    "ProcessRewardModel": "rewards", "OutcomeRewardModel": "rewards", "CombinedRewardModel": "reward_ensembles",
    "EnsembleRewardModel": "reward_ensembles", "shaped_reward": "reward_ensembles",
    "train_process_reward_model": "reward_training", "train_outcome_reward_model": "reward_training",
    "step_logps": "losses", "aggregate_rewards": "losses", "compute_step_loss": "losses",
    "compute_outcome_loss": "losses", "get_step_rewards": "trainer",
    "StepwiseDPOConfig": "trainer", "StepwiseDPOTrainer": "trainer",
}

_MODULES = ("toyworld", "data", "labelling", "public_datasets", "gsm8k", "evaluation", "viz", "steps", "models",
            "rewards", "reward_ensembles", "losses", "stepwise_data", "trainer", "reward_training", "runs", "tutorial",
            "tasks", "budget", "colab", "smoke", "search", "verifier_pretraining", "onpolicy", "profiles")

__all__ = sorted(_EXPORTS) + list(_MODULES)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _MODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'stepdpo_lite' has no attribute {name!r}")
