"""Which examples make up each global batch: a fresh seeded permutation per epoch.

The last partial batch is dropped. A pure function of (step, seed), so a resumed run sees exactly the
batches it would have seen, and every process computes the same global batch and takes its own slice."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def global_batch(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Example indices of global step ``step`` (of ``n`` examples)."""
    epoch, index = divmod(step, n // batch_size)
    order = _epoch_order(n, seed, epoch)  # one permutation per epoch, not per step
    return order[index * batch_size: (index + 1) * batch_size].tolist()


def local_slice(indices: list[int], process_index: int, processes: int) -> list[int]:
    """This process's contiguous share of a global batch (the batch size divides evenly)."""
    local = len(indices) // processes
    return indices[process_index * local: (process_index + 1) * local]
