"""Frame-index arrays for V3S temporal scale / projection and for plain clips (paper section 3.2).

Pure numpy, run in DataLoader workers so that the store reads only the frames a clip needs.

Step: the paper says "speed n, interval n-1" but its index formula steps by s-1, which would freeze the clip at
s = 1. We read "interval n-1" as n-1 skipped frames, so speed s takes every s-th frame:
    TS s:        start + s * [0, 1, ..., 15]
    TP (s1, s2): 8 frames at step s1, then 8 more continuing at step s2:
                 start + [0, s1, ..., 7 s1, 7 s1 + s2, ..., 7 s1 + 8 s2]
Short videos: a class whose span exceeds the video is never drawn for it (`feasible_temporal_labels`); the
pixels never show a loop seam or a frozen tail. Its leak: on a short video the label is drawn from the slow
classes only, so a network that recognises the video (or its length) gains a prior. See docs/transforms.md.
"""
from __future__ import annotations

import numpy as np

from .labels import LabelSpace, TemporalClass


def temporal_offsets(temporal_class: TemporalClass, clip_len: int = 16) -> np.ndarray:
    """Offsets of the clip's frames from its first frame.

    Args:
        temporal_class: a TS speed or TP pattern.
        clip_len: frames per clip; the TP switch happens after clip_len // 2 frames.
    Returns: int64 (clip_len,), starting at 0.
    """
    if clip_len < 1:
        raise ValueError(f"clip_len must be >= 1, got {clip_len}")
    return np.concatenate([[0], np.cumsum(temporal_class.steps(clip_len))]).astype(np.int64)


def temporal_indices(num_frames: int, temporal_class: TemporalClass, start: int, clip_len: int = 16) -> np.ndarray:
    """Frame indices of one clip of a temporal class starting at `start`.

    Args:
        num_frames: frames in the video.
        temporal_class: a TS speed or TP pattern.
        start: index of the clip's first frame; the whole clip must fit in the video.
        clip_len: frames per clip.
    Returns: int64 (clip_len,), all in [0, num_frames).
    """
    span = temporal_class.span(clip_len)
    if start < 0 or start + span > num_frames:
        raise ValueError(f"{temporal_class.name} clip at start {start} needs frames {start}..{start + span - 1} "
                         f"but the video has {num_frames} frames")
    return start + temporal_offsets(temporal_class, clip_len)


def sample_temporal(num_frames: int, temporal_class: TemporalClass, rng: np.random.Generator,
                    clip_len: int = 16) -> np.ndarray:
    """Indices of one clip of a temporal class at a uniformly random start (every start where it fits).

    Args:
        num_frames: frames in the video; must be >= the class's span (use `feasible_temporal_labels`).
        temporal_class: a TS speed or TP pattern.
        rng: numpy Generator.
        clip_len: frames per clip.
    Returns: int64 (clip_len,).
    """
    span = temporal_class.span(clip_len)
    if span > num_frames:
        raise ValueError(f"{temporal_class.name} needs {span} frames for a {clip_len}-frame clip "
                         f"but the video has {num_frames}")
    return temporal_indices(num_frames, temporal_class, int(rng.integers(0, num_frames - span + 1)), clip_len)


def feasible_temporal_labels(num_frames: int, label_space: LabelSpace, clip_len: int = 16) -> np.ndarray:
    """Temporal class indices whose clip fits in a video of num_frames frames.

    Returns: int64 (k,), possibly empty.
    """
    return np.array([i for i, c in enumerate(label_space.temporal_classes) if c.span(clip_len) <= num_frames],
                    dtype=np.int64)


def draw_temporal_label(num_frames: int, label_space: LabelSpace, rng: np.random.Generator,
                        clip_len: int = 16) -> int:
    """A temporal class index drawn uniformly among those that fit in the video (the short-video policy)."""
    ok = feasible_temporal_labels(num_frames, label_space, clip_len)
    if ok.size == 0:
        shortest = min(c.span(clip_len) for c in label_space.temporal_classes)
        raise ValueError(f"a video of {num_frames} frames is shorter than every temporal class "
                         f"(the shortest needs {shortest} frames)")
    return int(ok[rng.integers(0, ok.size)])


def clip_span(clip_len: int = 16, frame_step: int = 1) -> int:
    """Source frames a plain clip covers: clip_len frames taken every frame_step-th frame."""
    if clip_len < 1 or frame_step < 1:
        raise ValueError(f"need clip_len and frame_step >= 1, got {clip_len}, {frame_step}")
    return (clip_len - 1) * frame_step + 1


def clip_indices(num_frames: int, start: int, clip_len: int = 16, frame_step: int = 1) -> np.ndarray:
    """Indices of a plain clip: clip_len frames every frame_step-th frame (1: consecutive frames, the paper's).

    A video shorter than the clip's span repeats its last frame.

    Returns: int64 (clip_len,), all in [0, num_frames).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0 <= start < num_frames:
        raise ValueError(f"start {start} is outside a video of {num_frames} frames")
    clip_span(clip_len, frame_step)
    return np.minimum(start + frame_step * np.arange(clip_len, dtype=np.int64), num_frames - 1)


def linspace_clip_starts(num_frames: int, n_clips: int = 10, clip_len: int = 16) -> np.ndarray:
    """First frames of the test clips: centres at linspace(clip_len/2, num_frames - clip_len/2, n_clips).

    The peers' retrieval/recognition protocol (VCOP, PRP): start = int(centre - clip_len/2). A video shorter
    than clip_len gets n_clips starts at 0 (each clip then repeats the last frame, see `clip_indices`), so every
    video still yields n_clips clips and no video is dropped.

    Returns: int64 (n_clips,), each with start + clip_len <= num_frames when num_frames >= clip_len.
    """
    if num_frames < 1 or n_clips < 1:
        raise ValueError(f"need num_frames >= 1 and n_clips >= 1, got {num_frames}, {n_clips}")
    if num_frames < clip_len:
        return np.zeros(n_clips, dtype=np.int64)
    centres = np.linspace(clip_len / 2, num_frames - clip_len / 2, n_clips)
    return (centres - clip_len / 2).astype(np.int64)


def strided_clip_starts(num_frames: int, clip_len: int = 16, stride: int = 8) -> np.ndarray:
    """First frames of consecutive clips at a fixed stride (ASLAN: 16-frame clips, stride 8).

    Every clip lies inside the video; the frames after the last full clip are not read (C3D's ASLAN protocol).
    A video shorter than one clip gets one clip at frame 0 that repeats its last frame (`clip_indices`), so
    every video has a feature.

    Args:
        num_frames: frames in the video (>= 1).
        clip_len: frames per clip.
        stride: frames between the starts of consecutive clips.

    Returns:
        int64 (n_clips,), n_clips = 1 + (num_frames - clip_len) // stride, or 1 for a short video.
    """
    if num_frames < 1 or clip_len < 1 or stride < 1:
        raise ValueError(f"need num_frames, clip_len and stride >= 1, got {num_frames}, {clip_len}, {stride}")
    if num_frames < clip_len:
        return np.zeros(1, dtype=np.int64)
    return np.arange(0, num_frames - clip_len + 1, stride, dtype=np.int64)
