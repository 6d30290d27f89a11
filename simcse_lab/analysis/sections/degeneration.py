"""Token degeneration: the input embedding matrix by token frequency (norms, k-NN distances, cosines), with the
frequencies counted by each model's tokenizer over a corpus (:mod:`simcse_lab.analysis.degeneration`)."""

from __future__ import annotations

from simcse_lab.analysis import inputs
from simcse_lab.analysis.sections.base import Section, Subject, at_least, fmt
from simcse_lab.evaluation.tables import markdown_table

BUCKET_KEYS = ("mean_norm", "mean_knn_distance", "mean_cosine_within", "mean_cosine_to_mean_direction")


class TokenDegeneration(Section):
    place = 30.0

    def __init__(self):
        self.enabled, self.corpus_spec, self.knn, self.knn_sample, self.seed = True, "wiki", 10, 500, 0
        self.corpus: list[str] | None = None
        self.cache: dict = {}  # encoder path -> (arrays, summary): the same weights under another pooler

    def add_flags(self, p) -> None:
        p.add_argument("--no-tokens", action="store_true", help="skip the token-level degeneration analysis")
        p.add_argument("--token-corpus", default="wiki", help="data spec (as --data) for token frequencies")
        p.add_argument("--knn", type=int, default=10, help="k of the token k-NN distance")
        p.add_argument("--knn-sample", type=int, default=500,
                       help="query tokens per frequency bucket for k-NN (seeded)")

    def configure(self, args) -> None:
        at_least(args, ("knn", "knn_sample"))
        self.enabled, self.corpus_spec = not args.no_tokens, args.token_corpus
        self.knn, self.knn_sample, self.seed = args.knn, args.knn_sample, args.seed

    def load(self) -> None:
        if self.enabled:
            self.corpus = inputs.load_corpus(self.corpus_spec, "train", unique=False)

    def options(self) -> dict:
        return {"knn": self.knn, "token_corpus": self.corpus_spec if self.enabled else None}

    def measure(self, subject: Subject) -> None:
        if not self.enabled:
            return
        from simcse_lab.analysis.degeneration import analyze_tokens, token_frequencies
        from simcse_lab.analysis.layers import hf_model_of

        encoder = subject.encoder
        if encoder.path not in self.cache:
            weights = hf_model_of(encoder).get_input_embeddings().weight.detach().float().cpu().numpy()
            counts = token_frequencies(encoder.tokenizer, self.corpus, len(weights))
            tokens = analyze_tokens(weights, counts, exclude_ids=encoder.tokenizer.all_special_ids, k=self.knn,
                                    sample_per_bucket=self.knn_sample, seed=self.seed)
            self.cache[encoder.path] = (tokens.pop("_arrays"), tokens)
        subject.arrays["tokens"], subject.summary["tokens"] = self.cache[encoder.path]

    def chapters(self, report: dict) -> list:
        cks = [c for c in report["checkpoints"] if "tokens" in c]
        if not cks:
            return []
        out = ["## Token-level degeneration (input embedding matrix)", "",
               f"Frequencies counted with each model's tokenizer over {report['options']['token_corpus']}; "
               "special tokens excluded; k-NN distance over the whole vocabulary (sampled query tokens).", ""]
        for c in cks:
            t = c["tokens"]
            out += [f"### {c['label']}", "",
                    f"Vocabulary analysed: {t['vocab_analysed']}; never seen in the corpus: "
                    f"{100 * t['unseen_share']:.1f}%; Spearman(count, norm) over seen tokens: "
                    f"{t['spearman_count_norm']:.3f}.", ""]
            head = ["bucket", "tokens", "mean norm", f"mean {t['k']}-NN dist", "mean cos within",
                    "mean cos to mean dir"]
            rows = [[name, str(b["tokens"])] + [fmt(b.get(k)) for k in BUCKET_KEYS] for name, b in t["buckets"].items()]
            out += [markdown_table(head, rows), ""]
        return [(self.place, out)]

    def figures(self, report: dict, arrays: dict, out_dir) -> list:
        from simcse_lab.analysis import plots

        if not (self.enabled and report["checkpoints"]):
            return []
        tokens = {k: a["tokens"] for k, a in arrays.items()}
        return [(self.place, plots.norm_vs_rank(tokens, out_dir / "token_norm_vs_rank.png")),
                (self.place, plots.token_projection(tokens, out_dir / "token_svd_projection.png"))]

    def summary_lines(self, checkpoint: dict) -> list[str]:
        if "tokens" not in checkpoint:
            return []
        t = checkpoint["tokens"]
        return [f"{checkpoint['label']}: tokens unseen {100 * t['unseen_share']:.1f}%, "
                f"Spearman(count, norm) {t['spearman_count_norm']:.3f}"]
