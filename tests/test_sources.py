"""The one data spec (data.sources): a file path or NAME[:SPLIT], the same for every command."""

from __future__ import annotations

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
