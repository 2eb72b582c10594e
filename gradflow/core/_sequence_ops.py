"""A whole one-layer LSTM sequence as one primitive: training's fast path.

The LSTM step (``_ops.affine``, ``_ops.lstm_update``) unrolled in numpy, keeping each step's VJP
factors (``_ops.lstm_local``), with one reverse loop (``_ops.lstm_back``, the same formulas as
``lstm_update``'s rule) as its VJP.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd.extend import Box, defvjp_argnums, primitive
from autograd.tracer import getval

from ._ops import affine, lstm_back, lstm_local, lstm_update


class _LSTMRun:
    """A one-layer LSTM unrolled over ``xs`` in numpy: every state and the factors of every step's
    VJP (`lstm_local`), kept for the reverse loop."""

    def __init__(self, xs, W_ih, W_hh, b, h0):
        T, B, D = xs.shape
        n = W_hh.shape[1]
        # The input drive of every step in one product (the step's affine(x, W_ih, b), batched).
        gi = affine(xs.reshape(T * B, D), W_ih, b).reshape(T, B, 4 * n)
        self.states = np.empty((T + 1, B, 2 * n))
        self.states[0] = h0
        h, c, self.local = h0[:, :n], h0[:, n:], []
        for t in range(T):
            h, c, local = lstm_local(affine(h, W_hh, gi[t]), c)
            self.states[t + 1, :, :n], self.states[t + 1, :, n:] = h, c
            self.local.append(local)


def _lstm_sequence_vjp(argnums, ans, args, kwargs):
    xs, W_ih, W_hh, _, _, run = args
    T, B, D = xs.shape
    n = W_hh.shape[1]

    def vjp(G):
        d_pre = np.empty((T, B, 4 * n))
        carry_h, carry_c = np.zeros((B, n)), np.zeros((B, n))
        for t in range(T - 1, -1, -1):  # the reverse loop: each step's LSTM VJP, then W_hh's
            d_pre[t], carry_c = lstm_back(run.local[t], G[t, :, :n] + carry_h, G[t, :, n:] + carry_c)
            carry_h = d_pre[t] @ W_hh
        rows = d_pre.reshape(T * B, 4 * n)
        out = {
            0: lambda: (rows @ W_ih).reshape(xs.shape),
            1: lambda: rows.T @ xs.reshape(T * B, D),
            2: lambda: rows.T @ run.states[:-1, :, :n].reshape(T * B, n),
            3: lambda: rows.sum(axis=0),
            4: lambda: np.concatenate([carry_h, carry_c], axis=-1),
        }
        return tuple(out[a]() for a in argnums)

    return vjp


@primitive
def _lstm_sequence(xs, W_ih, W_hh, b, h0, run):
    return run.states[1:]


defvjp_argnums(_lstm_sequence, _lstm_sequence_vjp)


def _lstm_loop(xs, W_ih, W_hh, b, h0):
    n, h, states = W_hh.shape[1], h0, []
    for x in xs:
        h = lstm_update(affine(h[:, :n], W_hh, affine(x, W_ih, b)), h[:, n:])
        states.append(h)
    return anp.stack(states)


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
    args = (xs, W_ih, W_hh, b, h0)
    traces = set()
    for a in args:
        while isinstance(a, Box):
            traces.add(a._trace)
            a = a._value
    if len(traces) > 1:  # differentiated again: the traced step, whose rules differentiate again
        return _lstm_loop(*args)
    raw = [getval(a) for a in args]
    if not traces:
        return _LSTMRun(*raw).states[1:]
    return _lstm_sequence(*args, _LSTMRun(*raw))
