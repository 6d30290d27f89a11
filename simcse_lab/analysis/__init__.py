"""Analysis: the geometry report behind `simcse-lab analyze` (isotropy, per-layer profile, token-level
degeneration, token-level dynamics, BERT-whitening and BERT-flow, the raw / + whitening / + flow comparison
table, a training trajectory point by point) and its figures.
Tests: tests/test_analyze.py, tests/test_degeneration.py, tests/test_token_dynamics.py, tests/test_whitening.py,
tests/test_flow.py, tests/test_trajectory.py, tests/test_eval_post_hoc.py."""
