"""GPU training throughput of V3S pretraining: R(2+1)D at batch 32, fp32 eager (the peers' setting) against
bf16 autocast + channels_last_3d, with and without torch.compile; synthetic batches and the real loader.

Each mode runs the project's own training step (train/loop.py: device-side V3S warp + normalisation, forward,
backward, SGD) and prints clips/s and MFU = clips/s x training FLOPs per clip / peak FLOP/s. "synthetic" feeds one
pinned uint8 batch over and over (no decoding: the GPU's ceiling); "loader" reads a real store (a synthetic
UCF101-layout dataset made here with v3s-prep synth + extract at 128x171, or --store) through the DataLoader.

    python bench/gpu_train.py                 # on a CUDA machine (bench/gpu_train.sh wraps it)
    python bench/gpu_train.py --smoke         # CPU, tiny sizes: checks the script end to end in ~1 minute
"""
from __future__ import annotations

import argparse
import json
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
from v3s.shared.store import Store
from v3s.train.data import EpochSampler, EpochTagged, make_loader
from v3s.train.distributed import DistInfo
from v3s.train.loop import StepContext, train_one_epoch
from v3s.train.pretrain import PretextTask
from v3s.train.runner import amp_dtype

# Dense bf16 tensor-core peaks from the vendors' spec sheets (TFLOP/s); --peak-tflops overrides.
PEAKS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 70.0}
MODES = (("fp32-eager", "fp32", False, False), ("bf16-cl", "bf16", True, False), ("bf16-cl-compile", "bf16", True, True))


class Meter:
    """Stands in for the progress bar: counts the time spent waiting for data."""

    def __init__(self):
        self.wait = 0.0

    def waited(self, s: float) -> None:
        self.wait += s

    def advance(self, n: int) -> None:
        pass

    def flush(self, **kw) -> dict:
        return {}


def train_flops_per_clip(args, device: torch.device) -> float:
    """Forward + backward FLOPs of one clip (convolutions and matmuls, counted by torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_network(config(args)).to(device)
    x = torch.randn(2, 3, args.clip_len, args.clip_size, args.clip_size, device=device)
    with FlopCounterMode(display=False) as counter:
        s, t = model(x)
        (s.sum() + t.sum()).backward()
    return counter.get_total_flops() / 2


def config(args) -> PretrainConfig:
    return PretrainConfig(store="", dataset="ucf101", out="", width=args.width, clip_len=args.clip_len,
                          clip_size=args.clip_size, label_space=LabelSpace().to_dict())


def run_mode(args, device, mode, batches, steps: int) -> dict:
    """Time `steps` training steps (after args.warmup) of one mode over an iterable factory `batches(epoch)`."""
    name, precision, channels_last, compile_ = mode
    torch.manual_seed(0)
    model = build_network(config(args)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    train_model = torch.compile(model) if compile_ else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    ctx = StepContext(device=device, amp_dtype=amp_dtype(precision, device), clip_grad=0.0, seed=0, rank=0,
                      world_size=1, channels_last=channels_last)
    task = PretextTask(LabelSpace(), args.clip_size, device, 0)
    scaler = torch.amp.GradScaler(device.type, enabled=False)

    def train(n: int, meter: Meter) -> None:
        step, epoch = 0, 0
        while step < n:
            step = train_one_epoch(train_model, task, batches(epoch), optimizer, None, scaler, ctx, step=step,
                                   last_step=n, progress=meter, log=lambda s, m: None, log_every=10**9,
                                   on_step=lambda s: None)
            epoch += 1

    train(args.warmup, Meter())
    sync(device)
    meter = Meter()
    t0 = time.perf_counter()
    train(steps, meter)
    sync(device)
    dt = time.perf_counter() - t0
    return {"mode": name, "clips_per_s": steps * args.batch / dt, "data_wait": meter.wait / dt}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_store(args, root: Path) -> str:
    generate(SynthConfig(layout="ucf101", classes=args.classes, videos_per_class=args.videos_per_class,
                         size=(args.frame_h, args.frame_w + 1), seed=0), root / "raw", jobs=args.workers)
    run_extract(ExtractConfig(root=str(root / "raw"), dataset="ucf101", out=str(root / "store"), height=args.frame_h,
                              width=args.frame_w, jobs=args.workers, quiet=True))
    return str(root / "store")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, width 0.125, batch 4, 8x32x32: check the script works")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--clip-size", type=int, default=112)
    p.add_argument("--steps", type=int, default=40, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=15, help="untimed steps per mode (compilation happens here)")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="DataLoader workers")
    p.add_argument("--store", default=None, help="an existing store with a ucf101 dataset (default: make one)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--videos-per-class", type=int, default=40)
    p.add_argument("--frame-h", type=int, default=128)
    p.add_argument("--frame-w", type=int, default=171)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--modes", default=",".join(m[0] for m in MODES))
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if args.smoke:
        args.batch, args.width, args.clip_len, args.clip_size = 4, 0.125, 8, 32
        args.steps, args.warmup, args.classes, args.videos_per_class = 3, 1, 3, 4
        args.frame_h, args.frame_w, args.workers = 48, 63, 2
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke for the CPU check")
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAKS.items() if k in gpu), None)
    flops = train_flops_per_clip(args, device)
    print(f"device {gpu}; R(2+1)D width {args.width}, batch {args.batch}, {args.clip_len}x{args.clip_size}x{args.clip_size}; "
          f"{flops / 1e9:.1f} GFLOP per training clip; peak {peak} TFLOP/s; torch {torch.__version__}")
    modes = [m for m in MODES if m[0] in args.modes.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store or make_store(args, Path(tmp))
        store = Store(store_path)
        frames = store.videos("ucf101")[0]
        # Synthetic: one pinned batch of stored-size uint8 clips with random labels, fed again and again.
        g = torch.Generator().manual_seed(0)
        clips = torch.randint(0, 256, (args.batch, args.clip_len, frames.height, frames.width, 3), dtype=torch.uint8, generator=g)
        space = LabelSpace()
        fixed = (clips.pin_memory() if device.type == "cuda" else clips,
                 torch.randint(0, space.n_spatial, (args.batch,), generator=g),
                 torch.randint(0, space.n_temporal, (args.batch,), generator=g), torch.arange(args.batch))
        # Real loader: the training DataLoader over the store (persistent workers, pinned memory).
        data = EpochTagged(PretextClips(store, "ucf101", "1", "train", space, clip_len=args.clip_len, seed=0))
        info = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
        sampler = EpochSampler(len(data), seed=0, info=info)
        loader = make_loader(data, sampler, batch_size=args.batch, workers=args.workers, device=device, seed=0, drop_last=True)

        def real(epoch: int):
            sampler.set_epoch(epoch)
            return loader

        results = []
        for source, batches in (("synthetic", lambda e: [fixed] * (args.steps + args.warmup)), ("loader", real)):
            for mode in modes:
                r = {"source": source, **run_mode(args, device, mode, batches, args.steps)}
                r["mfu"] = r["clips_per_s"] * flops / (peak * 1e12) if peak else None
                results.append(r)
                mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
                print(f"{source:9s} {r['mode']:16s} {r['clips_per_s']:9.1f} clips/s  MFU {mfu:>6s}  "
                      f"data wait {r['data_wait']:.0%}", flush=True)
        base = {r["source"]: r["clips_per_s"] for r in results if r["mode"] == "fp32-eager"}
        for r in results:
            if r["source"] in base:
                print(f"{r['source']:9s} {r['mode']:16s} x{r['clips_per_s'] / base[r['source']]:.2f} vs fp32-eager")
        if args.json:
            Path(args.json).write_text(json.dumps({"device": gpu, "gflop_per_clip": flops / 1e9, "peak_tflops": peak,
                                                   "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
