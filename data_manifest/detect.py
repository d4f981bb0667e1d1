"""Which dataset a root folder holds, inferred from its name and its layout, with the reason said.

`v3s-prep extract ROOT/` without --dataset uses this. Layout evidence (cheap: a look at the top two levels):
- aslan: numbered videos (ROOT/0001.avi ...) with a pairs file (View2.mat or pairs.csv);
- ucf101: class folders of `v_<Class>_gNN_cNN.*` videos, or UCF101's split files (classInd.txt,
  ucfTrainTestlist/);
- hmdb51: HMDB51's split files (`<class>_test_split<k>.txt`, testTrainMulti_7030_splits/);
- kinetics400: split folders (train/, val/, test/) of label folders, or the annotation CSVs;
- folder: class folders of videos (any layout that is none of the above).
The folder's name (ucf101, UCF-101, hmdb51, kinetics400, k400, aslan, ...) decides among the layouts that fit; a
name that contradicts the layout, or several layouts with no name to choose, is an error listing the candidates.
"""
from __future__ import annotations

import re
from pathlib import Path

from .aslan import PAIRS_FILES
from .entries import DATASETS
from .kinetics import SPLIT_DIRS, _CSV_NAME
from .splitfile import is_video_name

_NAMES = {"ucf101": "ucf101", "ucf": "ucf101", "hmdb51": "hmdb51", "hmdb": "hmdb51", "kinetics400": "kinetics400",
          "kinetics": "kinetics400", "k400": "kinetics400", "aslan": "aslan"}
_UCF_VIDEO = re.compile(r"^v_.+_g\d+_c\d+\.\w+$", re.IGNORECASE)
_HMDB_SPLIT = re.compile(r"^.+_test_split\d+\.txt$")
_SAMPLE = re.compile(r"^\d+\.\w+$")
_LOOK = 50  # entries looked at per folder: a layout shows in its first few names


def name_hint(root: Path) -> str | None:
    """The dataset a folder's name says (lowercase, without - _ and spaces), or None."""
    key = re.sub(r"[-_ ]", "", root.resolve().name.lower())
    return _NAMES.get(key)


def _entries(d: Path, limit: int = _LOOK) -> list[Path]:
    try:
        return sorted(p for p in d.iterdir() if not p.name.startswith("."))[: 10 * limit]
    except OSError:
        return []


def layout_evidence(root: Path) -> dict[str, str]:
    """dataset -> what in ROOT's layout points to it (only the datasets something points to)."""
    top = _entries(root)
    names = {p.name for p in top}
    folders = [p for p in top if p.is_dir()]
    found: dict[str, str] = {}
    samples = [p.name for p in top if p.is_file() and is_video_name(p.name) and _SAMPLE.match(p.name)]
    pairs = [n for n in PAIRS_FILES if n in names]
    if samples and pairs:
        found["aslan"] = f"numbered videos ({samples[0]}, ...) and {pairs[0]}"
    if "classInd.txt" in names or "ucfTrainTestlist" in names:
        found["ucf101"] = "UCF101's split files (" + ("ucfTrainTestlist/" if "ucfTrainTestlist" in names else "classInd.txt") + ")"
    hmdb = [n for n in names if _HMDB_SPLIT.match(n)] or (["testTrainMulti_7030_splits/"] if "testTrainMulti_7030_splits" in names else [])
    if hmdb:
        found["hmdb51"] = f"HMDB51's split files ({hmdb[0]})"
    splits = [p.name for p in folders if p.name in SPLIT_DIRS]
    csvs = [n for n in names if _CSV_NAME.match(n)]
    if splits or csvs:
        found["kinetics400"] = "split folders (" + ", ".join(splits) + "/)" if splits else f"annotation CSVs ({csvs[0]})"
    class_dirs = [d for d in folders if d.name not in SPLIT_DIRS and any(is_video_name(p.name) for p in _entries(d, 5))]
    ucf_named = [d for d in class_dirs if any(_UCF_VIDEO.match(p.name) for p in _entries(d, 5))]
    if ucf_named and "ucf101" not in found:
        found["ucf101"] = f"class folders of v_<Class>_gNN_cNN videos ({ucf_named[0].name}/, ...)"
    if class_dirs and not (set(found) - {"ucf101", "hmdb51"}):
        found["folder"] = f"{len(class_dirs)}{'+' if len(top) >= 10 * _LOOK else ''} class folders of videos"
    return found


def infer_dataset(root: str | Path) -> tuple[str, str]:
    """(dataset, why) for a dataset root given without --dataset.

    Raises:
        ValueError: the layout fits no dataset, contradicts the folder's name, or fits several with no name to
            choose; the message lists the candidates and asks for --dataset.
    """
    root = Path(root)
    hint, evidence = name_hint(root), layout_evidence(root)
    specific = {k: v for k, v in evidence.items() if k != "folder"}
    listed = "; ".join(f"{k} ({v})" for k, v in specific.items())
    choose = f"pass --dataset (one of {', '.join(DATASETS)})"
    if hint is not None:
        if hint in specific:
            return hint, f"the folder's name and its layout: {specific[hint]}"
        if specific:
            raise ValueError(f"{str(root)!r} is named like {hint} but looks like {listed}; {choose}")
        if "folder" in evidence:
            return hint, f"the folder's name; its layout: {evidence['folder']}"
        raise ValueError(f"{str(root)!r} is named like {hint} but holds no videos in a layout v3s reads "
                         f"(docs/datasets.md); check the path, or {choose}")
    if len(specific) > 1:
        raise ValueError(f"{str(root)!r} could be {listed}; {choose}")
    if specific:
        name, why = next(iter(specific.items()))
        return name, f"its layout: {why}"
    if "folder" in evidence:
        return "folder", f"its layout: {evidence['folder']} (your own classes)"
    raise ValueError(f"{str(root)!r} does not look like a dataset: no class folders of videos, no split files, no "
                     f"numbered ASLAN videos with a pairs file; check the path, or {choose}")
