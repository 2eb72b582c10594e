"""Training while measuring: tasks (``_tasks``, public as ``gradflow.tasks``), the objective and the loop.

Built on every room below ``sweep``.
"""

from ._objective import (
    finite_time_exponents,
    initial_params,
    make_objective,
    model_forward,
    training_objective,
)
from ._run import TrainingRun
from ._train import train

__all__ = [
    "TrainingRun",
    "finite_time_exponents",
    "initial_params",
    "make_objective",
    "model_forward",
    "train",
    "training_objective",
]
