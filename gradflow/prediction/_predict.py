"""Predict whether gradients vanish or explode, and how fast, without back-propagating through time.

A prediction may use the weights, the input statistics and a forward run (single-step
Jacobians, activation statistics); products of Jacobians along the trajectory are the
measurement (`gradient_flow`), never a prediction. Each predictor returns a regime (or
abstains), a rate in nats/step and the reason; `predict` gathers them and names the one
gradflow trusts for the cell (`Prediction.method`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.sparse.linalg import ArpackError, LinearOperator, eigs

from ..cells._cells import Cell
from ..cells._linearisation import linearisation, recurrent_matrix
from ..core import _activations as act
from ..core import _html
from ..core._options import progress_bar, resolve_progress
from ..core._threads import limited
from ..core._validation import check_finite_float, check_positive_int, check_seed
from ..engine._engine import (
    CHUNK_BYTES,
    block_products,
    cell_step_jacobians,
    check_cell,
    check_sequence,
    closed_form_kind,
    closed_form_terms,
    jacobian_products,
    unroll,
)
from ..measure._flow import MEMORY_DROP, NEUTRAL_TOL, GradientFlow, regime_of
from . import meanfield
from ._spectral import (
    derivative_bound,
    fixed_points,
    largest_singular_value,
    spectral_radius,
)


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


class Comparison(pd.DataFrame):
    """`compare`'s table: a pandas DataFrame (one row per predictor) that shows itself in Jupyter.

    ``attrs`` holds ``cell`` and ``tol``; frames derived from it (slices, copies) are plain DataFrames.

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
    >>> regime, bool(np.isclose(rate, np.log(0.5))), table.attrs["cell"]
    ('vanishing', True, 'rnn-linear')
    >>> int(table.correct.sum()), table.loc[~table.correct, ["method", "regime"]].values.tolist()
    (8, [['gated mean-field', 'inconclusive']])
    """

    @property
    def measured(self) -> tuple[str, float]:
        """The measured regime and rate (nats/step), the same in every row."""
        return str(self["measured_regime"].iloc[0]), float(self["measured_rate"].iloc[0])

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
        return _plot_rates(ax, self, self.attrs.get("tol", NEUTRAL_TOL), rate,
                           f"{self.attrs.get('cell', '')}: measured {regime}")

    def _repr_html_(self):
        if self.empty or not {"method", "regime", "rate", "correct", "rate_error", "trusted",
                              "measured_regime", "measured_rate"} <= set(self.columns):
            return super()._repr_html_()  # reshaped in place: show it as the DataFrame it is
        regime, rate = self.measured
        tol = self.attrs.get("tol", NEUTRAL_TOL)
        rows = [(r.method, _html.badge(None if r.regime == "inconclusive" else r.regime),
                 "✓" if r.correct else "✗", _html.number(r.rate), _html.number(r.rate_error))
                for r in self.itertuples()]
        right = int(self["correct"].sum())
        return _html.card(
            "Comparison", self.attrs.get("cell"), rows, regime=regime, bold=self["trusted"],
            header=("predictor", "predicted", "right", "rate (nats/step)", "error (nats/step)"),
            figure=_rate_strip(self, tol, rate),
            note=f"measured {regime} at {_html.number(rate)} nats/step (dashed); {right} of {len(self)} "
                 f"predictors name it; bold: trusted")


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
    if closed_form_kind(cell) is None:
        JQ = jacobian_products(cell, xs[window], Q, h0=states[window.start],
                               states=states[window.start : window.stop + 1])
        squared = float(np.mean(np.sum(JQ**2, axis=2)))
    else:
        # J_t = sum_k diag(e_tk) B_k, so ||J_t q||^2 summed over probes is
        # sum_{k,l,i} e_tki e_tli (B_k Q B_l Q^T)_ii: per-unit moments of e over the steps, and
        # K products B_k Q, instead of J_t Q at every step.
        bases, moments = _unit_moments(cell, xs, states, range(window.start, window.stop))
        Y = bases @ Q  # (K, S, probes)
        squared = float(np.sum(moments * np.einsum("kip,lip->kli", Y, Y)) / probes)
    # Ratio to the probes' own norms: exact for orthogonal J_t, lower variance everywhere.
    gain = squared / float(np.mean(np.sum(Q**2, axis=0)))
    return _verdict("local gain", 0.5 * _log(gain),
                    f"mean ||J_t q||^2 over {window.stop - window.start} steps and {probes} probes = "
                    f"{gain:.4g}", tol)


def _unit_moments(cell, xs, states, steps) -> tuple[np.ndarray, np.ndarray]:
    """`closed_form_terms`' bases (K, S, S), and ``mean_m e_mki e_mli`` over the rows of ``steps``
    (every batch row) as a (K, K, S) array, accumulated in chunks of steps."""
    S = cell.state_size
    steps = np.asarray(steps)
    B = xs.shape[1]
    chunk = max(1, CHUNK_BYTES // (8 * B * S * 8))  # the terms of ~8 bases per row
    total, bases = None, None
    for i in range(0, len(steps), chunk):
        t = steps[i : i + chunk]
        bases, scales = closed_form_terms(cell, states[t].reshape(-1, S), xs[t].reshape(len(t) * B, -1))
        part = np.einsum("mki,mli->kli", scales, scales)
        total = part if total is None else total + part
    return bases, total / (len(steps) * B)


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
    """The one-step moment map ``X -> mean_m J_m X J_m^T`` of a one-layer built-in cell from its
    Jacobians' structure, as a function of ``X``, or None for other cells.

    With ``J_m = sum_k diag(e_mk) B_k`` (`jacobian_terms`) the map is
    ``sum_{k,l} (B_k X B_l^T) * E_kl`` with ``E_kl = mean_m e_mk e_ml^T``: K^2 products per
    application instead of one per sampled step. The rows of each ``B_k`` repeat with the
    state's parts (an LSTM's h and c rows read the same ``W_hh`` rows, or are zero), so the
    products are taken over one part's ``n`` rows; ``B_k``'s zero columns and identity blocks
    are skipped (an LSTM: 28 n^3 multiplications instead of 200 n^3).
    """
    if closed_form_kind(cell) is None:
        return None
    S = cell.state_size
    t = _sampled_steps(window, rows)
    bases, scales = closed_form_terms(cell, states[t].reshape(-1, S), xs[t].reshape(len(t) * xs.shape[1], -1))
    m, K, _ = scales.shape
    n = S // 2 if S % 2 == 0 and all(
        np.array_equal(bases[k, S // 2 :], bases[k, : S // 2]) or not np.any(scales[:, k, S // 2 :])
        for k in range(K)) else S
    flat = scales.reshape(m, K * S)
    parts = S // n
    # E_kl[(p, u), (q, v)] as (p, q, k l, u v): the sum over k, l is then one contiguous reduction.
    moments = np.ascontiguousarray((flat.T @ flat / m).reshape(K, parts, n, K, parts, n)
                                   .transpose(1, 4, 0, 3, 2, 5)).reshape(parts, parts, K * K, n * n)
    blocks = [_column_block(bases[k, :n]) for k in range(K)]

    def second_moment(X):
        rows_ = [X[c] if G is None else G @ X[c] for c, G in blocks]  # B_k X on one part's rows
        Z = np.empty((K, K, n, n))
        for k in range(K):
            for l, (c, G) in enumerate(blocks):
                Z[k, l] = rows_[k][:, c] if G is None else rows_[k][:, c] @ G.T
        out = np.einsum("pqai,ai->pqi", moments, Z.reshape(K * K, n * n)).reshape(parts, parts, n, n)
        return out.transpose(0, 2, 1, 3).reshape(S, S)

    return second_moment


def _column_block(G: np.ndarray) -> tuple[slice, np.ndarray | None]:
    """The columns of ``G`` outside which it is zero, and ``G`` on them (None: the identity)."""
    cols = np.flatnonzero(np.any(G != 0, axis=0))
    block = slice(int(cols[0]), int(cols[-1]) + 1) if len(cols) else slice(0, G.shape[1])
    part = G[:, block]
    identity = part.shape[0] == part.shape[1] and np.array_equal(part, np.eye(part.shape[0]))
    return block, None if identity else np.ascontiguousarray(part)


# ARPACK's relative tolerance on rho(M): rates move by < 1e-7 nats/step against 1e-8 (measured at
# N = 128), with 20-40% fewer products.
ARPACK_TOL = 1e-6
# From this width the two-step map's products (the bulk of its cost) run in float32: half the
# time, rates within 1e-7 nats/step of float64 (sums and eigen-solvers stay in float64).
SINGLE_PRECISION_FROM = 97


@limited
def moment_map(cell, xs, states, window, rng, tol, rows: int = 48, span: int = 1, rank: int = 96,
               iterations: int = 60, exact_width: int = 128) -> PredictorResult:
    """Annealed second-moment growth when blocks of ``span`` steps are drawn independently.

    ``M(X) = mean_t P_t X P_t^T`` over sampled blocks ``P_t = J_{t+span-1} ... J_t``; the
    rate is ``ln rho(M) / (2 span)``, by Arnoldi (ARPACK) on ``X``, or power iteration on a
    rank-``rank`` factor of it for states wider than ``exact_width`` (except one step of a
    built-in cell, whose structure keeps ARPACK cheap at any width). With ``span = 1`` it
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
        Jp = J.astype(np.float32) if span > 1 and S >= SINGLE_PRECISION_FROM else J
        JT = np.swapaxes(Jp, 1, 2)

        def second_moment(X):  # M(X) = mean_t P_t X P_t^T
            return np.matmul(np.matmul(Jp, X.astype(Jp.dtype)), JT).mean(axis=0, dtype=float)

        def factor_moment(V):  # M(V V^T), and one (n S, S) x (S, rank) GEMM (einsum would not use BLAS)
            W = Jp.reshape(n * S, S) @ V.astype(Jp.dtype)
            W = W.reshape(n, S, -1).transpose(1, 0, 2).reshape(S, -1)
            return (W @ W.T).astype(float) / n
    else:
        second_moment = terms
        n = len(_sampled_steps(window, rows)) * xs.shape[1]

        def factor_moment(V):
            return second_moment(V @ V.T)

    logs: list[float] = []  # log growth per iteration (one value when ARPACK converged)
    # Every sampled block is zero (a dead ReLU net at rest): nothing survives.
    if not np.any(J if terms is None else second_moment(np.eye(S))):
        logs = [-np.inf]
    elif S * S <= 16:
        # Tiny states: M as its explicit (S^2, S^2) matrix, mean of J (x) J (ARPACK needs S^2 >= 3).
        M = np.mean([np.kron(P, P) for P in J], axis=0)
        top = float(np.max(np.abs(scipy.linalg.eigvals(M))))
        logs = [float(np.log(top))] if top > 0 else [-np.inf]
    elif S <= exact_width or terms is not None:
        # M is a completely positive map on S x S matrices: its spectral radius is a real
        # eigenvalue (Krein-Rutman), which Arnoldi (ARPACK) finds in a few dozen products
        # (for any width when the structure makes a product cheap).
        def apply(v):
            return second_moment(v.reshape(S, S)).reshape(-1)

        op = LinearOperator((S * S, S * S), matvec=apply, dtype=float)
        try:
            top = eigs(op, k=1, which="LM", v0=np.eye(S).reshape(-1), tol=ARPACK_TOL, maxiter=100,
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


def _one_layer_gated(cell: Cell) -> bool:
    return (cell.kind in ("lstm", "gru") and cell.config.get("layers", 1) == 1
            and not cell.config.get("proj_size") and cell.config.get("reset_after") is not False)


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
    if not _one_layer_gated(cell):
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


# ------------------------------------------------------------------ the registry

# What a predictor may need: a test of the context, and why it abstains when the test fails.
# "forward run" is different: without one (``input_std``) the predictor does not run at all.
NEEDS: dict[str, tuple[Callable[[PredictorContext], bool], str]] = {
    "weights": (lambda c: True, ""),
    "input statistics": (lambda c: True, ""),
    "forward run": (lambda c: c.xs is not None, "needs a forward run (xs)"),
    "vanilla cell": (lambda c: recurrent_matrix(c.cell) is not None, "needs a one-layer vanilla cell"),
    "gated cell": (lambda c: _one_layer_gated(c.cell), "needs a one-layer LSTM or GRU"),
}


@dataclass(frozen=True)
class Predictor:
    """A registered predictor: ``function(context) -> PredictorResult`` and what it reads.

    ``needs``: keys of `NEEDS`; ``cheap``: fast enough for an interactive redraw (the explorer).
    """

    name: str
    function: Callable[[PredictorContext], PredictorResult]
    needs: tuple[str, ...]
    cheap: bool

    def unmet(self, context: PredictorContext) -> str | None:
        """Why this predictor cannot answer for ``context`` (the first unmet need), else None."""
        for need in self.needs:
            test, reason = NEEDS[need]
            if not test(context):
                return reason
        return None


_REGISTRY: dict[str, Predictor] = {}


def predictor(name: str, *, needs: Iterable[str] = ("weights",), cheap: bool = False):
    """Register ``function(context: PredictorContext) -> PredictorResult`` as predictor ``name``.

    Predictors run, and tables list them, in the order they were registered.

    Examples
    --------
    >>> from gradflow._predict import predictor, predictors
    >>> predictors()[0].name, predictors()[0].needs
    ('eigenvalue rule', ('weights', 'input statistics'))
    """
    needs = tuple(needs)
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"unknown need {unknown[0]!r} for predictor {name!r}; needs are "
                         f"{', '.join(map(repr, NEEDS))}")
    if name in _REGISTRY:
        raise ValueError(f"a predictor named {name!r} is already registered")

    def register(function):
        _REGISTRY[name] = Predictor(name, function, needs, bool(cheap))
        return function

    return register


def predictors(*, cheap: bool | None = None) -> tuple[Predictor, ...]:
    """The registered predictors in table order; ``cheap=True``: only those an explorer redraw runs.

    Examples
    --------
    >>> import gradflow as gf
    >>> [p.name for p in gf.predictors(cheap=True)][:3]
    ['eigenvalue rule', 'pascanu bound', 'mean-field']
    """
    return tuple(p for p in _REGISTRY.values() if cheap is None or p.cheap == cheap)


def check_predictors(names) -> tuple[str, ...]:
    """``names`` as a tuple of registered predictor names (all when None), in table order."""
    if names is None:
        return tuple(_REGISTRY)
    if isinstance(names, str):
        names = (names,)
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"predictors must be a list of predictor names; got {type(names).__name__}") from None
    for name in names:
        if not isinstance(name, str) or name not in _REGISTRY:
            raise ValueError(f"unknown predictor {name!r}; registered: {', '.join(_REGISTRY)}")
    if not names:
        raise ValueError("predictors must name at least one predictor; registered: " + ", ".join(_REGISTRY))
    return tuple(n for n in _REGISTRY if n in names)


@dataclass
class PredictorContext:
    """Everything a predictor may read, built once per `predict` call.

    ``xs`` is None for a prediction from the weights and ``input_std`` alone. The forward
    run (``states``) and the fixed-point starts are computed when a predictor first reads
    them; predictors run in table order and share ``rng``, so the same seed gives the same
    numbers. ``options`` maps a predictor's name to keyword arguments of its function.
    """

    cell: Cell
    tol: float
    rng: np.random.Generator
    xs: np.ndarray | None = None
    h0: np.ndarray | None = None
    input_std: float = 0.0
    probes: int = 16
    fixed_point_starts: int = 4
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    eigenvalues: tuple[np.ndarray, str] | None = None  # of `linearisation` at x_mean, if known

    def option(self, name: str) -> dict[str, Any]:
        return dict(self.options.get(name, {}))

    @cached_property
    def states(self) -> np.ndarray:
        return unroll(self.cell, self.xs, self.h0)

    @property
    def window(self) -> slice:
        T = self.xs.shape[0]
        return slice(T // 10, T)  # the measured rate is fitted over lags T/10..T: same steps

    @cached_property
    def x_mean(self) -> np.ndarray:
        if self.xs is None:
            return np.zeros(self.cell.input_size)
        return self.xs.reshape(-1, self.xs.shape[2]).mean(axis=0)

    @cached_property
    def drive(self) -> float:
        """Mean squared input drive of a vanilla cell's units (mean-field's input variance)."""
        if self.xs is not None:
            return input_drive(self.cell, self.xs)
        U = self.cell.params.get("weight_ih_l0")
        return (self.input_std**2 * float(np.sum(U**2)) / U.shape[0]) if U is not None else 0.0

    @cached_property
    def starts(self) -> np.ndarray:
        """Fixed-point starts: the origin, then visited states (or uniform draws without a run)."""
        S = self.cell.state_size
        if self.xs is None:
            return np.vstack([np.zeros(S), self.rng.uniform(-1, 1, (self.fixed_point_starts, S))])
        T = self.xs.shape[0]
        pick = self.rng.choice(T + 1, size=min(self.fixed_point_starts, T + 1), replace=False)
        return np.vstack([np.zeros(S), self.states[pick, 0]])

    @cached_property
    def centre(self) -> np.ndarray:
        """Where the trajectory lives: the fixed point nearest it is the one that matters."""
        if self.xs is None:
            return np.zeros(self.cell.state_size)
        return self.states[self.window.start :].mean(axis=(0, 1))


@predictor("eigenvalue rule", needs=("weights", "input statistics"), cheap=True)
def _eigenvalue_rule(c: PredictorContext) -> PredictorResult:
    return eigenvalue_rule(c.cell, c.x_mean, c.tol, c.eigenvalues)


@predictor("pascanu bound", needs=("weights", "vanilla cell"), cheap=True)
def _pascanu_bound(c: PredictorContext) -> PredictorResult:
    return pascanu_bound(c.cell, c.tol)


@predictor("fixed point", needs=("weights", "input statistics"))
def _fixed_point(c: PredictorContext) -> PredictorResult:
    return fixed_point(c.cell, c.x_mean, c.starts, c.centre, c.tol)


@predictor("mean-field", needs=("weights", "input statistics", "vanilla cell"), cheap=True)
def _mean_field(c: PredictorContext) -> PredictorResult:
    return mean_field(c.cell, c.drive, c.tol)


@predictor("local gain", needs=("forward run",), cheap=True)
def _local_gain(c: PredictorContext) -> PredictorResult:
    return local_gain(c.cell, c.xs, c.states, c.window, c.probes, c.rng, c.tol, **c.option("local gain"))


@predictor("averaged jacobian", needs=("forward run",), cheap=True)
def _averaged_jacobian(c: PredictorContext) -> PredictorResult:
    return averaged_jacobian(c.cell, c.xs, c.states, c.window, c.tol, **c.option("averaged jacobian"))


@predictor("gated mean-field", needs=("forward run", "gated cell"), cheap=True)
def _gated_mean_field(c: PredictorContext) -> PredictorResult:
    return gated_mean_field(c.cell, c.xs, c.states, c.window, c.tol)


@predictor("moment map", needs=("forward run",))
def _moment_map(c: PredictorContext) -> PredictorResult:
    return moment_map(c.cell, c.xs, c.states, c.window, c.rng, c.tol, **c.option("moment map"))


@predictor("two-step moment map", needs=("forward run",))
def _two_step_moment_map(c: PredictorContext) -> PredictorResult:
    return moment_map(c.cell, c.xs, c.states, c.window, c.rng, c.tol,
                      **{"rows": 64, "span": 2, **c.option("two-step moment map")})


# The methods, in the order tables show them.
METHODS = tuple(_REGISTRY)
# Trusted when it answers, most accurate first (study ``predictor_accuracy``).
TRUST_ORDER = ("two-step moment map", "moment map", "mean-field", "eigenvalue rule")


def runnable(context: PredictorContext, names: Iterable[str]) -> tuple[str, ...]:
    """The named predictors that run for ``context``: those needing a forward run only with ``xs``."""
    return tuple(n for n in check_predictors(names)
                 if context.xs is not None or "forward run" not in _REGISTRY[n].needs)


def run_predictors(context: PredictorContext, names: Iterable[str], bar=None) -> tuple[PredictorResult, ...]:
    """The `runnable` named predictors' results, in table order (they share ``context.rng``); one
    whose cell need is unmet abstains with the reason. ``bar``: a progress bar, ticked per predictor."""
    results = []
    for name in runnable(context, names):
        entry = _REGISTRY[name]
        reason = entry.unmet(context)
        results.append(PredictorResult(name, None, np.nan, reason) if reason else entry.function(context))
        if bar is not None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)
    return tuple(results)


def _trusted(results: Iterable[PredictorResult]) -> str:
    """The predictor gradflow trusts: the most accurate one that ran (study ``predictor_accuracy``).

    With a forward run that is the two-step moment map: the one-step map contains the
    averaged Jacobian (constant J_t) and the local gain (isotropic disorder) as limits, and
    pairs of steps add the correlation between consecutive steps that decides chaotic and
    slowly gated cells near the neutral band. From the weights alone: mean-field theory for
    a vanilla cell, else the eigenvalue rule.
    """
    results = tuple(results)
    answered = [r.method for r in results if r.regime is not None]
    ran = [r.method for r in results]
    for method in TRUST_ORDER:
        if method in answered or (method == TRUST_ORDER[-1] and method in ran):
            return method
    return (answered or ran)[0]


def input_drive(cell: Cell, xs: np.ndarray) -> float:
    """Mean squared input drive ``(W_ih x)^2`` of a vanilla cell's units (mean-field's input variance)."""
    U = cell.params.get("weight_ih_l0")
    if U is None or cell.kind != "rnn":
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
    states = unroll(cell, xs, h0)
    window = slice(T // 10, T)  # the measured rate is fitted over lags T/10..T: same steps
    return states, window, xs.reshape(-1, xs.shape[2]).mean(axis=0), input_drive(cell, xs)


def prediction_context(cell: Cell, xs=None, *, input_std: float | None = None, h0=None,
                       tol: float = NEUTRAL_TOL, seed: int = 0, probes: int = 16,
                       fixed_point_starts: int = 4, forward: bool = True,
                       options: Mapping[str, Mapping[str, Any]] | None = None,
                       eigenvalues: tuple[np.ndarray, str] | None = None) -> PredictorContext:
    """`predict`'s arguments checked and gathered into the context its predictors read.

    ``forward``: whether a predictor that needs the forward run will run (``xs`` then needs
    two steps).
    """
    cell = check_cell(cell)
    tol = check_finite_float("tol", tol, minimum=0.0)
    probes = check_positive_int("probes", probes)
    fixed_point_starts = check_positive_int("fixed_point_starts", fixed_point_starts, minimum=0)
    rng = np.random.default_rng(check_seed(seed))
    if (xs is None) == (input_std is None):
        raise ValueError("give exactly one of xs (an input sequence) and input_std")
    common = dict(cell=cell, tol=tol, rng=rng, probes=probes, fixed_point_starts=fixed_point_starts,
                  options=dict(options or {}), eigenvalues=eigenvalues)
    if xs is None:
        input_std = check_finite_float("input_std", input_std, minimum=0.0)
        return PredictorContext(input_std=input_std, **common)
    xs, h0 = check_sequence(cell, xs, h0)
    T = xs.shape[0]
    if forward and T < 2:  # the two-step moment map needs a pair of consecutive steps
        raise ValueError(f"xs must have at least 2 steps for the forward-run predictors; got {T}")
    return PredictorContext(xs=xs, h0=h0, **common)


def predict(cell: Cell, xs=None, *, input_std: float | None = None, h0=None,
            tol: float = NEUTRAL_TOL, seed: int = 0, probes: int = 16,
            fixed_point_starts: int = 4, predictors: Iterable[str] | None = None,
            progress: bool | None = None) -> Prediction:
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
    h0 : array, shape (batch, state) or (state,), optional
        Initial state of the forward run; zeros by default.
    tol : float
        Rates within ``±tol`` nats/step are "neutral", as in `gradient_flow`.
    seed : int
        Seed of the random probes and fixed-point starts.
    probes : int
        Random directions of the local gain.
    fixed_point_starts : int
        Visited states (or random states, with ``input_std``) the fixed-point search starts
        from, besides the origin.
    predictors : list of str, optional
        Names of the predictors to run (default: all; `gradflow.predictors` lists them).
        With a subset the probes may be drawn differently, as predictors share one stream.
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
    names = check_predictors(predictors)
    forward = xs is not None and any("forward run" in _REGISTRY[n].needs for n in names)
    context = prediction_context(cell, xs, input_std=input_std, h0=h0, tol=tol, seed=seed, probes=probes,
                                 fixed_point_starts=fixed_point_starts, forward=forward)
    resolve_progress(progress)  # checked before any work
    todo = runnable(context, names)
    with progress_bar(len(todo), "predict", "predictor", progress) as bar:
        results = run_predictors(context, todo, bar)
    return Prediction(context.cell.name, results, _trusted(results), context.tol)


def compare(prediction: Prediction, flow: GradientFlow) -> pd.DataFrame:
    """Each predictor beside the measurement: regime, rate, error (nats/step), and whether right.

    Returns a `Comparison`: a DataFrame with a rich Jupyter display and ``plot()``.

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
    table = Comparison(frame[["method", "trusted", "regime", "measured_regime", "correct", "rate",
                              "measured_rate", "rate_error", "horizon", "reason"]])
    table.attrs.update(cell=prediction.cell_name, tol=prediction.tol)
    return table
