"""Evaluation: STS with SimCSE's SentEval protocol and the geometry beside it (alignment, uniformity, isotropy),
retrieval recall/MRR on STS pairs, the dev metrics of model selection, the vector measures they share (L2, cosine,
alignment, uniformity, the isotropy measures), one table printer.
Tests: tests/test_sts_aggregation.py, tests/test_sts_integration.py, tests/test_retrieval.py, tests/test_tables.py,
tests/test_geometry.py, tests/test_eval_geometry.py."""
