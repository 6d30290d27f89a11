"""Sentence-level embedding geometry: the isotropy measures of the analysis report and of ``eval``.

Pure numpy/scipy functions on arrays of row vectors. Callers decide whether rows are
L2-normalised (the analysis report and the STS evaluation normalise them first, as SimCSE and Wang & Isola do).
Alignment and uniformity (Wang & Isola 2020), which the dev evaluation during training shares, live in
:mod:`simcse_lab.evaluation.vectors`; this module adds the isotropy measures:

- mean cosine over all distinct pairs (exact, O(n d));
- fraction of distinct pairs with positive cosine (exact up to ``max_pairs`` pairs, sampled beyond);
- partition-function isotropy I = min_c Z(c) / max_c Z(c), c over the eigenvectors of X^T X
  (Mu & Viswanath 2018), computed with logsumexp;
- IsoScore (Rudman et al. 2022);
- effective rank exp(H(p)), p = normalised singular values of X (Roy & Vetterli 2007);
- share of variance in the top principal direction.

:func:`spectral_profile` computes all of them but the sampled positive-cosine fraction from the two d x d
Gram matrices (X^T X and the centred one): O(n d^2) with no n x d decomposition, so the STS evaluation can
afford it on every sentence it encoded (26,289 for the full suite); :func:`isotropy_profile` adds the fraction.
"""

from __future__ import annotations

import numpy as np

from simcse_lab.evaluation.vectors import as_rows, l2_normalize


def _unit_rows(x, name: str = "x", min_rows: int = 0) -> np.ndarray:
    return l2_normalize(as_rows(x, name, min_rows))


def _given_or(values, compute, x) -> np.ndarray:
    """``values`` when the caller computed them already (one SVD serving several measures), else ``compute(x)``."""
    return compute(x) if values is None else np.asarray(values, dtype=np.float64)


def _positive_sum(values: np.ndarray, undefined: str) -> float:
    total = values.sum()
    if total <= 0:
        raise ValueError(undefined)
    return total


_ROWS = 4096  # rows converted to float64 at once by the O(n d) and O(n d^2) passes (no n x d temporaries)


def _row_chunks(x: np.ndarray):
    for start in range(0, len(x), _ROWS):
        yield np.asarray(x[start: start + _ROWS], dtype=np.float64)


def _checked(x, name: str) -> np.ndarray:
    """``x`` checked as rows (at least two), float32 kept as it is (the passes convert chunk by chunk)."""
    return as_rows(x, name, min_rows=2, dtype=np.float32 if np.asarray(x).dtype == np.float32 else np.float64)


def mean_cosine(x) -> float:
    """Mean cosine over all distinct pairs, exactly: (||sum_i u_i||^2 - n) / (n (n - 1)), u = x / ||x||."""
    x = _checked(x, "mean_cosine")
    n, total, diagonal = len(x), 0.0, 0.0
    for rows in _row_chunks(x):
        u = l2_normalize(rows)
        total = total + u.sum(axis=0)
        diagonal += np.einsum("ij,ij->", u, u)
    return float((total @ total - diagonal) / (n * (n - 1)))


def pair_cosines(x, max_pairs: int = 200_000, seed: int = 0) -> np.ndarray:
    """Cosines of distinct pairs: all of them if there are at most ``max_pairs``, else ``max_pairs``
    random distinct pairs drawn with a fixed seed."""
    u = _unit_rows(x, "pair_cosines", min_rows=2)
    n = len(u)
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


def partition_isotropy(x, *, eigenvectors=None) -> float:
    """Mu & Viswanath's I = min_c Z(c) / max_c Z(c), Z(c) = sum_i exp(c . x_i), with c ranging over the
    unit eigenvectors of X^T X (``eigenvectors``, when the caller has them) and their negatives (so the value
    does not depend on the eigen-solver's sign choice). Computed in log space."""
    x = as_rows(x, dtype=np.float32 if np.asarray(x).dtype == np.float32 else np.float64)
    vecs = np.linalg.eigh(_gram(x))[1] if eigenvectors is None else eigenvectors
    top = np.full(2 * x.shape[1], -np.inf)  # log Z(c) for c = +v and -v, accumulated chunk by chunk, shifted
    sums = np.zeros(2 * x.shape[1])
    for rows in _row_chunks(x):
        proj = rows @ vecs
        proj = np.concatenate([proj, -proj], axis=1)
        new_top = np.maximum(top, proj.max(axis=0))
        sums = sums * np.exp(top - new_top) + np.exp(proj - new_top).sum(axis=0)
        top = new_top
    log_z = top + np.log(sums)
    return float(np.exp(log_z.min() - log_z.max()))


def _gram(x: np.ndarray, mean=None) -> np.ndarray:
    """X^T X (or the centred Xc^T Xc, Xc = X - mean) in float64, chunk by chunk."""
    out = np.zeros((x.shape[1], x.shape[1]))
    for rows in _row_chunks(x):
        if mean is not None:
            rows = rows - mean  # a copy: a float64 chunk is a view of x
        out += rows.T @ rows
    return out


def pca_variances(x) -> np.ndarray:
    """Variances of the data along its principal directions (eigenvalues of the covariance), descending,
    one per dimension (zeros included)."""
    x = as_rows(x)
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
    var = _given_or(variances, pca_variances, x)
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
    return np.linalg.svd(as_rows(x), compute_uv=False)


def effective_rank(x=None, *, singular=None) -> float:
    """exp of the Shannon entropy of the normalised singular values of X (Roy & Vetterli 2007)."""
    s = _given_or(singular, singular_values, x)
    p = s[s > 0] / _positive_sum(s, "effective rank is undefined for a zero matrix")
    return float(np.exp(-(p * np.log(p)).sum()))


def top_pc_share(x=None, *, variances=None) -> float:
    """Share of the total variance explained by the first principal direction."""
    var = _given_or(variances, pca_variances, x)
    return float(var[0] / _positive_sum(var, "top_pc_share is undefined for data with zero variance"))


def spectral_profile(x) -> dict:
    """Every isotropy number but the sampled positive-cosine fraction, from the d x d Gram matrices (rows taken
    as given: normalise first). The centred one C = Xc^T Xc gives the principal variances (IsoScore, top-PC
    share); X^T X = C + n mu mu^T (a sum: no cancellation) gives the eigenvectors of I(Z) and the singular
    values of X (effective rank)."""
    x = _checked(x, "spectral_profile")
    n = len(x)
    mean = x.mean(axis=0, dtype=np.float64)
    centred = _gram(x, mean)
    variances = np.clip(np.linalg.eigvalsh(centred)[::-1], 0.0, None) / (n - 1)
    eigenvalues, vectors = np.linalg.eigh(centred + n * np.outer(mean, mean))
    return {
        "n": int(n),
        "dim": int(x.shape[1]),
        "mean_cosine": mean_cosine(x),
        "partition_isotropy": partition_isotropy(x, eigenvectors=vectors),
        "isoscore": isoscore(variances=variances),
        "effective_rank": effective_rank(singular=np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))),
        "top_pc_share": top_pc_share(variances=variances),
    }


def isotropy_profile(x, normalize: bool = True, max_pairs: int = 200_000, seed: int = 0) -> dict:
    """All isotropy numbers for one set of embeddings (rows L2-normalised first unless ``normalize=False``):
    :func:`spectral_profile` and the positive-cosine fraction (sampled beyond ``max_pairs`` pairs, seeded)."""
    x = _unit_rows(x) if normalize else as_rows(x)
    profile = spectral_profile(x)
    profile["positive_cosine_fraction"] = positive_cosine_fraction(x, max_pairs=max_pairs, seed=seed)
    return profile
