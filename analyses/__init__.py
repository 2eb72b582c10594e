"""One study per module, each with ``main(argv=None)``; ``python -m analyses`` runs them all."""

STUDIES = ("eigenvalue_rule", "gated_cells", "predictor_accuracy", "path_lengths", "lyapunov_atlas", "cost")
