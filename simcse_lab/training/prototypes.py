"""ConPVP's prototype templates (``--prototype-templates FILE``): pairs of a positive template and its negated form.

A file holds one pair a line, ``positive<TAB>negative``; blank lines and lines starting with ``#`` are skipped.
Each template has ``{sentence}`` once and the mask token once (``{mask}``, or the tokenizer's own such as
``[MASK]``: checked against the tokenizer when the objective compiles them). The defaults are the paper's prompts
(lemon0830/promptCSE ``train.py``, as ``../shared/reviews/research-notes.md`` section 4 lists them); the notes give
the negated forms with their openings elided, and the two pairings marked below are ours. This module imports no
torch: a bad file is refused with the config, before any model loads."""

from __future__ import annotations

from pathlib import Path

from simcse_lab.errors import InputError, UserError
from simcse_lab.modeling.template import check_template_text
DEFAULT_PROTOTYPES = (
    ('This sentence : " {sentence} " means {mask} .', 'This sentence : " {sentence} " not means {mask} .'),
    ('By " {sentence} " they mean {mask} .', 'Without " {sentence} " they mean {mask} .'),
    ('" {sentence} " , Is this review positive ? {mask} .', '" {sentence} " , Is this review negative ? {mask} .'),
    ('" {sentence} " , is related to " {mask} "', '" {sentence} " , is inconsistent to " {mask} "'),
    ('" {sentence} " is a {mask} one', '" {sentence} " is not a {mask} one'),
    ('Article " {sentence} " belongs to a {mask} topic',
     'Article " {sentence} " is definitely not about the {mask} topic'),
    # pairings of ours: the notes give "... is totally different to" and "... which not denotes [MASK]"
    ('" {sentence} " . In summary : " {mask} "', '" {sentence} " is totally different to " {mask} "'),
    ('Given " {sentence} " , we assume that " {mask} "', 'Given " {sentence} " , which not denotes " {mask} "'),
)


def read_prototypes(path: str) -> list[tuple[str, str]]:
    """The (positive, negative) template pairs of a prototype file; a bad line is one line naming file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the prototype templates ({err})") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 2 or not all(fields):
            raise InputError(path, number, "expected 'positive template<TAB>negative template'")
        for text in fields:
            check_template_text(text, f"{path}:{number}:")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise InputError(path, None, "no prototype template pair")
    return pairs


def prototype_pairs(path: str) -> tuple[tuple[str, str], ...]:
    """The pairs of ``path``, or the defaults where it is empty."""
    return tuple(read_prototypes(path)) if path else DEFAULT_PROTOTYPES
