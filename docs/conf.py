"""Sphinx configuration: the API reference of gradflow's public names, and the theory notes.

Build with ``make docs`` (HTML into docs/_build/html, warnings are errors). The pages document
the public names (``gradflow.rnn``, ``gradflow.sweep.run``, ...), never module paths, so they
stay true when the implementation moves between private modules.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, not an installed copy

import gradflow  # noqa: E402

project = "gradflow"
author = "the gradflow developers"
copyright = "the gradflow developers, BSD-3-Clause"
release = version = gradflow.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style sections, built into Sphinx
    "sphinx.ext.mathjax",
    "myst_parser",  # theory.md stays Markdown, as the code and tests cite it
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" as fields: dataclass fields are not documented twice
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
# Long defaults (arrays, registries) would make signatures unreadable.
autodoc_preserve_defaults = True

myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"gradflow {release}"
html_static_path: list[str] = []


def _console_script() -> tuple[str, str]:
    """The ``gradflow`` command's ``module:function``, read from pyproject.toml (its one home)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["gradflow"].split(":")
    return module, function


# The help prints the default cache folder: show the documented default, not the builder's home.
_DOCUMENTED_CACHE_DIR = "~/.cache/gradflow/sweep"


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the block (argparse wraps to ``COLUMNS``), then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class GradflowHelp(Directive):
    """``.. gradflow-help:: sweep`` inserts ``gradflow sweep --help`` as the command prints it."""

    optional_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module, function = _console_script()
        main = getattr(importlib.import_module(module), function)
        argv = [*self.arguments[0].split(), "--help"] if self.arguments else ["--help"]
        out = io.StringIO()
        with (
            _environment(COLUMNS="100", GRADFLOW_CACHE_DIR=_DOCUMENTED_CACHE_DIR),
            contextlib.redirect_stdout(out),
            contextlib.suppress(SystemExit),
        ):
            main(argv)
        text = out.getvalue().rstrip()
        if not text:
            raise self.error(f"gradflow {' '.join(argv)} printed nothing")
        return [nodes.literal_block(text, text, language="text")]


def setup(app):
    app.add_directive("gradflow-help", GradflowHelp)
    return {"parallel_read_safe": True}
