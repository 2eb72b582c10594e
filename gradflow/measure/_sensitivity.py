"""How strongly the last output depends on each input: ``||d y_{n-1} / d x_t||`` by lag."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from autograd import make_vjp

from ..core import _html, deprecated_spellings
from ..core._validation import check_seed
from ..models import PathLengths, SequenceModel, output_columns, path_lengths
from ._flow import directional_sweep
from ._rates import RateFit, fit_rate, regime_or_none

HORIZON_DROP = 1e-3  # the horizon is the largest lag within this factor of the peak


@dataclass(frozen=True, repr=False)
class Sensitivity:
    """Sensitivity of the last output to every input, with the path lengths beside it.

    Attributes
    ----------
    lags : ndarray, shape (n,)
        ``k = 0..n-1``; lag ``k`` is input ``x_{n-1-k}``.
    log_norms : ndarray, shape (n, batch)
        ``ln ||d L / d x_{n-1-k}||`` per sample (``-inf``: exactly zero).
    hops : ndarray, shape (n,)
        Fewest hops from ``x_{n-1-k}`` to ``y_{n-1}`` (`path_lengths`).
    horizon : int
        Largest lag whose sensitivity is within a factor ``1e-3`` of the peak.
    attenuation : RateFit
        Least-squares slope of the log-sensitivity against hops (nats per hop); ``nan``
        when every reachable input is the same number of hops away.

    Examples
    --------
    A linear cell with ``W = 0.5 * orthogonal``: ``||d h_T / d x_{T-k}||_F = 0.5 ** k ||U||_F``,
    so each hop attenuates by exactly ``ln 0.5``.

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(4, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> s = gf.sensitivity(gf.recurrent(cell), gf.inputs.gaussian(10, 2, 2), loss="frobenius")
    >>> U = cell.params["weight_ih_l0"]
    >>> bool(np.allclose(s.profile, np.arange(10) * np.log(0.5) + np.log(np.linalg.norm(U))))
    True
    >>> s.hops.tolist(), bool(np.isclose(s.attenuation.rate, np.log(0.5))), s.horizon
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], True, 9)
    """

    model: str
    loss: str
    lags: np.ndarray
    log_norms: np.ndarray
    hops: np.ndarray
    horizon: int
    attenuation: RateFit
    paths: PathLengths

    @property
    def profile(self) -> np.ndarray:
        """Batch mean of the log-sensitivity by lag (the log of the geometric mean)."""
        return np.mean(self.log_norms, axis=1)

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per lag and sample.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(4, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> s = gf.sensitivity(gf.recurrent(cell), gf.inputs.gaussian(10, 2, 2), loss="frobenius")
        >>> frame = s.to_frame()
        >>> list(frame.columns), len(frame)  # 10 lags x 2 samples
        (['model', 'lag', 'sample', 'hops', 'log_sensitivity'], 20)
        >>> bool(np.array_equal(frame.log_sensitivity, s.log_norms.reshape(-1)))
        True
        """
        n, b = self.log_norms.shape
        return pd.DataFrame(
            {
                "model": self.model,
                "lag": np.repeat(self.lags, b),
                "sample": np.tile(np.arange(b), n),
                "hops": np.repeat(self.hops, b),
                "log_sensitivity": self.log_norms.reshape(-1),
            }
        )

    def plot(self, ax=None, **kwargs):
        """ln-sensitivity against lag (structural zeros are left out).

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(4, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> s = gf.sensitivity(gf.recurrent(cell), gf.inputs.gaussian(10, 2, 2), loss="frobenius")
        >>> line = s.plot(ax=Figure().subplots()).get_lines()[0]
        >>> line.get_label(), bool(np.allclose(line.get_ydata(), s.profile))
        ('recurrent rnn-linear', True)
        """
        import matplotlib.pyplot as plt
        import seaborn as sns

        ax = ax or plt.gca()
        frame = self.to_frame()
        frame = frame[np.isfinite(frame.log_sensitivity)]
        sns.lineplot(
            data=frame, x="lag", y="log_sensitivity", ax=ax, label=self.model, errorbar=None, **kwargs
        )
        ax.set(xlabel="lag n - 1 - t", ylabel="ln ||dL/dx_t||")
        return ax

    def _summary(self) -> list[tuple[str, str]]:
        prof = self.profile
        peak = float(np.max(prof))
        a = self.attenuation.rate
        return [
            ("positions n", str(len(self.lags))),
            ("loss", self.loss),
            ("peak ln-sensitivity", f"{peak:.4g}"),
            ("ln-sensitivity at the largest lag", f"{prof[-1]:.4g}"),
            ("horizon (lags)", str(self.horizon)),
            ("max path (hops)", str(self.paths.max_path)),
            ("attenuation (nats/hop)", "n/a (one hop count)" if np.isnan(a) else f"{a:.4g}"),
        ]

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in self._summary())
        return f"Sensitivity({self.model}: {body})"

    def _repr_html_(self) -> str:
        figure = _html.chart(
            [_html.Series(self.lags, self.profile, "#3b6fb6")],
            xlabel="lag n - 1 - t",
            ylabel="ln ||dL/dx_t||",
        )
        return _html.card(
            "Sensitivity",
            self.model,
            self._summary(),
            regime=regime_or_none(self.attenuation.rate),
            figure=figure,
            note="badge: attenuation per hop (nats/hop) against the neutral band; "
            "line: batch-mean ln-sensitivity by lag",
        )


@deprecated_spellings(positional=("loss",))
def sensitivity(model: SequenceModel, xs, *, loss: str | None = None, seed: int = 0) -> Sensitivity:
    """``||d L / d x_t||`` for every position from one reverse pass, with path lengths beside it.

    Parameters
    ----------
    model : SequenceModel
    xs : array, shape (n, batch, inputs)
    loss : None or "frobenius"
        ``None``: ``L = u . y_{n-1}`` for a fixed random unit vector ``u`` (``seed``), one
        reverse pass. ``"frobenius"``: ``||d y_{n-1} / d x_t||_F`` (``width`` reverse
        passes through one forward trace).

    Recurrent models go through the engine's reverse sweep, in log space (finite at
    any length); the others through one autograd VJP of ``apply``.

    Examples
    --------
    Uniform attention (``gain=0``) spreads the output evenly: every input gets 1/n.

    >>> import numpy as np, gradflow as gf
    >>> m = gf.self_attention(4, inputs=4, gain=0.0, residual=False, layer_norm=False,
    ...                       feed_forward=False, positional="none")
    >>> for w in ("input_projection", "l0.wv", "l0.wo"):
    ...     m.params[w][:] = np.eye(4)
    >>> s = gf.sensitivity(m, gf.inputs.gaussian(50, 1, 4), loss="frobenius")
    >>> bool(np.allclose(s.profile, np.log(2 / 50)))  # ||I / n||_F = 2 / n
    True
    """
    if not isinstance(model, SequenceModel):
        raise ValueError(
            f"model must be a SequenceModel (gf.self_attention, gf.tcn, gf.recurrent, ...); "
            f"got {type(model).__name__}"
        )
    xs = model.check_inputs(xs)
    if loss not in (None, "frobenius"):
        raise ValueError(f"loss must be None or 'frobenius'; got {loss!r}")
    n, B, _ = xs.shape
    W = model.width
    if loss == "frobenius":
        directions = np.eye(W)  # ||J||_F^2 = sum_i ||e_i^T J||^2
    else:
        u = np.random.default_rng(check_seed(seed)).standard_normal(W)
        directions = (u / np.linalg.norm(u))[None, :]
    if model.cell is not None:  # the engine's reverse sweep, in log space
        cell, cols = model.cell, output_columns(model.cell)
        full = np.zeros((len(directions), cell.state_size))
        full[:, cols] = directions
        logs = directional_sweep(cell, xs, np.zeros((B, cell.state_size)), full)[3]
    else:
        # One forward trace; one backward pass per direction reuses it (memory of one pass).
        vjp, _ = make_vjp(lambda x: model.apply(model.params, x))(xs)
        squares = np.zeros((n, B))
        for e in directions:
            cotangent = np.zeros((n, B, W))
            cotangent[-1] = e
            squares += np.sum(vjp(cotangent) ** 2, axis=2)
        with np.errstate(divide="ignore"):  # an exact zero is a structural zero: -inf
            logs = 0.5 * np.log(squares)
    log_norms = logs[::-1].copy()
    paths = path_lengths(model, n)
    hops = paths.hops[::-1].copy()
    profile = np.mean(log_norms, axis=1)
    finite = np.isfinite(profile)
    peak = profile[finite].max() if finite.any() else -np.inf
    within = np.flatnonzero(finite & (profile >= peak + np.log(HORIZON_DROP)))
    reach = np.isfinite(hops) & finite
    if reach.any() and len(np.unique(hops[reach])) > 1:
        order = np.argsort(hops[reach], kind="stable")
        fit = fit_rate(hops[reach][order], profile[reach][order], 0)
    else:
        fit = RateFit(np.nan, np.nan, np.nan, np.nan, (0, 0))
    return Sensitivity(
        model=model.name,
        loss="frobenius" if loss else "random direction",
        lags=np.arange(n),
        log_norms=log_norms,
        hops=hops,
        horizon=int(within.max()) if within.size else 0,
        attenuation=fit,
        paths=paths,
    )
