"""``eval``'s flags for SentEval's transfer tasks (``--transfer``, ``--transfer-mode``, ``--transfer-classifier``,
``--senteval-dir``), the task copies they configure, and SimCSE's transfer table. The protocol lives in
``simcse_lab.evaluation.transfer``, the tasks in ``simcse_lab.evaluation.tasks.transfer``."""

from __future__ import annotations

import argparse

from simcse_lab.data.transfer_data import TRANSFER_TASKS
from simcse_lab.evaluation.linear_probe import PROBES


def add_transfer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transfer", default=None, metavar="TASKS",
                   help=f"SentEval transfer tasks, comma-separated, or 'all' ({','.join(TRANSFER_TASKS)}); the same "
                        "as naming them in --tasks (mr,cr,...); with --transfer, STS runs only if --tasks is given")
    p.add_argument("--transfer-mode", choices=("test", "fast"), default="test",
                   help="test: SimCSE's test mode, 10 folds (the paper's numbers); fast: its fasttest, 5 folds")
    p.add_argument("--transfer-classifier", choices=PROBES, default=PROBES[0],
                   help="senteval-torch: SentEval's PyTorch logistic regression, as SimCSE runs it (default); "
                        "sklearn: SentEval's scikit-learn path (faster, not the paper's protocol)")
    p.add_argument("--senteval-dir", default=None, metavar="DIR",
                   help="a SentEval data directory (holding downstream/MR, ...); not checksummed. Default: the "
                        "registry dataset senteval_transfer under SIMCSE_LAB_DATA or the cache")


def task_list(args, default: str) -> str:
    """``--tasks`` (``default`` when not given, unless ``--transfer`` is) followed by the ``--transfer`` tasks."""
    if args.transfer is None:
        return args.tasks if args.tasks is not None else default
    from simcse_lab.data.transfer_data import parse_transfer_tasks

    chosen = TRANSFER_TASKS if args.transfer.strip().lower() == "all" else parse_transfer_tasks(args.transfer)
    return ",".join(([args.tasks] if args.tasks else []) + [t.lower() for t in chosen])


def configure_transfer(tasks: list, args) -> list:
    """The transfer tasks replaced by copies with the command's mode, classifier and data directory."""
    from simcse_lab.errors import UserError
    from simcse_lab.evaluation.tasks.transfer import SentEvalTransfer

    if args.senteval_dir is not None and not any(isinstance(t, SentEvalTransfer) for t in tasks):
        raise UserError("--senteval-dir is given but no transfer task is "
                        "(add --transfer TASKS or name them in --tasks)")
    return [t.configured(args.transfer_mode, args.transfer_classifier, args.senteval_dir)
            if isinstance(t, SentEvalTransfer) else t for t in tasks]


def print_transfer(result: dict, tasks: list, name: str) -> None:
    """SimCSE's transfer table (a column per task, test and dev rows named) and how it was scored."""
    if "transfer" not in result:
        return
    from simcse_lab.evaluation.transfer import format_transfer_table

    section = result["transfer"]
    print(format_transfer_table(section, name, {t.name: t.label for t in tasks}))
    first = next(iter(section["tasks"].values()))
    mrpc = f"MRPC test F1 {section['tasks']['mrpc']['test_f1']:.2f}; " if "mrpc" in section["tasks"] else ""
    print(f"{mrpc}transfer: SimCSE's {first['transfer_mode']} mode ({first['kfold']} folds, seed {first['seed']}), "
          f"classifier {first['probe']['classifier']}; test_acc is the reported score, dev_acc the model-selection "
          f"score; data: {'; '.join(sorted({s for r in section['tasks'].values() for s in r['data_source']}))}")
