"""One video looked at closely (Grad-CAM, the speediness curve): an entry of a frame store, or a file decoded with
ffmpeg at the frame size of the store the checkpoint was trained on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v3s.shared.checkpoint import LoadedModel
from v3s.shared.store import Store, VideoInfo, decode_jpeg

from .resolve import trained_frame_size



@dataclass
class VideoSource:
    """A video's frames on demand, and what results say about it.

    Attributes:
        name: a label safe in a file name (the file's stem, or the store key with "/" as "_").
        num_frames: frames in the video.
        fps: its frame rate (0.0 when the source does not say).
        info: JSON-ready description (the key or file, class and label of a store entry, the size a file was
            decoded at).
        store, entry: the store and the entry (None for a file).
        jpegs, offsets: a decoded file's concatenated JPEG frames and their (num_frames + 1,) offsets.
    """

    name: str
    num_frames: int
    fps: float
    info: dict[str, Any]
    store: Store | None = None
    entry: VideoInfo | None = None
    jpegs: bytes = b""
    offsets: np.ndarray | None = None

    def read(self, indices: Any) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB frames at `indices` (ints in [0, num_frames))."""
        if self.store is not None:
            return self.store.read_frames(self.entry.key, indices)
        return np.stack([decode_jpeg(self.jpegs[self.offsets[i]:self.offsets[i + 1]]) for i in indices])


def open_video(cfg: Any, loaded: LoadedModel) -> VideoSource:
    """The video that cfg names: --video FILE, or --store/--dataset with --key or --index.

    Args:
        cfg: a config with the fields video, store, dataset, key, index and size.
        loaded: the model (a file is decoded at the size of the store it was trained on, unless --size).
    """
    if cfg.video:
        if cfg.store or cfg.key or cfg.index is not None:
            raise ValueError("give either --video FILE or --store/--dataset/--key|--index, not both")
        from v3s.shared.video import decode_video  # ffmpeg is needed only on this path

        path = Path(cfg.video)
        if not path.is_file():
            raise FileNotFoundError(f"video {cfg.video} does not exist")
        h, w = trained_frame_size(loaded, cfg.size)
        try:
            decoded = decode_video(path, h, w)
        except Exception as e:  # DecodeError and ffmpeg failures name the problem
            raise ValueError(f"video {cfg.video} does not decode: {e}") from None
        return VideoSource(name=path.stem, num_frames=decoded.num_frames, fps=float(decoded.source.fps),
                           info={"video": str(path), "num_frames": decoded.num_frames, "size": [h, w]},
                           jpegs=decoded.data, offsets=decoded.offsets)
    if not (cfg.store and cfg.dataset) or (cfg.key is None) == (cfg.index is None):
        raise ValueError("give --video FILE, or --store STORE --dataset NAME with exactly one of --key KEY / --index I")
    store = Store(cfg.store)
    videos = store.videos(cfg.dataset)
    if cfg.key is not None:
        key = cfg.key if cfg.key.startswith(f"{cfg.dataset}/") else f"{cfg.dataset}/{cfg.key}"
        found = [v for v in videos if v.key == key]
        if not found:
            raise ValueError(f"video {cfg.key!r} is not an ok video of {cfg.dataset!r} in store {cfg.store}; "
                             f"e.g. {[v.rel_path for v in videos[:3]]}")
        v = found[0]
    else:
        if not 0 <= cfg.index < len(videos):
            raise ValueError(f"--index {cfg.index} is out of range: {cfg.dataset!r} has {len(videos)} ok videos")
        v = videos[cfg.index]
    return VideoSource(name=Path(v.key.replace("/", "_")).stem, num_frames=v.num_frames, fps=float(v.fps),
                       info={"video": v.key, "class_name": v.class_name, "label": v.label, "num_frames": v.num_frames},
                       store=store, entry=v)
