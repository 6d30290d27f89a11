"""``simcse-lab compare``: is a difference in STS Spearman real? Every difference with its 95% interval.

- ``--model A --model B`` (each ``MODEL`` or ``MODEL@POOLER``, as ``analyze`` takes them): both scored here on the
  same pairs; ``--scores A.json --scores B.json``: two ``eval --save-scores`` results. Per task and for the
  average: Spearman of A and B, Δ with a paired bootstrap 95% interval, a paired permutation p-value, and Holm's
  adjustment across the rows (:mod:`simcse_lab.evaluation.significance`).
- ``--group NAME=GLOB[:KEY=VALUE,...]`` (two or more): runs over seeds (training run directories, e.g.
  ``DIR/trials/*/`` of a sweep, only those whose training options have the values given; or eval JSON files): per
  task and for the average, mean ± std (n) per group, Δ of the means with a bootstrap interval over runs (Welch's
  beside it) and Almost Stochastic Order both ways (:mod:`simcse_lab.evaluation.seed_groups`), for each pair of
  groups.

Two runs whose reproducibility records differ get a one-line warning (the seed is expected to differ across
runs of a group). Everything the inputs can get wrong is one line (exit 2) before any model loads or test runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from simcse_lab.commands import add_bidirectional_flag, add_progress_flag
from simcse_lab.errors import UserError
from simcse_lab.evaluation.sts import SPLITS, TASKS
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.runtime.precision import PRECISIONS

OUTPUT_SUFFIXES = (".json", ".md")


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", action="append", metavar="MODEL[@POOLER]",
                      help="a model to score (twice): directory, run directory, hub id or alias; @POOLER picks "
                           "its pooler")
    what.add_argument("--scores", action="append", metavar="FILE",
                      help="an eval --save-scores JSON file (twice): its per-pair similarities")
    what.add_argument("--group", action="append", metavar="NAME=GLOB[:KEY=VALUE,...]",
                      help="a group of runs over seeds (two or more): run directories (their summary.json) or "
                           "eval JSON files matched by GLOB, only those whose training options have the values "
                           "given, e.g. unsup='runs/sweep/trials/*/:objective=unsup'")
    p.add_argument("--tasks", default=None,
                   help=f"comma-separated STS tasks (default: {','.join(TASKS)} for --model, else those of the "
                        "inputs)")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="--model: the pooler of a model given without @POOLER (default: as eval chooses)")
    p.add_argument("--split", choices=SPLITS, default="test", help="--model: the split scored")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="--model: as eval's --precision")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-length", type=int, default=None)
    add_bidirectional_flag(p)
    p.add_argument("--aso", choices=("all", "avg", "none"), default="all",
                   help="--group: Almost Stochastic Order in every column, only the average's, or none (deepsig "
                        "takes a few seconds per column and direction)")
    p.add_argument("--resamples", type=int, default=9999,
                   help="bootstrap resamples and permutations per test (default 9999)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations")
    p.add_argument("--output", action="append", default=[], help="also write the report: FILE.json or FILE.md "
                                                                 "(may be given twice, one of each)")
    add_progress_flag(p)


def run(args) -> int:
    from simcse_lab.commands import _validate
    from simcse_lab.evaluation.comparison import format_markdown, format_text
    from simcse_lab.io import write_json, write_text

    check_arguments(args, _validate)
    if args.group:
        report = compare_groups(args)
    else:
        report = compare_pair(args)
    print(format_text(report))
    command = shlex.join(["simcse-lab"] + sys.argv[1:])
    for output in args.output:
        if output.endswith(".md"):
            write_text(output, format_markdown(report, command))
        else:
            write_json(output, {"command": command, **report})
        print(f"wrote {output}")
    return 0


def check_arguments(args, validate) -> None:
    for output in args.output:
        validate.output_file(output)
        if not output.endswith(OUTPUT_SUFFIXES):
            raise UserError(f"--output {output}: write a .json or a .md file")
    validate.at_least(args.resamples, 100, "--resamples")
    validate.at_least(args.batch_size, 1, "--batch-size")
    validate.at_least(args.max_length, 1, "--max-length")
    validate.seed(args.seed)
    for flag in ("model", "scores"):
        given = getattr(args, flag)
        if given is not None and len(given) != 2:
            raise UserError(f"--{flag} takes exactly two (A and B), got {len(given)}")
    if args.group is not None and len(args.group) < 2:
        raise UserError(f"--group needs at least two groups, got {len(args.group)}")


def task_names(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()] or None


def warn_records(records: dict[str, dict], ignore: tuple[str, ...] = ()) -> list[str]:
    """The one-line warning where the runs' reproducibility records differ, printed; kept in the report too."""
    from simcse_lab.evaluation.run_results import record_differences

    line = record_differences(records, ignore)
    if line:
        print(f"warning: {line}", file=sys.stderr)
    return [line] if line else []


def compare_pair(args) -> dict:
    """--model or --scores: two results with per-pair scores, on the same pairs, tested."""
    from simcse_lab.evaluation.comparison import paired_report
    from simcse_lab.evaluation.pair_scores import check_same_pairs, read_scores

    if args.scores:
        a, b = (read_scores(path) for path in args.scores)
        if a.source == b.source:
            raise UserError(f"--scores names {a.source} twice; give two results")
        tasks = check_same_pairs(a, b, task_names(args.tasks))
        warnings = warn_records({a.source: a.record, b.source: b.record})
    else:
        a, b = scored_models(args)
        tasks, warnings = check_same_pairs(a, b), []
    return {**paired_report(a, b, tasks, args.resamples, args.seed), "warnings": warnings}


def scored_models(args):
    """Both ``--model`` specs checked, then each loaded and scored on the same STS tasks (per-pair scores kept)."""
    from simcse_lab.analysis.inputs import parse_checkpoint
    from simcse_lab.evaluation.pair_scores import scored_result
    from simcse_lab.evaluation.tasks import parse_tasks
    from simcse_lab.evaluation.tasks.run import check_tasks, evaluate_tasks
    from simcse_lab.evaluation.tasks.sts import STSTask
    from simcse_lab.modeling.resolve import resolve_model
    from simcse_lab.runtime.progress import library_bars

    checkpoints = [parse_checkpoint(spec, args.pooler) for spec in args.model]
    tasks = parse_tasks(args.tasks or ",".join(TASKS))
    other = [t.name for t in tasks if not isinstance(t, STSTask)]
    if other:
        raise UserError(f"compare tests STS tasks; {', '.join(other)} is not one")
    check_tasks(tasks, args.split)
    for checkpoint in checkpoints:
        resolve_model(checkpoint.model)
    library_bars(args.progress)
    from simcse_lab.modeling.encoder import load_encoder

    scored = []
    for checkpoint in checkpoints:
        encoder = load_encoder(checkpoint.model, pooler=checkpoint.pooler, precision=args.precision,
                               batch_size=args.batch_size, max_length=args.max_length,
                               bidirectional=args.bidirectional)
        result = evaluate_tasks(encoder, tasks, args.split, "all", args.progress, geometry=False, keep_pairs=True)
        scored.append(scored_result(result, checkpoint.label))
    return scored


def parse_group(spec: str) -> tuple[str, str]:
    name, sep, pattern = spec.partition("=")
    if not sep or not name.strip() or not pattern:
        raise UserError(f"--group {spec!r}: write NAME=GLOB")
    return name.strip(), pattern


def compare_groups(args) -> dict:
    """--group NAME=GLOB ...: every run read and checked before any test runs."""
    from simcse_lab.evaluation.comparison import group_report
    from simcse_lab.evaluation.run_results import common_tasks, read_group
    from simcse_lab.evaluation.seed_groups import aso_function

    if args.aso != "none":
        aso_function()  # the stats extra, before any work
    groups = {}
    for spec in args.group:
        name, pattern = parse_group(spec)
        if name in groups:
            raise UserError(f"--group {name} is named twice")
        groups[name] = read_group(pattern, f"--group {name}")
    runs = [r for group in groups.values() for r in group]
    seen = {}
    for name, group in groups.items():
        for r in group:
            if seen.setdefault(r.source, name) != name:
                raise UserError(f"{r.source} is in both --group {seen[r.source]} and --group {name}")
    tasks = common_tasks(runs, task_names(args.tasks))
    warnings = warn_records({r.source: r.record for r in runs}, ignore=("seed",))
    return {**group_report(groups, tasks, args.resamples, args.seed, args.aso), "warnings": warnings}
