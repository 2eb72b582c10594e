"""Lyapunov spectrum speed against the same QR loop on closed-form numpy Jacobians.

    python benchmarks/lyapunov.py          # tanh cell, N = 256, T = 1000 (plus 100 warm-up)
    python benchmarks/lyapunov.py --quick  # N = 64, T = 200

Rows: the full spectrum (all N exponents) by gradflow, and by the very same QR loop
(``gradflow.measure.qr_log_growth``: LAPACK dgeqrf + dormqr, BLAS on one thread)
fed closed-form Jacobians ``diag(sech^2(a_t)) W``; the top 16 exponents by gradflow;
and the full spectrum by the textbook loop (numpy.linalg.qr + matmul) for reference.
Every gradflow result is checked against the closed-form one before timing.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_of  # benchmarks/_timing.py: these files run as scripts

import gradflow as gf
from gradflow.measure import initial_block, qr_log_growth


def sech2(a):
    """d tanh / da, written here: the peer's Jacobians share nothing with gradflow's."""
    return 1.0 - np.tanh(a) ** 2


def closed_chunks(cell, xs, states, chunk=64):
    W, U = cell.params["weight_hh_l0"], cell.params["weight_ih_l0"]
    b = cell.params["bias_ih_l0"] + cell.params["bias_hh_l0"]
    for t0 in range(0, xs.shape[0], chunk):
        a = states[t0 : t0 + chunk] @ W.T + xs[t0 : t0 + chunk] @ U.T + b
        yield sech2(a)[..., None] * W


def closed_spectrum(cell, xs, warmup, seed=0):
    T, B, _ = xs.shape
    S = cell.state_size
    states = gf.unroll(cell, xs)[:-1]
    logs = np.empty((T, B, S))
    qr_log_growth(
        closed_chunks(cell, xs, states), initial_block(np.random.default_rng(seed), B, S, S), 1, logs
    )
    return np.sort(logs[warmup:].mean(axis=0)[0])[::-1]


def textbook_spectrum(cell, xs, warmup, seed=0):
    states = gf.unroll(cell, xs)[:-1]
    Q = initial_block(np.random.default_rng(seed), 1, cell.state_size, cell.state_size)[0]
    acc = np.zeros(cell.state_size)
    for t, J in enumerate(j for chunk in closed_chunks(cell, xs, states) for j in chunk[:, 0]):
        Q, R = np.linalg.qr(J @ Q)
        if t >= warmup:
            acc += np.log(np.abs(np.diag(R)))
    return np.sort(acc / (xs.shape[0] - warmup))[::-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    N, T, warmup, repeat = (64, 200, 20, 1) if args.quick else (256, 1000, 100, 3)
    cell = gf.rnn(N, 8, gain=2.0, seed=0)
    xs = gf.inputs.gaussian(T + warmup, 1, 8, scale=0.5, seed=1)

    t_full, full = best_of(lambda: gf.lyapunov_spectrum(cell, xs, warmup=warmup), repeat)
    t_closed, closed = best_of(lambda: closed_spectrum(cell, xs, warmup), repeat)
    np.testing.assert_allclose(full.exponents, closed, atol=1e-10)  # the same numbers
    t_top, top = best_of(lambda: gf.lyapunov_spectrum(cell, xs, k=16, warmup=warmup), repeat)
    t_text, text = best_of(lambda: textbook_spectrum(cell, xs, warmup), 1)
    assert abs(top.exponents[0] - full.exponents[0]) < 5e-3 and abs(text[0] - closed[0]) < 1e-8

    print(f"tanh RNN, N = {N}, T = {T} (+{warmup} warm-up), batch 1; seconds, best of {repeat}")
    print(f"{'what':<52} {'seconds':>8} {'ratio':>7}")
    print(f"{'gradflow, all exponents':<52} {t_full:8.3f} {t_full / t_closed:7.2f}")
    print(f"{'same QR loop on closed-form Jacobians':<52} {t_closed:8.3f} {1:7.2f}")
    print(
        f"{'textbook loop (numpy.linalg.qr + matmul), closed J':<52} {t_text:8.3f} {t_text / t_closed:7.2f}"
    )
    print(f"{'gradflow, top 16 exponents':<52} {t_top:8.3f}")
    print(f"lambda_1 = {full.exponents[0]:+.5f}, sum = {full.exponents.sum():+.5f} nats/step")
    if not args.quick:
        print(
            f"targets: all exponents within 1.5x of the closed-form loop: {t_full / t_closed:.2f}x "
            f"{'ok' if t_full / t_closed <= 1.5 else 'MISSED'}; top 16 under 0.5 s: {t_top:.2f} s "
            f"{'ok' if t_top < 0.5 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
