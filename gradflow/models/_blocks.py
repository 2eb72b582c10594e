"""Diagonal linear recurrences in the blocks their papers train: a linear encoder, then residual
blocks of pre-norm, the recurrence run as an associative scan, and a nonlinear position-wise head.

A bare linear recurrence under a linear readout is a linear map of its inputs: it cannot even
multiply two of them (the adding problem). The papers never train it bare:

* ``head="glu"``, the LRU's (Orvieto et al. 2023, the reference ``SequenceLayer`` of
  minimal-LRU) and S4D's (Gu et al. 2022, its standalone ``s4d.py`` layer):
  ``u + W1 g * sigmoid(W2 g)`` with ``g = GELU(layer(LayerNorm(u)))``, where ``layer`` is the
  recurrence read out, ``Re(C h_t) + D * x_t``.
* ``head="mlp"``, the minGRU's (Feng et al. 2024, in a pre-norm residual stack as in their language
  model): ``v = u + layer(LayerNorm(u))``, then ``v + W2 GELU(W1 LayerNorm(v))``, ``W1`` of width
  ``4 * width``; the layer's output is its state ``h_t``. A Mamba layer (Gu and Dao 2023) sits in
  the same residual stack, its output the module's own gated ``out_proj(y_t * silu(z_t))``.

``u = encoder(x)`` is a linear map of the task's inputs to the block's width. GELU is the tanh form
(flax's default, the LRU reference's). The recurrence runs as ``recurrent(cell, scan=True)`` runs it
(`gradflow.models._scanned`): the engine's associative scan forward (``ceil(log2 n)`` rounds, not
``n`` steps), a reverse scan and one batched VJP of the cell's own step backward, so the block
computes what the loop would, with the same parameters (names prefixed ``layer.``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import autograd.numpy as anp
import numpy as np

from ..cells._cells import Cell
from ..core._registry import CellKind, cell_kinds
from ..core._validation import check_positive_int, check_seed
from ..engine._scan import linear_record
from ._graph import DependencyGraph
from ._pieces import layer_norm, normal_weights
from ._scanned import scanned_states
from ._sequence import SequenceModel

LAYER = "layer."  # prefix of the recurrence's own parameters within a block


def layer_output(cell: Cell, record: CellKind, params, states, xs):
    """What a block's layer passes on: its `CellKind`'s ``layer_outputs`` (LRU and S4D ``Re(C h_t) +
    D x_t``, Mamba's gated ``out_proj``) on the states ``h_1 .. h_T`` after ``h_0 = 0``, computed
    with ``params`` (traced: the weights being trained), else the states themselves (minGRU)."""
    outputs = record.layer_outputs
    if outputs is None:
        return states
    twin = copy.copy(cell)  # the cell's sizes and components, these weights
    twin.params = params
    return outputs(twin, anp.concatenate([anp.zeros((1, *anp.shape(states)[1:])), states]), xs)


def gelu(z):
    """GELU, tanh form: ``z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``."""
    return 0.5 * z * (1.0 + anp.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3)))


def _sigmoid(z):
    return 0.5 * (anp.tanh(0.5 * z) + 1.0)


def _dense(params, name, z):
    return z @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def _head_params(rng, head: str, width: int) -> dict[str, np.ndarray]:
    if head == "glu":
        names = {"head.out1": (width, width), "head.out2": (width, width)}
    else:
        names = {"head.fc1": (4 * width, width), "head.fc2": (width, 4 * width)}
    params = {"head.norm.weight": np.ones(width), "head.norm.bias": np.zeros(width)} if head == "mlp" else {}
    for name, shape in names.items():
        # LeCun normal (flax's Dense default): std 1/sqrt(fan_in)
        params[f"{name}.weight"] = normal_weights(rng, shape, 1.0 / np.sqrt(shape[1]))
        params[f"{name}.bias"] = np.zeros(shape[0])
    return params


def _glu(params, u, y):
    g = gelu(y)
    return u + _dense(params, "head.out1", g) * _sigmoid(_dense(params, "head.out2", g))


def _mlp(params, u, y):
    v = u + y
    z = layer_norm(v, params["head.norm.weight"], params["head.norm.bias"])
    return v + _dense(params, "head.fc2", gelu(_dense(params, "head.fc1", z)))


HEADS: dict[str, Callable] = {"glu": _glu, "mlp": _mlp}  # head -> (params, block input, layer output)


def _stack_graph(state_sizes: list[int], inputs: int) -> Callable[[int], DependencyGraph]:
    """The dependency graph of the blocks in a row, each the scan's schedule (as
    ``recurrent(cell, scan=True)`` draws it for one): the input map (one hop), then ``ceil(log2 n)``
    rounds in which position t absorbs the prefix ending ``2^r`` steps earlier (one hop) and carries
    its own (0 hops). Encoder, norms and heads act within a position."""

    def graph(n):
        g = DependencyGraph()
        pos = np.arange(n)
        cur = g.add_layer("input", n)
        for k, S in enumerate(state_sizes):
            prev, cur = cur, g.add_layer(f"block {k} scan inputs (a_t, b_t)", n)
            g.connect(prev, pos, cur, pos, 1, flops_per_edge=4 * S * inputs)
            shift, r = 1, 0
            while shift < n:
                prev, cur = cur, g.add_layer(f"block {k} scan round {r} (shift {shift})", n)
                g.connect(prev, pos, cur, pos, 0, flops_per_edge=S)
                g.connect(prev, pos[:-shift], cur, pos[shift:], 1, flops_per_edge=3 * S)
                shift, r = 2 * shift, r + 1
        return g

    return graph


def residual_block(
    cells: Cell | Sequence[Cell], inputs: int, *, head: str = "glu", seed: int = 0, name: str | None = None
) -> SequenceModel:
    """Diagonal linear recurrences as their papers train them: an encoder, then one residual block
    per cell (pre-norm, the recurrence as a scan, a nonlinear position-wise head).

    Parameters
    ----------
    cells : Cell or sequence of Cell
        One ``lru``, ``s4d``, ``mingru``, ``minlstm`` or ``mamba`` per block, each taking the block's
        width as its inputs (and, for ``mingru`` / ``minlstm``, with that hidden size too: the
        residual adds its state; a ``mamba`` block adds its module's gated output). Two blocks can
        compute products of two inputs before a recurrence sums them (the first block's head sees
        ``D * x_t``); one linear recurrence cannot.
    inputs : int
        Width of the task's inputs, mapped to the block's width by the linear encoder.
    head : {"glu", "mlp"}
        ``"glu"``: the LRU's and S4D's gated linear unit after a GELU; ``"mlp"``: the minGRU stack's
        pre-norm GELU MLP of width ``4 * width``, in its own residual (see the module docstring).
    seed : int
        Seed of the encoder's and the heads' weights (the cells bring their own).

    Returns
    -------
    SequenceModel
        Outputs ``(n, batch, width)``; `gradflow.train` puts its linear readout on top. Parameters
        ``encoder.*``, then ``b<k>.norm.*``, ``b<k>.layer.<the cell's names>``, ``b<k>.head.*`` per
        block. Its dependency graph is the scans' (`recurrent` with ``scan=True``, one per block).

    Examples
    --------
    >>> import gradflow as gf
    >>> block = gf.residual_block(gf.lru(8, 6, seed=0), inputs=2, seed=0)
    >>> block(gf.inputs.gaussian(10, 3, 2)).shape, block.width
    ((10, 3, 6), 6)
    >>> gf.path_lengths(block, 1000).sequential_depth
    11
    >>> two = gf.residual_block([gf.s4d(8, 6, seed=0), gf.s4d(8, 6, seed=1)], inputs=2)
    >>> gf.path_lengths(two, 1000).sequential_depth
    22
    """
    from ..engine._engine import check_cell

    cells = [cells] if isinstance(cells, Cell) else list(cells)
    if not cells:
        raise ValueError("cells must hold at least one cell; got none")
    cells = [check_cell(c) for c in cells]
    inputs = check_positive_int("inputs", inputs)
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(map(repr, HEADS))}; got {head!r}")
    seed = check_seed(seed)
    width = cells[0].input_size
    records = [linear_record(cell.kind) for cell in cells]  # None: not linear, cannot be scanned
    for k, (cell, record) in enumerate(zip(cells, records, strict=True)):
        if record is None:
            can = [kind for kind in cell_kinds() if linear_record(kind)]
            raise ValueError(
                f"cells[{k}] {cell.name!r} of kind {cell.kind!r} cannot be scanned in a block; kinds that "
                f"can: {', '.join(sorted(can))}"
            )
        if cell.input_size != width:
            raise ValueError(f"cells[{k}] takes inputs of width {cell.input_size}; cells[0] takes {width}")
        if record.layer_outputs is None and cell.state_size != width:
            raise ValueError(
                f"cells[{k}]: a {cell.kind} block adds the state to its input, so its hidden size "
                f"({cell.state_size}) must equal its inputs ({width})"
            )
    rng = np.random.default_rng([seed, 7])
    params = {
        "encoder.weight": normal_weights(rng, (width, inputs), 1.0 / np.sqrt(inputs)),
        "encoder.bias": np.zeros(width),
    }
    for k, cell in enumerate(cells):
        params.update({f"b{k}.norm.weight": np.ones(width), f"b{k}.norm.bias": np.zeros(width)})
        params.update({f"b{k}.{LAYER}{name}": v for name, v in cell.params.items()})
        params.update({f"b{k}.{name}": v for name, v in _head_params(rng, head, width).items()})
    apply_head = HEADS[head]
    runs = [scanned_states(cell) for cell in cells]  # the one differentiable scan, `recurrent(scan=True)`'s

    def forward(p, xs):
        u = _dense(p, "encoder", xs)
        for k, cell in enumerate(cells):
            own = {name[len(f"b{k}.") :]: v for name, v in p.items() if name.startswith(f"b{k}.")}
            z = layer_norm(u, own["norm.weight"], own["norm.bias"])
            layer = {name[len(LAYER) :]: v for name, v in own.items() if name.startswith(LAYER)}
            states = runs[k](z, *(layer[name] for name in cell.params))
            y = layer_output(cell, records[k], layer, states, z)
            u = apply_head(own, u, y)
        return u

    kinds = "+".join(dict.fromkeys(c.kind for c in cells))
    config = dict(cells=len(cells), kind=kinds, head=head, inputs=inputs, width=width, seed=seed)
    return SequenceModel(
        "residual-block",
        params,
        forward,
        _stack_graph([c.state_size for c in cells], width),
        input_size=inputs,
        width=width,
        config=config,
        name=name or f"{kinds} x {len(cells)} block ({head})",
    )
