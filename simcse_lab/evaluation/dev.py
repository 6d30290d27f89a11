"""The dev evaluation of model selection during training: STS-B dev Spearman, alignment, uniformity.

Alignment and uniformity of the same sentences come along, so metrics.jsonl traces the geometry of
training too."""

from __future__ import annotations

import numpy as np

from simcse_lab.evaluation.sts import POSITIVE_GOLD, correlations, encode_pairsets, load_task
from simcse_lab.evaluation.vectors import alignment, cosine_rows, l2_normalize, uniformity
from simcse_lab.modeling.sentence_encoder import SentenceEncoder


def dev_metrics(encoder: SentenceEncoder) -> dict:
    """STS-B dev Spearman x100, alignment (pairs with gold > POSITIVE_GOLD) and uniformity (every
    distinct dev sentence), on L2-normalised vectors; each distinct sentence is encoded once."""
    (pairs,) = load_task("stsb", "dev").values()
    vectors, [(a, b)] = encode_pairsets(encoder, [pairs])
    vectors, a, b = l2_normalize(vectors), l2_normalize(a), l2_normalize(b)
    gold = np.asarray(pairs.scores, dtype=np.float64)
    positive = gold > POSITIVE_GOLD
    return {"dev_spearman": correlations(cosine_rows(a, b), gold)["spearman"],
            "alignment": alignment(a[positive], b[positive]), "uniformity": uniformity(vectors)}
