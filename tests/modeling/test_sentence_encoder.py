"""Every encoder implements the one SentenceEncoder interface (encode, describe, dim), and they agree."""

from __future__ import annotations

import numpy as np
import torch

from conftest import random_sentences

from simcse_lab.analysis.flow import FlowSettings, fit_flow
from simcse_lab.analysis.post_hoc import MappedEncoder
from simcse_lab.analysis.report import MemoEncoder
from simcse_lab.analysis.whitening import fit_whitening
from simcse_lab.modeling.embedder import load_embedder
from simcse_lab.modeling.encoder import EmbedderEncoder, Encoder
from simcse_lab.modeling.sentence_encoder import SentenceEncoder

SENTENCES = ["a man plays a guitar", "two dogs run on the beach", "hi", "the cat sat on the red table"] * 3


def test_all_encoders_implement_the_protocol(tiny_bert):
    encoder = Encoder(str(tiny_bert), pooler="avg", precision="fp32")
    tokenizer, embedder = load_embedder(str(tiny_bert), "avg", False)
    trained = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny")
    memo = MemoEncoder(encoder)
    whitened = MappedEncoder(memo, fit_whitening(encoder.encode(random_sentences(40)), k=4))
    flowed = MappedEncoder(memo, fit_flow(encoder.encode(random_sentences(80)), FlowSettings(levels=2, max_steps=3)))
    for enc, dim in ((encoder, 32), (trained, 32), (memo, 32), (whitened, 4), (flowed, flowed.fitted.latent_dim)):
        assert isinstance(enc, SentenceEncoder), type(enc).__name__
        vectors = enc.encode(SENTENCES[:4])
        assert enc.dim == dim and vectors.shape == (4, dim) and vectors.dtype == np.float32
        assert {"model", "pooler", "precision"} <= set(enc.describe())
    # the same weights and pooler give the same vectors whichever encoder runs them
    np.testing.assert_allclose(trained.encode(SENTENCES), encoder.encode(SENTENCES), atol=1e-5)
    np.testing.assert_allclose(memo.encode(SENTENCES), encoder.encode(SENTENCES), atol=1e-6)
    assert not isinstance(object(), SentenceEncoder)
