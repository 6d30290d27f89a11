"""Each objective's loss against a value computed by hand (numpy, explicit loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simcse_lab.training.objectives.esimcse import ESimCSE
from simcse_lab.training.objectives.sup import SupSimCSE
from simcse_lab.training.objectives.unsup import UnsupSimCSE


class Tok:
    pad_token_id = 0
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]


class Fixed(torch.nn.Module):
    """A 'model' returning given rows, whatever the input."""

    def __init__(self, rows):
        super().__init__()
        self.rows = torch.tensor(rows, dtype=torch.float32)

    def forward(self, **batch):
        return self.rows

    pooler = "avg"


def cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def infonce(anchors, candidates, tau, bias=None):
    """-1/N Σ_i log softmax_j(cos(a_i, c_j)/τ + bias_ij)[i], by hand."""
    total = 0.0
    for i, a in enumerate(anchors):
        logits = [cos(a, c) / tau + (bias[i][j] if bias else 0.0) for j, c in enumerate(candidates)]
        total += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    return total / len(anchors)


RNG = np.random.default_rng(0)
Z1, Z2, Z3 = (RNG.normal(size=(4, 5)) for _ in range(3))


def test_unsup_loss_matches_hand_computation():
    loss = UnsupSimCSE(Tok(), temperature=0.05)(Fixed(np.concatenate([Z1, Z2])), {})
    assert loss.item() == pytest.approx(infonce(Z1, Z2, 0.05), rel=1e-5)


def test_unsup_collate_duplicates_every_sentence():
    batch = UnsupSimCSE(Tok()).collate([[101, 7, 102], [101, 8, 9, 102]], step=0)
    assert batch["input_ids"].tolist() == [[101, 7, 102, 0], [101, 8, 9, 102]] * 2
    assert batch["attention_mask"].sum(1).tolist() == [3, 4, 3, 4]


@pytest.mark.parametrize("weight", [0.0, 1.5])
def test_sup_loss_matches_hand_computation(weight):
    loss = SupSimCSE(Tok(), temperature=0.1, hard_negative_weight=weight)(Fixed(np.concatenate([Z1, Z2, Z3])), {})
    candidates = list(Z2) + list(Z3)
    bias = [[weight if j == len(Z1) + i else 0.0 for j in range(2 * len(Z1))] for i in range(len(Z1))]
    # the bias is added after dividing by τ, as SimCSE does; infonce divides only cosines
    assert loss.item() == pytest.approx(infonce(Z1, candidates, 0.1, bias), rel=1e-5)


def test_esimcse_loss_uses_queue_and_fills_it(tiny_bert):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(tiny_bert), "avg", False)
    objective = ESimCSE(tokenizer, embedder, temperature=0.05, queue_size=6)
    queued = RNG.normal(size=(6, 32))
    objective.queue.push(torch.tensor(queued))
    rows = np.concatenate([RNG.normal(size=(3, 32)), RNG.normal(size=(3, 32))])
    batch = objective.collate([(0, [101, 7, 8, 102]), (1, [101, 9, 102]), (2, [101, 5, 6, 7, 102])], step=0)
    loss = objective(Fixed(rows), batch)
    expected = infonce(rows[:3], list(rows[3:]) + list(queued), 0.05)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert len(objective.queue) == 6 and not torch.allclose(objective.queue.embeddings[:3], torch.tensor(queued[:3]).float())


def test_mlm_masking_and_auxiliary_loss(tiny_bert):
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.training.mlm import IGNORE, MaskedLMAuxiliary, mask_tokens

    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 30))
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    mask[:, 20:] = 0
    masked, labels = mask_tokens(ids, mask, [0, 101, 102, 103], 103, 30522)
    chosen = labels != IGNORE
    assert not chosen[:, 0].any() and not chosen[:, 20:].any()    # never specials or padding
    assert 0.10 < chosen[:, 1:20].float().mean() < 0.20            # ~15% of real tokens
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert 0.7 < (masked[chosen] == 103).float().mean() < 0.9      # ~80% [MASK]

    tokenizer, embedder = load_embedder(str(tiny_bert), "avg", False, do_mlm=True)
    net = MaskedLMAuxiliary(embedder, tokenizer)
    batch = UnsupSimCSE(tokenizer).collate([tokenizer("the cat sat on the mat")["input_ids"]] * 4, step=0)
    loss = UnsupSimCSE(tokenizer)(net, batch)
    assert torch.isfinite(loss) and net.loss.item() == pytest.approx(math.log(30522), rel=0.1)  # untrained head
