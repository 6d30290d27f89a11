"""Modeling: resolving a model spec, SimCSE's poolers, the trainable embedder, the SentenceEncoder
interface and its inference encoders, dynamic padding, and the sentence-transformers saved format.
Tests: tests/test_resolve.py, tests/test_pooling.py, tests/test_sentence_encoder.py, tests/test_st_format.py."""
