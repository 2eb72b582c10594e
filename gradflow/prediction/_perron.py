"""Certified bounds on the spectral radius of a positive map ``M`` on symmetric matrices (the
moment maps ``X -> mean_t P_t X P_t^T``): Collatz-Wielandt brackets ``lo <= rho(M) <= hi`` from
a positive definite ``X``, and a deterministic power iteration that tightens them.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def log_midpoint(lo: float, hi: float) -> tuple[float, float]:
    """The middle of ``[ln lo, ln hi]`` and its width (``-inf, 0`` for ``rho = 0``)."""
    if hi == 0:
        return -np.inf, 0.0
    if lo == 0:  # no lower bound: the upper one, with an infinite width
        return float(np.log(hi)), np.inf
    return float((np.log(lo) + np.log(hi)) / 2), float(np.log(hi / lo))


# Applications of M the certified power iteration may take before it settles for its bracket.
POWER_BUDGET = 400
# Every this many iterations, also `lower_bound` at the iterate (one more application of M).
LOWER_EVERY = 20
# The power iteration runs on M + SHIFT rho I: a dominant complex pair r e^(+-i theta) then no
# longer rotates the iterates (its modulus is below the Perron root's), at a small cost in speed.
SHIFT = 0.25


def perron_bracket(
    second_moment,
    X: np.ndarray,
    width: float,
    budget: int = POWER_BUDGET,
    bracket: tuple[float, float] = (0.0, np.inf),
) -> tuple[float, float]:
    """Bounds ``lo <= rho(M) <= hi`` of a positive map ``M`` by power iteration on the positive
    semi-definite cone from ``X``, stopped once ``ln(hi / lo) <= width`` or after ``budget``
    applications of ``M``; ``bracket`` holds bounds known before.

    Every iterate ``X_k`` that is positive definite gives `collatz_wielandt` bounds; along the
    iterates of a positive map ``lo`` never falls and ``hi`` never rises (``lo X <= M(X)``
    gives ``lo M(X) <= M^2(X)``), and the tightest seen are kept. Units whose rows of ``M(X)``
    are zero for every ``X`` (dead units) are left out: ``M`` maps into the matrices on the
    other units, which carry its non-zero spectrum. ``M^k(X) = 0`` gives ``(0, 0)``.
    Deterministic: no random start.

    Examples
    --------
    The mean of ``A X A^T`` over two non-normal ``A``, against the dense ``mean A (x) A``:

    >>> import numpy as np
    >>> from gradflow.prediction._perron import perron_bracket
    >>> As = [np.array([[0.9, 2.0], [0.0, 0.5]]), np.array([[0.3, 0.0], [1.0, 0.8]])]
    >>> rho = max(abs(np.linalg.eigvals(sum(np.kron(A, A) for A in As) / 2)))
    >>> lo, hi = perron_bracket(lambda X: sum(A @ X @ A.T for A in As) / 2, np.eye(2), 1e-6)
    >>> bool(lo <= rho <= hi and np.log(hi / lo) <= 1e-6)
    True
    """
    apply = second_moment
    live = np.diag(second_moment(np.eye(len(X)))) > 0
    if not live.all():
        cut, shape = np.ix_(live, live), X.shape

        def apply(Y):  # M on the live units' block
            Z = np.zeros(shape)
            Z[cut] = Y
            return second_moment(Z)[cut]

        X = X[cut]
    lo, hi = bracket
    X = X / np.trace(X)
    for step in range(1, budget + 1):
        if lo > 0 and np.log(hi / lo) <= width:
            break
        MX = apply(X)
        total = float(np.trace(MX))
        if not total > 0:
            return 0.0, 0.0
        bounds = loewner_bounds(X, MX)
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        if step % LOWER_EVERY == 0:  # a singular Perron vector: bounds from the iterate's top part
            lo = max(lo, lower_bound(apply, X))
        # M + SHIFT total I (total ~ rho: X has unit trace) has M's Perron vector.
        X = (MX + MX.T + 2 * SHIFT * total * X) / (2 * (1 + SHIFT) * total)
    return lo, hi


def collatz_wielandt(second_moment, X: np.ndarray) -> tuple[float, float, float] | None:
    """Bounds ``lo <= rho(M) <= hi`` of a positive map ``M`` from a positive definite ``X``, and
    the quotient ``<X, M(X)> / <X, X>`` clipped to them; None when there are no bounds.

    ``lo X <= M(X) <= hi X`` (Loewner order) with ``lo, hi`` the extreme eigenvalues of
    ``L^-1 M(X) L^-T``, ``X = L L^T``; a positive map keeps the order, so
    ``lo^k X <= M^k(X) <= hi^k X`` for every k, and X > 0 bounds every direction
    (Collatz-Wielandt). ``X`` may be complex up to a phase (ARPACK's eigenvector); None when
    its real symmetric part is not positive definite or ``lo <= 0``.
    """
    X = X * np.exp(-1j * np.angle(X.flat[np.argmax(np.abs(X))])) if np.iscomplexobj(X) else X
    X = np.real(X + X.T) / 2
    X = X * np.sign(np.trace(X))
    MX = second_moment(X)
    bounds = loewner_bounds(X, MX)
    if bounds is None or not bounds[0] > 0:
        return None
    lo, hi = bounds
    return lo, hi, float(np.clip(np.sum(X * MX) / np.sum(X * X), lo, hi))


def loewner_bounds(X: np.ndarray, MX: np.ndarray) -> tuple[float, float] | None:
    """The largest ``lo >= 0`` and smallest ``hi`` with ``lo X <= MX <= hi X`` (Loewner order) for
    a positive definite ``X`` (None when Cholesky finds it is not)."""
    try:
        L = scipy.linalg.cholesky(X, lower=True)
    except np.linalg.LinAlgError:
        return None
    Y = scipy.linalg.solve_triangular(L, MX, lower=True)
    A = scipy.linalg.solve_triangular(L, Y.T, lower=True)  # L^-1 M(X) L^-T
    w = scipy.linalg.eigvalsh((A + A.T) / 2)
    if not np.all(np.isfinite(w)):
        return None
    return max(float(w[0]), 0.0), float(w[-1])


def lower_bound(second_moment, X: np.ndarray, floor: float = 1e-8) -> float:
    """A lower bound ``c <= rho(M)`` from the positive semi-definite part of ``X``, which may be
    singular (0 when there is none).

    `collatz_wielandt` needs a positive definite ``X``, so its ``lo`` stays at the worst
    direction when the Perron vector is singular (a constant ``J``: ``q q^T``). Here ``X`` is
    cut to its eigenvalues above ``floor`` times the largest, ``X' = U D U^T``, and ``c`` is
    the largest number with ``M(X') >= c X'``: then ``M^k(X') >= c^k X'`` for every k. It
    is the smallest eigenvalue of ``D^-1/2 (A11 - A12 A22^+ A21) D^-1/2`` (the Schur complement
    of ``M(X')`` in the basis of ``X'``'s eigenvectors), confirmed on ``M(X') - c X'`` itself
    (eigenvalues above -1e-13 times its trace; else halved until they are).

    Examples
    --------
    A symmetric ``A`` with top eigenvalue 0.9: ``M(X) = A X A`` has the Perron vector
    ``q q^T`` of rank one, on which the bound is ``0.81``:

    >>> import numpy as np
    >>> from gradflow.prediction._perron import lower_bound
    >>> q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    >>> A = q @ np.diag([0.9, 0.5, 0.3, 0.1]) @ q.T
    >>> round(lower_bound(lambda X: A @ X @ A, np.outer(q[:, 0], q[:, 0])), 12)
    0.81
    """
    X = X * np.exp(-1j * np.angle(X.flat[np.argmax(np.abs(X))])) if np.iscomplexobj(X) else X
    X = np.real(X + X.T) / 2
    X = X * np.sign(np.trace(X))
    w, Q = scipy.linalg.eigh(X)
    if not w[-1] > 0:
        return 0.0
    kept = w > floor * w[-1]
    D, U = w[kept], Q[:, kept]
    X = (U * D) @ U.T
    MX = second_moment(X)
    A = Q.T @ MX @ Q  # blocks: the kept directions, then the rest
    r = int(np.sum(~kept))
    A11, A12, A22 = A[r:, r:], A[r:, :r], A[:r, :r]
    schur = A11 - A12 @ np.linalg.pinv(A22, rcond=1e-12, hermitian=True) @ A12.T if r else A11
    scaled = schur / np.sqrt(np.outer(D, D))
    c = float(scipy.linalg.eigvalsh((scaled + scaled.T) / 2)[0])
    slack = 1e-13 * float(np.trace(MX))
    for _ in range(64):  # rounding in the Schur complement: step down until M(X') - c X' >= 0
        if not c > 0:
            break
        gap = MX - c * X
        if scipy.linalg.eigvalsh((gap + gap.T) / 2)[0] >= -slack:
            return c
        c /= 2
    return 0.0
