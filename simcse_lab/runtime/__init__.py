"""Runtime: where and how computation runs: the precision policy (evaluation's autocast; training's
mapping onto accelerate's mixed precision), the collectives that give every process the global batch's
negatives with exact gradients, the launch helpers of sharded commands (index build, eval --mteb), the
progress-bar rule, the matmul FLOP count that puts a measured speed next to the hardware's peak, the one
range check of numeric options, and the benchmark harness of eval/ (benchmark.py: machine description, load
note, peer timing in the same run, JSON + markdown reports that re-render from the JSON; a new benchmark is an
eval/bench_NAME.py with a ``render(report)``, listed in tests/test_eval_reports.py).
Tests: tests/test_eval_reports.py (every eval/*.md re-rendered from its JSON), tests/test_distributed.py
(2 processes against 1), tests/test_training_precision.py, tests/test_train_loop.py,
tests/test_length_chunks.py, tests/test_config.py, tests/test_cli_validation.py, tests/test_index_sharded.py,
tests/test_mteb.py."""
