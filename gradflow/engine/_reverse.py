"""The reverse sweep: back-propagate a loss from the final state through the unrolled network
in one reverse pass, with probes (see ``_probe``) recording ``log ||dL/dh_t||`` and rescaling as
they go, so nothing overflows or underflows at T = 10,000. Time is cut into chunks re-traced from
checkpointed states (or, for one-layer built-in cells, swept with the closed-form step Jacobians),
which keeps memory O(T * state) for any T; a second pass, parallel in time, gives the input
gradients and every probe inside the cell. Built on the unroll and chunking of ``_engine``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable

import autograd.numpy as anp
import numpy as np
from autograd.core import make_vjp

from ..cells._cells import Cell
from ..core._jacobians import SLOPES
from ..core._probe import StateRecorder, log_row_norms, recording, state_probe
from ..core._threads import blas_limit, limited
from ._engine import (
    check_trajectory,
    closed_form_kind,
    closed_form_terms,
    steps_per_chunk,
    unboxed,
    unroll,
    vanilla_forward,
    vanilla_weights,
)

# Intermediate arrays autograd keeps per step, in units of (batch x state) floats: a
# generous bound for built-in cells (an LSTM keeps ~20) so chunks never exceed ~64 MB.
_TRACE_FACTOR = 24


@limited
def reverse_sweep(cell: Cell, xs: np.ndarray, h0: np.ndarray, loss: Callable[[np.ndarray], np.ndarray]):
    """Back-propagate ``sum(loss(state_T))`` once, recording log-norms by step.

    Returns ``(state (T+1, B), components {name: (T+1, B)}, probes {name: (T, B)},
    inputs (T, B))``, natural-log norms indexed by time: state and components
    by ``t = 0..T``, probes and inputs by the step ``t = 1..T`` they belong to.
    Inputs must already be validated.

    Two passes. The sequential one traces only the step and one state probe per
    step, checkpointed in time-chunks; it keeps each step's unit cotangent. The
    second is parallel in time: one batched VJP per chunk of steps gives the
    input gradients and every probe inside the cell at once.
    """
    trajectory, recorder, inputs = _sweep(cell, xs, h0, loss)
    log_state, components = recorder.log_norms()
    probes: dict[str, np.ndarray] = {}
    if inputs is None:  # not given by the closed form: one traced pass, parallel in time
        probes, inputs = _parallel_pass(cell, xs, trajectory, recorder.unit)
    scale = log_state[1:]  # inside step t the cotangent was divided by exp(S[t])
    return log_state, components, {k: v + scale for k, v in probes.items()}, inputs + scale


def sequential_sweep(
    cell: Cell, xs: np.ndarray, h0: np.ndarray, loss: Callable
) -> tuple[np.ndarray, StateRecorder]:
    """`reverse_sweep`'s sequential half: trajectory (T+1, B, S), recorder (unit cotangents, log-norms)."""
    trajectory, recorder, _ = _sweep(cell, xs, h0, loss)
    return trajectory, recorder


def _sweep(cell, xs, h0, loss):
    """`sequential_sweep`, and the raw input log-norms (T, B) if its pass gave them (else None)."""
    recorder = StateRecorder(xs.shape[0], xs.shape[1], cell.state_size, cell.components)
    trajectory = np.empty((xs.shape[0] + 1, xs.shape[1], cell.state_size))
    inputs = None
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported with its step
        if closed_form_kind(cell) is None:
            sequential_pass(cell, xs, h0, loss, recorder, trajectory)
        elif (weights := vanilla_weights(cell)) is not None:
            inputs = vanilla_pass(cell, weights, xs, h0, loss, recorder, trajectory)
        else:
            closed_form_pass(cell, xs, h0, loss, recorder, trajectory)
    return trajectory, recorder, inputs


def _advance(cell: Cell, h: np.ndarray, xs: np.ndarray) -> np.ndarray:
    for x in xs:
        h = cell.step(cell.params, h, x)
    return np.asarray(h)


def sequential_pass(cell, xs, h0, loss, recorder, trajectory) -> None:
    T, B, _ = xs.shape
    chunk = steps_per_chunk(B, cell.state_size + cell.input_size, _TRACE_FACTOR)
    starts = list(range(0, T, chunk))
    # Checkpoints: the state at the start of each chunk, from a plain forward pass;
    # each chunk is then traced again from its checkpoint, last chunk first.
    checkpoints = [h0]
    for t0, t1 in itertools.pairwise(starts):
        checkpoints.append(_advance(cell, checkpoints[-1], xs[t0:t1]))
    cotangent = None
    for t0, h_start in zip(reversed(starts), reversed(checkpoints), strict=True):
        t1 = min(T, t0 + chunk)

        def chunk_fn(h, t0=t0, t1=t1):
            # States t0..t1-1 are probed here; t1 by the next chunk (or the loss).
            trajectory[t0] = unboxed(h)
            h = state_probe(h, recorder, t0)
            for t in range(t0 + 1, t1 + 1):
                h = cell.step(cell.params, h, xs[t - 1])
                if t < t1:
                    trajectory[t] = unboxed(h)
                    h = state_probe(h, recorder, t)
            return h

        vjp, h_end = _make_vjp_quiet(chunk_fn, h_start)
        last = cotangent is None
        if last:
            trajectory[T] = h_end = np.asarray(h_end)
        if not np.all(np.isfinite(trajectory[t0 : t1 + 1])):
            unroll(cell, xs, h0=h0)  # overflowed: raises, naming the first bad step
        if last:  # seed the sweep with dL/dh_T
            cotangent = _loss_cotangent(loss, h_end, recorder, T)
        cotangent = vjp(cotangent)


def closed_form_pass(cell, xs, h0, loss, recorder, trajectory) -> None:
    """`sequential_pass` for a one-layer built-in cell, with no tracing: a plain forward pass,
    then ``dL/dh_{t-1} = J_t^T dL/dh_t`` from the closed-form terms of ``J_t`` (``_ops``),
    ``J_t^T g = sum_k B_k^T (scales_k * g)``: one small product per step, the scales of a
    whole time-chunk computed at once. The same numbers as the traced pass up to rounding."""
    T, B, S = xs.shape[0], xs.shape[1], cell.state_size
    trajectory[...] = unroll(cell, xs, h0=h0)  # raises, naming the step, if the state overflows
    unit = _loss_cotangent(loss, trajectory[T], recorder, T)
    bases = None
    chunk = steps_per_chunk(B * S, 8)  # scales of a chunk: (steps, B, K <= 5, S), ~CHUNK_BYTES / 8
    with blas_limit():
        for t1 in range(T, 0, -chunk):
            t0 = max(0, t1 - chunk)
            m = (t1 - t0) * B
            bases, scales = closed_form_terms(cell, trajectory[t0:t1].reshape(m, S), xs[t0:t1].reshape(m, -1))
            scales = scales.reshape(t1 - t0, B, -1, S)
            flat = np.ascontiguousarray(bases.reshape(-1, S))  # row (k, i) is B_k[i, :]
            for t in range(t1 - 1, t0 - 1, -1):  # step t+1 maps h_t to h_{t+1}
                g = (scales[t - t0] * unit[:, None, :]).reshape(B, -1) @ flat
                unit = recorder.record(t, g)


def vanilla_pass(cell, weights, xs, h0, loss, recorder, trajectory) -> np.ndarray:
    """`closed_form_pass` of a vanilla cell (`vanilla_weights`), ``J_t = diag(phi'(a_t)) W_hh``: the
    forward keeps each pre-activation ``a_t``, the sweep back takes one product a step, and the
    input gradients ``dL/dx_t = (phi'(a_t) * dL/dh_{t+1}) W_ih`` of all steps are one product at the
    end, so no traced pass is needed. Returns their raw log-norms (T, B), as `_parallel_pass`."""
    W, U = weights[0], weights[1]
    T, B, S = xs.shape[0], xs.shape[1], cell.state_size
    pre = np.empty((T, B, S))
    trajectory[0] = h0
    with blas_limit():
        vanilla_forward(weights, xs, trajectory, pre)
        check_trajectory(cell, trajectory)  # raises, naming the step, if the state overflowed
        unit = _loss_cotangent(loss, trajectory[T], recorder, T)
        slopes = SLOPES[weights[3]](pre)  # phi'(a_t), every step at once
        pulled = pre  # row t becomes phi'(a_t) * unit_{t+1}, the cotangent of a_t (a_t is used up)
        for t in range(T - 1, -1, -1):  # step t+1 maps h_t to h_{t+1}
            np.multiply(slopes[t], unit, out=pulled[t])
            unit = recorder.record(t, pulled[t] @ W)
        return log_row_norms(pulled.reshape(T * B, S) @ U).reshape(T, B)


def _make_vjp_quiet(fun, x):
    """``make_vjp`` without autograd's "independent of input" warning: a step that ignores
    its state (gradient exactly zero) is legitimate, and a loss that ignores it is
    reported by `_loss_cotangent` as an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        return make_vjp(fun, x)


def _loss_cotangent(loss, h_T, recorder, T):
    B = h_T.shape[0]

    def total(h):
        value = loss(state_probe(h, recorder, T))
        if anp.shape(value) != (B,):
            raise ValueError(
                f"loss must return one value per batch element, shape ({B},); got shape {anp.shape(value)}"
            )
        return anp.sum(value)

    vjp, _ = _make_vjp_quiet(total, h_T)
    unit = vjp(1.0)
    if not recorder.recorded[T]:
        raise ValueError("loss does not depend on the final state: there is no gradient to follow")
    return unit


def _parallel_pass(cell, xs, trajectory, unit):
    """Raw input and probe log-norms for every step, with one batched VJP per time-chunk."""
    T, B, _ = xs.shape
    S = cell.state_size
    inputs = np.empty((T, B))
    probes: dict[str, np.ndarray] = {}
    rows = steps_per_chunk(B, S + cell.input_size, _TRACE_FACTOR)
    for t0 in range(0, T, rows):
        t1 = min(T, t0 + rows)
        m = (t1 - t0) * B
        with recording() as records:
            vjp, _ = make_vjp(
                lambda hx: cell.step(cell.params, hx[0], hx[1]),
                (trajectory[t0:t1].reshape(m, S), xs[t0:t1].reshape(m, -1)),
            )
            _, g_x = vjp(unit[t0 + 1 : t1 + 1].reshape(m, S))
        inputs[t0:t1] = log_row_norms(np.asarray(g_x)).reshape(t1 - t0, B)
        for name, value in records.items():
            probes.setdefault(name, np.full((T, B), -np.inf))[t0:t1] = value.reshape(t1 - t0, B)
    return probes, inputs
