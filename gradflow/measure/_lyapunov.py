"""Lyapunov spectra of trajectories: exponents in nats per step, by QR re-orthonormalisation.

``lambda_i = (1/T) sum_t ln R_t[i, i]`` for ``Q_t R_t = J_t Q_{t-1}`` (the loops are in
``_qr``). A cell driven by inputs, or an autonomous map wrapped as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..cells._cells import Cell
from ..core import _html, deprecated_spellings
from ..core._options import progress_bar, resolve_progress
from ..core._threads import limited
from ..core._validation import as_float_array, check_positive_int, check_seed
from ..engine._engine import check_sequence, steps_per_chunk, unroll, vanilla_unroll, vanilla_weights
from ._qr import initial_block, qr_log_growth_blocks, qr_log_growth_transposed, transposed_jacobians
from ._rates import regime_or_none

LN2 = np.log(2.0)


@dataclass(frozen=True, repr=False)
class LyapunovSpectrum:
    """Lyapunov exponents of a trajectory, in nats per step.

    Attributes
    ----------
    exponents : ndarray, shape (k,)
        Mean over the batch of each sample's exponents, largest first.
    per_sample : ndarray, shape (batch, k)
    trace : ndarray, shape (n, k)
        Running estimate of ``exponents`` after ``trace_steps[i]`` steps (convergence).
    trace_steps : ndarray, shape (n,)
    steps, warmup : int
        Steps averaged over, and steps discarded first to burn in state and ``Q``.
    state_size : int

    Examples
    --------
    Every direction of a linear cell with ``W = 0.5 * orthogonal`` shrinks by exactly 0.5 a step:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.rnn(4, 1, activation="linear", init="orthogonal", gain=0.5, seed=0)
    >>> spec = gf.lyapunov_spectrum(cell, gf.inputs.gaussian(60, 2, 1), warmup=10)
    >>> bool(np.allclose(spec.exponents, np.log(0.5))), spec.per_sample.shape, spec.steps
    (True, (2, 4), 50)
    >>> bool(np.allclose(spec.bits, -1.0)), spec.entropy_rate, spec.kaplan_yorke_dimension
    (True, 0.0, 0.0)
    """

    system: str
    exponents: np.ndarray
    per_sample: np.ndarray
    trace: np.ndarray
    trace_steps: np.ndarray
    steps: int
    warmup: int
    state_size: int

    @property
    def bits(self) -> np.ndarray:
        """Exponents in bits per step (log base 2)."""
        return self.exponents / LN2

    @property
    def top(self) -> float:
        return float(self.exponents[0])

    @property
    def entropy_rate(self) -> float:
        """Kolmogorov-Sinai entropy bound: the sum of positive exponents (nats/step)."""
        return float(np.sum(self.exponents[self.exponents > 0]))

    @property
    def kaplan_yorke_dimension(self) -> float:
        """``j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|`` with ``j`` the largest index of a
        non-negative partial sum; 0 when ``lambda_1 < 0``; NaN when more exponents are needed."""
        partial = np.cumsum(self.exponents)
        if partial[0] < 0:
            return 0.0
        j = int(np.flatnonzero(partial >= 0)[-1]) + 1
        if j == len(self.exponents):
            return float(j) if j == self.state_size else np.nan
        return float(j + partial[j - 1] / abs(self.exponents[j]))

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per (index, sample) with the exponent in nats and bits.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(4, 1, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> frame = gf.lyapunov_spectrum(cell, gf.inputs.gaussian(60, 2, 1), warmup=10).to_frame()
        >>> list(frame.columns), len(frame)  # 4 exponents x 2 samples
        (['index', 'sample', 'exponent', 'exponent_bits'], 8)
        >>> bool(np.allclose(frame.exponent_bits, np.log2(0.5)))
        True
        """
        b, k = self.per_sample.shape
        return pd.DataFrame(
            {
                "index": np.tile(np.arange(1, k + 1), b),
                "sample": np.repeat(np.arange(b), k),
                "exponent": self.per_sample.reshape(-1),
                "exponent_bits": self.per_sample.reshape(-1) / LN2,
            }
        )

    def plot(self, ax=None, kind: str = "spectrum"):
        """``kind="spectrum"``: exponents against index; ``"trace"``: running estimates against steps.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.rnn(4, 1, activation="linear", init="orthogonal", gain=0.5, seed=0)
        >>> spec = gf.lyapunov_spectrum(cell, gf.inputs.gaussian(60, 2, 1), warmup=10)
        >>> ax = spec.plot(ax=Figure().subplots())
        >>> ax.get_title(), bool(np.allclose(ax.get_lines()[0].get_ydata(), spec.exponents))
        ('rnn-linear: lambda_1 = -0.6931 nats/step', True)
        """
        from ..core._plot import new_axes

        ax = new_axes(ax)
        if kind == "spectrum":
            idx = np.arange(1, len(self.exponents) + 1)
            ax.plot(idx, self.exponents, "o-", markersize=3)
            ax.axhline(0.0, color="0.4", linewidth=0.8)
            ax.set(xlabel="index i", ylabel="lambda_i (nats/step)")
        elif kind == "trace":
            ax.plot(self.trace_steps, self.trace[:, : min(5, self.trace.shape[1])])
            ax.set(xlabel="steps averaged", ylabel="running lambda_i (nats/step)")
        else:
            raise ValueError(f"unknown kind {kind!r}; expected 'spectrum' or 'trace'")
        ax.set_title(f"{self.system}: lambda_1 = {self.top:+.4f} nats/step")
        return ax

    def _summary(self):
        ky = self.kaplan_yorke_dimension
        return [
            ("system", self.system),
            ("exponents", f"{len(self.exponents)} of {self.state_size}"),
            ("lambda_1", f"{self.top:+.5g} nats/step ({self.bits[0]:+.5g} bits/step)"),
            ("sum", f"{self.exponents.sum():+.5g} nats/step"),
            ("Kaplan-Yorke dimension", "needs more exponents" if np.isnan(ky) else f"{ky:.4g}"),
            ("entropy rate", f"{self.entropy_rate:.5g} nats/step"),
            ("steps (warm-up)", f"{self.steps} ({self.warmup}), batch {self.per_sample.shape[0]}"),
        ]

    def __repr__(self):
        shown = ", ".join(f"{v:+.4f}" for v in self.exponents[:4])
        more = ", ..." if len(self.exponents) > 4 else ""
        return (
            f"LyapunovSpectrum(system={self.system!r}, k={len(self.exponents)}, "
            f"exponents=[{shown}{more}] nats/step, steps={self.steps})"
        )

    def _repr_html_(self):
        figure = _html.indexed(self.exponents, "lambda_i (nats/step)")
        return _html.card(
            "LyapunovSpectrum",
            self.system,
            self._summary(),
            regime=regime_or_none(self.top),
            figure=figure,
            note="badge: lambda_1 against the neutral band of gf.regime_of",
        )


def map_cell(f: Callable, state_size: int, name: str = "map") -> Cell:
    """Wrap an autonomous map ``f(state) -> state`` (acting on the last axis) as a cell."""
    if not callable(f):
        raise ValueError(f"f must be callable; got {f!r}")
    return Cell(lambda params, h, x: f(h), {}, state_size, 0, name=name)


@limited  # BLAS threads by gradflow's policy (_threads): one by default
def _spectrum(
    cell: Cell,
    xs: np.ndarray,
    h0: np.ndarray,
    k: int | None,
    warmup: int,
    reortho_every: int | str,
    seed: int,
    name: str,
    progress: bool | None = None,
) -> LyapunovSpectrum:
    T, B, _ = xs.shape
    S = cell.state_size
    k = S if k is None else check_positive_int("k", k)
    if k > S:
        raise ValueError(f"k must be at most the state size {S}; got {k}")
    warmup = check_positive_int("warmup", warmup, minimum=0)
    if isinstance(reortho_every, str):
        if reortho_every != "auto":
            raise ValueError(f"reortho_every must be a positive integer or 'auto'; got {reortho_every!r}")
    else:
        reortho_every = check_positive_int("reortho_every", reortho_every)
    if warmup >= T:
        raise ValueError(f"warmup must be shorter than the sequence: warmup={warmup}, T={T}")
    seed = check_seed(seed)
    weights = vanilla_weights(cell)
    states, pre = vanilla_unroll(cell, weights, xs, h0) if weights else (unroll(cell, xs, h0=h0), None)
    logs = np.empty((T, B, k))
    Q0 = initial_block(np.random.default_rng(seed), B, S, k)
    if 4 * k >= S:
        # Many exponents: form J_t in time-chunks, then the sequential QR loop.
        def steps():
            with progress_bar(T, "lyapunov", "step", progress) as bar:
                for Jt in transposed_jacobians(cell, xs, states, steps_per_chunk(B * S, S), pre):
                    yield Jt
                    bar.update(1)

        qr_log_growth_transposed(steps(), Q0, reortho_every, logs, warmup)
    else:
        qr_log_growth_blocks(cell, states, xs, Q0, reortho_every, logs, warmup, pre)
    counted = logs[warmup:]
    n = T - warmup
    per_sample = counted.sum(axis=0) / n  # (B, k)
    order = np.argsort(-per_sample.mean(axis=0), kind="stable")
    per_sample = per_sample[:, order]
    marks = np.unique(np.linspace(1, n, min(n, 200)).astype(int))
    running = np.cumsum(counted.mean(axis=1), axis=0)[marks - 1] / marks[:, None]
    return LyapunovSpectrum(
        system=name,
        exponents=per_sample.mean(axis=0),
        per_sample=per_sample,
        trace=running[:, order],
        trace_steps=marks,
        steps=n,
        warmup=warmup,
        state_size=S,
    )


@deprecated_spellings(renamed={"system": "cell", "steps": "seq_len"})
def lyapunov_spectrum(
    cell,
    xs=None,
    *,
    k: int | None = None,
    h0=None,
    warmup: int = 100,
    reortho_every: int | str = "auto",
    x0=None,
    seq_len: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> LyapunovSpectrum:
    """Lyapunov exponents along a trajectory, by QR re-orthonormalisation.

    Parameters
    ----------
    cell : Cell or callable
        A cell driven by ``xs``, or an autonomous map ``f(state) -> state`` written
        with ``autograd.numpy`` that acts on the last axis (states of shape
        ``(batch, S)``), started from ``x0`` and iterated ``seq_len`` times.
    xs : array, shape (T, batch, inputs)
        Inputs, for a cell.
    k : int, optional
        Number of exponents (the largest ``k``); all by default.
    h0 : array, optional
        Initial state of a cell.
    warmup : int
        Steps run first and not averaged, to burn in the state and ``Q``.
    reortho_every : int or "auto"
        Re-orthonormalise every this many steps (a warning says when that was too rare); in
        between, ``J_t`` multiplies the product so far (a matrix product instead of a QR).
        ``"auto"`` (default): blocks of 1 to 64 steps, as long as the growth rates measured so
        far keep the product's ``|R_ii|`` spread below 1e3 (every step for a chaotic tanh
        network's full spectrum; tens of steps for its top exponents); the exponents agree with
        re-orthonormalising every step to ~1e-12. Blocks always end at the warm-up and at the
        last step.
    x0 : array, shape (S,) or (batch, S)
        Initial state of a map.
    seq_len : int
        Iterations of a map (its sequence length), warm-up included.
    seed : int
        Seed of the random initial block ``Q_0``.
    progress : bool, optional
        A progress bar over the steps when many exponents are computed (``4 k >= S``, the
        costly case at large N); default ``gf.options().progress``, shown after a second.

    Returns
    -------
    LyapunovSpectrum
        An exponent is ``-inf`` (exactly, without a warning) when some step's Jacobian maps
        that direction exactly to zero, e.g. every ReLU unit dead or a fully saturated
        tanh: the product is then singular and ``ln 0`` is its true value.

    Examples
    --------
    The Hénon map (a = 1.4, b = 0.3): exponents about (0.419, -1.623), summing to ln 0.3.

    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import gradflow as gf
    >>> def henon(s):
    ...     x, y = s[..., 0], s[..., 1]
    ...     return anp.stack([1 - 1.4 * x**2 + y, 0.3 * x], axis=-1)
    >>> spec = gf.lyapunov_spectrum(henon, x0=[0.1, 0.1], seq_len=20_000)
    >>> print(np.round(spec.exponents, 2), f"{spec.exponents.sum():.6f}", f"{np.log(0.3):.6f}")
    [ 0.42 -1.62] -1.203973 -1.203973
    """
    if isinstance(cell, Cell):
        if xs is None:
            raise ValueError("xs is required when cell is a Cell")
        if x0 is not None or seq_len is not None:
            raise ValueError("x0 and seq_len are for maps; a cell takes xs (and h0)")
        xs, h0 = check_sequence(cell, xs, h0)
        return _spectrum(cell, xs, h0, k, warmup, reortho_every, seed, cell.name, resolve_progress(progress))
    if not callable(cell):
        raise ValueError(f"cell must be a Cell or a callable map; got {type(cell).__name__}")
    if x0 is None or seq_len is None:
        raise ValueError("a map needs x0 (its initial state) and seq_len")
    x0 = np.atleast_2d(as_float_array("x0", x0, ndim=(1, 2)))  # (S,) -> (1, S)
    xs = np.zeros((check_positive_int("seq_len", seq_len), x0.shape[0], 0))  # a map has no inputs
    name = getattr(cell, "__name__", "map")
    cell = map_cell(cell, x0.shape[1], name=name)
    return _spectrum(cell, xs, x0, k, warmup, reortho_every, seed, name, resolve_progress(progress))
