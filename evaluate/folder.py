"""A folder of raw videos decoded into memory as a frame source, so that evaluation reads it like a store.

Every video below the folder (any depth; the suffixes `v3s-prep` takes) is decoded by `v3s.shared.video.decode_video`
exactly as `v3s-prep extract` decodes it (resized inside ffmpeg, kept as JPEG frames) and served through the
Store's `videos` / `read_frames` interface (`v3s.shared.clips.FrameSource`), so the features come out of the same
`EvalClips` / `extract_features` path as a store's. A video that does not decode is kept out and listed in
`failed` with the reason. Memory holds the JPEG frames (about 5 kB a frame at 128x171): a folder, not a dataset;
a dataset goes through `v3s-prep extract` first.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from v3s.data_manifest import VIDEO_EXTENSIONS
from v3s.data_manifest.splitfile import video_paths
from v3s.shared.store import VideoInfo, decode_jpeg
from v3s.shared.video import Decoded, DecodeError, decode_video

# The name the videos of a folder go by where a frame source expects a dataset.
FOLDER_DATASET = "folder"


def _decode(path: Path, height: int, width: int) -> Decoded | str:
    """The decoded video, or why it does not decode."""
    try:
        return decode_video(path, height, width)
    except (DecodeError, OSError) as e:
        return str(e) or type(e).__name__


class VideoFolder:
    """The videos below `root`, decoded at height x width; keys are the paths relative to `root`.

    Args:
        root: the folder (searched recursively; names starting with "." are skipped, as `v3s-prep` does).
        height, width: the decoded frame size (what `v3s-prep extract --size` would store).
        workers: videos decoded at once (each decode is an ffmpeg process).
        log: told of each video that does not decode.
    Raises:
        ValueError: the folder holds no video file at all.
    """

    def __init__(self, root: str | os.PathLike, height: int, width: int, workers: int = 1,
                 log: Callable[[str], None] | None = None) -> None:
        self.path = Path(root)
        self.height, self.width = height, width
        rels = video_paths(self.path, self.path)
        if not rels:
            raise ValueError(f"--root {str(root)!r} holds no videos: no file below it ends in one of "
                             f"{' '.join(sorted(VIDEO_EXTENSIONS))}")
        with ThreadPoolExecutor(max(1, workers)) as pool:
            results = list(pool.map(lambda rel: _decode(self.path / rel, height, width), rels))
        self._decoded: dict[str, Decoded] = {}
        self.failed: dict[str, str] = {}
        for rel, result in zip(rels, results):
            if isinstance(result, str):
                self.failed[rel] = result
                if log:
                    log(f"embed: {rel} does not decode, skipped: {result}")
            else:
                self._decoded[rel] = result
        self._videos = [VideoInfo(dataset=FOLDER_DATASET, rel_path=rel, class_name="", label=-1,
                                  num_frames=d.num_frames, fps=d.source.fps, height=height, width=width)
                        for rel, d in self._decoded.items()]
        files = []
        for rel in self._decoded:
            st = (self.path / rel).stat()
            files.append([rel, st.st_size, st.st_mtime_ns])
        doc = {"folder": files, "size": [height, width], "decoder": "v3s.shared.video.decode_video"}
        self._fingerprint = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def videos(self, dataset: str, split: str | None = None, role: str | None = None) -> list[VideoInfo]:
        """Every video that decoded, sorted by path (a folder has no splits)."""
        if split is not None or role is not None:
            raise ValueError(f"a folder of videos has no splits (asked for split {split!r}, role {role!r})")
        return list(self._videos)

    def split(self, dataset: str, split: str, role: str) -> list[VideoInfo]:
        raise ValueError(f"a folder of videos ({self.path}) has no splits; give --store and --dataset for a split")

    def read_frames(self, key: str, indices: Iterable[int]) -> np.ndarray:
        """Frames of one video by index: uint8 (len(indices), height, width, 3) RGB; key is "folder/<path>"."""
        decoded = self._decoded.get(key.removeprefix(f"{FOLDER_DATASET}/"))
        if decoded is None:
            raise KeyError(f"video {key!r} is not a decoded video of {self.path}")
        idx = np.asarray(list(indices), dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= decoded.num_frames):
            raise IndexError(f"frame indices {idx.tolist()[:5]} out of range for {key!r} with {decoded.num_frames} frames")
        out = np.empty((len(idx), self.height, self.width, 3), dtype=np.uint8)
        for i, t in enumerate(idx):
            rgb = decode_jpeg(decoded.data[decoded.offsets[t]:decoded.offsets[t + 1]])
            if rgb is None or rgb.shape != out.shape[1:]:
                raise ValueError(f"frame {t} of {key!r} does not decode to {self.height}x{self.width}x3")
            out[i] = rgb
        return out

    def fingerprint(self, dataset: str) -> str:
        """What the feature cache keys these frames by: each video's path, size and mtime, and the decoded size."""
        return self._fingerprint

    def failures(self) -> Sequence[dict[str, str]]:
        """[{"video": path relative to the folder, "reason": why it did not decode}], sorted by path."""
        return [{"video": rel, "reason": why} for rel, why in sorted(self.failed.items())]
