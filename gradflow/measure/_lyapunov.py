"""Lyapunov spectra and finite-time singular values of products of step Jacobians.

QR re-orthonormalisation (Benettin et al. 1980; Engelken, Wolf & Abbott 2020):
``Q_t R_t = J_t Q_{t-1}`` with ``diag(R_t) > 0``, and ``lambda_i = (1/T) sum_t ln R_t[i, i]``.
Only logarithms are accumulated, so nothing overflows or underflows at any T.

The work is split the way the engine is built: Jacobian products come from
the engine (``_engine``), parallel in time where the loop allows; the QR
recursion is sequential, on plain arrays, with BLAS held to one thread (two
OpenBLAS pools fighting over two cores made it 3x slower). For many exponents
the per-step Jacobians are formed in time-chunks and ``Q`` is kept in
Householder form: ``J_t Q`` by LAPACK ``dormqr``, then ``dgeqrf``, never forming
``Q``. For a few exponents one stacked JVP per step carries the ``k`` columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from ..cells._cells import Cell
from ..core import _html
from ..core._options import progress_bar, resolve_progress
from ..core._threads import limited
from ..core._validation import as_float_array, check_finite_float, check_positive_int, check_seed
from ..engine._engine import (
    block_products,
    check_cell,
    check_sequence,
    closed_form_kind,
    closed_form_terms,
    jacobians,
    steps_per_chunk,
    unroll,
)
from ._flow import regime_or_none

LN2 = np.log(2.0)
# Re-orthonormalise sooner than this ratio of largest to smallest |R_ii| growth allows:
# beyond ~1e12 the smaller directions are lost to rounding (float64 has ~16 digits).
CONDITION_LIMIT = 1e12


@dataclass(frozen=True, repr=False)
class LyapunovSpectrum:
    """Lyapunov exponents of a trajectory, in nats per step.

    Attributes
    ----------
    exponents : ndarray, shape (k,)
        Mean over the batch of each sample's exponents, largest first.
    per_sample : ndarray, shape (batch, k)
    trace : ndarray, shape (n, k)
        Running estimate of ``exponents`` after ``trace_steps[i]`` steps (convergence).
    trace_steps : ndarray, shape (n,)
    steps, warmup : int
        Steps averaged over, and steps discarded first to burn in state and ``Q``.
    state_size : int
    """

    system: str
    exponents: np.ndarray
    per_sample: np.ndarray
    trace: np.ndarray
    trace_steps: np.ndarray
    steps: int
    warmup: int
    state_size: int

    @property
    def bits(self) -> np.ndarray:
        """Exponents in bits per step (log base 2)."""
        return self.exponents / LN2

    @property
    def top(self) -> float:
        return float(self.exponents[0])

    @property
    def entropy_rate(self) -> float:
        """Kolmogorov-Sinai entropy bound: the sum of positive exponents (nats/step)."""
        return float(np.sum(self.exponents[self.exponents > 0]))

    @property
    def kaplan_yorke_dimension(self) -> float:
        """``j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|`` with ``j`` the largest index of a
        non-negative partial sum; 0 when ``lambda_1 < 0``; NaN when more exponents are needed."""
        partial = np.cumsum(self.exponents)
        if partial[0] < 0:
            return 0.0
        j = int(np.flatnonzero(partial >= 0)[-1]) + 1
        if j == len(self.exponents):
            return float(j) if j == self.state_size else np.nan
        return float(j + partial[j - 1] / abs(self.exponents[j]))

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per (index, sample) with the exponent in nats and bits."""
        b, k = self.per_sample.shape
        return pd.DataFrame({"index": np.tile(np.arange(1, k + 1), b),
                             "sample": np.repeat(np.arange(b), k),
                             "exponent": self.per_sample.reshape(-1),
                             "exponent_bits": self.per_sample.reshape(-1) / LN2})

    def plot(self, ax=None, kind: str = "spectrum"):
        """``kind="spectrum"``: exponents against index; ``"trace"``: running estimates against steps."""
        from ..core._plot import new_axes

        ax = new_axes(ax)
        if kind == "spectrum":
            idx = np.arange(1, len(self.exponents) + 1)
            ax.plot(idx, self.exponents, "o-", markersize=3)
            ax.axhline(0.0, color="0.4", linewidth=0.8)
            ax.set(xlabel="index i", ylabel="lambda_i (nats/step)")
        elif kind == "trace":
            ax.plot(self.trace_steps, self.trace[:, : min(5, self.trace.shape[1])])
            ax.set(xlabel="steps averaged", ylabel="running lambda_i (nats/step)")
        else:
            raise ValueError(f"unknown kind {kind!r}; expected 'spectrum' or 'trace'")
        ax.set_title(f"{self.system}: lambda_1 = {self.top:+.4f} nats/step")
        return ax

    def _summary(self):
        ky = self.kaplan_yorke_dimension
        return [("system", self.system), ("exponents", f"{len(self.exponents)} of {self.state_size}"),
                ("lambda_1", f"{self.top:+.5g} nats/step ({self.bits[0]:+.5g} bits/step)"),
                ("sum", f"{self.exponents.sum():+.5g} nats/step"),
                ("Kaplan-Yorke dimension", "needs more exponents" if np.isnan(ky) else f"{ky:.4g}"),
                ("entropy rate", f"{self.entropy_rate:.5g} nats/step"),
                ("steps (warm-up)", f"{self.steps} ({self.warmup}), batch {self.per_sample.shape[0]}")]

    def __repr__(self):
        shown = ", ".join(f"{v:+.4f}" for v in self.exponents[:4])
        more = ", ..." if len(self.exponents) > 4 else ""
        return (f"LyapunovSpectrum(system={self.system!r}, k={len(self.exponents)}, "
                f"exponents=[{shown}{more}] nats/step, steps={self.steps})")

    def _repr_html_(self):
        figure = _html.indexed(self.exponents, "lambda_i (nats/step)")
        return _html.card("LyapunovSpectrum", self.system, self._summary(), regime=regime_or_none(self.top),
                          figure=figure, note="badge: lambda_1 against the neutral band of gf.regime_of")


def map_cell(f: Callable, state_size: int, name: str = "map") -> Cell:
    """Wrap an autonomous map ``f(state) -> state`` (acting on the last axis) as a cell."""
    if not callable(f):
        raise ValueError(f"f must be callable; got {f!r}")
    return Cell(lambda params, h, x: f(h), {}, state_size, 0, name=name)


def initial_block(rng, batch, n, k):
    q, r = np.linalg.qr(rng.standard_normal((batch, n, k)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def _warn_conditioning(log_r: np.ndarray, reortho_every: int) -> None:
    finite = log_r[np.isfinite(log_r)]  # a direction mapped exactly to zero is no conditioning loss
    spread = np.max(finite) - np.min(finite) if finite.size else 0.0
    if spread > np.log(CONDITION_LIMIT):
        warnings.warn(f"Q lost conditioning between re-orthonormalisations (|R_ii| spread "
                      f"e^{spread:.0f} > {CONDITION_LIMIT:.0e}); use a smaller reortho_every "
                      f"than {reortho_every}", RuntimeWarning, stacklevel=5)


def _check_lapack(routine: str, info: int) -> None:
    if info != 0:
        raise FloatingPointError(f"LAPACK {routine} failed (info={info}): a Jacobian product "
                                 f"is not finite")


def _optimal_lwork(routine, *args) -> int:
    """LAPACK's optimal workspace from a workspace query (``lwork=-1``). The default
    ``lwork`` scipy passes (3N for ``dgeqrf``) made each call ~1.7x slower at N = 256."""
    work, info = routine(*args, lwork=-1)[-2:]
    _check_lapack(routine.__name__, info)
    return max(1, int(work[0]))


def qr_log_growth(jac_chunks, Q0: np.ndarray, reortho_every: int, out: np.ndarray) -> None:
    """Sequential QR loop on formed Jacobians (chunks of shape (c, B, S, S)); Q in Householder form.

    Writes ``ln|R_ii|`` (or 0 between re-orthonormalisations) into ``out`` (T, B, k).
    Each chunk is transposed once (one vectorised copy) so that every ``J_t`` is a
    Fortran-ordered view LAPACK overwrites in place: no copy per step.
    """
    B, S, k = Q0.shape
    factors = []
    for b in range(B):  # Householder form of Q0 (its R is +-1 on the diagonal: ln 1 = 0)
        qr, tau, _, _ = lapack.dgeqrf(np.asfortranarray(Q0[b]))
        factors.append((qr, tau))
    geqrf_lwork = _optimal_lwork(lapack.dgeqrf, np.zeros((S, k), order="F"))
    ormqr_lwork = _optimal_lwork(lapack.dormqr, "R", "N", factors[0][0], factors[0][1],
                                 np.zeros((S, S), order="F"))
    pending: list[np.ndarray | None] = [None] * B
    t = 0
    for chunk in jac_chunks:
        chunk_t = np.ascontiguousarray(np.swapaxes(chunk, -1, -2))  # [t, b].T: J_t, Fortran order
        for Jt in chunk_t:
            t += 1
            for b in range(B):
                qr, tau = factors[b]
                if (t - 1) % reortho_every == 0:
                    # J Q = (J applied to the reflectors)[:, :k], without forming Q.
                    full, _, info = lapack.dormqr("R", "N", qr, tau, Jt[b].T, lwork=ormqr_lwork,
                                                  overwrite_c=1)
                    _check_lapack("dormqr", info)
                    pending[b] = full[:, :k]  # leading columns of a Fortran array: contiguous
                else:
                    pending[b] = np.asfortranarray(Jt[b].T @ pending[b])
            if t % reortho_every == 0:
                for b in range(B):
                    qr, tau, _, info = lapack.dgeqrf(pending[b], lwork=geqrf_lwork, overwrite_a=1)
                    _check_lapack("dgeqrf", info)
                    factors[b] = (qr, tau)
                    with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
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
    held = {}

    def apply(t, Q):
        start = t - t % chunk
        if held.get("start") != start:
            stop = min(T, start + chunk)
            bases, scales = closed_form_terms(cell, states[start:stop].reshape(-1, S),
                                              xs[start:stop].reshape((stop - start) * B, -1))
            held.update(start=start, bases=bases.reshape(-1, S),  # (K S, S): one GEMM per sample
                        scales=scales.reshape(stop - start, B, len(bases), S))
        scales = held["scales"][t - start]  # (B, K, S)
        out = np.empty_like(Q)
        for b in range(B):
            products = (held["bases"] @ Q[b]).reshape(scales.shape[1], S, -1)  # B_k Q, every k
            out[b] = scales[b, 0][:, None] * products[0]
            for k in range(1, len(products)):
                out[b] += scales[b, k][:, None] * products[k]
        return out

    return apply


def _qr_logs_blocks(cell, states, xs, Q0, reortho_every, out) -> None:
    """Sequential QR loop carrying the k columns of Q through ``J_t`` (see `_right_products`)."""
    T = xs.shape[0]
    Q = Q0
    right = _right_products(cell, states, xs)
    for t in range(1, T + 1):
        Q = right(t - 1, Q)
        if t % reortho_every == 0:
            # LAPACK directly (dgeqrf, dorgqr): numpy.linalg.qr's wrapping cost as much again.
            for b in range(len(Q)):
                qr, tau, _, info = lapack.dgeqrf(np.asfortranarray(Q[b]), overwrite_a=1)
                _check_lapack("dgeqrf", info)
                d = np.diagonal(qr).copy()
                q, _, info = lapack.dorgqr(qr, tau, overwrite_a=1)
                _check_lapack("dorgqr", info)
                with np.errstate(divide="ignore"):  # an exactly dying direction: ln 0 = -inf
                    out[t - 1, b] = np.log(np.abs(d))
                Q[b] = q * np.where(d < 0, -1.0, 1.0)
            if reortho_every > 1:
                _warn_conditioning(out[t - 1], reortho_every)
        else:
            out[t - 1] = 0.0


@limited  # BLAS threads by gradflow's policy (_threads): one by default
def _spectrum(cell: Cell, xs: np.ndarray, h0: np.ndarray, k: int | None, warmup: int,
              reortho_every: int, seed: int, name: str, progress: bool | None = None) -> LyapunovSpectrum:
    T, B, _ = xs.shape
    S = cell.state_size
    k = S if k is None else check_positive_int("k", k)
    if k > S:
        raise ValueError(f"k must be at most the state size {S}; got {k}")
    warmup = check_positive_int("warmup", warmup, minimum=0)
    reortho_every = check_positive_int("reortho_every", reortho_every)
    if warmup >= T:
        raise ValueError(f"warmup must be shorter than the sequence: warmup={warmup}, T={T}")
    seed = check_seed(seed)
    states = unroll(cell, xs, h0)
    logs = np.empty((T, B, k))
    Q0 = initial_block(np.random.default_rng(seed), B, S, k)
    if 4 * k >= S:
        # Many exponents: form J_t in time-chunks, then the sequential QR loop.
        chunk = steps_per_chunk(B * S, S)

        def chunks():
            with progress_bar(T, "lyapunov", "step", progress) as bar:  # ticks once a chunk is done
                for t0 in range(0, T, chunk):
                    t1 = min(T, t0 + chunk)
                    yield jacobians(cell, xs[t0:t1], h0=states[t0], states=states[t0 : t1 + 1])
                    bar.update(t1 - t0)

        qr_log_growth(chunks(), Q0, reortho_every, logs)
    else:
        _qr_logs_blocks(cell, states, xs, Q0, reortho_every, logs)
    counted = logs[warmup:]
    n = T - warmup
    per_sample = counted.sum(axis=0) / n  # (B, k)
    order = np.argsort(-per_sample.mean(axis=0), kind="stable")
    per_sample = per_sample[:, order]
    marks = np.unique(np.linspace(1, n, min(n, 200)).astype(int))
    running = np.cumsum(counted.mean(axis=1), axis=0)[marks - 1] / marks[:, None]
    return LyapunovSpectrum(system=name, exponents=per_sample.mean(axis=0), per_sample=per_sample,
                            trace=running[:, order], trace_steps=marks, steps=n, warmup=warmup,
                            state_size=S)


def lyapunov_spectrum(system, xs=None, *, k: int | None = None, h0=None, warmup: int = 100,
                      reortho_every: int = 1, x0=None, steps: int | None = None,
                      seed: int = 0, progress: bool | None = None) -> LyapunovSpectrum:
    """Lyapunov exponents along a trajectory, by QR re-orthonormalisation.

    Parameters
    ----------
    system : Cell or callable
        A cell driven by ``xs``, or an autonomous map ``f(state) -> state`` written
        with ``autograd.numpy`` that acts on the last axis (states of shape
        ``(batch, S)``), started from ``x0`` and iterated ``steps`` times.
    xs : array, shape (T, batch, inputs)
        Inputs, for a cell.
    k : int, optional
        Number of exponents (the largest ``k``); all by default.
    h0 : array, optional
        Initial state of a cell.
    warmup : int
        Steps run first and not averaged, to burn in the state and ``Q``.
    reortho_every : int
        Re-orthonormalise every this many steps (a warning says when that was too rare).
    x0 : array, shape (S,) or (batch, S)
        Initial state of a map.
    steps : int
        Iterations of a map, warm-up included.
    seed : int
        Seed of the random initial block ``Q_0``.
    progress : bool, optional
        A progress bar over the steps when many exponents are computed (``4 k >= S``, the
        costly case at large N); default ``gf.options().progress``, shown after a second.

    Returns
    -------
    LyapunovSpectrum
        An exponent is ``-inf`` (exactly, without a warning) when some step's Jacobian maps
        that direction exactly to zero, e.g. every ReLU unit dead or a fully saturated
        tanh: the product is then singular and ``ln 0`` is its true value.

    Examples
    --------
    The Hénon map (a = 1.4, b = 0.3): exponents about (0.419, -1.623), summing to ln 0.3.

    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import gradflow as gf
    >>> def henon(s):
    ...     x, y = s[..., 0], s[..., 1]
    ...     return anp.stack([1 - 1.4 * x**2 + y, 0.3 * x], axis=-1)
    >>> spec = gf.lyapunov_spectrum(henon, x0=[0.1, 0.1], steps=20_000)
    >>> print(np.round(spec.exponents, 2), f"{spec.exponents.sum():.6f}", f"{np.log(0.3):.6f}")
    [ 0.42 -1.62] -1.203973 -1.203973
    """
    if isinstance(system, Cell):
        if xs is None:
            raise ValueError("xs is required when system is a cell")
        if x0 is not None or steps is not None:
            raise ValueError("x0 and steps are for maps; a cell takes xs (and h0)")
        cell = check_cell(system)
        xs, h0 = check_sequence(cell, xs, h0)
        return _spectrum(cell, xs, h0, k, warmup, reortho_every, seed, cell.name, resolve_progress(progress))
    if not callable(system):
        raise ValueError(f"system must be a Cell or a callable map; got {type(system).__name__}")
    if x0 is None or steps is None:
        raise ValueError("a map needs x0 (its initial state) and steps")
    x0 = as_float_array("x0", x0, ndim=(1, 2))
    x0 = x0[None] if x0.ndim == 1 else x0
    steps = check_positive_int("steps", steps)
    name = getattr(system, "__name__", "map")
    cell = map_cell(system, x0.shape[1], name=name)
    xs = np.zeros((steps, x0.shape[0], 0))
    return _spectrum(cell, xs, x0, k, warmup, reortho_every, seed, name, resolve_progress(progress))


@dataclass(frozen=True, repr=False)
class SingularValues:
    """Log singular values of the product ``d state_T / d state_0 = J_T ... J_1``.

    Attributes
    ----------
    log_values : ndarray, shape (batch, k)
        Natural logs of the ``k`` largest singular values, largest first.
    change : float
        Largest change of any log value over the last sweep (convergence).
    sweeps, steps : int
    """

    system: str
    log_values: np.ndarray
    change: float
    sweeps: int
    steps: int

    @property
    def rates(self) -> np.ndarray:
        """Batch-mean ``ln sigma_i / steps``: the growth rates of the product, nats/step."""
        return self.log_values.mean(axis=0) / self.steps

    def plot(self, ax=None):
        """ln sigma_i / steps (nats/step) against index i, batch mean and every sample."""
        from ..core._plot import new_axes

        ax = new_axes(ax)
        idx = np.arange(1, self.log_values.shape[1] + 1)
        ax.plot(idx, self.rates, "o-", markersize=3, label="batch mean")
        for row in self.log_values:
            ax.plot(idx, row / self.steps, ".", color="0.5", markersize=3)
        ax.axhline(0.0, color="0.4", linewidth=0.8)
        ax.set(xlabel="index i", ylabel="ln sigma_i / T (nats/step)",
               title=f"{self.system}: {self.steps} steps")
        return ax

    def _summary(self):
        logs = self.log_values.mean(axis=0)
        return [("system", self.system), ("steps, batch", f"{self.steps}, {self.log_values.shape[0]}"),
                ("ln sigma_1", f"{logs[0]:+.5g} (batch mean)"),
                ("rate ln sigma_1 / T", _html.number(self.rates[0], unit="nats/step")),
                ("values", str(self.log_values.shape[1])),
                ("sweeps, last change", f"{self.sweeps}, {self.change:.2g} nats")]

    def __repr__(self):
        shown = ", ".join(f"{v:+.5g}" for v in self.log_values.mean(axis=0)[:4])
        more = ", ..." if self.log_values.shape[1] > 4 else ""
        return (f"SingularValues(system={self.system!r}, steps={self.steps}, "
                f"ln sigma=[{shown}{more}] (batch mean), change={self.change:.2g})")

    def _repr_html_(self):
        figure = _html.indexed(self.rates, "ln sigma_i / T") if len(self.rates) > 1 else None
        return _html.card("SingularValues", self.system, self._summary(),
                          regime=regime_or_none(self.rates[0]), figure=figure)


@limited
def _qr_sweep(cell, states, xs, Q, side):
    """One pass of ``Q <- qr(J_t Q)`` (forward in t) or ``Q <- qr(J_t^T Q)`` (backward)."""
    T = xs.shape[0]
    logs = np.zeros(Q.shape[::2])  # (B, k)
    order = range(1, T + 1) if side == "right" else range(T, 0, -1)
    for t in order:
        Y = block_products(cell, states[t - 1], xs[t - 1], Q, side)
        if side == "left":
            Y = np.swapaxes(Y, 1, 2)  # (Q^T J)^T = J^T Q
        q, r = np.linalg.qr(Y)
        d = np.diagonal(r, axis1=1, axis2=2)
        with np.errstate(divide="ignore"):
            logs += np.log(np.abs(d))
        Q = q * np.where(d < 0, -1.0, 1.0)[:, None, :]
    return Q, logs


def finite_time_singular_values(cell: Cell, xs, h0=None, *, k: int = 1, tol: float = 1e-10,
                                max_sweeps: int | None = None, seed: int = 0) -> SingularValues:
    """Largest singular values of ``d state_T / d state_0``, in log space (finite at any T).

    Alternate QR sweeps forward (``J_t Q``, one stacked JVP per step) and backward
    (``J_t^T Q``, one stacked VJP per step): subspace iteration on the product, whose
    ``ln |R_ii|`` sums converge to the log singular values. Sweeps stop once no value
    moved by more than ``tol`` (nats). Nearly equal singular values converge slowly
    (the error shrinks by ``sigma_{i+1} / sigma_i`` per sweep): by default
    (``max_sweeps=None``) the budget starts at `DEFAULT_SWEEPS` and is raised to the
    sweeps the observed contraction needs, up to ``SWEEP_BUDGET_LIMIT * DEFAULT_SWEEPS``;
    an explicit ``max_sweeps`` is a fixed budget. A result that did not converge comes
    with a `ConvergenceWarning` giving the last change. One forward sweep alone is the
    finite-time Lyapunov estimate, which can be off by several nats. A direction the
    product maps exactly to zero has ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(6, 2, activation="linear", seed=0)
    >>> xs = gf.inputs.gaussian(3, 1, 2)
    >>> sv = gf.finite_time_singular_values(cell, xs, k=2)
    >>> W = cell.params["weight_hh_l0"]
    >>> bool(np.allclose(sv.log_values[0], np.log(np.linalg.svd(W @ W @ W)[1][:2])))
    True
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    k = check_positive_int("k", k)
    if k > cell.state_size:
        raise ValueError(f"k must be at most the state size {cell.state_size}; got {k}")
    if max_sweeps is None:
        budget, limit = DEFAULT_SWEEPS, SWEEP_BUDGET_LIMIT * DEFAULT_SWEEPS
    else:
        budget = limit = check_positive_int("max_sweeps", max_sweeps)
    tol = check_finite_float("tol", tol, minimum=0.0)
    seed = check_seed(seed)
    states = unroll(cell, xs, h0)
    Q = initial_block(np.random.default_rng(seed), xs.shape[1], cell.state_size, k)
    previous, logs, change, done = None, None, np.inf, 0
    changes: list[float] = []
    with threadpool_limits(1):
        while not change <= tol:
            if done >= budget:
                budget = _raised_budget(changes, tol, done, limit)
                if done >= budget:
                    moved = (f"the log values still moved by {change:.2g} nats > tol={tol:g}"
                             if changes else "one sweep cannot tell how far it is from converged")
                    warnings.warn(f"finite_time_singular_values did not converge: {moved} after {done} "
                                  f"sweep{'s' * (done > 1)} (budget {limit}; nearly equal singular values "
                                  f"converge slowly)", ConvergenceWarning, stacklevel=2)
                    break
            Q, logs = _qr_sweep(cell, states, xs, Q, "right" if done % 2 == 0 else "left")
            done += 1
            if previous is not None:
                finite = np.isfinite(logs) | np.isfinite(previous)  # an exact zero stays -inf
                diff = np.abs(logs - previous, where=finite, out=np.zeros_like(logs))
                change = float(diff.max())
                changes.append(change)
            previous = logs
    return SingularValues(cell.name, logs, change, done, xs.shape[0])


DEFAULT_SWEEPS = 40  # finite_time_singular_values' first budget, raised when the contraction needs more
SWEEP_BUDGET_LIMIT = 10  # ... at most this many times over


class ConvergenceWarning(UserWarning):
    """An iteration stopped before reaching its tolerance; the result is approximate."""


def _raised_budget(changes: list[float], tol: float, done: int, limit: int) -> int:
    """The sweeps the observed geometric contraction of ``changes`` needs to reach ``tol``
    (``done`` when it is not contracting, or when even ``limit`` would not do)."""
    if len(changes) < 3:  # too few changes to measure the contraction: two more sweeps
        return min(done + 2, limit)
    if not 0.0 < changes[-1] < changes[-3]:
        return done
    ratio = (changes[-1] / changes[-3]) ** 0.5  # two sweeps apart: same direction, no zig-zag
    needed = done + int(np.ceil(np.log(tol / changes[-1]) / np.log(ratio))) + 2
    return needed if needed <= limit else done
