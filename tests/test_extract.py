"""`v3s-prep extract` on real files: bad inputs, odd-but-valid inputs, kill-and-resume, rerun, reference videos, dask."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.preprocess.store_report import verify_store
from v3s.shared.store import Store, read_shard_table, shard_paths

PREP = [str(Path(sys.executable).with_name("v3s-prep"))]  # the installed console script
H, W = 48, 64  # small stored size keeps the tests fast; the default 128x171 is exercised in test_store


def make_clip(ffmpeg: str, path: Path, src: str = "testsrc2=size=96x64:rate=25:duration=1", args=(), pre=()) -> Path:
    """Encode a lavfi source to `path` (argv only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg, "-v", "error", "-y", *pre, "-f", "lavfi", "-i", src, *args, "file:" + str(path)]
    subprocess.run(cmd, check=True)
    return path


def ref_decode(ffmpeg: str, path: Path, h: int, w: int) -> np.ndarray:
    """An independent decode: ffmpeg to raw RGB at h x w, every decoded frame once."""
    out = subprocess.run([ffmpeg, "-v", "error", "-i", "file:" + str(path), "-vf", f"scale={w}:{h}",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, stdout=subprocess.PIPE).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)


def assert_matches(got: np.ndarray, ref: np.ndarray, name: str) -> None:
    """`got` equals `ref` within JPEG tolerance, frame for frame.

    testsrc2 shrunk to a few dozen pixels is mostly sharp edges, where any JPEG errs by 5-9 levels on
    average, so the bound is relative: no worse than OpenCV's own quality-90 JPEG of the reference frames
    (+0.5), and closer to the same frame than to its neighbour (catches a frame off by one).
    """
    import cv2

    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    g, r = got.astype(np.float32), ref.astype(np.float32)
    q90 = np.stack([cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(f[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])[1],
                                 cv2.IMREAD_COLOR)[..., ::-1] for f in ref]).astype(np.float32)
    err, bound = np.abs(g - r).mean(), np.abs(q90 - r).mean() + 0.5
    assert err <= bound, (name, err, bound)
    if len(ref) > 1 and np.abs(r[1:] - r[:-1]).mean() > 2 * bound:
        assert err < np.abs(g[1:] - r[:-1]).mean(), (name, "frames shifted by one")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*PREP, *args], capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_root(tmp_path_factory, ffmpeg) -> tuple[Path, Path]:
    """A folder dataset with two good videos, one too short, and each kind of bad input; plus split lists."""
    root = tmp_path_factory.mktemp("bad")
    make_clip(ffmpeg, root / "good" / "a.avi", args=["-c:v", "mpeg4"])
    make_clip(ffmpeg, root / "good" / "b.mp4", args=["-c:v", "libx264", "-preset", "ultrafast"])
    make_clip(ffmpeg, root / "good" / "short.avi", "testsrc2=size=96x64:rate=25:duration=0.4", ["-c:v", "libxvid"])
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.avi").write_bytes(b"")
    whole = make_clip(ffmpeg, bad / "whole.mp4", "testsrc2=size=96x64:rate=25:duration=2",
                      ["-c:v", "libx264", "-preset", "ultrafast"]).read_bytes()
    (bad / "whole.mp4").unlink()
    (bad / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # the moov atom is at the end: gone
    (bad / "random.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    make_clip(ffmpeg, bad / "audio_only.mp4", "sine=frequency=440:duration=1", ["-c:a", "aac"])
    (bad / "dir_like.mp4").mkdir()
    os.symlink(root / "nowhere.avi", bad / "dangling.avi")
    splits = tmp_path_factory.mktemp("bad_splits")
    (splits / "classInd.txt").write_text("1 bad\n2 good\n")
    listed = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*"))
    (splits / "trainlist01.txt").write_text("".join(f"{r} {1 if r.startswith('bad') else 2}\n" for r in listed))
    (splits / "testlist01.txt").write_text("good/ghost.avi\n")  # listed, not on disk
    return root, splits


EXPECTED_BAD = {
    "bad/zero.avi": ("failed", "empty"),
    "bad/truncated.mp4": ("failed", ""),
    "bad/random.avi": ("failed", ""),
    "bad/audio_only.mp4": ("failed", "no video stream"),
    "bad/dir_like.mp4": ("failed", "directory"),
    "bad/dangling.avi": ("missing", "dangling"),
    "good/ghost.avi": ("missing", "not found"),
    "good/short.avi": ("too_short", "10 frames"),
}


def test_bad_inputs_recorded_and_run_continues(bad_root, tmp_path):
    root, splits = bad_root
    out = tmp_path / "store"
    r = run_cli("extract", str(root), "--dataset", "folder", "--out", str(out), "--splits", str(splits),
                "--size", f"{H}x{W}", "--jobs", "2")
    assert r.returncode == 1, r.stderr
    assert f"v3s-prep info {out} --failures" in r.stdout
    assert "failed 5, missing 2, too short 1" in r.stdout
    s = Store(out)
    assert [v.rel_path for v in s.videos("folder")] == ["good/a.avi", "good/b.mp4"]
    got = {f["rel_path"]: f for f in s.failures("folder")}
    assert set(got) == set(EXPECTED_BAD)
    for rel, (status, words) in EXPECTED_BAD.items():
        assert got[rel]["status"] == status, got[rel]
        assert got[rel]["reason"] and words in got[rel]["reason"], got[rel]
    assert s.videos("folder", "1", "test") == []  # the only test video is the missing one
    info = run_cli("info", str(out), "--failures")
    assert info.returncode == 0 and "bad/random.avi" in info.stdout and "dangling" in info.stdout
    assert run_cli("verify", str(out)).returncode == 0
    # A rerun changes nothing, still reports the failures, and does not decode again.
    again = run_cli("extract", str(root), "--dataset", "folder", "--out", str(out), "--splits", str(splits),
                    "--size", f"{H}x{W}", "--jobs", "2", "--quiet")
    assert again.returncode == 1 and "10 already in the store, 0 processed" in again.stdout and again.stderr == ""


# ---------------------------------------------------------------------------------------------------------
ODD = {
    # rel_path: (lavfi source, encoder args, extra pre-input args)
    "c/ten_bit.mp4": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"]),
    "c/yuv444.mp4": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
    "c/gray.mkv": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "libx264", "-pix_fmt", "gray"]),
    "c/odd dims.mkv": ("testsrc2=size=96x64:rate=25:duration=1", ["-vf", "scale=97:63", "-c:v", "ffv1"]),
    "c/vfr.mkv": ("testsrc2=size=96x64:rate=25:duration=1.2",
                  ["-vf", r"select=not(eq(mod(n\,5)\,2))", "-fps_mode", "vfr", "-c:v", "libx264"]),
    "c/4k.mp4": ("testsrc2=size=3840x2160:rate=25:duration=0.72", ["-c:v", "libx264", "-preset", "ultrafast"]),
    "c/audio.mp4": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "mpeg4"], ["-f", "lavfi", "-i", "sine=duration=1"]),
    "d/sp ace 'q\" $(touch PWNED) ü😀.avi": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "libxvid"]),
    "d/-leading dash.avi": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "mpeg4"]),
    "d/a:colon.mp4": ("testsrc2=size=96x64:rate=25:duration=1", ["-c:v", "libx264"]),
}


@pytest.fixture(scope="module")
def odd_root(tmp_path_factory, ffmpeg) -> Path:
    root = tmp_path_factory.mktemp("odd")
    for rel, (src, args, *pre) in ODD.items():
        pre = pre[0] if pre else []
        if pre:  # audio: a second lavfi input
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", src, *pre, *args, "-c:a", "aac",
                            "-shortest", "file:" + str(p)], check=True)
        else:
            make_clip(ffmpeg, root / rel, src, args)
    rot = make_clip(ffmpeg, root / "tmp_rot.mp4", args=["-c:v", "libx264"])
    subprocess.run([ffmpeg, "-v", "error", "-y", "-display_rotation", "90", "-i", "file:" + str(rot), "-c", "copy",
                    "file:" + str(root / "c" / "rotated.mp4")], check=True)
    rot.unlink()
    return root


def test_odd_but_valid_inputs_extract_correctly(odd_root, tmp_path, ffmpeg, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a `$(touch PWNED)` run through a shell would create ./PWNED here
    out = tmp_path / "store"
    summary = run_extract(ExtractConfig(root=str(odd_root), dataset="folder", out=str(out), size=(H, W),
                                        jobs=2, quiet=True))
    assert summary.failed == 0 and summary.store_counts["ok"] == len(ODD) + 1, Store(out).failures("folder")
    assert not (tmp_path / "PWNED").exists() and not (odd_root / "d" / "PWNED").exists()
    s = Store(out)
    rows = {r["rel_path"]: r for r in s.records("folder")}
    for v in s.videos("folder"):
        ref = ref_decode(ffmpeg, odd_root / v.rel_path, H, W)
        assert v.num_frames == len(ref), v.rel_path
        assert_matches(s.read_frames(v.key, range(v.num_frames)), ref, v.rel_path)
    assert rows["c/vfr.mkv"]["num_frames"] == 24  # 30 source frames, every 5th dropped, no duplicates added
    assert (rows["c/rotated.mp4"]["src_width"], rows["c/rotated.mp4"]["src_height"]) == (64, 96)
    assert abs(rows["c/rotated.mp4"]["src_rotation"]) == 90
    assert (rows["c/odd dims.mkv"]["src_width"], rows["c/odd dims.mkv"]["src_height"]) == (97, 63)
    assert (rows["c/4k.mp4"]["src_width"], rows["c/4k.mp4"]["src_height"], rows["c/4k.mp4"]["num_frames"]) == (3840, 2160, 18)
    assert rows["c/ten_bit.mp4"]["src_codec"] == "h264" and rows["c/audio.mp4"]["src_codec"] == "mpeg4"
    assert rows["c/audio.mp4"]["fps"] == 25.0 and rows["c/audio.mp4"]["num_frames"] == 25
    assert verify_store(out) == []


# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_root(tmp_path_factory, ffmpeg) -> Path:
    """60 copies of a 100-frame clip in 3 classes: enough work to kill a run midway."""
    root = tmp_path_factory.mktemp("many")
    clip = make_clip(ffmpeg, root / "src.avi", "testsrc2=size=160x120:rate=25:duration=4", ["-c:v", "mpeg4"])
    for i in range(60):
        d = root / f"class{i % 3}"
        d.mkdir(exist_ok=True)
        shutil.copy(clip, d / f"v{i:03d}.avi")
    clip.unlink()
    return root


KILLABLE = """
import sys
from v3s.preprocess.extract import ExtractConfig, run_extract
run_extract(ExtractConfig(root=sys.argv[1], dataset="folder", out=sys.argv[2], size=(48, 64), jobs=2,
                          quiet=True, shard_bytes=200_000, shard_seconds=0.05))
"""


def _occurrences(out: Path) -> dict[str, int]:
    seen: dict[str, int] = {}
    for p in shard_paths(out / "folder"):
        for rel in read_shard_table(p)[1]["rel_path"]:
            seen[str(rel)] = seen.get(str(rel), 0) + 1
    return seen


def test_kill_and_resume(many_root, tmp_path):
    out = tmp_path / "store"
    kills = 0
    for delay in (0.0, 0.15, 0.3):
        # Own process group: kill -9 takes the job's workers (loky, ffmpeg) down with it, as a crash or OOM
        # kill of the whole job would, and leaves no orphans behind the test.
        proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(many_root), str(out)], start_new_session=True)
        deadline = time.monotonic() + 60
        # Wait until at least one shard exists beyond those of earlier rounds, then kill -9 a little later.
        before = len(shard_paths(out / "folder"))
        while len(shard_paths(out / "folder")) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        Store(out)  # readable after every kill
    assert kills >= 1, "the run finished before it could be killed: give it more work"
    partial_before = _occurrences(out)
    assert 0 < len(partial_before) < 60
    assert max(partial_before.values()) == 1
    r = run_cli("extract", str(many_root), "--dataset", "folder", "--out", str(out), "--size", f"{H}x{W}", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(partial_before)} already in the store" in r.stdout  # finished videos were not decoded again
    occ = _occurrences(out)
    assert len(occ) == 60 and set(occ.values()) == {1}
    assert not list((out / "folder").glob("*.partial"))
    s = Store(out)
    assert len(s.videos("folder")) == 60 and all(v.num_frames == 100 for v in s.videos("folder"))
    assert run_cli("verify", str(out)).returncode == 0


def test_rerun_skips_finished_and_redoes_changed(many_root, tmp_path):
    out = tmp_path / "store"
    cfg = ExtractConfig(root=str(many_root), dataset="folder", out=str(out), size=(H, W), jobs=2, quiet=True)
    first = run_extract(cfg)
    assert first.done["ok"] == 60 and first.failed == 0
    t0 = time.monotonic()
    second = run_extract(cfg)
    assert second.skipped == 60 and sum(second.done.values()) == 0 and time.monotonic() - t0 < 5
    changed = many_root / "class1" / "v001.avi"
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        seen = []
        third = run_extract(cfg, on_result=lambda row: seen.append(row["rel_path"]))
        assert seen == ["class1/v001.avi"] and third.skipped == 59
        s = Store(out)
        assert len(s.videos("folder")) == 60  # the newer record replaces the old one: no duplicate
        newest = shard_paths(out / "folder")[-1].name
        assert [r["shard"] for r in s.records("folder") if r["rel_path"] == "class1/v001.avi"] == [newest]
        assert verify_store(out) == []
        # Other settings into the same dataset of the same store are refused, naming the conflict.
        with pytest.raises(ValueError, match="another --out"):
            run_extract(ExtractConfig(root=str(many_root), dataset="folder", out=str(out), size=(H, W + 2),
                                      jobs=1, quiet=True))
    finally:
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_progress_lines_when_not_a_tty(bad_root, tmp_path):
    root, splits = bad_root
    r = run_cli("extract", str(root), "--dataset", "folder", "--out", str(tmp_path / "s"), "--splits", str(splits),
                "--size", f"{H}x{W}", "--jobs", "1")
    assert "extract folder: 10/10 videos" in r.stderr and "videos/s" in r.stderr and "7 failed" in r.stderr
    assert "\r" not in r.stderr


def test_cli_rejects_bad_options(tmp_path):
    r = run_cli("extract", str(tmp_path), "--dataset", "folder", "--out", str(tmp_path / "s"), "--size", "128by171")
    assert r.returncode == 2 and "128by171" in r.stderr
    # A user's mistake exits with status 2 in every v3s command (it was 1 in extract alone).
    r = run_cli("extract", str(tmp_path / "nope"), "--dataset", "folder", "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "nope" in r.stderr
    r = run_cli("extract", str(tmp_path), "--dataset", "folder", "--out", str(tmp_path / "s"), "--backend", "dask")
    assert r.returncode == 2 and "--scheduler" in r.stderr


# ---------------------------------------------------------------------------------------------------------
def test_reference_videos(reference_videos, tmp_path, ffmpeg):
    root = tmp_path / "ref"
    (root / "ref").mkdir(parents=True)
    for p in reference_videos.iterdir():
        os.symlink(p, root / "ref" / p.name)
    out = tmp_path / "store"
    summary = run_extract(ExtractConfig(root=str(root), dataset="folder", out=str(out), jobs=2, quiet=True))
    assert summary.failed == 0
    s = Store(out)
    by_name = {v.rel_path.split("/")[-1]: v for v in s.videos("folder")}
    hmdb = by_name["April_09_brush_hair_u_nm_np1_ba_goo_0.avi"]
    assert hmdb.num_frames == 408  # the header says 409; 408 decode
    assert (hmdb.height, hmdb.width) == (128, 171) and hmdb.fps == 30.0
    ucf = by_name["v_Basketball_g01_c01.avi"]
    assert abs(ucf.fps - 29.97) < 1e-6
    rows = {r["rel_path"].split("/")[-1]: r for r in s.records("folder")}
    assert (rows["mmaction2_demo.mp4"]["src_width"], rows["mmaction2_demo.mp4"]["src_height"]) == (340, 256)
    for v in by_name.values():
        ref = ref_decode(ffmpeg, reference_videos / v.rel_path.split("/")[-1], 128, 171)
        assert len(ref) == v.num_frames
        idx = np.arange(0, v.num_frames, 7)
        assert np.abs(s.read_frames(v.key, idx).astype(np.float32) - ref[idx]).mean() < 3.0
    info = json.loads(run_cli("info", str(out), "--json").stdout)
    assert info["datasets"]["folder"]["bytes_per_frame"] <= 8 * 1024


def test_dask_backend_local_cluster(many_root, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = run_extract(ExtractConfig(root=str(many_root), dataset="folder", out=str(tmp_path / "s"), size=(H, W), backend="dask", scheduler=cluster.scheduler_address, quiet=True))
    assert summary.done["ok"] == 60 and summary.failed == 0
    assert verify_store(tmp_path / "s") == []


# ---------------------------------------------------------------------------------------------------------
def _copy_raw(tiny_ucf_store: str, dest: Path) -> Path:
    """A copy of the synthetic UCF101-layout root behind `tiny_ucf_store` (4 classes x 6 videos, split lists)."""
    shutil.copytree(Path(tiny_ucf_store).parent / "raw", dest, symlinks=True)
    return dest


def test_vanished_sources_never_replace_good_frames(tiny_ucf_store, tmp_path):
    root = _copy_raw(tiny_ucf_store, tmp_path / "raw")
    out = tmp_path / "store"
    args = ["extract", str(root), "--dataset", "ucf101", "--out", str(out), "--size", f"{H}x{W}", "--jobs", "1", "--quiet"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    before = {v.key: v for v in Store(out).videos("ucf101")}
    assert len(before) == 24
    gone = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "ucfTrainTestlist")[0]
    moved = gone.rename(tmp_path / gone.name)  # one class folder unmounted / renamed
    r = run_cli(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "missing now: 6 videos ok in the store are gone from" in r.stdout and "were kept" in r.stdout
    s = Store(out)
    assert {v.key: v for v in s.videos("ucf101")} == before  # all 24 still ok, none replaced by a missing row
    key = next(k for k in before if f"/{gone.name}/" in k)
    assert s.read_frames(key, [0]).shape == (1, H, W, 3)
    assert verify_store(out) == []
    # A root that holds none of the listed videos is refused before anything is written.
    shards = sorted(p.name for p in (out / "ucf101").iterdir())
    for p in root.iterdir():
        if p.is_dir() and p.name != "ucfTrainTestlist":
            p.rename(tmp_path / p.name)
    r = run_cli(*args)
    assert r.returncode == 2 and "does not look like ucf101" in r.stderr and "ROOT/<Class>/v_<Class>_gXX_cYY.avi" in r.stderr
    assert sorted(p.name for p in (out / "ucf101").iterdir()) == shards and len(Store(out).videos("ucf101")) == 24
    for p in tmp_path.iterdir():
        if p.is_dir() and p.name not in ("raw", "store"):
            p.rename(root / p.name)
    again = run_cli(*args)
    assert again.returncode == 0 and "24 already in the store, 0 processed" in again.stdout, again.stdout
    assert moved.name in {p.name for p in root.iterdir()}


def test_root_that_matches_nothing_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "store"
    with pytest.raises(ValueError, match=r"does not look like ucf101: none of the 13,320 listed videos") as e:
        run_extract(ExtractConfig(root=str(empty), dataset="ucf101", out=str(out), jobs=1, quiet=True))
    assert "ROOT/<Class>/v_<Class>_gXX_cYY.avi" in str(e.value) and str(empty / "ApplyEyeMakeup") in str(e.value)
    assert not out.exists()  # nothing was written
    r = run_cli("extract", str(empty), "--dataset", "hmdb51", "--out", str(out))
    assert r.returncode == 2 and "does not look like hmdb51" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("when", ["starting", "decoding"])
def test_workers_exit_when_extract_is_killed(many_root, tmp_path, when):
    """kill -9 of the extract process alone (not its group), while its loky workers start or while they decode:
    the workers and their ffmpeg follow it within seconds."""
    proc = subprocess.Popen([*PREP, "extract", str(many_root), "--dataset", "folder", "--out", str(tmp_path / "s"),
                             "--size", f"{H}x{W}", "--jobs", "2", "--quiet"])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _descendants(proc.pid)
            if when == "starting" and sum("popen_loky" in _cmdline(p) for p in workers) >= 2:
                break
            if when == "decoding" and any("ffmpeg" in _cmdline(p) for p in workers) and len(workers) >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed: give it more work"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        while any(_alive(p) for p in workers) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        left = [(p, _cmdline(p)[:80]) for p in workers if _alive(p)]
        assert not left, f"still running {time.monotonic() - t0:.1f} s after the kill: {left}"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_ctrl_c_says_what_was_kept(many_root, tmp_path):
    out = tmp_path / "s"
    args = ["extract", str(many_root), "--dataset", "folder", "--out", str(out), "--size", f"{H}x{W}", "--jobs", "2",
            "--quiet"]
    proc = subprocess.Popen([*PREP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, decoders = time.monotonic() + 60, set()
    # Wait until a few videos are done (one ffmpeg per video); they wait in memory for the first shard.
    while time.monotonic() < deadline and proc.poll() is None and len(decoders) < 6:
        decoders.update(p for p in _descendants(proc.pid) if "ffmpeg" in _cmdline(p))
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted: give it more work"
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    m = re.search(r"interrupted after [\d.]+ s: (\d+) videos \((\d+) frames\) were written to the store before the "
                  r"interrupt and are kept; rerun the same command to continue", stderr)
    assert m, stderr
    kept = int(m.group(1))
    assert 0 < kept < 60 and int(m.group(2)) == 100 * kept
    assert f"ok {kept}, failed 0" in stderr
    assert len(Store(out).videos("folder")) == kept
    r = run_cli(*args)
    assert r.returncode == 0 and f"{kept} already in the store, {60 - kept} processed" in r.stdout


def test_interrupt_raises_with_the_summary(many_root, tmp_path):
    """The library side of Ctrl-C: ExtractInterrupted (a KeyboardInterrupt) carries what was written."""
    from v3s.preprocess.extract import ExtractInterrupted

    seen = []

    def stop_after_three(row):
        seen.append(row["rel_path"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(ExtractInterrupted) as e:
        run_extract(ExtractConfig(root=str(many_root), dataset="folder", out=str(tmp_path / "s"), size=(H, W),
                                  jobs=1, quiet=True), on_result=stop_after_three)
    summary = e.value.summary
    assert isinstance(e.value, KeyboardInterrupt) and summary.interrupted and summary.written == 3
    assert summary.store_counts["ok"] == 3 and len(Store(tmp_path / "s").videos("folder")) == 3
    assert "3 videos (300 frames) were written to the store before the interrupt" in summary.lines()[0]
