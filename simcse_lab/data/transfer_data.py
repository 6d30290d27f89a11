"""SentEval's transfer data sets (MR, CR, SUBJ, MPQA, SST-2, TREC, MRPC), read from SentEval's ``downstream/`` layout.

Each task is read the way SentEval's own loader reads it (``senteval/binary.py``, ``sst.py``, ``trec.py``,
``mrpc.py``), so that the rows, their labels and their order are SentEval's:

- MR, CR, SUBJ, MPQA: two files of one sentence a line, decoded as latin-1 and split with ``str.splitlines``
  (as SentEval does, so the row count is SentEval's); the first file is label 1 (``rt-polarity.pos``,
  ``custrev.pos``, ``subj.objective``, ``mpqa.pos``), the second label 0.
- SST-2: ``SST/binary/sentiment-{train,dev,test}``, UTF-8, ``sentence<TAB>label``.
- TREC: ``TREC/train_5500.label`` and ``TREC/TREC_10.label``, latin-1, ``COARSE:fine words...``; the six coarse
  classes ABBR, DESC, ENTY, HUM, LOC, NUM are labels 0..5.
- MRPC: ``MRPC/msr_paraphrase_{train,test}.txt``, UTF-8, a header line, then
  ``label<TAB>id1<TAB>id2<TAB>sentence1<TAB>sentence2``.

Sentences are split on whitespace and joined with single spaces (SimCSE's batcher joins SentEval's tokens so).
Rows are then stably sorted exactly as SentEval sorts them before encoding (by token count, then label; MRPC by
both token counts, then label): SentEval hands its classifier the rows in that order, so its stratified folds
and its classifier's shuffles are drawn over that order, and so are ours.

Files come from the registry dataset ``senteval_transfer`` (``$SIMCSE_LAB_DATA`` or the cache, SentEval's layout
under ``SentEval/data/downstream``, checksum-verified where the registry pins one) or from a SentEval data
directory the user names (``--senteval-dir``: its ``downstream/`` folder; not checksummed). Every file a task
needs is checked, and read, before anything is encoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simcse_lab.data import registry
from simcse_lab.errors import InputError, UserError

TRANSFER_TASKS = ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC")
REGISTRY_NAME = "senteval_transfer"
REGISTRY_ROOT = "SentEval/data/downstream"
TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")

# task -> {split: files relative to downstream/}; a binary task's one split holds (label-1 file, label-0 file)
FILES = {
    "MR": {"all": ("MR/rt-polarity.pos", "MR/rt-polarity.neg")},
    "CR": {"all": ("CR/custrev.pos", "CR/custrev.neg")},
    "SUBJ": {"all": ("SUBJ/subj.objective", "SUBJ/subj.subjective")},
    "MPQA": {"all": ("MPQA/mpqa.pos", "MPQA/mpqa.neg")},
    "SST2": {s: (f"SST/binary/sentiment-{s}",) for s in ("train", "dev", "test")},
    "TREC": {"train": ("TREC/train_5500.label",), "test": ("TREC/TREC_10.label",)},
    "MRPC": {s: (f"MRPC/msr_paraphrase_{s}.txt",) for s in ("train", "test")},
}
NCLASSES = {"TREC": len(TREC_CLASSES)}


@dataclass(frozen=True)
class TransferSplit:
    """One split's rows in SentEval's order: a sentence (and, for MRPC, its partner) and an integer label."""

    sentences: tuple[str, ...]
    labels: tuple[int, ...]
    partners: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TransferData:
    task: str
    splits: dict  # "all" (MR, CR, SUBJ, MPQA), "train"/"test" (TREC, MRPC) or "train"/"dev"/"test" (SST2)
    nclasses: int
    source: str  # where the files were read, and whether they were checksum-verified


def parse_transfer_tasks(text: str) -> list[str]:
    """``MR,CR,...`` (any case) -> SentEval's task names, in the order given, each once."""
    names = {t.lower(): t for t in TRANSFER_TASKS}
    names["sst-2"] = "SST2"
    tasks = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in names]
    if unknown or not tasks:
        raise UserError(f"unknown transfer task(s) {', '.join(unknown) or '(none)'}; "
                        f"choose from {','.join(TRANSFER_TASKS)}")
    return list(dict.fromkeys(names[t] for t in tasks))


def _words(text: str) -> str:
    return " ".join(text.split())


def _read(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise InputError(path, None, "not a regular file" if path.exists() else "file not found")
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(path, None, f"not valid {encoding} ({err.reason})") from None


def _text_lines(path: Path, encoding: str) -> list[str]:
    """Lines as Python's text mode yields them (``for line in f``: universal newlines), as SentEval reads these."""
    lines = _read(path, encoding).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _label(path: Path, lineno: int, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(path, lineno, f"label {value.strip()!r} is not an integer") from None


def read_binary(first: Path, second: Path) -> TransferSplit:
    """MR/CR/SUBJ/MPQA: the first file's lines are label 1, the second's label 0."""
    rows = [(_words(line), 1) for line in _read(first, "latin-1").splitlines()]
    rows += [(_words(line), 0) for line in _read(second, "latin-1").splitlines()]
    return _sorted_split(rows)


def read_sst(path: Path) -> TransferSplit:
    rows = []
    for lineno, line in enumerate(_text_lines(path, "utf-8"), 1):
        fields = line.strip().split("\t")
        if len(fields) < 2:
            raise InputError(path, lineno, "expected 'sentence<TAB>label'")
        rows.append((_words(fields[0]), _binary_label(path, lineno, fields[1], "SST-2")))
    return _sorted_split(rows)


def read_trec(path: Path) -> TransferSplit:
    rows = []
    for lineno, line in enumerate(_text_lines(path, "latin-1"), 1):
        target, colon, rest = line.strip().partition(":")
        words = rest.split(" ", 1)
        if not colon or len(words) < 2:
            raise InputError(path, lineno, "expected 'COARSE:fine question words'")
        if target not in TREC_CLASSES:
            raise InputError(path, lineno, f"unknown TREC class {target!r}; expected one of {', '.join(TREC_CLASSES)}")
        rows.append((_words(words[1]), TREC_CLASSES.index(target)))
    return _sorted_split(rows)


def read_mrpc(path: Path) -> TransferSplit:
    rows = []
    for lineno, line in enumerate(_text_lines(path, "utf-8")[1:], 2):  # line 1: the header
        fields = line.strip().split("\t")
        if len(fields) < 5:
            raise InputError(path, lineno, "expected 'label<TAB>id1<TAB>id2<TAB>sentence1<TAB>sentence2'")
        rows.append((_words(fields[3]), _words(fields[4]), _binary_label(path, lineno, fields[0], "MRPC")))
    rows.sort(key=lambda r: (len(r[0].split()), len(r[1].split()), r[2]))
    return TransferSplit(tuple(r[0] for r in rows), tuple(r[2] for r in rows), tuple(r[1] for r in rows))


def _binary_label(path: Path, lineno: int, text: str, task: str) -> int:
    """A 0/1 label (SST-2, MRPC), else a ``file:line`` error."""
    label = _label(path, lineno, text)
    if label not in (0, 1):
        raise InputError(path, lineno, f"{task} label {label} is not 0 or 1")
    return label


def _sorted_split(rows: list[tuple[str, int]]) -> TransferSplit:
    rows = sorted(rows, key=lambda r: (len(r[0].split()), r[1]))
    return TransferSplit(tuple(r[0] for r in rows), tuple(r[1] for r in rows))


def _read_split(task: str, paths: list[Path]) -> TransferSplit:
    if task in ("MR", "CR", "SUBJ", "MPQA"):
        return read_binary(*paths)
    reader = {"SST2": read_sst, "TREC": read_trec, "MRPC": read_mrpc}[task]
    return reader(paths[0])


def downstream_dir(senteval_dir: str | Path) -> Path:
    """A SentEval data directory's ``downstream/`` folder (the directory itself if it is that folder)."""
    root = Path(senteval_dir)
    if not root.is_dir():
        raise UserError(f"--senteval-dir {root}: not a directory (give SentEval's data directory, holding downstream/)")
    return root / "downstream" if (root / "downstream").is_dir() else root


def _locate_in_registry(rel: str) -> Path:
    try:
        return registry.locate(REGISTRY_NAME, f"{REGISTRY_ROOT}/{rel}")
    except UserError as err:
        if "sha256 mismatch" in str(err):
            raise
        raise UserError(f"{err}; or pass --senteval-dir DIR (a SentEval data directory holding downstream/)") from None


def check_files(tasks: list[str], senteval_dir: str | Path | None) -> None:
    """Every file the tasks need is there, before anything is read or encoded (one line naming the first missing)."""
    if senteval_dir is None:
        for rel in required_files(tasks):
            _locate_in_registry(rel)
        return
    downstream = downstream_dir(senteval_dir)
    for task in tasks:
        for rels in FILES[task].values():
            for rel in rels:
                if not (downstream / rel).is_file():
                    raise UserError(f"--senteval-dir {senteval_dir}: {downstream / rel} is missing; {task} needs "
                                    f"{', '.join(r for rs in FILES[task].values() for r in rs)} under {downstream}")


def load_transfer(tasks: list[str], senteval_dir: str | Path | None = None) -> list[TransferData]:
    """Every split of each task, from ``senteval_dir`` (not checksummed) or the registry (verified where pinned)."""
    check_files(tasks, senteval_dir)
    if senteval_dir is None:
        pinned = all(registry.info(REGISTRY_NAME).files[f"{REGISTRY_ROOT}/{rel}"] for rel in required_files(tasks))
        locate = _locate_in_registry
        source = f"registry {REGISTRY_NAME} " + ("(sha256-verified)" if pinned else
                                                 "(not checksummed: the registry pins no sha256 for these files)")
    else:
        downstream = downstream_dir(senteval_dir)
        locate, source = (lambda rel: downstream / rel), f"--senteval-dir {downstream} (not checksummed)"
    out = []
    for task in tasks:
        splits = {split: _read_split(task, [locate(rel) for rel in rels]) for split, rels in FILES[task].items()}
        for split, rows in splits.items():
            _check_split(task, split, rows)
        out.append(TransferData(task, splits, NCLASSES.get(task, 2), source=source))
    return out


def _check_split(task: str, split: str, rows: TransferSplit) -> None:
    """A split with no rows, or with one class only (nothing to classify: any score would be meaningless), is one line."""
    files = ", ".join(FILES[task][split])
    if len(rows) == 0:
        raise UserError(f"{task}: its {split} split has no rows ({files})")
    if len(set(rows.labels)) < 2:
        raise UserError(f"{task}: its {split} split holds only one class (label {rows.labels[0]}, {len(rows)} rows; "
                        f"{files}); a transfer task needs at least two")


def required_files(tasks: list[str]) -> list[str]:
    return [rel for task in tasks for rels in FILES[task].values() for rel in rels]
