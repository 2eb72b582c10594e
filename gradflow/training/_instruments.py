"""What `train` measures while it learns: spectra, the top Lyapunov exponent, gradient flow."""

from __future__ import annotations

import numpy as np

from ..cells._cells import Cell
from ..core._registry import find_cell_kind
from ..measure._flow import gradient_flow
from ..measure._lyapunov import lyapunov_spectrum
from ..measure._rates import fit_rate, mean_log_profile
from ..models import SequenceModel
from ..prediction._spectral import largest_singular_value, spectral_radius
from ._objective import with_params

# ---------------------------------------------------------------- instruments


def recurrent_block(cell: Cell, params) -> np.ndarray:
    """Layer 0's square recurrent matrix: ``W_hh`` of a vanilla cell, the candidate block
    (LSTM g, GRU n: the `CellKind`'s ``candidate_block``) of a gated one."""
    W = params["weight_hh_l0"]
    record, n = find_cell_kind(cell.kind), W.shape[1]
    if record is None or record.blocks == 1:
        return W
    return W[record.candidate_block * n : (record.candidate_block + 1) * n]


def layer_components(cell: Cell) -> dict[str, str]:
    layers = cell.config.get("layers", 1)
    if layers == 1:
        return {"l0": "h" if "h" in cell.components else "state"}
    return {f"l{l}": f"l{l}.h" for l in range(layers)}


def measure(model: SequenceModel, params, xs: np.ndarray, seed: int) -> dict[str, float]:
    """Spectral radius and top singular value of the recurrent matrix, top Lyapunov exponent,
    gradient-flow rate (and per layer) of a recurrent model's current weights; {} otherwise."""
    if model.cell is None or "weight_hh_l0" not in params:
        return {}
    cell = with_params(model.cell, params)
    W = recurrent_block(cell, params)
    row: dict[str, float] = {}
    if W.ndim == 2 and W.shape[0] == W.shape[1]:
        row.update(spectral_radius=spectral_radius(W), top_singular_value=largest_singular_value(W))
    T = xs.shape[0]
    try:
        # progress=False: the training bar is the one to watch
        row["lyapunov_top"] = lyapunov_spectrum(cell, xs, k=1, warmup=T // 4, seed=seed, progress=False).top
        flow = gradient_flow(cell, xs, seed=seed)
    except FloatingPointError:  # the state overflowed: the weights have diverged
        return row
    row["flow_rate"] = flow.rate
    for layer, comp in layer_components(cell).items():
        values = flow.log_norms if comp == "state" else flow.components[comp]
        prof = mean_log_profile(values)
        row[f"flow_rate_{layer}"] = fit_rate(flow.lags, prof, T // 10).rate
        row[f"flow_log_norm_T_{layer}"] = float(prof[-1])  # ln ||dL/d h_0|| of this layer
    return row
