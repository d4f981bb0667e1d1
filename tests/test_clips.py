"""Datasets over a real (small) v3s store: shapes, dtypes, labels, determinism, and reading only needed frames."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from v3s.preprocess.store_writer import init_store, write_shard
from v3s.shared import store as st
from v3s.shared.clips import EvalClips, PretextClips, TrainClips
from v3s.shared.labels import LabelSpace
from v3s.shared.spatial import pretext_batch
from v3s.shared.temporal import linspace_clip_starts, strided_clip_starts

H, W = 24, 32
# rel_path -> (frames, class label, role in split "1")
VIDEOS = {"a/v1.avi": (90, 0, "train"), "a/v2.avi": (40, 0, "train"), "b/v3.avi": (70, 1, "train"),
          "b/v4.avi": (10, 1, "train"), "b/v5.avi": (33, 1, "test")}


def gray(t: int) -> int:
    return 10 + 2 * t


def frame_index(frame: np.ndarray) -> int:
    """Frame t is stored as a flat grey image of value 10 + 2t; JPEG keeps a flat block within +-1."""
    return int(round((float(frame.mean()) - 10) / 2))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> st.Store:
    root = init_store(tmp_path_factory.mktemp("store") / "s")
    (root / "toy").mkdir()
    rows, blobs, offsets = [], [], []
    for rel, (n, label, role) in VIDEOS.items():
        jpegs = [cv2.imencode(".jpg", np.full((H, W, 3), gray(t), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                 for t in range(n)]
        blobs.append(b"".join(jpegs))
        offsets.append(np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]).astype(np.int64))
        rows.append(dict(rel_path=rel, status="ok", reason="", class_name=rel[0], label=label,
                         splits=json.dumps({"1": role}), num_frames=n, fps=25.0, height=H, width=W, src_height=H,
                         src_width=W, src_codec="synthetic", src_rotation=0, src_bytes=-1, src_mtime_ns=-1))
    attrs = {"classes": ["a", "b"], "split_ids": ["1"], "settings": {"height": H, "width": W}}
    write_shard(root / "toy" / st.shard_name(0), "toy", attrs, rows, blobs, offsets)
    return st.Store(root)


class ReadLog:
    """A spy around the real store: records which frames each read asked for."""

    def __init__(self, store: st.Store) -> None:
        self.store, self.reads = store, []

    def videos(self, *a, **k):
        return self.store.videos(*a, **k)

    def read_frames(self, key, indices):
        self.reads.append((key, list(map(int, indices))))
        return self.store.read_frames(key, indices)


def test_pretext_items_read_only_the_clip_frames(store):
    ls = LabelSpace()
    log = ReadLog(store)
    ds = PretextClips(log, "toy", "1", "train", ls, seed=3)
    assert [v.rel_path for v in ds.videos] == ["a/v1.avi", "a/v2.avi", "b/v3.avi"] and ds.dropped == ["toy/b/v4.avi"]
    seen_t = set()
    for epoch in range(8):
        for i in range(len(ds)):
            item = ds[(epoch, i)]
            clip, (s, t) = item.clip, item.targets.tolist()
            assert clip.shape == (16, H, W, 3) and clip.dtype == torch.uint8
            assert 0 <= s < ls.n_spatial and 0 <= t < ls.n_temporal
            key, indices = log.reads[-1]
            assert key == ds.videos[i].key and len(indices) == 16  # one read of exactly the clip's frames
            got = [frame_index(f) for f in clip.numpy()]
            assert got == indices
            steps = np.diff(got)
            c = ls.temporal_classes[t]
            assert steps.tolist() == [c.s1] * 7 + [c.s2] * 8
            assert max(got) < ds.videos[i].num_frames
            seen_t.add(t)
    assert len(log.reads) == 8 * 3 and len(seen_t) > 4


def test_pretext_is_deterministic_in_seed_epoch_index(store):
    ls = LabelSpace()
    a, b = PretextClips(store, "toy", "1", "train", ls, seed=1), PretextClips(store, "toy", "1", "train", ls, seed=1)
    for i in range(len(a)):
        (ca, ga, (sa, ta)), (cb, gb, (sb, tb)) = [(x.clip, x.geometry, x.targets.tolist()) for x in (a[(4, i)], b[(4, i)])]
        assert torch.equal(ca, cb) and (sa, ta) == (sb, tb)
        assert torch.equal(ga, gb)
    draws = set()
    for e in range(6):
        items = [a[(e, i)] for i in range(len(a))]
        draws.add(tuple((s, t, frame_index(c[0].numpy())) for c, (s, t) in ((x.clip, x.targets.tolist()) for x in items)))
    assert len(draws) == 6  # epochs differ


def test_pretext_batches_through_a_dataloader_worker(store):
    ls = LabelSpace.preset("ts+tp")
    ds = PretextClips(store, "toy", "1", "train", ls, clip_len=8)
    assert ds.dropped == []  # the shortest 8-frame class (speed 1) needs 8 frames; v4 has 10
    loader = DataLoader(ds, batch_size=2, num_workers=1)
    batch = next(iter(loader))
    clips, s, t = batch.clip, batch.targets[:, 0], batch.targets[:, 1]
    assert clips.shape == (2, 8, H, W, 3) and clips.dtype == torch.uint8 and s.dtype == torch.int64
    out = pretext_batch(clips, s, ls, torch.Generator().manual_seed(0), out_size=16)
    assert out.shape == (2, 3, 8, 16, 16)


def test_train_clips(store):
    log = ReadLog(store)
    ds = TrainClips(log, "toy", "1", "train", seed=0)
    assert len(ds) == 4
    starts = set()
    for e in range(20):
        clip, (label,) = ds[(e, 0)].clip, ds[(e, 0)].targets.tolist()
        got = [frame_index(f) for f in clip.numpy()]
        assert clip.shape == (16, H, W, 3) and label == 0 and np.all(np.diff(got) == 1)
        assert log.reads[-1][1] == got
        starts.add(got[0])
    assert len(starts) > 10 and max(starts) <= 90 - 16
    clip, (label,) = ds[3].clip, ds[3].targets.tolist()  # 10 frames: the last frame repeats
    assert [frame_index(f) for f in clip.numpy()] == list(range(10)) + [9] * 6 and label == 1
    sub = TrainClips(store, "toy", "1", "train", videos=["toy/b/v3.avi", "toy/a/v1.avi"])
    assert [v.rel_path for v in sub.videos] == ["b/v3.avi", "a/v1.avi"]
    with pytest.raises(ValueError, match="not train videos"):
        TrainClips(store, "toy", "1", "train", videos=["toy/b/v5.avi"])


def test_eval_clips_follow_the_linspace_protocol(store):
    ds = EvalClips(store, "toy", "1", None, n_clips=10)
    assert len(ds) == 5 * 10
    vi = [v.rel_path for v in ds.videos].index("b/v5.avi")
    for ci in range(10):
        item = ds[vi * 10 + ci]
        clip, (label,), video = item.clip, item.targets.tolist(), item.video
        assert video == vi and label == 1 and clip.shape == (16, H, W, 3)
        start = int(linspace_clip_starts(33)[ci])
        assert [frame_index(f) for f in clip.numpy()] == list(range(start, start + 16))
    loader = DataLoader(ds, batch_size=7, drop_last=False)
    videos = torch.cat([b.video for b in loader])
    assert torch.equal(torch.bincount(videos), torch.full((5,), 10))  # no video or clip dropped


def test_eval_clips_take_another_start_policy(store):
    """`starts` replaces the linspace clips (evaluation's ASLAN stride clips); items stay in video, then clip order."""
    ds = EvalClips(store, "toy", "1", None, clip_len=16, starts=lambda n: strided_clip_starts(n, 16, 8))
    expected = [(vi, s) for vi, v in enumerate(ds.videos) for s in strided_clip_starts(v.num_frames, 16, 8).tolist()]
    assert len(ds) == len(expected) == 10 + 4 + 7 + 1 + 3  # 90, 40, 70, 10 (short: one clip), 33 frames
    for i, (vi, start) in enumerate(expected):
        clip, (label,), video = ds[i].clip, ds[i].targets.tolist(), ds[i].video
        n = ds.videos[vi].num_frames
        assert video == vi and label == ds.videos[vi].label
        assert [frame_index(f) for f in clip.numpy()] == [min(start + j, n - 1) for j in range(16)]


def test_frame_step_reads_every_kth_frame_in_training_and_test_clips(store):
    """--frame-step k: clips of clip_len frames k apart, starts chosen over the span (clip_len - 1) k + 1."""
    ds = TrainClips(store, "toy", "1", "train", clip_len=8, seed=0, frame_step=3)
    starts = set()
    for e in range(20):
        got = [frame_index(f) for f in ds[(e, 0)].clip.numpy()]   # 90 frames, span 22
        assert np.all(np.diff(got) == 3)
        starts.add(got[0])
    assert len(starts) > 10 and max(starts) <= 90 - 22
    assert [frame_index(f) for f in ds[3][0].numpy()] == [0, 3, 6, 9, 9, 9, 9, 9]   # 10 frames: last repeats
    ev = EvalClips(store, "toy", "1", None, n_clips=4, clip_len=8, frame_step=3)
    vi = [v.rel_path for v in ev.videos].index("b/v5.avi")   # 33 frames
    for ci, start in enumerate(linspace_clip_starts(33, 4, 22).tolist()):
        assert [frame_index(f) for f in ev[vi * 4 + ci][0].numpy()] == list(range(start, start + 22, 3))
    with pytest.raises(ValueError, match="frame_step"):
        TrainClips(store, "toy", "1", "train", frame_step=0)
