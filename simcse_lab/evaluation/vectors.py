"""Embedding rows: L2 normalisation, row-wise cosine, alignment and uniformity (Wang & Isola).

The one home of these measures: the STS scores, the dev evaluation during training, the geometry
report, the retrieval evaluation and the exporters all normalise with :func:`l2_normalize`. :func:`alignment` and
:func:`uniformity` assume normalised rows, as in their definitions (Wang & Isola 2020; SimCSE's
``align_loss`` / ``uniform_loss``).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import logsumexp

_CHUNK = 1024  # rows of the Gram matrix held at once by uniformity


def as_rows(x, name: str = "x", min_rows: int = 0, dtype=np.float64) -> np.ndarray:
    """``x`` as a ``dtype`` (float64) matrix of at least ``min_rows`` finite row vectors (ValueError otherwise: a
    caller's mistake)."""
    x = np.asarray(x, dtype=dtype)
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

    Exact over every pair; only the upper triangle of the Gram matrix is computed (each pair once), in row
    chunks, so memory stays O(chunk * n). Float32 rows (the encoders' output) give float32 Gram blocks (half the
    time; their rounding, ~1e-7 relative, is far below the vectors' own precision), any other input float64;
    the sums are float64 either way."""
    dtype = np.float32 if np.asarray(x).dtype == np.float32 else np.float64
    x = as_rows(x, "uniformity", min_rows=2, dtype=dtype)
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    block = _bounded_block if sq.max() <= _BOUNDED_SQ else _shifted_block
    parts = [block(x, sq, start, t) for start in range(0, n - 1, _CHUNK)]
    return float(logsumexp(parts) - np.log(n * (n - 1) / 2))


_BOUNDED_SQ = 4.0  # rows no longer than 2 (normalised rows): -t d2 >= -16 t, exp needs no shift


def _minus_t_d2(x: np.ndarray, sq: np.ndarray, start: int, t: float) -> tuple[np.ndarray, tuple]:
    """(-t ||x_i - x_j||^2 for the chunk's rows i = start + r against columns j = start + 1 + c, the indices of its
    entries with j <= i, which the caller drops)."""
    rows, cols = x[start: start + _CHUNK], x[start + 1:]
    e = (rows * x.dtype.type(2 * t)) @ cols.T
    e -= (t * sq[start: start + _CHUNK])[:, None]
    e -= (t * sq[start + 1:])[None, :]
    return e, _strictly_lower(len(rows))


@functools.lru_cache(maxsize=2)
def _strictly_lower(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (r, c), c < r < k: in a chunk, the columns j = start + 1 + c <= i = start + r (every chunk has at
    least k - 1 columns)."""
    return np.tril_indices(k, -1)


def _bounded_block(x: np.ndarray, sq: np.ndarray, start: int, t: float) -> float:
    """log sum_{i in chunk, j > i} exp(-t d2_ij) for rows no longer than 2: no term can overflow or underflow."""
    e, lower = _minus_t_d2(x, sq, start, t)
    np.exp(e, out=e)
    e[lower] = 0.0
    return float(np.log(e.sum(axis=1).sum(dtype=np.float64)))


def _shifted_block(x: np.ndarray, sq: np.ndarray, start: int, t: float) -> float:
    """The same sum for rows of any length, shifted by the block's maximum (log-sum-exp)."""
    e, lower = _minus_t_d2(x, sq, start, t)
    np.minimum(e, 0.0, out=e)  # d2 >= 0: clip rounding
    e[lower] = -np.inf
    top = float(e.max())
    np.subtract(e, top, out=e)
    np.exp(e, out=e)
    return top + float(np.log(e.sum(dtype=np.float64)))
