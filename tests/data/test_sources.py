"""The one data spec (data.sources): a file path, NAME[:SPLIT], a saved or hub dataset, the same for every command."""

from __future__ import annotations

import hashlib
import json
from unittest import mock

import pytest

from conftest import FIXTURES

from simcse_lab.data import sources
from simcse_lab.data.readers import PairSet
from simcse_lab.errors import InputError, UserError


def test_files_are_read_by_their_suffix():
    text = sources.resolve(str(FIXTURES / "text_toy.txt"))
    assert (text.kind, text.name, text.rows) == ("text", None, ["The first sentence.", "The second one."])
    triplets = sources.resolve(str(FIXTURES / "nli_toy.csv"))
    assert triplets.kind == "nli_csv" and triplets.rows[1] == ("A dog, brown, runs.", "A dog runs.", "A cat sleeps.")
    assert triplets.file() == FIXTURES / "nli_toy.csv"


def test_dataset_names_with_and_without_a_split(toy_registry):
    assert sources.resolve("toytext").split == "train"                    # no split, no default: train
    assert sources.resolve("toytext", "dev").rows == ["a dev sentence"]   # the caller's default split
    explicit = sources.resolve("toytext:train", "dev")                    # NAME:SPLIT wins over the default
    assert explicit.rows == ["first train sentence", "second train sentence"]
    assert explicit.file() == toy_registry / "toy" / "train.txt"
    pairs = sources.resolve("toystsb")                                    # no train split: the first one
    assert pairs.split == "test" and isinstance(pairs.rows, PairSet)
    assert sources.sentences(pairs.rows) == pairs.rows.sent1 + pairs.rows.sent2


def test_bad_specs_are_one_line_errors_before_reading(toy_registry, tmp_path):
    with pytest.raises(InputError, match="missing.txt: no such file"):
        sources.resolve(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="no such file"):
        sources.resolve("./corpus")  # looks like a path: never taken for a dataset name
    with pytest.raises(UserError, match="'nope' is neither a file nor a registry dataset"):
        sources.resolve("nope")
    with pytest.raises(UserError, match="dataset 'toytext' has no split 'test'; it has dev, train"):
        sources.resolve("toytext:test")


def test_sentences_flatten_every_kind():
    assert sources.sentences(["a", "b", "a"]) == ["a", "b", "a"]
    assert sources.sentences([("a", "b", "c"), ("d", "e", "f")]) == list("abcdef")
    subsets = {"x": PairSet("x", ["a"], ["b"], [1.0]), "y": PairSet("y", ["c"], ["d"], [2.0])}
    assert sources.sentences(subsets) == list("abcd")


def test_every_kind_of_the_data_spec_reads_for_the_other_commands(tmp_path):
    """analyze / index / retrieval read jsonl, parquet, tsv and saved datasets through the same spec."""
    import datasets

    from simcse_lab.analysis.inputs import load_corpus, load_sentence_data
    from simcse_lab.search.index import load_corpus as index_corpus

    rows = [{"sentence1": f"first {i}", "sentence2": f"second {i}", "score": i} for i in range(4)]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = sources.resolve(str(jsonl))  # sentence1,sentence2 by name: (sentence, positive) pairs
    assert pairs.kind == "pairs" and pairs.rows[2] == ("first 2", "second 2")
    data = load_sentence_data(str(jsonl))
    assert data.sentences[:2] == ["first 0", "second 0"] and len(data.pairs) == 4
    parquet = tmp_path / "c.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    assert load_corpus(str(parquet), columns=["sentence2"]) == [f"second {i}" for i in range(4)]
    saved = tmp_path / "saved"
    datasets.Dataset.from_list([{"text": f"line {i}", "n": i} for i in range(3)]).save_to_disk(str(saved))
    sentences, info = index_corpus(str(saved))
    assert sentences == ["line 0", "line 1", "line 2"] and info["corpus"] == f"{saved} [text]"
    assert info["corpus_sha256"] == hashlib.sha256(b"line 0\nline 1\nline 2\n").hexdigest()
    tsv = tmp_path / "c.tsv"
    tsv.write_text("id\ttext\n1\tone\n2\ttwo\n")
    assert index_corpus(str(tsv))[0] == ["one", "two"]
    with pytest.raises(UserError, match="--corpus needs one sentence a row"):
        index_corpus(str(jsonl))


def test_strictness_is_kept_for_every_kind(tmp_path):
    import datasets

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": ""}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: 'text' must be a non-empty string"):
        sources.resolve(str(bad)).rows
    saved = tmp_path / "saved"
    datasets.Dataset.from_list([{"text": "fine"}, {"text": None}]).save_to_disk(str(saved))
    with pytest.raises(UserError, match="row 1: column 'text' is empty or missing"):
        sources.resolve(str(saved)).rows
    numbers = tmp_path / "numbers"
    datasets.Dataset.from_list([{"n": 1}, {"n": 2}]).save_to_disk(str(numbers))
    with pytest.raises(UserError, match="column 'n' holds int64, not text"):
        sources.resolve(str(numbers)).rows


def test_hub_specs_through_the_datasets_boundary():
    import datasets

    fake = datasets.Dataset.from_list([{"anchor": "a", "positive": "b", "negative": "c"}])
    with mock.patch("datasets.load_dataset", return_value=fake) as load:
        source = sources.resolve("hub:someone/nli:triplet@dev")
        assert source.kind == "nli_csv" and source.rows == [("a", "b", "c")]
    load.assert_called_with("someone/nli", "triplet", split="dev")


def test_a_known_column_holding_an_object_is_refused_not_passed_over(tmp_path):
    """Review 2 #15: {"text": {...}, "other": "..."} rows trained silently on 'other' (only string keys were
    columns). A known column name with a non-string value is a file:line error, before any model loads."""
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.examples import check_training_data

    path = tmp_path / "n.jsonl"
    path.write_text("".join(json.dumps({"text": {"i": "x"}, "other": f"sentence {i}"}) + "\n" for i in range(8)))
    with pytest.raises(InputError, match=r"n\.jsonl:1: 'text' must be a string, found a JSON object"):
        sources.resolve(str(path))
    with pytest.raises(InputError, match=r"n\.jsonl:1: 'text' must be a string, found a JSON object"):
        check_training_data(TrainConfig(data=str(path)), fetch=False)
    # naming the string column still works; and a list where a sentence is expected is refused the same way
    assert sources.resolve(str(path), columns=["other"]).rows[:2] == ["sentence 0", "sentence 1"]
    path.write_text(json.dumps({"sentence": "ok", "id": 3}) + "\n" + json.dumps({"sentence": ["a"], "id": 4}) + "\n")
    with pytest.raises(InputError, match=r"n\.jsonl:2: 'sentence' must be a string, found a JSON array"):
        sources.resolve(str(path)).rows


@pytest.mark.parametrize("local", ["file", "directory"])
def test_a_registry_name_that_is_also_a_local_path_is_ambiguous(toy_registry, tmp_path, monkeypatch, local):
    """Review 2 #16: a file ./wiki silently shadowed the registry's wiki. Both spellings are named instead,
    and each of them works."""
    from simcse_lab.data.spec import parse_spec

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if local == "file":
        (work / "toytext").write_text("a local sentence\n")
    else:
        (work / "toytext").mkdir()
        (work / "toytext" / "notes.txt").write_text("mine\n")
    with pytest.raises(UserError, match=rf"'toytext' names both a local {local} and the registry dataset "
                                        rf"'toytext': write \./toytext for the {local}, or registry:toytext"):
        sources.resolve("toytext")
    assert sources.resolve("toytext:dev").rows == ["a dev sentence"]  # no local path of that name
    assert sources.resolve("registry:toytext").rows == ["first train sentence", "second train sentence"]
    assert sources.resolve("registry:toytext:dev").rows == ["a dev sentence"]
    assert parse_spec("registry:toytext").text == "registry:toytext"
    if local == "file":
        assert sources.resolve("./toytext").rows == ["a local sentence"]
    with pytest.raises(UserError, match="registry:nope: no registry dataset 'nope'"):
        parse_spec("registry:nope")


@pytest.mark.parametrize("spec", ["hub:./localds", "hub:../../../etc", "hub:someone/..", "hub:/etc", "hub:nli",
                                  "hub:~/x", "hub:a--b/c"])
def test_hub_takes_only_hub_ids(tmp_path, monkeypatch, spec):
    """Review 2 #22: hub:./dir loaded a local directory through datasets (past the strict readers), and
    hub:../../../etc made datasets scan /etc. Only OWNER/NAME ids reach datasets.load_dataset."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "localds").mkdir()
    (tmp_path / "localds" / "a.csv").write_text("text\nhello\n")
    with mock.patch("datasets.load_dataset", side_effect=AssertionError("datasets was asked")):
        with pytest.raises(UserError, match="hub: takes a hub dataset id OWNER/NAME"):
            sources.resolve(spec)


def test_a_model_spec_shaped_like_a_path_is_not_a_hub_id():
    """The same hub id rule for --model (one definition, data.spec.is_hub_id)."""
    from simcse_lab.modeling.resolve import resolve

    for spec in ("someone/..", "a--b/c", "x/y/z"):
        with pytest.raises(UserError, match="no such model directory, and not a hub id"):
            resolve(spec)
    assert resolve("someone/some-model").path == "someone/some-model"


@pytest.mark.parametrize("kind", ["fifo", "device", "link to a device"])
def test_a_path_that_is_not_a_regular_file(tmp_path, kind):
    """Review 2 #19: /dev/zero, a FIFO or a link to /dev/zero said 'no such file'."""
    import os

    path = tmp_path / "data"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = "/dev/zero"
    else:
        path.symlink_to("/dev/zero")
    what = "a FIFO" if kind == "fifo" else "a character device"
    with pytest.raises(InputError, match=rf"{path}: not a regular file \({what}\)"):
        sources.resolve(str(path))


def test_a_huge_header_is_listed_short(tmp_path):
    """Review 2 #18: a header of a million columns gave a 9 MB error line: the first 20 and the count."""
    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(100_000)]
    path.write_text(",".join(names) + "\n" + ",".join("x" for _ in names) + "\n")
    with pytest.raises(UserError) as err:
        sources.resolve(str(path))
    message = str(err.value)
    assert "cannot tell which columns" in message and "c19, ... (100000 in all)" in message
    assert "c20" not in message and len(message) < 500
    with pytest.raises(UserError) as err:
        sources.resolve(str(path), columns=["nope"])
    assert "(100000 in all)" in str(err.value) and len(str(err.value)) < 500
    path.write_text(",".join(["a"] * 100_000) + "\n")  # repeated names
    with pytest.raises(InputError) as err:
        sources.resolve(str(path))
    assert "header names must be distinct" in str(err.value) and len(str(err.value)) < 500
