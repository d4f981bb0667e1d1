"""Benchmark the frame store's index at Kinetics-400 scale against the store code of a baseline revision, in one run.

    .venv/bin/python bench/bench_store_scale.py [--videos 240000] [--shards 100] [--ucf-videos 13320]
                                                [--ucf-shards 60] [--clips 300] [--baseline-rev 90c1129]

Builds in a temp folder, with the store's own writer (`v3s.preprocess.store_writer`):
- a Kinetics-400-like root of `--videos` empty source files, ROOT/{train,val}/<label>/<id>.mp4 (1 in 12 val),
  listed by `load_manifest(ROOT, "kinetics400")`, and a store of it in `--shards` shards: every video has
  100-250 frames, stored as one tiny real JPEG then 1-byte frames, so the index and the offsets arrays have
  their real sizes while the frame bytes stay small;
- a UCF101-size store of `--ucf-videos` videos in `--ucf-shards` shards, built the same way;
- in both stores, 12 videos carry the real 128x171 JPEG frames of the three reference videos (4 copies each),
  extracted with `run_extract`, for the clip-read figures.
Then each implementation (this checkout's, and the baseline revision's store reader and extract, unpacked with
`git archive` as package `v3sbase`) is measured in fresh processes on the same files:
open, videos(split 1, train) (first call, which loads the index, and a second), RSS growth of a process that
opened the store and read one frame, RSS growth after one frame of every shard, the pickled Store, `Store
.fingerprint` (this checkout only), `v3s-prep info` and `v3s-prep extract` rerun over the finished store (the
whole command, start-up included, and the rerun's plan alone), and 16-frame stride-2 clip reads decoded per
CPU-second on one core (CPU time: the machine is shared), the two implementations alternating twice. Writes a
markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = REPO.parent / "shared" / "reference" / "videos"
H, W, T, STRIDE = 128, 171, 16, 2
N_REAL = 12


def rss_mib() -> float:
    """Resident memory of this process (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- building --------------------------------------------------------------------------------------------------
def make_root(root: Path, n: int) -> None:
    """n empty source files in the Kinetics-400 folder layout, 400 classes, every 12th video in val."""
    from v3s.data_manifest.kinetics import read_label_map

    classes = [c.replace(" ", "_") for c in read_label_map()]
    made: set[Path] = set()
    for i in range(n):
        d = root / ("val" if i % 12 == 0 else "train") / classes[i % len(classes)]
        if d not in made:
            d.mkdir(parents=True, exist_ok=True)
            made.add(d)
        os.close(os.open(d / f"{i:011d}_{i % 300:06d}_{i % 300 + 10:06d}.mp4", os.O_CREAT | os.O_WRONLY, 0o644))


def real_videos(videos_dir: Path, tmp: Path) -> list[tuple[bytes, np.ndarray]]:
    """The reference videos' JPEG frames at 128x171, as the extractor stores them: (bytes, offsets) each."""
    from v3s.preprocess.extract import ExtractConfig, run_extract
    from v3s.shared.store import Store

    root = tmp / "refroot" / "ref"
    root.mkdir(parents=True)
    for p in sorted(videos_dir.iterdir()):
        if p.is_file():
            os.symlink(p.resolve(), root / p.name)
    run_extract(ExtractConfig(root=str(tmp / "refroot"), dataset="folder", out=str(tmp / "refstore"), jobs=1, quiet=True))
    out = []
    with Store(tmp / "refstore") as s:
        for v in s.videos("folder"):
            blobs = s.read_jpegs(v.key, range(v.num_frames))
            out.append((b"".join(blobs), np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)))
    return out


def build_store(out: Path, entries, n_shards: int, real: list[tuple[bytes, np.ndarray]], root: Path | None,
                seed: int = 0) -> dict[str, int]:
    """A store of `entries` in n_shards shards with write_shard, then its index; returns {real video key: frames}."""
    import cv2

    from v3s.preprocess.extract import ExtractConfig, _json
    from v3s.preprocess.store_writer import init_store, write_index, write_shard
    from v3s.shared.store import shard_name

    rng = np.random.default_rng(seed)
    tiny = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()
    store = init_store(out)
    ddir = store / "kinetics400"
    ddir.mkdir()
    classes = sorted({e.class_name for e in entries})
    attrs = {"classes": classes, "split_ids": ["1"], "root": str(root), "splits_from": "",
             "settings": ExtractConfig(root=str(root), dataset="kinetics400", out=str(out)).settings}
    real_at = {int(i): k for k, i in enumerate(np.linspace(0, len(entries) - 1, N_REAL).astype(int))}
    keys = {}
    bounds = np.linspace(0, len(entries), n_shards + 1).astype(int)
    for s in range(n_shards):
        rows, frames, offsets = [], [], []
        for i in range(bounds[s], bounds[s + 1]):
            e = entries[i]
            if i in real_at:
                data, offs = real[real_at[i] % len(real)]
                keys[f"kinetics400/{e.rel_path}"] = len(offs) - 1
            else:
                n = int(rng.integers(100, 251))
                data = tiny + bytes(n - 1)
                offs = np.concatenate([[0], len(tiny) + np.arange(n)]).astype(np.int64)
            size, mtime = (-1, -1)
            if root is not None:
                st_ = os.stat(root / e.rel_path)
                size, mtime = st_.st_size, st_.st_mtime_ns
            rows.append(dict(rel_path=e.rel_path, status="ok", reason="", class_name=e.class_name, label=e.label,
                             splits=_json(e.splits), num_frames=len(offs) - 1, fps=25.0, height=H, width=W,
                             src_height=240, src_width=320, src_codec="h264", src_rotation=0, src_bytes=size,
                             src_mtime_ns=mtime))
            frames.append(data)
            offsets.append(offs)
        write_shard(ddir / shard_name(s), "kinetics400", attrs, rows, frames, offsets)
    write_index(ddir)
    return keys


def baseline_package(rev: str, dest: Path) -> Path | None:
    """Unpack the baseline revision's shared/, preprocess/ and data_manifest/ as package `v3sbase` under dest."""
    try:
        tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "shared", "preprocess", "data_manifest"],
                             check=True, capture_output=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f"no baseline: git archive {rev} failed ({e})", file=sys.stderr)
        return None
    pkg = dest / "v3sbase"
    pkg.mkdir(parents=True)
    tarfile.open(fileobj=BytesIO(tar)).extractall(pkg)
    (pkg / "__init__.py").write_text("")
    return dest


# ---- measuring (in a fresh process per measure) ----------------------------------------------------------------
def measure(what: str, impl: str, args: dict) -> dict:
    """Run one measure in a fresh process of this script; returns its JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--measure", what, "--impl", impl, "--args", json.dumps(args)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{what} ({impl}) failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _modules(impl: str, args: dict):
    if impl == "base":
        sys.path.insert(0, args["base"])
        import v3sbase.shared.store as store_mod

        return store_mod, store_mod, "v3sbase"
    import v3s.preprocess.store_report as report_mod
    import v3s.shared.store as store_mod

    return store_mod, report_mod, "v3s"


def run_measure(what: str, impl: str, args: dict) -> dict:
    import gc

    import cv2

    cv2.setNumThreads(1)
    store_mod, report_mod, pkg = _modules(impl, args)
    Store = store_mod.Store
    out: dict[str, float] = {}
    if what == "listing":
        r0 = rss_mib()
        t = time.perf_counter()
        s = Store(args["store"])
        out["open_s"] = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        vids = s.videos("kinetics400", "1", "train")
        out["videos_s"], out["videos_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        vids = s.videos("kinetics400", "1", "train")
        out["videos2_s"] = time.perf_counter() - t
        out["n_train"] = len(vids)
        out["rss_list_mib"] = rss_mib() - r0
        out["pickle_mib"] = len(pickle.dumps(s)) / 2**20
        if hasattr(s, "fingerprint"):
            t = time.perf_counter()
            s.fingerprint("kinetics400")
            out["fingerprint_s"] = time.perf_counter() - t
    elif what == "memory":
        gc.collect()
        r0 = rss_mib()
        s = Store(args["store"])
        s.read_jpegs(args["keys"][0], [0])  # a worker's first read: the index is loaded
        out["rss_index_mib"] = rss_mib() - r0
        firsts = args["firsts"]
        for k in firsts:
            s.read_jpegs(k, [0])
        out["rss_all_shards_mib"] = rss_mib() - r0
        out["shards_read"] = len(firsts)
    elif what == "info":
        t = time.perf_counter()
        report_mod.summarize_store(args["store"])
        out["summarize_s"] = time.perf_counter() - t
    elif what == "plan":
        from v3s.data_manifest import load_manifest
        from v3s.preprocess.extract import plan_extract
        from v3s.shared.store import load_table

        t = time.perf_counter()
        manifest = load_manifest(args["root"], "kinetics400")
        out["manifest_s"] = time.perf_counter() - t
        t = time.perf_counter()
        table = load_table(Path(args["store"]) / "kinetics400")
        plan = plan_extract(table, manifest.entries, Path(args["root"]))
        out["plan_s"] = time.perf_counter() - t
        out["skipped"] = plan.skipped
    elif what == "clips":
        s = Store(args["store"])
        n = args["frames"]
        keys = sorted(n)
        rng = np.random.default_rng(0)
        span = (T - 1) * STRIDE + 1
        items = []
        for i in range(args["clips"]):
            k = keys[i % len(keys)]
            start = int(rng.integers(0, max(1, n[k] - span + 1)))
            items.append((k, np.minimum(start + STRIDE * np.arange(T), n[k] - 1)))
        for k, idx in items[: len(keys)]:
            s.read_frames(k, idx)  # warm
        t, c = time.perf_counter(), time.process_time()
        for k, idx in items:
            s.read_frames(k, idx)
        out["clips_per_s"] = len(items) / (time.perf_counter() - t)
        out["clips_per_cpu_s"] = len(items) / (time.process_time() - c)
    else:
        raise ValueError(f"unknown measure {what!r}")
    return out


def cli_seconds(impl: str, base: str | None, argv: list[str]) -> tuple[float, int]:
    """Wall seconds and exit status of `v3s-prep ARGV` of one implementation, start-up included."""
    pkg = "v3sbase" if impl == "base" else "v3s"
    code = (f"import sys; sys.path.insert(0, {base!r}); " if impl == "base" else "import sys; ") + \
        f"from {pkg}.preprocess.cli import main; sys.argv = ['v3s-prep'] + {argv!r}; main()"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    return time.perf_counter() - t, r.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=240_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--ucf-videos", type=int, default=13_320)
    ap.add_argument("--ucf-shards", type=int, default=60)
    ap.add_argument("--clips", type=int, default=300, help="clips per clip-read measure")
    ap.add_argument("--reference", type=Path, default=DEFAULT_VIDEOS, help="folder of real videos for clip reads")
    ap.add_argument("--baseline-rev", default="90c1129", help="git revision to compare with ('' for none)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--args", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(run_measure(a.measure, a.impl, json.loads(a.args))))
        return

    from v3s.data_manifest import load_manifest
    from v3s.shared.store import Store

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="v3s-scale-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        real = real_videos(a.reference, tmp)
        root = tmp / "k400root"
        make_root(root, a.videos)
        entries = load_manifest(root, "kinetics400").entries
        t_files = time.perf_counter() - t0
        t0 = time.perf_counter()
        k_keys = build_store(tmp / "k400", entries, a.shards, real, root)
        t_build = time.perf_counter() - t0
        ucf_entries = entries[:: max(1, len(entries) // a.ucf_videos)][: a.ucf_videos]
        u_keys = build_store(tmp / "ucf", ucf_entries, a.ucf_shards, real, root)
        with Store(tmp / "k400") as s:
            shard_of = s.column("kinetics400", "shard")
            rel = s.column("kinetics400", "rel_path")
            firsts = [f"kinetics400/{rel[np.flatnonzero(shard_of == i)[0]]}" for i in range(len(s.shards("kinetics400")))]
            disk = sum(i.bytes for i in s.shards("kinetics400"))
        base = baseline_package(a.baseline_rev, tmp / "base") if a.baseline_rev else None
        impls = ["new"] + (["base"] if base else [])
        common = {"base": str(base) if base else None}
        k400 = {**common, "store": str(tmp / "k400"), "root": str(root)}
        res: dict[str, dict] = {i: {} for i in impls}
        for i in impls:
            res[i].update(measure("listing", i, k400))
            res[i].update(measure("memory", i, {**k400, "keys": sorted(k_keys), "firsts": firsts}))
            res[i].update(measure("info", i, k400))
        res["new"].update(measure("plan", "new", k400))
        out = str(tmp / "k400")
        info_argv = ["info", out]
        rerun_argv = ["extract", str(root), "--dataset", "kinetics400", "--out", out, "--quiet"]
        cli_seconds("new", None, rerun_argv)  # warm the page cache of the sources and the shards
        for i in impls:
            res[i]["info_cli_s"], rc = cli_seconds(i, str(base), info_argv)
            res[i]["rerun_cli_s"], rc2 = cli_seconds(i, str(base), rerun_argv)
            res[i]["rerun_rc"] = rc2
        for size, store, keys in (("ucf", tmp / "ucf", u_keys), ("k400", tmp / "k400", k_keys)):
            runs: dict[str, list[dict]] = {i: [] for i in impls}
            for _ in range(2):
                for i in impls:
                    runs[i].append(measure("clips", i, {**common, "store": str(store), "frames": keys, "clips": a.clips}))
            for i in impls:
                res[i][f"clips_{size}"] = float(np.mean([r["clips_per_cpu_s"] for r in runs[i]]))
                res[i][f"clips_{size}_runs"] = [r["clips_per_s"] for r in runs[i]]

    n, nf = a.videos, res["new"]
    print(f"Store: {n:,} videos ({nf['n_train']:,} train in split 1) in {a.shards} shards, 100-250 frames per video, "
          f"{disk / 2**20:,.0f} MiB; UCF101-size store: {len(ucf_entries):,} videos in {a.ucf_shards} shards. "
          f"Baseline: {a.baseline_rev or 'none'}. {os.cpu_count()} cores.\n")
    print("| measure | this code | baseline | ratio (> 1: this code faster or smaller) | target |")
    print("|---|---|---|---|---|")

    def row(label: str, key: str, unit: str, target: str, fmt: str, better: str) -> None:
        new, old = nf.get(key), res.get("base", {}).get(key)
        ratio = ""
        if old is not None and new:
            r = new / old if better == "higher" else old / new
            ratio = f"{r:.2f}x" if r < 10 else f"{r:,.0f}x"
        show = lambda v: "-" if v is None else fmt.format(v) + f" {unit}"
        print(f"| {label} | {show(new)} | {show(old)} | {ratio} | {target} |")

    row("`Store(path)`", "open_s", "s", "<= 0.5 s", "{:.3f}", "lower")
    row("`videos(\"kinetics400\", \"1\", \"train\")`, first call (loads the index)", "videos_s", "s", "<= 0.2 s",
        "{:.3f}", "lower")
    row("same, CPU time", "videos_cpu_s", "s", "", "{:.3f}", "lower")
    row("same, second call", "videos2_s", "s", "", "{:.3f}", "lower")
    row("RSS added by opening the store and reading one frame (the index)", "rss_index_mib", "MiB", "<= 50 MiB",
        "{:.0f}", "smaller")
    row(f"RSS added after one frame of each of the {a.shards} shards (this code keeps at most 64 open)",
        "rss_all_shards_mib", "MiB",
        "does not grow with frames", "{:.0f}", "smaller")
    row("RSS added by open + `videos()` (index and the list of VideoInfo)", "rss_list_mib", "MiB", "", "{:.0f}", "smaller")
    row("pickled Store after `videos()` (what a spawn worker receives)", "pickle_mib", "MiB", "<= 5 MiB", "{:.3f}",
        "smaller")
    row("`summarize_store` (`v3s-prep info`), in process", "summarize_s", "s", "", "{:.2f}", "lower")
    row("`v3s-prep info STORE`, whole command", "info_cli_s", "s", "<= 2 s", "{:.2f}", "lower")
    row(f"`v3s-prep extract` rerun over the finished store ({n:,} listed), whole command", "rerun_cli_s", "s",
        "<= 10 s", "{:.1f}", "lower")
    row("16-frame clips (stride 2) decoded per CPU-second, one core, UCF101-size store", "clips_ucf", "clips/s",
        "not slower", "{:,.0f}", "higher")
    row(f"same, {n:,}-video store", "clips_k400", "clips/s", "", "{:,.0f}", "higher")
    print(f"\nThis code only: the rerun's listing (load_manifest) {nf['manifest_s']:.1f} s and its plan (index + one stat "
          f"per video + comparing rows) {nf['plan_s']:.1f} s, {nf['skipped']:,} skipped; `Store.fingerprint` "
          f"{nf['fingerprint_s']:.2f} s; rerun exit status {nf['rerun_rc']}"
          + (f" (baseline {res['base']['rerun_rc']})" if base else "") + ".")
    print("Clip reads per wall-clock second, each run: " + "; ".join(f"{i} {size}: " + ", ".join(f"{r:,.0f}" for r in res[i][f'clips_{size}_runs'])
                                                  for size in ("ucf", "k400") for i in impls))
    print(f"Building: {a.videos:,} source files and the listing {t_files:.0f} s; the store {t_build:.0f} s. "
          f"Load average at the start {load_start:.1f}, at the end {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
