"""Which task a sweep runs, how it is identified in the cache, and how one job of its points runs.

A grid file or a string may name only gradflow's own tasks (`TASKS`); a task of the user's
own is a callable, or ``--task-module module:function`` on the command line. A *job* is a few
points of one batch key, handed to the task's ``run_batch`` at once (or one call per point).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from ._task import gradient_flow_task

MAX_AUTO_BATCH = 32  # points per job when batch_size is chosen for the caller

Task = Callable[[dict[str, Any]], Mapping[str, Any]]
# The tasks a grid file (or a string) may name: gradflow's own. Anything else is code the
# user passes themselves: a callable in Python, ``--task-module module:function`` on the CLI.
TASKS: dict[str, Task] = {"gradient_flow": gradient_flow_task}


def registered_task(name: Any) -> Task:
    """One of gradflow's own tasks by its name in `TASKS`; never imports anything."""
    if isinstance(name, str) and name in TASKS:
        return TASKS[name]
    raise ValueError(
        f"unknown task {name!r}; gradflow's tasks are {', '.join(TASKS)} (a task of your "
        f"own: pass the function as task= in Python, or --task-module module:function "
        f"to gradflow sweep)"
    )


def load_task(spec: str) -> Task:
    """Import the task ``"package.module:function"``: this runs that module's code, so only the
    user may ask for it (``gradflow sweep --task-module``), never a grid file.

    Examples
    --------
    >>> from gradflow import sweep
    >>> sweep.load_task("gradflow.sweep:gradient_flow_task") is sweep.gradient_flow_task
    True
    >>> sweep.load_task("gradflow.sweep")
    Traceback (most recent call last):
    ...
    ValueError: task must be named 'package.module:function'; got 'gradflow.sweep'
    """
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"task must be named 'package.module:function'; got {spec!r}")
    try:
        task = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load task {spec!r}: {exc}") from None
    if not callable(task):
        raise ValueError(f"task {spec!r} is not callable")
    return task


def task_id(task: Task) -> str:
    """What identifies a task in cache keys: its import name and, for a task defined outside
    gradflow (whose own source is in every key), a digest of its source text."""
    code = task if inspect.isfunction(task) else type(task)
    name = f"{code.__module__}:{code.__qualname__}"
    if code.__module__.split(".")[0] == "gradflow":
        return name
    try:
        source = inspect.getsource(code)
    except (OSError, TypeError):  # no source to read (a lambda in a REPL, a C function)
        return name
    return f"{name}#{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def _clean_result(result: Any) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        raise TypeError(f"a task must return a dict of results; got {type(result).__name__}")
    out = {}
    for k, v in result.items():
        if isinstance(v, np.generic):
            v = v.item()
        if not isinstance(k, str) or not (v is None or isinstance(v, (str, int, float, bool))):
            raise TypeError(
                f"a task must return a dict of names to numbers or strings; got {k!r}: {type(v).__name__}"
            )
        out[k] = v
    return out


def _run_point(task: Task, point: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return True, _clean_result(task(dict(point)))
    except Exception as exc:  # the point failed: report it, the sweep goes on
        return False, f"{type(exc).__name__}: {exc}"


def run_job(task: Task, job: list[dict[str, Any]]) -> list[tuple[bool, Any]]:
    """Run one job (points of one batch key) and return ``(ok, result or error)`` per point.

    One BLAS thread, whoever runs it: results must not depend on the machine's load.
    """
    with _blas_controller().limit(limits=1):
        run_batch = getattr(task, "run_batch", None)
        if run_batch is not None and len(job) > 1:
            try:
                results = run_batch([dict(p) for p in job])
                if len(results) != len(job):
                    raise ValueError(f"run_batch returned {len(results)} results for {len(job)} points")
                return [(True, _clean_result(r)) for r in results]
            except Exception:  # one bad point spoils a batch: run each point alone to find it
                pass
        return [_run_point(task, p) for p in job]


@functools.cache
def _blas_controller() -> ThreadpoolController:
    # Finding the BLAS libraries takes ~1 ms: once per process, not once per job.
    return ThreadpoolController()


def make_jobs(
    task: Task, todo: list[tuple[str, dict[str, Any]]], batch_size: int
) -> list[list[tuple[str, dict[str, Any]]]]:
    """Consecutive (key, point) pairs of one batch key, ``batch_size`` at a time, in grid order."""
    key_of = getattr(task, "batch_key", None)
    groups: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
    for key, p in todo:
        groups.setdefault(key_of(dict(p)) if key_of is not None else None, []).append((key, p))
    return [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]


def auto_batch_size(task: Task, points: int, parallelism: int) -> int:
    """One point per job for a plain task; for a batching one, about four jobs per worker
    (so a slow job does not leave the others idle), at most `MAX_AUTO_BATCH` points each."""
    if getattr(task, "run_batch", None) is None:
        return 1
    return max(1, min(MAX_AUTO_BATCH, math.ceil(points / (4 * parallelism))))
