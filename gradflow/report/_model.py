"""A report on one model: the gradient of the output it reads, by layer, direction and state part,
beside the random-direction measurement; spectra, every predictor, the Lyapunov spectrum and
fixed points.

This is what ``gradflow analyze`` writes. Every figure's data lands in a CSV beside the PDF.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from ..cells._cells import Cell
from ..core import inputs as _inputs
from ..core._files import write_csv
from ..core._registry import cell_kind
from ..core._validation import check_choice, check_finite_float, check_positive_int, check_seed
from ..engine._engine import check_sequence
from ..measure._lyapunov import lyapunov_spectrum
from ..models._model import Model
from ..prediction._predict import compare, predict
from ..prediction._spectral import fixed_points
from ._model_summary import fixed_frames, summary_frame, summary_verdict
from ._pages import fixed_point_page, flow_page, lyapunov_page, methods_page, spectra_page, summary_pages
from ._pdf import paper_theme, write_pdf
from ._rates import READOUTS, measure_cell, model_of

_SAFE = str.maketrans({c: "_" for c in ' /\\:*?"<>|'})


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
        out += [
            (l, g, W[i * n : (i + 1) * n] if hr is None else W[i * n : (i + 1) * n] @ hr)
            for i, g in enumerate(gates)
        ]
    return out


def spectra(cell: Cell) -> pd.DataFrame:
    """Eigenvalues and singular values of every recurrent block, tidy: one row per (block, index)."""
    rows = []
    for layer, gate, W in _blocks(cell):
        eig = scipy.linalg.eigvals(W)
        eig = eig[np.argsort(-np.abs(eig), kind="stable")]
        sv = scipy.linalg.svdvals(W)
        rows.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "gate": gate or "-",
                    "index": np.arange(len(eig)),
                    "eig_real": eig.real,
                    "eig_imag": eig.imag,
                    "eig_abs": np.abs(eig),
                    "singular_value": sv,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------ the report


def model_report(
    model: Model | Cell,
    xs=None,
    out: str | os.PathLike = "reports",
    *,
    name: str | None = None,
    seed: int = 0,
    exponents: int = 16,
    source: str = "",
    command: str = "",
    batch_first: bool | None = None,
    predictors: bool = True,
    steps: int = 500,
    batch: int = 4,
    input_scale: float = 1.0,
    inputs_label: str | None = None,
    readout: str = "last",
    progress: bool = False,
) -> dict[str, Any]:
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

    model = model_of(model)
    seed = check_seed(seed)
    readout = check_choice("readout", readout, READOUTS)
    first = next(iter(model.cells.values()))
    synthetic = xs is None
    if synthetic:
        steps = check_positive_int("steps", steps, minimum=2)
        input_scale = check_finite_float("input_scale", input_scale, minimum=0.0)
        xs = _inputs.gaussian(
            steps, check_positive_int("batch", batch), first.input_size, scale=input_scale, seed=seed
        )
        inputs_label = (
            f"synthetic Gaussian inputs N(0, {input_scale:g}²) - no inputs were given, "
            f"so these rates are not the model's on its own data"
        )
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
    stages = (
        ["gradient flow"] + (["predictors"] if predictors else []) + ["Lyapunov spectrum", "fixed points"]
    )
    per_cell: dict[str, dict[str, Any]] = {}
    rate_rows = []
    bar = tqdm(
        total=len(stages) * len(model.cells) + 1,
        desc="analyze",
        unit="stage",
        disable=not progress,
        leave=False,
    )
    for key, cell in model.cells.items():
        xc = cell_inputs[key]
        res: dict[str, Any] = {"inputs": xc}
        bar.set_postfix_str(f"{key}: gradient flow")
        flow, read, start, rows = measure_cell(model, key, xc, seed, readout)
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
        res["lyapunov"] = lyapunov_spectrum(
            cell, xc, k=min(exponents, cell.state_size), warmup=min(100, T // 5), seed=seed
        )
        bar.update()
        bar.set_postfix_str(f"{key}: fixed points")
        x_mean = xc.reshape(-1, xc.shape[2]).mean(axis=0)
        states_start = np.random.default_rng(seed).uniform(-1, 1, (6, cell.state_size))
        res["fixed_points"] = fixed_points(cell, x_mean, np.vstack([np.zeros(cell.state_size), states_start]))
        bar.update()
        per_cell[key] = res
    rates = pd.DataFrame(rate_rows)
    # The headline: the cell the head reads (the top forward cell), else the first.
    main_key = next((k for k in per_cell if per_cell[k]["readout"] is not None), next(iter(per_cell)))
    main = per_cell[main_key]
    measured = main["readout"] or main["flow"]
    verdict = summary_verdict(
        model,
        main,
        rates[rates.cell.isin([main_key])] if not model.bidirectional else rates,
        measured,
        inputs_label,
    )
    summary = summary_frame(model, main_key, main, measured, xs, inputs_label)
    tables = {"summary": summary, "rates": rates}
    flows = [per_cell[k]["flow"].to_frame().assign(cell=k, measure="random direction") for k in per_cell]
    flows += [
        per_cell[k]["readout"].to_frame().assign(cell=k, measure="readout")
        for k in per_cell
        if per_cell[k]["readout"] is not None
    ]
    tables["flow"] = pd.concat(flows, ignore_index=True)
    if predictors:
        tables["predictors"] = pd.concat(
            [per_cell[k]["table"].frame.assign(cell=k) for k in per_cell], ignore_index=True
        )
    tables["spectra"] = pd.concat(
        [per_cell[k]["spectra"].assign(cell=k) for k in per_cell], ignore_index=True
    )
    tables["lyapunov"] = pd.concat(
        [per_cell[k]["lyapunov"].to_frame().assign(cell=k) for k in per_cell], ignore_index=True
    )
    fixed, fixed_eigs = fixed_frames(per_cell)
    tables["fixed_points"], tables["fixed_point_eigenvalues"] = fixed, fixed_eigs
    os.makedirs(out, exist_ok=True)
    for key, frame in tables.items():
        write_csv(os.path.join(out, f"{stem}_{key}.csv"), frame)

    config = {
        "model": model.name,
        "kind": model.kind,
        "layers": model.layers,
        "hidden": model.hidden,
        "projection": model.proj_size or "none",
        "bidirectional": model.bidirectional,
        "head": model.head.name if model.head is not None else "none",
        "ignored keys": ", ".join(model.ignored) or "none",
        "inputs": inputs_label,
        "steps": T,
        "batch": B,
        "input mean": float(xs.mean()),
        "input std": float(xs.std()),
        "exponents": exponents,
        "predictors": predictors,
        "seed": seed,
    }
    with paper_theme():
        pages = summary_pages(model, verdict, summary, rates, per_cell, predictors)
        for key, res in per_cell.items():
            cell = model.cells[key]
            title = model.name if key == "forward" else f"{model.name}, {key}"
            pages += [
                flow_page(cell, title, res),
                spectra_page(cell, title, res["spectra"]),
                lyapunov_page(title, res["lyapunov"], res["flow"]),
                fixed_point_page(title, res["fixed_points"]),
            ]
        pages.append(methods_page(model, T, B, exponents, predictors))
        pdf = os.path.join(out, f"{stem}.pdf")
        bar.set_postfix_str(f"writing {len(pages) + 1} PDF pages")
        write_pdf(
            pdf,
            pages,
            study="analyze",
            config=config,
            source=source or f"{model.source}",
            reproduce=command or "gradflow.report.model_report(model, xs)",
            title=f"gradflow: how do gradients flow through {model.name}?",
            subject=f"Verdict: {verdict}",
            keywords=["gradient flow", model.kind, "model report"],
        )
    bar.update()
    bar.close()
    return {
        "verdict": verdict,
        "pdf": pdf,
        "rates": rates,
        "cells": per_cell,
        "flow": main["flow"],
        "readout": main["readout"],
        "prediction": main.get("prediction"),
        "lyapunov": main["lyapunov"],
        "fixed_points": main["fixed_points"],
        "tables": tables,
    }
