"""GPU training throughput of R(2+1)D: fp32 eager vs bf16 + channels_last_3d (+ torch.compile), with MFU.

Usage (GPU machine):  python bench/gpu_models.py [--batch 32] [--iters 30] [--peak-tflops 989]
Smoke run (CPU, tiny):  python bench/gpu_models.py --smoke

One training step = forward + backward + SGD step of the VCOP R(2+1)D (layers 1,1,1,1) with a 101-way
classifier on a batch of random 16x112x112 clips that already live on the device, so the figure is the
model's ceiling, not the input pipeline's. MFU = clips/s x training FLOPs per clip (counted by
torch.utils.flop_counter.FlopCounterMode on one forward + backward, 2 FLOPs per multiply-add) / the
GPU's dense bf16 peak, for every mode alike (so the fp32 row shows how much of the chip it leaves idle).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from v3s.shared.models import ClassifierHead, VideoModel, build_backbone

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.0,
                    "L4": 121.0, "A10G": 70.0}
MODES = ("fp32", "bf16_cl", "bf16_cl_compile")


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak for a GPU name (longest matching key wins), None if unknown."""
    hits = [k for k in PEAK_BF16_TFLOPS if k.lower() in device_name.lower()]
    return PEAK_BF16_TFLOPS[max(hits, key=len)] if hits else None


def make_model(width: float, device: torch.device, channels_last: bool) -> VideoModel:
    torch.manual_seed(0)
    backbone = build_backbone("r21d", width=width)
    model = VideoModel(backbone, ClassifierHead(backbone.feature_dim, 101)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def train_flops_per_clip(width: float, clip: tuple[int, ...], device: torch.device) -> float:
    """Forward + backward FLOPs of one clip (fp32, eager)."""
    model = make_model(width, device, channels_last=False)
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.randn(1, *clip, device=device)).sum().backward()
    return float(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_mode(mode: str, args: argparse.Namespace, device: torch.device, clip: tuple[int, ...]) -> dict:
    """Time ``args.iters`` training steps in one mode after ``args.warmup`` untimed ones."""
    bf16 = mode.startswith("bf16")
    channels_last = "_cl" in mode
    model = make_model(args.width, device, channels_last)
    step_model = torch.compile(model, mode=args.compile_mode) if mode.endswith("compile") else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, *clip, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 101, (args.batch,), device=device)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(step_model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.warmup):  # the first steps pay for cudnn autotuning and, in compile mode, compilation
        loss = step()
    sync(device)
    warmup_s = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"mode {mode}: non-finite loss {loss.item()} after warm-up")
    start = time.perf_counter()
    for _ in range(args.iters):
        loss = step()
    sync(device)
    elapsed = time.perf_counter() - start
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"mode": mode, "clips_per_s": args.batch * args.iters / elapsed, "warmup_s": warmup_s,
            "loss": loss.item(), "mem_gib": mem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=30, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per mode (compilation happens here)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (e.g. max-autotune)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak; default: by GPU name")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny CPU run (width 0.125, batch 2, 8x32x32, 3 steps) to check the script works")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        parser.error(f"unknown modes {bad}; valid: {list(MODES)}")

    if args.smoke:
        device, clip = torch.device("cpu"), (3, 8, 32, 32)
        args.width, args.batch, args.iters, args.warmup = 0.125, 2, 3, 2
        name = "CPU (smoke run)"
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device; use --smoke for a CPU check of the script")
        device, clip = torch.device("cuda"), (3, 16, 112, 112)
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    peak = args.peak_tflops or (None if args.smoke else peak_tflops(name))
    flops = train_flops_per_clip(args.width, clip, device)

    print(f"device: {name}; torch {torch.__version__}; cudnn {torch.backends.cudnn.version()}; "
          f"TF32 conv {torch.backends.cudnn.allow_tf32}; peak bf16 {peak or 'unknown'} TFLOP/s")
    print(f"R(2+1)D width {args.width}, batch {args.batch}, clip {clip[1]}x{clip[2]}x{clip[3]}, "
          f"{flops / 1e9:.1f} training GFLOP/clip, {args.iters} timed steps after {args.warmup} warm-up\n")
    print("| mode | clips/s | vs fp32 | MFU | peak mem (GiB) | warm-up (s) | last loss |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for mode in modes:
        r = run_mode(mode, args, device, clip)
        base = base or (r["clips_per_s"] if mode == "fp32" else None)
        ratio = f"{r['clips_per_s'] / base:.2f}x" if base else "-"
        mfu = f"{100 * r['clips_per_s'] * flops / (peak * 1e12):.1f}%" if peak else "n/a"
        print(f"| {mode} | {r['clips_per_s']:.1f} | {ratio} | {mfu} | {r['mem_gib']:.1f} | {r['warmup_s']:.1f}"
              f" | {r['loss']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
