"""The manifest types every stage shares: one Entry per video, one Pair per ASLAN View-2 row."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DATASETS = ("ucf101", "hmdb51", "kinetics400", "aslan", "folder")

# Lowercase suffixes; a path counts as a video when its suffix, lowercased, is one of these.
VIDEO_EXTENSIONS = frozenset(
    {".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".3gp", ".ogv"}
)

ROLES = ("train", "test", "val")


@dataclass(frozen=True)
class Entry:
    """One video of a dataset.

    Args:
        rel_path: POSIX path relative to the dataset root, as it should exist on disk (existence is not checked).
        class_name: class name ("" when unknown, e.g. an unlabelled Kinetics test video).
        label: 0-based class index into `DatasetManifest.classes`; -1 when unknown.
        splits: split id -> role ("train" | "test" | "val"); a split id absent here means the video is not
            part of that split. A plain dict (so that entries pickle into worker processes); do not mutate it.
    """

    rel_path: str
    class_name: str
    label: int
    splits: Mapping[str, str]


@dataclass(frozen=True)
class Pair:
    """One ASLAN View-2 pair row.

    Args:
        fold: 1-based fold (split) number, 1..10 in the official protocol.
        first: the first sample: its rel_path inside a manifest, its 4-digit id (e.g. "0042") from `read_pairs`.
        second: the second sample, in the same form as `first`.
        same: True when the pair is labelled "same action" (column 3 == 1).
        first_action: action class id (1-based, as in the pairs file) of the first sample.
        second_action: action class id of the second sample.
    """

    fold: int
    first: str
    second: str
    same: bool
    first_action: int
    second_action: int


@dataclass(frozen=True)
class DatasetManifest:
    """Every video of one dataset root with labels and split membership.

    Args:
        name: the dataset kind, one of DATASETS.
        root: the dataset root the rel_paths are relative to.
        classes: label index -> class name.
        entries: sorted by rel_path, rel_paths unique.
        split_ids: the split ids that occur in entries' `splits`, e.g. ("1", "2", "3").
        pairs: ASLAN View-2 pairs (rel_paths of the samples); empty for the other datasets.
        splits_from: where the split files were read from (a folder or file path, "bundled:<dataset>" for the
            copies shipped with the package, "" when the layout alone defines the split).
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    entries: tuple[Entry, ...]
    split_ids: tuple[str, ...]
    pairs: tuple[Pair, ...] = ()
    splits_from: str = ""

    def select(self, split_id: str, role: str | None = None) -> tuple[Entry, ...]:
        """The entries of one split, optionally only those with one role.

        Args:
            split_id: one of `split_ids`.
            role: "train", "test" or "val"; None keeps every role of that split.
        """
        if split_id not in self.split_ids:
            raise ValueError(f"split {split_id!r} is not in dataset {self.name!r}; its splits are {self.split_ids}")
        if role is not None and role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {ROLES}")
        return tuple(
            e for e in self.entries if split_id in e.splits and (role is None or e.splits[split_id] == role)
        )


def make_manifest(
    name: str,
    root: Path,
    classes: tuple[str, ...],
    rows: Mapping[str, tuple[str, int, Mapping[str, str]]],
    pairs: tuple[Pair, ...] = (),
    splits_from: str = "",
    split_ids: tuple[str, ...] | None = None,
) -> DatasetManifest:
    """Build a manifest with entries sorted by rel_path and split ids in natural order.

    Args:
        name: the dataset kind.
        root: the dataset root.
        classes: label index -> class name.
        rows: rel_path -> (class_name, label, {split id: role}).
        pairs: ASLAN pairs.
        splits_from: where the split files came from.
        split_ids: the split ids; by default every id that occurs in rows, numbers in numeric order.
    """
    entries = tuple(Entry(rel, c, lab, dict(s)) for rel, (c, lab, s) in sorted(rows.items()))
    if split_ids is None:
        ids = {sid for _, _, s in rows.values() for sid in s}
        split_ids = tuple(sorted(ids, key=_natural_key))
    return DatasetManifest(name, root, tuple(classes), entries, tuple(split_ids), tuple(pairs), splits_from)


def _natural_key(s: str) -> tuple:
    """Sort "fold2" before "fold10" and "2" before "10"."""
    head = s.rstrip("0123456789")
    tail = s[len(head):]
    return (head, int(tail) if tail else -1, s)
