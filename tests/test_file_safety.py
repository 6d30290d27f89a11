"""Files and directories as simcse-lab leaves them: with the umask's permissions (a replaced file keeps its
mode), fsynced before the rename, and a killed run's leftovers repaired by the next run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simcse_lab import io

PROJECT = Path(__file__).resolve().parents[1]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test; restored after."""
    saved = os.umask(0o022)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_files_and_directories_honour_the_umask(tmp_path, umask, mask):
    umask(mask)
    io.write_json(tmp_path / "summary.json", {"a": 1})
    assert mode(tmp_path / "summary.json") == 0o666 & ~mask
    tmp = io.make_temp_dir(tmp_path / "out")
    (tmp / "sub").mkdir()
    (tmp / "sub" / "weights.bin").write_bytes(b"x")
    os.chmod(tmp / "sub" / "weights.bin", 0o600)  # as safetensors writes its files
    io.replace_dir_atomically(tmp, tmp_path / "out")
    out = tmp_path / "out"
    assert (mode(out), mode(out / "sub"), mode(out / "sub" / "weights.bin")) == \
        (0o777 & ~mask, 0o777 & ~mask, 0o666 & ~mask)


def test_a_replaced_file_or_directory_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "results.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    io.write_json(path, {"b": 2})
    assert mode(path) == 0o640 and path.read_text() == '{\n  "b": 2\n}\n'
    (tmp_path / "out").mkdir()
    os.chmod(tmp_path / "out", 0o750)
    io.replace_dir_atomically(io.make_temp_dir(tmp_path / "out"), tmp_path / "out")
    assert mode(tmp_path / "out") == 0o750


def test_an_export_is_readable_by_others_under_umask_022(tiny_bert, tmp_path, umask):
    from simcse_lab.export.formats import export

    export(str(tiny_bert), "hf", tmp_path / "export", pooler="avg")
    modes = {p.name: mode(p) for p in [tmp_path / "export", *(tmp_path / "export").iterdir()]}
    assert modes.pop("export") == 0o755 and set(modes.values()) == {0o644}, modes


def test_files_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b))[1])
    io.write_text(tmp_path / "a.txt", "hello")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / ".a.txt.tmp-")) and events[2][1] == str(tmp_path)


def _killed(script: str, *args) -> None:
    """Run ``script`` in a child that SIGKILLs itself where the script says; it must die of it."""
    code = textwrap.dedent(script)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)}, timeout=60)
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_a_kill_between_the_two_renames_is_repaired_by_the_next_run(tmp_path):
    run = io.claim_output_dir(tmp_path / "run", "train")
    (run / "best").mkdir()
    (run / "best" / "model.txt").write_text("the best model so far")
    # where the one-step swap is unavailable, the replace is two renames: a kill between them leaves no best/
    _killed("""
        import os, signal, sys
        from pathlib import Path
        from simcse_lab import io
        io._exchange = lambda a, b: False
        target = Path(sys.argv[1])
        tmp = io.make_temp_dir(target)
        (tmp / "model.txt").write_text("a newer model")
        real = os.replace
        def replace(a, b):
            real(a, b)
            os.kill(os.getpid(), signal.SIGKILL)  # right after the old best/ is set aside
        os.replace = replace
        io.replace_dir_atomically(tmp, target)
        """, run / "best")
    assert not (run / "best").exists()
    assert [p.name.split("-")[0] for p in sorted(run.iterdir()) if p.name.startswith(".best.")] == \
        [".best.old", ".best.tmp"]
    io.claim_output_dir(run, "train")  # what the next `train --resume` does first
    assert (run / "best" / "model.txt").read_text() == "the best model so far"
    assert not [p for p in run.iterdir() if p.name.startswith(".best.")]


def test_temporary_files_of_killed_runs_are_cleaned_and_live_ones_kept(tmp_path):
    _killed("""
        import os, signal, sys
        from pathlib import Path
        from simcse_lab import io
        parent = Path(sys.argv[1])
        io.make_temp_dir(parent / "export")
        with io.atomic_path(parent / "summary.json") as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
        """, tmp_path)
    left = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert left == [".export.tmp", ".summary.json.tmp"]
    mine = io.make_temp_dir(tmp_path / "export")  # this process is alive: its directory must survive
    io.write_json(tmp_path / "summary.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "summary.json"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = "0" * 8 if io._host() != "0" * 8 else "1" * 8
    other = tmp_path / f".notes.txt.tmp-{dead.pid}-{host}-x"  # a dead process of another host: not ours to judge
    other.write_text("x")
    io.write_text(tmp_path / "notes.txt", "y")
    assert other.exists()


def test_replacing_a_directory_leaves_nothing_behind(tmp_path):
    target = tmp_path / "index"
    for text in ("first", "second"):
        tmp = io.make_temp_dir(target)
        (tmp / "data.txt").write_text(text)
        io.replace_dir_atomically(tmp, target)
    assert (target / "data.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_best_dir_set_aside_by_0_1_0_is_restored(tmp_path):
    """0.1.0 named the set-aside copy .NAME.old-PID; a kill left only that copy, which nothing restored."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "train_config.json").write_text("{}\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run / f".best.old-{dead.pid}").mkdir()
    (run / f".best.old-{dead.pid}" / "model.txt").write_text("best")
    (run / f".notes.old-{dead.pid}").write_text("a file of the user's with a look-alike name")
    io.claim_output_dir(run, "train")
    assert (run / "best" / "model.txt").read_text() == "best"
    assert (run / f".notes.old-{dead.pid}").is_file()
