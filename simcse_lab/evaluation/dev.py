"""The dev evaluation of model selection during training: STS-B dev Spearman, alignment, uniformity.

Alignment and uniformity of the same sentences come along, so metrics.jsonl traces the geometry of
training too. ``train --select TASK:SPLIT:METRIC`` picks another task's metric (:func:`selection_metrics`): an
STS task (SentEval's or a user's file) brings alignment and uniformity of its own pairs, any other task its
metric alone."""

from __future__ import annotations

import numpy as np

from simcse_lab.data.readers import PairSet
from simcse_lab.evaluation.sts import POSITIVE_GOLD, correlations, encode_pairsets, load_task
from simcse_lab.evaluation.tasks.spec import Selection
from simcse_lab.evaluation.tasks.sts import STSTask
from simcse_lab.evaluation.vectors import alignment, cosine_rows, l2_normalize, uniformity
from simcse_lab.modeling.sentence_encoder import SentenceEncoder


def pair_metrics(encoder: SentenceEncoder, pairs: PairSet, positive_gold: float = POSITIVE_GOLD) -> dict:
    """Spearman and Pearson x100 of cosine against gold, alignment (pairs with gold > ``positive_gold``; None
    when there is none) and uniformity (every distinct sentence), on L2-normalised vectors; each distinct
    sentence is encoded once."""
    vectors, [(a, b)] = encode_pairsets(encoder, [pairs])
    vectors, a, b = l2_normalize(vectors), l2_normalize(a), l2_normalize(b)
    gold = np.asarray(pairs.scores, dtype=np.float64)
    positive = gold > positive_gold
    scores = correlations(cosine_rows(a, b), gold)
    return {"spearman": scores["spearman"], "pearson": scores["pearson"],
            "alignment": alignment(a[positive], b[positive]) if positive.any() else None,
            "uniformity": uniformity(vectors)}


def dev_metrics(encoder: SentenceEncoder) -> dict:
    """STS-B dev Spearman x100, alignment (pairs with gold > POSITIVE_GOLD) and uniformity (every
    distinct dev sentence), on L2-normalised vectors; each distinct sentence is encoded once."""
    (pairs,) = load_task("stsb", "dev").values()
    metrics = pair_metrics(encoder, pairs)
    return {"dev_spearman": metrics["spearman"], "alignment": metrics["alignment"],
            "uniformity": metrics["uniformity"]}


def selection_metrics(encoder: SentenceEncoder, selection: Selection) -> dict:
    """The record of one dev evaluation: the selected metric under ``selection.key`` (the default's record is
    :func:`dev_metrics`' as it always was), with alignment and uniformity for an STS task. An STS task of
    several subsets (STS12-16) is scored over their concatenation (SimCSE's ``all``)."""
    if selection.is_default:
        return dev_metrics(encoder)
    task, metric = selection.task, selection.metric.name
    if isinstance(task, STSTask):
        subsets = list(task.load(selection.split).values())
        pairs = PairSet(task.name, *(sum((getattr(ps, f) for ps in subsets), []) for f in ("sent1", "sent2", "scores")))
        metrics = pair_metrics(encoder, pairs, task.positive_gold)
        return {selection.key: metrics[metric], "alignment": metrics["alignment"],
                "uniformity": metrics["uniformity"]}
    return {selection.key: task.score(task.evaluate(encoder, selection.split), metric)}
