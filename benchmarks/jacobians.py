"""Engine speed and memory against the naive autograd way and closed-form numpy.

    python benchmarks/jacobians.py            # N in {64, 256}, T = 1000, plus N = 128, T = 10,000
    python benchmarks/jacobians.py --quick    # small sizes, to check the script runs

Three operations on a tanh RNN (batch 1, inputs 8, gain 1.5, gaussian inputs),
each starting from (cell, xs), so every method pays for its own forward pass:

* ``jacobians``  all per-step Jacobians J_t (T x N x N);
* ``block16``    J_t Q for a block Q of k = 16 vectors, every step;
* ``profile``    ln ||dL/dh_{T-k}|| for every lag k (the gradient-norm profile).

Methods: ``engine`` (gradflow), ``naive`` (``autograd.jacobian`` once per step,
one backward pass per hidden unit, then numpy; at N = 256 it is timed on the
first ``--naive-steps`` steps and scaled to T, said so in the table), and
``closed`` (hand-derived ``J_t = diag(sech^2(a_t)) W`` in numpy, which only a
vanilla cell has). Peak memory is traced (tracemalloc) in a separate run.
Every engine result is checked against the closed form before it is timed.
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np
from _timing import best_of  # benchmarks/_timing.py: these files run as scripts
from autograd import jacobian

import gradflow as gf


def sech2(a):
    """d tanh / da, written here: the peer's Jacobians share nothing with gradflow's."""
    return 1.0 - np.tanh(a) ** 2


def closed_forward(W, U, b, xs):
    T = xs.shape[0]
    hs = np.empty((T + 1, *xs.shape[1:2], W.shape[0]))
    hs[0] = 0.0
    for t in range(T):
        hs[t + 1] = np.tanh(hs[t] @ W.T + xs[t] @ U.T + b)
    a = hs[:-1] @ W.T + xs @ U.T + b
    return hs, a


def closed_jacobians(W, U, b, xs):
    _, a = closed_forward(W, U, b, xs)
    return sech2(a)[..., None] * W


def closed_block(W, U, b, xs, Q):
    _, a = closed_forward(W, U, b, xs)
    return sech2(a)[..., None] * (W @ Q)


def closed_profile(W, U, b, xs, u):
    _, a = closed_forward(W, U, b, xs)
    d = sech2(a)
    T = xs.shape[0]
    out = np.zeros((T + 1, xs.shape[1]))
    g = np.broadcast_to(u, (xs.shape[1], u.size)).copy()
    acc = np.zeros(xs.shape[1])
    for k, t in enumerate(range(T - 1, -1, -1), start=1):
        g = (g * d[t]) @ W
        n = np.linalg.norm(g, axis=1)
        acc += np.log(n)
        g /= n[:, None]
        out[k] = acc
    return out


def naive_jacobians(cell, xs, steps):
    """autograd.jacobian per step: one backward pass per output unit."""
    hs = gf.unroll(cell, xs[:steps])
    out = []
    for t in range(steps):
        J = jacobian(lambda h, t=t: cell.step(cell.params, h[None], xs[t, :1])[0])(hs[t, 0])
        out.append(J)
    return np.stack(out)


def naive_block(cell, xs, Q, steps):
    return naive_jacobians(cell, xs, steps) @ Q


def naive_profile(cell, xs, u, steps):
    J = naive_jacobians(cell, xs, steps)
    g, acc, out = u.copy(), 0.0, [0.0]
    for t in range(steps - 1, -1, -1):
        g = g @ J[t]
        n = np.linalg.norm(g)
        acc += np.log(n)
        g /= n
        out.append(acc)
    return np.array(out)


def peak_mb(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def bench_size(N, T, naive_steps, repeat, rows):
    cell = gf.rnn(N, 8, gain=1.5, seed=0)
    xs = gf.inputs.gaussian(T, 1, 8, seed=1)
    W, U = cell.params["weight_hh_l0"], cell.params["weight_ih_l0"]
    b = cell.params["bias_ih_l0"] + cell.params["bias_hh_l0"]
    Q = np.linalg.qr(np.random.default_rng(2).normal(size=(N, 16)))[0]
    u = np.random.default_rng(0).standard_normal(N)
    u /= np.linalg.norm(u)

    # Correctness first: the engine against the closed form.
    assert np.allclose(gf.jacobians(cell, xs), closed_jacobians(W, U, b, xs), rtol=1e-10, atol=1e-14)
    assert np.allclose(gf.jacobian_products(cell, xs, Q), closed_block(W, U, b, xs, Q), atol=1e-12)
    flow = gf.gradient_flow(cell, xs, seed=0)
    assert np.allclose(flow.log_norms[:, 0], closed_profile(W, U, b, xs, u)[:, 0], atol=1e-8)

    ops = {
        "jacobians": (
            lambda: gf.jacobians(cell, xs),
            lambda: closed_jacobians(W, U, b, xs),
            lambda s: naive_jacobians(cell, xs, s),
        ),
        "block16": (
            lambda: gf.jacobian_products(cell, xs, Q),
            lambda: closed_block(W, U, b, xs, Q),
            lambda s: naive_block(cell, xs, Q, s),
        ),
        "profile": (
            lambda: gf.gradient_flow(cell, xs),
            lambda: closed_profile(W, U, b, xs, u),
            lambda s: naive_profile(cell, xs, u, s),
        ),
    }
    steps = min(T, naive_steps)
    for op, (engine, closed, naive) in ops.items():
        t_engine, t_closed = best_of(engine, repeat)[0], best_of(closed, repeat)[0]
        t_naive = best_of(lambda naive=naive: naive(steps), 1)[0] * T / steps
        rows.append(
            dict(
                N=N,
                T=T,
                op=op,
                engine_s=t_engine,
                closed_s=t_closed,
                naive_s=t_naive,
                naive_note="" if steps == T else f"(scaled from {steps} steps)",
                speedup_vs_naive=t_naive / t_engine,
                ratio_vs_closed=t_engine / t_closed,
                engine_mb=peak_mb(engine),
                closed_mb=peak_mb(closed),
            )
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument(
        "--naive-steps",
        type=int,
        default=200,
        help="steps of the naive loop actually timed at N = 256 (scaled to T)",
    )
    args = parser.parse_args(argv)
    sizes = [(16, 100), (32, 100)] if args.quick else [(64, 1000), (256, 1000)]
    repeat = 1 if args.quick else 3
    rows = []
    for N, T in sizes:
        bench_size(N, T, T if N <= 64 else args.naive_steps, repeat, rows)

    print(
        f"numpy {np.__version__}, tanh RNN, batch 1; times in seconds (best of {repeat}), "
        f"peak traced memory in MB"
    )
    head = (
        f"{'N':>4} {'T':>5} {'op':<10} {'engine':>8} {'closed':>8} {'naive':>9} "
        f"{'x naive':>8} {'/closed':>8} {'MB eng':>7} {'MB cl':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['N']:>4} {r['T']:>5} {r['op']:<10} {r['engine_s']:8.3f} {r['closed_s']:8.3f} "
            f"{r['naive_s']:9.2f} {r['speedup_vs_naive']:8.1f} {r['ratio_vs_closed']:8.2f} "
            f"{r['engine_mb']:7.1f} {r['closed_mb']:7.1f} {r['naive_note']}"
        )

    N, T = (32, 1000) if args.quick else (128, 10_000)
    cell = gf.rnn(N, 8, gain=1.5, seed=0)
    xs = gf.inputs.gaussian(T, 1, 8, seed=1)
    t_long = best_of(lambda: gf.gradient_flow(cell, xs), repeat)[0]
    mb_long = peak_mb(lambda: gf.gradient_flow(cell, xs))
    print(
        f"\nprofile N={N}, T={T}: {t_long:.2f} s (target < 2 s), peak {mb_long:.1f} MB "
        f"= {mb_long * 2**20 / (8 * T * N):.1f} x (T*N floats)"
    )

    if not args.quick:
        big = [r for r in rows if r["N"] == 256]
        print("\ntargets at N = 256:")
        for r in big:
            ok_naive = "ok" if r["speedup_vs_naive"] >= 30 else "MISSED"
            ok_closed = "ok" if r["ratio_vs_closed"] <= 2.5 else "MISSED"
            print(
                f"  {r['op']:<10} >= 30x naive: {r['speedup_vs_naive']:6.1f}x {ok_naive:6}  "
                f"<= 2.5x closed: {r['ratio_vs_closed']:5.2f}x {ok_closed}"
            )
        print(f"  profile N=128 T=10000 < 2 s: {t_long:.2f} s {'ok' if t_long < 2 else 'MISSED'}")
    return rows


if __name__ == "__main__":
    main()
