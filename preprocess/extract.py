"""The extract job: every video of a dataset manifest -> JPEG frames in a v3s store, in parallel, resumable.

Workers (joblib: loky processes, or dask workers) decode and encode; they return JPEG bytes to the one parent
process, the only writer, which batches finished videos and writes each batch as a new write-once shard
(preprocess/store_writer.py). A crash loses at most the unwritten batch, which the rerun redoes; a rerun skips
every video whose stored row still matches its source. See docs/store.md.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..data_manifest import DatasetManifest, Entry, load_manifest
from ..data_manifest.detect import infer_dataset
from ..shared import store as st
from ..shared import workspace
from ..shared.paths import check_path
from ..shared.video import DecodeError, decode_video
from .config import ExtractConfig
from .parent_watch import exit_with_parent
from .progress import Progress
from .store_writer import ShardWriter, init_store, lock_store, next_shard_index, prepare_dataset, write_shard



def resolve_extract(cfg: ExtractConfig, log: Callable[[str], None]) -> ExtractConfig:
    """Fill --dataset (inferred from ROOT) and --out (the workspace's store), saying each choice."""
    check_path(cfg.root, "dir", "dataset root")
    if cfg.dataset is None:
        name, why = infer_dataset(cfg.root)
        cfg = cfg.replace(dataset=name)
        log(f"dataset: {name} ({why}; --dataset to choose another)")
    if cfg.out is None:
        cfg = cfg.replace(out=str(workspace.default_store()))
        log(f"store: {cfg.out} (the workspace's; --out to choose another)")
    return cfg


# What each dataset's root looks like (docs/datasets.md), for the error when a root matches none of its videos.
LAYOUTS = {
    "ucf101": "ROOT/<Class>/v_<Class>_gXX_cYY.avi",
    "hmdb51": "ROOT/<class>/<name>.avi",
    "kinetics400": "ROOT/{train,val,test}/<label>/<youtube_id>_<start>_<end>.mp4",
    "aslan": "ROOT/<dddd>.<ext> or ROOT/<folder>/<dddd>.<ext>",
    "folder": "ROOT/<class>/<video>",
}


@dataclass
class Summary:
    """Counts of one run and of the dataset's state in the store after it."""

    dataset: str
    store: str
    root: str = ""
    listed: int = 0
    skipped: int = 0  # already current in the store: not decoded again
    done: dict[str, int] = field(default_factory=lambda: {s: 0 for s in st.STATUSES})  # this run
    store_counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in st.STATUSES})  # listed videos, after
    vanished: list[str] = field(default_factory=list)  # ok in the store, source gone now: the stored frames are kept
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> int:
        """Listed videos that are failed or missing (too_short is a recorded choice, not an error), counting
        those whose source is gone although the store keeps their frames."""
        return self.store_counts["failed"] + self.store_counts["missing"] + len(self.vanished)

    @property
    def written(self) -> int:
        """Rows this run wrote to the store (every status)."""
        return sum(self.done.values())

    def lines(self) -> list[str]:
        c = self.store_counts
        if self.interrupted:
            out = [f"{self.dataset}: interrupted after {self.seconds:.1f} s: {self.written} videos ({self.frames} frames) "
                   f"were written to the store before the interrupt and are kept; rerun the same command to continue"]
        else:
            out = [f"{self.dataset}: {self.listed} videos listed, {self.skipped} already in the store, "
                   f"{self.written} processed in {self.seconds:.1f} s ({self.frames} frames)"]
        out.append(f"store {self.store}: ok {c['ok']}, failed {c['failed']}, missing {c['missing']}, "
                   f"too short {c['too_short']}")
        if self.vanished:
            eg = ", ".join(self.vanished[:3]) + (", ..." if len(self.vanished) > 3 else "")
            out.append(f"missing now: {len(self.vanished)} videos ok in the store are gone from {self.root} ({eg}); "
                       f"their stored frames were kept, not replaced (is the drive mounted, is ROOT right?)")
        if c["failed"] + c["missing"] or c["too_short"]:
            out.append(f"list them: v3s-prep info {self.store} --failures")
        return out


class ExtractInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped an extraction; `summary` says what was written to the store before it (all kept)."""

    def __init__(self, summary: Summary) -> None:
        super().__init__(summary.lines()[0])
        self.summary = summary


def source_stat(path: str | os.PathLike) -> tuple[int, int]:
    """(size, mtime_ns) of a source, following links; (-1, -1) when it does not exist (or dangles)."""
    try:
        s = os.stat(path)
    except OSError:
        return -1, -1
    return s.st_size, s.st_mtime_ns


def process_video(root: str, entry: Entry, height: int, width: int, quality: int, min_frames: int
                  ) -> tuple[dict[str, object], bytes, np.ndarray]:
    """Worker task: decode one video; never raises for bad input (the row says what went wrong).

    Args:
        root: dataset root.
        entry: the manifest entry.
    Returns:
        (row of st.VIDEO_COLUMNS without frame_start, JPEG bytes, int64 (num_frames + 1,) offsets).
    """
    path = Path(root) / entry.rel_path
    size, mtime = source_stat(path)
    row: dict[str, object] = {
        "rel_path": entry.rel_path, "status": "ok", "reason": "", "class_name": entry.class_name,
        "label": int(entry.label), "splits": _json(entry.splits), "num_frames": 0, "fps": 0.0,
        "height": height, "width": width, "src_height": -1, "src_width": -1, "src_codec": "", "src_rotation": 0,
        "src_bytes": size, "src_mtime_ns": mtime,
    }
    empty = (b"", np.zeros(1, dtype=np.int64))

    def bad(status: str, reason: str):
        row.update(status=status, reason=reason)
        return (row, *empty)

    if size < 0:
        if os.path.islink(path):
            return bad("missing", f"dangling symbolic link to {os.readlink(path)!r}")
        return bad("missing", "file not found")
    if path.is_dir():
        return bad("failed", "is a directory, not a video file")
    if size == 0:
        return bad("failed", "empty file (0 bytes)")
    try:
        dec = decode_video(path, height, width, quality)
    except DecodeError as e:
        return bad("failed", str(e))
    except OSError as e:
        return bad("failed", f"cannot read: {e}")
    s = dec.source
    row.update(fps=s.fps, src_height=s.height, src_width=s.width, src_codec=s.codec, src_rotation=s.rotation)
    if dec.num_frames < min_frames:
        return bad("too_short", f"{dec.num_frames} frames decoded, fewer than --min-frames {min_frames}")
    row["num_frames"] = dec.num_frames
    return row, dec.data, dec.offsets


def _pair_row(pair) -> list:
    """An ASLAN pair as the store records it: [fold, first id, second id, same, first action, second action]."""
    return [pair.fold, Path(pair.first).stem, Path(pair.second).stem, int(pair.same), pair.first_action,
            pair.second_action]


def _json(splits) -> str:
    return json.dumps(dict(splits), sort_keys=True)


def check_root(root: Path, manifest: DatasetManifest) -> None:
    """Refuse a root under which none of the listed videos exists (a wrong folder, an empty mount point, another
    --dataset), before anything is written: it would record every video as missing.

    Raises:
        ValueError: naming the root, the dataset and the layout it expected.
    """
    if not manifest.entries:
        return
    base = str(root)
    if any(os.path.lexists(os.path.join(base, e.rel_path)) for e in manifest.entries):
        return
    first = manifest.entries[0].rel_path
    raise ValueError(f"dataset root {base!r} does not look like {manifest.name}: none of the {len(manifest.entries):,} "
                     f"listed videos exists under it (expected {LAYOUTS.get(manifest.name, 'see docs/datasets.md')}, "
                     f"e.g. {os.path.join(base, first)}); check ROOT and --dataset. Nothing was written.")


@dataclass
class Plan:
    """What a run has to do: the entries to decode, how many are current in the store, which vanished."""

    todo: list[Entry]
    skipped: int
    vanished: list[str]  # rel_paths ok in the store whose source is gone: kept, not decoded
    stored_ok: set[str]  # rel_paths in `todo` that are ok in the store now


def plan_extract(table: st.VideoTable, entries: Sequence[Entry], root: Path) -> Plan:
    """Compare every listed video with its stored row: decode again only what changed (one stat per video).

    A stored row is current when the source's size and mtime, the label, class and split membership all equal
    the manifest's. A video ok in the store whose source no longer exists is never decoded again: a vanished
    source must not replace good frames.

    Args:
        table: the dataset's current rows (`load_table`).
        entries: the manifest's entries.
        root: the dataset root.
    """
    base = str(root)
    stats = np.array([source_stat(os.path.join(base, e.rel_path)) for e in entries], dtype=np.int64).reshape(-1, 2)
    pos = table.find([e.rel_path for e in entries])
    have = pos >= 0
    current = np.zeros(len(entries), dtype=bool)
    stored_ok = np.zeros(len(entries), dtype=bool)
    if have.any():
        c, p = table.cols, np.where(have, pos, 0)
        class_code = {v: i for i, v in enumerate(table.values["class_name"].tolist())}
        split_code = {v: i for i, v in enumerate(table.values["splits"].tolist())}
        memo: dict[tuple, int] = {}  # a few distinct memberships: encode each once

        def code(e: Entry) -> int:
            k = tuple(e.splits.items())
            if k not in memo:
                memo[k] = split_code.get(_json(e.splits), -1)
            return memo[k]

        splits = np.array([code(e) for e in entries])
        current = have & (c["src_bytes"][p] == stats[:, 0]) & (c["src_mtime_ns"][p] == stats[:, 1]) \
            & (c["label"][p] == np.array([e.label for e in entries])) & (c["splits"][p] == splits) \
            & (c["class_name"][p] == np.array([class_code.get(e.class_name, -1) for e in entries]))
        stored_ok = have & (c["status"][p] == 0)
    gone = stored_ok & ~current & (stats[:, 0] < 0)
    todo = np.flatnonzero(~current & ~gone)
    return Plan(todo=[entries[i] for i in todo], skipped=int(current.sum()),
                vanished=[entries[i].rel_path for i in np.flatnonzero(gone)],
                stored_ok={entries[i].rel_path for i in todo if stored_ok[i]})


def run_extract(cfg: ExtractConfig, on_result: Callable[[dict[str, object]], None] | None = None,
                log: Callable[[str], None] | None = None) -> Summary:
    """Extract every listed video of one dataset into the store; skip videos already current there.

    Args:
        cfg: the run's settings (a None dataset or out takes `resolve_extract`'s choice).
        on_result: called with each row as it is recorded (tests, custom logging).
        log: told the choices `resolve_extract` makes.
    Returns:
        the Summary; `summary.failed` > 0 means some listed videos are failed or missing.
    Raises:
        ExtractInterrupted: on Ctrl-C, after every finished video was written; it carries the Summary.
    """
    t0 = time.monotonic()
    cfg = resolve_extract(cfg, log or (lambda line: None))
    root = Path(cfg.root)
    manifest = load_manifest(root, cfg.dataset, splits_dir=cfg.splits_dir)
    check_root(root, manifest)
    store = init_store(cfg.out)
    lock = lock_store(store)
    try:
        ddir = store / cfg.dataset
        table = prepare_dataset(store, cfg.dataset)
        old = table.attrs.get("settings")
        if old is not None and old != cfg.settings:
            raise ValueError(f"store {cfg.out!r} holds {cfg.dataset!r} extracted with {old}; this run asks for "
                             f"{cfg.settings}: use another --out")
        plan = plan_extract(table, manifest.entries, root)
        summary = Summary(dataset=cfg.dataset, store=str(cfg.out), root=str(root), listed=len(manifest.entries),
                          skipped=plan.skipped, vanished=plan.vanished)
        attrs = {"classes": list(manifest.classes), "split_ids": list(manifest.split_ids),
                 "settings": cfg.settings, "root": str(root.resolve()), "splits_from": manifest.splits_from,
                 **({"pairs": [_pair_row(p) for p in manifest.pairs]} if manifest.pairs else {})}
        writer = ShardWriter(ddir, cfg.dataset, attrs, next_shard_index(ddir), cfg.shard_bytes, cfg.shard_seconds)
        progress = Progress(len(plan.todo), f"extract {cfg.dataset}", cfg.quiet)
        try:
            for row, data, offsets in _run_parallel(cfg, plan.todo):
                progress.update(row["status"] in ("failed", "missing"))
                if row["status"] == "missing" and row["rel_path"] in plan.stored_ok:
                    summary.vanished.append(str(row["rel_path"]))  # gone since the plan: keep the stored frames
                    continue
                writer.add(row, data, offsets)
                summary.done[row["status"]] += 1
                summary.frames += int(row["num_frames"])
                if on_result is not None:
                    on_result(row)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            # Every pending row is a complete video: keep them even when the run is interrupted.
            writer.close()
            progress.close()
        if not table.shards and not writer.written and not st.read_record(ddir):
            # An empty manifest still registers the dataset (classes, splits) in the store.
            write_shard(ddir / st.shard_name(0), cfg.dataset, attrs, [], [], [])
        final = st.load_table(ddir)
        pos = final.find([e.rel_path for e in manifest.entries])
        counts = np.bincount(final.cols["status"][pos[pos >= 0]], minlength=len(st.STATUSES))
        summary.store_counts = {s: int(n) for s, n in zip(st.STATUSES, counts)}
    finally:
        lock.close()
    summary.seconds = time.monotonic() - t0
    if summary.interrupted:
        raise ExtractInterrupted(summary)
    return summary


def _run_parallel(cfg: ExtractConfig, todo: list[Entry]) -> Iterator[tuple[dict[str, object], bytes, np.ndarray]]:
    """Results of process_video over `todo`, in completion order, on the configured joblib backend."""
    if not todo:
        return
    from joblib import Parallel, delayed, parallel_config

    tasks = (delayed(process_video)(cfg.root, e, cfg.height, cfg.width, cfg.quality, cfg.min_frames) for e in todo)
    if cfg.backend == "loky":
        jobs = cfg.jobs if cfg.jobs != -1 else (os.cpu_count() or 1)
        if jobs == 1:
            # In-process: no worker start-up for small runs and debugging.
            for e in todo:
                yield process_video(cfg.root, e, cfg.height, cfg.width, cfg.quality, cfg.min_frames)
            return
        yield from Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered",
                            initializer=exit_with_parent, initargs=(os.getpid(),))(tasks)
        return
    from distributed import Client

    with Client(cfg.scheduler) as client, parallel_config(backend="dask"):
        n = cfg.jobs if cfg.jobs > 0 else max(1, sum(client.nthreads().values()))
        yield from Parallel(n_jobs=n, return_as="generator_unordered")(tasks)
