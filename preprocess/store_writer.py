"""The write path of the frame store: create and lock a store, write shards with their record, write the index.

HDF5 has no safe concurrent writers, and a process killed in the middle of an HDF5 write can leave the whole
file unreadable. So one process writes a store (it holds the flock on STORE/.lock), and every file is
written once and atomically through shared/atomic.py: a shard, then the dataset's shard record naming it,
then now and then the index of the current rows. A kill -9 at any moment leaves the last complete state plus
at most one complete shard that the record does not name yet; the next extract adopts it. The format is
`v3s.shared.store` (docs/store.md).
"""
from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import IO, Mapping, Sequence

import h5py
import numpy as np

from ..shared import store as st
from ..shared.atomic import atomic_write_path, fsync_dir, write_json


def init_store(path: str | Path) -> Path:
    """Create an empty store directory, or check that an existing one is a v3s store; return its path."""
    root = Path(path)
    meta = root / st.STORE_FILE
    if root.exists() and not root.is_dir():
        raise ValueError(f"store {str(root)!r} exists and is not a directory")
    if meta.exists():
        st.check_store_file(meta)
        return root
    if root.is_dir() and any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise ValueError(f"{str(root)!r} is a non-empty directory without {st.STORE_FILE}: not a v3s store")
    root.mkdir(parents=True, exist_ok=True)
    write_json(meta, {"format": st.FORMAT, "schema_version": st.SCHEMA_VERSION})
    return root


def lock_store(store: Path) -> IO:
    """Refuse a second concurrent writer to one store (the lock goes with the process, even on kill -9).

    Returns:
        the open lock file; closing it releases the lock.
    """
    fh = open(store / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ValueError(f"store {str(store)!r} is being written by another process") from None
    return fh


def shard_info(path: Path) -> tuple[st.ShardInfo, dict[str, object]]:
    """The record entry of an existing shard file (counted from its content) and its attributes (with "dataset")."""
    attrs, cols = st.read_shard_table(path)
    try:
        with h5py.File(path, "r") as f:
            frames, frame_bytes = int(f["offsets"].shape[0]) - 1, int(f["frames"].shape[0])
            attrs = {**attrs, "dataset": f.attrs.get("dataset")}
    except (OSError, KeyError) as e:
        raise st.ShardError(path, f"shard {str(path)!r} is damaged: {e}") from None
    info = st.ShardInfo(path.name, path.stat().st_size, videos=len(cols["rel_path"]),
                        ok=int(np.sum(cols["status"] == "ok")), frames=frames, frame_bytes=frame_bytes, path=path)
    return info, attrs


def write_record(dataset_dir: Path, dataset: str, shards: Sequence[st.ShardInfo]) -> None:
    """Write a dataset's shard record (STORE/<dataset>/shards.json) atomically, the rename made durable."""
    write_json(dataset_dir / st.RECORD_FILE, {"format": st.RECORD_FORMAT, "schema_version": st.SCHEMA_VERSION,
                                              "dataset": dataset, "shards": [s.to_json() for s in shards]})
    fsync_dir(dataset_dir)


def write_shard(path: Path, dataset: str, attrs: Mapping[str, object], rows: Sequence[Mapping[str, object]],
                frames: Sequence[bytes | np.ndarray], frame_offsets: Sequence[np.ndarray]) -> st.ShardInfo:
    """Write one shard atomically, then append it to its dataset's shard record.

    Args:
        path: final shard path (".../<dataset>/shard-NNNNNN.h5"); it must not exist or be recorded yet.
        dataset: dataset name (stored as an attribute).
        attrs: dataset-level attributes (classes, split_ids, settings), JSON-encodable values.
        rows: one mapping per video with every key of VIDEO_COLUMNS except frame_start.
        frames: per video, the concatenated JPEG bytes (empty for videos that are not ok).
        frame_offsets: per video, int64 (num_frames + 1,) offsets into its own bytes, starting at 0.
    Returns:
        the shard's record entry.
    """
    path = Path(path)
    record = _record_or_legacy(path.parent, dataset)
    if path.exists() or path.name in {s.name for s in record}:
        raise ValueError(f"shard {str(path)!r} already exists: a shard is written once")
    sizes = [len(b) for b in frames]
    total_frames = sum(len(o) - 1 for o in frame_offsets)
    offsets = np.zeros(total_frames + 1, dtype=np.int64)
    starts = np.zeros(len(rows), dtype=np.int64)
    byte_base, frame_base = 0, 0
    for i, (n, offs) in enumerate(zip(sizes, frame_offsets)):
        k = len(offs) - 1
        starts[i] = frame_base
        offsets[frame_base : frame_base + k + 1] = offs + byte_base
        byte_base += n
        frame_base += k

    def fill(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = st.SHARD_FORMAT
            f.attrs["schema_version"] = st.SCHEMA_VERSION
            f.attrs["dataset"] = dataset
            for k, v in attrs.items():
                f.attrs[k] = json.dumps(v)
            data = f.create_dataset("frames", shape=(byte_base,), dtype=np.uint8)
            pos = 0
            for b in frames:
                if len(b):
                    data[pos : pos + len(b)] = np.frombuffer(b, dtype=np.uint8)
                    pos += len(b)
            f.create_dataset("offsets", data=offsets)
            g = f.create_group("videos")
            for name, dtype in st.VIDEO_COLUMNS.items():
                values = starts if name == "frame_start" else [r[name] for r in rows]
                g.create_dataset(name, data=np.asarray(values, dtype=object if dtype is st.STR else dtype), dtype=dtype)

    atomic_write_path(path, fill, sync_dir=True)
    info = st.ShardInfo(path.name, path.stat().st_size, videos=len(rows), ok=sum(r["status"] == "ok" for r in rows),
                        frames=total_frames, frame_bytes=byte_base, path=path)
    write_record(path.parent, dataset, [*record, info])
    return info


def _record_or_legacy(dataset_dir: Path, dataset: str) -> list[st.ShardInfo]:
    """The dataset's record; for a folder written before records, its shard files, recorded now."""
    record = st.read_record(dataset_dir)
    if record is None:
        record = [shard_info(p)[0] for p in st.shard_paths(dataset_dir)]
        if record:
            write_record(dataset_dir, dataset, record)
    return record


def write_index(dataset_dir: Path) -> bool:
    """Write STORE/<dataset>/index.h5 for every recorded shard, unless the index already covers them all.

    Returns:
        True when a new index was written.
    """
    table = st.load_table(dataset_dir)
    if table.indexed == len(table.shards):
        return False

    def fill(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = st.INDEX_FORMAT
            f.attrs["schema_version"] = st.SCHEMA_VERSION
            f.attrs["dataset"] = dataset_dir.name
            f.attrs["shards"] = json.dumps([[s.name, s.bytes] for s in table.shards])
            f.attrs["attrs"] = json.dumps(table.attrs)
            c = f.create_group("columns")
            c.create_dataset("rel_path", data=table.rel)
            for name, values in table.cols.items():
                c.create_dataset(name, data=values)
            v = f.create_group("values")
            for name, values in table.values.items():
                v.create_dataset(name, data=np.asarray(values.tolist(), dtype=object), dtype=st.STR)

    atomic_write_path(dataset_dir / st.INDEX_FILE, fill, sync_dir=True)
    return True


def prepare_dataset(store: Path, dataset: str) -> st.VideoTable:
    """Get a dataset folder ready for a writer (call it holding the lock) and return its current rows.

    Removes what a killed writer left half-written (temp and .partial files), records the shards of a store
    written before records, and adopts complete shards written after the last recorded one (a kill between a
    shard's rename and its record): no finished work is lost.

    Raises:
        ValueError: an unrecorded shard that is not such a leftover (numbered below a recorded one, or of
            another dataset or other settings), naming it.
    """
    ddir = store / dataset
    ddir.mkdir(exist_ok=True)
    for p in ddir.iterdir():
        if p.name.endswith(st.PARTIAL_SUFFIX) or (p.name.startswith(".") and p.name.endswith(".tmp")):
            p.unlink()
    record = st.read_record(ddir)
    if record is None:
        _record_or_legacy(ddir, dataset)
        return st.load_table(ddir)
    named = {s.name for s in record}
    last = max((st.shard_number(s.name) for s in record), default=-1)
    settings = st.load_table(ddir).attrs.get("settings")
    adopted = []
    for p in st.shard_paths(ddir):
        if p.name in named:
            continue
        why = "it is numbered below a recorded shard" if st.shard_number(p.name) <= last else ""
        if not why:
            info, attrs = shard_info(p)
            if attrs.get("dataset") != dataset:
                why = f"it holds dataset {attrs.get('dataset')!r}"
            elif settings is not None and attrs.get("settings") != settings:
                why = f"it was extracted with {attrs.get('settings')}, the dataset with {settings}"
        if why:
            raise ValueError(f"shard {str(p)!r} is not in the shard record of {dataset!r} and {why}: "
                             "it was not written by an extract into this store; move it away")
        adopted.append(info)
    if adopted:
        write_record(ddir, dataset, [*record, *adopted])
    return st.load_table(ddir)


def next_shard_index(dataset_dir: Path) -> int:
    """The number of the next shard of a dataset folder (after every recorded or present shard)."""
    numbers = [st.shard_number(p.name) for p in st.shard_paths(dataset_dir)]
    numbers += [st.shard_number(s.name) for s in st.read_record(dataset_dir) or []]
    return max(numbers, default=-1) + 1


class ShardWriter:
    """The single writer: batches finished videos and writes them as write-once shards of one dataset.

    Args:
        dataset_dir: STORE/<dataset> (prepared with `prepare_dataset`, the store locked).
        dataset: its name; attrs: the dataset attributes every shard carries.
        next_index: number of the first shard to write.
        max_bytes: write a shard once this many JPEG bytes are pending.
        max_seconds: ... or once the oldest pending video waited this long (bounds the work a crash loses).
        index_seconds: rewrite the index at most this often while writing (and always in `close`): readers
            read the tables of shards the index does not cover yet.
    """

    def __init__(self, dataset_dir: Path, dataset: str, attrs: dict[str, object], next_index: int,
                 max_bytes: int, max_seconds: float, index_seconds: float = 120.0) -> None:
        self.dir, self.dataset, self.attrs = dataset_dir, dataset, attrs
        self.next_index, self.max_bytes, self.max_seconds = next_index, max_bytes, max_seconds
        self.index_seconds, self.last_index = index_seconds, time.monotonic()
        self.rows: list[dict[str, object]] = []
        self.data: list[bytes] = []
        self.offsets: list[np.ndarray] = []
        self.pending_bytes = 0
        self.oldest = 0.0
        self.written = 0  # shards written

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
        """Write the pending videos as one shard (nothing when none is pending)."""
        if not self.rows:
            return
        write_shard(self.dir / st.shard_name(self.next_index), self.dataset, self.attrs, self.rows, self.data,
                    self.offsets)
        self.next_index += 1
        self.written += 1
        self.rows, self.data, self.offsets, self.pending_bytes = [], [], [], 0
        if time.monotonic() - self.last_index >= self.index_seconds:
            write_index(self.dir)
            self.last_index = time.monotonic()

    def close(self) -> None:
        """Flush, and bring the index up to date."""
        self.flush()
        if st.read_record(self.dir):
            write_index(self.dir)
