"""Runtime: where and how computation runs: the precision policy (evaluation's autocast; training's
mapping onto accelerate's mixed precision), the collectives that give every process the global batch's
negatives with exact gradients, and the progress-bar rule.
Tests: tests/test_distributed.py (2 processes against 1), tests/test_training_precision.py, tests/test_train_loop.py."""
