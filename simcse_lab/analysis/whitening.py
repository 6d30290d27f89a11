"""BERT-whitening (Su et al. 2021): a post-hoc, training-free fix for anisotropic embeddings.

Fit on a corpus of embeddings X: mu = mean(X), Sigma = cov(X) = U Lambda U^T, W = U Lambda^(-1/2)
(optionally only the first k columns, which also reduces the dimension; by default k is the
numerical rank of the covariance, so directions with no variance at all are dropped). Apply: (x - mu) W.
Whitened embeddings of the fitting corpus have zero mean and identity covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcse_lab.errors import UserError
from simcse_lab.modeling.sentence_encoder import SentenceEncoder

RANK_TOL = 1e-8  # eigenvalues below this fraction of the largest count as zero variance


@dataclass
class Whitening:
    mu: np.ndarray  # (dim,)
    W: np.ndarray  # (dim, k)
    fitted_on: int  # number of vectors used to fit

    @property
    def k(self) -> int:
        return self.W.shape[1]

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mu) @ self.W).astype(np.float32)


def fit_whitening(x: np.ndarray, k: int | None = None) -> Whitening:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"whitening needs a 2-D array, got shape {x.shape}")
    n, dim = x.shape
    if k is not None and not 1 <= k <= dim:
        raise UserError(f"whitening k must be between 1 and the embedding dimension {dim}, got {k}")
    mu = x.mean(axis=0)
    cov = np.cov(x - mu, rowvar=False)
    u, s, _ = np.linalg.svd(cov)
    rank = int(np.sum(s > s[0] * RANK_TOL)) if s[0] > 0 else 0
    if rank == 0:
        raise UserError("the whitening corpus embeddings have zero variance")
    if k is None:
        k = rank  # directions without variance cannot be scaled to unit variance: drop them
    elif k > rank:
        raise UserError(f"the whitening corpus embeddings span only {rank} dimensions; choose k <= {rank}")
    return Whitening(mu=mu, W=u[:, :k] / np.sqrt(s[:k]), fitted_on=n)


class WhitenedEncoder:
    """A :class:`SentenceEncoder` whose vectors come out whitened; usable directly with
    :func:`simcse_lab.evaluation.sts.evaluate`."""

    def __init__(self, encoder: SentenceEncoder, whitening: Whitening):
        self.encoder = encoder
        self.whitening = whitening

    @property
    def dim(self) -> int:
        return self.whitening.k

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        return self.whitening.apply(self.encoder.encode(sentences, progress=progress))

    def describe(self) -> dict:
        return {**self.encoder.describe(), "whitening": {"k": self.whitening.k,
                                                          "fitted_on": self.whitening.fitted_on}}
