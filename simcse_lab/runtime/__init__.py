"""Runtime: where and how computation runs: the precision policy, the collectives that give every
process the global batch's negatives with exact gradients, and the progress-bar rule.
Tests: tests/test_distributed.py (2 processes against 1), tests/test_train_loop.py."""
