"""The geometry report behind ``simcse-lab analyze``: one or more checkpoints measured the same way.

Per checkpoint, the analysis sentences are encoded once (sentence embedding + every layer's mean and
[CLS] vectors, :mod:`simcse_lab.analysis.layers`), and every sentence-level number is computed from those
arrays on L2-normalised rows. Token-level degeneration reads the input embedding matrix; token-level
dynamics (:mod:`simcse_lab.analysis.token_dynamics`) read every layer's contextual token vectors. The
optional post-hoc baselines, BERT-whitening and BERT-flow, re-use cached sentence vectors for STS with and
without them, and their maps are also applied to the last layer's token vectors. The comparison table puts
the headline numbers of each checkpoint side by side: raw, + whitening, + flow.

A training trajectory is measured point by point (:func:`measure_point`) on encoders the caller builds
from the run's checkpoints (reading training checkpoints is not this package's business).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simcse_lab.evaluation import isotropy as geometry
from simcse_lab.analysis.degeneration import analyze_tokens, token_frequencies
from simcse_lab.analysis.flow import FlowEncoder, fit_flow
from simcse_lab.analysis.inputs import Checkpoint, SentenceData, _subsample
from simcse_lab.analysis.layers import encode_layers, hf_model_of
from simcse_lab.analysis.token_dynamics import STOP_WORDS, token_dynamics
from simcse_lab.analysis.whitening import WhitenedEncoder, fit_whitening
from simcse_lab.evaluation.sts import POSITIVE_GOLD, evaluate
from simcse_lab.evaluation.sts_geometry import unit_rows
from simcse_lab.evaluation.tables import markdown_table, text_table
from simcse_lab.evaluation.vectors import alignment, l2_normalize, uniformity
from simcse_lab.modeling.encoder import Encoder, use_template
from simcse_lab.modeling.sentence_encoder import SentenceEncoder


class MemoEncoder:
    """A :class:`SentenceEncoder` that remembers every sentence vector its encoder produced, so no
    sentence is encoded twice."""

    def __init__(self, encoder: SentenceEncoder):
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def put(self, sentences: list[str], vectors: np.ndarray) -> None:
        self.cache.update(zip(sentences, vectors))

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in sentences if s not in self.cache))
        if missing:
            self.put(missing, self.encoder.encode(missing, progress=progress))
        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[s] for s in sentences])

    def describe(self) -> dict:
        return self.encoder.describe()


# -- measuring -------------------------------------------------------------------------------------
@dataclass
class Options:
    tokens: bool = True
    token_corpus: list[str] | None = None
    knn: int = 10
    knn_sample: int = 500
    token_cache: dict = field(default_factory=dict)
    whiten: bool = False
    whiten_corpus: list[str] | None = None
    whiten_k: int | None = None
    flow: bool = False
    flow_corpus: list[str] | None = None
    flow_settings: dict = field(default_factory=dict)  # fit_flow's keyword arguments (seed: ``seed`` below)
    sts_tasks: tuple[str, ...] = ("stsb",)  # scored with and without whitening / flow
    sts_split: str = "test"
    token_dynamics: bool = False
    dynamics: dict = field(default_factory=dict)  # token_dynamics' caps: max_types, max_occurrences, min_contexts
    dynamics_sentences: int | None = None  # sub-sample the analysis sentences for token dynamics (seeded)
    max_pairs: int = 200_000
    seed: int = 0
    precision: str = "auto"
    batch_size: int = 128
    progress: bool = False
    bidirectional: bool | None = None  # a decoder LLM's attention (None: as its recipe says, else causal)
    template: str | None = None  # --template: each sentence inside it (None: the model's saved one, if any)
    template_denoise: bool | None = None  # --template-denoise (None: as saved; off with a --template given)


def sentence_metrics(x: np.ndarray, pairs: list[tuple[int, int]], max_pairs: int, seed: int) -> dict:
    u = unit_rows(x)  # as ``eval`` normalises its rows: its geometry equals this on the same sentences
    out = {"alignment": None, "alignment_pairs": len(pairs)}
    if pairs:
        a, b = np.array(pairs).T
        out["alignment"] = alignment(u[a], u[b])
    out["uniformity"] = uniformity(u)
    out.update(geometry.isotropy_profile(u, normalize=False, max_pairs=max_pairs, seed=seed))
    return out


def analyze_checkpoint(ckpt: Checkpoint, data: SentenceData, opts: Options) -> tuple[dict, dict]:
    """(JSON summary, arrays for the figures) for one checkpoint."""
    start = time.perf_counter()
    encoder = Encoder(ckpt.model, pooler=ckpt.pooler, precision=opts.precision, batch_size=opts.batch_size,
                      bidirectional=opts.bidirectional)
    use_template(encoder, opts.template, opts.template_denoise)
    layered = encode_layers(encoder, data.sentences, progress=opts.progress)
    encode_seconds = time.perf_counter() - start
    memo = MemoEncoder(encoder)
    memo.put(data.sentences, layered.sentence)

    summary = {"label": ckpt.label, **encoder.describe(), "dim": int(layered.sentence.shape[1])}
    summary["sentence"] = sentence_metrics(layered.sentence, data.pairs, opts.max_pairs, opts.seed)
    arrays = {"singular": geometry.singular_values(l2_normalize(layered.sentence))}
    summary["layers"] = [
        {pooling: geometry.isotropy_profile(getattr(layered, pooling)[layer], max_pairs=opts.max_pairs,
                                            seed=opts.seed)
         for pooling in ("avg", "cls") if getattr(layered, pooling) is not None}  # no cls: a family without [CLS]
        for layer in range(layered.num_layers)
    ]
    if opts.tokens:
        if encoder.path not in opts.token_cache:  # the same weights under another pooler: reuse
            weights = hf_model_of(encoder).get_input_embeddings().weight.detach().float().cpu().numpy()
            counts = token_frequencies(encoder.tokenizer, opts.token_corpus, len(weights))
            tokens = analyze_tokens(weights, counts, exclude_ids=encoder.tokenizer.all_special_ids, k=opts.knn,
                                    sample_per_bucket=opts.knn_sample, seed=opts.seed)
            opts.token_cache[encoder.path] = (tokens.pop("_arrays"), tokens)
        arrays["tokens"], summary["tokens"] = opts.token_cache[encoder.path]
    maps = {}  # post-hoc sentence maps, also applied to the last layer's token vectors where that is meaningful
    if opts.whiten:
        summary["whitening"], white = whitening_baseline(memo, layered.sentence, data, opts)
        maps["whitened"] = white.apply
    if opts.flow:
        summary["flow"], flow = flow_baseline(memo, layered.sentence, data, opts)
        maps["flowed"] = flow.forward
    if opts.token_dynamics:
        in_token_space = encoder.backend == "hf" and encoder.pooler in TOKEN_SPACE_POOLERS
        summary["token_dynamics"] = run_token_dynamics(encoder, data, opts, maps if in_token_space else None)
        if maps and not in_token_space:
            summary["token_dynamics"]["last_layer_mapped_skipped"] = (
                f"pooler {encoder.describe()['pooler']}: its sentence vectors are not last-layer token vectors, so "
                f"the post-hoc maps are not applied to tokens")
    summary["seconds"] = {"encode_layers": encode_seconds, "total": time.perf_counter() - start}
    return summary, arrays


# sentence vectors that are last-layer token vectors (cls_before_pooler) or their mean (avg)
TOKEN_SPACE_POOLERS = ("cls_before_pooler", "avg")


def run_token_dynamics(encoder, data: SentenceData, opts: Options, maps: dict | None = None) -> dict:
    sentences = _subsample(data.sentences, opts.dynamics_sentences, opts.seed)
    return token_dynamics(encoder, sentences, seed=opts.seed, last_layer_maps=maps, **opts.dynamics)


def _post_hoc_sts(memo: MemoEncoder, wrapped, opts: Options, name: str) -> dict:
    plain = evaluate(memo, list(opts.sts_tasks), split=opts.sts_split, geometry=False)
    after = evaluate(wrapped, list(opts.sts_tasks), split=opts.sts_split, geometry=False)
    return {"split": opts.sts_split,
            "sts_spearman": {task: {"plain": plain["tasks"][task]["spearman"], name: after["tasks"][task]["spearman"]}
                             for task in opts.sts_tasks},
            "avg": {"plain": plain["avg"], name: after["avg"]}}


def whitening_baseline(memo: MemoEncoder, analysis_vectors: np.ndarray, data: SentenceData, opts: Options):
    """(JSON section, the fitted Whitening)."""
    corpus_vectors = memo.encode(opts.whiten_corpus, progress=opts.progress)
    white = fit_whitening(corpus_vectors, k=opts.whiten_k)
    return {
        "k": white.k,
        "fitted_on": white.fitted_on,
        **_post_hoc_sts(memo, WhitenedEncoder(memo, white), opts, "whitened"),
        "sentence_after_whitening": sentence_metrics(white.apply(analysis_vectors), data.pairs, opts.max_pairs,
                                                     opts.seed),
    }, white


def flow_baseline(memo: MemoEncoder, analysis_vectors: np.ndarray, data: SentenceData, opts: Options):
    """(JSON section, the fitted Flow): BERT-flow fitted on the flow corpus, STS in its latent space."""
    corpus_vectors = memo.encode(opts.flow_corpus, progress=opts.progress)
    start = time.perf_counter()
    flow = fit_flow(corpus_vectors, seed=opts.seed, **opts.flow_settings)
    fit_seconds = time.perf_counter() - start
    return {
        "settings": flow.describe(),
        "fitted_on": flow.fitted_on,
        "fit_seconds": fit_seconds,
        **_post_hoc_sts(memo, FlowEncoder(memo, flow), opts, "flowed"),
        "sentence_after_flow": sentence_metrics(flow.forward(analysis_vectors), data.pairs, opts.max_pairs,
                                                opts.seed),
    }, flow


def measure_point(encoder, label: str, data: SentenceData, opts: Options) -> dict:
    """One point of a training trajectory (an encoder built from one of the run's checkpoints): its
    sentence-level numbers and, with ``opts.token_dynamics``, its token dynamics."""
    start = time.perf_counter()
    point = {"label": label, **encoder.describe()}
    vectors = encoder.encode(data.sentences, progress=opts.progress)
    point["sentence"] = sentence_metrics(vectors, data.pairs, opts.max_pairs, opts.seed)
    if opts.token_dynamics:
        point["token_dynamics"] = run_token_dynamics(encoder, data, opts)
    point["seconds"] = time.perf_counter() - start
    return point


# -- report ----------------------------------------------------------------------------------------
SENTENCE_COLUMNS = (("alignment", "align"), ("uniformity", "uniform"), ("mean_cosine", "mean cos"),
                    ("positive_cosine_fraction", "cos>0"), ("partition_isotropy", "I(Z)"),
                    ("isoscore", "IsoScore"), ("effective_rank", "eff.rank"), ("top_pc_share", "top PC"))


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and abs(v) != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.2e}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def sentence_table(checkpoints: list[dict], markdown: bool = False, key: str = "sentence") -> str:
    head = ["checkpoint"] + [short for _, short in SENTENCE_COLUMNS]
    rows = [[c["label"]] + [_fmt(c[key][k]) for k, _ in SENTENCE_COLUMNS] for c in checkpoints if key in c]
    return markdown_table(head, rows) if markdown else text_table(head, rows, width=9)


DYNAMICS_KEYS = ("intra_similarity", "intra_pairwise_similarity", "cross_sentence_similarity",
                 "self_similarity_function", "self_similarity_content", "mean_norm", "mean_vector_norm")
DYNAMICS_HEAD = ("intra-sent (to mean)", "intra-sent (pairs)", "cross-sent", "self-sim function",
                 "self-sim content", "token norm", "norm of mean token")
COMPARISON_COLUMNS = (("sts_avg", "STS avg"), ("alignment", "align"), ("uniformity", "uniform"),
                      ("isoscore", "IsoScore"), ("intra_similarity", "intra-sent sim"),
                      ("self_similarity_function", "self-sim function"),
                      ("self_similarity_content", "self-sim content"), ("mean_norm", "token norm"),
                      ("mean_vector_norm", "norm of mean token"))
SENTENCE_KEYS = ("alignment", "uniformity", "isoscore")
TOKEN_KEYS = ("intra_similarity", "self_similarity_function", "self_similarity_content", "mean_norm",
              "mean_vector_norm")


def comparison_rows(checkpoints: list[dict]) -> list[dict]:
    """The comparison table: per checkpoint, one row raw and one per post-hoc baseline run (+ whitening,
    + flow). STS avg over the baselines' tasks; sentence columns on the analysis sentences; token columns on
    the last layer's token vectors (mapped by the baseline where its sentence vectors live there, else None)."""
    rows = []
    for c in checkpoints:
        dynamics = c.get("token_dynamics") or {}
        mapped = dynamics.get("last_layer_mapped", {})
        scored = c.get("whitening") or c.get("flow")
        variants = [("raw", c["sentence"], dynamics["layers"][-1] if dynamics else None,
                     scored["avg"]["plain"] if scored else None)]
        if "whitening" in c:
            variants.append(("+ whitening", c["whitening"]["sentence_after_whitening"], mapped.get("whitened"),
                             c["whitening"]["avg"]["whitened"]))
        if "flow" in c:
            variants.append(("+ flow", c["flow"]["sentence_after_flow"], mapped.get("flowed"),
                             c["flow"]["avg"]["flowed"]))
        for variant, sentence, tokens, sts in variants:
            rows.append({"label": c["label"], "variant": variant, "sts_avg": sts,
                         **{k: sentence.get(k) for k in SENTENCE_KEYS},
                         **{k: (tokens or {}).get(k) for k in TOKEN_KEYS}})
    return rows


def comparison_table(rows: list[dict], markdown: bool = True) -> str:
    columns = [short for _, short in COMPARISON_COLUMNS]
    values = [[_fmt(r[k], 2 if k == "sts_avg" else 3) for k, _ in COMPARISON_COLUMNS] for r in rows]
    if markdown:
        return markdown_table(["checkpoint", "variant"] + columns,
                              [[r["label"], r["variant"]] + v for r, v in zip(rows, values)])
    # printed: one name column, short headers, so that a row fits a terminal line
    short = ["STS avg", "align", "uniform", "IsoScore", "intra", "self fn", "self cont", "tok norm", "mean tok"]
    return text_table(["checkpoint"] + short,
                      [[r["label"] + ("" if r["variant"] == "raw" else f" {r['variant']}")] + v
                       for r, v in zip(rows, values)], width=9)


def stop_list_sentence() -> str:
    return (f"Function tokens are the {len(STOP_WORDS)} words of NLTK's English stop-word list (whole words only): "
            + ", ".join(sorted(STOP_WORDS)) + ". Content tokens: every other token with a letter (word pieces "
            "included); punctuation and numbers are in neither class.")


def _dynamics_markdown(c: dict) -> list[str]:
    t = c["token_dynamics"]
    ss = t["self_similarity"]
    out = [f"### {c['label']}", "",
           f"{t['sentences']} distinct sentences, {t['tokens']} tokens (special tokens left out); self-similarity "
           f"over {ss['function']['types']} function and {ss['content']['types']} content types seen in >= "
           f"{ss['min_contexts']} sentences ({ss['function']['eligible_types']} / {ss['content']['eligible_types']} "
           f"eligible; at most {ss['max_types']} types and {ss['max_occurrences']} occurrences each, seed "
           f"{ss['seed']}).", ""]
    rows = [[str(row["layer"])] + [_fmt(row[k]) for k in DYNAMICS_KEYS] for row in t["layers"]]
    for name, row in t.get("last_layer_mapped", {}).items():
        rows.append([f"{row['layer']} {name}"] + [_fmt(row[k]) for k in DYNAMICS_KEYS])
    out += [markdown_table(["layer"] + list(DYNAMICS_HEAD), rows), ""]
    if "last_layer_mapped_skipped" in t:
        out += [f"Post-hoc maps on tokens: not applied ({t['last_layer_mapped_skipped']}).", ""]
    return out


def render_markdown(report: dict) -> str:
    out = ["# Embedding geometry report", "", f"Command: `{report['command']}`", ""]
    cks = report["checkpoints"]
    if cks:
        data = report["data"]
        out += [f"Analysis sentences: {data['source']} ({data['sentences']} distinct sentences, "
                f"{data['positive_pairs']} positive pairs with gold > {POSITIVE_GOLD:g}). "
                "Rows are L2-normalised; alignment (alpha=2) and uniformity (t=2) as in SimCSE; "
                f"pair statistics over at most {report['options']['max_pairs']} distinct pairs (seed "
                f"{report['options']['seed']}).", "", "## Sentence embeddings", "",
                sentence_table(cks, markdown=True), ""]
        if report.get("comparison"):
            opts = report["options"]
            sts = (f"Spearman x100 averaged over {', '.join(opts['sts_tasks'])} ({opts['sts_split']} split)"
                   if opts.get("sts_tasks") else "n/a (scored only with --whiten or --flow)")
            out += ["## Comparison: raw, + whitening, + flow", "",
                    f"STS avg: {sts}. align, uniform, IsoScore: the L2-normalised analysis "
                    "sentence vectors (after the baseline's map for its rows). Token columns: the last layer's "
                    "token vectors of the analysis sentences (token-level dynamics below); in a baseline's row, "
                    "its map applied to every last-layer token vector (poolers avg and cls_before_pooler only: "
                    "their sentence vectors live in that space; n/a otherwise).", "",
                    comparison_table(report["comparison"]), ""]
        out += ["## Per-layer isotropy (layer 0 = embedding layer)", ""]
        for c in cks:
            head = ["layer", "avg IsoScore", "avg mean cos", "avg I(Z)", "cls IsoScore", "cls mean cos", "cls I(Z)"]
            rows = [[str(i)] + [_fmt(layer[p][k]) if p in layer else "n/a" for p in ("avg", "cls")
                                for k in ("isoscore", "mean_cosine", "partition_isotropy")]
                    for i, layer in enumerate(c["layers"])]
            out += [f"### {c['label']}", "", markdown_table(head, rows), ""]
        token_cks = [c for c in cks if "tokens" in c]
        if token_cks:
            out += ["## Token-level degeneration (input embedding matrix)", "",
                    f"Frequencies counted with each model's tokenizer over {report['options']['token_corpus']}; "
                    "special tokens excluded; k-NN distance over the whole vocabulary (sampled query tokens).", ""]
            for c in token_cks:
                t = c["tokens"]
                out += [f"### {c['label']}", "",
                        f"Vocabulary analysed: {t['vocab_analysed']}; never seen in the corpus: "
                        f"{100 * t['unseen_share']:.1f}%; Spearman(count, norm) over seen tokens: "
                        f"{t['spearman_count_norm']:.3f}.", ""]
                head = ["bucket", "tokens", "mean norm", f"mean {t['k']}-NN dist", "mean cos within",
                        "mean cos to mean dir"]
                rows = [[name, str(b["tokens"])] + [_fmt(b.get(k)) for k in
                        ("mean_norm", "mean_knn_distance", "mean_cosine_within", "mean_cosine_to_mean_direction")]
                        for name, b in t["buckets"].items()]
                out += [markdown_table(head, rows), ""]
        white_cks = [c for c in cks if "whitening" in c]
        if white_cks:
            w0 = white_cks[0]["whitening"]
            tasks = list(w0["sts_spearman"])
            out += ["## BERT-whitening baseline", "",
                    f"Fitted on {report['options']['whiten_corpus']} ({w0['fitted_on']} sentences), k = {w0['k']}; "
                    f"STS Spearman x100 on the {w0['split']} split.", ""]
            head = ["checkpoint"] + [f"{t} plain" for t in tasks] + [f"{t} whitened" for t in tasks] \
                + ["avg plain", "avg whitened"]
            rows = [[c["label"]] + [_fmt(c["whitening"]["sts_spearman"][t]["plain"], 2) for t in tasks]
                    + [_fmt(c["whitening"]["sts_spearman"][t]["whitened"], 2) for t in tasks]
                    + [_fmt(c["whitening"]["avg"]["plain"], 2), _fmt(c["whitening"]["avg"]["whitened"], 2)]
                    for c in white_cks]
            out += [markdown_table(head, rows), "", "Geometry of the whitened analysis sentences:", "",
                    sentence_table([{"label": c["label"], "sentence": c["whitening"]["sentence_after_whitening"]}
                                    for c in white_cks], markdown=True), ""]
        dyn_cks = [c for c in cks if "token_dynamics" in c]
        if dyn_cks:
            out += ["## Token-level dynamics (layer 0 = embedding layer)", "",
                    "Per layer, on the analysis sentences' contextual token vectors (Xiao et al. 2023, with "
                    "Ethayarajh 2019's formulas): intra-sentence similarity (mean cosine of each token to its "
                    "sentence's mean vector, and over the sentence's token pairs), the cross-sentence baseline "
                    "(token pairs from different sentences), self-similarity (mean cosine between occurrences of "
                    "one token type in different sentences) of function and content tokens, the mean token norm and "
                    "the norm of the mean token vector (its distance from the origin).", "", stop_list_sentence(), ""]
            for c in dyn_cks:
                out += _dynamics_markdown(c)
        flow_cks = [c for c in cks if "flow" in c]
        if flow_cks:
            f0 = flow_cks[0]["flow"]
            tasks = list(f0["sts_spearman"])
            st = f0["settings"]
            out += ["## BERT-flow baseline", "",
                    f"Fitted on {report['options']['flow_corpus']} ({f0['fitted_on']} sentences): {st['levels']} "
                    f"levels x {st['depth']} steps, coupling {st['coupling']} (width {st['hidden']}), Adam lr "
                    f"{st['lr']}, batch {st['batch_size']}, seed {st['seed']}; STS Spearman x100 on the "
                    f"{f0['split']} split, cosine in the flow's latent space.", ""]
            head = ["checkpoint"] + [f"{t} plain" for t in tasks] + [f"{t} flowed" for t in tasks] \
                + ["avg plain", "avg flowed", "fit steps", "NLL/dim"]
            rows = [[c["label"]] + [_fmt(c["flow"]["sts_spearman"][t]["plain"], 2) for t in tasks]
                    + [_fmt(c["flow"]["sts_spearman"][t]["flowed"], 2) for t in tasks]
                    + [_fmt(c["flow"]["avg"]["plain"], 2), _fmt(c["flow"]["avg"]["flowed"], 2),
                       str(c["flow"]["settings"]["steps"]), _fmt(c["flow"]["settings"]["nll_per_dim"])]
                    for c in flow_cks]
            out += [markdown_table(head, rows), "", "Geometry of the flowed analysis sentences:", "",
                    sentence_table([{"label": c["label"], "sentence": c["flow"]["sentence_after_flow"]}
                                    for c in flow_cks], markdown=True), ""]
    if report.get("trajectory"):
        t = report["trajectory"]
        out += ["## Training trajectory", ""]
        if t.get("points"):
            out += [f"From `{t['path']}`: {t['points']} evaluation points.", "",
                    "```json", json.dumps({k: t[k] for k in ("first", "last", "best") if k in t}, indent=1),
                    "```", ""]
        elif t.get("metrics_note"):
            out += [t["metrics_note"], ""]
        if t.get("checkpoints"):
            out += [f"Checkpoints of `{t['run_dir']}` in step order (step 0: the starting model {t['model']}), "
                    f"pooler {t['pooler']}{t.get('pooler_note', '')}; sentence columns on the analysis sentences, "
                    "token columns on the last layer.", ""]
            head = ["step", "IsoScore", "mean cos", "align", "uniform"] + list(DYNAMICS_HEAD)
            rows = []
            for p in t["checkpoints"]:
                last = p["token_dynamics"]["layers"][-1] if "token_dynamics" in p else {}
                rows.append([str(p["step"])] + [_fmt(p["sentence"][k]) for k in
                                                ("isoscore", "mean_cosine", "alignment", "uniformity")]
                            + [_fmt(last.get(k)) for k in DYNAMICS_KEYS])
            out += [markdown_table(head, rows), ""]
    if report["figures"]:
        out += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in report["figures"]] + [""]
    return "\n".join(out)
