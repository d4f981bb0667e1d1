"""`load_manifest`: turn a dataset root into a DatasetManifest, dispatching on the dataset kind."""
from __future__ import annotations

from pathlib import Path

from .aslan import load_aslan
from .entries import DATASETS, DatasetManifest
from .kinetics import load_kinetics400
from .layouts import load_folder, load_hmdb51, load_ucf101

_LOADERS = {
    "ucf101": load_ucf101,
    "hmdb51": load_hmdb51,
    "kinetics400": load_kinetics400,
    "aslan": load_aslan,
    "folder": load_folder,
}


def load_manifest(root: str | Path, dataset: str, splits_dir: str | Path | None = None) -> DatasetManifest:
    """List every video of a dataset root with its class, label and split membership.

    Args:
        root: the dataset root (layouts in docs/datasets.md); it must exist, the videos need not.
        dataset: one of DATASETS.
        splits_dir: a folder holding the split files (`--splits DIR`); None looks inside ROOT, then uses
            the copies bundled with the package (UCF101, HMDB51).
    """
    if dataset not in _LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"dataset root {root} is not a folder")
    return _LOADERS[dataset](root, splits_dir)
