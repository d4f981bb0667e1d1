"""Clip -> video aggregation and accuracy metrics (v3s.evaluate.recognition)."""
from __future__ import annotations

import numpy as np
import pytest

from v3s.shared.metrics.recognition import (
    aggregate_clips,
    confusion_matrix,
    label_ranks,
    mean_over_clips,
    per_class_accuracy,
    softmax,
    topk_accuracy,
)


def test_mean_over_clips_matches_loop_in_any_clip_order():
    rng = np.random.default_rng(0)
    n_videos = 7
    video_index = rng.permutation(np.repeat(np.arange(n_videos), rng.integers(1, 5, n_videos)))
    values = rng.normal(size=(video_index.size, 3))
    expected = np.stack([values[video_index == v].mean(axis=0) for v in range(n_videos)])
    np.testing.assert_allclose(mean_over_clips(values, video_index, n_videos), expected, rtol=1e-12)


def test_a_video_without_clips_is_an_error_not_a_dropped_row():
    with pytest.raises(ValueError, match=r"video\(s\) have no clips, e.g. video \[2\]"):
        mean_over_clips(np.ones((3, 2)), np.array([0, 1, 1]), n_videos=3)
    with pytest.raises(ValueError, match="video_index must lie in"):
        mean_over_clips(np.ones((2, 2)), np.array([0, 5]), n_videos=3)
    with pytest.raises(ValueError, match="one entry per clip"):
        mean_over_clips(np.ones((3, 2)), np.array([0, 1]), n_videos=2)


def test_prob_and_logit_averaging_can_pick_different_classes():
    # One video, two clips. Clip 1 is confident in class 0; clip 2 splits its mass between classes 1 and 2.
    # Logit mean: [5, 6, 6] -> class 1. Probability mean: ~([1, 0, 0] + [0, .5, .5]) / 2 = [.5, .25, .25] -> class 0.
    logits = np.array([[10.0, 0.0, 0.0], [0.0, 12.0, 12.0]])
    idx = np.array([0, 0])
    by_logit = aggregate_clips(logits, idx, 1, mode="logit")
    by_prob = aggregate_clips(logits, idx, 1, mode="prob")
    np.testing.assert_allclose(by_logit, [[5.0, 6.0, 6.0]])
    p1 = softmax(logits[:1])[0]
    p2 = softmax(logits[1:])[0]
    np.testing.assert_allclose(by_prob[0], (p1 + p2) / 2, rtol=1e-12)
    # By hand: p1[0] = 1/(1 + 2e^-10) ~ 1 and p2[1] = p2[2] = 1/(2 + e^-12) ~ 1/2.
    np.testing.assert_allclose(by_prob[0], [0.5, 0.25, 0.25], atol=1e-4)
    assert by_logit[0].argmax() == 1
    assert by_prob[0].argmax() == 0


def test_prob_rows_sum_to_one_and_softmax_is_overflow_safe():
    logits = np.array([[1000.0, 999.0], [-1000.0, -1001.0], [3.0, 1.0]])
    out = aggregate_clips(logits, np.array([0, 0, 1]), 2)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
    e = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(out[0], [e, 1 - e], rtol=1e-12)


def test_aggregate_rejects_unknown_mode_and_nan():
    with pytest.raises(ValueError, match="mode must be one of"):
        aggregate_clips(np.zeros((1, 2)), np.array([0]), 1, mode="mean")
    with pytest.raises(ValueError, match="NaN or inf"):
        aggregate_clips(np.array([[np.nan, 0.0]]), np.array([0]), 1)


def _topk_bruteforce(scores, labels, k):
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.mean([labels[i] in order[i] for i in range(len(labels))])


def test_topk_matches_stable_argsort_on_random_scores_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(200, 10)).astype(float)  # few distinct values -> many ties
    labels = rng.integers(0, 10, size=200)
    got = topk_accuracy(scores, labels, ks=(1, 2, 5, 10))
    for k in (1, 2, 5, 10):
        assert got[k] == pytest.approx(_topk_bruteforce(scores, labels, k), abs=0)
    assert got[10] == 1.0


def test_topk_tie_goes_to_lower_class_index():
    scores = np.array([[0.3, 0.3, 0.3, 0.1]] * 3)
    labels = np.array([0, 1, 2])
    np.testing.assert_array_equal(label_ranks(scores, labels), [0, 1, 2])
    assert topk_accuracy(scores, labels, ks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}
    # The lower-index rule agrees with argmax as the top-1 prediction.
    assert scores.argmax(axis=1).tolist() == [0, 0, 0]


def test_topk_rejects_bad_k_and_labels():
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        topk_accuracy(np.zeros((2, 3)), np.array([0, 1]), ks=(5,))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        topk_accuracy(np.zeros((2, 3)), np.array([0, 3]), ks=(1,))


def test_confusion_and_per_class_accuracy_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 3])
    pred = np.array([0, 1, 0, 1, 0, 3])
    cm = confusion_matrix(pred, labels, 4)
    expected = np.array([[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype.kind == "i"
    acc = per_class_accuracy(pred, labels, 4)
    np.testing.assert_allclose(acc[[0, 1, 3]], [2 / 3, 1 / 2, 1.0])
    assert np.isnan(acc[2])  # class 2 has no samples


def test_confusion_matches_sklearn():
    from sklearn.metrics import confusion_matrix as sk_confusion

    rng = np.random.default_rng(2)
    labels, pred = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    np.testing.assert_array_equal(confusion_matrix(pred, labels, 6), sk_confusion(labels, pred, labels=range(6)))
