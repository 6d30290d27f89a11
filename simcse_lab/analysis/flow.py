"""BERT-flow (Li et al. 2020, *On the sentence embeddings from pre-trained language models*): a post-hoc,
unsupervised fix for anisotropic embeddings, beside BERT-whitening (:mod:`simcse_lab.analysis.whitening`).

An invertible network ``f`` maps an embedding ``x`` to a latent ``z = f(x)`` and is fitted by maximum
likelihood under a standard Gaussian prior, ``log p(x) = log N(f(x); 0, I) + log |det df/dx|``, on a corpus
of the model's own (raw, unnormalised) sentence embeddings; similarity is then scored on ``z``.

The network is Glow (Kingma & Dhariwal 2018) on a vector, as the paper's code runs it (a 1x1 "image" whose
channels are the embedding dimensions): ``levels`` levels of ``depth`` steps; each step is

- actnorm: ``y = (x + b) * exp(s)`` per dimension, initialised from the data so its output starts with zero
  mean and unit variance;
- an invertible linear map ``W = P L (U + diag(sign * exp(log_s)))`` (LU parametrisation, Glow's "1x1
  convolution"; ``P`` and ``sign`` fixed, initialised from a random rotation), ``log |det| = sum log_s``;
- a coupling layer: the first half ``x1`` passes unchanged and parametrises the second half,
  affine ``y2 = x2 * exp(a) + t`` with ``a = tanh(.)`` bounded, or additive ``y2 = x2 + t``; ``(a, t)`` come
  from a 2-hidden-layer ReLU net of width ``hidden`` whose last layer starts at zero (each step starts as the
  identity);

and after every level but the last, half of the dimensions are factored out straight into the latent
(standard Gaussian prior, as in the paper's code), the rest going on to the next level. The latent is the
concatenation of the factored parts and the last level's output.

Before the network, the vectors are centred and rotated onto the directions in which the fitting corpus
varies (eigenvalues of its covariance above :data:`RANK_TOL` of the largest), as whitening does: a density
has no maximum-likelihood fit along a direction without variance (it can squeeze it for ever), and every
BERT-style embedding has one (LayerNorm's output lies in a hyperplane; all-MiniLM-L6-v2's mean pooling spans
381 of 384 dimensions on STS-B). The latent therefore has ``rank`` dimensions (the input's when the corpus
spans them all); the rotation has log-determinant 0 on that span.

The paper's settings (its code's default ``config_l3_d3_w32`` and training flags), and where this module differs:
3 levels, 3 steps per level, coupling width 32, Adam with learning rate 1e-3, batch 32, one epoch over the
unlabelled sentences (the STS sentences). Defaults here: the same, except that (a) the coupling is affine by
default (``coupling="additive"`` gives the paper's), (b) the linear map is the learned LU one (the paper's
config uses a fixed channel reversal), (c) actnorm is initialised on up to :data:`INIT_SAMPLE` vectors
rather than the first batch, (d) the coupling net has no actnorm of its own, and (e) the number of steps is
``ceil(epochs * n / batch_size)`` capped by ``max_steps`` (:data:`MAX_STEPS`), so a large corpus cannot make
fitting unbounded. Gradients are clipped (norm :data:`CLIP_NORM`). Everything runs in float64 on CPU,
seeded, so the inverse reproduces the input to ~1e-10 and a fit is repeatable.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn

from simcse_lab.analysis.post_hoc import PostHocMap
from simcse_lab.errors import UserError

LEVELS = 3
DEPTH = 3
HIDDEN = 32
COUPLINGS = ("affine", "additive")
LR = 1e-3
BATCH_SIZE = 32
EPOCHS = 1.0
MAX_STEPS = 2000
INIT_SAMPLE = 1024  # vectors used for actnorm's data-dependent initialisation
CLIP_NORM = 10.0
RANK_TOL = 1e-8  # covariance eigenvalues below this fraction of the largest count as no variance
_CHUNK = 4096  # vectors per forward pass when transforming
_LOG_2PI = math.log(2 * math.pi)


class ActNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x):
        if not self.initialized:
            with torch.no_grad():
                self.bias.copy_(-x.mean(0))
                self.log_scale.copy_(-torch.log(x.std(0) + 1e-6))
                self.initialized.fill_(True)
        return (x + self.bias) * torch.exp(self.log_scale), self.log_scale.sum().expand(len(x))

    def inverse(self, y):
        return y * torch.exp(-self.log_scale) - self.bias


class InvertibleLinear(nn.Module):
    """``y = x W^T`` with ``W = P L (U + diag(sign * exp(log_s)))``, applied factor by factor (O(n d^2))."""

    def __init__(self, dim: int, generator: torch.Generator):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        p, low, up = torch.linalg.lu(q)
        diag = torch.diagonal(up)
        self.register_buffer("perm", p.argmax(1))  # P[i, perm[i]] = 1
        self.register_buffer("sign", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim, dtype=torch.float64), -1))
        self.lower = nn.Parameter(low * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(up, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def _factors(self):
        eye = torch.eye(len(self.log_s), dtype=self.log_s.dtype, device=self.log_s.device)
        low = self.lower * self.lower_mask + eye
        up = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return low, up

    def forward(self, x):
        low, up = self._factors()
        y = (x @ up.T) @ low.T  # x (P L U)^T = x U^T L^T P^T
        return y[:, self.perm], self.log_s.sum().expand(len(x))

    def inverse(self, y):
        low, up = self._factors()
        b = torch.empty_like(y)
        b[:, self.perm] = y
        a = torch.linalg.solve_triangular(low, b.T, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(up, a, upper=True).T


class Coupling(nn.Module):
    def __init__(self, dim: int, hidden: int, kind: str):
        super().__init__()
        self.kind = kind
        self.d1 = dim // 2
        self.d2 = dim - self.d1
        out = 2 * self.d2 if kind == "affine" else self.d2
        self.net = nn.Sequential(nn.Linear(self.d1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, out))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _params(self, x1):
        h = self.net(x1)
        if self.kind == "affine":
            raw_scale, shift = h[:, : self.d2], h[:, self.d2:]
            return torch.tanh(raw_scale), shift
        return torch.zeros_like(h), h

    def forward(self, x):
        x1, x2 = x[:, : self.d1], x[:, self.d1:]
        log_scale, shift = self._params(x1)
        return torch.cat([x1, x2 * torch.exp(log_scale) + shift], 1), log_scale.sum(1)

    def inverse(self, y):
        y1, y2 = y[:, : self.d1], y[:, self.d1:]
        log_scale, shift = self._params(y1)
        return torch.cat([y1, (y2 - shift) * torch.exp(-log_scale)], 1)


def level_dims(dim: int, levels: int) -> list[int]:
    """Dimensions entering each level: every level but the last factors out ``floor(d / 2)`` of its ``d``."""
    dims = [dim]
    for _ in range(levels - 1):
        dims.append(dims[-1] - dims[-1] // 2)
    return dims


class FlowNet(nn.Module):
    """The invertible network: ``forward(x) -> (z, log|det dz/dx|)`` and ``inverse(z) -> x``."""

    def __init__(self, dim: int, levels: int = LEVELS, depth: int = DEPTH, hidden: int = HIDDEN,
                 coupling: str = "affine", seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.dims = level_dims(dim, levels)
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global generator: seed it locally
            torch.manual_seed(seed)
            self.levels = nn.ModuleList(
                nn.ModuleList(layer for _ in range(depth)
                              for layer in (ActNorm(d), InvertibleLinear(d, generator), Coupling(d, hidden, coupling)))
                for d in self.dims)
        self.double()

    def forward(self, x):
        logdet = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        factored = []
        for k, steps in enumerate(self.levels):
            for layer in steps:
                x, ld = layer(x)
                logdet = logdet + ld
            if k + 1 < len(self.levels):
                keep = self.dims[k + 1]
                factored.append(x[:, keep:])
                x = x[:, :keep]
        return torch.cat(factored + [x], 1), logdet

    def inverse(self, z):
        sizes = [self.dims[k] - self.dims[k + 1] for k in range(len(self.dims) - 1)] + [self.dims[-1]]
        parts = list(torch.split(z, sizes, 1))
        x = parts[-1]
        for k in reversed(range(len(self.levels))):
            if k + 1 < len(self.levels):
                x = torch.cat([x, parts[k]], 1)
            for layer in reversed(self.levels[k]):
                x = layer.inverse(x)
        return x

    def log_prob(self, x):
        z, logdet = self(x)
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * _LOG_2PI + logdet


@dataclass
class Flow:
    """A fitted flow: ``x -> (x - mean) @ basis -> net -> z``. ``forward``/``inverse``/``log_det``/``log_prob``
    take and return numpy arrays (float64). ``basis`` (dim, rank) spans the directions in which the fitting
    corpus varies; the latent has ``rank`` dimensions."""

    net: FlowNet
    mean: np.ndarray  # (dim,)
    basis: np.ndarray  # (dim, rank), orthonormal columns
    fitted_on: int  # number of vectors used to fit
    steps: int  # optimisation steps taken
    nll: float = float("nan")  # mean negative log-likelihood per latent dimension (nats) of the fitting corpus
    settings: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Dimension of the input vectors."""
        return self.basis.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.basis.shape[1]

    def _map(self, fn, x, width: int) -> list:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"expected vectors of shape (n, {width}), got {x.shape}")
        out = []
        with torch.no_grad():
            for start in range(0, len(x), _CHUNK):
                out.append(fn(torch.from_numpy(x[start: start + _CHUNK])))
        return out

    def _project(self, t: torch.Tensor) -> torch.Tensor:
        return (t - torch.from_numpy(self.mean)) @ torch.from_numpy(self.basis)

    def forward(self, x) -> np.ndarray:
        """Latent vectors ``z = f(x)``, shape ``(n, latent_dim)``."""
        parts = self._map(lambda t: self.net(self._project(t))[0], x, self.dim)
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.latent_dim))

    def inverse(self, z) -> np.ndarray:
        """Vectors ``x`` with ``f(x) = z``, in the corpus's affine span (``mean`` + span of ``basis``)."""
        parts = self._map(lambda t: self.net.inverse(t) @ torch.from_numpy(self.basis).T
                          + torch.from_numpy(self.mean), z, self.latent_dim)
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.dim))

    def log_det(self, x) -> np.ndarray:
        """``log |det df/dx|`` per vector, ``x`` measured in the corpus's span (the projection is a rotation
        there, with log-determinant 0)."""
        parts = self._map(lambda t: self.net(self._project(t))[1], x, self.dim)
        return torch.cat(parts).numpy() if parts else np.zeros(0)

    def log_prob(self, x) -> np.ndarray:
        """Log density (nats) of each vector under the fitted model, on the corpus's span."""
        parts = self._map(lambda t: self.net.log_prob(self._project(t)), x, self.dim)
        return torch.cat(parts).numpy() if parts else np.zeros(0)

    method = "flow"

    @property
    def output_dim(self) -> int:
        return self.latent_dim

    def apply(self, x) -> np.ndarray:
        return self.forward(x)

    def fit_record(self) -> dict:
        return self.describe()

    def report_head(self, fit_seconds: float) -> dict:
        return {"settings": self.describe(), "fitted_on": self.fitted_on, "fit_seconds": fit_seconds}

    def describe(self) -> dict:
        return {**self.settings, "fitted_on": self.fitted_on, "dim": self.dim, "latent_dim": self.latent_dim,
                "steps": self.steps, "nll_per_dim": self.nll}


@dataclass(frozen=True)
class FlowSettings:
    """The flow's hyper-parameters (module docstring); the seed is given to :func:`fit_flow` beside them."""

    levels: int = LEVELS
    depth: int = DEPTH
    hidden: int = HIDDEN
    coupling: str = "affine"
    lr: float = LR
    batch_size: int = BATCH_SIZE
    epochs: float = EPOCHS
    max_steps: int = MAX_STEPS

    def check(self) -> FlowSettings:
        """These settings, or a one-line UserError naming the bad one (before any corpus is encoded)."""
        if self.coupling not in COUPLINGS:
            raise UserError(f"unknown flow coupling {self.coupling!r}; choose from {', '.join(COUPLINGS)}")
        for name in ("levels", "depth", "hidden", "batch_size", "max_steps"):
            if getattr(self, name) < 1:
                raise UserError(f"flow {name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"flow learning rate must be a positive number, got {self.lr}")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise UserError(f"flow epochs must be a positive number, got {self.epochs}")
        return self


def fit_flow(vectors, settings: FlowSettings = FlowSettings(), seed: int = 0) -> Flow:
    """Fit a flow to ``vectors`` (n, dim) by maximum likelihood under a standard Gaussian prior (see the
    module docstring for the architecture and the defaults)."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a flow is fitted on a 2-D array of vectors, got shape {x.shape}")
    n, dim = x.shape
    settings.check()
    if not np.all(np.isfinite(x)):
        raise UserError("the flow corpus embeddings contain NaN or infinite values")
    if n <= dim:
        raise UserError(f"fitting a flow on {dim}-dimensional vectors needs more than {dim} of them, got {n}")
    mean = x.mean(axis=0)
    variances, axes = np.linalg.eigh((x - mean).T @ (x - mean) / (n - 1))
    by_variance = np.argsort(variances)[::-1]
    rank = int(np.sum(variances > max(variances[by_variance[0]], 0.0) * RANK_TOL))
    if rank < 2:
        raise UserError(f"the flow corpus embeddings span {rank} dimension(s); a flow needs at least 2")
    # Directions without variance (every BERT-style vector lies in a hyperplane: LayerNorm's output sums to
    # a constant) would let the likelihood grow without bound by squeezing them: drop them, as whitening does.
    basis = axes[:, by_variance[:rank]]
    if level_dims(rank, settings.levels)[-1] < 2:
        raise UserError(f"a {settings.levels}-level flow halves {rank} dimensions below 2 (a coupling needs 2); "
                        f"use fewer levels")
    data = torch.from_numpy((x - mean) @ basis)
    net = FlowNet(rank, settings.levels, settings.depth, settings.hidden, settings.coupling, seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # actnorm's data-dependent initialisation, layer after layer in one pass
        net(data[torch.randperm(n, generator=generator)[:INIT_SAMPLE]])
    steps = _optimise(net, data, settings, generator)
    net.eval()
    recorded = {k: v for k, v in asdict(settings).items() if k not in ("epochs", "max_steps")}
    flow = Flow(net=net, mean=mean, basis=basis, fitted_on=n, steps=steps, settings={**recorded, "seed": seed})
    flow.nll = float(-flow.log_prob(x).mean() / rank)
    return flow


def _optimise(net: FlowNet, data: torch.Tensor, settings: FlowSettings, generator: torch.Generator) -> int:
    """Adam on the mean negative log-likelihood per dimension; returns the number of steps taken."""
    n, rank = data.shape
    batch_size, lr = settings.batch_size, settings.lr
    steps = min(settings.max_steps, max(1, math.ceil(settings.epochs * n / batch_size)))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    order, cursor = torch.randperm(n, generator=generator), 0
    for step in range(steps):
        if cursor + batch_size > n:  # a fresh permutation each epoch; the last partial batch is dropped
            order, cursor = torch.randperm(n, generator=generator), 0
        batch = data[order[cursor: cursor + min(batch_size, n)]]
        cursor += batch_size
        loss = -net.log_prob(batch).mean() / rank
        if not torch.isfinite(loss):
            raise UserError(f"flow fitting diverged at step {step + 1} (non-finite likelihood); "
                            f"try a lower learning rate than {lr}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), CLIP_NORM)
        optimizer.step()
    return steps


class FlowMap(PostHocMap):
    """BERT-flow as a :class:`~simcse_lab.analysis.post_hoc.PostHocMap`; its settings are :class:`FlowSettings`
    (flags ``--flow-levels`` ... ``--flow-max-steps``, the same in eval and analyze)."""

    name, variant, flag, title, place = "flow", "flowed", "flow", "BERT-flow baseline", 60.0
    help = "fit BERT-flow on this corpus (dataset NAME[:SPLIT] or file) and score in its latent space"

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        for f in fields(FlowSettings):
            extra = {"choices": COUPLINGS} if f.name == "coupling" else {}
            p.add_argument("--flow-" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                           help=f"flow {f.name.replace('_', ' ')} (default {f.default})", **extra)

    def settings(self, args) -> FlowSettings:
        return FlowSettings(**{f.name: getattr(args, f"flow_{f.name}") for f in fields(FlowSettings)}).check()

    def options(self, settings: FlowSettings) -> dict:
        return {"flow_settings": asdict(settings)}

    def fit(self, vectors: np.ndarray, settings: FlowSettings, seed: int) -> Flow:
        return fit_flow(vectors, settings, seed)

    def fit_detail(self, entry: dict) -> str:
        st = entry["settings"]
        return (f": {st['levels']} levels x {st['depth']} steps, coupling {st['coupling']} (width {st['hidden']}), "
                f"Adam lr {st['lr']}, batch {st['batch_size']}, seed {st['seed']}")

    def score_note(self) -> str:
        return ", cosine in the flow's latent space"

    def extra_columns(self) -> tuple:
        return (("fit steps", lambda e: e["settings"]["steps"]), ("NLL/dim", lambda e: e["settings"]["nll_per_dim"]))


FLOW = FlowMap()
