"""Where does the unlikelihood of an uncorrected wrong step send the probability it takes?

``--uncorrected-weight`` (``stepdpo_lite/tutorial/uncorrected_unlikelihood.py``) pushes down the wrong step at each
state where the policy wrote no step the PRM accepts in all its tries. It ended level with RFT (docs/benchmarks.md,
"The wrong steps no correction was found for"), and the reason first given was an argument: at a logit the term takes
from the wrong token and gives to every other token in proportion to its probability, so where the policy could not
correct the step, the right token's share would be small. This script measures it (docs/benchmarks.md, "Where the
pushed-down probability goes": it does not hold).

It runs round 1 of notebook 04's tiny output-layer protocol as ``scripts/onpolicy_rounds.py`` runs it with the
options of docs/benchmarks.md's command (``--protocol output_layer``, 96 problems, 3 samples, 10 steps, Stepwise DPO
sampling first): the same problems, samples, pairs, uncorrected states, steps and seed. Then it trains Stepwise DPO
twice from the start policy on the same pairs: without the term and with it. At each uncorrected state whose prefix
is the gold solution's (so that the checker's right step follows it), at the first token where the wrong step and
the right one differ (mostly the slipped digit), for the start policy and both trained ones:

- ``right``, ``wrong`` and ``rest``: the mean probability of the right token, of the wrong one and of all others;
  ``right_on_top``: how often the right token is the most likely;
- ``wrong_step``: the whole wrong step's mean probability (what the term pushes down); ``right_step``: the right
  step's; ``right_rest``: the whole right rest of the solution's (a correction is accepted only as a whole solution);
- ``to_right``: of the probability the term took from the wrong token (without the term minus with it), the share the
  right token gained.

    python scripts/uncorrected_mass.py --runs-dir runs --seed 0      # about a minute on 2 CPU cores

Needs notebook 01's run and notebook 02's PRM, as ``onpolicy_rounds.py`` does. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.models import quiet_deprecated_checkpointing_read  # noqa: E402
from stepdpo_lite.rewards import ProcessRewardModel  # noqa: E402
from stepdpo_lite.steps import extract_steps  # noqa: E402
from stepdpo_lite.tutorial import onpolicy, reward_reports, runs, tasks  # noqa: E402
from stepdpo_lite.tutorial.profiles import get_profile  # noqa: E402

SAMPLER = "stepwise_dpo"  # onpolicy_rounds' round 1 samples from its first method's copy (shared_start)


def first_differences(tokenizer, problems, states) -> tuple[list[dict], int]:
    """Per uncorrected state (``step_pairs(uncorrected=...)``) whose prefix is its problem's gold solution up to the
    step: the wrong step's ids (prompt + prefix + step), how many are prompt + prefix, the position of the first
    token where it and the gold continuation differ, and the right and wrong token there. Returns them and how many
    states were left out (a wrong prefix the checker would not continue, or a wrong step the gold one extends)."""
    cases, left_out = [], 0
    for n in states:
        gold = problems[n["problem_index"]].gold_solution
        if not gold.startswith(n["prefix"]):
            left_out += 1
            continue
        context = tokenizer(n["prompt"] + n["prefix"], add_special_tokens=False)["input_ids"]
        wrong = tokenizer(n["prompt"] + n["prefix"] + n["step"], add_special_tokens=False)["input_ids"]
        right = tokenizer(n["prompt"] + gold, add_special_tokens=False)["input_ids"]
        at = next((i for i in range(len(context), min(len(wrong), len(right))) if wrong[i] != right[i]), None)
        if at is None:
            left_out += 1
            continue
        gold_step = extract_steps(gold)[n["step_index"]]  # the right step k (its text is gold's, after the prefix)
        step_end = len(tokenizer(n["prompt"] + n["prefix"] + gold_step, add_special_tokens=False)["input_ids"])
        cases.append(dict(ids=wrong, context=len(context), at=at, right=right[at], wrong=wrong[at], right_ids=right,
                          right_step_end=step_end))
    return cases, left_out


@torch.no_grad()
def mass(model, cases: list[dict]) -> dict:
    """The figures of the module docstring for ``model`` at ``cases`` (``first_differences``), means over them, and
    each case's probabilities of the right and the wrong token (``per_case``)."""
    model.eval()
    device = next(model.parameters()).device
    per_case = []
    for c in cases:
        logp, right_logp = (torch.log_softmax(model(torch.tensor([ids], device=device)).logits[0].float(), -1)
                            for ids in (c["ids"], c["right_ids"]))
        at = logp[c["at"] - 1]  # the logits before a token predict it
        wrong_step, right_step, right_rest = (  # each token's log-prob from the one before it, summed over a span
            float(lp[torch.arange(c["context"] - 1, end - 1), torch.tensor(ids[c["context"]:end])].sum().exp())
            for lp, ids, end in ((logp, c["ids"], len(c["ids"])), (right_logp, c["right_ids"], c["right_step_end"]),
                                 (right_logp, c["right_ids"], len(c["right_ids"]))))
        per_case.append(dict(right=at[c["right"]].exp().item(), wrong=at[c["wrong"]].exp().item(),
                             right_on_top=int(at.argmax()) == c["right"], wrong_step=wrong_step,
                             right_step=right_step, right_rest=right_rest))
    mean = {k: sum(float(p[k]) for p in per_case) / max(len(per_case), 1) for k in per_case[0]} if per_case else {}
    return {**mean, "rest": 1 - mean["right"] - mean["wrong"] if per_case else None, "per_case": per_case}


def round_one(runs_dir, *, problems_per_round: int, samples: int, seed: int, error) -> dict:
    """Round 1 of ``onpolicy_rounds.py``'s tiny output-layer protocol, up to its training: the start policy (Stepwise
    DPO's copy, which samples), its tokenizer, the round's problems, its pairs (``rows``) and what building them
    counted (``info``), and the uncorrected ``states``; a missing run is ``error``'s (argparse's) message."""
    profile = get_profile("tiny")
    run = Path(runs_dir) / "tiny"
    try:
        metrics = runs.read_metrics(runs.require(run, "01_data_prep"))
        prm_dir = runs.require(run / "prm", "02_process_reward_model")
        threshold = reward_reports.prm_threshold(prm_dir, run)
        n_train, n_eval = onpolicy.recorded_counts(metrics)
    except (ValueError, FileNotFoundError) as err:
        error(f"--runs-dir: {err}")
    prm = ProcessRewardModel.load(prm_dir, device=profile.device)
    start, tokenizer = onpolicy.start_policy(profile, seed=seed)
    splits = onpolicy.recorded_splits(tasks.get_task(profile), metrics, seed=seed, tokenizer=tokenizer,
                                      n_train=n_train, n_eval=n_eval)
    problems = onpolicy.round_problems(splits["train"], problems_per_round, 1)
    rs = onpolicy.RoundSettings(samples_per_problem=samples, max_new_tokens=profile.max_new_tokens,
                                batch_size=profile.sample_batch_size, threshold=threshold)
    drawn = onpolicy.sample_round({SAMPLER: start}, tokenizer, prm, problems, rs, seed=seed + 1000, shared_start=True)
    states = []
    rows, info = onpolicy.build_round_pairs({SAMPLER: start}, tokenizer, prm, problems, drawn, rs, seed=seed + 1000,
                                            uncorrected=states)
    return dict(profile=profile, start=start, tokenizer=tokenizer, problems=problems, rows=rows, info=info,
                states=states)


def protocol_settings(profile, steps: int, seed: int, **changes):
    """The tiny protocol's ``TrainSettings`` for round 1 at ``steps`` optimizer steps, ``changes`` applied."""
    train_args = onpolicy.training_args(profile, batch_size=onpolicy.preference_batch_size(profile),
                                        learning_rate=profile.dpo_learning_rate, max_steps=steps, beta=0.1, seed=seed)
    return onpolicy.TrainSettings(beta=0.1, **{**onpolicy.protocol("output_layer", profile), **changes},
                                  args={**train_args, "num_train_epochs": 1, "disable_tqdm": True, "logging_steps": 5})


def trained(profile, tokenizer, rows, states, settings, seed: int, tmp: str, method: str = "stepwise_dpo"):
    """A fresh copy of the start policy trained by ``method`` on the round's ``rows`` (and, with
    ``settings.uncorrected_weight``, the uncorrected ``states``), as ``onpolicy.run_round`` trains round 1."""
    model, _ = onpolicy.start_policy(profile, seed=seed)
    round_seed = seed + 1000  # run_round's seed for round 1
    settings = dataclasses.replace(settings, args=dict(settings.args, seed=round_seed, data_seed=round_seed))
    trainer = onpolicy.make_trainer(method, model, tokenizer, rows, settings, tempfile.mkdtemp(dir=tmp),
                                    ref_model=onpolicy.policy_reference(model), uncorrected=states)
    with quiet_deprecated_checkpointing_read():
        trainer.train()
    return trainer.model


def round_one_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with round 1's options (the run, its sizes, the training steps, the seed); ``parse_round_one``
    checks them."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", default=str(ROOT / "runs"),
                    help="the tutorial's runs folder: runs-dir/tiny holds notebook 01's metrics.json and notebook "
                         "02's prm (default: the repository's runs)")
    ap.add_argument("--problems-per-round", type=int, default=96, help="round 1's training problems (default: 96)")
    ap.add_argument("--samples", type=int, default=3, help="K solutions per problem (default: 3)")
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps of each training (default: 10)")
    ap.add_argument("--seed", type=int, default=0, help="seed, as onpolicy_rounds.py's (default: 0)")
    return ap


def parse_round_one(ap: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """``ap``'s arguments, round 1's checked (sizes at least 1, a seed of 0 or more) before anything is loaded."""
    args = ap.parse_args(argv)
    for name in ("problems_per_round", "samples", "steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        ap.error(f"--seed must be 0 or more, got {args.seed}")
    return args


def main(argv=None):
    ap = round_one_parser(__doc__)
    ap.add_argument("--uncorrected-weight", type=float, default=50.0, help="the term's weight (default: 50)")
    ap.add_argument("--uncorrected-gradient", default="output_layer", choices=list(onpolicy.STEP_GRADIENTS),
                    help="the term's path: the output layer only (default; the protocol's) or every layer")
    args = parse_round_one(ap, argv)
    try:  # the weight checked (TrainSettings), before a run is read
        if not args.uncorrected_weight:
            raise ValueError("uncorrected_weight must be above 0: the term is what is measured")
        protocol_settings(get_profile("tiny"), args.steps, args.seed, uncorrected_weight=args.uncorrected_weight,
                          uncorrected_gradient=args.uncorrected_gradient)
    except ValueError as err:
        ap.error(f"--uncorrected-weight: {err}")
    r = round_one(args.runs_dir, problems_per_round=args.problems_per_round, samples=args.samples, seed=args.seed,
                  error=ap.error)
    cases, left_out = first_differences(r["tokenizer"], r["problems"], r["states"])
    print(f"round 1: {len(r['rows'])} pairs; {len(r['states'])} uncorrected states of "
          f"{r['info']['step']['prefixes_tried']} tried; {len(cases)} measured ({left_out} left out: prefix not the "
          "gold one, or no differing token)", flush=True)
    if not cases:
        sys.exit("no uncorrected state to measure at: nothing to report")
    figures = {"start": mass(r["start"], cases)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, term in (("without the term", {}), ("with the term", dict(
                uncorrected_weight=args.uncorrected_weight, uncorrected_gradient=args.uncorrected_gradient))):
            settings = protocol_settings(r["profile"], args.steps, args.seed, **term)
            figures[name] = mass(trained(r["profile"], r["tokenizer"], r["rows"], r["states"], settings, args.seed,
                                         tmp), cases)
    without, with_ = figures["without the term"], figures["with the term"]
    taken = without["wrong"] - with_["wrong"]
    to_right = (with_["right"] - without["right"]) / taken if taken > 0 else None
    print(f"\n{'policy':18s} {'right':>7s} {'wrong':>7s} {'rest':>7s} {'right on top':>13s} {'wrong step':>11s} "
          f"{'right step':>11s} {'right rest':>11s}")
    for name, f in figures.items():
        print(f"{name:18s} {f['right']:7.3f} {f['wrong']:7.3f} {f['rest']:7.3f} {f['right_on_top']:13.1%} "
              f"{f['wrong_step']:11.3f} {f['right_step']:11.3f} {f['right_rest']:11.3f}")
    print(f"\nthe term took {taken:+.3f} from the wrong token; the right token gained "
          f"{with_['right'] - without['right']:+.3f}" + (f" ({to_right:.1%} of it)" if to_right is not None else ""))
    print(json.dumps({"config": vars(args), "uncorrected": len(r["states"]),
                      "tried": r["info"]["step"]["prefixes_tried"], "measured": len(cases), "left_out": left_out,
                      "to_right": to_right,
                      **{name: {k: v for k, v in f.items() if k != "per_case"} for name, f in figures.items()}}))
    return figures


if __name__ == "__main__":
    main()
