"""Is model A's Spearman on an STS task different from model B's on the same pairs? Paired tests over pairs.

For one task, with gold scores g and the two models' cosine similarities a and b on the same n pairs
(Dror et al. 2018: correlation is not a parametric metric, so the tests are sampling-based):

- **paired bootstrap**: the n pairs are resampled with replacement (``scipy.stats.bootstrap``, ``paired=True``),
  Δ = Spearman(a, g) - Spearman(b, g) recomputed on each resample; the 95% interval is the percentile interval of
  those Δ (``method="percentile"``: the plain one, and it stays defined when Δ is the same on every resample);
- **paired permutation test**: under H0 the two models are exchangeable on each pair, so each pair's two scores
  are swapped at random (``scipy.stats.permutation_test``, ``permutation_type="samples"``); p is two-sided,
  scipy's: 2 x the smaller tail, counting the observed Δ as one of the draws. What is swapped is each model's
  rank of the pair among the task's pairs, not its raw cosine: Spearman depends on the ranks only (the observed
  Δ is the same), and two models' cosines live on different scales (one model's may all lie in 0.8-1.0), so
  swapping raw values would mix scales and blur both rankings, a null distribution far too wide;
- **Holm**: the step-down correction of a family of p-values (here: the tasks and their average).

The average over tasks (the table's Avg.) is tested with the same draws: the tasks' pairs are independent sets,
so a draw of the average Δ is the mean of one independent draw per task (a stratified bootstrap, a permutation
within each task), each task with its own random stream (``numpy.random.default_rng([seed, i])``). Spearman
values are x100 (points), as in every table of simcse-lab.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import bootstrap, permutation_test, rankdata

RESAMPLES = 9999
CONFIDENCE = 0.95
BATCH = 250  # resamples per vectorised call: bounded memory for the 3,750 pairs of STS14


def average_ranks(ids: np.ndarray, k: int) -> np.ndarray:
    """Ranks along the last axis (from 1; ties get their average rank) of integer codes in [0, k) that keep the
    order of the values they stand for: counted per row instead of sorted, so a resample costs no sort."""
    flat = ids.reshape(-1, ids.shape[-1])
    rows = len(flat)
    counts = np.bincount((flat + k * np.arange(rows)[:, None]).ravel(), minlength=rows * k).reshape(rows, k)
    average = np.cumsum(counts, axis=1) - (counts - 1) / 2.0
    return np.take_along_axis(average, flat, axis=1).reshape(ids.shape)


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson x100 along the last axis (of ranks: Spearman)."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    return 100.0 * (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def codes(*arrays: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Order-keeping integer codes of the values of ``arrays`` (one code book for all), and how many codes."""
    values, inverse = np.unique(np.concatenate(arrays), return_inverse=True)
    return np.split(inverse, np.cumsum([len(a) for a in arrays])[:-1]), len(values)


@dataclass
class PairedTest:
    """Spearman of A and B on the same pairs, Δ = A - B, its interval and the permutation p-value; the draws
    themselves are kept to test an average over tasks."""

    n: int
    spearman_a: float
    spearman_b: float
    delta: float
    ci: tuple[float, float]
    p: float
    boot: np.ndarray = field(repr=False)
    null: np.ndarray = field(repr=False)

    def summary(self) -> dict:
        return {"n": self.n, "spearman_a": self.spearman_a, "spearman_b": self.spearman_b, "delta": self.delta,
                "ci_low": self.ci[0], "ci_high": self.ci[1], "p_permutation": self.p}


def two_sided_p(null: np.ndarray, observed: float, counted: int = 1) -> float:
    """scipy's two-sided permutation p-value: 2 x the smaller tail (the observed value counted ``counted`` times,
    0 for an exact enumeration), clipped at 1; values equal up to rounding count as equal."""
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)
    less = (np.count_nonzero(null <= observed + gamma) + counted) / (len(null) + counted)
    greater = (np.count_nonzero(null >= observed - gamma) + counted) / (len(null) + counted)
    return float(min(1.0, 2 * min(less, greater)))


def paired_test(pred_a, pred_b, gold, resamples: int = RESAMPLES, seed=0) -> PairedTest:
    """The paired bootstrap interval and permutation p-value of Δ Spearman on one task's pairs. ``seed`` is
    anything ``numpy.random.default_rng`` takes; the bootstrap and the permutations draw from it in turn.
    The values enter as order-keeping codes of each model's ranks (:func:`codes`; the bootstrap resamples pair
    indices), so that ranks are counted rather than sorted; Spearman is unchanged by any order-keeping map."""
    a, b, g = (np.asarray(x, dtype=np.float64) for x in (pred_a, pred_b, gold))
    (ca, cb), k = codes(rankdata(a), rankdata(b))  # each model's ranks: one scale for both (module docstring)
    (cg,), kg = codes(g)
    gold_ranks = average_ranks(cg, kg)
    rng = np.random.default_rng(seed)

    def delta_boot(idx, axis=-1):
        rg = average_ranks(cg[idx], kg)
        return pearson_rows(average_ranks(ca[idx], k), rg) - pearson_rows(average_ranks(cb[idx], k), rg)

    def delta_swapped(x, y, axis=-1):
        return pearson_rows(average_ranks(x, k), gold_ranks) - pearson_rows(average_ranks(y, k), gold_ranks)

    boot = bootstrap((np.arange(len(g)),), delta_boot, n_resamples=resamples, batch=BATCH, vectorized=True,
                     confidence_level=CONFIDENCE, method="percentile", rng=rng)
    perm = permutation_test((ca, cb), delta_swapped, permutation_type="samples", n_resamples=resamples,
                            batch=BATCH, vectorized=True, rng=rng)
    null = np.asarray(perm.null_distribution, dtype=np.float64)
    if len(null) != resamples:  # a task of a few pairs: scipy enumerated every swap; draw as many as the others
        null = rng.choice(null, resamples)
    sa, sb = (float(pearson_rows(average_ranks(c, k), gold_ranks)) for c in (ca, cb))
    return PairedTest(len(g), sa, sb, sa - sb, (float(boot.confidence_interval.low),
                                                float(boot.confidence_interval.high)),
                      float(perm.pvalue), np.asarray(boot.bootstrap_distribution), null)


def paired_tests(tasks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], resamples: int = RESAMPLES,
                 seed: int = 0) -> tuple[list[PairedTest], PairedTest]:
    """One :func:`paired_test` per task ((a, b, gold) each; task i draws from ``default_rng([seed, i])``) and the
    test of their average (n: all pairs)."""
    tests = [paired_test(a, b, g, resamples, [seed, i]) for i, (a, b, g) in enumerate(tasks)]
    boot = np.mean([t.boot for t in tests], axis=0)
    null = np.mean([t.null for t in tests], axis=0)
    low, high = np.percentile(boot, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    sa, sb = float(np.mean([t.spearman_a for t in tests])), float(np.mean([t.spearman_b for t in tests]))
    delta = float(np.mean([t.delta for t in tests]))
    average = PairedTest(sum(t.n for t in tests), sa, sb, delta, (float(low), float(high)),
                         two_sided_p(null, delta), boot, null)
    return tests, average


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest is multiplied by m - i
    (i from 0), made non-decreasing along that order, capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = scaled
    return adjusted.tolist()
