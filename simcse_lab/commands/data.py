"""``simcse-lab data list|fetch|inspect``: what the registry knows, what is here and verified, filling the cache,
and what a corpus looks like to a model's tokenizer before training on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.modeling.resolve import DEFAULT_MODEL
from simcse_lab.training.config import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="show every dataset, where it is found and whether its checksums verify")
    fetch = sub.add_parser("fetch", help="verify and copy datasets into the cache (from a mirror or the URLs)")
    fetch.add_argument("names", nargs="*", help="datasets to fetch (default: all with pinned checksums)")
    fetch.add_argument("--from", dest="source", default=None,
                       help="a mirror root laid out like ../shared/data (default: download from the URLs)")
    inspect = sub.add_parser("inspect", help="rows, duplicates, lengths in tokens, truncation, unknown tokens and "
                                             "characters, scripts of a corpus, as a model's tokenizer sees it")
    inspect.add_argument("--data", required=True, help="the corpus, in the --data syntax (registry NAME[:SPLIT], a "
                                                       ".txt/.csv/.tsv/.jsonl/.parquet file, a save_to_disk "
                                                       "directory or hub:OWNER/NAME[:CONFIG][@SPLIT])")
    inspect.add_argument("--model", default=DEFAULT_MODEL, help="whose tokenizer (directory, hub id or alias)")
    inspect.add_argument("--max-seq-len", type=int, default=TrainConfig.max_seq_len,
                         help="the training truncation length whose share is reported (default: train's, %(default)s)")
    inspect.add_argument("--columns", default=None, metavar="A[,B[,C]]",
                         help="the text columns (default: a known naming or the only column)")
    inspect.add_argument("--split", default=None, help="split of a registry NAME without :SPLIT (default train)")
    inspect.add_argument("--max-rows", type=int, default=None, help="stop after this many rows (default: all)")
    inspect.add_argument("--output-dir", "--output", dest="output_dir", default=None,
                         help="write report.json, report.md and length_histogram.png here")


def run(args) -> int:
    from simcse_lab.data import registry

    if args.data_command == "inspect":
        return run_inspect(args)
    if args.data_command == "list":
        roots = ", ".join(f"{label}={root}" for label, root in registry.search_roots())
        print(f"search order: {roots}")
        width = max(15, *(len(name) for name in registry.manifest()))
        print(f"{'name':<{width}} {'state':<9} {'files':>5}  where / description")
        for name, ds in registry.manifest().items():
            state, detail = registry.status(name)
            where = detail if state in ("verified", "unpinned") else ("not here" if state == "missing" else detail)
            print(f"{name:<{width}} {state:<9} {len(ds.files):>5}  {where}")
            print(f"{'':<{width}} {'':<9} {'':>5}  {ds.description}; licence: {ds.license}")
        return 0

    names = args.names or [n for n, ds in registry.manifest().items() if all(ds.files.values())]
    for name in names:
        registry.info(name)  # unknown names fail before anything is copied
    for name in names:
        if args.source:
            source = Path(args.source)
            if not source.is_dir():
                raise UserError(f"{source}: --from must be a directory (a mirror root)")
            copied = registry.fetch_from_dir(name, source)
        else:
            copied = registry.fetch_from_url(name)
        print(f"{name}: {len(copied)} file(s) verified and cached in {registry.cache_dir()}")
    return 0


def run_inspect(args) -> int:
    """Everything checked (numbers, output directory, data spec and columns, model) before the stream is read."""
    import itertools
    import json
    import time

    from simcse_lab.commands import _validate
    from simcse_lab.data import inspect as corpus
    from simcse_lab.data.columns import parse_columns, sentence_columns
    from simcse_lab.data.spec import parse_spec
    from simcse_lab.data.streaming import check_column_types, check_first_row, iter_rows, source_columns
    from simcse_lab.io import claim_output_dir, write_json, write_text
    from simcse_lab.modeling.loading import load_tokenizer
    from simcse_lab.modeling.resolve import resolve_model

    _validate.at_least(args.max_seq_len, 1, "--max-seq-len")
    _validate.at_least(args.max_rows, 1, "--max-rows")
    spec = parse_spec(args.data, default_split=args.split)
    columns = sentence_columns(source_columns(spec), parse_columns(args.columns), spec.describe())
    check_column_types(spec, columns)
    check_first_row(spec, columns)
    tokenizer = load_tokenizer(resolve_model(args.model))
    out = claim_output_dir(args.output_dir, "inspect") if args.output_dir else None
    start = time.perf_counter()
    rows = (tuple(row[c] for c in columns) for row in iter_rows(spec, columns))
    report = {"data": args.data, "columns": columns, "model": args.model, "tokenizer": type(tokenizer).__name__,
              **corpus.profile_rows(itertools.islice(rows, args.max_rows), tokenizer, args.max_seq_len)}
    report["max_rows"] = args.max_rows
    report["seconds"] = time.perf_counter() - start
    print("\n".join(corpus.summary_lines(report)))
    if out is not None:
        from simcse_lab.analysis.plots import length_histogram

        figure = length_histogram(report["tokens"]["histogram"], args.max_seq_len, out / "length_histogram.png",
                                  title=f"{args.data} ({args.model})")
        write_json(out / "report.json", json.loads(json.dumps(report)))
        write_text(out / "report.md", corpus.markdown(report, "length_histogram.png"))
        print(f"wrote {out / 'report.json'}, {out / 'report.md'} and {figure}")
    return 0
