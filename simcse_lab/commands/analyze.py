"""``simcse-lab analyze``: the embedding geometry report of one or more checkpoints side by side.

Alignment/uniformity, isotropy, per-layer profile, token-level degeneration, token-level dynamics, the
optional BERT-whitening and BERT-flow baselines, the comparison table, and a training trajectory: from a
metrics.jsonl, or from a run directory whose saved checkpoints are measured in step order. Reading the
checkpoints (the trainer's format) and building encoders from them is composed here, so that the analysis
package never imports training."""

from __future__ import annotations

import argparse
import shlex
import sys

from simcse_lab.analysis import flow as flow_module
from simcse_lab.analysis.token_dynamics import MAX_OCCURRENCES, MAX_TYPES, MIN_CONTEXTS
from simcse_lab.commands import add_bidirectional_flag, add_progress_flag, add_template_flags, check_template_flags
from simcse_lab.commands._flow_flags import add_flow_settings, flow_settings
from simcse_lab.evaluation.sts import SPLITS
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.runtime.precision import PRECISIONS

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="checkpoint to analyse (directory, hub id or alias; MODEL@POOLER also accepted); "
                        "the 'before' of the alignment-uniformity arrows")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="pooler for --model (default: a sentence-transformers directory's own modules, else the "
                        "backbone family's natural one: cls, or avg for a family without [CLS] such as T5)")
    add_bidirectional_flag(p)
    add_template_flags(p)  # for every checkpoint analysed
    p.add_argument("--compare", nargs="+", default=[], metavar="MODEL[@POOLER]",
                   help="further checkpoints, side by side; an arrow is drawn from --model to each")
    p.add_argument("--output-dir", required=True, help="where report.json, report.md and the PNGs go")
    p.add_argument("--data", default="stsb",
                   help="analysis sentences, in the --data syntax: a dataset NAME[:SPLIT] (pairs with gold > 4 give "
                        "alignment), a .txt/.csv/.tsv/.jsonl/.parquet file, a save_to_disk directory or "
                        "hub:OWNER/NAME[:CONFIG][@SPLIT] (sentence, positive columns give alignment)")
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
    p.add_argument("--flow", action="store_true",
                   help="add the BERT-flow baseline (STS with and without, geometry of the flowed vectors)")
    p.add_argument("--flow-corpus", default="wiki", help="dataset NAME[:SPLIT] or file to fit the flow on")
    p.add_argument("--flow-max", type=int, default=5000, help="sub-sample the flow corpus (seeded)")
    add_flow_settings(p)
    p.add_argument("--sts-tasks", "--whiten-tasks", dest="sts_tasks", default="stsb",
                   help="STS tasks scored with and without whitening / flow (--whiten-tasks: the old name)")
    p.add_argument("--sts-split", "--whiten-split", dest="sts_split", default="test", choices=SPLITS)
    p.add_argument("--no-token-dynamics", action="store_true",
                   help="skip the token-level dynamics (intra-sentence and self-similarity, token norms per layer)")
    p.add_argument("--token-dynamics-sentences", type=int, default=2000,
                   help="token dynamics on at most this many analysis sentences (seeded sub-sample)")
    p.add_argument("--token-dynamics-types", type=int, default=MAX_TYPES,
                   help="self-similarity: at most this many token types per class (function, content)")
    p.add_argument("--token-dynamics-occurrences", type=int, default=MAX_OCCURRENCES,
                   help="self-similarity: at most this many occurrences (sentences) per token type")
    p.add_argument("--token-dynamics-min-contexts", type=int, default=MIN_CONTEXTS,
                   help="self-similarity: only token types seen in at least this many sentences")
    p.add_argument("--trajectory", default=None, metavar="RUN_DIR|METRICS_JSONL",
                   help="a training run directory: its saved checkpoints (train --keep-checkpoints 0 keeps them "
                        "all) and starting model measured in step order, plus its metrics.jsonl; or a "
                        "metrics.jsonl alone: alignment/uniformity and dev Spearman over training steps")
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
    from simcse_lab.runtime.progress import library_bars

    if args.model is None and not args.compare and args.trajectory is None:
        raise UserError("nothing to analyse: give --model (and --compare) and/or --trajectory")
    if args.model is None and args.compare:
        raise UserError("--compare needs --model (the reference checkpoint)")
    for name in ("max_sentences", "max_pairs", "knn", "knn_sample", "whiten_max", "flow_max", "batch_size",
                 "token_dynamics_sentences", "token_dynamics_types"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.whiten_k is not None and args.whiten_k < 1:
        raise UserError("--whiten-k must be at least 1")
    from simcse_lab.commands import _validate

    _validate.seed(args.seed)
    library_bars(args.progress)
    columns = parse_columns(args.columns)
    for name in ("token_dynamics_occurrences", "token_dynamics_min_contexts"):
        if getattr(args, name) < 2:
            raise UserError(f"--{name.replace('_', '-')} must be at least 2 (self-similarity compares pairs)")
    if args.flow:
        flow_module.check_settings(**flow_settings(args))
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output-dir {out_dir} exists and is not a directory")

    # every input is read and checked before any model code is imported or loaded
    checkpoints = []
    if args.model is not None:
        checkpoints.append(inputs.parse_checkpoint(args.model, args.pooler))
        checkpoints += [inputs.parse_checkpoint(spec) for spec in args.compare]
    for ckpt in checkpoints:
        check_template_flags(ckpt.model, ckpt.pooler, args.template)
    labels = [c.label for c in checkpoints]
    if len(set(labels)) != len(labels):
        raise UserError(f"two checkpoints share the label {labels}; compare distinct models or poolers")

    trajectory = run_dir = rows = keys = None
    steps = []
    if args.trajectory and Path(args.trajectory).is_dir():
        run_dir, steps = read_run(args.trajectory)
        trajectory = {"path": str(run_dir.metrics) if run_dir.metrics else None, "run_dir": args.trajectory,
                      "model": run_dir.model, "pooler": run_dir.pooler, "pooler_note": run_dir.pooler_note}
        if run_dir.metrics is not None:
            try:
                rows, keys = inputs.read_trajectory(run_dir.metrics)
                trajectory.update(inputs.summarize_trajectory(rows, keys))
            except UserError as err:  # e.g. a run without dev evaluation (--eval-steps 0): said in the report
                trajectory["metrics_note"] = f"No alignment/uniformity curve: {err}."
        else:
            trajectory["metrics_note"] = f"No alignment/uniformity curve: {args.trajectory} has no metrics.jsonl."
    elif args.trajectory:
        rows, keys = inputs.read_trajectory(args.trajectory)
        trajectory = {"path": args.trajectory, **inputs.summarize_trajectory(rows, keys)}
    claim_output_dir(out_dir, "analysis")  # ours, or refused before any data or model is loaded

    data = token_corpus = whiten_corpus = flow_corpus = None
    sts_tasks = ()
    if checkpoints or run_dir:
        data = inputs.load_sentence_data(args.data, args.split, limit=args.max_sentences, seed=args.seed,
                                         columns=columns)
    if checkpoints:
        if not args.no_tokens:
            token_corpus = inputs.load_corpus(args.token_corpus, "train", unique=False)
        if args.whiten or args.flow:
            sts_tasks = tuple(parse_tasks(args.sts_tasks))
        if args.whiten:
            whiten_corpus = inputs.load_corpus(args.whiten_corpus, "train", limit=args.whiten_max, seed=args.seed)
        if args.flow:
            flow_corpus = inputs.load_corpus(args.flow_corpus, "train", limit=args.flow_max, seed=args.seed)

    from simcse_lab.analysis import plots
    from simcse_lab.analysis import report as analysis

    dynamics = {"max_types": args.token_dynamics_types, "max_occurrences": args.token_dynamics_occurrences,
                "min_contexts": args.token_dynamics_min_contexts}
    opts = analysis.Options(tokens=not args.no_tokens, token_corpus=token_corpus, knn=args.knn,
                            knn_sample=args.knn_sample, whiten=args.whiten, whiten_corpus=whiten_corpus,
                            whiten_k=args.whiten_k, flow=args.flow, flow_corpus=flow_corpus,
                            flow_settings=flow_settings(args), sts_tasks=sts_tasks or ("stsb",),
                            sts_split=args.sts_split, token_dynamics=not args.no_token_dynamics, dynamics=dynamics,
                            dynamics_sentences=args.token_dynamics_sentences, max_pairs=args.max_pairs,
                            seed=args.seed, precision=args.precision, batch_size=args.batch_size,
                            progress=args.progress, bidirectional=args.bidirectional, template=args.template,
                            template_denoise=args.template_denoise)
    results, arrays = [], {}
    for ckpt in checkpoints:
        print(f"analysing {ckpt.label} ...", file=sys.stderr)
        summary, arr = analysis.analyze_checkpoint(ckpt, data, opts)
        results.append(summary)
        arrays[ckpt.label] = arr
    if run_dir is not None:
        trajectory["checkpoints"] = measure_run(run_dir, steps, data, opts, analysis)

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
        if opts.token_dynamics:
            dyn = {r["label"]: r["token_dynamics"] for r in results}
            figures.append(plots.token_dynamics(dyn, out_dir / "token_dynamics.png"))
            figures.append(plots.self_similarity(dyn, out_dir / "self_similarity.png"))
    if rows:
        figures.append(plots.trajectory(rows, keys, out_dir / "trajectory.png"))
    if trajectory and trajectory.get("checkpoints"):
        figures.append(plots.checkpoint_trajectory(trajectory["checkpoints"], out_dir / "checkpoint_trajectory.png"))

    report = {
        "command": "simcse-lab analyze " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "analyze" else "simcse-lab analyze (called from Python)",
        "data": {"source": data.source, "sentences": len(data.sentences), "positive_pairs": len(data.pairs)}
        if data else None,
        "options": {"max_pairs": args.max_pairs, "seed": args.seed, "knn": args.knn,
                    "token_corpus": None if args.no_tokens else args.token_corpus,
                    "whiten_corpus": args.whiten_corpus if args.whiten else None,
                    "whiten_max": args.whiten_max if args.whiten else None,
                    "flow_corpus": args.flow_corpus if args.flow else None,
                    "flow_max": args.flow_max if args.flow else None,
                    "flow_settings": flow_settings(args) if args.flow else None,
                    "sts_tasks": list(sts_tasks) or None, "sts_split": args.sts_split if sts_tasks else None,
                    "token_dynamics": None if args.no_token_dynamics
                    else {**dynamics, "sentences": args.token_dynamics_sentences}},
        "checkpoints": results,
        "comparison": analysis.comparison_rows(results),
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
            if "flow" in r:
                f = r["flow"]["avg"]
                print(f"{r['label']}: STS avg {f['plain']:.2f} -> flowed {f['flowed']:.2f}")
        if opts.token_dynamics or args.whiten or args.flow:
            print(analysis.comparison_table(report["comparison"], markdown=False))
    if trajectory:
        if trajectory.get("points"):
            print(f"trajectory: {trajectory['points']} points, first {trajectory['first']}, "
                  f"last {trajectory['last']}")
        if trajectory.get("checkpoints"):
            print(f"trajectory: {len(trajectory['checkpoints'])} checkpoints measured (steps "
                  f"{', '.join(str(p['step']) for p in trajectory['checkpoints'])})")
    print(f"wrote {out_dir / 'report.json'}, {out_dir / 'report.md'} and {len(figures)} figures")
    return 0


def _measure_hint(path) -> str:
    return f"; move {path.name} out of {path.parent} to measure the others"


def read_run(path):
    """(RunDir, [(step, checkpoint dir, {tensor: shape} of its model)]) of a training run directory, checked
    before any model is loaded: every checkpoint is read in full (checksums, safe loading, structure) before any
    is measured, and only its model's tensor shapes are kept."""
    from simcse_lab.analysis import inputs
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.resolve import resolve_model
    from simcse_lab.training.checkpoint import list_checkpoints, load_checkpoint, tensor_shapes

    run_dir = inputs.read_run_dir(path)
    steps = list_checkpoints(path)
    if not steps:
        raise UserError(f"{path}: no saved checkpoints (checkpoints/step-N/); train with --keep-checkpoints 0 "
                        f"--save-steps N to keep a whole trajectory")
    try:
        resolve_model(run_dir.model)
    except UserError as err:
        raise UserError(f"{path}/train_config.json: the starting model cannot be found: {err}") from None
    checked = []
    for step, ckpt in steps:
        state, _ = load_checkpoint(ckpt, 0, hint=_measure_hint(ckpt))
        checked.append((step, ckpt, tensor_shapes(state["model"])))
        del state
    return run_dir, checked


def measure_run(run_dir, steps, data, opts, analysis) -> list[dict]:
    """The starting model (step 0) and every saved checkpoint, in step order, measured the same way. The
    weights are read with the trainer's safe loader and put into an encoder of the starting model; every
    checkpoint's tensors are checked against that model before the first point is measured."""
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.training.checkpoint import check_fits, load_checkpoint

    # every point is read with the attention and the instruction the run trained with (the starting model has no
    # recipe)
    common = dict(precision=opts.precision, batch_size=opts.batch_size, bidirectional=run_dir.bidirectional,
                  instruction=run_dir.instruction)
    start = Encoder(run_dir.model, pooler=run_dir.pooler, **common)
    expected = start.embedder_state_shapes()
    for _, path, shapes in steps:
        check_fits(path, shapes, expected, 0, hint=_measure_hint(path), exact=False)
    print(f"trajectory: step 0 ({run_dir.model}) ...", file=sys.stderr)
    points = [{"step": 0, **analysis.measure_point(start, f"{run_dir.model} (step 0)", data, opts)}]
    del start
    for step, path, _ in steps:
        print(f"trajectory: step {step} ...", file=sys.stderr)
        state, _ = load_checkpoint(path, 0, hint=_measure_hint(path))
        encoder = Encoder.from_embedder_state(run_dir.model, state["model"], run_dir.pooler, name=str(path),
                                              **common)
        del state  # the optimizer state is not needed: let it go before the forward passes
        points.append({"step": step, **analysis.measure_point(encoder, str(path), data, opts)})
    return points
