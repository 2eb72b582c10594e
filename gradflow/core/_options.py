"""Session-wide switches: quick mode for the notebooks, progress bars for long calls.

`options` sets them from Python (for the session, or for a ``with`` block); the environment
variable ``GRADFLOW_NOTEBOOK_QUICK=1`` still switches quick mode on at import. `progress_bar` is
the one place gradflow makes a `tqdm.auto` bar, so every long call shows progress the same way.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

QUICK_ENV = "GRADFLOW_NOTEBOOK_QUICK"
# A bar appears only once a call has run this long: quick calls print nothing.
PROGRESS_DELAY = 1.0


@dataclass(frozen=True)
class Options:
    """gradflow's session-wide switches (see `options`).

    Attributes
    ----------
    quick : bool
        Notebooks run at small sizes (seconds instead of minutes).
    progress : bool
        Long calls (`predict`, `train`, `lyapunov_spectrum` at large N) show a progress bar in
        JupyterLab or on a terminal unless their own ``progress=`` says otherwise.

    Examples
    --------
    >>> import gradflow as gf
    >>> before = gf.options()  # no arguments: read them
    >>> isinstance(before, gf.Options)
    True
    >>> with gf.options(progress=False) as inside:
    ...     print(inside.progress, gf.options().progress)
    False False
    >>> gf.options() == before  # the block's switches are gone
    True
    """

    quick: bool
    progress: bool

    def __enter__(self) -> Options:
        return self

    def __exit__(self, *exc) -> None:
        global _current
        _current = getattr(self, "_before", _current)


_current = Options(quick=os.environ.get(QUICK_ENV) == "1", progress=True)


def _check_flag(name: str, value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name} must be True, False or None; got {value!r}")
    return value


def options(*, quick: bool | None = None, progress: bool | None = None) -> Options:
    """Read or set gradflow's session-wide switches.

    Parameters
    ----------
    quick : bool, optional
        Quick mode: the notebooks shrink every size (``QUICK = gf.options().quick``). Starts as
        the environment variable ``GRADFLOW_NOTEBOOK_QUICK=1`` says.
    progress : bool, optional
        Default of the ``progress=`` argument of `predict`, `train` and `lyapunov_spectrum`
        (`sweep.run` keeps its own, True by default); starts True.

    Returns
    -------
    Options
        The switches now in force. Used in a ``with`` block, it restores the previous ones on exit.

    Examples
    --------
    >>> import gradflow as gf
    >>> with gf.options(quick=True, progress=False) as now:
    ...     print(now.quick, now.progress)
    True False
    >>> gf.options(progress=False).progress   # for the rest of the session
    False
    >>> gf.options(progress=True).progress
    True
    """
    global _current
    changes = {
        name: value
        for name, value in (
            ("quick", _check_flag("quick", quick)),
            ("progress", _check_flag("progress", progress)),
        )
        if value is not None
    }
    before = _current
    _current = replace(_current, **changes)
    object.__setattr__(_current, "_before", before)  # what a ``with`` block restores
    return _current


def current() -> Options:
    """The switches in force (without changing them)."""
    return _current


def interactive() -> bool:
    """Someone is watching: a Jupyter kernel, or a terminal on stderr; and this is not a worker
    process (a sweep's pool, a Dask worker), whose bars would interleave with the sweep's own."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return False
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def resolve_progress(progress: bool | None) -> bool:
    """A call's ``progress=``: its own value; when None, the session's default, and only where
    someone watches (`interactive`), so logs and worker processes stay free of bars."""
    if _check_flag("progress", progress) is None:
        return _current.progress and interactive()
    return bool(progress)


def progress_bar(total: int | None, desc: str, unit: str, progress: bool | None, **kwargs):
    """A `tqdm.auto` bar (a widget in JupyterLab, text on a terminal's stderr); silent when
    ``progress`` (resolved by `resolve_progress`) is False or for the first second of a call."""
    from tqdm.auto import tqdm

    # leave=False: a finished bar goes away, so a study calling gf.train a hundred times leaves
    # no hundred lines behind.
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not resolve_progress(progress),
        delay=PROGRESS_DELAY,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        **kwargs,
    )
