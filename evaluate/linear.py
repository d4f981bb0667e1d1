"""Linear classification on frozen features: logistic regression on standardised features of the train list, C
chosen by group-aware cross-validation on the train list only, tested once on the test list.

Each video's feature is retrieval's (the mean of its `--clips` linspace clips, one tap; the same cache entries).
The metric is `v3s.shared.metrics.linear`'s; this module resolves the model and store, refuses a split the folds
cannot be cut from before the model runs, extracts (cached), and writes results.json and a C-vs-accuracy curve.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .config import LinearConfig
from .frozen import model_label, split_features, video_groups
from v3s.shared.metrics.linear import check_cs, group_folds, linear_probe
from .plots import cv_curve_png
from .results import trailer, write_results


def run_linear(cfg: LinearConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate a linear classifier on frozen features; write results.json and cv.png to the out folder.

    Args:
        cfg: the options.
        log: receives one-line progress messages.
    Returns:
        the results dict (also written as results.json).
    """
    cs = check_cs(cfg.cs)   # --folds >= 2: LinearConfig's bound

    def check(store, train, test) -> None:  # the folds can be cut: every class has --folds videos, enough groups
        group_folds(np.array([v.label for v in train]), video_groups(train)[0], cfg.folds,
                    store.classes(train[0].dataset))

    cfg, s = split_features(cfg, "linear", log, check)
    classes = s.store.classes(cfg.dataset)
    groups, grouped_by = video_groups(s.train)
    if log:
        log(f"linear: {len(cs)} values of C x {cfg.folds} folds, then one fit on the {len(s.train)} train videos")
    r = linear_probe(s.train_feats.video[cfg.layer], s.train_feats.labels, groups, s.test_feats.video[cfg.layer],
                     s.test_feats.labels, len(classes), cs=cs, n_folds=cfg.folds, max_iter=cfg.max_iter,
                     class_names=classes)
    notes = [f"C={c:g}: {n} fit(s) stopped at --max-iter {cfg.max_iter} before converging" for c, n in
             r.not_converged.items()]
    if len(classes) < 5:
        notes.append(f"top-5 is null: {len(classes)} classes (top-5 of fewer than 5 classes says nothing)")
    if r.C in (cs[0], cs[-1]) and len(cs) > 1:
        notes.append(f"the chosen C={r.C:g} is at the end of the grid; a wider --cs may score better")

    files = {"cv": cv_curve_png(r.cs, r.cv_folds, r.C, s.out / "cv.png", test_top1=r.top1,
                                title=f"Linear, {model_label(s.loaded)}: {cfg.dataset} split {cfg.split}, {cfg.layer}")}
    return write_results(s.out, {
        **s.summary(cfg, "linear"),
        "n_train": len(s.train),
        "n_test": len(s.test),
        "n_classes": len(classes),
        "protocol": {**s.spec.key(), "classifier": "multinomial logistic regression, L2, lbfgs",
                     "standardise": "fitted on the training part only", "folds": cfg.folds, "fold_groups": grouped_by,
                     "selection": "mean validation top-1 over the folds, ties to the smaller C",
                     "max_iter": cfg.max_iter},
        "C": r.C,
        "top1": r.top1,
        "top5": r.top5,
        "cv": {"cs": r.cs, "mean": r.cv_mean, "std": r.cv_std, "per_fold": r.cv_folds, "fold_sizes": r.fold_sizes},
        "notes": notes,
        "features": s.cache_info(),
        "config": cfg.to_dict(),
    }, files)


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    cv = results["cv"]
    top5 = f", top-5 {100 * results['top5']:.2f}" if results["top5"] is not None else ""
    lines = [
        f"linear  {results['dataset']} split {results['split']}: trained on {results['n_train']} train videos, tested "
        f"on {results['n_test']}, {results['layer']} features ({results['feature_dim']}-d)",
        f"  {'C':>10}" + "".join(f"{c:>9g}" for c in cv["cs"]),
        f"  {'CV top-1':>10}" + "".join(f"{100 * m:9.2f}" for m in cv["mean"]),
        f"  test top-1 {100 * results['top1']:.2f}{top5} at C={results['C']:g} (chosen by "
        f"{results['protocol']['folds']}-fold cross-validation on the train list)",
    ]
    return "\n".join(lines + trailer(results))
