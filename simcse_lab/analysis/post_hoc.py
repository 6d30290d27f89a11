"""The post-hoc map interface: a training-free map of sentence vectors, fitted on a corpus's vectors and then
applied to any (BERT-whitening, :mod:`simcse_lab.analysis.whitening`; BERT-flow, :mod:`simcse_lab.analysis.flow`).

A :class:`PostHocMap` is the method: its flags, its settings, ``fit(vectors, settings, seed)`` and how its
report chapter reads. What ``fit`` returns is a :class:`FittedMap`: ``apply(vectors)``, ``output_dim`` and
``describe()``. ``eval --whiten/--flow``, ``analyze --whiten/--flow`` and the comparison table use only these,
through :func:`fit_on_corpus` and :class:`MappedEncoder`. A new map is one module implementing both, named in
:data:`simcse_lab.analysis.maps.MAPS`.
"""

from __future__ import annotations

import argparse
import time
from typing import Protocol

import numpy as np

from simcse_lab.modeling.sentence_encoder import SentenceEncoder


class FittedMap(Protocol):
    method: str  # the PostHocMap's name ("whitening", "flow")
    fitted_on: int  # number of vectors it was fitted on

    @property
    def output_dim(self) -> int: ...

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The mapped vectors, one row per row of ``x``."""

    def describe(self) -> dict:
        """What an encoder wrapped in this map adds to its description (under ``method``)."""

    def fit_record(self) -> dict:
        """What ``eval`` records of the fit, after ``method`` and before the corpus it was fitted on."""

    def report_head(self, fit_seconds: float) -> dict:
        """The first keys of its entry in a checkpoint's analysis (the STS scores and geometry follow)."""


class PostHocMap:
    """A post-hoc method. ``name`` keys its entry in the outputs; ``variant`` names the mapped scores and token
    rows (``whitened``); ``flag`` is the command-line stem (``--whiten``, ``--whiten-corpus``, ``--whiten-max``
    in analyze; ``--whiten CORPUS`` in eval); ``place`` is where its chapter stands in the analysis report."""

    name: str = ""
    variant: str = ""
    flag: str = ""
    title: str = ""  # its report chapter's title
    help: str = ""  # eval's --FLAG CORPUS help: what is fitted and how STS is scored through it
    place: float = 0.0

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        """Its own settings' flags (the same in eval and analyze)."""

    def settings(self, args):
        """Its settings from the parsed flags; a setting it can check alone is a one-line UserError here."""

    def options(self, settings) -> dict:
        """What analyze's report.json records of its settings under ``options`` (beside corpus and size)."""
        return {}

    def fit(self, vectors: np.ndarray, settings, seed: int) -> FittedMap:
        raise NotImplementedError

    def fit_detail(self, entry: dict) -> str:
        """The report chapter's account of the fit, after "Fitted on CORPUS (N sentences)"."""
        return ""

    def score_note(self) -> str:
        """Said after the split in the chapter's first paragraph (how STS is scored through the map)."""
        return ""

    def extra_columns(self) -> tuple:
        """(header, entry -> value) columns the chapter's table adds after the averages."""
        return ()


def fit_on_corpus(method: PostHocMap, encoder, corpus: list[str], settings, seed: int, progress: bool = False):
    """(the fitted map, seconds the fit took): ``encoder``'s vectors of ``corpus`` fitted with ``method``."""
    vectors = encoder.encode(corpus, progress=progress)
    start = time.perf_counter()
    fitted = method.fit(vectors, settings, seed)
    return fitted, time.perf_counter() - start


class MappedEncoder:
    """A :class:`SentenceEncoder` whose vectors come out through a fitted post-hoc map; usable directly with
    :func:`simcse_lab.evaluation.sts.evaluate`."""

    def __init__(self, encoder: SentenceEncoder, fitted: FittedMap):
        self.encoder = encoder
        self.fitted = fitted

    @property
    def dim(self) -> int:
        return self.fitted.output_dim

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        return self.fitted.apply(self.encoder.encode(sentences, progress=progress)).astype(np.float32)

    def describe(self) -> dict:
        return {**self.encoder.describe(), self.fitted.method: self.fitted.describe()}
