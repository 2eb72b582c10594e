"""The documentation's promises: every public callable has a runnable example (pytest's
``--doctest-modules`` runs them), every public name is on a page of the API reference, and that
reference builds without a single warning."""

import importlib.util
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import gradflow as gf

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def public_modules() -> dict[str, types.ModuleType]:
    """``gradflow`` and its public submodules (``gf.inputs``, ``gf.sweep``, ...) by dotted name."""
    modules = {"gradflow": gf}
    for name in gf.__all__:
        if isinstance(getattr(gf, name), types.ModuleType):
            modules[f"gradflow.{name}"] = getattr(gf, name)
    return modules


def public_names() -> dict[str, object]:
    """Every name in a public module's ``__all__`` (not the submodules themselves), by dotted name."""
    names = {}
    for prefix, module in public_modules().items():
        for name in module.__all__:
            obj = getattr(module, name)
            if not isinstance(obj, types.ModuleType):
                names[f"{prefix}.{name}"] = obj
    return names


def public_callables() -> dict[str, object]:
    """Public functions and classes, and the public methods the classes define (``plot``,
    ``to_frame``, ...): what a user calls."""
    out = {}
    for qualname, obj in public_names().items():
        if not callable(obj):
            continue
        out[qualname] = obj
        if inspect.isclass(obj):
            for name, member in vars(obj).items():
                if not name.startswith("_") and inspect.isfunction(member):
                    out[f"{qualname}.{name}"] = member
    return out


def test_the_public_callables_are_found():
    # The walk must see what the README promises, or the example check below checks nothing.
    callables = public_callables()
    for name in (
        "gradflow.rnn",
        "gradflow.GradientFlow.plot",
        "gradflow.GradientFlow.to_frame",
        "gradflow.sweep.run",
        "gradflow.meanfield.chi1",
        "gradflow.tasks.adding",
    ):
        assert name in callables
    assert "gradflow.__version__" not in callables and "gradflow.sweep.TASKS" not in callables


def _examples_section(doc: str) -> str:
    """The text of a numpydoc ``Examples`` section ('' when there is none)."""
    match = re.search(r"^Examples\n-{8,}\n(.*?)(?=^\S[^\n]*\n-{3,}\n|\Z)", doc, flags=re.M | re.S)
    return match.group(1) if match else ""


def test_examples_section_is_read_as_numpydoc():
    doc = "Summary.\n\nExamples\n--------\n>>> 1 + 1\n2\n\nNotes\n-----\n>>> not an example\n"
    assert _examples_section(doc) == ">>> 1 + 1\n2\n\n"
    assert _examples_section("Summary.\n\n>>> 1 + 1\n2\n") == ""


def test_every_public_callable_has_a_runnable_example():
    # Runnable: the Examples live in gradflow/'s docstrings, which `--doctest-modules` executes.
    missing = [
        name
        for name, obj in public_callables().items()
        if ">>> " not in _examples_section(inspect.getdoc(obj) or "")
    ]
    assert not missing, f"no numpydoc Examples section with a >>> line: {', '.join(missing)}"


def _api_pages() -> str:
    pages = [DOCS / "index.rst", *sorted((DOCS / "api").glob("*.rst"))]
    return "\n".join(page.read_text() for page in pages)


def test_every_public_name_is_in_the_api_reference():
    pages = _api_pages()
    documented = set(re.findall(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)", pages, flags=re.M))
    missing = sorted(set(public_names()) - documented)
    assert not missing, f"not on docs/index.rst or a page of docs/api/: {', '.join(missing)}"
    unknown = sorted(
        name for name in documented if name not in public_names() and name not in public_modules()
    )
    assert not unknown, f"docs/api/ documents names gradflow does not export: {', '.join(unknown)}"


def test_the_api_reference_builds_without_warnings(tmp_path):
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None:
        pytest.skip("sphinx and myst-parser are not installed (pip install -e '.[dev]'): docs not built")
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0 and "WARNING" not in proc.stderr, proc.stderr
    # The pages carry the names: an autodoc that silently documented nothing would still build.
    measure = (out / "api" / "measure.html").read_text()
    assert 'id="gradflow.gradient_flow"' in measure and 'id="gradflow.GradientFlow"' in measure
    assert "usage: gradflow sweep" in (out / "api" / "cli.html").read_text()
    assert (out / "theory.html").is_file()
