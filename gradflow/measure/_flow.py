"""Measured gradient flow: ``log ||dL/d state_{T-k}||`` by lag ``k``, and what it says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from ..core import _html, deprecated_spellings
from ..core._validation import check_finite_float, check_seed
from ..engine._engine import check_cell, check_sequence
from ..engine._reverse import reverse_sweep
from ._rates import (  # defined beside the fit; GradientFlow is what reports them
    MEMORY_DROP,
    MIN_FIT_LAGS,
    NEUTRAL_TOL,
    RateFit,
    fit_profile,
    fit_rate,
    mean_log_profile,
    regime_or_none,
)


@dataclass(frozen=True, repr=False)
class GradientFlow:
    """Gradient norms back-propagated from the final state, by lag.

    Attributes
    ----------
    lags : ndarray, shape (T + 1,)
        ``k = 0..T``.
    log_norms : ndarray, shape (T + 1, batch)
        ``ln ||dL/d state_{T-k}||`` (natural log).
    components : dict of str to ndarray (T + 1, batch)
        The same for named parts of the state (``h`` and ``c`` of an LSTM).
    gates : dict of str to ndarray (T, batch)
        ``ln ||dL/d a||`` for each gate's pre-activation ``a`` at step ``T - k``,
        ``k = 0..T-1`` (LSTM i, f, g, o; GRU r, z, n; anything a custom cell probes).
    input_log_norms : ndarray, shape (T, batch)
        ``ln ||dL/d x_{T-k}||`` for ``k = 0..T-1``: sensitivity to each input.
    loss : str
        What was back-propagated (``"random direction"``, ``"frobenius"`` or ``"custom"``).
    fit : RateFit
        Straight line through the batch-mean log-norm over lags ``fit_from..T``, cut
        before ``fit.zero_from`` where the gradient becomes exactly zero.

    Examples
    --------
    An LSTM's flow, by lag, by state part and by gate (one row per lag, one column per sample):

    >>> import gradflow as gf
    >>> flow = gf.gradient_flow(gf.lstm(8, 2, seed=0), gf.inputs.gaussian(30, 3, 2))
    >>> flow.log_norms.shape, flow.input_log_norms.shape
    ((31, 3), (30, 3))
    >>> sorted(flow.components), sorted(flow.gates)
    (['c', 'h'], ['f', 'g', 'i', 'o'])
    >>> flow.regime == gf.regime_of(flow.rate), flow.loss
    (True, 'random direction')
    """

    cell_name: str
    lags: np.ndarray
    log_norms: np.ndarray
    components: dict[str, np.ndarray]
    gates: dict[str, np.ndarray]
    input_log_norms: np.ndarray
    loss: str
    fit: RateFit
    tol: float = NEUTRAL_TOL
    profile: np.ndarray = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "profile", mean_log_profile(self.log_norms))

    @property
    def rate(self) -> float:
        """Fitted slope of ln-norm against lag, nats/step (negative: vanishing)."""
        return self.fit.rate

    @property
    def regime(self) -> str | None:
        """`regime_of` the rate; None when the rate is NaN ("inconclusive": fewer than
        `MIN_FIT_LAGS` lags with a non-zero gradient in the fit window)."""
        return regime_or_none(self.rate, self.tol)

    @property
    def memory_horizon(self) -> int | None:
        """First lag at which the (batch-mean log) norm has fallen by 1e-3 from lag 0; None if never."""
        if self.profile[0] == -np.inf:
            return 0  # no gradient reaches even the final state
        drop = self.profile - self.profile[0]
        hit = np.flatnonzero(drop <= np.log(MEMORY_DROP))
        return int(self.lags[hit[0]]) if hit.size else None

    @property
    def steps(self) -> int:
        return int(self.lags[-1])

    @property
    def batch(self) -> int:
        return self.log_norms.shape[1]

    def to_frame(self) -> pd.DataFrame:
        """Tidy long-form data: one row per (quantity, lag, sample).

        Columns ``kind`` (state, component, gate, input), ``quantity``, ``lag``,
        ``sample`` and ``log_norm`` (natural log).

        Examples
        --------
        >>> import gradflow as gf
        >>> flow = gf.gradient_flow(gf.gru(4, 2, seed=0), gf.inputs.gaussian(10, 2, 2))
        >>> frame = flow.to_frame()
        >>> list(frame.columns)
        ['kind', 'quantity', 'lag', 'sample', 'log_norm']
        >>> frame.groupby("kind", sort=False).size().to_dict()  # (T + 1) x batch a part, T x batch a gate
        {'state': 22, 'component': 22, 'gate': 60, 'input': 20}
        >>> bool((frame.query("kind == 'state'").log_norm.to_numpy() == flow.log_norms.ravel()).all())
        True
        """
        frames = [_tidy("state", "state", self.lags, self.log_norms)]
        frames += [_tidy("component", k, self.lags, v) for k, v in self.components.items()]
        short = self.lags[:-1]
        frames += [_tidy("gate", k, short, v) for k, v in self.gates.items()]
        frames.append(_tidy("input", "input", short, self.input_log_norms))
        return pd.concat(frames, ignore_index=True)

    def plot(self, ax=None, quantity: str = "state"):
        """Batch-mean ln-norm against lag, the range over the batch, and the fitted rate.

        ``quantity`` is ``"state"``, a component (``"h"``, ``"c"``), a gate name or ``"input"``.
        Returns the matplotlib axes.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import gradflow as gf
        >>> cell = gf.rnn(16, 2, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> ax = gf.gradient_flow(cell, gf.inputs.gaussian(40, 1, 2)).plot(ax=Figure().subplots())
        >>> ax.get_title(), [line.get_label() for line in ax.get_lines()]
        ('rnn-linear: vanishing', ['batch mean', 'fit: -0.6931 nats/step'])
        """
        from ..core._plot import new_axes

        data = {"state": (self.lags, self.log_norms), "input": (self.lags[:-1], self.input_log_norms)}
        data.update({k: (self.lags, v) for k, v in self.components.items()})
        data.update({k: (self.lags[:-1], v) for k, v in self.gates.items()})
        if quantity not in data:
            raise ValueError(f"unknown quantity {quantity!r}; expected one of {', '.join(data)}")
        lags, values = data[quantity]
        ax = new_axes(ax)

        def drawable(a):  # exact zeros (log = -inf) are left as gaps
            return np.where(np.isfinite(a), a, np.nan)

        ax.fill_between(
            lags,
            drawable(values.min(axis=1)),
            drawable(values.max(axis=1)),
            alpha=0.25,
            linewidth=0,
            label="range over batch",
        )
        ax.plot(lags, drawable(mean_log_profile(values)), label="batch mean")
        if quantity == "state" and np.isfinite(self.rate):
            lo, hi = self.fit.lag_range
            xs = np.array([lo, hi])
            ax.plot(
                xs,
                self.fit.intercept + self.rate * xs,
                "--",
                color="k",
                label=f"fit: {self.rate:+.4f} nats/step",
            )
        ax.set_xlabel("lag k (steps back from the final state)")
        ax.set_ylabel(f"ln ||dL/d{quantity}|| (nats)")
        ax.set_title(f"{self.cell_name}: {self.regime or 'inconclusive'}")
        ax.legend(loc="best", fontsize="small")
        return ax

    def _summary(self) -> list[tuple[str, str]]:
        horizon = self.memory_horizon
        return [
            ("cell", self.cell_name),
            ("steps, batch", f"{self.steps}, {self.batch}"),
            ("loss", self.loss),
            (
                "rate",
                f"{self.rate:+.4g} ± {self.fit.stderr:.2g} nats/step"
                f" (R² = {self.fit.r2:.4f}, lags {self.fit.lag_range[0]}-{self.fit.lag_range[1]})",
            ),
            ("regime", f"{self.regime or 'inconclusive'} (neutral if |rate| <= {self.tol:g})"),
            *(
                [("exactly zero", f"gradient exactly 0 from lag {self.fit.zero_from} on (fit cut there)")]
                if self.fit.zero_from is not None
                else []
            ),
            (
                "memory horizon",
                f"{horizon} steps"
                if horizon is not None
                else f"> {self.steps} steps (never fell by {MEMORY_DROP:g})",
            ),
            ("ln-norm at lag T", f"{self.profile[-1]:.4g}"),
        ]

    def __repr__(self) -> str:
        horizon = self.memory_horizon
        return (
            f"GradientFlow(cell={self.cell_name!r}, steps={self.steps}, batch={self.batch}, "
            f"rate={self.rate:+.4g} nats/step, regime={self.regime!r}, "
            f"memory_horizon={horizon})"
        )

    def _repr_html_(self) -> str:
        # The sparkline draws the same batch-mean profile and fitted line as `plot`.
        series = [_html.Series(self.lags, self.profile, _html.REGIME_COLORS[self.regime or "inconclusive"])]
        if np.isfinite(self.rate):
            lo, hi = self.fit.lag_range
            ends = np.array([lo, hi])
            series.append(_html.Series(ends, self.fit.intercept + self.rate * ends, "#222", "dash"))
        figure = _html.chart(series, xlabel="lag k (steps)", ylabel="ln-norm (nats)")
        return _html.card(
            "GradientFlow",
            self.cell_name,
            self._summary(),
            regime=self.regime,
            figure=figure,
            note="solid: batch-mean ln ||dL/dh_{T-k}||; dashed: fitted rate",
        )


def _tidy(kind: str, name: str, lags: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    n, b = values.shape
    return pd.DataFrame(
        {
            "kind": kind,
            "quantity": name,
            "lag": np.repeat(lags, b),
            "sample": np.tile(np.arange(b), n),
            "log_norm": values.reshape(-1),
        }
    )


def directional_sweep(cell, xs: np.ndarray, h0: np.ndarray, directions: np.ndarray):
    """`reverse_sweep` for the loss directions in the rows of ``directions`` (k, state), all in one
    pass: ``ln`` of the root sum of squares over the k directions, per sample (k = identity
    rows gives Frobenius norms). Returns what `reverse_sweep` returns."""
    B, k = xs.shape[1], len(directions)
    rows = np.tile(directions, (B, 1))  # row b*k + i of the replicated batch: direction i, sample b

    def loss(h):
        return anp.sum(h * rows, axis=1)

    state, components, probes, inputs = reverse_sweep(
        cell, np.repeat(xs, k, axis=1), np.repeat(h0, k, axis=0), loss
    )

    def combine(a):
        return 0.5 * logsumexp(2.0 * a.reshape(a.shape[0], B, k), axis=2)

    return (
        combine(state),
        {n: combine(v) for n, v in components.items()},
        {n: combine(v) for n, v in probes.items()},
        combine(inputs),
    )


@deprecated_spellings(positional=("loss", "h0"))
def gradient_flow(
    cell,
    xs,
    *,
    loss: Callable | str | None = None,
    h0=None,
    seed: int = 0,
    tol: float = NEUTRAL_TOL,
    fit_from: int | None = None,
) -> GradientFlow:
    """Measure how the gradient of a loss at the final state flows back through time.

    One reverse pass through the unrolled network (autograd, checkpointed in
    time-chunks), held in log space: finite at T = 10,000 in any regime.

    Parameters
    ----------
    cell : Cell
    xs : array, shape (T, batch, inputs)
    loss : callable, "frobenius" or None
        ``loss(state_T) -> (batch,)`` values, written with ``autograd.numpy``.
        ``None`` (default): ``state_T @ u`` for a fixed random unit vector ``u``
        drawn from ``seed``. ``"frobenius"``: all directions at once, so the
        norms are the Frobenius norms ``||d state_T / d state_{T-k}||_F`` and
        ``||d state_T / d x_{T-k}||_F`` (costs ``state_size`` times more).
    h0 : array, optional
        Initial state; zeros by default.
    seed : int
        Seed of the default loss direction.
    tol : float
        Rates with ``|rate| <= tol`` nats/step are "neutral".
    fit_from : int, optional
        First lag of the rate fit; default ``T // 10`` (skips the initial transient).
        The fit needs at least `MIN_FIT_LAGS` lags, so ``xs`` at least 2 steps.

    Returns
    -------
    GradientFlow
        Where the gradient becomes exactly zero (``log_norms`` ``-inf``), the rate is
        fitted through the lags before that (``fit.zero_from`` says where; if it died
        before ``fit_from``, through all lags before it); with fewer than `MIN_FIT_LAGS`
        non-zero lags the rate is NaN and the regime None, never a ``-inf`` "vanishing".

    Examples
    --------
    A linear network with ``W = 0.9 * orthogonal`` shrinks every gradient by
    exactly 0.9 per step:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(32, 4, activation="linear", init="orthogonal", gain=0.9, seed=0)
    >>> flow = gf.gradient_flow(cell, gf.inputs.gaussian(200, 2, 4))
    >>> print(f"{flow.rate:.8f} {np.log(0.9):.8f} {flow.regime}")
    -0.10536052 -0.10536052 vanishing
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    tol = check_finite_float("tol", tol, minimum=0.0)
    T, S = xs.shape[0], cell.state_size
    if T + 1 < MIN_FIT_LAGS:
        raise ValueError(
            f"xs has {T} step{'s' * (T != 1)}: a rate is fitted through at least "
            f"{MIN_FIT_LAGS} lags, so xs needs at least {MIN_FIT_LAGS - 1} steps"
        )
    last_start = T + 1 - MIN_FIT_LAGS
    if fit_from is None:
        fit_from = T // 10
    elif (
        isinstance(fit_from, bool)
        or not isinstance(fit_from, (int, np.integer))
        or not (0 <= fit_from <= last_start)
    ):
        raise ValueError(
            f"fit_from must be an integer lag in [0, {last_start}] (the fit needs "
            f"{MIN_FIT_LAGS} lags); got {fit_from!r}"
        )
    if isinstance(loss, str):
        if loss != "frobenius":
            raise ValueError(f"unknown loss {loss!r}; expected a callable, 'frobenius' or None")
        loss_fn, label = None, "frobenius"
    elif loss is None:
        seed = check_seed(seed)
        u = np.random.default_rng(seed).standard_normal(S)
        u /= np.linalg.norm(u)

        def loss_fn(h):
            return h @ u

        label = "random direction"
    elif callable(loss):
        loss_fn, label = loss, "custom"
    else:
        raise ValueError(f"loss must be a callable, 'frobenius' or None; got {loss!r}")

    if loss_fn is None:
        state, components, probes, inputs = directional_sweep(cell, xs, h0, np.eye(S))
    else:
        state, components, probes, inputs = reverse_sweep(cell, xs, h0, loss_fn)
    lags = np.arange(T + 1)
    log_norms = state[::-1].copy()
    fit = fit_rate(lags, fit_profile(log_norms, fit_from), fit_from)
    return GradientFlow(
        cell_name=cell.name,
        lags=lags,
        log_norms=log_norms,
        components={k: v[::-1].copy() for k, v in components.items()},
        gates={k: v[::-1].copy() for k, v in probes.items()},
        input_log_norms=inputs[::-1].copy(),
        loss=label,
        fit=fit,
        tol=tol,
    )
