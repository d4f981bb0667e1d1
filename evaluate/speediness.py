"""The motion speediness curve (paper section 3.4, Fig. 4, after SpeedNet, Benaim et al., CVPR 2020): how fast
each stretch of a video looks to the pretrained temporal head.

Clips of clip_len consecutive frames (the plain clip, speed 1) slide over the video every `stride` frames. For each
the V3S temporal head gives a softmax p over its classes: TS speeds s (every s-th frame) and TP patterns (s1, s2)
(the first half at step s1, the rest at step s2). A clip played at its natural speed should read as TS(1); a
stretch of fast motion reads as sped up. Each class enters through one number, its mean speed over the clip
(the clip's span less one, divided by clip_len - 1: s for TS(s), (7 s1 + 8 s2) / 15 for TP(s1, s2) with 16
frames), and every clip gives:
    E[s]            = sum_c p_c speed_c                      the expected playback speed
    P(speed > 1)    = sum of p_c over classes with speed_c > 1 (every class but TS(1))
    P(change)       = sum of p_c over the TP classes          the head's belief that the speed changes
docs/protocols.md says why TP classes are kept (marginalised onto their mean speed) rather than dropped.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from v3s.shared.atomic import write_text
from v3s.shared.checkpoint import LoadedModel
from v3s.shared.labels import LabelSpace, TemporalClass
from v3s.shared.runtime import amp_dtype, resolve_device
from v3s.shared.spatial import eval_batch
from v3s.shared.temporal import clip_indices

from .config import SpeedinessConfig
from .features import ClipSpec
from .plots import speediness_png
from .resolve import Extractor, batch_size_for, describe_model, output_dir, resolve_model
from .results import trailer, write_results
from .video_source import VideoSource, open_video

Log = Callable[[str], None]


def class_speeds(classes: Sequence[TemporalClass], clip_len: int) -> np.ndarray:
    """Mean playback speed of each temporal class over a clip: (span - 1) / (clip_len - 1).

    Args:
        classes: the temporal head's classes, in head order.
        clip_len: frames per clip (>= 2).
    Returns:
        float64 (C,): s for TS(s); the mean step of TP(s1, s2), e.g. (7 s1 + 8 s2) / 15 at 16 frames.
    """
    if clip_len < 2:
        raise ValueError(f"a speed needs clips of >= 2 frames, got clip_len {clip_len}")
    return np.array([(c.span(clip_len) - 1) / (clip_len - 1) for c in classes], dtype=np.float64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64. Args: logits (N, C). Returns (N, C), rows summing to 1."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def speediness(probs: np.ndarray, classes: Sequence[TemporalClass], clip_len: int) -> dict[str, np.ndarray]:
    """The curve's three readings from the temporal head's probabilities.

    Args:
        probs: (N, C) softmax over the temporal classes, one row per clip.
        classes: the C temporal classes, in head order.
        clip_len: frames per clip.
    Returns:
        {"expected_speed", "p_faster", "p_change"}: float64 (N,) each (see the module docstring).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(f"probs must be (N, {len(classes)}), got {probs.shape}")
    speeds = class_speeds(classes, clip_len)
    changing = np.array([c.kind == "pattern" for c in classes])
    return {"expected_speed": probs @ speeds, "p_faster": probs[:, speeds > 1].sum(axis=1),
            "p_change": probs[:, changing].sum(axis=1)}


def _temporal_space(loaded: LoadedModel, ckpt: str) -> LabelSpace:
    """The pretrain checkpoint's label space; a model without a trained temporal head is refused."""
    if loaded.kind != "v3s-pretrain":
        what = {"v3s-finetune": "a finetune checkpoint: its head classifies actions",
                "random": "a random initialisation: it has no head",
                "peer": "a peer's backbone weights: they have no V3S head"}.get(loaded.kind, loaded.kind)
        raise ValueError(f"speediness reads the V3S temporal head, which only a pretrain checkpoint has; {ckpt} is "
                         f"{what} (give the v3s-train pretrain run's best.pt)")
    space = LabelSpace.from_dict(loaded.config.label_space)
    if not space.ts and not space.tp:
        raise ValueError(f"checkpoint {ckpt} was pretrained without temporal transformations (ts and tp are empty): "
                         f"its temporal head has one class and reads nothing")
    return space


@torch.no_grad()
def _file_logits(loaded: LoadedModel, video: VideoSource, starts: np.ndarray, spec: ClipSpec,
                 cfg: SpeedinessConfig) -> np.ndarray:
    """Temporal logits (N, C) of a decoded file's clips, batched, with the store path's crop, precision and input."""
    device = resolve_device(cfg.device)
    model = loaded.model.to(device).eval()
    dtype = amp_dtype("auto", device)
    batch = batch_size_for(cfg, device)
    out = []
    for i in range(0, len(starts), batch):
        frames = np.stack([video.read(clip_indices(video.num_frames, int(s), spec.clip_len))
                           for s in starts[i:i + batch]])
        x = eval_batch(torch.from_numpy(frames).to(device), spec.crop)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out.append(model(x)[1].float().cpu().numpy())
    return np.concatenate(out)


def _column(cls: TemporalClass) -> str:
    """A CSV column name without commas: p_TS1, p_TP1-2."""
    return f"p_TS{cls.s1}" if cls.kind == "speed" else f"p_TP{cls.s1}-{cls.s2}"


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}


def run_speediness(cfg: SpeedinessConfig, log: Log | None = None) -> dict[str, Any]:
    """The speediness curve of one video; write speediness.png, speediness.csv and results.json.

    Args:
        cfg: the options.
        log: receives one-line messages (the checkpoint chosen, cache hit or extraction).
    Returns:
        the results dict (also written as results.json).
    """
    cfg, loaded = resolve_model(cfg, log=log)
    space = _temporal_space(loaded, cfg.ckpt)
    classes = space.temporal_classes
    geometry = loaded.clip_geometry()
    clip_len, crop = geometry["clip_len"], geometry["clip_size"]
    stride = cfg.stride or max(1, clip_len // 2)
    video = open_video(cfg, loaded)
    spec = ClipSpec("stride", clip_len=clip_len, crop=crop, stride=stride)
    starts = spec.starts(video.num_frames)
    out = output_dir(cfg, loaded, f"speediness-{video.name}")

    if video.store is not None:
        feats = Extractor.for_model(cfg, loaded, log).features(
            loaded, lambda x: {"temporal": loaded.model(x)[1]}, ["temporal"], video.store, video.entry.dataset,
            [video.entry], spec, what={"task": "speediness", "role": "video"}, clip_taps=["temporal"])
        logits, cache = feats.clips["temporal"], {"cache_hit": feats.cache_hit, "path": feats.cache_path}
    else:
        h, w = video.info["size"]
        if crop > min(h, w):
            raise ValueError(f"the checkpoint's clip size {crop} is larger than the decoded frames ({h}x{w}); "
                             f"give a larger --size")
        logits, cache = _file_logits(loaded, video, starts, spec, cfg), None
    probs = softmax(logits)
    curve = speediness(probs, classes, clip_len)
    centres = starts + (clip_len - 1) / 2
    times = centres / video.fps if video.fps > 0 else None

    notes = []
    if TemporalClass("speed", 1, 1) not in classes:
        notes.append("the label space has no speed-1 class TS(1): every class is sped up, so P(speed > 1) is 1 by "
                     "construction and only E[s] and P(change) read anything")
    if video.num_frames < clip_len:
        notes.append(f"the video has {video.num_frames} frames, fewer than one clip ({clip_len}): its one clip "
                     f"repeats the last frame, which looks frozen")
    if times is None:
        notes.append("the source gives no frame rate: the curve is drawn against frame numbers")

    # Thumbnails evenly spaced between the first and last clip centre, each the frame nearest its position.
    at = np.linspace(centres[0], centres[-1], min(cfg.thumbs, len(starts)))
    shown = np.minimum(at.round().astype(int), video.num_frames - 1)
    thumbs = list(zip(at / video.fps if times is not None else at, video.read(shown)))
    speeds = class_speeds(classes, clip_len)
    title = f"{video.info['video']}: speediness ({loaded.config.backbone}, {len(starts)} clips of {clip_len}, " \
            f"stride {stride})"
    files = {"curve": speediness_png(times if times is not None else centres, curve, thumbs, out / "speediness.png",
                                     x_label="time (s)" if times is not None else "frame (clip centre)",
                                     speed_range=(float(speeds.min()), float(speeds.max())), title=title),
             "csv": out / "speediness.csv"}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip", "start_frame", "centre_frame", "time_s", "expected_speed", "p_faster", "p_change",
                     *[_column(c) for c in classes]])
    for i, s in enumerate(starts):
        writer.writerow([i, int(s), f"{centres[i]:g}", "" if times is None else f"{times[i]:.4f}",
                         f"{curve['expected_speed'][i]:.6f}", f"{curve['p_faster'][i]:.6f}",
                         f"{curve['p_change'][i]:.6f}", *[f"{p:.6f}" for p in probs[i]]])
    write_text(files["csv"], buf.getvalue())
    return write_results(out, {
        "task": "speediness",
        "model": describe_model(loaded),
        "source": {**video.info, "fps": video.fps},
        "head": "temporal",
        "protocol": {**spec.key(), "frame_step": 1, "n_clips": len(starts), "clip": "plain (speed 1)",
                     "class_speed": "mean step over the clip: (span - 1) / (clip_len - 1)",
                     "p_faster": "sum over classes with speed > 1", "p_change": "sum over TP classes"},
        "classes": [{"name": c.name, "kind": c.kind, "s1": c.s1, "s2": c.s2, "speed": float(v)}
                    for c, v in zip(classes, speeds)],
        "summary": {name: _stats(values) for name, values in curve.items()},
        "curve": {"start_frame": starts.tolist(), "centre_frame": centres.tolist(),
                  "time_s": None if times is None else times.tolist(),
                  **{name: values.tolist() for name, values in curve.items()}},
        "features": cache,
        "notes": notes,
        "config": cfg.to_dict(),
    }, files)


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    s, p = results["summary"], results["protocol"]
    lines = [f"speediness  {results['source']['video']}: {p['n_clips']} clips of {p['clip_len']} frames, "
             f"stride {p['stride']}"]
    for name, label in (("expected_speed", "E[speed]"), ("p_faster", "P(speed > 1)"), ("p_change", "P(change)")):
        lines.append(f"  {label:13s} mean {s[name]['mean']:.3f}  min {s[name]['min']:.3f}  max {s[name]['max']:.3f}")
    lines += trailer(results)
    return "\n".join(lines)
