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


# -- through the training loop (tiny random BERT) ---------------------------------------------------------
def _records(run):
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("objective", ["unsup", "esimcse"])
def test_the_loop_logs_the_term_and_adds_it_to_the_loss(tmp_path, tiny_bert, objective):
    from conftest import random_sentences, write_lines

    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    data = write_lines(tmp_path / "corpus.txt", random_sentences(64))
    base = dict(model=str(tiny_bert), data=str(data), objective=objective, pooler="avg", batch_size=8,
                max_seq_len=16, lr=1e-3, max_steps=4, eval_steps=0, test_tasks="none", precision="fp32",
                log_steps=1, progress=False, queue_ratio=1.0)
    train(TrainConfig(**base, output_dir=str(tmp_path / "plain")))
    train(TrainConfig(**base, cos_reg=0.5, output_dir=str(tmp_path / "reg")))
    plain, reg = _records(tmp_path / "plain"), _records(tmp_path / "reg")
    assert all("cos_reg" not in r and "contrastive" not in r for r in plain)
    for r in reg:
        assert -1.0 <= r["cos_reg"] <= 1.0
        assert r["loss"] == pytest.approx(r["contrastive"] + 0.5 * r["cos_reg"], rel=1e-6, abs=1e-7)
    # step 1 sees the same weights and batch: the contrastive part is the loss without the option, exactly
    assert reg[0]["contrastive"] == plain[0]["loss"]
    assert reg[0]["cos_reg"] > 0.05  # a random BERT's mean pooling is anisotropic: the term is not idle
    # from step 2 on, the regulariser's gradient has changed the weights
    assert reg[-1]["contrastive"] != plain[-1]["loss"]


def test_weight_zero_is_bit_identical_to_no_option(tmp_path, tiny_bert):
    from conftest import random_sentences, write_lines

    from simcse_lab import cli

    data = write_lines(tmp_path / "corpus.txt", random_sentences(48))
    args = ["train", "--model", str(tiny_bert), "--data", str(data), "--objective", "unsup", "--pooler", "cls",
            "--max-steps", "3", "--batch-size", "8", "--max-seq-len", "16", "--lr", "1e-3", "--eval-steps", "0",
            "--test-tasks", "none", "--precision", "fp32", "--log-steps", "1", "--no-progress"]
    for name, extra in (("none", []), ("zero", ["--cos-reg", "0"])):
        with pytest.raises(SystemExit) as done:
            cli.main(args + extra + ["--output-dir", str(tmp_path / name)])
        assert done.value.code == 0
    none, zero = _records(tmp_path / "none"), _records(tmp_path / "zero")
    assert [r["loss"] for r in zero] == [r["loss"] for r in none]  # bit-identical, every step
    assert len({r["loss"] for r in none}) == 3 and all("cos_reg" not in r for r in zero)


def test_a_strong_regulariser_lowers_the_mean_cosine(tmp_path, tiny_bert):
    from conftest import random_sentences, write_lines

    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    data = write_lines(tmp_path / "corpus.txt", random_sentences(96))
    train(TrainConfig(model=str(tiny_bert), data=str(data), objective="unsup", pooler="avg", batch_size=16,
                      max_seq_len=16, lr=1e-3, max_steps=6, eval_steps=0, test_tasks="none", precision="fp32",
                      log_steps=1, progress=False, cos_reg=5.0, output_dir=str(tmp_path / "run")))
    penalties = [r["cos_reg"] for r in _records(tmp_path / "run")]
    assert penalties[-1] < penalties[0] - 0.1, penalties


def test_bad_weights_are_refused_by_the_config():
    from simcse_lab.training.config import TrainConfig

    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(UserError, match="cos_reg"):
            TrainConfig(cos_reg=bad)
