"""The batch order: a pure function of (step, seed), every example once per epoch, the order of
``default_rng([seed, epoch]).permutation(n)`` (what every earlier version used, so a run resumed across
versions sees the same batches), held as int32."""

from __future__ import annotations

import numpy as np

from simcse_lab.training.sampler import _epoch_order, global_batch, local_slice


def test_the_order_is_numpys_permutation_held_as_int32():
    for n, seed, epoch in ((10, 42, 0), (12_345, 7, 3), (1_000_003, 42, 1)):
        order = _epoch_order(n, seed, epoch)
        assert order.dtype == np.int32
        assert np.array_equal(order, np.random.default_rng([seed, epoch]).permutation(n))


def test_each_epoch_visits_every_example_once_and_drops_the_partial_batch():
    n, batch = 103, 10  # 10 batches per epoch, 3 examples left out
    first = [i for step in range(10) for i in global_batch(n, batch, step, seed=1)]
    second = [i for step in range(10, 20) for i in global_batch(n, batch, step, seed=1)]
    assert len(set(first)) == 100 and len(set(second)) == 100
    assert first != second  # a fresh permutation per epoch
    assert global_batch(n, batch, 13, seed=1) == global_batch(n, batch, 13, seed=1)
    assert all(isinstance(i, int) for i in global_batch(n, batch, 0, seed=1))


def test_processes_take_contiguous_equal_shares():
    indices = list(range(8))
    assert [local_slice(indices, r, 2) for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
