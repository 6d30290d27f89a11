"""Training precision through accelerate: the mapping of --precision and the launcher's
ACCELERATE_MIXED_PRECISION onto Accelerator(mixed_precision=...) for every device (pure, so the CUDA and fp16
cases run here without a GPU), and bf16 / fp32 training end to end on this CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import random_sentences, write_lines

from simcse_lab.errors import UserError
from simcse_lab.runtime.precision import ACCELERATE_NAMES, choose_training_precision, launcher_precision


@pytest.mark.parametrize("requested, device, native, expected", [
    ("auto", "cuda", True, "bf16"),    # Ampere and newer
    ("auto", "cuda", False, "fp16"),   # V100 / T4: no bf16, fp16 with gradient scaling
    ("auto", "cpu", True, "bf16"),     # AMX / AVX512-BF16
    ("auto", "cpu", False, "fp32"),
    ("fp32", "cuda", True, "fp32"),
    ("fp16", "cuda", True, "fp16"),
    ("fp16", "cuda", False, "fp16"),
    ("bf16", "cuda", True, "bf16"),
    ("bf16", "cpu", False, "bf16"),    # slow without native bf16, but what was asked for
    ("fp32", "cpu", True, "fp32"),
])
def test_requested_precision_without_a_launcher(requested, device, native, expected):
    assert choose_training_precision(requested, None, device, native) == expected


@pytest.mark.parametrize("requested, launcher, device, native, expected", [
    ("auto", "fp16", "cuda", True, "fp16"),   # the launcher's choice beats auto's bf16
    ("auto", "bf16", "cuda", True, "bf16"),
    ("auto", "bf16", "cpu", False, "bf16"),
    ("fp16", "fp16", "cuda", False, "fp16"),  # the same in both: fine
    ("bf16", "bf16", "cpu", True, "bf16"),
])
def test_the_launchers_precision_is_honoured(requested, launcher, device, native, expected):
    assert choose_training_precision(requested, launcher, device, native) == expected


@pytest.mark.parametrize("requested, launcher, device, native, message", [
    ("fp32", "bf16", "cpu", True, "--precision fp32 conflicts with accelerate's mixed precision bf16"),
    ("bf16", "fp16", "cuda", True, "--precision bf16 conflicts with accelerate's mixed precision fp16"),
    ("fp16", None, "cpu", True, "fp16 training needs a CUDA GPU"),
    ("auto", "fp16", "cpu", True, "fp16 training needs a CUDA GPU"),
    ("bf16", None, "cuda", False, "bf16 training needs a GPU with bf16"),
    ("fp64", None, "cpu", True, "unknown precision 'fp64'"),
])
def test_impossible_or_conflicting_precisions_are_one_line(requested, launcher, device, native, message):
    with pytest.raises(UserError) as err:
        choose_training_precision(requested, launcher, device, native)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value, expected", [(None, None), ("no", None), ("NO", None), ("", None),
                                             ("bf16", "bf16"), ("fp16", "fp16"), (" BF16 ", "bf16")])
def test_launcher_environment(value, expected):
    environ = {} if value is None else {"ACCELERATE_MIXED_PRECISION": value}
    assert launcher_precision(environ) == expected


@pytest.mark.parametrize("value, message", [("fp8", "simcse-lab trains in fp32, bf16 or fp16"),
                                            ("fp4", "is not a mixed precision accelerate knows")])
def test_launcher_values_we_cannot_train_in(value, message):
    with pytest.raises(UserError, match=message):
        launcher_precision({"ACCELERATE_MIXED_PRECISION": value})


def test_our_names_are_accelerates():
    from accelerate.utils import PrecisionType

    assert set(ACCELERATE_NAMES.values()) <= {str(p.value) for p in PrecisionType}


def _args(tmp_path, tiny_bert, out, *extra) -> list[str]:
    data = tmp_path / "corpus.txt"
    if not data.exists():
        write_lines(data, random_sentences(48))
    return ["train", "--model", str(tiny_bert), "--data", str(data), "--pooler", "avg", "--max-steps", "3",
            "--batch-size", "8", "--max-seq-len", "16", "--lr", "1e-3", "--eval-steps", "0", "--test-tasks", "none",
            "--log-steps", "1", "--no-progress", "--output-dir", str(tmp_path / out), *extra]


def _subprocess(args: list[str], env: dict):
    environ = {k: v for k, v in os.environ.items() if k != "ACCELERATE_MIXED_PRECISION"}
    environ.update({"CUDA_VISIBLE_DEVICES": "", **env})
    return subprocess.run([sys.executable, "-m", "simcse_lab", *args], capture_output=True, text=True, env=environ,
                          timeout=600)


def _in_process(args: list[str], capsys) -> tuple[int, str]:
    from simcse_lab.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_bf16_and_fp32_train_end_to_end_through_accelerate(tmp_path, tiny_bert, capsys, monkeypatch):
    """bf16 given as --precision and as the launcher's variable (what accelerate launch --mixed_precision bf16
    sets): both train in bf16, and equally; fp32 differs from them. (bf16 runs in fresh processes: accelerate's
    state is one per process, and this one trains in fp32.)"""
    flag = _subprocess(_args(tmp_path, tiny_bert, "flag", "--precision", "bf16"), {})
    assert flag.returncode == 0, flag.stderr[-2000:]
    launcher = _subprocess(_args(tmp_path, tiny_bert, "launcher"), {"ACCELERATE_MIXED_PRECISION": "bf16"})
    assert launcher.returncode == 0, launcher.stderr[-2000:]
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert _in_process(_args(tmp_path, tiny_bert, "fp32", "--precision", "fp32"), capsys)[0] == 0
    summaries = {n: json.loads((tmp_path / n / "summary.json").read_text()) for n in ("flag", "launcher", "fp32")}
    assert [summaries[n]["precision"] for n in ("flag", "launcher", "fp32")] == ["bf16", "bf16", "fp32"]
    assert _losses(tmp_path / "flag") == _losses(tmp_path / "launcher")
    assert _losses(tmp_path / "flag") != _losses(tmp_path / "fp32")  # bf16 really computed in bf16


def test_a_conflict_or_an_impossible_precision_stops_before_any_work(tmp_path, tiny_bert, capsys, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    code, err = _in_process(_args(tmp_path, tiny_bert, "conflict", "--precision", "fp32"), capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "--precision fp32 conflicts with accelerate's mixed precision bf16" in err
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    code, err = _in_process(_args(tmp_path, tiny_bert, "fp16", "--precision", "fp16"), capsys)
    assert code == 2 and err.count("\n") == 1 and "fp16 training needs a CUDA GPU" in err
    assert not (tmp_path / "conflict").exists() and not (tmp_path / "fp16").exists()
