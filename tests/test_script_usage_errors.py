"""Usage errors of the command-line scripts: refused by argparse (exit 2, the option named) before a model is
loaded or data made, not found out minutes later or taken silently."""

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name):
    return runpy.run_path(str(ROOT / "scripts" / f"{name}.py"))


def _refused(name, args, monkeypatch, capsys, option=None):
    """``scripts/<name>.py args`` ends in argparse's error naming ``option`` (default: args[0]), nothing loaded."""
    from stepdpo_lite.tutorial import onpolicy, tiny_models

    def no_model(*a, **kw):
        pytest.fail("a model was loaded before the arguments were checked")

    monkeypatch.setattr(tiny_models, "load_tiny_base", no_model)
    monkeypatch.setattr(tiny_models, "build_tiny_model", no_model)
    # onpolicy.start_policy (onpolicy_rounds.py's loader) holds its own names for the loaders
    monkeypatch.setattr(onpolicy, "load_tiny_base", no_model)
    monkeypatch.setattr(onpolicy, "load_profile_model", no_model)
    script = _script(name)
    with pytest.raises(SystemExit) as done:
        script["main"](args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    option = (option or args[0]).lstrip("-").replace("-", "_")
    assert done.value.code == 2 and option in message.replace("-", "_"), message
    return message


@pytest.mark.parametrize("name, args", [
    ("ddp_tiny", ["--learning-rate", "nan"]), ("ddp_tiny", ["--learning-rate", "inf"]),
    ("stale_pairs", ["--lr", "nan"]), ("stale_pairs", ["--lr", "inf"]), ("stale_pairs", ["--beta", "nan"]),
    ("stale_pairs", ["--beta", "0"]), ("stale_pairs", ["--pair-weight", "nan"]),
    ("stale_pairs", ["--arms", "nll", "fresh", "nll"]),
    ("slip_geometry", ["--step", "nan"]), ("slip_geometry", ["--step", "inf"]),
])
def test_scripts_refuse_nan_and_inf_rates_before_loading_a_model(name, args, monkeypatch, capsys, tmp_path):
    """A check written "x <= 0" let nan through: ddp_tiny's learning rate was refused by torch after the model was
    loaded, stale_pairs trained its arms to nan weights, slip_geometry printed nan for every figure."""
    monkeypatch.chdir(tmp_path)  # ddp_tiny's default --out is runs/ddp_tiny, relative
    _refused(name, args, monkeypatch, capsys)


@pytest.mark.parametrize("args", [["--beta", "nan"], ["--beta", "0"], ["--beta", "0.1", "0.1"],
                                  ["--sft-weight", "-1"], ["--sft-weight", "1", "1"], ["--outcome-weight", "inf"],
                                  ["--outcome-weight", "0", "0"]])
def test_preference_sweep_refuses_bad_or_repeated_settings_before_any_runs(args, monkeypatch, capsys, tmp_path):
    """Each setting is a ~2 min notebook run: a repeated value ran its settings twice, a nan or negative one was
    found (or trained to nan weights) only when its turn came, after the settings before it had run."""
    script = _script("preference_sweep")

    def no_run(*a, **kw):
        pytest.fail("a setting ran before the arguments were checked")

    monkeypatch.setitem(script["main"].__globals__, "run_setting", no_run)
    monkeypatch.setattr(script["runs"], "require", lambda path, notebook: path)
    with pytest.raises(SystemExit) as done:
        script["main"](["--runs-dir", str(tmp_path), *args])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and args[0].lstrip("-") in message, message


@pytest.mark.parametrize("args", [["--learning-rates", "nan"], ["--learning-rates", "1e-3", "nan"],
                                  ["--learning-rates", "inf"], ["--learning-rates", "1e-3", "1e-3"],
                                  ["--epochs", "nan"], ["--epochs", "inf"]])
def test_reward_learning_rates_refuses_nan_inf_and_repeated_rates_before_loading_data(args, monkeypatch, capsys):
    """min([1e-3, nan]) is 1e-3: a nan learning rate passed the "min <= 0" check (so did inf and a nan --epochs),
    and a rate given twice trained and printed the same run twice."""
    script = _script("reward_learning_rates")

    def no_data(*a, **kw):
        pytest.fail("the data was loaded before the arguments were checked")

    monkeypatch.setattr(script["data"], "load_datasets", no_data)
    with pytest.raises(SystemExit) as done:
        script["main"](args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and args[0].lstrip("-") in message, message


def test_verifier_probe_refuses_a_save_over_its_own_base_and_a_nan_deadline(monkeypatch, capsys, tmp_path):
    """graded --save DIR --base DIR replaced the base it started from (a saved model: check_replaceable lets it be
    replaced) after minutes of training; --max-minutes nan passed "<= 0" and the deadline never came."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    message = _refused("verifier_probe", ["graded", "--data", str(tmp_path / "no-data"), "--base", str(base),
                                          "--save", str(tmp_path / "." / "base")], monkeypatch, capsys, "--save")
    assert "--base" in message and (base / "config.json").read_text() == "{}"
    _refused("verifier_probe", ["graded", "--data", str(tmp_path / "no-data"), "--max-minutes", "nan"],
             monkeypatch, capsys, "--max-minutes")


def test_slip_offsets_refuses_a_missing_or_repeated_policy_before_sampling(monkeypatch, capsys, tmp_path):
    """A --policy folder with no model was found only after the start policy had sampled (minutes at the default
    sizes); a policy given twice got one row, its path the key, where two were asked for."""
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "config.json").write_text("{}")
    _refused("slip_offsets", ["--policy", str(tmp_path / "typo")], monkeypatch, capsys)
    _refused("slip_offsets", ["--policy", str(saved), str(saved)], monkeypatch, capsys)


def test_seed_spread_refuses_an_out_file_that_is_one_of_its_inputs(monkeypatch, capsys, tmp_path):
    """--from-rounds a.json b.json --out a.json replaced seed 0's run (an onpolicy_rounds.py --out file, hours of
    rounds) with the {seed: metrics} verdict, which --from-rounds cannot read back."""
    from stepdpo_lite.tutorial import onpolicy_report

    run = tmp_path / "rounds_s0.json"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(onpolicy_report, "metrics_of", lambda rounds, base=None: {})  # the judging is tested elsewhere
    monkeypatch.setattr(onpolicy_report, "format_seed_summary", lambda by_seed, margin: "")
    run.write_text('{"config": {"seed": 0}, "rounds": [{}]}')
    (tmp_path / "other.json").write_text('{"config": {"seed": 1}, "rounds": [{}]}')
    _refused("seed_spread", ["--from-rounds", str(run), "other.json", "--out", "rounds_s0.json"], monkeypatch, capsys,
             "--out")
    assert run.read_text() == '{"config": {"seed": 0}, "rounds": [{}]}'


def test_onpolicy_rounds_refuses_a_save_policies_path_it_cannot_save_to_before_reading_the_run(
        monkeypatch, capsys, tmp_path):
    """--save-policies naming a file (or a folder whose dpo/ is a file) failed only when the last round's policies
    were saved, after every round had run and their training was lost."""
    script = _script("onpolicy_rounds")
    monkeypatch.setattr(script["runs"], "require", lambda *a, **kw: pytest.fail("the run was read first"))
    (tmp_path / "a_file").write_text("notes")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "dpo").write_text("notes")
    for save, said in (("a_file", "a_file is a file; the policies are saved in folders inside it"),
                       ("policies", "dpo is a file")):
        with pytest.raises(SystemExit) as done:
            script["main"](["--runs-dir", str(tmp_path / "none"), "--save-policies", str(tmp_path / save)])
        message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
        assert done.value.code == 2 and said in message, message
    assert (tmp_path / "a_file").read_text() == (tmp_path / "policies" / "dpo").read_text() == "notes"


@pytest.mark.parametrize("args, option", [(["--only", "04_no_such_variant"], "--only"),
                                          (["--only", "05_explorer_20", "05_explorer_20"], "--only"),
                                          (["--parallel", "0"], "--parallel")])
def test_exercise_runs_refuses_unknown_or_repeated_variants_before_any_runs(args, option, monkeypatch, capsys,
                                                                           tmp_path):
    """Each variant is a notebook run of up to 4 minutes: a misspelled name is refused with the list of names, not
    found out after the variants before it ran; a repeated one would run twice for one entry."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.setattr(notebooks, "run_on_copy", lambda *a, **kw: pytest.fail("a variant ran before the check"))
    message = _refused("exercise_runs", [*args, "--runs-dir", str(tmp_path), "--out", str(tmp_path / "x.json")],
                       monkeypatch, capsys, option)
    if "no_such" in args[1]:
        assert "05_explorer_20" in message  # the names to choose from


def test_exercise_runs_needs_a_whole_tutorial_run_before_any_runs(monkeypatch, capsys, tmp_path):
    """The variants read every notebook's outputs: a run without notebook 07's is refused, naming it; a --runs-dir
    that does not exist was made (runs.run_dir) and then said to lack notebook 07's figures; an unknown --profile
    was said to lack them too, not named as unknown."""
    from stepdpo_lite.tutorial import notebooks

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "metrics.json").write_text('{"data": {}}')
    monkeypatch.setattr(notebooks, "run_on_copy", lambda *a, **kw: pytest.fail("a variant ran before the check"))
    out = ["--out", str(tmp_path / "x.json")]
    assert "07_test_time_compute" in _refused("exercise_runs", ["--runs-dir", str(tmp_path), *out], monkeypatch,
                                              capsys)
    message = _refused("exercise_runs", ["--runs-dir", str(tmp_path / "nope"), *out], monkeypatch, capsys)
    assert "no such folder" in message and "test_time" not in message and not (tmp_path / "nope").exists()
    (tmp_path / "empty" / "tiny").mkdir(parents=True)
    assert "no metrics.json" in _refused("exercise_runs", ["--runs-dir", str(tmp_path / "empty"), *out],
                                         monkeypatch, capsys)
    message = _refused("exercise_runs", ["--profile", "foo", "--runs-dir", str(tmp_path), *out], monkeypatch, capsys)
    assert "unknown profile 'foo'" in message and "tiny" in message  # the profiles to choose from


@pytest.mark.parametrize("args, option", [
    (["--from-rounds", "missing.json"], "--from-rounds"), (["--from-rounds", "notes.txt"], "--from-rounds"),
    (["--from-rounds", "rounds_s0.json", "--round", "3"], "--round"),
    (["--from-rounds", "rounds_s0.json", "--seeds", "3"], "--seeds"),
    (["--from-rounds", "rounds_s0.json", "--set", "SFT_WEIGHT=1"], "--set"),
    (["--round", "1"], "--round"), (["--seeds", "0", "0"], "--seeds"), (["--set", "SEED=3"], "--set"),
    (["--profile", "foo"], "--profile"), (["--runs-dir", "nope"], "--runs-dir")])
def test_seed_spread_turns_bad_inputs_into_usage_errors_before_any_runs(args, option, monkeypatch, capsys,
                                                                       tmp_path):
    """A missing or non-JSON --from-rounds file, a --round past the files' last, repeated seeds, --set SEED=, an
    unknown profile and a run folder without notebook 02's PRM were tracebacks; --seeds beside --from-rounds (whose
    files hold their seeds) was dropped without a word."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rounds_s0.json").write_text('{"config": {"seed": 0}, "rounds": [{}]}')
    (tmp_path / "notes.txt").write_text("notes")
    monkeypatch.setattr(notebooks, "run_on_copy", lambda *a, **kw: pytest.fail("a seed ran before the check"))
    _refused("seed_spread", args, monkeypatch, capsys, option)


@pytest.mark.parametrize("args, option", [(["--profile", "foo"], "--profile"), (["--runs-dir", "nope"], "--runs-dir"),
                                          (["--runs-dir", "half"], "--runs-dir"),
                                          (["--runs-dir", "not_json"], "--runs-dir"),
                                          (["--runs-dir", "retrained"], "--runs-dir")])
def test_onpolicy_rounds_turns_a_missing_run_or_unknown_profile_into_a_usage_error(args, option, monkeypatch, capsys,
                                                                                   tmp_path):
    """An unknown --profile, a --runs-dir without notebook 01's run or notebook 02's PRM, and a metrics.json that is
    not JSON were tracebacks (or an exit without the usage line); a PRM saved again without the threshold recorded
    (notebook 02's training cell run again, its metrics cell not) was paired with the older PRM's threshold."""
    monkeypatch.chdir(tmp_path)
    for name in ("half", "retrained"):
        (tmp_path / name / "tiny").mkdir(parents=True)
        (tmp_path / name / "tiny" / "metrics.json").write_text('{"prm": {"first_error_threshold": -1.5}}')
    (tmp_path / "retrained" / "tiny" / "prm").mkdir()
    (tmp_path / "retrained" / "tiny" / "prm" / "process_reward_config.json").write_text(
        '{"first_error_threshold": null}')
    (tmp_path / "not_json" / "tiny").mkdir(parents=True)
    (tmp_path / "not_json" / "tiny" / "metrics.json").write_text("{")
    message = _refused("onpolicy_rounds", args, monkeypatch, capsys, option)
    assert {"half": "02_process_reward_model", "not_json": "not valid JSON",
            "retrained": "through its metrics cell"}.get(args[-1], "") in message


def test_onpolicy_rounds_looks_its_profile_up_once(monkeypatch, capsys, tmp_path):
    """main looked --profile up four times (its check, the LoRA start, the protocol, the run's settings)."""
    from stepdpo_lite.tutorial import profiles

    looked_up = []
    monkeypatch.setattr(profiles, "get_profile", lambda name: looked_up.append(name) or profiles.PROFILES[name])
    _refused("onpolicy_rounds", ["--runs-dir", str(tmp_path / "none"), "--protocol", "output_layer"], monkeypatch,
             capsys)  # stops at the missing run, past every use of the profile before a model loads
    assert looked_up == ["tiny"]


def test_onpolicy_rounds_help_says_what_trains_without_protocol(capsys):
    """--help showed one line of the docstring: nothing said that without --protocol the script trains by its own
    defaults (weighted step pairing through every layer), not by notebook 04's protocol."""
    with pytest.raises(SystemExit):
        _script("onpolicy_rounds")["main"](["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "not notebook 04's protocol" in text and "(default: none, the script's own: NLL weight 5" in text
    assert "--no-progress" in text


@pytest.mark.parametrize("args, option", [(["--profile", "foo"], "--profile"), (["--runs-dir", "nope"], "--runs-dir")])
def test_preference_sweep_turns_a_missing_run_or_unknown_profile_into_a_usage_error(args, option, monkeypatch,
                                                                                    capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    message = _refused("preference_sweep", args, monkeypatch, capsys, option)
    assert ("01_data_prep" if option == "--runs-dir" else "unknown profile") in message


@pytest.mark.parametrize("args, option", [
    (["--profile", "foo"], "--profile"), (["--runs-dir", "nope"], "--runs-dir"),
    (["--runs-dir", "half", "--reward", "both"], "--runs-dir"), (["--base", "/no/such/base"], "--base")])
def test_reward_learning_rates_turns_missing_data_or_base_into_a_usage_error(args, option, monkeypatch, capsys,
                                                                            tmp_path):
    """--reward both found the outcome data missing only after the process model's runs had trained."""
    from stepdpo_lite.tutorial import runs

    monkeypatch.chdir(tmp_path)
    data = runs.run_dir("tiny", tmp_path / "half") / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):  # the process data only, as load_datasets sees a saved dataset
        (data / f"{split}_stepwise").mkdir()
        (data / f"{split}_stepwise" / "state.json").write_text("{}")
    script = _script("reward_learning_rates")
    monkeypatch.setitem(script["main"].__globals__, "train_and_measure", lambda *a, **kw: pytest.fail("trained"))
    with pytest.raises(SystemExit) as done:
        script["main"](args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and option.lstrip("-").replace("-", "_") in message.replace("-", "_"), message
    if "half" in args:
        assert "outcome" in message


def test_reward_learning_rates_names_the_profiles_reward_base_when_no_base_was_given(monkeypatch, capsys):
    """A missing reward base that the profile named (from $STEPDPO_TINY_REWARD_BASE) was blamed on --base, which the
    user never gave (an audit of the kit's messages)."""
    import dataclasses

    from stepdpo_lite.tutorial import profiles
    tiny = dataclasses.replace(profiles.get_profile("tiny"), reward_model_name="/no/such/reward-base")
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)  # as $STEPDPO_TINY_REWARD_BASE, read at import, would set it
    script = _script("reward_learning_rates")
    monkeypatch.setitem(script["main"].__globals__, "train_and_measure", lambda *a, **kw: pytest.fail("trained"))
    with pytest.raises(SystemExit) as done:
        script["main"]([])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith("--profile tiny's reward base ($STEPDPO_TINY_REWARD_BASE where "
                                                       "set) /no/such/reward-base: no such folder"), message


@pytest.mark.parametrize("args, option", [(["likelihood", "--data", "nope"], "--data"),
                                          (["likelihood", "--base", "nope"], "--base"),
                                          (["graded", "--base", "nope"], "--base")])
def test_verifier_probe_turns_missing_data_or_base_into_a_usage_error(args, option, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    _refused("verifier_probe", args, monkeypatch, capsys, option)


def test_preference_sweep_prints_its_plan_before_the_settings_run(monkeypatch, capsys, tmp_path):
    """Each setting is a notebook run of minutes with its output captured: nothing said what would run, or how many."""
    script = _script("preference_sweep")
    monkeypatch.setitem(script["main"].__globals__, "run_setting", lambda profile, data, beta, sft, outcome: {
        "beta": beta, "sft_weight": sft, "outcome_weight": outcome,
        **{f"{n}_{k}": 0.5 for n in script["RUNS"] for k in ("accuracy", "sampled_accuracy")}})
    monkeypatch.setattr(script["runs"], "require", lambda path, notebook: path)
    script["main"](["--runs-dir", str(tmp_path), "--beta", "0.1", "0.5", "--sft-weight", "5"])
    text = capsys.readouterr().out
    assert text.startswith("2 settings (β × NLL weight × outcome weight)")
    assert "β 0.5 NLL 5.0 outcome 0.0: done in" in text  # as each finishes


@pytest.mark.parametrize("name, option", [("pair_expectation", "--policy"), ("slip_geometry", "--policy"),
                                          ("stale_pairs", "--policy"), ("slip_offsets", "--start")])
def test_scripts_turn_a_policy_folder_with_no_model_into_a_usage_error(name, option, capsys, tmp_path):
    """A --policy (--start) with no model there (a typo) was load_tiny_base's FileNotFoundError traceback."""
    with pytest.raises(SystemExit) as done:
        _script(name)["main"]([option, str(tmp_path / "typo")])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith(f"{option}: no tiny model at {tmp_path / 'typo'}"), message


@pytest.mark.parametrize("name, args", [
    ("uncorrected_mass", ["--steps", "0"]), ("uncorrected_mass", ["--samples", "0"]),
    ("uncorrected_mass", ["--uncorrected-weight", "0"]), ("uncorrected_mass", ["--uncorrected-weight", "nan"]),
    ("uncorrected_mass", ["--runs-dir", "none"]), ("uncorrected_mass", ["--uncorrected-gradient", "every"]),
    ("step_loss_reach", ["--problems-per-round", "0"]),
    ("step_loss_reach", ["--step-weights", "0"]), ("step_loss_reach", ["--step-weights", "nan"]),
    ("step_loss_reach", ["--step-weights", "5", "5"]), ("step_loss_reach", ["--runs-dir", "none"])])
def test_round_one_scripts_refuse_bad_sizes_and_weights_and_a_missing_run_before_loading_a_model(
        name, args, monkeypatch, capsys, tmp_path):
    """An unlikelihood weight of 0 would train the same policy twice and report a share of nothing; a step weight
    given twice, the same training twice."""
    monkeypatch.chdir(tmp_path)
    _refused(name, args, monkeypatch, capsys)


@pytest.mark.parametrize("name, args", [("pair_expectation", ["--seed", "-1"]), ("stale_pairs", ["--seed", "-1"]),
                                        ("onpolicy_rounds", ["--seed", "-1", "--runs-dir", "none"]),
                                        ("seed_spread", ["--seeds", "0", "-1"]),
                                        ("uncorrected_mass", ["--seed", "-1"]),
                                        ("step_loss_reach", ["--seed", "-1"])])
def test_scripts_refuse_a_negative_seed_before_any_work(name, args, monkeypatch, capsys, tmp_path):
    """pair_expectation and stale_pairs trained and measured with torch's seed 2**64 - 1, onpolicy_rounds failed in
    its first sampling once the policies had loaded, seed_spread ran seed 0's notebook (minutes) before -1's was
    refused."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(notebooks, "run_on_copy", lambda *a, **kw: pytest.fail("a seed ran before the check"))
    assert "0 or more" in _refused(name, args, monkeypatch, capsys)


@pytest.mark.parametrize("name, args", [
    ("seed_spread", ["--from-rounds", "rounds_s0.json", "--out"]),
    ("seed_spread", ["--out"]),
    ("exercise_runs", ["--runs-dir", "runs", "--out"]),
    ("onpolicy_rounds", ["--runs-dir", "none", "--out"])])
@pytest.mark.parametrize("out, said", [("folder", "a folder; name the file to write"),
                                       ("a_file/x.json", "a_file is a file, not a folder")])
def test_scripts_refuse_an_out_file_they_cannot_write_before_any_runs(name, args, out, said, monkeypatch, capsys,
                                                                      tmp_path):
    """An --out that is a folder (or under a file) failed only when the JSON was written, after every seed, variant
    or round had run (hours), and their figures were lost."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("notes")
    (tmp_path / "rounds_s0.json").write_text('{"config": {"seed": 0}, "rounds": [{}]}')
    monkeypatch.setattr(notebooks, "run_on_copy", lambda *a, **kw: pytest.fail("a run started before the check"))
    assert said in _refused(name, [*args, out], monkeypatch, capsys, "--out")


def test_onpolicy_rounds_makes_a_missing_out_folder_as_the_other_scripts_do(monkeypatch, capsys, tmp_path):
    """It alone refused an --out in a folder not made yet, which write_atomic makes; the run's absence is what
    stops it here, past the --out check."""
    monkeypatch.chdir(tmp_path)
    _refused("onpolicy_rounds", ["--runs-dir", "none", "--out", "new/rounds.json"], monkeypatch, capsys)


@pytest.mark.parametrize("args, said", [
    (["--step-gradient", "output_layer", "--step-pairing", "weighted"],
     "--step-gradient='output_layer' needs --step-pairing='first_token'"),
    (["--beta", "0"], "--beta must be > 0"),
    (["--rejected-sft-weight", "-1"], "--rejected-sft-weight must be >= 0"),
    (["--uncorrected-weight", "1"], "--uncorrected-weight must be >= 0 (0: none) and needs --step-gradient "
                                    "'output_layer', got 1.0 and 'all'"),
    (["--uncorrected-weight", "1", "--pairs", "solution"], "--pairs solution builds none"),
    (["--uncorrected-gradient", "all", "--protocol", "output_layer"],
     "--uncorrected-gradient must be one of ('all', 'output_layer') ('all' with an --uncorrected-weight above 0)"),
    (["--step-rejected", "fresh"], "--step-rejected='fresh' needs --step-pairing='first_token'")])
def test_onpolicy_rounds_names_the_options_of_a_bad_training_setting(args, said, monkeypatch, capsys):
    """TrainSettings' checks named its fields (step_gradient, rejected_sft_weight), not the options typed."""
    assert said in _refused("onpolicy_rounds", args, monkeypatch, capsys)


@pytest.mark.parametrize("args", [["--device", "nope"], ["--device", "cuda:0"]])
def test_verifier_probe_refuses_a_device_torch_cannot_use_before_any_work(args, monkeypatch, capsys, tmp_path):
    """graded pretrained on the GPU if there was one (use_cpu only for "cpu") and then loaded the model onto the
    misspelt device: torch's traceback after minutes of training."""
    import torch

    if args[1].startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is visible: cuda is a device torch can use here")
    monkeypatch.chdir(tmp_path)
    assert _refused("verifier_probe", ["graded", "--data", "none", *args], monkeypatch, capsys,
                    "--device").startswith(f"--device {args[1]}: ")


# ----------------------------------------------------------------------------- the `stepdpo-lite` runner, installed
# A user's trial (2026-12-05) installed the kit with a plain `pip install` and ran it from outside the repository.

def test_the_runners_kernel_stack_is_a_dependency_of_the_package_not_of_dev():
    """`stepdpo-lite`, the package's console script, stopped at once on "No module named 'nbformat'" after a plain
    `pip install`: nbclient, nbformat and ipykernel were in the [dev] extra only."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["stepdpo-lite"] == "stepdpo_lite.tutorial.notebooks:main"
    required = {Requirement(req).name for req in project["dependencies"]}
    assert {"nbclient", "nbformat", "ipykernel"} <= required


def test_the_runner_outside_a_clone_says_that_the_notebooks_ship_with_the_repository(tmp_path, monkeypatch, capsys):
    """A wheel holds no notebooks/: the runner said only "missing notebook(s) in .../site-packages/notebooks: 01"."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", tmp_path / "site-packages" / "notebooks")
    with pytest.raises(FileNotFoundError) as info:
        notebooks.resolve_notebooks(["01"])
    said = str(info.value)
    assert said.startswith(f"missing notebook(s) in {tmp_path}/site-packages/notebooks: 01: the notebooks and")
    for advice in ("run from a clone (`pip install -e .` in it)", "--notebook-dir CLONE/notebooks",
                   "$STEPDPO_TINY_BASE", "$STEPDPO_TINY_REWARD_BASE", "data/tiny-verifier"):
        assert advice in said
    assert notebooks.main(["--only", "01", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 1
    assert "pip install -e ." in capsys.readouterr().err and not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit):
        notebooks.main(["--help"])
    assert "not there: the notebooks and the tiny models" in " ".join(capsys.readouterr().out.split())
    # a folder of one's own that lacks the notebook: no word about clones
    with pytest.raises(FileNotFoundError, match=r"missing notebook\(s\) in .*: 01$"):
        notebooks.resolve_notebooks(["01"], notebook_dir=tmp_path)
    # a file, or a folder not there (a typo): said so, not only "missing notebook(s)"
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r": 01 \(.*notes.txt is a file, not a folder\)$"):
        notebooks.resolve_notebooks(["01"], notebook_dir=tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match=r": 01 \(no such folder: .*notebok\)$"):
        notebooks.resolve_notebooks(["01"], notebook_dir=tmp_path / "notebok")
    # a number that is no notebook, in the clone's own folder: the error lists what is there (it read as a missing
    # install)
    with pytest.raises(FileNotFoundError, match=r"missing notebook\(s\) in .*: 99 \(it holds 01_data_prep, "
                                                r"02_process_reward_model, .*07_test_time_compute\)$"):
        notebooks.resolve_notebooks(["99"], notebook_dir=Path(notebooks.__file__).parents[2] / "notebooks")


@pytest.mark.parametrize("field, variable, folder", [("model_name", "STEPDPO_TINY_BASE", "data/tiny-base"),
                                                      ("reward_model_name", "STEPDPO_TINY_REWARD_BASE",
                                                       "data/tiny-verifier")])
def test_the_runner_names_the_variable_of_a_tiny_model_that_is_not_there_before_any_notebook_runs(
        field, variable, folder, tmp_path, monkeypatch):
    """With --notebook-dir a clone's notebooks, the run failed in notebook 01's cell 8 on load_model's "no such
    folder: .../site-packages/data/tiny-base", with no word of $STEPDPO_TINY_BASE (or $STEPDPO_TINY_REWARD_BASE)."""
    import dataclasses

    import nbformat

    from stepdpo_lite.tutorial import notebooks, profiles

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), tmp_path / "01_a.ipynb")
    missing = tmp_path / "site-packages" / "data" / "gone"
    monkeypatch.setitem(profiles.PROFILES, "tiny",
                        dataclasses.replace(profiles.PROFILES["tiny"], **{field: str(missing)}))
    monkeypatch.setattr(notebooks, "execute_notebook", lambda *a, **kw: pytest.fail("a notebook ran"))
    with pytest.raises(FileNotFoundError) as info:
        notebooks.run_tutorial("tiny", tmp_path / "runs", ["01"], notebook_dir=tmp_path, progress=False)
    said = str(info.value)
    assert f"no tiny model at {missing}: it ships with the repository ({folder})" in said
    assert f"set ${variable} to the clone's {folder}" in said and "pip install -e ." in said
    assert not (tmp_path / "runs").exists()
    both = {f: str(missing) for f in ("model_name", "reward_model_name")}  # both named at once, not one per run
    monkeypatch.setitem(profiles.PROFILES, "tiny", dataclasses.replace(profiles.PROFILES["tiny"], **both))
    with pytest.raises(FileNotFoundError, match=r"STEPDPO_TINY_BASE.*; and no tiny model.*STEPDPO_TINY_REWARD_BASE"):
        notebooks.run_tutorial("tiny", tmp_path / "runs", ["01"], notebook_dir=tmp_path, progress=False)


@pytest.mark.parametrize("runs_dir", ["a_file", "a_file/runs", "runs_with_file"])
def test_the_runner_refuses_a_runs_dir_that_is_a_file_before_any_notebook_runs(runs_dir, monkeypatch, capsys,
                                                                              tmp_path):
    """A --runs-dir that is a file (or under one, or whose <profile> is one) was mkdir's NotADirectoryError (or
    FileExistsError) traceback."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("notes")
    (tmp_path / "runs_with_file").mkdir()
    (tmp_path / "runs_with_file" / "tiny").write_text("notes")
    monkeypatch.setattr(notebooks, "execute_notebook", lambda *a, **kw: pytest.fail("a notebook ran"))
    with pytest.raises(SystemExit) as done:
        notebooks.main(["--runs-dir", runs_dir, "--only", "01", "--no-progress"])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith(f"--runs-dir {runs_dir}: ") and "is a file" in message


@pytest.mark.parametrize("only", [["01", "01"], ["01", "01_data_prep"], ["1", "01_data_prep.ipynb"]])
def test_the_runner_refuses_a_notebook_named_twice_before_any_runs(only, monkeypatch, capsys, tmp_path):
    """`stepdpo-lite --only 01 01` ran notebook 01 twice (minutes each, the second overwriting the first)."""
    from stepdpo_lite.tutorial import notebooks

    monkeypatch.setattr(notebooks, "execute_notebook", lambda *a, **kw: pytest.fail("a notebook ran"))
    with pytest.raises(SystemExit) as done:
        notebooks.main(["--runs-dir", str(tmp_path / "runs"), "--only", *only, "--no-progress"])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith("--only: each notebook once"), message
    assert not (tmp_path / "runs").exists()


def test_a_failing_cell_is_numbered_among_the_code_cells_as_the_progress_bar_counts(tmp_path):
    """The bar said "5/12 cells" (code cells, and the injected parameters) and the error "cell 8 of 19" (markdown
    included) for the same cell."""
    import nbformat

    from stepdpo_lite.tutorial import notebooks

    cells = [nbformat.v4.new_markdown_cell("# A"),
             nbformat.v4.new_code_cell("N = 1", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("x = N"),
             nbformat.v4.new_code_cell("   "), nbformat.v4.new_markdown_cell("more"),
             nbformat.v4.new_code_cell("# divide\nx / 0"), nbformat.v4.new_code_cell("print('never')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "01_bad.ipynb")

    class Bar:
        n = 0

        def update(self):
            self.n += 1

        def set_postfix_str(self, text):
            pass

    bar = Bar()
    with pytest.raises(notebooks.NotebookError) as info:
        notebooks.execute_notebook(tmp_path / "01_bad.ipynb", {"N": 2}, timeout=120, progress=bar)
    assert "01_bad.ipynb failed at code cell 3 of 4 (cell 7 of 8 in the notebook) (first line: '# divide')" in str(
        info.value)
    assert info.value.cell_index == 6 and bar.n == 2  # the bar: 2/4 done, the third failing; not the injected cell


def test_the_runners_help_says_what_a_run_overwrites_what_it_resumes_and_what_only_leaves_stale(capsys):
    """`stepdpo-lite --help` did not say that an existing runs/<profile>/ is reused and overwritten, that a notebook
    restarts from its first cell (notebook 04 taking the rounds it saved), nor that `--only 02` leaves the later
    notebooks' figures describing the old outputs."""
    from stepdpo_lite.tutorial import notebooks

    with pytest.raises(SystemExit):
        notebooks.main(["--help"])
    said = " ".join(capsys.readouterr().out.split())
    for promise in ("An existing runs/<profile>/ is reused: each notebook run overwrites what its last run wrote",
                    "starts from its first cell: a notebook stopped part-way is run again from the start (notebook "
                    "04 then takes the", "rounds that finished, saved in runs/<profile>/onpolicy_rounds/",
                    "delete that folder to train them again",
                    "The figures of the notebooks not run that read what these rewrite (03 to 07 read 02's "
                    "PRM; 05, 06 and 07 write only figures) then describe the older outputs",
                    "tutorial.stale until they run again", "the command that reruns them"):
        assert promise in said, promise


def test_ddp_tiny_help_says_each_flag_and_its_default(capsys):
    """--out, --pairs, --max-steps and --learning-rate had neither a help text nor a default in --help."""
    with pytest.raises(SystemExit):
        _script("ddp_tiny")["main"](["--help"])
    said = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--out OUT", "runs/ddp_tiny"), ("--pairs PAIRS", "64"), ("--max-steps MAX_STEPS", "16"),
                          ("--batch-size BATCH_SIZE", "4"), ("--learning-rate LEARNING_RATE", "5e-05"),
                          ("--random-model", "False")):
        text = said.split(flag + " ", 1)[1].split(" --", 1)[0]  # the flag's own help
        assert len(text) > len(f"(default: {default})") and f"(default: {default})" in text, (flag, text)
    assert "relative to the working directory" in said


def test_ddp_tiny_without_the_tiny_base_stops_unless_asked_for_a_random_model(monkeypatch, capsys, tmp_path):
    """Without data/tiny-base the script trained a random tiny Llama, said only by the JSON field "model"."""
    monkeypatch.setenv("STEPDPO_TINY_BASE", str(tmp_path / "no-base"))
    with monkeypatch.context() as refusing:  # no model loaded there; the run below loads one
        message = _refused("ddp_tiny", ["--out", str(tmp_path / "out")], refusing, capsys, option="random_model")
    assert f"no tiny model at {tmp_path / 'no-base'}" in message
    _script("ddp_tiny")["main"](["--out", str(tmp_path / "out"), "--pairs", "4", "--batch-size", "2", "--max-steps",
                                 "1", "--random-model"])
    said = capsys.readouterr()
    assert "WARNING: no tiny base at" in said.err and "training a random tiny Llama (--random-model)" in said.err
    assert json.loads(said.out.splitlines()[-1])["model"] == "random tiny Llama"
