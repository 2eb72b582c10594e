"""Fused operations of the built-in cells, each with its derivative rules registered.

autograd costs ~20-40 us of Python per traced primitive. An LSTM step written
with plain ``autograd.numpy`` traces ~15 primitives; written with these it
traces 4, which is what makes one reverse pass over 10,000 steps take about a
second. Each rule is checked against central finite differences by
``tests/test_engine.py`` (every cell's J_t) and ``tests/test_ops.py``.

Every rule for a state-carrying argument (``x`` and a per-row ``b`` of ``affine``,
everything of the other operations; not the weights ``W`` and a bias ``b`` of
shape (n,)) also accepts a tangent or cotangent with extra *leading* axes
(``[..., a:b]`` indexing, ``axis=-1``, broadcasting against the primal's
arrays). The engine uses that to push a whole block of k vectors through one
un-replicated trace of the step, k times less work than repeating each row k
times (see ``Cell.stacked_tangents``).
"""

from __future__ import annotations

import numpy as np
from autograd.extend import defjvp, defjvp_argnum, defvjp, defvjp_argnums, primitive

from ._activations import logistic, logistic_prime, sech2

# ------------------------------------------------------------------ affine


@primitive
def affine(x, W, b):
    """``x @ W.T + b`` for ``x`` (batch, d), ``W`` (n, d), ``b`` (n,) or (batch, n)."""
    return x @ W.T + b


def _affine_vjp(argnums, ans, args, kwargs):
    x, W, b = args

    def vjp(g):
        out = []
        for i in argnums:
            if i == 0:
                out.append(g @ W)
            elif i == 1:
                out.append(g.T @ x)
            else:
                out.append(g if np.ndim(b) == 2 else g.sum(axis=0))
        return tuple(out)

    return vjp


defvjp_argnums(affine, _affine_vjp)
defjvp(
    affine,
    lambda g, ans, x, W, b: g @ W.T,
    lambda g, ans, x, W, b: x @ g.T,
    # A per-row b (batch, n) passes its tangent through, stacked or not; a bias (n,) broadcasts.
    lambda g, ans, x, W, b: g if np.ndim(b) == 2 else np.broadcast_to(g, ans.shape),
)


# ------------------------------------------------------------------ LSTM


def _lstm_parts(pre, c):
    n = c.shape[-1]
    pi, pf, pg, po = pre[..., :n], pre[..., n : 2 * n], pre[..., 2 * n : 3 * n], pre[..., 3 * n :]
    i, f, g, o = logistic(pi), logistic(pf), np.tanh(pg), logistic(po)
    c_new = f * c + i * g
    return (pi, pf, pg, po), (i, f, g, o), c_new


@primitive
def lstm_update(pre, c):
    """LSTM gates from pre-activations ``pre`` (batch, 4n; order i, f, g, o) and cell ``c``.

    Returns ``[h', c']`` concatenated, with ``c' = f c + i g`` and ``h' = o tanh(c')``.
    """
    _, (_, _, _, o), c_new = _lstm_parts(pre, c)
    return np.concatenate([o * np.tanh(c_new), c_new], axis=-1)


def _lstm_vjp(argnums, ans, args, kwargs):
    pre, c = args
    n = c.shape[-1]
    (pi, pf, pg, po), (i, f, g, o), c_new = _lstm_parts(pre, c)
    tc = np.tanh(c_new)

    def vjp(G):
        gh, gc = G[..., :n], G[..., n:]
        dc_new = gc + gh * o * sech2(c_new)
        out = []
        for a in argnums:
            if a == 0:
                out.append(np.concatenate([
                    dc_new * g * logistic_prime(pi),
                    dc_new * c * logistic_prime(pf),
                    dc_new * i * sech2(pg),
                    gh * tc * logistic_prime(po),
                ], axis=-1))
            else:
                out.append(dc_new * f)
        return tuple(out)

    return vjp


def _lstm_jvp_pre(P, ans, pre, c):
    n = c.shape[-1]
    (pi, pf, pg, po), (i, _, g, o), c_new = _lstm_parts(pre, c)
    dc = (logistic_prime(pf) * P[..., n : 2 * n] * c + logistic_prime(pi) * P[..., :n] * g
          + i * sech2(pg) * P[..., 2 * n : 3 * n])
    dh = logistic_prime(po) * P[..., 3 * n :] * np.tanh(c_new) + o * sech2(c_new) * dc
    return np.concatenate([dh, dc], axis=-1)


def _lstm_jvp_c(C, ans, pre, c):
    _, (_, f, _, o), c_new = _lstm_parts(pre, c)
    dc = f * C
    return np.concatenate([o * sech2(c_new) * dc, dc], axis=-1)


defvjp_argnums(lstm_update, _lstm_vjp)
defjvp(lstm_update, _lstm_jvp_pre, _lstm_jvp_c)


# ------------------------------------------------------------------ GRU


def _gru_parts(gi, gh, h):
    n = h.shape[-1]
    pr = gi[..., :n] + gh[..., :n]
    pz = gi[..., n : 2 * n] + gh[..., n : 2 * n]
    r, z = logistic(pr), logistic(pz)
    an = gi[..., 2 * n :] + r * gh[..., 2 * n :]
    return pr, pz, r, z, an, np.tanh(an)


@primitive
def gru_update(gi, gh, h):
    """PyTorch's GRU: ``gi = W_ih x + b_ih``, ``gh = W_hh h + b_hh`` (batch, 3n; r, z, n).

    ``n = tanh(gi_n + r * gh_n)``, ``h' = (1 - z) n + z h``.
    """
    _, _, _, z, _, nn = _gru_parts(gi, gh, h)
    return (1.0 - z) * nn + z * h


def _gru_vjp(argnums, ans, args, kwargs):
    gi, gh, h = args
    n = h.shape[-1]
    pr, pz, r, z, an, nn = _gru_parts(gi, gh, h)

    def vjp(G):
        dan = G * (1.0 - z) * sech2(an)
        dpz = G * (h - nn) * logistic_prime(pz)
        dpr = dan * gh[..., 2 * n :] * logistic_prime(pr)
        out = []
        for a in argnums:
            if a == 0:
                out.append(np.concatenate([dpr, dpz, dan], axis=-1))
            elif a == 1:
                out.append(np.concatenate([dpr, dpz, dan * r], axis=-1))
            else:
                out.append(G * z)
        return tuple(out)

    return vjp


def _gru_jvp(which):
    def jvp(T, ans, gi, gh, h):
        n = h.shape[-1]
        pr, pz, r, z, an, nn = _gru_parts(gi, gh, h)
        if which == 2:
            return z * T
        dr = logistic_prime(pr) * T[..., :n]
        dz = logistic_prime(pz) * T[..., n : 2 * n]
        # d(an): gi_n enters directly; gh_n through r * gh_n; both move r.
        dan = dr * gh[..., 2 * n :] + (T[..., 2 * n :] if which == 0 else r * T[..., 2 * n :])
        return (h - nn) * dz + (1.0 - z) * sech2(an) * dan

    return jvp


defvjp_argnums(gru_update, _gru_vjp)
defjvp(gru_update, _gru_jvp(0), _gru_jvp(1), _gru_jvp(2))


# ------------------------------------------------------------------ state plumbing


@primitive
def take_columns(x, start, stop):
    """``x[..., start:stop]``: one layer's part of a stacked state."""
    return x[..., start:stop]


def _take_vjp(ans, x, start, stop):
    def vjp(g):
        out = np.zeros(g.shape[:-1] + x.shape[-1:])
        out[..., start:stop] = g
        return out

    return vjp


defvjp(take_columns, _take_vjp)
defjvp(take_columns, lambda g, ans, x, start, stop: g[..., start:stop])


@primitive
def join_columns(*parts):
    """``concatenate(parts, axis=-1)``: the layers' states into one."""
    return np.concatenate(parts, axis=-1)


def _join_vjp(argnums, ans, parts, kwargs):
    edges = np.cumsum([0] + [p.shape[-1] for p in parts])
    return lambda g: tuple(g[..., edges[i] : edges[i + 1]] for i in argnums)


def _join_jvp(argnum, g, ans, parts, kwargs):
    lead = g.shape[:-1]
    return np.concatenate([g if i == argnum else np.zeros(lead + p.shape[-1:])
                           for i, p in enumerate(parts)], axis=-1)


defvjp_argnums(join_columns, _join_vjp)
defjvp_argnum(join_columns, _join_jvp)


# ------------------------------------------------------------------ closed-form step Jacobians


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


def step_jacobians(kind, params, h, x, activation="tanh", out=None):
    """``d state' / d state`` of a one-layer built-in cell at M rows ``(h, x)``: (M, S, S).

    The closed-form derivatives of the fused operations above (the same formulas as
    their JVP rules), without tracing: an order of magnitude cheaper than autograd.
    ``out``: an (M, S, S) array to write a vanilla cell's Jacobians into (no copy).
    """
    Wh = params["weight_hh_l0"]
    if kind == "rnn":
        return np.multiply(vanilla_slopes(params, h, x, activation)[:, :, None], Wh, out=out)
    if kind == "lstm":
        n = Wh.shape[1]
        gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"] + params["bias_hh_l0"])
        hh, c = h[:, :n], h[:, n:]
        (pi, pf, pg, po), (i, f, g, o), c_new = _lstm_parts(affine(hh, Wh, gi), c)
        dc_dh = (_rows_times(g * logistic_prime(pi), Wh[:n])
                 + _rows_times(c * logistic_prime(pf), Wh[n : 2 * n])
                 + _rows_times(i * sech2(pg), Wh[2 * n : 3 * n]))
        out_gain = o * sech2(c_new)
        J = np.zeros((h.shape[0], 2 * n, 2 * n))
        J[:, :n, :n] = out_gain[:, :, None] * dc_dh + _rows_times(np.tanh(c_new) * logistic_prime(po),
                                                                  Wh[3 * n :])
        J[:, n:, :n] = dc_dh
        idx = np.arange(n)
        J[:, idx, n + idx] = out_gain * f
        J[:, n + idx, n + idx] = f
        return J
    if kind == "gru":
        n = Wh.shape[1]
        gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"])
        gh = affine(h, Wh, params["bias_hh_l0"])
        pr, pz, r, z, an, nn = _gru_parts(gi, gh, h)
        d_an = (1.0 - z) * sech2(an)
        J = (_rows_times((h - nn) * logistic_prime(pz), Wh[n : 2 * n])
             + _rows_times(d_an * gh[:, 2 * n :] * logistic_prime(pr), Wh[:n])
             + _rows_times(d_an * r, Wh[2 * n :]))
        idx = np.arange(n)
        J[:, idx, idx] += z
        return J
    raise ValueError(f"no closed-form Jacobian for a cell of kind {kind!r}")


def jacobian_terms(kind, params, h, x, activation="tanh"):
    """``J`` of a one-layer built-in cell at M rows as ``J_m = sum_k diag(scales[m, k]) bases[k]``.

    Returns ``bases`` (K, S, S), fixed by the weights, and ``scales`` (M, K, S), the only
    part that changes from step to step (K = 1 for a vanilla cell, 4 for a GRU, 5 for an
    LSTM). Averages over steps of ``J X J^T`` then need K matrix products, not one per step:
    ``mean_m J_m X J_m^T = sum_{k,l} (B_k X B_l^T) * mean_m scales[m, k] scales[m, l]^T``.
    """
    Wh = params["weight_hh_l0"]
    if kind == "rnn":
        return Wh[None], vanilla_slopes(params, h, x, activation)[:, None, :]
    n = Wh.shape[1]
    if kind == "lstm":
        gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"] + params["bias_hh_l0"])
        c = h[:, n:]
        (pi, pf, pg, po), (i, f, g, o), c_new = _lstm_parts(affine(h[:, :n], Wh, gi), c)
        out_gain = o * sech2(c_new)
        zero = np.zeros_like(c)
        # h' rows and c' rows: the gates i, f, g reach h through c' (times o sech^2 c').
        through_c = [g * logistic_prime(pi), c * logistic_prime(pf), i * sech2(pg)]
        scales = [np.concatenate([out_gain * s, s], axis=1) for s in through_c]
        scales += [np.concatenate([np.tanh(c_new) * logistic_prime(po), zero], axis=1),
                   np.concatenate([out_gain * f, f], axis=1)]
        bases = np.zeros((5, 2 * n, 2 * n))
        for k in range(3):
            bases[k, :n, :n] = bases[k, n:, :n] = Wh[k * n : (k + 1) * n]
        bases[3, :n, :n] = Wh[3 * n :]
        bases[4, :n, n:] = bases[4, n:, n:] = np.eye(n)
        return bases, np.stack(scales, axis=1)
    if kind == "gru":
        gi = affine(x, params["weight_ih_l0"], params["bias_ih_l0"])
        gh = affine(h, Wh, params["bias_hh_l0"])
        pr, pz, r, z, an, nn = _gru_parts(gi, gh, h)
        d_an = (1.0 - z) * sech2(an)
        bases = np.stack([Wh[:n], Wh[n : 2 * n], Wh[2 * n :], np.eye(n)])
        scales = np.stack([d_an * gh[:, 2 * n :] * logistic_prime(pr), (h - nn) * logistic_prime(pz),
                           d_an * r, z], axis=1)
        return bases, scales
    raise ValueError(f"no closed-form Jacobian for a cell of kind {kind!r}")
