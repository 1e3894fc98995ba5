"""notebooks/tour.ipynb: kept in git without outputs, and run top to bottom without an error.

Every section of the tour asserts what it shows (by-hand attention equals the model's, the
token losses add up to the model's loss, a gradient step lowers it, ...), so executing it is
the test. It runs in quick mode (CHATBOT_TOUR_QUICK=1: less pretraining, see its first cell).
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "tour.ipynb"
CELL_TIMEOUT = 300  # seconds; the slowest cell (a training) took about 20 s here


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for number, cell in enumerate(code, start=1):
        assert cell.outputs == [], f"code cell {number} was committed with its outputs"
        assert cell.execution_count is None, f"code cell {number} has an execution count"
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(monkeypatch, tmp_path):
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    monkeypatch.setenv("CHATBOT_TOUR_QUICK", "1")  # the kernel inherits the environment
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # what the tour trains, if it stops half way
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # "python3" is ipykernel's spec for the Python running the tests (the project's .venv):
    # jupyter_client starts it with sys.executable.
    kernel = KernelManager(kernel_name="python3")
    # Raises CellExecutionError, naming the cell and its traceback, on the first failing cell.
    NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)  # every cell ran
    first = "".join(o.get("text", "") for o in code[0].outputs if o.output_type == "stream")
    assert "(quick mode)" in first
    assert not list(tmp_path.glob("chatbot-tour-*")), "the last cell deletes what it trained"
