"""Modeling: resolving a model spec, loading it safely (no code from model folders), SimCSE's poolers, the
trainable embedder (run as length-sorted chunks in training), the SentenceEncoder interface and its encoders
(torch, and onnxruntime for ONNX exports), dynamic padding, the sentence-transformers saved format.
Tests: tests/test_resolve.py, tests/test_security_loading.py, tests/test_pooling.py, tests/test_sentence_encoder.py,
tests/test_st_format.py, tests/test_length_chunks.py, tests/test_onnx_serving.py."""
