"""Arithmetic of a transformer encoder, to put a measured speed next to the hardware's own limit.

Matmul FLOPs (a multiply-add counts 2) of one transformer layer on one sequence of ``n`` positions, hidden
size ``h``, feed-forward size ``f``: the Q, K, V and output projections ``8 n h^2``, the feed-forward
``4 n h f``, and attention's two products (Q K^T and the weighted sum of V) ``4 n^2 h``. A forward pass over
a batch sums this over layers and sequences; a training step costs about three forward passes (the backward
pass computes gradients for both inputs and weights). Embedding look-ups, LayerNorm, GELU, softmax, dropout
and the optimizer are not matmuls: they are what separates an achieved rate from the matmul peak.
Counted twice per batch: over the real tokens (each sequence at its own length) and over the padded
rectangles the kernels actually run: every sequence at the batch's longest length, or, when the batch runs
as ``chunks`` length-sorted chunks (:mod:`simcse_lab.modeling.length_chunks`), at its chunk's longest.
The shape ``(hidden, ffn, layers)`` comes from the caller: each backbone family reads it from its own config
names (:meth:`simcse_lab.modeling.families.base.Family.flop_shape`).
"""

from __future__ import annotations

from collections.abc import Sequence

TRAIN_TO_FORWARD = 3.0  # forward + backward (input and weight gradients)


def layer_flops(n: int, hidden: int, ffn: int) -> float:
    return 8.0 * n * hidden * hidden + 4.0 * n * hidden * ffn + 4.0 * n * n * hidden


def padded_widths(lengths: Sequence[int], chunks: int = 1) -> list[int]:
    """The width each sequence is run at when the batch is sorted by length (longest first) and split into
    ``chunks`` nearly equal groups (the first ``len % chunks`` one longer), each padded to its longest; in
    sorted order."""
    ordered = sorted(lengths, reverse=True)
    chunks = max(1, min(chunks, len(ordered)))
    size, extra = divmod(len(ordered), chunks)
    widths, start = [], 0
    for c in range(chunks):
        stop = start + size + (1 if c < extra else 0)
        widths += [ordered[start]] * (stop - start)
        start = stop
    return widths


def forward_flops(lengths: Sequence[int], hidden: int, ffn: int, layers: int, padded: bool,
                  chunks: int = 1) -> float:
    """Matmul FLOPs of one forward pass over sequences of these token ``lengths``: each at its own length,
    or (``padded``) at the width the kernels run it at, the longest of its batch or of its chunk."""
    if not lengths:
        return 0.0
    widths = padded_widths(lengths, chunks) if padded else lengths
    return layers * sum(layer_flops(n, hidden, ffn) for n in widths)
