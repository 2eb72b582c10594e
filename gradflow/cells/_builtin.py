"""The built-in cells' equations and constructors: `rnn`, `lstm`, `gru` (PyTorch's names,
layouts and gate orders), their steps, and the generic random initialiser any registered kind
can use. `Cell` itself is in ``_cells``; each kind's record is in ``_kinds``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import autograd.numpy as anp
import numpy as np

from ..core import _activations as act
from ..core._ops import affine, gru_update, join_columns, lstm_update, take_columns
from ..core._probe import probe
from ..core._registry import cell_kind
from ..core._validation import check_choice, check_finite_float, check_memory, check_positive_int, check_seed
from ._cells import Cell

INITS = ("gaussian", "orthogonal", "identity", "pytorch")


# ---------------------------------------------------------------- step functions

LSTM_GATES, GRU_GATES = ("i", "f", "g", "o"), ("r", "z", "n")  # PyTorch's block order


def _gate_names(layers, l, names):
    return names if layers == 1 else tuple(f"l{l}.{g}" for g in names)


def _layer(state, l, width, layers):
    return state if layers == 1 else take_columns(state, l * width, (l + 1) * width)


def rnn_step(params, state, x, *, hidden, layers, activation):
    phi = act.ACTIVATIONS[activation]
    outs, inp = [], x
    for l in range(layers):
        h = _layer(state, l, hidden, layers)
        gi = affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"] + params[f"bias_hh_l{l}"])
        inp = phi(affine(h, params[f"weight_hh_l{l}"], gi))
        outs.append(inp)
    return outs[0] if layers == 1 else join_columns(*outs)


def lstm_step(params, state, x, *, hidden, layers, proj_size=0):
    # With a projection (PyTorch's proj_size P) a layer's state is [h (P), c (N)] and
    # h = W_hr (o * tanh(c)); without one, [h (N), c (N)].
    n, outs, inp = hidden, [], x
    p = proj_size or n
    for l in range(layers):
        hc = _layer(state, l, p + n, layers)
        # The pre-activation is gi + W_hh h, so dL/d(gi) is each gate's pre-activation gradient.
        gi = probe(
            affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"] + params[f"bias_hh_l{l}"]),
            _gate_names(layers, l, LSTM_GATES),
        )
        h, c = take_columns(hc, 0, p), take_columns(hc, p, p + n)
        new = lstm_update(affine(h, params[f"weight_hh_l{l}"], gi), c)
        if proj_size:
            new = join_columns(
                affine(take_columns(new, 0, n), params[f"weight_hr_l{l}"], 0.0), take_columns(new, n, 2 * n)
            )
        outs.append(new)
        if l + 1 < layers:  # the next layer's input; a primitive traced at every step
            inp = take_columns(new, 0, p)
    return outs[0] if layers == 1 else join_columns(*outs)


def gru_step(params, state, x, *, hidden, layers):
    n, outs, inp = hidden, [], x
    for l in range(layers):
        h = _layer(state, l, n, layers)
        # r and z pre-activations are gi + gh, n's is gi_n + r * gh_n: dL/d(gi) is each gate's.
        gi = probe(
            affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"]), _gate_names(layers, l, GRU_GATES)
        )
        inp = gru_update(gi, affine(h, params[f"weight_hh_l{l}"], params[f"bias_hh_l{l}"]), h)
        outs.append(inp)
    return outs[0] if layers == 1 else join_columns(*outs)


def gru_reset_before_step(params, state, x, *, hidden, layers):
    """Keras's ``reset_after=False`` GRU: ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.

    Plain ``autograd.numpy``, so such a cell does not declare stacked tangents.
    """
    n, outs, inp = hidden, [], x
    for l in range(layers):
        h = _layer(state, l, n, layers)
        w_hh, b_hh = params[f"weight_hh_l{l}"], params[f"bias_hh_l{l}"]
        gi = probe(
            affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"]), _gate_names(layers, l, GRU_GATES)
        )
        rz = act.sigmoid(gi[:, : 2 * n] + h @ w_hh[: 2 * n].T + b_hh[: 2 * n])
        r, z = rz[:, :n], rz[:, n:]
        cand = act.tanh(gi[:, 2 * n :] + (r * h) @ w_hh[2 * n :].T + b_hh[2 * n :])
        inp = (1.0 - z) * cand + z * h
        outs.append(inp)
    return outs[0] if layers == 1 else anp.concatenate(outs, axis=1)


# ---------------------------------------------------------------- construction


def state_components(kind: str, hidden: int, layers: int, proj_size: int = 0) -> dict[str, np.ndarray]:
    sizes = cell_kind(kind).part_widths(hidden, proj_size)
    width = sum(sizes.values())
    comps: dict[str, list[np.ndarray]] = {p: [] for p in sizes}
    per_layer = {}
    for l in range(layers):
        start = l * width
        for p, size in sizes.items():
            idx = np.arange(start, start + size)
            start += size
            comps[p].append(idx)
            per_layer[f"l{l}.{p}"] = idx
    out = {p: np.concatenate(v) for p, v in comps.items()}
    if layers > 1:
        out.update(per_layer)
    return out


def build_cell(
    kind: str,
    params: Mapping[str, np.ndarray],
    hidden: int,
    inputs: int,
    layers: int,
    activation: str = "tanh",
    name: str | None = None,
    **extra,
) -> Cell:
    record = cell_kind(kind)
    values = {**record.options, "activation": activation, **extra}  # options default to the kind's
    step_options = {k: values[k] for k in record.step_options if k in values}
    config = {"hidden": hidden, "inputs": inputs, "layers": layers, **step_options, **extra}
    base, stacked = record.step_for(config)
    step = functools.partial(base, hidden=hidden, layers=layers, **step_options)
    state = record.state_width(hidden, int(extra.get("proj_size", 0) or 0)) * layers
    return Cell(
        step,
        params,
        state,
        inputs,
        kind=kind,
        components=state_components(kind, hidden, layers, int(extra.get("proj_size", 0) or 0)),
        config=config,
        name=name or "-".join([kind, *map(str, step_options.values())]),
        stacked_tangents=stacked,
    )


def recurrent_init(rng: np.random.Generator, n: int, init: str, gain: float) -> np.ndarray:
    """An ``n x n`` recurrent matrix: gaussian ``N(0, gain^2/n)``, Haar orthogonal times
    ``gain``, ``gain * I`` (IRNN) or PyTorch's ``U(-1/sqrt(n), 1/sqrt(n))`` times ``gain``."""
    if init == "gaussian":
        return rng.normal(0.0, gain / np.sqrt(n), size=(n, n))
    if init == "orthogonal":
        q, r = np.linalg.qr(rng.normal(size=(n, n)))
        return gain * q * np.sign(np.diag(r))  # sign fix makes q Haar-distributed
    if init == "identity":
        return gain * np.eye(n)
    bound = 1.0 / np.sqrt(n)
    return gain * rng.uniform(-bound, bound, size=(n, n))


def random_cell(
    kind,
    hidden,
    inputs,
    *,
    activation="tanh",
    gain=1.0,
    init="gaussian",
    bias_scale=0.0,
    seed=0,
    layers=1,
    name=None,
    allow_large=False,
    **extra,
) -> Cell:
    record = cell_kind(kind)
    if record.gate_bias is not None:  # the option added to one block's bias (an LSTM's forget_bias)
        option = record.gate_bias[1]
        extra[option] = check_finite_float(option, extra.get(option, record.options[option]))
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    layers = check_positive_int("layers", layers)
    g = record.blocks
    # Weights in float64, and a draw's temporary beside them while they are assembled.
    weights = sum(g * hidden * ((inputs if l == 0 else hidden) + hidden + 2) for l in range(layers))
    check_memory(f"{kind}({hidden}, {inputs}, layers={layers})", 2 * 8 * weights, allow_large)
    gain = check_finite_float("gain", gain, minimum=0.0)
    bias_scale = check_finite_float("bias_scale", bias_scale, minimum=0.0)
    init = check_choice("init", init, INITS)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(layers):
        d = inputs if l == 0 else hidden
        if init == "pytorch":
            bound = 1.0 / np.sqrt(hidden)
            w_ih = rng.uniform(-bound, bound, size=(g * hidden, d))
            w_hh = np.concatenate([recurrent_init(rng, hidden, init, gain) for _ in range(g)])
            b_ih = rng.uniform(-bound, bound, size=g * hidden)
            b_hh = rng.uniform(-bound, bound, size=g * hidden)
        else:
            # Input weights N(0, 1/d): unit-variance inputs give each unit unit-variance
            # drive, so an input scale s is the mean-field input std sigma_x = s.
            w_ih = rng.normal(0.0, 1.0 / np.sqrt(d), size=(g * hidden, d))
            w_hh = np.concatenate([recurrent_init(rng, hidden, init, gain) for _ in range(g)])
            b_ih = rng.normal(0.0, bias_scale, size=g * hidden) if bias_scale > 0 else np.zeros(g * hidden)
            b_hh = np.zeros(g * hidden)
        if record.gate_bias is not None:
            block, option = record.gate_bias
            b_ih[block * hidden : (block + 1) * hidden] += extra[option]
        params.update(
            {f"weight_ih_l{l}": w_ih, f"weight_hh_l{l}": w_hh, f"bias_ih_l{l}": b_ih, f"bias_hh_l{l}": b_hh}
        )
    extra.update(gain=gain, init=init, bias_scale=bias_scale, seed=int(seed))
    return build_cell(kind, params, hidden, inputs, layers, activation=activation, name=name, **extra)


def rnn(
    hidden: int,
    inputs: int,
    activation: str = "tanh",
    gain: float = 1.0,
    init: str = "gaussian",
    bias_scale: float = 0.0,
    seed: int = 0,
    layers: int = 1,
    name: str | None = None,
    allow_large: bool = False,
) -> Cell:
    """A vanilla recurrent cell ``h_t = phi(W_hh h_{t-1} + W_ih x_t + b)``.

    Parameters
    ----------
    hidden, inputs : int
        Hidden units ``N`` and input width ``D``.
    activation : {"tanh", "relu", "sigmoid", "linear"}
    gain : float
        Scale ``g`` of the recurrent matrix (see ``init``).
    init : {"gaussian", "orthogonal", "identity", "pytorch"}
        Recurrent matrix: ``W_ij ~ N(0, g^2/N)``; Haar orthogonal times ``g``;
        ``g * I`` (IRNN); PyTorch's default ``U(-1/sqrt(N), 1/sqrt(N))`` times ``g``
        (which then also sets input weights and biases as PyTorch does). Otherwise
        input weights are ``N(0, 1/D)`` and biases ``N(0, bias_scale^2)``.
    bias_scale : float
        Standard deviation of the biases (mean-field ``sigma_b``).
    seed : int
        Seed of every random draw; same seed, same weights.
    layers : int
        Stacked layers; the state is the concatenation of the layers' states.
    allow_large : bool
        Build a cell whose weights need more than 4 GiB (refused by default, with the estimate).

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.rnn(64, 8, gain=1.5, seed=1)
    >>> cell.state_size, cell.params["weight_hh_l0"].shape
    (64, (64, 64))
    """
    activation = check_choice("activation", activation, act.ACTIVATIONS)
    return random_cell(
        "rnn",
        hidden,
        inputs,
        activation=activation,
        gain=gain,
        init=init,
        bias_scale=bias_scale,
        seed=seed,
        layers=layers,
        name=name,
        allow_large=allow_large,
    )


def lstm(
    hidden: int,
    inputs: int,
    forget_bias: float = 1.0,
    gain: float = 1.0,
    init: str = "gaussian",
    bias_scale: float = 0.0,
    seed: int = 0,
    layers: int = 1,
    name: str | None = None,
    allow_large: bool = False,
) -> Cell:
    """An LSTM cell (PyTorch's equations, gates i, f, g, o); state ``[h, c]`` of size ``2N``.

    ``forget_bias`` is added to the forget gate's bias (``sigmoid(1) = 0.731`` for
    the default 1.0). Each of the four recurrent blocks is drawn with ``init`` and
    ``gain`` as in `rnn`.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.lstm(16, 4, forget_bias=2.0).state_size
    32
    """
    return random_cell(
        "lstm",
        hidden,
        inputs,
        gain=gain,
        init=init,
        bias_scale=bias_scale,
        seed=seed,
        layers=layers,
        name=name,
        allow_large=allow_large,
        forget_bias=forget_bias,  # checked and added to the f block's bias: the record's gate_bias
    )


def gru(
    hidden: int,
    inputs: int,
    update_bias: float = 0.0,
    gain: float = 1.0,
    init: str = "gaussian",
    bias_scale: float = 0.0,
    seed: int = 0,
    layers: int = 1,
    name: str | None = None,
    allow_large: bool = False,
) -> Cell:
    """A GRU cell (PyTorch's equations, gates r, z, n).

    ``h' = (1 - z) * n + z * h``, so ``update_bias`` (added to z's bias) sets how
    much of the old state is kept: positive values lengthen memory.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.gru(16, 4).params["weight_hh_l0"].shape
    (48, 16)
    """
    return random_cell(
        "gru",
        hidden,
        inputs,
        gain=gain,
        init=init,
        bias_scale=bias_scale,
        seed=seed,
        layers=layers,
        name=name,
        allow_large=allow_large,
        update_bias=update_bias,  # checked and added to the z block's bias: the record's gate_bias
    )
