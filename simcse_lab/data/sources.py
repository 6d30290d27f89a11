"""One loader from a data spec to rows, shared by analyze, index and retrieval (training reads the same
specs at corpus scale through :mod:`simcse_lab.data.training_data`).

A spec is parsed by :mod:`simcse_lab.data.spec`, so every command takes the same ``--data`` syntax: a registry
``NAME[:SPLIT]`` (without ``:SPLIT``: the caller's default split, e.g. analyze's ``--split``, else ``train``
when the dataset has one, else its first split), a ``.txt`` / ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.parquet``
file, a ``save_to_disk`` directory or ``hub:OWNER/NAME[:CONFIG][@SPLIT]``. Anything that looks like a path (a
separator, a leading ``.`` or ``~``, a suffix) but does not exist is ``PATH: no such file``.

Rows are what the registry's readers return for a registry dataset: a list of sentences (``text``), a list
of (sent0, sent1, hard_neg) triplets (``nli_csv``), one PairSet (STS-B, SICK-R) or ``{subset: PairSet}``
(STS12-16). Any other source is read by the strict row readers of :mod:`simcse_lab.data.streaming` (a
malformed row is a ``file:line`` error) from the columns :func:`~simcse_lab.data.columns.sentence_columns`
picks (``--columns``, a known naming, or the only column): one column gives sentences (kind ``text``), two
give (sentence, positive) pairs (``pairs``), three (sentence, positive, hard negative) triplets (``nli_csv``,
the registry's name for triplet rows). So ``--data wiki``, ``--data nli``, ``--data stsb --split dev``,
``--corpus wiki:train`` and the ``.txt`` / SimCSE ``.csv`` files all mean what they meant before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from simcse_lab.data import readers, registry
from simcse_lab.data.columns import sentence_columns
from simcse_lab.data.spec import DataSpec, parse_spec
from simcse_lab.data.streaming import check_first_row, iter_rows, source_columns
from simcse_lab.errors import UserError

SHAPES = {1: "text", 2: "pairs", 3: "nli_csv"}


@dataclass(frozen=True)
class Source:
    """A resolved spec: what it names, checked, and its rows, read on first use."""

    spec: str
    kind: str          # text, pairs or nli_csv (triplets); a registry STS set: stsb_csv, sick, senteval_sts
    name: str | None   # the registry dataset, None otherwise
    split: str | None
    path: Path | None  # the file or directory, for a local spec
    data: DataSpec | None = None
    columns: tuple[str, ...] = ()  # the columns read, for a non-registry source

    @cached_property
    def rows(self):
        if self.name is not None:
            return registry.load_split(self.name, self.split)
        rows = iter_rows(self.data, list(self.columns))
        if len(self.columns) == 1:
            return [row[self.columns[0]].strip() for row in rows]
        return [tuple(row[c] for c in self.columns) for row in rows]

    def file(self) -> Path:
        """The one file the rows are read from (verified), e.g. to record its checksum."""
        if self.name is None:
            if self.path is None or not self.path.is_file():
                raise UserError(f"{self.spec}: not a single file")
            return self.path
        split = registry.info(self.name).splits[self.split]
        if "path" not in split:
            raise UserError(f"{self.name}:{self.split} is made of several files")
        return registry.locate(self.name, split["path"])

    def sha256(self) -> str:
        """The content's sha256: the file's, or for a saved / hub dataset that of its rows (one a line)."""
        if self.name is not None or (self.path is not None and self.path.is_file()):
            return registry.sha256_file(self.file())
        h = hashlib.sha256()
        for row in self.rows:
            h.update(((row if isinstance(row, str) else "\t".join(row)) + "\n").encode())
        return h.hexdigest()


def resolve(spec: str, split: str | None = None, columns: list[str] | None = None) -> Source:
    """What ``spec`` names (see the module docstring), checked without reading its rows: a missing file, an
    unknown dataset or split, an unknown column is a one-line error here. ``split`` is the default for
    ``NAME`` specs; ``columns`` (``--columns``) names the text columns of a non-registry source."""
    data = parse_spec(spec, default_split=split)
    if data.kind == "registry":
        return Source(spec, registry.info(data.name).kind, data.name, data.split, None, data)
    chosen = sentence_columns(source_columns(data), columns, data.describe())
    check_first_row(data, chosen)
    return Source(spec, SHAPES[len(chosen)], None, None, data.path, data, tuple(chosen))


def sentences(rows) -> list[str]:
    """Every sentence of some rows, in order and with repeats: pairs and triplets are flattened."""
    if isinstance(rows, (dict, readers.PairSet)):
        sets = rows.values() if isinstance(rows, dict) else [rows]
        return [s for ps in sets for s in ps.sent1 + ps.sent2]
    if rows and isinstance(rows[0], tuple):
        return [s for row in rows for s in row]
    return list(rows)
