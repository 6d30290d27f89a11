"""The cosine regulariser: known values, agreement with the explicit double sum, a finite-difference gradient
check, and the weighted loss term."""

import math

import pytest
import torch
import torch.nn.functional as F

from simcse_lab.errors import UserError
from simcse_lab.training.objectives.cos_reg import CosineRegularizer, cosine_regularizer


def explicit(z: torch.Tensor) -> float:
    """The definition written out: mean of cos(z_i, z_j) over the ordered pairs i != j."""
    n = len(z)
    total = sum(F.cosine_similarity(z[i], z[j], dim=0).item() for i in range(n) for j in range(n) if i != j)
    return total / (n * (n - 1))


def test_identical_rows_give_one():
    z = torch.tensor([[1.0, 2.0, -3.0]]).repeat(5, 1) * torch.tensor([[1.0], [2.0], [0.5], [7.0], [1.0]])
    assert cosine_regularizer(z).item() == pytest.approx(1.0, abs=1e-6)


def test_orthogonal_rows_give_zero():
    z = torch.eye(6)[:4] * torch.tensor([[3.0], [1.0], [0.2], [5.0]])
    assert cosine_regularizer(z).item() == pytest.approx(0.0, abs=1e-7)


def test_opposite_pairs_reach_the_minimum():
    a = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    z = torch.cat([a, -a])  # z and -z: the rows sum to zero, R = -1/(N-1)
    assert cosine_regularizer(z).item() == pytest.approx(-1.0 / 5.0, abs=1e-6)
    two = torch.tensor([[1.0, 2.0], [-2.0, -4.0]])  # one pair pointing opposite ways: cosine -1
    assert cosine_regularizer(two).item() == pytest.approx(-1.0, abs=1e-6)


def test_matches_the_double_sum_on_random_rows():
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(1)) + 0.7
    assert cosine_regularizer(z).item() == pytest.approx(explicit(z), abs=1e-6)


def test_gradient_matches_finite_differences():
    z = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(cosine_regularizer, (z,), eps=1e-6, atol=1e-7)
    # and the gradient is not trivially zero (the check would pass on a constant)
    cosine_regularizer(z).backward()
    assert z.grad.abs().max().item() > 1e-3


def test_low_precision_input_is_computed_in_fp32():
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    out = cosine_regularizer(z)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(explicit(z.float()), abs=1e-5)


def test_needs_two_rows():
    with pytest.raises(ValueError):
        cosine_regularizer(torch.ones(1, 3))
    with pytest.raises(ValueError):
        cosine_regularizer(torch.ones(4))


def test_weighted_loss_term():
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    reg = CosineRegularizer(0.3)
    term = reg.loss_term(z)
    assert term.item() == pytest.approx(0.3 * reg.penalty(z).item(), rel=1e-6)
    term.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert CosineRegularizer(0).loss_term(z).item() == 0.0
    for bad in (-0.1, math.nan, math.inf, True, "1"):
        with pytest.raises(UserError):
            CosineRegularizer(bad)
