"""Recurrent cells as data: named weight arrays plus a pure, traceable step.

Every built-in cell stores its weights under PyTorch's names and layouts
(``weight_ih_l0`` of shape ``(G*N, D)``, ``weight_hh_l0`` ``(G*N, N)``,
``bias_ih_l0``, ``bias_hh_l0``; gate order i, f, g, o for LSTM and r, z, n for
GRU), so weights move between gradflow and PyTorch without translation. A step
maps ``(params, state, x)`` with ``state`` of shape ``(batch, state_size)`` and
``x`` of shape ``(batch, input_size)`` to the next state, and is written with
``autograd.numpy`` so the engine can differentiate it.

Each built-in kind is a `CellKind` record (``core._registry``), registered by ``_kinds`` (the
kinds in PyTorch's layout) or by the kind's own module (``_lru``, ``_mamba``, ...); everything
that depends on a cell's kind reads its record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core import _html
from ..core._files import atomic_path
from ..core._registry import find_cell_kind
from ..core._validation import as_float_array, check_positive_int
from ._linearisation import linearisation

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
            raise ValueError(f"components must map names to index arrays; got {type(components).__name__}")
        for key, idx in components.items():
            arr = np.asarray(idx)
            valid = (
                arr.ndim == 1
                and arr.size > 0
                and np.issubdtype(arr.dtype, np.integer)
                and arr.min() >= 0
                and arr.max() < self.state_size
                and len(np.unique(arr)) == arr.size
            )
            if not valid:
                raise ValueError(
                    f"components[{key!r}] must be distinct integer indices into a state "
                    f"of size {self.state_size}; got {idx!r}"
                )
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
        record = find_cell_kind(self.kind)
        names = record.gates if record is not None else ()
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
        spectral = find_cell_kind(self.kind, pytorch_layout=True) is not None or self.config.get("linear")
        if 0 < self.state_size <= SPECTRUM_LIMIT and spectral:
            ev, what = self.eigenvalues()
            figure = _html.chart(
                [_html.Series(ev.real, ev.imag, "#3b6fb6", "dot")],
                xlabel="Re lambda",
                ylabel="Im lambda",
                width=150,
                height=150,
                unit_circle=True,
            )
            note += f"; {what}: max |lambda| = {np.max(np.abs(ev)):.4g} (dashed: unit circle)"
        return _html.card(
            f"Cell ({self.kind})",
            self.name,
            rows,
            figure=figure,
            note=note,
            header=("param", "shape", "Frobenius norm"),
        )

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
        if find_cell_kind(self.kind, pytorch_layout=True) is None:
            raise ValueError(
                f"cannot save a cell of kind {self.kind!r}: its step is code; "
                f"save its params with numpy.savez instead"
            )
        path = os.fspath(path)
        if not path.endswith(".npz"):
            raise ValueError(f"path must end in .npz; got {path!r}")
        meta = {"format": "gradflow-cell", "version": 1, "kind": self.kind, "name": self.name, **self.config}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # the user's umask, not mkstemp's 0600
            np.savez(fh, __gradflow__=np.array(json.dumps(meta)), **self.params)  # type: ignore[arg-type]
