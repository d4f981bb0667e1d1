"""The extract job: every video of a dataset manifest -> JPEG frames in a v3s store, in parallel, resumable.

Write path: workers (joblib: loky processes, or dask workers) decode and encode; they return JPEG bytes to
the one parent process, the only writer. The parent batches finished videos in memory and writes each batch
as a new shard file atomically (a .partial file, fsync, rename). h5py/HDF5 has no safe concurrent writers, and
a kill -9 in the middle of an HDF5 write can leave the whole file unreadable; with write-once shards a crash
loses at most the unwritten batch, which the rerun redoes. See docs/store.md.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..data_manifest import Entry, load_manifest
from ..shared import store as st
from ..shared.video import DecodeError, decode_video

BACKENDS = ("loky", "dask")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one `v3s-prep extract` run (the CLI options, one to one).

    Args:
        root: dataset root.
        dataset: dataset kind (see v3s.data_manifest.DATASETS).
        out: the store directory (created if absent; other datasets in it are kept).
        splits_dir: folder of official split files (None: the root's, else the bundled ones).
        height, width: stored frame size.
        jobs: worker processes (loky) or concurrent tasks (dask); -1 = all cores.
        backend: "loky" or "dask".
        scheduler: dask scheduler address (backend dask only).
        min_frames: videos with fewer decoded frames are recorded as too_short.
        quality: ffmpeg mjpeg -q:v (2 best .. 31).
        quiet: no progress output.
        shard_bytes: write a shard once this many JPEG bytes are pending.
        shard_seconds: ... or once the oldest pending video waited this long (bounds the work a crash loses).
    """

    root: str
    dataset: str
    out: str
    splits_dir: str | None = None
    height: int = 128
    width: int = 171
    jobs: int = -1
    backend: str = "loky"
    scheduler: str | None = None
    min_frames: int = 16
    quality: int = 2
    quiet: bool = False
    shard_bytes: int = 256 << 20
    shard_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.height < 2 or self.width < 2:
            raise ValueError(f"frame size {self.height}x{self.width} is too small (need at least 2x2)")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {BACKENDS}")
        if self.backend == "dask" and not self.scheduler:
            raise ValueError("backend 'dask' needs a scheduler address (--scheduler tcp://HOST:PORT)")
        if not 2 <= self.quality <= 31:
            raise ValueError(f"quality {self.quality} is not in 2..31 (ffmpeg mjpeg -q:v, lower is better)")
        if self.min_frames < 1:
            raise ValueError(f"min_frames {self.min_frames} must be >= 1")

    @property
    def settings(self) -> dict[str, object]:
        """What makes two runs produce the same frames (stored in every shard, checked on resume)."""
        return {"height": self.height, "width": self.width, "quality": self.quality, "min_frames": self.min_frames,
                "codec": "jpeg", "encoder": "ffmpeg mjpeg yuvj420p"}


@dataclass
class Summary:
    """Counts of one run and of the dataset's state in the store after it."""

    dataset: str
    store: str
    listed: int = 0
    skipped: int = 0  # already current in the store: not decoded again
    done: dict[str, int] = field(default_factory=lambda: {s: 0 for s in st.STATUSES})  # this run
    store_counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in st.STATUSES})  # listed videos, after
    frames: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Listed videos that are failed or missing in the store (too_short is a recorded choice, not an error)."""
        return self.store_counts["failed"] + self.store_counts["missing"]

    def lines(self) -> list[str]:
        c, d = self.store_counts, self.done
        out = [
            f"{self.dataset}: {self.listed} videos listed, {self.skipped} already in the store, "
            f"{sum(d.values())} processed in {self.seconds:.1f} s ({self.frames} frames)",
            f"store {self.store}: ok {c['ok']}, failed {c['failed']}, missing {c['missing']}, too short {c['too_short']}",
        ]
        if self.failed or c["too_short"]:
            out.append(f"list them: v3s-prep info {self.store} --failures")
        return out


def source_stat(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a source, following links; (-1, -1) when it does not exist (or dangles)."""
    try:
        s = os.stat(path)
    except OSError:
        return -1, -1
    return s.st_size, s.st_mtime_ns


def process_video(root: str, entry: Entry, height: int, width: int, quality: int, min_frames: int
                  ) -> tuple[dict[str, object], bytes, np.ndarray]:
    """Worker task: decode one video; never raises for bad input (the row says what went wrong).

    Args:
        root: dataset root.
        entry: the manifest entry.
    Returns:
        (row of st.VIDEO_COLUMNS without frame_start, JPEG bytes, int64 (num_frames + 1,) offsets).
    """
    path = Path(root) / entry.rel_path
    size, mtime = source_stat(path)
    row: dict[str, object] = {
        "rel_path": entry.rel_path, "status": "ok", "reason": "", "class_name": entry.class_name,
        "label": int(entry.label), "splits": _json(entry.splits), "num_frames": 0, "fps": 0.0,
        "height": height, "width": width, "src_height": -1, "src_width": -1, "src_codec": "", "src_rotation": 0,
        "src_bytes": size, "src_mtime_ns": mtime,
    }
    empty = (b"", np.zeros(1, dtype=np.int64))

    def bad(status: str, reason: str):
        row.update(status=status, reason=reason)
        return (row, *empty)

    if size < 0:
        if os.path.islink(path):
            return bad("missing", f"dangling symbolic link to {os.readlink(path)!r}")
        return bad("missing", "file not found")
    if path.is_dir():
        return bad("failed", "is a directory, not a video file")
    if size == 0:
        return bad("failed", "empty file (0 bytes)")
    try:
        dec = decode_video(path, height, width, quality)
    except DecodeError as e:
        return bad("failed", str(e))
    except OSError as e:
        return bad("failed", f"cannot read: {e}")
    s = dec.source
    row.update(fps=s.fps, src_height=s.height, src_width=s.width, src_codec=s.codec, src_rotation=s.rotation)
    if dec.num_frames < min_frames:
        return bad("too_short", f"{dec.num_frames} frames decoded, fewer than --min-frames {min_frames}")
    row["num_frames"] = dec.num_frames
    return row, dec.data, dec.offsets


def _json(splits) -> str:
    return json.dumps(dict(splits), sort_keys=True)


class ShardWriter:
    """The single writer: batches finished videos and writes them as write-once shards of one dataset."""

    def __init__(self, dataset_dir: Path, dataset: str, attrs: dict[str, object], next_index: int,
                 max_bytes: int, max_seconds: float) -> None:
        self.dir, self.dataset, self.attrs = dataset_dir, dataset, attrs
        self.next_index, self.max_bytes, self.max_seconds = next_index, max_bytes, max_seconds
        self.rows: list[dict[str, object]] = []
        self.data: list[bytes] = []
        self.offsets: list[np.ndarray] = []
        self.pending_bytes = 0
        self.oldest = 0.0

    def add(self, row: dict[str, object], data: bytes, offsets: np.ndarray) -> None:
        if not self.rows:
            self.oldest = time.monotonic()
        self.rows.append(row)
        self.data.append(data)
        self.offsets.append(offsets)
        self.pending_bytes += len(data)
        if self.pending_bytes >= self.max_bytes or time.monotonic() - self.oldest >= self.max_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        st.write_shard(self.dir / st.shard_name(self.next_index), self.dataset, self.attrs, self.rows,
                       self.data, self.offsets)
        self.next_index += 1
        self.rows, self.data, self.offsets, self.pending_bytes = [], [], [], 0


class _Progress:
    """tqdm on a terminal; plain lines every few seconds otherwise (logs, CI); nothing when quiet."""

    def __init__(self, total: int, label: str, quiet: bool) -> None:
        self.total, self.label, self.quiet = total, label, quiet
        self.n, self.failures, self.t0, self.last = 0, 0, time.monotonic(), 0.0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="video", file=sys.stderr, dynamic_ncols=True)

    def update(self, status: str) -> None:
        self.n += 1
        self.failures += status in ("failed", "missing")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failures, refresh=False)
        elif not self.quiet and (time.monotonic() - self.last >= 10 or self.n == self.total):
            self.last = time.monotonic()
            rate = self.n / max(self.last - self.t0, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else 0
            print(f"{self.label}: {self.n}/{self.total} videos, {rate:.1f} videos/s, ETA {eta:.0f} s, "
                  f"{self.failures} failed", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _lock(store: Path):
    """Refuse a second concurrent writer to one store (the lock goes with the process, even on kill -9)."""
    fh = open(store / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ValueError(f"store {str(store)!r} is being written by another process") from None
    return fh


def run_extract(cfg: ExtractConfig, on_result: Callable[[dict[str, object]], None] | None = None) -> Summary:
    """Extract every listed video of one dataset into the store; skip videos already current there.

    Args:
        cfg: the run's settings.
        on_result: called with each row as it is recorded (tests, custom logging).
    Returns:
        the Summary; `summary.failed` > 0 means some listed videos are failed or missing.
    """
    t0 = time.monotonic()
    root = Path(cfg.root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {str(root)!r} is not a directory")
    manifest = load_manifest(root, cfg.dataset, splits_dir=cfg.splits_dir)
    store = st.init_store(cfg.out)
    lock = _lock(store)
    try:
        ddir = store / cfg.dataset
        ddir.mkdir(exist_ok=True)
        for p in ddir.glob("*" + st.PARTIAL_SUFFIX):  # what a killed run left half-written
            p.unlink()
        index = st.load_dataset_index(ddir)
        old = index.attrs.get("settings")
        if old is not None and old != cfg.settings:
            raise ValueError(f"store {cfg.out!r} holds {cfg.dataset!r} extracted with {old}; this run asks for "
                             f"{cfg.settings}: use another --out")
        summary = Summary(dataset=cfg.dataset, store=str(cfg.out), listed=len(manifest.entries))
        todo = []
        for e in manifest.entries:
            rec = index.records.get(e.rel_path)
            if rec is not None and _current(rec[1], root / e.rel_path, e):
                summary.skipped += 1
            else:
                todo.append(e)
        last = st.shard_paths(ddir)
        next_index = int(last[-1].name[len(st.SHARD_PREFIX) : -len(st.SHARD_SUFFIX)]) + 1 if last else 0
        attrs = {"classes": list(manifest.classes), "split_ids": list(manifest.split_ids),
                 "settings": cfg.settings, "root": str(root.resolve()), "splits_from": manifest.splits_from}
        writer = ShardWriter(ddir, cfg.dataset, attrs, next_index, cfg.shard_bytes, cfg.shard_seconds)
        progress = _Progress(len(todo), f"extract {cfg.dataset}", cfg.quiet)
        try:
            for row, data, offsets in _run_parallel(cfg, todo):
                writer.add(row, data, offsets)
                summary.done[row["status"]] += 1
                summary.frames += int(row["num_frames"])
                progress.update(str(row["status"]))
                if on_result is not None:
                    on_result(row)
        finally:
            # Every pending row is a complete video: keep them even when the run is interrupted.
            writer.flush()
            progress.close()
        if not index.shards and writer.next_index == 0:
            # An empty manifest still registers the dataset (classes, splits) in the store.
            st.write_shard(ddir / st.shard_name(0), cfg.dataset, attrs, [], [], [])
        final = st.load_dataset_index(ddir)
        for e in manifest.entries:
            summary.store_counts[str(final.records[e.rel_path][1]["status"])] += 1
    finally:
        lock.close()
    summary.seconds = time.monotonic() - t0
    return summary


def _current(row: dict[str, object], path: Path, entry: Entry) -> bool:
    """True when a stored row still describes the source and the manifest entry (no need to decode again)."""
    size, mtime = source_stat(path)
    return (row["src_bytes"], row["src_mtime_ns"]) == (size, mtime) and row["label"] == entry.label and \
        row["class_name"] == entry.class_name and row["splits"] == _json(entry.splits)


def _run_parallel(cfg: ExtractConfig, todo: list[Entry]) -> Iterator[tuple[dict[str, object], bytes, np.ndarray]]:
    """Results of process_video over `todo`, in completion order, on the configured joblib backend."""
    if not todo:
        return
    from joblib import Parallel, delayed, parallel_config

    tasks = (delayed(process_video)(cfg.root, e, cfg.height, cfg.width, cfg.quality, cfg.min_frames) for e in todo)
    if cfg.backend == "loky":
        jobs = cfg.jobs if cfg.jobs != -1 else (os.cpu_count() or 1)
        if jobs == 1:
            # In-process: no worker start-up for small runs and debugging.
            for e in todo:
                yield process_video(cfg.root, e, cfg.height, cfg.width, cfg.quality, cfg.min_frames)
            return
        yield from Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(tasks)
        return
    from distributed import Client

    with Client(cfg.scheduler) as client, parallel_config(backend="dask"):
        n = cfg.jobs if cfg.jobs > 0 else max(1, sum(client.nthreads().values()))
        yield from Parallel(n_jobs=n, return_as="generator_unordered")(tasks)
