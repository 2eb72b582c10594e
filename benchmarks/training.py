"""Training speed: steps per second of one optimisation step (forward, backward, Adam update).

    python benchmarks/training.py          # 64-unit LSTM, T = 100, batch 32, adding task
    python benchmarks/training.py --quick  # 16 units, T = 20, batch 8

Rows: gradflow's training step (``gf.training_objective``: autograd over the LSTM's
whole-sequence primitive, one BLAS thread), the naive way (autograd through the same
equations written in plain ``autograd.numpy``, `plain_lstm_step` below), and PyTorch on CPU (``torch.nn.LSTM``
plus a linear readout and ``torch.optim.Adam``) when torch is importable; that row is
skipped otherwise. The naive gradient is checked against gradflow's before timing, and
the PyTorch loss against gradflow's on the same weights and batch.
"""

from __future__ import annotations

import argparse
import time

import autograd.numpy as anp
import numpy as np
from _timing import adam_steps  # benchmarks/_timing.py: these files run as scripts
from autograd import value_and_grad
from autograd.misc import flatten
from threadpoolctl import threadpool_limits

import gradflow as gf
from gradflow.training import initial_params, make_objective


def plain_lstm_step(p, state, x):
    """PyTorch's LSTM equations in plain ``autograd.numpy`` (about 15 traced operations a step)."""
    n = state.shape[-1] // 2

    def logistic(a):
        return 0.5 * (1.0 + anp.tanh(0.5 * a))

    a = x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + state[:, :n] @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    c = logistic(a[:, n : 2 * n]) * state[:, n:] + logistic(a[:, :n]) * anp.tanh(a[:, 2 * n : 3 * n])
    return anp.concatenate([logistic(a[:, 3 * n :]) * anp.tanh(c), c], axis=1)


def steps_per_second(fn, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def gradflow_step(model, task, xs, ys, naive=False):
    objective, _ = make_objective(model, task)
    flat, unflatten = flatten(initial_params(model, task, 0))
    if naive:
        plain = gf.recurrent(
            gf.Cell(
                plain_lstm_step,
                model.cell.params,
                model.cell.state_size,
                model.cell.input_size,
                components=model.cell.components,
            )
        )
        objective, _ = make_objective(plain, task)
    grad_fn = value_and_grad(lambda v: objective(unflatten(v), xs, ys))
    return adam_steps(grad_fn, flat), grad_fn(flat)


def torch_step(cell, params, xs, ys):
    import torch

    torch.set_num_threads(1)
    n, d = cell.config["hidden"], cell.input_size
    lstm = torch.nn.LSTM(d, n, dtype=torch.float64)
    readout = torch.nn.Linear(n, 1, dtype=torch.float64)
    with torch.no_grad():
        for name, value in cell.params.items():
            getattr(lstm, name).copy_(torch.from_numpy(value))
        readout.weight.copy_(torch.from_numpy(params["readout"]["weight"]))
        readout.bias.copy_(torch.from_numpy(params["readout"]["bias"]))
    opt = torch.optim.Adam([*lstm.parameters(), *readout.parameters()], lr=1e-3)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)

    def loss_fn():
        out, _ = lstm(x)
        return torch.mean((readout(out[-1])[:, 0] - y) ** 2)

    with torch.no_grad():
        first = float(loss_fn())

    def one():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()

    return one, first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n, T, B, seconds = (16, 20, 8, 0.5) if args.quick else (64, 100, 32, 5.0)
    task = gf.tasks.adding(T)
    cell = gf.lstm(n, task.input_size, init="pytorch", seed=0)
    model = gf.recurrent(cell)
    xs, ys = task.batch(B)
    rows = []
    with threadpool_limits(1):
        fast, (loss, g) = gradflow_step(model, task, xs, ys)
        naive, (_, g_naive) = gradflow_step(model, task, xs, ys, naive=True)
        np.testing.assert_allclose(g_naive, g, rtol=1e-9, atol=1e-13)  # the same gradient
        rows.append(("gradflow (whole-sequence LSTM primitive)", steps_per_second(fast, seconds)))
        rows.append(("naive (autograd, plain autograd.numpy step)", steps_per_second(naive, seconds)))
    try:
        import torch
    except ImportError:
        torch_note = "PyTorch: not importable, column skipped"
    else:
        step, first = torch_step(cell, initial_params(model, task, 0), xs, ys)
        assert abs(first - loss) < 1e-10 * max(1.0, abs(loss)), (first, loss)  # same model, same loss
        rows.append(("PyTorch CPU (torch.nn.LSTM, 1 thread)", steps_per_second(step, seconds)))
        torch_note = f"PyTorch {torch.__version__}: loss on the same weights agrees with gradflow's"
    print(
        f"LSTM {n} units, T = {T}, batch {B}, float64, adding task; one Adam step; "
        f"each row timed for {seconds:g} seconds"
    )
    print(f"{'what':<46} {'steps/s':>9} {'vs gradflow':>12}")
    for name, rate in rows:
        print(f"{name:<46} {rate:9.1f} {rate / rows[0][1]:11.2f}x")
    print(torch_note)


if __name__ == "__main__":
    main()
