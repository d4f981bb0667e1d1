"""One feature per video, written to an .npz: the features of a store's dataset or of a folder of raw videos.

A video's feature is retrieval's (the mean of its `--clips` linspace clips, one tap; cached like retrieval's).
The file holds `ids` (N,) str: the store key, or the path relative to --root; `labels` (N,) int64: the store's
label, -1 for a folder's videos; `features` (N, D) float32; `meta`: a JSON string of the model, tap, clips and
source. It is written atomically and never over an existing file without --force. A folder's video that does not
decode is skipped and listed in the results (`failed`); the command then exits 1 after writing the others.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from v3s.shared.atomic import atomic_write, jsonable
from v3s.shared.paths import check_path
from v3s.shared.runtime import default_workers

from .config import EmbedConfig
from .folder import FOLDER_DATASET, VideoFolder
from .frozen import check_layer, video_features, video_spec
from .resolve import Extractor, describe_model, resolve_model, resolve_store, trained_frame_size


def _check_out(out: str, force: bool) -> Path:
    """--out as a path that may be written: not a folder, not an existing file unless --force, its folder writable."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise ValueError(f"--out {out!r} is a folder; give the .npz file to write, e.g. {path / 'features.npz'}")
    if path.exists() and not force:
        raise ValueError(f"--out {out!r} already exists; pass --force to overwrite it")
    check_path(path.parent, "out-dir", "the folder of --out")
    return path


def run_embed(cfg: EmbedConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write one feature per video to cfg.out.

    Args:
        cfg: the options.
        log: receives one-line progress messages (and each video that does not decode).
    Returns:
        the results dict: what was written, and `failed`, the videos skipped.
    """
    check_layer(cfg.layer)
    if cfg.root and (cfg.store or cfg.dataset):
        raise ValueError("give either --root DIR (a folder of videos) or --store STORE --dataset NAME, not both")
    if cfg.size is not None and not cfg.root:
        raise ValueError("--size applies with --root only: a store's frames keep the size they were extracted at")
    out = _check_out(cfg.out, cfg.force)
    cfg, loaded = resolve_model(cfg, log=log)
    workers = default_workers() if cfg.workers is None else cfg.workers
    if cfg.root:
        root = check_path(cfg.root, "dir", "--root")
        height, width = trained_frame_size(loaded, cfg.size)
        if log:
            log(f"embed: decoding the videos below {root} at {height}x{width}")
        source = VideoFolder(root, height, width, workers=max(1, workers), log=log)
        dataset, videos, failed = FOLDER_DATASET, source.videos(FOLDER_DATASET), source.failures()
        if not videos:
            raise ValueError(f"no video below --root {cfg.root!r} decodes ({len(failed)} tried): "
                             + "; ".join(f"{f['video']}: {f['reason']}" for f in failed[:5]))
        ids, where = [v.rel_path for v in videos], {"root": str(root), "size": [height, width]}
    else:
        cfg, source = resolve_store(cfg, loaded, log)
        dataset, failed = cfg.dataset, []
        videos = source.videos(dataset)
        if not videos:
            raise ValueError(f"dataset {dataset!r} in store {cfg.store} has no ok videos")
        ids, where = [v.key for v in videos], {"store": str(cfg.store), "dataset": dataset}
    feats = video_features(cfg, loaded, Extractor.for_model(cfg, loaded, log), source, dataset, videos, "all")
    x = feats.video[cfg.layer].astype(np.float32)
    meta = {"model": describe_model(loaded), "layer": cfg.layer, "clips": video_spec(cfg, loaded).key(),
            "clip_mean": True, "source": where}
    arrays = {"ids": np.array(ids, dtype=str), "labels": feats.labels.astype(np.int64), "features": x,
              "meta": np.array(json.dumps(jsonable(meta), sort_keys=True))}
    atomic_write(out, lambda f: np.savez(f, **arrays))
    return {"task": "embed", **meta, "n_videos": len(ids), "feature_dim": int(x.shape[1]), "out": str(out),
            "failed": failed, "features": {"cache_hit": feats.cache_hit, "path": feats.cache_path},
            "config": cfg.to_dict()}


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    src = results["source"]
    where = f"the folder {src['root']} (decoded at {src['size'][0]}x{src['size'][1]})" if "root" in src else \
        f"{src['dataset']} in {src['store']}"
    n = results["n_videos"]
    lines = [f"embed  {n} video{'s' if n != 1 else ''} of {where}: {results['layer']} features "
             f"({results['feature_dim']}-d), mean of {results['clips']['n_clips']} clips",
             f"  out: {results['out']}"]
    lines += [f"  failed: {f['video']}: {f['reason']}" for f in results["failed"]]
    return "\n".join(lines)
