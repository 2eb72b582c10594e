"""Parameter sweeps: a declarative grid x seeds -> points -> one task call each -> one DataFrame.

Points are computed in *jobs*: a few points of the same shapes handed to one call of
the task's ``run_batch`` (or, for a plain task, one call per point), on one of three
executors behind one interface (in-process, a local process pool, Dask distributed).
The parent process alone reads and writes the cache, as each job completes, so an
interrupted sweep keeps every finished point whichever executor ran it. Every job runs
with one BLAS thread, and a point's numbers depend on nothing but its configuration,
so the DataFrame is bit-for-bit the same on every executor.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import pandas as pd

from ..core._validation import check_positive_int
from ..core._version import read_version, source_digest
from ._cache import Cache, cache_key, check_result, default_cache_dir
from ._executors import SerialExecutor, resolve_executor
from ._grid import RESERVED, Grid, check_size, describe, grid_size, points, read_grid
from ._jobs import Task, auto_batch_size, make_jobs, registered_task, task_id
from ._task import gradient_flow_task


class SweepWarning(UserWarning):
    """Some points of a sweep failed; their rows say why in the ``error`` column.

    Examples
    --------
    >>> import warnings
    >>> from gradflow import sweep
    >>> def square_root(point):
    ...     if point["x"] < 0:
    ...         raise ValueError("x must be >= 0")
    ...     return {"root": point["x"] ** 0.5}
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     frame = sweep.run({"x": [4.0, -1.0]}, task=square_root, cache=False, progress=False)
    >>> [w.category.__name__ for w in caught]
    ['SweepWarning']
    >>> frame.to_dict("list")
    {'x': [4.0, -1.0], 'seed': [0, 0], 'root': [2.0, nan], 'error': ['', 'ValueError: x must be >= 0']}
    """


def _resolve_cache(cache) -> Cache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return Cache(default_cache_dir())
    if isinstance(cache, (str, os.PathLike)):
        return Cache(cache)
    raise ValueError(f"cache must be True (the default folder), False or a folder path; got {cache!r}")


def run(
    grid: Grid,
    task: Task | str | None = None,
    seeds: Iterable[int] | None = None,
    executor: str | None = None,
    scheduler: str | Any | None = None,
    cache: bool | str | os.PathLike = True,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    allow_large: bool = False,
) -> pd.DataFrame:
    """Run a task at every point of a grid, on one machine or a Dask cluster; cached, resumable.

    Parameters
    ----------
    grid : dict, list of dicts, or path to a TOML file
        Parameter name -> list of values (a single value is a list of one); the points
        are the product of the lists (a list of dicts: the union of their products). A
        TOML file holds the same under ``[grid]`` (or ``[[grid]]`` tables), optionally
        with ``seeds`` and ``task`` (see `read_grid`).
    task : callable or str, optional
        ``task(point) -> dict`` of numbers or strings, for ``point`` a dict of the
        parameters plus ``seed``; a module-level function, so that other processes can
        import it. A string names one of gradflow's own tasks (`TASKS`), as a grid file's
        ``task`` does. Default: `gradient_flow_task` (measured and predicted gradient-flow
        rates). A task may also have ``check(point)`` (raise ``ValueError`` before the
        sweep starts), ``batch_key(point)``, ``run_batch(points) -> list of dicts``
        (several points of one key at once, with the same results) and
        ``columns(point)`` (its result columns: ``float``, ``str`` or a tuple of the
        allowed strings; cache entries that do not match are recomputed).
    seeds : list of int, optional
        Every configuration runs once per seed. Default: the file's ``seeds``, else ``[0]``.
    executor : {"serial", "process", "dask"}, optional
        In this process (default), a local process pool, or Dask distributed. Results are
        the same bits on each.
    scheduler : str or distributed.Client, optional
        A Dask cluster (``"tcp://host:8786"``); implies ``executor="dask"``. Without it,
        ``executor="dask"`` starts a ``LocalCluster`` of ``workers`` processes.
    cache : bool or path
        Folder of the on-disk cache (True: `default_cache_dir`; False: no cache). Points
        already there are read, not recomputed, so an interrupted sweep resumes.
    workers : int, optional
        Processes of the pool or of the local Dask cluster; default: every core.
    batch_size : int, optional
        Most points per job (batched by the task's ``run_batch`` when it has one);
        default: enough jobs to keep every worker busy, at most 32 points each.
    progress : bool
        Show a progress bar (points done / total, ETA) on stderr.
    allow_large : bool
        Run a grid of more than `LARGE_SWEEP` points (refused by default, with an estimate
        of its size and time, before anything runs).

    Returns
    -------
    pandas.DataFrame
        One row per point, in grid order: the parameters, ``seed``, the task's results
        and ``error`` (empty, or why the point failed; a `SweepWarning` says how many did).
        ``frame.attrs["sweep"]`` counts the points read from the cache, computed and failed.

    Examples
    --------
    >>> import gradflow as gf
    >>> grid = {"hidden": [32], "gain": [0.5, 3.0], "seq_len": [100], "predictors": ["mean-field"]}
    >>> frame = gf.sweep.run(grid, seeds=[0, 1], cache=False, progress=False)
    >>> frame[["gain", "seed", "measured_rate", "measured_regime", "rate_mean_field"]].round(2)
       gain  seed  measured_rate measured_regime  rate_mean_field
    0   0.5     0          -1.05       vanishing            -1.07
    1   0.5     1          -1.11       vanishing            -1.09
    2   3.0     0           0.17       exploding             0.28
    3   3.0     1           0.17       exploding             0.27
    """
    __version__ = read_version()

    spec = read_grid(grid) if isinstance(grid, (str, os.PathLike)) else None
    if task is None:
        task = registered_task(spec.task) if spec is not None and spec.task else gradient_flow_task
    elif isinstance(task, str):
        task = registered_task(task)
    if not callable(task):
        raise ValueError(f"task must be a callable or the name of a gradflow task; got {task!r}")
    if seeds is None:
        seeds = spec.seeds if spec is not None and spec.seeds else [0]
    if not isinstance(allow_large, bool):
        raise ValueError(f"allow_large must be True or False; got {allow_large!r}")
    # A path was read into spec; otherwise grid is the table itself.
    table = spec.grid if spec is not None else cast(Mapping[str, Any] | Sequence[Mapping[str, Any]], grid)
    check_size(grid_size(table, seeds), allow_large)
    all_points = points(table, seeds)
    check = getattr(task, "check", None)
    if check is not None:
        for p in all_points:
            try:
                check(dict(p))
            except ValueError as exc:
                raise ValueError(f"{exc} (point {describe(p)})") from None
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be True or False; got {progress!r}")
    runner = resolve_executor(executor, scheduler, workers)
    if not isinstance(runner, SerialExecutor):
        try:
            pickle.dumps(task)
        except Exception as exc:
            raise ValueError(
                f"task must be picklable (a module-level function) to run in other "
                f"processes; got {task!r}: {exc}"
            ) from None
    store = _resolve_cache(cache)
    name, code = task_id(task), source_digest()
    declared = getattr(task, "columns", None)

    keys = [cache_key(name, p, __version__, code) for p in all_points]
    unique = dict(zip(keys, all_points, strict=True))  # a repeated point is computed once
    results: dict[str, dict] = {}
    errors: dict[str, str] = {}
    if store is not None:
        for key in unique:
            found = store.load(key, declared(dict(unique[key])) if declared is not None else None)
            if found is not None:
                results[key] = found
    cached = len(results)
    todo = [k for k in unique if k not in results]

    from tqdm.auto import tqdm

    def settle(key: str, point: dict, ok: bool, value: Any) -> None:
        clash = [c for c in value if c in point or c in RESERVED] if ok else []
        if clash:
            ok, value = (
                False,
                (
                    f"ValueError: the task returned {clash[0]!r}, which is a grid "
                    f"parameter or a column the sweep writes"
                ),
            )
        problem = check_result(value, declared(dict(point))) if ok and declared is not None else None
        if problem:
            ok, value = False, f"TypeError: the task's result does not match its columns: {problem}"
        if not ok:
            errors[key] = value
            return
        results[key] = value
        if store is not None:  # now, not at the end: an interruption loses no finished point
            store.store(key, name, point, __version__, code, value)

    with tqdm(
        total=len(unique),
        initial=cached,
        desc="sweep",
        unit="point",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        if todo:
            with runner:
                size = batch_size or auto_batch_size(task, len(todo), runner.parallelism)
                jobs = make_jobs(task, [(k, unique[k]) for k in todo], size)
                point_jobs = [[p for _, p in job] for job in jobs]
                # closing(): a Ctrl-C here stops the workers before the executor shuts down
                with contextlib.closing(runner.map(task, point_jobs)) as outcomes:
                    for i, outcome in outcomes:
                        for (key, point), (ok, value) in zip(jobs[i], outcome, strict=True):
                            settle(key, point, ok, value)
                        bar.update(len(jobs[i]))
                        if errors:
                            bar.set_postfix(failed=len(errors))
    frame = _frame(all_points, keys, results, errors)
    frame.attrs["sweep"] = {
        "points": len(unique),
        "cached": cached,
        "computed": len(todo) - len(errors),
        "failed": len(errors),
    }
    if errors:
        first = next(k for k in keys if k in errors)
        warnings.warn(
            f"{len(errors)} of {len(unique)} points failed (see the 'error' column); first: "
            f"{describe(unique[first])}: {errors[first]}",
            SweepWarning,
            stacklevel=2,
        )
    return frame


def _frame(all_points, keys, results, errors) -> pd.DataFrame:
    params = list(dict.fromkeys(k for p in all_points for k in p if k != "seed"))
    outputs = list(dict.fromkeys(c for k in keys for c in results.get(k, {})))
    rows = [
        {**p, **results.get(k, {}), "error": errors.get(k, "")} for p, k in zip(all_points, keys, strict=True)
    ]
    return pd.DataFrame(rows, columns=[*params, "seed", *outputs, "error"])
