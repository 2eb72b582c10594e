"""A content-addressed cache of sweep results: one small JSON file per point.

The key is the SHA-256 of the point's configuration (parameters and seed), the task's
identity and the gradflow version, so a changed point, task or version is simply a
different entry. Each file is written to a temporary name, flushed to disk and renamed,
so an interrupted sweep leaves finished entries whole and no partial ones; a file that
is nevertheless damaged (truncated, edited) fails its checksum and is recomputed, never
read as data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._files import write_bytes_durably

FORMAT = "gradflow-sweep-cache-1"
ENTRIES = "entries-v1"  # bump when the entry layout changes
_KEY = re.compile(r"^[0-9a-f]{64}$")


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being recomputed."""


def default_cache_dir() -> Path:
    """``$GRADFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradflow/sweep``, else ``~/.cache/gradflow/sweep``."""
    if os.environ.get("GRADFLOW_CACHE_DIR"):
        return Path(os.environ["GRADFLOW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradflow" / "sweep"


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, floats by shortest round-trip repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(task_id: str, point: Mapping[str, Any], version: str) -> str:
    """The SHA-256 naming a point's entry: its configuration, the task and the gradflow version."""
    return _digest(canonical_json({"format": FORMAT, "gradflow": version, "task": task_id,
                                   "point": dict(point)}))


class Cache:
    """Sweep results on disk under ``root``, one entry per `cache_key`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.entries = self.root / ENTRIES
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"cache must be a directory; got the file {str(self.root)!r}")

    def path(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored result, or None when missing; a damaged entry is removed, with a warning."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        problem = _check_entry(text, key)
        if problem is None:
            return dict(json.loads(text)["result"])
        warnings.warn(f"cache entry {path} is damaged ({problem}); recomputing that point",
                      CacheWarning, stacklevel=3)
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def store(self, key: str, task_id: str, point: Mapping[str, Any], version: str,
              result: Mapping[str, Any]) -> None:
        pairs = [[k, v] for k, v in result.items()]  # a list keeps the task's column order
        entry = {"format": FORMAT, "key": key, "gradflow": version, "task": task_id,
                 "point": dict(point), "result": pairs, "sha256": _digest(canonical_json(pairs))}
        write_bytes_durably(self.path(key), (canonical_json(entry) + "\n").encode("utf-8"))


def _check_entry(text: str, key: str | None) -> str | None:
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
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                              for p in pairs):
        return "not a list of (name, value) results"
    return None


@dataclass(frozen=True)
class CacheInfo:
    """What a sweep cache holds: entry counts by gradflow version, damaged entries, bytes."""

    path: Path
    entries: int
    damaged: int
    bytes: int
    versions: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"cache: {self.path}", f"entries: {self.entries} ({_size(self.bytes)})"]
        lines += [f"  gradflow {v}: {n}" for v, n in sorted(self.versions.items())]
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
    root = Path(path) if path is not None else default_cache_dir()
    entries = damaged = size = 0
    versions: dict[str, int] = {}
    for file in _entry_files(root):
        text = file.read_text(encoding="utf-8", errors="replace")
        size += file.stat().st_size
        if _check_entry(text, file.stem) is not None:
            damaged += 1
            continue
        entries += 1
        version = str(json.loads(text).get("gradflow"))
        versions[version] = versions.get(version, 0) + 1
    return CacheInfo(root, entries, damaged, size, versions)


def clear_cache(path: str | os.PathLike | None = None) -> int:
    """Delete every entry of the sweep cache at ``path`` (default: `default_cache_dir`).

    Only files the cache wrote are removed (``<path>/entries-v1/xx/<sha256>.json``), so
    pointing it at the wrong directory deletes nothing else. Returns how many went.
    """
    root = Path(path) if path is not None else default_cache_dir()
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
