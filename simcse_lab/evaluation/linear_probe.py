"""The linear classifiers SentEval's transfer protocol fits on frozen sentence vectors, one per regulariser.

A probe declares its regulariser grid for each of SentEval's three protocols (``inner_kfold``: MR/CR/SUBJ/MPQA;
``kfold``: TREC/MRPC; ``split``: SST-2) and fits one classifier for one value of it, given the data SentEval
gives that classifier for early stopping (``validation``: a held-out ``(X, y)``, or the share of the training
rows to hold out). Two are declared:

- ``senteval-torch`` (the default): SentEval's PyTorch logistic regression (``usepytorch: True``, ``nhid: 0``),
  which is what SimCSE's ``evaluation.py`` runs in every mode: one linear layer, cross-entropy, the L2 penalty
  as the optimiser's weight decay over ``10**-5 .. 10**-2``, mini-batches in a seeded random order, and early
  stopping on the validation data (stop once accuracy has failed to improve ``tenacity`` + 1 times, every
  ``epoch_size`` passes, at most 200 epochs; keep the best). SimCSE's ``test`` mode uses Adam, batch 64,
  tenacity 5, epoch size 4; ``fasttest`` RMSprop, batch 128, tenacity 3, epoch size 2. Seeds are drawn as
  SentEval draws them (numpy and torch seeded with 1111 for every classifier, so every fit starts from the same
  weights and the same shuffles), but this is our code, run on this machine's device: expect SimCSE's numbers
  to within run-to-run noise, not to the last digit. One difference from SentEval's code is deliberate and
  invisible: SentEval's loss sets ``size_average = False`` after construction, which PyTorch >= 0.4 ignores, so
  its loss is the batch mean, as is ours.
- ``sklearn``: SentEval's ``usepytorch: False`` path, scikit-learn's ``LogisticRegression(C=c,
  random_state=seed)`` over SentEval's grids of ``C`` (``2**-2 .. 2**3``; TREC/MRPC ``2**-1 .. 2**5``), no early
  stopping. Faster on a CPU; not what SimCSE reports (and today's scikit-learn solver, lbfgs, is not the
  liblinear of 2017), so its numbers are its own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from simcse_lab.errors import UserError

PROTOCOLS = ("inner_kfold", "kfold", "split")


@dataclass(frozen=True)
class TorchSettings:
    """SentEval's classifier settings (SimCSE's ``params['classifier']``, ``nhid`` 0)."""

    optim: str = "adam"
    batch_size: int = 64
    tenacity: int = 5
    epoch_size: int = 4
    max_epoch: int = 200


class _Linear:
    """A fitted linear model (a torch module or a scikit-learn estimator): predict labels for rows."""

    def __init__(self, predict):
        self._predict = predict

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict(X)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(X) == y))


@dataclass
class SentEvalTorchProbe:
    """SentEval's PyTorch logistic regression (module docstring)."""

    settings: TorchSettings = field(default_factory=TorchSettings)
    seed: int = 1111
    device: str = "cpu"
    name: str = "senteval-torch"

    def grid(self, protocol: str) -> tuple[float, ...]:
        return tuple(10.0 ** t for t in range(-5, -1))

    def describe(self) -> dict:
        return {"classifier": self.name, "regularizer": "L2 weight decay", "seed": self.seed, "device": self.device,
                **self.settings.__dict__}

    def fit(self, reg: float, X: np.ndarray, y: np.ndarray, nclasses: int, validation) -> _Linear:
        import torch

        rng = np.random.RandomState(self.seed)  # SentEval: np.random.seed(seed) when each classifier is made
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = torch.nn.Linear(X.shape[1], nclasses)
        model = model.to(self.device)
        if isinstance(validation, float):  # the final fit: a seeded share of the training rows stops it
            order = rng.permutation(len(X))
            cut = int(validation * len(X))
            if cut == 0:
                raise UserError(f"{len(X)} training rows: too few for SentEval's {validation:.0%} early-stopping share")
            X, y, validation = X[order[cut:]], y[order[cut:]], (X[order[:cut]], y[order[:cut]])
        tensors = [torch.as_tensor(np.asarray(a), device=self.device) for a in (X, y, *validation)]
        train_x, dev_x = tensors[0].float(), tensors[2].float()
        train_y, dev_y = tensors[1].long(), tensors[3].long()
        optimizer = _optimizer(self.settings.optim, model.parameters(), reg)
        best = _train_with_early_stopping(model, optimizer, (train_x, train_y), (dev_x, dev_y), rng, self.settings)
        return _Linear(lambda rows: _predict(best, torch.as_tensor(np.asarray(rows), device=self.device).float()))


def _optimizer(name: str, params, reg: float):
    import torch

    optimizers = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    return optimizers[name](params, weight_decay=reg)  # PyTorch's default learning rates, as SentEval


def _predict(model, rows) -> np.ndarray:
    import torch

    model.eval()
    with torch.inference_mode():
        return model(rows).argmax(dim=1).cpu().numpy()


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        return (model(x).argmax(dim=1) == y).sum().item() / len(y)  # exact count / rows, as SentEval


def _train_with_early_stopping(model, optimizer, train, dev, rng: np.random.RandomState, settings: TorchSettings):
    """SentEval's loop: ``epoch_size`` shuffled passes, then dev accuracy; the best model is kept; training stops
    at the first check after ``tenacity`` earlier ones failed to improve on the best, or after ``max_epoch``."""
    import torch

    x, y = train
    best_accuracy, best_model, misses, epochs = -1.0, None, 0, 0
    while epochs <= settings.max_epoch:
        model.train()
        for _ in range(settings.epoch_size):
            order = torch.as_tensor(rng.permutation(len(x)), device=x.device)
            for start in range(0, len(x), settings.batch_size):
                batch = order[start:start + settings.batch_size]
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        epochs += settings.epoch_size
        accuracy = _accuracy(model, *dev)
        if accuracy > best_accuracy:
            best_accuracy, best_model = accuracy, copy.deepcopy(model)
        elif misses >= settings.tenacity:
            break
        else:
            misses += 1
    return best_model


@dataclass
class SklearnProbe:
    """SentEval's scikit-learn path (module docstring)."""

    seed: int = 1111
    name: str = "sklearn"

    def grid(self, protocol: str) -> tuple[float, ...]:
        low, high = (-1, 6) if protocol == "kfold" else (-2, 4)
        return tuple(2.0 ** t for t in range(low, high))

    def describe(self) -> dict:
        return {"classifier": self.name, "regularizer": "C of LogisticRegression", "seed": self.seed}

    def fit(self, reg: float, X: np.ndarray, y: np.ndarray, nclasses: int, validation) -> _Linear:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=reg, random_state=self.seed).fit(X, y)
        return _Linear(model.predict)


PROBES = ("senteval-torch", "sklearn")


def make_probe(name: str, settings: TorchSettings, seed: int = 1111, device: str = "cpu"):
    if name == "sklearn":
        return SklearnProbe(seed=seed)
    return SentEvalTorchProbe(settings=settings, seed=seed, device=device)
