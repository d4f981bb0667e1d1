"""CPU benchmark of the backbones: parameters, forward FLOPs per 16x112x112 clip, and training clips/s.

Usage: .venv/bin/python bench/bench_models.py [--iters 5] [--threads 2] [--counts-only]

FLOPs come from torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add; convolutions and
matmuls only, which is where nearly all of it is). Throughput is forward + backward + SGD step of the
backbone with a 101-way classifier on random clips, at width 1.0 (batch 2) and width 0.25 (batch 8),
timed step by step with all ten configurations interleaved; the width-1 R(2+1)D is the baseline
every ratio refers to.
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from statistics import median

import torch
from torch.utils.flop_counter import FlopCounterMode

from v3s.shared.models import BACKBONES, ClassifierHead, VideoModel, build_backbone

CLIP = (3, 16, 112, 112)


def c3d_with_fc_counts() -> list[tuple[str, float]]:
    """Parameters (M) of our C3D plus the fc layers that public C3D variants add, to compare with the paper's 58.3M.

    fc6's input is conv5 after pool5: 512x1x4x4 = 8192 in the original C3D (pool5 pads H and W by 1),
    512x1x3x3 = 4608 without that padding, 512x2x3x3 = 9216 for the peers' MaxPool3d((1,2,2)).
    """
    conv = sum(p.numel() for p in build_backbone("c3d").parameters())
    variants = {
        "C3D-BN convs only (VCOP)": [],
        "+ fc6 8192->4096": [(8192, 4096)],
        "+ fc6 8192->4096, fc7 4096->4096 (original C3D)": [(8192, 4096), (4096, 4096)],
        "+ fc6, fc7, fc8 4096->487 (Sports-1M C3D)": [(8192, 4096), (4096, 4096), (4096, 487)],
        "+ fc6 4608->4096, fc7 4096->4096": [(4608, 4096), (4096, 4096)],
        "+ fc6 9216->4096": [(9216, 4096)],
        "+ fc6 9216->2048, fc7 2048->2048": [(9216, 2048), (2048, 2048)],
    }
    return [(k, (conv + sum(i * o + o for i, o in fcs)) / 1e6) for k, fcs in variants.items()]


def nearest_c3d_to(target_m: float) -> tuple[float, str]:
    """Search C3D + fc6 (+ fc7) (+ fc8) layouts for the parameter count closest to ``target_m`` million.

    fc6 input 512 x t x h x h for t in {1, 2}, h in {1, 2, 3, 4, 7}; fc widths 512..4096; fc8 to 51, 101,
    400 or 487 classes (HMDB51, UCF101, Kinetics-400, Sports-1M) or absent.
    """
    conv = sum(p.numel() for p in build_backbone("c3d").parameters())
    best = (float("inf"), "")
    for t in (1, 2):
        for h in (1, 2, 3, 4, 7):
            for width in (512, 1024, 2048, 4096):
                for fc7 in (False, True):
                    for n_cls in (0, 51, 101, 400, 487):
                        fin = 512 * t * h * h
                        n = fin * width + width + (width * width + width if fc7 else 0)
                        n += width * n_cls + n_cls
                        total = (conv + n) / 1e6
                        label = (f"fc6 {fin}->{width}" + (f", fc7 {width}->{width}" if fc7 else "")
                                 + (f", fc8 ->{n_cls}" if n_cls else ""))
                        if abs(total - target_m) < abs(best[0] - target_m):
                            best = (total, label)
    return best


def forward_gflops(name: str) -> float:
    """Forward GFLOPs of one 16x112x112 clip through the width-1 backbone."""
    bb = build_backbone(name).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        bb(torch.randn(1, *CLIP))
    return counter.get_total_flops() / 1e9


def make_train_step(name: str, width: float, batch: int) -> Callable[[], None]:
    """A closure running one forward + backward + SGD step of backbone + 101-way classifier on random clips."""
    torch.manual_seed(0)
    bb = build_backbone(name, width=width)
    model = VideoModel(bb, ClassifierHead(bb.feature_dim, 101)).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, *CLIP)
    y = torch.randint(0, 101, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def time_round_robin(steps: dict[tuple, Callable[[], None]], rounds: int) -> dict[tuple, list[float]]:
    """Seconds per step of every configuration, interleaved round by round after one untimed step each.

    Interleaving spreads the machine's load swings (other jobs share these cores) over all configurations
    alike, so the ratios between them stay meaningful even when the absolute figures drift.
    """
    for step in steps.values():
        step()
    times: dict[tuple, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=5, help="timed steps (rounds) per configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--counts-only", action="store_true", help="print parameter counts only (no timing)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print("| backbone | params (M) | tap dims pool3/pool4/pool5 |\n|---|---|---|")
    for name in BACKBONES:
        bb = build_backbone(name)
        dims = "/".join(str(bb.tap_dims[t]) for t in ("pool3", "pool4", "pool5"))
        print(f"| {name} | {sum(p.numel() for p in bb.parameters()) / 1e6:.3f} | {dims} |")
    print("\n| C3D variant | params (M) |\n|---|---|")
    for label, millions in c3d_with_fc_counts():
        print(f"| {label} | {millions:.2f} |")
    total, label = nearest_c3d_to(58.3)
    print(f"\nclosest C3D + fc layout to the paper's 58.3M: {label} = {total:.2f}M")
    if args.counts_only:
        return

    gflops = {name: forward_gflops(name) for name in BACKBONES}
    configs = {(name, width, batch): make_train_step(name, width, batch)
               for name in BACKBONES for width, batch in ((1.0, 2), (0.25, 8))}
    times = time_round_robin(configs, args.iters)
    best = {k: k[2] / min(v) for k, v in times.items()}
    typical = {k: k[2] / median(v) for k, v in times.items()}
    base = best[("r21d", 1.0, 2)]

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, 16x112x112 clips, {args.iters} interleaved"
          f" rounds; load average at the end {os.getloadavg()[0]:.1f}; clips/s = best step (median step)\n")
    print("| backbone | fwd GFLOP/clip | train GFLOP/clip (~3x) | train clips/s w=1.0 b=2 | vs r21d w=1"
          " | train clips/s w=0.25 b=8 | vs r21d w=1 |")
    print("|---|---|---|---|---|---|---|")
    for name in BACKBONES:
        full, quarter = (name, 1.0, 2), (name, 0.25, 8)
        print(f"| {name} | {gflops[name]:.1f} | {3 * gflops[name]:.0f} | {best[full]:.2f} ({typical[full]:.2f})"
              f" | {best[full] / base:.2f}x | {best[quarter]:.1f} ({typical[quarter]:.1f}) | {best[quarter] / base:.1f}x |")


if __name__ == "__main__":
    main()
