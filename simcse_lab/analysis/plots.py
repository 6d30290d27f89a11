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
