"""The predictor registry: `predictor` registers ``function(context) -> PredictorResult`` with
what it needs; `predictors` lists them in table order; `run_predictors` runs them over one
`PredictorContext` (the cell, inputs, forward run, starts, rng, tolerance and options).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..cells._cells import Cell
from ..cells._linearisation import recurrent_matrix
from ..core._registry import is_vanilla
from ..engine._engine import unroll
from ._results import PredictorResult


def one_layer_gated(cell: Cell) -> bool:
    """A one-layer LSTM or GRU in PyTorch's layout (what the gated mean-field reads)."""
    return (
        cell.kind in ("lstm", "gru")
        and cell.config.get("layers", 1) == 1
        and not cell.config.get("proj_size")
        and cell.config.get("reset_after") is not False
    )


# What a predictor may need: a test of the context, and why it abstains when the test fails.
# "forward run" is different: without one (``input_std``) the predictor does not run at all.
NEEDS: dict[str, tuple[Callable[[PredictorContext], bool], str]] = {
    "weights": (lambda c: True, ""),
    "input statistics": (lambda c: True, ""),
    "forward run": (lambda c: c.xs is not None, "needs a forward run (xs)"),
    "vanilla cell": (lambda c: recurrent_matrix(c.cell) is not None, "needs a one-layer vanilla cell"),
    "gated cell": (lambda c: one_layer_gated(c.cell), "needs a one-layer LSTM or GRU"),
    "linear cell": (
        lambda c: bool(c.cell.config.get("linear")),
        "needs a cell linear in its state (LRU, S4D, minGRU, minLSTM, Mamba)",
    ),
}


@dataclass(frozen=True)
class Predictor:
    """A registered predictor: ``function(context) -> PredictorResult`` and what it reads.

    ``needs``: keys of `NEEDS`; ``cheap``: fast enough for an interactive redraw (the explorer);
    ``default``: runs when `predict` is not told which predictors to run (else only on request).

    Examples
    --------
    >>> import gradflow as gf
    >>> pascanu = gf.predictors()[1]
    >>> pascanu.name, pascanu.needs, pascanu.cheap, pascanu.default
    ('pascanu bound', ('weights', 'vanilla cell'), True, True)
    """

    name: str
    function: Callable[[PredictorContext], PredictorResult]
    needs: tuple[str, ...]
    cheap: bool
    default: bool = True

    def unmet(self, context: PredictorContext) -> str | None:
        """Why this predictor cannot answer for ``context`` (the first unmet need), else None.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> context = gf.PredictorContext(gf.lstm(4, 2), tol=0.1, rng=np.random.default_rng(0))
        >>> [p.unmet(context) for p in gf.predictors()[:2]]
        [None, 'needs a one-layer vanilla cell']
        """
        for need in self.needs:
            test, reason = NEEDS[need]
            if not test(context):
                return reason
        return None


_REGISTRY: dict[str, Predictor] = {}


def predictor(name: str, *, needs: Iterable[str] = ("weights",), cheap: bool = False, default: bool = True):
    """Register ``function(context: PredictorContext) -> PredictorResult`` as predictor ``name``.

    Predictors run, and tables list them, in the order they were registered; one registered
    with ``default=False`` runs only when named (`predict`'s ``predictors``).

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.predictors()[0].name, gf.predictors()[0].needs
    ('eigenvalue rule', ('weights', 'input statistics'))
    """
    needs = tuple(needs)
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(
            f"unknown need {unknown[0]!r} for predictor {name!r}; needs are {', '.join(map(repr, NEEDS))}"
        )
    if name in _REGISTRY:
        raise ValueError(f"a predictor named {name!r} is already registered")

    def register(function):
        _REGISTRY[name] = Predictor(name, function, needs, bool(cheap), bool(default))
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
    """``names`` as a tuple of registered predictor names (the default ones when None), in table
    order."""
    if names is None:
        return tuple(n for n, p in _REGISTRY.items() if p.default)
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

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> context = gf.PredictorContext(gf.rnn(4, 2), tol=0.1, rng=np.random.default_rng(0), input_std=1.0)
    >>> context.xs is None, context.x_mean, context.starts.shape
    (True, array([0., 0.]), (5, 4))
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
        """A copy of the keyword arguments for predictor ``name`` (empty when none were given).

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> context = gf.PredictorContext(gf.rnn(4, 2), tol=0.1, rng=np.random.default_rng(0),
        ...                               options={"moment map": {"rows": 32}})
        >>> context.option("moment map"), context.option("local gain")
        ({'rows': 32}, {})
        """
        return dict(self.options.get(name, {}))

    @cached_property
    def states(self) -> np.ndarray:
        return unroll(self.cell, self.xs, h0=self.h0)

    @property
    def window(self) -> slice:
        if self.xs is None:
            raise ValueError("the fit window needs a forward run (xs)")
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
    def known_eigenvalues(self) -> dict:
        """Eigenvalues by matrix (`eigenvalues_of`): the eigenvalue rule's linearisation and a fixed
        point's Jacobian with the same bytes (a fixed point at the origin) are decomposed once."""
        return {}

    @cached_property
    def centre(self) -> np.ndarray:
        """Where the trajectory lives: the fixed point nearest it is the one that matters."""
        if self.xs is None:
            return np.zeros(self.cell.state_size)
        return self.states[self.window.start :].mean(axis=(0, 1))


def runnable(context: PredictorContext, names: Iterable[str]) -> tuple[str, ...]:
    """The named predictors that run for ``context``: those needing a forward run only with ``xs``."""
    return tuple(
        n
        for n in check_predictors(names)
        if context.xs is not None or "forward run" not in _REGISTRY[n].needs
    )


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


def input_drive(cell: Cell, xs: np.ndarray) -> float:
    """Mean squared input drive ``(W_ih x)^2`` of a vanilla cell's units (mean-field's input variance)."""
    U = cell.params.get("weight_ih_l0")
    if U is None or not is_vanilla(cell.kind):
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        drive = float(np.mean((xs @ U.T) ** 2))
    if not np.isfinite(drive):  # blame what the caller passed, not mean-field's input_var
        raise ValueError(
            f"xs is too large: its drive (W_ih x)^2 overflows float64 (max |x| = {np.max(np.abs(xs)):.3g})"
        )
    return drive
