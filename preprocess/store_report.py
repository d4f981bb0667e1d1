"""What `v3s-prep info` and `v3s-prep verify` report about a store, through the public `Store` reader only."""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np

from ..shared.store import RECORD_FILE, SCHEMA_VERSION, STATUSES, ShardError, Store, decode_jpeg, video_key
from .progress import Progress


def summarize_store(path: str | os.PathLike, failures: bool = False) -> dict[str, object]:
    """What `v3s-prep info` prints: per dataset counts by status, frames, bytes, per-split counts of ok videos.

    Args:
        path: the store directory.
        failures: also list each dataset's videos that are not ok, with their reasons.
    Raises:
        ValueError: a dataset lacks a recorded shard or does not read (naming the shard file).
    """
    s = Store(path)
    out: dict[str, object] = {"store": str(s.path), "schema_version": SCHEMA_VERSION, "datasets": {}}
    for name in s.datasets:
        status = s.column(name, "status")
        ok = status == "ok"
        per_split: dict[str, dict[str, int]] = {sid: {} for sid in s.split_ids(name)}
        for splits, n in Counter(s.column(name, "splits")[ok].tolist()).items():
            for sid, role in json.loads(splits or "{}").items():
                per_split.setdefault(sid, {})
                per_split[sid][role] = per_split[sid].get(role, 0) + n
        shards = s.shards(name)
        shard_of = s.column(name, "shard")
        nbytes = 0
        current_ok = np.bincount(shard_of[ok], minlength=len(shards))
        for si, info in enumerate(shards):
            if current_ok[si] == info.ok and info.frame_bytes >= 0:
                nbytes += info.frame_bytes  # every ok row of the shard is current: all of its frames count
            elif current_ok[si]:
                offsets, _ = s.shard_layout(name, si)
                rows = ok & (shard_of == si)
                a = s.column(name, "frame_start")[rows]
                nbytes += int((offsets[a + s.column(name, "num_frames")[rows]] - offsets[a]).sum())
        frames = int(s.column(name, "num_frames")[ok].sum())
        counts = Counter(status.tolist())
        out["datasets"][name] = {
            "videos": {k: counts.get(k, 0) for k in STATUSES}, "frames": frames, "frame_bytes": nbytes,
            "bytes_per_frame": round(nbytes / frames, 1) if frames else 0.0,
            "size_on_disk": sum(os.stat(i.path).st_size for i in shards), "shards": len(shards), "splits": per_split,
            "settings": s.settings(name), "classes": len(s.classes(name)),
            **({"failures": s.failures(name)} if failures else {}),
        }
    s.close()
    return out


def format_info(report: dict[str, object]) -> str:
    """`summarize_store`'s report as the lines `v3s-prep info` prints."""
    lines = [f"store {report['store']} (schema {report['schema_version']})"]
    for name, d in report["datasets"].items():
        v, st = d["videos"], d["settings"]
        lines.append(f"{name}: ok {v['ok']}, failed {v['failed']}, missing {v['missing']}, too short {v['too_short']}; "
                     f"{d['classes']} classes; {d['frames']} frames at {st.get('height')}x{st.get('width')}, "
                     f"{d['bytes_per_frame'] / 1024:.2f} KiB/frame, {d['size_on_disk'] / 2**20:.1f} MiB on disk "
                     f"in {d['shards']} shards")
        for sid, roles in d["splits"].items():
            lines.append(f"  split {sid}: " + (", ".join(f"{r} {n}" for r, n in sorted(roles.items())) or "no ok videos"))
        lines += [f"  {f['status']}: {f['rel_path']}: {f['reason']}" for f in d.get("failures", [])]
    return "\n".join(lines)


def verified_counts(path: str | os.PathLike) -> str:
    """What a successful verify checked: videos and frames per dataset."""
    with Store(path) as s:
        return "; ".join(f"{name} {int(ok.sum())} videos, {int(s.column(name, 'num_frames')[ok].sum())} frames"
                         for name in s.datasets for ok in [s.column(name, "status") == "ok"])


def verify_store(path: str | os.PathLike, quiet: bool = True) -> list[tuple[str, str]]:
    """Check that every recorded shard is there and reads, and every stored frame decodes to the stored size.

    Args:
        path: the store directory.
        quiet: no progress output (otherwise a bar on a terminal, a line every 10 s on stderr elsewhere).
    Returns:
        (key or file path, problem) for each damaged video, missing or stray shard; empty when the store is sound.
    """
    problems: list[tuple[str, str]] = []
    s = Store(path)
    for name in s.datasets:
        try:
            shards = s.shards(name)
            h, w = int(s.settings(name)["height"]), int(s.settings(name)["width"])
        except ShardError as e:
            problems.append((str(e.path), str(e)))
            continue
        if any(i.videos < 0 for i in shards):  # a store written before shards were recorded
            problems.append((str(s.path / name), f"no shard record ({RECORD_FILE}): a missing shard cannot be detected; "
                             f"rerun `v3s-prep extract ROOT --dataset {name} --out {s.path}` to record the shards"))
        for p in s.stray_shards(name):
            problems.append((str(p), f"not in the shard record of {name!r}, so readers ignore it (rerun "
                             "`v3s-prep extract` to adopt a shard an interrupted run left; otherwise move it away)"))
        rel, status = s.column(name, "rel_path"), s.column(name, "status")
        shard_of, start = s.column(name, "shard"), s.column(name, "frame_start")
        num, heights, widths = s.column(name, "num_frames"), s.column(name, "height"), s.column(name, "width")
        ok = np.flatnonzero(status == "ok")
        progress = Progress(len(ok), f"verify {name}", quiet, bad="damaged")
        for si, info in enumerate(shards):
            rows = ok[shard_of[ok] == si]
            try:
                offsets, nbytes = s.shard_layout(name, si)
            except (ShardError, OSError, KeyError) as e:
                problems.append((str(info.path), f"unreadable shard: {e}"))
                for _ in rows:
                    progress.update(True)
                continue
            if len(offsets) == 0 or offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] != nbytes:
                problems.append((str(info.path), "offsets are not increasing from 0 to the size of frames"))
                for _ in rows:
                    progress.update(True)
                continue
            for i in rows.tolist():
                problem = _check_video(s, video_key(name, rel[i]), int(start[i]), int(num[i]),
                                       (int(heights[i]), int(widths[i])), (h, w), len(offsets))
                if problem:
                    problems.append((video_key(name, rel[i]), problem))
                progress.update(bool(problem))
            del offsets
        progress.close()
    s.close()
    return problems


def _check_video(s: Store, key: str, start: int, n: int, size: tuple[int, int], want: tuple[int, int],
                 n_offsets: int) -> str:
    """What is wrong with one ok video's frames ("" when nothing)."""
    h, w = want
    if n <= 0:
        return "status ok with no frames"
    if size != want:
        return f"size {size[0]}x{size[1]} differs from the dataset's {h}x{w}"
    if start + n >= n_offsets:
        return f"{n} frames from {start} run past the shard's offsets"
    try:
        blobs = s.read_jpegs(key, range(n))
    except (OSError, KeyError, ValueError) as e:
        return f"unreadable: {e}"
    bad = [t for t, b in enumerate(blobs) if (img := decode_jpeg(b)) is None or img.shape != (h, w, 3)]
    return f"{len(bad)} of {n} frames do not decode to {h}x{w}x3 (first: {bad[0]})" if bad else ""

