"""save_sentence_transformer: every SimCSE pooler round-trips through a sentence-transformers directory (fp32, 1e-5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from simcse_lab.modeling.pooling import POOLERS, TEMPLATE_POOLERS, pool

SENTENCES = ["A man is playing a guitar.", "Two dogs run on the beach, chasing a ball.", "hi",
             "The quick brown fox jumps over the lazy dog near the river bank today."]


def _reference(model, tokenizer, pooler, mlp=None):
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
        return pool(pooler, batch, out.last_hidden_state, out.hidden_states, mlp, summary=0).numpy()


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from transformers import AutoTokenizer, BertModel

    from conftest import make_tiny_bert

    path = make_tiny_bert(tmp_path_factory.mktemp("bert3"), seed=3, layers=3)
    model = BertModel.from_pretrained(path).eval()
    return model, AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("pooler", [p for p in POOLERS if p not in TEMPLATE_POOLERS])
def test_round_trip_every_pooler(backbone, tmp_path, pooler):
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.st_format import PooledLayers, save_sentence_transformer

    model, tokenizer = backbone
    mlp = torch.nn.Sequential(model.pooler.dense, model.pooler.activation) if pooler == "cls" else None
    out = save_sentence_transformer(model, tokenizer, pooler, tmp_path / "st",
                                    PooledLayers(mlp=model.pooler.dense if pooler == "cls" else None))
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    assert "Normalize" not in modules
    assert ("Dense" in modules) == (pooler == "cls")
    assert ("WeightedLayerPooling" in modules) == (pooler in ("avg_first_last", "avg_top2"))
    loaded = SentenceTransformer(str(out), device="cpu")
    got = loaded.encode(SENTENCES, convert_to_numpy=True, batch_size=2)
    want = _reference(model, tokenizer, pooler, mlp)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_poolers_differ(backbone, tmp_path):
    """The layer poolers really select different layers (a wrong mapping would not be caught otherwise)."""
    model, tokenizer = backbone
    a = _reference(model, tokenizer, "avg_first_last")
    b = _reference(model, tokenizer, "avg_top2")
    c = _reference(model, tokenizer, "avg")
    assert np.abs(a - b).max() > 1e-3 and np.abs(a - c).max() > 1e-3


def test_cls_without_mlp_is_refused(backbone, tmp_path):
    from simcse_lab.modeling.st_format import PooledLayers, save_sentence_transformer

    model, tokenizer = backbone
    with pytest.raises(ValueError, match="cls"):
        save_sentence_transformer(model, tokenizer, "cls", tmp_path / "st")
    assert not (tmp_path / "st").exists()


def test_overwrite_replaces_complete_dir(backbone, tmp_path):
    from simcse_lab.modeling.st_format import PooledLayers, save_sentence_transformer

    model, tokenizer = backbone
    out = tmp_path / "best"
    save_sentence_transformer(model, tokenizer, "avg", out)
    save_sentence_transformer(model, tokenizer, "cls_before_pooler", out)
    cfg = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert cfg["pooling_mode"] in ("cls", ["cls"]) or cfg.get("pooling_mode_cls_token")
    assert [p.name for p in tmp_path.iterdir()] == ["best"]


def test_saved_pooler_weights_are_never_random(tmp_path, tiny_bert):
    """A checkpoint saved without a kept MLP carries no pooler (so `--pooler cls` is refused, not fed
    random weights); with a kept MLP, the HF pooler holds exactly the trained MLP (SimCSE's convention)."""
    from safetensors import safe_open
    from transformers import AutoModel, AutoTokenizer

    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.st_format import PooledLayers, save_sentence_transformer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    backbone = AutoModel.from_pretrained(tiny_bert)
    backbone.pooler = None  # as the trainer does
    out = save_sentence_transformer(backbone, tok, "cls_before_pooler", tmp_path / "plain")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "pooler" in k]
    with pytest.raises(UserError, match="needs trained pooler"):
        Encoder(str(out), pooler="cls", precision="fp32")

    mlp = torch.nn.Linear(32, 32)
    out = save_sentence_transformer(backbone, tok, "cls", tmp_path / "mlp", PooledLayers(mlp=mlp))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        torch.testing.assert_close(f.get_tensor("pooler.dense.weight"), mlp.weight.detach())
    via_hf = Encoder(str(out), pooler="cls", precision="fp32").encode(["a test", "another one here"])
    via_st = Encoder(str(out), precision="fp32").encode(["a test", "another one here"])
    np.testing.assert_allclose(via_hf, via_st, atol=1e-5)


def test_template_pooler_is_refused(backbone, tmp_path):
    """``mask`` reads a template's token, which sentence-transformers cannot put around the sentence: one line."""
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.st_format import save_sentence_transformer

    model, tokenizer = backbone
    with pytest.raises(UserError, match="cannot put a template around the sentence"):
        save_sentence_transformer(model, tokenizer, "mask", tmp_path / "st")
    assert not (tmp_path / "st").exists()
