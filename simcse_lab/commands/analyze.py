"""``simcse-lab analyze``: the embedding geometry report of one or more checkpoints side by side.

Alignment/uniformity, isotropy, per-layer profile, token-level degeneration, optional BERT-whitening
baseline and training trajectory."""

from __future__ import annotations

import argparse
import shlex
import sys

from simcse_lab.commands import add_progress_flag
from simcse_lab.evaluation.sts import SPLITS
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.runtime.precision import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="checkpoint to analyse (directory, hub id or alias; MODEL@POOLER also accepted); "
                        "the 'before' of the alignment-uniformity arrows")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="pooler for --model (default: a sentence-transformers directory's own modules, else cls)")
    p.add_argument("--compare", nargs="+", default=[], metavar="MODEL[@POOLER]",
                   help="further checkpoints, side by side; an arrow is drawn from --model to each")
    p.add_argument("--output-dir", required=True, help="where report.json, report.md and the PNGs go")
    p.add_argument("--data", default="stsb",
                   help="analysis sentences, in the --data syntax: a dataset NAME[:SPLIT] (pairs with gold > 4 give "
                        "alignment), a .txt/.csv/.tsv/.jsonl/.parquet file, a save_to_disk directory or "
                        "hub:ID[:CONFIG][@SPLIT] (sentence, positive columns give alignment)")
    p.add_argument("--columns", default=None, metavar="A[,B]",
                   help="the sentence (and positive) columns of --data (default: a known naming or the only column)")
    p.add_argument("--split", default="dev", help="split of a dataset --data without :SPLIT (default dev)")
    p.add_argument("--max-sentences", type=int, default=10000, help="sub-sample the analysis sentences (seeded)")
    p.add_argument("--max-pairs", type=int, default=200000,
                   help="distinct pairs for pair statistics (all if fewer, else a seeded sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tokens", action="store_true", help="skip the token-level degeneration analysis")
    p.add_argument("--token-corpus", default="wiki", help="data spec (as --data) for token frequencies")
    p.add_argument("--knn", type=int, default=10, help="k of the token k-NN distance")
    p.add_argument("--knn-sample", type=int, default=500, help="query tokens per frequency bucket for k-NN (seeded)")
    p.add_argument("--whiten", action="store_true", help="add the BERT-whitening baseline (STS with and without)")
    p.add_argument("--whiten-corpus", default="wiki", help="data spec (as --data) to fit whitening on")
    p.add_argument("--whiten-max", type=int, default=5000, help="sub-sample the whitening corpus (seeded)")
    p.add_argument("--whiten-k", type=int, default=None, help="keep the top k whitened dims (default: all)")
    p.add_argument("--whiten-tasks", default="stsb", help="STS tasks scored with and without whitening")
    p.add_argument("--whiten-split", default="test", choices=SPLITS)
    p.add_argument("--trajectory", default=None, metavar="METRICS_JSONL",
                   help="plot alignment/uniformity and dev Spearman over training steps from a metrics.jsonl")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    add_progress_flag(p)


def run(args) -> int:
    from pathlib import Path

    from simcse_lab.analysis import inputs
    from simcse_lab.data.columns import parse_columns
    from simcse_lab.errors import UserError
    from simcse_lab.evaluation.sts import parse_tasks
    from simcse_lab.io import claim_output_dir, write_json, write_text

    if args.model is None and not args.compare and args.trajectory is None:
        raise UserError("nothing to analyse: give --model (and --compare) and/or --trajectory")
    if args.model is None and args.compare:
        raise UserError("--compare needs --model (the reference checkpoint)")
    for name in ("max_sentences", "max_pairs", "knn", "knn_sample", "whiten_max", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    columns = parse_columns(args.columns)
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output-dir {out_dir} exists and is not a directory")

    # every input is read and checked before any model code is imported or loaded
    checkpoints = []
    if args.model is not None:
        checkpoints.append(inputs.parse_checkpoint(args.model, args.pooler))
        checkpoints += [inputs.parse_checkpoint(spec) for spec in args.compare]
    labels = [c.label for c in checkpoints]
    if len(set(labels)) != len(labels):
        raise UserError(f"two checkpoints share the label {labels}; compare distinct models or poolers")

    trajectory = None
    if args.trajectory:
        rows, keys = inputs.read_trajectory(args.trajectory)
        trajectory = {"path": args.trajectory, **inputs.summarize_trajectory(rows, keys)}
    claim_output_dir(out_dir, "analysis")  # ours, or refused before any data or model is loaded

    data = token_corpus = whiten_corpus = None
    whiten_tasks = ()
    if checkpoints:
        data = inputs.load_sentence_data(args.data, args.split, limit=args.max_sentences, seed=args.seed,
                                         columns=columns)
        if not args.no_tokens:
            token_corpus = inputs.load_corpus(args.token_corpus, "train", unique=False)
        if args.whiten:
            whiten_tasks = tuple(parse_tasks(args.whiten_tasks))
            whiten_corpus = inputs.load_corpus(args.whiten_corpus, "train", limit=args.whiten_max, seed=args.seed)

    from simcse_lab.analysis import plots
    from simcse_lab.analysis import report as analysis

    opts = analysis.Options(tokens=not args.no_tokens, token_corpus=token_corpus, knn=args.knn,
                            knn_sample=args.knn_sample, whiten=args.whiten, whiten_corpus=whiten_corpus,
                            whiten_k=args.whiten_k, whiten_tasks=whiten_tasks or ("stsb",),
                            whiten_split=args.whiten_split, max_pairs=args.max_pairs, seed=args.seed,
                            precision=args.precision, batch_size=args.batch_size, progress=args.progress)
    results, arrays = [], {}
    for ckpt in checkpoints:
        print(f"analysing {ckpt.label} ...", file=sys.stderr)
        summary, arr = analysis.analyze_checkpoint(ckpt, data, opts)
        results.append(summary)
        arrays[ckpt.label] = arr

    figures = []
    if results:
        figures.append(plots.singular_spectrum({k: a["singular"] for k, a in arrays.items()},
                                               out_dir / "singular_spectrum.png"))
        figures.append(plots.layer_profile({r["label"]: r["layers"] for r in results},
                                           ("isoscore", "mean_cosine", "partition_isotropy"),
                                           out_dir / "layer_profile.png"))
        if all(r["sentence"]["alignment"] is not None for r in results):
            points = {r["label"]: (r["sentence"]["alignment"], r["sentence"]["uniformity"]) for r in results}
            arrows = [(labels[0], other) for other in labels[1:]]
            figures.append(plots.align_uniform(points, arrows, out_dir / "align_uniform.png"))
        if opts.tokens:
            tokens = {k: a["tokens"] for k, a in arrays.items()}
            figures.append(plots.norm_vs_rank(tokens, out_dir / "token_norm_vs_rank.png"))
            figures.append(plots.token_projection(tokens, out_dir / "token_svd_projection.png"))
    if trajectory:
        figures.append(plots.trajectory(rows, keys, out_dir / "trajectory.png"))

    report = {
        "command": "simcse-lab analyze " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "analyze" else "simcse-lab analyze (called from Python)",
        "data": {"source": data.source, "sentences": len(data.sentences), "positive_pairs": len(data.pairs)}
        if data else None,
        "options": {"max_pairs": args.max_pairs, "seed": args.seed, "knn": args.knn,
                    "token_corpus": None if args.no_tokens else args.token_corpus,
                    "whiten_corpus": args.whiten_corpus if args.whiten else None,
                    "whiten_max": args.whiten_max if args.whiten else None},
        "checkpoints": results,
        "arrows": [[labels[0], other] for other in labels[1:]],
        "trajectory": trajectory,
        "figures": [Path(f).name for f in figures],
    }
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", analysis.render_markdown(report))
    if results:
        print(analysis.sentence_table(results))
        for r in results:
            if "tokens" in r:
                t = r["tokens"]
                print(f"{r['label']}: tokens unseen {100 * t['unseen_share']:.1f}%, "
                      f"Spearman(count, norm) {t['spearman_count_norm']:.3f}")
            if "whitening" in r:
                w = r["whitening"]["avg"]
                print(f"{r['label']}: STS avg {w['plain']:.2f} -> whitened {w['whitened']:.2f}")
    if trajectory:
        print(f"trajectory: {trajectory['points']} points, first {trajectory['first']}, last {trajectory['last']}")
    print(f"wrote {out_dir / 'report.json'}, {out_dir / 'report.md'} and {len(figures)} figures")
    return 0
