"""Video retrieval with the peers' protocol (VCOP / PRP / VCP; paper section 4.4, Tables 4 and 5).

Each video's feature is the mean of its 10 linspace clips' features (conv5 after MaxPool3d(1,2,2), flattened,
by default; or the pooled vector); every test video of the split queries every train video by cosine
similarity; a query is a hit at k when any of its k nearest train videos shares its label. No video is dropped.
The metric is `v3s.evaluate.retrieval`'s; this module loads the model (a pretrain or finetune checkpoint, or a
random initialisation for the baseline rows), extracts (cached), and writes the JSON, a top-k curve and a grid of
example queries beside their nearest neighbours.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v3s.shared.atomic import write_json

from .features import (ClipSpec, cached_features, clip_geometry, extraction_options, open_dataset, output_dirs,
                       resolve_model, split_videos, tap_forward)
from .plots import HIT, MISS, Thumb, retrieval_grid_png, topk_curve_png
from .retrieval import PEER_KS, nearest_neighbours, retrieval_topk

LAYERS = ("conv5", "pool")


@dataclass(frozen=True)
class RetrievalConfig:
    """Options of `v3s-eval retrieval`.

    Attributes:
        store, dataset, split: test videos query train videos of this split.
        ckpt: a pretrain or finetune checkpoint; or random=True with backbone / width / seed.
        layer: "conv5" (the peers' feature) or "pool" (the global-average-pooled vector).
        ks: the k values; those larger than the gallery are dropped with a note.
        clips: clips per video (linspace centres).
        clip_len, clip_size, frame_step: clip geometry (default: the checkpoint's; random: 16, 112 and 1).
        examples, neighbours: rows and columns of the example grid.
        batch_size, workers, device, out, cache_dir, use_cache, progress: see RecognitionConfig.
    """

    store: str
    dataset: str
    split: str = "1"
    ckpt: str | None = None
    random: bool = False
    backbone: str | None = None
    width: float | None = None
    seed: int = 0
    input_mode: str = "rgb"
    layer: str = "conv5"
    ks: tuple[int, ...] = PEER_KS
    clips: int = 10
    clip_len: int | None = None
    clip_size: int | None = None
    frame_step: int | None = None
    examples: int = 8
    neighbours: int = 5
    batch_size: int = 16
    workers: int | None = None
    device: str = "auto"
    out: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    progress: bool = True


def run_retrieval(cfg: RetrievalConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate retrieval; write results.json, topk.png and examples.png to the out folder.

    Args:
        cfg: the options.
        log: receives one-line progress messages.

    Returns:
        the results dict (also written as results.json).
    """
    if cfg.layer not in LAYERS:
        raise ValueError(f"layer {cfg.layer!r} is not one of {LAYERS}")
    if not cfg.ks or any(int(k) < 1 for k in cfg.ks):
        raise ValueError(f"ks must be integers >= 1, got {list(cfg.ks)}")
    loaded = resolve_model(cfg)
    store = open_dataset(cfg.store, cfg.dataset, cfg.split)
    gallery_videos = split_videos(store, cfg.dataset, cfg.split, "train")
    query_videos = split_videos(store, cfg.dataset, cfg.split, "test")
    spec = ClipSpec("linspace", n_clips=cfg.clips, **clip_geometry(cfg, loaded))
    cache_dir, default_out = output_dirs(cfg, loaded)
    forward = tap_forward(loaded.backbone, [cfg.layer])
    common = extraction_options(cfg, loaded, log, cache_dir=cache_dir)
    feats = {}
    for role, videos in (("train", gallery_videos), ("test", query_videos)):
        feats[role] = cached_features(loaded, forward, [cfg.layer], store, cfg.dataset, videos, spec,
                                      what={"task": "retrieval", "split": str(cfg.split), "role": role}, **common)

    gallery, queries = feats["train"], feats["test"]
    n_gallery = len(gallery_videos)
    ks = sorted({int(k) for k in cfg.ks})
    kept = [k for k in ks if k <= n_gallery]
    dropped = [k for k in ks if k > n_gallery]
    notes = [f"k={k} dropped: larger than the gallery ({n_gallery} train videos)" for k in dropped]
    if not kept:
        raise ValueError(f"every k in {ks} is larger than the gallery ({n_gallery} train videos)")
    topk = retrieval_topk(queries.video[cfg.layer], queries.labels, gallery.video[cfg.layer], gallery.labels, kept)

    name = f"retrieval-{cfg.dataset}-split{cfg.split}-{cfg.layer}"
    out = Path(cfg.out) if cfg.out else default_out / name
    out.mkdir(parents=True, exist_ok=True)
    label = f"{loaded.config['backbone']} ({'random' if cfg.random else loaded.kind.replace('v3s-', '')})"
    files = {
        "results": out / "results.json",
        "topk": topk_curve_png({label: topk}, out / "topk.png",
                               title=f"{cfg.dataset} split {cfg.split}, {cfg.layer} features"),
        "examples": _examples_png(store, queries, gallery, query_videos, gallery_videos, cfg, out / "examples.png"),
    }
    results = {
        "task": "retrieval",
        "model": loaded.describe(),
        "dataset": cfg.dataset,
        "split": str(cfg.split),
        "layer": cfg.layer,
        "feature_dim": int(queries.video[cfg.layer].shape[1]),
        "n_queries": len(query_videos),
        "n_gallery": n_gallery,
        "protocol": {**spec.key(), "similarity": "cosine", "queries": "test", "gallery": "train"},
        "topk": {str(k): v for k, v in topk.items()},
        "dropped_ks": dropped,
        "notes": notes,
        "features": {role: {"cache_hit": f.cache_hit, "path": f.cache_path} for role, f in feats.items()},
        "files": files,
        "config": asdict(cfg),
    }
    write_json(files["results"], results)
    return results


def _examples_png(store, queries, gallery, query_videos, gallery_videos, cfg: RetrievalConfig, path: Path) -> Path:
    """Evenly spaced test queries beside their nearest train videos; thumbnails are each video's middle frame."""
    n_q, n_g = len(query_videos), len(gallery_videos)
    picks = np.unique(np.linspace(0, n_q - 1, min(cfg.examples, n_q)).round().astype(int))
    k = min(cfg.neighbours, n_g)
    idx, sims = nearest_neighbours(queries.video[cfg.layer][picks], gallery.video[cfg.layer], k)

    def middle(v) -> np.ndarray:
        return store.read_frames(v.key, [v.num_frames // 2])[0]

    rows = []
    for r, q in enumerate(picks):
        qv = query_videos[q]
        neighbours = []
        for j, s in zip(idx[r], sims[r]):
            gv = gallery_videos[j]
            hit = gv.label == qv.label
            neighbours.append(Thumb(middle(gv), f"{gv.class_name}\ncos {s:.3f}", HIT if hit else MISS))
        rows.append((Thumb(middle(qv), f"query: {qv.class_name}"), neighbours))
    return retrieval_grid_png(rows, path, title=f"{cfg.dataset} split {cfg.split}: test queries (left) and their "
                                                f"{k} nearest train videos ({cfg.layer})")


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    ks = list(results["topk"])
    lines = [
        f"retrieval  {results['dataset']} split {results['split']}: {results['n_queries']} test queries, "
        f"{results['n_gallery']} train videos, {results['layer']} features ({results['feature_dim']}-d)",
        "  " + "".join(f"{'top' + k:>8}" for k in ks),
        "  " + "".join(f"{100 * results['topk'][k]:8.2f}" for k in ks),
    ]
    lines += [f"  note: {n}" for n in results["notes"]]
    lines += [f"  {name}: {path}" for name, path in results["files"].items()]
    return "\n".join(lines)
