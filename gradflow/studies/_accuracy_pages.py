"""The predictor-accuracy study's figure pages: predicted against measured rates for four
predictors (one panel each, by architecture), and each predictor's share of regimes right, on
all configurations and on the untuned ones alone, with Wilson intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gradflow.report import figure_page, palette

if TYPE_CHECKING:  # annotations only
    from gradflow.studies.predictor_accuracy import Config


def scatter_page(done: pd.DataFrame, decision, cfg: Config):
    fig, axes = plt.subplots(2, 2, figsize=(8.27, 9.0))
    fig.subplots_adjust(left=0.1, right=0.97, top=0.95, bottom=0.2, hspace=0.35, wspace=0.3)
    archs = sorted(done.architecture.unique())
    colours = palette(archs)
    markers = dict(zip(archs, "os^D", strict=False))
    lim = [-1.5, 1.0]
    for ax, method in zip(
        axes.flat, ("eigenvalue rule", "mean-field", "moment map", "two-step moment map"), strict=True
    ):
        col = f"{method}: rate"
        ok = np.isfinite(done[col]) & np.isfinite(done.measured_rate)
        sns.scatterplot(
            data=done[ok],
            x="measured_rate",
            y=col,
            hue="architecture",
            style="architecture",
            hue_order=archs,
            palette=colours,
            markers=markers,
            s=14,
            ax=ax,
            legend=False,
        )
        ax.plot(lim, lim, color="0.5", linewidth=0.8)
        ax.set(
            xlim=lim,
            ylim=lim,
            xlabel="measured rate (nats/step)",
            ylabel="predicted rate",
            title=f"{method} ({int(ok.sum())} answered)",
        )
    handles = [plt.Line2D([], [], linestyle="", marker=markers[a], color=colours[a], label=a) for a in archs]
    fig.legend(
        handles=handles, loc="lower center", ncol=len(archs), frameon=False, bbox_to_anchor=(0.5, 0.12)
    )
    caption = (
        f"The eigenvalue rule names the measured regime of {decision.estimate:.0%} of networks "
        f"(95% interval {decision.interval[0]:.0%} to {decision.interval[1]:.0%}, "
        f"{decision.networks} networks); predicted against measured rates, N = {cfg.hidden}, "
        f"T = {cfg.steps}. Diagonal: perfect prediction; points outside [-1.5, 1] are not shown."
    )
    return figure_page(fig, caption)


def accuracy_page(table: pd.DataFrame, cv) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8.27, 7.0))
    fig.subplots_adjust(left=0.36, right=0.96, top=0.95, bottom=0.3)
    rows = table.iloc[::-1].reset_index(drop=True)
    colours = list(palette(["all", "untuned"]).values())
    ax.errorbar(
        rows.accuracy,
        np.arange(len(rows)) + 0.15,
        xerr=[rows.accuracy - rows.low, rows.high - rows.accuracy],
        fmt="o",
        color=colours[0],
        capsize=2,
        label="all configurations",
    )
    ok = np.isfinite(rows.untuned)
    ax.errorbar(
        rows.untuned[ok],
        np.arange(len(rows))[ok] - 0.15,
        xerr=[(rows.untuned - rows.untuned_low)[ok], (rows.untuned_high - rows.untuned)[ok]],
        fmt="s",
        color=colours[1],
        capsize=2,
        label="untuned configurations only",
    )
    ax.set_yticks(np.arange(len(rows)), rows.predictor)
    ax.set(xlim=(0, 1.02), xlabel="share of networks whose regime the predictor names")
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.12), ncol=2, frameon=False)
    caption = (
        f"The cross-validated choice of predictor is right on {cv.accuracy:.0%} (95% interval "
        f"{cv.low:.0%} to {cv.high:.0%}) of the networks it was not chosen on. Bars: Wilson 95% "
        f"intervals over {int(cv.networks)} networks; abstaining counts as wrong."
    )
    return figure_page(fig, caption)
