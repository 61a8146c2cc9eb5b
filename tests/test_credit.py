"""credit: a trained policy's implicit step rewards β·ρ_k, notebook 05's credit table and the solution it draws."""
import pytest

from stepdpo_lite.tutorial import credit
from stepdpo_lite.tutorial.credit import mean_by_label


def test_mean_by_label_refuses_a_missing_label():
    with pytest.raises(ValueError, match=r"mean_by_label: step_labels\[0\]\[1\] must be a bool or 0/1, got None"):
        mean_by_label([[1, 0], [2]], [[True, None], [True]], False)  # was 0.0: None counted as wrong
    assert mean_by_label([[1, 0], [2]], [[True, 0], [1]], False) == 0.0
    assert mean_by_label([[1, 0], [2]], [[True, 0], [1]], 1) == 1.5
    assert mean_by_label([[1, 0], [2, 6]], [[True, 0], [1, 1]], True) == pytest.approx((1 + 2 + 6) / 3)  # not 2
    for label in ("yes", None, "False"):  # each matched no step: None, "no step has the label"
        with pytest.raises(ValueError, match="mean_by_label: label must be True or False"):
            mean_by_label([[1, 0], [2]], [[True, 0], [1]], label)


def test_implicit_step_rewards_refuses_a_start_it_would_not_read_a_lora_policy_against(monkeypatch):
    """A LoRA policy is read against its own 'ref' adapter, else its adapter disabled (get_step_rewards): a `start`
    given for it was dropped without a word, and notebook 05 passed one for every policy."""
    calls = []
    monkeypatch.setattr(credit, "get_step_rewards", lambda *a, ref_model=None, **k: calls.append(ref_model) or [])
    monkeypatch.setattr(credit, "is_peft_model", lambda model: model == "lora policy")
    with pytest.raises(ValueError, match="implicit_step_rewards: start is given, but the policy is a LoRA"):
        credit.implicit_step_rewards("lora policy", "tok", ["p"], ["r"], start="base")
    credit.implicit_step_rewards("lora policy", "tok", ["p"], ["r"])
    credit.implicit_step_rewards("full fine-tune", "tok", ["p"], ["r"], start="base")
    assert calls == [None, "base"]
    with pytest.raises(ValueError, match="a fully fine-tuned policy needs `start`"):
        credit.implicit_step_rewards("full fine-tune", "tok", ["p"], ["r"])


def test_implicit_rewards_of_pairs_reads_each_policy_against_its_own_start(monkeypatch):
    """Notebook 05 chose one start for all its policies (None only if every one was a PeftModel): a start given once
    is now passed to each full fine-tune and kept from each LoRA policy, which is read against its own adapter."""
    calls = []
    monkeypatch.setattr(credit, "get_step_rewards", lambda model, *a, ref_model=None, **k: calls.append(
        (model, ref_model)) or [])
    monkeypatch.setattr(credit, "is_peft_model", lambda model: model == "lora policy")
    pairs = {"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]}
    credit.implicit_rewards_of_pairs({"DPO": ("lora policy", "tok"), "Stepwise DPO": ("full fine-tune", "tok")},
                                     pairs, start="base")  # was a ValueError: start given to the LoRA policy
    assert calls == [("lora policy", None)] * 2 + [("full fine-tune", "base")] * 2
    with pytest.raises(ValueError, match="a fully fine-tuned policy needs `start`"):  # None is still refused
        credit.implicit_rewards_of_pairs({"Stepwise DPO": ("full fine-tune", "tok")}, pairs)


def test_implicit_step_rewards_reads_at_the_beta_and_batch_size_given(monkeypatch):
    """The β of a saved policy's step loss (``step_beta``) scales β·ρ_k: a fixed 0.1 made every policy's bars alike."""
    calls = []
    monkeypatch.setattr(credit, "get_step_rewards", lambda *a, **k: calls.append(k) or [])
    monkeypatch.setattr(credit, "is_peft_model", lambda model: False)
    credit.implicit_step_rewards("full fine-tune", "tok", ["p"], ["r"], start="base", beta=0.3, batch_size=5)
    credit.implicit_step_rewards("full fine-tune", "tok", ["p"], ["r"], start="base", delimiter="\n")
    assert calls == [{"ref_model": "base", "beta": 0.3, "delimiter": "\n\nStep", "batch_size": 5},
                     {"ref_model": "base", "beta": 0.1, "delimiter": "\n", "batch_size": 8}]


def test_step_beta_reads_the_saved_config_or_takes_the_default(tmp_path):
    assert credit.step_beta(tmp_path) == 0.1 and credit.step_beta(tmp_path, default=0.5) == 0.5
    (tmp_path / "stepwise_config.json").write_text('{"beta": 0.3, "step_beta": 0.2}')
    assert credit.step_beta(tmp_path) == 0.2  # the step loss's β, not the sequence-level one
    (tmp_path / "stepwise_config.json").write_text('{"beta": 0.3}')
    assert credit.step_beta(tmp_path, default=0.05) == 0.05


def test_step_delimiter_reads_where_the_saved_policy_split_its_steps(tmp_path):
    """Notebook 05 read every policy at the default delimiter: one trained at another split its ρ_k elsewhere."""
    assert credit.step_delimiter(tmp_path) == "\n\nStep" and credit.step_delimiter(tmp_path, default="\n") == "\n"
    (tmp_path / "stepwise_config.json").write_text('{"step_beta": 0.2, "step_delimiter": "\\n"}')
    assert credit.step_delimiter(tmp_path) == "\n" and credit.step_beta(tmp_path) == 0.2


def test_implicit_rewards_of_pairs_and_the_credit_table(monkeypatch):
    calls = []

    def fake(model, tokenizer, prompts, responses, *, start=None, beta=0.1, delimiter="\n\nStep", batch_size=8):
        calls.append((model, tokenizer, list(prompts), start, beta, delimiter, batch_size))
        return [[beta * (1.0 if "good" in r else -1.0) for _ in r.split("|")] for r in responses]

    monkeypatch.setattr(credit, "implicit_step_rewards", fake)
    monkeypatch.setattr(credit, "is_peft_model", lambda model: False)  # two full fine-tunes: both read against start
    pairs = {"prompt": ["p1", "p2"], "chosen": ["good|good", "good"], "rejected": ["good|bad", "bad"]}
    out = credit.implicit_rewards_of_pairs({"DPO": ("m1", "t1"), "Stepwise DPO": ("m2", "t2")}, pairs,
                                           start="base", beta=0.5, delimiter="|", batch_size=16)
    assert out["DPO"] == {"chosen": [[0.5, 0.5], [0.5]], "rejected": [[0.5, 0.5], [-0.5]]}
    assert [c[:2] for c in calls] == [("m1", "t1"), ("m1", "t1"), ("m2", "t2"), ("m2", "t2")]
    assert all(c[2:] == (["p1", "p2"], "base", 0.5, "|", 16) for c in calls)  # one reference, β and delimiter
    by_policy = credit.credit_by_policy(out, [[True, True], [True]], [[True, False], [False]])
    assert by_policy["DPO"] == {"chosen": 0.5, "rejected_right": 0.5, "rejected_wrong": 0.0}
    assert credit.credit_by_policy(out, [[True, True], [True]], [[True, True], [True]])["DPO"][
        "rejected_wrong"] is None  # no wrong step: n/a in the table
    assert credit.credit_example(out, [[True, False], [False]], 0) == {  # pairs count from 1, as everywhere
        "pair": 1, "step_labels": [True, False], "rewards": {"DPO": [0.5, 0.5], "Stepwise DPO": [0.5, 0.5]}}
    assert credit.credit_example(out, [[True, False], [False]], 1)["pair"] == 2
    with pytest.raises(ValueError, match="credit_example: DPO: 2 step rewards for 1 step labels"):
        credit.credit_example(out, [[True], [False]], 0)


def test_pick_credit_example_wants_a_right_beginning_then_a_mistake():
    labels = [[True, False], [True, True, False], [False, False, False], [True, True, True]]
    assert credit.pick_credit_example(labels) == 1
    assert credit.pick_credit_example([[True, False, False], [True, False, True]]) == 1  # the most right steps
    assert credit.pick_credit_example([[True, False], [True, False]]) == 0  # a tie: the first
    assert credit.pick_credit_example([[False], [True, True], []]) == 1  # none qualifies: the most right steps of all
    with pytest.raises(ValueError, match="rejected_step_labels is empty"):
        credit.pick_credit_example([])
    with pytest.raises(ValueError, match=r"rejected_step_labels\[0\]\[1\] must be a bool or 0/1"):
        credit.pick_credit_example([[True, None]])


def test_saved_step_settings_refuse_a_missing_folder_and_a_bad_config(tmp_path):
    """A mistyped policy folder gave the default β and delimiter without a word; a config of null, NaN, a JSON list or
    broken JSON was a TypeError, NaN, an AttributeError or a JSONDecodeError naming no file."""
    with pytest.raises(ValueError, match="step_beta: no policy folder"):
        credit.step_beta(tmp_path / "polciy")
    with pytest.raises(ValueError, match="step_delimiter: no policy folder"):
        credit.step_delimiter(tmp_path / "polciy")
    config = tmp_path / "stepwise_config.json"
    for text, match in [("{broken", "stepwise_config.json: not valid JSON"), ("[1]", "must hold a JSON object"),
                        ('{"step_beta": null}', "step_beta must be a finite number, got None"),
                        ('{"step_beta": NaN}', "step_beta must be a finite number, got nan"),
                        ('{"step_beta": 0}', "step_beta must be > 0")]:
        config.write_text(text)
        with pytest.raises(ValueError, match=match):
            credit.step_beta(tmp_path)
    config.write_text('{"step_delimiter": null}')
    with pytest.raises(ValueError, match="step_delimiter must be a non-empty str, got None"):  # was "None"
        credit.step_delimiter(tmp_path)
    config.write_text('{"step_delimiter": ""}')
    with pytest.raises(ValueError, match="step_delimiter must be a non-empty str, got ''"):
        credit.step_delimiter(tmp_path)


def test_credit_refuses_non_finite_rewards_and_rewards_without_their_side():
    """A NaN reward made a mean (and a recorded bar) NaN, None a TypeError from numpy; a policy's rewards without
    "chosen" or "rejected" were a KeyError."""
    with pytest.raises(ValueError, match=r"mean_by_label: step_values\[0\]\[1\] \(solution 0, step 1\) must be"):
        mean_by_label([[0.1, float("nan")]], [[True, True]], True)
    with pytest.raises(ValueError, match=r"mean_by_label: step_values\[0\]\[0\] .* got None"):
        mean_by_label([[None]], [[True]], True)
    with pytest.raises(ValueError, match="credit_by_policy: implicit_rewards must be a dict of policy name"):
        credit.credit_by_policy([("DPO", {"chosen": [[0.1]], "rejected": [[0.1]]})], [[True]], [[False]])
    with pytest.raises(ValueError, match=r"credit_by_policy: implicit_rewards\['DPO'\] must be a dict with"):
        credit.credit_by_policy({"DPO": {"rejected": [[0.1]]}}, [[True]], [[False]])
    with pytest.raises(ValueError, match=r"credit_example: implicit_rewards\['DPO'\] must be a dict with"):
        credit.credit_example({"DPO": {"chosen": [[0.1]]}}, [[True]], 0)
    with pytest.raises(ValueError, match=r"credit_example: DPO: rejected\[0\]\[0\] must be a finite number"):
        credit.credit_example({"DPO": {"rejected": [[float("inf")]]}}, [[True]], 0)
    with pytest.raises(ValueError, match="credit_example: rejected_labels: expected a list"):
        credit.credit_example({}, None, 0)


def test_format_credit_writes_a_mean_of_zero_as_a_number():
    """Only None (no step with that label) is "n/a": a mean of exactly 0 is a figure of the table."""
    table = credit.format_credit({"DPO": {"chosen": 0.0, "rejected_right": None, "rejected_wrong": -0.5}}, 1)
    assert table.splitlines()[-1].split() == ["DPO", "0.000", "n/a", "-0.500"]
