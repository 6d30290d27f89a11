"""Runtime: where and how computation runs: the precision policy (evaluation's autocast; training's
mapping onto accelerate's mixed precision), the collectives that give every process the global batch's
negatives with exact gradients, the launch helpers of sharded commands (index build, eval --mteb), the
progress-bar rule, the matmul FLOP count that puts a measured speed next to the hardware's peak, the one
range check of numeric options, and the benchmark harness of eval/ (benchmark.py: machine description, load
note, peer timing in the same run, JSON + markdown reports that re-render from the JSON; a new benchmark is an
eval/bench_NAME.py with a ``render(report)``, listed in tests/runtime/test_eval_reports.py).
Tests: tests/runtime/test_eval_reports.py (every eval/*.md re-rendered from its JSON), tests/integration/test_distributed.py
(2 processes against 1), tests/training/test_training_precision.py, tests/integration/test_train_loop.py,
tests/modeling/test_length_chunks.py, tests/training/test_config.py, tests/commands/test_cli_validation.py, tests/integration/test_index_sharded.py,
tests/evaluation/test_mteb.py."""
