"""Clip features from a model over a frame store: the evaluation's one way of running a network on videos.

Every evaluation reads the same way: pick the clips of each video (`ClipSpec`: 10 linspace clips for recognition
and retrieval, stride clips for ASLAN), read them as `EvalClips` items (uint8 clips with their centre-crop
homographies), warp and normalise them on the device (`shared.spatial.network_input`), run the model (bf16
autocast on CUDA, fp32 on the CPU) and keep either every clip's output (recognition logits) or each video's mean
over its clips (retrieval and ASLAN features, which can be 9,216-d per clip: a per-clip array of UCF101 would need
5 GB). Nothing is dropped: the loader has no `drop_last`, and each video has its clips. The cache in front of
this is `v3s.evaluate.cache`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from v3s.shared.clips import EvalClips
from v3s.shared.runtime import amp_dtype
from v3s.shared.spatial import network_input
from v3s.shared.store import Store, VideoInfo
from v3s.shared.temporal import clip_span, linspace_clip_starts, strided_clip_starts

CLIP_MODES = ("linspace", "stride")
# Incremented by every extraction that actually runs the model (a cache hit leaves it alone): tests and logs use it.
EXTRACTIONS = 0


@dataclass(frozen=True)
class ClipSpec:
    """Which clips of each video are read, and how they are cropped.

    Attributes:
        mode: "linspace" (n_clips clips centred at linspace(clip_len/2, len - clip_len/2)) or "stride".
        clip_len: frames per clip.
        crop: side of the centre crop fed to the network.
        n_clips: clips per video for "linspace".
        stride: frames between clip starts for "stride".
        frame_step: every frame_step-th frame inside a clip (1: consecutive frames, the peers' protocol).
    """

    mode: str = "linspace"
    clip_len: int = 16
    crop: int = 112
    n_clips: int = 10
    stride: int = 8
    frame_step: int = 1

    def __post_init__(self) -> None:
        if self.mode not in CLIP_MODES:
            raise ValueError(f"clip mode {self.mode!r} is not one of {CLIP_MODES}")
        for name in ("clip_len", "crop", "n_clips", "stride", "frame_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def starts(self, num_frames: int) -> np.ndarray:
        """First frame of every clip of a video of num_frames frames. Returns int64 (n,)."""
        span = clip_span(self.clip_len, self.frame_step)
        if self.mode == "linspace":
            return linspace_clip_starts(num_frames, self.n_clips, span)
        return strided_clip_starts(num_frames, span, self.stride)

    def key(self) -> dict[str, Any]:
        """The fields that change which pixels are read (n_clips / stride only for their own mode; frame_step
        only when it is not 1, so caches written before it existed stay valid)."""
        key = {"mode": self.mode, "clip_len": self.clip_len, "crop": self.crop}
        key.update({"n_clips": self.n_clips} if self.mode == "linspace" else {"stride": self.stride})
        return key if self.frame_step == 1 else {**key, "frame_step": self.frame_step}


@dataclass
class Features:
    """Model outputs for a list of videos.

    Attributes:
        keys: (N,) store keys of the videos, in row order.
        labels: (N,) int labels from the store.
        video: tap -> (N, D) float32 mean over each video's clips.
        clips: tap -> (N_clips, D) float32 per-clip outputs (only the taps asked for per clip).
        clip_video: (N_clips,) int64 video row of each clip (with `clips`), else None.
        cache_path: the .npz this came from or went to (None without a cache).
        cache_hit: True when read from the cache, False when the model ran.
    """

    keys: list[str]
    labels: np.ndarray
    video: dict[str, np.ndarray]
    clips: dict[str, np.ndarray] = field(default_factory=dict)
    clip_video: np.ndarray | None = None
    cache_path: Path | None = None
    cache_hit: bool = False


@torch.no_grad()
def extract_features(
    forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    store: Store,
    videos: Sequence[VideoInfo],
    spec: ClipSpec,
    *,
    clip_taps: Sequence[str] = (),
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    desc: str = "features",
) -> Features:
    """Run `forward` on every clip of `videos` and average its outputs per video.

    Args:
        forward: maps a normalised float batch (B, 3, T, crop, crop) on `device` to {tap: (B, D)} tensors.
            It runs under autocast: bf16 on GPUs that run it natively, fp16 on older ones, fp32 on the CPU.
        store: the frame store.
        videos: the videos (rows of the output, in this order); none may be skipped.
        spec: which clips and which crop.
        clip_taps: taps whose per-clip rows are kept too (e.g. ("logits",) for clip accuracy).
        device: where the model runs (the model must already be there).
        batch_size: clips per forward pass.
        workers: DataLoader worker processes (0: read in this process).
        progress: show a tqdm bar on stderr.
        desc: the bar's label.

    Returns:
        Features (cache fields unset).
    """
    global EXTRACTIONS
    if not videos:
        raise ValueError("no videos to extract features from")
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size}, {workers}")
    h, w = videos[0].height, videos[0].width
    if spec.crop > min(h, w):
        raise ValueError(f"crop {spec.crop} is larger than the stored frames ({h}x{w}) of {videos[0].dataset!r}")
    device = torch.device(device)
    dtype = amp_dtype("auto", device)
    data = clip_dataset(store, videos, spec)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, drop_last=False, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    n = len(videos)
    sums: dict[str, np.ndarray] = {}
    per_clip: dict[str, list[np.ndarray]] = {t: [] for t in clip_taps}
    counts = np.zeros(n, dtype=np.int64)
    clip_video = []
    EXTRACTIONS += 1
    with tqdm(total=len(data), desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        for batch in loader:
            x = network_input(batch.clip.to(device, non_blocking=True), batch.geometry, spec.crop)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out = forward(x)
            rows = batch.video.to(torch.int64)
            # Items come in video order, so a batch holds a few videos: sum its clips per video on the device
            # (float32) and copy those few rows to the host, once per batch.
            uniq, inverse = torch.unique_consecutive(rows, return_inverse=True)
            uniq_np = uniq.numpy()
            counts[uniq_np] += np.bincount(inverse.numpy(), minlength=len(uniq_np))
            clip_video.append(rows.numpy())
            inverse = inverse.to(device, non_blocking=True)
            for tap, t in out.items():
                t = t.detach().float()
                if tap not in sums:
                    sums[tap] = np.zeros((n, t.shape[1]), dtype=np.float32)
                per_video = torch.zeros(len(uniq_np), t.shape[1], device=device).index_add_(0, inverse, t)
                sums[tap][uniq_np] += per_video.cpu().numpy()
                if tap in per_clip:
                    per_clip[tap].append(t.cpu().numpy())
            bar.update(len(rows))
    missing = [t for t in clip_taps if t not in sums]
    if missing:
        raise ValueError(f"clip taps {missing} are not among the model outputs {sorted(sums)}")
    return Features(
        keys=[v.key for v in videos],
        labels=np.array([v.label for v in videos], dtype=np.int64),
        video={t: s / counts[:, None].astype(np.float32) for t, s in sums.items()},
        clips={t: np.concatenate(v) for t, v in per_clip.items()},
        clip_video=np.concatenate(clip_video) if clip_taps else None,
    )


def clip_dataset(store: Store, videos: Sequence[VideoInfo], spec: ClipSpec) -> EvalClips:
    """Every (video, clip start) of `spec` for a list of videos (all of one dataset), in video order.

    Items are `ClipItem`s whose `video` is the row of the output; a spec in "linspace" mode reads exactly the clips
    of the finetuning validation protocol (`EvalClips` with its default starts).
    """
    return EvalClips(store, videos[0].dataset, None, None, clip_len=spec.clip_len, videos=videos, starts=spec.starts,
                     frame_step=spec.frame_step, clip_size=spec.crop)


def tap_forward(backbone: nn.Module, taps: Sequence[str]) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A forward function returning backbone taps (e.g. "conv5", "pool", "pool3")."""
    taps = list(taps)
    return lambda x: backbone.forward_features(x, taps)


def logits_forward(model: nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A forward function returning a classifier's logits under the tap name "logits"."""
    return lambda x: {"logits": model(x)}


