"""How often is each predictor right? A grid of configurations designed to be hard.

Claim (source 001): "below 1 the largest eigenvalue makes gradients vanish, above 1
explode". The eigenvalue rule is one of gradflow's predictors; this study runs every
predictor on vanilla (tanh, ReLU), LSTM and GRU cells with gaussian, orthogonal, identity,
low-rank-plus-noise and strongly non-normal recurrent matrices, gains 0.3-6, input scales
0-3 and gate biases -3..6, several independent networks (seeds) per configuration,
measures the gradient flow of each and scores the regimes (vanishing / neutral /
exploding) and rates. The grid has two parts: the 113 configurations gradflow's
predictors were developed on ("tuned") and 66 that nobody tuned on ("untuned":
non-normal chains, low-rank plus noise, chaotic GRUs, forget-bias LSTMs at high gain).
The predictor to trust is chosen by k-fold cross-validation over configurations and
scored on the folds it was not chosen on.

    python -m gradflow.studies.predictor_accuracy [--full] [--out reports] [--seed S]

Sizes: quick mode uses N = 16 units and T = 200 steps because the moment maps dominate
the cost (they took 167 s at N = 48 on the tuned grid alone); at N = 16 the 537 networks
take about 95 CPU-seconds on one core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import gradflow as gf
from gradflow.report import paper_theme, table_page, write_csv
from gradflow.studies._accuracy_grid import architecture, build, networks
from gradflow.studies._accuracy_pages import accuracy_page, scatter_page
from gradflow.studies._claim import Claim
from gradflow.studies._cli import check_fields, study_main
from gradflow.studies._finish import finish_study
from gradflow.studies._protocol import WARMUP, combine, conventions, decide_claim, regime, success_interval

STUDY = "predictor_accuracy"

CLAIM = Claim(
    text="Below 1 the largest eigenvalue of the recurrent matrix makes gradients vanish, above 1 "
    "makes them explode.",
    source="001_c88bba1d8530f5f5.txt",
    source_title='"Disadvantages of RNN" (OpenGenus)',
    quote="If the largest eigenvalue is less than 1, the gradient will vanish. If the largest eigenvalue "
    "is more than 1, the gradient explodes.",
    quantity="share of networks whose measured regime (vanishing / neutral / exploding) the eigenvalue "
    "rule names",
    rule="the claim holds for a cell type when the 95% Wilson interval of that share lies above the "
    "threshold, fails when it lies below; cell types that disagree give 'holds only when'",
    threshold=0.9,
    holds_when="above",
)


@dataclass(frozen=True)
class Config:
    hidden: int = 16
    steps: int = 200
    batch: int = 2
    seeds: int = 3  # independent networks per configuration
    folds: int = 5  # cross-validation folds over configurations
    fixed_point_starts: int = 2  # gf.predict's (default 4): the fixed-point search dominated the cost
    subsample: int = 1  # use every k-th configuration of the grid (tests)
    seed: int = 0

    def __post_init__(self):
        check_fields(self, positive=("hidden", "steps", "batch", "seeds", "subsample", "fixed_point_starts"))
        if self.folds < 2:
            raise ValueError(f"folds = {self.folds!r} must be at least 2")


QUICK = Config()
FULL = Config(hidden=64, steps=600, batch=4, seeds=10, fixed_point_starts=4)


def evaluate(cfg: Config) -> pd.DataFrame:
    """One row per network: its configuration, seed, measured rate and regime, every predictor's."""
    rows = []
    todo = networks(cfg)
    for index, point, seed in tqdm(todo, desc=STUDY, unit="network", disable=None, leave=False):
        cell, xs, h0 = build(point, cfg, seed)
        base = dict(configuration=index, architecture=architecture(point), **point, seed=seed)
        try:
            flow = gf.gradient_flow(cell, xs, h0=h0, seed=seed)
            prediction = gf.predict(
                cell,
                xs,
                h0=h0,
                seed=seed,
                fixed_point_starts=cfg.fixed_point_starts,
                predictors=[p.name for p in gf.predictors()],  # those on request too: all are scored
            )
        except FloatingPointError as exc:  # the state itself overflows: nothing to measure
            rows.append(dict(base, skipped=str(exc)))
            continue
        row = dict(
            base,
            skipped="",
            measured_rate=flow.rate,
            measured_regime=regime(flow.rate),
            trusted=prediction.method,
            best_regime=prediction.regime or "inconclusive",
            best_rate=prediction.rate,
        )
        for r in prediction.results:
            row[f"{r.method}: regime"] = r.regime or "inconclusive"
            row[f"{r.method}: rate"] = r.rate
        rows.append(row)
    return pd.DataFrame(rows)


def methods(results: pd.DataFrame) -> list[str]:
    """The registered predictors with columns, in table order, that answered for some network of
    the grid (one that applies to no cell of the grid, such as the diagonal recurrence's exact
    rate on a grid of tanh, LSTM and GRU cells, is not scored: it would read as 0% right)."""
    return [
        p.name
        for p in gf.predictors()
        if f"{p.name}: regime" in results.columns and (results[f"{p.name}: regime"] != "inconclusive").any()
    ]


def cross_validate(results: pd.DataFrame, folds: int, seed: int) -> pd.DataFrame:
    """Choose the predictor on k - 1 folds of configurations, score it on the held-out fold.

    Configurations (all seeds of one together) are dealt into ``folds`` folds in a random
    order drawn from ``seed``. On each fold's complement every predictor's share of right
    regimes is computed (abstaining counts as wrong); the best (ties: the first in
    gradflow's order) is then scored on the fold. Returns one row per network with its
    fold, the predictor chosen without it, and whether that predictor was right.
    """
    done = results[results.skipped == ""]
    configs = np.sort(done.configuration.unique())
    k = min(folds, len(configs))
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 configurations; got {len(configs)}")
    order = np.random.default_rng(seed).permutation(len(configs))
    fold_of = dict(zip(configs[order], np.arange(len(configs)) % k, strict=True))
    fold = done.configuration.map(fold_of)
    right = pd.DataFrame({m: done[f"{m}: regime"] == done.measured_regime for m in methods(done)})
    out = []
    for f in range(k):
        train = (fold != f).to_numpy()
        chosen = right[train].mean().idxmax()  # idxmax keeps the first of equals
        held = done[~train]
        out.append(
            pd.DataFrame(
                {
                    "configuration": held.configuration,
                    "seed": held.seed,
                    "fold": f,
                    "chosen": chosen,
                    "correct": right.loc[~train, chosen],
                }
            )
        )
    return pd.concat(out).sort_index()


def accuracy(results: pd.DataFrame, held_out: pd.DataFrame) -> pd.DataFrame:
    """Per predictor: share of regimes right with its Wilson interval (all, tuned, untuned configs),
    coverage and median rate error; first the cross-validated choice, scored held out."""
    done = results[results.skipped == ""]
    out = []

    def row(name, correct, answered, err):
        acc = success_interval(correct)
        untuned = correct[(done.part == "untuned").to_numpy()]
        tuned = correct[(done.part == "tuned").to_numpy()]
        iv = {p: success_interval(c) if len(c) else None for p, c in (("tuned", tuned), ("untuned", untuned))}
        out.append(
            dict(
                predictor=name,
                accuracy=acc.estimate,
                low=acc.low,
                high=acc.high,
                tuned=iv["tuned"].estimate if iv["tuned"] else np.nan,
                untuned=iv["untuned"].estimate if iv["untuned"] else np.nan,
                untuned_low=iv["untuned"].low if iv["untuned"] else np.nan,
                untuned_high=iv["untuned"].high if iv["untuned"] else np.nan,
                coverage=float(np.mean(answered)),
                median_rate_error=float(np.median(err)) if len(err) else np.nan,
                networks=len(correct),
            )
        )

    cv = held_out.loc[done.index]
    row("cross-validated choice (held out)", cv.correct.to_numpy(bool), np.ones(len(done), bool), [])
    for method in ("trusted (gradflow's built-in)", *methods(done)):
        if method.startswith("trusted"):
            regime_, rate = done.best_regime, done.best_rate
        else:
            regime_, rate = done[f"{method}: regime"], done[f"{method}: rate"]
        answered = (regime_ != "inconclusive").to_numpy()
        valid = answered & np.isfinite(rate) & np.isfinite(done.measured_rate)
        row(
            method,
            (regime_ == done.measured_regime).to_numpy(),
            answered,
            (rate - done.measured_rate).abs()[valid].to_numpy(),
        )
    return pd.DataFrame(out)


def verdict(results: pd.DataFrame):
    """The eigenvalue rule's share of right regimes per cell type, decided against the claim."""
    done = results[results.skipped == ""]
    right = (done["eigenvalue rule: regime"] == done.measured_regime).to_numpy()
    cells = {}
    for arch in sorted(done.architecture.unique()):
        mine = (done.architecture == arch).to_numpy()
        cells[f"cell = {arch}"] = decide_claim(CLAIM, success_interval(right[mine]))
    overall = decide_claim(CLAIM, success_interval(right))
    return combine(cells, overall), cells


def _percent(v: float) -> str:
    return "-" if np.isnan(v) else f"{v:.0%}"


def run(cfg: Config, out: str) -> dict:
    results = evaluate(cfg)
    held_out = cross_validate(results, cfg.folds, cfg.seed)
    table = accuracy(results, held_out)
    decision, cells = verdict(results)
    os.makedirs(out, exist_ok=True)
    results = results.join(
        held_out[["fold", "chosen", "correct"]].rename(
            columns={"chosen": "cv_chosen", "correct": "cv_correct"}
        )
    )
    write_csv(os.path.join(out, f"{STUDY}_results.csv"), results)
    write_csv(os.path.join(out, f"{STUDY}_accuracy.csv"), table)
    done = results[results.skipped == ""]
    cv = table.iloc[0]
    eig = table.set_index("predictor").loc["eigenvalue rule"]
    chosen = held_out.groupby("fold").chosen.first()
    per_cell = "; ".join(
        f"{name.removeprefix('cell = ')} {v.estimate:.0%} [{v.interval[0]:.0%}, "
        f"{v.interval[1]:.0%}] ({v.networks})"
        for name, v in cells.items()
    )
    sentence = (
        f"{decision.sentence()} Per cell type (networks): {per_cell}. The predictor chosen by "
        f"{held_out.fold.nunique()}-fold cross-validation over configurations "
        f"({', '.join(sorted(set(chosen)))}) names the regime of {cv.accuracy:.0%} "
        f"[{cv.low:.0%}, {cv.high:.0%}] of networks it was not chosen on; on the 66 untuned "
        f"configurations the eigenvalue rule is right for {_percent(eig.untuned)}."
    )
    shown = pd.DataFrame(
        {
            "predictor": table.predictor,
            "accuracy [95%]": [
                f"{a:.1%} [{lo:.0%}, {hi:.0%}]"
                for a, lo, hi in zip(table.accuracy, table.low, table.high, strict=True)
            ],
            "tuned": table.tuned.map(_percent),
            "untuned [95%]": [
                ("-" if np.isnan(u) else f"{u:.0%} [{lo:.0%}, {hi:.0%}]")
                for u, lo, hi in zip(table.untuned, table.untuned_low, table.untuned_high, strict=True)
            ],
            "coverage": table.coverage.map(_percent),
            "median |rate error|": table.median_rate_error.map(lambda v: "-" if np.isnan(v) else f"{v:.3f}"),
        }
    )
    n_configs = done.configuration.nunique()
    n_untuned = done[done.part == "untuned"].configuration.nunique()
    with paper_theme():
        pages = [
            table_page(
                "How often is each predictor right?",
                [
                    ("Verdict", sentence),
                    (
                        "Configuration",
                        f"{n_configs} configurations ({n_untuned} untuned) x {cfg.seeds} seeds = "
                        f"{len(done)} networks measured "
                        f"({(results.skipped != '').sum()} skipped: state overflow); hidden N = "
                        f"{cfg.hidden}, T = {cfg.steps} after {WARMUP} warm-up steps, batch "
                        f"{cfg.batch}; gradflow {gf.__version__}.",
                    ),
                ],
                shown,
                "Share of regimes right (abstaining counts as wrong), Wilson 95% intervals",
                col_widths=(0.27, 0.18, 0.08, 0.18, 0.1, 0.14),
            )
        ]
        pages.append(scatter_page(done, decision, cfg))
        pages.append(accuracy_page(table, cv))
        pages.append(
            table_page(
                "Methods",
                [
                    (
                        "Measured",
                        "gradflow.gradient_flow: the slope of ln ||dL/dh_{T-k}|| against lag over lags "
                        "T/10..T (nats/step); |rate| <= 0.01 is neutral.",
                    ),
                    (
                        "Predicted",
                        "gradflow.predict, without back-propagation through time: the eigenvalue rule "
                        "(spectral radius of W, or of the step Jacobian at the origin), Pascanu's bound, "
                        f"the slowest mode of the nearest stable fixed point (searched from the origin and "
                        f"{cfg.fixed_point_starts} visited states), mean-field theory (vanilla "
                        "cells), the local gain of random directions, the spectral radius of the "
                        "time-averaged Jacobian, a gated mean-field moment map (LSTM, GRU), and the "
                        "second-moment map of sampled single steps and of pairs of consecutive steps.",
                    ),
                    (
                        "Cross-validation",
                        f"configurations (every seed of one together) dealt into {cfg.folds} "
                        "folds in an order drawn from the seed; on the other folds the predictor "
                        "with the most right regimes is chosen and scored on the held-out fold. "
                        "Per fold, chosen: " + ", ".join(f"{f}: {c}" for f, c in chosen.items()) + ".",
                    ),
                    (
                        "Tuned grid",
                        "Vanilla tanh and ReLU with gaussian, orthogonal, identity, rank-1 plus noise "
                        "0.4 and non-normal (eigenvalues <= gain, strong strictly-upper Schur part) "
                        "matrices; LSTM and GRU with gate biases -2, 0, 1, 3, gains 0.5-4, input std "
                        "0.5 and 2.",
                    ),
                    (
                        "Untuned grid",
                        "tanh chains W = a I + s S (S the shift: every eigenvalue a = 0.5, 0.9, "
                        "1.05; links s = 1, 2, 4); rank-2 and rank-3 parts with eigenvalues 0.8, "
                        "1.2, 2.5 on noise 0.2 or 0.8; GRUs at gain 2, 3, 5 with update bias -3, -1, "
                        "0; LSTMs at gain 2.5, 4, 6 with forget bias 2, 4, 6; input std 0.5 and 2.",
                    ),
                    *conventions(),
                ],
            )
        )
        return finish_study(
            out,
            pages,
            study=STUDY,
            config=cfg,
            claim=CLAIM,
            decision=decision,
            title="gradflow: how often is each predictor right?",
            keywords=["eigenvalue rule", "mean-field", "prediction", "cross-validation"],
            sentence=sentence,
            accuracy=table,
            results=results,
        )


def main(argv=None) -> dict:
    return study_main(
        argv,
        name=STUDY,
        doc=__doc__,
        quick=QUICK,
        full=FULL,
        run=run,
        overrides=("hidden", "steps", "seeds", "subsample"),
    )


if __name__ == "__main__":
    main()
