"""Recurrence against attention and convolutions: path lengths beside measured sensitivity.

Claim (source 002, after Vaswani et al. 2017, Table 1): attention fixes vanishing gradients
because the path from any input to the output is O(1) hops (hierarchical attention and
dilated convolutions: O(log n)), where a recurrent net needs O(n). Measured here: the
path lengths and sequential depth from each model's dependency graph at several n (the
growth class is fitted from the numbers, not assumed), and the sensitivity
``ln ||d y_{n-1} / d x_t||`` through the very same models with autograd: how much of
the gradient reaches the oldest input, the horizon, and the attenuation per hop.

    python -m gradflow.studies.path_lengths [--full] [--out reports] [--seed S]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import gradflow as gf
from gradflow.report import paper_theme, table_page, write_csv
from gradflow.studies._claim import Claim
from gradflow.studies._cli import study_main
from gradflow.studies._finish import finish_study
from gradflow.studies._path_pages import path_pages
from gradflow.studies._protocol import bootstrap_interval, combine, conventions, decide_claim

STUDY = "path_lengths"
RNN = "RNN tanh"
# The short-path architectures the claim is about, and the path class it gives each.
SHORT_PATHS = {
    "self-attention (2 layers)": "O(1)",
    "hierarchical attention (c = 4)": "O(log n)",
    "TCN (k = 3, dilated)": "O(log n)",
}
GAIN = math.log(1e3)  # nats: a factor 1000 more gradient on the oldest input than the RNN's

CLAIM = Claim(
    text="Attention fixes vanishing gradients: its path from any input to the output is O(1) hops "
    "(hierarchical attention and dilated convolutions: O(log n)), where a recurrent net needs O(n), "
    "so old inputs keep a strong gradient.",
    source="002_6d33935d2b5896cb.txt",
    source_title='"The fall of RNN / LSTM" (Eugenio Culurciello)',
    quote="It is easier to remember sequences if you hop 3\u20134 times, as opposed to hopping 100 times!",
    quantity="ln-sensitivity ln ||d y_{n-1} / d x_0||_F of the oldest input through a short-path "
    "architecture minus that through the tanh RNN with the same seed (nats), at n = steps",
    rule=f"holds for an architecture when the 95% bootstrap interval over seeds of the difference lies "
    f"above ln 1000 = {GAIN:.2f} nats (a thousand times more gradient reaches the oldest input), not "
    "when it lies below; architectures that disagree give 'holds only when'",
    threshold=GAIN,
    holds_when="above",
)


@dataclass(frozen=True)
class Config:
    hidden: int = 16  # model width
    inputs: int = 8
    steps: int = 128  # n of the sensitivity measurement
    lengths: tuple[int, ...] = (16, 64, 256, 1024)
    batch: int = 2
    seeds: int = 10  # independent networks (weights and inputs) per architecture
    window: int = 32  # restricted attention; layers grow as n / window
    seed: int = 0


QUICK = Config()
FULL = Config(hidden=32, steps=1024, lengths=(16, 64, 256, 1024, 4096), batch=4, seeds=20, window=128)


def architectures(n: int, cfg: Config, seed: int) -> list[tuple[str, gf.SequenceModel]]:
    """Each architecture with enough depth to reach ``x_0`` from ``y_{n-1}`` at fixed kernel sizes."""
    width, inputs, r = cfg.hidden, cfg.inputs, cfg.window
    levels = max(1, math.ceil(math.log2((n - 1) / 4 + 1)))  # TCN, kernel 3: 1 + 4(2^L - 1) >= n
    return [
        ("RNN tanh", gf.recurrent(gf.rnn(width, inputs, init="orthogonal", seed=seed))),
        ("LSTM", gf.recurrent(gf.lstm(width, inputs, forget_bias=1.0, seed=seed))),
        ("GRU", gf.recurrent(gf.gru(width, inputs, seed=seed))),
        ("self-attention (2 layers)", gf.self_attention(width, heads=2, layers=2, inputs=inputs, seed=seed)),
        (
            f"restricted attention (r = {r})",
            gf.restricted_attention(
                width, r, heads=2, layers=max(1, math.ceil((n - 1) / r)), inputs=inputs, seed=seed
            ),
        ),
        ("hierarchical attention (c = 4)", gf.hierarchical_attention(width, 4, inputs=inputs, seed=seed)),
        ("TCN (k = 3, dilated)", gf.tcn(width, 3, levels, inputs=inputs, seed=seed)),
        (
            "conv stack (k = 9)",
            gf.conv_stack(width, 9, max(1, math.ceil((n - 1) / 8)), inputs=inputs, seed=seed),
        ),
    ]


def growth_class(ns: np.ndarray, paths: np.ndarray) -> str:
    """O(1), O(log n) or O(n), from how the max path grows with n (least squares on the numbers)."""
    if np.all(paths == paths[0]):
        return "O(1)"
    slope = np.polyfit(np.log(ns), np.log(paths), 1)[0]
    if slope > 0.8:
        return "O(n)"
    # Growing, but slower than any power: does it follow log n?
    fit = np.polyfit(np.log(ns), paths, 1)
    resid = paths - np.polyval(fit, np.log(ns))
    return "O(log n)" if np.max(np.abs(resid)) <= 0.2 * np.max(paths) else f"O(n^{slope:.2f})"


def graph_table(cfg: Config) -> pd.DataFrame:
    rows = []
    for n in cfg.lengths:
        for name, model in architectures(n, cfg, cfg.seed):
            p = gf.path_lengths(model, n, require_coverage=True)
            rows.append(
                dict(
                    architecture=name,
                    n=n,
                    max_path=p.max_path,
                    sequential_depth=p.sequential_depth,
                    layers=len(p.operations) - 1,
                    flops=float(p.operations.flops.sum()),
                )
            )
    return pd.DataFrame(rows)


def classify(graph: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name, g in graph.groupby("architecture", sort=False):
        g = g.sort_values("n")
        ns = g.n.to_numpy(float)
        out.append(
            dict(
                architecture=name,
                max_path=growth_class(ns, g.max_path.to_numpy(float)),
                sequential_depth=growth_class(ns, g.sequential_depth.to_numpy(float)),
                flops_exponent=float(np.polyfit(np.log(ns), np.log(g.flops), 1)[0]),
            )
        )
    return pd.DataFrame(out)


def measure(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-lag sensitivity (tidy) and one summary row per architecture and seed."""
    n = cfg.steps
    profiles, rows = [], []
    for s in tqdm(range(cfg.seeds), desc=STUDY, unit="seed", disable=None, leave=False):
        seed = cfg.seed + s
        xs = gf.inputs.gaussian(n, cfg.batch, cfg.inputs, seed=seed)
        for name, model in architectures(n, cfg, seed):
            sens = gf.sensitivity(model, xs, loss="frobenius")
            prof = sens.profile
            profiles.append(
                pd.DataFrame(
                    {
                        "architecture": name,
                        "seed": seed,
                        "lag": sens.lags,
                        "hops": sens.hops,
                        "log_sensitivity": prof,
                    }
                )
            )
            rows.append(
                dict(
                    architecture=name,
                    seed=seed,
                    max_path=sens.paths.max_path,
                    peak=float(np.max(prof)),
                    oldest=float(prof[-1]),
                    oldest_below_peak=float(np.max(prof) - prof[-1]),
                    mean_log_sensitivity=float(np.mean(prof)),
                    horizon=sens.horizon,
                    attenuation_per_hop=sens.attenuation.rate,
                )
            )
    return pd.concat(profiles, ignore_index=True), pd.DataFrame(rows)


def verdict(classes: pd.DataFrame, summary: pd.DataFrame, n: int, seed: int = 0):
    """Per short-path architecture: how much more of the gradient reaches the oldest input than
    through the tanh RNN of the same seed, with a bootstrap interval over seeds, decided and combined.

    Returns the combined verdict, the per-architecture verdicts and the facts the pages quote.
    """
    by = summary.set_index(["architecture", "seed"])
    rnn = by.loc[RNN]
    cells = {}
    for arch in SHORT_PATHS:
        gain = (by.loc[arch].oldest - rnn.oldest).to_numpy()
        cells[f"architecture = {arch}"] = decide_claim(CLAIM, bootstrap_interval(gain, seed=seed))
    pooled = np.concatenate([(by.loc[a].oldest - rnn.oldest).to_numpy() for a in SHORT_PATHS])
    decision = combine(cells, decide_claim(CLAIM, bootstrap_interval(pooled, seed=seed)))
    cls = classes.set_index("architecture").max_path
    med = summary.groupby("architecture", sort=False).median(numeric_only=True)
    att = "self-attention (2 layers)"
    as_claimed = cls[RNN] == "O(n)" and all(cls[a] == c for a, c in SHORT_PATHS.items())
    facts = dict(
        paths_as_claimed=bool(as_claimed),
        classes={a: cls[a] for a in (RNN, *SHORT_PATHS)},
        rnn_oldest=med.loc[RNN].oldest,
        attention_oldest=med.loc[att].oldest,
        attention_mean=med.loc[att].mean_log_sensitivity,
        attention_mean_interval=bootstrap_interval(by.loc[att].mean_log_sensitivity.to_numpy(), seed=seed),
        rnn_horizon=med.loc[RNN].horizon,
        attention_horizon=med.loc[att].horizon,
        dilution=-math.log(n),
        gated_oldest={a: med.loc[a].oldest for a in ("LSTM", "GRU")},
        decision=decision,
        cells=cells,
    )
    iv = facts["attention_mean_interval"]
    sentence = (
        f"{decision.sentence()} Per architecture, the oldest input's ln-sensitivity above the tanh RNN's "
        "(95% interval over seeds): "
        + "; ".join(
            f"{name.removeprefix('architecture = ')} {v.estimate:.1f} [{v.interval[0]:.1f}, "
            f"{v.interval[1]:.1f}] ({v.label})"
            for name, v in cells.items()
        )
        + ". The dependency graphs give the claimed path classes ("
        + ", ".join(f"{a}: {c}" for a, c in facts["classes"].items())
        + f"){'' if facts['paths_as_claimed'] else ' only in part'}. One hop spreads the gradient over n "
        f"inputs: self-attention's mean ln-sensitivity per input is {iv} (95% interval) against "
        f"ln(1/n) = {-math.log(n):.2f}, uniform attention's share."
    )
    return decision, sentence, facts


def run(cfg: Config, out: str) -> dict:
    graph = graph_table(cfg)
    classes = classify(graph)
    profiles, summary = measure(cfg)
    decision, sentence, facts = verdict(classes, summary, cfg.steps, cfg.seed)
    os.makedirs(out, exist_ok=True)
    for name, frame in (
        ("graphs", graph),
        ("classes", classes),
        ("sensitivity", profiles),
        ("summary", summary),
    ):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)
    med = summary.groupby("architecture", sort=False).median(numeric_only=True).reset_index()
    oldest = {
        a: bootstrap_interval(g.oldest.to_numpy(), np.median, seed=cfg.seed)
        for a, g in summary.groupby("architecture", sort=False)
    }
    table = pd.DataFrame(
        {
            "architecture": med.architecture,
            "max path": med.max_path.map(lambda v: f"{v:.0f}"),
            "ln-sens. oldest [95%]": [
                f"{oldest[a].estimate:.2f} [{oldest[a].low:.1f}, {oldest[a].high:.1f}]"
                for a in med.architecture
            ],
            "horizon": med.horizon.map(lambda v: f"{v:.0f}"),
            "nats/hop": med.attenuation_per_hop.map(lambda v: "-" if np.isnan(v) else f"{v:.3f}"),
            "path class": med.architecture.map(classes.set_index("architecture").max_path),
        }
    )
    with paper_theme():
        pages = [
            table_page(
                "Is a short path a strong gradient?",
                [
                    ("Verdict", sentence),
                    (
                        "Configuration",
                        f"width {cfg.hidden}, {cfg.inputs} inputs, sensitivity at n = {cfg.steps} "
                        f"(batch {cfg.batch}, {cfg.seeds} seeds from {cfg.seed}); graphs at n = "
                        f"{', '.join(map(str, cfg.lengths))}; gradflow {gf.__version__}.",
                    ),
                ],
                table,
                f"At n = {cfg.steps}, medians over {cfg.seeds} seeds (ln-sensitivity in nats)",
                col_widths=(0.3, 0.08, 0.22, 0.09, 0.09, 0.12),
            )
        ]
        pages += path_pages(graph, classes, profiles, summary, facts, cfg)
        pages.append(
            table_page(
                "Methods",
                [
                    (
                        "Graphs",
                        "gradflow.path_lengths: the model unrolled over n positions as a scipy.sparse graph "
                        "of (layer, position) nodes built from the masks and tap offsets the model applies; "
                        "dijkstra from the last output gives each input's fewest hops, Kahn's algorithm "
                        "the sequential depth. One hop = one learned operation between nodes; identity "
                        "skips cost 0. Growth classes: least squares of the path against n and ln n.",
                    ),
                    (
                        "Sizes",
                        "Every model is deep enough to reach x_0 from y_{n-1} at a fixed kernel size: "
                        f"ceil((n - 1)/{cfg.window}) restricted-attention layers of window {cfg.window}, "
                        "hierarchical chunks of 4, TCN levels L with 1 + 4(2^L - 1) >= n (kernel 3), "
                        "ceil((n - 1)/8) undilated convolution layers of kernel 9.",
                    ),
                    (
                        "Sensitivity",
                        "gradflow.sensitivity: ||d y_{n-1} / d x_t||_F by autograd through the same "
                        "models (recurrent ones: gradflow's log-space reverse sweep); horizon: largest "
                        "lag within 1e-3 of the peak; attenuation: least-squares slope of "
                        "ln-sensitivity against hops. Each seed draws every model's weights and the "
                        "inputs; the verdict pairs each architecture with the RNN of the same seed.",
                    ),
                    *[c for c in conventions() if c[0] == "Intervals"],
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
            title="gradflow: recurrence against attention and convolutions",
            keywords=["path length", "attention", "TCN", "sensitivity"],
            sentence=sentence,
            graphs=graph,
            classes=classes,
            summary=summary,
            facts=facts,
            oldest=oldest,
        )


def main(argv=None) -> dict:
    return study_main(
        argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run, overrides=("hidden", "steps", "seeds")
    )


if __name__ == "__main__":
    main()
