"""The training loop on a tiny random BERT: sentence-transformers export, resume after kill -9, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import WORDS, killed_at_checkpoint, random_sentences, write_lines

from simcse_lab.errors import UserError
from simcse_lab.training.config import TrainConfig, load_config


def corpus(path: Path, n: int = 96) -> Path:
    return write_lines(path, random_sentences(n))


def config(tmp_path, model, **kw) -> TrainConfig:
    base = dict(model=str(model), data=str(corpus(tmp_path / "corpus.txt")), batch_size=8, max_seq_len=16,
                lr=1e-3, eval_steps=0, test_tasks="none", precision="fp32", log_steps=1, progress=False)
    return TrainConfig(**{**base, **kw})


def losses(run: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.mark.parametrize("mlp_only_train", [False, True])
def test_export_round_trips_through_sentence_transformers(tmp_path, tiny_bert, mlp_only_train):
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.encoder import EmbedderEncoder
    from simcse_lab.training.loop import train

    out = tmp_path / "run"
    train(config(tmp_path, tiny_bert, objective="unsup", pooler="cls", mlp_only_train=mlp_only_train,
                 max_steps=2, output_dir=str(out)))
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "final" / "modules.json").read_text())]
    assert modules == (["Transformer", "Pooling"] if mlp_only_train else ["Transformer", "Pooling", "Dense"])

    # our evaluation path on the trained weights, from the training state saved at the end
    import torch

    tokenizer, embedder = load_embedder(str(tiny_bert), "cls", mlp_only_train)
    state = torch.load(out / "checkpoints" / "step-0000002" / "state.pt", weights_only=True)
    embedder.load_state_dict(state["model"])
    sentences = ["the cat sat on the table", "a big red house", "dog"]
    ours = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny").encode(sentences)
    st = SentenceTransformer(str(out / "final"), device="cpu").encode(sentences, convert_to_numpy=True)
    np.testing.assert_allclose(st, ours, atol=1e-5)
    if not mlp_only_train:  # the kept MLP is really applied: the raw [CLS] differs
        embedder.mlp_only_train = True
        raw = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny").encode(sentences)
        assert np.abs(raw - st).max() > 1e-3


def test_resume_after_kill_reproduces_uninterrupted_losses(tmp_path, tiny_bert):
    from simcse_lab.training.loop import train

    common = dict(objective="esimcse", pooler="avg", max_steps=8, save_steps=2, queue_ratio=1.0)
    full = tmp_path / "full"
    train(config(tmp_path, tiny_bert, output_dir=str(full), **common))

    cut = tmp_path / "cut"
    cfg = config(tmp_path, tiny_bert, output_dir=str(cut), **common)
    args = [sys.executable, "-m", "simcse_lab", "train", "--model", cfg.model, "--data", cfg.data,
            "--objective", "esimcse", "--pooler", "avg", "--max-steps", "8", "--save-steps", "2",
            "--queue-ratio", "1.0", "--batch-size", "8", "--max-seq-len", "16", "--lr", "1e-3", "--eval-steps", "0",
            "--test-tasks", "none", "--precision", "fp32", "--log-steps", "1", "--no-progress",
            "--output-dir", str(cut)]
    killed_at_checkpoint(args, cut / "checkpoints" / "step-0000004", timeout=120)
    assert not (cut / "final").exists(), "killed too late to test resuming"
    (cut / "checkpoints" / ".tmp-step-0000099").mkdir()  # a half-written checkpoint must be ignored

    with pytest.raises(UserError, match="--resume"):
        train(cfg)
    cfg.resume = True
    train(cfg)
    expected, got = losses(full), losses(cut)
    assert sorted(got) == list(range(1, 9))
    for step in range(1, 9):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    assert len(set(round(v, 6) for v in expected.values())) > 1  # the losses really move


@pytest.mark.parametrize("name", ["unsup", "sup", "esimcse"])
def test_shipped_configs_load(name):
    cfg = load_config(f"configs/{name}.yaml")
    assert cfg.objective == name


def test_cli_rejects_bad_input(tmp_path, tiny_bert, capsys):
    from simcse_lab.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--model", str(tiny_bert), "--data", str(tmp_path / "nope.txt"), "--output-dir", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"simcse-lab: error: {tmp_path / 'nope.txt'}: no such file\n"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--objective", "sup", "--model", str(tiny_bert), "--data", str(corpus(tmp_path / "c.txt")),
              "--output-dir", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "objective sup needs (sent0, sent1, hard_neg) triplets" in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_sup_with_auxiliary_mlm_and_dev_selection(tmp_path, tiny_bert, mirror_env):
    """sup on a triplet csv with --do-mlm; dev evaluation writes alignment/uniformity and keeps D/best."""
    from simcse_lab.training.loop import train

    rng = np.random.default_rng(1)
    rows = ["sent0,sent1,hard_neg"] + [",".join(" ".join(rng.choice(WORDS, size=5)) for _ in range(3)) for _ in range(32)]
    data = tmp_path / "triplets.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "sup"
    summary = train(config(tmp_path, tiny_bert, objective="sup", data=str(data), pooler="cls", mlp_only_train=False,
                           do_mlm=True, max_steps=2, eval_steps=2, eval_batch_size=256, output_dir=str(out)))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(k in records[-1] for k in ("dev_spearman", "alignment", "uniformity", "loss", "sentences_per_s"))
    assert summary["best_step"] == 2 and summary["best_dev_spearman"] == records[-1]["dev_spearman"]
    assert (out / "best" / "modules.json").is_file() and (out / "final" / "modules.json").is_file()


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, tiny_bert):
    from simcse_lab.training.loop import train

    out = tmp_path / "nan"
    # Adam moves every weight by ~lr: lr 1e30 overflows the activations right after the first step
    cfg = config(tmp_path, tiny_bert, objective="unsup", pooler="avg", lr=1e30, max_grad_norm=0.0, max_steps=5,
                 save_steps=1, output_dir=str(out))
    with pytest.raises(UserError, match=r"loss is (nan|inf|-inf) at step 2; stopped\. Last good checkpoint: .*step-0000001"):
        train(cfg)
    assert (out / "checkpoints" / "step-0000001" / "state.pt").is_file()
    assert not (out / "checkpoints" / "step-0000002").exists()


def test_resume_refuses_changed_run_settings_and_a_cut_metrics_line(tmp_path, tiny_bert):
    from simcse_lab.training.loop import train

    run = tmp_path / "run"
    train(config(tmp_path, tiny_bert, output_dir=str(run), objective="unsup", pooler="avg", max_steps=2,
                 save_steps=2))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a record cut short by kill -9
    with pytest.raises(UserError, match="--resume with changed objective, batch_size"):
        train(config(tmp_path, tiny_bert, output_dir=str(run), objective="esimcse", pooler="avg", max_steps=2,
                     save_steps=2, batch_size=4, resume=True))
    # the loss's settings define the run too: the temperature, an auxiliary loss, the objective's own options
    with pytest.raises(UserError, match=r"--resume with changed temperature, cos_reg \(saved: temperature=0\.05, "
                                        r"cos_reg=0\.0\)"):
        train(config(tmp_path, tiny_bert, output_dir=str(run), objective="unsup", pooler="avg", max_steps=2,
                     save_steps=2, temperature=0.1, cos_reg=0.5, resume=True))
    # same settings: resumes at step 2 (already done), keeps the complete records, drops the cut one
    train(config(tmp_path, tiny_bert, output_dir=str(run), objective="unsup", pooler="avg", max_steps=2,
                 save_steps=2, resume=True))
    assert sorted(losses(run)) == [1, 2]


def test_resume_refuses_a_changed_option_of_its_objective_only(tmp_path, tiny_bert):
    from simcse_lab.training.loop import train

    run = tmp_path / "run"
    settings = dict(output_dir=str(run), objective="esimcse", pooler="avg", max_steps=2, save_steps=2)
    train(config(tmp_path, tiny_bert, **settings))
    with pytest.raises(UserError, match=r"--resume with changed momentum, momentum_half_life "
                                        r"\(saved: momentum=0\.995, momentum_half_life=0\.0\)"):
        train(config(tmp_path, tiny_bert, **settings, momentum_half_life=6.0, resume=True))
    # an option of another objective has no effect on this run: resuming with it changed is the same run
    train(config(tmp_path, tiny_bert, **settings, hard_negative_weight=1.0, resume=True))
    assert sorted(losses(run)) == [1, 2]
