"""Kinetics-400: ROOT/<split>/<label>/<file> folders and/or the official annotation CSVs."""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from .entries import DatasetManifest, make_manifest
from .splitfile import bundled_dir, is_video_name, read_lines, video_paths

# On-disk split folder name -> role.
SPLIT_DIRS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
_CSV_NAME = re.compile(r"^(?:kinetics[-_]?400[-_])?(train|val|validate|validation|test)\.csv$", re.IGNORECASE)
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def read_label_map(path: Path | None = None) -> tuple[str, ...]:
    """The Kinetics-400 class names; label = 0-based line index (mmaction2's convention).

    Args:
        path: a label map with one class name per line; None reads the bundled label_map_k400.txt.
    """
    path = path or bundled_dir("kinetics400") / "label_map_k400.txt"
    names = tuple(text for _, text in read_lines(path))
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a class name appears twice")
    return names


def _class_lookup(classes: tuple[str, ...]) -> dict[str, int]:
    """Class name -> label, also under the underscored spelling many downloaders use for folder names."""
    lookup = {c.replace(" ", "_"): i for i, c in enumerate(classes)}
    lookup.update({c: i for i, c in enumerate(classes)})
    return lookup


def _scan_folders(root: Path, lookup: dict[str, int], classes: tuple[str, ...]):
    """rel_path -> (role, class_name, label) for ROOT/<split>/<label>/<file> (and ROOT/<split>/<file>)."""
    found: dict[str, tuple[str, str, int]] = {}
    split_dirname: dict[str, str] = {}
    label_dirname: dict[int, str] = {}
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        role = SPLIT_DIRS.get(d.name)
        if role is None or not d.is_dir():
            continue
        split_dirname.setdefault(role, d.name)
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            if is_video_name(e.name):  # an unlabelled video straight in the split folder (test set)
                found[f"{d.name}/{e.name}"] = (role, "", -1)
            elif e.is_dir():
                label = lookup.get(e.name)
                if label is None:
                    raise ValueError(f"{e.path}: folder name {e.name!r} is not a Kinetics-400 class "
                                     "(see label_map_k400.txt; spaces may be written as underscores)")
                label_dirname.setdefault(label, e.name)
                for rel in video_paths(Path(e.path), root):
                    found[rel] = (role, classes[label], label)
    return found, split_dirname, label_dirname


def _find_csvs(root: Path, splits_dir: str | Path | None) -> list[Path]:
    if splits_dir is not None:
        d = Path(splits_dir)
        if not d.is_dir():
            raise FileNotFoundError(f"splits folder {d} does not exist or is not a folder")
        dirs = [d]
    else:
        dirs = [root, root / "annotations"]
    for d in dirs:
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if _CSV_NAME.match(p.name) and p.is_file())
            if files:
                return files
    if splits_dir is not None:
        raise ValueError(f"splits folder {splits_dir} holds no kinetics-400_{{train,val,test}}.csv")
    return []


def _int_seconds(value: str, where: str, column: str) -> int:
    try:
        f = float(value)
    except ValueError:
        raise ValueError(f"{where}: {column} {value!r} is not a number") from None
    if f != int(f) or f < 0:
        raise ValueError(f"{where}: {column} {value!r} is not a whole non-negative number of seconds")
    return int(f)


def _read_csv(path: Path, lookup: dict[str, int], classes: tuple[str, ...]):
    """Yield (where, role, youtube_id, start, end, class_name, label) for each row of an annotation CSV."""
    default_role = SPLIT_DIRS[_CSV_NAME.match(path.name).group(1).lower()]
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"youtube_id", "time_start", "time_end"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{path}:1: header {reader.fieldnames} lacks columns {sorted(missing)}")
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row or any(v is None for v in row.values()):
            raise ValueError(f"{where}: row has {len(row)} fields, the header has {len(reader.fieldnames)}")
        ytid = row["youtube_id"].strip()
        if not _YOUTUBE_ID.match(ytid):
            raise ValueError(f"{where}: youtube_id {ytid!r} is not a YouTube id (letters, digits, '-', '_')")
        start = _int_seconds(row["time_start"], where, "time_start")
        end = _int_seconds(row["time_end"], where, "time_end")
        role = default_role
        if row.get("split"):
            role = SPLIT_DIRS.get(row["split"].strip())
            if role is None:
                raise ValueError(f"{where}: split {row['split']!r} is not one of {sorted(SPLIT_DIRS)}")
        name, label = row.get("label", "").strip(), -1
        if name:
            if name not in lookup:
                raise ValueError(f"{where}: label {name!r} is not a Kinetics-400 class")
            label = lookup[name]
            name = classes[label]
        yield where, role, ytid, start, end, name, label


def load_kinetics400(root: Path, splits_dir: str | Path | None) -> DatasetManifest:
    """Kinetics-400 from split folders, the annotation CSVs, or both; one split "1" (train/val/test).

    With CSVs the CSV rows are the reference list: each row is matched to a file on disk by the name stem
    `<youtube_id>_<start:06d>_<end:06d>` (or `<youtube_id>`), wherever it lies under the split folders; an
    unmatched row gets the canonical path `<split>/<label>/<stem>.mp4` so the extractor records it missing.
    Videos on disk that no row names are kept with the role of their split folder.

    Args:
        root: the dataset root.
        splits_dir: a folder holding the CSVs, or None to look in ROOT, then ROOT/annotations/.
    """
    classes = read_label_map()
    lookup = _class_lookup(classes)
    disk, split_dirname, label_dirname = _scan_folders(root, lookup, classes)
    csvs = _find_csvs(root, splits_dir)
    if not disk and not csvs:
        raise ValueError(f"{root}: no split folders ({', '.join(SPLIT_DIRS)}) with videos and no "
                         "kinetics-400_{train,val,test}.csv in the root or annotations/")
    by_stem: dict[str, str] = {}
    for rel in disk:  # sorted: the first path with a given stem wins
        by_stem.setdefault(os.path.splitext(rel.rsplit("/", 1)[-1])[0], rel)
    rows: dict[str, tuple[str, int, dict[str, str]]] = {}
    for path in csvs:
        for where, role, ytid, start, end, name, label in _read_csv(path, lookup, classes):
            stem = f"{ytid}_{start:06d}_{end:06d}"
            rel = by_stem.get(stem) or by_stem.get(ytid)
            if rel is None:
                folder = split_dirname.get(role, role)
                rel = f"{folder}/{label_dirname.get(label, name)}/{stem}.mp4" if label >= 0 else f"{folder}/{stem}.mp4"
            prev = rows.get(rel)
            if prev is not None and prev[2]["1"] != role:
                raise ValueError(f"{where}: {stem} is listed as {role} but earlier as {prev[2]['1']}")
            rows[rel] = (name, label, {"1": role})
    for rel, (role, name, label) in disk.items():
        rows.setdefault(rel, (name, label, {"1": role}))
    source = str(csvs[0].parent) if csvs else ""
    return make_manifest("kinetics400", root, classes, rows, splits_from=source, split_ids=("1",))
