"""ESimCSE's momentum contrast: a slowly moving copy of the encoder and a FIFO queue of its outputs."""

from __future__ import annotations

import copy

import torch
from torch import nn

from simcse_lab.modeling.embedder import PassSwitches
from simcse_lab.modeling.lora import frozen_names, load_trained_state, trained_state


class MomentumEncoder(nn.Module):
    """A frozen, eval-mode deep copy of ``model`` (taken before training, so it starts from the same
    pretrained weights), updated as ``θ_m ← m·θ_m + (1 − m)·θ``. The weights ``model`` does not train (a LoRA
    backbone's base weights) are not copied but shared: they are the same in both, in memory once, and neither
    updated nor saved with its state."""

    def __init__(self, model: nn.Module, momentum: float = 0.995):
        super().__init__()
        self.frozen = frozen_names(model)
        shared = {id(p): p for p in model.parameters() if not p.requires_grad}
        self.model = copy.deepcopy(model, memo=shared)
        self.model.eval()
        self.model.requires_grad_(False)
        self.momentum = momentum

    def train(self, mode: bool = True):  # always eval: no dropout in the momentum encoder
        return super().train(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for p_m, p in zip(self.model.parameters(), model.parameters()):
            if not p.requires_grad:
                continue
            p_m.mul_(self.momentum).add_(p.detach().to(p_m.dtype), alpha=1.0 - self.momentum)

    def state(self) -> dict:
        """The weights that move (a LoRA run: the adapter and heads), as a state dict."""
        return trained_state(self.model, self.frozen)

    def load_state(self, state: dict) -> None:
        load_trained_state(self.model, state, self.frozen)

    @torch.no_grad()
    def forward(self, **inputs) -> torch.Tensor:
        # no dropout, but the training pooler (with the MLP), so queued vectors live where the online ones do;
        # packed or in length-sorted chunks as the online pass is (eval mode alone would run the padded batch)
        switches = PassSwitches(chunks=getattr(self.model, "length_chunks", 1),
                                pack=bool(getattr(self.model, "pack_width", 0)))
        return self.model(**inputs, pooler=self.model.pooler, switches=switches)


class EmbeddingQueue:
    """First in, first out: ``push`` puts the newest rows at the front and drops the oldest beyond ``size``."""

    def __init__(self, size: int, dim: int):
        self.size = size
        self.embeddings = torch.zeros(0, dim)

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def push(self, rows: torch.Tensor) -> None:
        rows = rows.detach().float().cpu()
        self.embeddings = torch.cat([rows, self.embeddings])[: self.size]

    def state_dict(self) -> dict:
        return {"size": self.size, "embeddings": self.embeddings.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.size = state["size"]
        self.embeddings = state["embeddings"].clone()
