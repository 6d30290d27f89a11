"""The ``simcse-lab`` command line: one sub-command per module in ``simcse_lab.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from simcse_lab import __version__
from simcse_lab.errors import UserError

# sub-command name -> module in simcse_lab.commands exposing add_arguments(parser) and run(args)
COMMANDS = {
    "eval": ("eval_sts", "evaluate a checkpoint on the STS benchmarks (Spearman x100)"),
    "data": ("data", "list, verify and fetch the registry's datasets"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simcse-lab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"simcse-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"simcse_lab.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args._run(args)
    except UserError as err:
        print(f"simcse-lab: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("simcse-lab: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
