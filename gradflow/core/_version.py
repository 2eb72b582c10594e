"""What code this is: the release (one place: ``pyproject.toml``) and a digest of the source.

The sweep cache keys every entry by `source_digest` as well as by the version, so a
result computed by other code (an edit, a merge, a release) is never read back.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # the gradflow package (this file is in core/)


def read_version() -> str:
    """The version in ``pyproject.toml`` of a source checkout, else the installed metadata.

    An editable install keeps the metadata of its last ``pip install``; the checkout's
    ``pyproject.toml`` is what the code beside it is, so it wins when present.
    """
    pyproject = PACKAGE.parent / "pyproject.toml"
    if pyproject.is_file():
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10
            import tomli as tomllib
        with open(pyproject, "rb") as fh:
            project = tomllib.load(fh).get("project", {})
        if project.get("name") == "gradflow" and isinstance(project.get("version"), str):
            return project["version"]
    try:
        return importlib.metadata.version("gradflow")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def source_digest() -> str:
    """SHA-256 (hex, 16 digits) over every ``.py`` file of the gradflow package, by relative path."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(os.fsencode(path.relative_to(PACKAGE).as_posix()) + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
