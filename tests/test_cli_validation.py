"""Bad flags, output paths and environment are one line, exit 2, and cost nothing: they are checked before
any model is loaded (the tests make loading a model fail loudly) and before anything is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from simcse_lab.cli import main


@pytest.fixture
def no_model_loads(monkeypatch):
    """Loading any model (or index) is a test failure: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr("simcse_lab.modeling.encoder.Encoder", refuse)
    monkeypatch.setattr("simcse_lab.modeling.embedder.load_embedder", refuse)
    if "simcse_lab.training.loop" in sys.modules:  # imported by an earlier test: it holds its own name for it
        monkeypatch.setattr("simcse_lab.training.loop.load_embedder", refuse)
    monkeypatch.setattr("simcse_lab.search.index.Index", refuse)


def _one_line(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def places(tmp_path):
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "base.txt").write_text("a file\n")
    return tmp_path


@pytest.mark.parametrize("output, problem", [("existing_dir", "is an existing directory"),
                                             ("base.txt/res.json", "is not a directory"),
                                             (".", "names a directory"), ("..", "names a directory")])
def test_output_files_are_checked_before_any_model_loads(places, capsys, no_model_loads, output, problem,
                                                        monkeypatch):
    monkeypatch.chdir(places)
    assert problem in _one_line(["eval", "--output", output], capsys)
    assert problem in _one_line(["retrieval-eval", "--model", "all-MiniLM-L6-v2", "--output", output], capsys)
    (places / "q.txt").write_text("a query\n")
    assert problem in _one_line(["search", "--index", "ix", "--queries", "q.txt", "--output", output], capsys)
    assert (places / "existing_dir").is_dir() and (places / "base.txt").read_text() == "a file\n"


@pytest.mark.parametrize("argv, problem", [
    (["eval", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["eval", "--max-length", "-1"], "--max-length must be at least 1"),
    (["index", "build", "--model", "all-MiniLM-L6-v2", "--corpus", "wiki", "--output", "OUT", "--batch-size", "0"],
     "--batch-size must be at least 1"),
])
def test_numbers_are_checked_before_any_model_loads(tmp_path, capsys, no_model_loads, argv, problem):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert problem in _one_line(argv, capsys)


@pytest.mark.parametrize("command", ["index", "train"])
def test_a_malformed_world_size_is_one_line(tmp_path, capsys, monkeypatch, no_model_loads, command):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    argv = (["index", "build", "--model", "all-MiniLM-L6-v2", "--corpus", "wiki", "--output", str(tmp_path / "ix")]
            if command == "index" else ["train", "--output-dir", str(tmp_path / "run")])
    assert "WORLD_SIZE='abc'" in _one_line(argv, capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output", [".", ".."])
def test_export_and_index_refuse_dot_outputs(tiny_bert, tmp_path, capsys, monkeypatch, output):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    err = _one_line(["export", "--model", str(tiny_bert), "--format", "hf", "--pooler", "avg", "--output", output,
                     "--overwrite"], capsys)
    assert "'.' or '..'" in err
    (work / "c.txt").write_text("one sentence\n")
    err = _one_line(["index", "build", "--model", str(tiny_bert), "--corpus", "c.txt", "--output", output,
                     "--overwrite", "--no-progress"], capsys)
    assert "'.' or '..'" in err
    assert sorted(p.name for p in work.iterdir()) == ["c.txt", "notes.txt"] and (tmp_path / "a").is_dir()


def test_train_output_dir_that_is_a_file(tmp_path, capsys, no_model_loads):
    (tmp_path / "run").write_text("not a directory")
    assert "exists and is not a directory" in _one_line(["train", "--output-dir", str(tmp_path / "run")], capsys)
    assert (tmp_path / "run").read_text() == "not a directory"


@pytest.mark.parametrize("pooler", [None, "avg"])
def test_a_corrupt_modules_json_is_named(tiny_bert, tmp_path, capsys, pooler):
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    (model / "modules.json").write_text('[{"idx": 0,\n')
    err = _one_line(["eval", "--model", str(model), "--tasks", "stsb"] + (["--pooler", pooler] if pooler else []),
                    capsys)
    assert f"{model / 'modules.json'}: not valid JSON" in err
    (model / "modules.json").write_text(json.dumps({"not": "a list"}))
    err = _one_line(["eval", "--model", str(model), "--tasks", "stsb"] + (["--pooler", pooler] if pooler else []),
                    capsys)
    assert f"{model / 'modules.json'}: not a sentence-transformers module list" in err


def test_a_parquet_column_that_is_not_text_is_refused_before_any_model_loads(tmp_path, capsys, no_model_loads):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": list(range(8)), "other": [f"sentence {i}" for i in range(8)]}), data)
    err = _one_line(["train", "--data", str(data), "--columns", "text", "--output-dir", str(tmp_path / "run")], capsys)
    assert f"{data}: column 'text' holds int64, not text" in err
    assert not (tmp_path / "run").exists()


def test_export_quantize_with_another_format_is_refused_before_torch_is_imported(tmp_path):
    """The refusal costs nothing: not even the import of torch (seconds) that loading a model starts with."""
    code = ("import sys\nfrom simcse_lab.cli import main\n"
            "try:\n    main(['export', '--model', 'all-MiniLM-L6-v2', '--format', 'hf', '--quantize', 'int8',"
            " '--output-dir', sys.argv[1]])\nexcept SystemExit as exc:\n    print(exc.code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert "--quantize int8 applies to --format onnx only" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
