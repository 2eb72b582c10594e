"""Recurrent cells as sequence models, so path lengths and sensitivity compare them with the rest."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from ..cells._cells import Cell
from ..core._registry import cell_kind, find_cell_kind
from ..core._validation import check_positive_int
from ._graph import DependencyGraph
from ._scanned import scanned_states
from ._sequence import SequenceModel


def output_columns(cell: Cell) -> np.ndarray:
    """The state columns a recurrent model outputs: the top layer's ``h``."""
    layers = cell.config.get("layers", 1)
    key = "h" if layers == 1 else f"l{layers - 1}.h"
    return cell.components.get(key, np.arange(cell.state_size))


def recurrent(cell: Cell, layers: int = 1, *, name: str | None = None, scan: bool = False) -> SequenceModel:
    """One of the engine's cells as a sequence model; ``y_t`` is the top layer's ``h_t``.

    ``layers > 1`` stacks a built-in cell: the stack is drawn anew from the cell's
    recipe (kind, sizes, gain, init, seed). A stack with trained weights comes from
    `from_torch` / `load` with ``_l1, _l2, ...`` names instead.

    ``scan=True`` (a cell linear in its state, ``cell.config["linear"]``, one layer) runs the
    forward pass by `gf.scan`, the log-depth associative scan, and draws its dependency graph:
    the input map, then ``ceil(log2 n)`` rounds of the doubling scan in which position ``t``
    absorbs, in one hop (a multiplication by a product of the learned ``a``), the prefix ending
    ``2^r`` steps earlier, and carries its own (an identity: 0 hops). Sequential depth
    ``1 + ceil(log2 n)`` instead of ``n``. The outputs equal the loop's to rounding (~1e-13), and
    autograd differentiates them by a reverse scan (reverse mode only: no forward-mode JVP).

    Examples
    --------
    >>> import gradflow as gf
    >>> model = gf.recurrent(gf.gru(8, 3, seed=0), layers=2)
    >>> model(gf.inputs.gaussian(5, 2, 3)).shape, gf.path_lengths(model, 5).max_path
    ((5, 2, 8), 6)

    A linear recurrence run as a scan:

    >>> import numpy as np
    >>> def step(p, h, x):
    ...     return p["lam"] * h + x
    >>> linear = gf.Cell(step, {"lam": [0.9, 0.5]}, 2, 2, config={"linear": True})
    >>> p = gf.path_lengths(gf.recurrent(linear, scan=True), 1000)
    >>> p.sequential_depth, p.max_path, gf.path_lengths(gf.recurrent(linear), 1000).sequential_depth
    (11, 10, 1000)
    >>> xs = gf.inputs.gaussian(1000, 2, 2)
    >>> bool(np.allclose(gf.recurrent(linear, scan=True)(xs), gf.recurrent(linear)(xs), rtol=1e-12))
    True
    """
    from ..engine._engine import check_cell

    cell = check_cell(cell)
    layers = check_positive_int("layers", layers)
    if not isinstance(scan, (bool, np.bool_)):
        raise ValueError(f"scan must be True or False; got {scan!r}")
    if scan and (layers > 1 or not cell.config.get("linear")):
        raise ValueError(
            f"scan=True needs one layer of a cell linear in its state (config['linear']); "
            f"got {cell.name!r} ({cell.kind}) with layers={layers}"
        )
    if layers > 1:
        cfg = dict(cell.config)
        if (
            find_cell_kind(cell.kind, pytorch_layout=True) is None
            or "seed" not in cfg
            or cfg.get("layers", 1) != 1
        ):
            raise ValueError(
                f"layers={layers} stacks a one-layer built-in cell made by gf.rnn, gf.lstm "
                f"or gf.gru; got {cell.name!r} ({cell.kind}, config {cfg}). For a trained "
                "stack, load it with its _l1, _l2, ... weights and pass layers=1"
            )
        hidden, inputs = cfg.pop("hidden"), cfg.pop("inputs")
        cfg.pop("layers")
        build = cell_kind(cell.kind).make  # a built-in kind: cell_kind raises for any other
        cell = build(hidden, inputs, layers=layers, name=cell.name, **cfg)
    record = find_cell_kind(cell.kind)
    depth = cell.config.get("layers", 1) if record is not None else 1
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

    states = scanned_states(cell) if scan else None

    def scan_forward(p, xs):
        return states(xs, *(p[k] for k in cell.params))[..., pick]

    def scan_graph(n):
        g = DependencyGraph()
        pos, S = np.arange(n), cell.state_size
        inputs = g.add_layer("input", n)
        cur = g.add_layer("scan inputs (a_t, b_t)", n)
        g.connect(inputs, pos, cur, pos, 1, flops_per_edge=4 * S * cell.input_size)
        shift, r = 1, 0
        while shift < n:  # the rounds of engine._scan.associative_scan
            prev, cur = cur, g.add_layer(f"scan round {r} (shift {shift})", n)
            g.connect(prev, pos, cur, pos, 0, flops_per_edge=S)  # its own prefix, carried
            g.connect(prev, pos[:-shift], cur, pos[shift:], 1, flops_per_edge=3 * S)  # a-product times h
            shift, r = 2 * shift, r + 1
        return g

    def graph(n):
        g = DependencyGraph()
        prev = g.add_layer("input", n)
        pos = np.arange(n)
        width = len(cols)
        gates = record.blocks if record is not None else 1
        for l in range(depth):
            d_in = cell.input_size if l == 0 else width
            cur = g.add_layer(f"recurrent {l}", n)
            g.connect(prev, pos, cur, pos, 1, flops_per_edge=2 * gates * width * d_in)
            g.connect(cur, pos[:-1], cur, pos[1:], 1, flops_per_edge=2 * gates * width * width)
            prev = cur
        return g

    config = dict(
        cell=cell.name,
        kind=cell.kind,
        layers=depth,
        state=cell.state_size,
        inputs=cell.input_size,
        **({"scan": True} if scan else {}),
    )
    return SequenceModel(
        "recurrent",
        cell.params,
        scan_forward if scan else forward,
        scan_graph if scan else graph,
        input_size=cell.input_size,
        width=len(cols),
        config=config,
        name=name or f"recurrent {cell.name}" + (" (scan)" if scan else ""),
        cell=cell,
    )
