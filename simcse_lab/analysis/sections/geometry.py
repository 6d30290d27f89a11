"""Sentence geometry: alignment and uniformity (SimCSE's, alpha = 2, t = 2) and isotropy of the L2-normalised
sentence vectors of the analysis sentences; the singular spectrum and the alignment-uniformity arrows."""

from __future__ import annotations

import numpy as np

from simcse_lab.analysis.sections.base import Section, Subject, fmt
from simcse_lab.evaluation import isotropy as geometry
from simcse_lab.evaluation.sts import POSITIVE_GOLD
from simcse_lab.evaluation.sts_geometry import unit_rows
from simcse_lab.evaluation.tables import markdown_table, text_table
from simcse_lab.evaluation.vectors import alignment, l2_normalize, uniformity

SENTENCE_COLUMNS = (("alignment", "align"), ("uniformity", "uniform"), ("mean_cosine", "mean cos"),
                    ("positive_cosine_fraction", "cos>0"), ("partition_isotropy", "I(Z)"),
                    ("isoscore", "IsoScore"), ("effective_rank", "eff.rank"), ("top_pc_share", "top PC"))


def sentence_metrics(x: np.ndarray, pairs: list[tuple[int, int]], max_pairs: int, seed: int) -> dict:
    u = unit_rows(x)  # as ``eval`` normalises its rows: its geometry equals this on the same sentences
    out = {"alignment": None, "alignment_pairs": len(pairs)}
    if pairs:
        a, b = np.array(pairs).T
        out["alignment"] = alignment(u[a], u[b])
    out["uniformity"] = uniformity(u)
    out.update(geometry.isotropy_profile(u, normalize=False, max_pairs=max_pairs, seed=seed))
    return out


def sentence_table(checkpoints: list[dict], markdown: bool = False, key: str = "sentence") -> str:
    head = ["checkpoint"] + [short for _, short in SENTENCE_COLUMNS]
    rows = [[c["label"]] + [fmt(c[key][k]) for k, _ in SENTENCE_COLUMNS] for c in checkpoints if key in c]
    return markdown_table(head, rows) if markdown else text_table(head, rows, width=9)


class SentenceGeometry(Section):
    place = 10.0

    def measure(self, subject: Subject) -> None:
        self.measure_point(subject)
        subject.arrays["singular"] = geometry.singular_values(l2_normalize(subject.sentence))

    def measure_point(self, subject: Subject) -> None:
        subject.summary["sentence"] = sentence_metrics(subject.sentence, subject.data.pairs,
                                                       subject.common.max_pairs, subject.common.seed)

    def chapters(self, report: dict) -> list:
        cks = report["checkpoints"]
        if not cks:
            return []
        data, opts = report["data"], report["options"]
        return [(self.place, [
            f"Analysis sentences: {data['source']} ({data['sentences']} distinct sentences, "
            f"{data['positive_pairs']} positive pairs with gold > {POSITIVE_GOLD:g}). "
            "Rows are L2-normalised; alignment (alpha=2) and uniformity (t=2) as in SimCSE; "
            f"pair statistics over at most {opts['max_pairs']} distinct pairs (seed {opts['seed']}).", "",
            "## Sentence embeddings", "", sentence_table(cks, markdown=True), ""])]

    def figures(self, report: dict, arrays: dict, out_dir) -> list:
        from simcse_lab.analysis import plots

        cks = report["checkpoints"]
        if not cks:
            return []
        out = [(self.place, plots.singular_spectrum({k: a["singular"] for k, a in arrays.items()},
                                                    out_dir / "singular_spectrum.png"))]
        if all(c["sentence"]["alignment"] is not None for c in cks):
            points = {c["label"]: (c["sentence"]["alignment"], c["sentence"]["uniformity"]) for c in cks}
            # after the layer profile, where the report has always shown it
            out.append((25.0, plots.align_uniform(points, [tuple(a) for a in report["arrows"]],
                                                  out_dir / "align_uniform.png")))
        return out

    def headline(self, report: dict) -> list[str]:
        return [sentence_table(report["checkpoints"])] if report["checkpoints"] else []
