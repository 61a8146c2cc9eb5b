"""GSM8K for the GPU profiles: prompts for an instruct model, final-answer extraction and checking.

The toy world has a checker for every step; GSM8K (Cobbe et al. 2021, arXiv:2110.14168) has only the
final answer. Step labels there come from Monte-Carlo completions (``labelling.mc_step_labels``,
Math-Shepherd) with ``is_correct`` below as the answer check.

``GSM8KProblem`` implements the problem contract of ``task_problems.py`` (``prompt`` is always the chat-formatted
question alone; ``is_correct``, ``final_answer``, ``gold_answer``, ``step_labels`` -> None: no step checker).
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Dataset

from ..checks import list_of, positive_int, warn_user
# a bad record: an error naming its file, line and field
from ..data import BadField, check_records, read_json_records, records_of, text_value
from ..evaluation import first_error_index
from ..steps import DEFAULT_DELIMITER, extract_steps
from . import labelling
from .task_problems import Verdict, answer_check, check_solution_lists, prompts_of

# The instruction makes an instruct model write steps the default delimiter "\n\nStep" can split.
INSTRUCTION = ("Solve the math problem step by step. Start each step on a new paragraph with 'Step k:' "
               "(Step 1:, Step 2:, ...) and end with a last paragraph 'Answer: <number>'.")
HUB_NAME = "openai/gsm8k"
# Under this share of samples in two or more steps, the policy writes another layout. A GSM8K problem takes 2 to 8
# steps (Cobbe et al. 2021; each of the 200 shipped references has 2 or more lines), so a policy that writes the
# paragraphs INSTRUCTION asks for splits most samples (the smoke profile's toy base, whose short solutions often stop
# after one step, 72-91% per split), and one that writes "### Step 1:" or "**Step 1:**" splits almost none: half
# lies between the two with room to spare for a weak policy, and still catches the silent collapse
MIN_MULTI_STEP_SHARE = 0.5

_NUMBER = re.compile(r"-?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")  # -$5 and $.50 too
_PLAIN = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")  # what float() may read: not nan, inf or 1_000
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # thousands as GSM8K writes them: 1,000 and 1,234,567
_FRACTION = re.compile(rf"({_NUMBER.pattern})(?:\s*/\s*({_NUMBER.pattern}))?")  # 3/4 is 0.75, not 3
_ASIDE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")  # (she sells 16 - 3 - 4 = 9 eggs): not the answer


def format_prompt(question: str, tokenizer) -> str:
    """The chat-formatted prompt for ``question`` (plain text when the tokenizer has no chat template)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("format_prompt: the question is empty")
    messages = [{"role": "user", "content": f"{INSTRUCTION}\n\n{question.strip()}"}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{INSTRUCTION}\n\nProblem: {question.strip()}\n"


def _normal(text: str) -> str:
    return text.replace("{,}", ",").replace("\u2212", "-")  # LaTeX thousands (1{,}000), the Unicode minus


def _to_float(text: str) -> float | None:
    """A number as graded (``"18"``, ``"$18"``, ``"1,000"``, ``"-12"``); None for anything else, a comma that
    does not group thousands too (``"2,5"``: 2.5 written the European way, or a list; not 25)."""
    plain = _normal(text).replace("$", "").strip().rstrip(".").rstrip(",")  # "5," of "5, 6": a list's comma
    if "," in plain and not _GROUPED.fullmatch(plain):
        return None
    plain = plain.replace(",", "")
    return float(plain) if _PLAIN.fullmatch(plain) else None


def _values(text: str) -> list[float | None]:
    values = []
    for number, denominator in _FRACTION.findall(text):
        x, y = _to_float(number), _to_float(denominator) if denominator else None
        values.append(x if not denominator else x / y if x is not None and y else None)
    return values


def extract_answer(text: str) -> float | None:
    """The number after the last ``Answer:`` (or ``####``), else the last number in the text; None if none. On
    the answer line, asides in brackets are left out (``Answer: 18 (6 × 3 = 18)`` is 18), an equation's result
    counts (``Answer: 5 + 3 = 8`` is 8) unless a number stands alone before it (``Answer: $18 = 9 × $2`` is 18),
    and a fraction is its value (``3/4`` is 0.75)."""
    if not isinstance(text, str):  # None was "'NoneType' object has no attribute 'replace'"
        raise ValueError(f"extract_answer: text must be a string (a solution), got {type(text).__name__}")
    text = _normal(text)
    for marker in ("Answer:", "####"):
        if marker in text:
            after = text.rsplit(marker, 1)[1]
            line = _ASIDE.sub(" ", after.strip().split("\n", 1)[0])
            equation = "=" in line and not _FRACTION.fullmatch(line.split("=", 1)[0].strip())
            found = (_values(line.rsplit("=", 1)[1]) if equation else []) or _values(line) or _values(after)
            if found:
                return found[0]
    found = _values(text)
    return found[-1] if found else None


def answer_matches(solution: str, answer: str | float) -> bool:
    """Whether the solution's final answer equals the reference (GSM8K answers are integers)."""
    got, want = extract_answer(solution), _to_float(str(answer))
    return got is not None and want is not None and abs(got - want) < 1e-6


@dataclass(frozen=True)
class GSM8KProblem:
    """A GSM8K problem: ``prompt`` (the chat-formatted question, a ``str``; never the answer), ``answer``
    (the reference final answer) and, for cost estimates only, the reference ``solution`` (never shown to a
    model). Grades like a toy ``Problem`` (the problem contract of ``task_problems.py``), with no step checker."""

    question: str
    answer: str
    prompt: str
    solution: str = field(default="", repr=False)

    def __post_init__(self):
        if not isinstance(self.prompt, str):
            raise ValueError(f"GSM8KProblem: prompt must be a str, got {type(self.prompt).__name__}")
        if _to_float(str(self.answer)) is None:  # "eighteen" graded every solution wrong, silently
            raise ValueError(f"GSM8KProblem: the reference answer {self.answer!r:.40} is not a number as graded "
                             "('18', '$18', '1,000')")

    def is_correct(self, solution: str) -> bool:
        return answer_matches(solution, self.answer)

    def final_answer(self, solution: str) -> float | None:
        return extract_answer(solution)

    def gold_answer(self) -> float:
        """The reference as a number, read as ``is_correct`` reads it (``"$18"``, ``"1,000"``)."""
        value = _to_float(str(self.answer))
        if value is None:
            raise ValueError(f"GSM8KProblem: the reference answer {self.answer!r:.40} is not a number")
        return value

    def step_labels(self, solution: str) -> None:
        """No step checker on GSM8K: step labels come from Monte-Carlo rollouts (``mc_verdicts``)."""
        return None

    def verdict(self, solution: str) -> None:
        return None

    @property
    def reference_lines(self) -> list[str]:
        """The reference solution's lines (its steps), without the ``####`` line; none when unknown."""
        return [ln for ln in self.solution.splitlines() if ln.strip() and not ln.startswith("####")]

    @property
    def reference_steps(self) -> int:
        return len(self.reference_lines)


def warn_of_one_step_samples(solutions, who: str = "warn_of_one_step_samples", *, steps=None) -> float:
    """The share of the non-blank ``solutions`` (sampled texts) that split into two or more steps at the kit's
    delimiter, with a warning naming it, an example's opening and what to do when it is under
    ``MIN_MULTI_STEP_SHARE``: a policy that writes its steps in another layout (a Qwen2.5 instruct model may write
    "### Step 1:" or "**Step 1:**") gives one step per sample, and Monte-Carlo labels, the PRM and Stepwise DPO then
    work per solution, not per step, without a word. The splitter is left as it is (``steps.extract_steps``).
    ``steps``: the solutions' steps (``extract_steps``'s, one list per solution), where the caller has them."""
    solutions = list_of(solutions, f"{who}: solutions", "sampled texts")  # one str: its characters as samples
    for j, s in enumerate(solutions):
        if not isinstance(s, str):
            raise ValueError(f"{who}: solution {j} must be a str (a sampled text), got {type(s).__name__}")
    steps = [extract_steps(s) for s in solutions] if steps is None else list_of(steps, f"{who}: steps", "step lists")
    if len(steps) != len(solutions):  # zip would judge the shorter list's samples only
        raise ValueError(f"{who}: steps must hold one step list per solution: {len(steps)} for {len(solutions)}")
    texts = [s for s in solutions if s.strip()]
    one_step = [s for s, st in zip(solutions, steps) if s.strip() and len(st) < 2]
    share = 1 - len(one_step) / len(texts) if texts else 1.0
    if share < MIN_MULTI_STEP_SHARE:
        warn_user(
            f"{who}: only {len(texts) - len(one_step)} of {len(texts)} samples ({share:.0%}) split into two or more "
            f"steps at {DEFAULT_DELIMITER!r}, under {MIN_MULTI_STEP_SHARE:.0%} (a GSM8K problem takes 2 to 8 steps); "
            f"e.g. a sample of one step opens {one_step[0][:80]!r}. A policy that writes its steps in another layout "
            "than the paragraphs opening 'Step k:' that gsm8k.INSTRUCTION asks for ('### Step 1:', '**Step 1:**') "
            "writes samples of one step: their Monte-Carlo labels, the PRM and Stepwise DPO see them whole, as "
            "outcome labels would. Then use a policy that writes that layout (another instruct model: "
            "Profile.model_name), or rewrite the samples' step openings to it before labelling them (re.sub: "
            "'\\n\\n### Step 2:' to '\\n\\nStep 2:')")
    return share


def reference_solution(problem: GSM8KProblem) -> str:
    """GSM8K's reference solution written the way ``INSTRUCTION`` asks a policy to write one (``Step k:``
    paragraphs, then ``Answer: <number>``), its calculator notes (``<<48/2=24>>``) left out: what a right solution
    looks like to the kit's step splitter and grader, for notebook 01's example (``smoke.equation_steps`` keeps
    the calculator notes' equations alone: the smoke base's short training text). ValueError when the problem has
    no reference solution (``GSM8KProblem.solution`` is for examples and cost estimates: never shown to a model)."""
    if not isinstance(problem, GSM8KProblem):  # a JSONL row or a question text: an AttributeError
        raise ValueError(f"reference_solution: problem must be a gsm8k.GSM8KProblem (load_problems makes them), got "
                         f"{type(problem).__name__}")
    lines = [re.sub(r"<<[^<>]*>>", "", ln).strip() for ln in problem.reference_lines]
    if not lines:
        raise ValueError(f"reference_solution: the problem {problem.question[:60]!r} has no reference solution")
    return "\n\n".join(f"Step {k}: {line}" for k, line in enumerate(lines, 1)) + f"\n\nAnswer: {problem.answer}"


def split_answer(record) -> tuple[str, str]:
    """A GSM8K record's reference lines and final answer (after ``####``); ``BadField`` naming the field when the
    question or answer is not a non-empty string, or the final answer not a number as graded (``"18"``, ``"$18"``,
    ``"1,000"``; ``"eighteen"`` would grade every solution wrong, silently)."""
    text_value(record, "question")
    answer = text_value(record, "answer")
    if "####" not in answer:
        raise BadField("answer", f"has no final '#### <answer>' line: {answer[-80:]!r}")
    solution, final = (part.strip() for part in answer.rsplit("####", 1))
    if _to_float(final) is None:
        raise BadField("answer", f"the final answer after '####' must be a number, got {final!r:.40}")
    return solution, final


def _problem(row: dict, tokenizer) -> GSM8KProblem:
    try:
        solution, final = split_answer(row)
    except BadField as err:
        raise ValueError(f"GSM8K row: {err}") from None
    return GSM8KProblem(row["question"], final, format_prompt(row["question"], tokenizer), solution)


def _checked_row(record) -> list[dict]:
    split_answer(record)
    return [dict(record)]


def _check_sizes(n_train, n_eval, who: str) -> None:
    """Both ints >= 0: a slice [:-1] would quietly mean "all but one", True be 1 and 2.0 a TypeError."""
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in (n_train, n_eval)):
        raise ValueError(f"{who}: n_train and n_eval must be ints >= 0, got {n_train!r} and {n_eval!r}")


def carve(rows, n_train: int, n_eval: int, seed: int = 0) -> dict:
    """Disjoint ``{"train", "validation", "test"}`` slices of one pool of rows (e.g. the 200 shipped test
    problems). After a seeded shuffle the pool is cut into fixed regions, the first fifth for test, the next fifth
    for validation and the rest for train, and each split takes the first problems of its region: a problem is in
    the same split whatever sizes are asked. Notebooks 04-06 draw the test problems again with ``n_train=0`` and
    other sizes, and notebook 04 draws the train problems again at the sizes notebook 01 kept; with regions that
    moved with the sizes, they got validation or train problems."""
    _check_sizes(n_train, n_eval, "carve")
    positive_int(seed, "seed", "carve", minimum=0)  # True shuffled as 1; 1.5 or None reached datasets' shuffle
    rows = list(rows)
    region = -(-len(rows) // 5)  # a fifth, rounded up: a pool of 4 still has a test and a validation problem
    if n_eval > region or n_train > len(rows) - 2 * region:
        raise ValueError(f"carve: the pool has {len(rows)} problems: at most {region} test, {region} validation and "
                         f"{len(rows) - 2 * region} train; asked for {n_eval}, {n_eval} and {n_train}")
    order = Dataset.from_dict({"i": list(range(len(rows)))}).shuffle(seed=seed)["i"]
    picked = [rows[i] for i in order]
    return {"train": picked[2 * region:2 * region + n_train], "validation": picked[region:region + n_eval],
            "test": picked[:n_eval]}


VALIDATION_NAMES = ("validation", "valid", "val", "dev")  # a split _local_rows does not read: held out instead


def _local_rows(path: Path) -> dict[str, list[dict]]:
    """``{"train"?, "test"?}`` rows of a local GSM8K copy: a ``.jsonl`` file (one pool) or a folder with
    ``train.jsonl`` and/or ``test.jsonl``."""
    files = {"pool": path} if path.is_file() else {s: path / f"{s}.jsonl" for s in ("train", "test")
                                                  if (path / f"{s}.jsonl").exists()}
    if not files:
        raise FileNotFoundError(f"load_problems: {path} is neither a .jsonl file nor a folder with "
                                "train.jsonl/test.jsonl")
    if path.is_dir() and (unread := sorted(p.name for p in path.glob("*.jsonl") if p.stem in VALIDATION_NAMES)):
        warn_user(f"load_problems: {path}/{unread[0]} is not read: the validation problems are held out of "
                  f"{'train.jsonl' if 'train' in files else 'test.jsonl, as are the train problems (carve)'}")
    # checked before shuffling, so an error names the record's line in the file
    return {s: check_records(read_json_records(f), _checked_row, "load_problems") for s, f in files.items()}


def load_hub_split(name: str, split: str):
    """One split (``"train"``, ``"test"``) of GSM8K's ``main`` set from the Hub (``name``: ``openai/gsm8k`` or a
    copy), read from the datasets cache when it is there. Out of reach, datasets' own ``ConnectionError``
    ("Couldn't reach ...") becomes one that says what to do: a ``FileNotFoundError`` when the Hub is offline (the
    cache holds no copy), else a ``ConnectionError``."""
    try:  # datasets.load_dataset, read at the call: tests put an unreachable Hub in its place
        return datasets.load_dataset(name, "main", split=split)
    except ConnectionError as err:
        local = ("in your own code give the profile a local copy (dataclasses.replace(get_profile(...), dataset="
                 "FOLDER), Profile.dataset: a folder with train.jsonl and test.jsonl, or one .jsonl file, e.g. "
                 "data/gsm8k, the 200 shipped test problems); the notebooks take a profile's name only")
        if datasets.config.HF_HUB_OFFLINE:
            raise FileNotFoundError(
                f"load_problems: GSM8K {name!r} ({split}) is not in the datasets cache, and the Hub is offline "
                "(HF_HUB_OFFLINE=1 or HF_DATASETS_OFFLINE=1): go online for the first run (set both to 0, or unset "
                f"them: it is cached then), or {local}") from err
        raise ConnectionError(f"load_problems: GSM8K {name!r} ({split}): the Hub could not be reached ({err}): check "
                              f"the network, or {local}") from err


def load_problems(tokenizer, n_train: int, n_eval: int, seed: int = 0, name: str = HUB_NAME) -> dict:
    """``{"train", "validation", "test"}`` lists of problems.

    ``name``: the Hub's GSM8K (default; validation = a held-out slice of its train split, disjoint from the
    training problems), or a local path: a folder with ``train.jsonl`` and ``test.jsonl`` (used like the Hub's
    splits), or one ``.jsonl`` file / a folder with only ``test.jsonl`` (e.g. ``data/gsm8k``: disjoint
    train/validation/test carved from it, ``carve``).
    """
    _check_sizes(n_train, n_eval, "load_problems")
    positive_int(seed, "seed", "load_problems", minimum=0)  # before the download and the checks of every row
    path = Path(name)
    if path.exists():
        local = _local_rows(path)
        if "train" in local and "test" in local:
            train, test = local["train"], local["test"]
        else:
            parts = carve(next(iter(local.values())), n_train, n_eval, seed)
            return {split: [_problem(r, tokenizer) for r in rows] for split, rows in parts.items()}
        train, test = Dataset.from_list(train).shuffle(seed=seed), Dataset.from_list(test).shuffle(seed=seed)
    else:
        train, test = (load_hub_split(name, split) for split in ("train", "test"))
        for split, rows in (("train", train), ("test", test)):  # before shuffling, as a local copy: a bad row said
            check_records(records_of(rows), _checked_row, f"load_problems: {name} {split}")  # "GSM8K row", not which
        train, test = train.shuffle(seed=seed), test.shuffle(seed=seed)
    if n_train + n_eval > len(train) or n_eval > len(test):
        raise ValueError(f"load_problems: GSM8K has {len(train)} train / {len(test)} test problems; asked for "
                         f"{n_train} + {n_eval} / {n_eval}")
    return {"train": [_problem(r, tokenizer) for r in train.select(range(n_train))],
            "validation": [_problem(r, tokenizer) for r in train.select(range(n_train, n_train + n_eval))],
            "test": [_problem(r, tokenizer) for r in test.select(range(n_eval))]}


def mc_verdicts(policy, tokenizer, problems, solutions, n_rollouts: int = 8, seed: int = 0, *,
                batch_size: int = 16, max_new_tokens: int = 512, temperature: float = 1.0,
                rollout_correct: bool = False, progress: bool = True) -> list:
    """Per-problem lists of ``Verdict``, one per solution, whose step labels are Monte-Carlo hard estimates
    (Math-Shepherd, Wang et al. 2024): step k is good if a completion after it reaches the answer. A blank solution
    gets the verdict the toy world's checker gives one (no steps, a wrong answer), so that verdicts and solutions
    zip as they do on the toy task.

    ``batch_size`` and ``max_new_tokens`` go to the rollouts (pass the profile's: a rollout cut short never
    reaches an answer). A solution with the right final answer needs no rollouts unless ``rollout_correct``:
    it is itself a completion that reaches the answer after each of its steps, so every hard label is True.
    Before any rollout, a warning when most samples are one step (``warn_of_one_step_samples``: another layout).
    """
    check_solution_lists(problems, solutions, "mc_verdicts")
    prompts_of(problems, "mc_verdicts")  # a prompt str is no problem (no is_correct)
    for i, sols in enumerate(solutions):  # a None (a failed sample) was an AttributeError on .strip()
        for j, s in enumerate(sols):
            if not isinstance(s, str):
                raise ValueError(f"mc_verdicts: problem {i}, solution {j}: must be a str (a sampled text), got "
                                 f"{type(s).__name__}")

    flat = [(i, k, s) for i, sols in enumerate(solutions) for k, s in enumerate(sols) if s.strip()]
    steps = [extract_steps(s) for _, _, s in flat]
    warn_of_one_step_samples([s for _, _, s in flat], "mc_verdicts", steps=steps)  # before the rollouts it would spend

    def graded(j: int, text: str, what: str = "") -> bool:  # a 1 is refused here, naming the problem
        i, k, _ = flat[j]
        return answer_check(problems[i].is_correct(text), f"mc_verdicts: problem {i}, solution {k}{what}")

    right = [graded(j, s) for j, (_, _, s) in enumerate(flat)]
    todo = [j for j in range(len(flat)) if rollout_correct or not right[j]]
    mc = labelling.mc_step_labels(policy, tokenizer, [problems[flat[j][0]].prompt for j in todo],
                                  [steps[j] for j in todo],
                                  lambda k, text: graded(todo[k], text, ", a rollout after one of its steps"),
                                  n=n_rollouts, seed=seed, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  temperature=temperature, progress=progress) if todo else {"labels": []}
    labels = {j: list(lab) for j, lab in zip(todo, mc["labels"])}
    out = [[Verdict([], -1, False) for _ in sols] for sols in solutions]  # blanks keep this one
    for j, ((i, k, _), st) in enumerate(zip(flat, steps)):
        lab = labels.get(j, [True] * len(st))
        out[i][k] = Verdict(lab, first_error_index(lab), right[j], steps=st)
    return out
