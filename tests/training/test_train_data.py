"""``train --data`` through the one spec and the tokenised loader: every local kind trains on exactly the rows it
holds (the same triplets as a .jsonl or a .csv, the same sentences as a saved dataset or a .txt give the same
losses), and what cannot run offline stops at once, in one line, before any model loads."""

from __future__ import annotations

import json
import time
import urllib.error
from unittest import mock

import pytest

from conftest import random_sentences, write_lines

from simcse_lab.cli import main
from simcse_lab.training.config import TrainConfig


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train(tmp_path, tiny_bert, name, data, **kw):
    from simcse_lab.training.loop import train

    cfg = dict(model=str(tiny_bert), data=str(data), pooler="avg", batch_size=8, max_seq_len=16, lr=1e-3,
               max_steps=2, eval_steps=0, test_tasks="none", precision="fp32", log_steps=1, progress=False,
               output_dir=str(tmp_path / name))
    summary = train(TrainConfig(**{**cfg, **kw}))
    assert summary["steps"] == 2
    return _losses(tmp_path / name)


def test_triplets_from_jsonl_train_exactly_as_from_csv(tmp_path, tiny_bert):
    sentences = random_sentences(48, seed=3)
    triplets = [sentences[i:i + 3] for i in range(0, 48, 3)]
    csv = write_lines(tmp_path / "t.csv", ["sent0,sent1,hard_neg"] + [",".join(t) for t in triplets])
    jsonl = write_lines(tmp_path / "t.jsonl", [json.dumps({"id": i, "anchor": a, "positive": p, "negative": n})
                                               for i, (a, p, n) in enumerate(triplets)])
    from_csv = _train(tmp_path, tiny_bert, "csv", csv, objective="sup")
    from_jsonl = _train(tmp_path, tiny_bert, "jsonl", jsonl, objective="sup")  # anchor,positive,negative by name
    assert from_jsonl == from_csv and len(set(from_csv)) == 2


def test_a_saved_dataset_with_named_columns_trains_as_its_text_file(tmp_path, tiny_bert):
    import datasets

    sentences = random_sentences(32, seed=4)
    text = write_lines(tmp_path / "s.txt", sentences)
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"label": list(range(32)), "body": sentences, "title": ["t"] * 32}).save_to_disk(saved)
    from_text = _train(tmp_path, tiny_bert, "txt", text, objective="esimcse")
    from_saved = _train(tmp_path, tiny_bert, "saved", saved, objective="esimcse", columns="body")
    assert from_saved == from_text


def test_without_columns_an_ambiguous_source_is_one_line(tmp_path, tiny_bert, capsys):
    import datasets

    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": ["a b"] * 8, "title": ["t"] * 8}).save_to_disk(saved)
    code, err = _cli(["train", "--model", str(tiny_bert), "--data", str(saved), "--output-dir", str(tmp_path / "o")],
                     capsys)
    assert code == 2 and "cannot tell which columns hold one sentence column among body, title" in err
    code, err = _cli(["train", "--model", str(tiny_bert), "--data", str(saved), "--columns", "nope",
                      "--output-dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "no column nope (columns: body, title)" in err
    assert not (tmp_path / "o").exists()


def _cli(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return exc.value.code, err


@pytest.fixture
def offline_registry(tmp_path, monkeypatch):
    """No mirror, an empty cache, and every download failing as it does without a network."""
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(tmp_path / "no-mirror"))
    monkeypatch.setenv("SIMCSE_LAB_CACHE", str(tmp_path / "cache"))
    failing = mock.patch("urllib.request.urlopen", side_effect=urllib.error.URLError("Name or service not known"))
    with failing:
        yield


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the data was checked")

    monkeypatch.setattr("simcse_lab.modeling.embedder.load_embedder", refuse)


@pytest.mark.parametrize("argv", [
    ["--data", "wiki1m"],
    ["--config", "configs/paper/unsup-bert-base.yaml"],
    ["--config", "configs/paper/esimcse-bert-base.yaml"],
    ["--config", "configs/paper/sup-bert-base.yaml"],
])
def test_download_only_data_offline_is_one_line_within_seconds(tmp_path, capsys, offline_registry, no_model_loads,
                                                              argv):
    start = time.perf_counter()
    code, err = _cli(["train", *argv, "--output-dir", str(tmp_path / "run")], capsys)
    assert time.perf_counter() - start < 10
    assert code == 2 and err.startswith("simcse-lab: error: cannot download https://")
    assert "SIMCSE_LAB_DATA" in err and "data fetch" in err
    assert not (tmp_path / "run").exists() and not list((tmp_path / "cache").rglob("*.part"))


def test_a_hub_model_that_cannot_load_offline_is_one_line_after_the_data_check(tmp_path, capsys, no_model_loads,
                                                                             monkeypatch):
    from huggingface_hub import constants

    data = write_lines(tmp_path / "corpus.txt", random_sentences(16))
    model = "simcse-lab-tests/no-such-model"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    code, err = _cli(["train", "--model", model, "--data", str(data), "--output-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and f"cannot load model {model!r}" in err and time.perf_counter() - start < 10
    # the data is checked first: a bad --data is what is reported, whatever the model
    code, err = _cli(["train", "--model", model, "--data", str(tmp_path / "missing.txt"),
                      "--output-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "missing.txt: no such file" in err
    # online mode on a machine without a network: the hub's host does not resolve, no minute of retries
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with mock.patch("socket.getaddrinfo", side_effect=OSError(-2, "Name or service not known")):
        start = time.perf_counter()
        code, err = _cli(["train", "--model", model, "--data", str(data), "--output-dir", str(tmp_path / "run")],
                         capsys)
    assert code == 2 and "huggingface.co is not reachable (DNS: Name or service not known)" in err
    assert time.perf_counter() - start < 10 and not (tmp_path / "run").exists()
