"""A selective state-space block (Mamba; Gu and Dao 2023) as a gradflow cell.

Parameters carry the names and layouts of ``mamba_ssm``'s ``Mamba`` module (github.com/
state-spaces/mamba, ``mamba_ssm/modules/mamba_simple.py``), and one cell step is that module's
``Mamba.step`` (its reference path, without the fused kernels):

    ``x, z = in_proj(u_t)``; the causal depthwise convolution over the last ``d_conv`` values of
    ``x`` plus ``conv1d.bias``, then SiLU, gives ``x_c``; ``dt_in, B_t, C_t = x_proj(x_c)``;
    ``dt = softplus(dt_proj.weight dt_in + dt_proj.bias)``; ``A = -exp(A_log)``;
    ``s_t = exp(dt A) * s_{t-1} + (dt x_c) B_t`` (per channel d and state n);
    ``y_t = s_t C_t + D x_c``, times ``SiLU(z)``; block output ``out_proj(y_t)``.

**The cell's state** is what the recurrence carries: the convolution buffer (the previous
``d_conv - 1`` values of ``x`` per channel, component ``"conv"``) and the SSM state ``s``
(``d_inner x d_state``, component ``"ssm"``), flattened channel-major as ``[conv (d_inner,
d_conv - 1), ssm (d_inner, d_state)]``. The reference's ``conv_state`` has ``d_conv`` columns, of
which the oldest is rolled out before it is read: leaving it out changes no number. The block
output ``out_proj(y_t)`` is a readout, not part of the recurrence (`gradflow.layer_outputs` gives it). **The
input** of a step is the block's input ``u_t`` (width ``d_model``); in a stack the next block reads
this block's output (in ``mamba_ssm`` plus the residual stream and an RMSNorm).

The SSM state is linear in itself with diagonal input-dependent ``a_t = exp(dt_t A)``; the conv
buffer is a shift register of inputs, so it does not depend on the SSM state at all, and after
``d_conv - 1`` steps not on its own past either: the step Jacobian is nilpotent on it, and its
``d_inner * (d_conv - 1)`` Lyapunov exponents are ``-inf`` (a computed spectrum shows them as
large negative values set by rounding). `linear_coefficients` (public as
``gradflow.linear_coefficients``) gives ``(a_t, b_t)`` of the SSM part with the buffer computed
from the inputs, and `buffers` the buffer itself (both fields of the kind's `CellKind`).
``softplus`` is the exact ``log(1 + e^a)`` (PyTorch returns ``a`` above 20: a relative difference
below ``2e-9`` there).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import autograd.numpy as anp
import numpy as np

from ..core import _activations as act
from ..core._registry import CellKind, register_cell_kind
from ..core._validation import as_float_array, check_finite_float, check_positive_int, check_seed, keys_under
from ._cells import Cell

KIND = "mamba"
REQUIRED = (
    "in_proj.weight",
    "conv1d.weight",
    "conv1d.bias",
    "x_proj.weight",
    "dt_proj.weight",
    "dt_proj.bias",
    "A_log",
    "D",
    "out_proj.weight",
)
OPTIONAL = ("in_proj.bias", "out_proj.bias")  # the module's bias=True


def _silu(a):
    return a * act.sigmoid(a)


def _softplus(a):
    return anp.logaddexp(0.0, a)


def _parts(params, state, u, *, d_inner, d_state, d_conv, dt_rank):
    """One step's quantities ``(new_state, x_c, C_t, z, exp(dt A))`` for a state (batch, S) and an
    input (batch, d_model)."""
    rows, width = state.shape[0], d_conv - 1
    xz = u @ params["in_proj.weight"].T
    if "in_proj.bias" in params:
        xz = xz + params["in_proj.bias"]
    x, z = xz[:, :d_inner], xz[:, d_inner:]
    buffer = anp.reshape(state[:, : d_inner * width], (rows, d_inner, width))
    ssm = anp.reshape(state[:, d_inner * width :], (rows, d_inner, d_state))
    window = anp.concatenate([buffer, x[:, :, None]], axis=2)  # the reference's conv_state
    x_c = _silu(anp.sum(window * params["conv1d.weight"][:, 0, :], axis=2) + params["conv1d.bias"])
    x_db = x_c @ params["x_proj.weight"].T
    dt = _softplus(x_db[:, :dt_rank] @ params["dt_proj.weight"].T + params["dt_proj.bias"])
    B, C = x_db[:, dt_rank : dt_rank + d_state], x_db[:, dt_rank + d_state :]
    decay = anp.exp(dt[:, :, None] * -anp.exp(params["A_log"]))
    ssm = decay * ssm + (dt * x_c)[:, :, None] * B[:, None, :]
    new = anp.concatenate(
        [anp.reshape(window[:, :, 1:], (rows, d_inner * width)), anp.reshape(ssm, (rows, d_inner * d_state))],
        axis=1,
    )
    return new, x_c, C, z, decay


def mamba_step(params, state, u, **sizes):
    """``Mamba.step``'s recurrence: the next ``[conv buffer, ssm state]``."""
    return _parts(params, state, u, **sizes)[0]


def _sizes(cell: Cell) -> dict[str, int]:
    return {k: cell.config[k] for k in ("d_inner", "d_state", "d_conv", "dt_rank")}


def _build(
    params: Mapping[str, np.ndarray],
    d_model: int,
    d_inner: int,
    d_state: int,
    d_conv: int,
    dt_rank: int,
    name: str | None,
    **extra,
) -> Cell:
    sizes = {"d_inner": d_inner, "d_state": d_state, "d_conv": d_conv, "dt_rank": dt_rank}
    conv = d_inner * (d_conv - 1)
    components = {"ssm": np.arange(conv, conv + d_inner * d_state)}
    if conv:
        components = {"conv": np.arange(conv), **components}
    config = {"d_model": d_model, "inputs": d_model, **sizes, "linear": True, **extra}
    return Cell(
        functools.partial(mamba_step, **sizes),
        params,
        conv + d_inner * d_state,
        d_model,
        kind=KIND,
        components=components,
        config=config,
        name=name or KIND,
    )


def mamba(
    d_model: int,
    *,
    d_state: int = 16,
    d_conv: int = 4,
    expand: int = 2,
    dt_rank: int | str = "auto",
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    seed: int = 0,
    name: str | None = None,
) -> Cell:
    """A Mamba block's recurrence, initialised as ``mamba_ssm``'s ``Mamba`` module is.

    ``d_inner = expand * d_model``; ``dt_rank = ceil(d_model / 16)`` for ``"auto"``. Linear layers
    and the convolution draw PyTorch's default ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (no biases
    on the projections); ``dt_proj.weight`` is ``U(-dt_rank^-1/2, dt_rank^-1/2)``;
    ``dt_proj.bias`` is the inverse softplus of steps log-uniform in ``[dt_min, dt_max]`` (floored
    at 1e-4); ``A_log = log(1..d_state)`` per channel (S4D-Real); ``D = 1``.
    The state is ``[conv buffer, ssm state]`` of size ``d_inner * (d_conv - 1 + d_state)``
    (components ``"conv"`` and ``"ssm"``); see the module docstring.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.mamba(4, d_state=3, d_conv=3, expand=2, seed=0)
    >>> cell.state_size, cell.input_size, {k: len(v) for k, v in cell.components.items()}
    (40, 4, {'conv': 16, 'ssm': 24})
    >>> cell.params["conv1d.weight"].shape, cell.params["x_proj.weight"].shape
    ((8, 1, 3), (7, 8))
    """
    d_model = check_positive_int("d_model", d_model)
    d_state = check_positive_int("d_state", d_state)
    d_conv = check_positive_int("d_conv", d_conv)
    expand = check_positive_int("expand", expand)
    if isinstance(dt_rank, str):
        if dt_rank != "auto":
            raise ValueError(f"dt_rank must be a positive integer or 'auto'; got {dt_rank!r}")
        dt_rank = math.ceil(d_model / 16)
    dt_rank = check_positive_int("dt_rank", dt_rank)
    dt_min = check_finite_float("dt_min", dt_min)
    dt_max = check_finite_float("dt_max", dt_max)
    if not 0 < dt_min <= dt_max:
        raise ValueError(
            f"dt_min and dt_max must satisfy 0 < dt_min <= dt_max; got dt_min={dt_min}, dt_max={dt_max}"
        )
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    d_inner = expand * d_model

    def uniform(bound, shape):
        return rng.uniform(-bound, bound, size=shape)

    dt = np.maximum(
        np.exp(rng.uniform(size=d_inner) * (np.log(dt_max) - np.log(dt_min)) + np.log(dt_min)), 1e-4
    )
    params = {
        "in_proj.weight": uniform(d_model**-0.5, (2 * d_inner, d_model)),
        "conv1d.weight": uniform(d_conv**-0.5, (d_inner, 1, d_conv)),
        "conv1d.bias": uniform(d_conv**-0.5, d_inner),
        "x_proj.weight": uniform(d_inner**-0.5, (dt_rank + 2 * d_state, d_inner)),
        "dt_proj.weight": uniform(dt_rank**-0.5, (d_inner, dt_rank)),
        "dt_proj.bias": dt + np.log(-np.expm1(-dt)),  # softplus^-1(dt)
        "A_log": np.log(np.broadcast_to(np.arange(1, d_state + 1, dtype=float), (d_inner, d_state))),
        "D": np.ones(d_inner),
        "out_proj.weight": uniform(d_inner**-0.5, (d_model, d_inner)),
    }
    return _build(
        params,
        d_model,
        d_inner,
        d_state,
        d_conv,
        dt_rank,
        name,
        expand=expand,
        dt_min=dt_min,
        dt_max=dt_max,
        seed=seed,
    )


def _array(key: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, read without importing torch
        value = value.detach().cpu().double().numpy()
    return as_float_array(f"weights[{key!r}]", value)


def mamba_from_state_dict(
    weights: Mapping[str, Any], *, prefix: str | None = None, name: str | None = None
) -> Cell:
    """A Mamba cell from a ``mamba_ssm`` ``Mamba`` module's ``state_dict`` (tensors or arrays).

    Sizes are read off the arrays; ``prefix`` picks one block of a larger model
    (``"backbone.layers.0.mixer"``). Keys other than the module's are an error without a prefix.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.mamba(4, d_state=2, d_conv=2)
    >>> sd = {f"layers.0.mixer.{k}": v for k, v in cell.params.items()}
    >>> again = gf.mamba_from_state_dict(sd, prefix="layers.0.mixer")
    >>> again.state_size == cell.state_size and again.config["dt_rank"]
    1
    """
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be a Mamba module's state_dict; got {type(weights).__name__}")
    if prefix is not None:
        weights = keys_under(weights, prefix)
    missing = [k for k in REQUIRED if k not in weights]
    unknown = sorted(str(k) for k in weights if k not in REQUIRED + OPTIONAL)
    if missing or unknown:
        raise ValueError(
            f"a Mamba state_dict needs {list(REQUIRED)}; missing {missing}"
            + (f", unexpected {unknown} (choose one block with prefix=)" if unknown else "")
        )
    params = {k: _array(k, v) for k, v in weights.items()}
    w_in, conv, a_log = params["in_proj.weight"], params["conv1d.weight"], params["A_log"]
    if w_in.ndim != 2 or w_in.shape[0] % 2 or a_log.ndim != 2 or conv.ndim != 3:
        raise ValueError(
            f"in_proj.weight must be (2 d_inner, d_model), A_log (d_inner, d_state), "
            f"conv1d.weight (d_inner, 1, d_conv); got {w_in.shape}, {a_log.shape}, "
            f"{conv.shape}"
        )
    d_inner, d_model = w_in.shape[0] // 2, w_in.shape[1]
    d_state, d_conv = a_log.shape[1], conv.shape[2]
    dt_rank = params["dt_proj.weight"].shape[-1] if params["dt_proj.weight"].ndim == 2 else -1
    expected = {
        "in_proj.weight": (2 * d_inner, d_model),
        "in_proj.bias": (2 * d_inner,),
        "conv1d.weight": (d_inner, 1, d_conv),
        "conv1d.bias": (d_inner,),
        "x_proj.weight": (dt_rank + 2 * d_state, d_inner),
        "dt_proj.weight": (d_inner, dt_rank),
        "dt_proj.bias": (d_inner,),
        "A_log": (d_inner, d_state),
        "D": (d_inner,),
        "out_proj.weight": (d_model, d_inner),
        "out_proj.bias": (d_model,),
    }
    for key, arr in params.items():
        if arr.shape != expected[key] or min(expected[key]) < 1:
            raise ValueError(
                f"weights[{key!r}] must have shape {expected[key]} (d_model={d_model}, "
                f"d_inner={d_inner}, d_state={d_state}, d_conv={d_conv}, read off "
                f"in_proj, A_log and conv1d); got {arr.shape}"
            )
    return _build(params, d_model, d_inner, d_state, d_conv, dt_rank, name)


def outputs(cell: Cell, states: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The block's outputs ``out_proj(y_t)`` (T, batch, d_model) from `unroll`'s states: the
    module's forward pass."""
    T, B, _ = anp.shape(xs)
    p, sizes = cell.params, _sizes(cell)
    rows = (T * B, -1)
    _, x_c, C, z, _ = _parts(p, anp.reshape(states[:-1], rows), anp.reshape(xs, rows), **sizes)
    s = anp.reshape(states[1:], rows)[:, cell.components["ssm"]]  # autograd.numpy: weights may be traced
    y = anp.einsum("mdn,mn->md", anp.reshape(s, (T * B, sizes["d_inner"], -1)), C) + p["D"] * x_c
    out = (y * _silu(z)) @ p["out_proj.weight"].T
    if "out_proj.bias" in p:
        out = out + p["out_proj.bias"]
    return anp.reshape(out, (T, B, -1))


def _history(cell: Cell, xs: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """``x = in_proj(u)[:d_inner]`` per channel: ``h0``'s conv buffer, then one value per input;
    (d_conv - 1 + T, batch, d_inner)."""
    B = xs.shape[1]
    d_inner, width = cell.config["d_inner"], cell.config["d_conv"] - 1
    p = cell.params
    x = xs @ p["in_proj.weight"][:d_inner].T
    if "in_proj.bias" in p:
        x = x + p["in_proj.bias"][:d_inner]
    start = np.moveaxis(h0[:, : d_inner * width].reshape(B, d_inner, width), 2, 0)
    return np.concatenate([start, x], axis=0)


def _windows(history: np.ndarray, first: int, T: int, width: int) -> np.ndarray:
    """``history[first + t : first + t + width]`` for every t, as (T, batch, d_inner, width)."""
    shape = (T, *history.shape[1:], 0)  # no buffer when d_conv = 1
    return np.stack([history[first + k : first + k + T] for k in range(width)] or [np.empty(shape)], axis=-1)


def linear_coefficients(cell: Cell, xs: np.ndarray, h0: np.ndarray):
    """The SSM state's per-step map ``s_t = a_t * s_{t-1} + b_t`` for validated inputs, all t at once.

    Real ``a = exp(dt_t A)`` and ``b = (dt_t x_c,t) B_t``, shape (T, batch, d_inner * d_state), in
    the layout of the state's ``"ssm"`` component. The conv buffer is a shift register of
    ``x = in_proj(u)[:d_inner]``: it is computed from the inputs (starting from ``h0``'s buffer),
    so ``x_c`` and with it ``a_t``, ``b_t`` need no scan.
    """
    T, B, _ = xs.shape
    sizes = _sizes(cell)
    d_inner, width = sizes["d_inner"], sizes["d_conv"] - 1
    # Buffer before each step: the last `width` values of x, h0's buffer before the first input.
    before = _windows(_history(cell, xs, h0), 0, T, width)  # (T, B, d_inner, width)
    rows = np.concatenate(
        [before.reshape(T * B, d_inner * width), np.zeros((T * B, d_inner * sizes["d_state"]))], 1
    )
    new, _, _, _, decay = _parts(cell.params, rows, xs.reshape(T * B, -1), **sizes)
    # The step from a zero SSM state is b_t; every (T * B) row is one step, all at once.
    return decay.reshape(T, B, -1), new[:, d_inner * width :].reshape(T, B, -1)


def buffers(cell: Cell, xs: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """The conv buffer after each step, for validated inputs: the last ``d_conv - 1`` values of
    ``x = in_proj(u)[:d_inner]`` per channel (``h0``'s before the first input), channel-major as
    in the state; (T, batch, d_inner * (d_conv - 1)), the state's columns outside ``"ssm"``."""
    T, B, _ = xs.shape
    d_inner, width = cell.config["d_inner"], cell.config["d_conv"] - 1
    return _windows(_history(cell, xs, h0), 1, T, width).reshape(T, B, d_inner * width)


register_cell_kind(
    CellKind(
        KIND,
        mamba_step,
        mamba,
        parts=(("conv", None), ("ssm", None)),
        options={"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 1e-3, "dt_max": 1e-1},
        stacked_tangents=False,
        description="selective state-space block (Mamba, mamba_ssm's layout); state [conv buffer, ssm]",
        pytorch_layout=False,
        linear_coefficients=linear_coefficients,
        linear_part="ssm",
        input_states=buffers,
        layer_outputs=outputs,
        loader=mamba_from_state_dict,
    )
)
