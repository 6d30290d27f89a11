"""What a section of the geometry report is: the hooks ``analyze`` calls, in the sections' place order, and what
it hands them (:class:`Common` options, one :class:`Subject` per checkpoint or trajectory point)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Common:
    """The options every section reads: pair statistics, the seed, and how checkpoints are run."""

    max_pairs: int = 200_000
    seed: int = 0
    precision: str = "auto"
    batch_size: int = 128
    progress: bool = False
    bidirectional: bool | None = None  # a decoder LLM's attention (None: as its recipe says, else causal)
    template: str | None = None  # --template: each sentence inside it (None: the model's saved one, if any)
    template_denoise: bool | None = None  # --template-denoise (None: as saved; off with a --template given)


@dataclass
class Subject:
    """One checkpoint (or trajectory point) being measured: what the sections read, and where they write.

    ``layered`` (every layer's pooled vectors) and ``memo`` (the encoder remembering every sentence vector) exist
    for a checkpoint, not for a trajectory point. ``maps`` collects the post-hoc maps fitted so far
    ({variant: vectors -> mapped vectors}), for the sections measured after them."""

    encoder: object
    data: object  # SentenceData
    common: Common
    sentence: np.ndarray  # the sentence vectors of data.sentences
    summary: dict  # the checkpoint's entry in report.json
    arrays: dict = field(default_factory=dict)  # arrays for the figures (not in report.json)
    layered: object | None = None  # LayerEmbeddings
    memo: object | None = None  # MemoEncoder
    maps: dict = field(default_factory=dict)


Chapter = tuple[float, list[str]]  # (place in report.md, its lines)
Figure = tuple[float, str]  # (place among the figures, the PNG's path)


class Section:
    """One measure of the report. Every hook has a no-op default; ``place`` orders the sections (flags,
    measurement, options, printed lines) and, unless a chapter or figure says otherwise, their chapters and figures.
    Chapters are rendered from report.json alone, so a saved report re-renders without the run."""

    place: float = 0.0

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        """Its command-line flags."""

    def configure(self, args) -> None:
        """Check its flags (a one-line UserError) and keep its settings; before any input is read."""

    def load(self) -> None:
        """Read its own inputs (corpora); only when checkpoints are measured, once the output directory is claimed."""

    def wants_sentences(self) -> bool:
        """Whether it measures the analysis sentences even without a checkpoint (a trajectory's points)."""
        return False

    def options(self) -> dict:
        """Its entries in report.json's ``options``."""
        return {}

    def measure(self, subject: Subject) -> None:
        """Measure one checkpoint: write its entry into ``subject.summary``."""

    def measure_point(self, subject: Subject) -> None:
        """Measure one point of a training trajectory (no layers, no memo)."""

    def chapters(self, report: dict) -> list[Chapter]:
        return []

    def figures(self, report: dict, arrays: dict, out_dir: Path) -> list[Figure]:
        """Draw its figures (``arrays``: per checkpoint label, the arrays its measure kept)."""
        return []

    def headline(self, report: dict) -> list[str]:
        """Printed first (the sentence table)."""
        return []

    def summary_lines(self, checkpoint: dict) -> list[str]:
        """Its printed summary of one checkpoint."""
        return []

    def printed(self, report: dict) -> list[str]:
        """Printed after every checkpoint's summary lines (tables across checkpoints, the trajectory)."""
        return []


def fmt(v, digits: int = 3) -> str:
    """A report number: n/a for None, scientific notation for the very small and very large."""
    if v is None:
        return "n/a"
    if isinstance(v, float) and abs(v) != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def at_least(args, names: tuple[str, ...], minimum: int = 1, why: str = "") -> None:
    """Each flag in ``names`` (argparse dests) is at least ``minimum``, else one line naming the flag."""
    from simcse_lab.errors import UserError

    for name in names:
        if getattr(args, name) < minimum:
            raise UserError(f"--{name.replace('_', '-')} must be at least {minimum}{why}")
