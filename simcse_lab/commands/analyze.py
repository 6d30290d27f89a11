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
from types import SimpleNamespace

from simcse_lab.analysis import sections as report_sections
from simcse_lab.commands import add_bidirectional_flag, add_progress_flag, add_template_flags, check_template_flags
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
    for section in report_sections.build():
        section.add_flags(p)
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    add_progress_flag(p)


def run(args) -> int:
    from pathlib import Path

    from simcse_lab.analysis import report as analysis
    from simcse_lab.io import claim_output_dir, write_json, write_text

    checkpoints, columns = check_common(args)
    reader = SimpleNamespace(read=read_run, measure=lambda run, steps, measure: measure_run(run, steps, args, measure))
    sections = report_sections.build(reader)
    for section in sections:  # every flag and input checked before any model code is imported or loaded
        section.configure(args)
    out_dir = Path(args.output_dir)
    claim_output_dir(out_dir, "analysis")  # ours, or refused before any data or model is loaded
    data = load_data(args, columns, checkpoints, sections)
    if checkpoints:
        for section in sections:
            section.load()
    common = analysis.Common(max_pairs=args.max_pairs, seed=args.seed, precision=args.precision,
                             batch_size=args.batch_size, progress=args.progress, bidirectional=args.bidirectional,
                             template=args.template, template_denoise=args.template_denoise)
    results, arrays = [], {}
    for ckpt in checkpoints:
        print(f"analysing {ckpt.label} ...", file=sys.stderr)
        summary, arrays[ckpt.label] = analysis.analyze_checkpoint(ckpt, data, sections, common)
        results.append(summary)
    trajectory = next(s for s in sections if isinstance(s, report_sections.Trajectory))
    trajectory.measure_run(lambda encoder, label: analysis.measure_point(encoder, label, data, sections, common))

    labels = [c.label for c in checkpoints]
    options = {"max_pairs": args.max_pairs, "seed": args.seed}
    for section in sections:
        options.update(section.options())
    report = {"command": command_line(), "data": {"source": data.source, "sentences": len(data.sentences),
                                                  "positive_pairs": len(data.pairs)} if data else None,
              "options": options, "checkpoints": results, "comparison": analysis.comparison_rows(results),
              "arrows": [[labels[0], other] for other in labels[1:]], "trajectory": trajectory.entry}
    figures = analysis.draw_figures(report, arrays, sections, out_dir)
    report["figures"] = [Path(f).name for f in figures]
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", analysis.render_markdown(report, sections))
    for line in analysis.printed_summary(report, sections):
        print(line)
    print(f"wrote {out_dir / 'report.json'}, {out_dir / 'report.md'} and {len(figures)} figures")
    return 0


def check_common(args):
    """(the checkpoints, the --columns choice): the flags no section owns, checked before anything is read."""
    from pathlib import Path

    from simcse_lab.analysis import inputs
    from simcse_lab.analysis.sections.base import at_least
    from simcse_lab.commands import _validate
    from simcse_lab.data.columns import parse_columns
    from simcse_lab.errors import UserError
    from simcse_lab.runtime.progress import library_bars

    if args.model is None and not args.compare and args.trajectory is None:
        raise UserError("nothing to analyse: give --model (and --compare) and/or --trajectory")
    if args.model is None and args.compare:
        raise UserError("--compare needs --model (the reference checkpoint)")
    at_least(args, ("max_sentences", "max_pairs", "batch_size"))
    _validate.seed(args.seed)
    library_bars(args.progress)
    columns = parse_columns(args.columns)
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output-dir {out_dir} exists and is not a directory")
    checkpoints = []
    if args.model is not None:
        checkpoints.append(inputs.parse_checkpoint(args.model, args.pooler))
        checkpoints += [inputs.parse_checkpoint(spec) for spec in args.compare]
    for ckpt in checkpoints:
        check_template_flags(ckpt.model, ckpt.pooler, args.template)
    labels = [c.label for c in checkpoints]
    if len(set(labels)) != len(labels):
        raise UserError(f"two checkpoints share the label {labels}; compare distinct models or poolers")
    return checkpoints, columns


def load_data(args, columns, checkpoints, sections):
    """The analysis sentences, when a checkpoint or a trajectory point will be measured on them."""
    from simcse_lab.analysis import inputs

    if not (checkpoints or any(s.wants_sentences() for s in sections)):
        return None
    return inputs.load_sentence_data(args.data, args.split, limit=args.max_sentences, seed=args.seed,
                                     columns=columns)


def command_line() -> str:
    if len(sys.argv) > 1 and sys.argv[1] == "analyze":
        return "simcse-lab analyze " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return "simcse-lab analyze (called from Python)"


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


def measure_run(run_dir, steps, opts, measure_point) -> list[dict]:
    """The starting model (step 0) and every saved checkpoint, in step order, measured the same way. The
    weights are read with the trainer's safe loader and put into an encoder of the starting model; every
    checkpoint's tensors are checked against that model before the first point is measured. ``opts``: precision and
    batch size; ``measure_point(encoder, label) -> dict``: one point's numbers."""
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
    points = [{"step": 0, **measure_point(start, f"{run_dir.model} (step 0)")}]
    del start
    for step, path, _ in steps:
        print(f"trajectory: step {step} ...", file=sys.stderr)
        state, _ = load_checkpoint(path, 0, hint=_measure_hint(path))
        encoder = Encoder.from_embedder_state(run_dir.model, state["model"], run_dir.pooler, name=str(path),
                                              **common)
        del state  # the optimizer state is not needed: let it go before the forward passes
        points.append({"step": step, **measure_point(encoder, str(path))})
    return points
