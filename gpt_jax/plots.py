"""Loss curves as PNG files, drawn without a display (matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gpt_jax.errors import UserError  # noqa: E402


def _save(fig, path: Path) -> None:
    """Writes the figure as a PNG; a file that cannot be written is one UserError."""
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)


def plot_losses(records: list[dict], path: Path, title: str = "") -> None:
    """Train and val loss against step, from metrics.jsonl records."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=key.replace("_", " "))
    ax.set(xlabel="step", ylabel="cross-entropy loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_ladder(curves: dict[str, list[dict]], references: dict[str, float], path: Path) -> None:
    """Val loss of every ladder step on one plot; each step's reference figure is a marker at
    its last step, in the same colour as its curve."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, records in curves.items():
        points = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
        if not points:
            continue
        (line,) = ax.plot(*zip(*points, strict=True), label=name)
        if name in references:
            ax.plot(points[-1][0], references[name], marker="*", markersize=12, linestyle="none",
                    color=line.get_color())
    ax.plot([], [], marker="*", linestyle="none", color="gray", label="lecture's figure")
    ax.set(xlabel="step", ylabel="val loss", title="The ladder: validation loss by step")
    ax.grid(alpha=0.3)
    ax.legend(ncol=2)
    _save(fig, path)
