"""Predict whether gradients vanish or explode, and how fast, without back-propagating through time.

A prediction may use the weights, the input statistics and a forward run (single-step
Jacobians, activation statistics); products of Jacobians along the trajectory are the
measurement (`gradient_flow`), never a prediction. Each predictor returns a regime (or
abstains), a rate in nats/step and the reason; `predict` gathers them and names the one
gradflow trusts for the cell (`Prediction.method`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.sparse.linalg import ArpackError, LinearOperator, eigs

from ..cells._cells import Cell
from ..cells._linearisation import linearisation, recurrent_matrix
from ..core import FrameView, _html
from ..core import _activations as act
from ..core._options import progress_bar, resolve_progress
from ..core._registry import is_vanilla
from ..core._threads import limited
from ..core._validation import check_finite_float, check_positive_int, check_seed
from ..engine._engine import (
    block_products,
    cell_step_jacobians,
    check_cell,
    check_sequence,
    closed_form_kind,
    closed_form_terms,
    jacobian_products,
    unroll,
)
from ..measure._flow import GradientFlow
from ..measure._rates import MEMORY_DROP, NEUTRAL_TOL, regime_of
from . import meanfield
from ._spectral import (
    derivative_bound,
    fixed_points,
    largest_singular_value,
    spectral_radius,
)

# The methods, in the order tables show them.
METHODS = ("eigenvalue rule", "pascanu bound", "fixed point", "mean-field", "local gain",
           "averaged jacobian", "gated mean-field", "moment map", "two-step moment map")


@dataclass(frozen=True)
class PredictorResult:
    """One predictor's verdict. ``regime`` is None when the predictor abstains.

    Examples
    --------
    A linear cell with ``W = 0.5 * orthogonal``: the rate is ``ln 0.5``, so the norm falls
    by 1e-3 after ``ln 1e-3 / ln 0.5 = 9.97`` steps.

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> result = gf.predict(cell, input_std=1.0)["eigenvalue rule"]
    >>> result.regime, bool(np.isclose(result.rate, np.log(0.5))), round(result.horizon, 2)
    ('vanishing', True, 9.97)
    >>> result.reason
    'spectral radius of the recurrent matrix = 0.5'
    """

    method: str
    regime: str | None
    rate: float
    reason: str

    @property
    def horizon(self) -> float:
        """Predicted lag at which the gradient norm has fallen by 1e-3 (inf if it never does)."""
        if np.isnan(self.rate):
            return np.nan
        return np.inf if self.rate >= 0 else float(np.log(MEMORY_DROP) / self.rate)


@dataclass(frozen=True, repr=False)
class Prediction:
    """Every predictor's verdict for one cell and input, and gradflow's best estimate.

    ``regime``, ``rate`` and ``horizon`` are those of the trusted predictor ``method``.

    Examples
    --------
    From the weights alone (``input_std``), four predictors answer; on a linear cell with
    ``W = 0.5 * orthogonal`` all of them give ``ln 0.5`` nats/step:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> p = gf.predict(cell, input_std=1.0)
    >>> [r.method for r in p.results]
    ['eigenvalue rule', 'pascanu bound', 'fixed point', 'mean-field']
    >>> p.method, p.regime, bool(np.allclose([r.rate for r in p.results], np.log(0.5)))
    ('mean-field', 'vanishing', True)
    """

    cell_name: str
    results: tuple[PredictorResult, ...]
    method: str
    tol: float = NEUTRAL_TOL

    def __getitem__(self, method: str) -> PredictorResult:
        for r in self.results:
            if r.method == method:
                return r
        raise KeyError(f"no predictor {method!r}; have {', '.join(r.method for r in self.results)}")

    @property
    def best(self) -> PredictorResult:
        return self[self.method]

    @property
    def regime(self) -> str | None:
        return self.best.regime

    @property
    def rate(self) -> float:
        return self.best.rate

    @property
    def horizon(self) -> float:
        return self.best.horizon

    def to_frame(self) -> pd.DataFrame:
        """One row per predictor: ``method``, ``regime``, ``rate``, ``horizon``, ``trusted``, ``reason``.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> frame = gf.predict(cell, input_std=1.0).to_frame()
        >>> list(frame.columns)
        ['method', 'regime', 'rate', 'horizon', 'trusted', 'reason']
        >>> frame.loc[frame.trusted, "method"].tolist(), bool(np.allclose(frame.rate, np.log(0.5)))
        (['mean-field'], True)
        """
        return pd.DataFrame([dict(method=r.method, regime=r.regime or "inconclusive", rate=r.rate,
                                  horizon=r.horizon, trusted=r.method == self.method,
                                  reason=r.reason) for r in self.results])

    def plot(self, ax=None):
        """Each predictor's rate (nats/step), coloured by its regime, beside the neutral band.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> p = gf.predict(cell, input_std=1.0)
        >>> ax = p.plot(ax=Figure().subplots())
        >>> [label.get_text() for label in ax.get_yticklabels()]  # * marks the trusted predictor
        ['eigenvalue rule', 'pascanu bound', 'fixed point', 'mean-field *']
        >>> bool(np.allclose(ax.collections[0].get_offsets()[:, 0], p.to_frame().rate))
        True
        """
        return _plot_rates(ax, self.to_frame(), self.tol, None, f"{self.cell_name}: predicted rates")

    def __repr__(self):
        return (f"Prediction(cell={self.cell_name!r}, regime={self.regime!r}, rate={self.rate:+.4g} "
                f"nats/step, method={self.method!r}, predictors={len(self.results)})")

    def _repr_html_(self):
        frame = self.to_frame()
        rows = [(r.method, _html.badge(r.regime), _html.number(r.rate), _html.number(r.horizon, ".4g"),
                 r.reason) for r in self.results]
        return _html.card(
            "Prediction", self.cell_name, rows, regime=self.regime, bold=frame.trusted,
            header=("predictor", "regime", "rate (nats/step)", "horizon (steps)", "reason"),
            figure=_rate_strip(frame, self.tol),
            note=f"bold: the trusted predictor ({self.method}), {_html.number(self.rate)} nats/step; "
                 f"neutral band ±{self.tol:g} shaded")


@dataclass(frozen=True, repr=False, eq=False)
class Comparison(FrameView):
    """`compare`'s table (``frame``, one row per predictor), held for display as `SweepSummary` holds a
    sweep's: ``table[...]``, ``.loc``, ``len(table)``, ``table.rate`` read the frame (`FrameView`).

    Examples
    --------
    On a linear cell with ``W = 0.5 * orthogonal`` every predictor that answers is right; the
    gated mean-field (for gated cells) abstains:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> xs = gf.inputs.gaussian(60, 2, 2)
    >>> table = gf.compare(gf.predict(cell, xs), gf.gradient_flow(cell, xs))
    >>> regime, rate = table.measured
    >>> regime, bool(np.isclose(rate, np.log(0.5))), table.cell
    ('vanishing', True, 'rnn-linear')
    >>> int(table.correct.sum()), table.loc[~table.correct, ["method", "regime"]].values.tolist()
    (8, [['gated mean-field', 'inconclusive']])
    """

    frame: pd.DataFrame
    cell: str
    tol: float = NEUTRAL_TOL
    COLUMNS = ("method", "trusted", "regime", "measured_regime", "correct", "rate", "measured_rate",
               "rate_error", "horizon", "reason")  # compare's, in order (no annotation: not a field)

    @property
    def measured(self) -> tuple[str, float]:
        """The measured regime and rate (nats/step), the same in every row."""
        return str(self.frame["measured_regime"].iloc[0]), float(self.frame["measured_rate"].iloc[0])

    def plot(self, ax=None):
        """Each predictor's rate beside the measured rate (dashed line), coloured by predicted regime.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(8, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> xs = gf.inputs.gaussian(60, 2, 2)
        >>> table = gf.compare(gf.predict(cell, xs), gf.gradient_flow(cell, xs))
        >>> ax = table.plot(ax=Figure().subplots())
        >>> ax.get_title(), [line.get_label() for line in ax.get_lines()]
        ('rnn-linear: measured vanishing', ['measured -0.6931'])
        """
        regime, rate = self.measured
        return _plot_rates(ax, self.frame, self.tol, rate, f"{self.cell}: measured {regime}")

    def __repr__(self):
        return (f"Comparison(cell={self.cell!r}, measured={self.measured}, "
                f"right={int(self.frame['correct'].sum())} of {len(self.frame)} predictors)")

    def _repr_html_(self):
        frame = self.frame
        if frame.empty or not set(self.COLUMNS) <= set(frame.columns):
            return frame._repr_html_()  # reshaped in place: show it as the DataFrame it is
        regime, rate = self.measured
        rows = [(r.method, _html.badge(None if r.regime == "inconclusive" else r.regime),
                 "✓" if r.correct else "✗", _html.number(r.rate), _html.number(r.rate_error))
                for r in frame.itertuples()]
        return _html.card("Comparison", self.cell, rows, regime=regime, bold=frame["trusted"],
                          header=("predictor", "predicted", "right", "rate (nats/step)", "error (nats/step)"),
                          figure=_rate_strip(frame, self.tol, rate),
                          note=f"measured {regime} at {_html.number(rate)} nats/step (dashed); "
                               f"{frame['correct'].sum()} of {len(frame)} predictors name it; bold: trusted")


def _rate_strip(frame: pd.DataFrame, tol: float, measured: float | None = None) -> _html.Raw:
    """Inline SVG: one dot per predictor (top row first) at its rate, coloured by its regime."""
    series = [_html.Series(np.array([r.rate]), np.array([-i]), _html.REGIME_COLORS[r.regime], "dot",
                           [r.method], [f"{r.method}: {r.rate:+.4g} nats/step"])
              for i, r in enumerate(frame.itertuples())]
    return _html.chart(series, xlabel="rate (nats/step)", ylabel="predictors, table order", band=(-tol, tol),
                       vertical_band=True, vlines=[] if measured is None else [measured], yticks=False,
                       height=max(120, 40 + 13 * len(frame)))  # a row per name


def _plot_rates(ax, frame: pd.DataFrame, tol: float, measured: float | None, title: str):
    from ..core._plot import new_axes, regime_color

    ax = new_axes(ax, (5.5, 3.4))
    ax.axvspan(-tol, tol, color="0.85", label=f"neutral (±{tol:g})")
    y = np.arange(len(frame))
    finite = np.isfinite(frame.rate.to_numpy())
    ax.scatter(frame.rate[finite], y[finite], c=[regime_color(r) for r in frame.regime[finite]], zorder=3)
    if measured is not None and np.isfinite(measured):
        ax.axvline(measured, color="k", linestyle="--", label=f"measured {measured:+.4g}")
    ax.set_yticks(y, [f"{m}{' *' if t else ''}" for m, t in zip(frame.method, frame.trusted, strict=True)])
    ax.invert_yaxis()
    ax.set(xlabel="rate (nats/step)", title=title)
    ax.legend(loc="best", fontsize="small")
    return ax


def _verdict(method, rate, reason, tol):
    return PredictorResult(method, regime_of(rate, tol) if np.isfinite(rate) or rate == -np.inf
                           else None, float(rate), reason)


def _log(x: float) -> float:
    with np.errstate(divide="ignore"):
        return float(np.log(x))


# ------------------------------------------------------------------ weights only


@limited  # BLAS threads by gradflow's policy (_threads): one by default
def eigenvalue_rule(cell: Cell, x_mean: np.ndarray, tol: float,
                    eigenvalues: tuple[np.ndarray, str] | None = None) -> PredictorResult:
    """``eigenvalues``: those of `linearisation` at ``x_mean`` and its name, when already computed."""
    if eigenvalues is None:
        A, where = linearisation(cell, x_mean)  # gated, stacked or custom: the step at the origin
        rho = spectral_radius(A)
    else:
        rho, where = float(np.max(np.abs(eigenvalues[0]))), eigenvalues[1]
    return _verdict("eigenvalue rule", _log(rho), f"spectral radius of the {where} = {rho:.4g}", tol)


@limited
def pascanu_bound(cell: Cell, tol: float) -> PredictorResult:
    W, gamma = recurrent_matrix(cell), derivative_bound(cell)
    if W is None or gamma is None:
        return PredictorResult("pascanu bound", None, np.nan, "needs a one-layer vanilla cell")
    s1 = largest_singular_value(W)
    bound = _log(gamma * s1)  # ||J_t|| <= gamma * s1: an upper bound on the rate
    if s1 < 1.0 / gamma:
        return PredictorResult("pascanu bound", "vanishing", bound,
                               f"s1 = {s1:.4g} < 1/gamma = {1 / gamma:g}: vanishing certified, "
                               f"explosion impossible; rate <= {bound:+.4g}")
    return PredictorResult("pascanu bound", None, bound,
                           f"s1 = {s1:.4g} >= 1/gamma = {1 / gamma:g}: inconclusive, explosion "
                           f"possible; rate <= {bound:+.4g}")


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
    return _verdict("mean-field", rate,
                    f"sigma_w = {sigma_w:.4g}, bias var {bias_var:.3g}, input var "
                    f"{input_second_moment:.3g}: chi_1 = {np.exp(2 * rate):.4g}", tol)


@limited
def fixed_point(cell: Cell, x_mean: np.ndarray, starts: np.ndarray, centre: np.ndarray,
                tol: float) -> PredictorResult:
    points = fixed_points(cell, x_mean, starts)
    stable = [p for p in points if p.stable]
    if not stable:
        return PredictorResult("fixed point", None, np.nan,
                               f"{len(points)} fixed point(s), none stable: no decay predicted")
    near = min(stable, key=lambda p: np.linalg.norm(p.state - centre))
    rho = near.spectral_radius
    return _verdict("fixed point", _log(rho),
                    f"{len(points)} fixed point(s), {len(stable)} stable; slowest mode of the one "
                    f"nearest the trajectory |lambda| = {rho:.4g}", tol)


# ------------------------------------------------------------------ forward run


@limited
def local_gain(cell, xs, states, window, probes, rng, tol) -> PredictorResult:
    """Annealed growth of random directions: ``0.5 ln (mean_t ||J_t q||^2 / ||q||^2)``."""
    S = cell.state_size
    Q = rng.standard_normal((S, probes))
    JQ = jacobian_products(cell, xs[window], Q, h0=states[window.start],
                           states=states[window.start : window.stop + 1])
    # Ratio to the probes' own norms: exact for orthogonal J_t, lower variance everywhere.
    gain = float(np.mean(np.sum(JQ**2, axis=2)) / np.mean(np.sum(Q**2, axis=0)))
    return _verdict("local gain", 0.5 * _log(gain),
                    f"mean ||J_t q||^2 over {JQ.shape[0]} steps and {probes} probes = {gain:.4g}",
                    tol)


@limited
def averaged_jacobian(cell, xs, states, window, tol, rows: int = 64) -> PredictorResult:
    J = _sampled_jacobians(cell, xs, states, window, rows)
    rho = spectral_radius(J.mean(axis=0))
    return _verdict("averaged jacobian", _log(rho),
                    f"spectral radius of the mean of {len(J)} step Jacobians = {rho:.4g}", tol)


def _sampled_jacobians(cell, xs, states, window, rows: int, span: int = 1) -> np.ndarray:
    """Products of ``span`` consecutive step Jacobians starting at up to ``rows`` evenly spaced
    steps of the window (every sample): ``J_{t+span-1} ... J_t``, shape (rows * batch, S, S)."""
    S = cell.state_size
    t = _sampled_steps(window, rows, span)
    eye = np.broadcast_to(np.eye(S), (len(t) * xs.shape[1], S, S))
    P = eye
    closed = closed_form_kind(cell) is not None
    for j in range(span):
        h, x = states[t + j].reshape(-1, S), xs[t + j].reshape(len(t) * xs.shape[1], -1)
        if closed:  # J_t in closed form, then the product
            P = cell_step_jacobians(cell, h, x) if j == 0 else np.matmul(cell_step_jacobians(cell, h, x), P)
        else:
            P = block_products(cell, h, x, P if j else eye, "right")
    return P


def _sampled_steps(window, rows: int, span: int = 1) -> np.ndarray:
    """Up to ``rows`` evenly spaced first steps of blocks of ``span`` steps inside the window."""
    return np.unique(np.linspace(window.start, window.stop - span,
                                 min(rows, window.stop - window.start - span + 1)).astype(int))


def _moment_terms(cell, xs, states, window, rows: int):
    """The one-step moment map of a one-layer built-in cell from its Jacobians' structure.

    With ``J_m = sum_k diag(e_mk) B_k`` (`jacobian_terms`), ``mean_m J_m X J_m^T`` is
    ``sum_{k,l} (B_k X B_l^T) * E_kl`` with ``E_kl = mean_m e_mk e_ml^T``: K products per
    application instead of one per sampled step. Returns the stacked bases (K S, S) and
    ``E`` as a (K, S, K, S) array, or None for other cells.
    """
    if closed_form_kind(cell) is None:
        return None
    S = cell.state_size
    t = _sampled_steps(window, rows)
    bases, scales = closed_form_terms(cell, states[t].reshape(-1, S), xs[t].reshape(len(t) * xs.shape[1], -1))
    n, K, _ = scales.shape
    flat = scales.reshape(n, K * S)
    return bases.reshape(K * S, S), (flat.T @ flat / n).reshape(K, S, K, S)


def _terms_product(left: np.ndarray, right: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """``sum_{k,l} (L_k R_l^T) * E_kl`` for ``L``, ``R`` stacked (K S, r) and ``E`` (K, S, K, S)."""
    K, S = moments.shape[:2]
    return np.einsum("kslt,kslt->st", (left @ right.T).reshape(K, S, K, S), moments)


@limited
def moment_map(cell, xs, states, window, rng, tol, rows: int = 48, span: int = 1, rank: int = 96,
               iterations: int = 60) -> PredictorResult:
    """Annealed second-moment growth when blocks of ``span`` steps are drawn independently.

    ``M(X) = mean_t P_t X P_t^T`` over sampled blocks ``P_t = J_{t+span-1} ... J_t``; the
    rate is ``ln rho(M) / (2 span)``, by Arnoldi (ARPACK) on ``X``, or power iteration on a
    rank-``rank`` factor of it for states wider than ``rank``. With ``span = 1`` it
    reduces to the averaged Jacobian when J_t is constant and to the local gain for
    isotropic random J_t. ``span = 2`` keeps the correlation of consecutive steps (slowly
    moving gates, a chaotic state's local stretching direction) that independent single
    steps lose; blocks never grow with the sequence, so this stays a local statistic of
    the forward run, not the measured T-step product.
    """
    name = "moment map" if span == 1 else "two-step moment map"
    S = cell.state_size
    # One step of a built-in cell: M from the structure of J_t (same numbers, far fewer products).
    terms = _moment_terms(cell, xs, states, window, rows) if span == 1 and S * S > 16 else None
    if terms is None:
        J = _sampled_jacobians(cell, xs, states, window, rows, span)
        n = J.shape[0]
        JT = np.swapaxes(J, 1, 2)

        def second_moment(X):  # M(X) = mean_t P_t X P_t^T
            return np.matmul(np.matmul(J, X), JT).mean(axis=0)

        def factor_moment(V):  # M(V V^T), and one (n S, S) x (S, rank) GEMM (einsum would not use BLAS)
            W = (J.reshape(n * S, S) @ V).reshape(n, S, -1).transpose(1, 0, 2).reshape(S, -1) / np.sqrt(n)
            return W @ W.T
    else:
        bases, moments = terms
        n = len(_sampled_steps(window, rows)) * xs.shape[1]

        def second_moment(X):
            return _terms_product(bases @ X, bases, moments)

        def factor_moment(V):
            Y = bases @ V
            return _terms_product(Y, Y, moments)

    logs: list[float] = []  # log growth per iteration (one value when ARPACK converged)
    # Every sampled block is zero (a dead ReLU net at rest): nothing survives.
    if not np.any(J if terms is None else second_moment(np.eye(S))):
        logs = [-np.inf]
    elif S * S <= 16:
        # Tiny states: M as its explicit (S^2, S^2) matrix, mean of J (x) J (ARPACK needs S^2 >= 3).
        M = np.mean([np.kron(P, P) for P in J], axis=0)
        top = float(np.max(np.abs(scipy.linalg.eigvals(M))))
        logs = [float(np.log(top))] if top > 0 else [-np.inf]
    elif S <= rank:
        # M is a completely positive map on S x S matrices: its spectral radius is a real
        # eigenvalue (Krein-Rutman), which Arnoldi (ARPACK) finds in a few dozen products.
        def apply(v):
            return second_moment(v.reshape(S, S)).reshape(-1)

        op = LinearOperator((S * S, S * S), matvec=apply, dtype=float)
        try:
            top = eigs(op, k=1, which="LM", v0=np.eye(S).reshape(-1), tol=1e-8, maxiter=100,
                       return_eigenvectors=False)
            logs = [float(np.log(abs(top[0])))] if abs(top[0]) > 0 else [-np.inf]
        except ArpackError:  # no convergence, or a breakdown: the power iteration below decides
            logs = []
    if not logs:
        # Wide states: power iteration on a rank-limited factor X = V V^T. A complex dominant
        # pair makes the growth oscillate: the estimate is the mean over the second half.
        V = rng.standard_normal((S, rank))
        V /= np.sqrt(np.sum(V**2))
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
            if len(logs) > 2 and abs(logs[-1] - logs[-2]) < 1e-12:
                break
    growth = float(np.exp(np.mean(logs[len(logs) // 2 :])))
    what = "step Jacobians" if span == 1 else f"products of {span} consecutive step Jacobians"
    return _verdict(name, _log(growth) / (2 * span),
                    f"rho of the second-moment map over {n} sampled {what} = {growth:.4g} "
                    f"(treated as independent draws)", tol)


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
    if cell.kind not in ("lstm", "gru") or cell.config.get("layers", 1) != 1 or cell.config.get(
            "proj_size") or cell.config.get("reset_after") is False:
        return PredictorResult("gated mean-field", None, np.nan, "needs a one-layer LSTM or GRU")
    n, gi, gh, s2 = _gated_statistics(cell, xs, states, window)
    sig, dsigmoid, tanh = act.logistic, act.logistic_prime, np.tanh
    if cell.kind == "lstm":
        pre = gi + gh
        pi, pf, pg, po = np.split(pre, 4, axis=-1)
        c_prev = states[window.start : window.stop, :, n:]
        i, f, g, o = sig(pi), sig(pf), tanh(pg), sig(po)
        c = f * c_prev + i * g
        kappa = np.mean(o**2 * act.sech2(c) ** 2)
        through_c = (s2[0] * np.mean(g**2 * dsigmoid(pi) ** 2)
                     + s2[1] * np.mean(c_prev**2 * dsigmoid(pf) ** 2)
                     + s2[2] * np.mean(i**2 * act.sech2(pg) ** 2))
        through_o = s2[3] * np.mean(np.tanh(c) ** 2 * dsigmoid(po) ** 2)
        phi_f = np.mean(f**2)
        # (A, C): per-unit squared cotangent of h and c; one step back maps them by M.
        M = np.array([[through_c * kappa + through_o, through_c], [phi_f * kappa, phi_f]])
        gain = spectral_radius(M)
        reason = (f"E[f^2] = {phi_f:.3g}, h-path gain {through_c * kappa + through_o:.3g}: "
                  f"spectral radius of the 2x2 moment map = {gain:.4g}")
    else:
        h_prev = states[window.start : window.stop]
        pr = gi[..., :n] + gh[..., :n]
        pz = gi[..., n : 2 * n] + gh[..., n : 2 * n]
        r, z = sig(pr), sig(pz)
        an = gi[..., 2 * n :] + r * gh[..., 2 * n :]
        nn = tanh(an)
        d_an = (1 - z) ** 2 * act.sech2(an) ** 2
        gain = float(np.mean(z**2) + s2[0] * np.mean(d_an * gh[..., 2 * n :] ** 2 * dsigmoid(pr) ** 2)
                     + s2[1] * np.mean((h_prev - nn) ** 2 * dsigmoid(pz) ** 2)
                     + s2[2] * np.mean(d_an * r**2))
        reason = f"E[z^2] = {np.mean(z**2):.3g}: per-step squared gain {gain:.4g}"
    return _verdict("gated mean-field", 0.5 * _log(gain), reason, tol)


# ------------------------------------------------------------------ the verdict


def _trusted(answered: set[str]) -> str:
    """The predictor gradflow trusts: the most accurate one that ran (study ``predictor_accuracy``).

    With a forward run that is the two-step moment map: the one-step map contains the
    averaged Jacobian (constant J_t) and the local gain (isotropic disorder) as limits, and
    pairs of steps add the correlation between consecutive steps that decides chaotic and
    slowly gated cells near the neutral band. From the weights alone: mean-field theory for
    a vanilla cell, else the eigenvalue rule.
    """
    for method in ("two-step moment map", "moment map"):
        if method in answered:
            return method
    if "mean-field" in answered:
        return "mean-field"
    return "eigenvalue rule"


def input_drive(cell: Cell, xs: np.ndarray) -> float:
    """Mean squared input drive ``(W_ih x)^2`` of a vanilla cell's units (mean-field's input variance)."""
    U = cell.params.get("weight_ih_l0")
    if U is None or not is_vanilla(cell.kind):
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        drive = float(np.mean((xs @ U.T) ** 2))
    if not np.isfinite(drive):  # blame what the caller passed, not mean-field's input_var
        raise ValueError(f"xs is too large: its drive (W_ih x)^2 overflows float64 "
                         f"(max |x| = {np.max(np.abs(xs)):.3g})")
    return drive


@limited
def forward_run(cell: Cell, xs: np.ndarray, h0: np.ndarray):
    """What the forward-run predictors share: states, the steps they average over, mean input, drive."""
    T = xs.shape[0]
    states = unroll(cell, xs, h0=h0)
    window = slice(T // 10, T)  # the measured rate is fitted over lags T/10..T: same steps
    return states, window, xs.reshape(-1, xs.shape[2]).mean(axis=0), input_drive(cell, xs)


def predict(cell: Cell, xs=None, *, input_std: float | None = None, h0=None,
            tol: float = NEUTRAL_TOL, seed: int = 0, probes: int = 16,
            fixed_point_starts: int = 4, progress: bool | None = None) -> Prediction:
    """Every predictor's regime and rate, and gradflow's best estimate.

    Parameters
    ----------
    cell : Cell
    xs : array, shape (T, batch, inputs), optional
        Inputs: their statistics feed the predictors, and a forward run gives
        activation statistics and single-step Jacobians.
    input_std : float, optional
        Instead of ``xs``: i.i.d. inputs of this standard deviation; then only the
        weights-based predictors run.
    tol : float
        Rates within ``±tol`` nats/step are "neutral", as in `gradient_flow`.
    seed : int
        Seed of the random probes and fixed-point starts.
    progress : bool, optional
        A progress bar, one tick per predictor (default: ``gf.options().progress``; it appears
        once the call has taken a second).

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.rnn(64, 4, gain=2.0, seed=0)
    >>> p = gf.predict(cell, gf.inputs.gaussian(300, 2, 4, scale=2.0))
    >>> p["eigenvalue rule"].regime, p.method, p.regime
    ('exploding', 'two-step moment map', 'vanishing')
    """
    cell = check_cell(cell)
    tol = check_finite_float("tol", tol, minimum=0.0)
    resolve_progress(progress)  # checked before any work
    probes = check_positive_int("probes", probes)
    fixed_point_starts = check_positive_int("fixed_point_starts", fixed_point_starts, minimum=0)
    rng = np.random.default_rng(check_seed(seed))
    if (xs is None) == (input_std is None):
        raise ValueError("give exactly one of xs (an input sequence) and input_std")
    if xs is None:
        input_std = check_finite_float("input_std", input_std, minimum=0.0)
        x_mean = np.zeros(cell.input_size)
        U = cell.params.get("weight_ih_l0")
        drive = (input_std**2 * float(np.sum(U**2)) / U.shape[0]) if U is not None else 0.0
        starts = np.vstack([np.zeros(cell.state_size),
                            rng.uniform(-1, 1, (fixed_point_starts, cell.state_size))])
        calls = [lambda: eigenvalue_rule(cell, x_mean, tol), lambda: pascanu_bound(cell, tol),
                 lambda: fixed_point(cell, x_mean, starts, np.zeros(cell.state_size), tol),
                 lambda: mean_field(cell, drive, tol)]
    else:
        xs, h0 = check_sequence(cell, xs, h0)
        T = xs.shape[0]
        if T < 2:  # the two-step moment map needs a pair of consecutive steps
            raise ValueError(f"xs must have at least 2 steps for the forward-run predictors; got {T}")
        states, window, x_mean, drive = forward_run(cell, xs, h0)
        pick = rng.choice(T + 1, size=min(fixed_point_starts, T + 1), replace=False)
        starts = np.vstack([np.zeros(cell.state_size), states[pick, 0]])
        centre = states[window.start :].mean(axis=(0, 1))
        calls = [lambda: eigenvalue_rule(cell, x_mean, tol), lambda: pascanu_bound(cell, tol),
                 lambda: fixed_point(cell, x_mean, starts, centre, tol), lambda: mean_field(cell, drive, tol),
                 lambda: local_gain(cell, xs, states, window, probes, rng, tol),
                 lambda: averaged_jacobian(cell, xs, states, window, tol),
                 lambda: gated_mean_field(cell, xs, states, window, tol),
                 lambda: moment_map(cell, xs, states, window, rng, tol),
                 lambda: moment_map(cell, xs, states, window, rng, tol, rows=64, span=2)]
    results = []
    with progress_bar(len(calls), "predict", "predictor", progress) as bar:
        for call in calls:  # in order: they share `rng`
            results.append(call())
            bar.set_postfix_str(results[-1].method, refresh=False)
            bar.update(1)
    answered = {r.method for r in results if r.regime is not None}
    return Prediction(cell.name, tuple(results), _trusted(answered), tol)


def compare(prediction: Prediction, flow: GradientFlow) -> Comparison:
    """Each predictor beside the measurement, as a `Comparison`: regime, rate, error (nats/step), right.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.rnn(32, 4, gain=0.5, seed=0)
    >>> xs = gf.inputs.gaussian(200, 2, 4)
    >>> table = gf.compare(gf.predict(cell, xs), gf.gradient_flow(cell, xs))
    >>> bool(table.loc[table.trusted, "correct"].iloc[0])
    True
    """
    if not isinstance(prediction, Prediction) or not isinstance(flow, GradientFlow):
        raise ValueError("compare takes a Prediction (gf.predict) and a GradientFlow (gf.gradient_flow)")
    if prediction.cell_name != flow.cell_name:
        raise ValueError(f"compare needs the prediction and the measurement of one cell; got a "
                         f"prediction for {prediction.cell_name!r} and a measurement of {flow.cell_name!r}")
    frame = prediction.to_frame()
    frame["measured_regime"] = flow.regime
    frame["measured_rate"] = flow.rate
    frame["rate_error"] = frame.rate - flow.rate
    frame["correct"] = frame.regime == flow.regime
    return Comparison(frame[list(Comparison.COLUMNS)], prediction.cell_name, prediction.tol)
