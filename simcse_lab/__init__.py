"""simcse-lab: contrastive sentence-embedding training (SimCSE family), evaluation and analysis.

One subpackage per capability; imports go one way (tests/test_layout.py):
errors, io <- data, runtime <- modeling <- evaluation <- analysis <- training; export and search use
data, runtime, modeling and evaluation; experiments (sweeps) use training and what it uses; commands (the CLI)
may use everything, and nothing imports it. Extension points: a backbone family is one module in
modeling/families/, an evaluation task one in evaluation/tasks/, an objective one in training/objectives/, an analysis
section one in analysis/sections/, a post-hoc map one implementing analysis/post_hoc.PostHocMap, a benchmark one
eval/bench_NAME.py on runtime/benchmark.py.
"""

__version__ = "0.1.0"
