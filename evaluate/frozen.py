"""Frozen per-video features: what retrieval, kNN, linear evaluation and `embed` share.

A video's feature is one tap of the backbone (conv5 after MaxPool3d(1,2,2), flattened, or the pooled vector)
averaged over its `--clips` linspace clips, read the way the checkpoint was trained (clip length, crop, frame
step). Every command keys the feature cache alike, so one extraction serves them all when tap and clips agree.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v3s.data_manifest import video_group
from v3s.shared.checkpoint import LoadedModel
from v3s.shared.clips import FrameSource
from v3s.shared.store import Store, VideoInfo

from .config import LAYERS
from .features import ClipSpec, Features, tap_forward
from .resolve import Extractor, clip_geometry, describe_model, output_dir, resolve_model, resolve_store

# The cache key's name for this protocol. Retrieval was its first user; the name stays so that cache entries
# written before kNN, linear evaluation and embed existed keep their keys.
PROTOCOL = "retrieval"
Log = Callable[[str], None]


def check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"layer {layer!r} is not one of {LAYERS}")


def video_spec(cfg: Any, loaded: LoadedModel) -> ClipSpec:
    """`--clips` linspace clips, with the clip length, crop and frame step of the options or the network."""
    return ClipSpec("linspace", n_clips=cfg.clips, **clip_geometry(cfg, loaded))


def video_features(cfg: Any, loaded: LoadedModel, extractor: Extractor, source: FrameSource | Store, dataset: str,
                   videos: Sequence[VideoInfo], role: str, split: str | None = None) -> Features:
    """One `cfg.layer` feature per video (cached), keyed as every command that shares this protocol keys it.

    Args:
        cfg: options with `layer` and `clips` (and the clip geometry).
        loaded: the model (already on the extractor's device).
        extractor: device, batch, workers and cache.
        source, dataset, videos: what to read.
        role: "train" / "test" of a split, or "all".
        split: the split id (None for videos outside a split).
    """
    what = {"task": PROTOCOL, "role": role, **({"split": str(split)} if split is not None else {})}
    return extractor.features(loaded, tap_forward(loaded.backbone, [cfg.layer]), [cfg.layer], source, dataset,
                              videos, video_spec(cfg, loaded), what=what)


@dataclass
class SplitFeatures:
    """A split's train and test videos with their features, and where the evaluation writes.

    Attributes:
        loaded: the model. store: the opened store. out: the results folder (checked writable).
        train, test: the videos of each list. train_feats, test_feats: their features (rows in that order).
        spec: the clips read.
    """

    loaded: LoadedModel
    store: Store
    out: Path
    train: list[VideoInfo]
    test: list[VideoInfo]
    train_feats: Features
    test_feats: Features
    spec: ClipSpec

    def summary(self, cfg: Any, task: str) -> dict[str, Any]:
        """What every frozen-feature results.json opens with."""
        return {"task": task, "model": describe_model(self.loaded), "dataset": cfg.dataset, "split": str(cfg.split),
                "layer": cfg.layer, "feature_dim": int(self.test_feats.video[cfg.layer].shape[1])}

    def cache_info(self) -> dict[str, Any]:
        return {role: {"cache_hit": f.cache_hit, "path": f.cache_path}
                for role, f in (("train", self.train_feats), ("test", self.test_feats))}


def split_features(cfg: Any, task: str, log: Log | None = None,
                   check: Callable[[Store, list[VideoInfo], list[VideoInfo]], Any] | None = None
                   ) -> tuple[Any, SplitFeatures]:
    """(cfg with its defaults filled in, the split's features): model, store and results folder are resolved
    (the folder checked before any extraction), then both lists are extracted or read from the cache.

    Args:
        cfg: a config with the `ModelSource`, `StoreSplit`, `ClipGeometry` and `Extraction` options, `layer`, `clips`.
        task: names the default results folder, <task>-<dataset>-split<split>-<layer>.
        log: told each choice and cache hit.
        check: called with (store, train videos, test videos) before any extraction, to refuse lists the
            evaluation cannot use (it raises ValueError) before the model runs.
    """
    check_layer(cfg.layer)
    cfg, loaded = resolve_model(cfg, log=log)
    cfg, store = resolve_store(cfg, loaded, log)
    out = output_dir(cfg, loaded, f"{task}-{cfg.dataset}-split{cfg.split}-{cfg.layer}")
    train = store.split(cfg.dataset, cfg.split, "train")
    test = store.split(cfg.dataset, cfg.split, "test")
    if check is not None:
        check(store, train, test)
    extractor = Extractor.for_model(cfg, loaded, log)
    feats = {role: video_features(cfg, loaded, extractor, store, cfg.dataset, videos, role, cfg.split)
             for role, videos in (("train", train), ("test", test))}
    return cfg, SplitFeatures(loaded, store, out, train, test, feats["train"], feats["test"], video_spec(cfg, loaded))


def video_groups(videos: Sequence[VideoInfo]) -> tuple[np.ndarray, str]:
    """((N,) group id of each video, what the groups are): UCF101's gXX where the file name carries one, else the
    video alone (with no gXX at all, the group-aware protocols become plain stratified / leave-one-out ones)."""
    found = [video_group(v.rel_path) for v in videos]
    n = sum(g is not None for g in found)
    what = ("recording group (gXX in the file name)" if n == len(videos) else
            "each video alone (the file names carry no gXX group)" if n == 0 else
            f"recording group (gXX) for {n} videos, each of the other {len(videos) - n} alone")
    return np.array([g if g is not None else v.key for g, v in zip(found, videos)]), what


def ks_within(ks: Sequence[int], n_gallery: int) -> tuple[list[int], list[int], list[str]]:
    """(the ks <= n_gallery, sorted; those dropped; a note per dropped k). ValueError when none is left.

    A k larger than the gallery is dropped, not clamped: a clamped top-50 on a 30-video gallery is another metric.
    """
    ks = sorted({int(k) for k in ks})
    kept, dropped = [k for k in ks if k <= n_gallery], [k for k in ks if k > n_gallery]
    if not kept:
        raise ValueError(f"every k in {ks} is larger than the gallery ({n_gallery} train videos)")
    return kept, dropped, [f"k={k} dropped: larger than the gallery ({n_gallery} train videos)" for k in dropped]


def model_label(loaded: LoadedModel) -> str:
    """How plots name the model: "r3d (pretrain)"."""
    return f"{loaded.config.backbone} ({loaded.kind.replace('v3s-', '')})"
