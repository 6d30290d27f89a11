"""Sentence-level geometry metrics (alignment and uniformity in evaluation.vectors, isotropy in
evaluation.isotropy) against known answers on synthetic data."""

import numpy as np
import pytest

from simcse_lab.evaluation import isotropy as g
from simcse_lab.evaluation import vectors as v


def brute_uniformity(x, t=2.0):
    n = len(x)
    d2 = [np.sum((x[i] - x[j]) ** 2) for i in range(n) for j in range(i + 1, n)]
    return float(np.log(np.mean(np.exp(-t * np.array(d2)))))


def test_alignment_and_uniformity_hand_computed():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert v.alignment(x, y) == pytest.approx(2.0)  # ||x - y||^2 = 2 for orthogonal unit vectors
    assert v.alignment(x, x) == 0.0
    assert v.alignment(x, y, alpha=1) == pytest.approx(np.sqrt(2))
    # three unit vectors at 120 degrees: every squared distance is 3, so log exp(-2 * 3) = -6
    tri = np.array([[np.cos(a), np.sin(a)] for a in (0, 2 * np.pi / 3, 4 * np.pi / 3)])
    assert v.uniformity(tri) == pytest.approx(-6.0)
    assert v.uniformity(tri, t=1) == pytest.approx(-3.0)


def test_uniformity_matches_brute_force_across_chunks(monkeypatch):
    monkeypatch.setattr(v, "_CHUNK", 7)  # force several chunks
    x = v.l2_normalize(np.random.default_rng(1).standard_normal((30, 5)))
    assert v.uniformity(x) == pytest.approx(brute_uniformity(x), rel=1e-10)


def test_isotropic_gaussian():
    x = np.random.default_rng(0).standard_normal((20000, 16))
    assert g.isoscore(x) > 0.98
    assert abs(g.mean_cosine(x)) < 0.01
    assert g.partition_isotropy(x) > 0.9
    assert g.positive_cosine_fraction(x) == pytest.approx(0.5, abs=0.01)
    assert g.top_pc_share(x) < 1.5 / 16
    assert g.effective_rank(x) > 15


def test_rank_one_data():
    rng = np.random.default_rng(0)
    x = np.outer(rng.standard_normal(500), rng.standard_normal(16))
    assert g.isoscore(x) == pytest.approx(0.0, abs=1e-9)
    assert g.top_pc_share(x) == pytest.approx(1.0)
    assert g.effective_rank(x) == pytest.approx(1.0, abs=1e-6)
    assert g.partition_isotropy(x) < 1e-3


def test_cone_mean_cosine_matches_analytic_value():
    rng = np.random.default_rng(0)
    d, m = 256, 16.0
    x = rng.standard_normal((4000, d))
    x[:, 0] += m
    # cos(mu + e1, mu + e2) -> ||mu||^2 / (||mu||^2 + d sigma^2) as d grows
    expected = m ** 2 / (m ** 2 + d)
    assert g.mean_cosine(x) == pytest.approx(expected, abs=0.02)
    assert g.positive_cosine_fraction(x) > 0.99
    assert g.isoscore(x) > 0.9  # a shifted cloud is still isotropic around its mean
    assert g.partition_isotropy(v.l2_normalize(x)) < 0.5  # but not around the origin


def test_mean_cosine_exact_and_sampled_pairs_are_distinct():
    x = np.random.default_rng(2).standard_normal((50, 4))
    u = v.l2_normalize(x)
    c = u @ u.T
    assert g.mean_cosine(x) == pytest.approx(c[np.triu_indices(50, 1)].mean())
    sampled = g.pair_cosines(x, max_pairs=100, seed=3)
    assert len(sampled) == 100 and np.all(sampled < 1 - 1e-9)  # never a vector with itself


def test_effective_rank_equal_spectrum():
    assert g.effective_rank(np.eye(8) * 3) == pytest.approx(8.0)


def test_bad_input():
    with pytest.raises(ValueError):
        v.alignment(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError):
        v.uniformity(np.ones((1, 2)))
    with pytest.raises(ValueError):
        g.isoscore(np.ones((5, 3)))  # zero variance
    with pytest.raises(ValueError):
        g.mean_cosine(np.array([[np.nan, 1.0], [1.0, 0.0]]))
