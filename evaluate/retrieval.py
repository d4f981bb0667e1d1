"""Video retrieval with the peers' protocol (VCOP / PRP / VCP; paper section 4.4, Tables 4 and 5).

Each video's feature is the mean of its 10 linspace clips' features (conv5 after MaxPool3d(1,2,2), flattened,
by default; or the pooled vector); every test video of the split queries every train video by cosine
similarity; a query is a hit at k when any of its k nearest train videos shares its label. No video is dropped.
The metric is `v3s.shared.metrics.retrieval`'s; this module loads the model (a pretrain or finetune checkpoint, or a
random initialisation for the baseline rows), extracts (cached), and writes the JSON, a top-k curve and a grid of
example queries beside their nearest neighbours.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .config import RetrievalConfig
from .frozen import ks_within, model_label, split_features
from v3s.shared.metrics.retrieval import nearest_neighbours, retrieval_topk
from .plots import HIT, MISS, Thumb, retrieval_grid_png, topk_curve_png
from .results import trailer, write_results


def run_retrieval(cfg: RetrievalConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate retrieval; write results.json, topk.png and examples.png to the out folder.

    Args:
        cfg: the options.
        log: receives one-line progress messages.
    Returns:
        the results dict (also written as results.json).
    """
    if not cfg.ks or any(int(k) < 1 for k in cfg.ks):
        raise ValueError(f"ks must be integers >= 1, got {list(cfg.ks)}")
    cfg, s = split_features(cfg, "retrieval", log)
    gallery, queries = s.train_feats, s.test_feats
    n_gallery = len(s.train)
    kept, dropped, notes = ks_within(cfg.ks, n_gallery)
    topk = retrieval_topk(queries.video[cfg.layer], queries.labels, gallery.video[cfg.layer], gallery.labels, kept)

    files = {
        "topk": topk_curve_png({model_label(s.loaded): topk}, s.out / "topk.png",
                               title=f"{cfg.dataset} split {cfg.split}, {cfg.layer} features"),
        "examples": _examples_png(s.store, queries, gallery, s.test, s.train, cfg, s.out / "examples.png"),
    }
    return write_results(s.out, {
        **s.summary(cfg, "retrieval"),
        "n_queries": len(s.test),
        "n_gallery": n_gallery,
        "protocol": {**s.spec.key(), "similarity": "cosine", "queries": "test", "gallery": "train"},
        "topk": {str(k): v for k, v in topk.items()},
        "dropped_ks": dropped,
        "notes": notes,
        "features": s.cache_info(),
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
