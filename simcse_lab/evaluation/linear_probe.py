"""The linear classifiers SentEval's transfer protocol fits on frozen sentence vectors, one per regulariser.

A probe declares its regulariser grid for each of SentEval's three protocols (``inner_kfold``: MR/CR/SUBJ/MPQA;
``kfold``: TREC/MRPC; ``split``: SST-2) and fits one classifier for one value of it, given the data SentEval
gives that classifier for early stopping (``validation``: a held-out ``(X, y)``, or the share of the training
rows to hold out), or one per value of a grid at once (``fit_grid``). Two are declared:

- ``senteval-torch`` (the default): SentEval's PyTorch logistic regression (``usepytorch: True``, ``nhid: 0``),
  which is what SimCSE's ``evaluation.py`` runs in every mode: one linear layer, cross-entropy, the L2 penalty
  as the optimiser's weight decay over ``10**-5 .. 10**-2``, mini-batches in a seeded random order, and early
  stopping on the validation data (stop once accuracy has failed to improve ``tenacity`` + 1 times, every
  ``epoch_size`` passes, at most 200 epochs; keep the best). SimCSE's ``test`` mode uses Adam, batch 64,
  tenacity 5, epoch size 4; ``fasttest`` RMSprop, batch 128, tenacity 3, epoch size 2. Seeds are drawn as
  SentEval draws them (numpy and torch seeded with 1111 for every classifier, so every fit starts from the same
  weights and the same shuffles); the grid is trained side by side (``fit_grid``), each model exactly as it
  would be trained alone. This is our code, run on this machine's device, and has not been compared with
  SimCSE's published numbers here (the data is not available offline): float arithmetic on another device can
  move a borderline prediction, the protocol cannot. SentEval's loss sets ``size_average = False`` after
  construction, which PyTorch >= 0.4 ignores: its loss is the batch mean, as ours is.
- ``sklearn``: SentEval's ``usepytorch: False`` path, scikit-learn's ``LogisticRegression(C=c,
  random_state=seed)`` over SentEval's grids of ``C`` (``2**-2 .. 2**3``; TREC/MRPC ``2**-1 .. 2**5``), no early
  stopping. Faster on a CPU; not what SimCSE reports (and today's scikit-learn solver, lbfgs, is not the
  liblinear of 2017), so its numbers are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simcse_lab.errors import UserError


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
        return self.fit_grid((reg,), X, y, nclasses, validation)[0]

    def fit_grid(self, regs, X: np.ndarray, y: np.ndarray, nclasses: int, validation) -> list[_Linear]:
        """One classifier per regulariser, trained side by side as one stacked model: every SentEval classifier
        starts from the same seeded weights and draws the same seeded shuffles, so the models of a grid see the
        same batches; each has its own weight decay, Adam/RMSprop state and early stopping, exactly as if
        trained alone (the optimisers act element by element), at a fraction of the time."""
        import torch

        rng = np.random.RandomState(self.seed)  # SentEval: np.random.seed(seed) when each classifier is made
        if isinstance(validation, float):  # the final fit: a seeded share of the training rows stops it
            order = rng.permutation(len(X))
            cut = int(validation * len(X))
            if cut == 0:
                raise UserError(f"{len(X)} training rows: too few for SentEval's {validation:.0%} early-stopping share")
            X, y, validation = X[order[cut:]], y[order[cut:]], (X[order[:cut]], y[order[:cut]])
        train_x, train_y, dev_x, dev_y = (torch.as_tensor(np.asarray(a), device=self.device)
                                          for a in (X, y, *validation))
        stack = _Stacked(X.shape[1], nclasses, len(regs), self.seed, self.device)
        decay = torch.tensor(regs, dtype=torch.float32, device=self.device)
        optimizer = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[self.settings.optim](
            stack.parameters())  # PyTorch's default learning rates, as SentEval
        best = _train_with_early_stopping(stack, optimizer, decay, (train_x.float(), train_y.long()),
                                          (dev_x.float(), dev_y.long()), rng, self.settings)
        return [_Linear(lambda rows, w=w, b=b: _predict(w, b, rows, self.device)) for w, b in best]


class _Stacked:
    """R linear layers ``x @ W[r] + b[r]``, each initialised as SentEval's ``nn.Linear`` after
    ``torch.manual_seed(seed)`` (the global generator left as it was)."""

    def __init__(self, dim: int, nclasses: int, count: int, seed: int, device: str):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layer = torch.nn.Linear(dim, nclasses)
        self.weight = layer.weight.detach().t().repeat(count, 1, 1).to(device).requires_grad_()  # (R, dim, C)
        self.bias = layer.bias.detach().repeat(count, 1).to(device).requires_grad_()  # (R, C)

    def parameters(self):
        return [self.weight, self.bias]

    def __call__(self, x):
        return x @ self.weight + self.bias[:, None, :]  # (R, n, C)

    def slice(self, r: int):
        return self.weight[r].detach().clone(), self.bias[r].detach().clone()


def _predict(weight, bias, rows, device: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(rows), device=device).float()
        return (x @ weight + bias).argmax(dim=1).cpu().numpy()


def _step(stack: _Stacked, optimizer, decay, x, y) -> None:
    """One mini-batch for every model: the sum of their mean cross-entropies (so each gets its own gradient),
    plus each model's L2 term as PyTorch's ``weight_decay`` adds it, ``grad + decay * param``."""
    import torch

    logits = stack(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(len(decay)),
                                             reduction="sum") / len(y)
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        stack.weight.grad.add_(decay[:, None, None] * stack.weight)
        stack.bias.grad.add_(decay[:, None] * stack.bias)
    optimizer.step()


def _train_with_early_stopping(stack, optimizer, decay, train, dev, rng: np.random.RandomState,
                               settings: TorchSettings) -> list:
    """SentEval's loop, per model: ``epoch_size`` shuffled passes, then dev accuracy; the best weights are kept;
    a model stops at the first check after ``tenacity`` earlier ones failed to improve on its best, or after
    ``max_epoch`` (a stopped model's later updates are never used). Returns each model's best (weight, bias)."""
    import torch

    x, y = train
    count = len(decay)
    best_accuracy, best, misses, running = [-1.0] * count, [None] * count, [0] * count, [True] * count
    epochs = 0
    while epochs <= settings.max_epoch and any(running):
        for _ in range(settings.epoch_size):
            order = torch.as_tensor(rng.permutation(len(x)), device=x.device)
            for start in range(0, len(x), settings.batch_size):
                batch = order[start:start + settings.batch_size]
                _step(stack, optimizer, decay, x[batch], y[batch])
        epochs += settings.epoch_size
        with torch.inference_mode():
            correct = (stack(dev[0]).argmax(dim=2) == dev[1]).sum(dim=1).tolist()
        for r in (r for r in range(count) if running[r]):
            accuracy = correct[r] / len(dev[1])  # an exact count over the rows, as SentEval
            if accuracy > best_accuracy[r]:
                best_accuracy[r], best[r] = accuracy, stack.slice(r)
            elif misses[r] >= settings.tenacity:
                running[r] = False
            else:
                misses[r] += 1
    return best


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

    def fit_grid(self, regs, X: np.ndarray, y: np.ndarray, nclasses: int, validation) -> list[_Linear]:
        return [self.fit(reg, X, y, nclasses, validation) for reg in regs]


PROBES = ("senteval-torch", "sklearn")


def make_probe(name: str, settings: TorchSettings, seed: int = 1111, device: str = "cpu"):
    if name == "sklearn":
        return SklearnProbe(seed=seed)
    return SentEvalTorchProbe(settings=settings, seed=seed, device=device)
