"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Kept apart from ``gradflow.report`` so that code which only writes data (the sweep
cache, CSV tables) does not import matplotlib.

Temporaries are named ``.tmp-gradflow-<host>-<pid>-...`` (files) and
``.gradflow-staging-<host>-<pid>-...`` (a study's output folder being built): a
``kill -9`` cannot be cleaned up after, so the next write in that folder removes the
temporaries of processes of this host that no longer exist. Published files get the
user's umask, not the 0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pandas as pd

_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
TMP_PREFIX = ".tmp-gradflow-"
STAGING_PREFIX = ".gradflow-staging-"
_OWNER = re.compile(r"^(?:\.tmp-gradflow-|\.gradflow-staging-)(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-")


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporaries left in ``folder`` by killed gradflow processes of this host."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        owner = _OWNER.match(name)
        if owner is None or owner["host"] != _HOST or _alive(int(owner["pid"])):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; rename it to ``path`` only on success (with
    the permissions a new file gets under the user's umask)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{TMP_PREFIX}{_HOST}-{os.getpid()}-", suffix=os.path.splitext(path)[1], dir=folder
    )
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike) -> Iterator[str]:
    """Yield a new folder beside ``out`` to write a set of outputs into; on success move each
    file into ``out`` (created if missing), on failure or interruption delete them all, so
    the set is published together or not at all. Stale staging folders of killed runs
    beside ``out`` are removed first."""
    out = os.path.abspath(os.fspath(out))
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    clean_stale_temporaries(parent)
    stage = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_HOST}-{os.getpid()}-", dir=parent)
    try:
        yield stage
        os.makedirs(out, exist_ok=True)
        clean_stale_temporaries(out)
        for name in sorted(os.listdir(stage)):
            os.replace(os.path.join(stage, name), os.path.join(out, name))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
