"""The cost study's measurements of the machine and of arithmetic intensity: best-of timing, peak
flops and memory bandwidth of one core, flops per byte of a recurrent step, an attention layer and a
convolution, and log-log growth with sequence length."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

BYTES = 8  # float64
IDLE_LOAD = 0.25  # load average per core below which the machine counts as idle


def best_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def machine_balance(repeats: int) -> dict:
    """Peak float64 flop rate of one core (a 1024^3 matmul, one BLAS thread) and memory bandwidth
    (a 128 MB copy), with the load average they were measured under.

    On a busy machine (load per core >= `IDLE_LOAD`) other processes share the cores and the
    memory bus: the peak is then a lower bound, and bandwidth and balance are not measured (NaN).
    """
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    with threadpool_limits(1):
        a = np.random.default_rng(0).standard_normal((1024, 1024))
        t = best_time(lambda: a @ a, repeats)
        flops = 2 * 1024**3 / t
        idle = load / cores < IDLE_LOAD
        bandwidth = np.nan
        if idle:
            big = np.ones(2**25)  # 256 MB: far larger than any cache
            out = np.empty_like(big)
            t = best_time(lambda: np.copyto(out, big), repeats)
            bandwidth = 2 * big.nbytes / t  # read + write
    return dict(
        peak_gflops=flops / 1e9,
        bandwidth_gbs=bandwidth / 1e9,
        balance=flops / bandwidth,
        load=load,
        cores=cores,
        idle=idle,
    )


def intensity(width: int, n: int, batch: int) -> pd.DataFrame:
    """Flops per byte of one recurrent step and one attention layer (weights streamed once per use).

    A recurrent step multiplies the ``(batch, W)`` state by the ``W x W`` matrix: it reads
    the matrix for every step, because the next step needs this step's result. An
    attention layer multiplies ``(n batch, W)`` activations by each weight matrix once
    for all positions and forms the ``n x n`` scores.
    """
    w, b = width, batch
    rows = []
    flops = 2 * b * w * w
    moved = BYTES * (w * w + 2 * b * w)
    rows.append(dict(operation="recurrent step (W_hh h)", flops=flops, bytes=moved))
    flops = 4 * 2 * n * b * w * w + 2 * 2 * b * n * n * w
    moved = BYTES * (4 * w * w + 5 * n * b * w + 2 * b * n * n)
    rows.append(dict(operation=f"attention layer, n = {n}", flops=flops, bytes=moved))
    flops = 3 * 2 * n * b * w * w
    moved = BYTES * (3 * w * w + 2 * n * b * w)
    rows.append(dict(operation=f"convolution, k = 3, n = {n}", flops=flops, bytes=moved))
    frame = pd.DataFrame(rows)
    frame["flops_per_byte"] = frame.flops / frame.bytes
    return frame


def growth(frame: pd.DataFrame, column: str) -> pd.Series:
    """Log-log slope of ``column`` against n, per architecture (on the larger half of n)."""
    out = {}
    for name, g in frame.groupby("architecture", sort=False):
        g = g[g.n >= g.n.median()] if len(g) >= 4 else g
        out[name] = float(np.polyfit(np.log(g.n), np.log(g[column]), 1)[0])
    return pd.Series(out)
