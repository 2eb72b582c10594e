"""Hardening (issue 15): no silent wrong number, no stale result, no code run unasked, faults."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gradflow as gf
from gradflow import cli as _cli
from gradflow.core import _files
from gradflow.core._files import staged_folder, write_csv
from gradflow.measure._rates import MIN_FIT_LAGS, fit_rate
from gradflow.measure._singular_values import ConvergenceWarning
from gradflow.sweep import _cache as _sweep_cache
from gradflow.sweep import _run as _sweep

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# ------------------------------------------------------------------ exactly-zero gradients


def test_a_loss_with_zero_gradient_gives_no_rate_not_minus_infinity():
    cell = gf.rnn(8, 4, seed=0)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(50, 2, 4), loss=lambda h: h.sum(1) * 0.0)
    assert np.isnan(flow.rate) and flow.regime is None
    assert flow.fit.zero_from == 0
    assert "regime=None" in repr(flow)


def test_an_irnn_whose_units_all_die_early_gets_the_rate_it_had_while_alive():
    cell = gf.rnn(16, 4, activation="relu", init="identity", gain=0.3, seed=1)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(200, 1, 4, seed=2))
    assert flow.fit.zero_from is not None and flow.fit.zero_from < 20  # before fit_from = 20
    assert flow.fit.lag_range == (0, flow.fit.zero_from - 1)
    assert flow.rate < np.log(0.3) + 0.2 and flow.regime == "vanishing"


def test_the_profile_is_cut_where_the_gradient_becomes_exactly_zero():
    # ln-norm falls by exactly 0.1 per lag, then the gradient is exactly zero from lag 30.
    lags = np.arange(41.0)
    profile = np.where(lags < 30, -0.1 * lags, -np.inf)
    fit = fit_rate(lags, profile, 4)
    assert fit.rate == pytest.approx(-0.1, abs=1e-12)
    assert fit.zero_from == 30 and fit.lag_range == (4, 29)
    # Dead before the window has MIN_FIT_LAGS lags: the rate while it lived, over lags 0-29.
    early = fit_rate(lags, profile, 30 - MIN_FIT_LAGS + 1)
    assert early.rate == pytest.approx(-0.1, abs=1e-12) and early.lag_range == (0, 29)
    # Fewer than MIN_FIT_LAGS non-zero lags at all: no rate, and no -inf.
    dead = fit_rate(lags, np.where(lags < MIN_FIT_LAGS - 1, 0.0, -np.inf), 4)
    assert np.isnan(dead.rate) and dead.zero_from == MIN_FIT_LAGS - 1


def test_a_relu_identity_network_whose_gradient_dies_is_not_called_vanishing():
    cell = gf.rnn(16, 4, activation="relu", init="identity", gain=1.0, seed=0)
    flow = gf.gradient_flow(cell, gf.inputs.gaussian(3000, 1, 4))
    assert flow.fit.zero_from is not None and flow.profile[-1] == -np.inf
    assert np.isfinite(flow.rate) and flow.regime == "neutral"
    assert flow.fit.lag_range[1] == flow.fit.zero_from - 1
    assert any(k == "exactly zero" for k, _ in flow._summary())


def test_one_step_is_too_short_to_fit_a_rate():
    cell = gf.rnn(8, 4, seed=0)
    with pytest.raises(ValueError, match="xs has 1 step"):
        gf.gradient_flow(cell, gf.inputs.gaussian(5, 2, 4)[:1])
    with pytest.raises(ValueError, match="fit_from"):
        gf.gradient_flow(cell, gf.inputs.gaussian(5, 2, 4), fit_from=4)


def test_lyapunov_spectrum_of_a_dying_network_is_minus_infinity_without_a_warning():
    cell = gf.rnn(8, 1, activation="relu", init="identity", gain=1.0)
    cell.params["weight_ih_l0"][:] = 1.0
    xs = gf.inputs.constant(40, 1, 1, -5.0)  # every unit dead: each J_t is exactly 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in (2, 8):  # the stacked-JVP and the formed-Jacobian QR loops
            spectrum = gf.lyapunov_spectrum(cell, xs, k=k, warmup=5)
            assert np.all(spectrum.exponents == -np.inf)
            assert not np.any(np.isnan(spectrum.trace))


# ------------------------------------------------------------------ finite-time singular values


def _linear_cell(W):
    cell = gf.rnn(len(W), 1, activation="linear", seed=0)
    cell.params["weight_hh_l0"][:] = W
    return cell


def _slow_pair(symmetric: bool):
    """W with eigenvalues 1.0 and 0.99: over 20 steps sigma_2 / sigma_1 ~ 0.82, so 40 sweeps
    leave an error ~1e-4 (the default budget of the old code)."""
    rng = np.random.default_rng(3)
    S = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    if not symmetric:
        S = S + 0.05 * rng.standard_normal((4, 4))
    return S @ np.diag([1.0, 0.99, 0.5, 0.2]) @ np.linalg.inv(S)


def test_nearly_equal_singular_values_converge_against_the_closed_form():
    W, T = _slow_pair(symmetric=True), 20
    sv = gf.finite_time_singular_values(_linear_cell(W), np.zeros((T, 1, 1)), k=2)
    np.testing.assert_allclose(sv.log_values[0], T * np.log([1.0, 0.99]), atol=1e-8)
    assert sv.sweeps > 40 and sv.change <= 1e-10


def test_singular_values_against_an_mpmath_reference():
    mp = pytest.importorskip("mpmath")
    W, T = _slow_pair(symmetric=False), 20
    sv = gf.finite_time_singular_values(_linear_cell(W), np.zeros((T, 1, 1)), k=3)
    with mp.workdps(60):
        reference = [float(mp.log(v)) for v in mp.svd_r(mp.matrix(W.tolist()) ** T, compute_uv=False)]
    np.testing.assert_allclose(sv.log_values[0], sorted(reference, reverse=True)[:3], atol=1e-8)


def test_singular_values_that_do_not_converge_warn():
    W, T = _slow_pair(symmetric=True), 20
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        sv = gf.finite_time_singular_values(_linear_cell(W), np.zeros((T, 1, 1)), k=2, max_sweeps=2)
    assert sv.change > 1e-10


# ------------------------------------------------------------------ mismatches and overflow


def test_compare_of_two_different_cells_names_both():
    xs = gf.inputs.gaussian(30, 1, 4)
    rnn, lstm = gf.rnn(8, 4, seed=0), gf.lstm(8, 4, seed=0)
    with pytest.raises(ValueError, match=r"'rnn-tanh'.*'lstm'"):
        gf.compare(gf.predict(rnn, xs, probes=2, fixed_point_starts=1), gf.gradient_flow(lstm, xs))


def test_a_step_returning_complex_values_is_a_type_error_naming_the_cell():
    with pytest.raises(TypeError, match=r"step\('twisted'\) must return real values"):
        gf.Cell(lambda p, h, x: h * (1 + 1j), {}, 3, 2, name="twisted")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_meanfield_at_huge_gain_is_finite_or_a_clear_error(activation):
    with pytest.raises(ValueError, match="sigma_w must be at most"):
        gf.meanfield.chi1(1e300, activation=activation)
    chi = gf.meanfield.chi1(1e150, activation=activation)
    assert np.isfinite(chi) and chi > 1e100


def test_meanfield_tanh_at_huge_gain_matches_its_asymptote():
    # q* -> sigma_w^2, E[sech^4(sqrt(q) z)] -> (4/3) / sqrt(2 pi q): chi_1 -> sigma_w (4/3) / sqrt(2 pi).
    for sigma_w in (1e20, 1e150):
        assert gf.meanfield.chi1(sigma_w) / sigma_w == pytest.approx(4 / 3 / np.sqrt(2 * np.pi), rel=1e-6)


def test_predict_on_huge_inputs_blames_xs_not_input_var():
    cell = gf.rnn(8, 4, seed=0)
    with pytest.raises(ValueError, match=r"^xs is too large"):
        gf.predict(cell, gf.inputs.gaussian(20, 2, 4) * 1e300)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_predict_names_a_bad_seed(seed):
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer"):
        gf.predict(gf.rnn(4, 2, seed=0), gf.inputs.gaussian(10, 1, 2), seed=seed)


# ------------------------------------------------------------------ stale results

GRID = {"hidden": 8, "seq_len": 30, "predictors": "mean-field"}


def test_the_version_is_read_from_pyproject():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as fh:
        assert gf.__version__ == tomllib.load(fh)["project"]["version"] != "0.1.0"


def test_changed_gradflow_source_is_a_new_cache_entry_and_old_ones_are_stale(tmp_path, monkeypatch):
    gf.sweep.run(GRID, cache=tmp_path, progress=False)
    assert gf.sweep.cache_info(tmp_path).stale == 0
    monkeypatch.setattr(_sweep, "source_digest", lambda: "edited-source")
    assert gf.sweep.run(GRID, cache=tmp_path, progress=False).attrs["sweep"]["computed"] == 1
    info = gf.sweep.cache_info(tmp_path)  # still compares against the real source
    assert (info.entries, info.stale) == (2, 1) and "stale: 1" in str(info)


def _task_v1(point):
    return {"y": 1.0}


def _task_v2(point):
    return {"y": 2.0}


def test_a_changed_user_task_is_a_new_cache_entry():
    _task_v2.__qualname__ = _task_v1.__qualname__  # same name, other source
    assert _sweep.task_id(_task_v1) != _sweep.task_id(_task_v2)
    assert _sweep.task_id(gf.sweep.gradient_flow_task) == "gradflow.sweep._task:GradientFlowTask"


# ------------------------------------------------------------------ no code run unasked


def test_a_grid_file_cannot_name_a_module_to_import(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('task = "subprocess:run"\n[grid]\nargs = "touch pwned"\n')
    with pytest.raises(ValueError, match="unknown task 'subprocess:run'"):
        gf.sweep.run(grid, cache=False, progress=False)
    with pytest.raises(ValueError, match="unknown task 'os:system'"):
        gf.sweep.run({"x": [1]}, task="os:system", cache=False, progress=False)
    assert _cli.main(["sweep", str(grid), "--no-cache"]) == 2
    assert "unknown task 'subprocess:run'" in capsys.readouterr().err
    grid.write_text('task = "gradient_flow"\n[grid]\nhidden = 8\nseq_len = 30\npredictors = "none"\n')
    assert gf.sweep.run(grid, cache=False, progress=False).measured_regime.notna().all()


def test_python_m_gradflow_does_not_import_from_the_working_directory(tmp_path):
    (tmp_path / "tqdm").mkdir()  # imported lazily by the sweep: a planted package must not run
    (tmp_path / "tqdm" / "__init__.py").write_text("open('pwned', 'w').close()\n")
    (tmp_path / "grid.toml").write_text('[grid]\nhidden = 8\nseq_len = 30\npredictors = "none"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "gradflow", "sweep", "grid.toml", "--no-cache", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "pwned").exists()


def _forge(entry_path, change):
    entry = json.loads(entry_path.read_text())
    change(entry)
    entry["sha256"] = _sweep_cache._digest(_sweep_cache.canonical_json(entry["result"]))  # a forger can
    entry_path.write_text(_sweep_cache.canonical_json(entry))


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda e: e["result"].__setitem__(0, ["measured_rate", '=HYPERLINK("x")']), "must be a number"),
        (lambda e: e["result"].__setitem__(1, ["measured_regime", "=cmd|' /C calc'!A0"]), "must be one of"),
        (lambda e: e["result"].append(["extra", {"nested": [1, 2]}]), "not a number or a string"),
        (lambda e: e["result"].append(["extra", 1.0]), "are not the task's"),
    ],
)
def test_forged_cache_entries_are_recomputed(tmp_path, change, reason):
    first = gf.sweep.run(GRID, cache=tmp_path, progress=False)
    (entry,) = tmp_path.glob("entries-v1/*/*.json")
    _forge(entry, change)
    with pytest.warns(gf.sweep.CacheWarning, match=reason):
        again = gf.sweep.run(GRID, cache=tmp_path, progress=False)
    assert again.attrs["sweep"]["computed"] == 1
    pd.testing.assert_frame_equal(again, first)


def test_a_fifo_at_an_entry_path_does_not_hang_the_sweep_or_cache_info(tmp_path):
    gf.sweep.run(GRID, cache=tmp_path, progress=False)
    (entry,) = tmp_path.glob("entries-v1/*/*.json")
    entry.unlink()
    os.mkfifo(entry)
    assert gf.sweep.cache_info(tmp_path).damaged == 1  # would block forever reading the FIFO
    with pytest.warns(gf.sweep.CacheWarning, match="not a regular file"):
        again = gf.sweep.run(GRID, cache=tmp_path, progress=False)
    assert again.attrs["sweep"]["computed"] == 1 and entry.is_file()


# ------------------------------------------------------------------ the CLI's promise


def test_cache_commands_refuse_a_file_as_the_cache_dir(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for action in ("info", "clear"):
        assert _cli.main(["cache", action, "--cache-dir", str(a_file)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cache must be a directory" in err
    assert a_file.read_text() == "x"


def test_sweep_out_is_checked_before_any_work(tmp_path, capsys):
    (tmp_path / "grid.toml").write_text('[grid]\nhidden = 8\nseq_len = 30\npredictors = "none"\n')
    (tmp_path / "adir").mkdir()
    (tmp_path / "a_file").write_text("x")
    cache = tmp_path / "cache"
    for out, message in ((tmp_path / "adir", "is a directory"), (tmp_path / "a_file" / "t.csv", "is a file")):
        argv = ["sweep", str(tmp_path / "grid.toml"), "--out", str(out), "--cache-dir", str(cache)]
        assert _cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert not cache.exists()  # nothing ran, nothing was written


def test_report_out_naming_a_file_is_refused_before_any_study_runs(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    assert _cli.main(["report", "cost", "--out", str(tmp_path / "a_file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_huge_grid_is_refused_up_front_with_an_estimate():
    grid = {"gain": list(np.linspace(0.1, 5, 1000)), "hidden": list(range(1, 1001))}
    with pytest.raises(ValueError, match=r"1,000,000 points .*CPU hours.*allow_large=True"):
        gf.sweep.run(grid, cache=False, progress=False)
    _sweep.check_size(_sweep.grid_size(grid), allow_large=True)  # the opt-in


# ------------------------------------------------------------------ faults


def test_outputs_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == 0o644


def test_a_saved_cell_gets_the_users_umask_and_no_temporary_is_left(tmp_path):
    old = os.umask(0o022)
    try:
        gf.rnn(3, 2, seed=0).save(tmp_path / "cell.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cell.npz").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["cell.npz"]


def test_a_failed_staging_publishes_nothing_and_stale_staging_is_cleaned(tmp_path):
    out = tmp_path / "reports"
    with pytest.raises(RuntimeError), staged_folder(out) as stage:
        Path(stage, "a.csv").write_text("new")
        raise RuntimeError("killed mid-study")
    assert not out.exists() and os.listdir(tmp_path) == []
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: its temporaries are stale
    stale = tmp_path / f"{_files.STAGING_PREFIX}{_files._HOST}-{dead.pid}-abc"
    stale.mkdir()
    live = tmp_path / f"{_files.STAGING_PREFIX}{_files._HOST}-{os.getpid()}-abc"
    live.mkdir()
    with staged_folder(out) as stage:
        Path(stage, "a.csv").write_text("new")
    assert not stale.exists() and live.exists() and (out / "a.csv").read_text() == "new"


def _tiny_study(out):
    return [
        sys.executable,
        "-m",
        "gradflow.studies.eigenvalue_rule",
        "--out",
        str(out),
        "--hidden",
        "8",
        "--steps",
        "40",
        "--seeds",
        "1",
    ]


def _wait_for(predicate, seconds=90.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_kill_9_of_a_study_leaves_no_partial_outputs_and_the_rerun_cleans_up(tmp_path):
    out = tmp_path / "reports"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADFLOW_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        _tiny_study(out), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    staging = lambda: [p for p in tmp_path.iterdir() if p.name.startswith(_files.STAGING_PREFIX)]  # noqa: E731
    assert _wait_for(staging)
    proc.kill()
    proc.wait()
    assert not out.exists() and staging()  # nothing published; the temporary says what it is
    with staged_folder(out) as stage:  # the next run: stale staging of the dead pid goes first
        Path(stage, "eigenvalue_rule.pdf").write_text("new")
    assert not staging() and os.listdir(out) == ["eigenvalue_rule.pdf"]


def test_ctrl_c_on_report_prints_one_line_and_exits_130(tmp_path):
    out = tmp_path / "reports"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADFLOW_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradflow", "report", "eigenvalue_rule", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert _wait_for(lambda: any(p.name.startswith(_files.STAGING_PREFIX) for p in tmp_path.iterdir()))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_process_pool_workers_exit_when_the_sweep_is_killed(tmp_path):
    pids = tmp_path / "pids"
    (tmp_path / "grid.toml").write_text("seeds = [0]\n[grid]\nx = [0, 1, 2, 3]\nsleep = 60.0\n")
    env = {
        **os.environ,
        "GRADFLOW_TEST_PIDS": str(pids),
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gradflow",
            "sweep",
            "grid.toml",
            "--workers",
            "2",
            "--task-module",
            "hardening_tasks:pid_task",
            "--no-cache",
            "--quiet",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert _wait_for(lambda: pids.exists() and len(pids.read_text().split()) >= 2)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")  # the fork server, resource tracker
    helpers = [int(p) for p in children.read_text().split()] if children.exists() else []
    proc.kill()
    proc.wait()
    workers = [int(p) for p in pids.read_text().split()] + helpers

    def gone():
        out = []
        for pid in workers:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                out.append(pid)
        return len(out) == len(workers)

    assert _wait_for(gone, 30.0), f"workers {workers} outlived their sweep"


@pytest.mark.parametrize(
    "request_",
    [
        lambda: gf.rnn(100_000, 4),
        lambda: gf.lstm(20_000, 4),
        lambda: gf.path_lengths(gf.tcn(8, 3, 4), 10**9),
        lambda: gf.path_lengths(gf.recurrent(gf.rnn(8, 2)), 10**9),
    ],
)
def test_memory_sized_requests_are_refused_with_an_estimate(request_):
    with pytest.raises(ValueError, match=r"needs about [\d,.]+ GiB of memory .*allow_large=True"):
        request_()


def test_the_graph_size_estimate_is_what_the_graph_holds():
    from gradflow.models._sequence import BYTES_PER_EDGE, _graph_bytes

    model, n = gf.tcn(8, 3, 4), 5 * 1024  # just past the size where the estimate starts
    edges = model.dependency_graph(n).edge_count()
    assert _graph_bytes(model, n) == pytest.approx(BYTES_PER_EDGE * edges, rel=0.05)
    assert gf.rnn(64, 4, allow_large=True).state_size == 64
