"""Two real processes (torchrun + gloo via ``accelerate launch --multi_gpu``) against one process on the
same global batches, dropout off: the per-step losses and the weights after training must match, which
holds only if the gathered negatives are the global batch and the gradients equal the 1-process ones
(each objective scores its local anchors against gathered candidates; the loop rescales nothing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import free_port, make_tiny_bert, random_sentences, write_lines


POOLERS = {"promptbert": "mask"}  # the pooler an objective needs; the others train with avg


def launch(n: int, model, data, out, objective: str, extra: tuple[str, ...] = ()) -> None:
    train = ["-m", "simcse_lab", "train", "--model", str(model), "--data", str(data), "--objective", objective,
             "--pooler", POOLERS.get(objective, "avg"), "--max-steps", "3", "--batch-size", "8", "--max-seq-len", "16", "--lr", "1e-3",
             "--eval-steps", "0", "--test-tasks", "none", "--precision", "fp32", "--log-steps", "1",
             "--hard-negative-weight", "0.5", "--no-progress", "--output-dir", str(out),
             # one chunk: 8 rows in one process and 4 + 4 in two would otherwise be cut into different shapes,
             # whose rounding differs (chunked = unchunked is tests/modeling/test_length_chunks.py's job)
             "--length-chunks", "1", *extra]
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if n == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(n), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), *train]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("objective", ["unsup", "sup", "esimcse", "promptbert"])
def test_two_processes_match_one(tmp_path, objective):
    check_two_match_one(tmp_path, objective)


def test_two_processes_match_one_with_the_cosine_regulariser(tmp_path):
    """--cos-reg: every rank adds the penalty of the GATHERED anchors (the global batch's), so the logged
    parts and the gradient equal one process's; a penalty over each rank's local anchors would not."""
    check_two_match_one(tmp_path, "unsup", ("--cos-reg", "0.5"))
    parts = {n: [json.loads(line) for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
             for n in ("one", "two")}
    for key in ("cos_reg", "contrastive"):
        np.testing.assert_allclose([r[key] for r in parts["two"]], [r[key] for r in parts["one"]], rtol=1e-5)
    assert parts["one"][0]["cos_reg"] > 0.05  # the term is really there


def check_two_match_one(tmp_path, objective: str, extra: tuple[str, ...] = ()) -> None:
    model = make_tiny_bert(tmp_path / "bert", dropout=0.0)
    if objective == "sup":  # (anchor, entailment, contradiction) triplets; the hard-negative weight is on
        sentences = random_sentences(96, lengths=(3, 9))
        data = write_lines(tmp_path / "triplets.csv",
                           ["sent0,sent1,hard_neg"] + [",".join(sentences[i:i + 3]) for i in range(0, 96, 3)])
    else:
        data = write_lines(tmp_path / "corpus.txt", random_sentences(64))
    launch(1, model, data, tmp_path / "one", objective, extra)
    launch(2, model, data, tmp_path / "two", objective, extra)
    summaries = {n: json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "two")}
    assert summaries["one"]["world_size"] == 1 and summaries["two"]["world_size"] == 2

    def losses(name):
        return [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    np.testing.assert_allclose(losses("two"), losses("one"), rtol=1e-5)
    states = {n: torch.load(tmp_path / n / "checkpoints" / "step-0000003" / "state.pt", weights_only=True)["model"]
              for n in ("one", "two")}
    # Adam's first step moves a weight by about +-lr whatever the size of its gradient, so a weight whose
    # gradient is ~0 feels the rounding of the 2-process sum (sup's hard negatives give a few of them: one
    # of 4096 weights of a layer lands 2e-6 away, with the code before this change too): 1% of one step
    # promptbert reads one token per row (and its template's delta): more weights with a ~0 gradient, one or two of
    # which land up to 3.3e-5 away (3% of one step; which ones varies from run to run)
    atol = {"sup": 1e-5, "promptbert": 5e-5}.get(objective, 1e-6)
    # template denoising subtracts two outputs of the last LayerNorm, so its bias cancels: a gradient of 0 up to
    # rounding, which Adam's first steps blow up to +-lr in either run
    cancelled = "backbone.encoder.layer.1.output.LayerNorm.bias" if objective == "promptbert" else None
    for key, value in states["one"].items():
        if key != cancelled:
            torch.testing.assert_close(states["two"][key], value, rtol=1e-4, atol=atol, msg=lambda m: f"{key}: {m}")
    assert len(set(np.round(losses("one"), 6))) > 1  # training really moved the weights between steps


def test_two_processes_with_mini_batches_match_the_chunks_kept_in_memory(tmp_path):
    """DDP's gradient hooks fire in the recomputed backward pass as in the plain one: two processes with
    --mini-batch-size 4 (each rank's 8 unsup rows -> 2 chunks, recomputed; dropout ON, so each rank must replay
    its own masks) end with the losses and weights of --length-chunks 2 with every activation kept."""
    model = make_tiny_bert(tmp_path / "bert", dropout=0.1)
    data = write_lines(tmp_path / "corpus.txt", random_sentences(64))
    launch(2, model, data, tmp_path / "kept", "unsup", ("--length-chunks", "2"))
    launch(2, model, data, tmp_path / "cached", "unsup", ("--mini-batch-size", "4"))

    def losses(name):
        return [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    assert len(losses("kept")) == 3
    np.testing.assert_allclose(losses("cached"), losses("kept"), rtol=1e-6)
    states = {n: torch.load(tmp_path / n / "checkpoints" / "step-0000003" / "state.pt", weights_only=True)["model"]
              for n in ("kept", "cached")}
    for key, value in states["kept"].items():
        torch.testing.assert_close(states["cached"][key], value, rtol=1e-5, atol=1e-6)


def test_two_processes_match_one_conpvp(tmp_path):
    """The prototypes of the GLOBAL batch, gathered with the gradient-carrying gather: 2 processes x 4 rows = 1 x 8,
    dropout off (tests/integration/test_distributed.py's runs). Every sentence has as many tokens, and both templates too, so both
    ways pad to one width. The first loss is the same to rounding. After that, a view being the difference of two close
    states, a weight whose true gradient is ~0 (a key bias: softmax ignores it) gets a gradient of rounding noise,
    which Adam's first steps turn into a move of up to +-lr: measured, 86 of the 29.7k weights outside the word
    embeddings (57 of them key biases) end up to 2.2e-4 apart (lr 1e-3), the next losses 3e-5. So: the first loss to
    1e-6, the others to 1e-4, the prompt's vectors and 99% of the weights outside the word embeddings (whose untouched
    rows would pad the count) to 1e-6. Gradients that miss the other process's anchors (a gather that returns
    none) move the losses by more (mutation-checked)."""
    model = make_tiny_bert(tmp_path / "bert", dropout=0.0)
    data = write_lines(tmp_path / "corpus.txt", random_sentences(64, lengths=(7, 8)))
    pairs = write_lines(tmp_path / "pairs.tsv", ["{sentence} means {mask} .\t{sentence} not {mask} ."])
    extra = ("--pooler", "mask", "--prompt-length", "3", "--prototype-templates", str(pairs))
    for n in (1, 2):
        launch(n, model, data, tmp_path / str(n), "conpvp", extra)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
              for n in ("1", "2")]
    assert losses[0][0] == pytest.approx(losses[1][0], rel=1e-6) and len(set(losses[0])) == 3
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    one, two = (torch.load(tmp_path / n / "checkpoints" / "step-0000003" / "state.pt", weights_only=True)["model"]
                for n in ("1", "2"))
    assert "continuous_prompt.vectors" in one
    torch.testing.assert_close(two["continuous_prompt.vectors"], one["continuous_prompt.vectors"], rtol=1e-4, atol=1e-6)
    close = torch.cat([torch.isclose(two[k], v, rtol=1e-4, atol=1e-6).flatten() for k, v in one.items()
                       if "word_embeddings" not in k])
    assert close.float().mean() >= 0.99, f"{int((~close).sum())} of {len(close)} weights differ"
