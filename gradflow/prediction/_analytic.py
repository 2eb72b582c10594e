"""The analytic predictors: rules computed in closed form from the weights, the input statistics
and, for gated cells, the gate statistics of one forward run. `eigenvalue_rule` (spectral radius
of the linearisation), `pascanu_bound` (the largest singular value against the activation's
derivative bound), `mean_field` (a vanilla cell's chi_1), `fixed_point` (the slowest mode of the
stable fixed point nearest the trajectory) and `gated_mean_field` (second moments of the cotangent
through one LSTM or GRU step). ``_predict`` registers them and gathers their results.
"""

from __future__ import annotations

import numpy as np

from ..cells._cells import Cell
from ..cells._linearisation import linearisation, recurrent_matrix
from ..core import _activations as act
from ..core._threads import limited
from . import meanfield
from ._registry import NEEDS, one_layer_gated
from ._results import PredictorResult, natural_log, verdict
from ._spectral import derivative_bound, eigenvalues_of, fixed_points, largest_singular_value, spectral_radius

# ------------------------------------------------------------------ weights only


@limited  # BLAS threads by gradflow's policy (_threads): one by default
def eigenvalue_rule(
    cell: Cell,
    x_mean: np.ndarray,
    tol: float,
    eigenvalues: tuple[np.ndarray, str] | None = None,
    known: dict | None = None,
) -> PredictorResult:
    """``eigenvalues``: those of `linearisation` at ``x_mean`` and its name, when already computed;
    ``known``: eigenvalues by matrix, shared with the fixed-point search (`eigenvalues_of`)."""
    if eigenvalues is None:
        A, where = linearisation(cell, x_mean)  # gated, stacked or custom: the step at the origin
        rho = float(np.max(np.abs(eigenvalues_of(A, known))))
    else:
        rho, where = float(np.max(np.abs(eigenvalues[0]))), eigenvalues[1]
    return verdict("eigenvalue rule", natural_log(rho), f"spectral radius of the {where} = {rho:.4g}", tol)


@limited
def pascanu_bound(cell: Cell, tol: float) -> PredictorResult:
    W, gamma = recurrent_matrix(cell), derivative_bound(cell)
    if W is None or gamma is None:
        return PredictorResult("pascanu bound", None, np.nan, "needs a one-layer vanilla cell")
    s1 = largest_singular_value(W)
    bound = natural_log(gamma * s1)  # ||J_t|| <= gamma * s1: an upper bound on the rate
    if s1 < 1.0 / gamma:
        return PredictorResult(
            "pascanu bound",
            "vanishing",
            bound,
            f"s1 = {s1:.4g} < 1/gamma = {1 / gamma:g}: vanishing certified, "
            f"explosion impossible; rate <= {bound:+.4g}",
        )
    return PredictorResult(
        "pascanu bound",
        None,
        bound,
        f"s1 = {s1:.4g} >= 1/gamma = {1 / gamma:g}: inconclusive, explosion possible; rate <= {bound:+.4g}",
    )


def mean_field(cell: Cell, input_second_moment: float, tol: float) -> PredictorResult:
    W = recurrent_matrix(cell)
    if W is None:
        return PredictorResult("mean-field", None, np.nan, "needs a one-layer vanilla cell")
    n = W.shape[0]
    sigma_w = float(np.sqrt(np.sum(W**2) / n))
    b = cell.params["bias_ih_l0"] + cell.params["bias_hh_l0"]
    bias_var = float(np.mean(b**2))
    activation = cell.config["activation"]
    rate = meanfield.rate(sigma_w, bias_var, input_second_moment, activation)
    return verdict(
        "mean-field",
        rate,
        f"sigma_w = {sigma_w:.4g}, bias var {bias_var:.3g}, input var "
        f"{input_second_moment:.3g}: chi_1 = {np.exp(2 * rate):.4g}",
        tol,
    )


@limited
def fixed_point(
    cell: Cell,
    x_mean: np.ndarray,
    starts: np.ndarray,
    centre: np.ndarray,
    tol: float,
    known: dict | None = None,
) -> PredictorResult:
    points = fixed_points(cell, x_mean, starts, known=known)
    stable = [p for p in points if p.stable]
    if not stable:
        return PredictorResult(
            "fixed point", None, np.nan, f"{len(points)} fixed point(s), none stable: no decay predicted"
        )
    near = min(stable, key=lambda p: np.linalg.norm(p.state - centre))
    rho = near.spectral_radius
    return verdict(
        "fixed point",
        natural_log(rho),
        f"{len(points)} fixed point(s), {len(stable)} stable; slowest mode of the one "
        f"nearest the trajectory |lambda| = {rho:.4g}",
        tol,
    )


def _gated_statistics(cell, xs, states, window):
    n = cell.config["hidden"]
    p = cell.params
    h_prev = states[window.start : window.stop, :, :n]
    x = xs[window]
    gi = x @ p["weight_ih_l0"].T + p["bias_ih_l0"]
    gh = h_prev @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    blocks = p["weight_hh_l0"].reshape(-1, n, n)
    sigma2 = np.sum(blocks**2, axis=(1, 2)) / n  # per gate: ||W_gate||_F^2 / N
    return n, gi, gh, sigma2


@limited
def gated_mean_field(cell, xs, states, window, tol) -> PredictorResult:
    """Second moments of the cotangent through one gated step, averaged over the run's gates.

    Mean-field assumptions: ``W_hh`` blocks act as independent random matrices, and the
    cotangent is independent of the forward quantities it multiplies.
    """
    if not one_layer_gated(cell):
        return PredictorResult("gated mean-field", None, np.nan, NEEDS["gated cell"][1])
    n, gi, gh, s2 = _gated_statistics(cell, xs, states, window)
    sig, dsigmoid, tanh = act.logistic, act.logistic_prime, np.tanh
    if cell.kind == "lstm":
        pre = gi + gh
        pi, pf, pg, po = np.split(pre, 4, axis=-1)
        c_prev = states[window.start : window.stop, :, n:]
        i, f, g, o = sig(pi), sig(pf), tanh(pg), sig(po)
        c = f * c_prev + i * g
        kappa = np.mean(o**2 * act.sech2(c) ** 2)
        through_c = (
            s2[0] * np.mean(g**2 * dsigmoid(pi) ** 2)
            + s2[1] * np.mean(c_prev**2 * dsigmoid(pf) ** 2)
            + s2[2] * np.mean(i**2 * act.sech2(pg) ** 2)
        )
        through_o = s2[3] * np.mean(np.tanh(c) ** 2 * dsigmoid(po) ** 2)
        phi_f = np.mean(f**2)
        # (A, C): per-unit squared cotangent of h and c; one step back maps them by M.
        M = np.array([[through_c * kappa + through_o, through_c], [phi_f * kappa, phi_f]])
        gain = spectral_radius(M)
        reason = (
            f"E[f^2] = {phi_f:.3g}, h-path gain {through_c * kappa + through_o:.3g}: "
            f"spectral radius of the 2x2 moment map = {gain:.4g}"
        )
    else:
        h_prev = states[window.start : window.stop]
        pr = gi[..., :n] + gh[..., :n]
        pz = gi[..., n : 2 * n] + gh[..., n : 2 * n]
        r, z = sig(pr), sig(pz)
        an = gi[..., 2 * n :] + r * gh[..., 2 * n :]
        nn = tanh(an)
        d_an = (1 - z) ** 2 * act.sech2(an) ** 2
        gain = float(
            np.mean(z**2)
            + s2[0] * np.mean(d_an * gh[..., 2 * n :] ** 2 * dsigmoid(pr) ** 2)
            + s2[1] * np.mean((h_prev - nn) ** 2 * dsigmoid(pz) ** 2)
            + s2[2] * np.mean(d_an * r**2)
        )
        reason = f"E[z^2] = {np.mean(z**2):.3g}: per-step squared gain {gain:.4g}"
    return verdict("gated mean-field", 0.5 * natural_log(gain), reason, tol)
