"""Video retrieval with the peers' protocol (VCOP / PRP / VCP; paper section 4.4, Tables 4 and 5).

Each video's feature is the mean of its 10 linspace clips' features (conv5 after MaxPool3d(1,2,2), flattened,
by default; or the pooled vector); every test video of the split queries every train video by cosine
similarity; a query is a hit at k when any of its k nearest train videos shares its label. No video is dropped.
The metric is `v3s.evaluate.metrics.retrieval`'s; this module loads the model (a pretrain or finetune checkpoint, or a
random initialisation for the baseline rows), extracts (cached), and writes the JSON, a top-k curve and a grid of
example queries beside their nearest neighbours.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .config import LAYERS, RetrievalConfig
from .features import ClipSpec, tap_forward
from .metrics.retrieval import nearest_neighbours, retrieval_topk
from .plots import HIT, MISS, Thumb, retrieval_grid_png, topk_curve_png
from .resolve import Extractor, clip_geometry, describe_model, output_dir, resolve_model, resolve_store
from .results import trailer, write_results


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
    cfg, loaded = resolve_model(cfg, log=log)
    cfg, store = resolve_store(cfg, loaded, log)
    out = output_dir(cfg, loaded, f"retrieval-{cfg.dataset}-split{cfg.split}-{cfg.layer}")
    gallery_videos = store.split(cfg.dataset, cfg.split, "train")
    query_videos = store.split(cfg.dataset, cfg.split, "test")
    spec = ClipSpec("linspace", n_clips=cfg.clips, **clip_geometry(cfg, loaded))
    forward = tap_forward(loaded.backbone, [cfg.layer])
    extractor = Extractor.for_model(cfg, loaded, log)
    feats = {role: extractor.features(loaded, forward, [cfg.layer], store, cfg.dataset, videos, spec,
                                      what={"task": "retrieval", "split": str(cfg.split), "role": role})
             for role, videos in (("train", gallery_videos), ("test", query_videos))}

    gallery, queries = feats["train"], feats["test"]
    n_gallery = len(gallery_videos)
    ks = sorted({int(k) for k in cfg.ks})
    kept = [k for k in ks if k <= n_gallery]
    dropped = [k for k in ks if k > n_gallery]
    notes = [f"k={k} dropped: larger than the gallery ({n_gallery} train videos)" for k in dropped]
    if not kept:
        raise ValueError(f"every k in {ks} is larger than the gallery ({n_gallery} train videos)")
    topk = retrieval_topk(queries.video[cfg.layer], queries.labels, gallery.video[cfg.layer], gallery.labels, kept)

    label = f"{loaded.config.backbone} ({loaded.kind.replace('v3s-', '')})"
    files = {
        "topk": topk_curve_png({label: topk}, out / "topk.png",
                               title=f"{cfg.dataset} split {cfg.split}, {cfg.layer} features"),
        "examples": _examples_png(store, queries, gallery, query_videos, gallery_videos, cfg, out / "examples.png"),
    }
    return write_results(out, {
        "task": "retrieval",
        "model": describe_model(loaded),
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
        "config": cfg.to_dict(),
    }, files)


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
    return "\n".join(lines + trailer(results))
