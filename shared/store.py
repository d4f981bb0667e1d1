"""The v3s frame store: its on-disk format and its reader (`Store`), random access to JPEG frames by index.

A store is a directory:

    STORE/store.json                       {"format": "v3s-frame-store", "schema_version": 1}
    STORE/<dataset>/shard-000000.h5        write-once shards (frames + one row per video)
    STORE/<dataset>/shards.json            the record of the dataset's shards: which files it must hold
    STORE/<dataset>/index.h5               the current rows of the first k recorded shards as columns

Each shard holds the frames of a batch of videos as one uint8 byte array of concatenated JPEGs plus an offsets
array, and one row per video (ok or not) in the columns of the `videos` group. When a video appears in several
shards of one dataset (re-extracted after its source changed), the row of the shard recorded last wins. The
index is derived data: a reader uses it for the shards it covers and reads the tables of later shards itself.
The full schema is in docs/store.md; the write path is `v3s.preprocess.store_writer`.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import repeat
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple, Sequence

import cv2
import h5py
import numpy as np

from ..data_manifest.entries import Pair

FORMAT = "v3s-frame-store"
SHARD_FORMAT = "v3s-frame-store-shard"
RECORD_FORMAT = "v3s-frame-store-shard-record"
INDEX_FORMAT = "v3s-frame-store-index"
SCHEMA_VERSION = 1
STORE_FILE = "store.json"
RECORD_FILE = "shards.json"
INDEX_FILE = "index.h5"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".h5"
PARTIAL_SUFFIX = ".partial"  # what writers before the shard record left half-written
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
# String columns other than rel_path and status, held in memory and in the index as int32 codes into a sorted
# table of their distinct values (few: a handful of split memberships, a few hundred class names).
CODED = tuple(n for n, d in VIDEO_COLUMNS.items() if d is STR and n not in ("rel_path", "status"))
NUMERIC = tuple(n for n, d in VIDEO_COLUMNS.items() if d is not STR)
# Open shard files a reading process keeps (least recently used first out): bounded memory and descriptors.
MAX_OPEN_SHARDS = 64
# A clip whose frames span at most this many offsets reads them in one slice; a longer span, per run of frames.
OFFSETS_SPAN = 4096


def decode_jpeg(blob: bytes) -> np.ndarray | None:
    """Decode one stored JPEG to uint8 (H, W, 3) RGB; None if it does not decode."""
    buf = np.frombuffer(blob, dtype=np.uint8)
    if _IMREAD_RGB is not None:
        return cv2.imdecode(buf, _IMREAD_RGB)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# OpenCV >= 4.10 decodes straight to RGB, saving a colour-conversion pass.
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


class VideoInfo(NamedTuple):
    """One stored video (status ok), immutable. `key` is what read_frames takes: "<dataset>/<rel_path>".

    A named tuple rather than a dataclass, and `key` derived rather than stored: `Store.videos` builds one per
    video (220,000 for the Kinetics-400 train split), and such a tuple is built ~3x faster than a frozen
    dataclass and takes 112 bytes instead of 352 (plus its strings).
    """

    dataset: str
    rel_path: str
    class_name: str
    label: int
    num_frames: int
    fps: float
    height: int
    width: int
    splits: Mapping[str, str] = MappingProxyType({})

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.rel_path}"


def video_key(dataset: str, rel_path: str) -> str:
    """The store-wide key of a video."""
    return f"{dataset}/{rel_path}"


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:06d}{SHARD_SUFFIX}"


def shard_number(name: str) -> int | None:
    """The number of a shard file name ("shard-000012.h5" -> 12); None for any other name."""
    if name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX):
        digits = name[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)]
        if digits.isdigit():
            return int(digits)
    return None


def shard_paths(dataset_dir: Path) -> list[Path]:
    """Finalised shard files in a dataset folder, by number (temp and partial files are never listed)."""
    if not dataset_dir.is_dir():
        return []
    found = [p for p in dataset_dir.iterdir() if shard_number(p.name) is not None]
    return sorted(found, key=lambda p: shard_number(p.name))


def check_store_file(meta: Path) -> None:
    """Raise ValueError naming `meta` unless it is a store.json of this format and schema."""
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


class ShardError(ValueError):
    """A shard a dataset needs is missing, changed or unreadable; `path` is the shard file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


# ---- shard tables ------------------------------------------------------------------------------------------
def _open_shard_table(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """Dataset attributes (JSON-decoded; not format, schema_version, dataset) and raw columns of one shard: strings as object arrays of UTF-8 bytes."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != SHARD_FORMAT:
                raise ShardError(path, f"{str(path)!r} is not a v3s store shard")
            if int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
                raise ShardError(path, f"shard {str(path)!r} has schema version {f.attrs.get('schema_version')!r}; "
                                       f"expected {SCHEMA_VERSION}")
            attrs = {k: json.loads(v) for k, v in f.attrs.items() if k not in ("format", "schema_version", "dataset")}
            g = f["videos"]
            cols = {name: g[name][()] for name in VIDEO_COLUMNS}
    except (OSError, KeyError) as e:
        raise ShardError(path, f"shard {str(path)!r} is damaged: {e}") from None
    return attrs, cols


def read_shard_table(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """Dataset attributes (JSON-decoded: classes, split_ids, settings, ...) and the video columns of one shard
    (strings as str)."""
    attrs, cols = _open_shard_table(path)
    return attrs, {n: (np.array([b.decode() for b in c], dtype=object) if VIDEO_COLUMNS[n] is STR else c)
                   for n, c in cols.items()}


# ---- the shard record ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardInfo:
    """One recorded shard of a dataset.

    Args:
        name: file name ("shard-000003.h5").
        bytes: file size when written (a different size means the file was damaged or replaced).
        videos: rows in its table; ok: rows with status ok.
        frames: stored frames (len(offsets) - 1); frame_bytes: size of its `frames` array.
        path: the file (set when read from a store; not part of the record).
    Counts are -1 for a shard of a store written before shards were recorded.
    """

    name: str
    bytes: int
    videos: int = -1
    ok: int = -1
    frames: int = -1
    frame_bytes: int = -1
    path: Path | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "bytes": self.bytes, "videos": self.videos, "ok": self.ok, "frames": self.frames,
                "frame_bytes": self.frame_bytes}


def read_record(dataset_dir: Path) -> list[ShardInfo] | None:
    """The recorded shards of one dataset folder, in order; None when it has no record (written before records)."""
    path = dataset_dir / RECORD_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ShardError(path, f"shard record {str(path)!r} is not readable: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT or not isinstance(doc.get("shards"), list):
        raise ShardError(path, f"{str(path)!r} is not a v3s shard record")
    try:
        return [ShardInfo(**{k: s[k] for k in ("name", "bytes", "videos", "ok", "frames", "frame_bytes")},
                          path=dataset_dir / s["name"]) for s in doc["shards"]]
    except (KeyError, TypeError) as e:
        raise ShardError(path, f"shard record {str(path)!r} has a malformed entry: {e}") from None


# ---- the table of current rows ---------------------------------------------------------------------------------
@dataclass
class VideoTable:
    """The current rows of one dataset as columns, sorted by rel_path (one row per video, newest shard wins).

    Args:
        attrs: dataset attributes of the newest shard (classes, split_ids, settings, root, splits_from).
        shards: the shards these rows come from, in record order.
        rel: (R,) bytes ("S") UTF-8 rel_paths, sorted, unique.
        cols: (R,) arrays: every numeric column of VIDEO_COLUMNS in its dtype; "status" int8 codes into
            STATUSES; "shard" int32 positions in `shards`; each CODED column int32 codes into `values`.
        values: for each CODED column, an object array of its distinct strings, sorted.
        strays: shard files in the folder that the record does not name (ignored).
        indexed: how many of the first `shards` came from the index file (the rest from their own tables).
    """

    attrs: dict[str, object]
    shards: tuple[ShardInfo, ...]
    rel: np.ndarray
    cols: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    strays: tuple[Path, ...] = ()
    indexed: int = 0

    def __len__(self) -> int:
        return len(self.rel)

    def find(self, rel_paths: Sequence[str]) -> np.ndarray:
        """(N,) int64 row of each rel_path, -1 where the dataset has no row for it."""
        if not len(rel_paths):
            return np.zeros(0, dtype=np.int64)
        q = np.array([r.encode() for r in rel_paths], dtype=bytes)
        pos = np.searchsorted(self.rel, q)
        if not len(self.rel):
            return np.full(len(q), -1, dtype=np.int64)
        hit = self.rel[np.minimum(pos, len(self.rel) - 1)] == q
        return np.where(hit, pos, -1).astype(np.int64)

    def find_one(self, rel_path: str) -> int:
        """The row of one rel_path, -1 when absent (a binary search: a few microseconds)."""
        q = rel_path.encode()
        i = int(np.searchsorted(self.rel, q))
        return i if i < len(self.rel) and self.rel[i] == q else -1

    def column(self, name: str) -> np.ndarray:
        """One column in row order: strings as an object array of str; "shard" as positions in `shards`."""
        if name == "rel_path":
            return np.array([b.decode() for b in self.rel.tolist()], dtype=object)
        if name == "status":
            return np.array(STATUSES, dtype=object)[self.cols["status"]]
        if name in CODED:
            return self.values[name][self.cols[name]]
        if name in self.cols:
            view = self.cols[name].view()
            view.flags.writeable = False  # the table's own array: read-only
            return view
        raise ValueError(f"column {name!r} does not exist; valid: {[*VIDEO_COLUMNS, 'shard']}")

    @classmethod
    def from_shard(cls, attrs: dict[str, object], raw: dict[str, np.ndarray], shard: int, info: ShardInfo) -> "VideoTable":
        """The rows of one shard (raw columns from _open_shard_table) as a table, tagged with its position."""
        n = len(raw["rel_path"])
        cols: dict[str, np.ndarray] = {name: np.asarray(raw[name], dtype=VIDEO_COLUMNS[name]) for name in NUMERIC}
        lut = {s.encode(): i for i, s in enumerate(STATUSES)}
        try:
            cols["status"] = np.array([lut[b] for b in raw["status"]], dtype=np.int8)
        except KeyError as e:
            raise ShardError(info.path, f"shard {str(info.path)!r} has a row with status {e.args[0]!r}; "
                                        f"valid: {list(STATUSES)}") from None
        cols["shard"] = np.full(n, shard, dtype=np.int32)
        values = {}
        for name in CODED:
            uniq, codes = np.unique(np.asarray(raw[name], dtype=object), return_inverse=True)
            values[name] = np.array([b.decode() for b in uniq], dtype=object)
            cols[name] = codes.astype(np.int32)
        rel = np.array(raw["rel_path"].tolist(), dtype=bytes) if n else np.zeros(0, dtype="S1")
        order = np.argsort(rel, kind="stable")
        return cls(attrs, (info,), rel[order], {k: v[order] for k, v in cols.items()}, values)

    @classmethod
    def merge(cls, parts: Sequence["VideoTable"], shards: Sequence[ShardInfo]) -> "VideoTable":
        """One table of `parts` (oldest first; "shard" already positions in `shards`): the last row of a rel_path wins."""
        parts = [p for p in parts if p is not None]
        if len(parts) == 1:
            return replace(parts[0], shards=tuple(shards))
        rel = np.concatenate([p.rel for p in parts]) if parts else np.zeros(0, dtype="S1")
        order = np.argsort(rel, kind="stable")  # ties keep part order: the newest row of a rel_path comes last
        r = rel[order]
        last = np.ones(len(r), dtype=bool)
        last[:-1] = r[1:] != r[:-1]
        keep = order[last]
        cols = {n: np.concatenate([p.cols[n] for p in parts])[keep] for n in (*NUMERIC, "status", "shard")}
        values = {}
        for name in CODED:
            offsets = np.cumsum([0] + [len(p.values[name]) for p in parts])
            allvals = np.concatenate([p.values[name] for p in parts]) if parts else np.zeros(0, dtype=object)
            codes = np.concatenate([p.cols[name] + o for p, o in zip(parts, offsets)])[keep]
            used = np.unique(codes)
            uniq, inv = np.unique(allvals[used], return_inverse=True)
            lut = np.zeros(len(allvals), dtype=np.int32)
            lut[used] = inv
            values[name] = uniq.astype(object)
            cols[name] = lut[codes]
        attrs = parts[-1].attrs if parts else {}
        return cls(attrs, tuple(shards), rel[keep], cols, values)


def read_index(path: Path) -> tuple[list[tuple[str, int]], VideoTable]:
    """The shards ([name, bytes]) an index file covers and its table ("shard" positions in that list)."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != INDEX_FORMAT or int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
                raise ShardError(path, f"{str(path)!r} is not a v3s store index of schema {SCHEMA_VERSION}")
            covered = [(str(n), int(b)) for n, b in json.loads(f.attrs["shards"])]
            attrs = json.loads(f.attrs["attrs"])
            c = f["columns"]
            rel = c["rel_path"][()]
            cols = {n: c[n][()] for n in (*NUMERIC, "status", "shard", *CODED)}
            values = {n: np.array(f["values"][n].asstr()[()], dtype=object) for n in CODED}
    except (OSError, KeyError, ValueError) as e:
        if isinstance(e, ShardError):
            raise
        raise ShardError(path, f"store index {str(path)!r} is damaged: {e}") from None
    return covered, VideoTable(attrs, (), rel, cols, values)


def load_table(dataset_dir: Path, pin: Sequence[str] | None = None) -> VideoTable:
    """Read the current rows of one dataset: the index for the shards it covers, then the later shards' tables.

    Args:
        dataset_dir: STORE/<dataset>.
        pin: read exactly these recorded shards (a prefix of the record), as an earlier load did; None: all.
    Raises:
        ShardError: a recorded shard is missing, has changed size, or does not read (naming the file).
    """
    record = read_record(dataset_dir)
    on_disk = shard_paths(dataset_dir)
    if record is None:  # a store written before shards were recorded: the files on disk are the shards
        shards = [ShardInfo(p.name, p.stat().st_size, path=p) for p in on_disk]
        strays: tuple[Path, ...] = ()
    else:
        shards = record
        named = {s.name for s in shards}
        strays = tuple(p for p in on_disk if p.name not in named)
    if pin is not None:
        if [s.name for s in shards[: len(pin)]] != list(pin):
            raise ShardError(dataset_dir, f"dataset folder {str(dataset_dir)!r} changed while it was being read: "
                                          f"it no longer holds the shards {list(pin)[:3]}...; open the store again")
        shards = shards[: len(pin)]
    for s in shards:
        try:
            size = os.stat(s.path).st_size
        except FileNotFoundError:
            raise ShardError(s.path, f"shard {str(s.path)!r} is missing: the shard record {str(dataset_dir / RECORD_FILE)!r} "
                                     f"lists it, so {dataset_dir.name!r} is incomplete (restore the file, or extract the "
                                     f"dataset again into a new store)") from None
        if size != s.bytes:
            raise ShardError(s.path, f"shard {str(s.path)!r} has {size} bytes, but {s.bytes} were written: "
                                     "the file was damaged or replaced")
    parts: list[VideoTable] = []
    start = 0
    index = dataset_dir / INDEX_FILE
    if record is not None and index.is_file():
        covered, table = read_index(index)
        if covered and len(covered) <= len(shards) and covered == [(s.name, s.bytes) for s in shards[: len(covered)]]:
            parts.append(table)
            start = len(covered)
    attrs: dict[str, object] = parts[0].attrs if parts else {}
    for i in range(start, len(shards)):
        attrs, raw = _open_shard_table(shards[i].path)
        parts.append(VideoTable.from_shard(attrs, raw, i, shards[i]))
    if not parts:
        empty = {n: np.zeros(0, dtype=VIDEO_COLUMNS[n]) for n in NUMERIC}
        empty.update(status=np.zeros(0, np.int8), shard=np.zeros(0, np.int32), **{n: np.zeros(0, np.int32) for n in CODED})
        parts.append(VideoTable(attrs, (), np.zeros(0, dtype="S1"), empty, {n: np.zeros(0, dtype=object) for n in CODED}))
    table = VideoTable.merge(parts, shards)
    table.attrs, table.strays, table.indexed = attrs, strays, start
    return table


def _is_dataset_dir(d: Path) -> bool:
    return d.is_dir() and not d.name.startswith(".") and ((d / RECORD_FILE).is_file() or bool(shard_paths(d)))


class Store:
    """Read-only access to a v3s frame store.

    Datasets are read on first use, each on its own: a damaged shard of one dataset does not stop another.
    Safe in DataLoader workers: h5py files are opened lazily in the process that reads (at most
    MAX_OPEN_SHARDS at a time), re-opened after a fork (pid change); the object pickles without its open files
    or tables (a few KiB), and a worker reads the same shards its parent read.

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
        check_store_file(meta)
        self._names = tuple(sorted(d.name for d in self.path.iterdir() if _is_dataset_dir(d)))
        self._tables: dict[str, VideoTable] = {}
        self._pins: dict[str, tuple[str, ...]] = {}  # shards each dataset was read from; travels when pickled
        self._pid = -1
        self._files: OrderedDict[tuple[str, int], tuple[h5py.File, h5py.Dataset, h5py.Dataset]] = OrderedDict()

    # ---- metadata -------------------------------------------------------------------------------------
    @property
    def datasets(self) -> tuple[str, ...]:
        return self._names

    def _table(self, dataset: str) -> VideoTable:
        table = self._tables.get(dataset)
        if table is None:
            if dataset not in self._names:
                raise ValueError(f"dataset {dataset!r} is not in store {str(self.path)!r}; it holds {list(self._names)}")
            table = load_table(self.path / dataset, self._pins.get(dataset))
            for p in table.strays:
                warnings.warn(f"shard {str(p)!r} is not in the shard record of {dataset!r} and is ignored (left by an "
                              "interrupted extract: rerun `v3s-prep extract` to adopt it; otherwise move it away)",
                              stacklevel=3)
            self._tables[dataset] = table
            self._pins[dataset] = tuple(s.name for s in table.shards)
        return table

    def classes(self, dataset: str) -> tuple[str, ...]:
        return tuple(self._table(dataset).attrs.get("classes", ()))

    def split_ids(self, dataset: str) -> tuple[str, ...]:
        return tuple(self._table(dataset).attrs.get("split_ids", ()))

    def settings(self, dataset: str) -> dict[str, object]:
        """Extraction settings of a dataset (height, width, quality, min_frames, codec)."""
        return dict(self._table(dataset).attrs.get("settings", {}))

    def pairs(self, dataset: str) -> tuple[Pair, ...]:
        """The ASLAN View-2 pairs recorded when the dataset was extracted (samples as 4-digit ids), () if none."""
        return tuple(Pair(int(f), str(a), str(b), bool(same), int(x), int(y))
                     for f, a, b, same, x, y in self._table(dataset).attrs.get("pairs", ()))

    def shards(self, dataset: str) -> tuple[ShardInfo, ...]:
        """The shards the dataset's current rows come from, in record order (`path` set)."""
        return self._table(dataset).shards

    def stray_shards(self, dataset: str) -> tuple[Path, ...]:
        """Shard files in the dataset's folder that its record does not name (readers ignore them)."""
        return self._table(dataset).strays

    def column(self, dataset: str, name: str) -> np.ndarray:
        """One column of the dataset's current rows (any status), sorted by rel_path.

        Args:
            name: a VIDEO_COLUMNS name (strings come as an object array of str), or "shard": int32 positions in
                `shards(dataset)`.
        Returns:
            (R,) array, R = videos of the dataset (every status).
        """
        return self._table(dataset).column(name)

    def records(self, dataset: str) -> list[dict[str, object]]:
        """Every current row of a dataset (any status), sorted by rel_path, with `splits` decoded."""
        t = self._table(dataset)
        cols = {n: t.column(n).tolist() for n in VIDEO_COLUMNS}
        names = [s.name for s in t.shards]
        shard = [names[i] for i in t.cols["shard"].tolist()]
        splits = {s: json.loads(s or "{}") for s in t.values["splits"].tolist()}
        return [{**{n: cols[n][i] for n in VIDEO_COLUMNS}, "splits": splits[cols["splits"][i]], "shard": shard[i]}
                for i in range(len(t))]

    def _role_lookup(self, t: VideoTable, dataset: str, split: str | None, role: str | None) -> np.ndarray:
        """Per splits code: True when a row with that membership is selected by (split, role)."""
        if split is not None and split not in self.split_ids(dataset):
            raise ValueError(f"split {split!r} is not a split of {dataset!r}; valid: {list(self.split_ids(dataset))}")
        if role is not None:
            if role not in ROLES:
                raise ValueError(f"role {role!r} is not valid; valid: {list(ROLES)}")
            if split is None:
                raise ValueError(f"role {role!r} needs a split; valid splits of {dataset!r}: {list(self.split_ids(dataset))}")
        memberships = [json.loads(s or "{}") for s in t.values["splits"].tolist()]
        return np.array([split is None or (split in m and (role is None or m[split] == role)) for m in memberships],
                        dtype=bool)

    def videos(self, dataset: str, split: str | None = None, role: str | None = None) -> list[VideoInfo]:
        """Videos with status ok, sorted by rel_path; optionally only those with `role` in split `split`.

        Args:
            dataset: a name in `datasets`.
            split: a split id of the dataset (see split_ids), or None for all videos.
            role: "train" | "test" | "val"; needs `split`.
        """
        t = self._table(dataset)
        chosen = self._role_lookup(t, dataset, split, role)
        if not len(t):
            return []
        rows = np.flatnonzero((t.cols["status"] == 0) & chosen[t.cols["splits"]])
        c = t.cols
        spl = [MappingProxyType(json.loads(s or "{}")) for s in t.values["splits"].tolist()]
        columns = (repeat(dataset, len(rows)), map(bytes.decode, t.rel[rows].tolist()),
                   t.values["class_name"][c["class_name"][rows]].tolist(), c["label"][rows].tolist(),
                   c["num_frames"][rows].tolist(), c["fps"][rows].tolist(), c["height"][rows].tolist(),
                   c["width"][rows].tolist(), map(spl.__getitem__, c["splits"][rows].tolist()))
        # Built by C loops (zip, map) with the cyclic GC paused: 220,000 videos in ~0.15 s of CPU, not ~0.6 s.
        paused = gc.isenabled()
        gc.disable()
        try:
            return list(map(partial(tuple.__new__, VideoInfo), zip(*columns)))
        finally:
            if paused:
                gc.enable()

    def split(self, dataset: str, split: str, role: str) -> list[VideoInfo]:
        """The ok videos with `role` in split `split` of `dataset`: how every stage opens a split.

        Raises:
            ValueError: the dataset or the split is not in the store (naming what it holds), or the list is empty.
        """
        if dataset not in self._names:
            raise ValueError(f"dataset {dataset!r} is not in store {str(self.path)!r}; it holds {list(self._names)}")
        if str(split) not in self.split_ids(dataset):
            raise ValueError(f"split {split!r} is not a split of {dataset!r} in store {str(self.path)!r}; "
                             f"valid splits: {list(self.split_ids(dataset))}")
        videos = self.videos(dataset, str(split), role)
        if not videos:
            raise ValueError(f"split {split!r} of {dataset!r} in store {str(self.path)!r} has no {role} videos")
        return videos

    def failures(self, dataset: str) -> list[dict[str, str]]:
        """Videos that are not ok: dicts with rel_path, status ("failed" | "too_short" | "missing"), reason."""
        t = self._table(dataset)
        rows = np.flatnonzero(t.cols["status"] != 0)
        rel = [b.decode() for b in t.rel[rows].tolist()]
        status = [STATUSES[s] for s in t.cols["status"][rows].tolist()]
        reason = t.values["reason"][t.cols["reason"][rows]].tolist()
        return [{"rel_path": r, "status": s, "reason": why} for r, s, why in zip(rel, status, reason)]

    def fingerprint(self, dataset: str) -> str:
        """sha256 (hex) of what a dataset's frames depend on: extraction settings, classes, split ids, the shard
        files (names and sizes) and every current row (all columns, and the shard it lives in).

        Re-extracting a video adds a shard and moves its row; other settings, or a shard added or removed,
        change it too; hashing the columns costs 0.07-0.18 s at 240,000 videos, no frame is read.
        """
        t = self._table(dataset)
        h = hashlib.sha256()
        head = {"attrs": {k: t.attrs.get(k) for k in ("settings", "classes", "split_ids")},
                "shards": [[s.name, s.bytes] for s in t.shards]}
        h.update(json.dumps(head, sort_keys=True).encode())
        h.update(b"\0".join(t.rel.tolist()))
        for name in (*NUMERIC, "status", "shard"):
            h.update(name.encode())
            h.update(np.ascontiguousarray(t.cols[name]).tobytes())
        for name in CODED:
            h.update(name.encode())
            h.update("\0".join(t.values[name][t.cols[name]].tolist()).encode())
        return h.hexdigest()

    # ---- frames ---------------------------------------------------------------------------------------
    def _open(self, dataset: str, shard: int) -> tuple[h5py.Dataset, h5py.Dataset]:
        """The `frames` and `offsets` datasets of one shard, opened in this process (never read whole)."""
        pid = os.getpid()
        if pid != self._pid:
            # A forked child must not share the parent's HDF5 handles: drop them (without closing them
            # from here, which would touch the parent's library state) and open its own.
            self._files, self._pid = OrderedDict(), pid
        k = (dataset, shard)
        entry = self._files.get(k)
        if entry is None:
            path = self._table(dataset).shards[shard].path
            try:
                f = h5py.File(path, "r")
                entry = (f, f["frames"], f["offsets"])
            except (OSError, KeyError) as e:
                raise ShardError(path, f"shard {str(path)!r} is damaged: {e}") from None
            self._files[k] = entry
            while len(self._files) > MAX_OPEN_SHARDS:
                self._files.popitem(last=False)[1][0].close()
        else:
            self._files.move_to_end(k)
        return entry[1], entry[2]

    def shard_layout(self, dataset: str, shard: int) -> tuple[np.ndarray, int]:
        """The whole offsets array and the byte size of the frames array of one shard (for whole-shard checks
        such as `v3s-prep verify`; clip reads never load it).

        Args:
            shard: a position in `shards(dataset)`.
        """
        frames, offsets = self._open(dataset, shard)
        try:
            return offsets[()], int(frames.shape[0])
        except OSError as e:
            path = self._table(dataset).shards[shard].path
            raise ShardError(path, f"shard {str(path)!r} is damaged: {e}") from None

    def _locate(self, key: str, indices: Iterable[int]) -> tuple[str, int, int, int, np.ndarray]:
        dataset, _, rel = key.partition("/")
        if dataset not in self._names or not rel:
            raise KeyError(f"video {key!r} is not an ok video of store {str(self.path)!r}")
        t = self._table(dataset)
        row = t.find_one(rel)
        if row < 0 or t.cols["status"][row] != 0:
            raise KeyError(f"video {key!r} is not an ok video of store {str(self.path)!r}")
        si, start, n = int(t.cols["shard"][row]), int(t.cols["frame_start"][row]), int(t.cols["num_frames"][row])
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)]
            raise IndexError(f"frame indices {bad.tolist()[:5]} out of range for {key!r} with {n} frames")
        return dataset, si, start, n, idx

    def read_jpegs(self, key: str, indices: Iterable[int]) -> list[bytes]:
        """The stored JPEG bytes of frames `indices` of video `key` (in the given order)."""
        dataset, si, start, n, idx = self._locate(key, indices)
        if not idx.size:
            return []
        frames, offsets_ds = self._open(dataset, si)
        uniq = np.unique(idx)
        # Offsets are read per clip, never per shard, so memory does not grow with the store: one small read of
        # the clip's frame range, or one per run of consecutive frames when that range is long.
        lo, hi = int(uniq[0]), int(uniq[-1])
        whole = hi - lo + 2 <= OFFSETS_SPAN
        blobs: dict[int, bytes] = {}
        try:
            offsets = offsets_ds[start + lo : start + hi + 2].tolist() if whole else None
            uniq = uniq.tolist()
            # Coalesce consecutive frames into one read: one read per run, never bytes of frames not asked for.
            run_start = 0
            for j in range(1, len(uniq) + 1):
                if j == len(uniq) or uniq[j] != uniq[j - 1] + 1:
                    a, b = uniq[run_start], uniq[j - 1]
                    offs = offsets[a - lo : b - lo + 2] if whole else offsets_ds[start + a : start + b + 2].tolist()
                    first = offs[0]
                    buf = frames[first : offs[-1]].tobytes()
                    for t in range(a, b + 1):
                        blobs[t] = buf[offs[t - a] - first : offs[t - a + 1] - first]
                    run_start = j
        except OSError as e:
            path = self._table(dataset).shards[si].path
            raise ShardError(path, f"shard {str(path)!r} is damaged: {e} (reading {key!r})") from None
        return [blobs[int(i)] for i in idx]

    def read_frames(self, key: str, indices: Iterable[int]) -> np.ndarray:
        """Decode frames of one video by index.

        Args:
            key: VideoInfo.key.
            indices: frame indices in [0, num_frames), any order, repeats allowed.
        Returns:
            uint8 (len(indices), H, W, 3) RGB.
        """
        dataset, si, start, n, idx = self._locate(key, indices)
        settings = self._table(dataset).attrs["settings"]
        h, w = int(settings["height"]), int(settings["width"])
        out = np.empty((len(idx), h, w, 3), dtype=np.uint8)
        decoded: dict[int, int] = {}
        for i, blob in enumerate(self.read_jpegs(key, idx)):
            t = int(idx[i])
            if t in decoded:
                out[i] = out[decoded[t]]
                continue
            rgb = decode_jpeg(blob)
            if rgb is None or rgb.shape != (h, w, 3):
                raise ValueError(f"frame {t} of {key!r} in store {str(self.path)!r} does not decode to {h}x{w}x3; "
                                 f"`v3s-prep verify {self.path}` lists every damaged video")
            out[i] = rgb
            decoded[t] = i
        return out

    def read_clip_torch(self, key: str, indices: Iterable[int]):
        """read_frames as a torch uint8 tensor (T, H, W, 3)."""
        import torch

        return torch.from_numpy(self.read_frames(key, indices))

    def close(self) -> None:
        if self._pid == os.getpid():
            for f, _, _ in self._files.values():
                f.close()
        self._files = OrderedDict()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        # Tables are rebuilt in the receiving process (from the index: tens of ms) from the same shards.
        state["_files"], state["_tables"], state["_pid"] = OrderedDict(), {}, -1
        return state

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, datasets={list(self._names)})"

