"""Torch datasets of uint8 clips read from a v3s store: V3S pretext, finetuning, and the 10-clip test protocol.

Every item is a uint8 clip (T, H, W, 3) as stored, so the workers only pick frame indices and decode the frames
they need; the spatial part (crop, flip, V3S homography, normalisation) runs on the device for the whole batch
(`v3s.shared.spatial.pretext_batch`, `finetune_batch`, `eval_batch`).

Randomness is a pure function of (seed, epoch, index): call `set_epoch(epoch)` before each epoch (with
`persistent_workers=False`, the DataLoader default, so that the workers see it) and a resumed run reads exactly
the clips the interrupted one would have read.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .labels import LabelSpace
from .store import VideoInfo
from .temporal import clip_indices, clip_span, draw_temporal_label, linspace_clip_starts, sample_temporal


class FrameSource(Protocol):
    """What the datasets need from a store (`v3s.shared.store.Store`)."""

    def videos(self, dataset: str, split: str | None = None, role: str | None = None) -> list[VideoInfo]: ...

    def read_frames(self, key: str, indices: Sequence[int]) -> np.ndarray: ...


def _select(store: FrameSource, dataset: str, split: str | None, role: str | None,
            videos: Sequence[VideoInfo | str] | None) -> list[VideoInfo]:
    listed = store.videos(dataset, split=split, role=role)
    if videos is None:
        return listed
    by_key = {v.key: v for v in listed}
    keys = [v.key if isinstance(v, VideoInfo) else str(v) for v in videos]
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ValueError(f"{len(missing)} requested videos are not {role or 'any'} videos of {dataset!r} split "
                         f"{split!r}, e.g. {missing[:3]}")
    return [by_key[k] for k in keys]


class _Epoched(Dataset):
    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random draws __getitem__ makes."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class PretextClips(_Epoched):
    """V3S pretraining items: (uint8 clip (T, H, W, 3), spatial label, temporal label).

    The temporal class is drawn among those that fit in the video (the short-video policy, see
    `v3s.shared.temporal`) and only its frames are read; the spatial label is drawn uniformly and applied later
    on the device. Videos shorter than the shortest temporal class are left out and listed in `dropped`.

    Args:
        store: a `Store` (or anything with its `videos` and `read_frames`).
        dataset, split, role: which videos (`Store.videos`).
        label_space: the enabled classes.
        clip_len: frames per clip.
        seed: with the epoch and the index, fixes every draw.
    """

    def __init__(self, store: FrameSource, dataset: str, split: str | None, role: str | None,
                 label_space: LabelSpace, clip_len: int = 16, seed: int = 0) -> None:
        self.store, self.label_space, self.clip_len, self.seed = store, label_space, clip_len, seed
        shortest = min(c.span(clip_len) for c in label_space.temporal_classes)
        listed = store.videos(dataset, split=split, role=role)
        self.videos = [v for v in listed if v.num_frames >= shortest]
        self.dropped = [v.key for v in listed if v.num_frames < shortest]
        if not self.videos:
            raise ValueError(f"no {role or ''} video of {dataset!r} split {split!r} has the {shortest} frames "
                             f"the shortest temporal class needs ({len(listed)} listed)")

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        v = self.videos[index]
        rng = self._rng(index)
        temporal = draw_temporal_label(v.num_frames, self.label_space, rng, self.clip_len)
        frames = sample_temporal(v.num_frames, self.label_space.temporal_classes[temporal], rng, self.clip_len)
        spatial = int(rng.integers(0, self.label_space.n_spatial))
        return torch.from_numpy(self.store.read_frames(v.key, frames)), spatial, temporal


class TrainClips(_Epoched):
    """Finetuning items: (uint8 clip (T, H, W, 3), class label), one clip per video at a random start.

    A video shorter than the clip's span repeats its last frame (`clip_indices`).

    Args:
        store, dataset, split, role: which videos (`Store.videos`).
        clip_len: frames per clip.
        seed: with the epoch and the index, fixes the start.
        videos: optional subset (VideoInfo or keys) of those videos, in this order (e.g. a validation split).
        frame_step: take every frame_step-th frame (1: consecutive frames, the paper's protocol).
    """

    def __init__(self, store: FrameSource, dataset: str, split: str | None, role: str | None, clip_len: int = 16,
                 seed: int = 0, videos: Sequence[VideoInfo | str] | None = None, frame_step: int = 1) -> None:
        self.store, self.clip_len, self.seed, self.frame_step = store, clip_len, seed, frame_step
        self.span = clip_span(clip_len, frame_step)
        self.videos = _select(store, dataset, split, role, videos)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        v = self.videos[index]
        start = int(self._rng(index).integers(0, max(v.num_frames - self.span, 0) + 1))
        frames = clip_indices(v.num_frames, start, self.clip_len, self.frame_step)
        return torch.from_numpy(self.store.read_frames(v.key, frames)), v.label


class EvalClips(Dataset):
    """Test items, one per (video, clip): (uint8 clip (T, H, W, 3), class label, video index).

    By default n_clips clips per video at `linspace_clip_starts` (the peers' protocol), so every video yields
    exactly n_clips items, short ones included; average a video's predictions by its video index. `starts`
    picks other clips (e.g. `strided_clip_starts` for ASLAN). Items are in video order, then clip order.

    Args:
        store, dataset, split, role: which videos (`Store.videos`).
        n_clips: clips per video (with the default starts).
        clip_len: frames per clip.
        videos: optional subset (VideoInfo or keys) of those videos, in this order.
        starts: maps a video's frame count to the int64 first frames of its clips (None: n_clips linspace starts).
        frame_step: take every frame_step-th frame (1: consecutive frames, the paper's protocol).
    """

    def __init__(self, store: FrameSource, dataset: str, split: str | None, role: str | None, n_clips: int = 10,
                 clip_len: int = 16, videos: Sequence[VideoInfo | str] | None = None,
                 starts: Callable[[int], np.ndarray] | None = None, frame_step: int = 1) -> None:
        self.store, self.n_clips, self.clip_len, self.frame_step = store, n_clips, clip_len, frame_step
        self.videos = _select(store, dataset, split, role, videos)
        if starts is None:
            starts = partial(linspace_clip_starts, n_clips=n_clips, clip_len=clip_span(clip_len, frame_step))
        self.items = [(vi, int(s)) for vi, v in enumerate(self.videos) for s in starts(v.num_frames)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        vi, start = self.items[index]
        v = self.videos[vi]
        frames = clip_indices(v.num_frames, start, self.clip_len, self.frame_step)
        return torch.from_numpy(self.store.read_frames(v.key, frames)), v.label, vi
