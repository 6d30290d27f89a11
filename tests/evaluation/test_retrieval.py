"""retrieval metrics on hand-checked cases, and the labelled set construction."""

from __future__ import annotations

import numpy as np
import pytest

from simcse_lab.evaluation.retrieval import labelled_set, rank_metrics, search_excluding_self


class PS:
    def __init__(self, sent1, sent2, scores):
        self.sent1, self.sent2, self.scores = sent1, sent2, scores


def test_labelled_set():
    ps = PS(["a", "a", "b", "c"], ["x", "y", "z", "c"], [4.5, 4.0, 3.9, 5.0])
    corpus, queries, relevant = labelled_set([ps])
    assert corpus == ["a", "b", "c", "x", "y", "z"]
    assert queries == [0] and relevant == [{3, 4}]  # b-z below 4; c-c is the query itself


def test_rank_metrics_by_hand():
    ranked = np.array([[5, 3, 9], [1, 2, 4], [7, 8, 6]])
    relevant = [{3}, {2, 9}, {0}]
    m = rank_metrics(ranked, relevant, ks=(1, 3))
    assert m["recall@1"] == pytest.approx(0.0)
    assert m["recall@3"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    assert m["mrr@10"] == pytest.approx(100 * (1 / 2 + 1 / 2 + 0) / 3)


def test_search_excludes_self():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    ranked = search_excluding_self(vectors, [0, 2], 2)
    assert ranked[0].tolist() == [1, 2]  # nearest first, the query itself left out
    assert 2 not in ranked[1].tolist() and len(ranked[1]) == 2 and ranked[1][0] == 1


@pytest.mark.integration
def test_default_model_retrieval(mirror_env):
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.evaluation.retrieval import evaluate

    result = evaluate(Encoder("all-MiniLM-L6-v2", precision="bf16", batch_size=128), tasks=["sickr"])
    r = result["tasks"]["sickr"]
    assert r["queries"] > 100 and 0 <= r["recall@1"] <= r["recall@5"] <= r["recall@10"] <= 100
    assert r["recall@10"] > 50  # a trained sentence encoder finds most gold >= 4 partners in its top 10
