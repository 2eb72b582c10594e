"""What the recurrent_revival study measures: each network's gradient profile, each forward pass's
depth, the scan's and the loop's CPU times (the study module decides and draws; the parameter
sensitivity is measured in `_revival_sensitivity`)."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import gradflow as gf
from gradflow.studies import _protocol as protocol

KEEP = 1e-3  # "keeps its gradient": at least this fraction of the lag-1 norm (gradflow's memory drop)
LAGS = (1_000, 10_000)  # "not 1000s or 10,000s"


@dataclass(frozen=True)
class Architecture:
    """One architecture of the study: how to build a network, and whether it is linear in its state."""

    build: Callable[[int, int, int], gf.Cell]  # (hidden, inputs, seed) -> cell at its standard init
    linear: bool  # linear in the state: its forward pass is an associative scan
    init: str  # the standard initialisation, in words


ARCHITECTURES: dict[str, Architecture] = {
    "RNN tanh": Architecture(
        lambda n, d, s: gf.rnn(n, d, init="pytorch", seed=s),
        False,
        "PyTorch's default uniform(-1/sqrt(N), 1/sqrt(N))",
    ),
    "LSTM": Architecture(
        lambda n, d, s: gf.lstm(n, d, init="pytorch", forget_bias=1.0, seed=s),
        False,
        "PyTorch's default, forget-gate bias +1",
    ),
    "GRU": Architecture(lambda n, d, s: gf.gru(n, d, init="pytorch", seed=s), False, "PyTorch's default"),
    "LRU": Architecture(
        lambda n, d, s: gf.lru(n, d, seed=s),
        True,
        "the reference ring |lambda| in [0, 1], gamma normalisation",
    ),
    "LRU, ring [0.9, 0.999]": Architecture(
        lambda n, d, s: gf.lru(n, d, r_min=0.9, r_max=0.999, seed=s),
        True,
        "|lambda| in [0.9, 0.999], gamma normalisation",
    ),
    "S4D": Architecture(
        lambda n, d, s: gf.s4d(n, d, seed=s),
        True,
        "S4D-Lin A_n = -1/2 + i pi n, dt log-uniform in [1e-3, 1e-1]",
    ),
    "minGRU": Architecture(lambda n, d, s: gf.mingru(n, d, seed=s), True, "PyTorch's nn.Linear default"),
    "minLSTM": Architecture(lambda n, d, s: gf.minlstm(n, d, seed=s), True, "PyTorch's nn.Linear default"),
    # Mamba's width follows its input (d_inner = 2 d_model); hidden does not apply to it.
    "Mamba": Architecture(
        lambda n, d, s: gf.mamba(d, seed=s),
        True,
        "mamba_ssm's: A_log = log(1..16), dt log-uniform in [1e-3, 1e-1], expand 2, d_conv 4",
    ),
}
NONLINEAR = tuple(a for a, spec in ARCHITECTURES.items() if not spec.linear)
TIMED = ("LSTM", "LRU", "S4D", "minGRU", "minLSTM", "Mamba")  # the second LRU ring times as the first
LOOP, SCAN = "loop", "scan"
ATTENTION = "self-attention (1 layer)"
SCAN_TOL = 1e-10  # the scan's states against the loop's, relative to the largest state

# ---------------------------------------------------------------- 1. memory


def decision_lags(steps: int) -> list[int]:
    """The lags the memory claim is decided at: 1,000 and 10,000 where T reaches them; T itself in
    shorter (test) runs, which then ask whether the gradient reaches the end of the sequence."""
    return sorted({min(lag, steps) for lag in LAGS if lag <= steps} or {steps})


def profile_lags(steps: int) -> list[int]:
    """Lags at which each network's profile is kept: about 40, evenly spaced in log lag, and the
    decision lags."""
    grid = np.unique(np.round(np.geomspace(1, steps, 40)).astype(int))
    return sorted({int(v) for v in grid} | set(decision_lags(steps)))


def memory_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """One network's gradient profile relative to lag 1, its rate and horizon (importable by workers)."""
    seeds = protocol.network_seeds(int(point["seed"]))
    steps = int(point["seq_len"])
    cell = ARCHITECTURES[point["architecture"]].build(int(point["hidden"]), protocol.INPUTS, seeds["cell"])
    xs = protocol.study_inputs(
        steps, int(point["batch"]), protocol.INPUTS, float(point["input_scale"]), seeds["inputs"]
    )
    h0, xs = protocol.warm_start(cell, xs, seed=seeds["state"])
    flow = gf.gradient_flow(cell, xs, h0=h0, seed=seeds["direction"], tol=protocol.NEUTRAL_BAND)
    horizon = flow.memory_horizon
    row = {
        "rate": flow.rate,
        "regime": flow.regime or "undefined",
        "horizon": float(horizon) if horizon is not None else np.inf,
        "state_size": cell.state_size,
    }
    for lag in profile_lags(steps):
        row[f"lag_{lag}"] = float(flow.profile[lag] - flow.profile[1])  # ln of the norm relative to lag 1
    return row


def measure_memory(cfg: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per network (its seed, rate, horizon, kept gradient at each decision lag), and the
    tidy profiles behind the figure (one row per network and kept lag)."""
    grid = {
        "architecture": list(ARCHITECTURES),
        "hidden": [cfg.hidden],
        "seq_len": [cfg.steps],
        "batch": [cfg.batch],
        "input_scale": [cfg.input_scale],
    }
    frame = protocol.run_networks(grid, memory_task, cfg)
    lag_columns = [f"lag_{lag}" for lag in profile_lags(cfg.steps)]
    profiles = frame.melt(
        id_vars=["architecture", "seed"],
        value_vars=lag_columns,
        var_name="lag",
        value_name="log_relative_norm",
    )
    profiles["lag"] = profiles.lag.str.removeprefix("lag_").astype(int)
    networks = frame.drop(columns=[c for c in lag_columns if int(c[4:]) not in decision_lags(cfg.steps)])
    for lag in decision_lags(cfg.steps):
        networks[f"keeps_{lag}"] = networks[f"lag_{lag}"] >= math.log(KEEP)
    return networks.reset_index(drop=True), profiles


def memory_summary(networks: pd.DataFrame, lags: list[int], seed: int) -> pd.DataFrame:
    """Per architecture: mean rate (bootstrap), its regime against the neutral band, median horizon and
    kept gradient at each lag (median, bootstrap), and the share keeping it (Wilson)."""
    rows = []
    for arch, g in networks.groupby("architecture", sort=False):
        rate = protocol.bootstrap_interval(g.rate, seed=seed)
        row = dict(
            architecture=arch,
            networks=len(g),
            rate=rate.estimate,
            rate_low=rate.low,
            rate_high=rate.high,
            rate_regime=_interval_regime(rate),
            median_horizon=float(g.horizon.median()),
        )
        for lag in lags:
            kept = protocol.bootstrap_interval(g[f"lag_{lag}"], np.median, seed=seed)
            share = protocol.success_interval(g[f"keeps_{lag}"])
            row.update(
                {
                    f"log_kept_{lag}": kept.estimate,
                    f"log_kept_{lag}_low": kept.low,
                    f"log_kept_{lag}_high": kept.high,
                    f"share_{lag}": share.estimate,
                    f"share_{lag}_low": share.low,
                    f"share_{lag}_high": share.high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _interval_regime(iv: protocol.Interval) -> str:
    """ "vanishing" / "exploding" when the whole interval lies beyond the neutral band, "neutral" when
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


def sequence_models(hidden: int, seed: int) -> dict[tuple[str, str], gf.SequenceModel]:
    """Every architecture's forward pass as ``(architecture, method) -> its sequence model``, whose
    dependency graph `gradflow.path_lengths` reads: a loop over time, and for the cells linear in
    their state also the doubling scan (``gradflow.recurrent(cell, scan=True)``)."""
    models: dict[tuple[str, str], gf.SequenceModel] = {}
    for name, spec in ARCHITECTURES.items():
        cell = spec.build(hidden, protocol.INPUTS, seed)
        models[(name, LOOP)] = gf.recurrent(cell)
        if spec.linear:
            models[(name, SCAN)] = gf.recurrent(cell, scan=True)
    models[(ATTENTION, "attention")] = gf.self_attention(hidden, heads=1, inputs=protocol.INPUTS, seed=seed)
    return models


def measure_depth(cfg: Any) -> pd.DataFrame:
    """Sequential depth of each architecture's forward pass at every n (exact): Kahn rounds over the
    dependency graph of the loop, the scan or the attention layer."""
    rows = []
    for (name, method), model in sequence_models(cfg.hidden, cfg.seed).items():
        for n in cfg.lengths:
            rows.append(
                dict(
                    architecture=name,
                    method=method,
                    n=n,
                    sequential_depth=gf.path_lengths(model, n).sequential_depth,
                )
            )
    return pd.DataFrame(rows)


def depth_slopes(depth: pd.DataFrame) -> pd.Series:
    """Least-squares slope of ln depth against ln n, per (architecture, method)."""
    return pd.Series(
        {
            key: float(np.polyfit(np.log(g.n), np.log(g.sequential_depth), 1)[0])
            for key, g in depth.groupby(["architecture", "method"], sort=False)
        }
    )


def fastest_forward(depth: pd.DataFrame) -> pd.DataFrame:
    """Per architecture, the forward pass of least depth: the scan where the cell has one."""
    best = depth.groupby(["architecture", "method"], sort=False).sequential_depth.max().reset_index()
    return best.loc[best.groupby("architecture", sort=False).sequential_depth.idxmin()]


def machine() -> dict[str, Any]:
    """What the timings were measured on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
            model = names[0] if names else model
    except OSError:
        pass
    return dict(
        cpu=model, cores=os.cpu_count() or 1, load=os.getloadavg()[0], python=platform.python_version()
    )


def cpu_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Best CPU time (process_time) of ``repeats`` calls: the work done, not the wait for a busy core."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def measure_times(cfg: Any) -> pd.DataFrame:
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
                        raise FloatingPointError(
                            f"{name}: the scan's states differ from the loop's by {error:.2g}"
                        )
                    runs[SCAN] = (lambda cell=cell, xs=xs: gf.scan(cell, xs), error)
                for method, (fn, error) in runs.items():
                    rows.append(
                        dict(
                            architecture=name,
                            method=method,
                            n=n,
                            cpu_seconds=cpu_seconds(fn, cfg.repeats),
                            max_relative_difference=error,
                        )
                    )
    return pd.DataFrame(rows)


def speedups(times: pd.DataFrame) -> pd.DataFrame:
    """Loop CPU time over scan CPU time per linear architecture and n."""
    wide = times.pivot_table(index=["architecture", "n"], columns="method", values="cpu_seconds").dropna()
    return (wide[LOOP] / wide[SCAN]).rename("speedup").reset_index()
