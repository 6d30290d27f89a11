"""SentEval's transfer tasks as declared tasks: ``mr``, ``cr``, ``subj``, ``mpqa``, ``sst2``, ``trec``, ``mrpc``.

Each runs its whole protocol (:mod:`simcse_lab.evaluation.transfer`: the regulariser chosen on held-out training
rows, accuracy on the test rows) and reports ``test_acc`` (main score: the number SimCSE's paper prints) and
``dev_acc`` (the model-selection score SimCSE's ``dev`` mode prints; the one to select checkpoints by, since
choosing by test accuracy would tune on the test set), MRPC also ``test_f1``; all x100. Their one split is
``test``: the protocol reads every split of the task's data itself. A registered task runs SimCSE's ``test`` mode
with SentEval's PyTorch probe on the registry's data; :meth:`SentEvalTransfer.configured` makes the copy a
command asks for (``--transfer-mode``, ``--transfer-classifier``, ``--senteval-dir``). The data is read, whole,
by :meth:`~SentEvalTransfer.check`, before any model loads."""

from __future__ import annotations

from pathlib import Path

from simcse_lab.data.transfer_data import REGISTRY_NAME, TRANSFER_TASKS, load_transfer
from simcse_lab.evaluation import transfer as engine
from simcse_lab.evaluation.linear_probe import PROBES, make_probe
from simcse_lab.evaluation.tasks.base import Metric, Task, TaskMetadata, register

SPLIT = "test"
METRICS = (Metric("test_acc", True, "test accuracy x100 of the linear probe (SentEval's 'acc', the paper's number)"),
           Metric("dev_acc", True, "accuracy x100 of the chosen regulariser on held-out training rows or the dev "
                                   "split (SentEval's 'devacc': model selection, not a test score)"))
F1 = Metric("test_f1", True, "test F1 x100 of the paraphrase class")


class SentEvalTransfer(Task):
    """One SentEval transfer task under one protocol setting (module docstring)."""

    def __init__(self, task: str, mode: str = "test", classifier: str = PROBES[0], senteval_dir: str | None = None):
        self.task, self.mode, self.classifier, self.senteval_dir = task, mode, classifier, senteval_dir
        self.data = None
        source = f"dir:{Path(senteval_dir)}" if senteval_dir else f"registry:{REGISTRY_NAME}"
        self.metadata = TaskMetadata(
            task.lower(), "transfer", (SPLIT,), source, "test_acc", METRICS + ((F1,) if task == "MRPC" else ()),
            label=engine.LABELS.get(task, task), description=f"SentEval {task} ({engine.PROTOCOL[task]}), SimCSE's "
            f"{mode} mode", extra={"protocol": engine.PROTOCOL[task], "mode": mode,
                                   "kfold": engine.MODES[mode].kfold, "classifier": classifier})

    def configured(self, mode: str, classifier: str, senteval_dir: str | None) -> SentEvalTransfer:
        return SentEvalTransfer(self.task, mode, classifier, senteval_dir)

    def eval_split(self, split: str) -> str:
        return SPLIT  # the protocol uses every split of the data and reports test and dev accuracy by name

    def check(self, split: str) -> None:
        self.check_split(split)
        if self.data is None:
            (data,) = load_transfer([self.task], self.senteval_dir)
            engine.check_fold_sizes(data, self.mode)
            self.data = data

    def evaluate(self, encoder, split: str = SPLIT, progress: bool = False, **_) -> dict:
        import torch

        self.check(split)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        probe = make_probe(self.classifier, engine.MODES[self.mode].settings, seed=engine.SEED, device=device)
        result = engine.evaluate_transfer(encoder, [self.data], self.mode, probe, progress=progress)
        settings = {key: result[key] for key in ("transfer_mode", "kfold", "seed", "probe", "data_source",
                                                 "sentences_encoded", "seconds")}
        return {**result["tasks"][self.task], **settings}


for _task in TRANSFER_TASKS:
    register(SentEvalTransfer(_task))
