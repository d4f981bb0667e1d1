"""DataLoaders for training and validation: worker processes, pinned memory, DDP sharding, resumable seeded order.

Randomness never comes from a worker's global RNG stream: each item's draws are a function of (seed, epoch,
position) inside the clip datasets (v3s.shared.clips). The epoch travels with the position in the sampler's keys,
so persistent workers see epoch changes, and the order of an epoch is DistributedSampler's permutation of
(seed, epoch). A run resumed at step k of an epoch therefore sees exactly the batches the uninterrupted run saw.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from v3s.shared.seeds import LOADER, seed_for

from .distributed import DistInfo


class EpochSampler(Sampler):
    """This rank's share of DistributedSampler's (seed, epoch) permutation as (epoch, position) keys, startable
    mid-epoch.

    Args:
        n: dataset length. seed: order seed. info: rank and world size.
    """

    def __init__(self, n: int, *, seed: int, info: DistInfo):
        self._inner = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=True,
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
    """Validation: this rank's strided share of the positions 0..n-1, unpadded (so no video counts twice)."""

    def __init__(self, n: int, info: DistInfo):
        self.positions = list(range(info.rank, n, info.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.positions)

    def __len__(self) -> int:
        return len(self.positions)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; give numpy and random the same, for any library code
    # that still draws from them (the clip datasets themselves derive draws from (seed, epoch, position)).
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(dataset: Dataset, sampler: Sampler, *, batch_size: int, workers: int, device: torch.device,
                seed: int, drop_last: bool) -> DataLoader:
    """A DataLoader with pinned memory on CUDA, persistent prefetching workers and seeded worker RNGs.

    Args:
        dataset: clip items (v3s.shared.clips). sampler: EpochSampler (training) or ShardSampler (validation).
        batch_size: per-rank batch. workers: worker processes (0: load in the main process).
    """
    kwargs = dict(persistent_workers=True, prefetch_factor=4, worker_init_fn=_seed_worker) if workers > 0 else {}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed_for(seed, LOADER)), **kwargs)
