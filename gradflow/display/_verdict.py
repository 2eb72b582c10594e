"""The explorer's predictions and verdict: `quick_prediction` runs the registry's cheap predictors from one
forward run, and `verdict_lines`, `verdict_text` and `verdict_html` set each predictor's regime against the
measured gradient flow, as lines, text and an HTML card.
"""

from __future__ import annotations

import numpy as np

from ..cells._cells import Cell
from ..core import _html
from ..measure._flow import GradientFlow
from ..measure._rates import NEUTRAL_TOL
from ..prediction._predict import prediction_context
from ..prediction._registry import predictors, run_predictors
from ..prediction._results import Prediction, PredictorResult

# Fewer sampled Jacobians than gf.predict's 64: the averaged Jacobian then costs ~30 ms for an LSTM.
AVERAGED_ROWS = 8


def quick_prediction(
    cell: Cell,
    xs: np.ndarray,
    *,
    tol: float = NEUTRAL_TOL,
    seed: int = 0,
    eigenvalues: tuple[np.ndarray, str] | None = None,
) -> Prediction:
    """The predictors cheap enough to redraw interactively, from one forward run.

    The registry's cheap predictors (`gradflow.predictors` with ``cheap=True``) that answer for
    the cell. Vanilla cells: eigenvalue rule, Pascanu bound, mean-field, local gain, averaged
    Jacobian; gated cells: eigenvalue rule, local gain, averaged Jacobian, gated mean-field. Each
    runs as in `gradflow.predict` (the averaged Jacobian over fewer sampled steps). The trusted
    one is the local gain, the most accurate of these on the predictor-accuracy grid.
    ``eigenvalues``: of `linearisation` at the mean input, with its name, if already computed.
    """
    context = prediction_context(
        cell,
        xs,
        tol=tol,
        seed=seed,
        eigenvalues=eigenvalues,
        options={"averaged jacobian": {"rows": AVERAGED_ROWS}},
    )
    # The registry's cheap predictors that answer for this kind of cell.
    names = [p.name for p in predictors(cheap=True) if p.unmet(context) is None]
    return Prediction(cell.name, run_predictors(context, names), "local gain", tol)


def verdict_lines(prediction: Prediction, flow: GradientFlow) -> list[tuple[PredictorResult, bool]]:
    return [(r, r.regime == flow.regime) for r in prediction.results]


def verdict_text(prediction: Prediction, flow: GradientFlow) -> str:
    """``measured: ...`` then one ``predictor: regime (rate) right/wrong`` line per predictor."""
    lines = [f"measured: {flow.regime} ({flow.rate:+.4f} nats/step)"]
    for r, right in verdict_lines(prediction, flow):
        mark = "right" if right else ("abstains" if r.regime is None else "wrong")
        lines.append(f"{r.method}: {r.regime or 'inconclusive'} ({r.rate:+.4f}) {mark}")
    return "\n".join(lines)


def verdict_html(prediction: Prediction, flow: GradientFlow) -> str:
    rows = [
        (r.method, _html.badge(r.regime), _html.number(r.rate), "✓" if right else "✗")
        for r, right in verdict_lines(prediction, flow)
    ]
    return _html.card(
        "Verdict",
        prediction.cell_name,
        rows,
        regime=flow.regime,
        header=("predictor", "predicts", "rate (nats/step)", "right"),
        note=f"measured {flow.regime} at {flow.rate:+.4f} nats/step (badge)",
    )
