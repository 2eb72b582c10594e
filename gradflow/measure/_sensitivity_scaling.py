"""Zucchet & Orvieto's law, measured: the sensitivity of a diagonal linear recurrence to its
eigenvalue against memory length, with and without input normalisation.

"Recurrent neural networks: vanishing and exploding gradients are not the end of the story"
(NeurIPS 2024, arXiv 2405.21064), section 3: for ``h_t = lambda h_{t-1} + x_t`` with white-noise
input the state variance grows like ``1 / (1 - |lambda|^2)`` but ``E|dh_t/dlambda|^2`` like
``(1 + |lambda|^2) / (1 - |lambda|^2)^3``; scaling the input by ``sqrt(1 - |lambda|^2)`` (the LRU's
``gamma``) takes one power away. `sensitivity_scaling` measures it with `parameter_sensitivity`,
`scaling_exponents` fits the law.
"""

from __future__ import annotations

from collections.abc import Sequence

import autograd.numpy as anp
import numpy as np
import pandas as pd

from ..cells._cells import Cell
from ..core import deprecated_spellings
from ..core._options import progress_bar
from ..core._validation import check_seed
from ..engine._engine import unroll
from ._param_sensitivity import parameter_sensitivity


def diagonal_cell(lambdas, normalised=False, name: str | None = None):
    """``h_t = lambda * h_{t-1} + gamma * x_t`` per unit, complex ``lambda`` held as (re, im) pairs.

    The state is ``[Re h (n), Im h (n)]``; unit ``i`` reads input channel ``i``. ``gamma`` is
    ``sqrt(1 - |lambda|^2)`` where ``normalised`` (a bool, or one per unit: the LRU's input
    normalisation, a parameter of its own, so ``d/d lambda`` does not pass through it), else 1.

    Examples
    --------
    >>> import numpy as np
    >>> from gradflow.measure import diagonal_cell
    >>> cell = diagonal_cell(np.array([0.9j, 0.5]), normalised=True)
    >>> cell.state_size, sorted(cell.params)
    (4, ['gamma', 'lambda_im', 'lambda_re'])
    """
    lambdas = np.asarray(lambdas, dtype=complex).ravel()
    if lambdas.size == 0 or not np.all(np.isfinite(lambdas)) or np.any(np.abs(lambdas) >= 1):
        raise ValueError(
            f"lambdas must be a non-empty array of complex numbers with |lambda| < 1; got {lambdas!r}"
        )
    n = lambdas.size
    flags = np.broadcast_to(np.asarray(normalised, dtype=bool), (n,))
    gamma = np.where(flags, np.sqrt(1.0 - np.abs(lambdas) ** 2), 1.0)

    def step(p, h, x):
        re, im = h[:, :n], h[:, n:]
        drive = p["gamma"] * x
        return anp.concatenate(
            [p["lambda_re"] * re - p["lambda_im"] * im + drive, p["lambda_re"] * im + p["lambda_im"] * re],
            axis=1,
        )

    params = {"lambda_re": lambdas.real, "lambda_im": lambdas.imag, "gamma": gamma}
    return Cell(
        step,
        params,
        2 * n,
        n,
        config={"linear": True, "complex": True},
        name=name or ("diagonal (normalised)" if flags.all() else "diagonal"),
        components={"re": np.arange(n), "im": np.arange(n, 2 * n)},
    )


def sensitivity_closed_form(modulus, steps: int | None = None, normalised: bool = False) -> np.ndarray:
    """``E |d h_T / d lambda|^2`` for ``h_t = lambda h_{t-1} + gamma x_t``, unit white noise, ``h_0 = 0``.

    ``h_T = gamma sum_{j<T} lambda^j x_{T-j}``, so ``dh_T/dlambda = gamma sum_{j=1}^{T-1} j lambda^(j-1)
    x_{T-j}`` and, the ``x`` being independent, ``E|.|^2 = gamma^2 sum_{j=1}^{T-1} j^2 r^(j-1)`` with
    ``r = |lambda|^2``, for real or complex ``lambda`` alike. As ``T -> infinity``:
    ``gamma^2 (1 + r) / (1 - r)^3``; ``gamma^2 = 1 - r`` normalised (``(1 + r) / (1 - r)^2``), 1 not.

    Examples
    --------
    >>> from gradflow.measure import sensitivity_closed_form
    >>> float(sensitivity_closed_form(0.5)), float(sensitivity_closed_form(0.5, steps=3))
    (2.962962962962963, 2.0)
    """
    r = np.asarray(modulus, dtype=float) ** 2
    gamma2 = (1.0 - r) if normalised else np.ones_like(r)
    if steps is None:
        return gamma2 * (1.0 + r) / (1.0 - r) ** 3
    j = np.arange(1, steps, dtype=float)
    with np.errstate(under="ignore"):
        terms = j**2 * np.exp(np.multiply.outer(np.log(np.where(r > 0, r, 1e-300)), j - 1))
    return gamma2 * np.sum(terms, axis=-1)


@deprecated_spellings(renamed={"steps": "seq_len"})
def sensitivity_scaling(
    ks: Sequence[float] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
    *,
    seq_len: int = 5000,
    batch: int = 16,
    seeds: int = 20,
    phase: float = np.pi / 4,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Measure ``E |dL/dlambda|^2`` against memory for ``|lambda| = 1 - 10^-k``, with and without
    input normalisation (Zucchet & Orvieto 2024, section 3).

    Every ``(k, normalised)`` pair is one unit of a `diagonal_cell` with ``lambda = |lambda|
    e^{i phase}``; the loss is ``sum_i Re h_{T,i}``, so ``dL/dlambda_i`` (from
    `parameter_sensitivity`'s gradient: the (re, im) pair) is unit ``i``'s own ``dh_T/dlambda``
    summed over the batch. The ``batch`` sequences are independent with zero mean, so
    ``|dL/dlambda|^2 / batch`` estimates the per-sequence second moment. Inputs are unit white
    noise drawn from each seed ``0..seeds-1``.

    Returns a tidy frame, one row per (normalised, k, seed): ``modulus``, ``one_minus_r``
    (``1 - |lambda|^2``), ``squared_sensitivity``, ``closed_form`` (the finite-``T``
    `sensitivity_closed_form`), ``closed_form_infinite``, ``state_variance`` (measured
    ``E|h_T|^2``) and its ``state_variance_closed_form``, and ``state_gradient_log_norm``
    (the largest ``ln ||dL/dh_{T-k}||`` over lags, batch mean: bounded, ``|lambda| < 1``).

    Examples
    --------
    >>> import gradflow as gf
    >>> frame = gf.sensitivity_scaling(ks=(1.0,), seq_len=200, batch=8, seeds=2, progress=False)
    >>> frame[["normalised", "k", "modulus", "closed_form"]].drop_duplicates().round(2).to_dict("list")
    {'normalised': [False, True], 'k': [1.0, 1.0], 'modulus': [0.9, 0.9], 'closed_form': [263.89, 50.14]}
    """
    steps = seq_len  # the sequence length T
    k_values = np.asarray(ks, dtype=float)
    if k_values.ndim != 1 or k_values.size == 0 or not np.all(np.isfinite(k_values) & (k_values > 0)):
        raise ValueError(f"ks must be a non-empty list of positive numbers; got {ks!r}")
    modulus = 1.0 - 10.0 ** (-k_values)
    lam = modulus * np.exp(1j * float(phase))
    m = len(k_values)
    # One cell holds both variants: units 0..m-1 unnormalised, m..2m-1 normalised.
    flags = np.repeat([False, True], m)
    cell = diagonal_cell(np.tile(lam, 2), normalised=flags, name="diagonal, both")
    n = 2 * m

    def loss(h):  # sum_i Re h_{T,i}: every unit's dL/dlambda_i is its own dh_T/dlambda_i
        return anp.sum(h[:, :n], axis=1)

    measured = []
    with progress_bar(seeds, "sensitivity_scaling", "seed", progress) as bar:
        for seed in range(seeds):
            xs = np.random.default_rng(seed).standard_normal((steps, batch, n))
            sens = parameter_sensitivity(cell, xs, loss=loss, groups={"lambda": ["lambda_re", "lambda_im"]})
            g = sens.gradient
            final = unroll(cell, xs)[-1]
            measured.append(
                (
                    (g["lambda_re"] ** 2 + g["lambda_im"] ** 2) / batch,
                    np.mean(final[:, :n] ** 2 + final[:, n:] ** 2, axis=0),
                    float(np.max(np.mean(sens.state_log_norms, axis=1))),
                )
            )
            bar.update()
    mod2, r = np.tile(modulus, 2), np.tile(modulus, 2) ** 2
    closed = np.where(flags, sensitivity_closed_form(mod2, steps, True), sensitivity_closed_form(mod2, steps))
    infinite = np.where(flags, sensitivity_closed_form(mod2, normalised=True), sensitivity_closed_form(mod2))
    # E|h_T|^2 = gamma^2 sum_{j<T} r^j: 1 - r^T normalised, (1 - r^T) / (1 - r) not.
    variance = np.where(flags, 1.0 - r**steps, (1.0 - r**steps) / (1.0 - r))
    rows = [
        dict(
            normalised=bool(flags[u]),
            k=k_values[u % m],
            modulus=mod2[u],
            one_minus_r=1.0 - r[u],
            seed=seed,
            squared_sensitivity=squared[u],
            closed_form=closed[u],
            closed_form_infinite=infinite[u],
            state_variance=state_var[u],
            state_variance_closed_form=variance[u],
            state_gradient_log_norm=peak,
        )
        for seed, (squared, state_var, peak) in enumerate(measured)
        for u in range(n)
    ]
    return pd.DataFrame(rows)


def scaling_exponents(frame: pd.DataFrame, boots: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Log-log slope of the mean ``squared_sensitivity`` against ``one_minus_r``, per ``normalised``,
    with a 95% bootstrap interval over seeds, beside the same fit of the finite-``T`` closed form
    and the asymptotic exponent (-3 unnormalised, -2 normalised).
    """
    rng = np.random.default_rng(check_seed(seed))
    out = []
    for flag, g in frame.groupby("normalised", sort=True):
        table = g.pivot(index="seed", columns="one_minus_r", values="squared_sensitivity")
        x = np.log(table.columns.to_numpy(dtype=float))
        values = table.to_numpy()

        def slope(y, x=x):
            return float(np.polyfit(x, np.log(y), 1)[0])

        estimate = slope(values.mean(axis=0))
        picks = rng.integers(0, len(values), size=(boots, len(values)))
        draws = np.array([slope(values[p].mean(axis=0)) for p in picks])
        closed = g.groupby("one_minus_r").closed_form.first()
        out.append(
            dict(
                normalised=bool(flag),
                exponent=estimate,
                low=float(np.quantile(draws, 0.025)),
                high=float(np.quantile(draws, 0.975)),
                closed_form_exponent=slope(closed.to_numpy()),
                asymptotic_exponent=-2.0 if flag else -3.0,
                seeds=len(values),
            )
        )
    return pd.DataFrame(out)
