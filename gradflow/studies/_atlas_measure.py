"""What the lyapunov_atlas study measures and how it summarises it: each network of a gain and input std
(its top Lyapunov exponent, gradient rate and where its trajectory settles), mean-field critical gains,
the per-gain table with bootstrap intervals and the edge of chaos where the mean top exponent crosses 0
(the study module decides, draws and writes the report)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.studies import _protocol as protocol

if TYPE_CHECKING:
    from gradflow.studies.lyapunov_atlas import Config

SETTLED = 1e-6  # rms change of the state below this: it has settled (fixed point or cycle)


def network(point: Mapping[str, Any]):
    """The network of a point, its measured inputs and its warmed-up initial state (the shared convention)."""
    seeds = protocol.network_seeds(int(point["seed"]))
    cell = gf.rnn(int(point["hidden"]), protocol.INPUTS, gain=float(point["gain"]), seed=seeds["cell"])
    xs = protocol.study_inputs(
        int(point["seq_len"]),
        int(point["batch"]),
        protocol.INPUTS,
        float(point["input_scale"]),
        seeds["inputs"],
    )
    h0, xs = protocol.warm_start(cell, xs, seed=seeds["state"])
    return cell, xs, h0, seeds


def settles_on(states: np.ndarray, driven: bool, longest_cycle: int = 20) -> str:
    """What the end of a trajectory ``(T + 1, batch, N)`` does: "fixed point", "cycle of period p",
    "input-driven" (a driven network: its state follows the inputs) or "wandering"."""
    if driven:
        return "input-driven"
    end = states[-1]
    for period in range(1, min(longest_cycle, len(states) - 1) + 1):
        if np.sqrt(np.mean((end - states[-1 - period]) ** 2)) < SETTLED:
            return "fixed point" if period == 1 else f"cycle of period {period}"
    return "wandering"


def network_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """One network's top Lyapunov exponent, measured gradient rate and where it settles (a sweep task)."""
    cell, xs, h0, seeds = network(point)
    T = xs.shape[0]
    spec = gf.lyapunov_spectrum(cell, xs, h0=h0, warmup=T // 5, seed=seeds["direction"])
    flow = gf.gradient_flow(cell, xs, h0=h0, seed=seeds["direction"], tol=protocol.NEUTRAL_BAND)
    states = gf.unroll(cell, xs, h0=h0)
    gain, scale = float(point["gain"]), float(point["input_scale"])
    return {
        "top_exponent": spec.top,
        "gradient_rate": flow.rate,
        "mean_field": gf.meanfield.rate(gain, input_var=scale**2),
        "kaplan_yorke": spec.kaplan_yorke_dimension,
        "entropy_rate": spec.entropy_rate,
        "positive": int(np.sum(spec.exponents > protocol.NEUTRAL_BAND)),
        "settles_on": settles_on(states, scale > 0),
        "state_rms": float(np.sqrt(np.mean(states[-1] ** 2))),
        "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(cell.params["weight_hh_l0"])))),
    }


def critical_gains(scales) -> dict[float, float]:
    """Mean-field critical gain per input std (each a slow root-find over Gaussian integrals: done once)."""
    return {
        float(s): gf.meanfield.critical_gain("tanh", input_var=float(s) ** 2) for s in sorted(set(scales))
    }


def measure(cfg: Config) -> pd.DataFrame:
    grid = {
        "gain": list(cfg.gains),
        "input_scale": list(cfg.input_scales),
        "hidden": [cfg.hidden],
        "seq_len": [cfg.steps],
        "batch": [cfg.batch],
    }
    frame = protocol.run_networks(grid, network_task, cfg)
    frame["measured_regime"] = frame.gradient_rate.map(protocol.regime)
    frame["edge_side"] = frame.mean_field.map(protocol.regime)  # vanishing below, exploding above the edge
    frame["counted"] = frame.edge_side != "neutral"
    frame["right"] = frame.measured_regime == frame.edge_side
    frame["critical_gain"] = frame.input_scale.map(critical_gains(cfg.input_scales))
    frame["ordered_above_edge"] = (frame.gain > frame.critical_gain) & (
        frame.top_exponent <= protocol.NEUTRAL_BAND
    )
    return frame


def crossing(gains: np.ndarray, values: np.ndarray) -> float:
    """The first gain where ``values`` turns from negative to non-negative (linear interpolation)."""
    for a, b, u, v in zip(gains[:-1], gains[1:], values[:-1], values[1:], strict=True):
        if u < 0 <= v:
            return float(a + (b - a) * (-u) / (v - u))
    return np.nan


def per_gain(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Mean top exponent and gradient rate per input std and gain, with bootstrap intervals over networks,
    and where the gain sits: "ordered" (interval below the neutral band), "chaotic" (above it) or
    "neutral" (touching it)."""
    rows = []
    for (scale, gain), g in frame.groupby(["input_scale", "gain"], sort=True):
        top = protocol.bootstrap_interval(g.top_exponent, seed=seed)
        rate = protocol.bootstrap_interval(g.gradient_rate, seed=seed)
        band = protocol.NEUTRAL_BAND
        phase = "ordered" if top.high < -band else "chaotic" if top.low > band else "neutral"
        rows.append(
            dict(
                input_scale=scale,
                gain=gain,
                networks=len(g),
                top_exponent=top.estimate,
                top_low=top.low,
                top_high=top.high,
                gradient_rate=rate.estimate,
                rate_low=rate.low,
                rate_high=rate.high,
                mean_field=float(g.mean_field.iloc[0]),
                phase=phase,
                ordered_above_edge=int(g.ordered_above_edge.sum()),
            )
        )
    return pd.DataFrame(rows)


def edge(
    frame: pd.DataFrame,
    gains_table: pd.DataFrame,
    scale: float,
    seed: int,
    resamples: int = protocol.RESAMPLES,
) -> dict[str, Any]:
    """The edge of chaos at one input std: where the mean top exponent crosses 0, with a bootstrap interval
    over networks; an edge only when an ordered gain is followed by a chaotic one (neutral gains between)."""
    table = gains_table[gains_table.input_scale == scale].sort_values("gain")
    gains = table.gain.to_numpy()
    phases = table.phase.tolist()
    # The first ordered gain followed, past neutral gains only, by a chaotic one ("oc", "onnc" in the
    # phases' initials): the edge lies between them, and only there.
    transition = re.search("on*c", "".join(p[0] for p in phases))
    located = transition is not None
    span = slice(*transition.span()) if transition is not None else slice(0, len(gains))
    estimate = crossing(gains[span], table.top_exponent.to_numpy()[span])
    rng = np.random.default_rng(seed)
    groups = [
        frame[(frame.input_scale == scale) & (frame.gain == g)].top_exponent.to_numpy() for g in gains[span]
    ]
    draws = np.array([[rng.choice(v, v.size).mean() for v in groups] for _ in range(resamples)])
    edges = np.array([crossing(gains[span], d) for d in draws])
    found = np.isfinite(edges)
    low, high = np.quantile(edges[found], [0.025, 0.975]) if found.mean() >= 0.95 else (np.nan, np.nan)
    reordered = [
        float(g)
        for g, p in zip(gains, phases, strict=True)
        if p == "ordered" and np.isfinite(estimate) and g > estimate
    ]
    return dict(
        input_scale=scale,
        located=bool(located and np.isfinite(low)),
        edge=estimate,
        edge_low=float(low),
        edge_high=float(high),
        found_share=float(found.mean()),
        mean_field=float(frame[frame.input_scale == scale].critical_gain.iloc[0]),
        ordered_again=reordered,
    )
