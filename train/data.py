"""DataLoaders for training and validation: worker processes, pinned memory, DDP sharding, resumable seeded order.

Randomness never comes from a worker's global RNG stream: each item's draws are a function of (seed, epoch,
position) inside the clip datasets (v3s.shared.clips). The epoch travels with the position in the sampler's keys,
so persistent workers see epoch changes, and the order of an epoch is DistributedSampler's permutation of
(seed, epoch). A run resumed at step k of an epoch therefore sees exactly the batches the uninterrupted run saw.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from v3s.shared.runtime import local_world_size
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


PREFETCH = 4  # batches each worker keeps ready


def make_loader(dataset: Dataset, sampler: Sampler, *, batch_size: int, workers: int, device: torch.device,
                seed: int, drop_last: bool) -> DevicePrefetcher:
    """A DataLoader with pinned memory on CUDA, persistent prefetching workers and seeded worker RNGs, wrapped so
    that batches reach the GPU ahead of their step (`DevicePrefetcher`).

    Args:
        dataset: clip items (v3s.shared.clips). sampler: EpochSampler (training) or ShardSampler (validation).
        batch_size: per-rank batch. workers: worker processes (0: load in the main process).
    """
    kwargs = dict(persistent_workers=True, prefetch_factor=PREFETCH, worker_init_fn=_seed_worker) if workers > 0 else {}
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", drop_last=drop_last,
                        generator=torch.Generator().manual_seed(seed_for(seed, LOADER)), **kwargs)
    return DevicePrefetcher(loader, device)


def validation_workers(workers: int) -> int:
    """Validation loaders get half the training workers (they run once an epoch, on a fraction of the videos)."""
    return (workers + 1) // 2


def check_shared_memory(batch_bytes: int, workers: int, val_workers: int, shm: str = "/dev/shm") -> None:
    """ValueError when the batches the loaders keep in flight would not fit in shared memory.

    Worker processes hand batches to the main process through /dev/shm: each worker holds up to PREFETCH batches,
    and every rank on the machine has its own loaders. A container's default /dev/shm (64 MiB) gives bus errors.

    Args:
        batch_bytes: bytes of one per-rank batch of uint8 clips.
        workers, val_workers: worker processes of the training and validation loaders of one rank.
    """
    if not workers or not Path(shm).is_dir():
        return
    need = (workers + val_workers) * PREFETCH * batch_bytes * local_world_size()
    free = shutil.disk_usage(shm).free
    if need > free:
        raise ValueError(f"{shm} has {free / 2**20:.0f} MiB free but the DataLoader workers keep about "
                         f"{need / 2**20:.0f} MiB of batches in flight there: give the container more shared memory "
                         f"(docker run --shm-size={max(1, round(2 * need / 2**30))}g) or pass fewer --workers")


class DevicePrefetcher:
    """A loader whose next batch is already being copied to the GPU while the current one computes.

    On CUDA the uint8 clips and the targets of batch i+1 are copied on a side stream (from pinned memory,
    non_blocking) while batch i runs on the compute stream (timm's PrefetchLoader); the homographies stay on the
    CPU, where the warp reads them. Elsewhere it is the loader itself.

    Args:
        loader: a DataLoader of ClipItem batches (pin_memory on CUDA).
        device: where the batches go.
    """

    def __init__(self, loader: DataLoader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        if self.device.type != "cuda":
            yield from self.loader
            return
        stream = torch.cuda.Stream(self.device)
        batches = iter(self.loader)
        ahead = self._copy(next(batches, None), stream)
        while ahead is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_stream(stream)
            # The copies were made on the side stream: tell the allocator the compute stream uses them now.
            ahead.clip.record_stream(compute)
            ahead.targets.record_stream(compute)
            current, ahead = ahead, self._copy(next(batches, None), stream)
            yield current

    def _copy(self, batch, stream: torch.cuda.Stream):
        if batch is None:
            return None
        with torch.cuda.stream(stream):
            return batch._replace(clip=batch.clip.to(self.device, non_blocking=True),
                                  targets=batch.targets.to(self.device, non_blocking=True))
