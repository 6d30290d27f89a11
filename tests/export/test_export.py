"""export: each format re-loads to the source's embeddings (fp32 1e-5, ONNX 1e-4); bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_tiny_bert, random_sentences, write_lines

from simcse_lab.cli import main
from simcse_lab.data.readers import PairSet


@pytest.fixture(scope="module")
def st_source(tiny_bert, tmp_path_factory):
    """A real training run directory (2 steps of unsup on a tiny BERT, cls with its kept MLP, so D/best is
    an ST dir with a Dense head) whose summary.json the trainer wrote, STS tables included: the STS-B
    data is a small fake set, so the test needs no shared data."""
    from simcse_lab.data import registry
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    root = tmp_path_factory.mktemp("run")
    sentences = random_sentences(40, seed=5)
    fake = PairSet("stsb-fake", sentences[:20], sentences[20:], [float(i % 6) for i in range(20)])
    real = registry.load_split
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "load_split", lambda name, split: fake if name == "stsb" else real(name, split))
        train(TrainConfig(model=str(tiny_bert), data=str(write_lines(root / "corpus.txt", random_sentences(32))),
                          objective="unsup", pooler="cls", mlp_only_train=False, batch_size=8, max_seq_len=16,
                          lr=1e-3, max_steps=2, eval_steps=2, test_tasks="stsb", precision="fp32", progress=False,
                          output_dir=str(root / "run")))
    return root / "run"


def _source_vectors(path, pooler=None):
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.export.formats import VERIFY_SENTENCES

    return Encoder(str(path), pooler=pooler, precision="fp32").encode(VERIFY_SENTENCES)


@pytest.mark.parametrize("fmt", ["sentence-transformers", "hf", "onnx"])
def test_round_trip_training_dir(st_source, tmp_path, fmt):
    from simcse_lab.export.formats import VERIFY_SENTENCES, export, reload_encode

    out = tmp_path / fmt
    report = export(str(st_source), fmt, out)
    assert report["max_abs_diff"] <= report["tolerance"]
    meta = json.loads((out / "simcse_lab.json").read_text()) if fmt == "hf" else None
    if fmt == "hf":
        assert meta["pooler"] == "cls"
    # independent check against the source model itself
    got = reload_encode(fmt, out, meta, VERIFY_SENTENCES)
    want = _source_vectors(st_source / "best")
    np.testing.assert_allclose(got, want, atol=1e-4 if fmt == "onnx" else 1e-5, rtol=0)
    if fmt == "sentence-transformers":  # the card shows what the trainer wrote to summary.json
        card = (out / "README.md").read_text()
        summary = json.loads((st_source / "summary.json").read_text())
        assert "- objective: unsup" in card and f"- learning rate: {summary['config']['lr']}" in card
        assert f"- steps: {summary['steps']}" in card and "- max sequence length: 16" in card
        assert f"{summary['test_after']['avg']:.2f}" in card and f"{summary['test_before']['avg']:.2f}" in card


@pytest.mark.parametrize("pooler", ["avg_first_last", "avg_top2"])
def test_hf_source_with_layer_pooler(tmp_path, pooler):
    from simcse_lab.export.formats import VERIFY_SENTENCES, export, reload_encode

    tiny_bert = make_tiny_bert(tmp_path / "bert3", seed=1, layers=3)  # 3 layers: the two poolers differ

    export(str(tiny_bert), "sentence-transformers", tmp_path / "st", pooler=pooler)
    got = reload_encode("sentence-transformers", tmp_path / "st", None, VERIFY_SENTENCES)
    np.testing.assert_allclose(got, _source_vectors(tiny_bert, pooler), atol=1e-5, rtol=0)
    export(str(tmp_path / "st"), "hf", tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "simcse_lab.json").read_text())["pooler"] == pooler


def test_cli_refuses_existing_output_and_bad_model(st_source, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", str(st_source), "--format", "hf", "--output", str(tmp_path / "out")])
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", str(tmp_path / "nope"), "--format", "hf", "--output", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and not (tmp_path / "o2").exists()
