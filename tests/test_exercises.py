"""docs/exercises.md: the README's exercises as scripts/exercise_runs.py ran them. Every figure the page quotes is
docs/exercise_metrics.json's; that file's variants ran on the recorded tutorial run (docs/tutorial_metrics.json) with
the settings the README's exercises ask for; and what the page says each exercise shows holds on it."""
import json
import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = json.loads((ROOT / "docs" / "exercise_metrics.json").read_text())
RECORDED = json.loads((ROOT / "docs" / "tutorial_metrics.json").read_text())
PAGE = " ".join((ROOT / "docs" / "exercises.md").read_text().split())  # a figure may wrap across lines
RUN = RESULT["run"]
METHODS = ("dpo", "stepwise_dpo", "nll_only")


def variant(name: str) -> dict:
    return RESULT["exercises"][name]["metrics"]


def signed(x: float, digits: int = 1) -> str:
    """A difference as the page writes it: "+5.4", "−2.4" (a minus sign, not a hyphen)."""
    return f"{x:+.{digits}f}".replace("-", "−")


def interval(d: dict, scale: float = 100, digits: int = 1) -> str:
    """A paired 95% interval as the page writes it: "−2.4 to +13.1"."""
    return f"{signed(scale * d['low'], digits)} to {signed(scale * d['high'], digits)}"


def difference(d: dict, unit: str = "") -> str:
    """A difference in points with its interval, as the page writes it: "+20.0 points (+4.8 to +35.2)"."""
    return f"{signed(100 * d['difference'])}{unit} ({interval(d)})"


def row(*cells: str) -> str:
    """The end of a table row: "| 0.984 | 0.958 |"."""
    return "| " + " | ".join(cells) + " |"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def greedy_sampled(policy: dict) -> str:
    return f"{pct(policy['accuracy'])} / {pct(policy['sampled_accuracy'])}"


def page_figures() -> list[str]:
    """The figures docs/exercises.md quotes, formatted from docs/exercise_metrics.json."""
    figures = []
    # 1: hard and soft Monte-Carlo labels against the checker
    for data in (variant("01_rollouts_2")["data"], RUN["data"], variant("01_rollouts_32")["data"]):
        cells = []
        for kind in ("hard", "soft"):
            pr = data["mc_label_precision_recall"][kind]
            cells += [pct(data["mc_label_agreement"][kind]), f"{pr['precision']:.2f}", f"{pr['recall']:.2f}"]
        figures.append(row(*cells))
    # 2: a PRM from 200 rows
    few, prm = variant("02_train_rows_200")["prm"], RUN["prm"]
    figures += [row(f"{few['step_auroc']:.3f}", f"{few['first_error_f1']:.3f}"),
                row(f"{prm['step_auroc']:.3f}", f"{prm['first_error_f1']:.3f}"),
                row(f"{few['zero_shot']['step_auroc']:.3f}", f"{few['zero_shot']['f1']:.3f}"),
                f"| {few['position_baseline_auroc']:.3f} | |",  # no F1 for the baseline
                row(f"{few['control']['after_qlora']['step_auroc']:.3f}", f"{few['control']['after_qlora']['f1']:.3f}"),
                f"{signed(few['qlora_minus_zero_shot']['difference'], 4)} step AUROC",
                f"(95% interval {interval(few['qlora_minus_zero_shot'], 1, 4)}: not measured)",
                f"{signed(prm['qlora_minus_zero_shot']['difference'], 4)} "
                f"({interval(prm['qlora_minus_zero_shot'], 1, 4)}) with all 2,400 rows"]
    # 3: the combined reward's weight
    orm = RUN["orm"]
    rejected = orm["prm_rejected_right"]
    figures += [row(f"{variant('03_process_weight_1')['orm']['combined_auroc']:.3f}"),
                row(f"{orm['combined_auroc']:.3f}"),
                row(f"{variant('03_process_weight_0')['orm']['combined_auroc']:.3f}"),
                row(f"{orm['combined_process_weight']} (the run: chosen on validation)",
                    f"{orm['combined_auroc']:.3f}"),
                f"{signed(orm['differences']['combined_minus_orm']['difference'], 3)} to it at weight "
                f"{orm['combined_process_weight']}",
                f"interval {interval(orm['differences']['combined_minus_orm'], 1, 3)})",
                f"rejects {rejected['rejected']} of the {rejected['right']} right answers "
                f"({pct(rejected['rejected_share'])}), and {pct(rejected['slipped_among_rejected'])} of those"]
    # 4: the NLL anchor and the rounds' protocol
    one_round = lambda policy: policy["one_round_gold_labels"]  # noqa: E731
    sft_1 = variant("04_sft_weight_1")["policy"]
    unanchored = variant("04_onpolicy_sft_weight_1")["policy"]
    figures.append(f"the base policy: {greedy_sampled(RUN['policy']['base'])}")
    for policies in (one_round(RUN["policy"]), one_round(sft_1), RUN["policy"], variant("04_first_error")["policy"],
                     unanchored):
        figures.append(row(*(greedy_sampled(policies[m]) for m in METHODS)))
    curves = {name: policy["one_round_curves"] for name, policy in (("run", RUN["policy"]), ("sft_1", sft_1))}
    chosen = lambda run, method, end: f"{signed(curves[run][method]['logps/chosen'][end], 2)}"  # noqa: E731
    figures += [f"(from {chosen('sft_1', 'DPO', 'start')} to {chosen('sft_1', 'DPO', 'end')} nats, smoothed; at the "
                f"run's weight it rises to {chosen('run', 'DPO', 'end')})",
                f"`logps/chosen` still rises a little ({chosen('sft_1', 'Stepwise DPO', 'start')} to "
                f"{chosen('sft_1', 'Stepwise DPO', 'end')})",
                f"({pct(one_round(sft_1)['dpo']['accuracy'])} greedy)",
                f"stays above the base ({pct(one_round(sft_1)['stepwise_dpo']['accuracy'])})",
                f"fall with DPO ({pct(one_round(sft_1)['step_dpo']['accuracy'])})",
                f"({pct(unanchored['dpo']['accuracy'])})",
                f"keeps its accuracy ({pct(unanchored['stepwise_dpo']['accuracy'])})"]
    # 5: the explorer
    seen = variant("05_explorer_20")["visualisation"]
    hits = round(seen["explorer_first_error_hits"] * seen["explorer_solutions"])
    figures += [f"holds {seen['explorer_solutions']} solutions, and on {hits} of them "
                f"({pct(seen['explorer_first_error_hits'])})", f"{seen['explorer_solutions'] - hits} disagree"]
    # 6: more candidates, more problems
    many = variant("06_candidates_64")
    for n in ("16", "32", "64"):
        picks = many["best_of_n"][n]
        figures.append(row(n, *(pct(picks[m]) for m in ("prm_product", "prm_min", "orm", "majority")),
                           pct(many["evaluation"]["pass_at_n"][n])))
    lead = lambda m, n: m["best_of_n_differences"][n]["prm_product"]["orm"]  # noqa: E731
    figures += [f"{difference(lead(many, '64'), ' points')}",
                f"({signed(100 * lead(many, '16')['difference'])}, {interval(lead(many, '16'))})",
                f"best-of-16 with the PRM read {pct(RUN['best_of_n']['16']['prm_product'])}, this one "
                f"{pct(many['best_of_n']['16']['prm_product'])}"]
    wide = variant("06_problems_150")
    at_16 = wide["best_of_n"]["16"]
    figures.append(f"the PRM (weakest step) reaches {pct(at_16['prm_min'])}, the PRM (product) "
                   f"{pct(at_16['prm_product'])}, the combined model {pct(at_16['combined'])}, the ORM "
                   f"{pct(at_16['orm'])}, majority vote {pct(at_16['majority'])}, a random pick {pct(at_16['random'])}")
    d16 = wide["best_of_n_differences"]["16"]
    figures += [f"{difference(d16['prm_min']['orm'], ' points')} with the weakest step",
                f"{difference(d16['prm_product']['orm'])} with the product",
                f"over majority voting {difference(d16['orm']['majority'])}"]
    figures += [f"the product led ({pct(RUN['best_of_n']['16']['prm_product'])} against "
                f"{pct(RUN['best_of_n']['16']['prm_min'])})",
                f"the weakest step does ({pct(at_16['prm_min'])} against {pct(at_16['prm_product'])})",
                f"({signed(100 * d16['prm_min']['prm_product']['difference'])}, "
                f"{interval(d16['prm_min']['prm_product'])})"]
    # 7: the beam's shape
    for search in (variant("07_expansions_2")["test_time"], RUN["test_time"], variant("07_expansions_8")["test_time"]):
        cells = []
        for b in ("4", "16"):
            shape = " × ".join(map(str, search["shapes"][b]))
            cells += [shape, pct(search[b]["beam_prm"]), pct(search[b]["dvts_prm"])]
        figures.append(row(*cells))
    two, four = variant("07_expansions_2")["test_time"]["4"]["beam_prm"], RUN["test_time"]["4"]["beam_prm"]
    n = RUN["test_time"]["n_problems"]
    figures.append(f"({pct(two)} against {pct(four)}, {round((four - two) * n)} of the {n} problems)")
    return figures


def test_the_variants_ran_on_the_recorded_run():
    """Every figure of the run the variants started from is the recorded run's; a record added to the recorded run
    later (notebook 02's ``prm.heatmap``, 2026-12-06) is one the variants' run had not written yet."""
    assert RESULT["run"] == {section: {key: RECORDED[section][key] for key in RESULT["run"][section] if
                                       key in RECORDED[section]} for section in RESULT["run"]}


def test_the_variants_are_the_scripts_and_the_readmes_exercises():
    script = runpy.run_path(str(ROOT / "scripts" / "exercise_runs.py"))["EXERCISES"]
    assert {name: [v["exercise"], v["notebook"], v["set"]] for name, v in RESULT["exercises"].items()} == {
        name: [exercise, notebook, setting] for name, (exercise, notebook, setting, _) in script.items()}
    readme = (ROOT / "README.md").read_text()
    items = dict(re.findall(r"^(\d)\. (.*?)(?=^\d\. |^#)", readme[readme.index("### Exercises"):], re.M | re.S))
    for name, (exercise, notebook, setting, _) in script.items():
        item = items[str(exercise)]
        assert item.startswith(f"**{notebook}:**"), (name, item[:40])
        for key, value in setting.items():  # "set `N_MC_ROLLOUTS = 2`, then `32`"
            assert key in item and str(value) in item, (name, key, value)


def test_the_page_quotes_the_variants_figures():
    missing = [figure for figure in page_figures() if figure not in PAGE]
    assert not missing, "docs/exercises.md lacks these figures of docs/exercise_metrics.json:\n" + "\n".join(missing)


def test_what_the_page_says_each_exercise_shows_holds():
    # 1: more rollouts, more wrong steps called right by the hard labels; soft = hard at 2; soft labels miss right steps
    two, eight, many = variant("01_rollouts_2")["data"], RUN["data"], variant("01_rollouts_32")["data"]
    hard = lambda d, k: d["mc_label_precision_recall"]["hard"][k]  # noqa: E731
    assert hard(many, "recall") == 1 and hard(many, "precision") < hard(eight, "precision")
    assert max(two, eight, many, key=lambda d: d["mc_label_agreement"]["hard"]) is eight
    assert two["mc_label_precision_recall"]["hard"] == two["mc_label_precision_recall"]["soft"]
    assert all(d["mc_label_precision_recall"]["soft"]["recall"] < hard(d, "recall") for d in (eight, many))
    # 2: 200 rows still far above the position baseline; QLoRA's gain not measured there, measured with all rows
    few = variant("02_train_rows_200")["prm"]
    assert few["step_auroc"] > few["position_baseline_auroc"] + 0.2
    assert few["qlora_minus_zero_shot"]["low"] < 0 < few["qlora_minus_zero_shot"]["high"]
    assert RUN["prm"]["qlora_minus_zero_shot"]["low"] > 0
    assert few["control"]["after_qlora"]["step_auroc"] < few["position_baseline_auroc"]
    # 3: weight 1 is the PRM alone, 0 the ORM alone; the PRM's addition is within the noise
    assert variant("03_process_weight_1")["orm"]["combined_auroc"] == RUN["orm"]["prm_min_auroc"]
    assert variant("03_process_weight_0")["orm"]["combined_auroc"] == RUN["orm"]["auroc"]
    noise = RUN["orm"]["differences"]["combined_minus_orm"]
    assert noise["low"] < 0 < noise["high"]
    # 4: a light anchor: DPO and Step-DPO below the base, Stepwise DPO above it, NLL only barely moved
    base = RUN["policy"]["base"]["accuracy"]
    sft_1 = variant("04_sft_weight_1")["policy"]
    light = sft_1["one_round_gold_labels"]
    assert light["dpo"]["accuracy"] < base < light["stepwise_dpo"]["accuracy"] and light["step_dpo"]["accuracy"] < base
    assert abs(light["nll_only"]["accuracy"] - RUN["policy"]["one_round_gold_labels"]["nll_only"]["accuracy"]) < 0.015
    chosen = lambda policy, method: policy["one_round_curves"][method]["logps/chosen"]  # noqa: E731
    assert chosen(sft_1, "DPO")["end"] < chosen(sft_1, "DPO")["start"] < chosen(RUN["policy"], "DPO")["end"]
    assert chosen(sft_1, "Stepwise DPO")["end"] > chosen(sft_1, "Stepwise DPO")["start"]
    # ... the first-error protocol: the three within 3 points, Stepwise DPO at NLL only's level, DPO risen to it
    first = variant("04_first_error")["policy"]
    for key in ("accuracy", "sampled_accuracy"):
        assert max(first[m][key] for m in METHODS) - min(first[m][key] for m in METHODS) < 0.03
    assert abs(first["stepwise_dpo"]["accuracy"] - first["nll_only"]["accuracy"]) < 0.01
    assert first["dpo"]["accuracy"] - RUN["policy"]["dpo"]["accuracy"] > 0.05
    # ... no anchor on the rounds: DPO far below the base, Stepwise DPO where it was
    unanchored = variant("04_onpolicy_sft_weight_1")["policy"]
    assert unanchored["dpo"]["accuracy"] < base - 0.2
    assert abs(unanchored["stepwise_dpo"]["accuracy"] - RUN["policy"]["stepwise_dpo"]["accuracy"]) < 0.01
    # 6: the PRM keeps climbing to N = 64, pass@64 reaches every problem, the ORM flat, majority voting creeping up
    many = variant("06_candidates_64")
    ns = ("16", "32", "64")
    product = [many["best_of_n"][n]["prm_product"] for n in ns]
    majority = [many["best_of_n"][n]["majority"] for n in ns]
    orm = [many["best_of_n"][n]["orm"] for n in ns]
    assert product == sorted(product) and majority == sorted(majority) and max(orm) - min(orm) < 0.035
    assert many["evaluation"]["pass_at_n"]["64"] == 1
    lead = lambda n: many["best_of_n_differences"][n]["prm_product"]["orm"]  # noqa: E731
    assert lead("64")["low"] > 0 > lead("16")["low"]
    # ... on 150 problems: the leads over the ORM and the ORM's over voting clear of zero, the PRM scores' order flipped
    d16 = variant("06_problems_150")["best_of_n_differences"]["16"]
    assert min(d16["prm_min"]["orm"]["low"], d16["prm_product"]["orm"]["low"], d16["orm"]["majority"]["low"]) > 0
    assert d16["prm_min"]["prm_product"]["low"] < 0 < d16["prm_min"]["prm_product"]["high"]
    assert RUN["best_of_n"]["16"]["prm_product"] > RUN["best_of_n"]["16"]["prm_min"]
    wide = variant("06_problems_150")["best_of_n"]["16"]
    assert wide["prm_min"] > wide["prm_product"]
    # 7: more beams with fewer expansions lose at B = 4; every shape ties at B = 16; 8 expansions capped at B = 4
    two, eight = variant("07_expansions_2")["test_time"], variant("07_expansions_8")["test_time"]
    own = RUN["test_time"]
    assert two["4"]["beam_prm"] < own["4"]["beam_prm"]
    assert two["16"]["beam_prm"] == own["16"]["beam_prm"] == eight["16"]["beam_prm"]
    assert eight["shapes"]["4"] == own["shapes"]["4"] == [1, 4]
