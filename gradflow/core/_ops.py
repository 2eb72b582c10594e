"""Fused operations of the built-in cells, each with its derivative rules registered.

autograd costs ~20-40 us of Python per traced primitive. An LSTM step written
with plain ``autograd.numpy`` traces ~15 primitives; written with these it
traces 4, which is what makes one reverse pass over 10,000 steps take about a
second. Each rule is checked against central finite differences by
``tests/test_engine.py`` (every cell's J_t) and ``tests/test_ops.py``; the same derivatives in
closed form, without tracing, are in ``_jacobians``.

The rules are differentiable again, as autograd's own ``numpy_vjps`` are: they use
numpy ufuncs, operators and array methods, which autograd's boxes dispatch to
``autograd.numpy``, and `_concat` / `_broadcast` for the two calls that do not
dispatch. So autograd differentiates a rule when its arguments are boxed (the
Lyapunov regulariser's reverse-over-forward ``J_t Q``, a Hessian), and with plain
arrays the rule runs at numpy speed.

Every rule for a state-carrying argument (``x`` and a per-row ``b`` of ``affine``,
everything of the other operations; not the weights ``W`` and a bias ``b`` of
shape (n,)) also accepts a tangent or cotangent with extra *leading* axes
(``[..., a:b]`` indexing, ``axis=-1``, broadcasting against the primal's
arrays). The engine uses that to push a whole block of k vectors through one
un-replicated trace of the step, k times less work than repeating each row k
times (see ``Cell.stacked_tangents``).

Grouped weights are a broadcasting case of ``affine``: weights ``W`` (K, n, d) with
biases (K, 1, n) act on rows ``x`` (K*r, d) whose group k holds rows ``k*r:(k+1)*r``
(K models of one shape stepped together by the sweep); the other operations are
row-wise, so a cell's own step runs K stacked cells unchanged.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd.extend import Box, defjvp, defjvp_argnum, defvjp, defvjp_argnums, primitive

from ._activations import logistic, logistic_prime, sech2


def _concat(parts, axis=-1):
    """``concatenate`` that autograd traces when a part is boxed (numpy's does not dispatch)."""
    if any(isinstance(p, Box) for p in parts):
        return anp.concatenate(parts, axis=axis)
    return np.concatenate(parts, axis=axis)


def _broadcast(g, shape):
    """``broadcast_to`` that autograd traces when ``g`` is boxed."""
    return (anp if isinstance(g, Box) else np).broadcast_to(g, shape)


# ------------------------------------------------------------------ affine


def _groups(v, K):
    """Rows (..., K*r, m) as (..., K, r, m): one block of rows per group of weights."""
    return v.reshape((*v.shape[:-2], K, -1, v.shape[-1]))


def _rows(v):
    """(..., K, r, m) back to rows (..., K*r, m)."""
    return v.reshape((*v.shape[:-3], -1, v.shape[-1]))


@primitive
def affine(x, W, b):
    """``x @ W.T + b`` for ``x`` (batch, d), ``W`` (n, d), ``b`` (n,) or (batch, n).

    Grouped: ``W`` (K, n, d), ``b`` (K, 1, n) per group or (batch, n) per row, and group
    k's weights act on rows ``k*r:(k+1)*r`` of ``x``.
    """
    if np.ndim(W) == 2:
        return x @ W.T + b
    K = W.shape[0]
    y = np.matmul(x.reshape(K, -1, x.shape[-1]), np.swapaxes(W, 1, 2))
    y = y + (b if np.ndim(b) == 3 else b.reshape(y.shape))
    return y.reshape(-1, W.shape[1])


def _affine_vjp(argnums, ans, args, kwargs):
    x, W, b = args
    grouped = np.ndim(W) == 3

    def vjp(g):
        out = []
        for i in argnums:
            if i == 0:
                out.append(_rows(np.matmul(_groups(g, W.shape[0]), W)) if grouped else g @ W)
            elif i == 1:
                out.append(
                    np.matmul(np.swapaxes(_groups(g, W.shape[0]), -1, -2), _groups(x, W.shape[0]))
                    if grouped
                    else g.T @ x
                )
            elif np.ndim(b) == 3:
                out.append(_groups(g, W.shape[0]).sum(axis=1, keepdims=True))
            else:
                out.append(g if np.ndim(b) == 2 else g.sum(axis=0))
        return tuple(out)

    return vjp


def _affine_jvp_x(g, ans, x, W, b):
    if np.ndim(W) == 2:
        return g @ W.T
    return _rows(np.matmul(_groups(g, W.shape[0]), np.swapaxes(W, -1, -2)))


def _affine_jvp_W(g, ans, x, W, b):
    if np.ndim(W) == 2:
        return x @ g.T
    return _rows(np.matmul(_groups(x, W.shape[0]), np.swapaxes(g, -1, -2)))


def _affine_jvp_b(g, ans, x, W, b):
    # A per-row b (batch, n) passes its tangent through, stacked or not; a bias broadcasts.
    if np.ndim(b) == 2:
        return g
    if np.ndim(b) == 3:
        return _rows(_broadcast(g, _groups(ans, W.shape[0]).shape))
    return _broadcast(g, ans.shape)


defvjp_argnums(affine, _affine_vjp)
defjvp(affine, _affine_jvp_x, _affine_jvp_W, _affine_jvp_b)


# ------------------------------------------------------------------ LSTM


_HALVES: dict[int, np.ndarray] = {}


def _lstm_gates(pre, c):
    """``half`` (``a/2`` of the logistic gates i, f, o, ``a`` of g), the gates and ``c'``.

    One tanh serves the four gates, ``logistic(a) = (1 + tanh(a/2)) / 2``: the same numbers as
    `logistic` gate by gate (halving is exact), in one call instead of four.
    """
    n = c.shape[-1]
    if n not in _HALVES:
        _HALVES[n] = np.repeat([0.5, 0.5, 1.0, 0.5], n)
    half = pre * _HALVES[n]
    t = np.tanh(half)
    i, f, g, o = (
        0.5 * (1.0 + t[..., :n]),
        0.5 * (1.0 + t[..., n : 2 * n]),
        t[..., 2 * n : 3 * n],
        0.5 * (1.0 + t[..., 3 * n :]),
    )
    return half, (i, f, g, o), f * c + i * g


def lstm_parts(pre, c):
    n = c.shape[-1]
    _, gates, c_new = _lstm_gates(pre, c)
    return (pre[..., :n], pre[..., n : 2 * n], pre[..., 2 * n : 3 * n], pre[..., 3 * n :]), gates, c_new


@primitive
def lstm_update(pre, c):
    """LSTM gates from pre-activations ``pre`` (batch, 4n; order i, f, g, o) and cell ``c``.

    Returns ``[h', c']`` concatenated, with ``c' = f c + i g`` and ``h' = o tanh(c')``.
    """
    _, (_, _, _, o), c_new = _lstm_gates(pre, c)
    return np.concatenate([o * np.tanh(c_new), c_new], axis=-1)  # primal: never boxed


def lstm_local(pre, c):
    """The next ``h'``, ``c'`` and the factors the step's VJP multiplies (`lstm_back`)."""
    n = c.shape[-1]
    half, (i, f, g, o), c_new = _lstm_gates(pre, c)
    tc = np.tanh(c_new)
    s = sech2(half)  # one call for the gates: logistic'(a) = sech^2(a/2) / 4 (`logistic_prime`)
    local = (
        g,
        0.25 * s[..., :n],
        c,
        0.25 * s[..., n : 2 * n],
        i,
        s[..., 2 * n : 3 * n],
        tc,
        0.25 * s[..., 3 * n :],
        o,
        sech2(c_new),
        f,
    )
    return o * tc, c_new, local


def lstm_back(local, gh, gc, argnums=(0, 1)):
    """Cotangents of ``pre`` and ``c`` from those of ``h'`` and ``c'``: the LSTM's VJP."""
    g, lpi, c, lpf, i, s2g, tc, lpo, o, s2c, f = local
    dc_new = gc + gh * o * s2c
    out = []
    for a in argnums:
        if a == 0:
            out.append(_concat([dc_new * g * lpi, dc_new * c * lpf, dc_new * i * s2g, gh * tc * lpo]))
        else:
            out.append(dc_new * f)
    return tuple(out)


def _lstm_vjp(argnums, ans, args, kwargs):
    pre, c = args
    n = c.shape[-1]
    local = lstm_local(pre, c)[2]
    return lambda G: lstm_back(local, G[..., :n], G[..., n:], argnums)


def _lstm_jvp_pre(P, ans, pre, c):
    n = c.shape[-1]
    (pi, pf, pg, po), (i, _, g, o), c_new = lstm_parts(pre, c)
    dc = (
        logistic_prime(pf) * P[..., n : 2 * n] * c
        + logistic_prime(pi) * P[..., :n] * g
        + i * sech2(pg) * P[..., 2 * n : 3 * n]
    )
    dh = logistic_prime(po) * P[..., 3 * n :] * np.tanh(c_new) + o * sech2(c_new) * dc
    return _concat([dh, dc])


def _lstm_jvp_c(C, ans, pre, c):
    _, (_, f, _, o), c_new = lstm_parts(pre, c)
    dc = f * C
    return _concat([o * sech2(c_new) * dc, dc])


defvjp_argnums(lstm_update, _lstm_vjp)
defjvp(lstm_update, _lstm_jvp_pre, _lstm_jvp_c)


# ------------------------------------------------------------------ GRU


def gru_parts(gi, gh, h):
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
    _, _, _, z, _, nn = gru_parts(gi, gh, h)
    return (1.0 - z) * nn + z * h


def _gru_vjp(argnums, ans, args, kwargs):
    gi, gh, h = args
    n = h.shape[-1]
    pr, pz, r, z, an, nn = gru_parts(gi, gh, h)

    def vjp(G):
        dan = G * (1.0 - z) * sech2(an)
        dpz = G * (h - nn) * logistic_prime(pz)
        dpr = dan * gh[..., 2 * n :] * logistic_prime(pr)
        out = []
        for a in argnums:
            if a == 0:
                out.append(_concat([dpr, dpz, dan]))
            elif a == 1:
                out.append(_concat([dpr, dpz, dan * r]))
            else:
                out.append(G * z)
        return tuple(out)

    return vjp


def _gru_jvp(which):
    def jvp(T, ans, gi, gh, h):
        n = h.shape[-1]
        pr, pz, r, z, an, nn = gru_parts(gi, gh, h)
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
        if isinstance(g, Box):  # differentiated again: zeros around g, traced
            lead = g.shape[:-1]
            return anp.concatenate(
                [np.zeros((*lead, start)), g, np.zeros((*lead, x.shape[-1] - stop))], axis=-1
            )
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
    return _concat([g if i == argnum else np.zeros(lead + p.shape[-1:]) for i, p in enumerate(parts)])


defvjp_argnums(join_columns, _join_vjp)
defjvp_argnum(join_columns, _join_jvp)
