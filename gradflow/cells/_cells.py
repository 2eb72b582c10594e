"""Recurrent cells as data: named weight arrays plus a pure, traceable step.

Every built-in cell stores its weights under PyTorch's names and layouts
(``weight_ih_l0`` of shape ``(G*N, D)``, ``weight_hh_l0`` ``(G*N, N)``,
``bias_ih_l0``, ``bias_hh_l0``; gate order i, f, g, o for LSTM and r, z, n for
GRU), so weights move between gradflow and PyTorch without translation. A step
maps ``(params, state, x)`` with ``state`` of shape ``(batch, state_size)`` and
``x`` of shape ``(batch, input_size)`` to the next state, and is written with
``autograd.numpy`` so the engine can differentiate it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import autograd.numpy as anp
import numpy as np

from ..core import _activations as act
from ..core import _html
from ..core._files import atomic_path
from ..core._ops import affine, gru_update, join_columns, lstm_update, take_columns
from ..core._probe import probe
from ..core._validation import (
    as_float_array,
    check_choice,
    check_finite_float,
    check_memory,
    check_positive_int,
    check_seed,
)
from ._linearisation import linearisation

KINDS = ("rnn", "lstm", "gru")
INITS = ("gaussian", "orthogonal", "identity", "pytorch")
GATES = {"rnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
GATE_COUNT = {"rnn": 1, "lstm": 4, "gru": 3}

StepFn = Callable[[Mapping[str, np.ndarray], np.ndarray, np.ndarray], np.ndarray]


# Spectra in the HTML display up to this state size (eigvals is O(n^3); a repr must be quick).
SPECTRUM_LIMIT = 256


class Cell:
    """A recurrent cell: weights as data plus a pure step function.

    Parameters
    ----------
    step : callable
        ``step(params, state, x) -> new_state`` on arrays of shape
        ``(batch, state_size)`` and ``(batch, input_size)``, written with
        ``autograd.numpy``. It must treat batch rows independently.
    params : mapping of str to array
        Named weight arrays; stored as float64 and checked to be finite.
    state_size, input_size : int
        Width of the state and of one input vector.
    kind : str
        ``"rnn"``, ``"lstm"``, ``"gru"`` for the built-in cells, otherwise ``"custom"``.
    components : mapping of str to index array, optional
        Named parts of the state (``h`` and ``c`` for an LSTM) whose gradient
        norms `gradient_flow` reports separately.
    config : mapping, optional
        What built the cell (hidden size, layers, activation), used by `save`.
    name : str, optional
        Shown in reprs and reports.
    stacked_tangents : bool
        Declare that every derivative rule inside ``step`` accepts tangents and
        cotangents with extra leading axes (true of gradflow's own operations in
        ``gradflow.core._ops`` and ``_activations``, not of ``autograd.numpy`` in general).
        The engine then pushes a block of k vectors through one trace of the step
        instead of repeating each row k times: the same numbers, several times faster.
        Leave it False for a custom step unless you have checked it.

    Examples
    --------
    Wrap your own step; every analysis then works on it unchanged.

    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import gradflow as gf
    >>> def step(p, h, x):
    ...     return anp.tanh(h @ p["W"].T + x @ p["U"].T)
    >>> rng = np.random.default_rng(0)
    >>> cell = gf.Cell(step, {"W": rng.normal(size=(3, 3)), "U": np.eye(3)},
    ...                state_size=3, input_size=3, name="mine")
    >>> cell
    Cell(name='mine', kind='custom', state_size=3, input_size=3, params=[U (3, 3), W (3, 3)])
    """

    def __init__(
        self,
        step: StepFn,
        params: Mapping[str, Any],
        state_size: int,
        input_size: int,
        *,
        kind: str = "custom",
        components: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        stacked_tangents: bool = False,
    ):
        if not callable(step):
            raise ValueError(f"step must be callable; got {step!r}")
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a mapping of names to arrays; got {type(params).__name__}")
        self.step = step
        self.params = {str(k): as_float_array(f"params[{k!r}]", v) for k, v in params.items()}
        self.state_size = check_positive_int("state_size", state_size)
        self.input_size = check_positive_int("input_size", input_size, minimum=0)
        self.kind = kind
        self.config = dict(config or {})
        self.name = name or kind
        self.stacked_tangents = bool(stacked_tangents)
        if components is None:
            components = {"state": np.arange(self.state_size)}
        self.components = {}
        if not isinstance(components, Mapping):
            raise ValueError(f"components must map names to index arrays; got "
                             f"{type(components).__name__}")
        for key, idx in components.items():
            arr = np.asarray(idx)
            valid = (arr.ndim == 1 and arr.size > 0 and np.issubdtype(arr.dtype, np.integer)
                     and arr.min() >= 0 and arr.max() < self.state_size
                     and len(np.unique(arr)) == arr.size)
            if not valid:
                raise ValueError(f"components[{key!r}] must be distinct integer indices into a state "
                                 f"of size {self.state_size}; got {idx!r}")
            self.components[str(key)] = arr.astype(np.intp)
        self._check_step()

    def _check_step(self) -> None:
        state = np.zeros((2, self.state_size))
        x = np.zeros((2, self.input_size))
        try:
            out = np.asarray(self.step(self.params, state, x))
        except Exception as exc:  # a user's step: say which call failed, keep the cause
            raise ValueError(
                f"step({self.name!r}) failed on state of shape {state.shape} and input of shape "
                f"{x.shape}: {type(exc).__name__}: {exc}"
            ) from exc
        if np.iscomplexobj(out):  # numpy would drop the imaginary part with a mere warning
            raise TypeError(f"step({self.name!r}) must return real values; got {out.dtype} (complex)")
        if out.shape != state.shape:
            raise ValueError(
                f"step({self.name!r}) must return the next state of shape (batch, "
                f"{self.state_size}); got shape {out.shape} for batch 2"
            )

    @property
    def gates(self) -> tuple[str, ...]:
        """Gate names probed inside the step (per layer for stacked cells)."""
        names = GATES.get(self.kind, ())
        layers = self.config.get("layers", 1)
        if layers == 1:
            return names
        return tuple(f"l{l}.{g}" for l in range(layers) for g in names)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in sorted(self.params.items()))
        return (
            f"Cell(name={self.name!r}, kind={self.kind!r}, state_size={self.state_size}, "
            f"input_size={self.input_size}, params=[{shapes}])"
        )

    def eigenvalues(self) -> tuple[np.ndarray, str]:
        """Eigenvalues of the matrix the eigenvalue rule reads, and what that matrix is.

        ``W_hh`` for a one-layer vanilla cell; otherwise the step Jacobian at the origin for
        zero input (a gated cell's state includes ``c`` for an LSTM).

        Examples
        --------
        >>> import numpy as np, gradflow as gf
        >>> ev, what = gf.rnn(8, 2, init="orthogonal", gain=0.5).eigenvalues()
        >>> bool(np.allclose(np.abs(ev), 0.5)), what
        (True, 'recurrent matrix')
        """
        import scipy.linalg
        from threadpoolctl import threadpool_limits


        A, what = linearisation(self)
        with threadpool_limits(1):  # a BLAS pool on a busy machine made this 4x slower
            return scipy.linalg.eigvals(A), what

    def plot(self, ax=None):
        """The spectrum of `eigenvalues` in the complex plane, with the unit circle.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> import gradflow as gf
        >>> ax = gf.rnn(8, 2, init="orthogonal", gain=0.5, seed=0).plot(ax=Figure().subplots())
        >>> ax.get_title()
        'rnn-tanh: recurrent matrix, max |lambda| = 0.5'
        """
        from ..core._plot import complex_plane, new_axes

        ev, what = self.eigenvalues()
        ax = new_axes(ax, (4, 4))
        complex_plane(ax, ev)
        ax.set_title(f"{self.name}: {what}, max |lambda| = {np.max(np.abs(ev)):.4g}")
        return ax

    def _repr_html_(self) -> str:
        rows = [(k, str(v.shape), f"{np.linalg.norm(v):.4g}") for k, v in sorted(self.params.items())]
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items())
        note = f"state {self.state_size}, input {self.input_size}" + (f"; {cfg}" if cfg else "")
        figure = None
        if 0 < self.state_size <= SPECTRUM_LIMIT and (self.kind in KINDS or self.config.get("linear")):
            ev, what = self.eigenvalues()
            figure = _html.chart([_html.Series(ev.real, ev.imag, "#3b6fb6", "dot")], xlabel="Re lambda",
                                 ylabel="Im lambda", width=150, height=150, unit_circle=True)
            note += f"; {what}: max |lambda| = {np.max(np.abs(ev)):.4g} (dashed: unit circle)"
        return _html.card(f"Cell ({self.kind})", self.name, rows, figure=figure, note=note,
                          header=("param", "shape", "Frobenius norm"))

    def save(self, path: str | os.PathLike) -> None:
        """Write the cell to ``path`` (``.npz``); `load` rebuilds it.

        Only built-in cells can be saved: a custom step is code, not data.
        The file is written to a temporary name and renamed, so an interrupted
        save never leaves a half-written file.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import gradflow as gf
        >>> cell = gf.gru(6, 2, update_bias=1.0, seed=3)
        >>> path = os.path.join(tempfile.mkdtemp(), "gru.npz")
        >>> cell.save(path)
        >>> again = gf.load(path)
        >>> again.kind, all(np.array_equal(again.params[k], v) for k, v in cell.params.items())
        ('gru', True)
        """
        if self.kind not in KINDS:
            raise ValueError(
                f"cannot save a cell of kind {self.kind!r}: its step is code; "
                f"save its params with numpy.savez instead"
            )
        path = os.fspath(path)
        if not path.endswith(".npz"):
            raise ValueError(f"path must end in .npz; got {path!r}")
        meta = {"format": "gradflow-cell", "version": 1, "kind": self.kind, "name": self.name,
                **self.config}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # the user's umask, not mkstemp's 0600
            np.savez(fh, __gradflow__=np.array(json.dumps(meta)), **self.params)


# ---------------------------------------------------------------- step functions


def _gate_names(layers, l, names):
    return names if layers == 1 else tuple(f"l{l}.{g}" for g in names)


def _layer(state, l, width, layers):
    return state if layers == 1 else take_columns(state, l * width, (l + 1) * width)


def rnn_step(params, state, x, *, hidden, layers, activation):
    phi = act.ACTIVATIONS[activation]
    outs, inp = [], x
    for l in range(layers):
        h = _layer(state, l, hidden, layers)
        gi = affine(inp, params[f"weight_ih_l{l}"],
                    params[f"bias_ih_l{l}"] + params[f"bias_hh_l{l}"])
        inp = phi(affine(h, params[f"weight_hh_l{l}"], gi))
        outs.append(inp)
    return outs[0] if layers == 1 else join_columns(*outs)


def lstm_step(params, state, x, *, hidden, layers, proj_size=0):
    # With a projection (PyTorch's proj_size P) a layer's state is [h (P), c (N)] and
    # h = W_hr (o * tanh(c)); without one, [h (N), c (N)].
    n, outs, inp = hidden, [], x
    p = proj_size or n
    for l in range(layers):
        hc = _layer(state, l, p + n, layers)
        # The pre-activation is gi + W_hh h, so dL/d(gi) is each gate's pre-activation gradient.
        gi = probe(affine(inp, params[f"weight_ih_l{l}"],
                          params[f"bias_ih_l{l}"] + params[f"bias_hh_l{l}"]),
                   _gate_names(layers, l, GATES["lstm"]))
        h, c = take_columns(hc, 0, p), take_columns(hc, p, p + n)
        new = lstm_update(affine(h, params[f"weight_hh_l{l}"], gi), c)
        if proj_size:
            new = join_columns(affine(take_columns(new, 0, n), params[f"weight_hr_l{l}"], 0.0),
                               take_columns(new, n, 2 * n))
        outs.append(new)
        if l + 1 < layers:  # the next layer's input; a primitive traced at every step
            inp = take_columns(new, 0, p)
    return outs[0] if layers == 1 else join_columns(*outs)


def gru_step(params, state, x, *, hidden, layers):
    n, outs, inp = hidden, [], x
    for l in range(layers):
        h = _layer(state, l, n, layers)
        # r and z pre-activations are gi + gh, n's is gi_n + r * gh_n: dL/d(gi) is each gate's.
        gi = probe(affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"]),
                   _gate_names(layers, l, GATES["gru"]))
        inp = gru_update(gi, affine(h, params[f"weight_hh_l{l}"], params[f"bias_hh_l{l}"]), h)
        outs.append(inp)
    return outs[0] if layers == 1 else join_columns(*outs)


def gru_reset_before_step(params, state, x, *, hidden, layers):
    """Keras's ``reset_after=False`` GRU: ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.

    Plain ``autograd.numpy``, so such a cell does not declare stacked tangents.
    """
    n, outs, inp = hidden, [], x
    for l in range(layers):
        h = _layer(state, l, n, layers)
        w_hh, b_hh = params[f"weight_hh_l{l}"], params[f"bias_hh_l{l}"]
        gi = probe(affine(inp, params[f"weight_ih_l{l}"], params[f"bias_ih_l{l}"]),
                   _gate_names(layers, l, GATES["gru"]))
        rz = act.sigmoid(gi[:, : 2 * n] + h @ w_hh[: 2 * n].T + b_hh[: 2 * n])
        r, z = rz[:, :n], rz[:, n:]
        cand = act.tanh(gi[:, 2 * n :] + (r * h) @ w_hh[2 * n :].T + b_hh[2 * n :])
        inp = (1.0 - z) * cand + z * h
        outs.append(inp)
    return outs[0] if layers == 1 else anp.concatenate(outs, axis=1)


# ---------------------------------------------------------------- construction


def state_components(kind: str, hidden: int, layers: int, proj_size: int = 0) -> dict[str, np.ndarray]:
    parts = ("h", "c") if kind == "lstm" else ("h",)
    sizes = {"h": proj_size or hidden, "c": hidden}
    width = sum(sizes[p] for p in parts)
    comps: dict[str, list[np.ndarray]] = {p: [] for p in parts}
    per_layer = {}
    for l in range(layers):
        start = l * width
        for p in parts:
            idx = np.arange(start, start + sizes[p])
            start += sizes[p]
            comps[p].append(idx)
            per_layer[f"l{l}.{p}"] = idx
    out = {p: np.concatenate(v) for p, v in comps.items()}
    if layers > 1:
        out.update(per_layer)
    return out


def build_cell(kind: str, params: Mapping[str, np.ndarray], hidden: int, inputs: int, layers: int,
           activation: str = "tanh", name: str | None = None, **extra) -> Cell:
    if kind == "rnn":
        step = functools.partial(rnn_step, hidden=hidden, layers=layers, activation=activation)
        config = {"hidden": hidden, "inputs": inputs, "layers": layers, "activation": activation}
    else:
        config = {"hidden": hidden, "inputs": inputs, "layers": layers}
        step = functools.partial(lstm_step if kind == "lstm" else gru_step, hidden=hidden,
                                 layers=layers)
    # Variants read by PyTorch's proj_size and Keras's reset_after=False (in config only when used).
    proj_size = int(extra.get("proj_size", 0) or 0) if kind == "lstm" else 0
    reset_before = kind == "gru" and extra.get("reset_after") is False
    if proj_size:
        step = functools.partial(lstm_step, hidden=hidden, layers=layers, proj_size=proj_size)
    if reset_before:
        step = functools.partial(gru_reset_before_step, hidden=hidden, layers=layers)
    config.update(extra)
    state = (proj_size or hidden) * layers + (hidden * layers if kind == "lstm" else 0)
    return Cell(step, params, state, inputs, kind=kind,
                components=state_components(kind, hidden, layers, proj_size),
                config=config, name=name or (kind if kind != "rnn" else f"rnn-{activation}"),
                stacked_tangents=not reset_before)


def recurrent_init(rng: np.random.Generator, n: int, init: str, gain: float) -> np.ndarray:
    """An ``n x n`` recurrent matrix: gaussian ``N(0, gain^2/n)``, Haar orthogonal times
    ``gain``, ``gain * I`` (IRNN) or PyTorch's ``U(-1/sqrt(n), 1/sqrt(n))`` times ``gain``."""
    if init == "gaussian":
        return rng.normal(0.0, gain / np.sqrt(n), size=(n, n))
    if init == "orthogonal":
        q, r = np.linalg.qr(rng.normal(size=(n, n)))
        return gain * q * np.sign(np.diag(r))  # sign fix makes q Haar-distributed
    if init == "identity":
        return gain * np.eye(n)
    bound = 1.0 / np.sqrt(n)
    return gain * rng.uniform(-bound, bound, size=(n, n))


def _random_cell(kind, hidden, inputs, *, activation="tanh", gain=1.0, init="gaussian",
                 bias_scale=0.0, seed=0, layers=1, gate_bias=None, name=None, allow_large=False,
                 **extra) -> Cell:
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    layers = check_positive_int("layers", layers)
    g = GATE_COUNT[kind]
    # Weights in float64, and a draw's temporary beside them while they are assembled.
    weights = sum(g * hidden * ((inputs if l == 0 else hidden) + hidden + 2) for l in range(layers))
    check_memory(f"{kind}({hidden}, {inputs}, layers={layers})", 2 * 8 * weights, allow_large)
    gain = check_finite_float("gain", gain, minimum=0.0)
    bias_scale = check_finite_float("bias_scale", bias_scale, minimum=0.0)
    init = check_choice("init", init, INITS)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(layers):
        d = inputs if l == 0 else hidden
        if init == "pytorch":
            bound = 1.0 / np.sqrt(hidden)
            w_ih = rng.uniform(-bound, bound, size=(g * hidden, d))
            w_hh = np.concatenate([recurrent_init(rng, hidden, init, gain) for _ in range(g)])
            b_ih = rng.uniform(-bound, bound, size=g * hidden)
            b_hh = rng.uniform(-bound, bound, size=g * hidden)
        else:
            # Input weights N(0, 1/d): unit-variance inputs give each unit unit-variance
            # drive, so an input scale s is the mean-field input std sigma_x = s.
            w_ih = rng.normal(0.0, 1.0 / np.sqrt(d), size=(g * hidden, d))
            w_hh = np.concatenate([recurrent_init(rng, hidden, init, gain) for _ in range(g)])
            b_ih = rng.normal(0.0, bias_scale, size=g * hidden) if bias_scale > 0 else np.zeros(
                g * hidden)
            b_hh = np.zeros(g * hidden)
        if gate_bias is not None:
            block, value = gate_bias
            b_ih[block * hidden : (block + 1) * hidden] += value
        params.update({f"weight_ih_l{l}": w_ih, f"weight_hh_l{l}": w_hh,
                       f"bias_ih_l{l}": b_ih, f"bias_hh_l{l}": b_hh})
    extra.update(gain=gain, init=init, bias_scale=bias_scale, seed=int(seed))
    return build_cell(kind, params, hidden, inputs, layers, activation=activation, name=name, **extra)


def rnn(hidden: int, inputs: int, activation: str = "tanh", gain: float = 1.0,
        init: str = "gaussian", bias_scale: float = 0.0, seed: int = 0, layers: int = 1,
        name: str | None = None, allow_large: bool = False) -> Cell:
    """A vanilla recurrent cell ``h_t = phi(W_hh h_{t-1} + W_ih x_t + b)``.

    Parameters
    ----------
    hidden, inputs : int
        Hidden units ``N`` and input width ``D``.
    activation : {"tanh", "relu", "sigmoid", "linear"}
    gain : float
        Scale ``g`` of the recurrent matrix (see ``init``).
    init : {"gaussian", "orthogonal", "identity", "pytorch"}
        Recurrent matrix: ``W_ij ~ N(0, g^2/N)``; Haar orthogonal times ``g``;
        ``g * I`` (IRNN); PyTorch's default ``U(-1/sqrt(N), 1/sqrt(N))`` times ``g``
        (which then also sets input weights and biases as PyTorch does). Otherwise
        input weights are ``N(0, 1/D)`` and biases ``N(0, bias_scale^2)``.
    bias_scale : float
        Standard deviation of the biases (mean-field ``sigma_b``).
    seed : int
        Seed of every random draw; same seed, same weights.
    layers : int
        Stacked layers; the state is the concatenation of the layers' states.
    allow_large : bool
        Build a cell whose weights need more than 4 GiB (refused by default, with the estimate).

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.rnn(64, 8, gain=1.5, seed=1)
    >>> cell.state_size, cell.params["weight_hh_l0"].shape
    (64, (64, 64))
    """
    activation = check_choice("activation", activation, act.ACTIVATIONS)
    return _random_cell("rnn", hidden, inputs, activation=activation, gain=gain, init=init,
                        bias_scale=bias_scale, seed=seed, layers=layers, name=name,
                        allow_large=allow_large)


def lstm(hidden: int, inputs: int, forget_bias: float = 1.0, gain: float = 1.0,
         init: str = "gaussian", bias_scale: float = 0.0, seed: int = 0, layers: int = 1,
         name: str | None = None, allow_large: bool = False) -> Cell:
    """An LSTM cell (PyTorch's equations, gates i, f, g, o); state ``[h, c]`` of size ``2N``.

    ``forget_bias`` is added to the forget gate's bias (``sigmoid(1) = 0.731`` for
    the default 1.0). Each of the four recurrent blocks is drawn with ``init`` and
    ``gain`` as in `rnn`.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.lstm(16, 4, forget_bias=2.0).state_size
    32
    """
    forget_bias = check_finite_float("forget_bias", forget_bias)
    return _random_cell("lstm", hidden, inputs, gain=gain, init=init, bias_scale=bias_scale,
                        seed=seed, layers=layers, gate_bias=(1, forget_bias), name=name,
                        allow_large=allow_large, forget_bias=forget_bias)


def gru(hidden: int, inputs: int, update_bias: float = 0.0, gain: float = 1.0,
        init: str = "gaussian", bias_scale: float = 0.0, seed: int = 0, layers: int = 1,
        name: str | None = None, allow_large: bool = False) -> Cell:
    """A GRU cell (PyTorch's equations, gates r, z, n).

    ``h' = (1 - z) * n + z * h``, so ``update_bias`` (added to z's bias) sets how
    much of the old state is kept: positive values lengthen memory.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.gru(16, 4).params["weight_hh_l0"].shape
    (48, 16)
    """
    update_bias = check_finite_float("update_bias", update_bias)
    return _random_cell("gru", hidden, inputs, gain=gain, init=init, bias_scale=bias_scale,
                        seed=seed, layers=layers, gate_bias=(1, update_bias), name=name,
                        allow_large=allow_large, update_bias=update_bias)
