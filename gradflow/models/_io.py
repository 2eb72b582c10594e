"""Models from PyTorch modules, state_dicts and checkpoint files (``.pt`` / ``.pth`` / ``.npz``).

torch is never imported to read a module or a state_dict (tensors are read through
``.detach()``); only a ``.pt`` / ``.pth`` file needs it, and then only when one is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cells._builtin import build_cell
from ..cells._cells import Cell
from ..core import deprecated_spellings
from ..core._registry import cell_kind, cell_kinds, find_cell_kind
from ..core._validation import check_choice
from ._layout import LAYER_KEY, to_numpy
from ._layout import validated_layout as _validated_layout  # from_torch's body as it was: a branch edits it
from ._model import Model, Readout
from ._npz import read_npz

_CELL_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)$")  # nn.RNNCell / LSTMCell / GRUCell


def _infer_kind(leaves: Mapping[str, Any], what: str) -> str:
    w = leaves.get("weight_hh_l0")
    hr = leaves.get("weight_hr_l0")
    w = None if w is None else to_numpy("weight_hh_l0", w)
    hidden = (
        to_numpy("weight_hr_l0", hr).shape[1]
        if hr is not None
        else (w.shape[1] if w is not None and w.ndim == 2 else 0)
    )
    if w is None or w.ndim != 2 or not hidden or w.shape[0] % hidden:
        raise ValueError(
            f"cannot tell the cell kind of {what} from weight_hh_l0 "
            f"{None if w is None else w.shape}; give kind"
        )
    by_blocks = {cell_kind(k).blocks: k for k in reversed(cell_kinds()) if cell_kind(k).torch_modules}
    kind = by_blocks.get(w.shape[0] // hidden)
    if kind is None:
        raise ValueError(
            f"cannot tell the cell kind of {what}: weight_hh_l0 has shape {w.shape}, "
            f"not (G*N, N) with G = {', '.join(map(str, sorted(by_blocks)))}; give kind"
        )
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
        if LAYER_KEY.match(leaf):
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
            names = sorted({k.rpartition(".")[0] for k in rest if k.endswith(".weight")})
            raise ValueError(
                f"head {head!r} not found: no {key!r} in the weights; linear layers there: {names or 'none'}"
            )
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
    weight = to_numpy(f"{name}.weight", rest[f"{name}.weight"])
    if weight.ndim != 2 or weight.shape[1] != width:
        raise ValueError(
            f"head {name!r}: weight must have shape (outputs, {width}) to read the "
            f"output of {block or 'the recurrent block'}; got {weight.shape}"
        )
    bias_key = f"{name}.bias"
    bias = to_numpy(bias_key, rest[bias_key]) if bias_key in rest else np.zeros(weight.shape[0])
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
            settings[prefix] = {
                "kind": modules[cls],
                "nonlinearity": getattr(module, "nonlinearity", "tanh"),
                "batch_first": bool(getattr(module, "batch_first", False)),
            }
    return dict(obj.state_dict()), settings


def _read_file(path: str) -> Mapping[str, Any]:
    lower = path.lower()
    if lower.endswith((".pt", ".pth")):
        try:
            import torch
        except ImportError:
            raise ValueError(
                f"reading {path!r} needs torch, which is not installed; export the "
                f"state_dict instead: numpy.savez('model.npz', **{{k: v.numpy() for k, v "
                f"in model.state_dict().items()}})"
            ) from None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds; say which file and why in one line
            raise ValueError(
                f"{path!r} is not a readable PyTorch state_dict (torch.load with "
                f"weights_only=True): {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        if isinstance(data, Mapping):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(data.get(key), Mapping):
                    return dict(data[key])
            return dict(data)
        raise ValueError(f"{path!r} holds a {type(data).__name__}, not a state_dict; save model.state_dict()")
    return read_npz(path)


@deprecated_spellings(renamed={"nonlinearity": "activation"})
def from_torch(
    source: Any,
    weights: Mapping[str, Any] | None = None,
    *,
    prefix: str | None = None,
    head: str | None = None,
    kind: str | None = None,
    activation: str = "tanh",
    batch_first: bool | None = None,
    name: str | None = None,
) -> Model | Cell:
    """Bring a PyTorch recurrent network as it is: a module, a state_dict or a saved file.

    Parameters
    ----------
    source : torch module, mapping, path, or a kind ({"rnn", "lstm", "gru", "mamba", "lru"})
        An ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNNCell`` / ``nn.LSTMCell`` /
        ``nn.GRUCell`` or any module containing one (an LSTM plus a Linear head); its
        ``state_dict()`` (keys may carry module prefixes: ``lstm.weight_ih_l0``, ``fc.weight``);
        or a ``.pt`` / ``.pth`` (``torch.save(model.state_dict())``, read with torch,
        ``weights_only=True``) or ``.npz`` file of the same arrays. Any number of layers,
        ``proj_size`` (``weight_hr_l<k>``) and bidirectional (``*_reverse``) layers; dropout
        does not change the weights and is ignored. The older form ``from_torch(kind, arrays)``
        builds just the `Cell` from bare ``weight_ih_l<k>`` ... arrays;
        ``from_torch("mamba", state_dict)`` a `mamba` cell from a ``mamba_ssm`` ``Mamba``
        module's state_dict (``in_proj.weight``, ``conv1d.weight``, ..., ``A_log``, ``D``), and
        ``from_torch("lru", arrays)`` an `lru` cell from the LRU's reference names.
    weights : mapping, optional
        Only with ``source`` a kind: the arrays.
    prefix : str, optional
        Which recurrent block to take when the weights hold several (``"encoder.rnn"``).
    head : str, optional
        The module name of the linear layer that reads the top layer's output (``"fc"``);
        default: the one ``X.weight`` of shape ``(outputs, output width)``, if there is exactly one.
    kind : {"rnn", "lstm", "gru"}, optional
        Default: the module's class, else read off ``weight_hh_l0``'s shape.
    activation : {"tanh", "relu"}
        ``nn.RNN``'s ``nonlinearity``, for weights without a module.
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
    # A kind whose weights follow its reference code's names loads them itself (its CellKind's loader).
    own = find_cell_kind(source, pytorch_layout=False) if weights is not None else None
    loader = own.loader if own is not None else None
    if loader is not None:
        return loader(weights, prefix=prefix, name=name)
    if weights is not None:  # the arrays form: from_torch(kind, arrays)
        return _cell_from_arrays(source, weights, activation, name)
    if kind is not None:
        kind = check_choice("kind", kind, cell_kinds(pytorch_layout=True))
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
        raise ValueError(
            f"source must be a torch module, a state_dict, or a .pt/.pth/.npz path; got "
            f"{type(source).__name__}"
        )
    blocks, rest = _split_blocks(state)
    if not blocks:
        raise ValueError(
            f"{origin} has no recurrent weights (no weight_hh_l0 or weight_hh key); got "
            f"keys {sorted(state)[:8]}"
        )
    if prefix is not None:
        if prefix not in blocks:
            raise ValueError(
                f"prefix {prefix!r} is not a recurrent block of {origin}; blocks: {sorted(blocks)}"
            )
        chosen = prefix
    elif len(blocks) > 1:
        raise ValueError(
            f"{origin} holds {len(blocks)} recurrent blocks {sorted(blocks)}; choose one with prefix="
        )
    else:
        chosen = next(iter(blocks))
    for other in blocks:
        if other != chosen:
            rest.update({f"{other}.{k}" if other else k: v for k, v in blocks[other].items()})
    leaves = blocks[chosen]
    what = f"block {chosen!r}" if chosen else "the weights"
    setting = settings.get(chosen, {})
    kind = kind or setting.get("kind") or _infer_kind(leaves, what)
    activation = setting.get("nonlinearity", activation)  # an nn.RNN module's own setting wins
    if "activation" in cell_kind(kind).step_options:
        activation = check_choice("activation", activation, ("tanh", "relu"))
    first = setting.get("batch_first", False) if batch_first is None else bool(batch_first)
    forward = {k: v for k, v in leaves.items() if not k.endswith("_reverse")}
    reverse = {k[: -len("_reverse")]: v for k, v in leaves.items() if k.endswith("_reverse")}
    directions = 2 if reverse else 1
    params, hidden, inputs, layers, proj = _validated_layout(kind, forward, what, directions)
    label = name or (chosen.replace(".", "-") if chosen else kind)
    build = {"activation": activation if "activation" in cell_kind(kind).step_options else "tanh"}
    if proj:
        build["proj_size"] = proj
    if reverse:
        r_params, r_hidden, r_inputs, r_layers, r_proj = _validated_layout(
            kind, reverse, f"{what} (reverse)", directions
        )
        width = proj or hidden
        if (r_hidden, r_layers, r_proj) != (hidden, layers, proj) or r_inputs != inputs:
            raise ValueError(
                f"{what}: the reverse direction has hidden={r_hidden}, layers={r_layers}, "
                f"inputs={r_inputs} but the forward one hidden={hidden}, layers={layers}, "
                f"inputs={inputs}"
            )
        cells = {}
        for l in range(layers):
            d = inputs if l == 0 else 2 * width
            for direction, p in (("forward", params), ("reverse", r_params)):
                one = {k.replace(f"_l{l}", "_l0"): v for k, v in p.items() if k.endswith(f"_l{l}")}
                if one["weight_ih_l0"].shape[1] != d:
                    raise ValueError(
                        f"{what}: weight_ih_l{l} of the {direction} direction must have "
                        f"{d} columns (both directions of the layer below); got "
                        f"{one['weight_ih_l0'].shape}"
                    )
                cells[f"l{l} {direction}"] = build_cell(
                    kind, one, hidden, d, 1, name=f"{label} l{l} {direction}", **build
                )
    else:
        cells = {"forward": build_cell(kind, params, hidden, inputs, layers, name=label, **build)}
    readout, used = _find_head(rest, (proj or hidden) * (2 if reverse else 1), head, chosen)
    ignored = tuple(sorted(k for k in rest if k not in used))
    return Model(label, kind, cells, readout, layers, hidden, proj, bool(reverse), first, ignored, origin)


def _cell_from_arrays(kind, weights, activation, name) -> Cell:
    loaders = [k for k in cell_kinds(pytorch_layout=False) if cell_kind(k).loader is not None]
    # A kind with a loader never comes here; it is named so that the message lists every kind.
    kind = check_choice("kind", kind, (*cell_kinds(pytorch_layout=True), *loaders))
    if not isinstance(weights, Mapping):
        raise ValueError(
            f"weights must be a mapping of PyTorch names to arrays; got {type(weights).__name__}"
        )
    if "activation" not in cell_kind(kind).step_options:
        activation = "tanh"  # what build_cell is given for a kind without one, as before
    else:
        activation = check_choice("activation", activation, ("tanh", "relu"))
    if any(isinstance(k, str) and k.endswith("_reverse") for k in weights):
        raise ValueError(
            "weights has bidirectional (*_reverse) keys: pass the whole state_dict as "
            "from_torch(state_dict) to get one cell per direction"
        )
    params, hidden, inputs, layers, proj = _validated_layout(kind, weights)
    extra = {"proj_size": proj} if proj else {}
    return build_cell(kind, params, hidden, inputs, layers, activation=activation, name=name, **extra)
