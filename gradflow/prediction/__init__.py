"""What the weights say before any gradient is measured: spectra and fixed points, mean-field
theory, and the predictors `predict` runs; `compare` sets a prediction beside a measurement.

Built on ``core``, ``cells``, ``engine``, ``models`` and ``measure``.
"""

from . import meanfield
from ._predict import compare, predict
from ._registry import Predictor, PredictorContext, predictor, predictors
from ._results import Comparison, Prediction, PredictorResult

__all__ = [
    "Comparison",
    "Prediction",
    "Predictor",
    "PredictorContext",
    "PredictorResult",
    "compare",
    "meanfield",
    "predict",
    "predictor",
    "predictors",
]
