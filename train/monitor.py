"""The representation monitor: while a backbone pretrains, how well its frozen features classify by kNN.

Every --monitor-every steps, the pooled features of a fixed labelled subset (up to --monitor-per-class videos of each
class of the split's train list as the memory, as many of its test list as the queries; one centred clip per video,
the evaluation protocol's crop) are extracted with the network in eval mode, and the test videos are classified by
cosine kNN with weighted votes (k = 20, T = 0.07; `v3s.shared.metrics.knn`). The labels are never trained on: they
only score the features, so the pretext's accuracy and the representation's quality can be watched side by side.
The figure goes to metrics.jsonl (phase "monitor"), TensorBoard and curves.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from v3s.shared.clips import EvalClips
from v3s.shared.metrics.knn import knn_accuracy
from v3s.shared.seeds import MONITOR_SUBSET, rng_for
from v3s.shared.spatial import network_input
from v3s.shared.store import Store, VideoInfo

K, TEMPERATURE = 20, 0.07
MEASUREMENTS = 10  # default: this many measurements per run ...
MIN_EVERY = 50     # ... at least this many steps apart (a short trial run measures once, at its end)


def _per_class(videos: list[VideoInfo], per_class: int, seed: int) -> list[VideoInfo]:
    """Up to per_class videos of each class, drawn by seed, in store order."""
    by_class: dict[int, list[int]] = {}
    for i, v in enumerate(videos):
        by_class.setdefault(v.label, []).append(i)
    rng = rng_for(seed, MONITOR_SUBSET)
    keep = sorted(i for ids in by_class.values() for i in rng.permutation(ids)[:per_class].tolist())
    return [videos[i] for i in keep]


@dataclass
class Monitor:
    """A fixed labelled subset and how to score features on it."""

    memory: EvalClips
    queries: EvalClips
    n_classes: int
    every: int
    clip_size: int
    workers: int

    def due(self, step: int, total: int) -> bool:
        return step % self.every == 0 or step == total

    @torch.no_grad()
    def features(self, model: nn.Module, data: EvalClips, device: torch.device, dtype: torch.dtype | None) -> np.ndarray:
        loader = DataLoader(data, batch_size=32, num_workers=self.workers, generator=torch.Generator().manual_seed(0))
        out = []
        for batch in loader:
            x = network_input(batch.clip.to(device, non_blocking=True), batch.geometry, self.clip_size)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out.append(model.backbone(x).float().cpu().numpy())
        return np.concatenate(out)

    def measure(self, model: nn.Module, device: torch.device, dtype: torch.dtype | None) -> dict[str, float]:
        """{"knn_top1", "monitor_seconds"} of the model as it is now; the model goes back to training mode."""
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            memory = self.features(model, self.memory, device, dtype)
            queries = self.features(model, self.queries, device, dtype)
        finally:
            model.train(was_training)
        labels = (np.array([v.label for v in d.videos]) for d in (self.queries, self.memory))
        k = min(K, len(memory))
        top1 = knn_accuracy(queries, next(labels), memory, next(labels), self.n_classes, ks=[k],
                            temperature=TEMPERATURE)[k]["top1"]
        return {"knn_top1": top1, "monitor_seconds": time.perf_counter() - t0}


def build_monitor(store: Store, config: Any, total_steps: int, workers: int, log: Any) -> Monitor | None:
    """The run's monitor, or None (--monitor-every 0, or a split without labelled train and test lists)."""
    if config.monitor_every == 0:
        return None
    n_classes = len(store.classes(config.dataset))
    try:
        train = [v for v in store.split(config.dataset, config.split, "train") if v.label >= 0]
        test = [v for v in store.split(config.dataset, config.split, "test") if v.label >= 0]
    except ValueError:
        train = test = []
    if not train or not test or n_classes < 2:
        if config.monitor_every is not None:
            raise ValueError(f"--monitor-every {config.monitor_every}: split {config.split!r} of {config.dataset!r} has "
                             "no labelled train and test lists to score features on")
        log("monitor: off (the split has no labelled train and test lists)")
        return None
    every = config.monitor_every or max(MIN_EVERY, total_steps // MEASUREMENTS)
    memory = _per_class(train, config.monitor_per_class, config.seed)
    queries = _per_class(test, config.monitor_per_class, config.seed)

    def clips(videos: list[VideoInfo]) -> EvalClips:
        return EvalClips(store, config.dataset, None, None, n_clips=1, clip_len=config.clip_len, videos=videos,
                         clip_size=config.clip_size)

    log(f"monitor: kNN top-1 of {len(queries)} test videos against {len(memory)} train videos every {every} steps "
        "(labels only score the features; --monitor-every 0 turns it off)")
    return Monitor(clips(memory), clips(queries), n_classes, every, config.clip_size, min(workers, 2))
