"""The one engine every analysis goes through: unroll a cell, push blocks of vectors through
its step Jacobians (one batched JVP or VJP per chunk of steps), and sweep gradients backwards.

Built on ``gradflow.core`` and ``gradflow.cells``.
"""

from ._engine import (
    block_products,
    check_cell,
    check_sequence,
    check_trajectory,
    closed_form_kind,
    closed_form_terms,
    jacobian_products,
    jacobians,
    steps_per_chunk,
    unroll,
)
from ._linear import LAYER_OUTPUTS, LINEAR_COEFFICIENTS, layer_outputs, linear_coefficients
from ._reverse import reverse_sweep, sequential_sweep
from ._scan import associative_scan, diagonal_coefficients, diagonal_rate, scan, scan_depth

__all__ = [
    "LAYER_OUTPUTS",
    "LINEAR_COEFFICIENTS",
    "associative_scan",
    "block_products",
    "check_cell",
    "check_sequence",
    "check_trajectory",
    "closed_form_kind",
    "closed_form_terms",
    "diagonal_coefficients",
    "diagonal_rate",
    "jacobian_products",
    "jacobians",
    "layer_outputs",
    "linear_coefficients",
    "reverse_sweep",
    "scan",
    "scan_depth",
    "sequential_sweep",
    "steps_per_chunk",
    "unroll",
]
