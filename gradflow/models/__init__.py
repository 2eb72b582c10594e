"""Whole models around cells: PyTorch / Keras loaders (`Model`), attention, convolution and
recurrent sequence models as dependency graphs, and their path lengths.

Built on ``core``, ``cells`` and ``engine``.
"""

from ._attention import hierarchical_attention, restricted_attention, self_attention
from ._blocks import residual_block
from ._convolution import conv_stack, tcn
from ._io import from_torch
from ._keras import from_keras
from ._model import Model
from ._npz import load
from ._recurrent import output_columns, recurrent
from ._sequence import PathLengths, SequenceModel, path_lengths

__all__ = [
    "Model",
    "PathLengths",
    "SequenceModel",
    "conv_stack",
    "from_keras",
    "from_torch",
    "hierarchical_attention",
    "load",
    "output_columns",
    "path_lengths",
    "recurrent",
    "residual_block",
    "restricted_attention",
    "self_attention",
    "tcn",
]
