"""Action recognition of a finetuned checkpoint on a store's test split (paper section 4.3).

10 clips per test video at linspace centres, centre crop, softmax probabilities averaged over the clips (logit
averaging on request), top-1/top-5 at clip and video level, per-class accuracy, a confusion-matrix PNG and a
results JSON. The metrics are `v3s.evaluate.recognition`'s; this module loads, extracts (cached) and reports.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v3s.shared.atomic import write_json

from .features import (ClipSpec, cached_features, extraction_options, load_model, logits_forward, open_dataset,
                       split_videos)
from .plots import confusion_matrix_png
from .recognition import AGGREGATION_MODES, aggregate_clips, confusion_matrix, per_class_accuracy, topk_accuracy

TOP_KS = (1, 5)


@dataclass(frozen=True)
class RecognitionConfig:
    """Options of `v3s-eval recognition` (one field per option).

    Attributes:
        ckpt: a v3s-finetune checkpoint.
        store, dataset, split: the test videos (role "test" of the split).
        clips: clips per video (linspace centres).
        average: "prob" (the paper) or "logit" (VCOP).
        batch_size, workers, device: extraction settings (they never change the numbers' meaning).
        out: results folder (default CKPT_DIR/eval/recognition-<dataset>-split<split>).
        cache_dir: feature cache folder (default CKPT_DIR/features); use_cache False: always extract.
        progress: show a progress bar.
    """

    ckpt: str
    store: str
    dataset: str
    split: str = "1"
    clips: int = 10
    average: str = "prob"
    batch_size: int = 16
    workers: int | None = None
    device: str = "auto"
    out: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    progress: bool = True


def check_classes(ckpt_config: dict[str, Any], store_classes: tuple[str, ...], dataset: str, ckpt: str) -> None:
    """A finetuned classifier's classes must be the dataset's, in the same order; ValueError naming both."""
    n = ckpt_config.get("n_classes")
    if n != len(store_classes):
        raise ValueError(f"checkpoint {ckpt} classifies {n} classes but dataset {dataset!r} in the store has "
                         f"{len(store_classes)}; evaluate it on the dataset it was finetuned on "
                         f"({ckpt_config.get('dataset')!r})")
    names = ckpt_config.get("classes")
    if names is not None and tuple(names) != tuple(store_classes):
        i = next(i for i, (a, b) in enumerate(zip(names, store_classes)) if a != b)
        raise ValueError(f"checkpoint {ckpt} has class {i} = {names[i]!r} but dataset {dataset!r} in the store has "
                         f"{store_classes[i]!r}: the label orders differ")


def run_recognition(cfg: RecognitionConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate a finetuned checkpoint; write results.json, confusion.png and predictions.csv to the out folder.

    Args:
        cfg: the options.
        log: receives one-line progress messages (cache hit / extraction).

    Returns:
        the results dict (also written as results.json).
    """
    if cfg.average not in AGGREGATION_MODES:
        raise ValueError(f"average {cfg.average!r} is not one of {AGGREGATION_MODES}")
    if cfg.clips < 1:
        raise ValueError(f"clips must be >= 1, got {cfg.clips}")
    loaded = load_model(cfg.ckpt)
    if loaded.kind != "v3s-finetune":
        raise ValueError(f"checkpoint {cfg.ckpt} is a {loaded.kind!r} checkpoint; recognition needs a finetuned one "
                         f"(v3s-train finetune --init {cfg.ckpt} ...)")
    store = open_dataset(cfg.store, cfg.dataset, cfg.split)
    classes = store.classes(cfg.dataset)
    check_classes(loaded.config, classes, cfg.dataset, cfg.ckpt)
    videos = split_videos(store, cfg.dataset, cfg.split, "test")
    spec = ClipSpec("linspace", clip_len=int(loaded.config["clip_len"]), crop=int(loaded.config["clip_size"]),
                    n_clips=cfg.clips, frame_step=int(loaded.config.get("frame_step", 1)))
    feats = cached_features(
        loaded, logits_forward(loaded.model), ["logits"], store, cfg.dataset, videos, spec,
        what={"task": "recognition", "split": str(cfg.split), "role": "test"}, clip_taps=["logits"],
        **extraction_options(cfg, loaded, log))

    n_classes, n_videos = len(classes), len(videos)
    labels = feats.labels
    clip_logits, clip_video = feats.clips["logits"], feats.clip_video
    ks = [k for k in TOP_KS if k <= n_classes]
    notes = [f"top-{k} is not reported: the dataset has {n_classes} classes" for k in TOP_KS if k > n_classes]
    clip_acc = topk_accuracy(clip_logits, labels[clip_video], ks)
    video_scores = aggregate_clips(clip_logits, clip_video, n_videos, mode=cfg.average)
    video_acc = topk_accuracy(video_scores, labels, ks)
    pred = video_scores.argmax(axis=1)
    per_class = per_class_accuracy(pred, labels, n_classes)
    cm = confusion_matrix(pred, labels, n_classes)

    out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent / "eval" / f"recognition-{cfg.dataset}-split{cfg.split}"
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results": out / "results.json",
        "confusion": confusion_matrix_png(cm, classes, out / "confusion.png",
                                          title=f"{cfg.dataset} split {cfg.split}: video top-1 {100 * video_acc[1]:.2f} %"),
        "predictions": out / "predictions.csv",
    }
    _write_predictions(files["predictions"], feats.keys, labels, pred, video_scores, classes)
    results = {
        "task": "recognition",
        "model": loaded.describe(),
        "dataset": cfg.dataset,
        "split": str(cfg.split),
        "n_videos": n_videos,
        "n_clips": int(clip_logits.shape[0]),
        "n_classes": n_classes,
        "protocol": {**spec.key(), "average": cfg.average, "role": "test"},
        "clip": {f"top{k}": clip_acc.get(k) for k in TOP_KS},
        "video": {f"top{k}": video_acc.get(k) for k in TOP_KS},
        "mean_class_accuracy": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else None,
        "per_class": dict(zip(classes, per_class.tolist())),
        "confusion_matrix": cm.tolist(),
        "notes": notes,
        "features": {"cache_hit": feats.cache_hit, "path": feats.cache_path},
        "files": files,
        "config": asdict(cfg),
    }
    write_json(files["results"], results)
    return results


def _write_predictions(path: Path, keys: list[str], labels: np.ndarray, pred: np.ndarray, scores: np.ndarray,
                       classes: tuple[str, ...]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "label", "predicted", "true_class", "predicted_class", "score"])
    for key, t, p, s in zip(keys, labels.tolist(), pred.tolist(), scores):
        w.writerow([key, t, p, classes[t], classes[p], f"{s[p]:.6g}"])
    path.write_text(buf.getvalue())


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    pct = lambda v: "  n/a " if v is None else f"{100 * v:6.2f}"  # noqa: E731
    lines = [
        f"recognition  {results['dataset']} split {results['split']}: {results['n_videos']} test videos, "
        f"{results['n_clips']} clips, {results['n_classes']} classes, average={results['protocol']['average']}",
        "           top-1   top-5",
        f"  clip    {pct(results['clip']['top1'])}  {pct(results['clip']['top5'])}",
        f"  video   {pct(results['video']['top1'])}  {pct(results['video']['top5'])}",
        f"  mean class accuracy {pct(results['mean_class_accuracy'])} %",
    ]
    lines += [f"  note: {n}" for n in results["notes"]]
    lines += [f"  {name}: {path}" for name, path in results["files"].items()]
    return "\n".join(lines)
