"""Verifier pretraining of the tiny reward base (stepdpo_lite.tutorial.verifier_pretraining), at CPU test sizes."""
import dataclasses
import hashlib
import json
import random
import re

import pytest
import torch

from stepdpo_lite.tutorial import tiny_models, toyworld
from stepdpo_lite.tutorial import verifier_pretraining as vp
from stepdpo_lite.rewards import OutcomeRewardModel, ProcessRewardModel


def test_graded_rows_are_seeded_labelled_by_the_checker_and_mix_both_formats():
    rows = vp.graded_rows(600, outcome_fraction=0.5, min_ops=1, max_ops=8)
    assert rows == vp.graded_rows(600, outcome_fraction=0.5, min_ops=1, max_ops=8, num_proc=2)
    outcome = [r for r in rows if "completion" in r]
    process = [r for r in rows if "completions" in r]
    assert len(outcome) + len(process) == 600 and 0.4 < len(outcome) / 600 < 0.6
    assert {len(r["completions"]) for r in process} == set(range(1, 9))  # every step count 1..8
    for r in process[:50]:
        verdict = toyworld.check(toyworld.parse_prompt(r["prompt"]), "".join(r["completions"]))
        assert r["labels"] == verdict.step_labels
    for r in outcome[:50]:
        assert r["label"] == toyworld.check(toyworld.parse_prompt(r["prompt"]), r["completion"]).answer_correct
    assert 0.3 < sum(r["label"] for r in outcome) / len(outcome) < 0.7  # error_rate 0.5
    other = vp.graded_rows(600, outcome_fraction=0.5, min_ops=1, max_ops=8, data_seed=2000)  # a later stage's rows
    shared = {r["prompt"] for r in rows} & {r["prompt"] for r in other}  # only short problems can meet by chance
    assert len(shared) < 60 and all(r["prompt"].count("Step") <= 3 for r in rows if r["prompt"] in shared)
    with pytest.raises(ValueError, match="fractions"):
        vp.graded_rows(10, outcome_fraction=1.5)
    # recover_rate was unchecked (NaN silently 0, 2 silently 1); n=True made one row, n=1.5 a TypeError
    for kw, message in ((dict(recover_rate=float("nan")), "recover_rate must be a finite number"),
                        (dict(recover_rate=2.0), "fractions lie in .0, 1.; recover_rate is 2.0"),
                        (dict(error_rate=True), "error_rate must be a finite number"),
                        (dict(n=True), "n must be an int >= 1, got True"), (dict(n=1.5), "n must be an int >= 1")):
        with pytest.raises(ValueError, match=f"graded_rows: {message}"):
            vp.graded_rows(**{"n": 10, **kw})


def test_process_rows_reproduce_the_reference_recipe_data():
    # ../shared/verifier's run drew chunk i as make_problems(20000, "train", seed=1000 + i) with
    # noisy_training_text(p, Random(seed), 0.5); --outcome-fraction 0 --min-ops 2 --max-ops 6 gives those rows.
    rows = vp.graded_rows(30, outcome_fraction=0.0, min_ops=2, max_ops=6)
    rng = random.Random(1000)
    for row, p in zip(rows, toyworld.make_problems(30, "train", seed=1000)):
        verdict = toyworld.check(p, toyworld.noisy_training_text(p, rng, 0.5))
        assert row == {"prompt": p.prompt, "completions": verdict.steps, "labels": verdict.step_labels}


def test_graded_rows_seed_chunk_i_with_data_seed_plus_i(monkeypatch):
    """The reference data drew chunk i with seed 1000 + i; one seed for every chunk repeated its problems chunk after
    chunk, unseen as the tests' n never passed one chunk (CHUNK made small: the real one holds 20,000 problems)."""
    monkeypatch.setattr(vp, "CHUNK", 10)
    rows = vp.graded_rows(25, outcome_fraction=0.0, min_ops=2, max_ops=6)
    for i, start in enumerate(range(0, 25, 10)):
        problems = toyworld.make_problems(min(10, 25 - start), "train", seed=1000 + i, min_ops=2, max_ops=6)
        assert [r["prompt"] for r in rows[start:start + 10]] == [p.prompt for p in problems]


def test_rows_are_encoded_as_the_reward_models_encode_them(tiny_model, tiny_tokenizer):
    process, outcome = ProcessRewardModel(tiny_model, tiny_tokenizer), OutcomeRewardModel(tiny_model, tiny_tokenizer)
    rows = vp.graded_rows(20, outcome_fraction=0.5)
    features = vp.encode_rows(process, outcome, rows)
    for row, f in zip(rows, features):
        if "completions" in row:
            ids, positions = process.encode(row["prompt"], row["completions"])
            labels = [int(x) for x in row["labels"]]
        else:
            ids, positions = outcome.encode(row["prompt"], row["completion"])
            labels = [int(row["label"])]
        assert (f["input_ids"], f["tag_positions"], f["tag_labels"]) == (ids, positions, labels)
        prompt_ids = tiny_tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        assert f["input_ids"][:f["solution_start"]] == process.prefix_ids + prompt_ids
    batch = vp.GradedCollator(tiny_tokenizer.pad_token_id)(features[:4])
    for i, f in enumerate(features[:4]):
        lm = batch["lm_labels"][i]
        n = len(f["input_ids"])
        assert (lm[:f["solution_start"]] == -100).all() and (lm[n:] == -100).all()
        assert lm[f["solution_start"]:n].tolist() == f["input_ids"][f["solution_start"]:]


def test_the_solution_starts_after_what_the_tokenizer_puts_before_the_prompt(tiny_model, tiny_tokenizer):
    """A tokenizer that puts a BOS first (Llama's): the next-token loss starts after the BOS and the prompt."""
    process, outcome = ProcessRewardModel(tiny_model, tiny_tokenizer), OutcomeRewardModel(tiny_model, tiny_tokenizer)
    process.prefix_ids = outcome.prefix_ids = [tiny_tokenizer.eos_token_id]  # a stand-in for a BOS
    rows = vp.graded_rows(6, outcome_fraction=0.5)
    assert {"completion" in r for r in rows} == {True, False}  # both formats
    for row, f in zip(rows, vp.encode_rows(process, outcome, rows)):
        prompt_ids = tiny_tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        assert f["input_ids"][:f["solution_start"]] == [tiny_tokenizer.eos_token_id] + prompt_ids


@pytest.mark.parametrize("bad, message", [({"completion": "x", "label": True}, "prompt 0: must be a str"),
                                          ({"prompt": "P", "completion": "x", "label": None}, "field 'label'")])
def test_encode_rows_names_a_bad_row_by_its_index(bad, message, tiny_model, tiny_tokenizer):
    """A missing prompt was a bare KeyError('prompt'); a bad outcome row after process rows was named by its place
    among the outcome rows (row 0), not in the rows given (rows[2])."""
    process, outcome = ProcessRewardModel(tiny_model, tiny_tokenizer), OutcomeRewardModel(tiny_model, tiny_tokenizer)
    good = {"prompt": "P", "completions": ["a"], "labels": [True]}
    with pytest.raises(ValueError, match=rf"encode_rows: rows\[2\]: .*{message}"):
        vp.encode_rows(process, outcome, [good, good, bad])


def test_loss_is_the_tag_loss_plus_the_weighted_next_token_loss(tiny_model, tiny_tokenizer):
    import torch.nn.functional as F
    from transformers import TrainingArguments
    process, outcome = ProcessRewardModel(tiny_model, tiny_tokenizer), OutcomeRewardModel(tiny_model, tiny_tokenizer)
    features = vp.encode_rows(process, outcome, vp.graded_rows(8))
    batch = vp.GradedCollator(tiny_tokenizer.pad_token_id)(features)
    args = TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to=[])
    losses = {}
    for w in (0.0, 0.5):
        trainer = vp.VerifierPretrainingTrainer(model=tiny_model, args=args, yes_id=process.yes_id,
                                                no_id=process.no_id, lm_weight=w)
        losses[w] = trainer.compute_loss(tiny_model, batch).item()
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    tag = F.cross_entropy(logits[batch["tag_rows"], batch["tag_cols"]][:, [process.yes_id, process.no_id]],
                          1 - batch["tag_labels"])
    lm = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), batch["lm_labels"][:, 1:].reshape(-1))
    assert losses[0.0] == pytest.approx(tag.item(), abs=1e-5)
    assert losses[0.5] == pytest.approx(tag.item() + 0.5 * lm.item(), abs=1e-5)


def test_the_pretraining_rewards_are_the_yes_minus_no_logit_at_each_tag(tiny_model, tiny_tokenizer):
    """The rewards the evaluation's AUROCs read: log-odds of Yes, as the reward models score; only the loss was
    tested, and No - Yes, which ranks every wrong step above every right one, went unseen."""
    from transformers import TrainingArguments
    process, outcome = ProcessRewardModel(tiny_model, tiny_tokenizer), OutcomeRewardModel(tiny_model, tiny_tokenizer)
    batch = vp.GradedCollator(tiny_tokenizer.pad_token_id)(vp.encode_rows(process, outcome, vp.graded_rows(8)))
    args = TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to=[])
    trainer = vp.VerifierPretrainingTrainer(model=tiny_model, args=args, yes_id=process.yes_id, no_id=process.no_id)
    _, rewards = trainer._loss_and_rewards(tiny_model, batch)
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    at_tags = logits[batch["tag_rows"], batch["tag_cols"]]
    assert torch.allclose(rewards, at_tags[:, process.yes_id] - at_tags[:, process.no_id], atol=1e-5)


def _config(tmp_path, name, **kw):
    return vp.VerifierPretrainingConfig(out=str(tmp_path / name), rows=96, batch_size=16, max_steps=4, eval_every=2,
                                        n_eval_problems=3, learning_rate=1e-3, device="cpu", num_proc=1,
                                        checkpoint_dir=str(tmp_path / f"{name}.ckpt"), **kw)


@pytest.mark.parametrize("args, message", [(["--eval-every", "0"], "eval_every must be an int >= 1, got 0"),
                                           (["--policy-fraction", "1.5"], "policy_fraction must be in .0, 1., got 1.5"),
                                           (["--policy-fraction", "-0.5"], "policy_fraction must be in .0, 1."),
                                           (["--learning-rate", "nan"], "learning_rate must be a finite number"),
                                           (["--lm-weight", "-1"], "lm_weight must be >= 0, got -1.0"),
                                           (["--rows", "0"], "rows must be an int >= 1, got 0"),
                                           (["--eval-split", "tset"], "eval_split must be one of"),
                                           (["--min-ops", "5", "--max-ops", "2"], "min_ops must be <= max_ops"),
                                           (["--warmup-steps", "-1"], "warmup_steps must be an int >= 0"),
                                           (["--data-seed", "-1"], "data_seed must be an int >= 0")])
def test_a_bad_setting_is_refused_before_any_data_or_model_is_made(args, message, monkeypatch, capsys):
    """eval_every=0 stopped the run at its first optimizer step (ZeroDivisionError, after all the data was made),
    a policy_fraction over 1 (or below 0) made more rows than --rows asked, a NaN learning rate trained to NaN. On
    the command line the refusal is a usage error (exit 2, the message after "error: "), not a traceback."""
    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the settings were checked")
    monkeypatch.setattr(tiny_models, "load_tiny_base", no_model)
    with pytest.raises(SystemExit) as done:
        vp.main(["--out", "/nonexistent/verifier", *args])
    said = capsys.readouterr().err.rsplit("error: ", 1)[-1]
    assert done.value.code == 2 and re.match(f"VerifierPretrainingConfig: {message}", said), said
    assert vp.VerifierPretrainingConfig(policy_fraction=1.0, lm_weight=0.0).policy_fraction == 1.0
    assert vp.VerifierPretrainingConfig(min_ops=3, max_ops=3).min_ops == 3  # one length of problem is a recipe


def test_the_policy_makes_the_nearest_whole_number_of_rows_to_its_share(tmp_path, monkeypatch):
    """policy_fraction is a share of --rows: 10 rows at 0.29 are 3 of the policy's (2.9), not 2 (cut)."""
    asked = {}

    class Stop(Exception):
        pass

    def graded(n, *args):
        asked["graded"] = n
        return []

    def policy(path, n, *args):
        asked["policy"] = n
        return []

    def stop(*args):
        raise Stop
    monkeypatch.setattr(vp, "graded_rows", graded)
    monkeypatch.setattr(vp, "policy_rows", policy)
    monkeypatch.setattr(vp, "encode_rows", stop)
    with pytest.raises(Stop):
        vp.pretrain_verifier(dataclasses.replace(_config(tmp_path, "share"), rows=10, policy_fraction=0.29))
    assert asked == {"graded": 7, "policy": 3}


def test_a_bool_seed_is_refused():
    """data_seed=True drew the rows of data_seed 1, without a word."""
    with pytest.raises(ValueError, match="VerifierPretrainingConfig: data_seed must be an int >= 0, got True"):
        vp.VerifierPretrainingConfig(data_seed=True)


@pytest.mark.parametrize("out, checkpoint_dir, message", [
    ("data", None, r"out: .*data holds \['notes.txt'\], not a saved copy"),
    ("verifier", "data", r"checkpoint_dir: .*data holds \['notes.txt'\], not a saved copy"),
    ("verifier", "verifier", r"checkpoint_dir .*verifier is out, in it or holds it"),
    ("verifier", "verifier/ckpt", r"checkpoint_dir .*ckpt is out, in it or holds it"),
    ("ckpt/verifier", "ckpt", r"checkpoint_dir .*ckpt is out, in it or holds it")])
def test_a_run_refuses_folders_it_would_delete_before_loading_anything(out, checkpoint_dir, message, tmp_path,
                                                                       monkeypatch):
    """The save replaced --out as a whole and the checkpoints were deleted after it, both once training was over:
    --out data or --checkpoint-dir data deleted a user's files, a checkpoint_dir in out the model just saved."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **k: pytest.fail("a model was loaded first"))
    config = _config(tmp_path, out)
    config.checkpoint_dir = str(tmp_path / checkpoint_dir) if checkpoint_dir else None
    with pytest.raises(ValueError, match=f"pretrain_verifier: {message}"):
        vp.pretrain_verifier(config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["notes.txt"]


def test_resume_without_a_checkpoint_is_refused_before_any_rows_are_made(tmp_path, monkeypatch):
    """resume=True looked for a checkpoint only once the rows were made and encoded (minutes at the default 100,000
    rows), then said "--resume" to a Python caller too."""
    monkeypatch.setattr(vp, "graded_rows", lambda *a, **k: pytest.fail("rows were made first"))
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **k: pytest.fail("a model was loaded first"))
    (tmp_path / "v.ckpt").mkdir()  # there, but empty: a run that stopped before its first checkpoint
    refused = r"pretrain_verifier: resume \(--resume\) but no checkpoint-\* in .*v\.ckpt"
    for stray in (None, "checkpoint-x"):  # one Trainer would not resume from is none either (it was an int() error)
        if stray:
            (tmp_path / "v.ckpt" / stray).mkdir()
        with pytest.raises(ValueError, match=refused):
            vp.pretrain_verifier(_config(tmp_path, "v"), resume=True)


def test_a_run_saves_a_reward_base_with_its_curve_and_resumes_exactly(tmp_path, capsys):
    from transformers import TrainerCallback

    five = lambda name: dataclasses.replace(_config(tmp_path, name), max_steps=5)  # the last step is validated too
    log = vp.pretrain_verifier(five("full"))
    prep = json.loads(capsys.readouterr().out.splitlines()[0])  # the blank samples were left out without a word
    assert prep["validation_solutions"] + prep["validation_blank"] == 3 * 4  # 3 problems, 4 samples each
    assert [(r["step"], r["rows_seen"]) for r in log["curve"]] == [(0, 0), (2, 32), (4, 64), (5, 80)]
    assert log["rows_seen"] == 80
    assert all(0 <= r["step_auroc"] <= 1 and 0 <= r["outcome_auroc"] <= 1 and 0 <= r["slipped_share"] <= 1
               for r in log["curve"])
    saved = json.loads((tmp_path / "full" / "training_log.json").read_text())
    assert saved["curve"] == log["curve"] and saved["config"]["rows"] == 96
    assert not (tmp_path / "full.ckpt").exists()  # checkpoints are scratch
    prm, orm = (ProcessRewardModel(str(tmp_path / "full"), device="cpu"),
                OutcomeRewardModel(str(tmp_path / "full"), device="cpu"))
    p = toyworld.make_problems(1, "test")[0]
    assert len(prm.score_solutions([p.prompt], [p.gold_solution])[0]) == len(p.ops)
    assert len(orm.score_solutions([p.prompt], [p.gold_solution])) == 1

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:  # after checkpoint-2 was written
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vp.pretrain_verifier(five("cut"), callbacks=[Interrupt()])
    assert (tmp_path / "cut.ckpt" / "checkpoint-2").exists() and not (tmp_path / "cut").exists()
    (tmp_path / "cut.ckpt" / "checkpoint-x").mkdir()  # not a checkpoint: resumed from checkpoint-2 all the same
    resumed = vp.pretrain_verifier(five("cut"), resume=True)
    assert [r["step"] for r in resumed["curve"]] == [0, 2, 4, 5]
    assert resumed["curve"][-1] == {**log["curve"][-1], "minutes": resumed["curve"][-1]["minutes"]}
    from safetensors.torch import load_file
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # one machine, one kernel: exact


def test_recovering_errors_reach_the_right_answer_through_a_wrong_step():
    rng = random.Random(0)
    problems = [p for p in toyworld.make_problems(200, "train", seed=3) if len(p.ops) > 1]
    kinds = set()
    for p in problems:
        verdict = toyworld.check(p, toyworld.recovering_solution(p, rng))
        assert verdict.answer_correct and verdict.first_error >= 0, verdict
        kinds.add(verdict.error_kinds[verdict.first_error])
        if verdict.error_kinds[verdict.first_error] == "arithmetic":  # the next step copies the slip, writes the truth
            assert verdict.error_kinds[verdict.first_error + 1] == "arithmetic", verdict  # not a 'copy' of the truth
    assert kinds == {"arithmetic", "copy"}
    # in the rows: outcome rows labelled right although a step is wrong, as the policy's own samples often are
    rows = vp.graded_rows(2000, outcome_fraction=1.0, recover_rate=0.5, min_ops=2, max_ops=6)
    slipped = [r for r in rows if r["label"] and not all(toyworld.check(toyworld.parse_prompt(r["prompt"]),
                                                                         r["completion"]).step_labels)]
    assert 0.15 < len(slipped) / len(rows) < 0.35  # error_rate 0.5 x recover_rate 0.5
    # no recover draws: the rows of the versions before recover_rate (the shipped models' data), digest taken at
    # 53e5e61^ with its graded_rows(50, error_rate=0.5, min_ops=1, max_ops=8, outcome_fraction=0.5, data_seed=1000)
    rows = vp.graded_rows(50, recover_rate=0.0, error_rate=0.5, min_ops=1, max_ops=8, outcome_fraction=0.5,
                          data_seed=1000)
    assert hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16] == "3f4e07aeba2a7d54"


def test_policy_rows_are_the_policys_own_samples_graded_by_the_checker(tiny_base_path):
    rows = vp.policy_rows(tiny_base_path, 24, min_ops=2, max_ops=4, outcome_fraction=0.5, data_seed=7)
    assert len(rows) == 24 and {"completion" in r for r in rows} == {True, False}
    assert rows == vp.policy_rows(tiny_base_path, 24, min_ops=2, max_ops=4, outcome_fraction=0.5, data_seed=7)
    for r in rows:
        problem = toyworld.parse_prompt(r["prompt"])
        text = r["completion"] if "completion" in r else "".join(r["completions"])
        verdict = toyworld.check(problem, text)
        assert (r["label"] == verdict.answer_correct) if "completion" in r else (r["labels"] == verdict.step_labels)


def test_policy_rows_draw_their_problems_with_seed_data_seed_plus_500(tiny_base_path, monkeypatch):
    """Apart from graded_rows' chunk 0 (seeded data_seed): drawn with data_seed, the policy's rows were its problems,
    unseen, as the test above checks the rows against the checker only."""
    def gold(model, tok, prompts, **kwargs):  # the policy writes each problem's gold solution: no sampling
        return [[toyworld.parse_prompt(p).gold_solution] for p in prompts]
    monkeypatch.setattr(vp.generation, "sample_solutions", gold)
    rows = vp.policy_rows(tiny_base_path, 6, min_ops=2, max_ops=4, outcome_fraction=0.0, data_seed=7)
    problems = toyworld.make_problems(6, "train", seed=507, min_ops=2, max_ops=4)
    assert [r["prompt"] for r in rows] == [p.prompt for p in problems]
    assert all(all(r["labels"]) for r in rows)


@pytest.mark.parametrize("kw, message", [({"outcome_fraction": float("nan")}, "outcome_fraction must be a finite"),
                                         ({"outcome_fraction": 2.0}, "outcome_fraction must lie in .0, 1."),
                                         ({"n": True}, "n must be an int >= 1"),
                                         ({"data_seed": True}, "data_seed must be an int >= 0")])
def test_policy_rows_refuses_bad_arguments_before_loading_the_policy(kw, message, monkeypatch):
    """A NaN outcome_fraction made every row a process row, 2.0 every one an outcome row, without a word."""
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **k: pytest.fail("the policy was loaded first"))
    with pytest.raises(ValueError, match=f"policy_rows: {message}"):
        vp.policy_rows("unused", **{"n": 4, **kw})


@pytest.mark.parametrize("kw, message", [({"num_proc": 0}, "num_proc must be an int >= 1, got 0"),
                                         ({"data_seed": True}, "data_seed must be an int >= 0, got True")])
def test_graded_rows_refuses_a_bad_num_proc_or_seed(kw, message):
    """num_proc=0 ran in this process and data_seed=True drew the rows of data_seed 1, both without a word."""
    with pytest.raises(ValueError, match=f"graded_rows: {message}"):
        vp.graded_rows(4, **kw)


def test_policy_rows_refuses_a_policy_that_writes_only_blanks(tiny_base_path, monkeypatch):
    """A blank sample is drawn again; a policy that never writes anything else was an endless loop."""
    draws = []
    def blank(model, tok, prompts, **kwargs):
        draws.append((len(prompts), kwargs["seed"]))
        return [["  "] for _ in prompts]
    monkeypatch.setattr(vp.generation, "sample_solutions", blank)
    with pytest.raises(ValueError, match="policy_rows: the policy wrote only blank solutions in 3 draws for 4 prob"):
        vp.policy_rows(tiny_base_path, 4, min_ops=2, max_ops=2, max_draws=3)
    assert draws == [(4, 1000), (4, 1001), (4, 1002)]  # each draw again with another seed: the same one redrew blanks
    with pytest.raises(ValueError, match="policy_rows: max_draws must be an int >= 1, got 0"):
        vp.policy_rows(tiny_base_path, 4, max_draws=0)


def test_evaluate_only_on_another_split_is_the_same_sample_as_validation_set(capsys):
    """`--evaluate-only --eval-split test` (the model card's held-out check of a verifier) scores the policy's
    samples on test problems, the same ones validation_set draws for that split and seed."""
    verifier = str(tiny_models.TINY_VERIFIER_DIR)
    vp.main(["--evaluate-only", "--init", verifier, "--eval-split", "test", "--n-eval-problems", "3", "--seed", "1",
             "--device", "cpu"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    val = vp.validation_set(str(tiny_models.TINY_BASE_DIR), 3, seed=1, device="cpu", split="test")
    assert out["split"] == "test" and out["solutions"] == len(val["prompts"]) > 0
    assert out["blank"] == val["blank"] and out["solutions"] + out["blank"] == 3 * 4
    assert {toyworld.parse_prompt(p).split for p in val["prompts"]} == {"test"}
    model, tok = tiny_models.load_tiny_base(verifier)
    again = vp.verifier_metrics(ProcessRewardModel(model, tok), OutcomeRewardModel(model, tok), val)
    assert {k: out[k] for k in again} == again


def test_validation_set_counts_the_blank_samples_it_leaves_out(tiny_base_path, monkeypatch):
    """A blank sample has nothing to judge: it was left out without a word, and only the rest were counted."""
    def half_blank(model, tok, prompts, n, **kwargs):
        return [[toyworld.parse_prompt(p).gold_solution, "", " \n", toyworld.parse_prompt(p).gold_solution][:n]
                for p in prompts]
    monkeypatch.setattr(vp.generation, "sample_solutions", half_blank)
    val = vp.validation_set(tiny_base_path, 3, device="cpu")
    assert val["blank"] == 6 and len(val["prompts"]) == len(val["solutions"]) == 6 and all(val["answer_correct"])


def test_verifier_metrics_read_steps_up_to_the_first_error_and_the_answers_that_slipped():
    """Three solutions: A right answer through a wrong step 2 (slipped), B right throughout, C wrong at step 1."""
    from types import SimpleNamespace

    steps = {"A": [0.9, 0.1, 0.95], "B": [0.8, 0.05], "C": [0.2]}
    outcome = {"A": 0.2, "B": 0.9, "C": 0.3}
    val = {"prompts": ["p"] * 3, "steps": [["a"] * 3, ["b"] * 2, ["c"]], "solutions": ["A", "B", "C"],
           "step_labels": [[True, False, False], [True, True], [False]], "answer_correct": [True, True, False]}
    process = SimpleNamespace(score_solutions=lambda prompts, step_lists, batch_size: [
        steps[s[0].upper()] for s in step_lists])
    orm = SimpleNamespace(score_solutions=lambda prompts, solutions, batch_size: [outcome[s] for s in solutions])
    # right steps 0.9, 0.8, 0.05 against wrong 0.1, 0.95, 0.2: 4 of 9 pairs ranked right; up to the first error
    # (A's 0.95 left out, B's 0.05 kept): 4 of 6; answers: A 0.2 and B 0.9 against C 0.3; slipped: A of the 2 right
    assert vp.verifier_metrics(process, orm, val) == {
        "step_auroc": round(4 / 9, 4), "first_error_auroc": round(4 / 6, 4), "outcome_auroc": 0.5,
        "slipped_share": 0.5, "outcome_auroc_slipped": 0.0}


def test_earlier_stages_are_read_from_a_verifier_stages_log_only(tmp_path):
    """A policy's training_log.json (data/tiny-base: no validation curve) is no stage of a verifier's chain."""
    assert vp.earlier_stages(tmp_path) == []
    (tmp_path / "training_log.json").write_text(json.dumps({"steps": 3, "loss_history": []}))
    assert vp.earlier_stages(tmp_path) == []
    first, second = {"curve": [{"step": 1}]}, {"curve": [{"step": 2}]}
    (tmp_path / "training_log.json").write_text(json.dumps({**second, "earlier_stages": [first]}))
    assert vp.earlier_stages(tmp_path) == [first, second]


@pytest.mark.parametrize("field_type, value, parsed", [(bool, "false", False), (bool, "true", True),
                                                       (int, "7", 7), (float, "0.25", 0.25)])
def test_the_command_line_parses_each_field_by_its_type(field_type, value, parsed, tmp_path, monkeypatch):
    """Options were made by hand from the fields' type names: any type but int and float was a str, so a bool field
    given "false" would have been the str "false", which is true (HfArgumentParser parses it as TRL's scripts do)."""
    extra = dataclasses.make_dataclass("Extra", [("knob", field_type, dataclasses.field(
        default=field_type(), metadata={"help": "A field added later."}))], bases=(vp.VerifierPretrainingConfig,))
    run = []
    monkeypatch.setattr(vp, "VerifierPretrainingConfig", extra)
    monkeypatch.setattr(vp, "pretrain_verifier", lambda c, resume, force: run.append(c) or {
        "steps": 0, "rows_seen": 0, "wall_seconds": 0, "curve": [{}]})
    vp.main(["--out", str(tmp_path / "v"), "--knob", value, "--rows", "2000", "--outcome-fraction", "0.3"])
    assert (run[0].knob, run[0].rows, run[0].outcome_fraction, run[0].checkpoint_dir) == (parsed, 2000, 0.3, None)
    assert type(run[0].knob) is field_type


def test_the_help_gives_every_field_with_its_own_help(capsys):
    with pytest.raises(SystemExit) as stop:
        vp.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert stop.value.code == 0
    for f in dataclasses.fields(vp.VerifierPretrainingConfig):
        assert f"--{f.name.replace('_', '-')}" in text and " ".join(f.metadata["help"].split()) in text, f.name


# ----------------------------------------------------------------------------- scripts/verifier_probe.py

def _verifier_probe():
    import runpy
    from pathlib import Path
    return runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "verifier_probe.py"))


def test_the_command_refuses_its_folders_before_it_reads_anything(tmp_path, monkeypatch, capsys):
    """pretrain_verifier's folder checks ran only inside it: a file at --out, or a --checkpoint-dir inside --out, was a
    traceback from the command (an audit of the kit's messages); now a usage error, before any model loads."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setattr(vp, "pretrain_verifier", lambda *a, **kw: pytest.fail("it ran"))
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **kw: pytest.fail("a model was loaded first"))
    for args, said in ((["--out", str(tmp_path / "a-file")], "pretrain_verifier: out"),
                       (["--out", str(tmp_path / "v"), "--checkpoint-dir", str(tmp_path / "v" / "ckpt")],
                        "is out, in it or holds it"),
                       (["--out", str(tmp_path / "v"), "--resume"], "resume (--resume) but no checkpoint-* in")):
        with pytest.raises(SystemExit) as done:
            vp.main(args)
        message = capsys.readouterr().err.rsplit("error: ", 1)[-1]
        assert done.value.code == 2 and said in message, message


@pytest.mark.parametrize("args", [["--steps", "0"], ["--batch-size", "0"], ["--graded-fraction", "1.5"],
                                  ["--max-minutes", "0"], ["--save", "notes"]])
def test_verifier_probe_refuses_bad_arguments_before_it_loads_anything(args, tmp_path, monkeypatch, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a model")  # a folder the save would delete
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **kw: pytest.fail("a model was loaded first"))
    with pytest.raises(SystemExit) as done:
        _verifier_probe()["main"](["graded", "--data", str(tmp_path / "no-data"), *args])
    message = capsys.readouterr().err.rsplit("error: ", 1)[-1]  # argparse's message, not its usage line
    assert done.value.code == 2 and args[0].lstrip("-").replace("-", "_") in message.replace("-", "_"), message
    assert (tmp_path / "notes" / "todo.txt").exists()


def test_verifier_probe_graded_save_leaves_no_half_written_base(tmp_path, tiny_base_path, monkeypatch):
    """graded --save wrote the weights, then the tokenizer, into the folder itself: a crash between the two left a
    base without its tokenizer where the next probe loads it. Now the folder appears only whole."""
    script, out = _verifier_probe(), tmp_path / "graded"
    load = tiny_models.load_tiny_base

    def crash(*args, **kw):
        raise OSError("disk full")

    def load_with_a_tokenizer_that_cannot_save(*args, **kw):
        model, tok = load(*args, **kw)
        tok.save_pretrained = crash
        return model, tok

    monkeypatch.setattr(tiny_models, "load_tiny_base", load_with_a_tokenizer_that_cannot_save)
    with pytest.raises(OSError, match="disk full"):
        script["graded_pretraining"](tiny_base_path, str(out), 1, batch_size=2)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one beside it
    monkeypatch.undo()
    assert script["graded_pretraining"](tiny_base_path, str(out), 1, batch_size=2) == 1
    model, tok = tiny_models.load_tiny_base(out)  # weights and tokenizer
    assert model.config.vocab_size == len(tok)


@pytest.mark.parametrize("option", ["--init", "--eval-policy"])
def test_a_model_folder_that_is_not_there_is_a_usage_error_saying_where_the_models_ship(option, tmp_path,
                                                                                        monkeypatch, capsys):
    """From a pip-installed package the defaults are folders of site-packages that are not there: the run made its
    settings and then failed in load_tiny_base, whose error named $STEPDPO_TINY_BASE, which this script does not
    read (a user's trial)."""
    monkeypatch.setattr(tiny_models, "load_tiny_base", lambda *a, **k: pytest.fail("a model was loaded"))
    missing = tmp_path / "site-packages" / "data" / "tiny-base"
    with pytest.raises(SystemExit) as stop:
        vp.main(["--evaluate-only", option, str(missing)])
    err = " ".join(capsys.readouterr().err.split())
    assert stop.value.code == 2
    assert f"{option} {missing}: no model there (data/tiny-base and data/tiny-verifier ship with the repository" in err
