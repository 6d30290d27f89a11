"""``eval --mteb``: mteb's own evaluator on simcse-lab's encoders and data (the mteb extra).

The local mteb tasks (SimCSELab-*-SentEval) hold the pairs ``simcse-lab eval`` scores, so mteb's STS score must
equal simcse-lab's (same text, same cosine, same Spearman); the result files are mteb's own (read back by mteb's
loader); two processes under ``accelerate launch`` give one process's scores; a missing extra, an unknown task,
a hub task offline and clashing flags are one line, exit 2, before any model loads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import free_port, one_line_refusal as one_line

from simcse_lab.cli import main

needs_mteb = pytest.mark.skipif(importlib.util.find_spec("mteb") is None,
                                reason='mteb is not installed (pip install "simcse-lab[mteb]", also in the dev extra)')
LOCAL = "SimCSELab-STSB-SentEval,SimCSELab-SICKR-SentEval"


def succeeds(argv) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0


def subset_pairs(monkeypatch, n: int) -> None:
    """Both paths read their pairs through sts.load_task: keep the first ``n`` pairs of each subset."""
    from simcse_lab.data.readers import PairSet
    from simcse_lab.evaluation import sts

    full = sts.load_task

    def first(task, split):
        return {name: PairSet(ps.name, ps.sent1[:n], ps.sent2[:n], ps.scores[:n]) for name, ps in full(task, split).items()}

    monkeypatch.setattr(sts, "load_task", first)


def both_paths(model: str, tmp_path, capsys, extra=()) -> tuple[dict, dict]:
    """(simcse-lab eval's --output JSON, eval --mteb's --output JSON) on STS-B and SICK-R test."""
    common = ["eval", "--model", model, "--precision", "fp32", "--no-progress", *extra]
    succeeds([*common, "--tasks", "stsb,sickr", "--output", str(tmp_path / "sts.json")])
    succeeds([*common, "--mteb", LOCAL, "--mteb-results", str(tmp_path / "mteb"), "--output", str(tmp_path / "mteb.json")])
    capsys.readouterr()
    return (json.loads((tmp_path / "sts.json").read_text()), json.loads((tmp_path / "mteb.json").read_text()))


def mteb_spearman(result: dict, task: str) -> float:
    return 100 * result["tasks"][task]["splits"]["test"]["main_score"]


def test_without_the_extra_eval_mteb_is_one_line_naming_it(monkeypatch, capsys, no_model_loads):
    monkeypatch.setitem(sys.modules, "mteb", None)  # `import mteb` raises ImportError, as when it is not installed
    err = one_line(["eval", "--mteb", "SimCSELab-STSB-SentEval"], capsys)
    assert 'pip install "simcse-lab[mteb]"' in err


@needs_mteb
@pytest.mark.parametrize("argv, problem", [
    (["--mteb", "NoSuchTask"], "--mteb NoSuchTask: neither a task nor a benchmark of mteb"),
    (["--mteb", "STSBenchmark"], "mteb task STSBenchmark: its data (mteb/stsbenchmark-sts) cannot be loaded"),
    (["--mteb", "MTEB(eng, v2)"], "cannot be loaded"),  # a benchmark: its first task's data, offline
    (["--mteb", "SimCSELab-STSB-SentEval", "--tasks", "stsb"], "--mteb replaces the STS suite: drop --tasks"),
    (["--mteb", "SimCSELab-STS12-SentEval", "--split", "dev"], "SimCSELab-STS12-SentEval has only a test split"),
    (["--mteb", "STSBenchmark", "--split", "dev"], "--split dev applies to simcse-lab's local tasks"),
    (["--mteb", "SimCSELab-STSB-SentEval", "--mteb-name", "no slash"], "--mteb-name 'no slash'"),
    (["--mteb-results", "r"], "--mteb-results and --mteb-name apply to --mteb only"),
])
def test_bad_mteb_input_is_one_line_before_any_model_loads(argv, problem, mirror_env, monkeypatch, capsys,
                                                           no_model_loads):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert problem in one_line(["eval", *argv], capsys)


@needs_mteb
def test_local_tasks_hold_simcse_labs_pairs_and_names_of_their_own(mirror_env):
    import mteb

    from simcse_lab.evaluation import mteb_tasks, sts

    tasks = mteb_tasks.get_tasks("SimCSELab-STS-SentEval")
    assert [t.metadata.name for t in tasks] == list(mteb_tasks.LOCAL)
    for name in mteb_tasks.LOCAL:
        with pytest.raises(KeyError):  # not one of mteb's own tasks
            mteb.get_task(name)
    sts13 = mteb_tasks.local_task("SimCSELab-STS13-SentEval")
    mteb_tasks.load_tasks([sts13])
    data = sts13.dataset["default"]["test"]
    subsets = sts.load_task("sts13", "test")  # FNWN, headlines, OnWN concatenated: --aggregate all
    assert data["sentence1"] == [s for ps in subsets.values() for s in ps.sent1]
    assert data["score"] == pytest.approx([g for ps in subsets.values() for g in ps.scores])
    assert len(data) == sum(len(ps) for ps in subsets.values()) == 1500  # STS13 without SMT


class CountingEncoder:
    """A SentenceEncoder whose vector of a text is fixed by the text; records what it was asked to encode."""

    dim = 4

    def __init__(self):
        self.calls = []

    def encode(self, sentences, progress=False):
        self.calls.append(list(sentences))
        return np.array([[len(s), s.count("a"), s.count(" ") + 1, 1.0] for s in sentences], dtype=np.float32)

    def describe(self):
        return {"model": "/somewhere/toy model", "pooler": "avg", "precision": "fp32"}


@needs_mteb
def test_the_wrapper_encodes_each_distinct_text_once_and_keeps_mtebs_order():
    from simcse_lab.evaluation.mteb_model import SimcseLabModel, default_name

    encoder = CountingEncoder()
    model = SimcseLabModel(encoder)
    batches = [{"text": ["a cat", "dogs run", "a cat"]}, {"text": ["hi", "dogs run"]}]
    vectors = model.encode(batches, task_metadata=None, hf_split="test", hf_subset="default")
    assert encoder.calls == [["a cat", "dogs run", "hi"]]
    np.testing.assert_array_equal(vectors, encoder.encode(["a cat", "dogs run", "a cat", "hi", "dogs run"]))

    # an STS split: the second column's texts already encoded with the first are not encoded again
    sts_task, other = SimpleNamespace(name="T", type="STS"), SimpleNamespace(name="U", type="STS")
    encoder.calls.clear()
    for column, task in ((["a cat", "hi"], sts_task), (["hi", "dogs"], sts_task), (["hi"], other)):
        out = model.encode([{"text": column}], task_metadata=task, hf_split="test", hf_subset="default")
        np.testing.assert_array_equal(out, encoder.encode(column))
    assert encoder.calls[::2] == [["a cat", "hi"], ["dogs"], ["hi"]]  # (every other call is the check's own)
    meta = model.mteb_model_meta
    assert meta.name == "simcse-lab/toy-model__avg__fp32" and meta.revision == "hub-unpinned"
    assert str(meta.similarity_fn_name.value) == "cosine" and meta.embed_dim == 4
    described = {**encoder.describe(), "bidirectional": True, "whitening": {"k": 2}}
    assert default_name(described) == "simcse-lab/toy-model__avg__fp32__bidirectional__whitening"


@needs_mteb
def test_default_name_tells_instructions_apart():
    from simcse_lab.evaluation.mteb_model import default_name

    described = {"model": "toy-model", "pooler": "avg", "precision": "fp32"}
    plain = default_name(described)
    first = default_name({**described, "instruction": "Retrieve similar sentences: "})
    second = default_name({**described, "instruction": "Classify the sentiment: "})
    assert plain == "simcse-lab/toy-model__avg__fp32"
    assert len({plain, first, second}) == 3 and first.startswith(plain + "__instr-")
    assert first == default_name({**described, "instruction": "Retrieve similar sentences: "})


@needs_mteb
def test_mteb_scores_equal_simcse_labs_and_its_result_files_load_in_mteb(tiny_bert, mirror_env, tmp_path, capsys):
    """The tiny model on the full STS-B and SICK-R test sets: mteb's cosine Spearman x 100 is simcse-lab's."""
    from mteb.cache import ResultCache

    sts, result = both_paths(str(tiny_bert), tmp_path, capsys, extra=("--pooler", "avg"))
    for task, name in (("stsb", "SimCSELab-STSB-SentEval"), ("sickr", "SimCSELab-SICKR-SentEval")):
        assert abs(mteb_spearman(result, name) - sts["tasks"][task]["spearman"]) < 0.01
        assert result["tasks"][name]["splits"]["test"]["subsets"][0]["cosine_spearman"] == pytest.approx(
            result["tasks"][name]["splits"]["test"]["main_score"])
    assert sts["tasks"]["stsb"]["n"] == 1379 and sts["tasks"]["sickr"]["n"] == 4927
    assert result["mteb_model"] == "simcse-lab/" + tiny_bert.name + "__avg__fp32" and result["world_size"] == 1

    loaded = ResultCache(tmp_path / "mteb").load_results(tasks=LOCAL.split(","), include_remote=False)
    (model_result,) = loaded.model_results
    assert model_result.model_name == result["mteb_model"] and model_result.model_revision == result["mteb_revision"]
    scores = {t.task_name: t.get_score() for t in model_result.task_results}
    assert scores == {name: pytest.approx(result["tasks"][name]["splits"]["test"]["main_score"], abs=1e-6)
                      for name in LOCAL.split(",")}
    folder = tmp_path / "mteb" / "results" / result["mteb_model"].replace("/", "__") / result["mteb_revision"]
    assert str(folder) == result["mteb_results"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{name}.json" for name in LOCAL.split(",")] + ["model_meta.json", "run_settings.jsonl"])


@needs_mteb
def test_an_onnx_export_runs_through_mteb_as_its_source_does(tiny_bert, mirror_env, tmp_path, capsys):
    from simcse_lab.export.formats import export

    export(str(tiny_bert), "onnx", tmp_path / "onnx", pooler="avg")
    runs = {}
    for name, extra in (("onnx", ["--model", str(tmp_path / "onnx")]), ("torch", ["--model", str(tiny_bert),
                                                                                    "--pooler", "avg"])):
        succeeds(["eval", *extra, "--precision", "fp32", "--no-progress", "--mteb", "SimCSELab-STSB-SentEval",
                  "--mteb-results", str(tmp_path / "mteb"), "--output", str(tmp_path / f"{name}.json")])
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    capsys.readouterr()
    assert runs["onnx"]["backend"] == "onnx" and runs["onnx"]["mteb_model"] != runs["torch"]["mteb_model"]
    assert mteb_spearman(runs["onnx"], "SimCSELab-STSB-SentEval") == pytest.approx(
        mteb_spearman(runs["torch"], "SimCSELab-STSB-SentEval"), abs=1e-3)


@needs_mteb
def test_a_whitened_encoder_scores_in_mteb_as_in_simcse_lab(tiny_bert, mirror_env, tmp_path, capsys):
    """--whiten with --mteb: mteb scores the whitened vectors (the same fit, seeded) and names the model so."""
    whiten = ("--pooler", "avg", "--whiten", "wiki", "--fit-max", "300", "--seed", "3", "--whiten-k", "16")
    sts, result = both_paths(str(tiny_bert), tmp_path, capsys, extra=whiten)
    for task, name in (("stsb", "SimCSELab-STSB-SentEval"), ("sickr", "SimCSELab-SICKR-SentEval")):
        assert abs(mteb_spearman(result, name) - sts["tasks"][task]["spearman"]) < 0.01
    assert result["mteb_model"].endswith("__avg__fp32__whitening") and result["post_hoc"]["method"] == "whitening"


@needs_mteb
def test_two_processes_score_what_one_does_and_only_the_main_one_writes(tiny_bert, mirror_env, tmp_path):
    run = ["-m", "simcse_lab", "eval", "--model", str(tiny_bert), "--pooler", "avg", "--precision", "fp32",
           "--no-progress", "--mteb", LOCAL]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "SIMCSE_LAB_DATA": str(mirror_env)}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    out = {}
    for name, prefix in (("one", [sys.executable]), ("two", launch)):
        proc = subprocess.run([*prefix, *run, "--mteb-results", str(tmp_path / name), "--output",
                               str(tmp_path / f"{name}.json")], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("SimCSELab-STSB-SentEval") == 1  # only the main process reports
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert out["one"]["world_size"] == 1 and out["two"]["world_size"] == 2
    one, two = out["one"]["texts_encoded_per_process"], out["two"]["texts_encoded_per_process"]
    assert sum(two) == sum(one) and min(two) >= sum(one) // 2 - 2  # each process encoded its half
    for task in LOCAL.split(","):
        assert mteb_spearman(out["two"], task) == pytest.approx(mteb_spearman(out["one"], task), abs=1e-4)
    files = sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "one").as_posix()
                           for p in (tmp_path / "one").rglob("*") if p.is_file())


@needs_mteb
@pytest.mark.integration
def test_all_minilm_mteb_sts_equals_simcse_lab_sts_on_the_same_pairs(mirror_env, monkeypatch, tmp_path, capsys):
    """The real offline model, the first 400 pairs of STS-B test and SICK-R test: the two numbers agree to 0.01."""
    subset_pairs(monkeypatch, 400)
    sts, result = both_paths("all-MiniLM-L6-v2", tmp_path, capsys)
    assert sts["tasks"]["stsb"]["n"] == sts["tasks"]["sickr"]["n"] == 400
    for task, name in (("stsb", "SimCSELab-STSB-SentEval"), ("sickr", "SimCSELab-SICKR-SentEval")):
        assert abs(mteb_spearman(result, name) - sts["tasks"][task]["spearman"]) < 0.01, (task, result, sts)
    assert result["mteb_model"] == "simcse-lab/all-MiniLM-L6-v2__modules__fp32"
