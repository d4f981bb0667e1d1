"""The store's write path and what readers make of it: the shard record, the index, missing, stray and damaged
shards, datasets read on their own, the fingerprint, memory per read. Real HDF5 files, tiny JPEG frames."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from v3s.preprocess.store_report import summarize_store, verify_store
from v3s.preprocess.store_writer import ShardWriter, init_store, prepare_dataset, write_index, write_record, write_shard
from v3s.shared import store as st
from v3s.shared.store import ShardError, Store, load_table, read_record, shard_name

H, W = 16, 24
PREP = str(Path(sys.executable).with_name("v3s-prep"))
ATTRS = {"classes": ["a", "b"], "split_ids": ["1"], "settings": {"height": H, "width": W}}


def jpegs(n: int, base: int = 0) -> tuple[bytes, np.ndarray]:
    """n flat grey frames (value base + 2t), JPEG-encoded: (bytes, (n + 1,) offsets)."""
    blobs = [cv2.imencode(".jpg", np.full((H, W, 3), (base + 2 * t) % 256, np.uint8))[1].tobytes() for t in range(n)]
    return b"".join(blobs), np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)


def row(rel: str, n: int, status: str = "ok", role: str = "train", src_bytes: int = 1) -> dict[str, object]:
    return dict(rel_path=rel, status=status, reason="" if status == "ok" else "why", class_name=rel[0],
                label="ab".index(rel[0]), splits=json.dumps({"1": role}), num_frames=n if status == "ok" else 0,
                fps=25.0, height=H, width=W, src_height=H, src_width=W, src_codec="mjpeg", src_rotation=0,
                src_bytes=src_bytes, src_mtime_ns=1)


def put(ddir: Path, index: int, videos: dict[str, int], base: int = 0, dataset: str = "toy") -> st.ShardInfo:
    """Write shard `index` of `ddir` holding videos rel -> frames (0 frames: a failed video)."""
    rows, data, offs = [], [], []
    for rel, n in videos.items():
        b, o = jpegs(n, base) if n else (b"", np.zeros(1, np.int64))
        rows.append(row(rel, n, "ok" if n else "failed"))
        data.append(b)
        offs.append(o)
    return write_shard(ddir / shard_name(index), dataset, ATTRS, rows, data, offs)


@pytest.fixture
def store(tmp_path) -> Path:
    """Dataset toy in three shards (b/v3 re-extracted in shard 2 with 12 frames), and dataset other in one."""
    root = init_store(tmp_path / "s")
    (root / "toy").mkdir()
    put(root / "toy", 0, {"a/v1.avi": 20, "a/v2.avi": 8, "b/v3.avi": 10})
    put(root / "toy", 1, {"b/v4.avi": 0, "b/v5.avi": 6})
    put(root / "toy", 2, {"b/v3.avi": 12}, base=100)
    (root / "other").mkdir()
    put(root / "other", 0, {"a/o1.avi": 5}, dataset="other")
    return root


def test_record_lists_every_shard_with_its_counts(store):
    rec = read_record(store / "toy")
    assert [s.name for s in rec] == [shard_name(i) for i in range(3)]
    assert [(s.videos, s.ok, s.frames) for s in rec] == [(3, 3, 38), (2, 1, 6), (1, 1, 12)]
    assert all(s.bytes == (store / "toy" / s.name).stat().st_size for s in rec)
    doc = json.loads((store / "toy" / st.RECORD_FILE).read_text())
    assert doc["format"] == st.RECORD_FORMAT and doc["dataset"] == "toy"
    with pytest.raises(ValueError, match="written once"):
        put(store / "toy", 1, {"a/x.avi": 3})


def test_index_and_tail_give_the_same_rows_as_the_shards(store):
    """The index covers a prefix of the record; later shards are read from their own tables; newest row wins."""
    no_index = Store(store).records("toy")
    assert [(r["rel_path"], r["num_frames"], r["shard"]) for r in no_index] == [
        ("a/v1.avi", 20, shard_name(0)), ("a/v2.avi", 8, shard_name(0)), ("b/v3.avi", 12, shard_name(2)),
        ("b/v4.avi", 0, shard_name(1)), ("b/v5.avi", 6, shard_name(1))]
    assert write_index(store / "toy") and not write_index(store / "toy")  # the second finds it current
    assert load_table(store / "toy").indexed == 3
    assert Store(store).records("toy") == no_index
    put(store / "toy", 3, {"a/v2.avi": 9}, base=50)
    t = load_table(store / "toy")
    assert t.indexed == 3 and len(t.shards) == 4
    s = Store(store)
    assert [v.num_frames for v in s.videos("toy")] == [20, 9, 12, 6]
    # The re-extracted videos read their new frames (flat grey 100 + 2t and 50 + 2t), not the old ones.
    assert abs(float(s.read_frames("toy/b/v3.avi", [11]).mean()) - 122) <= 2
    assert abs(float(s.read_frames("toy/a/v2.avi", [0]).mean()) - 50) <= 2
    write_index(store / "toy")
    assert Store(store).records("toy") == s.records("toy")


def test_missing_shard_is_refused_naming_it(store, tmp_path):
    """A dataset that lacks a recorded shard does not read; verify and pretraining say which file."""
    write_index(store / "toy")
    (store / "toy" / shard_name(1)).unlink()
    s = Store(store)
    for use in (lambda: s.videos("toy"), lambda: s.split("toy", "1", "train"), lambda: s.read_frames("toy/a/v1.avi", [0])):
        with pytest.raises(ShardError, match=r"shard-000001\.h5.* is missing"):
            use()
    problems = verify_store(store)
    assert [Path(k).name for k, _ in problems] == [shard_name(1)] and "missing" in problems[0][1]
    r = subprocess.run([PREP, "verify", str(store)], capture_output=True, text=True)
    assert r.returncode == 1 and "shard-000001.h5" in r.stderr and "ok, every frame" not in r.stdout
    with pytest.raises(ValueError, match="shard-000001.h5"):
        Store(str(store)).split("toy", "1", "train")
    with pytest.raises(ValueError, match="shard-000001.h5"):
        summarize_store(store)
    # A truncated shard is named too, by its size.
    shard = store / "toy" / shard_name(2)
    shard.write_bytes(shard.read_bytes()[:100])
    (store / "toy" / shard_name(1)).write_bytes(b"")
    with pytest.raises(ShardError, match="shard-00000[12].h5.* bytes"):
        Store(store).videos("toy")


def test_damaged_dataset_does_not_block_another(store):
    shard = store / "toy" / shard_name(0)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    s = Store(store)  # opening reads no dataset
    assert s.datasets == ("other", "toy")
    assert [v.key for v in s.videos("other")] == ["other/a/o1.avi"]
    assert s.read_frames("other/a/o1.avi", [4]).shape == (1, H, W, 3)
    with pytest.raises(ShardError, match=r"shard-000000\.h5"):
        s.videos("toy")
    assert [Path(k).name for k, _ in verify_store(store)] == [shard_name(0)]


def test_stray_shard_is_ignored_then_adopted(store):
    """A complete shard the record does not name (a kill between its rename and its record) is ignored with a
    warning by readers, reported by verify, and adopted by the next writer."""
    rec = read_record(store / "toy")
    write_record(store / "toy", "toy", rec[:2])  # as if killed before the record named shard 2
    with pytest.warns(UserWarning, match="shard-000002.h5.*not in the shard record"):
        s = Store(store)
        assert [v.num_frames for v in s.videos("toy")] == [20, 8, 10, 6]  # b/v3 as shard 0 holds it
    with pytest.warns(UserWarning, match="shard-000002.h5"):
        assert any("not in the shard record" in why for _, why in verify_store(store))
    prepare_dataset(store, "toy")
    assert [s.name for s in read_record(store / "toy")] == [shard_name(i) for i in range(3)]
    assert [v.num_frames for v in Store(store).videos("toy")] == [20, 8, 12, 6] and verify_store(store) == []
    # A stray numbered below a recorded shard was not written by this store's extract: refused, named.
    full = read_record(store / "toy")
    write_record(store / "toy", "toy", [full[0], full[2]])
    with pytest.raises(ValueError, match=r"shard-000001\.h5.*numbered below"):
        prepare_dataset(store, "toy")
    write_record(store / "toy", "toy", full)
    # So is a shard of another dataset.
    shutil.copy(store / "other" / shard_name(0), store / "toy" / shard_name(7))
    with pytest.raises(ValueError, match=r"shard-000007\.h5.*holds dataset 'other'"):
        prepare_dataset(store, "toy")


def test_store_written_before_records_stays_readable(store):
    for name in (st.RECORD_FILE, st.INDEX_FILE):
        (store / "toy" / name).unlink(missing_ok=True)
    s = Store(store)
    assert [v.num_frames for v in s.videos("toy")] == [20, 8, 12, 6]
    assert any("no shard record" in why for _, why in verify_store(store))
    prepare_dataset(store, "toy")  # what the next extract does first: record the shards found
    assert [r.name for r in read_record(store / "toy")] == [shard_name(i) for i in range(3)]
    assert verify_store(store) == []


def test_fingerprint(store, tmp_path):
    before = Store(store).fingerprint("toy")
    assert before == Store(store).fingerprint("toy") and len(before) == 64
    write_index(store / "toy")
    assert Store(store).fingerprint("toy") == before  # the index changes nothing that frames depend on
    assert Store(store).fingerprint("other") != before
    put(store / "toy", 3, {"a/v1.avi": 20})  # a video extracted again: same frames, a new shard
    again = Store(store).fingerprint("toy")
    assert again != before
    (store / "toy" / shard_name(3)).unlink()  # the shard removed with its record entry
    write_record(store / "toy", "toy", read_record(store / "toy")[:3])
    assert Store(store).fingerprint("toy") == before
    other = init_store(tmp_path / "t")
    shutil.copytree(store / "toy", other / "toy")
    assert Store(other).fingerprint("toy") == before  # content, not location
    settings = {**ATTRS, "settings": {"height": H, "width": W, "quality": 5}}
    (other / "toy2").mkdir()
    for i, vids in enumerate(({"a/v1.avi": 20, "a/v2.avi": 8, "b/v3.avi": 10}, {"b/v4.avi": 0, "b/v5.avi": 6},
                              {"b/v3.avi": 12})):
        rows, data, offs = [], [], []
        for rel, n in vids.items():
            b, o = jpegs(n, 100 if i == 2 else 0) if n else (b"", np.zeros(1, np.int64))
            rows.append(row(rel, n, "ok" if n else "failed"))
            data.append(b)
            offs.append(o)
        write_shard(other / "toy2" / shard_name(i), "toy", settings, rows, data, offs)
    assert Store(other).fingerprint("toy2") != before


def test_clip_reads_never_load_a_shard_s_offsets(tmp_path):
    """A reading process's memory does not grow with the frames in the store: offsets are read per clip."""
    root = init_store(tmp_path / "s")
    (root / "toy").mkdir()
    blob, offs = jpegs(1)
    n = 2_000_000  # one video of 2M (1-byte) frames after a real one: 16 MB of offsets in the shard
    big = np.concatenate([offs, offs[-1] + np.arange(1, n + 1)]).astype(np.int64)
    write_shard(root / "toy" / shard_name(0), "toy", ATTRS, [row("a/v1.avi", n + 1)], [blob + bytes(n)], [big])
    s = Store(root)
    s.videos("toy")
    tracemalloc.start()
    jp = s.read_jpegs("toy/a/v1.avi", [0, 1, 2, n - 7, n])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert jp[0] == blob and jp[1:] == [b"\0"] * 4
    assert peak < 2 << 20, peak  # the span's offsets (16 MB here) are read once, not kept
    assert s.read_frames("toy/a/v1.avi", [0]).shape == (1, H, W, 3)


def test_pickled_store_is_small_and_reads_what_its_parent_read(store):
    s = Store(store)
    vids = s.videos("toy")
    blob = pickle.dumps(s)
    assert len(blob) < 4096
    put(store / "toy", 3, {"b/v3.avi": 3}, base=200)  # the store changes after the parent listed it
    clone = pickle.loads(blob)
    assert clone.videos("toy") == vids  # the clone reads the shards its parent read
    np.testing.assert_array_equal(clone.read_frames("toy/b/v3.avi", [11]), s.read_frames("toy/b/v3.avi", [11]))
    assert [v.num_frames for v in Store(store).videos("toy")][2] == 3


def test_open_shards_are_bounded(tmp_path, monkeypatch):
    root = init_store(tmp_path / "s")
    (root / "toy").mkdir()
    for i in range(6):
        put(root / "toy", i, {f"a/v{i}.avi": 2})
    monkeypatch.setattr(st, "MAX_OPEN_SHARDS", 2)
    s = Store(root)
    for v in s.videos("toy"):
        s.read_frames(v.key, [1])

    def open_shards() -> int:
        return sum(os.readlink(f"/proc/self/fd/{fd}").startswith(str(root)) for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}"))

    assert open_shards() == 2
    s.close()
    assert open_shards() == 0


def test_shard_writer_writes_the_index_on_close(tmp_path):
    root = init_store(tmp_path / "s")
    ddir = root / "toy"
    ddir.mkdir()
    w = ShardWriter(ddir, "toy", ATTRS, 0, max_bytes=1, max_seconds=60, index_seconds=3600)
    for i in range(3):
        w.add(row(f"a/v{i}.avi", 4), *jpegs(4))
    assert w.written == 3 and not (ddir / st.INDEX_FILE).exists()  # one shard per video, index not due yet
    w.close()
    assert load_table(ddir).indexed == 3 and len(Store(root).videos("toy")) == 3
    assert not [p for p in ddir.iterdir() if p.name.startswith(".")]  # no temp file left behind
