"""SentenceEncoder: the one interface of every sentence encoder (encode, describe, dim).

Evaluation, analysis and search take any of them.

Implemented by :class:`~simcse_lab.modeling.encoder.Encoder` (a checkpoint),
:class:`~simcse_lab.modeling.encoder.EmbedderEncoder` (the model being trained),
:class:`~simcse_lab.analysis.post_hoc.MappedEncoder` (through BERT-whitening or BERT-flow) and
:class:`~simcse_lab.analysis.report.MemoEncoder` (wrappers); tests/modeling/test_sentence_encoder.py checks each.
A new backend only needs these three members.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SentenceEncoder(Protocol):
    dim: int  # width of the vectors ``encode`` returns

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        """float32 array (len(sentences), dim), rows in the order given."""
        ...

    def describe(self) -> dict:
        """JSON-ready description recorded with results: at least ``model``, ``pooler`` and ``precision``."""
        ...
