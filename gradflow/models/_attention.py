"""Attention models: full, restricted (windowed) and hierarchical self-attention."""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np

from ..core._validation import check_choice, check_finite_float, check_positive_int, check_seed
from ._graph import DependencyGraph
from ._pieces import POSITIONAL, check_inputs_arg, embed, layer_norm, normal_weights, softmax, to_time_major
from ._sequence import SequenceModel


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
    p = {"input_projection": normal_weights(rng, (inputs, width), 1.0 / np.sqrt(inputs))}
    for l in range(layers):
        for name in "qkvo":  # gain sets the sharpness of attention: it scales queries and keys
            p[f"l{l}.w{name}"] = normal_weights(
                rng, (width, width), (gain if name in "qk" else 1.0) / np.sqrt(width)
            )
        if feed_forward:
            p[f"l{l}.ff_w1"] = normal_weights(rng, (width, 4 * width), np.sqrt(2.0 / width))
            p[f"l{l}.ff_b1"] = np.zeros(4 * width)
            p[f"l{l}.ff_w2"] = normal_weights(rng, (4 * width, width), 1.0 / np.sqrt(4 * width))
            p[f"l{l}.ff_b2"] = np.zeros(width)
        if layer_norm_on:
            for ln in ("ln1", "ln2") if feed_forward else ("ln1",):
                p[f"l{l}.{ln}_gain"], p[f"l{l}.{ln}_bias"] = np.ones(width), np.zeros(width)
    if layer_norm_on:
        p["final_gain"], p["final_bias"] = np.ones(width), np.zeros(width)
    return p


def _attention_model(
    kind,
    width,
    heads,
    layers,
    window,
    inputs,
    causal,
    residual,
    layer_norm_on,
    feed_forward,
    positional,
    gain,
    seed,
    name,
):
    width = check_positive_int("width", width)
    heads = check_positive_int("heads", heads)
    layers = check_positive_int("layers", layers)
    if width % heads:
        raise ValueError(f"width must be a multiple of heads; got width={width}, heads={heads}")
    inputs = check_inputs_arg(inputs, width)
    positional = check_choice("positional", positional, POSITIONAL)
    gain = check_finite_float("gain", gain, minimum=0.0)
    rng = np.random.default_rng(check_seed(seed))
    params = _attention_params(rng, layers, width, inputs, feed_forward, layer_norm_on, gain)

    def forward(p, xs):
        z = embed(p, xs, positional)
        mask = attention_mask(xs.shape[0], window, causal)
        for l in range(layers):
            # Pre-norm blocks: the residual stream is an identity path (GPT-2 style).
            a = layer_norm(z, p[f"l{l}.ln1_gain"], p[f"l{l}.ln1_bias"]) if layer_norm_on else z
            a = _multi_head(a, p, f"l{l}", mask, heads)
            z = z + a if residual else a
            if feed_forward:
                f = layer_norm(z, p[f"l{l}.ln2_gain"], p[f"l{l}.ln2_bias"]) if layer_norm_on else z
                f = (
                    anp.maximum(f @ p[f"l{l}.ff_w1"] + p[f"l{l}.ff_b1"], 0.0) @ p[f"l{l}.ff_w2"]
                    + p[f"l{l}.ff_b2"]
                )
                z = z + f if residual else f
        if layer_norm_on:
            z = layer_norm(z, p["final_gain"], p["final_bias"])
        return to_time_major(z)

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

    config = dict(
        width=width,
        heads=heads,
        layers=layers,
        inputs=inputs,
        causal=causal,
        residual=residual,
        layer_norm=layer_norm_on,
        feed_forward=feed_forward,
        positional=positional,
        gain=gain,
        seed=int(seed),
    )
    if window is not None:
        config["window"] = window
    return SequenceModel(
        kind, params, forward, graph, input_size=inputs, width=width, config=config, name=name
    )


def self_attention(
    width: int,
    heads: int = 1,
    layers: int = 1,
    *,
    inputs: int | None = None,
    causal: bool = True,
    residual: bool = True,
    layer_norm: bool = True,
    feed_forward: bool = True,
    positional: str = "sinusoidal",
    gain: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> SequenceModel:
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
    return _attention_model(
        "self-attention",
        width,
        heads,
        layers,
        None,
        inputs,
        causal,
        residual,
        layer_norm,
        feed_forward,
        positional,
        gain,
        seed,
        name or "self-attention",
    )


def restricted_attention(
    width: int,
    window: int,
    heads: int = 1,
    layers: int = 1,
    *,
    inputs: int | None = None,
    causal: bool = True,
    residual: bool = True,
    layer_norm: bool = True,
    feed_forward: bool = True,
    positional: str = "sinusoidal",
    gain: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> SequenceModel:
    """Self-attention restricted to a window: position ``i`` reads ``j`` with ``|i - j| <= window``.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.path_lengths(gf.restricted_attention(8, window=4, layers=3), 13).max_path
    3
    """
    window = check_positive_int("window", window)
    return _attention_model(
        "restricted-attention",
        width,
        heads,
        layers,
        window,
        inputs,
        causal,
        residual,
        layer_norm,
        feed_forward,
        positional,
        gain,
        seed,
        name or f"restricted-attention (r={window})",
    )


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


def hierarchical_attention(
    width: int,
    chunk: int,
    *,
    inputs: int | None = None,
    causal: bool = True,
    positional: str = "sinusoidal",
    gain: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> SequenceModel:
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
    inputs = check_inputs_arg(inputs, width)
    positional = check_choice("positional", positional, POSITIONAL)
    gain = check_finite_float("gain", gain, minimum=0.0)
    rng = np.random.default_rng(check_seed(seed))
    params = {"input_projection": normal_weights(rng, (inputs, width), 1.0 / np.sqrt(inputs))}
    for part in ("pool", "out"):
        for w in "qkvo":
            params[f"{part}.w{w}"] = normal_weights(
                rng, (width, width), (gain if w in "qk" else 1.0) / np.sqrt(width)
            )

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
        z = embed(p, xs, positional)
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
        return to_time_major(y)

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

    config = dict(
        width=width,
        chunk=chunk,
        inputs=inputs,
        causal=causal,
        positional=positional,
        gain=gain,
        seed=int(seed),
    )
    return SequenceModel(
        "hierarchical-attention",
        params,
        forward,
        graph,
        input_size=inputs,
        width=width,
        config=config,
        name=name or f"hierarchical-attention (c={chunk})",
    )
