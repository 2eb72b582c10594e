"""Rates of gradient growth or decay: the regime a rate falls in, and the fit of a profile by lag."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core._validation import check_finite_float

NEUTRAL_TOL = 0.01  # nats/step: |rate| at or below this is "neutral"
MEMORY_DROP = 1e-3  # effective memory: the lag where the norm has fallen by this factor
MIN_FIT_LAGS = 3  # a rate is fitted through at least this many lags (two points leave no residual)


def regime_of(rate: float, tol: float = NEUTRAL_TOL) -> str:
    """``"vanishing"``, ``"exploding"`` or ``"neutral"`` (``|rate| <= tol``) for a rate in nats/step.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.regime_of(-0.1), gf.regime_of(0.005), gf.regime_of(0.005, tol=0.001)
    ('vanishing', 'neutral', 'exploding')
    """
    try:
        rate = float(rate)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rate must be a number; got {rate!r}") from exc
    tol = check_finite_float("tol", tol, minimum=0.0)
    if np.isnan(rate):
        raise ValueError("rate is NaN: no regime")
    if rate < -tol:
        return "vanishing"
    if rate > tol:
        return "exploding"
    return "neutral"


def regime_or_none(rate: float, tol: float = NEUTRAL_TOL) -> str | None:
    """`regime_of`, or None for a NaN rate (no verdict), for displays that must not raise."""
    return None if np.isnan(rate) else regime_of(rate, tol)


@dataclass(frozen=True)
class RateFit:
    """Least-squares line through a log-norm profile: ``log_norm ~ intercept + rate * lag``.

    ``zero_from`` is the first lag at which the gradient becomes exactly zero (log-norm
    ``-inf``: a dead ReLU, a saturated unit, a loss that ignores the state), or None.
    Zeros before the first non-zero lag are skipped, not a death: they belong to a part
    the loss does not read directly (a lower layer's state at lag 0).
    The line is fitted only through the lags before it, since a zero has no log-rate;
    when that leaves fewer than `MIN_FIT_LAGS` lags of the window, through every lag
    before it (the gradient died before the window: its rate while it lived), and with
    fewer than `MIN_FIT_LAGS` of those the rate is NaN (undetermined).

    Examples
    --------
    A linear cell with ``W = 0.5 * orthogonal`` halves every gradient each step: the line
    through ``ln ||g_k||`` has slope ``ln 0.5`` and fits exactly, over lags ``T // 10..T``.

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(16, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> fit = gf.gradient_flow(cell, gf.inputs.gaussian(40, 1, 2)).fit
    >>> bool(np.isclose(fit.rate, np.log(0.5))), round(fit.r2, 9), fit.lag_range, fit.zero_from
    (True, 1.0, (4, 40), None)
    """

    rate: float
    intercept: float
    stderr: float
    r2: float
    lag_range: tuple[int, int]
    zero_from: int | None = None


def fit_rate(lags: np.ndarray, profile: np.ndarray, start: int) -> RateFit:
    # Exact zeros before the first non-zero lag are structural, not a death: a part the loss
    # does not read directly (a lower layer's h at lag 0 under a readout of the top layer).
    alive = np.flatnonzero(~np.isneginf(profile))
    born = int(alive[0]) if alive.size else 0
    dead = born + np.flatnonzero(np.isneginf(profile[born:]))
    zero_from = int(lags[dead[0]]) if dead.size else None
    end = dead[0] if dead.size else len(lags)  # the profile is cut where the gradient becomes exactly 0
    x, y = lags[max(start, born) : end], profile[max(start, born) : end]
    if len(x) < MIN_FIT_LAGS and zero_from is not None:  # died before the window: fit what lived
        x, y = lags[born:end], profile[born:end]
    if len(x) < MIN_FIT_LAGS or not np.all(np.isfinite(y)):
        last = int(x[-1]) if len(x) else int(lags[start])
        return RateFit(np.nan, np.nan, np.nan, np.nan, (int(lags[start]), last), zero_from)
    xm, ym = x.mean(), y.mean()
    sxx = np.sum((x - xm) ** 2)
    slope = np.sum((x - xm) * (y - ym)) / sxx
    intercept = ym - slope * xm
    resid = y - intercept - slope * x
    sst = np.sum((y - ym) ** 2)
    r2 = 1.0 - np.sum(resid**2) / sst if sst > 0 else 1.0
    stderr = np.sqrt(np.sum(resid**2) / (len(x) - 2) / sxx) if len(x) > 2 else 0.0
    return RateFit(
        float(slope), float(intercept), float(stderr), float(r2), (int(x[0]), int(x[-1])), zero_from
    )


def mean_log_profile(log_norms: np.ndarray) -> np.ndarray:
    """Batch mean of log-norms (the log of the geometric mean); -inf if any sample is zero."""
    return np.mean(log_norms, axis=1)


def fit_profile(log_norms: np.ndarray, start: int) -> np.ndarray:
    """The batch-mean profile over the samples whose gradient stays non-zero in the fit window.

    One sample whose gradient is exactly zero would make the geometric mean -inf at
    every lag; the rate then describes the others. Only when every sample's gradient
    vanishes exactly is the rate -inf.
    """
    alive = np.all(np.isfinite(log_norms[start:]), axis=0)
    return mean_log_profile(log_norms[:, alive] if alive.any() else log_norms)
