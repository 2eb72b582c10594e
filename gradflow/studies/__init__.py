"""One study per module, each with ``main(argv=None)``; ``python -m gradflow.studies`` runs them all."""

STUDIES = (
    "eigenvalue_rule",
    "gated_cells",
    "memory_horizon",
    "path_lengths",
    "lyapunov_atlas",
    "cost",
    "predictor_accuracy",
    "remedies",
    "recurrent_revival",
)
