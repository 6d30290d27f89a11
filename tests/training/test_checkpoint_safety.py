"""Checkpoints are read with weights_only=True: a crafted state.pt cannot run code on --resume, a damaged
file (or one of the wrong shapes) is named in one line together with the older intact checkpoint, and the RNG
states still round-trip. A checkpoint writer never deletes another live writer's temporary directory. --resume
continues only the run's own settings and data (its content and columns), checked before the model loads."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import rewrite_state

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


# -- --resume against the run's settings, data and model: one line, before the model loads where it can be --
def _train(model, data, out, *extra) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--batch-size", "8", "--max-seq-len", "16",
            "--eval-steps", "0", "--test-tasks", "none", "--no-progress", "--precision", "fp32", "--lr", "1e-3",
            "--save-steps", "1", "--keep-checkpoints", "0", "--output-dir", str(out), *extra]


def _cli(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _refused(argv, capsys) -> str:
    code, _, err = _cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}




def _jsonl(path: Path, word: str) -> Path:
    path.write_text("".join(json.dumps({"a": f"{word} number {i} sat on the mat", "b": f"another {word} {i}"}) + "\n"
                            for i in range(32)))
    return path


def test_resume_refuses_other_data_under_the_same_name_before_the_model_loads(tmp_path, tiny_bert, capsys,
                                                                               monkeypatch):
    data, run = _jsonl(tmp_path / "j.jsonl", "cat"), tmp_path / "run"
    argv = _train(tiny_bert, data, run, "--max-steps", "3")
    assert _cli([*argv, "--columns", "a"], capsys)[0] == 0
    shutil.rmtree(run / "checkpoints" / "step-0000003")  # as if killed after step 2: --resume continues from there
    original, before = data.read_bytes(), _snapshot(run)
    with monkeypatch.context() as m:
        # loading the model to train is a test failure: what --resume checks must come first
        m.setattr("simcse_lab.training.loop.load_embedder", lambda *a, **k: pytest.fail("the model was loaded"))
        err = _refused([*argv, "--columns", "b", "--resume"], capsys)
        assert "step-0000002: --resume with changed columns (saved: columns=['a'])" in err
        _jsonl(data, "dog")  # other sentences under the same name
        err = _refused([*argv, "--columns", "a", "--resume"], capsys)
        assert "step-0000002: --resume with changed data content" in err and "use another --output-dir" in err
        data.write_bytes(original)
        err = _refused([*argv, "--columns", "a", "--batch-size", "4", "--resume"], capsys)
        assert "--resume with changed batch_size (saved: batch_size=8)" in err
    assert _snapshot(run) == before  # refused before anything in the run was touched
    # the same data again (the name, the content, the columns): it continues, and records what it trained on
    assert _cli([*argv, "--columns", "a", "--resume"], capsys)[0] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["steps_this_run"] == 1
    assert summary["data"]["columns"] == ["a"] and len(summary["data"]["fingerprint"]) == 64
    assert "recorded_from_step" not in summary["data"]

    # a checkpoint of a version that did not record its data: continued, saying what could not be checked
    shutil.rmtree(run / "checkpoints" / "step-0000003")
    rewrite_state(run / "checkpoints" / "step-0000002", lambda state: state["summary"].pop("data"))
    code, out, err = _cli([*argv, "--columns", "a", "--resume"], capsys)
    assert code == 0, err
    assert "does not record what its data held" in out and "only the name" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"]["recorded_from_step"] == 2 and summary["data"]["columns"] == ["a"]


def test_wrongly_shaped_tensors_are_named_with_the_older_intact_checkpoint(tmp_path, tiny_bert, capsys):
    data, run = _jsonl(tmp_path / "j.jsonl", "cat"), tmp_path / "run"
    argv = _train(tiny_bert, data, run, "--max-steps", "3", "--columns", "a")
    assert _cli(argv, capsys)[0] == 0
    shutil.rmtree(run / "checkpoints" / "step-0000003")
    latest = run / "checkpoints" / "step-0000002"
    good = (latest / "state.pt").read_bytes(), (latest / "checksums.json").read_bytes()
    key = "backbone.embeddings.word_embeddings.weight"
    rewrite_state(latest, lambda state: state["model"].__setitem__(key, torch.zeros(10, 3)))
    err = _refused([*argv, "--resume"], capsys)
    assert f"{latest / 'state.pt'}: tensor {key!r} has shape [10, 3]" in err
    assert f"the older checkpoint {run / 'checkpoints' / 'step-0000001'} is intact" in err
    (latest / "state.pt").write_bytes(good[0])
    (latest / "checksums.json").write_bytes(good[1])
    rewrite_state(latest, lambda state: state["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(2)))
    err = _refused([*argv, "--resume"], capsys)
    assert f"{latest / 'state.pt'}: the optimizer state of parameter 0 tensor 'exp_avg' has shape [2]" in err


@pytest.mark.parametrize("change, problem", [
    (lambda s: s.__setitem__("exp_avg", torch.zeros(2)), "tensor 'exp_avg' has shape [2], the parameter's has [2, 3]"),
    (lambda s: s.pop("exp_avg_sq"), "lacks 'exp_avg_sq'"),
    (lambda s: s.__setitem__("step", torch.zeros(5)), "'step' is not one number")])
def test_an_optimizer_state_that_does_not_fit_its_parameters_is_refused(tmp_path, change, problem):
    """Fused AdamW with a moment smaller than its parameter reads and writes out of bounds (a segfault here)."""
    from simcse_lab.training.run_state import check_optimizer_state

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    check_optimizer_state(tmp_path, optimizer)  # its own state fits
    change(saved["state"][0])
    optimizer.load_state_dict(saved)
    with pytest.raises(UserError, match=f"state.pt: the optimizer state of parameter 0 {re.escape(problem)}"):
        check_optimizer_state(tmp_path, optimizer)
