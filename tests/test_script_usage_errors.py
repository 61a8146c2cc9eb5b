"""Usage errors of the command-line scripts: refused by argparse (exit 2, the option named) before a model is
loaded or data made, not found out minutes later or taken silently."""

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name):
    return runpy.run_path(str(ROOT / "scripts" / f"{name}.py"))


def _refused(name, args, monkeypatch, capsys, option=None):
    """``scripts/<name>.py args`` ends in argparse's error naming ``option`` (default: args[0]), nothing loaded."""
    from stepdpo_lite.tutorial import onpolicy, toyworld

    def no_model(*a, **kw):
        pytest.fail("a model was loaded before the arguments were checked")

    monkeypatch.setattr(toyworld, "load_tiny_base", no_model)
    monkeypatch.setattr(toyworld, "build_tiny_model", no_model)
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
    from stepdpo_lite.tutorial import onpolicy

    run = tmp_path / "rounds_s0.json"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(onpolicy, "metrics_of", lambda rounds, base=None: {})  # the judging is tested elsewhere
    monkeypatch.setattr(onpolicy, "format_seed_summary", lambda by_seed, margin: "")
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
    for save in ("a_file", "policies"):
        with pytest.raises(SystemExit) as done:
            script["main"](["--runs-dir", str(tmp_path / "none"), "--save-policies", str(tmp_path / save)])
        message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
        assert done.value.code == 2 and "file" in message, message
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


def test_exercise_runs_needs_a_whole_tutorial_run_before_any_runs(monkeypatch, tmp_path):
    """The variants read every notebook's outputs: a run without notebook 07's is refused, naming it."""
    from stepdpo_lite.tutorial import notebooks

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "metrics.json").write_text('{"data": {}}')
    monkeypatch.setattr(notebooks, "run_on_copy", lambda *a, **kw: pytest.fail("a variant ran before the check"))
    with pytest.raises(FileNotFoundError, match="07_test_time_compute"):
        _script("exercise_runs")["main"](["--runs-dir", str(tmp_path), "--out", str(tmp_path / "x.json")])
