"""The ground floor: what every other room builds on, and nothing above it.

- ``_activations``: activation functions as autograd primitives with derivative rules.
- ``_ops``: fused cell operations (affine maps, gate updates) and their closed-form Jacobians.
- ``_probe``: probes that record states and gradients inside a traced step.
- ``_validation``: argument checks whose errors name the argument and its value.
- ``_files``: atomic, staged publication of every output file.
- ``_threads``, ``_options``, ``_version``: BLAS thread policy, user options, what code this is.
- ``_html``: the one formatter every rich repr goes through; ``_plot``: shared matplotlib helpers
  (imported when a plot is drawn, never at ``import gradflow``).
- ``inputs``: input sequences (public as ``gradflow.inputs``).
"""

from ._options import Options, options
from ._probe import probe
from ._threads import blas_threads, set_blas_threads
from ._version import read_version

__all__ = ["Options", "blas_threads", "options", "probe", "read_version", "set_blas_threads"]
