"""What a training step computes: its real tokens and matmul FLOPs, for the log's tokens/s and TFLOP/s.

Counted from the step's model inputs (their attention masks), so the numbers follow whatever the
objective feeds the encoder: an input the objective trains through costs a forward and a backward pass
(3 forward passes of matmul work, :data:`simcse_lab.runtime.flops.TRAIN_TO_FORWARD`), doubled under
``--do-mlm`` (a second pass over the masked copy); an input it only encodes without gradient (named in
the objective's ``forward_only_inputs``, e.g. ESimCSE's momentum encoder) costs one forward pass.

FLOPs are counted over the real tokens (each sentence at its own length), not the padded positions the
kernels may also run: the achieved TFLOP/s is then the useful work per second, comparable between a
padded and an unpadded step. :meth:`StepWork.padded_flops` counts the rectangles the kernels do run
(each row at its chunk's longest; eval/bench_roofline.py reports both). Under ``--mini-batch-size`` the
forward pass run again in the backward pass is not counted either (model FLOPs, the usual convention): the
achieved TFLOP/s stays the useful work per second, so it drops by what the recomputation costs.
"""

from __future__ import annotations

from simcse_lab.modeling.families import family_of
from simcse_lab.modeling.packing import pack_rows
from simcse_lab.runtime.flops import TRAIN_TO_FORWARD, forward_flops, layer_flops


def _inputs(batch: dict, name: str = "") -> list[tuple[str, dict]]:
    """(name, model inputs) of every model input in ``batch``, which may nest one level."""
    if "attention_mask" in batch:
        return [(name, batch)]
    return [(key, value) for key, value in batch.items() if isinstance(value, dict) and "attention_mask" in value]


class StepWork:
    """``work(batch)`` -> (real tokens through the encoder, matmul FLOPs) of one step on that batch;
    ``chunks`` / ``pack_width``: how the encoder runs a batch (``length_chunks``, ``pack_width``). The model's
    shape is its backbone family's reading of the config; a config whose shape no rule can read counts 0 FLOPs
    (the log's achieved TFLOP/s then reads 0; its tokens/s stay right)."""

    def __init__(self, objective, model_config, chunks: int = 1, pack_width: int = 0):
        self.shape = family_of(model_config).flop_shape(model_config)
        self.chunks, self.pack_width = chunks, pack_width
        self.forward_only = set(objective.forward_only_inputs)
        self.copies = 2 if objective.mlm is not None else 1  # --do-mlm: + the masked copy

    def _count(self, batch: dict, padded: bool) -> tuple[int, float]:
        tokens, flops = 0, 0.0
        for name, inputs in _inputs(batch):
            lengths = inputs["attention_mask"].sum(1).tolist()
            copies, passes = (1, 1.0) if name in self.forward_only else (self.copies, TRAIN_TO_FORWARD)
            tokens += copies * sum(lengths)
            flops += copies * passes * self._forward_flops(lengths, padded)
        return tokens, flops

    def _forward_flops(self, lengths: list[int], padded: bool) -> float:
        if self.shape is None:
            return 0.0
        if not (padded and self.pack_width):
            return forward_flops(lengths, *self.shape, padded=padded, chunks=self.chunks)
        # packed: rows of the longest packed row's width, attention over the whole row
        rows = pack_rows(lengths, max(self.pack_width, max(lengths)))
        width = max(sum(lengths[i] for i in row) for row in rows)
        hidden, ffn, layers = self.shape
        return layers * len(rows) * layer_flops(width, hidden, ffn)

    def __call__(self, batch: dict) -> tuple[int, float]:
        return self._count(batch, padded=False)

    def padded_flops(self, batch: dict) -> float:
        """Matmul FLOPs over the padded positions the kernels run as well (rows at their chunk's longest)."""
        return self._count(batch, padded=True)[1]
