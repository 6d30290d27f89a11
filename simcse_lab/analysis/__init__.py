"""Analysis: the geometry report behind `simcse-lab analyze` (isotropy, per-layer profile, token-level
degeneration, BERT-whitening, training trajectory) and its figures.
Tests: tests/test_geometry.py, tests/test_degeneration.py, tests/test_whitening.py, tests/test_analyze.py."""
