"""LabelSpace: class lists, presets for Tables 1 and 3, label <-> parameter round trip, serialisation."""
from __future__ import annotations

import json
import pickle

import pytest

from v3s.shared.labels import PRESETS, LabelSpace, SpatialClass, TemporalClass

# (spatial classes, temporal classes) for every preset: identity + 6 SS + 4 sides x 3 SP; TS speeds + TP patterns.
EXPECTED_COUNTS = {
    "ss": (7, 1), "sp": (13, 1), "ss+sp": (19, 1), "ts": (1, 3), "tp": (1, 8), "ts+tp": (1, 11), "all": (19, 11),
    "ss-a": (7, 1), "ss-b": (7, 1), "ss-c": (7, 1), "sp-a": (13, 1), "sp-b": (13, 1), "sp-c": (13, 1),
    "ts2": (1, 2), "ts3": (1, 3), "ts4": (1, 4), "tp4": (1, 4), "tp6": (1, 6), "tp8": (1, 8),
}


def test_every_preset_is_listed_and_has_the_right_class_counts():
    assert set(PRESETS) == set(EXPECTED_COUNTS)
    for name, (n_s, n_t) in EXPECTED_COUNTS.items():
        ls = LabelSpace.preset(name)
        assert (ls.n_spatial, ls.n_temporal) == (n_s, n_t), name


def test_default_is_the_papers_chosen_values():
    ls = LabelSpace()
    assert ls == LabelSpace.preset("all")
    assert ls.spatial_classes[0] == SpatialClass("identity")
    assert [(c.a, c.b) for c in ls.spatial_classes[1:7]] == [(1, 1.15), (1, 1.3), (1, 1.45), (1.15, 1), (1.3, 1), (1.45, 1)]
    sp = ls.spatial_classes[7:]
    assert {(c.side, c.c) for c in sp} == {(s, c) for s in ("left", "right", "top", "bottom") for c in (0.8, 0.65, 0.5)}
    assert [c.name for c in ls.temporal_classes[:3]] == ["TS(1)", "TS(2)", "TS(3)"]
    assert [(c.s1, c.s2) for c in ls.temporal_classes[3:]] == [(1, 2), (2, 3), (3, 4), (4, 5), (2, 1), (3, 2), (4, 3), (5, 4)]


def test_table1_value_sets():
    assert LabelSpace.preset("ss-b").ss == ((1, 1.3), (1, 1.6), (1, 1.9), (1.3, 1), (1.6, 1), (1.9, 1))
    assert LabelSpace.preset("ss-c").ss[2] == (1, 2.35)
    assert LabelSpace.preset("sp-a").sp == (0.8, 0.75, 0.7)
    assert LabelSpace.preset("sp-b").sp == (0.8, 0.7, 0.6)
    assert LabelSpace.preset("ts4").ts == (1, 2, 3, 4)
    assert LabelSpace.preset("tp4").tp == ((1, 2), (2, 3), (2, 1), (3, 2))
    for name in ("ss-a", "ss-b", "sp-a", "ts2", "tp6"):  # single-family rows: the other head has one class
        ls = LabelSpace.preset(name)
        assert min(ls.n_spatial, ls.n_temporal) == 1


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ValueError, match="valid presets: ss, sp, ss\\+sp"):
        LabelSpace.preset("tp9")


def test_head_without_family_has_one_class():
    ls = LabelSpace(ss=(), sp=(), ts=(), tp=())
    assert ls.spatial_classes == (SpatialClass("identity"),)
    assert ls.temporal_classes == (TemporalClass("speed", 1, 1),)


@pytest.mark.parametrize("name", ["all", "ss+sp", "tp4", "ts4"])
def test_label_parameter_round_trip(name):
    ls = LabelSpace.preset(name)
    for i, c in enumerate(ls.spatial_classes):
        assert ls.spatial_label(c) == i
    for i, c in enumerate(ls.temporal_classes):
        assert ls.temporal_label(c) == i
    assert len(set(ls.spatial_classes)) == ls.n_spatial and len(set(ls.temporal_classes)) == ls.n_temporal
    with pytest.raises(ValueError, match="not a spatial class"):
        ls.spatial_label(SpatialClass("scale", a=3.0, b=1.0))


def test_dict_round_trip_through_json_and_pickle():
    for name in PRESETS:
        ls = LabelSpace.preset(name)
        back = LabelSpace.from_dict(json.loads(json.dumps(ls.to_dict())))
        assert back == ls and back.spatial_classes == ls.spatial_classes
        assert pickle.loads(pickle.dumps(ls)) == ls
    with pytest.raises(ValueError, match="unknown label-space keys \\['speed'\\]"):
        LabelSpace.from_dict({"speed": [1]})


@pytest.mark.parametrize("kwargs, match", [
    (dict(ss=((1, 1),)), "identity"), (dict(ss=((0.5, 1),)), "a >= 1"), (dict(sp=(1.2,)), "0 < c < 1"),
    (dict(sp_sides=("front",)), "front"), (dict(ts=(0,)), "positive"), (dict(tp=((2, 2),)), "s1 != s2"),
    (dict(ts=(1, 1)), "duplicate"), (dict(ss=((1, 2, 3),)), "pairs"),
])
def test_invalid_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelSpace(**kwargs)


def test_max_span():
    assert LabelSpace().max_span() == 1 + 7 * 4 + 8 * 5  # TP (4,5): 8 frames at step 4, 8 more at step 5
    assert LabelSpace.preset("ts").max_span() == 1 + 15 * 3
    assert LabelSpace.preset("ss").max_span() == 16
    assert LabelSpace.preset("ts").max_span(clip_len=8) == 1 + 7 * 3
