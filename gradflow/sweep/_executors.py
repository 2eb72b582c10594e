"""Three executors behind one interface: this process, a local process pool, Dask distributed.

Each maps jobs to ``(job index, outcome)`` as they complete, whichever order that is; every
job runs `run_job` (one BLAS thread), so the results are the same bits on each.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..core._validation import check_choice, check_positive_int
from ._jobs import Task, run_job

EXECUTORS = ("serial", "process", "dask")
MAX_POOL_RESTARTS = 3  # a process pool whose worker died is restarted this often, then points fail
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")


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
                max_workers=self.parallelism,
                mp_context=context,
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
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
        self.client: Any = None  # a distributed.Client once entered
        self.cluster: Any = None

    def __enter__(self):
        try:
            import distributed
        except ImportError:
            raise ImportError(
                "executor 'dask' needs dask.distributed: pip install 'gradflow[dask]'"
            ) from None
        if isinstance(self.scheduler, distributed.Client):
            self.client, self.own_client = self.scheduler, False
        else:
            self.own_client = True
            if self.scheduler is None:
                self.cluster = distributed.LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self.client = distributed.Client(self.cluster)
            else:
                try:
                    self.client = distributed.Client(self.scheduler, timeout="20s")
                except (OSError, TimeoutError) as exc:
                    raise ValueError(
                        f"cannot connect to the Dask scheduler at {self.scheduler!r}: {exc}"
                    ) from None
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
        futures = [
            self.client.submit(run_job, task, job, key=f"gradflow-sweep-{token}-{i}", pure=False)
            for i, job in enumerate(jobs)
        ]
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


def resolve_executor(executor, scheduler, workers):
    """The executor a sweep's ``executor``, ``scheduler`` and ``workers`` ask for, or ``ValueError``."""
    if executor is None:
        executor = "dask" if scheduler is not None else "serial"
    executor = check_choice("executor", executor, EXECUTORS)
    if scheduler is not None:
        if executor != "dask":
            raise ValueError(
                f"scheduler is the address of a Dask cluster: it needs executor='dask'; "
                f"got executor={executor!r}"
            )
        if isinstance(scheduler, str) and not _ADDRESS.match(scheduler):
            raise ValueError(
                f"scheduler must be a Dask scheduler address like 'tcp://host:8786'; got {scheduler!r}"
            )
        if workers is not None:
            raise ValueError(
                "workers sets the size of a local cluster; the cluster at scheduler has "
                f"its own workers (got workers={workers!r})"
            )
    if workers is not None:
        workers = check_positive_int("workers", workers)
        if executor == "serial" and workers != 1:
            raise ValueError(f"executor 'serial' runs in this process: workers must be 1; got {workers}")
    if executor == "serial":
        return SerialExecutor()
    if executor == "process":
        return ProcessExecutor(workers or _cpu_count())
    return DaskExecutor(scheduler, workers or (None if scheduler is not None else _cpu_count()))
