"""Export: a checkpoint as a sentence-transformers directory, a plain Hugging Face folder or ONNX (fp32, or
int8 by onnxruntime's dynamic quantization), each verified on reload, with a model card from the training
run's summary.json. Tests: tests/export/test_export.py, tests/export/test_onnx_serving.py."""

from simcse_lab.errors import UserError

# the formats and quantisations export offers, known without importing torch (the command checks them first)
FORMATS = ("sentence-transformers", "hf", "onnx")
QUANTIZE = ("int8",)


def check_options(fmt: str, quantize: str | None) -> None:
    """A format and quantisation that go together, else one line (before anything is imported or loaded)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if quantize is not None and (fmt != "onnx" or quantize not in QUANTIZE):
        raise UserError(f"--quantize {quantize} applies to --format onnx only, and must be one of "
                        f"{', '.join(QUANTIZE)}")
