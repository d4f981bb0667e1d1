"""Figures of the evaluations: confusion matrix, top-k curve, retrieval examples, ROC, Grad-CAM strip and GIF.

Figures are drawn on matplotlib `Figure` objects with the Agg canvas (never pyplot), so nothing depends on a
display or on global backend state; GIFs are written with Pillow, which matplotlib already depends on.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

HIT, MISS = "#1a9850", "#d73027"


def _save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def confusion_matrix_png(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
                         title: str = "") -> Path:
    """Row-normalised confusion matrix (rows = true class); class names are shown up to 40 classes.

    Args:
        cm: (C, C) int counts, [true, predicted].
        class_names: C names.
        path: PNG to write.
    """
    cm = np.asarray(cm, dtype=np.float64)
    c = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(14.0, 3.0 + 0.28 * c)
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if c <= 40:
        ax.set_xticks(range(c), labels=list(class_names), rotation=90, fontsize=7)
        ax.set_yticks(range(c), labels=list(class_names), fontsize=7)
        if c <= 12:
            for i in range(c):
                for j in range(c):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix (video level)")
    return _save(fig, path)


def topk_curve_png(curves: Mapping[str, Mapping[int, float]], path: str | os.PathLike, title: str = "",
                   xlabel: str = "k (nearest training videos)", ylabel: str = "top-k retrieval accuracy (%)") -> Path:
    """Accuracy (in %) against k, one line per curve (retrieval: one per model; kNN: top-1, top-5, train).

    Args:
        curves: label -> {k: accuracy in [0, 1]}.
        path: PNG to write.
        xlabel, ylabel: the axis labels.
    """
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for label, acc in curves.items():
        ks = sorted(acc)
        ys = [100 * acc[k] for k in ks]
        ax.plot(ks, ys, marker="o", label=label)
        for k, y in zip(ks, ys):
            ax.annotate(f"{y:.1f}", (k, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    all_k = sorted({k for acc in curves.values() for k in acc})
    ax.set_xscale("log")
    ax.set_xticks(all_k, labels=[str(k) for k in all_k])
    ax.minorticks_off()
    ax.set_ylim(0, 105)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Video retrieval")
    return _save(fig, path)


def cv_curve_png(cs: Sequence[float], folds: np.ndarray, chosen: float, path: str | os.PathLike,
                 test_top1: float | None = None, title: str = "") -> Path:
    """Cross-validation accuracy (in %) against C: the mean over folds with its spread, each fold faint, the chosen
    C marked (and the test top-1 of the model refitted with it).

    Args:
        cs: (n,) the C grid, ascending.
        folds: (n, n_folds) validation accuracy of every C on every fold, in [0, 1].
        chosen: the selected C.
        test_top1: the refitted model's test accuracy in [0, 1], drawn at the chosen C (None: not drawn).
        path: PNG to write.
    """
    cs = np.asarray(cs, dtype=np.float64)
    acc = 100 * np.asarray(folds, dtype=np.float64)
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for j in range(acc.shape[1]):
        ax.plot(cs, acc[:, j], color="grey", lw=0.8, alpha=0.5, label="one fold" if j == 0 else None)
    mean, std = acc.mean(axis=1), acc.std(axis=1)
    ax.fill_between(cs, mean - std, mean + std, alpha=0.2)
    ax.plot(cs, mean, marker="o", lw=2, label=f"mean of {acc.shape[1]} folds (train list)")
    ax.axvline(chosen, ls="--", color="black", lw=1, label=f"chosen C = {chosen:g}")
    if test_top1 is not None:
        ax.plot([chosen], [100 * test_top1], marker="*", ms=12, ls="none", color=MISS,
                label=f"test top-1 {100 * test_top1:.1f} %")
    ax.set_xscale("log")
    ax.set_ylim(0, 105)
    ax.set_xlabel("C (inverse L2 strength)")
    ax.set_ylabel("validation top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Linear classifier: cross-validation over C")
    return _save(fig, path)


@dataclass(frozen=True)
class Thumb:
    """One image of the retrieval grid: uint8 (H, W, 3), a caption, and a frame colour (None: no frame)."""

    image: np.ndarray
    caption: str
    color: str | None = None


def retrieval_grid_png(rows: Sequence[tuple[Thumb, Sequence[Thumb]]], path: str | os.PathLike,
                       title: str = "") -> Path:
    """Example queries (first column) beside their nearest training videos, hits framed green, misses red.

    Args:
        rows: (query, neighbours) per row; every row has the same number of neighbours.
        path: PNG to write.
    """
    if not rows:
        raise ValueError("retrieval_grid_png needs at least one query row")
    n_cols = 1 + max(len(nb) for _, nb in rows)
    h, w = rows[0][0].image.shape[:2]
    cell_w = 1.9
    fig = Figure(figsize=(cell_w * n_cols, (cell_w * h / w + 0.35) * len(rows) + 0.3), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (query, neighbours) in enumerate(rows):
        for c, thumb in enumerate([query, *neighbours]):
            ax = axes[r, c]
            ax.imshow(thumb.image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(thumb.caption, fontsize=7, color=thumb.color or "black")
            for spine in ax.spines.values():
                spine.set_visible(thumb.color is not None or c == 0)
                spine.set_linewidth(3 if thumb.color else 1.5)
                spine.set_edgecolor(thumb.color or "black")
        for c in range(1 + len(neighbours), n_cols):
            axes[r, c].axis("off")
    fig.suptitle(title or "Queries (left) and their nearest training videos", fontsize=9)
    return _save(fig, path)


def roc_png(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: str | os.PathLike, title: str = "") -> Path:
    """ROC curve of held-out decision values with the chance diagonal.

    Args:
        fpr, tpr: (M,) curve points.
        auc: area under the curve, in [0, 1].
        path: PNG to write.
    """
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=2, label=f"AUC {100 * auc:.2f} %")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (not-same called same)")
    ax.set_ylabel("true positive rate (same called same)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "ASLAN ROC (held-out folds pooled)")
    return _save(fig, path)


def heatmap_overlay(frames: np.ndarray, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a heat map in [0, 1] over frames.

    Args:
        frames: uint8 (T, H, W, 3) RGB.
        cam: float (T, H, W) in [0, 1].
        alpha: weight of the heat map.

    Returns:
        uint8 (T, H, W, 3).
    """
    frames = np.asarray(frames)
    cam = np.asarray(cam, dtype=np.float64)
    if frames.ndim != 4 or frames.shape[-1] != 3 or cam.shape != frames.shape[:3]:
        raise ValueError(f"frames must be (T, H, W, 3) and cam (T, H, W) of the same T, H, W; "
                         f"got {frames.shape} and {cam.shape}")
    heat = colormaps[cmap](np.clip(cam, 0.0, 1.0))[..., :3] * 255.0
    return np.clip((1 - alpha) * frames.astype(np.float64) + alpha * heat, 0, 255).round().astype(np.uint8)


def gradcam_strip_png(frames: np.ndarray, overlays: np.ndarray, path: str | os.PathLike, title: str = "",
                      max_frames: int = 16) -> Path:
    """Two rows: the clip's frames and the same frames with the Grad-CAM overlay.

    Args:
        frames: uint8 (T, H, W, 3) as fed to the network (after the crop).
        overlays: uint8 (T, H, W, 3) from `heatmap_overlay`.
        max_frames: at most this many evenly spaced frames are drawn.
    """
    t = frames.shape[0]
    pick = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    fig = Figure(figsize=(1.3 * len(pick), 3.0))
    axes = fig.subplots(2, len(pick), squeeze=False)
    for c, i in enumerate(pick):
        for r, img in enumerate((frames[i], overlays[i])):
            axes[r, c].imshow(img)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[0, c].set_title(f"t={i}", fontsize=7)
    fig.suptitle(title or "Grad-CAM", fontsize=9)
    return _save(fig, path)


def save_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0, scale: int = 2) -> Path:
    """Write frames as a looping GIF.

    Args:
        frames: uint8 (T, H, W, 3).
        fps: playback rate.
        scale: integer upscaling (nearest) so small clips are visible.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return path


def speediness_png(x: np.ndarray, curve: Mapping[str, np.ndarray], thumbs: Sequence[tuple[float, np.ndarray]],
                   path: str | os.PathLike, x_label: str = "time (s)", speed_range: tuple[float, float] = (1.0, 3.0),
                   title: str = "") -> Path:
    """The speediness curve over a strip of the video's frames: E[s] (left axis), P(speed > 1) and P(change)
    (right axis) against time, each thumbnail centred under the time it shows.

    Args:
        x: (N,) clip centres (seconds or frames).
        curve: "expected_speed", "p_faster", "p_change": (N,) each.
        thumbs: (x position, uint8 (H, W, 3) frame) pairs, evenly spaced in x.
        path: PNG to write.
        speed_range: the slowest and fastest class speeds (the E[s] axis spans them).
    """
    x = np.asarray(x, dtype=np.float64)
    where = [p for p, _ in thumbs]
    gap = (max(where) - min(where)) / (len(where) - 1) if len(where) > 1 else max(float(x[-1] - x[0]), 1.0)
    half = 0.48 * gap
    fig = Figure(figsize=(9, 5.6), layout="constrained")
    top, strip = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    marker = "o" if len(x) < 40 else None
    lo, hi = speed_range
    pad = 0.05 * max(hi - lo, 1.0)
    top.plot(x, curve["expected_speed"], color="C0", lw=2, marker=marker, ms=3, label="E[speed] (left)")
    top.set_ylim(lo - pad, hi + pad)
    top.set_ylabel("expected speed E[s]", color="C0")
    right = top.twinx()
    right.plot(x, curve["p_faster"], color="C3", lw=1.6, marker=marker, ms=3, label="P(speed > 1) (right)")
    right.plot(x, curve["p_change"], color="C2", lw=1.2, ls="--", label="P(speed changes) (right)")
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("probability")
    lines = top.get_lines() + right.get_lines()
    fig.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="outside lower center", ncols=3)
    top.grid(alpha=0.3)
    for position, frame in thumbs:
        strip.imshow(frame, extent=(position - half, position + half, 0, 1), aspect="auto")
        top.axvline(position, color="grey", lw=0.6, ls=":")
    strip.set_xlim(min(float(x[0]), min(where) - half), max(float(x[-1]), max(where) + half))
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.set_xlabel(x_label)
    fig.suptitle(title or "Motion speediness", fontsize=9)
    return _save(fig, path)
