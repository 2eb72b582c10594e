"""The eigenvalue_rule study's figures: the phase diagrams of the measured regime beside the regimes the
rule on rho(W) and the slope-corrected rule name, per activation, and the measured rate of every network
against the rate each rule predicts (the study module measures, decides and writes the report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gradflow.report import PALETTE, palette
from gradflow.studies import _protocol as protocol

if TYPE_CHECKING:
    from gradflow.studies.eigenvalue_rule import Config


def phase_figure(frame: pd.DataFrame, cfg: Config):
    acts = list(cfg.activations)
    fig, axes = plt.subplots(len(acts), 3, figsize=(8.27, 3.0 * len(acts) + 1.6), squeeze=False)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.95, bottom=0.2, hspace=0.5, wspace=0.35)
    code = {"vanishing": -1, "neutral": 0, "exploding": 1}
    for row, act_ in zip(axes, acts, strict=True):
        sub = frame[frame.activation == act_]
        for ax, col, title in (
            (row[0], "measured_regime", "measured"),
            (row[1], "regime_folklore", "rule on rho(W)"),
            (row[2], "regime_slope-corrected", "rule on gamma rho(W)"),
        ):
            grid = (
                sub.assign(v=sub[col].map(code))
                .groupby(["input_scale", "gain"])
                .v.mean()
                .unstack("gain")
                .sort_index(ascending=False)
            )
            sns.heatmap(
                grid,
                ax=ax,
                cmap="PuOr_r",
                vmin=-1,
                vmax=1,
                cbar=False,
                linewidths=0.5,
                annot=grid.map(lambda v: "v" if v < -0.5 else "e" if v > 0.5 else "n"),
                fmt="",
                annot_kws={"fontsize": 7},
            )
            ax.set(title=f"{act_}: {title}", xlabel="gain g", ylabel="input std")
            ax.tick_params(labelsize=7)
    return fig


def rate_figure(frame: pd.DataFrame, cfg: Config):
    acts = list(cfg.activations)
    scales = sorted(frame.input_scale.unique())
    colours = palette([f"{s:g}" for s in scales])
    fig, axes = plt.subplots(2, len(acts), figsize=(8.27, 7.5), squeeze=False)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.3, hspace=0.45, wspace=0.3)
    for col, act_ in enumerate(acts):
        sub = frame[frame.activation == act_]
        for row, (x, label) in enumerate(
            (("log_spectral_radius", "ln rho(W)"), ("corrected_rate", "ln(gamma rho(W))"))
        ):
            ax = axes[row, col]
            for s in scales:
                pts = sub[(sub.input_scale == s) & np.isfinite(sub[x])]
                ax.scatter(
                    pts[x],
                    pts.measured_rate,
                    s=9,
                    color=colours[f"{s:g}"],
                    alpha=0.8,
                    label=f"input std {s:g}",
                    linewidths=0,
                )
            lo = float(
                np.nanmin(
                    np.r_[sub[x][np.isfinite(sub[x])], sub.measured_rate[np.isfinite(sub.measured_rate)]]
                )
            )
            hi = float(
                np.nanmax(
                    np.r_[sub[x][np.isfinite(sub[x])], sub.measured_rate[np.isfinite(sub.measured_rate)]]
                )
            )
            ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=0.8, linestyle="--")
            ax.axhspan(-protocol.NEUTRAL_BAND, protocol.NEUTRAL_BAND, color=PALETTE[2], alpha=0.25)
            ax.axvline(0.0, color="0.4", linewidth=0.8)
            ax.set(title=act_, xlabel=label, ylabel="measured rate (nats/step)" if col == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=len(scales), bbox_to_anchor=(0.5, 0.2), frameon=False
    )
    return fig
