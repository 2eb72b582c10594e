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

import concurrent.futures
import contextlib
import functools
import hashlib
import importlib
import inspect
import itertools
import math
import multiprocessing
import os
import pickle
import re
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from ..core._validation import check_choice, check_positive_int
from ..core._version import read_version, source_digest
from ._cache import Cache, cache_key, check_result, default_cache_dir
from ._task import gradient_flow_task

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXECUTORS = ("serial", "process", "dask")
RESERVED = ("seed", "error")  # columns the sweep itself writes
MAX_POOL_RESTARTS = 3  # a process pool whose worker died is restarted this often, then points fail
MAX_AUTO_BATCH = 32  # points per job when batch_size is chosen for the caller
LARGE_SWEEP = 100_000  # points: a bigger grid runs for hours, so the caller must say it is intended
FASTEST_POINT = 1e-3  # seconds: about the cheapest point of the default task (batched, tiny sizes)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")

Grid = Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | os.PathLike
Task = Callable[[dict[str, Any]], Mapping[str, Any]]
# The tasks a grid file (or a string) may name: gradflow's own. Anything else is code the
# user passes themselves: a callable in Python, ``--task-module module:function`` on the CLI.
TASKS: dict[str, Task] = {"gradient_flow": gradient_flow_task}


class SweepWarning(UserWarning):
    """Some points of a sweep failed; their rows say why in the ``error`` column."""


# ------------------------------------------------------------------ grids and points


@dataclass(frozen=True)
class GridFile:
    """A grid read from TOML: the sub-grids, and the seeds and task when the file names them."""

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
    out = []
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
    if isinstance(sub, (str, bytes)) or not isinstance(sub, Sequence) or not sub or not all(
            isinstance(g, Mapping) for g in sub):
        raise ValueError(f"grid must be a dict of parameter lists, a list of such dicts or a TOML file; "
                         f"got {grid!r}")
    out = []
    for g in sub:
        if not g:
            raise ValueError("grid has no parameters: give at least one, e.g. {'gain': [0.5, 1.5]}")
        lists = {}
        for name, values in g.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"grid parameter names must be identifiers; got {name!r}")
            if name in RESERVED:
                raise ValueError(f"{name!r} is not a grid parameter" + (
                    ": give seeds=[...] instead" if name == "seed" else ": the sweep writes that column"))
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
        check_seeds(seeds))


def check_size(size: int, allow_large: bool) -> None:
    """Refuse a sweep of more than `LARGE_SWEEP` points unless ``allow_large``, with an estimate."""
    if size > LARGE_SWEEP and not allow_large:
        hours = size * FASTEST_POINT / 3600
        raise ValueError(f"the grid has {size:,} points (more than {LARGE_SWEEP:,}): at least "
                         f"{hours:.1f} CPU hours at {FASTEST_POINT * 1e3:g} ms a point; if that is intended "
                         f"pass allow_large=True (gradflow sweep --yes)")


def points(grid: Mapping[str, Any] | Sequence[Mapping[str, Any]], seeds: Iterable[int] = (0,)
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
    out = []
    for lists in _sub_grids(grid):
        for combo in itertools.product(*lists.values()):
            base = dict(zip(lists, combo, strict=True))
            out.extend({**base, "seed": s} for s in seeds)
    return out


def describe(point: Mapping[str, Any]) -> str:
    """``"cell='rnn', gain=1.5, seed=0"``: a point as it is written in a grid."""
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


# ------------------------------------------------------------------ tasks and jobs


def registered_task(name: Any) -> Task:
    """One of gradflow's own tasks by its name in `TASKS`; never imports anything."""
    if isinstance(name, str) and name in TASKS:
        return TASKS[name]
    raise ValueError(f"unknown task {name!r}; gradflow's tasks are {', '.join(TASKS)} (a task of your "
                     f"own: pass the function as task= in Python, or --task-module module:function "
                     f"to gradflow sweep)")


def load_task(spec: str) -> Task:
    """Import the task ``"package.module:function"``: this runs that module's code, so only the
    user may ask for it (``gradflow sweep --task-module``), never a grid file."""
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
            raise TypeError(f"a task must return a dict of names to numbers or strings; got "
                            f"{k!r}: {type(v).__name__}")
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


def _jobs(task: Task, todo: list[tuple[str, dict[str, Any]]], batch_size: int
          ) -> list[list[tuple[str, dict[str, Any]]]]:
    """Consecutive (key, point) pairs of one batch key, ``batch_size`` at a time, in grid order."""
    key_of = getattr(task, "batch_key", None)
    groups: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
    for key, p in todo:
        groups.setdefault(key_of(dict(p)) if key_of is not None else None, []).append((key, p))
    return [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]


def _auto_batch_size(task: Task, points: int, parallelism: int) -> int:
    """One point per job for a plain task; for a batching one, about four jobs per worker
    (so a slow job does not leave the others idle), at most `MAX_AUTO_BATCH` points each."""
    if getattr(task, "run_batch", None) is None:
        return 1
    return max(1, min(MAX_AUTO_BATCH, math.ceil(points / (4 * parallelism))))


# ------------------------------------------------------------------ executors


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SerialExecutor:
    """Every job in this process, one after the other (for debugging)."""

    parallelism = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, task: Task, jobs: list[list[dict]]) -> Iterator[tuple[int, list]]:
        for i, job in enumerate(jobs):
            yield i, run_job(task, job)


# Warm process pools, reused by later sweeps (as joblib reuses its workers): a new pool pays
# for forking its workers and their first calls on every sweep. Keyed by the worker count.
_POOLS: dict[int, concurrent.futures.ProcessPoolExecutor] = {}


class ProcessExecutor:
    """A local process pool (``forkserver``: workers fork from a clean process that has
    imported gradflow once), kept for the next sweep. A pool broken by a dead worker is
    replaced and its unfinished jobs resubmitted."""

    def __init__(self, workers: int):
        self.parallelism = workers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        for size in [n for n in _POOLS if n != self.parallelism]:  # keep one warm pool, not one per size
            _POOLS.pop(size).shutdown(wait=False)
        pool = _POOLS.get(self.parallelism)
        if pool is None or getattr(pool, "_broken", False):
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if context.get_start_method() == "forkserver":
                # "__main__" lets a task defined in the user's script unpickle in the workers.
                context.set_forkserver_preload(["__main__", "gradflow"])
            pool = _POOLS[self.parallelism] = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.parallelism, mp_context=context, initializer=_watch_parent,
                initargs=(os.getpid(),))
        return pool

    def map(self, task: Task, jobs: list[list[dict]]) -> Iterator[tuple[int, list]]:
        pending = dict(enumerate(jobs))
        for attempt in range(MAX_POOL_RESTARTS + 1):
            pool = self._pool()
            broken = None
            try:
                with _deferred_interrupt():  # a Ctrl-C inside submit() would orphan a starting worker
                    futures = {pool.submit(run_job, task, job): i for i, job in pending.items()}
                for future in concurrent.futures.as_completed(futures):
                    i = futures[future]
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:
                        broken = exc
                        break
                    except Exception as exc:  # e.g. a result that does not pickle
                        outcome = [(False, f"{type(exc).__name__}: {exc}")] * len(pending[i])
                    del pending[i]
                    yield i, outcome
            except BrokenProcessPool as exc:  # broken while submitting
                broken = exc
            except BaseException:  # Ctrl-C or the consumer stopped: stop the workers now
                _stop_pool(pool)
                _POOLS.pop(self.parallelism, None)
                raise
            if broken is None:
                return
            pool.shutdown(wait=True)
            _POOLS.pop(self.parallelism, None)
            if attempt == MAX_POOL_RESTARTS:
                reason = f"a worker process died {attempt + 1} times (BrokenProcessPool: {broken})"
                for i, job in list(pending.items()):
                    yield i, [(False, reason)] * len(job)
                return


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then deliver it. Submitting jobs starts
    the workers; interrupted inside a start, a worker is registered nowhere, escapes
    `_stop_pool` and prints a traceback once its parent has gone."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


PARENT_POLL = 0.5  # seconds between a worker's checks that the sweep's process is alive


def _watch_parent(parent: int) -> None:
    """Pool initializer: a daemon thread ends this worker once the process that started the
    sweep is gone (``kill -9`` gives it no chance to stop its pool; with ``forkserver`` the
    worker's own parent is the fork server, so the sweep's pid is watched, not getppid())."""
    import threading
    import time

    def watch():
        while True:
            time.sleep(PARENT_POLL)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)  # nobody is left to read the results
            except PermissionError:  # the pid now belongs to another user: ours is gone
                os._exit(1)

    threading.Thread(target=watch, name="gradflow-parent-watch", daemon=True).start()


def _stop_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel the queued jobs and end the running ones now (Ctrl-C must not wait for them)."""
    # concurrent.futures has no public way to stop running jobs; shutdown() drops its
    # list of worker processes, so take it first.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    for process in processes:  # dead before the queues' semaphores go: a worker still starting
        process.join(timeout=10)  # would otherwise print a traceback failing to unpickle them
    pool.shutdown(wait=True, cancel_futures=True)  # quick now, and it releases the queues


def stop_pools() -> None:
    """End the warm pools' workers now and wait for them: for an interrupted command, whose
    Ctrl-C may land between two sweeps while a pool's workers are still starting."""
    while _POOLS:
        _stop_pool(_POOLS.popitem()[1])


class DaskExecutor:
    """Jobs as Dask futures: on the cluster at ``scheduler`` (an address or a
    ``distributed.Client``), or on a ``LocalCluster`` of ``workers`` processes started
    for the sweep and closed after it. Dask reschedules the jobs of a worker that dies."""

    def __init__(self, scheduler: Any, workers: int | None):
        self.scheduler, self.workers = scheduler, workers
        self.client = self.cluster = None

    def __enter__(self):
        try:
            import distributed
        except ImportError:
            raise ImportError("executor 'dask' needs dask.distributed: pip install 'gradflow[dask]'"
                              ) from None
        if isinstance(self.scheduler, distributed.Client):
            self.client, self.own_client = self.scheduler, False
        else:
            self.own_client = True
            if self.scheduler is None:
                self.cluster = distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None)
                self.client = distributed.Client(self.cluster)
            else:
                try:
                    self.client = distributed.Client(self.scheduler, timeout="20s")
                except (OSError, TimeoutError) as exc:
                    raise ValueError(f"cannot connect to the Dask scheduler at {self.scheduler!r}: "
                                     f"{exc}") from None
        workers = self.client.scheduler_info().get("workers", {})
        self.parallelism = max(1, sum(w.get("nthreads", 1) for w in workers.values()))
        return self

    def __exit__(self, *exc):
        if self.own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def map(self, task: Task, jobs: list[list[dict]]) -> Iterator[tuple[int, list]]:
        import distributed

        token = uuid.uuid4().hex[:12]
        futures = [self.client.submit(run_job, task, job, key=f"gradflow-sweep-{token}-{i}", pure=False)
                   for i, job in enumerate(jobs)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in distributed.as_completed(futures):
                i = index[future.key]
                try:
                    outcome = future.result()
                except Exception as exc:  # e.g. KilledWorker after repeated worker deaths
                    outcome = [(False, f"{type(exc).__name__}: {exc}")] * len(jobs[i])
                yield i, outcome
        finally:
            with contextlib.suppress(Exception):  # a lost connection must not hide the first error
                self.client.cancel([f for f in futures if not f.done()])


# ------------------------------------------------------------------ run


def _resolve_executor(executor, scheduler, workers):
    if executor is None:
        executor = "dask" if scheduler is not None else "serial"
    executor = check_choice("executor", executor, EXECUTORS)
    if scheduler is not None:
        if executor != "dask":
            raise ValueError(f"scheduler is the address of a Dask cluster: it needs executor='dask'; "
                             f"got executor={executor!r}")
        if isinstance(scheduler, str) and not _ADDRESS.match(scheduler):
            raise ValueError(f"scheduler must be a Dask scheduler address like 'tcp://host:8786'; "
                             f"got {scheduler!r}")
        if workers is not None:
            raise ValueError("workers sets the size of a local cluster; the cluster at scheduler has "
                             f"its own workers (got workers={workers!r})")
    if workers is not None:
        workers = check_positive_int("workers", workers)
        if executor == "serial" and workers != 1:
            raise ValueError(f"executor 'serial' runs in this process: workers must be 1; got {workers}")
    if executor == "serial":
        return SerialExecutor()
    if executor == "process":
        return ProcessExecutor(workers or _cpu_count())
    return DaskExecutor(scheduler, workers or (None if scheduler is not None else _cpu_count()))


def _resolve_cache(cache) -> Cache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return Cache(default_cache_dir())
    if isinstance(cache, (str, os.PathLike)):
        return Cache(cache)
    raise ValueError(f"cache must be True (the default folder), False or a folder path; got {cache!r}")


def run(grid: Grid, task: Task | str | None = None, seeds: Iterable[int] | None = None,
        executor: str | None = None, scheduler: str | Any | None = None,
        cache: bool | str | os.PathLike = True, *, workers: int | None = None,
        batch_size: int | None = None, progress: bool = True, allow_large: bool = False) -> pd.DataFrame:
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
    check_size(grid_size(spec.grid if spec is not None else grid, seeds), allow_large)
    all_points = points(spec.grid if spec is not None else grid, seeds)
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
    runner = _resolve_executor(executor, scheduler, workers)
    if not isinstance(runner, SerialExecutor):
        try:
            pickle.dumps(task)
        except Exception as exc:
            raise ValueError(f"task must be picklable (a module-level function) to run in other "
                             f"processes; got {task!r}: {exc}") from None
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
            ok, value = False, (f"ValueError: the task returned {clash[0]!r}, which is a grid "
                                f"parameter or a column the sweep writes")
        problem = check_result(value, declared(dict(point))) if ok and declared is not None else None
        if problem:
            ok, value = False, f"TypeError: the task's result does not match its columns: {problem}"
        if not ok:
            errors[key] = value
            return
        results[key] = value
        if store is not None:  # now, not at the end: an interruption loses no finished point
            store.store(key, name, point, __version__, code, value)

    with tqdm(total=len(unique), initial=cached, desc="sweep", unit="point", disable=not progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        if todo:
            with runner:
                size = batch_size or _auto_batch_size(task, len(todo), runner.parallelism)
                jobs = _jobs(task, [(k, unique[k]) for k in todo], size)
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
    frame.attrs["sweep"] = {"points": len(unique), "cached": cached, "computed": len(todo) - len(errors),
                            "failed": len(errors)}
    if errors:
        first = next(k for k in keys if k in errors)
        warnings.warn(f"{len(errors)} of {len(unique)} points failed (see the 'error' column); first: "
                      f"{describe(unique[first])}: {errors[first]}", SweepWarning, stacklevel=2)
    return frame


def _frame(all_points, keys, results, errors) -> pd.DataFrame:
    params = list(dict.fromkeys(k for p in all_points for k in p if k != "seed"))
    outputs = list(dict.fromkeys(c for k in keys for c in results.get(k, {})))
    rows = [{**p, **results.get(k, {}), "error": errors.get(k, "")} for p, k in zip(all_points, keys,
                                                                                     strict=True)]
    return pd.DataFrame(rows, columns=[*params, "seed", *outputs, "error"])
