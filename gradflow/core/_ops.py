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


_GATE_SCALES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _gate_scales(n):
    """``-(1, 1, 2, 1)`` and ``(1, 1, 4, 1)``, each repeated over a block of ``n``: the exponent of
    `_lstm_gates`'s ``u`` and what turns ``u / (1 + u)^2`` into each gate's slope."""
    if n not in _GATE_SCALES:
        _GATE_SCALES[n] = (np.repeat([-1.0, -1.0, -2.0, -1.0], n), np.repeat([1.0, 1.0, 4.0, 1.0], n))
    return _GATE_SCALES[n]


def _where(cond, a, b):
    """``where`` that autograd traces when a branch is boxed."""
    return (anp if isinstance(a, Box) or isinstance(b, Box) else np).where(cond, a, b)


def _lstm_gates(pre, c):
    """The gates ``(i, f, g, o)``, ``c'`` and ``u r``, ``r`` (`lstm_slopes` reads the slopes off them).

    One exp serves the four gates: with ``u = exp(-|a|)`` (``exp(-2|a|)`` for g) and
    ``r = 1 / (1 + u)``, ``logistic(a)`` is ``r`` for ``a >= 0`` and ``u r`` below, its slope
    ``u r^2``, and tanh's slope ``4 u r^2``: no overflow and no cancellation (within 6e-16 of
    exact, where ``0.5 (1 + tanh(a/2))`` loses every digit below ``a = -37``). Three times fewer
    transcendental calls than tanh plus sech^2 gate by gate; g itself is ``tanh``.
    """
    n = c.shape[-1]
    u = np.exp(np.abs(pre) * _gate_scales(n)[0])
    r = 1.0 / (1.0 + u)
    ur = u * r
    s = _where(pre >= 0, r, ur)
    i, f, o = s[..., :n], s[..., n : 2 * n], s[..., 3 * n :]
    g = np.tanh(pre[..., 2 * n : 3 * n])
    return (i, f, g, o), f * c + i * g, ur, r


def lstm_slopes(pre, c):
    """The gates ``(i, f, g, o)``, ``c'`` and every gate's slope ``d gate / d pre`` (batch, 4n)."""
    gates, c_new, ur, r = _lstm_gates(pre, c)
    return gates, c_new, ur * r * _gate_scales(c.shape[-1])[1]


def lstm_parts(pre, c):
    n = c.shape[-1]
    gates, c_new, _, _ = _lstm_gates(pre, c)
    return (pre[..., :n], pre[..., n : 2 * n], pre[..., 2 * n : 3 * n], pre[..., 3 * n :]), gates, c_new


@primitive
def lstm_update(pre, c):
    """LSTM gates from pre-activations ``pre`` (batch, 4n; order i, f, g, o) and cell ``c``.

    Returns ``[h', c']`` concatenated, with ``c' = f c + i g`` and ``h' = o tanh(c')``.
    """
    (_, _, _, o), c_new, _, _ = _lstm_gates(pre, c)
    return np.concatenate([o * np.tanh(c_new), c_new], axis=-1)  # primal: never boxed


def lstm_local(pre, c):
    """The next ``h'``, ``c'`` and the factors the step's VJP multiplies (`lstm_back`): ``o``
    times tanh's slope at ``c'``, ``[g, c, i, tanh c']`` times the gates' slopes, and ``f``."""
    (i, f, g, o), c_new, slopes = lstm_slopes(pre, c)
    tc = np.tanh(c_new)
    return o * tc, c_new, (o * sech2(c_new), _concat([g, c, i, tc]) * slopes, f)


def lstm_back(local, gh, gc, argnums=(0, 1)):
    """Cotangents of ``pre`` and ``c`` from those of ``h'`` and ``c'``: the LSTM's VJP."""
    out_slope, factors, f = local
    dc_new = gc + gh * out_slope
    out = []
    for a in argnums:
        if a == 0:
            out.append(_concat([dc_new, dc_new, dc_new, gh]) * factors)
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
    (i, _, g, o), c_new, s = lstm_slopes(pre, c)
    dc = (
        s[..., n : 2 * n] * P[..., n : 2 * n] * c
        + s[..., :n] * P[..., :n] * g
        + i * s[..., 2 * n : 3 * n] * P[..., 2 * n : 3 * n]
    )
    dh = s[..., 3 * n :] * P[..., 3 * n :] * np.tanh(c_new) + o * sech2(c_new) * dc
    return _concat([dh, dc])


def _lstm_jvp_c(C, ans, pre, c):
    (_, f, _, o), c_new, _, _ = _lstm_gates(pre, c)
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


def gru_local(gi, gh, h):
    """The next ``h'`` and the factors the step's VJP multiplies (`gru_back`)."""
    n = h.shape[-1]
    pr, pz, r, z, an, nn = gru_parts(gi, gh, h)
    factors = (
        (1.0 - z) * sech2(an),
        (h - nn) * logistic_prime(pz),
        gh[..., 2 * n :] * logistic_prime(pr),
        r,
        z,
    )
    return (1.0 - z) * nn + z * h, factors


def gru_back(local, G, argnums=(0, 1, 2)):
    """Cotangents of ``gi``, ``gh`` and ``h`` from that of ``h'``: the GRU's VJP."""
    out_n, out_z, via_r, r, z = local
    dan = G * out_n
    dpz = G * out_z
    dpr = dan * via_r
    out = []
    for a in argnums:
        if a == 0:
            out.append(_concat([dpr, dpz, dan]))
        elif a == 1:
            out.append(_concat([dpr, dpz, dan * r]))
        else:
            out.append(G * z)
    return tuple(out)


def _gru_vjp(argnums, ans, args, kwargs):
    local = gru_local(*args)[1]
    return lambda G: gru_back(local, G, argnums)


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
