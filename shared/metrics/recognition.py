"""Clip -> video aggregation and the accuracy metrics of action recognition (model-independent, numpy in/out).

The paper (section 4.3) scores 10 clips per video and averages the softmax probabilities; VCOP averages the
logits. Both are offered by :func:`aggregate_clips`. Ties in a ranking are broken towards the lower class index,
the same rule as ``np.argmax`` and a stable sort, so every metric here is deterministic.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AGGREGATION_MODES = ("prob", "logit")


def _check_index(video_index: np.ndarray, n_rows: int, n_videos: int) -> np.ndarray:
    """Validate a clip -> video index and check that no video is left without clips."""
    video_index = np.asarray(video_index)
    if video_index.shape != (n_rows,):
        raise ValueError(f"video_index must have shape ({n_rows},) (one entry per clip), got {video_index.shape}")
    if not np.issubdtype(video_index.dtype, np.integer):
        raise ValueError(f"video_index must hold integers, got dtype {video_index.dtype}")
    if n_videos < 1:
        raise ValueError(f"n_videos must be >= 1, got {n_videos}")
    if n_rows and (video_index.min() < 0 or video_index.max() >= n_videos):
        raise ValueError(
            f"video_index must lie in [0, {n_videos}), got values in [{video_index.min()}, {video_index.max()}]"
        )
    counts = np.bincount(video_index, minlength=n_videos)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        raise ValueError(f"{missing.size} video(s) have no clips, e.g. video {missing[:5].tolist()}")
    return video_index


def mean_over_clips(clip_values: np.ndarray, video_index: np.ndarray, n_videos: int) -> np.ndarray:
    """Average clip rows into one row per video; every video must have at least one clip.

    Args:
        clip_values: (N_clips, D) float array, one row per clip (features, logits or probabilities).
        video_index: (N_clips,) int array, the video (0..n_videos-1) each clip belongs to; any order.
        n_videos: number of videos; a video with no clip raises ValueError rather than being dropped.

    Returns:
        (n_videos, D) float64 array of per-video means, row v for video v.
    """
    clip_values = np.asarray(clip_values, dtype=np.float64)
    if clip_values.ndim != 2:
        raise ValueError(f"clip_values must be 2-D (N_clips, D), got shape {clip_values.shape}")
    video_index = _check_index(video_index, clip_values.shape[0], n_videos)
    sums = np.zeros((n_videos, clip_values.shape[1]), dtype=np.float64)
    np.add.at(sums, video_index, clip_values)
    return sums / np.bincount(video_index, minlength=n_videos)[:, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum so large logits do not overflow.

    Args:
        logits: (N, C) array.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def aggregate_clips(clip_scores: np.ndarray, video_index: np.ndarray, n_videos: int, mode: str = "prob") -> np.ndarray:
    """Combine per-clip class scores into per-video scores.

    Args:
        clip_scores: (N_clips, C) raw logits, one row per clip.
        video_index: (N_clips,) int, the video of each clip (0..n_videos-1).
        n_videos: number of videos; each needs at least one clip.
        mode: "prob" averages softmax probabilities (the paper), "logit" averages the raw logits (VCOP).

    Returns:
        (n_videos, C) float64: mean probabilities ("prob") or mean logits ("logit").
    """
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"mode must be one of {AGGREGATION_MODES}, got {mode!r}")
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    if clip_scores.ndim != 2:
        raise ValueError(f"clip_scores must be 2-D (N_clips, C), got shape {clip_scores.shape}")
    if not np.isfinite(clip_scores).all():
        raise ValueError("clip_scores contains NaN or inf")
    values = softmax(clip_scores) if mode == "prob" else clip_scores
    return mean_over_clips(values, video_index, n_videos)


def _check_labels(labels: np.ndarray, n: int, n_classes: int, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got values in [{labels.min()}, {labels.max()}]")
    return labels


def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of the true class in each row's descending ranking; ties go to the lower class index.

    Equal to the position of ``labels[i]`` in ``np.argsort(-scores[i], kind="stable")``.

    Args:
        scores: (N, C) class scores (logits or probabilities).
        labels: (N,) int true classes.

    Returns:
        (N,) int64 ranks in 0..C-1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, C), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contains NaN")
    n, c = scores.shape
    labels = _check_labels(labels, n, c)
    true = scores[np.arange(n), labels][:, None]
    lower_index = np.arange(c)[None, :] < labels[:, None]
    return ((scores > true) | ((scores == true) & lower_index)).sum(axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose true class is among the k highest scores (ties -> lower class index first).

    Args:
        scores: (N, C) class scores, N >= 1.
        labels: (N,) int true classes.
        ks: the k values; each must satisfy 1 <= k <= C.

    Returns:
        {k: accuracy in [0, 1]}.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"scores must be 2-D (N, C) with N >= 1, got shape {scores.shape}")
    c = scores.shape[1]
    for k in ks:
        if not 1 <= int(k) <= c:
            raise ValueError(f"k must be in [1, {c}] (the number of classes), got {k}")
    ranks = label_ranks(scores, labels)
    return {int(k): float((ranks < int(k)).mean()) for k in ks}


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs; rows are true classes, columns predictions (sklearn's layout).

    Args:
        pred: (N,) int predicted classes.
        labels: (N,) int true classes.
        n_classes: C.

    Returns:
        (C, C) int64 matrix whose entry [t, p] counts samples of class t predicted as p.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    labels = _check_labels(labels, labels.shape[0], n_classes)
    pred = _check_labels(pred, labels.shape[0], n_classes, name="pred")
    return np.bincount(labels * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class: correct / samples of that class; NaN for classes with no samples.

    Args:
        pred: (N,) int predicted classes.
        labels: (N,) int true classes.
        n_classes: C.

    Returns:
        (C,) float64.
    """
    cm = confusion_matrix(pred, labels, n_classes)
    support = cm.sum(axis=1)
    out = np.full(n_classes, np.nan)
    seen = support > 0
    out[seen] = np.diag(cm)[seen] / support[seen]
    return out
