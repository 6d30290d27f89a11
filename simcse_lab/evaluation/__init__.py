"""Evaluation: STS with SimCSE's SentEval protocol and the geometry beside it (alignment, uniformity, isotropy),
retrieval recall/MRR on STS pairs and on a user's query/positive pairs, SentEval's transfer tasks (linear probes,
SimCSE's protocol), evaluation tasks as declared objects (tasks/: metadata, registry, --tasks/--select specs), the
dev metrics of model selection, the vector measures they share (L2, cosine, alignment, uniformity, the isotropy
measures), one table printer; and, with the mteb extra, any encoder scored by mteb's own evaluators (simcse-lab's
STS data as local mteb tasks). Comparisons that say whether a difference is real: per-pair STS scores kept and read
back, paired tests over the same pairs (bootstrap interval, permutation p, Holm), groups of runs over seeds
(bootstrap and Welch intervals, Almost Stochastic Order with the stats extra), and the reports of ``compare``.
Tests: tests/evaluation/test_sts_aggregation.py, tests/integration/test_sts_integration.py, tests/evaluation/test_retrieval.py, tests/evaluation/test_tables.py,
tests/evaluation/test_tasks.py, tests/evaluation/test_transfer.py, tests/evaluation/test_mteb.py, tests/evaluation/test_geometry.py, tests/evaluation/test_eval_geometry.py,
tests/evaluation/test_significance.py, tests/evaluation/test_compare.py."""
