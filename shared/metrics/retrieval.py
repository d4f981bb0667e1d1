"""Top-k video retrieval, the peers' protocol (VCOP / PRP / VCP), on feature arrays from any model.

Test videos query train videos by cosine similarity; a query is a hit at k when any of its k nearest train
videos shares its label. Decisions (see docs/protocols.md):

* Cosine with a zero vector is 0, as in sklearn's ``cosine_similarity`` that the peers call: a zero row is
  left at zero by the normalisation instead of being divided by 0.
* Ties in similarity go to the lower gallery index (a stable sort on descending similarity). Gallery rows that
  are identical after L2 normalisation are scored once, so they tie exactly whatever BLAS does. The peers use
  ``np.argsort``'s default quicksort, whose order among ties is unspecified.
* ``k`` larger than the gallery raises ValueError instead of being silently clamped.
* Queries are processed in batches for memory; every query gets a result (no ``drop_last``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PEER_KS = (1, 5, 10, 20, 50)


def _check_feats(feats: np.ndarray, name: str) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"{name} must be 2-D (N, D) with N >= 1, got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise ValueError(f"{name} contains NaN or inf")
    return feats


def l2_normalize_rows(x: np.ndarray) -> np.ndarray:
    """Divide each row by its L2 norm; all-zero rows stay zero (so their cosine with anything is 0).

    Args:
        x: (N, D) array.

    Returns:
        (N, D) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity, 0 where either row is all-zero.

    Args:
        a: (N, D) array.
        b: (M, D) array.

    Returns:
        (N, M) float64.
    """
    return l2_normalize_rows(a) @ l2_normalize_rows(b).T


def nearest_neighbours(
    query_feats: np.ndarray, gallery_feats: np.ndarray, k: int, batch_size: int = 1024,
    query_groups: np.ndarray | None = None, gallery_groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar gallery rows for each query, most similar first, ties to the lower index.

    Args:
        query_feats: (Q, D) query features.
        gallery_feats: (G, D) gallery features.
        k: neighbours per query, 1 <= k <= G (with groups: <= the fewest gallery rows outside a query's group).
        batch_size: queries per similarity block (memory is batch_size x G float64). It can change the
            similarities in the last bit only (BLAS blocking), never the tie rule for identical gallery rows.
        query_groups, gallery_groups: (Q,) and (G,) group ids, both or neither: a gallery row of the query's own
            group is never returned (leave-one-group-out within one list).

    Returns:
        indices: (Q, k) int64 gallery rows; similarities: (Q, k) float64, non-increasing along each row.
    """
    query = l2_normalize_rows(_check_feats(query_feats, "query_feats"))
    gallery = l2_normalize_rows(_check_feats(gallery_feats, "gallery_feats"))
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query_feats and gallery_feats must have the same width, got {query.shape[1]} and {gallery.shape[1]}"
        )
    n_gallery = gallery.shape[0]
    if not 1 <= k <= n_gallery:
        raise ValueError(f"k must be in [1, {n_gallery}] (the gallery size), got {k}")
    if (query_groups is None) != (gallery_groups is None):
        raise ValueError("give both query_groups and gallery_groups, or neither")
    if query_groups is not None:
        query_groups, gallery_groups = np.asarray(query_groups), np.asarray(gallery_groups)
        if query_groups.shape != (query.shape[0],) or gallery_groups.shape != (n_gallery,):
            raise ValueError(f"query_groups and gallery_groups must have shapes ({query.shape[0]},) and "
                             f"({n_gallery},), got {query_groups.shape} and {gallery_groups.shape}")
        fewest = outside_group_counts(query_groups, gallery_groups).min()
        if k > fewest:
            raise ValueError(f"k must be at most {fewest} (the fewest gallery rows outside a query's group), got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # BLAS may round the same dot product differently at different positions of a matrix, so identical
    # gallery rows are scored once and copied: exact duplicates then tie exactly and the index rule decides.
    # (Rows are compared as byte strings: one sort of G keys instead of a lexicographic sort of G x D floats.)
    rows = np.ascontiguousarray(gallery)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    duplicates = len(first) < len(rows)
    unique_rows, inverse = (rows[first], inverse.reshape(-1)) if duplicates else (rows, None)
    indices = np.empty((query.shape[0], k), dtype=np.int64)
    sims = np.empty((query.shape[0], k), dtype=np.float64)
    for start in range(0, query.shape[0], batch_size):
        block = query[start : start + batch_size] @ unique_rows.T
        if duplicates:
            block = block[:, inverse]
        if query_groups is not None:
            block[query_groups[start : start + batch_size, None] == gallery_groups[None, :]] = -np.inf
        order = _top_k(block, k)
        indices[start : start + len(block)] = order
        sims[start : start + len(block)] = np.take_along_axis(block, order, axis=1)
    return indices, sims


def _top_k(block: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values, largest first, equal values in ascending column order.

    The same result as a stable sort of the whole row, in O(G) per row: a partition finds the k-th largest value;
    the k candidates are ordered by (-value, column); a row where more than k values reach the k-th largest (a tie
    across the cut, rare) falls back to the stable sort, which alone picks the lowest columns among the tied.
    """
    n = block.shape[1]
    if k == n:
        return np.argsort(-block, axis=1, kind="stable")
    candidates = np.sort(np.argpartition(-block, k - 1, axis=1)[:, :k], axis=1)  # ascending columns
    values = np.take_along_axis(block, candidates, axis=1)
    order = np.take_along_axis(candidates, np.argsort(-values, axis=1, kind="stable"), axis=1)
    tied = (block >= values.min(axis=1, keepdims=True)).sum(axis=1) > k
    if tied.any():
        order[tied] = np.argsort(-block[tied], axis=1, kind="stable")[:, :k]
    return order


def outside_group_counts(query_groups: np.ndarray, gallery_groups: np.ndarray) -> np.ndarray:
    """(Q,) int64: for each query, the gallery rows whose group differs from the query's.

    Args:
        query_groups: (Q,) group ids. gallery_groups: (G,) group ids.
    """
    names, counts = np.unique(np.asarray(gallery_groups), return_counts=True)
    own = dict(zip(names.tolist(), counts.tolist()))
    return len(gallery_groups) - np.array([own.get(g, 0) for g in np.asarray(query_groups).tolist()], dtype=np.int64)


def retrieval_topk(
    query_feats: np.ndarray,
    query_labels: np.ndarray,
    gallery_feats: np.ndarray,
    gallery_labels: np.ndarray,
    ks: Sequence[int] = PEER_KS,
    batch_size: int = 1024,
) -> dict[int, float]:
    """Top-k retrieval accuracy: the fraction of queries with a same-label video among their k nearest.

    Args:
        query_feats: (Q, D) one feature per query video (the peers: test split, mean over 10 clips).
        query_labels: (Q,) labels of the queries (any comparable dtype).
        gallery_feats: (G, D) one feature per gallery video (the peers: train split).
        gallery_labels: (G,) labels of the gallery.
        ks: the k values, each in [1, G].
        batch_size: queries per similarity block (see :func:`nearest_neighbours`).

    Returns:
        {k: fraction of the Q queries that are hits at k, in [0, 1]}.
    """
    query_labels = np.asarray(query_labels)
    gallery_labels = np.asarray(gallery_labels)
    n_query, n_gallery = np.shape(query_feats)[0], np.shape(gallery_feats)[0]
    if query_labels.shape != (n_query,):
        raise ValueError(f"query_labels must have shape ({n_query},), got {query_labels.shape}")
    if gallery_labels.shape != (n_gallery,):
        raise ValueError(f"gallery_labels must have shape ({n_gallery},), got {gallery_labels.shape}")
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k")
    for k in ks:
        if not 1 <= k <= n_gallery:
            raise ValueError(f"k must be in [1, {n_gallery}] (the gallery size), got {k}")
    indices, _ = nearest_neighbours(query_feats, gallery_feats, max(ks), batch_size=batch_size)
    match = gallery_labels[indices] == query_labels[:, None]
    hit_by_rank = np.logical_or.accumulate(match, axis=1)  # hit_by_rank[q, j]: a match within the j+1 nearest
    return {k: float(hit_by_rank[:, k - 1].mean()) for k in ks}
