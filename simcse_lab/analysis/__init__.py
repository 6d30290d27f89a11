"""Analysis: the geometry report (alignment/uniformity, isotropy, per-layer profile, token degeneration,
whitening) and its figures. Imports data, runtime, modeling and evaluation.
Tests: tests/test_geometry.py, tests/test_degeneration.py, tests/test_whitening.py, tests/test_analyze.py."""
