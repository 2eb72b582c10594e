"""Does the largest eigenvalue decide? A phase diagram over gain and input scale.

Claim (seed 001): "below 1 the largest eigenvalue makes gradients vanish, above 1 they
explode". Measured here for vanilla tanh, ReLU and sigmoid RNNs on a grid of recurrent
gains and input scales, run as a cached `gradflow.sweep`: the measured regime of each
network beside the eigenvalue rule's and every other predictor's, the accuracy of each,
and where the rule breaks and why (saturation, input drive, the activation's slope).

    python -m analyses.eigenvalue_rule [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

import gradflow as gf
from analyses._cli import check_fields, study_main
from gradflow.report import figure_page, paper_theme, table_page, write_csv, write_pdf

STUDY = "eigenvalue_rule"
TOL = 0.01  # gradflow's neutral band, nats/step
REGIMES = ("vanishing", "neutral", "exploding")


@dataclass(frozen=True)
class Config:
    hidden: int = 32
    steps: int = 200
    batch: int = 2
    seeds: int = 1
    gains: tuple[float, ...] = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0)
    input_scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    activations: tuple[str, ...] = ("tanh", "relu", "sigmoid")
    executor: str = "process"
    seed: int = 0

    def __post_init__(self):
        check_fields(self, choices={"activations": ("tanh", "relu", "sigmoid"),
                                   "executor": ("serial", "process", "dask")},
                     positive=("gains",), non_negative=("input_scales",))


QUICK = Config()
FULL = Config(hidden=128, steps=1000, batch=4, seeds=3,
              gains=(0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0),
              input_scales=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0))


def regime(rate: float) -> str:
    return "inconclusive" if not np.isfinite(rate) and not np.isneginf(rate) else gf.regime_of(rate, TOL)


def measure(cfg: Config) -> pd.DataFrame:
    grid = {"cell": ["rnn"], "activation": list(cfg.activations), "gain": list(cfg.gains),
            "input_scale": list(cfg.input_scales), "hidden": [cfg.hidden], "seq_len": [cfg.steps],
            "batch": [cfg.batch]}
    frame = gf.sweep.run(grid, seeds=range(cfg.seed, cfg.seed + cfg.seeds), executor=cfg.executor,
                         progress=sys.stderr.isatty())  # a bar for people, not logs
    frame = frame[frame.error.fillna("") == ""].copy()  # a state that overflows has no gradient
    methods = [c for c in frame.columns if c.startswith("rate_")]
    for col in methods:
        frame[col.replace("rate_", "regime_")] = frame[col].map(regime)
    frame["spectral_radius"] = np.exp(frame.rate_eigenvalue_rule)
    return frame


def accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for col in [c for c in frame.columns if c.startswith("regime_")]:
        if (frame[col] == "inconclusive").all():
            continue  # a predictor for other cells (gated mean-field)
        name = col.removeprefix("regime_").replace("_", " ")
        right = frame[col] == frame.measured_regime
        row = dict(predictor=name, overall=float(right.mean()))
        for act_ in frame.activation.unique():
            row[act_] = float(right[frame.activation == act_].mean())
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("overall", ascending=False, kind="stable")
    return out.reset_index(drop=True)


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Where the eigenvalue rule is wrong, by the reason the numbers point to."""
    wrong = frame[frame.regime_eigenvalue_rule != frame.measured_regime]

    def why(r):
        if r.regime_eigenvalue_rule == "exploding" and r.measured_regime != "exploding":
            return ("input drive saturates the units" if r.input_scale > 0
                    else "saturation of the autonomous state")
        if r.regime_eigenvalue_rule == "vanishing" and r.measured_regime != "vanishing":
            return "slope of the activation above 1 / rho"
        if r.measured_regime == "neutral" or r.regime_eigenvalue_rule == "neutral":
            return "at the edge: neutral on one side only"
        return "activation slope below 1 shrinks every step"

    return wrong.assign(reason=[why(r) for r in wrong.itertuples()])


def verdict(acc: pd.DataFrame, fails: pd.DataFrame, points: int) -> tuple[str, str, dict]:
    eig = acc[acc.predictor == "eigenvalue rule"].iloc[0]
    best = acc.iloc[0]
    word = ("holds" if eig.overall >= 0.95 else
            "holds only for some networks" if eig.overall >= 0.6 else "does not hold")
    reasons = fails.reason.value_counts()
    per_act = {a: eig[a] for a in acc.columns if a not in ("predictor", "overall")}
    facts = dict(eigenvalue_accuracy=float(eig.overall), best=best.predictor,
                 best_accuracy=float(best.overall), per_activation=per_act,
                 reasons=reasons.to_dict(), points=points)
    sentence = (f"{word}: the rule names the measured regime in {eig.overall:.0%} of {points} "
                f"networks (" + ", ".join(f"{a} {v:.0%}" for a, v in per_act.items()) + "); "
                f"{best.predictor} in {best.overall:.0%}. Its failures: "
                + "; ".join(f"{r} ({k})" for r, k in reasons.items()) + ".")
    return word, sentence, facts


def _critical(activation: str, input_std: float) -> float:
    try:
        return gf.meanfield.critical_gain(activation, input_var=input_std**2)
    except ValueError:  # no order-to-chaos transition at this drive
        return np.nan


def _phase_figure(frame: pd.DataFrame, cfg: Config):
    acts = list(cfg.activations)
    fig, axes = plt.subplots(len(acts), 2, figsize=(8.27, 10.0), squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.95, bottom=0.12, hspace=0.45, wspace=0.3)
    code = {"vanishing": -1, "neutral": 0, "exploding": 1, "inconclusive": np.nan}
    for row, act_ in zip(axes, acts, strict=True):
        sub = frame[frame.activation == act_]
        for ax, col, title in ((row[0], "measured_regime", "measured"),
                               (row[1], "regime_eigenvalue_rule", "eigenvalue rule")):
            grid = (sub.assign(v=sub[col].map(code)).groupby(["input_scale", "gain"]).v.mean()
                    .unstack("gain").sort_index(ascending=False))
            sns.heatmap(grid, ax=ax, cmap="coolwarm", vmin=-1, vmax=1, cbar=False, linewidths=0.5,
                        annot=grid.map(lambda v: "v" if v < -0.5 else "e" if v > 0.5 else "n"), fmt="")
            ax.set(title=f"{act_}: {title}", xlabel="gain g", ylabel="input std")
            if col == "measured_regime":
                edge = [_critical(act_, s) for s in grid.index]
                gains = list(grid.columns)
                xs = [np.interp(e, gains, np.arange(len(gains))) + 0.5 if gains[0] <= e <= gains[-1]
                      else np.nan for e in edge]
                ax.plot(xs, np.arange(len(grid.index)) + 0.5, "k--", linewidth=1.2)
    return fig


def run(cfg: Config, out: str) -> dict:
    frame = measure(cfg)
    acc = accuracy(frame)
    fails = failures(frame)
    word, sentence, facts = verdict(acc, fails, len(frame))
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, f"{STUDY}_points.csv"), frame)
    write_csv(os.path.join(out, f"{STUDY}_accuracy.csv"), acc)
    write_csv(os.path.join(out, f"{STUDY}_failures.csv"), fails)
    shown = acc.copy()
    for col in shown.columns[1:]:
        shown[col] = shown[col].map(lambda v: f"{v:.0%}")
    with paper_theme():
        pages = [table_page(
            "Does the largest eigenvalue decide?",
            [("Claim", "Below 1 the largest eigenvalue makes gradients vanish, above 1 they explode "
                       "(seed 001)."),
             ("Verdict", sentence),
             ("Configuration", f"vanilla {', '.join(cfg.activations)} RNNs, N = {cfg.hidden}, "
                               f"T = {cfg.steps}, batch {cfg.batch}, {cfg.seeds} seed(s) from {cfg.seed}; "
                               f"gains {', '.join(f'{g:g}' for g in cfg.gains)}; input std "
                               f"{', '.join(f'{s:g}' for s in cfg.input_scales)}; run as a cached "
                               f"gradflow.sweep; gradflow {gf.__version__}.")],
            shown, "Share of regimes right, by predictor and activation")]
        fig = _phase_figure(frame, cfg)
        pages.append(figure_page(fig, (
            "Regimes (v: vanishing, n: neutral, e: exploding) measured by gradflow.gradient_flow (left) and "
            "named by the eigenvalue rule (right). Dashed: mean-field critical gain (chi_1 = 1) for "
            f"each input std. The rule is right in {facts['eigenvalue_accuracy']:.0%} of the cells.")))
        fig, ax = plt.subplots(figsize=(8.27, 6.0))
        fig.subplots_adjust(left=0.1, right=0.96, top=0.93, bottom=0.2)
        scales = sorted(frame.input_scale.unique())
        sns.scatterplot(data=frame, x="spectral_radius", y="measured_rate", hue="activation",
                        style="input_scale", markers=dict(zip(scales, "osD^vP*X", strict=False)), ax=ax, s=30,
                        alpha=0.85)
        ax.axvline(1.0, color="0.3", linestyle="--", linewidth=1)
        ax.axhspan(-TOL, TOL, color="green", alpha=0.15)
        ax.set(xscale="log", xlabel="spectral radius of W", ylabel="measured rate (nats/step)",
               title="The eigenvalue rule's boundary (dashed) against the measured rate")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        lo, hi = frame.spectral_radius.min(), frame.spectral_radius.max()
        ax.set_xticks([t for t in (0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0) if lo <= t <= hi])
        pages.append(figure_page(fig, f"{len(fails)} of {len(frame)} networks sit in the wrong quadrant "
                                      f"for the rule: " + "; ".join(f"{r} ({k})" for r, k in
                                                                   facts["reasons"].items()) + "."))
        pages.append(table_page("Methods", [
            ("Measured", "gradflow.gradient_flow: slope of ln ||dL/dh_{T-k}|| over lags T/10..T; "
                         f"|rate| <= {TOL} is neutral. Networks whose state overflows are left out."),
            ("Predicted", "gradflow.predict on the same forward run (see the predictor_accuracy study); "
                          "the eigenvalue rule compares the spectral radius of W with 1."),
            ("Sweep", "gradflow.sweep.run with the default task (cell, activation, gain, input_scale, "
                      "hidden, seq_len, batch, seed); cached on disk, so a second run reads the points."),
            ("Reasons", "A failure is put down to saturation or input drive when the rule says exploding "
                        "and the measurement does not; to the activation's slope when the rule says "
                        "vanishing and the measurement does not."),
        ]))
        pdf = os.path.join(out, f"{STUDY}.pdf")
        write_pdf(pdf, pages, study=STUDY, config=cfg,
                  title="gradflow: does the largest eigenvalue decide?",
                  subject=f"Verdict: {word}", keywords=["eigenvalue rule", "phase diagram", "sweep"])
    return {"verdict": word, "sentence": sentence, "accuracy": acc, "points": frame, "facts": facts,
            "pdf": pdf}


def main(argv=None) -> dict:
    return study_main(argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run,
                      overrides=("hidden", "steps", "seeds"))


if __name__ == "__main__":
    main()
