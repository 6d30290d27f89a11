"""The one ``--data`` syntax: what a user may name as a data source, parsed and checked before any work.

- ``NAME`` or ``NAME:SPLIT``: a registry dataset (``wiki``, ``nli``, ``wiki1m``, ``nli_for_simcse``,
  ``stsb:train`` ...), taken from ``$SIMCSE_LAB_DATA`` or the cache and checksum-verified; a dataset that is
  in neither is downloaded on first use (offline: one line saying how to get it). ``registry:NAME[:SPLIT]``
  says so explicitly; a bare name that is also a local file or directory (``./wiki``) is refused as ambiguous,
  never silently taken for one of the two.
- a local file: ``.txt`` (one sentence a line; also a file without a suffix, as before), ``.csv`` /
  ``.tsv`` (with a header), ``.jsonl`` (one JSON object a line) or ``.parquet``;
- a directory written by ``datasets.Dataset.save_to_disk``;
- ``hub:OWNER/NAME[:CONFIG][@SPLIT]``: a dataset on the Hugging Face hub
  (``hub:sentence-transformers/all-nli:triplet``), split ``train`` unless named; needs internet. Only a hub id
  is taken there, never a local path.

Which columns hold the sentence / positive / hard negative is chosen by name (``--columns`` or a known
naming such as ``sent0,sent1,hard_neg`` or ``anchor,positive,negative``; :mod:`simcse_lab.data.columns`).
Anything that looks like a path (a separator, a suffix) but does not exist is ``PATH: no such file``, never
taken for a dataset name; a path that exists but is neither a regular file nor a directory (a FIFO,
``/dev/zero``) is ``PATH: not a regular file``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from simcse_lab.data import registry
from simcse_lab.data.content_hash import file_sha256
from simcse_lab.errors import InputError, UserError

REGISTRY_PREFIX = "registry:"  # registry:NAME[:SPLIT]: the registry dataset even where a local path has its name
FILE_KINDS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
FORMS = "a registry name (NAME[:SPLIT] or registry:NAME[:SPLIT]), a .txt/.csv/.tsv/.jsonl/.parquet file, a save_to_disk directory or hub:OWNER/NAME[:CONFIG][@SPLIT]"


@dataclass(frozen=True)
class DataSpec:
    kind: str  # registry | txt | csv | tsv | jsonl | parquet | saved | hub
    text: str  # as the user wrote it
    path: Path | None = None  # local file or directory (registry: the verified file, when it is one file)
    name: str | None = None  # registry name or hub id
    split: str | None = None
    config: str | None = None

    def describe(self) -> str:
        return str(self.path) if self.path is not None and self.kind != "registry" else self.text

    def fingerprint(self) -> str:
        """Content identity: the registry's pinned sha256 where there is one, else the file's sha256 (read once
        per file state: :mod:`simcse_lab.data.content_hash`)."""
        if self.kind == "registry":
            info = registry.info(self.name)
            shas = [info.files[f] or file_sha256(registry.locate(self.name, f)) for f in sorted(info.files)]
            return hashlib.sha256(f"{self.name}:{self.split}:{','.join(shas)}".encode()).hexdigest()
        if self.kind in ("saved", "hub"):
            return self.open_dataset()._fingerprint
        return hashlib.sha256(f"{self.kind}:{file_sha256(self.path)}".encode()).hexdigest()

    def open_dataset(self):
        """The ``datasets.Dataset`` of a saved directory or a hub split (memory-mapped Arrow)."""
        import datasets

        if self.kind == "saved":
            try:
                ds = datasets.load_from_disk(str(self.path))
            except (OSError, ValueError, FileNotFoundError) as err:
                raise UserError(f"{self.path}: not a readable save_to_disk directory ({err})") from None
            if isinstance(ds, datasets.DatasetDict):
                raise UserError(f"{self.path}: a DatasetDict ({', '.join(ds)}); name one split's directory, "
                                f"e.g. {self.path / next(iter(ds))}")
            return ds
        if self.kind == "hub":
            try:
                return datasets.load_dataset(self.name, self.config, split=self.split)
            except Exception as err:  # network, auth, unknown id or split: one line, not a traceback
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise UserError(f"{self.text}: cannot load the hub dataset ({first})") from None
        raise AssertionError(f"{self.kind} is not a datasets source")


def parse_spec(text: str, default_split: str | None = None, fetch: bool = True) -> DataSpec:
    """Parse ``--data``; a local file or directory must exist and have a known format, a registry name must exist.

    ``default_split`` is the split of a registry ``NAME`` given without ``:SPLIT`` (the command's default, e.g.
    analyze's ``--split``), else ``train`` where the dataset has one, else its first split. ``fetch=False``
    leaves a registry dataset that is not here yet to be fetched later (by one process of several)."""
    text = text.strip()
    if not text:
        raise UserError(f"--data is empty; give {FORMS}")
    if text.startswith("hub:"):
        rest = text[4:]
        rest, _, split = rest.partition("@")
        hub_id, _, config = rest.partition(":")
        if not hub_id:
            raise UserError(f"{text}: no dataset id after hub:")
        if "/" not in hub_id or not is_hub_id(hub_id):  # never a local path: datasets would read it unchecked
            raise UserError(f"{text}: hub: takes a hub dataset id OWNER/NAME (e.g. hub:sentence-transformers/all-nli); "
                            f"give a local file or directory without hub:")
        return DataSpec("hub", text, name=hub_id, config=config or None, split=split or "train")
    written = text
    explicit = text.startswith(REGISTRY_PREFIX)
    if explicit:
        text = text[len(REGISTRY_PREFIX):]
    name, _, split = text.partition(":")
    datasets = registry.manifest()
    path = Path(text).expanduser()
    if not explicit and name in datasets and os.path.lexists(path):
        what = "directory" if path.is_dir() else "file"
        raise UserError(f"{text!r} names both a local {what} and the registry dataset {name!r}: write "
                        f"./{text} for the {what}, or {REGISTRY_PREFIX}{text} for the dataset")
    if explicit and name not in datasets:
        raise UserError(f"{REGISTRY_PREFIX}{text}: no registry dataset {name!r} ({', '.join(datasets)})")
    if not explicit and path.is_dir():
        if not ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
            raise UserError(f"{path}: a directory, but not one written by Dataset.save_to_disk")
        return DataSpec("saved", text, path=path)
    if not explicit and path.is_file():
        kind = FILE_KINDS.get(path.suffix.lower(), "txt" if not path.suffix else None)
        if kind is None:
            raise UserError(f"{path}: unknown data file type {path.suffix!r}; use {', '.join(FILE_KINDS)}")
        return DataSpec(kind, text, path=path)
    if not explicit and path.exists():  # a FIFO, a device such as /dev/zero (or a link to one), a socket
        raise InputError(path, None, f"not a regular file ({_file_type(path)}); give a file or a directory")
    if name in datasets:
        info = datasets[name]
        split = split or default_split or ("train" if "train" in info.splits else next(iter(info.splits)))
        if split not in info.splits:
            raise UserError(f"dataset {name!r} has no split {split!r}; it has {', '.join(info.splits)}")
        if fetch:
            ensure_local(name)
        return DataSpec("registry", written, name=name, split=split)
    if "/" in text or os.sep in text or text.startswith((".", "~")) or Path(text).suffix:
        raise InputError(text, None, "no such file")
    raise UserError(f"{text!r} is neither a file nor a registry dataset: no such file, and not a registry dataset "
                    f"({', '.join(datasets)}); --data takes {FORMS}")


def _file_type(path: Path) -> str:
    mode = path.stat().st_mode
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a file or directory"


def is_hub_id(text: str) -> bool:
    """A Hugging Face hub repository id (``NAME`` or ``OWNER/NAME``: letters, digits, ``-``, ``_``, ``.``; no
    ``..``, ``--``, leading or trailing ``.``/``-``): the hub client's own rule, so that nothing shaped like a
    local path (``./dir``, ``../../etc``, ``owner/..``) passes for an id. Shared by ``hub:`` data and ``--model``."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def ensure_local(name: str) -> None:
    """A registry dataset missing from the mirror and the cache is fetched (and verified) on first use."""
    info = registry.info(name)
    try:
        for relpath in info.files:
            registry.locate(name, relpath)
        return
    except UserError as err:
        if "sha256 mismatch" in str(err):
            raise
    registry.fetch_from_url(name)
