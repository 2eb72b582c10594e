"""What the gradients do, measured: gradient flow by lag and its rate fit, Lyapunov spectra and
finite-time singular values, and input sensitivity of sequence models.

Built on ``core``, ``cells``, ``engine`` and ``models``.
"""

from ._flow import GradientFlow, RateFit, gradient_flow, regime_of
from ._lyapunov import LyapunovSpectrum, lyapunov_spectrum
from ._qr import initial_block, qr_log_growth
from ._sensitivity import Sensitivity, sensitivity
from ._singular_values import ConvergenceWarning, SingularValues, finite_time_singular_values

__all__ = [
    "ConvergenceWarning",
    "GradientFlow",
    "LyapunovSpectrum",
    "RateFit",
    "Sensitivity",
    "SingularValues",
    "finite_time_singular_values",
    "gradient_flow",
    "initial_block",
    "lyapunov_spectrum",
    "qr_log_growth",
    "regime_of",
    "sensitivity",
]
