"""Training: the loop on accelerate, its config, resumable checkpoints and the objectives (one module
each). Imports data, runtime, modeling, evaluation and analysis.
Tests: tests/test_train_loop.py, tests/test_objectives.py, tests/test_distributed.py, tests/test_config.py."""
