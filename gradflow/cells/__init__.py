"""Recurrent cells as data: a `Cell` is named weight arrays plus a pure step.

Built on ``gradflow.core`` only. The built-in kinds (``rnn``, ``lstm``, ``gru``) keep PyTorch's
weight names and layouts.
"""

from ._cells import INITS, Cell, gru, lstm, rnn
from ._kinds import KINDS  # registers the built-in kinds

__all__ = ["INITS", "KINDS", "Cell", "gru", "lstm", "rnn"]
