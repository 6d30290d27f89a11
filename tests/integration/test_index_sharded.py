"""index build across two real processes (``accelerate launch --multi_gpu`` = torchrun + gloo on CPU): each rank
encodes a contiguous shard, rank 0 merges them; the result equals a one-process build of the same corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import SEARCH_WORDS, free_port, random_sentences, write_lines


def test_two_process_build_equals_one_process(tiny_bert, tmp_path):
    from simcse_lab.search.index import Index, normalize

    sentences = random_sentences(51, seed=1, words=SEARCH_WORDS, lengths=(3, 9))  # odd: uneven shards
    lines = [f"{i} {s}" for i, s in enumerate(sentences)]
    corpus = write_lines(tmp_path / "corpus.txt", lines)
    build = ["-m", "simcse_lab", "index", "build", "--model", str(tiny_bert), "--pooler", "avg", "--corpus",
             str(corpus), "--index", "flat", "--precision", "fp32", "--batch-size", "8", "--chunk-size", "16",
             "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    one = subprocess.run([sys.executable, *build, "--output-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(free_port()), *build, "--output-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("index ") == 1  # only rank 0 reports

    a, b = Index(tmp_path / "one"), Index(tmp_path / "two")
    assert a.manifest["world_size"] == 1 and b.manifest["world_size"] == 2
    assert a.manifest["count"] == b.manifest["count"] == len(lines) == a.index.ntotal == b.index.ntotal
    assert a.texts == b.texts == lines
    assert a.manifest["texts_sha256"] == b.manifest["texts_sha256"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [".simcse-lab.json", "index.faiss", "manifest.json",
                                                                   "texts.jsonl"]  # no shards/ left, marker added
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".two.tmp-")]  # staging dir renamed away
    np.testing.assert_allclose(b.index.reconstruct_n(0, len(lines)), a.index.reconstruct_n(0, len(lines)), atol=1e-5)
    queries = ["a dog plays with a red ball", "woman eats food", lines[30]]
    qv = normalize(a.encoder.encode(queries))
    sa, ia = a.index.search(qv, 5)
    sb, ib = b.index.search(qv, 5)
    np.testing.assert_allclose(sb, sa, atol=1e-5)
    assert (ia == ib).all() and ib[2][0] == 30
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["world_size"] == 2
