"""A local file's sha256, remembered in the cache per file state, so a warm start does not read the corpus again.

The tokenised cache is keyed by the content of the corpus (:mod:`simcse_lab.data.training_data`). Hashing a
corpus costs a full read: 1.8 s for the 2 GB of a 10M-line file in the page cache, minutes for a 100M-line
file on disk, on every run. :func:`file_sha256` hashes a file once and keeps the digest in
``CACHE/fingerprints/`` beside the file's state: device, inode, size, modification time and inode change
time (``st_ctime_ns``, which every write, rename over or ``touch -d`` moves, and which no user tool sets
back). A later call with the same state takes the digest from there; any other state is hashed again.

Two rules keep a remembered digest true. The state must not change while the file is read (else nothing is
remembered), and a file changed within the last ``RACY_SECONDS`` is not remembered: a write within the
timestamp granularity of its filesystem could otherwise leave size and times as they were (the "racily
clean" case of git's index). An unreadable or foreign memo entry is ignored and replaced; the memo is only
ever a shortcut to the digest the file would give.

A memo is not taken on its word alone: it also holds the file's :func:`sample_digest` (its size and 16
blocks of 4 KiB spread over it), which is read again and compared before the remembered digest is used (a
few hundred microseconds, whatever the file's size), and a memo file larger than ``MEMO_MAX_BYTES``, not a
regular file, or a symlink is ignored without being read. What a remembered digest selects is checked too:
a tokenised cache entry records the size and sample digest of the file it was built from
(:mod:`simcse_lab.data.training_data`), and inside :func:`read_afresh` only digests read from the file by
this process are used. Tests: tests/data/test_content_hash.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from simcse_lab.data.registry import cache_dir
from simcse_lab.io import read_small_json, sha256_file, write_json

MEMO_DIR = "fingerprints"
RACY_SECONDS = 2.0
MEMO_MAX_BYTES = 4096  # a memo is ~300 bytes; anything larger is not one, and is not read
# a file's sample digest is recorded in memos and cache entries: changing these two changes every sample (bump
# training_data.FORMAT_VERSION with them, or every entry is found "built from another file" and rebuilt)
SAMPLE_BLOCKS = 16
SAMPLE_BLOCK_BYTES = 4096
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRUST_MEMOS = ContextVar("trust_memos", default=True)
_READ_HERE: dict[tuple, str] = {}  # (path, state) -> digest, for digests this process computed by reading the file


def _state(st: os.stat_result) -> dict:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def memo_path(path: Path) -> Path:
    """Where the digest of ``path`` (an absolute path) is remembered."""
    return cache_dir() / MEMO_DIR / f"{hashlib.sha256(os.fsencode(path)).hexdigest()[:32]}.json"


def sample_digest(path) -> str:
    """A cheap check of a file's identity: the sha256 of its size and of SAMPLE_BLOCKS blocks of
    SAMPLE_BLOCK_BYTES spread evenly over it (the first and the last included), the whole file when it is
    not larger than those blocks. Reads at most 64 KiB, whatever the file's size."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h = hashlib.sha256(str(size).encode())
        if size <= SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES:
            h.update(f.read(SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES))
        else:
            step = (size - SAMPLE_BLOCK_BYTES) // (SAMPLE_BLOCKS - 1)
            for i in range(SAMPLE_BLOCKS):
                h.update(os.pread(f.fileno(), SAMPLE_BLOCK_BYTES, i * step))
    return h.hexdigest()


def _read_memo(memo: Path) -> dict | None:
    """The memo at ``memo`` if it is a small regular file holding a JSON object; None otherwise (never a
    symlink followed, a FIFO waited on, or a large file read)."""
    return read_small_json(memo, MEMO_MAX_BYTES)[0]


@contextmanager
def read_afresh():
    """Within the block, :func:`file_sha256` ignores the memos on disk: a digest is one this process read from
    the file itself (now, or earlier for the same file state)."""
    token = _TRUST_MEMOS.set(False)
    try:
        yield
    finally:
        _TRUST_MEMOS.reset(token)


def file_sha256(path) -> str:
    """The hex sha256 of the file at ``path``: remembered when its state and sample are unchanged, else read
    and hashed."""
    path = Path(path).resolve()
    before = _state(path.stat())
    here = _READ_HERE.get((str(path), tuple(before.values())))
    if here is not None:
        return here
    memo = memo_path(path)
    if _TRUST_MEMOS.get():
        saved = _read_memo(memo)
        if (saved is not None and saved.get("path") == str(path) and saved.get("state") == before
                and isinstance(saved.get("sha256"), str) and _SHA256.match(saved["sha256"])
                and saved.get("sample") == sample_digest(path)):
            return saved["sha256"]
    digest = sha256_file(path)
    sample = sample_digest(path)
    after = path.stat()
    newest = max(after.st_mtime_ns, after.st_ctime_ns)
    if _state(after) == before and time.time_ns() - newest > RACY_SECONDS * 1e9:
        _READ_HERE[(str(path), tuple(before.values()))] = digest
        try:
            write_json(memo, {"path": str(path), "state": before, "sha256": digest, "sample": sample})
        except OSError:  # a read-only cache: the digest is right, only not remembered
            pass
    return digest
