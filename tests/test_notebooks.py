"""Every notebook in notebooks/ runs top to bottom, with small parameters, in this environment's kernel.

The notebooks are jupytext percent-format ``.py`` files (the one source of truth); jupytext
reads them as notebooks, nbclient executes them in a kernel started from this Python.
"""

import json
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec for this interpreter, first on the search path: never some other 'python3'."""
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    spec = kernels / "gradflow-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gradflow tests", "language": "python"}))
    return str(kernels.parent), "gradflow-test"


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"01_tour", "02_why_the_eigenvalue_rule_fails",
                                           "03_recurrence_vs_attention", "04_analyse_your_pytorch_model"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_name, tmp_path, monkeypatch):
    jupyter_path, name = kernel_name
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    monkeypatch.setenv("GRADFLOW_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, kernel_name=name, timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert html, "a notebook shows at least one rich result"
    assert not any(o.get("name") == "stderr" and "Warning" in o.get("text", "") for o in outputs), \
        [o.get("text") for o in outputs if o.get("name") == "stderr"]
