"""ASLAN: numbered action samples plus the View-2 pairs file (the authors' View2.mat or a CSV)."""
from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from .entries import DatasetManifest, Pair, make_manifest
from .splitfile import is_video_name, read_lines

PAIR_COLUMNS = ("fold", "first", "second", "same", "first_action", "second_action")
PAIRS_FILES = ("View2.mat", "pairs.csv")  # looked for in this order
ACTION_NAME_FILES = ("Actions_Ids.txt", "Actions_List.txt")
_SAMPLE = re.compile(r"^(\d+)$")


def _as_int(value, where: str, column: str, low: int) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {column} {value!r} is not a number") from None
    if f != int(f) or f < low:
        raise ValueError(f"{where}: {column} {value!r} must be a whole number >= {low}")
    return int(f)


def _pair(where: str, fold, first, second, same, a1, a2) -> Pair:
    same_i = _as_int(same, where, "same", 0)
    if same_i not in (0, 1):
        raise ValueError(f"{where}: same must be 0 or 1, got {same!r}")
    return Pair(
        fold=_as_int(fold, where, "fold", 1),
        first=f"{_as_int(first, where, 'first', 1):04d}",
        second=f"{_as_int(second, where, 'second', 1):04d}",
        same=bool(same_i),
        first_action=_as_int(a1, where, "first_action", 1),
        second_action=_as_int(a2, where, "second_action", 1),
    )


def _read_mat(path: Path) -> np.ndarray:
    """`action_splits_pairs` as (pairs, 5, folds), from a MATLAB v5 file or a v7.3 (HDF5) one."""
    import scipy.io  # scipy comes with scikit-learn; imported here so the other datasets never need it

    try:
        arr = scipy.io.loadmat(str(path), variable_names=["action_splits_pairs"]).get("action_splits_pairs")
    except NotImplementedError:  # MATLAB v7.3 files are HDF5, stored with the axes reversed
        import h5py

        try:
            with h5py.File(path, "r") as f:
                arr = np.asarray(f["action_splits_pairs"]).T if "action_splits_pairs" in f else None
        except OSError as e:
            raise ValueError(f"{path}: not a readable MATLAB v7.3 (HDF5) file: {e}") from None
    except Exception as e:  # scipy raises many types for a file that is not a .mat, and names no file
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    if arr is None:
        raise ValueError(f"{path}: no variable 'action_splits_pairs'")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[1] != 5:
        raise ValueError(f"{path}: action_splits_pairs has shape {arr.shape}, expected (pairs, 5, folds), "
                         "e.g. (600, 5, 10)")
    return arr


def read_pairs(path: str | Path) -> tuple[Pair, ...]:
    """Read ASLAN View-2 pairs from `View2.mat` (variable action_splits_pairs, 600x5x10) or a CSV.

    The CSV has the header `fold,first,second,same,first_action,second_action`. Samples come back as
    4-digit ids ("0042"); `load_manifest` turns them into rel_paths. Pairs are ordered by fold, then row.

    Args:
        path: the .mat or .csv file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ASLAN pairs file {path} does not exist")
    pairs: list[Pair] = []
    if path.suffix.lower() == ".mat":
        arr = _read_mat(path)
        for k in range(arr.shape[2]):
            for r in range(arr.shape[0]):
                first, second, same, a1, a2 = arr[r, :, k].tolist()
                pairs.append(_pair(f"{path}[row {r + 1}, fold {k + 1}]", k + 1, first, second, same, a1, a2))
        return tuple(pairs)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = None
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            missing = [c for c in PAIR_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{where}: header {row} lacks {missing}; expected {','.join(PAIR_COLUMNS)}")
            continue
        if len(row) != len(header):
            raise ValueError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, (c.strip() for c in row)))
        pairs.append(_pair(where, *(cells[c] for c in PAIR_COLUMNS)))
    if header is None:
        raise ValueError(f"{path}: empty; expected the header {','.join(PAIR_COLUMNS)} and one row per pair")
    return tuple(sorted(pairs, key=lambda p: p.fold))  # stable: keeps row order within a fold


def read_action_names(path: Path) -> tuple[str, ...]:
    """ASLAN action names, one per line, line k = action id k; `<k> <name>` lines are accepted too.

    Args:
        path: Actions_Ids.txt / Actions_List.txt.
    """
    lines = [text for _, text in read_lines(path)]
    numbered = [re.match(r"^(\d+)[\s,:]+(.+)$", t) for t in lines]
    if lines and all(m and int(m.group(1)) == i for i, m in enumerate(numbered, start=1)):
        return tuple(m.group(2).strip() for m in numbered)
    return tuple(lines)


def _scan_samples(root: Path) -> dict[int, str]:
    """Sample id -> rel_path for ROOT/<id>.<ext> and ROOT/<folder>/<id>.<ext>; the top level wins, then
    the first in path order."""
    found: dict[int, str] = {}
    for depth_dir, prefix in [(root, "")] + [
        (d, d.name + "/") for d in sorted(root.iterdir(), key=lambda p: p.name)
        if d.is_dir() and not d.name.startswith(".") and not is_video_name(d.name)
    ]:
        for name in sorted(os.listdir(depth_dir)):
            stem, ext = os.path.splitext(name)
            if is_video_name(name) and _SAMPLE.match(stem):
                found.setdefault(int(stem), prefix + name)
    return found


def _find_pairs_file(root: Path, splits_dir: str | Path | None) -> Path:
    dirs = [Path(splits_dir)] if splits_dir is not None else [root]
    if splits_dir is not None and not dirs[0].is_dir():
        raise FileNotFoundError(f"splits folder {splits_dir} does not exist or is not a folder")
    for d in dirs:
        for name in PAIRS_FILES:
            if (d / name).is_file():
                return d / name
    raise FileNotFoundError(f"no ASLAN pairs file ({' or '.join(PAIRS_FILES)}) in {dirs[0]}; pass --splits DIR")


def load_aslan(root: Path, splits_dir: str | Path | None) -> DatasetManifest:
    """ASLAN: every sample named in a View-2 pair, with split "fold<k>" -> "test" for each fold it appears in.

    A sample's label is its action id - 1 (the smallest id when pairs disagree, since a sample may carry
    several labels); classes are the names from Actions_Ids.txt / Actions_List.txt when present (in the
    splits folder or ROOT), else "1".."<max id>". A sample with no file gets `<id>.<ext>` with the most
    common extension found, so the extractor records it missing.

    Args:
        root: the dataset root.
        splits_dir: a folder holding View2.mat or pairs.csv, or None to look in ROOT.
    """
    pairs_path = _find_pairs_file(root, splits_dir)
    raw = read_pairs(pairs_path)
    samples = _scan_samples(root)
    ext = Counter(os.path.splitext(p)[1] for p in samples.values()).most_common(1)
    default_ext = ext[0][0] if ext else ".avi"

    def rel_of(sample: str) -> str:
        return samples.get(int(sample), f"{sample}{default_ext}")

    action: dict[str, int] = {}
    folds: dict[str, dict[str, str]] = {}
    for p in raw:
        for s, a in ((p.first, p.first_action), (p.second, p.second_action)):
            action[s] = min(a, action.get(s, a))
            folds.setdefault(s, {})[f"fold{p.fold}"] = "test"
    max_action = max(action.values(), default=0)
    classes = tuple(str(i) for i in range(1, max_action + 1))
    for d in ([Path(splits_dir)] if splits_dir is not None else []) + [root]:
        names_file = next((d / n for n in ACTION_NAME_FILES if (d / n).is_file()), None)
        if names_file is not None:
            classes = read_action_names(names_file)
            if len(classes) < max_action:
                raise ValueError(f"{names_file}: {len(classes)} action names, but {pairs_path} uses action id "
                                 f"{max_action}")
            break
    rows = {rel_of(s): (classes[a - 1], a - 1, folds[s]) for s, a in action.items()}
    pairs = tuple(
        Pair(p.fold, rel_of(p.first), rel_of(p.second), p.same, p.first_action, p.second_action) for p in raw
    )
    return make_manifest("aslan", root, classes, rows, pairs=pairs, splits_from=str(pairs_path))
