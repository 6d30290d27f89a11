"""One loader from a data spec to rows, shared by train, analyze, index and retrieval.

A spec is a file path or ``NAME[:SPLIT]``:

- a path (an existing file, or anything that looks like one: it contains a path separator, starts
  with ``.`` or ``~``, or ends in ``.txt`` / ``.csv``) is read by its suffix: ``.csv`` is SimCSE's
  triplet file (header sent0,sent1,hard_neg), anything else plain text, one sentence a line;
- otherwise ``NAME`` is a registry dataset (``simcse-lab data list``) and ``SPLIT`` one of its
  splits. Without ``:SPLIT`` the caller's default split is read (analyze's ``--split``, ``train`` for
  training data), else ``train`` when the dataset has one, else its first split.

So ``--data wiki``, ``--data nli``, ``--data stsb --split dev``, ``--corpus wiki:train`` and file paths
all mean what they meant before. Rows are what the registry's readers return: a list of sentences
(``text``), a list of (sent0, sent1, hard_neg) triplets (``nli_csv``), one PairSet (STS-B, SICK-R) or
``{subset: PairSet}`` (STS12-16).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from simcse_lab.data import readers, registry
from simcse_lab.errors import InputError, UserError


@dataclass(frozen=True)
class Source:
    """A resolved spec: what it names, checked, and its rows, read on first use."""

    spec: str
    kind: str          # a registry reader kind: text, nli_csv, stsb_csv, sick, senteval_sts
    name: str | None   # the registry dataset, None for a file
    split: str | None
    path: Path | None  # the file, for a file spec

    @cached_property
    def rows(self):
        if self.name is None:
            return readers.read_nli_csv(self.path) if self.kind == "nli_csv" else readers.read_text(self.path)
        return registry.load_split(self.name, self.split)

    def file(self) -> Path:
        """The one file the rows are read from (verified), e.g. to record its checksum."""
        if self.path is not None:
            return self.path
        split = registry.info(self.name).splits[self.split]
        if "path" not in split:
            raise UserError(f"{self.name}:{self.split} is made of several files")
        return registry.locate(self.name, split["path"])


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith((".", "~")) or spec.endswith((".txt", ".csv"))


def resolve(spec: str, split: str | None = None) -> Source:
    """What ``spec`` names (see the module docstring), checked without reading it: a missing file, an
    unknown dataset or split is a one-line error here. ``split`` is the default for ``NAME`` specs."""
    path = Path(spec).expanduser()
    if path.is_file() or _looks_like_path(spec):
        if not path.is_file():
            raise InputError(spec, None, "no such file")
        return Source(spec, "nli_csv" if path.suffix == ".csv" else "text", None, None, path)
    name, _, named_split = spec.partition(":")
    if name not in registry.manifest():
        raise UserError(f"{spec!r} is neither a file nor a registry dataset ({', '.join(registry.manifest())})")
    info = registry.info(name)
    split = named_split or split or ("train" if "train" in info.splits else next(iter(info.splits)))
    if split not in info.splits:
        raise UserError(f"dataset {name!r} has no split {split!r}; it has {', '.join(info.splits)}")
    return Source(spec, info.kind, name, split, None)


def sentences(rows) -> list[str]:
    """Every sentence of some rows, in order and with repeats: pairs and triplets are flattened."""
    if isinstance(rows, (dict, readers.PairSet)):
        sets = rows.values() if isinstance(rows, dict) else [rows]
        return [s for ps in sets for s in ps.sent1 + ps.sent2]
    if rows and isinstance(rows[0], tuple):
        return [s for row in rows for s in row]
    return list(rows)
