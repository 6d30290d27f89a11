"""Training objectives, one per module, on the base in :mod:`.base`: ``unsup``, ``sup``, ``esimcse``.

Importing the package registers the built-in objectives; :func:`build_objective` builds one by name."""

from __future__ import annotations

from simcse_lab.training.objectives import esimcse, sup, unsup  # noqa: F401  (each registers itself)
from simcse_lab.training.objectives.base import OBJECTIVES, Objective


def build_objective(name: str, cfg, tokenizer, embedder) -> Objective:
    """The registered objective ``name`` set up from ``cfg`` (the name was checked by TrainConfig)."""
    objective = OBJECTIVES[name].from_config(cfg, tokenizer, embedder)
    if cfg.do_mlm:
        objective.add_mlm(tokenizer, cfg.mlm_weight)
    return objective
