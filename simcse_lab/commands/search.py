"""``simcse-lab search``: nearest sentences of an index for one query (a table) or a file of queries (JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys

from simcse_lab.modeling.pooling import POOLERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="an index directory from `simcse-lab index build`")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", help="one query sentence")
    q.add_argument("--queries", help="a text file, one query a line; JSON lines out")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--model", default=None,
                   help="refuse unless the index was built with this model (default: the index's own model)")
    p.add_argument("--pooler", choices=POOLERS, default=None, help="refuse unless the index used this pooler")
    p.add_argument("--output", default=None, help="write the JSON lines here instead of stdout (--queries)")


def run(args) -> int:
    from simcse_lab import io
    from simcse_lab.data import readers
    from simcse_lab.errors import UserError
    from simcse_lab.search.index import Index

    from simcse_lab.commands import _validate

    if args.k < 1:
        raise UserError("-k must be at least 1")
    _validate.output_file(args.output)
    queries = [args.query] if args.query is not None else readers.read_text(args.queries)
    if args.query is not None and not args.query.strip():
        raise UserError("--query is empty")
    index = Index(args.index, model=args.model, pooler=args.pooler)
    results = index.search(queries, k=args.k)
    if args.query is not None:
        print(f"query: {args.query}")
        for hit in results[0]:
            print(f"{hit['rank']:>3}  {hit['score']:.4f}  [{hit['id']}] {hit['text']}")
        return 0
    lines = "".join(json.dumps({"query": q, "results": r}, ensure_ascii=False) + "\n" for q, r in zip(queries, results))
    if args.output:
        io.write_text(args.output, lines)
        print(f"{len(queries)} queries -> {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0
