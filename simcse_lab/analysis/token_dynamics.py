"""Token-level contextualization measures, per layer: the instruments of Xiao et al. 2023, *On isotropy,
contextualization and learning dynamics of contrastive-based sentence representation learning* (ACL
Findings). The formulas are those of Ethayarajh 2019 (*How contextual are contextualized word
representations?*), on which Xiao et al. build; the stop-word list is NLTK's English list.

Notation: ``f_l(s, i)`` is the contextual vector of token ``i`` of sentence ``s`` at layer ``l`` (layer 0 =
the embedding layer, then every transformer layer); ``cos`` is cosine similarity. Special tokens (every id in
``tokenizer.all_special_ids``: [CLS], [SEP], [PAD], and also [UNK] and [MASK], which stand for many different
words) and padding are left out; word pieces are token types of their own (``"##ing"`` is a type).

What is computed, per layer ``l`` (all means are plain means, exact, accumulated batch by batch):

- ``intra_similarity``: Ethayarajh's IntraSim, ``mean_s (1/n_s) sum_i cos(f_l(s, i), m_l(s))`` with
  ``m_l(s) = (1/n_s) sum_i f_l(s, i)`` the sentence's mean token vector (Xiao et al.: tokens of one sentence
  "converge to similar positions");
- ``intra_pairwise_similarity``: ``mean_s 1/(n_s (n_s - 1)) sum_{i != j} cos(f_l(s, i), f_l(s, j))``;
  both means run over the sentences with at least 2 counted tokens;
- ``cross_sentence_similarity``: the mean cosine over all pairs of tokens from *different* sentences, the
  anisotropy baseline against which the two intra-sentence numbers (and self-similarity) are read;
- ``self_similarity_function`` / ``self_similarity_content``: Ethayarajh's SelfSim,
  ``SelfSim_l(w) = 1/(m (m - 1)) sum_{j != k} cos(f_l(s_j, i_j), f_l(s_k, i_k))`` over ``m`` occurrences of
  token type ``w`` in ``m`` different sentences, averaged over the sampled types of each class. Function
  tokens are the types whose text is in :data:`STOP_WORDS` (lower-cased, whole words only: an occurrence that
  is a piece of a longer word, e.g. "an" in "an ##ew", is not sampled for the function class); content tokens
  are the other types containing a letter; types without any letter (punctuation, numbers) are in neither
  class. Xiao et al.'s "spurious contextualization" (a token's vector varying with a context that does not
  change its meaning) is read off these: they report it mitigated for semantically meaningful tokens and
  augmented for functional ones by contrastive training, i.e. self-similarity rising for content tokens and
  falling for function tokens;
- ``mean_norm``: ``mean_{s,i} ||f_l(s, i)||`` over all counted tokens;
- ``mean_vector_norm``: ``|| mean_{s,i} f_l(s, i) ||``, the distance of the mean token vector from the
  origin (Xiao et al.: the space is "directed towards the origin" during training).

Post-hoc maps (``last_layer_maps``): a sentence-level fix such as BERT-whitening or BERT-flow maps sentence
vectors, which for the ``avg`` and ``cls_before_pooler`` poolers live in the space of the last layer's token
vectors (for ``avg`` the whitened sentence vector is exactly the mean of the whitened token vectors). Applying
the same map to every last-layer token vector and measuring again says what the fix does to the token-level
picture; :func:`token_dynamics` returns those numbers under ``"last_layer_mapped"``, one row per map, from the
same forward pass.

Bounded cost: the sentences are tokenised once; one batch of hidden states is alive at a time; the
statistics are sums (for self-similarity the per-type sums of unit vectors, ``||sum u||^2 - sum ||u||^2`` over
``m (m - 1)`` being the mean pairwise cosine), so memory is ``layers x (2 max_types) x hidden`` floats whatever
the number of sentences. The sampled types (at most ``max_types`` per class, among types seen in at least
``min_contexts`` distinct sentences) and occurrences (at most ``max_occurrences`` sentences per type, the
first occurrence in each) are drawn with a seeded generator before the forward pass. Repeated sentences are
dropped first so that every self-similarity pair compares two different contexts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from simcse_lab.analysis.layers import hf_model_of
from simcse_lab.errors import UserError
from simcse_lab.modeling.batching import pad_batch
from simcse_lab.runtime.precision import autocast_context

# NLTK's English stop-word list (179 words), written out so the function/content split never depends on a
# download. It contains the contraction fragments ("don", "t", "ll", ...) that WordPiece produces.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom this
that that'll these those am is are was were be been being have has had having do does did doing a an the and but
if or because as until while of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why how all any both each
few more most other some such no nor not only own same so than too very s t can will just don don't should
should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't
haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't
weren weren't won won't wouldn wouldn't
""".split())

FUNCTION, CONTENT = "function", "content"
CLASSES = (FUNCTION, CONTENT)
MAX_TYPES = 500  # per class
MAX_OCCURRENCES = 32  # per type
MIN_CONTEXTS = 5  # Ethayarajh 2019 keeps words seen in at least 5 different contexts
BATCH_SIZE = 32  # one batch of (layers, batch, length, hidden) states is alive at a time
_TINY = 1e-12  # a zero vector gets the zero unit vector: cosine 0 with everything

_WORD_PREFIXES = "Ġ▁"  # byte-level BPE / SentencePiece word-start markers


def token_class(token: str) -> str | None:
    """``"function"`` for a stop word, ``"content"`` for any other token with a letter, ``None`` otherwise.

    WordPiece continuations (``"##s"``) are never function tokens; BPE/SentencePiece word markers are stripped."""
    if token.startswith("##"):
        return CONTENT if any(c.isalpha() for c in token[2:]) else None
    word = token.lstrip(_WORD_PREFIXES).lower()
    if not any(c.isalpha() for c in word):
        return None
    return FUNCTION if word in STOP_WORDS else CONTENT


# -- reference formulas on one array (the accumulator computes the same, batch-wise) ----------------------
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _TINY)


def intra_sentence_similarity(vectors) -> tuple[float, float]:
    """(mean cosine of each token to the sentence's mean vector, mean cosine over distinct token pairs)
    for one sentence's ``(n, d)`` token vectors, ``n >= 2``."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or len(v) < 2:
        raise ValueError(f"need the (n >= 2, d) token vectors of one sentence, got shape {v.shape}")
    u = _unit(v)
    to_mean = float(np.mean(u @ _unit(v.mean(axis=0))))
    sims, n = u @ u.T, len(u)
    pairwise = float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
    return to_mean, pairwise


def self_similarity(occurrences) -> float:
    """Mean cosine over distinct pairs of one token type's ``(m, d)`` vectors in ``m >= 2`` contexts."""
    u = _unit(occurrences)
    if u.ndim != 2 or len(u) < 2:
        raise ValueError(f"need (m >= 2, d) occurrence vectors, got shape {u.shape}")
    sims = u @ u.T
    m = len(u)
    return float((sims.sum() - np.trace(sims)) / (m * (m - 1)))


def norm_summary(vectors) -> tuple[float, float]:
    """(mean L2 norm of the ``(n, d)`` vectors, L2 norm of their mean vector)."""
    v = np.asarray(vectors, dtype=np.float64)
    return float(np.linalg.norm(v, axis=1).mean()), float(np.linalg.norm(v.mean(axis=0)))


def _check_caps(max_types: int, max_occurrences: int, min_contexts: int) -> None:
    if max_types < 1:
        raise UserError(f"self-similarity needs max_types >= 1, got {max_types}")
    if min_contexts < 2:
        raise UserError(f"self-similarity needs min_contexts >= 2 (pairs of contexts), got {min_contexts}")
    if max_occurrences < 2:
        raise UserError(f"self-similarity needs max_occurrences >= 2, got {max_occurrences}")


# -- which occurrences feed self-similarity ------------------------------------------------------------------
@dataclass
class OccurrencePlan:
    """The sampled occurrences: slot ``k`` is token type ``token_ids[k]`` of class ``classes[k]``, and
    ``positions[s]`` lists the ``(position, slot)`` pairs sampled in sentence ``s``."""

    positions: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # sentence -> [(position, slot)]
    token_ids: list[int] = field(default_factory=list)  # per slot
    classes: list[str] = field(default_factory=list)  # per slot
    eligible: dict[str, int] = field(default_factory=dict)  # per class: types with >= min_contexts contexts

    @property
    def num_slots(self) -> int:
        return len(self.token_ids)


def plan_occurrences(token_ids: list[list[int]], tokens_of, *, special_ids=(), whole_word=None,
                     max_types: int = MAX_TYPES, max_occurrences: int = MAX_OCCURRENCES,
                     min_contexts: int = MIN_CONTEXTS, seed: int = 0) -> OccurrencePlan:
    """Choose, with a seeded generator, the token types and occurrences that self-similarity will use.

    ``token_ids[s]`` are sentence ``s``'s ids as fed to the model; ``tokens_of(ids)`` gives their token strings;
    ``whole_word[s][p]`` (optional) says whether position ``p`` is a whole word rather than a piece of one."""
    _check_caps(max_types, max_occurrences, min_contexts)
    special = set(special_ids)
    seen_ids = sorted({tid for ids in token_ids for tid in ids} - special)
    classes = dict(zip(seen_ids, (token_class(t) for t in tokens_of(seen_ids))))
    contexts: dict[int, list[tuple[int, int]]] = {}  # token id -> [(sentence, first usable position)]
    for s, ids in enumerate(token_ids):
        taken = set()
        for p, tid in enumerate(ids):
            if tid in special or tid in taken or classes[tid] is None:
                continue
            # a function word must stand alone: "an" of "an ##ew" is a piece of "anew", not the article
            if classes[tid] == FUNCTION and whole_word is not None and not whole_word[s][p]:
                continue
            taken.add(tid)
            contexts.setdefault(tid, []).append((s, p))
    rng = np.random.default_rng(seed)
    plan = OccurrencePlan()
    for cls in CLASSES:
        eligible = sorted(t for t, c in classes.items() if c == cls and len(contexts.get(t, ())) >= min_contexts)
        plan.eligible[cls] = len(eligible)
        if len(eligible) > max_types:
            eligible = sorted(rng.choice(eligible, size=max_types, replace=False).tolist())
        for tid in eligible:
            occ = contexts[tid]
            if len(occ) > max_occurrences:
                occ = [occ[i] for i in sorted(rng.choice(len(occ), size=max_occurrences, replace=False))]
            slot = plan.num_slots
            plan.token_ids.append(tid)
            plan.classes.append(cls)
            for s, p in occ:
                plan.positions.setdefault(s, []).append((p, slot))
    return plan


# -- batch-wise accumulation ---------------------------------------------------------------------------------
class TokenDynamicsAccumulator:
    """Sums from which every measure of the module docstring is read off exactly.

    ``update`` takes one batch: the per-layer hidden states ``(b, t, hidden)``, the ``(b, t)`` mask of counted
    tokens and, optionally, a ``(b, t)`` long tensor of self-similarity slots (-1 = not sampled)."""

    def __init__(self, num_layers: int, hidden: int, num_slots: int = 0):
        self.num_layers, self.hidden, self.num_slots = num_layers, hidden, num_slots
        f64 = dict(dtype=torch.float64)
        self.norm_sum = torch.zeros(num_layers, **f64)
        self.vec_sum = torch.zeros(num_layers, hidden, **f64)
        self.to_mean_sum = torch.zeros(num_layers, **f64)
        self.pairwise_sum = torch.zeros(num_layers, **f64)
        self.unit_sum = torch.zeros(num_layers, hidden, **f64)  # sum of all unit vectors
        self.within_sq = torch.zeros(num_layers, **f64)  # sum over sentences of ||sum of its unit vectors||^2
        self.slot_sum = torch.zeros(num_layers, num_slots, hidden, **f64)
        self.slot_sq = torch.zeros(num_layers, num_slots, **f64)  # sum of ||u||^2 (1 unless a zero vector)
        self.slot_count = torch.zeros(num_slots, dtype=torch.long)
        self.tokens = 0
        self.tokens_sq = 0  # sum over sentences of n_s^2
        self.sentences = 0
        self.intra_sentences = 0

    def update(self, hidden_states, keep: torch.Tensor, slots: torch.Tensor | None = None) -> None:
        if len(hidden_states) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {len(hidden_states)}")
        keep = keep.detach().to("cpu", torch.bool)
        n = keep.sum(1).to(torch.float64)  # counted tokens per sentence
        multi = n >= 2
        weights = keep.to(torch.float64).unsqueeze(-1)
        tracked = slots.detach().cpu() >= 0 if slots is not None else None
        for layer, h in enumerate(hidden_states):
            h = h.detach().to("cpu", torch.float64) * weights  # dropped positions become zero vectors
            norms = h.norm(dim=-1)
            u = h / norms.clamp_min(_TINY).unsqueeze(-1)
            self.norm_sum[layer] += norms.sum()
            self.vec_sum[layer] += h.sum((0, 1))
            sent_u = u.sum(1)  # (b, hidden)
            sent_mean = h.sum(1)
            mean_dir = sent_mean / sent_mean.norm(dim=-1, keepdim=True).clamp_min(_TINY)
            to_mean = (sent_u * mean_dir).sum(-1) / n.clamp_min(1)  # sum_i u_i . m_hat = (sum_i u_i) . m_hat
            sent_sq = (sent_u * sent_u).sum(-1)
            pairwise = (sent_sq - (u * u).sum((1, 2))) / (n * (n - 1)).clamp_min(1)
            self.to_mean_sum[layer] += to_mean[multi].sum()
            self.pairwise_sum[layer] += pairwise[multi].sum()
            self.unit_sum[layer] += sent_u.sum(0)
            self.within_sq[layer] += sent_sq.sum()
            if tracked is not None and tracked.any():
                picked = u[tracked]
                index = slots.detach().cpu()[tracked]
                # index_put_ with accumulate: repeated slots add up (and it is far faster than index_add_ on CPU)
                self.slot_sum[layer].index_put_((index,), picked, accumulate=True)
                self.slot_sq[layer].index_put_((index,), (picked * picked).sum(-1), accumulate=True)
        if tracked is not None and tracked.any():
            self.slot_count += torch.bincount(slots.detach().cpu()[tracked], minlength=self.num_slots)
        self.tokens += int(n.sum())
        self.tokens_sq += int((n * n).sum())
        self.sentences += len(n)
        self.intra_sentences += int(multi.sum())

    def _self_similarity(self, layer: int, slot_classes: list[str], cls: str) -> float | None:
        values = []
        for k, c in enumerate(slot_classes):
            m = int(self.slot_count[k])
            if c != cls or m < 2:
                continue
            s = self.slot_sum[layer, k]
            values.append(float((s @ s - self.slot_sq[layer, k]) / (m * (m - 1))))
        return float(np.mean(values)) if values else None

    def layers(self, slot_classes: list[str] = ()) -> list[dict]:
        """Per-layer JSON-ready numbers; ``None`` where a measure has nothing to average."""
        out = []
        cross_pairs = self.tokens ** 2 - self.tokens_sq
        for layer in range(self.num_layers):
            row = {"layer": layer}
            if self.intra_sentences:
                row["intra_similarity"] = float(self.to_mean_sum[layer] / self.intra_sentences)
                row["intra_pairwise_similarity"] = float(self.pairwise_sum[layer] / self.intra_sentences)
            else:
                row["intra_similarity"] = row["intra_pairwise_similarity"] = None
            total = self.unit_sum[layer]
            row["cross_sentence_similarity"] = (float((total @ total - self.within_sq[layer]) / cross_pairs)
                                                if cross_pairs > 0 else None)
            for cls in CLASSES:
                row[f"self_similarity_{cls}"] = self._self_similarity(layer, list(slot_classes), cls)
            if self.tokens:
                row["mean_norm"] = float(self.norm_sum[layer] / self.tokens)
                row["mean_vector_norm"] = float((self.vec_sum[layer] / self.tokens).norm())
            else:
                row["mean_norm"] = row["mean_vector_norm"] = None
            out.append(row)
        return out


# -- extraction from a loaded Encoder ------------------------------------------------------------------------
@dataclass
class TokenStates:
    """One batch of per-layer token vectors. ``rows[k]`` is the sentence index of batch row ``k``;
    ``keep`` marks the counted tokens (real, non-special); ``hidden_states[0]`` is the embedding layer."""

    rows: list[int]
    input_ids: torch.Tensor  # (b, t), CPU
    keep: torch.Tensor  # (b, t) bool, CPU
    hidden_states: tuple[torch.Tensor, ...]  # layers x (b, t, hidden), float32, on the model's device


def tokenize(encoder, sentences: list[str]):
    """The fast tokenizer's encoding of ``sentences`` as the model will see them (special tokens added,
    truncated to the encoder's ``max_length``)."""
    tok = encoder.tokenizer
    return tok(list(sentences), truncation=True, max_length=encoder.max_length, padding=False,
               return_token_type_ids="token_type_ids" in tok.model_input_names)


def iter_token_states(encoder, sentences: list[str] | None = None, *, encoded=None,
                      batch_size: int = BATCH_SIZE) -> Iterator[TokenStates]:
    """Per-layer token vectors of ``sentences`` (or of an ``encoded`` result of :func:`tokenize`), one
    length-sorted, dynamically padded batch at a time, so memory is bounded by one batch.

    Both Encoder backends are read through their Hugging Face transformer (:func:`hf_model_of`): token
    vectors are the transformer's hidden states, before any sentence-level pooling or head."""
    if encoded is None:
        encoded = tokenize(encoder, sentences or [])
    model = hf_model_of(encoder)
    tok = encoder.tokenizer
    ids, types = encoded["input_ids"], encoded.get("token_type_ids")
    special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        batch = pad_batch([ids[i] for i in rows], tok.pad_token_id,
                          [types[i] for i in rows] if types is not None else None)
        keep = batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], special)
        # no_grad, not inference_mode: the states leave this generator and feed ordinary tensor code
        with torch.no_grad(), autocast_context(encoder.precision, encoder.device):
            out = model(**{k: v.to(encoder.device) for k, v in batch.items()}, output_hidden_states=True)
        yield TokenStates(rows=rows, input_ids=batch["input_ids"], keep=keep,
                          hidden_states=tuple(h.float() for h in out.hidden_states))


def _whole_words(encoded, lengths: list[int]) -> list[list[bool]] | None:
    """Per position: is it a whole word (its word has one token)? ``None`` without a fast tokenizer."""
    if not getattr(encoded, "encodings", None):
        return None
    flags = []
    for enc, n in zip(encoded.encodings, lengths):
        words = enc.word_ids
        flags.append([w is not None and (p == 0 or words[p - 1] != w) and (p + 1 >= n or words[p + 1] != w)
                      for p, w in enumerate(words[:n])])
    return flags


def _mapped_states(hidden: torch.Tensor, keep: torch.Tensor, fn) -> torch.Tensor:
    """``fn`` applied to the kept token vectors of one ``(b, t, hidden)`` batch; zero vectors elsewhere."""
    picked = hidden.detach().float().cpu()[keep].numpy()
    mapped = torch.from_numpy(np.asarray(fn(picked), dtype=np.float64))
    if mapped.ndim != 2 or len(mapped) != len(picked):
        raise ValueError(f"a last-layer map must return (n, k) for (n, hidden) input, got {tuple(mapped.shape)}")
    out = torch.zeros(*keep.shape, mapped.shape[1], dtype=torch.float64)
    out[keep] = mapped
    return out


def token_dynamics(encoder, sentences: list[str], *, max_types: int = MAX_TYPES,
                   max_occurrences: int = MAX_OCCURRENCES, min_contexts: int = MIN_CONTEXTS, seed: int = 0,
                   batch_size: int = BATCH_SIZE, last_layer_maps: dict | None = None) -> dict:
    """Every measure of the module docstring, per layer, for ``encoder`` on ``sentences``; JSON-ready.

    ``last_layer_maps`` (name -> function from an ``(n, hidden)`` array to ``(n, k)``): the same measures on
    the mapped last-layer token vectors, one row per name under ``"last_layer_mapped"``."""
    _check_caps(max_types, max_occurrences, min_contexts)
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    unique = list(dict.fromkeys(sentences))
    if not unique:
        raise UserError("token dynamics needs at least one sentence")
    model = hf_model_of(encoder)
    num_layers = model.config.num_hidden_layers + 1
    encoded = tokenize(encoder, unique)
    ids = encoded["input_ids"]
    tok = encoder.tokenizer
    plan = plan_occurrences(ids, tok.convert_ids_to_tokens, special_ids=tok.all_special_ids,
                            whole_word=_whole_words(encoded, [len(r) for r in ids]), max_types=max_types,
                            max_occurrences=max_occurrences, min_contexts=min_contexts, seed=seed)
    acc = TokenDynamicsAccumulator(num_layers, model.config.hidden_size, plan.num_slots)
    maps = dict(last_layer_maps or {})
    mapped_accs: dict[str, TokenDynamicsAccumulator] = {}
    for states in iter_token_states(encoder, encoded=encoded, batch_size=batch_size):
        slots = torch.full(states.keep.shape, -1, dtype=torch.long)
        for k, s in enumerate(states.rows):
            for p, slot in plan.positions.get(s, ()):
                slots[k, p] = slot
        acc.update(states.hidden_states, states.keep, slots)
        for name, fn in maps.items():
            mapped = _mapped_states(states.hidden_states[-1], states.keep, fn)
            if name not in mapped_accs:  # the map's output width is known only now
                mapped_accs[name] = TokenDynamicsAccumulator(1, mapped.shape[-1], plan.num_slots)
            mapped_accs[name].update((mapped,), states.keep, slots)
    counts = acc.slot_count.tolist()
    out = {
        "layers": acc.layers(plan.classes),
        "sentences": len(unique),
        "duplicates_dropped": len(sentences) - len(unique),
        "intra_sentences": acc.intra_sentences,
        "tokens": acc.tokens,
        "self_similarity": {
            cls: {"types": sum(1 for c in plan.classes if c == cls),
                  "eligible_types": plan.eligible.get(cls, 0),
                  "occurrences": sum(n for n, c in zip(counts, plan.classes) if c == cls)}
            for cls in CLASSES
        } | {"max_types": max_types, "max_occurrences": max_occurrences, "min_contexts": min_contexts,
             "seed": seed, "whole_word_filter": getattr(encoded, "encodings", None) is not None},
        "stop_words": len(STOP_WORDS),
    }
    if maps:
        out["last_layer_mapped"] = {name: {**a.layers(plan.classes)[0], "layer": num_layers - 1}
                                    for name, a in mapped_accs.items()}
    return out
