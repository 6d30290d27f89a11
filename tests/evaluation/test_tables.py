"""The printed tables (STS, retrieval, the geometry report's sentence table and markdown report) stay
byte-identical: the expected text below was captured from the output before the tables shared one printer."""

from __future__ import annotations

from conftest import FIXTURES

from simcse_lab.analysis import report
from simcse_lab.evaluation import retrieval, sts

STS_RESULTS = [
    {"model": "all-MiniLM-L6-v2", "pooler": "avg", "precision": "fp32", "avg": 78.8714,
     "tasks": {"sts12": {"spearman": 72.3712}, "stsb": {"spearman": 82.0349}, "sickr": {"spearman": -5.5}}},
    {"model": "runs/a-rather-long-model-directory-name/best", "pooler": "modules", "precision": "bf16", "avg": 100.0,
     "tasks": {"sts12": {"spearman": 100.0}, "stsb": {"spearman": 9.999}, "sickr": {"spearman": 0.004}}},
]
RETRIEVAL_RESULTS = [
    {"model": "m1", "pooler": "avg", "avg": {"recall@1": 50.0, "recall@5": 75.125, "mrr@10": 61.0},
     "tasks": {"stsb": {"recall@1": 40.0, "recall@5": 70.25, "mrr@10": 55.5, "queries": 10, "corpus": 30},
               "sickr": {"recall@1": 60.0, "recall@5": 80.0, "mrr@10": 66.5, "queries": 12, "corpus": 40}}},
    {"model": "a-much-longer-model-name", "pooler": "cls_before_pooler",
     "avg": {"recall@1": 5.0, "recall@5": 100.0, "mrr@10": 0.0},
     "tasks": {"stsb": {"recall@1": 5.0, "recall@5": 100.0, "mrr@10": 0.0, "queries": 1, "corpus": 2},
               "sickr": {"recall@1": 5.0, "recall@5": 100.0, "mrr@10": 0.0, "queries": 1, "corpus": 2}}},
]
SENTENCE = {"alignment": 0.1234567, "uniformity": -2.5, "mean_cosine": 0.0004, "positive_cosine_fraction": 1.0,
            "partition_isotropy": 12345.6, "isoscore": 0.0, "effective_rank": 7, "top_pc_share": None}
CHECKPOINTS = [{"label": "all-MiniLM-L6-v2 [cls_before_pooler]", "sentence": SENTENCE},
               {"label": "x [avg]", "sentence": {**SENTENCE, "alignment": None, "isoscore": 0.98765}},
               {"label": "no sentence key"}]
LAYER = {"isoscore": 0.5, "mean_cosine": 0.25, "partition_isotropy": 1e-5}
REPORT = {
    "command": "simcse-lab analyze --model m",
    "data": {"source": "stsb/dev", "sentences": 30, "positive_pairs": 10},
    "options": {"max_pairs": 200000, "seed": 0, "token_corpus": "wiki", "whiten_corpus": "wiki"},
    "checkpoints": [
        {"label": "m [cls]", "sentence": SENTENCE, "layers": [{"avg": LAYER, "cls": LAYER}] * 2,
         "tokens": {"vocab_analysed": 100, "unseen_share": 0.25, "spearman_count_norm": -0.5, "k": 3,
                    "buckets": {"rank 1-50": {"tokens": 50, "mean_norm": 1.5, "mean_knn_distance": 0.75,
                                              "mean_cosine_within": None, "mean_cosine_to_mean_direction": 0.1},
                                "unseen": {"tokens": 0}}},
         "whitening": {"k": 8, "fitted_on": 30, "split": "test",
                       "sts_spearman": {"stsb": {"plain": 70.123, "whitened": 72.5}},
                       "avg": {"plain": 70.123, "whitened": 72.5}, "sentence_after_whitening": SENTENCE}},
        {"label": "n [avg]", "sentence": SENTENCE, "layers": [{"avg": LAYER, "cls": LAYER}]},
    ],
    "trajectory": {"path": "metrics.jsonl", "points": 3, "first": {"step": 10}, "last": {"step": 30}},
    "figures": ["/tmp/out/align_uniform.png", "layer_profile.png"],
}


def test_sts_table():
    assert sts.format_table(STS_RESULTS) == (
        "model                                                          STS12   STS-B  SICK-R    Avg.\n"
        "--------------------------------------------------------------------------------------------\n"
        "all-MiniLM-L6-v2 [avg, fp32]                                   72.37   82.03   -5.50   78.87\n"
        "runs/a-rather-long-model-directory-name/best [modules, bf16]  100.00   10.00    0.00  100.00")
    assert sts.format_table(STS_RESULTS[:1], ["before"]) == (
        "model          STS12   STS-B  SICK-R    Avg.\n"
        "--------------------------------------------\n"
        "before         72.37   82.03   -5.50   78.87")


def test_retrieval_table():
    block = ("{task:<45} recall@1  recall@5    mrr@10\n"
             "--------------------------------------------------------------------------\n"
             "m1 [avg]                                         {a}\n"
             "a-much-longer-model-name [cls_before_pooler]      5.00    100.00      0.00")
    assert retrieval.format_table(RETRIEVAL_RESULTS) == "\n\n".join([
        block.format(task="stsb", a="40.00     70.25     55.50"),
        block.format(task="sickr", a="60.00     80.00     66.50"),
        block.format(task="avg", a="50.00     75.12     61.00")])


def test_sentence_tables():
    assert report.sentence_table(CHECKPOINTS) == (
        "checkpoint                               align   uniform  mean cos     cos>0      I(Z)  IsoScore  eff.rank    top PC\n"
        "--------------------------------------------------------------------------------------------------------------------\n"
        "all-MiniLM-L6-v2 [cls_before_pooler]     0.123    -2.500  4.00e-04     1.000  1.23e+04     0.000         7       n/a\n"
        "x [avg]                                    n/a    -2.500  4.00e-04     1.000  1.23e+04     0.988         7       n/a")
    assert report.sentence_table(CHECKPOINTS, markdown=True) == (
        "| checkpoint | align | uniform | mean cos | cos>0 | I(Z) | IsoScore | eff.rank | top PC |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| all-MiniLM-L6-v2 [cls_before_pooler] | 0.123 | -2.500 | 4.00e-04 | 1.000 | 1.23e+04 | 0.000 | 7 | n/a |\n"
        "| x [avg] | n/a | -2.500 | 4.00e-04 | 1.000 | 1.23e+04 | 0.988 | 7 | n/a |")


def test_markdown_report():
    assert report.render_markdown(REPORT) == (FIXTURES / "report_golden.md").read_text()
