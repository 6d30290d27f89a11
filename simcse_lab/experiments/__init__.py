"""Experiments: multi-seed sweeps over training options behind `simcse-lab sweep` (the sweep file, the Optuna
study every worker shares, one `train` process per trial) and the report of a sweep (mean ± std over seeds).
Tests: tests/experiments/test_sweep.py, tests/experiments/test_study.py."""
