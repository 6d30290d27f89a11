"""Per-layer embeddings from one forward pass, for the report's layer profile.

For each sentence: the checkpoint's sentence embedding plus, for the embedding layer (index 0) and
every transformer layer, the mean-pooled and the [CLS] vector.

Works for both :class:`~simcse_lab.modeling.encoder.Encoder` backends and reuses its fast batching loop
(:func:`~simcse_lab.modeling.encoder.encode_texts`), so a report encodes each sentence once per checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simcse_lab.modeling.encoder import encode_texts
from simcse_lab.modeling.pooling import masked_mean, pool


@dataclass
class LayerEmbeddings:
    sentence: np.ndarray  # (n, dim) the checkpoint's own sentence embedding
    avg: np.ndarray  # (layers + 1, n, hidden) mean over real tokens, per layer
    cls: np.ndarray  # (layers + 1, n, hidden) [CLS] vector, per layer

    @property
    def num_layers(self) -> int:
        return self.avg.shape[0]


def hf_model_of(encoder) -> torch.nn.Module:
    """The Hugging Face transformer inside an Encoder, whatever its backend."""
    if encoder.backend == "hf":
        return encoder.hf_model
    return encoder.st_model[0].model


def encode_layers(encoder, sentences: list[str], progress: bool = False) -> LayerEmbeddings:
    model = hf_model_of(encoder)
    config = model.config
    layers = config.num_hidden_layers + 1
    hidden = config.hidden_size
    dim = encoder.dim
    device = encoder.device

    if encoder.backend == "sentence-transformers":
        previous = config.output_hidden_states
        config.output_hidden_states = True

        def forward(batch):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = encoder.st_model(batch)
            return _concat(out["sentence_embedding"], out["all_layer_embeddings"], batch["attention_mask"])
    else:
        previous = None

        def forward(batch):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch, output_hidden_states=True)
            main = pool(encoder.pooler, batch["attention_mask"], out.last_hidden_state, out.hidden_states,
                        encoder.mlp)
            return _concat(main, out.hidden_states, batch["attention_mask"])

    try:
        flat = encode_texts(sentences, encoder.tokenizer, forward, dim + 2 * layers * hidden,
                            batch_size=encoder.batch_size, max_length=encoder.max_length,
                            precision=encoder.precision, device=device, progress=progress)
    finally:
        if previous is not None:
            config.output_hidden_states = previous
    n = len(sentences)
    per_layer = flat[:, dim:].reshape(n, 2, layers, hidden)
    return LayerEmbeddings(sentence=flat[:, :dim],
                           avg=np.ascontiguousarray(per_layer[:, 0].transpose(1, 0, 2)),
                           cls=np.ascontiguousarray(per_layer[:, 1].transpose(1, 0, 2)))


def _concat(main: torch.Tensor, hidden_states, attention_mask: torch.Tensor) -> torch.Tensor:
    avgs = [masked_mean(h, attention_mask) for h in hidden_states]
    clss = [h[:, 0] for h in hidden_states]
    return torch.cat([main.float()] + [a.float() for a in avgs] + [c.float() for c in clss], dim=1)
