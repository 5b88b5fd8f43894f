"""The pictures of `python -m gpt_jax.inspect`, drawn without a display (matplotlib's Agg).

Each function takes arrays already computed from a run and writes one small PNG. Characters
on the axes are shown readably: a newline as ⏎, a space as ␣, a tab as ⇥ (DejaVu Sans,
matplotlib's default font, has them).
Legend: L layers, H heads, T query time, S key time, V vocab, N points.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gpt_jax.plots import save_png  # noqa: E402

DPI = 100
MAX_WIDTH_IN = 22  # an attention grid wider than this shrinks its cells (and its labels)
MIN_LOSS_SPAN = 0.5  # the loss-by-position axis spans at least this much
VISIBLE = {"\n": "⏎", " ": "␣", "\t": "⇥"}
# Colour classes of characters, in legend order; tab10's colours.
CLASSES = ("vowel", "consonant", "capital", "digit", "punctuation", "space", "special")
COLOURS = dict(zip(CLASSES, plt.get_cmap("tab10").colors, strict=False))


def visible(text: str) -> str:
    """Text with its whitespace made visible and other control characters as escapes."""
    return "".join(VISIBLE.get(c, c if c.isprintable() else f"\\x{ord(c):02x}"
                               if ord(c) < 0x100 else f"\\u{ord(c):04x}") for c in text)


def readable(token: str) -> str:
    """A token as matplotlib should draw it: visible, and '$' escaped (not maths)."""
    return visible(token).replace("$", r"\$")


def char_class(token: str) -> str:
    """Which of CLASSES a token belongs to, by its first character ('special': <bos>...)."""
    if len(token) > 1 and token.startswith("<") and token.endswith(">"):
        return "special"
    c = token[:1]
    if c.isspace() or not c:
        return "space"
    if unicodedata.normalize("NFD", c)[0] in "aeiou":  # é and ö too
        return "vowel"
    if c.isalpha():
        return "capital" if c.isupper() else "consonant"
    if c.isdigit():
        return "digit"
    return "punctuation"


def _save(fig, path: Path) -> None:
    save_png(fig, path, dpi=DPI, colours=256, tight=False)


# Colours on a square-root scale (PowerNorm 0.5): a weight of 0.05 is still visible beside 1.
def attention_grid(weights_LxHxTxS: np.ndarray, queries: list[str], keys: list[str],
                   causal: bool, title: str, path: Path) -> None:
    """One heatmap per layer (rows) and head (columns): row t is how query t spreads its
    attention over the keys. A causal head's masked future is left white."""
    L, H, T, S = weights_LxHxTxS.shape
    # Inches per character: large enough to read a label, small enough that the grid fits.
    cell = float(np.clip((MAX_WIDTH_IN / H - 0.9) / S, 0.11, 0.2))
    panel_w, panel_h = max(1.6, S * cell) + 0.9, max(1.6, T * cell) + 0.8
    fontsize = float(np.clip(cell * 72 * 0.8, 6, 10))
    fig, axes = plt.subplots(L, H, figsize=(max(H * panel_w + 1.0, 5.5), L * panel_h + 0.8),
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    future_TxS = np.triu(np.ones((T, S), bool), k=1) if causal else np.zeros((T, S), bool)
    image = None
    for layer in range(L):
        for head in range(H):
            ax = axes[layer, head]
            image = ax.imshow(np.ma.masked_array(weights_LxHxTxS[layer, head], future_TxS),
                              cmap=cmap, norm=PowerNorm(0.5, vmin=0, vmax=1),
                              interpolation="nearest", aspect="equal")
            ax.set_xticks(range(S), [readable(k) for k in keys], fontsize=fontsize,
                          rotation=90 if any(len(k) > 1 for k in keys) else 0)
            ax.set_yticks(range(T), [readable(q) for q in queries], fontsize=fontsize)
            ax.tick_params(length=0, pad=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            if head == 0:
                ax.set_ylabel("query (attending)", fontsize=8)
            if layer == L - 1:
                ax.set_xlabel("key (attended to)", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=min(0.8, 1.5 / L), aspect=15,
                 label="attention weight (square-root scale)")
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def embedding_scatter(points_Nx2: np.ndarray, labels: list[str], explained: tuple[float, float],
                      title: str, path: Path) -> None:
    """Each character at its 2-D projection, written as itself and coloured by its class."""
    fig, ax = plt.subplots(figsize=(8, 7), layout="constrained")
    classes = [char_class(label) for label in labels]
    for (x, y), label, kind in zip(points_Nx2, labels, classes, strict=True):
        ax.text(x, y, readable(label), color=COLOURS[kind], fontsize=12, ha="center",
                va="center", fontweight="bold")
    pad_2 = 0.08 * (points_Nx2.max(0) - points_Nx2.min(0)) + 1e-6
    ax.set_xlim(points_Nx2[:, 0].min() - pad_2[0], points_Nx2[:, 0].max() + pad_2[0])
    ax.set_ylim(points_Nx2[:, 1].min() - pad_2[1], points_Nx2[:, 1].max() + pad_2[1])
    for kind in CLASSES:
        if kind in classes:
            ax.scatter([], [], color=COLOURS[kind], label=kind)
    ax.legend(loc="best", fontsize=9)
    ax.set(xlabel=f"first principal component ({explained[0]:.0%} of the variance)",
           ylabel=f"second principal component ({explained[1]:.0%})", title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def probability_table(probs_VxV: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    """The bigram's table: row = the current character, column = the next, colour = P."""
    V = len(labels)
    size = float(np.clip(0.12 * V + 1.5, 5, 11))
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(probs_VxV, cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=1),
                      interpolation="nearest")
    fontsize = float(np.clip(size * 72 / V * 0.6, 4, 10))
    ax.set_xticks(range(V), [readable(c) for c in labels], fontsize=fontsize)
    ax.set_yticks(range(V), [readable(c) for c in labels], fontsize=fontsize)
    ax.tick_params(length=0, pad=1)
    ax.set(xlabel="next character", ylabel="current character", title=title)
    fig.colorbar(image, ax=ax, shrink=0.8, label="P(next | current) (square-root scale)")
    _save(fig, path)


def position_loss(mean_T: np.ndarray, blocks: int, title: str, path: Path,
                  unit: str = "character") -> None:
    """The mean loss at each position of a block; `unit`: what a position holds."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    t = np.arange(1, len(mean_T) + 1)
    ax.plot(t, mean_T, marker="o" if len(t) <= 32 else None, markersize=4)
    # A flat line must look flat: never zoom in on less than MIN_LOSS_SPAN of loss.
    low, high = float(mean_T.min()), float(mean_T.max())
    middle, half = (low + high) / 2, max(high - low, MIN_LOSS_SPAN) / 2 * 1.1
    ax.set_ylim(middle - half, middle + half)
    ax.set(xlabel=f"{unit}s in the block so far (position + 1): the context a model that "
                  f"attends may see",
           ylabel="validation loss", title=f"{title}\n(mean over {blocks:,} blocks)")
    ax.grid(alpha=0.3)
    _save(fig, path)


def next_token_bars(labels: list[str], probs: np.ndarray, title: str, path: Path) -> None:
    """The most likely next characters, most likely on top, each with its probability."""
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(labels) + 1.3), layout="constrained")
    y = np.arange(len(labels))[::-1]
    ax.barh(y, probs, color=[COLOURS[char_class(c)] for c in labels])
    ax.set_yticks(y, [readable(c) for c in labels], fontsize=12)
    for yi, p in zip(y, probs, strict=True):
        ax.text(p, yi, f" {p:.3f}" if p >= 1e-3 else f" {p:.0e}", va="center", fontsize=9)
    right = float(probs.max()) * 1.2 + 0.03  # room for the last label, even past 1
    ax.set_xlim(0, right)
    top = min(right, 1.0)  # ticks at round values (0.01, 0.1, ...) up to 1, never past it
    ax.set_xticks([x for x in MaxNLocator(6).tick_values(0, top) if 0 <= x <= top])
    ax.set(xlabel="probability", title=title)
    _save(fig, path)
