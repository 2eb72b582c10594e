"""The BLAS thread policy: one thread by default, overridable, and never visible in the results."""

import autograd.numpy as anp
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import gradflow as gf


def _blas_threads_now():
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture
def threads():
    """Set the policy inside a test; restore it afterwards."""
    previous = gf.set_blas_threads(None)
    yield gf.set_blas_threads
    gf.set_blas_threads(previous)


def _seen_threads(cell_size=4):
    seen = []

    def step(p, h, x):
        seen.append(_blas_threads_now())
        return anp.tanh(h @ p["W"].T)

    cell = gf.Cell(step, {"W": 0.5 * np.eye(cell_size)}, cell_size, 1)
    seen.clear()
    gf.gradient_flow(cell, np.zeros((3, 1, 1)))
    return set().union(*seen)


def test_default_is_one_thread_and_the_override_applies(threads, monkeypatch):
    monkeypatch.delenv("GRADFLOW_BLAS_THREADS", raising=False)
    assert gf.blas_threads() == 1
    assert _seen_threads() == {1}
    monkeypatch.setenv("GRADFLOW_BLAS_THREADS", "2")
    assert gf.blas_threads() == 2 and _seen_threads() == {2}
    threads(1)  # the function beats the environment
    assert gf.blas_threads() == 1 and _seen_threads() == {1}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused_by_name(threads, bad):
    with pytest.raises(ValueError, match="threads"):
        threads(bad)


def test_bad_environment_value_is_refused_by_name(threads, monkeypatch):
    monkeypatch.setenv("GRADFLOW_BLAS_THREADS", "many")
    with pytest.raises(ValueError, match="GRADFLOW_BLAS_THREADS"):
        gf.blas_threads()


def test_results_are_the_same_bytes_with_one_and_two_threads(threads):
    small, xs = gf.lstm(12, 3, seed=0), gf.inputs.gaussian(40, 2, 3, seed=1)
    # Large enough that OpenBLAS splits the batched products (rows 20 * 4 * 96) between threads.
    wide, xw = gf.lstm(48, 3, seed=0), gf.inputs.gaussian(20, 4, 3, seed=2)
    out = []
    for n in (1, 2):
        threads(n)
        out.append(
            (
                gf.gradient_flow(small, xs).to_frame().to_csv(),
                gf.predict(small, xs).to_frame().to_csv(),
                gf.lyapunov_spectrum(small, xs, warmup=10).per_sample.tobytes(),
                gf.jacobians(wide, xw).tobytes(),
            )
        )
    assert out[0] == out[1]
