"""`Model`: a recurrent network as PyTorch ran it, its cells (one per layer and direction when
bidirectional) and the linear head its output is read through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells._cells import Cell
from ..core import _html
from ..core._validation import as_float_array


@dataclass(frozen=True)
class Readout:
    """The linear head a model reads its output through: ``y = weight @ h_top + bias``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True, repr=False)
class Model:
    """A recurrent network as PyTorch ran it: its cells, its readout, and what was left out.

    A unidirectional stack is one `Cell` (``cells["forward"]``; the state is every layer's
    state). A bidirectional network has one one-layer cell per layer and direction
    (``"l0 forward"``, ``"l0 reverse"``, ...): the reverse cell reads its inputs reversed in
    time, and layer ``l + 1`` reads both directions' outputs of layer ``l``.

    Attributes
    ----------
    kind : {"rnn", "lstm", "gru"}
    cells : dict of str to Cell
    head : Readout or None
        The linear layer on the top layer's output (``fc.weight``, ``fc.bias`` or a named head).
    layers, hidden, proj_size : int
    bidirectional, batch_first : bool
    ignored : tuple of str
        State-dict keys that are neither the recurrent block nor its head.
    source : str
        Where the weights came from.

    Examples
    --------
    A PyTorch ``nn.RNN(2, 4, bias=False)`` with a ``Linear(4, 1)`` head, from its state_dict:

    >>> import numpy as np
    >>> import gradflow as gf
    >>> rng = np.random.default_rng(0)
    >>> Wi, Wh, Wo = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)) / 2, rng.normal(size=(1, 4))
    >>> model = gf.from_torch({"rnn.weight_ih_l0": Wi, "rnn.weight_hh_l0": Wh,
    ...                        "fc.weight": Wo, "fc.bias": np.zeros(1)})
    >>> model  # doctest: +NORMALIZE_WHITESPACE
    Model(name='rnn', kind='rnn', layers=1, hidden=4, proj_size=0, bidirectional=False,
          batch_first=False, head=fc (1, 4), ignored=[])
    >>> list(model.cells), model.cell.state_size, model.output_size
    (['forward'], 4, 4)
    """

    name: str
    kind: str
    cells: dict[str, Cell]
    head: Readout | None
    layers: int
    hidden: int
    proj_size: int
    bidirectional: bool
    batch_first: bool
    ignored: tuple[str, ...]
    source: str

    @property
    def cell(self) -> Cell:
        """The one cell of a unidirectional network."""
        if self.bidirectional:
            raise ValueError(
                f"model {self.name!r} is bidirectional: it has one cell per layer and "
                f"direction; use model.cells ({', '.join(self.cells)})"
            )
        return self.cells["forward"]

    @property
    def output_size(self) -> int:
        return (self.proj_size or self.hidden) * (2 if self.bidirectional else 1)

    def time_major(self, xs, batch_first: bool | None = None) -> np.ndarray:
        """``xs`` as ``(T, batch, inputs)``: transposed when it is batch-first (default: as the module).

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> rng = np.random.default_rng(0)
        >>> Wi, Wh = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)) / 2
        >>> model = gf.from_torch({"weight_ih_l0": Wi, "weight_hh_l0": Wh,
        ...                        "weight_ih_l0_reverse": Wi, "weight_hh_l0_reverse": Wh}, batch_first=True)
        >>> model.time_major(np.zeros((3, 7, 2))).shape  # 3 sequences of 7 steps
        (7, 3, 2)
        >>> model.time_major(np.zeros((7, 3, 2)), batch_first=False).shape
        (7, 3, 2)
        """
        xs = as_float_array("xs", xs, ndim=3)
        first = self.batch_first if batch_first is None else bool(batch_first)
        return np.swapaxes(xs, 0, 1).copy() if first else xs

    def cell_inputs(self, xs) -> dict[str, np.ndarray]:
        """Each cell's own input sequence for time-major ``xs``, in the cells' order.

        The reverse direction's sequence is reversed in time (its step ``t`` reads ``x_{T-1-t}``).

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> rng = np.random.default_rng(0)
        >>> Wi, Wh = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)) / 2
        >>> model = gf.from_torch({"weight_ih_l0": Wi, "weight_hh_l0": Wh,
        ...                        "weight_ih_l0_reverse": Wi, "weight_hh_l0_reverse": Wh}, batch_first=True)
        >>> xs = gf.inputs.gaussian(5, 3, 2)
        >>> inputs = model.cell_inputs(xs)
        >>> list(inputs), bool(np.array_equal(inputs["l0 reverse"], xs[::-1]))
        (['l0 forward', 'l0 reverse'], True)
        """
        from ..engine._engine import unroll

        xs = as_float_array("xs", xs, ndim=3)
        if not self.bidirectional:
            return {"forward": xs}
        out, inp = {}, xs
        width = self.proj_size or self.hidden
        for l in range(self.layers):
            fwd, rev = self.cells[f"l{l} forward"], self.cells[f"l{l} reverse"]
            out[f"l{l} forward"], out[f"l{l} reverse"] = inp, inp[::-1].copy()
            h_f = unroll(fwd, inp)[1:, :, :width]
            h_r = unroll(rev, inp[::-1])[1:, :, :width][::-1]
            inp = np.concatenate([h_f, h_r], axis=2)
        return out

    def outputs(self, xs) -> np.ndarray:
        """The top layer's output at every step, ``(T, batch, output_size)``: PyTorch's ``output``
        for time-major ``xs`` (both directions concatenated when bidirectional).

        Examples
        --------
        PyTorch's equations written out in numpy give the same last output:

        >>> import numpy as np
        >>> import gradflow as gf
        >>> rng = np.random.default_rng(0)
        >>> Wi, Wh, Wo = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)) / 2, rng.normal(size=(1, 4))
        >>> model = gf.from_torch({"rnn.weight_ih_l0": Wi, "rnn.weight_hh_l0": Wh,
        ...                        "fc.weight": Wo, "fc.bias": np.zeros(1)})
        >>> xs = gf.inputs.gaussian(6, 3, 2)
        >>> h = np.zeros((3, 4))
        >>> for x in xs:
        ...     h = np.tanh(x @ Wi.T + h @ Wh.T)
        >>> out = model.outputs(xs)
        >>> out.shape, bool(np.allclose(out[-1], h))
        ((6, 3, 4), True)
        """
        from ..engine._engine import unroll

        xs = as_float_array("xs", xs, ndim=3)
        width = self.proj_size or self.hidden
        if not self.bidirectional:
            cell = self.cell
            states = unroll(cell, xs)[1:]
            top = cell.components[f"l{self.layers - 1}.h" if self.layers > 1 else "h"]
            return states[:, :, top]
        inputs = self.cell_inputs(xs)
        last = self.layers - 1
        fwd = unroll(self.cells[f"l{last} forward"], inputs[f"l{last} forward"])[1:, :, :width]
        rev = unroll(self.cells[f"l{last} reverse"], inputs[f"l{last} reverse"])[1:, :, :width][::-1]
        return np.concatenate([fwd, rev], axis=2)

    def readout(self, xs) -> np.ndarray:
        """The head applied to the last step's output, ``(batch, head outputs)``.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> rng = np.random.default_rng(0)
        >>> Wi, Wh, Wo = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)) / 2, rng.normal(size=(1, 4))
        >>> model = gf.from_torch({"rnn.weight_ih_l0": Wi, "rnn.weight_hh_l0": Wh,
        ...                        "fc.weight": Wo, "fc.bias": np.zeros(1)})
        >>> xs = gf.inputs.gaussian(6, 3, 2)
        >>> y = model.readout(xs)
        >>> y.shape, bool(np.allclose(y, model.outputs(xs)[-1] @ Wo.T))
        ((3, 1), True)
        """
        if self.head is None:
            raise ValueError(f"model {self.name!r} has no head (no linear layer on its output)")
        return self.outputs(xs)[-1] @ self.head.weight.T + self.head.bias

    def readout_directions(self, name: str) -> np.ndarray | None:
        """The rows of the head as vectors in cell ``name``'s state, ``(outputs, state_size)``:
        what the output at the last step reads of that cell's final state. None when the head
        does not read that cell directly (no head, or a lower layer of a bidirectional net).

        Examples
        --------
        A one-layer RNN's state is its ``h``, so the head's rows are the directions themselves:

        >>> import numpy as np
        >>> import gradflow as gf
        >>> rng = np.random.default_rng(0)
        >>> Wi, Wh, Wo = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)) / 2, rng.normal(size=(1, 4))
        >>> model = gf.from_torch({"rnn.weight_ih_l0": Wi, "rnn.weight_hh_l0": Wh,
        ...                        "fc.weight": Wo, "fc.bias": np.zeros(1)})
        >>> directions = model.readout_directions("forward")
        >>> directions.shape, bool(np.array_equal(directions, Wo))
        ((1, 4), True)
        """
        if self.head is None:
            return None
        cell = self.cells[name]
        width = self.proj_size or self.hidden
        W = self.head.weight
        out = np.zeros((W.shape[0], cell.state_size))
        if not self.bidirectional:
            out[:, cell.components[f"l{self.layers - 1}.h" if self.layers > 1 else "h"]] = W
            return out
        if not name.startswith(f"l{self.layers - 1} "):
            return None
        # The last step's output holds the forward cell's final state and the reverse cell's
        # state after its first step (it reads x_{T-1} first); only the former is a final state.
        if name.endswith("forward"):
            out[:, :width] = W[:, :width]
            return out
        return None

    def __repr__(self) -> str:
        head = "none" if self.head is None else f"{self.head.name} {self.head.weight.shape}"
        return (
            f"Model(name={self.name!r}, kind={self.kind!r}, layers={self.layers}, "
            f"hidden={self.hidden}, proj_size={self.proj_size}, bidirectional={self.bidirectional}, "
            f"batch_first={self.batch_first}, head={head}, ignored={list(self.ignored)})"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("kind", self.kind),
            ("layers", str(self.layers)),
            ("hidden", str(self.hidden)),
            ("projection", str(self.proj_size or "none")),
            ("directions", "2 (bidirectional)" if self.bidirectional else "1"),
            ("batch_first", str(self.batch_first)),
            (
                "head",
                "none" if self.head is None else f"{self.head.name}: {self.head.weight.shape[0]} output(s)",
            ),
            ("cells", ", ".join(f"{k} (state {c.state_size})" for k, c in self.cells.items())),
            ("ignored keys", ", ".join(self.ignored) or "none"),
        ]
        return _html.card("Model", self.name, rows, note=f"from {self.source}")
