"""One public API: ``f(cell, xs, *, h0=None, ...)``, one name per concept, ``ax=`` on every plot.

Every old spelling still works for one release: it gives the same bits as the new one, with a
`DeprecationWarning` that names the new spelling and points at the caller's line.
"""

import inspect
import warnings

import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import gradflow as gf
from gradflow.core import FrameView, deprecated_spellings


def henon(s):
    x, y = s[..., 0], s[..., 1]
    return anp.stack([1 - 1.4 * x**2 + y, 0.3 * x], axis=-1)


CELL = gf.rnn(6, 2, gain=1.3, seed=0)
XS = gf.inputs.gaussian(12, 2, 2, seed=1)
H0 = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 6))
Q = np.eye(6)[:, :2]
TCN = gf.tcn(4, 2, 2, seed=0)

# (old call, new call, the new spelling the warning must name)
SPELLINGS = {
    "unroll h0": (lambda: gf.unroll(CELL, XS, H0), lambda: gf.unroll(CELL, XS, h0=H0), "unroll(..., h0=...)"),
    "jacobians h0, states": (
        lambda: gf.jacobians(CELL, XS, H0, None),
        lambda: gf.jacobians(CELL, XS, h0=H0, states=None),
        "jacobians(..., h0=..., states=...)",
    ),
    "jacobian_products h0, side": (
        lambda: gf.jacobian_products(CELL, XS, Q, H0, "left"),
        lambda: gf.jacobian_products(CELL, XS, Q, h0=H0, side="left"),
        "jacobian_products(..., h0=..., side=...)",
    ),
    "gradient_flow loss, h0": (
        lambda: gf.gradient_flow(CELL, XS, "frobenius", H0),
        lambda: gf.gradient_flow(CELL, XS, loss="frobenius", h0=H0),
        "gradient_flow(..., loss=..., h0=...)",
    ),
    "finite_time_singular_values h0": (
        lambda: gf.finite_time_singular_values(CELL, XS, H0, k=2),
        lambda: gf.finite_time_singular_values(CELL, XS, h0=H0, k=2),
        "finite_time_singular_values(..., h0=...)",
    ),
    "sensitivity loss": (
        lambda: gf.sensitivity(TCN, gf.inputs.gaussian(10, 1, 4), "frobenius"),
        lambda: gf.sensitivity(TCN, gf.inputs.gaussian(10, 1, 4), loss="frobenius"),
        "sensitivity(..., loss=...)",
    ),
    "lyapunov_spectrum system": (
        lambda: gf.lyapunov_spectrum(system=CELL, xs=XS, k=2, warmup=2),
        lambda: gf.lyapunov_spectrum(cell=CELL, xs=XS, k=2, warmup=2),
        "lyapunov_spectrum(cell=...)",
    ),
    "lyapunov_spectrum steps": (
        lambda: gf.lyapunov_spectrum(henon, x0=[0.1, 0.1], steps=300),
        lambda: gf.lyapunov_spectrum(henon, x0=[0.1, 0.1], seq_len=300),
        "lyapunov_spectrum(seq_len=...)",
    ),
    "inputs.gaussian steps": (
        lambda: gf.inputs.gaussian(steps=5, batch=2, inputs=3, seed=4),
        lambda: gf.inputs.gaussian(seq_len=5, batch=2, inputs=3, seed=4),
        "gaussian(seq_len=...)",
    ),
    "inputs.constant steps": (
        lambda: gf.inputs.constant(steps=3, batch=1, inputs=2, value=0.5),
        lambda: gf.inputs.constant(seq_len=3, batch=1, inputs=2, value=0.5),
        "constant(seq_len=...)",
    ),
    "inputs.one_hot steps": (
        lambda: gf.inputs.one_hot(steps=4, batch=2, vocab=5, seed=3),
        lambda: gf.inputs.one_hot(seq_len=4, batch=2, vocab=5, seed=3),
        "one_hot(seq_len=...)",
    ),
    "path_lengths n": (
        lambda: gf.path_lengths(TCN, n=20),
        lambda: gf.path_lengths(TCN, seq_len=20),
        "path_lengths(seq_len=...)",
    ),
    "dependency_graph n": (
        lambda: TCN.dependency_graph(n=9).edges(),
        lambda: TCN.dependency_graph(seq_len=9).edges(),
        "SequenceModel.dependency_graph(seq_len=...)",
    ),
    "tcn levels": (
        lambda: gf.tcn(4, kernel=2, levels=3, seed=1),
        lambda: gf.tcn(4, kernel=2, layers=3, seed=1),
        "tcn(layers=...)",
    ),
    "tasks.adding T": (
        lambda: gf.tasks.adding(T=8).batch(3),
        lambda: gf.tasks.adding(seq_len=8).batch(3),
        "adding(seq_len=...)",
    ),
}


def _same(a, b):
    """Bit-identical results: arrays by bytes, results by their arrays, models by weights and config."""
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, gf.SequenceModel):
        return (
            a.config == b.config
            and a.params.keys() == b.params.keys()
            and all(_same(a.params[k], b.params[k]) for k in a.params)
        )
    if isinstance(a, gf.Cell):
        return a.config == b.config and all(_same(a.params[k], b.params[k]) for k in a.params)
    fields = {k: v for k, v in vars(a).items() if isinstance(v, np.ndarray)}
    assert fields, f"nothing to compare in {type(a).__name__}"
    return all(_same(v, getattr(b, k)) for k, v in fields.items())


@pytest.mark.parametrize("case", SPELLINGS, ids=str)
def test_old_spelling_gives_the_same_bits_and_names_the_new_one(case):
    old, new, spelling = SPELLINGS[case]
    expected = new()
    with pytest.warns(DeprecationWarning) as caught:
        got = old()
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1 and spelling in messages[0] and "0.4.0" in messages[0], messages
    assert caught[0].filename == __file__  # attributed to the caller's line, not to gradflow
    assert _same(got, expected)


@pytest.mark.parametrize(
    ("result", "old", "new"),
    [
        (lambda: gf.path_lengths(TCN, 30), "n", "seq_len"),
        (lambda: gf.tasks.copy_memory(5, symbols=2), "steps", "seq_len"),
    ],
    ids=["PathLengths.n", "Task.steps"],
)
def test_renamed_attributes_still_read(result, old, new):
    obj = result()
    with pytest.warns(
        DeprecationWarning,
        match=rf"{type(obj).__name__}\.{old} is deprecated .* "
        rf"write {type(obj).__name__}\.{new}",
    ) as caught:
        value = getattr(obj, old)
    assert value == getattr(obj, new) and caught[0].filename == __file__
    assert getattr(obj, new) == (30 if old == "n" else 5 + 2 * 2)


def test_from_torch_nonlinearity_is_activation():
    rng = np.random.default_rng(0)
    arrays = {
        "weight_ih_l0": rng.normal(size=(3, 2)),
        "weight_hh_l0": rng.normal(size=(3, 3)),
        "bias_ih_l0": np.zeros(3),
        "bias_hh_l0": np.zeros(3),
    }
    new = gf.from_torch("rnn", arrays, activation="relu")
    with pytest.warns(DeprecationWarning, match=r"from_torch\(activation=\.\.\.\)"):
        old = gf.from_torch("rnn", arrays, nonlinearity="relu")
    assert _same(old, new) and new.config["activation"] == "relu"
    assert _same(gf.unroll(old, XS[:, :, :2] * 3), gf.unroll(new, XS[:, :, :2] * 3))


def test_every_plot_takes_ax():
    run = gf.train(gf.rnn(3, 2, seed=0), gf.tasks.adding(4), steps=2, batch=2, record_every=5, progress=False)
    axes = plt.subplots(1, 4)[1]
    assert list(run.plot(ax=axes)) == list(axes)
    with pytest.warns(DeprecationWarning, match=r"TrainingRun\.plot\(ax=\.\.\.\)"):
        assert list(run.plot(axes=axes)) == list(axes)
    model_axes = plt.subplots()[1]
    with pytest.warns(DeprecationWarning, match=r"SequenceModel\.plot\(seq_len=\.\.\.\)"):
        assert TCN.plot(n=10, ax=model_axes) is model_axes
    plt.close("all")
    # every result class's plot takes ax= (and only TrainingRun's draws several panels)
    results = [c for c in vars(gf).values() if inspect.isclass(c) and callable(getattr(c, "plot", None))]
    assert len(results) >= 10
    for cls in results:
        assert "ax" in inspect.signature(cls.plot).parameters, cls.__name__


OLD_NAMES = {"steps", "T", "n", "levels", "nonlinearity", "axes", "system"}
# Still spelt so, on purpose: optimiser steps are not a sequence length; copy memory's T is its delay.
KEPT = {("train", "steps"), ("copy_memory", "T")}


def _public_callables():
    for namespace in (gf, gf.inputs, gf.tasks, gf.sweep, gf.meanfield):
        for name in namespace.__all__:
            obj = getattr(namespace, name)
            if inspect.isclass(obj):  # methods; constructors of result records hold attributes
                yield from (
                    (f"{name}.{a}", f)
                    for a, f in vars(obj).items()
                    if inspect.isfunction(f) and not a.startswith("_")
                )
            elif callable(obj):
                yield name, obj


def test_one_name_per_concept_in_every_public_function():
    old = [
        f"{name}({p})"
        for name, fn in _public_callables()
        for p in inspect.signature(fn).parameters
        if p in OLD_NAMES and (name, p) not in KEPT
    ]
    assert not old, f"public functions with an old parameter name: {old}"


@pytest.mark.parametrize(
    "fn",
    [
        gf.unroll,
        gf.jacobians,
        gf.jacobian_products,
        gf.gradient_flow,
        gf.finite_time_singular_values,
        gf.lyapunov_spectrum,
        gf.predict,
        gf.linear_coefficients,
        gf.layer_outputs,
    ],
    ids=lambda f: f.__name__,
)
def test_cell_and_xs_then_keywords_only(fn):
    params = list(inspect.signature(fn).parameters.values())  # the new signature, through the decorator
    names = [p.name for p in params]
    assert names[:2] == ["cell", "xs"] and "h0" in names
    leading = 3 if fn is gf.jacobian_products else 2  # the block Q stays positional
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[leading:])


def test_wrong_calls_still_raise_type_error():
    with pytest.raises(TypeError):  # more positionals than the old signature took
        gf.unroll(CELL, XS, H0, "extra")
    with pytest.raises(TypeError, match="got multiple values for argument 'h0'"):
        gf.unroll(CELL, XS, H0, h0=H0)
    with pytest.raises(TypeError, match=r"got both 'system' \(the old name\) and 'cell'"):
        gf.lyapunov_spectrum(CELL, XS, system=CELL)
    with pytest.raises(TypeError, match="unexpected keyword argument 'hzero'"):
        gf.unroll(CELL, XS, hzero=H0)
    with pytest.raises(TypeError):  # finite_time_singular_values never took k positionally
        gf.finite_time_singular_values(CELL, XS, H0, 2)


def test_decorator_keeps_signature_name_and_docs():
    assert str(inspect.signature(gf.unroll)) == "(cell: 'Cell', xs, *, h0=None) -> 'np.ndarray'"
    assert gf.unroll.__name__ == "unroll" and gf.unroll.__doc__.startswith("Run the cell")
    assert gf.unroll.__wrapped__.__module__ == gf.unroll.__module__ == "gradflow.engine._engine"
    assert gf.gradient_flow.__kwdefaults__["tol"] == 0.01 and gf.inputs.gaussian.__kwdefaults__ is None


def test_decorator_refuses_names_the_function_does_not_have():
    def f(a, *, b=0):
        return a + b

    with pytest.raises(ValueError, match="'c', which is not a keyword-only parameter of"):
        deprecated_spellings(positional=("c",))(f)
    with pytest.raises(ValueError, match="renamed maps 'b' to 'a'; f must have 'a' and not 'b'"):
        deprecated_spellings(renamed={"b": "a"})(f)  # 'b' is a parameter still: not an old name
    wrapped = deprecated_spellings(positional=("b",), renamed={"x": "a"})(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wrapped(1, b=2) == 3 and wrapped(a=1) == 1  # the new spellings never warn
    with pytest.warns(DeprecationWarning, match=r"f\(x=\.\.\.\) is deprecated .* write f\(a=\.\.\.\)"):
        assert wrapped(x=1) == 1


@pytest.fixture(scope="module")
def comparison():
    cell = gf.rnn(8, 2, gain=0.5, seed=0)
    xs = gf.inputs.gaussian(60, 2, 2)
    return gf.compare(gf.predict(cell, xs, fixed_point_starts=1), gf.gradient_flow(cell, xs))


def test_comparison_reads_like_its_frame(comparison):
    frame = comparison.frame
    assert isinstance(comparison, FrameView) and not isinstance(comparison, pd.DataFrame)
    assert comparison["rate"] is frame["rate"] or comparison["rate"].equals(frame["rate"])
    assert comparison.rate_error.equals(frame.rate - frame.measured_rate)
    assert (
        comparison.loc[comparison.trusted, "method"].tolist() == frame.loc[frame.trusted, "method"].tolist()
    )
    assert comparison.iloc[0].equals(frame.iloc[0]) and list(comparison.columns) == list(
        gf.Comparison.COLUMNS
    )
    assert len(comparison) == len(frame) and comparison.to_frame() is frame
    assert repr(comparison).startswith("Comparison(cell='rnn") and "\n" not in repr(comparison)
    ax = comparison.plot(ax=plt.subplots()[1])
    assert len(ax.get_yticklabels()) == len(frame)
    plt.close("all")


def test_comparison_dataframe_methods_warn_for_one_release(comparison):
    with pytest.warns(
        DeprecationWarning, match=r"Comparison\.sort_values is deprecated .* \.frame\.sort_values"
    ):
        old = comparison.sort_values("rate")
    assert old.equals(comparison.frame.sort_values("rate"))
    with pytest.raises(AttributeError, match="'Comparison' object has no attribute 'no_such_thing'"):
        comparison.no_such_thing  # noqa: B018
    with pytest.raises(AttributeError):  # IPython's probes never reach the frame
        comparison._repr_latex_  # noqa: B018
