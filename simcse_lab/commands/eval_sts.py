"""``simcse-lab eval``: the STS suite for one checkpoint, as SimCSE's evaluation.py scores it (and any other
registered task or the user's own files, :mod:`simcse_lab.evaluation.tasks`).

With ``--whiten CORPUS`` or ``--flow CORPUS``, a post-hoc map (BERT-whitening, BERT-flow) is first fitted on the
checkpoint's embeddings of that corpus, and STS is scored through it; the fit's settings go into the output."""

from __future__ import annotations

import argparse

from simcse_lab.analysis.maps import MAPS
from simcse_lab.commands import _mteb, add_bidirectional_flag, add_progress_flag, add_template_flags, check_template_flags
from simcse_lab.commands._transfer import add_transfer_flags, configure_transfer, print_transfer, task_list
from simcse_lab.evaluation.sts import AGGREGATES, SPLITS, TASKS
from simcse_lab.modeling.pooling import POOLERS
from simcse_lab.modeling.resolve import DEFAULT_MODEL
from simcse_lab.runtime.precision import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:

    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model directory, hub id, or the offline alias all-MiniLM-L6-v2 (default)")
    p.add_argument("--pooler", choices=POOLERS, default=None,
                   help="SimCSE pooler; default: a sentence-transformers directory's own modules, else the backbone "
                        "family's natural one (cls, or avg for a family without [CLS] such as T5)")
    p.add_argument("--instruction", default=None,
                   help="text put before every sentence, its tokens left out of the pooled ones (LLM2Vec's instruction "
                        "masking; a token pooler: avg, avg_first_last, avg_top2, last_token, weighted_avg); default: "
                        "the one saved with the model, if any")
    add_bidirectional_flag(p)
    add_template_flags(p)
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks (default: SentEval's seven STS tasks, unless --transfer is given): "
                        "sts12 ... sickr, stsb-retrieval, sickr-retrieval, SentEval's transfer tasks mr, cr, subj, "
                        "mpqa, sst2, trec, mrpc, a user's scored pairs sts:FILE[:LOW-HIGH] or query/positive pairs "
                        "retrieval:FILE (.csv/.tsv/.jsonl)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--aggregate", choices=AGGREGATES, default="all",
                   help="STS12-16 aggregation: all = concatenated subsets (SimCSE), wmean, mean")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto = bf16 autocast where the hardware has it, else fp32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-length", type=int, default=None, help="truncate longer inputs (default: model limit)")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--save-scores", action="store_true",
                   help="keep each STS task's per-pair gold and cosine scores in the --output JSON (what "
                        "compare --scores tests on)")
    p.add_argument("--subsets", action="store_true", help="also print per-subset Spearman")
    p.add_argument("--no-geometry", dest="geometry", action="store_false",
                   help="skip alignment/uniformity per task and the isotropy of all sentences (computed by default "
                        "from the vectors already encoded)")
    post_hoc = p.add_mutually_exclusive_group()
    for method in MAPS:
        post_hoc.add_argument(f"--{method.flag}", default=None, metavar="CORPUS", help=method.help)
    p.add_argument("--fit-max", type=int, default=5000, help="sub-sample the --whiten/--flow corpus (seeded)")
    for method in MAPS:
        method.add_flags(p)  # its own settings (--whiten-k; --flow-levels ...), the same as analyze's
    add_transfer_flags(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus sub-sample and of the flow")
    _mteb.add_mteb_arguments(p)
    add_progress_flag(p)


def run(args) -> int:
    from simcse_lab.commands import _validate
    from simcse_lab.evaluation.tasks import parse_tasks
    from simcse_lab.evaluation.tasks.run import check_tasks, evaluate_tasks
    from simcse_lab.io import write_json
    from simcse_lab.modeling.resolve import resolve_model
    from simcse_lab.runtime.progress import library_bars

    _validate.output_file(args.output)
    _validate.at_least(args.batch_size, 1, "--batch-size")
    _validate.at_least(args.max_length, 1, "--max-length")
    _validate.at_least(args.fit_max, 1, "--fit-max")
    _validate.at_least(args.whiten_k, 1, "--whiten-k")
    _validate.seed(args.seed)
    check_save_scores(args)
    library_bars(args.progress)
    mteb_plan = _mteb.prepare(args, ",".join(TASKS))  # None without --mteb (which replaces the task list)
    if mteb_plan is None:
        tasks = configure_transfer(parse_tasks(task_list(args, ",".join(TASKS))), args)
        check_tasks(tasks, args.split)  # an unknown split, a user's file that does not read: before any model loads
    resolve_model(args.model)  # a bad --model stops here, before the seconds of the encoder's imports
    check_template_flags(args.model, args.pooler, args.template)
    corpus = None
    method = next((m for m in MAPS if getattr(args, m.flag)), None)
    if method is not None:
        from simcse_lab.analysis.inputs import load_corpus

        settings = method.settings(args)  # a bad setting: one line, before the corpus is read
        corpus = load_corpus(getattr(args, method.flag), "train", limit=args.fit_max, seed=args.seed)
    from simcse_lab.modeling.encoder import load_encoder, use_template

    encoder = load_encoder(args.model, pooler=args.pooler, precision=args.precision,
                           batch_size=args.batch_size, max_length=args.max_length, bidirectional=args.bidirectional,
                           device=mteb_plan.device if mteb_plan else None, instruction=args.instruction)
    use_template(encoder, args.template, args.template_denoise)
    fitted = None
    if corpus is not None:
        encoder, fitted = post_hoc_encoder(encoder, corpus, method, settings, args)
    if mteb_plan is not None:
        return _mteb.run(mteb_plan, encoder, args, fitted)
    result = evaluate_tasks(encoder, tasks, args.split, args.aggregate, args.progress, geometry=args.geometry,
                            keep_pairs=args.save_scores)
    if fitted is not None:
        result["post_hoc"] = fitted
    print_result(result, tasks, fitted, args.subsets)
    print_transfer(result, tasks, f"{result['model']} [{result['pooler']}, {result['precision']}]"
                                  + (f" + {fitted['method']}" if fitted else ""))
    if args.output:
        write_json(args.output, result)
        print(f"wrote {args.output}")
    return 0


def check_save_scores(args) -> None:
    """``--save-scores`` writes into ``--output``, for SentEval-style STS scoring (not mteb's)."""
    from simcse_lab.errors import UserError

    if args.save_scores and not args.output:
        raise UserError("--save-scores keeps the per-pair scores in the --output JSON: give --output FILE")
    if args.save_scores and getattr(args, "mteb", None):
        raise UserError("--save-scores keeps simcse-lab's own STS scores; it does not apply to --mteb")


def print_result(result: dict, tasks, fitted: dict | None, subsets: bool) -> None:
    """The STS table (as it always was), the per-subset scores, the encoding line, then a table per other type."""
    from simcse_lab.evaluation.sts import format_geometry, format_table
    from simcse_lab.evaluation.tasks.run import format_sections

    name = f"{result['model']} [{result['pooler']}, {result['precision']}]"
    name += f" + {fitted['method']}" if fitted else ""
    if "tasks" in result:
        labels = {t.name: t.label for t in tasks}
        print(format_table([result], [name], labels))
        if "geometry" in result:
            print("\n" + format_geometry([result], [name], labels))
        if subsets:
            for task, r in result["tasks"].items():
                subs = ", ".join(f"{name} {s['spearman']:.2f}" for name, s in r["subsets"].items())
                print(f"  {task}: {subs}")
        print(f"{result['sentences_encoded']} distinct sentences encoded in {result['seconds']:.1f} s "
              f"({result['backend']}, {result['precision']}, {result['device']})")
    for table in format_sections(result, tasks):
        print(table)


def post_hoc_encoder(encoder, corpus: list[str], method, settings, args):
    """(the encoder wrapped in the map ``method`` fitted on ``corpus``, the fit's record for the output JSON)."""
    from simcse_lab.analysis.post_hoc import MappedEncoder, fit_on_corpus

    fitted, seconds = fit_on_corpus(method, encoder, corpus, settings, args.seed, args.progress)
    name = getattr(args, method.flag)
    print(f"fitted {method.name} on {len(corpus)} sentences of {name} in {seconds:.1f} s")
    return MappedEncoder(encoder, fitted), {"method": method.name, **fitted.fit_record(), "corpus": name,
                                            "fit_max": args.fit_max, "fitted_on": len(corpus), "seed": args.seed,
                                            "fit_seconds": seconds}
