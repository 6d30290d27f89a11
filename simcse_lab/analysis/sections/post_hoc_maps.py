"""Post-hoc maps: each chosen map (:data:`simcse_lab.analysis.maps.MAPS`: BERT-whitening, BERT-flow) fitted on
a corpus of the checkpoint's own vectors, STS scored with and without it, the geometry of the mapped analysis
sentences; and the comparison table, one row per checkpoint raw and one per map (+ whitening, + flow)."""

from __future__ import annotations

from simcse_lab.analysis import inputs
from simcse_lab.analysis.maps import MAPS
from simcse_lab.analysis.post_hoc import MappedEncoder, fit_on_corpus
from simcse_lab.analysis.sections.base import Section, Subject, at_least, fmt
from simcse_lab.analysis.sections.geometry import sentence_metrics, sentence_table
from simcse_lab.evaluation.sts import SPLITS, evaluate, parse_tasks
from simcse_lab.evaluation.tables import markdown_table, text_table

COMPARISON_COLUMNS = (("sts_avg", "STS avg"), ("alignment", "align"), ("uniformity", "uniform"),
                      ("isoscore", "IsoScore"), ("intra_similarity", "intra-sent sim"),
                      ("self_similarity_function", "self-sim function"),
                      ("self_similarity_content", "self-sim content"), ("mean_norm", "token norm"),
                      ("mean_vector_norm", "norm of mean token"))
PRINTED_COLUMNS = ("STS avg", "align", "uniform", "IsoScore", "intra", "self fn", "self cont", "tok norm", "mean tok")
SENTENCE_KEYS = ("alignment", "uniformity", "isoscore")
TOKEN_KEYS = ("intra_similarity", "self_similarity_function", "self_similarity_content", "mean_norm",
              "mean_vector_norm")


class PostHocMaps(Section):
    place = 40.0

    def __init__(self):
        self.chosen, self.settings, self.specs, self.limits = [], {}, {}, {}
        self.corpora: dict[str, list[str]] = {}
        self.task_spec, self.split, self.seed = "stsb", "test", 0
        self.sts_tasks: tuple[str, ...] = ()

    def add_flags(self, p) -> None:
        for m in MAPS:
            p.add_argument(f"--{m.flag}", action="store_true",
                           help=f"add the {m.title} (STS with and without, geometry of the {m.variant} vectors)")
            p.add_argument(f"--{m.flag}-corpus", default="wiki", help=f"data spec (as --data) to fit {m.name} on")
            p.add_argument(f"--{m.flag}-max", type=int, default=5000, help=f"sub-sample the {m.name} corpus (seeded)")
            m.add_flags(p)
        p.add_argument("--sts-tasks", "--whiten-tasks", dest="sts_tasks", default="stsb",
                       help="STS tasks scored with and without the maps (--whiten-tasks: the old name)")
        p.add_argument("--sts-split", "--whiten-split", dest="sts_split", default="test", choices=SPLITS)

    def configure(self, args) -> None:
        at_least(args, tuple(f"{m.flag}_max" for m in MAPS))
        self.settings = {m.name: m.settings(args) for m in MAPS}  # every map's flags are checked, chosen or not
        self.chosen = [m for m in MAPS if getattr(args, m.flag)]
        self.specs = {m.name: getattr(args, f"{m.flag}_corpus") for m in MAPS}
        self.limits = {m.name: getattr(args, f"{m.flag}_max") for m in MAPS}
        self.task_spec, self.split, self.seed = args.sts_tasks, args.sts_split, args.seed

    def load(self) -> None:
        if self.chosen:
            self.sts_tasks = tuple(parse_tasks(self.task_spec))
        for m in self.chosen:
            self.corpora[m.name] = inputs.load_corpus(self.specs[m.name], "train", limit=self.limits[m.name],
                                                      seed=self.seed)

    def options(self) -> dict:
        out = {}
        for m in MAPS:
            on = m in self.chosen
            out[f"{m.flag}_corpus"] = self.specs.get(m.name) if on else None
            out[f"{m.flag}_max"] = self.limits.get(m.name) if on else None
            out.update({k: v if on else None for k, v in m.options(self.settings.get(m.name)).items()})
        return {**out, "sts_tasks": list(self.sts_tasks) or None, "sts_split": self.split if self.sts_tasks else None}

    def measure(self, subject: Subject) -> None:
        common, memo = subject.common, subject.memo
        plain = None  # the unmapped STS scores, once (after the first fit, where they always were computed)
        for m in self.chosen:
            fitted, seconds = fit_on_corpus(m, memo, self.corpora[m.name], self.settings[m.name], common.seed,
                                            common.progress)
            plain = plain or evaluate(memo, list(self.sts_tasks), split=self.split, geometry=False)
            subject.summary[m.name] = {
                **fitted.report_head(seconds), **self._sts(plain, MappedEncoder(memo, fitted), m.variant),
                f"sentence_after_{m.name}": sentence_metrics(fitted.apply(subject.sentence), subject.data.pairs,
                                                            common.max_pairs, common.seed)}
            subject.maps[m.variant] = fitted.apply

    def _sts(self, plain: dict, mapped, variant: str) -> dict:
        """STS with and without the map (``plain``: the unmapped scores, from the memo, shared by every map)."""
        after = evaluate(mapped, list(self.sts_tasks), split=self.split, geometry=False)
        return {"split": self.split,
                "sts_spearman": {task: {"plain": plain["tasks"][task]["spearman"],
                                        variant: after["tasks"][task]["spearman"]} for task in self.sts_tasks},
                "avg": {"plain": plain["avg"], variant: after["avg"]}}

    def chapters(self, report: dict) -> list:
        out = []
        if report["checkpoints"] and report.get("comparison"):
            out.append((15.0, comparison_chapter(report)))  # right after the sentence table
        for m in MAPS:
            cks = [c for c in report["checkpoints"] if m.name in c]
            if cks:
                out.append((m.place, map_chapter(m, cks, report["options"])))
        return out

    def summary_lines(self, checkpoint: dict) -> list[str]:
        return [f"{checkpoint['label']}: STS avg {checkpoint[m.name]['avg']['plain']:.2f} -> {m.variant} "
                f"{checkpoint[m.name]['avg'][m.variant]:.2f}" for m in MAPS if m.name in checkpoint]

    def printed(self, report: dict) -> list[str]:
        opts = report["options"]
        shown = opts.get("token_dynamics") or any(opts.get(f"{m.flag}_corpus") for m in MAPS)
        return [comparison_table(report["comparison"], markdown=False)] if report["checkpoints"] and shown else []


def map_chapter(m, cks: list[dict], options: dict) -> list[str]:
    e0 = cks[0][m.name]
    tasks = list(e0["sts_spearman"])
    out = [f"## {m.title}", "",
           f"Fitted on {options[f'{m.flag}_corpus']} ({e0['fitted_on']} sentences){m.fit_detail(e0)}; "
           f"STS Spearman x100 on the {e0['split']} split{m.score_note()}.", ""]
    extra = m.extra_columns()
    head = (["checkpoint"] + [f"{t} plain" for t in tasks] + [f"{t} {m.variant}" for t in tasks]
            + ["avg plain", f"avg {m.variant}"] + [h for h, _ in extra])
    rows = []
    for c in cks:
        e = c[m.name]
        rows.append([c["label"]] + [fmt(e["sts_spearman"][t][k], 2) for k in ("plain", m.variant) for t in tasks]
                    + [fmt(e["avg"]["plain"], 2), fmt(e["avg"][m.variant], 2)] + [fmt(cell(e)) for _, cell in extra])
    mapped = [{"label": c["label"], "sentence": c[m.name][f"sentence_after_{m.name}"]} for c in cks]
    return out + [markdown_table(head, rows), "", f"Geometry of the {m.variant} analysis sentences:", "",
                  sentence_table(mapped, markdown=True), ""]


def comparison_chapter(report: dict) -> list[str]:
    opts = report["options"]
    sts = (f"Spearman x100 averaged over {', '.join(opts['sts_tasks'])} ({opts['sts_split']} split)"
           if opts.get("sts_tasks") else "n/a (scored only with --whiten or --flow)")
    return ["## Comparison: raw, + whitening, + flow", "",
            f"STS avg: {sts}. align, uniform, IsoScore: the L2-normalised analysis "
            "sentence vectors (after the baseline's map for its rows). Token columns: the last layer's "
            "token vectors of the analysis sentences (token-level dynamics below); in a baseline's row, "
            "its map applied to every last-layer token vector (poolers avg and cls_before_pooler only: "
            "their sentence vectors live in that space; n/a otherwise).", "",
            comparison_table(report["comparison"]), ""]


def comparison_rows(checkpoints: list[dict]) -> list[dict]:
    """The comparison table: per checkpoint, one row raw and one per post-hoc map run (+ whitening, + flow).
    STS avg over the maps' tasks; sentence columns on the analysis sentences; token columns on the last layer's
    token vectors (mapped where the checkpoint's sentence vectors live there, else None)."""
    rows = []
    for c in checkpoints:
        dynamics = c.get("token_dynamics") or {}
        mapped = dynamics.get("last_layer_mapped", {})
        maps = [m for m in MAPS if m.name in c]
        variants = [("raw", c["sentence"], dynamics["layers"][-1] if dynamics else None,
                     c[maps[0].name]["avg"]["plain"] if maps else None)]
        variants += [(f"+ {m.name}", c[m.name][f"sentence_after_{m.name}"], mapped.get(m.variant),
                      c[m.name]["avg"][m.variant]) for m in maps]
        for variant, sentence, tokens, sts in variants:
            rows.append({"label": c["label"], "variant": variant, "sts_avg": sts,
                         **{k: sentence.get(k) for k in SENTENCE_KEYS},
                         **{k: (tokens or {}).get(k) for k in TOKEN_KEYS}})
    return rows


def comparison_table(rows: list[dict], markdown: bool = True) -> str:
    columns = [short for _, short in COMPARISON_COLUMNS]
    values = [[fmt(r[k], 2 if k == "sts_avg" else 3) for k, _ in COMPARISON_COLUMNS] for r in rows]
    if markdown:
        return markdown_table(["checkpoint", "variant"] + columns,
                              [[r["label"], r["variant"]] + v for r, v in zip(rows, values)])
    # printed: one name column, short headers, so that a row fits a terminal line
    return text_table(["checkpoint"] + list(PRINTED_COLUMNS),
                      [[r["label"] + ("" if r["variant"] == "raw" else f" {r['variant']}")] + v
                       for r, v in zip(rows, values)], width=9)
