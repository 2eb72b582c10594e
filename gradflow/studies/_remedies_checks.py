"""The remedies study's self-checks: the adding problem's memoryless baseline, the training
gradient against central differences, and the stacked trainer of `_remedies_networks` against
`gradflow.train` (a stack of one network of each configuration must reproduce its loss curve).
They run with every report and stop it if any fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from autograd import value_and_grad
from autograd.misc import flatten

import gradflow as gf
from gradflow.studies._remedies_networks import CONFIGURATIONS, Config, cell_of, options, train_stack


def self_checks(cfg: Config) -> pd.DataFrame:
    """The adding baseline, the training gradient, and the stacked trainer against `gradflow.train`."""
    rows = []
    add = gf.tasks.adding(10, seed=cfg.seed)
    _, y = add.batch(20_000, 1)
    rows.append(
        dict(
            check="adding baseline 1/6 vs target variance (20,000)",
            expected=f"{1 / 6:.5f}",
            measured=f"{y.var():.5f}",
            passed=abs(y.var() - 1 / 6) < 0.01,
        )
    )
    model = gf.recurrent(gf.lstm(3, 2, seed=cfg.seed))
    obj, params = gf.training_objective(model, add, penalty=("l2", 0.1), seed=cfg.seed)
    flat, unflatten = flatten(params)
    xs, ys = add.batch(2, 2)
    _, g = value_and_grad(lambda v: obj(unflatten(v), xs, ys))(flat)
    eps, worst = 1e-6, 0.0
    for i in range(0, flat.size, max(1, flat.size // 12)):
        e = np.zeros_like(flat)
        e[i] = eps
        fd = (obj(unflatten(flat + e), xs, ys) - obj(unflatten(flat - e), xs, ys)) / (2 * eps)
        worst = max(worst, abs(fd - g[i]) / max(abs(fd), 1e-8))
    rows.append(
        dict(
            check="training gradient vs central differences",
            expected="rel. error < 1e-6",
            measured=f"{worst:.1e}",
            passed=worst < 1e-6,
        )
    )
    small = Config(hidden=4, steps=8, batch=4, seeds=1, lr=cfg.lr, success=cfg.success)
    for arch in ("RNN", "LSTM"):
        confs = [c for c in CONFIGURATIONS if CONFIGURATIONS[c][0] == arch]
        stacked = train_stack([(c, cfg.seed + 1) for c in confs], 6, small)
        worst = 0.0
        for conf, row in zip(confs, stacked.itertuples(), strict=True):
            task = gf.tasks.adding(6, seed=cfg.seed + 1)
            run = gf.train(
                cell_of(conf, small.hidden, 2, cfg.seed + 1),
                task,
                small.steps,
                lr=small.lr,
                batch=small.batch,
                seed=cfg.seed + 1,
                record_every=small.steps,
                **options(conf),
            )
            worst = max(worst, abs(run.loss[0] - row.first_loss), abs(run.loss[-1] - row.final_train_loss))
        rows.append(
            dict(
                check=f"stacked {arch}s ({', '.join(confs)}) vs gradflow.train, one each",
                expected="losses equal to 1e-12",
                measured=f"max diff {worst:.1e}",
                passed=worst < 1e-12,
            )
        )
    checks = pd.DataFrame(rows)
    if not checks.passed.all():
        raise FloatingPointError(f"self-check failed: {checks[~checks.passed].check.tolist()}")
    return checks
