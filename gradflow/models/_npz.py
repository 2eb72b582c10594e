"""``.npz`` files: any archive of named arrays (`read_npz`), and a gradflow cell file (`load`)."""

from __future__ import annotations

import json
import os

import numpy as np

from ..cells._builtin import build_cell
from ..cells._cells import Cell
from ..core import _activations as act
from ..core._registry import find_cell_kind
from ._layout import validated_layout

# Header entries a gradflow cell file may carry besides kind, hidden, inputs and layers.
_HEADER_EXTRAS = {
    "format": str,
    "version": int,
    "name": str,
    "activation": str,
    "gain": float,
    "init": str,
    "bias_scale": float,
    "seed": int,
    "forget_bias": float,
    "update_bias": float,
    "proj_size": int,
    "reset_after": bool,
}


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` archive, or a ValueError naming the file and what is wrong."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file name; got {path!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} does not exist or is not a file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{path!r} is a single .npy array, not an archive of named arrays; "
                f"write the weights with numpy.savez"
            )
        with data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "single .npy array" in str(exc):
            raise
        raise ValueError(
            f"{path!r} is not a readable .npz archive of arrays (numpy.savez): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    except Exception as exc:  # a damaged file raises BadZipFile, EOFError, zlib.error, OSError, ...
        raise ValueError(
            f"{path!r} is not a readable .npz archive of arrays (numpy.savez): {type(exc).__name__}: {exc}"
        ) from None


def load(path: str | os.PathLike) -> Cell:
    """Read a cell written by `Cell.save`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.lstm(8, 3, seed=4)
    >>> path = os.path.join(tempfile.mkdtemp(), "cell.npz")
    >>> cell.save(path)
    >>> bool(np.array_equal(gf.load(path).params["weight_hh_l0"], cell.params["weight_hh_l0"]))
    True
    """
    arrays = read_npz(path)  # checks path first: a clear error for None or a number
    path = os.fspath(path)
    if "__gradflow__" not in arrays:
        raise ValueError(
            f"{path!r} is not a gradflow cell file (no __gradflow__ entry); for "
            f"PyTorch arrays use gf.from_torch({path!r})"
        )
    try:
        meta = json.loads(str(arrays.pop("__gradflow__")))
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        kind = meta.pop("kind")
        hidden, inputs, layers = meta.pop("hidden"), meta.pop("inputs"), meta.pop("layers")
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{path!r} has a corrupt __gradflow__ header: {exc}") from None
    own = getattr(find_cell_kind(kind), "options", {})  # a registered kind's, typed as their defaults
    known = {**_HEADER_EXTRAS, **{k: type(v) for k, v in own.items()}}
    for key, value in meta.items():
        expected = known.get(key)
        is_bool = isinstance(value, bool)
        ok = expected is not None and (
            (isinstance(value, expected) and (expected is bool or not is_bool))
            or (expected is float and isinstance(value, int) and not is_bool)
        )
        if not ok:
            raise ValueError(
                f"{path!r} has a corrupt __gradflow__ header: entry {key!r} = {value!r} "
                f"is not {'known' if expected is None else expected.__name__}"
            )
    for key, value in (("hidden", hidden), ("inputs", inputs), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{path!r} has a corrupt __gradflow__ header: {key} = {value!r} is not a positive integer"
            )
    meta.pop("format", None)
    meta.pop("version", None)
    activation = meta.pop("activation", "tanh")
    if find_cell_kind(kind, pytorch_layout=True) is None or activation not in act.ACTIVATIONS:
        raise ValueError(f"{path!r} names an unknown cell kind {kind!r} or activation {activation!r}")
    params, n, d, nl, proj = validated_layout(kind, arrays, repr(path))
    if (n, d, nl, proj) != (hidden, inputs, layers, meta.get("proj_size", 0)):
        raise ValueError(
            f"{path!r}: arrays give hidden={n}, inputs={d}, layers={nl} but "
            f"the header says hidden={hidden}, inputs={inputs}, layers={layers}"
        )
    return build_cell(
        kind, params, hidden, inputs, layers, activation=activation, name=meta.pop("name", None), **meta
    )
