"""Evaluating a list of tasks for ``eval``, and printing them.

STS tasks are scored together in one pass (the STS result dict and table as
they always were), every other type as its own section ``{type: {"split", "tasks", "avg", "seconds"}}``
(e.g. ``"retrieval"``), printed as one table per type: a row per task, a column per metric."""

from __future__ import annotations

import time

import numpy as np

from simcse_lab.evaluation.tables import text_table
from simcse_lab.evaluation.tasks.base import Task
from simcse_lab.evaluation.tasks.sts import STSTask, evaluate_together


def check_tasks(tasks: list[Task], split: str) -> None:
    """Every task can be evaluated on ``split`` and its data reads (a user's file is read here): before encoding."""
    for task in tasks:
        task.check(task.eval_split(split))


def evaluate_tasks(encoder, tasks: list[Task], split: str, aggregate: str = "all", progress: bool = False,
                   geometry: bool = True, keep_pairs: bool = False) -> dict:
    """The STS result dict of the STS tasks (or the encoder's description when there are none; ``keep_pairs``: with
    their per-pair scores), with a section per other task type."""
    sts = [t for t in tasks if isinstance(t, STSTask)]
    result = (evaluate_together(encoder, sts, split, aggregate, progress, geometry, keep_pairs) if sts
              else {**encoder.describe(), "split": split})
    for kind in dict.fromkeys(t.metadata.type for t in tasks if t not in sts):
        start = time.perf_counter()
        group = [t for t in tasks if t.metadata.type == kind]
        scores = {t.name: t.evaluate(encoder, t.eval_split(split)) for t in group}
        common = [m for m in group[0].metadata.metric_names if all(m in t.metadata.metric_names for t in group)]
        result[kind] = {"split": split, "scale": "x 100", "tasks": scores,
                        "avg": {m: float(np.mean([scores[t.name][m] for t in group])) for m in common},
                        "seconds": round(time.perf_counter() - start, 1)}
    return result


def format_sections(result: dict, tasks: list[Task]) -> list[str]:
    """One table per non-STS task type of ``result``: a row per task (its label), a column per metric."""
    tables = []
    for kind in dict.fromkeys(t.metadata.type for t in tasks if not isinstance(t, STSTask)):
        group = [t for t in tasks if t.metadata.type == kind]
        metrics = list(dict.fromkeys(m for t in group for m in t.metadata.metric_names))
        rows = [[t.label] + [f"{result[kind]['tasks'][t.name][m]:.2f}" if m in t.metadata.metric_names else "-"
                             for m in metrics] for t in group]
        tables.append(text_table([kind] + metrics, rows, width=9, min_first=12))
    return tables
