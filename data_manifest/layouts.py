"""Parsers for the UCF101 and HMDB51 official split files and for a user's own `ROOT/<class>/<video>` folder."""
from __future__ import annotations

import re
from pathlib import Path

from .entries import DatasetManifest, make_manifest
from .splitfile import (
    bundled_dir,
    check_rel_path,
    parse_list_line,
    pick_splits_dir,
    read_lines,
    video_paths,
)

_UCF_LIST = re.compile(r"^(train|test)list(\d+)\.txt$", re.IGNORECASE)
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$")
_HMDB_ROLE = {"1": "train", "2": "test"}  # "0" = not used in that split: absent from entry.splits
# UCF101's v_<Class>_gXX_cYY: the clips of group XX were cut from one recording session (actor, background).
_UCF_GROUP = re.compile(r"_g(\d+)_c\d+\.[^./]+$", re.IGNORECASE)


def video_group(rel_path: str) -> str | None:
    """A video's recording group, "g08" for ".../v_ApplyEyeMakeup_g08_c01.avi"; None for a name without one.

    The group number is the one the official UCF101 splits cut by (the same gXX in every class), so videos that
    share it are kept together wherever a protocol must not split a group (the linear probe's folds).
    """
    m = _UCF_GROUP.search(rel_path)
    return f"g{int(m.group(1)):02d}" if m else None


def _ucf_lists(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if _UCF_LIST.match(p.name) and p.is_file())


def read_class_ind(path: Path) -> tuple[str, ...]:
    """Read a UCF101 `classInd.txt` (`<1-based id> <ClassName>` lines) into label index -> class name.

    Args:
        path: the classInd file; ids must be exactly 1..N, each once.
    """
    by_id: dict[int, str] = {}
    for lineno, text in read_lines(path):
        fields = text.split(None, 1)
        if len(fields) != 2 or not fields[0].isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<id> <ClassName>', got {text!r}")
        cid, name = int(fields[0]), fields[1]
        if cid in by_id:
            raise ValueError(f"{path}:{lineno}: class id {cid} appears twice")
        check_rel_path(name, path, lineno)  # a class name becomes a folder name
        by_id[cid] = name
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise ValueError(f"{path}: class ids must be 1..{len(by_id)} without gaps, got {sorted(by_id)[:5]}...")
    names = tuple(by_id[i] for i in range(1, len(by_id) + 1))
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a class name appears twice")
    return names


def read_ucf_lists(d: Path, classes: tuple[str, ...] | None) -> dict[str, dict[str, str]]:
    """Read every `trainlistNN.txt` / `testlistNN.txt` in a folder.

    Args:
        d: the folder.
        classes: classInd's class names; when given, each line's class folder must be one of them and a
            trainlist id must match it. None (a user's folder without classInd) skips both checks.

    Returns:
        rel_path -> {split id ("1" for trainlist01): "train" | "test"}.
    """
    index = {c: i for i, c in enumerate(classes)} if classes is not None else None
    roles: dict[str, dict[str, str]] = {}
    for f in _ucf_lists(d):
        m = _UCF_LIST.match(f.name)
        role, sid = m.group(1).lower(), str(int(m.group(2)))
        for lineno, text in read_lines(f):
            path_text, cid = parse_list_line(text)
            rel = check_rel_path(path_text, f, lineno)
            parts = rel.split("/")
            if len(parts) < 2:
                raise ValueError(f"{f}:{lineno}: expected '<Class>/<video>', got {text!r}")
            if index is not None:
                if parts[0] not in index:
                    raise ValueError(f"{f}:{lineno}: class folder {parts[0]!r} is not in classInd.txt")
                if cid is not None and cid != index[parts[0]] + 1:
                    raise ValueError(f"{f}:{lineno}: class id {cid} does not match {parts[0]!r}, "
                                     f"which is {index[parts[0]] + 1} in classInd.txt")
            prev = roles.setdefault(rel, {}).setdefault(sid, role)
            if prev != role:
                raise ValueError(f"{f}:{lineno}: {rel!r} is both {prev} and {role} in split {sid}")
    return roles


def load_ucf101(root: Path, splits_dir: str | Path | None) -> DatasetManifest:
    """UCF101: ROOT/<Class>/v_<Class>_gXX_cYY.avi with classInd.txt and train/testlist0N.txt.

    Entries are the union of every split's lists; a rel_path is kept exactly as listed (the folder
    `HandstandPushups` holds files `v_HandStandPushups_*`).

    Args:
        root: the dataset root.
        splits_dir: a folder holding classInd.txt and the lists, or None to look in ROOT/ucfTrainTestlist/,
            then ROOT, then the bundled copies.
    """
    d, source = pick_splits_dir(
        splits_dir, [root / "ucfTrainTestlist", root], lambda p: (p / "classInd.txt").is_file(),
        bundled_dir("ucf101"), "classInd.txt",
    )
    classes = read_class_ind(d / "classInd.txt")
    roles = read_ucf_lists(d, classes)
    if not roles:
        raise ValueError(f"{d} holds classInd.txt but no trainlistNN.txt / testlistNN.txt with any line")
    index = {c: i for i, c in enumerate(classes)}
    rows = {rel: (rel.split("/", 1)[0], index[rel.split("/", 1)[0]], s) for rel, s in roles.items()}
    return make_manifest("ucf101", root, classes, rows, splits_from=source)


def _hmdb_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if _HMDB_FILE.match(p.name) and p.is_file())


def load_hmdb51(root: Path, splits_dir: str | Path | None) -> DatasetManifest:
    """HMDB51: ROOT/<class>/<name>.avi with `<class>_test_split<k>.txt` files of `<name>.avi <0|1|2>` lines.

    The class is the split file's name before `_test_split`; label = index in the sorted class names.
    A line is split on its last whitespace-separated field only, so names keep `! ( ) # [ ] & + ; ~ @`.

    Args:
        root: the dataset root.
        splits_dir: a folder of the split files, or None to look in ROOT/testTrainMulti_7030_splits/, then
            ROOT, then the bundled copies.
    """
    d, source = pick_splits_dir(
        splits_dir, [root / "testTrainMulti_7030_splits", root], lambda p: bool(_hmdb_files(p)),
        bundled_dir("hmdb51"), "<class>_test_split<k>.txt files",
    )
    per_video: dict[str, tuple[str, dict[str, str]]] = {}
    for f in _hmdb_files(d):
        m = _HMDB_FILE.match(f.name)
        cls, sid = m.group("cls"), str(int(m.group("k")))
        if cls in (".", "..") or cls.startswith("~"):
            raise ValueError(f"{f}: class name {cls!r} would point outside the dataset root")
        seen_here: dict[str, str] = {}
        for lineno, text in read_lines(f):
            fields = text.rsplit(None, 1)
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{f}:{lineno}: expected '<video> <0|1|2>', got {text!r}")
            video = check_rel_path(fields[0], f, lineno)
            rel = f"{cls}/{video}"
            if seen_here.setdefault(rel, fields[1]) != fields[1]:
                raise ValueError(f"{f}:{lineno}: {video!r} is listed twice with different flags")
            _, splits = per_video.setdefault(rel, (cls, {}))
            if fields[1] in _HMDB_ROLE:
                splits[sid] = _HMDB_ROLE[fields[1]]
    classes = tuple(sorted({cls for cls, _ in per_video.values()}))
    index = {c: i for i, c in enumerate(classes)}
    rows = {rel: (cls, index[cls], s) for rel, (cls, s) in per_video.items()}
    return make_manifest("hmdb51", root, classes, rows, splits_from=source)


def load_folder(root: Path, splits_dir: str | Path | None) -> DatasetManifest:
    """A user's own videos: every video path below ROOT/<class>/, classes = sorted class folder names.

    Without lists every video is "train" in split "1". When the splits folder (`splits_dir`, else
    ROOT/ucfTrainTestlist/, else ROOT) holds UCF101-format trainlistNN.txt / testlistNN.txt, they give the
    splits; a classInd.txt there fixes the class order, otherwise classes are the sorted union of the class
    folders and the classes the lists name. Videos on disk that no list names are kept, in no split.

    Args:
        root: the dataset root.
        splits_dir: a folder holding the lists, or None.
    """
    on_disk: dict[str, str] = {}
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        if d.name.startswith(".") or not d.is_dir():
            continue
        for rel in video_paths(d, root):
            on_disk[rel] = d.name
    candidates = [root / "ucfTrainTestlist", root]
    has_lists = splits_dir is not None or any(c.is_dir() and _ucf_lists(c) for c in candidates)
    listed: dict[str, dict[str, str]] = {}
    source = ""
    classes: tuple[str, ...] | None = None
    if has_lists:
        d, source = pick_splits_dir(splits_dir, candidates, lambda p: bool(_ucf_lists(p)), None,
                                    "trainlistNN.txt / testlistNN.txt")
        if (d / "classInd.txt").is_file():
            classes = read_class_ind(d / "classInd.txt")
        listed = read_ucf_lists(d, classes)
    if not on_disk and not listed:
        raise ValueError(f"no videos under {root}/<class>/ (layout: ROOT/<class>/<video>, video suffixes "
                         "such as .mp4 .avi .mkv)")
    class_of = {rel: rel.split("/", 1)[0] for rel in listed} | on_disk
    if classes is None:
        classes = tuple(sorted(set(class_of.values())))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(class_of.values()) - set(index))
    if unknown:
        raise ValueError(f"class folders {unknown[:5]} under {root} are not in {source}/classInd.txt")
    rows = {}
    for rel, cls in class_of.items():
        splits = listed.get(rel, {}) if has_lists else {"1": "train"}
        rows[rel] = (cls, index[cls], splits)
    split_ids = None if has_lists else ("1",)
    return make_manifest("folder", root, classes, rows, splits_from=source, split_ids=split_ids)
