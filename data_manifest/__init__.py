"""Dataset layouts and the official split files (UCF101, HMDB51, Kinetics-400, ASLAN, folder)."""
from .aslan import read_pairs
from .entries import DATASETS, VIDEO_EXTENSIONS, DatasetManifest, Entry, Pair
from .layouts import video_group
from .manifest import load_manifest

__all__ = ["DATASETS", "VIDEO_EXTENSIONS", "DatasetManifest", "Entry", "Pair", "load_manifest", "read_pairs",
           "video_group"]
