"""Packed sentences (block-diagonal attention, restarted positions) give the padded batch's vectors and
gradients with dropout off."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_bert, random_sentences

from simcse_lab.modeling.embedder import PassSwitches, RowRun
from simcse_lab.modeling.packing import is_prefix_mask, pack_rows


@pytest.fixture(scope="module")
def still_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("still-bert-packing"), seed=5, dropout=0.0)


def test_first_fit_by_decreasing_length():
    assert pack_rows([5, 3, 8, 2, 6], width=8) == [[2], [4, 3], [0, 1]]
    assert pack_rows([10, 1], width=8) == [[0], [1]]  # longer than the width: a row of its own
    assert sorted(i for row in pack_rows([3] * 7, width=8) for i in row) == list(range(7))
    assert is_prefix_mask(torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert not is_prefix_mask(torch.tensor([[1, 0, 1]]))


@pytest.mark.parametrize("pooler", ["cls", "avg", "avg_top2"])
def test_packed_forward_equals_the_padded_batch_with_dropout_off(still_bert, pooler):
    from simcse_lab.modeling.batching import pad_batch
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(still_bert), pooler, mlp_only_train=False, rows=RowRun(pack_width=24))
    embedder.train()
    ids = tokenizer(random_sentences(11, seed=7, lengths=(1, 16)), truncation=True, max_length=20)["input_ids"]
    batch = pad_batch(ids, tokenizer.pad_token_id, [[0] * len(i) for i in ids])
    whole = embedder(**batch, switches=PassSwitches(chunks=1, pack=False))
    whole.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in embedder.named_parameters() if p.grad is not None}
    embedder.zero_grad()
    seen = []
    hook = embedder.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((kwargs["input_ids"].shape, kwargs["attention_mask"].dim())),
        with_kwargs=True)
    packed = embedder(**batch)  # training mode with pack_width set: packed
    hook.remove()
    # one backbone call over fewer rows than sentences, with a block-diagonal (4-D) mask: really packed
    assert len(seen) == 1 and seen[0][1] == 4 and seen[0][0][0] < len(ids)
    torch.testing.assert_close(packed, whole, atol=1e-5, rtol=1e-5)
    packed.square().sum().backward()
    for name, p in embedder.named_parameters():
        if name in grads:
            torch.testing.assert_close(p.grad, grads[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta", "electra", "mpnet"])
def test_packing_is_exact_for_the_packable_families(tmp_path, model_type):
    """RoBERTa/XLM-R/MPNet count positions from padding_idx + 1 (packing writes padding_idx + 1 + arange(n)),
    ELECTRA from 0: packed vectors equal the padded batch's with dropout off, for cls and the mean poolers."""
    from tiny_backbones import make_tiny

    from simcse_lab.modeling.batching import pad_batch
    from simcse_lab.modeling.embedder import load_embedder

    path = make_tiny(tmp_path / model_type, model_type, seed=3)
    for pooler in ("cls", "avg_top2"):
        tokenizer, embedder = load_embedder(str(path), pooler, mlp_only_train=False, rows=RowRun(pack_width=24))
        embedder.train()
        ids = tokenizer(random_sentences(9, seed=4, lengths=(1, 16)), truncation=True, max_length=20)["input_ids"]
        batch = pad_batch(ids, tokenizer.pad_token_id)
        whole = embedder(**batch, switches=PassSwitches(chunks=1, pack=False))
        packed = embedder(**batch)  # training mode with pack_width set: packed
        torch.testing.assert_close(packed, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_type", ["distilbert", "deberta-v2", "t5"])
def test_packing_refuses_a_family_where_it_is_not_exact(tmp_path, model_type):
    """DistilBERT takes no position ids, DeBERTa's and T5's relative positions run over the whole packed row:
    refused in one line before the weights load; length chunks are fine."""
    from tiny_backbones import make_tiny

    from simcse_lab.errors import UserError
    from simcse_lab.modeling.embedder import load_embedder

    path = make_tiny(tmp_path / model_type, model_type)
    pooler = "avg"
    with pytest.raises(UserError, match="pack_width: packed rows would not equal the padded batch"):
        load_embedder(str(path), pooler, mlp_only_train=False, rows=RowRun(pack_width=64))
    _, embedder = load_embedder(str(path), pooler, mlp_only_train=False, rows=RowRun(length_chunks=2))  # chunks: fine
    assert embedder.length_chunks == 2
