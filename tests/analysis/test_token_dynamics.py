"""Token-level dynamics (Xiao et al. 2023 / Ethayarajh 2019): known answers for each measure, the batch-wise
accumulator against the written-out formulas, the function/content routing, and a run on a tiny BERT."""

import json
import math

import numpy as np
import pytest
import torch

from simcse_lab.analysis.token_dynamics import (CONTENT, FUNCTION, STOP_WORDS, TokenDynamicsAccumulator,
                                                intra_sentence_similarity, iter_token_states, norm_summary,
                                                plan_occurrences, self_similarity, token_class, token_dynamics)
from simcse_lab.errors import UserError


def batch_of(sentences, width=None):
    """Pad per-sentence (n_s, d) arrays into one accumulator batch: (layers=1) x (b, t, d) and the keep mask."""
    width = width or max(len(s) for s in sentences)
    d = sentences[0].shape[1]
    h = torch.zeros(len(sentences), width, d, dtype=torch.float64)
    keep = torch.zeros(len(sentences), width, dtype=torch.bool)
    for k, s in enumerate(sentences):
        h[k, : len(s)] = torch.as_tensor(s)
        keep[k, : len(s)] = True
    h[~keep] = 123.0  # padding carries junk: it must be ignored
    return (h,), keep


def accumulate(sentences, slots=None, classes=()):
    hidden, keep = batch_of(sentences)
    acc = TokenDynamicsAccumulator(1, sentences[0].shape[1], len(classes))
    acc.update(hidden, keep, slots)
    return acc, acc.layers(list(classes))[0]


# -- known answers -------------------------------------------------------------------------------------------
def test_identical_token_vectors_give_intra_similarity_one():
    v = np.array([0.3, -1.2, 2.0, 0.5])
    to_mean, pairwise = intra_sentence_similarity(np.tile(v, (5, 1)))
    assert to_mean == pytest.approx(1.0, abs=1e-12) and pairwise == pytest.approx(1.0, abs=1e-12)
    _, row = accumulate([np.tile(v, (5, 1)), np.tile(-2 * v, (3, 1))])
    assert row["intra_similarity"] == pytest.approx(1.0, abs=1e-12)
    assert row["intra_pairwise_similarity"] == pytest.approx(1.0, abs=1e-12)
    assert row["cross_sentence_similarity"] == pytest.approx(-1.0, abs=1e-12)  # the two sentences point apart


def test_orthogonal_tokens_in_a_sentence():
    e = np.eye(4) * np.array([[1.0], [2.0], [3.0], [4.0]])
    to_mean, pairwise = intra_sentence_similarity(e)
    assert pairwise == pytest.approx(0.0, abs=1e-12)
    # each axis against the mean (1, 2, 3, 4): cosine k / sqrt(30)
    assert to_mean == pytest.approx(np.mean(np.arange(1, 5) / math.sqrt(30)), abs=1e-12)


def test_self_similarity_orthogonal_contexts_zero_identical_one():
    assert self_similarity(np.eye(5)[:3] * 7.0) == pytest.approx(0.0, abs=1e-12)
    assert self_similarity(np.tile([1.0, 2.0, 3.0], (4, 1)) * np.array([[1], [2], [3], [4]])) == pytest.approx(1.0)
    # through the accumulator: type A (slot 0) in 3 orthogonal contexts, type B (slot 1) identical in 3
    d = 6
    sentences = [np.stack([np.eye(d)[k], np.ones(d)]) for k in range(3)]  # token 0: A, token 1: B
    slots = torch.tensor([[0, 1]] * 3)
    acc, row = accumulate(sentences, slots, classes=[CONTENT, FUNCTION])
    assert row["self_similarity_content"] == pytest.approx(0.0, abs=1e-12)
    assert row["self_similarity_function"] == pytest.approx(1.0, abs=1e-12)
    assert acc.slot_count.tolist() == [3, 3]


def test_norms_on_hand_made_vectors():
    a = np.array([[3.0, 4.0], [0.0, 2.0]])  # norms 5 and 2
    b = np.array([[-3.0, -4.0], [0.0, -2.0], [6.0, 8.0]])  # norms 5, 2, 10
    mean_norm, mean_vec = norm_summary(np.vstack([a, b]))
    assert mean_norm == pytest.approx(24 / 5)
    assert mean_vec == pytest.approx(np.linalg.norm([6.0, 8.0]) / 5)  # everything else cancels
    _, row = accumulate([a, b])
    assert row["mean_norm"] == pytest.approx(24 / 5) and row["mean_vector_norm"] == pytest.approx(2.0)


def test_accumulator_matches_the_formulas_on_random_batches():
    rng = np.random.default_rng(0)
    sentences = [rng.standard_normal((n, 8)) + 0.5 for n in (1, 2, 5, 7, 3)]  # a 1-token sentence is skipped
    acc = TokenDynamicsAccumulator(1, 8)
    for part in (sentences[:2], sentences[2:]):  # two batches of different widths
        hidden, keep = batch_of(part)
        acc.update(hidden, keep)
    row = acc.layers()[0]
    multi = [s for s in sentences if len(s) >= 2]
    assert acc.intra_sentences == 4 and acc.tokens == 18
    assert row["intra_similarity"] == pytest.approx(np.mean([intra_sentence_similarity(s)[0] for s in multi]))
    assert row["intra_pairwise_similarity"] == pytest.approx(
        np.mean([intra_sentence_similarity(s)[1] for s in multi]))
    units = [s / np.linalg.norm(s, axis=1, keepdims=True) for s in sentences]
    cross = [float(u @ w) for i, a in enumerate(units) for j, b in enumerate(units) if i != j for u in a for w in b]
    assert row["cross_sentence_similarity"] == pytest.approx(np.mean(cross))
    mean_norm, mean_vec = norm_summary(np.vstack(sentences))
    assert row["mean_norm"] == pytest.approx(mean_norm) and row["mean_vector_norm"] == pytest.approx(mean_vec)


def test_empty_classes_report_none_not_a_number():
    _, row = accumulate([np.ones((3, 2))], torch.full((1, 3), -1), classes=[])
    assert row["self_similarity_function"] is None and row["self_similarity_content"] is None


# -- the function / content routing --------------------------------------------------------------------------
def test_stop_list_is_the_written_out_standard_list():
    assert len(STOP_WORDS) == 179
    assert {"the", "a", "of", "and", "is", "not", "don't", "t"} <= STOP_WORDS
    assert not {"cat", "river", "run"} & STOP_WORDS


@pytest.mark.parametrize("token,cls", [("the", FUNCTION), ("The", FUNCTION), ("Ġthe", FUNCTION),
                                       ("▁of", FUNCTION), ("cat", CONTENT), ("##ing", CONTENT),
                                       ("##s", CONTENT), (".", None), ("1999", None), ("##7", None)])
def test_token_class(token, cls):
    assert token_class(token) == cls


def test_plan_routes_types_by_the_stop_list():
    vocab = {1: "the", 2: "cat", 3: "sat", 4: "an", 5: "##ew", 6: ".", 0: "[CLS]"}
    sentences = [[0, 1, 2, 3, 6], [0, 1, 2, 6], [0, 4, 5, 1, 1], [0, 3, 4, 2]]
    whole = [[True] * len(s) for s in sentences]
    whole[2][1] = whole[2][2] = False  # "an ##ew" is one word: that "an" is not the article
    plan = plan_occurrences(sentences, lambda ids: [vocab[i] for i in ids], special_ids=[0], whole_word=whole,
                            min_contexts=2)
    by_token = {vocab[t]: c for t, c in zip(plan.token_ids, plan.classes)}
    assert by_token == {"the": FUNCTION, "cat": CONTENT, "sat": CONTENT}  # "an": one whole-word context only
    the = plan.token_ids.index(1)
    taken = sorted((s, p) for s, rows in plan.positions.items() for p, slot in rows if slot == the)
    assert taken == [(0, 1), (1, 1), (2, 3)]  # first occurrence per sentence, never [CLS] or punctuation
    assert plan.eligible == {FUNCTION: 1, CONTENT: 2}


def test_plan_caps_are_seeded():
    vocab = {i: f"word{i}" for i in range(1, 41)}
    sentences = [[1 + (s + k) % 40 for k in range(10)] for s in range(60)]
    kwargs = dict(max_types=5, max_occurrences=4, min_contexts=2)
    a = plan_occurrences(sentences, lambda ids: [vocab[i] for i in ids], seed=1, **kwargs)
    b = plan_occurrences(sentences, lambda ids: [vocab[i] for i in ids], seed=1, **kwargs)
    c = plan_occurrences(sentences, lambda ids: [vocab[i] for i in ids], seed=2, **kwargs)
    assert a.num_slots == 5 and a.eligible[CONTENT] == 40
    assert sum(len(v) for v in a.positions.values()) == 5 * 4
    assert (a.token_ids, a.positions) == (b.token_ids, b.positions)
    assert (a.token_ids, a.positions) != (c.token_ids, c.positions)
    with pytest.raises(UserError):
        plan_occurrences(sentences, lambda ids: [vocab[i] for i in ids], min_contexts=1)


# -- end to end on a tiny random BERT --------------------------------------------------------------------------
SENTENCES = [f"the {w} sat on a {v} near the river" for w, v in
             zip(["cat", "dog", "bird", "man", "child", "horse"] * 2, ["mat", "log", "wall", "bench"] * 3)]
SENTENCES += ["a cat and a dog .", "the cat sat on the mat .", "the cat sat on the mat ."]  # one repeat


@pytest.fixture(scope="module")
def tiny_encoder(tiny_bert):
    from simcse_lab.modeling.encoder import Encoder
    return Encoder(str(tiny_bert), pooler="avg", precision="fp32", device="cpu")


def test_extraction_drops_special_tokens_and_keeps_word_pieces(tiny_encoder):
    batches = list(iter_token_states(tiny_encoder, ["the cat sat", "unbelievably long words"], batch_size=1))
    assert sorted(r for b in batches for r in b.rows) == [0, 1]
    tok = tiny_encoder.tokenizer
    for b in batches:
        assert len(b.hidden_states) == 3  # embedding layer + 2 transformer layers
        assert b.hidden_states[0].shape[:2] == b.input_ids.shape
        kept = tok.convert_ids_to_tokens(b.input_ids[b.keep].tolist())
        expected = tok.tokenize(["the cat sat", "unbelievably long words"][b.rows[0]])
        assert kept == expected  # no [CLS]/[SEP]; word pieces such as "##ly" stay


def test_token_dynamics_end_to_end(tiny_encoder):
    report = token_dynamics(tiny_encoder, SENTENCES, min_contexts=2, batch_size=4)
    json.dumps(report)  # JSON-ready
    assert len(report["layers"]) == 3
    assert report["sentences"] == 14 and report["duplicates_dropped"] == 1
    assert report["self_similarity"][FUNCTION]["types"] >= 3  # the, on, a, and
    assert report["self_similarity"][CONTENT]["types"] >= 5  # cat, dog, sat, river, ...
    for row in report["layers"]:
        for key in ("intra_similarity", "intra_pairwise_similarity", "cross_sentence_similarity",
                    "self_similarity_function", "self_similarity_content", "mean_norm", "mean_vector_norm"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row["layer"], key)
        assert -1 <= row["intra_pairwise_similarity"] <= row["intra_similarity"] <= 1
        assert 0 < row["mean_vector_norm"] <= row["mean_norm"]


def test_token_dynamics_equals_brute_force_on_all_vectors(tiny_encoder):
    """Every number of the streamed report, recomputed from all token vectors held at once."""
    report = token_dynamics(tiny_encoder, SENTENCES, min_contexts=2, batch_size=3)
    unique = list(dict.fromkeys(SENTENCES))
    tok = tiny_encoder.tokenizer
    vectors, tokens = {}, {}
    for b in iter_token_states(tiny_encoder, unique, batch_size=16):
        for k, s in enumerate(b.rows):
            tokens[s] = tok.convert_ids_to_tokens(b.input_ids[k][b.keep[k]].tolist())
            vectors[s] = [h[k][b.keep[k]].double().numpy() for h in b.hidden_states]
    assert all("##" not in t for ts in tokens.values() for t in ts)  # whole words only: no piece filter here
    for layer, row in enumerate(report["layers"]):
        per_sentence = [vectors[s][layer] for s in range(len(unique))]
        intra = [intra_sentence_similarity(v) for v in per_sentence]
        assert row["intra_similarity"] == pytest.approx(np.mean([a for a, _ in intra]), abs=1e-6)
        assert row["intra_pairwise_similarity"] == pytest.approx(np.mean([b for _, b in intra]), abs=1e-6)
        mean_norm, mean_vec = norm_summary(np.vstack(per_sentence))
        assert row["mean_norm"] == pytest.approx(mean_norm, rel=1e-6)
        assert row["mean_vector_norm"] == pytest.approx(mean_vec, rel=1e-6)
        for cls in (FUNCTION, CONTENT):
            occurrences = {}
            for s in range(len(unique)):
                for p, t in enumerate(tokens[s]):
                    if token_class(t) == cls and t not in occurrences.get(s, {}):
                        occurrences.setdefault(s, {})[t] = per_sentence[s][p]
            by_type = {}
            for s, first in occurrences.items():
                for t, v in first.items():
                    by_type.setdefault(t, []).append(v)
            expected = np.mean([self_similarity(np.stack(v)) for v in by_type.values() if len(v) >= 2])
            assert row[f"self_similarity_{cls}"] == pytest.approx(expected, abs=1e-6), (layer, cls)


def test_token_dynamics_refuses_bad_input(tiny_encoder):
    with pytest.raises(UserError):
        token_dynamics(tiny_encoder, [])
    with pytest.raises(UserError):
        token_dynamics(tiny_encoder, SENTENCES, max_occurrences=1)


def test_last_layer_maps_measure_the_mapped_token_vectors(tiny_encoder):
    """A map applied to every last-layer token vector: the identity reproduces the last layer's row; a scaled
    rotation keeps every cosine and doubles the norms; a projection changes the cosines (it really is applied)."""
    hidden = tiny_encoder.hf_model.config.hidden_size
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((hidden, hidden)))
    maps = {"identity": lambda x: x, "rotated": lambda x: 2.0 * x @ q, "projected": lambda x: x[:, :3]}
    report = token_dynamics(tiny_encoder, SENTENCES, min_contexts=2, batch_size=4, last_layer_maps=maps)
    last, mapped = report["layers"][-1], report["last_layer_mapped"]
    assert set(mapped) == set(maps) and all(row["layer"] == len(report["layers"]) - 1 for row in mapped.values())
    keys = ("intra_similarity", "intra_pairwise_similarity", "cross_sentence_similarity",
            "self_similarity_function", "self_similarity_content")
    for key in keys + ("mean_norm", "mean_vector_norm"):
        assert mapped["identity"][key] == pytest.approx(last[key], rel=1e-6), key
    for key in keys:
        assert mapped["rotated"][key] == pytest.approx(last[key], abs=1e-6), key
    assert mapped["rotated"]["mean_norm"] == pytest.approx(2 * last["mean_norm"], rel=1e-6)
    assert abs(mapped["projected"]["intra_similarity"] - last["intra_similarity"]) > 1e-3
    with pytest.raises(ValueError, match="last-layer map"):
        token_dynamics(tiny_encoder, SENTENCES, min_contexts=2, last_layer_maps={"bad": lambda x: x[:1]})
