"""``simcse-lab analyze`` end to end on tiny random BERTs (no shared data), and the trajectory plot."""

import json

import pytest

from simcse_lab import cli

from simcse_lab.data.readers import PairSet

SENTENCES = [f"sentence number {i} about the {w} and a {v}" for i, (w, v) in
             enumerate(zip(["cat", "dog", "car", "tree", "sun", "river"] * 5, ["house", "road", "book"] * 10))]


def fake_stsb():
    a, b = SENTENCES[:15], SENTENCES[15:]
    return PairSet("stsb-dev", a, b, [4.5 if i % 3 else 2.0 for i in range(15)])


@pytest.fixture
def fake_registry(monkeypatch, tmp_path):
    """The registry's stsb is a small fake set (the analysis sentences and the whitening STS task)."""
    from simcse_lab.data import registry

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n")
    from simcse_lab.data import spec

    real, real_ensure = registry.load_split, spec.ensure_local
    monkeypatch.setattr(registry, "load_split", lambda name, split: fake_stsb() if name == "stsb" else real(name, split))
    # the fake stsb needs no files: nothing to fetch on first use (the real check would download it)
    monkeypatch.setattr(spec, "ensure_local", lambda name: None if name == "stsb" else real_ensure(name))
    return corpus


def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


def test_analyze_end_to_end(tiny_bert, fake_registry, tmp_path, capsys):
    out = tmp_path / "report"
    code = run_cli(["analyze", "--model", str(tiny_bert), "--pooler", "cls_before_pooler",
                    "--compare", f"{tiny_bert}@avg", "--output-dir", str(out), "--token-corpus",
                    str(fake_registry), "--knn", "3", "--knn-sample", "20", "--whiten",
                    "--whiten-corpus", str(fake_registry), "--whiten-k", "8", "--precision", "fp32"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["pooler"] for c in report["checkpoints"]] == ["cls_before_pooler", "avg"]
    assert report["data"] == {"source": "stsb/dev", "sentences": 30, "positive_pairs": 10}
    c = report["checkpoints"][0]
    assert len(c["layers"]) == 3  # embedding layer + 2 transformer layers
    assert 0 <= c["sentence"]["isoscore"] <= 1 and c["sentence"]["alignment"] > 0
    assert c["tokens"]["corpus_tokens"] > 0 and 0 < c["tokens"]["unseen_share"] < 1
    assert c["whitening"]["k"] == 8 and set(c["whitening"]["sts_spearman"]) == {"stsb"}
    # the avg checkpoint's sentence embedding is the last layer's mean pooling
    avg = report["checkpoints"][1]
    assert avg["sentence"]["isoscore"] == pytest.approx(avg["layers"][-1]["avg"]["isoscore"], rel=1e-4)
    for fig in ("singular_spectrum", "layer_profile", "align_uniform", "token_norm_vs_rank",
                "token_svd_projection"):
        assert (out / f"{fig}.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "IsoScore" in md and "BERT-whitening" in md and "![align_uniform](align_uniform.png)" in md
    assert "IsoScore" in capsys.readouterr().out


def test_trajectory_from_metrics_jsonl(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    lines = [{"step": 0, "loss": 2.0, "lr": 1e-5},
             {"step": 10, "alignment": 0.2, "uniformity": -1.5, "dev_spearman": 70.0},
             {"step": 20, "loss": 1.0},
             {"step": 30, "alignment": 0.3, "uniformity": -2.5, "dev_spearman": 80.0},
             {"step": 40, "alignment": 0.35, "uniformity": -2.7, "dev_spearman": 79.0}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "traj"
    assert run_cli(["analyze", "--trajectory", str(path), "--output-dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    t = report["trajectory"]
    assert t["points"] == 3
    assert t["first"]["step"] == 10 and t["last"]["uniformity"] == -2.7 and t["best"]["step"] == 30
    assert (out / "trajectory.png").stat().st_size > 1000


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"step": 1, "alignment": 0.1, "uniformity": -1}\nnot json\n')
    assert run_cli(["analyze", "--trajectory", str(bad), "--output-dir", str(tmp_path / "o")]) == 2
    assert f"{bad}:2: not JSON" in capsys.readouterr().err
    assert run_cli(["analyze", "--output-dir", str(tmp_path / "o")]) == 2
    assert run_cli(["analyze", "--model", "x", "--data", str(tmp_path / "missing.txt"),
                    "--output-dir", str(tmp_path / "o")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert run_cli(["analyze", "--model", "x@nopooler", "--output-dir", str(tmp_path / "o")]) == 2


@pytest.mark.integration
def test_minilm_untrained_cls_is_less_isotropic_than_mean_pooling(mirror_env, tmp_path):
    out = tmp_path / "minilm"
    assert run_cli(["analyze", "--model", "all-MiniLM-L6-v2@cls_before_pooler", "--compare",
                    "all-MiniLM-L6-v2@avg", "--max-sentences", "300", "--no-tokens",
                    "--output-dir", str(out)]) == 0
    cls, avg = (c["sentence"] for c in json.loads((out / "report.json").read_text())["checkpoints"])
    assert cls["isoscore"] < avg["isoscore"]
    assert cls["mean_cosine"] > avg["mean_cosine"]


def test_token_dynamics_flow_and_the_comparison_table(tiny_bert, fake_registry, tmp_path, capsys):
    """Token dynamics (on by default), --flow beside --whiten, and the comparison table, on a tiny BERT read
    three ways: cls_before_pooler and avg (sentence vectors in the last layer's token space) and cls (not)."""
    from conftest import random_sentences, write_lines

    corpus = write_lines(tmp_path / "fit.txt", random_sentences(120, seed=3))  # > 32 dims for the flow
    out = tmp_path / "report"
    code = run_cli(["analyze", "--model", f"{tiny_bert}@cls_before_pooler", "--compare", f"{tiny_bert}@avg",
                    f"{tiny_bert}@cls", "--output-dir", str(out), "--no-tokens", "--whiten", "--whiten-corpus",
                    str(corpus), "--flow", "--flow-corpus", str(corpus), "--flow-epochs", "2",
                    "--token-dynamics-min-contexts", "2", "--precision", "fp32"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    cls_raw, avg, cls = report["checkpoints"]
    for c in report["checkpoints"]:
        dyn = c["token_dynamics"]
        assert len(dyn["layers"]) == 3 and dyn["sentences"] == 30
        assert all(isinstance(row[k], float) for row in dyn["layers"] for k in
                   ("intra_similarity", "self_similarity_function", "self_similarity_content", "mean_vector_norm"))
        assert c["flow"]["settings"]["levels"] == 3 and c["flow"]["fitted_on"] == 120
        # one memo, one plain score: the flow and whitening sections agree on the unmapped STS
        assert c["flow"]["avg"]["plain"] == c["whitening"]["avg"]["plain"]
        assert c["flow"]["avg"]["flowed"] != c["flow"]["avg"]["plain"]
    # the token dynamics read the transformer, whatever the pooler: the same weights give the same numbers
    assert cls_raw["token_dynamics"]["layers"] == avg["token_dynamics"]["layers"]
    assert set(avg["token_dynamics"]["last_layer_mapped"]) == {"whitened", "flowed"}
    assert "last_layer_mapped" not in cls["token_dynamics"]
    assert "pooler cls:" in cls["token_dynamics"]["last_layer_mapped_skipped"]

    rows = report["comparison"]
    assert [(r["label"].split(" ")[-1], r["variant"]) for r in rows] == [
        (p, v) for p in ("[cls_before_pooler]", "[avg]", "[cls]") for v in ("raw", "+ whitening", "+ flow")]
    raw, white, flowed = rows[3:6]  # avg
    assert raw["isoscore"] == avg["sentence"]["isoscore"] and raw["sts_avg"] == avg["whitening"]["avg"]["plain"]
    assert white["isoscore"] == avg["whitening"]["sentence_after_whitening"]["isoscore"]
    assert flowed["sts_avg"] == avg["flow"]["avg"]["flowed"]
    assert raw["intra_similarity"] == avg["token_dynamics"]["layers"][-1]["intra_similarity"]
    assert white["intra_similarity"] == avg["token_dynamics"]["last_layer_mapped"]["whitened"]["intra_similarity"]
    assert white["intra_similarity"] != raw["intra_similarity"]
    assert rows[7]["intra_similarity"] is None and rows[6]["intra_similarity"] is not None  # cls: maps not applied

    for fig in ("token_dynamics", "self_similarity"):
        assert (out / f"{fig}.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    for text in ("## Comparison: raw, + whitening, + flow", "## Token-level dynamics", "## BERT-flow baseline",
                 "Function tokens are the 179 words of NLTK's English stop-word list", "aren't, as, at, be"):
        assert text in md, text
    assert "+ flow" in capsys.readouterr().out


def test_no_token_dynamics_and_bad_flow_settings(tiny_bert, fake_registry, tmp_path, capsys):
    out = tmp_path / "plain"
    assert run_cli(["analyze", "--model", f"{tiny_bert}@avg", "--no-tokens", "--no-token-dynamics",
                    "--output-dir", str(out), "--precision", "fp32"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "token_dynamics" not in report["checkpoints"][0] and not (out / "token_dynamics.png").exists()
    assert report["comparison"][0]["intra_similarity"] is None
    capsys.readouterr()
    for flags, message in ((["--flow", "--flow-levels", "0"], "flow levels must be >= 1"),
                           (["--flow", "--flow-lr", "-1"], "learning rate must be a positive number"),
                           (["--token-dynamics-min-contexts", "1"], "--token-dynamics-min-contexts must be at least 2"),
                           (["--flow-max", "0"], "--flow-max must be at least 1")):
        assert run_cli(["analyze", "--model", "x", "--output-dir", str(tmp_path / "never"), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "never").exists()  # refused before anything was written
