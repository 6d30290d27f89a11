"""The task interface: a task's declared metadata, the ``evaluate`` contract and the two registries.

A task is an object with ``metadata`` (:class:`TaskMetadata`: name, type, splits, data source, the metrics it
reports with their direction, its main score) and ``evaluate(encoder, split, **options) -> dict``, a JSON-ready
result holding at least every declared metric under its own name (and anything else the task wants to record:
counts, subsets, the file's checksum). ``check(split)`` refuses, before any encoding, a split the task does not
have or data it cannot read; ``score(result, metric)`` reads one metric back.

Two extension points, one registration each:

- a named task (SentEval's ``stsb``, ``stsb-retrieval``, a transfer task, an MTEB task ...): an instance
  passed to :func:`register` (or a class decorated with it, instantiated once);
- a family of tasks named by an argument, ``KIND:ARGUMENT`` (the user's ``sts:FILE[:LOW-HIGH]``,
  ``retrieval:FILE``; e.g. ``mteb:NAME``): a factory ``(argument, spec) -> Task`` passed to
  :func:`register_kind`. A factory only parses the argument; files are read by the task's ``check``.

:mod:`simcse_lab.evaluation.tasks.spec` parses ``--tasks`` and ``--select`` against these registries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from simcse_lab.errors import UserError

TASK_TYPES = ("sts", "retrieval", "transfer", "pair_classification", "clustering")


@dataclass(frozen=True)
class Metric:
    """One number a task reports: its name in the result dict, its direction and what it is."""

    name: str
    greater_is_better: bool = True
    description: str = ""


@dataclass(frozen=True)
class TaskMetadata:
    """What a task is, declared: ``source`` says where its data comes from (``registry:NAME``, ``file:PATH``,
    ``dir:PATH`` or ``hub:ID``); ``main_score`` names the metric a table and a default selection use."""

    name: str
    type: str
    splits: tuple[str, ...]
    source: str
    main_score: str
    metrics: tuple[Metric, ...]
    label: str = ""          # a short column head for tables (default: the name)
    description: str = ""
    extra: dict = field(default_factory=dict)  # anything a task type wants to declare besides (e.g. k-folds)

    def __post_init__(self):
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name}: type {self.type!r} is not one of {', '.join(TASK_TYPES)}")
        if not self.splits:
            raise ValueError(f"task {self.name}: no splits")
        if self.main_score not in self.metric_names:
            raise ValueError(f"task {self.name}: main score {self.main_score!r} is not among its metrics")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def metric(self, name: str) -> Metric:
        """The declared metric ``name``; any other is one line naming those the task has."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise UserError(f"task {self.name} has no metric {name!r}; it reports {', '.join(self.metric_names)}")


class Task:
    """The base of every evaluation task (see the module docstring for the contract)."""

    metadata: TaskMetadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def label(self) -> str:
        return self.metadata.label or self.metadata.name

    def eval_split(self, split: str) -> str:
        """The split this task evaluates when a command asks for ``split`` (a user's file: itself, whole)."""
        return split

    def check_split(self, split: str) -> None:
        if split not in self.metadata.splits:
            raise UserError(f"task {self.name} has no split {split!r}; it has {', '.join(self.metadata.splits)}")

    def check(self, split: str) -> None:
        """Refuse, before any encoding, what cannot be evaluated: an unknown split, unreadable data (a task
        whose data is a file reads and checks it here)."""
        self.check_split(split)

    def evaluate(self, encoder, split: str, **options) -> dict:
        raise NotImplementedError(f"{type(self).__name__}.evaluate")

    def score(self, result: dict, metric: str | None = None) -> float:
        """One metric (default: the main score) of a result of :meth:`evaluate`."""
        metric = metric or self.metadata.main_score
        self.metadata.metric(metric)
        return float(result[metric])


TASKS: dict[str, Task] = {}
KINDS: dict[str, Callable[[str, str], Task]] = {}


def register(task):
    """Make a task available by its name: an instance, or a :class:`Task` subclass (decorator; instantiated
    once). A second task of the same name is a programming error."""
    instance = task() if isinstance(task, type) else task
    name = instance.metadata.name
    if name in TASKS or name in KINDS:
        raise ValueError(f"task {name!r} is registered twice")
    TASKS[name] = instance
    return task


def register_kind(kind: str):
    """Decorator: ``factory(argument, spec) -> Task`` makes ``KIND:ARGUMENT`` name a task (e.g. a user's file)."""
    def add(factory):
        if kind in KINDS or kind in TASKS:
            raise ValueError(f"task kind {kind!r} is registered twice")
        KINDS[kind] = factory
        return factory
    return add
