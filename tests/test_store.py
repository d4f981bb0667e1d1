"""The frame store: reader API, the documented schema read with plain h5py, DataLoader workers, damage detection."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.preprocess.store_report import summarize_store, verify_store
from v3s.shared.store import SCHEMA_VERSION, Store, VideoInfo, shard_paths

H, W = 64, 96
PREP = str(Path(sys.executable).with_name("v3s-prep"))


def _clip(ffmpeg: str, path: Path, seconds: float, codec: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=25:duration={seconds}",
                    "-c:v", codec, "file:" + str(path)], check=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory, ffmpeg) -> Path:
    """A store with two datasets: a folder set (3 videos, lists for split 1) and a ucf101 root with one video."""
    root = tmp_path_factory.mktemp("folder")
    _clip(ffmpeg, root / "jump" / "j1.avi", 1.0, "mpeg4")
    _clip(ffmpeg, root / "jump" / "j2.mp4", 1.2, "libx264")
    _clip(ffmpeg, root / "run" / "r1.avi", 0.8, "libxvid")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 jump\n2 run\n")
    (lists / "trainlist01.txt").write_text("jump/j1.avi 1\nrun/r1.avi 2\n")
    (lists / "testlist01.txt").write_text("jump/j2.mp4\n")
    out = tmp_path_factory.mktemp("store") / "s"
    run_extract(ExtractConfig(root=str(root), dataset="folder", out=str(out), size=(H, W), jobs=1, quiet=True))
    ucf = tmp_path_factory.mktemp("ucf")
    _clip(ffmpeg, ucf / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", 1.0, "mpeg4")
    run_extract(ExtractConfig(root=str(ucf), dataset="ucf101", out=str(out), size=(H, W), jobs=1, quiet=True))
    return out


def test_open_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        Store(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a v3s store"):
        Store(tmp_path)
    (tmp_path / "f.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="f.h5"):
        Store(tmp_path / "f.h5")
    (tmp_path / "store.json").write_text(json.dumps({"format": "v3s-frame-store", "schema_version": 99}))
    with pytest.raises(ValueError, match="schema version 99"):
        Store(tmp_path)


def test_metadata_and_listing(store):
    s = Store(store)
    assert s.datasets == ("folder", "ucf101")
    assert s.classes("folder") == ("jump", "run") and len(s.classes("ucf101")) == 101
    assert s.split_ids("folder") == ("1",) and s.split_ids("ucf101") == ("1", "2", "3")
    vids = s.videos("folder")
    assert [v.rel_path for v in vids] == ["jump/j1.avi", "jump/j2.mp4", "run/r1.avi"]
    j1 = vids[0]
    assert isinstance(j1, VideoInfo) and j1.key == "folder/jump/j1.avi"
    assert (j1.class_name, j1.label, j1.num_frames, j1.fps, j1.height, j1.width) == ("jump", 0, 25, 25.0, H, W)
    assert dict(j1.splits) == {"1": "train"} and [v.num_frames for v in vids] == [25, 30, 20]
    assert [v.rel_path for v in s.videos("folder", "1", "test")] == ["jump/j2.mp4"]
    assert [v.rel_path for v in s.videos("folder", "1", "train")] == ["jump/j1.avi", "run/r1.avi"]
    assert [v.rel_path for v in s.videos("ucf101", "1", "train")] == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"]
    assert s.videos("ucf101", "1", "test") == []
    # Every other listed UCF101 video is recorded as missing, none as ok.
    fails = s.failures("ucf101")
    assert len(fails) == 13319 and {f["status"] for f in fails} == {"missing"}
    with pytest.raises(ValueError, match="'folder'"):
        s.videos("kinetics")
    with pytest.raises(ValueError, match=r"\['1'\]"):
        s.videos("folder", "2")
    with pytest.raises(ValueError, match="train"):
        s.videos("folder", "1", "validation")


def test_read_frames_any_order_with_repeats(store):
    s = Store(store)
    key = "folder/jump/j2.mp4"
    full = s.read_frames(key, range(30))
    assert full.dtype == np.uint8 and full.shape == (30, H, W, 3)
    idx = [29, 0, 7, 7, 3, 29, 15]
    np.testing.assert_array_equal(s.read_frames(key, idx), full[idx])
    np.testing.assert_array_equal(s.read_frames(key, np.array(idx)), full[idx])
    clip = s.read_clip_torch(key, idx)
    assert clip.dtype == torch.uint8 and torch.equal(clip, torch.from_numpy(full[idx]))
    assert s.read_frames(key, []).shape == (0, H, W, 3)
    with pytest.raises(IndexError, match="30"):
        s.read_frames(key, [0, 30])
    with pytest.raises(KeyError, match="nope"):
        s.read_frames("folder/nope.avi", [0])
    # Frames are really different (the testsrc2 pattern moves) and come back RGB: testsrc2's top-left
    # stripe differs between channels, so a BGR mix-up would show against an independent decode.
    assert np.abs(full[0].astype(int) - full[29]).mean() > 5


def test_round_trip_against_independent_decode(store, ffmpeg, tmp_path):
    s = Store(store)
    root = Path(json.loads(h5py.File(shard_paths(store / "folder")[0], "r").attrs["root"]))
    for v in s.videos("folder"):
        raw = subprocess.run([ffmpeg, "-v", "error", "-i", "file:" + str(root / v.rel_path), "-vf", f"scale={W}:{H}",
                              "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, stdout=subprocess.PIPE).stdout
        ref = np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3).astype(np.float32)
        got = s.read_frames(v.key, range(v.num_frames)).astype(np.float32)
        # testsrc2 at 64x96 is all sharp edges: OpenCV q90 errs ~7.4 here; ours must be no worse.
        assert len(ref) == v.num_frames and np.abs(got - ref).mean() < 7.5, v.rel_path
        assert np.abs(got[1:] - ref[:-1]).mean() > np.abs(got - ref).mean()


def test_plain_h5py_reader_as_documented(store):
    """docs/store.md says how to read a frame with h5py alone; this is that recipe."""
    s = Store(store)
    meta = json.loads((store / "store.json").read_text())
    assert meta == {"format": "v3s-frame-store", "schema_version": SCHEMA_VERSION}
    want = {}
    for path in sorted((store / "folder").glob("shard-*.h5")):  # newest shard last: later rows win
        with h5py.File(path, "r") as f:
            assert f.attrs["schema_version"] == SCHEMA_VERSION and json.loads(f.attrs["settings"])["height"] == H
            v = f["videos"]
            for i, rel in enumerate(v["rel_path"].asstr()[()]):
                if v["status"].asstr()[i] != "ok":
                    continue
                start, n = int(v["frame_start"][i]), int(v["num_frames"][i])
                t = n - 1  # the last frame
                a, b = f["offsets"][start + t], f["offsets"][start + t + 1]
                bgr = cv2.imdecode(f["frames"][a:b], cv2.IMREAD_COLOR)
                want[rel] = (n, bgr[..., ::-1])
    assert sorted(want) == [v.rel_path for v in s.videos("folder")]
    for v in s.videos("folder"):
        n, last = want[v.rel_path]
        assert n == v.num_frames
        np.testing.assert_array_equal(s.read_frames(v.key, [n - 1])[0], last)


class _Clips(torch.utils.data.Dataset):
    def __init__(self, store: Store, keys: list[str]):
        self.store, self.keys = store, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.store.read_clip_torch(self.keys[i], range(0, 16, 2))


def test_dataloader_workers_and_pickle(store):
    s = Store(store)
    keys = [v.key for v in s.videos("folder")] * 2
    expected = torch.stack([s.read_clip_torch(k, range(0, 16, 2)) for k in keys])  # parent opened its files first
    for ctx in ("fork", "spawn"):
        dl = torch.utils.data.DataLoader(_Clips(s, keys), batch_size=2, num_workers=2, multiprocessing_context=ctx)
        assert torch.equal(torch.cat(list(dl)), expected), ctx
    clone = pickle.loads(pickle.dumps(s))
    assert torch.equal(clone.read_clip_torch(keys[0], range(0, 16, 2)), expected[0])
    s.close()
    clone.close()


def test_partial_shards_are_invisible(store, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    first = shard_paths(copy / "folder")[0]
    shutil.copy(first, first.with_name("shard-000009.h5.partial"))
    (copy / "folder" / "shard-000010.h5.partial").write_bytes(b"half written")
    s = Store(copy)
    assert len(s.videos("folder")) == 3 and verify_store(copy) == []


def test_verify_names_damaged_videos(store, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    shard = shard_paths(copy / "folder")[0]
    with h5py.File(shard, "r+") as f:
        v = f["videos"]
        i = list(v["rel_path"].asstr()[()]).index("run/r1.avi")
        a = f["offsets"][int(v["frame_start"][i]) + 5]
        f["frames"][a : a + 200] = 0  # wipe frame 5's header
    problems = verify_store(copy)
    assert [k for k, _ in problems] == ["folder/run/r1.avi"] and "first: 5" in problems[0][1]
    r = subprocess.run([PREP, "verify", str(copy)], capture_output=True, text=True)
    assert r.returncode == 1 and "folder/run/r1.avi" in r.stderr
    ok = subprocess.run([PREP, "verify", str(store)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok, every frame decodes (folder " in ok.stdout and " videos, " in ok.stdout
    # A truncated shard is named too.
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    r = subprocess.run([PREP, "verify", str(copy)], capture_output=True, text=True)
    assert r.returncode == 1 and shard.name in r.stderr


def test_info_counts(store):
    rep = summarize_store(store)
    d = rep["datasets"]["folder"]
    assert d["videos"] == {"ok": 3, "failed": 0, "too_short": 0, "missing": 0}
    assert d["frames"] == 75 and d["splits"] == {"1": {"train": 2, "test": 1}}
    assert 0 < d["bytes_per_frame"] < H * W * 3 and d["size_on_disk"] >= d["frame_bytes"]
    assert rep["datasets"]["ucf101"]["videos"]["missing"] == 13319
    r = subprocess.run([PREP, "info", str(store), "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["datasets"]["folder"]["frames"] == 75
    r = subprocess.run([PREP, "info", str(store)], capture_output=True, text=True)
    assert "folder: ok 3" in r.stdout and "split 1: test 1, train 2" in r.stdout


def test_verify_reports_progress(store, capfd):
    assert verify_store(store, quiet=False) == []
    err = capfd.readouterr().err
    assert "verify folder: 3/3 videos" in err and "0 damaged" in err and "verify ucf101: 1/1 videos" in err
    assert verify_store(store) == [] and capfd.readouterr().err == ""  # quiet by default
    r = subprocess.run([PREP, "verify", str(store)], capture_output=True, text=True)
    assert r.returncode == 0 and "verify folder: 3/3 videos" in r.stderr and "\r" not in r.stderr


def test_scale_bench_smoke(reference_videos):
    """bench/bench_store_scale.py end to end at a tiny size (the 240,000-video run is in docs/store.md)."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_store_scale.py"
    r = subprocess.run([sys.executable, str(bench), "--videos", "900", "--shards", "3", "--ucf-videos", "200",
                        "--ucf-shards", "2", "--clips", "8", "--baseline-rev", "", "--reference", str(reference_videos)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| `Store(path)` |" in r.stdout and "825 train in split 1" in r.stdout and "rerun exit status 0" in r.stdout
