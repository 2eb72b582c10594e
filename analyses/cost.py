"""Are RNNs slow, sequential and memory-bandwidth bound? Depth, wall time and arithmetic intensity.

Claims (seeds 000 and 002): recurrent nets cannot be parallelised over time, are slow,
and are memory-bandwidth bound ("as much memory bandwidth as operations"), while
attention and convolutions re-use each byte many times. Measured here on this machine:
the sequential depth from each model's dependency graph; forward+backward wall time
against n for a tanh RNN, self-attention and a TCN written in numpy/autograd; and the
arithmetic intensity (flops per byte moved) of one recurrent step and of one attention
layer against the machine balance (peak flop rate / memory bandwidth) measured here.

    python -m analyses.cost [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from autograd import grad

import gradflow as gf
from analyses._cli import study_main
from gradflow.report import figure_page, paper_theme, table_page, write_csv, write_pdf

STUDY = "cost"
BYTES = 8  # float64


@dataclass(frozen=True)
class Config:
    hidden: int = 64  # model width
    steps: int = 512  # the largest n timed
    batch: int = 4
    repeats: int = 3
    seed: int = 0


QUICK = Config()
FULL = Config(hidden=128, steps=4096, batch=8, repeats=5)


def lengths(cfg: Config) -> list[int]:
    top = max(16, cfg.steps)
    return sorted({min(top, 2**k) for k in range(4, int(math.log2(top)) + 1)} | {top})


def models(cfg: Config, n: int, seed: int):
    w = cfg.hidden
    levels = max(1, math.ceil(math.log2((n - 1) / 4 + 1)))
    return [("RNN tanh", gf.recurrent(gf.rnn(w, w, seed=seed))),
            ("self-attention", gf.self_attention(w, heads=4, inputs=w, seed=seed)),
            ("TCN (k = 3)", gf.tcn(w, 3, levels, inputs=w, seed=seed))]


def best_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def machine_balance(repeats: int) -> dict:
    """Peak float64 flop rate (a large matmul) and memory bandwidth (a large copy) here."""
    a = np.random.default_rng(0).standard_normal((1024, 1024))
    t = best_time(lambda: a @ a, repeats)
    flops = 2 * 1024**3 / t
    big = np.ones(2**24)  # 128 MB: far larger than any cache
    out = np.empty_like(big)
    t = best_time(lambda: np.copyto(out, big), repeats)
    bandwidth = 2 * big.nbytes / t  # read + write
    return dict(peak_gflops=flops / 1e9, bandwidth_gbs=bandwidth / 1e9, balance=flops / bandwidth)


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


def measure(cfg: Config) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(cfg.seed)
    for n in lengths(cfg):
        xs = rng.standard_normal((n, cfg.batch, cfg.hidden))
        for name, model in models(cfg, n, cfg.seed):
            u = rng.standard_normal(model.width)

            def loss(params, model=model, u=u, xs=xs):
                return (model.apply(params, xs)[-1] @ u).sum()

            g = grad(loss)
            fwd = best_time(lambda model=model, xs=xs: model.apply(model.params, xs), cfg.repeats)
            both = best_time(lambda g=g, model=model: g(model.params), cfg.repeats)
            p = gf.path_lengths(model, n)
            rows.append(dict(architecture=name, n=n, forward_s=fwd, forward_backward_s=both,
                             sequential_depth=p.sequential_depth, flops=float(p.operations.flops.sum())))
    frame = pd.DataFrame(rows)
    frame["gflops_achieved"] = 3 * frame.flops / frame.forward_backward_s / 1e9  # backward ~ 2x forward
    return frame


def growth(frame: pd.DataFrame, column: str) -> pd.Series:
    """Log-log slope of ``column`` against n, per architecture (on the larger half of n)."""
    out = {}
    for name, g in frame.groupby("architecture", sort=False):
        g = g[g.n >= g.n.median()] if len(g) >= 4 else g
        out[name] = float(np.polyfit(np.log(g.n), np.log(g[column]), 1)[0])
    return pd.Series(out)


def verdict(times: pd.DataFrame, inten: pd.DataFrame, machine: dict) -> tuple[str, str, dict]:
    top = times[times.n == times.n.max()].set_index("architecture")
    depth = growth(times, "sequential_depth")
    slope = growth(times, "forward_backward_s")
    rnn_ai = inten.flops_per_byte.iloc[0]
    facts = dict(n=int(times.n.max()), rnn_depth=int(top.loc["RNN tanh", "sequential_depth"]),
                 attention_depth=int(top.loc["self-attention", "sequential_depth"]),
                 rnn_time=top.loc["RNN tanh", "forward_backward_s"],
                 attention_time=top.loc["self-attention", "forward_backward_s"],
                 tcn_time=top.loc["TCN (k = 3)", "forward_backward_s"],
                 rnn_slope=slope["RNN tanh"], attention_slope=slope["self-attention"],
                 rnn_intensity=rnn_ai, attention_intensity=inten.flops_per_byte.iloc[1],
                 balance=machine["balance"], rnn_gflops=top.loc["RNN tanh", "gflops_achieved"],
                 attention_gflops=top.loc["self-attention", "gflops_achieved"],
                 depth_slopes=depth.to_dict())
    sequential = depth["RNN tanh"] > 0.9 and depth["self-attention"] < 0.1
    slower = facts["rnn_time"] > facts["attention_time"]
    bandwidth_bound = rnn_ai < machine["balance"]
    held = sum((sequential, slower, bandwidth_bound))
    word = "holds" if held == 3 else "does not hold" if held == 0 else "holds in part"
    sentence = (
        f"{word}. Sequential depth grows as n^{depth['RNN tanh']:.2f} for the RNN "
        f"({facts['rnn_depth']} at n = {facts['n']}) and n^{depth['self-attention']:.2f} for "
        f"self-attention ({facts['attention_depth']}). Forward+backward at n = {facts['n']}: RNN "
        f"{facts['rnn_time'] * 1e3:.0f} ms, self-attention {facts['attention_time'] * 1e3:.0f} ms, TCN "
        f"{facts['tcn_time'] * 1e3:.0f} ms; the RNN achieves {facts['rnn_gflops']:.2f} GFLOP/s against "
        f"attention's {facts['attention_gflops']:.2f}. A recurrent step does {rnn_ai:.2f} flops per byte, "
        f"{'below' if bandwidth_bound else 'above'} this machine's balance of {machine['balance']:.1f} "
        f"({machine['peak_gflops']:.1f} GFLOP/s / {machine['bandwidth_gbs']:.1f} GB/s).")
    return word, sentence, facts


def run(cfg: Config, out: str) -> dict:
    machine = machine_balance(cfg.repeats)
    times = measure(cfg)
    inten = intensity(cfg.hidden, int(times.n.max()), cfg.batch)
    word, sentence, facts = verdict(times, inten, machine)
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_times.csv"), times)
    write_csv(os.path.join(out, f"{STUDY}_intensity.csv"), inten)
    write_csv(os.path.join(out, f"{STUDY}_machine.csv"), pd.DataFrame([machine]))
    table = pd.DataFrame({
        "operation": inten.operation,
        "flops": inten.flops.map(lambda v: f"{v:.3g}"),
        "bytes moved": inten.bytes.map(lambda v: f"{v:.3g}"),
        "flops/byte": inten.flops_per_byte.map(lambda v: f"{v:.2f}"),
        "vs balance": inten.flops_per_byte.map(
            lambda v: "memory-bound" if v < machine["balance"] else "compute-bound"),
    })
    with paper_theme():
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.5))
        fig.subplots_adjust(left=0.12, right=0.96, top=0.95, bottom=0.14, hspace=0.35)
        sns.lineplot(data=times, x="n", y="forward_backward_s", hue="architecture", marker="o", ax=ax1)
        ax1.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="seconds",
                title=f"Forward + backward wall time (batch {cfg.batch}, width {cfg.hidden}, best of "
                      f"{cfg.repeats})")
        sns.lineplot(data=times, x="n", y="sequential_depth", hue="architecture", marker="o", ax=ax2,
                     legend=False)
        ax2.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="sequential depth",
                title="Operations that must run one after another (from the dependency graph)")
        for ax in (ax1, ax2):
            ax.set_xticks(sorted(times.n.unique()), [str(n) for n in sorted(times.n.unique())])
            ax.minorticks_off()
        caption = (f"Wall time grows as n^{facts['rnn_slope']:.2f} for the RNN and "
                   f"n^{facts['attention_slope']:.2f} for self-attention (larger half of n). At n = "
                   f"{facts['n']}: RNN {facts['rnn_time'] * 1e3:.0f} ms, attention "
                   f"{facts['attention_time'] * 1e3:.0f} ms.")
        pages = [table_page(
            "Are RNNs slow, sequential and memory-bandwidth bound?",
            [("Claim", "Recurrent nets cannot be parallelised over time, are slow, and need as much memory "
                       "bandwidth as operations; attention and convolutions re-use each byte "
                       "(seeds 000, 002)."),
             ("Verdict", sentence),
             ("Configuration", f"width {cfg.hidden}, batch {cfg.batch}, n up to {facts['n']}, best of "
                               f"{cfg.repeats}; float64 numpy/autograd on this machine; gradflow "
                               f"{gf.__version__}.")],
            table, "Arithmetic intensity (weights streamed once per use)",
            col_widths=(0.34, 0.12, 0.14, 0.12, 0.18)),
            figure_page(fig, caption),
            table_page("Methods", [
                ("Timing", "time.perf_counter, best of the repeats, of model.apply (forward) and of "
                           "autograd.grad of u . y_{n-1} with respect to every weight (forward + backward). "
                           "The RNN runs as a Python loop over time, as any recurrent net must; its time "
                           "includes autograd's per-operation overhead."),
                ("Depth", "gradflow.path_lengths(model, n).sequential_depth: Kahn rounds over the "
                          "unrolled dependency graph."),
                ("Intensity", "flops / bytes for one recurrent step (the W x W matrix is read for every "
                              "step), one attention layer over n positions and one convolution; machine "
                              "balance = peak float64 GFLOP/s of a 1024^3 matmul / GB/s of a 128 MB copy "
                              "(read + write), measured in this run."),
            ])]
        pdf = os.path.join(out, f"{STUDY}.pdf")
        write_pdf(pdf, pages, study=STUDY, config=cfg,
                  title="gradflow: are RNNs slow, sequential and bandwidth bound?",
                  subject=f"Verdict: {word}", keywords=["cost", "sequential depth", "arithmetic intensity"])
    return {"verdict": word, "sentence": sentence, "times": times, "intensity": inten,
            "machine": machine, "facts": facts, "pdf": pdf}


def main(argv=None) -> dict:
    return study_main(argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run,
                      overrides=("hidden", "steps"))


if __name__ == "__main__":
    main()
