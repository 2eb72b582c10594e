"""Training on long-range tasks, with instruments and the usual remedies.

One training step is one ``autograd.value_and_grad`` of the task loss over the unrolled
model (the engine's cell steps through `SequenceModel.apply`, plus a linear readout),
then optional clipping (by value, then by global norm) and an Adam or SGD update on
the flattened parameters. Every ``record_every`` steps the current weights are
measured with gradflow itself: spectral radius and top singular value of the
recurrent matrix, the top Lyapunov exponent (`lyapunov_spectrum`, k = 1) and the
gradient-flow rate (`gradient_flow`), per layer for stacked cells.

Remedies: clipping, an L1/L2 penalty on the recurrent weights, and a Lyapunov
regulariser ("gradient flossing", Engelken 2023): the sum of squared top-k
finite-time Lyapunov exponents, from Gram-Schmidt QR of ``J_t Q`` along the batch's
trajectory, added to the loss and differentiated by autograd: reverse mode over
forward-mode ``J_t Q`` products through the cell's own step (the fused operations'
derivative rules are themselves differentiable, see ``_ops``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from autograd import value_and_grad
from autograd.misc import flatten
from threadpoolctl import threadpool_limits

from ..cells._cells import Cell
from ..core._options import progress_bar
from ..core._validation import (
    as_float_array,
    check_choice,
    check_finite_float,
    check_positive_int,
    check_seed,
)
from ..models import SequenceModel
from ._instruments import measure
from ._objective import (
    ADAM,
    DIVERGED_FACTOR,
    EVAL,
    EVAL_BATCH,
    OPTIMIZERS,
    PROBE,
    PROBE_BATCH,
    check_lyapunov,
    check_penalty,
    initial_params,
    make_objective,
    model_for,
    penalised_names,
    positive_number,
)
from ._run import TrainingRun
from ._tasks import Task


def _clip(g: np.ndarray, clip: float | None, clip_value: float | None) -> np.ndarray:
    if clip_value is not None:
        g = np.clip(g, -clip_value, clip_value)
    if clip is not None:
        norm = np.linalg.norm(g)
        if norm > clip:
            g = g * (clip / norm)
    return g


def train(
    model: Cell | SequenceModel,
    task: Task,
    steps: int,
    *,
    optimizer: str = "adam",
    lr: float = 1e-2,
    batch: int = 16,
    clip: float | None = None,
    clip_value: float | None = None,
    penalty: tuple[str, float] | None = None,
    lyapunov: float | tuple[float, int] | None = None,
    momentum: float = 0.0,
    record_every: int = 25,
    seed: int = 0,
    callback: Callable[[dict], None] | None = None,
    progress: bool | None = None,
) -> TrainingRun:
    """Train a model with a linear readout on a task; measure it as it learns.

    Parameters
    ----------
    model : Cell or SequenceModel
        A cell (`rnn`, `lstm`, `gru`, stacked with ``layers=``) or any `SequenceModel`
        (`recurrent`, `self_attention`, `tcn`, ...). Its weights are the starting point;
        a linear readout ``N(0, 1/width)`` drawn from ``seed`` is added on top.
    task : Task
        From `gradflow.tasks`.
    steps : int
        Optimiser steps, one batch each (training steps, not the sequence length: the task sets that).
    optimizer : {"adam", "sgd"}
    lr : float
        Learning rate (> 0).
    batch : int
        Sequences per step.
    clip : float, optional
        Rescale the gradient to this global norm when it is longer.
    clip_value : float, optional
        Clip every gradient component to ``[-clip_value, clip_value]`` (before ``clip``).
    penalty : ("l1" | "l2", weight), optional
        Adds ``weight * sum |W|`` or ``weight * sum W^2`` over the recurrent weights
        ``weight_hh_l*`` (every weight matrix of a non-recurrent model).
    lyapunov : weight or (weight, k), optional
        Gradient flossing: adds ``weight * mean_b sum_i lambda_i^2`` for the top ``k``
        finite-time Lyapunov exponents along the first 8 sequences of each batch.
    momentum : float
        SGD momentum (``v = momentum v + g``).
    record_every : int
        Measure the weights every this many steps (and after the last).
    seed : int
        Seed of the readout, the batch order and the measurements; same seed, same bits.
    callback : callable, optional
        Called with each measurement row (a dict, as in ``records``) as it is taken.
    progress : bool, optional
        Show a progress bar of the steps with the current loss (default: ``gf.options().progress``;
        it appears once a run has taken a second).

    Returns
    -------
    TrainingRun
        Ctrl-C (KeyboardInterrupt) stops training and returns the run so far, with
        ``interrupted_at`` set to the step it stopped at (a warning says so). Training stops
        at divergence (``diverged_at``): a non-finite loss or gradient, or a loss above 10^4
        times the larger of the first step's and the baseline.

    Examples
    --------
    >>> import gradflow as gf
    >>> run = gf.train(gf.lstm(8, 2, seed=0), gf.tasks.adding(5), steps=40, lr=0.02, record_every=20)
    >>> print(f"{run.eval_loss:.4f} < {run.baseline:.4f}", list(run.records.step))
    0.1613 < 0.1667 [0, 20, 40]
    """
    model = model_for(model, task)
    steps = check_positive_int("steps", steps)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = positive_number("lr", lr)
    batch = check_positive_int("batch", batch)
    clip = None if clip is None else positive_number("clip", clip)
    clip_value = None if clip_value is None else positive_number("clip_value", clip_value)
    penalty = check_penalty(penalty)
    if penalty is not None and not penalised_names(model):
        raise ValueError(
            f"penalty {penalty!r} has nothing to act on: model {model.name!r} has no "
            f"recurrent weights named weight_hh_l*"
        )
    lyapunov = check_lyapunov(lyapunov, model)
    momentum = check_finite_float("momentum", momentum, minimum=0.0)
    if momentum >= 1.0:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
    if momentum and optimizer != "sgd":
        raise ValueError(
            f"momentum applies to optimizer='sgd' only (Adam keeps its own moments); "
            f"got momentum={momentum!r} with optimizer={optimizer!r}"
        )
    record_every = check_positive_int("record_every", record_every)
    seed = check_seed(seed)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None; got {callback!r}")
    for name, value in model.params.items():
        as_float_array(f"model.params[{name!r}]", value)
    config = dict(
        optimizer=optimizer,
        lr=lr,
        batch=batch,
        clip=clip,
        clip_value=clip_value,
        penalty=penalty,
        lyapunov=lyapunov,
        momentum=momentum,
        seed=seed,
    )

    objective, parts = make_objective(model, task, penalty=penalty, lyapunov=lyapunov, seed=seed)
    flat, unflatten = flatten(initial_params(model, task, seed))
    step_fn = value_and_grad(lambda v, xs, ys: objective(unflatten(v), xs, ys))
    probe_xs, _ = task.batch(PROBE_BATCH, (seed, PROBE))
    series = {k: np.full(steps, np.nan) for k in ("loss", "objective", "grad", "clipped", "update")}
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    records, diverged, interrupted, done = [], None, None, 0
    start = time.perf_counter()

    def record(i, loss, split="train"):
        records.append(
            {
                "step": i,
                "split": split,
                "loss": loss,
                **measure(model, unflatten(flat)["model"], probe_xs, seed),
            }
        )
        if callback is not None:
            callback(dict(records[-1]))

    bar = progress_bar(steps, "train", "step", progress)
    with threadpool_limits(1), bar:  # tiny matrices: BLAS threads only contend (4x slower on 2 busy cores)
        try:
            for i in range(steps):
                xs, ys = task.batch(batch, (seed, i))
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
                    total, g = step_fn(flat, xs, ys)
                if np.isfinite(total):
                    series["loss"][i], series["objective"][i] = parts["loss"], total
                limit = DIVERGED_FACTOR * max(series["loss"][0], task.baseline)
                if not (np.isfinite(total) and np.all(np.isfinite(g))) or parts["loss"] > limit:
                    diverged = i
                    break
                if i % record_every == 0:
                    record(i, parts["loss"])
                series["grad"][i] = np.linalg.norm(g)
                g = _clip(g, clip, clip_value)
                series["clipped"][i] = np.linalg.norm(g)
                if optimizer == "sgd":
                    m = momentum * m + g
                    update = -lr * m
                else:
                    b1, b2, eps = ADAM
                    m = b1 * m + (1 - b1) * g
                    v = b2 * v + (1 - b2) * g**2
                    update = -lr * (m / (1 - b1 ** (i + 1))) / (np.sqrt(v / (1 - b2 ** (i + 1))) + eps)
                series["update"][i] = np.linalg.norm(update)
                flat = flat + update
                done = i + 1
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4g}", refresh=False)
        except KeyboardInterrupt:
            # Keep what was learnt: steps before `done` are complete, `flat` their weights.
            interrupted = done
            for name in series:
                series[name] = series[name][:done]
            if len(records) and records[-1]["step"] >= done:
                records.pop()  # a measurement of a step that did not finish
            warnings.warn(
                f"training interrupted at step {done} of {steps}: returning the partial run "
                f"(TrainingRun.interrupted_at={done})",
                RuntimeWarning,
                stacklevel=2,
            )
        final = unflatten(flat)
        eval_objective, eval_parts = make_objective(model, task, seed=seed)
        eval_xs, eval_ys = task.held_out(EVAL_BATCH, (seed, EVAL))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            eval_objective(final, eval_xs, eval_ys)
        eval_loss = eval_parts["loss"] if diverged is None else np.nan
        if diverged is None:
            record(done, eval_loss, "held out")
    return TrainingRun(
        model=model.name,
        task=task.name,
        baseline=task.baseline,
        loss=series["loss"],
        objective=series["objective"],
        grad_norm=series["grad"],
        clipped_grad_norm=series["clipped"],
        update_norm=series["update"],
        records=pd.DataFrame(records),
        eval_loss=float(eval_loss),
        diverged_at=diverged,
        params=final,
        config=config,
        seconds=time.perf_counter() - start,
        interrupted_at=interrupted,
    )
