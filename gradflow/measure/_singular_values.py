"""Finite-time singular values of ``d state_T / d state_0 = J_T ... J_1``, in log space.

Subspace iteration on the product: QR sweeps alternately forward (``J_t Q``) and backward
(``J_t^T Q``) until the ``ln |R_ii|`` sums stop moving; the budget of sweeps follows the
observed contraction.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..cells._cells import Cell
from ..core import _html, deprecated_spellings
from ..core._threads import limited
from ..core._validation import check_finite_float, check_positive_int, check_seed
from ..engine._engine import block_products, check_cell, check_sequence, unroll
from ._qr import initial_block
from ._rates import regime_or_none


@dataclass(frozen=True, repr=False)
class SingularValues:
    """Log singular values of the product ``d state_T / d state_0 = J_T ... J_1``.

    Attributes
    ----------
    log_values : ndarray, shape (batch, k)
        Natural logs of the ``k`` largest singular values, largest first.
    change : float
        Largest change of any log value over the last sweep (convergence).
    sweeps, steps : int

    Examples
    --------
    The product of 20 steps of ``W = 0.5 * orthogonal`` has every singular value ``0.5 ** 20``:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(4, 1, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> sv = gf.finite_time_singular_values(cell, gf.inputs.gaussian(20, 2, 1), k=2)
    >>> sv.log_values.shape, bool(np.allclose(sv.log_values, 20 * np.log(0.5)))
    ((2, 2), True)
    >>> bool(np.allclose(sv.rates, np.log(0.5))), sv.change <= 1e-10
    (True, True)
    """

    system: str
    log_values: np.ndarray
    change: float
    sweeps: int
    steps: int

    @property
    def rates(self) -> np.ndarray:
        """Batch-mean ``ln sigma_i / steps``: the growth rates of the product, nats/step."""
        return self.log_values.mean(axis=0) / self.steps

    def plot(self, ax=None):
        """ln sigma_i / steps (nats/step) against index i, batch mean and every sample.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(4, 1, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> sv = gf.finite_time_singular_values(cell, gf.inputs.gaussian(20, 2, 1), k=2)
        >>> ax = sv.plot(ax=Figure().subplots())
        >>> ax.get_title(), [line.get_label() for line in ax.get_lines()][:1]
        ('rnn-linear: 20 steps', ['batch mean'])
        >>> bool(np.allclose(ax.get_lines()[0].get_ydata(), np.log(0.5)))
        True
        """
        from ..core._plot import new_axes

        ax = new_axes(ax)
        idx = np.arange(1, self.log_values.shape[1] + 1)
        ax.plot(idx, self.rates, "o-", markersize=3, label="batch mean")
        for row in self.log_values:
            ax.plot(idx, row / self.steps, ".", color="0.5", markersize=3)
        ax.axhline(0.0, color="0.4", linewidth=0.8)
        ax.set(
            xlabel="index i", ylabel="ln sigma_i / T (nats/step)", title=f"{self.system}: {self.steps} steps"
        )
        return ax

    def _summary(self):
        logs = self.log_values.mean(axis=0)
        return [
            ("system", self.system),
            ("steps, batch", f"{self.steps}, {self.log_values.shape[0]}"),
            ("ln sigma_1", f"{logs[0]:+.5g} (batch mean)"),
            ("rate ln sigma_1 / T", _html.number(self.rates[0], unit="nats/step")),
            ("values", str(self.log_values.shape[1])),
            ("sweeps, last change", f"{self.sweeps}, {self.change:.2g} nats"),
        ]

    def __repr__(self):
        shown = ", ".join(f"{v:+.5g}" for v in self.log_values.mean(axis=0)[:4])
        more = ", ..." if self.log_values.shape[1] > 4 else ""
        return (
            f"SingularValues(system={self.system!r}, steps={self.steps}, "
            f"ln sigma=[{shown}{more}] (batch mean), change={self.change:.2g})"
        )

    def _repr_html_(self):
        figure = _html.indexed(self.rates, "ln sigma_i / T") if len(self.rates) > 1 else None
        return _html.card(
            "SingularValues",
            self.system,
            self._summary(),
            regime=regime_or_none(self.rates[0]),
            figure=figure,
        )


@limited
def _qr_sweep(cell, states, xs, Q, side):
    """One pass of ``Q <- qr(J_t Q)`` (forward in t) or ``Q <- qr(J_t^T Q)`` (backward)."""
    T = xs.shape[0]
    logs = np.zeros(Q.shape[::2])  # (B, k)
    order = range(1, T + 1) if side == "right" else range(T, 0, -1)
    for t in order:
        Y = block_products(cell, states[t - 1], xs[t - 1], Q, side)
        if side == "left":
            Y = np.swapaxes(Y, 1, 2)  # (Q^T J)^T = J^T Q
        q, r = np.linalg.qr(Y)
        d = np.diagonal(r, axis1=1, axis2=2)
        with np.errstate(divide="ignore"):
            logs += np.log(np.abs(d))
        Q = q * np.where(d < 0, -1.0, 1.0)[:, None, :]
    return Q, logs


@deprecated_spellings(positional=("h0",))
def finite_time_singular_values(
    cell: Cell, xs, *, h0=None, k: int = 1, tol: float = 1e-10, max_sweeps: int | None = None, seed: int = 0
) -> SingularValues:
    """Largest singular values of ``d state_T / d state_0``, in log space (finite at any T).

    Alternate QR sweeps forward (``J_t Q``, one stacked JVP per step) and backward
    (``J_t^T Q``, one stacked VJP per step): subspace iteration on the product, whose
    ``ln |R_ii|`` sums converge to the log singular values. Sweeps stop once no value
    moved by more than ``tol`` (nats). Nearly equal singular values converge slowly
    (the error shrinks by ``sigma_{i+1} / sigma_i`` per sweep): by default
    (``max_sweeps=None``) the budget starts at `DEFAULT_SWEEPS` and is raised to the
    sweeps the observed contraction needs, up to ``SWEEP_BUDGET_LIMIT * DEFAULT_SWEEPS``;
    an explicit ``max_sweeps`` is a fixed budget. A result that did not converge comes
    with a `ConvergenceWarning` giving the last change. One forward sweep alone is the
    finite-time Lyapunov estimate, which can be off by several nats. A direction the
    product maps exactly to zero has ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(6, 2, activation="linear", seed=0)
    >>> xs = gf.inputs.gaussian(3, 1, 2)
    >>> sv = gf.finite_time_singular_values(cell, xs, k=2)
    >>> W = cell.params["weight_hh_l0"]
    >>> bool(np.allclose(sv.log_values[0], np.log(np.linalg.svd(W @ W @ W)[1][:2])))
    True
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    k = check_positive_int("k", k)
    if k > cell.state_size:
        raise ValueError(f"k must be at most the state size {cell.state_size}; got {k}")
    if max_sweeps is None:
        budget, limit = DEFAULT_SWEEPS, SWEEP_BUDGET_LIMIT * DEFAULT_SWEEPS
    else:
        budget = limit = check_positive_int("max_sweeps", max_sweeps)
    tol = check_finite_float("tol", tol, minimum=0.0)
    seed = check_seed(seed)
    states = unroll(cell, xs, h0=h0)
    Q = initial_block(np.random.default_rng(seed), xs.shape[1], cell.state_size, k)
    previous, logs, change, done = None, None, np.inf, 0
    changes: list[float] = []
    with threadpool_limits(1):
        while not change <= tol:
            if done >= budget:
                budget = _raised_budget(changes, tol, done, limit)
                if done >= budget:
                    moved = (
                        f"the log values still moved by {change:.2g} nats > tol={tol:g}"
                        if changes
                        else "one sweep cannot tell how far it is from converged"
                    )
                    warnings.warn(
                        f"finite_time_singular_values did not converge: {moved} after {done} "
                        f"sweep{'s' * (done > 1)} (budget {limit}; nearly equal singular values "
                        f"converge slowly)",
                        ConvergenceWarning,
                        stacklevel=2,
                    )
                    break
            Q, logs = _qr_sweep(cell, states, xs, Q, "right" if done % 2 == 0 else "left")
            done += 1
            if previous is not None:
                finite = np.isfinite(logs) | np.isfinite(previous)  # an exact zero stays -inf
                diff = np.abs(logs - previous, where=finite, out=np.zeros_like(logs))
                change = float(diff.max())
                changes.append(change)
            previous = logs
    assert logs is not None  # the budget is at least one sweep
    return SingularValues(cell.name, logs, change, done, xs.shape[0])


DEFAULT_SWEEPS = 40  # finite_time_singular_values' first budget, raised when the contraction needs more
SWEEP_BUDGET_LIMIT = 10  # ... at most this many times over


class ConvergenceWarning(UserWarning):
    """An iteration stopped before reaching its tolerance; the result is approximate.

    Examples
    --------
    One sweep cannot tell how far `finite_time_singular_values` is from converged:

    >>> import warnings
    >>> import gradflow as gf
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     sv = gf.finite_time_singular_values(gf.rnn(6, 2, seed=0), gf.inputs.gaussian(5, 1, 2),
    ...                                         max_sweeps=1)
    >>> [w.category.__name__ for w in caught], sv.sweeps, issubclass(gf.ConvergenceWarning, UserWarning)
    (['ConvergenceWarning'], 1, True)
    """


def _raised_budget(changes: list[float], tol: float, done: int, limit: int) -> int:
    """The sweeps the observed geometric contraction of ``changes`` needs to reach ``tol``
    (``done`` when it is not contracting, or when even ``limit`` would not do)."""
    if len(changes) < 3:  # too few changes to measure the contraction: two more sweeps
        return min(done + 2, limit)
    if not 0.0 < changes[-1] < changes[-3]:
        return done
    ratio = (changes[-1] / changes[-3]) ** 0.5  # two sweeps apart: same direction, no zig-zag
    needed = done + int(np.ceil(np.log(tol / changes[-1]) / np.log(ratio))) + 2
    return needed if needed <= limit else done
