"""What the recurrent_revival study measures for its third claim, parameter sensitivity: the
squared gradient of the loss with respect to a mode's eigenvalue parameter against its memory
length, for lambda parametrised raw and with normalised input (`gradflow.sensitivity_scaling`)
and for the LRU's nu_log (an LRU built mode by mode, checked against its closed form), with the
fitted exponent of each against ``1 - |lambda|^2``.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.measure import scaling_exponents

# ---------------------------------------------------------------- 3. parameter sensitivity

SENSITIVITY_PHASE = np.pi / 4  # every eigenvalue's phase, as gradflow.sensitivity_scaling draws them
LAMBDA_RAW, LAMBDA_NORMALISED, LRU_NU = (
    "lambda, raw input",
    "lambda, normalised input",
    "LRU nu_log, normalised input",
)


def lru_sensitivity_closed_form(modulus, steps: int) -> np.ndarray:
    """``E (dL/d nu)^2`` for one LRU mode ``lambda = exp(-exp(nu) + i theta)`` with ``gamma =
    sqrt(1 - |lambda|^2)``, ``L = Re h_T``, unit white-noise input, ``h_0 = 0``.

    ``h_T = gamma sum_{j<T} lambda^j x_{T-j}`` and ``d lambda / d nu = -exp(nu) lambda``, so
    ``dL/dnu = -gamma exp(nu) sum_j j Re(lambda^j) x_{T-j}`` and, the ``x`` being independent,
    ``E (dL/dnu)^2 = gamma^2 exp(2 nu) sum_{j=1}^{T-1} j^2 Re(lambda^j)^2``; ``exp(nu) = -ln|lambda|``.
    """
    modulus = np.asarray(modulus, dtype=float)
    j = np.arange(1, steps, dtype=float)
    with np.errstate(under="ignore"):
        powers = np.exp(np.multiply.outer(np.log(modulus), j)) * np.cos(SENSITIVITY_PHASE * j)
    return (1.0 - modulus**2) * np.log(modulus) ** 2 * np.sum(j**2 * powers**2, axis=-1)


def lru_sensitivity(ks, *, seq_len: int, batch: int, seeds: int, seed: int) -> pd.DataFrame:
    """``(dL/d nu_log)^2`` of an LRU (`gradflow.lru_from_arrays`) whose mode ``i`` has ``|lambda| =
    1 - 10^-k_i`` and reads input channel ``i`` alone (B = I), by `gradflow.parameter_sensitivity`,
    in the columns of `gradflow.sensitivity_scaling`'s frame (one row per mode and seed)."""
    ks = np.asarray(ks, dtype=float)
    modulus, n = 1.0 - 10.0 ** (-ks), len(ks)
    cell = gf.lru_from_arrays(
        {
            "nu_log": np.log(-np.log(modulus)),
            "theta_log": np.full(n, np.log(SENSITIVITY_PHASE)),
            "gamma_log": np.log(np.sqrt(1.0 - modulus**2)),
            "B_re": np.eye(n),
            "B_im": np.zeros((n, n)),
            "C_re": np.eye(n),
            "C_im": np.zeros((n, n)),
            "D": np.zeros(n),
        },
        name=LRU_NU,
    )
    closed = lru_sensitivity_closed_form(modulus, seq_len)
    rows = []
    for s in range(seed, seed + seeds):
        xs = np.random.default_rng(s).standard_normal((seq_len, batch, n))
        sens = gf.parameter_sensitivity(
            cell, xs, loss=lambda h: anp.sum(h[:, :n], axis=1), groups={"nu": ["nu_log"]}
        )
        squared = sens.gradient["nu_log"] ** 2 / batch  # the batch's sequences are independent
        peak = float(np.max(np.mean(sens.state_log_norms, axis=1)))
        rows += [
            dict(
                normalised=True,
                k=ks[i],
                modulus=modulus[i],
                one_minus_r=1.0 - modulus[i] ** 2,
                seed=s,
                squared_sensitivity=squared[i],
                closed_form=closed[i],
                state_gradient_log_norm=peak,
            )
            for i in range(n)
        ]
    return pd.DataFrame(rows)


def measure_sensitivity(cfg: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per parametrisation and memory length, the squared sensitivity of every seed (tidy), and the
    fitted exponent against ``1 - |lambda|^2`` with its bootstrap interval beside the closed form's."""
    kw = dict(seq_len=cfg.sensitivity_steps, batch=cfg.sensitivity_batch)
    lam = gf.sensitivity_scaling(cfg.sensitivity_ks, seeds=cfg.seeds, progress=False, **kw)
    lam["parametrisation"] = np.where(lam.normalised, LAMBDA_NORMALISED, LAMBDA_RAW)
    lru = lru_sensitivity(cfg.sensitivity_ks, seeds=cfg.seeds, seed=cfg.seed, **kw)
    lru["parametrisation"] = LRU_NU
    exponents = pd.concat(
        [
            scaling_exponents(lam, seed=cfg.seed).assign(
                parametrisation=lambda f: np.where(f.normalised, LAMBDA_NORMALISED, LAMBDA_RAW)
            ),
            scaling_exponents(lru, seed=cfg.seed).assign(parametrisation=LRU_NU, asymptotic_exponent=0.0),
        ],
        ignore_index=True,
    )
    columns = [
        "parametrisation",
        "k",
        "modulus",
        "one_minus_r",
        "seed",
        "squared_sensitivity",
        "closed_form",
        "state_gradient_log_norm",
    ]
    frame = pd.concat([lam[columns], lru[columns]], ignore_index=True)
    return frame, exponents[
        ["parametrisation", "exponent", "low", "high", "closed_form_exponent", "asymptotic_exponent", "seeds"]
    ]
