"""Input sequences (public namespace; implemented in ``gradflow.core.inputs``)."""

from .core.inputs import constant, gaussian, one_hot

__all__ = ["constant", "gaussian", "one_hot"]
