"""What `predict` returns: each predictor's verdict (`PredictorResult`), every verdict with the
one gradflow trusts (`Prediction`), and `compare`'s table beside a measurement (`Comparison`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import FrameView, _html
from ..measure._rates import MEMORY_DROP, NEUTRAL_TOL, regime_of


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
        return pd.DataFrame(
            [
                dict(
                    method=r.method,
                    regime=r.regime or "inconclusive",
                    rate=r.rate,
                    horizon=r.horizon,
                    trusted=r.method == self.method,
                    reason=r.reason,
                )
                for r in self.results
            ]
        )

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
        return (
            f"Prediction(cell={self.cell_name!r}, regime={self.regime!r}, rate={self.rate:+.4g} "
            f"nats/step, method={self.method!r}, predictors={len(self.results)})"
        )

    def _repr_html_(self):
        frame = self.to_frame()
        rows = [
            (r.method, _html.badge(r.regime), _html.number(r.rate), _html.number(r.horizon, ".4g"), r.reason)
            for r in self.results
        ]
        return _html.card(
            "Prediction",
            self.cell_name,
            rows,
            regime=self.regime,
            bold=frame.trusted,
            header=("predictor", "regime", "rate (nats/step)", "horizon (steps)", "reason"),
            figure=_rate_strip(frame, self.tol),
            note=f"bold: the trusted predictor ({self.method}), {_html.number(self.rate)} nats/step; "
            f"neutral band ±{self.tol:g} shaded",
        )


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
    (7, [['gated mean-field', 'inconclusive'], ['diagonal recurrence', 'inconclusive']])
    """

    frame: pd.DataFrame
    cell: str
    tol: float = NEUTRAL_TOL
    COLUMNS = (
        "method",
        "trusted",
        "regime",
        "measured_regime",
        "correct",
        "rate",
        "measured_rate",
        "rate_error",
        "horizon",
        "reason",
    )  # compare's, in order (no annotation: not a field)

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
        return (
            f"Comparison(cell={self.cell!r}, measured={self.measured}, "
            f"right={int(self.frame['correct'].sum())} of {len(self.frame)} predictors)"
        )

    def _repr_html_(self):
        frame = self.frame
        if frame.empty or not set(self.COLUMNS) <= set(frame.columns):
            return frame._repr_html_()  # reshaped in place: show it as the DataFrame it is
        regime, rate = self.measured
        rows = [
            (
                r.method,
                _html.badge(None if r.regime == "inconclusive" else r.regime),
                "✓" if r.correct else "✗",
                _html.number(r.rate),
                _html.number(r.rate_error),
            )
            for r in frame.itertuples()
        ]
        return _html.card(
            "Comparison",
            self.cell,
            rows,
            regime=regime,
            bold=frame["trusted"],
            header=("predictor", "predicted", "right", "rate (nats/step)", "error (nats/step)"),
            figure=_rate_strip(frame, self.tol, rate),
            note=f"measured {regime} at {_html.number(rate)} nats/step (dashed); "
            f"{frame['correct'].sum()} of {len(frame)} predictors name it; bold: trusted",
        )


def _rate_strip(frame: pd.DataFrame, tol: float, measured: float | None = None) -> _html.Raw:
    """Inline SVG: one dot per predictor (top row first) at its rate, coloured by its regime."""
    series = [
        _html.Series(
            np.array([r.rate]),
            np.array([-i]),
            _html.REGIME_COLORS[r.regime],
            "dot",
            [r.method],
            [f"{r.method}: {r.rate:+.4g} nats/step"],
        )
        for i, r in enumerate(frame.itertuples())
    ]
    return _html.chart(
        series,
        xlabel="rate (nats/step)",
        ylabel="predictors, table order",
        band=(-tol, tol),
        vertical_band=True,
        vlines=[] if measured is None else [measured],
        yticks=False,
        height=max(120, 40 + 13 * len(frame)),
    )  # a row per name


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


def verdict(method: str, rate: float, reason: str, tol: float) -> PredictorResult:
    """A `PredictorResult` whose regime follows from ``rate`` (None when the rate is NaN)."""
    return PredictorResult(
        method, regime_of(rate, tol) if np.isfinite(rate) or rate == -np.inf else None, float(rate), reason
    )


def natural_log(x: float) -> float:
    """``ln x``, ``-inf`` at 0 without a warning."""
    with np.errstate(divide="ignore"):
        return float(np.log(x))
