"""train --select TASK:SPLIT:METRIC: OUTPUT/best is the checkpoint the selected metric scores best (a user's STS
file too, its direction respected), the default records exactly what it always did, and a bad --select is one
line, exit 2, before any model loads or anything is written."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import random_sentences, write_lines, one_line_refusal as _refused
from test_tasks import VOCAB, WordCounts

from simcse_lab.cli import main
from simcse_lab.evaluation.dev import dev_metrics, selection_metrics
from simcse_lab.evaluation.tasks import parse_select
from simcse_lab.training.run_state import RunState, select_best


def scored_file(path, rows):
    path.write_text("".join(json.dumps({"score": s, "sentence1": a, "sentence2": b}) + "\n" for s, a, b in rows))
    return path


# cosines of the encoder that sees every word: 1, 2/3, ~0, 1/2 (Spearman 80); of one blind to cat and dog: 1, 2/3,
# ~0, 1 ("a cat" and "a dog" look the same to it)
ROWS = [(5, "a cat sat", "a cat sat"), (3, "big red tree", "big red house"), (1, "small tree", "red house"),
        (0, "a cat", "a dog")]


def test_selection_picks_the_encoder_the_file_scores_best(tmp_path, monkeypatch):
    """Two encoders: one that sees every word, one blind to 'cat' and 'dog'; the file's Spearman picks the first,
    whichever is evaluated first."""
    path = scored_file(tmp_path / "my.jsonl", ROWS)
    seeing, blind = WordCounts(VOCAB), WordCounts(VOCAB, [0 if w in ("cat", "dog") else 1 for w in VOCAB])
    saved = []
    # what OUTPUT/best would be written from: the encoder is passed where the tokenizer goes, to be seen here
    monkeypatch.setattr("simcse_lab.training.run_state.save_embedder", lambda model, tok, out: saved.append(tok))
    model = torch.nn.Linear(1, 1)
    selection = parse_select(f"sts:{path}:spearman")
    selection.task.check(selection.split)
    for order in ((blind, seeing), (seeing, blind)):
        run, saved[:] = RunState(), []
        for step, encoder in enumerate(order, start=1):
            run.step = step
            record = selection_metrics(encoder, selection)
            assert set(record) == {f"sts:{path}:spearman", "alignment", "uniformity"}
            select_best(run, record, model, encoder, tmp_path, selection)
        assert saved[-1] is seeing and run.best == selection_metrics(seeing, selection)[selection.key]
    assert selection_metrics(seeing, selection)[selection.key] == pytest.approx(80.0)
    assert selection_metrics(blind, selection)[selection.key] < 80.0


def test_the_default_selection_records_what_it_always_did(mirror_env):
    from simcse_lab.evaluation.sts import load_task

    words = sorted({w for ps in load_task("stsb", "dev").values() for s in ps.sent1 + ps.sent2 for w in s.split()})
    encoder = WordCounts(words)
    assert selection_metrics(encoder, parse_select("stsb:dev:spearman")) == dev_metrics(encoder)
    assert list(dev_metrics(encoder)) == ["dev_spearman", "alignment", "uniformity"]


def train_run(tmp_path, model, name: str, *flags: str) -> tuple[dict, list[dict]]:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        write_lines(corpus, random_sentences(96))
    out = tmp_path / name
    with pytest.raises(SystemExit) as done:
        main(["train", "--model", str(model), "--data", str(corpus), "--batch-size", "8", "--max-seq-len", "16",
              "--lr", "1e-3", "--eval-steps", "1", "--max-steps", "3", "--test-tasks", "none", "--precision", "fp32",
              "--log-steps", "1", "--no-progress", "--seed", "7", "--eval-batch-size", "512", "--output-dir", str(out),
              *flags])
    assert done.value.code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return json.loads((out / "summary.json").read_text()), records


def test_select_with_a_user_sts_file_picks_the_checkpoint_it_scores_best(tmp_path, tiny_bert, mirror_env):
    """The user's file holds STS-B dev with its gold reversed (5 - gold): its Spearman is minus STS-B dev's at every
    evaluation, so --select on it keeps the checkpoint STS-B dev likes least, and the default the one it likes most."""
    from simcse_lab.evaluation.sts import load_task
    from simcse_lab.modeling.encoder import Encoder

    (pairs,) = load_task("stsb", "dev").values()
    rev = scored_file(tmp_path / "rev.jsonl", [(5 - g, a, b) for a, b, g in zip(pairs.sent1, pairs.sent2, pairs.scores)])
    default, default_records = train_run(tmp_path, tiny_bert, "default")
    chosen, records = train_run(tmp_path, tiny_bert, "rev", "--select", f"sts:{rev}:spearman")
    key = f"sts:{rev}:spearman"
    dev = {r["step"]: r["dev_spearman"] for r in default_records if "dev_spearman" in r}
    mine = {r["step"]: r[key] for r in records if key in r}
    assert sorted(dev) == sorted(mine) == [0, 1, 2, 3]
    # the same seeded run up to step 2: the file's Spearman is STS-B dev's, negated. After step 2 exactly one of
    # the two runs wrote best/, whose module initialisation draws from torch's RNG (see select_best): the
    # trajectories part there
    for step in (0, 1, 2):
        assert mine[step] == pytest.approx(-dev[step], abs=1e-6), (step, dev, mine)
    candidates = [1, 2, 3]  # the dev evaluations after a step (step 0 is the untrained model's record)
    assert len({round(dev[s], 6) for s in candidates}) == 3, "the trajectory must distinguish the checkpoints"
    assert default["best_step"] == max(candidates, key=dev.get) and default["best_dev_spearman"] == max(dev[s] for s in candidates)
    assert "select" not in default and "best_select" not in default
    assert chosen["best_step"] == max(candidates, key=mine.get) != default["best_step"]
    assert chosen["select"] == key and chosen["best_select"] == mine[chosen["best_step"]]
    assert "best_dev_spearman" not in chosen
    # OUTPUT/best is that checkpoint: the file scores it as recorded
    task = parse_select(key).task
    again = task.evaluate(Encoder(str(tmp_path / "rev" / "best"), precision="fp32", batch_size=512), "file")
    assert again["spearman"] == pytest.approx(chosen["best_select"], abs=1e-4)


@pytest.mark.parametrize("select, problem", [
    ("stsb:dev:accuracy", "task stsb has no metric 'accuracy'; it reports spearman, pearson"),
    ("nope:dev:spearman", "unknown task 'nope'"),
    ("sts:{bad}:spearman", "bad.tsv:3: score 'x' is not a number"),
    ("sts:{bad}:mrr@10", "has no metric 'mrr@10'")])
def test_a_bad_select_is_one_line_before_any_model_loads(tmp_path, capsys, monkeypatch, select, problem):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before --select was checked")

    monkeypatch.setattr("simcse_lab.modeling.resolve.check_loadable", refuse)
    monkeypatch.setattr("simcse_lab.modeling.embedder.load_embedder", refuse)
    bad = tmp_path / "bad.tsv"
    bad.write_text("score\tsentence1\tsentence2\n1\ta\tb\nx\tc\td\n")
    corpus = write_lines(tmp_path / "c.txt", random_sentences(16))
    out = tmp_path / "out"
    err = _refused(["train", "--model", str(tmp_path), "--data", str(corpus), "--output-dir", str(out),
                    "--select", select.format(bad=bad)], capsys)
    assert problem in err and not out.exists()


def test_resume_refuses_a_select_file_whose_content_changed(tmp_path, tiny_bert, capsys):
    """The checkpoint is chosen on the --select file's content: --resume under the same path with other pairs is
    another run (one line, exit 2); with the same content it continues."""
    mine = scored_file(tmp_path / "mine.jsonl", ROWS)
    chosen, _ = train_run(tmp_path, tiny_bert, "run", "--select", f"sts:{mine}:spearman", "--save-steps", "2")
    assert len(chosen["data"]["select_sha256"]) == 64
    again = ["train", "--model", str(tiny_bert), "--data", str(tmp_path / "corpus.txt"), "--batch-size", "8",
             "--max-seq-len", "16", "--lr", "1e-3", "--eval-steps", "1", "--max-steps", "3", "--test-tasks", "none",
             "--precision", "fp32", "--log-steps", "1", "--no-progress", "--seed", "7", "--eval-batch-size", "512",
             "--save-steps", "2", "--output-dir", str(tmp_path / "run"), "--select", f"sts:{mine}:spearman", "--resume"]
    scored_file(mine, [(5 - s, a, b) for s, a, b in ROWS])  # other gold scores under the same name
    err = _refused(again, capsys)
    assert "--resume with changed --select file content" in err and "use another --output-dir" in err
    scored_file(mine, ROWS)
    with pytest.raises(SystemExit) as done:
        main(again)
    assert done.value.code == 0
