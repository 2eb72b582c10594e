"""Sweeps: grids, the default task and its batching, executors, the cache, resuming, the CLI."""

import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sweep_tasks

import gradflow as gf
from gradflow import cli as _cli
from gradflow.sweep import CacheWarning, SweepWarning
from gradflow.sweep import _task as _sweep_task

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# Small but varied: every cell kind, two shapes, regimes on both sides of the edge.
MIXED = [
    {
        "cell": "rnn",
        "activation": ["tanh", "relu"],
        "hidden": [8, 12],
        "gain": [0.6, 1.6],
        "seq_len": 60,
        "predictors": "mean-field",
    },
    {"cell": ["lstm", "gru"], "hidden": 8, "gain": [0.8, 2.0], "seq_len": 50, "predictors": "all"},
]


def assert_same(a, b):
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def cache_entries(folder) -> int:
    # Not the ".tmp-*.json" files of writes in progress.
    return len([p for p in Path(folder).glob("entries-v1/*/*.json") if not p.name.startswith(".")])


@pytest.fixture(autouse=True)
def private_default_cache(tmp_path, monkeypatch):
    # Never touch the user's real cache, whatever a test forgets to pass.
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setattr(sweep_tasks, "calls", [])
    monkeypatch.setattr(sweep_tasks, "interrupt_after", None)
    return sweep_tasks


@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


# ------------------------------------------------------------------ grids


def test_points_are_the_product_of_the_lists_times_the_seeds_in_grid_order():
    pts = gf.sweep.points({"cell": "rnn", "hidden": [8, 16], "gain": (0.5, 1.0, 2.0)}, seeds=[3, 1])
    assert len(pts) == 2 * 3 * 2
    assert pts[0] == {"cell": "rnn", "hidden": 8, "gain": 0.5, "seed": 3}
    assert pts[1] == {"cell": "rnn", "hidden": 8, "gain": 0.5, "seed": 1}
    assert pts[-1] == {"cell": "rnn", "hidden": 16, "gain": 2.0, "seed": 1}
    assert [p["gain"] for p in pts[:6:2]] == [0.5, 1.0, 2.0]  # the first parameter varies slowest
    union = gf.sweep.points([{"cell": "lstm", "forget_bias": [0.0, 2.0]}, {"cell": "gru"}], seeds=[0])
    assert union == [
        {"cell": "lstm", "forget_bias": 0.0, "seed": 0},
        {"cell": "lstm", "forget_bias": 2.0, "seed": 0},
        {"cell": "gru", "seed": 0},
    ]


def test_a_toml_grid_is_the_same_sweep_as_the_dict(tmp_path):
    (tmp_path / "grid.toml").write_text(
        'seeds = [0, 1]\n[[grid]]\ncell = "rnn"\nhidden = 8\ngain = [0.5, 1.5]\nseq_len = 40\n'
        'predictors = "mean-field"\n[[grid]]\ncell = "gru"\nhidden = 8\nseq_len = 40\npredictors = "none"\n'
    )
    from_file = gf.sweep.run(tmp_path / "grid.toml", cache=False, progress=False)
    grid = [
        {"cell": "rnn", "hidden": 8, "gain": [0.5, 1.5], "seq_len": 40, "predictors": "mean-field"},
        {"cell": "gru", "hidden": 8, "seq_len": 40, "predictors": "none"},
    ]
    assert_same(from_file, gf.sweep.run(grid, seeds=[0, 1], cache=False, progress=False))
    assert list(from_file.columns) == [
        "cell",
        "hidden",
        "gain",
        "seq_len",
        "predictors",
        "seed",
        "measured_rate",
        "measured_regime",
        "rate_mean_field",
        "error",
    ]
    assert from_file.gain.isna().sum() == 2  # the gru sub-grid has no gain column of its own
    assert (from_file.error == "").all() and np.isfinite(from_file.measured_rate).all()


@pytest.mark.parametrize(
    "grid, kwargs, message",
    [
        ({"gain": []}, {}, "grid['gain'] is empty: give at least one value"),
        ({}, {}, "grid has no parameters"),
        ({"seed": [1, 2]}, {}, "'seed' is not a grid parameter: give seeds=[...] instead"),
        (
            {"gain": [[1.0, 2.0]]},
            {},
            "grid['gain'] values must be numbers, strings or booleans; got [1.0, 2.0]",
        ),
        ({"gain": [math.nan]}, {}, "grid['gain'] holds a non-finite number nan"),
        ({"gain": [1.0]}, {"seeds": [-1]}, "seeds must be a list of non-negative integers; got -1"),
        ({"gain": [1.0]}, {"seeds": [0, 0]}, "seeds must be distinct; got 0 twice"),
        ({"gain": [1.0]}, {"seeds": []}, "seeds must hold at least one seed"),
        ({"gian": [1.0]}, {}, "unknown parameter 'gian' for the default task"),
        ({"hidden": [8, 0]}, {}, "hidden must be an integer >= 1; got 0 (point hidden=0, seed=0)"),
        ({"seq_len": [1]}, {}, "seq_len must be an integer >= 2; got 1"),
        ({"cell": "lstm", "activation": "relu"}, {}, "activation applies to cell='rnn' only"),
        ({"cell": "cnn"}, {}, "unknown cell 'cnn'; expected one of rnn, lstm, gru"),
        (
            {"gain": [1.0]},
            {"executor": "threads"},
            "unknown executor 'threads'; expected one of serial, process, dask",
        ),
        (
            {"gain": [1.0]},
            {"executor": "process", "scheduler": "tcp://127.0.0.1:8786"},
            "it needs executor='dask'",
        ),
        ({"gain": [1.0]}, {"scheduler": "localhost"}, "scheduler must be a Dask scheduler address"),
        ({"gain": [1.0]}, {"executor": "serial", "workers": 2}, "workers must be 1; got 2"),
        ({"gain": [1.0]}, {"executor": "process", "workers": 0}, "workers must be an integer >= 1; got 0"),
        (
            {"gain": [1.0]},
            {"cache": 3},
            "cache must be True (the default folder), False or a folder path; got 3",
        ),
        (
            {"gain": [1.0]},
            {"task": "sweep_tasks:nothing"},
            "unknown task 'sweep_tasks:nothing'; gradflow's tasks are",
        ),
        ("no/such/grid.toml", {}, "grid file 'no/such/grid.toml' does not exist"),
    ],
)
def test_bad_input_is_refused_before_anything_runs_naming_the_argument(grid, kwargs, message):
    with pytest.raises(ValueError) as err:
        gf.sweep.run(grid, progress=False, **{"cache": False, **kwargs})
    assert message in str(err.value)


def test_a_task_other_processes_cannot_import_is_refused():
    with pytest.raises(ValueError, match="task must be picklable"):
        gf.sweep.run({"x": [1]}, task=lambda p: {"y": 1}, executor="process", cache=False, progress=False)


# ------------------------------------------------------------------ the default task


@pytest.mark.parametrize(
    "point",
    [
        {"hidden": 12, "gain": 1.3, "seq_len": 80, "batch": 2, "seed": 4},
        {"cell": "lstm", "hidden": 8, "forget_bias": 2.0, "gain": 1.5, "seq_len": 60, "seed": 1},
        {"cell": "gru", "hidden": 8, "layers": 2, "update_bias": 1.0, "seq_len": 60, "seed": 2},
    ],
)
def test_the_default_task_is_gradient_flow_and_predict_on_the_points_cell(point):
    row = gf.sweep.gradient_flow_task(point)
    # The task's documented recipe, rebuilt here with the public constructors.
    p = _sweep_task.resolve(point)
    streams = np.random.SeedSequence(point["seed"]).generate_state(4)
    make = {"rnn": gf.rnn, "lstm": gf.lstm, "gru": gf.gru}[p["cell"]]
    extra = {
        "lstm": {"forget_bias": p["forget_bias"]},
        "gru": {"update_bias": p["update_bias"]},
        "rnn": {"activation": p["activation"]},
    }[p["cell"]]
    cell = make(p["hidden"], p["inputs"], gain=p["gain"], layers=p["layers"], seed=int(streams[0]), **extra)
    xs = gf.inputs.gaussian(p["seq_len"], p["batch"], p["inputs"], seed=int(streams[1]))
    flow = gf.gradient_flow(cell, xs, seed=int(streams[2]))
    prediction = gf.predict(cell, xs, seed=int(streams[3]))
    # The sweep measures batched points by a traced sweep; gradient_flow takes the closed-form sweep
    # for one-layer built-in cells: the same numbers up to rounding (tests/test_speed_paths.py).
    assert row["measured_rate"] == pytest.approx(flow.rate, rel=0, abs=1e-12)
    assert row["measured_regime"] == flow.regime
    assert row["predicted_rate"] == prediction.rate and row["trusted_predictor"] == prediction.method
    for result in prediction.results:
        column = "rate_" + result.method.replace(" ", "_").replace("-", "_")
        assert row[column] == result.rate or (np.isnan(row[column]) and np.isnan(result.rate))


def test_batched_points_give_the_bits_they_give_alone_whatever_shares_their_batch():
    task = gf.sweep.gradient_flow_task
    for grid in (
        {
            "cell": "rnn",
            "activation": ["tanh", "relu"],
            "hidden": 8,
            "gain": [0.5, 1.0, 2.5],
            "input_scale": [0.0, 1.0],
            "seq_len": 60,
            "predictors": "mean-field",
        },
        {"cell": "lstm", "hidden": 8, "layers": 2, "gain": [0.5, 3.0], "seq_len": 40, "predictors": "none"},
        {"cell": "gru", "hidden": 8, "batch": 3, "gain": [0.5, 3.0], "seq_len": 40, "predictors": "none"},
    ):
        pts = gf.sweep.points(grid, seeds=[0, 1])
        alone = [task(p) for p in pts]
        for group in {task.batch_key(p) for p in pts}:
            members = [i for i, p in enumerate(pts) if task.batch_key(p) == group]
            assert task.run_batch([pts[i] for i in members]) == [alone[i] for i in members]
            odd = members[1::2]
            assert task.run_batch([pts[i] for i in odd]) == [alone[i] for i in odd]


def test_points_of_different_shapes_are_not_batched_together():
    task = gf.sweep.gradient_flow_task
    with pytest.raises(ValueError, match="one batch_key"):
        task.run_batch([{"hidden": 8, "seq_len": 40}, {"hidden": 12, "seq_len": 40}])


def test_a_failing_point_is_reported_with_its_configuration_and_the_rest_go_on():
    # ReLU with gain 40 overflows float64 within 300 steps; it shares a batch with the others.
    grid = {
        "cell": "rnn",
        "activation": "relu",
        "hidden": 8,
        "gain": [0.5, 40.0, 0.9],
        "seq_len": 300,
        "predictors": "none",
    }
    with pytest.warns(SweepWarning, match=r"1 of 3 points failed.*gain=40\.0.*FloatingPointError"):
        frame = gf.sweep.run(grid, cache=False, progress=False)
    assert list(frame.error != "") == [False, True, False]
    assert "became non-finite" in frame.error[1] and np.isnan(frame.measured_rate[1])
    alone = [gf.sweep.gradient_flow_task(p) for p in gf.sweep.points(grid) if p["gain"] != 40.0]
    assert list(frame.measured_rate[[0, 2]]) == [r["measured_rate"] for r in alone]


# ------------------------------------------------------------------ executors


def test_serial_process_and_dask_local_cluster_give_identical_frames(tmp_path):
    serial = gf.sweep.run(MIXED, seeds=[0, 1], executor="serial", cache=False, progress=False)
    assert len(serial) == 24 and (serial.error == "").all()
    process = gf.sweep.run(MIXED, seeds=[0, 1], executor="process", workers=2, cache=False, progress=False)
    assert_same(serial, process)
    one_per_job = gf.sweep.run(
        MIXED, seeds=[0, 1], executor="process", workers=2, batch_size=1, cache=False, progress=False
    )
    assert_same(serial, one_per_job)
    pytest.importorskip("distributed")
    dask = gf.sweep.run(MIXED, seeds=[0, 1], executor="dask", workers=2, cache=tmp_path, progress=False)
    assert_same(serial, dask)
    from_cache = gf.sweep.run(MIXED, seeds=[0, 1], cache=tmp_path, progress=False)
    assert from_cache.attrs["sweep"]["cached"] == 24
    assert_same(serial, from_cache)


def test_killing_a_dask_worker_mid_sweep_still_completes_every_point(tmp_path, dask_cluster):
    cluster, client = dask_cluster
    gate = tmp_path / "gate"  # points 4.. wait for it: the kill always lands mid-sweep
    grid = {"x": list(range(12)), "gate": str(gate), "gated_from": 4}
    pids = set(client.run(os.getpid).values())
    killed = {}

    def kill_one_worker_then_open_the_gate():
        deadline = time.monotonic() + 60
        while cache_entries(tmp_path / "cache") < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # both workers are now inside gated points
        killed["done_before"] = cache_entries(tmp_path / "cache")
        killed["pid"] = min(pids)
        os.kill(killed["pid"], signal.SIGKILL)
        gate.touch()

    killer = threading.Thread(target=kill_one_worker_then_open_the_gate)
    killer.start()
    frame = gf.sweep.run(
        grid,
        task=sweep_tasks.counting_task,
        scheduler=cluster.scheduler_address,
        cache=tmp_path / "cache",
        progress=False,
    )
    killer.join()
    assert killed["done_before"] == 4  # the worker died mid-sweep
    assert killed["pid"] not in set(client.run(os.getpid).values())
    assert (frame.error == "").all() and len(frame) == 12
    assert list(frame.value) == [sweep_tasks.expected_value(p) for p in gf.sweep.points(grid)]


def test_a_process_pool_whose_worker_dies_is_restarted_and_loses_no_point(tmp_path):
    grid = {"x": list(range(6)), "marker": str(tmp_path / "died")}
    frame = gf.sweep.run(
        grid, task=sweep_tasks.dying_task, executor="process", workers=2, cache=False, progress=False
    )
    assert (tmp_path / "died").exists()  # a worker did die
    assert (frame.error == "").all()
    assert list(frame.value) == [sweep_tasks.expected_value(p) for p in gf.sweep.points(grid)]


# ------------------------------------------------------------------ cache and resume


def test_an_interrupted_sweep_resumes_without_recomputing_finished_points(tmp_path, counting):
    grid = {"x": [0.5, 1.0, 2.0, 3.0], "sleep": 0.0}
    counting.interrupt_after = 5
    with pytest.raises(KeyboardInterrupt):
        gf.sweep.run(grid, task=counting.counting_task, seeds=[0, 1], cache=tmp_path, progress=False)
    assert len(counting.calls) == 5 and cache_entries(tmp_path) == 5
    finished = list(counting.calls)
    counting.interrupt_after, counting.calls[:] = None, []
    resumed = gf.sweep.run(grid, task=counting.counting_task, seeds=[0, 1], cache=tmp_path, progress=False)
    assert len(counting.calls) == 3 and not any(p in finished for p in counting.calls)
    assert resumed.attrs["sweep"] == {"points": 8, "cached": 5, "computed": 3, "failed": 0}
    assert_same(
        resumed, gf.sweep.run(grid, task=counting.counting_task, seeds=[0, 1], cache=False, progress=False)
    )


def test_an_interrupted_batched_sweep_resumes_to_the_same_bits(tmp_path, monkeypatch):
    grid = {"hidden": 8, "gain": [0.5, 0.9, 1.3, 1.7, 2.1], "seq_len": 50, "predictors": "mean-field"}
    uninterrupted = gf.sweep.run(grid, seeds=[0, 1], cache=False, progress=False)
    measured = []
    original = _sweep_task.measured_rates

    def interrupted_after_four_points(models):
        if len(measured) >= 4:
            raise KeyboardInterrupt
        measured.extend(models)
        return original(models)

    monkeypatch.setattr(_sweep_task, "measured_rates", interrupted_after_four_points)
    with pytest.raises(KeyboardInterrupt):  # jobs of 2 points: two finish, the third is interrupted
        gf.sweep.run(grid, seeds=[0, 1], batch_size=2, cache=tmp_path, progress=False)
    assert cache_entries(tmp_path) == 4
    monkeypatch.setattr(_sweep_task, "measured_rates", original)
    resumed = gf.sweep.run(grid, seeds=[0, 1], batch_size=4, cache=tmp_path, progress=False)
    assert resumed.attrs["sweep"]["computed"] == 6  # new batches, other neighbours: the same bits
    assert_same(resumed, uninterrupted)


def test_ctrl_c_stops_a_process_pool_sweep_and_the_same_command_resumes_it(tmp_path):
    grid_file, cache, calls = tmp_path / "grid.toml", tmp_path / "cache", tmp_path / "calls.log"
    gate = tmp_path / "gate"  # points 4.. wait for it: Ctrl-C always lands mid-sweep
    grid_file.write_text(
        f'seeds = [0]\n[grid]\nx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\ngate = "{gate}"\ngated_from = 4\n'
    )
    env = {
        **os.environ,
        "GRADFLOW_TEST_CALLS": str(calls),
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "gradflow",
        "sweep",
        str(grid_file),
        "--workers",
        "2",
        "--task-module",
        "sweep_tasks:counting_task",
        "--cache-dir",
        str(cache),
        "--out",
        str(tmp_path / "out.csv"),
        "--quiet",
    ]
    # A shell's background job ignores SIGINT, and the child would inherit that: restore it.
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while cache_entries(cache) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)  # both workers are now inside gated points
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "gradflow: interrupted; finished points are cached: run the same command again to resume"
    ]  # no traceback, no leaked resources
    assert cache_entries(cache) == 4 and not (tmp_path / "out.csv").exists()
    before = len(calls.read_text().splitlines())
    gate.touch()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "12 points: 4 from the cache, 8 computed" in rerun.stdout
    assert len(calls.read_text().splitlines()) - before == 8  # the 4 finished points did not run again
    out = pd.read_csv(tmp_path / "out.csv")
    expected = [sweep_tasks.expected_value({"x": x, "seed": 0}) for x in range(12)]
    np.testing.assert_allclose(out.value, expected, rtol=1e-9)


def test_damaged_cache_entries_are_recomputed_with_a_warning(tmp_path):
    grid = {"hidden": 8, "gain": [0.5, 1.5, 2.5], "seq_len": 40, "predictors": "mean-field"}
    first = gf.sweep.run(grid, cache=tmp_path, progress=False)
    truncated, edited, _ = sorted(Path(tmp_path).glob("entries-v1/*/[0-9a-f]*.json"))
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    edited.write_text(edited.read_text().replace('"measured_regime","', '"measured_regime","not '))
    assert gf.sweep.cache_info(tmp_path).damaged == 2
    with pytest.warns(CacheWarning) as caught:
        again = gf.sweep.run(grid, cache=tmp_path, progress=False)
    reasons = sorted(str(w.message) for w in caught)
    assert len(reasons) == 2
    assert any("not valid JSON" in r and truncated.name in r for r in reasons)
    assert any("checksum mismatch" in r and edited.name in r for r in reasons)
    assert again.attrs["sweep"] == {"points": 3, "cached": 1, "computed": 2, "failed": 0}
    assert_same(again, first)
    info = gf.sweep.cache_info(tmp_path)
    assert (info.entries, info.damaged) == (3, 0)


def test_a_new_gradflow_version_is_a_new_cache_entry(tmp_path, monkeypatch):
    grid = {"hidden": 8, "seq_len": 40, "predictors": "none"}
    gf.sweep.run(grid, cache=tmp_path, progress=False)
    version = gf.__version__
    from gradflow.sweep import _run

    monkeypatch.setattr(_run, "read_version", lambda: "99.0")  # what run keys the cache by
    assert gf.sweep.run(grid, cache=tmp_path, progress=False).attrs["sweep"]["computed"] == 1
    assert gf.sweep.cache_info(tmp_path).versions == {version: 1, "99.0": 1}


def test_cache_info_and_clear_from_the_command_line(tmp_path, capsys):
    gf.sweep.run(
        {"hidden": 8, "gain": [0.5, 1.5], "seq_len": 40, "predictors": "none"}, cache=tmp_path, progress=False
    )
    (tmp_path / "notes.txt").write_text("not the cache's")
    assert _cli.main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    assert "entries: 2 (" in capsys.readouterr().out
    assert _cli.main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert f"removed 2 entries from {tmp_path}" in capsys.readouterr().out
    assert gf.sweep.cache_info(tmp_path).entries == 0 and (tmp_path / "notes.txt").exists()


# ------------------------------------------------------------------ command line


def test_the_command_line_sweep_writes_the_api_frame(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'seeds = [0, 1]\n[grid]\nhidden = 8\ngain = [0.5, 1.5]\nseq_len = 40\npredictors = "mean-field"\n'
    )
    out = tmp_path / "out.csv"
    assert (
        _cli.main(["sweep", str(grid), "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 0
    )
    assert "4 points: 0 from the cache, 4 computed, 0 failed" in capsys.readouterr().out
    written = pd.read_csv(out, keep_default_na=False)
    frame = gf.sweep.run(grid, cache=False, progress=False)
    assert list(written.columns) == list(frame.columns)
    np.testing.assert_allclose(written.measured_rate, frame.measured_rate, rtol=1e-9)
    assert list(written.measured_regime) == list(frame.measured_regime)


def test_failed_points_are_listed_and_the_exit_code_says_so(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        '[grid]\nactivation = "relu"\nhidden = 8\ngain = [0.5, 40.0]\nseq_len = 300\npredictors = "none"\n'
    )
    assert _cli.main(["sweep", str(grid), "--no-cache", "--quiet", "--out", str(tmp_path / "o.csv")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "failed: activation='relu', hidden=8, gain=40.0, seq_len=300, "
        "predictors='none', seed=0: FloatingPointError: the state"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "missing.toml"], "gradflow: error: grid file 'missing.toml' does not exist"),
        (["sweep", "{bad}"], "gradflow: error: grid file"),
        (["sweep", "{grid}", "--executor", "threads"], "gradflow sweep: argument --executor: invalid choice"),
        (
            ["sweep", "{grid}", "--dask-local", "0"],
            "argument --dask-local: expected a positive integer; got '0'",
        ),
        (["sweep", "{grid}", "--scheduler", "tcp://h:1", "--dask-local", "2"], "not both"),
        (["sweep", "{grid}", "--executor", "process", "--scheduler", "tcp://h:1"], "need --executor dask"),
        (["sweep", "{grid}", "--scheduler", "h:1"], "scheduler must be a Dask scheduler address"),
        (["sweep", "{unknown}"], "gradflow: error: unknown parameter 'gian'"),
        (["sweep", "{grid}", "--seeds", "0,x"], "expected comma-separated integers"),
        (["cache", "purge"], "gradflow cache: argument action: invalid choice: 'purge'"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_command_lines_get_one_readable_line_and_exit_code_2(tmp_path, capsys, argv, message):
    (tmp_path / "grid.toml").write_text("[grid]\nhidden = 8\nseq_len = 40\n")
    (tmp_path / "bad.toml").write_text("[grid\n")
    (tmp_path / "unknown.toml").write_text("[grid]\ngian = 1.0\n")
    argv = [
        a.format(grid=tmp_path / "grid.toml", bad=tmp_path / "bad.toml", unknown=tmp_path / "unknown.toml")
        for a in argv
    ]
    assert _cli.main([*argv, "--no-cache"] if argv[:1] == ["sweep"] else argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_gradflow_console_script_is_declared_and_runs(tmp_path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"gradflow": "gradflow.cli:main"}
    proc = subprocess.run(
        [sys.executable, "-m", "gradflow", "sweep", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"gradflow: error: grid file '{tmp_path / 'none.toml'}' does not exist"
    ]


def test_benchmark_quick_mode_runs_and_checks_its_numbers():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "batched vs one point per task" in proc.stdout


def test_no_warnings_leak_from_a_clean_sweep():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = gf.sweep.run({"hidden": 8, "seq_len": 40, "predictors": "none"}, cache=False, progress=False)
    assert (frame.error == "").all()
