"""Path lengths, receptive field and sequential depth from a model's dependency graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from . import _html
from ._graph import topological_levels
from ._sequence import SequenceModel
from ._validation import check_memory, check_positive_int


@dataclass(frozen=True, repr=False)
class PathLengths:
    """Fewest hops from every input position to the last output, and what they imply.

    Attributes
    ----------
    hops : ndarray, shape (n,)
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
    n: int
    hops: np.ndarray
    max_path: int
    receptive_field: int
    sequential_depth: int
    operations: pd.DataFrame

    @property
    def lags(self) -> np.ndarray:
        """``n - 1 - t`` for every position ``t``."""
        return np.arange(self.n)[::-1].copy()

    @property
    def covered(self) -> bool:
        """Does every input position reach the last output?"""
        return self.receptive_field == self.n

    def to_frame(self) -> pd.DataFrame:
        """Tidy data: one row per input position.

        Examples
        --------
        >>> import gradflow as gf
        >>> frame = gf.path_lengths(gf.conv_stack(4, kernel=3, layers=2), 6).to_frame()
        >>> list(frame.columns), frame.reachable.tolist()
        (['model', 'position', 'lag', 'hops', 'reachable'], [False, True, True, True, True, True])
        """
        return pd.DataFrame({"model": self.model, "position": np.arange(self.n), "lag": self.lags,
                             "hops": self.hops, "reachable": np.isfinite(self.hops)})

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
        sns.lineplot(data=frame[frame.reachable], x="lag", y="hops", ax=ax, label=self.model,
                     drawstyle="steps-post", **kwargs)
        ax.set(xlabel="lag n - 1 - t", ylabel="fewest hops to y_{n-1}")
        return ax

    def _summary(self) -> list[tuple[str, str]]:
        return [("positions n", str(self.n)), ("max path (hops)", str(self.max_path)),
                ("receptive field", f"{self.receptive_field} of {self.n}"),
                ("sequential depth", str(self.sequential_depth)),
                ("layers", str(len(self.operations) - 1)),
                ("flops", f"{self.operations.flops.sum():.3g}")]

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in self._summary())
        return f"PathLengths({self.model}: {body})"

    def _repr_html_(self) -> str:
        figure = _html.chart([_html.Series(self.lags, self.hops, "#3b6fb6")], xlabel="lag n - 1 - t",
                             ylabel="fewest hops")
        return _html.card("PathLengths", self.model, self._summary(), figure=figure,
                          note="a hop is one learned operation; gaps: positions with no path")


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


def path_lengths(model: SequenceModel, n: int, *, require_coverage: bool = False,
                 allow_large: bool = False) -> PathLengths:
    """Fewest hops from each input position to the last output, from the dependency graph.

    The graph of the model unrolled over ``n`` positions is a ``scipy.sparse`` matrix;
    `scipy.sparse.csgraph.dijkstra` from the last output over reversed edges gives
    every position's hop count, Kahn's algorithm the sequential depth. A hop is one
    learned operation (attention, convolution tap, recurrent step); identity skips are
    free (see ``gradflow._graph``).

    Parameters
    ----------
    model : SequenceModel
    n : int
        Sequence length.
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
        raise ValueError(f"model must be a SequenceModel (gf.self_attention, gf.tcn, gf.recurrent, ...); "
                         f"got {type(model).__name__}")
    n = check_positive_int("n", n)
    check_memory(f"path_lengths({model.name!r}, n={n})", _graph_bytes(model, n), allow_large)
    graph = model.dependency_graph(n)
    reverse = graph.reversed_matrix()
    output = graph.size - 1  # the last position of the last layer
    distance = dijkstra(reverse, directed=True, indices=output)
    hops = distance[:n]  # layer 0 holds the inputs
    finite = np.isfinite(hops)
    if require_coverage and not finite.all():
        missing = np.flatnonzero(~finite)
        raise ValueError(f"n={n} is not covered by the receptive field of {model.name!r}: "
                         f"{finite.sum()} of {n} positions reach the last output (positions "
                         f"{missing[0]}..{missing[-1]} do not)")
    levels = topological_levels(reverse)
    operations = pd.DataFrame({"layer": graph.names, "nodes": graph.sizes,
                               "edges": graph.edges_into(reverse), "flops": graph.flops})
    return PathLengths(model=model.name, n=n,
                       hops=np.where(finite, hops, np.inf),
                       max_path=int(hops[finite].max()) if finite.any() else 0,
                       receptive_field=int(finite.sum()),
                       sequential_depth=int(levels.max()),
                       operations=operations)
