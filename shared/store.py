"""The v3s frame store: an HDF5 layout of JPEG-encoded frames with random access by frame index.

A store is a directory:

    STORE/store.json                       {"format": "v3s-frame-store", "schema_version": 1}
    STORE/<dataset>/shard-000000.h5        finalised shards (written as .partial files, then renamed)

Each shard holds the frames of a batch of videos as one uint8 byte array of concatenated JPEGs plus an offsets
array, and one row per video (ok or not) in the columns of the `videos` group. The full schema is in
docs/store.md. When a video appears in several shards of one dataset (re-extracted after its source changed),
the shard with the highest number wins.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import cv2
import h5py
import numpy as np

FORMAT = "v3s-frame-store"
SHARD_FORMAT = "v3s-frame-store-shard"
SCHEMA_VERSION = 1
STORE_FILE = "store.json"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".h5"
PARTIAL_SUFFIX = ".partial"
STATUSES = ("ok", "failed", "too_short", "missing")
ROLES = ("train", "test", "val")

# Column name -> numpy dtype of the per-video table (group `videos`, one 1-D dataset per column).
STR = h5py.string_dtype("utf-8")
VIDEO_COLUMNS: dict[str, object] = {
    "rel_path": STR,  # POSIX path relative to the dataset root
    "status": STR,  # one of STATUSES
    "reason": STR,  # why a video is not ok ("" when ok)
    "class_name": STR,
    "label": np.int32,  # 0-based, -1 unknown
    "splits": STR,  # JSON object: split id -> "train" | "test" | "val"
    "frame_start": np.int64,  # index of the video's first frame in `offsets`
    "num_frames": np.int32,  # frames actually decoded and stored
    "fps": np.float64,  # frame rate from the source header (average for variable frame rate)
    "height": np.int32,  # stored frame size
    "width": np.int32,
    "src_height": np.int32,  # source size as displayed (after rotation metadata), -1 unknown
    "src_width": np.int32,
    "src_codec": STR,
    "src_rotation": np.int32,  # degrees from the source's display matrix
    "src_bytes": np.int64,  # source file size at extraction time, -1 when absent
    "src_mtime_ns": np.int64,  # source mtime (ns) at extraction time, -1 when absent
}


def decode_jpeg(blob: bytes) -> np.ndarray | None:
    """Decode one stored JPEG to uint8 (H, W, 3) RGB; None if it does not decode."""
    buf = np.frombuffer(blob, dtype=np.uint8)
    if _IMREAD_RGB is not None:
        return cv2.imdecode(buf, _IMREAD_RGB)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# OpenCV >= 4.10 decodes straight to RGB, saving a colour-conversion pass.
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


@dataclass(frozen=True)
class VideoInfo:
    """One stored video (status ok). `key` is what read_frames takes: "<dataset>/<rel_path>"."""

    key: str
    dataset: str
    rel_path: str
    class_name: str
    label: int
    num_frames: int
    fps: float
    height: int
    width: int
    splits: Mapping[str, str] = field(default_factory=dict)


def video_key(dataset: str, rel_path: str) -> str:
    """The store-wide key of a video."""
    return f"{dataset}/{rel_path}"


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:06d}{SHARD_SUFFIX}"


def shard_paths(dataset_dir: Path) -> list[Path]:
    """Finalised shards of one dataset, oldest first (partial files are never listed)."""
    if not dataset_dir.is_dir():
        return []
    found = [
        p
        for p in dataset_dir.iterdir()
        if p.name.startswith(SHARD_PREFIX) and p.name.endswith(SHARD_SUFFIX) and p.name[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)]))


def init_store(path: str | os.PathLike) -> Path:
    """Create an empty store directory, or check that an existing one is a v3s store; return its path."""
    root = Path(path)
    meta = root / STORE_FILE
    if root.exists() and not root.is_dir():
        raise ValueError(f"store {str(root)!r} exists and is not a directory")
    if meta.exists():
        _check_store_file(meta)
        return root
    if root.is_dir() and any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise ValueError(f"{str(root)!r} is a non-empty directory without {STORE_FILE}: not a v3s store")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (STORE_FILE + PARTIAL_SUFFIX)
    tmp.write_text(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION}) + "\n")
    os.replace(tmp, meta)
    return root


def _check_store_file(meta: Path) -> None:
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(meta)!r} is not a readable v3s store file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{str(meta)!r} is not a v3s store file (format {doc.get('format') if isinstance(doc, dict) else doc!r})")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"store {str(meta.parent)!r} has schema version {doc.get('schema_version')!r}; this code reads version {SCHEMA_VERSION}"
        )


def write_shard(path: Path, dataset: str, attrs: Mapping[str, object], rows: Sequence[Mapping[str, object]],
                frames: Sequence[bytes | np.ndarray], frame_offsets: Sequence[np.ndarray]) -> None:
    """Write one shard atomically: a .partial file, flushed, then renamed to `path`.

    Args:
        path: final shard path (".../shard-NNNNNN.h5").
        dataset: dataset name (stored as an attribute).
        attrs: dataset-level attributes (classes, split_ids, settings), JSON-encodable values.
        rows: one mapping per video with every key of VIDEO_COLUMNS except frame_start.
        frames: per video, the concatenated JPEG bytes (empty for videos that are not ok).
        frame_offsets: per video, int64 (num_frames + 1,) offsets into its own bytes, starting at 0.
    """
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
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
    with h5py.File(partial, "w") as f:
        f.attrs["format"] = SHARD_FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
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
        for name, dtype in VIDEO_COLUMNS.items():
            values = starts if name == "frame_start" else [r[name] for r in rows]
            g.create_dataset(name, data=np.asarray(values, dtype=object if dtype is STR else dtype), dtype=dtype)
        f.flush()
    # fsync before the rename so that a crash leaves either no shard or a complete one.
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_shard_table(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """Dataset-level attributes (JSON-decoded) and the video columns of one shard."""
    try:
        return _read_shard_table(path)
    except (OSError, KeyError) as e:
        raise ValueError(f"shard {str(path)!r} is damaged: {e}") from None


def _read_shard_table(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != SHARD_FORMAT:
            raise ValueError(f"{str(path)!r} is not a v3s store shard")
        if int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
            raise ValueError(f"shard {str(path)!r} has schema version {f.attrs.get('schema_version')!r}; expected {SCHEMA_VERSION}")
        attrs = {k: (json.loads(v) if k not in ("format", "schema_version", "dataset") else v) for k, v in f.attrs.items()}
        cols = {}
        for name, dtype in VIDEO_COLUMNS.items():
            d = f["videos"][name]
            cols[name] = d.asstr()[()] if dtype is STR else d[()]
    return attrs, cols


@dataclass
class _DatasetIndex:
    attrs: dict[str, object]
    shards: list[Path]
    # rel_path -> (shard number in `shards`, row dict); the newest shard wins.
    records: dict[str, tuple[int, dict[str, object]]]


def load_dataset_index(dataset_dir: Path) -> _DatasetIndex:
    """Merge the rows of every finalised shard of one dataset (newest shard wins per rel_path)."""
    shards = shard_paths(dataset_dir)
    attrs: dict[str, object] = {}
    records: dict[str, tuple[int, dict[str, object]]] = {}
    for si, p in enumerate(shards):
        attrs, cols = read_shard_table(p)
        n = len(cols["rel_path"])
        for i in range(n):
            row = {name: (str(cols[name][i]) if VIDEO_COLUMNS[name] is STR else cols[name][i].item()) for name in VIDEO_COLUMNS}
            records[row["rel_path"]] = (si, row)
    return _DatasetIndex(attrs=attrs, shards=shards, records=records)


class Store:
    """Read-only access to a v3s frame store.

    Safe in DataLoader workers: h5py files are opened lazily in the process that reads, re-opened after a
    fork (pid change), and the object pickles without its open files.

    Args:
        path: the store directory (the --out of `v3s-prep extract`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"store {str(self.path)!r} does not exist")
        meta = self.path / STORE_FILE
        if not self.path.is_dir() or not meta.is_file():
            raise ValueError(f"{str(self.path)!r} is not a v3s store (no {STORE_FILE})")
        _check_store_file(meta)
        self._index: dict[str, _DatasetIndex] = {}
        for d in sorted(p for p in self.path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            idx = load_dataset_index(d)
            if idx.shards:
                self._index[d.name] = idx
        # key -> (dataset, shard number, frame_start, num_frames)
        self._where: dict[str, tuple[str, int, int, int]] = {}
        for name, idx in self._index.items():
            for rel, (si, row) in idx.records.items():
                if row["status"] == "ok":
                    self._where[video_key(name, rel)] = (name, si, int(row["frame_start"]), int(row["num_frames"]))
        self._pid = -1
        self._files: dict[tuple[str, int], h5py.File] = {}
        self._frames: dict[tuple[str, int], h5py.Dataset] = {}
        self._offsets: dict[tuple[str, int], np.ndarray] = {}

    # ---- metadata -------------------------------------------------------------------------------------
    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self._index)

    def _dataset(self, dataset: str) -> _DatasetIndex:
        if dataset not in self._index:
            raise ValueError(f"dataset {dataset!r} is not in store {str(self.path)!r}; it holds {list(self._index)}")
        return self._index[dataset]

    def classes(self, dataset: str) -> tuple[str, ...]:
        return tuple(self._dataset(dataset).attrs.get("classes", ()))

    def split_ids(self, dataset: str) -> tuple[str, ...]:
        return tuple(self._dataset(dataset).attrs.get("split_ids", ()))

    def settings(self, dataset: str) -> dict[str, object]:
        """Extraction settings of a dataset (height, width, quality, min_frames, codec)."""
        return dict(self._dataset(dataset).attrs.get("settings", {}))

    def records(self, dataset: str) -> list[dict[str, object]]:
        """Every current row of a dataset (any status), sorted by rel_path, with `splits` decoded."""
        idx = self._dataset(dataset)
        out = []
        for rel in sorted(idx.records):
            si, row = idx.records[rel]
            out.append({**row, "splits": json.loads(row["splits"] or "{}"), "shard": idx.shards[si].name})
        return out

    def videos(self, dataset: str, split: str | None = None, role: str | None = None) -> list[VideoInfo]:
        """Videos with status ok, sorted by rel_path; optionally only those with `role` in split `split`.

        Args:
            dataset: a name in `datasets`.
            split: a split id of the dataset (see split_ids), or None for all videos.
            role: "train" | "test" | "val"; needs `split`.
        """
        idx = self._dataset(dataset)
        if split is not None and split not in self.split_ids(dataset):
            raise ValueError(f"split {split!r} is not a split of {dataset!r}; valid: {list(self.split_ids(dataset))}")
        if role is not None:
            if role not in ROLES:
                raise ValueError(f"role {role!r} is not valid; valid: {list(ROLES)}")
            if split is None:
                raise ValueError(f"role {role!r} needs a split; valid splits of {dataset!r}: {list(self.split_ids(dataset))}")
        out = []
        for rel in sorted(idx.records):
            _, row = idx.records[rel]
            if row["status"] != "ok":
                continue
            splits = json.loads(row["splits"] or "{}")
            if split is not None and split not in splits:
                continue
            if role is not None and splits[split] != role:
                continue
            out.append(
                VideoInfo(
                    key=video_key(dataset, rel), dataset=dataset, rel_path=rel, class_name=row["class_name"],
                    label=int(row["label"]), num_frames=int(row["num_frames"]), fps=float(row["fps"]),
                    height=int(row["height"]), width=int(row["width"]), splits=MappingProxyType(splits),
                )
            )
        return out

    def split(self, dataset: str, split: str, role: str) -> list[VideoInfo]:
        """The ok videos with `role` in split `split` of `dataset`: how every stage opens a split.

        Raises:
            ValueError: the dataset or the split is not in the store (naming what it holds), or the list is empty.
        """
        if dataset not in self._index:
            raise ValueError(f"dataset {dataset!r} is not in store {str(self.path)!r}; it holds {list(self._index)}")
        if str(split) not in self.split_ids(dataset):
            raise ValueError(f"split {split!r} is not a split of {dataset!r} in store {str(self.path)!r}; "
                             f"valid splits: {list(self.split_ids(dataset))}")
        videos = self.videos(dataset, str(split), role)
        if not videos:
            raise ValueError(f"split {split!r} of {dataset!r} in store {str(self.path)!r} has no {role} videos")
        return videos

    def failures(self, dataset: str) -> list[dict[str, str]]:
        """Videos that are not ok: dicts with rel_path, status ("failed" | "too_short" | "missing"), reason."""
        idx = self._dataset(dataset)
        return [
            {"rel_path": rel, "status": row["status"], "reason": row["reason"]}
            for rel in sorted(idx.records)
            for _, row in [idx.records[rel]]
            if row["status"] != "ok"
        ]

    # ---- frames ---------------------------------------------------------------------------------------
    def _file(self, dataset: str, si: int) -> tuple[h5py.Dataset, np.ndarray]:
        """The `frames` dataset and the offsets array of one shard, opened in this process."""
        pid = os.getpid()
        if pid != self._pid:
            # A forked child must not share the parent's HDF5 handles: drop them (without closing them
            # from here, which would touch the parent's library state) and open its own.
            self._files, self._frames, self._offsets, self._pid = {}, {}, {}, pid
        k = (dataset, si)
        f = self._files.get(k)
        if f is None:
            f = h5py.File(self._index[dataset].shards[si], "r")
            self._files[k] = f
            self._frames[k] = f["frames"]
            self._offsets[k] = f["offsets"][()]
        return self._frames[k], self._offsets[k]

    def read_jpegs(self, key: str, indices: Iterable[int]) -> list[bytes]:
        """The stored JPEG bytes of frames `indices` of video `key` (in the given order)."""
        dataset, si, start, n, idx = self._locate(key, indices)
        frames, offsets = self._file(dataset, si)
        uniq = np.unique(idx)
        blobs: dict[int, bytes] = {}
        # Coalesce consecutive frames into one read: one read per run, never bytes of frames not asked for.
        run_start = 0
        for j in range(1, len(uniq) + 1):
            if j == len(uniq) or uniq[j] != uniq[j - 1] + 1:
                a, b = uniq[run_start], uniq[j - 1]
                lo, hi = offsets[start + a], offsets[start + b + 1]
                buf = frames[lo:hi].tobytes()
                for t in range(a, b + 1):
                    blobs[int(t)] = buf[offsets[start + t] - lo : offsets[start + t + 1] - lo]
                run_start = j
        return [blobs[int(i)] for i in idx]

    def _locate(self, key: str, indices: Iterable[int]) -> tuple[str, int, int, int, np.ndarray]:
        where = self._where.get(key)
        if where is None:
            raise KeyError(f"video {key!r} is not an ok video of store {str(self.path)!r}")
        dataset, si, start, n = where
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)]
            raise IndexError(f"frame indices {bad.tolist()[:5]} out of range for {key!r} with {n} frames")
        return dataset, si, start, n, idx

    def read_frames(self, key: str, indices: Iterable[int]) -> np.ndarray:
        """Decode frames of one video by index.

        Args:
            key: VideoInfo.key.
            indices: frame indices in [0, num_frames), any order, repeats allowed.
        Returns:
            uint8 (len(indices), H, W, 3) RGB.
        """
        dataset, si, start, n, idx = self._locate(key, indices)
        h = int(self._index[dataset].attrs["settings"]["height"])
        w = int(self._index[dataset].attrs["settings"]["width"])
        out = np.empty((len(idx), h, w, 3), dtype=np.uint8)
        decoded: dict[int, int] = {}
        for i, blob in enumerate(self.read_jpegs(key, idx)):
            t = int(idx[i])
            if t in decoded:
                out[i] = out[decoded[t]]
                continue
            rgb = decode_jpeg(blob)
            if rgb is None or rgb.shape != (h, w, 3):
                raise ValueError(f"frame {t} of {key!r} in store {str(self.path)!r} does not decode to {h}x{w}x3")
            out[i] = rgb
            decoded[t] = i
        return out

    def read_clip_torch(self, key: str, indices: Iterable[int]):
        """read_frames as a torch uint8 tensor (T, H, W, 3)."""
        import torch

        return torch.from_numpy(self.read_frames(key, indices))

    def close(self) -> None:
        if self._pid == os.getpid():
            for f in self._files.values():
                f.close()
        self._files, self._frames, self._offsets = {}, {}, {}

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_files"], state["_frames"], state["_offsets"], state["_pid"] = {}, {}, {}, -1
        return state

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, datasets={list(self._index)})"


def summarize_store(path: str | os.PathLike) -> dict[str, object]:
    """What `v3s-prep info` prints: per dataset counts by status, frames, bytes, per-split counts of ok videos.

    Args:
        path: the store directory.
    """
    s = Store(path)
    out: dict[str, object] = {"store": str(s.path), "schema_version": SCHEMA_VERSION, "datasets": {}}
    for name in s.datasets:
        idx = s._index[name]
        counts = {k: 0 for k in STATUSES}
        frames, nbytes = 0, 0
        per_split: dict[str, dict[str, int]] = {sid: {} for sid in s.split_ids(name)}
        ok_rows = []
        for _, row in idx.records.values():
            counts[str(row["status"])] += 1
            if row["status"] == "ok":
                ok_rows.append(row)
                frames += int(row["num_frames"])
                for sid, role in json.loads(row["splits"] or "{}").items():
                    per_split.setdefault(sid, {})
                    per_split[sid][role] = per_split[sid].get(role, 0) + 1
        by_shard: dict[int, list[dict[str, object]]] = {}
        for si, row in idx.records.values():
            if row["status"] == "ok":
                by_shard.setdefault(si, []).append(row)
        for si, rows in by_shard.items():
            _, offsets = s._file(name, si)
            for row in rows:
                a, n = int(row["frame_start"]), int(row["num_frames"])
                nbytes += int(offsets[a + n] - offsets[a])
        disk = sum(p.stat().st_size for p in idx.shards)
        out["datasets"][name] = {
            "videos": counts, "frames": frames, "frame_bytes": nbytes,
            "bytes_per_frame": round(nbytes / frames, 1) if frames else 0.0,
            "size_on_disk": disk, "shards": len(idx.shards), "splits": per_split,
            "settings": s.settings(name), "classes": len(s.classes(name)),
        }
    s.close()
    return out


def verify_store(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Check that every stored frame decodes to the stored size and counts match the table.

    Args:
        path: the store directory.
    Returns:
        (key or shard path, problem) for each damaged video or shard; empty when the store is sound.
    """
    problems: list[tuple[str, str]] = []
    root = Path(path)
    s = Store(root)  # a shard that does not open or lacks its table fails here, naming the file
    for name in s.datasets:
        h, w = int(s.settings(name)["height"]), int(s.settings(name)["width"])
        idx = s._index[name]
        for si, shard in enumerate(idx.shards):
            try:
                frames, offsets = s._file(name, si)
                nbytes = frames.shape[0]
            except (OSError, KeyError) as e:
                problems.append((str(shard), f"unreadable shard: {e}"))
                continue
            if offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] != nbytes:
                problems.append((str(shard), "offsets are not increasing from 0 to the size of frames"))
                continue
        seen: set[str] = set()
        for rel, (si, row) in sorted(idx.records.items()):
            key = video_key(name, rel)
            if key in seen:
                problems.append((key, "listed twice"))
            seen.add(key)
            if row["status"] != "ok":
                continue
            n = int(row["num_frames"])
            if n <= 0:
                problems.append((key, "status ok with no frames"))
                continue
            if (int(row["height"]), int(row["width"])) != (h, w):
                problems.append((key, f"size {row['height']}x{row['width']} differs from the dataset's {h}x{w}"))
                continue
            try:
                _, offsets = s._file(name, si)
                if int(row["frame_start"]) + n >= len(offsets):
                    problems.append((key, f"{n} frames from {row['frame_start']} run past the shard's offsets"))
                    continue
                blobs = s.read_jpegs(key, range(n))
            except (OSError, KeyError, ValueError) as e:
                problems.append((key, f"unreadable: {e}"))
                continue
            bad = [t for t, b in enumerate(blobs) if (img := decode_jpeg(b)) is None or img.shape != (h, w, 3)]
            if bad:
                problems.append((key, f"{len(bad)} of {n} frames do not decode to {h}x{w}x3 (first: {bad[0]})"))
    s.close()
    return problems
