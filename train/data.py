"""DataLoaders for training and validation: worker processes, pinned memory, DDP sharding, resumable seeded order.

Randomness never comes from a worker's global RNG stream: each item's draws are a function of (seed, epoch, index)
inside the clip datasets (v3s.shared.clips), the epoch travels with the index through the sampler (so persistent
workers see epoch changes), and the order of an epoch is DistributedSampler's permutation of (seed, epoch). A run
resumed at step k of an epoch therefore sees exactly the batches the uninterrupted run saw from step k on.
"""
from __future__ import annotations

import os
import random
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from v3s.shared.store import Store, VideoInfo

from .distributed import DistInfo


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, epoch, step, rank, stream...), independent across inputs."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def open_split(store_path: str, dataset: str, split: str) -> tuple[Store, list[VideoInfo]]:
    """Open a store and list the train videos of one split, with errors that name what is missing.

    Raises:
        FileNotFoundError: no store at `store_path`. ValueError: not a store, or dataset / split absent from it.
    """
    store = Store(store_path)
    if dataset not in store.datasets:
        raise ValueError(f"dataset {dataset!r} is not in store {store_path!r}; it holds {list(store.datasets)}")
    if str(split) not in store.split_ids(dataset):
        raise ValueError(f"split {split!r} is not a split of {dataset!r} in store {store_path!r}; "
                         f"valid splits: {list(store.split_ids(dataset))}")
    videos = store.videos(dataset, str(split), "train")
    if not videos:
        raise ValueError(f"split {split!r} of {dataset!r} in store {store_path!r} has no train videos")
    return store, videos


def draw_validation(n_videos: int, n_val: int, seed: int, what: str) -> tuple[list[int], list[int]]:
    """Split positions 0..n_videos-1 into (train, validation) with `n_val` validation videos drawn by seed.

    Raises:
        ValueError: fewer than n_val + 1 videos (no training video would remain), naming `what`.
    """
    if n_val < 1:
        raise ValueError(f"--val-videos must be >= 1, got {n_val}")
    if n_val >= n_videos:
        raise ValueError(f"{what} has {n_videos} videos: too few for {n_val} validation videos plus training videos; "
                         f"pass --val-videos below {n_videos}")
    perm = np.random.default_rng(seed_for(seed, 0x7A1)).permutation(n_videos)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


class EpochTagged(Dataset):
    """Indexes a dataset by (epoch, index) so that workers, even persistent ones, draw with the right epoch.

    Items are the dataset's tuple plus the dataset index of the video: (*item, index).

    Args:
        dataset: items depend on (seed, epoch, index) through `set_epoch(epoch)`, or on the index alone.
        positions: the dataset indices this view exposes (e.g. the training videos without the validation ones).
    """

    def __init__(self, dataset: Dataset, positions: Sequence[int] | None = None):
        self.dataset = dataset
        self.positions = list(range(len(dataset))) if positions is None else list(positions)
        self._epoch = None

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        if epoch != self._epoch and hasattr(self.dataset, "set_epoch"):  # fixed clips (EvalClips) have no epochs
            self.dataset.set_epoch(epoch)
            self._epoch = epoch
        # The dataset index travels with the item: validation draws are seeded by it (fixed per video).
        return (*self.dataset[self.positions[i]], self.positions[i])


class EpochSampler(Sampler):
    """This rank's share of DistributedSampler's (seed, epoch) permutation as (epoch, index) keys, startable mid-epoch.

    Args:
        n: dataset length. seed: order seed. info: rank and world size. shuffle: permute (training) or not.
    """

    def __init__(self, n: int, *, seed: int, info: DistInfo, shuffle: bool = True):
        self._inner = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=shuffle,
                                         seed=seed, drop_last=False)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch `epoch`, skipping its first `start` items (a resumed run's already-seen samples)."""
        self._inner.set_epoch(epoch)
        self.epoch, self.start = epoch, start

    def per_epoch(self) -> int:
        return len(self._inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in list(self._inner)[self.start:]])

    def __len__(self) -> int:
        return len(self._inner) - self.start


class ShardSampler(Sampler):
    """Validation: a fixed epoch and this rank's strided share of 0..n-1, unpadded (so no video counts twice)."""

    def __init__(self, n: int, info: DistInfo, epoch: int = 0):
        self.keys = [(epoch, i) for i in range(info.rank, n, info.world_size)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; give numpy and random the same, for any library code
    # that still draws from them (the clip datasets themselves derive draws from (seed, epoch, index)).
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def make_loader(dataset: Dataset, sampler: Sampler, *, batch_size: int, workers: int, device: torch.device,
                seed: int, drop_last: bool) -> DataLoader:
    """A DataLoader with pinned memory on CUDA, persistent prefetching workers and seeded worker RNGs.

    Args:
        dataset: an EpochTagged view. sampler: EpochSampler (training) or ShardSampler (validation).
        batch_size: per-rank batch. workers: worker processes (0: load in the main process).
    """
    kwargs = dict(persistent_workers=True, prefetch_factor=4, worker_init_fn=_seed_worker) if workers > 0 else {}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed_for(seed, 0x10AD)), **kwargs)
