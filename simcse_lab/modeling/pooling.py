"""SimCSE's poolers: how a sentence vector is read off an encoder's outputs.

- ``cls``: the [CLS] vector passed through an MLP head (dense + tanh: SimCSE's MLP, or the backbone's
  own trained pooler layer);
- ``cls_before_pooler``: the raw [CLS] vector of the last layer;
- ``avg``: mean of the last layer over real (non-padding) tokens;
- ``avg_first_last``: mean over tokens of the average of the first transformer layer and the last;
- ``avg_top2``: mean over tokens of the average of the last two layers;
- ``last_token``: the last real (attended) token of each row, wherever the padding is (right or left): the
  only token a causal decoder has run over the whole sentence (SGPT, E5-Mistral; sentence-transformers'
  ``lasttoken``);
- ``weighted_avg``: SGPT's position-weighted mean: real token k of a row (k = 1..L, counted from the row's first
  real token, so left padding does not shift it) weighs k / (1 + ... + L) (sentence-transformers'
  ``weightedmean``).
- ``mask``: the last layer's state at the template's mask token of each row (PromptBERT; any padding side): the
  batch carries ``template_mask`` (1 at that token, :mod:`simcse_lab.modeling.template`), and a row without
  exactly one is refused in one line. With template denoising the template's own state is then subtracted
  (:mod:`simcse_lab.modeling.denoise`).

Instruction masking (LLM2Vec, ``--instruction``): the instruction text is put before each sentence for the
forward pass, and the batch carries ``embed_mask``, the attention mask with the instruction's tokens zeroed
(:func:`embed_mask`). Every pooler that reads tokens (the means and ``last_token``) then reads only the
sentence's tokens; ``weighted_avg`` keeps each sentence token's weight from its position in the whole row
(instruction included), as sentence-transformers' ``include_prompt=False`` does. ``embed_mask`` is no model
input (:func:`model_inputs`). The instruction's length follows sentence-transformers' prompt rule
(:func:`instruction_length`), so an exported model with the same prompt masks the same tokens.

([CLS] is the backbone family's sentence token, at the position its family declares; a family without one,
such as T5, takes only the mean poolers: :mod:`simcse_lab.modeling.families`.)

In simcse-lab "pooler" always means one of these names. A sentence-transformers directory run through
its own modules has no SimCSE pooler; results record it as ``OWN_MODULES``. This module needs no torch
at import time (the tensors come from the caller), so a config can check a pooler name without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcse_lab.errors import UserError

if TYPE_CHECKING:
    import torch

POOLERS = ("cls", "cls_before_pooler", "avg", "avg_first_last", "avg_top2", "last_token", "weighted_avg", "mask")
NEEDS_HIDDEN_STATES = ("avg_first_last", "avg_top2")  # they read layers other than the last
TOKEN_POOLERS = ("avg", "avg_first_last", "avg_top2", "last_token", "weighted_avg")  # may skip an instruction
POOLING_ONLY = ("embed_mask", "template_mask", "layout")  # batch entries the poolers read and the model must not be
# given (layout: the prompted rows of ConPVP, simcse_lab.modeling.continuous_prompt)
TEMPLATE_POOLERS = ("mask",)  # read a template's token: they need one (--template), and no sentence-transformers module
OWN_MODULES = "modules"  # the "pooler" recorded for a sentence-transformers directory's own modules


def check_pooler(pooler: str, where: str = "") -> str:
    """``pooler`` if it is a SimCSE pooler name, else a one-line UserError (``where`` says whose)."""
    if pooler not in POOLERS:
        raise UserError(f"unknown pooler {pooler!r}{where}; choose from {', '.join(POOLERS)}")
    return pooler


def check_instruction(pooler: str, instruction: str) -> str:
    """``instruction`` if ``pooler`` can exclude it; the sentence-token poolers cannot (their token would read the
    instruction along with the sentence, which a sentence-transformers prompt does not reproduce): one line."""
    if instruction and pooler not in TOKEN_POOLERS:
        raise UserError(f"--instruction masks the instruction's tokens out of the pooled ones; pooler {pooler!r} "
                        f"reads one sentence token instead; use one of {', '.join(TOKEN_POOLERS)}")
    return instruction


def instruction_length(tokenizer, instruction: str) -> int:
    """How many leading tokens of ``instruction + sentence`` belong to the instruction: the instruction tokenised
    alone (special tokens included), less a trailing special token (EOS, [SEP]): sentence-transformers' rule for a
    prompt's length, so its ``include_prompt=False`` masks exactly these."""
    ids = tokenizer(instruction)["input_ids"]
    if ids and ids[-1] in set(tokenizer.all_special_ids):
        return len(ids) - 1
    return len(ids)


def instruction_prefix(tokenizer, instruction: str, max_length: int) -> int:
    """How many leading tokens the instruction takes (0 without one); one that leaves no room for a sentence
    token within ``max_length`` is a one-line UserError."""
    if not instruction:
        return 0
    length = instruction_length(tokenizer, instruction)
    if length >= max_length:
        raise UserError(f"--instruction takes {length} tokens, which leaves none of the {max_length} for the sentence; "
                        f"shorten it or raise the maximum length (max_seq_len)")
    return length


def embed_mask(attention_mask: torch.Tensor, lengths) -> torch.Tensor:
    """The attention mask with each row's first ``lengths`` (an int, or one per row) real tokens zeroed, wherever
    the row's padding is."""
    import torch

    real = attention_mask.long()
    rank = real.cumsum(1)  # 1.. over a row's real tokens
    lengths = torch.as_tensor(lengths, device=attention_mask.device).reshape(-1, 1)
    return (real * (rank > lengths)).to(attention_mask.dtype)


def model_inputs(batch: dict) -> dict:
    """``batch`` without the entries only the poolers read (``embed_mask``)."""
    return {k: v for k, v in batch.items() if k not in POOLING_ONLY}


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Per row, the index of the last nonzero position of ``mask`` (0 for a row with none)."""
    import torch

    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return ((mask != 0).long() * positions).argmax(1)


def mask_token(hidden: torch.Tensor, marks: torch.Tensor | None) -> torch.Tensor:
    """Each row's state at its one marked position (``marks``: the batch's ``template_mask``)."""
    import torch

    if marks is None:
        raise UserError("pooler 'mask' reads the state at a template's mask token, and the inputs have no template; "
                        "give --template 'This sentence : \"{sentence}\" means [MASK] .'")
    counts = (marks != 0).sum(1)
    if bool((counts != 1).any()):
        row = int((counts != 1).nonzero()[0])
        raise UserError(f"pooler 'mask': input {row} of a batch holds {int(counts[row])} mask tokens, not the "
                        f"template's one (does the sentence itself contain the mask token's text?)")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), (marks != 0).long().argmax(1)]


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import torch

    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_positions(mask)]


def weighted_mean(hidden: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SGPT's weights: position k (1..) among the row's real tokens of ``attention_mask``, over the tokens of
    ``mask`` (``attention_mask`` less an instruction), normalised to sum 1."""
    import torch

    weights = (attention_mask.long().cumsum(1) * (mask != 0)).unsqueeze(-1).to(torch.float32)  # exact to 2**24
    return ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)).to(hidden.dtype)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def pool(pooler: str, batch, last_hidden: torch.Tensor, hidden_states: tuple[torch.Tensor, ...] | None = None,
         mlp: torch.nn.Module | None = None, *, summary: int | None) -> torch.Tensor:
    """Sentence vectors (batch, dim) from one forward pass.

    ``batch`` holds the model inputs (``attention_mask``, ``input_ids``, ...: a pooler may read any position) and
    ``embed_mask`` where an instruction precedes the sentences;
    ``hidden_states`` is the tuple from ``output_hidden_states=True`` (index 0 = embedding layer, index 1 =
    first transformer layer); ``mlp`` is the dense+tanh head that ``cls`` applies; ``summary`` is the position
    of the family's sentence token ([CLS], <s>; :attr:`Family.summary_token`), None where it has none.
    """
    attention_mask = batch["attention_mask"]
    mask = batch.get("embed_mask", attention_mask)  # the tokens to pool: the sentence's, without an instruction
    if pooler in ("cls", "cls_before_pooler"):
        if "embed_mask" in batch:
            check_instruction(pooler, "an instruction")  # refuses: the sentence token reads the instruction too
        if summary is None:
            raise ValueError(f"pooler {pooler!r} needs a sentence token, which this backbone family does not have")
        if pooler == "cls_before_pooler":
            return last_hidden[:, summary]
        if mlp is None:
            raise ValueError("pooler 'cls' needs an MLP head (dense + tanh)")
        return mlp(last_hidden[:, summary])
    if pooler == "avg":
        return masked_mean(last_hidden, mask)
    if pooler == "last_token":
        return last_token(last_hidden, mask)
    if pooler == "weighted_avg":
        return weighted_mean(last_hidden, attention_mask, mask)
    if pooler == "mask":
        return mask_token(last_hidden, batch.get("template_mask"))
    check_pooler(pooler)
    if hidden_states is None:
        raise ValueError(f"pooler {pooler!r} needs output_hidden_states=True")
    if pooler == "avg_first_last":
        pair = (hidden_states[1], hidden_states[-1])
    else:
        pair = (hidden_states[-2], hidden_states[-1])
    return masked_mean((pair[0] + pair[1]) / 2.0, mask)
