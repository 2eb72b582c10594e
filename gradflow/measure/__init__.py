"""What the gradients do, measured: gradient flow by lag and its rate fit, Lyapunov spectra and
finite-time singular values, and input sensitivity of sequence models.

Built on ``core``, ``cells``, ``engine`` and ``models``.
"""

from ._flow import GradientFlow, gradient_flow
from ._lyapunov import LyapunovSpectrum, lyapunov_spectrum
from ._param_sensitivity import ParameterSensitivity, parameter_sensitivity
from ._qr import initial_block, qr_log_growth
from ._rates import RateFit, regime_of
from ._sensitivity import Sensitivity, sensitivity
from ._sensitivity_scaling import (
    diagonal_cell,
    scaling_exponents,
    sensitivity_closed_form,
    sensitivity_scaling,
)
from ._singular_values import ConvergenceWarning, SingularValues, finite_time_singular_values

__all__ = [
    "ConvergenceWarning",
    "GradientFlow",
    "LyapunovSpectrum",
    "ParameterSensitivity",
    "RateFit",
    "Sensitivity",
    "SingularValues",
    "diagonal_cell",
    "finite_time_singular_values",
    "gradient_flow",
    "initial_block",
    "lyapunov_spectrum",
    "parameter_sensitivity",
    "qr_log_growth",
    "regime_of",
    "scaling_exponents",
    "sensitivity",
    "sensitivity_closed_form",
    "sensitivity_scaling",
]
