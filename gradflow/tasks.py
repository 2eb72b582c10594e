"""Long-range learning tasks with known memoryless baselines: copy memory, adding, sequential digits.

Each constructor returns a seeded `Task` that generates time-major batches, holds the loss
(``autograd.numpy``), the memoryless baseline and the readout size `gradflow.train` needs.
"""

from .training._tasks import Task, adding, copy_memory, sequential_digits

__all__ = ["Task", "adding", "copy_memory", "sequential_digits"]
