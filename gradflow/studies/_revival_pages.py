"""The recurrent_revival study's figures and the sentences their captions quote."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gradflow.report import PALETTE, palette
from gradflow.studies._revival_measure import ARCHITECTURES, KEEP, LOOP, fastest_forward, speedups


def interval_text(est: float, lo: float, hi: float, fmt: str = "+.3f") -> str:
    return f"{est:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def memory_figure(profiles: pd.DataFrame, summary: pd.DataFrame, lags: list[int], cfg: Any, threshold: float):
    """Left: median kept gradient against lag per architecture (nonlinear and linear recurrences in
    separate axes, at most 8 series each); right: the share keeping it at each decision lag."""
    groups = [
        ("nonlinear RNNs", [a for a in ARCHITECTURES if not ARCHITECTURES[a].linear]),
        ("linear recurrences", [a for a in ARCHITECTURES if ARCHITECTURES[a].linear]),
    ]
    groups = [(title, archs) for title, archs in groups if archs]
    colours = dict(zip(ARCHITECTURES, PALETTE * 2, strict=False))
    fig, axes = plt.subplots(len(groups) + 1, 1, figsize=(8.27, 3.2 * (len(groups) + 1) + 1.5), squeeze=False)
    fig.subplots_adjust(left=0.2, right=0.72, top=0.96, bottom=0.12, hspace=0.5)
    for ax, (title, archs) in zip(axes[:-1, 0], groups, strict=True):
        for arch in archs:
            g = profiles[profiles.architecture == arch].groupby("lag").log_relative_norm
            med = g.median()
            ax.plot(med.index, med.to_numpy(), color=colours[arch], label=arch, linewidth=1.5)
            ax.fill_between(
                med.index, g.quantile(0.025), g.quantile(0.975), color=colours[arch], alpha=0.15, linewidth=0
            )
        ax.axhline(math.log(KEEP), color="0.3", linestyle="--", linewidth=0.8)
        ax.set(
            xscale="log",
            xlabel="lag k (steps back from the final state)",
            ylabel="ln ||g_k|| - ln ||g_1||",
            title=f"{cap(title)}: median over networks, band 95%",
        )
        ax.set_ylim(max(ax.get_ylim()[0], 3 * math.log(KEEP) - 5), 3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    ax = axes[-1, 0]
    width = 0.8 / len(lags)
    archs = list(summary.architecture)
    for k, lag in enumerate(lags):
        y = np.arange(len(archs)) + (k - (len(lags) - 1) / 2) * width
        est = summary[f"share_{lag}"].to_numpy()
        err = [est - summary[f"share_{lag}_low"], summary[f"share_{lag}_high"] - est]
        ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, color=PALETTE[k], label=f"lag {lag:,}")
    ax.axvline(threshold, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_yticks(np.arange(len(archs)), archs)
    ax.invert_yaxis()
    ax.set(
        xlim=(-0.05, 1.05),
        xlabel=f"share of networks keeping >= {KEEP:g} of the lag-1 gradient",
        title="Networks keeping their gradient (Wilson 95%); dashed: the threshold",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    return fig


def depth_curves(depth: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The distinct depth curves, each labelled with every (architecture, method) that has it: a loop
    over time gives the same curve whatever the cell, so one line stands for all of them."""
    curves: dict[tuple, list[str]] = {}
    frames: dict[tuple, pd.DataFrame] = {}
    for (arch, method), g in depth.groupby(["architecture", "method"], sort=False):
        key = tuple(g.sort_values("n").sequential_depth)
        curves.setdefault(key, []).append(arch if method == "attention" else f"{method}: {arch}")
        frames.setdefault(key, g.sort_values("n"))
    merged = {}
    for key, names in curves.items():  # "loop: A, B, C" rather than "loop: A, loop: B, loop: C"
        methods = {name.split(": ", 1)[0] for name in names}
        label = (
            f"{methods.pop()}: " + ", ".join(n.split(": ", 1)[1] for n in names)
            if len(methods) == 1 and ": " in names[0]
            else ", ".join(names)
        )
        merged[label] = frames[key]
    return merged


def parallel_figure(depth: pd.DataFrame, times: pd.DataFrame, cfg: Any, host: dict):
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(8.27, 11.0))
    fig.subplots_adjust(left=0.12, right=0.62, top=0.96, bottom=0.14, hspace=0.45)
    curves = depth_curves(depth)
    colours = palette(list(curves))
    for k, (label, g) in enumerate(curves.items()):
        ax1.plot(
            g.n,
            g.sequential_depth,
            color=colours[label],
            marker="os^Dv<>P"[k % 8],
            label=textwrap.fill(label, 40),
        )
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length n",
        ylabel="sequential depth",
        title="Forward pass: operations that must run one after another",
    )
    ax1.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    colours = palette(list(dict.fromkeys(times.architecture)))
    for arch, g in times[times.method == LOOP].groupby("architecture", sort=False):
        ax2.plot(g.n, g.cpu_seconds, "o-", color=colours[arch], label=arch)
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length n",
        ylabel=f"CPU seconds (best of {cfg.repeats})",
        title=f"The loop (gradflow.unroll): CPU time, batch {cfg.batch}, N = {cfg.hidden}, one thread",
    )
    ax2.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    for arch, g in speedups(times).groupby("architecture", sort=False):
        ax3.plot(g.n, g.speedup, "s--", color=colours[arch], label=arch)
    ax3.axhline(1.0, color="0.3", linewidth=0.8)
    ax3.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length n",
        ylabel="loop CPU time / scan CPU time",
        title="The scan (gradflow.scan) against the loop, same states",
    )
    ax3.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(list(cfg.lengths), [str(n) for n in cfg.lengths])
        ax.minorticks_off()
    return fig


def shares_text(r, lags: list[int], digits: str = ".0%") -> str:
    return ", ".join(
        f"{getattr(r, f'share_{lag}'):{digits}} [{getattr(r, f'share_{lag}_low'):{digits}}, "
        f"{getattr(r, f'share_{lag}_high'):{digits}}]"
        for lag in lags
    )


def parallel_facts(depth: pd.DataFrame, times: pd.DataFrame, cfg: Any) -> str:
    n = max(cfg.lengths)
    top = fastest_forward(depth[depth.n == n])
    speed = speedups(times)
    fast = speed[speed.n == n]
    return (
        "; ".join(
            f"{r.architecture}: depth {r.sequential_depth} at n = {n} ({r.method})" for r in top.itertuples()
        )
        + ". The scan took "
        + ", ".join(
            f"{r.speedup:.1f}x less CPU time than the loop for {r.architecture}" for r in fast.itertuples()
        )
        + f" at n = {n}"
    )


def sensitivity_figure(frame: pd.DataFrame, exponents: pd.DataFrame, threshold: float):
    """Mean squared sensitivity against 1 - |lambda|^2 per parametrisation (log-log), its closed form
    dashed, and the fitted exponents with their intervals beside the threshold."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.0), gridspec_kw={"height_ratios": [3, 1.4]})
    fig.subplots_adjust(left=0.18, right=0.7, top=0.95, bottom=0.14, hspace=0.4)
    names = list(dict.fromkeys(frame.parametrisation))
    colours = palette(names)
    for name in names:
        g = frame[frame.parametrisation == name].groupby("one_minus_r")
        mean, closed = g.squared_sensitivity.mean(), g.closed_form.first()
        lo, hi = g.squared_sensitivity.quantile(0.1), g.squared_sensitivity.quantile(0.9)
        ax1.plot(mean.index, mean.to_numpy(), "o-", color=colours[name], label=textwrap.fill(name, 24))
        ax1.fill_between(mean.index, lo, hi, color=colours[name], alpha=0.15, linewidth=0)
        ax1.plot(closed.index, closed.to_numpy(), "--", color=colours[name])
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="1 - |lambda|^2  (memory length ~ 1 / this)",
        ylabel="E (dL/dtheta)^2",
        title="Mean over seeds (band 10-90%), closed form dashed",
    )
    ax1.invert_xaxis()
    ax1.minorticks_off()
    ax1.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    y = np.arange(len(exponents))
    err = [exponents.exponent - exponents.low, exponents.high - exponents.exponent]
    ax2.errorbar(
        exponents.exponent, y, xerr=err, fmt="o", capsize=3, color="k", label="measured (95% bootstrap)"
    )
    ax2.scatter(
        exponents.closed_form_exponent,
        y,
        marker="x",
        color=PALETTE[1],
        zorder=3,
        label="closed form at this T",
    )
    ax2.axvline(threshold, color="0.3", linestyle="--", linewidth=0.8)
    ax2.set_yticks(y, [textwrap.fill(name, 16) for name in exponents.parametrisation])
    ax2.invert_yaxis()
    ax2.set(xlabel="exponent p of (1 - |lambda|^2)^p; dashed: the threshold", title="Fitted exponents")
    ax2.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    return fig
