"""Frame indices of the temporal classes, the short-video policy and the test-clip starts."""
from __future__ import annotations

import numpy as np
import pytest

from v3s.shared.labels import PRESETS, LabelSpace, TemporalClass
from v3s.shared.temporal import (clip_indices, draw_temporal_label, feasible_temporal_labels, linspace_clip_starts,
                                 sample_temporal, temporal_indices, temporal_offsets)

ALL_TEMPORAL = sorted({c for name in PRESETS for c in LabelSpace.preset(name).temporal_classes},
                      key=lambda c: (c.kind, c.s1, c.s2))


def paper_formula(c: TemporalClass, r: int, l1: int = 8, l2: int = 8) -> list[int]:
    """Section 3.2 with step s (n-1 skipped frames): V^s = [v_r, v_{r+s}, ...]; V^{s1,s2} = [V^{s1}, V^{s2}]."""
    if c.kind == "speed":
        return [r + i * c.s1 for i in range(l1 + l2)]
    first = [r + i * c.s1 for i in range(l1)]
    return first + [first[-1] + (i + 1) * c.s2 for i in range(l2)]


@pytest.mark.parametrize("c", ALL_TEMPORAL, ids=lambda c: c.name)
def test_indices_equal_the_formula_and_stay_inside(c):
    span = c.span()
    for num_frames in (span, span + 1, 300):
        for start in {0, min(1, num_frames - span), num_frames - span}:
            idx = temporal_indices(num_frames, c, start)
            assert idx.dtype == np.int64 and idx.shape == (16,)
            assert idx.tolist() == paper_formula(c, start)
            assert idx.min() >= 0 and idx.max() < num_frames
    assert np.all(np.diff(temporal_offsets(c)) >= 1)  # never frozen: speed 1 advances one frame per step
    with pytest.raises(ValueError, match="needs frames"):
        temporal_indices(span - 1, c, 0)


def test_steps_are_the_speeds():
    assert np.diff(temporal_offsets(TemporalClass("speed", 1, 1))).tolist() == [1] * 15
    assert np.diff(temporal_offsets(TemporalClass("pattern", 1, 2))).tolist() == [1] * 7 + [2] * 8
    assert np.diff(temporal_offsets(TemporalClass("pattern", 5, 4))).tolist() == [5] * 7 + [4] * 8


def test_random_start_covers_every_feasible_start():
    c, n = TemporalClass("speed", 3, 3), 50  # span 46: starts 0..4
    rng = np.random.default_rng(0)
    starts = {int(sample_temporal(n, c, rng)[0]) for _ in range(300)}
    assert starts == set(range(n - c.span() + 1))
    with pytest.raises(ValueError, match="needs 46 frames"):
        sample_temporal(45, c, rng)


def test_short_video_policy_draws_only_classes_that_fit():
    ls = LabelSpace()
    rng = np.random.default_rng(1)
    # 40 frames: TS 1 (16) and 2 (31), TP (1,2) (24) and (2,1) (23), (2,3) (39), (3,2) (38) fit; the rest do not.
    ok = feasible_temporal_labels(40, ls)
    assert [ls.temporal_classes[i].name for i in ok] == ["TS(1)", "TS(2)", "TP(1,2)", "TP(2,3)", "TP(2,1)", "TP(3,2)"]
    drawn = [draw_temporal_label(40, ls, rng) for _ in range(600)]
    assert set(drawn) == set(ok.tolist())
    counts = np.bincount(drawn, minlength=ls.n_temporal)[ok]
    assert counts.min() > 60  # uniform over the feasible classes
    for lab in drawn[:50]:
        idx = sample_temporal(40, ls.temporal_classes[lab], rng)
        assert idx.max() < 40 and np.all(np.diff(idx) >= 1)  # no clamped (frozen) or looped frames
    assert len(feasible_temporal_labels(ls.max_span(), ls)) == ls.n_temporal
    assert len(feasible_temporal_labels(ls.max_span() - 1, ls)) == ls.n_temporal - 1
    with pytest.raises(ValueError, match="shortest needs 16 frames"):
        draw_temporal_label(15, ls, rng)


def test_linspace_starts_match_the_peers_protocol():
    n = 100
    starts = linspace_clip_starts(n)
    expected = [int(c - 8) for c in np.linspace(8, n - 8, 10)]
    assert starts.tolist() == expected and starts[0] == 0 and starts[-1] == n - 16
    assert linspace_clip_starts(16).tolist() == [0] * 10
    short = linspace_clip_starts(5, n_clips=3)
    assert short.tolist() == [0, 0, 0]
    assert clip_indices(5, 0).tolist() == [0, 1, 2, 3, 4] + [4] * 11
    assert clip_indices(100, 84).tolist() == list(range(84, 100))
    with pytest.raises(ValueError, match="outside"):
        clip_indices(5, 5)
