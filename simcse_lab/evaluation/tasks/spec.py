"""Task specs: ``--tasks`` (``NAME`` or ``KIND:ARGUMENT``, comma-separated) and ``--select TASK:SPLIT:METRIC``.


``NAME`` is a registered task (``stsb``, ``sickr-retrieval`` ...), ``KIND:ARGUMENT`` one of a registered kind
(``sts:FILE[:LOW-HIGH]``, ``retrieval:FILE``). In ``--select`` the metric is the last ``:`` field and the split the
one before it when it is a split name; a task with one split (a user's file) may leave it out, so
``sts:my.tsv:spearman`` and ``stsb:dev:spearman`` both read (after a kind, the field is its argument: ``sts:test:spearman``
reads the file ``test``). A ``test`` split is refused unless the metric is a ``dev_`` one (a transfer task's
cross-validation accuracy on its training rows): selecting on test scores tunes on the test set. An unknown task,
split or metric is one line, before any model loads."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simcse_lab.errors import UserError
from simcse_lab.evaluation.tasks.base import KINDS, TASKS, Metric, Task

DEFAULT_SELECT = "stsb:dev:spearman"
DEFAULT_KEY = "dev_spearman"  # the metrics.jsonl / summary key of the default selection, as it always was


def forms() -> str:
    return f"{', '.join(TASKS)}, or {', '.join(f'{kind}:...' for kind in KINDS)}"


def parse_task(text: str) -> Task:
    """The task ``text`` names (see the module docstring)."""
    text = text.strip()
    if text.lower() in TASKS:
        return TASKS[text.lower()]
    kind, sep, argument = text.partition(":")
    if sep and kind.lower() in KINDS:
        return KINDS[kind.lower()](argument, text)
    raise UserError(f"unknown task {text!r}; choose from {forms()}")


def parse_tasks(text: str) -> list[Task]:
    """The tasks of a comma-separated list, each once, in order."""
    tasks: dict[str, Task] = {}
    for part in text.split(","):
        if part.strip():
            task = parse_task(part)
            tasks.setdefault(task.name, task)
    if not tasks:
        raise UserError(f"no task given; choose from {forms()}")
    return list(tasks.values())


def known_splits() -> set[str]:
    return {split for task in TASKS.values() for split in task.metadata.splits} | {"file"}


@dataclass(frozen=True)
class Selection:
    """What picks the best checkpoint: a task, its split and one of its metrics, with the metric's direction."""

    text: str
    task: Task
    split: str
    metric: Metric

    @property
    def key(self) -> str:
        """Its name in metrics.jsonl and the summary: ``dev_spearman`` for the default, else the spec."""
        return DEFAULT_KEY if self.is_default else self.text

    @property
    def is_default(self) -> bool:
        return (self.task.name, self.split, self.metric.name) == tuple(DEFAULT_SELECT.split(":"))

    def improves(self, value: float, best: float | None) -> bool:
        """A finite ``value`` better than ``best`` (None: nothing kept yet) in the metric's direction."""
        if not math.isfinite(value):
            return False
        if best is None or not math.isfinite(best):
            return True
        return value > best if self.metric.greater_is_better else value < best


def parse_select(text: str) -> Selection:
    """``--select TASK[:SPLIT]:METRIC``; checks the names only (a file task reads its file in ``check``)."""
    written = text.strip()
    head, sep, metric = written.rpartition(":")
    if not sep or not head or not metric:
        raise UserError(f"--select {text!r}: expected TASK:SPLIT:METRIC (e.g. {DEFAULT_SELECT}, sts:FILE:spearman)")
    task_text, sep, split = head.rpartition(":")
    if sep and split in known_splits() and task_text.strip().lower() not in KINDS:  # sts:test:... names a file
        task = parse_task(task_text)
    else:
        task = parse_task(head)
        if len(task.metadata.splits) != 1:
            raise UserError(f"--select {text!r}: name the split of {task.name} "
                            f"({', '.join(task.metadata.splits)}): TASK:SPLIT:METRIC")
        split = task.metadata.splits[0]
    task.check_split(split)
    chosen = task.metadata.metric(metric)
    if split == "test" and not chosen.name.startswith("dev_"):
        raise UserError(f"--select {text!r}: selecting a checkpoint on the test split tunes on the test set; select on "
                        f"a dev split (e.g. {DEFAULT_SELECT}), a transfer task's dev_acc, or your own file (sts:FILE:METRIC)")
    return Selection(written, task, split, chosen)
