"""gradflow: measure and predict how gradients flow through recurrent networks.

Public API
----------
Cells: `rnn`, `lstm`, `gru`, `Cell` (wrap your own step), `from_torch`, `load`.
Inputs: `inputs.gaussian`, `inputs.constant`, `inputs.one_hot`.
Engine: `unroll`, `jacobians`, `jacobian_products`, `gradient_flow` -> `GradientFlow`.
"""

from . import inputs, meanfield
from ._cells import Cell, gru, lstm, rnn
from ._engine import jacobian_products, jacobians, unroll
from ._flow import GradientFlow, RateFit, gradient_flow, regime_of
from ._io import from_torch, load
from ._probe import probe

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "GradientFlow",
    "RateFit",
    "__version__",
    "from_torch",
    "gradient_flow",
    "gru",
    "inputs",
    "jacobian_products",
    "jacobians",
    "load",
    "lstm",
    "meanfield",
    "probe",
    "regime_of",
    "rnn",
    "unroll",
]
