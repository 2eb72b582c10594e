"""Mean-field theory of random recurrent networks (public namespace; implemented in
``gradflow.meanfield``)."""

from .prediction.meanfield import chi1, critical_gain, depth_scale, gaussian_expectation, q_star, rate

__all__ = ["chi1", "critical_gain", "depth_scale", "gaussian_expectation", "q_star", "rate"]
