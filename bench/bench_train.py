"""CPU training figures: V3S pretraining clips/s at width 0.25, and loader-only clips/s by worker count.

1. Training steps (train/loop.py, the real step: device-side warp + normalise, forward, backward, SGD) on one fixed
   uint8 batch, R(2+1)D at width 0.25, fp32, for the paper's 16x112x112 clips and a small 8x32x32 setting.
2. The training DataLoader alone (PretextClips over a store at 128x171: read + decode only the drawn frames) with
   0, 1, 2 ... workers; the ratio to 0 workers (loading in the main process) is the scaling per worker.

    python bench/bench_train.py [--store STORE] [--workers 0,1,2] [--steps 3]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from v3s.preprocess.extract import ExtractConfig, run_extract
from v3s.preprocess.synth import SynthConfig, generate
from v3s.shared.checkpoint import build_network
from v3s.shared.clips import PretextClips
from v3s.shared.config import PretrainConfig
from v3s.shared.labels import LabelSpace
from v3s.shared.clips import ClipItem
from v3s.shared.spatial import sample_spatial_params
from v3s.shared.store import Store
from v3s.shared.tasks import PretextTask
from v3s.train.data import EpochSampler, make_loader
from v3s.train.distributed import DistInfo
from v3s.train.loop import StepContext, train_one_epoch

CPU = torch.device("cpu")


class Quiet:
    def waited(self, s): pass
    def advance(self, n): pass
    def flush(self, **kw): return {}


def train_clips_per_s(width: float, clip_len: int, size: int, batch: int, steps: int, repeats: int = 3,
                      frame_hw=(128, 171)) -> float:
    """Best clips/s over `repeats` runs of `steps` real training steps on a fixed batch (after one warm-up step)."""
    space = LabelSpace()
    torch.manual_seed(0)
    model = build_network(PretrainConfig(store="", dataset="", out="", width=width, label_space=space.to_dict()))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ctx = StepContext(device=CPU, amp_dtype=None, clip_grad=0.0, seed=0, rank=0, world_size=1, channels_last=False,
                      clip_size=size)
    g = torch.Generator().manual_seed(0)
    spatial = torch.randint(0, space.n_spatial, (batch,), generator=g)
    batch_t = ClipItem(torch.randint(0, 256, (batch, clip_len, *frame_hw, 3), dtype=torch.uint8, generator=g),
                       sample_spatial_params(spatial, space, g, frame_hw, size),
                       torch.stack([spatial, torch.randint(0, space.n_temporal, (batch,), generator=g)], 1),
                       torch.arange(batch))
    task = PretextTask(space)
    scaler = torch.amp.GradScaler("cpu", enabled=False)

    def run(n: int) -> None:
        train_one_epoch(model, task, [batch_t] * n, opt, None, scaler, ctx, step=0, last_step=n, progress=Quiet(),
                        log=lambda s, m: None, log_every=10**9, on_step=lambda s: None)

    run(1)
    best = 0.0
    for _ in range(repeats):  # the machine is shared: keep the best of a few repeats
        t0 = time.perf_counter()
        run(steps)
        best = max(best, steps * batch / (time.perf_counter() - t0))
    return best


def loader_clips_per_s(store: Store, workers: int, batches: int, batch: int = 8) -> float:
    """Clips/s of the pretraining DataLoader alone (after its first batch, which pays the worker start-up)."""
    data = PretextClips(store, "ucf101", "1", "train", LabelSpace(), clip_len=16, seed=0)
    sampler = EpochSampler(len(data), seed=0, info=DistInfo(0, 1, 0, CPU))
    loader = make_loader(data, sampler, batch_size=batch, workers=workers, device=CPU, seed=0, drop_last=True)
    n, epoch, t0 = -1, 0, None
    while n < batches:
        sampler.set_epoch(epoch)
        for _ in loader:
            n += 1
            if n == 0:
                t0 = time.perf_counter()
            if n == batches:
                break
        epoch += 1
    return batches * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=None, help="a store with a ucf101 dataset at 128x171 (default: make a small one)")
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--steps", type=int, default=3, help="timed steps per repeat at 16x112x112 (x4 at 8x32x32)")
    p.add_argument("--batches", type=int, default=40)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    for clip_len, size, batch, steps in ((16, 112, 8, args.steps), (8, 32, 8, 4 * args.steps)):
        r = train_clips_per_s(0.25, clip_len, size, batch, steps)
        print(f"train step  R(2+1)D width 0.25  {clip_len}x{size}x{size}  batch {batch}: {r:7.1f} clips/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store
        if path is None:
            generate(SynthConfig(layout="ucf101", classes=4, videos_per_class=8, size=(128, 172), seed=0), Path(tmp) / "raw")
            run_extract(ExtractConfig(root=str(Path(tmp) / "raw"), dataset="ucf101", out=str(Path(tmp) / "store"),
                                      size=(128, 171), quiet=True))
            path = str(Path(tmp) / "store")
        store = Store(path)
        base = None
        for w in (int(x) for x in args.workers.split(",")):
            r = loader_clips_per_s(store, w, args.batches)
            base = base or r
            per = f"{r / w:7.1f} per worker" if w else "   (main process)"
            print(f"loader only 16 frames of 128x171, {w} workers: {r:7.1f} clips/s {per}  x{r / base:.2f} vs 0 workers")


if __name__ == "__main__":
    main()
