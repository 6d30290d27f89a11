"""``simcse-lab export``: a checkpoint as a sentence-transformers dir, a plain HF folder or ONNX, verified on reload."""

from __future__ import annotations

import argparse

from simcse_lab.commands import add_output_dir_flag, add_template_flags, check_template_flags
from simcse_lab.export import FORMATS, QUANTIZE
from simcse_lab.modeling.pooling import POOLERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model dir, alias or training run dir (its best/ or final/; "
                   "its summary.json fills the card)")
    p.add_argument("--format", required=True, choices=FORMATS)
    add_output_dir_flag(p, "directory to write (written to a temp dir, then renamed)")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="SimCSE pooler for a plain HF checkpoint (default: an ST dir's own modules; HF: the "
                        "backbone family's natural one, cls or avg)")
    p.add_argument("--instruction", default=None,
                   help="with --pooler: text put before every sentence, left out of pooling (saved as the "
                        "sentence-transformers model's default prompt; other formats are refused)")
    add_template_flags(p)  # a templated model (its saved template, or this one) exports as onnx only
    p.add_argument("--quantize", choices=QUANTIZE, default=None,
                   help="onnx only: int8 dynamic quantization (onnxruntime), verified against the fp32 source")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir")


def run(args) -> int:
    from simcse_lab.export import check_options

    check_options(args.format, args.quantize)  # before torch and the model are imported
    check_template_flags(args.model, args.pooler, args.template)
    from simcse_lab.export.formats import export

    report = export(args.model, args.format, args.output_dir, pooler=args.pooler, overwrite=args.overwrite,
                    quantize=args.quantize, instruction=args.instruction,
                    template=(args.template, args.template_denoise))
    print(f"exported {report['source']} ({report['source_path']}) as {report['format']} -> {report['output']}")
    print(f"modules: {' -> '.join(report['modules'])}; pooler: {report['pooler']}; dimension {report['dimension']}")
    if "quantization" in report:
        print(f"fp32 graph verified: max abs diff {report['fp32_max_abs_diff']:.3g} "
              f"(tolerance {report['fp32_tolerance']:g})")
        bounds = report["int8_tolerance"]
        print(f"{report['quantization']} graph against the fp32 source, over {report['verified_sentences']} sentences: "
              f"min cosine {report['min_cosine']:.5f} (tolerance {bounds['min_cosine']:g}), max error relative to "
              f"the vector's length {report['max_relative_error']:.3g} (tolerance {bounds['max_relative_error']:g}), "
              f"max abs diff {report['max_abs_diff']:.3g}")
        return 0
    print(f"verified on reload: max abs diff {report['max_abs_diff']:.3g} over {report['verified_sentences']} "
          f"sentences (tolerance {report['tolerance']:g})")
    return 0
