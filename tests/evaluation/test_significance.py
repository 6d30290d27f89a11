"""The statistics of ``compare`` against direct computations written here: the paired bootstrap interval and the
paired permutation p-value of Δ Spearman (a plain numpy loop, its own random draws: agreement within the Monte
Carlo error of both), Holm by hand, the group bootstrap and Welch's interval by their formulas, and Almost
Stochastic Order against ε_min computed from Dror et al.'s definition."""

import math

import numpy as np
import pytest
from scipy.stats import norm, rankdata, spearmanr
from scipy.stats import t as student_t

from simcse_lab.evaluation import seed_groups
from simcse_lab.evaluation.seed_groups import aso_both_ways, group_test
from simcse_lab.evaluation.significance import average_ranks, codes, holm, paired_test, paired_tests, pearson_rows

R = 2000  # resamples on both sides


def synthetic(n=150, noise_a=0.8, noise_b=0.8, seed=0):
    """Gold on SentEval's 0-5 scale with ties (one decimal), two models' similarities = gold + noise."""
    rng = np.random.default_rng(seed)
    gold = np.round(rng.uniform(0, 5, n), 1)
    return gold + rng.normal(0, noise_a, n), gold + rng.normal(0, noise_b, n), gold


def rho(x, g):
    return 100.0 * spearmanr(x, g)[0]


def loop_bootstrap(a, b, g, seed=123):
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(R):
        i = rng.integers(0, len(g), len(g))
        draws.append(rho(a[i], g[i]) - rho(b[i], g[i]))
    return np.array(draws)


def loop_permutation_p(a, b, g, seed=321):
    """Each model's ranks swapped pair by pair (Spearman sees only ranks; raw cosines of two models are on
    different scales)."""
    rng = np.random.default_rng(seed)
    observed = rho(a, g) - rho(b, g)
    a, b = rankdata(a), rankdata(b)
    null = []
    for _ in range(R):
        swap = rng.random(len(g)) < 0.5
        null.append(rho(np.where(swap, b, a), g) - rho(np.where(swap, a, b), g))
    null = np.array(null)
    tol = 1e-12 * max(1.0, abs(observed))
    less = (np.sum(null <= observed + tol) + 1) / (R + 1)
    greater = (np.sum(null >= observed - tol) + 1) / (R + 1)
    return min(1.0, 2 * min(less, greater))


def test_counted_ranks_give_scipys_spearman():
    a, b, g = synthetic(97)
    a[:10] = a[10:20]  # ties in the predictions too
    (ca, cb), k = codes(a, b)
    (cg,), kg = codes(g)
    assert pearson_rows(average_ranks(ca, k), average_ranks(cg, kg)) == pytest.approx(rho(a, g), abs=1e-10)
    rows = np.stack([ca, cb])
    assert pearson_rows(average_ranks(rows, k), average_ranks(cg, kg)) == pytest.approx([rho(a, g), rho(b, g)],
                                                                                        abs=1e-10)


def agree(test, a, b, g):
    """The interval's ends within 4 Monte Carlo standard errors of a 2.5% quantile of R draws (0.06 sd each
    side, so 0.25 sd), and the same reading of 0."""
    draws = loop_bootstrap(a, b, g)
    low, high = np.percentile(draws, [2.5, 97.5])
    sd = draws.std()
    assert test.ci[0] == pytest.approx(low, abs=0.25 * sd) and test.ci[1] == pytest.approx(high, abs=0.25 * sd)
    assert (test.ci[0] > 0 or test.ci[1] < 0) == (low > 0 or high < 0)
    assert test.delta == pytest.approx(rho(a, g) - rho(b, g), abs=1e-10)


def test_two_models_that_differ_by_construction():
    a, b, g = synthetic(noise_a=0.4, noise_b=1.6)
    test = paired_test(a, b, g, R, seed=0)
    agree(test, a, b, g)
    assert test.ci[0] > 0  # the interval excludes 0
    smallest = 2 / (R + 1)  # two-sided: twice the smallest one-sided p, the observed value counted once
    assert test.p == pytest.approx(smallest) and loop_permutation_p(a, b, g) == pytest.approx(smallest)


def test_a_moderate_difference_gives_the_loops_p_value():
    a, b, g = synthetic(noise_a=0.9, noise_b=1.1, seed=4)
    test = paired_test(a, b, g, R, seed=0)
    agree(test, a, b, g)
    p = loop_permutation_p(a, b, g)
    assert 0.005 < p < 0.9  # a p-value in the range where the two estimates can be compared
    assert test.p == pytest.approx(p, abs=4 * math.sqrt(2 * p * (1 - p) / R) + 2 / R)


def test_two_identical_models_cover_zero_with_p_one():
    a, _, g = synthetic()
    test = paired_test(a, a.copy(), g, R, seed=0)
    assert test.delta == 0 and test.ci == (0.0, 0.0) and test.p == 1.0
    assert loop_permutation_p(a, a.copy(), g) == 1.0
    assert np.all(loop_bootstrap(a, a.copy(), g) == 0)


def test_two_models_that_rank_alike_on_other_scales_do_not_differ():
    """B's cosines are a monotone squeeze of A's into 0.9-1.0: the same ranking, so Δ = 0 on every resample and
    every swap (swapping raw cosines instead would mix the two scales into a wide null)."""
    a, _, g = synthetic()
    b = 0.9 + 0.1 / (1 + np.exp(-a))
    test = paired_test(a, b, g, R, seed=0)
    assert test.delta == pytest.approx(0, abs=1e-12) and test.p == 1.0
    assert test.ci == pytest.approx((0, 0), abs=1e-12)


def test_a_difference_on_other_scales_is_seen():
    """A sharper model whose cosines sit in 0.9-1.0 against a noisier one spread over 0-1: the permutation test
    sees the difference the interval sees."""
    a, b, g = synthetic(noise_a=0.5, noise_b=1.2, seed=3)
    squeezed = 0.9 + 0.1 / (1 + np.exp(-a))
    test = paired_test(squeezed, b / 10, g, R, seed=0)
    assert test.ci[0] > 0 and test.p < 0.01 and loop_permutation_p(squeezed, b / 10, g) < 0.01


def test_two_exchangeable_models_cover_zero():
    a, b, g = synthetic(noise_a=1.0, noise_b=1.0, seed=7)
    test = paired_test(a, b, g, R, seed=0)
    agree(test, a, b, g)
    assert test.ci[0] < 0 < test.ci[1] and test.p > 0.05


def test_the_average_over_tasks_is_a_stratified_draw():
    tasks = [synthetic(120, 0.5, 1.0, seed=1), synthetic(80, 1.0, 1.0, seed=2)]
    tests, average = paired_tests(tasks, R, seed=0)
    assert average.delta == pytest.approx(np.mean([t.delta for t in tests]))
    assert average.n == 200
    draws = np.mean([loop_bootstrap(*t, seed=10 + i) for i, t in enumerate(tasks)], axis=0)
    low, high = np.percentile(draws, [2.5, 97.5])
    assert average.ci == pytest.approx((low, high), abs=0.25 * draws.std())
    assert tests[0].p < 0.01 and average.p < 0.05


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept non-decreasing: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([0.2]) == [0.2]
    assert holm([0.01, 0.01, 0.5]) == pytest.approx([0.03, 0.03, 0.5])


# -- groups of runs over seeds ----------------------------------------------------------------------------------
def test_group_bootstrap_and_welch_by_their_formulas():
    a = [76.3, 75.1, 76.9, 75.8, 76.2, 75.5]
    b = [75.0, 75.4, 74.2, 75.9, 74.8]
    test = group_test(a, b, R, seed=0, aso=False)
    assert test.delta == pytest.approx(np.mean(a) - np.mean(b))
    rng = np.random.default_rng(5)
    draws = np.array([np.mean(rng.choice(a, len(a))) - np.mean(rng.choice(b, len(b))) for _ in range(R)])
    assert test.ci == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])), abs=0.25 * draws.std())
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = student_t.ppf(0.975, df) * math.sqrt(va + vb)
    assert test.welch_ci == pytest.approx((test.delta - half, test.delta + half), rel=1e-9)
    assert test.summary()["std_a"] == pytest.approx(np.std(a, ddof=1))


def test_too_few_runs_give_no_number():
    test = group_test([76.0, 75.0], [74.0, 75.5, 75.1], R)
    assert test.ci is None and test.welch_ci is None and test.aso_ab is None
    assert "n too small" in test.note and test.delta == pytest.approx(75.5 - np.mean([74.0, 75.5, 75.1]))


def quantile(scores, t):
    """The empirical quantile function F^-1(t) = the ceil(n t)-th smallest score."""
    s = np.sort(scores)
    return s[np.clip(np.ceil(len(s) * t).astype(int) - 1, 0, len(s) - 1)]


def violation_ratio(a, b, dt=0.005):
    """ε_W2(F, G) (Dror et al. 2019, eq. 4-5): the share of the squared Wasserstein-2 distance between A's and
    B's quantile functions over the set where A's quantile is below B's (stochastic order A over B violated)."""
    t = np.arange(dt, 1, dt)
    f, g = quantile(a, t), quantile(b, t)
    return np.sum(np.where(f < g, (f - g) ** 2, 0.0)) / np.sum((f - g) ** 2)


def eps_min(a, b, confidence=0.95, iterations=1000, seed=99):
    """ε_min = ε_W2 + Φ^-1(confidence) σ / sqrt(nm/(n+m)), σ the bootstrap spread of sqrt(nm/(n+m)) (ε*_W2 - ε_W2)
    over resamples drawn through the quantile functions; clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    eps = violation_ratio(a, b)
    boot = [violation_ratio(quantile(a, rng.uniform(0, 1, len(a))), quantile(b, rng.uniform(0, 1, len(b))))
            for _ in range(iterations)]
    const = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    sigma = np.std(const * (np.array(boot) - eps))
    return float(np.clip(eps + norm.ppf(confidence) * sigma / const, 0, 1))


@pytest.mark.parametrize("a,b", [
    ([76.1, 75.9, 76.5, 75.2, 76.0], [75.0, 75.5, 74.9, 76.1, 75.3]),
    (list(np.random.default_rng(0).normal(0.0, 1, 8)), list(np.random.default_rng(1).normal(0.4, 1, 8))),
])
def test_aso_agrees_with_its_definition(a, b, monkeypatch):
    """deepsig (what the product calls) against ε_min computed here (500 bootstrap iterations each, to save time);
    the bootstrap draws differ, so within 0.05."""
    monkeypatch.setattr(seed_groups, "ASO_ITERATIONS", 500)
    got_ab, got_ba = aso_both_ways(a, b)
    assert got_ab == pytest.approx(eps_min(np.array(a), np.array(b), iterations=500), abs=0.05)
    assert got_ba == pytest.approx(eps_min(np.array(b), np.array(a), iterations=500), abs=0.05)
    assert 0 < min(got_ab, got_ba) < 1  # not clipped: the comparison reaches the formula


def test_aso_reads_a_clear_order(monkeypatch):
    monkeypatch.setattr(seed_groups, "ASO_ITERATIONS", 200)
    test = group_test([77.0, 77.4, 76.8, 77.2, 77.1], [75.0, 75.3, 74.8, 75.2, 75.1], R)
    assert test.aso_ab == 0.0 and test.aso_ba > 0.95  # every quantile of A above B's: no violation at all
    assert test.ci[0] > 0 and test.welch_ci[0] > 0
