"""An index directory is verified before it answers: texts.jsonl against texts_sha256, index.faiss against
its sha256, faiss class, metric and dimension; a swapped, damaged or missing file is one line, exit 2,
never another corpus's sentences."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from simcse_lab.cli import main


@pytest.fixture(scope="module")
def indexes(tiny_bert, tmp_path_factory):
    """Two flat indexes of 20 sentences each, built with the same model: ``a`` and ``b``."""
    from simcse_lab.search.index import IndexBuild, build_index

    root = tmp_path_factory.mktemp("indexes")
    for name, topic in (("a", "a YMCA building in South Australia"), ("b", "a river flowing through the valley")):
        corpus = root / f"{name}.txt"
        corpus.write_text("".join(f"{topic}, fact number {i}\n" for i in range(20)))
        build_index(IndexBuild(str(tiny_bert), str(corpus), root / name, pooler="avg", precision="fp32", progress=False))
    return root


def _copy(indexes, tmp_path, name: str = "a"):
    target = tmp_path / f"copy-{name}"
    shutil.copytree(indexes / name, target)
    return target


def _search(index_dir, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(index_dir), "--query", "YMCA building", "-k", "3"])
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _legacy(index_dir) -> None:
    """Drop what 0.1.0 manifests did not record (index.faiss checksum and class)."""
    manifest = json.loads((index_dir / "manifest.json").read_text())
    for key in ("index_sha256", "index_class"):
        manifest.pop(key)
    (index_dir / "manifest.json").write_text(json.dumps(manifest))


def test_an_intact_index_answers_and_records_its_checksums(indexes, tmp_path, capsys):
    manifest = json.loads((indexes / "a" / "manifest.json").read_text())
    assert manifest["index_class"] == "IndexFlatIP" and len(manifest["index_sha256"]) == 64
    code, out, _ = _search(_copy(indexes, tmp_path), capsys)
    assert code == 0 and "YMCA" in out
    legacy = _copy(indexes, tmp_path, "b")
    _legacy(legacy)
    assert _search(legacy, capsys)[0] == 0  # 0.1.0 indexes still work (type, dimension, texts still checked)


@pytest.mark.parametrize("swapped", ["texts.jsonl", "index.faiss"])
def test_a_file_swapped_from_another_index_is_refused(indexes, tmp_path, capsys, swapped):
    target = _copy(indexes, tmp_path)
    shutil.copy(indexes / "b" / swapped, target / swapped)
    code, out, err = _search(target, capsys)
    assert code == 2 and err.count("\n") == 1 and f"{target / swapped}: sha256 differs" in err
    assert "river" not in out


def test_an_index_of_another_type_or_dimension_is_refused(indexes, tmp_path, capsys):
    import faiss

    target = _copy(indexes, tmp_path)
    _legacy(target)  # no checksum to catch it: the class check must
    flat = faiss.read_index(str(target / "index.faiss"))
    vectors = flat.reconstruct_n(0, flat.ntotal)
    hnsw = faiss.IndexHNSWFlat(flat.d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(vectors)
    faiss.write_index(hnsw, str(target / "index.faiss"))
    code, _, err = _search(target, capsys)
    assert code == 2 and err.count("\n") == 1 and "holds a IndexHNSWFlat, manifest.json describes 'IndexFlatIP'" in err
    other = faiss.IndexFlatIP(flat.d * 2)
    other.add(np.tile(vectors, 2))
    faiss.write_index(other, str(target / "index.faiss"))
    code, _, err = _search(target, capsys)
    assert code == 2 and err.count("\n") == 1 and "dimension 64" in err


@pytest.mark.parametrize("damage", ["truncated", "empty", "crafted"])
@pytest.mark.parametrize("legacy", [False, True])
def test_a_damaged_index_faiss_is_one_line(indexes, tmp_path, capsys, damage, legacy):
    target = _copy(indexes, tmp_path)
    if legacy:
        _legacy(target)  # the file reaches faiss' reader
    path = target / "index.faiss"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                      "crafted": b"IxFI" + b"\xff" * 64}[damage])
    code, _, err = _search(target, capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and str(path) in err


def test_a_missing_texts_file_is_one_line(indexes, tmp_path, capsys):
    target = _copy(indexes, tmp_path)
    (target / "texts.jsonl").unlink()
    code, _, err = _search(target, capsys)
    assert code == 2 and err.count("\n") == 1 and f"{target / 'texts.jsonl'}: missing" in err


def test_the_model_is_recorded_absolute_and_checked_by_content(tiny_bert, tmp_path, capsys, monkeypatch):
    """Review 2 #12: an index recorded its model as a path relative to where it was built: from another
    directory the search failed misleadingly, asked the hub, or opened another local model of that name. The
    manifest keeps the absolute path and the model's content identity; a missing or different model is refused
    in one line before it loads, and a moved model can be named with --model."""
    from simcse_lab.search.index import IndexBuild, build_index

    built_in, elsewhere = tmp_path / "built-in", tmp_path / "elsewhere"
    built_in.mkdir()
    elsewhere.mkdir()
    shutil.copytree(tiny_bert, built_in / "m")
    (built_in / "c.txt").write_text("".join(f"a YMCA building, fact number {i}\n" for i in range(20)))
    monkeypatch.chdir(built_in)
    build_index(IndexBuild("m", "c.txt", built_in / "ix", pooler="avg", precision="fp32", progress=False))
    manifest = json.loads((built_in / "ix" / "manifest.json").read_text())
    assert manifest["path"] == str(built_in / "m") and manifest["path_as_given"] == "m"
    assert manifest["model_local"] is True and len(manifest["model_sha256"]) == 64

    monkeypatch.chdir(elsewhere)
    (elsewhere / "m").mkdir()  # another "m" here, which the relative path would have opened
    (elsewhere / "m" / "config.json").write_text("{}")
    code, out, err = _search(built_in / "ix", capsys)
    assert code == 0 and "YMCA" in out, err

    shutil.move(built_in / "m", elsewhere / "moved")
    code, _, err = _search(built_in / "ix", capsys)
    assert code == 2 and f"the model of this index, {built_in / 'm'}, is not found" in err
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(built_in / "ix"), "--query", "YMCA", "--model", "moved"])
    assert exc.value.code == 0 and "YMCA" in capsys.readouterr().out

    shutil.copytree(elsewhere / "moved", built_in / "m")
    with open(built_in / "m" / "config.json", "a") as f:
        f.write("\n")  # the same path, other content
    code, _, err = _search(built_in / "ix", capsys)
    assert code == 2 and f"the model at {built_in / 'm'} is not the one this index was built with" in err
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(built_in / "ix"), "--query", "YMCA", "--model", str(built_in / "m")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "refusing to search it with" in err and "another model (its files differ)" in err
