"""``eval --transfer``: SentEval's transfer tasks with SimCSE's protocol (flags, data checked before encoding, the
table and the JSON section). The protocol itself lives in ``simcse_lab.evaluation.transfer``."""

from __future__ import annotations

import argparse

from simcse_lab.data.transfer_data import TRANSFER_TASKS
from simcse_lab.evaluation.linear_probe import PROBES


def add_transfer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transfer", default=None, metavar="TASKS",
                   help=f"SentEval transfer tasks, comma-separated, or 'all' ({','.join(TRANSFER_TASKS)}); "
                        "with --transfer, STS runs only if --tasks is given")
    p.add_argument("--transfer-mode", choices=("test", "fast"), default="test",
                   help="test: SimCSE's test mode, 10 folds (the paper's numbers); fast: its fasttest, 5 folds")
    p.add_argument("--transfer-classifier", choices=PROBES, default=PROBES[0],
                   help="senteval-torch: SentEval's PyTorch logistic regression, as SimCSE runs it (default); "
                        "sklearn: SentEval's scikit-learn path (faster, not the paper's protocol)")
    p.add_argument("--senteval-dir", default=None, metavar="DIR",
                   help="a SentEval data directory (holding downstream/MR, ...); not checksummed. Default: the "
                        "registry dataset senteval_transfer under SIMCSE_LAB_DATA or the cache")


def load_transfer_data(args) -> list | None:
    """The transfer tasks' data, every file checked and read before any model is loaded (None: no --transfer)."""
    if args.transfer is None:
        return None
    from simcse_lab.data.transfer_data import load_transfer, parse_transfer_tasks

    tasks = list(TRANSFER_TASKS) if args.transfer.strip().lower() == "all" else parse_transfer_tasks(args.transfer)
    return load_transfer(tasks, args.senteval_dir)


def run_transfer(encoder, datasets: list, args, name: str) -> dict:
    """Score, print SimCSE's transfer table (test and dev rows, each named) and return the result."""
    import torch

    from simcse_lab.evaluation.linear_probe import make_probe
    from simcse_lab.evaluation.transfer import MODES, SEED, evaluate_transfer, format_transfer_table

    device = "cuda" if torch.cuda.is_available() else "cpu"
    probe = make_probe(args.transfer_classifier, MODES[args.transfer_mode].settings, seed=SEED, device=device)
    result = evaluate_transfer(encoder, datasets, args.transfer_mode, probe, progress=args.progress)
    print(format_transfer_table(result, name))
    if "MRPC" in result["tasks"]:
        print(f"MRPC test F1: {result['tasks']['MRPC']['test_f1']:.2f}")
    print(f"transfer: mode {result['transfer_mode']} ({result['kfold']} folds, seed {result['seed']}), classifier "
          f"{probe.name}; dev acc = the model-selection score, test acc = the reported one; data: "
          f"{'; '.join(result['data_source'])}; {result['seconds']:.1f} s")
    return result
