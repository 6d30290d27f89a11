"""Which columns of a data source hold the sentence, its positive and its hard negative.

``--columns a,b,c`` names them (in that order); without it a known naming of the field is recognised
(SimCSE's ``sent0,sent1,hard_neg``, sentence-transformers' ``anchor,positive,negative``, STS-style
``sentence1,sentence2`` ...), else a source with a single column uses it. Anything else is a one-line
error asking for ``--columns``: a column is never guessed among several.
"""

from __future__ import annotations

from simcse_lab.errors import UserError

# column names a source may use for (sentence, positive, hard negative), in order of preference
KNOWN_COLUMNS = (("sent0", "sent1", "hard_neg"), ("anchor", "positive", "negative"),
                 ("sentence", "positive", "negative"), ("text",), ("sentence",), ("sent1", "sent2"),
                 ("sentence1", "sentence2"))
ROLES = ("sentence", "positive", "hard negative")
LISTED = 20  # an error lists at most this many column names (a header may have a million)


def listing(names, limit: int = LISTED) -> str:
    """``a, b, c``, or the first ``limit`` names and ``... (N in all)``: an error line stays short."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(map(str, names))
    return ", ".join(map(str, names[:limit])) + f", ... ({len(names)} in all)"


def parse_columns(text: str | None) -> list[str] | None:
    """``--columns a,b,c`` as a list (None when not given); empty or repeated names are refused."""
    if text is None or not str(text).strip():
        return None
    names = [c.strip() for c in str(text).split(",")]
    if any(not c for c in names):
        raise UserError(f"--columns {text!r}: an empty column name")
    if len(set(names)) != len(names):
        raise UserError(f"--columns {text!r}: a column named twice")
    if len(names) > len(ROLES):
        raise UserError(f"--columns {text!r}: at most {len(ROLES)} columns ({', '.join(ROLES)})")
    return names


def _check_requested(available: list[str], requested: list[str], where: str) -> None:
    missing = [c for c in requested if c not in available]
    if missing:
        raise UserError(f"{where}: no column {listing(missing)} (columns: {listing(available)})")


def choose_columns(available: list[str], needed: int, requested: list[str] | None, where: str) -> list[str]:
    """Exactly ``needed`` text columns (a training objective's): ``--columns`` if given, else a known naming,
    else the only one."""
    if requested:
        _check_requested(available, requested, where)
        if len(requested) < needed:
            raise UserError(f"{where}: --columns names {len(requested)} column(s); this objective needs {needed} "
                            f"({', '.join(ROLES[:needed])})")
        return requested[:needed]
    for names in KNOWN_COLUMNS:
        if len(names) >= needed and all(n in available for n in names[:needed]):
            return list(names[:needed])
    if needed == 1 and len(available) == 1:
        return available
    what = "one sentence column" if needed == 1 else f"{needed} columns ({', '.join(ROLES[:needed])})"
    raise UserError(f"{where}: cannot tell which columns hold {what} among {listing(available) or 'none'}; "
                    f"name them with --columns")


def sentence_columns(available: list[str], requested: list[str] | None, where: str) -> list[str]:
    """As many text columns as the source names (1 to 3: sentences, pairs or triplets), for commands that read
    sentences or positive pairs: ``--columns`` if given, else the longest known naming present, else the only
    column."""
    if requested:
        _check_requested(available, requested, where)
        return requested
    best: list[str] = []
    for names in KNOWN_COLUMNS:
        present = 0
        while present < len(names) and names[present] in available:
            present += 1
        if present > len(best):
            best = list(names[:present])
    if best:
        return best
    if len(available) == 1:
        return available
    raise UserError(f"{where}: cannot tell which columns hold sentences among {listing(available) or 'none'}; "
                    f"name them with --columns")
