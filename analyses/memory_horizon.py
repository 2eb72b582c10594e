"""Do RNNs remember hundreds of steps but not thousands? The memory horizon, measured.

Claim (seeds 001, 002): recurrent nets remember 100s of steps, not 1000s. Measured here
at initialisation, as a cached `gradflow.sweep`: the effective memory horizon of the
gradient (the lag where ``||dL/dh_{T-k}||`` has fallen by 1e-3 from its value at the
end) for tanh RNNs, LSTMs and GRUs of several sizes and initialisations (gaussian,
orthogonal, identity), with its distribution over seeds.

    python -m analyses.memory_horizon [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import gradflow as gf
from analyses._cli import check_fields, study_main
from gradflow.report import figure_page, fixed_jitter, paper_theme, table_page, write_csv, write_pdf

STUDY = "memory_horizon"
BUILD = {"rnn": gf.rnn, "lstm": gf.lstm, "gru": gf.gru}


@dataclass(frozen=True)
class Config:
    hidden: int = 64  # the largest size; half and quarter of it run too
    steps: int = 1000
    batch: int = 2
    seeds: int = 4
    input_scales: tuple[float, ...] = (0.1, 1.0)
    executor: str = "process"
    seed: int = 0

    def __post_init__(self):
        check_fields(self, choices={"executor": ("serial", "process", "dask")},
                     non_negative=("input_scales",))


QUICK = Config()
FULL = Config(hidden=256, steps=3000, batch=4, seeds=20)


def horizon_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """One network's memory horizon and rate; a module-level function, so workers can import it."""
    seed = int(point["seed"])
    cell = BUILD[point["cell"]](int(point["hidden"]), 8, gain=1.0, init=point["init"], seed=seed)
    xs = gf.inputs.gaussian(int(point["seq_len"]), int(point["batch"]), 8,
                            scale=float(point["input_scale"]), seed=seed)
    flow = gf.gradient_flow(cell, xs, seed=int(point["seed"]))
    h = flow.memory_horizon
    return {"horizon": float(h) if h is not None else np.inf, "rate": flow.rate,
            "regime": flow.regime}


def measure(cfg: Config) -> pd.DataFrame:
    sizes = sorted({max(4, cfg.hidden // 4), max(4, cfg.hidden // 2), cfg.hidden})
    grid = {"cell": ["rnn", "lstm", "gru"], "init": ["gaussian", "orthogonal", "identity"],
            "hidden": sizes, "seq_len": [cfg.steps], "batch": [cfg.batch],
            "input_scale": list(cfg.input_scales)}
    frame = gf.sweep.run(grid, task=horizon_task, seeds=range(cfg.seed, cfg.seed + cfg.seeds),
                         executor=cfg.executor, progress=sys.stderr.isatty())  # a bar for people, not logs
    frame = frame[frame.error.fillna("") == ""].copy()
    frame["architecture"] = frame.cell.map({"rnn": "RNN tanh", "lstm": "LSTM", "gru": "GRU"})
    frame["beyond_T"] = ~np.isfinite(frame.horizon)
    return frame


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.groupby(["architecture", "init", "hidden", "input_scale"], sort=False)
    return g.agg(median_horizon=("horizon", "median"), max_horizon=("horizon", "max"),
                 beyond_T=("beyond_T", "mean"), median_rate=("rate", "median"),
                 seeds=("seed", "count")).reset_index()


def verdict(frame: pd.DataFrame, steps: int) -> tuple[str, str, dict]:
    """Where do the horizons fall: under 100, 100-999, 1000 and more (or beyond T)?"""
    h = frame.horizon
    shares = {"under 100": int((h < 100).sum()), "100 to 999": int(((h >= 100) & (h < 1000)).sum()),
              "1000 or more": int((h >= 1000).sum())}
    by_arch = frame.groupby("architecture").horizon.median().to_dict()
    longest = frame.loc[frame.horizon.idxmax()]
    facts = dict(shares=shares, median_by_architecture=by_arch, steps=steps,
                 longest=dict(architecture=longest.architecture, init=longest.init,
                              hidden=int(longest.hidden), horizon=float(longest.horizon)))
    if shares["1000 or more"] > 0:
        word = "does not hold: some networks keep their gradient 1000 steps and more"
    elif shares["100 to 999"] > 0:
        word = "holds: horizons reach the hundreds but not a thousand"
    else:
        word = "does not hold: horizons stay under 100 steps"
    longest_text = ("beyond T" if not np.isfinite(longest.horizon) else f"{longest.horizon:.0f} steps")
    sentence = (f"{word}. Of {len(frame)} networks (T = {steps}), horizons "
                + ", ".join(f"{k}: {v}" for k, v in shares.items())
                + ". Median horizon: " + ", ".join(
                    f"{a} {'beyond T' if not np.isfinite(v) else f'{v:.0f}'}" for a, v in by_arch.items())
                + f". Longest: {longest.architecture}, {longest.init}, N = {int(longest.hidden)} "
                  f"({longest_text}).")
    return word, sentence, facts


def run(cfg: Config, out: str) -> dict:
    frame = measure(cfg)
    summary = summarise(frame)
    word, sentence, facts = verdict(frame, cfg.steps)
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_points.csv"), frame)
    write_csv(os.path.join(out, f"{STUDY}_summary.csv"), summary)
    top = summary[summary.hidden == summary.hidden.max()]
    shown = pd.DataFrame({
        "architecture": top.architecture, "init": top.init, "input std": top.input_scale.map(
            lambda v: f"{v:g}"),
        "median horizon": top.median_horizon.map(lambda v: "> T" if not np.isfinite(v) else f"{v:.0f}"),
        "max": top.max_horizon.map(lambda v: "> T" if not np.isfinite(v) else f"{v:.0f}"),
        "median rate": top.median_rate.map(lambda v: f"{v:+.4f}"), "seeds": top.seeds})
    plot = frame.assign(shown_horizon=np.where(frame.beyond_T, 1.5 * cfg.steps, frame.horizon))
    with paper_theme():
        fig, axes = plt.subplots(3, 1, figsize=(8.27, 10.0), sharex=True)
        fig.subplots_adjust(left=0.3, right=0.96, top=0.95, bottom=0.12, hspace=0.3)
        plot["setting"] = plot.init + ", input std " + plot.input_scale.map(lambda v: f"{v:g}")
        for ax, arch in zip(axes, ("RNN tanh", "LSTM", "GRU"), strict=True):
            sub = plot[plot.architecture == arch]
            with fixed_jitter(cfg.seed):
                sns.stripplot(data=sub, y="setting", x="shown_horizon", hue="hidden", dodge=True, ax=ax,
                              palette="viridis", size=4)
            ax.set(xscale="log", ylabel="", title=arch, xlabel="memory horizon (steps)")
            for x in (100, 1000):
                ax.axvline(x, color="0.4", linestyle=":", linewidth=1)
            ax.axvline(cfg.steps, color="k", linestyle="--", linewidth=1)
            ax.legend(title="N", fontsize="x-small", loc="lower right")
        caption = ("Each dot: one network (seed). Dotted: 100 and 1000 steps; dashed: T = "
                   f"{cfg.steps} (dots past it: beyond T). Networks by horizon: " + ", ".join(
                       f"{k}: {v}" for k, v in facts["shares"].items()) + ".")
        pages = [table_page(
            "Do RNNs remember hundreds of steps, not thousands?",
            [("Claim", "Recurrent nets remember 100s of steps, not 1000s (seeds 001, 002)."),
             ("Verdict", sentence),
             ("Configuration", f"tanh RNN, LSTM (forget bias 1), GRU; N in "
                               f"{sorted(int(v) for v in frame.hidden.unique())}; "
                               f"gaussian, orthogonal, identity initialisation at gain 1; T = {cfg.steps}, "
                               f"input std {', '.join(f'{s:g}' for s in cfg.input_scales)}, "
                               f"batch {cfg.batch}, {cfg.seeds} seeds from "
                               f"{cfg.seed}; a cached gradflow.sweep; gradflow {gf.__version__}.")],
            shown, f"N = {summary.hidden.max()}, over seeds"),
            figure_page(fig, caption),
            table_page("Methods", [
                ("Horizon", "gradflow.gradient_flow(...).memory_horizon: the lag where the gradient norm "
                            "has fallen by a factor 1e-3 from its value at the final state; beyond T when it "
                            "never does within the sequence."),
                ("Scope", "At initialisation, with random inputs: how far the gradient signal reaches, "
                          "not what a trained network stores (the training study measures that)."),
            ])]
        pdf = os.path.join(out, f"{STUDY}.pdf")
        write_pdf(pdf, pages, study=STUDY, config=cfg,
                  title="gradflow: do RNNs remember hundreds of steps, not thousands?",
                  subject=f"Verdict: {word}", keywords=["memory horizon", "initialisation", "sweep"])
    return {"verdict": word, "sentence": sentence, "summary": summary, "points": frame, "facts": facts,
            "pdf": pdf}


def main(argv=None) -> dict:
    return study_main(argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run,
                      overrides=("hidden", "steps", "seeds"))


if __name__ == "__main__":
    main()
