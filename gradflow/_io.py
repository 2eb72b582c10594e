"""Cells from PyTorch-layout arrays and from ``.npz`` files (no torch import)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _activations as act
from ._cells import _GATE_COUNT, KINDS, Cell, _build
from ._validation import as_float_array, check_choice

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def _to_numpy(name: str, value: Any) -> np.ndarray:
    # torch tensors expose .detach(); take them without importing torch.
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return as_float_array(f"weights[{name!r}]", value, ndim=(1, 2))


def from_torch(kind: str, weights: Mapping[str, Any], nonlinearity: str = "tanh",
               name: str | None = None) -> Cell:
    """Build a cell from arrays in PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layout.

    Parameters
    ----------
    kind : {"rnn", "lstm", "gru"}
    weights : mapping
        ``weight_ih_l{k}`` ``(G*N, D)``, ``weight_hh_l{k}`` ``(G*N, N)`` and, unless the
        module had ``bias=False``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(G*N,)``, for
        layers ``k = 0..L-1``; ``G`` is 1, 4 (i, f, g, o) or 3 (r, z, n). Values may be
        numpy arrays or torch tensors (a ``module.state_dict()`` works as it is).
    nonlinearity : {"tanh", "relu"}
        For ``kind="rnn"``, as in ``nn.RNN``.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> rng = np.random.default_rng(0)
    >>> w = {"weight_ih_l0": rng.normal(size=(12, 2)), "weight_hh_l0": rng.normal(size=(12, 4)),
    ...      "bias_ih_l0": np.zeros(12), "bias_hh_l0": np.zeros(12)}
    >>> gf.from_torch("gru", w).state_size
    4
    """
    kind = check_choice("kind", kind, KINDS)
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be a mapping of PyTorch names to arrays; got "
                         f"{type(weights).__name__}")
    if kind == "rnn":
        nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
    params, hidden, inputs, layers = _validated_layout(kind, weights)
    return _build(kind, params, hidden, inputs, layers,
                  activation=nonlinearity if kind == "rnn" else "tanh", name=name)


def _validated_layout(kind: str, weights: Mapping[str, Any]):
    """Check PyTorch-layout arrays; return ``(params, hidden, inputs, layers)``."""
    unknown = sorted(k for k in weights if not _KEY.match(k))
    if unknown:
        hint = (" (bidirectional and projected modules are not supported)"
                if any("reverse" in k or "weight_hr" in k for k in unknown) else "")
        raise ValueError(f"weights has unexpected keys {unknown}{hint}; expected "
                         f"weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>")
    layers = 1 + max((int(_KEY.match(k).group(2)) for k in weights), default=-1)
    if layers == 0:
        raise ValueError("weights is empty; expected weight_ih_l0 and weight_hh_l0")
    g = _GATE_COUNT[kind]
    w_hh0 = _required(weights, "weight_hh_l0")
    if w_hh0.ndim != 2 or w_hh0.shape[0] != g * w_hh0.shape[1]:
        raise ValueError(f"weights['weight_hh_l0'] must have shape ({g}*N, N) for {kind}; "
                         f"got {w_hh0.shape}")
    hidden = w_hh0.shape[1]
    has_bias = any(k.startswith("bias") for k in weights)
    params = {}
    inputs = -1
    for l in range(layers):
        w_ih = _required(weights, f"weight_ih_l{l}")
        if w_ih.ndim != 2:
            raise ValueError(f"weights['weight_ih_l{l}'] must be 2-D, ({g}*N, inputs); got shape "
                             f"{w_ih.shape}")
        if l == 0:
            inputs = w_ih.shape[1]
        expected = {f"weight_ih_l{l}": (g * hidden, inputs if l == 0 else hidden),
                    f"weight_hh_l{l}": (g * hidden, hidden)}
        if has_bias:
            expected[f"bias_ih_l{l}"] = (g * hidden,)
            expected[f"bias_hh_l{l}"] = (g * hidden,)
        for key, shape in expected.items():
            arr = _required(weights, key)
            if arr.shape != shape:
                raise ValueError(f"weights[{key!r}] must have shape {shape} for a {kind} with "
                                 f"hidden size {hidden}; got {arr.shape}")
            params[key] = arr
        if not has_bias:
            params[f"bias_ih_l{l}"] = np.zeros(g * hidden)
            params[f"bias_hh_l{l}"] = np.zeros(g * hidden)
    return params, hidden, inputs, layers


def _required(weights: Mapping[str, Any], key: str) -> np.ndarray:
    if key not in weights:
        raise ValueError(f"weights is missing {key!r}; got keys {sorted(weights)}")
    return _to_numpy(key, weights[key])


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
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"path {path!r} is not a readable .npz file: {exc}") from exc
    if "__gradflow__" not in arrays:
        raise ValueError(f"path {path!r} is not a gradflow cell file (no __gradflow__ entry); "
                         f"for raw PyTorch arrays use gf.from_torch(kind, dict(np.load(path)))")
    try:
        meta = json.loads(str(arrays.pop("__gradflow__")))
        kind = meta.pop("kind")
        hidden, inputs, layers = meta.pop("hidden"), meta.pop("inputs"), meta.pop("layers")
    except (ValueError, KeyError) as exc:
        raise ValueError(f"path {path!r} has a corrupt __gradflow__ entry: {exc}") from exc
    meta.pop("format", None)
    meta.pop("version", None)
    activation = meta.pop("activation", "tanh")
    if kind not in KINDS or activation not in act.ACTIVATIONS:
        raise ValueError(f"path {path!r} names an unknown cell kind {kind!r} or activation "
                         f"{activation!r}")
    params, n, d, nl = _validated_layout(kind, arrays)
    if (n, d, nl) != (hidden, inputs, layers):
        raise ValueError(f"path {path!r}: arrays give hidden={n}, inputs={d}, layers={nl} but "
                         f"the header says hidden={hidden}, inputs={inputs}, layers={layers}")
    return _build(kind, params, hidden, inputs, layers, activation=activation,
                  name=meta.pop("name", None), **meta)
