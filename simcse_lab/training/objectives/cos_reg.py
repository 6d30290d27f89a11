"""The cosine regulariser of Gao et al. 2019 (*Representation degeneration problem in training natural
language generation models*, ICLR), moved from word embeddings to a batch of sentence embeddings.

Gao et al. penalise ``R_cos = (1/|V|^2) sum_i sum_j cos(w_i, w_j)`` over the vocabulary's word embeddings,
which pulls them out of the narrow cone they degenerate into. Here the penalty is the mean cosine over the
*distinct* pairs of the batch's sentence embeddings ``z_1 .. z_N`` (N >= 2):

    R(z) = 1 / (N (N - 1)) * sum_{i != j} cos(z_i, z_j)
         = (||sum_i u_i||^2 - sum_i ||u_i||^2) / (N (N - 1)),   u_i = z_i / ||z_i||,

computed in O(N d) by the second form (a zero row has u_i = 0: cosine 0 with everything). R is 1 when all rows
point the same way, 0 for mutually orthogonal rows, and -1/(N - 1) at its minimum (rows summing to zero). Gao
et al.'s double sum also counts the N pairs (i, i), each cosine 1: ``R_cos = ((N - 1) R + 1) / N``, the same
minimiser and gradient up to the factor (N - 1)/N.

A training objective adds ``weight * R(z)`` to its contrastive loss (:class:`CosineRegularizer`,
``train --cos-reg WEIGHT``): the objectives' base class does it for every objective, over the anchors'
embeddings of the global batch (:mod:`simcse_lab.training.objectives.base` says which rows exactly).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from simcse_lab.errors import UserError


def cosine_regularizer(z: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity over the distinct pairs of the rows of ``z`` (N, d), N >= 2; a scalar
    tensor that carries gradients. float64 input stays float64 (for gradcheck); anything else runs in fp32."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"the cosine regulariser needs a (N >= 2, d) batch of embeddings, got {tuple(z.shape)}")
    if z.dtype != torch.float64:
        z = z.float()
    n = z.shape[0]
    u = F.normalize(z, dim=-1)
    total = u.sum(0)
    return ((total * total).sum() - (u * u).sum()) / (n * (n - 1))


class CosineRegularizer:
    """``weight * R(z)``, the term a composable objective adds to its loss (``train --cos-reg WEIGHT``)."""

    name = "cos_reg"

    def __init__(self, weight: float):
        if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise UserError(f"the cosine regulariser weight must be a finite number >= 0, got {weight!r}")
        self.weight = float(weight)

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        """R(z) without the weight (what a metrics log records)."""
        return cosine_regularizer(z)

    def loss_term(self, z: torch.Tensor) -> torch.Tensor:
        return self.weight * cosine_regularizer(z)
