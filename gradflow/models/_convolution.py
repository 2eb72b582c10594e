"""Convolutional sequence models: temporal convolutional networks and plain convolution stacks."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from ..core import deprecated_spellings
from ..core._validation import check_finite_float, check_positive_int, check_seed
from ._graph import DependencyGraph
from ._pieces import check_inputs_arg, normal_weights, to_time_major
from ._sequence import SequenceModel


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
    w = normal_weights(rng, (kernel, c_in, c_out), gain * np.sqrt(2.0 / (kernel * c_in)))
    if weight_norm:
        return {
            f"{prefix}.weight_v": w,
            f"{prefix}.weight_g": np.sqrt(np.sum(w**2, axis=(0, 1))),
            f"{prefix}.bias": np.zeros(c_out),
        }
    return {f"{prefix}.weight": w, f"{prefix}.bias": np.zeros(c_out)}


def _conv_model(
    kind,
    width,
    kernel,
    depth,
    convs_per_block,
    dilated,
    inputs,
    causal,
    residual,
    weight_norm,
    gain,
    seed,
    name,
):
    """Blocks of ``convs_per_block`` ReLU convolutions, one dilation per block, optional skips.

    ``depth`` is ``(argument name, value)``: the number of blocks, checked and named as the
    public constructor calls it; block ``i`` has dilation ``2^i`` when ``dilated``.
    """
    width = check_positive_int("width", width)
    kernel = check_positive_int("kernel", kernel, minimum=2)
    depth_name, blocks = depth[0], check_positive_int(*depth)
    inputs = check_inputs_arg(inputs, width)
    gain = check_finite_float("gain", gain, minimum=0.0)
    dilations = [2**i if dilated else 1 for i in range(blocks)]
    config = {
        "width": width,
        "kernel": kernel,
        depth_name: blocks,
        "inputs": inputs,
        "causal": causal,
        **({} if convs_per_block > 1 else {"residual": residual}),
        "weight_norm": weight_norm,
        "gain": gain,
        "seed": int(seed),
    }
    name = name or f"{kind} (k={kernel}, L={blocks})"
    rng = np.random.default_rng(check_seed(seed))
    params: dict[str, np.ndarray] = {}
    for b, _ in enumerate(dilations):
        for c in range(convs_per_block):
            c_in = inputs if (b == 0 and c == 0) else width
            params.update(_conv_params(rng, f"b{b}.conv{c}", kernel, c_in, width, gain, weight_norm))
        if residual and b == 0 and inputs != width:  # Bai et al.'s 1x1 "downsample"
            params["b0.downsample"] = normal_weights(rng, (inputs, width), 1.0 / np.sqrt(inputs))

    def forward(p, xs):
        z = anp.transpose(xs, (1, 0, 2))
        for b, d in enumerate(dilations):
            h = z
            for c in range(convs_per_block):
                h = anp.maximum(
                    _conv(
                        h,
                        _conv_weight(p, f"b{b}.conv{c}", weight_norm),
                        p[f"b{b}.conv{c}.bias"],
                        tap_offsets(kernel, d, causal),
                    ),
                    0.0,
                )
            if residual:
                skip = z @ p["b0.downsample"] if f"b{b}.downsample" in p else z
                h = anp.maximum(h + skip, 0.0) if convs_per_block > 1 else h + skip
            z = h
        return to_time_major(z)

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
                cur = g.add_layer(
                    f"block {b} conv {c} (dilation {d})"
                    if convs_per_block > 1
                    else f"conv {b} (dilation {d})",
                    n,
                )
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

    return SequenceModel(
        kind, params, forward, graph, input_size=inputs, width=width, config=config, name=name
    )


@deprecated_spellings(renamed={"levels": "layers"})
def tcn(
    width: int,
    kernel: int,
    layers: int,
    *,
    inputs: int | None = None,
    causal: bool = True,
    weight_norm: bool = False,
    gain: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> SequenceModel:
    """Temporal convolution network (Bai, Kolter, Koltun 2018).

    ``layers`` residual blocks (Bai et al.'s levels); block ``i`` is two dilated causal
    convolutions (dilation ``2^i``, kernel ``kernel``, ReLU) plus a skip connection (a 1x1
    convolution when the input width differs), ``relu(F(z) + z)``. Receptive field
    ``1 + 2 (k - 1)(2^L - 1)``.
    ``weight_norm=True`` parametrises every convolution as ``g v / ||v||``.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.path_lengths(gf.tcn(8, kernel=3, layers=4), 100).receptive_field
    61
    """
    return _conv_model(
        "tcn", width, kernel, ("layers", layers), 2, True, inputs, causal, True, weight_norm, gain, seed, name
    )


def conv_stack(
    width: int,
    kernel: int,
    layers: int,
    *,
    inputs: int | None = None,
    causal: bool = True,
    residual: bool = False,
    weight_norm: bool = False,
    gain: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> SequenceModel:
    """A plain stack of undilated ReLU convolutions: ``layers`` of them reach ``layers (k - 1)`` back.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.path_lengths(gf.conv_stack(8, kernel=3, layers=5), 11).max_path
    5
    """
    return _conv_model(
        "conv-stack",
        width,
        kernel,
        ("layers", layers),
        1,
        False,
        inputs,
        causal,
        residual,
        weight_norm,
        gain,
        seed,
        name,
    )
