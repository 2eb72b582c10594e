"""Models from PyTorch modules, state_dicts and checkpoint files, Keras arrays, and ``.npz`` cells.

torch is never imported to read a module or a state_dict (tensors are read through
``.detach()``); only a ``.pt`` / ``.pth`` file needs it, and then only when one is given.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cells._cells import Cell, build_cell
from ..core import _activations as act
from ..core import _html
from ..core._registry import cell_kind, cell_kinds, find_cell_kind
from ..core._validation import as_float_array, check_choice

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_CELL_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)$")  # nn.RNNCell / LSTMCell / GRUCell
# Header entries a gradflow cell file may carry besides kind, hidden, inputs and layers.
_HEADER_EXTRAS = {"format": str, "version": int, "name": str, "activation": str, "gain": float,
                  "init": str, "bias_scale": float, "seed": int, "forget_bias": float,
                  "update_bias": float, "proj_size": int, "reset_after": bool}


def _to_numpy(name: str, value: Any) -> np.ndarray:
    # torch tensors expose .detach(); take them without importing torch.
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy() if hasattr(value, "double") else \
            value.detach().cpu().numpy()
    return as_float_array(f"weights[{name!r}]", value, ndim=(1, 2))


@dataclass(frozen=True)
class Readout:
    """The linear head a model reads its output through: ``y = weight @ h_top + bias``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True, repr=False)
class Model:
    """A recurrent network as PyTorch ran it: its cells, its readout, and what was left out.

    A unidirectional stack is one `Cell` (``cells["forward"]``; the state is every layer's
    state). A bidirectional network has one one-layer cell per layer and direction
    (``"l0 forward"``, ``"l0 reverse"``, ...): the reverse cell reads its inputs reversed in
    time, and layer ``l + 1`` reads both directions' outputs of layer ``l``.

    Attributes
    ----------
    kind : {"rnn", "lstm", "gru"}
    cells : dict of str to Cell
    head : Readout or None
        The linear layer on the top layer's output (``fc.weight``, ``fc.bias`` or a named head).
    layers, hidden, proj_size : int
    bidirectional, batch_first : bool
    ignored : tuple of str
        State-dict keys that are neither the recurrent block nor its head.
    source : str
        Where the weights came from.
    """

    name: str
    kind: str
    cells: dict[str, Cell]
    head: Readout | None
    layers: int
    hidden: int
    proj_size: int
    bidirectional: bool
    batch_first: bool
    ignored: tuple[str, ...]
    source: str

    @property
    def cell(self) -> Cell:
        """The one cell of a unidirectional network."""
        if self.bidirectional:
            raise ValueError(f"model {self.name!r} is bidirectional: it has one cell per layer and "
                             f"direction; use model.cells ({', '.join(self.cells)})")
        return self.cells["forward"]

    @property
    def output_size(self) -> int:
        return (self.proj_size or self.hidden) * (2 if self.bidirectional else 1)

    def time_major(self, xs, batch_first: bool | None = None) -> np.ndarray:
        """``xs`` as ``(T, batch, inputs)``: transposed when it is batch-first (default: as the module)."""
        xs = as_float_array("xs", xs, ndim=3)
        first = self.batch_first if batch_first is None else bool(batch_first)
        return np.swapaxes(xs, 0, 1).copy() if first else xs

    def cell_inputs(self, xs) -> dict[str, np.ndarray]:
        """Each cell's own input sequence for time-major ``xs``, in the cells' order.

        The reverse direction's sequence is reversed in time (its step ``t`` reads ``x_{T-1-t}``).
        """
        from ..engine._engine import unroll

        xs = as_float_array("xs", xs, ndim=3)
        if not self.bidirectional:
            return {"forward": xs}
        out, inp = {}, xs
        width = self.proj_size or self.hidden
        for l in range(self.layers):
            fwd, rev = self.cells[f"l{l} forward"], self.cells[f"l{l} reverse"]
            out[f"l{l} forward"], out[f"l{l} reverse"] = inp, inp[::-1].copy()
            h_f = unroll(fwd, inp)[1:, :, :width]
            h_r = unroll(rev, inp[::-1])[1:, :, :width][::-1]
            inp = np.concatenate([h_f, h_r], axis=2)
        return out

    def outputs(self, xs) -> np.ndarray:
        """The top layer's output at every step, ``(T, batch, output_size)``: PyTorch's ``output``
        for time-major ``xs`` (both directions concatenated when bidirectional)."""
        from ..engine._engine import unroll

        xs = as_float_array("xs", xs, ndim=3)
        width = self.proj_size or self.hidden
        if not self.bidirectional:
            cell = self.cell
            states = unroll(cell, xs)[1:]
            top = cell.components[f"l{self.layers - 1}.h" if self.layers > 1 else "h"]
            return states[:, :, top]
        inputs = self.cell_inputs(xs)
        top = self.layers - 1
        fwd = unroll(self.cells[f"l{top} forward"], inputs[f"l{top} forward"])[1:, :, :width]
        rev = unroll(self.cells[f"l{top} reverse"], inputs[f"l{top} reverse"])[1:, :, :width][::-1]
        return np.concatenate([fwd, rev], axis=2)

    def readout(self, xs) -> np.ndarray:
        """The head applied to the last step's output, ``(batch, head outputs)``."""
        if self.head is None:
            raise ValueError(f"model {self.name!r} has no head (no linear layer on its output)")
        return self.outputs(xs)[-1] @ self.head.weight.T + self.head.bias

    def readout_directions(self, name: str) -> np.ndarray | None:
        """The rows of the head as vectors in cell ``name``'s state, ``(outputs, state_size)``:
        what the output at the last step reads of that cell's final state. None when the head
        does not read that cell directly (no head, or a lower layer of a bidirectional net)."""
        if self.head is None:
            return None
        cell = self.cells[name]
        width = self.proj_size or self.hidden
        W = self.head.weight
        out = np.zeros((W.shape[0], cell.state_size))
        if not self.bidirectional:
            out[:, cell.components[f"l{self.layers - 1}.h" if self.layers > 1 else "h"]] = W
            return out
        if not name.startswith(f"l{self.layers - 1} "):
            return None
        # The last step's output holds the forward cell's final state and the reverse cell's
        # state after its first step (it reads x_{T-1} first); only the former is a final state.
        if name.endswith("forward"):
            out[:, :width] = W[:, :width]
            return out
        return None

    def __repr__(self) -> str:
        head = "none" if self.head is None else f"{self.head.name} {self.head.weight.shape}"
        return (f"Model(name={self.name!r}, kind={self.kind!r}, layers={self.layers}, "
                f"hidden={self.hidden}, proj_size={self.proj_size}, bidirectional={self.bidirectional}, "
                f"batch_first={self.batch_first}, head={head}, ignored={list(self.ignored)})")

    def _repr_html_(self) -> str:
        rows = [("kind", self.kind), ("layers", str(self.layers)), ("hidden", str(self.hidden)),
                ("projection", str(self.proj_size or "none")),
                ("directions", "2 (bidirectional)" if self.bidirectional else "1"),
                ("batch_first", str(self.batch_first)),
                ("head", "none" if self.head is None else
                 f"{self.head.name}: {self.head.weight.shape[0]} output(s)"),
                ("cells", ", ".join(f"{k} (state {c.state_size})" for k, c in self.cells.items())),
                ("ignored keys", ", ".join(self.ignored) or "none")]
        return _html.card("Model", self.name, rows, note=f"from {self.source}")


# ------------------------------------------------------------------ arrays in PyTorch's layout


def _validated_layout(kind: str, weights: Mapping[str, Any], what: str = "weights",
                      directions: int = 1):
    """Check one direction's PyTorch-layout arrays (``..._l{k}``, no suffix); return
    ``(params, hidden, inputs, layers, proj_size)``. Layers above the first read
    ``directions`` outputs of the layer below."""
    unknown = sorted(k for k in weights if not _KEY.match(k) or _KEY.match(k).group(3))
    if unknown:
        raise ValueError(f"{what} has unexpected keys {unknown}; expected weight_ih_l<k>, "
                         f"weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k> (and weight_hr_l<k>)")
    layers = 1 + max((int(_KEY.match(k).group(2)) for k in weights), default=-1)
    if layers == 0:
        raise ValueError(f"{what} is empty; expected weight_ih_l0 and weight_hh_l0")
    g = cell_kind(kind).blocks
    w_hh0 = _required(weights, "weight_hh_l0", what)
    has_proj = any(k.startswith("weight_hr") for k in weights)
    if has_proj and kind != "lstm":
        raise ValueError(f"{what} has weight_hr (a projection), which only an LSTM has; got kind {kind!r}")
    if w_hh0.ndim != 2 or w_hh0.shape[0] % g or (not has_proj and w_hh0.shape[0] != g * w_hh0.shape[1]):
        raise ValueError(f"{what}['weight_hh_l0'] must have shape ({g}*N, N) for {kind}; "
                         f"got {w_hh0.shape}")
    hidden = w_hh0.shape[0] // g
    proj = w_hh0.shape[1] if has_proj else 0
    width = proj or hidden
    has_bias = any(k.startswith("bias") for k in weights)
    params = {}
    inputs = -1
    for l in range(layers):
        w_ih = _required(weights, f"weight_ih_l{l}", what)
        if w_ih.ndim != 2:
            raise ValueError(f"{what}['weight_ih_l{l}'] must be 2-D, ({g}*N, inputs); got shape "
                             f"{w_ih.shape}")
        if l == 0:
            inputs = w_ih.shape[1]
        expected = {f"weight_ih_l{l}": (g * hidden, inputs if l == 0 else directions * width),
                    f"weight_hh_l{l}": (g * hidden, width)}
        if has_bias:
            expected[f"bias_ih_l{l}"] = (g * hidden,)
            expected[f"bias_hh_l{l}"] = (g * hidden,)
        if has_proj:
            expected[f"weight_hr_l{l}"] = (proj, hidden)
        for key, shape in expected.items():
            arr = _required(weights, key, what)
            if arr.shape != shape:
                raise ValueError(f"{what}[{key!r}] must have shape {shape} for a {kind} with "
                                 f"hidden size {hidden}" + (f", projection {proj}" if proj else "")
                                 + f"; got {arr.shape}")
            params[key] = arr
        if not has_bias:
            params[f"bias_ih_l{l}"] = np.zeros(g * hidden)
            params[f"bias_hh_l{l}"] = np.zeros(g * hidden)
    return params, hidden, inputs, layers, proj


def _required(weights: Mapping[str, Any], key: str, what: str = "weights") -> np.ndarray:
    if key not in weights:
        raise ValueError(f"{what} is missing {key!r}; got keys {sorted(weights)}")
    return _to_numpy(key, weights[key])


def _infer_kind(leaves: Mapping[str, Any], what: str) -> str:
    w = leaves.get("weight_hh_l0")
    hr = leaves.get("weight_hr_l0")
    w = None if w is None else _to_numpy("weight_hh_l0", w)
    hidden = _to_numpy("weight_hr_l0", hr).shape[1] if hr is not None else (
        w.shape[1] if w is not None and w.ndim == 2 else 0)
    if w is None or w.ndim != 2 or not hidden or w.shape[0] % hidden:
        raise ValueError(f"cannot tell the cell kind of {what} from weight_hh_l0 "
                         f"{None if w is None else w.shape}; give kind")
    by_blocks = {cell_kind(k).blocks: k for k in reversed(cell_kinds()) if cell_kind(k).torch_modules}
    kind = by_blocks.get(w.shape[0] // hidden)
    if kind is None:
        raise ValueError(f"cannot tell the cell kind of {what}: weight_hh_l0 has shape {w.shape}, "
                         f"not (G*N, N) with G = {', '.join(map(str, sorted(by_blocks)))}; give kind")
    return kind


def _split_blocks(weights: Mapping[str, Any]):
    """Group state-dict keys into recurrent blocks by module prefix.

    Returns ``({prefix: {leaf: value}}, {key: value} of everything else)``; a cell module's
    keys (``weight_ih``, ...) are renamed to layer 0 (``weight_ih_l0``, ...).
    """
    blocks: dict[str, dict[str, Any]] = {}
    cell_like: dict[str, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for key, value in weights.items():
        if not isinstance(key, str):
            raise ValueError(f"weights keys must be strings; got {key!r}")
        prefix, _, leaf = key.rpartition(".")
        if _KEY.match(leaf):
            blocks.setdefault(prefix, {})[leaf] = value
        elif _CELL_KEY.match(leaf):
            cell_like.setdefault(prefix, {})[f"{leaf}_l0"] = value
        else:
            rest[key] = value
    for prefix, leaves in cell_like.items():
        if "weight_hh_l0" in leaves and prefix not in blocks:
            blocks[prefix] = leaves
        else:
            rest.update({f"{prefix}.{k[:-3]}" if prefix else k[:-3]: v for k, v in leaves.items()})
    return blocks, rest


def _find_head(rest: Mapping[str, Any], width: int, head: str | None, block: str):
    """The linear head on the recurrent output: named by ``head``, else the one ``X.weight`` of
    shape ``(K, width)``; returns ``(Readout or None, keys it used)``."""
    if head is not None:
        if not isinstance(head, str):
            raise ValueError(f"head must be a module name like 'fc'; got {head!r}")
        key = f"{head}.weight"
        if key not in rest:
            names = sorted({k.rpartition('.')[0] for k in rest if k.endswith(".weight")})
            raise ValueError(f"head {head!r} not found: no {key!r} in the weights; linear layers "
                             f"there: {names or 'none'}")
        candidates = [head]
    else:
        candidates = []
        for key, value in rest.items():
            prefix, _, leaf = key.rpartition(".")
            shape = np.shape(value.detach() if hasattr(value, "detach") else value)
            if leaf == "weight" and len(shape) == 2 and shape[1] == width:
                candidates.append(prefix)
        if len(candidates) != 1:
            return None, ()
    name = candidates[0]
    weight = _to_numpy(f"{name}.weight", rest[f"{name}.weight"])
    if weight.ndim != 2 or weight.shape[1] != width:
        raise ValueError(f"head {name!r}: weight must have shape (outputs, {width}) to read the "
                         f"output of {block or 'the recurrent block'}; got {weight.shape}")
    bias_key = f"{name}.bias"
    bias = _to_numpy(bias_key, rest[bias_key]) if bias_key in rest else np.zeros(weight.shape[0])
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"head {name!r}: bias must have shape ({weight.shape[0]},); got {bias.shape}")
    used = (f"{name}.weight", bias_key) if bias_key in rest else (f"{name}.weight",)
    return Readout(name, weight, bias), used


def _module_info(obj) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A torch module's state_dict, and the settings of each recurrent submodule by prefix."""
    settings = {}
    modules = obj.named_modules() if hasattr(obj, "named_modules") else [("", obj)]
    for prefix, module in modules:
        cls = type(module).__name__
        modules = {m: k for k in cell_kinds() for m in cell_kind(k).torch_modules}
        if cls in modules:
            settings[prefix] = {"kind": modules[cls],
                                "nonlinearity": getattr(module, "nonlinearity", "tanh"),
                                "batch_first": bool(getattr(module, "batch_first", False))}
    return dict(obj.state_dict()), settings


def _read_file(path: str) -> Mapping[str, Any]:
    lower = path.lower()
    if lower.endswith((".pt", ".pth")):
        try:
            import torch
        except ImportError:
            raise ValueError(f"reading {path!r} needs torch, which is not installed; export the "
                             f"state_dict instead: numpy.savez('model.npz', **{{k: v.numpy() for k, v "
                             f"in model.state_dict().items()}})") from None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds; say which file and why in one line
            raise ValueError(f"{path!r} is not a readable PyTorch state_dict (torch.load with "
                             f"weights_only=True): {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        if isinstance(data, Mapping):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(data.get(key), Mapping):
                    return dict(data[key])
            return dict(data)
        raise ValueError(f"{path!r} holds a {type(data).__name__}, not a state_dict; save "
                         f"model.state_dict()")
    return read_npz(path)


def read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` archive, or a ValueError naming the file and what is wrong."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file name; got {path!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} does not exist or is not a file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path!r} is a single .npy array, not an archive of named arrays; "
                             f"write the weights with numpy.savez")
        with data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "single .npy array" in str(exc):
            raise
        raise ValueError(f"{path!r} is not a readable .npz archive of arrays (numpy.savez): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except Exception as exc:  # a damaged file raises BadZipFile, EOFError, zlib.error, OSError, ...
        raise ValueError(f"{path!r} is not a readable .npz archive of arrays (numpy.savez): "
                         f"{type(exc).__name__}: {exc}") from None


def from_torch(source: Any, weights: Mapping[str, Any] | None = None, *, prefix: str | None = None,
               head: str | None = None, kind: str | None = None, nonlinearity: str = "tanh",
               batch_first: bool | None = None, name: str | None = None) -> Model | Cell:
    """Bring a PyTorch recurrent network as it is: a module, a state_dict or a saved file.

    Parameters
    ----------
    source : torch module, mapping, path, or {"rnn", "lstm", "gru"}
        An ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNNCell`` / ``nn.LSTMCell`` /
        ``nn.GRUCell`` or any module containing one (an LSTM plus a Linear head); its
        ``state_dict()`` (keys may carry module prefixes: ``lstm.weight_ih_l0``, ``fc.weight``);
        or a ``.pt`` / ``.pth`` (``torch.save(model.state_dict())``, read with torch,
        ``weights_only=True``) or ``.npz`` file of the same arrays. Any number of layers,
        ``proj_size`` (``weight_hr_l<k>``) and bidirectional (``*_reverse``) layers; dropout
        does not change the weights and is ignored. The older form ``from_torch(kind, arrays)``
        builds just the `Cell` from bare ``weight_ih_l<k>`` ... arrays.
    weights : mapping, optional
        Only with ``source`` a kind: the arrays.
    prefix : str, optional
        Which recurrent block to take when the weights hold several (``"encoder.rnn"``).
    head : str, optional
        The module name of the linear layer that reads the top layer's output (``"fc"``);
        default: the one ``X.weight`` of shape ``(outputs, output width)``, if there is exactly one.
    kind : {"rnn", "lstm", "gru"}, optional
        Default: the module's class, else read off ``weight_hh_l0``'s shape.
    nonlinearity : {"tanh", "relu"}
        ``nn.RNN``'s, for weights without a module.
    batch_first : bool, optional
        How the model reads inputs (default: the module's setting, else False).
    name : str, optional

    Returns
    -------
    Model
        (A `Cell` for the ``from_torch(kind, arrays)`` form.)

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> rng = np.random.default_rng(0)
    >>> sd = {"rnn.weight_ih_l0": rng.normal(size=(12, 2)), "rnn.weight_hh_l0": rng.normal(size=(12, 4)),
    ...       "rnn.bias_ih_l0": np.zeros(12), "rnn.bias_hh_l0": np.zeros(12),
    ...       "fc.weight": rng.normal(size=(1, 4)), "fc.bias": np.zeros(1), "step": np.array(3.0)}
    >>> model = gf.from_torch(sd)
    >>> model.kind, model.cell.state_size, model.head.name, model.ignored
    ('gru', 4, 'fc', ('step',))
    """
    if weights is not None:  # the arrays form: from_torch(kind, arrays)
        return _cell_from_arrays(source, weights, nonlinearity, name)
    if kind is not None:
        kind = check_choice("kind", kind, cell_kinds())
    settings: dict[str, dict[str, Any]] = {}
    if isinstance(source, (str, os.PathLike)):
        origin = os.fspath(source)
        state = _read_file(origin)
    elif isinstance(source, Mapping):
        origin, state = "a state_dict", dict(source)
    elif hasattr(source, "state_dict") and callable(source.state_dict):
        origin = f"a {type(source).__name__} module"
        state, settings = _module_info(source)
    else:
        raise ValueError(f"source must be a torch module, a state_dict, or a .pt/.pth/.npz path; got "
                         f"{type(source).__name__}")
    blocks, rest = _split_blocks(state)
    if not blocks:
        raise ValueError(f"{origin} has no recurrent weights (no weight_hh_l0 or weight_hh key); got "
                         f"keys {sorted(state)[:8]}")
    if prefix is not None:
        if prefix not in blocks:
            raise ValueError(f"prefix {prefix!r} is not a recurrent block of {origin}; blocks: "
                             f"{sorted(blocks)}")
        chosen = prefix
    elif len(blocks) > 1:
        raise ValueError(f"{origin} holds {len(blocks)} recurrent blocks {sorted(blocks)}; choose "
                         f"one with prefix=")
    else:
        chosen = next(iter(blocks))
    for other in blocks:
        if other != chosen:
            rest.update({f"{other}.{k}" if other else k: v for k, v in blocks[other].items()})
    leaves = blocks[chosen]
    what = f"block {chosen!r}" if chosen else "the weights"
    setting = settings.get(chosen, {})
    kind = kind or setting.get("kind") or _infer_kind(leaves, what)
    nonlinearity = setting.get("nonlinearity", nonlinearity)
    if "activation" in cell_kind(kind).step_options:
        nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
    first = setting.get("batch_first", False) if batch_first is None else bool(batch_first)
    forward = {k: v for k, v in leaves.items() if not k.endswith("_reverse")}
    reverse = {k[: -len("_reverse")]: v for k, v in leaves.items() if k.endswith("_reverse")}
    directions = 2 if reverse else 1
    params, hidden, inputs, layers, proj = _validated_layout(kind, forward, what, directions)
    label = name or (chosen.replace(".", "-") if chosen else kind)
    build = {"activation": nonlinearity if "activation" in cell_kind(kind).step_options else "tanh"}
    if proj:
        build["proj_size"] = proj
    if reverse:
        r_params, r_hidden, r_inputs, r_layers, r_proj = _validated_layout(
            kind, reverse, f"{what} (reverse)", directions)
        width = proj or hidden
        if (r_hidden, r_layers, r_proj) != (hidden, layers, proj) or r_inputs != inputs:
            raise ValueError(f"{what}: the reverse direction has hidden={r_hidden}, layers={r_layers}, "
                             f"inputs={r_inputs} but the forward one hidden={hidden}, layers={layers}, "
                             f"inputs={inputs}")
        cells = {}
        for l in range(layers):
            d = inputs if l == 0 else 2 * width
            for direction, p in (("forward", params), ("reverse", r_params)):
                one = {k.replace(f"_l{l}", "_l0"): v for k, v in p.items() if k.endswith(f"_l{l}")}
                if one["weight_ih_l0"].shape[1] != d:
                    raise ValueError(f"{what}: weight_ih_l{l} of the {direction} direction must have "
                                     f"{d} columns (both directions of the layer below); got "
                                     f"{one['weight_ih_l0'].shape}")
                cells[f"l{l} {direction}"] = build_cell(kind, one, hidden, d, 1,
                                                    name=f"{label} l{l} {direction}", **build)
    else:
        cells = {"forward": build_cell(kind, params, hidden, inputs, layers, name=label, **build)}
    readout, used = _find_head(rest, (proj or hidden) * (2 if reverse else 1), head, chosen)
    ignored = tuple(sorted(k for k in rest if k not in used))
    return Model(label, kind, cells, readout, layers, hidden, proj, bool(reverse), first, ignored,
                 origin)


def _cell_from_arrays(kind, weights, nonlinearity, name) -> Cell:
    kind = check_choice("kind", kind, cell_kinds())
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be a mapping of PyTorch names to arrays; got "
                         f"{type(weights).__name__}")
    if "activation" in cell_kind(kind).step_options:
        nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
    if any(isinstance(k, str) and k.endswith("_reverse") for k in weights):
        raise ValueError("weights has bidirectional (*_reverse) keys: pass the whole state_dict as "
                         "from_torch(state_dict) to get one cell per direction")
    params, hidden, inputs, layers, proj = _validated_layout(kind, weights)
    extra = {"proj_size": proj} if proj else {}
    return build_cell(kind, params, hidden, inputs, layers, name=name, **extra,
                      activation=nonlinearity if "activation" in cell_kind(kind).step_options else "tanh")


# ------------------------------------------------------------------ Keras / TensorFlow


def from_keras(kind: str, weights: Sequence[Any] | Mapping[str, Any], *, reset_after: bool = True,
               name: str | None = None) -> Cell:
    """A cell from a Keras / TensorFlow ``LSTM`` or ``GRU`` layer's weights.

    Parameters
    ----------
    kind : {"lstm", "gru"}
    weights : sequence or mapping
        ``layer.get_weights()``: ``[kernel (D, G*N), recurrent_kernel (N, G*N), bias]``, or a
        mapping with those names. Keras's gate order is i, f, c, o (LSTM) and z, r, h (GRU);
        ``bias`` is ``(G*N,)``, or ``(2, 3N)`` (input and recurrent bias) for a GRU with
        ``reset_after=True``. ``use_bias=False``: leave the bias out.
    reset_after : bool
        The GRU's setting (TF2's default True applies the reset gate after the recurrent matrix,
        as PyTorch does; False before it). Activations must be Keras's defaults (tanh, sigmoid).

    Examples
    --------
    >>> import numpy as np
    >>> import gradflow as gf
    >>> rng = np.random.default_rng(0)
    >>> w = [rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), np.zeros(8)]
    >>> gf.from_keras("lstm", w).state_size
    4
    """
    kind = check_choice("kind", kind, ("lstm", "gru"))
    if isinstance(reset_after, (bool, np.bool_)) is False:
        raise ValueError(f"reset_after must be True or False; got {reset_after!r}")
    if isinstance(weights, Mapping):
        arrays = [weights[k] for k in ("kernel", "recurrent_kernel", "bias") if k in weights]
        if len(arrays) < 2 or "kernel" not in weights or "recurrent_kernel" not in weights:
            raise ValueError(f"weights must hold 'kernel' and 'recurrent_kernel' (and 'bias'); got "
                             f"keys {sorted(weights)}")
    elif isinstance(weights, Sequence) and not isinstance(weights, str) and len(weights) in (2, 3):
        arrays = list(weights)
    else:
        raise ValueError("weights must be [kernel, recurrent_kernel, bias] (layer.get_weights()) or "
                         f"a mapping of those names; got {type(weights).__name__}")
    kernel = as_float_array("kernel", arrays[0], ndim=2)
    recurrent = as_float_array("recurrent_kernel", arrays[1], ndim=2)
    g = cell_kind(kind).blocks
    n = recurrent.shape[0]
    if recurrent.shape != (n, g * n) or n == 0:
        raise ValueError(f"recurrent_kernel must have shape (N, {g}*N) for a Keras {kind}; got "
                         f"{recurrent.shape}")
    if kernel.shape[1] != g * n:
        raise ValueError(f"kernel must have shape (inputs, {g * n}); got {kernel.shape}")
    two_biases = kind == "gru" and reset_after
    if len(arrays) == 3:
        bias = as_float_array("bias", arrays[2], ndim=(1, 2))
        shape = (2, g * n) if two_biases else (g * n,)
        if bias.shape != shape:
            raise ValueError(f"bias must have shape {shape} for a Keras {kind}"
                             + (f" with reset_after={reset_after}" if kind == "gru" else "")
                             + f"; got {bias.shape}")
        b_ih, b_hh = (bias[0], bias[1]) if two_biases else (bias, np.zeros(g * n))
    else:
        b_ih = b_hh = np.zeros(g * n)
    w_ih, w_hh = kernel.T, recurrent.T
    if kind == "gru":  # Keras z, r, h -> PyTorch r, z, n
        order = np.concatenate([np.arange(n, 2 * n), np.arange(n), np.arange(2 * n, 3 * n)])
        w_ih, w_hh, b_ih, b_hh = w_ih[order], w_hh[order], b_ih[order], b_hh[order]
    params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    extra = {"reset_after": False} if kind == "gru" and not reset_after else {}
    return build_cell(kind, params, n, kernel.shape[0], 1, name=name or f"keras-{kind}", **extra)


# ------------------------------------------------------------------ gradflow cell files


def load(path: str | os.PathLike) -> Cell:
    """Read a cell written by `Cell.save`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import gradflow as gf
    >>> cell = gf.lstm(8, 3, seed=4)
    >>> path = os.path.join(tempfile.mkdtemp(), "cell.npz")
    >>> cell.save(path)
    >>> bool(np.array_equal(gf.load(path).params["weight_hh_l0"], cell.params["weight_hh_l0"]))
    True
    """
    arrays = read_npz(path)
    path = os.fspath(path)
    if "__gradflow__" not in arrays:
        raise ValueError(f"{path!r} is not a gradflow cell file (no __gradflow__ entry); for "
                         f"PyTorch arrays use gf.from_torch({path!r})")
    try:
        meta = json.loads(str(arrays.pop("__gradflow__")))
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        kind = meta.pop("kind")
        hidden, inputs, layers = meta.pop("hidden"), meta.pop("inputs"), meta.pop("layers")
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{path!r} has a corrupt __gradflow__ header: {exc}") from None
    own = getattr(find_cell_kind(kind), "options", {})  # a registered kind's, typed as their defaults
    known = {**_HEADER_EXTRAS, **{k: type(v) for k, v in own.items()}}
    for key, value in meta.items():
        expected = known.get(key)
        is_bool = isinstance(value, bool)
        ok = expected is not None and (
            (isinstance(value, expected) and (expected is bool or not is_bool))
            or (expected is float and isinstance(value, int) and not is_bool))
        if not ok:
            raise ValueError(f"{path!r} has a corrupt __gradflow__ header: entry {key!r} = {value!r} "
                             f"is not {'known' if expected is None else expected.__name__}")
    for key, value in (("hidden", hidden), ("inputs", inputs), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path!r} has a corrupt __gradflow__ header: {key} = {value!r} is not "
                             f"a positive integer")
    meta.pop("format", None)
    meta.pop("version", None)
    activation = meta.pop("activation", "tanh")
    if find_cell_kind(kind) is None or activation not in act.ACTIVATIONS:
        raise ValueError(f"{path!r} names an unknown cell kind {kind!r} or activation "
                         f"{activation!r}")
    params, n, d, nl, proj = _validated_layout(kind, arrays, repr(path))
    if (n, d, nl, proj) != (hidden, inputs, layers, meta.get("proj_size", 0)):
        raise ValueError(f"{path!r}: arrays give hidden={n}, inputs={d}, layers={nl} but "
                         f"the header says hidden={hidden}, inputs={inputs}, layers={layers}")
    return build_cell(kind, params, hidden, inputs, layers, activation=activation,
                  name=meta.pop("name", None), **meta)
