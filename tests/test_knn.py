"""Weighted kNN classification on feature arrays (v3s.shared.metrics.knn), and group exclusion in the neighbours."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from v3s.shared.metrics.knn import choosable_ks, knn_accuracy, select_k, vote_scores
from v3s.shared.metrics.retrieval import nearest_neighbours


def brute_force_knn(q, ql, g, gl, n_classes, k, t, qg=None, gg=None):
    """Per-query loop written from the definition: cosine, drop the query's own group, k nearest (ties to the lower
    gallery index), weights exp(s / T), class totals, argmax (ties to the lower class), top-5 among voted classes."""
    top1 = top5 = 0
    for i in range(len(q)):
        sims = []
        for j in range(len(g)):
            if qg is not None and qg[i] == gg[j]:
                continue
            nq, ng = np.linalg.norm(q[i]), np.linalg.norm(g[j])
            sims.append((-(0.0 if nq == 0 or ng == 0 else float(q[i] @ g[j]) / (nq * ng)), j))
        sims.sort()
        totals = [0.0] * n_classes
        voted = set()
        for neg, j in sims[:k]:
            totals[gl[j]] += math.exp(-neg / t)
            voted.add(gl[j])
        ranking = sorted(range(n_classes), key=lambda c: (-totals[c], c))
        top1 += ranking[0] == ql[i]
        top5 += ql[i] in ranking[:5] and ql[i] in voted
    return top1 / len(q), top5 / len(q)


def test_matches_a_per_query_loop():
    rng = np.random.default_rng(0)
    g, q = rng.normal(size=(60, 6)), rng.normal(size=(23, 6))
    gl, ql = rng.integers(0, 7, 60), rng.integers(0, 7, 23)
    got = knn_accuracy(q, ql, g, gl, 7, ks=(1, 3, 10, 60), temperature=0.5, batch_size=5)
    assert list(got) == [1, 3, 10, 60]
    for k in (1, 3, 10, 60):
        want = brute_force_knn(q, ql, g, gl, 7, k, 0.5)
        assert (got[k]["top1"], got[k]["top5"]) == pytest.approx(want)
    assert got[1]["top5"] == got[1]["top1"]  # one voter: an unvoted class is never a top-5 hit


def test_votes_are_weighted_by_similarity_and_ties_go_to_the_lower_class():
    # Query (1, 0): gallery rows at cosine 1 (class 2), 0.8, 0.8 (class 0 twice), -1 (class 1).
    g = np.array([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6], [-1.0, 0.0]])
    gl = np.array([2, 0, 0, 1])
    q, ql = np.array([[1.0, 0.0]]), np.array([0])
    # T small: the nearest neighbour's exp(1/T) outweighs two votes at 0.8; T large: two votes beat one.
    assert knn_accuracy(q, ql, g, gl, 3, ks=(3,), temperature=0.07)[3]["top1"] == 0.0
    assert knn_accuracy(q, ql, g, gl, 3, ks=(3,), temperature=10.0)[3]["top1"] == 1.0
    # An exact tie of the totals (one vote each at the same cosine) goes to the lower class index.
    g2, gl2 = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1, 0])
    scores, voted = vote_scores(*nearest_neighbours(q, g2, 2), gl2, 2, 2, 0.07)
    assert scores[0, 0] == scores[0, 1] and voted.all()
    assert knn_accuracy(q, np.array([0]), g2, gl2, 2, ks=(2,))[2]["top1"] == 1.0
    assert knn_accuracy(q, np.array([1]), g2, gl2, 2, ks=(2,))[2]["top1"] == 0.0


def test_small_temperature_neither_overflows_nor_changes_the_nearest_vote():
    rng = np.random.default_rng(1)
    g, q = rng.normal(size=(40, 5)), rng.normal(size=(15, 5))
    gl, ql = rng.integers(0, 4, 40), rng.integers(0, 4, 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp overflow would warn
        tiny = knn_accuracy(q, ql, g, gl, 4, ks=(1, 20), temperature=1e-5)
    assert tiny[20]["top1"] == tiny[1]["top1"]  # at T -> 0 the nearest neighbour decides alone


def test_top5_is_none_below_five_classes():
    rng = np.random.default_rng(2)
    got = knn_accuracy(rng.normal(size=(4, 3)), np.array([0, 1, 2, 3]), rng.normal(size=(8, 3)),
                       np.arange(8) % 4, 4, ks=(1,))
    assert got[1]["top5"] is None


def test_groups_are_left_out_of_the_vote_and_select_k_uses_only_the_train_list():
    """Two clips of each recording (group) are near-copies and share its label, and nothing else carries the label:
    plain leave-one-out finds the twin and scores 100 %; leave-one-group-out sees only other recordings (chance).
    This is why k is chosen with the query's own group left out."""
    rng = np.random.default_rng(3)
    n_groups = 30
    group_vec = rng.normal(size=(n_groups, 16))
    group_label = rng.integers(0, 3, n_groups)
    x = np.repeat(group_vec, 2, axis=0) + 1e-3 * rng.normal(size=(2 * n_groups, 16))
    labels, groups = np.repeat(group_label, 2), np.repeat([f"g{i:02d}" for i in range(n_groups)], 2)
    alone = np.array([f"v{i}" for i in range(2 * n_groups)])  # each video its own group: plain leave-one-out

    idx, _ = nearest_neighbours(x, x, 5, query_groups=groups, gallery_groups=groups)
    assert (groups[idx] != groups[:, None]).all()
    _, leaky, _ = select_k(x, labels, alone, 3, ks=(1,))
    best, loo, unfit = select_k(x, labels, groups, 3, ks=(1, 5, 58, 59))
    assert leaky[1] == 1.0 and loo[1] < 0.6
    assert unfit == [59] and list(loo) == [1, 5, 58]  # 60 videos, 2 in each group: 58 can vote
    for k in (1, 5, 58):
        assert loo[k] == pytest.approx(brute_force_knn(x, labels, x, labels, 3, k, 0.07, groups, groups)[0])
    assert best == max(loo, key=lambda k: (loo[k], -k))
    # Ties go to the smaller k: on separable data every k is perfect.
    sep = np.repeat(np.eye(3), 4, axis=0) + 0.01 * rng.normal(size=(12, 3))
    assert select_k(sep, np.repeat(np.arange(3), 4), np.arange(12) % 4, 3, ks=(5, 1, 3))[:2] == (1, {1: 1.0, 3: 1.0, 5: 1.0})


def test_bad_inputs_name_the_problem():
    q, g = np.ones((2, 3)), np.ones((4, 3))
    for t in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="--temperature .* must be a number > 0"):
            knn_accuracy(q, np.zeros(2, int), g, np.zeros(4, int), 2, ks=(1,), temperature=t)
    with pytest.raises(ValueError, match=r"ks must be integers >= 1, got \[0, 1\]"):
        knn_accuracy(q, np.zeros(2, int), g, np.zeros(4, int), 2, ks=(0, 1))
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        knn_accuracy(q, np.zeros(2, int), g, np.zeros(4, int), 2, ks=(5,))
    with pytest.raises(ValueError, match=r"gallery_labels must lie in \[0, 2\)"):
        knn_accuracy(q, np.zeros(2, int), g, np.array([0, 1, 2, 0]), 2, ks=(1,))
    with pytest.raises(ValueError, match=r"k must be at most 2 \(the fewest gallery rows outside a query's group\), got 3"):
        nearest_neighbours(g, g, 3, query_groups=np.array([0, 0, 1, 1]), gallery_groups=np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="both query_groups and gallery_groups"):
        nearest_neighbours(q, g, 1, query_groups=np.zeros(2))
    with pytest.raises(ValueError, match=r"no k in \[3, 5\] can be chosen on the train list: .* only 2 "):
        choosable_ks((5, 3), np.array([0, 0, 1, 1]))
