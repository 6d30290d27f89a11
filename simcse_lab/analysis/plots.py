"""The analysis report's figures (matplotlib, Agg backend, small PNGs written atomically)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simcse_lab.io import atomic_path  # noqa: E402

DPI = 100


def _save(fig, path) -> str:
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return str(path)


def _grid(n: int, width: float = 4.0, height: float = 3.2):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def norm_vs_rank(tokens: dict[str, dict], path) -> str:
    """Token embedding norm against corpus frequency rank; never-seen tokens drawn at the right in grey."""
    fig, axes = _grid(len(tokens))
    for ax, (name, arr) in zip(axes, tokens.items()):
        seen = arr["counts"] > 0
        ax.scatter(arr["rank"][seen], arr["norms"][seen], s=2, alpha=0.4, label="seen", rasterized=True)
        ax.scatter(arr["rank"][~seen], arr["norms"][~seen], s=2, alpha=0.3, color="grey", label="never seen",
                   rasterized=True)
        ax.set_xscale("log")
        ax.set_xlabel("frequency rank (1 = most frequent)")
        ax.set_ylabel("input embedding L2 norm")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, markerscale=4)
    return _save(fig, path)


def token_projection(tokens: dict[str, dict], path) -> str:
    """2-D SVD projection of the (centred) input embeddings coloured by log frequency (Gao et al. 2019)."""
    fig, axes = _grid(len(tokens), height=3.6)
    for ax, (name, arr) in zip(axes, tokens.items()):
        order = np.argsort(arr["counts"])  # frequent tokens drawn last, on top
        p = arr["projection"][order]
        sc = ax.scatter(p[:, 0], p[:, 1], c=np.log10(1 + arr["counts"][order]), s=2, cmap="viridis",
                        rasterized=True)
        fig.colorbar(sc, ax=ax, label="log10(1 + count)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("SV 1")
        ax.set_ylabel("SV 2")
    return _save(fig, path)


def singular_spectrum(spectra: dict[str, np.ndarray], path) -> str:
    """Singular values of the (uncentred, L2-normalised) sentence embeddings, scaled by the largest."""
    fig, axes = _grid(1, width=5.0)
    ax = axes[0]
    for name, s in spectra.items():
        ax.plot(np.arange(1, len(s) + 1), s / s[0], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value / largest")
    ax.legend(fontsize=7)
    return _save(fig, path)


def align_uniform(points: dict[str, tuple[float, float]], arrows: list[tuple[str, str]], path) -> str:
    """Alignment (lower is better) vs uniformity (lower is better), with arrows before -> after."""
    fig, axes = _grid(1, width=5.0, height=4.0)
    ax = axes[0]
    for name, (a, u) in points.items():
        ax.scatter([u], [a], s=30)
        ax.annotate(name, (u, a), fontsize=7, xytext=(4, 4), textcoords="offset points")
    for before, after in arrows:
        (a0, u0), (a1, u1) = points[before], points[after]
        ax.annotate("", xy=(u1, a1), xytext=(u0, a0), arrowprops={"arrowstyle": "->", "color": "tab:red"})
    ax.set_xlabel("uniformity  log E exp(-2||f(x)-f(y)||^2)")
    ax.set_ylabel("alignment  E ||f(x)-f(x+)||^2")
    return _save(fig, path)


def layer_profile(profiles: dict[str, dict], keys: tuple[str, ...], path) -> str:
    """Isotropy numbers per layer (0 = embedding layer): mean pooling solid, [CLS] dashed."""
    fig, axes = _grid(len(keys), width=3.6)
    for ax, key in zip(axes, keys):
        for i, (name, prof) in enumerate(profiles.items()):
            color = f"C{i}"
            for pooling, style in (("avg", "-"), ("cls", "--")):
                if not prof or pooling not in prof[0]:  # no [CLS] profile: a family without a sentence token
                    continue
                values = [layer[pooling][key] for layer in prof]
                ax.plot(range(len(values)), values, style, color=color, marker=".",
                        label=f"{name} {pooling}")
        ax.set_xlabel("layer")
        ax.set_title(key, fontsize=9)
    axes[0].legend(fontsize=6)
    return _save(fig, path)


def trajectory(records: list[dict], keys: dict[str, str], path) -> str:
    """Training dynamics: alignment vs uniformity coloured by step, and dev Spearman over steps."""
    steps = np.array([r[keys["step"]] for r in records], dtype=float)
    fig, axes = _grid(2 if keys.get("spearman") else 1, width=4.4, height=3.6)
    ax = axes[0]
    a = [r[keys["alignment"]] for r in records]
    u = [r[keys["uniformity"]] for r in records]
    ax.plot(u, a, color="lightgrey", zorder=1)
    sc = ax.scatter(u, a, c=steps, cmap="viridis", s=14, zorder=2)
    fig.colorbar(sc, ax=ax, label="step")
    ax.set_xlabel("uniformity")
    ax.set_ylabel("alignment")
    if keys.get("spearman"):
        ax = axes[1]
        ax.plot(steps, [r[keys["spearman"]] for r in records], marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(keys["spearman"])
    return _save(fig, path)


def token_dynamics(dynamics: dict[str, dict], path) -> str:
    """Token-level dynamics per layer (0 = embedding layer), one colour per checkpoint: intra-sentence
    similarity (to the mean solid, over pairs dashed, the cross-sentence baseline dotted), self-similarity
    (function tokens solid, content dashed), the mean token norm and the norm of the mean token vector."""
    panels = ((("intra_similarity", "-"), ("intra_pairwise_similarity", "--"), ("cross_sentence_similarity", ":")),
              (("self_similarity_function", "-"), ("self_similarity_content", "--")),
              (("mean_norm", "-"),), (("mean_vector_norm", "-"),))
    titles = ("intra-sentence similarity\n(to mean -, pairs --, cross-sentence :)",
              "self-similarity\n(function -, content --)", "mean token norm", "norm of the mean token vector")
    fig, axes = _grid(len(panels), width=3.6, height=3.4)
    for ax, keys, title in zip(axes, panels, titles):
        for i, (name, dyn) in enumerate(dynamics.items()):
            for key, style in keys:
                values = [np.nan if row[key] is None else row[key] for row in dyn["layers"]]
                ax.plot(range(len(values)), values, style, color=f"C{i}", marker=".",
                        label=name if style == "-" else None)
        ax.set_xlabel("layer")
        ax.set_title(title, fontsize=8)
    axes[0].legend(fontsize=6)
    return _save(fig, path)


def self_similarity(dynamics: dict[str, dict], path) -> str:
    """Function vs content self-similarity per layer, one panel per checkpoint, with the cross-sentence
    baseline (Ethayarajh 2019's reading: self-similarity above the baseline = context-independent)."""
    fig, axes = _grid(len(dynamics), width=3.6, height=3.2)
    for ax, (name, dyn) in zip(axes, dynamics.items()):
        layers = range(len(dyn["layers"]))
        for key, label, style in (("self_similarity_function", "function", "-"),
                                  ("self_similarity_content", "content", "-"),
                                  ("cross_sentence_similarity", "cross-sentence baseline", ":")):
            ax.plot(layers, [np.nan if r[key] is None else r[key] for r in dyn["layers"]], style, marker=".",
                    label=label)
        ax.set_xlabel("layer")
        ax.set_ylabel("mean cosine")
        ax.set_title(name, fontsize=8)
        ax.legend(fontsize=6)
    return _save(fig, path)


def checkpoint_trajectory(points: list[dict], path) -> str:
    """Measures of a run's checkpoints against the training step: sentence IsoScore and mean cosine, and the
    last layer's intra-sentence similarity, self-similarity (function / content) and norms."""
    steps = [p["step"] for p in points]

    def series(key, where="sentence"):
        if where == "sentence":
            return [p["sentence"][key] for p in points]
        return [np.nan if "token_dynamics" not in p or p["token_dynamics"]["layers"][-1][key] is None
                else p["token_dynamics"]["layers"][-1][key] for p in points]

    has_tokens = any("token_dynamics" in p for p in points)
    fig, axes = _grid(4 if has_tokens else 1, width=3.6, height=3.2)
    axes[0].plot(steps, series("isoscore"), marker=".", label="IsoScore")
    axes[0].plot(steps, series("mean_cosine"), marker=".", label="mean cosine")
    axes[0].set_title("sentence vectors", fontsize=8)
    axes[0].legend(fontsize=6)
    if has_tokens:
        for key, label in (("intra_similarity", "intra-sentence (to mean)"),
                           ("cross_sentence_similarity", "cross-sentence")):
            axes[1].plot(steps, series(key, "tokens"), marker=".", label=label)
        axes[1].set_title("last layer: token similarity", fontsize=8)
        for key, label in (("self_similarity_function", "function"), ("self_similarity_content", "content")):
            axes[2].plot(steps, series(key, "tokens"), marker=".", label=label)
        axes[2].set_title("last layer: self-similarity", fontsize=8)
        for key, label in (("mean_norm", "mean token norm"), ("mean_vector_norm", "norm of the mean token")):
            axes[3].plot(steps, series(key, "tokens"), marker=".", label=label)
        axes[3].set_title("last layer: norms", fontsize=8)
        for ax in axes[1:]:
            ax.legend(fontsize=6)
    for ax in axes:
        ax.set_xlabel("training step")
    return _save(fig, path)


def length_histogram(histogram: dict[int, int], max_seq_len: int, path, title: str = "") -> str:
    """Sentences per length in tokens (special tokens included), the truncation length marked (data inspect)."""
    fig, (ax,) = _grid(1, width=6.0, height=3.4)
    lengths = np.array(sorted(histogram), dtype=np.int64)
    ax.bar(lengths, [histogram[n] for n in lengths], width=1.0, color="tab:blue", alpha=0.8)
    ax.axvline(max_seq_len + 0.5, color="tab:red", linestyle="--", label=f"--max-seq-len {max_seq_len}")
    ax.set_xlabel("length in tokens (special tokens included)")
    ax.set_ylabel("sentences")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)
