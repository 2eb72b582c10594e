"""Arrays in PyTorch's layout (``weight_ih_l<k>``, ``weight_hh_l<k>``, ``bias_ih_l<k>``,
``bias_hh_l<k>``, ``weight_hr_l<k>``), checked against a cell kind: what every loader reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core._registry import cell_kind
from ..core._validation import as_float_array

LAYER_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def to_numpy(name: str, value: Any) -> np.ndarray:
    """An array (a torch tensor too) as a float64 numpy array of 1 or 2 dimensions."""
    # torch tensors expose .detach(); take them without importing torch.
    if hasattr(value, "detach"):
        value = (
            value.detach().cpu().double().numpy()
            if hasattr(value, "double")
            else value.detach().cpu().numpy()
        )
    return as_float_array(f"weights[{name!r}]", value, ndim=(1, 2))


def validated_layout(kind: str, weights: Mapping[str, Any], what: str = "weights", directions: int = 1):
    """Check one direction's PyTorch-layout arrays (``..._l{k}``, no suffix); return
    ``(params, hidden, inputs, layers, proj_size)``. Layers above the first read
    ``directions`` outputs of the layer below."""
    unknown = sorted(k for k in weights if (m := LAYER_KEY.match(k)) is None or m.group(3))
    if unknown:
        raise ValueError(
            f"{what} has unexpected keys {unknown}; expected weight_ih_l<k>, "
            f"weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k> (and weight_hr_l<k>)"
        )
    layers = 1 + max((int(m.group(2)) for k in weights if (m := LAYER_KEY.match(k)) is not None), default=-1)
    if layers == 0:
        raise ValueError(f"{what} is empty; expected weight_ih_l0 and weight_hh_l0")
    g = cell_kind(kind).blocks
    w_hh0 = _required(weights, "weight_hh_l0", what)
    has_proj = any(k.startswith("weight_hr") for k in weights)
    if has_proj and kind != "lstm":
        raise ValueError(f"{what} has weight_hr (a projection), which only an LSTM has; got kind {kind!r}")
    if w_hh0.ndim != 2 or w_hh0.shape[0] % g or (not has_proj and w_hh0.shape[0] != g * w_hh0.shape[1]):
        raise ValueError(f"{what}['weight_hh_l0'] must have shape ({g}*N, N) for {kind}; got {w_hh0.shape}")
    hidden = w_hh0.shape[0] // g
    proj = w_hh0.shape[1] if has_proj else 0
    width = proj or hidden
    has_bias = any(k.startswith("bias") for k in weights)
    params = {}
    inputs = -1
    for l in range(layers):
        w_ih = _required(weights, f"weight_ih_l{l}", what)
        if w_ih.ndim != 2:
            raise ValueError(f"{what}['weight_ih_l{l}'] must be 2-D, ({g}*N, inputs); got shape {w_ih.shape}")
        if l == 0:
            inputs = w_ih.shape[1]
        expected: dict[str, tuple[int, ...]] = {
            f"weight_ih_l{l}": (g * hidden, inputs if l == 0 else directions * width),
            f"weight_hh_l{l}": (g * hidden, width),
        }
        if has_bias:
            expected[f"bias_ih_l{l}"] = (g * hidden,)
            expected[f"bias_hh_l{l}"] = (g * hidden,)
        if has_proj:
            expected[f"weight_hr_l{l}"] = (proj, hidden)
        for key, shape in expected.items():
            arr = _required(weights, key, what)
            if arr.shape != shape:
                raise ValueError(
                    f"{what}[{key!r}] must have shape {shape} for a {kind} with "
                    f"hidden size {hidden}" + (f", projection {proj}" if proj else "") + f"; got {arr.shape}"
                )
            params[key] = arr
        if not has_bias:
            params[f"bias_ih_l{l}"] = np.zeros(g * hidden)
            params[f"bias_hh_l{l}"] = np.zeros(g * hidden)
    return params, hidden, inputs, layers, proj


def _required(weights: Mapping[str, Any], key: str, what: str = "weights") -> np.ndarray:
    if key not in weights:
        raise ValueError(f"{what} is missing {key!r}; got keys {sorted(weights)}")
    return to_numpy(key, weights[key])
