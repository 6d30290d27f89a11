"""The ``simcse-lab`` command line: one sub-command per module in ``simcse_lab.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from simcse_lab import __version__
from simcse_lab.errors import UserError
from simcse_lab.io import expand_user

# sub-command name -> module in simcse_lab.commands exposing add_arguments(parser) and run(args)
COMMANDS = {
    "eval": ("eval_sts", "evaluate a checkpoint on the STS benchmarks (Spearman x100)"),
    "data": ("data", "list, verify and fetch the registry's datasets"),
    "train": ("train", "train sentence embeddings: unsup / sup SimCSE or ESimCSE (accelerate; resumable)"),
    "export": ("export", "export a checkpoint as sentence-transformers, plain HF or ONNX (verified on reload)"),
    "index": ("index", "build a faiss index of a corpus (flat, hnsw, ivfpq) for semantic search"),
    "search": ("search", "search an index with a query or a file of queries"),
    "retrieval-eval": ("retrieval_eval", "recall@k / MRR@10 retrieval evaluation on STS-B and SICK-R (gold >= 4)"),
    "analyze": ("analyze", "embedding geometry report: alignment/uniformity, isotropy, layers, token degeneration "
                           "and dynamics, whitening / flow, training trajectory"),
    "sweep": ("sweep", "a grid or search of training runs over options and seeds on an Optuna study (many "
                       "workers, resumable), and its report: mean ± std over seeds"),
    "compare": ("compare", "is a difference real? two models on the same STS pairs (paired bootstrap CI, permutation "
                           "p, Holm) or groups of runs over seeds (bootstrap CI, Almost Stochastic Order)"),
}


# the options that name a file or directory to read or write, in every command (``search --index`` is one;
# ``index build --index`` is the index type). Model and data specs expand ``~`` where they are parsed
# (modeling.resolve, data.spec); a training config's output_dir in TrainConfig.
PATH_OPTIONS = ("output_dir", "output", "queries", "trajectory", "config", "source", "senteval_dir")
COMMAND_PATH_OPTIONS = {"search": ("index",), "compare": ("scores",)}


def expand_user_paths(args: argparse.Namespace) -> None:
    """``~`` and ``~user`` expanded in every path option, in one place: ``--output-dir '~/x'`` (quoted, so the
    shell left it) must not create a directory literally named ``~``."""
    for name in PATH_OPTIONS + COMMAND_PATH_OPTIONS.get(args.command, ()):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, expand_user(value))
        elif isinstance(value, list):  # an option given several times (compare --output a.md --output a.json)
            setattr(args, name, [expand_user(v) if isinstance(v, str) else v for v in value])


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the sub-command named in ``argv`` is imported and gets its arguments, so a
    command never pays for the imports of the others."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="simcse-lab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"simcse-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(f"simcse_lab.commands.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        expand_user_paths(args)
        code = args._run(args)
    except UserError as err:
        print(f"simcse-lab: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("simcse-lab: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code or 0)
