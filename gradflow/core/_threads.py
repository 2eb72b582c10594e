"""How many BLAS threads gradflow's numerical loops use: one, unless told otherwise.

Measured on a 2-core machine (issue 16): two BLAS threads gain at most 1.4x on a quiet
machine and lose 2.8-100x on a busy one (``gf.jacobians`` at N = 256, T = 40: 4.1 s with
two threads beside other work, 0.06 s with one). gradflow's loops are sequential (QR
re-orthonormalisation, the reverse sweep, moment-map iterations) on matrices of a few
hundred rows, where a thread pool mostly waits for itself; parallelism pays across
processes (``gf.sweep.run(executor="process")``) instead. So gradflow's computations run
under one BLAS thread by default, the same count for every operation; a test checks that
one and two threads give the same bytes (``tests/test_threads.py``).

Override with the environment variable ``GRADFLOW_BLAS_THREADS`` (read at each call) or
`set_blas_threads`, e.g. on an idle many-core node with very large states.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

from threadpoolctl import ThreadpoolController

ENV_VAR = "GRADFLOW_BLAS_THREADS"
DEFAULT_THREADS = 1

_override: int | None = None

F = TypeVar("F", bound=Callable)


def _check_threads(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer number of threads; got {value!r}")
    return value


def blas_threads() -> int:
    """The BLAS thread count gradflow's computations run with.

    `set_blas_threads` if called, else ``$GRADFLOW_BLAS_THREADS``, else 1.

    Examples
    --------
    >>> import gradflow as gf
    >>> previous = gf.set_blas_threads(2)
    >>> gf.blas_threads()
    2
    >>> _ = gf.set_blas_threads(previous)
    """
    if _override is not None:
        return _override
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"{ENV_VAR} must be a positive integer; got {raw!r}")
    return value


def set_blas_threads(threads: int | None) -> int | None:
    """Set the BLAS thread count for gradflow's computations; None goes back to the
    environment variable (or 1). Returns the previous setting, for restoring it.

    Examples
    --------
    >>> import gradflow as gf
    >>> previous = gf.set_blas_threads(3)
    >>> gf.blas_threads()
    3
    >>> gf.set_blas_threads(previous)  # restores the earlier setting; returns the 3 it replaces
    3
    """
    global _override
    previous = _override
    _override = None if threads is None else _check_threads("threads", threads)
    return previous


@functools.cache
def _controller() -> ThreadpoolController:
    # Finding the BLAS libraries takes ~1 ms: once per process (numpy's and scipy's
    # OpenBLAS are both loaded by then: gradflow imports scipy.linalg at import).
    return ThreadpoolController()


def limited(fn: F) -> F:
    """Run ``fn`` with BLAS held to `blas_threads` threads (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _controller().limit(limits=blas_threads(), user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def blas_limit():
    """Context manager form of `limited`."""
    return _controller().limit(limits=blas_threads(), user_api="blas")
