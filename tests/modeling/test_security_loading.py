"""Model folders are data: none runs its own code (not even after a "y" on stdin), not through eval, not
through the model an index manifest names; every loader call lives in modeling/loading.py; and loading is
quiet (no "Loading weights" bars, no LOAD REPORT table)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "simcse_lab"


def _cli(args, tmp_path, stdin: str = "y\n") -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "hf-modules"),
           "PYTHONPATH": str(PACKAGE.parent)}
    return subprocess.run([sys.executable, "-m", "simcse_lab", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300)


EVIL_MODULE = """from pathlib import Path
Path({pwned!r}).write_text("code from the model folder ran")
from transformers import BertConfig, BertModel, BertTokenizerFast


class EvilConfig(BertConfig):
    model_type = "evil-bert"


class EvilModel(BertModel):
    config_class = EvilConfig


class EvilTokenizer(BertTokenizerFast):
    pass
"""


def _hostile_model(tiny_bert, folder: Path, pwned: Path, config_file: str) -> Path:
    """A copy of the tiny BERT whose classes exist only in its own module (which writes ``pwned`` when imported),
    named by ``auto_map`` in ``config_file``: loading it needs the folder's code."""
    shutil.copytree(tiny_bert, folder)
    (folder / "modeling_evil.py").write_text(EVIL_MODULE.format(pwned=str(pwned)))
    config = json.loads((folder / config_file).read_text())
    if config_file == "config.json":
        config.update(model_type="evil-bert", auto_map={"AutoConfig": "modeling_evil.EvilConfig",
                                                        "AutoModel": "modeling_evil.EvilModel"})
    else:
        config.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": [None, "modeling_evil.EvilTokenizer"]})
    (folder / config_file).write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_eval_refuses_a_model_folder_that_would_run_its_own_code(tiny_bert, tmp_path, config_file):
    pwned = tmp_path / "PWNED"
    model = _hostile_model(tiny_bert, tmp_path / "model", pwned, config_file)
    proc = _cli(["eval", "--model", str(model), "--pooler", "avg", "--tasks", "stsb"], tmp_path)
    assert not pwned.exists(), "the model folder's code ran"
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr[-2000:]
    assert f"{model / config_file}: the model asks to run its own code" in proc.stderr


def test_sentence_transformers_modules_outside_the_library_are_refused(tiny_bert, tmp_path):
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.loading import check_local_model

    model = tmp_path / "st"
    shutil.copytree(tiny_bert, model)
    (model / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil.Module"}]))
    with pytest.raises(UserError, match=r"modules\.json: module 'evil\.Module' is not a sentence-transformers class"):
        check_local_model(str(model))


def test_search_refuses_an_index_whose_manifest_names_such_a_folder(tiny_bert, tmp_path):
    from simcse_lab.search.index import IndexBuild, build_index

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"sentence {i} about a dog in the park\n" for i in range(12)))
    build_index(IndexBuild(str(tiny_bert), str(corpus), tmp_path / "ix", pooler="avg", precision="fp32", progress=False))
    pwned = tmp_path / "PWNED"
    model = _hostile_model(tiny_bert, tmp_path / "model", pwned, "config.json")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    manifest["path"] = str(model)
    # the hostile manifest also carries the folder's content identity, so the loader's own check is what refuses
    from simcse_lab.modeling.resolve import model_identity

    manifest["model_sha256"] = model_identity(model)
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps(manifest))
    proc = _cli(["search", "--index", str(tmp_path / "ix"), "--query", "a dog"], tmp_path)
    assert not pwned.exists(), "the model folder named by the manifest ran its code"
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "auto_map" in proc.stderr


def test_every_loader_call_is_in_loading_py():
    """transformers / sentence-transformers loaders are called only by simcse_lab/modeling/loading.py, which pins
    trust_remote_code=False and checks local folders first."""
    loaders = {"from_pretrained", "SentenceTransformer", "Transformer"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "loading.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if name in loaders:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert found == []


def test_loading_prints_no_progress_bars_and_no_load_report(tmp_path):
    """A BERT saved without its pooler is what simcse-lab saves (best/, final/): transformers reports the
    missing pooler as a LOAD REPORT table, and draws "Loading weights" / "Writing model shards" bars."""
    from conftest import make_tiny_bert

    from transformers import BertModel

    model = make_tiny_bert(tmp_path / "bert")
    BertModel.from_pretrained(model, add_pooling_layer=False).save_pretrained(model)
    proc = _cli(["export", "--model", str(model), "--pooler", "avg", "--format", "sentence-transformers",
                 "--output", str(tmp_path / "export")], tmp_path, stdin="")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "verified on reload" in output
    for noise in ("LOAD REPORT", "Loading weights", "Writing model shards", "MISSING"):
        assert noise not in output, output
