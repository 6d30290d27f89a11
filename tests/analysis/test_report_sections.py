"""The analysis report's extension points without a model: a new section is one class (its chapter, options and
printed lines land at its place), and a new post-hoc map is one class (eval's wrapper, the comparison rows and the
report chapter take it as they take whitening and flow)."""

from __future__ import annotations

import numpy as np

from simcse_lab.analysis import report, sections
from simcse_lab.analysis.maps import MAPS
from simcse_lab.analysis.post_hoc import MappedEncoder, PostHocMap, fit_on_corpus
from simcse_lab.analysis.sections import post_hoc_maps
from simcse_lab.analysis.sections.base import Section

SENTENCE = {"alignment": 0.25, "uniformity": -2.0, "mean_cosine": 0.1, "positive_cosine_fraction": 0.5,
            "partition_isotropy": 0.5, "isoscore": 0.2, "effective_rank": 5.0, "top_pc_share": 0.3}


class Extra(Section):
    place = 45.0

    def options(self) -> dict:
        return {"extra": 1}

    def chapters(self, rep: dict) -> list:
        return [(self.place, ["## Extra measure", ""])]

    def summary_lines(self, checkpoint: dict) -> list[str]:
        return [f"{checkpoint['label']}: extra"]


class Centered:
    method = "centering"

    def __init__(self, mean: np.ndarray, n: int):
        self.mean, self.fitted_on = mean, n

    output_dim = property(lambda self: len(self.mean))

    def apply(self, x):
        return np.asarray(x, dtype=np.float64) - self.mean

    def describe(self) -> dict:
        return {"fitted_on": self.fitted_on}

    def fit_record(self) -> dict:
        return {}

    def report_head(self, fit_seconds: float) -> dict:
        return {"fitted_on": self.fitted_on}


class Centering(PostHocMap):
    name, variant, flag, title, place = "centering", "centred", "center", "Centring baseline", 65.0

    def fit(self, vectors, settings, seed):
        return Centered(np.asarray(vectors, dtype=np.float64).mean(0), len(vectors))


def checkpoint(label: str) -> dict:
    return {"label": label, "sentence": SENTENCE, "layers": [{"avg": {"isoscore": 0.5, "mean_cosine": 0.1,
                                                                      "partition_isotropy": 0.2}}],
            "centering": {"fitted_on": 7, "split": "dev", "sts_spearman": {"stsb": {"plain": 70.0, "centred": 71.0}},
                          "avg": {"plain": 70.0, "centred": 71.0},
                          "sentence_after_centering": {**SENTENCE, "isoscore": 0.9}}}


def test_a_new_section_lands_at_its_place(monkeypatch):
    monkeypatch.setattr(post_hoc_maps, "MAPS", MAPS + (Centering(),))
    cks = [checkpoint("a [avg]"), checkpoint("b [cls]")]
    rep = {"command": "simcse-lab analyze --model a", "data": {"source": "x", "sentences": 3, "positive_pairs": 1},
           "options": {"max_pairs": 10, "seed": 0, "center_corpus": "wiki", "token_dynamics": None},
           "checkpoints": cks, "comparison": post_hoc_maps.comparison_rows(cks), "trajectory": None, "figures": []}
    secs = sections.build() + [Extra()]
    md = report.render_markdown(rep, secs)
    order = [md.index(t) for t in ("## Sentence embeddings", "## Comparison", "## Per-layer isotropy",
                                   "## Extra measure", "## Centring baseline")]
    assert order == sorted(order)
    assert "Fitted on wiki (7 sentences); STS Spearman x100 on the dev split." in md
    assert [(r["label"], r["variant"], r["sts_avg"], r["isoscore"]) for r in rep["comparison"]] == [
        ("a [avg]", "raw", 70.0, 0.2), ("a [avg]", "+ centering", 71.0, 0.9),
        ("b [cls]", "raw", 70.0, 0.2), ("b [cls]", "+ centering", 71.0, 0.9)]
    printed = report.printed_summary(rep, secs)
    assert printed[1:5] == ["a [avg]: STS avg 70.00 -> centred 71.00", "a [avg]: extra",
                            "b [cls]: STS avg 70.00 -> centred 71.00", "b [cls]: extra"]
    assert "+ centering" in printed[-1]  # the comparison table, printed once a map ran


def test_a_new_map_wraps_an_encoder_like_whitening_and_flow():
    class Fake:
        dim = 3

        def encode(self, sentences, progress=False):
            return np.array([[float(len(s)), 1.0, 2.0] for s in sentences], dtype=np.float32)

        def describe(self):
            return {"model": "fake"}

    fitted, seconds = fit_on_corpus(Centering(), Fake(), ["a", "abc"], None, seed=0)
    encoder = MappedEncoder(Fake(), fitted)
    assert seconds >= 0 and encoder.dim == 3
    np.testing.assert_allclose(encoder.encode(["ab", "abcd"]), [[0.0, 0, 0], [2.0, 0, 0]])
    assert encoder.encode(["ab"]).dtype == np.float32
    assert encoder.describe() == {"model": "fake", "centering": {"fitted_on": 2}}
