"""Model resolution (modeling.resolve): alias, model directory, training run directory (best/, else
final/, with its summary.json), hub id; a directory holding both a model and an adapter refused; and a bad spec
is one line, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simcse_lab.errors import UserError
from simcse_lab.modeling.resolve import resolve, resolve_model


def model_dir(path):
    path.mkdir(parents=True)
    (path / "modules.json").write_text(json.dumps([]))
    return path


def test_run_directory_stands_for_best_then_final(tmp_path):
    run = tmp_path / "run"
    model_dir(run / "final")
    (run / "summary.json").write_text("{}")
    assert resolve(str(run)).path == str(run / "final") and resolve(str(run)).summary == run / "summary.json"
    model_dir(run / "best")
    assert resolve_model(str(run)) == str(run / "best")
    assert resolve(str(run / "best")).summary is None  # a model directory itself brings no run summary


def test_aliases_directories_and_hub_ids(tmp_path):
    assert (Path(resolve_model("all-MiniLM-L6-v2")) / "modules.json").is_file()  # the offline package
    plain = tmp_path / "hf"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    assert resolve_model(str(plain)) == str(plain)
    assert resolve_model("org/some-model") == "org/some-model"  # a hub id, left to transformers
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a model directory .* and not a training run"):
        resolve(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such model directory, and not a hub id"):
        resolve(str(tmp_path / "missing"))


def test_cli_error_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("ok\n\n")
    # a model that is not a directory nor a hub id -> one line, exit 2, no traceback
    proc = subprocess.run([sys.executable, "-m", "simcse_lab", "eval", "--model", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "a model must be a directory" in proc.stderr


@pytest.mark.parametrize("model_file", ["config.json", "modules.json"])
def test_a_directory_with_both_a_model_and_an_adapter_is_refused(tmp_path, model_file, capsys):
    """Which would embed (the adapter on the base it names, or the model beside it) would be a guess: one line,
    for the directory and for a run whose best/ is such a directory; nothing else is read."""
    from conftest import one_line_refusal

    both = tmp_path / "run" / "best"
    both.mkdir(parents=True)
    (both / model_file).write_text("{}")
    (both / "adapter_config.json").write_text("{}")
    for spec in (both, tmp_path / "run"):
        with pytest.raises(UserError, match=f"holds both a model \\({model_file}\\) and a peft adapter "
                                            r"\(adapter_config.json\), so what embeds is ambiguous"):
            resolve(str(spec))
    assert "keep the adapter in a directory of its own" in one_line_refusal(
        ["eval", "--model", str(tmp_path / "run"), "--tasks", "stsb"], capsys)
