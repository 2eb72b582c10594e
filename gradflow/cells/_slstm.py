"""xLSTM's sLSTM cell (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory").

One step is the reference's vanilla pointwise function (``slstm_forward_pointwise`` in
github.com/NX-AI/xlstm, ``xlstm/blocks/slstm/src/vanilla/slstm.py``) after the input and
recurrent projections, with one head:

    ``raw = W x_t + R y_{t-1} + b`` split into ``i~, f~, z~, o~``;
    ``m_t = max(i~, m_{t-1} + log sigmoid(f~))`` (the stabiliser; ``m_t = i~`` where ``n_{t-1} = 0``),
    ``i_t = min(exp(i~ - m_t), 1)``, ``f_t = min(exp(m_{t-1} + log sigmoid(f~) - m_t), 1)``,
    ``c_t = f_t c_{t-1} + i_t tanh(z~)``, ``n_t = f_t n_{t-1} + i_t``, ``y_t = sigmoid(o~) c_t / n_t``.

The exponential input gate is held in check by the stabiliser: ``c`` and ``n`` are the unstabilised
cell and normaliser states times ``exp(-m)``, so ``y = o c / n`` is unchanged. The state is
``[y, c, n, m]`` (components ``h``, ``c``, ``n``, ``m``). The reference tests ``n == 0`` over the
whole batch (a zero initial state); here it is tested per element, so batch rows stay
independent; the two agree whenever the initial ``n`` is all zero or nowhere zero.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from ..core import _activations as act
from ..core._ops import take_columns
from ..core._registry import CellKind, register_cell_kind
from ..core._validation import check_choice, check_positive_int, check_seed
from ._cells import Cell

KIND = "slstm"
GATES = ("i", "f", "z", "o")
RECURRENT_INITS = ("zeros", "standard")


def slstm_step(params, state, x):
    """One sLSTM step on ``[y, c, n, m]`` (see the module docstring)."""
    n_units = params["bias"].size // 4
    y, c, n, m = (take_columns(state, k * n_units, (k + 1) * n_units) for k in range(4))
    raw = x @ params["weight_ih"].T + y @ params["weight_hh"].T + params["bias"]
    i_raw, f_raw, z_raw, o_raw = (raw[:, k * n_units : (k + 1) * n_units] for k in range(4))
    log_f_plus_m = m - anp.logaddexp(0.0, -f_raw)  # m + log sigmoid(f~)
    m_new = anp.where(n == 0.0, i_raw, anp.maximum(i_raw, log_f_plus_m))
    i_gate = anp.minimum(anp.exp(i_raw - m_new), 1.0)
    f_gate = anp.minimum(anp.exp(log_f_plus_m - m_new), 1.0)
    c_new = f_gate * c + i_gate * act.tanh(z_raw)
    n_new = f_gate * n + i_gate
    return anp.concatenate([act.sigmoid(o_raw) * c_new / n_new, c_new, n_new, m_new], axis=1)


def slstm(
    hidden: int, inputs: int, *, recurrent_init: str = "zeros", seed: int = 0, name: str | None = None
) -> Cell:
    """An sLSTM cell (xLSTM), one head, initialised as the reference does.

    ``weight_ih`` (4N, D) and ``weight_hh`` (4N, N) hold the gates in the reference's order
    i, f, z, o. Input weights draw PyTorch's ``U(-1/sqrt(D), 1/sqrt(D))``; the recurrent weights
    are zero (the reference's default ``recurrent_weight_init="zeros"``) or, with
    ``recurrent_init="standard"``, ``U(-1/sqrt(N), 1/sqrt(N))``; the biases are zero except the
    forget gate's, the reference's ``powerlaw_blockdependent`` profile
    ``5 - 12 (j / (N - 1))^0.3`` (first block). State ``[y, c, n, m]`` of size 4N.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.slstm(8, 3, recurrent_init="standard", seed=0)
    >>> cell.state_size, sorted(cell.components)
    (32, ['c', 'h', 'm', 'n'])
    """
    hidden = check_positive_int("hidden", hidden)
    inputs = check_positive_int("inputs", inputs)
    recurrent_init = check_choice("recurrent_init", recurrent_init, RECURRENT_INITS)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    w_ih = rng.uniform(-(inputs**-0.5), inputs**-0.5, size=(4 * hidden, inputs))
    if recurrent_init == "zeros":
        w_hh = np.zeros((4 * hidden, hidden))
    else:
        w_hh = rng.uniform(-(hidden**-0.5), hidden**-0.5, size=(4 * hidden, hidden))
    bias = np.zeros(4 * hidden)
    ramp = np.arange(hidden) / (hidden - 1) if hidden > 1 else np.zeros(1)
    bias[hidden : 2 * hidden] = 5.0 - 12.0 * ramp**0.3
    params = {"weight_ih": w_ih, "weight_hh": w_hh, "bias": bias}
    components = {part: np.arange(k * hidden, (k + 1) * hidden) for k, part in enumerate("hcnm")}
    config = {"hidden": hidden, "inputs": inputs, "recurrent_init": recurrent_init, "seed": seed}
    return Cell(
        slstm_step,
        params,
        4 * hidden,
        inputs,
        kind=KIND,
        components=components,
        config=config,
        name=name or KIND,
    )


register_cell_kind(
    CellKind(
        KIND,
        slstm_step,
        slstm,
        parts=(("h", 1), ("c", 1), ("n", 1), ("m", 1)),
        options={"recurrent_init": "zeros"},
        stacked_tangents=False,
        description="xLSTM's sLSTM (exponential gating); state [y, c, n, m]",
        pytorch_layout=False,
    )
)
