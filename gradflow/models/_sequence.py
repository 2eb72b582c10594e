"""Sequence models as data, and what their dependency graphs say.

Every model is weights as data plus ``apply(params, xs) -> ys`` over a whole time-major
sequence ``(n, batch, inputs) -> (n, batch, width)``, written with ``autograd.numpy``.
Each also describes its own dependency structure (`dependency_graph`) from the *same*
masks and tap offsets that ``apply`` uses, so the path lengths computed from the graph
and the structural zeros of the autograd gradient cannot disagree. This module holds the
`SequenceModel` container and `path_lengths` (fewest hops, receptive field, sequential
depth); the builders are in ``_attention``, ``_convolution`` and ``_recurrent``, the pieces
they share in ``_pieces``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from autograd.tracer import Box
from scipy.sparse.csgraph import dijkstra

from ..cells._cells import Cell
from ..core import _html, deprecated_spellings, renamed_attribute
from ..core._validation import as_float_array, check_memory, check_positive_int
from ._graph import DependencyGraph, topological_levels


class SequenceModel:
    """A sequence model: named weight arrays, ``apply`` and its dependency graph.

    Build one with `self_attention`, `restricted_attention`, `hierarchical_attention`,
    `tcn`, `conv_stack` or `recurrent`; ``model(xs)`` is ``model.apply(model.params, xs)``.

    Examples
    --------
    Two causal convolutions of width 4 and kernel 3 (weights ``3 x 4 x 4`` and a bias each):

    >>> import numpy as np
    >>> import gradflow as gf
    >>> model = gf.conv_stack(4, kernel=3, layers=2)
    >>> model(gf.inputs.gaussian(10, 2, 4)).shape
    (10, 2, 4)
    >>> model.kind, model.parameter_count == 2 * (3 * 4 * 4 + 4)
    ('conv-stack', True)
    """

    def __init__(
        self,
        kind: str,
        params: Mapping[str, np.ndarray],
        forward: Callable,
        graph: Callable[[int], DependencyGraph],
        *,
        input_size: int,
        width: int,
        config: Mapping[str, Any],
        name: str | None = None,
        cell: Cell | None = None,
    ):
        self.kind = kind
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self._forward = forward
        self._graph = graph
        self.input_size = int(input_size)
        self.width = int(width)
        self.config = dict(config)
        self.name = name or kind
        self.cell = cell  # the engine's cell, for recurrent models

    def check_inputs(self, xs) -> np.ndarray:
        """Validate a time-major ``(n, batch, inputs)`` sequence.

        Examples
        --------
        >>> import numpy as np
        >>> import gradflow as gf
        >>> model = gf.conv_stack(4, kernel=3, layers=2)
        >>> model.check_inputs(np.zeros((5, 2, 4))).shape
        (5, 2, 4)
        >>> model.check_inputs(np.zeros((5, 2, 3)))
        Traceback (most recent call last):
        ...
        ValueError: xs must have shape (n, batch, 4) for model 'conv-stack (k=3, L=2)'; got (5, 2, 3)
        """
        xs = as_float_array("xs", xs, ndim=3)
        n, b, d = xs.shape
        if n == 0 or b == 0:
            raise ValueError(f"xs must have at least one position and one sample; got shape {xs.shape}")
        if d != self.input_size:
            raise ValueError(
                f"xs must have shape (n, batch, {self.input_size}) for model {self.name!r}; got {xs.shape}"
            )
        return xs

    def apply(self, params: Mapping[str, Any], xs) -> Any:
        """Outputs ``(n, batch, width)``; differentiable in ``params`` and ``xs`` with autograd.

        Examples
        --------
        The last output of two causal kernel-3 layers reads the last 5 inputs only (as
        `path_lengths` says), so its gradient is exactly zero at ``x_0``:

        >>> from autograd import grad
        >>> import numpy as np
        >>> import gradflow as gf
        >>> model = gf.conv_stack(4, kernel=3, layers=2)
        >>> xs = gf.inputs.gaussian(6, 1, 4)
        >>> g = grad(lambda xs: model.apply(model.params, xs)[-1].sum())(xs)
        >>> (np.abs(g).sum(axis=(1, 2)) > 0).tolist()
        [False, True, True, True, True, True]
        """
        if not isinstance(xs, Box):  # autograd's traced arrays pass through unchecked
            xs = self.check_inputs(xs)
        return self._forward(params, xs)

    def __call__(self, xs) -> np.ndarray:
        return self.apply(self.params, self.check_inputs(xs))

    @deprecated_spellings(renamed={"n": "seq_len"})
    def dependency_graph(self, seq_len: int) -> DependencyGraph:
        """The model unrolled over ``seq_len`` positions: nodes (layer, position), hops between them.

        Examples
        --------
        At length 5, each causal kernel-3 layer reads ``1 + 2 + 3 + 3 + 3 = 12`` inputs:

        >>> import gradflow as gf
        >>> graph = gf.conv_stack(4, kernel=3, layers=2).dependency_graph(5)
        >>> graph.names, graph.sizes, graph.edge_count()
        (['input', 'conv 0 (dilation 1)', 'conv 1 (dilation 1)'], [5, 5, 5], 24)
        """
        return self._graph(check_positive_int("seq_len", seq_len))

    @property
    def parameter_count(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"<SequenceModel {self.name}: {cfg}; {self.parameter_count} parameters>"

    @deprecated_spellings(renamed={"n": "seq_len"})
    def plot(self, seq_len: int = 64, ax=None):
        """Fewest hops from each input to the last output at sequence length ``seq_len`` (`path_lengths`).

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import gradflow as gf
        >>> ax = gf.recurrent(gf.rnn(4, 2)).plot(seq_len=8, ax=Figure().subplots())
        >>> line = ax.get_lines()[0]  # a recurrent step is one hop: input t is n - t hops away
        >>> line.get_label(), line.get_xdata().tolist()
        ('recurrent rnn-tanh', [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
        >>> line.get_ydata().tolist()
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        """
        return path_lengths(self, seq_len).plot(ax=ax)

    def _repr_html_(self) -> str:
        # config repeats inputs and width, and a recurrent model's cell kind twice ("cell", "kind")
        repeated = self.config.get("kind") in (self.kind, self.config.get("cell"))
        shown = {"inputs", "width"} | ({"kind"} if repeated else set())
        rows = [
            ("kind", self.kind),
            ("inputs, width", f"{self.input_size}, {self.width}"),
            *((k, str(v)) for k, v in self.config.items() if k not in shown),
            ("parameters", f"{self.parameter_count:,}"),
        ]
        return _html.card("SequenceModel", self.name, rows, note="gf.path_lengths(model, seq_len): its paths")


@dataclass(frozen=True, repr=False)
class PathLengths:
    """Fewest hops from every input position to the last output, and what they imply.

    Attributes
    ----------
    seq_len : int
        The sequence length ``n`` the model was unrolled over (``n`` before 0.3.0).
    hops : ndarray, shape (seq_len,)
        Fewest hops from ``x_t`` to ``y_{n-1}`` (``inf`` where no path exists), by position ``t``.
    max_path : int
        The largest finite entry of ``hops``: the longest shortest path.
    receptive_field : int
        How many input positions reach the last output.
    sequential_depth : int
        The longest chain of operations that must run one after another (rounds of a
        parallel schedule over the whole unrolled graph).
    operations : pandas.DataFrame
        Per layer of the graph: nodes, edges into it, multiply-add flops.

    Examples
    --------
    Two causal kernel-3 convolutions see ``1 + 2 * (3 - 1) = 5`` positions, each 2 hops away:

    >>> import gradflow as gf
    >>> p = gf.path_lengths(gf.conv_stack(4, kernel=3, layers=2), 6)
    >>> p.hops.tolist(), p.max_path, p.receptive_field, p.covered, p.sequential_depth
    ([inf, 2.0, 2.0, 2.0, 2.0, 2.0], 2, 5, False, 2)
    >>> p.operations.edges.tolist()  # 1 + 2 + 3 + 3 + 3 + 3 taps a layer at n = 6
    [0, 15, 15]
    """

    model: str
    seq_len: int
    hops: np.ndarray
    max_path: int
    receptive_field: int
    sequential_depth: int
    operations: pd.DataFrame
    n = renamed_attribute("seq_len")  # before 0.3.0

    @property
    def lags(self) -> np.ndarray:
        """``n - 1 - t`` for every position ``t``."""
        return np.arange(self.seq_len)[::-1].copy()

    @property
    def covered(self) -> bool:
        """Does every input position reach the last output?"""
        return self.receptive_field == self.seq_len

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per input position.

        Examples
        --------
        >>> import gradflow as gf
        >>> frame = gf.path_lengths(gf.conv_stack(4, kernel=3, layers=2), 6).to_frame()
        >>> list(frame.columns), frame.reachable.tolist()
        (['model', 'position', 'lag', 'hops', 'reachable'], [False, True, True, True, True, True])
        """
        return pd.DataFrame(
            {
                "model": self.model,
                "position": np.arange(self.seq_len),
                "lag": self.lags,
                "hops": self.hops,
                "reachable": np.isfinite(self.hops),
            }
        )

    def plot(self, ax=None, **kwargs):
        """Hops against lag.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import gradflow as gf
        >>> ax = gf.path_lengths(gf.conv_stack(4, kernel=3, layers=2), 6).plot(ax=Figure().subplots())
        >>> line = ax.get_lines()[0]  # reachable positions only
        >>> line.get_xdata().tolist(), line.get_ydata().tolist(), ax.get_xlabel()
        ([0.0, 1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0, 2.0], 'lag n - 1 - t')
        """
        import matplotlib.pyplot as plt
        import seaborn as sns

        ax = ax or plt.gca()
        frame = self.to_frame()
        sns.lineplot(
            data=frame[frame.reachable],
            x="lag",
            y="hops",
            ax=ax,
            label=self.model,
            drawstyle="steps-post",
            **kwargs,
        )
        ax.set(xlabel="lag n - 1 - t", ylabel="fewest hops to y_{n-1}")
        return ax

    def _summary(self) -> list[tuple[str, str]]:
        return [
            ("sequence length", str(self.seq_len)),
            ("max path (hops)", str(self.max_path)),
            ("receptive field", f"{self.receptive_field} of {self.seq_len}"),
            ("sequential depth", str(self.sequential_depth)),
            ("layers", str(len(self.operations) - 1)),
            ("flops", f"{self.operations.flops.sum():.3g}"),
        ]

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in self._summary())
        return f"PathLengths({self.model}: {body})"

    def _repr_html_(self) -> str:
        figure = _html.chart(
            [_html.Series(self.lags, self.hops, "#3b6fb6")], xlabel="lag n - 1 - t", ylabel="fewest hops"
        )
        return _html.card(
            "PathLengths",
            self.model,
            self._summary(),
            figure=figure,
            note="a hop is one learned operation; gaps: positions with no path",
        )


BYTES_PER_EDGE = 64  # edge lists (src, dst, weight), their concatenation, the CSR matrix, dijkstra
_PROBE_N = 1024  # graphs this long are built to extrapolate the size of a long one


def _graph_bytes(model: SequenceModel, n: int) -> float:
    """Memory the graph of ``model`` over ``n`` positions needs, extrapolated from two short
    graphs as a power law in ``n`` (linear for convolutions, quadratic for full attention)."""
    if n <= 4 * _PROBE_N:
        return 0.0
    small, large = (max(1, model.dependency_graph(m).edge_count()) for m in (_PROBE_N, 2 * _PROBE_N))
    power = max(1.0, float(np.log2(large / small)))
    return BYTES_PER_EDGE * large * (n / (2 * _PROBE_N)) ** power


@deprecated_spellings(renamed={"n": "seq_len"})
def path_lengths(
    model: SequenceModel, seq_len: int, *, require_coverage: bool = False, allow_large: bool = False
) -> PathLengths:
    """Fewest hops from each input position to the last output, from the dependency graph.

    The graph of the model unrolled over ``n`` positions is a ``scipy.sparse`` matrix;
    `scipy.sparse.csgraph.dijkstra` from the last output over reversed edges gives
    every position's hop count, Kahn's algorithm the sequential depth. A hop is one
    learned operation (attention, convolution tap, recurrent step); identity skips are
    free (see ``gradflow.models._graph``).

    Parameters
    ----------
    model : SequenceModel
    seq_len : int
        Sequence length ``n``: the model is unrolled over positions ``0..n-1``.
    require_coverage : bool
        Raise ``ValueError`` when some input position cannot reach the last output.
    allow_large : bool
        Build a graph estimated to need more than 4 GiB (refused by default, with the estimate).

    Examples
    --------
    >>> import gradflow as gf
    >>> p = gf.path_lengths(gf.recurrent(gf.rnn(8, 2)), 100)
    >>> p.max_path, p.sequential_depth, gf.path_lengths(gf.self_attention(8), 100).max_path
    (100, 100, 1)
    """
    if not isinstance(model, SequenceModel):
        raise ValueError(
            f"model must be a SequenceModel (gf.self_attention, gf.tcn, gf.recurrent, ...); "
            f"got {type(model).__name__}"
        )
    n = check_positive_int("seq_len", seq_len)
    check_memory(f"path_lengths({model.name!r}, seq_len={n})", _graph_bytes(model, n), allow_large)
    graph = model.dependency_graph(n)
    reverse = graph.reversed_matrix()
    output = graph.size - 1  # the last position of the last layer
    distance = dijkstra(reverse, directed=True, indices=output)
    hops = distance[:n]  # layer 0 holds the inputs
    finite = np.isfinite(hops)
    if require_coverage and not finite.all():
        missing = np.flatnonzero(~finite)
        raise ValueError(
            f"seq_len={n} is not covered by the receptive field of {model.name!r}: "
            f"{finite.sum()} of {n} positions reach the last output (positions "
            f"{missing[0]}..{missing[-1]} do not)"
        )
    levels = topological_levels(reverse)
    operations = pd.DataFrame(
        {"layer": graph.names, "nodes": graph.sizes, "edges": graph.edges_into(reverse), "flops": graph.flops}
    )
    return PathLengths(
        model=model.name,
        seq_len=n,
        hops=np.where(finite, hops, np.inf),
        max_path=int(hops[finite].max()) if finite.any() else 0,
        receptive_field=int(finite.sum()),
        sequential_depth=int(levels.max()),
        operations=operations,
    )
