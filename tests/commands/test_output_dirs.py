"""Output directories: simcse-lab writes only into a directory it made, and --overwrite replaces only a previous
simcse-lab output of the same kind that holds nothing else and is not (and does not contain) the input. A
directory a run is writing into is locked: a second run into it is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from simcse_lab import io
from simcse_lab.cli import main
from simcse_lab.errors import UserError


def _corpus(path, n: int = 32):
    path.write_text("".join(f"a small cat number {i} sat on the red table\n" for i in range(n)))
    return path


def _train(model, data, out, *extra) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--max-steps", "2", "--batch-size", "8",
            "--max-seq-len", "16", "--eval-steps", "0", "--test-tasks", "none", "--no-progress", "--precision",
            "fp32", "--output-dir", str(out), *extra]


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def _snapshot(directory) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_train_refuses_a_directory_it_did_not_make(tmp_path, tiny_bert, capsys):
    user = tmp_path / "thesis"
    (user / "best").mkdir(parents=True)
    (user / "final").mkdir()
    (user / "best" / "my_model.bin").write_bytes(b"weights I trained for a week")
    (user / "final" / "thesis.tex").write_text("\\chapter{Results}")
    (user / "metrics.jsonl").write_text('{"mine": 1}\n')
    (user / "summary.json").write_text('{"mine": true}\n')
    before = _snapshot(user)
    code, err = _run(_train(tiny_bert, _corpus(tmp_path / "c.txt"), user), capsys)
    assert code == 2 and err.count("\n") == 1 and "not made by simcse-lab" in err
    assert _snapshot(user) == before


def test_train_marks_its_directory_and_resumes_in_it(tmp_path, tiny_bert, capsys):
    out, data = tmp_path / "run", _corpus(tmp_path / "c.txt")
    assert _run(_train(tiny_bert, data, out), capsys)[0] == 0
    assert io.read_marker(out)["kind"] == "train"
    code, err = _run(_train(tiny_bert, data, out), capsys)
    assert code == 2 and "pass --resume" in err  # the run's own guard, unchanged
    code, err = _run(_train(tiny_bert, data, out, "--resume"), capsys)
    assert code == 0, err
    assert (out / "checkpoints" / "step-0000002").is_dir() and (out / "final" / "modules.json").is_file()


def test_claim_output_dir_rules(tmp_path):
    assert io.claim_output_dir(tmp_path / "new", "train") == tmp_path / "new"
    assert io.claim_output_dir(tmp_path / "new", "train")  # idempotent (every rank calls it)
    with pytest.raises(UserError, match="holds a training run made by simcse-lab, not an index"):
        io.claim_output_dir(tmp_path / "new", "index")
    (tmp_path / "empty").mkdir()
    io.claim_output_dir(tmp_path / "empty", "analysis")
    assert io.read_marker(tmp_path / "empty")["kind"] == "analysis"
    legacy = tmp_path / "legacy-run"  # a training run of 0.1.0: no marker, recognised by its files
    (legacy / "checkpoints").mkdir(parents=True)
    (legacy / "train_config.json").write_text("{}\n")
    io.claim_output_dir(legacy, "train")
    assert io.read_marker(legacy)["kind"] == "train"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        io.claim_output_dir(tmp_path / "file", "train")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not made by simcse-lab"):
        io.claim_output_dir(tmp_path / "user", "train")
    assert not (tmp_path / "user" / io.MARKER).exists()


def test_analyze_refuses_a_directory_it_did_not_make(tmp_path, capsys):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "alignment": 0.1 * s, "uniformity": -s}) + "\n"
                               for s in range(1, 4)))
    user = tmp_path / "reports"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    code, err = _run(["analyze", "--trajectory", str(metrics), "--output-dir", str(user)], capsys)
    assert code == 2 and err.count("\n") == 1 and "not made by simcse-lab" in err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    assert _run(["analyze", "--trajectory", str(metrics), "--output-dir", str(tmp_path / "new")], capsys)[0] == 0
    assert _run(["analyze", "--trajectory", str(metrics), "--output-dir", str(tmp_path / "new")], capsys)[0] == 0


def test_export_overwrite_never_removes_the_source_or_user_files(tmp_path, tiny_bert, capsys):
    parent = tmp_path / "parent"
    shutil.copytree(tiny_bert, parent / "model")
    (parent / "notes.txt").write_text("my notes")
    before = _snapshot(parent)
    code, err = _run(["export", "--model", str(parent / "model"), "--format", "hf", "--pooler", "avg",
                      "--output", str(parent), "--overwrite"], capsys)
    assert code == 2 and err.count("\n") == 1 and "contains" in err
    code, err = _run(["export", "--model", str(parent / "model"), "--format", "hf", "--pooler", "avg",
                      "--output", str(parent / "model"), "--overwrite"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is " in err
    user = tmp_path / "userout"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    code, err = _run(["export", "--model", str(tiny_bert), "--format", "hf", "--pooler", "avg", "--output", str(user),
                      "--overwrite"], capsys)
    assert code == 2 and "not made by simcse-lab" in err
    assert _snapshot(parent) == before and (user / "notes.txt").read_text() == "mine"


def test_export_overwrite_replaces_a_previous_export_only(tmp_path, tiny_bert, capsys):
    out = tmp_path / "export"
    argv = ["export", "--model", str(tiny_bert), "--format", "hf", "--pooler", "avg", "--output", str(out)]
    assert _run(argv, capsys)[0] == 0
    marker = io.read_marker(out)
    assert marker["kind"] == "export" and "model.safetensors" in marker["files"]
    assert _run(argv + ["--overwrite"], capsys)[0] == 0
    (out / io.MARKER).unlink()  # an export of 0.1.0, recognised by its simcse_lab.json
    assert _run(argv + ["--overwrite"], capsys)[0] == 0
    (out / "my-results.csv").write_text("mine")  # the user added a file to it
    code, err = _run(argv + ["--overwrite"], capsys)
    assert code == 2 and "holds files simcse-lab did not write (my-results.csv)" in err
    assert (out / "my-results.csv").read_text() == "mine"
    index = tmp_path / "index"
    index.mkdir()
    io.write_marker(index, "index", files=[])
    code, err = _run(argv[:-1] + [str(index), "--overwrite"], capsys)
    assert code == 2 and "holds an index made by simcse-lab, not an export" in err


def test_index_overwrite_rules(tmp_path, tiny_bert, capsys):
    corpus = _corpus(tmp_path / "corpus.txt", 20)
    build = ["index", "build", "--model", str(tiny_bert), "--pooler", "avg", "--precision", "fp32", "--no-progress",
             "--corpus"]
    out = tmp_path / "ix"
    assert _run(build + [str(corpus), "--output", str(out)], capsys)[0] == 0
    assert io.read_marker(out)["files"] == ["index.faiss", "manifest.json", "texts.jsonl"]
    assert _run(build + [str(corpus), "--output", str(out), "--overwrite"], capsys)[0] == 0
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    code, err = _run(build + [str(corpus), "--output", str(user), "--overwrite"], capsys)
    assert code == 2 and "not made by simcse-lab" in err and (user / "notes.txt").read_text() == "mine"
    inside = tmp_path / "data"
    inside.mkdir()
    shutil.copy(corpus, inside / "corpus.txt")
    code, err = _run(build + [str(inside / "corpus.txt"), "--output", str(inside), "--overwrite"], capsys)
    assert code == 2 and "contains" in err and (inside / "corpus.txt").is_file()


def test_a_second_train_into_a_directory_in_use_is_refused_and_touches_nothing(tmp_path, tiny_bert, capsys):
    """The run writing into a directory holds its lock until it ends (here a process that claimed it and waits);
    a second run is refused in one line, before it touches anything, and the directory is free once it ends."""
    out, data = tmp_path / "run", _corpus(tmp_path / "c.txt")
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom simcse_lab import io\n"
                               "io.claim_output_dir(sys.argv[1], 'train', lock=True)\nprint('claimed', flush=True)\n"
                               "sys.stdin.readline()", str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "claimed\n"
        (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')  # what the first run has written so far
        before = _snapshot(out)
        code, err = _run(_train(tiny_bert, data, out), capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert f"{out}: another simcse-lab run is writing into it (process {holder.pid} on " in err
        assert _snapshot(out) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    io.claim_output_dir(out, "train", lock=True)  # the first run has ended: its lock with it
    io.release_output_dir(out)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "device"])
def test_a_lock_file_that_is_not_our_own_file_is_refused_and_what_it_names_is_untouched(tmp_path, kind):
    """Hostile review of issue 18: the lock was opened through links and truncated before any refusal, so a run
    directory from elsewhere whose .simcse-lab.lock linked to a user's file overwrote it with the holder's pid
    (a symlink, or a hard link even when the run was then refused); a FIFO or a device was a traceback."""
    import os

    out = io.claim_output_dir(tmp_path / "run", "train")
    victim = tmp_path / "thesis.txt"
    victim.write_text("precious thesis\n")
    lock = out / io.LOCK
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.symlink_to("/dev/null")
    with pytest.raises(UserError, match=r"\.simcse-lab\.lock: the run's lock file (is a symbolic link|is a hard link "
                                        r"to another file|is not a regular file); simcse-lab did not make it"):
        io.claim_output_dir(out, "train", lock=True)
    assert victim.read_text() == "precious thesis\n"
    assert str(out.resolve()) not in io._HELD


@pytest.mark.parametrize("kind", ["dangling", "to-a-file", "to-a-dir", "fifo", "hardlink"])
@pytest.mark.parametrize("step", [None, 2])
def test_a_metrics_file_that_is_not_our_own_is_refused_and_nothing_is_written_through_it(tmp_path, kind, step):
    """Re-review of issue 18: metrics.jsonl was opened with open(path, "a"), following links: a dangling link
    created a file outside the run directory, a FIFO hung the run, a link to a directory was a traceback."""
    import os

    from simcse_lab.training.run_state import MetricsLog

    out = io.claim_output_dir(tmp_path / "run", "train")
    path, elsewhere = out / "metrics.jsonl", tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "notes.txt"
    victim.write_text("mine\n")
    if kind == "dangling":
        path.symlink_to(elsewhere / "created.txt")
    elif kind == "to-a-file":
        path.symlink_to(victim)
    elif kind == "to-a-dir":
        path.symlink_to(elsewhere)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        os.link(victim, path)
    log = MetricsLog(path, main=True)
    with pytest.raises(UserError, match=r"metrics\.jsonl: the run's metrics (is a symbolic link|is not a regular "
                                        r"file|is a hard link to another file); simcse-lab did not make it"):
        log.keep_until(step)
    with pytest.raises(UserError, match="simcse-lab did not make it"):
        log.append({"step": 1})
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes.txt"] and victim.read_text() == "mine\n"


def test_the_metrics_file_is_written_and_cut_as_before(tmp_path):
    from simcse_lab.training.run_state import MetricsLog

    out = io.claim_output_dir(tmp_path / "run", "train")
    log = MetricsLog(out / "metrics.jsonl", main=True)
    log.keep_until(None)
    for step in (1, 2, 3):
        log.append({"step": step})
    log.keep_until(2)
    log.append({"step": 3, "again": True})
    assert [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] == [
        {"step": 1}, {"step": 2}, {"step": 3, "again": True}]
