"""BERT-flow: exact inverse, log-determinant against a numerical Jacobian, Gaussian latents after fitting
(held-out data, Gaussian and non-Gaussian inputs), the encoder wrapper and refused inputs."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, skew

from simcse_lab.analysis.flow import FlowNet, FlowSettings, fit_flow, level_dims
from simcse_lab.analysis.post_hoc import MappedEncoder
from simcse_lab.analysis.whitening import fit_whitening
from simcse_lab.errors import UserError


@pytest.fixture(autouse=True)
def one_thread():
    """Fitting runs many tiny ops; on a shared 2-core machine thread hand-offs cost more than they give."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def non_gaussian(n, d, seed):
    """Skewed (exponential) and flat (uniform) sources mixed by a fixed matrix and shifted."""
    rng = np.random.default_rng(seed)
    e = np.column_stack([rng.exponential(size=n) if i % 2 == 0 else rng.uniform(-2, 2, size=n) for i in range(d)])
    return e @ np.random.default_rng(100).standard_normal((d, d)) + 3.0


def perturbed_net(dim, levels, seed=0):
    """A flow whose every layer is far from the identity (fitting starts couplings at zero)."""
    net = FlowNet(dim, levels=levels, depth=2, hidden=8, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        net(torch.randn(64, dim, generator=gen, dtype=torch.float64) * 3 + 1)  # actnorm initialisation
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


def test_inverse_reproduces_the_input():
    net = perturbed_net(8, levels=3)
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        z, _ = net(x)
        back = net.inverse(z)
    assert (z - x).abs().max().item() > 0.1  # the map is not the identity
    assert (back - x).abs().max().item() <= 1e-4
    assert (back - x).abs().max().item() <= 1e-9  # float64 throughout: far tighter than required


def test_log_det_matches_numerical_jacobian():
    dim = 5
    net = perturbed_net(dim, levels=2, seed=3)
    xs = torch.randn(4, dim, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        _, logdet = net(xs)
    for x, ld in zip(xs, logdet):
        jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0][0], x)  # autograd Jacobian
        eps = 1e-6  # and a central-difference one
        numeric = torch.stack([(net((x + eps * e)[None])[0][0] - net((x - eps * e)[None])[0][0]) / (2 * eps)
                               for e in torch.eye(dim, dtype=torch.float64)], dim=1).detach()
        assert torch.allclose(jac, numeric, atol=1e-6)
        sign, logabs = torch.linalg.slogdet(numeric)
        assert logabs.item() == pytest.approx(ld.item(), abs=1e-6)
        assert abs(ld.item()) > 0.1  # a volume-changing map, not a trivial 0 = 0


def test_fit_on_non_gaussian_sample_gives_gaussian_latent():
    x, held = non_gaussian(4000, 2, seed=0), non_gaussian(2000, 2, seed=1)
    flow = fit_flow(x, FlowSettings(levels=1, depth=3, lr=1e-2, batch_size=512, epochs=100, max_steps=150), seed=0)
    z = flow.forward(held)
    assert flow.steps == 150 and flow.fitted_on == 4000
    # mean ~0 and covariance ~I on held-out data, stated tolerances: 0.1 and 0.15 per entry
    assert np.abs(z.mean(axis=0)).max() <= 0.1
    assert np.abs(np.cov(z, rowvar=False) - np.eye(2)).max() <= 0.15
    # beyond what whitening (a linear map) can do: the skew is gone and the held-out likelihood beats the
    # best Gaussian fit of the raw data by a clear margin (nats per dimension)
    assert np.abs(skew(fit_whitening(x).apply(held).astype(np.float64))).max() > 0.6
    assert np.abs(skew(z)).max() <= 0.2
    gaussian_nll = -multivariate_normal(x.mean(axis=0), np.cov(x, rowvar=False)).logpdf(held).mean() / 2
    assert -flow.log_prob(held).mean() / 2 < gaussian_nll - 0.1


def test_fit_on_gaussian_sample_gives_standard_gaussian():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    mix = np.diag(np.linspace(0.5, 3.0, 8)) @ q  # correlated, variances 0.25 .. 9
    x = rng.standard_normal((20000, 8)) @ mix + 1.0
    held = rng.standard_normal((10000, 8)) @ mix + 1.0
    assert np.abs(np.cov(held, rowvar=False) - np.eye(8)).max() > 1.0
    # the default architecture (3 levels of 3 steps, width 32); sampling noise alone is ~0.03 per entry here
    flow = fit_flow(x, FlowSettings(lr=1e-3, batch_size=512, epochs=100, max_steps=150), seed=0)
    z = flow.forward(held)
    assert np.abs(z.mean(axis=0)).max() <= 0.1
    assert np.abs(np.cov(z, rowvar=False) - np.eye(8)).max() <= 0.1
    np.testing.assert_allclose(flow.inverse(z), held, atol=1e-8)


def test_fitting_is_seeded_and_bounded():
    x = non_gaussian(300, 4, seed=3)
    a = fit_flow(x, FlowSettings(levels=2, epochs=1.0), seed=7)
    b = fit_flow(x, FlowSettings(levels=2, epochs=1.0), seed=7)
    assert a.steps == 10  # ceil(one epoch of 300 vectors / batch 32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert fit_flow(x, FlowSettings(levels=2, epochs=50, max_steps=12)).steps == 12
    assert not np.array_equal(fit_flow(x, FlowSettings(levels=2, epochs=1.0), seed=8).forward(x), a.forward(x))


def test_default_architecture_levels():
    assert level_dims(768, 3) == [768, 384, 192]
    assert level_dims(7, 2) == [7, 4]
    with pytest.raises(UserError, match="fewer levels"):
        fit_flow(non_gaussian(100, 2, seed=0))  # 3 levels cannot halve 2 dimensions


def test_refuses_bad_corpora_and_settings():
    x = non_gaussian(50, 4, seed=0)
    with pytest.raises(UserError, match="more than 4"):
        fit_flow(x[:4], FlowSettings(levels=1))
    with pytest.raises(UserError, match="span 1 dimension"):
        fit_flow(np.column_stack([x[:, 0], 2 * x[:, 0], -x[:, 0], x[:, 0] + 1]), FlowSettings(levels=1))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(UserError, match="NaN"):
        fit_flow(bad, FlowSettings(levels=1))
    for kwargs in ({"coupling": "spline"}, {"lr": 0.0}, {"depth": 0}, {"epochs": -1.0}, {"max_steps": 0}):
        with pytest.raises(UserError):
            fit_flow(x, FlowSettings(levels=1, **kwargs))


def test_directions_without_variance_are_dropped():
    x = non_gaussian(400, 3, seed=5)
    flat = np.column_stack([x, x[:, 0] - 2 * x[:, 2] + 1.0])  # 4 columns on a 3-dimensional affine span
    flow = fit_flow(flat, FlowSettings(levels=1, epochs=3.0), seed=0)
    assert (flow.dim, flow.latent_dim) == (4, 3)
    z = flow.forward(flat)
    assert z.shape == (400, 3) and np.isfinite(flow.nll)
    np.testing.assert_allclose(flow.inverse(z), flat, atol=1e-8)  # the corpus lies in the span: exact
    full = fit_flow(x, FlowSettings(levels=1, epochs=3.0), seed=0)
    assert full.latent_dim == 3
    np.testing.assert_allclose(full.inverse(full.forward(x)), x, atol=1e-8)


def test_flow_encoder_wraps_encode_describe_and_dim():
    x = non_gaussian(60, 4, seed=4)
    sentences = [f"s{i}" for i in range(60)]

    class Fake:
        dim = 4

        def encode(self, s, progress=False):
            return x[[int(t[1:]) for t in s]].astype(np.float32)

        def describe(self):
            return {"model": "fake"}

    flow = fit_flow(x, FlowSettings(levels=2, epochs=1.0))
    enc = MappedEncoder(Fake(), flow)
    out = enc.encode(sentences[:3])
    assert out.dtype == np.float32 and enc.dim == 4
    np.testing.assert_allclose(out, flow.forward(x[:3].astype(np.float32)), atol=1e-5)
    described = enc.describe()
    assert described["model"] == "fake"
    assert described["flow"]["fitted_on"] == 60 and described["flow"]["levels"] == 2
    assert np.isfinite(described["flow"]["nll_per_dim"])
