"""export: each format re-loads to the source's embeddings (fp32 1e-5, ONNX 1e-4); bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcse_lab.cli import main


@pytest.fixture(scope="module")
def st_source(tiny_bert, tmp_path_factory):
    """A training-output-like dir: D/best (ST, cls + dense head) and D/summary.json."""
    from transformers import AutoTokenizer, BertModel

    from simcse_lab.modeling.st_format import save_sentence_transformer

    run = tmp_path_factory.mktemp("run")
    model = BertModel.from_pretrained(tiny_bert).eval()
    save_sentence_transformer(model, AutoTokenizer.from_pretrained(tiny_bert), "cls", run / "best", mlp=model.pooler.dense)
    result = {"tasks": {"stsb": {"spearman": 12.5}, "sickr": {"spearman": 20.0}}, "avg": 16.25}
    (run / "summary.json").write_text(json.dumps({"objective": "unsup-simcse", "data": "wiki",
                                                  "sts_before": result, "sts_after": result}))
    return run


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
    if fmt == "sentence-transformers":
        card = (out / "README.md").read_text()
        assert "unsup-simcse" in card and "16.25" in card


@pytest.mark.parametrize("pooler", ["avg_first_last", "avg_top2"])
def test_hf_source_with_layer_pooler(tmp_path, pooler):
    from simcse_lab.export.formats import VERIFY_SENTENCES, export, reload_encode
    from tests.conftest import make_tiny_bert

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
