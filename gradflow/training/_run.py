"""`TrainingRun`: what one training run recorded, with its display and plots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core import _html, deprecated_spellings
from ..measure._rates import NEUTRAL_TOL, regime_of
from ._objective import PLOT_GROUPS

# ---------------------------------------------------------------- the run


@dataclass(frozen=True, repr=False)
class TrainingRun:
    """One training run: losses and gradient norms per step, measurements every few steps.

    Attributes
    ----------
    model, task : str
        Names.
    baseline : float
        The task's memoryless baseline loss.
    loss : ndarray, shape (steps,)
        Task loss of each step's batch (before that step's update; NaN after divergence).
    objective : ndarray, shape (steps,)
        Loss plus penalty and Lyapunov terms: what was differentiated.
    grad_norm, clipped_grad_norm, update_norm : ndarray, shape (steps,)
        Global gradient norm before and after clipping, and norm of the applied update.
    records : DataFrame
        One row per measurement step: ``step``, ``split`` (``"train"``; the last row,
        after training, ``"held out"``), ``loss`` (of that step's training batch; of the
        held-out data in the last row) and, for recurrent models,
        ``spectral_radius``, ``top_singular_value`` (layer 0's recurrent matrix),
        ``lyapunov_top``, ``flow_rate`` and per layer ``flow_rate_l{i}``,
        ``flow_log_norm_T_l{i}``.
    eval_loss : float
        Task loss of the final weights on a held-out batch of 256.
    diverged_at : int or None
        Step at which training stopped because the loss or gradient became non-finite or the
        loss exceeded 10^4 times the larger of the first step's loss and the baseline.
    params : dict
        Final weights ``{"model": ..., "readout": ...}``.
    config : dict
        The options of the run.
    seconds : float
        Wall time of the training loop, measurements included.
    interrupted_at : int or None
        Step at which Ctrl-C (KeyboardInterrupt) stopped the run; the arrays then hold the
        steps completed before it, and the weights, held-out loss and last record are those
        of that point.

    Examples
    --------
    Six Adam steps of a small tanh RNN on the adding task (memoryless baseline: the variance
    of the sum of two U(0, 1) draws, 1/6), with the gradient clipped to norm 0.5:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(5), steps=6, batch=8, lr=0.01,
    ...                clip=0.5, record_every=3, progress=False)
    >>> run.steps, run.diverged_at, bool(np.isclose(run.baseline, 1 / 6))
    (6, None, True)
    >>> bool(np.all(run.clipped_grad_norm <= 0.5 + 1e-12)), run.records.split.tolist()
    (True, ['train', 'train', 'held out'])
    >>> rho = np.max(np.abs(gf.rnn(4, 2, seed=0).eigenvalues()[0]))  # measured before the first step
    >>> bool(np.isclose(run.records.spectral_radius.iloc[0], rho))
    True
    """

    model: str
    task: str
    baseline: float
    loss: np.ndarray
    objective: np.ndarray
    grad_norm: np.ndarray
    clipped_grad_norm: np.ndarray
    update_norm: np.ndarray
    records: pd.DataFrame
    eval_loss: float
    diverged_at: int | None
    params: dict = field(compare=False)
    config: dict = field(compare=False)
    seconds: float = field(compare=False)
    interrupted_at: int | None = None

    @property
    def steps(self) -> int:
        return len(self.loss)

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last tenth of the steps (NaN if training diverged)."""
        tail = self.loss[-max(1, self.steps // 10) :]
        return float(np.mean(tail)) if np.all(np.isfinite(tail)) else np.nan

    @property
    def ratio(self) -> float:
        """Held-out loss over the memoryless baseline (below 1: the model remembers)."""
        return self.eval_loss / self.baseline

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per (step, quantity) with columns ``step``, ``quantity``, ``value``.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(5), steps=6, batch=8, lr=0.01,
        ...                clip=0.5, record_every=3, progress=False)
        >>> frame = run.to_frame()
        >>> list(frame.columns)
        ['model', 'task', 'step', 'quantity', 'value']
        >>> bool(np.array_equal(frame.query("quantity == 'loss'").value, run.loss))
        True
        """
        steps = np.arange(self.steps)
        per_step = [
            pd.DataFrame({"step": steps, "quantity": name, "value": values})
            for name, values in (
                ("loss", self.loss),
                ("objective", self.objective),
                ("grad_norm", self.grad_norm),
                ("clipped_grad_norm", self.clipped_grad_norm),
                ("update_norm", self.update_norm),
            )
        ]
        recs = self.records.drop(columns=["loss", "split"], errors="ignore")
        recs = recs.melt(id_vars="step", var_name="quantity") if len(recs.columns) else recs
        out = pd.concat([*per_step, recs], ignore_index=True)
        out.insert(0, "task", self.task)
        out.insert(0, "model", self.model)
        return out

    @deprecated_spellings(renamed={"axes": "ax"})
    def plot(self, ax=None):
        """One axis per scale: task loss against the baseline, gradient norms (log scale) before
        and after clipping, and for recurrent models the recurrent matrix's spectral radius and top
        singular value (beside 1) and the rates lambda_1 and flow rate (nats/step, beside the
        neutral band); returns the axes. ``ax``: one axis per panel (four if recurrent, else two).

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> run = gf.train(gf.rnn(4, 2, seed=0), gf.tasks.adding(5), steps=6, batch=8, lr=0.01,
        ...                clip=0.5, record_every=3, progress=False)
        >>> axes = run.plot(ax=Figure().subplots(1, 4))
        >>> [ax.get_title() for ax in axes]
        ['recurrent rnn-tanh on adding (T=5)', 'gradients', 'recurrent matrix (measured)', 'rates (measured)']
        >>> bool(np.array_equal(axes[0].get_lines()[0].get_ydata(), run.loss))
        True
        """
        axes = ax  # a sequence, one axis per panel
        import matplotlib.pyplot as plt
        import seaborn as sns

        from ..core._plot import STYLE

        panels = [cols for cols in PLOT_GROUPS if any(c in self.records for c in cols)]
        count = 2 + len(panels)
        if axes is None:
            with sns.axes_style(STYLE):
                _, axes = plt.subplots(1, count, figsize=(3.6 * count, 3.2), layout="constrained")
        elif len(axes) != count:
            raise ValueError(f"ax must hold {count} axes (one per panel); got {len(axes)}")
        steps = np.arange(self.steps)
        a0, a1 = axes[0], axes[1]
        a0.plot(steps, self.loss, label="loss")
        a0.axhline(self.baseline, color="k", linestyle="--", label=f"baseline {self.baseline:.4g}")
        a0.set(xlabel="step", ylabel="task loss", title=f"{self.model} on {self.task}")
        a0.legend(fontsize="small")
        a1.semilogy(steps, self.grad_norm, label="before clipping")
        a1.semilogy(steps, self.clipped_grad_norm, label="applied")
        a1.set(xlabel="step", ylabel="gradient norm", title="gradients")
        a1.legend(fontsize="small")
        rows = self.records[self.records.split == "train"] if "split" in self.records else self.records
        for ax, cols in zip(axes[2:], panels, strict=True):
            if cols is PLOT_GROUPS[0]:
                ax.axhline(1.0, color="0.6", linewidth=0.8)
                ax.set(ylabel="magnitude", title="recurrent matrix (measured)")
            else:
                ax.axhspan(-NEUTRAL_TOL, NEUTRAL_TOL, color="0.88", label="neutral band")
                ax.set(ylabel="rate (nats/step)", title="rates (measured)")
            for col in cols:
                if col in rows:
                    values = rows[col].to_numpy(dtype=float)
                    ax.plot(
                        rows.step,
                        np.where(np.isfinite(values), values, np.nan),
                        marker="o",
                        markersize=3,
                        label=col.replace("_", " "),
                    )
            ax.set(xlabel="step")
            ax.legend(fontsize="small")
        return axes

    def _summary(self) -> list[tuple[str, str]]:
        rows = [
            ("model", self.model),
            ("task", self.task),
            ("steps", str(self.steps)),
            ("final training loss", f"{self.final_loss:.4g}"),
            ("held-out loss", f"{self.eval_loss:.4g} ({self.ratio:.3g} x baseline {self.baseline:.4g})"),
            (
                "median gradient norm",
                f"{np.nanmedian(self.grad_norm):.4g} (applied {np.nanmedian(self.clipped_grad_norm):.4g})",
            ),
            ("options", ", ".join(f"{k}={v}" for k, v in self.config.items())),
            ("seconds", f"{self.seconds:.2f}"),
        ]
        if self.diverged_at is not None:
            rows.insert(3, ("diverged at step", str(self.diverged_at)))
        if self.interrupted_at is not None:
            rows.insert(3, ("interrupted at step", str(self.interrupted_at)))
        rate = self._final_flow_rate()
        if rate is not None:
            rows.insert(-2, ("final flow rate", _html.number(rate, unit="nats/step")))
        return rows

    def _final_flow_rate(self) -> float | None:
        if "flow_rate" not in self.records or not len(self.records):
            return None
        rate = float(self.records["flow_rate"].iloc[-1])
        return None if np.isnan(rate) else rate

    def __repr__(self) -> str:
        stopped = f", interrupted_at={self.interrupted_at}" if self.interrupted_at is not None else ""
        return (
            f"TrainingRun(model={self.model!r}, task={self.task!r}, steps={self.steps}, "
            f"final_loss={self.final_loss:.4g}, eval_loss={self.eval_loss:.4g}, "
            f"baseline={self.baseline:.4g}, diverged_at={self.diverged_at}{stopped})"
        )

    def _repr_html_(self) -> str:
        # The badge: how the final weights carry gradients (their measured flow rate), unless the
        # run diverged or was stopped, which matters more.
        rate = self._final_flow_rate()
        if self.diverged_at is not None:
            regime, text = "exploding", f"diverged at step {self.diverged_at}"
        elif self.interrupted_at is not None:
            regime, text = None, f"interrupted at step {self.interrupted_at}"
        elif rate is not None:
            regime, text = regime_of(rate), None
        else:
            regime, text = None, "no recurrence measured"
        steps = np.arange(self.steps)
        figure = _html.chart(
            [_html.Series(steps, self.loss, _html.REGIME_COLORS["vanishing"])],
            xlabel="step",
            ylabel="task loss",
            hlines=[self.baseline],
        )
        return _html.card(
            "TrainingRun",
            self.model,
            self._summary(),
            regime=regime,
            badge_text=text,
            figure=figure,
            note="line: task loss per step; grey line: memoryless baseline",
        )
