"""``eval --save-scores`` and ``simcse-lab compare`` end to end: per-pair scores that give the recorded Spearman
exactly, two tiny models compared from their saved scores and scored here (the same report), groups of fake run
directories over seeds, the reproducibility warning, and every bad input as one line (exit 2) before any work."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_tiny_bert, one_line_refusal, random_sentences
from scipy.stats import spearmanr
from test_eval_geometry import fake_sts  # noqa: F401  (a fixture: small fake stsb and sickr sets)

from simcse_lab import cli
from simcse_lab.evaluation import seed_groups

RESAMPLES = "500"


def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


def write_pairs(path, n, seed):
    """A user's STS file of ``n`` scored pairs (tab-separated, a header)."""
    rng = np.random.default_rng(seed)
    left, right = random_sentences(n, seed=seed), random_sentences(n, seed=seed + 100)
    rows = [f"{rng.integers(0, 51) / 10}\t{a}\t{b}" for a, b in zip(left, right)]
    path.write_text("score\tsentence1\tsentence2\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare-models")
    return make_tiny_bert(root / "a", seed=0), make_tiny_bert(root / "b", seed=1)


@pytest.fixture
def sts_files(tmp_path):
    return write_pairs(tmp_path / "one.tsv", 60, 1), write_pairs(tmp_path / "two.tsv", 45, 2)


def eval_scores(model, files, out, save=True):
    tasks = ",".join(f"sts:{f}:0-5" for f in files)
    argv = ["eval", "--model", str(model), "--pooler", "avg", "--precision", "fp32", "--tasks", tasks,
            "--no-geometry", "--output", str(out)] + (["--save-scores"] if save else [])
    assert run_cli(argv) == 0
    return out


def test_saved_scores_give_the_recorded_spearman_exactly(two_models, sts_files, tmp_path):
    out = json.loads(eval_scores(two_models[0], sts_files, tmp_path / "a.json").read_text())
    for path, n in zip(sts_files, (60, 45)):
        entry = out["tasks"][f"sts:{path}:0-5"]
        pairs = entry["pairs"]
        assert len(pairs["cosine"]) == len(pairs["gold"]) == n == sum(pairs["subsets"].values())
        assert 100.0 * spearmanr(pairs["cosine"], pairs["gold"])[0] == entry["spearman"]
        gold = [float(line.split("\t")[0]) for line in path.read_text().splitlines()[1:]]
        assert pairs["gold"] == gold  # in the file's order


def test_compare_scores_and_models_give_the_same_report(two_models, sts_files, tmp_path, capsys):
    a = eval_scores(two_models[0], sts_files, tmp_path / "a.json")
    b = eval_scores(two_models[1], sts_files, tmp_path / "b.json")
    capsys.readouterr()
    assert run_cli(["compare", "--scores", str(a), "--scores", str(b), "--resamples", RESAMPLES,
                    "--output", str(tmp_path / "scores.json")]) == 0
    printed = capsys.readouterr()
    assert "CI" in printed.out and "Avg." in printed.out and printed.err == ""  # same machine, same precision
    report = json.loads((tmp_path / "scores.json").read_text())
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    for row, task in zip(report["rows"], ra["tasks"]):
        assert row["task"] == task
        assert row["spearman_a"] == pytest.approx(ra["tasks"][task]["spearman"], abs=1e-9)
        assert row["delta"] == pytest.approx(ra["tasks"][task]["spearman"] - rb["tasks"][task]["spearman"], abs=1e-9)
        assert row["ci_low"] <= row["delta"] <= row["ci_high"] and row["p_holm"] >= row["p_permutation"]
    assert report["rows"][-1]["task"] == "avg"
    assert report["rows"][-1]["delta"] == pytest.approx(ra["avg"] - rb["avg"], abs=1e-9)
    assert ("excludes 0" in report["verdict"]) == report["rows"][-1]["ci_excludes_0"]

    tasks = ",".join(f"sts:{f}:0-5" for f in sts_files)
    assert run_cli(["compare", "--model", f"{two_models[0]}@avg", "--model", f"{two_models[1]}@avg", "--precision",
                    "fp32", "--tasks", tasks, "--resamples", RESAMPLES, "--output", str(tmp_path / "models.md"),
                    "--output", str(tmp_path / "models.json")]) == 0
    models = json.loads((tmp_path / "models.json").read_text())
    assert models["rows"] == report["rows"]  # same pairs, same scores, same seed: the same tests
    markdown = (tmp_path / "models.md").read_text()
    assert markdown.startswith("# compare\n\n```\nsimcse-lab ") and "| one | 60 |" in markdown


def test_two_backbone_families_on_the_same_pairs(family_models, sts_files, tmp_path, capsys):
    """Tiny models of two families (tests/families.py: their own tokenizers), each with its pooler: the report's
    Spearman values are eval's."""
    tasks = ",".join(f"sts:{f}:0-5" for f in sts_files)
    a, b = f"{family_models['roberta']}@avg", f"{family_models['electra']}@cls_before_pooler"
    assert run_cli(["compare", "--model", a, "--model", b, "--tasks", tasks, "--precision", "fp32", "--resamples",
                    RESAMPLES, "--output", str(tmp_path / "families.json")]) == 0
    rows = json.loads((tmp_path / "families.json").read_text())["rows"]
    for spec, key in ((a, "spearman_a"), (b, "spearman_b")):
        model, pooler = spec.rsplit("@", 1)
        assert run_cli(["eval", "--model", model, "--pooler", pooler, "--precision", "fp32", "--tasks", tasks,
                        "--no-geometry", "--output", str(tmp_path / "one.json")]) == 0
        result = json.loads((tmp_path / "one.json").read_text())
        assert [r[key] for r in rows[:-1]] == pytest.approx([t["spearman"] for t in result["tasks"].values()],
                                                            abs=1e-9)
    assert "unknown pooler" in one_line_refusal(["compare", "--model", f"{family_models['bert']}@mean", "--model",
                                                 a], capsys).lower()


def test_identical_results_cover_zero(two_models, sts_files, tmp_path, capsys):
    a = eval_scores(two_models[0], sts_files, tmp_path / "a.json")
    shutil.copy(a, tmp_path / "a2.json")
    assert run_cli(["compare", "--scores", str(a), "--scores", str(tmp_path / "a2.json"), "--resamples", RESAMPLES,
                    "--output", str(tmp_path / "same.json")]) == 0
    report = json.loads((tmp_path / "same.json").read_text())
    assert all(r["delta"] == 0 and r["ci_low"] == r["ci_high"] == 0 and r["p_permutation"] == 1.0
               for r in report["rows"])
    assert "covers 0" in report["verdict"] and "do not show a difference" in report["verdict"]


def test_bad_pairs_are_one_line(two_models, sts_files, tmp_path, capsys):
    a = eval_scores(two_models[0], sts_files, tmp_path / "a.json")
    plain = eval_scores(two_models[0], sts_files, tmp_path / "plain.json", save=False)
    assert not any("pairs" in entry for entry in json.loads(plain.read_text())["tasks"].values())  # not by default
    write_pairs(sts_files[0], 60, 9)  # the same file name, other pairs
    other = eval_scores(two_models[1], sts_files, tmp_path / "other.json")
    assert "different pairs" in one_line_refusal(["compare", "--scores", str(a), "--scores", str(other)], capsys)
    assert "no per-pair scores" in one_line_refusal(["compare", "--scores", str(a), "--scores", str(plain)], capsys)
    assert "no task stbs" in one_line_refusal(["compare", "--scores", str(a), "--scores", str(other), "--tasks",
                                               "stbs"], capsys)
    assert "unknown task" in one_line_refusal(["compare", "--model", str(two_models[0]), "--model",
                                               str(two_models[1]), "--tasks", "stbs"], capsys)
    assert "no such file" in one_line_refusal(["compare", "--scores", str(a), "--scores", "missing.json"], capsys)
    edited = json.loads(a.read_text())
    next(iter(edited["tasks"].values()))["pairs"]["cosine"][0] += 1.0
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert "not the recorded" in one_line_refusal(["compare", "--scores", str(a), "--scores",
                                                   str(tmp_path / "edited.json")], capsys)
    assert "--save-scores" in one_line_refusal(["eval", "--model", str(two_models[0]), "--save-scores"], capsys)


# -- groups of runs over seeds ----------------------------------------------------------------------------------
RECORD = {"python": "3.11.9", "torch": "2.13.0", "transformers": "5.25.0", "precision": "fp32", "device": "cpu"}


def fake_runs(root, name, shift, n, record=RECORD):
    """``n`` run directories with a summary.json whose test table is a base table + ``shift`` + seed noise."""
    rng = np.random.default_rng(len(name))
    base = {"sts12": 60.0, "stsb": 70.0, "sickr": 65.0}
    for seed in range(n):
        tasks = {t: {"spearman": v + shift + rng.normal(0, 0.3)} for t, v in base.items()}
        summary = {"test_after": {"tasks": tasks, "avg": float(np.mean([t["spearman"] for t in tasks.values()]))},
                   "reproducibility": {**record, "seed": seed}}
        run = root / "trials" / f"{name}-seed{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary))
    return f"{root}/trials/{name}-seed*"


def test_groups_over_seeds(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(seed_groups, "ASO_ITERATIONS", 100)
    higher, lower = fake_runs(tmp_path, "hi", 1.5, 5), fake_runs(tmp_path, "lo", 0.0, 5)
    assert run_cli(["compare", "--group", f"hi={higher}", "--group", f"lo={lower}", "--resamples", RESAMPLES,
                    "--output", str(tmp_path / "groups.json")]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""  # the records differ only in the seed
    (comparison,) = json.loads((tmp_path / "groups.json").read_text())["comparisons"]
    runs = {g: [json.loads(p.read_text())["test_after"]["tasks"]
                for p in sorted(tmp_path.glob(f"trials/{g}-*/summary.json"))] for g in ("hi", "lo")}
    for row in comparison["rows"][:-1]:
        hi, lo = ([r[row["task"]]["spearman"] for r in runs[g]] for g in ("hi", "lo"))
        assert row["mean_a"] == pytest.approx(np.mean(hi)) and row["std_b"] == pytest.approx(np.std(lo, ddof=1))
        assert row["delta"] == pytest.approx(np.mean(hi) - np.mean(lo)) and row["n_a"] == row["n_b"] == 5
    avg = comparison["rows"][-1]
    assert avg["task"] == "avg" and avg["ci"][0] > 0 and avg["aso_eps_min_a_over_b"] < 0.5
    verdict = comparison["verdict"]
    assert "both intervals exclude 0" in verdict and "hi almost stochastically dominates lo" in verdict
    assert ("(ε_min < 0.2)" in verdict) == (avg["aso_eps_min_a_over_b"] < 0.2)
    assert ("only weakly" in verdict) == (avg["aso_eps_min_a_over_b"] >= 0.2)
    assert "ε(A>B)" in printed.out


@pytest.mark.parametrize("eps, words", [
    ((0.05, 1.0), "a almost stochastically dominates b (ε_min < 0.2)"),
    ((1.0, 0.35), "b almost stochastically dominates a only weakly (ε_min below 0.5, not below the stricter 0.2)"),
    ((0.4, 0.45), "both below 0.5, no almost stochastic order"),
    ((0.6, 0.9), "neither below 0.5, no almost stochastic order")])
def test_aso_words_read_both_of_deepsigs_thresholds(eps, words):
    from simcse_lab.evaluation.comparison import aso_words

    assert aso_words("a", "b", *eps).endswith(words)


def test_few_runs_and_differing_records(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(seed_groups, "ASO_ITERATIONS", 100)
    two = fake_runs(tmp_path, "two", 0.5, 2, record={**RECORD, "torch": "2.12.0"})
    five = fake_runs(tmp_path, "five", 0.0, 5)
    assert run_cli(["compare", "--group", f"two={two}", "--group", f"five={five}", "--resamples", RESAMPLES,
                    "--output", str(tmp_path / "few.md")]) == 0
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "torch (2.12.0: 2 runs | 2.13.0: 5 runs)" in printed.err
    assert "seed" not in printed.err
    assert "n too small for an interval" in printed.out
    assert "n too small" in (tmp_path / "few.md").read_text()
    # the warning stays with the report it qualifies
    assert "**Warning**: the runs differ in their reproducibility record: torch (2.12.0: 2 runs | 2.13.0: 5 runs)" \
        in (tmp_path / "few.md").read_text()


def test_groups_chosen_by_training_options(tmp_path, capsys, monkeypatch):
    """A sweep names its trials by number: the variants are told apart by the options in their summary.json."""
    monkeypatch.setattr(seed_groups, "ASO_ITERATIONS", 100)
    for point, (objective, half_life, shift) in enumerate([("unsup", None, 0.0)] * 3 + [("esimcse", None, 0.5)] * 3
                                                          + [("esimcse", 6, 1.0)] * 3):
        run = tmp_path / "trials" / f"{point:04d}"
        run.mkdir(parents=True)
        tasks = {"stsb": {"spearman": 70.0 + shift + 0.1 * (point % 3)}}
        (run / "summary.json").write_text(json.dumps({
            "test_after": {"tasks": tasks}, "config": {"objective": objective, "momentum_half_life": half_life,
                                                       "seed": point % 3}}))
        (tmp_path / "trials" / f"{point:04d}.log").write_text("a trial's log beside its directory\n")
    trials = f"{tmp_path}/trials/*/"
    assert run_cli(["compare", "--group", f"unsup={trials}:objective=unsup", "--group",
                    f"esimcse={trials}:objective=esimcse,momentum_half_life=null", "--group",
                    f"hl6={trials}:momentum_half_life=6", "--resamples", RESAMPLES, "--aso", "avg",
                    "--output", str(tmp_path / "variants.json")]) == 0
    report = json.loads((tmp_path / "variants.json").read_text())
    assert report["groups"]["unsup"] == [str(tmp_path / "trials" / f"{i:04d}") for i in range(3)]
    assert [len(v) for v in report["groups"].values()] == [3, 3, 3]
    assert capsys.readouterr().err == "warning: 9 of 9 runs carry no reproducibility record\n"
    means = {(c["a"], c["b"]): c["rows"][-1]["delta"] for c in report["comparisons"]}
    for c in report["comparisons"]:  # --aso avg: ASO in the average's column only
        assert c["rows"][0]["aso_eps_min_a_over_b"] is None and c["rows"][-1]["aso_eps_min_a_over_b"] is not None
    assert means == pytest.approx({("unsup", "esimcse"): -0.5, ("unsup", "hl6"): -1.0, ("esimcse", "hl6"): -0.5})
    assert "no run matched has a training option 'objectiv'" in one_line_refusal(
        ["compare", "--group", f"a={trials}:objectiv=unsup", "--group", f"b={trials}"], capsys)
    assert "has objective=mlm" in one_line_refusal(
        ["compare", "--group", f"a={trials}:objective=mlm", "--group", f"b={trials}"], capsys)
    assert "not a JSON file" in one_line_refusal(  # the glob without the slash matches the logs too
        ["compare", "--group", f"a={tmp_path}/trials/*:objective=unsup", "--group", f"b={trials}"], capsys)


def test_bad_groups_are_one_line(tmp_path, capsys, monkeypatch):
    runs = fake_runs(tmp_path, "ok", 0.0, 3)
    with monkeypatch.context() as m:
        m.setitem(__import__("sys").modules, "deepsig", None)  # the stats extra not installed
        assert "simcse-lab[stats]" in one_line_refusal(["compare", "--group", f"a={runs}", "--group", f"b={runs}"],
                                                       capsys)
    assert "matches nothing" in one_line_refusal(["compare", "--group", f"a={runs}", "--group",
                                                  f"b={tmp_path}/nothing*"], capsys)
    assert "NAME=GLOB" in one_line_refusal(["compare", "--group", runs, "--group", f"b={runs}"], capsys)
    assert "in both" in one_line_refusal(["compare", "--group", f"a={runs}", "--group", f"b={runs}"], capsys)
    assert "at least two" in one_line_refusal(["compare", "--group", f"a={runs}"], capsys)
    (tmp_path / "unfinished").mkdir()
    assert "no such file" in one_line_refusal(["compare", "--group", f"a={runs}", "--group",
                                               f"b={tmp_path}/unfinished"], capsys)
    assert "no stsbx" in one_line_refusal(["compare", "--group", f"a={tmp_path}/trials/ok-seed[01]", "--group",
                                           f"b={tmp_path}/trials/ok-seed2", "--tasks", "stsbx"], capsys)


# -- a training run keeps its test table's per-pair scores --------------------------------------------------------
def test_training_runs_compare_without_encoding_again(tiny_bert, fake_sts, tmp_path, capsys):
    """train writes OUTPUT/test_scores.json (its test table with the per-pair scores; summary.json keeps the table
    without them): two runs compare on their test pairs with no second encoding."""
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_sentences(32)) + "\n")
    for seed in (1, 2):
        train(TrainConfig(model=str(tiny_bert), data=str(corpus), objective="unsup", pooler="cls", batch_size=8,
                          max_seq_len=16, lr=1e-3, max_steps=2, eval_steps=0, test_tasks="stsb,sickr", seed=seed,
                          precision="fp32", progress=False, output_dir=str(tmp_path / f"run{seed}")))
    runs = [tmp_path / f"run{seed}" for seed in (1, 2)]
    for run in runs:
        summary, scored = (json.loads((run / name).read_text()) for name in ("summary.json", "test_scores.json"))
        assert not any("pairs" in entry for entry in summary["test_after"]["tasks"].values())
        for task, entry in scored["tasks"].items():
            assert entry["spearman"] == summary["test_after"]["tasks"][task]["spearman"]
            assert 100.0 * spearmanr(entry["pairs"]["cosine"], entry["pairs"]["gold"])[0] == entry["spearman"]
    capsys.readouterr()
    assert run_cli(["compare", "--scores", str(runs[0] / "test_scores.json"), "--scores",
                    str(runs[1] / "test_scores.json"), "--resamples", RESAMPLES]) == 0
    out = capsys.readouterr()
    assert "STS-B" in out.out and "SICK-R" in out.out and out.err == ""
