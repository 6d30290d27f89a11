"""Export: a checkpoint as a sentence-transformers directory, a plain Hugging Face folder or ONNX (fp32, or
int8 by onnxruntime's dynamic quantization), each verified on reload, with a model card from the training
run's summary.json. Tests: tests/test_export.py, tests/test_onnx_serving.py."""
