"""Top-k retrieval, the peers' protocol (v3s.evaluate.retrieval)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from v3s.shared.metrics.retrieval import PEER_KS, cosine_similarity, nearest_neighbours, retrieval_topk


def _bruteforce_topk(q, ql, g, gl, ks):
    """Per-query loop: cosine by hand (0 for a zero vector), rank by (-similarity, gallery index)."""
    hits = {k: 0 for k in ks}
    for i in range(len(q)):
        sims = []
        for j in range(len(g)):
            nq, ng = np.linalg.norm(q[i]), np.linalg.norm(g[j])
            sims.append(0.0 if nq == 0 or ng == 0 else float(np.dot(q[i], g[j]) / (nq * ng)))
        ranked = sorted(range(len(g)), key=lambda j: (-sims[j], j))
        for k in ks:
            hits[k] += any(gl[j] == ql[i] for j in ranked[:k])
    return {k: hits[k] / len(q) for k in ks}


def test_topk_matches_bruteforce_on_random_features():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(53, 8)), rng.normal(size=(120, 8))
    ql, gl = rng.integers(0, 6, 53), rng.integers(0, 6, 120)
    got = retrieval_topk(q, ql, g, gl, ks=PEER_KS, batch_size=16)
    assert got == _bruteforce_topk(q, ql, g, gl, PEER_KS)
    assert list(got) == list(PEER_KS)
    assert got[50] >= got[20] >= got[10] >= got[5] >= got[1]


def _exact_unit_vectors(rng, n, d=16):
    """Rows with four entries of +-1/2 and the rest 0: unit norm exactly, so every dot product is exact."""
    x = np.zeros((n, d))
    for row in x:
        row[rng.choice(d, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return x


def test_exact_ties_follow_the_gallery_index_and_match_bruteforce():
    rng = np.random.default_rng(1)
    base = _exact_unit_vectors(rng, 30)
    # Each gallery vector appears twice (and once scaled by 3: cosine is scale-free) with different labels.
    g = np.concatenate([base, base, 3 * base])
    gl = np.concatenate([np.zeros(30, int), np.ones(30, int), np.full(30, 2)])
    q = base[:12]
    ql = rng.integers(0, 3, 12)
    idx, sims = nearest_neighbours(q, g, k=3)
    # The three copies of query i (cosine exactly 1) come first, in ascending gallery order.
    np.testing.assert_array_equal(idx, np.stack([np.arange(12), np.arange(12) + 30, np.arange(12) + 60], axis=1))
    np.testing.assert_array_equal(sims, 1.0)
    got = retrieval_topk(q, ql, g, gl, ks=(1, 2, 3, 5, 50))
    assert got == _bruteforce_topk(q, ql, g, gl, (1, 2, 3, 5, 50))
    # Top-1 always returns the copy labelled 0, so only label-0 queries hit at k=1.
    assert got[1] == np.mean(ql == 0)
    assert got[3] == 1.0


def test_tie_break_changes_with_gallery_order():
    # Two identical gallery vectors with different labels: the lower index wins the tie.
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = np.array([[2.0, 0.0]])
    assert retrieval_topk(q, np.array([7]), g, np.array([7, 8, 9]), ks=(1,)) == {1: 1.0}
    assert retrieval_topk(q, np.array([7]), g, np.array([8, 7, 9]), ks=(1,)) == {1: 0.0}
    assert retrieval_topk(q, np.array([7]), g, np.array([8, 7, 9]), ks=(2,)) == {2: 1.0}


@pytest.mark.parametrize("n_query", [1, 7, 33, 64, 65])
def test_no_query_dropped_for_any_batch_size(n_query):
    rng = np.random.default_rng(n_query)
    q, g = rng.normal(size=(n_query, 5)), rng.normal(size=(40, 5))
    full_idx, full_sims = nearest_neighbours(q, g, k=10, batch_size=10_000)
    for bs in (1, 8, 32, 64):
        idx, sims = nearest_neighbours(q, g, k=10, batch_size=bs)
        assert idx.shape == sims.shape == (n_query, 10)
        np.testing.assert_array_equal(idx, full_idx)
        # BLAS blocking may change the last bit of a dot product, nothing more.
        np.testing.assert_allclose(sims, full_sims, rtol=0, atol=1e-14)
    assert (np.diff(full_sims, axis=1) <= 0).all()
    # The last query gets a real answer, not a leftover from an earlier batch.
    last = cosine_similarity(q[-1:], g)[0]
    assert full_idx[-1, 0] == int(np.argmax(last))


def test_retrieval_counts_every_query():
    # 11 queries, 3 of them hits at k=1: the denominator must be 11 whatever the batch size.
    g = np.eye(4)
    gl = np.array([0, 1, 2, 3])
    q = np.tile(np.eye(4)[0], (11, 1))
    ql = np.array([0, 0, 0] + [9] * 8)
    for bs in (1, 2, 4, 5, 1024):
        assert retrieval_topk(q, ql, g, gl, ks=(1, 4), batch_size=bs) == {1: 3 / 11, 4: 3 / 11}


def test_zero_vectors_have_cosine_zero():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    sims = cosine_similarity(a, b)
    assert np.isfinite(sims).all()
    np.testing.assert_array_equal(sims, [[0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    # A zero query ties with every gallery row at 0 -> gallery order; a zero gallery row outranks a negative one.
    idx, s = nearest_neighbours(a, b, k=3)
    np.testing.assert_array_equal(idx, [[0, 1, 2], [0, 2, 1]])
    np.testing.assert_array_equal(s, [[0.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def test_matches_sklearn_cosine_the_peers_use():
    from sklearn.metrics.pairwise import cosine_similarity as sk_cosine

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(9, 6)), rng.normal(size=(11, 6))
    a[2] = 0.0
    np.testing.assert_allclose(cosine_similarity(a, b), sk_cosine(a, b), atol=1e-12)


def test_bad_inputs_name_the_problem():
    q, g = np.ones((2, 3)), np.ones((4, 3))
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\] \(the gallery size\), got 5"):
        retrieval_topk(q, np.zeros(2), g, np.zeros(4), ks=(1, 5))
    with pytest.raises(ValueError, match="same width"):
        nearest_neighbours(q, np.ones((4, 2)), k=1)
    with pytest.raises(ValueError, match=r"query_labels must have shape \(2,\)"):
        retrieval_topk(q, np.zeros(3), g, np.zeros(4), ks=(1,))
    with pytest.raises(ValueError, match="gallery_feats contains NaN"):
        nearest_neighbours(q, np.full((4, 3), math.nan), k=1)
    with pytest.raises(ValueError, match="query_feats must be 2-D"):
        nearest_neighbours(np.ones(3), g, k=1)


def test_duplicated_continuous_gallery_rows_tie_exactly_in_index_order():
    rng = np.random.default_rng(4)
    g = rng.normal(size=(301, 37))
    g[250] = g[3]
    g[299] = g[3]
    gl = np.zeros(301, int)
    gl[[3, 250, 299]] = [5, 6, 7]
    q = g[3] + 1e-3 * rng.normal(size=(67, 37))  # every query's nearest gallery row is row 3 and its copies
    idx, sims = nearest_neighbours(q, g, k=3)
    np.testing.assert_array_equal(idx, np.tile([3, 250, 299], (67, 1)))
    assert (sims[:, 0] == sims[:, 1]).all() and (sims[:, 1] == sims[:, 2]).all()
    assert retrieval_topk(q, np.full(67, 6), g, gl, ks=(1, 2)) == {1: 0.0, 2: 1.0}


def test_partial_top_k_equals_a_stable_sort_of_the_whole_row():
    """The partition shortcut picks and orders exactly what a stable sort does, ties across the cut included."""
    from v3s.shared.metrics.retrieval import _top_k

    rng = np.random.default_rng(3)
    block = rng.integers(0, 6, size=(200, 40)).astype(np.float64)  # many ties, at and across every cut
    for k in (1, 2, 5, 17, 39, 40):
        np.testing.assert_array_equal(_top_k(block, k), np.argsort(-block, axis=1, kind="stable")[:, :k])
