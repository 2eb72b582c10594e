"""The one engine every analysis goes through: unroll a cell, push blocks of vectors through
its step Jacobians (one batched JVP or VJP per chunk of steps), and sweep gradients backwards.

Built on ``gradflow.core`` and ``gradflow.cells``.
"""

import warnings
from types import MappingProxyType

from ..core._deprecation import SINCE, UNTIL
from ..core._registry import cell_kinds, find_cell_kind
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
from ._linear import layer_outputs, linear_coefficients
from ._reverse import reverse_sweep, sequential_sweep
from ._scan import associative_scan, diagonal_coefficients, diagonal_rate, scan, scan_depth, scanned_columns

__all__ = [
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
    "scanned_columns",
    "sequential_sweep",
    "steps_per_chunk",
    "unroll",
]

# 0.3.0's side tables, now fields of each kind's CellKind: read-only views of the registry.
_RETIRED_TABLES = {"LINEAR_COEFFICIENTS": "linear_coefficients", "LAYER_OUTPUTS": "layer_outputs"}


def __getattr__(name: str):
    field = _RETIRED_TABLES.get(name)
    if field is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"gradflow.engine.{name} is deprecated since gradflow {SINCE}; read "
        f"gf.cell_kind(kind).{field} (the old spelling stops working in {UNTIL})",
        DeprecationWarning,
        stacklevel=2,
    )
    records = (find_cell_kind(kind) for kind in cell_kinds())
    return MappingProxyType(
        {r.name: getattr(r, field) for r in records if r and getattr(r, field) is not None}
    )
