"""Argument checks shared by every public function.

Each check raises ``ValueError`` whose message names the offending argument and
its value, so a user never has to read a numpy traceback to find their mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float_array(name: str, value: Any, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``value`` as a finite float64 array, or raise naming ``name``."""
    if np.iscomplexobj(value):
        raise ValueError(f"{name} must be real; got complex values ({_describe(np.asarray(value))})")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array; got {_describe(value)}") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(
            f"{name} contains non-finite values ({arr[where] if where else arr}) "
            f"at index {where}; shape {arr.shape}"
        )
    return arr


def check_shape(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {arr.shape}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")
    return value.lower()


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {_describe(value)}")
    return int(value)


def check_finite_float(name: str, value: Any, minimum: float | None = None) -> float:
    # Strings and bools convert to floats, but "0.1" or True as a learning rate is a mistake.
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"{name} must be a number; got {_describe(value)}")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number; got {_describe(value)}") from exc
    if not np.isfinite(out) or (minimum is not None and out < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}; got {_describe(value)}")
    return out


def check_seed(value: Any, name: str = "seed") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


LARGE_BYTES = 4 * 2**30  # beyond this a request is refused unless the caller says it is intended


def check_memory(what: str, nbytes: float, allow_large: Any) -> None:
    """Refuse, before allocating, a request estimated to need more than `LARGE_BYTES` of memory
    unless ``allow_large`` is True; the message gives the estimate."""
    if not isinstance(allow_large, (bool, np.bool_)):
        raise ValueError(f"allow_large must be True or False; got {_describe(allow_large)}")
    if nbytes > LARGE_BYTES and not allow_large:
        raise ValueError(
            f"{what} needs about {nbytes / 2**30:,.1f} GiB of memory (more than "
            f"{LARGE_BYTES / 2**30:g} GiB); pass allow_large=True if that is intended"
        )


def keys_under(weights: Mapping, prefix: Any) -> dict:
    """The entries of ``weights`` under module ``prefix`` (``"layers.0.mixer"``), the prefix removed."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a module name like 'layers.0.mixer'; got {prefix!r}")
    return {
        k[len(prefix) + 1 :]: v
        for k, v in weights.items()
        if isinstance(k, str) and k.startswith(prefix + ".")
    }
