"""Sentence-T5's projection head: a bias-free linear map after pooling, then L2 normalisation.

Sentence-T5 (Ni et al. 2022) encodes with a T5 encoder, mean pooling and a learned projection (d x d, no bias)
whose output is normalised; its sentence-transformers directories hold it as ``Dense(bias=False,
activation=Identity)`` followed by ``Normalize``. :func:`read_projection` reads that head from such a directory
(training from it keeps it, so nothing of the model is dropped), :func:`new_projection` makes a fresh one
(``--projection``), :func:`projection_modules` writes it back as sentence-transformers modules. The
normalisation changes no cosine, so the contrastive losses are the same function of the projected vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from simcse_lab.errors import InputError


def new_projection(dim: int, init_std: float = 0.02) -> nn.Linear:
    layer = nn.Linear(dim, dim, bias=False)
    nn.init.normal_(layer.weight, std=init_std)
    return layer


def read_projection(st_dir: str) -> tuple[nn.Linear, bool] | None:
    """(the bias-free identity-activation Dense after the Pooling of a sentence-transformers directory, whether a
    Normalize follows it), or None when it has no such Dense."""
    from sentence_transformers.sentence_transformer.modules import Dense

    modules_path = Path(st_dir) / "modules.json"
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
        kinds = [(m["type"].rsplit(".", 1)[-1], m.get("path", "")) for m in modules]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        raise InputError(modules_path, None, "not a sentence-transformers module list") from None
    names = [kind for kind, _ in kinds]
    if "Dense" not in names:
        return None
    index = names.index("Dense")
    dense = Dense.load(st_dir, subfolder=kinds[index][1], local_files_only=True, trust_remote_code=False)
    if dense.linear.bias is not None or not isinstance(dense.activation_function, nn.Identity):
        return None  # a dense + tanh head (SimCSE's MLP exported with cls) is not a projection
    layer = nn.Linear(dense.linear.in_features, dense.linear.out_features, bias=False)
    layer.load_state_dict(dense.linear.state_dict())
    return layer, "Normalize" in names[index + 1:]


def projection_modules(projection: nn.Linear, normalize: bool) -> list[nn.Module]:
    """sentence-transformers' Dense (no bias, identity activation) [+ Normalize] holding ``projection``."""
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    dense = Dense(projection.in_features, projection.out_features, bias=False, activation_function=nn.Identity())
    dense.linear.load_state_dict({k: v.detach().float().cpu() for k, v in projection.state_dict().items()})
    return [dense, Normalize()] if normalize else [dense]


def project(vectors: torch.Tensor, projection: nn.Linear | None, normalize: bool) -> torch.Tensor:
    """The head applied to pooled vectors (nothing when there is no projection)."""
    if projection is None:
        return vectors
    vectors = projection(vectors)
    return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors
