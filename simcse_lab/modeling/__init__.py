"""Modeling: resolving a model spec, loading it safely (no code from model folders), the backbone families (what
differs between BERT, RoBERTa, T5, Llama, ...: one module each in ``families/``), bidirectional attention for
decoder LLMs, the embedding recipe saved with every model, SimCSE's poolers (with the decoder poolers last_token
and weighted_avg, and instruction masking), Sentence-T5's projection head and ConPVP's continuous prompt, the
trainable embedder (run as length-sorted chunks or packed rows in training, or as mini-batches recomputed in
the backward pass), the SentenceEncoder interface and its
encoders (torch, onnxruntime for ONNX exports, and one rebuilt from an embedder state dict handed to it), dynamic
padding, the sentence-transformers saved format. Tests: tests/test_resolve.py, tests/test_security_loading.py,
tests/test_pooling.py, tests/test_sentence_encoder.py, tests/test_st_format.py, tests/test_trajectory.py,
tests/test_length_chunks.py, tests/test_packing.py, tests/test_mini_batches.py, tests/test_onnx_serving.py, tests/test_families.py,
tests/test_decoders.py, tests/test_decoder_poolers.py, tests/test_mntp.py, tests/test_conpvp.py."""
