"""A training run's trajectory: --keep-checkpoints keeps every training state, an encoder is rebuilt from a
state's weights (the modeling function analyze uses), and ``analyze --trajectory RUN_DIR`` measures the
starting model and every checkpoint in step order, equal to analysing the same weights saved as a model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import random_sentences, rewrite_state, write_lines

from simcse_lab.errors import UserError


def test_keep_checkpoints_zero_keeps_every_state(tmp_path):
    from simcse_lab.training.checkpoint import list_checkpoints, save_checkpoint

    accelerator = SimpleNamespace(is_main_process=True, process_index=0, wait_for_everyone=lambda: None)
    state = {"model": {"w": torch.zeros(2)}}
    for keep, expected in ((0, [1, 2, 3, 4]), (2, [3, 4])):
        run = tmp_path / f"keep{keep}"
        for step in range(1, 5):
            save_checkpoint(run, step, state, accelerator, keep=keep)
        assert [step for step, _ in list_checkpoints(run)] == expected


def test_encoder_from_embedder_state_reproduces_the_embedder(tiny_bert):
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.encoder import EmbedderEncoder, Encoder

    tokenizer, embedder = load_embedder(str(tiny_bert), "cls", mlp_only_train=False)
    torch.manual_seed(1)
    with torch.no_grad():  # weights unlike the saved model's, so loading them is visible
        for p in embedder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = embedder.state_dict()
    sentences = ["the cat sat on the mat", "a red house", "dog"]
    ours = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny").encode(sentences)
    rebuilt = Encoder.from_embedder_state(str(tiny_bert), state, "cls", name="step-7", precision="fp32", device="cpu")
    np.testing.assert_allclose(rebuilt.encode(sentences), ours, atol=1e-5)
    assert rebuilt.describe()["model"] == "step-7" and rebuilt.describe()["pooler"] == "cls"
    embedder.mlp_only_train = True  # the same state without its MLP: the raw [CLS]
    raw = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny").encode(sentences)
    plain = Encoder.from_embedder_state(str(tiny_bert), state, "cls_before_pooler", name="s", precision="fp32",
                                        device="cpu")
    np.testing.assert_allclose(plain.encode(sentences), raw, atol=1e-5)
    assert np.abs(raw - ours).max() > 1e-3
    base = Encoder(str(tiny_bert), pooler="cls_before_pooler", precision="fp32", device="cpu").encode(sentences)
    assert np.abs(base - raw).max() > 1e-3  # the rebuilt encoder does not hold the base weights

    no_mlp = {k: v for k, v in state.items() if not k.startswith("mlp.")}
    with pytest.raises(UserError, match="needs the run's trained MLP"):
        Encoder.from_embedder_state(str(tiny_bert), no_mlp, "cls", name="s", device="cpu")
    with pytest.raises(UserError, match="not a SimCSE embedder state"):
        Encoder.from_embedder_state(str(tiny_bert), {"weight": torch.zeros(1)}, "avg", name="s", device="cpu")
    cut = {k: v for k, v in state.items() if "layer.1." not in k}
    with pytest.raises(UserError, match="do not fit"):
        Encoder.from_embedder_state(str(tiny_bert), cut, "avg", name="s", device="cpu")


def run_cli(argv):
    from simcse_lab import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


def test_analyze_trajectory_of_a_run_directory(tmp_path, tiny_bert):
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    run = tmp_path / "run"
    data = write_lines(tmp_path / "corpus.txt", random_sentences(64))
    train(TrainConfig(model=str(tiny_bert), data=str(data), objective="unsup", pooler="avg", batch_size=8,
                      max_seq_len=16, lr=1e-3, max_steps=3, save_steps=1, keep_checkpoints=0, eval_steps=0,
                      test_tasks="none", precision="fp32", log_steps=1, progress=False, output_dir=str(run)))
    sentences = write_lines(tmp_path / "analysis.txt", random_sentences(40, seed=5))
    common = ["--data", str(sentences), "--no-tokens", "--token-dynamics-min-contexts", "2", "--precision", "fp32"]
    assert run_cli(["analyze", "--trajectory", str(run), "--output-dir", str(tmp_path / "traj"), *common]) == 0
    report = json.loads((tmp_path / "traj" / "report.json").read_text())
    t = report["trajectory"]
    assert [p["step"] for p in t["checkpoints"]] == [0, 1, 2, 3]
    assert t["pooler"] == "avg" and t["model"] == str(tiny_bert)
    assert "no record has a 'alignment' value" in t["metrics_note"]  # --eval-steps 0: no dev curve, said so
    assert all("token_dynamics" in p for p in t["checkpoints"])
    isoscores = [p["sentence"]["isoscore"] for p in t["checkpoints"]]
    assert len(set(isoscores)) == 4  # every point holds different weights

    # the last checkpoint holds the weights of run/final; step 0 the starting model: analysing those directly
    # gives the same numbers
    assert run_cli(["analyze", "--model", f"{run / 'final'}@avg", "--compare", f"{tiny_bert}@avg",
                    "--output-dir", str(tmp_path / "direct"), *common]) == 0
    final, start = json.loads((tmp_path / "direct" / "report.json").read_text())["checkpoints"]
    for point, direct in ((t["checkpoints"][-1], final), (t["checkpoints"][0], start)):
        for key in ("isoscore", "mean_cosine", "uniformity"):
            assert point["sentence"][key] == pytest.approx(direct["sentence"][key], rel=1e-4, abs=1e-6)
        assert point["token_dynamics"]["layers"][-1]["intra_similarity"] == pytest.approx(
            direct["token_dynamics"]["layers"][-1]["intra_similarity"], rel=1e-5)
    assert (tmp_path / "traj" / "checkpoint_trajectory.png").stat().st_size > 1000
    md = (tmp_path / "traj" / "report.md").read_text()
    assert "## Training trajectory" in md and "| 3 |" in md


def test_trajectory_input_errors(tmp_path, capsys):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    assert run_cli(["analyze", "--trajectory", str(empty), "--output-dir", str(tmp_path / "o")]) == 2
    assert "train_config.json: no such file" in capsys.readouterr().err
    (empty / "train_config.json").write_text(json.dumps({"model": "all-MiniLM-L6-v2", "pooler": "cls",
                                                         "mlp_only_train": True}))
    assert run_cli(["analyze", "--trajectory", str(empty), "--output-dir", str(tmp_path / "o")]) == 2
    assert "no saved checkpoints" in capsys.readouterr().err
    (empty / "train_config.json").write_text("{broken")
    assert run_cli(["analyze", "--trajectory", str(empty), "--output-dir", str(tmp_path / "o")]) == 2
    assert "train_config.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()




def test_trajectory_checks_every_checkpoint_before_measuring_any(tmp_path, tiny_bert, capsys, monkeypatch):
    """A damaged checkpoint (any of them) is refused before the model loads and before any point is measured; a
    wrongly shaped one once the starting model is known, still before measuring. The hint fits the command."""
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    run = tmp_path / "run"
    data = write_lines(tmp_path / "corpus.txt", random_sentences(32))
    train(TrainConfig(model=str(tiny_bert), data=str(data), objective="unsup", pooler="avg", batch_size=8,
                      max_seq_len=16, max_steps=3, save_steps=1, keep_checkpoints=0, eval_steps=0,
                      test_tasks="none", precision="fp32", progress=False, output_dir=str(run)))
    sentences = write_lines(tmp_path / "analysis.txt", random_sentences(20, seed=5))
    argv = ["analyze", "--trajectory", str(run), "--output-dir", str(tmp_path / "traj"), "--data", str(sentences),
            "--no-tokens", "--no-token-dynamics", "--precision", "fp32"]
    last = run / "checkpoints" / "step-0000003"
    good = (last / "state.pt").read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    (last / "state.pt").write_bytes(bytes(damaged))
    with monkeypatch.context() as m:
        m.setattr("simcse_lab.modeling.encoder.Encoder", lambda *a, **k: pytest.fail("a model was loaded"))
        assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{last / 'state.pt'}: sha256 differs" in err
    assert f"move step-0000003 out of {last.parent} to measure the others" in err and "--resume" not in err
    assert not (tmp_path / "traj").exists()

    (last / "state.pt").write_bytes(good)
    middle = run / "checkpoints" / "step-0000002"
    key = "backbone.encoder.layer.0.attention.self.query.weight"
    rewrite_state(middle, lambda state: state["model"].__setitem__(key, torch.zeros(3, 5)))
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert f"{middle / 'state.pt'}: tensor {key!r} has shape [3, 5]" in err and "Traceback" not in err
    assert f"move step-0000002 out of {middle.parent} to measure the others" in err
    assert "trajectory: step 0" not in err  # nothing measured yet


def test_a_trajectory_point_of_an_instruction_run_is_the_runs_own_encoder(tmp_path, tiny_bert):
    """--instruction: every point (step 0 too) embeds with the run's instruction, as its saved model does."""
    from simcse_lab.commands.analyze import measure_run, read_run
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    run = tmp_path / "run"
    data = write_lines(tmp_path / "corpus.txt", random_sentences(32))
    train(TrainConfig(model=str(tiny_bert), data=str(data), objective="unsup", pooler="avg", batch_size=8,
                      max_seq_len=24, lr=1e-3, max_steps=1, save_steps=1, keep_checkpoints=0, eval_steps=0,
                      test_tasks="none", precision="fp32", log_steps=1, progress=False, output_dir=str(run),
                      instruction="Represent the sentence: "))
    sentences = random_sentences(6, seed=5)
    run_dir, steps = read_run(run)
    points = measure_run(run_dir, steps, SimpleNamespace(precision="fp32", batch_size=8), lambda encoder, label: {
        "vectors": encoder.encode(sentences), "instruction": encoder.instruction})
    assert [p["step"] for p in points] == [0, 1]
    assert all(p["instruction"] == "Represent the sentence: " for p in points)
    own = Encoder(str(run / "final"), precision="fp32", device="cpu").encode(sentences)
    np.testing.assert_allclose(points[-1]["vectors"], own, atol=1e-5)
    start = dict(pooler="avg", precision="fp32", device="cpu")
    np.testing.assert_allclose(points[0]["vectors"], Encoder(str(tiny_bert), instruction="Represent the sentence: ",
                                                             **start).encode(sentences), atol=1e-5)
    plain = Encoder(str(tiny_bert), instruction="", **start).encode(sentences)
    assert np.abs(plain - points[0]["vectors"]).max() > 1e-3  # the instruction changes the vectors
