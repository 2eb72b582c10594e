"""Sequence models, their dependency graphs, path lengths and measured sensitivity."""

import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_vjp

import gradflow as gf


def small_models(inputs=3, causal=True, w=4):
    """One of every architecture, small enough for finite differences."""
    return [
        gf.self_attention(w, heads=2, layers=2, inputs=inputs, causal=causal, seed=1),
        gf.self_attention(
            w, layers=2, inputs=inputs, residual=False, layer_norm=False, causal=causal, seed=2
        ),
        gf.restricted_attention(w, window=2, heads=2, layers=2, inputs=inputs, causal=causal, seed=3),
        gf.hierarchical_attention(w, chunk=3, inputs=inputs, causal=causal, seed=4),
        gf.tcn(w, kernel=2, layers=2, inputs=inputs, causal=causal, seed=5),
        gf.tcn(w, kernel=3, layers=1, inputs=inputs, weight_norm=True, causal=causal, seed=6),
        gf.conv_stack(w, kernel=3, layers=2, inputs=inputs, causal=causal, seed=7),
        gf.conv_stack(w, kernel=2, layers=3, inputs=w, residual=True, causal=causal, seed=8),
    ] + (
        [
            gf.recurrent(gf.lstm(w, inputs, seed=9)),
            gf.recurrent(gf.rnn(w, inputs, seed=10), layers=2),
            gf.recurrent(gf.gru(w, inputs, seed=11)),
        ]
        if causal
        else []
    )


# ---------------------------------------------------------------- path lengths


NS = [16, 64, 256, 1024, 4096]


@pytest.mark.parametrize("n", NS)
def test_recurrent_path_is_n_hops_and_n_sequential_steps(n):
    # Convention: the input hop counts, so x_0 -> h_0 -> ... -> h_{n-1} is n hops.
    p = gf.path_lengths(gf.recurrent(gf.rnn(4, 2)), n)
    assert p.max_path == n and p.sequential_depth == n and p.covered
    np.testing.assert_array_equal(p.hops, n - np.arange(n))
    stacked = gf.path_lengths(gf.recurrent(gf.rnn(4, 2), layers=2), n)
    assert stacked.max_path == n + 1 and stacked.sequential_depth == n + 1


@pytest.mark.parametrize("n", NS)
def test_self_attention_is_one_hop_per_layer(n):
    p = gf.path_lengths(gf.self_attention(4), n)
    assert p.max_path == 1 and p.sequential_depth == 1 and p.covered
    if n <= 1024:
        plain = gf.path_lengths(gf.self_attention(4, layers=3, residual=False), n)
        assert (plain.hops == 3).all() and plain.sequential_depth == 3
        # With residual connections one attention hop suffices; the skips are free.
        residual = gf.path_lengths(gf.self_attention(4, layers=3), n)
        assert residual.max_path == 1 and residual.hops[-1] == 0 and residual.sequential_depth == 3


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("window", [1, 5, 32])
def test_restricted_attention_moves_window_positions_per_hop(n, window):
    layers = 3
    p = gf.path_lengths(gf.restricted_attention(4, window, layers=layers), n)
    lag = p.lags
    expected = np.where(lag <= layers * window, np.ceil(lag / window), np.inf)
    np.testing.assert_array_equal(p.hops, expected)
    if n <= 256:
        need = math.ceil((n - 1) / window)
        if need <= 64:
            covering = gf.path_lengths(
                gf.restricted_attention(4, window, layers=need), n, require_coverage=True
            )
            assert covering.max_path == need
            if need > 1:
                with pytest.raises(ValueError, match="not covered"):
                    gf.path_lengths(
                        gf.restricted_attention(4, window, layers=need - 1), n, require_coverage=True
                    )


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("kernel", [2, 3, 5])
def test_contiguous_convolutions_need_n_over_k_minus_1_layers(n, kernel):
    p = gf.path_lengths(gf.conv_stack(4, kernel, layers=4, residual=True, inputs=4), n)
    lag = p.lags
    expected = np.where(lag <= 4 * (kernel - 1), np.ceil(lag / (kernel - 1)), np.inf)
    np.testing.assert_array_equal(p.hops, expected)
    plain = gf.path_lengths(gf.conv_stack(4, kernel, layers=4), n)
    assert plain.receptive_field == min(n, 4 * (kernel - 1) + 1)
    assert set(plain.hops[np.isfinite(plain.hops)]) == {4}  # every path crosses every layer
    need = math.ceil((n - 1) / (kernel - 1))
    if need <= 64:
        assert gf.path_lengths(gf.conv_stack(4, kernel, layers=need), n, require_coverage=True).covered
        with pytest.raises(ValueError, match="not covered"):
            gf.path_lengths(gf.conv_stack(4, kernel, layers=need - 1), n, require_coverage=True)


@pytest.mark.parametrize("n", NS)
def test_tcn_receptive_field(n):
    for kernel, levels in [(2, 3), (3, 4), (5, 6), (2, 12)]:
        p = gf.path_lengths(gf.tcn(4, kernel, levels), n)
        assert p.receptive_field == min(n, 1 + 2 * (kernel - 1) * (2**levels - 1))
        assert p.sequential_depth == 2 * levels


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("chunk", [2, 4, 10])
def test_hierarchical_attention_needs_log_n_levels(n, chunk):
    p = gf.path_lengths(gf.hierarchical_attention(4, chunk), n, require_coverage=True)
    levels = math.ceil(math.log(n) / math.log(chunk) - 1e-12)
    assert p.max_path == levels and p.sequential_depth == levels
    assert p.hops[-1] == 1  # the last input is read directly


def test_operation_counts_come_from_the_graph():
    n, w = 32, 8
    ops = gf.path_lengths(gf.self_attention(w, feed_forward=False), n).operations
    assert list(ops.layer) == ["input", "attention 0"]
    assert ops.edges[1] == n * (n + 1) // 2  # causal: position i reads i + 1 positions
    ops = gf.path_lengths(gf.recurrent(gf.lstm(w, 3)), n).operations
    assert ops.edges[1] == n + (n - 1)  # one input edge per step, n - 1 recurrent edges
    assert ops.flops[1] == pytest.approx(n * 2 * 4 * w * 3 + (n - 1) * 2 * 4 * w * w)


# ---------------------------------------------------------------- autograd agrees


@pytest.mark.parametrize("causal", [True, False])
def test_structural_zeros_agree_with_autograd(causal):
    n = 30
    xs = gf.inputs.gaussian(n, 2, 16, seed=0)
    # Wide enough that no ReLU layer is dead at every unit of a position.
    models = [
        *small_models(inputs=16, causal=causal, w=16),
        gf.restricted_attention(16, window=3, layers=2, residual=False, causal=causal),
    ]
    for model in models:
        s = gf.sensitivity(model, xs, loss="frobenius")
        reach = np.isfinite(s.hops)
        # No path: exactly zero gradient; a path: non-zero (generic weights, every sample).
        assert np.all(np.isneginf(s.log_norms[~reach])), model.name
        assert np.all(np.isfinite(s.log_norms[reach])), model.name
        assert 0 < reach.sum() and (
            reach.sum() < n
            or model.kind in ("self-attention", "hierarchical-attention", "recurrent")
            or not causal
        )


@pytest.mark.parametrize("model", small_models(), ids=lambda m: m.name)
def test_gradients_match_finite_differences(model):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((7, 2, model.input_size))
    u = rng.standard_normal((7, 2, model.width))
    # Generic weights: zero biases would put ReLUs of zero-padded positions exactly on their kink.
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in model.params.items()}

    def loss(params, x):
        return anp.sum(u * model.apply(params, x))

    g_x = grad(loss, 1)(params, xs)
    g_p = grad(loss, 0)(params, xs)
    eps = 1e-6
    for idx in [(0, 0, 0), (3, 1, 2), (6, 0, 1)]:
        d = np.zeros_like(xs)
        d[idx] = eps
        fd = (loss(params, xs + d) - loss(params, xs - d)) / (2 * eps)
        assert g_x[idx] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    for name in list(params)[:: max(1, len(params) // 5)]:
        idx = tuple(np.unravel_index(rng.integers(params[name].size), params[name].shape))
        plus = {k: v.copy() for k, v in params.items()}
        minus = {k: v.copy() for k, v in params.items()}
        plus[name][idx] += eps
        minus[name][idx] -= eps
        fd = (loss(plus, xs) - loss(minus, xs)) / (2 * eps)
        assert g_p[name][idx] == pytest.approx(fd, rel=1e-5, abs=1e-8), name


def test_recurrent_sensitivity_in_log_space_matches_autograd():
    model = gf.recurrent(gf.lstm(5, 3, seed=2), layers=2)
    xs = gf.inputs.gaussian(12, 2, 3, seed=1)
    s = gf.sensitivity(model, xs, seed=4)
    u = np.random.default_rng(4).standard_normal(5)
    u /= np.linalg.norm(u)
    vjp, _ = make_vjp(lambda x: model.apply(model.params, x))(xs)
    cot = np.zeros((12, 2, 5))
    cot[-1] = u
    direct = np.log(np.linalg.norm(vjp(cot), axis=2))[::-1]
    np.testing.assert_allclose(s.log_norms, direct, rtol=1e-10)


def test_recurrent_sensitivity_stays_finite_at_ten_thousand_steps():
    model = gf.recurrent(gf.rnn(16, 2, gain=0.5, seed=0))
    s = gf.sensitivity(model, gf.inputs.gaussian(10_000, 1, 2, seed=0))
    assert np.all(np.isfinite(s.log_norms)) and s.profile[-1] < -3000
    assert s.attenuation.rate < -0.3


def test_attention_dilutes_the_gradient_as_one_over_n():
    # Uniform attention, identity value path: dy_{n-1}/dx_t = I / n for every t.
    for n in (16, 64, 256):
        m = gf.self_attention(
            4, gain=0.0, residual=False, layer_norm=False, feed_forward=False, positional="none"
        )
        for w in ("input_projection", "l0.wv", "l0.wo"):
            m.params[w][:] = np.eye(4)
        s = gf.sensitivity(m, gf.inputs.gaussian(n, 1, 4, seed=n), loss="frobenius")
        np.testing.assert_allclose(s.profile, np.log(2.0 / n), rtol=1e-12)
        assert s.paths.max_path == 1 and s.horizon == n - 1


def test_attenuation_per_hop_and_horizon_of_a_linear_recurrence():
    cell = gf.rnn(6, 2, activation="linear", init="identity", gain=0.9, seed=0)
    s = gf.sensitivity(gf.recurrent(cell), gf.inputs.gaussian(200, 1, 2), loss="frobenius")
    assert s.attenuation.rate == pytest.approx(np.log(0.9), abs=1e-10)
    assert s.horizon == math.floor(np.log(1e-3) / np.log(0.9))
    np.testing.assert_array_equal(s.hops, np.arange(200) + 1)


# ---------------------------------------------------------------- bad input, results


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: gf.restricted_attention(4, window=0), "window"),
        (lambda: gf.hierarchical_attention(4, chunk=1), "chunk"),
        (lambda: gf.tcn(4, kernel=1, layers=2), "kernel"),
        (lambda: gf.conv_stack(4, kernel=1, layers=2), "kernel"),
        (lambda: gf.self_attention(6, heads=4), "multiple of heads"),
        (lambda: gf.self_attention(4, positional="learned"), "positional"),
        (lambda: gf.recurrent(gf.from_torch("rnn", gf.rnn(3, 2).params), layers=2), "built-in"),
        (lambda: gf.path_lengths(gf.rnn(3, 2), 10), "SequenceModel"),
        (lambda: gf.path_lengths(gf.self_attention(4), 0), "seq_len must"),
        (lambda: gf.self_attention(4)(np.zeros((0, 1, 4))), "at least one position"),
        (lambda: gf.self_attention(4)(np.zeros((5, 1, 3))), r"shape \(n, batch, 4\)"),
        (lambda: gf.tcn(4, 2, 2)(np.full((5, 1, 4), np.nan)), "non-finite"),
        (lambda: gf.sensitivity(gf.tcn(4, 2, 2), np.zeros((5, 1, 4)), loss="l2"), "loss"),
    ],
)
def test_bad_input_names_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_results_explain_themselves_and_escape_names():
    model = gf.tcn(4, 2, 3, name="<script>x</script>")
    s = gf.sensitivity(model, gf.inputs.gaussian(20, 2, 4))
    for obj in (model, s, s.paths):
        assert "<script>" not in obj._repr_html_() and "&lt;script&gt;" in obj._repr_html_()
        assert "\n" not in repr(obj)
    frame = s.to_frame()
    assert list(frame.columns) == ["model", "lag", "sample", "hops", "log_sensitivity"]
    assert len(frame) == 40
    assert len(s.paths.to_frame()) == 20


def test_plots_draw_the_data():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = gf.recurrent(gf.rnn(4, 2))
    s = gf.sensitivity(model, gf.inputs.gaussian(30, 1, 2))
    ax = s.plot(ax=plt.figure().gca())
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(30))
    np.testing.assert_allclose(y, s.profile)
    ax2 = s.paths.plot(ax=plt.figure().gca())
    assert ax2.lines[0].get_data()[1].max() == 30
    plt.close("all")


def test_stacking_keeps_the_cell_recipe():
    cell = gf.lstm(4, 3, forget_bias=2.0, seed=3)
    stacked = gf.recurrent(cell, layers=2).cell
    assert stacked.config["layers"] == 2 and stacked.config["forget_bias"] == 2.0
    for l in (0, 1):
        np.testing.assert_array_equal(stacked.params[f"bias_ih_l{l}"][4:8], 2.0)
    np.testing.assert_array_equal(
        stacked.params["weight_hh_l0"], gf.lstm(4, 3, seed=3, layers=2).params["weight_hh_l0"]
    )


def test_same_seed_same_model():
    a, b = gf.tcn(4, 3, 2, seed=3), gf.tcn(4, 3, 2, seed=3)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    xs = gf.inputs.gaussian(10, 2, 4)
    np.testing.assert_array_equal(a(xs), b(xs))
