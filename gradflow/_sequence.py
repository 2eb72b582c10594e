"""Sequence models beside the recurrent cells: attention, hierarchical attention, convolutions.

Every model is weights as data plus ``apply(params, xs) -> ys`` over a whole time-major
sequence ``(n, batch, inputs) -> (n, batch, width)``, written with ``autograd.numpy``.
Each also describes its own dependency structure (`dependency_graph`) from the *same*
masks and tap offsets that ``apply`` uses, so the path lengths computed from the graph
and the structural zeros of the autograd gradient cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import autograd.numpy as anp
import numpy as np
from autograd.tracer import Box

from . import _html
from ._cells import Cell
from ._graph import DependencyGraph
from ._registry import find_cell_kind
from ._validation import as_float_array, check_choice, check_finite_float, check_positive_int, check_seed

POSITIONAL = ("sinusoidal", "none")


class SequenceModel:
    """A sequence model: named weight arrays, ``apply`` and its dependency graph.

    Build one with `self_attention`, `restricted_attention`, `hierarchical_attention`,
    `tcn`, `conv_stack` or `recurrent`; ``model(xs)`` is ``model.apply(model.params, xs)``.
    """

    def __init__(self, kind: str, params: Mapping[str, np.ndarray],
                 forward: Callable, graph: Callable[[int], DependencyGraph], *,
                 input_size: int, width: int, config: Mapping[str, Any], name: str | None = None,
                 cell: Cell | None = None):
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
        """Validate a time-major ``(n, batch, inputs)`` sequence."""
        xs = as_float_array("xs", xs, ndim=3)
        n, b, d = xs.shape
        if n == 0 or b == 0:
            raise ValueError(f"xs must have at least one position and one sample; got shape {xs.shape}")
        if d != self.input_size:
            raise ValueError(f"xs must have shape (n, batch, {self.input_size}) for model "
                             f"{self.name!r}; got {xs.shape}")
        return xs

    def apply(self, params: Mapping[str, Any], xs) -> Any:
        """Outputs ``(n, batch, width)``; differentiable in ``params`` and ``xs`` with autograd."""
        if not isinstance(xs, Box):  # autograd's traced arrays pass through unchecked
            xs = self.check_inputs(xs)
        return self._forward(params, xs)

    def __call__(self, xs) -> np.ndarray:
        return self.apply(self.params, self.check_inputs(xs))

    def dependency_graph(self, n: int) -> DependencyGraph:
        """The unrolled model's nodes (layer, position) and the hops between them."""
        return self._graph(check_positive_int("n", n))

    @property
    def parameter_count(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"<SequenceModel {self.name}: {cfg}; {self.parameter_count} parameters>"

    def plot(self, n: int = 64, ax=None):
        """Fewest hops from each input to the last output at length ``n`` (`path_lengths`)."""
        from ._paths import path_lengths  # _paths builds on this module

        return path_lengths(self, n).plot(ax=ax)

    def _repr_html_(self) -> str:
        # config repeats inputs and width, and a recurrent model's cell kind twice ("cell", "kind")
        repeated = self.config.get("kind") in (self.kind, self.config.get("cell"))
        shown = {"inputs", "width"} | ({"kind"} if repeated else set())
        rows = [("kind", self.kind), ("inputs, width", f"{self.input_size}, {self.width}"),
                *((k, str(v)) for k, v in self.config.items() if k not in shown),
                ("parameters", f"{self.parameter_count:,}")]
        return _html.card("SequenceModel", self.name, rows, note="gf.path_lengths(model, n) for its paths")


# ---------------------------------------------------------------- shared pieces


def _normal(rng, shape, std):
    return rng.normal(0.0, std, size=shape)


def sinusoidal_positions(n: int, width: int) -> np.ndarray:
    """Vaswani et al.'s fixed encodings, ``(n, width)``."""
    pos = np.arange(n)[:, None]
    i = np.arange(width)[None, :]
    angle = pos / np.power(10000.0, (2 * (i // 2)) / width)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


def layer_norm(z, gain, bias, eps=1e-5):
    mu = anp.mean(z, axis=-1, keepdims=True)
    var = anp.mean((z - mu) ** 2, axis=-1, keepdims=True)
    return (z - mu) / anp.sqrt(var + eps) * gain + bias


def softmax(scores, mask, axis=-1):
    """Masked softmax; masked entries get exactly zero weight (and zero gradient)."""
    scores = anp.where(mask, scores, -np.inf)
    scores = scores - anp.max(scores, axis=axis, keepdims=True)
    e = anp.where(mask, anp.exp(scores), 0.0)
    return e / anp.sum(e, axis=axis, keepdims=True)


def _embed(params, xs, positional: str):
    """Time-major ``(n, B, d)`` to batch-major ``(B, n, W)``: projection plus positions."""
    z = anp.einsum("nbd,dw->bnw", xs, params["input_projection"])
    if positional == "sinusoidal":
        z = z + sinusoidal_positions(xs.shape[0], params["input_projection"].shape[1])
    return z


def _to_time_major(z):
    return anp.transpose(z, (1, 0, 2))


def _check_inputs_arg(inputs, width):
    return width if inputs is None else check_positive_int("inputs", inputs)


# ---------------------------------------------------------------- attention


def attention_mask(n: int, window: int | None, causal: bool) -> np.ndarray:
    """``mask[i, j]``: may position ``i`` read position ``j``? (window ``r``: ``|i - j| <= r``)."""
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    mask = np.ones((n, n), dtype=bool)
    if causal:
        mask &= j <= i
    if window is not None:
        mask &= np.abs(i - j) <= window
    return mask


def _multi_head(z, p, prefix, mask, heads):
    B, n, W = z.shape
    dh = W // heads

    def split(a):
        return anp.transpose(anp.reshape(a, (B, n, heads, dh)), (0, 2, 1, 3))

    q, k, v = (split(z @ p[f"{prefix}.w{name}"]) for name in "qkv")
    weights = softmax(q @ anp.transpose(k, (0, 1, 3, 2)) / np.sqrt(dh), mask)
    out = anp.reshape(anp.transpose(weights @ v, (0, 2, 1, 3)), (B, n, W))
    return out @ p[f"{prefix}.wo"]


def _attention_params(rng, layers, width, inputs, feed_forward, layer_norm_on, gain):
    p = {"input_projection": _normal(rng, (inputs, width), 1.0 / np.sqrt(inputs))}
    for l in range(layers):
        for name in "qkvo":  # gain sets the sharpness of attention: it scales queries and keys
            p[f"l{l}.w{name}"] = _normal(rng, (width, width), (gain if name in "qk" else 1.0)
                                         / np.sqrt(width))
        if feed_forward:
            p[f"l{l}.ff_w1"] = _normal(rng, (width, 4 * width), np.sqrt(2.0 / width))
            p[f"l{l}.ff_b1"] = np.zeros(4 * width)
            p[f"l{l}.ff_w2"] = _normal(rng, (4 * width, width), 1.0 / np.sqrt(4 * width))
            p[f"l{l}.ff_b2"] = np.zeros(width)
        if layer_norm_on:
            for ln in ("ln1", "ln2") if feed_forward else ("ln1",):
                p[f"l{l}.{ln}_gain"], p[f"l{l}.{ln}_bias"] = np.ones(width), np.zeros(width)
    if layer_norm_on:
        p["final_gain"], p["final_bias"] = np.ones(width), np.zeros(width)
    return p


def _attention_model(kind, width, heads, layers, window, inputs, causal, residual, layer_norm_on,
                     feed_forward, positional, gain, seed, name):
    width = check_positive_int("width", width)
    heads = check_positive_int("heads", heads)
    layers = check_positive_int("layers", layers)
    if width % heads:
        raise ValueError(f"width must be a multiple of heads; got width={width}, heads={heads}")
    inputs = _check_inputs_arg(inputs, width)
    positional = check_choice("positional", positional, POSITIONAL)
    gain = check_finite_float("gain", gain, minimum=0.0)
    rng = np.random.default_rng(check_seed(seed))
    params = _attention_params(rng, layers, width, inputs, feed_forward, layer_norm_on, gain)

    def forward(p, xs):
        z = _embed(p, xs, positional)
        mask = attention_mask(xs.shape[0], window, causal)
        for l in range(layers):
            # Pre-norm blocks: the residual stream is an identity path (GPT-2 style).
            a = layer_norm(z, p[f"l{l}.ln1_gain"], p[f"l{l}.ln1_bias"]) if layer_norm_on else z
            a = _multi_head(a, p, f"l{l}", mask, heads)
            z = z + a if residual else a
            if feed_forward:
                f = layer_norm(z, p[f"l{l}.ln2_gain"], p[f"l{l}.ln2_bias"]) if layer_norm_on else z
                f = anp.maximum(f @ p[f"l{l}.ff_w1"] + p[f"l{l}.ff_b1"], 0.0) @ p[f"l{l}.ff_w2"] + \
                    p[f"l{l}.ff_b2"]
                z = z + f if residual else f
        if layer_norm_on:
            z = layer_norm(z, p["final_gain"], p["final_bias"])
        return _to_time_major(z)

    def graph(n):
        g = DependencyGraph()
        prev = g.add_layer("input", n)
        dst, src = np.nonzero(attention_mask(n, window, causal))
        for l in range(layers):
            cur = g.add_layer(f"attention {l}", n)
            if l == 0:
                g.add_flops(cur, 2 * n * inputs * width)  # the input projection
            node = 8 * width * width + (16 * width * width if feed_forward else 0)
            g.add_flops(cur, n * node)  # q, k, v, o projections (+ feed-forward), per position
            if residual:  # the identity path replaces the self-edge: weight 0, not 1
                off = src != dst
                g.connect(prev, src[off], cur, dst[off], 1, flops_per_edge=4 * width)
                g.connect(prev, np.arange(n), cur, np.arange(n), 0, flops_per_edge=4 * width)
            else:
                g.connect(prev, src, cur, dst, 1, flops_per_edge=4 * width)
            prev = cur
        return g

    config = dict(width=width, heads=heads, layers=layers, inputs=inputs, causal=causal,
                  residual=residual, layer_norm=layer_norm_on, feed_forward=feed_forward,
                  positional=positional, gain=gain, seed=int(seed))
    if window is not None:
        config["window"] = window
    return SequenceModel(kind, params, forward, graph, input_size=inputs, width=width, config=config,
                         name=name)


def self_attention(width: int, heads: int = 1, layers: int = 1, *, inputs: int | None = None,
                   causal: bool = True, residual: bool = True, layer_norm: bool = True,
                   feed_forward: bool = True, positional: str = "sinusoidal", gain: float = 1.0,
                   seed: int = 0, name: str | None = None) -> SequenceModel:
    """Causal multi-head self-attention (Vaswani et al. 2017), stackable to depth ``layers``.

    Each layer is a pre-norm block: ``z + MHA(LN(z))`` then ``z + FFN(LN(z))``
    (``residual``, ``layer_norm`` and ``feed_forward`` switch the parts off). Inputs are
    projected to ``width`` and get sinusoidal positions. Query and key weights are
    ``N(0, gain^2 / width)`` (``gain = 0``: exactly uniform attention), value and output
    weights ``N(0, 1 / width)``.

    Examples
    --------
    >>> import gradflow as gf
    >>> model = gf.self_attention(16, heads=2, layers=2, inputs=3, seed=0)
    >>> model(gf.inputs.gaussian(10, 4, 3)).shape
    (10, 4, 16)
    """
    return _attention_model("self-attention", width, heads, layers, None, inputs, causal, residual,
                            layer_norm, feed_forward, positional, gain, seed, name or "self-attention")


def restricted_attention(width: int, window: int, heads: int = 1, layers: int = 1, *,
                         inputs: int | None = None, causal: bool = True, residual: bool = True,
                         layer_norm: bool = True, feed_forward: bool = True,
                         positional: str = "sinusoidal", gain: float = 1.0, seed: int = 0,
                         name: str | None = None) -> SequenceModel:
    """Self-attention restricted to a window: position ``i`` reads ``j`` with ``|i - j| <= window``.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.path_lengths(gf.restricted_attention(8, window=4, layers=3), 13).max_path
    3
    """
    window = check_positive_int("window", window)
    return _attention_model("restricted-attention", width, heads, layers, window, inputs, causal,
                            residual, layer_norm, feed_forward, positional, gain, seed,
                            name or f"restricted-attention (r={window})")


# ---------------------------------------------------------------- hierarchical attention


def hierarchy(n: int, chunk: int, causal: bool = True):
    """The tree of seed 002's hierarchical attention over ``n`` positions.

    Level 0 holds the positions; a level-``l`` summary pools ``chunk`` consecutive
    level-``(l-1)`` nodes. Output ``i`` reads the positions of its own chunk (up to
    ``i`` when causal) and, at each level ``l >= 1``, the summaries of its ancestor's
    sibling blocks (the preceding, complete ones when causal), so every earlier position
    is covered exactly once. Returns ``(sizes, context)``: the node count per level and
    ``(output, level, index)`` index arrays.
    """
    levels = 1
    while chunk**levels < n:
        levels += 1
    sizes = [n] + [math.ceil(n / chunk**lev) for lev in range(1, levels)]
    i = np.arange(n)
    outs, levs, idx = [], [], []
    for lev in range(levels):
        a = i // chunk**lev  # the level-lev block holding i
        for s in range(-(chunk - 1), chunk):  # sibling a - s: s > 0 before i's block, s < 0 after
            if (lev > 0 and s == 0) or (causal and s < 0):
                continue  # i's own block is reached through the levels below it
            k = a - s
            keep = (k >= 0) & (k < sizes[lev]) & (k // chunk == a // chunk)
            outs.append(i[keep])
            levs.append(np.full(int(keep.sum()), lev))
            idx.append(k[keep])
    return sizes, (np.concatenate(outs), np.concatenate(levs), np.concatenate(idx))


def hierarchical_attention(width: int, chunk: int, *, inputs: int | None = None, causal: bool = True,
                           positional: str = "sinusoidal", gain: float = 1.0, seed: int = 0,
                           name: str | None = None) -> SequenceModel:
    """Attention inside chunks of ``chunk`` positions, then over chunk summaries, level after level.

    Seed 002's hierarchical attention encoder: each summary is attention pooling of its
    ``chunk`` children (query from the last child); each output attends to its own
    chunk and to the summaries of the sibling blocks before it at every level
    (`hierarchy`), so ``ceil(log_chunk n)`` levels cover ``n`` positions. The pooling
    weights are shared across levels, so one model runs at any ``n``.

    Examples
    --------
    >>> import gradflow as gf
    >>> model = gf.hierarchical_attention(8, chunk=4, inputs=2)
    >>> model(gf.inputs.gaussian(64, 1, 2)).shape, gf.path_lengths(model, 64).max_path
    ((64, 1, 8), 3)
    """
    width = check_positive_int("width", width)
    chunk = check_positive_int("chunk", chunk, minimum=2)
    inputs = _check_inputs_arg(inputs, width)
    positional = check_choice("positional", positional, POSITIONAL)
    gain = check_finite_float("gain", gain, minimum=0.0)
    rng = np.random.default_rng(check_seed(seed))
    params = {"input_projection": _normal(rng, (inputs, width), 1.0 / np.sqrt(inputs))}
    for part in ("pool", "out"):
        for w in "qkvo":
            params[f"{part}.w{w}"] = _normal(rng, (width, width), (gain if w in "qk" else 1.0)
                                             / np.sqrt(width))

    def pool(p, children):
        """Summaries of consecutive blocks of ``chunk`` children (the last block may be short)."""
        B, m, W = children.shape
        blocks = math.ceil(m / chunk)
        pad = blocks * chunk - m
        if pad:
            children = anp.concatenate([children, anp.zeros((B, pad, W))], axis=1)
        c = anp.reshape(children, (B, blocks, chunk, W))
        valid = (np.arange(blocks * chunk) < m).reshape(blocks, chunk)
        last = np.minimum(np.arange(blocks) * chunk + chunk, m) - 1 - np.arange(blocks) * chunk
        query = c[:, np.arange(blocks), last] @ p["pool.wq"]  # (B, blocks, W)
        scores = anp.einsum("bkw,bkcw->bkc", query, c @ p["pool.wk"]) / np.sqrt(W)
        weights = softmax(scores, valid)
        return anp.einsum("bkc,bkcw->bkw", weights, c @ p["pool.wv"]) @ p["pool.wo"]

    def forward(p, xs):
        n = xs.shape[0]
        z = _embed(p, xs, positional)
        sizes, (out, lev, idx) = hierarchy(n, chunk, causal)
        bank, offsets = [z], [0, n]
        for _ in range(1, len(sizes)):
            bank.append(pool(p, bank[-1]))
            offsets.append(offsets[-1] + bank[-1].shape[1])
        keys = anp.concatenate(bank, axis=1)  # every node of every level
        # Gather each output's context (at most chunk + (chunk - 1) * levels nodes) into a pad.
        node = np.asarray(offsets)[lev] + idx
        order = np.lexsort((node, out))
        out, node = out[order], node[order]
        counts = np.bincount(out, minlength=n)
        slot = np.arange(len(out)) - np.repeat(np.cumsum(counts) - counts, counts)
        table = np.zeros((n, counts.max()), dtype=np.int64)
        valid = np.zeros((n, counts.max()), dtype=bool)
        table[out, slot], valid[out, slot] = node, True
        ctx = keys[:, table]  # (B, n, K, W)
        query = z @ p["out.wq"]
        scores = anp.einsum("bnw,bnkw->bnk", query, ctx @ p["out.wk"]) / np.sqrt(width)
        y = anp.einsum("bnk,bnkw->bnw", softmax(scores, valid), ctx @ p["out.wv"]) @ p["out.wo"]
        return _to_time_major(y)

    def graph(n):
        g = DependencyGraph()
        sizes, (out, lev, idx) = hierarchy(n, chunk, causal)
        layer = [g.add_layer("input", n)]
        for lv in range(1, len(sizes)):
            cur = g.add_layer(f"summary level {lv}", sizes[lv])
            child = np.arange(sizes[lv - 1])
            g.connect(layer[-1], child, cur, child // chunk, 1, flops_per_edge=4 * width)
            g.add_flops(cur, sizes[lv] * 2 * width * width)
            layer.append(cur)
        final = g.add_layer("output", n)
        g.add_flops(final, n * 2 * width * width + n * 2 * width * width)  # q, o + k, v of tokens
        for lv in range(len(sizes)):
            pick = lev == lv
            g.connect(layer[lv], idx[pick], final, out[pick], 1, flops_per_edge=4 * width)
        return g

    config = dict(width=width, chunk=chunk, inputs=inputs, causal=causal, positional=positional,
                  gain=gain, seed=int(seed))
    return SequenceModel("hierarchical-attention", params, forward, graph, input_size=inputs,
                         width=width, config=config, name=name or f"hierarchical-attention (c={chunk})")


# ---------------------------------------------------------------- convolutions


def tap_offsets(kernel: int, dilation: int, causal: bool) -> np.ndarray:
    """Where tap ``j`` reads, relative to the output position: ``-j d`` (causal) or centred."""
    j = np.arange(kernel)
    return -j * dilation if causal else (j - (kernel - 1) // 2) * dilation


def _conv(x, w, b, offsets):
    """``y_t = sum_j x_{t + offsets[j]} @ w[j] + b`` with zeros outside the sequence; x (B, n, C)."""
    B, n, C = x.shape
    left, right = max(0, -int(offsets.min())), max(0, int(offsets.max()))
    parts = [anp.zeros((B, left, C))] if left else []
    parts.append(x)
    if right:
        parts.append(anp.zeros((B, right, C)))
    xp = anp.concatenate(parts, axis=1) if len(parts) > 1 else x
    y = b
    for j, off in enumerate(offsets):
        start = left + int(off)
        y = y + xp[:, start : start + n] @ w[j]
    return y


def _conv_weight(p, prefix, weight_norm):
    if not weight_norm:
        return p[f"{prefix}.weight"]
    v = p[f"{prefix}.weight_v"]  # PyTorch weight_norm(dim=0): one norm per output channel
    return v * (p[f"{prefix}.weight_g"] / anp.sqrt(anp.sum(v**2, axis=(0, 1))))


def _conv_params(rng, prefix, kernel, c_in, c_out, gain, weight_norm):
    w = _normal(rng, (kernel, c_in, c_out), gain * np.sqrt(2.0 / (kernel * c_in)))
    if weight_norm:
        return {f"{prefix}.weight_v": w, f"{prefix}.weight_g": np.sqrt(np.sum(w**2, axis=(0, 1))),
                f"{prefix}.bias": np.zeros(c_out)}
    return {f"{prefix}.weight": w, f"{prefix}.bias": np.zeros(c_out)}


def _conv_model(kind, width, kernel, depth, convs_per_block, dilated, inputs, causal, residual,
                weight_norm, gain, seed, name):
    """Blocks of ``convs_per_block`` ReLU convolutions, one dilation per block, optional skips.

    ``depth`` is ``(argument name, value)``: the number of blocks, checked and named as the
    public constructor calls it; block ``i`` has dilation ``2^i`` when ``dilated``.
    """
    width = check_positive_int("width", width)
    kernel = check_positive_int("kernel", kernel, minimum=2)
    depth_name, blocks = depth[0], check_positive_int(*depth)
    inputs = _check_inputs_arg(inputs, width)
    gain = check_finite_float("gain", gain, minimum=0.0)
    dilations = [2**i if dilated else 1 for i in range(blocks)]
    config = {"width": width, "kernel": kernel, depth_name: blocks, "inputs": inputs, "causal": causal,
              **({} if convs_per_block > 1 else {"residual": residual}), "weight_norm": weight_norm,
              "gain": gain, "seed": int(seed)}
    name = name or f"{kind} (k={kernel}, L={blocks})"
    rng = np.random.default_rng(check_seed(seed))
    params: dict[str, np.ndarray] = {}
    for b, _ in enumerate(dilations):
        for c in range(convs_per_block):
            c_in = inputs if (b == 0 and c == 0) else width
            params.update(_conv_params(rng, f"b{b}.conv{c}", kernel, c_in, width, gain, weight_norm))
        if residual and b == 0 and inputs != width:  # Bai et al.'s 1x1 "downsample"
            params["b0.downsample"] = _normal(rng, (inputs, width), 1.0 / np.sqrt(inputs))

    def forward(p, xs):
        z = anp.transpose(xs, (1, 0, 2))
        for b, d in enumerate(dilations):
            h = z
            for c in range(convs_per_block):
                h = anp.maximum(_conv(h, _conv_weight(p, f"b{b}.conv{c}", weight_norm),
                                      p[f"b{b}.conv{c}.bias"], tap_offsets(kernel, d, causal)), 0.0)
            if residual:
                skip = z @ p["b0.downsample"] if f"b{b}.downsample" in p else z
                h = anp.maximum(h + skip, 0.0) if convs_per_block > 1 else h + skip
            z = h
        return _to_time_major(z)

    def graph(n):
        g = DependencyGraph()
        prev = g.add_layer("input", n)
        pos = np.arange(n)
        for b, d in enumerate(dilations):
            block_in, offsets = prev, tap_offsets(kernel, d, causal)
            # An identity skip costs 0 hops; Bai et al.'s 1x1 downsample skip is learned: 1 hop.
            skip = 1 if f"b{b}.downsample" in params else 0
            for c in range(convs_per_block):
                c_in = inputs if (b == 0 and c == 0) else width
                cur = g.add_layer(f"block {b} conv {c} (dilation {d})" if convs_per_block > 1
                                  else f"conv {b} (dilation {d})", n)
                # With one convolution per block the skip joins the same two nodes as tap 0:
                # one edge, with the smaller weight.
                joined = residual and convs_per_block == 1
                for off in offsets:
                    src = pos + off
                    ok = (src >= 0) & (src < n)
                    weight = min(1, skip) if (joined and off == 0) else 1
                    g.connect(prev, src[ok], cur, pos[ok], weight, flops_per_edge=2 * c_in * width)
                prev = cur
            if residual and convs_per_block > 1:
                g.connect(block_in, pos, prev, pos, skip, flops_per_edge=2 * inputs * width * skip)
        return g

    return SequenceModel(kind, params, forward, graph, input_size=inputs, width=width, config=config,
                         name=name)


def tcn(width: int, kernel: int, levels: int, *, inputs: int | None = None, causal: bool = True,
        weight_norm: bool = False, gain: float = 1.0, seed: int = 0,
        name: str | None = None) -> SequenceModel:
    """Temporal convolution network (Bai, Kolter, Koltun 2018).

    ``levels`` residual blocks; block ``i`` is two dilated causal convolutions (dilation
    ``2^i``, kernel ``kernel``, ReLU) plus a skip connection (a 1x1 convolution when the
    input width differs), ``relu(F(z) + z)``. Receptive field ``1 + 2 (k - 1)(2^L - 1)``.
    ``weight_norm=True`` parametrises every convolution as ``g v / ||v||``.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.path_lengths(gf.tcn(8, kernel=3, levels=4), 100).receptive_field
    61
    """
    return _conv_model("tcn", width, kernel, ("levels", levels), 2, True, inputs, causal, True,
                       weight_norm, gain, seed, name)


def conv_stack(width: int, kernel: int, layers: int, *, inputs: int | None = None, causal: bool = True,
               residual: bool = False, weight_norm: bool = False, gain: float = 1.0, seed: int = 0,
               name: str | None = None) -> SequenceModel:
    """A plain stack of undilated ReLU convolutions: ``layers`` of them reach ``layers (k - 1)`` back.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.path_lengths(gf.conv_stack(8, kernel=3, layers=5), 11).max_path
    5
    """
    return _conv_model("conv-stack", width, kernel, ("layers", layers), 1, False, inputs, causal,
                       residual, weight_norm, gain, seed, name)


# ---------------------------------------------------------------- recurrent


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
    from ._engine import check_cell

    cell = check_cell(cell)
    layers = check_positive_int("layers", layers)
    if layers > 1:
        cfg = dict(cell.config)
        if find_cell_kind(cell.kind) is None or "seed" not in cfg or cfg.get("layers", 1) != 1:
            raise ValueError(f"layers={layers} stacks a one-layer built-in cell made by gf.rnn, gf.lstm "
                             f"or gf.gru; got {cell.name!r} ({cell.kind}, config {cfg}). For a trained "
                             "stack, load it with its _l1, _l2, ... weights and pass layers=1")
        hidden, inputs = cfg.pop("hidden"), cfg.pop("inputs")
        cfg.pop("layers")
        build = find_cell_kind(cell.kind).make
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

    config = dict(cell=cell.name, kind=cell.kind, layers=depth, state=cell.state_size,
                  inputs=cell.input_size)
    return SequenceModel("recurrent", cell.params, forward, graph, input_size=cell.input_size,
                         width=len(cols), config=config, name=name or f"recurrent {cell.name}", cell=cell)
