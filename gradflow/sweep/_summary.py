"""A sweep's DataFrame at a glance: what varied, what was measured, how the predictors did.

`run` returns a plain DataFrame (analyses index and group it); `summary` wraps one for
display without changing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import _html
from ..measure._rates import NEUTRAL_TOL
from ..prediction._predict import METHODS
from ._task import rate_column

REGIMES = ("vanishing", "neutral", "exploding")
PREDICTOR_NAMES = {rate_column(m): m for m in METHODS}  # "rate_mean_field" -> "mean-field"


@dataclass(frozen=True, repr=False)
class SweepSummary:
    """What `summary` reports about a sweep's frame.

    Attributes
    ----------
    frame : pandas.DataFrame
        The sweep's frame itself (not a copy).
    varied : list of str
        Grid parameters that take more than one value (``seed`` excluded).
    counts : dict
        ``frame.attrs["sweep"]``: points, cached, computed, failed (empty if absent).

    Examples
    --------
    The mean-field rates miss the measured ones by 0.01, 0.09, 0.1 and 0.2: 0.1 on average.

    >>> import pandas as pd
    >>> from gradflow import sweep
    >>> frame = pd.DataFrame({"gain": [0.5, 0.5, 2.0, 2.0], "seed": [0, 1, 0, 1],
    ...                       "measured_rate": [-0.7, -0.6, 0.2, 0.3],
    ...                       "rate_mean_field": [-0.69, -0.69, 0.1, 0.1],
    ...                       "measured_regime": ["vanishing"] * 2 + ["exploding"] * 2,
    ...                       "error": [""] * 4})
    >>> s = sweep.summary(frame)
    >>> s.varied, s.regimes, s.to_frame() is frame
    (['gain'], {'vanishing': 2, 'exploding': 2}, True)
    >>> s.rate_errors.round(12).to_dict()
    {'mean-field': 0.1}
    """

    frame: pd.DataFrame
    varied: list[str]
    counts: dict

    @property
    def regimes(self) -> dict[str, int]:
        """Points per measured regime (``measured_regime`` column; empty without it)."""
        if "measured_regime" not in self.frame:
            return {}
        found = self.frame["measured_regime"].dropna()
        found = found[found != ""]
        return {r: int((found == r).sum()) for r in REGIMES if (found == r).any()}

    @property
    def rate_errors(self) -> pd.Series:
        """Mean absolute error (nats/step) of every ``rate_<predictor>`` column against
        ``measured_rate``, over the points where both are finite; indexed by the predictor's name
        as the tables spell it (``"mean-field"`` for ``rate_mean_field``)."""
        if "measured_rate" not in self.frame:
            return pd.Series(dtype=float)
        measured = self.frame["measured_rate"].to_numpy(dtype=float)
        out = {}
        for col in self.frame.columns:
            if col.startswith("rate_"):
                predicted = self.frame[col].to_numpy(dtype=float)
                ok = np.isfinite(predicted) & np.isfinite(measured)
                name = PREDICTOR_NAMES.get(col, col[len("rate_") :])
                out[name] = float(np.mean(np.abs(predicted[ok] - measured[ok]))) if ok.any() else np.nan
        return pd.Series(out, dtype=float, name="mean |rate error| (nats/step)")

    def to_frame(self) -> pd.DataFrame:
        """The sweep's frame itself, unchanged (not a copy).

        Examples
        --------
        >>> import pandas as pd
        >>> from gradflow import sweep
        >>> frame = pd.DataFrame({"gain": [0.5, 2.0], "seed": [0, 0], "measured_rate": [-0.7, 0.2]})
        >>> sweep.summary(frame).to_frame() is frame
        True
        """
        return self.frame

    def _x(self) -> str | None:
        numeric = [c for c in self.varied if pd.api.types.is_numeric_dtype(self.frame[c])]
        return numeric[0] if numeric else None

    def plot(self, ax=None):
        """``measured_rate`` against the first varied numeric parameter, one line per value of the
        next varied parameter, beside the neutral band.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import pandas as pd
        >>> from gradflow import sweep
        >>> frame = pd.DataFrame({"gain": [0.5, 0.5, 2.0, 2.0], "seed": [0, 1, 0, 1],
        ...                       "measured_rate": [-0.7, -0.6, 0.2, 0.3],
        ...                       "rate_mean_field": [-0.69, -0.69, 0.1, 0.1],
        ...                       "measured_regime": ["vanishing"] * 2 + ["exploding"] * 2,
        ...                       "error": [""] * 4})
        >>> ax = sweep.summary(frame).plot(ax=Figure().subplots())
        >>> line = ax.get_lines()[0]  # the mean over seeds at each gain
        >>> ax.get_title(), line.get_xdata().tolist(), line.get_ydata().round(12).tolist()
        ('sweep: 4 points', [0.5, 2.0], [-0.65, 0.25])
        """
        import seaborn as sns

        from ..core._plot import new_axes

        x = self._x()
        if x is None or "measured_rate" not in self.frame:
            raise ValueError("plot needs a measured_rate column and a numeric parameter that varies")
        ax = new_axes(ax)
        hue = next((c for c in self.varied if c != x), None)
        ok = self.frame[np.isfinite(self.frame["measured_rate"].to_numpy(dtype=float))]
        ax.axhspan(-NEUTRAL_TOL, NEUTRAL_TOL, color="0.85", label="neutral band")
        sns.lineplot(data=ok, x=x, y="measured_rate", hue=hue, marker="o", errorbar=("pi", 100), ax=ax)
        ax.set(ylabel="measured rate (nats/step)", title=f"sweep: {len(self.frame)} points")
        return ax

    def _summary(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [("rows", str(len(self.frame)))]
        if self.counts:
            rows.append(
                (
                    "points: cached, computed, failed",
                    f"{self.counts.get('cached', 0)}, {self.counts.get('computed', 0)}, "
                    f"{self.counts.get('failed', 0)}",
                )
            )
        varied = ", ".join(f"{c} ({self.frame[c].nunique()})" for c in self.varied)
        rows.append(("varied", varied or "nothing"))
        if "seed" in self.frame:
            rows.append(("seeds", str(self.frame["seed"].nunique())))
        if self.regimes:
            rows.append(
                (
                    "measured regimes",
                    _html.Raw(" ".join(_html.badge(r, f"{r} {n}") for r, n in self.regimes.items())),
                )
            )
        if "measured_rate" in self.frame:
            rate = self.frame["measured_rate"].to_numpy(dtype=float)
            rate = rate[np.isfinite(rate)]
            if rate.size:
                rows.append(("measured rate", f"{rate.min():+.4g} to {rate.max():+.4g} nats/step"))
        if "predicted_regime" in self.frame and "measured_regime" in self.frame:
            right = int((self.frame["predicted_regime"] == self.frame["measured_regime"]).sum())
            rows.append(("trusted predictor right", f"{right} of {len(self.frame)}"))
        errors = self.rate_errors.dropna()
        if len(errors):
            best = errors.idxmin()
            rows.append(("closest predictor", f"{best}: mean |error| {errors[best]:.3g} nats/step"))
        return rows

    def __repr__(self) -> str:
        regimes = ", ".join(f"{r} {n}" for r, n in self.regimes.items())
        return (
            f"SweepSummary(rows={len(self.frame)}, failed={self.counts.get('failed', 0)}, "
            f"varied={self.varied}{', measured: ' + regimes if regimes else ''})"
        )

    def _repr_html_(self) -> str:
        x = self._x()
        figure = None
        if x is not None and "measured_rate" in self.frame:
            regimes = self.frame.get("measured_regime", pd.Series([""] * len(self.frame)))
            series = [
                _html.Series(
                    self.frame[x].to_numpy(dtype=float)[m],
                    self.frame["measured_rate"].to_numpy(dtype=float)[m],
                    _html.REGIME_COLORS[r],
                    "dot",
                )
                for r in REGIMES
                if (m := (regimes == r).to_numpy()).any()
            ]
            figure = _html.chart(
                series, xlabel=x, ylabel="measured rate", hlines=[0.0], band=(-NEUTRAL_TOL, NEUTRAL_TOL)
            )
        failed = self.counts.get("failed", 0)
        return _html.card(
            "SweepSummary",
            None,
            self._summary(),
            figure=figure,
            note=f"{failed} failed point(s): see the 'error' column"
            if failed
            else "dots: measured rate per point, coloured by measured regime",
        )


def summary(frame: pd.DataFrame) -> SweepSummary:
    """A sweep's frame (`run`) summarised for display: counts, varied parameters, regimes, errors.

    The frame is not changed or copied; ``summary(frame).plot()`` draws the measured rates.

    Examples
    --------
    >>> import pandas as pd, gradflow as gf
    >>> frame = pd.DataFrame({"gain": [0.5, 2.0], "seed": [0, 0], "measured_rate": [-0.7, 0.2],
    ...                       "measured_regime": ["vanishing", "exploding"], "error": ["", ""]})
    >>> gf.sweep.summary(frame)
    SweepSummary(rows=2, failed=0, varied=['gain'], measured: vanishing 1, exploding 1)
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"summary takes the DataFrame gf.sweep.run returns; got {type(frame).__name__}")
    params = list(frame.columns[: list(frame.columns).index("seed")]) if "seed" in frame else []
    varied = [c for c in params if frame[c].nunique(dropna=False) > 1]
    return SweepSummary(frame, varied, dict(frame.attrs.get("sweep", {})))
