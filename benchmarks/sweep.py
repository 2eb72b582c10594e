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


def cpu_counters() -> np.ndarray | None:
    """Cumulative (busy, idle, steal) jiffies of all CPUs, from /proc/stat (Linux), else None."""
    try:
        with open("/proc/stat") as fh:
            v = np.array(fh.readline().split()[1:9], dtype=float)
    except OSError:
        return None
    return np.array([v[0] + v[1] + v[2] + v[5] + v[6], v[3] + v[4], v[7]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    args = parser.parse_args(argv)
    hidden, steps, gains, seeds, repeat = (16, 100, 6, 4, 1) if args.quick else (64, 500, 40, 5, 5)
    grid = {
        "cell": "rnn",
        "activation": "tanh",
        "hidden": hidden,
        "seq_len": steps,
        "gain": [round(g, 4) for g in np.linspace(0.5, 2.0, gains)],
        "input_scale": 1.0,
        "predictors": "mean-field",
    }
    seed_list = list(range(seeds))
    points = gains * seeds
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def sweep(**kwargs):
        return gf.sweep.run(grid, seeds=seed_list, cache=False, progress=False, **kwargs)

    seconds: dict[str, float] = {}
    frames: dict[str, pd.DataFrame] = {}

    def rounds(runs: dict, count: int) -> None:
        # Rounds of every configuration, best of each: other load on the machine comes and
        # goes, and interleaving keeps it from favouring whichever ran at a quiet moment.
        for _ in range(count):
            for label, fn in runs.items():
                t0 = time.perf_counter()
                frames[label] = fn()
                seconds[label] = min(seconds.get(label, np.inf), time.perf_counter() - t0)

    t0 = time.perf_counter()
    warm = {"hidden": 8, "seq_len": 20, "predictors": "none", "gain": [0.5, 1.0, 1.5, 2.0]}
    gf.sweep.run(warm, executor="process", workers=workers, batch_size=1, cache=False, progress=False)
    pool_start = time.perf_counter() - t0
    before = cpu_counters()
    rounds(
        {
            "in-process, batched": lambda: sweep(executor="serial"),
            "process pool, batched": lambda: sweep(executor="process", workers=workers),
        },
        repeat,
    )
    rounds(
        {
            "in-process, one point per task": lambda: sweep(executor="serial", batch_size=1),
            "process pool, one point per task": lambda: sweep(
                executor="process", workers=workers, batch_size=1
            ),
        },
        max(1, repeat // 2),
    )

    import distributed

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    cluster_start = time.perf_counter() - t0
    try:
        sweep(scheduler=client)  # first contact: the workers import gradflow
        # Against the pool with the cluster up, both under the same conditions.
        rounds(
            {
                "dask LocalCluster, batched": lambda: sweep(scheduler=client),
                "process pool, batched, beside the idle cluster": lambda: sweep(
                    executor="process", workers=workers
                ),
            },
            repeat,
        )
    finally:
        client.close()
        cluster.close()
    after = cpu_counters()
    with tempfile.TemporaryDirectory() as cache:
        gf.sweep.run(grid, seeds=seed_list, cache=cache, progress=False)
        t0 = time.perf_counter()
        frames["re-run, every point from the cache"] = cached = gf.sweep.run(
            grid, seeds=seed_list, cache=cache, progress=False
        )
        seconds["re-run, every point from the cache"] = time.perf_counter() - t0
        assert cached.attrs["sweep"]["cached"] == points

    reference = frames["in-process, batched"]
    assert len(reference) == points and (reference.error == "").all()
    for label, frame in frames.items():  # the same bits, however the points were run
        pd.testing.assert_frame_equal(frame, reference, check_exact=True, obj=label)

    print(
        f"{points} tanh RNNs, N = {hidden}, T = {steps}, gradient flow + mean-field prediction; "
        f"{workers} workers; seconds, best of {repeat} interleaved rounds "
        f"({max(1, repeat // 2)} for one point per task)"
    )
    print(f"{'what':<48} {'seconds':>8} {'points/s':>9}")
    for label, s in seconds.items():
        print(f"{label:<48} {s:8.2f} {points / s:9.1f}")
    print(
        f"start-up, once per session: process pool {pool_start:.2f} s, Dask LocalCluster "
        f"{cluster_start:.2f} s"
    )
    if before is not None and after is not None:
        busy, idle, steal = after - before
        print(
            f"machine during the timed rounds: CPUs {100 * busy / (busy + idle):.0f}% busy (this "
            f"benchmark and anything else running), {100 * steal / (busy + idle + steal):.0f}% "
            f"stolen by the hypervisor"
        )
    ratios = [
        (
            "process pool vs in-process, batched",
            seconds["in-process, batched"] / seconds["process pool, batched"],
            ">= 1.7x faster",
            1.7,
        ),
        (
            "process pool vs in-process, one point per task",
            seconds["in-process, one point per task"] / seconds["process pool, one point per task"],
            ">= 1.7x faster",
            1.7,
        ),
        (
            "batched vs one point per task, process pool",
            seconds["process pool, one point per task"] / seconds["process pool, batched"],
            ">= 3x faster",
            3.0,
        ),
        (
            "batched vs one point per task, in-process",
            seconds["in-process, one point per task"] / seconds["in-process, batched"],
            ">= 3x faster",
            3.0,
        ),
        (
            "dask LocalCluster time / process pool time",
            seconds["dask LocalCluster, batched"] / seconds["process pool, batched, beside the idle cluster"],
            "<= 1.3x",
            None,
        ),
    ]
    print(f"\n{'ratio':<48} {'value':>7}  target")
    for label, value, target, floor in ratios:
        ok = value >= floor if floor is not None else value <= 1.3
        verdict = ("ok" if ok else "MISSED") if not args.quick else "(quick mode: not judged)"
        print(f"{label:<48} {value:6.2f}x  {target} {verdict}")
    return seconds


if __name__ == "__main__":
    main()
