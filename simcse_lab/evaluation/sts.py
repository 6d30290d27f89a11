"""STS evaluation with SimCSE's protocol on SentEval data.

Cosine similarity between the two sentence vectors of each pair, Spearman (and Pearson) against the
gold scores, no regressor. For STS12-16 the task score aggregates its subsets:

- ``all``   : one correlation over the concatenation of all subsets (SimCSE's reported setting);
- ``wmean`` : the mean of per-subset correlations weighted by subset size;
- ``mean``  : the plain mean of per-subset correlations.

STS-B and SICK-R have a single subset per split, so the three coincide. Each distinct sentence of the
whole suite is encoded once. The gold-score cut-offs used elsewhere (alignment pairs, retrieval
relevance) are named here, with the data they read.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.stats import pearsonr, spearmanr

from simcse_lab.data import registry
from simcse_lab.data.readers import PairSet
from simcse_lab.errors import UserError
from simcse_lab.evaluation.pair_scores import pair_record
from simcse_lab.evaluation.sts_geometry import geometry_table, suite_geometry, task_geometry, unit_rows
from simcse_lab.evaluation.tables import text_table
from simcse_lab.evaluation.vectors import cosine_rows
from simcse_lab.modeling.sentence_encoder import SentenceEncoder

# STS gold scores run from 0 to 5; two published conventions cut at 4, and both are kept exactly:
POSITIVE_GOLD = 4.0  # a positive pair for alignment: gold > POSITIVE_GOLD, strictly (SimCSE's analysis, footnote 3:
#                      "STS-B pairs with a score higher than 4 as p_pos"; Wang & Isola define no STS cut-off)
RELEVANT_GOLD = 4.0  # a relevant retrieval partner: gold >= RELEVANT_GOLD

TASKS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr")
AGGREGATES = ("all", "wmean", "mean")
SPLITS = ("train", "dev", "test")
LABELS = {"sts12": "STS12", "sts13": "STS13", "sts14": "STS14", "sts15": "STS15", "sts16": "STS16",
          "stsb": "STS-B", "sickr": "SICK-R"}


def parse_tasks(text: str) -> list[str]:
    tasks = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise UserError(f"unknown task(s) {', '.join(unknown) or '(none)'}; choose from {','.join(TASKS)}")
    return list(dict.fromkeys(tasks))


def load_task(task: str, split: str) -> dict[str, PairSet]:
    """The scored subsets of one task split, by subset name."""
    data = registry.load_split(task, split)
    return data if isinstance(data, dict) else {data.name: data}


def correlations(pred: np.ndarray, gold: np.ndarray) -> dict:
    if len(pred) < 2:
        raise UserError("a correlation needs at least 2 scored pairs")
    return {"spearman": 100.0 * float(spearmanr(pred, gold)[0]),
            "pearson": 100.0 * float(pearsonr(pred, gold)[0]),
            "n": int(len(gold))}


def aggregate(per_subset: dict[str, tuple[np.ndarray, np.ndarray]], mode: str) -> dict:
    """Task score from per-subset (predicted, gold) arrays, plus the per-subset scores."""
    if mode not in AGGREGATES:
        raise UserError(f"unknown aggregate {mode!r}; choose from {', '.join(AGGREGATES)}")
    subsets = {name: correlations(pred, gold) for name, (pred, gold) in per_subset.items()}
    n = sum(s["n"] for s in subsets.values())
    if mode == "all":
        pred = np.concatenate([p for p, _ in per_subset.values()])
        gold = np.concatenate([g for _, g in per_subset.values()])
        result = correlations(pred, gold)
    else:
        weights = np.array([s["n"] if mode == "wmean" else 1.0 for s in subsets.values()], dtype=np.float64)
        result = {
            key: float(np.average([s[key] for s in subsets.values()], weights=weights))
            for key in ("spearman", "pearson")
        }
        result["n"] = n
    result["subsets"] = subsets
    return result


def encode_pairsets(encoder: SentenceEncoder, pairsets, progress: bool = False
                    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Each distinct sentence encoded once: (its vectors, [(vectors of sent1, vectors of sent2) per PairSet])."""
    sentences = distinct_sentences(pairsets)
    vectors = encoder.encode(sentences, progress=progress)
    row = {s: i for i, s in enumerate(sentences)}
    return vectors, [(vectors[[row[s] for s in ps.sent1]], vectors[[row[s] for s in ps.sent2]]) for ps in pairsets]


def check_split(task: str, split: str) -> None:
    """A split the SentEval task has (STS12-16: test only), else one line saying what would work."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if task.startswith("sts1") and split != "test":
        raise UserError(f"{task} has only a test split (use --split test, or --tasks stsb,sickr for dev)")


def distinct_sentences(pairsets) -> list[str]:
    """The sentences of ``pairsets``, each once, sorted: the rows of :func:`encode_pairsets`' vectors."""
    return sorted({s for ps in pairsets for s in ps.sent1 + ps.sent2})


def evaluate(encoder: SentenceEncoder, tasks=TASKS, split: str = "test", mode: str = "all", progress: bool = False,
             geometry: bool = True, keep_pairs: bool = False) -> dict:
    """Score ``encoder`` on ``tasks``; returns the JSON-ready result dict (correlations x100). With ``geometry``,
    each task also gets alignment and uniformity, and ``geometry`` the isotropy of every sentence encoded
    (:mod:`simcse_lab.evaluation.sts_geometry`), from the same vectors; with ``keep_pairs``, each task keeps its
    per-pair gold and cosine scores (:func:`simcse_lab.evaluation.pair_scores.pair_record`)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    data = {}
    for task in tasks:
        check_split(task, split)
        data[task] = load_task(task, split)
    return score_sets(encoder, data, split, mode, progress, geometry=geometry, keep_pairs=keep_pairs)


def score_sets(encoder: SentenceEncoder, data: dict[str, dict[str, PairSet]], split: str, mode: str = "all",
               progress: bool = False, geometry: bool = True, positive_gold: dict[str, float] | None = None,
               keep_pairs: bool = False) -> dict:
    """Score ``encoder`` on loaded tasks (``{task: {subset: PairSet}}``, SentEval's or a user's), each distinct
    sentence of them all encoded once; the JSON-ready result dict of :func:`evaluate`. ``positive_gold``: a task's
    own alignment cut-off where its scale is not SentEval's 0-5 (a user's file), else POSITIVE_GOLD; ``keep_pairs``:
    keep each task's per-pair scores under ``"pairs"`` (``eval --save-scores``, what ``compare`` tests on)."""
    start = time.perf_counter()
    pairsets = [ps for subsets in data.values() for ps in subsets.values()]
    vectors, pairs = encode_pairsets(encoder, pairsets, progress=progress)
    encoded = iter(pairs)
    results = {}
    for task, subsets in data.items():
        per_subset = {}
        for name, ps in subsets.items():
            a, b = next(encoded)
            per_subset[name] = (cosine_rows(a, b), np.asarray(ps.scores, dtype=np.float64))
        results[task] = aggregate(per_subset, mode)
        if keep_pairs:
            results[task]["pairs"] = pair_record(subsets, {name: pred for name, (pred, _) in per_subset.items()})
    extra = {}
    if geometry:
        geometry_start, geometry_cpu = time.perf_counter(), time.process_time()
        unit, rows = unit_rows(vectors), {s: i for i, s in enumerate(distinct_sentences(pairsets))}
        for task, subsets in data.items():
            cut = (positive_gold or {}).get(task, POSITIVE_GOLD)
            results[task].update(task_geometry(unit, rows, list(subsets.values()), cut))
        extra["geometry"] = {**suite_geometry(unit, results),
                             "seconds": time.perf_counter() - geometry_start,
                             "cpu_seconds": time.process_time() - geometry_cpu}
    seconds = time.perf_counter() - start
    return {
        **encoder.describe(),
        "split": split,
        "aggregate": mode,
        "scale": "correlation x 100",
        "tasks": results,
        "avg": float(np.mean([r["spearman"] for r in results.values()])),
        "sentences_encoded": len(vectors),
        "seconds": seconds,
        **extra,
    }


def format_table(results: list[dict], names: list[str] | None = None, labels: dict[str, str] | None = None) -> str:
    """A SimCSE-style table: Spearman x100 per task and the average, one row per result (``labels``: column
    heads of tasks beyond SentEval's, e.g. a user's file)."""
    tasks = list(results[0]["tasks"])
    names = names or [f"{r['model']} [{r['pooler']}, {r['precision']}]" for r in results]
    labels = {**LABELS, **(labels or {})}
    head = ["model"] + [labels.get(t, t) for t in tasks] + ["Avg."]
    rows = [[name] + [f"{r['tasks'][t]['spearman']:.2f}" for t in tasks] + [f"{r['avg']:.2f}"]
            for name, r in zip(names, results)]
    return text_table(head, rows, width=7, min_first=12)


def format_geometry(results: list[dict], names: list[str] | None = None, labels: dict[str, str] | None = None) -> str:
    """The geometry beside :func:`format_table`: alignment and uniformity per task, isotropy of all sentences
    ("" when no result carries geometry)."""
    names = names or [f"{r['model']} [{r['pooler']}, {r['precision']}]" for r in results]
    return geometry_table(results, names, {**LABELS, **(labels or {})})
