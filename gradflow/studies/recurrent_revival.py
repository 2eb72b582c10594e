"""The recurrent revival: do linear recurrences answer the 2019 claims against RNNs?

Linear recurrences and state-space models (LRU, S4D, minGRU, Mamba-style selective blocks)
brought recurrence back by answering two of the claims gradflow audits: a linear recurrence
is an associative scan, parallel in time with O(log n) depth, and a diagonal recurrence kept
inside the unit circle neither explodes nor vanishes by construction. Measured here, by the
protocol every study follows (claims quoted from shared/seeds/, decision rules stated before
the data, intervals over at least 10 independent networks per design cell):

1. Memory (source 002, "100s, not 1000s"): the share of networks of each architecture, at its
   standard initialisation, whose gradient at lag 1,000 (and 10,000 at full size) keeps at least
   1e-3 of its value at lag 1 (`gradflow.gradient_flow`, the shared warm start), and the fitted
   rate against the neutral band.
2. Parallelism (sources 000, 001, 003, "can't be parallelized"): the sequential depth of the
   forward pass against n, exact from the dependency graph (a loop: n; a scan: ceil(log2 n);
   attention: O(1)), with the scan's and the loop's CPU times measured beside it.

    python -m gradflow.studies.recurrent_revival [--full] [--out reports] [--seed S] [--hidden N] [--steps T]
"""

from __future__ import annotations

import math
import os
import platform
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import gradflow as gf
from gradflow.report import PALETTE, figure_page, palette, paper_theme, table_page, write_csv, write_pdf
from gradflow.studies import _protocol as protocol
from gradflow.studies._cli import check_fields, study_main

STUDY = "recurrent_revival"
KEEP = 1e-3  # "keeps its gradient": at least this fraction of the lag-1 norm (gradflow's memory drop)
LAGS = (1_000, 10_000)  # "not 1000s or 10,000s"
DEPTH_SLOPE = 0.5  # log-log slope of depth against n: above, the depth grows like n
SOURCE_000 = "\"Why are NLP researchers trying to abandon RNNs ...?\" (Tony Petrov)"
SOURCE_001 = "\"Disadvantages of RNN\" (OpenGenus)"
SOURCE_002 = "\"The fall of RNN / LSTM\" (Eugenio Culurciello)"
SOURCE_003 = "\"Recurrent Neural Networks\" (GitBook notes)"


@dataclass(frozen=True)
class Architecture:
    """One architecture of the study: how to build a network, and whether it is linear in its state."""

    build: Callable[[int, int, int], gf.Cell]  # (hidden, inputs, seed) -> cell at its standard init
    linear: bool  # linear in the state: its forward pass is an associative scan
    init: str  # the standard initialisation, in words


ARCHITECTURES: dict[str, Architecture] = {
    "RNN tanh": Architecture(lambda n, d, s: gf.rnn(n, d, init="pytorch", seed=s), False,
                             "PyTorch's default uniform(-1/sqrt(N), 1/sqrt(N))"),
    "LSTM": Architecture(lambda n, d, s: gf.lstm(n, d, init="pytorch", forget_bias=1.0, seed=s), False,
                         "PyTorch's default, forget-gate bias +1"),
    "GRU": Architecture(lambda n, d, s: gf.gru(n, d, init="pytorch", seed=s), False, "PyTorch's default"),
    "LRU": Architecture(lambda n, d, s: gf.lru(n, d, seed=s), True,
                        "the reference ring |lambda| in [0, 1], gamma normalisation"),
    "LRU, ring [0.9, 0.999]": Architecture(lambda n, d, s: gf.lru(n, d, r_min=0.9, r_max=0.999, seed=s), True,
                                           "|lambda| in [0.9, 0.999], gamma normalisation"),
    "S4D": Architecture(lambda n, d, s: gf.s4d(n, d, seed=s), True,
                        "S4D-Lin A_n = -1/2 + i pi n, dt log-uniform in [1e-3, 1e-1]"),
    "minGRU": Architecture(lambda n, d, s: gf.mingru(n, d, seed=s), True, "PyTorch's nn.Linear default"),
    "minLSTM": Architecture(lambda n, d, s: gf.minlstm(n, d, seed=s), True, "PyTorch's nn.Linear default"),
    # Mamba's width follows its input (d_inner = 2 d_model); hidden does not apply to it.
    "Mamba": Architecture(lambda n, d, s: gf.mamba(d, seed=s), True,
                          "mamba_ssm's: A_log = log(1..16), dt log-uniform in [1e-3, 1e-1], expand 2, d_conv 4"),
}
NONLINEAR = tuple(a for a, spec in ARCHITECTURES.items() if not spec.linear)
TIMED = ("LSTM", "minGRU", "minLSTM")  # one of each kind
LOOP, SCAN = "loop", "scan"
ATTENTION = "self-attention (1 layer)"
SCAN_TOL = 1e-10  # the scan's states against the loop's, relative to the largest state

MEMORY = protocol.Claim(
    text="Recurrent networks remember sequences of hundreds of steps, not thousands: their gradient is "
         "gone after 1,000 steps.",
    source="002_6d33935d2b5896cb.txt", source_title=SOURCE_002,
    quote="but they can remember sequences of 100s, not 1000s or 10,000s or more",
    quantity=f"share of an architecture's networks (standard initialisation, shared warm start) whose "
             f"gradient norm at lag L keeps at least {KEEP:g} of its value at lag 1, "
             f"||dL/dh_(T-L)|| / ||dL/dh_(T-1)|| >= {KEEP:g}, for L = 1,000 (and 10,000 at full size)",
    rule="holds for an architecture (and lag) when the 95% Wilson interval of that share lies below the "
         "threshold (most of its networks lose the gradient), does not hold when it lies above (most keep "
         "it); architectures that disagree give 'holds only when'. A majority is what 10 networks per "
         "architecture can decide: 0 of 10 gives [0, 0.28], 10 of 10 [0.72, 1]",
    threshold=0.5, holds_when="below")

PARALLEL = protocol.Claim(
    text="RNNs cannot be parallelised over time: each step needs the previous step's state, so the "
         "forward pass takes n sequential steps.",
    source="000_f5c5d6523f02834e.txt", source_title=SOURCE_000,
    quote="Due to the way they\u2019re designed RNNs can\u2019t be parallelized.",
    quantity="log-log slope of the forward pass's sequential depth against the sequence length n "
             "(n = 16 ... 2^k), exact from the dependency graph (a loop: n; an associative scan: "
             "ceil(log2 n) combine rounds; attention: its layer count)",
    rule=f"holds for an architecture when the slope is above {DEPTH_SLOPE:g} (depth grows like n), does "
         f"not hold when below (depth grows like log n or not at all); exact numbers, so no interval "
         "and no sampling: architectures that disagree give 'holds only when'",
    threshold=DEPTH_SLOPE, holds_when="above")
ALSO_PARALLEL = (  # the same claim in the other sources, quoted on the Methods page
    ("001_c88bba1d8530f5f5.txt", SOURCE_001,
     "RNNs are not suitable for parallelizing or stacking up with other models"),
    ("003_db39b3b7a81f09a2.txt", SOURCE_003,
     "their computation is sequential since each step in the sequence requires a hidden state computed "
     "from the previous step"),
)
CLAIMS = {"memory": MEMORY, "parallelism": PARALLEL}
CLAIM = MEMORY  # the headline claim: the contents entry and the title page


@dataclass(frozen=True)
class Config:
    hidden: int = 16
    steps: int = 1000  # T of the gradient measurement: the longest lag measured
    batch: int = 1  # one sequence a network: the networks are the sample
    seeds: int = 10  # networks per architecture
    input_scale: float = 1.0
    lengths: tuple[int, ...] = (16, 64, 256, 1024)  # n of the depth and timing measurements
    repeats: int = 3  # timings: best of this many
    executor: str = "process"
    seed: int = 0
    claim: ClassVar[protocol.Claim] = MEMORY

    def __post_init__(self):
        check_fields(self, choices={"executor": ("serial", "process", "dask")},
                     positive=("lengths", "repeats"), non_negative=("input_scale",))


QUICK = Config()
FULL = Config(hidden=64, steps=10_000, batch=2, seeds=20, lengths=(16, 64, 256, 1024, 4096, 16384), repeats=5)


# ---------------------------------------------------------------- 1. memory


def decision_lags(steps: int) -> list[int]:
    """The lags the memory claim is decided at: 1,000 and 10,000 where T reaches them; T itself in
    shorter (test) runs, which then ask whether the gradient reaches the end of the sequence."""
    return sorted({min(lag, steps) for lag in LAGS if lag <= steps} or {steps})


def profile_lags(steps: int) -> list[int]:
    """Lags at which each network's profile is kept: about 40, evenly spaced in log lag, and the decision lags."""
    grid = np.unique(np.round(np.geomspace(1, steps, 40)).astype(int))
    return sorted({int(v) for v in grid} | set(decision_lags(steps)))


def memory_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """One network's gradient profile relative to lag 1, its rate and horizon (importable by workers)."""
    seeds = protocol.network_seeds(int(point["seed"]))
    steps = int(point["seq_len"])
    cell = ARCHITECTURES[point["architecture"]].build(int(point["hidden"]), protocol.INPUTS, seeds["cell"])
    xs = protocol.study_inputs(steps, int(point["batch"]), protocol.INPUTS, float(point["input_scale"]),
                               seeds["inputs"])
    h0, xs = protocol.warm_start(cell, xs, seed=seeds["state"])
    flow = gf.gradient_flow(cell, xs, h0=h0, seed=seeds["direction"], tol=protocol.NEUTRAL_BAND)
    horizon = flow.memory_horizon
    row = {"rate": flow.rate, "regime": flow.regime or "undefined",
           "horizon": float(horizon) if horizon is not None else np.inf, "state_size": cell.state_size}
    for lag in profile_lags(steps):
        row[f"lag_{lag}"] = float(flow.profile[lag] - flow.profile[1])  # ln of the norm relative to lag 1
    return row


def measure_memory(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per network (its seed, rate, horizon, kept gradient at each decision lag), and the
    tidy profiles behind the figure (one row per network and kept lag)."""
    grid = {"architecture": list(ARCHITECTURES), "hidden": [cfg.hidden], "seq_len": [cfg.steps],
            "batch": [cfg.batch], "input_scale": [cfg.input_scale]}
    frame = gf.sweep.run(grid, task=memory_task, seeds=range(cfg.seed, cfg.seed + cfg.seeds),
                         executor=cfg.executor, progress=sys.stderr.isatty())
    failed = frame.error.fillna("") != ""
    if failed.any():
        raise FloatingPointError(f"{int(failed.sum())} networks failed: {frame.error[failed].iloc[0]}")
    frame = frame.drop(columns=["error"])
    lag_columns = [f"lag_{lag}" for lag in profile_lags(cfg.steps)]
    profiles = frame.melt(id_vars=["architecture", "seed"], value_vars=lag_columns, var_name="lag",
                          value_name="log_relative_norm")
    profiles["lag"] = profiles.lag.str.removeprefix("lag_").astype(int)
    networks = frame.drop(columns=[c for c in lag_columns if int(c[4:]) not in decision_lags(cfg.steps)])
    for lag in decision_lags(cfg.steps):
        networks[f"keeps_{lag}"] = networks[f"lag_{lag}"] >= math.log(KEEP)
    return networks.reset_index(drop=True), profiles


def memory_verdict(networks: pd.DataFrame, lags: list[int]) -> tuple[protocol.Verdict, dict]:
    """The memory claim per architecture (and lag) from the share keeping its gradient, then combined."""
    per_cell = int(networks.groupby("architecture").size().min())
    cells = {}
    for arch, g in networks.groupby("architecture", sort=False):
        for lag in lags:
            name = f"architecture = {arch}" if len(lags) == 1 else f"{arch} at lag {lag}"
            cells[name] = protocol.decide_claim(MEMORY, protocol.success_interval(g[f"keeps_{lag}"]),
                                                per_cell=per_cell)
    pooled = np.concatenate([networks[f"keeps_{lag}"].to_numpy(bool) for lag in lags])
    overall = protocol.decide_claim(MEMORY, protocol.success_interval(pooled), per_cell=per_cell)
    if overall.word == protocol.INCONCLUSIVE and overall.condition:
        return overall, cells
    return protocol.combine(cells, overall), cells


def memory_summary(networks: pd.DataFrame, lags: list[int], seed: int) -> pd.DataFrame:
    """Per architecture: mean rate (bootstrap), its regime against the neutral band, median horizon and
    kept gradient at each lag (median, bootstrap), and the share keeping it (Wilson)."""
    rows = []
    for arch, g in networks.groupby("architecture", sort=False):
        rate = protocol.bootstrap_interval(g.rate, seed=seed)
        row = dict(architecture=arch, networks=len(g), rate=rate.estimate, rate_low=rate.low,
                   rate_high=rate.high, rate_regime=_interval_regime(rate),
                   median_horizon=float(g.horizon.median()))
        for lag in lags:
            kept = protocol.bootstrap_interval(g[f"lag_{lag}"], np.median, seed=seed)
            share = protocol.success_interval(g[f"keeps_{lag}"])
            row.update({f"log_kept_{lag}": kept.estimate, f"log_kept_{lag}_low": kept.low,
                        f"log_kept_{lag}_high": kept.high, f"share_{lag}": share.estimate,
                        f"share_{lag}_low": share.low, f"share_{lag}_high": share.high})
        rows.append(row)
    return pd.DataFrame(rows)


def _interval_regime(iv: protocol.Interval) -> str:
    """"vanishing" / "exploding" when the whole interval lies beyond the neutral band, "neutral" when
    inside it, else "undecided"."""
    band = protocol.NEUTRAL_BAND
    if iv.high < -band:
        return "vanishing"
    if iv.low > band:
        return "exploding"
    if -band <= iv.low and iv.high <= band:
        return "neutral"
    return "undecided"


# ---------------------------------------------------------------- 2. parallelism


def sequence_models(hidden: int, seed: int) -> dict[tuple[str, str], gf.SequenceModel | int]:
    """Every architecture's forward pass as ``(architecture, method) -> what gives its depth``: the
    sequence model whose dependency graph `gradflow.path_lengths` reads, or for a scan the cell."""
    models: dict[tuple[str, str], Any] = {}
    for name, spec in ARCHITECTURES.items():
        cell = spec.build(hidden, protocol.INPUTS, seed)
        models[(name, LOOP)] = gf.recurrent(cell)
        if spec.linear:
            models[(name, SCAN)] = cell
    models[(ATTENTION, "attention")] = gf.self_attention(hidden, heads=1, inputs=protocol.INPUTS, seed=seed)
    return models


def measure_depth(cfg: Config) -> pd.DataFrame:
    """Sequential depth of each architecture's forward pass at every n (exact): the dependency graph's
    Kahn rounds for loops and attention, the doubling scan's combine rounds for scans."""
    rows = []
    for (name, method), model in sequence_models(cfg.hidden, cfg.seed).items():
        for n in cfg.lengths:
            depth = gf.scan_depth(n) if method == SCAN else gf.path_lengths(model, n).sequential_depth
            rows.append(dict(architecture=name, method=method, n=n, sequential_depth=depth))
    return pd.DataFrame(rows)


def depth_slopes(depth: pd.DataFrame) -> pd.Series:
    """Least-squares slope of ln depth against ln n, per (architecture, method)."""
    return pd.Series({key: float(np.polyfit(np.log(g.n), np.log(g.sequential_depth), 1)[0])
                      for key, g in depth.groupby(["architecture", "method"], sort=False)})


def fastest_forward(depth: pd.DataFrame) -> pd.DataFrame:
    """Per architecture, the forward pass of least depth: the scan where the cell has one."""
    best = depth.groupby(["architecture", "method"], sort=False).sequential_depth.max().reset_index()
    return best.loc[best.groupby("architecture", sort=False).sequential_depth.idxmin()]


def parallel_verdict(depth: pd.DataFrame) -> tuple[protocol.Verdict, dict]:
    """The parallelism claim per recurrent architecture from the exact depth slope of its shallowest
    forward pass, then combined.

    The slope is a property of the graph, not a sample: its "interval" is the point itself and
    ``min_networks`` is 1 (the protocol's n >= 10 guards sampled quantities).
    """
    slopes = depth_slopes(depth)
    points = depth.n.nunique()
    cells = {}
    for row in fastest_forward(depth).itertuples():
        if row.architecture not in ARCHITECTURES:
            continue  # attention is shown beside the recurrences, not decided
        s = slopes[(row.architecture, row.method)]
        cells[f"architecture = {row.architecture}"] = protocol.decide(
            (s, s), PARALLEL.threshold, holds_when="above", estimate=s, networks=points,
            quantity=PARALLEL.quantity, min_networks=1)
    estimates = np.array([v.estimate for v in cells.values()])
    overall = protocol.decide((estimates.min(), estimates.max()), PARALLEL.threshold, estimate=estimates.mean(),
                              networks=points, quantity=PARALLEL.quantity, min_networks=1)
    return protocol.combine(cells, overall), cells


def machine() -> dict[str, Any]:
    """What the timings were measured on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return dict(cpu=model, cores=os.cpu_count() or 1, load=os.getloadavg()[0], python=platform.python_version())


def cpu_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Best CPU time (process_time) of ``repeats`` calls: the work done, not the wait for a busy core."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def measure_times(cfg: Config) -> pd.DataFrame:
    """CPU seconds of the forward pass by loop (`gradflow.unroll`) and, for the linear cells, by
    associative scan (`gradflow.scan`), at every n; the scan's states must equal the loop's."""
    rows = []
    with threadpool_limits(1):
        for name in TIMED:
            spec = ARCHITECTURES[name]
            cell = spec.build(cfg.hidden, protocol.INPUTS, cfg.seed)
            for n in cfg.lengths:
                xs = gf.inputs.gaussian(n, cfg.batch, protocol.INPUTS, seed=cfg.seed)
                loop = gf.unroll(cell, xs)
                runs = {LOOP: (lambda cell=cell, xs=xs: gf.unroll(cell, xs), 0.0)}
                if spec.linear:
                    error = float(np.max(np.abs(gf.scan(cell, xs) - loop)) / max(1.0, np.max(np.abs(loop))))
                    if error > SCAN_TOL:
                        raise FloatingPointError(f"{name}: the scan's states differ from the loop's by {error:.2g}")
                    runs[SCAN] = (lambda cell=cell, xs=xs: gf.scan(cell, xs), error)
                for method, (fn, error) in runs.items():
                    rows.append(dict(architecture=name, method=method, n=n,
                                     cpu_seconds=cpu_seconds(fn, cfg.repeats), max_relative_difference=error))
    return pd.DataFrame(rows)


def speedups(times: pd.DataFrame) -> pd.DataFrame:
    """Loop CPU time over scan CPU time per linear architecture and n."""
    wide = times.pivot_table(index=["architecture", "n"], columns="method", values="cpu_seconds").dropna()
    return (wide[LOOP] / wide[SCAN]).rename("speedup").reset_index()


# ---------------------------------------------------------------- pages


def _iv(est: float, lo: float, hi: float, fmt: str = "+.3f") -> str:
    return f"{est:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _memory_figure(profiles: pd.DataFrame, summary: pd.DataFrame, lags: list[int], cfg: Config):
    """Left: median kept gradient against lag per architecture (nonlinear and linear recurrences in
    separate axes, at most 8 series each); right: the share keeping it at each decision lag."""
    groups = [("nonlinear RNNs", [a for a in ARCHITECTURES if not ARCHITECTURES[a].linear]),
              ("linear recurrences", [a for a in ARCHITECTURES if ARCHITECTURES[a].linear])]
    groups = [(title, archs) for title, archs in groups if archs]
    colours = dict(zip(ARCHITECTURES, PALETTE * 2, strict=False))
    fig, axes = plt.subplots(len(groups) + 1, 1, figsize=(8.27, 3.2 * (len(groups) + 1) + 1.5), squeeze=False)
    fig.subplots_adjust(left=0.2, right=0.72, top=0.96, bottom=0.12, hspace=0.5)
    for ax, (title, archs) in zip(axes[:-1, 0], groups, strict=True):
        for arch in archs:
            g = profiles[profiles.architecture == arch].groupby("lag").log_relative_norm
            med = g.median()
            ax.plot(med.index, med.to_numpy(), color=colours[arch], label=arch, linewidth=1.5)
            ax.fill_between(med.index, g.quantile(0.025), g.quantile(0.975), color=colours[arch], alpha=0.15,
                            linewidth=0)
        ax.axhline(math.log(KEEP), color="0.3", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", xlabel="lag k (steps back from the final state)",
               ylabel="ln ||g_k|| - ln ||g_1||", title=f"{_cap(title)}: median over networks, band 95%")
        ax.set_ylim(bottom=max(ax.get_ylim()[0], 3 * math.log(KEEP) - 5))
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    ax = axes[-1, 0]
    width = 0.8 / len(lags)
    archs = list(summary.architecture)
    for k, lag in enumerate(lags):
        y = np.arange(len(archs)) + (k - (len(lags) - 1) / 2) * width
        est = summary[f"share_{lag}"].to_numpy()
        err = [est - summary[f"share_{lag}_low"], summary[f"share_{lag}_high"] - est]
        ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, color=PALETTE[k], label=f"lag {lag:,}")
    ax.axvline(MEMORY.threshold, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_yticks(np.arange(len(archs)), archs)
    ax.invert_yaxis()
    ax.set(xlim=(-0.05, 1.05), xlabel=f"share of networks keeping >= {KEEP:g} of the lag-1 gradient",
           title="Networks keeping their gradient (Wilson 95%); dashed: the threshold")
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
        label = (f"{methods.pop()}: " + ", ".join(n.split(": ", 1)[1] for n in names)
                 if len(methods) == 1 and ": " in names[0] else ", ".join(names))
        merged[label] = frames[key]
    return merged


def _parallel_figure(depth: pd.DataFrame, times: pd.DataFrame, cfg: Config, host: dict):
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 9.5))
    fig.subplots_adjust(left=0.12, right=0.62, top=0.95, bottom=0.14, hspace=0.35)
    curves = depth_curves(depth)
    colours = palette(list(curves))
    for k, (label, g) in enumerate(curves.items()):
        ax1.plot(g.n, g.sequential_depth, color=colours[label], marker="os^Dv<>P"[k % 8],
                 label=textwrap.fill(label, 40))
    ax1.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="sequential depth",
            title="Forward pass: operations that must run one after another")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    colours = palette(list(dict.fromkeys(times.architecture)))
    for (arch, method), g in times.groupby(["architecture", "method"], sort=False):
        ax2.plot(g.n, g.cpu_seconds, color=colours[arch], marker="o" if method == LOOP else "s",
                 linestyle="-" if method == LOOP else "--", label=f"{arch} ({method})")
    ax2.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel=f"CPU seconds (best of {cfg.repeats})",
            title=f"Forward pass CPU time, batch {cfg.batch}, N = {cfg.hidden}, one thread")
    ax2.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)
    for ax in (ax1, ax2):
        ax.set_xticks(list(cfg.lengths), [str(n) for n in cfg.lengths])
        ax.minorticks_off()
    return fig


def parallel_sentence(decision: protocol.Verdict, depth: pd.DataFrame) -> str:
    """The parallelism verdict in words: exact depth slopes, grouped by how the forward pass runs."""
    slopes = depth_slopes(depth)
    best = fastest_forward(depth)
    groups: dict[str, list[str]] = {}
    for r in best.itertuples():
        groups.setdefault(f"{r.method} (slope {slopes[(r.architecture, r.method)]:.2f})", []).append(r.architecture)
    lengths = sorted(depth.n.unique())
    return (f"{decision.label}: the log-log slope of the shallowest forward pass's sequential depth against n "
            f"(exact, from n = {lengths[0]} to {lengths[-1]}) is " + "; ".join(
                f"{method} for {', '.join(archs)}" for method, archs in groups.items())
            + f", against the threshold {PARALLEL.threshold:g} (holds above).")


def _shares(r, lags: list[int], digits: str = ".0%") -> str:
    return ", ".join(f"{getattr(r, f'share_{lag}'):{digits}} [{getattr(r, f'share_{lag}_low'):{digits}}, "
                     f"{getattr(r, f'share_{lag}_high'):{digits}}]" for lag in lags)


def _parallel_facts(depth: pd.DataFrame, times: pd.DataFrame, cfg: Config) -> str:
    n = max(cfg.lengths)
    top = fastest_forward(depth[depth.n == n])
    speed = speedups(times)
    fast = speed[speed.n == n]
    return ("; ".join(f"{r.architecture}: depth {r.sequential_depth} at n = {n} ({r.method})"
                      for r in top.itertuples())
            + ". The scan took " + ", ".join(f"{r.speedup:.1f}x less CPU time than the loop for {r.architecture}"
                                             for r in fast.itertuples())
            + f" at n = {n}")


def run(cfg: Config, out: str) -> dict:
    from tqdm.auto import tqdm

    lags = decision_lags(cfg.steps)
    bar = tqdm(total=3, desc=STUDY, unit="part", disable=not sys.stderr.isatty(), leave=False)
    networks, profiles = measure_memory(cfg)
    bar.update()
    depth = measure_depth(cfg)
    bar.update()
    host = machine()
    times = measure_times(cfg)
    bar.update()
    bar.close()
    memory, memory_cells = memory_verdict(networks, lags)
    summary = memory_summary(networks, lags, cfg.seed)
    parallel, parallel_cells = parallel_verdict(depth)
    verdicts = {"memory": memory, "parallelism": parallel}
    os.makedirs(out, exist_ok=True)
    for name, frame in (("networks", networks), ("profiles", profiles), ("memory_summary", summary),
                        ("depth", depth), ("times", times), ("speedups", speedups(times)),
                        ("machine", pd.DataFrame([host]))):
        write_csv(os.path.join(out, f"{STUDY}_{name}.csv"), frame)

    lag_text = " and ".join(f"{lag:,}" for lag in lags)
    memory_finding = "; ".join(
        f"{r.architecture}: {_shares(r, lags)} keep it, rate {_iv(r.rate, r.rate_low, r.rate_high)} "
        f"({r.rate_regime})" for r in summary.itertuples())
    best = fastest_forward(depth).set_index("architecture")
    per_arch = pd.DataFrame({
        "architecture": summary.architecture,
        f"keeps at {lag_text} [95%]": [_shares(r, lags, ".2f") for r in summary.itertuples()],
        "rate [95%], nats/step": [_iv(r.rate, r.rate_low, r.rate_high) for r in summary.itertuples()],
        "band": summary.rate_regime,
        f"depth at n = {max(cfg.lengths)}": [f"{best.loc[a, 'sequential_depth']} ({best.loc[a, 'method']})"
                                             for a in summary.architecture],
        "n": summary.networks})
    sentences = {"memory": memory.sentence(), "parallelism": parallel_sentence(parallel, depth)}
    sentence = " ".join(f"{_cap(part)}: {text}" for part, text in sentences.items())
    configuration = (
        f"hidden N = {cfg.hidden} (complex modes for LRU and S4D), {protocol.INPUTS} inputs of std "
        f"{cfg.input_scale:g}, T = {cfg.steps} after {protocol.WARMUP} warm-up steps, batch {cfg.batch}, "
        f"{cfg.seeds} networks (seeds from {cfg.seed}) per architecture; depth and CPU times at n = "
        f"{', '.join(map(str, cfg.lengths))}; gradflow {gf.__version__}.")
    claims_page = [(f"{_cap(part)} ({c.source[:3]})",
                    f"{c.text} Quote: \u201c{c.quote}\u201d Quantity: {c.quantity}. Rule: {c.rule}; "
                    f"threshold {c.threshold:g} ({c.holds_when}).") for part, c in CLAIMS.items()]
    with paper_theme():
        pages = [
            table_page("The claims and their rules, set before the data", claims_page),
            table_page("Do linear recurrences answer the claims against RNNs?", [
                *((f"{_cap(part)} ({CLAIMS[part].source[:3]})", text) for part, text in sentences.items()),
                ("Configuration", configuration)],
                per_arch, "Per architecture (95% intervals: Wilson, bootstrap)", col_widths=(0.2, 0.22, 0.25, 0.1, 0.17, 0.06)),
            figure_page(_memory_figure(profiles, summary, lags, cfg), (
                f"{_cap(memory.label)}. {memory_finding}. Dashed: ln {KEEP:g}, gradflow's memory drop. Each "
                f"network: T = {cfg.steps}, {cfg.batch} sequence(s), norms relative to lag 1.")),
            figure_page(_parallel_figure(depth, times, cfg, host), (
                f"{_cap(parallel.label)} (exact). {_parallel_facts(depth, times, cfg)}. CPU seconds as measured "
                f"on {host['cpu']} ({host['cores']} cores, load average {host['load']:.1f}), one BLAS thread; "
                f"the scan's states equal the loop's to {SCAN_TOL:g} (relative).")),
            table_page("Methods", [
                ("Memory", "gradflow.gradient_flow back-propagates a loss at the final state (a fixed random "
                           "unit direction) through the unrolled network in log space; the kept gradient at "
                           "lag L is ln ||dL/dh_(T-L)|| - ln ||dL/dh_(T-1)|| (batch mean of log norms; a "
                           "complex state's norm is that of its real and imaginary parts together). "
                           "Initialisations: " + "; ".join(f"{a}: {s.init}" for a, s in ARCHITECTURES.items())
                           + "."),
                ("Depth", "Loops and attention: gradflow.path_lengths(model, n).sequential_depth, Kahn rounds "
                          "over the unrolled dependency graph (a loop over time is n deep whatever the cell). "
                          "Scans: gradflow.scan_depth(n) = ceil(log2 n) rounds of the doubling scan that "
                          "gradflow.scan runs. Parallel Newton-type solvers for nonlinear recurrences are not "
                          "measured."),
                ("Times", "time.process_time, best of the repeats, one BLAS thread: gradflow.unroll (one step "
                          "per position) against gradflow.scan (the cell's per-step affine map for all "
                          "positions at once, then the doubling scan). CPU seconds, not wall: the machine was "
                          "shared."),
                ("Same claim elsewhere", " ".join(f"{s} ({t}): \u201c{q}\u201d" for s, t, q in ALSO_PARALLEL)),
                *protocol.conventions()]),
        ]
        pdf = os.path.join(out, f"{STUDY}.pdf")
        label = "; ".join(f"{part}: {v.label}" for part, v in verdicts.items())
        title_verdict = (f"{label}. Share of all networks keeping their gradient at lag {lag_text}: "
                         f"{memory.numbers}; per part and architecture on the summary page.")
        write_pdf(pdf, pages, study=STUDY, config=cfg, claim=MEMORY.facts(), verdict=title_verdict,
                  title="gradflow: the recurrent revival, measured",
                  subject=f"Verdict: {label}", keywords=["linear recurrence", "state-space model", "scan",
                                                          "memory", "parallelism"])
    return {"verdict": label, "decision": memory, "claim": MEMORY, "verdicts": verdicts, "sentence": sentence,
            "cells": {"memory": memory_cells, "parallelism": parallel_cells}, "networks": networks,
            "summary": summary, "depth": depth, "times": times, "machine": host, "pdf": pdf}


def main(argv=None) -> dict:
    return study_main(argv, name=STUDY, doc=__doc__, quick=QUICK, full=FULL, run=run,
                      overrides=("hidden", "steps", "seeds"))


if __name__ == "__main__":
    main()
