"""What the weights alone say: spectra of the recurrent matrix and fixed points of the step."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy import optimize

from ..cells._cells import Cell
from ..cells._linearisation import step_jacobian
from ..core._activations import DERIVATIVE_BOUND
from ..core._registry import is_vanilla


def spectral_radius(A: np.ndarray) -> float:
    return float(np.max(np.abs(scipy.linalg.eigvals(A))))


def largest_singular_value(A: np.ndarray) -> float:
    return float(scipy.linalg.svdvals(A)[0])


def derivative_bound(cell: Cell) -> float | None:
    """Pascanu's ``gamma``: a bound on ``|phi'|`` for the cell's activation (vanilla cells only)."""
    return DERIVATIVE_BOUND.get(cell.config.get("activation")) if is_vanilla(cell.kind) else None


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


def fixed_points(cell: Cell, x: np.ndarray, starts: np.ndarray, tol: float = 1e-9,
                 max_points: int = 20) -> list[FixedPoint]:
    """Fixed points of ``h -> step(h, x)`` for a constant input ``x``, FixedPointFinder-style.

    Each start in ``starts`` (n, S) is refined by ``scipy.optimize.least_squares`` on
    ``F(h) - h`` with the engine's Jacobian; converged points are deduplicated
    (relative distance 1e-6) and linearised. Sorted: stable first, then by residual.
    """
    S = cell.state_size
    x = np.asarray(x, dtype=float)

    def residual(h):
        return np.asarray(cell.step(cell.params, h[None], x[None]))[0] - h

    def jac(h):
        return step_jacobian(cell, h, x) - np.eye(S)

    found: list[np.ndarray] = []
    for h in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = optimize.least_squares(residual, h, jac=jac, xtol=1e-13, ftol=1e-13, gtol=1e-13,
                                         max_nfev=60)
        r = np.linalg.norm(sol.fun)
        if not np.isfinite(r) or r > tol * max(1.0, np.sqrt(S)):
            continue
        scale = max(1.0, np.linalg.norm(sol.x))
        if all(np.linalg.norm(sol.x - f) > 1e-6 * scale for f in found):
            found.append(sol.x)
        if len(found) >= max_points:
            break
    points = []
    for h in found:
        eig = scipy.linalg.eigvals(step_jacobian(cell, h, x))
        points.append(FixedPoint(h, float(np.linalg.norm(residual(h))),
                                 eig[np.argsort(-np.abs(eig), kind="stable")]))
    return sorted(points, key=lambda p: (not p.stable, p.residual))
