"""Sweep speed: process pool against in-process, batched against one point per task, Dask against the pool.

    python benchmarks/sweep.py          # 200 tanh RNNs, N = 64, T = 500
    python benchmarks/sweep.py --quick  # 24 tanh RNNs, N = 16, T = 100

Each point is the default task with ``predictors="mean-field"``: build the cell, measure
its gradient flow, and the mean-field prediction. Rows: in-process and on a local process
pool (every core), each batched (the default: points of one shape share a reverse pass)
and with one point per task (``batch_size=1``); a Dask ``LocalCluster`` with as many
worker processes; a re-run answered from the cache. Start-up (the pool's forkserver, the
cluster) is timed apart: it is paid once per session, not per sweep. Every run's
DataFrame is checked to be identical, bit for bit, to the in-process one before the
table is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd

import gradflow as gf


def timed(fn, repeat: int):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    args = parser.parse_args(argv)
    hidden, steps, gains, seeds, repeat = ((16, 100, 6, 4, 1) if args.quick else (64, 500, 40, 5, 2))
    grid = {"cell": "rnn", "activation": "tanh", "hidden": hidden, "seq_len": steps,
            "gain": [round(g, 4) for g in np.linspace(0.5, 2.0, gains)], "input_scale": 1.0,
            "predictors": "mean-field"}
    seed_list = list(range(seeds))
    points = gains * seeds
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def sweep(**kwargs):
        return gf.sweep.run(grid, seeds=seed_list, cache=False, progress=False, **kwargs)

    rows, frames = [], {}

    def row(label, seconds, frame):
        rows.append((label, seconds))
        frames[label] = frame

    t0 = time.perf_counter()
    gf.sweep.run({"hidden": 8, "seq_len": 20, "predictors": "none"}, executor="process", workers=workers,
                 cache=False, progress=False)
    pool_start = time.perf_counter() - t0
    row("in-process, batched", *timed(lambda: sweep(executor="serial"), repeat))
    row("process pool, batched", *timed(lambda: sweep(executor="process", workers=workers), repeat))
    row("in-process, one point per task", *timed(lambda: sweep(executor="serial", batch_size=1), repeat))
    row("process pool, one point per task",
        *timed(lambda: sweep(executor="process", workers=workers, batch_size=1), repeat))

    import distributed

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    cluster_start = time.perf_counter() - t0
    try:
        sweep(scheduler=client)  # first contact: workers import gradflow
        row("dask LocalCluster, batched", *timed(lambda: sweep(scheduler=client), repeat))
    finally:
        client.close()
        cluster.close()
    with tempfile.TemporaryDirectory() as cache:
        gf.sweep.run(grid, seeds=seed_list, cache=cache, progress=False)
        t_cached, cached = timed(lambda: gf.sweep.run(grid, seeds=seed_list, cache=cache, progress=False),
                                 repeat)
        assert cached.attrs["sweep"]["cached"] == points
    row("re-run, every point from the cache", t_cached, cached)

    reference = frames["in-process, batched"]
    assert len(reference) == points and (reference.error == "").all()
    for label, frame in frames.items():  # the same bits, however the points were run
        pd.testing.assert_frame_equal(frame, reference, check_exact=True, obj=label)

    seconds = dict(rows)
    print(f"{points} tanh RNNs, N = {hidden}, T = {steps}, gradient flow + mean-field prediction; "
          f"{workers} workers; seconds, best of {repeat}")
    print(f"{'what':<40} {'seconds':>8} {'points/s':>9}")
    for label, s in rows:
        print(f"{label:<40} {s:8.2f} {points / s:9.1f}")
    print(f"start-up, once per session: process pool {pool_start:.2f} s, Dask LocalCluster "
          f"{cluster_start:.2f} s")
    ratios = [
        ("process pool vs in-process, batched", seconds["in-process, batched"]
         / seconds["process pool, batched"], ">= 1.7x faster", 1.7),
        ("process pool vs in-process, one point per task", seconds["in-process, one point per task"]
         / seconds["process pool, one point per task"], ">= 1.7x faster", 1.7),
        ("batched vs one point per task, process pool", seconds["process pool, one point per task"]
         / seconds["process pool, batched"], ">= 3x faster", 3.0),
        ("batched vs one point per task, in-process", seconds["in-process, one point per task"]
         / seconds["in-process, batched"], ">= 3x faster", 3.0),
        ("dask LocalCluster time / process pool time", seconds["dask LocalCluster, batched"]
         / seconds["process pool, batched"], "<= 1.3x", None),
    ]
    print(f"\n{'ratio':<48} {'value':>7}  target")
    for label, value, target, floor in ratios:
        ok = value >= floor if floor is not None else value <= 1.3
        verdict = ("ok" if ok else "MISSED") if not args.quick else "(quick mode: not judged)"
        print(f"{label:<48} {value:6.2f}x  {target} {verdict}")
    return rows


if __name__ == "__main__":
    main()
