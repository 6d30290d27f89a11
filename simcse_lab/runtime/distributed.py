"""In-batch negatives across processes: every rank sees the global batch of embeddings.

``gather_with_grad`` all-gathers the (batch, dim) embeddings of all ranks and puts the local,
grad-carrying tensor back into its own slice (SimCSE's approach). Every rank then computes the same
global loss, but its backward reaches only its local slice; DDP averages gradients over the W ranks,
so the training loop multiplies the loss it backpropagates by W (``world_size``) to get exactly the
gradient of the single-process run on the same global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)
