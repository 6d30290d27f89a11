"""The user's own evaluation files, read strictly: scored pairs for STS, query/positive pairs for retrieval.

Each is a ``.csv`` / ``.tsv`` (a header line naming the columns) or ``.jsonl`` (one object a line).

Columns are found by name: a score (``score``, ``label``, ``similarity``, ``gold``, ``relatedness_score``) and
two sentences (``sentence1``/``sentence2``, ``sent1``/``sent2``, ``sentence_A``/``sentence_B``,
``text1``/``text2``, ``s1``/``s2``); a query and its positive (``query``/``positive``, ``anchor``/``positive``,
``question``/``answer``, ``sent0``/``sent1``, ``sentence1``/``sentence2``). A missing column, an empty sentence
or a score that is not a number is a ``file:line`` error; no row is ever dropped. A score outside the range
the user gave is an error too; without one, the range is the smallest of 0-1, 0-5, 0-10, 0-100 holding every
score (else the scores' own minimum and maximum), and is reported as inferred.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from simcse_lab.data.columns import listing
from simcse_lab.data.readers import PairSet, _parse_score
from simcse_lab.data.streaming import csv_header, csv_reader, iter_lines, json_object, json_string
from simcse_lab.errors import InputError, UserError

DELIMITERS = {".csv": ",", ".tsv": "\t", ".jsonl": None}
SCORE_COLUMNS = ("score", "label", "similarity", "gold", "relatedness_score")
PAIR_COLUMNS = (("sentence1", "sentence2"), ("sent1", "sent2"), ("sentence_A", "sentence_B"), ("text1", "text2"),
                ("s1", "s2"))
QUERY_COLUMNS = (("query", "positive"), ("anchor", "positive"), ("question", "answer"), ("sent0", "sent1"),
                 ("sentence1", "sentence2"))
SCALES = ((0.0, 1.0), (0.0, 5.0), (0.0, 10.0), (0.0, 100.0))  # the usual gold scales, smallest first


def check_file(path: Path) -> None:
    """A readable regular file of a known type, else one line (before anything is read)."""
    path = Path(path)
    if path.suffix.lower() not in DELIMITERS:
        raise InputError(path, None, f"unknown evaluation file type {path.suffix!r}; use .csv, .tsv or .jsonl")
    if not path.exists():
        raise InputError(path, None, "no such file")
    if not path.is_file():
        raise InputError(path, None, "not a regular file")


def records(path: Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(the columns, the rows as (line number, {column: value})): a csv/tsv row's cells as text, a jsonl object
    as it is (its columns: the first object's keys)."""
    path = Path(path)
    check_file(path)
    delimiter = DELIMITERS[path.suffix.lower()]
    if delimiter is None:
        lines = iter_lines(path)
        first = next(lines, None)
        if first is None:
            raise InputError(path, None, "no rows")
        columns = list(json_object(path, *first))

        def objects():
            yield first[0], json_object(path, *first)
            for lineno, line in lines:
                yield lineno, json_object(path, lineno, line)
        return columns, objects()
    header = csv_header(path, delimiter)
    return header, _csv_rows(path, delimiter, header)


def _csv_rows(path: Path, delimiter: str, header: list[str]) -> Iterator[tuple[int, dict]]:
    reader, where = csv_reader(path, delimiter)
    next(reader)
    try:
        for row in reader:
            if len(row) != len(header):
                raise InputError(path, where["line"], f"expected {len(header)} fields ({','.join(header)}), "
                                                      f"found {len(row)}")
            yield where["line"], dict(zip(header, row))
    except csv.Error as err:
        raise InputError(path, where["line"], f"malformed CSV ({err})") from None


def find_columns(path: Path, columns: list[str], choices, what: str) -> tuple[str, ...]:
    """The first naming of ``choices`` (each a tuple of names) that ``columns`` holds, else a ``file:1`` error."""
    for names in choices:
        if all(n in columns for n in names):
            return names
    named = " or ".join("/".join(names) for names in choices)
    raise InputError(path, 1, f"missing column: no {what} column ({named}); columns: {listing(columns) or 'none'}")


def _text(path: Path, lineno: int, row: dict, column: str) -> str:
    value = json_string(path, lineno, row, column)
    if value is None or not value.strip():
        raise InputError(path, lineno, f"missing column: {column!r} is empty or absent")
    return value.strip()


def _score(path: Path, lineno: int, row: dict, column: str) -> float:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(path, lineno, f"missing column: {column!r} is empty or absent")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(path, lineno, f"score {value!r} is not a number")
    return _parse_score(path, lineno, str(value).strip(), "score")


def infer_range(scores: list[float]) -> tuple[float, float]:
    low, high = min(scores), max(scores)
    for scale in SCALES:
        if scale[0] <= low and high <= scale[1]:
            return scale
    return low, high


def read_scored_pairs(path: Path, score_range: tuple[float, float] | None = None) -> tuple[PairSet, tuple, bool]:
    """(the pairs, the score range, whether it was inferred) of a user's STS file."""
    path = Path(path)
    columns, rows = records(path)
    score = find_columns(path, columns, [(c,) for c in SCORE_COLUMNS], "score")[0]
    first, second = find_columns(path, columns, PAIR_COLUMNS, "sentence pair")
    pairs = PairSet(path.name)
    for lineno, row in rows:
        value = _score(path, lineno, row, score)
        if score_range is not None and not score_range[0] <= value <= score_range[1]:
            raise InputError(path, lineno, f"score {value:g} is outside the range {score_range[0]:g}-{score_range[1]:g}")
        pairs.add(_text(path, lineno, row, first), _text(path, lineno, row, second), value)
    if len(pairs) < 2:
        raise InputError(path, None, f"{len(pairs)} scored pair(s); a correlation needs at least 2")
    if len(set(pairs.scores)) < 2:
        raise InputError(path, None, f"every score is {pairs.scores[0]:g}; a correlation needs different scores")
    return pairs, score_range or infer_range(pairs.scores), score_range is None


def read_query_pairs(path: Path) -> list[tuple[str, str]]:
    """The (query, positive) pairs of a user's retrieval file."""
    path = Path(path)
    columns, rows = records(path)
    query, positive = find_columns(path, columns, QUERY_COLUMNS, "query/positive")
    pairs = [(_text(path, lineno, row, query), _text(path, lineno, row, positive)) for lineno, row in rows]
    if not pairs:
        raise UserError(f"{path}: no query/positive pairs")
    return pairs
