"""Dependency graphs of unrolled sequence models: nodes are (layer, position).

A model describes which nodes each of its operations reads; the numbers (path
lengths, receptive field, sequential depth) come out of the graph with
``scipy.sparse.csgraph``, never from a formula per architecture.

Conventions, stated once: an edge is one *hop* (weight 1) when a learned operation
carries information from a node to the next (attention, a convolution tap, a
recurrent step, a recurrent cell's input map). An identity skip (residual)
connection is an edge of weight 0: it copies, it does not transform. Position-wise
operations (layer norm, feed-forward, input projection) live inside a node. So a
one-layer recurrent net has a path of ``n`` hops from ``x_0`` to ``y_{n-1}`` (the
input hop plus ``n - 1`` recurrent steps) and self-attention has 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class DependencyGraph:
    """Nodes grouped in named layers; edges ``src -> dst`` with hop weights 0 or 1.

    Layer 0 is the input sequence; the last node of the last layer is the output
    whose dependencies are measured. ``flops`` holds each layer's multiply-adds.
    """

    names: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    _src: list[np.ndarray] = field(default_factory=list)
    _dst: list[np.ndarray] = field(default_factory=list)
    _w: list[np.ndarray] = field(default_factory=list)

    def add_layer(self, name: str, size: int) -> int:
        """Append a layer of ``size`` nodes; returns its index."""
        self.names.append(name)
        self.sizes.append(int(size))
        self.flops.append(0.0)
        return len(self.sizes) - 1

    def offset(self, layer: int) -> int:
        return int(sum(self.sizes[:layer]))

    def connect(
        self, src_layer: int, src_pos, dst_layer: int, dst_pos, weight: int = 1, flops_per_edge: float = 0.0
    ) -> None:
        """Edges from ``(src_layer, src_pos[i])`` to ``(dst_layer, dst_pos[i])``."""
        src = np.asarray(src_pos, dtype=np.int64)
        dst = np.asarray(dst_pos, dtype=np.int64)
        src, dst = np.broadcast_arrays(src, dst)
        self._src.append(src.ravel() + self.offset(src_layer))
        self._dst.append(dst.ravel() + self.offset(dst_layer))
        self._w.append(np.full(src.size, float(weight)))
        self.flops[dst_layer] += flops_per_edge * src.size

    def edge_count(self) -> int:
        return int(sum(src.size for src in self._src))

    def add_flops(self, layer: int, flops: float) -> None:
        self.flops[layer] += float(flops)

    @property
    def size(self) -> int:
        return int(sum(self.sizes))

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._src:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        return np.concatenate(self._src), np.concatenate(self._dst), np.concatenate(self._w)

    def reversed_matrix(self) -> sp.csr_matrix:
        """``M[dst, src] = weight``; explicit zeros are kept, and csgraph treats them as edges."""
        src, dst, w = self.edges()
        n = self.size
        m = sp.csr_matrix((w, (dst, src)), shape=(n, n))
        if m.nnz != len(w):
            raise AssertionError("duplicate edges in a dependency graph")  # models never add them
        return m

    def edges_into(self, reversed_matrix: sp.csr_matrix) -> np.ndarray:
        """Edge count into each layer (from the in-degrees of ``reversed_matrix``)."""
        indegree = np.diff(reversed_matrix.indptr)
        return np.add.reduceat(indegree, np.cumsum([0, *self.sizes[:-1]]))


def topological_levels(reversed_matrix: sp.csr_matrix) -> np.ndarray:
    """Longest chain of operations ending at each node (inputs: 0), by Kahn's algorithm.

    Each round removes every node whose inputs are all computed: the round a node
    falls in is the number of operations that must run one after another before it.
    """
    forward = reversed_matrix.T.tocsr()
    indegree = np.diff(reversed_matrix.indptr).astype(np.int64)
    level = np.full(reversed_matrix.shape[0], -1, dtype=np.int64)
    frontier = np.flatnonzero(indegree == 0)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        starts, stops = forward.indptr[frontier], forward.indptr[frontier + 1]
        counts = stops - starts
        total = int(counts.sum())
        if total == 0:
            break
        # Indices of every out-edge of the frontier, without a Python loop over nodes.
        first = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        successors = forward.indices[first + np.arange(total)]
        hits = np.bincount(successors, minlength=len(indegree))
        indegree -= hits
        frontier = np.flatnonzero((indegree == 0) & (hits > 0))
        depth += 1
    if np.any(level < 0):
        raise AssertionError("a dependency graph has a cycle")
    return level
