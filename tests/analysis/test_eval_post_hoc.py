"""``simcse-lab eval --whiten CORPUS`` / ``--flow CORPUS`` on a tiny random BERT with the shared data: the
score is the one of the fitted map applied by hand, the fit's settings are in the output JSON, and bad
settings are refused before any model is loaded."""

from __future__ import annotations

import json

import pytest

from simcse_lab import cli


def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the flow's many tiny ops
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("method", ["whiten", "flow"])
def test_eval_through_a_post_hoc_map(tiny_bert, mirror_env, tmp_path, method, capsys):
    from simcse_lab.analysis.flow import FlowSettings, fit_flow
    from simcse_lab.analysis.inputs import load_corpus
    from simcse_lab.analysis.post_hoc import MappedEncoder
    from simcse_lab.analysis.whitening import fit_whitening
    from simcse_lab.evaluation.sts import evaluate
    from simcse_lab.modeling.encoder import Encoder

    base = ["eval", "--model", str(tiny_bert), "--pooler", "avg", "--tasks", "stsb", "--precision", "fp32"]
    out = tmp_path / "result.json"
    extra = ["--whiten-k", "16"] if method == "whiten" else ["--flow-levels", "2", "--flow-epochs", "2"]
    assert run_cli(base + [f"--{method}", "wiki", "--fit-max", "300", "--seed", "3", "--output", str(out),
                           *extra]) == 0
    result = json.loads(out.read_text())
    fit = result["post_hoc"]
    assert fit["corpus"] == "wiki" and fit["fitted_on"] == 300 and fit["seed"] == 3
    assert f"+ {fit['method']}" in capsys.readouterr().out

    # the same fit by hand gives the same score
    encoder = Encoder(str(tiny_bert), pooler="avg", precision="fp32")
    vectors = encoder.encode(load_corpus("wiki", "train", limit=300, seed=3))
    if method == "whiten":
        assert fit["method"] == "whitening" and fit["k"] == 16
        wrapped = MappedEncoder(encoder, fit_whitening(vectors, k=16))
    else:
        assert fit["method"] == "flow" and fit["levels"] == 2 and fit["steps"] == 19  # ceil(2 * 300 / 32)
        wrapped = MappedEncoder(encoder, fit_flow(vectors, FlowSettings(levels=2, epochs=2), seed=3))
    expected = evaluate(wrapped, ["stsb"], "test")
    assert result["avg"] == pytest.approx(expected["avg"], abs=1e-6)
    plain = evaluate(encoder, ["stsb"], "test")
    assert abs(result["avg"] - plain["avg"]) > 0.01  # the map is really applied


def test_eval_post_hoc_bad_input(tmp_path, capsys):
    argv = ["eval", "--model", "all-MiniLM-L6-v2", "--tasks", "stsb"]
    assert run_cli(argv + ["--whiten", "wiki", "--flow", "wiki"]) == 2  # one map at a time (argparse)
    capsys.readouterr()
    for flags, message in ((["--flow", "wiki", "--flow-depth", "0"], "flow depth must be >= 1"),
                           (["--flow", str(tmp_path / "missing.txt")], "missing.txt: no such file"),
                           (["--whiten", "wiki", "--fit-max", "0"], "--fit-max must be at least 1")):
        assert run_cli(argv + flags) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
