"""Activation memory of a mini-batch, whatever the batch: rows run in mini-batches, recomputed in backward.

This is the gradient cache of Gao et al. 2021 ("Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup"). A contrastive loss needs every embedding of the global batch at once, but not every
activation that made them. With ``mini_batch_size`` M, a training-mode forward runs the batch's rows as
length-sorted chunks of at most M rows (:mod:`simcse_lab.modeling.length_chunks`) and runs each chunk under
:func:`torch.utils.checkpoint.checkpoint`, which keeps only the chunk's input ids for the backward pass. The
loss is computed from all the embeddings as before (negatives gathered from every process included). In the
backward pass each chunk is run again and back-propagated with the gradient of its own embeddings, one chunk
after the other, so the peak holds one chunk's activations whatever the batch size. The price is one more
forward pass per step.

Why the gradients are those of the plain chunked step: the second run of a chunk starts from the random
number state its first run started from (``preserve_rng_state``: the CPU generator and the generator of
the device the chunk's tensors are on, which is why they are passed as positional tensors) and under the
same autocast state, so it draws the same dropout masks and computes the same activations. The embeddings,
the loss and the gradients are then those of ``length_chunks`` equal to the number of chunks without
recomputation (tests/modeling/test_mini_batches.py checks a whole training run step by step), and the global
random-number stream continues as it would have.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint


def mini_batch_chunks(rows: int, mini_batch_size: int) -> int:
    """How many nearly equal chunks hold ``rows`` rows with at most ``mini_batch_size`` in each (0: off)."""
    return math.ceil(rows / mini_batch_size) if mini_batch_size > 0 else 1


def recomputed(forward: Callable[[dict], torch.Tensor]) -> Callable[[dict], torch.Tensor]:
    """``forward`` (model inputs -> one vector per row) keeping only its inputs for the backward pass, where it
    runs again with the random-number and autocast state of its first run."""

    def run(inputs: dict) -> torch.Tensor:
        names = list(inputs)

        def again(*tensors: torch.Tensor) -> torch.Tensor:
            return forward(dict(zip(names, tensors)))

        # tensors as positional arguments: checkpoint finds their device there (to save its RNG state)
        return checkpoint(again, *inputs.values(), use_reentrant=False, preserve_rng_state=True)

    return run
