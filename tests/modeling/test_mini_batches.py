"""Mini-batches recomputed in the backward pass (``--mini-batch-size``, the gradient cache): with dropout ON,
the vectors, the MLM loss, the gradients and a whole training run equal those of the same chunks kept in
memory; the backbone really runs twice per chunk, and only the inputs are kept for the backward pass."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_tiny_bert, masked_copy, padded_batch, random_sentences, write_lines

from simcse_lab.modeling.embedder import PassSwitches, RowRun
from simcse_lab.modeling.mini_batches import mini_batch_chunks


@pytest.fixture(scope="module")
def noisy_bert(tmp_path_factory):
    """A tiny BERT with dropout on: equal results need the same dropout masks in the second run."""
    return make_tiny_bert(tmp_path_factory.mktemp("noisy-bert"), seed=5, dropout=0.2)


def count_backbone_calls(embedder) -> list:
    calls = []
    embedder.backbone.register_forward_hook(lambda module, args, kwargs, out: calls.append(1), with_kwargs=True)
    return calls


def test_chunk_count():
    assert mini_batch_chunks(192, 64) == 3
    assert mini_batch_chunks(130, 64) == 3  # 44 + 43 + 43 rows
    assert mini_batch_chunks(64, 64) == 1
    assert mini_batch_chunks(10, 0) == 1


@pytest.mark.parametrize("pooler", ["cls", "avg_first_last"])
def test_same_vectors_and_gradients_as_the_chunks_kept_in_memory(noisy_bert, pooler):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(noisy_bert), pooler, mlp_only_train=False)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(13, seed=1, lengths=(1, 20)))
    weights = torch.randn(13, 32, generator=torch.Generator().manual_seed(0))
    calls = count_backbone_calls(embedder)

    def run(**kwargs):
        torch.manual_seed(7)
        vectors = embedder(**batch, **kwargs)
        forward_calls = len(calls)
        (vectors * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in embedder.named_parameters() if p.grad is not None}
        embedder.zero_grad(set_to_none=True)
        calls.clear()
        return vectors.detach(), grads, forward_calls, torch.get_rng_state()

    kept, kept_grads, kept_calls, kept_rng = run(switches=PassSwitches(chunks=4))  # 4 chunks, every activation kept
    embedder.mini_batch_size = 4                                   # 13 rows -> 4 chunks, recomputed
    cached, cached_grads, cached_calls, cached_rng = run()
    assert kept_calls == cached_calls == 4 and len(calls) == 0
    torch.testing.assert_close(cached, kept, atol=0, rtol=0)       # the same dropout masks, the same kernels
    assert cached_grads.keys() == kept_grads.keys() and len(kept_grads) > 4
    for name, grad in kept_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    assert torch.equal(cached_rng, kept_rng)  # the random stream goes on as without recomputation
    # the equality is not trivial: dropout is on, and another seed gives other vectors
    embedder.mini_batch_size = 0
    torch.manual_seed(8)
    assert not torch.allclose(embedder(**batch, switches=PassSwitches(chunks=4)), kept)


def test_the_backbone_runs_again_in_the_backward_pass(noisy_bert):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(noisy_bert), "cls", mlp_only_train=True, rows=RowRun(mini_batch_size=3))
    embedder.train()
    calls = count_backbone_calls(embedder)
    batch = padded_batch(tokenizer, random_sentences(9, seed=2))
    vectors = embedder(**batch)
    assert len(calls) == 3
    vectors.sum().backward()
    assert len(calls) == 6  # each chunk once more, for its activations
    # no gradient wanted (the momentum encoder, evaluation): one plain pass, nothing recomputed
    calls.clear()
    with torch.no_grad():
        embedder(**batch)
    embedder.eval()
    embedder(**batch).sum().backward()
    assert len(calls) == 2


def test_only_the_inputs_are_kept_for_the_backward_pass(noisy_bert):
    """What the autograd graph holds between forward and backward, measured with saved-tensor hooks."""
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(noisy_bert), "cls", mlp_only_train=False)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(32, seed=3, lengths=(10, 20)))

    def saved_bytes(**kwargs) -> int:
        total = [0]

        def pack(tensor):
            total[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            embedder(**batch, **kwargs).sum().backward()
        return total[0]

    kept = saved_bytes(switches=PassSwitches(chunks=4))
    embedder.mini_batch_size = 8
    cached = saved_bytes()
    assert kept > 1_000_000 and cached < kept / 20, (kept, cached)


def test_mlm_loss_equals_the_chunks_kept_in_memory(noisy_bert):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(noisy_bert), "cls", mlp_only_train=True, do_mlm=True)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(10, seed=4, lengths=(2, 20)))
    masked, labels = masked_copy(tokenizer, batch)
    results = []
    for mini_batch_size, chunks in ((0, 3), (4, None)):
        embedder.mini_batch_size = mini_batch_size
        torch.manual_seed(1)
        vectors, loss = embedder(**batch, mlm_input_ids=masked, mlm_labels=labels,
                                  switches=PassSwitches(chunks=chunks))
        (vectors.sum() + loss).backward()
        grad = embedder.lm_head.dense.weight.grad.clone()
        embedder.zero_grad(set_to_none=True)
        results.append((vectors.detach(), loss.detach(), grad))
    (v0, l0, g0), (v1, l1, g1) = results
    torch.testing.assert_close(v1, v0, atol=0, rtol=0)
    torch.testing.assert_close(l1, l0, atol=0, rtol=0)
    torch.testing.assert_close(g1, g0, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("objective", ["sup", "esimcse"])
def test_a_training_run_matches_step_by_step(tmp_path, noisy_bert, objective):
    """Dropout on, fp32: --mini-batch-size 8 (sup: 24 rows of 8 triplets -> 3 chunks; esimcse: 16 online rows
    -> 2 chunks) gives the losses and weights of --length-chunks 3 / 2 with everything kept."""
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    if objective == "sup":
        sentences = random_sentences(240, seed=6, lengths=(2, 14))
        data = write_lines(tmp_path / "triplets.csv",
                           ["sent0,sent1,hard_neg"] + [",".join(sentences[i:i + 3]) for i in range(0, 240, 3)])
        chunks = 3
    else:
        data = write_lines(tmp_path / "corpus.txt", random_sentences(120, seed=6, lengths=(2, 14)))
        chunks = 2
    curves, weights = {}, {}
    settings = {"kept": dict(length_chunks=chunks), "cached": dict(length_chunks=1, mini_batch_size=8)}
    for name, memory in settings.items():
        out = tmp_path / name
        train(TrainConfig(objective=objective, model=str(noisy_bert), data=str(data), batch_size=8, max_seq_len=16,
                          lr=1e-3, max_steps=6, eval_steps=0, save_steps=6, test_tasks="none", precision="fp32",
                          log_steps=1, progress=False, output_dir=str(out), **memory))
        curves[name] = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
        weights[name] = torch.load(out / "checkpoints" / "step-0000006" / "state.pt", weights_only=True)["model"]
    assert len(curves["kept"]) == 6 and max(curves["kept"]) - min(curves["kept"]) > 0.01  # it trains
    torch.testing.assert_close(torch.tensor(curves["cached"]), torch.tensor(curves["kept"]), atol=1e-6, rtol=0)
    for key, value in weights["kept"].items():
        torch.testing.assert_close(weights["cached"][key], value, atol=1e-6, rtol=1e-5, msg=key)


def test_packing_and_mini_batches_are_refused_together(tmp_path):
    from simcse_lab.errors import UserError
    from simcse_lab.training.config import TrainConfig

    with pytest.raises(UserError, match="pack_width and mini_batch_size cannot be combined"):
        TrainConfig(pack_width=64, mini_batch_size=32)
    with pytest.raises(UserError, match="mini_batch_size must be >= 0"):
        TrainConfig(mini_batch_size=-1)
