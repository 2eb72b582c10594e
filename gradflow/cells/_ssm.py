"""A diagonal state-space layer (S4D / S5) as a gradflow cell.

Continuous time ``h'(s) = A h(s) + B x(s)`` with ``A`` diagonal complex, ``A_n = -exp(log_A_real_n)
+ i A_imag_n``, S4D-Lin initialisation ``A_n = -1/2 + i pi n`` (Gu, Gupta, Goel, Re 2022, "On the
Parameterization and Initialization of Diagonal State Space Models"), discretised by zero-order
hold with a learned step ``dt_n = exp(log_dt_n)`` per mode:

    ``Abar = exp(dt A)``, ``Bbar = (Abar - 1) / A * B``, ``h_t = Abar h_{t-1} + Bbar x_t``,

and read out as ``y_t = Re(C h_t) + D * x_t``. ``B`` (N, D) and ``C`` (D, N) are dense complex
(multi-input, multi-output, as in S5: Smith, Warrington, Linderman 2023, with one step per mode);
the state is ``[Re h, Im h]`` like the LRU's (``gradflow._lru``).
"""

from __future__ import annotations

from collections.abc import Mapping

import autograd.numpy as anp
import numpy as np

from ..core._registry import CellKind, register_cell_kind
from ..core._validation import check_finite_float, check_positive_int, check_seed
from ._cells import Cell
from ._lru import diagonal_step, readout

KIND = "s4d"


def discretise(params: Mapping[str, np.ndarray]):
    """Zero-order hold: ``(Abar_re, Abar_im, Bbar_re, Bbar_im)``, real arrays (N,) and (N, D).

    ``Abar - 1 = expm1(dt A)`` is formed without cancellation (a small ``dt |A|`` would otherwise
    lose digits), then divided by ``A``.
    """
    dt = anp.exp(params["log_dt"])
    a_re, a_im = -anp.exp(params["log_A_real"]), params["A_imag"]
    x, y = dt * a_re, dt * a_im
    abar_re, abar_im = anp.exp(x) * anp.cos(y), anp.exp(x) * anp.sin(y)
    m1_re = anp.expm1(x) * anp.cos(y) - 2.0 * anp.sin(0.5 * y) ** 2  # Re(exp(x + iy) - 1)
    norm = a_re**2 + a_im**2
    coef_re = ((m1_re * a_re + abar_im * a_im) / norm)[:, None]  # (Abar - 1) / A
    coef_im = ((abar_im * a_re - m1_re * a_im) / norm)[:, None]
    b_re, b_im = params["B_re"], params["B_im"]
    return abar_re, abar_im, coef_re * b_re - coef_im * b_im, coef_re * b_im + coef_im * b_re


def s4d_step(params, state, x):
    return diagonal_step(*discretise(params), state, x)


def s4d(
    hidden: int,
    inputs: int,
    *,
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    seed: int = 0,
    name: str | None = None,
) -> Cell:
    """A diagonal state-space layer: S4D-Lin ``A``, zero-order hold with a learned step.

    ``A_n = -1/2 + i pi n`` (n = 0..N-1), ``log_dt`` uniform in ``[log dt_min, log dt_max]``,
    ``B`` entries complex ``N(0, 1/D)`` (real and imaginary parts ``N(0, 1/(2D))``), ``C`` entries
    ``N(0, 1/N)`` per part, ``D`` ``N(0, 1)``. ``|Abar_n| = exp(-dt_n / 2)``: between 0.95 and
    0.9995 with the default steps, so memory spans ~20 to ~2,000 steps. State ``[Re h, Im h]``
    (one component ``"h"``); the layer's output (not part of the recurrence) is `layer_outputs`.

    Parameters
    ----------
    hidden : int
        Complex modes ``N`` (``state_size = 2N``); as for `lru`, ``hidden`` is the state's size.
    inputs : int
        Input (and output) width ``D``.
    dt_min, dt_max : float
        Range of the initial steps, ``0 < dt_min <= dt_max``.
    seed : int

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> from gradflow.cells._ssm import discretise
    >>> cell = gf.s4d(8, 2, seed=0)
    >>> a_re, a_im, _, _ = discretise(cell.params)
    >>> bool(np.allclose(np.hypot(a_re, a_im), np.exp(-np.exp(cell.params["log_dt"]) / 2)))
    True
    """
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    dt_min = check_finite_float("dt_min", dt_min)
    dt_max = check_finite_float("dt_max", dt_max)
    if not 0 < dt_min <= dt_max:
        raise ValueError(
            f"dt_min and dt_max must satisfy 0 < dt_min <= dt_max; got dt_min={dt_min}, dt_max={dt_max}"
        )
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    params = {
        "log_dt": rng.uniform(np.log(dt_min), np.log(dt_max), size=hidden),
        "log_A_real": np.full(hidden, np.log(0.5)),
        "A_imag": np.pi * np.arange(hidden, dtype=float),
        "B_re": rng.normal(size=(hidden, inputs)) / np.sqrt(2 * inputs),
        "B_im": rng.normal(size=(hidden, inputs)) / np.sqrt(2 * inputs),
        "C_re": rng.normal(size=(inputs, hidden)) / np.sqrt(hidden),
        "C_im": rng.normal(size=(inputs, hidden)) / np.sqrt(hidden),
        "D": rng.normal(size=inputs),
    }
    config = {
        "hidden": hidden,
        "inputs": inputs,
        "linear": True,
        "complex": True,
        "dt_min": dt_min,
        "dt_max": dt_max,
        "seed": seed,
    }
    return Cell(
        s4d_step,
        params,
        2 * hidden,
        inputs,
        kind=KIND,
        components={"h": np.arange(2 * hidden)},
        config=config,
        name=name or KIND,
        stacked_tangents=True,
    )


def outputs(cell: Cell, states: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The layer's outputs ``y_t = Re(C h_t) + D * x_t`` (T, batch, inputs) from `unroll`'s states."""
    return readout(cell.params, states[1:], xs)


def linear_coefficients(cell: Cell, xs: np.ndarray, h0: np.ndarray | None = None):
    """The per-step map ``h_t = a_t * h_{t-1} + b_t`` for validated inputs: complex (T, batch, N)
    arrays on ``h = Re h + i Im h``, ``a_t = Abar``, ``b_t = Bbar x_t`` (as for the LRU).
    """
    a_re, a_im, b_re, b_im = discretise(cell.params)
    b = xs @ (b_re + 1j * b_im).T
    return np.broadcast_to(a_re + 1j * a_im, b.shape).copy(), b


register_cell_kind(
    CellKind(
        KIND,
        s4d_step,
        s4d,
        parts=(("h", 2),),
        options={"dt_min": 1e-3, "dt_max": 1e-1},
        description="diagonal state-space layer (S4D-Lin, zero-order hold); complex state [Re h, Im h]",
        pytorch_layout=False,
        linear_coefficients=linear_coefficients,
        layer_outputs=outputs,
    )
)
