"""Closed-form step Jacobians of the built-in cells: the fused operations' derivatives (``_ops``,
the same formulas as their JVP rules) without tracing, an order of magnitude cheaper than autograd.

Each kind's functions are named by its `CellKind` record (``jacobians``, ``jacobian_terms``);
`step_jacobians` and `jacobian_terms` dispatch on the kind.
"""

from __future__ import annotations

import numpy as np

from ._activations import logistic_prime, sech2
from ._ops import affine, gru_parts, lstm_parts
from ._registry import cell_kind


def _relu_slope(a):
    return (a > 0).astype(float)


def _linear_slope(a):
    return np.ones_like(a)


# phi'(a) of each vanilla activation (the same rules the activations register with autograd).
SLOPES = {"tanh": sech2, "relu": _relu_slope, "sigmoid": logistic_prime, "linear": _linear_slope}


def vanilla_slopes(params, h, x, activation):
    """``phi'(a)`` for a one-layer vanilla step at rows ``(h, x)``: ``J = slopes[:, :, None] * W_hh``."""
    gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"] + params["bias_hh_l0"])
    return SLOPES[activation](affine(h, params["weight_hh_l0"], gi))


def _rows_times(d, W):
    """``diag(d_m) W`` for every row m: (M, n) and (n, k) -> (M, n, k)."""
    return d[:, :, None] * W


def rnn_jacobians(params, h, x, activation="tanh", out=None):
    """A one-layer vanilla cell's ``J = diag(phi'(a)) W_hh`` at M rows, written into ``out``."""
    return np.multiply(vanilla_slopes(params, h, x, activation)[:, :, None], params["weight_hh_l0"], out=out)


def lstm_jacobians(params, h, x, activation=None, out=None):
    """A one-layer LSTM's ``d [h', c'] / d [h, c]`` at M rows (the JVP rules' formulas)."""
    Wh = params["weight_hh_l0"]
    n = Wh.shape[1]
    gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"] + params["bias_hh_l0"])
    hh, c = h[:, :n], h[:, n:]
    (pi, pf, pg, po), (i, f, g, o), c_new = lstm_parts(affine(hh, Wh, gi), c)
    dc_dh = (
        _rows_times(g * logistic_prime(pi), Wh[:n])
        + _rows_times(c * logistic_prime(pf), Wh[n : 2 * n])
        + _rows_times(i * sech2(pg), Wh[2 * n : 3 * n])
    )
    out_gain = o * sech2(c_new)
    J = np.zeros((h.shape[0], 2 * n, 2 * n))
    J[:, :n, :n] = out_gain[:, :, None] * dc_dh + _rows_times(
        np.tanh(c_new) * logistic_prime(po), Wh[3 * n :]
    )
    J[:, n:, :n] = dc_dh
    idx = np.arange(n)
    J[:, idx, n + idx] = out_gain * f
    J[:, n + idx, n + idx] = f
    return J


def gru_jacobians(params, h, x, activation=None, out=None):
    """A one-layer GRU's ``d h' / d h`` at M rows (the JVP rules' formulas)."""
    Wh = params["weight_hh_l0"]
    n = Wh.shape[1]
    gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"])
    gh = affine(h, Wh, params["bias_hh_l0"])
    pr, pz, r, z, an, nn = gru_parts(gi, gh, h)
    d_an = (1.0 - z) * sech2(an)
    J = (
        _rows_times((h - nn) * logistic_prime(pz), Wh[n : 2 * n])
        + _rows_times(d_an * gh[:, 2 * n :] * logistic_prime(pr), Wh[:n])
        + _rows_times(d_an * r, Wh[2 * n :])
    )
    idx = np.arange(n)
    J[:, idx, idx] += z
    return J


def step_jacobians(kind, params, h, x, activation="tanh", out=None):
    """``d state' / d state`` of a one-layer cell of a registered ``kind`` with closed-form
    Jacobians, at M rows ``(h, x)``: (M, S, S).

    The closed-form derivatives of the fused operations above (the same formulas as
    their JVP rules), without tracing: an order of magnitude cheaper than autograd.
    ``out``: an (M, S, S) array to write a vanilla cell's Jacobians into (no copy).
    """
    closed = cell_kind(kind).jacobians
    if closed is None:
        raise ValueError(f"no closed-form Jacobian for a cell of kind {kind!r}")
    return closed(params, h, x, activation, out=out)


def rnn_terms(params, h, x, activation="tanh"):
    """`jacobian_terms` of a vanilla cell: ``W_hh`` scaled by ``phi'(a)`` (K = 1)."""
    return params["weight_hh_l0"][None], vanilla_slopes(params, h, x, activation)[:, None, :]


def lstm_terms(params, h, x, activation=None):
    """`jacobian_terms` of an LSTM (K = 5)."""
    Wh = params["weight_hh_l0"]
    n = Wh.shape[1]
    gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"] + params["bias_hh_l0"])
    c = h[:, n:]
    (pi, pf, pg, po), (i, f, g, o), c_new = lstm_parts(affine(h[:, :n], Wh, gi), c)
    out_gain = o * sech2(c_new)
    zero = np.zeros_like(c)
    # h' rows and c' rows: the gates i, f, g reach h through c' (times o sech^2 c').
    through_c = [g * logistic_prime(pi), c * logistic_prime(pf), i * sech2(pg)]
    scales = [np.concatenate([out_gain * s, s], axis=1) for s in through_c]
    scales += [
        np.concatenate([np.tanh(c_new) * logistic_prime(po), zero], axis=1),
        np.concatenate([out_gain * f, f], axis=1),
    ]
    bases = np.zeros((5, 2 * n, 2 * n))
    for k in range(3):
        bases[k, :n, :n] = bases[k, n:, :n] = Wh[k * n : (k + 1) * n]
    bases[3, :n, :n] = Wh[3 * n :]
    bases[4, :n, n:] = bases[4, n:, n:] = np.eye(n)
    return bases, np.stack(scales, axis=1)


def gru_terms(params, h, x, activation=None):
    """`jacobian_terms` of a GRU (K = 4)."""
    Wh = params["weight_hh_l0"]
    n = Wh.shape[1]
    gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"])
    gh = affine(h, Wh, params["bias_hh_l0"])
    pr, pz, r, z, an, nn = gru_parts(gi, gh, h)
    d_an = (1.0 - z) * sech2(an)
    bases = np.stack([Wh[:n], Wh[n : 2 * n], Wh[2 * n :], np.eye(n)])
    scales = np.stack(
        [d_an * gh[:, 2 * n :] * logistic_prime(pr), (h - nn) * logistic_prime(pz), d_an * r, z], axis=1
    )
    return bases, scales


def jacobian_terms(kind, params, h, x, activation="tanh"):
    """``J`` of a one-layer cell of a registered ``kind`` at M rows as
    ``J_m = sum_k diag(scales[m, k]) bases[k]``.

    Returns ``bases`` (K, S, S), fixed by the weights, and ``scales`` (M, K, S), the only
    part that changes from step to step (K = 1 for a vanilla cell, 4 for a GRU, 5 for an
    LSTM). Averages over steps of ``J X J^T`` then need K matrix products, not one per step:
    ``mean_m J_m X J_m^T = sum_{k,l} (B_k X B_l^T) * mean_m scales[m, k] scales[m, l]^T``.
    """
    terms = cell_kind(kind).jacobian_terms
    if terms is None:
        raise ValueError(f"no closed-form Jacobian for a cell of kind {kind!r}")
    return terms(params, h, x, activation)
