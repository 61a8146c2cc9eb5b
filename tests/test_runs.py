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
