"""Writing files so that a reader, or a run killed mid-write, sees the old file or the new one, never a torn one.

Every file this project writes that someone may read while it changes goes through `atomic_write` (or
`atomic_write_path`, for writers such as h5py that need a file name): checkpoints, the store's `store.json`,
shards, shard records and indexes, the feature cache, results.json, run configs.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder, so that a rename inside it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_path(path: str | os.PathLike, fill: Callable[[Path], Any], sync_dir: bool = False) -> Path:
    """Let `fill` create a temp file by name in `path`'s folder, fsync it, then rename it over `path`.

    For writers that need a file name rather than an open file (h5py). On any error (or KeyboardInterrupt) the
    temp file is removed and `path` keeps its old content. Temp files are named `.<name>.<random>.tmp`; one left
    by a process killed with kill -9 is never mistaken for `path`.

    Args:
        path: the file to write; its folder must exist.
        fill: called with the temp file's path (an empty file that it may truncate), writes the whole content.
        sync_dir: also fsync the folder, so that the rename itself survives a crash.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fill(Path(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any], sync_dir: bool = False) -> Path:
    """Fill a temp file in `path`'s folder with `write`, flush and fsync it, then rename it over `path`.

    On any error (or KeyboardInterrupt) the temp file is removed and `path` keeps its old content.

    Args:
        path: the file to write; its folder must exist.
        write: called with the open binary temp file, writes the whole content.
        sync_dir: also fsync the folder, so that the rename itself survives a crash.
    """
    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_write_path(path, fill, sync_dir)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """`atomic_write` of a bytes object, creating the parent folders first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`write_bytes` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


def jsonable(x: Any) -> Any:
    """Numbers and containers as strict JSON values: numpy scalars and arrays to Python, NaN / inf to None, paths
    and other objects to str."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if x is None or isinstance(x, (int, str)):
        return x
    return str(x)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write strict JSON (see `jsonable`), indented, atomically."""
    return write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
