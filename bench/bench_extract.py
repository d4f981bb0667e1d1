"""Benchmark extraction and clip reads of the v3s store against the baselines, as ratios measured in one run.

    .venv/bin/python bench/bench_extract.py [--videos DIR] [--copies 8] [--jobs 2] [--clips 300]

1. Extraction (`run_extract`, JPEG frames into a store) vs bare `ffmpeg -i X -vf scale=171:128 -f null -` on
   the same videos, same number of parallel jobs (joblib), each ffmpeg with one thread in both cases; also
   as CPU seconds (self + children) of one sequential job each, which a loaded machine does not skew.
2. Stored bytes per frame vs raw 128x171x3 uint8.
3. 16-frame strided clip reads decoded to uint8 RGB on one core: the store vs a one-JPEG-file-per-frame folder
   (the store's own JPEG bytes) read with cv2.imread (PacePred style) vs decoding the whole video per item with cv2.VideoCapture and
   resizing (VCOP style). Page cache warm for all three.
Writes a markdown table to stdout.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed

from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.shared.video import ffmpeg_exe
from v3s.shared.store import Store

DEFAULT_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "videos"
H, W, T, STRIDE = 128, 171, 16, 2


def bare_ffmpeg(path: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-threads", "1", "-i", "file:" + path,
                    "-vf", f"scale={W}:{H}", "-f", "null", "-"], check=True)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (ffmpeg runs)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def clip_indices(rng: np.random.Generator, n: int) -> np.ndarray:
    span = (T - 1) * STRIDE + 1
    start = int(rng.integers(0, max(1, n - span + 1)))
    return np.minimum(start + STRIDE * np.arange(T), n - 1)


def read_jpeg_folder(folder: Path, idx: np.ndarray) -> np.ndarray:
    out = np.empty((len(idx), H, W, 3), np.uint8)
    for i, t in enumerate(idx):
        out[i] = cv2.cvtColor(cv2.imread(str(folder / f"{t:06d}.jpg"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def decode_whole(path: str, idx: np.ndarray) -> np.ndarray:
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return np.stack([cv2.cvtColor(cv2.resize(frames[min(t, len(frames) - 1)], (W, H)), cv2.COLOR_BGR2RGB) for t in idx])


def rate(fn, items) -> float:
    t0 = time.perf_counter()
    for it in items:
        fn(*it)
    return len(items) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--copies", type=int, default=8, help="each video is listed this many times (extraction work)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--clips", type=int, default=300, help="clips per reader")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    sources = sorted(p for p in args.videos.iterdir() if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "root" / "all"
        root.mkdir(parents=True)
        for c in range(args.copies):
            for p in sources:
                os.symlink(p.resolve(), root / f"{c:02d}_{p.name}")
        paths = [str(p) for p in sorted(root.iterdir())]

        # 1. extraction vs bare ffmpeg (bare first and last, to see drift)
        def bare_all() -> float:
            t0 = time.perf_counter()
            Parallel(n_jobs=args.jobs)(delayed(bare_ffmpeg)(p) for p in paths)
            return time.perf_counter() - t0

        bare_all()  # warm the page cache and the worker pool
        t_bare1 = bare_all()
        t0 = time.perf_counter()
        summary = run_extract(ExtractConfig(root=str(tmp / "root"), dataset="folder", out=str(tmp / "store"),
                                            jobs=args.jobs, quiet=True))
        t_ext = time.perf_counter() - t0
        t_bare2 = bare_all()
        t_bare = (t_bare1 + t_bare2) / 2
        frames = summary.frames

        # 1b. the same in CPU seconds, one job in this process: what the throughput of dedicated cores is
        # made of, and not skewed by other work on a shared machine.
        c0 = cpu_seconds()
        for p in paths:
            bare_ffmpeg(p)
        c_bare = cpu_seconds() - c0
        c0 = cpu_seconds()
        run_extract(ExtractConfig(root=str(tmp / "root"), dataset="folder", out=str(tmp / "store1"), jobs=1, quiet=True))
        c_ext = cpu_seconds() - c0

        store = Store(tmp / "store")
        vids = {v.rel_path.split("/")[-1][3:]: v for v in store.videos("folder") if v.rel_path.split("/")[-1].startswith("00_")}

        # 2. bytes per frame
        bpf = {}
        for name, v in vids.items():
            blobs = store.read_jpegs(v.key, range(v.num_frames))
            bpf[name] = sum(len(b) for b in blobs) / v.num_frames

        # 3. clip reads. The JPEG folder holds the store's own JPEG bytes, one file per frame, so that both
        # readers decode identical JPEGs and only the storage layout differs.
        folders = {}
        for name, v in vids.items():
            d = tmp / "jpegs" / name
            d.mkdir(parents=True)
            for t, blob in enumerate(store.read_jpegs(v.key, range(v.num_frames))):
                (d / f"{t:06d}.jpg").write_bytes(blob)
            folders[name] = d
        rng = np.random.default_rng(0)
        names = list(vids)
        items = [(names[i % len(names)], clip_indices(rng, vids[names[i % len(names)]].num_frames)) for i in range(args.clips)]
        fresh = Store(tmp / "store")
        r_store = rate(lambda n, idx: fresh.read_frames(vids[n].key, idx), items)
        r_folder = rate(lambda n, idx: read_jpeg_folder(folders[n], idx), items)
        few = items[: max(10, args.clips // 20)]
        r_whole = rate(lambda n, idx: decode_whole(str(args.videos / n), idx), few)
        r_store2 = rate(lambda n, idx: fresh.read_frames(vids[n].key, idx), items)
        r_store = (r_store + r_store2) / 2
        fresh.close()
        store.close()

    print(f"Videos: {', '.join(p.name for p in sources)} x {args.copies} copies ({frames} frames), "
          f"{args.jobs} jobs, {os.cpu_count()} cores\n")
    print("| measure | v3s store | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| extraction, frames/s, {args.jobs} jobs, wall clock | {frames / t_ext:,.0f} | bare ffmpeg decode+scale: "
          f"{frames / t_bare:,.0f} | {t_bare / t_ext:.2f}x | >= 0.85x |")
    print(f"| extraction, frames per CPU-second, 1 job | {frames / c_ext:,.0f} | bare ffmpeg decode+scale: "
          f"{frames / c_bare:,.0f} | {c_bare / c_ext:.2f}x | >= 0.85x |")
    for name, b in bpf.items():
        print(f"| bytes/frame, {name} | {b / 1024:.2f} KiB | raw 128x171x3: {H * W * 3 / 1024:.1f} KiB "
              f"| {H * W * 3 / b:.1f}x smaller | <= 8 KiB |")
    print(f"| 16-frame clips (stride {STRIDE}) per s, one core | {r_store:,.0f} | JPEG file per frame: {r_folder:,.0f} "
          f"| {r_store / r_folder:.2f}x | >= 1.0x |")
    print(f"| 16-frame clips (stride {STRIDE}) per s, one core | {r_store:,.0f} | decode whole video: {r_whole:,.1f} "
          f"| {r_store / r_whole:.0f}x | >= 10x |")
    print(f"\nbare ffmpeg runs: {t_bare1:.2f} s, {t_bare2:.2f} s; extraction {t_ext:.2f} s; "
          f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
