"""ConPVP (--objective conpvp): its logits against a direct computation written here, row by row (each view built by
hand from the tokenizer, run alone through the backbone, read at its [MASK], less the template-only pass); the
prototype draw; two processes against one; resume; the saved model; bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import make_tiny_bert, random_sentences, write_lines

PROTOTYPES = "{sentence} means {mask} .\t{sentence} not means {mask} .\nabout {sentence} : [MASK]\tnot {sentence} : [MASK]\n"


def conpvp_config(tmp_path, prompt_length: int = 3, seed: int = 7):
    path = tmp_path / "prototypes.tsv"
    path.write_text(PROTOTYPES)
    return SimpleNamespace(prototype_templates=str(path), prompt_length=prompt_length, temperature=0.05, seed=seed)


@pytest.fixture
def tiny(tmp_path):
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.training.objectives.conpvp import ConPVP

    tokenizer, embedder = load_embedder(str(make_tiny_bert(tmp_path / "bert", dropout=0.0)), "avg", False)
    torch.manual_seed(0)
    objective = ConPVP.from_config(conpvp_config(tmp_path), tokenizer, embedder)
    return tokenizer, embedder, objective


def words(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def hand_rows(tokenizer, sentence: str, pair: int, length: int):
    """(ids, index of [MASK], indices of the learned vectors, indices of the sentence) of the three views, by hand."""
    cls, sep, mask, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id, tokenizer.pad_token_id
    sent = words(tokenizer, sentence)
    anchor = [cls, *sent, *[pad] * length, mask, *words(tokenizer, "."), sep]
    if pair == 0:
        pos = [cls, *sent, *words(tokenizer, "means"), mask, *words(tokenizer, "."), sep]
        neg = [cls, *sent, *words(tokenizer, "not means"), mask, *words(tokenizer, "."), sep]
        spans = [range(1, 1 + len(sent))] * 3
    else:
        pos = [cls, *words(tokenizer, "about"), *sent, *words(tokenizer, ":"), mask, sep]
        neg = [cls, *words(tokenizer, "not"), *sent, *words(tokenizer, ":"), mask, sep]
        spans = [range(1, 1 + len(sent)), range(2, 2 + len(sent)), range(2, 2 + len(sent))]
    slots = list(range(1 + len(sent), 1 + len(sent) + length))
    return [(anchor, slots, spans[0]), (pos, [], spans[1]), (neg, [], spans[2])]


def hand_vector(backbone, vectors, ids, slots, sentence) -> np.ndarray:
    """One row alone: state at [MASK] with every token attended, minus the state with the sentence's tokens not."""
    with torch.no_grad():
        embeds = backbone.get_input_embeddings()(torch.tensor([ids]))
        for k, position in enumerate(slots):
            embeds[0, position] = vectors[k]
        read = ids.index(backbone.config.mask_id)
        template = torch.tensor([[0 if i in sentence else 1 for i in range(len(ids))]])
        full = backbone(inputs_embeds=embeds, attention_mask=torch.ones_like(template)).last_hidden_state[0, read]
        alone = backbone(inputs_embeds=embeds, attention_mask=template).last_hidden_state[0, read]
    return (full - alone).double().numpy()


def cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_logits_equal_a_direct_computation(tiny):
    tokenizer, embedder, objective = tiny
    embedder.eval()
    sentences = random_sentences(5, seed=3)
    examples = [(10 + i, tokenizer(s)["input_ids"]) for i, s in enumerate(sentences)]
    pairs = [objective.prototypes.index(objective.draw(4, index)) for index, _ in examples]
    assert len(set(pairs)) == 2  # both template pairs are drawn in this batch
    with torch.no_grad():
        z1, z2, n1 = objective.embed(embedder, objective.collate(examples, step=4))
        logits = objective.logits(z1, z2, n1).double().numpy()
        loss = objective.loss_from_embeddings(z1, z2, n1).item()
    embedder.backbone.config.mask_id = tokenizer.mask_token_id
    vectors = embedder.continuous_prompt.vectors.detach()
    views = [[hand_vector(embedder.backbone, vectors, ids, slots, span)
              for ids, slots, span in hand_rows(tokenizer, s, p, 3)] for s, p in zip(sentences, pairs)]
    anchors, positives, negatives = zip(*views)
    np.testing.assert_allclose(z1.numpy(), np.stack(anchors), atol=2e-5)
    expected = np.array([[cos(a, c) / 0.05 for c in list(positives) + list(negatives)] for a in anchors])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3)
    hand_loss = np.mean([-(row[i] - math.log(np.exp(row).sum())) for i, row in enumerate(expected)])
    assert loss == pytest.approx(hand_loss, rel=1e-4)
    # the views really differ: the logits spread, and a mutant that dropped the subtraction or the slots would fail
    assert expected.std() > 1.0 and np.abs(np.stack(anchors) - np.stack(positives)).max() > 0.3 * np.abs(anchors).max()
