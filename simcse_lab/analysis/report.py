"""The geometry report behind ``simcse-lab analyze``: one or more checkpoints measured the same way.

Per checkpoint, the analysis sentences are encoded once (sentence embedding + every layer's mean and
[CLS] vectors, :mod:`simcse_lab.analysis.layers`), and every sentence-level number is computed from those
arrays on L2-normalised rows. Token-level degeneration reads the input embedding matrix; the
optional whitening baseline re-uses cached sentence vectors for STS with and without whitening.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simcse_lab.analysis import geometry
from simcse_lab.analysis.degeneration import analyze_tokens, token_frequencies
from simcse_lab.analysis.inputs import Checkpoint, SentenceData
from simcse_lab.analysis.layers import encode_layers, hf_model_of
from simcse_lab.analysis.whitening import WhitenedEncoder, fit_whitening
from simcse_lab.evaluation.sts import POSITIVE_GOLD, evaluate
from simcse_lab.evaluation.tables import markdown_table, text_table
from simcse_lab.evaluation.vectors import alignment, l2_normalize, uniformity
from simcse_lab.modeling.encoder import Encoder
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
    whiten_tasks: tuple[str, ...] = ("stsb",)
    whiten_split: str = "test"
    max_pairs: int = 200_000
    seed: int = 0
    precision: str = "auto"
    batch_size: int = 128
    progress: bool = False


def sentence_metrics(x: np.ndarray, pairs: list[tuple[int, int]], max_pairs: int, seed: int) -> dict:
    u = l2_normalize(x)
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
    encoder = Encoder(ckpt.model, pooler=ckpt.pooler, precision=opts.precision, batch_size=opts.batch_size)
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
         for pooling in ("avg", "cls")}
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
    if opts.whiten:
        summary["whitening"] = whitening_baseline(memo, layered.sentence, data, opts)
    summary["seconds"] = {"encode_layers": encode_seconds, "total": time.perf_counter() - start}
    return summary, arrays


def whitening_baseline(memo: MemoEncoder, analysis_vectors: np.ndarray, data: SentenceData, opts: Options) -> dict:
    corpus_vectors = memo.encode(opts.whiten_corpus, progress=opts.progress)
    white = fit_whitening(corpus_vectors, k=opts.whiten_k)
    plain = evaluate(memo, list(opts.whiten_tasks), split=opts.whiten_split)
    whitened = evaluate(WhitenedEncoder(memo, white), list(opts.whiten_tasks), split=opts.whiten_split)
    sts = {task: {"plain": plain["tasks"][task]["spearman"], "whitened": whitened["tasks"][task]["spearman"]}
           for task in opts.whiten_tasks}
    return {
        "k": white.k,
        "fitted_on": white.fitted_on,
        "split": opts.whiten_split,
        "sts_spearman": sts,
        "avg": {"plain": plain["avg"], "whitened": whitened["avg"]},
        "sentence_after_whitening": sentence_metrics(white.apply(analysis_vectors), data.pairs, opts.max_pairs,
                                                     opts.seed),
    }


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
        out += ["## Per-layer isotropy (layer 0 = embedding layer)", ""]
        for c in cks:
            head = ["layer", "avg IsoScore", "avg mean cos", "avg I(Z)", "cls IsoScore", "cls mean cos", "cls I(Z)"]
            rows = [[str(i)] + [_fmt(layer[p][k]) for p in ("avg", "cls")
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
    if report.get("trajectory"):
        t = report["trajectory"]
        out += ["## Training trajectory", "", f"From `{t['path']}`: {t['points']} evaluation points.", "",
                "```json", json.dumps({k: t[k] for k in ("first", "last", "best") if k in t}, indent=1), "```", ""]
    if report["figures"]:
        out += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in report["figures"]] + [""]
    return "\n".join(out)
