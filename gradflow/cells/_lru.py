"""The Linear Recurrent Unit (Orvieto et al. 2023) as a gradflow cell.

``h_t = lambda * h_{t-1} + gamma * (B x_t)`` with ``lambda = exp(-exp(nu_log) + i exp(theta_log))``
diagonal complex and ``gamma = exp(gamma_log)``; output ``y_t = Re(C h_t) + D * x_t``.
Transcribed from the reference ``lru/model.py`` of github.com/NicolasZucchet/minimal-LRU
(the code of Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De, "Resurrecting Recurrent
Neural Networks for Long Sequences", ICML 2023), with its parameter names and initialisation.

The complex state of N modes is held as the real vector ``[Re h, Im h]`` (``state_size = 2N``),
so every norm gradflow takes is the norm of the real and imaginary parts together, i.e. the
complex norm. Cells that are linear in the state say so with ``config["linear"] = True`` and
give their per-step map ``h_t = a_t * h_{t-1} + b_t`` through ``linear_coefficients``, a field of
their `CellKind` (public as ``gradflow.linear_coefficients``, which validates the inputs and reads
the kind's record; likewise ``outputs`` as ``gradflow.layer_outputs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import autograd.numpy as anp
import numpy as np

from ..core._diagonal import complex_diagonal_update
from ..core._registry import CellKind, register_cell_kind
from ..core._validation import as_float_array, check_finite_float, check_positive_int, check_seed, keys_under
from ._cells import Cell

KIND = "lru"
# The reference names and their shapes for N modes and D inputs (= outputs).
PARAM_SHAPES = {
    "nu_log": ("N",),
    "theta_log": ("N",),
    "gamma_log": ("N",),
    "B_re": ("N", "D"),
    "B_im": ("N", "D"),
    "C_re": ("D", "N"),
    "C_im": ("D", "N"),
    "D": ("D",),
}


def complex_parts(state, modes: int):
    """``(Re h, Im h)`` of a real-stacked complex state ``[Re h, Im h]`` (last axis ``2 * modes``)."""
    return state[..., :modes], state[..., modes:]


def eigenvalues(params: Mapping[str, Any]) -> np.ndarray:
    """``lambda = exp(-exp(nu_log) + i exp(theta_log))``, the diagonal of the recurrence."""
    return np.exp(-np.exp(params["nu_log"]) + 1j * np.exp(params["theta_log"]))


def diagonal_step(a_re, a_im, b_re, b_im, state, x):
    """``h' = a * h + b x`` for complex diagonal ``a`` (N,) and input matrix ``b`` (N, D), on the
    real-stacked state ``[Re h, Im h]``; the step of every diagonal complex recurrence here."""
    # One fused primitive on the state's path: fast to trace, and it takes stacked tangents.
    return complex_diagonal_update(a_re, a_im, state, anp.concatenate([x @ b_re.T, x @ b_im.T], axis=1))


def readout(params: Mapping[str, np.ndarray], states: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``y_t = Re(C h_t) + D * x_t`` from real-stacked states (T, batch, 2N) and inputs (T, batch, D)."""
    re, im = complex_parts(states, states.shape[-1] // 2)
    return re @ params["C_re"].T - im @ params["C_im"].T + params["D"] * xs


def lru_step(params, state, x):
    """One LRU step on the real-stacked state ``[Re h, Im h]`` (see the module docstring)."""
    modulus = anp.exp(-anp.exp(params["nu_log"]))
    phase = anp.exp(params["theta_log"])
    gamma = anp.exp(params["gamma_log"])[:, None]
    return diagonal_step(
        modulus * anp.cos(phase),
        modulus * anp.sin(phase),
        gamma * params["B_re"],
        gamma * params["B_im"],
        state,
        x,
    )


def _build(params: Mapping[str, np.ndarray], hidden: int, inputs: int, name: str | None, **extra) -> Cell:
    config = {"hidden": hidden, "inputs": inputs, "linear": True, "complex": True, **extra}
    return Cell(
        lru_step,
        params,
        2 * hidden,
        inputs,
        kind=KIND,
        components={"h": np.arange(2 * hidden)},
        config=config,
        name=name or KIND,
        stacked_tangents=True,
    )


def lru(
    hidden: int,
    inputs: int,
    *,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * np.pi,
    seed: int = 0,
    name: str | None = None,
) -> Cell:
    """A Linear Recurrent Unit with the reference initialisation (Orvieto et al. 2023).

    ``|lambda|`` is drawn uniformly on the ring ``r_min <= |lambda| <= r_max`` (uniform in area)
    and its phase uniformly in ``[0, max_phase)``; ``gamma = sqrt(1 - |lambda|^2)`` normalises the
    input so a white-noise input gives each mode unit variance; ``B`` and ``C`` are Glorot-normal
    as in the reference (``B`` entries ``N(0, 1/(2D))``, ``C`` entries ``N(0, 1/N)``), ``D``
    ``N(0, 1)``. The state is ``[Re h, Im h]``, one component ``"h"`` (the complex state; its norm
    is the complex norm); `layer_outputs` gives ``y_t = Re(C h_t) + D * x_t``.

    Parameters
    ----------
    hidden : int
        Complex modes ``N`` (``state_size = 2N``).
    inputs : int
        Input (and output) width ``D``.
    r_min, r_max : float
        Ring of the eigenvalue moduli, ``0 <= r_min < r_max <= 1``.
    max_phase : float
        Largest eigenvalue phase (radians, > 0).
    seed : int
        Seed of every draw.

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.lru(16, 3, r_min=0.9, r_max=0.99, seed=0)
    >>> cell.state_size, cell.kind, cell.config["linear"]
    (32, 'lru', True)
    >>> from gradflow.cells._lru import eigenvalues
    >>> lam = eigenvalues(cell.params)
    >>> bool(np.all((np.abs(lam) >= 0.9) & (np.abs(lam) <= 0.99)))
    True
    """
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    r_min = check_finite_float("r_min", r_min, minimum=0.0)
    r_max = check_finite_float("r_max", r_max)
    if not r_min < r_max <= 1.0:
        raise ValueError(f"r_max must satisfy r_min < r_max <= 1; got r_min={r_min}, r_max={r_max}")
    max_phase = check_finite_float("max_phase", max_phase)
    if max_phase <= 0:
        raise ValueError(f"max_phase must be > 0; got {max_phase}")
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    # The reference's draws, in its order (theta, nu, gamma from both, B, C, D).
    theta_log = np.log(max_phase * rng.uniform(size=hidden))
    nu_log = np.log(-0.5 * np.log(rng.uniform(size=hidden) * (r_max**2 - r_min**2) + r_min**2))
    params = {
        "nu_log": nu_log,
        "theta_log": theta_log,
        # log sqrt(1 - |lambda|^2) with 1 - |lambda|^2 = -expm1(-2 exp(nu_log)): exact as |lambda| -> 1
        "gamma_log": 0.5 * np.log(-np.expm1(-2.0 * np.exp(nu_log))),
        "B_re": rng.normal(size=(hidden, inputs)) / np.sqrt(2 * inputs),
        "B_im": rng.normal(size=(hidden, inputs)) / np.sqrt(2 * inputs),
        "C_re": rng.normal(size=(inputs, hidden)) / np.sqrt(hidden),
        "C_im": rng.normal(size=(inputs, hidden)) / np.sqrt(hidden),
        "D": rng.normal(size=inputs),
    }
    return _build(params, hidden, inputs, name, r_min=r_min, r_max=r_max, max_phase=max_phase, seed=seed)


def lru_from_arrays(arrays: Mapping[str, Any], *, prefix: str | None = None, name: str | None = None) -> Cell:
    """An LRU from arrays under the reference names (a flax ``params`` dict, a ``.npz``, ...).

    Needs ``nu_log``, ``theta_log``, ``gamma_log`` (N,), ``B_re``, ``B_im`` (N, D), ``C_re``,
    ``C_im`` (D, N) and ``D`` (D,); other keys are an error (nothing is silently dropped).
    ``prefix`` takes the arrays under one module of a larger model (``"encoder.lru"``).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.lru(4, 2, seed=1)
    >>> again = gf.lru_from_arrays(cell.params)
    >>> all(np.array_equal(again.params[k], cell.params[k]) for k in cell.params)
    True
    """
    if not isinstance(arrays, Mapping):
        raise ValueError(f"arrays must be a mapping of the LRU names to arrays; got {type(arrays).__name__}")
    if prefix is not None:
        arrays = keys_under(arrays, prefix)
    missing = sorted(set(PARAM_SHAPES) - set(arrays))
    unknown = sorted(str(k) for k in set(arrays) - set(PARAM_SHAPES))
    if missing or unknown:
        raise ValueError(
            f"arrays must hold exactly {sorted(PARAM_SHAPES)}; missing {missing}, unexpected {unknown}"
        )
    params = {k: as_float_array(f"arrays[{k!r}]", arrays[k], ndim=len(s)) for k, s in PARAM_SHAPES.items()}
    hidden, inputs = params["B_re"].shape
    sizes = {"N": hidden, "D": inputs}
    for key, symbolic in PARAM_SHAPES.items():
        shape = tuple(sizes[s] for s in symbolic)
        if params[key].shape != shape or 0 in shape:
            raise ValueError(
                f"arrays[{key!r}] must have shape {shape} (N={hidden} modes, D={inputs} "
                f"inputs, read off B_re); got {params[key].shape}"
            )
    return _build(params, hidden, inputs, name)


def outputs(cell: Cell, states: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The layer's outputs ``y_t = Re(C h_t) + D * x_t`` (T, batch, inputs) from `unroll`'s states."""
    return readout(cell.params, states[1:], xs)


def linear_coefficients(cell: Cell, xs: np.ndarray, h0: np.ndarray | None = None):
    """The per-step map ``h_t = a_t * h_{t-1} + b_t`` of an LRU for validated inputs (T, batch, D).

    Complex ``a_t = lambda`` and ``b_t = gamma * (B x_t)`` of shape (T, batch, N), acting on the
    complex state ``h = Re h + i Im h`` (the cell's real state is ``[h.real, h.imag]``).
    """
    p = cell.params
    b_norm = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    b = xs @ b_norm.T
    return np.broadcast_to(eigenvalues(p), b.shape).copy(), b


register_cell_kind(
    CellKind(
        KIND,
        lru_step,
        lru,
        parts=(("h", 2),),
        options={"r_min": 0.0, "r_max": 1.0, "max_phase": 2 * np.pi},
        description="Linear Recurrent Unit (Orvieto et al. 2023); complex state [Re h, Im h]",
        pytorch_layout=False,
        linear_coefficients=linear_coefficients,
        layer_outputs=outputs,
        loader=lru_from_arrays,
    )
)
