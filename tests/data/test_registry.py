"""Data registry: resolution order, checksum verification (a corrupted mirror file is refused by
name), and fetch verifying before copying anything (``toy_registry``: tests/conftest.py)."""

from __future__ import annotations

import pytest

from simcse_lab.data import registry
from simcse_lab.errors import UserError


def test_verified_load(toy_registry):
    ps = registry.load_split("toystsb", "test")
    assert len(ps) == 2
    assert registry.status("toystsb")[0] == "verified"


def test_corrupted_mirror_file_is_refused_by_name(toy_registry):
    target = toy_registry / "toy" / "sts-test.csv"
    target.write_text(target.read_text().replace("5.000", "4.000"))
    with pytest.raises(UserError, match=r"toy/sts-test\.csv: sha256 mismatch"):
        registry.load_split("toystsb", "test")
    assert registry.status("toystsb")[0] == "CORRUPT"


def test_missing_file_says_what_to_do(toy_registry, monkeypatch):
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(toy_registry.parent / "nowhere"))
    with pytest.raises(UserError, match="data fetch toystsb"):
        registry.load_split("toystsb", "test")


def test_fetch_from_dir_verifies_then_copies(toy_registry, tmp_path, monkeypatch):
    monkeypatch.delenv("SIMCSE_LAB_DATA")
    copied = registry.fetch_from_dir("toystsb", toy_registry)
    assert copied == [tmp_path / "cache" / "toy" / "sts-test.csv"]
    assert len(registry.load_split("toystsb", "test")) == 2  # now served from the cache
    # a corrupted source is refused and the good cached copy is left untouched
    (toy_registry / "toy" / "sts-test.csv").write_text("garbage\n")
    with pytest.raises(UserError, match="sha256 mismatch with the registry"):
        registry.fetch_from_dir("toystsb", toy_registry)
    assert len(registry.load_split("toystsb", "test")) == 2


def test_fetch_without_url_fails_clearly(toy_registry):
    with pytest.raises(UserError, match="cannot be downloaded: fixture"):
        registry.fetch_from_url("toystsb")


def test_unknown_dataset_and_split(toy_registry):
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        registry.info("nope")
    with pytest.raises(UserError, match="has no split 'dev'"):
        registry.load_split("toystsb", "dev")


def test_manifest_covers_the_issue_datasets():
    registry.manifest.cache_clear()
    names = set(registry.manifest())
    assert {"sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "wiki", "nli"} <= names
    for ds in registry.manifest().values():
        assert ds.license and ds.files
        assert all(h is None or len(h) == 64 for h in ds.files.values())


@pytest.mark.integration
def test_shared_mirror_verifies(mirror_env):
    registry.manifest.cache_clear()
    for name in ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "wiki", "nli"):
        assert registry.status(name)[0] == "verified", name
    counts = {t: sum(len(p) for p in registry.load_split(t, "test").values()) for t in
              ("sts12", "sts13", "sts14", "sts15", "sts16")}
    assert counts == {"sts12": 3108, "sts13": 1500, "sts14": 3750, "sts15": 3000, "sts16": 1186}
    assert [len(registry.load_split("stsb", s)) for s in ("train", "dev", "test")] == [5749, 1500, 1379]
    assert [len(registry.load_split("sickr", s)) for s in ("train", "dev", "test")] == [4500, 500, 4927]
    assert len(registry.load_split("wiki", "train")) == 11914
    assert len(registry.load_split("nli", "train")) == 6503


def test_a_corrupt_file_says_how_to_fix_it_where_it_is(toy_registry, tmp_path, monkeypatch):
    """The mirror is searched before the cache: fetching again cannot help while a corrupt mirror file is there."""
    target = toy_registry / "toy" / "sts-test.csv"
    good = target.read_text()
    target.write_text(good.replace("5.000", "4.000"))
    with pytest.raises(UserError, match="fix the file in the mirror, or unset SIMCSE_LAB_DATA") as exc:
        registry.load_split("toystsb", "test")
    assert "data fetch" not in str(exc.value)
    cached = tmp_path / "cache" / "toy" / "sts-test.csv"
    cached.parent.mkdir(parents=True)
    cached.write_text("garbage\n")
    monkeypatch.delenv("SIMCSE_LAB_DATA")
    with pytest.raises(UserError, match=r"run `simcse-lab data fetch toystsb` again"):
        registry.load_split("toystsb", "test")
