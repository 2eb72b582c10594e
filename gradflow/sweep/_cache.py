"""A content-addressed cache of sweep results: one small JSON file per point.

The key is the SHA-256 of the point's configuration (parameters and seed), the task's
identity (with a digest of a user task's source), the gradflow version and a digest of
gradflow's own source, so a changed point, task or code is simply a different entry:
a result computed by other code is never read back (`cache_info` counts such stale
entries). Each file is written to a temporary name, flushed to disk and renamed,
so an interrupted sweep leaves finished entries whole and no partial ones; a file that
is nevertheless damaged (truncated, edited) fails its checksum and is recomputed, never
read as data. The checksum only catches accidents: without a secret it cannot stop a
forger, so every entry is also checked against the task's declared columns (`columns`:
numbers where numbers belong, strings only where declared, nothing nested). Only
regular files are read, never more than `MAX_ENTRY_BYTES`: a FIFO or a device at an
entry's path cannot hang a sweep.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core._files import write_bytes_durably
from ..core._version import read_version

FORMAT = "gradflow-sweep-cache-1"
ENTRIES = "entries-v1"  # bump when the entry layout changes
_KEY = re.compile(r"^[0-9a-f]{64}$")
MAX_ENTRY_BYTES = 1 << 20  # an entry is a few hundred bytes; more is not one of ours
# A declared column: ``float`` (any number, NaN and +-inf included), ``str`` (any string) or a
# tuple of the strings it may hold.
Columns = Mapping[str, Any]


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being recomputed.

    Examples
    --------
    Overwrite one of two cached entries; the next run recomputes it and says so:

    >>> import pathlib, tempfile, warnings
    >>> from gradflow import sweep
    >>> grid = {"hidden": [8], "seq_len": [40], "predictors": ["none"]}
    >>> with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = sweep.run(grid, seeds=[0, 1], cache=tmp, progress=False)
    ...     _ = next(pathlib.Path(tmp).rglob("*.json")).write_text("{}")
    ...     again = sweep.run(grid, seeds=[0, 1], cache=tmp, progress=False)
    >>> [w.category.__name__ for w in caught], again.attrs["sweep"]
    (['CacheWarning'], {'points': 2, 'cached': 1, 'computed': 1, 'failed': 0})
    """


def default_cache_dir() -> Path:
    """``$GRADFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradflow/sweep``, else ``~/.cache/gradflow/sweep``.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> from gradflow import sweep
    >>> with mock.patch.dict(os.environ, {"GRADFLOW_CACHE_DIR": "", "XDG_CACHE_HOME": "/scratch/me"}):
    ...     print(sweep.default_cache_dir().as_posix())
    /scratch/me/gradflow/sweep
    >>> with mock.patch.dict(os.environ, {"GRADFLOW_CACHE_DIR": "/data/sweeps"}):
    ...     print(sweep.default_cache_dir().as_posix())
    /data/sweeps
    """
    if os.environ.get("GRADFLOW_CACHE_DIR"):
        return Path(os.environ["GRADFLOW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradflow" / "sweep"


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, floats by shortest round-trip repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(task_id: str, point: Mapping[str, Any], version: str, code: str) -> str:
    """The SHA-256 naming a point's entry: its configuration, the task, the gradflow version and
    ``code``, the digest of gradflow's source (`gradflow.core._version.source_digest`)."""
    return _digest(
        canonical_json(
            {"format": FORMAT, "gradflow": version, "code": code, "task": task_id, "point": dict(point)}
        )
    )


def read_entry_text(path: Path) -> str | None:
    """The text of the regular file at ``path`` (None when missing), without ever blocking on a
    FIFO or reading a device; raises ``ValueError`` saying why a file is not an entry."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink (ELOOP), no permission, ...
        raise ValueError(f"cannot be opened as a file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_ENTRY_BYTES:
            raise ValueError(f"{info.st_size} bytes: too large for an entry")
        data = os.read(fd, MAX_ENTRY_BYTES + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def check_result(result: Mapping[str, Any], columns: Columns | None) -> str | None:
    """Why ``result`` is not what a task declaring ``columns`` returns (None: it is). Without a
    declaration, only flat values (numbers, strings, booleans, null) pass."""
    for name, value in result.items():
        if not (value is None or isinstance(value, (str, int, float, bool))):
            return f"{name!r} holds a {type(value).__name__}, not a number or a string"
    if columns is None:
        return None
    if list(result) != list(columns):
        return f"columns {list(result)} are not the task's {list(columns)}"
    for name, kind in columns.items():
        value = result[name]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{name!r} must be a number; got {value!r}"
        elif isinstance(value, bool) or not isinstance(value, str):
            return f"{name!r} must be a string; got {value!r}"
        elif kind is not str and value not in kind:
            return f"{name!r} must be one of {', '.join(kind)}; got {value[:40]!r}"
    return None


class Cache:
    """Sweep results on disk under ``root``, one entry per `cache_key`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.entries = self.root / ENTRIES
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"cache must be a directory; got the file {str(self.root)!r}")

    def path(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key}.json"

    def load(self, key: str, columns: Columns | None = None) -> dict[str, Any] | None:
        """The stored result, or None when missing; a damaged entry (or one that does not match
        the task's declared ``columns``) is removed, with a warning."""
        path = self.path(key)
        problem: str | None
        try:
            text = read_entry_text(path)
        except ValueError as exc:
            text, problem = None, str(exc)
        else:
            if text is None:
                return None
            problem = _check_entry(text, key, columns)
            if problem is None:
                return dict(json.loads(text)["result"])
        warnings.warn(
            f"cache entry {path} is damaged ({problem}); recomputing that point", CacheWarning, stacklevel=3
        )
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def store(
        self,
        key: str,
        task_id: str,
        point: Mapping[str, Any],
        version: str,
        code: str,
        result: Mapping[str, Any],
    ) -> None:
        pairs = [[k, v] for k, v in result.items()]  # a list keeps the task's column order
        entry = {
            "format": FORMAT,
            "key": key,
            "gradflow": version,
            "code": code,
            "task": task_id,
            "point": dict(point),
            "result": pairs,
            "sha256": _digest(canonical_json(pairs)),
        }
        write_bytes_durably(self.path(key), (canonical_json(entry) + "\n").encode("utf-8"))


def _check_entry(text: str, key: str | None, columns: Columns | None = None) -> str | None:
    """Why an entry's text cannot be trusted, or None when it can."""
    try:
        entry = json.loads(text)
    except ValueError:
        return "not valid JSON: truncated or overwritten"
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or "result" not in entry:
        return "not a gradflow sweep entry"
    if key is not None and entry.get("key") != key:
        return "stored under the wrong key"
    pairs = entry["result"]
    if entry.get("sha256") != _digest(canonical_json(pairs)):
        return "checksum mismatch"
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs
    ):
        return "not a list of (name, value) results"
    if len({p[0] for p in pairs}) != len(pairs):
        return "a column twice"
    return check_result(dict(pairs), columns)


@dataclass(frozen=True)
class CacheInfo:
    """What a sweep cache holds: entry counts by gradflow version, stale entries (computed by
    other gradflow code: never read again), damaged entries, bytes.

    Examples
    --------
    >>> import tempfile
    >>> import gradflow as gf
    >>> from gradflow import sweep
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = sweep.run({"hidden": [8], "seq_len": [40], "predictors": ["none"]}, seeds=[0, 1],
    ...                   cache=tmp, progress=False)
    ...     info = sweep.cache_info(tmp)
    >>> info.entries, info.stale, info.damaged, info.bytes > 0, info.versions == {gf.__version__: 2}
    (2, 0, 0, True, True)
    """

    path: Path
    entries: int
    damaged: int
    bytes: int
    versions: dict[str, int] = field(default_factory=dict)
    stale: int = 0

    def __str__(self) -> str:
        lines = [f"cache: {self.path}", f"entries: {self.entries} ({_size(self.bytes)})"]
        lines += [f"  gradflow {v}: {n}" for v, n in sorted(self.versions.items())]
        if self.stale:
            lines.append(
                f"stale: {self.stale} of the entries (computed by other gradflow code: never "
                f"read; `gradflow cache clear` removes them)"
            )
        if self.damaged:
            lines.append(f"damaged: {self.damaged} (recomputed when a sweep needs them)")
        return "\n".join(lines)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024**exp:.1f} {'BKMG'[exp]}iB"


def _entry_files(root: Path):
    folder = Path(root) / ENTRIES
    if not folder.is_dir():
        return
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and len(sub.name) == 2:
            for path in sorted(sub.iterdir()):
                if path.suffix == ".json" and _KEY.match(path.stem):
                    yield path


def cache_info(path: str | os.PathLike | None = None) -> CacheInfo:
    """Count the entries of the sweep cache at ``path`` (default: `default_cache_dir`).

    An entry is stale when another gradflow version or source wrote it: sweeps never read
    it. ``path`` must be a directory (or not exist yet).

    Examples
    --------
    >>> import tempfile
    >>> from gradflow import sweep
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = sweep.run({"hidden": [8], "seq_len": [40], "predictors": ["none"]}, seeds=[0, 1],
    ...                   cache=tmp, progress=False)
    ...     print(sweep.cache_info(tmp).entries)
    2
    """
    __version__ = read_version()
    from ..core._version import source_digest

    root = Cache(path if path is not None else default_cache_dir()).root  # refuses a file
    entries = damaged = size = stale = 0
    versions: dict[str, int] = {}
    for file in _entry_files(root):
        size += file.lstat().st_size
        try:
            text = read_entry_text(file)
        except ValueError:
            damaged += 1
            continue
        if text is None or _check_entry(text, file.stem) is not None:
            damaged += 1
            continue
        entries += 1
        entry = json.loads(text)
        version = str(entry.get("gradflow"))
        versions[version] = versions.get(version, 0) + 1
        stale += entry.get("code") != source_digest() or version != __version__
    return CacheInfo(root, entries, damaged, size, versions, stale)


def clear_cache(path: str | os.PathLike | None = None) -> int:
    """Delete every entry of the sweep cache at ``path`` (default: `default_cache_dir`).

    Only files the cache wrote are removed (``<path>/entries-v1/xx/<sha256>.json``), so
    pointing it at the wrong directory deletes nothing else. Returns how many went.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from gradflow import sweep
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = pathlib.Path(tmp, "notes.txt").write_text("mine")
    ...     _ = sweep.run({"hidden": [8], "seq_len": [40], "predictors": ["none"]}, seeds=[0, 1],
    ...                   cache=tmp, progress=False)
    ...     removed, left = sweep.clear_cache(tmp), sorted(p.name for p in pathlib.Path(tmp).iterdir())
    >>> removed, left  # only the cache's own files go
    (2, ['notes.txt'])
    """
    root = Cache(path if path is not None else default_cache_dir()).root  # refuses a file
    removed = 0
    for file in list(_entry_files(root)):
        file.unlink()
        removed += 1
    folder = root / ENTRIES
    if folder.is_dir():
        for sub in folder.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for leftover in sub.glob(".tmp-*.json"):  # a write killed before its rename
                    leftover.unlink()
                if not any(sub.iterdir()):
                    sub.rmdir()
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed
