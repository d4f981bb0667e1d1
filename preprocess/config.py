"""The options of `v3s-prep extract` (a light module: the command line's --help loads no video or HDF5 library)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..data_manifest.entries import DATASETS
from ..shared.config import ConfigBase, option

BACKENDS = ("loky", "dask")


@dataclass(frozen=True, kw_only=True)
class ExtractConfig(ConfigBase):
    """Settings of one `v3s-prep extract` run: its options, one field each.

    Without --dataset the dataset is inferred from the root's name and layout (v3s.data_manifest.detect); without
    --out the store is the workspace's (v3s.shared.workspace); `resolve_extract` fills both and says so.
    """

    root: str = option(help="The dataset's root folder.", path="dir", argument=True)
    dataset: Optional[str] = option(None, "Dataset layout of ROOT [default: inferred from the folder's name and "
                                          "layout].", choices=DATASETS)
    out: Optional[str] = option(None, "Store folder (created; other datasets in it are kept) [default: the "
                                      "workspace's v3s-store].", path="out-dir")
    splits_dir: Optional[str] = option(None, "Folder of official split files (default: in ROOT, else the bundled "
                                             "copies).", flag="--splits", path="dir")
    size: tuple = option((128, 171), "Stored frame HEIGHTxWIDTH (the paper's 128x171).", parse="size")
    jobs: int = option(-1, "Parallel workers (-1: all cores).", min=-1)
    backend: str = option("loky", "joblib backend: loky (this machine) or dask (a cluster).", choices=BACKENDS)
    scheduler: Optional[str] = option(None, "Dask scheduler address (with --backend dask).")
    min_frames: int = option(16, "Videos with fewer decoded frames are recorded as too_short.", min=1)
    quality: int = option(2, "JPEG quality as ffmpeg -q:v (2 best .. 31).", min=2)
    quiet: bool = option(False, "No progress output.")
    shard_bytes: int = option(256 << 20, "Write a shard once this many JPEG bytes are pending.", cli=False)
    shard_seconds: float = option(60.0, "... or once the oldest pending video waited this long (bounds the work a "
                                        "crash loses).", cli=False)

    _tuples = ("size",)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if self.height < 2 or self.width < 2:
            raise ValueError(f"--size {self.height}x{self.width} is too small (need at least 2x2)")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {BACKENDS}")
        if self.backend == "dask" and not self.scheduler:
            raise ValueError("--backend dask needs a scheduler address (--scheduler tcp://HOST:PORT)")
        if not 2 <= self.quality <= 31:
            raise ValueError(f"--quality {self.quality} is not in 2..31 (ffmpeg mjpeg -q:v, lower is better)")
        if self.min_frames < 1:
            raise ValueError(f"--min-frames {self.min_frames} must be >= 1")
        if self.jobs == 0 or self.jobs < -1:
            raise ValueError(f"--jobs {self.jobs} must be -1 (every core) or >= 1")

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    @property
    def settings(self) -> dict[str, object]:
        """What makes two runs produce the same frames (stored in every shard, checked on resume)."""
        return {"height": self.height, "width": self.width, "quality": self.quality, "min_frames": self.min_frames,
                "codec": "jpeg", "encoder": "ffmpeg mjpeg yuvj420p"}
