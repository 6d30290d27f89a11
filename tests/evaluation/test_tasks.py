"""Evaluation tasks as declared objects: the registry, the --tasks / --select parser, the user's own STS and
retrieval files (bad rows are file:line errors, before any model loads), and that SentEval's STS tasks score
exactly what sts.evaluate scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcse_lab.cli import main
from simcse_lab.errors import InputError, UserError
from simcse_lab.evaluation.tasks import (KINDS, TASKS, Metric, Task, TaskMetadata, parse_select, parse_task,
                                         parse_tasks, register)


class WordCounts:
    """A deterministic toy encoder: a sentence's vector counts its words over a fixed vocabulary."""

    def __init__(self, vocabulary, weights=None):
        self.vocabulary = {w: i for i, w in enumerate(vocabulary)}
        self.weights = np.ones(len(vocabulary)) if weights is None else np.asarray(weights, dtype=float)

    def encode(self, sentences, progress=False):
        out = np.full((len(sentences), len(self.vocabulary)), 1e-3)
        for row, sentence in enumerate(sentences):
            for word in sentence.split():
                out[row, self.vocabulary[word]] += self.weights[self.vocabulary[word]]
        return out

    def describe(self):
        return {"model": "counts", "pooler": "-", "precision": "fp32", "backend": "toy", "device": "cpu"}


VOCAB = "a cat dog sat ran big small red tree house".split()


def write(path, text):
    path.write_text(text)
    return path


def test_registry_declares_the_first_tasks():
    sts = [n for n, t in TASKS.items() if t.metadata.type == "sts"]
    assert sts == ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]
    assert TASKS["sts13"].metadata.splits == ("test",) and TASKS["stsb"].metadata.splits == ("train", "dev", "test")
    assert TASKS["stsb"].metadata.main_score == "spearman" and TASKS["stsb"].metadata.source == "registry:stsb"
    assert TASKS["stsb-retrieval"].metadata.main_score == "mrr@10"
    assert {"sts", "retrieval"} <= set(KINDS)


def test_metadata_is_checked_and_a_name_registers_once():
    with pytest.raises(ValueError, match="main score"):
        TaskMetadata("x", "sts", ("test",), "file:x", "acc", (Metric("spearman"),))
    with pytest.raises(ValueError, match="type"):
        TaskMetadata("x", "regression", ("test",), "file:x", "r", (Metric("r"),))
    with pytest.raises(ValueError, match="twice"):
        register(TASKS["stsb"])


def test_a_task_registered_from_outside_is_parsed_and_selectable(monkeypatch):
    class Toy(Task):
        metadata = TaskMetadata("toy-loss", "clustering", ("dev",), "file:none", "loss",
                                (Metric("loss", greater_is_better=False), Metric("acc")))

    monkeypatch.delitem(TASKS, "toy-loss", raising=False)
    register(Toy)
    try:
        selection = parse_select("toy-loss:dev:loss")
        assert selection.key == "toy-loss:dev:loss" and not selection.metric.greater_is_better
        assert selection.improves(0.5, 0.7) and not selection.improves(0.9, 0.7) and selection.improves(0.9, None)
        assert not selection.improves(float("nan"), None)
    finally:
        TASKS.pop("toy-loss")


@pytest.mark.parametrize("spec, problem", [
    ("foo:dev:spearman", "unknown task 'foo'"), ("stsb:dev:accuracy", "task stsb has no metric 'accuracy'"),
    ("sts12:dev:spearman", "task sts12 has no split 'dev'"), ("stsb:spearman", "name the split of stsb"),
    ("spearman", "expected TASK:SPLIT:METRIC"), ("sts:missing.tsv:spearman", "missing.tsv: no such file"),
    ("sts:notes.txt:spearman", "unknown evaluation file type '.txt'")])
def test_bad_select_specs_are_one_line(spec, problem):
    with pytest.raises(UserError) as err:
        parse_select(spec)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_select_specs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "my.tsv", "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\n")
    default = parse_select("stsb:dev:spearman")
    assert default.key == "dev_spearman" and default.is_default and default.split == "dev"
    assert parse_select("sickr:dev:pearson").key == "sickr:dev:pearson"
    user = parse_select("sts:my.tsv:spearman")
    assert user.task.name == "sts:my.tsv" and user.split == "file" and user.key == "sts:my.tsv:spearman"
    ranged = parse_select("sts:my.tsv:0-5:pearson")
    assert ranged.task.given_range == (0.0, 5.0) and ranged.metric.name == "pearson"
    assert parse_select("retrieval:my.tsv:mrr@10").task.metadata.type == "retrieval"
    assert [t.name for t in parse_tasks("STSB, sickr,stsb")] == ["stsb", "sickr"]


@pytest.mark.parametrize("spec", ["stsb:test:spearman", "sickr:test:pearson", "mr:test:test_acc", "mrpc:test_f1",
                                  "sts12:test:spearman"])
def test_select_refuses_a_test_split(spec):
    with pytest.raises(UserError) as err:
        parse_select(spec)
    assert "tunes on the test set" in str(err.value) and "\n" not in str(err.value)


def test_select_after_a_kind_reads_a_file_not_a_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="^test: unknown evaluation file type ''"):  # the file 'test', not a split
        parse_select("sts:test:spearman")
    write(tmp_path / "test.tsv", "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\n")
    chosen = parse_select("sts:test.tsv:file:spearman")
    assert chosen.task.name == "sts:test.tsv" and chosen.split == "file"
    assert parse_select("mr:test:dev_acc").metric.name == "dev_acc"  # cross-validated on training rows


def test_user_sts_file_formats_and_inferred_range(tmp_path):
    tsv = write(tmp_path / "a.tsv", "score\tsentence1\tsentence2\n0.9\ta cat\ta cat sat\n0.1\ta dog\tred house\n")
    csv = write(tmp_path / "a.csv", 'sent1,sent2,label\n"a cat, big",a cat sat,4\na dog,red house,1\n')
    jsonl = write(tmp_path / "a.jsonl", '{"text1": "a cat", "text2": "a cat sat", "similarity": 7}\n'
                                        '{"text1": "a dog", "text2": "red house", "similarity": "2.5"}\n')
    ranges = {}
    for path in (tsv, csv, jsonl):
        task = parse_task(f"sts:{path}")
        task.check("file")
        ranges[path.suffix] = task.score_range
    assert ranges == {".tsv": (0.0, 1.0), ".csv": (0.0, 5.0), ".jsonl": (0.0, 10.0)}
    assert parse_task(f"sts:{csv}").load("file")["a.csv"].sent1 == ["a cat, big", "a dog"]
    given = parse_task(f"sts:{jsonl}:0-10")
    given.check("file")
    assert given.describe()["score_range_from"] == "given" and given.positive_gold == 8.0


@pytest.mark.parametrize("name, text, problem", [
    ("bad.tsv", "score\tsentence1\tsentence2\n1\ta\tb\nhigh\tc\td\n", "bad.tsv:3: score 'high' is not a number"),
    ("bad.jsonl", '{"score": 1, "sentence1": "a", "sentence2": "b"}\n{"score": "x", "sentence1": "a", "sentence2": "b"}\n',
     "bad.jsonl:2: score 'x' is not a number"),
    ("bad.csv", "score,sentence\n1,a\n", "bad.csv:1: missing column: no sentence pair column"),
    ("nos.csv", "value,sentence1,sentence2\n1,a,b\n", "nos.csv:1: missing column: no score column"),
    ("gap.jsonl", '{"score": 1, "sentence1": "a", "sentence2": "b"}\n{"score": 2, "sentence1": "a"}\n',
     "gap.jsonl:2: missing column: 'sentence2'"),
    ("short.tsv", "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\n", "short.tsv:3: expected 3 fields"),
    ("range.tsv:0-5", "score\tsentence1\tsentence2\n1\ta\tb\n6\tc\td\n", "range.tsv:3: score 6 is outside the range 0-5"),
    ("same.tsv", "score\tsentence1\tsentence2\n1\ta\tb\n1\tc\td\n", "every score is 1")])
def test_bad_user_sts_files_are_file_line_errors(tmp_path, name, text, problem):
    file = name.split(":")[0]
    write(tmp_path / file, text)
    with pytest.raises(InputError) as err:
        parse_task(f"sts:{tmp_path / name}").check("file")
    assert str(err.value).endswith(problem) or problem in str(err.value), str(err.value)


def test_user_retrieval_scores_against_the_corpus_of_all_positives(tmp_path):
    path = write(tmp_path / "q.tsv", "query\tpositive\ncat\ta cat sat\ndog\ta dog ran\ncat\tbig cat\n"
                                     "big sat\ta cat sat\n")
    task = parse_task(f"retrieval:{path}")
    task.check("file")
    result = task.evaluate(WordCounts(VOCAB), "file")
    # corpus: the 3 distinct positives. "cat" has two relevant items, one is first (recall@1 1/2, RR 1); "dog"
    # finds its one first; "big sat" finds "big cat" (cos 1/2) before its positive "a cat sat" (cos 1/sqrt 6)
    assert result["queries"] == 3 and result["corpus"] == 3
    assert result["recall@1"] == pytest.approx(100 * (0.5 + 1 + 0) / 3)
    assert result["recall@5"] == pytest.approx(100.0)
    assert result["mrr@10"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)


def test_senteval_sts_tasks_score_what_sts_evaluate_scores(mirror_env):
    from simcse_lab.evaluation import sts
    from simcse_lab.evaluation.tasks.sts import evaluate_together

    words = sorted({w for task in ("stsb", "sickr") for ps in sts.load_task(task, "dev").values()
                    for s in ps.sent1 + ps.sent2 for w in s.split()})
    encoder = WordCounts(words)
    # geometry off: it is tested on its own (tests/evaluation/test_eval_geometry.py), and on word-count vectors of this
    # vocabulary's width its isotropy takes minutes
    old = sts.evaluate(encoder, ["stsb", "sickr"], "dev", geometry=False)
    new = evaluate_together(encoder, [TASKS["stsb"], TASKS["sickr"]], "dev", geometry=False)
    assert json.dumps({**old, "seconds": 0}) == json.dumps({**new, "seconds": 0})
    assert TASKS["sickr"].evaluate(encoder, "dev", geometry=False) == old["tasks"]["sickr"]


def test_eval_refuses_bad_user_files_before_any_model_loads(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the tasks were checked")

    monkeypatch.setattr("simcse_lab.modeling.encoder.load_encoder", refuse)
    write(tmp_path / "bad.tsv", "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\nn/a\te\tf\n")
    for tasks, problem in ((f"stsb,sts:{tmp_path / 'bad.tsv'}", "bad.tsv:4: score 'n/a' is not a number"),
                           ("stsb,nope", "unknown task 'nope'")):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "--model", str(tmp_path), "--tasks", tasks])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and problem in err, err


def test_select_on_a_user_retrieval_file_records_its_metric(tmp_path):
    from simcse_lab.evaluation.dev import selection_metrics

    path = write(tmp_path / "q.tsv", "query\tpositive\ncat\ta cat sat\ndog\ta dog ran\ncat\tbig cat\n"
                                     "big sat\ta cat sat\n")
    selection = parse_select(f"retrieval:{path}:recall@1")
    selection.task.check(selection.split)
    # as in test_user_retrieval_scores_against_the_corpus_of_all_positives: recall@1 = (1/2 + 1 + 0) / 3
    assert selection_metrics(WordCounts(VOCAB), selection) == {f"retrieval:{path}:recall@1": pytest.approx(50.0)}


def test_eval_with_user_files_leaves_senteval_numbers_alone(tmp_path, tiny_bert, mirror_env, capsys):
    """eval --tasks stsb,sts:FILE,retrieval:FILE: STS-B dev as in a plain --tasks stsb run, the file in the STS
    table under its stem, the retrieval file in its own table and JSON section."""
    sts_file = write(tmp_path / "mine.tsv", "score\tsentence1\tsentence2\n4.5\ta cat sat\ta cat sat down\n"
                                             "1\tthe dog ran\ta red house\n3\tbig tree\tsmall tree\n")
    query_file = write(tmp_path / "faq.jsonl", '{"query": "a cat", "positive": "a cat sat"}\n'
                                               '{"query": "dog", "positive": "the dog ran"}\n')
    outputs = {}
    for name, tasks in (("plain", "stsb"), ("mixed", f"stsb,sts:{sts_file},retrieval:{query_file}")):
        outputs[name] = tmp_path / f"{name}.json"
        with pytest.raises(SystemExit) as done:
            main(["eval", "--model", str(tiny_bert), "--precision", "fp32", "--split", "dev", "--tasks", tasks,
                  "--output", str(outputs[name])])
        assert done.value.code == 0
    printed = capsys.readouterr().out
    plain, mixed = (json.loads(outputs[n].read_text()) for n in ("plain", "mixed"))
    assert mixed["tasks"]["stsb"] == plain["tasks"]["stsb"]
    mine = mixed["tasks"][f"sts:{sts_file}"]
    assert mine["n"] == 3 and mine["score_range"] == [0.0, 5.0] and mine["score_range_from"] == "inferred"
    assert mixed["avg"] == pytest.approx((plain["avg"] + mine["spearman"]) / 2)
    assert set(mixed["retrieval"]["tasks"][f"retrieval:{query_file}"]) >= {"recall@1", "recall@5", "recall@10",
                                                                          "mrr@10", "queries", "corpus", "sha256"}
    lines = printed.splitlines()
    assert any("STS-B" in line and " mine " in line for line in lines)
    assert any(line.startswith("retrieval ") and "mrr@10" in line for line in lines)
    assert any(line.startswith("faq ") for line in lines)
    assert "retrieval" not in plain


def test_retrieval_task_scores_what_retrieval_eval_scores(mirror_env):
    from simcse_lab.evaluation import retrieval
    from simcse_lab.evaluation.sts import load_task

    words = sorted({w for ps in load_task("sickr", "dev").values() for s in ps.sent1 + ps.sent2 for w in s.split()})
    encoder = WordCounts(words)
    assert TASKS["sickr-retrieval"].evaluate(encoder, "dev") == retrieval.evaluate(encoder, ["sickr"], "dev")["tasks"]["sickr"]
