"""Evaluation: STS with SimCSE's SentEval protocol and retrieval recall/MRR on STS pairs.
Imports data, runtime and modeling.
Tests: tests/test_sts_aggregation.py, tests/test_sts_integration.py, tests/test_retrieval.py."""
