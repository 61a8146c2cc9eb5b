"""Resuming on-policy rounds: ``onpolicy.run_rounds(save_dir=...)`` saves each finished round, its record, training
logs and the policies it left (``save_rounds``), and a later run with the same settings (``rounds_settings``) takes
the saved rounds (``saved_rounds``) and goes on from their policies (``load_round_policy``): a Colab runtime that
disconnects in round 3 loses round 3 only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

from accelerate.utils import is_peft_model
from safetensors.torch import load_file, save_file

from ..atomic import save_atomic
from . import policy_eval


ROUNDS_FILE = "rounds.json"  # in run_rounds' save_dir, beside one folder of weights per method
POLICY_FILE = "policy.safetensors"


def _round_weights(model) -> dict:
    """What a round trains of ``model``, by name: a PEFT policy's adapter (the parameters that take a gradient), a
    fully fine-tuned policy's every parameter (tied ones once)."""
    params = dict(model.named_parameters())
    return {n: p for n, p in params.items() if p.requires_grad} if is_peft_model(model) else params


def weights_digest(model) -> str:
    """A short digest of what a round trains of ``model`` (``_round_weights``)."""
    digest = hashlib.sha256()
    for name, param in sorted(_round_weights(model).items()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def files_digest(folder: str | Path) -> str:
    """A short digest of the files in ``folder`` (names and contents): notebook 04's ``save_key`` for its PRM, so
    that rounds labelled by another PRM (notebook 02 run again) are not taken for this one's."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def rounds_settings(policies: Mapping, train_problems, eval_problems, rs, ts, *,
                    problems_per_round, seed, n_sampled, shared_start, methods, save_key=None) -> dict:
    """What saved rounds must share with a run to stand for its first rounds (``run_rounds(save_dir=...)``): the
    round and training settings (``rs`` and ``ts``: onpolicy's ``RoundSettings`` and ``TrainSettings``;
    ``rs.progress`` aside), seed, problems (their digests), the start policies (the digest of their weights; a LoRA
    policy's base by its name too) and ``save_key``'s entries, by their own names. The number of rounds is not part
    of it: more rounds go on from the saved ones. As plain JSON (a class in the settings by its repr)."""
    values = {"round_settings": {k: v for k, v in dataclasses.asdict(rs).items() if k != "progress"},
              "train_settings": dataclasses.asdict(ts), "problems_per_round": problems_per_round, "seed": seed,
              "n_sampled": n_sampled, "shared_start": shared_start, "methods": list(methods),
              "train_problems": policy_eval.problems_digest(train_problems),
              "eval_problems": policy_eval.problems_digest(eval_problems),
              "start_policies": {m: weights_digest(policies[m]) for m in methods},
              # a LoRA round trains the adapter alone, whose start weights do not tell one base from another
              "lora_bases": {m: policies[m].get_base_model().config.name_or_path for m in methods
                             if hasattr(policies[m], "peft_config")}}
    if clash := sorted(set(save_key or {}) & set(values)):
        raise ValueError(f"run_rounds: save_key's {clash} would replace the settings of that name; rename them")
    return json.loads(json.dumps({**values, **(save_key or {})}, sort_keys=True, default=repr))


def saved_rounds(save_dir: str | Path, settings: dict, rounds: int, out=print) -> list[dict]:
    """The rounds saved in ``save_dir`` (``save_rounds``: each ``{"record", "log_history"}``) when they can stand for
    the first rounds of a run with ``settings`` (``rounds_settings``) and ``rounds`` rounds; else none, with a line
    to ``out`` saying why (they are replaced when the run's first round is saved)."""
    path = Path(save_dir) / ROUNDS_FILE
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    differ = sorted(k for k in set(settings) | set(state["settings"]) if settings.get(k) != state["settings"].get(k))
    done = state["rounds"]
    why = (f"they were run with other {', '.join(differ)}" if differ else
           f"they are {len(done)}, more than the {rounds} asked for" if len(done) > rounds else None)
    if why:
        out(f"the on-policy rounds saved in {Path(save_dir).resolve()} are not taken: {why}; round 1 starts from the "
            "start policies, and its save replaces them")
        return []
    return done


def save_rounds(save_dir: str | Path, settings: dict, done: Sequence[dict], policies: Mapping) -> Path:
    """The finished rounds ``done`` (each ``{"record", "log_history"}``) and the policies the last one left, saved
    to ``save_dir`` as a whole (``atomic.save_atomic``: the previous round's save stays until this one is complete, so
    a runtime that stops while saving keeps it). Only the last round's policies are kept: a run goes on from them."""
    def write(tmp):
        for name, model in policies.items():
            (Path(tmp) / name).mkdir()
            save_file({n: p.detach().contiguous().cpu() for n, p in _round_weights(model).items()},
                      str(Path(tmp) / name / POLICY_FILE))
        Path(tmp, ROUNDS_FILE).write_text(json.dumps({"settings": settings, "rounds": list(done)}))

    return save_atomic(save_dir, write, owned=(ROUNDS_FILE,), where="run_rounds(save_dir)")


def load_round_policy(model, folder: str | Path) -> None:
    """The weights ``save_rounds`` saved in ``folder`` put into ``model`` (a start policy, as ``onpolicy.start_policy``
    makes it), in place (``onpolicy.run_rounds`` then marks it as trained up to the last saved round)."""
    saved = load_file(str(Path(folder) / POLICY_FILE))
    params = _round_weights(model)
    wrong = sorted(set(saved) ^ set(params)) or [n for n in params if saved[n].shape != params[n].shape]
    if wrong:
        raise ValueError(f"run_rounds: {folder} holds other weights than the policy's (first: {wrong[0]}): not a "
                         "save of this policy's rounds; delete the folder to run them again")
    for name, param in params.items():
        param.data = saved[name].to(param.device)  # the saved dtype too: a 4-bit policy's adapters train in float32


class SavedRound:
    """A saved round's stand-in for a method's trainer (``run_rounds(save_dir=...)``): ``model`` (the policy, as
    the last saved round left it), ``state.log_history`` (that round's training log) and ``save_model``."""

    def __init__(self, model, tokenizer, log_history: list):
        self.model, self.tokenizer = model, tokenizer
        self.state = SimpleNamespace(log_history=log_history)

    def save_model(self, output_dir: str) -> None:
        self.model.save_pretrained(output_dir)
        self.tokenizer.save_pretrained(output_dir)
