"""The run folder's helpers (stepdpo_lite.tutorial.runs)."""
import pytest

from stepdpo_lite.tutorial import runs


@pytest.mark.parametrize("profile", ["", ".", "..", "tiny/../24gb", "/tmp", None])
def test_run_dir_refuses_a_profile_that_is_not_one_folder_name(profile, tmp_path):
    """run_dir("", root) was root itself, where every profile's metrics.json would mix; "/tmp" a folder elsewhere."""
    with pytest.raises(ValueError, match="run_dir: profile must be a folder name"):
        runs.run_dir(profile, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    assert runs.run_dir("tiny", tmp_path / "runs") == tmp_path / "runs" / "tiny"


def test_first_rows_keeps_the_first_n_all_for_none_and_refuses_a_count_below_1_by_its_knob():
    """Notebooks 02 and 03 trim their datasets with it; N_TRAIN_ROWS = 0 or -1 gave an empty dataset that only
    failed later, in the trainer."""
    from datasets import Dataset

    ds = Dataset.from_dict({"x": list(range(5))})
    assert runs.first_rows(ds, 3)["x"] == [0, 1, 2]
    assert runs.first_rows(ds, 50)["x"] == list(range(5)) and runs.first_rows(ds, None) is ds
    for n in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=f"first_rows: N_TRAIN_ROWS must be an int >= 1 or None, got {n!r}"):
            runs.first_rows(ds, n, "N_TRAIN_ROWS")


def test_update_metrics_replaces_the_sections_named_and_merges_the_rest_in_one_write(tmp_path):
    """Notebooks replaced a section with two writes, update_metrics(run, {"policy": None}) and then the new one: a
    figure refused in the second left the section cleared. ``replace`` drops the old section in the same write."""
    runs.update_metrics(tmp_path, {"prm": {"step_auroc": 0.9}, "policy": {"dpo": {"accuracy": 0.1, "old": 1}},
                                   "evaluation": {"pass_at_n": {"1": 0.5, "16": 0.9}, "n_test_problems": 150}})
    metrics = runs.update_metrics(tmp_path, {"policy": {"dpo": {"accuracy": 0.6}},
                                             "evaluation": {"pass_at_n": {"1": 0.4}}, "prm": {"threshold": 0.0}},
                                  replace=["policy", "evaluation.pass_at_n"])
    assert metrics == runs.read_metrics(tmp_path) == {
        "prm": {"step_auroc": 0.9, "threshold": 0.0},  # not named: merged
        "policy": {"dpo": {"accuracy": 0.6}}, "evaluation": {"pass_at_n": {"1": 0.4}, "n_test_problems": 150}}
    assert runs.update_metrics(tmp_path, {"policy": None}, replace=("policy",))["policy"] is None  # cleared
    assert runs.update_metrics(tmp_path, {"new": {"a": 1}}, replace=["new"])["new"] == {"a": 1}  # none before
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(ValueError, match="update_metrics: policy.dpo.accuracy is not a finite number"):
        runs.update_metrics(tmp_path, {"policy": {"dpo": {"accuracy": float("nan")}}}, replace=["policy"])
    for replace, message in ((["polcy"], "replace names 'polcy', which part does not hold"),
                             (["policy.dpo"], "replace names 'policy.dpo', which part does not hold"),
                             ("policy", "expected a list of dotted section names, got one str")):
        with pytest.raises(ValueError, match=message):
            runs.update_metrics(tmp_path, {"policy": {"x": 1}}, replace=replace)
    assert (tmp_path / "metrics.json").read_text() == before  # nothing written
