"""Checkpoints are read with weights_only=True: a crafted state.pt cannot run code on --resume, a damaged
file is named in one line together with the older intact checkpoint, and the RNG states still round-trip. A
checkpoint writer never deletes another live writer's temporary directory."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from simcse_lab import io
from simcse_lab.cli import main
from simcse_lab.errors import UserError
from simcse_lab.io import sha256_file
from simcse_lab.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state


class _Accelerator:
    """What save_checkpoint needs of accelerate's Accelerator, for one process."""

    is_main_process = True
    process_index = 0

    def wait_for_everyone(self) -> None:
        pass


class _RunsCode:
    """Unpickling this runs a shell command: what a hostile checkpoint would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def _state(step: int) -> dict:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": {"last_epoch": step},
            "step": step, "best": -float("inf"), "best_step": None, "summary": {"config": {"seed": 1}}}


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, tiny_bert, capsys):
    run = tmp_path / "shared-run"
    step = run / "checkpoints" / "step-0000002"
    step.mkdir(parents=True)
    (run / "train_config.json").write_text("{}\n")
    pwned = tmp_path / "PWNED"
    torch.save({"summary": _RunsCode(pwned)}, step / "state.pt")
    torch.save({"x": 1}, step / "rng-0.pt")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"sentence number {i} about a cat\n" for i in range(32)))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", str(tiny_bert), "--data", str(corpus), "--max-steps", "4", "--batch-size", "8",
              "--eval-steps", "0", "--test-tasks", "none", "--no-progress", "--precision", "fp32",
              "--output-dir", str(run), "--resume"])
    err = capsys.readouterr().err
    assert not pwned.exists(), "unpickling the checkpoint ran code"
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(step / "state.pt") in err and "refusing to load" in err


def test_checkpoint_files_load_weights_only_and_restore_the_rngs(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved = _state(2)
    ckpt = save_checkpoint(tmp_path, 2, saved, _Accelerator())
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    for name in ("state.pt", "rng-0.pt"):
        torch.load(ckpt / name, weights_only=True)  # no pickled Python objects at all
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    state, rng = load_checkpoint(latest_checkpoint(tmp_path), 0)
    assert state["step"] == 2 and state["summary"] == {"config": {"seed": 1}}
    assert torch.equal(state["model"]["weight"], saved["model"]["weight"])
    set_rng_state(rng)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_a_damaged_latest_checkpoint_names_the_file_and_the_older_intact_one(tmp_path):
    save_checkpoint(tmp_path, 2, _state(2), _Accelerator())
    latest = save_checkpoint(tmp_path, 4, _state(4), _Accelerator())
    _flip_byte(latest / "rng-0.pt")
    with pytest.raises(UserError) as exc:
        load_checkpoint(latest, 0)
    message = str(exc.value)
    assert "\n" not in message and str(latest / "rng-0.pt") in message
    assert f"older checkpoint {tmp_path / 'checkpoints' / 'step-0000002'} is intact" in message
    _flip_byte(tmp_path / "checkpoints" / "step-0000002" / "state.pt")
    with pytest.raises(UserError, match="no older intact checkpoint"):
        load_checkpoint(latest, 0)


def test_a_state_of_the_wrong_structure_is_refused_by_name(tmp_path):
    ckpt = save_checkpoint(tmp_path, 2, _state(2), _Accelerator())
    (ckpt / "checksums.json").unlink()  # as a 0.1.0 checkpoint, which had none
    torch.save({"model": 1}, ckpt / "state.pt")
    with pytest.raises(UserError, match=r"state\.pt: not a simcse-lab training state"):
        load_checkpoint(ckpt, 0)
    torch.save(_state(2), ckpt / "state.pt")
    torch.save({"python": "garbage"}, ckpt / "rng-0.pt")
    with pytest.raises(UserError, match=r"rng-0\.pt: not a simcse-lab RNG state"):
        load_checkpoint(ckpt, 0)


def test_rng_files_of_simcse_lab_0_1_0_still_resume(tmp_path):
    """0.1.0 pickled numpy's state tuple (an ndarray); exactly those numpy types are allowed for RNG files."""
    ckpt = tmp_path / "checkpoints" / "step-0000002"
    ckpt.mkdir(parents=True)
    torch.save(_state(2), ckpt / "state.pt")
    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                "cuda": None}, ckpt / "rng-0.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    _, rng = load_checkpoint(ckpt, 0)
    set_rng_state(rng)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_a_state_pt_that_is_not_a_torch_file_is_said_to_be_so(tmp_path):
    ckpt = save_checkpoint(tmp_path, 2, _state(2), _Accelerator())
    for content in (b"these are my notes, not a checkpoint\n", b""):
        (ckpt / "state.pt").write_bytes(content)
        (ckpt / "checksums.json").write_text(json.dumps({"state.pt": sha256_file(ckpt / "state.pt"),
                                                         "rng-0.pt": sha256_file(ckpt / "rng-0.pt")}))
        with pytest.raises(UserError) as exc:
            load_checkpoint(ckpt, 0)
        message = str(exc.value)
        assert f"{ckpt / 'state.pt'}: not a torch checkpoint" in message and "run code" not in message, message


def test_checkpoint_writes_leave_another_live_process_temporary_directory_alone(tmp_path):
    """Two writers of one checkpoints/ (the lock of the run directory is the first guard): the temporary
    directory of a live process is its own, only a dead process's leftovers (of this host) are cleaned."""
    script = textwrap.dedent("""
        import sys
        import torch
        from simcse_lab.training.checkpoint import save_checkpoint

        class Paused:  # stops at the first barrier, with its temporary directory made, until told to go on
            is_main_process, process_index, calls = True, 0, 0

            def wait_for_everyone(self):
                self.calls += 1
                if self.calls == 1:
                    print("paused", flush=True)
                    sys.stdin.readline()

        state = {"model": {"w": torch.ones(3)}, "optimizer": {}, "scheduler": {}, "step": 2, "best": 0.0,
                 "best_step": None, "summary": {}}
        save_checkpoint(sys.argv[1], 2, state, Paused())
    """)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "checkpoints" / f".step-0000009.tmp-{dead.pid}-{io._host()}-abcd"
    stale.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "paused\n"
        save_checkpoint(tmp_path, 4, _state(4), _Accelerator())  # cleans the leftovers of killed writers first
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0, "the other writer lost its temporary directory"
    finally:
        if writer.poll() is None:
            writer.kill()
    assert not stale.exists(), "a dead writer's leftover was kept"
    state, _ = load_checkpoint(tmp_path / "checkpoints" / "step-0000002", 0)
    assert torch.equal(state["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
