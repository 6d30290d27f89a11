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


def add_template_flags(p: argparse.ArgumentParser) -> None:
    """``--template`` and ``--template-denoise`` / ``--no-template-denoise`` (PromptBERT's input template)."""
    p.add_argument("--template", default=None,
                   help="embed each sentence inside this template, read at its mask token with --pooler mask "
                        "(PromptBERT), e.g. 'This sentence : \"{sentence}\" means [MASK] .' (the tokenizer's mask "
                        "token, or {mask}); default: the one saved with the model, if any")
    p.add_argument("--template-denoise", action=argparse.BooleanOptionalAction, default=None,
                   help="subtract the template's own mask-token state for the sentence's length (PromptBERT's "
                        "template denoising); default: as the model was saved, off with a --template given here")


def check_template_flags(model: str, pooler: str | None, template: str | None) -> None:
    """The template flags against ``model``'s saved recipe, before anything loads: a template without a sentence slot
    or a mask, ``--pooler mask`` with no template given or saved, are one line each."""
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.template import check_template_text

    if template:
        check_template_text(template)
    if pooler == "mask" and not template:
        import os

        from simcse_lab.modeling.lora import saved_recipe
        from simcse_lab.modeling.resolve import resolve_model

        path = resolve_model(model)
        recipe = saved_recipe(path) if os.path.isdir(path) else None
        if recipe is None or not recipe.template:
            raise UserError(f"--pooler mask reads the state at a template's mask token, and {model} has no saved "
                            f"template: give --template 'This sentence : \"{{sentence}}\" means [MASK] .'")


def add_output_dir_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--output-dir``; ``--output``, its old spelling, still works."""
    p.add_argument("--output-dir", "--output", dest="output_dir", required=True, help=help_text)
