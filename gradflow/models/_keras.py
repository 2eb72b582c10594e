"""Cells from a Keras / TensorFlow ``LSTM`` or ``GRU`` layer's weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..cells._builtin import build_cell
from ..cells._cells import Cell
from ..core._registry import cell_kind
from ..core._validation import as_float_array, check_choice


def from_keras(
    kind: str,
    weights: Sequence[Any] | Mapping[str, Any],
    *,
    reset_after: bool = True,
    name: str | None = None,
) -> Cell:
    """A cell from a Keras / TensorFlow ``LSTM`` or ``GRU`` layer's weights.

    Parameters
    ----------
    kind : {"lstm", "gru"}
    weights : sequence or mapping
        ``layer.get_weights()``: ``[kernel (D, G*N), recurrent_kernel (N, G*N), bias]``, or a
        mapping with those names. Keras's gate order is i, f, c, o (LSTM) and z, r, h (GRU);
        ``bias`` is ``(G*N,)``, or ``(2, 3N)`` (input and recurrent bias) for a GRU with
        ``reset_after=True``. ``use_bias=False``: leave the bias out.
    reset_after : bool
        The GRU's setting (TF2's default True applies the reset gate after the recurrent matrix,
        as PyTorch does; False before it). Activations must be Keras's defaults (tanh, sigmoid).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> rng = np.random.default_rng(0)
    >>> w = [rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), np.zeros(8)]
    >>> gf.from_keras("lstm", w).state_size
    4
    """
    kind = check_choice("kind", kind, ("lstm", "gru"))
    if isinstance(reset_after, (bool, np.bool_)) is False:
        raise ValueError(f"reset_after must be True or False; got {reset_after!r}")
    if isinstance(weights, Mapping):
        arrays = [weights[k] for k in ("kernel", "recurrent_kernel", "bias") if k in weights]
        if len(arrays) < 2 or "kernel" not in weights or "recurrent_kernel" not in weights:
            raise ValueError(
                f"weights must hold 'kernel' and 'recurrent_kernel' (and 'bias'); got keys {sorted(weights)}"
            )
    elif isinstance(weights, Sequence) and not isinstance(weights, str) and len(weights) in (2, 3):
        arrays = list(weights)
    else:
        raise ValueError(
            "weights must be [kernel, recurrent_kernel, bias] (layer.get_weights()) or "
            f"a mapping of those names; got {type(weights).__name__}"
        )
    kernel = as_float_array("kernel", arrays[0], ndim=2)
    recurrent = as_float_array("recurrent_kernel", arrays[1], ndim=2)
    g = cell_kind(kind).blocks
    n = recurrent.shape[0]
    if recurrent.shape != (n, g * n) or n == 0:
        raise ValueError(
            f"recurrent_kernel must have shape (N, {g}*N) for a Keras {kind}; got {recurrent.shape}"
        )
    if kernel.shape[1] != g * n:
        raise ValueError(f"kernel must have shape (inputs, {g * n}); got {kernel.shape}")
    two_biases = kind == "gru" and reset_after
    if len(arrays) == 3:
        bias = as_float_array("bias", arrays[2], ndim=(1, 2))
        shape = (2, g * n) if two_biases else (g * n,)
        if bias.shape != shape:
            raise ValueError(
                f"bias must have shape {shape} for a Keras {kind}"
                + (f" with reset_after={reset_after}" if kind == "gru" else "")
                + f"; got {bias.shape}"
            )
        b_ih, b_hh = (bias[0], bias[1]) if two_biases else (bias, np.zeros(g * n))
    else:
        b_ih = b_hh = np.zeros(g * n)
    w_ih, w_hh = kernel.T, recurrent.T
    if kind == "gru":  # Keras z, r, h -> PyTorch r, z, n
        order = np.concatenate([np.arange(n, 2 * n), np.arange(n), np.arange(2 * n, 3 * n)])
        w_ih, w_hh, b_ih, b_hh = w_ih[order], w_hh[order], b_ih[order], b_hh[order]
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    extra: dict[str, Any] = {"reset_after": False} if kind == "gru" and not reset_after else {}
    return build_cell(kind, params, n, kernel.shape[0], 1, name=name or f"keras-{kind}", **extra)
