"""Headless runner behind ``make tutorial``: executes the notebooks in order and collects metrics."""

from __future__ import annotations

import os
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def execute_notebook(path: str | os.PathLike, parameters: dict | None = None, output_path: str | os.PathLike | None = None,
                     timeout: int = 1200, cwd: str | os.PathLike | None = None):
    """Execute a notebook with ``parameters`` injected after its ``parameters``-tagged cell (papermill style).

    Returns the executed notebook; writes it to ``output_path`` when given. A failing cell raises
    ``nbclient.exceptions.CellExecutionError`` naming the cell.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    if parameters:
        idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
        src = "# injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(idx + 1, cell)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd or Path(path).parent)}})
    try:
        client.execute()
    finally:
        if output_path:
            Path(output_path).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(output_path))
    return nb
