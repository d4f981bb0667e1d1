"""Action recognition of a finetuned checkpoint on a store's test split (paper section 4.3).

10 clips per test video at linspace centres, centre crop, softmax probabilities averaged over the clips (logit
averaging on request), top-1/top-5 at clip and video level, per-class accuracy, a confusion-matrix PNG, a
predictions CSV and a results JSON. The metrics are `v3s.shared.metrics.recognition`'s.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from v3s.shared.config import FinetuneConfig

from .config import RecognitionConfig
from .features import ClipSpec, logits_forward
from v3s.shared.metrics.recognition import aggregate_clips, confusion_matrix, per_class_accuracy, topk_accuracy
from .plots import confusion_matrix_png
from .resolve import Extractor, clip_geometry, describe_model, output_dir, resolve_model, resolve_store
from .results import trailer, write_results

TOP_KS = (1, 5)


def check_classes(config: FinetuneConfig, store_classes: tuple[str, ...], dataset: str, ckpt: str) -> None:
    """A finetuned classifier's classes must be the dataset's, in the same order; ValueError naming both."""
    if config.n_classes != len(store_classes):
        raise ValueError(f"checkpoint {ckpt} classifies {config.n_classes} classes but dataset {dataset!r} in the store "
                         f"has {len(store_classes)}; evaluate it on the dataset it was finetuned on ({config.dataset!r})")
    names = config.classes
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
    cfg, loaded = resolve_model(cfg, log=log, default="v3s-finetune")
    if loaded.kind != "v3s-finetune":
        raise ValueError(f"checkpoint {cfg.ckpt} is a {loaded.kind!r} checkpoint; recognition needs a finetuned one "
                         f"(v3s-train finetune --init {cfg.ckpt} ...)")
    cfg, store = resolve_store(cfg, loaded, log)
    out = output_dir(cfg, loaded, f"recognition-{cfg.dataset}-split{cfg.split}")
    videos = store.split(cfg.dataset, cfg.split, "test")
    classes = store.classes(cfg.dataset)
    check_classes(loaded.config, classes, cfg.dataset, cfg.ckpt)
    spec = ClipSpec("linspace", n_clips=cfg.clips, **clip_geometry(cfg, loaded))
    feats = Extractor.for_model(cfg, loaded, log).features(
        loaded, logits_forward(loaded.model), ["logits"], store, cfg.dataset, videos, spec,
        what={"task": "recognition", "split": str(cfg.split), "role": "test"}, clip_taps=["logits"])

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

    files = {
        "confusion": confusion_matrix_png(cm, classes, out / "confusion.png",
                                          title=f"{cfg.dataset} split {cfg.split}: video top-1 {100 * video_acc[1]:.2f} %"),
        "predictions": _write_predictions(out / "predictions.csv", feats.keys, labels, pred, video_scores, classes),
    }
    return write_results(out, {
        "task": "recognition",
        "model": describe_model(loaded),
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
        "config": cfg.to_dict(),
    }, files)


def _write_predictions(path: Path, keys: list[str], labels: np.ndarray, pred: np.ndarray, scores: np.ndarray,
                       classes: tuple[str, ...]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "label", "predicted", "true_class", "predicted_class", "score"])
    for key, t, p, s in zip(keys, labels.tolist(), pred.tolist(), scores):
        w.writerow([key, t, p, classes[t], classes[p], f"{s[p]:.6g}"])
    path.write_text(buf.getvalue())
    return path


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    pct = lambda v: "  n/a " if v is None else f"{100 * v:6.2f}"  # noqa: E731
    return "\n".join([
        f"recognition  {results['dataset']} split {results['split']}: {results['n_videos']} test videos, "
        f"{results['n_clips']} clips, {results['n_classes']} classes, average={results['protocol']['average']}",
        "           top-1   top-5",
        f"  clip    {pct(results['clip']['top1'])}  {pct(results['clip']['top5'])}",
        f"  video   {pct(results['video']['top1'])}  {pct(results['video']['top5'])}",
        f"  mean class accuracy {pct(results['mean_class_accuracy'])} %",
        *trailer(results),
    ])
