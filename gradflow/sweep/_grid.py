"""Grids and their points: a dict of parameter lists (or a TOML file) times a list of seeds."""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._jobs import registered_task

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

RESERVED = ("seed", "error")  # columns the sweep itself writes
LARGE_SWEEP = 100_000  # points: a bigger grid runs for hours, so the caller must say it is intended
FASTEST_POINT = 1e-3  # seconds: about the cheapest point of the default task (batched, tiny sizes)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Grid = Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | os.PathLike


@dataclass(frozen=True)
class GridFile:
    """A grid read from TOML: the sub-grids, and the seeds and task when the file names them.

    Examples
    --------
    Two ``[[grid]]`` tables: a union of two grids of two points each.

    >>> import pathlib, tempfile
    >>> from gradflow import sweep
    >>> lines = ['task = "gradient_flow"', '[[grid]]', 'cell = "rnn"', 'gain = [0.5, 1.5]',
    ...          '[[grid]]', 'cell = "lstm"', 'forget_bias = [0.0, 1.0]']
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp, "grid.toml")
    ...     _ = path.write_text("\\n".join(lines))
    ...     spec = sweep.read_grid(path)
    >>> spec.task, spec.seeds, spec.grid[1], len(sweep.points(spec.grid))
    ('gradient_flow', None, {'cell': 'lstm', 'forget_bias': [0.0, 1.0]}, 4)
    """

    grid: list[dict[str, Any]]
    seeds: list[int] | None
    task: str | None


def read_grid(path: str | os.PathLike) -> GridFile:
    """Read a grid file (TOML).

    ``[grid]`` maps each parameter to a list of values (or one value); ``[[grid]]``
    tables, one per sub-grid, give a union of grids. Optional top-level keys:
    ``seeds = [0, 1, 2]`` and ``task = "gradient_flow"``, the name of one of gradflow's
    own tasks (`TASKS`): a grid file never imports or runs other code.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from gradflow import sweep
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp, "grid.toml")
    ...     _ = path.write_text('seeds = [0, 1]\\n[grid]\\ngain = [0.5, 1.5]\\nhidden = 32\\n')
    ...     spec = sweep.read_grid(path)
    >>> spec.grid, spec.seeds
    ([{'gain': [0.5, 1.5], 'hidden': 32}], [0, 1])
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"grid file {name!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"grid file {name!r} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"grid file {name!r} is not valid TOML: {exc}") from None
    unknown = [k for k in data if k not in ("grid", "seeds", "task")]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in grid file {name!r}; expected grid, seeds, task")
    if "grid" not in data:
        raise ValueError(f"grid file {name!r} has no [grid] table of parameter lists")
    grid = data["grid"]
    sub_grids = [grid] if isinstance(grid, dict) else grid
    if not isinstance(sub_grids, list) or not all(isinstance(g, dict) for g in sub_grids):
        raise ValueError(f"grid in {name!r} must be a [grid] table or [[grid]] tables")
    task = data.get("task")
    if task is not None:
        try:
            registered_task(task)
        except ValueError as exc:
            raise ValueError(f"{exc} (task in grid file {name!r})") from None
    seeds = data.get("seeds")
    return GridFile(sub_grids, None if seeds is None else check_seeds(seeds), task)


def check_seeds(seeds: Any) -> list[int]:
    """Seeds as a list of distinct non-negative integers, or ``ValueError``."""
    if isinstance(seeds, (str, bytes, Mapping)) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a list of non-negative integers; got {seeds!r}")
    out: list[int] = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds must be a list of non-negative integers; got {s!r} in {seeds!r}")
        if int(s) in out:
            raise ValueError(f"seeds must be distinct; got {int(s)} twice")
        out.append(int(s))
    if not out:
        raise ValueError("seeds must hold at least one seed; got an empty list")
    return out


def _value(name: str, v: Any) -> str | int | float | bool:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"grid[{name!r}] holds a non-finite number {v!r}")
    if not isinstance(v, (str, int, float, bool)):
        raise ValueError(f"grid[{name!r}] values must be numbers, strings or booleans; got {v!r}")
    return v


def _sub_grids(grid: Any) -> list[dict[str, list]]:
    sub = [grid] if isinstance(grid, Mapping) else grid
    if (
        isinstance(sub, (str, bytes))
        or not isinstance(sub, Sequence)
        or not sub
        or not all(isinstance(g, Mapping) for g in sub)
    ):
        raise ValueError(
            f"grid must be a dict of parameter lists, a list of such dicts or a TOML file; got {grid!r}"
        )
    out: list[dict] = []
    for g in sub:
        if not g:
            raise ValueError("grid has no parameters: give at least one, e.g. {'gain': [0.5, 1.5]}")
        lists = {}
        for name, values in g.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"grid parameter names must be identifiers; got {name!r}")
            if name in RESERVED:
                raise ValueError(
                    f"{name!r} is not a grid parameter"
                    + (": give seeds=[...] instead" if name == "seed" else ": the sweep writes that column")
                )
            if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, range)):
                values = [values]
            values = [_value(name, v) for v in values]
            if not values:
                raise ValueError(f"grid[{name!r}] is empty: give at least one value")
            lists[name] = values
        out.append(lists)
    return out


def grid_size(grid: Mapping[str, Any] | Sequence[Mapping[str, Any]], seeds: Iterable[int] = (0,)) -> int:
    """How many points `points` would give, without making them."""
    return sum(math.prod(len(v) for v in lists.values()) for lists in _sub_grids(grid)) * len(
        check_seeds(seeds)
    )


def check_size(size: int, allow_large: bool) -> None:
    """Refuse a sweep of more than `LARGE_SWEEP` points unless ``allow_large``, with an estimate."""
    if size > LARGE_SWEEP and not allow_large:
        hours = size * FASTEST_POINT / 3600
        raise ValueError(
            f"the grid has {size:,} points (more than {LARGE_SWEEP:,}): at least "
            f"{hours:.1f} CPU hours at {FASTEST_POINT * 1e3:g} ms a point; if that is intended "
            f"pass allow_large=True (gradflow sweep --yes)"
        )


def points(
    grid: Mapping[str, Any] | Sequence[Mapping[str, Any]], seeds: Iterable[int] = (0,)
) -> list[dict[str, Any]]:
    """Every point of a grid: the product of each sub-grid's value lists, times the seeds.

    A point is a dict of parameters plus ``seed``; sub-grids follow one another, the
    first parameter varies slowest and the seed fastest.

    Examples
    --------
    >>> from gradflow import sweep
    >>> sweep.points({"cell": "rnn", "gain": [0.5, 1.5]}, seeds=[0, 1])  # doctest: +NORMALIZE_WHITESPACE
    [{'cell': 'rnn', 'gain': 0.5, 'seed': 0}, {'cell': 'rnn', 'gain': 0.5, 'seed': 1},
     {'cell': 'rnn', 'gain': 1.5, 'seed': 0}, {'cell': 'rnn', 'gain': 1.5, 'seed': 1}]
    """
    seeds = check_seeds(seeds)
    out: list[dict] = []
    for lists in _sub_grids(grid):
        for combo in itertools.product(*lists.values()):
            base = dict(zip(lists, combo, strict=True))
            out.extend({**base, "seed": s} for s in seeds)
    return out


def describe(point: Mapping[str, Any]) -> str:
    """``"cell='rnn', gain=1.5, seed=0"``: a point as it is written in a grid."""
    return ", ".join(f"{k}={v!r}" for k, v in point.items())
