"""Sentence-level embedding geometry: alignment, uniformity and isotropy measures.

Pure numpy/scipy functions on arrays of row vectors. Callers decide whether rows are
L2-normalised (the analysis report normalises them first, as SimCSE and Wang & Isola do);
:func:`alignment` and :func:`uniformity` assume normalised rows, as in their definitions.

- alignment  E ||f(x) - f(x+)||^alpha over positive pairs (Wang & Isola 2020, alpha=2);
- uniformity log E exp(-t ||f(x) - f(y)||^2) over all distinct pairs (t=2);
- mean cosine over all distinct pairs (exact, O(n d));
- fraction of distinct pairs with positive cosine (exact up to ``max_pairs`` pairs, sampled beyond);
- partition-function isotropy I = min_c Z(c) / max_c Z(c), c over the eigenvectors of X^T X
  (Mu & Viswanath 2018), computed with logsumexp;
- IsoScore (Rudman et al. 2022);
- effective rank exp(H(p)), p = normalised singular values of X (Roy & Vetterli 2007);
- share of variance in the top principal direction.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

_CHUNK = 1024


def _as_matrix(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows are vectors), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def l2_normalize(x, eps: float = 1e-12) -> np.ndarray:
    x = _as_matrix(x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def alignment(x, y, alpha: float = 2) -> float:
    """E ||x_i - y_i||^alpha over paired rows (SimCSE's ``align_loss``)."""
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    if x.shape != y.shape or len(x) == 0:
        raise ValueError(f"alignment needs two non-empty arrays of the same shape, got {x.shape} and {y.shape}")
    return float(np.mean(np.linalg.norm(x - y, axis=1) ** alpha))


def uniformity(x, t: float = 2) -> float:
    """log E_{i<j} exp(-t ||x_i - x_j||^2) over all distinct pairs of rows (SimCSE's ``uniform_loss``).

    Exact; the Gram matrix is processed in row chunks, so memory stays O(chunk * n)."""
    x = _as_matrix(x)
    n = len(x)
    if n < 2:
        raise ValueError("uniformity needs at least two rows")
    sq = np.einsum("ij,ij->i", x, x)
    parts = []
    for start in range(0, n, _CHUNK):
        rows = x[start: start + _CHUNK]
        d2 = sq[start: start + _CHUNK, None] + sq[None, :] - 2.0 * rows @ x.T
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(len(rows)), np.arange(start, start + len(rows))] = np.inf  # drop i == j
        parts.append(logsumexp(-t * d2))
    # ordered pairs i != j: the same mean as over unordered distinct pairs, since d is symmetric
    npairs = n * (n - 1)
    return float(logsumexp(parts) - np.log(npairs))


def mean_cosine(x) -> float:
    """Mean cosine over all distinct pairs, exactly: (||sum_i u_i||^2 - n) / (n (n - 1)), u = x / ||x||."""
    u = l2_normalize(x)
    n = len(u)
    if n < 2:
        raise ValueError("mean_cosine needs at least two rows")
    s = u.sum(axis=0)
    return float((s @ s - np.einsum("ij,ij->", u, u)) / (n * (n - 1)))


def pair_cosines(x, max_pairs: int = 200_000, seed: int = 0) -> np.ndarray:
    """Cosines of distinct pairs: all of them if there are at most ``max_pairs``, else ``max_pairs``
    random distinct pairs drawn with a fixed seed."""
    u = l2_normalize(x)
    n = len(u)
    if n < 2:
        raise ValueError("pair_cosines needs at least two rows")
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=max_pairs)
        j = rng.integers(0, n - 1, size=max_pairs)
        j = j + (j >= i)  # uniform over j != i
    out = np.empty(len(i))
    for start in range(0, len(i), 65536):  # bounded memory
        sl = slice(start, start + 65536)
        out[sl] = np.einsum("ij,ij->i", u[i[sl]], u[j[sl]])
    return out


def positive_cosine_fraction(x, max_pairs: int = 200_000, seed: int = 0) -> float:
    return float(np.mean(pair_cosines(x, max_pairs=max_pairs, seed=seed) > 0))


def partition_isotropy(x) -> float:
    """Mu & Viswanath's I = min_c Z(c) / max_c Z(c), Z(c) = sum_i exp(c . x_i), with c ranging over the
    unit eigenvectors of X^T X and their negatives (so the value does not depend on the eigen-solver's
    sign choice). Computed in log space."""
    x = _as_matrix(x)
    _, vecs = np.linalg.eigh(x.T @ x)
    proj = x @ vecs
    log_z = np.concatenate([logsumexp(proj, axis=0), logsumexp(-proj, axis=0)])
    return float(np.exp(log_z.min() - log_z.max()))


def pca_variances(x) -> np.ndarray:
    """Variances of the data along its principal directions (eigenvalues of the covariance), descending,
    one per dimension (zeros included)."""
    x = _as_matrix(x)
    if len(x) < 2:
        raise ValueError("need at least two rows")
    xc = x - x.mean(axis=0)
    s = np.linalg.svd(xc, compute_uv=False)
    var = np.zeros(x.shape[1])
    var[: len(s)] = s ** 2 / (len(x) - 1)
    return var


def isoscore(x=None, *, variances=None) -> float:
    """IsoScore (Rudman, Gillman, Rayne & Eickhoff 2022, Algorithm 1).

    1. reorient by PCA; 2. variance vector of the coordinates; 3. scale it to the length of the
    all-ones vector (sqrt n); 4. isotropy defect delta = ||v - 1|| / sqrt(2 (n - sqrt n));
    5. fraction of dimensions used phi = (n - delta^2 (n - sqrt n))^2 / n^2; 6. IsoScore = (n phi - 1) / (n - 1).
    1 for isotropic data, 0 when all variance lies in one direction."""
    var = pca_variances(x) if variances is None else np.asarray(variances, dtype=np.float64)
    n = len(var)
    if n < 2:
        raise ValueError("IsoScore needs at least two dimensions")
    norm = np.linalg.norm(var)
    if norm == 0:
        raise ValueError("IsoScore is undefined for data with zero variance")
    v = var * np.sqrt(n) / norm
    delta = np.linalg.norm(v - 1.0) / np.sqrt(2 * (n - np.sqrt(n)))
    used = (n - delta ** 2 * (n - np.sqrt(n))) ** 2
    return float(np.clip((used - n) / (n * (n - 1)), 0.0, 1.0))  # clip only rounding error (~1e-16)


def singular_values(x) -> np.ndarray:
    """Singular values of X itself (uncentred, so a common offset, the 'cone', shows as one large value)."""
    return np.linalg.svd(_as_matrix(x), compute_uv=False)


def effective_rank(x=None, *, singular=None) -> float:
    """exp of the Shannon entropy of the normalised singular values of X (Roy & Vetterli 2007)."""
    s = singular_values(x) if singular is None else np.asarray(singular, dtype=np.float64)
    total = s.sum()
    if total <= 0:
        raise ValueError("effective rank is undefined for a zero matrix")
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def top_pc_share(x=None, *, variances=None) -> float:
    """Share of the total variance explained by the first principal direction."""
    var = pca_variances(x) if variances is None else np.asarray(variances, dtype=np.float64)
    total = var.sum()
    if total <= 0:
        raise ValueError("top_pc_share is undefined for data with zero variance")
    return float(var[0] / total)


ISOTROPY_KEYS = ("mean_cosine", "positive_cosine_fraction", "partition_isotropy", "isoscore",
                 "effective_rank", "top_pc_share")


def isotropy_profile(x, normalize: bool = True, max_pairs: int = 200_000, seed: int = 0) -> dict:
    """All isotropy numbers for one set of embeddings (rows L2-normalised first unless ``normalize=False``)."""
    x = l2_normalize(x) if normalize else _as_matrix(x)
    variances = pca_variances(x)  # one SVD serves IsoScore and the top-PC share
    return {
        "n": int(len(x)),
        "dim": int(x.shape[1]),
        "mean_cosine": mean_cosine(x),
        "positive_cosine_fraction": positive_cosine_fraction(x, max_pairs=max_pairs, seed=seed),
        "partition_isotropy": partition_isotropy(x),
        "isoscore": isoscore(variances=variances),
        "effective_rank": effective_rank(x),
        "top_pc_share": top_pc_share(variances=variances),
    }
