"""Linear classification on frozen features: standardised features, L2-regularised multinomial logistic
regression, C chosen by group-aware cross-validation on the train list only, then refitted and tested once.

Decisions (docs/protocols.md, "Linear"):

* Folds: scikit-learn's `StratifiedGroupKFold` (no shuffle, so deterministic) over the train videos, grouped by
  UCF101's gXX (`v3s.data_manifest.video_group`) where names carry one, else each video alone. Clips of one
  group (one long recording cut into pieces) are never split between training and validation folds; the
  folds keep every class's share as far as the groups allow.
* Every class needs at least as many train videos as folds, and the list at least as many groups: else
  ValueError naming the class (or the group count) and the fold count.
* Standardisation (`StandardScaler`) is fitted on the training part only: the training folds in the search,
  the whole train list for the final model.
* The score of a C is the mean over folds of each validation fold's top-1 accuracy; the best mean wins, ties
  to the smaller C (the stronger regularisation).
* Solver: lbfgs with `max_iter` iterations; fits that stop before converging are counted and reported.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .recognition import topk_accuracy

if TYPE_CHECKING:  # scikit-learn is imported where it is used: the CLI's --help need not load it
    from sklearn.pipeline import Pipeline

DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
DEFAULT_FOLDS = 5
DEFAULT_MAX_ITER = 1000


@dataclass
class LinearResult:
    """What the search and the final fit found.

    Attributes:
        cs: the C grid, ascending. cv_folds: (len(cs), n_folds) validation top-1 of every C on every fold.
        cv_mean, cv_std: (len(cs),) mean and standard deviation over the folds.
        C: the chosen C. top1, top5: test accuracy of the refitted model (top5 None with < 5 classes).
        fold_sizes: validation videos of each fold. not_converged: {C: fits that stopped at max_iter}.
        model: the final pipeline (scaler + classifier), fitted on the whole train list.
    """

    cs: list[float]
    cv_folds: np.ndarray
    C: float
    top1: float
    top5: float | None
    fold_sizes: list[int]
    not_converged: dict[float, int] = field(default_factory=dict)
    model: Any = None

    @property
    def cv_mean(self) -> np.ndarray:
        return self.cv_folds.mean(axis=1)

    @property
    def cv_std(self) -> np.ndarray:
        return self.cv_folds.std(axis=1)


def check_cs(cs: Sequence[float]) -> list[float]:
    """The C grid sorted and deduplicated; ValueError unless every C is a finite number > 0."""
    values = sorted({float(c) for c in cs})
    if not values or any(not np.isfinite(c) or c <= 0 for c in values):
        raise ValueError(f"--cs must be numbers > 0 (e.g. 0.01,0.1,1,10), got {list(cs)}")
    return values


def group_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int,
                class_names: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that keep each group whole: [(train rows, validation rows)] * n_folds.

    Args:
        labels: (N,) int class of each video. groups: (N,) group id of each video.
        n_folds: folds, >= 2.
        class_names: names for the error message (default: the class ids).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels, groups = np.asarray(labels), np.asarray(groups)
    if n_folds < 2:
        raise ValueError(f"--folds {n_folds} is out of range: cross-validation needs >= 2 folds")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"the train list has {len(classes)} class; a classifier needs >= 2")
    n_groups = len(np.unique(groups))
    most = min(int(counts.min()), n_groups)  # the most folds this list can be cut into
    advice = f"pass --folds {most} or fewer" if most >= 2 else "cross-validation cannot choose C on this train list"
    short = {(class_names[c] if class_names is not None else int(c)): int(n)
             for c, n in zip(classes, counts) if n < n_folds}
    if short:
        raise ValueError(f"{len(short)} classes have fewer train videos than --folds {n_folds}: {short}; {advice}")
    if n_groups < n_folds:
        raise ValueError(f"the train list has {n_groups} video groups, fewer than --folds {n_folds} (a group's "
                         f"videos stay in one fold); {advice}")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=False)
    return [(tr, va) for tr, va in splitter.split(np.zeros(len(labels)), labels, groups)]


def fit_linear(x: np.ndarray, y: np.ndarray, C: float, max_iter: int = DEFAULT_MAX_ITER) -> tuple["Pipeline", bool]:
    """(scaler + logistic regression fitted on x, y; whether lbfgs converged within max_iter).

    Args:
        x: (N, D) features. y: (N,) int labels. C: inverse L2 strength. max_iter: lbfgs iterations.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def class_scores(model: "Pipeline", x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) predicted probabilities; -inf for a class the model never saw in training.

    Args:
        model: a fitted `fit_linear` pipeline. x: (N, D) features. n_classes: C.
    """
    proba = model.predict_proba(x)
    scores = np.full((len(x), n_classes), -np.inf)
    scores[:, model.classes_] = proba
    return scores


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, train_groups: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, n_classes: int, cs: Sequence[float] = DEFAULT_CS, n_folds: int = DEFAULT_FOLDS,
                 max_iter: int = DEFAULT_MAX_ITER, class_names: Sequence[str] | None = None) -> LinearResult:
    """Choose C by group-aware cross-validation on the train list, refit on all of it, test once.

    Args:
        train_x: (N, D) train features. train_y: (N,) int labels in [0, n_classes). train_groups: (N,) group ids.
        test_x: (M, D) test features. test_y: (M,) int labels.
        n_classes: C. cs: the grid of inverse regularisation strengths. n_folds: folds (>= 2).
        max_iter: lbfgs iterations per fit. class_names: for error messages.
    """
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train and test features must be 2-D of one width, got {train_x.shape} and {test_x.shape}")
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        raise ValueError("the features contain NaN or inf")
    cs = check_cs(cs)
    if max_iter < 1:
        raise ValueError(f"--max-iter {max_iter} is out of range: it must be >= 1")
    folds = group_folds(train_y, train_groups, n_folds, class_names)
    cv = np.zeros((len(cs), len(folds)))
    not_converged: dict[float, int] = {}
    for i, c in enumerate(cs):
        for j, (tr, va) in enumerate(folds):
            model, converged = fit_linear(train_x[tr], train_y[tr], c, max_iter)
            cv[i, j] = float(np.mean(model.predict(train_x[va]) == train_y[va]))
            not_converged[c] = not_converged.get(c, 0) + (not converged)
    mean = cv.mean(axis=1)
    best = int(np.flatnonzero(mean == mean.max())[0])  # cs ascend: the first best is the smallest C
    model, converged = fit_linear(train_x, train_y, cs[best], max_iter)
    if not converged:
        not_converged[cs[best]] = not_converged.get(cs[best], 0) + 1
    ks = (1, 5) if n_classes >= 5 else (1,)
    acc = topk_accuracy(class_scores(model, test_x, n_classes), np.asarray(test_y), ks)
    return LinearResult(cs=cs, cv_folds=cv, C=cs[best], top1=acc[1], top5=acc.get(5), model=model,
                        fold_sizes=[len(va) for _, va in folds],
                        not_converged={c: n for c, n in not_converged.items() if n})
