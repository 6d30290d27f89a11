"""Bad flags, output paths and environment are one line, exit 2, and cost nothing: they are checked before
any model is loaded (the tests make loading a model fail loudly) and before anything is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import one_line_refusal as _one_line

from simcse_lab.cli import main
from simcse_lab.errors import UserError


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
    (["index", "build", "--model", "all-MiniLM-L6-v2", "--corpus", "wiki", "--output", "OUT", "--chunk-size", "0"],
     "--chunk-size must be at least 1"),
    # train: every numeric option finite and in range (the table: tests/training/test_config.py)
    (["train", "--output-dir", "OUT", "--max-grad-norm", "-1"], "max_grad_norm must be >= 0 (0: off), got -1"),
    (["train", "--output-dir", "OUT", "--max-grad-norm", "nan"], "max_grad_norm must be >= 0 (0: off) and finite"),
    (["train", "--output-dir", "OUT", "--lr", "inf"], "lr must be > 0 and finite, got inf"),
    (["train", "--output-dir", "OUT", "--seed", "-1"], "seed must be in [0, 2**32), got -1"),
    (["train", "--output-dir", "OUT", "--seed", "5000000000"], "seed must be in [0, 2**32), got 5000000000"),
    (["train", "--output-dir", "OUT", "--mlm-weight=-inf"], "mlm_weight must be >= 0 and finite"),
    (["eval", "--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
    (["analyze", "--model", "all-MiniLM-L6-v2", "--output-dir", "OUT", "--seed", str(2**32)],
     "--seed must be in [0, 2**32)"),
    (["analyze", "--model", "all-MiniLM-L6-v2", "--output-dir", "OUT", "--whiten-k", "0"],
     "--whiten-k must be at least 1"),
    (["retrieval-eval", "--model", "all-MiniLM-L6-v2", "--threshold", "nan"], "--threshold must be"),
])
def test_numbers_are_checked_before_any_model_loads(tmp_path, capsys, no_model_loads, argv, problem):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert problem in _one_line(argv, capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written


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


@pytest.mark.parametrize("command", ["train", "index"])
def test_no_progress_silences_the_hub_datasets_bars(tmp_path, capsys, monkeypatch, no_model_loads, command):
    """Review 2 #22: a hub dataset printed datasets' "Generating train split" bars under --no-progress."""
    import datasets
    import huggingface_hub.utils

    for variable in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(variable, raising=False)  # restored (unset) after the test
    seen = []

    def load_dataset(*args, **kwargs):
        seen.append(datasets.utils.are_progress_bars_disabled())
        raise ConnectionError("offline")

    monkeypatch.setattr("datasets.load_dataset", load_dataset)
    argv = (["train", "--data", "hub:someone/corpus", "--output-dir", str(tmp_path / "run")] if command == "train"
            else ["index", "build", "--model", "all-MiniLM-L6-v2", "--corpus", "hub:someone/corpus", "--output-dir",
                  str(tmp_path / "ix")])
    try:
        err = _one_line(argv + ["--no-progress"], capsys)
    finally:
        datasets.enable_progress_bars()
        huggingface_hub.utils.enable_progress_bars()
    assert seen == [True] and "hub:someone/corpus: cannot load the hub dataset (offline)" in err


def test_tilde_is_expanded_in_every_path_option(tmp_path, capsys, monkeypatch, no_model_loads):
    """Review 2 #21: --output-dir '~' (or output_dir: ~/runs/x in a YAML config) created a directory named '~'
    in the working directory. Every path option expands it, in one place (cli.expand_user_paths; TrainConfig
    for a YAML output_dir); a query is not a path and keeps its '~'."""
    from simcse_lab.cli import build_parser, expand_user_paths

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    (work / "c.txt").write_text("a sentence\nanother one\n")
    (home / "c.yaml").write_text(f"data: {work / 'c.txt'}\noutput_dir: ~/runs/from-yaml\n")
    claimed = []

    def claim(path, kind, **_):
        claimed.append(str(path))
        raise UserError("stop here")

    monkeypatch.setattr("simcse_lab.io.claim_output_dir", claim)
    _one_line(["train", "--data", "c.txt", "--output-dir", "~/runs/x"], capsys)
    _one_line(["train", "--config", "~/c.yaml"], capsys)
    assert claimed == [str(home / "runs" / "x"), str(home / "runs" / "from-yaml")]
    monkeypatch.undo()  # the real Index (no model is loaded: the directory is refused first)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert f"{home / 'ix'}: not an index directory" in _one_line(["search", "--index", "~/ix", "--query", "q"], capsys)
    for argv, name, want in (
            (["search", "--index", "~/ix", "--query", "~ tilde", "--output", "~/o.jsonl"], "index", home / "ix"),
            (["search", "--index", "ix", "--queries", "~/q.txt"], "queries", home / "q.txt"),
            (["eval", "--output", "~/r.json"], "output", home / "r.json"),
            (["export", "--model", "m", "--format", "hf", "--output-dir", "~"], "output_dir", home),
            (["analyze", "--trajectory", "~/run", "--output-dir", "~/rep"], "trajectory", home / "run"),
            (["data", "fetch", "--from", "~/mirror"], "source", home / "mirror"),
            (["compare", "--scores", "~/a.json", "--scores", "b.json", "--output", "~/c.md"], "scores",
             [str(home / "a.json"), "b.json"]),
            (["compare", "--scores", "a.json", "--scores", "b.json", "--output", "~/c.md", "--output", "~/c.json"], "output",
             [str(home / "c.md"), str(home / "c.json")])):
        args = build_parser(argv).parse_args(argv)
        expand_user_paths(args)
        assert getattr(args, name) == (want if isinstance(want, list) else str(want)), argv
    args = build_parser(["search", "--index", "~/ix", "--query", "~ tilde"]).parse_args(["search", "--index", "~/ix",
                                                                                         "--query", "~ tilde"])
    expand_user_paths(args)
    assert args.query == "~ tilde"
    assert not (work / "~").exists()


def test_a_tilde_that_names_no_user_is_refused_not_created(tmp_path, capsys, monkeypatch, no_model_loads):
    """Hostile review of issue 18: '~nosuchuser/x' was left as it was by expanduser and created ./~nosuchuser/x."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("a sentence\nanother one\n")
    err = _one_line(["train", "--data", "c.txt", "--output-dir", "~nosuchuser-simcse/x"], capsys)
    assert "~nosuchuser-simcse/x: '~nosuchuser-simcse' names no user's home directory" in err
    (tmp_path / "c.yaml").write_text("data: c.txt\noutput_dir: ~nosuchuser-simcse/y\n")
    assert "names no user's home directory" in _one_line(["train", "--config", "c.yaml"], capsys)
    assert not any(p.name.startswith("~") for p in tmp_path.iterdir())
