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
ever a shortcut to the digest the file would give. Tests: tests/test_content_hash.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from simcse_lab.data.registry import cache_dir
from simcse_lab.io import sha256_file, write_json

MEMO_DIR = "fingerprints"
RACY_SECONDS = 2.0


def _state(st: os.stat_result) -> dict:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def memo_path(path: Path) -> Path:
    """Where the digest of ``path`` (an absolute path) is remembered."""
    return cache_dir() / MEMO_DIR / f"{hashlib.sha256(os.fsencode(path)).hexdigest()[:32]}.json"


def file_sha256(path) -> str:
    """The hex sha256 of the file at ``path``: remembered when its state is unchanged, else read and hashed."""
    path = Path(path).resolve()
    before = _state(path.stat())
    memo = memo_path(path)
    try:
        saved = json.loads(memo.read_text())
        if saved.get("path") == str(path) and saved.get("state") == before and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    except (OSError, ValueError, AttributeError):  # none yet, unreadable, or not an object: hash the file
        pass
    digest = sha256_file(path)
    after = path.stat()
    newest = max(after.st_mtime_ns, after.st_ctime_ns)
    if _state(after) == before and time.time_ns() - newest > RACY_SECONDS * 1e9:
        try:
            write_json(memo, {"path": str(path), "state": before, "sha256": digest})
        except OSError:  # a read-only cache: the digest is right, only not remembered
            pass
    return digest
