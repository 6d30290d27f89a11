"""The training examples: ``--data`` read and pretokenised once, off the hot path.

``--data`` is a data spec (:mod:`simcse_lab.data.sources`). The items are what the objective's
``collate`` expects: token id lists for sentence data, (anchor, positive, negative) id triplets for
``sup``, (sentence index, ids) for ``esimcse``."""

from __future__ import annotations

from collections.abc import Sequence

from simcse_lab.data import sources
from simcse_lab.errors import UserError
from simcse_lab.training.config import TrainConfig


def check_training_data(cfg: TrainConfig) -> sources.Source:
    """``cfg.data`` resolved and fit for ``cfg.objective``, checked without reading it (before any model loads)."""
    source = sources.resolve(cfg.data, "train")
    if source.kind not in ("text", "nli_csv"):
        raise UserError(f"{cfg.data}: a {source.kind} dataset; --data takes sentences (wiki, a .txt file) "
                        f"or triplets (nli, a .csv file)")
    if cfg.objective == "sup" and source.kind != "nli_csv":
        raise UserError(f"{cfg.data}: objective sup needs (sent0, sent1, hard_neg) triplets, e.g. --data nli")
    return source


def load_training_examples(cfg: TrainConfig, tokenizer) -> Sequence:
    """The examples of ``cfg.data`` for ``cfg.objective``: a sequence indexable by int."""
    source = check_training_data(cfg)
    rows = source.rows
    if source.kind == "nli_csv" and cfg.objective != "sup":
        rows = [r[0] for r in rows]  # the anchors as plain sentences

    def ids(texts):
        return tokenizer(list(texts), truncation=True, max_length=cfg.max_seq_len, padding=False)["input_ids"]

    if cfg.objective == "sup":
        return list(zip(*(ids(column) for column in zip(*rows))))
    tokens = ids(rows)
    return list(enumerate(tokens)) if cfg.objective == "esimcse" else tokens
