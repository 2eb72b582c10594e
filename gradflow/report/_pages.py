"""The pages of a model report: summary tables, the measured flow beside the predictors, the
weights' spectra, the Lyapunov spectrum, fixed points and the methods."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..cells._linearisation import linearisation
from ..core._plot import unit_circle
from ..core._registry import is_vanilla
from ..measure._rates import mean_log_profile
from ._pdf import figure_page, table_page
from ._rates import BOOTSTRAP_DRAWS, state_parts

MAX_SERIES = 8  # lines per axes in every figure


def _fmt(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{v:+.4f}"


def summary_pages(model, verdict, summary, rates, per_cell, predictors):
    shown_rates = pd.DataFrame(
        {
            "cell": rates.cell if model.bidirectional else "layer " + rates.layer.astype(str),
            "part": rates.part,
            "gradient of": rates.measure,
            "rate": rates.rate.map(_fmt),
            "95% interval": [
                ("-" if not np.isfinite(a) else f"{a:+.4f} to {b:+.4f}")
                for a, b in zip(rates.ci_low, rates.ci_high, strict=True)
            ],
            "horizon": rates.horizon.map(lambda h: "none" if not np.isfinite(h) else str(int(h))),
            "fit lags": [f"{a}-{b}" for a, b in zip(rates.fit_from, rates.fit_to, strict=True)],
        }
    )
    key_numbers = summary[~summary.quantity.str.startswith("rho(")]
    notes = [
        ("Verdict", verdict),
        (
            "How to read the rates",
            "Rate: slope of the batch-mean ln ||gradient|| against the lag k "
            "(nats per step; negative: vanishing), fitted over the lags shown, chosen from the data "
            "(the earliest start whose rate agrees with the back half's). 95% interval: bootstrap "
            f"over the batch's sequences ({BOOTSTRAP_DRAWS} resamples). Horizon: first lag where the "
            "gradient has fallen by 1e-3 from where it starts ('none': not within the sequence). "
            "'readout': the output the model reads at the last step; 'random direction': a fixed "
            "random unit vector over the whole final state, every layer and c included.",
        ),
    ]
    if model.bidirectional:
        notes.append(
            (
                "Two directions",
                "Each direction of each layer is analysed as its own cell on "
                "its own inputs; the reverse cell reads the sequence reversed in time. The model's "
                "gradient to an input is the sum of the two directions' contributions, so the "
                "slower-decaying direction sets the memory. The last step's readout reads the top "
                "forward cell's final state: its readout rows are the model's; the reverse cell "
                "has read only x_{T-1} by then, so it is measured with the random direction.",
            )
        )
    pages = [
        table_page(
            f"Summary: {model.name}",
            notes,
            shown_rates,
            "Rate by layer, direction and state part",
            col_widths=(0.14, 0.07, 0.18, 0.12, 0.24, 0.1, 0.12),
        )
    ]
    more = []
    if predictors:
        table = per_cell[next(iter(per_cell))]["table"]
        abstains = table.regime == "inconclusive"
        more.append(
            (
                f"Each predictor beside the random-direction measurement (nats/step), {next(iter(per_cell))}",
                pd.DataFrame(
                    {
                        "predictor": table.method + np.where(table.trusted, " (trusted)", ""),
                        "regime": table.regime,
                        "rate": table.rate.map(_fmt),
                        "error": table.rate_error.map(_fmt),
                        "right": np.where(abstains, "abstains", np.where(table.correct, "yes", "no")),
                    }
                ),
                (0.36, 0.16, 0.14, 0.14, 0.12),
            )
        )
    pages.append(
        table_page(
            f"Key numbers: {model.name}",
            [],
            key_numbers,
            "Key numbers",
            col_widths=(0.3, 0.7),
            more_tables=more,
        )
    )
    return pages


def flow_page(cell, title, res):
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
        ax.plot(
            lags,
            np.where(np.isfinite(f.profile), f.profile, np.nan),
            color=color,
            lw=2,
            label=f"{label}: whole state ({f.rate:+.4f} nats/step)",
        )
    table = res.get("table")
    if table is not None:
        answered = table[table.regime.notna() & np.isfinite(table.rate)]
        answered = answered.reindex(answered.rate_error.abs().sort_values().index)
        for row in answered.head(MAX_SERIES - 3).itertuples():
            ax.plot(
                lags,
                flow.profile[0] + row.rate * lags,
                "-" if row.trusted else ":",
                lw=1,
                label=f"{row.method} ({row.rate:+.4f})",
            )
    finite = flow.profile[np.isfinite(flow.profile)]
    if finite.size:
        span = max(finite.max() - finite.min(), 1.0)
        ax.set_ylim(finite.min() - 0.3 * span, finite.max() + 0.3 * span)
    ax.set(
        xlabel="lag k (steps back from the last step)",
        ylabel="ln-norm (nats)",
        title=f"{title}: measured gradient, and predictors' lines from lag 0",
    )
    ax.legend(fontsize="x-small", ncol=2)
    for l in range(layers):
        left, right = fig.add_subplot(grid[1 + l, 0]), fig.add_subplot(grid[1 + l, 1])
        for f, label, style in ((readout, "readout", "-"), (flow, "random", "--")):
            if f is None:
                continue
            for layer, part, comp in state_parts(cell):
                if layer == l:
                    prof = mean_log_profile(f.components[comp])
                    left.plot(
                        lags,
                        np.where(np.isfinite(prof), prof, np.nan),
                        style,
                        lw=1.2,
                        color="C0" if part == "h" else "C3",
                        label=f"{label}: {part}",
                    )
        left.axvspan(lo, hi, color="0.92", zorder=0)
        left.set(xlabel="lag k", ylabel="ln-norm (nats)", title=f"layer {l}: state parts")
        left.legend(fontsize="x-small")
        shown = readout or flow
        gates = [g for g in shown.gates if (g.startswith(f"l{l}.") if layers > 1 else True)]
        for g in gates[: MAX_SERIES - 1]:
            prof = mean_log_profile(shown.gates[g])
            right.plot(lags[:-1], np.where(np.isfinite(prof), prof, np.nan), lw=1.1, label=f"gate {g}")
        if l == 0:
            prof = mean_log_profile(shown.input_log_norms)
            right.plot(lags[:-1], np.where(np.isfinite(prof), prof, np.nan), "k:", lw=1.1, label="input x")
        right.set(
            xlabel="lag k",
            ylabel="ln-norm (nats)",
            title=f"layer {l}: gates and input ({'readout' if readout is not None else 'random'})",
        )
        if right.lines:
            right.legend(fontsize="x-small")
    caption = (
        f"Fit over lags {lo}-{hi} (grey, chosen from the data). Whole state: "
        + (f"readout {readout.rate:+.4f} ± {readout.fit.stderr:.1g}, " if readout is not None else "")
        + f"random direction {flow.rate:+.4f} ± {flow.fit.stderr:.1g} nats/step (R² = "
        f"{flow.fit.r2:.3f}). Rows: each layer's h and c (an LSTM's state is h plus c), and the "
        f"gradient reaching each gate's pre-activation and the input."
    )
    if table is not None:
        best = table[table.trusted].iloc[0]
        caption += (
            f" Trusted predictor {best.method}: {best.rate:+.4f} (error {best.rate_error:+.4f}); "
            f"the predictors closest to the measurement are drawn (at most {MAX_SERIES - 3})."
        )
    return figure_page(fig, caption)


def spectra_page(cell, title, spec):
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
    gated = not is_vanilla(cell.kind) or cell.config.get("layers", 1) > 1
    rule = (
        f"The eigenvalue rule reads the step Jacobian at the origin (zero state, zero input), "
        f"d state_t / d state_(t-1) there, whose spectral radius is {np.max(np.abs(ev)):.3f}"
        + (
            ": for an LSTM it includes the memory path c -> c, diag(f) with f = sigmoid(forget bias), "
            "and the gates' slopes at zero pre-activation"
            if cell.kind == "lstm"
            else ""
        )
        + ". No single block's radius is the rate: the blocks act through the gates, whose values "
        "depend on the inputs."
        if gated
        else "The eigenvalue rule reads W_hh itself."
    )
    caption = (
        "Spectral radius / top singular value per block: "
        + "; ".join(f"l{l} {g}: {radii[(l, g)]:.3f} / {tops[(l, g)]:.3f}" for l, g in radii.index)
        + ". "
        + rule
    )
    return figure_page(fig, caption)


def _linearisation(cell):

    return linearisation(cell)[0]


def lyapunov_page(title, lyap, flow):
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
    caption = (
        f"Top exponent {lyap.top:+.4f} nats/step against the random-direction gradient rate "
        f"{flow.rate:+.4f} (difference {lyap.top - flow.rate:+.4f}); Kaplan-Yorke dimension "
        f"{lyap.kaplan_yorke_dimension:.2f}, entropy rate {lyap.entropy_rate:.4f} nats/step; "
        f"{lyap.steps} steps after {lyap.warmup} warm-up steps."
    )
    return figure_page(fig, caption)


def fixed_point_page(title, points: Sequence):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.27, 8.0))
    unit_circle(ax)
    for p in points[:MAX_SERIES]:
        ax.scatter(
            p.eigenvalues.real,
            p.eigenvalues.imag,
            s=12,
            label=f"|h*| = {np.linalg.norm(p.state):.2f}, {'stable' if p.stable else 'unstable'}",
        )
    ax.set(xlabel="Re λ", ylabel="Im λ", title=f"{title}: step Jacobian's eigenvalues at each fixed point")
    if points:
        ax.legend(fontsize="x-small")
        stable = [p for p in points if p.stable]
        detail = (
            f"{len(points)} fixed point(s) for the inputs' mean, {len(stable)} stable"
            + (
                f"; the first stable one's slowest mode gives ln rho = "
                f"{np.log(stable[0].spectral_radius):+.4f} nats/step"
                if stable
                else ""
            )
            + f"; largest residual {max(p.residual for p in points):.1e}."
        )
    else:
        detail = "No fixed point found from 7 starts (the origin and 6 uniform draws in [-1, 1])."
    return figure_page(fig, detail)


def methods_page(model, T, batch, exponents, predictors):
    rows = [
        (
            "Measured",
            "The gradient of the model's readout at the last step (its head's rows placed on "
            "the top layer's h), and of a fixed random unit direction over the whole final "
            "state, back-propagated through the unrolled network in one reverse pass per "
            "measurement, in log space. Rates are least-squares slopes of the batch-mean "
            "ln-norm against the lag, per layer and state part, over a window chosen from the "
            "data; intervals resample the batch's sequences. A rate within ±0.01 is neutral.",
        ),
        (
            "Spectra",
            "Eigenvalues (scipy.linalg.eigvals) and singular values (svdvals) of each gate's "
            "square block of weight_hh (times weight_hr with a projection), per layer.",
        ),
        (
            "Lyapunov",
            f"The {exponents} largest exponents by QR re-orthonormalisation of Jacobian "
            f"products along the driven trajectory (T = {T}, batch {batch}); the gradient "
            "rate and the top exponent are the same quantity for long T.",
        ),
        (
            "Fixed points",
            "Of h -> step(h, mean input), from the origin and 6 random starts, refined by "
            "scipy.optimize.least_squares with the engine's Jacobian; eigenvalues of the "
            "step Jacobian there.",
        ),
        (
            "Checked",
            "The test suite checks every loader against PyTorch's forward pass, the readout "
            "rates against PyTorch autograd, the engine's Jacobians against finite differences, "
            "and each predictor's closed-form limits.",
        ),
    ]
    if predictors:
        rows.insert(
            1,
            (
                "Predicted",
                "gradflow.predict runs every predictor without back-propagation "
                "through time: the eigenvalue rule and Pascanu bound from the weights; fixed "
                "points, mean-field theory, local gain, the averaged Jacobian and the one- and "
                "two-step moment maps from a forward run. 'Trusted' is the one gradflow's "
                "accuracy study ranks best among those that answered.",
            ),
        )
    return table_page("Methods", rows)
