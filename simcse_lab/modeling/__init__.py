"""Modeling: resolving a model name, SimCSE's poolers, the trainable embedder, the inference encoders
and the sentence-transformers saved format. Imports data and runtime.
Tests: tests/test_pooling.py, tests/test_st_format.py, tests/test_registry.py (model resolution)."""
