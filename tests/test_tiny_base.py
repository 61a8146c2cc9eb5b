"""Folders the tutorial's training scripts write: a run cut short can be run again."""
import pytest

from stepdpo_lite.tutorial import tasks, tiny_base


def test_train_base_runs_again_after_a_run_cut_short(tmp_path, monkeypatch):
    """The Trainer makes out/_trainer when it starts: a run stopped before its save (Ctrl-C) left out holding only
    that, and every later train-base --out was refused as a folder of other files, not a saved model."""
    out = tmp_path / "base"
    sizes = dict(n_train=64, n_eval=2, max_steps=1, eval_every=1, batch_size=64, layers=1, hidden_size=32)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "evaluate_policy", interrupt)
    with pytest.raises(KeyboardInterrupt):
        tiny_base.train_base(out, **sizes)
    assert [p.name for p in out.iterdir()] == ["_trainer"]

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(tiny_base, "build_tokenizer", started)  # past the folder check: training would begin
    with pytest.raises(Started):
        tiny_base.train_base(out, **sizes)


@pytest.mark.parametrize("prompts, solutions, message", [(["a", None], ["x", "y"], r"prompts\[1\] must be a str"),
                                                         (["a", "b"], ["x", 3], r"solutions\[1\] must be a str")])
def test_solution_lm_dataset_names_a_text_that_is_not_a_str(prompts, solutions, message, tiny_tokenizer):
    """None or a number was the tokenizer's (or str +'s) error, naming no row."""
    with pytest.raises(ValueError, match=f"solution_lm_dataset: {message}"):
        tiny_base.solution_lm_dataset(tiny_tokenizer, prompts, solutions)


def test_training_commands_refuse_the_shipped_models_as_out_without_force(capsys):
    """`train-base` and verifier pretraining quoted without --out (their default) replaced data/tiny-base or
    data/tiny-verifier, what every notebook loads, after the whole training (a user's trial, 2026-12-05)."""
    from stepdpo_lite.tutorial import tiny_base, toyworld, verifier_pretraining
    for main, argv in ((tiny_base.main, ["train-base"]), (verifier_pretraining.main, []),
                       (tiny_base.main, ["train-base", "--out", str(toyworld.TINY_BASE_DIR) + "/"])):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert "is the shipped tiny" in capsys.readouterr().err
    toyworld.refuse_shipped_out(toyworld.TINY_BASE_DIR, force=True)  # --force: allowed
    toyworld.refuse_shipped_out("/tmp/elsewhere", force=False)
