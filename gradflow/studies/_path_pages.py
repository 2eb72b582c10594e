"""The path-lengths study's figure pages: max path and sequential depth against sequence length
per architecture, and the last output's sensitivity to each input against lag and against path
length; with the helpers that draw coinciding curves visibly and say in the caption which coincide."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gradflow.report import figure_page, palette


def coinciding(frame: pd.DataFrame, x: str, y: str, rtol: float = 1e-9) -> list[list[str]]:
    """Groups of architectures whose ``y`` against ``x`` curves are the same (to ``rtol``): drawn on
    top of each other, so the caption must say so."""
    curves = {a: g.groupby(x)[y].median() for a, g in frame.groupby("architecture", sort=False)}
    groups: list[list[str]] = []
    for a, c in curves.items():
        for group in groups:
            ref = curves[group[0]]
            if ref.index.equals(c.index) and np.allclose(ref.to_numpy(), c.to_numpy(), rtol=rtol, atol=0):
                group.append(a)
                break
        else:
            groups.append([a])
    return [g for g in groups if len(g) > 1]


def _same(groups: list[list[str]], what: str = "curves") -> str:
    if not groups:
        return f"No two {what} coincide."
    return f"Coinciding {what} (drawn with offset markers): " + "; ".join(" = ".join(g) for g in groups) + "."


def _styled_lines(ax, frame: pd.DataFrame, x: str, y: str, colours: dict, band: bool = False):
    """One line per architecture, each with its own colour, dash and marker, markers offset along
    the curve, so that curves that coincide stay visible."""
    dashes = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (8, 2))]
    markers = "os^Dv<>P"
    for k, (arch, g) in enumerate(frame.groupby("architecture", sort=False)):
        med = g.groupby(x)[y].median()
        if band:
            lo, hi = g.groupby(x)[y].min(), g.groupby(x)[y].max()
            ax.fill_between(med.index, lo, hi, color=colours[arch], alpha=0.15, linewidth=0)
        every = max(1, len(med) // 6)
        ax.plot(
            med.index,
            med.to_numpy(),
            color=colours[arch],
            linestyle=dashes[k % 8],
            marker=markers[k % 8],
            markersize=4,
            label=arch,
            markevery=(k * every // 8 % every, every) if every > 1 else None,
        )


def path_pages(graph, classes, profiles, summary, facts, cfg):
    pages = []
    archs = list(dict.fromkeys(graph.architecture))
    colours = palette(archs)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.5))
    fig.subplots_adjust(left=0.1, right=0.66, top=0.95, bottom=0.14, hspace=0.35)
    shifted = graph.assign(n_shown=graph.n * np.exp(0.04 * (graph.architecture.map(archs.index) - 3.5)))
    for ax, column, label, title in (
        (ax1, "max_path", "max path (hops)", "Longest shortest path from an input to the last output"),
        (ax2, "sequential_depth", "sequential depth", "Operations that must run one after another"),
    ):
        _styled_lines(ax, shifted.rename(columns={"n": "n_true", "n_shown": "n"}), "n", column, colours)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="sequence length n (markers offset by a few % per architecture)",
            ylabel=label,
            title=title,
        )
        ax.set_xticks(list(cfg.lengths), [str(n) for n in cfg.lengths])
        ax.minorticks_off()
    ax1.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    by = classes.set_index("architecture")
    part = "" if facts["paths_as_claimed"] else " only in part"
    caption = (
        f"Path classes fitted from the graphs as claimed{part}: "
        + "; ".join(
            f"{a}: path {by.loc[a, 'max_path']}, depth {by.loc[a, 'sequential_depth']}" for a in by.index
        )
        + ". "
        + _same(coinciding(graph, "n", "max_path"), "path curves")
        + " "
        + _same(coinciding(graph, "n", "sequential_depth"), "depth curves")
    )
    pages.append(figure_page(fig, caption))

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.5))
    fig.subplots_adjust(left=0.1, right=0.66, top=0.95, bottom=0.14, hspace=0.35)
    finite = profiles[np.isfinite(profiles.log_sensitivity)]
    _styled_lines(ax1, finite, "lag", "log_sensitivity", colours, band=True)
    ax1.axhline(facts["dilution"], color="0.3", linestyle="--", linewidth=0.8)
    ax1.set(
        xlabel="lag n - 1 - t",
        ylabel="ln ||dy_{n-1}/dx_t||_F",
        title=f"Last output's sensitivity to each input, n = {cfg.steps} (median, range over seeds)",
    )
    ax1.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    first = finite[finite.seed == cfg.seed]
    for k, (arch, g) in enumerate(first.groupby("architecture", sort=False)):
        ax2.scatter(g.hops, g.log_sensitivity, s=8, color=colours[arch], marker="os^Dv<>P"[k % 8], label=arch)
    ax2.set(
        xscale="symlog",
        xlim=(0, 1.3 * finite.hops.max()),
        xlabel="fewest hops from x_t to y_{n-1}",
        ylabel="ln-sensitivity",
        title=f"Sensitivity against path length (seed {cfg.seed})",
    )
    d = facts["decision"]
    caption = (
        f"{d.label[:1].upper()}{d.label[1:]}: the oldest input's ln-sensitivity (median over "
        f"{cfg.seeds} seeds) is {facts['rnn_oldest']:.1f} through the tanh RNN, "
        f"{facts['gated_oldest']['LSTM']:.1f} LSTM, {facts['gated_oldest']['GRU']:.1f} GRU and "
        f"{facts['attention_oldest']:.1f} through self-attention, whose mean over inputs is "
        f"{facts['attention_mean_interval']} (95% interval) against ln(1/n) = {facts['dilution']:.2f} "
        f"(dashed). " + _same(coinciding(profiles, "lag", "log_sensitivity", rtol=1e-6))
    )
    pages.append(figure_page(fig, caption))
    return pages
