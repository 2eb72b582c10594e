"""The ground floor: what every other room builds on, and nothing above it.

- ``_activations``: activation functions as autograd primitives with derivative rules.
- ``_ops``: fused cell operations (affine maps, gate updates), whose derivative rules differentiate
  again; ``_jacobians``: their closed-form step Jacobians; ``_sequence_ops``: a whole LSTM, GRU
  or vanilla sequence as one primitive (training's fast path).
- ``_registry``: the cell registry, one `CellKind` record per kind of cell (``cells`` registers the
  built-in ones; `register_cell_kind` adds more).
- ``_probe``: probes that record states and gradients inside a traced step.
- ``_validation``: argument checks whose errors name the argument and its value.
- ``_files``: atomic, staged publication of every output file.
- ``_threads``, ``_options``, ``_version``: BLAS thread policy, user options, what code this is.
- ``_deprecation``: `deprecated_spellings` and `renamed_attribute`, which keep the API's old spellings
  working for a release;
  ``_frames``: `FrameView`, the table reads of a result that holds a DataFrame.
- ``_html``: the one formatter every rich repr goes through; ``_plot``: shared matplotlib helpers
  (imported when a plot is drawn, never at ``import gradflow``).
- ``inputs``: input sequences (public as ``gradflow.inputs``).
"""

from ._deprecation import deprecated_spellings, renamed_attribute
from ._frames import FrameView
from ._options import Options, options
from ._probe import probe
from ._registry import CellKind, cell_kind, cell_kinds, register_cell_kind, unregister_cell_kind
from ._threads import blas_threads, set_blas_threads
from ._version import read_version

__all__ = [
    "CellKind",
    "FrameView",
    "Options",
    "blas_threads",
    "cell_kind",
    "cell_kinds",
    "deprecated_spellings",
    "options",
    "probe",
    "read_version",
    "register_cell_kind",
    "renamed_attribute",
    "set_blas_threads",
    "unregister_cell_kind",
]
