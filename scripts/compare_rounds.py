r"""One method of some on-policy runs against one method of others, seed by seed: what a change of protocol does.

``seed_spread.py`` with its ``--from-rounds`` option compares the methods *within* each run (they train on the
same samples). This compares a method across two sets of runs of ``scripts/onpolicy_rounds.py`` (their ``--out``
files, one per seed), e.g. Stepwise DPO of the tiny protocol against RFT whose chosen side is any right answer
(``--chosen answer``, plain RFT's positives: docs/benchmarks.md, "Right answers through wrong steps"):

    python scripts/compare_rounds.py --a p_s0.json p_s1.json p_s2.json --a-method stepwise_dpo \
        --b plain_s0.json plain_s1.json plain_s2.json --b-method nll_only --round 3

Runs of one seed hold the same held-out problems (the seed draws them), so each seed's difference is paired over
its problems, with a 95% interval (``paired_stats.accuracy_differences``); the mean over the seeds gets a 95%
t-interval over them (``onpolicy_report.between_seeds``). Prints one line per seed and the mean; returns them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stepdpo_lite.tutorial import onpolicy_report, paired_stats  # noqa: E402
from stepdpo_lite.tutorial.display_names import method_name  # noqa: E402

KEYS = ("accuracy", "sampled_accuracy")


def by_seed(paths: list[str], method: str, round_index: int, option: str) -> dict[int, dict]:
    """Seed -> ``method``'s figures after round ``round_index`` in these ``--out`` files (one per seed)."""
    out = {}
    for p in paths:
        try:
            result = json.loads(Path(p).read_text())
            seed, rounds = result["config"]["seed"], result["rounds"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{option}: {p} is no --out file of scripts/onpolicy_rounds.py ({err!r:.80})") from None
        if seed in out:
            raise ValueError(f"{option}: {p} holds seed {seed} again (one file per seed)")
        if not 1 <= round_index <= len(rounds):
            raise ValueError(f"--round {round_index}: {p} has rounds 1 to {len(rounds)}")
        figures = rounds[round_index - 1].get(method)
        if not figures or "per_problem" not in figures:
            raise ValueError(f"{option}: {p} has no figures of {method} in round {round_index} (its --methods?)")
        out[seed] = figures
    return out


def compare(a: dict[int, dict], b: dict[int, dict]) -> dict:
    """Per seed, A minus B (greedy and sampled, each with its paired interval), and the mean over the seeds."""
    if sorted(a) != sorted(b):
        raise ValueError(f"--a holds seeds {sorted(a)} and --b seeds {sorted(b)}: give the same seeds")
    seeds = {}
    for seed in sorted(a):
        if a[seed]["test_problems_digest"] != b[seed]["test_problems_digest"]:
            raise ValueError(f"seed {seed}: the runs were evaluated on other problems (another --split or "
                             "--n-eval?): a paired difference needs the same ones")
        seeds[seed] = {"a": {k: a[seed][k] for k in KEYS}, "b": {k: b[seed][k] for k in KEYS},
                       "minus": paired_stats.accuracy_differences(a[seed]["per_problem"], b[seed]["per_problem"])}
    mean = {k: {"difference": sum(s["minus"][k]["difference"] for s in seeds.values()) / len(seeds),
                **onpolicy_report.between_seeds([s["minus"][k]["difference"] for s in seeds.values()], 0.0)}
            for k in KEYS}
    return {"seeds": seeds, "mean": mean}


def points(d: dict) -> str:
    interval = f" ({100 * d['low']:+.1f} to {100 * d['high']:+.1f})" if "low" in d else ""
    return f"{100 * d['difference']:+.1f}{interval}"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", nargs="+", required=True, metavar="JSON", help="runs of one protocol, one per seed")
    ap.add_argument("--a-method", required=True, help="the method of --a compared (e.g. stepwise_dpo)")
    ap.add_argument("--b", nargs="+", required=True, metavar="JSON", help="runs of the other, the same seeds")
    ap.add_argument("--b-method", required=True, help="the method of --b compared (e.g. nll_only)")
    ap.add_argument("--round", type=int, required=True, help="the round compared (each file must have it)")
    args = ap.parse_args(argv)
    try:
        result = compare(by_seed(args.a, args.a_method, args.round, "--a"),
                         by_seed(args.b, args.b_method, args.round, "--b"))
    except ValueError as err:
        ap.error(str(err))
    a_name, b_name = method_name(args.a_method), method_name(args.b_method)
    print(f"after round {args.round}, greedy / sampled: A = {a_name} of --a, B = {b_name} of --b")
    for seed, s in result["seeds"].items():
        print(f"seed {seed}: A {100 * s['a']['accuracy']:.1f} / {100 * s['a']['sampled_accuracy']:.1f}, "
              f"B {100 * s['b']['accuracy']:.1f} / {100 * s['b']['sampled_accuracy']:.1f}; A minus B greedy "
              f"{points(s['minus']['accuracy'])}, sampled {points(s['minus']['sampled_accuracy'])}")
    print(f"mean over {len(result['seeds'])} seeds: A minus B greedy {points(result['mean']['accuracy'])}, sampled "
          f"{points(result['mean']['sampled_accuracy'])}")
    return result


if __name__ == "__main__":
    main()
