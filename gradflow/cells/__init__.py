"""Recurrent cells as data: a `Cell` is named weight arrays plus a pure step.

Built on ``gradflow.core`` only. The built-in kinds (``rnn``, ``lstm``, ``gru``) keep PyTorch's
weight names and layouts. Linear recurrences and state-space models: ``lru``, ``s4d``, ``mingru``,
``minlstm``, ``mamba`` (``mamba_ssm``'s names), and xLSTM's ``slstm``.
"""

from ._builtin import INITS, gru, lstm, rnn
from ._cells import Cell
from ._kinds import KINDS  # registers the built-in kinds
from ._lru import lru, lru_from_arrays
from ._mamba import mamba, mamba_from_state_dict
from ._mingru import mingru, minlstm
from ._slstm import slstm
from ._ssm import s4d

__all__ = [
    "INITS",
    "KINDS",
    "Cell",
    "gru",
    "lru",
    "lru_from_arrays",
    "lstm",
    "mamba",
    "mamba_from_state_dict",
    "mingru",
    "minlstm",
    "rnn",
    "s4d",
    "slstm",
]
