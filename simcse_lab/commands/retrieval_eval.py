"""``simcse-lab retrieval-eval``: recall@1/5/10 and MRR@10 on STS-B / SICK-R pairs with gold >= 4."""

from __future__ import annotations

import argparse

from simcse_lab.commands import add_template_flags, check_template_flags
from simcse_lab.evaluation.sts import RELEVANT_GOLD, SPLITS
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.runtime.precision import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, action="append",
                   help="model dir, alias, or training run dir (its best/ or final/); repeat to compare checkpoints")
    p.add_argument("--pooler", choices=POOLERS, default=None)
    add_template_flags(p)
    p.add_argument("--tasks", default="stsb,sickr")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--threshold", type=float, default=RELEVANT_GOLD, help="gold score for a pair to count as relevant")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--output", default=None, help="write the results (and the command) as JSON here")


def run(args) -> int:
    import sys

    from simcse_lab import io
    from simcse_lab.evaluation.retrieval import evaluate, format_table
    from simcse_lab.modeling.resolve import resolve_model

    from simcse_lab.commands import _validate

    _validate.output_file(args.output)
    _validate.finite(args.threshold, "--threshold")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for model in args.model:  # a bad --model stops here, before the seconds of the encoder's imports
        resolve_model(model)
        check_template_flags(model, args.pooler, args.template)
    from simcse_lab.modeling.encoder import load_encoder, use_template

    results = []
    for model in args.model:
        encoder = load_encoder(model, pooler=args.pooler, precision=args.precision)
        use_template(encoder, args.template, args.template_denoise)
        result = evaluate(encoder, tasks, args.split, args.threshold)
        result["model"] = model
        results.append(result)
    print(format_table(results))
    if args.output:
        io.write_json(args.output, {"command": "simcse-lab " + " ".join(sys.argv[1:]), "results": results})
    return 0
