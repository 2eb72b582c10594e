"""Second moments of the step Jacobians along a forward run: the local gain (random directions),
the averaged Jacobian and the moment maps ``X -> mean_t P_t X P_t^T`` over single steps or pairs
of steps. One-layer built-in cells use the structure ``J_t = sum_k diag(e_tk) B_k`` (`_structure`).
"""

from __future__ import annotations

import inspect

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import ArpackError, LinearOperator, eigs

from ..core._threads import limited
from ..engine._engine import block_products, cell_step_jacobians, closed_form_kind, jacobian_products
from ._perron import collatz_wielandt, log_midpoint, lower_bound, perron_bracket
from ._results import PredictorResult, natural_log, verdict
from ._spectral import spectral_radius
from ._structure import moment_terms, sampled_steps, unit_moments


@limited
def local_gain(cell, xs, states, window, probes, rng, tol) -> PredictorResult:
    """Annealed growth of random directions: ``0.5 ln (mean_t ||J_t q||^2 / ||q||^2)``."""
    S = cell.state_size
    Q = rng.standard_normal((S, probes))
    if closed_form_kind(cell) is None:
        JQ = jacobian_products(
            cell, xs[window], Q, h0=states[window.start], states=states[window.start : window.stop + 1]
        )
        squared = float(np.mean(np.sum(JQ**2, axis=2)))
    else:
        # J_t = sum_k diag(e_tk) B_k, so ||J_t q||^2 summed over probes is
        # sum_{k,l,i} e_tki e_tli (B_k Q B_l Q^T)_ii: per-unit moments of e over the steps, and
        # K products B_k Q, instead of J_t Q at every step.
        bases, moments = unit_moments(cell, xs, states, range(window.start, window.stop))
        Y = bases @ Q  # (K, S, probes)
        squared = float(np.sum(moments * np.einsum("kip,lip->kli", Y, Y)) / probes)
    # Ratio to the probes' own norms: exact for orthogonal J_t, lower variance everywhere.
    gain = squared / float(np.mean(np.sum(Q**2, axis=0)))
    return verdict(
        "local gain",
        0.5 * natural_log(gain),
        f"mean ||J_t q||^2 over {window.stop - window.start} steps and {probes} probes = {gain:.4g}",
        tol,
    )


@limited
def averaged_jacobian(cell, xs, states, window, tol, rows: int = 64) -> PredictorResult:
    J = _sampled_jacobians(cell, xs, states, window, rows)
    rho = spectral_radius(J.mean(axis=0))
    return verdict(
        "averaged jacobian",
        natural_log(rho),
        f"spectral radius of the mean of {len(J)} step Jacobians = {rho:.4g}",
        tol,
    )


def _sampled_jacobians(
    cell, xs, states, window, rows: int, span: int = 1, precision=np.float64
) -> np.ndarray:
    """Products of ``span`` consecutive step Jacobians starting at up to ``rows`` evenly spaced
    steps of the window (every sample): ``J_{t+span-1} ... J_t``, shape (rows * batch, S, S);
    products of built-in cells' closed-form J_t taken in ``precision``."""
    S = cell.state_size
    t = sampled_steps(window, rows, span)
    eye = np.broadcast_to(np.eye(S), (len(t) * xs.shape[1], S, S))
    P = eye
    closed = closed_form_kind(cell) is not None
    for j in range(span):
        h, x = states[t + j].reshape(-1, S), xs[t + j].reshape(len(t) * xs.shape[1], -1)
        if closed:  # J_t in closed form, then the product
            J = cell_step_jacobians(cell, h, x)
            P = J if j == 0 else np.matmul(J.astype(precision, copy=False), P.astype(precision, copy=False))
        else:
            P = block_products(cell, h, x, P if j else eye, "right")
    return P


# ARPACK's relative tolerance on rho(M) when the certified fast pass fails. 1e-6 alone moved the
# rates of non-normal chains (defective eigenvalues) by up to 0.13 nats/step on the
# predictor-accuracy grid: the certificate below catches those.
ARPACK_TOL = 1e-8
# The fast pass: ARPACK on float32 products to this tolerance, kept when the Collatz-Wielandt
# bracket of its eigenvector (float64) pins the rate to within CERTIFIED_WIDTH nats/step.
FAST_ARPACK_TOL = 1e-6
CERTIFIED_WIDTH = 1e-4
# Every returned rate lies in a float64 Collatz-Wielandt bracket; one wider than this many
# nats/step is tightened by `perron_bracket`'s power iteration (its midpoint when the budget ends).
BRACKET_WIDTH = 1e-4
# Wide states (formed blocks, S > rank): ARPACK's relative tolerance on rho(M), on float32 products.
WIDE_ARPACK_TOL = 1e-3
# Float64 power steps from the identity that bound a wide state's rate when its Perron vector
# is singular, and the rank-limited fallback's estimate.
WIDE_BUDGET = 3
# From this width the two-step map's products (the bulk of its cost) run in float32: half the
# time, rates within 1e-7 nats/step of float64 (sums and eigen-solvers stay in float64).
SINGLE_PRECISION_FROM = 97
# Steps averaged over (evenly spaced, every batch row) when the map's blocks must be formed: its
# cost grows with them. The structured one-step map and tiny states average over every step.
FORMED_ROWS = 48


@limited
def moment_map(
    cell,
    xs,
    states,
    window,
    rng,
    tol,
    rows: int | None = None,
    span: int = 1,
    rank: int = 96,
    iterations: int = 60,
) -> PredictorResult:
    """Annealed second-moment growth when blocks of ``span`` steps are drawn independently.

    ``M(X) = mean_t P_t X P_t^T`` over blocks ``P_t = J_{t+span-1} ... J_t`` starting at ``rows``
    evenly spaced steps of the window (every batch row); ``rows`` None: every step where that
    costs one pass over the run (the one-step map of a built-in cell, from its structure, and
    states of at most 4 units), else `FORMED_ROWS` steps. The
    rate is ``ln rho(M) / (2 span)``, by Arnoldi (ARPACK) on ``X``, certified to
    `BRACKET_WIDTH`; for states wider than ``rank`` whose blocks must be formed (two steps, or
    a cell without closed-form Jacobians) to `WIDE_ARPACK_TOL` with its bracket's width in the
    reason (power iteration on a rank-``rank`` factor if ARPACK fails). With ``span = 1`` it
    reduces to the averaged Jacobian when J_t is constant and to the local gain for
    isotropic random J_t. ``span = 2`` keeps the correlation of consecutive steps (slowly
    moving gates, a chaotic state's local stretching direction) that independent single
    steps lose; blocks never grow with the sequence, so this stays a local statistic of
    the forward run, not the measured T-step product.
    """
    name = "moment map" if span == 1 else "two-step moment map"
    S = cell.state_size
    # One step of a built-in cell: M from the structure of J_t (same numbers, far fewer products).
    terms = moment_terms(cell, xs, states, window, rows) if span == 1 and S * S > 16 else None
    every = window.stop - window.start - span + 1  # the window's blocks
    if rows is None:
        rows = every if terms is not None or S * S <= 16 else FORMED_ROWS
    if terms is None:
        single = span > 1 and S >= SINGLE_PRECISION_FROM
        J = _sampled_jacobians(cell, xs, states, window, rows, span, np.float32 if single else np.float64)
        n = J.shape[0]
        Jp = J.astype(np.float32 if single else np.float64, copy=False)

        def second_moment(X, precision=np.float64):  # M(X) = mean_t P_t X P_t^T
            P = Jp.astype(precision, copy=False)  # the certificates: float64 sums of the products
            return np.matmul(np.matmul(P, X.astype(P.dtype)), np.swapaxes(P, 1, 2)).mean(axis=0, dtype=float)

        def factor_moment(V):  # M(V V^T), and one (n S, S) x (S, rank) GEMM (einsum would not use BLAS)
            W = Jp.reshape(n * S, S) @ V.astype(Jp.dtype)
            W = W.reshape(n, S, -1).transpose(1, 0, 2).reshape(S, -1)
            return (W @ W.T).astype(float) / n
    else:
        second_moment = terms
        n = len(sampled_steps(window, rows)) * xs.shape[1]

        def factor_moment(V):
            return second_moment(V @ V.T)

    log_rho, spread = None, 0.0  # ln rho(M), and the width of a certified bracket around it
    how = "power iteration budget spent"  # what an "uncertain by" in the reason comes from
    # Every sampled block is zero (a dead ReLU net at rest): nothing survives.
    if not np.any(J if terms is None else second_moment(np.eye(S))):
        log_rho = -np.inf
    elif S * S <= 16:
        # Tiny states: M as its explicit (S^2, S^2) matrix, mean of J (x) J (ARPACK needs S^2 >= 3).
        M = np.mean([np.kron(P, P) for P in J], axis=0)
        top = float(np.max(np.abs(scipy.linalg.eigvals(M))))
        log_rho = float(np.log(top)) if top > 0 else -np.inf
    elif S <= rank or terms is not None:
        log_rho, spread = _perron_log(second_moment, S, span)
    else:
        # Wide states: ARPACK on float32 products of the formed blocks to WIDE_ARPACK_TOL, then one
        # float64 Collatz-Wielandt bracket; the rank-limited power iteration only if that fails.
        answer = _wide_perron_log(second_moment, S, span)
        if answer is not None:
            log_rho, spread, how = answer
        else:
            how = "a rank-limited estimate, bracketed once"
            log_rho, spread = _rank_limited_log(
                second_moment, factor_moment, S, span, rank, iterations, rng, Jp
            )
    growth = float(np.exp(log_rho))
    what = "step Jacobians" if span == 1 else f"products of {span} consecutive step Jacobians"
    uncertain = spread / (4 * span)  # half the bracket's width, in nats/step
    return verdict(
        name,
        log_rho / (2 * span),
        f"rho of the second-moment map over {n} {what} = {growth:.4g} "
        + f"({'every step of the window' if rows >= every else f'{rows} evenly spaced steps'}"
        + (f" x {xs.shape[1]} batch rows" if xs.shape[1] > 1 else "")
        + ", treated as independent draws)"
        + (f"; uncertain by {uncertain:.2g} nats/step (" + how + ")" if uncertain > BRACKET_WIDTH else ""),
        tol,
    )


# SciPy's C ARPACK (1.17) takes ``rng``; older releases use Fortran ARPACK's own fixed seed.
_EIGS_TAKES_RNG = "rng" in inspect.signature(eigs).parameters


def _arpack(operator, S: int, **options):
    """ARPACK's dominant eigenpair (largest real part) of ``operator`` on S x S matrices, from the
    identity. Its restart vectors after a breakdown (the identity inside an invariant subspace,
    as when M(X) = D X D) come from a generator seeded afresh at every call, so an answer depends
    neither on the calls before it nor on the machine's entropy (unseeded, SciPy draws from the
    OS: a ReLU network at rest got rate 0 or -1.7e-16 from run to run)."""
    if _EIGS_TAKES_RNG:
        options["rng"] = np.random.default_rng(0)
    return eigs(operator, k=1, which="LR", v0=np.eye(S).reshape(-1), **options)


def _wide_perron_log(second_moment, S: int, span: int) -> tuple[float, float, str] | None:
    """``(ln rho(M), ln(hi / lo), how it was bracketed)`` of a wide state's moment map from
    its formed blocks: ARPACK on float32 products from the identity to `WIDE_ARPACK_TOL` (rate
    errors ~1e-5 nats/step against float64 ARPACK to 1e-9), clipped into the float64
    Collatz-Wielandt bracket of its eigenvector. A singular Perron vector (saturated gates)
    gives no such bracket: then `lower_bound` of the vector and `WIDE_BUDGET` power steps from
    the identity bound it. None when ARPACK fails.

    Certifying to `BRACKET_WIDTH` as `_perron_log` does took 60-110 products of M (up to 8 s
    for an LSTM at N = 128); the rank-96 power iteration this replaced was 2e-3 nats/step off
    (median; 2e-2 at most) on the full predictor-accuracy grid's LSTMs at the same cost.
    """
    operator = LinearOperator(
        (S * S, S * S), matvec=lambda v: second_moment(v.reshape(S, S), np.float32).reshape(-1), dtype=float
    )
    try:
        vals, vecs = _arpack(operator, S, tol=WIDE_ARPACK_TOL, ncv=6)
    except ArpackError:
        return None
    X = vecs[:, 0].reshape(S, S)
    bracket = collatz_wielandt(second_moment, X)
    how = f"an eigen-solver answer to {WIDE_ARPACK_TOL:g}, bracketed once"
    if bracket is not None:
        lo, hi = bracket[0], bracket[1]
    else:
        how = (
            f"an eigen-solver answer to {WIDE_ARPACK_TOL:g}; a singular Perron vector, "
            f"bracketed by {WIDE_BUDGET} power steps"
        )
        lo, hi = perron_bracket(second_moment, np.eye(S), 2 * span * BRACKET_WIDTH, WIDE_BUDGET)
        lo = max(lo, lower_bound(second_moment, X))
    if hi == 0:
        return -np.inf, 0.0, how
    value = float(np.clip(abs(vals[0]), lo, hi))
    return float(np.log(value)), float(np.log(hi / lo)) if lo > 0 else np.inf, how


def _rank_limited_log(
    second_moment, factor_moment, S, span, rank, iterations, rng, Jp
) -> tuple[float, float]:
    """``(ln rho(M), ln(hi / lo))`` by power iteration on a rank-limited factor ``X = V V^T``, the
    fallback of `_wide_perron_log`. A complex dominant pair makes the growth oscillate: the
    estimate is the mean over the second half, moved into the bracket of `WIDE_BUDGET` float64
    applications."""
    logs: list[float] = []
    V = rng.standard_normal((S, rank))
    V /= np.sqrt(np.sum(V**2))
    settled = 1e-12 if Jp.dtype == float else 1e-6  # float32 sums wander ~1e-7
    G = np.eye(S)
    for _ in range(iterations):
        G = factor_moment(V)
        total = np.trace(G)
        if not total > 0:
            logs = [-np.inf]
            break
        logs.append(float(np.log(total)))
        vals, vecs = np.linalg.eigh(G)  # the top-rank part of M(V V^T)
        V = vecs[:, -rank:] * np.sqrt(np.maximum(vals[-rank:], 0.0))
        V /= np.sqrt(np.sum(V**2))
        if len(logs) > 2 and abs(logs[-1] - logs[-2]) < settled:
            break
    log_rho = float(np.mean(logs[len(logs) // 2 :]))
    spread = 0.0
    if np.isfinite(log_rho):
        # Bounded in float64 at the full-rank M(V V^T) (WIDE_BUDGET applications of M, each
        # costs several factor steps): the estimate, moved into the bracket, and its width.
        lo, hi = perron_bracket(second_moment, G / np.trace(G), 2 * span * BRACKET_WIDTH, WIDE_BUDGET)
        spread = log_midpoint(lo, hi)[1]
        log_rho = float(np.clip(log_rho, np.log(lo) if lo > 0 else -np.inf, np.log(hi)))
    return log_rho, spread


def _perron_log(second_moment, S: int, span: int) -> tuple[float, float]:
    """``(ln rho(M), ln(hi / lo))`` of the completely positive map ``second_moment(X, precision)``
    on S x S matrices: the log Perron root and the width of a certified bracket around it.

    Its spectral radius is a real eigenvalue with a positive semi-definite eigenvector
    (Krein-Rutman) and the largest real part of M's eigenvalues, which Arnoldi (ARPACK, "LR":
    "LM" may return a rotating pair's ``r^2 e^(2 i theta)``) finds in a few dozen products.
    First on float32 products to `FAST_ARPACK_TOL`, then in float64 to `ARPACK_TOL`: an
    answer counts when the `collatz_wielandt` bracket (float64) of its eigenvector is narrower
    than `CERTIFIED_WIDTH` (float32) or `BRACKET_WIDTH` (float64) in rate. Otherwise (a
    defective or singular Perron vector: non-normal chains, states at rest, saturated gates)
    `perron_bracket`'s deterministic power iteration from the identity tightens the bracket,
    starting from the bounds found so far (`lower_bound` of ARPACK's vectors included), and
    the float64 answer is returned moved into it (the midpoint without one); the width is
    returned either way.
    """
    width = {np.float32: 2 * span * CERTIFIED_WIDTH, np.float64: 2 * span * BRACKET_WIDTH}  # in ln rho

    def operator(precision):
        return LinearOperator(
            (S * S, S * S),
            matvec=lambda v: second_moment(v.reshape(S, S), precision).reshape(-1),
            dtype=float,
        )

    candidate = None  # float64 ARPACK's rho, kept if the power iteration's bracket holds it
    lo, hi = 0.0, np.inf  # the tightest bounds on rho(M) so far
    for precision, tol in ((np.float32, FAST_ARPACK_TOL), (np.float64, ARPACK_TOL)):
        try:
            vals, vecs = _arpack(operator(precision), S, tol=tol, maxiter=100)
        except ArpackError:  # no convergence, or a breakdown
            continue
        candidate = abs(vals[0])
        X = vecs[:, 0].reshape(S, S)
        bracket = collatz_wielandt(second_moment, X)
        if bracket is not None and np.log(bracket[1] / bracket[0]) <= width[precision]:
            lo, hi, quotient = bracket
            value = quotient if precision == np.float32 else float(np.clip(candidate, lo, hi))
            return float(np.log(value)), float(np.log(hi / lo))
        # A singular Perron vector (constant J, dead directions) has no positive definite
        # bracket: its lower bound from the vector itself.
        lo = max(lo, bracket[0] if bracket else 0.0, lower_bound(second_moment, X))
        hi = min(hi, bracket[1] if bracket else np.inf)
    lo, hi = perron_bracket(second_moment, np.eye(S), width[np.float64], bracket=(lo, hi))
    middle, spread = log_midpoint(lo, hi)
    if candidate is None:
        return middle, spread
    # ARPACK's answer, moved into the bracket when it lies outside. Where the bracket stays wide
    # (singular Perron vectors: states at rest, saturated gates) this was within 5e-3 of the
    # dense spectral radius on the predictor-accuracy grid, the midpoint up to 0.44 off.
    return float(np.log(np.clip(candidate, lo, hi))), spread
