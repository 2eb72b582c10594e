"""Recurrent cells as data: a `Cell` is named weight arrays plus a pure step.

Built on ``gradflow.core`` only. The built-in kinds (``rnn``, ``lstm``, ``gru``) keep PyTorch's
weight names and layouts.
"""

from ._cells import INITS, KINDS, Cell, gru, lstm, rnn

__all__ = ["INITS", "KINDS", "Cell", "gru", "lstm", "rnn"]
