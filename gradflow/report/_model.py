"""A report on one model: the gradient of the output it reads, by layer, direction and state part,
beside the random-direction measurement; spectra, every predictor, the Lyapunov spectrum and
fixed points.

This is what ``gradflow analyze`` writes. Every figure's data lands in a CSV beside the PDF.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from ..cells._cells import Cell
from ..cells._linearisation import linearisation
from ..core import inputs as _inputs
from ..core._files import write_csv
from ..core._plot import unit_circle
from ..core._registry import cell_kind, find_cell_kind
from ..core._validation import check_choice, check_finite_float, check_positive_int, check_seed
from ..engine._engine import check_cell, check_sequence, unboxed
from ..measure._flow import (
    MEMORY_DROP,
    GradientFlow,
    directional_sweep,
    fit_profile,
    fit_rate,
    gradient_flow,
    mean_log_profile,
)
from ..measure._lyapunov import lyapunov_spectrum
from ..models._io import Model
from ..prediction._predict import compare, predict
from ..prediction._spectral import fixed_points
from ._pdf import figure_page, paper_theme, table_page, write_pdf

_SAFE = str.maketrans({c: "_" for c in " /\\:*?\"<>|"})
BOOTSTRAP_DRAWS = 1000  # resamples of the batch's sequences behind each 95% interval
MAX_SERIES = 8  # lines per axes in every figure
READOUTS = ("last", "sum")  # the head's output at the last step, or summed over every step


def _blocks(cell: Cell) -> list[tuple[int, str, np.ndarray]]:
    """``(layer, gate, square recurrent block)`` of a built-in cell, one per gate. With a
    projection (``h = W_hr m``) a gate reads ``W_hh,gate W_hr m``: the block is that product."""
    layers = cell.config.get("layers", 1)
    gates = cell_kind(cell.kind).gates or ("",)
    out = []
    for l in range(layers):
        W = cell.params[f"weight_hh_l{l}"]
        n = W.shape[0] // len(gates)
        hr = cell.params.get(f"weight_hr_l{l}")
        out += [(l, g, W[i * n:(i + 1) * n] if hr is None else W[i * n:(i + 1) * n] @ hr)
                for i, g in enumerate(gates)]
    return out


def spectra(cell: Cell) -> pd.DataFrame:
    """Eigenvalues and singular values of every recurrent block, tidy: one row per (block, index)."""
    rows = []
    for layer, gate, W in _blocks(cell):
        eig = scipy.linalg.eigvals(W)
        eig = eig[np.argsort(-np.abs(eig), kind="stable")]
        sv = scipy.linalg.svdvals(W)
        rows.append(pd.DataFrame({"layer": layer, "gate": gate or "-", "index": np.arange(len(eig)),
                                  "eig_real": eig.real, "eig_imag": eig.imag, "eig_abs": np.abs(eig),
                                  "singular_value": sv}))
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------ measurement helpers


def readout_flow(cell: Cell, xs: np.ndarray, directions: np.ndarray, fit_from: int,
                 label: str = "model readout") -> GradientFlow:
    """`GradientFlow` of the outputs ``y_T = directions @ state_T``: root sum of squares over
    the outputs of ``ln ||d y_T / d state_{T-k}||`` (a single output: its gradient's norm)."""
    xs, h0 = check_sequence(cell, xs, None)
    state, components, probes, inputs = directional_sweep(cell, xs, h0, directions)
    lags = np.arange(xs.shape[0] + 1)
    log_norms = state[::-1].copy()
    return GradientFlow(cell_name=cell.name, lags=lags, log_norms=log_norms,
                        components={k: v[::-1].copy() for k, v in components.items()},
                        gates={k: v[::-1].copy() for k, v in probes.items()},
                        input_log_norms=inputs[::-1].copy(), loss=label,
                        fit=fit_rate(lags, fit_profile(log_norms, fit_from), fit_from))


def summed_readout_flow(cell: Cell, xs: np.ndarray, directions: np.ndarray, fit_from: int) -> GradientFlow:
    """`readout_flow` of the outputs summed over every step, ``sum_t directions @ state_t``
    (a sequence model's loss reads every output): ln ||d (sum_t y_t) / d state_{T-k}||.

    The cell is augmented with an accumulator ``a_t = a_{t-1} + m_t directions @ state_{t-1}``
    and the loss is ``a_T + directions @ state_T``, so one reverse pass carries the outputs of
    steps 1..T; ``m_t`` (0 at the first step, 1 after) is an extra input held constant, so the
    initial state's own output does not count. The whole-state norms are recombined from the
    state's parts (``h``, ``c``), so the accumulator is left out of them.
    """
    import autograd.numpy as anp
    from scipy.special import logsumexp

    S, K, D = cell.state_size, len(directions), cell.input_size

    def step(p, state, x):
        h = state[:, :S]
        counts = unboxed(x)[:, D:]  # the mask m_t, outside the derivative
        return anp.concatenate([cell.step(p, h, x[:, :D]), state[:, S:] + counts * (h @ directions.T)],
                               axis=1)

    augmented = Cell(step, cell.params, S + K, D + 1, components=cell.components, name=cell.name)
    xs, _ = check_sequence(cell, xs, None)
    mask = np.ones((*xs.shape[:2], 1))
    mask[0] = 0.0
    xs = np.concatenate([xs, mask], axis=2)
    loss_rows = np.hstack([directions, np.eye(K)])
    flow = readout_flow(augmented, xs, loss_rows, fit_from, label="model readout summed over steps")
    parts = np.stack([v for k, v in flow.components.items() if "." not in k])
    log_norms = 0.5 * logsumexp(2.0 * parts, axis=0)
    return dataclasses.replace(flow, log_norms=log_norms,
                               fit=fit_rate(flow.lags, fit_profile(log_norms, fit_from), fit_from))


def choose_fit_start(lags: np.ndarray, profile: np.ndarray, earliest: int = 0) -> int:
    """First lag of the rate fit, from the data: the earliest candidate start (0, 2, 5, 10, 20,
    30, 40 or 50% of T, not before ``earliest``) whose fitted rate agrees with the fit over the
    back half of the lags (within twice its standard error, 2% of it, or 0.001 nats/step):
    the transient before it is skipped, nothing after it is."""
    T = int(lags[-1])
    half = max(earliest, T // 2)
    if T - earliest < 4 or not np.all(np.isfinite(profile[earliest:])):
        return min(earliest, max(T - 1, 0))
    tail = fit_rate(lags, profile, half)
    if not np.isfinite(tail.rate):
        return earliest
    tol = max(2 * tail.stderr if np.isfinite(tail.stderr) else 0.0, 0.02 * abs(tail.rate), 1e-3)
    for frac in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4):
        start = max(earliest, round(frac * T))
        if T - start < 4:
            break
        if abs(fit_rate(lags, profile, start).rate - tail.rate) <= tol:
            return start
    return half


def first_finite_lag(profile: np.ndarray) -> int:
    finite = np.flatnonzero(np.isfinite(profile))
    return int(finite[0]) if finite.size else len(profile) - 1


def bootstrap_interval(lags: np.ndarray, log_norms: np.ndarray, start: int, seed: int,
                       draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float]:
    """95% percentile interval of the fitted rate, resampling the batch's sequences with
    replacement (``draws`` times). NaN for a batch of one."""
    y = log_norms[start:]
    alive = np.all(np.isfinite(y), axis=0)
    y = y[:, alive]
    B = y.shape[1]
    if B < 2 or len(y) < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, B, size=(draws, B))
    counts = np.stack([np.bincount(row, minlength=B) for row in picks])
    profiles = counts @ y.T / B  # (draws, lags): each resample's batch-mean profile
    x = lags[start:] - lags[start:].mean()
    slopes = profiles @ x / np.sum(x**2)
    lo, hi = np.percentile(slopes, [2.5, 97.5])
    return float(lo), float(hi)


def horizon_of(profile: np.ndarray) -> int | None:
    """First lag at which the profile has fallen by `MEMORY_DROP` from its first finite value."""
    ref = first_finite_lag(profile)
    if not np.isfinite(profile[ref]):
        return 0
    hit = np.flatnonzero(profile[ref:] - profile[ref] <= np.log(MEMORY_DROP))
    return int(ref + hit[0]) if hit.size else None


def _parts(cell: Cell) -> list[tuple[int, str, str]]:
    """``(layer, part, component key)`` for every part of every layer of a built-in cell."""
    layers = cell.config.get("layers", 1)
    parts = [p for p, _ in cell_kind(cell.kind).parts]
    return [(l, p, p if layers == 1 else f"l{l}.{p}") for l in range(layers) for p in parts]


def _as_model(model) -> Model:
    if isinstance(model, Model):
        return model
    cell = check_cell(model)
    if find_cell_kind(cell.kind) is None:
        raise ValueError(f"cell must be a built-in rnn, lstm or gru cell to be analysed; got kind "
                         f"{cell.kind!r}")
    cfg = cell.config
    return Model(cell.name, cell.kind, {"forward": cell}, None, cfg.get("layers", 1), cfg["hidden"],
                 int(cfg.get("proj_size", 0) or 0), False, False, (), "a gradflow cell")


# ------------------------------------------------------------------ the report


def model_report(model: Model | Cell, xs=None, out: str | os.PathLike = "reports", *,
                 name: str | None = None, seed: int = 0, exponents: int = 16, source: str = "",
                 command: str = "", batch_first: bool | None = None, predictors: bool = True,
                 steps: int = 500, batch: int = 4, input_scale: float = 1.0,
                 inputs_label: str | None = None, readout: str = "last",
                 progress: bool = False) -> dict[str, Any]:
    """Write ``<name>.pdf`` and its CSVs: how gradients flow through a model on its own inputs.

    Parameters
    ----------
    model : Model or Cell
        `gf.from_torch` / `gf.from_keras` / `gf.load` / `gf.lstm` ... A model with a head is
        measured through it: the gradient of the output it reads at the last step.
    xs : array, shape (T, batch, inputs), optional
        The inputs the model is driven with (``(batch, T, inputs)`` if ``batch_first``, which
        defaults to the model's own setting). None: synthetic Gaussian inputs
        (``steps``, ``batch``, ``input_scale``, seeded by ``seed``), and the verdict says so.
    out : path
        Folder for ``<name>.pdf`` and ``<name>_{summary,rates,predictors,flow,spectra,lyapunov,
        fixed_points,fixed_point_eigenvalues}.csv``.
    name : str, optional
        File stem; default: the model's name.
    seed : int
        Seed of synthetic inputs, the random loss direction, the predictors' probes, the
        Lyapunov block and the bootstrap.
    exponents : int
        How many of the largest Lyapunov exponents to compute.
    source, command : str
        Where the weights came from and the command that made the report, for the title page.
    predictors : bool
        Run `gf.predict` (its moment maps dominate the cost on large cells).
    inputs_label : str, optional
        What the inputs are, for the verdict (e.g. the file they came from).
    readout : {"last", "sum"}
        Measure the head's output at the last step, or summed over every step (a model whose
        loss reads the whole output sequence).
    progress : bool
        A progress bar with an ETA over the stages.

    Returns
    -------
    dict
        ``verdict``, ``pdf``, ``rates`` (the table of rates by cell, layer and part), and per cell
        (``flows``, ``readouts``, ``predictions``, ``lyapunov``, ``fixed_points``); ``flow``,
        ``prediction``, ``lyapunov``, ``fixed_points`` of the first cell; ``tables``: the data
        frames written as CSV, by name.

    Examples
    --------
    >>> import tempfile
    >>> import gradflow as gf
    >>> from gradflow.report import model_report
    >>> cell = gf.gru(8, 2, seed=0)
    >>> result = model_report(cell, gf.inputs.gaussian(60, 2, 2), tempfile.mkdtemp(), exponents=4)
    >>> summary = result["tables"]["summary"].set_index("quantity").value
    >>> summary["measured regime"] == result["flow"].regime
    True
    """
    from tqdm.auto import tqdm

    model = _as_model(model)
    seed = check_seed(seed)
    readout = check_choice("readout", readout, READOUTS)
    first = next(iter(model.cells.values()))
    synthetic = xs is None
    if synthetic:
        steps = check_positive_int("steps", steps, minimum=2)
        input_scale = check_finite_float("input_scale", input_scale, minimum=0.0)
        xs = _inputs.gaussian(steps, check_positive_int("batch", batch), first.input_size,
                              scale=input_scale, seed=seed)
        inputs_label = (f"synthetic Gaussian inputs N(0, {input_scale:g}²) - no inputs were given, "
                        f"so these rates are not the model's on its own data")
    else:
        xs = model.time_major(xs, batch_first)
        inputs_label = inputs_label or "the inputs given"
    xs, _ = check_sequence(first, xs, None)
    if xs.shape[0] < 2:
        raise ValueError(f"xs must have at least 2 steps; got shape {xs.shape}")
    exponents = check_positive_int("exponents", exponents)
    stem = (name or model.name).translate(_SAFE)
    T, B, _ = xs.shape
    cell_inputs = model.cell_inputs(xs)
    stages = ["gradient flow"] + (["predictors"] if predictors else []) + ["Lyapunov spectrum",
                                                                          "fixed points"]
    per_cell: dict[str, dict[str, Any]] = {}
    rate_rows = []
    bar = tqdm(total=len(stages) * len(model.cells) + 1, desc="analyze", unit="stage",
               disable=not progress, leave=False)
    for key, cell in model.cells.items():
        xc = cell_inputs[key]
        res: dict[str, Any] = {"inputs": xc}
        bar.set_postfix_str(f"{key}: gradient flow")
        flow, read, start, rows = _measure_cell(model, key, xc, seed, readout)
        res.update(flow=flow, readout=read, fit_from=start)
        rate_rows += rows
        bar.update()
        if predictors:
            bar.set_postfix_str(f"{key}: predictors")
            res["prediction"] = predict(cell, xc, seed=seed)
            res["table"] = compare(res["prediction"], flow)
            bar.update()
        bar.set_postfix_str(f"{key}: Lyapunov spectrum")
        res["spectra"] = spectra(cell)
        res["lyapunov"] = lyapunov_spectrum(cell, xc, k=min(exponents, cell.state_size),
                                            warmup=min(100, T // 5), seed=seed)
        bar.update()
        bar.set_postfix_str(f"{key}: fixed points")
        x_mean = xc.reshape(-1, xc.shape[2]).mean(axis=0)
        states_start = np.random.default_rng(seed).uniform(-1, 1, (6, cell.state_size))
        res["fixed_points"] = fixed_points(cell, x_mean, np.vstack([np.zeros(cell.state_size),
                                                                    states_start]))
        bar.update()
        per_cell[key] = res
    rates = pd.DataFrame(rate_rows)
    # The headline: the cell the head reads (the top forward cell), else the first.
    main_key = next((k for k in per_cell if per_cell[k]["readout"] is not None), next(iter(per_cell)))
    main = per_cell[main_key]
    measured = main["readout"] or main["flow"]
    verdict = _verdict(model, main, rates[rates.cell.isin([main_key])] if not model.bidirectional
                       else rates, measured, inputs_label)
    summary = _summary_frame(model, main_key, main, measured, xs, inputs_label)
    tables = {"summary": summary, "rates": rates}
    flows = [per_cell[k]["flow"].to_frame().assign(cell=k, measure="random direction")
             for k in per_cell]
    flows += [per_cell[k]["readout"].to_frame().assign(cell=k, measure="readout")
              for k in per_cell if per_cell[k]["readout"] is not None]
    tables["flow"] = pd.concat(flows, ignore_index=True)
    if predictors:
        tables["predictors"] = pd.concat([per_cell[k]["table"].assign(cell=k) for k in per_cell],
                                         ignore_index=True)
    tables["spectra"] = pd.concat([per_cell[k]["spectra"].assign(cell=k) for k in per_cell],
                                  ignore_index=True)
    tables["lyapunov"] = pd.concat([per_cell[k]["lyapunov"].to_frame().assign(cell=k)
                                    for k in per_cell], ignore_index=True)
    fixed, fixed_eigs = _fixed_frames(per_cell)
    tables["fixed_points"], tables["fixed_point_eigenvalues"] = fixed, fixed_eigs
    os.makedirs(out, exist_ok=True)
    for key, frame in tables.items():
        write_csv(os.path.join(out, f"{stem}_{key}.csv"), frame)

    config = {"model": model.name, "kind": model.kind, "layers": model.layers, "hidden": model.hidden,
              "projection": model.proj_size or "none", "bidirectional": model.bidirectional,
              "head": model.head.name if model.head is not None else "none",
              "ignored keys": ", ".join(model.ignored) or "none", "inputs": inputs_label,
              "steps": T, "batch": B, "input mean": float(xs.mean()), "input std": float(xs.std()),
              "exponents": exponents, "predictors": predictors, "seed": seed}
    with paper_theme():
        pages = _summary_pages(model, verdict, summary, rates, per_cell, predictors)
        for key, res in per_cell.items():
            cell = model.cells[key]
            title = model.name if key == "forward" else f"{model.name}, {key}"
            pages += [_flow_page(cell, title, res), _spectra_page(cell, title, res["spectra"]),
                      _lyapunov_page(title, res["lyapunov"], res["flow"]),
                      _fixed_point_page(title, res["fixed_points"])]
        pages.append(_methods_page(model, T, B, exponents, predictors))
        pdf = os.path.join(out, f"{stem}.pdf")
        bar.set_postfix_str(f"writing {len(pages) + 1} PDF pages")
        write_pdf(pdf, pages, study="analyze", config=config, source=source or f"{model.source}",
                  reproduce=command or "gradflow.report.model_report(model, xs)",
                  title=f"gradflow: how do gradients flow through {model.name}?",
                  subject=f"Verdict: {verdict}", keywords=["gradient flow", model.kind, "model report"])
    bar.update()
    bar.close()
    return {"verdict": verdict, "pdf": pdf, "rates": rates, "cells": per_cell,
            "flow": main["flow"], "readout": main["readout"], "prediction": main.get("prediction"),
            "lyapunov": main["lyapunov"], "fixed_points": main["fixed_points"], "tables": tables}


def _measure_cell(model: Model, key: str, xs: np.ndarray, seed: int, readout: str = "last"):
    """Random-direction and readout flows of one cell, refitted over a window chosen from the
    data, and the rate rows of every layer and state part."""
    cell = model.cells[key]
    T = xs.shape[0]
    flow = gradient_flow(cell, xs, seed=seed)
    directions = model.readout_directions(key)
    measure = readout_flow if readout == "last" else summed_readout_flow
    readout = measure(cell, xs, directions, T // 10) if directions is not None else None
    primary = readout or flow
    earliest = max(first_finite_lag(mean_log_profile(v)) for v in primary.components.values())
    start = choose_fit_start(primary.lags, fit_profile(primary.log_norms, earliest), earliest)
    start = max(start, max(first_finite_lag(mean_log_profile(v)) for v in flow.components.values()))
    flow = _refit(flow, start)
    readout = _refit(readout, start) if readout is not None else None
    rows = []
    for measure, f in (("readout", readout), ("random direction", flow)):
        if f is None:
            continue
        if f.loss.endswith("summed over steps"):
            measure = "readout summed over steps"
        for layer, part, comp in _parts(cell):
            rows.append(_rate_row(model, key, layer, part, measure, f.lags, f.components[comp], start,
                                  seed))
    return flow, readout, start, rows


def model_rates(model: Model | Cell, xs, *, seed: int = 0, batch_first: bool | None = None,
                readout: str = "last") -> pd.DataFrame:
    """The rate table of `model_report` alone (no predictors, no PDF): one row per cell, layer,
    state part and measure (``"readout"``, the model's head, and ``"random direction"``).
    ``readout="sum"`` measures the head's outputs summed over every step instead of the last
    (``"readout summed over steps"``).

    Columns: ``cell``, ``layer``, ``direction``, ``part``, ``measure``, ``rate`` (nats/step),
    ``ci_low``/``ci_high`` (95%, bootstrap over the batch's sequences), ``stderr``, ``r2``,
    ``fit_from``/``fit_to`` (the lags fitted, chosen from the data) and ``horizon`` (NaN: none).

    Examples
    --------
    >>> import gradflow as gf
    >>> from gradflow.report import model_rates
    >>> rates = model_rates(gf.lstm(6, 2, layers=2), gf.inputs.gaussian(50, 3, 2))
    >>> sorted(set(zip(rates.layer, rates.part)))
    [(0, 'c'), (0, 'h'), (1, 'c'), (1, 'h')]
    """
    model = _as_model(model)
    seed = check_seed(seed)
    readout = check_choice("readout", readout, READOUTS)
    xs = model.time_major(xs, batch_first)
    xs, _ = check_sequence(next(iter(model.cells.values())), xs, None)
    rows = []
    for key, xc in model.cell_inputs(xs).items():
        rows += _measure_cell(model, key, xc, seed, readout)[3]
    return pd.DataFrame(rows)


def _refit(flow: GradientFlow, start: int) -> GradientFlow:
    return dataclasses.replace(flow, fit=fit_rate(flow.lags, fit_profile(flow.log_norms, start), start))


def _rate_row(model, key, layer, part, measure, lags, values, start, seed) -> dict[str, Any]:
    profile = fit_profile(values, start)
    fit = fit_rate(lags, profile, start)
    lo, hi = bootstrap_interval(lags, values, start, seed)
    horizon = horizon_of(mean_log_profile(values))
    direction = key.split(" ")[-1] if model.bidirectional else "forward"
    real_layer = int(key.split(" ")[0][1:]) if model.bidirectional else layer
    return {"cell": key, "layer": real_layer, "direction": direction, "part": part, "measure": measure,
            "rate": fit.rate, "ci_low": lo, "ci_high": hi, "stderr": fit.stderr, "r2": fit.r2,
            "fit_from": fit.lag_range[0], "fit_to": fit.lag_range[1],
            "horizon": np.nan if horizon is None else horizon}


def _verdict(model, main, rates, measured, inputs_label) -> str:
    what = (f"the readout {model.head.name}'s gradient"
            + (" (summed over steps)" if main["readout"].loss.endswith("steps") else "")
            if main["readout"] is not None else "a random direction's gradient")
    rows = rates[(rates.part == "h") & ((rates.measure != "random direction")
                                        == (main["readout"] is not None))]
    by_layer = "; ".join(
        f"{r.cell + ' ' if model.bidirectional else ''}layer {r.layer} h {r.rate:+.4f}"
        + ("" if not np.isfinite(r.ci_low) else f" (95% {r.ci_low:+.4f} to {r.ci_high:+.4f})")
        + f", horizon {'none' if not np.isfinite(r.horizon) else int(r.horizon)}"
        for r in rows.itertuples())
    text = (f"{measured.regime} at {measured.rate:+.4f} nats/step: {what}, whole state; by layer: "
            f"{by_layer}; on {inputs_label}")
    prediction = main.get("prediction")
    if prediction is not None:
        best, flow = prediction.best, main["flow"]
        text += (f". Trusted predictor ({best.method}): {best.regime} at {best.rate:+.4f} against the "
                 f"random direction's {flow.regime} at {flow.rate:+.4f}: "
                 f"{'right' if best.regime == flow.regime else 'wrong'}")
    return text


def _state_size_text(model, cell) -> str:
    layers = cell.config.get("layers", 1)
    widths = cell_kind(cell.kind).part_widths(model.hidden, model.proj_size)
    per = " + ".join(f"{p} {w}" for p, w in widths.items())
    text = f"{cell.state_size} = " + (f"{layers} layers x ({per})" if layers > 1 else per)
    return text + (": an LSTM's state is h plus its memory c" if cell.kind == "lstm" else "")


def _summary_frame(model, key, main, measured, xs, inputs_label) -> pd.DataFrame:
    cell = model.cells[key]
    T, B, _ = xs.shape
    flow, lyap, points = main["flow"], main["lyapunov"], main["fixed_points"]
    rows = [("model", model.name), ("headline cell", key),
            ("state size", _state_size_text(model, cell)), ("inputs", f"{cell.input_size}: {inputs_label}"),
            ("steps T, batch", f"{T}, {B}"),
            ("measured rate (nats/step)", f"{measured.rate:+.4f}"), ("measured regime", measured.regime),
            ("measured with", measured.loss),
            ("rate fit lags", f"{measured.fit.lag_range[0]}-{measured.fit.lag_range[1]} "
                              f"(chosen from the data)"),
            ("memory horizon (steps)", str(measured.memory_horizon) if measured.memory_horizon is not None
             else f"> {T}"),
            ("random-direction rate (nats/step)", f"{flow.rate:+.4f}")]
    prediction = main.get("prediction")
    if prediction is not None:
        best = prediction.best
        rows += [("trusted prediction", f"{best.regime} at {best.rate:+.4f} ({best.method})"),
                 ("eigenvalue rule", f"{prediction['eigenvalue rule'].regime}")]
    else:
        rows.append(("predictors", "not run (gf.predict; gradflow analyze --predictors on)"))
    rows += [("top Lyapunov exponent (nats/step)", f"{lyap.top:+.4f}"),
             ("Kaplan-Yorke dimension", f"{lyap.kaplan_yorke_dimension:.2f}"),
             ("fixed points found (stable)", f"{len(points)} ({sum(p.stable for p in points)})")]
    top = main["spectra"].groupby(["layer", "gate"], sort=False).eig_abs.max()
    rows += [(f"rho(W_hh{'' if g == '-' else ' ' + g}), layer {l}", f"{r:.4f}") for (l, g), r in top.items()]
    frame = pd.DataFrame(rows, columns=["quantity", "value"])
    frame["value"] = frame["value"].astype(str)
    return frame


def _fixed_frames(per_cell):
    fixed, eigs = [], []
    for key, res in per_cell.items():
        for i, p in enumerate(res["fixed_points"]):
            fixed.append({"cell": key, "point": i, "state_norm": float(np.linalg.norm(p.state)),
                          "residual": p.residual, "stable": p.stable, "spectral_radius": p.spectral_radius,
                          "slowest_mode_rate": float(np.log(p.spectral_radius)) if p.spectral_radius > 0
                          else -np.inf})
            eigs += [{"cell": key, "point": i, "index": j, "eig_real": e.real, "eig_imag": e.imag}
                     for j, e in enumerate(p.eigenvalues)]
    return (pd.DataFrame(fixed, columns=["cell", "point", "state_norm", "residual", "stable",
                                         "spectral_radius", "slowest_mode_rate"]),
            pd.DataFrame(eigs, columns=["cell", "point", "index", "eig_real", "eig_imag"]))


def _fmt(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{v:+.4f}"


def _summary_pages(model, verdict, summary, rates, per_cell, predictors):
    shown_rates = pd.DataFrame({
        "cell": rates.cell if model.bidirectional else "layer " + rates.layer.astype(str),
        "part": rates.part, "gradient of": rates.measure,
        "rate": rates.rate.map(_fmt),
        "95% interval": [("-" if not np.isfinite(a) else f"{a:+.4f} to {b:+.4f}")
                         for a, b in zip(rates.ci_low, rates.ci_high, strict=True)],
        "horizon": rates.horizon.map(lambda h: "none" if not np.isfinite(h) else str(int(h))),
        "fit lags": [f"{a}-{b}" for a, b in zip(rates.fit_from, rates.fit_to, strict=True)],
    })
    key_numbers = summary[~summary.quantity.str.startswith("rho(")]
    notes = [("Verdict", verdict),
             ("How to read the rates", "Rate: slope of the batch-mean ln ||gradient|| against the lag k "
              "(nats per step; negative: vanishing), fitted over the lags shown, chosen from the data "
              "(the earliest start whose rate agrees with the back half's). 95% interval: bootstrap "
              f"over the batch's sequences ({BOOTSTRAP_DRAWS} resamples). Horizon: first lag where the "
              "gradient has fallen by 1e-3 from where it starts ('none': not within the sequence). "
              "'readout': the output the model reads at the last step; 'random direction': a fixed "
              "random unit vector over the whole final state, every layer and c included.")]
    if model.bidirectional:
        notes.append(("Two directions", "Each direction of each layer is analysed as its own cell on "
                      "its own inputs; the reverse cell reads the sequence reversed in time. The model's "
                      "gradient to an input is the sum of the two directions' contributions, so the "
                      "slower-decaying direction sets the memory. The last step's readout reads the top "
                      "forward cell's final state: its readout rows are the model's; the reverse cell "
                      "has read only x_{T-1} by then, so it is measured with the random direction."))
    pages = [table_page(f"Summary: {model.name}", notes, shown_rates,
                        "Rate by layer, direction and state part",
                        col_widths=(0.14, 0.07, 0.18, 0.12, 0.24, 0.1, 0.12))]
    more = []
    if predictors:
        table = per_cell[next(iter(per_cell))]["table"]
        abstains = table.regime == "inconclusive"
        more.append(("Each predictor beside the random-direction measurement (nats/step), "
                     f"{next(iter(per_cell))}", pd.DataFrame({
                         "predictor": table.method + np.where(table.trusted, " (trusted)", ""),
                         "regime": table.regime, "rate": table.rate.map(_fmt),
                         "error": table.rate_error.map(_fmt),
                         "right": np.where(abstains, "abstains", np.where(table.correct, "yes", "no"))}),
                     (0.36, 0.16, 0.14, 0.14, 0.12)))
    pages.append(table_page(f"Key numbers: {model.name}", [], key_numbers, "Key numbers",
                            col_widths=(0.3, 0.7), more_tables=more))
    return pages


def _flow_page(cell, title, res):
    import matplotlib.pyplot as plt

    flow, readout = res["flow"], res["readout"]
    layers = cell.config.get("layers", 1)
    fig = plt.figure(figsize=(8.27, 11.69))
    grid = fig.add_gridspec(1 + layers, 2, height_ratios=[1.3] + [1.0] * layers, hspace=0.45)
    ax = fig.add_subplot(grid[0, :])
    lags = flow.lags
    lo, hi = flow.fit.lag_range
    ax.axvspan(lo, hi, color="0.92", zorder=0, label=f"fit lags {lo}-{hi}")
    series = [(readout, "readout", "k"), (flow, "random direction", "C0")]
    for f, label, color in series:
        if f is None:
            continue
        ax.plot(lags, np.where(np.isfinite(f.profile), f.profile, np.nan), color=color, lw=2,
                label=f"{label}: whole state ({f.rate:+.4f} nats/step)")
    table = res.get("table")
    if table is not None:
        answered = table[table.regime.notna() & np.isfinite(table.rate)]
        answered = answered.reindex(answered.rate_error.abs().sort_values().index)
        for row in answered.head(MAX_SERIES - 3).itertuples():
            ax.plot(lags, flow.profile[0] + row.rate * lags, "-" if row.trusted else ":", lw=1,
                    label=f"{row.method} ({row.rate:+.4f})")
    finite = flow.profile[np.isfinite(flow.profile)]
    if finite.size:
        span = max(finite.max() - finite.min(), 1.0)
        ax.set_ylim(finite.min() - 0.3 * span, finite.max() + 0.3 * span)
    ax.set(xlabel="lag k (steps back from the last step)", ylabel="ln-norm (nats)",
           title=f"{title}: measured gradient, and predictors' lines from lag 0")
    ax.legend(fontsize="x-small", ncol=2)
    for l in range(layers):
        left, right = fig.add_subplot(grid[1 + l, 0]), fig.add_subplot(grid[1 + l, 1])
        for f, label, style in ((readout, "readout", "-"), (flow, "random", "--")):
            if f is None:
                continue
            for layer, part, comp in _parts(cell):
                if layer == l:
                    prof = mean_log_profile(f.components[comp])
                    left.plot(lags, np.where(np.isfinite(prof), prof, np.nan), style, lw=1.2,
                              color="C0" if part == "h" else "C3", label=f"{label}: {part}")
        left.axvspan(lo, hi, color="0.92", zorder=0)
        left.set(xlabel="lag k", ylabel="ln-norm (nats)", title=f"layer {l}: state parts")
        left.legend(fontsize="x-small")
        shown = readout or flow
        gates = [g for g in shown.gates if (g.startswith(f"l{l}.") if layers > 1 else True)]
        for g in gates[:MAX_SERIES - 1]:
            prof = mean_log_profile(shown.gates[g])
            right.plot(lags[:-1], np.where(np.isfinite(prof), prof, np.nan), lw=1.1, label=f"gate {g}")
        if l == 0:
            prof = mean_log_profile(shown.input_log_norms)
            right.plot(lags[:-1], np.where(np.isfinite(prof), prof, np.nan), "k:", lw=1.1, label="input x")
        right.set(xlabel="lag k", ylabel="ln-norm (nats)",
                  title=f"layer {l}: gates and input ({'readout' if readout is not None else 'random'})")
        if right.lines:
            right.legend(fontsize="x-small")
    caption = (f"Fit over lags {lo}-{hi} (grey, chosen from the data). Whole state: "
               + (f"readout {readout.rate:+.4f} ± {readout.fit.stderr:.1g}, " if readout is not None else "")
               + f"random direction {flow.rate:+.4f} ± {flow.fit.stderr:.1g} nats/step (R² = "
               f"{flow.fit.r2:.3f}). Rows: each layer's h and c (an LSTM's state is h plus c), and the "
               f"gradient reaching each gate's pre-activation and the input.")
    if table is not None:
        best = table[table.trusted].iloc[0]
        caption += (f" Trusted predictor {best.method}: {best.rate:+.4f} (error {best.rate_error:+.4f}); "
                    f"the predictors closest to the measurement are drawn (at most {MAX_SERIES - 3}).")
    return figure_page(fig, caption)


def _spectra_page(cell, title, spec):
    import matplotlib.pyplot as plt
    import seaborn as sns

    layers = sorted(spec.layer.unique())[:4]
    fig, axes = plt.subplots(len(layers), 2, figsize=(8.27, 11.69), squeeze=False)
    for (ax1, ax2), l in zip(axes, layers, strict=False):
        sub = spec[spec.layer == l].assign(block=lambda d: np.where(d.gate == "-", "W_hh", d.gate))
        unit_circle(ax1)
        sns.scatterplot(data=sub, x="eig_real", y="eig_imag", hue="block", s=14, ax=ax1, linewidth=0)
        ax1.set(xlabel="Re λ", ylabel="Im λ", title=f"layer {l}: eigenvalues of each W_hh block")
        ax1.legend(fontsize="x-small")
        sns.lineplot(data=sub, x="index", y="singular_value", hue="block", ax=ax2, legend=False)
        ax2.axhline(1.0, color="0.3", lw=1, ls="--")
        ax2.set(xlabel="index (largest first)", ylabel="singular value", title=f"layer {l}: singular values")
    fig.suptitle(f"{title}: spectra of the recurrent weights", y=0.995)
    fig.tight_layout(rect=(0, 0.1, 1, 0.98))
    radii = spec.groupby(["layer", "gate"], sort=False).eig_abs.max()
    tops = spec.groupby(["layer", "gate"], sort=False).singular_value.max()
    ev = np.linalg.eigvals(_linearisation(cell))
    gated = not cell_kind(cell.kind).vanilla or cell.config.get("layers", 1) > 1
    rule = (f"The eigenvalue rule reads the step Jacobian at the origin (zero state, zero input), "
            f"d state_t / d state_(t-1) there, whose spectral radius is {np.max(np.abs(ev)):.3f}"
            + (": for an LSTM it includes the memory path c -> c, diag(f) with f = sigmoid(forget bias), "
               "and the gates' slopes at zero pre-activation" if cell.kind == "lstm" else "")
            + ". No single block's radius is the rate: the blocks act through the gates, whose values "
              "depend on the inputs." if gated else
            "The eigenvalue rule reads W_hh itself.")
    caption = ("Spectral radius / top singular value per block: " + "; ".join(
        f"l{l} {g}: {radii[(l, g)]:.3f} / {tops[(l, g)]:.3f}" for l, g in radii.index) + ". " + rule)
    return figure_page(fig, caption)


def _linearisation(cell):

    return linearisation(cell)[0]


def _lyapunov_page(title, lyap, flow):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
    idx = np.arange(1, len(lyap.exponents) + 1)
    ax1.plot(idx, lyap.exponents, "o-", label="Lyapunov exponents")
    ax1.axhline(0, color="0.3", lw=1)
    ax1.axhline(flow.rate, color="C3", ls="--", label=f"gradient rate {flow.rate:+.4f}")
    ax1.set(xlabel="index i", ylabel="λ_i (nats/step)", title=f"{title}: largest Lyapunov exponents")
    ax1.legend(fontsize="small")
    for i in range(min(4, lyap.trace.shape[1])):
        ax2.plot(lyap.trace_steps, lyap.trace[:, i], label=f"λ_{i + 1}")
    ax2.set(xlabel="step", ylabel="running estimate (nats/step)", title="Convergence of the estimates")
    ax2.legend(fontsize="small")
    caption = (f"Top exponent {lyap.top:+.4f} nats/step against the random-direction gradient rate "
               f"{flow.rate:+.4f} (difference {lyap.top - flow.rate:+.4f}); Kaplan-Yorke dimension "
               f"{lyap.kaplan_yorke_dimension:.2f}, entropy rate {lyap.entropy_rate:.4f} nats/step; "
               f"{lyap.steps} steps after {lyap.warmup} warm-up steps.")
    return figure_page(fig, caption)


def _fixed_point_page(title, points: Sequence):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.27, 8.0))
    unit_circle(ax)
    for p in points[:MAX_SERIES]:
        ax.scatter(p.eigenvalues.real, p.eigenvalues.imag, s=12, label=f"|h*| = "
                   f"{np.linalg.norm(p.state):.2f}, {'stable' if p.stable else 'unstable'}")
    ax.set(xlabel="Re λ", ylabel="Im λ", title=f"{title}: step Jacobian's eigenvalues at each fixed point")
    if points:
        ax.legend(fontsize="x-small")
        stable = [p for p in points if p.stable]
        detail = (f"{len(points)} fixed point(s) for the inputs' mean, {len(stable)} stable"
                  + (f"; the first stable one's slowest mode gives ln rho = "
                     f"{np.log(stable[0].spectral_radius):+.4f} nats/step" if stable else "")
                  + f"; largest residual {max(p.residual for p in points):.1e}.")
    else:
        detail = "No fixed point found from 7 starts (the origin and 6 uniform draws in [-1, 1])."
    return figure_page(fig, detail)


def _methods_page(model, T, batch, exponents, predictors):
    rows = [
        ("Measured", "The gradient of the model's readout at the last step (its head's rows placed on "
                     "the top layer's h), and of a fixed random unit direction over the whole final "
                     "state, back-propagated through the unrolled network in one reverse pass per "
                     "measurement, in log space. Rates are least-squares slopes of the batch-mean "
                     "ln-norm against the lag, per layer and state part, over a window chosen from the "
                     "data; intervals resample the batch's sequences. A rate within ±0.01 is neutral."),
        ("Spectra", "Eigenvalues (scipy.linalg.eigvals) and singular values (svdvals) of each gate's "
                    "square block of weight_hh (times weight_hr with a projection), per layer."),
        ("Lyapunov", f"The {exponents} largest exponents by QR re-orthonormalisation of Jacobian "
                     f"products along the driven trajectory (T = {T}, batch {batch}); the gradient "
                     "rate and the top exponent are the same quantity for long T."),
        ("Fixed points", "Of h -> step(h, mean input), from the origin and 6 random starts, refined by "
                         "scipy.optimize.least_squares with the engine's Jacobian; eigenvalues of the "
                         "step Jacobian there."),
        ("Checked", "The test suite checks every loader against PyTorch's forward pass, the readout "
                    "rates against PyTorch autograd, the engine's Jacobians against finite differences, "
                    "and each predictor's closed-form limits."),
    ]
    if predictors:
        rows.insert(1, ("Predicted", "gradflow.predict runs every predictor without back-propagation "
                        "through time: the eigenvalue rule and Pascanu bound from the weights; fixed "
                        "points, mean-field theory, local gain, the averaged Jacobian and the one- and "
                        "two-step moment maps from a forward run. 'Trusted' is the one gradflow's "
                        "accuracy study ranks best among those that answered."))
    return table_page("Methods", rows)
