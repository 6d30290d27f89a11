"""Two groups of training runs (seeds) compared on one score: the runs are the samples, not the pairs.

- mean ± sample standard deviation (n) of each group;
- the difference of the means, Δ = mean(A) - mean(B), with a 95% percentile bootstrap interval over the runs
  (``scipy.stats.bootstrap``, the two groups resampled independently) and, beside it, Welch's t interval
  (``scipy.stats.ttest_ind(equal_var=False)``): with a handful of seeds the bootstrap interval is too narrow
  (it ignores that the spread itself is estimated from n runs), Welch's is the usual small-sample one;
- Almost Stochastic Order (Dror et al. 2019, "Deep Dominance", as recommended for comparing training runs;
  ``deepsig.aso``, the ``stats`` extra): ε_min(A, B) is an upper bound on how far A's score distribution is from
  stochastically dominating B's; ε_min < 0.5 reads "A almost stochastically dominates B" (deepsig's rule; 0.2 the
  stricter one). Both directions are computed; the confidence level is Bonferroni-corrected for ``comparisons``
  (deepsig's ``num_comparisons``).

Below :data:`MIN_RUNS` runs in a group there is no interval and no ASO: :class:`GroupTest` says so in ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap, ttest_ind

from simcse_lab.errors import UserError

MIN_RUNS = 3       # fewer runs in a group: no interval, no ASO (the spread of 2 runs says nothing)
RESAMPLES = 9999
CONFIDENCE = 0.95
ASO_SEED = 0
ASO_ITERATIONS = 1000  # deepsig's default number of bootstrap iterations for ε_min's variance


@dataclass
class GroupTest:
    """One score of two groups of runs: their summaries, Δ of the means, the intervals and ASO both ways
    (None where n is too small; ``note`` then says why)."""

    a: list[float]
    b: list[float]
    delta: float
    ci: tuple[float, float] | None
    welch_ci: tuple[float, float] | None
    aso_ab: float | None
    aso_ba: float | None
    note: str = ""

    def summary(self) -> dict:
        return {"n_a": len(self.a), "mean_a": mean(self.a), "std_a": std(self.a), "n_b": len(self.b),
                "mean_b": mean(self.b), "std_b": std(self.b), "delta": self.delta,
                "ci": list(self.ci) if self.ci else None, "welch_ci": list(self.welch_ci) if self.welch_ci else None,
                "aso_eps_min_a_over_b": self.aso_ab, "aso_eps_min_b_over_a": self.aso_ba, "note": self.note,
                "runs_a": self.a, "runs_b": self.b}


def mean(x: list[float]) -> float:
    return float(np.mean(x))


def std(x: list[float]) -> float | None:
    """The sample standard deviation (ddof 1); None for a single run."""
    return float(np.std(x, ddof=1)) if len(x) > 1 else None


def aso_function():
    """``deepsig.aso``, or one line naming the extra that installs it."""
    try:
        from deepsig import aso
    except ImportError:
        raise UserError("comparing groups of runs needs deepsig (Almost Stochastic Order): "
                        "pip install 'simcse-lab[stats]'") from None
    return aso


def aso_both_ways(a: list[float], b: list[float], comparisons: int = 1, seed: int = ASO_SEED) -> tuple[float, float]:
    """(ε_min(A, B), ε_min(B, A)) from deepsig at confidence 0.95, Bonferroni-corrected for ``comparisons``."""
    aso = aso_function()
    options = {"confidence_level": CONFIDENCE, "num_comparisons": comparisons, "seed": seed, "show_progress": False,
               "num_bootstrap_iterations": ASO_ITERATIONS}
    return float(aso(np.asarray(a), np.asarray(b), **options)), float(aso(np.asarray(b), np.asarray(a), **options))


def group_test(a, b, resamples: int = RESAMPLES, seed: int = 0, comparisons: int = 1, aso: bool = True) -> GroupTest:
    """Δ of the means of two groups of runs with its intervals and ASO; below :data:`MIN_RUNS` runs in either
    group only the means and Δ, and the note says so."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    delta, comparisons = mean(a) - mean(b), max(1, comparisons)
    if min(len(a), len(b)) < MIN_RUNS:
        return GroupTest(a, b, delta, None, None, None, None,
                         f"n too small for an interval or ASO (n = {len(a)} and {len(b)}; at least {MIN_RUNS} "
                         "runs per group)")
    res = bootstrap((np.asarray(a), np.asarray(b)), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                    n_resamples=resamples, vectorized=True, confidence_level=CONFIDENCE, method="percentile",
                    rng=np.random.default_rng(seed))
    ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    welch, note = None, ""
    if std(a) or std(b):
        w = ttest_ind(a, b, equal_var=False).confidence_interval(CONFIDENCE)
        welch = (float(w.low), float(w.high))
    else:
        note = "no spread in either group: no Welch interval"
    eps = aso_both_ways(a, b, comparisons) if aso else (None, None)
    return GroupTest(a, b, delta, ci, welch, eps[0], eps[1], note)
