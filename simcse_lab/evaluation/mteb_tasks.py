"""mteb tasks by name: simcse-lab's own STS data as local mteb tasks, mteb's registry tasks and benchmarks.

The local tasks (``SimCSELab-STSB-SentEval``, ...) are mteb ``AbsTaskSTS`` tasks whose ``load_data`` reads the
exact pairs ``simcse-lab eval`` scores (:func:`simcse_lab.evaluation.sts.load_task`: SentEval-tokenised text,
STS13 without SMT, STS12-16 subsets concatenated = ``--aggregate all``), offline, so mteb's own evaluator scores
the same pairs with the same cosine. Their names say they are not mteb's ``STSBenchmark`` / ``SICK-R``: mteb's
SICK-R holds all 9,927 SemEval pairs and its STSBenchmark the untokenised text (README, MTEB section).

Names resolve in this order: a local task, ``SimCSELab-STS-SentEval`` (all seven local tasks), an mteb task
(``mteb.get_task``), an mteb benchmark (``mteb.get_benchmark``, e.g. ``MTEB(eng, v2)``). :func:`load_tasks` loads
every task's data before any model is loaded, so a task whose data is not reachable (offline, not in the
datasets cache) is one line naming it, not a traceback minutes later.
"""

from __future__ import annotations

import hashlib
import re

import mteb
from datasets import Dataset, DatasetDict
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

from simcse_lab.data import registry
from simcse_lab.errors import UserError, first_line
from simcse_lab.evaluation import sts

PREFIX = "SimCSELab-"
SUFFIX = "-SentEval"
LOCAL = {f"{PREFIX}{label}{SUFFIX}": task for task, label in
         {"sts12": "STS12", "sts13": "STS13", "sts14": "STS14", "sts15": "STS15", "sts16": "STS16",
          "stsb": "STSB", "sickr": "SICKR"}.items()}
LOCAL_SUITE = f"{PREFIX}STS{SUFFIX}"  # all seven local tasks, in simcse-lab's table order


def split_names(text: str) -> list[str]:
    """Comma-separated names; a comma inside parentheses belongs to the name (``MTEB(eng, v2)``)."""
    names = [n.strip() for n in re.split(r",(?![^()]*\))", text) if n.strip()]
    if not names:
        raise UserError("--mteb names no task")
    return list(dict.fromkeys(names))


def data_revision(task: str) -> str:
    """The local data's identity: a digest of the checksums the registry pins for the dataset's files."""
    pinned = sorted(f"{path}\0{sha}" for path, sha in registry.info(task).files.items())
    return "senteval-" + hashlib.sha256("\n".join(pinned).encode()).hexdigest()[:12]


def local_task(name: str, split: str = "test") -> AbsTaskSTS:
    """The mteb STS task ``name`` (a key of LOCAL) on ``split``, its data read from simcse-lab's registry."""
    task = LOCAL[name]
    if task.startswith("sts1") and split != "test":
        raise UserError(f"{name} has only a test split (use --split test, or SimCSELab-STSB/SICKR-SentEval for dev)")
    label = sts.LABELS[task]

    class LocalSTS(AbsTaskSTS):
        min_score = 0  # mteb maps gold linearly to [0, 1]: Spearman and Pearson do not change
        max_score = 5
        metadata = TaskMetadata(
            name=name, dataset={"path": f"simcse-lab/{task}", "revision": data_revision(task)},
            description=f"{label} {split} as simcse-lab eval scores it: SentEval's files from simcse-lab's data "
                        f"registry, read offline (not mteb's hub data).",
            reference=None, type="STS", category="t2t", modalities=["text"], eval_splits=[split],
            eval_langs=["eng-Latn"], main_score="cosine_spearman", date=None, domains=None, task_subtypes=[],
            license="not specified", annotations_creators="human-annotated", dialect=[], sample_creation="found",
            bibtex_citation="",
        )

        def load_data(self, num_proc=None, *, timer=None, **kwargs):
            if self.data_loaded:
                return
            s1, s2, gold = [], [], []
            for pairs in sts.load_task(task, split).values():  # subsets in registry order = --aggregate all
                s1 += pairs.sent1
                s2 += pairs.sent2
                gold += pairs.scores
            columns = {"sentence1": s1, "sentence2": s2, "score": gold}
            self.dataset = {"default": DatasetDict({split: Dataset.from_dict(columns)})}
            self.data_loaded = True

    LocalSTS.__name__ = LocalSTS.__qualname__ = name.replace("-", "_")
    return LocalSTS()


def get_tasks(text: str, split: str = "test") -> list:
    """The tasks ``text`` names (see the module docstring), each once, in order; an unknown name is one line.
    ``split`` picks the local tasks' split; mteb's own tasks are scored on their declared splits."""
    tasks = []
    for name in split_names(text):
        if name in LOCAL or name == LOCAL_SUITE:
            tasks += [local_task(n, split) for n in (LOCAL if name == LOCAL_SUITE else [name])]
            continue
        if split != "test":
            raise UserError(f"--split {split} applies to simcse-lab's local tasks ({PREFIX}*); mteb's {name} is "
                            f"scored on its own splits")
        tasks += _mteb_tasks(name)
    seen = set()
    return [t for t in tasks if not (t.metadata.name in seen or seen.add(t.metadata.name))]


def _mteb_tasks(name: str) -> list:
    try:
        return [mteb.get_task(name)]
    except KeyError:
        pass
    try:
        return list(mteb.get_benchmark(name).tasks)
    except KeyError as err:
        hint = str(err.args[0] if err.args else err).removeprefix("KeyError: ")
        raise UserError(f"--mteb {name}: neither a task nor a benchmark of mteb {mteb.__version__} ({hint}); "
                        f"simcse-lab's local tasks: {', '.join(LOCAL)}, {LOCAL_SUITE}") from None


def load_tasks(tasks: list) -> None:
    """Load each task's data now, before any model: data that cannot be read is one line naming the task."""
    for task in tasks:
        if task.data_loaded:
            continue
        try:
            task.load_data()
        except UserError:
            raise
        except Exception as err:  # datasets/hub errors of any type: offline, not cached, no such revision
            where = task.metadata.dataset.get("path", "?")
            raise UserError(f"mteb task {task.metadata.name}: its data ({where}) cannot be loaded "
                            f"({first_line(err)}); offline, only data already in the Hugging Face datasets cache "
                            f"can be read; simcse-lab's local tasks ({LOCAL_SUITE}) need no hub") from None
