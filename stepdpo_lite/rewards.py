"""Process and outcome reward models as generative verifiers (GenRM, Zhang et al. 2024, arXiv:2408.15240).

A reward model is a causal LM asked a yes/no question after a verification tag. The reward is the
log-odds of its next token, ``log p(" Yes") - log p(" No")``, and ``sigmoid(reward)`` is the
probability that the step (or solution) is correct.

The process reward model scores every step of a solution in context and in ONE forward pass::

    prompt | step 1 | TAG | step 2 | TAG | ... | step K | TAG
                         ^ r_1              ^ r_2            ^ r_K

The labels are never part of the input, so the prediction at step k's tag attends only to the
prompt and steps <= k: the reward of step k is exactly the one read from the input cut after its
tag, at the cost of a single forward pass instead of K. Each part is tokenized on its own and the
token ids are concatenated, so training and scoring see the same tokens, and the reward is read
at the last token of the tag.

A prompt and its solution are concatenated verbatim (the TRL convention for ``prompt`` +
``completion``); ``prompt_template`` turns a bare problem into that prompt for
``get_reward_for_problem_solution`` and ``get_rewards_for_steps(steps, problem=...)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .atomic import TRAINER_OUTPUTS, save_atomic
from .checks import (AGGREGATION_STRATEGIES, documented_fields, finite_number, list_of, positive_int,
                     warn_of_unread_text, warn_user)
from .evaluation import predict_first_error
from .models import keep_4bit_weights_unpacked, load_model, write_portable_adapter_config
from .steps import DEFAULT_DELIMITER, extract_steps

logger = logging.getLogger(__name__)

# The verification tags (GenRM-style): a reward is the log-odds of YES vs NO as the next token after a tag.
STEP_TAG = "\nIs this step correct? Yes or No:"
OUTCOME_TAG = "\nIs this solution correct? Yes or No:"
YES, NO = " Yes", " No"
# A saved reward model's folder (save_atomic): what it may hold besides the save, the Trainer's in its output_dir
SAVE_FOLDER = dict(keep=TRAINER_OUTPUTS, owned=("*reward_config.json",))


class _ProblemInText(str):
    """The empty prompt of a call on a bare text: its problem is in the text (no warning of an empty prompt)."""


PROBLEM_IN_TEXT = _ProblemInText()


@documented_fields
@dataclass
class RewardModelConfig:
    """How a reward model turns text into model input, and its reward into a number."""

    tag: str | None = field(default=None, metadata={
        "help": "Verification tag put after each step (PRM) or the solution (ORM); None: the kind's own, STEP_TAG "
                "for a ProcessRewardModel, OUTCOME_TAG for an OutcomeRewardModel."})
    yes: str = field(default=YES, metadata={"help": "Answer token for 'correct'; must be one token."})
    no: str = field(default=NO, metadata={"help": "Answer token for 'wrong'; must be one token."})
    step_delimiter: str = field(default=DEFAULT_DELIMITER, metadata={"help": "Splits a solution text into steps."})
    max_length: int | None = field(default=None, metadata={
        "help": "Longest input in tokens (tags included); longer inputs raise. None: the model's context."})
    prompt_template: str = field(default="{problem}", metadata={
        "help": "Turns a bare problem into the prompt the model was trained on, e.g. 'Problem: {problem}\\n\\n'."})
    aggregation: str = field(default="min", metadata={
        "help": "Step rewards -> one: min, product, last, mean, max or weighted_sum (losses.aggregate_rewards)."})
    batch_size: int = field(default=16, metadata={"help": "Solutions per forward pass when scoring."})
    quantization: str | None = field(default=None, metadata={"help": "How the base is loaded back: '4bit' or None."})
    dtype: str | None = field(default=None, metadata={
        "help": "The weights' (4-bit: compute) dtype when loaded back: 'float32', 'bfloat16' or 'float16'; the reward "
                "trainers record the one they trained in, so a reload gives the same rewards. None: the device's."})
    first_error_threshold: float | None = field(default=None, metadata={"help": "first_errors' threshold (log-odds)."})
    trained_with_prompts: bool = field(default=False, metadata={
        "help": "Set by the reward trainers (their rows all have prompts): an empty prompt to score then warns."})

    def __setattr__(self, name, value):  # a function or unknown name was taken here, to fail when scoring or at save
        if name == "aggregation" and (callable(value) or value not in (known := AGGREGATION_STRATEGIES)):
            raise ValueError(f"RewardModelConfig: aggregation must be a name (the config is saved as JSON), got the "
                             f"function {getattr(value, '__name__', value)}; pass it per call: aggregate(rewards, fn)"
                             if callable(value) else f"reward model: aggregation must be one of {known}, got {value!r}")
        super().__setattr__(name, value)


def sigmoid(reward):
    """P(step right) = σ(reward) of log-odds: a float for a number, an array for an array-like; NaN stays NaN."""
    x = np.asarray(reward)
    if x.dtype.kind not in "iuf":  # a cast read None (or a list holding one) as NaN, "2" as 2 and True as 1
        raise ValueError(f"sigmoid: expected log-odds numbers, got {reward!r:.60}")
    with np.errstate(over="ignore"):  # σ(−1000) = 1 / (1 + inf) = 0: no OverflowError (math.exp), no warning
        p = 1.0 / (1.0 + np.exp(-x.astype(float)))
    return float(p) if p.ndim == 0 else p


def step_delimiter_of(model) -> str | None:
    """The step delimiter a reward model splits solutions with: its ``step_delimiter``, or its config's (the kit's
    models; one's own: docs/method.md, "Your own reward model"); None where it states none."""
    return getattr(model, "step_delimiter", None) or getattr(getattr(model, "config", None), "step_delimiter", None)


def mistake_made_here_labels(reachable) -> list[float]:
    """P(no mistake is made in step k) from a PRM's P(the answer is still reachable after step k), ``reachable``
    (σ(reward) per step; the two meanings: docs/formats.md): 1 − max(0, q_{k−1} − q_k), q_{−1} = 1. A drop at step k
    is the chance the mistake is made there (the PRM's "progress", Setlur et al. 2024, arXiv:2410.08146); a step that
    computes right on a wrong number loses nothing, so Stepwise DPO's step loss does not push it down. The same rule
    on a checker's verdicts, which also see a second mistake: the kit's ``task_problems.Verdict.mistake_labels``."""
    q = [1.0, *(finite_number(x, f"step {k}'s P", "mistake_made_here_labels") for k, x in enumerate(reachable))]
    if not all(0 <= x <= 1 for x in q):  # log-odds given for probabilities: every "drop" would be meaningless
        raise ValueError(f"mistake_made_here_labels: expected probabilities in [0, 1] (σ of the rewards), got {q[1:]}")
    return [1.0 - max(0.0, before - after) for before, after in zip(q, q[1:])]


class InputTooLong(ValueError):
    """An input longer than the reward model's ``max_length``: refused, never truncated."""

    def __init__(self, message: str, index=None, n_tokens=None, max_length=None):  # a PRM's: which solution, how long
        super().__init__(message)
        self.index, self.n_tokens, self.max_length = index, n_tokens, max_length


def check_config_values(c: RewardModelConfig) -> None:
    """The config's own values, checked before any model is loaded: a wrong one fails at once and names its field,
    not at the first scoring, nor as a TypeError or KeyError from deep inside the tokenizer or str.format."""
    for name in ("tag", "yes", "no", "step_delimiter"):
        if name == "tag" and c.tag is None:  # the kind's own tag, set by GenerativeVerifier
            continue
        if not isinstance(getattr(c, name), str) or not getattr(c, name):
            raise ValueError(f"reward model: {name} must be a non-empty string, got {getattr(c, name)!r}")
    if not isinstance(c.prompt_template, str) or "{problem}" not in c.prompt_template:
        raise ValueError(f"reward model: prompt_template must be a str containing '{{problem}}' (else the problem "
                         f"is dropped), got {c.prompt_template!r}")
    try:
        c.prompt_template.format(problem="")
    except (AttributeError, IndexError, KeyError, ValueError) as err:
        raise ValueError(f"reward model: prompt_template {c.prompt_template!r} takes more than {{problem}} "
                         f"({type(err).__name__}: {err}); write a literal brace as '{{{{' or '}}}}'") from None
    positive_int(c.batch_size, "batch_size", "reward model")
    positive_int(c.max_length, "max_length", "reward model", none_ok=True)
    if c.quantization not in (None, "4bit"):
        raise ValueError(f"reward model: quantization must be '4bit' or None, got {c.quantization!r}")
    if c.dtype not in (None, "float32", "bfloat16", "float16"):
        raise ValueError(f"reward model: dtype must be 'float32', 'bfloat16', 'float16' or None, got {c.dtype!r}")
    if c.first_error_threshold is not None:  # a float, so that save writes it (json refuses a numpy float32)
        c.first_error_threshold = finite_number(c.first_error_threshold, "first_error_threshold", "reward model")


def read_saved_config(config_path: Path, kind: str, required: Sequence[str] = ()) -> dict:
    """A saved ``*_reward_config.json`` of a ``kind`` as a dict; a cut-short file, a non-object or a missing key is a
    ValueError naming the file (not a JSONDecodeError, AttributeError or KeyError), no file a FileNotFoundError."""
    if not config_path.exists():
        where = "" if config_path.is_absolute() else f" (looked from {Path.cwd()})"  # a relative path: from where?
        folder = "" if config_path.parent.is_dir() else f"no such folder: {config_path.parent}, so "
        raise FileNotFoundError(f"{folder}{config_path} is missing{where}: not a saved {kind}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}: not valid JSON ({err}); was its save cut short?") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: must hold a JSON object, got {type(config).__name__}")
    if missing := [k for k in required if k not in config]:
        raise ValueError(f"{config_path}: missing field(s) {missing}")
    return config


# ----------------------------------------------------------------------------- the shared forward

def tag_logits(model, input_ids, attention_mask, rows, cols, fast: bool = True):
    """Next-token logits at positions ``(rows[i], cols[i])``: ``(N, vocab)``.

    The fast path runs the decoder and applies the output head only at those N positions, which
    avoids a ``(batch, length, vocab)`` tensor (gigabytes for a 150k vocabulary). ``fast=False``
    takes the plain ``model(...).logits``, for models whose head does more than one linear map.
    """
    if fast:
        hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return model.get_output_embeddings()(hidden[rows, cols])
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, cols]


def fast_head_matches(model) -> bool:
    """Whether decoder + output head give the model's own logits (false for soft-capped or scaled heads). Checked
    in eval mode: in train mode a LoRA adapter's dropout made the two passes differ, and the full logits followed."""
    import torch  # torch in the functions: RewardModelConfig and tutorial.profiles import this module torch-free
    device = next(model.parameters()).device
    ids = torch.arange(1, 9, device=device).unsqueeze(0)
    mask, rows, cols = torch.ones_like(ids), torch.zeros(8, dtype=torch.long), torch.arange(8)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            a = tag_logits(model, ids, mask, rows, cols, fast=True).float()
            b = tag_logits(model, ids, mask, rows, cols, fast=False).float()
    except (AttributeError, NotImplementedError, TypeError):
        return False
    finally:
        model.train(was_training)
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-3, atol=1e-3 * b.abs().max().item())


# ----------------------------------------------------------------------------- the verifier

class TextRewards:
    """The calls on bare texts (``get_reward_for_text``, ``get_rewards_for_batch``), for every reward model of the kit
    (process, outcome, combined, ensemble), from its ``solution_rewards(prompts, solutions)`` (one reward per
    solution): a text is read with an empty prompt, so put the problem in the text as the model was trained."""

    def get_reward_for_text(self, text: str) -> float:
        return self._text_rewards([text], "text")[0]

    def get_rewards_for_batch(self, texts: Sequence[str]) -> list[float]:
        return self._text_rewards(list_of(texts, "texts", "texts"), "texts")

    def _text_rewards(self, texts: list, name: str) -> list[float]:
        for i, text in enumerate(texts):  # a list of steps: the ORM scored it joined, the PRM refused it
            if not isinstance(text, str):
                raise ValueError(f"{name}{f'[{i}]' * (name == 'texts')}: must be a str, got {type(text).__name__} "
                                 "(a solution as its steps: score_solutions(prompts, solutions) takes lists of steps)")
        return self.solution_rewards([PROBLEM_IN_TEXT] * len(texts), texts)


class GenerativeVerifier(TextRewards):
    """What the process and outcome reward models share: tokens, the forward pass, save and load."""

    config_file = "reward_config.json"
    default_tag = STEP_TAG

    def __init__(self, model, tokenizer=None, config: RewardModelConfig | None = None, *, device: str | None = None,
                 quantization: str | None = None, **overrides):
        """``model``: a folder or Hub name, loaded on ``device`` (None: cuda when available) at ``quantization`` (None,
        the default: ``config``'s, full precision unless set, unlike models.load_model's "4bit"), or a loaded model,
        which needs its ``tokenizer``. ``config`` (copied) and ``**overrides``, RewardModelConfig fields (an unknown
        one raises), set the format. A saved reward model's folder without ``config`` is refused: ``load(path)`` reads
        the config saved with it (given a ``config``, the folder's model loads and that config sets the format)."""
        if config is not None and not isinstance(config, RewardModelConfig):
            raise ValueError(f"{type(self).__name__}: config must be a RewardModelConfig (or None), got "
                             f"{type(config).__name__}; pass single fields as keywords, e.g. batch_size=8")
        unknown = set(overrides) - {f.name for f in fields(RewardModelConfig)}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)}")
        # A copy: the caller's config is not changed by the overrides, and can serve a PRM and an ORM alike
        config_given, config = config, replace(config or RewardModelConfig(), **overrides)
        if config.tag is None:
            config.tag = self.default_tag
        if quantization is not None:
            config.quantization = quantization
        check_config_values(config)  # before a model is loaded: a wrong option fails in a second, not after the load
        if isinstance(model, (str, os.PathLike)):  # loaded as the config says (a save records what was loaded)
            if config_given is None and (Path(model) / self.config_file).exists():  # its tag, delimiter, 4-bit base
                raise ValueError(f"{model} holds a saved {type(self).__name__}: load it with "
                                 f"{type(self).__name__}.load(path), which reads its {self.config_file}")
            model, loaded_tokenizer = load_model(model, quantization=config.quantization, device=device,
                                                 dtype=config.dtype)
            tokenizer = tokenizer or loaded_tokenizer
        else:
            if device is not None and quantization is None:
                model.to(device)
            if config.dtype is None:  # as quantization below: what the model is, so that load() scores alike
                q = getattr(getattr(model, "config", None), "quantization_config", None)
                key = "bnb_4bit_compute_dtype"
                compute = q.get(key) if isinstance(q, dict) else getattr(q, key, None)
                dtype = compute if getattr(model, "is_loaded_in_4bit", False) else getattr(model, "dtype", None)
                name = str(dtype).removeprefix("torch.")
                config.dtype = name if name in ("float32", "bfloat16", "float16") else None
        keep_4bit_weights_unpacked(model)  # a 4-bit model loaded elsewhere: same numbers on every CPU
        # What the model is, not what was asked: a save says so, and load() then gives the same rewards (a QLoRA
        # model object's adapter goes back on a 4-bit base; a full-precision one is not quantized on reload)
        config.quantization = "4bit" if getattr(model, "is_loaded_in_4bit", False) else None
        if tokenizer is None:
            raise ValueError(f"{type(self).__name__}: pass the tokenizer with a model object")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self._check_config()
        self._fast = fast_head_matches(model)

    # -- tokens

    def _check_config(self):
        c, tok = self.config, self.tokenizer  # c's own values were checked by __init__ (check_config_values)
        self.tag_ids = self._tokenize([c.tag])[0]
        self.yes_id, self.no_id = self._single_token(c.yes, "yes"), self._single_token(c.no, "no")
        if self.yes_id == self.no_id:
            raise ValueError(f"reward model: yes {c.yes!r} and no {c.no!r} are the same token")
        with_specials = tok("a", add_special_tokens=True)["input_ids"]
        plain = tok("a", add_special_tokens=False)["input_ids"]
        # What the tokenizer puts before the text (e.g. BOS) is kept; what it puts after (e.g. EOS) is not wanted
        cut = next((i for i in range(len(with_specials) - len(plain) + 1)
                    if with_specials[i:i + len(plain)] == plain), 0)
        self.prefix_ids = with_specials[:cut]
        positions = getattr(self.model.config, "max_position_embeddings", None)
        limits = [positions, tok.model_max_length]
        context = min((x for x in limits if isinstance(x, int) and 0 < x < 10**7), default=None)
        # Past its positions a model is out of its training (a RoPE model even scores such inputs without an
        # error), so a max_length beyond them would let over-long inputs through instead of refusing them.
        if c.max_length is not None and isinstance(positions, int) and c.max_length > positions:
            raise ValueError(f"reward model: max_length {c.max_length} is longer than the model's context "
                             f"(max_position_embeddings {positions}); use at most {positions}, or None for it")
        self.max_length = context if c.max_length is None else c.max_length

    def _single_token(self, word: str, what: str) -> int:
        ids = self._tokenize([word])[0]
        if len(ids) != 1:
            raise ValueError(f"reward model: the {what} answer {word!r} is {len(ids)} tokens {ids} for this "
                             f"tokenizer; it must be exactly one (try a leading space, e.g. ' Yes')")
        return ids[0]

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:  # verbose=False: InputTooLong, not transformers' log
        return self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"] if texts else []

    @property
    def device(self):
        return next(self.model.parameters()).device

    # -- scoring

    def input_lengths(self, prompts: Sequence[str], solutions) -> list[int]:
        """Tokens each solution takes with its prompt and tags as the model reads it, whatever ``max_length``: to keep
        the rows that fit (``n <= max_length``) before training or scoring, where a longer one raises."""
        return [len(ids) for ids, _ in self._encode_many(prompts, solutions, check=False)]

    def _check_length(self, index: int, n_tokens: int):
        if self.max_length is not None and n_tokens > self.max_length:
            raise InputTooLong(f"solution {index}: {n_tokens} tokens with its tags, longer than max_length "
                               f"{self.max_length}; shorten it, leave it out (this model's input_lengths(prompts, "
                               "solutions) finds them), or raise max_length up to the model's context (a saved one: "
                               f"{type(self).__name__}.load(path, max_length=...), trusting it only as far as it was "
                               "trained); it is never truncated silently", index, n_tokens, self.max_length)

    def warn_of_untrained_layout(self, prompts: list[str], steps: list[list[str]], token_ids, side: str = "") -> None:
        """One warning for all rows of each thing training warns of (reward_training): a layout it never read moves its
        rewards; text it cannot read (in ``token_ids``, as encoded) gets a guess. ``side``: a trainer's, named."""
        from .data import first_step_not_opening, prompt_runs_into  # not at import: data imports datasets (~1 s)
        joined = sum(bool(p) and prompt_runs_into(p, ss[0]) for p, ss in zip(prompts, steps))  # "": no prompt
        bare = sum(bool(first_step_not_opening(ss, self.config.step_delimiter)) for ss in steps)
        empty = [i for i, p in enumerate(prompts) if self.config.trained_with_prompts and p == ""
                 and not isinstance(p, _ProblemInText)]  # steps alone after no problem: a layout it never read
        found = [f"{joined} of {len(steps)} prompts run into their first step with no whitespace between (the kit "
                 "trains on such rows only with a warning): end them as in training, e.g. with the '\\n' of "
                 f"data.delimit_steps (a bare problem's prompt_template {self.config.prompt_template!r} -> "
                 "'{problem}\\n')"] * bool(joined) + [f"{bare} of {len(steps)} solutions' steps 2..K do not open "
                 f"with the step_delimiter {self.config.step_delimiter!r} it was trained with: put it in front of them "
                 "(data.delimit_steps)"] * bool(bare)
        if empty:
            found.append(f"{len(empty)} of {len(steps)} prompts are empty (solution {empty[0]} first, field 'prompt') "
                         "and it was trained with prompts: give each solution its problem's prompt")
        where = f"{type(self).__name__}.score_solutions{f' ({side} side)' * bool(side)}"
        if found:
            warn_user(f"{where}: {'; '.join(found)}; its rewards of a layout it was not trained on may be far off")
        warn_of_unread_text(self.tokenizer, token_ids, where)

    def _score_encoded(self, encoded: list[tuple[list[int], list[int]]], batch_size: int | None = None,
                       progress: bool | None = None) -> list[list[float]]:
        """``encoded[i] = (input_ids, tag_positions)`` -> reward at every tag position, per sequence."""
        import torch
        from torch.nn.utils.rnn import pad_sequence

        batch_size = positive_int(batch_size, "batch_size", "reward model", none_ok=True) or self.config.batch_size
        bar = {"delay": 2} if progress is None else {"disable": not progress}  # None: drawn after 2 s, not in a blink
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))  # similar lengths, less padding
        out: list[list[float] | None] = [None] * len(encoded)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in tqdm(range(0, len(order), batch_size), desc="scoring", **bar):
                batch = order[start:start + batch_size]
                ids = pad_sequence([torch.tensor(encoded[i][0]) for i in batch], batch_first=True,
                                   padding_value=pad_id).to(self.device)  # on the right: token positions stay
                # The padding is on the right, after every real token, and a causal model's output at a token
                # never depends on the tokens after it: the padding mask cannot change a reward. Without it
                # (all ones) SDPA takes its causal kernel instead of a (batch, length, length) mask per layer.
                mask = torch.ones_like(ids)
                rows = torch.tensor([r for r, i in enumerate(batch) for _ in encoded[i][1]], device=self.device)
                cols = torch.tensor([p for i in batch for p in encoded[i][1]], device=self.device)
                with torch.inference_mode():
                    logits = tag_logits(self.model, ids, mask, rows, cols, fast=self._fast).float()
                rewards = (logits[:, self.yes_id] - logits[:, self.no_id]).tolist()
                for i in batch:
                    k = len(encoded[i][1])
                    out[i], rewards = rewards[:k], rewards[k:]
        finally:
            self.model.train(was_training)
        for i, r in enumerate(out):
            if not all(math.isfinite(x) for x in r):
                raise ValueError(f"solution {i}: the model gave a non-finite reward {r} (NaN/inf: float16 overflow "
                                 f"or broken weights?)")
        return out

    def _prompt_for(self, problem: str | None, optional: bool = True) -> str:
        if not (isinstance(problem, str) or optional and problem is None):  # format() would print any object
            raise ValueError(f"problem: must be a str{' or None' if optional else ''}, got {type(problem).__name__}")
        return (problem if isinstance(problem, _ProblemInText) else "" if problem is None  # marker: a text's steps
                else self.config.prompt_template.format(problem=problem))

    def get_reward_for_problem_solution(self, problem: str, solution: str) -> float:
        """The reward of ``solution`` to a bare ``problem``, which ``prompt_template`` turns into the prompt."""
        return self.solution_rewards([self._prompt_for(problem, optional=False)], [solution])[0]

    # -- save and load (reference layout: the model, tokenizer and <kind>_reward_config.json in one folder)

    def save(self, path: str | os.PathLike) -> Path:
        """Written to a temporary folder that then replaces the folder ``path`` as a whole (``save_atomic``): a
        failed save leaves the previous copy whole, and no file of an earlier model (its adapter, its config) stays
        beside the new one. Only a Trainer's own outputs are kept (``atomic.TRAINER_OUTPUTS``: ``checkpoint-*``,
        ``runs``, ``README.md``, ...): the reward trainers save into their output_dir. A folder with other files (no
        ``*_reward_config.json``) is refused; one that holds a saved model is replaced whole, other files in it too."""
        def write(tmp):
            tmp = Path(tmp)  # beside path, so the adapter's relative base path is the same
            self.model.save_pretrained(tmp)
            write_portable_adapter_config(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / self.config_file).write_text(json.dumps(asdict(self.config), indent=2))
        check_config_values(self.config)  # a value set on config since, e.g. first_error_threshold, before it is kept
        return save_atomic(path, write, **SAVE_FOLDER)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, **overrides):
        """The reward model ``save`` wrote to ``path``, with its saved config; ``**overrides``, RewardModelConfig
        fields (an unknown one raises), replace saved ones: e.g. ``max_length`` (past the saved, trained one: a
        warning), ``batch_size``, ``quantization`` (None: a 4-bit one's base at full precision)."""
        path = Path(path)
        config_path = path / cls.config_file
        saved = read_saved_config(config_path, cls.__name__)
        known = {f.name for f in fields(RewardModelConfig)}
        if set(saved) - known:
            logger.warning("ignoring unknown keys %s in %s", sorted(set(saved) - known), config_path)
        try:  # the file's values, before the model is loaded
            check_config_values(config := RewardModelConfig(**{k: v for k, v in saved.items() if k in known}))
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from None
        asked = overrides.get("step_delimiter", config.step_delimiter)  # a PRM's tags go after each step so split
        if asked != config.step_delimiter and issubclass(cls, ProcessRewardModel):  # silently ruined scores
            warn_user(f"{cls.__name__}.load: step_delimiter={asked!r} is not the {config.step_delimiter!r} saved "
                      f"with the model ({config_path}): its tags go after each step as split by {asked!r}; unless "
                      "it was trained on steps split so, it scores steps it never learned")
        longer = overrides.get("max_length")  # the saved one is the training length: past it scores are untested
        if longer is not None and config.max_length is not None and longer > config.max_length:
            warn_user(f"{cls.__name__}.load: max_length={longer} is past the {config.max_length} saved with the "
                      f"model ({config_path}), the length it was trained at: it never saw longer inputs, and its "
                      "scores on them may be far off (check them against labels first)")
        # The base is loaded as asked, and the config says so (a later save must not claim a 4-bit base it lacks)
        config.quantization = quantization = overrides.pop("quantization", config.quantization)
        try:
            return cls(str(path), None, config, device=device, quantization=quantization, **overrides)
        except ValueError as err:  # e.g. a saved max_length beyond the model's context
            raise ValueError(f"loading {path}: {err}") from err


class ProcessRewardModel(GenerativeVerifier):
    """Scores every step of a solution in one forward pass (see the module docstring)."""

    config_file = "process_reward_config.json"
    default_tag = STEP_TAG

    def encode(self, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """``(input_ids, tag_positions)`` of ``prompt | step 1 | TAG | ... | step K | TAG``."""
        return self._encode_many([prompt], [list_of(steps, "steps", "step strings")])[0]

    def _split(self, solutions) -> list[list[str]]:
        out = []
        for i, sol in enumerate(list_of(solutions, "solutions", "texts or lists of steps")):
            if isinstance(sol, str):
                steps = extract_steps(sol, self.config.step_delimiter)
            elif isinstance(sol, (list, tuple)):
                steps = list(sol)
            else:
                raise ValueError(f"solution {i}: must be a str or a list of step strings, got {type(sol).__name__}")
            if not steps:
                raise ValueError(f"solution {i}: no steps (an empty list, or a text that is empty or blank)")
            for k, s in enumerate(steps):
                if not isinstance(s, str) or not s.strip():
                    raise ValueError(f"solution {i}, step {k}: a step must be a non-blank string, got {s!r}")
            out.append(steps)
        return out

    def _encode_many(self, prompts: Sequence[str], steps: Sequence[Sequence[str]], check: bool = True):
        prompts, steps = list_of(prompts, "prompts", "strings"), self._split(steps)  # a blank or non-str step too
        if len(prompts) != len(steps):
            raise ValueError(f"got {len(prompts)} prompts and {len(steps)} solutions; they must pair up")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise ValueError(f"prompt {i}: must be a str, got {type(p).__name__}")
        prompt_ids = self._tokenize(prompts)
        step_ids = iter(self._tokenize([s for ss in steps for s in ss]))
        encoded = []
        for i, (p_ids, ss) in enumerate(zip(prompt_ids, steps)):
            ids, positions = self.prefix_ids + p_ids, []
            for _ in ss:
                ids = ids + next(step_ids) + self.tag_ids
                positions.append(len(ids) - 1)  # the last token of the tag predicts Yes/No
            if check:
                self._check_length(i, len(ids))
            encoded.append((ids, positions))
        return encoded

    def score_solutions(self, prompts: Sequence[str], solutions: Sequence[str] | Sequence[Sequence[str]],
                        batch_size: int | None = None, progress: bool | None = None,
                        side: str = "") -> list[list[float]]:
        """Per-step rewards (log-odds) of each solution; a text solution is split with ``step_delimiter``. ``progress``:
        a bar (None: once scoring has taken 2 s; True: at once). ``side``: which a trainer scores (chosen, rejected),
        named in the layout and unread-text warnings."""
        encoded = self._encode_many(prompts := list_of(prompts, "prompts", "strings"), steps := self._split(solutions))
        self.warn_of_untrained_layout(prompts, steps, [ids for ids, _ in encoded], side)  # checked by _encode_many
        return self._score_encoded(encoded, batch_size, progress)

    def first_errors(self, prompts: Sequence[str], solutions, threshold: float | None = None) -> list[int]:
        """Each solution's first step whose reward is below ``threshold`` (log-odds; None: ``config``'s), or -1."""
        if (threshold := self.config.first_error_threshold if threshold is None else threshold) is None:
            raise ValueError("first_errors: no threshold; pass threshold=... (log-odds) or set config.first_error_"
                             "threshold (save keeps it), e.g. to evaluation.choose_threshold's on validation data")
        threshold = finite_number(threshold, "threshold", "first_errors")  # before scoring, not after
        return [predict_first_error(r, threshold) for r in self.score_solutions(prompts, solutions)]

    def solution_rewards(self, prompts: Sequence[str], solutions, batch_size: int | None = None,
                         progress: bool | None = None) -> list[float]:
        """One reward per solution: its step rewards aggregated by ``config.aggregation``."""
        return [self.aggregate(r) for r in self.score_solutions(prompts, solutions, batch_size, progress)]

    def aggregate(self, step_rewards: Sequence[float], strategy: str | Callable | None = None) -> float:
        """A solution's reward from its step rewards by ``strategy`` (None: ``config.aggregation``): a name of
        ``losses.aggregate_rewards`` or, as ``bestofn.aggregate`` takes, a function of the list -> a finite number."""
        from .losses import aggregate_steps, check_aggregation  # not at import: losses imports torch
        who = f"{type(self).__name__}.aggregate"
        strategy = check_aggregation(self.config.aggregation if strategy is None else strategy, who, "strategy")
        rewards = [finite_number(r, f"step {k}: the reward", who)
                   for k, r in enumerate(list_of(step_rewards, "step_rewards", "numbers"))]
        return aggregate_steps(rewards, strategy, "the step rewards", who)

    def get_rewards_for_steps(self, steps: Sequence[str], problem: str | None = None) -> list[float]:
        """Reward of each step, in context of the problem (formatted by ``prompt_template``) and earlier steps.
        ``problem`` None: the steps alone, with no prompt, a layout a PRM trained with prompts did not see (its rewards
        far off: it warns); a text's steps, the problem in the first, go through ``extract_and_aggregate_steps``."""
        if isinstance(steps, str):
            raise ValueError("get_rewards_for_steps: `steps` must be a list of step strings, got one str; split a "
                             "text with extract_steps(text), or score it whole with get_reward_for_text(text)")
        return self.score_solutions([self._prompt_for(problem)], [list_of(steps, "steps", "step strings")])[0]

    def extract_and_aggregate_steps(self, text: str) -> tuple[list[str], list[float], float]:
        """``(steps, step_rewards, aggregated_reward)`` of a text, which must hold the problem: it is read with no
        prompt, the text before the first delimiter opening step 1 (steps alone read so score far off, unwarned)."""
        if not isinstance(text, str):
            raise ValueError(f"text: must be a str, got {type(text).__name__}")
        steps = self._split([text])[0]
        rewards = self.get_rewards_for_steps(steps, PROBLEM_IN_TEXT)
        return steps, rewards, self.aggregate(rewards)


class OutcomeRewardModel(GenerativeVerifier):
    """One tag after the whole solution: ``prompt | solution | TAG``."""

    config_file = "outcome_reward_config.json"
    default_tag = OUTCOME_TAG

    def encode(self, prompt: str, solution: str) -> tuple[list[int], list[int]]:
        return self._encode_many([prompt], [solution])[0]

    def _encode_many(self, prompts: Sequence[str], solutions: Sequence[str], check: bool = True):
        prompts, solutions = list_of(prompts, "prompts", "strings"), list_of(solutions, "solutions", "strings")
        if len(prompts) != len(solutions):
            raise ValueError(f"got {len(prompts)} prompts and {len(solutions)} solutions; they must pair up")
        for i, (p, s) in enumerate(zip(prompts, solutions)):
            if not isinstance(p, str):
                raise ValueError(f"prompt {i}: must be a str, got {type(p).__name__}")
            if not isinstance(s, str) or not s.strip():
                raise ValueError(f"solution {i}: must be a non-blank string, got {s!r}")
        encoded = []
        for i, (p_ids, s_ids) in enumerate(zip(self._tokenize(prompts), self._tokenize(solutions))):
            ids = self.prefix_ids + p_ids + s_ids + self.tag_ids
            if check:
                self._check_length(i, len(ids))
            encoded.append((ids, [len(ids) - 1]))
        return encoded

    def score_solutions(self, prompts: Sequence[str], solutions: Sequence[str] | Sequence[Sequence[str]],
                        batch_size: int | None = None, progress: bool | None = None, side: str = "") -> list[float]:
        """One reward (log-odds) per solution. A list of steps is read as their text, joined: steps are pieces of
        the text (``"".join(extract_steps(text)) == text``), so an ORM scores what a PRM beside it scores."""
        solutions = ["".join(s) if isinstance(s, (list, tuple)) and s and all(isinstance(x, str) for x in s) else s
                     for s in list_of(solutions, "solutions", "texts or lists of steps")]
        encoded = self._encode_many(prompts := list_of(prompts, "prompts", "strings"), solutions)
        self.warn_of_untrained_layout(prompts, [[s] for s in solutions], [ids for ids, _ in encoded], side)
        return [r[0] for r in self._score_encoded(encoded, batch_size, progress)]

    solution_rewards = score_solutions
