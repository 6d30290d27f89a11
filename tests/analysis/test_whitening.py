"""BERT-whitening: identity covariance on the fitting data, dimension reduction, degenerate input."""

import numpy as np
import pytest

from simcse_lab.errors import UserError
from simcse_lab.analysis.post_hoc import MappedEncoder
from simcse_lab.analysis.whitening import fit_whitening


def correlated(n=2000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 5.0


def test_whitened_fit_data_has_zero_mean_identity_covariance():
    x = correlated()
    w = fit_whitening(x)
    z = w.apply(x).astype(np.float64)
    assert w.k == 6
    assert np.allclose(z.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(6), atol=1e-4)


def test_k_keeps_top_directions():
    x = correlated()
    w = fit_whitening(x, k=2)
    z = w.apply(x)
    assert z.shape == (len(x), 2)
    assert np.allclose(np.cov(z.astype(np.float64), rowvar=False), np.eye(2), atol=1e-4)


def test_rank_deficient_data_drops_null_directions():
    x = correlated(d=5)
    x = np.hstack([x, x[:, :1] * 2.0])  # 6 columns spanning 5 dims
    w = fit_whitening(x)
    assert w.k == 5
    assert np.allclose(np.cov(w.apply(x).astype(np.float64), rowvar=False), np.eye(5), atol=1e-4)
    with pytest.raises(UserError):
        fit_whitening(x, k=6)
    with pytest.raises(UserError):
        fit_whitening(x, k=0)


def test_whitened_encoder_wraps_encode_and_describe():
    x = correlated(n=50, d=4)
    sentences = [f"s{i}" for i in range(50)]

    class Fake:
        def encode(self, s, progress=False):
            return x[[int(t[1:]) for t in s]]

        def describe(self):
            return {"model": "fake"}

    w = fit_whitening(x)
    enc = MappedEncoder(Fake(), w)
    assert np.allclose(enc.encode(sentences[:3]), w.apply(x[:3]))
    assert enc.describe()["whitening"] == {"k": 4, "fitted_on": 50}
