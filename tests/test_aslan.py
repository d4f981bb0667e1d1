"""ASLAN protocol core (v3s.evaluate.aslan): the 12 measures, pair features, leave-one-fold-out SVM."""
from __future__ import annotations

import math
from math import log, sqrt

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from v3s.shared.metrics import aslan
from v3s.shared.metrics.aslan import (
    SIMILARITY_NAMES,
    evaluate_folds,
    feature_names,
    pair_arrays,
    pair_features,
    similarities,
    standard_error,
    video_features,
)

EPS = 1e-10


def _kl_term(a, b):
    """(a - b)(log(a + eps) - log(b + eps)): one dimension of twice row 10."""
    return (a - b) * (log(a + EPS) - log(b + EPS))


# Unit vectors with zeros in different places; rows 9-12 see them unchanged (already L2-normalised).
X1_UNIT, X2_UNIT = [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]
EXPECTED_UNIT = [
    0.48,  # 1: 0.8 * 0.6
    sqrt(0.48),  # 2
    0.48**0.25,  # 3: sqrt(sqrt(0.48)); dims 0 and 2 contribute sqrt(0) = 0
    sqrt(0.48 / 1.4),  # 4: only dim 1 is non-zero: 0.8 * 0.6 / (0.8 + 0.6)
    0.48,  # 5: both norms are 1
    sqrt(0.6 + 0.04 / 1.4 + 0.8),  # 6: 0.36/0.6 + 0.04/1.4 + 0.64/0.8 = 10/7
    1.6,  # 7: 0.6 + 0.2 + 0.8
    sqrt(0.6 + (sqrt(0.8) - sqrt(0.6)) ** 2 + 0.8),  # 8: = sqrt(2.8 - 2 sqrt(0.48))
    sqrt(0.36 + 0.04 + 0.64),  # 9
    0.5 * (_kl_term(0.6, 0.0) + _kl_term(0.8, 0.6) + _kl_term(0.0, 0.8)),  # 10
    1.0 + sqrt(0.8 / 1.4) + 1.0,  # 11: a dim with one zero gives sqrt(m)/sqrt(m) = 1
    0.6 / (1.4 * 1.4),  # 12: min-sum 0.6 over the product of totals
]


def test_hand_values_on_unit_vectors_with_zeros():
    got = similarities(np.array([X1_UNIT]), np.array([X2_UNIT]))
    np.testing.assert_allclose(got[0], EXPECTED_UNIT, rtol=1e-12)
    # Sanity of the hand numbers themselves.
    assert EXPECTED_UNIT[5] == pytest.approx(sqrt(10 / 7))
    assert EXPECTED_UNIT[10] == pytest.approx(2 + sqrt(4 / 7))


def test_hand_values_on_unnormalised_vectors_rows_9_to_12_are_scale_free():
    # 5x the unit pair: rows 1-8 see (3,4,0), (0,3,4); rows 9-12 see the L2-normalised vectors above.
    expected = [
        12.0,
        sqrt(12.0),
        12.0**0.25,
        sqrt(12.0 / 7.0),
        12.0 / 25.0,
        sqrt(9 / 3 + 1 / 7 + 16 / 4),
        8.0,
        sqrt(14.0 - 4.0 * sqrt(3.0)),  # 3 + (2 - sqrt 3)^2 + 4
        *EXPECTED_UNIT[8:],
    ]
    got = similarities(np.array([[3.0, 4.0, 0.0]]), np.array([[0.0, 3.0, 4.0]]))
    np.testing.assert_allclose(got[0], expected, rtol=1e-9)


def test_hand_values_with_negative_entries_clip_mode():
    # Rows 1, 5, 7, 9 use the raw vectors; the others use max(x, 0) = (1, 0, 2) and (2, 1, 0).
    s5 = sqrt(5.0)
    expected = [
        -3.0,  # 1: 2 - 1 - 4
        sqrt(2.0),  # 2: clipped inner product = 2
        2.0**0.25,  # 3
        sqrt(2.0 / 3.0),  # 4: dim 0 only (dims 1 and 2 have a zero factor)
        -3.0 / (sqrt(6.0) * 3.0),  # 5: raw cosine
        sqrt(1 / 3 + 1 + 2),  # 6: 1/3 + 1/1 + 4/2
        7.0,  # 7: 1 + 2 + 4
        sqrt(6.0 - 2.0 * sqrt(2.0)),  # 8: (1 - sqrt2)^2 + 1 + 2
        sqrt(2.0 + 2.0 / sqrt(6.0)),  # 9: |u - v| = sqrt(2 - 2 cos) on unit vectors
        0.5 * (_kl_term(1 / s5, 2 / s5) + _kl_term(0.0, 1 / s5) + _kl_term(2 / s5, 0.0)),  # 10: (1,0,2)/s5, (2,1,0)/s5
        sqrt(2.0 / 3.0) + 1.0 + 1.0,  # 11
        (1 / s5) / (3 / s5) ** 2,  # 12: = sqrt(5) / 9
    ]
    got = similarities(np.array([[1.0, -1.0, 2.0]]), np.array([[2.0, 1.0, -2.0]]))
    np.testing.assert_allclose(got[0], expected, rtol=1e-9)
    assert expected[11] == pytest.approx(sqrt(5) / 9)


def test_negative_modes():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    got_abs = similarities(a, b, negative="abs")
    on_abs = similarities(np.abs(a), np.abs(b))
    transformed = [1, 2, 3, 5, 7, 9, 10, 11]
    np.testing.assert_allclose(got_abs[:, transformed], on_abs[:, transformed], rtol=1e-12)
    np.testing.assert_allclose(got_abs[:, [0, 4, 6, 8]], similarities(a, b)[:, [0, 4, 6, 8]], rtol=1e-12)
    with pytest.raises(ValueError, match="negative entries and negative='error'"):
        similarities(a, b, negative="error")
    np.testing.assert_allclose(
        similarities(np.abs(a), np.abs(b), negative="error"), on_abs, rtol=1e-12
    )  # non-negative input: every mode is the identity
    with pytest.raises(ValueError, match="negative must be one of"):
        similarities(a, b, negative="relu")


def test_zero_vectors_give_finite_hand_values():
    x1 = np.array([[0.0, 0.0], [0.0, 0.0]])
    x2 = np.array([[1.0, 0.0], [0.0, 0.0]])
    got = similarities(x1, x2)
    assert np.isfinite(got).all()
    expected_one_zero = [0, 0, 0, 0, 0, 1, 1, 1, 1, 0.5 * log((1 + EPS) / EPS), 1, 0]
    np.testing.assert_allclose(got[0], expected_one_zero, rtol=1e-12)
    np.testing.assert_array_equal(got[1], np.zeros(12))


def _reference_pair(u, v, norm="l2"):
    """One pair, one dimension at a time, written from PROTOCOL.md's table with our documented edge rules."""
    pu, pv = [max(x, 0.0) for x in u], [max(x, 0.0) for x in v]

    def normed(x):
        n = math.sqrt(sum(t * t for t in x)) if norm == "l2" else sum(abs(t) for t in x) if norm == "l1" else 1.0
        return [t / n for t in x] if n > 0 else list(x)

    def div(a, b):
        return a / b if b != 0 else 0.0

    nu, nv, qu, qv = normed(u), normed(v), normed(pu), normed(pv)
    d = range(len(u))
    return [
        sum(u[i] * v[i] for i in d),
        math.sqrt(sum(pu[i] * pv[i] for i in d)),
        math.sqrt(sum(math.sqrt(pu[i]) * math.sqrt(pv[i]) for i in d)),
        math.sqrt(sum(div(pu[i] * pv[i], pu[i] + pv[i]) for i in d)),
        div(sum(u[i] * v[i] for i in d), math.sqrt(sum(t * t for t in u)) * math.sqrt(sum(t * t for t in v))),
        math.sqrt(sum(div((pu[i] - pv[i]) ** 2, pu[i] + pv[i]) for i in d)),
        sum(abs(u[i] - v[i]) for i in d),
        math.sqrt(sum((math.sqrt(pu[i]) - math.sqrt(pv[i])) ** 2 for i in d)),
        math.sqrt(sum((nu[i] - nv[i]) ** 2 for i in d)),
        0.5 * sum(qu[i] * log((qu[i] + EPS) / (qv[i] + EPS)) + qv[i] * log((qv[i] + EPS) / (qu[i] + EPS)) for i in d),
        sum(div(math.sqrt(max(qu[i], qv[i])), math.sqrt(qu[i] + qv[i])) for i in d),
        div(sum(min(qu[i], qv[i]) for i in d), sum(qu) * sum(qv)),
    ]


@pytest.mark.parametrize("norm", ["l2", "l1", "none"])
@pytest.mark.parametrize("signed", [False, True])
def test_vectorised_equals_per_pair_loop(norm, signed, monkeypatch):
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(23, 9)), rng.normal(size=(23, 9))
    if not signed:
        a, b = np.maximum(a, 0), np.maximum(b, 0)  # post-ReLU-like: many exact zeros
    a[4] = 0.0
    b[7] = 0.0
    monkeypatch.setattr(aslan, "_CHUNK_ELEMENTS", 9 * 4)  # 4 pairs per block: 23 pairs -> 6 blocks, last one short
    got = similarities(a, b, last_four_norm=norm)
    expected = np.array([_reference_pair(list(a[i]), list(b[i]), norm) for i in range(23)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_l1_normalisation_makes_row_12_plain_histogram_intersection():
    rng = np.random.default_rng(6)
    a, b = rng.random((10, 7)), rng.random((10, 7))
    got = similarities(a, b, last_four_norm="l1")[:, 11]
    ha, hb = a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
    np.testing.assert_allclose(got, np.minimum(ha, hb).sum(1), rtol=1e-12)


def test_pair_features_layout_and_indices():
    rng = np.random.default_rng(7)
    layers = {"pool3": rng.random((6, 4)), "pool4": rng.random((6, 5)), "pool5": rng.random((6, 3))}
    first, second = np.array([0, 2, 5]), np.array([1, 2, 3])
    out = pair_features(layers, first, second)
    assert out.shape == (3, 36)
    for j, feats in enumerate(layers.values()):
        np.testing.assert_array_equal(out[:, 12 * j : 12 * (j + 1)], similarities(feats[first], feats[second]))
    names = feature_names(list(layers))
    assert len(names) == 36 and names[0] == "pool3/inner_product" and names[-1] == "pool5/intersection_over_totals"
    assert len(SIMILARITY_NAMES) == 12 and len(set(SIMILARITY_NAMES)) == 12
    with pytest.raises(ValueError, match=r"second must lie in \[0, 6\)"):
        pair_features(layers, first, np.array([1, 2, 6]))
    with pytest.raises(ValueError, match="layer 'b' has 5 rows"):
        pair_features({"a": np.ones((6, 2)), "b": np.ones((5, 2))}, first, second)
    with pytest.raises(ValueError, match="feats_by_layer is empty"):
        pair_features({}, first, second)


def test_video_features_mean_then_l2():
    clips = np.array([[1.0, 0.0], [3.0, 4.0], [0.0, 0.0], [0.0, 2.0]])
    out = video_features(clips, np.array([0, 0, 1, 2]), 3)
    np.testing.assert_allclose(out, [[2 / sqrt(8), 2 / sqrt(8)], [0.0, 0.0], [0.0, 1.0]], rtol=1e-12)


def test_standard_error_by_hand():
    # mean 0.6; squared deviations .01 .01 .04 .04 -> sum .10; sigma = sqrt(.10 / 3); SE = sigma / 2.
    assert standard_error(np.array([0.5, 0.7, 0.4, 0.8])) == pytest.approx(sqrt(0.10 / 3) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 values"):
        standard_error(np.array([0.5]))


def _synthetic_pairs(rng, n_folds=10, per_fold=60, signal=2.0, n_feats=6):
    same = np.tile(np.repeat([True, False], per_fold // 2), n_folds)
    folds = np.repeat(np.arange(n_folds), per_fold)
    x = rng.normal(size=(same.size, n_feats))
    x[:, 0] += signal * np.where(same, 1.0, -1.0)
    # Columns on wildly different scales: standardisation has work to do.
    return x * np.logspace(-3, 3, n_feats), same, folds


def test_separable_case_reaches_high_accuracy_and_fields_agree():
    x, same, folds = _synthetic_pairs(np.random.default_rng(8))
    res = evaluate_folds(x, same, folds)
    assert res.mean > 0.95 and res.auc > 0.98
    assert res.fold_accuracies.shape == (10,) and res.fold_ids.tolist() == list(range(10))
    assert res.mean == pytest.approx(res.fold_accuracies.mean())
    assert res.std_error == pytest.approx(res.fold_accuracies.std(ddof=1) / sqrt(10))
    for i, f in enumerate(res.fold_ids):
        test = folds == f
        assert res.fold_accuracies[i] == pytest.approx(((res.decision[test] > 0) == same[test]).mean())
        # The fold model reproduces the stored held-out decision values in input order.
        np.testing.assert_allclose(res.models[i].decision_function(x[test]), res.decision[test])
    summary = res.summary()
    assert summary["accuracy_mean"] == res.mean and len(summary["fold_aucs"]) == 10


def test_shuffled_labels_stay_near_chance():
    rng = np.random.default_rng(9)
    x, same, folds = _synthetic_pairs(rng, per_fold=100)
    res = evaluate_folds(x, rng.permutation(same), folds)
    assert abs(res.mean - 0.5) < 0.06
    assert abs(res.auc - 0.5) < 0.06


def _auc_mann_whitney(labels, scores):
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


def test_auc_pooled_and_per_fold_match_sklearn_and_mann_whitney():
    x, same, folds = _synthetic_pairs(np.random.default_rng(10), signal=0.4)
    res = evaluate_folds(x, same, folds)
    assert res.auc == pytest.approx(roc_auc_score(same, res.decision), abs=1e-12)
    assert res.auc == pytest.approx(_auc_mann_whitney(same, res.decision), abs=1e-12)
    per_fold = [_auc_mann_whitney(same[folds == f], res.decision[folds == f]) for f in range(10)]
    np.testing.assert_allclose(res.fold_aucs, per_fold, atol=1e-12)
    assert res.auc_fold_mean == pytest.approx(np.mean(per_fold))
    fpr, tpr = res.roc
    assert fpr[0] == 0 and tpr[-1] == 1 and (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert np.trapezoid(tpr, fpr) == pytest.approx(res.auc, abs=1e-12)


def test_standardisation_and_svm_never_see_the_held_out_fold():
    rng = np.random.default_rng(11)
    x, same, folds = _synthetic_pairs(rng)
    held = 3
    before = evaluate_folds(x, same, folds)
    x2 = x.copy()
    x2[folds == held] = x2[folds == held] * 1e6 + 1e9  # only the held-out fold's inputs change
    after = evaluate_folds(x2, same, folds)
    i = int(np.flatnonzero(before.fold_ids == held)[0])
    for attr in ("mean_", "scale_"):
        np.testing.assert_array_equal(getattr(after.models[i][0], attr), getattr(before.models[i][0], attr))
    np.testing.assert_array_equal(after.models[i][-1].coef_, before.models[i][-1].coef_)
    np.testing.assert_array_equal(after.models[i][-1].intercept_, before.models[i][-1].intercept_)
    # Fold 3's predictions change only through its own inputs: the unchanged model applied to the new rows.
    test = folds == held
    np.testing.assert_allclose(after.decision[test], before.models[i].decision_function(x2[test]))
    # The test could fail: every other fold trains on fold 3, so its scaler does see the change.
    for j in range(10):
        if j != i:
            assert not np.allclose(after.models[j][0].mean_, before.models[j][0].mean_)


def test_bad_inputs_name_the_problem():
    x, same, folds = _synthetic_pairs(np.random.default_rng(12), n_folds=3)
    with pytest.raises(ValueError, match="at least 2 folds"):
        evaluate_folds(x, same, np.zeros_like(folds))
    with pytest.raises(ValueError, match="same must be bool or 0/1"):
        evaluate_folds(x, same.astype(int) * 2, folds)
    with pytest.raises(ValueError, match="only one class"):
        evaluate_folds(x, np.ones_like(same), folds)
    with pytest.raises(ValueError, match="pair_feats contains NaN"):
        evaluate_folds(np.full_like(x, np.nan), same, folds)
    with pytest.raises(ValueError, match=r"must have shape \(180,\)"):
        evaluate_folds(x, same[:-1], folds)
    with pytest.raises(ValueError, match="x1 and x2 must be 2-D arrays of the same shape"):
        similarities(np.ones((2, 3)), np.ones((2, 4)))


def test_pair_arrays_from_a_real_pairs_csv(tmp_path):
    from v3s.data_manifest import read_pairs

    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "fold,first,second,same,first_action,second_action\n"
        "2,3,1,0,7,9\n"
        "1,1,2,1,7,7\n"
    )
    pairs = read_pairs(csv)
    row_of = {"0001": 0, "0002": 1, "0003": 2}
    first, second, same, folds = pair_arrays(pairs, row_of)
    # read_pairs orders by fold.
    np.testing.assert_array_equal(first, [0, 2])
    np.testing.assert_array_equal(second, [1, 0])
    np.testing.assert_array_equal(same, [True, False])
    np.testing.assert_array_equal(folds, [1, 2])
    with pytest.raises(ValueError, match=r"1 sample\(s\) of the pairs have no features, e.g. \['0003'\]"):
        pair_arrays(pairs, {"0001": 0, "0002": 1})
