"""Planning a synthetic dataset in a UCF101, HMDB51 or ASLAN layout: which clips, their names, groups and splits,
and the split and pairs files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import CODECS, LAYOUTS, SynthConfig, class_pool
from .scene import VideoSpec

@dataclass(frozen=True)
class PlannedVideo:
    """One clip of a planned dataset.

    Args:
        rel_path: POSIX path relative to OUT.
        class_name: the class name as the layout writes it.
        label: 0-based class index.
        group: 1-based group number within the class (clips of a group share background and object).
        clip: 1-based clip number within the group.
        spec: what to render.
    """

    rel_path: str
    class_name: str
    label: int
    group: int
    clip: int
    spec: VideoSpec


def hmdb_name(motion: str) -> str:
    """CamelCase motion class -> HMDB51-style lowercase_with_underscores name (TranslateLeft -> translate_left)."""
    return "".join("_" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(motion))


def group_sizes(videos_per_class: int) -> list[int]:
    """Clips per group, like UCF101's 4-7: about 5 per group, at least 3 groups, spread evenly."""
    n_groups = max(3, round(videos_per_class / 5))
    base, extra = divmod(videos_per_class, n_groups)
    return [base + (1 if g < extra else 0) for g in range(n_groups)]


def split_test_groups(n_groups: int, split: int, fraction: float) -> set[int]:
    """The 1-based test groups of a split (1..3): consecutive, disjoint blocks, as UCF101's g01-07/g08-14/g15-21.

    Args:
        n_groups: groups per class.
        split: 1, 2 or 3.
        fraction: share of the groups to test on (UCF101 7/25, HMDB51 0.3).
    """
    k = max(1, min(round(n_groups * fraction), n_groups // 3))
    return set(range((split - 1) * k + 1, split * k + 1))


def plan_dataset(config: SynthConfig) -> list[PlannedVideo]:
    """Every clip of the dataset, its path in the layout, label, group and render spec (no rendering)."""
    motions = class_pool(config.layout, config.class_set)[: config.classes]
    ext = CODECS[config.codec][1]
    layout_code = LAYOUTS.index(config.layout)
    sizes = group_sizes(config.videos_per_class)
    out = []
    sample = 0
    for label, motion in enumerate(motions):
        for g, n in enumerate(sizes, start=1):
            for clip in range(1, n + 1):
                spec = VideoSpec(motion, config.size, (config.seed, layout_code, label, g),
                                 (config.seed, layout_code, label, g, clip), config.clutter)
                if config.layout == "ucf101":
                    name, rel = motion, f"{motion}/v_{motion}_g{g:02d}_c{clip:02d}{ext}"
                elif config.layout == "hmdb51":
                    name = hmdb_name(motion)
                    rel = f"{name}/{name}_g{g:02d}_c{clip:02d}{ext}"
                else:
                    sample += 1
                    name, rel = motion, f"{sample:04d}{ext}"
                out.append(PlannedVideo(rel, name, label, g, clip, spec))
    return out


def _write_text(path: Path, lines: list[str], newline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode("ascii"))


def write_ucf101_splits(out: Path, videos: list[PlannedVideo], classes: list[str]) -> None:
    """`ucfTrainTestlist/` with classInd.txt, trainlist0N.txt, testlist0N.txt (CRLF, as the official files)."""
    d = out / "ucfTrainTestlist"
    _write_text(d / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)], "\r\n")
    n_groups = max(v.group for v in videos)
    for split in (1, 2, 3):
        test = split_test_groups(n_groups, split, 7 / 25)
        _write_text(d / f"trainlist0{split}.txt",
                    [f"{v.rel_path} {v.label + 1}" for v in videos if v.group not in test], "\r\n")
        _write_text(d / f"testlist0{split}.txt", [v.rel_path for v in videos if v.group in test], "\r\n")


def write_hmdb51_splits(out: Path, videos: list[PlannedVideo], classes: list[str]) -> None:
    """`testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`: `<name> <1 train|2 test> ` lines (LF)."""
    d = out / "testTrainMulti_7030_splits"
    n_groups = max(v.group for v in videos)
    for split in (1, 2, 3):
        test = split_test_groups(n_groups, split, 0.3)
        for c in classes:
            _write_text(d / f"{c}_test_split{split}.txt",
                        [f"{Path(v.rel_path).name} {2 if v.group in test else 1} "
                         for v in videos if v.class_name == c], "\n")


def aslan_pairs(videos: list[PlannedVideo], n_classes: int, pairs_per_fold: int, seed: int
                ) -> list[tuple[int, str, str, int, int, int]]:
    """Balanced same / not-same pairs in 10 folds whose classes are disjoint, as ASLAN View-2.

    Classes are dealt at random to the 10 folds; a fold's pairs use only its classes. As in ASLAN, a valid
    pair is two clips not cut from the same source (here: not of the same group).

    Returns:
        Rows (fold, first id, second id, same 0/1, first action id, second action id), ids as 4-digit text.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))
    order = rng.permutation(n_classes)
    folds = [sorted(order[i::10].tolist()) for i in range(10)]
    by_class = {lab: [v for v in videos if v.label == lab] for lab in range(n_classes)}
    rows = []
    for fold, labels in enumerate(folds, start=1):
        if len(labels) < 2:
            raise ValueError(f"fold {fold} has one class; ASLAN not-same pairs need >= 2 classes per fold "
                             f"(use --classes >= 20, got {n_classes})")
        same = [(a, b) for lab in labels for i, a in enumerate(by_class[lab]) for b in by_class[lab][i + 1:]
                if a.group != b.group]
        diff = [(a, b) for i, la in enumerate(labels) for lb in labels[i + 1:] for a in by_class[la]
                for b in by_class[lb]]
        half = pairs_per_fold // 2
        if len(same) < half or len(diff) < half:
            raise ValueError(f"fold {fold} offers {len(same)} same and {len(diff)} not-same pairs, fewer than "
                             f"the {half} each that pairs_per_fold={pairs_per_fold} needs; "
                             "raise --videos-per-class or lower --pairs-per-fold")
        picked = [(p, 1) for p in (same[i] for i in rng.choice(len(same), half, replace=False))]
        picked += [(p, 0) for p in (diff[i] for i in rng.choice(len(diff), half, replace=False))]
        for k in rng.permutation(len(picked)):
            (a, b), is_same = picked[k]
            if rng.random() < 0.5:
                a, b = b, a
            rows.append((fold, Path(a.rel_path).stem, Path(b.rel_path).stem, is_same, a.label + 1, b.label + 1))
    return rows


def write_aslan_files(out: Path, videos: list[PlannedVideo], classes: list[str], config: SynthConfig) -> None:
    """`pairs.csv` (fold,first,second,same,first_action,second_action) and `Actions_List.txt` (line k = id k)."""
    rows = aslan_pairs(videos, len(classes), config.pairs_per_fold, config.seed)
    header = "fold,first,second,same,first_action,second_action"
    _write_text(out / "pairs.csv", [header] + [",".join(str(x) for x in r) for r in rows], "\n")
    _write_text(out / "Actions_List.txt", list(classes), "\n")
