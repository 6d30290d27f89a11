"""Sub-commands of the ``simcse-lab`` CLI: each module has ``add_arguments(parser)`` and ``run(args)``.

Shared flag conventions: ``--output-dir`` for a command that writes a directory, ``--output`` for one
that writes a file; ``--progress/--no-progress`` wherever there is something to show (default: shown
when stderr is a terminal)."""

from __future__ import annotations

import argparse

from simcse_lab.runtime.progress import progress_default


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=progress_default(),
                   help="show progress bars on stderr (default: when stderr is a terminal)")


def add_output_dir_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--output-dir``; ``--output``, its old spelling, still works."""
    p.add_argument("--output-dir", "--output", dest="output_dir", required=True, help=help_text)
