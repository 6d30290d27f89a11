"""No compute on padding, same function: length-sorted chunks against one padded batch (dropout off), the
optimised training step against the plain one over 50 steps, and the FLOP counts the log reports."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_tiny_bert, masked_copy, padded_batch, random_sentences, write_lines

from simcse_lab.modeling.embedder import PassSwitches, RowRun
from simcse_lab.modeling.length_chunks import chunk_plan, chunked_forward, row_extents
from simcse_lab.runtime.flops import forward_flops, layer_flops, padded_widths


@pytest.fixture(scope="module")
def still_bert(tmp_path_factory):
    """A tiny BERT with dropout off: training-mode passes are deterministic."""
    return make_tiny_bert(tmp_path_factory.mktemp("still-bert"), seed=3, dropout=0.0)


def test_plan_sorts_rows_by_length_and_cuts_each_chunk_to_its_longest():
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    assert row_extents(mask).tolist() == [2, 5, 1, 3, 0]
    plan = chunk_plan(mask, 2)
    assert [rows.tolist() for rows, _ in plan] == [[1, 3, 0], [2, 4]]
    assert [width for _, width in plan] == [5, 1]
    # a hole inside a row is kept: only the padded tail is cut
    assert row_extents(torch.tensor([[1, 0, 1, 0]])).tolist() == [3]


def test_rows_come_back_in_their_own_order():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    ids = torch.arange(12).view(4, 3)
    seen = []

    def forward(part):
        seen.append(tuple(part["input_ids"].shape))
        return part["input_ids"][:, :1].float()  # each row's first id identifies it

    out = chunked_forward(forward, {"input_ids": ids, "attention_mask": mask}, chunks=3)
    assert out[:, 0].tolist() == [0, 3, 6, 9]
    assert seen == [(2, 3), (1, 2), (1, 1)]


@pytest.mark.parametrize("pooler", ["cls", "avg", "avg_first_last"])
def test_chunked_forward_equals_the_padded_batch_with_dropout_off(still_bert, pooler):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(still_bert), pooler, mlp_only_train=False)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(13, seed=1, lengths=(1, 20)))
    whole = embedder(**batch, switches=PassSwitches(chunks=1))
    whole.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in embedder.named_parameters() if p.grad is not None}
    embedder.zero_grad()
    for chunks in (2, 4, 13):
        parts = embedder(**batch, switches=PassSwitches(chunks=chunks))
        torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)
        parts.square().sum().backward()
        for name, p in embedder.named_parameters():
            if name in grads:
                torch.testing.assert_close(p.grad, grads[name], atol=1e-5, rtol=1e-4, msg=name)
        embedder.zero_grad()


def test_chunked_mlm_loss_is_the_mean_over_the_whole_batch(still_bert):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(still_bert), "cls", mlp_only_train=True, do_mlm=True)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(10, seed=2, lengths=(2, 20)))
    masked, labels = masked_copy(tokenizer, batch)
    assert (labels != -100).sum() > 0
    whole_vectors, whole_loss = embedder(**batch, mlm_input_ids=masked, mlm_labels=labels,
                                         switches=PassSwitches(chunks=1))
    logits = embedder.lm_head(embedder.backbone(**{**batch, "input_ids": masked}).last_hidden_state)
    by_hand = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(whole_loss, by_hand, atol=1e-5, rtol=1e-5)
    vectors, loss = embedder(**batch, mlm_input_ids=masked, mlm_labels=labels, switches=PassSwitches(chunks=3))
    torch.testing.assert_close(vectors, whole_vectors, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, whole_loss, atol=1e-5, rtol=1e-5)


def test_eval_mode_runs_the_batch_as_given(still_bert):
    from simcse_lab.modeling.embedder import load_embedder

    _, embedder = load_embedder(str(still_bert), "avg", mlp_only_train=False, rows=RowRun(length_chunks=4))
    calls = []
    embedder.backbone.register_forward_hook(lambda module, args, kwargs, out: calls.append(1), with_kwargs=True)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0]])
    ids = torch.full((4, 3), 1000)
    embedder.eval()
    embedder(input_ids=ids, attention_mask=mask)
    assert len(calls) == 1
    embedder.train()
    embedder(input_ids=ids, attention_mask=mask)
    assert len(calls) == 1 + 4


def test_the_optimised_step_gives_the_plain_steps_loss_curve(tmp_path, still_bert):
    """50 steps of unsup with dropout off: chunks + fused AdamW against one padded batch + for-loop AdamW."""
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    data = write_lines(tmp_path / "corpus.txt", random_sentences(400, seed=4, lengths=(2, 24)))
    curves = {}
    for name, speed in {"plain": dict(length_chunks=1, adamw="for-loop"),
                        "optimised": dict(length_chunks=4, adamw="fused")}.items():
        out = tmp_path / name
        train(TrainConfig(model=str(still_bert), data=str(data), batch_size=16, max_seq_len=24, lr=1e-4,
                          max_steps=50, eval_steps=0, test_tasks="none", precision="fp32", log_steps=1,
                          progress=False, output_dir=str(out), **speed))
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        curves[name] = [r["loss"] for r in records]
        assert all(r["tokens_per_s"] > 0 and r["achieved_tflops"] > 0 for r in records)
    assert len(curves["plain"]) == 50
    # the loss moves, so equal curves are not equal by accident; float rounding differs (chunked matmuls, a
    # fused kernel) and Adam amplifies it a little on near-zero gradients: 2e-6 measured over the 50 steps
    assert curves["plain"][0] - min(curves["plain"]) > 0.05
    torch.testing.assert_close(torch.tensor(curves["optimised"]), torch.tensor(curves["plain"]), atol=2e-5, rtol=0)


def test_padded_flops_follow_the_chunks_the_encoder_runs():
    lengths = [5, 9, 3, 7, 2]
    assert padded_widths(lengths, 1) == [9] * 5
    assert padded_widths(lengths, 2) == [9, 9, 9, 3, 3]  # [9, 7, 5] and [3, 2], as chunk_plan splits
    mask = torch.tensor([[1] * n + [0] * (9 - n) for n in lengths])
    assert sorted(w for rows, w in chunk_plan(mask, 2) for _ in rows) == sorted(padded_widths(lengths, 2))
    h, f, layers = 8, 32, 2
    real = forward_flops(lengths, h, f, layers, padded=False)
    assert real == layers * sum(layer_flops(n, h, f) for n in lengths)
    assert real < forward_flops(lengths, h, f, layers, padded=True, chunks=2) < forward_flops(lengths, h, f, layers,
                                                                                               padded=True)


def test_step_work_counts_trained_and_forward_only_inputs():
    from types import SimpleNamespace

    from simcse_lab.training.throughput import StepWork

    config = SimpleNamespace(hidden_size=8, intermediate_size=32, num_hidden_layers=2)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    one = forward_flops([3, 2], 8, 32, 2, padded=False)
    plain = SimpleNamespace(mlm=None, forward_only_inputs=())  # what the Objective base declares
    assert StepWork(plain, config)({"input_ids": mask, "attention_mask": mask}) == (5, 3 * one)
    momentum = SimpleNamespace(mlm=None, forward_only_inputs=("momentum",))
    nested = {"online": {"attention_mask": mask}, "momentum": {"attention_mask": mask}}
    assert StepWork(momentum, config)(nested) == (10, 4 * one)
    with_mlm = SimpleNamespace(mlm=object(), forward_only_inputs=())
    assert StepWork(with_mlm, config)({"attention_mask": mask}) == (10, 6 * one)
    assert StepWork(plain, config, chunks=2).padded_flops({"attention_mask": mask}) == 3 * one
    assert StepWork(plain, config).padded_flops({"attention_mask": mask}) == 3 * forward_flops([3, 3], 8, 32, 2, False)
