"""index build/search: flat returns the exact top-k; approximate indexes report recall; model mismatch refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SEARCH_WORDS, make_tiny_bert, random_sentences, write_lines

from simcse_lab.cli import main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    lines = sorted(set(random_sentences(400, seed=0, words=SEARCH_WORDS, lengths=(3, 9))))
    return write_lines(tmp_path_factory.mktemp("corpus") / "corpus.txt", lines), lines


def test_flat_search_is_exact(tiny_bert, corpus, tmp_path):
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.search.index import Index, IndexBuild, build_index, normalize

    path, lines = corpus
    m = build_index(IndexBuild(str(tiny_bert), str(path), tmp_path / "idx", kind="flat", pooler="avg",
                               precision="fp32", chunk_size=64, progress=False))
    assert m["count"] == len(lines) and m["dimension"] == 32 and m["pooler"] == "avg"
    assert [json.loads(s) for s in (tmp_path / "idx" / "texts.jsonl").read_text().splitlines()] == lines
    queries = ["a dog plays with a red ball", "woman eats food", lines[5]]
    hits = Index(tmp_path / "idx").search(queries, k=7)
    enc = Encoder(str(tiny_bert), pooler="avg", precision="fp32")
    sims = normalize(enc.encode(queries)) @ normalize(enc.encode(lines)).T
    for row, got in zip(sims, hits):
        want = np.argsort(-row, kind="stable")[:7]
        np.testing.assert_allclose([h["score"] for h in got], row[want], atol=1e-5)
        assert [h["text"] for h in got] == [lines[i] for i in [h["id"] for h in got]]
        assert set(h["id"] for h in got[:6]) <= set(np.argsort(-row)[:8])  # ties only at the edge
    assert hits[2][0]["text"] == lines[5]


def test_hnsw_reports_recall_and_ivfpq_refuses_small_corpus(tiny_bert, corpus, tmp_path, capsys):
    path, _ = corpus
    with pytest.raises(SystemExit) as exc:
        main(["index", "build", "--model", str(tiny_bert), "--pooler", "avg", "--corpus", str(path),
              "--output-dir", str(tmp_path / "hnsw"), "--index", "hnsw", "--no-progress", "--precision", "fp32"])
    code = exc.value.code
    out = capsys.readouterr().out
    assert code == 0 and "recall@10 vs exact" in out
    recall = json.loads((tmp_path / "hnsw" / "manifest.json").read_text())["recall_at_10_vs_exact"]
    assert 0.5 <= recall <= 1.0
    with pytest.raises(SystemExit) as exc:
        main(["index", "build", "--model", str(tiny_bert), "--corpus", str(path), "--output", str(tmp_path / "pq"),
              "--index", "ivfpq", "--no-progress"])
    assert exc.value.code == 2 and "ivfpq needs at least" in capsys.readouterr().err
    assert not (tmp_path / "pq").exists()


def test_refuses_other_model_and_batch_queries(tiny_bert, corpus, tmp_path, capsys):
    path, _ = corpus
    build = ["index", "build", "--model", str(tiny_bert), "--pooler", "avg", "--corpus", str(path),
             "--output", str(tmp_path / "idx"), "--no-progress", "--precision", "fp32"]  # --output: the old spelling
    with pytest.raises(SystemExit):
        main(build)
    other = make_tiny_bert(tmp_path / "other", seed=7)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(tmp_path / "idx"), "--query", "a dog", "--model", str(other)])
    assert exc.value.code == 2 and "refusing" in capsys.readouterr().err
    # a model changed in place (same path, other weights) is caught by the probe embedding
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    m["probe"] = [-x for x in m["probe"]]
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(tmp_path / "idx"), "--query", "a dog"])
    assert exc.value.code == 2 and "rebuild" in capsys.readouterr().err
    m["probe"] = [-x for x in m["probe"]]
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(m))
    (tmp_path / "q.txt").write_text("a dog runs\nwoman plays piano\n")
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(tmp_path / "idx"), "--queries", str(tmp_path / "q.txt"), "-k", "3"])
    assert exc.value.code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["query"] for r in rows] == ["a dog runs", "woman plays piano"] and all(len(r["results"]) == 3 for r in rows)
    (tmp_path / "bad.txt").write_text("ok\n\nx\n")
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(tmp_path / "idx"), "--queries", str(tmp_path / "bad.txt")])
    assert exc.value.code == 2 and "bad.txt:2" in capsys.readouterr().err
