"""Fused updates of diagonal linear recurrences, each with its derivative rules registered.

``h' = a * h + b`` with ``a`` diagonal, real (minGRU, minLSTM) or complex on states held as
``[Re h, Im h]`` (LRU, S4D). One primitive per step instead of ~10 traced ``autograd.numpy``
operations, and, like ``_ops``, every rule accepts tangents and cotangents with extra leading
axes (a stack of vectors), so these cells declare ``stacked_tangents``. The rules are checked
against finite differences by ``tests/test_revival_cells.py``.
"""

from __future__ import annotations

import numpy as np
from autograd.extend import defjvp, defvjp, defvjp_argnums, primitive


def _unbroadcast(g, shape, ndim):
    """``g`` summed over the axes an argument of ``shape`` was broadcast along in an output of
    ``ndim`` axes; axes of ``g`` before those (a stack of vectors) are kept."""
    lead = g.ndim - ndim
    axes = tuple(range(lead, lead + ndim - len(shape)))
    return g.sum(axis=axes) if axes else g


@primitive
def diagonal_update(a, h, b):
    """``a * h + b`` for a diagonal ``a`` (n,) or per row (batch, n): minGRU's and minLSTM's step."""
    return a * h + b


defvjp(
    diagonal_update,
    lambda ans, a, h, b: lambda g: _unbroadcast(g * h, np.shape(a), ans.ndim),
    lambda ans, a, h, b: lambda g: g * a,
    lambda ans, a, h, b: lambda g: _unbroadcast(g, np.shape(b), ans.ndim),
)
defjvp(
    diagonal_update,
    lambda g, ans, a, h, b: g * h,
    lambda g, ans, a, h, b: g * a,
    lambda g, ans, a, h, b: np.broadcast_to(g, np.broadcast_shapes(np.shape(g), ans.shape)),
)


def _complex_times(a_re, a_im, v):
    """``a * v`` for complex ``a`` and ``v`` held as ``[Re v, Im v]`` on the last axis."""
    n = np.shape(a_re)[-1]
    v_re, v_im = v[..., :n], v[..., n:]
    return np.concatenate([a_re * v_re - a_im * v_im, a_im * v_re + a_re * v_im], axis=-1)


@primitive
def complex_diagonal_update(a_re, a_im, h, b):
    """``a * h + b`` for complex diagonal ``a = a_re + i a_im`` ((n,) or per row (batch, n)) and
    complex ``h``, ``b`` held as ``[Re, Im]`` (batch, 2n): the step of the LRU and S4D cells."""
    return _complex_times(a_re, a_im, h) + b


def _complex_diagonal_vjp(argnums, ans, args, kwargs):
    a_re, a_im, h, b = args
    n = np.shape(a_re)[-1]

    def vjp(g):
        g_re, g_im = g[..., :n], g[..., n:]
        h_re, h_im = h[..., :n], h[..., n:]
        out = []
        for i in argnums:
            if i == 0:
                out.append(_unbroadcast(g_re * h_re + g_im * h_im, np.shape(a_re), ans.ndim))
            elif i == 1:
                out.append(_unbroadcast(g_im * h_re - g_re * h_im, np.shape(a_im), ans.ndim))
            elif i == 2:  # times conj(a)
                out.append(_complex_times(a_re, -a_im, g))
            else:
                out.append(_unbroadcast(g, np.shape(b), ans.ndim))
        return tuple(out)

    return vjp


defvjp_argnums(complex_diagonal_update, _complex_diagonal_vjp)
defjvp(
    complex_diagonal_update,
    lambda g, ans, a_re, a_im, h, b: _complex_times(g, np.zeros_like(g), h),
    lambda g, ans, a_re, a_im, h, b: _complex_times(np.zeros_like(g), g, h),
    lambda g, ans, a_re, a_im, h, b: _complex_times(a_re, a_im, g),
    lambda g, ans, a_re, a_im, h, b: np.broadcast_to(g, np.broadcast_shapes(np.shape(g), ans.shape)),
)
