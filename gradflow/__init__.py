"""gradflow: measure and predict how gradients flow through recurrent networks.

Public API
----------
Cells: `rnn`, `lstm`, `gru`, `Cell` (wrap your own step), `from_torch` -> `Model`, `from_keras`,
`load`.
Inputs: `inputs.gaussian`, `inputs.constant`, `inputs.one_hot`.
Engine: `unroll`, `jacobians`, `jacobian_products`, `gradient_flow` -> `GradientFlow`.
Prediction: `predict` -> `Prediction`, `compare` -> `Comparison`; `predictors` (the registry),
`predictor` (register one over a `PredictorContext`).
Sequence models: `self_attention`, `restricted_attention`, `hierarchical_attention`, `tcn`,
`conv_stack`, `recurrent` -> `SequenceModel`; `path_lengths` -> `PathLengths`;
`sensitivity` -> `Sensitivity`.
Dynamics: `lyapunov_spectrum` -> `LyapunovSpectrum`; `finite_time_singular_values` (warns
`ConvergenceWarning` when it did not converge);
`meanfield` (q*, chi_1, critical gain).
Sweeps: `sweep.run` (grids x seeds, cached, on local cores or Dask), `sweep.summary`.
Jupyter: `explore` (ipywidgets explorer), `explore_update` (its redraw, no browser needed);
`options` (quick mode for the notebooks, progress bars on or off).
Every result shows itself in Jupyter (HTML with a small inline chart) and has ``plot()``.
Training: `tasks.copy_memory`, `tasks.adding`, `tasks.sequential_digits` -> `tasks.Task`;
`train` -> `TrainingRun` (clipping, L1/L2 penalties, Lyapunov regulariser; measured as it learns);
`training_objective` (what `train` minimises); `finite_time_exponents` (differentiable lambda_1..k).
Threads: `blas_threads`, `set_blas_threads` (BLAS threads per computation; one by default).
"""

from . import inputs, meanfield, sweep, tasks
from ._cells import Cell, gru, lstm, rnn
from ._engine import jacobian_products, jacobians, unroll
from ._explore import Exploration, explore
from ._explore import update as explore_update
from ._flow import GradientFlow, RateFit, gradient_flow, regime_of
from ._io import Model, from_keras, from_torch, load
from ._lyapunov import (
    ConvergenceWarning,
    LyapunovSpectrum,
    SingularValues,
    finite_time_singular_values,
    lyapunov_spectrum,
)
from ._options import Options, options
from ._paths import PathLengths, path_lengths
from ._predict import (
    Comparison,
    Prediction,
    Predictor,
    PredictorContext,
    PredictorResult,
    compare,
    predict,
    predictor,
    predictors,
)
from ._probe import probe
from ._sensitivity import Sensitivity, sensitivity
from ._sequence import (
    SequenceModel,
    conv_stack,
    hierarchical_attention,
    recurrent,
    restricted_attention,
    self_attention,
    tcn,
)
from ._threads import blas_threads, set_blas_threads
from ._train import TrainingRun, finite_time_exponents, train, training_objective
from ._version import read_version

__version__ = read_version()  # one place: pyproject.toml

__all__ = [
    "Cell",
    "Comparison",
    "ConvergenceWarning",
    "Exploration",
    "GradientFlow",
    "LyapunovSpectrum",
    "Model",
    "Options",
    "PathLengths",
    "Prediction",
    "Predictor",
    "PredictorContext",
    "PredictorResult",
    "RateFit",
    "Sensitivity",
    "SequenceModel",
    "SingularValues",
    "TrainingRun",
    "__version__",
    "blas_threads",
    "compare",
    "conv_stack",
    "explore",
    "explore_update",
    "finite_time_exponents",
    "finite_time_singular_values",
    "from_keras",
    "from_torch",
    "gradient_flow",
    "gru",
    "hierarchical_attention",
    "inputs",
    "jacobian_products",
    "jacobians",
    "load",
    "lstm",
    "lyapunov_spectrum",
    "meanfield",
    "options",
    "path_lengths",
    "predict",
    "predictor",
    "predictors",
    "probe",
    "recurrent",
    "regime_of",
    "restricted_attention",
    "rnn",
    "self_attention",
    "sensitivity",
    "set_blas_threads",
    "sweep",
    "tasks",
    "tcn",
    "train",
    "training_objective",
    "unroll",
]
