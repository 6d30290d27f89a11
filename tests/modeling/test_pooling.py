"""Poolers on a tiny random BERT: shapes, and each pooler equals its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from simcse_lab.errors import UserError
from simcse_lab.modeling.embedder import backbone_mlp
from simcse_lab.modeling.encoder import Encoder
from simcse_lab.modeling.pooling import POOLERS, pool

SENTS = ["a short one", "a somewhat longer sentence with more words in it", "mid length text here"]


@pytest.fixture(scope="module")
def hf(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModel.from_pretrained(tiny_bert).eval()
    batch = tok(SENTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return model, batch, out


@pytest.mark.parametrize("pooler", POOLERS)
def test_shapes(hf, pooler):
    model, batch, out = hf
    if pooler == "mask":  # the template's mask token: here position 1 of each row
        batch = {**batch, "template_mask": torch.nn.functional.one_hot(torch.ones(len(SENTS), dtype=torch.long),
                                                                        batch["input_ids"].shape[1])}
    vec = pool(pooler, batch, out.last_hidden_state, out.hidden_states, backbone_mlp(model), summary=0)
    assert vec.shape == (len(SENTS), model.config.hidden_size)


def test_definitions(hf):
    model, batch, out = hf
    mask = batch["attention_mask"]
    hs = out.hidden_states
    n0 = int(mask[0].sum())  # sentence 0 is shorter than the padded width
    assert n0 < mask.shape[1]
    avg = pool("avg", batch, out.last_hidden_state, hs, summary=0)
    torch.testing.assert_close(avg[0], hs[-1][0, :n0].mean(0))
    first_last = pool("avg_first_last", batch, out.last_hidden_state, hs, summary=0)
    torch.testing.assert_close(first_last[0], ((hs[1][0, :n0] + hs[-1][0, :n0]) / 2).mean(0))
    top2 = pool("avg_top2", batch, out.last_hidden_state, hs, summary=0)
    torch.testing.assert_close(top2[0], ((hs[-2][0, :n0] + hs[-1][0, :n0]) / 2).mean(0))
    torch.testing.assert_close(pool("cls_before_pooler", batch, out.last_hidden_state, hs, summary=0), out.last_hidden_state[:, 0])
    torch.testing.assert_close(pool("cls", batch, out.last_hidden_state, hs, backbone_mlp(model), summary=0), out.pooler_output)


def test_encoder_matches_unbatched_forward(tiny_bert, hf):
    model, batch, out = hf
    enc = Encoder(str(tiny_bert), pooler="avg", precision="fp32", batch_size=2)
    got = enc.encode(SENTS)
    want = pool("avg", batch, out.last_hidden_state, summary=0).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert enc.encode([]).shape == (0, model.config.hidden_size)


def test_cls_needs_trained_pooler(tmp_path, tiny_bert):
    # a checkpoint saved without pooler weights must not silently get a random pooler
    model = AutoModel.from_pretrained(tiny_bert, add_pooling_layer=False)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="needs trained pooler"):
        Encoder(str(tmp_path), pooler="cls", precision="fp32")
    assert Encoder(str(tmp_path), pooler="cls_before_pooler", precision="fp32").encode(["x"]).shape == (1, 32)
