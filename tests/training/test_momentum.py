"""Momentum encoder update and the FIFO queue."""

from __future__ import annotations

import torch

from simcse_lab.training.objectives.momentum import EmbeddingQueue, MomentumEncoder


def test_momentum_update_formula_and_frozen_copy():
    torch.manual_seed(0)
    online = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    before = [p.detach().clone() for p in online.parameters()]
    momentum = MomentumEncoder(online, momentum=0.9)
    assert all(torch.equal(a, b) for a, b in zip(momentum.model.parameters(), before))  # a copy of the start weights
    assert not any(p.requires_grad for p in momentum.model.parameters())
    momentum.train()
    assert not momentum.model.training  # stays in eval mode
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    momentum.update(online)
    for p_m, p0, p in zip(momentum.model.parameters(), before, online.parameters()):
        assert torch.allclose(p_m, 0.9 * p0 + 0.1 * p)


def test_queue_is_fifo_and_bounded():
    q = EmbeddingQueue(size=5, dim=2)
    assert len(q) == 0
    q.push(torch.tensor([[1.0, 1], [2, 2]]))
    q.push(torch.tensor([[3.0, 3], [4, 4]]))
    assert q.embeddings[:, 0].tolist() == [3, 4, 1, 2]
    q.push(torch.tensor([[5.0, 5], [6, 6]]))
    assert q.embeddings[:, 0].tolist() == [5, 6, 3, 4, 1]  # oldest (2) dropped first
    restored = EmbeddingQueue(size=1, dim=2)
    restored.load_state_dict(q.state_dict())
    assert torch.equal(restored.embeddings, q.embeddings) and restored.size == 5


def test_esimcse_momentum_starts_from_pretrained_weights(tiny_bert):
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.training.objectives.esimcse import ESimCSE

    tokenizer, embedder = load_embedder(str(tiny_bert), "cls", True)
    objective = ESimCSE(tokenizer, embedder)
    for (name, p_m), p in zip(objective.momentum_encoder.model.named_parameters(), embedder.parameters()):
        assert torch.equal(p_m, p), name
        assert p_m.data_ptr() != p.data_ptr()
