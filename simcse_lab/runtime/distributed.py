"""In-batch negatives across processes, sentence-transformers style.

Each rank scores its LOCAL anchors against the candidates of the GLOBAL batch: ``gather_with_grad``
all-gathers the (batch, dim) candidate embeddings of every rank, and ``global_targets`` gives each
local anchor the row of its positive among them (offset by ``rank * local batch``). The local loss is
the mean over the rank's anchors, so with equal shards the mean of the ranks' losses is the global loss.

Why no rescaling is needed anywhere: the gathered rows of rank r feed the loss of every rank, so the
backward of the gather sums the incoming gradients over all ranks (all_reduce SUM) and keeps the
slice of rank r. Each rank then holds the gradient of the SUM of all local losses with respect to its
own embeddings; DDP averages over the W ranks, which gives exactly the gradient of the global mean
loss, the same as one process on the whole batch (checked by tests/integration/test_distributed.py).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward: all_reduce(SUM) of the incoming gradient, then this rank's slice.

    Only all_gather and all_reduce, which every backend has (gloo on CPU has no reduce_scatter);
    ``torch.distributed.nn.all_gather`` does the same but is deprecated in torch 2.13. Every rank must
    pass a tensor of the same shape."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rows = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce works in place; autograd may reuse the incoming buffer
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = rank() * ctx.rows
        return grad[start: start + ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The rows of every rank, in rank order, with the gradient flowing back to every rank."""
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


def global_targets(local_rows: int, device) -> torch.Tensor:
    """For local anchor i, the row of its own candidate among the gathered ones: rank * local_rows + i."""
    return torch.arange(local_rows, device=device) + rank() * local_rows
