"""Evaluation tasks as declared objects (as mteb's AbsTask + metadata, sentence-transformers' evaluators'
primary metric and direction): a base class with metadata and an ``evaluate`` contract, a registry of named
tasks and of task kinds named by an argument (base.py), the ``--tasks`` / ``--select`` parser (spec.py), and
the first tasks: SentEval's STS and the user's scored pairs (sts.py), retrieval on STS pairs and the user's
query/positive pairs (retrieval.py), SentEval's transfer tasks (transfer.py). A new task is one module that
registers it, imported here.
Tests: tests/evaluation/test_tasks.py, tests/evaluation/test_select.py, tests/integration/test_sts_integration.py, tests/evaluation/test_transfer.py."""

from __future__ import annotations

from simcse_lab.evaluation.tasks import sts  # noqa: F401, I001  (each registers its tasks, SentEval's STS first)
from simcse_lab.evaluation.tasks import retrieval  # noqa: F401, I001
from simcse_lab.evaluation.tasks import transfer  # noqa: F401, I001
from simcse_lab.evaluation.tasks.base import KINDS, TASK_TYPES, TASKS, Metric, Task, TaskMetadata, register, register_kind
from simcse_lab.evaluation.tasks.spec import DEFAULT_SELECT, Selection, parse_select, parse_task, parse_tasks

__all__ = ["DEFAULT_SELECT", "KINDS", "TASK_TYPES", "TASKS", "Metric", "Selection", "Task", "TaskMetadata",
           "parse_select", "parse_task", "parse_tasks", "register", "register_kind"]
