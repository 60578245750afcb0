"""``examples/first_hour.ipynb`` runs in a real Jupyter kernel (nbclient), and every onnxpipe
object it ends a cell with shows as an HTML table."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs nbformat and nbclient (in the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="needs nbformat and nbclient (in the dev extra)")
pytest.importorskip("ipykernel", reason="needs ipykernel (in the dev extra)")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "first_hour.ipynb"


def test_the_notebook_runs_and_shows_tables(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    shown = [
        "".join(output.get("data", {}).get("text/html", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result"
    ]
    assert len(shown) == 5 and all(
        html.startswith("<pre") for html in shown
    )  # data, schema, model, metrics, model info
    assert "sepal_length" in shown[0] and "species" in shown[1]
    assert "TransformerChain" in shown[2] and "macro_accuracy" in shown[3] and "Input/Output" in shown[4]
