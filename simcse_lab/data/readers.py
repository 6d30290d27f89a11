"""Readers for the file formats of the field, strict about malformed input.

Every reader returns plain Python data and raises :class:`InputError` (``file:line: problem``) on a
row it cannot read: a row is never dropped silently. The only rows skipped on purpose are the ones
SentEval skips too (an STS pair whose gold line is empty).

Sentences from SentEval-style files are normalised the way SentEval does: split on whitespace and
joined with single spaces.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from simcse_lab.errors import InputError


@dataclass
class PairSet:
    """Scored sentence pairs (one STS subset or one split of STS-B / SICK)."""

    name: str
    sent1: list[str] = field(default_factory=list)
    sent2: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, a: str, b: str, score: float) -> None:
        self.sent1.append(a)
        self.sent2.append(b)
        self.scores.append(score)


def _senteval_text(text: str) -> str:
    return " ".join(text.split())


def line_number(raw: bytes, offset: int) -> int:
    """The 1-based line of byte ``offset`` in ``raw`` (for errors that know only an offset)."""
    return raw[:offset].count(b"\n") + 1


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8, a leading byte-order mark dropped (as ``utf-8-sig``: editors such as Excel
    write one, and it would otherwise stay, invisible, in the first sentence or header)."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or /dev/zero would be read for ever
        raise InputError(path, None, "not a regular file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(path, line_number(raw, err.start), f"not valid UTF-8 ({err.reason})") from None


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file: split on ``\n`` only (a trailing ``\r`` removed), so that line i is the
    i-th line any editor shows. ``str.splitlines`` would also split on U+2028, NEL, form feeds and other
    characters that may occur inside a sentence, adding lines and shifting every line number after them."""
    lines = _read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse_score(path: Path, lineno: int, value: str, what: str = "score") -> float:
    try:
        score = float(value)
    except ValueError:
        raise InputError(path, lineno, f"{what} {value!r} is not a number") from None
    if not math.isfinite(score):
        raise InputError(path, lineno, f"{what} {value!r} is not finite")
    return score


def read_senteval_sts(input_path: Path, gold_path: Path, name: str = "") -> PairSet:
    """One STS12-16 subset in SentEval's layout: ``STS.input.X.txt`` (two tab-separated sentences a
    line) and ``STS.gs.X.txt`` (one gold score a line; an empty line means the pair is not scored)."""
    input_path, gold_path = Path(input_path), Path(gold_path)
    inputs = _read_lines(input_path)
    golds = _read_lines(gold_path)
    if len(inputs) != len(golds):
        raise InputError(
            gold_path, None, f"{len(golds)} gold lines but {input_path.name} has {len(inputs)} sentence pairs"
        )
    pairs = PairSet(name or input_path.name)
    for lineno, (line, gold) in enumerate(zip(inputs, golds), start=1):
        if gold.strip() == "":
            continue  # SentEval skips pairs without a gold score
        score = _parse_score(gold_path, lineno, gold.strip(), "gold score")
        cols = line.split("\t")
        if len(cols) < 2:
            raise InputError(input_path, lineno, f"expected 2 tab-separated sentences, found {len(cols)} column(s)")
        a, b = _senteval_text(cols[0]), _senteval_text(cols[1])
        if not a or not b:
            raise InputError(input_path, lineno, "empty sentence in a scored pair")
        pairs.add(a, b, score)
    return pairs


def _read_tsv_pairs(path: Path, numbered_lines, name: str, score_col: int, a_col: int, b_col: int,
                    what: str) -> PairSet:
    """Scored pairs from tab-separated lines (split with no quote handling), strictly."""
    needed = max(score_col, a_col, b_col) + 1
    pairs = PairSet(name or path.name)
    for lineno, line in numbered_lines:
        cols = line.strip().split("\t")
        if len(cols) < needed:
            raise InputError(path, lineno, f"expected at least {needed} tab-separated columns, found {len(cols)}")
        score = _parse_score(path, lineno, cols[score_col], what)
        a, b = _senteval_text(cols[a_col]), _senteval_text(cols[b_col])
        if not a or not b:
            raise InputError(path, lineno, "empty sentence")
        pairs.add(a, b, score)
    if not pairs.scores:
        raise InputError(path, None, "no sentence pairs")
    return pairs


def read_stsb_csv(path: Path, name: str = "") -> PairSet:
    """STS-B csv: tab-separated, score in column 5, sentences in columns 6 and 7, no quote handling
    (csv quoting would swallow rows that contain a double quote)."""
    path = Path(path)
    return _read_tsv_pairs(path, enumerate(_read_lines(path), start=1), name, 4, 5, 6, "score")


SICK_HEADER = ["pair_ID", "sentence_A", "sentence_B", "relatedness_score"]


def read_sick(path: Path, name: str = "") -> PairSet:
    """SICK in SentEval's layout: a header line, then pair_ID, sentence_A, sentence_B,
    relatedness_score, entailment_judgment separated by tabs (CRLF tolerated)."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines:
        raise InputError(path, None, "empty file")
    header = lines[0].strip().split("\t")
    if header[:4] != SICK_HEADER:
        raise InputError(path, 1, f"expected a header starting {'/'.join(SICK_HEADER)}, found {'/'.join(header[:4])}")
    return _read_tsv_pairs(path, enumerate(lines[1:], start=2), name, 3, 1, 2, "relatedness score")


NLI_COLUMNS = ["sent0", "sent1", "hard_neg"]


def read_nli_csv(path: Path) -> list[tuple[str, str, str]]:
    """SimCSE's supervised training file: a csv with header sent0,sent1,hard_neg (standard quoting)."""
    path = Path(path)
    # csv gets the raw text: a quoted field may hold a newline, which splitting into lines first would lose
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(path, None, "empty file") from None
    except csv.Error as err:
        raise InputError(path, 1, f"not valid csv ({err})") from None
    if header != NLI_COLUMNS:
        raise InputError(path, 1, f"expected header {','.join(NLI_COLUMNS)}, found {','.join(header)}")
    rows = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise InputError(path, reader.line_num, f"not valid csv ({err})") from None
        lineno = reader.line_num
        if len(row) != 3:
            raise InputError(path, lineno, f"expected 3 fields (sent0,sent1,hard_neg), found {len(row)}")
        if any(not cell.strip() for cell in row):
            raise InputError(path, lineno, "empty sentence")
        rows.append((row[0], row[1], row[2]))
    if not rows:
        raise InputError(path, None, "no triplets after the header")
    return rows


def read_text(path: Path) -> list[str]:
    """Plain text, one sentence a line (SimCSE's wiki1m format). A blank line is an error."""
    path = Path(path)
    sentences = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        text = line.strip()
        if not text:
            raise InputError(path, lineno, "blank line (one sentence a line expected)")
        sentences.append(text)
    if not sentences:
        raise InputError(path, None, "no sentences")
    return sentences
