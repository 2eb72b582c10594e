"""Predict whether gradients vanish or explode, and how fast, without back-propagating through time.

A prediction may use the weights, the input statistics and a forward run (single-step
Jacobians, activation statistics); products of Jacobians along the trajectory are the
measurement (`gradient_flow`), never a prediction. Each predictor returns a regime (or
abstains), a rate in nats/step and the reason; `predict` gathers them and names the one
gradflow trusts for the cell (`Prediction.method`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..cells._cells import Cell
from ..core._options import progress_bar, resolve_progress
from ..core._threads import limited
from ..core._validation import check_finite_float, check_positive_int, check_seed
from ..engine._engine import check_cell, check_sequence, unroll
from ..engine._scan import diagonal_rate
from ..measure._flow import GradientFlow
from ..measure._rates import NEUTRAL_TOL
from ._analytic import eigenvalue_rule, fixed_point, gated_mean_field, mean_field, pascanu_bound
from ._moments import averaged_jacobian, local_gain, moment_map
from ._registry import PredictorContext, check_predictors, input_drive, predictor, run_predictors, runnable
from ._registry import predictors as registered
from ._results import Comparison, Prediction, PredictorResult, verdict

# ------------------------------------------------------------------ the registry


@predictor("eigenvalue rule", needs=("weights", "input statistics"), cheap=True)
def _eigenvalue_rule(c: PredictorContext) -> PredictorResult:
    return eigenvalue_rule(c.cell, c.x_mean, c.tol, c.eigenvalues, c.known_eigenvalues)


@predictor("pascanu bound", needs=("weights", "vanilla cell"), cheap=True)
def _pascanu_bound(c: PredictorContext) -> PredictorResult:
    return pascanu_bound(c.cell, c.tol)


@predictor("fixed point", needs=("weights", "input statistics"))
def _fixed_point(c: PredictorContext) -> PredictorResult:
    return fixed_point(c.cell, c.x_mean, c.starts, c.centre, c.tol, c.known_eigenvalues)


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


@predictor("diagonal recurrence", needs=("forward run", "linear cell"), cheap=True)
def _diagonal_recurrence(c: PredictorContext) -> PredictorResult:
    # Exact, not a model: h_t = a_t h_{t-1} + b_t multiplies each unit's gradient by a_t.
    rate = diagonal_rate(c.cell, c.xs, h0=c.h0)
    return verdict(
        "diagonal recurrence",
        rate,
        "exact: the slowest unit's mean log|a_t| (h_t = a_t h_{t-1} + b_t)",
        c.tol,
    )


# On request only: right no more often than the one-step map over every window step, at 2-24x
# its cost (`_trusted`).
@predictor("two-step moment map", needs=("forward run",), default=False)
def _two_step_moment_map(c: PredictorContext) -> PredictorResult:
    return moment_map(
        c.cell,
        c.xs,
        c.states,
        c.window,
        c.rng,
        c.tol,
        **{"rows": 64, "span": 2, **c.option("two-step moment map")},
    )


# The methods, in the order tables show them (those registered on request included).
METHODS = tuple(p.name for p in registered())
# Trusted when it answers, most accurate first (study ``predictor_accuracy``).
# The diagonal recurrence's rate is exact: first wherever it answers (a cell linear in its state).
TRUST_ORDER = ("diagonal recurrence", "moment map", "two-step moment map", "mean-field", "eigenvalue rule")


def _trusted(results: Iterable[PredictorResult]) -> str:
    """The predictor gradflow trusts: the most accurate one that ran (study ``predictor_accuracy``).

    With a forward run that is the moment map over every step of the window: it contains the
    averaged Jacobian (constant J_t) and the local gain (isotropic disorder) as limits. The
    two-step map (on request) adds the correlation of consecutive steps, but on both accuracy
    grids it was right no more often (537 networks at N = 16: 480 against 475; 354 at N = 64,
    T = 600: 335 against 336; McNemar p = 0.18 and 1.0), its rates were further off (median
    0.059 and 0.025 nats/step against 0.054 and 0.022), and it cost 2-24x the CPU. From the
    weights alone: mean-field theory for a vanilla cell, else the eigenvalue rule.
    """
    results = tuple(results)
    answered = [r.method for r in results if r.regime is not None]
    ran = [r.method for r in results]
    for method in TRUST_ORDER:
        if method in answered or (method == TRUST_ORDER[-1] and method in ran):
            return method
    return (answered or ran)[0]


@limited
def forward_run(cell: Cell, xs: np.ndarray, h0: np.ndarray):
    """What the forward-run predictors share: states, the steps they average over, mean input, drive."""
    T = xs.shape[0]
    states = unroll(cell, xs, h0=h0)
    window = slice(T // 10, T)  # the measured rate is fitted over lags T/10..T: same steps
    return states, window, xs.reshape(-1, xs.shape[2]).mean(axis=0), input_drive(cell, xs)


def prediction_context(
    cell: Cell,
    xs=None,
    *,
    input_std: float | None = None,
    h0=None,
    tol: float = NEUTRAL_TOL,
    seed: int = 0,
    probes: int = 16,
    fixed_point_starts: int = 4,
    forward: bool = True,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    eigenvalues: tuple[np.ndarray, str] | None = None,
) -> PredictorContext:
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
    common: dict[str, Any] = dict(
        cell=cell,
        tol=tol,
        rng=rng,
        probes=probes,
        fixed_point_starts=fixed_point_starts,
        options=dict(options or {}),
        eigenvalues=eigenvalues,
    )
    if xs is None:
        input_std = check_finite_float("input_std", input_std, minimum=0.0)
        return PredictorContext(input_std=input_std, **common)
    xs, h0 = check_sequence(cell, xs, h0)
    T = xs.shape[0]
    if forward and T < 2:  # the two-step moment map needs a pair of consecutive steps
        raise ValueError(f"xs must have at least 2 steps for the forward-run predictors; got {T}")
    return PredictorContext(xs=xs, h0=h0, **common)


def predict(
    cell: Cell,
    xs=None,
    *,
    input_std: float | None = None,
    h0=None,
    tol: float = NEUTRAL_TOL,
    seed: int = 0,
    probes: int = 16,
    fixed_point_starts: int = 4,
    predictors: Iterable[str] | None = None,
    progress: bool | None = None,
) -> Prediction:
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
        Names of the predictors to run (default: every one registered to run by default, which
        is all but the two-step moment map; `gradflow.predictors` lists them).
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
    ('exploding', 'moment map', 'vanishing')
    """
    names = check_predictors(predictors)
    entries = {p.name: p for p in registered()}
    forward = xs is not None and any("forward run" in entries[n].needs for n in names)
    context = prediction_context(
        cell,
        xs,
        input_std=input_std,
        h0=h0,
        tol=tol,
        seed=seed,
        probes=probes,
        fixed_point_starts=fixed_point_starts,
        forward=forward,
    )
    resolve_progress(progress)  # checked before any work
    todo = runnable(context, names)
    with progress_bar(len(todo), "predict", "predictor", progress) as bar:
        results = run_predictors(context, todo, bar)
    return Prediction(context.cell.name, results, _trusted(results), context.tol)


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
        raise ValueError(
            f"compare needs the prediction and the measurement of one cell; got a "
            f"prediction for {prediction.cell_name!r} and a measurement of {flow.cell_name!r}"
        )
    frame = prediction.to_frame()
    frame["measured_regime"] = flow.regime
    frame["measured_rate"] = flow.rate
    frame["rate_error"] = frame.rate - flow.rate
    frame["correct"] = frame.regime == flow.regime
    return Comparison(frame[list(Comparison.COLUMNS)], prediction.cell_name, prediction.tol)
