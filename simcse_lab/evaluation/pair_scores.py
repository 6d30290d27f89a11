"""Per-pair STS scores: what ``eval --save-scores`` keeps of each task, and reading it back for ``compare``.

A task's record (``result["tasks"][task]["pairs"]``) holds its pairs in the order they were scored: its subsets
in order with their sizes (a pair's id is its subset and its index there), the gold scores, the model's cosine
similarities (float64, written in Python's shortest round-trip form, so Spearman recomputes exactly), and
``sha256``, a digest of every pair's subset, two sentences and gold score: two records with the same digest
scored the same pairs in the same order. Spearman of a task is over the concatenated subsets (``--aggregate
all``, SimCSE's number), the only aggregate whose per-pair scores give the task's score directly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from simcse_lab.errors import UserError
from simcse_lab.io import read_json

FORMAT = 1
TEST_SCORES = "test_scores.json"  # a training run's test table with its per-pair scores, beside summary.json


def pairs_digest(subsets: dict) -> str:
    """sha256 over each pair's subset name, sentences and gold score, in order (``{subset: PairSet}``)."""
    digest = hashlib.sha256()
    for name, ps in subsets.items():
        for a, b, gold in zip(ps.sent1, ps.sent2, ps.scores):
            digest.update(json.dumps([name, a, b, float(gold)]).encode() + b"\n")
    return digest.hexdigest()


def pair_record(subsets: dict, cosine: dict[str, np.ndarray]) -> dict:
    """The JSON record of one task's pairs: ``subsets`` ``{name: PairSet}``, ``cosine`` ``{name: scores}``."""
    return {"format": FORMAT, "order": "subsets in order, each pair in its file order",
            "subsets": {name: len(ps) for name, ps in subsets.items()}, "sha256": pairs_digest(subsets),
            "gold": [float(g) for ps in subsets.values() for g in ps.scores],
            "cosine": [float(c) for name in subsets for c in cosine[name]]}


def without_pairs(result: dict) -> dict:
    """A copy of an STS result without its tasks' per-pair scores (the table a summary keeps)."""
    return {**result, "tasks": {task: {k: v for k, v in entry.items() if k != "pairs"}
                                for task, entry in result["tasks"].items()}}


@dataclass
class TaskPairs:
    """One task's pairs as scored by one model."""

    task: str
    subsets: dict[str, int]
    sha256: str
    gold: np.ndarray
    cosine: np.ndarray
    spearman: float  # as the result recorded it (x100)

    def same_pairs(self, other: TaskPairs) -> bool:
        return (self.subsets == other.subsets and self.sha256 == other.sha256
                and np.array_equal(self.gold, other.gold))


@dataclass
class ScoredResult:
    """An STS result with per-pair scores: where it came from, a label, its tasks' pairs, its run record."""

    source: str
    label: str
    tasks: dict[str, TaskPairs]
    record: dict


def result_label(result: dict) -> str:
    return f"{result.get('model', '?')} [{result.get('pooler') or 'default'}, {result.get('precision', '?')}]"


def scored_result(result: dict, source: str) -> ScoredResult:
    """The per-pair scores of an eval result dict (``source`` names it in errors): every STS task must have them,
    scored with ``--aggregate all``, and they must give the task's recorded Spearman."""
    if result.get("aggregate", "all") != "all":
        raise UserError(f"{source}: scored with --aggregate {result['aggregate']}; compare tests Spearman over the "
                        "concatenated subsets: evaluate with --aggregate all")
    tasks = result.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise UserError(f"{source}: no STS tasks (not an eval --output file?)")
    pairs = {task: task_pairs(task, entry, source) for task, entry in tasks.items()}
    record = {**result.get("reproducibility", {}),
              **{k: result[k] for k in ("precision", "device", "split") if k in result}}
    return ScoredResult(source, result_label(result), pairs, record)


def task_pairs(task: str, entry: dict, source: str) -> TaskPairs:
    record = entry.get("pairs") if isinstance(entry, dict) else None
    if not isinstance(record, dict):
        raise UserError(f"{source}: task {task} has no per-pair scores (evaluate with eval --save-scores)")
    try:
        gold = np.asarray(record["gold"], dtype=np.float64)
        cosine = np.asarray(record["cosine"], dtype=np.float64)
        subsets, digest = {str(k): int(v) for k, v in record["subsets"].items()}, str(record["sha256"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{source}: task {task}: malformed per-pair scores ({err})") from None
    if gold.ndim != 1 or gold.shape != cosine.shape or len(gold) != sum(subsets.values()) or len(gold) < 2:
        raise UserError(f"{source}: task {task}: {len(cosine)} cosine and {len(gold)} gold scores for "
                        f"{sum(subsets.values())} pairs")
    recomputed = 100.0 * float(spearmanr(cosine, gold)[0])
    if not np.isclose(recomputed, float(entry.get("spearman", np.nan)), rtol=0, atol=1e-9):
        raise UserError(f"{source}: task {task}: its per-pair scores give Spearman {recomputed:.4f}, not the "
                        f"recorded {entry.get('spearman')}")
    return TaskPairs(task, subsets, digest, gold, cosine, recomputed)


def read_scores(path: str | Path) -> ScoredResult:
    """An ``eval --save-scores`` JSON file, checked (one line naming the file and the problem)."""
    path = Path(path)
    result = read_json(path)
    if not isinstance(result, dict):
        raise UserError(f"{path}: not an eval --output file (a JSON object)")
    return scored_result(result, str(path))


def check_same_pairs(a: ScoredResult, b: ScoredResult, tasks: list[str] | None = None) -> list[str]:
    """The tasks to compare (``tasks``, else all of them, which must then be the same in both), each scored by
    both on the same pairs; a task one lacks, or scored on other pairs, other gold or another order, is one line."""
    if tasks is None and list(a.tasks) != list(b.tasks):
        raise UserError(f"{a.source} has tasks {','.join(a.tasks)}, {b.source} has {','.join(b.tasks)}; "
                        "name the ones to compare with --tasks")
    tasks = tasks or list(a.tasks)
    for task in tasks:
        for r in (a, b):
            if task not in r.tasks:
                raise UserError(f"{r.source}: no task {task} (it has {', '.join(r.tasks)})")
        if not a.tasks[task].same_pairs(b.tasks[task]):
            raise UserError(f"task {task}: {a.source} and {b.source} scored different pairs (other pairs, gold "
                            "scores or order); compare needs the same pairs")
    return tasks
