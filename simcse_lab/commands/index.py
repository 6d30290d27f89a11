"""``simcse-lab index build``: encode a corpus into a faiss inner-product index with its texts and manifest.

Also runs as ``accelerate launch --multi_gpu --num_processes N -m simcse_lab index build ...``: each rank
encodes a contiguous shard of the corpus, rank 0 merges the shards into one index (see simcse_lab.search.index)."""

from __future__ import annotations

import argparse

from simcse_lab.commands import (add_bidirectional_flag, add_output_dir_flag, add_progress_flag, add_template_flags,
                                 check_template_flags)
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.runtime.precision import PRECISIONS
from simcse_lab.search.index import INDEX_TYPES


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="encode a corpus (file or dataset) into an index directory")
    b.add_argument("--model", required=True, help="model dir, alias or hub id")
    b.add_argument("--corpus", required=True,
                   help="the --data syntax: a dataset NAME[:SPLIT] (e.g. wiki), a .txt/.csv/.tsv/.jsonl/.parquet file, "
                        "a save_to_disk directory or hub:OWNER/NAME[:CONFIG][@SPLIT]; one sentence a row")
    b.add_argument("--columns", default=None, metavar="NAME",
                   help="the sentence column of a multi-column corpus (default: text / sentence, or the only column)")
    add_output_dir_flag(b, "index directory to write (temp dir + rename)")
    b.add_argument("--index", choices=INDEX_TYPES, default="flat",
                   help="flat = exact (up to ~1M vectors); hnsw / ivfpq = approximate, recall@10 vs exact printed")
    b.add_argument("--pooler", choices=POOLERS, default=None)
    add_bidirectional_flag(b)
    add_template_flags(b)
    b.add_argument("--precision", choices=PRECISIONS, default="auto")
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--chunk-size", type=int, default=4096, help="sentences encoded and added per step (bounds memory)")
    b.add_argument("--overwrite", action="store_true")
    add_progress_flag(b)


def run(args) -> int:
    from simcse_lab.commands import _validate
    from simcse_lab.data.columns import parse_columns
    from simcse_lab.errors import UserError
    from simcse_lab.runtime.progress import library_bars
    from simcse_lab.search.index import IndexBuild, build_index

    _validate.process_env()
    library_bars(args.progress)
    _validate.at_least(args.batch_size, 1, "--batch-size")
    _validate.at_least(args.chunk_size, 1, "--chunk-size")
    columns = parse_columns(args.columns)
    if columns and len(columns) != 1:
        raise UserError(f"--columns {args.columns}: an index holds one sentence a row; name one column")
    check_template_flags(args.model, args.pooler, args.template)
    encoder = None
    # a decoder's attention, a template other than the recipe's: recorded in the manifest, applied by search
    if args.bidirectional is not None or args.template is not None or args.template_denoise is not None:
        from simcse_lab.modeling.encoder import load_encoder, use_template

        encoder = load_encoder(args.model, pooler=args.pooler, precision=args.precision, batch_size=args.batch_size,
                               bidirectional=args.bidirectional)
        use_template(encoder, args.template, args.template_denoise)
    build = IndexBuild(args.model, args.corpus, args.output_dir, kind=args.index, pooler=args.pooler,
                       precision=args.precision, batch_size=args.batch_size, chunk_size=args.chunk_size,
                       overwrite=args.overwrite, progress=args.progress, columns=columns)
    m = build_index(build, encoder=encoder)
    if m is None:  # a rank > 0 under accelerate launch: its shard is written, rank 0 builds and reports
        return 0
    print(f"index {args.output_dir}: {m['count']} sentences, {m['index']} {m['params'] or ''}, dim {m['dimension']}, "
          f"model {m['model']} [{m['pooler']}, {m['precision']}]")
    print(f"built in {m['build_seconds']:.1f} s ({m['sentences_per_second']} sentences/s); "
          f"corpus {m['corpus']} sha256 {m['corpus_sha256'][:12]}")
    if "recall_at_10_vs_exact" in m:
        print(f"recall@10 vs exact (flat) search: {m['recall_at_10_vs_exact']:.4f} over {m['recall_queries']} corpus queries")
    return 0
