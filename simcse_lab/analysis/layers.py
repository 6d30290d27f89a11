"""Per-layer embeddings from one forward pass, for the report's layer profile.

For each sentence: the checkpoint's sentence embedding plus, for the embedding layer (index 0) and
every transformer layer, the mean-pooled and the [CLS] vector (the backbone family's sentence token; a family
without one, such as T5, has no [CLS] profile: ``cls`` is None).

Works for both :class:`~simcse_lab.modeling.encoder.Encoder` backends and reuses its fast batching loop
(:func:`~simcse_lab.modeling.batching.encode_texts`), so a report encodes each sentence once per checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simcse_lab.modeling.batching import EncodeSettings, encode_texts
from simcse_lab.modeling.denoise import denoised
from simcse_lab.modeling.template import InputFormat
from simcse_lab.modeling.families import family_of
from simcse_lab.modeling.pooling import masked_mean, model_inputs, pool


@dataclass
class LayerEmbeddings:
    sentence: np.ndarray  # (n, dim) the checkpoint's own sentence embedding
    avg: np.ndarray  # (layers + 1, n, hidden) mean over real tokens, per layer
    cls: np.ndarray | None  # (layers + 1, n, hidden) [CLS] vector, per layer; None: the family has no such token

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
    summary = family_of(config).summary_token
    per_layer_vectors = 1 if summary is None else 2

    if encoder.backend == "sentence-transformers":
        previous = config.output_hidden_states
        config.output_hidden_states = True

        def forward(batch):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = encoder.st_model(encoder.st_features(batch))
            return _concat(out["sentence_embedding"], out["all_layer_embeddings"], _tokens(batch), summary)
    else:
        previous = None

        def forward(batch):
            batch = {k: v.to(device) for k, v in batch.items()}
            if getattr(encoder, "prompt", None) is not None:  # ConPVP: the layers of the rows its prompt builds
                main, states, tokens = encoder.prompt.with_layers(model, model_inputs(batch))
                return _concat(main, states, tokens, summary)
            out = model(**model_inputs(batch), output_hidden_states=True)
            main = pool(encoder.pooler, batch, out.last_hidden_state, out.hidden_states, encoder.mlp, summary=summary)
            if getattr(encoder, "denoise_from", None) is not None:  # the template's delta, as the encoder does
                main = denoised(main, model, (encoder.template,), batch, encoder.denoise_from)
            return _concat(main, out.hidden_states, _tokens(batch), summary)

    try:
        settings = EncodeSettings(batch_size=encoder.batch_size, max_length=encoder.max_length,
                                  precision=encoder.precision, device=device, progress=progress,
                                  text=getattr(encoder, "text_format", None) or InputFormat())
        flat = encode_texts(sentences, encoder.tokenizer, forward, dim + per_layer_vectors * layers * hidden, settings)
    finally:
        if previous is not None:
            config.output_hidden_states = previous
    n = len(sentences)
    per_layer = flat[:, dim:].reshape(n, per_layer_vectors, layers, hidden)
    cls = np.ascontiguousarray(per_layer[:, 1].transpose(1, 0, 2)) if summary is not None else None
    return LayerEmbeddings(sentence=flat[:, :dim], avg=np.ascontiguousarray(per_layer[:, 0].transpose(1, 0, 2)), cls=cls)


def _tokens(batch: dict) -> torch.Tensor:
    """The sentence's tokens: without an instruction's (``embed_mask``) where one precedes it."""
    return batch.get("embed_mask", batch["attention_mask"])


def _concat(main: torch.Tensor, hidden_states, attention_mask: torch.Tensor, summary: int | None) -> torch.Tensor:
    avgs = [masked_mean(h, attention_mask) for h in hidden_states]
    clss = [h[:, summary] for h in hidden_states] if summary is not None else []
    return torch.cat([main.float()] + [a.float() for a in avgs] + [c.float() for c in clss], dim=1)
