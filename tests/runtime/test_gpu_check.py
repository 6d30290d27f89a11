"""eval/gpu_check.py without a GPU: its CPU plumbing runs end to end on a tiny model and a toy registry (every
check group runs, in this process, in seconds), says that no GPU was found, SKIPs every GPU check and reports
no GPU number; bad arguments are one line (exit 2) before any work."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import PROJECT, random_sentences, write_lines

sys.path.insert(0, str(PROJECT / "eval"))
import gpu_check  # noqa: E402


@pytest.fixture
def toy_sets(tmp_path, monkeypatch):
    """A registry whose ``wiki``, ``nli`` and ``toysts`` are a few toy lines (what the check reads by name)."""
    from simcse_lab.data import registry

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_lines(mirror / "wiki.txt", random_sentences(64, seed=1))
    triplets = random_sentences(120, seed=2)
    write_lines(mirror / "nli.csv", ["sent0,sent1,hard_neg"] + [",".join(triplets[i:i + 3]) for i in range(0, 120, 3)])
    pairs, scores = random_sentences(48, seed=3), np.random.default_rng(4).uniform(0, 5, 24)
    write_lines(mirror / "sts.csv", [f"main-news\theadlines\t2013\t{i:04d}\t{scores[i]:.3f}\t{pairs[2 * i]}\t"
                                     f"{pairs[2 * i + 1]}" for i in range(24)])
    sha = {name: registry.sha256_file(mirror / name) for name in ("wiki.txt", "nli.csv", "sts.csv")}

    def entry(kind, split, name):
        return {"description": "toy", "kind": kind, "license": "test", "url": None, "offline_note": "fixture",
                "splits": {split: {"path": name}}, "files": {name: sha[name]}}

    manifest = {"format": 1, "datasets": {"wiki": entry("text", "train", "wiki.txt"),
                                          "nli": entry("nli_csv", "train", "nli.csv"),
                                          "toysts": entry("stsb_csv", "test", "sts.csv")}}
    (tmp_path / "registry.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(registry, "MANIFEST", tmp_path / "registry.json")
    registry.manifest.cache_clear()
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(mirror))
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")  # what --dry-run sets, put back afterwards
    yield tmp_path
    registry.manifest.cache_clear()


def test_the_cpu_plumbing_runs_and_says_no_gpu(toy_sets, tiny_bert, capsys):
    out = toy_sets / "report.json"
    code = gpu_check.main(["--dry-run", "--model", str(tiny_bert), "--sts-tasks", "toysts", "--output", str(out),
                           "--work-dir", str(toy_sets)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 0, [c for c in report["checks"] if c["status"] == "FAIL"]
    # honest about the GPU: none used, every GPU check skipped, nothing labelled a GPU result
    assert "NO GPU: --dry-run" in printed and "no GPU was used: nothing here is a GPU result" in printed
    assert report["ran_on_gpu"] is False and report["gpu"] is None and report["mode"] == "cpu-dry-run"
    assert [n for n, s in statuses.items() if s == "SKIP"] == list(gpu_check.GPU_CHECKS) == report["skipped"]
    assert not any("[gpu]" in line for line in report["lines"])
    assert all("cpu" in line for line in report["lines"] if line.startswith("INFO") and "ratio" in line)
    # every group ran its CPU plumbing and passed (the printed lines are the JSON's)
    assert report["lines"] == [line for line in printed.splitlines() if not line.startswith("wrote ")]
    for name in ("train unsup fp32 [cpu plumbing]", "train sup fp32 [cpu plumbing]", "resume unsup fp32 [cpu plumbing]",
                 "resume sup fp32 [cpu plumbing]", "matmul peak measured [cpu plumbing, not a GPU number]",
                 "STS bf16 vs fp32 [cpu plumbing, no threshold]",
                 "encode: simcse-lab's vectors == SentenceTransformer.encode's (fp32)",
                 "training speed measured [cpu plumbing, not a GPU number]"):
        assert statuses.get(name) == "PASS", (name, statuses)
    mini = [c for c in report["checks"] if c["name"].startswith(("mini-batch gradients", "--mini-batch-size"))]
    assert [c["status"] for c in mini] == ["PASS", "PASS"] and mini[0]["other_draw_rel_diff"] > 1e-3
    assert not any(c["status"] == "FAIL" for c in report["checks"]) and report["passed"] is True
    assert report["encode"]["device"] == report["train_speed"]["device"] == "cpu"
    assert not list(toy_sets.glob("gpu-check-*"))  # its runs' directory is removed


def test_a_failing_check_fails_the_command(toy_sets, tiny_bert, monkeypatch, capsys):
    """A check group that breaks is a FAIL line and exit 1, and the other groups still run."""
    def broken(ctx):
        raise RuntimeError("planted")

    for name in ("check_training", "check_mini_batches", "check_encode_speed", "check_train_speed"):
        monkeypatch.setattr(gpu_check, name, lambda ctx: None)
    monkeypatch.setattr(gpu_check, "check_matmul", broken)
    out = toy_sets / "report.json"
    code = gpu_check.main(["--dry-run", "--model", str(tiny_bert), "--sts-tasks", "toysts", "--output", str(out)])
    report = json.loads(out.read_text())
    assert code == 1 and report["passed"] is False and report["failed"] == ["matmul peak"]
    assert "FAIL matmul peak: raised RuntimeError: planted" in capsys.readouterr().out
    assert any(c["name"].startswith("STS bf16") and c["status"] == "PASS" for c in report["checks"])


@pytest.mark.parametrize("argv, message", [
    (["--budget-s", "0"], "--budget-s must be > 0"),
    (["--output", "/"], "names a directory"),
    (["--model", "/no/such/model"], "no such model directory"),
    (["--only", "training,speed"], "unknown group(s) speed; choose from matmul,training,"),
])
def test_bad_arguments_are_one_line_before_any_work(tmp_path, argv, message, capsys, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")  # what --dry-run sets, put back afterwards
    code = gpu_check.main(["--dry-run", "--work-dir", str(tmp_path), *argv])
    err = capsys.readouterr()
    assert code == 2 and message in err.err and err.err.count("\n") == 1 and err.out == ""
    assert not list(tmp_path.iterdir())  # no runs directory was made


def test_the_rewritten_scale_is_a_checkpoint_the_resume_accepts(tmp_path):
    """The fp16 check's rewrite (GPU-only otherwise): state.pt gets the new scale and checksums.json its new
    sha256, so --resume loads it; a rewrite that left the checksum stale would be refused as damaged."""
    from types import SimpleNamespace

    import torch

    from simcse_lab.errors import UserError
    from simcse_lab.training.checkpoint import STATE_KEYS, load_checkpoint, save_checkpoint

    accelerator = SimpleNamespace(is_main_process=True, process_index=0, wait_for_everyone=lambda: None)
    state = {**{k: {} for k in STATE_KEYS}, "step": 3, "best": 0.0, "best_step": None,
             "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                        "_growth_tracker": 3}}
    ckpt = save_checkpoint(tmp_path, 3, state, accelerator)
    gpu_check.rewrite_scale(tmp_path, 3, gpu_check.INJECTED_SCALE)
    loaded, _ = load_checkpoint(ckpt, 0)
    assert loaded["scaler"] == {**state["scaler"], "scale": gpu_check.INJECTED_SCALE}
    saved = torch.load(ckpt / "state.pt", weights_only=True)
    saved["scaler"]["scale"] = 1.0  # the same edit without the checksum: refused
    torch.save(saved, ckpt / "state.pt")
    with pytest.raises(UserError, match="sha256 differs"):
        load_checkpoint(ckpt, 0)
