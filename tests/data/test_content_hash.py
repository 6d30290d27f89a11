"""A corpus's sha256 is read once per file state: a warm start does not re-read the file, and any change
(content, size, a write that keeps the size with the old mtime put back) is hashed again."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from simcse_lab.data import content_hash
from simcse_lab.data.content_hash import file_sha256, memo_path


class Forgetful(dict):
    def __setitem__(self, key, value):
        pass


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """Hashing counted; the cache in tmp_path; no racy window unless a test sets one."""
    monkeypatch.setenv("SIMCSE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(content_hash, "RACY_SECONDS", 0.0)
    monkeypatch.setattr(content_hash, "_READ_HERE", Forgetful(), raising=False)  # each call: a new run
    reads = []
    real = content_hash.sha256_file
    monkeypatch.setattr(content_hash, "sha256_file", lambda path: reads.append(path) or real(path))
    return reads


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_second_call_takes_the_remembered_digest(tmp_path, counted):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"one\ntwo\n")
    assert file_sha256(corpus) == sha(b"one\ntwo\n") and len(counted) == 1
    assert file_sha256(corpus) == sha(b"one\ntwo\n") and len(counted) == 1  # not read again
    assert file_sha256(tmp_path / "." / "corpus.txt") == sha(b"one\ntwo\n") and len(counted) == 1  # same file
    memo = json.loads(memo_path(corpus.resolve()).read_text())
    assert memo["path"] == str(corpus.resolve()) and memo["sha256"] == sha(b"one\ntwo\n")


def test_any_change_is_hashed_again(tmp_path, counted):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"one\ntwo\n")
    file_sha256(corpus)
    corpus.write_bytes(b"one\ntwo\nthree\n")  # grown
    assert file_sha256(corpus) == sha(b"one\ntwo\nthree\n") and len(counted) == 2
    # the same size and the old modification time put back: the inode change time still moved
    st = corpus.stat()
    corpus.write_bytes(b"ONE\ntwo\nthree\n")
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert corpus.stat().st_size == st.st_size and corpus.stat().st_mtime_ns == st.st_mtime_ns
    assert file_sha256(corpus) == sha(b"ONE\ntwo\nthree\n") and len(counted) == 3
    # replaced by another file under the same name (a new inode)
    other = tmp_path / "other.txt"
    other.write_bytes(b"ONE\ntwo\nthree\n")
    os.replace(other, corpus)
    assert file_sha256(corpus) == sha(b"ONE\ntwo\nthree\n") and len(counted) == 4


def test_a_just_written_file_is_not_remembered(tmp_path, counted, monkeypatch):
    monkeypatch.setattr(content_hash, "RACY_SECONDS", 3600.0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"fresh\n")
    assert file_sha256(corpus) == sha(b"fresh\n")
    assert file_sha256(corpus) == sha(b"fresh\n") and len(counted) == 2
    assert not memo_path(corpus.resolve()).exists()


@pytest.mark.parametrize("memo", ["{not json", "[1, 2]", '{"path": "/elsewhere", "state": {}, "sha256": "00"}'])
def test_a_foreign_or_broken_memo_is_not_trusted(tmp_path, counted, memo):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"one\n")
    path = memo_path(corpus.resolve())
    path.parent.mkdir(parents=True)
    path.write_text(memo)
    assert file_sha256(corpus) == sha(b"one\n") and len(counted) == 1
    assert json.loads(path.read_text())["sha256"] == sha(b"one\n")  # replaced by a true one


def test_the_training_cache_key_reads_the_corpus_once(tmp_path, counted):
    """A local --data file's fingerprint (the tokenised cache's key) goes through the memo."""
    from simcse_lab.data.spec import parse_spec

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a sentence\nanother one\n")
    first = parse_spec(str(corpus), default_split="train").fingerprint()
    assert parse_spec(str(corpus), default_split="train").fingerprint() == first
    assert len(counted) == 1


def _memo_for(corpus, **fields) -> dict:
    """The memo of ``corpus`` as file_sha256 writes it, with ``fields`` replaced."""
    file_sha256(corpus)
    return {**json.loads(memo_path(corpus.resolve()).read_text()), **fields}


def test_a_memo_whose_sample_differs_from_the_file_is_not_trusted(tmp_path, counted):
    """The memo is re-checked against the file itself (size and 16 sampled blocks) before its digest is used:
    a memo for the same path and state but another content (a forged or a stale one) is hashed again."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"x" * 300_000)
    forged = _memo_for(corpus, sha256=sha(b"another corpus"), sample=content_hash.sample_digest(__file__))
    memo_path(corpus.resolve()).write_text(json.dumps(forged))
    assert file_sha256(corpus) == sha(b"x" * 300_000) and len(counted) == 2
    assert json.loads(memo_path(corpus.resolve()).read_text())["sha256"] == sha(b"x" * 300_000)


def test_the_sample_reads_a_bounded_spread_of_the_file(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(1 << 20))
    before = content_hash.sample_digest(big)
    with open(big, "r+b") as f:  # the last byte: in the last sampled block
        f.seek((1 << 20) - 1)
        f.write(b"\x01")
    assert content_hash.sample_digest(big) != before
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    assert content_hash.sample_digest(small) == hashlib.sha256(b"3abc").hexdigest()


def test_a_large_memo_file_is_not_read(tmp_path, counted, monkeypatch):
    """A memo is ~300 bytes: a file of more than MEMO_MAX_BYTES at its place is ignored after a stat (the review
    read a 2 GB one whole: 4.8 GB of memory, 25 s) and replaced by a true memo."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"one\n")
    padded = json.dumps(_memo_for(corpus)) + " " * 100_000  # a memo that would be right, but too large
    memo_path(corpus.resolve()).write_text(padded)
    counted.clear()
    assert file_sha256(corpus) == sha(b"one\n") and len(counted) == 1
    assert memo_path(corpus.resolve()).stat().st_size <= content_hash.MEMO_MAX_BYTES


def test_read_afresh_takes_only_digests_this_process_read(tmp_path, counted, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"one\n")
    file_sha256(corpus)
    assert file_sha256(corpus) == sha(b"one\n") and len(counted) == 1  # from the memo
    with content_hash.read_afresh():
        assert file_sha256(corpus) == sha(b"one\n") and len(counted) == 2  # the memo is not asked
    monkeypatch.setattr(content_hash, "_READ_HERE", {})  # a run that reads the file keeps its digest
    with content_hash.read_afresh():
        file_sha256(corpus)
        assert file_sha256(corpus) == sha(b"one\n") and len(counted) == 3
