"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Kept apart from ``gradflow.report`` so that code which only writes data (the sweep
cache, CSV tables) does not import matplotlib.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; rename it to ``path`` only on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


def write_bytes_durably(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and flushed to disk, so a crash keeps the old
    file or the whole new one (a rename alone may reach the disk before the data)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
