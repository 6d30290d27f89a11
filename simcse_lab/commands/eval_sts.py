"""``simcse-lab eval``: the STS suite for one checkpoint, as SimCSE's evaluation.py scores it."""

from __future__ import annotations

import argparse

from simcse_lab.commands import add_progress_flag
from simcse_lab.evaluation.sts import AGGREGATES, SPLITS, TASKS
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.modeling.resolve import DEFAULT_MODEL
from simcse_lab.runtime.precision import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:

    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model directory, hub id, or the offline alias all-MiniLM-L6-v2 (default)")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="SimCSE pooler; default: a sentence-transformers directory's own modules, else cls")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all seven)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--aggregate", choices=AGGREGATES, default="all",
                   help="STS12-16 aggregation: all = concatenated subsets (SimCSE), wmean, mean")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto = bf16 autocast where the hardware has it, else fp32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-length", type=int, default=None, help="truncate longer inputs (default: model limit)")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--subsets", action="store_true", help="also print per-subset Spearman")
    add_progress_flag(p)


def run(args) -> int:
    from simcse_lab.commands import _validate
    from simcse_lab.evaluation.sts import evaluate, format_table, parse_tasks
    from simcse_lab.io import write_json
    from simcse_lab.modeling.resolve import resolve_model

    _validate.output_file(args.output)
    _validate.at_least(args.batch_size, 1, "--batch-size")
    _validate.at_least(args.max_length, 1, "--max-length")
    tasks = parse_tasks(args.tasks)
    resolve_model(args.model)  # a bad --model stops here, before the seconds of the encoder's imports
    from simcse_lab.modeling.encoder import load_encoder

    encoder = load_encoder(args.model, pooler=args.pooler, precision=args.precision,
                           batch_size=args.batch_size, max_length=args.max_length)
    result = evaluate(encoder, tasks, split=args.split, mode=args.aggregate, progress=args.progress)
    print(format_table([result]))
    if args.subsets:
        for task, r in result["tasks"].items():
            subs = ", ".join(f"{name} {s['spearman']:.2f}" for name, s in r["subsets"].items())
            print(f"  {task}: {subs}")
    print(f"{result['sentences_encoded']} distinct sentences encoded in {result['seconds']:.1f} s "
          f"({result['backend']}, {result['precision']}, {result['device']})")
    if args.output:
        write_json(args.output, result)
        print(f"wrote {args.output}")
    return 0


