"""Modeling: resolving a model spec, loading it safely (no code from model folders), SimCSE's poolers, the
trainable embedder, the SentenceEncoder interface and its encoders (also one rebuilt from an embedder state
dict handed to it), dynamic padding, the sentence-transformers saved format. Tests: tests/test_resolve.py,
tests/test_security_loading.py, tests/test_pooling.py, tests/test_sentence_encoder.py, tests/test_st_format.py,
tests/test_trajectory.py."""
