"""``simcse-lab train``: contrastive training (unsup / sup SimCSE, ESimCSE) on accelerate.

Also runs as ``accelerate launch [--multi_gpu --num_processes N] -m simcse_lab train ...``."""

from __future__ import annotations

import argparse

BOOL = argparse.BooleanOptionalAction


def add_arguments(p: argparse.ArgumentParser) -> None:
    from simcse_lab.training.config import FIELDS

    p.add_argument("--config", default=None, help="YAML file of options (flags given here override it)")
    helps = {"objective": "unsup, sup or esimcse", "data": "wiki, nli, or a file (.txt sentences / .csv triplets)",
             "model": "model directory, hub id or alias", "pooler": "cls, cls_before_pooler, avg, avg_first_last, avg_top2",
             "max_steps": "stop after N steps (0: run the epochs)", "eval_steps": "STS-B dev evaluation period (0: off)",
             "test_tasks": "STS test tasks for summary.json ('none' to skip)", "resume": "continue from the last checkpoint",
             "precision": "auto (bf16 where available), fp32 or bf16", "fixed_repetition":
             "ESimCSE: draw the word repetition once per sentence (official code) instead of every step",
             "progress": "show a progress bar on stderr (default: when stderr is a terminal)",
             "output_dir": "the run directory to write (metrics.jsonl, best/, final/, summary.json, checkpoints/)",
             "cos_reg": "weight of the cosine regulariser (mean pairwise cosine of the batch's anchor embeddings) "
                        "added to the loss; 0: off (default)",
             "keep_checkpoints": "keep the newest N training-state checkpoints (default 2); 0: keep all, for "
                                 "analyze --trajectory RUN_DIR"}
    for name, field in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str}.get(field.type)
        if field.type == "bool":
            p.add_argument(flag, action=BOOL, default=None, help=helps.get(name, f"default {field.default}"))
        else:
            p.add_argument(flag, type=kind, default=None, help=helps.get(name, f"default {field.default}"))


def run(args) -> int:
    from simcse_lab.commands import _validate
    from simcse_lab.io import claim_output_dir
    from simcse_lab.training.config import FIELDS, load_config
    from simcse_lab.training.examples import check_training_data

    cfg = load_config(args.config, {name: getattr(args, name) for name in FIELDS})
    _validate.process_env()
    check_training_data(cfg)  # a bad --data stops here, before the seconds of the training imports
    claim_output_dir(cfg.output_dir, "train")  # every rank may: a directory of ours, or refused before any work
    from simcse_lab.training.loop import train

    train(cfg)
    return 0
