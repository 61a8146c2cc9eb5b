"""stepdpo-lite: process supervision and Stepwise DPO, small enough to read and to run on a laptop.

The top-level modules are the library; ``stepdpo_lite.tutorial`` is the notebooks' kit (toy world, GSM8K task,
profiles, pictures), which the library never imports. Names are imported lazily here, and only here, so that
``import stepdpo_lite`` stays fast and light (no torch until a name is used).
"""

import logging
from importlib import import_module

# bitsandbytes >= 0.50 on an AVX512-BF16 CPU fetches a Hub kernel at import (TRL imports it too) for a packed 4-bit
# layout the kit never uses (models.keep_4bit_weights_unpacked), and warns when it cannot, offline or without the
# `kernels` package (which transformers 5.25 installs, and which warns offline too): noise, filtered before any import.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "gemm_4bit_forward" not in record.getMessage())
logging.getLogger("kernels._internals.hf_hub").addFilter(
    lambda record: "kernels-community/quantization-bitsandbytes" not in record.getMessage())

__version__ = "0.1.0"

_EXPORTS = {
    "extract_steps": "steps", "step_spans": "steps", "token_step_ids": "steps",
    "load_model": "models",
    "load_reward_model": "reward_ensembles", "RewardModelConfig": "rewards",
    "ProcessRewardModel": "rewards", "OutcomeRewardModel": "rewards", "CombinedRewardModel": "reward_ensembles",
    "EnsembleRewardModel": "reward_ensembles", "shaped_reward": "reward_ensembles",
    "train_process_reward_model": "reward_training", "train_outcome_reward_model": "reward_training",
    "RewardTrainingConfig": "reward_training",
    "step_logps": "losses", "aggregate_rewards": "losses", "aggregate_reward_lists": "losses",
    "compute_step_loss": "losses", "step_margin": "losses", "compute_outcome_loss": "losses",
    "get_step_rewards": "trainer",
    "StepwiseDPOConfig": "trainer", "StepwiseDPOTrainer": "trainer",
}

_MODULES = ("steps", "losses", "stepwise_data", "trainer", "rewards", "reward_ensembles", "reward_training", "models",
            "data", "evaluation", "generation", "atomic", "checks", "tutorial")

__all__ = sorted(_EXPORTS) + list(_MODULES)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _MODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'stepdpo_lite' has no attribute {name!r}")


def __dir__():  # the lazy names too, else tab completion and help() list only those imported
    return sorted(set(globals()) | set(__all__))
