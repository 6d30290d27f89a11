"""The geometry beside the STS scores (issue 20, part 0): ``eval`` reports alignment and uniformity per task and
the isotropy of all sentences encoded, from the vectors it scored, equal to ``analyze``'s on the same sentences;
the fast uniformity and the Gram-matrix isotropy against their definitions."""

import json

import numpy as np
import pytest

from simcse_lab import cli
from simcse_lab.data.readers import PairSet
from simcse_lab.evaluation import isotropy as iso
from simcse_lab.evaluation import vectors as v
from simcse_lab.evaluation.sts import POSITIVE_GOLD, evaluate, format_geometry, format_table

SENTENCES = [f"a sentence about the {w} number {i} and a {u}" for i, (w, u) in
             enumerate(zip(["cat", "dog", "car", "tree", "sun", "river"] * 6, ["house", "road", "book"] * 12))]
GOLD = [4.5, 2.0, 4.0, 5.0, 1.0, 4.2, 3.9, 0.0, 4.8]  # 4.0 itself is not positive (strictly greater)


def fake_set(name, offset, n):
    a, b = SENTENCES[offset: offset + n], SENTENCES[offset + n: offset + 2 * n]
    return PairSet(name, a, b, [GOLD[i % len(GOLD)] for i in range(n)])


@pytest.fixture
def fake_sts(monkeypatch):
    """stsb (dev and test) and sickr (test) are small fake sets; sickr shares a sentence with stsb."""
    from simcse_lab.data import registry, spec

    sets = {("stsb", "dev"): fake_set("stsb-dev", 0, 15), ("stsb", "test"): fake_set("stsb-test", 2, 12),
            ("sickr", "test"): fake_set("sickr-test", 10, 13)}
    real, real_ensure = registry.load_split, spec.ensure_local
    monkeypatch.setattr(registry, "load_split", lambda name, split: sets.get((name, split)) or real(name, split))
    monkeypatch.setattr(spec, "ensure_local", lambda name: None if name in ("stsb", "sickr") else real_ensure(name))
    return sets


def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


def brute_uniformity(x, t=2.0):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    d2 = [np.sum((x[i] - x[j]) ** 2) for i in range(n) for j in range(i + 1, n)]
    return float(np.log(np.mean(np.exp(-t * np.array(d2)))))


# -- the measures against their definitions ---------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 0.5, 7.0])  # unit rows, short rows (bounded path), long rows (shifted path)
def test_uniformity_equals_the_pairwise_definition(monkeypatch, scale):
    monkeypatch.setattr(v, "_CHUNK", 7)  # several chunks, a short last one
    rng = np.random.default_rng(3)
    x = v.l2_normalize(rng.standard_normal((40, 6)) + 0.4) * scale
    x[5] = 0.0  # a zero row stays allowed
    assert v.uniformity(x) == pytest.approx(brute_uniformity(x), rel=1e-10)
    # float32 rows: float32 Gram blocks, within float32 rounding of the exact value
    assert v.uniformity(x.astype(np.float32)) == pytest.approx(brute_uniformity(x.astype(np.float32)), rel=1e-6)


def test_uniformity_of_two_rows_and_identical_rows():
    assert v.uniformity(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(-4.0)  # d2 = 2, t = 2
    assert v.uniformity(np.ones((3, 4)) / 2) == pytest.approx(0.0)


def test_spectral_profile_equals_the_decompositions():
    """I(Z) with eigenvectors of X^T X, IsoScore and top-PC share from an SVD of the centred rows, effective rank
    from the SVD of X: the Gram-matrix profile gives the same numbers (and chunking changes nothing)."""
    rng = np.random.default_rng(0)
    x = v.l2_normalize(rng.standard_normal((500, 12)) * np.linspace(0.1, 3, 12) + 1.5)
    got = iso.spectral_profile(x)
    assert got["isoscore"] == pytest.approx(iso.isoscore(variances=iso.pca_variances(x)), rel=1e-9)
    assert got["top_pc_share"] == pytest.approx(iso.top_pc_share(variances=iso.pca_variances(x)), rel=1e-9)
    assert got["effective_rank"] == pytest.approx(iso.effective_rank(singular=iso.singular_values(x)), rel=1e-9)
    vecs = np.linalg.eigh(x.T @ x)[1]
    proj = x @ vecs
    log_z = np.log(np.concatenate([np.exp(proj).sum(0), np.exp(-proj).sum(0)]))
    assert got["partition_isotropy"] == pytest.approx(np.exp(log_z.min() - log_z.max()), rel=1e-9)
    cos = (x @ x.T)[np.triu_indices(len(x), 1)]
    assert got["mean_cosine"] == pytest.approx(cos.mean(), rel=1e-9)
    assert (got["n"], got["dim"]) == (500, 12)
    chunked = pytest.MonkeyPatch.context()
    with chunked as m:
        m.setattr(iso, "_ROWS", 64)
        again = iso.spectral_profile(x.astype(np.float32))
    for key in ("isoscore", "partition_isotropy", "effective_rank", "mean_cosine", "top_pc_share"):
        assert again[key] == pytest.approx(got[key], rel=1e-5)


# -- eval's geometry is analyze's ----------------------------------------------------------------------------------
def test_eval_geometry_equals_analyze_sentence_metrics_on_the_same_vectors():
    """Given the same vectors (in eval's sentence order), eval's per-task numbers and isotropy are exactly
    analyze's ``sentence_metrics``."""
    from simcse_lab.analysis.report import sentence_metrics
    from simcse_lab.evaluation.sts_geometry import suite_geometry, task_geometry, unit_rows

    ps = fake_set("x", 0, 15)
    sentences = sorted(set(ps.sent1 + ps.sent2))
    rows = {s: i for i, s in enumerate(sentences)}
    vectors = np.random.default_rng(1).standard_normal((len(sentences), 8)).astype(np.float32) + 0.3
    task = task_geometry(unit_rows(vectors), rows, [ps], POSITIVE_GOLD)
    suite = suite_geometry(unit_rows(vectors), {"x": task})
    pairs = [(rows[a], rows[b]) for a, b, g in zip(ps.sent1, ps.sent2, ps.scores) if g > POSITIVE_GOLD]
    ref = sentence_metrics(vectors, pairs, max_pairs=200_000, seed=0)
    assert task["alignment_pairs"] == ref["alignment_pairs"] == 7  # 4.5 5.0 4.2 4.8 4.5 5.0 4.2: both 4.0 excluded
    assert task["alignment"] == ref["alignment"] and task["uniformity"] == ref["uniformity"]
    for key in iso.spectral_profile(unit_rows(vectors)):
        assert suite["isotropy"][key] == ref[key], key


def test_eval_cli_geometry_equals_analyze_cli(tiny_bert, fake_sts, tmp_path, capsys):
    """End to end: ``eval --tasks stsb --split dev`` and ``analyze --data stsb`` (dev) on the same checkpoint
    and pooler: the same 30 sentences and 7 positive pairs; equal up to the float32 rounding of encoding the
    same sentences in other batches."""
    out = tmp_path / "eval.json"
    assert run_cli(["eval", "--model", str(tiny_bert), "--pooler", "avg", "--precision", "fp32", "--tasks", "stsb",
                    "--split", "dev", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "alignment" in printed and "uniformity" in printed and "IsoScore" in printed and "I(Z)" in printed
    result = json.loads(out.read_text())
    report_dir = tmp_path / "analysis"
    assert run_cli(["analyze", "--model", str(tiny_bert), "--pooler", "avg", "--precision", "fp32", "--data", "stsb",
                    "--no-tokens", "--no-token-dynamics", "--output-dir", str(report_dir)]) == 0
    ref = json.loads((report_dir / "report.json").read_text())["checkpoints"][0]["sentence"]
    stsb = result["tasks"]["stsb"]
    assert stsb["sentences"] == result["geometry"]["isotropy"]["n"] == ref["n"] == 30
    assert stsb["alignment_pairs"] == ref["alignment_pairs"] == 7
    assert stsb["alignment"] == pytest.approx(ref["alignment"], rel=1e-5)
    assert stsb["uniformity"] == pytest.approx(ref["uniformity"], rel=1e-5)
    for key in ("mean_cosine", "isoscore", "partition_isotropy", "effective_rank", "top_pc_share"):
        assert result["geometry"]["isotropy"][key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), key
    assert result["geometry"]["positive_gold"] == "> 4.0"


def test_geometry_changes_no_sts_number_and_can_be_skipped(tiny_bert, fake_sts):
    from simcse_lab.modeling.encoder import load_encoder

    encoder = load_encoder(str(tiny_bert), pooler="avg", precision="fp32")
    with_geometry = evaluate(encoder, ["stsb", "sickr"], "test")
    without = evaluate(encoder, ["stsb", "sickr"], "test", geometry=False)
    assert "geometry" not in without and "alignment" not in without["tasks"]["stsb"]
    for task in ("stsb", "sickr"):
        assert with_geometry["tasks"][task]["spearman"] == without["tasks"][task]["spearman"]
    assert format_table([with_geometry]) == format_table([without])
    assert format_geometry([without]) == ""
    # the suite isotropy covers every distinct sentence once (sickr shares sentences with stsb test)
    assert with_geometry["geometry"]["isotropy"]["n"] == with_geometry["sentences_encoded"]
    assert with_geometry["tasks"]["stsb"]["sentences"] + with_geometry["tasks"]["sickr"]["sentences"] \
        > with_geometry["sentences_encoded"]
    per_task = [with_geometry["tasks"][t]["uniformity"] for t in ("stsb", "sickr")]
    assert with_geometry["geometry"]["avg"]["uniformity"] == pytest.approx(np.mean(per_task))


def test_before_after_geometry_table(tiny_bert, fake_sts):
    """train's summary table of two results (before, after) shows both rows of each measure."""
    from simcse_lab.modeling.encoder import load_encoder

    before = evaluate(load_encoder(str(tiny_bert), pooler="avg", precision="fp32"), ["stsb"], "test")
    after = evaluate(load_encoder(str(tiny_bert), pooler="cls_before_pooler", precision="fp32"), ["stsb"], "test")
    table = format_geometry([before, after], ["before", "after"])
    lines = table.splitlines()
    assert [l.split()[:2] for l in lines if l.startswith(("before", "after"))][:4] == [
        ["before", "alignment"], ["after", "alignment"], ["before", "uniformity"], ["after", "uniformity"]]
    assert f"{after['tasks']['stsb']['uniformity']:.3f}" in table
    assert f"{before['geometry']['isotropy']['isoscore']:.3f}" in table


def test_a_task_without_positive_pairs_has_no_alignment(tiny_bert, monkeypatch):
    from simcse_lab.data import registry, spec
    from simcse_lab.modeling.encoder import load_encoder

    low = PairSet("stsb-test", SENTENCES[:5], SENTENCES[5:10], [1.0, 2.0, 3.0, 4.0, 0.5])
    monkeypatch.setattr(registry, "load_split", lambda name, split: low)
    monkeypatch.setattr(spec, "ensure_local", lambda name: None)
    result = evaluate(load_encoder(str(tiny_bert), pooler="avg", precision="fp32"), ["stsb"], "test")
    assert result["tasks"]["stsb"]["alignment"] is None and result["tasks"]["stsb"]["alignment_pairs"] == 0
    assert result["geometry"]["avg"]["alignment"] is None
    assert " - " in format_geometry([result]) or format_geometry([result]).split("\n")[2].split()[-1] == "-"


def test_train_summary_has_geometry_before_and_after(tiny_bert, fake_sts, tmp_path, capsys):
    """train's summary.json: test_before and test_after each carry the geometry; the printed before -> after
    STS table is followed by the geometry table (also in summary.json)."""
    from conftest import random_sentences

    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_sentences(32)) + "\n")
    train(TrainConfig(model=str(tiny_bert), data=str(corpus), objective="unsup", pooler="cls", mlp_only_train=True,
                      batch_size=8, max_seq_len=16, lr=1e-3, max_steps=2, eval_steps=0, test_tasks="stsb,sickr",
                      precision="fp32", progress=False, output_dir=str(tmp_path / "run")))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("test_before", "test_after"):
        assert set(summary[key]["geometry"]["isotropy"]) >= {"mean_cosine", "isoscore", "partition_isotropy"}
        assert summary[key]["tasks"]["stsb"]["alignment_pairs"] == 5  # 12 fake test pairs: 4.5 5.0 4.2 4.8 4.5
    after = summary["test_after"]
    assert f"{after['tasks']['sickr']['uniformity']:.3f}" in summary["geometry_table"]
    assert summary["geometry_table"] in capsys.readouterr().out


@pytest.mark.integration
def test_real_model_stsb_dev_equals_analyze(mirror_env, tmp_path):
    """all-MiniLM-L6-v2 (its own modules, fp32) on the real STS-B dev set: eval's geometry and analyze's (--data
    stsb, dev, every sentence) agree: the same sentences and positive pairs, equal up to the float32 rounding
    of encoding each sentence in other batches."""
    import subprocess
    import sys

    out, report = tmp_path / "eval.json", tmp_path / "analysis"
    common = ["--model", "all-MiniLM-L6-v2", "--precision", "fp32", "--no-progress"]
    for argv in (["eval", "--tasks", "stsb", "--split", "dev", "--output", str(out)],
                 ["analyze", "--data", "stsb", "--split", "dev", "--no-tokens", "--no-token-dynamics",
                  "--output-dir", str(report)]):
        proc = subprocess.run([sys.executable, "-m", "simcse_lab", *argv, *common], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    ref = json.loads((report / "report.json").read_text())["checkpoints"][0]["sentence"]
    stsb = result["tasks"]["stsb"]
    assert stsb["sentences"] == ref["n"] == result["geometry"]["isotropy"]["n"]
    assert stsb["alignment_pairs"] == ref["alignment_pairs"] > 0
    assert stsb["alignment"] == pytest.approx(ref["alignment"], rel=1e-4)
    assert stsb["uniformity"] == pytest.approx(ref["uniformity"], rel=1e-4)
    for key in ("mean_cosine", "isoscore", "partition_isotropy", "effective_rank", "top_pc_share"):
        assert result["geometry"]["isotropy"][key] == pytest.approx(ref[key], rel=1e-3), key


def test_a_user_file_on_another_scale_reports_its_own_cut_off(tiny_bert, fake_sts, tmp_path, capsys):
    """``eval --tasks stsb,sts:FILE`` with 0-1 gold: the file's alignment cuts at 0.8 (4 of 0-5), and the result,
    the suite label and the printed table say so, task by task, instead of one "gold > 4.0"."""
    from simcse_lab.evaluation.sts_geometry import cutoff_label

    ps = fake_set("mine", 4, 12)
    path = tmp_path / "mine.tsv"
    path.write_text("score\tsentence1\tsentence2\n" + "".join(
        f"{g / 5:.2f}\t{a}\t{b}\n" for a, b, g in zip(ps.sent1, ps.sent2, ps.scores)), encoding="utf-8")
    spec, out = f"sts:{path}", tmp_path / "eval.json"
    assert run_cli(["eval", "--model", str(tiny_bert), "--pooler", "avg", "--precision", "fp32",
                    "--tasks", f"stsb,{spec}", "--split", "test", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    mine, stsb = result["tasks"][spec], result["tasks"]["stsb"]
    assert mine["score_range"] == [0.0, 1.0] and mine["positive_gold"] == pytest.approx(0.8)
    assert stsb["positive_gold"] == POSITIVE_GOLD
    assert mine["alignment_pairs"] == sum(g > 4.0 for g in ps.scores) == 5  # 4.5 5.0 4.2 4.8 4.5; 0.80 is not > 0.8
    assert result["geometry"]["positive_gold"] == f"stsb > 4, {spec} > 0.8"
    assert "gold > 4.0" not in printed and "geometry (gold > the row below)" in printed
    (cut_row,) = [line for line in printed.splitlines() if line.startswith("positive: gold >")]
    assert cut_row.split()[3:] == ["4", "0.8"]
    assert cutoff_label({spec: mine}) == "> 0.8" and cutoff_label({"stsb": stsb, "sickr": stsb}) == "> 4.0"
