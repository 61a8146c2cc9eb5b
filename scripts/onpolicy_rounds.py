r"""On-policy rounds with PRM step labels: DPO, Stepwise DPO and NLL only at equal data, steps and seed.

Notebook 04's on-policy section (``stepdpo_lite.tutorial.onpolicy``) for as many rounds as you like, on the validation
split (to fix a protocol) or the test split (to report it):

    python scripts/onpolicy_rounds.py --runs-dir runs --rounds 4 --split validation --out val.json
    python scripts/onpolicy_rounds.py --rounds 4 --split test --save-policies runs/tiny/onpolicy_policies

``--protocol output_layer`` (or ``first_error``) trains by one of notebook 04's protocols
(``profiles.ONPOLICY_PROTOCOLS``); without it the script's own defaults apply (NLL weight 5, weighted step pairing,
step weight 1, the step loss through every layer), not notebook 04's protocol. Notebook 04's own rounds on the
tiny profile (its first two give the notebook's figures to the digit), eight of them:

    python scripts/onpolicy_rounds.py --protocol output_layer --split test --rounds 8 --problems-per-round 96 \
        --samples 3 --steps 10

Notebook 04's first-error protocol with 100 times its data on a GPU (9,600 problems × K = 3 a round, 1,000 steps;
about 5 minutes a round on an H200) and 1,000 test problems:

    python scripts/onpolicy_rounds.py --split test --rounds 1 --train-problems 9600 --problems-per-round 9600 \
        --samples 3 --steps 1000 --step-pairing first_error --sft-weight 20 --eval-problems 1000 --device cuda \
        --sample-batch-size 1024 --out t100.json

The toy world's long problems only (5 or 6 operations, the start policy's weakest; docs/benchmarks.md, "Long problems
only"), drawn from more problems than notebook 01's so that a round still has 96:

    python scripts/onpolicy_rounds.py --protocol output_layer --rounds 3 --problems-per-round 96 --samples 3 \
        --steps 10 --train-problems 1500 --eval-problems 375 --min-ops 5

Needs notebook 01's run (problem counts in ``metrics.json``) and notebook 02's PRM (``runs/<profile>/prm`` and
``prm.first_error_threshold``). Nothing is written into the run folder unless ``--save-policies`` points there.
Prints one line per round and method, then the table; ``--out`` writes every figure as JSON. Progress bars on the
rounds' sampling, PRM scoring, training and evaluation are on when stderr is a terminal (``--progress`` or
``--no-progress`` says so for a log file): at 100 times the data a round runs for an hour on 2 CPU cores between its
printed lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.atomic import check_replaceable, write_atomic  # noqa: E402
from stepdpo_lite.rewards import ProcessRewardModel  # noqa: E402
from stepdpo_lite.tutorial import (onpolicy, onpolicy_report, policy_eval, reward_reports, runs, tasks,  # noqa: E402
                                   tiny_models)
from stepdpo_lite.tutorial.profiles import ONPOLICY_PROTOCOLS, get_profile  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny",
                    help="the tutorial profile: its run, start policy, device, batch sizes and lengths (default: tiny)")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs"),
                    help="the tutorial's runs folder: <runs-dir>/<profile> holds notebook 01's metrics.json and "
                         "notebook 02's prm (default: the repository's runs)")
    ap.add_argument("--split", default="validation", choices=["validation", "test"],
                    help="held-out problems to evaluate on (fix the protocol on validation)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds to run, each sampling, pairing and training anew from the last one's policies "
                         "(default: 3)")
    ap.add_argument("--problems-per-round", type=int, default=150, help="training problems per round (0: all)")
    ap.add_argument("--n-eval", type=int, default=None, help="held-out problems (default: all of the split)")
    ap.add_argument("--samples", type=int, default=6, help="K solutions per problem per round (shared out)")
    ap.add_argument("--sampler", default="pooled", choices=["pooled", *onpolicy.METHODS],
                    help="'pooled' or a method name (one of --methods)")
    ap.add_argument("--pairs", default="both", choices=list(onpolicy.PAIR_KINDS),
                    help="the pairs a round builds: 'solution' (a right vs a wrong sampled solution), 'step' (a "
                         "rejected solution's first wrong step, resampled until the PRM accepts it) or 'both' "
                         "(default)")
    ap.add_argument("--max-pairs", type=int, default=4, help="solution pairs per problem")
    ap.add_argument("--chosen", default="prm", choices=list(onpolicy.CHOSEN_RULES),
                    help="a solution pair's chosen side: 'prm' (default), a right answer and no step the PRM rejects; "
                         "'answer', any right answer (plain RFT's positives)")
    ap.add_argument("--step-pairs", type=int, default=1, help="rejected solutions per problem to correct")
    ap.add_argument("--step-tries", type=int, default=4,
                    help="continuations sampled per attempt at a rejected solution's first wrong step (default: 4)")
    ap.add_argument("--step-attempts", type=int, default=2,
                    help="attempts, of --step-tries continuations each, to find a step the PRM accepts (default: 2)")
    ap.add_argument("--step-negatives", type=int, default=0, help="extra wrong steps per Step-DPO state (0: none)")
    ap.add_argument("--negative-tries", type=int, default=8,
                    help="continuations sampled per Step-DPO state to find --step-negatives' wrong steps, shared out "
                         "among the policies (default: 8)")
    ap.add_argument("--negative-temperature", type=float, default=2.0,
                    help="sampling temperature of those continuations (default: 2.0)")
    ap.add_argument("--mirrored-negatives", default="no", choices=list(onpolicy.MIRRORED),
                    help="the slip of each Step-DPO pair mirrored about the right number: 'add' one more pair per "
                         "state, or use them 'instead' of the step pairs")
    ap.add_argument("--rejected-probs", default="first_error", choices=list(onpolicy.REJECTED_PROBS),
                    help="a rejected solution's step labels: 'prm', σ(reward) of every step; 'first_error' "
                         "(default), σ(reward) up to the first step the PRM rejects, 1 after it")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per round and method "
                                                            "(default: one epoch over the round's pairs)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="pairs per device step (default: the profile's, as notebook 04's: 16 on tiny)")
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate of every method (default: the profile's dpo_learning_rate, notebook 04's)")
    ap.add_argument("--beta", type=float, default=0.1,
                    help="β of DPO's loss and of both Stepwise DPO losses (default: 0.1)")
    ap.add_argument("--protocol", default=None, choices=list(ONPOLICY_PROTOCOLS),
                    help="notebook 04's training protocol (profiles.ONPOLICY_PROTOCOLS; the tiny profile's is "
                         "output_layer): sets --sft-weight, --step-pairing, --step-weight and --step-gradient, "
                         "each not given (default: none, the script's own: NLL weight 5, weighted step pairing, "
                         "step weight 1, the step loss through every layer)")
    ap.add_argument("--sft-weight", type=float, default=None,
                    help="NLL weight of every method (default: --protocol's, else 5.0)")
    ap.add_argument("--outcome-weight", type=float, default=0.0,
                    help="Stepwise DPO's outcome (DPO) loss weight; it and --step-weight not both 0 (default: 0.0)")
    ap.add_argument("--step-pairing", default=None, choices=["weighted", "first_error", "first_token"],
                    help="Stepwise DPO's step loss (default: --protocol's, else weighted)")
    ap.add_argument("--step-weight", type=float, default=None,
                    help="Stepwise DPO's step-loss weight (default: --protocol's, else 1.0)")
    ap.add_argument("--rejected-sft-weight", type=float, default=0.0,
                    help="Stepwise DPO adds the NLL of each rejected solution's PRM-accepted opening, by this "
                         "weight (0: none; a diagnostic, rejected_prefix_nll.py)")
    ap.add_argument("--uncorrected-weight", type=float, default=0.0,
                    help="Stepwise DPO adds the unlikelihood of the wrong step at each state where no correction "
                         "was found, by this weight (0: none; needs --step-gradient output_layer; a diagnostic, "
                         "uncorrected_unlikelihood.py)")
    ap.add_argument("--uncorrected-gradient", default="output_layer", choices=list(onpolicy.STEP_GRADIENTS),
                    help="the --uncorrected-weight term's path: 'output_layer' (default; the protocol's step loss's) "
                         "or 'all' (every weight the policy trains)")
    ap.add_argument("--step-gradient", default=None, choices=list(onpolicy.STEP_GRADIENTS),
                    help="'output_layer': Stepwise DPO's step loss moves the output layer only (needs --step-pairing "
                         "first_token); 'all': every weight the policy trains (default: --protocol's, else all)")
    ap.add_argument("--step-rejected", default="round", choices=list(onpolicy.STEP_REJECTED),
                    help="'round' (default): the rejected sides the round sampled; 'fresh': Stepwise DPO's rejected "
                         "token is drawn again from the current policy at every step; 'expected': that draw's "
                         "expectation, exactly; 'top': the policy's strongest wrong token. fresh, expected and top "
                         "need --step-pairing first_token and --step-gradient all")
    ap.add_argument("--n-sampled", type=int, default=2, help="sampled (T=1) solutions per held-out problem")
    ap.add_argument("--methods", nargs="+", default=list(onpolicy.METHODS), choices=list(onpolicy.METHODS),
                    help="the methods to train, each from its own copy of the start policy (default: all three)")
    ap.add_argument("--no-base", action="store_true", help="do not evaluate the start policy")
    ap.add_argument("--freeze-embeddings", action="store_true", help="a fully fine-tuned policy (the tiny base, any "
                                                                         "task): train all but the (tied) token "
                                                                         "embeddings")
    ap.add_argument("--train-problems", type=int, default=None,
                    help="draw this many training problems (default: notebook 01's count); more data than it labelled")
    ap.add_argument("--eval-problems", type=int, default=None,
                    help="draw this many validation and test problems (default: notebook 01's count)")
    ap.add_argument("--min-ops", type=int, default=None,
                    help="the toy world's long problems only: train and evaluate on the drawn problems of at least "
                         "this many operations (the base's weakest; draw more with --train-problems and "
                         "--eval-problems)")
    ap.add_argument("--device", default=None, choices=["cpu", "cuda"],
                    help="where the policies sample and train (default: the profile's; the tiny profile's is cpu)")
    ap.add_argument("--sample-batch-size", type=int, default=None,
                    help="rows per generate and PRM call (default: the profile's)")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bars on the rounds' sampling, PRM scoring, training and evaluation (a large "
                         "round on a CPU runs an hour between its printed lines; default: on when stderr is a "
                         "terminal)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the problems (drawn again as notebook 01 drew them: its SEED gives its problems), "
                         "of a GPU profile's fresh LoRA adapter, of the rounds' sampling and training, and of the "
                         "evaluation (default: 0, notebook 01's)")
    ap.add_argument("--save-policies", default=None, help="save the last round's policies here")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.progress is None:  # bars in a terminal; a log file would get every redraw
        args.progress = sys.stderr.isatty()
    try:  # found out now, not as a traceback once the arguments are checked
        profile = get_profile(args.profile)
    except ValueError as err:
        ap.error(f"--profile: {err}")
    if args.min_ops is not None and profile.task != "toy":  # its problems have no operations to count
        ap.error(f"--min-ops counts the toy world's operations; --profile {args.profile}'s task is {profile.task!r}")
    # found out now, not after the policies are loaded and a round sampled (a slice of -3 or 0 steps ran silently)
    for name in ("rounds", "samples", "batch_size", "n_sampled", "n_eval", "steps", "max_pairs", "step_pairs",
                 "step_tries", "step_attempts", "negative_tries", "train_problems", "eval_problems",
                 "sample_batch_size", "min_ops"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    # the four fields a protocol sets: a flag given wins, then --protocol's value, then TrainSettings' default
    given = {k: getattr(args, k) for k in ("sft_weight", "step_pairing", "step_weight", "step_gradient")}
    try:  # a missing tiny base is refused first, naming its folder (a protocol would call it a LoRA start)
        onpolicy.starts_with_lora(profile)
        defaults = onpolicy.TrainSettings()
        chosen = (onpolicy.protocol(args.protocol, profile, args.outcome_weight, **given) if args.protocol else
                  {k: getattr(defaults, k) if v is None else v for k, v in given.items()})
    except (ValueError, FileNotFoundError) as err:
        ap.error(str(err))
    vars(args).update(chosen)
    stepwise_only = {"--step-weight": given["step_weight"] not in (None, 1.0),
                     "--step-gradient": given["step_gradient"] not in (None, "all"),
                     "--step-rejected": args.step_rejected != "round",
                     "--rejected-sft-weight": args.rejected_sft_weight != 0,
                     "--uncorrected-weight": args.uncorrected_weight != 0,
                     "--uncorrected-gradient": args.uncorrected_gradient != "output_layer"}
    if "stepwise_dpo" not in args.methods and any(stepwise_only.values()):  # would be recorded, and train nothing
        ap.error(f"{', '.join(k for k, v in stepwise_only.items() if v)} set Stepwise DPO's loss, and --methods "
                 f"{' '.join(args.methods)} leaves it out")
    if args.uncorrected_weight and args.pairs == "solution":  # else refused by run_round once the policies loaded
        ap.error("--uncorrected-weight trains on the states Step-DPO pairs could not be built on; --pairs solution "
                 "builds none")
    # found after the policies were loaded and the start policy evaluated: a sampler without a policy, and a method
    # given twice (one policy for both, refused as "the same model is given twice")
    if args.sampler != "pooled" and args.sampler not in args.methods or len(set(args.methods)) < len(args.methods):
        ap.error(f"--methods must be distinct and hold --sampler's method, got {' '.join(args.methods)} and "
                 f"--sampler {args.sampler}")

    def refused(err: ValueError, options) -> None:  # a settings class's message names its fields: in the options' words
        ap.error(re.sub(rf"\b({'|'.join(options)})\b", lambda m: "--" + m.group(1).replace("_", "-"), str(err)))

    try:  # the Stepwise DPO settings' combinations (TrainSettings' own checks), before a run is read
        train_settings = partial(onpolicy.TrainSettings, beta=args.beta, sft_weight=args.sft_weight,
                                 outcome_weight=args.outcome_weight, step_pairing=args.step_pairing,
                                 step_weight=args.step_weight, rejected_sft_weight=args.rejected_sft_weight,
                                 uncorrected_weight=args.uncorrected_weight,
                                 uncorrected_gradient=args.uncorrected_gradient,
                                 step_gradient=args.step_gradient, step_rejected=args.step_rejected)
        train_settings()
    except ValueError as err:
        refused(err, [f.name for f in dataclasses.fields(onpolicy.TrainSettings) if f.name in vars(args)])
    # not "lr <= 0": nan passed it (torch refused it after a round's sampling) and inf trained DPO to NaN weights
    if args.problems_per_round < 0 or args.lr is not None and not 0 < args.lr < math.inf:
        ap.error(f"--problems-per-round must be 0 (all) or more, and --lr a finite number above 0, got "
                 f"{args.problems_per_round} and {args.lr}")

    if args.device:  # cuda without a GPU: else a torch error once the policies load
        try:
            tiny_models.check_device(args.device)
        except ValueError as err:
            ap.error(str(err))
    profile = dataclasses.replace(profile, device=args.device or profile.device,
                                  sample_batch_size=args.sample_batch_size or profile.sample_batch_size)
    args.batch_size = onpolicy.preference_batch_size(profile, args.batch_size)  # recorded in --out's config
    same_names = {k: getattr(args, k) for k in ("sampler", "pairs", "chosen", "step_tries", "step_attempts",
                                                "step_negatives", "negative_tries", "negative_temperature",
                                                "mirrored_negatives", "rejected_probs", "progress")}
    try:  # the rounds' settings (RoundSettings' own checks), before a run is read; the PRM's threshold is set below
        rs = onpolicy.RoundSettings(samples_per_problem=args.samples, max_pairs_per_problem=args.max_pairs,
                                    step_pairs_per_problem=args.step_pairs, max_new_tokens=profile.max_new_tokens,
                                    batch_size=profile.sample_batch_size, **same_names)
    except ValueError as err:
        refused(err, same_names)
    if args.out:  # a folder there, or a file on its path: found out now, not after every round has run
        try:  # a missing folder is made (write_atomic), as by the other scripts
            runs.check_out_file(args.out)
        except ValueError as err:
            ap.error(str(err))
    if args.seed < 0:  # refused by the kit's samplers only once the policies had loaded
        ap.error(f"--seed must be 0 or more, got {args.seed}")
    if args.save_policies:  # found out now, not when the last round's policies are saved (a file there, "." ...)
        try:
            if Path(args.save_policies).exists() and not Path(args.save_policies).is_dir():
                raise ValueError(f"{args.save_policies} is a file; the policies are saved in folders inside it")
            for m in args.methods:
                check_replaceable(Path(args.save_policies) / m, where="--save-policies")
        except ValueError as err:
            ap.error(str(err))
    run = Path(args.runs_dir) / args.profile
    try:  # the run's figures and its PRM's folder, read before anything is loaded
        metrics = runs.read_metrics(runs.require(run, "01_data_prep"))
        prm_dir = runs.require(run / "prm", "02_process_reward_model")
        threshold = reward_reports.prm_threshold(prm_dir, run)  # the one notebook 02 saved with this PRM
        # notebook 01's problem counts (not run through: none), else refused by recorded_splits once policies loaded
        n_train, n_eval = onpolicy.recorded_counts(metrics, n_train=args.train_problems, n_eval=args.eval_problems)
    except (ValueError, FileNotFoundError) as err:
        ap.error(f"--runs-dir: {err}")
    prm = ProcessRewardModel.load(prm_dir, device=profile.device)
    policies = {}
    for m in args.methods:  # each method trains on from its own copy of notebook 04's start policy
        policies[m], tokenizer = onpolicy.start_policy(profile, seed=args.seed)
        if args.freeze_embeddings and not onpolicy.starts_with_lora(profile):  # a LoRA policy's are frozen already
            policies[m].get_input_embeddings().weight.requires_grad_(False)
    splits = onpolicy.recorded_splits(tasks.get_task(profile), metrics, seed=args.seed, tokenizer=tokenizer,
                                      n_train=n_train, n_eval=n_eval)
    if args.min_ops:  # the same draw, its shorter problems left out: each split keeps its own long ones
        kept = {name: [p for p in problems if len(p.ops) >= args.min_ops] for name, problems in splits.items()}
        print(f"--min-ops {args.min_ops}: " + ", ".join(f"{name} {len(kept[name])} of {len(splits[name])} problems"
                                                       for name in splits), flush=True)
        if not all(kept.values()):
            ap.error(f"--min-ops {args.min_ops}: a split has no problem of {args.min_ops} or more operations "
                     "(the toy world's problems have 2 to 6)")
        splits = kept
    eval_problems = splits[args.split][: args.n_eval or None]
    if args.n_eval and args.n_eval > len(eval_problems):  # the figures are on fewer problems than asked for
        print(f"--n-eval {args.n_eval}: the {args.split} split holds {len(eval_problems)} problems; evaluating on all "
              f"{len(eval_problems)} (--eval-problems draws more)", flush=True)
    rs = dataclasses.replace(rs, threshold=threshold)
    train_args = onpolicy.training_args(profile, batch_size=args.batch_size,
                                        learning_rate=args.lr or profile.dpo_learning_rate,
                                        max_steps=args.steps or -1, beta=args.beta, seed=args.seed)  # notebook 04's
    # the script's own: one epoch over each round's pairs without --steps (max_steps -1), the last batch too; a
    # progress bar only with --progress, on a GPU profile too (each round prints its lines); a log entry every 5
    # steps (a twentieth of -1 steps is none)
    ts = train_settings(args={**train_args, "num_train_epochs": 1, "disable_tqdm": not args.progress,
                              "logging_steps": 5})
    # what the figures depend on (seed_spread.py compares runs by it): not where files go, nor the progress bars
    # nor --protocol, whose four fields it holds
    config = {k: v for k, v in vars(args).items()
              if k not in ("out", "save_policies", "runs_dir", "progress", "protocol")}
    print("config:", json.dumps(config), "threshold", round(threshold, 3), flush=True)

    base = None
    if not args.no_base:
        t0 = time.perf_counter()
        base = policy_eval.greedy_and_sampled_accuracy(next(iter(policies.values())), tokenizer, eval_problems,
                                                       n_sampled=args.n_sampled, batch_size=rs.batch_size,
                                                       max_new_tokens=rs.max_new_tokens, seed=args.seed,
                                                       progress=args.progress)
        print(f"start policy: greedy {base['accuracy']:.1%} sampled {base['sampled_accuracy']:.1%} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)

    logs = {m: [] for m in args.methods}  # every round's training log, saved beside the policies as notebook 04 does
    done = []  # the rounds so far

    def report(record, trainers):
        print(onpolicy_report.format_round(record, args.methods), flush=True)
        onpolicy.extend_logs(logs, {m: t.state.log_history for m, t in trainers.items()}, record["round"])
        done.append(record)
        # after every round, so that a run stopped part way (a time limit) keeps the rounds it finished; atomic:
        # seed_spread.py --from-rounds reads it, and a cut-short file would not load
        if args.out:
            write_atomic(args.out, lambda tmp: Path(tmp).write_text(json.dumps(
                {"config": config, "threshold": threshold, "base": base, "rounds": done}, indent=1, default=str)))

    with tempfile.TemporaryDirectory() as tmp:
        records, trainers = onpolicy.run_rounds(
            policies, tokenizer, prm, splits["train"], eval_problems, rs, ts, rounds=args.rounds,
            problems_per_round=args.problems_per_round or None, seed=args.seed, output_dir=tmp,
            n_sampled=args.n_sampled, methods=args.methods, on_round=report,
            out=lambda line: print(line, flush=True))
        if args.save_policies:  # as notebook 04 saves them: with the rounds' logs and a portable adapter config
            onpolicy.save_policies(args.save_policies, trainers, logs)
    print()
    print(onpolicy_report.rounds_table(records, base, args.methods))  # --out holds them all: report wrote it after each
    return records


if __name__ == "__main__":
    main()
