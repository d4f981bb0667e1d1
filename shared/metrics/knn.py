"""Weighted k-nearest-neighbour classification on frozen features, as self-supervised papers report it.

Each query's k most cosine-similar gallery videos vote for their labels with weight exp(s / T) (Wu et al., CVPR
2018; DINO, Caron et al., ICCV 2021: T = 0.07); the class with the largest total is the prediction. Decisions
(docs/protocols.md, "kNN"):

* Neighbours are `nearest_neighbours`' (cosine; a zero vector has cosine 0 with everything; equal similarities go
  to the lower gallery index), so the k voters are exactly the k retrieval neighbours.
* The weights are computed as exp((s - s_1) / T), s_1 the query's largest similarity: the same ratios, hence the
  same votes, without overflow for a small T.
* Ties in the vote totals go to the lower class index (`np.argmax`, as recognition's metrics).
* Top-5 counts a hit when the true class got at least one vote and is among the 5 largest totals: a class no
  neighbour voted for is never a hit, so with k = 1 top-5 equals top-1 (DINO ranks unvoted classes in arbitrary
  order, which can make them hits).
* k is chosen without the test list (`select_k`): leave-one-group-out kNN on the train list, where a train
  video's own group (UCF101's gXX, or the video itself) cannot vote for it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .recognition import label_ranks
from .retrieval import nearest_neighbours, outside_group_counts

KNN_KS = (1, 5, 20)
DEFAULT_TEMPERATURE = 0.07


def check_temperature(temperature: float) -> float:
    """The temperature as a float; ValueError unless it is a finite number > 0."""
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"--temperature {temperature!r} is out of range: it must be a number > 0 (DINO: 0.07)")
    return t


def vote_scores(indices: np.ndarray, sims: np.ndarray, gallery_labels: np.ndarray, n_classes: int, k: int,
                temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Class vote totals of the k nearest neighbours, and which classes got a vote.

    Args:
        indices: (Q, >= k) gallery rows, nearest first (`nearest_neighbours`).
        sims: (Q, >= k) their cosine similarities, non-increasing along a row.
        gallery_labels: (G,) int labels in [0, n_classes).
        n_classes: number of classes C.
        k: voters per query.
        temperature: T > 0 of the weights exp(s / T).

    Returns:
        scores: (Q, C) float64 vote totals; voted: (Q, C) bool, True where at least one neighbour has that label.
    """
    t = check_temperature(temperature)
    idx, s = indices[:, :k], sims[:, :k]
    weights = np.exp((s - s[:, :1]) / t)
    rows = np.repeat(np.arange(idx.shape[0]), k)
    cols = np.asarray(gallery_labels)[idx].reshape(-1)
    scores = np.zeros((idx.shape[0], n_classes))
    np.add.at(scores, (rows, cols), weights.reshape(-1))
    voted = np.zeros((idx.shape[0], n_classes), dtype=bool)
    voted[rows, cols] = True
    return scores, voted


def vote_accuracy(scores: np.ndarray, voted: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """{"top1", "top5"} of vote totals; top5 is None with fewer than 5 classes (it would be trivially high).

    Args:
        scores: (Q, C) vote totals. voted: (Q, C) which classes got a vote. labels: (Q,) true classes.
    """
    labels = np.asarray(labels)
    ranks = label_ranks(scores, labels)  # ties to the lower class index
    got_vote = voted[np.arange(len(labels)), labels]
    return {"top1": float(np.mean(ranks == 0)),
            "top5": float(np.mean((ranks < 5) & got_vote)) if scores.shape[1] >= 5 else None}


def _check_labels(labels: np.ndarray, n: int, n_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be ({n},) integers, got shape {labels.shape} of {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got values in [{labels.min()}, {labels.max()}]")
    return labels


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be integers >= 1, got {list(ks)}")
    return ks


def knn_accuracy(query_feats: np.ndarray, query_labels: np.ndarray, gallery_feats: np.ndarray,
                 gallery_labels: np.ndarray, n_classes: int, ks: Sequence[int] = KNN_KS,
                 temperature: float = DEFAULT_TEMPERATURE, query_groups: np.ndarray | None = None,
                 gallery_groups: np.ndarray | None = None, batch_size: int = 1024) -> dict[int, dict[str, float | None]]:
    """Weighted kNN top-1 / top-5 of every query for each k.

    Args:
        query_feats: (Q, D) one feature per query video. query_labels: (Q,) int labels.
        gallery_feats: (G, D) one feature per gallery video. gallery_labels: (G,) int labels in [0, n_classes).
        n_classes: number of classes C.
        ks: voters per query; each in [1, G] (with groups: at most the fewest gallery rows outside a query's group).
        temperature: T of the weights exp(s / T).
        query_groups, gallery_groups: (Q,), (G,) group ids, both or neither: a query's own group does not vote.
        batch_size: queries per similarity block (`nearest_neighbours`).

    Returns:
        {k: {"top1": fraction, "top5": fraction or None}}.
    """
    check_temperature(temperature)
    ks = _check_ks(ks)
    n_q, n_g = np.shape(query_feats)[0], np.shape(gallery_feats)[0]
    query_labels = _check_labels(query_labels, n_q, n_classes, "query_labels")
    gallery_labels = _check_labels(gallery_labels, n_g, n_classes, "gallery_labels")
    indices, sims = nearest_neighbours(query_feats, gallery_feats, ks[-1], batch_size=batch_size,
                                       query_groups=query_groups, gallery_groups=gallery_groups)
    return {k: vote_accuracy(*vote_scores(indices, sims, gallery_labels, n_classes, k, temperature), query_labels)
            for k in ks}


def select_k(train_feats: np.ndarray, train_labels: np.ndarray, train_groups: np.ndarray, n_classes: int,
             ks: Sequence[int] = KNN_KS, temperature: float = DEFAULT_TEMPERATURE,
             batch_size: int = 1024) -> tuple[int, dict[int, float], list[int]]:
    """The k of best leave-one-group-out top-1 on the train list (ties to the smaller k); the test list is not used.

    Args:
        train_feats: (N, D). train_labels: (N,) int. train_groups: (N,) group ids (a video's own id where it has
            no group, which makes this leave-one-out).
        n_classes, ks, temperature, batch_size: as `knn_accuracy`.

    Returns:
        (chosen k, {k: leave-one-group-out top-1} for the ks that fit, the ks too large: more than the fewest train
        videos outside a video's group).
    """
    fit, unfit = choosable_ks(ks, train_groups)
    acc = knn_accuracy(train_feats, train_labels, train_feats, train_labels, n_classes, fit, temperature,
                       query_groups=train_groups, gallery_groups=train_groups, batch_size=batch_size)
    top1 = {k: acc[k]["top1"] for k in fit}
    best = max(fit, key=lambda k: (top1[k], -k))
    return best, top1, unfit


def choosable_ks(ks: Sequence[int], train_groups: np.ndarray) -> tuple[list[int], list[int]]:
    """(the ks that leave-one-group-out kNN on the train list can use, the ks too large for it).

    A k fits when every train video has at least k train videos outside its group. ValueError when none fits.

    Args:
        ks: candidate ks. train_groups: (N,) group id of each train video.
    """
    ks = _check_ks(ks)
    fewest = int(outside_group_counts(train_groups, train_groups).min())
    fit = [k for k in ks if k <= fewest]
    if not fit:
        raise ValueError(f"no k in {ks} can be chosen on the train list: a train video has only {fewest} train "
                         f"videos outside its group to vote; pass --ks with a k <= {fewest}")
    return fit, [k for k in ks if k > fewest]
