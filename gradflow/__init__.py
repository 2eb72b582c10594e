"""gradflow: measure and predict how gradients flow through recurrent networks.

Public API
----------
Cells: `rnn`, `lstm`, `gru`, `Cell` (wrap your own step), `from_torch` -> `Model`, `from_keras`,
`load`; linear recurrences `lru` (`lru_from_arrays`), `s4d`, `mingru`, `minlstm`, xLSTM's `slstm`;
the selective state-space block `mamba` (`mamba_from_state_dict`); for the cells linear
in their state, `linear_coefficients` (every step's affine map) and `layer_outputs`; kinds of
cell: `CellKind`, `register_cell_kind`, `cell_kind`, `cell_kinds`.
Inputs: `inputs.gaussian`, `inputs.constant`, `inputs.one_hot`.
Engine: `unroll`, `jacobians`, `jacobian_products`, `gradient_flow` -> `GradientFlow`;
`scan` (a linear cell by `associative_scan`, `scan_depth` rounds), `diagonal_rate` (its exact rate);
`parameter_sensitivity` -> `ParameterSensitivity` (dL/dtheta by lag), `sensitivity_scaling`.
Prediction: `predict` -> `Prediction`, `compare` -> `Comparison`; `predictors` (the registry),
`predictor` (register one over a `PredictorContext`).
Sequence models: `self_attention`, `restricted_attention`, `hierarchical_attention`, `tcn`,
`conv_stack`, `recurrent`, `residual_block` (a linear recurrence in its paper's block) ->
`SequenceModel`; `path_lengths` -> `PathLengths`;
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
from .cells import (
    Cell,
    gru,
    lru,
    lru_from_arrays,
    lstm,
    mamba,
    mamba_from_state_dict,
    mingru,
    minlstm,
    rnn,
    s4d,
    slstm,
)
from .core import (
    CellKind,
    Options,
    blas_threads,
    cell_kind,
    cell_kinds,
    options,
    probe,
    read_version,
    register_cell_kind,
    set_blas_threads,
    unregister_cell_kind,
)
from .display import Exploration, explore, explore_update
from .engine import (
    associative_scan,
    diagonal_rate,
    jacobian_products,
    jacobians,
    layer_outputs,
    linear_coefficients,
    scan,
    scan_depth,
    unroll,
)
from .measure import (
    ConvergenceWarning,
    GradientFlow,
    LyapunovSpectrum,
    ParameterSensitivity,
    RateFit,
    Sensitivity,
    SingularValues,
    finite_time_singular_values,
    gradient_flow,
    lyapunov_spectrum,
    parameter_sensitivity,
    regime_of,
    sensitivity,
    sensitivity_scaling,
)
from .models import (
    Model,
    PathLengths,
    SequenceModel,
    conv_stack,
    from_keras,
    from_torch,
    hierarchical_attention,
    load,
    path_lengths,
    recurrent,
    residual_block,
    restricted_attention,
    self_attention,
    tcn,
)
from .prediction import (
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
from .training import TrainingRun, finite_time_exponents, train, training_objective

__version__ = read_version()  # one place: pyproject.toml

__all__ = [
    "Cell",
    "CellKind",
    "Comparison",
    "ConvergenceWarning",
    "Exploration",
    "GradientFlow",
    "LyapunovSpectrum",
    "Model",
    "Options",
    "ParameterSensitivity",
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
    "associative_scan",
    "blas_threads",
    "cell_kind",
    "cell_kinds",
    "compare",
    "conv_stack",
    "diagonal_rate",
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
    "layer_outputs",
    "linear_coefficients",
    "load",
    "lru",
    "lru_from_arrays",
    "lstm",
    "lyapunov_spectrum",
    "mamba",
    "mamba_from_state_dict",
    "meanfield",
    "mingru",
    "minlstm",
    "options",
    "parameter_sensitivity",
    "path_lengths",
    "predict",
    "predictor",
    "predictors",
    "probe",
    "recurrent",
    "regime_of",
    "register_cell_kind",
    "residual_block",
    "restricted_attention",
    "rnn",
    "s4d",
    "scan",
    "scan_depth",
    "self_attention",
    "sensitivity",
    "sensitivity_scaling",
    "set_blas_threads",
    "slstm",
    "sweep",
    "tasks",
    "tcn",
    "train",
    "training_objective",
    "unregister_cell_kind",
    "unroll",
]
