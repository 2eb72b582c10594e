"""Path lengths and sensitivity: speed of the graph analysis and of the reverse pass.

    python benchmarks/paths.py          # path_lengths at n = 4096 (target: < 2 s each);
                                        # sensitivity at n = 512 against autograd.jacobian
    python benchmarks/paths.py --quick  # n = 512 and n = 128

Table 1: seconds for `gf.path_lengths(model, n)` per architecture, with the graph's size.
Table 2: `gf.sensitivity` with its default loss (one reverse pass) and with
``loss="frobenius"`` (``||d y_{n-1} / d x_t||_F``: one forward trace and ``width`` reverse
passes; the engine's log-space sweep for recurrent models) against
``autograd.jacobian`` of ``y_{n-1}`` with respect to the whole input. For recurrent
models that is one backward pass per output through a Python loop over time; for the
feed-forward ones it does what gradflow does (one trace, one pass per output), so
expect no speed-up there. The Frobenius numbers are checked against it before timing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _timing import best_of  # benchmarks/_timing.py: these files run as scripts
from autograd import jacobian

import gradflow as gf


def models(width: int, inputs: int):
    return [
        gf.recurrent(gf.rnn(width, inputs, seed=0)),
        gf.recurrent(gf.lstm(width, inputs, seed=0), layers=2),
        gf.self_attention(width, heads=4, inputs=inputs, seed=0),
        gf.restricted_attention(width, window=64, heads=4, layers=4, inputs=inputs, seed=0),
        gf.hierarchical_attention(width, chunk=8, inputs=inputs, seed=0),
        gf.tcn(width, kernel=3, layers=11, inputs=inputs, seed=0),
        gf.conv_stack(width, kernel=9, layers=16, inputs=inputs, seed=0),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n_graph, n_sens, width = (512, 128, 16) if args.quick else (4096, 512, 32)

    print(f"path_lengths, n = {n_graph} (target < 2 s)")
    print(f"{'model':42s} {'nodes':>8s} {'edges':>10s} {'max path':>9s} {'depth':>6s} {'seconds':>8s}")
    for m in models(width, 8):
        secs, p = best_of(lambda m=m: gf.path_lengths(m, n_graph), 1 if args.quick else 3)
        print(
            f"{m.name:42s} {p.operations.nodes.sum():8d} {p.operations.edges.sum():10d} "
            f"{p.max_path:9d} {p.sequential_depth:6d} {secs:8.3f}"
        )

    print(f"\nsensitivity ||dy_(n-1)/dx_t||_F for every t, n = {n_sens}, width {width}, batch 1")
    print(f"{'model':42s} {'one pass s':>10s} {'frobenius s':>11s} {'naive s':>9s} {'speed-up':>9s}")
    xs = gf.inputs.gaussian(n_sens, 1, 8, seed=0)
    for m in models(width, 8):
        one, _ = best_of(lambda m=m: gf.sensitivity(m, xs), 1)
        secs, s = best_of(lambda m=m: gf.sensitivity(m, xs, loss="frobenius"), 1)
        t0 = time.perf_counter()
        J = jacobian(lambda x, m=m: m.apply(m.params, x)[-1, 0])(xs)  # (width, n, 1, inputs)
        naive = time.perf_counter() - t0
        with np.errstate(divide="ignore"):
            ref = 0.5 * np.log(np.sum(J**2, axis=(0, 2, 3)))[::-1]
        finite = np.isfinite(ref)
        assert np.array_equal(finite, np.isfinite(s.profile)), m.name
        np.testing.assert_allclose(s.profile[finite], ref[finite], rtol=1e-8, atol=1e-8, err_msg=m.name)
        print(f"{m.name:42s} {one:10.3f} {secs:11.3f} {naive:9.3f} {naive / secs:8.1f}x")


if __name__ == "__main__":
    main()
