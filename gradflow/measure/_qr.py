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
# reortho_every="auto": the longest block whose |R_ii| spread, at the fastest rate seen so far,
# stays below AUTO_SPREAD (1e3: rates twice as fast still stay below 1e6, where the exponents
# measured agree with every-step QR to ~1e-12), and whose largest or smallest growth stays
# inside 1e+-100 (no overflow, no subnormals).
AUTO_SPREAD = np.log(1e3)
AUTO_SCALE = np.log(1e100)
AUTO_MAX_EVERY = 64


def initial_block(rng, batch, n, k):
    q, r = np.linalg.qr(rng.standard_normal((batch, n, k)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def _spreads(log_r: np.ndarray) -> tuple[float, float]:
    """Largest spread ``max_i - min_i ln|R_ii|`` of a sample, and largest ``|ln|R_ii||``, over the
    finite entries of ``log_r`` (B, k): a direction mapped exactly to zero loses no conditioning."""
    finite = np.isfinite(log_r)
    if finite.all():
        hi, lo = np.max(log_r, axis=-1), np.min(log_r, axis=-1)
    else:
        hi = np.max(np.where(finite, log_r, -np.inf), axis=-1)
        lo = np.min(np.where(finite, log_r, np.inf), axis=-1)
    some = np.isfinite(hi)
    if not np.any(some):
        return 0.0, 0.0
    hi, lo = hi[some], lo[some]
    return float(np.max(hi - lo)), float(np.max(np.maximum(np.abs(hi), np.abs(lo))))


class Blocks:
    """The blocks of steps between two re-orthonormalisations (each ends with a QR).

    ``every``: a block length, or ``"auto"``: from one step, each block at most twice the last
    and as long as the fastest growth rates measured so far keep its spread below
    `AUTO_SPREAD` and its scale below `AUTO_SCALE` (so at most `AUTO_MAX_EVERY` steps). A block
    always ends at the warm-up's last step and at the sequence's: each block's growth falls on
    one side of the warm-up, and none is left out.
    """

    def __init__(self, every: int | str, warmup: int, steps: int):
        self.every, self.warmup, self.steps = every, warmup, steps
        self.length = 1 if every == "auto" else int(every)
        self.spread_rate = self.scale_rate = 0.0
        self.start = 0
        self.end = self._cut(0)

    def _cut(self, t: int) -> int:
        end = min(t + self.length, self.steps)
        return min(end, self.warmup) if t < self.warmup else end

    def close(self, t: int, log_r: np.ndarray) -> None:
        """The block ending at step ``t`` grew by ``ln|R_ii|`` = ``log_r`` (B, k); plan the next."""
        n = t - self.start
        if n == 1 and self.every != "auto":  # every step: nothing to check or plan
            self.start, self.end = t, self._cut(t)
            return
        spread, scale = _spreads(log_r)
        if n > 1 and spread > np.log(CONDITION_LIMIT):
            warnings.warn(
                f"Q lost conditioning between re-orthonormalisations (|R_ii| spread "
                f"e^{spread:.0f} > {CONDITION_LIMIT:.0e} over {n} steps); use a smaller "
                f"reortho_every than {self.every!r}",
                RuntimeWarning,
                stacklevel=5,
            )
        if self.every == "auto":
            self.spread_rate = max(self.spread_rate, spread / n)
            self.scale_rate = max(self.scale_rate, scale / n)
            fits = min(
                AUTO_SPREAD / self.spread_rate if self.spread_rate > 0 else np.inf,
                AUTO_SCALE / self.scale_rate if self.scale_rate > 0 else np.inf,
            )
            self.length = max(1, int(min(2 * self.length, AUTO_MAX_EVERY, fits)))
        self.start = t
        self.end = self._cut(t)


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
def qr_log_growth(
    jac_chunks, Q0: np.ndarray, reortho_every: int | str, out: np.ndarray, warmup: int = 0
) -> None:
    """Sequential QR loop on formed Jacobians (chunks of shape (c, B, S, S)); Q in Householder form.

    Writes ``ln|R_ii|`` (or 0 between re-orthonormalisations) into ``out`` (T, B, k).
    Each chunk is transposed once (one vectorised copy) so that every ``J_t`` is a
    Fortran-ordered view LAPACK overwrites in place: no copy per step.
    """
    steps = (Jt for chunk in jac_chunks for Jt in np.ascontiguousarray(np.swapaxes(chunk, -1, -2)))
    qr_log_growth_transposed(steps, Q0, reortho_every, out, warmup)


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


def qr_log_growth_transposed(
    steps, Q0: np.ndarray, reortho_every: int | str, out: np.ndarray, warmup: int = 0
) -> None:
    """`qr_log_growth` on `transposed_jacobians`' steps, which LAPACK overwrites. Inside a block
    (`Blocks`) ``J_t`` multiplies the product so far (one GEMM), ``dormqr`` only at its start."""
    B, S, k = Q0.shape
    factors = []
    for b in range(B):  # Householder form of Q0 (its R is +-1 on the diagonal: ln 1 = 0)
        qr, tau, _, _ = lapack.dgeqrf(np.asfortranarray(Q0[b]))
        factors.append((qr, tau))
    geqrf_lwork = _optimal_lwork(lapack.dgeqrf, np.zeros((S, k), order="F"))
    ormqr_lwork = _optimal_lwork(
        lapack.dormqr, "R", "N", factors[0][0], factors[0][1], np.zeros((S, S), order="F")
    )
    blocks = Blocks(reortho_every, warmup, out.shape[0])
    pending: list[np.ndarray | None] = [None] * B
    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
        for t, Jt in enumerate(steps, start=1):  # Jt[b].T: J_t, Fortran order
            for b in range(B):
                held = pending[b]
                if held is None:
                    # J Q = (J applied to the reflectors)[:, :k], without forming Q.
                    qr, tau = factors[b]
                    full, _, info = lapack.dormqr(
                        "R", "N", qr, tau, Jt[b].T, lwork=ormqr_lwork, overwrite_c=1
                    )
                    _check_lapack("dormqr", info)
                    pending[b] = full[:, :k]  # leading columns of a Fortran array: contiguous
                else:  # (P^T J^T)^T = J P, Fortran order without a copy
                    pending[b] = (held.T @ Jt[b]).T
            if t == blocks.end:
                for b in range(B):
                    qr, tau, _, info = lapack.dgeqrf(pending[b], lwork=geqrf_lwork, overwrite_a=1)
                    _check_lapack("dgeqrf", info)
                    factors[b] = (qr, tau)
                    pending[b] = None
                    out[t - 1, b] = np.log(np.abs(np.diagonal(qr)[:k]))
                blocks.close(t, out[t - 1])
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


def qr_log_growth_blocks(cell, states, xs, Q0, reortho_every, out, warmup: int = 0) -> None:
    """Sequential QR loop carrying the k columns of Q through ``J_t`` (see `_right_products`)."""
    T = xs.shape[0]
    Q = Q0
    right = _right_products(cell, states, xs)
    blocks = Blocks(reortho_every, warmup, T)
    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
        for t in range(1, T + 1):
            Q = right(t - 1, Q)
            if t == blocks.end:
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
                blocks.close(t, out[t - 1])
            else:
                out[t - 1] = 0.0
