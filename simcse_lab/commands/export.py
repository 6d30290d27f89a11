"""``simcse-lab export``: a checkpoint as a sentence-transformers dir, a plain HF folder or ONNX, verified on reload."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from simcse_lab.export.formats import FORMATS
    from simcse_lab.modeling.pooling import POOLERS

    p.add_argument("--model", required=True,
                   help="a model dir, alias or training output dir (D/best is exported, D/summary.json fills the card)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--output", required=True, help="directory to write (written to a temp dir, then renamed)")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="SimCSE pooler for a plain HF checkpoint (default: an ST dir's own modules; HF: cls)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")


def run(args) -> int:
    from simcse_lab.export.formats import export

    report = export(args.model, args.format, args.output, pooler=args.pooler, overwrite=args.overwrite)
    print(f"exported {report['source']} ({report['source_path']}) as {report['format']} -> {report['output']}")
    print(f"modules: {' -> '.join(report['modules'])}; pooler: {report['pooler']}; dimension {report['dimension']}")
    print(f"verified on reload: max abs diff {report['max_abs_diff']:.3g} over {report['verified_sentences']} "
          f"sentences (tolerance {report['tolerance']:g})")
    return 0
