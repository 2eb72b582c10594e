"""Sensitivity to the parameters, by lag: which steps' use of the weights make up d loss / d theta.

Back-propagation through time writes the gradient with respect to the shared parameters as a
sum over steps, ``dL/dtheta = sum_t (dL/dh_t)^T (d step / d theta)(h_{t-1}, x_t)``: the cotangent
at ``h_t`` pushed through step ``t``'s direct use of ``theta``. `parameter_sensitivity` gives each
term's norm by lag ``k = T - t`` and parameter group. The cotangents come from the engine's one
reverse pass (unit vectors plus log-norms, so nothing under- or overflows at T = 10,000); the
terms (``_param_terms``) from one autograd VJP per time-chunk in which every step reads the
weights through its own identity probe, whose backward pass keeps that step's share (the probe
idea of ``_probe``, applied to parameters). Zucchet and Orvieto (NeurIPS 2024) show that these
terms grow with memory length even when the state gradients do not; ``_sensitivity_scaling``
measures their law on a diagonal linear recurrence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import _html
from ..core._probe import log_row_norms
from ..core._threads import blas_limit
from ..core._validation import check_seed
from ..engine._engine import check_cell, check_sequence
from ..engine._reverse import sequential_sweep
from ._param_terms import parameter_pass

GROUP_COLORS = ("#3b6fb6", "#c0503a", "#3a8a4f", "#8a5bb0", "#b08a2e", "#2e9aa6", "#6b6b6b")


@dataclass(frozen=True, repr=False)
class ParameterSensitivity:
    """Each step's contribution to ``dL/dtheta``, by lag and parameter group.

    Attributes
    ----------
    lags : ndarray, shape (T,)
        ``k = 0..T-1``: the contribution of step ``T - k`` (which reads ``h_{T-k-1}`` and
        ``x_{T-k}``), through its direct use of the weights.
    log_norms : dict of str to ndarray (T,)
        ``ln ||dL/dtheta_group from step T - k||`` (natural log; -inf where it is exactly 0), the
        loss summed over the batch.
    groups : dict of str to tuple of str
        The parameter names in each group.
    state_log_norms : ndarray, shape (T + 1, batch)
        ``ln ||dL/dh_{T-k}||``, the state gradients of the same pass, for comparison.
    scaled_gradient : dict of str to ndarray
        The full gradient ``dL/dtheta`` (the sum of all contributions) divided by
        ``exp(log_scale)``; `gradient` undoes the scale.
    log_scale : float
    loss : str

    Examples
    --------
    ``h_t = 0.5 h_(t-1) + 1`` from ``h_0 = 0`` gives ``h = 1, 1.5, 1.75, 1.875``; with the loss
    ``h_4``, step ``t`` adds ``0.5^(4-t) h_(t-1)`` to ``dL/dlam``: 1.75, 0.75, 0.25 and 0 by lag.

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.Cell(lambda p, h, x: p["lam"] * h + x, {"lam": [0.5]}, 1, 1)
    >>> sens = gf.parameter_sensitivity(cell, np.ones((4, 1, 1)), loss=lambda h: h[:, 0])
    >>> np.exp(sens.log_norms["lam"])
    array([1.75, 0.75, 0.25, 0.  ])
    >>> sens.gradient["lam"]
    array([2.75])
    """

    cell_name: str
    lags: np.ndarray
    log_norms: dict[str, np.ndarray]
    groups: dict[str, tuple[str, ...]]
    state_log_norms: np.ndarray
    scaled_gradient: dict[str, np.ndarray]
    log_scale: float
    loss: str

    @property
    def steps(self) -> int:
        return len(self.lags)

    @property
    def gradient(self) -> dict[str, np.ndarray]:
        """``dL/dtheta`` by parameter name: the contributions summed over every lag.

        Raises ``FloatingPointError`` when it overflows float64 (the norms by lag stay exact).
        """
        with np.errstate(over="ignore"):
            scale = np.exp(self.log_scale)
            out = {k: v * scale for k, v in self.scaled_gradient.items()}
        if not all(np.all(np.isfinite(v)) for v in out.values()):
            raise FloatingPointError(
                f"dL/dtheta of {self.cell_name!r} overflows float64 (ln of its "
                f"scale {self.log_scale:.4g}); log_norms by lag are exact"
            )
        return out

    def total_log_norms(self) -> dict[str, float]:
        """``ln ||dL/dtheta_group||`` of the full gradient, per group (finite when it overflows).

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.Cell(lambda p, h, x: p["lam"] * h + x, {"lam": [0.5]}, 1, 1)
        >>> sens = gf.parameter_sensitivity(cell, np.ones((4, 1, 1)), loss=lambda h: h[:, 0])
        >>> print(f"{np.exp(sens.total_log_norms()['lam']):.6f}")  # 1.75 + 0.75 + 0.25
        2.750000
        """
        out = {}
        for name, keys in self.groups.items():
            flat = np.concatenate([self.scaled_gradient[k].ravel() for k in keys])[None]
            out[name] = float(log_row_norms(flat)[0] + self.log_scale)
        return out

    def peak_lag(self, group: str) -> int | None:
        """The lag whose step contributes most to the group's gradient (None if none does).

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.Cell(lambda p, h, x: p["lam"] * h + x, {"lam": [0.5]}, 1, 1)
        >>> sens = gf.parameter_sensitivity(cell, np.ones((4, 1, 1)), loss=lambda h: h[:, 0])
        >>> sens.peak_lag("lam")
        0
        """
        values = self.log_norms[group]
        return int(self.lags[np.argmax(values)]) if np.any(np.isfinite(values)) else None

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per (group, lag), columns ``group``, ``lag``, ``log_norm`` (natural
        log) and ``log10_norm``.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.Cell(lambda p, h, x: p["lam"] * h + x, {"lam": [0.5]}, 1, 1)
        >>> sens = gf.parameter_sensitivity(cell, np.ones((4, 1, 1)), loss=lambda h: h[:, 0])
        >>> frame = sens.to_frame()
        >>> list(frame.columns), len(frame)
        (['group', 'lag', 'log_norm', 'log10_norm'], 4)
        >>> print(f"{frame.log10_norm[1]:.6f} {np.log10(0.75):.6f}")
        -0.124939 -0.124939
        """
        frames = [
            pd.DataFrame({"group": name, "lag": self.lags, "log_norm": v, "log10_norm": v / np.log(10)})
            for name, v in self.log_norms.items()
        ]
        return pd.concat(frames, ignore_index=True)

    def plot(self, ax=None):
        """log10 of each group's contribution against lag. Returns the matplotlib axes.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.Cell(lambda p, h, x: p["lam"] * h + x, {"lam": [0.5]}, 1, 1)
        >>> sens = gf.parameter_sensitivity(cell, np.ones((4, 1, 1)), loss=lambda h: h[:, 0])
        >>> ax = sens.plot(ax=Figure().subplots())
        >>> line = ax.get_lines()[0]
        >>> print(line.get_label(), f"{line.get_ydata()[1]:.6f} {np.log10(0.75):.6f}")
        lam -0.124939 -0.124939
        """
        from ..core._plot import new_axes

        ax = new_axes(ax)
        for (name, values), color in zip(self.log_norms.items(), _colors(len(self.groups)), strict=True):
            ax.plot(
                self.lags, np.where(np.isfinite(values), values / np.log(10), np.nan), color=color, label=name
            )
        ax.set_xlabel("lag k (step T - k)")
        ax.set_ylabel("log10 ||dL/dtheta from step T - k||")
        ax.set_title(f"{self.cell_name}: parameter sensitivity by lag")
        ax.legend(loc="best", fontsize="small")
        return ax

    def _summary(self) -> list[tuple[str, str]]:
        totals = self.total_log_norms()
        rows = [
            ("cell", self.cell_name),
            ("steps, batch", f"{self.steps}, {self.state_log_norms.shape[1]}"),
            ("loss", self.loss),
        ]
        for name in self.groups:
            peak = self.peak_lag(name)
            total = _html.number(totals[name] / np.log(10), ".4g")
            rows.append(
                (
                    name,
                    f"log10 ||dL/dtheta|| = {total}; "
                    f"largest share from lag {peak if peak is not None else 'none'}",
                )
            )
        return rows

    def __repr__(self) -> str:
        totals = self.total_log_norms()
        body = ", ".join(f"{k}: {v / np.log(10):.4g}" for k, v in totals.items())
        return (
            f"ParameterSensitivity(cell={self.cell_name!r}, steps={self.steps}, "
            f"log10 ||dL/dtheta|| by group {{{body}}})"
        )

    def _repr_html_(self) -> str:
        series = [
            _html.Series(self.lags, v / np.log(10), c)
            for v, c in zip(self.log_norms.values(), _colors(len(self.groups)), strict=True)
        ]
        figure = _html.chart(series, xlabel="lag k (steps)", ylabel="log10 norm")
        legend = ", ".join(
            f"{name} ({c})" for name, c in zip(self.groups, _colors(len(self.groups)), strict=True)
        )
        return _html.card(
            "ParameterSensitivity",
            self.cell_name,
            self._summary(),
            figure=figure,
            note=f"each step's share of dL/dtheta by lag, log10; lines: {legend}",
        )


def _colors(n: int) -> list[str]:
    return [GROUP_COLORS[i % len(GROUP_COLORS)] for i in range(n)]


def _check_groups(cell, groups) -> dict[str, tuple[str, ...]]:
    if not cell.params:
        raise ValueError(f"cell {cell.name!r} has no parameters: there is no dL/dtheta to split")
    if groups is None:
        return {k: (k,) for k in cell.params}
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(
            f"groups must be a non-empty mapping of group name to parameter names; got {groups!r}"
        )
    out = {}
    for name, keys in groups.items():
        keys = (keys,) if isinstance(keys, str) else keys
        if not isinstance(keys, Sequence) or not keys or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"groups[{name!r}] must be a non-empty list of parameter names; got {keys!r}")
        unknown = [k for k in keys if k not in cell.params]
        if unknown:
            raise ValueError(
                f"groups[{name!r}] names {unknown}, not parameters of cell {cell.name!r} "
                f"(which has {sorted(cell.params)})"
            )
        out[str(name)] = tuple(keys)
    return out


def _loss_function(loss, seed, state_size) -> tuple[Callable, str]:
    if loss is None:
        u = np.random.default_rng(check_seed(seed)).standard_normal(state_size)
        u /= np.linalg.norm(u)
        return (lambda h: h @ u), "random direction"
    if callable(loss):
        return loss, "custom"
    raise ValueError(f"loss must be a callable or None (a random direction); got {loss!r}")


def parameter_sensitivity(
    cell,
    xs,
    *,
    h0=None,
    loss: Callable | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> ParameterSensitivity:
    """Each step's contribution to ``dL/dtheta`` by lag ``k = T - t`` and parameter group.

    The contribution of step ``t`` is the cotangent at ``h_t`` pushed through that step's direct
    use of the parameters, ``(dL/dh_t)^T d step(h_{t-1}, x_t) / d theta``; summed over all
    steps it is autograd's gradient of the unrolled loss. One reverse pass for the
    cotangents (log space), then one batched VJP per time-chunk for all the terms.

    Parameters
    ----------
    cell : Cell
    xs : array, shape (T, batch, inputs)
    h0 : array, optional
        Initial state; zeros by default.
    loss : callable or None
        ``loss(state_T) -> (batch,)`` written with ``autograd.numpy``, summed over the batch;
        None (default): ``state_T @ u`` for a random unit vector ``u`` drawn from ``seed``.
    groups : mapping of str to list of str, optional
        Parameter names reported together (their contributions' joint norm); by default one
        group per parameter.
    seed : int
        Seed of the default loss direction.

    Returns
    -------
    ParameterSensitivity

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(8, 2, seed=0)
    >>> xs = gf.inputs.gaussian(50, 3, 2, seed=1)
    >>> sens = gf.parameter_sensitivity(cell, xs, groups={"recurrent": ["weight_hh_l0"],
    ...                                                  "input": ["weight_ih_l0"]})
    >>> sens.log_norms["recurrent"].shape, sens.lags[:3]
    ((50,), array([0, 1, 2]))
    >>> sens.to_frame().columns.tolist()
    ['group', 'lag', 'log_norm', 'log10_norm']
    """
    cell = check_cell(cell)
    xs, h0 = check_sequence(cell, xs, h0)
    groups = _check_groups(cell, groups)
    loss_fn, label = _loss_function(loss, seed, cell.state_size)
    with blas_limit():
        trajectory, recorder = sequential_sweep(cell, xs, h0, loss_fn)
        log_state, _ = recorder.log_norms()
        step_norms, scaled, log_scale = parameter_pass(cell, xs, trajectory, recorder.unit, log_state, groups)
    T = xs.shape[0]
    return ParameterSensitivity(
        cell_name=cell.name,
        lags=np.arange(T),
        log_norms={k: v[::-1].copy() for k, v in step_norms.items()},
        groups=groups,
        state_log_norms=log_state[::-1].copy(),
        scaled_gradient=scaled,
        log_scale=log_scale,
        loss=label,
    )
