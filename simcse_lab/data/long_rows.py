"""Long rows cut before tokenising, only where the cut provably keeps the tokens training keeps.

Training truncates every row to its first ``max_length`` tokens, but a tokenizer first normalises and
splits the whole text: one 50 MB line cost 7 GB of memory. So a row longer than ``CHARS_PER_TOKEN *
max_length`` characters is cut before it is tokenised, at the last space (U+0020) within that bound that
follows a non-space character. Why that keeps the tokens: the tokenizers used here normalise character by
character (lower-casing, accent stripping, control characters dropped, runs of spaces collapsed; none joins a
character across a space that starts a run), their pre-tokenisers split at such a space (BERT's whitespace and
punctuation split, byte-level BPE's regex, SentencePiece's metaspace) and their model turns each piece into
tokens on its own. So the pieces of the prefix are the first pieces of the whole text, and its tokens the first
tokens. If the prefix, truncated, already fills ``max_length`` tokens, those are exactly the tokens the whole
row would keep; each cut row is checked for that after tokenising (tests/data/test_training_data.py checks the
equality on fast tokenizers of the three kinds, pathological whitespace included).

A row with no such space in its bound (a language written without spaces, a blob), or whose prefix holds
fewer tokens than ``max_length``, is not cut: it is tokenised whole up to ``UNCUT_FACTOR`` times the bound,
and refused above that with its row (``file:line`` for one-row-a-line files), never silently shortened.
"""

from __future__ import annotations

from simcse_lab.errors import UserError

CHARS_PER_TOKEN = 32  # the cut bound, in characters per kept token: far above any tokenizer's average
UNCUT_FACTOR = 64     # a row that cannot be cut is tokenised whole up to this many times the bound


def char_bound(max_length: int) -> int:
    return CHARS_PER_TOKEN * max_length


def cut_point(text: str, bound: int) -> int | None:
    """The length of the prefix to keep: the last space at or before ``bound`` that follows a non-space
    character; None when the text is short enough, or when there is no such space."""
    if len(text) <= bound:
        return None
    i = text.rfind(" ", 0, bound + 1)
    while i > 0 and text[i - 1].isspace():
        i = text.rfind(" ", 0, i)
    return i if i > 0 else None


def too_long(length: int, max_length: int, where: str) -> str:
    bound = char_bound(max_length)
    return (f"{where}: a row of {length} characters that cannot be cut safely before tokenising (no space after "
            f"a word within its first {bound} characters, or too few tokens there) and is longer than "
            f"{UNCUT_FACTOR * bound} characters; split or shorten it")


def tokenize_bounded(tokenizer, texts: list[str], max_length: int, where=None) -> list[list[int]]:
    """``tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]``, with long rows cut first
    (see the module docstring); ``where(i)`` names row ``i`` of the batch in an error."""
    bound = char_bound(max_length)
    cuts = {i: c for i, text in enumerate(texts) if (c := cut_point(text, bound)) is not None}
    short = [text[:cuts[i]] if i in cuts else text for i, text in enumerate(texts)]

    def encode(rows):
        return tokenizer(rows, truncation=True, max_length=max_length, padding=False,
                         return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    ids = encode(short)
    redo = [i for i in cuts if len(ids[i]) < max_length]  # the prefix did not fill the row: not proven
    for i, text in enumerate(texts):
        if (i in redo or (i not in cuts and len(text) > bound)) and len(text) > UNCUT_FACTOR * bound:
            raise UserError(too_long(len(text), max_length, where(i) if where else f"row {i + 1}"))
    if redo:
        for i, row in zip(redo, encode([texts[i] for i in redo])):
            ids[i] = row
    return ids
