"""Folders the tutorial's training scripts write: a run cut short can be run again; training on one's own texts."""
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import torch

from stepdpo_lite.tutorial import policy_eval, profiles, tasks, tiny_base
from stepdpo_lite.tutorial.task_problems import Verdict


def test_train_base_cut_short_leaves_nothing_and_runs_again(tmp_path, monkeypatch):
    """The Trainer made out/_trainer when it started: a run stopped before its save (Ctrl-C) left out holding only
    that, and a rerun took that half-made folder. The Trainer now works in a temporary folder, gone however the run
    ends: out is not made, and a folder holding only an older version's _trainer (and a model card) may be replaced."""
    out = tmp_path / "base"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the Trainer's own folder goes
    (tmp_path / "tmp").mkdir()
    sizes = dict(n_train=64, n_eval=2, max_steps=1, eval_every=1, batch_size=64, layers=1, hidden_size=32)

    def interrupt(*args, **kwargs):
        assert len(list((tmp_path / "tmp").glob("stepdpo-trainer-*"))) == 1  # the Trainer's folder, while it runs
        raise KeyboardInterrupt

    monkeypatch.setattr(policy_eval, "evaluate_policy", interrupt)
    with pytest.raises(KeyboardInterrupt):
        tiny_base.train_base(out, **sizes)
    assert not out.exists() and not list((tmp_path / "tmp").glob("stepdpo-trainer-*"))

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(tiny_base, "build_tokenizer", started)  # past the folder check: training would begin
    with pytest.raises(Started):
        tiny_base.train_base(out, **sizes)
    (out / "_trainer").mkdir(parents=True)  # an older version's leftover: the kit's own, replaced by the save
    (out / "_trainer" / "trainer_state.json").write_text("{}")
    (out / "README.md").write_text("my notes on this base\n")
    with pytest.raises(Started):
        tiny_base.train_base(out, **sizes)
    (out / "data.txt").write_text("not the kit's\n")  # anything else is no save to replace
    with pytest.raises(ValueError, match=r"train_base: out: .*base holds \['data.txt'\], not a saved copy"):
        tiny_base.train_base(out, **sizes)


def test_train_base_command_sets_every_setting_of_train_base(tmp_path, monkeypatch, capsys):
    """`train-base` took 5 of train_base's 11 settings: n_train, error_rate, batch_size, learning_rate, eval_every
    and n_eval could not be set from the command line. Its options are now TinyBaseConfig's fields."""
    runs = []
    monkeypatch.setattr(tiny_base, "train_base", lambda config, force: runs.append(config) or {"steps": 0})
    tiny_base.main(["train-base", "--out", str(tmp_path / "b"), "--seed", "3", "--n-train", "64", "--error-rate", "0.3",
                    "--max-steps", "5", "--batch-size", "8", "--learning-rate", "0.01", "--target-accuracy", "0.4",
                    "--eval-every", "2", "--n-eval", "4", "--layers", "1", "--hidden-size", "32"])
    assert runs == [tiny_base.TinyBaseConfig(out=str(tmp_path / "b"), seed=3, n_train=64, error_rate=0.3, max_steps=5,
                                             batch_size=8, learning_rate=0.01, target_accuracy=0.4, eval_every=2,
                                             n_eval=4, layers=1, hidden_size=32)]
    assert json.loads(capsys.readouterr().out) == {"steps": 0}
    tiny_base.main(["train-base", "--out", str(tmp_path / "c")])  # the defaults are the config's
    assert runs[1] == tiny_base.TinyBaseConfig(out=str(tmp_path / "c"))


def test_train_base_takes_a_config_checked_before_anything_is_made(tmp_path, monkeypatch):
    """train_base(config) and train_base(out, **settings) are one run; a setting changed on the config after it was
    made is checked again."""
    with pytest.raises(ValueError, match="train_base: eval_every must be an int >= 1, got 0"):
        tiny_base.TinyBaseConfig(eval_every=0)
    with pytest.raises(ValueError, match=r"train_base: error_rate must lie in \[0, 1\], got 1.5"):
        tiny_base.TinyBaseConfig(error_rate=1.5)

    class Started(Exception):
        pass

    made = []  # the model's settings; then the training problems stop the run
    monkeypatch.setattr(tiny_base, "build_tiny_model", lambda tok, **kw: made.append(kw))
    monkeypatch.setattr(tiny_base, "make_problems", lambda *a, **kw: (_ for _ in ()).throw(Started))
    config = tiny_base.TinyBaseConfig(out=str(tmp_path / "base"), seed=3, layers=1, hidden_size=32)
    for run in (lambda: tiny_base.train_base(config), lambda: tiny_base.train_base(tmp_path / "base", seed=3, layers=1,
                                                                                     hidden_size=32)):
        with pytest.raises(Started):
            run()
    assert made == [{"hidden_size": 32, "layers": 1, "seed": 3}] * 2
    with pytest.raises(ValueError, match="train_base: max_steps must be an int >= 1, got 0"):
        tiny_base.train_base(config, max_steps=0)
    for seed in ("3", 1.5, True, -1):  # "3" and 1.5 failed once the model was built, naming make_problems
        with pytest.raises(ValueError, match=f"train_base: seed must be an int >= 0, got {seed!r}"):
            tiny_base.train_base(config, seed=seed)
    config.learning_rate = float("nan")
    with pytest.raises(ValueError, match="train_base: learning_rate must be a finite number"):
        tiny_base.train_base(config)
    assert len(made) == 2 and not (tmp_path / "base").exists()


def test_train_base_replaces_an_older_versions_trainer_leftover(tmp_path):
    """An older version made out/_trainer as a run began, and a run cut short left out holding only that: such a
    folder is accepted, and the save replaces it whole (the model card kept, the leftover gone)."""
    out = tmp_path / "base"
    (out / "_trainer" / "runs").mkdir(parents=True)
    (out / "README.md").write_text("my notes on this base\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tiny_base.train_base(out, n_train=64, n_eval=2, max_steps=3, eval_every=2, batch_size=64, layers=1,
                                      hidden_size=32, target_accuracy=0.0)
    # evaluated at step 2 (every 2nd), where an accuracy of 0 reaches the target 0: stopped there, without a warning
    assert result["steps"] == 2 and [e["step"] for e in result["evaluations"]] == [2]
    assert not [w for w in caught if "never reached" in str(w.message)]
    assert sorted(p.name for p in out.iterdir() if p.name in ("README.md", "_trainer", "training_log.json")) == [
        "README.md", "training_log.json"]
    assert (out / "README.md").read_text() == "my notes on this base\n"


@pytest.mark.parametrize("prompts, solutions, message", [(["a", None], ["x", "y"], r"prompts\[1\] must be a str"),
                                                         (["a", "b"], ["x", 3], r"solutions\[1\] must be a str")])
def test_solution_lm_dataset_names_a_text_that_is_not_a_str(prompts, solutions, message, tiny_tokenizer):
    """None or a number was the tokenizer's (or str +'s) error, naming no row."""
    with pytest.raises(ValueError, match=f"solution_lm_dataset: {message}"):
        tiny_base.solution_lm_dataset(tiny_tokenizer, prompts, solutions)


def test_solution_lm_dataset_puts_the_loss_on_the_solution_and_its_eos_only(tiny_tokenizer):
    row = tiny_base.solution_lm_dataset(tiny_tokenizer, ["Problem: 2 + 3?\n"], ["Answer: 5"])[0]
    prompt = tiny_tokenizer("Problem: 2 + 3?\n", add_special_tokens=False)["input_ids"]
    solution = tiny_tokenizer("Answer: 5", add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert row["input_ids"] == prompt + solution and row["labels"] == [-100] * len(prompt) + solution


def test_train_base_draws_its_validation_problems_with_its_seed(tmp_path, monkeypatch):
    drawn, trained = [], []
    make_problems = tiny_base.make_problems
    monkeypatch.setattr(tiny_base, "make_problems", lambda n, split, seed: drawn.append((n, split, seed)) or
                        make_problems(n, split, seed=seed))
    monkeypatch.setattr(tiny_base, "_train", lambda model, tok, ds, problems, *a, **kw: trained.append(problems))
    tiny_base.train_base(tmp_path / "base", seed=3, n_train=4, n_eval=2, layers=1, hidden_size=32)
    assert drawn == [(4, "train", 3), (2, "validation", 3)] and trained == [make_problems(2, "validation", seed=3)]


def test_training_commands_refuse_the_shipped_models_as_out_without_force(capsys):
    """`train-base` and verifier pretraining quoted without --out (their default) replaced data/tiny-base or
    data/tiny-verifier, what every notebook loads, after the whole training (a user's trial, 2026-12-05)."""
    from stepdpo_lite.tutorial import tiny_base, tiny_models, verifier_pretraining
    for main, argv in ((tiny_base.main, ["train-base"]), (verifier_pretraining.main, []),
                       (tiny_base.main, ["train-base", "--out", str(tiny_models.TINY_BASE_DIR) + "/"])):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert "is the shipped tiny" in capsys.readouterr().err
    tiny_models.refuse_shipped_out(tiny_models.TINY_BASE_DIR, force=True)  # --force: allowed
    tiny_models.refuse_shipped_out("/tmp/elsewhere", force=False)


def test_training_functions_refuse_the_shipped_models_as_out_without_force(monkeypatch):
    """Only the commands refused them: train_base(TinyBaseConfig()) and pretrain_verifier(VerifierPretrainingConfig())
    in Python, their configs' default out, replaced the shipped models after the whole training (an audit of the
    help texts, 2026-12-07). Refused before any data is made, in Python's terms."""
    from stepdpo_lite.tutorial import tiny_base, tiny_models, verifier_pretraining
    monkeypatch.setattr(tiny_base, "build_tokenizer", lambda *a, **k: pytest.fail("data made first"))
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **k: pytest.fail("a model was loaded first"))
    with pytest.raises(ValueError, match=r"^train_base: out .*data/tiny-base is the shipped tiny base policy .*"
                                         r"pass force=True"):
        tiny_base.train_base(tiny_base.TinyBaseConfig())
    with pytest.raises(ValueError, match=r"^train_base: out .*is the shipped"):
        tiny_base.train_base(str(tiny_base.TINY_BASE_DIR) + "/", seed=3)
    with pytest.raises(ValueError, match=r"^pretrain_verifier: out .*data/tiny-verifier is the shipped tiny reward "
                                         r"base .*pass force=True"):
        verifier_pretraining.pretrain_verifier(verifier_pretraining.VerifierPretrainingConfig())


def test_the_shipped_models_are_refused_as_out_however_the_path_is_written():
    """--out ../tiny-base or data/tiny-base/ from inside the repository is the shipped folder too: the path is
    compared once resolved, not as written. The suite wrote the folder as it is (a trailing / at most), never with ..
    in it."""
    from stepdpo_lite.tutorial import tiny_models
    for written in (str(tiny_models.TINY_BASE_DIR / ".." / "tiny-base"), str(tiny_models.TINY_VERIFIER_DIR) + "/"):
        with pytest.raises(ValueError, match="is the shipped tiny"):
            tiny_models.refuse_shipped_out(written, force=False)


class SayNumber:
    """A problem of one's own graded by its final answer only (no step checker, as on GSM8K)."""
    prompt = "Problem: say 7.\n"

    def is_correct(self, solution):
        return solution.strip() == "Answer: 7"

    def verdict(self, solution):
        return None


class NeverRight(SayNumber):
    """Graded wrong whatever the policy writes, by a checker whose verdicts have no error kinds (an empty list, which
    docs/own_task.md allows: evaluate_policy raised an IndexError on them, and fine_tune_base with it)."""

    def is_correct(self, solution):
        return False

    def verdict(self, solution):
        return Verdict([False], 0, False, [], [solution])


def test_fine_tune_base_trains_a_base_on_ones_own_texts_as_train_base_trains(tmp_path, tiny_base_path):
    """A user's trial copied train_base's body to train the tiny base on a task of their own: fine_tune_base runs the
    same training on any (prompt, solution) texts, evaluated by any problems' is_correct (no error kinds needed). A
    run that never reached target_accuracy was saved without a word (T16): it warns, with the best accuracy."""
    from safetensors.torch import load_file

    with pytest.warns(UserWarning, match=r"fine_tune_base: validation greedy accuracy never reached target_accuracy "
                                         r"1.0 in 2 steps \(best 0.000, at step 1\); saved to .*own all the same"):
        result = tiny_base.fine_tune_base(tmp_path / "own", [SayNumber.prompt] * 8, ["Answer: 7"] * 8, [NeverRight()],
                                          base=tiny_base_path, max_steps=2, eval_every=1, batch_size=4,
                                          target_accuracy=1.0)  # never reached: both evaluations run
    assert result["steps"] == 2 and [(e["step"], e["first_error_kinds"]) for e in result["evaluations"]] == [
        (1, {}), (2, {})]
    log = json.loads((tmp_path / "own" / "training_log.json").read_text())
    assert (log["base"], log["n_train"], log["batch_size"]) == (str(tiny_base_path), 8, 4)
    before, after = (load_file(Path(p) / "model.safetensors") for p in (tiny_base_path, tmp_path / "own"))
    assert before.keys() == after.keys() and not all(torch.equal(before[k], after[k]) for k in before)
    # its training_log.json marks it a tiny base: notebook 04 and onpolicy_rounds fine-tune it fully, not by LoRA
    assert profiles.tiny_model_folder(str(tmp_path / "own"))


def test_fine_tune_base_stopped_at_its_first_evaluation_leaves_nothing_and_names_its_eval_problems(
        tmp_path, tiny_base_path, monkeypatch):
    """An is_correct that returns no bool stopped the run at its first evaluation, after training, with an error that
    named evaluate_policy's "problem 0", and left out/_trainer, which a rerun took: the error names fine_tune_base's
    eval_problems, and nothing is left, out or the Trainer's temporary folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    class SaysFalse(SayNumber):
        def is_correct(self, solution):
            return "False"

    with pytest.raises(ValueError, match=r"fine_tune_base: eval_problems\[1\], solution 0: the problem's is_correct "
                                         r"must return a bool"):
        tiny_base.fine_tune_base(tmp_path / "own", [SayNumber.prompt] * 4, ["Answer: 7"] * 4,
                                 [SayNumber(), SaysFalse()], base=tiny_base_path, max_steps=2, eval_every=1,
                                 batch_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"] and not list((tmp_path / "tmp").glob("stepdpo-*"))


class UnspelledPrompt(SayNumber):
    prompt = "Problem: say 7 × 1.\n"


@pytest.mark.parametrize("change, message", [
    ({"solutions": ["Answer: 7", "Answer: 7 × 1"], "prompts": [SayNumber.prompt] * 2},
     r"solutions\[1\]: the tokenizer reads the characters '×' of the text as <unk> \(the model would learn to write "
     r"<unk>, which decodes to nothing\)"),
    ({"prompts": ["Problem: say 7 ÷ 1.\n"]}, r"prompts\[0\]: the tokenizer reads the characters '÷' of the text"),
    ({"eval_problems": []}, "eval_problems is empty"),
    # sampling refuses a prompt the tokenizer cannot spell: here before the training, not at its first evaluation
    ({"eval_problems": [SayNumber(), UnspelledPrompt()]}, r"eval_problems\[1\]: the tokenizer reads the characters "
                                                          "'×' of its prompt as <unk>"),
    # T16: checked before the training (prompt texts failed at the first evaluation, with out/_trainer made), a
    # percentage or a negative target (never or at once reached), no texts (failed inside datasets), a blank
    # solution (trained on prompt + EOS) and a text over the model's positions (trained with a warning only)
    ({"eval_problems": [SayNumber.prompt]}, r"eval_problems\[0\]: expected a problem with a str prompt and the "
                                            "methods is_correct, verdict"),
    ({"target_accuracy": 50.0}, r"target_accuracy must lie in \[0, 1\] \(a share of the problems\), got 50.0"),
    ({"target_accuracy": -1.0}, r"target_accuracy must lie in \[0, 1\]"),
    ({"prompts": [], "solutions": []}, "no prompts and solutions to train on"),
    ({"solutions": [" \n"]}, r"solutions\[0\] is blank"),
    ({"prompts": [SayNumber.prompt] * 2, "solutions": ["Answer: 7", "Answer: 7" * 400]},
     r"prompts\[1\] \+ solutions\[1\] is 1210 tokens, over the base's 1024 positions"),
    ({"out": "base"}, "out .*base is the base it starts from; save to another folder"),
    ({"max_steps": 0}, "max_steps must be an int >= 1"),
    ({"prompts": [SayNumber.prompt] * 2}, "2 prompts but 1 solutions"),
    ({"solutions": ["Answer: " + "7" * 1013]}, r"prompts\[0\] \+ solutions\[0\] is 1025 tokens, over the base's 1024"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"seed": 1.5}, "seed must be an int >= 0, got 1.5")])
def test_fine_tune_base_refuses_what_it_cannot_train_before_training(tmp_path, tiny_base_path, change, message):
    """A character outside the tiny tokenizer's (it would learn <unk>, which decodes to nothing), no problems to stop
    by, or the base itself as out (the shipped data/tiny-base, replaced) are refused, and nothing is written."""
    shutil.copytree(tiny_base_path, tmp_path / "base")
    kw = {"out": "own", "prompts": [SayNumber.prompt], "solutions": ["Answer: 7"], "eval_problems": [SayNumber()],
          **change}
    kw["out"] = tmp_path / kw["out"]
    with pytest.raises(ValueError, match=f"fine_tune_base: {message}"):
        tiny_base.fine_tune_base(base=tmp_path / "base", max_steps=kw.pop("max_steps", 1), **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_fine_tune_base_tokenizes_its_texts_once_and_names_an_unspelled_one_by_its_row(tmp_path, tiny_base_path,
                                                                                       monkeypatch):
    """check_spelled tokenized every prompt and solution, which the dataset then tokenized again: the rows' ids now
    find a text read as <unk>, and check_spelled reads only that row's texts again (and the eval prompts)."""
    checked = []
    check_spelled = tasks.check_spelled
    monkeypatch.setattr(tasks, "check_spelled", lambda tok, texts, *a, **kw: (checked.append(list(texts)),
                                                                              check_spelled(tok, texts, *a, **kw)))
    prompts, solutions = [SayNumber.prompt] * 3, ["Answer: 7", "Answer: 7", "Answer: 7 × 1"]
    with pytest.raises(ValueError, match=r"fine_tune_base: solutions\[2\]: the tokenizer reads the characters '×'"):
        tiny_base.fine_tune_base(tmp_path / "own", prompts, solutions, [SayNumber()], base=tiny_base_path)
    assert checked == [[SayNumber.prompt], [SayNumber.prompt], ["Answer: 7 × 1"]]  # eval prompts, then row 2's


@pytest.mark.parametrize("args, said", [
    (["eval-base", "--n", "0"], "--n must be at least 1 and --seed 0 or more, got 0 and 0"),
    (["eval-base", "--seed", "-1"], "--n must be at least 1 and --seed 0 or more, got 500 and -1"),
    (["eval-base", "--model", "typo"], "--model typo: no saved model there (no config.json)"),
    (["train-base", "--out", "b", "--learning-rate", "nan"], "train_base: learning_rate must be a finite number"),
    (["train-base", "--out", "b", "--max-steps", "0"], "train_base: max_steps must be an int >= 1, got 0"),
    (["train-base", "--out", "a_file"], "train-base: out: ")])
def test_the_commands_turn_bad_settings_into_usage_errors_before_any_model(args, said, tmp_path, monkeypatch, capsys):
    """TinyBaseConfig's checks (and a file as --out) were a traceback; eval-base's --n 0 was make_problems'
    traceback after the model had loaded, its --seed -1 the sampler's after the greedy pass, a --model with no model
    load_tiny_base's."""
    def no_model(*a, **kw):
        pytest.fail("a model was loaded or trained before the arguments were checked")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("notes")
    monkeypatch.setattr(tiny_base, "load_tiny_base", no_model)
    monkeypatch.setattr(tiny_base, "train_base", no_model)
    with pytest.raises(SystemExit) as done:
        tiny_base.main(args)
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and message.startswith(said), message
