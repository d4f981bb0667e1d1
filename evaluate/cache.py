"""The feature cache that makes re-evaluation take seconds: content-addressed .npz files of `Features`.

Cache: `CKPT_DIR/features/<key>.npz`, where <key> is a sha256 of everything that changes the numbers: the
checkpoint's content hash (plus backbone, width, input mode and key naming for a peer's weights; backbone, width,
seed and torch release for a random-init model), the store's content fingerprint, dataset, the exact list of
videos, the clip spec (clip count or stride, clip length, crop), the taps and the precision. Batch size, worker count and device do not change the numbers and are not part of the key (bf16
and fp32 do, so a GPU run and a CPU run keep separate entries). The checkpoint hash is computed once per file
version and remembered in `features/sha256.json`, keyed by path, size, mtime and inode.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v3s.shared.atomic import atomic_write, write_bytes
from v3s.shared.checkpoint import LoadedModel
from v3s.shared.runtime import amp_dtype, precision_name
from v3s.shared.store import Store, VideoInfo

from .features import ClipSpec, Features, extract_features

CACHE_VERSION = 1
HASH_MEMO_FILE = "sha256.json"

_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino


def file_sha256(path: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """sha256 of a file's content, computed once per file version (path, size, mtime, inode).

    Args:
        path: the file (a checkpoint).
        memo_dir: a folder whose `sha256.json` remembers hashes across processes (None: this process only).

    Returns:
        64 hex digits.
    """
    path = Path(path)
    key = _stat_key(path)
    if key in _SHA_MEMO:
        return _SHA_MEMO[key]
    memo_file = Path(memo_dir) / HASH_MEMO_FILE if memo_dir is not None else None
    memo: dict[str, Any] = {}
    if memo_file is not None and memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except ValueError:
            memo = {}  # a damaged memo only costs a re-hash
        entry = memo.get(path.name)
        if isinstance(entry, dict) and [entry.get(k) for k in ("size", "mtime_ns", "inode")] == list(key[1:]):
            _SHA_MEMO[key] = entry["sha256"]
            return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _SHA_MEMO[key] = digest
    if memo_file is not None:
        memo[path.name] = {"size": key[1], "mtime_ns": key[2], "inode": key[3], "sha256": digest}
        try:
            write_bytes(memo_file, (json.dumps(memo, indent=1, sort_keys=True) + "\n").encode())
        except OSError:
            pass  # a read-only checkpoint folder only costs a re-hash next time
    return digest


def store_fingerprint(store: Store, dataset: str) -> str:
    """What a dataset's frames depend on (extraction settings, classes, every current row, shard files), as a
    sha256 (`Store.fingerprint`): a re-extracted video or another size gives a new cache key without hashing
    gigabytes of JPEGs."""
    return store.fingerprint(dataset)


def source_fingerprint(source: Any, dataset: str) -> str:
    """`store_fingerprint` of a store; a frame source that is not a store (a decoded folder) gives its own."""
    own = getattr(source, "fingerprint", None)
    return own(dataset) if callable(own) else store_fingerprint(source, dataset)


def model_identity(loaded: LoadedModel) -> dict[str, Any]:
    """What the cache keys a model by: its checkpoint's content hash (for a peer's weights, also the network they
    were read into and the key naming), or how a random initialisation is rebuilt (its init scheme only when it is
    not "he", so that entries written before the option existed keep their keys)."""
    if loaded.path is not None:
        sha = {"sha256": file_sha256(loaded.path, memo_dir=default_cache_dir(loaded))}
        if loaded.kind == "peer":
            c = loaded.config
            sha["peer"] = {"backbone": c.backbone, "width": c.width, "input_mode": c.input_mode,
                           "key_format": c.key_format}
        return sha
    init = loaded.config.to_dict()
    if init.get("init_scheme") == "he":
        del init["init_scheme"]
    return {"random": {**init, "torch": torch.__version__.split("+")[0]}}


def default_cache_dir(loaded: LoadedModel) -> Path | None:
    """CKPT_DIR/features beside a checkpoint; None for a random initialisation (it has no folder)."""
    return loaded.path.resolve().parent / "features" if loaded.path is not None else None


def cache_key(parts: Mapping[str, Any]) -> str:
    """The cache file stem for a protocol description (a JSON-able mapping)."""
    blob = json.dumps({"cache_version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save_features(path: Path, feats: Features, meta: Mapping[str, Any]) -> None:
    """Write Features to an .npz atomically (a temp file in the same folder, then a rename).

    Layout: keys (N,) str, labels (N,), video/<tap> (N, D), clips/<tap> (N_clips, D), clip_video (N_clips,),
    meta (a JSON string describing the protocol).
    """
    arrays: dict[str, np.ndarray] = {"keys": np.array(feats.keys, dtype=str), "labels": feats.labels,
                                     "meta": np.array(json.dumps(dict(meta), sort_keys=True, default=str))}
    arrays.update({f"video/{t}": a for t, a in feats.video.items()})
    arrays.update({f"clips/{t}": a for t, a in feats.clips.items()})
    if feats.clip_video is not None:
        arrays["clip_video"] = feats.clip_video
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_features(path: Path) -> Features:
    """Read an .npz written by `save_features`."""
    with np.load(path, allow_pickle=False) as z:
        return Features(
            keys=z["keys"].tolist(),
            labels=z["labels"],
            video={k[len("video/"):]: z[k] for k in z.files if k.startswith("video/")},
            clips={k[len("clips/"):]: z[k] for k in z.files if k.startswith("clips/")},
            clip_video=z["clip_video"] if "clip_video" in z.files else None,
            cache_path=path,
            cache_hit=True,
        )


def cached_features(
    loaded: LoadedModel,
    forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    outputs: Sequence[str],
    store: Store,
    dataset: str,
    videos: Sequence[VideoInfo],
    spec: ClipSpec,
    *,
    what: Mapping[str, Any],
    clip_taps: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Features:
    """Features from the cache when this exact protocol was run before on these weights, else extract and save.

    Args:
        loaded: the model and its identity (its .model must already be on `device`).
        forward: see `extract_features`.
        outputs: the names `forward` returns (part of the key).
        store, dataset, videos, spec: what to read (the key holds the store fingerprint and every video key).
        what: protocol description added to the key and the file's meta (e.g. {"split": "1", "role": "test"}).
        clip_taps: outputs kept per clip.
        cache_dir: folder of the .npz files (default: CKPT_DIR/features); None with a random model: no cache.
        use_cache: False to always extract (and not write).
        device, batch_size, workers, progress: see `extract_features`.
        log: called with one line saying whether the cache was hit, and where.
    """
    device = torch.device(device)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(loaded)
    parts = {
        "model": model_identity(loaded), "store": source_fingerprint(store, dataset), "dataset": dataset,
        "videos": hashlib.sha256("\n".join(v.key for v in videos).encode()).hexdigest(), "n_videos": len(videos),
        "clips": spec.key(), "outputs": sorted(outputs), "clip_taps": sorted(clip_taps),
        "precision": precision_name(amp_dtype("auto", device)), **dict(what),
    }
    path = folder / f"{cache_key(parts)}.npz" if (folder is not None and use_cache) else None
    if path is not None and path.is_file():
        try:
            feats = load_features(path)
        except (OSError, ValueError, KeyError) as e:  # a damaged cache file is rebuilt, not trusted
            if log:
                log(f"features: cache file {path} unreadable ({e}); extracting again")
        else:
            if feats.keys == [v.key for v in videos]:
                if log:
                    log(f"features: cache hit {path}")
                return feats
    feats = extract_features(forward, store, videos, spec, clip_taps=clip_taps, device=device,
                             batch_size=batch_size, workers=workers, progress=progress,
                             desc=str(what.get("role", "features")))
    if path is not None:
        try:
            save_features(path, feats, {**parts, "store_path": str(store.path)})
        except OSError as e:  # e.g. a read-only checkpoint folder: the results are still computed
            if log:
                log(f"features: cannot write the cache file {path} ({e}); pass --cache-dir to cache elsewhere")
        else:
            feats.cache_path = path
            if log:
                log(f"features: extracted {len(videos)} videos, cached at {path}")
    elif log:
        log(f"features: extracted {len(videos)} videos (not cached)")
    return feats


