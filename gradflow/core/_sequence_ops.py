"""A whole one-layer LSTM, GRU or vanilla sequence as one primitive: training's fast path.

The cell's step (``_ops.affine`` plus ``_ops.lstm_update``, ``_ops.gru_update`` or the activation)
unrolled in numpy, keeping each step's VJP factors (``_ops.lstm_local``, ``_ops.gru_local``,
the pre-activation ``a``), with one reverse loop (``_ops.lstm_back``, ``_ops.gru_back``, ``g * phi'(a)``: the
same formulas as the steps' rules) as its VJP.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd.extend import Box, defvjp_argnums, primitive
from autograd.tracer import getval

from ._activations import ACTIVATIONS
from ._jacobians import SLOPES
from ._ops import affine, gru_back, gru_local, gru_update, lstm_back, lstm_local, lstm_update

# sequence_forward only meets plain arrays: the operations' own functions, without the check for
# autograd boxes each primitive call makes (~2 us a call, three a step).
_affine, _lstm_update, _gru_update = affine.fun, lstm_update.fun, gru_update.fun


def _lstm_forward(x, state, W_ih, W_hh, b_ih, b_hh, keep):
    # lstm_step's operations in its order (b_ih is the summed bias, b_hh unused): the same bytes.
    n = W_hh.shape[1]
    pre = _affine(state[:, :n], W_hh, _affine(x, W_ih, b_ih))
    if not keep:
        return _lstm_update(pre, state[:, n:]), None
    h, c, local = lstm_local(pre, state[:, n:])
    return np.concatenate([h, c], axis=-1), local


def _lstm_backward(local, G):
    """Cotangents of ``gi``, ``gh`` (both the pre-activation's) and of the state directly."""
    n = G.shape[-1] // 2
    d_pre, dc = lstm_back(local, G[:, :n], G[:, n:])
    return d_pre, d_pre, np.concatenate([np.zeros_like(dc), dc], axis=-1)


def _gru_forward(x, state, W_ih, W_hh, b_ih, b_hh, keep):
    # gru_step's operations in its order: the same bytes.
    gi, gh = _affine(x, W_ih, b_ih), _affine(state, W_hh, b_hh)
    return gru_local(gi, gh, state) if keep else (_gru_update(gi, gh, state), None)


def _gru_backward(local, G):
    return gru_back(local, G)


# A kind's step on plain arrays: forward(x, state, W_ih, W_hh, b_ih, b_hh, keep) -> (state',
# factors or None) and backward(factors, G) -> (d gi, d gh, d state without the path through gh).
_RULES = {"lstm": (_lstm_forward, _lstm_backward), "gru": (_gru_forward, _gru_backward)}
SEQUENCE_KINDS = tuple(_RULES)  # the kinds `sequence_forward` unrolls (and "rnn", by activation)


def _vanilla_rules(activation):
    """A vanilla step's rules, ``h' = phi(h @ W_hh.T + (x @ W_ih.T + b))`` (``b_ih`` the summed
    bias, ``b_hh`` unused): rnn_step's operations in its order, so its bytes. Its factor is the
    pre-activation ``a`` (what the engine's vanilla passes read), its slope taken going back."""
    phi = ACTIVATIONS[activation]
    phi = getattr(phi, "fun", phi)  # the primitive's own function: plain arrays only

    def forward(x, h, W_ih, W_hh, b_ih, b_hh, keep):
        a = h @ W_hh.T + (x @ W_ih.T + b_ih)  # affine's operations, inline: the engine's hot loop
        return phi(a), (a if keep else None)

    def backward(a, G):
        d_a = G * SLOPES[activation](a)  # gi and gh are one pre-activation; h reaches h' only through W_hh
        return d_a, d_a, np.zeros_like(G)

    return forward, backward


def _rules(kind, activation):
    """``(forward, backward)`` of ``kind``; a vanilla cell's ("rnn") by its ``activation``."""
    return _vanilla_rules(activation) if kind == "rnn" else _RULES[kind]


def sequence_forward(kind, xs, W_ih, W_hh, b_ih, b_hh, states, factors=None, activation=None) -> None:
    """Write ``states[1:]`` of a one-layer LSTM, GRU or vanilla cell ("rnn", with its
    ``activation``) (``kind``) over ``xs`` (T, batch, D) from ``states[0]``, on plain arrays;
    with a list ``factors``, append each step's VJP factors to it.

    The step's operations in its order, input drive included (one product over all steps would
    change last bits), so the states are ``cell.step``'s bytes without its autograd wrappers. The
    weights as in PyTorch; an LSTM's or a vanilla cell's ``b_ih`` is its summed bias
    ``bias_ih + bias_hh`` (``b_hh`` unused).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.core._sequence_ops import sequence_forward
    >>> cell, xs = gf.gru(4, 2, seed=0), gf.inputs.gaussian(5, 3, 2, seed=1)
    >>> p, states = cell.params, np.zeros((6, 3, 4))
    >>> weights = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    >>> sequence_forward("gru", xs, *weights, states)
    >>> bool(np.array_equal(states, gf.unroll(cell, xs)))
    True
    """
    forward, keep = _rules(kind, activation)[0], factors is not None
    state = states[0]
    for t, x in enumerate(xs):
        state, local = forward(x, state, W_ih, W_hh, b_ih, b_hh, keep)
        states[t + 1] = state
        if keep:
            factors.append(local)


class _Run:
    """A one-layer cell unrolled over ``xs`` in numpy: every state and the factors of every step's VJP."""

    def __init__(self, kind, xs, W_ih, W_hh, b_ih, b_hh, h0, activation=None):
        self.states = np.empty((xs.shape[0] + 1, xs.shape[1], h0.shape[-1]))
        self.states[0] = h0
        self.local = []
        self.backward = _rules(kind, activation)[1]
        sequence_forward(kind, xs, W_ih, W_hh, b_ih, b_hh, self.states, self.local, activation)


def _sequence_vjp(argnums, ans, args, kwargs):
    kind, xs, W_ih, W_hh, _, _, _, run = args
    T, B, D = xs.shape
    n, backward = W_hh.shape[1], run.backward

    def vjp(G):
        d_gi = np.empty((T, B, W_hh.shape[0]))
        # The LSTM's and the vanilla cell's are one and the same (one summed pre-activation).
        d_gh = np.empty_like(d_gi) if kind == "gru" else d_gi
        carry = np.zeros(G.shape[1:])
        for t in range(T - 1, -1, -1):  # the reverse loop: each step's VJP, then W_hh's
            d_gi[t], gh, carry = backward(run.local[t], G[t] + carry)
            if d_gh is not d_gi:
                d_gh[t] = gh
            carry[:, :n] += gh @ W_hh
        rows_i, rows_h = d_gi.reshape(T * B, -1), d_gh.reshape(T * B, -1)
        out = {
            1: lambda: (rows_i @ W_ih).reshape(xs.shape),
            2: lambda: rows_i.T @ xs.reshape(T * B, D),
            3: lambda: rows_h.T @ run.states[:-1, :, :n].reshape(T * B, n),
            4: lambda: rows_i.sum(axis=0),
            5: lambda: rows_h.sum(axis=0),
            6: lambda: carry,
        }
        return tuple(out[a]() for a in argnums)

    return vjp


@primitive
def _sequence(kind, xs, W_ih, W_hh, b_ih, b_hh, h0, run):
    return run.states[1:]


defvjp_argnums(_sequence, _sequence_vjp)


def _loop(kind, xs, W_ih, W_hh, b_ih, b_hh, h0, activation=None):
    n, state, states = W_hh.shape[1], h0, []
    for x in xs:
        if kind == "rnn":
            state = ACTIVATIONS[activation](affine(state, W_hh, affine(x, W_ih, b_ih)))
        elif kind == "lstm":
            state = lstm_update(affine(state[:, :n], W_hh, affine(x, W_ih, b_ih)), state[:, n:])
        else:
            state = gru_update(affine(x, W_ih, b_ih), affine(state, W_hh, b_hh), state)
        states.append(state)
    return anp.stack(states)


def _unrolled(kind, xs, W_ih, W_hh, b_ih, b_hh, h0, activation=None):
    args = (xs, W_ih, W_hh, b_ih, b_hh, h0)
    traces = set()
    for a in args:
        while isinstance(a, Box):
            traces.add(a._trace)
            a = a._value
    # Differentiated again, or an activation without a plain derivative: the traced step, whose
    # rules differentiate (again).
    if len(traces) > 1 or (kind == "rnn" and activation not in SLOPES):
        return _loop(kind, *args, activation)
    run = _Run(kind, *(getval(a) for a in args), activation)
    return _sequence(kind, *args, run) if traces else run.states[1:]


def lstm_sequence(xs, W_ih, W_hh, b, h0):
    """Every state ``[h_t, c_t]`` (T, batch, 2n) of a one-layer LSTM over ``xs`` (T, batch, D)
    from ``h0`` (batch, 2n): the LSTM step (``affine``, ``lstm_update``) unrolled as one primitive.

    Its VJP is one reverse loop in numpy over the factors the forward pass kept (`lstm_back`,
    the same formulas as ``lstm_update``'s rule) and one product per weight for the whole
    sequence, instead of a trace of every step: what makes a training step fast. Differentiated
    twice (boxes of several traces), it is the unrolled step itself, which autograd traces.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.core._sequence_ops import lstm_sequence
    >>> cell, xs = gf.lstm(4, 2, seed=0), gf.inputs.gaussian(5, 3, 2, seed=1)
    >>> p = cell.params
    >>> states = lstm_sequence(xs, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"],
    ...                        np.zeros((3, 8)))
    >>> bool(np.allclose(states, gf.unroll(cell, xs)[1:], rtol=1e-14, atol=0))
    True
    """
    return _unrolled("lstm", xs, W_ih, W_hh, b, 0.0, h0)


def gru_sequence(xs, W_ih, W_hh, b_ih, b_hh, h0):
    """Every state (T, batch, n) of a one-layer GRU over ``xs`` (T, batch, D) from ``h0`` (batch, n):
    the GRU step (``affine``, ``gru_update``) unrolled as one primitive, as `lstm_sequence`.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.core._sequence_ops import gru_sequence
    >>> cell, xs = gf.gru(4, 2, seed=0), gf.inputs.gaussian(5, 3, 2, seed=1)
    >>> p = cell.params
    >>> states = gru_sequence(xs, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"],
    ...                       np.zeros((3, 4)))
    >>> bool(np.allclose(states, gf.unroll(cell, xs)[1:], rtol=1e-14, atol=0))
    True
    """
    return _unrolled("gru", xs, W_ih, W_hh, b_ih, b_hh, h0)


def rnn_sequence(xs, W_ih, W_hh, b, h0, activation="tanh"):
    """Every state (T, batch, n) of a one-layer vanilla cell ``h' = phi(W_hh h + W_ih x + b)``
    over ``xs`` (T, batch, D) from ``h0`` (batch, n), ``b`` the summed bias and ``phi`` the
    registered ``activation``: the step (``affine``, ``phi``) unrolled as one primitive, as
    `lstm_sequence`. Its VJP's reverse loop is ``g_a = g_h * phi'(a)``, ``g_h = g_a @ W_hh``;
    an activation without a plain derivative (``SLOPES``) unrolls the traced step instead.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.core._sequence_ops import rnn_sequence
    >>> cell, xs = gf.rnn(4, 2, seed=0), gf.inputs.gaussian(5, 3, 2, seed=1)
    >>> p = cell.params
    >>> states = rnn_sequence(xs, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"],
    ...                       np.zeros((3, 4)))
    >>> bool(np.array_equal(states, gf.unroll(cell, xs)[1:]))
    True
    """
    return _unrolled("rnn", xs, W_ih, W_hh, b, 0.0, h0, activation)
