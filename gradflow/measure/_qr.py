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
# A block that came out worse than this (the growth changed faster than the plan foresaw, e.g.
# units saturating after a quiet stretch) is done again step by step.
REDO_SPREAD = np.log(1e6)
REDO_SCALE = np.log(1e200)
# Memory for the copies of a block's formed J_t kept for such a redo (caps the block length).
KEPT_BYTES = 64 * 2**20


def initial_block(rng, batch, n, k):
    q, r = np.linalg.qr(rng.standard_normal((batch, n, k)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def _spreads(log_r: np.ndarray) -> tuple[float, float]:
    """Largest spread ``max_i - min_i ln|R_ii|`` of a sample, and largest ``|ln|R_ii||``, over the
    finite entries of ``log_r`` (B, k): a direction mapped exactly to zero loses no conditioning."""
    hi, lo = np.max(log_r, axis=-1), np.min(log_r, axis=-1)
    if not (np.isfinite(hi).all() and np.isfinite(lo).all()):
        finite = np.isfinite(log_r)
        hi = np.max(np.where(finite, log_r, -np.inf), axis=-1)
        lo = np.min(np.where(finite, log_r, np.inf), axis=-1)
        some = np.isfinite(hi)
        if not some.any():
            return 0.0, 0.0
        hi, lo = hi[some], lo[some]
    return float(np.max(hi - lo)), float(max(np.max(hi), -np.min(lo)))


class Blocks:
    """The blocks of steps between two re-orthonormalisations (each ends with a QR).

    ``every``: a block length, or ``"auto"``: from one step, each block at most twice the last
    and as long as the fastest growth rates measured so far keep its spread below
    `AUTO_SPREAD` and its scale below `AUTO_SCALE` (at most ``longest`` steps); a block
    beyond `REDO_SPREAD` or `REDO_SCALE` is redone step by step (`close` says so). A block
    always ends at the warm-up's last step and at the sequence's: each block's growth falls on
    one side of the warm-up, and none is left out.
    """

    def __init__(self, every: int | str, warmup: int, steps: int, longest: int = AUTO_MAX_EVERY):
        self.every, self.warmup, self.steps, self.longest = every, warmup, steps, longest
        self.length = 1 if every == "auto" else int(every)
        self.spread_rate = self.scale_rate = 0.0
        self.frozen = False  # "auto" settled on every step for good
        self.start = 0
        self.end = self._cut(0)

    @property
    def redoable(self) -> bool:
        """Whether the current block may have to be redone step by step (keep its inputs)."""
        return self.every == "auto" and self.end - self.start > 1

    def _cut(self, t: int) -> int:
        end = min(t + self.length, self.steps)
        return min(end, self.warmup) if t < self.warmup else end

    def close(self, t: int, log_r: np.ndarray) -> bool:
        """The block ending at step ``t`` grew by ``ln|R_ii|`` = ``log_r`` (B, k): plan the next
        block and return True, or False when this one must be redone one step at a time."""
        n = t - self.start
        if n == 1 and self.length == 1 and (self.every != "auto" or self.frozen):
            self.start, self.end = t, self._cut(t)  # every step: nothing to check or plan
            return True
        spread, scale = _spreads(log_r)
        if self.every == "auto":
            self.spread_rate = max(self.spread_rate, spread / n)
            self.scale_rate = max(self.scale_rate, scale / n)
            # Several steps: -inf or NaN may be an underflow or overflow of the product.
            if n > 1 and (spread > REDO_SPREAD or scale > REDO_SCALE or not np.isfinite(log_r).all()):
                self.length = 1
                return False
            fits = min(
                AUTO_SPREAD / self.spread_rate if self.spread_rate > 0 else np.inf,
                AUTO_SCALE / self.scale_rate if self.scale_rate > 0 else np.inf,
            )
            self.length = max(1, int(min(2 * self.length, self.longest, fits)))
            # The rates only grow: once a block of two steps is too long, so is every later one.
            self.frozen = fits < 2
        elif spread > np.log(CONDITION_LIMIT):
            warnings.warn(
                f"Q lost conditioning between re-orthonormalisations (|R_ii| spread "
                f"e^{spread:.0f} > {CONDITION_LIMIT:.0e} over {n} steps); use a smaller "
                f"reortho_every than {self.every}",
                RuntimeWarning,
                stacklevel=5,
            )
        self.start, self.end = t, self._cut(t)
        return True


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

    Writes ``ln|R_ii|`` (or 0 between re-orthonormalisations) into ``out`` (T, B, k);
    ``reortho_every`` and ``warmup`` set the blocks between them (`Blocks`).
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
            slopes = vanilla_slopes(cell.params, *rows, weights[3]).reshape(t1 - t0, B, 1, S)
        else:
            slopes = SLOPES[weights[3]](pre[t0:t1]).reshape(t1 - t0, B, 1, S)
        for t in range(t0, t1):
            yield np.multiply(W_T, slopes[t - t0], out=buffers[t % 2])


def _apply_reflectors(factors, Jt, k: int, lwork: int) -> list:
    """``J_t Q`` of each sample: ``J_t`` (``Jt[b].T``, overwritten) times the Householder form of
    ``Q`` by ``dormqr``, without forming ``Q``; its leading k columns (contiguous in Fortran order)."""
    products = []
    for (qr, tau), J_T in zip(factors, Jt, strict=True):
        full, _, info = lapack.dormqr("R", "N", qr, tau, J_T.T, lwork=lwork, overwrite_c=1)
        _check_lapack("dormqr", info)
        products.append(full[:, :k])
    return products


def _factor(products, k: int, lwork: int, log_r: np.ndarray) -> list:
    """``dgeqrf`` of each sample's product (overwritten): its Householder form, ``ln|R_ii|`` into
    ``log_r`` (B, k)."""
    factors = []
    for b, P in enumerate(products):
        qr, tau, _, info = lapack.dgeqrf(P, lwork=lwork, overwrite_a=1)
        _check_lapack("dgeqrf", info)
        factors.append((qr, tau))
        log_r[b] = np.log(np.abs(np.diagonal(qr)[:k]))
    return factors


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
    blocks = Blocks(
        reortho_every, warmup, out.shape[0], min(AUTO_MAX_EVERY, KEPT_BYTES // (8 * B * S * S) + 1)
    )
    products: list | None = None
    first, kept = factors, []  # a block's start and J_t, copied while it may have to be redone
    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
        for t, Jt in enumerate(steps, start=1):  # Jt[b].T: J_t, Fortran order
            if blocks.redoable:
                if products is None:  # the factors live in buffers that later steps rewrite
                    first = [(qr.copy(order="F"), tau.copy()) for qr, tau in factors]
                kept.append(Jt.copy())
            if products is None:
                products = _apply_reflectors(factors, Jt, k, ormqr_lwork)
            else:  # (P^T J^T)^T = J P, Fortran order without a copy
                products = [(P.T @ J_T).T for P, J_T in zip(products, Jt, strict=True)]
            if t == blocks.end:
                factors = _factor(products, k, geqrf_lwork, out[t - 1])
                products = None
                if not blocks.close(t, out[t - 1]):
                    factors = first
                    for s, J in enumerate(kept, start=t - len(kept) + 1):
                        out[s - 1] = 0.0
                        factors = _factor(
                            _apply_reflectors(factors, J, k, ormqr_lwork), k, geqrf_lwork, out[s - 1]
                        )
                        blocks.close(s, out[s - 1])
                kept = []
            else:
                out[t - 1] = 0.0


def _right_products(cell: Cell, states: np.ndarray, xs: np.ndarray, chunk: int = 256, pre=None):
    """``apply(t, Q) = J_{t+1} Q`` for blocks Q (B, S, k): one stacked JVP per step, or for a
    one-layer built-in cell ``sum_k diag(e_tk) B_k Q`` (`jacobian_terms`), with the per-step
    scales ``e`` computed a time-chunk at a time and no autograd trace. ``pre``: a vanilla cell's
    pre-activations from `vanilla_unroll`, whose slopes are its scales (the same bytes at any BLAS
    thread count; recomputed in a batch, their rounding followed how BLAS split the batch)."""
    if closed_form_kind(cell) is None:
        return lambda t, Q: block_products(cell, states[t], xs[t], Q, "right")
    T, B, S = xs.shape[0], xs.shape[1], cell.state_size
    held: dict[int, tuple] = {}
    vanilla = vanilla_weights(cell) if pre is not None else None

    def apply(t, Q):
        start = t - t % chunk
        if held.get("start") != start:
            stop = min(T, start + chunk)
            if vanilla is not None:  # J = diag(phi'(a)) W_hh
                bases, scales = vanilla[0][None], SLOPES[vanilla[3]](pre[start:stop])
            else:
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


def _orthonormalise(Q: np.ndarray, log_r: np.ndarray) -> None:
    """Each sample's block ``Q[b]`` replaced by the Q of its QR (``diag(R) > 0``), ``ln|R_ii|`` into
    ``log_r``. LAPACK directly (dgeqrf, dorgqr): numpy.linalg.qr's wrapping cost as much again."""
    for b in range(len(Q)):
        qr, tau, _, info = lapack.dgeqrf(np.asfortranarray(Q[b]), overwrite_a=1)
        _check_lapack("dgeqrf", info)
        d = np.diagonal(qr)  # read before dorgqr overwrites qr
        log_r[b] = np.log(np.abs(d))
        flip = np.where(d < 0, -1.0, 1.0)
        q, _, info = lapack.dorgqr(qr, tau, overwrite_a=1)
        _check_lapack("dorgqr", info)
        np.multiply(q, flip, out=Q[b])


def qr_log_growth_blocks(cell, states, xs, Q0, reortho_every, out, warmup: int = 0, pre=None) -> None:
    """Sequential QR loop carrying the k columns of Q through ``J_t`` (see `_right_products`)."""
    T = xs.shape[0]
    Q = first = Q0
    right = _right_products(cell, states, xs, pre=pre)
    blocks = Blocks(reortho_every, warmup, T)
    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
        for t in range(1, T + 1):
            if blocks.redoable and t == blocks.start + 1:
                first = Q.copy()
            Q = right(t - 1, Q)
            if t == blocks.end:
                _orthonormalise(Q, out[t - 1])
                if not blocks.close(t, out[t - 1]):
                    Q = first
                    for s in range(blocks.start + 1, t + 1):
                        Q = right(s - 1, Q)
                        _orthonormalise(Q, out[s - 1])
                        blocks.close(s, out[s - 1])
            else:
                out[t - 1] = 0.0
