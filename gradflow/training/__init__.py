"""Training while measuring: tasks (``_tasks``, public as ``gradflow.tasks``), the objective and the loop.

Built on every room below ``sweep``.
"""

from ._train import (
    TrainingRun,
    finite_time_exponents,
    initial_params,
    make_objective,
    plain_step,
    train,
    training_objective,
)

__all__ = [
    "TrainingRun",
    "finite_time_exponents",
    "initial_params",
    "make_objective",
    "plain_step",
    "train",
    "training_objective",
]
