"""Export: a checkpoint as a sentence-transformers directory, a plain Hugging Face folder or ONNX,
each verified on reload. Imports data, runtime, modeling and evaluation.
Tests: tests/test_export.py."""
