"""Torch datasets of clips read from a v3s store; each item carries every random draw it was made with.

An item is a `ClipItem`: the uint8 clip (T, H, W, 3) as stored, the homography (3, 3) that takes it to the network's
input (crop, flip, V3S spatial warp), its targets and its video's position. Workers pick frame indices, decode only
the frames a clip needs and compute one 3x3 matrix; the warp itself runs on the device for the whole batch, in one
place for training, validation and evaluation (`v3s.shared.spatial.network_input`).

Randomness: every draw of an item (temporal class and start, spatial class, crop offset, flip) comes from one numpy
Generator seeded by (run seed, stream, epoch, video position) (`v3s.shared.seeds`). The epoch travels in the key:
training items are read with (epoch, position) keys made by the sampler; a validation view (augment=False) draws
from the validation stream, the same at every epoch. So a resumed run reads exactly the clips the interrupted one
would have read, whatever the number of workers.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Protocol, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .labels import LabelSpace
from .seeds import CLIP_DRAWS, VALIDATION_DRAWS, VALIDATION_SPLIT, rng_for
from .spatial import CANVAS, CROP, center_crop_params, pretext_geometry, train_geometry
from .store import VideoInfo
from .temporal import clip_indices, clip_span, draw_temporal_label, linspace_clip_starts, sample_temporal

Key = Union[int, tuple[int, int]]


class FrameSource(Protocol):
    """What the datasets need from a store (`v3s.shared.store.Store`)."""

    def videos(self, dataset: str, split: str | None = None, role: str | None = None) -> list[VideoInfo]: ...

    def split(self, dataset: str, split: str, role: str) -> list[VideoInfo]: ...

    def read_frames(self, key: str, indices: Sequence[int]) -> np.ndarray: ...


class ClipItem(NamedTuple):
    """One clip and everything drawn for it; a DataLoader batch is a ClipItem of stacked fields.

    Attributes:
        clip: uint8 (T, H, W, 3) frames as stored.
        geometry: float64 (3, 3) homography from network-input pixels to stored-frame pixels.
        targets: int64 (k,): (spatial class, temporal class) for the pretext, (class label,) otherwise.
        video: the video's position in the dataset's `videos`.
        noise: float64 (2,): (sigma in grey levels, seed) of the pixel noise added after the warp
            (`v3s.shared.spatial.add_pixel_noise`); sigma 0 (the default, and the paper) adds none.
    """

    clip: torch.Tensor
    geometry: torch.Tensor
    targets: torch.Tensor
    video: int
    noise: torch.Tensor = torch.zeros(2, dtype=torch.float64)


def draw_validation(n_videos: int, n_val: int, seed: int, what: str) -> tuple[list[int], list[int]]:
    """Split positions 0..n_videos-1 into (train, validation), `n_val` validation videos drawn by seed.

    Raises:
        ValueError: fewer than n_val + 1 videos (no training video would remain), naming `what`.
    """
    if n_val < 1:
        raise ValueError(f"--val-videos must be >= 1, got {n_val}")
    if n_val >= n_videos:
        raise ValueError(f"{what} has {n_videos} videos: too few for {n_val} validation videos plus training videos; "
                         f"pass --val-videos below {n_videos}")
    perm = rng_for(seed, VALIDATION_SPLIT).permutation(n_videos)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


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


def _square(clip_size: int | None, video: VideoInfo) -> int:
    """The crop side: clip_size, or (None) the largest square of the stored frame."""
    return min(video.height, video.width) if clip_size is None else clip_size


class _Clips(Dataset):
    """What the datasets share: the store, the videos, the seed, and the per-item Generator."""

    store: FrameSource
    videos: list[VideoInfo]
    seed: int
    augment: bool

    def __len__(self) -> int:
        return len(self.videos)

    def _draws(self, key: Key) -> tuple[int, np.random.Generator]:
        """(video position, the item's Generator) for a key: (epoch, position) or a plain position (epoch 0)."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self.augment:
            return index, rng_for(self.seed, CLIP_DRAWS, epoch, index)
        return index, rng_for(self.seed, VALIDATION_DRAWS, index)

    def _item(self, index: int, frames: np.ndarray, geometry: torch.Tensor, targets: Sequence[int],
              noise: tuple[float, int] = (0.0, 0)) -> ClipItem:
        clip = torch.from_numpy(self.store.read_frames(self.videos[index].key, frames))
        return ClipItem(clip, geometry[0], torch.tensor(targets, dtype=torch.int64), index,
                        torch.tensor(noise, dtype=torch.float64))


class PretextClips(_Clips):
    """V3S pretraining items: targets (spatial class, temporal class), geometry the class's warp and crop.

    The temporal class is drawn among those that fit in the video (the short-video policy, see
    `v3s.shared.temporal`) and only its frames are read; the spatial class and the crop are drawn with it. Videos
    shorter than the shortest temporal class are left out and listed in `dropped`.

    Args:
        store: a `Store` (or anything with its `videos` and `read_frames`).
        dataset, split, role: which videos (`Store.videos`).
        label_space: the enabled classes.
        clip_len: frames per clip.
        seed: with the epoch and the position, fixes every draw.
        videos: optional subset (VideoInfo or keys) of those videos, in this order.
        clip_size, canvas, crop: the pretext geometry (`v3s.shared.spatial.pretext_geometry`; paper 112, 224, 112).
        augment: True for training (draws change with the epoch), False for validation (fixed draws).
        noise: training items draw a pixel-noise level sigma ~ U(0, noise) grey levels, added after the warp
            (0: none, the paper); validation items never get noise.
    """

    def __init__(self, store: FrameSource, dataset: str, split: str | None, role: str | None,
                 label_space: LabelSpace, clip_len: int = 16, seed: int = 0, *,
                 videos: Sequence[VideoInfo | str] | None = None, clip_size: int = 112, canvas: int = CANVAS,
                 crop: int = CROP, augment: bool = True, noise: float = 0.0) -> None:
        self.store, self.label_space, self.clip_len, self.seed, self.augment = store, label_space, clip_len, seed, augment
        self.clip_size, self.canvas, self.crop, self.noise = clip_size, canvas, crop, noise
        shortest = min(c.span(clip_len) for c in label_space.temporal_classes)
        listed = _select(store, dataset, split, role, videos)
        self.videos = [v for v in listed if v.num_frames >= shortest]
        self.dropped = [v.key for v in listed if v.num_frames < shortest]
        if not self.videos:
            raise ValueError(f"no {role or ''} video of {dataset!r} split {split!r} has the {shortest} frames "
                             f"the shortest temporal class needs ({len(listed)} listed)")

    def __getitem__(self, key: Key) -> ClipItem:
        index, rng = self._draws(key)
        v = self.videos[index]
        temporal = draw_temporal_label(v.num_frames, self.label_space, rng, self.clip_len)
        frames = sample_temporal(v.num_frames, self.label_space.temporal_classes[temporal], rng, self.clip_len)
        spatial = int(rng.integers(0, self.label_space.n_spatial))
        geometry = pretext_geometry(torch.tensor([spatial]), self.label_space, torch.from_numpy(rng.random((1, 2))),
                                    (v.height, v.width), self.clip_size, self.canvas, self.crop)
        noise = (0.0, 0)
        if self.augment and self.noise > 0:
            noise = (float(rng.random()) * self.noise, int(rng.integers(0, 2 ** 31)))
        return self._item(index, frames, geometry, (spatial, temporal), noise)


class TrainClips(_Clips):
    """Finetuning items: one clip per video at a drawn start, targets (label,).

    Training geometry: a random clip_size crop, flipped horizontally with p = 0.5 (unless flip is False);
    validation (augment=False): a start fixed per video and the centre crop. A video shorter than the clip's span
    repeats its last frame (`clip_indices`).

    Args:
        store, dataset, split, role: which videos (`Store.videos`).
        clip_len: frames per clip.
        seed: with the epoch and the position, fixes the start, the crop and the flip.
        videos: optional subset (VideoInfo or keys) of those videos, in this order (e.g. a validation split).
        frame_step: take every frame_step-th frame (1: consecutive frames, the paper's protocol).
        clip_size: crop side (None: the largest square of the stored frame).
        flip: random horizontal flips in training.
        augment: True for training, False for validation.
    """

    def __init__(self, store: FrameSource, dataset: str, split: str | None, role: str | None, clip_len: int = 16,
                 seed: int = 0, videos: Sequence[VideoInfo | str] | None = None, frame_step: int = 1, *,
                 clip_size: int | None = None, flip: bool = True, augment: bool = True) -> None:
        self.store, self.clip_len, self.seed, self.frame_step = store, clip_len, seed, frame_step
        self.clip_size, self.flip, self.augment = clip_size, flip, augment
        self.span = clip_span(clip_len, frame_step)
        self.videos = _select(store, dataset, split, role, videos)

    def __getitem__(self, key: Key) -> ClipItem:
        index, rng = self._draws(key)
        v = self.videos[index]
        start = int(rng.integers(0, max(v.num_frames - self.span, 0) + 1))
        frames = clip_indices(v.num_frames, start, self.clip_len, self.frame_step)
        size, hw = _square(self.clip_size, v), (v.height, v.width)
        if self.augment:
            geometry = train_geometry(torch.from_numpy(rng.random((1, 3))), hw, size, self.flip)
        else:
            geometry = center_crop_params(1, hw, size)
        return self._item(index, frames, geometry, (v.label,))


class EvalClips(_Clips):
    """Test items, one per (video, clip), centre-cropped, targets (label,); `video` is the video's position.

    By default n_clips clips per video at `linspace_clip_starts` (the peers' protocol), so every video yields
    exactly n_clips items, short ones included; average a video's predictions by its position. `starts` picks
    other clips (e.g. `strided_clip_starts` for ASLAN). Items are in video order, then clip order.

    Args:
        store, dataset, split, role: which videos (`Store.videos`).
        n_clips: clips per video (with the default starts).
        clip_len: frames per clip.
        videos: optional subset (VideoInfo or keys) of those videos, in this order.
        starts: maps a video's frame count to the int64 first frames of its clips (None: n_clips linspace starts).
        frame_step: take every frame_step-th frame (1: consecutive frames, the paper's protocol).
        clip_size: centre crop side (None: the largest square of the stored frame).
    """

    augment = False

    def __init__(self, store: FrameSource, dataset: str, split: str | None, role: str | None, n_clips: int = 10,
                 clip_len: int = 16, videos: Sequence[VideoInfo | str] | None = None,
                 starts: Callable[[int], np.ndarray] | None = None, frame_step: int = 1,
                 clip_size: int | None = None) -> None:
        self.store, self.n_clips, self.clip_len, self.frame_step = store, n_clips, clip_len, frame_step
        self.clip_size, self.seed = clip_size, 0
        self.videos = _select(store, dataset, split, role, videos)
        if starts is None:
            starts = partial(linspace_clip_starts, n_clips=n_clips, clip_len=clip_span(clip_len, frame_step))
        self.items = [(vi, int(s)) for vi, v in enumerate(self.videos) for s in starts(v.num_frames)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ClipItem:
        vi, start = self.items[index]
        v = self.videos[vi]
        frames = clip_indices(v.num_frames, start, self.clip_len, self.frame_step)
        geometry = center_crop_params(1, (v.height, v.width), _square(self.clip_size, v))
        return self._item(vi, frames, geometry, (v.label,))


def pretext_videos(store: FrameSource, config: Any, space: LabelSpace) -> tuple[list[VideoInfo], list[str]]:
    """(videos a pretraining run can use, keys of those too short for any temporal class) of its train list."""
    videos = store.split(config.dataset, config.split, "train")
    shortest = min(c.span(config.clip_len) for c in space.temporal_classes)
    return [v for v in videos if v.num_frames >= shortest], [v.key for v in videos if v.num_frames < shortest]


def pretext_datasets(store: FrameSource, config: Any, space: LabelSpace) -> tuple[PretextClips, PretextClips]:
    """(training items, validation items) of a pretraining run: its train list less --val-videos drawn by seed.

    The pretext checks redraw a run's validation items with this same function.

    Args:
        store: the store. config: the run's PretrainConfig. space: its label space.
    """
    usable, dropped = pretext_videos(store, config, space)
    short = f" ({len(dropped)} more are too short for any temporal class)" if dropped else ""
    train_pos, val_pos = draw_validation(len(usable), config.val_videos, config.seed,
                                         what=f"the train list of {config.dataset!r} split {config.split}{short}")

    def view(positions: list[int], augment: bool) -> PretextClips:
        return PretextClips(store, config.dataset, config.split, "train", space, augment=augment,
                            videos=[usable[p] for p in positions], clip_len=config.clip_len, seed=config.seed,
                            clip_size=config.clip_size, canvas=config.canvas, crop=config.crop,
                            noise=config.pretext_noise)

    return view(train_pos, True), view(val_pos, False)
