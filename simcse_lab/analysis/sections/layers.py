"""Layers: isotropy of every layer's mean-pooled and [CLS] vectors (layer 0 = the embedding layer)."""

from __future__ import annotations

from simcse_lab.analysis.sections.base import Section, Subject, fmt
from simcse_lab.evaluation import isotropy as geometry
from simcse_lab.evaluation.tables import markdown_table

KEYS = ("isoscore", "mean_cosine", "partition_isotropy")


class Layers(Section):
    place = 20.0

    def measure(self, subject: Subject) -> None:
        layered, common = subject.layered, subject.common
        subject.summary["layers"] = [
            {pooling: geometry.isotropy_profile(getattr(layered, pooling)[layer], max_pairs=common.max_pairs,
                                                seed=common.seed)
             for pooling in ("avg", "cls") if getattr(layered, pooling) is not None}  # no cls: a family without [CLS]
            for layer in range(layered.num_layers)
        ]

    def chapters(self, report: dict) -> list:
        if not report["checkpoints"]:
            return []
        out = ["## Per-layer isotropy (layer 0 = embedding layer)", ""]
        head = ["layer", "avg IsoScore", "avg mean cos", "avg I(Z)", "cls IsoScore", "cls mean cos", "cls I(Z)"]
        for c in report["checkpoints"]:
            rows = [[str(i)] + [fmt(layer[p][k]) if p in layer else "n/a" for p in ("avg", "cls") for k in KEYS]
                    for i, layer in enumerate(c["layers"])]
            out += [f"### {c['label']}", "", markdown_table(head, rows), ""]
        return [(self.place, out)]

    def figures(self, report: dict, arrays: dict, out_dir) -> list:
        from simcse_lab.analysis import plots

        cks = report["checkpoints"]
        if not cks:
            return []
        return [(self.place, plots.layer_profile({c["label"]: c["layers"] for c in cks}, KEYS,
                                                 out_dir / "layer_profile.png"))]
