"""The cell registry: one record per kind of recurrent cell, read by every module.

A `CellKind` says what a kind of cell is (its step, state parts, gates, PyTorch layout,
initialiser and options, closed-form Jacobians if it has them; for a cell linear in its state,
its per-step map, scanned part, layer output and loader); the constructors, the engine, loaders,
the sweep, training, reports and the CLI read it instead of testing ``cell.kind == "lstm"``. The
kinds in PyTorch's layout (``rnn``, ``lstm``, ``gru``) are registered by ``gradflow.cells._kinds``,
the linear recurrences and state-space models (``lru``, ``s4d``, ``mingru``, ``minlstm``,
``mamba``) and ``slstm`` by their own modules; a new kind is one module that calls
`register_cell_kind`.

This module imports nothing from gradflow, so any module can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class CellKind:
    """What one kind of recurrent cell is.

    Parameters
    ----------
    name : str
        The kind, as ``Cell.kind``, ``gf.sweep`` points (``cell=``), saved files and the CLI name it.
    step : callable
        ``step(params, state, x, *, hidden, layers, **step_options)``: one step of a stack of
        ``layers`` layers, in ``autograd.numpy`` or gradflow's fused operations. A kind with its
        own layout (``pytorch_layout=False``) binds what else its step takes itself
        (``step(params, state, x)`` for ``lru``).
    make : callable
        The public constructor ``make(hidden, inputs, *, gain, init, bias_scale, seed, layers,
        name, allow_large, **options)`` returning a `Cell` (``gf.lstm`` for ``"lstm"``); for a
        kind with its own layout, its own constructor (``gf.mamba(d_model, ...)``).
    gates : tuple of str
        Gate names probed inside the step, in the order of the weight blocks (PyTorch's).
    blocks : int
        Weight blocks stacked in ``weight_ih_l<k>`` (``(blocks*N, D)``) and ``weight_hh_l<k>``
        (``(blocks*N, N)``): PyTorch's gate count.
    parts : tuple of (str, int or None)
        The state of one layer: named parts and their widths in hidden units (``h``, ``c`` of an
        LSTM; ``h`` of an LRU is ``2`` units wide, ``[Re h, Im h]``); `gradient_flow` reports
        each part's gradient norm. None: a width set by the kind's options (Mamba's ``conv`` and
        ``ssm``; the cell's ``components`` give it).
    options : mapping of str to default
        Constructor options only this kind takes (``forget_bias`` of an LSTM), with defaults; the
        sweep and CLI accept them for this kind only.
    step_options : tuple of str
        Config keys passed on to ``step`` (``activation`` of a vanilla cell).
    gate_bias : (block, option) or None
        The constructor option added to one block's input bias (``(1, "forget_bias")``).
    torch_modules : tuple of str
        ``torch.nn`` classes holding this kind's weights under PyTorch's names.
    candidate_block : int
        The weight block that plays the recurrent matrix (LSTM g, GRU n; 0 for a vanilla cell).
    vanilla : bool
        ``h' = phi(W_hh h + W_ih x + b)``: its one-layer linearisation is ``W_hh`` itself and the
        vanilla-only predictors (Pascanu's bound, mean field) apply.
    jacobians, jacobian_terms : callable or None
        Closed forms of a one-layer step's Jacobian: ``jacobians(params, h, x, activation,
        out=None) -> (M, S, S)`` and ``jacobian_terms(params, h, x, activation) -> (bases,
        scales)`` (``gradflow.core._jacobians``); None traces the step instead.
    sequence : callable or None
        ``sequence(params, xs, h0, **step_options) -> states (T, batch, S)``: a one-layer cell
        unrolled over ``xs`` as one primitive with a hand-written VJP (training's fast path), the
        step's ``step_options`` (a vanilla cell's ``activation``) as keywords; None unrolls ``step``.
    variant : callable or None
        ``variant(config) -> (step, stacked_tangents)`` for a configuration with another step
        (a projected LSTM, Keras's GRU with ``reset_after=False``), else None.
    stacked_tangents : bool
        Every derivative rule inside ``step`` takes extra leading tangent axes (`Cell`).
    description : str
        One line for reports.
    pytorch_layout : bool
        The weights are PyTorch's stacked layout (`torch_layout`) and ``gradflow.cells`` builds the
        cell from them: it is saved and loaded, read from PyTorch and Keras weights, swept, stacked
        with ``layers=`` and offered by the CLI. False for a kind with its own parameter names,
        which only its ``make`` and ``loader`` build (``blocks``, ``gates`` and the PyTorch fields
        then do not apply).
    linear_coefficients : callable or None
        For a cell linear in its state: ``linear_coefficients(cell, xs, h0) -> (a, b)``, every
        step's ``h_t = a_t * h_{t-1} + b_t`` at once on the state's ``linear_part``, for validated
        inputs (`gradflow.linear_coefficients`); None: not linear, or no exact formula (`scan`
        then reads ``a`` and ``b`` off the step).
    linear_part : str
        The state component ``linear_coefficients`` describes and the associative scan runs on.
    input_states : callable or None
        ``input_states(cell, xs, h0) -> (T, batch, k)``: the state's other columns after each
        step, in column order, where they depend on the inputs only (Mamba's conv buffer, a shift
        register of its inputs); None when ``linear_part`` is the whole state.
    layer_outputs : callable or None
        ``layer_outputs(cell, states, xs) -> ys``: the output sequence of a layer that reads its
        state out, from `unroll`'s states (`gradflow.layer_outputs`).
    loader : callable or None
        ``loader(weights, *, prefix, name) -> Cell``: the cell from arrays under its reference
        code's names (``gf.from_torch("mamba", state_dict)``).

    Examples
    --------
    >>> import gradflow as gf
    >>> lstm = gf.cell_kind("lstm")
    >>> lstm.name, lstm.blocks, lstm.parts, dict(lstm.options)
    ('lstm', 4, (('h', 1), ('c', 1)), {'forget_bias': 1.0})

    A kind with its own layout, linear in part of its state:

    >>> mamba = gf.cell_kind("mamba")
    >>> mamba.pytorch_layout, mamba.parts, mamba.linear_part, mamba.loader is gf.mamba_from_state_dict
    (False, (('conv', None), ('ssm', None)), 'ssm', True)
    """

    name: str
    step: Callable[..., Any]
    make: Callable[..., Any]
    gates: tuple[str, ...] = ()
    blocks: int = 1
    parts: tuple[tuple[str, int | None], ...] = (("h", 1),)
    options: Mapping[str, Any] = field(default_factory=dict)
    step_options: tuple[str, ...] = ()
    gate_bias: tuple[int, str] | None = None
    torch_modules: tuple[str, ...] = ()
    candidate_block: int = 0
    vanilla: bool = False
    jacobians: Callable[..., Any] | None = None
    jacobian_terms: Callable[..., Any] | None = None
    sequence: Callable[..., Any] | None = None
    variant: Callable[[Mapping[str, Any]], tuple[Callable[..., Any], bool] | None] | None = None
    stacked_tangents: bool = True
    description: str = ""
    pytorch_layout: bool = True
    linear_coefficients: Callable[..., Any] | None = None
    linear_part: str = "h"
    input_states: Callable[..., Any] | None = None
    layer_outputs: Callable[..., Any] | None = None
    loader: Callable[..., Any] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"CellKind name must be an identifier; got {self.name!r}")
        if not callable(self.step) or not callable(self.make):
            raise ValueError(f"CellKind {self.name!r}: step and make must be callable")
        if not isinstance(self.blocks, int) or self.blocks < 1:
            raise ValueError(f"CellKind {self.name!r}: blocks must be a positive int; got {self.blocks!r}")
        if self.gates and len(self.gates) != self.blocks:
            raise ValueError(
                f"CellKind {self.name!r}: {len(self.gates)} gates {self.gates} for "
                f"{self.blocks} weight blocks"
            )
        if not self.parts or (self.pytorch_layout and self.parts[0][0] != "h"):
            raise ValueError(
                f"CellKind {self.name!r}: parts must start with the output part 'h'; got {self.parts!r}"
            )
        names = [p for p, _ in self.parts]
        if self.linear_coefficients is not None and self.linear_part not in names:
            raise ValueError(
                f"CellKind {self.name!r}: linear_part {self.linear_part!r} is not one of its parts {names}"
            )
        if self.input_states is not None and self.linear_coefficients is None:
            raise ValueError(f"CellKind {self.name!r}: input_states completes linear_coefficients; give both")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def state_width(self, hidden: int, proj_size: int = 0) -> int:
        """State columns of one layer (``h`` is ``proj_size`` wide when projected).

        Examples
        --------
        >>> import gradflow as gf
        >>> gf.cell_kind("lstm").state_width(6), gf.cell_kind("lstm").state_width(6, proj_size=2)
        (12, 8)
        """
        return sum(self.part_widths(hidden, proj_size).values())

    def part_widths(self, hidden: int, proj_size: int = 0) -> dict[str, int]:
        """Width of each state part of one layer.

        Examples
        --------
        >>> import gradflow as gf
        >>> gf.cell_kind("lstm").part_widths(6, proj_size=2), gf.cell_kind("lru").part_widths(6)
        ({'h': 2, 'c': 6}, {'h': 12})
        """
        if any(units is None for _, units in self.parts):
            raise ValueError(
                f"cell kind {self.name!r}: its parts' widths {self.parts} are set by its options; "
                f"read a cell's components"
            )
        return {
            p: (proj_size or units * hidden) if p == "h" else units * hidden
            for p, units in self.parts
            if units is not None
        }

    def torch_layout(self, hidden: int, inputs: int, layers: int = 1) -> dict[str, tuple[int, ...]]:
        """PyTorch's weight names and shapes for a stack of this kind (no projection).

        Examples
        --------
        >>> import gradflow as gf
        >>> gf.cell_kind("gru").torch_layout(4, 2)
        {'weight_ih_l0': (12, 2), 'weight_hh_l0': (12, 4), 'bias_ih_l0': (12,), 'bias_hh_l0': (12,)}
        """
        G, out = self.blocks * hidden, {}
        for l in range(layers):
            out.update(
                {
                    f"weight_ih_l{l}": (G, inputs if l == 0 else hidden),
                    f"weight_hh_l{l}": (G, hidden),
                    f"bias_ih_l{l}": (G,),
                    f"bias_hh_l{l}": (G,),
                }
            )
        return out

    def is_one_layer_step(self, step: Any) -> bool:
        """Whether ``step`` is this kind's own step of one layer, no variant: the cell the closed
        forms (``jacobians``, ``sequence``) describe.

        Examples
        --------
        >>> import gradflow as gf
        >>> lstm = gf.cell_kind("lstm")
        >>> lstm.is_one_layer_step(gf.lstm(4, 2).step), lstm.is_one_layer_step(gf.lstm(4, 2, layers=2).step)
        (True, False)
        """
        keywords = getattr(step, "keywords", None)
        return (
            getattr(step, "func", None) is self.step
            and keywords is not None
            and set(keywords) == {"hidden", "layers", *self.step_options}
            and keywords["layers"] == 1
        )

    def step_for(self, config: Mapping[str, Any]) -> tuple[Callable[..., Any], bool]:
        """The step function for ``config`` (its variant's, if any) and whether it takes stacked
        tangents.

        Examples
        --------
        Keras's GRU with ``reset_after=False`` is a variant whose step takes no stacked tangents.

        >>> import gradflow as gf
        >>> gru = gf.cell_kind("gru")
        >>> gru.step_for({})[0] is gru.step, gru.step_for({"reset_after": False})[1]
        (True, False)
        """
        chosen = self.variant(config) if self.variant is not None else None
        return chosen if chosen is not None else (self.step, self.stacked_tangents)


_KINDS: dict[str, CellKind] = {}


def register_cell_kind(kind: CellKind, *, replace: bool = False) -> CellKind:
    """Make a kind of cell known to every part of gradflow; returns it.

    Parameters
    ----------
    kind : CellKind
    replace : bool
        Replace a kind registered under the same name (refused by default).

    Examples
    --------
    A kind is one record: here a leaky vanilla cell ``h' = (1-a) h + a tanh(W_hh h + W_ih x + b)``
    on the weights PyTorch's ``nn.RNN`` would hold.

    >>> import functools
    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import gradflow as gf
    >>> def leaky_step(p, h, x, *, hidden, layers, leak):
    ...     a = h @ p["weight_hh_l0"].T + x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
    ...     return (1 - leak) * h + leak * anp.tanh(a)
    >>> def leaky(hidden, inputs, *, leak=0.5, seed=0):
    ...     rng = np.random.default_rng(seed)
    ...     layout = gf.cell_kind("leaky").torch_layout(hidden, inputs)
    ...     params = {k: rng.normal(0, 1 / np.sqrt(s[-1]), s) for k, s in layout.items()}
    ...     step = functools.partial(leaky_step, hidden=hidden, layers=1, leak=leak)
    ...     return gf.Cell(step, params, hidden, inputs, kind="leaky",
    ...                    config={"hidden": hidden, "inputs": inputs, "layers": 1, "leak": leak})
    >>> _ = gf.register_cell_kind(gf.CellKind("leaky", leaky_step, leaky, options={"leak": 0.5},
    ...                                       step_options=("leak",), stacked_tangents=False))
    >>> cell = leaky(8, 2, leak=0.3)
    >>> "leaky" in gf.cell_kinds(), gf.gradient_flow(cell, gf.inputs.gaussian(50, 2, 2)).regime
    (True, 'vanishing')
    >>> gf.unregister_cell_kind("leaky")
    """
    if not isinstance(kind, CellKind):
        raise TypeError(f"kind must be a gradflow CellKind; got {type(kind).__name__}")
    if kind.name in _KINDS and not replace and _KINDS[kind.name] != kind:
        raise ValueError(
            f"a cell kind named {kind.name!r} is already registered; pass replace=True to replace it"
        )
    _KINDS[kind.name] = kind
    return kind


def unregister_cell_kind(name: str) -> None:
    """Forget the kind registered as ``name`` (a ``KeyError``-free no-op if there is none).

    Examples
    --------
    Register a throwaway kind (the LSTM's step and constructor under another name), then forget it.

    >>> import gradflow as gf
    >>> lstm = gf.cell_kind("lstm")
    >>> _ = gf.register_cell_kind(gf.CellKind("throwaway", lstm.step, lstm.make))
    >>> "throwaway" in gf.cell_kinds()
    True
    >>> gf.unregister_cell_kind("throwaway")
    >>> "throwaway" in gf.cell_kinds(), gf.unregister_cell_kind("throwaway")
    (False, None)
    """
    _KINDS.pop(name, None)


def cell_kind(name: str) -> CellKind:
    """The registered kind ``name``; ``ValueError`` naming the known kinds otherwise.

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.cell_kind("lstm").gates, gf.cell_kind("lstm").blocks
    (('i', 'f', 'g', 'o'), 4)
    """
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell kind must be one of {', '.join(_KINDS)}; got {name!r}") from None


def find_cell_kind(name: Any, *, pytorch_layout: bool | None = None) -> CellKind | None:
    """The registered kind ``name``, or None (a custom cell's kind); with ``pytorch_layout``, None
    also for a kind whose `CellKind` ``pytorch_layout`` is not that.

    Examples
    --------
    >>> from gradflow.core._registry import find_cell_kind
    >>> find_cell_kind("lru").name, find_cell_kind("lru", pytorch_layout=True), find_cell_kind("custom")
    ('lru', None, None)
    """
    record = _KINDS.get(name) if isinstance(name, str) else None
    if record is None or (pytorch_layout is not None and record.pytorch_layout != pytorch_layout):
        return None
    return record


def is_vanilla(kind: Any) -> bool:
    """Whether ``kind`` names a registered vanilla kind (``h' = phi(W_hh h + W_ih x + b)``)."""
    record = find_cell_kind(kind)
    return record is not None and record.vanilla


def cell_kinds(*, pytorch_layout: bool | None = None) -> tuple[str, ...]:
    """Names of the registered kinds, in registration order; with ``pytorch_layout`` only those
    whose `CellKind` ``pytorch_layout`` is that (True: the kinds built, saved, swept and offered
    by the CLI from PyTorch's weight layout).

    Examples
    --------
    >>> import gradflow as gf
    >>> gf.cell_kinds()[:3], gf.cell_kinds(pytorch_layout=True)
    (('rnn', 'lstm', 'gru'), ('rnn', 'lstm', 'gru'))
    >>> "lru" in gf.cell_kinds(), "mamba" in gf.cell_kinds(pytorch_layout=False)
    (True, True)
    """
    return tuple(
        name
        for name, record in _KINDS.items()
        if pytorch_layout is None or record.pytorch_layout == pytorch_layout
    )
