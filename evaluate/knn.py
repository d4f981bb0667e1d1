"""Weighted kNN classification on frozen features (Wu et al. 2018; DINO's protocol), test videos by train videos.

Each video's feature is retrieval's (the mean of its `--clips` linspace clips, one tap; the same cache entries);
each test video's k most cosine-similar train videos vote with weight exp(cosine / T). Every k of `--ks` is
reported; the headline "top1" / "top5" are those of the k that leave-one-group-out kNN on the train list picks,
so no number is chosen on the test list. The metric is `v3s.shared.metrics.knn`'s; this module resolves the
model and store, extracts (cached), and writes results.json and a curve of accuracy against k.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import KnnConfig
from .frozen import ks_within, model_label, split_features, video_groups
from v3s.shared.metrics.knn import check_temperature, choosable_ks, knn_accuracy, select_k
from .plots import topk_curve_png
from .results import trailer, write_results


def run_knn(cfg: KnnConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate kNN classification; write results.json and knn.png to the out folder.

    Args:
        cfg: the options.
        log: receives one-line progress messages.
    Returns:
        the results dict (also written as results.json).
    """
    temperature = check_temperature(cfg.temperature)
    if not cfg.ks or any(int(k) < 1 for k in cfg.ks):
        raise ValueError(f"--ks must be integers >= 1, got {list(cfg.ks)}")

    def check(store, train, test) -> None:  # before the model runs: some k must fit the gallery and the selection
        choosable_ks(ks_within(cfg.ks, len(train))[0], video_groups(train)[0])

    cfg, s = split_features(cfg, "knn", log, check)
    classes = s.store.classes(cfg.dataset)
    ks, dropped, notes = ks_within(cfg.ks, len(s.train))
    train_x, test_x = s.train_feats.video[cfg.layer], s.test_feats.video[cfg.layer]
    train_y, test_y = s.train_feats.labels, s.test_feats.labels
    groups, grouped_by = video_groups(s.train)
    best, loo, unfit = select_k(train_x, train_y, groups, len(classes), ks, temperature)
    notes += [f"k={k} cannot be chosen on the train list: some train video has fewer than {k} train videos outside "
              f"its group; its test accuracy is reported, not used" for k in unfit]
    acc = knn_accuracy(test_x, test_y, train_x, train_y, len(classes), ks, temperature)
    if len(classes) < 5:
        notes.append(f"top-5 is null: {len(classes)} classes (top-5 of fewer than 5 classes says nothing)")

    curves = {"test top-1": {k: a["top1"] for k, a in acc.items()}}
    if len(classes) >= 5:
        curves["test top-5"] = {k: a["top5"] for k, a in acc.items()}
    curves["train, leave-one-group-out top-1"] = loo
    files = {"knn": topk_curve_png(curves, s.out / "knn.png", xlabel="k (voting train videos)",
                                   ylabel="accuracy (%)",
                                   title=f"kNN, {model_label(s.loaded)}: {cfg.dataset} split {cfg.split}, "
                                         f"{cfg.layer}, T={temperature:g}, chosen k={best}")}
    return write_results(s.out, {
        **s.summary(cfg, "knn"),
        "n_train": len(s.train),
        "n_test": len(s.test),
        "n_classes": len(classes),
        "protocol": {**s.spec.key(), "similarity": "cosine", "weights": "exp(cosine / T)", "temperature": temperature,
                     "queries": "test", "gallery": "train", "ties": "lower class index",
                     "k_selection": "leave-one-group-out top-1 on the train list, ties to the smaller k",
                     "groups": grouped_by},
        "k": best,
        "top1": acc[best]["top1"],
        "top5": acc[best]["top5"],
        "topk": {str(k): a for k, a in acc.items()},
        "train_loo_top1": {str(k): v for k, v in loo.items()},
        "dropped_ks": dropped,
        "notes": notes,
        "features": s.cache_info(),
        "config": cfg.to_dict(),
    }, files)


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    ks = list(results["topk"])

    def pct(v: float | None) -> str:
        return f"{100 * v:8.2f}" if v is not None else f"{'-':>8}"

    loo = results["train_loo_top1"]
    lines = [
        f"knn  {results['dataset']} split {results['split']}: {results['n_test']} test videos vote among "
        f"{results['n_train']} train videos, {results['layer']} features ({results['feature_dim']}-d), "
        f"T={results['protocol']['temperature']:g}",
        f"  {'k':>12}" + "".join(f"{k:>8}" for k in ks),
        f"  {'test top-1':>12}" + "".join(pct(results["topk"][k]["top1"]) for k in ks),
        f"  {'test top-5':>12}" + "".join(pct(results["topk"][k]["top5"]) for k in ks),
        f"  {'train LOGO':>12}" + "".join(pct(loo.get(k)) for k in ks),
        f"  top-1 {100 * results['top1']:.2f} at k={results['k']} (chosen by leave-one-group-out on the train list)",
    ]
    return "\n".join(lines + trailer(results))
