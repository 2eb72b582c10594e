"""Mean-field theory of random recurrent networks (Poole et al. 2016; Schoenholz et al. 2017).

A vanilla network ``h_t = phi(a_t)``, ``a_t = W h_{t-1} + U x_t + b`` with
``W_ij ~ N(0, sigma_w^2 / N)``, bias variance ``bias_var`` and input drive variance
``input_var`` (the variance ``U x_t`` adds to each pre-activation) has a stationary
pre-activation variance

    q* = sigma_w^2 E_z[phi(sqrt(q*) z)^2] + input_var + bias_var,  z ~ N(0, 1),

and back-propagated vectors grow in squared norm by ``chi_1 = sigma_w^2
E_z[phi'(sqrt(q*) z)^2]`` per step: the gradient norm's rate is ``0.5 ln chi_1``
nats/step and ``chi_1 = 1`` is the edge of chaos.

Expectations are adaptive quadratures in ``u = sqrt(q) z``, where the derivative's
spike has width O(1) whatever ``q`` is (fixed Gauss-Hermite rules fail once ``q*``
is large: docs/theory.md, section 3). ReLU and linear units use closed forms.

Examples
--------
>>> from gradflow import meanfield
>>> round(meanfield.q_star(1.5), 4), round(meanfield.chi1(1.5), 4)
(0.7934, 1.1393)
>>> round(meanfield.critical_gain(bias_var=0.1) ** 2, 3)
1.986
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize

from ..core._activations import log_sech2, logistic, logistic_prime
from ..core._validation import check_choice, check_finite_float

__all__ = ["chi1", "critical_gain", "depth_scale", "gaussian_expectation", "q_star", "rate"]

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _phi(activation):
    return {"tanh": np.tanh, "sigmoid": logistic}[activation]


def _phi_prime_sq(activation):
    if activation == "tanh":
        return lambda u: np.exp(2.0 * log_sech2(u))
    return lambda u: logistic_prime(u) ** 2


def gaussian_expectation(f, q: float) -> float:
    """``E_z[f(sqrt(q) z)]`` for ``z ~ N(0, 1)``, by adaptive quadrature in ``u = sqrt(q) z``.

    Examples
    --------
    >>> from gradflow.meanfield import gaussian_expectation
    >>> round(gaussian_expectation(lambda u: u ** 2, 2.5), 12)
    2.5
    """
    if q <= 0:
        return float(f(0.0))
    s = np.sqrt(q)
    half = 12.0 * s  # the Gaussian weight is below 1e-31 beyond 12 standard deviations
    # The derivatives' spike lives in |u| < ~30 whatever q is: break there so quad sees it.
    breaks = [p for p in (-30.0, -10.0, -3.0, -1.0, 0.0, 1.0, 3.0, 10.0, 30.0) if -half < p < half]
    value, _ = integrate.quad(
        lambda u: f(u) * np.exp(-0.5 * (u / s) ** 2) / (s * _SQRT_2PI),
        -half,
        half,
        points=breaks,
        limit=400,
        epsabs=0.0,
        epsrel=1e-12,
    )
    return float(value)


# chi_1 and q* grow like sigma_w^2 and the variances: keep them inside float64 (max ~1.8e308).
MAX_SIGMA_W = 1e150
MAX_VARIANCE = 1e300


def _args(sigma_w, bias_var, input_var, activation):
    sigma_w = check_finite_float("sigma_w", sigma_w, minimum=0.0)
    bias_var = check_finite_float("bias_var", bias_var, minimum=0.0)
    input_var = check_finite_float("input_var", input_var, minimum=0.0)
    activation = check_choice("activation", activation, ACTIVATIONS)
    if sigma_w > MAX_SIGMA_W:
        raise ValueError(
            f"sigma_w must be at most {MAX_SIGMA_W:g} (sigma_w^2 must be a float64); got {sigma_w!r}"
        )
    for name, value in (("bias_var", bias_var), ("input_var", input_var)):
        if value > MAX_VARIANCE:
            raise ValueError(f"{name} must be at most {MAX_VARIANCE:g} (q* must be a float64); got {value!r}")
    return sigma_w, bias_var + input_var, activation


def q_star(sigma_w: float, bias_var: float = 0.0, input_var: float = 0.0, activation: str = "tanh") -> float:
    """Stationary pre-activation variance ``q*`` (``inf`` when it diverges: ReLU and linear units).

    For tanh with no bias or input and ``sigma_w > 1`` the non-zero (stable) fixed
    point is returned; ``q = 0`` is then unstable.

    Examples
    --------
    Linear units: ``q = sigma_w^2 q + input_var``, so ``q* = 0.75 / (1 - 0.25) = 1``. For tanh,
    ``q*`` solves the fixed-point equation above:

    >>> import numpy as np
    >>> from gradflow import meanfield
    >>> meanfield.q_star(0.5, input_var=0.75, activation="linear")
    1.0
    >>> q = meanfield.q_star(1.5, input_var=0.5)
    >>> tanh_sq = meanfield.gaussian_expectation(lambda u: np.tanh(u) ** 2, q)
    >>> round(q, 6), bool(abs(1.5**2 * tanh_sq + 0.5 - q) < 1e-12)
    (1.573076, True)
    """
    sigma_w, drive, activation = _args(sigma_w, bias_var, input_var, activation)
    w2 = sigma_w**2
    if activation in ("relu", "linear"):
        # E[phi^2] = q/2 (ReLU) or q (linear): q = w2 * q * c + drive.
        c = 0.5 if activation == "relu" else 1.0
        if w2 * c >= 1.0:
            return 0.0 if drive == 0 and w2 * c == 1.0 else np.inf
        return drive / (1.0 - w2 * c)
    phi = _phi(activation)

    def excess(q):
        return w2 * gaussian_expectation(lambda u: phi(u) ** 2, q) + drive - q

    if activation == "tanh" and drive == 0.0 and w2 <= 1.0:
        return 0.0
    # excess > 0 at 0 (drive > 0, or the logistic's phi(0) = 1/2) or just above it (tanh with
    # slope w2 > 1, where q = 0 is the unstable root), and < 0 at w2 + drive + 1 because
    # E[phi^2] < 1 for tanh and the logistic.
    lo, hi = 0.0 if excess(0.0) > 0 else 1e-12, w2 + drive + 1.0
    if excess(hi) >= 0:  # huge sigma_w: E[phi^2] rounds to 1, so q* = hi to float64 precision
        return float(hi)
    return float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14))


def chi1(sigma_w: float, bias_var: float = 0.0, input_var: float = 0.0, activation: str = "tanh") -> float:
    """Per-step growth of a back-propagated vector's squared norm, ``sigma_w^2 E[phi'(a)^2]``.

    Examples
    --------
    Below the edge without drive, ``q* = 0`` and ``tanh'(0) = 1``, so ``chi_1 = sigma_w^2``;
    a ReLU passes half the units, ``chi_1 = sigma_w^2 / 2``:

    >>> from gradflow import meanfield
    >>> round(meanfield.chi1(0.8), 12), meanfield.chi1(2.0, activation="relu")
    (0.64, 2.0)
    """
    sigma_w, _, activation = _args(sigma_w, bias_var, input_var, activation)
    if activation == "relu":
        return sigma_w**2 / 2.0
    if activation == "linear":
        return sigma_w**2
    q = q_star(sigma_w, bias_var, input_var, activation)
    return sigma_w**2 * gaussian_expectation(_phi_prime_sq(activation), q)


def rate(sigma_w: float, bias_var: float = 0.0, input_var: float = 0.0, activation: str = "tanh") -> float:
    """Predicted gradient log-norm rate ``0.5 ln chi_1`` in nats/step (negative: vanishing).

    Examples
    --------
    >>> import numpy as np
    >>> from gradflow import meanfield
    >>> bool(np.isclose(meanfield.rate(0.8), np.log(0.8)))  # 0.5 ln 0.8^2
    True
    >>> meanfield.rate(1.5, input_var=1.0) < 0 < meanfield.rate(1.5)  # input drive suppresses chaos
    True
    """
    return 0.5 * float(np.log(chi1(sigma_w, bias_var, input_var, activation)))


def depth_scale(
    sigma_w: float, bias_var: float = 0.0, input_var: float = 0.0, activation: str = "tanh"
) -> float:
    """``xi = -1 / ln chi_1``: steps over which the squared gradient falls by e (inf at criticality).

    Examples
    --------
    >>> import numpy as np
    >>> from gradflow import meanfield
    >>> bool(np.isclose(meanfield.depth_scale(0.8), -1 / np.log(0.64))), meanfield.depth_scale(1.0)
    (True, inf)
    """
    log_chi = np.log(chi1(sigma_w, bias_var, input_var, activation))
    return np.inf if log_chi == 0 else float(-1.0 / log_chi)


def critical_gain(activation: str = "tanh", bias_var: float = 0.0, input_var: float = 0.0) -> float:
    """The ``sigma_w`` at which ``chi_1 = 1`` (the order-to-chaos line).

    Examples
    --------
    >>> from gradflow import meanfield
    >>> round(meanfield.critical_gain("relu") ** 2, 6)
    2.0
    >>> round(meanfield.critical_gain("tanh", bias_var=0.05) ** 2, 3)
    1.761
    """
    _, _, activation = _args(1.0, bias_var, input_var, activation)
    if activation in ("relu", "linear"):
        return float(np.sqrt(2.0) if activation == "relu" else 1.0)

    def gap(sigma_w):
        return chi1(sigma_w, bias_var, input_var, activation) - 1.0

    hi = 2.0
    while gap(hi) < 0:
        hi *= 2.0
        if hi > 1e4:
            raise ValueError(
                f"no critical gain below 1e4 for activation {activation!r} with "
                f"bias_var={bias_var}, input_var={input_var}"
            )
    return float(optimize.brentq(gap, 1e-6, hi, xtol=1e-13))
