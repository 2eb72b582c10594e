"""The text and tables of a model report's summary: the verdict sentence, the state-size line, the summary
frame of flow, Lyapunov, fixed-point and predictor results, and the fixed-point tables per cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core._registry import cell_kind


def summary_verdict(model, main, rates, measured, inputs_label) -> str:
    what = (
        f"the readout {model.head.name}'s gradient"
        + (" (summed over steps)" if main["readout"].loss.endswith("steps") else "")
        if main["readout"] is not None
        else "a random direction's gradient"
    )
    rows = rates[
        (rates.part == "h") & ((rates.measure != "random direction") == (main["readout"] is not None))
    ]
    by_layer = "; ".join(
        f"{r.cell + ' ' if model.bidirectional else ''}layer {r.layer} h {r.rate:+.4f}"
        + ("" if not np.isfinite(r.ci_low) else f" (95% {r.ci_low:+.4f} to {r.ci_high:+.4f})")
        + f", horizon {'none' if not np.isfinite(r.horizon) else int(r.horizon)}"
        for r in rows.itertuples()
    )
    text = (
        f"{measured.regime} at {measured.rate:+.4f} nats/step: {what}, whole state; by layer: "
        f"{by_layer}; on {inputs_label}"
    )
    prediction = main.get("prediction")
    if prediction is not None:
        best, flow = prediction.best, main["flow"]
        text += (
            f". Trusted predictor ({best.method}): {best.regime} at {best.rate:+.4f} against the "
            f"random direction's {flow.regime} at {flow.rate:+.4f}: "
            f"{'right' if best.regime == flow.regime else 'wrong'}"
        )
    return text


def state_size_text(model, cell) -> str:
    layers = cell.config.get("layers", 1)
    widths = cell_kind(cell.kind).part_widths(model.hidden, model.proj_size)
    per = " + ".join(f"{p} {w}" for p, w in widths.items())
    text = f"{cell.state_size} = " + (f"{layers} layers x ({per})" if layers > 1 else per)
    return text + (": an LSTM's state is h plus its memory c" if cell.kind == "lstm" else "")


def summary_frame(model, key, main, measured, xs, inputs_label) -> pd.DataFrame:
    cell = model.cells[key]
    T, B, _ = xs.shape
    flow, lyap, points = main["flow"], main["lyapunov"], main["fixed_points"]
    rows = [
        ("model", model.name),
        ("headline cell", key),
        ("state size", state_size_text(model, cell)),
        ("inputs", f"{cell.input_size}: {inputs_label}"),
        ("steps T, batch", f"{T}, {B}"),
        ("measured rate (nats/step)", f"{measured.rate:+.4f}"),
        ("measured regime", measured.regime),
        ("measured with", measured.loss),
        ("rate fit lags", f"{measured.fit.lag_range[0]}-{measured.fit.lag_range[1]} (chosen from the data)"),
        (
            "memory horizon (steps)",
            str(measured.memory_horizon) if measured.memory_horizon is not None else f"> {T}",
        ),
        ("random-direction rate (nats/step)", f"{flow.rate:+.4f}"),
    ]
    prediction = main.get("prediction")
    if prediction is not None:
        best = prediction.best
        rows += [
            ("trusted prediction", f"{best.regime} at {best.rate:+.4f} ({best.method})"),
            ("eigenvalue rule", f"{prediction['eigenvalue rule'].regime}"),
        ]
    else:
        rows.append(("predictors", "not run (gf.predict; gradflow analyze --predictors on)"))
    rows += [
        ("top Lyapunov exponent (nats/step)", f"{lyap.top:+.4f}"),
        ("Kaplan-Yorke dimension", f"{lyap.kaplan_yorke_dimension:.2f}"),
        ("fixed points found (stable)", f"{len(points)} ({sum(p.stable for p in points)})"),
    ]
    top = main["spectra"].groupby(["layer", "gate"], sort=False).eig_abs.max()
    rows += [(f"rho(W_hh{'' if g == '-' else ' ' + g}), layer {l}", f"{r:.4f}") for (l, g), r in top.items()]
    frame = pd.DataFrame(rows, columns=["quantity", "value"])
    frame["value"] = frame["value"].astype(str)
    return frame


def fixed_frames(per_cell):
    fixed, eigs = [], []
    for key, res in per_cell.items():
        for i, p in enumerate(res["fixed_points"]):
            fixed.append(
                {
                    "cell": key,
                    "point": i,
                    "state_norm": float(np.linalg.norm(p.state)),
                    "residual": p.residual,
                    "stable": p.stable,
                    "spectral_radius": p.spectral_radius,
                    "slowest_mode_rate": float(np.log(p.spectral_radius))
                    if p.spectral_radius > 0
                    else -np.inf,
                }
            )
            eigs += [
                {"cell": key, "point": i, "index": j, "eig_real": e.real, "eig_imag": e.imag}
                for j, e in enumerate(p.eigenvalues)
            ]
    return (
        pd.DataFrame(
            fixed,
            columns=[
                "cell",
                "point",
                "state_norm",
                "residual",
                "stable",
                "spectral_radius",
                "slowest_mode_rate",
            ],
        ),
        pd.DataFrame(eigs, columns=["cell", "point", "index", "eig_real", "eig_imag"]),
    )
