"""Token dynamics: per layer, on the analysis sentences' contextual token vectors, intra-sentence and
cross-sentence similarity, self-similarity of function and content tokens, token norms (Xiao et al. 2023,
:mod:`simcse_lab.analysis.token_dynamics`); on the last layer also through each post-hoc map, where the
checkpoint's sentence vectors live in the token space. Measured after the post-hoc maps (its place)."""

from __future__ import annotations

from simcse_lab.analysis.inputs import subsample
from simcse_lab.analysis.sections.base import Section, Subject, at_least, fmt
from simcse_lab.analysis.token_dynamics import (MAX_OCCURRENCES, MAX_TYPES, MIN_CONTEXTS, STOP_WORDS,
                                                token_dynamics)
from simcse_lab.evaluation.tables import markdown_table

DYNAMICS_KEYS = ("intra_similarity", "intra_pairwise_similarity", "cross_sentence_similarity",
                 "self_similarity_function", "self_similarity_content", "mean_norm", "mean_vector_norm")
DYNAMICS_HEAD = ("intra-sent (to mean)", "intra-sent (pairs)", "cross-sent", "self-sim function",
                 "self-sim content", "token norm", "norm of mean token")
# sentence vectors that are last-layer token vectors (cls_before_pooler) or their mean (avg)
TOKEN_SPACE_POOLERS = ("cls_before_pooler", "avg")


def stop_list_sentence() -> str:
    return (f"Function tokens are the {len(STOP_WORDS)} words of NLTK's English stop-word list (whole words only): "
            + ", ".join(sorted(STOP_WORDS)) + ". Content tokens: every other token with a letter (word pieces "
            "included); punctuation and numbers are in neither class.")


class TokenDynamics(Section):
    place = 50.0

    def __init__(self):
        self.enabled, self.sentences, self.seed = True, 2000, 0
        self.caps = {"max_types": MAX_TYPES, "max_occurrences": MAX_OCCURRENCES, "min_contexts": MIN_CONTEXTS}

    def add_flags(self, p) -> None:
        p.add_argument("--no-token-dynamics", action="store_true",
                       help="skip the token-level dynamics (intra-sentence and self-similarity, token norms per layer)")
        p.add_argument("--token-dynamics-sentences", type=int, default=2000,
                       help="token dynamics on at most this many analysis sentences (seeded sub-sample)")
        p.add_argument("--token-dynamics-types", type=int, default=MAX_TYPES,
                       help="self-similarity: at most this many token types per class (function, content)")
        p.add_argument("--token-dynamics-occurrences", type=int, default=MAX_OCCURRENCES,
                       help="self-similarity: at most this many occurrences (sentences) per token type")
        p.add_argument("--token-dynamics-min-contexts", type=int, default=MIN_CONTEXTS,
                       help="self-similarity: only token types seen in at least this many sentences")

    def configure(self, args) -> None:
        at_least(args, ("token_dynamics_sentences", "token_dynamics_types"))
        at_least(args, ("token_dynamics_occurrences", "token_dynamics_min_contexts"), 2,
                 " (self-similarity compares pairs)")
        self.enabled, self.sentences, self.seed = not args.no_token_dynamics, args.token_dynamics_sentences, args.seed
        self.caps = {"max_types": args.token_dynamics_types, "max_occurrences": args.token_dynamics_occurrences,
                     "min_contexts": args.token_dynamics_min_contexts}

    def options(self) -> dict:
        return {"token_dynamics": {**self.caps, "sentences": self.sentences} if self.enabled else None}

    def _run(self, encoder, data, maps: dict | None) -> dict:
        sentences = subsample(data.sentences, self.sentences, self.seed)
        return token_dynamics(encoder, sentences, seed=self.seed, last_layer_maps=maps, **self.caps)

    def measure(self, subject: Subject) -> None:
        if not self.enabled:
            return
        encoder, maps = subject.encoder, subject.maps
        in_token_space = encoder.backend == "hf" and encoder.pooler in TOKEN_SPACE_POOLERS
        entry = subject.summary["token_dynamics"] = self._run(encoder, subject.data, maps if in_token_space else None)
        if maps and not in_token_space:
            entry["last_layer_mapped_skipped"] = (
                f"pooler {encoder.describe()['pooler']}: its sentence vectors are not last-layer token vectors, so "
                f"the post-hoc maps are not applied to tokens")

    def measure_point(self, subject: Subject) -> None:
        if self.enabled:
            subject.summary["token_dynamics"] = self._run(subject.encoder, subject.data, None)

    def chapters(self, report: dict) -> list:
        cks = [c for c in report["checkpoints"] if "token_dynamics" in c]
        if not cks:
            return []
        out = ["## Token-level dynamics (layer 0 = embedding layer)", "",
               "Per layer, on the analysis sentences' contextual token vectors (Xiao et al. 2023, with "
               "Ethayarajh 2019's formulas): intra-sentence similarity (mean cosine of each token to its "
               "sentence's mean vector, and over the sentence's token pairs), the cross-sentence baseline "
               "(token pairs from different sentences), self-similarity (mean cosine between occurrences of "
               "one token type in different sentences) of function and content tokens, the mean token norm and "
               "the norm of the mean token vector (its distance from the origin).", "", stop_list_sentence(), ""]
        for c in cks:
            out += _checkpoint_markdown(c)
        return [(self.place, out)]

    def figures(self, report: dict, arrays: dict, out_dir) -> list:
        from simcse_lab.analysis import plots

        if not (self.enabled and report["checkpoints"]):
            return []
        dyn = {c["label"]: c["token_dynamics"] for c in report["checkpoints"]}
        return [(self.place, plots.token_dynamics(dyn, out_dir / "token_dynamics.png")),
                (self.place, plots.self_similarity(dyn, out_dir / "self_similarity.png"))]


def _checkpoint_markdown(c: dict) -> list[str]:
    t = c["token_dynamics"]
    ss = t["self_similarity"]
    out = [f"### {c['label']}", "",
           f"{t['sentences']} distinct sentences, {t['tokens']} tokens (special tokens left out); self-similarity "
           f"over {ss['function']['types']} function and {ss['content']['types']} content types seen in >= "
           f"{ss['min_contexts']} sentences ({ss['function']['eligible_types']} / {ss['content']['eligible_types']} "
           f"eligible; at most {ss['max_types']} types and {ss['max_occurrences']} occurrences each, seed "
           f"{ss['seed']}).", ""]
    rows = [[str(row["layer"])] + [fmt(row[k]) for k in DYNAMICS_KEYS] for row in t["layers"]]
    for name, row in t.get("last_layer_mapped", {}).items():
        rows.append([f"{row['layer']} {name}"] + [fmt(row[k]) for k in DYNAMICS_KEYS])
    out += [markdown_table(["layer"] + list(DYNAMICS_HEAD), rows), ""]
    if "last_layer_mapped_skipped" in t:
        out += [f"Post-hoc maps on tokens: not applied ({t['last_layer_mapped_skipped']}).", ""]
    return out
