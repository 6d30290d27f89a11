"""Two real processes (torchrun + gloo via ``accelerate launch --multi_gpu``) against one process on the
same global batches, dropout off: the per-step losses and the weights after training must match, which
holds only if the gathered negatives are the global batch and the gradients equal the 1-process ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import make_tiny_bert


def launch(n: int, model, data, out, objective: str) -> None:
    train = ["-m", "simcse_lab", "train", "--model", str(model), "--data", str(data), "--objective", objective,
             "--pooler", "avg", "--max-steps", "3", "--batch-size", "8", "--max-seq-len", "16", "--lr", "1e-3",
             "--eval-steps", "0", "--test-tasks", "none", "--precision", "fp32", "--log-steps", "1",
             "--no-progress", "--output-dir", str(out)]
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if n == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(n), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517", *train]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("objective", ["unsup", "esimcse"])
def test_two_processes_match_one(tmp_path, objective):
    model = make_tiny_bert(tmp_path / "bert", dropout=0.0)
    data = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    words = "the a cat dog sat ran on under table house red big small park river tree".split()
    data.write_text("".join(" ".join(rng.choice(words, size=rng.integers(3, 12))) + "\n" for _ in range(64)))
    launch(1, model, data, tmp_path / "one", objective)
    launch(2, model, data, tmp_path / "two", objective)
    summaries = {n: json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "two")}
    assert summaries["one"]["world_size"] == 1 and summaries["two"]["world_size"] == 2

    def losses(name):
        return [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    np.testing.assert_allclose(losses("two"), losses("one"), rtol=1e-5)
    states = {n: torch.load(tmp_path / n / "checkpoints" / "step-0000003" / "state.pt", weights_only=True)["model"]
              for n in ("one", "two")}
    for key, value in states["one"].items():
        torch.testing.assert_close(states["two"][key], value, rtol=1e-4, atol=1e-6)
    assert len(set(np.round(losses("one"), 6))) > 1  # training really moved the weights between steps
