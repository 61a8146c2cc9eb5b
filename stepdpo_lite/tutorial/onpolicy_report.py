"""Reporting on-policy rounds: what ``onpolicy.run_rounds``' round records are printed and recorded as.

``format_round`` prints one round (its pairs, the PRM's mislabels by the checker, each method's accuracy),
``rounds_table`` every round, and ``format_stepwise_minus`` Stepwise DPO's accuracy minus each other method's with
its 95% interval (``onpolicy.stepwise_minus``); ``metrics_of`` and ``policy_metrics`` make the ``policy`` section of
``metrics.json``; ``format_one_round_sampled`` is notebook 06's line on notebook 04's one-round runs; ``seed_summary``
and ``format_seed_summary`` judge the goal over several seeds (``scripts/seed_spread.py``). Every method goes by its
name in the figures (``display_names.method_name``); the rounds' figure is ``viz.plot_onpolicy_rounds``.
"""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

import numpy as np
from scipy import stats

from ..checks import finite_number
from .display_names import method_name

# The methods the rounds train, in the order every table prints them. Here, not in onpolicy, so that reading and
# printing rounds (scripts/seed_spread.py) loads no torch or TRL.
METHODS = ("dpo", "stepwise_dpo", "nll_only")


def format_stepwise_minus(diffs: dict) -> list[str]:
    """Stepwise DPO minus each other method (method -> ``paired_stats.accuracy_differences``), in points, with the 95%
    interval: a header and a line per method."""
    def points(d):
        return f"{100 * d['difference']:+5.1f} ({100 * d['low']:+.1f} to {100 * d['high']:+.1f})"

    if not diffs:
        return []
    return ["  Stepwise DPO + NLL minus, in points (95% interval, paired over the same held-out problems):"] + [
        f"    {method_name(m):18s} greedy {points(d['accuracy']):22s} sampled {points(d['sampled_accuracy'])}"
        for m, d in diffs.items()]


def _mislabel_split(counts: Mapping) -> str:
    """``prm_pairs.count_mislabels``' counts as ``"3/24 (2 chosen held a wrong step, 1 rejected with the first error
    elsewhere)"``: which side of its pairs the PRM got wrong by the checker. A pair may count on both sides, the
    total once: then ``"; 1 pair both"`` ends the split, so that its parts add up to the total. Rounds saved before
    the split was recorded give the total alone."""
    sides = [(counts.get("chosen_wrong"), "chosen held a wrong step"),
             (counts.get("rejected_first_error_elsewhere"), "rejected with the first error elsewhere")]
    split = ", ".join(f"{n} {what}" for n, what in sides if n)
    both = sum(n or 0 for n, _ in sides) - counts["mislabelled"]  # counted on each side, once in the total
    split += f"; {both} pair{'s' * (both > 1)} both" if split and both > 0 else ""
    return f"{counts['mislabelled']}/{counts['pairs']}" + (f" ({split})" if split else "")


def format_round(record: dict, methods: Sequence[str] = METHODS) -> str:
    """One text block per round: the pairs, the PRM's mislabels by the checker (a line per kind of pair), then a
    row per method."""
    lines = []
    for m in methods:
        r = record.get(m, {})
        steps = f"   steps right {r['step_accuracy']:.1%}" if r.get("step_accuracy") is not None else ""
        lines.append(f"  {method_name(m):20s} greedy {r.get('accuracy', float('nan')):6.1%}   "
                     f"sampled {r.get('sampled_accuracy', float('nan')):6.1%}{steps}")
    mislabels = record.get("mislabels", {})  # kind -> counts; None where the task has no step checker
    bad = [f"  PRM mislabelled (checker): {kind} {_mislabel_split(counts)}" for kind, counts in mislabels.items()
           if counts] or ["  PRM mislabelled: no checker to count them"] * any(v is None for v in mislabels.values())
    head = (f"round {record['round']}: {record['pairs']['total']} pairs ({record['pairs']['solution']} solution, "
            f"{record['pairs']['step']} step); {record['seconds']:.0f} s")
    return "\n".join([head, *bad, *lines, *format_stepwise_minus(record.get("stepwise_dpo_minus", {}))])


def rounds_table(records: Sequence[dict], base: dict | None = None, methods: Sequence[str] = METHODS) -> str:
    """A text table: one row per round and method (and the base, when given)."""
    head = f"{'round':>5}  {'method':20s} {'greedy':>7} {'sampled':>8} {'steps right':>11} {'pairs':>6} " \
           f"{'mislabelled':>11} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    if base:
        sa = base.get("step_accuracy")
        lines.append(f"{0:>5}  {'base':20s} {base['accuracy']:>7.1%} {base['sampled_accuracy']:>8.1%} "
                     f"{'' if sa is None else f'{sa:.1%}':>11} {'':>6} {'':>11} {'':>8}")
    for rec in records:
        mis = [v for v in rec.get("mislabels", {}).values() if v]
        bad = f"{sum(v['mislabelled'] for v in mis)}" if mis else "-"
        for m in methods:
            r = rec.get(m, {})
            sa = r.get("step_accuracy")
            lines.append(f"{rec['round']:>5}  {method_name(m):20s} {r.get('accuracy', float('nan')):>7.1%} "
                         f"{r.get('sampled_accuracy', float('nan')):>8.1%} {'' if sa is None else f'{sa:.1%}':>11} "
                         f"{rec['pairs']['total']:>6} {bad:>11} {r.get('train_seconds', 0):>8.0f}")
    last = records[-1] if records else {}
    if last.get("stepwise_dpo_minus"):
        n = last["stepwise_dpo"]["n_test_problems"]
        lines += ["", f"After round {last['round']}, on {n} held-out problems:",
                  *format_stepwise_minus(last["stepwise_dpo_minus"])]
    return "\n".join(lines)


def format_one_round_sampled(metrics: dict) -> str:
    """What notebook 06's greedy-vs-sampled plot leaves out: each method's sampled accuracy (T = 1) after notebook
    04's one round on the checker's labels (``policy.one_round_gold_labels.<method>.sampled_accuracy``), in percent
    as the plot above it, each by its name in the plot and in notebook 04 (``display_names.method_name``)."""
    one_round = metrics.get("policy", {}).get("one_round_gold_labels") or {}
    if not one_round:
        return "(no one-round runs recorded: notebook 04 makes them)"
    return "\n".join(["sampled accuracy (T = 1) after one round on the checker's labels "
                      "(policy.one_round_gold_labels.<method>.sampled_accuracy):"] +
                     [f"  {method_name(name):20s} {r['sampled_accuracy']:.1%}"
                      for name, r in one_round.items() if r.get("sampled_accuracy") is not None])


def metrics_of(records: Sequence[dict], base: dict | None = None, methods: Sequence[str] = METHODS) -> dict:
    """The ``policy`` part of ``metrics.json``: the last round's figures of each of ``methods`` (e.g. those that
    had pairs to train on), with ``label_source`` = "prm", and ``rounds``: one entry per round, every method."""
    # every figure of a policy's evaluation: a key left out would keep notebook 04's one-round value in metrics.json
    keep = ("accuracy", "sampled_accuracy", "step_accuracy", "sampled_step_accuracy", "trace_error",
            "sampled_trace_error", "train_seconds", "n_test_problems", "test_problems_digest", "in_4_bits")
    rounds = []
    for rec in records:
        entry = {"round": rec["round"], "pairs": rec["pairs"], "mislabels": rec.get("mislabels", {}),
                 "seconds": rec["seconds"], "samples": rec["samples"], "sample_accuracy": rec["sample_accuracy"],
                 "prm_step_agreement": rec.get("prm_step_agreement"), "lucky": rec.get("lucky")}
        entry.update({m: {k: rec[m][k] for k in keep if k in rec[m]} for m in METHODS if m in rec})
        if "stepwise_dpo_minus" in rec:
            entry["stepwise_dpo_minus"] = rec["stepwise_dpo_minus"]
        rounds.append(entry)
    out = {"rounds": rounds}
    if records:
        last = records[-1]
        for m in (m for m in methods if m in last):  # a method left out of the run has no figures to keep
            out[m] = {k: last[m][k] for k in keep if k in last[m]}
            out[m]["label_source"] = "prm"
            out[m]["rounds"] = len(records)
        if "stepwise_dpo" in out and "stepwise_dpo_minus" in last:
            out["stepwise_dpo"]["minus"] = last["stepwise_dpo_minus"]
    if base:
        out["base"] = {k: base[k] for k in keep if k in base}
    return out


def policy_metrics(one_round: Mapping[str, dict], records: Sequence[dict], rounds_base: dict | None,
                   trained: Collection[str], curves: Mapping[str, dict]) -> dict:
    """Notebook 04's ``policy`` section of ``metrics.json`` after its rounds: each policy's figures are those of
    the policy it saved last. A method the rounds ``trained`` (the names whose last-round trainer
    ``onpolicy.run_rounds`` returned) gets its last round's figures only (``metrics_of``), none of its one-round keys: a
    merge kept them beside the rounds' (e.g. Stepwise DPO's one-round difference to the Step-DPO run). A method they
    did not train (the Step-DPO run, or every method when no round had pairs) keeps its ``one_round`` figures, as
    its saved policy is that run's. The one-round figures stay in full under ``one_round_gold_labels`` (the base
    left out), and the one-round training curves (``diagnostics.curve_ends``) under ``one_round_curves``."""
    if isinstance(trained, str):  # "stepwise_dpo" holds "dpo": DPO's one-round figures were replaced silently
        raise ValueError(f"policy_metrics: trained must be a collection of method names, got one str {trained!r}")
    methods = [m for m in METHODS if m in trained]  # a round without pairs trains nothing
    return {**one_round, **metrics_of(records, rounds_base, methods=methods),
            "one_round_gold_labels": {m: r for m, r in one_round.items() if m != "base"},
            "one_round_curves": dict(curves)}


def seed_summary(policy_by_seed: Mapping[int, dict], margin: float = 0.03) -> dict:
    """Stepwise DPO minus each other method over several seeds of the same run: per method and metric (greedy
    ``accuracy``, ``sampled_accuracy``) the mean difference, how many seeds' 95% intervals lie above zero, and
    whether the goal holds in its sounder form: a mean of at least ``margin`` *and* every seed's interval above
    zero (a lead one run's evaluation noise cannot explain, in every seed). ``policy_by_seed``: seed ->
    the ``policy`` part of that run's ``metrics.json`` (``metrics_of``), which holds ``stepwise_dpo.minus``.

    With two seeds or more, ``low``/``high`` are a 95% interval of the mean over seeds (Student's t on the seeds'
    differences): a seed draws the training's samples and the test problems both, so this interval covers both
    sources of spread, which no single run's interval does. ``excluded`` is True when its top lies below
    ``margin``: the seeds rule out a lead of ``margin`` for the method itself, not only for these runs."""
    if not policy_by_seed:
        raise ValueError("seed_summary: no seeds")
    finite_number(margin, "margin", "seed_summary")  # a NaN margin: every goal "not met", none ever ruled out
    minus = {}
    for seed, policy in policy_by_seed.items():
        if "minus" not in policy.get("stepwise_dpo", {}):
            raise ValueError(f"seed_summary: seed {seed} has no policy.stepwise_dpo.minus (notebook 04's rounds, or "
                             "scripts/onpolicy_rounds.py with stepwise_dpo in --methods, record it)")
        minus[seed] = policy["stepwise_dpo"]["minus"]
    out = {}
    for method in [m for m in METHODS if all(m in d for d in minus.values())]:
        for key in ("accuracy", "sampled_accuracy"):
            diffs = [d[method][key] for d in minus.values()]
            mean = sum(d["difference"] for d in diffs) / len(diffs)
            above = sum(d["low"] > 0 for d in diffs)
            out.setdefault(method, {})[key] = {"mean": mean, "seeds_above_zero": above, "seeds": len(diffs),
                                               "met": mean >= margin and above == len(diffs),
                                               **between_seeds([d["difference"] for d in diffs], margin)}
    return out


def between_seeds(differences: Sequence[float], margin: float) -> dict:
    """A 95% t-interval of the mean of the seeds' differences, and whether its top lies below ``margin`` (empty
    for fewer than two seeds): ``seed_summary``'s and ``scripts/compare_rounds.py``'s."""
    if len(differences) < 2:
        return {}
    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    low, high = mean, mean  # seeds that all differ alike have no spread (scipy's interval would be NaN): a point
    if np.ptp(d) > 0:
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        low, high = float(ci.low), float(ci.high)
    return {"low": low, "high": high, "excluded": high < margin}


def format_seed_summary(policy_by_seed: Mapping[int, dict], margin: float = 0.03) -> str:
    """One line per seed (every method's greedy / sampled accuracy, then Stepwise DPO minus each other method with
    its 95% interval), the mean, and the verdict of ``seed_summary``."""
    summary = seed_summary(policy_by_seed, margin)
    names = ["base", *METHODS]
    head = "seed  " + "".join(f"{method_name(m):>20s}" for m in names)
    lines = [head]
    for seed, policy in policy_by_seed.items():
        lines.append(f"{seed:<6}" + "".join(
            f"{100 * policy[m]['accuracy']:>12.1f} / {100 * policy[m]['sampled_accuracy']:4.1f}" if m in policy
            else f"{'':>20s}" for m in names))
        lines += [f"      minus {line.strip()}" for line in format_stepwise_minus(policy["stepwise_dpo"]["minus"])[1:]]
    lines.append("mean  " + "".join(
        f"{100 * sum(p[m]['accuracy'] for p in policy_by_seed.values()) / len(policy_by_seed):>12.1f} / "
        f"{100 * sum(p[m]['sampled_accuracy'] for p in policy_by_seed.values()) / len(policy_by_seed):4.1f}"
        if all(m in p for p in policy_by_seed.values()) else f"{'':>20s}" for m in names))
    lines.append(f"Stepwise DPO + NLL minus, over {len(policy_by_seed)} seeds (goal: mean >= {100 * margin:+.0f} "
                 "points and every seed's interval above zero):")
    for method, by_key in summary.items():
        for key, r in by_key.items():
            label = (method_name(method), "greedy") if key == "accuracy" else ("", "sampled")
            lines.append(f"  {label[0]:18s} {label[1]:8s}mean {100 * r['mean']:+5.1f}, interval above zero in "
                         f"{r['seeds_above_zero']} of {r['seeds']} seeds: {'met' if r['met'] else 'not met'}")
            if "low" in r:
                lines[-1] += (f"; over the seeds {100 * r['low']:+.1f} to {100 * r['high']:+.1f}"
                              + (f", {100 * margin:+.0f} ruled out" if r["excluded"] else ""))
    return "\n".join(lines)
