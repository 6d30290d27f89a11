"""The geometry report behind ``simcse-lab analyze``: one or more checkpoints measured the same way, by the
report's sections (:mod:`simcse_lab.analysis.sections`), and the report put together from theirs.

Per checkpoint, the analysis sentences are encoded once (sentence embedding + every layer's mean and [CLS]
vectors, :mod:`simcse_lab.analysis.layers`), and every section measures from those arrays, in place order
(the post-hoc maps re-use the cached sentence vectors, and the token dynamics come after them, so that the maps
also apply to the last layer's token vectors). report.md is every section's chapters in place order, then the
figures. A training trajectory is measured point by point (:func:`measure_point`) on encoders the caller builds
from the run's checkpoints (reading training checkpoints is not this package's business).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from simcse_lab.analysis import sections as report_sections
from simcse_lab.analysis.inputs import Checkpoint, SentenceData
from simcse_lab.analysis.layers import encode_layers
from simcse_lab.analysis.sections.base import Common, Section, Subject
from simcse_lab.analysis.sections.post_hoc_maps import comparison_rows, comparison_table  # noqa: F401 (API)
from simcse_lab.analysis.sections.geometry import sentence_metrics, sentence_table  # noqa: F401 (API)
from simcse_lab.analysis.sections.token_dynamics import stop_list_sentence  # noqa: F401 (API)
from simcse_lab.modeling.encoder import Encoder, use_template
from simcse_lab.modeling.sentence_encoder import SentenceEncoder


class MemoEncoder:
    """A :class:`SentenceEncoder` that remembers every sentence vector its encoder produced, so no
    sentence is encoded twice."""

    def __init__(self, encoder: SentenceEncoder):
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def put(self, sentences: list[str], vectors: np.ndarray) -> None:
        self.cache.update(zip(sentences, vectors))

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in sentences if s not in self.cache))
        if missing:
            self.put(missing, self.encoder.encode(missing, progress=progress))
        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[s] for s in sentences])

    def describe(self) -> dict:
        return self.encoder.describe()


def analyze_checkpoint(ckpt: Checkpoint, data: SentenceData, sections: list[Section],
                       common: Common) -> tuple[dict, dict]:
    """(JSON summary, arrays for the figures) for one checkpoint."""
    start = time.perf_counter()
    encoder = Encoder(ckpt.model, pooler=ckpt.pooler, precision=common.precision, batch_size=common.batch_size,
                      bidirectional=common.bidirectional)
    use_template(encoder, common.template, common.template_denoise)
    layered = encode_layers(encoder, data.sentences, progress=common.progress)
    encode_seconds = time.perf_counter() - start
    memo = MemoEncoder(encoder)
    memo.put(data.sentences, layered.sentence)
    summary = {"label": ckpt.label, **encoder.describe(), "dim": int(layered.sentence.shape[1])}
    subject = Subject(encoder, data, common, layered.sentence, summary, layered=layered, memo=memo)
    for section in sections:
        section.measure(subject)
    summary["seconds"] = {"encode_layers": encode_seconds, "total": time.perf_counter() - start}
    return summary, subject.arrays


def measure_point(encoder, label: str, data: SentenceData, sections: list[Section], common: Common) -> dict:
    """One point of a training trajectory (an encoder built from one of the run's checkpoints), measured by
    every section that measures points (sentence geometry, token dynamics)."""
    start = time.perf_counter()
    point = {"label": label, **encoder.describe()}
    vectors = encoder.encode(data.sentences, progress=common.progress)
    subject = Subject(encoder, data, common, vectors, point)
    for section in sections:
        section.measure_point(subject)
    point["seconds"] = time.perf_counter() - start
    return point


def draw_figures(report: dict, arrays: dict, sections: list[Section], out_dir: Path) -> list[str]:
    """Every section's figures (``arrays``: per checkpoint label), in place order."""
    figures = [f for section in sections for f in section.figures(report, arrays, out_dir)]
    return [path for _, path in sorted(figures, key=lambda f: f[0])]


def render_markdown(report: dict, sections: list[Section] | None = None) -> str:
    """report.md, from report.json alone: every section's chapters in place order, then the figures."""
    chapters = [c for section in (sections or report_sections.build()) for c in section.chapters(report)]
    out = ["# Embedding geometry report", "", f"Command: `{report['command']}`", ""]
    for _, lines in sorted(chapters, key=lambda c: c[0]):
        out += lines
    if report["figures"]:
        out += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in report["figures"]] + [""]
    return "\n".join(out)


def printed_summary(report: dict, sections: list[Section]) -> list[str]:
    """What ``analyze`` prints: each section's headline (the sentence table), each checkpoint's summary lines,
    then each section's closing lines (the comparison table, the trajectory)."""
    lines = [line for section in sections for line in section.headline(report)]
    lines += [line for c in report["checkpoints"] for section in sections for line in section.summary_lines(c)]
    return lines + [line for section in sections for line in section.printed(report)]
