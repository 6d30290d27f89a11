"""BERT-whitening (Su et al. 2021): a post-hoc, training-free fix for anisotropic embeddings.

Fit on a corpus of embeddings X: mu = mean(X), Sigma = cov(X) = U Lambda U^T, W = U Lambda^(-1/2)
(optionally only the first k columns, which also reduces the dimension; by default k is the
numerical rank of the covariance, so directions with no variance at all are dropped). Apply: (x - mu) W.
Whitened embeddings of the fitting corpus have zero mean and identity covariance. :data:`WHITENING` is the
method as a post-hoc map (:mod:`simcse_lab.analysis.post_hoc`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from simcse_lab.analysis.post_hoc import PostHocMap
from simcse_lab.errors import UserError

RANK_TOL = 1e-8  # eigenvalues below this fraction of the largest count as zero variance


@dataclass
class Whitening:
    mu: np.ndarray  # (dim,)
    W: np.ndarray  # (dim, k)
    fitted_on: int  # number of vectors used to fit
    method = "whitening"

    @property
    def k(self) -> int:
        return self.W.shape[1]

    @property
    def output_dim(self) -> int:
        return self.k

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mu) @ self.W).astype(np.float32)

    def describe(self) -> dict:
        return {"k": self.k, "fitted_on": self.fitted_on}

    def fit_record(self) -> dict:
        return {"k": self.k}

    def report_head(self, fit_seconds: float) -> dict:
        return self.describe()


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


class WhiteningMap(PostHocMap):
    """BERT-whitening as a :class:`~simcse_lab.analysis.post_hoc.PostHocMap`; its one setting is ``k``."""

    name, variant, flag, title, place = "whitening", "whitened", "whiten", "BERT-whitening baseline", 40.0
    help = "fit BERT-whitening on this corpus (dataset NAME[:SPLIT] or file) and score through it"

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--whiten-k", type=int, default=None, help="keep the top k whitened dims (default: all)")

    def settings(self, args) -> int | None:
        if args.whiten_k is not None and args.whiten_k < 1:  # its upper bound: once the dimension is known
            raise UserError("--whiten-k must be at least 1")
        return args.whiten_k

    def fit(self, vectors: np.ndarray, settings: int | None, seed: int) -> Whitening:
        return fit_whitening(vectors, k=settings)

    def fit_detail(self, entry: dict) -> str:
        return f", k = {entry['k']}"


WHITENING = WhiteningMap()
