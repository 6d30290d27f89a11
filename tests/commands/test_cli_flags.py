"""The CLI's flags mean the same in every sub-command: --output-dir (alias --output where it was the old
spelling) for directories, --progress/--no-progress with one default, pooler names checked."""

from __future__ import annotations

import pytest

from simcse_lab.cli import build_parser


def parse(argv: list[str]):
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize("argv", [
    ["export", "--model", "m", "--format", "hf"],
    ["index", "build", "--model", "m", "--corpus", "wiki"],
])
def test_directories_are_output_dir_and_the_old_spelling_still_works(argv):
    assert parse(argv + ["--output-dir", "d"]).output_dir == "d"
    assert parse(argv + ["--output", "d"]).output_dir == "d"


@pytest.mark.parametrize("argv", [
    ["eval"], ["analyze", "--output-dir", "d"], ["index", "build", "--model", "m", "--corpus", "c", "--output-dir", "d"],
])
def test_progress_flags_and_their_default(argv):
    assert parse(argv).progress is False  # stderr is not a terminal under pytest
    assert parse(argv + ["--progress"]).progress is True
    assert parse(argv + ["--no-progress"]).progress is False


def test_train_progress_follows_the_same_rule():
    from simcse_lab.training.config import load_config

    args = parse(["train", "--no-progress"])
    assert args.progress is False and load_config(None, {"progress": None}).progress is False


def test_search_pooler_is_checked(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["search", "--index", "i", "--query", "q", "--pooler", "mean"])
    assert exc.value.code == 2 and "invalid choice: 'mean'" in capsys.readouterr().err


def test_analyze_sts_tasks_and_the_old_whiten_spelling():
    argv = ["analyze", "--output-dir", "d"]
    assert parse(argv + ["--sts-tasks", "stsb,sickr", "--sts-split", "dev"]).sts_tasks == "stsb,sickr"
    old = parse(argv + ["--whiten-tasks", "sickr", "--whiten-split", "dev"])
    assert (old.sts_tasks, old.sts_split) == ("sickr", "dev")
