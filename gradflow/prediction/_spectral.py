"""What the weights alone say: spectra of the recurrent matrix and fixed points of the step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..cells._cells import Cell
from ..core._activations import DERIVATIVE_BOUND
from ..core._registry import is_vanilla
from ..engine._engine import array_step, cell_step_jacobians


def spectral_radius(A: np.ndarray) -> float:
    return float(np.max(np.abs(scipy.linalg.eigvals(A))))


def eigenvalues_of(A: np.ndarray, known: dict | None = None) -> np.ndarray:
    """``scipy.linalg.eigvals(A)``, kept in ``known`` under ``A``'s bytes: a matrix met twice (the
    eigenvalue rule's linearisation and a fixed point at the same state) is decomposed once.

    Examples
    --------
    >>> import numpy as np
    >>> from gradflow.prediction._spectral import eigenvalues_of
    >>> known = {}
    >>> eigenvalues_of(np.diag([2.0, 0.5]), known) is eigenvalues_of(np.diag([2.0, 0.5]), known)
    True
    """
    if known is None:
        return scipy.linalg.eigvals(A)
    key = (A.shape, A.dtype.str, A.tobytes())
    if key not in known:
        known[key] = scipy.linalg.eigvals(A)
    return known[key]


def largest_singular_value(A: np.ndarray) -> float:
    return float(scipy.linalg.svdvals(A)[0])


def derivative_bound(cell: Cell) -> float | None:
    """Pascanu's ``gamma``: a bound on ``|phi'|`` for the cell's activation (vanilla cells only)."""
    return DERIVATIVE_BOUND.get(str(cell.config.get("activation"))) if is_vanilla(cell.kind) else None


@dataclass(frozen=True)
class FixedPoint:
    state: np.ndarray
    residual: float  # ||F(h*) - h*||
    eigenvalues: np.ndarray  # of d F / d h at h*, sorted by modulus, largest first

    @property
    def spectral_radius(self) -> float:
        return float(np.abs(self.eigenvalues[0]))

    @property
    def stable(self) -> bool:
        return self.spectral_radius < 1.0


def fixed_points(
    cell: Cell,
    x: np.ndarray,
    starts: np.ndarray,
    tol: float = 1e-9,
    max_points: int = 20,
    known: dict | None = None,
) -> list[FixedPoint]:
    """Fixed points of ``h -> step(h, x)`` for a constant input ``x``, FixedPointFinder-style.

    Each start in ``starts`` (n, S) is refined by Newton steps on ``F(h) - h`` with the
    step's Jacobian (closed form for built-in cells), each step halved until the residual
    falls; a start whose steps stop reducing it above ``tol`` is dropped. An LU solve per
    step replaced ``scipy.optimize.least_squares`` (an SVD per step): 5-10x faster at
    N = 128, and it converges from more starts (the fixed-point predictor's share of right
    regimes on the predictor-accuracy grid rose from 47.9% to 49.7%). Converged points are
    deduplicated (relative distance 1e-6) and linearised. Sorted: stable first, then by
    residual.
    """
    S = cell.state_size
    x = np.asarray(x, dtype=float)
    step = array_step(cell)  # the step's bytes on plain arrays: no autograd wrappers per residual

    def residual(h):
        return step(h[None], x[None])[0] - h

    def jacobian(h):  # closed form for built-in cells: no autograd trace per Newton step
        return cell_step_jacobians(cell, h[None], x[None])[0]

    def jac(h):
        return jacobian(h) - np.eye(S)

    found: list[np.ndarray] = []
    accept = tol * max(1.0, np.sqrt(S))
    for h in starts:
        root = _newton(residual, jac, h, accept)
        if root is None:
            continue
        scale = max(1.0, float(np.linalg.norm(root)))
        if all(np.linalg.norm(root - f) > 1e-6 * scale for f in found):
            found.append(root)
        if len(found) >= max_points:
            break
    points = []
    for h in found:
        eig = eigenvalues_of(jacobian(h), known)
        points.append(
            FixedPoint(h, float(np.linalg.norm(residual(h))), eig[np.argsort(-np.abs(eig), kind="stable")])
        )
    return sorted(points, key=lambda p: (not p.stable, p.residual))


def _newton(residual, jac, h: np.ndarray, accept: float, max_steps: int = 40) -> np.ndarray | None:
    """A root of ``residual`` from ``h`` by Newton steps halved until ``||residual||`` falls,
    polished to rounding level; None when a step fails to reduce it (singular or far start)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a far trial step: its residual is not finite
        return _newton_steps(residual, jac, h, accept, max_steps)


def _newton_steps(residual, jac, h, accept, max_steps):
    f = residual(h)
    norm = np.linalg.norm(f)
    for _ in range(max_steps):
        if not np.isfinite(norm):
            return None
        if norm <= 1e-3 * accept:  # quadratic convergence: the next step only meets rounding
            return h
        try:
            step = np.linalg.solve(jac(h), -f)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):
            return None
        alpha = 1.0
        while True:
            trial = h + alpha * step
            f_trial = residual(trial)
            norm_trial = np.linalg.norm(f_trial)
            if norm_trial < norm or alpha < 1e-3:
                break
            alpha /= 2
        if not norm_trial < norm:  # no decrease: converged to rounding level, or stalled
            return h if norm <= accept else None
        h, f, norm = trial, f_trial, norm_trial
    return h if norm <= accept else None
