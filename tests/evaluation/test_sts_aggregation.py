"""STS scoring: aggregation modes on hand-made data whose Spearman values are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from simcse_lab.errors import UserError
from simcse_lab.evaluation.sts import aggregate
from simcse_lab.evaluation.vectors import cosine_rows

# subset A: predictions in exactly the gold order -> Spearman 1
# subset B: predictions in exactly the reverse order -> Spearman -1 (4 pairs)
A = (np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0]))
B = (np.array([0.4, 0.3, 0.2, 0.1]), np.array([1.0, 2.0, 3.0, 4.0]))


def test_per_subset_and_means():
    mean = aggregate({"A": A, "B": B}, "mean")
    assert mean["subsets"]["A"]["spearman"] == pytest.approx(100.0)
    assert mean["subsets"]["B"]["spearman"] == pytest.approx(-100.0)
    assert mean["spearman"] == pytest.approx(0.0)
    wmean = aggregate({"A": A, "B": B}, "wmean")
    assert wmean["spearman"] == pytest.approx(100.0 * (3 * 1 + 4 * -1) / 7)
    assert wmean["n"] == 7


def test_all_concatenates_subsets():
    # concatenated: pred [.1 .2 .3 .4 .3 .2 .1], gold [1 2 3 1 2 3 4]
    result = aggregate({"A": A, "B": B}, "all")
    pred = np.array([0.1, 0.2, 0.3, 0.4, 0.3, 0.2, 0.1])
    gold = np.array([1, 2, 3, 1, 2, 3, 4], dtype=float)
    # Spearman by hand: Pearson of average ranks
    def ranks(x):
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(1, len(x) + 1)
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r
    rp, rg = ranks(pred), ranks(gold)
    expected = np.corrcoef(rp, rg)[0, 1] * 100
    assert result["spearman"] == pytest.approx(expected)
    assert result["n"] == 7


def test_single_subset_modes_agree():
    values = {m: aggregate({"A": B}, m)["spearman"] for m in ("all", "wmean", "mean")}
    assert values["all"] == pytest.approx(values["wmean"]) == pytest.approx(values["mean"]) == pytest.approx(-100)


def test_unknown_mode_and_cosine():
    with pytest.raises(UserError, match="unknown aggregate"):
        aggregate({"A": A}, "median")
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0]])
    assert cosine_rows(a, b) == pytest.approx([1.0, -1.0])
