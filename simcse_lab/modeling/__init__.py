"""Modeling: resolving a model spec, loading it safely (no code from model folders), the backbone families (what
differs between BERT, RoBERTa, T5, Llama, ...: one module each in ``families/``), bidirectional attention for
decoder LLMs, the embedding recipe saved with every model, SimCSE's poolers (with the decoder poolers last_token
and weighted_avg, and instruction masking), Sentence-T5's projection head and ConPVP's continuous prompt, the
trainable embedder (run as length-sorted chunks or packed rows in training, or as mini-batches recomputed in
the backward pass), the SentenceEncoder interface and its
encoders (torch, onnxruntime for ONNX exports, and one rebuilt from an embedder state dict handed to it), dynamic
padding, the sentence-transformers saved format. Tests: tests/modeling/test_resolve.py, tests/modeling/test_security_loading.py,
tests/modeling/test_pooling.py, tests/modeling/test_sentence_encoder.py, tests/modeling/test_st_format.py, tests/training/test_trajectory.py,
tests/modeling/test_length_chunks.py, tests/modeling/test_packing.py, tests/modeling/test_mini_batches.py, tests/export/test_onnx_serving.py, tests/modeling/test_families.py,
tests/integration/test_decoders.py, tests/modeling/test_decoder_poolers.py, tests/training/test_mntp.py, tests/training/test_conpvp.py."""
