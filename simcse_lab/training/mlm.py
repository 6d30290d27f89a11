"""The auxiliary masked-token loss (``--do-mlm``, weight ``mlm_weight``) and the masking behind ``--objective mntp``.

BERT's masking: ``--mlm-probability`` (SimCSE: 15%) of the non-special tokens; of those 80% the mask token, 10% a
random token, 10% kept (``--mlm-masking 80/10/10``), or all of them the mask token (``all_mask``: LLM2Vec's
Mistral setting, with probability 0.8). What predicts a masked token is the family's declared masked-token
objective (:class:`~simcse_lab.modeling.families.base.MaskedTokens`): BERT's MLM (SimCSE's fresh ``lm_head`` at
the token's own position) or a decoder's MNTP (its own LM head, from the position before: LLM2Vec), whose
mask token is "_" where the tokenizer has none. With MNTP the first ``shift`` positions are never masked:
nothing before them predicts them."""

from __future__ import annotations

import copy

import torch

from simcse_lab.modeling.embedder import PassSwitches

IGNORE = -100
# --mlm-masking -> (share of the chosen tokens that become the mask token, share up to which the rest become a
# random token): 80/10/10 = 80% mask, 10% random, 10% kept
MASKINGS = {"80/10/10": (0.8, 0.9), "all_mask": (1.0, 1.0)}


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: list[int], mask_id: int,
                vocab_size: int, probability: float = 0.15, replace: tuple[float, float] = MASKINGS["80/10/10"],
                skip_first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels with IGNORE where nothing is to be predicted). Uses torch's global RNG (the same
    draws whatever ``replace`` is). ``skip_first``: positions at the start of each row never masked."""
    candidates = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(special_ids, device=input_ids.device))
    if skip_first:
        candidates[:, :skip_first] = False
    chosen = candidates & (torch.rand(input_ids.shape, device=input_ids.device) < probability)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    draw = torch.rand(input_ids.shape, device=input_ids.device)
    to_mask, to_random = replace
    masked = torch.where(chosen & (draw < to_mask), torch.full_like(input_ids, mask_id), input_ids)
    random_tokens = torch.randint(vocab_size, input_ids.shape, device=input_ids.device)
    masked = torch.where(chosen & (draw >= to_mask) & (draw < to_random), random_tokens, masked)
    return masked, labels


class MaskedLMAuxiliary:
    """Wraps the training model for an objective: each call also runs the masked copies of its inputs
    and keeps that masked-token loss in ``self.loss`` (the objectives stay unaware of it)."""

    def __init__(self, model, tokenizer, probability: float = 0.15, *, mask_id: int | None = None,
                 masking: str = "80/10/10", shift: int = 0):
        self.model = model
        self.special_ids = list(tokenizer.all_special_ids)
        self.mask_id = tokenizer.mask_token_id if mask_id is None else mask_id
        self.vocab_size = len(tokenizer)
        self.probability = probability
        self.masking, self.shift = masking, shift
        self.loss = None
        self.described: dict = {}

    @classmethod
    def for_run(cls, cfg, tokenizer, embedder) -> MaskedLMAuxiliary:
        """The masking a run's config asks for, on its embedder's family: its objective (MLM or MNTP), its mask
        token (the tokenizer's or the family's fallback, recorded in ``described`` for the run's summary)."""
        from simcse_lab.modeling.families import mask_token

        spec = embedder.family.masked_lm
        mask_id, token, own = mask_token(tokenizer, embedder.family, cfg.model)
        masking = cls(None, tokenizer, cfg.mlm_probability, mask_id=mask_id, masking=cfg.mlm_masking,
                      shift=spec.shift)
        masking.described = {"objective": spec.name, "mask_token": token, "mask_token_id": mask_id,
                             "mask_token_from": "tokenizer" if own else f"{spec.name} fallback (tokenizer has none)",
                             "probability": cfg.mlm_probability, "masking": cfg.mlm_masking,
                             "predicted_from": "the position before (shifted labels)" if spec.shift
                             else "the token's own position",
                             "head": "the model's own LM head" if spec.own_head else "a fresh MLM head"}
        return masking

    def wrapping(self, model) -> MaskedLMAuxiliary:
        """The same masking around ``model``, with a fresh ``loss`` (one per training step)."""
        other = copy.copy(self)
        other.model, other.loss = model, None
        return other

    def masked(self, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(inputs["input_ids"], inputs["attention_mask"], self.special_ids, self.mask_id,
                           self.vocab_size, self.probability, MASKINGS[self.masking], self.shift)

    def __call__(self, **inputs):
        masked, labels = self.masked(inputs)
        vectors, self.loss = self.model(**inputs, mlm_input_ids=masked, mlm_labels=labels)
        return vectors

    def loss_alone(self, **inputs) -> torch.Tensor:
        """The masked-token loss of ``inputs`` without sentence vectors (``--objective mntp``)."""
        masked, labels = self.masked(inputs)
        self.loss = self.model(**inputs, mlm_input_ids=masked, mlm_labels=labels, switches=PassSwitches(mlm_only=True))
        return self.loss
