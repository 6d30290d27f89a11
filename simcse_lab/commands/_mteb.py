"""``eval --mteb``: its flags, the checks made before any model loads, and its report.

``eval`` without ``--mteb`` is unchanged. With it, the checkpoint (any pooler/precision, a run directory, an ONNX
export, optionally through ``--whiten``/``--flow``) is scored by mteb's evaluators on the named mteb tasks instead
of simcse-lab's STS suite; under ``accelerate launch`` each process encodes a shard (see
:mod:`simcse_lab.evaluation.mteb_model`) and the main process writes the results."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.runtime.launch import launched_state


def add_mteb_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("MTEB (needs the extra: pip install \"simcse-lab[mteb]\")")
    group.add_argument("--mteb", default=None, metavar="TASK[,TASK...]",
                       help="score with mteb's evaluators instead of the STS suite: mteb task or benchmark names "
                            "(STSBenchmark, 'MTEB(eng, v2)'; their data from the hub or its cache), or simcse-lab's "
                            "offline tasks SimCSELab-STSB-SentEval, SimCSELab-SICKR-SentEval, SimCSELab-STS12-SentEval "
                            "... SimCSELab-STS16-SentEval (all seven: SimCSELab-STS-SentEval)")
    group.add_argument("--mteb-results", default=None, metavar="DIR",
                       help="mteb's results folder to write (DIR/results/<model>/<revision>/<Task>.json); "
                            "default: mteb's own, $MTEB_CACHE or ~/.cache/mteb")
    group.add_argument("--mteb-name", default=None, metavar="ORG/NAME",
                       help="the model's name in mteb's results (default simcse-lab/<model>__<pooler>__<precision>)")


@dataclass
class MtebPlan:
    tasks: list       # mteb tasks, data loaded
    state: object     # accelerate's PartialState under accelerate launch (WORLD_SIZE > 1), else None

    @property
    def device(self) -> str | None:
        return str(self.state.device) if self.state is not None else None

    @property
    def is_main(self) -> bool:
        return self.state is None or self.state.is_main_process


def prepare(args, default_tasks: str) -> MtebPlan | None:
    """None without ``--mteb``; else the extra, the flags and every task's data checked (one line each), before
    any model loads."""
    if not args.mteb:
        if args.mteb_results or args.mteb_name:
            raise UserError("--mteb-results and --mteb-name apply to --mteb only")
        return None
    from simcse_lab.evaluation import mteb_bridge

    mteb_bridge.require_mteb()
    given_tasks = getattr(args, "tasks", None) not in (None, default_tasks)
    clash = [flag for flag, given in (("--tasks", given_tasks), ("--transfer", getattr(args, "transfer", None)),
                                       ("--subsets", args.subsets), ("--aggregate", args.aggregate != "all")) if given]
    if clash:
        raise UserError(f"--mteb replaces the STS suite: drop {', '.join(clash)} (the local tasks "
                        f"SimCSELab-*-SentEval score STS12-16 as --aggregate all)")
    if args.mteb_results and Path(args.mteb_results).exists() and not Path(args.mteb_results).is_dir():
        raise UserError(f"--mteb-results {args.mteb_results}: exists and is not a directory")
    from simcse_lab.evaluation.mteb_model import check_name
    from simcse_lab.evaluation.mteb_tasks import get_tasks, load_tasks

    if args.mteb_name:
        check_name(args.mteb_name)
    tasks = get_tasks(args.mteb, args.split)
    state = launched_state()
    if state is not None and (args.whiten or args.flow):
        raise UserError("--whiten/--flow with --mteb run in one process (each process would fit its own map); "
                        "drop accelerate launch")
    load_tasks(tasks)
    return MtebPlan(tasks, state)


def run(plan: MtebPlan, encoder, args, fitted: dict | None) -> int:
    """Score ``encoder`` with mteb on the plan's tasks; the main process prints, writes mteb's files and --output."""
    from simcse_lab.evaluation.mteb_bridge import format_table
    from simcse_lab.evaluation.mteb_bridge import run as run_mteb
    from simcse_lab.evaluation.mteb_model import SimcseLabModel
    from simcse_lab.io import write_json

    progress = args.progress and plan.is_main
    model = SimcseLabModel(encoder, name=args.mteb_name, state=plan.state, progress=progress)
    summary = run_mteb(model, plan.tasks, results_dir=args.mteb_results, batch_size=args.batch_size,
                       progress=progress, write=plan.is_main)
    encoded = model.encoded_per_process()
    if not plan.is_main:
        return 0
    result = {**encoder.describe(), **summary, "world_size": len(encoded), "texts_encoded_per_process": encoded}
    if fitted is not None:
        result["post_hoc"] = fitted
    print(format_table(summary))
    print(f"mteb {summary['mteb_version']} scored {summary['mteb_model']} (revision {summary['mteb_revision']}) "
          f"in {summary['seconds']:.1f} s; its result files: {summary['mteb_results']}")
    if args.output:
        write_json(args.output, result)
        print(f"wrote {args.output}")
    return 0
