"""Embedding rows: L2 normalisation, row-wise cosine, alignment and uniformity (Wang & Isola).

The one home of these measures: the STS scores, the dev evaluation during training, the geometry
report, the retrieval evaluation and the exporters all normalise with :func:`l2_normalize`. :func:`alignment` and
:func:`uniformity` assume normalised rows, as in their definitions (Wang & Isola 2020; SimCSE's
``align_loss`` / ``uniform_loss``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

_CHUNK = 1024  # rows of the Gram matrix held at once by uniformity


def as_rows(x, name: str = "x", min_rows: int = 0) -> np.ndarray:
    """``x`` as a float64 matrix of at least ``min_rows`` finite row vectors (ValueError otherwise: a
    caller's mistake)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows are vectors), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if len(x) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {len(x)}")
    return x


def l2_normalize(x, dtype=np.float64, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (converted to ``dtype`` first, and computed in it) divided by their L2 norm, or by
    ``eps`` when that is smaller (a zero row stays zero)."""
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"l2_normalize needs a 2-D array (rows are vectors), got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) for each row i, in float64."""
    return (l2_normalize(a) * l2_normalize(b)).sum(1)


def alignment(x, y, alpha: float = 2) -> float:
    """E ||x_i - y_i||^alpha over paired rows (SimCSE's ``align_loss``)."""
    x, y = as_rows(x, "x"), as_rows(y, "y")
    if x.shape != y.shape or len(x) == 0:
        raise ValueError(f"alignment needs two non-empty arrays of the same shape, got {x.shape} and {y.shape}")
    return float(np.mean(np.linalg.norm(x - y, axis=1) ** alpha))


def uniformity(x, t: float = 2) -> float:
    """log E_{i<j} exp(-t ||x_i - x_j||^2) over all distinct pairs of rows (SimCSE's ``uniform_loss``).

    Exact; the Gram matrix is processed in row chunks, so memory stays O(chunk * n)."""
    x = as_rows(x, "uniformity", min_rows=2)
    n = len(x)
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
