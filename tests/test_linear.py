"""Linear classification on feature arrays (v3s.shared.metrics.linear): group-aware folds, C selection on the
train list only, standardisation fitted on training data only."""
from __future__ import annotations

import numpy as np
import pytest

from v3s.shared.metrics.linear import check_cs, group_folds, linear_probe


def ucf_like(n_classes=4, n_groups=6, per_group=3, dim=10, signal=3.0, seed=0):
    """Features with a class centre plus a strong per-(class, group) offset, like clips of one recording."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * signal
    rows, labels, groups = [], [], []
    for g in range(n_groups):
        for c in range(n_classes):
            offset = rng.normal(size=dim) * 2
            for _ in range(per_group):
                rows.append(centres[c] + offset + 0.1 * rng.normal(size=dim))
                labels.append(c)
                groups.append(f"g{g + 1:02d}")
    return np.array(rows), np.array(labels), np.array(groups)


def test_folds_keep_groups_whole_and_every_class_in_each_fold():
    _, y, groups = ucf_like(n_groups=7)
    folds = group_folds(y, groups, 3)
    assert len(folds) == 3
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))  # every video validates exactly once
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])  # no group straddles training and validation
        assert set(y[va]) == set(y) and set(y[tr]) == set(y)
    assert group_folds(y, groups, 3)[0][1].tolist() == folds[0][1].tolist()  # deterministic


def test_fold_errors_name_the_class_or_the_groups():
    _, y, groups = ucf_like(n_groups=2, per_group=1)
    names = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match=r"4 classes have fewer train videos than --folds 3: \{'a': 2, .*"
                                         r"pass --folds 2 or fewer"):
        group_folds(y, groups, 3, names)
    _, y, groups = ucf_like(n_groups=2, per_group=3)
    with pytest.raises(ValueError, match="the train list has 2 video groups, fewer than --folds 3 .*--folds 2 or fewer"):
        group_folds(y, groups, 3)
    with pytest.raises(ValueError, match=r"--folds 1 is out of range"):
        group_folds(y, groups, 1)
    with pytest.raises(ValueError, match="has 1 class"):
        group_folds(np.zeros(6, int), np.arange(6), 2)
    for bad in ([0.1, 0], [-1.0], [float("nan")], []):
        with pytest.raises(ValueError, match="--cs must be numbers > 0"):
            check_cs(bad)


def test_separable_features_are_classified_and_top5_needs_five_classes():
    x, y, g = ucf_like(n_classes=6, n_groups=5, signal=6.0)
    test_x, test_y, _ = ucf_like(n_classes=6, n_groups=2, signal=6.0, seed=0)
    r = linear_probe(x, y, g, test_x, test_y, 6, cs=(0.01, 1.0), n_folds=5)
    assert r.top1 == 1.0 and r.top5 == 1.0 and r.cv_folds.shape == (2, 5)
    assert sum(r.fold_sizes) == len(y)
    x4, y4, g4 = ucf_like(n_classes=4, n_groups=4)
    assert linear_probe(x4, y4, g4, x4, y4, 4, cs=(1.0,), n_folds=2).top5 is None


def test_noise_stays_near_chance():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 20)), np.repeat(np.arange(5), 40)
    r = linear_probe(x, y, np.arange(200) % 8, rng.normal(size=(100, 20)), np.repeat(np.arange(5), 20), 5,
                     cs=(0.01, 1.0), n_folds=4)
    assert r.top1 < 0.4 and r.cv_mean.max() < 0.4


def test_test_list_never_reaches_the_search_or_the_scaler():
    """Scaling and shifting only the test features by huge factors leaves every CV score, the chosen C, and the
    fitted scaler and weights bit-identical: the test list is used once, to score the refitted model."""
    x, y, g = ucf_like()
    test_x, test_y, _ = ucf_like(seed=5)
    a = linear_probe(x, y, g, test_x, test_y, 4, cs=(0.001, 0.1, 10.0), n_folds=3)
    b = linear_probe(x, y, g, test_x * 1e6 + 1e9, test_y, 4, cs=(0.001, 0.1, 10.0), n_folds=3)
    assert np.array_equal(a.cv_folds, b.cv_folds) and a.C == b.C
    for step in ("standardscaler", "logisticregression"):
        for name in ("mean_", "scale_", "coef_", "intercept_"):
            if hasattr(a.model.named_steps[step], name):
                assert np.array_equal(getattr(a.model.named_steps[step], name), getattr(b.model.named_steps[step], name))
    # The scaler is the train list's own: its mean is the train features' mean.
    np.testing.assert_allclose(a.model.named_steps["standardscaler"].mean_, x.mean(axis=0))


def test_equal_scores_choose_the_smaller_c():
    x, y, g = ucf_like(signal=20.0)
    r = linear_probe(x, y, g, x, y, 4, cs=(10.0, 0.1, 1.0), n_folds=3)
    assert r.cs == [0.1, 1.0, 10.0] and (r.cv_mean == 1.0).all() and r.C == 0.1


def test_convergence_is_reported():
    x, y, g = ucf_like(n_groups=3)
    r = linear_probe(x, y, g, x, y, 4, cs=(1e4,), n_folds=3, max_iter=1)
    assert r.not_converged == {1e4: 4}  # 3 folds + the final fit
