"""Old spellings of the public API, kept working for one release with a `DeprecationWarning`.

One decorator, `deprecated_spellings`, serves every public function whose signature changed in
0.3.0: arguments that became keyword-only (``f(cell, xs, *, h0=None)``) and keyword arguments that
were renamed (``system=`` -> ``cell=``). The decorated function keeps its new signature for
`inspect.signature` and Sphinx (``functools.wraps`` sets ``__wrapped__``); the warning names the
new spelling and is attributed to the caller's line. `renamed_attribute` does the same for a
result's attribute that was renamed (``PathLengths.n`` -> ``PathLengths.seq_len``).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

SINCE, UNTIL = "0.3.0", "0.4.0"
_LEADING = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def deprecated_spellings(
    *, positional: Sequence[str] = (), renamed: Mapping[str, str] | None = None
) -> Callable[[F], F]:
    """Accept a function's old spellings for one release, each with a `DeprecationWarning`.

    Parameters
    ----------
    positional : sequence of str
        Keyword-only parameters that used to be positional, in their old order after the
        parameters that are still positional: ``("loss", "h0")`` lets ``f(cell, xs, loss, h0)``
        run as ``f(cell, xs, loss=loss, h0=h0)``. More positional arguments than that still
        raise Python's own ``TypeError``.
    renamed : mapping of str to str
        Old keyword name -> new parameter name (``{"system": "cell"}``). Giving both raises
        ``TypeError``.

    Examples
    --------
    >>> import warnings
    >>> @deprecated_spellings(positional=("h0",), renamed={"steps": "seq_len"})
    ... def run(cell, *, h0=None, seq_len=1):
    ...     return cell, h0, seq_len
    >>> import inspect; str(inspect.signature(run))
    '(cell, *, h0=None, seq_len=1)'
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     run("c", 0, steps=5)
    ('c', 0, 5)
    >>> [str(w.message).split(";")[0] for w in caught]
    ['run(..., h0) is deprecated since gradflow 0.3.0', 'run(steps=...) is deprecated since gradflow 0.3.0']
    """
    renamed = dict(renamed or {})

    def decorate(fn: F) -> F:
        params = inspect.signature(fn).parameters
        leading_names = [p.name for p in params.values() if p.kind in _LEADING]
        leading = len(leading_names)
        name = fn.__qualname__.rsplit("<locals>.", 1)[-1]  # "TrainingRun.plot", "unroll"
        for arg in positional:
            if arg not in params or params[arg].kind is not inspect.Parameter.KEYWORD_ONLY:
                raise ValueError(f"positional names {arg!r}, which is not a keyword-only parameter of {name}")
        for old, new in renamed.items():
            if new not in params or old in params:
                raise ValueError(f"renamed maps {old!r} to {new!r}; {name} must have {new!r} and not {old!r}")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            extra = len(args) - leading
            if positional and 0 < extra <= len(positional):
                moved = positional[:extra]
                for arg in moved:
                    if arg in kwargs:
                        raise TypeError(f"{name}() got multiple values for argument {arg!r}")
                _warn(
                    f"{name}(..., {', '.join(moved)}) is deprecated since gradflow {SINCE}; write "
                    f"{name}(..., {', '.join(f'{a}=...' for a in moved)})"
                )
                kwargs.update(zip(moved, args[leading:], strict=True))
                args = args[:leading]
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs or new in leading_names[: len(args)]:
                        raise TypeError(f"{name}() got both {old!r} (the old name) and {new!r}; pass {new!r}")
                    _warn(f"{name}({old}=...) is deprecated since gradflow {SINCE}; write {name}({new}=...)")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        # introspection sees fn's keyword defaults (the wrapper has none of its own)
        wrapper.__kwdefaults__ = fn.__kwdefaults__  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class renamed_attribute:  # lower case: used like `property`
    """A result's old attribute name, read-only: warns, naming the new one, and returns its value.

    Examples
    --------
    >>> import warnings
    >>> class Result:
    ...     seq_len = 5
    ...     n = renamed_attribute("seq_len")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     Result().n
    5
    >>> str(caught[0].message).split(";")[1]
    ' write Result.seq_len (the old spelling stops working in 0.4.0)'
    """

    def __init__(self, new: str):
        self.new = new

    def __set_name__(self, owner: type, old: str) -> None:
        self.old, self.owner = old, owner.__name__

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        _warn(f"{self.owner}.{self.old} is deprecated since gradflow {SINCE}; write {self.owner}.{self.new}")
        return getattr(obj, self.new)


def _warn(message: str) -> None:
    # stacklevel 3 (this function, the wrapper or descriptor, then the caller): the warning points
    # at the line that used the old spelling, not at gradflow
    warnings.warn(f"{message} (the old spelling stops working in {UNTIL})", DeprecationWarning, stacklevel=3)
