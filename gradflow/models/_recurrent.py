"""Recurrent cells as sequence models, so path lengths and sensitivity compare them with the rest."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from ..cells._cells import Cell, gru, lstm, rnn
from ..core._validation import (
    check_positive_int,
)
from ._graph import DependencyGraph
from ._sequence import (
    SequenceModel,
)


def output_columns(cell: Cell) -> np.ndarray:
    """The state columns a recurrent model outputs: the top layer's ``h``."""
    layers = cell.config.get("layers", 1)
    key = "h" if layers == 1 else f"l{layers - 1}.h"
    return cell.components.get(key, np.arange(cell.state_size))


def recurrent(cell: Cell, layers: int = 1, *, name: str | None = None) -> SequenceModel:
    """One of the engine's cells as a sequence model; ``y_t`` is the top layer's ``h_t``.

    ``layers > 1`` stacks a built-in cell: the stack is drawn anew from the cell's
    recipe (kind, sizes, gain, init, seed). A stack with trained weights comes from
    `from_torch` / `load` with ``_l1, _l2, ...`` names instead.

    Examples
    --------
    >>> import gradflow as gf
    >>> model = gf.recurrent(gf.gru(8, 3, seed=0), layers=2)
    >>> model(gf.inputs.gaussian(5, 2, 3)).shape, gf.path_lengths(model, 5).max_path
    ((5, 2, 8), 6)
    """
    from ..engine._engine import check_cell

    cell = check_cell(cell)
    layers = check_positive_int("layers", layers)
    if layers > 1:
        cfg = dict(cell.config)
        if cell.kind not in ("rnn", "lstm", "gru") or "seed" not in cfg or cfg.get("layers", 1) != 1:
            raise ValueError(f"layers={layers} stacks a one-layer built-in cell made by gf.rnn, gf.lstm "
                             f"or gf.gru; got {cell.name!r} ({cell.kind}, config {cfg}). For a trained "
                             "stack, load it with its _l1, _l2, ... weights and pass layers=1")
        hidden, inputs = cfg.pop("hidden"), cfg.pop("inputs")
        cfg.pop("layers")
        build = {"rnn": rnn, "lstm": lstm, "gru": gru}[cell.kind]
        cell = build(hidden, inputs, layers=layers, name=cell.name, **cfg)
    depth = cell.config.get("layers", 1) if cell.kind in ("rnn", "lstm", "gru") else 1
    cols = output_columns(cell)
    step = cell.step

    # The output columns are one contiguous block: a slice of the stacked states, taken once,
    # costs one traced operation instead of a gather per step.
    contiguous = len(cols) and np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols)))
    pick = slice(int(cols[0]), int(cols[0]) + len(cols)) if contiguous else cols

    def forward(p, xs):
        p = {k: p[k] for k in p}  # one lookup per weight, not one per weight per step
        h = anp.zeros((xs.shape[1], cell.state_size))
        hs = []
        for x in xs:
            h = step(p, h, x)
            hs.append(h)
        return anp.stack(hs)[..., pick]

    def graph(n):
        g = DependencyGraph()
        prev = g.add_layer("input", n)
        pos = np.arange(n)
        width = len(cols)
        gates = {"rnn": 1, "lstm": 4, "gru": 3}.get(cell.kind, 1)
        for l in range(depth):
            d_in = cell.input_size if l == 0 else width
            cur = g.add_layer(f"recurrent {l}", n)
            g.connect(prev, pos, cur, pos, 1, flops_per_edge=2 * gates * width * d_in)
            g.connect(cur, pos[:-1], cur, pos[1:], 1, flops_per_edge=2 * gates * width * width)
            prev = cur
        return g

    config = dict(cell=cell.name, kind=cell.kind, layers=depth, state=cell.state_size,
                  inputs=cell.input_size)
    return SequenceModel("recurrent", cell.params, forward, graph, input_size=cell.input_size,
                         width=len(cols), config=config, name=name or f"recurrent {cell.name}", cell=cell)
