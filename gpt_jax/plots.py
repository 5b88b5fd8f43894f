"""Loss curves as PNG files, drawn without a display (matplotlib's Agg backend)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from gpt_jax.run_files import write_atomic  # noqa: E402


def save_png(fig, path: Path, dpi: int = 120, colours: int | None = None,
             tight: bool = True) -> None:
    """Writes the figure as a PNG (of at most `colours` colours: a third of the bytes, for
    the pictures the README commits); a file that cannot be written is one UserError. A
    character the font lacks (a title in another script) is drawn as a box, not warned of."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from")
            if tight:  # else the figure has a layout of its own
                fig.tight_layout()
            fig.savefig(buffer, dpi=dpi)
    finally:
        plt.close(fig)
    image = Image.open(io.BytesIO(buffer.getvalue()))
    if colours:
        image = image.convert("RGB").quantize(colours, dither=Image.Dither.NONE)
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    write_atomic(path, png.getvalue())  # a full disk keeps the picture there was


def step_ticks() -> MaxNLocator:
    """matplotlib's usual ticks (0, 1000, ..., 5000), but whole steps only: a run of 2 steps
    read 0.25, 0.5, ..."""
    return MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True)


def plot_losses(records: list[dict], path: Path, title: str = "") -> None:
    """Train and val loss against step, from metrics.jsonl records."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=key.replace("_", " "))
    ax.set(xlabel="step", ylabel="cross-entropy loss", title=title)
    ax.xaxis.set_major_locator(step_ticks())
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, path)


def plot_ladder(curves: dict[str, list[dict]], references: dict[str, float], path: Path,
                title: str = "The ladder") -> None:
    """Val loss of every ladder step on one plot (of its first seed); each step's reference
    figure, if it has one, is a marker at its last step, in the same colour as its curve.
    Beside it, a zoom on the curves that end within 0.3 of the best one (the CPU GPT and its
    modern rungs), whose differences the full scale hides."""
    series = {}
    for name, records in curves.items():
        points = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
        if points:
            series[name] = points
    best = min((points[-1][1] for points in series.values()), default=0.0)
    close = {name: p for name, p in series.items() if p[-1][1] <= best + 0.3}
    zoom = len(close) > 1 and len(close) < len(series)
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(14 if zoom else 9, 5.5), squeeze=False)
    colours = plt.get_cmap("tab20").colors
    for i, (name, points) in enumerate(series.items()):
        colour = colours[(2 * i) % 20 + (2 * i) // 20 % 2]  # the dark shades, then the light
        axes[0, 0].plot(*zip(*points, strict=True), label=name, color=colour)
        if name in references:
            axes[0, 0].plot(points[-1][0], references[name], marker="*", markersize=12,
                            linestyle="none", color=colour)
        if zoom and name in close:
            late = [(x, y) for x, y in points if x >= points[-1][0] / 2]
            axes[0, 1].plot(*zip(*late, strict=True), label=name,
                            color=colour, marker=".")
    if references:
        axes[0, 0].plot([], [], marker="*", linestyle="none", color="gray",
                        label="lecture's figure")
    axes[0, 0].set(xlabel="step", ylabel="val loss",
                   title=f"{title}: validation loss by step (first seed)")
    axes[0, 0].legend(ncol=2)
    if zoom:
        last = max(points[-1][0] for points in close.values())
        if last > 0:  # the second half, even where it holds one evaluation
            axes[0, 1].set_xlim(last / 2 - last / 40, last + last / 40)
        axes[0, 1].set(xlabel="step", title="The best steps, second half of training")
        axes[0, 1].legend(ncol=2, fontsize="small")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(step_ticks())
        ax.grid(alpha=0.3)
    save_png(fig, path)
