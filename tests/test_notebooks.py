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
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "gradflow tests",
                "language": "python",
            }
        )
    )
    return str(kernels.parent), "gradflow-test"


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {
        "01_tour",
        "02_why_the_eigenvalue_rule_fails",
        "03_recurrence_vs_attention",
        "04_analyse_your_pytorch_model",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_name, tmp_path, monkeypatch):
    jupyter_path, name = kernel_name
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    monkeypatch.setenv("GRADFLOW_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook, kernel_name=name, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert html, "a notebook shows at least one rich result"
    assert not any(o.get("name") == "stderr" and "Warning" in o.get("text", "") for o in outputs), [
        o.get("text") for o in outputs if o.get("name") == "stderr"
    ]


# Notebooks whose header another change owns; each needs the header line of jupytext.toml
# ("notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation").
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_running_and_saving_a_notebook_leaves_the_tracked_file_unchanged(path, tmp_path):
    """What JupyterLab does: jupytext's contents manager opens the .py as a notebook, a kernel adds
    outputs, execution counts, language_info and widget state, the user saves."""
    pytest.importorskip("jupyter_server")  # installed with gradflow[jupyter]
    import asyncio

    manager = jupytext.AsyncTextFileContentsManager(root_dir=str(tmp_path))  # what JupyterLab runs
    (tmp_path / "notebooks").mkdir()
    copy = tmp_path / "notebooks" / path.name
    copy.write_bytes(path.read_bytes())
    (tmp_path / "jupytext.toml").write_bytes((ROOT / "jupytext.toml").read_bytes())
    model = asyncio.run(manager.get(f"notebooks/{path.name}"))
    assert model["type"] == "notebook"
    notebook = model["content"]
    notebook.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0]}
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for count, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = count + 1
        cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        cell.metadata.update(execution={"iopub.status.busy": "2026-01-01T00:00:00Z"}, scrolled=True)
    asyncio.run(
        manager.save({"type": "notebook", "format": "json", "content": notebook}, f"notebooks/{path.name}")
    )
    assert copy.read_bytes() == path.read_bytes()
    assert not list(tmp_path.rglob("*.ipynb"))  # no paired notebook appears beside it


def test_checkpoints_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".ipynb_checkpoints/" in ignored


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_states_its_run_time_and_reads_quick_mode_from_python(path):
    text = path.read_text()
    first = jupytext.reads(text, fmt="py:percent").cells[0]
    assert first.cell_type == "markdown" and "**Run time**" in first.source and "full size" in first.source
    assert "QUICK = gf.options().quick" in text and "os.environ" not in text


def test_long_calls_show_a_progress_widget_in_a_kernel(kernel_name, tmp_path, monkeypatch):
    """In JupyterLab's kernel a long call draws a tqdm widget (not text on stderr), unasked."""
    import nbformat

    jupyter_path, name = kernel_name
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    setup = (
        "import gradflow as gf, gradflow.core._options as options\n"
        "options.PROGRESS_DELAY = 0.0  # a bar at once: the real delay spares sub-second calls"
    )
    train = "run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(6), 3, record_every=3{})"
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(setup),
            nbformat.v4.new_code_cell(train.format("")),
            nbformat.v4.new_code_cell(train.format(", progress=False")),
        ]
    )
    nbclient.NotebookClient(
        notebook, kernel_name=name, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    shown, hidden = notebook.cells[1].outputs, notebook.cells[2].outputs
    widgets = [o for o in shown if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    # one bar, the training's own (the measurements inside it draw none)
    assert [o.data["text/plain"].split(":")[0] for o in widgets] == ["train"], shown
    assert not any(o.get("name") == "stderr" for o in shown) and hidden == []
