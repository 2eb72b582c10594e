"""The built-in kinds of cell (``rnn``, ``lstm``, ``gru``) as registry records.

A new kind of cell is one module like this one: its step, its constructor (`random_cell` draws
weights for any registered kind) and a `register_cell_kind` call.
"""

from __future__ import annotations

import functools

from ..core._jacobians import gru_jacobians, gru_terms, lstm_jacobians, lstm_terms, rnn_jacobians, rnn_terms
from ..core._registry import CellKind, cell_kinds, register_cell_kind
from ..core._sequence_ops import gru_sequence, lstm_sequence, rnn_sequence
from ._builtin import (
    GRU_GATES,
    LSTM_GATES,
    gru,
    gru_reset_before_step,
    gru_step,
    lstm,
    lstm_step,
    rnn,
    rnn_step,
)


def rnn_states(params, xs, h0, activation="tanh"):
    """Every state of a one-layer vanilla cell over ``xs`` from ``h0``, as one primitive (`rnn_sequence`)."""
    p = params
    b = p["bias_ih_l0"] + p["bias_hh_l0"]  # rnn_step's summed bias, in its order
    return rnn_sequence(xs, p["weight_ih_l0"], p["weight_hh_l0"], b, h0, activation)


def lstm_states(params, xs, h0):
    """Every state of a one-layer LSTM over ``xs`` from ``h0``, as one primitive (`lstm_sequence`)."""
    return lstm_sequence(
        xs, params["weight_ih_l0"], params["weight_hh_l0"], params["bias_ih_l0"] + params["bias_hh_l0"], h0
    )


def gru_states(params, xs, h0):
    """Every state of a one-layer GRU over ``xs`` from ``h0``, as one primitive (`gru_sequence`)."""
    p = params
    return gru_sequence(xs, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"], h0)


def _lstm_variant(config):
    proj = int(config.get("proj_size", 0) or 0)
    return (functools.partial(lstm_step, proj_size=proj), True) if proj else None


def _gru_variant(config):
    # Keras's reset_after=False: plain autograd.numpy, no stacked tangents.
    return (gru_reset_before_step, False) if config.get("reset_after") is False else None


register_cell_kind(
    CellKind(
        "rnn",
        rnn_step,
        rnn,
        step_options=("activation",),
        options={"activation": "tanh"},
        torch_modules=("RNN", "RNNCell"),
        vanilla=True,
        jacobians=rnn_jacobians,
        jacobian_terms=rnn_terms,
        sequence=rnn_states,
        description="vanilla cell h' = phi(W_hh h + W_ih x + b)",
    )
)
register_cell_kind(
    CellKind(
        "lstm",
        lstm_step,
        lstm,
        gates=LSTM_GATES,
        blocks=4,
        parts=(("h", 1), ("c", 1)),
        options={"forget_bias": 1.0},
        gate_bias=(1, "forget_bias"),
        torch_modules=("LSTM", "LSTMCell"),
        candidate_block=2,
        jacobians=lstm_jacobians,
        jacobian_terms=lstm_terms,
        sequence=lstm_states,
        variant=_lstm_variant,
        description="LSTM (PyTorch's equations); state h plus its memory c",
    )
)
register_cell_kind(
    CellKind(
        "gru",
        gru_step,
        gru,
        gates=GRU_GATES,
        blocks=3,
        options={"update_bias": 0.0},
        gate_bias=(1, "update_bias"),
        torch_modules=("GRU", "GRUCell"),
        candidate_block=2,
        jacobians=gru_jacobians,
        jacobian_terms=gru_terms,
        sequence=gru_states,
        variant=_gru_variant,
        description="GRU (PyTorch's equations)",
    )
)
KINDS = cell_kinds(pytorch_layout=True)  # these built-in kinds (gradflow.cell_kinds() lists every one)
