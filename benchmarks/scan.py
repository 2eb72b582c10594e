"""A linear recurrence in parallel over time: the associative scan against the sequential loop.

    python benchmarks/scan.py           # n = 1e2 .. 1e5
    python benchmarks/scan.py --quick   # n = 1e2 .. 1e4

Table 1: ``h_t = a_t * h_{t-1} + b_t`` (diagonal, real, batch 1) for states of 1, 8 and 64
numbers by a Python loop over time in plain numpy against `gf.associative_scan` (``ceil(log2 n)``
rounds over the whole sequence), best of ``--repeat`` runs in wall seconds and process CPU
seconds, one BLAS thread; the two results are compared as they are timed. Table 2: a cell
declared linear through the public API, `gf.unroll` (the engine's step loop) against `gf.scan`
(one forward-mode pass for the coefficients, then the scan). Table 3: the model path, the same
LRU through ``model.apply`` as `gf.recurrent` ``(cell)`` (the loop under autograd) and
``(cell, scan=True)`` (the scan; its gradient a reverse scan), forward and forward + backward
(autograd's gradient of every weight), outputs and gradients compared as they are timed; n up
to 1e4 (1e3 with ``--quick``): the loop's backward pass is autograd over n traced steps. The scan
does ``n log2 n`` elementwise work against the loop's ``n``: what it saves is ``n`` Python-level
steps, so on one core its advantage shrinks as the state grows (its depth pays off on parallel
hardware).
"""

from __future__ import annotations

import argparse
import math
import time

import autograd.numpy as anp
import numpy as np
from _timing import best_of  # benchmarks/_timing.py: these files run as scripts
from autograd import grad
from threadpoolctl import threadpool_limits

import gradflow as gf


def loop(a, b):
    h = np.zeros(b.shape[1:])
    out = np.empty_like(b)
    for t in range(len(b)):
        h = a[t] * h + b[t]
        out[t] = h
    return out


def timed(fn, repeat):
    """(best wall seconds, best CPU seconds, result)."""
    wall, out = best_of(fn, repeat)
    cpu, _ = best_of(fn, repeat, clock=time.process_time)
    return wall, cpu, out


def diagonal_cell(state: int, inputs: int):
    rng = np.random.default_rng(0)

    def step(p, h, x):
        decay = 1.0 / (1.0 + anp.exp(-(x @ p["W_a"].T + p["bias_a"])))  # input-dependent, in (0, 1)
        return decay * h + x @ p["W_b"].T

    params = {
        "W_a": rng.normal(size=(state, inputs)) / np.sqrt(inputs),
        "bias_a": np.full(state, 4.0),
        "W_b": rng.normal(size=(state, inputs)) / np.sqrt(inputs),
    }
    return gf.Cell(step, params, state, inputs, config={"linear": True}, name="gated diagonal")


def model_pass(model, name: str, xs, u):
    """``run()`` of one pass through ``model.apply``: the forward, or autograd's gradient of
    ``u . y_n`` with respect to every weight (forward + backward)."""
    if name == "forward":
        return lambda: model.apply(model.params, xs)
    return lambda: grad(lambda p: anp.sum(model.apply(p, xs)[-1] * u))(model.params)


def model_path(modes: int, inputs: int, batch: int, lengths: list[int], repeat: int) -> None:
    """Table 3: one LRU through ``model.apply``, loop against scan, forward and forward + backward."""
    cell = gf.lru(modes, inputs, r_min=0.9, r_max=0.999, seed=0)
    loop, scan = gf.recurrent(cell), gf.recurrent(cell, scan=True)
    print(
        f"\nTable 3: gf.recurrent(lru).apply, loop against scan=True; {modes} modes, {inputs} inputs, "
        f"batch {batch}"
    )
    print(
        f"{'n':>7} {'pass':>17} {'loop wall s':>12} {'scan wall s':>12} {'speed-up':>9} "
        f"{'loop CPU s':>11} {'scan CPU s':>11} {'CPU ratio':>9} {'max rel err':>12}"
    )
    for n in lengths:
        xs = gf.inputs.gaussian(n, batch, inputs, seed=1)
        u = np.random.default_rng(2).standard_normal((batch, loop.width))
        for name in ("forward", "forward+backward"):
            lw, lc, ref = timed(model_pass(loop, name, xs, u), max(1, repeat - 1))
            sw, sc, got = timed(model_pass(scan, name, xs, u), repeat)
            if isinstance(ref, dict):  # gradients: the worst weight, relative to its largest entry
                err = max(np.max(np.abs(got[k] - ref[k])) / max(np.max(np.abs(ref[k])), 1e-300) for k in ref)
            else:
                err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
            print(
                f"{n:>7} {name:>17} {lw:>12.4g} {sw:>12.4g} {lw / sw:>9.1f} {lc:>11.4g} {sc:>11.4g} "
                f"{lc / sc:>9.1f} {err:>12.2g}"
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--state", type=int, default=64, help="the larger state of the cell in table 2")
    parser.add_argument("--batch", type=int, default=4, help="batch of tables 2 and 3")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", type=int, default=64, help="LRU modes (complex) of table 3")
    args = parser.parse_args(argv)
    lengths = [100, 1000, 10_000] if args.quick else [100, 1000, 10_000, 100_000]
    rng = np.random.default_rng(0)
    print("Table 1: h_t = a_t h_(t-1) + b_t, batch 1, one BLAS thread")
    print(
        f"{'state':>5} {'n':>7} {'rounds':>6} {'loop wall s':>12} {'scan wall s':>12} {'speed-up':>9} "
        f"{'loop CPU s':>11} {'scan CPU s':>11} {'CPU ratio':>9} {'max rel err':>12}"
    )
    with threadpool_limits(1):
        for state in (1, 8, 64):
            for n in lengths:
                shape = (n, 1, state)
                a = 1.0 - rng.uniform(0, 1, shape) ** 4  # |a| <= 1, many near 1: long memory
                b = rng.standard_normal(shape)
                lw, lc, ref = timed(lambda a=a, b=b: loop(a, b), args.repeat)
                sw, sc, got = timed(lambda a=a, b=b: gf.associative_scan(a, b), args.repeat)
                err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
                print(
                    f"{state:>5} {n:>7} {gf.scan_depth(n):>6} {lw:>12.4g} {sw:>12.4g} {lw / sw:>9.1f} "
                    f"{lc:>11.4g} {sc:>11.4g} {lc / sc:>9.1f} {err:>12.2g}"
                )
        print(f"\nTable 2: gf.unroll against gf.scan, a gated diagonal cell, 4 inputs, batch {args.batch}")
        print(
            f"{'state':>5} {'n':>7} {'unroll wall s':>14} {'scan wall s':>12} {'speed-up':>9} "
            f"{'unroll CPU s':>13} {'scan CPU s':>11} {'CPU ratio':>9} {'max rel err':>12}"
        )
        for state in (4, args.state):
            cell = diagonal_cell(state, 4)
            for n in lengths:
                xs = gf.inputs.gaussian(n, args.batch, 4, seed=1)
                uw, uc, ref = timed(lambda xs=xs, cell=cell: gf.unroll(cell, xs), max(1, args.repeat - 1))
                sw, sc, got = timed(lambda xs=xs, cell=cell: gf.scan(cell, xs), args.repeat)
                err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
                print(
                    f"{state:>5} {n:>7} {uw:>14.4g} {sw:>12.4g} {uw / sw:>9.1f} {uc:>13.4g} {sc:>11.4g} "
                    f"{uc / sc:>9.1f} {err:>12.2g}"
                )
        model_lengths = [n for n in lengths if n <= (1000 if args.quick else 10_000)]
        model_path(args.modes, 8, args.batch, model_lengths, args.repeat)
    print(
        f"\nrounds = ceil(log2 n): n = 1e5 needs {math.ceil(math.log2(1e5))} where the loop needs 1e5 "
        "dependent steps."
    )


if __name__ == "__main__":
    main()
