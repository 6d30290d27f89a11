"""STS tasks: SentEval's seven and the user's own scored pairs.

SentEval's are ``sts12`` ... ``sickr``, scored by :mod:`simcse_lab.evaluation.sts` (the numbers ``simcse-lab
eval`` always gave); a user's file is ``sts:FILE[:LOW-HIGH]`` (:mod:`simcse_lab.data.eval_files`).

An STS task's data is ``{subset: PairSet}`` (:meth:`STSTask.load`); :func:`evaluate_together` scores several
in one pass (each distinct sentence encoded once) and returns the STS result dict of ``eval``. Spearman and
Pearson (x100) of cosine similarity against gold, Spearman the main score. ``positive_gold`` is the gold cut
above which a pair counts as positive for alignment: 4 on SentEval's 0-5 scale, the same share of a user's
range (4/5 of the way up)."""

from __future__ import annotations

import re
from pathlib import Path

from simcse_lab.data.eval_files import check_file, read_scored_pairs
from simcse_lab.data.readers import PairSet
from simcse_lab.data.registry import sha256_file
from simcse_lab.errors import UserError
from simcse_lab.evaluation import sts as engine
from simcse_lab.evaluation.tasks.base import Metric, Task, TaskMetadata, register, register_kind

METRICS = (Metric("spearman", True, "Spearman correlation x100 of cosine similarity against gold"),
           Metric("pearson", True, "Pearson correlation x100 of cosine similarity against gold"))
FILE_SPLIT = "file"  # a user's file is one split, evaluated whole whatever --split says
RANGE = re.compile(r"^(?P<path>.+):(?P<low>-?\d+(?:\.\d+)?)-(?P<high>-?\d+(?:\.\d+)?)$")


class STSTask(Task):
    positive_gold: float = engine.POSITIVE_GOLD

    def load(self, split: str) -> dict[str, PairSet]:
        raise NotImplementedError

    def evaluate(self, encoder, split: str, aggregate: str = "all", progress: bool = False,
                 geometry: bool = True) -> dict:
        return evaluate_together(encoder, [self], split, aggregate, progress, geometry)["tasks"][self.name]


class SentEvalSTS(STSTask):
    """One of SentEval's STS tasks from the data registry."""

    def __init__(self, name: str, splits: tuple[str, ...]):
        self.metadata = TaskMetadata(name, "sts", splits, f"registry:{name}", "spearman", METRICS,
                                     label=engine.LABELS[name], description=f"SentEval {engine.LABELS[name]}")

    def check(self, split: str) -> None:
        engine.check_split(self.name, split)

    def load(self, split: str) -> dict[str, PairSet]:
        return engine.load_task(self.name, split)


for _name in engine.TASKS:
    register(SentEvalSTS(_name, ("test",) if _name.startswith("sts1") else engine.SPLITS))


class UserSTS(STSTask):
    """A user's file of scored pairs (:mod:`simcse_lab.data.eval_files`), read once by :meth:`check`."""

    def __init__(self, spec: str, path: Path, score_range: tuple[float, float] | None):
        self.path, self.given_range = path, score_range
        self.metadata = TaskMetadata(spec, "sts", (FILE_SPLIT,), f"file:{path}", "spearman", METRICS,
                                     label=path.stem, description=f"the user's scored pairs in {path}")
        self.pairs: PairSet | None = None
        self.score_range, self.inferred = score_range, score_range is None

    def eval_split(self, split: str) -> str:
        return FILE_SPLIT

    def check(self, split: str) -> None:
        self.check_split(split)
        if self.pairs is None:
            self.pairs, self.score_range, self.inferred = read_scored_pairs(self.path, self.given_range)
            low, high = self.score_range
            self.positive_gold = low + (high - low) * engine.POSITIVE_GOLD / 5.0

    def load(self, split: str) -> dict[str, PairSet]:
        self.check(split)
        return {self.pairs.name: self.pairs}

    def describe(self) -> dict:
        return {"source": str(self.path), "sha256": sha256_file(self.path), "score_range": list(self.score_range),
                "score_range_from": "inferred" if self.inferred else "given"}


@register_kind("sts")
def user_sts(argument: str, spec: str) -> UserSTS:
    """``sts:FILE`` or ``sts:FILE:LOW-HIGH`` (the gold scale, e.g. 0-5; inferred when not given)."""
    match = RANGE.match(argument)
    path, score_range = (match["path"], (float(match["low"]), float(match["high"]))) if match else (argument, None)
    if score_range is not None and not score_range[0] < score_range[1]:
        raise UserError(f"{spec}: the score range {match['low']}-{match['high']} must run from low to high")
    if not path:
        raise UserError(f"{spec}: no file after sts: (sts:FILE[:LOW-HIGH])")
    path = Path(path).expanduser()
    check_file(path)
    return UserSTS(spec, path, score_range)


def evaluate_together(encoder, tasks: list[STSTask], split: str, aggregate: str = "all",
                      progress: bool = False, geometry: bool = True, keep_pairs: bool = False) -> dict:
    """``eval``'s STS result for several STS tasks, one encoding pass (SentEval's tasks alone: exactly
    :func:`simcse_lab.evaluation.sts.evaluate`); a user's file adds its source, checksum and score range;
    ``keep_pairs``: each task keeps its per-pair scores (``eval --save-scores``)."""
    for task in tasks:
        task.check(task.eval_split(split))
    data = {task.name: task.load(task.eval_split(split)) for task in tasks}
    result = engine.score_sets(encoder, data, split, aggregate, progress, geometry=geometry,
                               positive_gold={task.name: task.positive_gold for task in tasks}, keep_pairs=keep_pairs)
    for task in tasks:
        if isinstance(task, UserSTS):
            result["tasks"][task.name].update(task.describe())
    return result
