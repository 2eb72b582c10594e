"""QR re-orthonormalisation loops over products of step Jacobians, in log space.

``Q_t R_t = J_t Q_{t-1}`` with ``diag(R_t) > 0`` (Benettin et al. 1980; Engelken, Wolf &
Abbott 2020); only the logarithms ``ln |R_t[i, i]|`` are accumulated, so nothing overflows
or underflows at any T.

The work is split the way the engine is built: Jacobian products come from
the engine (``_engine``), parallel in time where the loop allows; the QR
recursion is sequential, on plain arrays, with BLAS held to one thread (two
OpenBLAS pools fighting over two cores made it 3x slower). For many exponents
the per-step Jacobians are formed in time-chunks and ``Q`` is kept in
Householder form: ``J_t Q`` by LAPACK ``dormqr``, then ``dgeqrf``, never forming
``Q`` (`qr_log_growth`). For a few exponents one stacked JVP per step carries the ``k``
columns (`qr_log_growth_blocks`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import lapack

from ..cells._cells import Cell
from ..core._jacobians import SLOPES, vanilla_slopes
from ..core._threads import limited
from ..engine._engine import block_products, closed_form_kind, closed_form_terms, jacobians, vanilla_weights

# Re-orthonormalise sooner than this ratio of largest to smallest |R_ii| growth allows:
# beyond ~1e12 the smaller directions are lost to rounding (float64 has ~16 digits).
CONDITION_LIMIT = 1e12


def initial_block(rng, batch, n, k):
    q, r = np.linalg.qr(rng.standard_normal((batch, n, k)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def _warn_conditioning(log_r: np.ndarray, reortho_every: int) -> None:
    finite = log_r[np.isfinite(log_r)]  # a direction mapped exactly to zero is no conditioning loss
    spread = np.max(finite) - np.min(finite) if finite.size else 0.0
    if spread > np.log(CONDITION_LIMIT):
        warnings.warn(
            f"Q lost conditioning between re-orthonormalisations (|R_ii| spread "
            f"e^{spread:.0f} > {CONDITION_LIMIT:.0e}); use a smaller reortho_every "
            f"than {reortho_every}",
            RuntimeWarning,
            stacklevel=5,
        )


def _check_lapack(routine: str, info: int) -> None:
    if info != 0:
        raise FloatingPointError(f"LAPACK {routine} failed (info={info}): a Jacobian product is not finite")


def _optimal_lwork(routine, *args) -> int:
    """LAPACK's optimal workspace from a workspace query (``lwork=-1``). The default
    ``lwork`` scipy passes (3N for ``dgeqrf``) made each call ~1.7x slower at N = 256."""
    work, info = routine(*args, lwork=-1)[-2:]
    _check_lapack(routine.__name__, info)
    return max(1, int(work[0]))


@limited  # BLAS threads by gradflow's policy (_threads), as in every call that runs this loop
def qr_log_growth(jac_chunks, Q0: np.ndarray, reortho_every: int, out: np.ndarray) -> None:
    """Sequential QR loop on formed Jacobians (chunks of shape (c, B, S, S)); Q in Householder form.

    Writes ``ln|R_ii|`` (or 0 between re-orthonormalisations) into ``out`` (T, B, k).
    Each chunk is transposed once (one vectorised copy) so that every ``J_t`` is a
    Fortran-ordered view LAPACK overwrites in place: no copy per step.
    """
    steps = (Jt for chunk in jac_chunks for Jt in np.ascontiguousarray(np.swapaxes(chunk, -1, -2)))
    qr_log_growth_transposed(steps, Q0, reortho_every, out)


def transposed_jacobians(cell: Cell, xs: np.ndarray, states: np.ndarray, chunk: int, pre=None):
    """Each step's ``J_t^T`` as a (B, S, S) array in C order (``J_t`` in Fortran order, as LAPACK
    takes it), formed a time-chunk of ``chunk`` steps at a time: `qr_log_growth_transposed`'s input.

    A vanilla cell's ``J_t^T = W_hh^T diag(phi'(a_t))`` (the bytes of `jacobians`, transposed) is
    written step by step into two buffers that take turns: no chunk of Jacobians in memory, no
    transposing copy, and each buffer is rewritten two steps later, when the loop is done with it.
    ``pre``: its pre-activations from `vanilla_unroll` (one row at a time, so the same bytes at any
    BLAS thread count), else they are recomputed a chunk at a time.
    """
    T, B, S = xs.shape[0], xs.shape[1], cell.state_size
    weights = vanilla_weights(cell)
    if weights is None:
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            J = jacobians(cell, xs[t0:t1], h0=states[t0], states=states[t0 : t1 + 1])
            yield from np.ascontiguousarray(np.swapaxes(J, -1, -2))
        return
    W_T = np.ascontiguousarray(weights[0].T)
    buffers = np.empty((2, B, S, S))
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        m = (t1 - t0) * B
        if pre is None:
            rows = states[t0:t1].reshape(m, S), xs[t0:t1].reshape(m, -1)
            slopes = vanilla_slopes(cell.params, *rows, weights[4]).reshape(t1 - t0, B, 1, S)
        else:
            slopes = SLOPES[weights[4]](pre[t0:t1]).reshape(t1 - t0, B, 1, S)
        for t in range(t0, t1):
            yield np.multiply(W_T, slopes[t - t0], out=buffers[t % 2])


def qr_log_growth_transposed(steps, Q0: np.ndarray, reortho_every: int, out: np.ndarray) -> None:
    """`qr_log_growth` on `transposed_jacobians`' steps, which LAPACK overwrites."""
    B, S, k = Q0.shape
    factors = []
    for b in range(B):  # Householder form of Q0 (its R is +-1 on the diagonal: ln 1 = 0)
        qr, tau, _, _ = lapack.dgeqrf(np.asfortranarray(Q0[b]))
        factors.append((qr, tau))
    geqrf_lwork = _optimal_lwork(lapack.dgeqrf, np.zeros((S, k), order="F"))
    ormqr_lwork = _optimal_lwork(
        lapack.dormqr, "R", "N", factors[0][0], factors[0][1], np.zeros((S, S), order="F")
    )
    pending: list[np.ndarray | None] = [None] * B
    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
        for t, Jt in enumerate(steps, start=1):  # Jt[b].T: J_t, Fortran order
            for b in range(B):
                qr, tau = factors[b]
                if (t - 1) % reortho_every == 0:
                    # J Q = (J applied to the reflectors)[:, :k], without forming Q.
                    full, _, info = lapack.dormqr(
                        "R", "N", qr, tau, Jt[b].T, lwork=ormqr_lwork, overwrite_c=1
                    )
                    _check_lapack("dormqr", info)
                    pending[b] = full[:, :k]  # leading columns of a Fortran array: contiguous
                else:
                    pending[b] = np.asfortranarray(Jt[b].T @ pending[b])
            if t % reortho_every == 0:
                for b in range(B):
                    qr, tau, _, info = lapack.dgeqrf(pending[b], lwork=geqrf_lwork, overwrite_a=1)
                    _check_lapack("dgeqrf", info)
                    factors[b] = (qr, tau)
                    out[t - 1, b] = np.log(np.abs(np.diagonal(qr)[:k]))
                if reortho_every > 1:
                    _warn_conditioning(out[t - 1], reortho_every)
            else:
                out[t - 1] = 0.0


def _right_products(cell: Cell, states: np.ndarray, xs: np.ndarray, chunk: int = 256):
    """``apply(t, Q) = J_{t+1} Q`` for blocks Q (B, S, k): one stacked JVP per step, or for a
    one-layer built-in cell ``sum_k diag(e_tk) B_k Q`` (`jacobian_terms`), with the per-step
    scales ``e`` computed a time-chunk at a time and no autograd trace."""
    if closed_form_kind(cell) is None:
        return lambda t, Q: block_products(cell, states[t], xs[t], Q, "right")
    T, B, S = xs.shape[0], xs.shape[1], cell.state_size
    held: dict[int, tuple] = {}

    def apply(t, Q):
        start = t - t % chunk
        if held.get("start") != start:
            stop = min(T, start + chunk)
            bases, scales = closed_form_terms(
                cell, states[start:stop].reshape(-1, S), xs[start:stop].reshape((stop - start) * B, -1)
            )
            held.update(
                start=start,
                bases=bases.reshape(-1, S),  # (K S, S): one GEMM per sample
                scales=scales.reshape(stop - start, B, len(bases), S),
            )
        scales = held["scales"][t - start]  # (B, K, S)
        out = np.empty_like(Q)
        for b in range(B):
            products = (held["bases"] @ Q[b]).reshape(scales.shape[1], S, -1)  # B_k Q, every k
            out[b] = scales[b, 0][:, None] * products[0]
            for k in range(1, len(products)):
                out[b] += scales[b, k][:, None] * products[k]
        return out

    return apply


def qr_log_growth_blocks(cell, states, xs, Q0, reortho_every, out) -> None:
    """Sequential QR loop carrying the k columns of Q through ``J_t`` (see `_right_products`)."""
    T = xs.shape[0]
    Q = Q0
    right = _right_products(cell, states, xs)
    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
        for t in range(1, T + 1):
            Q = right(t - 1, Q)
            if t % reortho_every == 0:
                # LAPACK directly (dgeqrf, dorgqr): numpy.linalg.qr's wrapping cost as much again.
                for b in range(len(Q)):
                    qr, tau, _, info = lapack.dgeqrf(np.asfortranarray(Q[b]), overwrite_a=1)
                    _check_lapack("dgeqrf", info)
                    d = np.diagonal(qr)  # read before dorgqr overwrites qr
                    out[t - 1, b] = np.log(np.abs(d))
                    flip = np.where(d < 0, -1.0, 1.0)
                    q, _, info = lapack.dorgqr(qr, tau, overwrite_a=1)
                    _check_lapack("dorgqr", info)
                    np.multiply(q, flip, out=Q[b])
                if reortho_every > 1:
                    _warn_conditioning(out[t - 1], reortho_every)
            else:
                out[t - 1] = 0.0
