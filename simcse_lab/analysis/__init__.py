"""Analysis: the geometry report behind `simcse-lab analyze` (isotropy, per-layer profile, token-level
degeneration, token-level dynamics, BERT-whitening and BERT-flow, the raw / + whitening / + flow comparison
table, a training trajectory point by point) and its figures.
Tests: tests/analysis/test_analyze.py, tests/analysis/test_degeneration.py, tests/analysis/test_token_dynamics.py, tests/analysis/test_whitening.py,
tests/analysis/test_flow.py, tests/training/test_trajectory.py, tests/analysis/test_eval_post_hoc.py."""
