"""Progress bars in an executed notebook: tqdm.auto draws an ipywidgets bar in the runner's kernel, and the executed
copy holds the widget's state (what Jupyter draws) and a text/plain fallback (what GitHub and other static viewers
show). That fallback was the bar's first text, 0%, in every executed copy."""
import json

import nbformat
import pytest

from stepdpo_lite.tutorial import notebooks as tutorial

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _bars(nb) -> list[dict]:
    """Each widget output of the notebook: {"text": its text/plain fallback, "model": its model's saved state}."""
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return [{"text": "".join(o["data"].get("text/plain", "")), "model": state.get(o["data"][WIDGET_VIEW]["model_id"])}
            for c in nb["cells"] for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]


def _notebook(tmp_path, name: str, *sources: str):
    cells = [nbformat.v4.new_code_cell("from tqdm.auto import tqdm"), *map(nbformat.v4.new_code_cell, sources)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(tmp_path / name))
    return tmp_path / name


def test_an_executed_copy_shows_each_bar_as_it_ended_and_keeps_the_widget(tmp_path):
    path = _notebook(tmp_path, "01_bars.ipynb", "for _ in tqdm(range(5), desc='loop'):\n    pass",
                     "for _ in tqdm(iter(range(3)), desc='no total & more'):\n    pass",
                     "for _ in tqdm(range(3), leave=False):\n    pass")
    out = tmp_path / "executed.ipynb"
    tutorial.execute_notebook(path, output_path=out, timeout=120, cwd=tmp_path)
    finished, unsized, hidden = _bars(json.loads(out.read_text()))
    assert finished["text"].startswith("loop: 100%|██████████| 5/5 [")  # as tqdm draws it in a terminal
    assert unsized["text"].startswith("no total & more: 3/? [")  # no total: no fraction to draw
    assert hidden["text"] == ""  # leave=False: Jupyter hides the bar at its end, a terminal erases it
    # Jupyter still draws the widget, from the state saved with the notebook
    assert finished["model"]["model_name"] == "HBoxModel" and unsized["model"]["model_name"] == "HBoxModel"


def test_a_notebook_that_fails_saves_its_bars_where_they_stopped(tmp_path):
    """nbclient saves the widgets' state only after the last cell ran: a failing notebook's copy had none."""
    path = _notebook(tmp_path, "01_fails.ipynb", "for i in tqdm(range(4), desc='fails'):\n"
                                                 "    if i == 2:\n        raise ValueError('stop')")
    out = tmp_path / "executed.ipynb"
    with pytest.raises(tutorial.NotebookError, match="ValueError: stop"):
        tutorial.execute_notebook(path, output_path=out, timeout=120, cwd=tmp_path)
    [stopped] = _bars(json.loads(out.read_text()))
    assert stopped["text"].startswith("fails:  50%|█████     | 2/4 [")
    assert stopped["model"]["model_name"] == "HBoxModel"
