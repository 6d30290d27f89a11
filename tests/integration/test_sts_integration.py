"""The real offline model on the shared data: SentEval's number for all-MiniLM-L6-v2 + avg pooling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_stsb_test_avg_fp32_reproduces_senteval(mirror_env, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "simcse_lab", "eval", "--model", "all-MiniLM-L6-v2",
                           "--pooler", "avg", "--precision", "fp32", "--tasks", "stsb", "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["tasks"]["stsb"]["spearman"] == pytest.approx(82.03, abs=0.02)
    assert result["tasks"]["stsb"]["n"] == 1379
    assert {"model", "pooler", "precision", "split", "aggregate", "tasks", "avg", "seconds"} <= set(result)
    assert "STS-B" in proc.stdout


def test_corrupted_mirror_refused_by_cli(shared_data, tmp_path, monkeypatch):
    import shutil

    rel = "SentEval/data/downstream/STS/STSBenchmark/sts-test.csv"
    (tmp_path / rel).parent.mkdir(parents=True)
    text = (shared_data / rel).read_text().replace("2.500", "2.600", 1)
    (tmp_path / rel).write_text(text)
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "simcse_lab", "eval", "--tasks", "stsb", "--pooler", "avg"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "sts-test.csv: sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr
    shutil.rmtree(tmp_path / "SentEval")
