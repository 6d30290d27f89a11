"""Retrieval tasks: on STS pairs (as ``retrieval-eval``) and on the user's own query/positive pairs.

Today's retrieval on STS pairs is ``stsb-retrieval`` and ``sickr-retrieval`` (the numbers of
``simcse-lab retrieval-eval``) and the user's own query/positive pairs, ``retrieval:FILE`` (the corpus is every
distinct positive). recall@1/5/10 and MRR@10 (x100), MRR@10 the main score; scored by
:mod:`simcse_lab.evaluation.retrieval`."""

from __future__ import annotations

from pathlib import Path

from simcse_lab.data import sources
from simcse_lab.data.eval_files import check_file, read_query_pairs
from simcse_lab.data.registry import sha256_file
from simcse_lab.errors import UserError
from simcse_lab.evaluation import retrieval as engine
from simcse_lab.evaluation.sts import LABELS, RELEVANT_GOLD, SPLITS
from simcse_lab.evaluation.tasks.base import Metric, Task, TaskMetadata, register, register_kind

METRICS = tuple(Metric(f"recall@{k}", True, f"share x100 of a query's relevant items in its top {k}")
                for k in engine.KS) + (Metric("mrr@10", True, "mean reciprocal rank x100 of the first relevant item "
                                                                "within the top 10"),)
FILE_SPLIT = "file"


class STSPairsRetrieval(Task):
    """Queries: the first sentences of an STS split's pairs with gold >= ``threshold``; corpus: every distinct
    sentence of the split, the query itself excluded from its results."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.metadata = TaskMetadata(f"{dataset}-retrieval", "retrieval", SPLITS, f"registry:{dataset}", "mrr@10",
                                     METRICS, label=f"{LABELS[dataset]} retr.",
                                     description=f"retrieval of {LABELS[dataset]} partners with gold >= 4")

    def evaluate(self, encoder, split: str, threshold: float = RELEVANT_GOLD, **_) -> dict:
        self.check(split)
        pairs = sources.resolve(self.dataset, split).rows
        return engine.score_sts_pairs(encoder, pairs, f"{self.dataset} {split}", threshold)


for _name in engine.TASKS:
    register(STSPairsRetrieval(_name))


class UserRetrieval(Task):
    """A user's file of (query, positive) pairs (:mod:`simcse_lab.data.eval_files`), read once by :meth:`check`."""

    def __init__(self, spec: str, path: Path):
        self.path, self.pairs = path, None
        self.metadata = TaskMetadata(spec, "retrieval", (FILE_SPLIT,), f"file:{path}", "mrr@10", METRICS,
                                     label=path.stem, description=f"the user's query/positive pairs in {path}")

    def eval_split(self, split: str) -> str:
        return FILE_SPLIT

    def check(self, split: str) -> None:
        self.check_split(split)
        if self.pairs is None:
            self.pairs = read_query_pairs(self.path)

    def evaluate(self, encoder, split: str = FILE_SPLIT, **_) -> dict:
        self.check(split)
        return {**engine.score_query_pairs(encoder, self.pairs), "source": str(self.path),
                "sha256": sha256_file(self.path)}


@register_kind("retrieval")
def user_retrieval(argument: str, spec: str) -> UserRetrieval:
    """``retrieval:FILE``: query/positive pairs."""
    if not argument:
        raise UserError(f"{spec}: no file after retrieval: (retrieval:FILE)")
    path = Path(argument).expanduser()
    check_file(path)
    return UserRetrieval(spec, path)
