"""The measurement behind `parameter_sensitivity`: each step's share of ``dL/dtheta``. Every step
of a time-chunk reads the weights through its own identity probe (`_param_use`, an autograd
primitive), whose backward pass stores the gradient reaching that use, i.e. the cotangent at
``h_t`` pushed through step ``t``'s direct use of ``theta``. `parameter_pass` runs one batched VJP
per chunk over the engine's unit cotangents, with each step's scale factored out so nothing under-
or overflows, and returns the per-group log-norms by step and the running (scaled) gradient sum.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd.core import make_vjp
from autograd.extend import defvjp, primitive

from ..core._probe import log_row_norms
from ..engine._engine import CHUNK_BYTES

# Intermediates autograd keeps per traced step, in (batch x (state + inputs)) floats: the engine's bound.
_TRACE_FACTOR = 24


@primitive
def _param_use(value, anchor, sink, i, key):
    """Identity on a weight read by step ``i`` of a chunk. The weights themselves are not traced
    (their total gradient is not needed): the scalar ``anchor`` is, and the VJP with respect to it
    keeps the gradient that reaches this use, i.e. step ``i``'s share of ``dL/dtheta[key]``."""
    return value


def _param_use_vjp(ans, value, anchor, sink, i, key):
    def vjp(g):
        sink[key][i] = g  # autograd has summed every use of the weight inside the step
        return 0.0

    return vjp


defvjp(_param_use, None, _param_use_vjp)


def parameter_pass(cell, xs, trajectory, unit, log_state, groups):
    """Per step ``t = 1..T``: ``ln ||contribution||`` per group (indexed t - 1), and the sum."""
    T, B, D = xs.shape
    S = cell.state_size
    keys = list(cell.params)
    sizes = sum(v.size for v in cell.params.values())
    # A chunk's trace (like the engine's) and its per-step gradients both stay ~CHUNK_BYTES.
    chunk = max(1, min(CHUNK_BYTES // (8 * B * (S + D) * _TRACE_FACTOR), CHUNK_BYTES // (8 * sizes)))
    # Step t's cotangent is unit[t] * exp(log_state[t]) per row: factor out the largest row's
    # scale m_t so the VJP sees numbers <= 1, and add m_t back in log space.
    finite = np.where(np.isfinite(log_state), log_state, -np.inf)
    peak = np.max(finite, axis=1)  # (T + 1,)
    peak = np.where(np.isfinite(peak), peak, 0.0)  # no gradient at all reaches that state
    with np.errstate(under="ignore"):
        weights = np.exp(finite - peak[:, None])  # exp(-inf) = 0 for rows without gradient
    norms = {name: np.full(T, -np.inf) for name in groups}
    total = {k: np.zeros_like(v) for k, v in cell.params.items()}
    total_scale = -np.inf
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        L = t1 - t0
        sink = {k: np.zeros((L, *v.shape)) for k, v in cell.params.items()}
        cot = unit[t0 + 1 : t1 + 1] * weights[t0 + 1 : t1 + 1, :, None]

        def chunk_steps(anchor, t0=t0, L=L, sink=sink, cot=cot):
            # <cotangent, step output> summed over the chunk: its VJP of 1 is the cotangents'
            # VJP, without the O(L^2) bookkeeping of stacking L traced outputs.
            total = 0.0
            for i in range(L):
                p = {k: _param_use(v, anchor, sink, i, k) for k, v in cell.params.items()}
                total = total + anp.sum(cell.step(p, trajectory[t0 + i], xs[t0 + i]) * cot[i])
            return total

        vjp, _ = make_vjp(chunk_steps, 0.0)
        vjp(1.0)
        flat = {k: v.reshape(L, -1) for k, v in sink.items()}
        scale = peak[t0 + 1 : t1 + 1]
        for name, group_keys in groups.items():
            joined = np.concatenate([flat[k] for k in group_keys], axis=1)
            norms[name][t0:t1] = log_row_norms(joined) + scale
        # The running sum, held as total * exp(total_scale) so that it cannot overflow.
        top = max(total_scale, float(scale.max()))
        with np.errstate(under="ignore"):
            keep, share = np.exp(total_scale - top), np.exp(scale - top)
        for k in keys:
            total[k] = total[k] * keep + np.tensordot(share, sink[k], axes=1)
        total_scale = top
    return norms, total, float(total_scale)
