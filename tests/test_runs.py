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
