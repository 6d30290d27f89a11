"""Commands: one module per `simcse-lab` sub-command, with add_arguments(parser) and run(args); flags:
--output-dir writes a directory, --output a file, --progress/--no-progress (default: stderr is a terminal).
Tests: tests/commands/test_cli_flags.py, tests/commands/test_cli_validation.py, tests/commands/test_output_dirs.py, tests/analysis/test_analyze.py, tests/export/test_export.py, tests/search/test_index.py, tests/integration/test_train_loop.py,
tests/training/test_trajectory.py, tests/analysis/test_eval_post_hoc.py, tests/evaluation/test_transfer.py, tests/evaluation/test_mteb.py, tests/evaluation/test_compare.py."""

from __future__ import annotations

import argparse

from simcse_lab.runtime.progress import progress_default


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=progress_default(),
                   help="show progress bars on stderr (default: when stderr is a terminal)")


def add_bidirectional_flag(p: argparse.ArgumentParser) -> None:
    """``--bidirectional`` / ``--no-bidirectional`` for a decoder LLM (default: as the model's saved recipe says,
    else causal as shipped)."""
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="decoder LLMs: attend bidirectionally (LLM2Vec) or causally (--no-bidirectional); default: "
                        "as the model was trained (its simcse_lab_recipe.json), else causal as shipped")


def add_output_dir_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--output-dir``; ``--output``, its old spelling, still works."""
    p.add_argument("--output-dir", "--output", dest="output_dir", required=True, help=help_text)
