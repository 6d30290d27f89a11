"""What every sharded command shares under ``accelerate launch`` (``index build``, ``eval --mteb``).

The launcher's state (None in one process), each process's contiguous shard, object collectives, and ``agree``:
one process's failure stops every process instead of leaving the others waiting at the next collective.
torch and accelerate are imported only when called, so importing this module costs nothing (the CLI starts
without torch)."""

from __future__ import annotations

import os

from simcse_lab.errors import UserError


def launched_state():
    """accelerate's PartialState when launched with WORLD_SIZE > 1 (``accelerate launch``/torchrun), else None."""
    world = os.environ.get("WORLD_SIZE", "1")
    if not world.strip().isdigit():
        raise UserError(f"environment variable WORLD_SIZE={world!r} is not a positive integer")
    if int(world) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def shard_range(count: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous id range [begin, end) of ``rank`` among ``world`` processes (sizes differ by at most 1)."""
    return count * rank // world, count * (rank + 1) // world


def all_gather_object(obj) -> list:
    """Every process's ``obj`` (picklable), in rank order, on every process."""
    import torch.distributed as dist

    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` on every process."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(rank: int, error: BaseException | None) -> None:
    """Collective: every rank reports whether its step failed; if any did, every rank raises (no rank is left
    waiting at a later barrier). The failing rank re-raises its own exception, the others a UserError."""
    errors = all_gather_object(None if error is None else f"{error}")
    if error is not None:
        raise error
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        r, e = failed[0]
        raise UserError(f"rank {r} failed: {e}".splitlines()[0])
