"""A report on one model: spectra, every predictor against the measured gradient flow, the
Lyapunov spectrum, gradient flow by gate and state part, and fixed points.

This is what ``gradflow analyze`` writes. Every figure's data lands in a CSV beside the PDF.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from .._cells import GATES, Cell
from .._engine import check_cell, check_sequence
from .._files import write_csv
from .._flow import gradient_flow, mean_log_profile
from .._lyapunov import lyapunov_spectrum
from .._plot import unit_circle
from .._predict import compare, predict
from .._spectral import fixed_points
from .._validation import check_positive_int
from ._pdf import figure_page, paper_theme, table_page, write_pdf

_SAFE = str.maketrans({c: "_" for c in " /\\:*?\"<>|"})


def _blocks(cell: Cell) -> list[tuple[int, str, np.ndarray]]:
    """``(layer, gate, W_hh block)`` of a built-in cell, one square block per gate."""
    layers = cell.config.get("layers", 1)
    gates = GATES[cell.kind] or ("",)
    out = []
    for l in range(layers):
        W = cell.params[f"weight_hh_l{l}"]
        n = W.shape[1]
        out += [(l, g, W[i * n:(i + 1) * n]) for i, g in enumerate(gates)]
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


def model_report(cell: Cell, xs, out: str | os.PathLike = "reports", *, name: str | None = None,
                 seed: int = 0, exponents: int = 16, source: str = "", command: str = "") -> dict[str, Any]:
    """Write ``<name>.pdf`` and its CSVs: how gradients flow through ``cell`` on inputs ``xs``.

    Parameters
    ----------
    cell : Cell
        A built-in cell (``gf.rnn``, ``gf.lstm``, ``gf.gru``, ``gf.from_torch``, ``gf.load``).
    xs : array, shape (T, batch, inputs)
        The inputs it is driven with.
    out : path
        Folder for ``<name>.pdf`` and ``<name>_{summary,predictors,flow,spectra,lyapunov,
        fixed_points}.csv``.
    name : str, optional
        File stem; default: the cell's name.
    seed : int
        Seed of the loss direction, the predictors' probes and the Lyapunov block.
    exponents : int
        How many of the largest Lyapunov exponents to compute.
    source, command : str
        Where the weights came from and the command that made the report, for the title page.

    Returns
    -------
    dict
        ``verdict``, ``pdf``, the result objects (``flow``, ``prediction``, ``lyapunov``,
        ``fixed_points``) and ``tables``: the data frames written as CSV, by name.

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
    cell = check_cell(cell)
    if cell.kind not in GATES:
        raise ValueError(f"cell must be a built-in rnn, lstm or gru cell to be analysed; got kind "
                         f"{cell.kind!r}")
    xs, _ = check_sequence(cell, xs, None)
    exponents = min(check_positive_int("exponents", exponents), cell.state_size)
    stem = (name or cell.name).translate(_SAFE)
    T, batch, _ = xs.shape

    flow = gradient_flow(cell, xs, seed=seed)
    prediction = predict(cell, xs, seed=seed)
    table = compare(prediction, flow)
    spec = spectra(cell)
    lyap = lyapunov_spectrum(cell, xs, k=exponents, warmup=min(100, T // 5), seed=seed)
    x_mean = xs.reshape(-1, xs.shape[2]).mean(axis=0)
    states_start = np.random.default_rng(seed).uniform(-1, 1, (6, cell.state_size))
    points = fixed_points(cell, x_mean, np.vstack([np.zeros(cell.state_size), states_start]))

    best = prediction.best
    right = best.regime == flow.regime
    horizon = flow.memory_horizon
    verdict = (f"{flow.regime} at {flow.rate:+.4f} nats/step; the trusted predictor ({best.method}) says "
               f"{best.regime} at {best.rate:+.4f}: {'right' if right else 'wrong'}")
    top = spec.groupby(["layer", "gate"], sort=False).agg(spectral_radius=("eig_abs", "max"),
                                                          top_singular_value=("singular_value", "max"))
    summary = pd.DataFrame([
        ("cell", cell.name), ("state size", cell.state_size), ("inputs", cell.input_size),
        ("steps T, batch", f"{T}, {batch}"),
        ("measured rate (nats/step)", f"{flow.rate:+.4f}"), ("measured regime", flow.regime),
        ("memory horizon (steps)", str(horizon) if horizon is not None else f"> {T}"),
        ("trusted prediction", f"{best.regime} at {best.rate:+.4f} ({best.method})"),
        ("eigenvalue rule", f"{prediction['eigenvalue rule'].regime}"),
        ("top Lyapunov exponent (nats/step)", f"{lyap.top:+.4f}"),
        ("Kaplan-Yorke dimension", f"{lyap.kaplan_yorke_dimension:.2f}"),
        ("fixed points found (stable)", f"{len(points)} ({sum(p.stable for p in points)})"),
        *((f"rho(W_hh{'' if g == '-' else ' ' + g}), layer {l}", f"{r.spectral_radius:.4f}")
          for (l, g), r in top.iterrows()),
    ], columns=["quantity", "value"])
    summary["value"] = summary["value"].astype(str)
    fixed = pd.DataFrame([{"point": i, "state_norm": float(np.linalg.norm(p.state)), "residual": p.residual,
                           "stable": p.stable, "spectral_radius": p.spectral_radius,
                           "slowest_mode_rate": float(np.log(p.spectral_radius)) if p.spectral_radius > 0
                           else -np.inf}
                          for i, p in enumerate(points)],
                         columns=["point", "state_norm", "residual", "stable", "spectral_radius",
                                  "slowest_mode_rate"])
    fixed_eigs = pd.DataFrame([{"point": i, "index": j, "eig_real": e.real, "eig_imag": e.imag}
                               for i, p in enumerate(points) for j, e in enumerate(p.eigenvalues)],
                              columns=["point", "index", "eig_real", "eig_imag"])
    tables = {"summary": summary, "predictors": table, "flow": flow.to_frame(), "spectra": spec,
              "lyapunov": lyap.to_frame(), "fixed_points": fixed, "fixed_point_eigenvalues": fixed_eigs}
    os.makedirs(out, exist_ok=True)
    for key, frame in tables.items():
        write_csv(os.path.join(out, f"{stem}_{key}.csv"), frame)

    config = {"cell": cell.name, "kind": cell.kind, "state size": cell.state_size,
              "inputs": cell.input_size, "layers": cell.config.get("layers", 1), "steps": T,
              "batch": batch, "input mean": float(xs.mean()), "input std": float(xs.std()),
              "exponents": exponents, "seed": seed}
    with paper_theme():
        pages = [
            _summary_page(cell, verdict, summary, table),
            _spectra_page(cell, spec),
            _flow_page(cell, flow, table),
            _lyapunov_page(cell, lyap, flow),
            _fixed_point_page(cell, points, fixed_eigs),
            _methods_page(T, batch, exponents),
        ]
        pdf = os.path.join(out, f"{stem}.pdf")
        write_pdf(pdf, pages, study="analyze", config=config, source=source or "(arrays in memory)",
                  reproduce=command or "gradflow.report.model_report(cell, xs)",
                  title=f"gradflow: how do gradients flow through {cell.name}?",
                  subject=f"Verdict: {verdict}", keywords=["gradient flow", cell.kind, "model report"])
    return {"verdict": verdict, "pdf": pdf, "flow": flow, "prediction": prediction, "lyapunov": lyap,
            "fixed_points": points, "tables": tables}


def _summary_page(cell, verdict, summary, table):
    abstains = table.regime == "inconclusive"
    shown = pd.DataFrame({
        "predictor": table.method + np.where(table.trusted, " (trusted)", ""),
        "regime": table.regime,
        "rate": table.rate.map(lambda v: "-" if not np.isfinite(v) else f"{v:+.4f}"),
        "error": table.rate_error.map(lambda v: "-" if not np.isfinite(v) else f"{v:+.4f}"),
        "right": np.where(abstains, "abstains", np.where(table.correct, "yes", "no")),
    })
    return table_page(f"Summary: {cell.name}", [("Verdict", verdict)], summary, "Key numbers",
                      col_widths=(0.5, 0.5), more_tables=[(
                          "Each predictor beside the measurement (nats/step)", shown,
                          (0.36, 0.16, 0.14, 0.14, 0.12))])


def _spectra_page(cell, spec):
    import matplotlib.pyplot as plt
    import seaborn as sns

    spec = spec.assign(block=[f"layer {l}" + ("" if g == "-" else f", {g}") for l, g in
                              zip(spec.layer, spec.gate, strict=True)])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
    unit_circle(ax1)
    sns.scatterplot(data=spec, x="eig_real", y="eig_imag", hue="block", s=14, ax=ax1, linewidth=0)
    ax1.set(xlabel="Re λ", ylabel="Im λ", title="Eigenvalues of each recurrent block W_hh")
    ax1.legend(fontsize="x-small", ncol=2)
    sns.lineplot(data=spec, x="index", y="singular_value", hue="block", ax=ax2, legend=False)
    ax2.axhline(1.0, color="0.3", lw=1, ls="--")
    ax2.set(xlabel="index (largest first)", ylabel="singular value", title="Singular values of each block")
    radii = spec.groupby("block", sort=False).eig_abs.max()
    tops = spec.groupby("block", sort=False).singular_value.max()
    caption = ("Spectral radius / top singular value per block: " + "; ".join(
        f"{b}: {radii[b]:.3f} / {tops[b]:.3f}" for b in radii.index)
        + ". For gated cells the blocks act through the gates, so no single radius is 'the' rate.")
    return figure_page(fig, caption)


def _flow_page(cell, flow, table):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
    lags = flow.lags
    ax1.plot(lags, flow.profile, color="k", lw=2, label=f"measured ({flow.rate:+.4f} nats/step)")
    answered = table[table.regime.notna() & np.isfinite(table.rate)]
    for row in answered.itertuples():
        style = "-" if row.trusted else ":"
        ax1.plot(lags, flow.profile[0] + row.rate * lags, style, lw=1.2,
                 label=f"{row.method} ({row.rate:+.4f})")
    finite = flow.profile[np.isfinite(flow.profile)]
    if finite.size:
        span = max(finite.max() - finite.min(), 1.0)
        ax1.set_ylim(finite.min() - 0.3 * span, finite.max() + 0.3 * span)
    ax1.set(xlabel="lag k (steps back from the final state)", ylabel="ln ||dL/dh_{T-k}|| (nats)",
            title="Measured gradient norm and each predictor's line from lag 0")
    ax1.legend(fontsize="x-small", ncol=2)
    parts = {f"state part {k}": v for k, v in flow.components.items()}
    parts.update({f"gate {k}": v for k, v in flow.gates.items()})
    parts["input x"] = flow.input_log_norms
    for label, values in parts.items():
        n = values.shape[0]
        profile = mean_log_profile(values)
        ax2.plot(lags[:n], np.where(np.isfinite(profile), profile, np.nan), label=label, lw=1.2)
    ax2.set(xlabel="lag k", ylabel="ln-norm (nats)", title="Gradient by state part, gate and input")
    ax2.legend(fontsize="x-small", ncol=3)
    best = table[table.trusted].iloc[0]
    caption = (f"Measured rate {flow.rate:+.4f} ± {flow.fit.stderr:.1g} nats/step (fit over lags "
               f"{flow.fit.lag_range[0]}-{flow.fit.lag_range[1]}, R² = {flow.fit.r2:.3f}). Trusted "
               f"predictor {best.method}: {best.rate:+.4f} (error {best.rate_error:+.4f}). "
               f"{int(answered.correct.sum())} of {len(answered)} answering predictors name the measured "
               f"regime.")
    return figure_page(fig, caption)


def _lyapunov_page(cell, lyap, flow):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
    idx = np.arange(1, len(lyap.exponents) + 1)
    ax1.plot(idx, lyap.exponents, "o-", label="Lyapunov exponents")
    ax1.axhline(0, color="0.3", lw=1)
    ax1.axhline(flow.rate, color="C3", ls="--", label=f"gradient rate {flow.rate:+.4f}")
    ax1.set(xlabel="index i", ylabel="λ_i (nats/step)", title="Largest Lyapunov exponents")
    ax1.legend(fontsize="small")
    for i in range(min(4, lyap.trace.shape[1])):
        ax2.plot(lyap.trace_steps, lyap.trace[:, i], label=f"λ_{i + 1}")
    ax2.set(xlabel="step", ylabel="running estimate (nats/step)", title="Convergence of the estimates")
    ax2.legend(fontsize="small")
    caption = (f"Top exponent {lyap.top:+.4f} nats/step against the measured gradient rate {flow.rate:+.4f} "
               f"(difference {lyap.top - flow.rate:+.4f}); Kaplan-Yorke dimension "
               f"{lyap.kaplan_yorke_dimension:.2f}, entropy rate {lyap.entropy_rate:.4f} nats/step; "
               f"{lyap.steps} steps after {lyap.warmup} warm-up steps.")
    return figure_page(fig, caption)


def _fixed_point_page(cell, points: Sequence, eigs: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.27, 8.0))
    unit_circle(ax)
    for i, p in enumerate(points[:6]):
        sub = eigs[eigs.point == i]
        ax.scatter(sub.eig_real, sub.eig_imag, s=12, label=f"point {i}: |h*| = "
                   f"{np.linalg.norm(p.state):.2f}, {'stable' if p.stable else 'unstable'}")
    ax.set(xlabel="Re λ", ylabel="Im λ", title="Eigenvalues of the step Jacobian at each fixed point")
    ax.legend(fontsize="x-small")
    if points:
        stable = [p for p in points if p.stable]
        detail = (f"{len(points)} fixed point(s) for the inputs' mean, {len(stable)} stable"
                  + (f"; the first stable one's slowest mode gives ln rho = "
                     f"{np.log(stable[0].spectral_radius):+.4f} nats/step" if stable else "")
                  + f"; largest residual {max(p.residual for p in points):.1e}.")
    else:
        detail = "No fixed point found from 7 starts (the origin and 6 uniform draws in [-1, 1])."
    return figure_page(fig, detail)


def _methods_page(T, batch, exponents):
    return table_page("Methods", [
        ("Measured", "gradflow.gradient_flow back-propagates a fixed random unit direction at the final "
                     "state through the unrolled network (one reverse pass, log space) and fits the "
                     "slope of the batch-mean ln-norm over lags T/10..T: the rate, in nats per step. "
                     "A rate within ±0.01 is neutral; the memory horizon is the first lag where the "
                     "norm has fallen by 1e-3."),
        ("Predicted", "gradflow.predict runs every predictor without back-propagation through time: "
                      "the eigenvalue rule and Pascanu bound from the weights; fixed points, mean-field "
                      "theory, local gain, the averaged Jacobian and the one- and two-step moment maps "
                      "from a forward run. 'Trusted' is the one gradflow's accuracy study ranks best "
                      "among those that answered."),
        ("Spectra", "Eigenvalues (scipy.linalg.eigvals) and singular values (svdvals) of each gate's "
                    "square block of weight_hh, per layer."),
        ("Lyapunov", f"The {exponents} largest exponents by QR re-orthonormalisation of Jacobian "
                     f"products along the driven trajectory (T = {T}, batch {batch}); the gradient "
                     "rate and the top exponent are the same quantity for long T."),
        ("Fixed points", "Of h -> step(h, mean input), from the origin and 6 random starts, refined by "
                         "scipy.optimize.least_squares with the engine's Jacobian; eigenvalues of the "
                         "step Jacobian there."),
        ("Checked", "The test suite checks the engine's Jacobians against finite differences, the "
                    "gradient norms against autograd.grad, and each predictor's closed-form limits."),
    ])
