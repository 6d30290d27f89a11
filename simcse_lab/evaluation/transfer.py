"""SentEval's transfer tasks (MR, CR, SUBJ, MPQA, SST-2, TREC, MRPC) with SimCSE's protocol.

A linear probe (:mod:`.linear_probe`) is fitted on the frozen sentence vectors, its L2 regulariser chosen on
held-out training data, never on the test rows, in SentEval's three ways (``senteval/tools/validation.py``):

- MR, CR, SUBJ, MPQA (``inner_kfold``): outer ``StratifiedKFold(k, shuffle=True, random_state=1111)`` over all
  rows; in each outer fold, the same stratified k-fold over its training rows scores every regulariser (mean
  inner accuracy, x100 rounded to 2 decimals; the first best wins), the chosen one is refitted on the whole
  outer training part and scored on the outer test fold. Test accuracy: the mean over the outer folds.
- TREC, MRPC (``kfold``): stratified k-fold over the train set chooses the regulariser; refitted on all of
  train, scored on the official test set. MRPC's features are SentEval's ``np.c_[|u - v|, u * v]`` of the two
  sentence vectors; its test F1 (positive class 1) is reported beside the accuracy.
- SST-2 (``split``): each regulariser fitted on train and scored on dev; the best one's test accuracy.

Each task reports ``test_acc`` (the number SimCSE's paper prints in ``test`` mode) and ``dev_acc``,
the model-selection score SimCSE's ``dev`` mode prints, named as such and never averaged with the other.
``--transfer-mode test`` is SimCSE's ``test`` mode (10 folds, Adam, batch 64, tenacity 5, epoch size 4);
``fast`` its ``fasttest`` (5 folds, RMSprop, batch 128, tenacity 3, epoch size 2), which SimCSE's README says
gives slightly lower numbers. Every distinct sentence of the chosen tasks is encoded once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from simcse_lab.data.transfer_data import TransferData, TransferSplit
from simcse_lab.errors import UserError, first_line
from simcse_lab.evaluation.linear_probe import TorchSettings
from simcse_lab.evaluation.tables import text_table
from simcse_lab.modeling.sentence_encoder import SentenceEncoder

SEED = 1111
FINAL_HOLDOUT = 0.05  # SentEval's early-stopping share of the training rows when the chosen model is refitted
LABELS = {"SST2": "SST-2"}
PROTOCOL = {"MR": "inner_kfold", "CR": "inner_kfold", "SUBJ": "inner_kfold", "MPQA": "inner_kfold",
            "TREC": "kfold", "MRPC": "kfold", "SST2": "split"}
DEV_MEANING = {
    "inner_kfold": "mean over the outer folds of the chosen regulariser's inner cross-validation accuracy "
                   "(model selection, not a test score)",
    "kfold": "the chosen regulariser's k-fold cross-validation accuracy on the train set (model selection)",
    "split": "the chosen regulariser's accuracy on the dev split (model selection)",
}


@dataclass(frozen=True)
class TransferMode:
    name: str
    kfold: int
    settings: TorchSettings


MODES = {
    "test": TransferMode("test", 10, TorchSettings(optim="adam", batch_size=64, tenacity=5, epoch_size=4)),
    "fast": TransferMode("fast", 5, TorchSettings(optim="rmsprop", batch_size=128, tenacity=3, epoch_size=2)),
}


def stratified_folds(y: np.ndarray, k: int, seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """SentEval's folds: scikit-learn's ``StratifiedKFold(k, shuffle=True, random_state=seed)`` over the rows."""
    from sklearn.model_selection import StratifiedKFold

    try:
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((len(y), 1)), y))
    except ValueError as err:  # e.g. fewer rows than folds
        raise UserError(f"{len(y)} rows cannot be split into {k} stratified folds ({first_line(err)})") from None


def check_fold_sizes(data, mode: str) -> None:
    """Every class of the rows the protocol folds has rows enough for its stratified folds (inner k-fold: also in
    each outer training part), else one line (before anything is encoded): scikit-learn would only warn and fold
    the class unevenly, some folds holding none of it."""
    protocol, k = PROTOCOL[data.task], MODES[mode].kfold
    if protocol == "split":
        return
    labels = data.splits["all" if protocol == "inner_kfold" else "train"].labels
    needed = k if protocol == "kfold" else next(c for c in range(k, 4 * k) if c - -(-c // k) >= k)
    counts = {y: labels.count(y) for y in sorted(set(labels))}
    small = {y: n for y, n in counts.items() if n < needed}
    if small:
        label, n = next(iter(small.items()))
        raise UserError(f"{data.task}: label {label} has {n} rows; {mode} mode's {k} stratified folds ({protocol}) "
                        f"need at least {needed} rows of each class")


def _percent(fraction: float) -> float:
    return round(100 * float(fraction), 2)


def choose_regularizer(grid, held_out: list[list[float]]) -> tuple[float, float, list[float]]:
    """(the first regulariser with the best mean held-out accuracy, that accuracy x100, every one's), scores
    rounded to 2 decimals before the comparison as SentEval does. ``held_out[i]`` holds the accuracies
    (fractions) of ``grid[i]``'s fits, each scored on rows its fit did not train on and that the caller does not
    test on."""
    scores = [_percent(np.mean(accuracies)) for accuracies in held_out]
    best = int(np.argmax(scores))
    return grid[best], scores[best], scores


def held_out_accuracies(probe, grid, X: np.ndarray, y: np.ndarray, nclasses: int, folds) -> list[list[float]]:
    """``[reg][fold]`` accuracy of the grid's classifiers fitted on each fold's training rows and scored on its
    held-out rows (which SentEval's classifier also stops early on)."""
    per_fold = []
    for a, b in folds:
        models = probe.fit_grid(grid, X[a], y[a], nclasses, (X[b], y[b]))
        per_fold.append([model.score(X[b], y[b]) for model in models])
    return [list(scores) for scores in zip(*per_fold)]


def inner_kfold(probe, X: np.ndarray, y: np.ndarray, nclasses: int, k: int, seed: int = SEED) -> dict:
    """MR/CR/SUBJ/MPQA: outer stratified k-fold; the regulariser chosen by inner k-fold on each outer train part."""
    folds = []
    for train, test in stratified_folds(y, k, seed):
        X_train, y_train = X[train], y[train]
        inner = stratified_folds(y_train, k, seed)
        grid = probe.grid("inner_kfold")
        reg, dev, scores = choose_regularizer(grid, held_out_accuracies(probe, grid, X_train, y_train, nclasses, inner))
        model = probe.fit(reg, X_train, y_train, nclasses, FINAL_HOLDOUT)
        folds.append({"regularizer": reg, "dev_acc": dev, "grid_dev_acc": scores,
                      "test_acc": _percent(model.score(X[test], y[test])), "n_test": int(len(test))})
    return {"test_acc": round(float(np.mean([f["test_acc"] for f in folds])), 2),
            "dev_acc": round(float(np.mean([f["dev_acc"] for f in folds])), 2),
            "folds": folds, "n_train": int(len(y)), "n_test": int(len(y))}


def kfold_then_test(probe, train: tuple, test: tuple, nclasses: int, k: int, seed: int = SEED) -> dict:
    """TREC/MRPC: the regulariser chosen by stratified k-fold on train; refitted on train, scored on test."""
    (X, y), (X_test, y_test) = train, test
    grid = probe.grid("kfold")
    reg, dev, scores = choose_regularizer(grid, held_out_accuracies(probe, grid, X, y, nclasses,
                                                                    stratified_folds(y, k, seed)))
    predicted = probe.fit(reg, X, y, nclasses, FINAL_HOLDOUT).predict(X_test)
    return {"test_acc": _percent(np.mean(predicted == y_test)), "dev_acc": dev, "regularizer": reg,
            "grid_dev_acc": scores, "n_train": int(len(y)), "n_test": int(len(y_test)), "predicted": predicted}


def split_dev_test(probe, train: tuple, dev: tuple, test: tuple, nclasses: int) -> dict:
    """SST-2: every regulariser fitted on train and scored on dev; the best one scored on test."""
    grid = probe.grid("split")
    models = probe.fit_grid(grid, *train, nclasses, dev)
    reg, dev_accuracy, scores = choose_regularizer(grid, [[model.score(*dev)] for model in models])
    # SentEval refits the chosen regulariser with the same seed and data: the same model as the one scored on dev
    chosen = models[grid.index(reg)]
    return {"test_acc": _percent(chosen.score(*test)), "dev_acc": dev_accuracy, "regularizer": reg,
            "grid_dev_acc": scores, "n_train": len(train[1]), "n_dev": len(dev[1]), "n_test": len(test[1])}


def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SentEval's MRPC features: ``np.c_[|u - v|, u * v]``."""
    return np.c_[np.abs(a - b), a * b]


def _sentences(split: TransferSplit) -> tuple[str, ...]:
    return split.sentences + (split.partners or ())


def encode_transfer(encoder: SentenceEncoder, datasets: list[TransferData], progress: bool = False):
    """Each distinct sentence of every task encoded once: {task: {split: (features, labels)}}, and the count."""
    sentences = sorted({s for d in datasets for split in d.splits.values() for s in _sentences(split)})
    vectors = encoder.encode(sentences, progress=progress)
    row = {s: i for i, s in enumerate(sentences)}
    out = {}
    for d in datasets:
        out[d.task] = {}
        for name, split in d.splits.items():
            X = vectors[[row[s] for s in split.sentences]]
            if split.partners is not None:
                X = pair_features(X, vectors[[row[s] for s in split.partners]])
            out[d.task][name] = (X, np.asarray(split.labels, dtype=np.int64))
    return out, len(sentences)


def score_task(task: str, data: dict, nclasses: int, probe, k: int) -> dict:
    """One task's protocol on its encoded splits ``{split: (X, y)}``."""
    protocol = PROTOCOL[task]
    if protocol == "inner_kfold":
        result = inner_kfold(probe, *data["all"], nclasses, k)
    elif protocol == "split":
        result = split_dev_test(probe, data["train"], data["dev"], data["test"], nclasses)
    else:
        result = kfold_then_test(probe, data["train"], data["test"], nclasses, k)
        predicted = result.pop("predicted")
        if task == "MRPC":
            from sklearn.metrics import f1_score

            result["test_f1"] = _percent(f1_score(data["test"][1], predicted))
    return {**result, "protocol": protocol, "dev_acc_is": DEV_MEANING[protocol]}


def evaluate_transfer(encoder: SentenceEncoder, datasets: list[TransferData], mode: str, probe,
                      progress: bool = False) -> dict:
    """Score ``encoder`` on the transfer ``datasets``; the JSON-ready result (accuracies x100): the settings, a
    result per task and the averages of test and of dev accuracy (each over the tasks, never mixed)."""
    settings = MODES[mode]
    start = time.perf_counter()
    encoded, n_sentences = encode_transfer(encoder, datasets, progress=progress)
    encode_seconds = time.perf_counter() - start
    tasks = {d.task: score_task(d.task, encoded[d.task], d.nclasses, probe, settings.kfold) for d in datasets}
    return {
        **encoder.describe(),
        "transfer_mode": mode,
        "kfold": settings.kfold,
        "seed": SEED,
        "probe": probe.describe(),
        "data_source": sorted({d.source for d in datasets}),
        "scale": "accuracy x 100",
        "tasks": tasks,
        "avg": {key: round(float(np.mean([r[key] for r in tasks.values()])), 2) for key in ("test_acc", "dev_acc")},
        "sentences_encoded": n_sentences,
        "encode_seconds": encode_seconds,
        "seconds": time.perf_counter() - start,
    }


def format_transfer_table(section: dict, name: str, labels: dict[str, str] | None = None) -> str:
    """SimCSE's transfer table (a column per task, then the average) with a test row and a dev row, each named,
    from a result holding ``tasks`` (name -> result) and ``avg``."""
    labels = labels or {}
    tasks = list(section["tasks"])
    head = ["model"] + [labels.get(t, LABELS.get(t, t)) for t in tasks] + ["Avg."]
    rows = [[f"{name} {kind}"] + [f"{section['tasks'][t][kind]:.2f}" for t in tasks] + [f"{section['avg'][kind]:.2f}"]
            for kind in ("test_acc", "dev_acc")]
    return text_table(head, rows, width=7, min_first=12)
