"""Stand-ins the on-policy tests share (tests/test_onpolicy.py, tests/test_uncorrected_unlikelihood.py,
tests/test_round_one_states.py): a PRM whose rewards come from the toy checker, a resampler of a wrong step, one toy
problem with a right, a wrong and a lucky solution, rows and uncorrected states with an error at step index 2, fast
training arguments and a finished run's metrics."""

import random

from stepdpo_lite.steps import extract_steps
from stepdpo_lite.tutorial import toyworld

FAST = dict(per_device_train_batch_size=4, learning_rate=1e-3, max_steps=2, max_length=256, report_to="none",
            use_cpu=True, save_strategy="no", disable_tqdm=True, logging_steps=1, gradient_checkpointing=False)
R = 4.0  # the stub PRM's log-odds: +R for a step it accepts, -R for one it rejects
THRESHOLD = 0.0
# a run's metrics.json once notebooks 01 and 02 ran through (the tiny profile's counts): what the script reads
RUN_METRICS = {"data": {"n_problems": {"train": 600, "validation": 150, "test": 150}},
               "prm": {"first_error_threshold": -1.5}}


class StubPRM:
    """Log-odds +R / -R from the toy checker's step labels; ``blind`` accepts every step (a PRM that misses)."""

    def __init__(self, blind=False):
        self.blind, self.calls = blind, 0
        self.config = type("Config", (), {"step_delimiter": "\n\nStep"})()

    def score_solutions(self, prompts, solutions, batch_size=None, progress=False):
        self.calls += 1
        out = []
        for prompt, sol in zip(prompts, solutions):
            text = sol if isinstance(sol, str) else "".join(sol)
            labels = toyworld.check(toyworld.parse_prompt(prompt), text).step_labels
            out.append([R if (ok or self.blind) else -R for ok in labels])
        return out


def problem_and_texts():
    p = toyworld.make_problems(1, seed=3, min_ops=3, max_ops=3)[0]
    gold = p.gold_solution
    bad = toyworld.corrupt_solution(p, 1, "arithmetic", random.Random(0))  # wrong from step 2 on: wrong answer
    v = p.values
    c1 = v[1] + 1  # step 1 wrong, step 2 goes on from the right value: a right answer after a wrong step
    lucky = toyworld.format_solution([(v[0], p.ops[0][0], p.ops[0][1], c1), (v[1], p.ops[1][0], p.ops[1][1], v[2]),
                                      (v[2], p.ops[2][0], p.ops[2][1], v[3])])
    assert p.is_correct(gold) and not p.is_correct(bad) and p.is_correct(lucky)
    assert toyworld.check(p, lucky).first_error == 0 and toyworld.check(p, bad).first_error == 1
    return p, gold, bad, lucky


class StubSampler:
    """``sample_fn`` stand-in: the first attempt repeats the wrong step, later ones return the right continuation."""

    def __init__(self, p, gold, bad):
        self.p, self.gold, self.bad, self.calls = p, gold, bad, []

    def __call__(self, model, tokenizer, contexts, n, **kw):
        self.calls.append((model, list(contexts), n))
        out = []
        for ctx in contexts:
            prefix = ctx[len(self.p.prompt):]
            assert self.gold.startswith(prefix) and self.bad.startswith(prefix)
            wrong, right = self.bad[len(prefix):], self.gold[len(prefix):]
            out.append([wrong] * n if len(self.calls) == 1 else [wrong] * (n - 1) + [right])
        return out


def rows_and_states(n=4, wrong=True):
    """Rows with an error at step 2, and one state a row at that step: the wrong step, or the right one (which the
    shipped base writes often, so its unlikelihood is far from 0)."""
    rows, states = [], []
    for i, problem in enumerate(toyworld.make_problems(n, seed=1, min_ops=3, max_ops=4)):
        rejected = toyworld.corrupt_solution(problem, 2, "arithmetic", random.Random(i))
        steps = extract_steps(rejected)
        rows.append(dict(prompt=problem.prompt, chosen=problem.gold_solution, rejected=rejected,
                         chosen_step_labels=[1.0] * len(extract_steps(problem.gold_solution)),
                         rejected_step_labels=[1.0, 1.0, 0.0] + [1.0] * (len(steps) - 3), prm_first_error=2))
        step = steps[2] if wrong else extract_steps(problem.gold_solution)[2]
        states.append(dict(problem_index=i, prompt=problem.prompt, prefix="".join(steps[:2]), step=step, step_index=2))
    return rows, states
